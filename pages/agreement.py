"""Annotator agreement: which annotators, classes and images disagree; do the guidelines work?"""

import streamlit as st

from qa.agreement import (IOU_TARGET, MASK_IOU_TARGET, METHOD_HELP, dispute_causes,
                          dispute_summary, disputed_gallery, kappa_band)
from qa.app import cached
from qa.app.state import dataset_key, focus, require_dataset, widget_default
from qa.app.widgets import image_gallery, linked_evidence
from qa.dataset import SEGMENTATION
from qa.geometry import DEFAULT_IOU_THRESHOLD
from qa.viz import agreement as va

ds = require_dataset()
st.title("Annotator agreement")
linked = linked_evidence(ds, key="agr", hints={
    "loose_annotator": "The Scorecard tab shows each annotator's mean IoU against the target.",
    "low_recall_annotator": "The Scorecard tab shows each annotator's recall.",
    "annotator_confusion": "The Confusion tab shows each annotator's confusion matrix.",
    "disputed_image": "The Disputed images tab lists them with the disputed boxes marked."})

if len(ds.annotators) < 2:
    st.info(f"Agreement needs at least 2 annotators; this dataset has {len(ds.annotators)} "
            f"({', '.join(ds.annotators) or 'none'}). Load one COCO file per annotator (or a "
            "format with an annotator field) to compare them. What one annotator did:")
    st.dataframe(cached.annotator_summary(dataset_key(), ds), hide_index=True, key="agr_counts")
    st.stop()

c1, c2 = st.columns([3, 1])
thr = c1.slider("IoU threshold for a match", 0.1, 0.95, DEFAULT_IOU_THRESHOLD, 0.05,
                key="agr_iou", disabled=ds.is_classification,
                help="0.5 is what CVAT's quality report and COCO AP@0.5 use.")
masks = c2.toggle("Compare masks", value=False, key="agr_masks",
                  disabled=SEGMENTATION not in ds.annotations.columns or ds.is_classification,
                  help="Mask IoU from the polygons/RLE instead of box IoU.")
res = cached.agreement(dataset_key(), ds, thr, "segm" if masks else "bbox")
iou_target = MASK_IOU_TARGET if masks else IOU_TARGET

m = st.columns(4)
m[0].metric("Krippendorff's alpha", f"{res.alpha:.3f}", help=kappa_band(res.alpha)
            + ": all annotators at once, missing ratings allowed")
m[1].metric("Fleiss' kappa", f"{res.fleiss:.3f}",
            help=f"{kappa_band(res.fleiss)}; on the {res.n_fleiss_units:,} units all rated")
m[2].metric("Mean pairwise Cohen's kappa", f"{res.mean_pairwise_kappa:.3f}",
            help=kappa_band(res.mean_pairwise_kappa))
causes = cached.derived(res, dispute_causes, res, ds)  # once per result, not per rerun
summary = dispute_summary(causes)
m[3].metric("Disputed images", f"{int(res.per_image['is_disputed'].sum()):,}",
            help="disagreement score (1 - soft F1) of 0.25 or more. By cause: " + "; ".join(
                f"{r.cause} {r.images} ({r.who})" for r in summary.itertuples()))
if res.is_classification:
    st.caption("Classification labels: units are images; kappas compare the image labels.")
else:
    st.caption("Units for kappa/alpha are consensus objects; an annotator who drew nothing there "
               "rates it '(no object)', so the coefficients cover detection and class together.")

if not res.consensus_defined:
    st.info(f"With {res.n_annotators} annotators the consensus is undefined: where two disagree, "
            "nothing tells which one is right. The scorecard compares each with the other (so "
            "neither is coloured as worse); the pairwise view is the data. A third annotator "
            "on a sample of the images makes per-annotator verdicts possible.")

_LINKED_TAB = {"annotator_confusion": "Confusion", "disputed_image": "Disputed images"}
kind = focus()[1]
if kind in _LINKED_TAB and st.session_state.get("agr_linked_kind") != kind:
    st.session_state["agr_tab"] = _LINKED_TAB[kind]  # once per link: then free
    st.session_state["agr_linked_kind"] = kind
tabs = st.tabs(["Scorecard", "Pairs", "Classes", "IoU", "Disputed images", "Confusion"],
               key="agr_tab", on_change="rerun")  # only the open tab is computed
if tabs[0].open:
    with tabs[0]:
        st.caption(va.scorecard_caption(res, iou_target=iou_target))
        st.dataframe(va.style_scorecard(res.scorecard, iou_target=iou_target,
                                        colour=res.consensus_defined), hide_index=True,
                     key="agr_scorecard")
        if res.consensus_defined and not res.is_classification:
            st.plotly_chart(va.noise_bars(res), key="agr_noise")
        with st.expander("Method and citations"):
            st.markdown(METHOD_HELP)
if tabs[1].open:
    with tabs[1]:
        metrics = ["kappa"] if res.is_classification else ["f1", "mean_iou", "kappa"]
        cols = st.columns(len(metrics))
        for col, metric in zip(cols, metrics):
            col.plotly_chart(va.pair_heatmap(res, metric), key=f"agr_heat_{metric}")
        st.dataframe(res.pairwise, hide_index=True, key="agr_pairwise")
if tabs[2].open:
    with tabs[2]:
        st.plotly_chart(va.class_agreement_bars(res), key="agr_class_bars")
        st.dataframe(res.per_class, hide_index=True, key="agr_per_class")
if tabs[3].open:
    with tabs[3]:
        if res.is_classification:
            st.info("No boxes: IoU does not apply to image labels.")
        else:
            st.plotly_chart(va.iou_histogram(res), key="agr_iou_hist")
if tabs[4].open:
    with tabs[4]:
        st.caption("Per cause, who caused it; a missed object or another class (warning) "
                   "matters more than a loose box (info), so the gallery starts with those.")
        st.dataframe(summary, hide_index=True, key="agr_causes")
        n = st.number_input("Images to show", 4, 96, 24, 4, key="agr_n_disputed")
        ids, caps = disputed_gallery(res, causes, limit=int(n), only=linked or None)
        image_gallery(ds, ids, key="agr_gallery", captions=caps,
                      highlight_ann_ids=res.disputed_ann_ids(ids) or None, max_images=int(n))
        st.dataframe(res.per_image, hide_index=True, key="agr_per_image")
if tabs[5].open:
    with tabs[5]:
        if res.consensus_defined and not res.label_confusion.empty:
            widget_default("agr_ds_annotator", res.most_confused_annotator())
            who = st.selectbox("Annotator's confusion matrix (Dawid-Skene)", res.annotators,
                               key="agr_ds_annotator")
            st.plotly_chart(va.annotator_confusion_heatmap(res.annotator_confusion(who)),
                            key="agr_ds_confusion")
            st.caption("Pairwise: one annotator's labels against another's on the objects both "
                       "rated.")
        a1, a2 = st.columns(2)
        widget_default("agr_conf_a", res.annotators[0])
        widget_default("agr_conf_b", res.annotators[1])
        first = a1.selectbox("Rows", res.annotators, key="agr_conf_a")
        second = a2.selectbox("Columns", res.annotators, key="agr_conf_b")
        st.plotly_chart(va.confusion_heatmap(cached.derived(res, res.confusion, first, second)),
                        key="agr_confusion")
