"""Class balance: imbalance, split skew, box sizes and where objects are, before training."""

import streamlit as st

from qa.app import cached
from qa.app.state import dataset_key, focus, require_dataset, widget_default
from qa.app.widgets import image_gallery, linked_evidence
from qa.balance import ALL_ANNOTATORS, available_splits
from qa.viz import balance as vb

ds = require_dataset()
annotators = ([ALL_ANNOTATORS] if len(ds.annotators) > 1 else []) + list(ds.annotators)
widget_default("bal_annotator", annotators[0] if annotators else None)
st.title(vb.balance_title(st.session_state.get("bal_annotator"), len(ds.annotators)))
_LINKED_SECTION = {"rare_class": "Checks", "annotator_class_mix": "Annotators",
                   "empty_image": "Splits"}
linked_evidence(ds, key="bal", hints={
    "rare_class": "The 'Checks' section below names the classes under the 10% line.",
    "annotator_class_mix": "The 'Annotators' section below compares their class mix.",
    "empty_image": "The 'Splits' section below counts the empty images per split."})
kind = focus()[1]
if kind in _LINKED_SECTION and st.session_state.get("bal_linked_kind") != kind:
    st.session_state["bal_section"] = _LINKED_SECTION[kind]  # once per link: then free
    st.session_state["bal_linked_kind"] = kind

f1, f2, f3 = st.columns([2, 2, 3])
split_options = available_splits(ds)
widget_default("bal_splits", split_options)
splits = f1.multiselect("Splits", split_options, key="bal_splits")
annotator = f2.selectbox("Count the labels of", annotators, key="bal_annotator",
                         help="All annotators pooled (the default) counts an object once per "
                              "annotator who drew it; choose one annotator for their labels.",
                         disabled=not annotators)
widget_default("bal_classes", [])
classes = f3.multiselect("Classes in the figures (empty: all)", list(ds.category_names.values()),
                         key="bal_classes") or None
if not splits:
    st.info("Choose at least one split.")
    st.stop()
res = cached.class_balance(dataset_key(), ds, annotator,
                           None if splits == split_options else tuple(splits))

for note in res.notes:
    st.info(note)
num = lambda v, f: "—" if v != v else format(v, f)  # noqa: E731  NaN: undefined, see notes
m = st.columns(6)
m[0].metric("Images", f"{res.n_images:,}")
m[1].metric("Instances", f"{res.n_annotations:,}")
m[2].metric("Classes", res.n_classes)
m[3].metric("Imbalance ratio", num(res.imbalance_ratio, ".1f"),
            help="most common / rarest non-zero")
m[4].metric("Normalised entropy", num(res.normalized_entropy, ".3f"), help="1 = perfectly balanced")
m[5].metric("Split mix p / V",
            f"{num(res.split_p_value, '.2g')} / {num(res.split_cramers_v, '.2f')}",
            help="chi-square test of homogeneity across splits; Cramér's V = effect size")

# One section per run (not st.tabs, which builds every figure on each rerun: slow at 1e6 boxes).
SECTIONS = ["Classes", "Splits", "Boxes", "Images", "Where objects are", "Annotators", "Checks"]
o1, o2 = st.columns([4, 1])
section = o1.radio("Section", SECTIONS, horizontal=True, key="bal_section")
sort = o2.radio("Sort classes by", ["count", "name"], horizontal=True, key="bal_sort")
if section == "Classes":
    log_y = st.toggle("Log scale", value=False, key="bal_log")
    st.plotly_chart(vb.class_bar(res, sort=sort, log_y=log_y, classes=classes), key="bal_bar")
    st.dataframe(res.per_class, hide_index=True, key="bal_per_class")
elif section == "Splits":
    norm = st.toggle("Shares within each class", value=False, key="bal_split_norm")
    st.plotly_chart(vb.split_bars(res, normalize=norm, sort=sort, classes=classes),
                    key="bal_split_bars")
    st.dataframe(res.empty_by_split, hide_index=True, key="bal_empty")
    st.plotly_chart(vb.objects_per_image_hist(res), key="bal_objects")
elif section == "Boxes":
    if not res.has_boxes:
        st.info("No boxes in this dataset (classification labels): box sizes, aspect ratios and "
                "border flags do not apply.")
    else:
        b1, b2 = st.columns(2)
        b1.plotly_chart(vb.box_area_hist(res, classes=classes), key="bal_area")
        b2.plotly_chart(vb.area_bucket_bars(res, classes=classes, sort=sort), key="bal_buckets")
        b1.plotly_chart(vb.aspect_hist(res, classes=classes), key="bal_aspect")
        b2.plotly_chart(vb.rel_size_hist(res, classes=classes), key="bal_rel")
        st.dataframe(res.box_stats, hide_index=True, key="bal_box_stats")
elif section == "Images":
    i1, i2 = st.columns(2)
    i1.plotly_chart(vb.resolution_scatter(res), key="bal_res")
    i2.plotly_chart(vb.image_aspect_hist(res), key="bal_img_aspect")
    st.dataframe(res.image_sizes, hide_index=True, key="bal_sizes")
elif section == "Where objects are":
    h1, h2 = st.columns(2)
    h1.plotly_chart(vb.center_heatmap(res, classes=classes), key="bal_centres")
    co_norm = h2.toggle("Co-occurrence as P(column | row)", value=False, key="bal_co_norm")
    h2.plotly_chart(vb.cooccurrence_heatmap(res, classes=classes, normalize=co_norm),
                    key="bal_cooc")
elif section == "Annotators":
    if res.annotator_comparison.empty:
        st.info("One annotator: there is no class mix to compare.")
    else:
        value = st.radio("Show", ["share", "instances"], horizontal=True, key="bal_ann_value")
        st.plotly_chart(vb.annotator_bars(res, value=value, classes=classes), key="bal_ann")
        st.dataframe(res.annotator_comparison, hide_index=True, key="bal_ann_table")
elif section == "Checks":
    for c in res.checks:
        icon = {True: ":material/check_circle:", False: ":material/error:",
                None: ":material/remove:"}[c.passed]
        with st.expander(f"{c.name}: {c.message}", expanded=False, icon=icon):
            if c.failing:
                st.write("Failing: " + ", ".join(map(str, c.failing[:50]))
                         + (" ..." if len(c.failing) > 50 else ""))
            if c.image_ids and st.toggle("Show the images", key=f"bal_show_{c.name}"):
                image_gallery(ds, c.image_ids, key=f"bal_gallery_{c.name}",
                              highlight_ann_ids=c.ann_ids or None)
