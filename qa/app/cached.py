"""Cached wrappers around qa's analyses for the pages.

Pattern: the first argument is ``key`` (``qa.app.state.dataset_key()``, a string Streamlit
hashes cheaply); the Dataset is passed as ``_ds`` (underscore: not hashed). Small result
tables use ``st.cache_data``; models and indexes ``st.cache_resource``.

The analyses that several pages share (validation, agreement, disagreement, the health report,
the review queue) are kept once per loaded Dataset object in its memo (:mod:`qa.memo`), not in
``st.cache_data``: one object for every page and session (cache_data would copy a million-row
result on every rerun) and one computation even when two pages ask at once. Their first
computation runs in the background with a progress bar (:mod:`qa.app.jobs`).
"""

from __future__ import annotations

import threading
import weakref

import streamlit as st

from qa.app import jobs
from qa.dataset import Dataset


def validation_report(key: str, _ds: Dataset):
    """:func:`qa.validation.validate`, once per dataset: the same report object the health
    report and the review queue read (:func:`analysis`)."""
    run = analysis(key, _ds, "validation", title="Validating the labels")
    if "validation" in run.results:
        return run.results["validation"]
    raise RuntimeError(f"validation failed: {run.errors.get('validation')}")


@st.cache_data(show_spinner=False, max_entries=32)
def filter_issues(key: str, _report, severities: tuple, checks: tuple):
    df = _report.issues
    df = df[df["severity"].isin(severities)] if severities else df
    return df[df["check"].isin(checks)] if checks else df


@st.cache_resource(show_spinner=False, max_entries=8)
def file_names(key: str, _ds: Dataset) -> dict[int, str]:
    """image_id -> file name: what a caption shows (the internal id starts at 0 on one
    format and 1 on another, so a '#id' reads differently per dataset)."""
    return dict(zip(_ds.images["image_id"].astype(int).tolist(),
                    _ds.images["file_name"].astype(str).tolist()))


@st.cache_data(show_spinner=False, max_entries=32)
def readable_issues(key: str, _ds: Dataset, issues):
    """:func:`qa.validation.readable_issues` of the filtered table (hashed by value)."""
    from qa.validation import readable_issues as readable

    return readable(issues, _ds)


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


def agreement(key: str, _ds: Dataset, iou_threshold: float, iou_type: str = "bbox"):
    """:func:`qa.agreement.compute_agreement`, once per dataset and settings (the default one
    is also the disagreement consensus' reference); warnings, e.g. one annotator, are
    silenced: the page explains them."""
    import warnings

    from qa.agreement import AgreementWarning, compute_agreement

    def compute(progress):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AgreementWarning)
            return compute_agreement(_ds, iou_threshold=iou_threshold, iou_type=iou_type,
                                     progress=progress)

    shared(_ds)
    return jobs.wait_for((key, "agreement", float(iou_threshold), iou_type),
                         "Comparing annotators", compute)


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


def health_report(key: str, _ds: Dataset, embeddings: str = "cached",
                  config_path: str | None = None):
    """:func:`qa.report.build_report` over the dataset's shared analyses (the review queue
    reads the same ones), once per dataset, embeddings mode, configuration and number of
    review decisions (a new dismissal changes the report). ``embeddings``: "cached" uses only
    vectors already in the store, so the page never starts a long embedding run."""
    from qa.report import load_config

    config = load_config(config_path)
    n_decisions = _decision_count()
    shared(_ds)
    return jobs.wait_for((key, "health_report", embeddings, config_path, n_decisions),
                         "Building the health report", lambda progress: _build_report(
                             _ds, embeddings, config, config_path, n_decisions, progress))


def _build_report(ds: Dataset, embeddings: str, config, config_path, n_decisions, progress):
    """The health report over the shared analyses, kept in the dataset's memo (runs in a
    background job: no Streamlit)."""
    import warnings

    from qa.analyses import run_analyses
    from qa.memo import remembered
    from qa.report import build_report

    def build():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = run_analyses(ds, embeddings=embeddings,
                               progress=lambda f, m: progress(0.8 * f, m))
            progress(0.8, "scoring the checks")
            return build_report(run, config, thumbnails=0)  # added for the HTML download

    return remembered(ds, ("health_report", embeddings, config_path, n_decisions), build)


def _decision_count() -> int | None:
    """How many review decisions the database holds (None when it cannot be opened)."""
    from qa.review import ReviewDatabaseError

    try:
        return review_store(_review_url()).count()
    except (ReviewDatabaseError, ValueError):
        return None


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
def report_file(key: str, _report, created: str, fmt: str, _history=None,
                _ds: Dataset | None = None) -> bytes:
    """The report as ``fmt`` ("html", "pdf" or "json") bytes; the HTML with the evidence
    thumbnails of ``_ds`` (made only when it is downloaded)."""
    if fmt == "json":
        from qa.report.export import report_json

        return report_json(_report)
    if fmt == "html":
        from qa.report.html import render_html

        from qa.report.core import add_thumbnails

        return render_html(add_thumbnails(_report, _ds),
                           history=_history).encode("utf-8")
    if fmt == "pdf":
        from qa.report.pdf import render_pdf

        return render_pdf(_report, history=_history)
    raise ValueError(f"unknown report format {fmt!r}; use html, pdf or json")


def _review_url() -> str:
    from qa.review import default_url

    return default_url()


@st.cache_resource(show_spinner=False, max_entries=4)
def review_store(url: str):
    """The decisions database at ``url`` (one engine per server, not one per rerun)."""
    from qa.review import ReviewStore

    return ReviewStore(url)


def review_queue(key: str, _ds: Dataset):
    """The dataset's :class:`qa.review.ReviewQueue`: every analysis' findings (the health
    report's), built once per dataset and decisions database; decisions are applied to it,
    never rebuilding it. Embeddings only from the store (opening the queue never embeds)."""
    import warnings

    from qa.analyses import run_analyses
    from qa.memo import remembered
    from qa.review.queue import ReviewQueue

    url = _review_url()
    store = review_store(url)
    memo = shared(_ds)
    return jobs.wait_for((key, "review_queue", url, memo.generation),
                         "Building the review queue",
                         lambda progress: _build_queue(_ds, url, store, progress))


def _build_queue(ds: Dataset, url: str, store, progress):
    """The dataset's ReviewQueue from the shared analyses (kept in its memo); runs in a
    background job, so it calls no Streamlit."""
    import warnings

    from qa.analyses import run_analyses
    from qa.memo import remembered
    from qa.review.queue import ReviewQueue

    def build():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = run_analyses(ds, embeddings="cached",
                               progress=lambda f, m: progress(0.8 * f, m))
        progress(0.8, "keying the findings and reading the decisions")
        return ReviewQueue(ds, run.findings(), store=store)

    return remembered(ds, ("review_queue", url, shared(ds).generation), build)


def review_progress(queue):
    """(progress-by-kind figure, reviewer table) of a ReviewQueue, made once per state of its
    decisions (``queue.version``): a filter or a move to the next item redraws nothing."""
    return derived(queue, _review_progress, queue, queue.version)


def _review_progress(queue, version: int):
    from qa.review import reviewer_counts
    from qa.viz.review import progress_by_kind

    items = queue.first_rows(columns=("item_key", "kind", "status", "decided_by"))
    return progress_by_kind(items), reviewer_counts(items[items["status"] != "open"])


#: Set to 0 to compute nothing before a page asks for it.
WARM_UP_ENV = "DATASET_QA_WARM_UP"


def warm_up(key: str, ds: Dataset) -> None:
    """Start, in the background, what the pages that read every analysis need (the health
    report, the review queue, the disagreement page at its defaults), right after a dataset
    is loaded: while the user reads the Overview, it is being computed (a page that needs it
    earlier waits for the same computation with a progress bar). ``$DATASET_QA_WARM_UP=0``
    turns it off."""
    import os

    if os.environ.get(WARM_UP_ENV, "1") == "0":
        return
    from qa.review import ReviewDatabaseError

    from qa.report import load_config

    shared(ds)
    try:
        url = _review_url()
        store = review_store(url)
    except (ReviewDatabaseError, ValueError):  # the Review page will say why
        url = store = None
    config, n_decisions = load_config(None), _decision_count()

    def run(progress):
        import warnings

        from qa.analyses import run_analyses

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_analyses(ds, embeddings="cached", progress=lambda f, m: progress(0.7 * f, m))
        if store is not None:  # the queue first: it keys the findings the report reuses
            _build_queue(ds, url, store, lambda f, m: progress(0.7 + 0.2 * f, m))
        _build_report(ds, "cached", config, None, n_decisions,
                      lambda f, m: progress(0.85 + 0.1 * f, m))
        if ds.models and ds.has_boxes and not ds.is_classification:
            # the disagreement page's Metrics tab at its default settings
            from qa.disagreement import CONSENSUS, DEFAULT_CONF_THRESHOLD

            progress(0.95, "evaluating the model")
            reference = CONSENSUS if len(ds.annotators) > 1 else ds.annotators[0]
            try:
                _metrics(ds, reference, ds.models[0], DEFAULT_CONF_THRESHOLD)
            except ValueError:  # the page says why when it is opened
                pass
        progress(1.0, "done")

    jobs.start((key, "warm_up"), "Preparing every analysis", run)


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


def _runner_settings(ds: Dataset, reference: str | None, model: str | None,
                     conf_threshold: float, iou_threshold: float) -> bool:
    """Whether the page's settings are those of the disagreement analysis that the health
    report and the review queue run (then they share one result)."""
    from qa.disagreement import DEFAULT_CONF_THRESHOLD, reference_names
    from qa.geometry import DEFAULT_IOU_THRESHOLD

    try:
        same_ref = reference_names(ds, reference)[0] == reference_names(ds, None)[0]
    except ValueError:
        return False
    return (same_ref and ds.models and (model or ds.models[0]) == ds.models[0]
            and abs(conf_threshold - DEFAULT_CONF_THRESHOLD) < 1e-9
            and abs(iou_threshold - DEFAULT_IOU_THRESHOLD) < 1e-9)


def disagreement(key: str, _ds: Dataset, reference: str | None, model: str | None,
                 conf_threshold: float, iou_threshold: float, _objects=None,
                 n_objects: int = 0):
    """:func:`qa.disagreement.compute_disagreement` with the page's thresholds, and the
    object embeddings' second opinion when they are complete (``n_objects`` keys it). With
    the default settings it is the result the health report and the review queue use."""
    from qa.disagreement import compute_disagreement
    from qa.memo import remembered

    title = "Comparing the model with the labels"
    if _runner_settings(_ds, reference, model, conf_threshold, iou_threshold):
        run = analysis(key, _ds, "disagreement", title=title)
        used = run.context.computed("objects") if run.context is not None else None
        if (len(used) if used is not None else 0) == n_objects:  # the same second opinion
            if "disagreement" in run.results:
                return run.results["disagreement"]
            raise ValueError(run.errors.get("disagreement") or run.skipped.get("disagreement"))
    settings = ("disagreement", reference, model, float(conf_threshold), float(iou_threshold),
                n_objects)

    def compute(progress):
        return remembered(_ds, settings, lambda: compute_disagreement(
            _ds, reference=reference, model=model, conf_threshold=conf_threshold,
            iou_threshold=iou_threshold, objects=_objects, progress=progress))

    shared(_ds)
    return jobs.wait_for((key, *settings), title, compute)


def detection_metrics(key: str, _ds: Dataset, reference: str | None, model: str | None,
                      conf_threshold: float):
    """:func:`qa.evaluation.evaluate_detections` (COCO metrics equal to pycocotools'), once
    per dataset and settings."""
    settings = ("detection_metrics", reference, model, float(conf_threshold))
    shared(_ds)
    return jobs.wait_for((key, *settings), "Evaluating the model",
                         lambda progress: _metrics(_ds, reference, model, conf_threshold))


def _metrics(ds: Dataset, reference, model, conf_threshold):
    from qa.evaluation import evaluate_detections
    from qa.memo import remembered

    return remembered(ds, ("detection_metrics", reference, model, float(conf_threshold)),
                      lambda: evaluate_detections(ds, model=model, reference=reference,
                                                  conf_threshold=conf_threshold))


def disagreement_file(_ds: Dataset, _res, fmt: str) -> bytes:
    """One export of a disagreement result as bytes ("csv", "coco" or "labelstudio"), made
    when the user clicks its download button (pass it as a callable: the page never builds
    the files it only offers)."""
    import json

    from qa.io.export import flagged_coco, labelstudio_tasks, queue_csv

    if fmt == "csv":
        return queue_csv(_ds, _res)
    if fmt == "coco":
        return json.dumps(flagged_coco(_ds, _res)).encode()
    if fmt == "labelstudio":
        return json.dumps(labelstudio_tasks(_ds, _res)[0], indent=1).encode()
    raise ValueError(f"unknown export {fmt!r}; use csv, coco or labelstudio")


# ------------------------------------------------------------ shared work, once per dataset
def shared(ds: Dataset):
    """Opt the loaded dataset in to :mod:`qa.memo` (idempotent): every page, session and
    background job then shares its results. Returns its memo."""
    from qa.memo import share_results

    return share_results(ds)


def analysis(key: str, ds: Dataset, name: str, *, embeddings: str = "cached",
             title: str | None = None):
    """The :class:`qa.analyses.AnalysisRun` of analysis ``name`` alone, as the health report
    and the review queue run it (the same result object), computed once per dataset in the
    background; look in ``.results`` / ``.skipped`` / ``.errors``."""
    import warnings

    from qa.analyses import run_analyses

    def compute(progress):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run_analyses(ds, only=[name], embeddings=embeddings, progress=progress)

    shared(ds)
    return jobs.wait_for((key, "analysis", name, embeddings), title or f"Running {name}",
                         compute)


def forget_embedding_results(ds: Dataset) -> None:
    """After an embedding run: forget the shared results that read embeddings (outliers,
    duplicates, the disagreement's second opinion, the report and the queue built on them);
    the rest (agreement, validation ...) stays."""
    from qa.analyses import READS_EMBEDDINGS

    def stale(k) -> bool:
        if not isinstance(k, tuple) or not k:
            return False
        return (k[0] == "analysis" and k[1] in READS_EMBEDDINGS) or k[0] in (
            "run_inputs", "health_report", "review_queue", "disagreement")

    shared(ds).discard(stale)


# ------------------------------------------------------------- made from a shared result
_DERIVED: dict[int, dict] = {}
_DERIVED_LOCK = threading.Lock()


def derived(owner, fn, *args):
    """``fn(*args)`` made once per ``owner`` (a shared result object) and arguments: a figure
    or a table a page draws from a result on every rerun (80 PR curves, a confusion matrix
    over 400k consensus objects). Kept as long as ``owner`` lives; ``args`` must be hashable
    or ``owner`` itself, and ``fn`` a function or a method of ``owner``."""
    fn_key = (fn.__func__, id(fn.__self__)) if hasattr(fn, "__self__") and hasattr(
        fn, "__func__") else fn  # a bound method: its object by identity
    key = (fn_key, *(id(a) if a is owner else a for a in args))
    with _DERIVED_LOCK:
        table = _DERIVED.get(id(owner))
        if table is not None and key in table:
            return table[key]
    value = fn(*args)
    with _DERIVED_LOCK:
        table = _DERIVED.get(id(owner))
        if table is None:
            table = _DERIVED[id(owner)] = {}
            weakref.finalize(owner, _DERIVED.pop, id(owner), None)
        table[key] = value
    return value
