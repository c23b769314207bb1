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


# ------------------------------------------------------------------ outliers (embeddings)
@st.cache_data(show_spinner=False, max_entries=16)
def model_spec(model: str, checkpoint: str | None):
    """:func:`qa.embeddings.resolve_model` (local files only: fast)."""
    from qa.embeddings import resolve_model

    return resolve_model(model, checkpoint=checkpoint or None)


@st.cache_data(show_spinner="Reading stored embeddings ...", max_entries=8)
def stored_embeddings(key: str, _ds: Dataset, model_id: str, model: str,
                      checkpoint: str | None, objects: bool = False):
    """The vectors already in the store for this dataset (computes nothing); clear this
    cache after embedding."""
    from qa.embeddings import embed_images, embed_objects

    embed = embed_objects if objects else embed_images
    return embed(_ds, model=model, checkpoint=checkpoint or None, cached_only=True)


@st.cache_data(show_spinner="Scoring outliers ...", max_entries=16)
def outliers(key: str, _ds: Dataset, _emb, _objects, model_id: str, n: int, n_objects: int,
             method: str, k: int, _stats=None, _duplicates=None):
    """:func:`qa.outliers.compute_outliers` (keyed by model, row counts, method and k), with
    the pixel statistics (the kind of each outlier) and the duplicate clusters (one image per
    group of copies) when given."""
    from qa.outliers import compute_outliers

    return compute_outliers(_ds, _emb, method=method, k=k, objects=_objects, stats=_stats,
                            duplicates=_duplicates)


@st.cache_data(show_spinner="Drawing the map ...", max_entries=16)
def embedding_map(key: str, model_id: str, n: int, method: str, _vectors):
    """:func:`qa.outliers.embedding_map` (the 2-D map is cached per model and method)."""
    from qa.outliers import embedding_map as _map

    return _map(_vectors, method=method)


@st.cache_data(show_spinner=False, max_entries=8)
def image_attributes(key: str, _ds: Dataset, ids: tuple):
    from qa.outliers import image_attributes as _attrs

    return _attrs(_ds, list(ids))


@st.cache_data(show_spinner="Searching ...", max_entries=32)
def text_search(key: str, model_id: str, n: int, query: str, checkpoint: str | None, _emb):
    """:func:`qa.embeddings.text_search` (CLIP only)."""
    from qa.embeddings import text_search as _search

    return _search(_emb, query, checkpoint=checkpoint or None)
@st.cache_data(show_spinner="Reading pixels (hashes and quality statistics) ...", max_entries=4)
def image_stats(key: str, _ds: Dataset):
    """:func:`qa.imagestats.compute_image_stats` (the one pixel pass, cached in the store)."""
    from qa.imagestats import compute_image_stats

    return compute_image_stats(_ds)


@st.cache_data(show_spinner=False, max_entries=16)
def duplicates(key: str, _ds: Dataset, method: str, threshold: float | None,
               n_embedded: int = 0, _emb=None, _progress=None):
    """:func:`qa.duplicates.compute_duplicates` on the cached pixel pass, with the stored
    image embeddings (``n_embedded`` keys them) adding candidates; every candidate is
    verified on the pixels (``_progress(fraction, text)`` while it runs)."""
    from qa.duplicates import compute_duplicates

    return compute_duplicates(_ds, stats=image_stats(key, _ds),
                              embeddings=_emb if n_embedded else None, method=method,
                              threshold=threshold, progress=_progress)


@st.cache_data(show_spinner="Checking image quality ...", max_entries=8)
def quality(key: str, _ds: Dataset):
    """:func:`qa.quality.compute_quality` on the cached pixel pass."""
    from qa.quality import compute_quality

    return compute_quality(_ds, image_stats(key, _ds))


@st.cache_data(show_spinner=False, max_entries=1024)
def thumbnail(key: str, _ds: Dataset, image_id: int, show_boxes: bool = True,
              color_by: str = "annotator"):
    """(thumbnail with every annotator's boxes, error or None) of one image."""
    from qa.viz.boxes import render_image

    return render_image(_ds, int(image_id), show_boxes=show_boxes, color_by=color_by)
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
# --------------------------------------------------------------------------- disagreement
def complete_object_embeddings(key: str, ds: Dataset):
    """The stored object embeddings of the default model when every box has one (the
    Outliers page's "embed the boxes" made them), else None: a partial set is not used."""
    from qa.embeddings import ModelError

    if ds.is_classification or not ds.has_boxes:
        return None
    from qa.store import default_store

    try:
        spec = model_spec("auto", None)
    except ModelError:
        return None
    if not default_store().has_vectors(spec.model_id):  # never embedded: read no image files
        return None
    emb = stored_embeddings(key, ds, spec.model_id, "auto", None, objects=True)
    return emb if len(emb) and not emb.n_not_cached else None


@st.cache_data(show_spinner="Comparing the model with the labels ...", max_entries=8)
def disagreement(key: str, _ds: Dataset, reference: str | None, model: str | None,
                 conf_threshold: float, iou_threshold: float, _objects=None,
                 n_objects: int = 0):
    """:func:`qa.disagreement.compute_disagreement` with the page's thresholds, and the
    object embeddings' second opinion when they are complete (``n_objects`` keys it)."""
    from qa.disagreement import compute_disagreement

    return compute_disagreement(_ds, reference=reference, model=model,
                                conf_threshold=conf_threshold, iou_threshold=iou_threshold,
                                objects=_objects)


@st.cache_data(show_spinner="Evaluating the model ...", max_entries=8)
def detection_metrics(key: str, _ds: Dataset, reference: str | None, model: str | None,
                      conf_threshold: float):
    """:func:`qa.evaluation.evaluate_detections` (COCO metrics equal to pycocotools')."""
    from qa.evaluation import evaluate_detections

    return evaluate_detections(_ds, model=model, reference=reference,
                               conf_threshold=conf_threshold)


@st.cache_data(show_spinner="Preparing the export ...", max_entries=8)
def disagreement_exports(key: str, _ds: Dataset, reference: str | None, model: str | None,
                         conf_threshold: float, iou_threshold: float, _objects=None,
                         n_objects: int = 0) -> dict[str, bytes]:
    """The review queue as downloadable files: {"csv", "coco", "labelstudio"} -> bytes."""
    import json

    from qa.io.export import flagged_coco, labelstudio_tasks, queue_csv

    res = disagreement(key, _ds, reference, model, conf_threshold, iou_threshold, _objects,
                       n_objects)
    out = {"csv": queue_csv(_ds, res),
           "coco": json.dumps(flagged_coco(_ds, res)).encode()}
    if not res.is_classification:
        out["labelstudio"] = json.dumps(labelstudio_tasks(_ds, res)[0], indent=1).encode()
    return out
