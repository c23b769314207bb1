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


@st.cache_data(show_spinner="Collecting every analysis' findings ...", max_entries=4)
def review_items(key: str, _ds: Dataset):
    """(every analysis' findings, their item keys) for the review queue: the slow part, done
    once per dataset. Embeddings only from the store (opening the queue never embeds); the
    decisions are read fresh on every rerun by :func:`qa.review.build_queue`."""
    import warnings

    from qa.review import collect_findings, item_keys

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        findings = collect_findings(_ds, embeddings="cached")
    return findings, item_keys(_ds, findings)


@st.cache_data(show_spinner=False, max_entries=64)
def review_image(key: str, _ds: Dataset, item_key: str, _item: dict):
    """The review item's image with its evidence drawn (:func:`qa.viz.review.item_image`)."""
    from qa.viz.review import item_image

    return item_image(_ds, _item)
