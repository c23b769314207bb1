"""Writing a report's files (JSON validated against the schema, HTML, PDF) to a folder that
is never inside the dataset, each written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from qa.report.history import write_atomic
from qa.report.schema import validate_report_dict

FORMATS = ("json", "html", "pdf")


def report_json(report) -> bytes:
    """``report.to_dict()`` as JSON bytes, validated against ``report.schema.json``."""
    d = report.to_dict()
    validate_report_dict(d)
    return json.dumps(d, indent=1, ensure_ascii=False).encode("utf-8")


def refuse_inside_dataset(out_dir: Path | str, dataset_root: Path | str | None) -> Path:
    """``out_dir`` resolved; ValueError when it is the dataset's folder or inside it (the
    dataset is only ever read)."""
    out = Path(out_dir).expanduser().resolve()
    if dataset_root is not None:
        root = Path(dataset_root).expanduser().resolve()
        if out == root or root in out.parents:
            raise ValueError(f"--out {str(out_dir)!r} is inside the dataset ({root}); the "
                             "dataset is never written to: choose a folder outside it")
    return out


def write_report(report, out_dir: Path | str, *, formats=FORMATS,
                 history: pd.DataFrame | None = None, comparison=None,
                 dataset_root: Path | str | None = None) -> dict[str, Path]:
    """Write ``report.json``, ``report.html`` and ``report.pdf`` (those in ``formats``), and
    ``comparison.json`` when a comparison is given, into ``out_dir``. Returns format -> path.
    Raises ValueError when ``out_dir`` is inside ``dataset_root`` (default: the report's
    dataset root)."""
    bad = set(formats) - set(FORMATS)
    if bad:
        raise ValueError(f"unknown report formats {sorted(bad)}; formats: {FORMATS}")
    root = dataset_root if dataset_root is not None else (report.dataset or {}).get("root")
    out = refuse_inside_dataset(out_dir, root)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if "json" in formats:
        written["json"] = write_atomic(out / "report.json", report_json(report))
    if "html" in formats:
        from qa.report.html import render_html

        written["html"] = write_atomic(out / "report.html", render_html(
            report, history=history, comparison=comparison).encode("utf-8"))
    if "pdf" in formats:
        from qa.report.pdf import render_pdf

        written["pdf"] = write_atomic(out / "report.pdf", render_pdf(
            report, history=history, comparison=comparison))
    if comparison is not None:
        written["comparison"] = write_atomic(out / "comparison.json", json.dumps(
            comparison.to_dict(), indent=1).encode("utf-8"))
    return written
