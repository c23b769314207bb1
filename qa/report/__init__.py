"""The dataset health report: checks (as data), a 0-100 score with per-area sub-scores,
HTML / PDF / JSON exports, comparison of two reports, and the report history.

    from qa.report import build_report, load_config
    report = build_report(ds)                 # or build_report(run_analyses(ds), config)
    report.score, report.area_scores, report.checks
    report.to_dict()                          # JSON, validated by report.schema.json
    write_report(report, "out/")              # report.json, report.html, report.pdf
    compare("old/report.json", report)        # score delta, checks improved / regressed
"""

from qa.report.compare import Comparison, compare
from qa.report.config import AREAS, CheckSpec, ReportConfig, load_config
from qa.report.core import (
    GATE_LEVELS,
    STATUSES,
    CheckResult,
    HealthReport,
    build_report,
    dataset_key,
    to_report,
)
from qa.report.export import write_report

__all__ = ["AREAS", "GATE_LEVELS", "STATUSES", "CheckResult", "CheckSpec", "Comparison",
           "HealthReport", "ReportConfig", "build_report", "compare", "dataset_key",
           "load_config", "to_report", "write_report"]
