"""Health checks and the health score, from any set of analysis results.

``build_report(dataset_or_run, config)`` runs every analysis (or takes an
:class:`qa.analyses.AnalysisRun`), compares each configured metric with its thresholds, takes
each check's evidence from the findings, and scores the dataset 0-100 with a sub-score per
area. Checks are data (:mod:`qa.report.config`): an analysis that lands later is picked up
with no code change, and until then its checks are *skipped* with the reason (never passed).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from qa.dataset import Dataset
from qa.report.config import AREAS, CheckSpec, ReportConfig, load_config
from qa.results import PAGES, concat_findings, page_link, to_jsonable

log = logging.getLogger(__name__)

STATUSES = ("pass", "warn", "fail", "skipped")
# Points a check earns towards its area's sub-score: a warning costs half of a failure.
POINTS = {"pass": 1.0, "warn": 0.5, "fail": 0.0}
GATE_LEVELS = ("warn", "fail")
# Evidence ids kept per check in the report (the exact count is kept separately): enough for
# every deep link (qa.results.MAX_LINK_IDS) and a reviewer's list, small enough for JSON.
MAX_EVIDENCE_IDS = 500
# Sentences from the evidence kept per check (they name rare classes, disputed images ...).
MAX_EVIDENCE_MESSAGES = 5
# Thumbnails embedded per warning/failing check in the HTML report.
DEFAULT_THUMBNAILS = 4
THUMB_SIDE = 160
REPORT_VERSION = 1
# Where a validation finding is shown when the findings do not say.
_DEFAULT_PAGE = {"validation": "overview"}
REVIEW_STATUSES = ("open", "confirmed", "not_an_issue", "fixed")


@dataclass(frozen=True)
class CheckResult:
    """One check as measured: ``status`` pass/warn/fail/skipped (``reason`` says why it was
    skipped); ``value`` after reviewers' dismissals, ``measured`` as the analysis reported it;
    ``points_lost``: how many of the 100 score points this check costs."""

    id: str
    title: str
    area: str
    analysis: str
    metric: str
    status: str
    value: float | None
    measured: float | None
    pass_if: str
    warn: float
    fail: float | None
    threshold: str
    action: str
    reason: str | None = None
    weight: float = 1.0
    evidence_kinds: tuple[str, ...] = ()
    n_evidence: int = 0
    evidence_image_ids: tuple[int, ...] = ()
    evidence_ann_ids: tuple[int, ...] = ()
    evidence_messages: tuple[str, ...] = ()
    page: str | None = None
    link: str | None = None
    n_dismissed: int = 0
    dismissed_by: dict = field(default_factory=dict)
    points_lost: float = 0.0
    explanation: str = ""
    basis: str | None = None  # how the value was obtained ("estimate: ..." / "count: ...")

    def to_dict(self) -> dict:
        return {k: to_jsonable(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> CheckResult:
        d = dict(d)
        for k in ("evidence_kinds", "evidence_image_ids", "evidence_ann_ids",
                  "evidence_messages"):
            d[k] = tuple(d.get(k) or ())
        d["dismissed_by"] = dict(d.get("dismissed_by") or {})
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class HealthReport:
    """The dataset's health: ``score`` 0-100 (None when no check could run), ``area_scores``
    (area -> 0-100 or None), ``checks`` in config order, ``analyses`` (name -> ran / skipped /
    error with the reason and its metrics), ``review`` (reviewers' dismissals), ``dataset``
    (name, counts, ``key``: a stable id for the report history). ``thumbnails`` (image id ->
    PNG data URI) is for the HTML export and not part of :meth:`to_dict`."""

    dataset: dict
    created: str
    config_source: str
    score: float | None
    area_scores: dict
    area_weights: dict
    checks: tuple[CheckResult, ...]
    analyses: dict
    review: dict
    thumbnails: dict = field(default_factory=dict, compare=False)
    version: int = REPORT_VERSION

    # -- reading
    def check(self, check_id: str) -> CheckResult:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(f"no check {check_id!r}; checks: {[c.id for c in self.checks]}")

    def status_counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def gate(self, level: str) -> list[CheckResult]:
        """The checks at or above ``level`` ("warn": warn or fail; "fail": fail only): a
        non-empty list means a release gate at that level is closed. Skipped checks never
        close it."""
        if level not in GATE_LEVELS:
            raise ValueError(f"gate level must be one of {GATE_LEVELS}, got {level!r}")
        hit = ("warn", "fail") if level == "warn" else ("fail",)
        return [c for c in self.checks if c.status in hit]

    def checks_frame(self) -> pd.DataFrame:
        """One row per check (the traffic-light table)."""
        cols = ["id", "area", "title", "status", "value", "threshold", "n_evidence",
                "n_dismissed", "points_lost", "action", "reason", "link", "analysis", "basis"]
        return pd.DataFrame([{k: getattr(c, k) for k in cols} for c in self.checks],
                            columns=cols)

    def to_dict(self) -> dict:
        """Every figure, JSON-ready; validated by ``qa/report/report.schema.json``."""
        return {
            "version": self.version, "created": self.created,
            "config_source": self.config_source, "dataset": to_jsonable(self.dataset),
            "score": to_jsonable(self.score),
            "area_scores": {a: to_jsonable(v) for a, v in self.area_scores.items()},
            "area_weights": {a: to_jsonable(v) for a, v in self.area_weights.items()},
            "status_counts": self.status_counts(),
            "checks": [c.to_dict() for c in self.checks],
            "analyses": to_jsonable(self.analyses), "review": to_jsonable(self.review),
        }

    @classmethod
    def from_dict(cls, d: dict) -> HealthReport:
        """A report read back from :meth:`to_dict` output (for comparison and re-export)."""
        if not isinstance(d, dict) or "checks" not in d or "score" not in d:
            raise ValueError("not a health report JSON: it needs 'score' and 'checks' (write "
                             "one with `dataset-qa report PATH --out DIR`)")
        return cls(dataset=d.get("dataset") or {}, created=d.get("created", ""),
                   config_source=d.get("config_source", ""), score=d["score"],
                   area_scores=dict(d.get("area_scores") or {}),
                   area_weights=dict(d.get("area_weights") or {}),
                   checks=tuple(CheckResult.from_dict(c) for c in d["checks"]),
                   analyses=dict(d.get("analyses") or {}), review=dict(d.get("review") or {}),
                   version=int(d.get("version", REPORT_VERSION)))


# ------------------------------------------------------------------------------- building
def build_report(source, config: ReportConfig | None = None, *, embeddings: str = "auto",
                 options: dict | None = None, progress=None,
                 thumbnails: int = DEFAULT_THUMBNAILS, objects: bool = False) -> HealthReport:
    """The :class:`HealthReport` of a :class:`~qa.dataset.Dataset` (every analysis is run,
    ``embeddings`` = "auto" | "cached" | "skip") or of an :class:`~qa.analyses.AnalysisRun`
    already computed (its dataset, when it has one, gives thumbnails and review decisions).

    ``config``: :func:`qa.report.config.load_config` output (default: the built-in checks).
    ``thumbnails``: images embedded per warning/failing check (0: none). ``objects=True``
    also embeds the labelled boxes (per-class outliers; the crops' second opinion on spurious
    labels); by default a complete stored set is used when there is one.
    """
    from qa.analyses import AnalysisRun, run_analyses

    if config is None:
        config = load_config()
    if not isinstance(config, ReportConfig):
        raise TypeError(f"config must be a ReportConfig (qa.report.load_config()), got "
                        f"{type(config).__name__}")
    if isinstance(source, Dataset):
        ds = source
        run = run_analyses(ds, embeddings=embeddings, options=options, progress=progress,
                           objects=objects)
    elif isinstance(source, AnalysisRun):
        run = source
        ds = run.context.dataset if run.context is not None else None
    else:
        raise TypeError(f"build_report() needs a qa.Dataset or a qa.analyses.AnalysisRun, got "
                        f"{type(source).__name__}")
    if thumbnails < 0:
        raise ValueError(f"thumbnails must be >= 0, got {thumbnails}")
    return _compute_report(run, ds, config, thumbnails=thumbnails)


def _compute_report(run, ds: Dataset | None, config: ReportConfig, *,
                    thumbnails: int) -> HealthReport:
    run, metrics, frames = _read_results(run)
    findings, review = _apply_review(ds, concat_findings(frames))
    kind = None if ds is None else ("detection" if ds.has_boxes else "classification")
    checks = [_evaluate(spec, run, metrics, findings, kind) for spec in config.checks]
    checks, score, area_scores = _score(checks, config.area_weights)
    analyses = {}
    for name in _analysis_names(run, config):
        if name in run.results:
            analyses[name] = {"status": "ran", "reason": None,
                              "seconds": run.seconds.get(name),
                              "metrics": to_jsonable(metrics[name])}
        elif name in run.errors:
            analyses[name] = {"status": "error", "reason": run.errors[name],
                              "seconds": run.seconds.get(name), "metrics": {}}
        else:
            analyses[name] = {"status": "skipped",
                              "reason": run.skipped.get(name, "was not run"),
                              "seconds": run.seconds.get(name), "metrics": {}}
    thumbs = _thumbnails(ds, checks, thumbnails) if ds is not None and thumbnails else {}
    return HealthReport(dataset=_dataset_info(ds), created=datetime.now(timezone.utc)
                        .isoformat(timespec="seconds"), config_source=config.source,
                        score=score, area_scores=area_scores,
                        area_weights=dict(config.area_weights), checks=tuple(checks),
                        analyses=analyses, review=review, thumbnails=thumbs)


def _read_results(run):
    """Each result's metrics() and findings(); a result whose methods raise is moved to the
    run's errors (its checks are skipped with the message) instead of breaking the report."""
    from qa.analyses import AnalysisRun

    metrics, frames, results, errors = {}, [], {}, dict(run.errors)
    for name, r in run.results.items():
        try:
            m, f = dict(r.metrics()), r.findings()
        except Exception as e:  # one broken analysis must not hide the others
            log.exception("analysis %s: reading its result failed", name)
            errors[name] = f"its result could not be read: {type(e).__name__}: {e}"
            continue
        metrics[name], results[name] = m, r
        frames.append(f)
    run = AnalysisRun(results=results, skipped=dict(run.skipped), errors=errors,
                      seconds=dict(run.seconds), context=run.context)
    return run, metrics, frames


def _analysis_names(run, config: ReportConfig) -> list[str]:
    from qa.analyses import RUNNERS

    names = list(RUNNERS)
    for extra in [*run.results, *run.skipped, *run.errors, *(c.analysis for c in config.checks)]:
        if extra not in names:
            names.append(extra)
    return names


def dataset_key(ds: Dataset) -> str:
    """A stable id of a dataset for its report history: its name and where it lives (not its
    content, so that successive versions of the same dataset share a history)."""
    where = str(ds.root.resolve()) if ds.root is not None else ""
    digest = hashlib.sha1(f"{ds.name}\0{where}".encode()).hexdigest()[:10]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in (ds.name or "dataset"))
    return f"{safe[:40]}-{digest}"


def _dataset_info(ds: Dataset | None) -> dict:
    if ds is None:
        return {"name": None, "key": None}
    s = ds.summary()
    return {"name": s["name"], "key": dataset_key(ds), "format": s["format"], "root": s["root"],
            "images": s["images"], "annotations": s["annotations"], "boxes": s["boxes"],
            "annotators": s["annotators"], "classes": s["classes"], "splits": s["splits"],
            "predictions": s["predictions"], "models": s["models"]}


def _apply_review(ds: Dataset | None, findings: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Reviewers' decisions (issue 12's ``qa.review.mark_findings``) on the findings: the
    ones dismissed as "not_an_issue" are dropped from the evidence and counted."""
    empty = {"available": False, "n_dismissed": 0, "by": {}}
    try:
        from qa.review import mark_findings
    except ImportError:
        return findings.assign(status="open", decided_by=None), empty
    if ds is None or findings.empty or not _any_decision():
        return findings.assign(status="open", decided_by=None), {**empty, "available": True}
    try:
        marked = mark_findings(ds, findings)
    except Exception as e:  # noqa: BLE001 (an unreachable review database must not stop the report)
        log.warning("review decisions not applied: %s", e)
        return (findings.assign(status="open", decided_by=None),
                {**empty, "error": f"review decisions could not be read: {e}"})
    if "status" not in marked.columns:
        raise TypeError("qa.review.mark_findings returned no 'status' column")
    bad = set(marked["status"].dropna()) - set(REVIEW_STATUSES)
    if bad:
        raise ValueError(f"qa.review.mark_findings returned unknown statuses {sorted(bad)}")
    if "decided_by" not in marked.columns:
        marked = marked.assign(decided_by=None)
    dismissed = marked[marked["status"] == "not_an_issue"]
    by = dismissed["decided_by"].fillna("unknown").astype(str).value_counts().to_dict()
    return marked, {"available": True, "n_dismissed": len(dismissed),
                    "by": {k: int(v) for k, v in by.items()}}


def _any_decision() -> bool:
    """False only when the decisions database is known to hold no decision at all (then no
    finding needs its review key); True when it has some or cannot tell."""
    try:
        from qa.review import has_decisions
    except ImportError:
        return True
    try:
        return has_decisions()
    except Exception:  # noqa: BLE001 (mark_findings reports an unreachable database)
        return True


def _metric_value(spec: CheckSpec, m: dict) -> tuple[float | None, str | None]:
    vals = []
    for name in spec.metric:
        if name not in m:
            if spec.absent is None:
                return None, (f"{spec.analysis} reports no metric {name!r} (metrics: "
                              f"{', '.join(sorted(m)) or 'none'}); fix the check's config")
            vals.append(float(spec.absent))
            continue
        v = m[name]
        if v is not None and (isinstance(v, str) or not isinstance(v, (int, float))
                              and not hasattr(v, "__float__")):
            return None, f"{spec.analysis} reports {name} = {v!r}, not a number"
        if v is None or not math.isfinite(float(v)):
            return None, f"{name} could not be measured on this dataset"
        vals.append(float(v))
    return float(sum(vals)), None


def _evaluate(spec: CheckSpec, run, metrics: dict, findings: pd.DataFrame,
              kind: str | None) -> CheckResult:
    base = dict(id=spec.id, title=spec.title, area=spec.area, analysis=spec.analysis,
                metric=" + ".join(spec.metric), pass_if=spec.pass_if, warn=spec.warn,
                fail=spec.fail, threshold=spec.threshold_text(), action=spec.action,
                weight=spec.weight, evidence_kinds=spec.evidence or ())
    if spec.only_for is not None and kind is not None and spec.only_for != kind:
        return CheckResult(**base, status="skipped", value=None, measured=None,
                           reason=f"applies to {spec.only_for} datasets; this one is {kind}")
    if spec.analysis not in run.results:
        why = (run.errors.get(spec.analysis) and f"{spec.analysis} failed: "
               f"{run.errors[spec.analysis]}") or run.skipped.get(spec.analysis) \
            or "was not run"
        return CheckResult(**base, status="skipped", value=None, measured=None,
                           reason=f"{spec.analysis} skipped: {why}")
    measured, why = _metric_value(spec, metrics[spec.analysis])
    ev = findings[findings["analysis"] == spec.analysis]
    if spec.evidence is not None:
        ev = ev[ev["kind"].isin(spec.evidence)]
    dismissed = ev[ev["status"] == "not_an_issue"]
    ev = ev[ev["status"] != "not_an_issue"].sort_values("score", ascending=False,
                                                        kind="stable", na_position="last")
    by = dismissed["decided_by"].fillna("unknown").astype(str).value_counts().to_dict()
    page = spec.page or (str(ev["page"].mode().iloc[0]) if ev["page"].notna().any() else None) \
        or _DEFAULT_PAGE.get(spec.analysis) or (spec.analysis if spec.analysis in PAGES
                                                  else None)
    # the findings' images, then the images each one relates (a pair's other copy, an
    # annotator's further examples), so a link shows all the evidence
    image_ids = tuple(dict.fromkeys([int(i) for i in ev["image_id"].dropna()] + [
        int(j) for t in ev["related_image_ids"] for j in (t or ())]))
    ann_ids = tuple(dict.fromkeys(a for t in ev["ann_ids"] for a in t))
    kinds = list(dict.fromkeys(ev["kind"]))
    link = page_link(page, image_ids, kind=kinds[0] if len(kinds) == 1 else None) \
        if page in PAGES else None
    evidence = dict(n_evidence=len(ev), evidence_image_ids=image_ids[:MAX_EVIDENCE_IDS],
                    evidence_ann_ids=ann_ids[:MAX_EVIDENCE_IDS],
                    evidence_messages=tuple(str(x) for x in ev["message"].dropna()
                                            .head(MAX_EVIDENCE_MESSAGES)),
                    page=page, link=link, n_dismissed=len(dismissed),
                    dismissed_by={k: int(v) for k, v in by.items()})
    if measured is None:  # a result may say why better than "could not be measured"
        explain = getattr(run.results[spec.analysis], "unmeasured_reason", None)
        why = (explain(spec.metric) if callable(explain) else None) or why
        return CheckResult(**base, **evidence, status="skipped", value=None, measured=None,
                           reason=why)
    value = measured
    how = getattr(run.results[spec.analysis], "value_basis", None)
    evidence["basis"] = how(spec.metric) if callable(how) else None
    if spec.counts_evidence and len(dismissed):
        # The metric may count pairs while findings are per image (or the reverse): scale by
        # the share of evidence still open, which is measured - dismissed when units agree.
        value = measured * len(ev) / (len(ev) + len(dismissed))
    return CheckResult(**base, **evidence, status=spec.status_of(value), value=value,
                       measured=measured)


def _score(checks: list[CheckResult], area_weights: dict) -> tuple[list, float | None, dict]:
    """Area sub-score = weighted mean of its checks' points (pass 1, warn 0.5, fail 0) x 100;
    overall = area sub-scores weighted by ``area_weights``. Skipped checks and areas with no
    check that ran are left out (they count neither for nor against). Each check's
    ``points_lost`` is its exact share of 100 - score."""
    area_scores: dict[str, float | None] = {}
    ran = {a: [c for c in checks if c.area == a and c.status in POINTS] for a in AREAS}
    for a in AREAS:
        w = sum(c.weight for c in ran[a])
        area_scores[a] = (100.0 * sum(c.weight * POINTS[c.status] for c in ran[a]) / w
                          if w > 0 else None)
    live = {a: area_weights.get(a, 1.0) for a in AREAS if area_scores[a] is not None}
    total = sum(live.values())
    score = (sum(area_scores[a] * w for a, w in live.items()) / total
             if total > 0 else None)
    out = []
    for c in checks:
        if c.status not in POINTS:
            expl = f"skipped ({c.reason}); does not count towards the score"
            out.append(replace(c, points_lost=0.0, explanation=expl))
            continue
        aw = sum(x.weight for x in ran[c.area])
        area_share = live.get(c.area, 0.0) / total if total else 0.0
        check_share = c.weight / aw if aw else 0.0
        lost = 100.0 * area_share * check_share * (1.0 - POINTS[c.status])
        expl = (f"{c.status}: worth {100 * area_share * check_share:.1f} of 100 points "
                f"({c.area} is {area_share:.0%} of the score, this check "
                f"{check_share:.0%} of {c.area}); loses {lost:.1f}")
        out.append(replace(c, points_lost=round(lost, 4), explanation=expl))
    return out, (None if score is None else round(score, 2)), \
        {a: (None if v is None else round(v, 2)) for a, v in area_scores.items()}


def add_thumbnails(report: HealthReport, ds: Dataset | None,
                   per_check: int = DEFAULT_THUMBNAILS) -> HealthReport:
    """``report`` with its evidence thumbnails (for the HTML export), made now: the dashboard
    builds the report without them (the page shows none; 30 PNGs cost ~2 s of a first
    visit) and adds them when the HTML is downloaded."""
    if report.thumbnails or ds is None or per_check <= 0:
        return report
    return replace(report, thumbnails=_thumbnails(ds, list(report.checks), per_check))


def _thumbnails(ds: Dataset, checks: list[CheckResult], per_check: int) -> dict[int, str]:
    """PNG data URIs of the first evidence images of the checks that warn or fail."""
    from qa.viz.boxes import render_image

    ids: list[int] = []
    for c in checks:
        if c.status in ("warn", "fail"):
            ids += [i for i in c.evidence_image_ids[:per_check] if i not in ids]
    out: dict[int, str] = {}
    for iid in ids:
        try:
            img, err = render_image(ds, iid, max_side=THUMB_SIDE)
        except Exception as e:  # noqa: BLE001 (a thumbnail must never break the report)
            log.warning("no thumbnail for image %s: %s", iid, e)
            continue
        if img is None or err is not None:
            continue
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        out[int(iid)] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return out


def to_report(obj: Any) -> HealthReport:
    """A HealthReport from a report, its dict, or a path to its JSON."""
    import json
    from pathlib import Path

    if isinstance(obj, HealthReport):
        return obj
    if isinstance(obj, (str, Path)):
        p = Path(obj)
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"report JSON {str(p)!r} not found") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{str(p)!r} is not a report JSON: {e}") from e
    if isinstance(obj, dict):
        return HealthReport.from_dict(obj)
    raise TypeError(f"expected a HealthReport, its dict or a JSON path, got {type(obj).__name__}")
