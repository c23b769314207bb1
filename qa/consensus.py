"""Reliability-weighted consensus of several annotators: how noisy each annotator's boxes are,
how they confuse classes, and what the objects most likely are.

Boxes: a STAPLE-style EM
------------------------
STAPLE (Warfield, Zou & Wells 2004, "Simultaneous truth and performance level estimation",
IEEE TMI 23(7)) estimates a hidden reference segmentation and every rater's performance
together by expectation-maximisation. The same idea for boxes, with a Gaussian error model per
box side (left, top, right, bottom)::

    side_j = truth + outward * bias_j * size + noise_j,   var_j(size) = a_j^2 + (r_j * size)^2

``a_j`` is an annotator's pixel-level clicking noise (a careful annotator: about 1 px whatever
the object), ``r_j`` noise in proportion to the object (a loose annotator: 10 % of the box),
``bias_j`` a systematic outward (> 0) or inward (< 0) shift as a share of the box size, and
``size`` the object's width (left/right sides) or height (top/bottom). Iterate until the
parameters stop changing:

1. consensus of every object = precision-weighted Huber mean (Huber 1964; weights
   1 / var_j(size), bias removed) of its members' sides: a careful annotator dominates a loose
   one, and one wild side is down-weighted; a side more than ``OUTLIER_Z`` sd from it is
   flagged as wild;
2. every annotator's bias and variance from the differences of all pairs of boxes of one
   object (Grubbs 1948, "On estimating precision of measuring instruments and product
   variability", JASA 43: the difference of two annotators' sides has the sum of their
   variances whatever the truth, so the estimate is not flattered, or collapsed to zero, by
   an annotator's own weight in the consensus), by least squares weighted by the current
   variances, pairs with a wild side left out, ``a_j^2 >= 1/12 px^2`` and ``r_j^2 >= 0``.

Residuals to a consensus that includes (or is dominated by) the annotator's own box, as a
plain EM would use, let the most careful annotator's variance collapse towards zero (a
Heywood case); the pairwise moments do not, and converge in a handful of iterations.

Two annotators leave the split of their disagreement between them undefined (only the sum of
their variances is identifiable), so the estimate needs at least :data:`MIN_RATERS` annotators.

Scoring against the truth: an annotator's box ``b`` against the leave-one-out consensus ``c``
(variance ``v``) gives a deviation ``e = b - c``; the expected distance of ``b`` from the truth
given ``e`` (Gaussian posterior, folded) is ``|e|`` when the consensus is exact (``v`` -> 0) and
the annotator's own noise when the consensus is only one loose box. :func:`expected_iou` turns
those expected side distances into an IoU, so a careful annotator scored against a loose one
is not charged the loose one's error.

Labels: Dawid & Skene (1979)
----------------------------
Dawid & Skene, "Maximum likelihood estimation of observer error-rates using the EM algorithm",
JRSS C 28(1). Every consensus object is an item whose true class (a category, or "no object"
for a box only some annotators drew) is hidden; every annotator has a confusion matrix
``pi_j[true, given]``. EM from the (soft) majority vote: posteriors of the true class <->
class priors and confusion matrices, until the log-likelihood stops improving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_RATERS = 3  # with two annotators only the sum of their noise is identifiable
# Coordinates are usually stored as whole pixels: rounding alone has variance 1/12 px^2, so no
# annotator is estimated as more precise than that (it also keeps every weight finite).
MIN_PIXEL_VAR = 1.0 / 12.0
HUBER_C = 1.345  # Huber's constant: 95 % efficiency under Gaussian noise
OUTLIER_Z = 4.0  # a side this many sd from the consensus is wild (Gaussian: 1 in 16,000)
EM_MAX_ITER = 100
# The box noise model has three numbers per annotator: 20,000 shared objects pin them down to
# about 1 %, so larger datasets estimate them on every n-th object (the consensus still covers
# every object). Keeps 50k-image datasets fast.
NOISE_MAX_OBJECTS = 20_000
START_SHARE = 0.05  # EM start: every annotator 1 px + 5 % of the box (the unweighted mean)
# Stop when no side noise or bias (as a share of the median box) moves by more than this: a
# hundredth of a percent of the box, far below what an annotator's habits differ by.
BOX_TOL = 1e-4
EM_TOL = 1e-6  # Dawid-Skene: relative change of the log-likelihood
# Dawid-Skene: a pseudo-count per confusion cell, so a label never seen has a small, not zero,
# probability (zero would make one unusual label veto a class forever).
DS_PSEUDO_COUNT = 0.01
OUTWARD = np.array([-1.0, -1.0, 1.0, 1.0])  # x1, y1 grow outward downwards; x2, y2 upwards


@dataclass(frozen=True)
class BoxNoise:
    """Per-annotator box error model (arrays of length n_annotators), see the module docstring.

    ``pixel_var`` = a_j^2 (px^2), ``relative_var`` = r_j^2, ``bias`` = outward shift as a
    share of the box size; ``n_objects`` = objects the annotator shared with another.
    Higher variance / larger absolute bias = worse."""

    pixel_var: np.ndarray
    relative_var: np.ndarray
    bias: np.ndarray
    n_objects: np.ndarray
    n_iter: int
    converged: bool

    def var(self, code: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Variance (px^2) of a side drawn by annotators ``code`` on objects of ``size``."""
        return self.pixel_var[code] + self.relative_var[code] * size ** 2

    def sd_share(self, size: float) -> np.ndarray:
        """Standard deviation of a side as a share of an object of ``size`` px."""
        return np.sqrt(self.pixel_var / size ** 2 + self.relative_var)


def _sizes(xyxy: np.ndarray) -> np.ndarray:
    """(n, 4) size per side: width for left/right, height for top/bottom (at least 1 px)."""
    w = np.maximum(xyxy[:, 2] - xyxy[:, 0], 1.0)
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1.0)
    return np.stack([w, h, w, h], axis=1)


def weighted_centre(cluster: np.ndarray, code: np.ndarray, xyxy: np.ndarray, noise: BoxNoise,
                    n_clusters: int, size: np.ndarray | None = None):
    """Consensus box of every cluster and the variance of each of its sides.

    ``cluster``/``code``/``xyxy``: per box its cluster, annotator and xyxy box; ``size``: the
    (n, 4) object size per side of each box (default: the unweighted mean box of its cluster).
    Returns ``(centre (n_clusters, 4) xyxy, var (n_clusters, 4) px^2, huber weights (n, 4))``;
    clusters without boxes are NaN."""
    if size is None:
        cnt = np.bincount(cluster, minlength=n_clusters).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = _group_sum(cluster, xyxy, n_clusters) / cnt[:, None]
        size = _sizes(mean)[cluster]
    corr = xyxy - OUTWARD * noise.bias[code][:, None] * size
    prec = 1.0 / noise.var(code[:, None], size)
    tot = _group_sum(cluster, prec, n_clusters)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = _group_sum(cluster, corr * prec, n_clusters) / tot
        var = np.where(tot > 0, 1.0 / tot, np.nan)
    # one Huber reweighting step: sides far from the centre (in their own sd) count less
    z = np.abs(corr - centre[cluster]) * np.sqrt(prec)
    hub = np.minimum(1.0, HUBER_C / np.maximum(z, 1e-12))
    centre = _group_mean(cluster, corr, prec * hub, n_clusters)
    return centre, var, hub


def _group_sum(cluster, values, n):
    """(n, 4) per-cluster sums of the (len(cluster), 4) ``values`` (one bincount for all)."""
    key = (cluster[:, None] * 4 + np.arange(4)).ravel()
    return np.bincount(key, values.ravel(), minlength=4 * n).reshape(n, 4)


def _group_mean(cluster, values, weights, n):
    num = _group_sum(cluster, values * weights, n)
    den = _group_sum(cluster, weights, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def estimate_box_noise(cluster: np.ndarray, code: np.ndarray, xyxy: np.ndarray,
                       n_annotators: int, *, max_iter: int = EM_MAX_ITER,
                       tol: float = BOX_TOL,
                       max_objects: int | None = NOISE_MAX_OBJECTS) -> BoxNoise:
    """Each annotator's box noise and bias, estimated together with the consensus (see the
    module docstring). ``cluster``: consensus object of each box (at most one box per
    annotator per object); ``code``: annotator 0..n_annotators-1; ``xyxy``: (n, 4) boxes.
    Objects drawn by one annotator carry no information and are ignored. Returns a
    :class:`BoxNoise`; an annotator who shares no object keeps the neutral start values.
    ``max_objects``: estimate from every n-th shared object so that at most this many are used
    (None: all); the consensus itself is then built for every object."""
    cluster = np.asarray(cluster, dtype=np.int64)
    code = np.asarray(code, dtype=np.int64)
    xyxy = np.asarray(xyxy, dtype=np.float64)
    if not (len(cluster) == len(code) == len(xyxy)) or xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise ValueError(f"cluster, code and xyxy must describe the same boxes: got lengths "
                         f"{len(cluster)}, {len(code)} and xyxy of shape {xyxy.shape}.")
    if len(code) and (code.min() < 0 or code.max() >= n_annotators):
        raise ValueError(f"code must be annotator positions 0..{n_annotators - 1}, got values "
                         f"{code.min()}..{code.max()}.")
    return _compute_box_noise(cluster, code, xyxy, n_annotators, max_iter, tol, max_objects)


def _compute_box_noise(cluster, code, xyxy, k, max_iter, tol, max_objects) -> BoxNoise:
    from qa.geometry import cross_pairs

    _, cluster = np.unique(cluster, return_inverse=True)
    n_cl = int(cluster.max()) + 1 if len(cluster) else 0
    n_members = np.bincount(cluster, minlength=n_cl)
    shared = n_members[cluster] >= 2
    n_shared = int((n_members >= 2).sum())
    if max_objects is not None and n_shared > max_objects:  # every step-th shared object
        rank = np.cumsum(n_members >= 2) - 1
        shared &= rank[cluster] % -(-n_shared // max_objects) == 0
    order = np.argsort(cluster[shared], kind="stable")
    cluster, code, xyxy = cluster[shared][order], code[shared][order], xyxy[shared][order]
    _, cluster = np.unique(cluster, return_inverse=True)
    n_cl = int(cluster.max()) + 1 if len(cluster) else 0
    n_obj = np.bincount(code, minlength=k)
    # start: everyone equal (the unweighted mean), 1 px + 5 % of the box
    noise = BoxNoise(np.ones(k), np.full(k, START_SHARE ** 2), np.zeros(k), n_obj, 0, False)
    if n_cl == 0:
        return noise
    size = _sizes(_group_mean(cluster, xyxy, np.ones_like(xyxy), n_cl)[cluster])
    med = float(np.median(size))
    # every pair of boxes of one object (Grubbs 1948: the difference of two annotators' sides
    # has the sum of their variances, whatever the truth, so no weight feeds on itself)
    pa, pb = cross_pairs(cluster, cluster)
    keep = code[pa] < code[pb]
    pa, pb = pa[keep], pb[keep]
    cj, cl_ = code[pa], code[pb]
    d = xyxy[pa] - xyxy[pb]
    s = size[pa]
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        # consensus with the current noise: a pair with a wild side (beyond OUTLIER_Z of its
        # own sd from the consensus: a box around a different object part) does not count.
        # Huber weights would also shrink ordinary large deviations and bias the variance low.
        _, _, hub = weighted_centre(cluster, code, xyxy, noise, n_cl, size)
        tame = hub > HUBER_C / OUTLIER_Z
        hw = (tame[pa] & tame[pb]).astype(np.float64)
        var_pair = noise.var(cj[:, None], s) + noise.var(cl_[:, None], s)
        # bias: OUTWARD * d / size = bias_j - bias_l, weighted least squares ...
        bias = _fit_bias(cj, cl_, OUTWARD * d / s, hw * s ** 2 / var_pair, k,
                         n_obj / (noise.pixel_var + noise.relative_var * med ** 2))
        # ... then variance: (d - bias difference)^2 = a_j^2 + a_l^2 + (r_j^2 + r_l^2) size^2
        y = (d - OUTWARD * (bias[cj] - bias[cl_])[:, None] * s) ** 2
        pix, rel = _fit_pair_variance(cj, cl_, y, s ** 2, hw / var_pair ** 2, k)
        new = BoxNoise(pix, rel, bias, n_obj, it, False)
        change = float(np.max(np.abs(np.r_[new.sd_share(med) - noise.sd_share(med),
                                           bias - noise.bias])))
        noise = new
        if change < tol:
            converged = True
            break
    idle = n_obj == 0  # shared nothing: keep the neutral start
    return BoxNoise(np.where(idle, 1.0, noise.pixel_var),
                    np.where(idle, START_SHARE ** 2, noise.relative_var),
                    np.where(idle, 0.0, noise.bias), n_obj, it, converged)


def _combo_sums(cj, cl, values, weights, k) -> np.ndarray:
    """Sum of weights * values per annotator pair (k*k, flattened j*k + l), over all sides."""
    combo = np.repeat(cj * k + cl, values.shape[1])
    return np.bincount(combo, (weights * values).ravel(), minlength=k * k)


def _fit_bias(cj, cl, y, w, k, prec) -> np.ndarray:
    """Least squares of y ~ bias_j - bias_l, anchored so that the precision-weighted mean
    bias is zero: only differences of biases are identifiable (shift them all and the
    consensus moves along), so the consensus is as unbiased as its most reliable members."""
    sw = _combo_sums(cj, cl, np.ones_like(y), w, k)
    swy = _combo_sums(cj, cl, y, w, k)
    m, v = np.zeros((k, k)), np.zeros(k)
    for j in range(k):
        for l in range(j + 1, k):
            e = np.zeros(k)
            e[j], e[l] = 1.0, -1.0
            m += sw[j * k + l] * np.outer(e, e)
            v += swy[j * k + l] * e
    p = prec / max(prec.sum(), 1e-300)
    lam = max(float(np.trace(m)), 1.0)
    m += lam * np.outer(p, p) + 1e-9 * lam * np.eye(k)
    return np.linalg.solve(m, v)


def _fit_pair_variance(cj, cl, y, s2, w, k):
    """Non-negative (a^2 >= MIN_PIXEL_VAR, r^2 >= 0) per annotator minimising
    sum w (y - a_j^2 - a_l^2 - (r_j^2 + r_l^2) s2)^2 over the pairs."""
    from scipy.optimize import lsq_linear

    ones = np.ones_like(y)
    sums = {name: _combo_sums(cj, cl, val, w, k) for name, val in
            (("w", ones), ("ws", s2), ("ws2", s2 ** 2), ("wy", y), ("wsy", s2 * y))}
    m, v = np.zeros((2 * k, 2 * k)), np.zeros(2 * k)
    for j in range(k):
        for l in range(j + 1, k):
            c = j * k + l
            e = np.zeros(k)
            e[j] = e[l] = 1.0
            ee = np.outer(e, e)
            m[:k, :k] += sums["w"][c] * ee
            m[:k, k:] += sums["ws"][c] * ee
            m[k:, :k] += sums["ws"][c] * ee
            m[k:, k:] += sums["ws2"][c] * ee
            v[:k] += sums["wy"][c] * e
            v[k:] += sums["wsy"][c] * e
    # scale the two blocks alike, and a tiny ridge for annotators who share nothing
    scale = np.sqrt(np.maximum(np.diag(m), 1e-300))
    ms = m / np.outer(scale, scale) + 1e-9 * np.eye(2 * k)
    chol = np.linalg.cholesky(ms)
    lb = np.r_[np.full(k, MIN_PIXEL_VAR), np.zeros(k)] * scale
    sol = lsq_linear(chol.T, np.linalg.solve(chol, v / scale), bounds=(lb, np.inf))
    theta = sol.x / scale
    return np.maximum(theta[:k], MIN_PIXEL_VAR), np.maximum(theta[k:], 0.0)


def expected_iou(box: np.ndarray, ref: np.ndarray, ref_var: np.ndarray, box_var: np.ndarray,
                 bias: np.ndarray) -> np.ndarray:
    """Estimated IoU of each ``box`` (n, 4 xyxy) with the unknown true box, from a reference
    box ``ref`` whose sides have variance ``ref_var`` (n, 4), the box's own side variance
    ``box_var`` (n, 4) and outward ``bias`` (n,) share. Per side, the posterior of the
    box's deviation from the truth given ``e = box - ref`` (Gaussian) has mean
    ``m = mu + (e - mu) box_var / (box_var + ref_var)`` and variance
    ``box_var ref_var / (box_var + ref_var)``; its expected absolute value (folded normal)
    moves the side. With an exact reference this is the plain IoU of ``box`` and ``ref``."""
    from scipy.special import erf

    size = _sizes(ref)
    mu = OUTWARD * bias[:, None] * size
    e = box - ref
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(box_var + ref_var > 0, box_var / (box_var + ref_var), 1.0)
    m = mu + (e - mu) * gain
    s = np.sqrt(np.maximum(box_var * (1 - gain), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, np.abs(m) / (s * math.sqrt(2)), np.inf)
        fold = np.where(s > 0, s * math.sqrt(2 / math.pi) * np.exp(-z ** 2) + np.abs(m) * erf(z),
                        np.abs(m))
    truth = box - np.sign(m) * fold
    truth[:, 2] = np.maximum(truth[:, 2], truth[:, 0])
    truth[:, 3] = np.maximum(truth[:, 3], truth[:, 1])
    return _pair_iou(box, truth)


def _pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from qa.geometry import Geometry

    idx = np.arange(len(a))
    return Geometry(a).box_iou(Geometry(b), idx, idx)


# ---------------------------------------------------------------------------------------------
# Dawid-Skene
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DawidSkene:
    """Dawid-Skene estimate over items rated by several annotators.

    ``posterior`` (n_items, n_labels): probability of each true label; ``prior``
    (n_labels,); ``confusion`` (n_annotators, n_labels, n_labels): ``[j, true, given]``, rows
    sum to 1; ``counts``: the same, as expected numbers of ratings (posterior-weighted);
    ``labels``: the label value of each position."""

    labels: np.ndarray
    posterior: np.ndarray
    prior: np.ndarray
    confusion: np.ndarray
    counts: np.ndarray
    log_likelihood: float
    n_iter: int
    converged: bool

    @property
    def label(self) -> np.ndarray:
        """The most probable true label of each item (label values, not positions)."""
        return self.labels[self.posterior.argmax(axis=1)]


def dawid_skene(ratings, *, max_iter: int = EM_MAX_ITER, tol: float = EM_TOL) -> DawidSkene:
    """Dawid & Skene (1979) EM on ``ratings`` = items x annotators of numeric labels (NaN = not
    rated). Starts from the majority vote (ties split evenly). Returns a :class:`DawidSkene`."""
    arr = np.asarray(ratings, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"ratings must be 2-D items x annotators, got shape {arr.shape}.")
    rated = ~np.isnan(arr)
    labels = np.unique(arr[rated])
    codes = np.full(arr.shape, -1, dtype=np.int64)
    codes[rated] = np.searchsorted(labels, arr[rated])
    return _compute_dawid_skene(codes, labels, max_iter, tol)


def _compute_dawid_skene(codes, labels, max_iter, tol) -> DawidSkene:
    # Items with the same ratings have the same posterior: run EM on the distinct rating
    # patterns weighted by how often each occurs (a few hundred for 3 annotators, whatever the
    # number of objects), then expand.
    n_items, k = codes.shape
    base = len(labels) + 1  # codes -1 .. n_labels-1 as digits of one int64 key per item
    if k and base ** k < 2 ** 62:
        key = ((codes + 1) * base ** np.arange(k)).sum(axis=1)
        _, first, inverse, weight = np.unique(key, return_index=True, return_inverse=True,
                                              return_counts=True)
        patterns = codes[first]
    else:
        patterns, inverse, weight = np.unique(codes, axis=0, return_inverse=True,
                                              return_counts=True)
    post, prior, conf, counts, ll, it, conv = _ds_em(patterns, weight.astype(np.float64),
                                                     len(labels), n_items, max_iter, tol)
    return DawidSkene(labels=labels, posterior=post[inverse.ravel()], prior=prior,
                      confusion=conf, counts=counts, log_likelihood=ll, n_iter=it,
                      converged=conv)


def _ds_em(codes, weight, n_lab, n_items, max_iter, tol):
    from scipy.sparse import csr_matrix

    n, k = codes.shape
    obs = [np.flatnonzero(codes[:, j] >= 0) for j in range(k)]
    lab = [codes[o, j] for j, o in enumerate(obs)]
    # given label x observed pattern, one-hot: the M-step's expected counts are one sparse
    # product per annotator (np.add.at row by row is slow with 80 classes)
    given = [csr_matrix((np.ones(len(o)), (lb, o)), shape=(max(n_lab, 1), n))
             for o, lb in zip(obs, lab)]
    post = np.zeros((n, max(n_lab, 1)))
    for o, lb in zip(obs, lab):
        np.add.at(post, (o, lb), 1.0)
    with np.errstate(invalid="ignore"):
        post = post / post.sum(axis=1, keepdims=True)
    post = np.nan_to_num(post, nan=1.0 / max(n_lab, 1))
    ll_old, ll, conv, it = -np.inf, -np.inf, False, 0
    conf = np.zeros((k, n_lab, n_lab))
    counts = np.zeros((k, n_lab, n_lab))
    prior = np.full(n_lab, 1.0 / max(n_lab, 1))
    for it in range(1, max_iter + 1):
        # M-step: class priors and confusion matrices from the expected counts
        wpost = post * weight[:, None]
        prior = (wpost.sum(axis=0) + DS_PSEUDO_COUNT) / (n_items + DS_PSEUDO_COUNT * n_lab)
        for j in range(k):
            counts[j] = np.asarray(given[j] @ wpost).T  # [true, given]
        conf = counts + DS_PSEUDO_COUNT
        conf /= conf.sum(axis=2, keepdims=True)
        # E-step: posterior of the true class of every pattern
        logp = np.tile(np.log(prior), (n, 1))
        logc = np.log(conf)
        for j, (o, lb) in enumerate(zip(obs, lab)):
            logp[o] += logc[j][:, lb].T
        mx = logp.max(axis=1, keepdims=True)
        p = np.exp(logp - mx)
        tot = p.sum(axis=1, keepdims=True)
        post = p / tot
        ll = float(((np.log(tot) + mx).ravel() * weight).sum())
        if abs(ll - ll_old) <= tol * max(abs(ll), 1.0):
            conv = True
            break
        ll_old = ll
    return post, prior, conf, counts, ll, it, conv
