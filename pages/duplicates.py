"""Duplicates & leakage: copies across splits first, then every pair, the clusters and the
suggested removal list (exported, never applied)."""

import streamlit as st

from qa import embeddings
from qa.app import cached
from qa.app.state import clear_focus, dataset_key, focus, require_dataset
from qa.duplicates import DEFAULT_THRESHOLDS
from qa.viz import duplicates as vd

ds = require_dataset()
st.title("Duplicates & leakage")
focus_ids, focus_kind = focus()
if focus_ids:
    st.info(f"Showing the pairs of {len(focus_ids)} image(s) from a link"
            f"{f' ({focus_kind})' if focus_kind else ''}.")
    st.button("Show the whole dataset", on_click=clear_focus, key="dup_clear_focus")

METHODS = {"phash": "Perceptual (pHash + dHash, flip-aware)", "exact": "Exact (bytes or pixels)"}
if hasattr(embeddings, "embed_images"):
    METHODS["embedding"] = "Embeddings (cosine)"
c1, c2 = st.columns([2, 3])
method = c1.radio("Method", list(METHODS), format_func=METHODS.get, key="dup_method")
threshold = None
if method != "exact":
    threshold = c2.slider("Similarity threshold", 0.80, 1.0, DEFAULT_THRESHOLDS[method], 0.002,
                          format="%.3f", key=f"dup_threshold_{method}",
                          help="phash: 1 - Hamming distance / 128; embedding: cosine similarity")
res = cached.duplicates(dataset_key(), ds, method, threshold)
m = res.metrics()
c2.caption(f"**{m['n_exact_pairs'] + m['n_near_pairs']} pairs** at this threshold "
           f"({m['n_exact_pairs']} exact, {m['n_near_pairs']} near), "
           f"{res.n_checked} of {res.n_images} images compared.")
for note in res.notes:
    st.caption(note)

k = st.columns(5)
k[0].metric("Cross-split pairs", m["n_cross_split_pairs"])
k[1].metric("Leaking images", m["n_leaking_images"])
k[2].metric("Clusters", m["n_clusters"])
k[3].metric("Inconsistent labels", m["n_inconsistent_label_clusters"], help="clusters")
k[4].metric("Listed twice", m["n_listed_twice"])

st.subheader("Leakage: copies across splits")
leak = res.leakage_table(focus_ids)
if leak.empty:
    st.success("No copies cross the splits at this threshold.")
else:
    st.dataframe(leak, hide_index=True, key="dup_leak_table")

st.subheader("Pairs")
pairs = res.involving(focus_ids)
per_page = 6
pages = max(1, -(-len(pairs) // per_page))
page = st.number_input(f"Page (of {pages}, {len(pairs)} pairs)", 1, pages, 1,
                       key="dup_pairs_page") if pages > 1 else 1
grid = st.columns(2)
for k, p in enumerate(pairs.iloc[(page - 1) * per_page: page * per_page].itertuples(index=False)):
    box = grid[k % 2].container(border=True)
    box.markdown(f"**#{p.image_id_a} / #{p.image_id_b}** · {p.method} · similarity "
                 f"{p.similarity:.3f}{' · flipped' if p.flipped else ''} · "
                 f"{vd.split_badge(p.split_a)} {vd.split_badge(p.split_b)}"
                 f"{' :red-badge[leakage]' if p.cross_split else ''}")
    left, right = box.columns(2)
    for col, iid, name in ((left, p.image_id_a, p.file_a), (right, p.image_id_b, p.file_b)):
        img, err = cached.thumbnail(dataset_key(), ds, iid)
        col.image(img, caption=f"#{iid} {name}" + (f" ({err})" if err else ""), width="stretch")

st.plotly_chart(vd.similarity_hist(res), key="dup_hist")
st.subheader("Clusters")
st.plotly_chart(vd.cluster_size_bar(res), key="dup_cluster_sizes")
clusters, removal = res.clusters_of(focus_ids)
st.dataframe(clusters, hide_index=True, key="dup_clusters")
if not res.inconsistent.empty:
    st.subheader("Copies with different labels")
    st.dataframe(res.inconsistent, hide_index=True, key="dup_inconsistent")

st.subheader("Suggested removals")
st.caption("A suggestion to review and export: nothing is deleted or moved.")
st.dataframe(removal, hide_index=True, key="dup_removal")
e1, e2 = st.columns(2)
e1.download_button("Download CSV", res.removal_export("csv"), "removal_list.csv", "text/csv",
                   key="dup_dl_csv")
e2.download_button("Download JSON", res.removal_export("json"), "removal_list.json",
                   "application/json", key="dup_dl_json")
