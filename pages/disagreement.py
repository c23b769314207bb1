"""Model disagreement: where a model and the labels disagree, ranked for review and relabelling,
with the model's own detection metrics."""

import streamlit as st

from qa.app import cached
from qa.app.state import (
    clear_focus,
    dataset_key,
    focus,
    require_dataset,
    widget_default,
)
from qa.app.widgets import image_gallery
from qa.disagreement import CONSENSUS, DEFAULT_CONF_THRESHOLD
from qa.geometry import DEFAULT_IOU_THRESHOLD
from qa.viz import disagreement as vd

ds = require_dataset()
st.title("Model disagreement")
if not ds.models:
    st.info("This dataset has no model predictions. Put a COCO results file in "
            "`predictions/*.json` beside the dataset, or load one with the sidebar, to see "
            "where the model and the labels disagree.")
    st.stop()

c = st.columns([2, 2, 3, 3])
model = c[0].selectbox("Model", ds.models, key="dis_model")
refs = list(ds.annotators) + ([CONSENSUS] if len(ds.annotators) > 1 else [])
widget_default("dis_reference", refs[-1])
reference = c[1].selectbox("Reference labels", refs, key="dis_reference",
                           help="One annotator, or the consensus objects of all of them.")
conf = c[2].slider("Confidence threshold", 0.05, 0.95, DEFAULT_CONF_THRESHOLD, 0.05,
                   key="dis_conf", help="A prediction at least this confident is a claim.")
iou = c[3].slider("IoU threshold for a match", 0.1, 0.95, DEFAULT_IOU_THRESHOLD, 0.05,
                  key="dis_iou", disabled=ds.is_classification)
objects = cached.complete_object_embeddings(dataset_key(), ds)
n_obj = len(objects) if objects is not None else 0
try:
    res = cached.disagreement(dataset_key(), ds, reference, model, conf, iou, objects, n_obj)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

heads = vd.headline(res)
for row in (heads[:3], heads[3:]):
    for col, (label, value, why) in zip(st.columns(5), row):
        col.metric(label, value, help=why or None)
st.caption(f"**How the split was decided:** {res.cause_counts()['basis']}")
for note in res.notes:
    st.caption(note)
if objects is None and not ds.is_classification:
    st.caption("A detector's misses look like unsupported labels. Embed the boxes on the "
               "Outliers page and each box's crop decides: label error or model miss.")

ids, kind = focus()
queue = res.queue
if ids:
    queue = queue[queue["image_id"].isin(ids)]
    st.info(f"Showing the {len(queue)} of {len(ids)} linked images that are flagged"
            + (f" ({kind})" if kind else "") + ".")
    st.button("Show the whole queue", on_click=clear_focus, key="dis_clear_focus")

tabs = st.tabs(["Review queue", "Flags by type and class", "Model metrics", "Confusion",
                "Export"], key="dis_tab", on_change="rerun")  # only the open tab is computed
if tabs[0].open:
    with tabs[0]:
        st.caption("Most likely wrong first: each image's box qualities pooled by a soft "
                   "minimum (ObjectLab). Labels in the annotators' colours, predictions dashed "
                   "magenta; flagged labels highlighted.")
        n = int(st.number_input("Images to show", 4, 96, 12, 4, key="dis_n"))
        top = queue.head(n)["image_id"].tolist()
        caps = cached.derived(res, res.queue_captions)  # once per result, not per rerun
        image_gallery(ds, top, key="dis_gallery", captions={i: caps[i] for i in top},
                      annotators=None if reference == CONSENSUS else [reference],
                      highlight_ann_ids=res.flagged_ann_ids(top) or None,
                      show_predictions=True, max_images=n)
        flags = res.flags
        st.dataframe(flags[flags["image_id"].isin(top)], hide_index=True, key="dis_flags")
if tabs[1].open:
    with tabs[1]:
        st.plotly_chart(cached.derived(res.per_class, vd.flag_counts, res.per_class),
                        key="dis_counts")
        st.dataframe(res.per_class, hide_index=True, key="dis_per_class")
if ds.is_classification:
    for tab in tabs[2:4]:
        tab.info("Detection metrics need boxes; this dataset has image labels only.")
else:  # the metrics are evaluated when one of their tabs is opened (then kept)
    if tabs[2].open:
        with tabs[2]:
            ev = cached.detection_metrics(dataset_key(), ds, reference, model, conf)
            mc = st.columns(6)
            for col, name in zip(mc, ["AP", "AP50", "AP75", "AP_small", "AP_medium",
                                      "AP_large"]):
                v = ev.stats[name]
                col.metric(name.replace("AP", "mAP", 1) if name == "AP" else name,
                           "n/a" if v < 0 else f"{v:.3f}")
            st.caption(f"COCO bbox metrics, equal to pycocotools; precision and recall at IoU "
                       f"0.5 for predictions with confidence ≥ {conf:.2f}.")
            st.dataframe(ev.per_class, hide_index=True, key="dis_metrics")
            st.plotly_chart(cached.derived(ev.pr_curves, vd.pr_curves, ev.pr_curves),
                            key="dis_pr")
    if tabs[3].open:
        with tabs[3]:
            ev = cached.detection_metrics(dataset_key(), ds, reference, model, conf)
            st.plotly_chart(cached.derived(ev.confusion, vd.confusion_heatmap, ev.confusion),
                            key="dis_confusion")
if tabs[4].open:
    with tabs[4]:
        st.caption("Send the queue back for relabelling. The dataset itself is never changed.")
        e = st.columns(3)  # each file is made when its button is clicked, not on each rerun
        exports = [("Queue (CSV)", "csv", "queue.csv", "text/csv", None),
                   ("Flagged images (COCO)", "coco", "flagged_coco.json", "application/json",
                    None)]
        if not res.is_classification:
            exports.append(("Label Studio tasks", "labelstudio", "labelstudio_tasks.json",
                            "application/json", "Import into Label Studio: labels as "
                            "annotations, the model's boxes as predictions."))
        for col, (label, fmt, name, mime, tip) in zip(e, exports):
            col.download_button(label, lambda fmt=fmt: cached.disagreement_file(ds, res, fmt),
                                name, mime, key=f"dis_{'ls' if fmt == 'labelstudio' else fmt}",
                                help=tip, on_click="ignore")
