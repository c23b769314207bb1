"""The one shape every analysis result shares, so that the health report and the review queue
read any analysis without special cases.

Every result dataclass (``ValidationReport``, ``BalanceResult``, ``AgreementResult``, the
outlier, duplicate, quality and disagreement results ...) provides:

``ANALYSIS``     a class attribute: the analysis' stable name ("validation", "balance" ...).
``to_dict()``    every figure, JSON-safe (use :func:`frame_records` for tables).
``metrics()``    ``{name: number or None}``: the headline figures under stable names, e.g.
                 ``{"n_errors": 2, "min_class_ratio": 0.07}``. The report's checks compare one
                 metric against thresholds; None means "could not be measured" (skipped, with
                 the reason in ``notes``).
``findings()``   a DataFrame with :data:`FINDINGS_SCHEMA`: one row per flagged item. The report
                 takes a check's evidence from it (by ``kind``), the review queue its items.

A finding names what is wrong (``kind``), how bad (``severity``, ``score``: higher = worse) and
where (``image_id``, the ``ann_ids``/``pred_ids`` concerned, ``related_image_ids`` for pairs
and clusters), in one sentence for a person (``message``), and which app page shows the
evidence (``page``; pages filter to ``?image_id=..`` deep links, see
:func:`qa.app.state.focus_image_ids`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Iterable, Protocol, runtime_checkable

import numpy as np
import pandas as pd

SEVERITIES = ("error", "warning", "info")

# App pages, by their URL path (pages/<name>.py); "overview" is the default page at "/".
PAGES = ("overview", "balance", "agreement", "outliers", "duplicates", "quality",
         "disagreement", "report", "review", "compare")

FINDINGS_SCHEMA = {
    "analysis": "object",  # the analysis that flagged it: "validation", "duplicates" ...
    "kind": "object",  # machine name of the issue: "missing_file", "leakage", "missing_label" ...
    "severity": "object",  # "error" | "warning" | "info"
    "score": "float64",  # how bad: higher = worse, in [0, 1] where the analysis can; NaN unscored
    "image_id": "Int64",  # the image concerned; NA for dataset-level findings (a rare class)
    "ann_ids": "object",  # tuple of the annotation ids concerned (() = the image as a whole)
    "pred_ids": "object",  # tuple of the prediction ids concerned
    "related_image_ids": "object",  # tuple: the other images of a pair or cluster
    "category_id": "Int64",  # the class concerned, where there is one
    "annotator": "object",  # whose labels, where it is one annotator's
    "message": "object",  # one sentence for a person: what, where, and what to do
    "page": "object",  # the app page that shows the evidence (one of PAGES)
}
_TUPLE_COLUMNS = ("ann_ids", "pred_ids", "related_image_ids")


@runtime_checkable
class AnalysisResult(Protocol):
    """What the report and the review queue need from any analysis result."""

    ANALYSIS: ClassVar[str]

    def to_dict(self) -> dict: ...

    def metrics(self) -> dict[str, float | int | None]: ...

    def findings(self) -> pd.DataFrame: ...


def _as_tuple(v) -> tuple:
    if type(v) is tuple and all(type(x) is int for x in v):  # already one: most rows
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ()
    if isinstance(v, (list, tuple, np.ndarray, pd.Index, pd.Series, set, frozenset)):
        return tuple(int(x) for x in v if not pd.isna(x))
    return (int(v),)


def findings_frame(rows: Iterable[dict] | pd.DataFrame | None = None, **defaults) -> pd.DataFrame:
    """A findings table with :data:`FINDINGS_SCHEMA` from dict rows or a DataFrame.

    ``defaults`` fill columns the rows leave out (``analysis="outliers", page="outliers"``);
    missing tuple columns become ``()``. Raises ValueError for an unknown severity.
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows or []))
    n = len(df)
    for col, value in defaults.items():
        if col not in FINDINGS_SCHEMA:
            raise ValueError(f"unknown findings column {col!r}; columns: {list(FINDINGS_SCHEMA)}")
        if col not in df.columns:
            df[col] = [value] * n
        else:
            df[col] = df[col].where(df[col].notna(), value) if n else df[col]
    out = {}
    for col, dtype in FINDINGS_SCHEMA.items():
        if col in _TUPLE_COLUMNS:
            vals = df[col] if col in df.columns else [()] * n
            out[col] = pd.Series([_as_tuple(v) for v in vals], dtype="object")
        elif col in df.columns:
            s = df[col].reset_index(drop=True)
            if dtype == "float64":
                s = pd.to_numeric(s, errors="coerce").astype("float64")
            elif dtype == "Int64":
                s = pd.array([None if v is None or v is pd.NA or v != v else int(v)
                              for v in s.tolist()], dtype="Int64")
            else:
                s = s.astype("object")
                s = s.where(s.notna(), None)
            out[col] = s
        else:
            fill = {"object": None, "float64": np.nan}.get(dtype, pd.NA)
            out[col] = pd.Series([fill] * n, dtype=dtype)
    res = pd.DataFrame(out)
    bad = set(res["severity"].dropna()) - set(SEVERITIES)
    if bad:
        raise ValueError(f"findings severity must be one of {SEVERITIES}, got {sorted(bad)}")
    return res


def concat_findings(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Several findings tables as one (an empty table with the schema when there are none)."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return findings_frame()
    return findings_frame(pd.concat(frames, ignore_index=True))


def frame_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-safe records: NaN/NA become None, numpy scalars Python numbers,
    tuples lists."""
    out = []
    cols = list(df.columns)
    for row in df.itertuples(index=False, name=None):
        out.append({str(c): to_jsonable(v) for c, v in zip(cols, row)})
    return out


def to_jsonable(v):
    """One value as plain JSON: numpy numbers -> int/float, NaN/NA -> None, tuples -> lists."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, (list, tuple, np.ndarray)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v if isinstance(v, str) else str(v)


# Deep links into the app: /<page>?image_id=1,2,3&kind=leakage. Pages that receive them show
# only those images (see qa.app.state.focus). Long evidence lists are cut to keep URLs sane.
MAX_LINK_IDS = 200


def page_link(page: str, image_ids: Iterable[int] = (), *, kind: str | None = None) -> str:
    """The app URL path of ``page`` filtered to ``image_ids`` (at most MAX_LINK_IDS) and
    ``kind``: ``"duplicates?image_id=3,7&kind=leakage"``; "" for the overview's root."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}; pages: {PAGES}")
    ids = list(dict.fromkeys(int(i) for i in image_ids))[:MAX_LINK_IDS]
    query = []
    if ids:
        query.append("image_id=" + ",".join(map(str, ids)))
    if kind:
        query.append(f"kind={kind}")
    path = "" if page == "overview" else page
    return path + ("?" + "&".join(query) if query else "")
