"""Cached wrappers around qa's analyses for the pages.

Pattern: the first argument is ``key`` (``qa.app.state.dataset_key()``, a string Streamlit
hashes cheaply); the Dataset is passed as ``_ds`` (underscore: not hashed). Result tables use
``st.cache_data``; models and indexes ``st.cache_resource``. Append new wrappers at the end.
"""

from __future__ import annotations

import streamlit as st

from qa.dataset import Dataset


@st.cache_data(show_spinner="Validating ...", max_entries=8)
def validation_report(key: str, _ds: Dataset):
    from qa.validate import validate

    return validate(_ds)
