"""Session state of the dashboard: which dataset is loaded, and its cache key.

Pages call :func:`require_dataset` and pass :func:`dataset_key` as the first argument of the
``st.cache_data`` wrappers in :mod:`qa.app.cached` (the Dataset itself is passed as an
underscore argument, which Streamlit does not hash).
"""

from __future__ import annotations

import streamlit as st

from qa.dataset import Dataset

# st.session_state keys (one place, so pages never spell them)
KEY_DATASET = "qa_dataset"  # the loaded Dataset
KEY_DATASET_KEY = "qa_dataset_key"  # str: source + mtime, the cache key of the analyses
KEY_LOAD_ERROR = "qa_load_error"  # str: the message of the last failed load
KEY_LOAD_WARNINGS = "qa_load_warnings"  # list[str]: parts of the dataset that did not load


# Widget keys that survive a dataset change; every other widget (filters, annotator
# choices, gallery pages ...) is reset, since its options belong to the old dataset.
KEEP_PREFIXES = ("qa_", "picker_")


def set_dataset(ds: Dataset | None, key: str | None) -> None:
    if key != st.session_state.get(KEY_DATASET_KEY):
        for k in [k for k in st.session_state if not str(k).startswith(KEEP_PREFIXES)]:
            del st.session_state[k]
    st.session_state[KEY_DATASET] = ds
    st.session_state[KEY_DATASET_KEY] = key


def widget_default(key: str, value) -> None:
    """Give a widget whose options come from the dataset its starting value through session
    state (pass no default= to the widget itself). A keyed multiselect/selectbox keeps its
    identity in the browser when only its options change, so after a dataset switch the
    browser would show the old dataset's choices; a value set here is pushed to the browser."""
    if key not in st.session_state:
        st.session_state[key] = value


def current_dataset() -> Dataset | None:
    return st.session_state.get(KEY_DATASET)


def dataset_key() -> str:
    return st.session_state.get(KEY_DATASET_KEY) or ""


def _run_through_entrypoint() -> None:
    """Make a deep link (``/agreement``) opened before any session ran app.py go through it.

    Streamlit treats an app with a ``pages/`` folder as a v1 multipage app until the
    entrypoint has called ``st.navigation`` once in the process; until then a deep link runs
    the page file alone, without the sidebar picker. Flip that flag and rerun, so app.py runs
    and routes to the same page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without the v1 mode: nothing to do
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def require_dataset() -> Dataset:
    """The loaded Dataset; otherwise explain on the page and stop rendering it (the picker
    has already shown any load error)."""
    _run_through_entrypoint()
    ds = current_dataset()
    if ds is None:
        st.info("Choose a dataset in the sidebar to start.")
        st.stop()
    return ds


def focus() -> tuple[list[int] | None, str | None]:
    """The evidence a deep link asks a page to show (``?image_id=3,7&kind=leakage``, built by
    :func:`qa.results.page_link`): (image ids or None, kind or None). Pages that receive image
    ids show only those images, with a note and a way back to the whole dataset."""
    params = st.query_params
    ids = None
    raw = params.get("image_id")
    if raw:
        try:
            ids = [int(v) for v in str(raw).split(",") if v.strip()]
        except ValueError:
            ids = None
    kind = params.get("kind") or None
    return ids, kind


def clear_focus() -> None:
    """Drop the deep-link filter (the "show the whole dataset" button)."""
    for k in ("image_id", "kind"):
        if k in st.query_params:
            del st.query_params[k]
