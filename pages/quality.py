"""Image quality: dark, overexposed, blurry, near-blank, grey, odd-shaped and tiny images."""

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
from qa.quality import CHECKS, SCORES, rules_table
from qa.viz import quality as vq

ds = require_dataset()
st.title("Image quality")
res = cached.quality(dataset_key(), ds)
for note in res.notes:
    st.caption(note)

m = res.metrics()
st.metric("Images flagged", f"{m['n_flagged']:,}",
          help="images with at least one flag" if m["flagged_share"] is None else
          f"{m['flagged_share']:.1%} of the readable images")
cols = st.columns(len(CHECKS))
for col, check in zip(cols, CHECKS):
    n = int(res.counts.set_index("check").at[check, "flagged"])
    col.metric(vq.LABELS[check], n, help=f"score: {SCORES[check]}")
st.plotly_chart(vq.counts_bar(res), key="qual_counts")

focus_ids, focus_kind = focus()
default = focus_kind if focus_kind in CHECKS else next(
    (c for c in CHECKS if res.metrics().get(f"n_{c}", 0)), CHECKS[0])
widget_default("qual_check", default)
check = st.selectbox("Check", CHECKS, format_func=vq.LABELS.get, key="qual_check")
st.plotly_chart(vq.check_hist(res, check), key="qual_hist")

st.subheader(f"Worst images: {vq.LABELS[check].lower()}")
worst = res.flagged_table(check, image_ids=focus_ids)
if focus_ids:
    st.info(f"Showing {len(focus_ids)} image(s) from a link.")
    st.button("Show the whole dataset", on_click=clear_focus, key="qual_clear_focus")
if worst.empty:
    st.success("No image is flagged by this check.")
else:
    image_gallery(ds, worst["image_id"].tolist(), key=f"qual_gallery_{check}", max_images=12,
                  captions=[f"score {s:.2f}" for s in worst[f"score_{check}"]])
    st.dataframe(worst, hide_index=True, key="qual_table")
with st.expander("The rules (s = 1.4826 x MAD, a robust standard deviation)",
                 icon=":material/rule:"):
    st.dataframe(rules_table(), hide_index=True, key="qual_rules")
