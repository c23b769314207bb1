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
    from qa.validation import validate

    return validate(_ds)


@st.cache_data(show_spinner=False, max_entries=32)
def filter_issues(key: str, _report, severities: tuple, checks: tuple):
    df = _report.issues
    df = df[df["severity"].isin(severities)] if severities else df
    return df[df["check"].isin(checks)] if checks else df


@st.cache_data(show_spinner=False, max_entries=8)
def gallery_ids(key: str, _ds: Dataset, _report, all_images: bool) -> list[int]:
    if all_images:
        return _ds.images["image_id"].tolist()
    ids = _report.issues["image_id"].dropna().astype(int)
    return list(dict.fromkeys(ids.tolist()))


@st.cache_data(show_spinner="Computing class balance ...", max_entries=8)
def class_balance(key: str, _ds: Dataset, annotator: str | None = None,
                  splits: tuple[str, ...] | None = None, min_box_side: float = 8.0):
    """:func:`qa.balance.compute_class_balance` (None annotator: the one with most labels;
    undefined-statistic warnings are silenced: the page shows the result's notes)."""
    import warnings

    from qa.balance import BalanceWarning, compute_class_balance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BalanceWarning)
        return compute_class_balance(_ds, annotator=annotator, splits=splits,
                                     min_box_side=min_box_side)


@st.cache_data(show_spinner="Comparing annotators ...", max_entries=8)
def agreement(key: str, _ds: Dataset, iou_threshold: float, iou_type: str = "bbox"):
    """:func:`qa.agreement.compute_agreement` (warnings, e.g. one annotator, are silenced: the
    page explains them)."""
    import warnings

    from qa.agreement import AgreementWarning, compute_agreement

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AgreementWarning)
        return compute_agreement(_ds, iou_threshold=iou_threshold, iou_type=iou_type)


@st.cache_data(show_spinner=False, max_entries=8)
def annotator_summary(key: str, _ds: Dataset):
    from qa.agreement import annotator_summary as _summary

    return _summary(_ds)


@st.cache_data(show_spinner="Building the health report ...", max_entries=4)
def health_report(key: str, _ds: Dataset, embeddings: str = "cached",
                  config_path: str | None = None):
    """:func:`qa.report.build_report` with every analysis (``embeddings``: "cached" uses only
    vectors already in the store, so the page never starts a long embedding run)."""
    import warnings

    from qa.report import build_report, load_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_report(_ds, load_config(config_path), embeddings=embeddings)


@st.cache_data(show_spinner=False, max_entries=4)
def report_history(key: str, _report, created: str):
    """Add the report to its dataset's history (once per report: ``created`` keys the
    cache) and return the history (:func:`qa.report.history.load_history`)."""
    from qa.report.history import load_history, save_report

    if not (_report.dataset or {}).get("key"):
        return None
    save_report(_report)
    return load_history(_report.dataset["key"])


@st.cache_data(show_spinner="Writing the report ...", max_entries=12)
def report_file(key: str, _report, created: str, fmt: str, _history=None) -> bytes:
    """The report as ``fmt`` ("html", "pdf" or "json") bytes."""
    if fmt == "json":
        from qa.report.export import report_json

        return report_json(_report)
    if fmt == "html":
        from qa.report.html import render_html

        return render_html(_report, history=_history).encode("utf-8")
    if fmt == "pdf":
        from qa.report.pdf import render_pdf

        return render_pdf(_report, history=_history)
    raise ValueError(f"unknown report format {fmt!r}; use html, pdf or json")
