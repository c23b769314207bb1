"""dataset-qa dashboard: `streamlit run app.py [-- --dataset PATH]`."""

import streamlit as st

from qa.app.picker import dataset_picker

st.set_page_config(page_title="dataset-qa", page_icon=":material/fact_check:", layout="wide")
nav = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/report.py", title="Health report", icon=":material/health_and_safety:"),
    st.Page("pages/balance.py", title="Class balance", icon=":material/bar_chart:"),
    st.Page("pages/agreement.py", title="Annotator agreement", icon=":material/groups:"),
    st.Page("pages/outliers.py", title="Outliers", icon=":material/scatter_plot:"),
    st.Page("pages/duplicates.py", title="Duplicates & leakage", icon=":material/content_copy:"),
    st.Page("pages/quality.py", title="Image quality", icon=":material/image_search:"),
    st.Page("pages/disagreement.py", title="Model disagreement", icon=":material/model_training:"),
    st.Page("pages/review.py", title="Review", icon=":material/rule:"),
    st.Page("pages/select.py", title="Select & split", icon=":material/checklist:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
])
dataset_picker()
nav.run()
