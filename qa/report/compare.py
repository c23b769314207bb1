"""Comparison of two health reports (two versions of a dataset, or two report JSONs): the
score delta, each area's delta, and which checks improved, regressed or changed status."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from qa.report.config import AREAS
from qa.report.core import HealthReport, to_report
from qa.results import frame_records, to_jsonable

# Order of statuses from best to worst; "skipped" is not comparable.
_RANK = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class Comparison:
    """``score_delta`` (new - old; None when either score is None), ``area_deltas``,
    ``checks``: one row per check id in either report with old/new status and value and a
    ``change``: improved | regressed | unchanged | status changed (to or from skipped) |
    added | removed. ``improved`` / ``regressed`` use the status first, then the value in the
    check's own direction."""

    old_created: str
    new_created: str
    old_score: float | None
    new_score: float | None
    score_delta: float | None
    area_deltas: dict
    checks: pd.DataFrame

    def changed(self, change: str) -> pd.DataFrame:
        return self.checks[self.checks["change"] == change].reset_index(drop=True)

    @property
    def status_changes(self) -> pd.DataFrame:
        """Checks whose status differs between the two reports."""
        c = self.checks
        return c[c["old_status"] != c["new_status"]].reset_index(drop=True)

    def summary(self) -> str:
        """One sentence: score delta and the counts of improved and regressed checks."""
        if self.score_delta is None:
            head = "score not comparable"
        else:
            head = f"score {self.old_score:.0f} -> {self.new_score:.0f} ({self.score_delta:+.1f})"
        n = self.checks["change"].value_counts()
        return (f"{head}; {int(n.get('improved', 0))} check(s) improved, "
                f"{int(n.get('regressed', 0))} regressed, "
                f"{len(self.status_changes)} changed status")

    def to_dict(self) -> dict:
        return {"old_created": self.old_created, "new_created": self.new_created,
                "old_score": to_jsonable(self.old_score),
                "new_score": to_jsonable(self.new_score),
                "score_delta": to_jsonable(self.score_delta),
                "area_deltas": {a: to_jsonable(v) for a, v in self.area_deltas.items()},
                "summary": self.summary(), "checks": frame_records(self.checks)}


def _delta(a, b):
    return None if a is None or b is None else round(float(b) - float(a), 4)


def _change(old, new) -> str:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    if old.status == "skipped" or new.status == "skipped":
        return "unchanged" if old.status == new.status else "status changed"
    if _RANK[new.status] != _RANK[old.status]:
        return "improved" if _RANK[new.status] < _RANK[old.status] else "regressed"
    if old.value is None or new.value is None or old.value == new.value:
        return "unchanged"
    better = new.value < old.value if new.pass_if == "<=" else new.value > old.value
    return "improved" if better else "regressed"


def compare(old, new, *, config=None, embeddings: str = "auto") -> Comparison:
    """Compare two dataset versions: each of ``old`` (the earlier) and ``new`` is a
    HealthReport, its ``to_dict()``, a path to a report JSON, or a :class:`qa.Dataset`
    (reported here with ``config`` and ``embeddings``)."""
    from qa.dataset import Dataset
    from qa.report.core import build_report

    def as_report(x):
        if isinstance(x, Dataset):
            return build_report(x, config, embeddings=embeddings, thumbnails=0)
        return to_report(x)

    old, new = as_report(old), as_report(new)
    if not isinstance(old, HealthReport) or not isinstance(new, HealthReport):
        raise TypeError("compare() needs two health reports")
    o = {c.id: c for c in old.checks}
    n = {c.id: c for c in new.checks}
    rows = []
    for cid in list(dict.fromkeys([*n, *o])):
        a, b = o.get(cid), n.get(cid)
        ref = b or a
        rows.append({"id": cid, "title": ref.title, "area": ref.area,
                     "old_status": a.status if a else None,
                     "new_status": b.status if b else None,
                     "old_value": a.value if a else None, "new_value": b.value if b else None,
                     "value_delta": _delta(a.value if a else None, b.value if b else None),
                     "change": _change(a, b)})
    checks = pd.DataFrame(rows, columns=["id", "title", "area", "old_status", "new_status",
                                         "old_value", "new_value", "value_delta", "change"])
    return Comparison(old_created=old.created, new_created=new.created,
                      old_score=old.score, new_score=new.score,
                      score_delta=_delta(old.score, new.score),
                      area_deltas={a: _delta(old.area_scores.get(a), new.area_scores.get(a))
                                   for a in AREAS},
                      checks=checks)
