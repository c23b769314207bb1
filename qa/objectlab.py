"""ObjectLab's per-image label quality, implemented from the paper as the baseline the review
queue of :mod:`qa.disagreement` is measured against.

Tkachenko, Thyagarajan and Mueller (2023), "ObjectLab: Automated Diagnosis of Mislabeled Images
in Object Detection Data". Written from the paper's description only (cleanlab's code is AGPL
and is not used or copied); the constants are this module's, named below.

Three scores per box, each in [0, 1], LOWER = more likely a label error:

* **overlooked** (per confident prediction): a prediction scored at least
  :data:`HIGH_PROBABILITY` whose best similarity to any label is below
  :data:`MATCH_SIMILARITY` is an object the annotators overlooked: score ``1 - p``.
* **badly located** (per label): the best similarity of the label to a prediction of its
  class scored at least :data:`LOW_PROBABILITY` that overlaps it; 1 when there is none (the
  paper does not penalise a label no prediction touches).
* **swapped** (per label): a prediction of another class scored at least
  :data:`HIGH_PROBABILITY` that overlaps the label at IoU >= :data:`SWAP_IOU` more closely
  than any prediction of the label's class: score ``1 - p``.

Similarity of two boxes blends their IoU with how close their centres are, so that boxes which
no longer overlap still differ in how far apart they are:
``ALPHA * IoU + (1 - ALPHA) * exp(-d)``, ``d`` = centre distance / mean box diagonal.

Each score is pooled per image by a soft minimum (:func:`qa.disagreement.pool_softmin`,
temperature :data:`qa.disagreement.POOL_TEMPERATURE`), an image without such boxes scoring
1, and the image's label quality is the geometric mean of its three pooled scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qa.dataset import BOX, CATEGORY_ID, IMAGE_ID, SCORE

# The paper's two confidence levels: only a very confident prediction outweighs a label
# (overlooked, swapped); a moderately confident one is enough to say where a labelled
# object is (badly located).
HIGH_PROBABILITY = 0.95
LOW_PROBABILITY = 0.5
# Weight of IoU against centre distance in the similarity.
ALPHA = 0.9
# A prediction this similar to a label is the labelled object (not overlooked).
MATCH_SIMILARITY = 0.5
# A prediction of another class must overlap a label this much to be a swap.
SWAP_IOU = 0.5
SUBTYPES = ("overlooked", "badloc", "swap")


def box_similarity(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, IoU) matrices (len(a), len(b)) of two sets of COCO xywh boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ax1, ay1, aw, ah = (a[:, k][:, None] for k in range(4))
    bx1, by1, bw, bh = (b[:, k][None, :] for k in range(4))
    iw = np.clip(np.minimum(ax1 + aw, bx1 + bw) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay1 + ah, by1 + bh) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    d = np.hypot(ax1 + aw / 2 - bx1 - bw / 2, ay1 + ah / 2 - by1 - bh / 2)
    diag = (np.hypot(aw, ah) + np.hypot(bw, bh)) / 2
    d = np.divide(d, diag, out=np.full_like(d, np.inf), where=diag > 0)
    return ALPHA * iou + (1 - ALPHA) * np.exp(-d), iou


def _image_scores(lab: pd.DataFrame, pred: pd.DataFrame) -> dict[str, np.ndarray]:
    lb, pb = lab[BOX].to_numpy(np.float64), pred[BOX].to_numpy(np.float64)
    lc, pc = lab[CATEGORY_ID].to_numpy(), pred[CATEGORY_ID].to_numpy()
    ps = pred[SCORE].to_numpy(np.float64)
    sim, iou = box_similarity(lb, pb)
    same = lc[:, None] == pc[None, :]
    high, low = ps >= HIGH_PROBABILITY, ps >= LOW_PROBABILITY
    # overlooked: confident predictions like no label
    best = sim.max(axis=0) if len(lb) else np.zeros(len(pb))
    over = 1.0 - ps[high & (best < MATCH_SIMILARITY)]
    # badly located: each label's best same-class confident-enough prediction
    s_same = np.where(same & low[None, :] & (iou > 0), sim, -1.0)
    badloc = s_same.max(axis=1) if len(pb) else np.full(len(lb), -1.0)
    badloc = np.where(badloc < 0, 1.0, badloc)
    # swapped: a very confident other-class prediction on the label, closer than any of its own
    other = np.where(~same & high[None, :] & (iou >= SWAP_IOU), sim, -1.0)
    swap = np.ones(len(lb))
    if len(pb) and len(lb):
        k = other.argmax(axis=1)
        hit = (other.max(axis=1) > 0) & (other.max(axis=1) > s_same.max(axis=1))
        swap[hit] = 1.0 - ps[k[hit]]
    return {"overlooked": over, "badloc": badloc, "swap": swap}


def objectlab_label_quality(labels: pd.DataFrame, predictions: pd.DataFrame,
                            image_ids) -> pd.DataFrame:
    """ObjectLab's label quality per image (method: module docstring).

    ``labels``: image_id, category_id, x, y, w, h (one annotator's or the reference boxes);
    ``predictions``: the same plus score; ``image_ids``: the images to score (an image with
    no labels and no predictions scores 1). Returns one row per image: image_id, the pooled
    ``overlooked``, ``badloc``, ``swap`` scores and ``label_quality`` (their geometric mean),
    LOWER = more likely mislabelled."""
    from qa.disagreement import pool_softmin

    ids = np.asarray(list(image_ids), np.int64)
    lab = {k: g for k, g in labels.groupby(IMAGE_ID)}
    pred = {k: g for k, g in predictions.groupby(IMAGE_ID)}
    empty_l, empty_p = labels.iloc[:0], predictions.iloc[:0]
    rows = {s: [] for s in SUBTYPES}
    for i in ids:
        sc = _image_scores(lab.get(i, empty_l), pred.get(i, empty_p))
        for s in SUBTYPES:
            v = sc[s]
            rows[s].append(float(pool_softmin(np.zeros(len(v), np.int64), v, 1)[0])
                           if len(v) else 1.0)
    out = pd.DataFrame({IMAGE_ID: ids, **{s: rows[s] for s in SUBTYPES}})
    eps = 1e-6  # a zero subtype score would make every image tie at 0
    out["label_quality"] = np.exp(np.log(out[list(SUBTYPES)].clip(lower=eps)).mean(axis=1))
    return out


__all__ = ["ALPHA", "HIGH_PROBABILITY", "LOW_PROBABILITY", "box_similarity",
           "objectlab_label_quality"]
