"""The JSON Schema of ``report.json`` (kept in the repo: ``report.schema.json``) and its
validation."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")


@lru_cache(maxsize=1)
def report_schema() -> dict:
    """The report JSON Schema (draft 2020-12) as a dict."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_report_dict(data: dict) -> None:
    """Raise ValueError naming the first offending path when ``data`` (a report's
    ``to_dict()``) does not follow :data:`SCHEMA_PATH`; return None when it does."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(report_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise ValueError(f"report JSON does not follow {SCHEMA_PATH.name} at {where}: "
                         f"{e.message} ({len(errors)} problem(s) in all)")
