"""Detection metrics of a model against the reference labels, equal to pycocotools' COCOeval.

:func:`evaluate_detections` returns precision, recall and AP@0.5 per class, COCO mAP@[.5:.95]
with AP by size bucket and the AR figures (the 12 numbers ``COCOeval.summarize`` prints, in
its order), PR curves and a confusion matrix with a background row and column.

How it equals COCOeval (bbox, ``useCats=1``, default ``Params``)
------------------------------------------------------------------
Same IoU (:meth:`qa.geometry.Geometry.box_iou` on xywh boxes with areas ``w * h``; crowd
regions divide by the detection's area), same greedy matching per image and class in
decreasing score (a detection takes the unmatched ground truth of highest IoU >= t, the last
one on ties, non-ignored before ignored; crowd regions can absorb any number), same ignore
rules (crowd, area outside the bucket; unmatched detections outside the bucket), same
101-point interpolated precision and the same ``-1`` for undefined cells, same stable sort
of detections (score, then image id, then the order they were given). The difference is
speed: the greedy step runs for all images at once, one detection rank at a time, on padded
arrays, instead of a Python loop per image, class and area range.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from qa.dataset import (
    AREA,
    BOX,
    CATEGORY_ID,
    IMAGE_ID,
    ISCROWD,
    PRED_ID,
    SCORE,
    Dataset,
)
from qa.geometry import DEFAULT_IOU_THRESHOLD, Geometry, cross_pairs, match_grouped
from qa.results import frame_records

log = logging.getLogger(__name__)

# COCOeval's default Params for bbox, spelled as it spells them
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e5 ** 2)}
# COCOeval.summarize's 12 figures: (name, ap?, iou threshold or None = mean, area, max dets)
STATS = (("AP", True, None, "all", 100), ("AP50", True, 0.5, "all", 100),
         ("AP75", True, 0.75, "all", 100), ("AP_small", True, None, "small", 100),
         ("AP_medium", True, None, "medium", 100), ("AP_large", True, None, "large", 100),
         ("AR1", False, None, "all", 1), ("AR10", False, None, "all", 10),
         ("AR100", False, None, "all", 100), ("AR_small", False, None, "small", 100),
         ("AR_medium", False, None, "medium", 100), ("AR_large", False, None, "large", 100))
BACKGROUND = "background"
# a prediction at least this confident counts for precision/recall and the confusion matrix
DEFAULT_EVAL_CONF = 0.5


@dataclass(frozen=True, eq=False)
class DetectionEvaluation:
    """What :func:`evaluate_detections` returns. Worse is lower everywhere.

    stats       COCOeval.summarize's 12 numbers by name (AP, AP50, AP75, AP_small ... AR_large);
                -1 where COCOeval prints -1 (no ground truth in that bucket).
    per_class   category_id, name, n_gt, n_pred (>= conf), tp, fp, fn, precision, recall (at IoU
                0.5 and ``conf_threshold``), ap50, ap (mean over IoU .5:.95), ap_small/medium/large.
    pr_curves   category_id, name, recall, precision, score: COCO's interpolated curve at IoU 0.5
                (101 recall points; precision 0 past the last reachable recall).
    confusion   (classes + background) x (classes + background) counts: rows = reference,
                columns = prediction (IoU >= 0.5, predictions >= ``conf_threshold``).
    precision   the raw COCOeval array [T, R, K, A, M] (-1 = undefined), recall [T, K, A, M].
    """

    model: str
    reference: str
    conf_threshold: float
    stats: dict
    per_class: pd.DataFrame
    pr_curves: pd.DataFrame
    confusion: pd.DataFrame
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    unknown_predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple = ()

    ANALYSIS: ClassVar[str] = "evaluation"

    def metrics(self) -> dict[str, float | None]:
        """mAP figures (None where undefined)."""
        return {("map" if k == "AP" else k.lower()): (None if v < 0 else float(v))
                for k, v in self.stats.items()}

    def findings(self) -> pd.DataFrame:
        from qa.results import findings_frame

        return findings_frame(analysis=self.ANALYSIS, page="disagreement")

    def to_dict(self) -> dict:
        return {"model": self.model, "reference": self.reference,
                "conf_threshold": self.conf_threshold,
                "stats": {k: float(v) for k, v in self.stats.items()},
                "per_class": frame_records(self.per_class),
                "pr_curves": frame_records(self.pr_curves),
                "confusion": frame_records(self.confusion.reset_index(names="reference")),
                "unknown_predictions": frame_records(self.unknown_predictions),
                "notes": list(self.notes)}


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def evaluate_detections(dataset: Dataset, *, model: str | None = None,
                        reference: str | None = None,
                        conf_threshold: float = DEFAULT_EVAL_CONF) -> DetectionEvaluation:
    """COCO detection metrics of ``model``'s predictions against the ``reference`` labels
    (an annotator, ``"consensus"``, or None = the only annotator / the consensus), over every
    image and class of ``dataset``. Predictions for images or classes the dataset lacks are
    reported in ``unknown_predictions`` and not scored (pycocotools would refuse the file).
    Returns a :class:`DetectionEvaluation`; AP equals pycocotools' COCOeval on the same data.
    """
    from qa.disagreement import judged_predictions, reference_boxes

    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a qa.Dataset, got {type(dataset).__name__}")
    if dataset.is_classification:
        raise ValueError("evaluate_detections needs boxes; this dataset has image-level labels "
                         "only. Use compute_disagreement for classification label issues.")
    conf = float(conf_threshold)
    if not 0.0 <= conf <= 1.0:
        raise ValueError(f"conf_threshold must be in [0, 1], got {conf}")
    model, (ref_name, _), preds, unknown, notes = judged_predictions(dataset, model, reference)
    ref = reference_boxes(dataset, ref_name)
    gt = ref[[IMAGE_ID, CATEGORY_ID, *BOX, AREA, ISCROWD]]
    dt = preds[[PRED_ID, IMAGE_ID, CATEGORY_ID, SCORE, *BOX]].reset_index(drop=True)
    img_ids = np.sort(dataset.images[IMAGE_ID].to_numpy(np.int64))
    cat_ids = np.sort(dataset.categories[CATEGORY_ID].to_numpy(np.int64))
    precision, recall, scores, matched = coco_evaluate(gt, dt, img_ids, cat_ids)
    stats = summarize(precision, recall)
    names = dataset.category_names
    per_class = _per_class(gt, dt, matched, precision, cat_ids, names, conf)
    curves = _pr_curves(precision, scores, cat_ids, names)
    confusion = _confusion(gt, dt[dt[SCORE] >= conf], img_ids, cat_ids, names)
    return DetectionEvaluation(model=model, reference=ref_name, conf_threshold=conf,
                               stats=stats, per_class=per_class, pr_curves=curves,
                               confusion=confusion, precision=precision, recall=recall,
                               unknown_predictions=unknown, notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# COCOeval, vectorised
# ---------------------------------------------------------------------------------------------
def coco_evaluate(gt: pd.DataFrame, dt: pd.DataFrame, img_ids, cat_ids):
    """COCOeval (bbox) on ground truth ``gt`` (image_id, category_id, x, y, w, h, area,
    iscrowd; row order = the file's order) and detections ``dt`` (image_id, category_id, score,
    x, y, w, h; row order = the results file's order) over ``img_ids`` x ``cat_ids``.

    Returns ``precision`` [T, R, K, A, M], ``recall`` [T, K, A, M] (-1 = undefined, as
    COCOeval.accumulate), ``scores`` [T, R, K, A, M] and ``matched``: for each row of ``dt`` a
    bool [T] of "true positive at IoU threshold t" (area "all"; False for detections beyond the
    100 best of their image and class, which COCOeval drops)."""
    img_ids = np.asarray(img_ids, dtype=np.int64)
    cat_ids = np.asarray(cat_ids, dtype=np.int64)
    n_t, n_r, n_k, n_a, n_m = len(IOU_THRS), len(REC_THRS), len(cat_ids), len(AREA_RANGES), 3
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    scores = -np.ones((n_t, n_r, n_k, n_a, n_m))
    matched_out = np.zeros((len(dt), n_t), bool)

    g_ok = (np.isin(gt[IMAGE_ID].to_numpy(np.int64), img_ids)
            & np.isin(gt[CATEGORY_ID].to_numpy(np.int64), cat_ids))
    d_ok = (np.isin(dt[IMAGE_ID].to_numpy(np.int64), img_ids)
            & np.isin(dt[CATEGORY_ID].to_numpy(np.int64), cat_ids))
    gi = np.searchsorted(img_ids, gt[IMAGE_ID].to_numpy(np.int64))
    gk = np.searchsorted(cat_ids, gt[CATEGORY_ID].to_numpy(np.int64))
    di = np.searchsorted(img_ids, dt[IMAGE_ID].to_numpy(np.int64))
    dk = np.searchsorted(cat_ids, dt[CATEGORY_ID].to_numpy(np.int64))
    # ---- ground truth, grouped by (image, class), in file order within a group
    g_rows = np.flatnonzero(g_ok)
    g_group = gi[g_rows] * n_k + gk[g_rows]
    o = np.argsort(g_group, kind="stable")
    g_rows, g_group = g_rows[o], g_group[o]
    g_xywh = gt[BOX].to_numpy(np.float64)[g_rows]
    g_area = gt[AREA].to_numpy(np.float64)[g_rows]
    g_crowd = gt[ISCROWD].to_numpy(np.int64)[g_rows] != 0
    # ---- detections, by (image, class), decreasing score (stable: file order on ties),
    #      at most MAX_DETS[-1] per group
    d_rows = np.flatnonzero(d_ok)
    d_score_all = dt[SCORE].to_numpy(np.float64)
    d_group = di[d_rows] * n_k + dk[d_rows]
    o = np.lexsort((d_rows, -d_score_all[d_rows], d_group))
    d_rows, d_group = d_rows[o], d_group[o]
    start = np.r_[0, np.flatnonzero(np.diff(d_group)) + 1] if len(d_group) else np.zeros(0, int)
    rank = np.arange(len(d_group)) - np.repeat(start, np.diff(np.r_[start, len(d_group)]))
    keep = rank < MAX_DETS[-1]
    d_rows, d_group, rank = d_rows[keep], d_group[keep], rank[keep]
    d_xywh = dt[BOX].to_numpy(np.float64)[d_rows]
    d_score = d_score_all[d_rows]
    d_area = d_xywh[:, 2] * d_xywh[:, 3]
    # ---- IoU of every detection with every ground truth of its group
    pd_, pg = cross_pairs(d_group, g_group)
    iou = Geometry.from_xywh(d_xywh).box_iou(Geometry.from_xywh(g_xywh), pd_, pg, g_crowd)
    # slot of each gt within its group (file order), groups' gt counts
    g_start = np.r_[0, np.flatnonzero(np.diff(g_group)) + 1] if len(g_group) else np.zeros(
        0, int)
    g_slot = np.arange(len(g_group)) - np.repeat(g_start, np.diff(np.r_[g_start, len(g_group)]))
    groups, g_count = np.unique(g_group, return_counts=True)
    n_gt_of = dict(zip(groups.tolist(), g_count.tolist()))
    d_ngt = np.array([n_gt_of.get(g, 0) for g in d_group.tolist()], dtype=np.int64) if len(
        d_group) else np.zeros(0, np.int64)
    width = int(g_count.max()) if len(g_count) else 0
    # dense per-detection IoU rows over its group's gt slots
    dense = np.zeros((len(d_rows), max(width, 1)))
    dense[pd_, g_slot[pg]] = iou
    gpos_of_slot = np.full((len(d_rows), max(width, 1)), -1, dtype=np.int64)  # gt position
    gpos_of_slot[pd_, g_slot[pg]] = pg

    thr = np.minimum(IOU_THRS, 1 - 1e-10)
    for a, (lo, hi) in enumerate(AREA_RANGES.values()):
        g_ig = g_crowd | (g_area < lo) | (g_area > hi)
        dtm, dt_ig = _greedy(d_group, rank, dense, gpos_of_slot, d_ngt, g_ig, g_crowd, thr)
        d_out = (d_area < lo) | (d_area > hi)
        dt_ig |= ~dtm & d_out[None, :]
        if a == 0:
            matched_out[d_rows] = (dtm & ~dt_ig).T
        npig = np.bincount(gk[g_rows][~g_ig], minlength=n_k)
        _accumulate(precision, recall, scores, a, dk[d_rows], di[d_rows], rank, d_score, dtm,
                    dt_ig, npig, n_k)
    return precision, recall, scores, matched_out


def _greedy(d_group, rank, dense, gpos_of_slot, d_ngt, g_ig, g_crowd, thr):
    """COCOeval.evaluateImg's matching for one area range, all images at once: returns
    ``dtm`` [T, n_det] (matched) and ``dt_ig`` [T, n_det] (matched to an ignored gt)."""
    n_t, n_d = len(thr), len(d_group)
    dtm = np.zeros((n_t, n_d), bool)
    dt_ig = np.zeros((n_t, n_d), bool)
    if n_d == 0:
        return dtm, dt_ig
    width = dense.shape[1]
    slots = np.arange(width)
    valid = slots[None, :] < d_ngt[:, None]  # [n_d, width]
    gpos = np.where(valid, gpos_of_slot, len(g_ig))  # padding slots point past the end
    ig = np.r_[g_ig, False][gpos] & valid
    crowd = np.r_[g_crowd, False][gpos] & valid
    # COCOeval sorts a group's gts ignored-last (stable); ties go to the later one in that
    # order: rank each slot by (ignored, slot) and break ties on the larger rank
    order_key = ig * width + slots[None, :]
    # matched state per (t, group, slot): groups indexed densely
    ug, ginv = np.unique(d_group, return_inverse=True)
    gtm = np.zeros((n_t, len(ug), width), bool)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(rank.max() + 2)) if n_d else [0]
    for r in range(len(bounds) - 1):
        idx = by_rank[bounds[r]:bounds[r + 1]]
        if len(idx) == 0:
            continue
        g = ginv[idx]
        ious = dense[idx][None, :, :]  # [1, n, width]
        taken = gtm[:, g, :]  # [T, n, width]
        ok = valid[idx][None] & (ious >= thr[:, None, None])
        avail = ok & ~(taken & ~crowd[idx][None])
        best = _pick(avail & ~ig[idx][None], ious, order_key[idx])
        second = _pick(avail & ig[idx][None], ious, order_key[idx])
        m = np.where(best >= 0, best, second)  # [T, n]
        t_i, n_i = np.nonzero(m >= 0)
        s = m[t_i, n_i]
        gtm[t_i, g[n_i], s] = True
        dtm[t_i, idx[n_i]] = True
        dt_ig[t_i, idx[n_i]] = ig[idx[n_i], s]
    return dtm, dt_ig


def _pick(cand, ious, order_key):
    """Per (t, det): the candidate slot of highest IoU, the last in COCO's gt order on ties;
    -1 when none."""
    vals = np.where(cand, ious, -np.inf)
    best = vals.max(axis=2, keepdims=True)
    at_best = cand & (vals == best)
    key = np.where(at_best, order_key[None], -1)
    s = key.argmax(axis=2)
    has = cand.any(axis=2)
    width = ious.shape[2]
    return np.where(has, s % width if width else s, -1)


def _accumulate(precision, recall, scores, a, d_cat, d_img, rank, d_score, dtm, dt_ig, npig,
                n_k):
    """COCOeval.accumulate for area range ``a``, every class and max-dets setting."""
    eps = np.spacing(1)
    n_r = len(REC_THRS)
    for m, max_det in enumerate(MAX_DETS):
        sel = np.flatnonzero(rank < max_det)
        # concatenation order: class, image, rank; then a stable sort by decreasing score
        o = np.lexsort((rank[sel], d_img[sel], -d_score[sel], d_cat[sel]))
        sel = sel[o]
        cats = d_cat[sel]
        bounds = np.searchsorted(cats, np.arange(n_k + 1))
        for k in range(n_k):
            if npig[k] == 0:
                continue
            s = sel[bounds[k]:bounds[k + 1]]
            tps = dtm[:, s] & ~dt_ig[:, s]
            fps = ~dtm[:, s] & ~dt_ig[:, s]
            tp_sum = np.cumsum(tps, axis=1, dtype=np.float64)
            fp_sum = np.cumsum(fps, axis=1, dtype=np.float64)
            nd = tp_sum.shape[1]
            sc = d_score[s]
            for t in range(tp_sum.shape[0]):
                tp, fp = tp_sum[t], fp_sum[t]
                rc = tp / npig[k]
                pr = tp / (fp + tp + eps)
                recall[t, k, a, m] = rc[-1] if nd else 0
                q = np.zeros(n_r)
                ss = np.zeros(n_r)
                if nd:
                    pr = np.maximum.accumulate(pr[::-1])[::-1]
                    inds = np.searchsorted(rc, REC_THRS, side="left")
                    ok = inds < nd
                    q[ok] = pr[inds[ok]]
                    ss[ok] = sc[inds[ok]]
                precision[t, :, k, a, m] = q
                scores[t, :, k, a, m] = ss


def summarize(precision: np.ndarray, recall: np.ndarray) -> dict:
    """COCOeval.summarize's 12 figures by name (-1 where no cell is defined)."""
    areas = list(AREA_RANGES)
    out = {}
    for name, ap, iou, area, max_det in STATS:
        a, m = areas.index(area), MAX_DETS.index(max_det)
        if ap:
            s = precision[:, :, :, a, m]
            if iou is not None:
                s = s[np.flatnonzero(np.isclose(IOU_THRS, iou))]
        else:
            s = recall[:, :, a, m]
        s = s[s > -1]
        out[name] = float(np.mean(s)) if s.size else -1.0
    return out


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
def _class_ap(precision, k, t=None, a=0):
    s = precision[:, :, k, a, -1] if t is None else precision[t, :, k, a, -1]
    s = s[s > -1]
    return float(s.mean()) if s.size else np.nan


def _per_class(gt, dt, matched, precision, cat_ids, names, conf) -> pd.DataFrame:
    rows = []
    conf_ok = dt[SCORE].to_numpy(np.float64) >= conf
    tp50 = matched[:, 0]
    d_cat = dt[CATEGORY_ID].to_numpy(np.int64)
    g_cat = gt[CATEGORY_ID].to_numpy(np.int64)
    g_real = gt[ISCROWD].to_numpy(np.int64) == 0
    for k, c in enumerate(cat_ids):
        n_gt = int(((g_cat == c) & g_real).sum())
        mine = (d_cat == c) & conf_ok
        tp = int((mine & tp50).sum())
        n_pred = int(mine.sum())
        fp = n_pred - tp
        rows.append({
            CATEGORY_ID: int(c), "name": names.get(int(c), str(c)), "n_gt": n_gt,
            "n_pred": n_pred, "tp": tp, "fp": fp, "fn": n_gt - tp,
            "precision": tp / n_pred if n_pred else np.nan,
            "recall": tp / n_gt if n_gt else np.nan,
            "ap50": _class_ap(precision, k, t=0), "ap": _class_ap(precision, k),
            "ap_small": _class_ap(precision, k, a=1), "ap_medium": _class_ap(precision, k, a=2),
            "ap_large": _class_ap(precision, k, a=3)})
    return pd.DataFrame(rows)


def _pr_curves(precision, scores, cat_ids, names) -> pd.DataFrame:
    parts = []
    for k, c in enumerate(cat_ids):
        p = precision[0, :, k, 0, -1]
        if (p < 0).all():
            continue
        parts.append(pd.DataFrame({CATEGORY_ID: int(c), "name": names.get(int(c), str(c)),
                                   "recall": REC_THRS, "precision": p,
                                   "score": scores[0, :, k, 0, -1]}))
    cols = [CATEGORY_ID, "name", "recall", "precision", "score"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def _confusion(gt, dt, img_ids, cat_ids, names) -> pd.DataFrame:
    """Reference rows x predicted columns at IoU 0.5, background included (the shared
    one-to-one matching: same class first, then across classes)."""
    gt = gt[gt[ISCROWD] == 0]
    labels = [names.get(int(c), str(c)) for c in cat_ids] + [BACKGROUND]
    n = len(cat_ids)
    mat = np.zeros((n + 1, n + 1), dtype=np.int64)
    g = gt.assign(_i=np.searchsorted(img_ids, gt[IMAGE_ID])).sort_values("_i", kind="stable")
    d = dt.assign(_i=np.searchsorted(img_ids, dt[IMAGE_ID])).sort_values("_i", kind="stable")
    gc = np.searchsorted(cat_ids, g[CATEGORY_ID].to_numpy(np.int64))
    dc = np.searchsorted(cat_ids, d[CATEGORY_ID].to_numpy(np.int64))
    (ma, mb, _), (xa, xb, _) = match_grouped(
        g["_i"].to_numpy(np.int64), d["_i"].to_numpy(np.int64),
        Geometry.from_xywh(g[BOX].to_numpy(np.float64)),
        Geometry.from_xywh(d[BOX].to_numpy(np.float64)), gc, dc, DEFAULT_IOU_THRESHOLD)
    ga = np.concatenate([ma, xa])
    db = np.concatenate([mb, xb])
    np.add.at(mat, (gc[ga], dc[db]), 1)
    free_g = np.setdiff1d(np.arange(len(g)), ga)
    free_d = np.setdiff1d(np.arange(len(d)), db)
    np.add.at(mat, (gc[free_g], n), 1)
    np.add.at(mat, (n, dc[free_d]), 1)
    out = pd.DataFrame(mat, index=pd.Index(labels, name="reference"),
                       columns=pd.Index(labels, name="predicted"))
    return out


__all__ = [
    "AREA_RANGES",
    "IOU_THRS",
    "MAX_DETS",
    "REC_THRS",
    "DetectionEvaluation",
    "coco_evaluate",
    "evaluate_detections",
    "summarize",
]
