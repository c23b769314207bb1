"""Overview: the counts, the validation report and a gallery of labelled images."""

import streamlit as st

from qa.app import cached
from qa.app.state import dataset_key, require_dataset, widget_default
from qa.app.widgets import image_gallery, linked_evidence

ds = require_dataset()
s = ds.summary()
st.title(f"Overview: {s['name'] or 'dataset'}")
st.caption(f"Format **{s['format']}** · root `{s['root']}`")

c = st.columns(7)
c[0].metric("Images", f"{s['images']:,}")
c[1].metric("Annotations", f"{s['annotations']:,}")
c[2].metric("Annotators", len(s["annotators"]))
c[3].metric("Classes", s["classes"])
named = [k for k in s["splits"] if k != "none"]
c[4].metric("Splits", len(named) or "none", help=None if named else
            "the images carry no train/val/test split")
c[5].metric("Predictions", f"{s['predictions']:,}")
c[6].metric("Models", len(s["models"]))
st.caption(" · ".join(f"{k}: {v:,} images" for k, v in s["splits"].items())
           + " · annotators: " + ", ".join(s["annotators"]))

linked = linked_evidence(ds, key="ov")
st.subheader("Validation report")
report = cached.validation_report(dataset_key(), ds)
if report.issues.empty:
    st.success("No problems found in the labels or the image files.")
else:
    st.write(f"**{report.n_errors}** errors, **{report.n_warnings}** warnings.")
    f1, f2 = st.columns(2)
    sev = f1.multiselect("Severity", ["error", "warning", "info"], default=["error", "warning"],
                         key="ov_severity")
    checks = f2.multiselect("Check", sorted(report.issues["check"].unique()), key="ov_checks")
    table = cached.filter_issues(dataset_key(), report, tuple(sev), tuple(checks))
    if linked:
        table = table[table["image_id"].isin(linked)]
    readable = cached.readable_issues(dataset_key(), ds, table)
    if len(readable) <= 30:  # a static table wraps the text: every message read whole
        st.table(readable.set_index("file"))
    else:
        st.dataframe(readable, hide_index=True, width="stretch", key="ov_issues",
                     column_config={"problem": st.column_config.TextColumn(width="large")})
        with st.expander(f"Read the first 30 of {len(readable):,} in full"):
            st.table(readable.head(30).set_index("file"))
    st.download_button("Download report (CSV)", table.to_csv(index=False), "validation.csv",
                       key="ov_download")

st.subheader("Gallery")
g1, g2, g3 = st.columns([3, 2, 1])
widget_default("ov_annotators", list(ds.annotators))
annotators = g1.multiselect("Annotators", list(ds.annotators), key="ov_annotators")
order = g2.selectbox("Show", ["all images", "images with validation problems"], key="ov_show")
preds = g3.toggle("Predictions", value=False, key="ov_preds", disabled=ds.predictions.empty)
ids = cached.gallery_ids(dataset_key(), ds, report, order == "all images")
image_gallery(ds, ids, key="ov_gallery", annotators=tuple(annotators), show_predictions=preds)
