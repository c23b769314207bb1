"""Image-quality checks: dark, overexposed, blurry, low-information, grayscale in a colour set,
odd aspect ratio, tiny. Read from the one pixel pass (:mod:`qa.imagestats`); no pixels here.

Every check compares one statistic with a cut. The cut is relative to the dataset's own
distribution (a robust z-score, median +- 3.5 x 1.4826 x MAD, the Iglewicz-Hoaglin outlier
rule that cleanvision also uses, or a multiple of the IQR), then clamped between an absolute
*floor* (always flagged, so a dataset that is all dark is still flagged) and a *cap* (never
flagged, so a tight dataset does not flag its normal images for a tiny deviation):

========================  ==============  ==========================================================
check                     statistic       flagged when
========================  ==============  ==========================================================
dark                      brightness      < clamp(median - 3.5 s, floor 40, cap 90)   (luma 0..255)
overexposed               brightness      > clamp(median + 3.5 s, floor 215, cap 170)
blurry                    blur            log10(blur + 1) < clamp(median - 3.5 s, floor log10(6),
                                          cap log10(60)); images already low-information are not
                                          also blurry (a blank frame has no edges to be sharp)
low_information           entropy         < clamp(median - 3.5 s, floor 2.0 bits, cap 4.0 bits)
grayscale                 is_grayscale    grey while fewer than half the images are (a colour set)
odd_aspect                aspect          |ln aspect - median| > max(3 IQR, ln 2), or the long side
                                          is at least 4 x the short side
tiny                      min side        < 32 px, or sqrt(area) < 1/4 of the median's
========================  ==============  ==========================================================

(``s`` = 1.4826 x MAD, the standard deviation of a normal sample; IQR / 1.349 when the MAD is 0.)
Each flag has a score in [0, 1], higher = worse, defined in :data:`SCORES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from qa.dataset import FILE_NAME, IMAGE_ID, SPLIT, Dataset
from qa.results import findings_frame, frame_records

CHECKS = ("dark", "overexposed", "blurry", "low_information", "grayscale", "odd_aspect", "tiny")
# Iglewicz & Hoaglin's modified z-score cut for outliers (cleanvision uses the same spirit).
Z_CUT = 3.5
# Consistency constant: 1.4826 x MAD estimates the standard deviation of normal data.
MAD_SCALE = 1.4826
# Absolute floors (always flagged) and caps (never flagged by the relative rule alone).
DARK_FLOOR, DARK_CAP = 40.0, 90.0  # mean luma: 40 is a night shot, 90 a dim room
BRIGHT_FLOOR, BRIGHT_CAP = 215.0, 170.0  # mean luma: 215 is washed out, 170 a bright beach
BLUR_FLOOR, BLUR_CAP = 6.0, 60.0  # Laplacian variance at <= 512 px: 6 has no edges left
ENTROPY_FLOOR, ENTROPY_CAP = 2.0, 4.0  # bits of the luma histogram: 2 = about 4 grey levels
GRAY_SET_SHARE = 0.5  # a set where fewer than half the images are grey is a colour set
ASPECT_IQR, ASPECT_MIN_LOG, ASPECT_FLOOR = 3.0, math.log(2.0), 4.0
TINY_SIDE = 32  # px: below COCO's "small object" size, too small to label
TINY_RELATIVE = 0.25  # sqrt(area) under a quarter of the median image's
SEVERITY = {"dark": "warning", "overexposed": "warning", "blurry": "warning",
            "low_information": "warning", "grayscale": "info", "odd_aspect": "info",
            "tiny": "warning"}
SCORES = {
    "dark": "1 - brightness / 128, clipped to [0, 1] (black = 1)",
    "overexposed": "(brightness - 128) / 127, clipped (white = 1)",
    "blurry": "1 - log10(blur + 1) / log10(1000), clipped (no edges = 1)",
    "low_information": "1 - entropy / 8 (one grey level = 1)",
    "grayscale": "1 - share of grey images in the set",
    "odd_aspect": "|ln aspect - median| / ln 8, clipped",
    "tiny": "1 - min side / 64, clipped",
}
MESSAGES = {
    "dark": "is very dark (mean brightness {v:.0f} of 255)",
    "overexposed": "is overexposed (mean brightness {v:.0f} of 255)",
    "blurry": "looks blurred (Laplacian variance {v:.1f})",
    "low_information": "is nearly blank (entropy {v:.2f} bits)",
    "grayscale": "is grey in a colour dataset",
    "odd_aspect": "has an unusual aspect ratio ({v:.2f})",
    "tiny": "is tiny ({v:.0f} px on its short side)",
}
RULES = {
    "dark": "brightness < clamp(median - 3.5 s, floor 40, cap 90)",
    "overexposed": "brightness > clamp(median + 3.5 s, floor 215, cap 170)",
    "blurry": "log10(blur + 1) < clamp(median - 3.5 s, floor log10(7), cap log10(61)); "
              "not when already low-information",
    "low_information": "entropy < clamp(median - 3.5 s, floor 2 bits, cap 4 bits)",
    "grayscale": "grey while fewer than half the images are",
    "odd_aspect": "|ln aspect - median| > max(3 IQR, ln 2), or long side >= 4 x short side",
    "tiny": "short side < 32 px, or sqrt(area) < 1/4 of the median image's",
}
METRIC_OF = {"dark": "brightness", "overexposed": "brightness", "blurry": "blur",
             "low_information": "entropy", "grayscale": "colorfulness", "odd_aspect": "aspect",
             "tiny": "min_side"}


@dataclass(frozen=True, eq=False)
class QualityResult:
    """Image-quality flags of one dataset.

    * ``per_image``: image_id, file_name, split, the statistics (brightness, contrast, blur,
      entropy, colorfulness, is_grayscale, width, height, aspect, min_side), then per check
      ``is_<check>`` and ``score_<check>`` (higher = worse), ``n_flags`` and ``worst``
      (the check with the highest score among the flagged). Unreadable images are left out
      (validation reports them).
    * ``thresholds``: per check the statistic and the cut(s) actually used
      ``{check: {"metric": ..., "low": x or None, "high": y or None}}`` (for odd_aspect, the
      aspect ratios outside which an image is flagged).
    * ``counts``: check, flagged, share.
    """

    ANALYSIS: ClassVar[str] = "quality"

    n_images: int
    per_image: pd.DataFrame
    thresholds: dict[str, dict[str, Any]]
    counts: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)

    def flagged(self, check: str | None = None, *, image_ids=None) -> pd.DataFrame:
        """The flagged images (of one ``check``; among ``image_ids`` when given), worst
        first."""
        df = self.per_image
        if image_ids is not None:
            df = df[df[IMAGE_ID].isin([int(i) for i in image_ids])]
        if check is None:
            return df[df["n_flags"] > 0].sort_values("n_flags", ascending=False)
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r}; checks: {CHECKS}")
        return df[df[f"is_{check}"]].sort_values(f"score_{check}", ascending=False)

    def flagged_table(self, check: str, *, image_ids=None) -> pd.DataFrame:
        """The images ``check`` flags, worst first, with their statistics and that check's
        score only (for a table on a page or an export)."""
        df = self.flagged(check, image_ids=image_ids)
        drop = [c for c in df.columns if c.startswith(("is_", "score_")) and c != f"score_{check}"]
        return df.drop(columns=drop)

    def metrics(self) -> dict[str, float | int | None]:
        n = len(self.per_image)
        n_flagged = int((self.per_image["n_flags"] > 0).sum()) if n else 0
        out: dict[str, float | int | None] = {
            "n_flagged": n_flagged, "flagged_share": n_flagged / n if n else None}
        for check in CHECKS:
            out[f"n_{check}"] = int(self.per_image[f"is_{check}"].sum()) if n else 0
        out["n_tiny_image"] = out.pop("n_tiny")
        return out

    def findings(self) -> pd.DataFrame:
        rows = []
        for check in CHECKS:
            metric = METRIC_OF[check]
            for r in self.flagged(check).itertuples(index=False):
                v = getattr(r, metric)
                rows.append({"kind": check, "severity": SEVERITY[check],
                             "score": getattr(r, f"score_{check}"), "image_id": r.image_id,
                             "message": f"Image #{r.image_id} ({r.file_name}) "
                                        f"{MESSAGES[check].format(v=v)}."})
        return findings_frame(rows, analysis=self.ANALYSIS, page="quality")

    def to_dict(self) -> dict[str, Any]:
        return {"analysis": self.ANALYSIS, "n_images": self.n_images, "metrics": self.metrics(),
                "thresholds": self.thresholds, "counts": frame_records(self.counts),
                "flagged": frame_records(self.flagged()), "notes": list(self.notes)}


def rules_table() -> pd.DataFrame:
    """The rule and the score of every check, for a page or a report."""
    return pd.DataFrame({"check": list(CHECKS), "statistic": [METRIC_OF[c] for c in CHECKS],
                         "flagged when": [RULES[c] for c in CHECKS],
                         "score (higher = worse)": [SCORES[c] for c in CHECKS]})


def compute_quality(dataset: Dataset, stats=None) -> QualityResult:
    """Quality flags of every readable image of ``dataset`` (rules in the module docstring).
    ``stats``: :class:`qa.imagestats.ImageStats` (computed here when None). Returns a
    :class:`QualityResult`."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"compute_quality() needs a qa.Dataset, got {type(dataset).__name__}")
    if stats is None:
        from qa.imagestats import compute_image_stats

        stats = compute_image_stats(dataset)
    table = getattr(stats, "table", None)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"stats must be qa.imagestats.ImageStats, got {type(stats).__name__}")
    return _compute_quality(len(dataset.images), table)


def robust_scale(x: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 x MAD) of ``x``; IQR / 1.349 when the MAD is 0; (nan, nan) if empty."""
    x = x[np.isfinite(x)]
    if not len(x):
        return math.nan, math.nan
    med = float(np.median(x))
    s = MAD_SCALE * float(np.median(np.abs(x - med)))
    if s == 0:
        q1, q3 = np.percentile(x, [25, 75])
        s = float(q3 - q1) / 1.349
    return med, s


def _clamp_low(x: np.ndarray, floor: float, cap: float) -> float:
    """The cut under which a value is flagged: median - Z_CUT s, within [floor, cap]."""
    med, s = robust_scale(x)
    rel = med - Z_CUT * s if math.isfinite(med) else floor
    return float(min(max(rel, floor), cap))


def _clamp_high(x: np.ndarray, floor: float, cap: float) -> float:
    med, s = robust_scale(x)
    rel = med + Z_CUT * s if math.isfinite(med) else floor
    return float(max(min(rel, floor), cap))


def _compute_quality(n_images: int, table: pd.DataFrame) -> QualityResult:
    cols = [IMAGE_ID, FILE_NAME, SPLIT, "brightness", "contrast", "blur", "entropy",
            "colorfulness", "is_grayscale", "width", "height", "aspect"]
    df = table.loc[table["error"].isna(), cols].reset_index(drop=True)
    notes = []
    if len(df) < len(table):
        notes.append(f"{len(table) - len(df)} unreadable image(s) are not checked (see "
                     f"validation).")
    w = df["width"].astype(float).to_numpy()
    h = df["height"].astype(float).to_numpy()
    df["min_side"] = np.minimum(w, h)
    bright = df["brightness"].to_numpy(float)
    blur_log = np.log10(df["blur"].to_numpy(float) + 1)
    entropy = df["entropy"].to_numpy(float)
    log_aspect = np.log(df["aspect"].to_numpy(float))
    gray = df["is_grayscale"].fillna(False).to_numpy(bool)

    dark_cut = _clamp_low(bright, DARK_FLOOR, DARK_CAP)
    bright_cut = _clamp_high(bright, BRIGHT_FLOOR, BRIGHT_CAP)
    blur_cut = _clamp_low(blur_log, math.log10(BLUR_FLOOR + 1), math.log10(BLUR_CAP + 1))
    ent_cut = _clamp_low(entropy, ENTROPY_FLOOR, ENTROPY_CAP)
    if len(df):
        med_aspect = float(np.median(log_aspect))
        q1, q3 = np.percentile(log_aspect, [25, 75])
        aspect_cut = max(ASPECT_IQR * float(q3 - q1), ASPECT_MIN_LOG)
        side = np.sqrt(w * h)
        tiny_cut_side = TINY_RELATIVE * float(np.median(side))
    else:
        med_aspect, aspect_cut, side, tiny_cut_side = 0.0, ASPECT_MIN_LOG, w, 0.0
    gray_share = float(gray.mean()) if len(df) else 0.0

    flags = {
        "dark": bright < dark_cut,
        "overexposed": bright > bright_cut,
        "low_information": entropy < ent_cut,
        "grayscale": gray & (gray_share < GRAY_SET_SHARE),
        "odd_aspect": (np.abs(log_aspect - med_aspect) > aspect_cut)
        | (np.abs(log_aspect) >= math.log(ASPECT_FLOOR)),
        "tiny": (df["min_side"].to_numpy() < TINY_SIDE) | (side < tiny_cut_side),
    }
    flags["blurry"] = (blur_log < blur_cut) & ~flags["low_information"]
    scores = {
        "dark": 1 - bright / 128,
        "overexposed": (bright - 128) / 127,
        "blurry": 1 - blur_log / 3,
        "low_information": 1 - entropy / 8,
        "grayscale": np.full(len(df), 1 - gray_share),
        "odd_aspect": np.abs(log_aspect - med_aspect) / math.log(8),
        "tiny": 1 - df["min_side"].to_numpy(float) / 64,
    }
    for check in CHECKS:
        df[f"is_{check}"] = flags[check].astype(bool)
        df[f"score_{check}"] = np.clip(scores[check], 0, 1)
    flag_cols = [f"is_{c}" for c in CHECKS]
    df["n_flags"] = df[flag_cols].sum(axis=1).astype(int)
    masked = np.where(df[flag_cols].to_numpy(), df[[f"score_{c}" for c in CHECKS]].to_numpy(), -1)
    worst = np.array(CHECKS, dtype=object)[masked.argmax(axis=1)] if len(df) else []
    df["worst"] = np.where(df["n_flags"] > 0, worst, None)
    thresholds = {
        "dark": {"metric": "brightness", "low": dark_cut, "high": None},
        "overexposed": {"metric": "brightness", "low": None, "high": bright_cut},
        "blurry": {"metric": "blur", "low": 10 ** blur_cut - 1, "high": None},
        "low_information": {"metric": "entropy", "low": ent_cut, "high": None},
        "grayscale": {"metric": "is_grayscale", "low": None, "high": None,
                      "share": gray_share},
        "odd_aspect": {"metric": "aspect",
                       "low": max(math.exp(med_aspect - aspect_cut), 1 / ASPECT_FLOOR),
                       "high": min(math.exp(med_aspect + aspect_cut), ASPECT_FLOOR)},
        "tiny": {"metric": "min_side", "low": float(TINY_SIDE), "high": None,
                 "min_sqrt_area": tiny_cut_side},
    }
    if gray_share >= GRAY_SET_SHARE and len(df):
        notes.append(f"{gray_share:.0%} of the images are grey: a greyscale set, so grey "
                     f"images are not flagged.")
    n = max(len(df), 1)
    counts = pd.DataFrame({"check": list(CHECKS),
                           "flagged": [int(flags[c].sum()) if c != "blurry" else
                                       int(df["is_blurry"].sum()) for c in CHECKS]})
    counts["share"] = counts["flagged"] / n
    return QualityResult(n_images=n_images, per_image=df, thresholds=thresholds, counts=counts,
                         notes=tuple(notes))


def run_analysis(dataset: Dataset, ctx) -> QualityResult:
    """Runner for :mod:`qa.analyses`: quality flags from the shared pixel pass."""
    from qa.analyses import Skip

    if dataset.root is None or dataset.images.empty:
        raise Skip("no image files to check")
    stats = ctx.image_stats()
    if stats.table["error"].notna().all():
        raise Skip("no image could be read")
    return compute_quality(dataset, stats)
