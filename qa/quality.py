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
dark                      luma_p98        the brightest 2 % < clamp(median - 3.5 s, floor 40,
                                          cap 100) (luma 0..255): nothing lit; with labels also
                                          the objects' mean luma < 100
overexposed               luma_p02,       no labels: the darkest 2 % > clamp(median + 3.5 s,
                          objects' core   floor 215, cap 170); labels: the central half of the
                                          boxes >= 30 % blown, >= 10 % of the picture blown and
                                          the darkest 2 % >= 50, or the darkest 2 % > 215
blurry                    blur            log10(blur + 1) < clamp(median - 3.5 s, floor log10(6),
                                          cap log10(60)); images already low-information are not
                                          also blurry (a blank frame has no edges to be sharp)
low_information           entropy         < clamp(median - 3.5 s, floor 2.0 bits, cap 4.0 bits)
                                          and p98 - p02 < 48; with labels the objects not sharp
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

from qa.dataset import FILE_NAME, IMAGE_ID, SPLIT, Dataset, image_label
from qa.results import findings_frame, frame_records

CHECKS = ("dark", "overexposed", "blurry", "low_information", "grayscale", "odd_aspect", "tiny")
# Iglewicz & Hoaglin's modified z-score cut for outliers (cleanvision uses the same spirit).
Z_CUT = 3.5
# Consistency constant: 1.4826 x MAD estimates the standard deviation of normal data.
MAD_SCALE = 1.4826
# Absolute floors (always flagged) and caps (never flagged by the relative rule alone).
# Exposure (luma 0..255) of the labelled objects (their mean), or without labels of the part of
# the picture that should carry light: dark = its brightest 2 % (a flash shot on black still
# has bright objects), overexposed = its darkest 2 % (a product on white still has dark
# parts). Floors are always flagged; caps are never crossed by the relative rule.
DARK_FLOOR, DARK_CAP = 40.0, 100.0  # brightest part under 40: nothing in the picture is lit
BRIGHT_FLOOR, BRIGHT_CAP = 215.0, 170.0  # darkest part over 215: everything is washed out
# With labels, overexposed needs the objects' own middle blown: at least CORE_BLOWN_MIN of
# the pixels of the central half of the boxes at luma >= 247 (a white moth on white has
# blown background around it and texture in it; a washed-out object is blown through), and
# at least PICTURE_BLOWN_MIN of the whole picture blown (a small white object on a normal
# picture is not overexposure). Chosen on the real sets (docs/findings.md): ordinary images
# reach 0.29 in the core; 2 stops over, 0.35 and more on the chess and BCCD sets.
CORE_BLOWN_MIN = 0.3
PICTURE_BLOWN_MIN = 0.1
# ... and the blacks lifted: the darkest 2 % at LIFTED_BLACK or above. A product shot on
# white (pills, spools of thread: white objects in boxes that take in the background) keeps
# its blacks (p02 8-42 on the trash set); an exposure 2 stops over lifts them (median 69-108
# on the rice-pest and chess copies; deep blacks such as a black chess piece survive, and
# those copies are missed).
LIFTED_BLACK = 50.0
# With labels, dark also needs the objects' mean luma under DARK_CAP (objects in the dark).
# A nearly blank frame also has a narrow range of grey: p98 - p02 under SPREAD_CAP levels.
SPREAD_CAP = 48.0
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
    "dark": "is very dark (its brightest part at {v:.0f} of 255)",
    "overexposed": "is overexposed (its labelled objects blown through, or its darkest part "
                   "at {v:.0f} of 255)",
    "blurry": "looks blurred (Laplacian variance {v:.1f} on its objects or sharpest part)",
    "low_information": "is nearly blank (entropy {v:.2f} bits)",
    "grayscale": "is grey in a colour dataset",
    "odd_aspect": "has an unusual aspect ratio ({v:.2f})",
    "tiny": "is tiny ({v:.0f} px on its short side)",
}
RULES = {
    "dark": "the brightest 2 % < clamp(median - 3.5 s, floor 40, cap 100): nothing in the "
            "picture is lit (with labels also the objects' mean luma < 100)",
    "overexposed": "no labels: the darkest 2 % > clamp(median + 3.5 s, floor 215, cap 170); "
                   "labels: >= 30 % of the central half of the boxes blown, >= 10 % of "
                   "the picture, and the darkest 2 % >= 50 (blacks lifted), or the darkest "
                   "2 % > 215",
    "blurry": "log10(sharpness + 1) < clamp(median - 3.5 s, floor log10(7), cap log10(61)), "
              "sharpness on the objects (no labels: the sharpest cells); not when already "
              "low-information",
    "low_information": "entropy < clamp(median - 3.5 s, floor 2 bits, cap 4 bits) and "
                       "p98 - p02 < 48 grey levels (with labels: the objects not sharp "
                       "either)",
    "grayscale": "grey while fewer than half the images are",
    "odd_aspect": "|ln aspect - median| > max(3 IQR, ln 2), or long side >= 4 x short side",
    "tiny": "short side < 32 px, or sqrt(area) < 1/4 of the median image's",
}
METRIC_OF = {"dark": "exposure_dark", "overexposed": "exposure_bright",
             "blurry": "sharp_objects",
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
                             "message": f"{image_label(r.file_name, getattr(r, SPLIT, None))} "
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
    return _compute_quality(len(dataset.images), table, _object_stats(dataset, table))


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


def _object_stats(ds: Dataset, table: pd.DataFrame) -> pd.DataFrame:
    """Per labelled image, the statistics of the cells its boxes cover (from the pixel pass'
    grids): ``obj_luma`` (mean luma), ``obj_bright`` (share of blown pixels), ``obj_dark``
    (share of crushed pixels), ``obj_sharp`` (Laplacian variance of the sharpest 10 % of the
    cells: an object's edges, since its inside may be plain). Boxes of the
    annotator with most labels; images without boxes are absent."""
    from qa.imagestats import GRID, SHARP_QUANT, grid_array

    anns = ds.annotations
    cols = ["obj_luma", "obj_bright", "obj_dark", "obj_sharp", "obj_core_bright"]
    if anns.empty or "w" not in anns or "grid_luma" not in table:
        return pd.DataFrame(columns=[IMAGE_ID, *cols])
    from qa.balance import default_annotator

    who = default_annotator(ds)
    a = anns[anns["w"].notna() & (anns["w"] > 0) & (anns["h"] > 0)]
    if who is not None:
        a = a[a["annotator"] == who]
    t = table.set_index(IMAGE_ID)
    rows = []
    for iid, g in a.groupby(IMAGE_ID):
        if iid not in t.index or not isinstance(t.at[iid, "grid_luma"], str):
            continue
        w, h = t.at[iid, "width"], t.at[iid, "height"]
        if pd.isna(w) or pd.isna(h) or not w or not h:
            continue
        boxes = g[["x", "y", "w", "h"]].to_numpy(float)
        cover = _cells(boxes, w, h)
        # the central half of each box (in width and height): the object itself, not the
        # background its box takes in
        core = _cells(boxes + np.c_[boxes[:, 2:] / 4, -boxes[:, 2:] / 2], w, h)
        if not cover.any():
            continue
        luma, sharp = grid_array(t.at[iid, "grid_luma"]), grid_array(t.at[iid, "grid_sharp"])
        bright, dark = grid_array(t.at[iid, "grid_bright"]), grid_array(t.at[iid, "grid_dark"])
        rows.append((int(iid), float(luma[cover].mean()), float(bright[cover].mean()) / 255,
                     float(dark[cover].mean()) / 255,
                     float(10 ** (np.percentile(sharp[cover], 90) / SHARP_QUANT) - 1),
                     float(bright[core].mean()) / 255 if core.any() else np.nan))
    return pd.DataFrame(rows, columns=[IMAGE_ID, *cols])


def _cells(boxes: np.ndarray, w: float, h: float) -> np.ndarray:
    """The GRID x GRID cells that boxes (x, y, w, h in pixels) touch (at least one each)."""
    from qa.imagestats import GRID

    cover = np.zeros((GRID, GRID), bool)
    for x, y, bw, bh in boxes:
        x0, x1 = int(np.floor(x / w * GRID)), int(np.ceil((x + bw) / w * GRID))
        y0, y1 = int(np.floor(y / h * GRID)), int(np.ceil((y + bh) / h * GRID))
        cover[max(y0, 0):max(min(y1, GRID), y0 + 1),
              max(x0, 0):max(min(x1, GRID), x0 + 1)] = True
    return cover


def _compute_quality(n_images: int, table: pd.DataFrame, objects: pd.DataFrame | None = None
                     ) -> QualityResult:
    cols = [IMAGE_ID, FILE_NAME, SPLIT, "brightness", "contrast", "blur", "entropy",
            "colorfulness", "is_grayscale", "width", "height", "aspect"]
    extra = [c for c in ("luma_p02", "luma_p98", "sharpness", "clip_bright", "clip_dark")
             if c in table]
    df = table.loc[table["error"].isna(), cols + extra].reset_index(drop=True)
    for c in ("luma_p02", "luma_p98", "sharpness", "clip_bright", "clip_dark"):
        if c not in df:  # records of an older pixel pass: fall back to the image mean
            df[c] = {"luma_p02": df["brightness"], "luma_p98": df["brightness"],
                     "sharpness": df["blur"]}.get(c, np.nan)
    obj = objects if objects is not None else pd.DataFrame(columns=[IMAGE_ID, "obj_luma",
                                                                    "obj_bright", "obj_dark",
                                                                    "obj_sharp",
                                                                    "obj_core_bright"])
    if "obj_core_bright" not in obj:
        obj = obj.assign(obj_core_bright=np.nan)
    df = df.merge(obj, on=IMAGE_ID, how="left")
    for c in ("obj_luma", "obj_bright", "obj_dark", "obj_sharp", "obj_core_bright"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    notes = []
    if len(df) < len(table):
        notes.append(f"{len(table) - len(df)} unreadable image(s) are not checked (see "
                     f"validation).")
    w = df["width"].astype(float).to_numpy()
    h = df["height"].astype(float).to_numpy()
    df["min_side"] = np.minimum(w, h)
    df["exposure_dark"] = df["luma_p98"]
    df["exposure_bright"] = df["luma_p02"]
    df["sharp_objects"] = np.where(df["obj_sharp"].notna(), df["obj_sharp"], df["sharpness"])
    labelled = df["obj_luma"].notna().to_numpy()
    # exposure is judged on the labelled objects where there are labels, else on the part of
    # the picture that should carry light (dark: the brightest 2 %; overexposed: the darkest
    # 2 %): a product on a white table or a flash shot on black is not a defect
    bright = df["brightness"].to_numpy(float)
    dark_stat = df["luma_p98"].to_numpy(float)
    over_stat = df["luma_p02"].to_numpy(float)
    # blur on the objects, or on the sharpest part of the picture (90th percentile of cells)
    blur_stat = np.where(labelled, df["obj_sharp"], df["sharpness"]).astype(float)
    blur_log = np.log10(np.maximum(blur_stat, 0) + 1)
    entropy = df["entropy"].to_numpy(float)
    spread = (df["luma_p98"] - df["luma_p02"]).to_numpy(float)
    log_aspect = np.log(df["aspect"].to_numpy(float))
    gray = df["is_grayscale"].fillna(False).to_numpy(bool)

    dark_cut = _clamp_low(dark_stat, DARK_FLOOR, DARK_CAP)
    bright_cut = _clamp_high(over_stat, BRIGHT_FLOOR, BRIGHT_CAP)
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

    p02 = df["luma_p02"].to_numpy(float)
    core_blown = df["obj_core_bright"].fillna(0).to_numpy(float)
    blown = df["clip_bright"].fillna(0).to_numpy(float)
    obj_sharp = df["obj_sharp"].to_numpy(float)
    flags = {
        # dark: nothing in the picture is lit (a black chess piece on a lit board, a flash
        # shot on black, are not), and with labels the objects are in the dark too
        "dark": (dark_stat < dark_cut)
        & (~labelled | (df["obj_luma"].fillna(0).to_numpy() < DARK_CAP)),
        # overexposed: without labels the darkest part washed out; with labels the objects
        # blown through, not around them (a white specimen on white), or everything washed out
        "overexposed": np.where(
            labelled, ((core_blown >= CORE_BLOWN_MIN) & (blown >= PICTURE_BLOWN_MIN)
                       & (p02 >= LIFTED_BLACK)) | (p02 > BRIGHT_FLOOR), over_stat > bright_cut),
        # nearly blank: little information AND a narrow range of grey (a white product shot
        # has a low entropy but the full range), and with labels objects without edges (a
        # sharp bug on a plain wall is a plain background, not a blank frame)
        "low_information": (entropy < ent_cut) & (spread < SPREAD_CAP)
        & (~labelled | ~(np.log10(np.maximum(obj_sharp, 0) + 1) >= blur_cut)),
        "grayscale": gray & (gray_share < GRAY_SET_SHARE),
        "odd_aspect": (np.abs(log_aspect - med_aspect) > aspect_cut)
        | (np.abs(log_aspect) >= math.log(ASPECT_FLOOR)),
        "tiny": (df["min_side"].to_numpy() < TINY_SIDE) | (side < tiny_cut_side),
    }
    flags["blurry"] = (blur_log < blur_cut) & ~flags["low_information"]
    scores = {
        "dark": 1 - dark_stat / 128,
        "overexposed": (over_stat - 128) / 127,
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
        "dark": {"metric": "exposure_dark", "low": dark_cut, "high": None},
        "overexposed": {"metric": "exposure_bright", "low": None, "high": bright_cut},
        "blurry": {"metric": "sharp_objects", "low": 10 ** blur_cut - 1, "high": None},
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
