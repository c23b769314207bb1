"""Label errors of a classification dataset by confident learning (Northcutt, Jiang & Chuang,
"Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 2021), implemented here
from the paper: cleanlab, the reference implementation, is AGPL-3.0.

The method, given each sample's given label ``y`` and the model's out-of-sample predicted class
probabilities ``p`` (n x k):

1. Per-class thresholds: ``t_j`` = the mean of ``p[:, j]`` over the samples labelled ``j`` (the
   model's average self-confidence on class ``j``).
2. Confident joint: a sample "confidently belongs" to every class ``j`` with ``p_j >= t_j``;
   among those, it is counted for the one with the largest ``p_j``. ``C[y, j]`` counts samples
   labelled ``y`` that confidently belong to ``j``; samples above no threshold are not counted.
3. Label issues: samples counted off the diagonal (``j != y``), the paper's ``C_confusion``
   method. They are ranked by self-confidence ``p_y`` (lower = more likely mislabelled), and
   each carries the suggested class ``j``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

#: Probabilities may be rounded when written to a CSV; rows off by more than this do not sum to 1.
PROB_SUM_TOLERANCE = 1e-3
#: a probability equal to its class threshold (a mean of equal values, rounded) counts as above
THRESHOLD_TOLERANCE = 1e-6


def check_probabilities(pred_probs, labels=None) -> tuple[np.ndarray, np.ndarray | None]:
    """``pred_probs`` as an (n, k) float array of finite values in [0, 1] whose rows sum to 1
    (within :data:`PROB_SUM_TOLERANCE`), and ``labels`` as int64 in ``range(k)``. Raises
    ValueError naming the first bad row and the fix."""
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"pred_probs must be an (n_samples, n_classes >= 2) array, got shape "
                         f"{p.shape}; pass one column of probabilities per class.")
    bad = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p > 1).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"pred_probs row {i} holds values outside [0, 1] or NaN ({p[i][:6]}); "
                         f"{int(bad.sum())} rows are affected. Pass softmax probabilities.")
    off = np.abs(p.sum(axis=1) - 1) > PROB_SUM_TOLERANCE
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"pred_probs row {i} sums to {p[i].sum():.4f}, not 1 ({int(off.sum())} "
                         "rows do); pass softmax probabilities, not logits or scores.")
    y = None
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (len(p),):
            raise ValueError(f"labels must have one entry per row of pred_probs: got {y.shape} "
                             f"for {len(p)} rows.")
        if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or
                                                                    y.max() >= p.shape[1])):
            raise ValueError(f"labels must be integer class indices in 0..{p.shape[1] - 1}, "
                             f"got values {np.unique(y)[:8]}; map class ids to column positions.")
        y = y.astype(np.int64)
    return p, y


def per_class_thresholds(labels, pred_probs) -> np.ndarray:
    """``t_j``: mean predicted probability of class ``j`` over the samples labelled ``j`` (NaN,
    with a warning, for a class nobody is labelled with: no sample can confidently belong to it)."""
    p, y = check_probabilities(pred_probs, labels)
    return _thresholds(y, p)


def _thresholds(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    k = p.shape[1]
    counts = np.bincount(y, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, y, p[np.arange(len(y)), y])
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    if (counts == 0).any():
        warnings.warn(f"classes {np.flatnonzero(counts == 0).tolist()} have no labelled sample: "
                      "their threshold is undefined (NaN), so no sample is moved to them.",
                      UserWarning, stacklevel=3)
    return t


def confident_joint(labels, pred_probs) -> np.ndarray:
    """The (k, k) confident joint ``C[given, confident]`` (counts, see the module docstring)."""
    p, y = check_probabilities(pred_probs, labels)
    _, j = _confident_class(y, p, _thresholds(y, p))
    k = p.shape[1]
    ok = j >= 0
    return np.bincount(y[ok] * k + j[ok], minlength=k * k).reshape(k, k)


def _confident_class(y, p, t) -> tuple[np.ndarray, np.ndarray]:
    above = p >= np.where(np.isnan(t), np.inf, t - THRESHOLD_TOLERANCE)[None, :]
    masked = np.where(above, p, -np.inf)
    j = masked.argmax(axis=1)
    j = np.where(above.any(axis=1), j, -1)
    return above, j


def find_label_issues(labels, pred_probs) -> pd.DataFrame:
    """One row per sample (input order): ``given_label``, ``suggested_label`` (the class it
    confidently belongs to, -1 if none), ``self_confidence`` = ``p[given]`` (the label quality:
    LOWER = more likely wrong), ``margin`` = ``p[suggested] - p[given]`` and ``is_label_issue``
    (counted off the diagonal of the confident joint). Sort by ``self_confidence`` for the
    review order."""
    p, y = check_probabilities(pred_probs, labels)
    return _compute_label_issues(y, p)


def _compute_label_issues(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    t = _thresholds(y, p)
    _, j = _confident_class(y, p, t)
    idx = np.arange(len(y))
    self_conf = p[idx, y]
    sugg_p = np.where(j >= 0, p[idx, np.maximum(j, 0)], np.nan)
    return pd.DataFrame({
        "given_label": y, "suggested_label": j, "self_confidence": self_conf,
        "margin": sugg_p - self_conf, "is_label_issue": (j >= 0) & (j != y),
    })


__all__ = ["check_probabilities", "confident_joint", "find_label_issues",
           "per_class_thresholds"]
