"""Compare: is B like A? The verdict first, then labels, image statistics, embedding clusters,
coverage (B's images that A does not cover) and, for two versions, what changed."""

import streamlit as st

from qa.app import compare as cmp
from qa.app.state import require_dataset
from qa.app.widgets import embed_button, linked_evidence
from qa.drift import IMAGE_FEATURES
from qa.viz import drift as vd

ds = require_dataset()
st.title("Compare")
st.caption("Two datasets, two splits, or two versions: drift of the labels, the pixels and the "
           "embeddings, what A does not cover, and what changed. A is the reference.")
linked_evidence(ds, key="cmp", hints={
    "not_covered": "These images are far from every image of the reference dataset.",
    "drift": "Compare this dataset with the reference below to see the drifting signals."})
choice = cmp.choose(ds)
if choice is None:
    st.stop()
with st.expander("Options", icon=":material/tune:"):
    o1, o2 = st.columns(2)
    alpha = o1.select_slider("False-alarm rate of the verdict (alpha)", [0.01, 0.05, 0.1],
                             value=0.05, key="cmp_alpha")
    clusters = o2.number_input("Clusters (0 = automatic)", 0, 40, 0, key="cmp_clusters")
res = cmp.run(choice, n_clusters=int(clusters) or None, alpha=alpha)
na, nb = res.name_a, res.name_b

# ---- the verdict first
show = {"drift": st.warning, "no drift": st.success}.get(res.verdict, st.info)
show(res.summary)
for col, card in zip(st.columns(4), vd.signal_cards(res)):
    box = col.container(border=True)
    box.markdown(f"**{card['label']}** {card['badge']}")
    box.caption(card["text"])
for note in res.notes:
    st.caption(note)
missing = cmp.missing_embeddings(choice)
if missing:
    embed_button(f"Embed the {missing:,} images not embedded yet (embedding signals)",
                 key="cmp_embed", run=cmp.embed_both(choice))

tabs = st.tabs(["Labels", "Image statistics", "Embeddings", "Coverage", "Versions",
                "All tests"])
with tabs[0]:
    if len(res.class_mix):
        st.plotly_chart(vd.class_change_chart(res), key="cmp_class_chart")
        st.dataframe(vd.class_table(res), hide_index=True, key="cmp_class_table")
    if len(res.box_values):
        box = st.radio("Box feature", list(vd.BOX_FEATURES), format_func=vd.BOX_FEATURES.get,
                       horizontal=True, key="cmp_box_feature")
        st.plotly_chart(vd.distribution_chart(res, box), key="cmp_box_chart")
    if len(res.annotator_mix):
        st.dataframe(res.annotator_mix, hide_index=True, key="cmp_annotator_table")
with tabs[1]:
    if res.image_features.empty:
        st.info(res.signals.set_index("signal").at["images", "reason"] or "Not measured.")
    else:
        st.plotly_chart(vd.psi_chart(res), key="cmp_psi_chart")
        feat = st.selectbox("Distribution of", list(IMAGE_FEATURES),
                            format_func=IMAGE_FEATURES.get, key="cmp_feature")
        st.plotly_chart(vd.distribution_chart(res, feat), key="cmp_feature_chart")
        st.dataframe(vd.features_table(res), hide_index=True, key="cmp_feature_table")
with tabs[2]:
    if res.clusters.empty:
        st.info(res.signals.set_index("signal").at["embeddings", "reason"] or "Not measured.")
    else:
        st.caption(vd.embedding_caption(res))
        st.plotly_chart(vd.cluster_chart(res), key="cmp_cluster_chart")
        for direction in (f"more in {nb}", f"less in {nb}"):
            rows = res.clusters[res.clusters["direction"] == direction].head(2)
            for r in rows.to_dict("records"):
                st.markdown(vd.cluster_caption(r, na, nb) + f" · {direction}")
                side, ids = vd.cluster_examples(r)
                cmp.gallery(*((choice.b, choice.key_b) if side == "b" else
                              (choice.a, choice.key_a)), ids)
with tabs[3]:
    if res.coverage_space is None:
        st.info(res.signals.set_index("signal").at["coverage", "reason"] or "Not measured.")
    else:
        st.plotly_chart(vd.coverage_chart(res), key="cmp_coverage_chart")
        unc = res.uncovered
        st.markdown(f"**{len(unc):,} images of {nb}** lie beyond {na}'s nearest-neighbour "
                    f"fence ({res.coverage_share_a:.1%} of {na}'s own images do): "
                    f"{na} does not cover them, the farthest first.")
        st.dataframe(res.coverage_summary, hide_index=True, key="cmp_coverage_spaces")
        top = unc.head(24)
        cmp.gallery(choice.b, choice.key_b, top["image_id"], captions=dict(zip(
            top["image_id"], [f"{e:.2f}x the fence" for e in top["excess"]])))
        st.dataframe(unc, hide_index=True, key="cmp_uncovered_table")
with tabs[4]:
    if not res.has_versions:
        st.info(f"{na} and {nb} share too few files to be versions of one dataset.")
    else:
        st.dataframe(res.files[res.files["status"] != "unchanged"], hide_index=True,
                     key="cmp_files_table")
        st.dataframe(res.changes_summary, hide_index=True, key="cmp_changes_summary")
        st.dataframe(res.label_changes, hide_index=True, key="cmp_changes_table")
with tabs[5]:
    st.dataframe(vd.tests_table(res), hide_index=True, key="cmp_tests_table")
    st.download_button("Download the comparison (JSON)", vd.result_json(res),
                       "comparison.json", "application/json", key="cmp_download")
