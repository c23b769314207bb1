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


# --------------------------------------------------------------------------- disagreement
@st.cache_data(show_spinner="Comparing the model with the labels ...", max_entries=8)
def disagreement(key: str, _ds: Dataset, reference: str | None, model: str | None,
                 conf_threshold: float, iou_threshold: float):
    """:func:`qa.disagreement.compute_disagreement` with the page's thresholds."""
    from qa.disagreement import compute_disagreement

    return compute_disagreement(_ds, reference=reference, model=model,
                                conf_threshold=conf_threshold, iou_threshold=iou_threshold)


@st.cache_data(show_spinner="Evaluating the model ...", max_entries=8)
def detection_metrics(key: str, _ds: Dataset, reference: str | None, model: str | None,
                      conf_threshold: float):
    """:func:`qa.evaluation.evaluate_detections` (COCO metrics equal to pycocotools')."""
    from qa.evaluation import evaluate_detections

    return evaluate_detections(_ds, model=model, reference=reference,
                               conf_threshold=conf_threshold)


@st.cache_data(show_spinner="Preparing the export ...", max_entries=8)
def disagreement_exports(key: str, _ds: Dataset, reference: str | None, model: str | None,
                         conf_threshold: float, iou_threshold: float) -> dict[str, bytes]:
    """The review queue as downloadable files: {"csv", "coco", "labelstudio"} -> bytes."""
    import json

    from qa.io.export import flagged_coco, labelstudio_tasks, queue_csv

    res = disagreement(key, _ds, reference, model, conf_threshold, iou_threshold)
    out = {"csv": queue_csv(_ds, res),
           "coco": json.dumps(flagged_coco(_ds, res)).encode()}
    if not res.is_classification:
        out["labelstudio"] = json.dumps(labelstudio_tasks(_ds, res)[0], indent=1).encode()
    return out
