"""Duplicates & leakage: copies across splits first, then every pair with how it was decided,
the clusters and the suggested removal list (exported, never applied)."""

import streamlit as st

from qa.app import cached
from qa.app.state import clear_focus, dataset_key, focus, require_dataset
from qa.duplicates import CANDIDATE_THRESHOLDS
from qa.embeddings import ModelError
from qa.viz import duplicates as vd

ds = require_dataset()
key = dataset_key()
st.title("Duplicates & leakage")
focus_ids, focus_kind = focus()
if focus_ids:
    st.info(f"Showing the pairs of {len(focus_ids)} image(s) from a link"
            f"{f' ({focus_kind})' if focus_kind else ''}.")
    st.button("Show the whole dataset", on_click=clear_focus, key="dup_clear_focus")

emb = None
try:
    spec = cached.model_spec("auto", None)
    emb = cached.stored_embeddings(key, ds, spec.model_id, "auto", None)
except ModelError:
    pass
n_emb = len(emb) if emb is not None else 0
METHODS = {"embedding": "Perceptual + embeddings", "phash": "Perceptual (pHash + dHash)",
           "exact": "Exact copies only"}
c1, c2 = st.columns([2, 3])
method = c1.radio("Candidates from", list(METHODS) if n_emb else ["phash", "exact"],
                  format_func=METHODS.get, key="dup_method",
                  help="Every candidate pair is then compared on the pixels")
if not n_emb:
    c1.caption("Embed the images (Outliers page) to also find shifted and sheared copies.")
threshold = None
if method != "exact":
    kind = "embedding" if method == "embedding" else "phash"
    threshold = c2.slider("Candidate similarity", 0.70, 1.0, CANDIDATE_THRESHOLDS[kind], 0.005,
                          format="%.3f", key=f"dup_threshold_{kind}",
                          help="Pairs this alike are compared on the pixels; only the same "
                               "picture (one geometric transform, nothing changed) is kept")
bar = st.progress(0.0, text="Comparing candidate pairs on the pixels ...")
res = cached.duplicates(key, ds, method, threshold, n_emb, emb, bar.progress)
bar.empty()
m = res.metrics()
c2.caption(f"**{m['n_exact_pairs'] + m['n_near_pairs']} pairs** ({m['n_exact_pairs']} exact, "
           f"{m['n_near_pairs']} verified on the pixels), {len(res.rejected):,} look-alike "
           f"candidates rejected, {res.n_checked} of {res.n_images} images compared.")
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
    st.success("No copies cross the splits.")
else:
    st.dataframe(leak, hide_index=True, key="dup_leak_table")

st.subheader("Pairs")
pairs = res.involving(focus_ids).sort_values("cross_split", ascending=False, kind="stable")
o1, o2, o3 = st.columns(3)
show_boxes = o1.toggle("Show boxes", value=False, key="dup_show_boxes")
color_by = o2.selectbox("Colour boxes by", ["class", "annotator"], key="dup_color_by",
                        disabled=not show_boxes)
pages = max(1, -(-len(pairs) // 4))
page = o3.number_input(f"Page (of {pages}, {len(pairs)} pairs)", 1, pages, 1,
                       key="dup_pairs_page") if pages > 1 else 1
for p in pairs.iloc[(page - 1) * 4: page * 4].itertuples(index=False):
    box = st.container(border=True)
    box.markdown(f"{vd.split_badge(p.split_a)} {vd.split_badge(p.split_b)}"
                 f"{' :red-badge[leakage]' if p.cross_split else ''} · {p.method} · decided by "
                 f"{p.decided_by}{' · mirrored' if p.flipped else ''}")
    box.caption(f"{p.file_a} / {p.file_b}" + (f": {p.reason}" if p.reason else ""))
    left, right = box.columns(2)  # the two at the same size, side by side
    for col, iid, name in ((left, p.image_id_a, p.file_a), (right, p.image_id_b, p.file_b)):
        img, err = cached.thumbnail(key, ds, iid, show_boxes, color_by)
        col.image(img, caption=name + (f" ({err})" if err else ""), width="stretch")

g1, g2 = st.columns(2)
g1.plotly_chart(vd.similarity_hist(res), key="dup_hist")
g2.plotly_chart(vd.cluster_size_bar(res), key="dup_cluster_sizes")
st.subheader("Clusters")
clusters, removal = res.clusters_of(focus_ids)
st.dataframe(clusters, hide_index=True, key="dup_clusters")
if not res.inconsistent.empty:
    st.subheader("Copies with different labels")
    st.dataframe(res.inconsistent, hide_index=True, key="dup_inconsistent")
with st.expander(f"Look-alike candidates that are not the same picture ({len(res.rejected):,})"):
    st.dataframe(res.rejected, hide_index=True, key="dup_rejected")

st.subheader("Suggested removals")
st.caption("A suggestion to review and export: nothing is deleted or moved.")
st.dataframe(removal, hide_index=True, key="dup_removal")
e1, e2 = st.columns(2)
e1.download_button("Download CSV", res.removal_export("csv"), "removal_list.csv", "text/csv",
                   key="dup_dl_csv")
e2.download_button("Download JSON", res.removal_export("json"), "removal_list.json",
                   "application/json", key="dup_dl_json")
