"""Validation: checks a :class:`Dataset` and reports problems with severity and offending ids.

``validate(ds)`` never raises for bad content: it collects. Each check is a small function
``(ds) -> list of issue rows``; ``CHECKS`` names them. The loaders' quarantined rows
(``ds.load_issues``) come first in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    EXISTS,
    FILE_ERROR,
    FILE_NAME,
    HEADER_HEIGHT,
    HEADER_WIDTH,
    HEIGHT,
    IMAGE_ID,
    ISSUES_SCHEMA,
    MODEL,
    PRED_ID,
    READABLE,
    SCORE,
    UNSAFE_PATH,
    WIDTH,
    SPLIT,
    Dataset,
    H,
    W,
    X,
    Y,
    empty_frame,
    image_label,
    image_labels,
)
from qa.images import LINK_OUTSIDE

# Boxes may overshoot the image by this much before being flagged: exporters round
# coordinates, and CVAT/LabelImg clamp to the last pixel centre (1 px is what CVAT tolerates).
BOX_TOLERANCE_PX = 1.0
# Cap on issue rows per check so a broken 1M-image dataset gives a readable report.
MAX_ROWS_PER_CHECK = 10_000
SEVERITIES = ("error", "warning", "info")
# Problems a report row stands for: 1, or the rest of a check cut at MAX_ROWS_PER_CHECK.
COUNT = "count"
# Checks about the image files themselves (the report's "no corrupt or missing files" rule).
FILE_CHECKS = ("missing_file", "unreadable_file", "unsafe_path")  # images_not_found: a summary
# A model whose boxes fall outside their image this often (of at least this many predictions)
# is probably attached to the wrong images or read in the wrong column order, not just sloppy.
PRED_OUTSIDE_SHARE = 0.2
MIN_PREDICTIONS_FOR_SUMMARY = 10
# Class-mix check: half the mass in the wrong classes (total variation > 0.5) is far beyond
# what an imperfect model does, and what a shuffled class order does; counted over the
# predictions a model is confident about, with enough of them to compare.
CLASS_MIX_TV = 0.5
CLASS_MIX_MIN_SCORE = 0.5
MIN_PREDICTIONS_FOR_MIX = 20
MAX_SWAP_IMAGES = 2000
# When at least this many and this share of the files are missing, one row says where the
# images probably are (a labels file loaded away from its images) before the per-file rows.
MIN_MISSING_FOR_HINT = 2
MISSING_SHARE_FOR_HINT = 0.5
_SEVERITY_SCORE = {"error": 1.0, "warning": 0.5, "info": 0.1}
# A box at most this many pixels wide or high is a point or a line, not an object: a stray
# click, or the VOC devkit's xmin == xmax (BCCD has two such RBC boxes among ~100 px cells).
DEGENERATE_SIDE_PX = 1.0
# A box whose side (sqrt of its area) is under this share of its class's median side is far
# smaller than the rest of its class: on BCCD the two point boxes are at 0.01 and the smallest
# real cell at 0.16; on the sample and the raccoon set nothing is under 0.12.
TINY_FOR_CLASS_RATIO = 0.05
# ... judged only for classes with enough boxes for a median to mean something.
MIN_CLASS_BOXES = 20


@dataclass(frozen=True)
class ValidationReport:
    """``issues``: one row per problem (severity, check, image_id, ann_id, message, count);
    ``count`` is 1, except on the row that closes a check cut at ``MAX_ROWS_PER_CHECK``,
    which stands for the rest. ``counts()``, ``n_errors`` and ``n_warnings`` are exact."""

    issues: pd.DataFrame

    @property
    def errors(self) -> pd.DataFrame:
        return self.issues[self.issues["severity"] == "error"]

    @property
    def n_errors(self) -> int:
        return self._total("error")

    @property
    def n_warnings(self) -> int:
        return self._total("warning")

    def _total(self, severity: str) -> int:
        return int(self.issues.loc[self.issues["severity"] == severity, COUNT].sum())

    @property
    def ok(self) -> bool:
        return self.n_errors == 0

    def counts(self) -> pd.DataFrame:
        """Issues per check and severity, most frequent first."""
        if self.issues.empty:
            return pd.DataFrame(columns=["check", "severity", "count"])
        return (self.issues.groupby(["check", "severity"])[COUNT].sum().rename("count")
                .reset_index().sort_values("count", ascending=False, ignore_index=True))

    ANALYSIS: ClassVar[str] = "validation"

    def metrics(self) -> dict[str, int]:
        """Headline figures for the health report: ``n_errors``, ``n_warnings`` and one
        ``n_<check>`` per check that found something (exact counts)."""
        out = {"n_errors": self.n_errors, "n_warnings": self.n_warnings}
        for r in self.counts().itertuples(index=False):
            out[f"n_{r.check}"] = out.get(f"n_{r.check}", 0) + int(r.count)
        out["n_missing_or_corrupt_files"] = sum(out.get(f"n_{c}", 0) for c in FILE_CHECKS)
        return out

    def findings(self) -> pd.DataFrame:
        """Every issue row as a finding (:data:`qa.results.FINDINGS_SCHEMA`): ``kind`` is the
        check's name; ``score`` 1 for errors, 0.5 for warnings, 0.1 for info. The rows that
        stand for the rest of a cut check (no image) are left out."""
        from qa.results import findings_frame

        df = self.issues[self.issues[IMAGE_ID].notna() | self.issues[ANN_ID].notna()
                         | (self.issues[COUNT] == 1)]
        return findings_frame(pd.DataFrame({
            "kind": df["check"].to_numpy(), "severity": df["severity"].to_numpy(),
            "score": df["severity"].map(_SEVERITY_SCORE).to_numpy(),
            "image_id": df[IMAGE_ID].to_numpy(), "ann_ids": df[ANN_ID].to_numpy(),
            "message": df["message"].to_numpy()}), analysis=self.ANALYSIS, page="overview")

    def to_dict(self) -> dict:
        return {
            "n_errors": self.n_errors,
            "n_warnings": self.n_warnings,
            "counts": self.counts().to_dict(orient="records"),
            "issues": [
                {k: (None if pd.isna(v) else (int(v) if k in (IMAGE_ID, ANN_ID) else v))
                 for k, v in row.items()}
                for row in self.issues.to_dict(orient="records")
            ],
        }


def _rows(severity, check, df, message_fn, *, image_col=IMAGE_ID, ann_col=None):
    out = []
    for r in df.head(MAX_ROWS_PER_CHECK).itertuples(index=False):
        d = r._asdict()
        out.append({"severity": severity, "check": check,
                    IMAGE_ID: d.get(image_col) if image_col else None,
                    ANN_ID: d.get(ann_col) if ann_col else None,
                    "message": message_fn(d)})
    if len(df) > MAX_ROWS_PER_CHECK:
        rest = len(df) - MAX_ROWS_PER_CHECK
        out.append({"severity": severity, "check": check, IMAGE_ID: None, ANN_ID: None,
                    "message": f"... and {rest:,} more ({check}); only the first "
                               f"{MAX_ROWS_PER_CHECK:,} are listed.", COUNT: rest})
    return out


def _ann_where(ds: Dataset):
    """A function naming an annotation for a message: the image's file (and split), the
    annotation's id and class, and the annotator."""
    names = image_labels(ds.images)
    classes = ds.category_names

    def where(d: dict) -> str:
        img = names.get(d[IMAGE_ID], f"an image (id {d[IMAGE_ID]}) not in the images list")
        cls = classes.get(d.get(CATEGORY_ID))
        what = f"annotation {d[ANN_ID]}" + (f" ({cls})" if cls is not None else "")
        who = f", {d[ANNOTATOR]}" if d.get(ANNOTATOR) is not None and len(ds.annotators) > 1 \
            else ""
        return f"{img}: {what}{who}"

    return where


def _pred_where(ds: Dataset):
    """A function naming a prediction for a message: its id, model and image file."""
    names = image_labels(ds.images)

    def where(d: dict) -> str:
        img = names.get(d[IMAGE_ID], f"image id {d[IMAGE_ID]} (not in the dataset)")
        return f"prediction {d[PRED_ID]} ({d[MODEL]}) on {img}"

    return where


def check_duplicate_ids(ds: Dataset) -> list[dict]:
    out = []
    for table, col in (("images", IMAGE_ID), ("annotations", ANN_ID), ("categories", CATEGORY_ID),
                       ("predictions", PRED_ID)):
        df = getattr(ds, table)
        dup = df[df[col].duplicated(keep="first")]
        out += _rows("error", "duplicate_id", dup,
                     lambda d, t=table, c=col: f"{t}: {c} {d[c]} appears more than once; "
                                              "give each row a unique id.",
                     image_col=IMAGE_ID if table in ("images",) else None,
                     ann_col=ANN_ID if table == "annotations" else None)
    dupf = ds.images[ds.images[FILE_NAME].duplicated(keep="first")]
    out += _rows("warning", "duplicate_file_name", dupf,
                 lambda d: f"{_img(d)} is listed more than once (image id {d[IMAGE_ID]}); "
                           "merge the entries.")
    return out


def check_unknown_category(ds: Dataset) -> list[dict]:
    known = set(ds.categories[CATEGORY_ID].tolist())
    where = _ann_where(ds)
    a = ds.annotations[~ds.annotations[CATEGORY_ID].isin(known)]
    out = _rows("error", "unknown_category", a,
                lambda d: f"{where(d)}: category_id {d[CATEGORY_ID]} is not in the categories "
                "list; add the category or fix the id.", ann_col=ANN_ID)
    p = ds.predictions[~ds.predictions[CATEGORY_ID].isin(known)]
    pwhere = _pred_where(ds)
    out += _rows("error", "unknown_category", p,
                 lambda d: f"{pwhere(d)}: "
                 f"category_id {d[CATEGORY_ID]} is not in the categories list; check that the "
                 "model was trained on this dataset's classes.")
    return out


def check_unknown_image(ds: Dataset) -> list[dict]:
    known = set(ds.images[IMAGE_ID].tolist())
    out = []
    for table, idc in (("annotations", ANN_ID), ("predictions", PRED_ID)):
        df = getattr(ds, table)
        bad = df[~df[IMAGE_ID].isin(known)]
        out += _rows("error", "unknown_image", bad,
                     lambda d, t=table, c=idc: f"{t[:-1]} {d[c]}: image_id {d[IMAGE_ID]} is not "
                     "in the images list; add the image or fix the id.",
                     image_col=None, ann_col=ANN_ID if table == "annotations" else None)
    return out


def check_box_size(ds: Dataset) -> list[dict]:
    a = ds.annotations
    box = a[[X, Y, W, H]].to_numpy(dtype=float, na_value=np.nan)
    is_label = np.isnan(box).all(axis=1)  # image-level label: no box at all
    bad = ~is_label & (~np.isfinite(box).all(axis=1) | (box[:, 2] <= 0) | (box[:, 3] <= 0))
    where = _ann_where(ds)
    return _rows("error", "bad_box_size", a[bad],
                 lambda d: f"{where(d)}: box [x={d[X]}, y={d[Y]}, w={d[W]}, h={d[H]}] has a non-positive or "
                 "non-finite size; redraw or delete it.", ann_col=ANN_ID)


def check_degenerate_boxes(ds: Dataset) -> list[dict]:
    """Boxes of positive size that cannot be objects: at most ``DEGENERATE_SIDE_PX`` wide or
    high (``degenerate_box``, an error), or far smaller than the rest of their class
    (``tiny_for_class``, a warning: side under ``TINY_FOR_CLASS_RATIO`` of the class median,
    classes with at least ``MIN_CLASS_BOXES`` boxes)."""
    a = ds.annotations
    box = a[[X, Y, W, H]].to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(box).all(axis=1) & (box[:, 2] > 0) & (box[:, 3] > 0)
        degenerate = ok & ((box[:, 2] <= DEGENERATE_SIDE_PX) | (box[:, 3] <= DEGENERATE_SIDE_PX))
    side = pd.Series(np.sqrt(np.where(ok, box[:, 2] * box[:, 3], np.nan)), index=a.index)
    grp = side.groupby(a[CATEGORY_ID].to_numpy())
    med = grp.transform("median").to_numpy()
    n = grp.transform("count").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        tiny = ok & ~degenerate & (n >= MIN_CLASS_BOXES) & (side.to_numpy() < TINY_FOR_CLASS_RATIO
                                                              * med)
    where = _ann_where(ds)

    def shape(d) -> str:
        w, h = d[W], d[H]
        return "a point" if w <= DEGENERATE_SIDE_PX and h <= DEGENERATE_SIDE_PX else "a line"

    out = _rows("error", "degenerate_box", a[degenerate].assign(class_median=med[degenerate]),
                lambda d: f"{where(d)}: box {d[W]:g}x{d[H]:g} px at x {d[X]:g}, y {d[Y]:g} is "
                f"{shape(d)}, not an object (e.g. xmin == xmax in the source); its class's "
                f"boxes are typically {d['class_median']:.0f} px. Delete it or redraw it.", ann_col=ANN_ID)
    out += _rows("warning", "tiny_for_class", a[tiny].assign(class_median=med[tiny],
                                                           box_side=side.to_numpy()[tiny]),
                 lambda d: f"{where(d)}: box {d[W]:.0f}x{d[H]:.0f} px is far smaller than the "
                 f"rest of its class (typically {d['class_median']:.0f} px, this one {d['box_side']:.0f}); "
                 "check that it is an object and not a stray click.", ann_col=ANN_ID)
    return out


def check_box_outside(ds: Dataset) -> list[dict]:
    a = ds.annotations
    if a.empty:
        return []
    sizes = ds.images.set_index(IMAGE_ID)[[WIDTH, HEIGHT]]
    sizes = sizes[~sizes.index.duplicated()]
    wh = sizes.reindex(a[IMAGE_ID]).to_numpy(dtype=float, na_value=np.nan)
    x, y, w, h = (a[c].to_numpy(dtype=float, na_value=np.nan) for c in (X, Y, W, H))
    t = BOX_TOLERANCE_PX
    with np.errstate(invalid="ignore"):
        bad = ((x < -t) | (y < -t) | (x + w > wh[:, 0] + t) | (y + h > wh[:, 1] + t))
    bad &= np.isfinite(wh).all(axis=1) & (w > 0) & (h > 0)
    df = a[bad].assign(img_w=wh[bad, 0], img_h=wh[bad, 1])
    where = _ann_where(ds)
    return _rows("warning", "box_outside_image", df,
                 lambda d: f"{where(d)}: box "
                 f"x {d[X]:.1f}..{d[X] + d[W]:.1f}, y {d[Y]:.1f}..{d[Y] + d[H]:.1f} lies outside "
                 f"the {d['img_w']:.0f}x{d['img_h']:.0f} image (tolerance {t:g} px); clip or redraw it.",
                 ann_col=ANN_ID)


def _img(d: dict) -> str:
    """An images-table row as a user reads it (file name and split)."""
    return image_label(d[FILE_NAME], d.get(SPLIT))


def check_files(ds: Dataset) -> list[dict]:
    im = ds.images
    if EXISTS not in im:  # not probed: load(probe=False)
        return []
    out = []
    unsafe = im[im[UNSAFE_PATH]] if UNSAFE_PATH in im else im.iloc[:0]
    out += _rows("error", "unsafe_path", unsafe,
                 lambda d: f"{_img(d)}: the file name "
                 + ("is a symbolic link that leads" if d.get(FILE_ERROR) == LINK_OUTSIDE
                    else "resolves") + f" outside the dataset root {ds.root}; it was not "
                 "read. Use a path relative to the root (copy linked files in).")
    missing = im[~im[EXISTS] & ~im.get(UNSAFE_PATH, False)]
    if len(missing) >= MIN_MISSING_FOR_HINT and len(missing) >= MISSING_SHARE_FOR_HINT * len(im):
        out.append(_summary(
            "error", "images_not_found",
            f"{len(missing):,} of {len(im):,} image files are not under {ds.root}: the images "
            "are probably somewhere else. Give their folder: image_root=... (--image-root on "
            "the command line), the folder that file names like "
            f"'{missing[FILE_NAME].iloc[0]}' are relative to.") | {COUNT: 0})  # a hint: the
        # files are counted by their own missing_file rows
    out += _rows("error", "missing_file", missing,
                 lambda d: f"{_img(d)} is listed but not found under {ds.root}; add the file "
                 "or remove the entry.")
    corrupt = im[im[EXISTS] & ~im[READABLE]]
    out += _rows("error", "unreadable_file", corrupt,
                 lambda d: f"{_img(d)} is {d[FILE_ERROR] or 'not a readable image'}; replace "
                 "the file.")
    hw = im[HEADER_WIDTH].astype("Float64")
    hh = im[HEADER_HEIGHT].astype("Float64")
    mism = im[(hw.notna() & (im[WIDTH].astype("Float64") != hw)).fillna(False)
              | (hh.notna() & (im[HEIGHT].astype("Float64") != hh)).fillna(False)]
    out += _rows("warning", "size_mismatch", mism,
                 lambda d: f"{_img(d)}: the labels say {d[WIDTH]}x{d[HEIGHT]} but the file is "
                 f"{d[HEADER_WIDTH]}x{d[HEADER_HEIGHT]}; boxes may be scaled wrong. Re-export "
                 "the labels for this image.")
    return out


def check_predictions(ds: Dataset) -> list[dict]:
    """A model's predictions: scores outside [0, 1], boxes of non-positive or non-finite
    size, boxes outside their image, and per model a summary when many predictions name
    images the dataset does not have, or lie outside their image (predictions attached to
    the wrong images, or a file read in the wrong column order)."""
    p = ds.predictions
    if p.empty:
        return []
    out = []
    pwhere = _pred_where(ds)
    score = p[SCORE].to_numpy(dtype=float, na_value=np.nan)
    bad_score = ~np.isfinite(score) | (score < 0) | (score > 1)
    out += _rows("error", "bad_score", p[bad_score],
                 lambda d: f"{pwhere(d)}: score "
                 f"{d[SCORE]} is not a probability in [0, 1]; check the model's output (a "
                 "logit, a percentage, or the columns read in the wrong order).")
    box = p[[X, Y, W, H]].to_numpy(dtype=float, na_value=np.nan)
    has_box = ~np.isnan(box).all(axis=1)
    bad_box = has_box & (~np.isfinite(box).all(axis=1) | (box[:, 2] <= 0) | (box[:, 3] <= 0))
    out += _rows("error", "bad_box_size", p[bad_box],
                 lambda d: f"{pwhere(d)}: box "
                 f"[x={d[X]}, y={d[Y]}, w={d[W]}, h={d[H]}] has a non-positive or non-finite "
                 "size; check the box format (x, y, w, h in pixels).")
    sizes = ds.images.set_index(IMAGE_ID)[[WIDTH, HEIGHT]]
    sizes = sizes[~sizes.index.duplicated()]
    wh = sizes.reindex(p[IMAGE_ID]).to_numpy(dtype=float, na_value=np.nan)
    t = BOX_TOLERANCE_PX
    with np.errstate(invalid="ignore"):
        outside = ((box[:, 0] < -t) | (box[:, 1] < -t) | (box[:, 0] + box[:, 2] > wh[:, 0] + t)
                   | (box[:, 1] + box[:, 3] > wh[:, 1] + t))
    outside &= np.isfinite(wh).all(axis=1) & has_box & ~bad_box
    out += _rows("warning", "box_outside_image", p[outside].assign(img_w=wh[outside, 0],
                                                                    img_h=wh[outside, 1]),
                 lambda d: f"{pwhere(d)}: box "
                 f"x {d[X]:.1f}..{d[X] + d[W]:.1f}, y {d[Y]:.1f}..{d[Y] + d[H]:.1f} lies outside "
                 f"the {d['img_w']:.0f}x{d['img_h']:.0f} image.")
    known = p[IMAGE_ID].isin(set(ds.images[IMAGE_ID].tolist())).to_numpy()
    for model, idx in p.groupby(MODEL, observed=True).indices.items():
        n = len(idx)
        n_unknown = int((~known[idx]).sum())
        n_out = int(outside[idx].sum())
        if n_unknown:
            eg = sorted(set(p[IMAGE_ID].to_numpy()[idx][~known[idx]].tolist()))[:5]
            out.append(_summary("error", "prediction_image_mismatch",
                                f"model '{model}': {n_unknown} of {n} predictions name image ids "
                                f"that are not in this dataset (e.g. {eg}). Image ids differ "
                                "between exports of the same data, so the others may sit on the "
                                "wrong images too. Add 'file_name' to each result (matched by "
                                "name), or export the predictions against this labels file."))
        elif n >= MIN_PREDICTIONS_FOR_SUMMARY and n_out / n > PRED_OUTSIDE_SHARE:
            out.append(_summary("warning", "prediction_image_mismatch",
                                f"model '{model}': {n_out} of {n} prediction boxes lie outside "
                                "their image; the predictions may be attached to the wrong "
                                "images (ids from another export) or read in the wrong column "
                                "order. Check the predictions file."))
    out += _class_mix(ds)
    return out


def _class_mix(ds: Dataset) -> list[dict]:
    """Per model, a warning when the class mix of its confident predictions differs wildly
    from the labels' (total variation distance over ``CLASS_MIX_TV``): the usual sign of a
    model whose class order is not the dataset's."""
    labels = ds.annotations[CATEGORY_ID].value_counts(normalize=True)
    if len(ds.annotations) < MIN_PREDICTIONS_FOR_MIX:
        return []
    names = ds.category_names
    out = []
    p = ds.predictions
    for model, df in p.groupby(MODEL, observed=True):
        conf = df[df[SCORE] >= CLASS_MIX_MIN_SCORE]
        df = conf if len(conf) >= MIN_PREDICTIONS_FOR_MIX else df
        if len(df) < MIN_PREDICTIONS_FOR_MIX:
            continue
        preds = df[CATEGORY_ID].value_counts(normalize=True)
        both = labels.index.union(preds.index)
        diff = preds.reindex(both, fill_value=0) - labels.reindex(both, fill_value=0)
        tv = float(diff.abs().sum() / 2)
        swapped = _class_swap(ds, df)
        if swapped is not None:
            out.append(_summary(
                "warning", "class_mix_mismatch",
                f"model '{model}': {swapped[0]:.0%} of its confident boxes that overlap a "
                "labelled box (IoU >= 0.5) carry another class; the model's class order is "
                f"probably not the dataset's (e.g. its {swapped[1]}). Give its class names: "
                "load(..., prediction_names='classes.txt' or its data.yaml), "
                "--prediction-names on the command line, or the app's Loading options."))
            continue
        if tv <= CLASS_MIX_TV:
            continue
        top = int(diff.idxmax())
        out.append(_summary(
            "warning", "class_mix_mismatch",
            f"model '{model}': the class mix of its predictions differs from the labels' "
            f"(total variation {tv:.2f}; e.g. '{names.get(top, top)}' is "
            f"{preds.get(top, 0):.0%} of the predictions but {labels.get(top, 0):.0%} of the "
            "labels). If the model's class order is not the dataset's, give its class names "
            "(load(..., prediction_names='classes.txt' or its data.yaml), "
            "--prediction-names on the command line, or the app's Loading options)."))
    return out


def _class_swap(ds: Dataset, preds: pd.DataFrame) -> tuple[float, str] | None:
    """(share of overlapping prediction/label pairs whose classes differ, an example of the
    mapping they suggest) when that share is over half, else None. Vectorised over images
    with the shared pair machinery of :mod:`qa.geometry`."""
    from qa.geometry import Geometry, cross_pairs

    a = ds.annotations[ds.annotations[W].notna()].sort_values(IMAGE_ID, kind="stable")
    p = preds[preds[W].notna()].sort_values(IMAGE_ID, kind="stable")
    if len(a) == 0 or len(p) == 0:
        return None
    # a bounded sample of images is plenty to see a swapped class order, and keeps the
    # pairwise step small on a million-image dataset
    both = np.intersect1d(a[IMAGE_ID].unique(), p[IMAGE_ID].unique())[:MAX_SWAP_IMAGES]
    a, p = a[a[IMAGE_ID].isin(both)], p[p[IMAGE_ID].isin(both)]
    ga, gp = a[IMAGE_ID].to_numpy(), p[IMAGE_ID].to_numpy()
    pp, pa = cross_pairs(gp, ga)
    if not len(pp):
        return None
    iou = Geometry(_xyxy(p)).box_iou(Geometry(_xyxy(a)), pp, pa)
    keep = iou >= 0.5
    pp, pa, iou = pp[keep], pa[keep], iou[keep]
    order = np.lexsort((-iou, pp))  # best label per prediction
    first = np.r_[True, np.diff(pp[order]) != 0] if len(order) else np.zeros(0, bool)
    pp, pa = pp[order][first], pa[order][first]
    if len(pp) < MIN_PREDICTIONS_FOR_MIX:
        return None
    cp, ca = p[CATEGORY_ID].to_numpy()[pp], a[CATEGORY_ID].to_numpy()[pa]
    wrong = float((cp != ca).mean())
    if wrong <= 0.5:
        return None
    names = ds.category_names
    pairs = pd.crosstab(cp, ca)
    k = pairs.sum(axis=1).idxmax()
    to = pairs.loc[k].idxmax()
    return wrong, f"'{names.get(k, k)}' boxes sit mostly on '{names.get(to, to)}' labels"


def _xyxy(df: pd.DataFrame) -> np.ndarray:
    xywh = df[[X, Y, W, H]].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]


def _summary(severity: str, check: str, message: str) -> dict:
    return {"severity": severity, "check": check, IMAGE_ID: None, ANN_ID: None,
            "message": message}


def check_empty_annotators(ds: Dataset) -> list[dict]:
    """Annotators the labels name who left no annotation (unless the loader already said so
    with the file and tasks)."""
    counts = ds.annotations[ANNOTATOR].astype(str).value_counts()
    li = ds.load_issues
    said = " ".join(li.loc[li["check"] == "empty_annotator", "message"].astype(str))
    src = f"the {ds.format} labels of '{ds.name}'" + (f" (root {ds.root})" if ds.root else "")
    return [{"severity": "warning", "check": "empty_annotator", IMAGE_ID: None, ANN_ID: None,
             "message": f"annotator '{a}' has no annotations in {src}; check that their "
                        "export (for a folder of files, the file named after them) is complete."}
            for a in ds.annotators if counts.get(a, 0) == 0 and f"'{a}'" not in said]


CHECKS = {
    "duplicate_id": check_duplicate_ids,
    "unknown_category": check_unknown_category,
    "unknown_image": check_unknown_image,
    "bad_box_size": check_box_size,
    "degenerate_box": check_degenerate_boxes,
    "box_outside_image": check_box_outside,
    "files": check_files,
    "predictions": check_predictions,
    "empty_annotator": check_empty_annotators,
}


def validate(dataset: Dataset) -> ValidationReport:
    """Run every check in ``CHECKS`` and return the :class:`ValidationReport`.

    The report starts with the problems the loader quarantined (``dataset.load_issues``).
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"validate() needs a qa.Dataset, got {type(dataset).__name__}")
    rows: list[dict] = []
    for fn in CHECKS.values():
        rows += fn(dataset)
    found = (pd.DataFrame(rows, columns=[*ISSUES_SCHEMA, COUNT]) if rows
             else empty_frame(ISSUES_SCHEMA))
    parts = [df for df in (dataset.load_issues, found) if len(df)]
    issues = pd.concat(parts, ignore_index=True) if parts else empty_frame(ISSUES_SCHEMA)
    issues[COUNT] = (pd.to_numeric(issues[COUNT], errors="coerce").fillna(1).astype("int64")
                     if COUNT in issues else np.ones(len(issues), dtype=np.int64))
    for c in (IMAGE_ID, ANN_ID):
        issues[c] = pd.array(pd.to_numeric(issues[c], errors="coerce"), dtype="Float64"
                             ).astype("Int64") if len(issues) else issues[c].astype("Int64")
    order = {s: i for i, s in enumerate(SEVERITIES)}
    issues = issues.sort_values("severity", key=lambda s: s.map(order), kind="stable",
                                ignore_index=True)
    return ValidationReport(issues=issues)


def run_analysis(dataset: Dataset, ctx) -> ValidationReport:
    """Runner for :mod:`qa.analyses`: validation always runs."""
    return validate(dataset)


_PREFIX = r"^'[^']*'(?: \([^)]*\))?: (?:annotation \d+(?: \([^)]*\))?: )?"


def readable_issues(issues: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    """The validation rows for a person to read whole: severity, check, ``file`` (the image's
    file name), ``item`` (the annotation with its class and annotator, or 'the image'),
    ``problem`` and ``fix`` (the message's last clause, what to do). The page shows these
    columns instead of one long message that a table cuts off. Vectorised: 50k images with
    a missing file each take well under a second."""
    cols = ["severity", "check", "file", "item", "problem", "fix"]
    if issues is None or issues.empty:
        return pd.DataFrame(columns=cols)
    img = issues[IMAGE_ID]
    names = pd.Series(ds.images[FILE_NAME].astype(str).to_numpy(),
                      index=ds.images[IMAGE_ID].to_numpy())
    file = img.map(names).astype(object)
    file = file.where(file.notna(), "image id " + img.astype("string").fillna(""))
    file = file.where(img.notna(), "(dataset)")
    item = pd.Series(np.where(img.notna(), "the image", "—"), index=issues.index, dtype=object)
    ann = issues[ANN_ID]
    has = ann.notna()
    if has.any():
        a = ds.annotations.drop_duplicates(ANN_ID).set_index(ANN_ID)
        ids = ann[has].astype("int64")
        cls = ids.map(a[CATEGORY_ID].map(ds.category_names)).astype("string")
        text = "annotation " + ids.astype(str)
        if len(ds.annotators) > 1:
            cls = cls + ", " + ids.map(a[ANNOTATOR]).astype("string")
        item[has] = (text + (" (" + cls + ")").fillna("")).to_numpy()
    msg = issues["message"].astype(str).str.replace(r"\.$", "", regex=True)
    # the last clause is the fix when it reads like one (a sentence after '; ' or '. ')
    last = msg.str.extract(r"^(?P<head>.*)(?:; |\. )(?P<tail>[^;.]+)$")
    fix = last["tail"].fillna("")
    problem = last["head"].where(last["tail"].notna(), msg)
    problem = problem.str.replace(_PREFIX, "", regex=True)
    cap = lambda s: s.str[:1].str.upper() + s.str[1:]  # noqa: E731
    return pd.DataFrame({"severity": issues["severity"].to_numpy(),
                         "check": issues["check"].to_numpy(), "file": file.to_numpy(),
                         "item": item.to_numpy(), "problem": cap(problem).to_numpy(),
                         "fix": (cap(fix) + np.where(fix != "", ".", "")).to_numpy()},
                        columns=cols)
