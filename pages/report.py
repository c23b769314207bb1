"""Health report: the score, what fails, where the evidence is, and the trend. A manager's
first page; the files (HTML, PDF, JSON) are the same as `dataset-qa report` writes."""

import streamlit as st

from qa.app import cached
from qa.app.state import dataset_key, require_dataset
from qa.report import STATUSES
from qa.viz import report as vr

ds = require_dataset()
st.title("Health report")

c1, c2 = st.columns([1, 3])
emb = c1.selectbox("Embeddings", ["cached", "skip", "auto"], key="rep_embeddings",
                   help="cached: use vectors already computed (`dataset-qa embed`); auto may "
                        "take minutes on a large dataset; skip: no outliers/duplicates checks.")
key = dataset_key()
report = cached.health_report(key, ds, emb)
history = cached.report_history(key, report, report.created)

counts = report.status_counts()
c2.caption(f"{counts['fail']} failed · {counts['warn']} warnings · {counts['pass']} passed · "
           f"{counts['skipped']} skipped (could not run: not counted) · {report.created}")
m = st.columns(1 + len(report.area_scores))
for col, kw in zip(m, vr.score_metrics(report, history)):
    col.metric(**kw)
rv = report.review
if rv.get("error"):
    st.warning(rv["error"])
elif rv.get("available"):
    who = ", ".join(f"{k}: {v}" for k, v in rv.get("by", {}).items())
    st.caption(f"Reviewers dismissed {rv['n_dismissed']} finding(s) as not an issue"
               + (f" ({who})" if who else "") + "; they are left out of the evidence.")

shown = st.multiselect("Show checks", list(STATUSES), default=list(STATUSES),
                       key="rep_statuses")
st.dataframe(vr.traffic_lights(vr.checks_table(report, statuses=shown)), hide_index=True,
             key="rep_table",
             column_config={
                 "link": st.column_config.LinkColumn("evidence in the app",
                                                     display_text="open evidence"),
                 "value": st.column_config.NumberColumn(format="%.3g"),
                 "points lost": st.column_config.NumberColumn(format="%.1f"),
                 "action / reason": st.column_config.TextColumn(width="large"),
                 "how measured": st.column_config.TextColumn(width="large")})
with st.expander("What to do, and how each value was obtained", expanded=True):
    st.markdown(vr.actions_markdown(report))

g1, g2 = st.columns(2)
g1.plotly_chart(vr.area_scores_bar(report), key="rep_areas")
g2.plotly_chart(vr.points_lost_bar(report), key="rep_points")
if history is not None and len(history) > 1:
    st.plotly_chart(vr.trend_line(history), key="rep_trend")
else:
    st.caption("The trend appears once this dataset has an earlier report "
               "(each new result is kept in the workspace, outside the dataset).")

with st.expander("How the score is computed", expanded=False):
    st.table(vr.explanation_table(report).set_index("check"))  # wraps long text

name = (report.dataset.get("name") or "dataset").replace(" ", "_")
d1, d2, d3 = st.columns(3)
for col, f, mime in ((d1, "html", "text/html"), (d2, "pdf", "application/pdf"),
                     (d3, "json", "application/json")):
    col.download_button(f"Download {f.upper()}", key=f"rep_dl_{f}", mime=mime,
                        file_name=f"{name}-health-report.{f}", on_click="ignore",
                        data=lambda f=f: cached.report_file(key, report, report.created, f,
                                                            history, ds))
