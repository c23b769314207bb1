"""Pixel verification of near-duplicate candidates: is this pair *the same picture*?

Perceptual codes and embeddings propose pairs that *look alike*; on real photos that includes
the same scene with other content (a chess board with the pieces moved, another product on the
same table, the next frame of a fixed camera), which is not a duplicate, and misses copies that
were shifted, sheared or re-exposed, which are. This module decides each candidate pair on the
pixels, the way a person would compare two prints laid over each other:

1. **One geometric transform.** Local features (ORB, from OpenCV) of both images are matched
   (Lowe's ratio test) and an affine transform is fitted with RANSAC
   (``cv2.estimateAffine2D``). A shifted, cropped, resized, sheared or rotated copy is one
   affine transform of the original; the mirrored picture is tried too (a flipped copy). Too
   few inliers: no common geometry, **different**.
2. **The residual after alignment.** The second image is warped onto the first; its grey
   levels are mapped onto the first's over the overlap (quantile mapping, so a brightness,
   exposure or gamma change costs nothing); both are smoothed a little (JPEG and resampling
   noise) and the absolute difference, in units of the first image's contrast, is averaged
   over a grid of cells. ``residual`` is the median cell (how well the whole picture aligns),
   ``change`` the worst cell (a piece that moved, a product that was swapped): the same
   picture has both low; the same scene with other content has a low residual and a high
   change.
3. **Labels as evidence.** When both images carry boxes, the second image's boxes are mapped
   through the transform; ``label_agreement`` is the share of boxes inside the overlap that
   find a box of the same class at IoU >= 0.5 on the other side. Copies carry the same labels
   (or the labels are wrong: the duplicates page reports that); a low agreement on a borderline
   residual decides "different".

Every decision says how it was reached (``reason``). Images are read through the one image
reader (:mod:`qa.images`), reduced to :data:`VERIFY_SIDE` pixels; OpenCV (``cv2``) is imported
here only.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qa.dataset import CATEGORY_ID, FILE_NAME, IMAGE_ID, H, W, X, Y, Dataset

log = logging.getLogger(__name__)

# Long side (px) of the grey copy compared: features and residuals at ~400 px are stable under
# JPEG noise and resampling, and a pair costs a few milliseconds.
VERIFY_SIDE = 400
# ORB keypoints per image (OpenCV's default is 500; a few more keep enough matches on
# repetitive textures such as blood smears; matching costs grow with the square).
N_FEATURES = 600
# Lowe's ratio test: the best match must be clearly better than the second best.
RATIO = 0.8
# RANSAC reprojection error (px at VERIFY_SIDE) and the evidence a transform needs: at least
# MIN_INLIERS matches, MIN_INLIER_SHARE of the ratio-test matches.
RANSAC_PX = 4.0
MIN_INLIERS = 12
MIN_INLIER_SHARE = 0.15
# A copy keeps most of the picture: the overlap after alignment must cover this share of the
# smaller image (a 15 % crop plus a 6-degree shear keeps ~75 %; a microscope field panned by a
# third of its width keeps ~65 %).
MIN_OVERLAP = 0.4
# Plausible copies: scale within [1/MAX_SCALE, MAX_SCALE], shear/anisotropy under MAX_SKEW.
MAX_SCALE = 4.0
MAX_SKEW = 0.35
# Fill left by a shear, rotation or padding: flat areas at most FILL_DARK levels from black
# (or white) that touch the border and cover at least FILL_MIN_AREA of the picture.
FILL_DARK = 12
FILL_MIN_AREA = 0.002
# Pixels this close to a fill are not compared (px at VERIFY_SIDE).
EDGE_PX = 5
# Misfit tolerated when differencing (px at VERIFY_SIDE): an affine fit of a copy that was
# resampled twice is exact to about a pixel; a moved object moves much further.
TOLERANCE_PX = 2
# Grey levels outside [CLIP_LOW, CLIP_HIGH] count as black / white when differencing.
CLIP_LOW, CLIP_HIGH = 24.0, 232.0
# A pixel has changed when it lies this far (in units of the image's grey-level standard
# deviation) outside the range of the other image's pixels around it; ``change`` is the
# largest share of changed pixels in one cell (a moved object fills a good part of a cell, a
# seam along the edge of the overlap a thin strip).
CHANGED_LEVEL = 0.5
# Side of the coarse map of changed pixels kept with each measurement.
CHANGE_MAP_SIDE = 40
# Grid of cells for the residual: GRID x GRID over the first image; a cell counts when at
# least CELL_INSIDE of it lies in the overlap (cells on the overlap's edge carry the seams of
# the resampling and the fill).
GRID = 12
CELL_INSIDE = 0.9
# Gaussian smoothing (sigma, px at VERIFY_SIDE) before differencing.
SMOOTH_SIGMA = 3.0
# Decision cuts (chosen on the real evaluation sets, see docs/findings.md): the same picture
# has a median cell residual under RESIDUAL_MAX (grey-level standard deviations) and, without
# labels, no cell with more than CHANGE_MAX of its pixels changed.
RESIDUAL_MAX = 0.13
CHANGE_MAX = 0.10
# With labels, the labelled objects decide: a copy changes under OBJECT_CHANGE_MAX of any
# box's pixels (a moved chess piece changes 15-50 %; a microscope field refocused, or with a
# speck of debris drifting between the cells, under 15 %), and at least LABEL_AGREEMENT_MIN of
# the boxes find their partner (pieces swapped on one square change few pixels but the labels).
OBJECT_CHANGE_MAX = 0.15
# Boxes compared for label agreement: matched at this IoU (COCO's 0.5), when they lie at least
# BOX_MARGIN px (at VERIFY_SIDE) inside both frames.
BOX_MARGIN = 6
# ... and at least BOX_VISIBLE of their area lies in the part of the picture both frames show
# (a cell or a piece cut by the other copy's edge is labelled differently by each copy).
BOX_VISIBLE = 0.9
LABEL_IOU = 0.5
LABEL_AGREEMENT_MIN = 0.2
# Labelled objects compared one by one through the transform (:func:`_label_match`): an object
# of the overlap without a same-class partner is *other content* when the pixels under it
# changed, and a disagreement of the labels alone (a label error in one copy) when they did not:
# * relabelled (the other image has another class at the same place) or moved (unmatched on
#   both sides, same class, at other places): other content above MOVED_CHANGE_MIN of the
#   object's pixels changed. A label error leaves its object unchanged (0-2 % on the chess set's
#   re-uploaded photos whose rooks are labelled knights in one copy); a moved or swapped piece
#   changes 7-15 % on the coarse change map; BCCD's copies with a box missing on both sides stay
#   under 4 %.
# * only on one side (an object gone, or left unlabelled): other content above MOVED_CHANGE_MIN
#   when the two label sets otherwise agree (at most LABELS_AGREE_SHARE of the compared objects
#   unmatched: a piece taken or added on the chess set, 6-15 % changed, one of ~20 objects), and
#   above OBJECT_CHANGE_MAX when they do not: a dataset with incomplete labels (BCCD leaves many
#   red cells unboxed, differently in each shot of a field: 2 to 8 of 5 to 13 objects) says
#   little by a missing box, and a refocused field changes a cell by up to 14 %.
MOVED_CHANGE_MIN = 0.05
LABELS_AGREE_SHARE = 0.25
RESIDUAL_CHANGE = 2.5
# Grey copies kept in memory while verifying (LRU): 2,048 x 400 x 400 bytes = 330 MB at most.
CACHE_IMAGES = 2048

VERDICT_COLUMNS = ("image_id_a", "image_id_b", "verdict", "verified_flipped", "inliers",
                   "inlier_share", "overlap", "residual", "change", "label_agreement",
                   "object_change", "reason")

ProgressFn = Callable[..., None]


@dataclass
class _Features:
    gray: np.ndarray  # uint8, VERIFY_SIDE on its long side
    scale: float  # gray pixels per original pixel
    kp: np.ndarray  # (n, 2) float32
    desc: np.ndarray | None


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - a declared dependency
        raise ImportError("pixel verification of near-duplicates needs OpenCV: pip install "
                          "opencv-python-headless") from None
    cv2.setNumThreads(1)  # pairs are verified in a thread pool already
    return cv2


def _features(cv2, gray: np.ndarray, scale: float) -> _Features:
    orb = cv2.ORB_create(nfeatures=N_FEATURES, fastThreshold=7)
    kps, desc = orb.detectAndCompute(gray, None)
    pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
    return _Features(gray, scale, pts, desc)


def gray_copy(image) -> tuple[np.ndarray, float]:
    """(uint8 grey array with VERIFY_SIDE px on its long side, scale from the original)."""
    from PIL import Image

    g = image.convert("L")
    s = VERIFY_SIDE / max(g.size)
    if abs(s - 1) > 1e-3:
        g = g.resize((max(1, round(g.width * s)), max(1, round(g.height * s))),
                     Image.Resampling.BILINEAR)
    return np.asarray(g), s


def verify_pair_arrays(gray_a: np.ndarray, gray_b: np.ndarray, *, boxes_a=None,
                       boxes_b=None) -> dict:
    """Verify one pair of grey uint8 arrays (already at the working size). ``boxes_*``:
    optional (n, 5) arrays ``x, y, w, h, category`` in the arrays' pixels. Returns the
    verdict record (see :data:`VERDICT_COLUMNS`, without the ids)."""
    cv2 = _cv2()
    fa = _features(cv2, gray_a, 1.0)
    fb = _features(cv2, gray_b, 1.0)
    return _verify(cv2, fa, fb, lambda: _features(cv2, np.ascontiguousarray(gray_b[:, ::-1]),
                                                  1.0), boxes_a, boxes_b)


def _match(cv2, fa: _Features, fb: _Features):
    """(points in b, points in a) of the ratio-test matches of b's features to a's."""
    if fa.desc is None or fb.desc is None or len(fa.kp) < 2 or len(fb.kp) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    knn = bf.knnMatch(fb.desc, fa.desc, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if not good:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    qb = np.array([m.queryIdx for m in good])
    ta = np.array([m.trainIdx for m in good])
    return fb.kp[qb], fa.kp[ta]


def _fit(cv2, pb: np.ndarray, pa: np.ndarray):
    """(2x3 affine mapping b to a, inliers, inlier share) or (None, inliers, share)."""
    if len(pb) < MIN_INLIERS:
        return None, len(pb) and 0, 0.0
    m, inl = cv2.estimateAffine2D(pb, pa, method=cv2.RANSAC,
                                  ransacReprojThreshold=RANSAC_PX, maxIters=4000,
                                  confidence=0.995, refineIters=10)
    if m is None or inl is None:
        return None, 0, 0.0
    n_in = int(inl.sum())
    return m, n_in, n_in / len(pb)


def _plausible(m: np.ndarray) -> bool:
    lin = m[:, :2]
    sv = np.linalg.svd(lin, compute_uv=False)
    if sv[1] <= 1e-6:
        return False
    scale = float(np.sqrt(sv[0] * sv[1]))
    return (1 / MAX_SCALE <= scale <= MAX_SCALE and sv[0] / sv[1] <= 1 + MAX_SKEW
            and np.linalg.det(lin) > 0)


def _content(cv2, g: np.ndarray) -> np.ndarray:
    """255 where the picture has content, 0 on fill: the flat black (or white) areas that touch
    the border, which a shear, rotation or crop-and-pad leaves behind."""
    mask = np.full(g.shape, 255, np.uint8)
    for fill in (g <= FILL_DARK, g >= 255 - FILL_DARK):
        n, lab, st, _ = cv2.connectedComponentsWithStats(fill.astype(np.uint8), connectivity=4)
        for k in range(1, n):
            x, y, w, h, area = st[k]
            touches = x == 0 or y == 0 or x + w == g.shape[1] or y + h == g.shape[0]
            if touches and area >= FILL_MIN_AREA * g.size:
                mask[lab == k] = 0
    return mask


def _residual(cv2, a: np.ndarray, b: np.ndarray, m: np.ndarray):
    """(overlap share of the smaller image, median cell residual, worst cell)."""
    h, w = a.shape
    warped = cv2.warpAffine(b, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    # content of both, shrunk away from the fill (JPEG smears the fill's edge)
    kern = np.ones((2 * EDGE_PX + 1, 2 * EDGE_PX + 1), np.uint8)
    def shrink(x):  # away from fills and from the frame's own edge
        return cv2.erode(x, kern, borderType=cv2.BORDER_CONSTANT, borderValue=0)

    mask = cv2.warpAffine(shrink(_content(cv2, b)), m, (w, h), flags=cv2.INTER_NEAREST,
                          borderValue=0)
    mask = (mask & shrink(_content(cv2, a))) > 0
    area = min(a.size, b.size * abs(np.linalg.det(m[:, :2])))
    overlap = float(mask.sum() / max(area, 1))
    if mask.sum() < 64:
        return overlap, np.inf, np.inf, None
    # smoothed first (JPEG and resampling noise; a plain synthetic picture gets the dense
    # histogram of its blurred edges), then b's grey levels mapped onto a's over the overlap
    # through the two cumulative histograms (brightness, exposure, gamma and contrast changes
    # are monotonic), as a 256-entry lookup table
    k = int(2 * round(3 * SMOOTH_SIGMA) + 1)
    sa = cv2.GaussianBlur(a.astype(np.float32), (k, k), SMOOTH_SIGMA)
    sw = cv2.GaussianBlur(warped.astype(np.float32), (k, k), SMOOTH_SIGMA)
    av = np.clip(np.rint(sa[mask]), 0, 255).astype(np.int64)
    bv = np.clip(np.rint(sw[mask]), 0, 255).astype(np.int64)
    ca = np.cumsum(np.bincount(av, minlength=256)) / len(av)
    cb = np.cumsum(np.bincount(bv, minlength=256)) / len(bv)
    lut = np.interp(cb, ca, np.arange(256, dtype=np.float64)).astype(np.float32)
    sb = np.where(mask, lut[np.clip(np.rint(sw), 0, 255).astype(np.int64)], sa).astype(np.float32)
    # a picture with a few flat grey levels has a histogram of spikes, where the table can
    # send a level across a gap: then the plain levels fit better, and are used
    plain = np.where(mask, sw, sa).astype(np.float32)
    if np.abs(plain - sa)[mask].mean() < np.abs(sb - sa)[mask].mean():
        sb = plain
    spread = float(av.astype(np.float32).std()) + 1.0
    # tolerant difference: how far a's pixel lies outside the range of b's pixels within
    # TOLERANCE_PX (a sub-pixel or one-pixel misfit of a tall object is no change)
    tk = np.ones((2 * TOLERANCE_PX + 1, 2 * TOLERANCE_PX + 1), np.uint8)
    # grey levels near black or white are compared as black or white: an exposure change
    # moves a clipped background by many levels where nothing changed
    sa = np.clip(sa, CLIP_LOW, CLIP_HIGH)
    sb = np.clip(sb, CLIP_LOW, CLIP_HIGH)
    lo, hi = cv2.erode(sb, tk), cv2.dilate(sb, tk)
    diff = np.where(mask, np.maximum(np.maximum(sa - hi, lo - sa), 0.0) / spread, 0.0)
    ys = np.linspace(0, h, GRID + 1).astype(int)
    xs = np.linspace(0, w, GRID + 1).astype(int)
    cells, changed = [], []
    for y0, y1 in zip(ys[:-1], ys[1:]):
        for x0, x1 in zip(xs[:-1], xs[1:]):
            cm = mask[y0:y1, x0:x1]
            if cm.mean() >= CELL_INSIDE:
                d = diff[y0:y1, x0:x1][cm]
                cells.append(float(d.mean()))
                changed.append(float((d > CHANGED_LEVEL).mean()))
    if not cells:
        return overlap, np.inf, np.inf, None
    # where pixels changed, on a coarse CHANGE_MAP_SIDE grid (share of changed pixels per
    # block; 255 = outside the overlap), kept so labelled objects can be checked later
    cm = np.where(mask, (diff > CHANGED_LEVEL).astype(np.float32), np.nan)
    by, bx = CHANGE_MAP_SIDE, CHANGE_MAP_SIDE
    ys2 = np.linspace(0, h, by + 1).astype(int)
    xs2 = np.linspace(0, w, bx + 1).astype(int)
    cmap = np.full((by, bx), 255, np.uint8)
    for i in range(by):
        for j in range(bx):
            blk = cm[ys2[i]:ys2[i + 1], xs2[j]:xs2[j + 1]]
            if blk.size and np.isfinite(blk).mean() >= 0.5:
                cmap[i, j] = int(round(250 * float(np.nanmean(blk))))
    return overlap, float(np.median(cells)), float(max(changed)), cmap.tobytes().hex()


def _box_change(cm: np.ndarray | None, b, shape) -> float:
    """Share of changed pixels inside one box (a's pixels) on the coarse change map; NaN when
    the box lies outside the compared overlap."""
    if cm is None:
        return float("nan")
    h, w = shape
    x0 = int(np.floor(b[0] / w * CHANGE_MAP_SIDE))
    x1 = int(np.ceil((b[0] + b[2]) / w * CHANGE_MAP_SIDE))
    y0 = int(np.floor(b[1] / h * CHANGE_MAP_SIDE))
    y1 = int(np.ceil((b[1] + b[3]) / h * CHANGE_MAP_SIDE))
    blk = cm[max(y0, 0):max(y1, y0 + 1), max(x0, 0):max(x1, x0 + 1)]
    blk = blk[blk != 255]
    return float(blk.mean()) / 250 if blk.size else float("nan")


def _change_map(cmap_hex) -> np.ndarray | None:
    if not cmap_hex:
        return None
    return np.frombuffer(bytes.fromhex(cmap_hex), np.uint8).reshape(CHANGE_MAP_SIDE,
                                                                    CHANGE_MAP_SIDE)


def _object_change(cmap_hex, boxes: list, shape) -> float:
    """The largest share of changed pixels inside one labelled box (boxes in a's pixels), from
    the coarse change map; NaN without boxes or map."""
    cm = _change_map(cmap_hex)
    if cm is None or not len(boxes):
        return float("nan")
    vals = [c for c in (_box_change(cm, b, shape) for b in boxes) if np.isfinite(c)]
    return max(vals, default=0.0)


def _map_boxes(m: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Boxes (x, y, w, h, class) through the affine ``m``: the bounding box of the four mapped
    corners (its centre is the mapped centre, so a shear widens a box but does not move it)."""
    if not len(boxes):
        return boxes.reshape(0, 5)
    x, y, bw, bh = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    cx = np.stack([x, x + bw, x, x + bw], 1)
    cy = np.stack([y, y, y + bh, y + bh], 1)
    px = m[0, 0] * cx + m[0, 1] * cy + m[0, 2]
    py = m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
    x0, y0 = px.min(1), py.min(1)
    return np.stack([x0, y0, px.max(1) - x0, py.max(1) - y0, boxes[:, 4]], 1)


def _inside(boxes: np.ndarray, fw: float, fh: float) -> np.ndarray:
    e = BOX_MARGIN
    return ((boxes[:, 0] >= e) & (boxes[:, 1] >= e) & (boxes[:, 0] + boxes[:, 2] <= fw - e)
            & (boxes[:, 1] + boxes[:, 3] <= fh - e))


def _clip(boxes: np.ndarray, r) -> np.ndarray:
    """Boxes (x, y, w, h, class) cut to the rectangle ``r`` (x0, y0, x1, y1)."""
    out = boxes.copy()
    if not len(boxes):
        return out
    x0 = np.clip(boxes[:, 0], r[0], r[2])
    y0 = np.clip(boxes[:, 1], r[1], r[3])
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], r[0], r[2])
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], r[1], r[3])
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = x0, y0, x1 - x0, y1 - y0
    return out


def _visible(boxes: np.ndarray, clipped: np.ndarray, r) -> np.ndarray:
    """Boxes compared: centre BOX_MARGIN px inside ``r`` and BOX_VISIBLE of the box in it."""
    if not len(boxes):
        return np.zeros(0, bool)
    e = BOX_MARGIN
    cx = boxes[:, 0] + boxes[:, 2] / 2
    cy = boxes[:, 1] + boxes[:, 3] / 2
    area = np.maximum(boxes[:, 2] * boxes[:, 3], 1e-9)
    return ((cx >= r[0] + e) & (cx <= r[2] - e) & (cy >= r[1] + e) & (cy <= r[3] - e)
            & (clipped[:, 2] * clipped[:, 3] >= BOX_VISIBLE * area))


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _label_match(m: np.ndarray, boxes_a, boxes_b, shape, shape_b, cmap_hex=None) -> dict:
    """Compare the two label sets through the transform ``m`` (b onto a). The objects compared
    are those inside the overlap of both frames (BOX_MARGIN px inside each: a crop or a pan
    cuts the others); each looks for a same-class partner among *all* the other image's boxes
    at IoU >= LABEL_IOU (greedy, best IoU first). Returns ``agreement`` (share of compared
    objects with a partner; NaN when none is compared), ``compared`` (the compared boxes in
    a's pixels, for the object change) and ``unmatched``: one record per compared object
    without a partner, (side "a"/"b", class, the class of the other image's box at the same
    place or None, the share of its pixels that changed, the box in a's pixels)."""
    ba = np.asarray(boxes_a, float).reshape(-1, 5)
    bb = np.asarray(boxes_b, float).reshape(-1, 5)
    h, w = shape
    hb, wb = shape_b
    mb = _map_boxes(m, bb)
    # the area both frames show, in a's pixels (the rectangle inside b's mapped corners): boxes
    # are compared by the part of them inside it, so a piece on the edge of the board that a
    # crop cuts is still compared by what both copies show of it
    cx = np.array([0, wb, 0, wb], float)
    cy = np.array([0, 0, hb, hb], float)
    xs = np.sort(m[0, 0] * cx + m[0, 1] * cy + m[0, 2])
    ys = np.sort(m[1, 0] * cx + m[1, 1] * cy + m[1, 2])
    r = (max(0.0, xs[1]), max(0.0, ys[1]), min(float(w), xs[2]), min(float(h), ys[2]))
    ca, cb = _clip(ba, r), _clip(mb, r)
    ka = _visible(ba, ca, r)
    kb = _visible(mb, cb, r)
    # the objects wholly inside both frames: their pixels are compared (object change)
    lin = np.linalg.inv(m[:, :2])
    inv = np.hstack([lin, -lin @ m[:, 2:3]])
    whole = list(ba[_inside(ba, w, h) & _inside(_map_boxes(inv, ba), wb, hb)]) + \
        list(mb[_inside(bb, wb, hb) & _inside(mb, w, h)])
    out = {"agreement": float("nan"), "compared": [], "unmatched": [], "n_compared": 0,
           "matched_change": float("nan")}
    if not ka.any() and not kb.any():
        return out
    ba, mb = ca, cb
    iou = _iou_matrix(ba, mb)
    same = ba[:, None, 4] == mb[None, :, 4]
    cand = np.where(same & (iou >= LABEL_IOU), iou, 0.0)
    pa, pb = np.full(len(ba), -1), np.full(len(mb), -1)
    for i, j in sorted(zip(*np.nonzero(cand)), key=lambda ij: -cand[ij]):
        if pa[i] < 0 and pb[j] < 0:
            pa[i], pb[j] = j, i
    cm = _change_map(cmap_hex)
    unmatched = []
    for side, keep, part, boxes, others, ious in (("a", ka, pa, ba, mb, iou),
                                                  ("b", kb, pb, mb, ba, iou.T)):
        for k in np.flatnonzero(keep & (part < 0)):
            # the other image's box of another class at the same place: relabelled
            row = np.where(others[:, 4] != boxes[k, 4], ious[k], 0.0) if len(others) else []
            j = int(np.argmax(row)) if len(row) else -1
            other = int(others[j, 4]) if j >= 0 and row[j] >= LABEL_IOU else None
            unmatched.append((side, int(boxes[k, 4]), other,
                              _box_change(cm, boxes[k], shape), boxes[k, :4].tolist()))
    n = int(ka.sum() + kb.sum())
    out["n_compared"] = n
    out["agreement"] = 1.0 - len(unmatched) / n
    out["compared"] = whole
    out["unmatched"] = unmatched
    # how much the objects that agree changed: the pair's own noise on labelled objects
    agree = [_box_change(cm, b, shape) for b in ba[ka & (pa >= 0)]]
    out["matched_change"] = max([c for c in agree if np.isfinite(c)], default=float("nan"))
    return out


def _measure(cv2, fa: _Features, fb: _Features, flipped_b: Callable[[], _Features]) -> dict:
    """The pixel evidence of one pair (no decision): the best affine fit of b onto a, plain or
    mirrored, and the residual after alignment. JSON-able, so it can be kept in the store and
    re-decided when the cuts or the labels change."""
    best = None
    for flipped in (False, True):
        f = flipped_b() if flipped else fb
        pb, pa = _match(cv2, fa, f)
        m, n_in, share = _fit(cv2, pb, pa)
        cand = {"m": None if m is None else m.ravel().tolist(), "inliers": int(n_in),
                "inlier_share": float(share), "flipped": flipped}
        if m is not None and n_in >= MIN_INLIERS and share >= MIN_INLIER_SHARE \
                and _plausible(m):
            overlap, res, change, cmap = _residual(cv2, fa.gray, f.gray, m)
            cand |= {"overlap": overlap, "residual": res, "change": change,
                     "change_map": cmap}
            if best is None or "residual" not in best or res < best["residual"]:
                best = cand
            if res <= RESIDUAL_MAX and change <= CHANGE_MAX:
                break  # a clean fit: no need to try the mirror
        elif best is None or ("residual" not in best and n_in > best["inliers"]):
            best = cand
    best["n_keypoints"] = int(min(len(fa.kp), len(fb.kp)))
    best["shape_a"] = list(fa.gray.shape)
    best["shape_b"] = list(fb.gray.shape)
    best["scale_a"], best["scale_b"] = float(fa.scale), float(fb.scale)
    for k in ("residual", "change"):
        if k in best and not np.isfinite(best[k]):
            best[k] = 1e9
    return best


def _decide(meas: dict, boxes_a=None, boxes_b=None, class_names: dict | None = None) -> dict:
    """The verdict of one measured pair: "same", "different" or "unverifiable" (too few
    features to tell: a near-blank or textureless picture), with the evidence and the reason.
    ``boxes_*``: (n, 5) x, y, w, h, category in the original images' pixels."""
    out = {"verified_flipped": bool(meas["flipped"]), "inliers": int(meas["inliers"]),
           "inlier_share": float(meas["inlier_share"]),
           "overlap": float(meas.get("overlap", 0.0)),
           "residual": float(meas.get("residual", np.inf)),
           "change": float(meas.get("change", np.inf)), "label_agreement": float("nan"),
           "object_change": float("nan")}
    if "residual" not in meas:
        if meas.get("n_keypoints", 0) < 2 * MIN_INLIERS:
            out["verdict"] = "unverifiable"
            out["reason"] = (f"too few features to compare ({meas.get('n_keypoints', 0)}): a "
                             "nearly blank or textureless picture")
            return out
        out["verdict"] = "different"
        out["reason"] = (f"no common geometry: {meas['inliers']} matching features agree on "
                         f"one transform (a copy needs {MIN_INLIERS})")
        return out
    m = np.asarray(meas["m"], float).reshape(2, 3)
    sa, sb = meas.get("scale_a", 1.0), meas.get("scale_b", 1.0)
    if boxes_a is not None and boxes_b is not None:
        ba = np.asarray(boxes_a, float).reshape(-1, 5).copy()
        bb = np.asarray(boxes_b, float).reshape(-1, 5).copy()
        ba[:, :4] *= sa
        bb[:, :4] *= sb
        if meas["flipped"]:
            bb[:, 0] = meas["shape_b"][1] - bb[:, 0] - bb[:, 2]
        lm = _label_match(m, ba, bb, tuple(meas["shape_a"]), tuple(meas["shape_b"]),
                          meas.get("change_map"))
        out["label_agreement"] = lm["agreement"]
        out["object_change"] = _object_change(meas.get("change_map"), lm["compared"],
                                              tuple(meas["shape_a"]))
        conflict = _label_conflict(lm, class_names or {}, float(meas.get("residual", 0.0)))
    else:
        lm, conflict = None, None
    how = _describe(m, meas["flipped"])
    la, oc = out["label_agreement"], out["object_change"]
    labelled = np.isfinite(oc)
    if out["overlap"] < MIN_OVERLAP:
        out["verdict"] = "different"
        out["reason"] = (f"{how}, but only {out['overlap']:.0%} of the picture overlaps (a "
                         f"copy keeps {MIN_OVERLAP:.0%})")
    elif out["residual"] > RESIDUAL_MAX:
        out["verdict"] = "different"
        out["reason"] = (f"{how}, but the aligned pixels differ (residual "
                         f"{out['residual']:.2f} > {RESIDUAL_MAX}): another picture of a "
                         f"similar scene")
    elif np.isfinite(la) and la < LABEL_AGREEMENT_MIN:
        out["verdict"] = "different"
        out["reason"] = (f"{how} and the pixels align, but the labels disagree (only "
                         f"{la:.0%} of the boxes match): the same scene with other objects")
    elif conflict is not None:
        out["verdict"] = "different"
        out["reason"] = (f"{how} and aligns (residual {out['residual']:.2f}), but the labels "
                         f"say other content: {conflict}")
    elif labelled and oc > OBJECT_CHANGE_MAX:
        out["verdict"] = "different"
        out["reason"] = (f"{how} and aligns (residual {out['residual']:.2f}), but a labelled "
                         f"object changed ({oc:.0%} of its pixels > {OBJECT_CHANGE_MAX:.0%}): "
                         f"the same scene with other content")
    elif not labelled and out["change"] > CHANGE_MAX:
        out["verdict"] = "different"
        out["reason"] = (f"{how} and aligns (residual {out['residual']:.2f}), but part of the "
                         f"picture changed ({out['change']:.0%} of a cell's pixels > "
                         f"{CHANGE_MAX:.0%}): the same scene with other content")
    else:
        out["verdict"] = "same"
        lab = ("" if not labelled else
               f"; the labelled objects are unchanged ({oc:.0%} of their pixels differ)"
               + ("" if not np.isfinite(la) else f" and {la:.0%} of the boxes match"))
        if lm is not None and lm["unmatched"]:
            lab += (f"; {len(lm['unmatched'])} labelled object(s) without a same-class partner "
                    f"on unchanged pixels (labels that differ between the copies)")
        out["reason"] = (f"the same picture: {how}, {meas['inliers']} features agree, "
                         f"residual {out['residual']:.2f}{lab}")
    return out


def _label_conflict(lm: dict, names: dict, residual: float = 0.0) -> str | None:
    """Words for the labelled objects that say "other content" (see MOVED_CHANGE_MIN), or
    None when every disagreement of the labels lies on unchanged pixels."""
    def name(c):
        return str(names.get(int(c), f"class {int(c)}"))

    un = lm["unmatched"]
    if len(un) > LABELS_AGREE_SHARE * max(lm.get("n_compared", 0), 1):
        return None  # the labels disagree on many objects: incomplete, not evidence
    # a changed object must stand out from the objects whose labels agree (a field panned by a
    # third of the picture changes every cell a little)
    # or by misalignment: a pair that aligns less well (BCCD's field panned by 145 px, residual
    # 0.12) changes an object's pixels by up to RESIDUAL_CHANGE x its residual
    noise = lm.get("matched_change", float("nan"))
    cut = max(MOVED_CHANGE_MIN, noise if np.isfinite(noise) else 0.0,
              RESIDUAL_CHANGE * residual)
    for side, cls, other, ch, _ in un:
        if other is not None and np.isfinite(ch) and ch > cut:
            return (f"one image has a {name(cls)} where the other has a {name(other)} "
                    f"({ch:.0%} of its pixels changed)")
    for side, cls, other, ch, _ in un:
        if other is None and np.isfinite(ch) and ch > cut and any(
                o[0] != side and o[1] == cls and o[2] is None for o in un):
            return (f"a {name(cls)} stands at another place ({ch:.0%} of its pixels "
                    f"changed)")
    for side, cls, other, ch, _ in un:
        if other is None and np.isfinite(ch) and ch > cut:
            return (f"a {name(cls)} of one image is not in the other ({ch:.0%} of its pixels "
                    f"changed)")
    return None


def _verify(cv2, fa: _Features, fb: _Features, flipped_b: Callable[[], _Features],
            boxes_a=None, boxes_b=None) -> dict:
    return _decide(_measure(cv2, fa, fb, flipped_b), boxes_a, boxes_b)


def _describe(m: np.ndarray, flipped: bool) -> str:
    """A transform in words: 'mirrored, shifted 34 px, scaled 1.12x, sheared 4 deg'."""
    lin = m[:, :2]
    u, sv, vt = np.linalg.svd(lin)
    scale = float(np.sqrt(sv[0] * sv[1]))
    shift = float(np.hypot(*m[:, 2]))
    parts = ["mirrored"] if flipped else []
    if shift >= 2:
        parts.append(f"shifted {shift:.0f} px")
    if abs(scale - 1) >= 0.02:
        parts.append(f"scaled {scale:.2f}x")
    skew = float(sv[0] / sv[1] - 1)
    if skew >= 0.02:
        parts.append(f"sheared/stretched {skew:.0%}")
    return "one transform maps them (" + (", ".join(parts) or "aligned as they are") + ")"


# ------------------------------------------------------------------------------ datasets
def verify_pairs(dataset: Dataset, pairs: pd.DataFrame, *, progress: ProgressFn | None = None,
                 workers: int | None = None, store=None, sha256=None) -> pd.DataFrame:
    """Decide every candidate pair (columns image_id_a, image_id_b) of ``dataset`` on the
    pixels. Returns one row per pair with :data:`VERDICT_COLUMNS`: ``verdict`` "same",
    "different", "unverifiable" (too few features) or "unreadable", the evidence, and
    ``reason`` in words. ``progress(fraction, message)`` is called as pairs are decided.

    With a ``store`` (:class:`qa.store.Store`) and ``sha256`` (image_id -> the file's SHA-256)
    the pixel measurements are kept under the two files' hashes, so a second run reads no
    pixels; the decision (cuts, labels) is made fresh every time."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"verify_pairs() needs a qa.Dataset, got {type(dataset).__name__}")
    missing = {"image_id_a", "image_id_b"} - set(pairs.columns)
    if missing:
        raise ValueError(f"pairs need columns image_id_a and image_id_b; missing "
                         f"{sorted(missing)}")
    return _compute_verdicts(dataset, pairs[["image_id_a", "image_id_b"]].astype("int64"),
                             progress or (lambda f, m: None), workers, store, sha256 or {})


MEASURE_KIND = "pixelverify/v5"


def _boxes_by_image(ds: Dataset) -> dict[int, np.ndarray]:
    anns = ds.annotations
    if anns.empty or W not in anns:
        return {}
    from qa.balance import default_annotator

    who = default_annotator(ds)
    a = anns[anns[W].notna()]
    if who is not None and "annotator" in a:
        a = a[a["annotator"] == who]
    out = {}
    for iid, g in a.groupby(IMAGE_ID):
        out[int(iid)] = g[[X, Y, W, H, CATEGORY_ID]].to_numpy(float)
    return out


def _compute_verdicts(ds: Dataset, pairs: pd.DataFrame, progress, workers, store,
                      sha256: dict) -> pd.DataFrame:
    import threading

    from qa.images import DEFAULT_WORKERS, iter_images, read_image

    if pairs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in VERDICT_COLUMNS})
    cv2 = _cv2()
    names = dict(zip(ds.images[IMAGE_ID].astype(int), ds.images[FILE_NAME].astype(str)))
    boxes = _boxes_by_image(ds)
    cnames = ds.category_names
    empty = np.zeros((0, 5))
    items = list(pairs.itertuples(index=False, name=None))
    keys = [_pair_key(sha256.get(int(a)), sha256.get(int(b))) for a, b in items]
    known = {}
    if store is not None and any(keys):
        known = store.get_records(MEASURE_KIND, sorted({k for k in keys if k}))
    cache: OrderedDict[tuple[int, bool], _Features | None] = OrderedDict()
    lock = threading.Lock()

    def feats(iid: int, flipped: bool = False) -> _Features | None:
        key = (iid, flipped)
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        if flipped:
            base = feats(iid)
            f = None if base is None else _features(
                cv2, np.ascontiguousarray(base.gray[:, ::-1]), base.scale)
        else:
            read = read_image(ds.root, names.get(iid, ""), max_side=2 * VERIFY_SIDE)
            if not read.ok:
                f = None
            else:
                g, _ = gray_copy(read.image)
                f = _features(cv2, g, g.shape[1] / read.size[0] if read.size[0] else 1.0)
        with lock:
            cache[key] = f
            while len(cache) > CACHE_IMAGES:
                cache.popitem(last=False)
        return f

    def one(k: int) -> dict | None:
        a, b = int(items[k][0]), int(items[k][1])
        if _swapped(sha256.get(a), sha256.get(b)):  # measured in the order of the key
            a, b = b, a
        fa, fb = feats(a), feats(b)
        if fa is None or fb is None:
            return None
        return _measure(cv2, fa, fb, lambda: feats(b, True))

    todo = [k for k in range(len(items)) if not (keys[k] and keys[k] in known)]
    fresh = {}
    total = len(todo)
    for n, (k, meas) in enumerate(zip(todo, iter_images(todo, one, workers=workers
                                                         or DEFAULT_WORKERS))):
        if meas is not None:
            if keys[k]:
                fresh[keys[k]] = meas
            known[keys[k] or f"#{k}"] = meas
        if (n + 1) % 16 == 0 or n + 1 == total:
            progress((n + 1) / total, f"comparing the pixels of candidate pairs "
                                      f"{n + 1:,}/{total:,}")
    if store is not None and fresh:
        store.put_records(MEASURE_KIND, fresh)
    rows = []
    for k, (a, b) in enumerate(items):
        meas = known.get(keys[k] or f"#{k}")
        if meas is None:
            rows.append({"verdict": "unreadable", "reason": "an image could not be read"})
            continue
        # a stored measurement was made with the pair in sha order: swap back if needed
        rows.append(_decide(meas, boxes.get(int(a), empty) if boxes else None,
                            boxes.get(int(b), empty) if boxes else None, cnames)
                    if not _swapped(sha256.get(int(a)), sha256.get(int(b))) else
                    _decide(meas, boxes.get(int(b), empty) if boxes else None,
                            boxes.get(int(a), empty) if boxes else None, cnames))
    out = pd.DataFrame(rows)
    out.insert(0, "image_id_a", pairs["image_id_a"].to_numpy())
    out.insert(1, "image_id_b", pairs["image_id_b"].to_numpy())
    for c in VERDICT_COLUMNS:
        if c not in out:
            out[c] = np.nan
    return out[list(VERDICT_COLUMNS)]


def _swapped(sha_a, sha_b) -> bool:
    return bool(sha_a and sha_b and sha_a > sha_b)


def _pair_key(sha_a, sha_b) -> str | None:
    if not sha_a or not sha_b:
        return None
    return f"{min(sha_a, sha_b)}|{max(sha_a, sha_b)}"


__all__ = ["VERDICT_COLUMNS", "gray_copy", "verify_pair_arrays", "verify_pairs"]
