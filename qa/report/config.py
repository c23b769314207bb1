"""The health report's checks and weights, as data.

The defaults live in ``default_checks.toml`` beside this module (documented there). A user's
TOML or YAML file overrides any field of any check (``[checks.rare_classes] warn = 0.2``),
switches a check off (``enabled = false``), adds a complete new check, or changes an area's
weight (``[areas] hygiene = 3``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

AREAS = ("hygiene", "balance", "agreement", "duplicates and leakage", "outliers and quality",
         "label quality", "drift")
PASS_IF = ("<=", ">=")
ONLY_FOR = ("detection", "classification")
DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_checks.toml")
# A config file is a few kilobytes; refuse anything that is clearly not one.
MAX_CONFIG_BYTES = 1_000_000


@dataclass(frozen=True)
class CheckSpec:
    """One health check: compare ``metric`` of ``analysis`` with ``warn``/``fail``."""

    id: str
    title: str
    area: str
    analysis: str
    metric: tuple[str, ...]
    pass_if: str
    warn: float
    fail: float | None = None
    absent: float | None = None
    evidence: tuple[str, ...] | None = None  # None: every finding of the analysis
    counts_evidence: bool = False
    only_for: str | None = None
    weight: float = 1.0
    action: str = ""
    page: str | None = None
    enabled: bool = True

    def status_of(self, value: float) -> str:
        """"pass", "warn" or "fail" for a measured ``value``."""
        worse = (lambda v, t: v > t) if self.pass_if == "<=" else (lambda v, t: v < t)
        if self.fail is not None and worse(value, self.fail):
            return "fail"
        return "warn" if worse(value, self.warn) else "pass"

    def threshold_text(self) -> str:
        """"pass <= 0, fail > 0"-style description of the thresholds."""
        worse = ">" if self.pass_if == "<=" else "<"
        out = f"pass {self.pass_if} {_fmt(self.warn)}"
        return out + (f", fail {worse} {_fmt(self.fail)}" if self.fail is not None
                      else " (warns only)")


@dataclass(frozen=True)
class ReportConfig:
    """The checks (in report order) and the weight of each area in the overall score."""

    checks: tuple[CheckSpec, ...]
    area_weights: dict[str, float] = field(default_factory=dict)
    source: str = "default"

    def check(self, check_id: str) -> CheckSpec:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(f"no check {check_id!r}; checks: {[c.id for c in self.checks]}")


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _read_file(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"report config {str(path)!r} not found; pass a TOML or YAML file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"report config {str(path)!r} is {path.stat().st_size:,} bytes; a "
                         f"config is at most {MAX_CONFIG_BYTES:,} bytes")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"report config {str(path)!r} is not valid TOML: {e}") from e
    elif suffix in (".yaml", ".yml"):
        from qa.dataset import DatasetError
        from qa.io._common import load_yaml_safe  # alias bombs and deep nesting refused

        try:
            data = load_yaml_safe(path, text)
        except DatasetError as e:
            raise ValueError(f"report config {str(path)!r} is not usable YAML: {e}") from e
    else:
        raise ValueError(f"report config {str(path)!r}: use a .toml, .yaml or .yml file")
    if data is None:
        return {}
    if not isinstance(data, dict):  # bad file content: a ValueError, like a syntax error
        msg = (f"report config {str(path)!r} must be a mapping with 'checks' and 'areas', "
               f"got {type(data).__name__}")
        raise ValueError(msg)  # noqa: TRY004
    return data


_FIELDS = {f.name for f in fields(CheckSpec)}


def _spec(check_id: str, raw: dict[str, Any], where: str) -> CheckSpec:
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ValueError(f"{where}: check {check_id!r} has unknown fields {sorted(unknown)}; "
                         f"fields: {sorted(_FIELDS - {'id'})}")
    missing = [k for k in ("title", "area", "analysis", "metric", "pass_if", "warn")
               if raw.get(k) is None]
    if missing:
        raise ValueError(f"{where}: check {check_id!r} lacks {missing} (a new check needs "
                         "title, area, analysis, metric, pass_if and warn)")
    d = dict(raw, id=check_id)
    d["metric"] = (d["metric"],) if isinstance(d["metric"], str) else tuple(d["metric"])
    ev = d.get("evidence")
    if ev is not None and (isinstance(ev, str) or not all(isinstance(k, str) for k in ev)):
        raise ValueError(f"{where}: check {check_id!r} evidence must be a list of finding "
                         f"kinds, got {ev!r}")
    d["evidence"] = None if ev is None else tuple(ev)
    if d["area"] not in AREAS:
        raise ValueError(f"{where}: check {check_id!r} has area {d['area']!r}; areas: {AREAS}")
    if d["pass_if"] not in PASS_IF:
        raise ValueError(f"{where}: check {check_id!r} has pass_if {d['pass_if']!r}; use "
                         "'<=' (higher is worse) or '>=' (lower is worse)")
    if d.get("only_for") not in (None, *ONLY_FOR):
        raise ValueError(f"{where}: check {check_id!r} has only_for {d['only_for']!r}; use "
                         f"one of {ONLY_FOR} or leave it out")
    for k in ("warn", "fail", "absent", "weight"):
        v = d.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v)):
            raise ValueError(f"{where}: check {check_id!r} field {k!r} must be a number, "
                             f"got {v!r}")
    if d.get("weight", 1.0) < 0:
        raise ValueError(f"{where}: check {check_id!r} has a negative weight {d['weight']}")
    if d.get("fail") is not None:
        ordered = d["fail"] >= d["warn"] if d["pass_if"] == "<=" else d["fail"] <= d["warn"]
        if not ordered:
            raise ValueError(f"{where}: check {check_id!r}: with pass_if {d['pass_if']!r} the "
                             f"fail threshold ({d['fail']}) must be "
                             f"{'>=' if d['pass_if'] == '<=' else '<='} warn ({d['warn']})")
    return CheckSpec(**d)


def _merge(base: dict, override: dict, where: str) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    unknown = set(override) - {"checks", "areas"}
    if unknown:
        raise ValueError(f"{where}: unknown top-level keys {sorted(unknown)}; use 'checks' "
                         "and 'areas'")
    for key in ("checks", "areas"):
        sect = override.get(key) or {}
        if not isinstance(sect, dict):
            msg = f"{where}: '{key}' must be a table/mapping, got {type(sect).__name__}"
            raise ValueError(msg)  # noqa: TRY004
        merged = {k: (dict(v) if isinstance(v, dict) else v)
                  for k, v in (out.get(key) or {}).items()}
        for k, v in sect.items():
            if key == "checks":
                if not isinstance(v, dict):
                    raise ValueError(f"{where}: checks.{k} must be a table of fields")
                merged[k] = {**merged.get(k, {}), **v}
            else:
                merged[k] = v
        out[key] = merged
    return out


def load_config(path: str | Path | None = None) -> ReportConfig:
    """The report config: the defaults, overridden by the TOML/YAML file at ``path``.

    Raises FileNotFoundError for a missing file and ValueError (naming the check and field)
    for a malformed one."""
    raw = _read_file(DEFAULT_CONFIG_PATH)
    source = "default"
    if path is not None:
        path = Path(path)
        raw = _merge(raw, _read_file(path), str(path))
        source = str(path)
    areas = raw.get("areas") or {}
    bad = set(areas) - set(AREAS)
    if bad:
        raise ValueError(f"{source}: unknown areas {sorted(bad)}; areas: {AREAS}")
    weights = {a: float(areas.get(a, 1.0)) for a in AREAS}
    checks = [_spec(cid, dict(c), source) for cid, c in (raw.get("checks") or {}).items()]
    checks = tuple(c for c in checks if c.enabled)
    return ReportConfig(checks=checks, area_weights=weights, source=source)

