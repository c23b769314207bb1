"""Box and mask geometry shared by every analysis that compares boxes: IoU (boxes and COCO
masks) and one-to-one matching. Agreement (annotator vs annotator) and disagreement (model vs
labels) both use it; there is no second copy of IoU or matching code.

* Boxes are COCO ``xywh`` in absolute pixels on the way in; ``xyxy`` inside.
* Matching maximises the summed IoU one-to-one (:func:`scipy.optimize.linear_sum_assignment`),
  never pairs below the threshold, and (with labels) matches same-label pairs first, then the
  leftovers across labels: those are *label mismatches*, as CVAT's quality report counts them.
* The grouped forms (:func:`cross_pairs`, :func:`match_grouped`, :class:`Geometry`) work on all
  images at once: pairs are built per image with index arithmetic, and the assignment solver
  only runs on images whose candidates conflict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from qa.dataset import BOX, HEIGHT, IMAGE_ID, SEGMENTATION, WIDTH, Dataset
from qa.results import frame_records

DEFAULT_IOU_THRESHOLD = 0.5  # the match threshold CVAT's quality report and COCO AP@0.5 use


@dataclass(frozen=True)
class MatchResult:
    """One-to-one matching of boxes ``a`` against boxes ``b`` (indices are row positions).

    ``matches``: same-label (or unlabelled) pairs ``idx_a, idx_b, iou``; ``label_mismatches``:
    pairs above the threshold whose labels differ; ``unmatched_a`` / ``unmatched_b``: the rest.
    """

    matches: pd.DataFrame
    label_mismatches: pd.DataFrame
    unmatched_a: np.ndarray
    unmatched_b: np.ndarray

    def to_dict(self) -> dict:
        return {"matches": frame_records(self.matches),
                "label_mismatches": frame_records(self.label_mismatches),
                "unmatched_a": self.unmatched_a.tolist(), "unmatched_b": self.unmatched_b.tolist()}


# ---------------------------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------------------------
def as_xywh(boxes, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be an (n, 4) array of x, y, w, h boxes, got shape "
                         f"{arr.shape}; pass e.g. ds.annotations[BOX].to_numpy().")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite coordinates; drop image-level labels "
                         "(rows with NaN boxes) before matching boxes.")
    return arr


def check_iou_threshold(t) -> float:
    t = float(t)
    if not 0.0 < t <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {t}; 0.5 is the usual choice.")
    return t


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    out = xywh.copy()
    out[:, 2:] += out[:, :2]
    return out


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """IoU matrix (n_a, n_b) of two sets of COCO xywh boxes (vectorised)."""
    a = xywh_to_xyxy(as_xywh(boxes_a, "boxes_a"))
    b = xywh_to_xyxy(as_xywh(boxes_b, "boxes_b"))
    return iou_matrix_xyxy(a, b)


def iou_matrix_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------
def match_edges(group: np.ndarray, i: np.ndarray, j: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Maximum-weight one-to-one matching of candidate edges (i, j, w > 0), independently per
    ``group``; returns a boolean mask of the chosen edges. Edges whose two ends have no other
    candidate are taken directly; the assignment solver runs only on groups with conflicts."""
    from scipy.optimize import linear_sum_assignment

    sel = np.zeros(len(i), dtype=bool)
    if len(i) == 0:
        return sel
    _, inv_i, cnt_i = np.unique(i, return_inverse=True, return_counts=True)
    _, inv_j, cnt_j = np.unique(j, return_inverse=True, return_counts=True)
    trivial = (cnt_i[inv_i] == 1) & (cnt_j[inv_j] == 1)
    sel[trivial] = True
    hard = np.flatnonzero(~trivial)
    if hard.size == 0:
        return sel
    g = group[hard]
    li, lj = _local_rank(g, i[hard]), _local_rank(g, j[hard])
    order = np.argsort(g, kind="stable")
    hard, g, li, lj = hard[order], g[order], li[order], lj[order]
    bounds = np.r_[0, np.flatnonzero(np.diff(g)) + 1, len(g)].tolist()
    hw, li_l, lj_l = w[hard], li, lj
    for s0, s1 in zip(bounds[:-1], bounds[1:]):
        ri, rj = li_l[s0:s1], lj_l[s0:s1]
        m = np.zeros((int(ri.max()) + 1, int(rj.max()) + 1))
        m[ri, rj] = hw[s0:s1]
        lut = np.full(m.shape, -1, dtype=np.int64)
        lut[ri, rj] = hard[s0:s1]
        r, c = linear_sum_assignment(m, maximize=True)
        keep = m[r, c] > 0
        sel[lut[r[keep], c[keep]]] = True
    return sel


def _local_rank(group: np.ndarray, node: np.ndarray) -> np.ndarray:
    """Dense rank of ``node`` within its ``group`` (0, 1, ... per group), vectorised."""
    order = np.lexsort((node, group))
    g, n = group[order], node[order]
    new_group = np.r_[True, g[1:] != g[:-1]]
    new_node = new_group | np.r_[True, n[1:] != n[:-1]]
    rank = np.cumsum(new_node) - 1
    start = np.maximum.accumulate(np.where(new_group, rank, 0))
    out = np.empty(len(node), dtype=np.int64)
    out[order] = rank - start
    return out


def match_two_stage(group, i, j, w, same) -> tuple[np.ndarray, np.ndarray]:
    """Same-label edges first, then the leftovers across labels (label mismatches)."""
    first = np.flatnonzero(same)
    matched = np.zeros(len(i), dtype=bool)
    matched[first[match_edges(group[first], i[first], j[first], w[first])]] = True
    rest = ~same & ~np.isin(i, i[matched]) & ~np.isin(j, j[matched])
    rest = np.flatnonzero(rest)
    mismatch = np.zeros(len(i), dtype=bool)
    mismatch[rest[match_edges(group[rest], i[rest], j[rest], w[rest])]] = True
    return matched, mismatch


def match_boxes(boxes_a, boxes_b, *, iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                labels_a=None, labels_b=None, ious=None) -> MatchResult:
    """Match two sets of xywh boxes of one image one-to-one, maximising the summed IoU.

    Pairs with IoU below ``iou_threshold`` are never matched. With ``labels_a``/``labels_b``,
    same-label pairs are matched first; the boxes left are then matched across labels and
    reported in ``label_mismatches``. ``ious``: a precomputed (n_a, n_b) IoU matrix (e.g. mask
    IoU from :func:`mask_iou`) used instead of box IoU.
    """
    thr = check_iou_threshold(iou_threshold)
    a, b = as_xywh(boxes_a, "boxes_a"), as_xywh(boxes_b, "boxes_b")
    if (labels_a is None) != (labels_b is None):
        raise ValueError("Pass both labels_a and labels_b, or neither.")
    if labels_a is not None:
        labels_a, labels_b = np.asarray(labels_a), np.asarray(labels_b)
        if len(labels_a) != len(a) or len(labels_b) != len(b):
            raise ValueError(f"labels must have one entry per box: got {len(labels_a)} labels for "
                             f"{len(a)} boxes_a and {len(labels_b)} labels for {len(b)} boxes_b.")
    if ious is None:
        iou = iou_matrix_xyxy(xywh_to_xyxy(a), xywh_to_xyxy(b))
    else:
        iou = np.asarray(ious, dtype=np.float64).reshape(len(a), len(b))
    return _compute_match(iou, labels_a, labels_b, thr)


def _compute_match(iou, labels_a, labels_b, thr) -> MatchResult:
    i, j = np.nonzero(iou >= thr)
    w = iou[i, j]
    group = np.zeros(len(i), dtype=np.int64)
    same = (np.ones(len(i), dtype=bool) if labels_a is None else labels_a[i] == labels_b[j])
    matched, mismatch = match_two_stage(group, i, j, w, same)

    def frame(mask):
        return pd.DataFrame({"idx_a": i[mask].astype(np.int64), "idx_b": j[mask].astype(np.int64),
                             "iou": w[mask]}).sort_values("idx_a", ignore_index=True)

    used = matched | mismatch
    return MatchResult(
        matches=frame(matched), label_mismatches=frame(mismatch),
        unmatched_a=np.setdiff1d(np.arange(iou.shape[0]), i[used]),
        unmatched_b=np.setdiff1d(np.arange(iou.shape[1]), j[used]),
    )


# ---------------------------------------------------------------------------------------------
# Masks (segmentation)
# ---------------------------------------------------------------------------------------------
def seg_to_rle(seg, height: int, width: int):
    """One COCO segmentation (polygon list, RLE dict, or msgspec.Raw / str JSON of either) as a
    pycocotools RLE; None when absent."""
    from pycocotools import mask as mask_utils

    if seg is None or (isinstance(seg, float) and math.isnan(seg)):
        return None
    if not isinstance(seg, (list, dict)):
        import msgspec

        raw = bytes(seg) if not isinstance(seg, str) else seg.encode()
        seg = msgspec.json.decode(raw)
    if seg in ([], {}, None):
        return None
    if isinstance(seg, dict):
        if isinstance(seg.get("counts"), list):  # uncompressed RLE
            return mask_utils.frPyObjects(seg, int(seg["size"][0]), int(seg["size"][1]))
        return {"size": seg["size"], "counts": seg["counts"].encode()
                if isinstance(seg["counts"], str) else seg["counts"]}
    if all(isinstance(v, (int, float)) for v in seg):  # one flat polygon
        seg = [seg]
    polys = [p for p in seg if len(p) >= 6]
    if not polys:
        return None
    return mask_utils.merge(mask_utils.frPyObjects(polys, int(height), int(width)))


def mask_iou(segs_a: Sequence, segs_b: Sequence, *, height: int, width: int) -> np.ndarray:
    """Mask IoU matrix (len(segs_a), len(segs_b)) of COCO segmentations (polygons or RLE)."""
    from pycocotools import mask as mask_utils

    ra = [seg_to_rle(s, height, width) for s in segs_a]
    rb = [seg_to_rle(s, height, width) for s in segs_b]
    if any(r is None for r in ra + rb):
        raise ValueError("Every annotation needs a polygon or RLE segmentation for mask IoU; "
                         "use iou_type='bbox' for boxes without masks.")
    if not ra or not rb:
        return np.zeros((len(ra), len(rb)))
    return np.asarray(mask_utils.iou(ra, rb, [0] * len(rb)), dtype=np.float64).reshape(
        len(ra), len(rb))


class Geometry:
    """Boxes (xyxy) and optionally masks of a set of objects, with a vectorised pairwise IoU."""

    def __init__(self, xyxy: np.ndarray, rles: list | None = None, area: np.ndarray | None = None):
        self.xyxy, self.rles = xyxy, rles
        self.cols = [np.ascontiguousarray(xyxy[:, c]) for c in range(4)]
        # ``area``: e.g. w * h from xywh, which is what pycocotools' bbox IoU divides by (the
        # difference x2 - x1 can differ from w in the last bit)
        self.area = ((self.cols[2] - self.cols[0]) * (self.cols[3] - self.cols[1])
                     if area is None else np.asarray(area, dtype=np.float64))

    @classmethod
    def from_xywh(cls, xywh: np.ndarray) -> "Geometry":
        """Boxes given as COCO xywh, with areas w * h exactly as pycocotools computes them."""
        xywh = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
        return cls(xywh_to_xyxy(xywh), area=xywh[:, 2] * xywh[:, 3])

    def take(self, idx: np.ndarray) -> "Geometry":
        return Geometry(self.xyxy[idx], None if self.rles is None else [self.rles[k] for k in idx],
                        self.area[idx])

    def box_iou(self, other: "Geometry", ia: np.ndarray, ib: np.ndarray,
                crowd_b: np.ndarray | None = None) -> np.ndarray:
        """Box IoU of pairs (ia[k], ib[k]); pairs apart along x are skipped early (most are).
        Where ``crowd_b[ib[k]]`` is true the union is the area of ``a`` alone (COCO's crowd
        regions: the share of the detection inside the crowd)."""
        (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = self.cols, other.cols
        iw = np.minimum(ax2[ia], bx2[ib])
        iw -= np.maximum(ax1[ia], bx1[ib])
        out = np.zeros(len(ia))
        k = np.flatnonzero(iw > 0)
        ia, ib, iw = ia[k], ib[k], iw[k]
        ih = np.minimum(ay2[ia], by2[ib])
        ih -= np.maximum(ay1[ia], by1[ib])
        np.clip(ih, 0, None, out=ih)
        inter = iw * ih
        union = self.area[ia] + other.area[ib] - inter
        if crowd_b is not None:
            union = np.where(crowd_b[ib], self.area[ia], union)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[k] = np.where(union > 0, inter / union, 0.0)
        return out

    def iou(self, other: "Geometry", ia: np.ndarray, ib: np.ndarray,
            group: np.ndarray) -> np.ndarray:
        box = self.box_iou(other, ia, ib)
        if self.rles is None:
            return box
        from pycocotools import mask as mask_utils

        out = np.zeros(len(ia))
        cand = np.flatnonzero(box > 0)  # masks can only overlap where their boxes do
        if cand.size == 0:
            return out
        cand = cand[np.argsort(group[cand], kind="stable")]
        for chunk in np.split(cand, np.flatnonzero(np.diff(group[cand])) + 1):
            ua, la = np.unique(ia[chunk], return_inverse=True)
            ub, lb = np.unique(ib[chunk], return_inverse=True)
            m = np.asarray(mask_utils.iou([self.rles[k] for k in ua], [other.rles[k] for k in ub],
                                          [0] * len(ub)), dtype=np.float64)
            out[chunk] = m.reshape(len(ua), len(ub))[la, lb]
        return out


# ---------------------------------------------------------------------------------------------
# Grouped matching (all images at once)
# ---------------------------------------------------------------------------------------------
def cross_pairs(ga: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (p, q) with ga[p] == gb[q], for two SORTED group arrays (positions into them)."""
    ua, sa, ca = np.unique(ga, return_index=True, return_counts=True)
    ub, sb, cb = np.unique(gb, return_index=True, return_counts=True)
    _, ia, ib = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
    na, nb, st_a, st_b = ca[ia], cb[ib], sa[ia], sb[ib]
    sizes = na * nb
    total = int(sizes.sum())
    rep = np.repeat(np.arange(len(ia)), sizes)
    offs = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    nbr = nb[rep]
    return st_a[rep] + offs // nbr, st_b[rep] + offs % nbr


def match_grouped(ga, gb, geom_a, geom_b, ca, cb, thr, same_label=None):
    """Match objects a against objects b within groups (both sorted by group). Returns the
    positions and IoU of matched pairs and of label-mismatch pairs. ``same_label(pa, pb)``
    overrides the label test ``ca[pa] == cb[pb]``."""
    pa, pb = cross_pairs(ga, gb)
    iou = geom_a.iou(geom_b, pa, pb, ga[pa]) if len(pa) else np.zeros(0)
    keep = iou >= thr
    pa, pb, iou = pa[keep], pb[keep], iou[keep]
    same = ca[pa] == cb[pb] if same_label is None else same_label(pa, pb)
    matched, mismatch = match_two_stage(ga[pa], pa, pb, iou, same)
    return (pa[matched], pb[matched], iou[matched]), (pa[mismatch], pb[mismatch], iou[mismatch])


def dataset_rles(ds: Dataset, anns: pd.DataFrame, img_ids, img) -> list:
    size = ds.images.set_index(IMAGE_ID)[[HEIGHT, WIDTH]]
    hw = size.reindex(img_ids).to_numpy(dtype=np.float64, na_value=np.nan)[img]
    rles = []
    for seg, (h, w), box in zip(anns[SEGMENTATION], hw, anns[BOX].to_numpy(np.float64)):
        if np.isnan(h) or np.isnan(w):  # size unknown: the box corner bounds the polygon
            h, w = box[1] + box[3] + 1, box[0] + box[2] + 1
        r = seg_to_rle(seg, int(h), int(w))
        if r is None:  # no mask: fall back to the box as a rectangle polygon
            x, y, bw, bh = box
            r = seg_to_rle([[x, y, x + bw, y, x + bw, y + bh, x, y + bh]], int(h), int(w))
        rles.append(r)
    return rles
