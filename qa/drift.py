"""Two datasets compared: is B like A, where does it differ, what does A not cover, and (for
two versions of one dataset) what changed.

:func:`compare_datasets` (two datasets) and :func:`compare_subsets` (two parts of one: train
vs test, labelled vs a new batch) return a :class:`DriftResult` with four *signals*, each one
or more tests with a p-value and an effect size:

* **labels**: the class mix (chi-square of the 2 x K instance table, Cramér's V; per class the
  change of its share with a 95 % confidence interval), class presence (the share of images
  holding each class: the sum of per-class 2 x 2 chi-squares, Cohen's h), objects per
  image, box size (side relative to the image) and box aspect (two-sample
  Kolmogorov-Smirnov, 1-Wasserstein), and the annotator mix (chi-square).
* **images**: per-image statistics of the one pixel pass (:mod:`qa.imagestats`): brightness,
  contrast, sharpness, entropy, colourfulness, dark and bright shares, width, height, aspect;
  per feature the KS test, its statistic and p-value, the population stability index (PSI)
  and the normalised Wasserstein distance, as Evidently's data-drift table has them.
* **embeddings**: the maximum mean discrepancy (MMD, Gaussian kernels at three bandwidths
  around the median heuristic) with a permutation p-value; the classifier two-sample test
  (a cross-fitted logistic regression's held-out AUC with its interval); and *where* the
  data differ: k-means clusters of the pooled embeddings (beside the pixel statistics when
  both sides have them) with their share in A and in B, the most significant change first,
  tested by the largest share change (a permutation test too).
* **coverage**: the images of B farther from every image of A than A's images are from each
  other (beyond Tukey's fence of A's own nearest-neighbour distances), in the embeddings and
  in robust z-scores of the pixel statistics (an embedder trained to ignore lighting does
  not see a darker batch), ranked, as findings; per space a one-sided Fisher test of "more
  of B is beyond the fence than of A".

Plus **versions** when A and B share their files: files added, removed, renamed or changed
(SHA-256 of the bytes) and, per image, the labels added, removed, moved or relabelled, per
annotator and class.

Two kinds of dependence are handled rather than ignored:

* Boxes of one image are not independent draws (a crowded image adds 40 similar boxes), so
  every box- or instance-level test takes its p-value from permutations of whole *images*
  between A and B: the instance chi-square's textbook p-value would alarm on random halves of
  a dataset (see docs/drift.md for the measured rates).
* Many tests are run. Each measured signal gets an equal share alpha / M of the error budget
  and Holm's step-down procedure runs within it, so the verdict's chance of a false alarm on
  two samples of one population is at most alpha. A test counts as drift only when its
  adjusted p-value is below alpha *and* its effect is material (Cramér's V >= 0.1, a
  normalised Wasserstein distance >= 0.1, ...): with 100,000 images any difference is
  "significant".

Analyses never read files: pixel statistics (:func:`qa.imagestats.compute_image_stats`) and
embeddings (:func:`qa.embeddings.embed_images`) are passed in; a signal whose input is missing
is "not measured", with the reason in ``notes``. faiss and scikit-learn are imported inside
the functions that use them.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    BOX,
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    H,
    IMAGE_ID,
    SPLIT,
    W,
    WIDTH,
    Dataset,
)
from qa.results import findings_frame, frame_records, to_jsonable

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

# ------------------------------------------------------------------------------- constants
# The usual 5 % level for the whole comparison (family-wise, see the module docstring).
DEFAULT_ALPHA = 0.05
# 999 image permutations: the smallest p-value is 1/1000, small enough to survive the
# multiple-testing split (alpha / 4 signals / a handful of tests ~ 0.003).
DEFAULT_PERMUTATIONS = 999
SEED = 0
# Permutation tests on labels use at most this many images per side (a seeded random sample
# above, said in the notes): 20,000 images detect a Cramér's V of 0.02 already, and the
# permutations stay within seconds.
MAX_PERMUTATION_IMAGES = 20_000
# A side needs this many images (or boxes) for a test; fewer gives p-values of no use.
MIN_SAMPLES = 5
# Material effects: below these a significant difference is not called drift.
# Cramér's V 0.1 is a small effect (Cohen 1988), the report's split-mix threshold too.
MIN_CRAMERS_V = 0.1
# Class presence (the share of images holding a class): Cohen's h = |2 asin sqrt(p_b) -
# 2 asin sqrt(p_a)| of 0.2 is a small effect (Cohen 1988), 25 % -> 34 % of the images.
MIN_COHENS_H = 0.2
# Evidently's default drift threshold for the Wasserstein distance normalised by the
# reference's standard deviation.
MIN_WASSERSTEIN_NORM = 0.1
# Embeddings: at least 5 % of the images would have to change cluster (total variation
# distance of the cluster shares) ...
MIN_CLUSTER_TVD = 0.05
# ... coverage: B has at least 2 percentage points more images beyond A's fence than A.
MIN_COVERAGE_EXCESS = 0.02
# PSI: 10 bins at the reference's deciles (the credit-scoring definition); features with at
# most 20 distinct values are compared per value, and an empty bin counts as 0.0001, as
# Evidently does. Reading: < 0.1 no change, 0.1-0.25 moderate, > 0.25 major (Yurdakul 2018).
PSI_BINS = 10
PSI_MAX_CATEGORIES = 20
PSI_FLOOR = 1e-4
PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
# MMD: the exact kernel matrix up to this many pooled images (a 4,000 x 4,000 float64 matrix
# is 128 MB); above, random Fourier features (Rahimi & Recht 2007) with RFF_FEATURES
# dimensions approximate the Gaussian kernel (error of one kernel value ~ 1/sqrt(D); the
# MMD's error is measured in benchmarks/bench_drift.py).
MMD_EXACT_MAX = 4_000
RFF_FEATURES = 256
# Bandwidths tried, as multiples of the median heuristic: the median sees a shift of the
# whole set, a quarter of it a new small group of images (larger ones add little power on
# L2-normalised embeddings and cost a third more at 200,000 images).
MMD_BANDWIDTH_SCALES = (0.25, 0.5, 1.0)
RFF_ROW_CHUNK = 8_192
# The classifier two-sample test: a logistic regression on the first 32 principal
# components of the pooled embeddings (more overfits a few hundred images; the MMD covers
# fine detail), at most 5,000 images per side (a held-out AUC of 0.53 is then 3 standard
# errors).
C2ST_DIMS = 32
C2ST_MAX_PER_SIDE = 5_000
C2ST_C = 1.0
# The AUC from which B is materially distinguishable from A.
MIN_C2ST_AUC = 0.55
# The median heuristic's distances are taken over at most this many pooled points.
BANDWIDTH_SAMPLE = 1_000
# Clusters: about sqrt(n / 4) of them, between 4 and 24 (a cluster of 10 % of B needs a few
# clusters around it to stand out; more than 24 is more than a person reads).
MIN_CLUSTERS, MAX_CLUSTERS = 4, 24
KMEANS_ITERATIONS = 20
KMEANS_SKLEARN_MAX = 20_000
N_EXAMPLES = 6  # images shown per cluster and side
# Exact nearest-neighbour search when reference x query is at most this many distances;
# an IVF index over a PCA projection above (as qa.outliers does for one set).
EXACT_NN_MAX_PAIRS = 4e8
NUMPY_NN_MAX_PAIRS = 4e6  # below, a numpy distance matrix (faiss's threads cost more)
IVF_CANDIDATES = 8  # candidates per query re-ranked by exact distance
# Versions: a box of the new version is the same object as an old one when they overlap by
# IoU >= 0.3 (a loose box re-drawn tight still pairs with its old self; the matching is
# one-to-one maximising IoU, so neighbours do not steal pairs), and it has *moved* when that
# IoU is under 0.9 and a side moved by more than 1 px (re-export rounding is not a change).
SAME_OBJECT_IOU = 0.3
MOVED_IOU = 0.9
MOVED_MIN_PX = 1.0
# Versions are only compared when at least half of the smaller side's images are found in
# the other (same content, or same name when contents are unknown).
MIN_SHARED_FOR_VERSIONS = 0.5

SIGNALS = ("labels", "images", "embeddings", "coverage")
SUMMARY_TESTS = 3  # drifting tests named per signal in the one-sentence summary
# Image statistics compared (column of qa.imagestats, label, transform).
IMAGE_FEATURES = {
    "brightness": "brightness (mean luma)",
    "contrast": "contrast (luma std)",
    "sharpness": "sharpness (log10 Laplacian variance)",
    "entropy": "entropy (bits)",
    "colorfulness": "colourfulness",
    "dark_share": "dark pixels share",
    "bright_share": "bright pixels share",
    "width": "width (px)",
    "height": "height (px)",
    "aspect": "aspect (width / height)",
}
REFERENCE_ENV = "DATASET_QA_REFERENCE"

TESTS_COLUMNS = ["signal", "test_id", "label", "test", "statistic", "p_value", "p_method",
                 "p_asymptotic", "effect_name", "effect", "material", "p_adjusted", "drift",
                 "n_a", "n_b", "summary"]


# ================================================================== statistics (public)
def population_stability_index(reference, current, *, bins: int = PSI_BINS) -> float:
    """PSI = sum over bins of (b - a) * ln(b / a), where a, b are the shares of ``reference``
    and ``current`` in each bin; bins at the reference's quantiles (``bins`` of them), or one
    per value when the two hold at most 20 distinct values. Empty bins count as 0.0001.
    Higher = more shift (0.1 moderate, 0.25 major; but see :func:`psi_noise`). NaN when a
    side is empty."""
    return _psi(reference, current, bins)[0]


def psi_noise(n_bins: int, n_a: int, n_b: int) -> float:
    """The PSI two samples of one population show on average: (bins - 1) * (1/n_a + 1/n_b)
    (PSI ~ sum (b - a)^2 / p for small differences, and each share's sampling variance is
    p (1 - p) / n). With 10 bins and 100 images a side it is 0.18: above the "moderate"
    0.1 with no change at all, so small samples need this line beside their PSI."""
    return float((n_bins - 1) * (1.0 / max(n_a, 1) + 1.0 / max(n_b, 1)))


def _psi(reference, current, bins: int = PSI_BINS) -> tuple[float, int]:
    a = _finite(reference)
    b = _finite(current)
    if len(a) == 0 or len(b) == 0:
        return float("nan"), 0
    values = np.union1d(np.unique(a), np.unique(b))
    if len(values) <= PSI_MAX_CATEGORIES:
        ia, ib = np.searchsorted(values, a), np.searchsorted(values, b)
        k = len(values)
    else:
        edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1))[1:-1])
        ia = np.searchsorted(edges, a, side="left")  # bins (e_i-1, e_i], as pandas' qcut
        ib = np.searchsorted(edges, b, side="left")
        k = len(edges) + 1
    pa = np.maximum(np.bincount(ia, minlength=k) / len(a), PSI_FLOOR)
    pb = np.maximum(np.bincount(ib, minlength=k) / len(b), PSI_FLOOR)
    return float(np.sum((pb - pa) * np.log(pb / pa))), int(k)


def median_bandwidth(x, y, *, seed: int = SEED) -> float:
    """The median heuristic: the median Euclidean distance between pooled points (at most
    BANDWIDTH_SAMPLE of them, seeded), the sigma of k(u, v) = exp(-|u - v|^2 / (2 sigma^2))."""
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    take = np.arange(len(x) + len(y))
    if len(take) > BANDWIDTH_SAMPLE:  # sample first: never copy 200,000 rows
        take = np.sort(rng.choice(len(take), BANDWIDTH_SAMPLE, replace=False))
    ix, iy = take[take < len(x)], take[take >= len(x)] - len(x)
    pooled = np.vstack([x[ix], y[iy]]).astype(np.float64)
    sq = _sq_dists(pooled, pooled)
    d = np.sqrt(sq[np.triu_indices(len(pooled), 1)])
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 1.0


def mmd2_unbiased(x, y, *, bandwidth: float) -> float:
    """The unbiased estimate of the squared MMD between samples ``x`` (m x d) and ``y``
    (n x d) with the Gaussian kernel of ``bandwidth`` sigma (Gretton et al. 2012, eq. 3):
    mean k over distinct pairs within x, plus within y, minus twice the mean over x-y pairs.
    0 in expectation when x and y come from one distribution; higher = more different."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    g = 1.0 / (2.0 * bandwidth ** 2)
    kxx, kyy, kxy = (np.exp(-g * _sq_dists(x, x)), np.exp(-g * _sq_dists(y, y)),
                     np.exp(-g * _sq_dists(x, y)))
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN): reject where adjusted < alpha
    controls the family-wise error at alpha under any dependence."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok) == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


# ================================================================== statistics (private)
def _finite(v) -> np.ndarray:
    a = np.asarray(v, dtype=float).ravel()
    return a[np.isfinite(a)]


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _wasserstein_norm(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-Wasserstein distance in units of A's standard deviation (Evidently's normed
    distance); of the pooled one when A is constant (one image size in A: a new size in B is
    still a measurable shift, not a division by zero)."""
    from scipy.stats import wasserstein_distance

    scale = float(np.std(a))
    if scale <= 1e-12:
        scale = float(np.std(np.r_[a, b]))
    if scale <= 1e-12:
        return 0.0
    return float(wasserstein_distance(a, b) / scale)


def _perm_masks(n: int, n_a: int, n_perm: int, rng) -> np.ndarray:
    """(n_perm, n) booleans: each row a uniformly random choice of n_a of the n units as A."""
    out = np.zeros((n_perm, n), dtype=bool)
    for p in range(n_perm):  # faster than Generator.permuted on the whole matrix
        out[p, rng.permutation(n)[:n_a]] = True
    return out


def _perm_p(observed: float, null: np.ndarray) -> float:
    """(1 + #null >= observed) / (1 + #null): a permutation p-value that is never 0."""
    return float((1 + np.sum(null >= observed - 1e-12 * max(1.0, abs(observed))))
                 / (1 + len(null)))


def _chi2_rows(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Pearson's chi-square of 2 x K tables given as rows of A counts and B counts."""
    ca = np.atleast_2d(np.asarray(ca, np.float64))
    cb = np.atleast_2d(np.asarray(cb, np.float64))
    col = ca + cb
    na, nb = ca.sum(1, keepdims=True), cb.sum(1, keepdims=True)
    n = na + nb
    with np.errstate(divide="ignore", invalid="ignore"):
        ea, eb = na * col / n, nb * col / n
        t = np.where(ea > 0, (ca - ea) ** 2 / ea, 0.0) + np.where(eb > 0, (cb - eb) ** 2 / eb,
                                                                   0.0)
    return t.sum(1)


def _chi2_perm_test(y: np.ndarray, in_a: np.ndarray, masks: np.ndarray) -> tuple:
    """Chi-square of the 2 x K table of per-unit counts ``y`` (units x K) split by ``in_a``,
    its asymptotic p-value (scipy's chi2_contingency without Yates' correction) and the
    p-value of permuting whole units (rows of ``masks``). Columns empty in both are dropped.
    Returns (chi2, dof, p_asymptotic, p_permutation, n_total)."""
    from scipy.stats import chi2 as chi2_dist

    y = np.asarray(y, np.float64)
    y = y[:, y.sum(0) > 0]
    if y.shape[1] < 2:
        return (float("nan"),) * 4 + (float(y.sum()),)
    ca, cb = y[in_a].sum(0), y[~in_a].sum(0)
    if ca.sum() == 0 or cb.sum() == 0:
        return (float("nan"),) * 4 + (float(y.sum()),)
    stat = float(_chi2_rows(ca, cb)[0])
    dof = y.shape[1] - 1
    total = y.sum(0)
    null = []
    step = max(1, int(2e7 // max(y.size, 1)))
    for s in range(0, len(masks), step):
        pa = masks[s:s + step].astype(np.float64) @ y
        null.append(_chi2_rows(pa, total[None, :] - pa))
    null = np.concatenate(null) if null else np.zeros(0)
    return stat, dof, float(chi2_dist.sf(stat, dof)), _perm_p(stat, null), float(y.sum())


def _presence_perm_test(pres: np.ndarray, in_a: np.ndarray,
                        masks: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Sum over classes of the 2 x 2 Pearson chi-square of "the image holds the class" by side
    (= the squared two-proportion z with the pooled share), for ``pres`` (units x K, 0/1)
    split by ``in_a``, and its p-value from permuting whole units (``masks``): the classes
    of one image are not independent, so no chi-square distribution is assumed. Returns
    (statistic, p_value, z per class); NaN when no class varies."""
    m = int(in_a.sum())
    n = len(in_a) - m
    tot = pres.sum(0)
    pool = tot / max(m + n, 1)
    se = np.sqrt(pool * (1 - pool) * (1 / max(m, 1) + 1 / max(n, 1)))
    ok = se > 0
    if m == 0 or n == 0 or not ok.any():
        return float("nan"), float("nan"), np.zeros(pres.shape[1])

    def zz(ca: np.ndarray) -> np.ndarray:
        return ((tot - ca) / n - ca / m)[..., ok] / se[ok]

    z = zz(pres[in_a].sum(0))
    obs = float((z ** 2).sum())
    null = np.concatenate([(zz(masks[s:s + 256].astype(np.float64) @ pres) ** 2).sum(-1)
                           for s in range(0, len(masks), 256)]) if len(masks) else np.zeros(0)
    full = np.zeros(pres.shape[1])
    full[ok] = z
    return obs, _perm_p(obs, null), full


def _ks_perm_test(values: np.ndarray, unit: np.ndarray, in_a: np.ndarray,
                  masks: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic of ``values`` (one per box) between the boxes of A's units and
    of B's (``unit``: the unit index of each box, ``in_a``: per unit), equal to scipy's
    ks_2samp statistic, and its p-value from permuting whole units (``masks``)."""
    order = np.argsort(values, kind="stable")
    v, g = values[order], unit[order]
    ends = np.r_[np.flatnonzero(v[1:] != v[:-1]), len(v) - 1]  # last box of each value

    def stat(assign: np.ndarray) -> np.ndarray:
        ca = np.cumsum(assign, axis=1, dtype=np.int64)[:, ends]
        cb = (ends + 1)[None, :] - ca
        na, nb = ca[:, -1:], cb[:, -1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.abs(ca / na - cb / nb)
        d = np.where((na > 0) & (nb > 0), d, 0.0)
        return d.max(axis=1)

    observed = float(stat(in_a[g][None, :])[0])
    null = []
    step = max(1, int(4e6 // max(len(v), 1)))
    for s in range(0, len(masks), step):
        null.append(stat(masks[s:s + step][:, g]))
    null = np.concatenate(null) if null else np.zeros(0)
    return observed, _perm_p(observed, null)


def _max_share_z_test(onehot: np.ndarray, m: int, masks: np.ndarray) -> tuple[float, float]:
    """max over groups of |share in B - share in A| / its standard error under "the same
    shares" (the pooled share p: se = sqrt(p (1 - p) (1/m + 1/n))), for the first m rows as A,
    and its p-value over the permutations in ``masks``."""
    N = len(onehot)
    n = N - m
    total = onehot.sum(0)
    p = total / N
    se = np.sqrt(p * (1 - p) * (1 / m + 1 / n))
    ok = se > 0
    if not ok.any():
        return float("nan"), float("nan")

    def zmax(ca: np.ndarray) -> np.ndarray:
        z = ((total - ca) / n - ca / m)[..., ok] / se[ok]
        return np.abs(z).max(-1)

    obs = float(zmax(onehot[:m].sum(0)))
    null = np.concatenate([zmax(masks[s:s + 256].astype(np.float64) @ onehot)
                           for s in range(0, len(masks), 256)])
    return obs, _perm_p(obs, null)


def _ratio_share(y: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of each class among the labels (sum y / sum m, per column of y: units x K) and
    its variance by the ratio estimator over units (Cochran 1977, 6.9): the images are the
    sampled units, so a crowded image does not count as 40 independent labels."""
    n = len(m)
    tot = m.sum()
    if n < 2 or tot == 0:
        return np.full(y.shape[1], np.nan), np.full(y.shape[1], np.nan)
    r = y.sum(0) / tot
    resid = y - r[None, :] * m[:, None]
    var = (resid ** 2).sum(0) / (n * (n - 1) * (tot / n) ** 2)
    return r, var


# ================================================================== inputs
def _stats_table(stats) -> pd.DataFrame | None:
    if stats is None:
        return None
    table = getattr(stats, "table", stats)
    if not isinstance(table, pd.DataFrame) or IMAGE_ID not in table.columns:
        raise TypeError("stats must be qa.imagestats.ImageStats (compute_image_stats()) or its "
                        f"table, got {type(stats).__name__}")
    return table


def _check_embeddings(emb, side: str):
    if emb is None:
        return None
    from qa.embeddings import Embeddings

    if not isinstance(emb, Embeddings):
        raise TypeError(f"embeddings_{side} must be qa.embeddings.Embeddings (embed_images()), "
                        f"got {type(emb).__name__}")
    if emb.ann_ids is not None:
        raise ValueError(f"embeddings_{side} are object embeddings; pass image embeddings "
                         "(embed_images)")
    return emb


@dataclass
class _Side:
    """One side of the comparison: its dataset, name, statistics and embeddings."""

    ds: Dataset
    name: str
    stats: pd.DataFrame | None
    emb: Any
    _features: pd.DataFrame | None = None

    @property
    def features(self) -> pd.DataFrame | None:
        """Per readable image: image_id and the IMAGE_FEATURES (None without statistics)."""
        if self._features is None and self.stats is not None:
            self._features = _feature_values(self.stats)
        return self._features


# ================================================================== result
@dataclass(frozen=True, eq=False)
class DriftResult:
    """B compared with A (A is the reference: "what the model was trained on").

    * ``verdict``: "drift", "no drift" or "not measured"; ``summary`` one sentence.
    * ``signals``: one row per signal (labels, images, embeddings, coverage): measured,
      drift, n_tests, n_drift, what (the drifting tests in words), reason (why not measured).
    * ``tests``: one row per test (:data:`TESTS_COLUMNS`): statistic, p_value and how it was
      obtained (``p_method``), effect size and whether it is material, ``p_adjusted``
      (Bonferroni over signals x Holm within; compare with alpha) and ``drift``.
    * ``class_mix``: per class name count_a, count_b, share_a, share_b, change (B - A),
      ci_low, ci_high (95 %), p_value, p_adjusted (Holm over classes), significant, and the
      images holding it: images_a, images_b, image_share_a, image_share_b.
    * ``annotator_mix``: per annotator labels and share in A and B.
    * ``image_features``: per pixel statistic: KS statistic, p_value, psi, psi_noise (the
      PSI expected from sampling alone, :func:`psi_noise`), wasserstein_norm, mean/median in
      A and B (Evidently's table).
    * ``embedding``: dict with mmd2, p_value, bandwidth, method, n_permutations, model_id,
      classifier (auc, ci_low, ci_high, p_value, ...), cluster_space (what the clusters
      were fitted on: "embeddings" or "embeddings and pixel statistics").
    * ``clusters``: per k-means cluster of the pooled embeddings: n_a, n_b, share_a,
      share_b, change, z (two-proportion z of the change), p_value (Fisher), p_adjusted
      (Holm), direction, rank (1 = the largest |z|), examples_a / examples_b (image ids
      nearest the centre).
    * ``coverage``: per image of B, in the space where it is least covered (``space``:
      "embeddings" or "image statistics"): distance to its nearest image of A, that space's
      fence, excess (distance / fence; higher = less covered, > 1 = uncovered), nearest_a
      (image id in A), nearest_file_a, is_uncovered, rank. ``coverage_summary``: per space
      the fence, A's own share beyond it, B's count and share, the Fisher p-value;
      ``coverage_share_a``: A's own share beyond a fence in any space.
    * ``files``, ``label_changes``, ``changes_summary``: versions (empty unless A and B share
      their files): per file its status (unchanged, changed, renamed, added, removed); per
      label change file_name, annotator, change (added, removed, moved, relabelled),
      class_a, class_b, iou; counts per annotator, class and change.
    * ``image_values`` / ``box_values``: the per-image and per-box values behind the tests
      (side, feature columns), for histograms.
    """

    ANALYSIS: ClassVar[str] = "drift"

    name_a: str
    name_b: str
    n_images_a: int
    n_images_b: int
    alpha: float
    verdict: str
    summary: str
    signals: pd.DataFrame
    tests: pd.DataFrame
    class_mix: pd.DataFrame
    annotator_mix: pd.DataFrame
    image_features: pd.DataFrame
    embedding: dict
    clusters: pd.DataFrame
    coverage: pd.DataFrame
    coverage_summary: pd.DataFrame
    coverage_share_a: float
    files: pd.DataFrame
    label_changes: pd.DataFrame
    changes_summary: pd.DataFrame
    image_values: pd.DataFrame
    box_values: pd.DataFrame
    same_dataset: bool = False
    notes: tuple[str, ...] = ()

    @property
    def is_drift(self) -> bool:
        return self.verdict == "drift"

    @property
    def uncovered(self) -> pd.DataFrame:
        """The images of B beyond A's fence, least covered first."""
        c = self.coverage
        return c[c["is_uncovered"]].sort_values("rank") if len(c) else c

    @property
    def coverage_space(self) -> str | None:
        """The spaces coverage was measured in ("embeddings, image statistics"), or None."""
        spaces = self.coverage_summary["space"].tolist() if len(self.coverage_summary) else []
        return ", ".join(spaces) or None

    @property
    def has_versions(self) -> bool:
        return len(self.files) > 0

    def metrics(self) -> dict[str, float | int | None]:
        s = self.signals
        measured = s[s["measured"]] if len(s) else s
        t = self.tests.set_index("test_id") if len(self.tests) else None

        def eff(test_id):
            if t is None or test_id not in t.index:
                return None
            return to_jsonable(t.at[test_id, "effect"])

        n_b = len(self.coverage)
        files = self.files["status"].value_counts() if len(self.files) else {}
        changes = (self.label_changes["change"].value_counts() if len(self.label_changes)
                   else {})
        return {
            "is_drift": int(self.is_drift) if len(measured) else None,
            "n_drift_signals": int(measured["drift"].sum()) if len(measured) else None,
            "n_signals": int(len(measured)),
            "n_drift_tests": int(self.tests["drift"].sum()) if len(self.tests) else 0,
            "class_mix_cramers_v": eff("class_mix"),
            "max_psi": (to_jsonable(self.image_features["psi"].max())
                        if len(self.image_features) else None),
            "mmd2": to_jsonable(self.embedding.get("mmd2")),
            "mmd_p_value": to_jsonable(self.embedding.get("p_value")),
            "max_cluster_change": (to_jsonable(self.clusters["change"].abs().max())
                                   if len(self.clusters) else None),
            "n_uncovered": int(self.coverage["is_uncovered"].sum()) if n_b else None,
            "uncovered_share": (float(self.coverage["is_uncovered"].mean()) if n_b else None),
            "uncovered_excess": (float(self.coverage["is_uncovered"].mean()
                                       - self.coverage_share_a) if n_b else None),
            "n_files_added": int(files.get("added", 0)) if len(self.files) else None,
            "n_files_removed": int(files.get("removed", 0)) if len(self.files) else None,
            "n_files_changed": int(files.get("changed", 0)) if len(self.files) else None,
            "n_labels_changed": (int(len(self.label_changes)) if len(self.files) else None),
            "n_labels_relabelled": (int(changes.get("relabelled", 0)) if len(self.files)
                                    else None),
        }

    def findings(self) -> pd.DataFrame:
        """Images of B that A does not cover (kind "not_covered", one per image, worst first)
        and one dataset-level "drift" finding per drifting signal. Image ids are B's."""
        rows = []
        for r in self.signals.itertuples(index=False):
            if r.measured and r.drift:
                rows.append(dict(kind="drift", severity="warning", score=1.0,
                                 message=f"{self.name_b} differs from {self.name_a} in its "
                                         f"{r.signal}: {r.what}."))
        for r in self.uncovered.itertuples(index=False):
            near = str(r.nearest_file_a)
            rows.append(dict(
                kind="not_covered", severity="warning",
                score=float(min(1.0, max(0.0, 1.0 - 1.0 / max(r.excess, 1e-9)))),
                image_id=int(r.image_id),
                related_image_ids=(int(r.nearest_a),) if self.same_dataset else (),
                message=(f"Image {r.file_name} of {self.name_b} is "
                         f"farther from every image of {self.name_a} (in {r.space}: distance "
                         f"{r.distance:.3g} to {near}, {r.excess:.2f}x the fence) than "
                         f"{self.name_a}'s images are from each other: {self.name_a} does "
                         "not cover it; label more like it or check that it belongs.")))
        return findings_frame(rows, analysis=self.ANALYSIS, page="compare")

    def to_dict(self) -> dict:
        unc = self.uncovered
        return {
            "analysis": self.ANALYSIS,
            "a": self.name_a, "b": self.name_b,
            "n_images_a": self.n_images_a, "n_images_b": self.n_images_b,
            "alpha": self.alpha, "verdict": self.verdict, "summary": self.summary,
            "metrics": {k: to_jsonable(v) for k, v in self.metrics().items()},
            "signals": frame_records(self.signals),
            "tests": frame_records(self.tests),
            "class_mix": frame_records(self.class_mix),
            "annotator_mix": frame_records(self.annotator_mix),
            "image_features": frame_records(self.image_features),
            "embedding": to_jsonable(self.embedding),
            "clusters": frame_records(self.clusters),
            "coverage": {"spaces": frame_records(self.coverage_summary),
                         "share_a": to_jsonable(self.coverage_share_a),
                         "uncovered": frame_records(unc)},
            "versions": {"files": frame_records(self.files[self.files["status"] != "unchanged"])
                         if len(self.files) else [],
                         "label_changes": frame_records(self.label_changes),
                         "summary": frame_records(self.changes_summary)},
            "notes": list(self.notes),
        }


# ================================================================== public entry points
def compare_datasets(a: Dataset, b: Dataset, *, stats_a=None, stats_b=None, embeddings_a=None,
                     embeddings_b=None, names: tuple[str, str] | None = None,
                     annotator: str | None = None, alpha: float = DEFAULT_ALPHA,
                     n_permutations: int = DEFAULT_PERMUTATIONS, n_clusters: int | None = None,
                     seed: int = SEED, progress: ProgressFn | None = None) -> DriftResult:
    """Compare dataset ``b`` with the reference ``a``; returns a :class:`DriftResult`.

    ``stats_a``/``stats_b``: :func:`qa.imagestats.compute_image_stats` of each (the images
    and coverage-without-embeddings signals need them; versions use their SHA-256).
    ``embeddings_a``/``embeddings_b``: :func:`qa.embeddings.embed_images` of each, from the
    same model (the embeddings signal, clusters and coverage). ``annotator``: whose labels
    are compared (default: the annotator with most labels when both sides have them, else
    every label). ``names``: what to call A and B in sentences (default: dataset names).
    """
    if not isinstance(a, Dataset) or not isinstance(b, Dataset):
        raise TypeError(f"compare_datasets() needs two qa.Dataset, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    na, nb = names or (a.name or "A", b.name or "B")
    if na == nb:
        na, nb = f"{na} (A)", f"{nb} (B)"
    sa = _Side(a, na, _stats_table(stats_a), _check_embeddings(embeddings_a, "a"))
    sb = _Side(b, nb, _stats_table(stats_b), _check_embeddings(embeddings_b, "b"))
    return _compare(sa, sb, same=False, **_options(annotator, alpha, n_permutations,
                                                   n_clusters, seed, progress))


def compare_subsets(dataset: Dataset, image_ids_a, image_ids_b, *, stats=None, embeddings=None,
                    names: tuple[str, str] = ("A", "B"), annotator: str | None = None,
                    alpha: float = DEFAULT_ALPHA, n_permutations: int = DEFAULT_PERMUTATIONS,
                    n_clusters: int | None = None, seed: int = SEED,
                    progress: ProgressFn | None = None) -> DriftResult:
    """Compare two parts of one dataset (``image_ids_b`` against the reference
    ``image_ids_a``: train vs test, old vs new batch) with its ``stats`` and ``embeddings``
    sliced to each part. Returns a :class:`DriftResult` whose image ids are the dataset's."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"compare_subsets() needs a qa.Dataset, got {type(dataset).__name__}")
    ids_a = pd.Index(np.asarray(list(image_ids_a), dtype=np.int64)).unique()
    ids_b = pd.Index(np.asarray(list(image_ids_b), dtype=np.int64)).unique()
    known = pd.Index(dataset.images[IMAGE_ID])
    for side, ids in (("a", ids_a), ("b", ids_b)):
        unknown = ids.difference(known)
        if len(unknown):
            raise ValueError(f"image_ids_{side} holds {len(unknown)} ids that are not in the "
                             f"dataset (e.g. {unknown[:5].tolist()}); pass ids of its images")
    table = _stats_table(stats)
    emb = _check_embeddings(embeddings, "")
    sides = []
    for name, ids in zip(names, (ids_a, ids_b)):
        st_ = None if table is None else table[table[IMAGE_ID].isin(ids)]
        sides.append(_Side(dataset.subset(ids), name, st_,
                           None if emb is None else _slice_embeddings(emb, ids)))
    return _compare(*sides, same=True, **_options(annotator, alpha, n_permutations,
                                                  n_clusters, seed, progress))


def split_ids(dataset: Dataset, split: str) -> np.ndarray:
    """The image ids of one split (``"none"``: images without a split)."""
    s = dataset.images[SPLIT].astype(object)
    mask = s.isna() if split == "none" else (s.astype(str) == split) & s.notna()
    return dataset.images.loc[mask, IMAGE_ID].to_numpy(np.int64)


def _slice_embeddings(emb, ids):
    from qa.embeddings import Embeddings

    keep = np.isin(emb.image_ids, np.asarray(ids))
    failed = emb.failed[emb.failed[IMAGE_ID].isin(ids)] if len(emb.failed) else emb.failed
    return Embeddings(emb.vectors[keep], emb.image_ids[keep], emb.model_id, emb.is_clip,
                      failed=failed, notes=emb.notes, n_not_cached=0)


def _options(annotator, alpha, n_permutations, n_clusters, seed, progress) -> dict:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a probability between 0 and 1, got {alpha!r}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) \
            or n_permutations < 19:
        raise ValueError(f"n_permutations must be an integer >= 19 (p-values below 0.05 need "
                         f"at least 19), got {n_permutations!r}")
    if n_clusters is not None and (isinstance(n_clusters, bool) or not isinstance(
            n_clusters, (int, np.integer)) or n_clusters < 2):
        raise ValueError(f"n_clusters must be an integer >= 2 or None, got {n_clusters!r}")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be a callable progress(fraction, message)")
    return dict(annotator=annotator, alpha=float(alpha), n_perm=int(n_permutations),
                n_clusters=None if n_clusters is None else int(n_clusters), seed=int(seed),
                progress=progress or (lambda frac, msg: None))


# ================================================================== the comparison
def _compare(a: _Side, b: _Side, *, same: bool, annotator, alpha, n_perm, n_clusters, seed,
             progress) -> DriftResult:
    notes: list[str] = []
    tests: list[dict] = []
    progress(0.0, "comparing labels")
    labels = _labels_drift(a, b, annotator=annotator, n_perm=n_perm, seed=seed, notes=notes)
    tests += labels["tests"]
    progress(0.25, "comparing image statistics")
    images = _images_drift(a, b, notes=notes)
    tests += images["tests"]
    progress(0.4, "comparing embeddings")
    emb = _embedding_drift(a, b, n_perm=n_perm, n_clusters=n_clusters, seed=seed, notes=notes,
                           alpha=alpha)
    tests += emb["tests"]
    progress(0.7, "measuring coverage")
    cov = _coverage(a, b, notes=notes)
    tests += cov["tests"]
    progress(0.85, "comparing versions")
    versions = _versions(a, b, same=same, notes=notes)
    if len(versions["files"]) and not same:
        n_common = int((versions["files"]["status"].isin(["unchanged", "changed", "renamed"]))
                       .sum())
        notes.append(f"{a.name} and {b.name} share {n_common:,} images (versions of one "
                     "dataset): the drift tests assume independent samples, so read them as "
                     "a description and the changes table as the answer.")
    table = _adjust(pd.DataFrame(tests, columns=TESTS_COLUMNS), alpha)
    floor = 1.0 / (n_perm + 1)
    perm = table[table["p_method"].str.contains("permutations", na=False)]
    if len(perm) and (perm["p_value"] <= floor + 1e-12).any() and \
            (perm["p_adjusted"] >= alpha).any() and perm["material"].any():
        notes.append(f"With {n_perm} permutations the smallest p-value is {floor:.2g}; after "
                     "the multiple-testing adjustment that may not reach alpha: use more "
                     f"permutations (the default is {DEFAULT_PERMUTATIONS}).")
    signals = _signals(table, {"labels": labels.get("reason"), "images": images.get("reason"),
                               "embeddings": emb.get("reason"),
                               "coverage": cov.get("reason")})
    verdict, summary = _verdict(signals, a.name, b.name)
    progress(1.0, "comparison done")
    return DriftResult(
        name_a=a.name, name_b=b.name, n_images_a=a.ds.n_images, n_images_b=b.ds.n_images,
        alpha=alpha, verdict=verdict, summary=summary, signals=signals, tests=table,
        class_mix=labels["class_mix"], annotator_mix=labels["annotator_mix"],
        image_features=images["table"], embedding=emb["info"], clusters=emb["clusters"],
        coverage=cov["table"], coverage_summary=cov["summary"],
        coverage_share_a=cov.get("share_a", float("nan")), files=versions["files"],
        label_changes=versions["changes"], changes_summary=versions["summary"],
        image_values=images["values"], box_values=labels["box_values"], same_dataset=same,
        notes=tuple(dict.fromkeys(notes)))


def _test_row(signal, test_id, label, test, statistic, p_value, p_method, effect_name, effect,
              material, n_a, n_b, summary) -> dict:
    return dict(signal=signal, test_id=test_id, label=label, test=test,
                statistic=float(statistic), p_value=float(p_value), p_method=p_method,
                p_asymptotic=np.nan, effect_name=effect_name, effect=float(effect),
                material=bool(material), p_adjusted=np.nan, drift=False, n_a=int(n_a),
                n_b=int(n_b), summary=summary)


def _adjust(tests: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """p_adjusted = min(1, M x Holm-adjusted p within the signal), M = measured signals: the
    verdict's family-wise error is at most alpha. drift = p_adjusted < alpha and material."""
    if tests.empty:
        return tests.astype({"material": bool, "drift": bool})
    tests = tests.copy()
    ok = tests["p_value"].notna()
    m = max(1, tests.loc[ok, "signal"].nunique())
    for _, idx in tests[ok].groupby("signal").groups.items():
        tests.loc[idx, "p_adjusted"] = np.minimum(1.0, m * holm(tests.loc[idx, "p_value"]))
    tests["drift"] = (tests["p_adjusted"] < alpha) & tests["material"].astype(bool)
    return tests


def _signals(tests: pd.DataFrame, reasons: dict) -> pd.DataFrame:
    rows = []
    for s in SIGNALS:
        t = tests[tests["signal"] == s] if len(tests) else tests
        measured = bool(len(t) and t["p_value"].notna().any())
        drifting = t[t["drift"]] if measured else t.iloc[0:0]
        drifting = drifting.sort_values(["p_adjusted", "effect"], ascending=[True, False])
        what = "; ".join(drifting["summary"].head(SUMMARY_TESTS))
        if len(drifting) > SUMMARY_TESTS:
            what += f"; and {len(drifting) - SUMMARY_TESTS} more"
        rows.append(dict(signal=s, measured=measured, drift=bool(len(drifting)),
                         n_tests=int(t["p_value"].notna().sum()) if len(t) else 0,
                         n_drift=int(len(drifting)), what=what,
                         reason=None if measured else (reasons.get(s) or "not measured")))
    return pd.DataFrame(rows)


def _verdict(signals: pd.DataFrame, na: str, nb: str) -> tuple:
    measured = signals[signals["measured"]]
    if measured.empty:
        return "not measured", (f"Nothing could be compared between {na} and {nb}: "
                                + "; ".join(f"{r.signal}: {r.reason}"
                                            for r in signals.itertuples()) + ".")
    drifting = measured[measured["drift"]]
    m = len(measured)
    if drifting.empty:
        return "no drift", (f"No drift: {nb} is like {na} in all {m} signal"
                            f"{'s' if m > 1 else ''} measured "
                            f"({', '.join(measured['signal'])}).")
    lead = [f"{r.signal}: {r.what.split('; ')[0]}" for r in drifting.itertuples()]
    text = (f"Drift in {len(drifting)} of {m} signal{'s' if m > 1 else ''} ("
            + ", ".join(drifting["signal"]) + "): " + "; ".join(lead) + ".")
    return "drift", text


# ================================================================== labels
def _pick_annotator(a: Dataset, b: Dataset, annotator) -> str | None:
    if annotator is not None:
        for ds, side in ((a, "A"), (b, "B")):
            if annotator not in ds.annotators:
                raise ValueError(f"annotator {annotator!r} has no labels in {side} (its "
                                 f"annotators: {list(ds.annotators)}); pick one of both")
        return annotator
    common = set(a.annotations[ANNOTATOR].astype(str)) & set(b.annotations[ANNOTATOR].astype(str))
    if not common:
        return None
    pooled = pd.concat([a.annotations[ANNOTATOR].astype(str), b.annotations[ANNOTATOR]
                        .astype(str)])
    counts = pooled[pooled.isin(common)].value_counts()
    return str(counts.index[0])


def _image_index(ds: Dataset) -> pd.DataFrame:
    im = ds.images[[IMAGE_ID, WIDTH, HEIGHT]].copy()
    im[WIDTH] = pd.to_numeric(im[WIDTH], errors="coerce").astype(float)
    im[HEIGHT] = pd.to_numeric(im[HEIGHT], errors="coerce").astype(float)
    return im


def _labels_drift(a: _Side, b: _Side, *, annotator, n_perm, seed, notes) -> dict:
    out = {"tests": [], "class_mix": _empty_class_mix(), "annotator_mix": pd.DataFrame(),
           "box_values": pd.DataFrame(columns=["side", "box_size", "box_aspect"])}
    who = _pick_annotator(a.ds, b.ds, annotator)
    anns = []
    for side, s in (("a", a), ("b", b)):
        df = s.ds.annotations
        if who is not None:
            df = df[df[ANNOTATOR].astype(str) == who]
        names = s.ds.category_names
        df = df.assign(cls=df[CATEGORY_ID].map(names).fillna(df[CATEGORY_ID].astype(str))
                       .astype(str), side=side)
        anns.append(df)
    if who is None and len(a.ds.annotations) and len(b.ds.annotations):
        notes.append(f"{a.name} and {b.name} have no annotator in common: every label of each "
                     "is compared.")
    elif who is not None and (len(a.ds.annotators) > 1 or len(b.ds.annotators) > 1):
        notes.append(f"Labels compared: annotator '{who}' (the one with most labels); the "
                     "annotator mix compares all of them.")
    n_img_a, n_img_b = a.ds.n_images, b.ds.n_images
    if n_img_a < MIN_SAMPLES or n_img_b < MIN_SAMPLES:
        out["reason"] = (f"too few images ({n_img_a} and {n_img_b}; each side needs "
                         f"{MIN_SAMPLES})")
        return out
    if not len(anns[0]) and not len(anns[1]):
        out["reason"] = "neither side has labels"
        return out
    # units = images, A's then B's; a capped sample of each for the permutation tests
    rng = np.random.default_rng(seed)
    ids = [a.ds.images[IMAGE_ID].to_numpy(np.int64), b.ds.images[IMAGE_ID].to_numpy(np.int64)]
    sampled = []
    for k, side_ids in enumerate(ids):
        if len(side_ids) > MAX_PERMUTATION_IMAGES:
            side_ids = np.sort(rng.choice(side_ids, MAX_PERMUTATION_IMAGES, replace=False))
            notes.append(f"Permutation tests of the labels use a random {MAX_PERMUTATION_IMAGES:,}"
                         f" of the {len(ids[k]):,} images of {(a, b)[k].name}.")
        sampled.append(side_ids)
    n_ua, n_ub = len(sampled[0]), len(sampled[1])
    in_a = np.r_[np.ones(n_ua, bool), np.zeros(n_ub, bool)]
    masks = _perm_masks(n_ua + n_ub, n_ua, n_perm, rng)
    p_method = f"{n_perm} permutations of whole images"

    def unit_of(side: int, image_ids: np.ndarray) -> np.ndarray:
        pos = pd.Index(sampled[side]).get_indexer(image_ids)
        return np.where(pos >= 0, pos + (n_ua if side else 0), -1)

    # ---- class mix
    classes = sorted(set(anns[0]["cls"]) | set(anns[1]["cls"]))
    cidx = {c: i for i, c in enumerate(classes)}
    K = len(classes)
    full_counts = []
    for side, df in enumerate(anns):
        pos = pd.Index(ids[side]).get_indexer(df[IMAGE_ID].to_numpy())
        keep = pos >= 0
        y = np.zeros((len(ids[side]), max(K, 1)))
        np.add.at(y, (pos[keep], df["cls"].map(cidx).to_numpy()[keep]), 1)
        full_counts.append(y)
    if K >= 2:
        y_units = np.vstack([full_counts[0][pd.Index(ids[0]).get_indexer(sampled[0])],
                             full_counts[1][pd.Index(ids[1]).get_indexer(sampled[1])]])
        chi2, dof, p_asym, p_perm, n_tot = _chi2_perm_test(y_units, in_a, masks)
        ca_all, cb_all = full_counts[0].sum(0), full_counts[1].sum(0)
        v_all = _cramers_v(ca_all, cb_all)
        out["class_mix"] = _class_mix_table(classes, full_counts)
        top = out["class_mix"].iloc[0] if len(out["class_mix"]) else None
        top_text = (f": {top['name']} {top['share_a']:.1%} → {top['share_b']:.1%} of the labels"
                    if top is not None else "")
        if np.isfinite(chi2):
            row = _test_row("labels", "class_mix", "class mix", "chi-square", chi2, p_perm,
                            p_method, "Cramér's V", v_all, v_all >= MIN_CRAMERS_V,
                            ca_all.sum(), cb_all.sum(),
                            f"class mix (Cramér's V {v_all:.2f}){top_text}")
            row["p_asymptotic"] = p_asym
            out["tests"].append(row)
            out["chi2_dof"] = dof
        # ---- class presence: which share of the images holds each class. Keeping only the
        # images that show a class barely moves its share of the *labels* when images hold
        # many objects (the others come along), but moves its share of the images a lot.
        pres = (y_units > 0).astype(np.float64)
        stat_p, p_pres, z_obs = _presence_perm_test(pres, in_a, masks)
        if np.isfinite(stat_p):
            ia_, ib_ = (full_counts[0] > 0).mean(0), (full_counts[1] > 0).mean(0)
            h = np.abs(2 * np.arcsin(np.sqrt(ib_)) - 2 * np.arcsin(np.sqrt(ia_)))
            j = int(np.argmax(h))
            out["tests"].append(_test_row(
                "labels", "class_presence", "class presence (images holding each class)",
                "sum of per-class chi-squares (2 x 2: holds the class, side)", stat_p, p_pres,
                p_method, "Cohen's h (largest)", float(h[j]), h[j] >= MIN_COHENS_H,
                len(full_counts[0]), len(full_counts[1]),
                f"images holding {classes[j]}: {ia_[j]:.0%} → {ib_[j]:.0%} (Cohen's h "
                f"{h[j]:.2f})"))
    elif K == 1:
        notes.append(f"Class mix not tested: one class ({classes[0]}) in A and B together.")
    # ---- objects per image (images are independent units: scipy's KS p-value)
    has_boxes = bool(anns[0][W].notna().any() or anns[1][W].notna().any())
    if has_boxes:
        per = [full_counts[s].sum(1) for s in (0, 1)]
        ks = _ks_2samp(per[0], per[1])
        wn = _wasserstein_norm(per[0], per[1])
        out["tests"].append(_test_row(
            "labels", "objects_per_image", "objects per image", "Kolmogorov-Smirnov",
            ks.statistic, ks.pvalue, "scipy ks_2samp", "Wasserstein / std(A)", wn,
            wn >= MIN_WASSERSTEIN_NORM, len(per[0]), len(per[1]),
            f"objects per image {per[0].mean():.1f} → {per[1].mean():.1f}"))
        # ---- box size and aspect (boxes cluster in images: image permutations)
        vals, units, sides = [], [], []
        for side, (s, df) in enumerate(zip((a, b), anns)):
            im = _image_index(s.ds).set_index(IMAGE_ID)
            bx = df[df[W].notna() & (df[W] > 0) & (df[H] > 0)]
            iw = im[WIDTH].reindex(bx[IMAGE_ID]).to_numpy(float)
            ih = im[HEIGHT].reindex(bx[IMAGE_ID]).to_numpy(float)
            w, h = bx[W].to_numpy(float), bx[H].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                size = np.sqrt(w * h) / np.sqrt(iw * ih)
            aspect = np.log2(w / h)
            vals.append(np.c_[size, aspect])
            units.append(unit_of(side, bx[IMAGE_ID].to_numpy()))
            sides.append(np.full(len(bx), "ab"[side]))
        v = np.vstack(vals) if vals else np.zeros((0, 2))
        u = np.concatenate(units)
        sd = np.concatenate(sides)
        out["box_values"] = pd.DataFrame({"side": sd, "box_size": v[:, 0],
                                          "box_aspect": np.exp2(v[:, 1])})
        for col, test_id, label, fmt in ((0, "box_size", "box size (side / image side)",
                                          "{:.3f}"),
                                         (1, "box_aspect", "box aspect (log2 w/h)", "{:.2f}")):
            ok = np.isfinite(v[:, col])
            full_a, full_b = v[ok & (sd == "a"), col], v[ok & (sd == "b"), col]
            tested = ok & (u >= 0)
            if len(full_a) < MIN_SAMPLES or len(full_b) < MIN_SAMPLES:
                notes.append(f"{label} not tested: fewer than {MIN_SAMPLES} boxes on a side.")
                continue
            d, p = _ks_perm_test(v[tested, col], u[tested], in_a, masks)
            wn = _wasserstein_norm(full_a, full_b)
            med = (np.median(full_a), np.median(full_b))
            if col == 1:
                med = tuple(np.exp2(m) for m in med)
            out["tests"].append(_test_row(
                "labels", test_id, label, "Kolmogorov-Smirnov", d, p, p_method,
                "Wasserstein / std(A)", wn, wn >= MIN_WASSERSTEIN_NORM, len(full_a),
                len(full_b), f"{label.split(' (')[0]}: median {fmt.format(med[0])} → "
                             f"{fmt.format(med[1])}"))
    # ---- annotator mix (every label, not only the compared annotator's)
    all_anns = [s.ds.annotations for s in (a, b)]
    who_all = sorted(set(all_anns[0][ANNOTATOR].astype(str)) | set(all_anns[1][ANNOTATOR]
                                                                     .astype(str)))
    shared = set(all_anns[0][ANNOTATOR].astype(str)) & set(all_anns[1][ANNOTATOR].astype(str))
    if len(who_all) >= 2 and not shared:
        notes.append(f"Annotator mix not tested: {a.name} and {b.name} have no annotator in "
                     "common.")
    elif len(who_all) >= 2:
        widx = {w_: i for i, w_ in enumerate(who_all)}
        ys = []
        for side, df in enumerate(all_anns):
            pos = pd.Index(sampled[side]).get_indexer(df[IMAGE_ID].to_numpy())
            keep = pos >= 0
            y = np.zeros((len(sampled[side]), len(who_all)))
            np.add.at(y, (pos[keep], df[ANNOTATOR].astype(str).map(widx).to_numpy()[keep]), 1)
            ys.append(y)
        counts = [df[ANNOTATOR].astype(str).value_counts() for df in all_anns]
        mix = pd.DataFrame({"annotator": who_all,
                            "labels_a": [int(counts[0].get(w_, 0)) for w_ in who_all],
                            "labels_b": [int(counts[1].get(w_, 0)) for w_ in who_all]})
        mix["share_a"] = mix["labels_a"] / max(mix["labels_a"].sum(), 1)
        mix["share_b"] = mix["labels_b"] / max(mix["labels_b"].sum(), 1)
        mix["change"] = mix["share_b"] - mix["share_a"]
        out["annotator_mix"] = mix
        chi2, _, p_asym, p_perm, _ = _chi2_perm_test(np.vstack(ys), in_a, masks)
        if np.isfinite(chi2):
            v_ = _cramers_v(mix["labels_a"].to_numpy(float), mix["labels_b"].to_numpy(float))
            top = mix.loc[mix["change"].abs().idxmax()]
            row = _test_row("labels", "annotator_mix", "annotator mix", "chi-square", chi2,
                            p_perm, p_method, "Cramér's V", v_, v_ >= MIN_CRAMERS_V,
                            mix["labels_a"].sum(), mix["labels_b"].sum(),
                            f"annotator mix (Cramér's V {v_:.2f}): {top['annotator']} "
                            f"{top['share_a']:.0%} → {top['share_b']:.0%} of the labels")
            row["p_asymptotic"] = p_asym
            out["tests"].append(row)
    if not out["tests"]:
        out["reason"] = "no label statistic could be tested (see the notes)"
    return out


def _cramers_v(ca: np.ndarray, cb: np.ndarray) -> float:
    keep = (ca + cb) > 0
    ca, cb = ca[keep], cb[keep]
    n = ca.sum() + cb.sum()
    if len(ca) < 2 or ca.sum() == 0 or cb.sum() == 0:
        return float("nan")
    return float(np.sqrt(_chi2_rows(ca, cb)[0] / n))


def _empty_class_mix() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
        ("name", object), ("count_a", "int64"), ("count_b", "int64"), ("share_a", float),
        ("share_b", float), ("change", float), ("ci_low", float), ("ci_high", float),
        ("p_value", float), ("p_adjusted", float), ("significant", bool),
        ("images_a", "int64"), ("images_b", "int64"), ("image_share_a", float),
        ("image_share_b", float))})


def _class_mix_table(classes, counts) -> pd.DataFrame:
    from scipy.stats import norm

    ra, va = _ratio_share(counts[0], counts[0].sum(1))
    rb, vb = _ratio_share(counts[1], counts[1].sum(1))
    change = rb - ra
    se = np.sqrt(va + vb)
    z = norm.ppf(0.975)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * norm.sf(np.abs(change) / se), np.where(change == 0, 1.0, 0.0))
    df = pd.DataFrame({"name": classes, "count_a": counts[0].sum(0).astype(np.int64),
                       "count_b": counts[1].sum(0).astype(np.int64), "share_a": ra,
                       "share_b": rb, "change": change, "ci_low": change - z * se,
                       "ci_high": change + z * se, "p_value": p,
                       "images_a": (counts[0] > 0).sum(0).astype(np.int64),
                       "images_b": (counts[1] > 0).sum(0).astype(np.int64)})
    df["image_share_a"] = df["images_a"] / max(len(counts[0]), 1)
    df["image_share_b"] = df["images_b"] / max(len(counts[1]), 1)
    df["p_adjusted"] = holm(df["p_value"])
    df["significant"] = df["p_adjusted"] < DEFAULT_ALPHA
    return df.reindex(df["change"].abs().sort_values(ascending=False).index) \
        .reset_index(drop=True)[list(_empty_class_mix().columns)]


# ================================================================== images
def _feature_values(table: pd.DataFrame) -> pd.DataFrame:
    ok = table[table["error"].isna()] if "error" in table.columns else table
    out = pd.DataFrame({IMAGE_ID: ok[IMAGE_ID].to_numpy(np.int64)})
    for f in IMAGE_FEATURES:
        if f == "sharpness" and "blur" in ok.columns:
            col = pd.to_numeric(ok["blur"], errors="coerce").astype(float)
            out[f] = np.log10(1.0 + col.clip(lower=0).to_numpy())
        elif f in ok.columns:
            out[f] = pd.to_numeric(ok[f], errors="coerce").astype(float).to_numpy()
        else:
            out[f] = np.nan
    return out


def _ks_2samp(x, y):
    """scipy's two-sample KS test. Where the exact distribution cannot be computed (large
    samples with ties) scipy falls back to the asymptotic p-value with a RuntimeWarning; the
    fallback is the right answer there, so the warning is not shown to the user."""
    import warnings

    from scipy.stats import ks_2samp

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Exact calculation unsuccessful.*",
                                category=RuntimeWarning)
        return ks_2samp(x, y)


def _images_drift(a: _Side, b: _Side, *, notes) -> dict:
    empty = pd.DataFrame(columns=["feature", "label", "test", "statistic", "p_value", "psi",
                                  "psi_noise", "wasserstein_norm", "mean_a", "mean_b",
                                  "median_a", "median_b", "n_a", "n_b"])
    out = {"tests": [], "table": empty, "values": pd.DataFrame()}
    if a.stats is None or b.stats is None:
        out["reason"] = "no image statistics (run the pixel pass: compute_image_stats)"
        return out
    va, vb = a.features, b.features
    out["values"] = pd.concat([va.assign(side="a"), vb.assign(side="b")], ignore_index=True)
    rows = []
    for f, label in IMAGE_FEATURES.items():
        xa, xb = _finite(va[f]), _finite(vb[f])
        if len(xa) < MIN_SAMPLES or len(xb) < MIN_SAMPLES:
            continue
        ks = _ks_2samp(xa, xb)
        psi, k = _psi(xa, xb)
        wn = _wasserstein_norm(xa, xb)
        rows.append(dict(feature=f, label=label, test="Kolmogorov-Smirnov",
                         statistic=float(ks.statistic), p_value=float(ks.pvalue), psi=psi,
                         psi_noise=psi_noise(k, len(xa), len(xb)),
                         wasserstein_norm=wn, mean_a=float(xa.mean()), mean_b=float(xb.mean()),
                         median_a=float(np.median(xa)), median_b=float(np.median(xb)),
                         n_a=len(xa), n_b=len(xb)))
        out["tests"].append(_test_row(
            "images", f, label, "Kolmogorov-Smirnov", ks.statistic, ks.pvalue,
            "scipy ks_2samp", "Wasserstein / std(A)", wn, wn >= MIN_WASSERSTEIN_NORM, len(xa),
            len(xb), f"{label.split(' (')[0]} {_fmt(np.median(xa))} → {_fmt(np.median(xb))} "
                     f"(median, PSI {psi:.2f})"))
    if not rows:
        out["reason"] = (f"fewer than {MIN_SAMPLES} readable images on a side "
                         f"({len(va)} and {len(vb)})")
        return out
    out["table"] = pd.DataFrame(rows)
    return out


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


# ================================================================== embeddings
def _embedding_drift(a: _Side, b: _Side, *, n_perm, n_clusters, seed, notes, alpha) -> dict:
    out = {"tests": [], "info": {}, "clusters": _empty_clusters()}
    if a.emb is None or b.emb is None:
        out["reason"] = "no embeddings (embed both datasets with the same model)"
        return out
    if a.emb.model_id != b.emb.model_id:
        raise ValueError(f"the embeddings of A and B come from different models "
                         f"({a.emb.model_id} and {b.emb.model_id}); embed both with one model")
    xa, xb = a.emb.vectors, b.emb.vectors
    if len(xa) < MIN_SAMPLES or len(xb) < MIN_SAMPLES:
        out["reason"] = (f"too few embedded images ({len(xa)} and {len(xb)}; each side needs "
                         f"{MIN_SAMPLES})")
        return out
    for s in (a, b):
        missing = s.ds.n_images - len(s.emb) - len(s.emb.failed)
        if missing > 0:
            notes.append(f"{missing:,} images of {s.name} are not embedded yet: the embedding "
                         "signals describe the embedded ones.")
    mmd = mmd_permutation_test(xa, xb, n_permutations=n_perm, seed=seed)
    clusters, lab, space = _clusters(a, b, n_clusters=n_clusters, seed=seed, alpha=alpha)
    tvd = float(0.5 * clusters["change"].abs().sum()) if len(clusters) else 0.0
    first = clusters.iloc[0] if len(clusters) else None
    where = (f"cluster {int(first['cluster'])}: {first['share_a']:.0%} → "
             f"{first['share_b']:.0%}" if first is not None else "")
    out["tests"].append(_test_row(
        "embeddings", "mmd", "image embeddings (MMD)",
        f"MMD (Gaussian kernels, {len(MMD_BANDWIDTH_SCALES)} bandwidths)",
        mmd["statistic"], mmd["p_value"], mmd["p_method"], "cluster share TVD", tvd,
        tvd >= MIN_CLUSTER_TVD, len(xa), len(xb),
        f"MMD² {mmd['mmd2']:.3g} (permutation p {mmd['p_value']:.2g})"))
    # the clusters were fitted on the pooled images without knowing their side, so permuting
    # the sides over fixed clusters gives an exact test; its statistic, the largest z-score
    # of a cluster's share change, sees one new or vanished cluster that an omnibus test
    # spreads over all of them
    k = int(lab.max()) + 1
    onehot = np.zeros((len(lab), k))
    onehot[np.arange(len(lab)), lab] = 1
    masks = _perm_masks(len(lab), len(xa), n_perm, np.random.default_rng(seed + 1))
    z_obs, p_perm = _max_share_z_test(onehot, len(xa), masks)
    if np.isfinite(z_obs):
        out["tests"].append(_test_row(
            "embeddings", "clusters", "cluster shares", "largest cluster-share change (|z|)",
            z_obs, p_perm, f"{n_perm} permutations of images", "cluster share TVD", tvd,
            tvd >= MIN_CLUSTER_TVD, len(xa), len(xb), f"{where} (TVD {tvd:.2f})"))
    # the classifier two-sample test: a second overall test that reads as an effect size
    # (how well a model tells B from A: the AUC with its interval)
    c2 = classifier_two_sample_test(xa, xb, seed=seed)
    out["tests"].append(_test_row(
        "embeddings", "classifier", "image embeddings (classifier AUC)",
        "classifier two-sample test (logistic regression, cross-fitted)", c2["auc"],
        c2["p_value"], "Mann-Whitney on held-out scores (2 halves, Bonferroni)",
        "AUC", c2["auc"], c2["auc"] >= MIN_C2ST_AUC, len(xa), len(xb),
        f"a classifier tells {b.name} from {a.name} with AUC {c2['auc']:.2f} "
        f"(95% {c2['ci_low']:.2f}-{c2['ci_high']:.2f})"))
    out["info"] = {**mmd, "classifier": c2, "model_id": a.emb.model_id, "cluster_tvd": tvd,
                   "n_clusters": int(len(clusters)), "cluster_space": space}
    out["clusters"] = clusters
    return out


def classifier_two_sample_test(x, y, *, max_per_side: int = C2ST_MAX_PER_SIDE,
                               dims: int = C2ST_DIMS, seed: int = SEED) -> dict:
    """The classifier two-sample test (Lopez-Paz & Oquab 2017; Friedman 2003): can a
    classifier tell ``x`` (A) from ``y`` (B)? A logistic regression (scikit-learn, L2,
    standardised inputs) on the pooled rows projected on their first ``dims`` principal
    components (fitted without the sides), cross-fitted over two stratified halves: fitted
    on one, it scores the other, and the other way round.

    Each held-out half gives a ROC AUC (0.5 = indistinguishable, 1 = fully separable) with
    a one-sided Mann-Whitney p-value of "AUC > 0.5"; that p-value is exact given the
    fitted model, since the held-out rows played no part in it. The reported AUC is the
    mean of the two, its 95 % interval DeLong's, as wide as one half's (the two halves'
    AUCs are not independent), and the p-value 2 x the smaller one (Bonferroni: valid
    whatever their dependence). Pooling K-fold out-of-fold scores into one AUC would give
    more power but no valid p-value: its spread on random halves of BCCD is 1.4 x the
    Mann-Whitney one (0.041 against 0.030, 100 halves), so a normal test on it alarms
    too often. At most ``max_per_side`` rows per side are used (a seeded sample). Returns
    {auc, ci_low, ci_high, p_value, auc_folds, n_a, n_b, dims, method}."""
    from scipy.stats import mannwhitneyu
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, d) arrays of one width, got {x.shape} and "
                         f"{y.shape}")
    if min(len(x), len(y)) < 4:
        raise ValueError("the classifier test needs at least 4 rows per side (2 per half), "
                         f"got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    if len(x) > max_per_side:
        x = x[np.sort(rng.choice(len(x), max_per_side, replace=False))]
    if len(y) > max_per_side:
        y = y[np.sort(rng.choice(len(y), max_per_side, replace=False))]
    z = np.vstack([x, y]).astype(np.float64)
    side = np.r_[np.zeros(len(x), np.int64), np.ones(len(y), np.int64)]
    k = int(min(dims, z.shape[1], len(z) - 1))
    if k < z.shape[1]:
        z = PCA(n_components=k, random_state=seed).fit_transform(z)
    cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    aucs, ses, ps = [], [], []
    for fit, held in cv.split(z, side):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C2ST_C, max_iter=1000))
        model.fit(z[fit], side[fit])
        sc = model.decision_function(z[held])
        pos, neg = sc[side[held] == 1], sc[side[held] == 0]
        auc, se = _auc_delong(pos, neg)
        aucs.append(auc)
        ses.append(se)
        ps.append(float(mannwhitneyu(pos, neg, alternative="greater").pvalue))
    from scipy.stats import norm

    auc, half = float(np.mean(aucs)), norm.ppf(0.975) * float(np.mean(ses))
    return {"auc": auc, "ci_low": float(max(0.0, auc - half)),
            "ci_high": float(min(1.0, auc + half)),
            "p_value": float(min(1.0, 2 * min(ps))), "auc_folds": [float(v) for v in aucs],
            "n_a": int(len(x)), "n_b": int(len(y)), "dims": k,
            "method": f"logistic regression on {k} principal components, cross-fitted over "
                      "two halves; Mann-Whitney on the held-out scores, Bonferroni"}


def _auc_delong(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """ROC AUC of scores ``pos`` (should be higher) against ``neg`` (ties count one half)
    and its standard error by DeLong et al. (1988): the variances of the placement values."""
    from scipy.stats import rankdata

    m, n = len(pos), len(neg)
    r = rankdata(np.r_[pos, neg])
    auc = float((r[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (r[:m] - rankdata(pos)) / n  # per positive: share of negatives below it
    v01 = 1.0 - (r[m:] - rankdata(neg)) / m  # per negative: share of positives above it
    se = math.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n) if min(m, n) > 1 else 0.0
    return auc, se


def mmd_permutation_test(x, y, *, n_permutations: int = DEFAULT_PERMUTATIONS,
                         bandwidth: float | None = None,
                         scales: tuple[float, ...] = MMD_BANDWIDTH_SCALES, seed: int = SEED,
                         exact_max: int = MMD_EXACT_MAX,
                         n_features: int = RFF_FEATURES) -> dict:
    """MMD two-sample test of ``x`` and ``y`` (rows = images) with Gaussian kernels at several
    bandwidths: ``scales`` x ``bandwidth`` (default: the median heuristic). The statistic is
    the largest of the unbiased MMD² estimates, each divided by the standard deviation of its
    own permutation distribution; its p-value comes from the same permutations, so trying
    several bandwidths costs no false alarms (an aggregated test in the spirit of Schrab et
    al. 2023). A small bandwidth sees a new 10 % of B that the median one smooths away.

    Exact kernel sums up to ``exact_max`` pooled rows; above, random Fourier features
    (``n_features`` per bandwidth): the MMD under the approximate kernel, whose permutation
    p-value is still exact for that statistic. Returns {statistic, p_value, mmd2 (at the
    median bandwidth), mmd2_by_scale, best_scale, bandwidth, method, p_method,
    n_permutations}."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, d) arrays of one width, got {x.shape} and "
                         f"{y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs at least 2 rows per sample, got {len(x)} and {len(y)}")
    scales = tuple(float(c) for c in scales)
    if not scales or any(c <= 0 for c in scales):
        raise ValueError(f"scales must be positive bandwidth factors, got {scales!r}")
    rng = np.random.default_rng(seed)
    sigma = float(bandwidth) if bandwidth else median_bandwidth(x, y, seed=seed)
    m, n = len(x), len(y)
    N = m + n
    masks = _perm_masks(N, m, n_permutations, rng)
    if N <= exact_max:
        z = np.vstack([x, y]).astype(np.float64)
        sq = _sq_dists(z, z)
        obs, null = [], []
        for c in scales:
            o, nl = _mmd_from_kernel(np.exp(-sq / (2 * (c * sigma) ** 2)), m, masks)
            obs.append(o)
            null.append(nl)
        del sq
        method = "exact"
    else:
        obs, null = _mmd_rff(x, y, [c * sigma for c in scales], masks, n_features, rng)
        method = f"random Fourier features ({n_features} per bandwidth)"
    obs, null = np.asarray(obs, float), np.asarray(null, float)  # (J,), (J, P)
    sd = np.maximum(null.std(axis=1), 1e-15)
    z_obs, z_null = obs / sd, (null / sd[:, None]).max(axis=0)
    stat = float(z_obs.max())
    best = int(z_obs.argmax())
    k_med = scales.index(1.0) if 1.0 in scales else best
    return {"statistic": stat, "p_value": _perm_p(stat, z_null), "mmd2": float(obs[k_med]),
            "mmd2_by_scale": {f"{c:g}": float(o) for c, o in zip(scales, obs)},
            "best_scale": scales[best], "bandwidth": sigma, "method": method,
            "p_method": f"{n_permutations} permutations of images",
            "n_permutations": int(n_permutations)}


def _mmd_terms(s_aa, s_bb, s_ab, m, n):
    return s_aa / (m * (m - 1)) + s_bb / (n * (n - 1)) - 2 * s_ab / (m * n)


def _mmd_from_kernel(kern: np.ndarray, m: int, masks: np.ndarray) -> tuple[float, np.ndarray]:
    """Unbiased MMD² of the first m rows against the rest, and of every permutation (rows of
    ``masks`` mark A), from the pooled kernel matrix."""
    N = len(kern)
    n = N - m
    diag = np.diag(kern)
    total = kern.sum()

    def stats(ind: np.ndarray) -> np.ndarray:
        ind = ind.astype(np.float64)
        ki = ind @ kern  # (p, N): for each unit, kernel sum with A
        s_aa_full = (ki * ind).sum(1)
        row_a = ki.sum(1)  # sum over A x all
        s_ab = row_a - s_aa_full
        s_bb_full = total - s_aa_full - 2 * s_ab
        s_aa = s_aa_full - ind @ diag
        s_bb = s_bb_full - (1 - ind) @ diag
        return _mmd_terms(s_aa, s_bb, s_ab, m, n)

    obs = np.zeros((1, N), bool)
    obs[0, :m] = True
    null = np.concatenate([stats(masks[s:s + 64]) for s in range(0, len(masks), 64)]) \
        if len(masks) else np.zeros(0)
    return float(stats(obs)[0]), null


def _mmd_rff(x, y, sigmas, masks, D, rng) -> tuple[list, list]:
    """Unbiased MMD² under random-Fourier-feature kernels (one block of D features per
    bandwidth in ``sigmas``), observed and per permutation; x and y are read RFF_ROW_CHUNK
    rows at a time, so memory is the masks plus one chunk of features."""
    m, n = len(x), len(y)
    d = x.shape[1]
    J = len(sigmas)
    w = np.hstack([rng.standard_normal((d, D)) / s for s in sigmas]).astype(np.float32)
    b = rng.uniform(0, 2 * np.pi, J * D).astype(np.float32)
    scale = np.float32(np.sqrt(2.0 / D))
    P = len(masks)
    perm_sum = np.zeros((P, J * D), np.float64)
    perm_q = np.zeros((P, J), np.float64)
    tot = np.zeros(J * D, np.float64)
    tot_q = np.zeros(J, np.float64)
    obs_sum = np.zeros(J * D, np.float64)
    obs_q = np.zeros(J, np.float64)
    N = m + n
    for s in range(0, N, RFF_ROW_CHUNK):
        e = min(N, s + RFF_ROW_CHUNK)
        rows = np.vstack([x[s:min(e, m)], y[max(s - m, 0):max(e - m, 0)]])
        z = rows @ w
        z += b
        np.cos(z, out=z)
        z *= scale  # (chunk, J * D) float32
        q = np.einsum("ijk,ijk->ij", z.reshape(len(z), J, D), z.reshape(len(z), J, D),
                      dtype=np.float64)
        tot += z.sum(0, dtype=np.float64)
        tot_q += q.sum(0)
        na = max(0, min(e, m) - s)
        obs_sum += z[:na].sum(0, dtype=np.float64)
        obs_q += q[:na].sum(0)
        ind = masks[:, s:e].astype(np.float32)
        perm_sum += ind @ z  # float32 products per chunk, float64 sums over chunks
        perm_q += ind @ q.astype(np.float32)

    def stat(sa, qa):  # sa (..., J*D), qa (..., J)
        sa = sa.reshape(*sa.shape[:-1], J, D)
        sb = tot.reshape(J, D) - sa
        qb = tot_q - qa
        s_aa = (sa * sa).sum(-1) - qa
        s_bb = (sb * sb).sum(-1) - qb
        s_ab = (sa * sb).sum(-1)
        return _mmd_terms(s_aa, s_bb, s_ab, m, n)

    o = stat(obs_sum, obs_q)  # (J,)
    nl = stat(perm_sum, perm_q)  # (P, J)
    return list(o), [nl[:, j] for j in range(J)]


def _empty_clusters() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
        ("cluster", "int64"), ("n_a", "int64"), ("n_b", "int64"), ("share_a", float),
        ("share_b", float), ("change", float), ("z", float), ("p_value", float),
        ("p_adjusted", float), ("significant", bool), ("direction", object), ("rank", "int64"),
        ("examples_a", object), ("examples_b", object))})


def default_n_clusters(n: int) -> int:
    """About sqrt(n / 4) clusters for n pooled images, between 4 and 24 (fewer for tiny n)."""
    k = int(round(math.sqrt(n / 4)))
    return int(max(2, min(max(MIN_CLUSTERS, k), MAX_CLUSTERS, n // 5)))


def _kmeans(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(label, squared distance to its centre) of each row: scikit-learn's k-means (k-means++,
    4 starts) up to KMEANS_SKLEARN_MAX rows, faiss's above (it trains on a sample of 256 rows
    per centre, so 200,000 x 512 takes seconds)."""
    if len(x) <= KMEANS_SKLEARN_MAX:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=4, max_iter=100, random_state=seed).fit(x)
        d = ((x - km.cluster_centers_[km.labels_]) ** 2).sum(1)
        return km.labels_.astype(np.int64), d
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=KMEANS_ITERATIONS, seed=seed, verbose=False,
                      max_points_per_centroid=256, min_points_per_centroid=1)
    km.train(x)
    dist, lab = km.index.search(x, 1)
    return lab[:, 0].astype(np.int64), dist[:, 0]


def _cluster_space(a: _Side, b: _Side) -> tuple[np.ndarray, str]:
    """The pooled points clustered (A's embedded images, then B's) and what they are.

    The embeddings, centred and scaled to a mean squared norm of 1; with the pixel statistics
    of both sides, beside them the robust z-scores of COVERAGE_FEATURES (and the log image
    size) around the *pooled* median and MAD (floored by COVERAGE_MIN_SCALE), soft-clipped at
    CLUSTER_PIXEL_CLIP with tanh and scaled to a mean squared norm of 1 too: the two blocks
    weigh the same. An embedder trained to ignore lighting files a darker tenth of B with
    its scenes; the pixel block gives it a cluster of its own (measured in docs/drift.md).
    The clip keeps a few extreme pictures from taking the whole pixel block's scale. Nothing
    here knows an image's side, so permuting sides over these clusters stays exact."""
    xa, xb = a.emb.vectors, b.emb.vectors
    e = np.vstack([xa, xb]).astype(np.float64)
    e -= e.mean(0)
    e /= max(float(np.sqrt((e * e).sum(1).mean())), 1e-12)
    if a.stats is None or b.stats is None:
        return np.ascontiguousarray(e, dtype=np.float32), "embeddings"
    cols = list(COVERAGE_FEATURES) + ["log_size"]
    blocks = []
    for s in (a, b):
        f = s.features.assign(log_size=lambda t: np.log(np.sqrt(t["width"] * t["height"])))
        f = f.drop_duplicates(IMAGE_ID).set_index(IMAGE_ID).reindex(
            np.asarray(s.emb.image_ids, np.int64))
        blocks.append(f[cols].to_numpy(float))
    x = np.vstack(blocks)
    med = np.nanmedian(x, axis=0)
    spread = 1.4826 * np.nanmedian(np.abs(x - med), axis=0)
    scale = np.maximum(np.nan_to_num(spread), [COVERAGE_MIN_SCALE[c] for c in cols])
    z = np.nan_to_num((x - med) / scale)  # a statistic not measured: at the median
    z = CLUSTER_PIXEL_CLIP * np.tanh(z / CLUSTER_PIXEL_CLIP)
    norm = float(np.sqrt((z * z).sum(1).mean()))
    if norm <= 1e-12:  # every picture alike in its pixels: the embeddings alone
        return np.ascontiguousarray(e, dtype=np.float32), "embeddings"
    return (np.ascontiguousarray(np.hstack([e, z / norm]), dtype=np.float32),
            "embeddings and pixel statistics")


def _clusters(a: _Side, b: _Side, *, n_clusters, seed, alpha) -> pd.DataFrame:
    from scipy.stats import fisher_exact

    xa, xb = a.emb.vectors, b.emb.vectors
    pooled, space = _cluster_space(a, b)
    n = len(pooled)
    k = min(n_clusters or default_n_clusters(n), max(2, n // 2))
    lab, dist = _kmeans(pooled, k, seed)
    la, lb = lab[:len(xa)], lab[len(xa):]
    ca = np.bincount(la, minlength=k)
    cb = np.bincount(lb, minlength=k)
    m_, n_ = len(xa), len(xb)
    rows = []
    for c in range(k):
        if ca[c] + cb[c] == 0:
            continue
        p = fisher_exact([[cb[c], len(xb) - cb[c]], [ca[c], len(xa) - ca[c]]])[1]
        pool = (ca[c] + cb[c]) / (m_ + n_)
        se = math.sqrt(pool * (1 - pool) * (1 / m_ + 1 / n_))
        z = (cb[c] / n_ - ca[c] / m_) / se if se > 0 else 0.0
        ex = []
        for side_lab, side_ids, off in ((la, a.emb.image_ids, 0), (lb, b.emb.image_ids,
                                                                   len(xa))):
            members = np.flatnonzero(side_lab == c)
            order = members[np.argsort(dist[off + members], kind="stable")][:N_EXAMPLES]
            ex.append(tuple(int(i) for i in side_ids[order]))
        rows.append(dict(cluster=c + 1, n_a=int(ca[c]), n_b=int(cb[c]),
                         share_a=ca[c] / len(xa), share_b=cb[c] / len(xb), z=float(z),
                         p_value=float(p), examples_a=ex[0], examples_b=ex[1]))
    df = pd.DataFrame(rows)
    df["change"] = df["share_b"] - df["share_a"]
    df["p_adjusted"] = holm(df["p_value"])
    df["significant"] = df["p_adjusted"] < alpha
    df["direction"] = np.where(df["change"] > 0, f"more in {b.name}",
                               np.where(df["change"] < 0, f"less in {b.name}", "same"))
    # most *significant* change first: |z| of the two-proportion test (the statistic of the
    # max-|z| test too), so a cluster going 0 % -> 10 % outranks a large one drifting by
    # noise from 40 % to 45 %; the raw share change breaks ties
    order = np.lexsort((-df["change"].abs().to_numpy(), -df["z"].abs().to_numpy()))
    df = df.iloc[order]
    df["rank"] = np.arange(1, len(df) + 1)
    cols = list(_empty_clusters().columns)
    # renumber clusters by rank so that "cluster 1" is the most changed one everywhere
    new_number = dict(zip(df["cluster"], df["rank"]))
    df["cluster"] = df["rank"]
    lab = np.array([new_number.get(c + 1, 0) for c in range(k)])[lab] - 1
    return df[cols].reset_index(drop=True), lab, space


# ================================================================== coverage
COVERAGE_FEATURES = ("brightness", "contrast", "sharpness", "entropy", "colorfulness",
                     "dark_share", "bright_share")
# The smallest spread a pixel statistic is measured in (its robust z-score divides by at
# least this): a statistic constant in A (no dark pixels at all) must not make a B image with
# 0.1 % dark pixels infinitely far. About the smallest difference a person would notice.
COVERAGE_MIN_SCALE = {"brightness": 2.0, "contrast": 2.0, "sharpness": 0.05, "entropy": 0.05,
                      "colorfulness": 2.0, "dark_share": 0.01, "bright_share": 0.01,
                      "log_size": 0.05}
COVERAGE_SPACES = ("embeddings", "image statistics")
# Clusters are fitted on the embeddings beside the pixel statistics' robust z-scores,
# soft-clipped at this many MADs (tanh): see _cluster_space.
CLUSTER_PIXEL_CLIP = 3.0


def _coverage_spaces(a: _Side, b: _Side) -> tuple[list, list[str]]:
    """([(space, vectors of A, ids of A, vectors of B, ids of B)], reasons a space is
    missing). Embeddings see new kinds of scenes; robust z-scores of the pixel statistics
    see darker, blurrier, over-exposed or differently sized pictures that an embedding
    model trained to ignore lighting files with the rest."""
    spaces, why = [], []
    if a.emb is not None and b.emb is not None and len(a.emb) >= MIN_SAMPLES \
            and len(b.emb) >= 1:
        spaces.append(("embeddings", a.emb.vectors, a.emb.image_ids, b.emb.vectors,
                       b.emb.image_ids))
    else:
        why.append("embeddings: none for both sides")
    if a.stats is None or b.stats is None:
        why.append("image statistics: not computed")
        return spaces, why
    fa, fb = a.features, b.features
    cols = [c for c in COVERAGE_FEATURES if fa[c].notna().any()]
    fa = fa.assign(log_size=np.log(np.sqrt(fa["width"] * fa["height"])))
    fb = fb.assign(log_size=np.log(np.sqrt(fb["width"] * fb["height"])))
    if fa["log_size"].notna().all() and fb["log_size"].notna().all():
        cols.append("log_size")  # a new resolution is a new kind of picture
    fa, fb = fa.dropna(subset=cols), fb.dropna(subset=cols)
    if len(fa) < MIN_SAMPLES:
        why.append(f"image statistics: fewer than {MIN_SAMPLES} readable images in {a.name} "
                   f"({len(fa)})")
    elif len(fb) < 1:
        why.append(f"image statistics: no readable image in {b.name}")
    else:
        xa, xb = fa[cols].to_numpy(float), fb[cols].to_numpy(float)
        med = np.median(xa, axis=0)
        spread = 1.4826 * np.median(np.abs(xa - med), axis=0)
        scale = np.maximum(spread, [COVERAGE_MIN_SCALE[c] for c in cols])
        spaces.append(("image statistics", (xa - med) / scale, fa[IMAGE_ID].to_numpy(),
                       (xb - med) / scale, fb[IMAGE_ID].to_numpy()))
    return spaces, why


def _self_nn(x: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest other row."""
    from qa.outliers import nearest_neighbors

    if float(len(x)) ** 2 <= NUMPY_NN_MAX_PAIRS:
        sq = _sq_dists(np.asarray(x, np.float64), np.asarray(x, np.float64))
        np.fill_diagonal(sq, np.inf)
        return np.sqrt(sq.min(1))
    return nearest_neighbors(x, 1)[0][:, 0].astype(float)


def _nearest_in(ref: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index into ref) of each query row's nearest ref row: exact (faiss flat)
    when ref x query is small, else an IVF index over a PCA projection with exact re-ranking
    of its candidates (as qa.outliers searches one set; a missed neighbour can only
    overestimate a distance)."""
    import faiss

    from qa.outliers import IVF_DIM, IVF_KMEANS_ITERATIONS, NPROBE, PCA_TRAIN_ROWS

    ref = np.ascontiguousarray(ref, dtype=np.float32)
    query = np.ascontiguousarray(query, dtype=np.float32)
    n, d = ref.shape
    if float(n) * len(query) <= NUMPY_NN_MAX_PAIRS:  # small: one BLAS product, no threads
        sq = _sq_dists(query.astype(np.float64), ref.astype(np.float64))
        j = sq.argmin(1)
        return np.sqrt(sq[np.arange(len(query)), j]), j
    if float(n) * len(query) <= EXACT_NN_MAX_PAIRS or n < 2000:
        index = faiss.IndexFlatL2(d)
        index.add(ref)
        dist, idx = index.search(query, 1)
        return np.sqrt(np.maximum(dist[:, 0], 0)), idx[:, 0]
    rng = np.random.default_rng(SEED)
    xr, xq = ref, query
    if d > IVF_DIM:
        pca = faiss.PCAMatrix(d, IVF_DIM)
        pca.train(ref[rng.choice(n, size=min(n, PCA_TRAIN_ROWS), replace=False)])
        xr, xq = pca.apply(ref), pca.apply(query)
    nlist = max(1, min(int(2 * np.sqrt(n)), n // 39))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(xr.shape[1]), xr.shape[1], nlist)
    index.cp.seed = SEED
    index.cp.niter = IVF_KMEANS_ITERATIONS
    index.train(xr[rng.choice(n, size=min(n, nlist * 39), replace=False)])
    index.nprobe = NPROBE
    index.add(xr)
    _, cand = index.search(np.ascontiguousarray(xq), IVF_CANDIDATES)
    best_d = np.full(len(query), np.inf, np.float32)
    best_i = np.full(len(query), -1, np.int64)
    for s in range(0, len(query), 4096):
        c = cand[s:s + 4096]
        v = ref[np.maximum(c, 0)]
        dd = ((query[s:s + 4096, None, :] - v) ** 2).sum(-1)
        dd = np.where(c >= 0, dd, np.inf)
        j = dd.argmin(1)
        best_d[s:s + 4096] = dd[np.arange(len(c)), j]
        best_i[s:s + 4096] = c[np.arange(len(c)), j]
    return np.sqrt(np.maximum(best_d, 0)), best_i


def _empty_coverage() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
        (IMAGE_ID, "int64"), (FILE_NAME, object), ("space", object), ("distance", float),
        ("fence", float), ("excess", float), ("nearest_a", "int64"), ("nearest_file_a", object),
        ("is_uncovered", bool), ("rank", "int64"))})


def _coverage(a: _Side, b: _Side, *, notes) -> dict:
    """Per space: A's own nearest-neighbour distances give Tukey's fence; each image of B is
    uncovered when its distance to the nearest image of A is beyond it. A one-sided Fisher
    test per space asks whether more of B than of A lies beyond the fence. The table keeps,
    per image of B, the space where it is farthest beyond (distance / fence)."""
    from scipy.stats import fisher_exact

    from qa.outliers import iqr_fence

    out = {"tests": [], "table": _empty_coverage(), "summary": pd.DataFrame(
        columns=["space", "fence", "share_a", "n_uncovered", "share_b", "p_value"])}
    spaces, why = _coverage_spaces(a, b)
    if not spaces:
        out["reason"] = "; ".join(why)
        return out
    names_a = dict(zip(a.ds.images[IMAGE_ID], a.ds.images[FILE_NAME].astype(str)))
    names_b = dict(zip(b.ds.images[IMAGE_ID], b.ds.images[FILE_NAME].astype(str)))
    frames, summary, beyond_a = [], [], set()
    for name, xa, ids_a, xb, ids_b in spaces:
        d_self = _self_nn(xa)
        fence = iqr_fence(d_self)
        d_b, j = _nearest_in(xa, xb)
        near = np.asarray(ids_a)[np.maximum(j, 0)]
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = d_b / fence if fence > 0 else np.where(d_b > 0, np.inf, 1.0)
        frames.append(pd.DataFrame({IMAGE_ID: np.asarray(ids_b, np.int64), "space": name,
                                    "distance": d_b.astype(float), "fence": float(fence),
                                    "excess": excess, "nearest_a": near.astype(np.int64)}))
        n_ua, n_ub = int((d_self > fence).sum()), int((d_b > fence).sum())
        beyond_a |= set(np.asarray(ids_a)[d_self > fence].tolist())
        share_a, share_b = n_ua / len(xa), n_ub / len(xb)
        p = fisher_exact([[n_ub, len(xb) - n_ub], [n_ua, len(xa) - n_ua]],
                         alternative="greater")[1]
        summary.append(dict(space=name, fence=float(fence), share_a=share_a, n_uncovered=n_ub,
                            share_b=share_b, p_value=float(p)))
        key = "embeddings" if name == "embeddings" else "pixels"
        out["tests"].append(_test_row(
            "coverage", f"coverage_{key}", f"coverage ({name})", "Fisher exact (one-sided)",
            share_b, p, "scipy fisher_exact", "excess share beyond A's fence",
            share_b - share_a, share_b - share_a >= MIN_COVERAGE_EXCESS, len(xa), len(xb),
            f"{n_ub:,} images of {b.name} ({share_b:.0%}) beyond {a.name}'s nearest-neighbour "
            f"fence in {name} ({a.name}'s own: {share_a:.0%})"))
    every = pd.concat(frames, ignore_index=True)
    worst = every.loc[every.groupby(IMAGE_ID)["excess"].idxmax()].copy()
    worst[FILE_NAME] = [names_b.get(int(i), "") for i in worst[IMAGE_ID]]
    worst["nearest_file_a"] = [names_a.get(int(i), "") for i in worst["nearest_a"]]
    worst["is_uncovered"] = worst["excess"] > 1.0
    worst["rank"] = worst["excess"].rank(ascending=False, method="first").astype(np.int64)
    out["table"] = worst.sort_values("rank")[list(_empty_coverage().columns)] \
        .reset_index(drop=True)
    out["summary"] = pd.DataFrame(summary)
    n_a = len(set().union(*[set(np.asarray(sp[2]).tolist()) for sp in spaces]))
    out["share_a"] = len(beyond_a) / max(n_a, 1)
    return out


# ================================================================== versions
def _file_status(a: _Side, b: _Side) -> pd.DataFrame:
    ia = a.ds.images[[IMAGE_ID, FILE_NAME]].astype({FILE_NAME: str})
    ib = b.ds.images[[IMAGE_ID, FILE_NAME]].astype({FILE_NAME: str})
    sha = {}
    for side, s in (("a", a), ("b", b)):
        if s.stats is not None and "sha256" in s.stats.columns:
            sha[side] = dict(zip(s.stats[IMAGE_ID], s.stats["sha256"]))
    ia = ia.assign(sha_a=ia[IMAGE_ID].map(sha.get("a", {})))
    ib = ib.assign(sha_b=ib[IMAGE_ID].map(sha.get("b", {})))
    m = ia.rename(columns={IMAGE_ID: "image_id_a"}).merge(
        ib.rename(columns={IMAGE_ID: "image_id_b"}), on=FILE_NAME, how="outer")
    both = m["image_id_a"].notna() & m["image_id_b"].notna()
    known = m["sha_a"].notna() & m["sha_b"].notna()
    status = np.where(both, np.where(~known, "present in both", np.where(
        m["sha_a"] == m["sha_b"], "unchanged", "changed")),
        np.where(m["image_id_a"].notna(), "removed", "added"))
    m["status"] = status
    m["renamed_to"] = None
    # a removed file whose bytes reappear under a new name was renamed
    rem = m[(m["status"] == "removed") & m["sha_a"].notna()]
    add = m[(m["status"] == "added") & m["sha_b"].notna()]
    if len(rem) and len(add):
        by_sha = {}
        for k, r in add.iterrows():
            by_sha.setdefault(r["sha_b"], []).append(k)
        drop = []
        for k, r in rem.iterrows():
            cands = by_sha.get(r["sha_a"])
            if cands:
                j = cands.pop(0)
                m.loc[k, ["image_id_b", "sha_b", "status", "renamed_to"]] = [
                    m.at[j, "image_id_b"], m.at[j, "sha_b"], "renamed", m.at[j, FILE_NAME]]
                drop.append(j)
        m = m.drop(index=drop)
    m["image_id_a"] = m["image_id_a"].astype("Int64")
    m["image_id_b"] = m["image_id_b"].astype("Int64")
    order = {"changed": 0, "renamed": 1, "added": 2, "removed": 3, "present in both": 4,
             "unchanged": 5}
    return m.sort_values(["status", FILE_NAME], key=lambda s: s.map(order) if s.name ==
                         "status" else s).reset_index(drop=True)[
        [FILE_NAME, "status", "image_id_a", "image_id_b", "renamed_to", "sha_a", "sha_b"]]


def _versions(a: _Side, b: _Side, *, same: bool, notes) -> dict:
    empty_changes = pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
        (FILE_NAME, object), ("image_id_a", "Int64"), ("image_id_b", "Int64"),
        (ANNOTATOR, object), ("change", object), ("class_a", object), ("class_b", object),
        ("ann_id_a", "Int64"), ("ann_id_b", "Int64"), ("iou", float))})
    out = {"files": pd.DataFrame(columns=[FILE_NAME, "status"]), "changes": empty_changes,
           "summary": pd.DataFrame(columns=[ANNOTATOR, "class", "change", "labels"])}
    if same:
        return out
    files = _file_status(a, b)
    counts = files["status"].value_counts()
    smaller = max(1, min(a.ds.n_images, b.ds.n_images))
    hashed = "present in both" not in counts.index
    shared = int(counts.get("unchanged", 0) + counts.get("renamed", 0)
                 + (counts.get("changed", 0) if hashed else counts.get("present in both", 0)))
    if shared / smaller < MIN_SHARED_FOR_VERSIONS or (hashed and counts.get("unchanged", 0)
                                                       + counts.get("renamed", 0) == 0):
        return out
    if not hashed:
        notes.append("Versions: files are matched by name only (no image statistics with "
                     "their SHA-256), so changed contents are not detected.")
    out["files"] = files
    pairs = files[files["image_id_a"].notna() & files["image_id_b"].notna()]
    changes = _label_changes(a.ds, b.ds, pairs)
    # labels of removed / added images are removed / added with them
    extra = []
    for status, side, ds in (("removed", "a", a.ds), ("added", "b", b.ds)):
        f = files[files["status"] == status]
        if not len(f):
            continue
        anns = ds.annotations[ds.annotations[IMAGE_ID].isin(f[f"image_id_{side}"].astype(
            "int64"))]
        names = ds.category_names
        fn = dict(zip(f[f"image_id_{side}"].astype("int64"), f[FILE_NAME]))
        extra.append(pd.DataFrame({
            FILE_NAME: anns[IMAGE_ID].map(fn).to_numpy(),
            "image_id_a": anns[IMAGE_ID].to_numpy() if side == "a" else pd.NA,
            "image_id_b": anns[IMAGE_ID].to_numpy() if side == "b" else pd.NA,
            ANNOTATOR: anns[ANNOTATOR].astype(str).to_numpy(), "change": status,
            "class_a": anns[CATEGORY_ID].map(names).to_numpy() if side == "a" else None,
            "class_b": anns[CATEGORY_ID].map(names).to_numpy() if side == "b" else None,
            "ann_id_a": anns[ANN_ID].to_numpy() if side == "a" else pd.NA,
            "ann_id_b": anns[ANN_ID].to_numpy() if side == "b" else pd.NA, "iou": np.nan}))
    frames = [f for f in [changes, *extra] if len(f)]
    if frames:
        ch = pd.concat(frames, ignore_index=True)
        for c in ("image_id_a", "image_id_b", "ann_id_a", "ann_id_b"):
            ch[c] = pd.array([None if pd.isna(v) else int(v) for v in ch[c]], dtype="Int64")
        out["changes"] = ch[list(empty_changes.columns)]
        cls = ch["class_a"].where(ch["class_a"].notna(), ch["class_b"])
        out["summary"] = (ch.assign(**{"class": cls}).groupby([ANNOTATOR, "class", "change"])
                          .size().rename("labels").reset_index()
                          .sort_values("labels", ascending=False).reset_index(drop=True))
    return out


def _label_changes(a: Dataset, b: Dataset, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per common image (pairs: file_name, image_id_a, image_id_b) and annotator: the labels
    of B matched one-to-one to A's (IoU >= SAME_OBJECT_IOU, same class first): added,
    removed, moved (IoU < MOVED_IOU and a side moved > 1 px), relabelled (matched with
    another class)."""
    from qa.geometry import Geometry, match_grouped

    if not len(pairs):
        return pd.DataFrame()
    pair_of_a = dict(zip(pairs["image_id_a"].astype("int64"), range(len(pairs))))
    pair_of_b = dict(zip(pairs["image_id_b"].astype("int64"), range(len(pairs))))
    fn = pairs[FILE_NAME].to_numpy()
    ida = pairs["image_id_a"].astype("int64").to_numpy()
    idb = pairs["image_id_b"].astype("int64").to_numpy()
    sides = []
    for ds, pmap in ((a, pair_of_a), (b, pair_of_b)):
        df = ds.annotations[ds.annotations[IMAGE_ID].isin(list(pmap))]
        df = df.assign(pair=df[IMAGE_ID].map(pmap).astype(np.int64),
                       who=df[ANNOTATOR].astype(str),
                       cls=df[CATEGORY_ID].map(ds.category_names).astype(str))
        sides.append(df)
    who = sorted(set(sides[0]["who"]) | set(sides[1]["who"]))
    widx = {w_: i for i, w_ in enumerate(who)}
    for k, df in enumerate(sides):
        df = df.assign(group=df["pair"] * len(who) + df["who"].map(widx))
        sides[k] = df.sort_values(["group", ANN_ID], kind="stable").reset_index(drop=True)
    sa, sb = sides
    rows = []
    boxed = [s[W].notna().to_numpy() for s in sides]
    # boxes: IoU matching per (image, annotator)
    ba, bb = sa[boxed[0]].reset_index(drop=True), sb[boxed[1]].reset_index(drop=True)
    classes = sorted(set(sa["cls"]) | set(sb["cls"]))
    cmap = {c: i for i, c in enumerate(classes)}
    ga, gb = ba["group"].to_numpy(), bb["group"].to_numpy()
    geo_a = Geometry.from_xywh(ba[BOX].to_numpy(float))
    geo_b = Geometry.from_xywh(bb[BOX].to_numpy(float))
    (ma, mb, miou), (xa, xb, xiou) = match_grouped(
        ga, gb, geo_a, geo_b, ba["cls"].map(cmap).to_numpy(), bb["cls"].map(cmap).to_numpy(),
        SAME_OBJECT_IOU)
    box_a, box_b = ba[BOX].to_numpy(float), bb[BOX].to_numpy(float)

    def shift(i, j):
        pa, pb = box_a[i], box_b[j]
        ea = np.c_[pa[:, 0], pa[:, 1], pa[:, 0] + pa[:, 2], pa[:, 1] + pa[:, 3]]
        eb = np.c_[pb[:, 0], pb[:, 1], pb[:, 0] + pb[:, 2], pb[:, 1] + pb[:, 3]]
        return np.abs(ea - eb).max(1)

    def add(df_a, ia, df_b, ib, change, iou):
        src = df_a if ia is not None else df_b
        idx = ia if ia is not None else ib
        pair = src["pair"].to_numpy()[idx]
        rows.append(pd.DataFrame({
            FILE_NAME: fn[pair], "image_id_a": ida[pair], "image_id_b": idb[pair],
            ANNOTATOR: src["who"].to_numpy()[idx], "change": change,
            "class_a": df_a["cls"].to_numpy()[ia] if ia is not None else None,
            "class_b": df_b["cls"].to_numpy()[ib] if ib is not None else None,
            "ann_id_a": df_a[ANN_ID].to_numpy()[ia] if ia is not None else pd.NA,
            "ann_id_b": df_b[ANN_ID].to_numpy()[ib] if ib is not None else pd.NA,
            "iou": iou}))

    moved = (miou < MOVED_IOU) & (shift(ma, mb) > MOVED_MIN_PX) if len(ma) else \
        np.zeros(0, bool)
    if moved.any():
        add(ba, ma[moved], bb, mb[moved], "moved", miou[moved])
    if len(xa):
        add(ba, xa, bb, xb, "relabelled", xiou)
    used_a = np.zeros(len(ba), bool)
    used_a[np.r_[ma, xa].astype(int)] = True
    used_b = np.zeros(len(bb), bool)
    used_b[np.r_[mb, xb].astype(int)] = True
    if (~used_a).any():
        add(ba, np.flatnonzero(~used_a), bb, None, "removed", np.nan)
    if (~used_b).any():
        add(ba, None, bb, np.flatnonzero(~used_b), "added", np.nan)
    # image-level labels (classification): the same class per (image, annotator) or not
    la, lb = sa[~boxed[0]], sb[~boxed[1]]
    if len(la) or len(lb):
        ka = la.groupby("group")["cls"].apply(lambda s: sorted(s)).to_dict()
        kb = lb.groupby("group")["cls"].apply(lambda s: sorted(s)).to_dict()
        for g in sorted(set(ka) | set(kb)):
            xa_, xb_ = list(ka.get(g, [])), list(kb.get(g, []))
            common = [c for c in xa_ if c in xb_]
            for c in common:
                xa_.remove(c)
                xb_.remove(c)
            pair, w_ = g // len(who), who[g % len(who)]
            base = {FILE_NAME: fn[pair], "image_id_a": ida[pair], "image_id_b": idb[pair],
                    ANNOTATOR: w_, "ann_id_a": pd.NA, "ann_id_b": pd.NA, "iou": np.nan}
            for ca_, cb_ in zip(xa_, xb_):
                rows.append(pd.DataFrame([{**base, "change": "relabelled", "class_a": ca_,
                                           "class_b": cb_}]))
            for ca_ in xa_[len(xb_):]:
                rows.append(pd.DataFrame([{**base, "change": "removed", "class_a": ca_,
                                           "class_b": None}]))
            for cb_ in xb_[len(xa_):]:
                rows.append(pd.DataFrame([{**base, "change": "added", "class_a": None,
                                           "class_b": cb_}]))
    if not rows:
        return pd.DataFrame()
    return pd.concat(rows, ignore_index=True)


# ================================================================== the report's runner
def run_analysis(dataset: Dataset, ctx) -> DriftResult:
    """The health report's drift area: this dataset (B) against the reference dataset
    configured as ``options={"drift": {"reference": PATH}}`` (``dataset-qa report
    --reference PATH``) or in the DATASET_QA_REFERENCE environment variable. Skipped when
    none is configured."""
    from qa.analyses import Skip
    from qa.dataset import DatasetError

    ref = ctx.option("drift", "reference") or os.environ.get(REFERENCE_ENV)
    if not ref:
        raise Skip("no reference dataset configured (dataset-qa report --reference PATH, or "
                   f"{REFERENCE_ENV}=PATH): nothing to compare with")
    try:
        reference = load_reference(ref)
    except DatasetError as e:
        raise Skip(str(e)) from e
    from qa.imagestats import compute_image_stats

    stats_b = ctx.image_stats()
    stats_a = compute_image_stats(reference)
    emb_a = emb_b = None
    try:
        emb_b = ctx.embeddings()
    except Skip as e:
        log.info("drift without embeddings: %s", e)
    if emb_b is not None:
        from qa.embeddings import embed_images

        emb_a = embed_images(reference, model=ctx.model,
                             cached_only=ctx.embeddings_mode == "cached")
        if emb_a.n_not_cached or not len(emb_a):
            emb_a = emb_b = None
    return compare_datasets(reference, dataset, stats_a=stats_a, stats_b=stats_b,
                            embeddings_a=emb_a, embeddings_b=emb_b,
                            names=(f"the reference ({reference.name})",
                                   f"this dataset ({dataset.name})"))


def load_reference(path) -> Dataset:
    """The reference dataset at ``path`` (a DatasetError naming it when it cannot be read)."""
    import qa
    from qa.dataset import DatasetError

    try:
        return qa.load(str(path))
    except DatasetError as e:
        raise DatasetError(f"the reference dataset {path} could not be loaded: {e}") from e
