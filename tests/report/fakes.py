"""Small fake analysis results implementing the qa.results protocol, for the analyses that
have not landed yet (outliers, duplicates, quality, disagreement) and for exact scoring tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from qa.analyses import AnalysisRun, RunContext
from qa.results import findings_frame


def fake_result(analysis: str, metrics: dict, rows: list[dict] | None = None,
                page: str | None = None):
    """An object with ANALYSIS, to_dict(), metrics() and findings() for ``analysis``."""

    @dataclass(frozen=True)
    class Fake:
        ANALYSIS: ClassVar[str] = analysis
        m: dict = field(default_factory=dict)
        rows: tuple = ()

        def metrics(self) -> dict:
            return dict(self.m)

        def findings(self) -> pd.DataFrame:
            return findings_frame(list(self.rows), analysis=analysis,
                                  page=page or analysis)

        def to_dict(self) -> dict:
            return {"metrics": dict(self.m)}

    return Fake(metrics, tuple(rows or ()))


# What the engineers of issues 7-10 publish (their metric names and finding kinds).
OUTLIERS = dict(n_images_embedded=300, n_failed=2, n_outliers=10, outlier_share=10 / 300,
                n_class_outliers=0, is_clip=0)
DUPLICATES = dict(n_exact_pairs=3, n_near_pairs=10, n_clusters=12, n_cross_split_pairs=4,
                  n_leaking_images=5, n_inconsistent_label_clusters=1, n_listed_twice=0,
                  n_suggested_removals=8)
QUALITY = dict(n_flagged=3, flagged_share=0.01, n_dark=1, n_overexposed=1, n_blurry=1,
               n_low_information=0, n_grayscale=0, n_odd_aspect=0, n_tiny_image=0)
DISAGREEMENT = dict(n_flags=40, n_flagged_images=30, flagged_image_share=0.1, n_missing_label=8,
                    n_spurious_label=4, n_wrong_class=6, n_poor_localisation=6,
                    n_likely_label_errors=24, n_likely_model_misses=16,
                    n_label_error_images=30, label_error_image_share=0.1,
                    label_errors_estimated=0,
                    n_duplicate_annotation=0, n_label_issues=None, label_issue_share=None,
                    n_unknown_predictions=0)  # detection: the image-label figures are None


def planted_like_results() -> dict:
    """Fake results for the four analyses still being built, with planted-like findings."""
    return {
        "outliers": fake_result("outliers", OUTLIERS, [
            dict(kind="outlier", severity="warning", image_id=i, score=0.9,
                 message=f"image {i} looks unlike the rest") for i in (34, 79, 90)]),
        "duplicates": fake_result("duplicates", DUPLICATES, [
            dict(kind="leakage", severity="error", image_id=36, related_image_ids=(51,),
                 score=1.0, message="train image 36 is a near-duplicate of val image 51"),
            dict(kind="exact_duplicate", severity="warning", image_id=136,
                 related_image_ids=(127,), score=1.0, message="136 and 127 are identical")]),
        "quality": fake_result("quality", QUALITY, [
            dict(kind="dark", severity="info", image_id=7, score=0.6, message="dark")]),
        "disagreement": fake_result("disagreement", DISAGREEMENT, [
            dict(kind="wrong_class", severity="warning", image_id=68, ann_ids=(100254,),
                 score=0.9, message="the model sees a ring, the label says circle")]),
    }


def make_run(results: dict, *, skipped: dict | None = None, errors: dict | None = None,
             dataset=None) -> AnalysisRun:
    run = AnalysisRun(results=dict(results), skipped=dict(skipped or {}),
                      errors=dict(errors or {}))
    if dataset is not None:
        run.context = RunContext(dataset)
    return run


def run_fake_duplicates(dataset, ctx):
    """A ``run_analysis`` as qa.duplicates will have it (registered in RUNNERS by a test)."""
    return planted_like_results()["duplicates"]
