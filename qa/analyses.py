"""Run every analysis on a dataset, sharing the expensive inputs: the one place that knows
which analyses exist.

The health report and the review queue read *all* analyses; the CLI and the pages read one.
Each analysis module exposes ``run_analysis(dataset, ctx: RunContext) -> result`` where the
result implements :class:`qa.results.AnalysisResult`, or raises :class:`Skip` with a reason a
manager can read ("one annotator: agreement needs two"). The module is imported lazily, so an
analysis whose dependencies are missing is skipped with the import error as its reason instead
of breaking the others.

Shared inputs are computed at most once per run through the context: ``ctx.embeddings()``
(image embeddings, obeying ``embeddings="auto" | "cached" | "skip"``) and
``ctx.image_stats()`` (the one pixel pass).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qa.dataset import Dataset
from qa.memo import remembered, sharing
from qa.results import concat_findings

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

#: analysis name -> "module:function". Order = the order they run and are reported in.
RUNNERS: dict[str, str] = {
    "validation": "qa.validation:run_analysis",
    "balance": "qa.balance:run_analysis",
    "agreement": "qa.agreement:run_analysis",
    "outliers": "qa.outliers:run_analysis",
    "duplicates": "qa.duplicates:run_analysis",
    "quality": "qa.quality:run_analysis",
    "disagreement": "qa.disagreement:run_analysis",
    "drift": "qa.drift:run_analysis",  # skipped unless a reference dataset is configured
}

#: Analyses whose result changes when image or object embeddings are added to the store (what
#: the app forgets after an embedding run).
READS_EMBEDDINGS = ("outliers", "duplicates", "disagreement")

#: ``embeddings=`` modes: compute what is missing / use only what the store already has /
#: never embed (analyses that need vectors are skipped).
EMBEDDING_MODES = ("auto", "cached", "skip")


class Skip(Exception):
    """Raised by a runner when its analysis cannot run on this dataset; the message is the
    reason shown in the report ("no predictions", "one annotator")."""


@dataclass
class RunContext:
    """Options and memoised shared inputs for one run over one dataset."""

    dataset: Dataset
    embeddings_mode: str = "auto"
    model: str = "auto"
    embed_objects: bool = False
    progress: ProgressFn = field(default=lambda frac, msg: None)
    ray: str | None = None  # a Ray cluster for the per-image work (qa.distributed)
    layout: str | None = None  # where the cluster keeps its results
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def option(self, analysis: str, name: str, default: Any = None) -> Any:
        """A per-analysis option (``options={"duplicates": {"threshold": 0.95}}``)."""
        return self.options.get(analysis, {}).get(name, default)

    def computed(self, name: str) -> Any:
        """A shared input already computed in this run ("embeddings", "objects",
        "image_stats"), else None: computes nothing."""
        value = self._memo.get(name)
        return None if isinstance(value, Skip) else value

    def embeddings(self):
        """The dataset's image embeddings (:class:`qa.embeddings.Embeddings`), computed once.

        Raises :class:`Skip` when ``embeddings_mode="skip"``, or when it is ``"cached"`` and
        the store holds vectors for none, or only some, of the readable images."""
        if "embeddings" not in self._memo:
            self._memo["embeddings"] = self._embeddings()
        value = self._memo["embeddings"]
        if isinstance(value, Skip):
            raise value
        return value

    def object_embeddings(self):
        """Embeddings of the labelled boxes (:func:`qa.embeddings.embed_objects`), computed
        once, or None. With ``embed_objects`` they are computed as needed; otherwise only a
        complete stored set is used (a partial one would give figures for part of the boxes).
        None, never an error, when embeddings are skipped, the dataset has no boxes, or the
        embedder fails: objects are a second opinion, not a requirement."""
        if "objects" not in self._memo:
            self._memo["objects"] = self._object_embeddings()
        return self._memo["objects"]

    def _nothing_stored(self) -> bool:
        """In "cached" mode: whether the store holds no vector of the model at all (one
        indexed lookup), so there is nothing to look up file by file (hashing 50k files)."""
        if self.embeddings_mode != "cached" or self.ray:  # a cluster layout may hold them
            return False
        try:
            from qa.embeddings import resolve_model
            from qa.store import default_store

            return not default_store().has_vectors(resolve_model(self.model).model_id)
        except Exception:  # noqa: BLE001 (let the embedder give the real reason)
            return False

    def _object_embeddings(self):
        ds = self.dataset
        if self.embeddings_mode == "skip" or not ds.has_boxes or ds.is_classification:
            return None
        if self._nothing_stored():
            return None
        try:
            from qa.embeddings import embed_objects

            objects = embed_objects(ds, model=self.model, progress=self.progress,
                                    cached_only=not self.embed_objects, **self._cluster())
        except Exception as exc:  # a bonus analysis: it never fails the run
            log.info("no object embeddings: %s", exc)
            return None
        return objects if len(objects) and not objects.n_not_cached else None

    def _embeddings(self):
        if self.embeddings_mode == "skip":
            return Skip("embeddings were skipped (--embeddings skip)")
        from qa import embeddings as emb

        embed = getattr(emb, "embed_images", None)
        if embed is None:
            return Skip("this build has no image embedder")
        if self._nothing_stored():
            return Skip("no cached embeddings for this dataset; run `dataset-qa embed` first")
        kwargs: dict[str, Any] = {"model": self.model, "progress": self.progress,
                                  **self._cluster()}
        if self.embeddings_mode == "cached":
            kwargs["cached_only"] = True
        try:
            result = embed(self.dataset, **kwargs)
        except Skip as e:
            return e
        if self.embeddings_mode == "cached" and len(result) == 0:
            return Skip("no cached embeddings for this dataset; run `dataset-qa embed` first")
        if self.embeddings_mode == "cached" and result.n_not_cached:
            # figures over a part of the images would read as the dataset's
            return Skip(f"only {len(result):,} of {len(result) + result.n_not_cached:,} "
                        "readable images have cached embeddings; run `dataset-qa embed` "
                        "(or the Outliers page's button) first")
        return result

    def _cluster(self) -> dict[str, Any]:
        """``ray=`` / ``layout=`` for the per-image work, only when a cluster was asked for."""
        return {"ray": self.ray, "layout": self.layout} if self.ray else {}

    def image_stats(self):
        """The one pixel pass over every image (hashes and quality statistics), computed once."""
        if "image_stats" not in self._memo:
            try:
                mod = importlib.import_module("qa.imagestats")
            except ImportError as e:
                self._memo["image_stats"] = Skip(f"image statistics are unavailable: {e}")
            else:
                self._memo["image_stats"] = mod.compute_image_stats(
                    self.dataset, progress=self.progress, **self._cluster())
        value = self._memo["image_stats"]
        if isinstance(value, Skip):
            raise value
        return value


@dataclass
class AnalysisRun:
    """What :func:`run_analyses` returns: ``results`` by analysis name, ``skipped`` (name ->
    reason), ``errors`` (name -> message of an unexpected failure) and ``seconds`` per analysis."""

    results: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    context: RunContext | None = None

    def metrics(self) -> dict[str, dict]:
        """``{analysis: result.metrics()}`` for the analyses that ran."""
        return {name: r.metrics() for name, r in self.results.items()}

    def findings(self) -> pd.DataFrame:
        """Every analysis' findings in one frame (``FINDINGS_SCHEMA``)."""
        return concat_findings(r.findings() for r in self.results.values())


def resolve_runner(name: str) -> Callable:
    """The ``run_analysis`` function of analysis ``name``; ImportError/AttributeError when it
    is not available in this build."""
    if name not in RUNNERS:
        raise ValueError(f"unknown analysis {name!r}; known: {list(RUNNERS)}")
    module, func = RUNNERS[name].split(":")
    return getattr(importlib.import_module(module), func)


def run_analyses(dataset: Dataset, *, only: list[str] | tuple[str, ...] | None = None,
                 embeddings: str = "auto", model: str = "auto",
                 options: dict[str, dict[str, Any]] | None = None,
                 progress: ProgressFn | None = None, objects: bool = False,
                 ray: str | None = None, layout: str | None = None) -> AnalysisRun:
    """Run the analyses in :data:`RUNNERS` (or ``only`` those) on ``dataset``.

    ``ray="auto"`` (or a cluster address) runs the per-image work (pixel pass, embeddings,
    the duplicate search) on a Ray cluster (:mod:`qa.distributed`), keeping its results in
    ``layout``; the figures are the same.

    ``objects=True`` also embeds the labelled boxes (per-class outliers, and the crops'
    second opinion on spurious labels); by default only a complete stored set is used.

    Returns an :class:`AnalysisRun`. Never raises for one analysis' failure: an analysis that
    cannot run is in ``skipped`` with its reason, one that fails unexpectedly is in ``errors``
    (and logged with its traceback), and the rest still run.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"run_analyses() needs a qa.Dataset, got {type(dataset).__name__}")
    if embeddings not in EMBEDDING_MODES:
        raise ValueError(f"embeddings must be one of {EMBEDDING_MODES}, got {embeddings!r}")
    names = list(RUNNERS) if only is None else list(only)
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown analyses {unknown}; known: {list(RUNNERS)}")
    with sharing(dataset):  # results shared within the run (and beyond, in the app)
        return _run_all(dataset, names, embeddings, model, options, progress, objects,
                        ray, layout)


def _run_all(dataset, names, embeddings, model, options, progress, objects,
             ray=None, layout=None) -> AnalysisRun:
    progress = progress or (lambda frac, msg: None)
    run = AnalysisRun()
    # shared inputs (embeddings, the pixel pass) live as long as the dataset's memo when the
    # app has opted it in (qa.memo.share_results), else for this run
    shared = remembered(dataset, ("run_inputs", embeddings, model, objects), dict)
    for i, name in enumerate(names):
        def sub(frac: float, msg: str, _i=i, _name=name) -> None:
            progress((_i + min(max(frac, 0.0), 1.0)) / len(names), f"{_name}: {msg}")

        ctx = RunContext(dataset, embeddings_mode=embeddings, model=model, progress=sub,
                         options=options or {}, embed_objects=objects, ray=ray, layout=layout,
                         _memo=shared)
        run.context = ctx
        sub(0.0, "starting")
        key = ("analysis", name, embeddings, model, objects, _frozen((options or {}).get(name)))
        outcome, value, seconds = remembered(dataset, key, lambda: _run_one(name, dataset, ctx))
        {"ok": run.results, "skipped": run.skipped, "error": run.errors}[outcome][name] = value
        if seconds is not None:
            run.seconds[name] = seconds
    progress(1.0, "done")
    return run


def _run_one(name: str, dataset: Dataset, ctx: RunContext) -> tuple[str, Any, float | None]:
    """("ok", result) / ("skipped", reason) / ("error", message) of one analysis, and its
    seconds (None when its module is missing)."""
    t0 = time.perf_counter()
    try:
        runner = resolve_runner(name)
    except (ImportError, AttributeError) as e:
        return "skipped", f"not available in this installation ({e})", None
    try:
        out = "ok", runner(dataset, ctx)
    except Skip as e:
        out = "skipped", str(e)
    except Exception as e:
        log.exception("analysis %s failed", name)
        out = "error", f"{type(e).__name__}: {e}"
    return (*out, time.perf_counter() - t0)


def _frozen(value: Any) -> Any:
    """A hashable stand-in for an options dict (part of a memo key)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set)):
        return tuple(_frozen(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value
