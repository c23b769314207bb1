"""Class balance and dataset statistics: what an ML engineer checks before training.

``compute_class_balance(ds)`` returns a :class:`BalanceResult` with

* per class: instances, images containing the class, share, rare flag; counts per split; the
  imbalance ratio, normalised entropy and a chi-square test of whether the splits share one
  class mix;
* per image: objects per image and the share of empty images (negatives) per split;
* per box: COCO area bucket, relative size, aspect ratio, tiny and border flags;
* image resolutions, a heatmap of where box centres fall, class co-occurrence;
* with several annotators: each annotator's class mix and who deviates from the others;
* ``checks``: pass/fail results with the failing items, for the health report.

Which annotator is counted
--------------------------
With several annotators the same object is labelled once per annotator, so pooled counts
inflate every class by the number of annotators who saw it. ``annotator=None`` therefore counts
the annotator with the most annotations (:func:`default_annotator`); pass a name to count
another, or :data:`ALL_ANNOTATORS` to pool them on purpose. ``annotator_comparison`` always
compares every annotator, whatever is counted.

Everything is vectorised (bincount / groupby / one sparse product); no loop over images.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import sparse, stats

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    HEIGHT,
    IMAGE_ID,
    NAME,
    SPLIT,
    SPLITS,
    WIDTH,
    Dataset,
    H,
    W,
    X,
    Y,
    name_images,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------
# Practitioners' rule of thumb: a class with fewer than 10% of the most common class's
# instances is under-represented enough that models under-fit it without re-sampling/weights.
RARE_CLASS_FRACTION = 0.10
# COCO's area ranges (cocoeval): small < 32², medium < 96², large >= 96². COCO applies them to
# the segment area; we use the box area w*h, which is what every box-only format has.
COCO_SMALL_MAX_AREA = 32**2
COCO_MEDIUM_MAX_AREA = 96**2
AREA_BUCKETS = ("small", "medium", "large")
# Boxes with a side under 8 px are below the stride of the first feature map of common detectors
# (YOLO, Faster R-CNN FPN P3 = 8 px) and are often stray clicks rather than objects.
DEFAULT_MIN_BOX_SIDE = 8
# A box "touches" the border when an edge lies within 1 px of the image edge: exporters round
# coordinates and CVAT/LabelImg clamp to the last pixel (same tolerance as qa.validation).
BORDER_TOUCH_PX = 1.0
# Coordinates rounded by an exporter (YOLO's normalised floats, a half-pixel convention) may
# overshoot the image by a fraction of a pixel: within half a pixel a box touches the border,
# it does not cross it.
ROUNDING_PX = 0.5
# 20x20 bins of normalised box centres: fine enough to see a centre bias, coarse enough that
# per-class maps of a few hundred boxes are not all noise.
CENTER_BINS = 20
# More than half the images without any object usually means labels were lost in export rather
# than planned negatives (Ultralytics suggests 0-10% background images).
MAX_EMPTY_IMAGE_SHARE = 0.5
# Up to 1% tiny boxes is normal for small-object datasets (COCO has such); more suggests a
# labelling tool or conversion problem.
MAX_TINY_BOX_SHARE = 0.01
# The split class-mix check fails only when the difference is both significant and not tiny:
# with ~1e6 boxes any difference is "significant", so we also require Cramér's V >= 0.1, the
# conventional threshold of a small effect (Cohen 1988).
SPLIT_MIX_ALPHA = 0.05
SPLIT_MIX_MIN_CRAMERS_V = 0.1
# A cell (annotator x class, split x class) deviates when its adjusted standardised residual is
# beyond 3 (two-sided p ~ 0.003 per cell, so few false alarms over 80 classes) ...
CELL_RESIDUAL = 3.0
# ... and, for annotators, its share is at least 1.5x / at most 1/1.5 of the annotators' median:
# an annotator who relabels a third of one class as another (a systematic confusion) moves that
# class's share to ~0.67x, while ordinary annotator-to-annotator noise stays within ~10-20%.
ANNOTATOR_SHARE_RATIO = 1.5
# Ids kept per check for the page's gallery and the report (the counts are always complete).
MAX_CHECK_IDS = 500
# Label of images whose split is not set.
NO_SPLIT = "none"
# Pass as ``annotator`` to pool every annotator's labels (counts then inflate, see above).
ALL_ANNOTATORS = "(all annotators)"


class BalanceWarning(UserWarning):
    """A statistic is undefined for this input (one class, one split, no boxes ...): its value
    is NaN and ``BalanceResult.notes`` explains why."""


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BalanceCheck:
    """One pass/fail check for the health report.

    ``passed`` is None when the check does not apply (e.g. no boxes). ``failing`` names the
    failing items (class names, split names, "annotator: class" or ann_ids); ``image_ids`` and
    ``ann_ids`` are the offending images/annotations to show (capped at ``MAX_CHECK_IDS``).
    """

    name: str
    passed: bool | None
    message: str
    failing: tuple = ()
    image_ids: tuple[int, ...] = ()
    ann_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "passed": self.passed,
            "message": self.message,
            "failing": [_py(v) for v in self.failing],
            "image_ids": [int(i) for i in self.image_ids],
            "ann_ids": [int(i) for i in self.ann_ids],
        }


@dataclass(frozen=True, eq=False)
class BalanceResult:
    """Class balance and dataset statistics (see the module docstring).

    Tables (DataFrames):

    * ``per_class``: category_id, name, instances, images, share, share_of_max, is_rare
      (fewer than ``RARE_CLASS_FRACTION`` of the top class; absent classes included),
      is_absent (no instance). Order of ``dataset.categories``.
    * ``per_split``: long table split, category_id, name, instances, images, share (within the
      split), residual (adjusted standardised residual of the chi-square test; NaN where not
      tested).
    * ``per_image``: image_id, split (categorical, ``splits`` order), n_objects, is_empty
      (no annotation of the counted annotator: a negative, or for classification an
      unlabelled image).
    * ``empty_by_split``: split, images, empty_images, empty_share (last row "all").
    * ``boxes``: per box ann_id, image_id, category_id, name, w, h, area (w*h), area_bucket,
      rel_size (sqrt(box area / image area)), aspect (w / h), is_tiny, touches_border,
      crosses_border, is_border. None without boxes (classification).
    * ``box_stats``: per class boxes, small, medium, large, tiny, border, crossing,
      median_area, median_rel_size, median_aspect. None without boxes.
    * ``image_sizes``: distinct resolutions width, height, aspect, images (most common first).
    * ``cooccurrence``: K x K images containing both classes (diagonal: images with the class),
      index and columns are the class names.
    * ``annotator_comparison``: long table annotator, category_id, name, instances, share,
      reference_share, ratio_to_reference (share / reference_share; 1 is in line, far from 1
      in either direction is worse), residual (adjusted standardised residual of the annotator
      x class table), is_deviant. ``reference_share`` is the median share over all annotators
      (with 3 or more: one deviant annotator cannot pull it) or the other annotator's share
      (with 2: both are flagged, since which one deviates cannot be told). Annotators who
      labelled different images are compared by share, which assumes similar image mixes.
      Empty with one annotator.

    Arrays: ``center_hist`` (bins x bins, row 0 = top of the image) counts normalised box centres;
    ``center_hist_per_class`` (K x bins x bins) per class in ``per_class`` order.

    Scores: ``imbalance_ratio`` (most common / rarest non-zero class; 1 is balanced, higher is
    worse), ``normalized_entropy`` (H / log K over all K classes; 1 is balanced, lower is worse),
    ``split_chi2`` / ``split_p_value`` / ``split_dof`` / ``split_cramers_v`` (low p and high V:
    the splits differ; no Yates correction, so a 2x2 table gives the plain Pearson statistic;
    classes absent from every tested split and the "none" split are left out). NaN where
    undefined, with a warning and a note.
    """

    annotator: str | None
    splits: tuple[str, ...]
    n_images: int
    n_annotations: int
    n_classes: int
    per_class: pd.DataFrame
    per_split: pd.DataFrame
    imbalance_ratio: float
    normalized_entropy: float
    absent_classes: tuple[str, ...]
    rare_classes: tuple[str, ...]
    split_chi2: float
    split_p_value: float
    split_dof: float
    split_cramers_v: float
    per_image: pd.DataFrame
    empty_by_split: pd.DataFrame
    boxes: pd.DataFrame | None
    box_stats: pd.DataFrame | None
    center_hist: np.ndarray | None
    center_hist_per_class: np.ndarray | None
    image_sizes: pd.DataFrame
    cooccurrence: pd.DataFrame
    annotator_comparison: pd.DataFrame
    checks: tuple[BalanceCheck, ...]
    notes: tuple[str, ...]
    min_box_side: float
    rare_fraction: float
    #: the dataset's images table, so that findings name files, not internal ids
    image_table: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def has_boxes(self) -> bool:
        return self.boxes is not None

    @property
    def tiny_boxes(self) -> pd.DataFrame:
        """Boxes with a side under ``min_box_side`` (ann_id, image_id, ..., is_tiny)."""
        return self._flagged("is_tiny")

    @property
    def border_boxes(self) -> pd.DataFrame:
        """Boxes touching (within 1 px) or crossing the image border."""
        return self._flagged("is_border")

    def _flagged(self, col: str) -> pd.DataFrame:
        if self.boxes is None:
            return pd.DataFrame(columns=[ANN_ID, IMAGE_ID, col])
        return self.boxes[self.boxes[col]].reset_index(drop=True)

    def check(self, name: str) -> BalanceCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    ANALYSIS: ClassVar[str] = "balance"

    def metrics(self) -> dict[str, float | int | None]:
        """Headline figures for the health report (see :mod:`qa.results`). Ratios and shares
        are in [0, 1]; None where undefined (no boxes, one split, one annotator)."""
        pc = self.per_class
        counts = pc["instances"].to_numpy() if len(pc) else np.zeros(0)
        eb_all = self.empty_by_split[self.empty_by_split[SPLIT] == "all"]
        n_boxes = len(self.boxes) if self.has_boxes else 0
        num = lambda v: None if v is None or not np.isfinite(v) else float(v)  # noqa: E731
        return {
            "n_classes": int(self.n_classes),
            "n_annotations": int(self.n_annotations),
            "imbalance_ratio": num(self.imbalance_ratio),
            "normalized_entropy": num(self.normalized_entropy),
            "min_class_ratio": (float(pc["share_of_max"].min()) if len(pc) and counts.max() > 0
                                else None),
            "min_class_instances": int(counts.min()) if len(counts) else None,
            "n_rare_classes": len(self.rare_classes),
            "n_absent_classes": len(self.absent_classes),
            "empty_image_share": (float(eb_all["empty_share"].iloc[0]) if len(eb_all)
                                  and eb_all["images"].iloc[0] else None),
            "n_empty_images": int(self.per_image["is_empty"].sum()),
            "tiny_box_share": float(self.boxes["is_tiny"].mean()) if n_boxes else None,
            "n_boxes_crossing_border": (int(self.boxes["crosses_border"].sum()) if n_boxes
                                        else None),
            "split_p_value": num(self.split_p_value),
            "split_cramers_v": num(self.split_cramers_v),
            "n_deviant_annotator_classes": (int(self.annotator_comparison["is_deviant"].sum())
                                            if len(self.annotator_comparison) else None),
        }

    def findings(self) -> pd.DataFrame:
        """Flagged items in the shared findings shape (:data:`qa.results.FINDINGS_SCHEMA`):
        rare and absent classes and deviant annotator/class shares (dataset-level, no image),
        empty images, tiny boxes and boxes crossing the border. ``score``: higher is worse."""
        from qa.results import findings_frame

        rows = []
        pc = self.per_class
        for r in pc[pc["is_rare"] & ~pc["is_absent"]].itertuples(index=False):
            rows.append(dict(kind="rare_class", severity="warning", category_id=r.category_id,
                             score=1 - min(1.0, r.share_of_max / self.rare_fraction),
                             message=f"class '{r.name}' has {r.instances} instances, "
                                     f"{r.share_of_max:.1%} of the most common class (rule: "
                                     f"{self.rare_fraction:.0%}); collect or label more of it"))
        for r in pc[pc["is_absent"]].itertuples(index=False):
            rows.append(dict(kind="absent_class", severity="warning", category_id=r.category_id,
                             score=1.0, message=f"class '{r.name}' is declared but has no "
                                                "instance; label it or remove it"))
        cmp_ = self.annotator_comparison
        if len(cmp_):
            for r in cmp_[cmp_["is_deviant"]].itertuples(index=False):
                ratio = r.ratio_to_reference
                rows.append(dict(kind="annotator_class_mix", severity="warning",
                                 category_id=r.category_id, annotator=str(r.annotator),
                                 score=min(1.0, abs(np.log(ratio)) / np.log(4))
                                 if ratio and np.isfinite(ratio) and ratio > 0 else 1.0,
                                 message=f"{r.annotator} gives '{r.name}' {r.share:.1%} of their "
                                         f"labels against {r.reference_share:.1%} for the "
                                         "others; check their guideline for this class"))
        pi = self.per_image
        empty = pi.loc[pi["is_empty"], IMAGE_ID]
        for iid, name in zip(empty, name_images(self.image_table, empty)):
            rows.append(dict(kind="empty_image", severity="info", image_id=iid, score=0.0,
                             message=f"{name} has no objects: a true negative, or labels "
                                     "are missing"))
        if self.has_boxes:
            b = self.boxes
            for r in b[b["is_tiny"]].itertuples(index=False):
                rows.append(dict(kind="tiny_box", severity="info", image_id=r.image_id,
                                 ann_ids=(r.ann_id,), category_id=r.category_id, score=0.5,
                                 message=f"annotation {r.ann_id} ('{r.name}') is "
                                         f"{r.w:g} x {r.h:g} px, under {self.min_box_side:g} px"))
            for r in b[b["crosses_border"]].itertuples(index=False):
                rows.append(dict(kind="box_crossing_border", severity="warning",
                                 image_id=r.image_id, ann_ids=(r.ann_id,),
                                 category_id=r.category_id, score=0.5,
                                 message=f"annotation {r.ann_id} ('{r.name}') extends past the "
                                         "image border; clip it to the image"))
        return findings_frame(rows, analysis=self.ANALYSIS, page="balance")

    def to_dict(self) -> dict:
        """JSON-ready summary. The per-box and per-image tables are summarised, not listed."""
        recs = lambda df: [{k: _py(v) for k, v in r.items()}  # noqa: E731
                           for r in df.to_dict(orient="records")]
        return {
            "annotator": self.annotator,
            "splits": list(self.splits),
            "n_images": self.n_images,
            "n_annotations": self.n_annotations,
            "n_classes": self.n_classes,
            "imbalance_ratio": _py(self.imbalance_ratio),
            "normalized_entropy": _py(self.normalized_entropy),
            "absent_classes": list(self.absent_classes),
            "rare_classes": list(self.rare_classes),
            "split_chi2": _py(self.split_chi2),
            "split_p_value": _py(self.split_p_value),
            "split_dof": _py(self.split_dof),
            "split_cramers_v": _py(self.split_cramers_v),
            "per_class": recs(self.per_class),
            "per_split": recs(self.per_split),
            "empty_by_split": recs(self.empty_by_split),
            "objects_per_image": {
                str(k): int(v) for k, v in
                self.per_image["n_objects"].value_counts().sort_index().items()},
            "box_stats": recs(self.box_stats) if self.box_stats is not None else None,
            "n_tiny_boxes": int(self.boxes["is_tiny"].sum()) if self.has_boxes else None,
            "n_border_boxes": int(self.boxes["is_border"].sum()) if self.has_boxes else None,
            "image_sizes": recs(self.image_sizes),
            "center_hist": self.center_hist.tolist() if self.center_hist is not None else None,
            "cooccurrence": {"classes": [str(c) for c in self.cooccurrence.columns],
                             "counts": self.cooccurrence.to_numpy().tolist()},
            "annotator_comparison": recs(self.annotator_comparison),
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
            "min_box_side": self.min_box_side,
            "rare_fraction": self.rare_fraction,
        }


def _py(v):
    """numpy/pandas scalar -> JSON-friendly Python (NaN/NA -> None)."""
    if isinstance(v, (np.generic,)):
        v = v.item()
    if v is None or v is pd.NA or (isinstance(v, float) and not np.isfinite(v)):
        return None
    return v


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def default_annotator(dataset: Dataset) -> str | None:
    """The annotator with the most annotations (ties: first in ``dataset.annotators``);
    None when there are no annotations."""
    a = dataset.annotations[ANNOTATOR].astype("category")
    counts = a.value_counts()  # categorical: no string cast of every row
    counts = counts[counts > 0].rename(index=str)
    if counts.empty:
        return None
    best = counts.max()
    for a in dataset.annotators:
        if counts.get(a, 0) == best:
            return a
    return str(counts.index[0])


def available_splits(dataset: Dataset) -> list[str]:
    """The splits present (train, val, test, others), plus ``NO_SPLIT`` if some images have
    none: the choices of the ``splits`` option."""
    return _split_order(_split_labels(dataset.images))


def compute_class_balance(
    dataset: Dataset,
    *,
    annotator: str | None = None,
    splits: Iterable[str] | None = None,
    min_box_side: float = DEFAULT_MIN_BOX_SIDE,
    rare_fraction: float = RARE_CLASS_FRACTION,
    center_bins: int = CENTER_BINS,
) -> BalanceResult:
    """Class balance and dataset statistics of ``dataset``.

    ``annotator``: whose labels to count; None = the one with most annotations (pooling
    several annotators inflates counts), :data:`ALL_ANNOTATORS` = pool them all.
    ``splits``: restrict to images of these splits (``"none"`` = images with no split).
    ``min_box_side``: boxes with width or height below this (pixels) are ``is_tiny``.
    ``rare_fraction``: classes below this fraction of the top class's instances are rare.
    ``center_bins``: bins per axis of the box-centre heatmap.

    Never raises for a valid Dataset with one class, no annotations or no boxes: undefined
    statistics are NaN with a warning, and ``notes`` explains what is missing.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"compute_class_balance() needs a qa.Dataset, got {type(dataset).__name__}")
    if annotator not in (None, ALL_ANNOTATORS) and annotator not in dataset.annotators:
        raise ValueError(f"annotator {annotator!r} is not in this dataset; choose one of "
                         f"{list(dataset.annotators)} or ALL_ANNOTATORS to pool them.")
    if not (np.isfinite(min_box_side) and min_box_side >= 0):
        raise ValueError("min_box_side must be a non-negative number of pixels, "
                         f"got {min_box_side!r}")
    if not 0 <= rare_fraction <= 1:
        raise ValueError(f"rare_fraction must be between 0 and 1, got {rare_fraction!r}")
    if not isinstance(center_bins, (int, np.integer)) or center_bins < 1:
        raise ValueError(f"center_bins must be a positive integer, got {center_bins!r}")
    if splits is not None:
        splits = (splits,) if isinstance(splits, str) else tuple(str(s) for s in splits)
        known = set(dataset.splits) | {NO_SPLIT}
        unknown = [s for s in splits if s not in known]
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; this dataset has {sorted(known)}.")
    res = _compute_class_balance(dataset, annotator=annotator, splits=splits,
                                 min_box_side=float(min_box_side),
                                 rare_fraction=float(rare_fraction),
                                 center_bins=int(center_bins))
    return replace(res, image_table=dataset.images)


# ---------------------------------------------------------------------------------------------
# Implementation
# ---------------------------------------------------------------------------------------------
class _Notes:
    """Collects explanations; ``warn`` also issues a warning (undefined statistic)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def warn(self, msg: str) -> None:
        self.items.append(msg)
        warnings.warn(msg, BalanceWarning, stacklevel=4)


def _split_labels(images: pd.DataFrame) -> np.ndarray:
    return images[SPLIT].astype("object").fillna(NO_SPLIT).astype(str).to_numpy()


def _split_order(present: Iterable[str]) -> list[str]:
    present = set(present)
    named = [s for s in SPLITS if s in present]
    rest = sorted(present - set(SPLITS) - {NO_SPLIT})
    return named + rest + ([NO_SPLIT] if NO_SPLIT in present else [])


def _category_table(dataset: Dataset, anns: pd.DataFrame) -> pd.DataFrame:
    """categories plus ids used by annotations but not declared; names made unique."""
    cats = dataset.categories[[CATEGORY_ID, NAME]].drop_duplicates(CATEGORY_ID)
    used = pd.unique(anns[CATEGORY_ID].to_numpy())  # hash-based: fast on 1e6 rows
    extra = np.sort(used[~np.isin(used, cats[CATEGORY_ID].to_numpy())])
    if len(extra):
        cats = pd.concat([cats, pd.DataFrame({CATEGORY_ID: extra.astype(np.int64),
                                              NAME: [f"unknown_{c}" for c in extra]})])
    cats = cats.reset_index(drop=True)
    names = cats[NAME].astype(str)
    dup = names.duplicated(keep=False)
    if dup.any():
        names = names.where(~dup, names + " (" + cats[CATEGORY_ID].astype(str) + ")")
    cats[NAME] = names.to_numpy(dtype=object)
    return cats


def _adjusted_residuals(obs: np.ndarray) -> np.ndarray:
    """Adjusted standardised residuals (Haberman) of a contingency table; NaN where undefined."""
    obs = obs.astype(np.float64)
    n = obs.sum()
    if n == 0:
        return np.full(obs.shape, np.nan)
    r = obs.sum(axis=1, keepdims=True)
    c = obs.sum(axis=0, keepdims=True)
    exp = r * c / n
    den = np.sqrt(exp * (1 - r / n) * (1 - c / n))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (obs - exp) / den, np.nan)


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2's hash-based unique is ~10x slower on 1e6 int64)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _cap(ids) -> tuple[int, ...]:
    return tuple(int(i) for i in np.asarray(ids)[:MAX_CHECK_IDS])


def _compute_class_balance(ds: Dataset, *, annotator, splits, min_box_side, rare_fraction,
                           center_bins) -> BalanceResult:
    notes = _Notes()

    # ---- images (optionally one or some splits) and the annotations counted ---------------
    images = ds.images
    split_all = _split_labels(images)
    if splits is not None:
        keep = np.isin(split_all, list(splits))
        images = images[keep].reset_index(drop=True)
        split_all = split_all[keep]
    img_index = pd.Index(images[IMAGE_ID].to_numpy())
    if img_index.has_duplicates:
        keep = ~img_index.duplicated()
        images, split_all = images[keep].reset_index(drop=True), split_all[keep]
        img_index = pd.Index(images[IMAGE_ID].to_numpy())
        notes.add("Duplicate image ids: only the first row of each is used (see validation).")
    n_img = len(images)

    all_anns = ds.annotations
    in_img = img_index.get_indexer(all_anns[IMAGE_ID].to_numpy()) >= 0
    n_orphan = int((~in_img).sum()) if splits is None else 0
    if n_orphan:
        notes.add(f"{n_orphan} annotations refer to unknown images and are left out "
                  "(see validation: unknown_image).")
    all_anns = all_anns[in_img]
    # categorical throughout: comparing codes is ~10x faster than casting 1e6 names to str
    ann_names = all_anns[ANNOTATOR].astype("category")
    ann_names = ann_names.cat.rename_categories([str(c) for c in ann_names.cat.categories])

    if annotator is None:
        counts = ann_names.value_counts()
        counts = counts[counts > 0]
        annotator = next((a for a in ds.annotators if counts.get(a, 0) == counts.max()), None) \
            if len(counts) else None
        if annotator is not None and (counts > 0).sum() > 1:
            notes.add(f"Several annotators: counting '{annotator}' (most annotations). Pooled "
                      "counts would count each object once per annotator; see the annotator "
                      "comparison for everyone.")
    if annotator == ALL_ANNOTATORS:
        anns = all_anns
        if ann_names.nunique() > 1:
            notes.add("Annotators pooled: an object labelled by several annotators is counted "
                      "once per annotator.")
    elif annotator is None:
        anns = all_anns.iloc[:0]
    else:
        anns = all_anns[(ann_names == annotator).to_numpy()]

    cats = _category_table(ds, all_anns)
    K = len(cats)
    names = cats[NAME].to_numpy(dtype=object)
    cat_index = pd.Index(cats[CATEGORY_ID].to_numpy())
    ci = cat_index.get_indexer(anns[CATEGORY_ID].to_numpy())
    ii = img_index.get_indexer(anns[IMAGE_ID].to_numpy())
    n_ann = len(anns)
    if n_img == 0:
        notes.add("No images: every statistic is empty.")
    if n_ann == 0:
        notes.add("No annotations to count: class statistics are empty or NaN.")
    if K == 0:
        notes.add("No categories declared.")
    elif K == 1:
        notes.add("Only one class: balance, entropy and split-mix statistics are not defined.")

    # ---- per class ---------------------------------------------------------------------------
    instances = np.bincount(ci, minlength=K).astype(np.int64)
    pair = _sorted_unique(ii.astype(np.int64) * max(K, 1) + ci)  # distinct (image, class)
    pi, pc = pair // max(K, 1), pair % max(K, 1)
    images_per_class = np.bincount(pc, minlength=K).astype(np.int64)
    total = int(instances.sum())
    top = int(instances.max()) if K else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        share = instances / total if total else np.full(K, np.nan)
        share_of_max = instances / top if top else np.full(K, np.nan)
    is_absent = instances == 0
    is_rare = (share_of_max < rare_fraction) if top else np.zeros(K, bool)
    per_class = pd.DataFrame({
        CATEGORY_ID: cats[CATEGORY_ID].to_numpy(), NAME: names, "instances": instances,
        "images": images_per_class, "share": share, "share_of_max": share_of_max,
        "is_rare": is_rare, "is_absent": is_absent,
    })
    nonzero = instances[instances > 0]
    if len(nonzero):
        imbalance_ratio = float(nonzero.max() / nonzero.min())
    else:
        imbalance_ratio = float("nan")
        notes.warn("Imbalance ratio is undefined: no class has an instance.")
    absent = tuple(str(n) for n in names[is_absent])
    if absent and total:
        notes.add(f"{len(absent)} class(es) have no instance: {', '.join(absent[:20])}"
                  f"{' ...' if len(absent) > 20 else ''} (left out of the imbalance ratio).")
    rare = tuple(str(n) for n in names[is_rare])
    if K >= 2 and total:
        p = share[share > 0]
        entropy = float(-(p * np.log(p)).sum() / np.log(K)) + 0.0  # + 0.0: no "-0.000"
    else:
        entropy = float("nan")
        notes.warn("Normalised entropy is undefined: it needs at least two classes and one "
                   "annotation.")

    # ---- per split ---------------------------------------------------------------------------
    split_order = _split_order(split_all) if n_img else []
    S = len(split_order)
    split_code = pd.Index(split_order).get_indexer(split_all) if S else np.zeros(0, np.int64)
    si = split_code[ii] if n_ann else np.zeros(0, np.int64)
    sc_inst = np.bincount(si * max(K, 1) + ci, minlength=S * K).reshape(S, K) if K else \
        np.zeros((S, 0), np.int64)
    sc_img = np.bincount(split_code[pi] * max(K, 1) + pc, minlength=S * K).reshape(S, K) \
        if K and len(pi) else np.zeros((S, K), np.int64)
    split_tot = sc_inst.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc_share = np.where(split_tot > 0, sc_inst / np.where(split_tot > 0, split_tot, 1), np.nan)

    chi2 = p_value = dof = cramers_v = float("nan")
    resid = np.full((S, K), np.nan)
    tested_rows = [r for r, s in enumerate(split_order) if s != NO_SPLIT and split_tot[r, 0] > 0] \
        if K else []
    table = sc_inst[tested_rows] if tested_rows else np.zeros((0, K), np.int64)
    cols = np.flatnonzero(table.sum(axis=0) > 0) if len(table) else np.zeros(0, int)
    if len(tested_rows) >= 2 and len(cols) >= 2:
        t = table[:, cols]
        res = stats.chi2_contingency(t, correction=False)
        chi2, p_value, dof = float(res.statistic), float(res.pvalue), float(res.dof)
        n = t.sum()
        cramers_v = float(np.sqrt(chi2 / (n * (min(t.shape) - 1))))
        resid[np.ix_(tested_rows, cols)] = _adjusted_residuals(t)
    elif n_ann:
        n_classes = int((sc_inst.sum(axis=0) > 0).sum()) if K else 0
        got = ("the images carry no split" if not tested_rows else
               f"got {len(tested_rows)} split(s) with annotations, {len(cols)} class(es) in "
               f"them" if len(tested_rows) >= 2 else
               f"got one split with annotations ({split_order[tested_rows[0]]}), "
               f"{n_classes} class(es)")
        notes.warn("Split class-mix chi-square is undefined: it needs at least two splits "
                   f"(train/val/test) with annotations and two classes present ({got}).")
    per_split = pd.DataFrame({
        SPLIT: np.repeat(np.array(split_order, dtype=object), K),
        CATEGORY_ID: np.tile(cats[CATEGORY_ID].to_numpy(), S),
        NAME: np.tile(names, S),
        "instances": sc_inst.ravel(), "images": sc_img.ravel(), "share": sc_share.ravel(),
        "residual": resid.ravel(),
    })

    # ---- per image ---------------------------------------------------------------------------
    n_obj = np.bincount(ii, minlength=n_img).astype(np.int64)
    per_image = pd.DataFrame({IMAGE_ID: img_index.to_numpy(),
                              SPLIT: pd.Categorical.from_codes(split_code, categories=split_order)
                              if S else pd.Categorical([], categories=[]),
                              "n_objects": n_obj, "is_empty": n_obj == 0})
    imgs_per_split = np.bincount(split_code, minlength=S) if S else np.zeros(0, np.int64)
    empty_per_split = np.bincount(split_code, weights=(n_obj == 0), minlength=S).astype(np.int64) \
        if S else np.zeros(0, np.int64)
    eb = pd.DataFrame({SPLIT: split_order + ["all"],
                       "images": np.append(imgs_per_split, n_img),
                       "empty_images": np.append(empty_per_split, int((n_obj == 0).sum()))})
    with np.errstate(divide="ignore", invalid="ignore"):
        eb["empty_share"] = np.where(eb["images"] > 0,
                                     eb["empty_images"] / eb["images"].clip(lower=1), np.nan)
    if ds.is_classification:
        notes.add("Classification dataset: an 'empty' image is an unlabelled image, not a "
                  "negative.")

    # ---- boxes -------------------------------------------------------------------------------
    img_w = images[WIDTH].to_numpy(dtype=np.float64, na_value=np.nan)
    img_h = images[HEIGHT].to_numpy(dtype=np.float64, na_value=np.nan)
    boxes = box_stats = center_hist = center_per_class = None
    bw = anns[W].to_numpy(dtype=np.float64, na_value=np.nan)
    bh = anns[H].to_numpy(dtype=np.float64, na_value=np.nan)
    has_box = np.isfinite(bw) & np.isfinite(bh)
    if has_box.any():
        boxes, box_stats, center_hist, center_per_class = _box_tables(
            anns, has_box, ci[has_box], img_w[ii[has_box]], img_h[ii[has_box]], cats,
            min_box_side=min_box_side, bins=center_bins, notes=notes)
        if not has_box.all():
            notes.add(f"{int((~has_box).sum())} image-level labels (no box) are counted as "
                      "instances but left out of the box statistics.")
    else:
        notes.add("No boxes (classification labels or no annotations): box sizes, aspect "
                  "ratios, border/tiny flags and the centre heatmap are not available.")

    # ---- image sizes -------------------------------------------------------------------------
    known = np.isfinite(img_w) & np.isfinite(img_h)
    if n_img and not known.all():
        notes.add(f"{int((~known).sum())} image(s) have no known size.")
    sizes = pd.DataFrame({WIDTH: img_w[known].astype(np.int64),
                          HEIGHT: img_h[known].astype(np.int64)})
    image_sizes = (sizes.groupby([WIDTH, HEIGHT]).size().rename("images").reset_index()
                   .sort_values(["images", WIDTH, HEIGHT], ascending=[False, True, True],
                                ignore_index=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        image_sizes.insert(2, "aspect", image_sizes[WIDTH] / image_sizes[HEIGHT].replace(0, np.nan))

    # ---- co-occurrence: one sparse product (images x classes)ᵀ(images x classes) -----------
    if K and len(pair):
        m = sparse.csr_matrix((np.ones(len(pi), np.int64), (pi, pc)), shape=(n_img, K))
        co = (m.T @ m).toarray().astype(np.int64)
    else:
        co = np.zeros((K, K), np.int64)
    cooccurrence = pd.DataFrame(co, index=pd.Index(names, name=NAME),
                                columns=pd.Index(names, name=NAME))

    # ---- annotators --------------------------------------------------------------------------
    ann_cmp = _annotator_comparison(all_anns, ann_names, cat_index, names)

    # ---- checks ------------------------------------------------------------------------------
    checks = _checks(anns=anns, ci=ci, pi=pi, pc=pc, img_ids=img_index.to_numpy(),
                     per_class=per_class, rare=rare, absent=absent, total=total,
                     rare_fraction=rare_fraction, boxes=boxes, min_box_side=min_box_side,
                     per_image=per_image, empty_by_split=eb, chi=(chi2, p_value, cramers_v),
                     per_split=per_split, ann_cmp=ann_cmp, all_anns=all_anns,
                     ann_names=ann_names, cat_index=cat_index, K=K)

    return BalanceResult(
        annotator=annotator, splits=tuple(split_order), n_images=n_img, n_annotations=n_ann,
        n_classes=K, per_class=per_class, per_split=per_split, imbalance_ratio=imbalance_ratio,
        normalized_entropy=entropy, absent_classes=absent, rare_classes=rare, split_chi2=chi2,
        split_p_value=p_value, split_dof=dof, split_cramers_v=cramers_v, per_image=per_image,
        empty_by_split=eb, boxes=boxes, box_stats=box_stats, center_hist=center_hist,
        center_hist_per_class=center_per_class, image_sizes=image_sizes,
        cooccurrence=cooccurrence, annotator_comparison=ann_cmp, checks=tuple(checks),
        notes=tuple(notes.items), min_box_side=min_box_side,
        rare_fraction=rare_fraction,
    )


def _box_tables(anns, has_box, bci, iw, ih, cats, *, min_box_side, bins, notes):
    """Per-box table, per-class box stats and centre histograms (boxes with finite w, h)."""
    K = len(cats)
    b = anns[has_box]
    x = b[X].to_numpy(dtype=np.float64, na_value=np.nan)
    y = b[Y].to_numpy(dtype=np.float64, na_value=np.nan)
    w = b[W].to_numpy(dtype=np.float64)
    h = b[H].to_numpy(dtype=np.float64)
    area = w * h
    bucket = np.where(area < COCO_SMALL_MAX_AREA, 0, np.where(area < COCO_MEDIUM_MAX_AREA, 1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.sqrt(area / (iw * ih))
        rel[~np.isfinite(rel)] = np.nan
        aspect = np.where(h > 0, w / np.where(h > 0, h, 1), np.nan)
        x2, y2 = x + w, y + h
        r = ROUNDING_PX
        crosses = (x < -r) | (y < -r) | (x2 > iw + r) | (y2 > ih + r)
        t = BORDER_TOUCH_PX
        touches = ~crosses & ((x <= t) | (y <= t) | (x2 >= iw - t) | (y2 >= ih - t))
    tiny = np.minimum(w, h) < min_box_side
    names = cats[NAME].to_numpy(dtype=object)
    boxes = pd.DataFrame({
        ANN_ID: b[ANN_ID].to_numpy(), IMAGE_ID: b[IMAGE_ID].to_numpy(),
        CATEGORY_ID: b[CATEGORY_ID].to_numpy(),
        NAME: pd.Categorical.from_codes(bci, categories=pd.Index(names, dtype=object)),
        W: w, H: h, "area": area,
        "area_bucket": pd.Categorical.from_codes(bucket, categories=list(AREA_BUCKETS)),
        "rel_size": rel, "aspect": aspect, "is_tiny": tiny, "touches_border": touches,
        "crosses_border": crosses, "is_border": touches | crosses,
    })
    if np.isnan(rel).any():
        notes.add(f"{int(np.isnan(rel).sum())} box(es) on images of unknown size have no relative "
                  "size, border flag or centre.")

    cnt = lambda mask: np.bincount(bci, weights=mask, minlength=K).astype(np.int64)  # noqa: E731
    med = (pd.DataFrame({"c": bci, "a": area, "r": rel, "s": aspect})
           .groupby("c").median().reindex(range(K)))
    box_stats = pd.DataFrame({
        CATEGORY_ID: cats[CATEGORY_ID].to_numpy(), NAME: names,
        "boxes": np.bincount(bci, minlength=K),
        "small": cnt(bucket == 0), "medium": cnt(bucket == 1), "large": cnt(bucket == 2),
        "tiny": cnt(tiny), "border": cnt(touches | crosses), "crossing": cnt(crosses),
        "median_area": med["a"].to_numpy(), "median_rel_size": med["r"].to_numpy(),
        "median_aspect": med["s"].to_numpy(),
    })

    with np.errstate(divide="ignore", invalid="ignore"):
        cx, cy = (x + w / 2) / iw, (y + h / 2) / ih
    ok = np.isfinite(cx) & np.isfinite(cy)
    bx = np.clip((cx[ok] * bins).astype(np.int64), 0, bins - 1)
    by = np.clip((cy[ok] * bins).astype(np.int64), 0, bins - 1)
    flat = (bci[ok] * bins + by) * bins + bx
    per_class = np.bincount(flat, minlength=K * bins * bins).reshape(K, bins, bins)
    return boxes, box_stats, per_class.sum(axis=0), per_class


def _annotator_comparison(all_anns, ann_names, cat_index, names) -> pd.DataFrame:
    """Each annotator's class counts and shares, and who deviates from the others."""
    cols = [ANNOTATOR, CATEGORY_ID, NAME, "instances", "share", "reference_share",
            "ratio_to_reference", "residual", "is_deviant"]
    codes = ann_names.cat.codes.to_numpy()
    levels = np.asarray(ann_names.cat.categories, dtype=object)
    present = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(levels)))
    ann_list = sorted(str(levels[i]) for i in present)
    K = len(names)
    if len(ann_list) < 2 or K == 0:
        return pd.DataFrame(columns=cols)
    A = len(ann_list)
    ai = pd.Index(ann_list).get_indexer(levels.astype(str))[codes]
    ci = cat_index.get_indexer(all_anns[CATEGORY_ID].to_numpy())
    obs = np.bincount(ai * K + ci, minlength=A * K).reshape(A, K)
    row = obs.sum(axis=1, keepdims=True)
    shares = obs / np.maximum(row, 1)
    if A == 2:  # who deviates cannot be told apart: compare each with the other
        med = shares[::-1]
    else:  # the consensus: the median over everyone is not pulled by one deviant annotator
        med = np.broadcast_to(np.median(shares, axis=0), shares.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(med > 0, shares / np.where(med > 0, med, 1),
                         np.where(shares > 0, np.inf, np.nan))
    resid = _adjusted_residuals(obs)
    deviant = (np.abs(np.nan_to_num(resid)) > CELL_RESIDUAL) & (
        (ratio >= ANNOTATOR_SHARE_RATIO) | (ratio <= 1 / ANNOTATOR_SHARE_RATIO))
    return pd.DataFrame({
        ANNOTATOR: np.repeat(np.array(ann_list, dtype=object), K),
        CATEGORY_ID: np.tile(cat_index.to_numpy(), A), NAME: np.tile(names, A),
        "instances": obs.ravel(), "share": shares.ravel(), "reference_share": med.ravel(),
        "ratio_to_reference": ratio.ravel(), "residual": resid.ravel(),
        "is_deviant": deviant.ravel(),
    })


def _checks(*, anns, ci, pi, pc, img_ids, per_class, rare, absent, total, rare_fraction,
            boxes, min_box_side, per_image, empty_by_split, chi, per_split, ann_cmp, all_anns,
            ann_names, cat_index, K) -> list[BalanceCheck]:
    out = []
    ann_ids = anns[ANN_ID].to_numpy()

    # rare classes (absent ones included)
    if not total:
        out.append(BalanceCheck("rare_classes", None, "No annotations: nothing to compare."))
    else:
        rare_idx = np.flatnonzero(per_class["is_rare"].to_numpy())
        counts = per_class["instances"].to_numpy()
        top = int(counts.max())
        msg = (f"Every class has at least {rare_fraction:.0%} of the most common class's "
               f"{top} instances." if not len(rare_idx) else
               f"{len(rare_idx)} class(es) have fewer than {rare_fraction:.0%} of the most common "
               f"class's {top} instances: " + ", ".join(
                   f"{per_class[NAME].iat[i]} ({counts[i]})" for i in rare_idx[:20]))
        out.append(BalanceCheck("rare_classes", not len(rare_idx), msg, failing=rare,
                                image_ids=_cap(img_ids[_sorted_unique(pi[np.isin(pc, rare_idx)])]),
                                ann_ids=_cap(ann_ids[np.isin(ci, rare_idx)])))
        out.append(BalanceCheck(
            "absent_classes", not absent,
            "Every declared class has instances." if not absent else
            f"{len(absent)} declared class(es) have no instance: {', '.join(absent[:20])}.",
            failing=absent))

    # tiny boxes and border boxes
    if boxes is None:
        out.append(BalanceCheck("tiny_boxes", None, "No boxes (classification dataset)."))
        out.append(BalanceCheck("boxes_crossing_border", None,
                                "No boxes (classification dataset)."))
    else:
        tiny = boxes[boxes["is_tiny"]]
        frac = len(tiny) / len(boxes)
        out.append(BalanceCheck(
            "tiny_boxes", frac <= MAX_TINY_BOX_SHARE,
            f"{len(tiny)} of {len(boxes)} boxes ({frac:.1%}) have a side under "
            f"{min_box_side:g} px (limit {MAX_TINY_BOX_SHARE:.0%}).",
            failing=_cap(tiny[ANN_ID]), image_ids=_cap(pd.unique(tiny[IMAGE_ID])),
            ann_ids=_cap(tiny[ANN_ID])))
        cross = boxes[boxes["crosses_border"]]
        n_touch = int(boxes["touches_border"].sum())
        out.append(BalanceCheck(
            "boxes_crossing_border", cross.empty,
            f"{len(cross)} box(es) extend past the image border; {n_touch} more touch it "
            f"(within {BORDER_TOUCH_PX:g} px, usually truncated objects).",
            failing=_cap(cross[ANN_ID]), image_ids=_cap(pd.unique(cross[IMAGE_ID])),
            ann_ids=_cap(cross[ANN_ID])))

    # empty images per split
    eb = empty_by_split[empty_by_split[SPLIT] != "all"]
    if eb["images"].sum() == 0:
        out.append(BalanceCheck("empty_images", None, "No images."))
    else:
        bad = eb[eb["empty_share"] > MAX_EMPTY_IMAGE_SHARE]
        parts = ", ".join(f"{s} {v:.0%}" for s, v in zip(eb[SPLIT], eb["empty_share"]))
        empty_ids = per_image.loc[per_image["is_empty"] & per_image[SPLIT].isin(bad[SPLIT]),
                                  IMAGE_ID] if len(bad) else per_image[IMAGE_ID].iloc[:0]
        out.append(BalanceCheck(
            "empty_images", bad.empty,
            f"Share of images without objects per split: {parts} (limit "
            f"{MAX_EMPTY_IMAGE_SHARE:.0%}).", failing=tuple(bad[SPLIT]),
            image_ids=_cap(empty_ids)))

    # split class mix
    chi2, p, v = chi
    if not np.isfinite(chi2):
        out.append(BalanceCheck("split_class_mix", None,
                                "Not tested: needs two splits with annotations and two classes."))
    else:
        passed = bool(p >= SPLIT_MIX_ALPHA or v < SPLIT_MIX_MIN_CRAMERS_V)
        worst = (per_split.assign(a=per_split["residual"].abs())
                 .query("a > @CELL_RESIDUAL").sort_values("a", ascending=False))
        failing = tuple(dict.fromkeys(worst[NAME].astype(str))) if not passed else ()
        out.append(BalanceCheck(
            "split_class_mix", passed,
            f"Chi-square test of homogeneity of the class mix across splits: chi2 = {chi2:.4g}, "
            f"p = {p:.3g}, Cramér's V = {v:.3f} (fails when p < {SPLIT_MIX_ALPHA} and V >= "
            f"{SPLIT_MIX_MIN_CRAMERS_V})." + (f" Most different: {', '.join(failing[:10])}."
                                             if failing else ""),
            failing=failing))

    # annotators' class mix
    if ann_cmp.empty:
        out.append(BalanceCheck("annotator_class_mix", None, "One annotator: nothing to compare."))
    else:
        dev = ann_cmp[ann_cmp["is_deviant"]]
        failing = tuple(f"{a}: {n}" for a, n in zip(dev[ANNOTATOR], dev[NAME]))
        if len(dev):
            hit = np.zeros(len(all_anns), bool)
            cat_ids = all_anns[CATEGORY_ID].to_numpy()
            for a, c in zip(dev[ANNOTATOR], dev[CATEGORY_ID]):  # few deviant cells
                hit |= (ann_names == a).to_numpy() & (cat_ids == c)
            imgs, anns_hit = all_anns[IMAGE_ID].to_numpy()[hit], all_anns[ANN_ID].to_numpy()[hit]
        else:
            imgs = anns_hit = np.zeros(0, np.int64)
        out.append(BalanceCheck(
            "annotator_class_mix", dev.empty,
            "Every annotator's class shares are in line with the others." if dev.empty else
            f"{len(dev)} annotator/class share(s) deviate from the other annotators (at least "
            f"{ANNOTATOR_SHARE_RATIO:g}x or at most 1/{ANNOTATOR_SHARE_RATIO:g} of the annotators' "
            f"median share, |residual| > {CELL_RESIDUAL:g}): " + ", ".join(failing[:10]) + ".",
            failing=failing, image_ids=_cap(pd.unique(imgs)), ann_ids=_cap(anns_hit)))
    return out


def run_analysis(dataset: Dataset, ctx) -> BalanceResult:
    """Runner for :mod:`qa.analyses`: balance of the default annotator's labels."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BalanceWarning)
        return compute_class_balance(dataset, annotator=ctx.option("balance", "annotator"))
