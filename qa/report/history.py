"""Earlier reports of a dataset, kept in the workspace (``qa.store.workspace_dir()``), never
inside the dataset: ``<workspace>/reports/<dataset key>/<created>.json``."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from qa.report.config import AREAS

log = logging.getLogger(__name__)

# Reports kept per dataset; the oldest are removed beyond this (a year of daily CI runs).
MAX_HISTORY = 400
FILE_MODE = 0o644


def history_dir(key: str) -> Path:
    """The folder holding the reports of the dataset with history ``key``
    (``report.dataset["key"]``)."""
    from qa.store import workspace_dir

    if not key or any(ch in key for ch in "/\\") or key in (".", ".."):
        raise ValueError(f"not a dataset history key: {key!r} (use report.dataset['key'])")
    return workspace_dir() / "reports" / key


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and os.replace,
    so a reader never sees half a file. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, FILE_MODE)  # mkstemp creates 0600; a report is for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _signature(d: dict) -> tuple:
    """What makes two reports the same for the trend: config, dataset and every check."""
    return (d.get("config_source"), json.dumps(d.get("dataset"), sort_keys=True),
            tuple((c["id"], c["status"], c["value"], c["n_evidence"])
                  for c in d.get("checks", [])))


def save_report(report, *, dedupe: bool = True) -> Path | None:
    """Add ``report`` to its dataset's history; returns the file written, or None when the
    report has no dataset key or (``dedupe``) equals the latest one already kept (the page
    rebuilding the same report must not flood the trend)."""
    d = report.to_dict()
    key = (d.get("dataset") or {}).get("key")
    if not key:
        return None
    folder = history_dir(key)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if dedupe and files:
        try:
            last = json.loads(files[-1].read_text(encoding="utf-8"))
            if _signature(last) == _signature(d):
                return None
        except (OSError, ValueError) as e:
            log.warning("report history: cannot read %s: %s", files[-1], e)
    stamp = d["created"].replace(":", "").replace("+0000", "Z").replace("+00:00", "Z")
    path = folder / f"{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{n}.json"
    write_atomic(path, json.dumps(d, indent=1).encode("utf-8"))
    for old in files[: max(0, len(files) + 1 - MAX_HISTORY)]:
        old.unlink(missing_ok=True)
    return path


def load_history(key: str) -> pd.DataFrame:
    """The reports kept for dataset ``key``, oldest first: created, score, one column per
    area, n_pass, n_warn, n_fail, n_skipped, path. Unreadable files are skipped."""
    cols = ["created", "score", *AREAS, "n_pass", "n_warn", "n_fail", "n_skipped", "path"]
    folder = history_dir(key)
    rows = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
            sc = d.get("status_counts") or {}
            rows.append({"created": d["created"], "score": d["score"],
                         **{a: (d.get("area_scores") or {}).get(a) for a in AREAS},
                         **{f"n_{s}": sc.get(s, 0) for s in ("pass", "warn", "fail",
                                                               "skipped")},
                         "path": str(p)})
        except (OSError, ValueError, KeyError) as e:
            log.warning("report history: skipping %s: %s", p, e)
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values("created", kind="stable", ignore_index=True)
