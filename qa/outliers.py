"""Outliers from embeddings: images (or objects) unlike the rest of the dataset, and members
that lie far from their own class (often a wrong label).

* :func:`score_outliers` scores a plain n x d array: ``score`` (higher = more unusual) by the
  mean distance to the k nearest neighbours (``knn``, the default), the local outlier factor
  (``lof``) or an isolation forest. ``is_outlier`` is Tukey's IQR rule on that score:
  ``score > Q3 + 1.5 * IQR`` (:data:`IQR_FACTOR`), the rule cleanlab and Encord Active apply
  to the kNN distance, and (kNN) at least :data:`OUTLIER_RATIO` x the median score, so that
  a uniform dataset gets no flag; :func:`compute_outliers` also flags an image above the
  fence whose pixels show a capture artifact (blank, black, washed out) and says what kind
  of outlier each flagged image is (:func:`outlier_kind`). Neighbour search uses faiss:
  exact up to :data:`EXACT_MAX_ROWS` rows, an inverted-file index above (100k x 512 in a few
  seconds on 2 cores).
* :func:`compute_outliers` turns image embeddings into an :class:`OutliersResult` (the
  :mod:`qa.results` protocol): per-image table, each flagged image's nearest ordinary
  neighbours, and per-class outliers (objects from :func:`qa.embeddings.embed_objects`, or
  images of a classification dataset): distance to the class centroid against the class's own
  spread (the same IQR rule within each class), with the class whose centroid is closest.
* :func:`embedding_map`: a 2-D map (PCA by default, t-SNE, UMAP if installed).

Scores are distances between L2-normalised vectors, so they do not depend on the dataset's
size; the fence adapts to each dataset's spread. faiss and scikit-learn are imported inside
the functions that use them.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from qa.dataset import (
    ANN_ID,
    ANNOTATOR,
    CATEGORY_ID,
    FILE_NAME,
    IMAGE_ID,
    SPLIT,
    Dataset,
)
from qa.embeddings import Embeddings, model_label
from qa.results import findings_frame, frame_records, to_jsonable

log = logging.getLogger(__name__)

METHODS = ("knn", "lof", "isolation_forest")
MAP_METHODS = ("pca", "tsne", "umap")
# k = 10 neighbours: cleanlab's default for its kNN outlier score; small enough that a group of
# a few similar odd images is still far from the crowd.
DEFAULT_K = 10
# Tukey's fence: a value above Q3 + 1.5 * IQR is an outlier (a normal sample exceeds it 0.35 %
# of the time).
IQR_FACTOR = 1.5
# ... and, relative to what the dataset looks like, at least OUTLIER_RATIO times the median
# score: a fence on the tail of a uniform dataset (every image about as far from its
# neighbours as any other) flags ordinary images, so an outlier must also be much further from
# its neighbours than a typical image is from its own. Chosen on the real evaluation sets
# (docs/findings.md): the chess, blood-smear and rice-pest sets' fence-only flags sit at
# 1.1-1.4x the median; a picture of another subject at 1.6x and more.
OUTLIER_RATIO = 1.5
# Exact kNN (faiss IndexFlatL2) up to this many rows; above, an IVF index probing NPROBE of
# 2 sqrt(n) lists (k-means of 10 iterations) over a PCA projection finds candidates, keeping
# 100k x 512 under 10 s on 2 cores; a missed neighbour can only overestimate a distance.
EXACT_MAX_ROWS = 20_000
NPROBE = 8
IVF_LISTS_PER_SQRT_N = 2
IVF_KMEANS_ITERATIONS = 10
# Candidates are searched in a PCA projection to IVF_DIM dimensions (fitted on PCA_TRAIN_ROWS
# rows), IVF_CANDIDATES x (k + 1) per row, then re-ranked by exact distance, RERANK_CHUNK rows
# at a time (memory: chunk x candidates x d floats, ~90 MB at 512-d).
IVF_DIM = 64
PCA_TRAIN_ROWS = 20_000
IVF_CANDIDATES = 1
RERANK_CHUNK = 2048
# Each flagged image shows this many nearest ordinary (not flagged) neighbours.
N_NEIGHBORS_SHOWN = 5
# A class needs this many members for a spread (IQR of 5 values is already rough).
MIN_CLASS_MEMBERS = 5
# t-SNE is O(n log n) but slow in absolute terms: above this many points the map shows a
# random subsample (stated in the notes). PCA and UMAP take every point.
TSNE_MAX_POINTS = 5_000
SEED = 0


class OutliersWarning(UserWarning):
    """An outlier statistic is undefined for this input (too few rows)."""


# --------------------------------------------------------------------------- scoring
def _check_vectors(vectors) -> np.ndarray:
    v = np.asarray(vectors)
    if v.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n, d) array, got shape {v.shape}")
    if not np.issubdtype(v.dtype, np.number):
        raise TypeError(f"vectors must be numeric, got dtype {v.dtype}")
    v = np.ascontiguousarray(v, dtype=np.float32)
    if not np.isfinite(v).all():
        bad = np.where(~np.isfinite(v).all(axis=1))[0][:5].tolist()
        raise ValueError(f"vectors contain NaN or infinite values (rows {bad} ...): drop or "
                         "recompute them")
    return v


def nearest_neighbors(vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indexes), each (n, k): every row's k nearest other rows by Euclidean
    distance, nearest first (faiss; exact up to EXACT_MAX_ROWS rows, IVF above). Rows with
    fewer than k others get -1 / inf in the missing places."""
    v = _check_vectors(vectors)
    return _knn(v, int(k))


def _knn(v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    n, d = v.shape
    if n <= EXACT_MAX_ROWS:
        index = faiss.IndexFlatL2(d)
        index.add(v)
        dist, idx = index.search(v, min(k + 1, n))
        return _drop_self(dist, idx, k)
    # Large n: candidates from an IVF index over a PCA projection (faiss's IVF scan does not use
    # BLAS, so its cost is distances x dimensions), then exact full-dimension distances to the
    # candidates, re-ranked.
    rng = np.random.default_rng(SEED)
    x = v
    if d > IVF_DIM:
        pca = faiss.PCAMatrix(d, IVF_DIM)
        pca.train(v[rng.choice(n, size=min(n, PCA_TRAIN_ROWS), replace=False)])
        x = np.ascontiguousarray(pca.apply(v), dtype=np.float32)
    # IVF_LISTS_PER_SQRT_N * sqrt(n) lists, trained on 39 points per list (faiss's minimum)
    # with a short k-means: the lists only need to be good enough to probe
    nlist = max(1, min(int(IVF_LISTS_PER_SQRT_N * np.sqrt(n)), n // 39))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(x.shape[1]), x.shape[1], nlist)
    index.cp.seed = SEED
    index.cp.niter = IVF_KMEANS_ITERATIONS
    index.train(x[rng.choice(n, size=min(n, nlist * 39), replace=False)])
    index.nprobe = NPROBE
    index.add(x)
    _, idx = index.search(x, min(IVF_CANDIDATES * (k + 1), n))
    dist = np.empty(idx.shape, dtype=np.float32)
    sq = np.einsum("ij,ij->i", v, v)
    for s in range(0, n, RERANK_CHUNK):  # exact squared distances, a chunk at a time
        ii = idx[s:s + RERANK_CHUNK]
        cand = v[np.maximum(ii, 0)]
        dot = np.einsum("nd,nkd->nk", v[s:s + RERANK_CHUNK], cand)
        dd = sq[s:s + RERANK_CHUNK, None] + sq[np.maximum(ii, 0)] - 2 * dot
        dist[s:s + RERANK_CHUNK] = np.where(ii >= 0, dd, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")
    return _drop_self(np.take_along_axis(dist, order, axis=1),
                      np.take_along_axis(idx, order, axis=1), k)


def _drop_self(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows from a search that may include the row itself (first,
    or after an exact duplicate) and -1 for missing ones; squared distances in, distances out."""
    n = len(idx)
    keep = (idx != np.arange(n)[:, None]) & (idx >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    out_i = np.take_along_axis(idx, order, axis=1).astype(np.int64)
    out_d = np.sqrt(np.maximum(np.take_along_axis(dist, order, axis=1), 0)).astype(np.float32)
    ok = np.take_along_axis(keep, order, axis=1)
    out_i[~ok] = -1
    out_d[~ok] = np.inf
    if out_i.shape[1] < k:  # fewer rows than k + 1: pad
        pad = k - out_i.shape[1]
        out_i = np.hstack([out_i, np.full((n, pad), -1, np.int64)])
        out_d = np.hstack([out_d, np.full((n, pad), np.inf, np.float32)])
    return out_d, out_i


def iqr_fence(values, *, factor: float = IQR_FACTOR) -> float:
    """Tukey's upper fence ``Q3 + factor * (Q3 - Q1)`` of the finite values (NaN if none)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan")
    q1, q3 = np.percentile(x, [25, 75])
    return float(q3 + factor * (q3 - q1))


def score_outliers(vectors, *, method: str = "knn", k: int = DEFAULT_K, groups=None
                   ) -> pd.DataFrame:
    """Outlier scores of the rows of an (n, d) array.

    Returns a DataFrame aligned with the rows: ``score`` (higher = more unusual: the mean
    distance to the k nearest neighbours for "knn", ``-negative_outlier_factor_`` of
    scikit-learn's LocalOutlierFactor for "lof", ``-score_samples`` of IsolationForest for
    "isolation_forest"), ``knn_distance`` (always the mean kNN distance), ``percentile`` (the
    score's rank in [0, 1]) and ``is_outlier`` (score above Tukey's fence Q3 + 1.5 IQR and
    at least :data:`OUTLIER_RATIO` x the median score). ``groups``: optional labels per row
    (e.g. duplicate clusters, -1 for none); rows of one group are not each other's neighbours,
    so three copies of one odd picture stay odd. Fewer than 3 rows: NaN scores, no outliers,
    and an :class:`OutliersWarning`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer number of neighbours, got {k!r}")
    v = _check_vectors(vectors)
    g = None if groups is None else np.asarray(groups)
    if g is not None and len(g) != len(v):
        raise ValueError(f"groups must have one entry per row: {len(g)} for {len(v)} rows")
    return _compute_scores(v, method, int(k), g)[0]


def _without_group(dist, idx, groups, want: int):
    """Each row's neighbours without the members of its own group (groups < 0: none)."""
    n = len(idx)
    gi = groups[np.maximum(idx, 0)]
    own = (groups[:, None] >= 0) & (gi == groups[:, None]) & (idx >= 0)
    order = np.argsort(own, axis=1, kind="stable")[:, :want]
    d = np.take_along_axis(dist, order, axis=1)
    i = np.take_along_axis(idx, order, axis=1)
    bad = np.take_along_axis(own, order, axis=1)
    d[bad], i[bad] = np.inf, -1
    return d, i


def _compute_scores(v: np.ndarray, method: str, k: int, groups=None):
    n = len(v)
    if n < 3:
        warnings.warn(f"outlier scores need at least 3 rows, got {n}", OutliersWarning,
                      stacklevel=3)
        nan = np.full(n, np.nan)
        return pd.DataFrame({"score": nan, "knn_distance": nan, "percentile": nan,
                             "is_outlier": np.zeros(n, bool)}), float("nan"), \
            np.full((n, 0), -1, np.int64)
    kk = min(k, n - 1)
    want = max(kk, N_NEIGHBORS_SHOWN + kk)
    if groups is not None and (groups >= 0).any():
        extra = int(pd.Series(groups[groups >= 0]).value_counts().max())
        dist, idx = _knn(v, min(want + extra, n - 1))
        dist, idx = _without_group(dist, idx, groups, want)
    else:
        dist, idx = _knn(v, want)
    fin = np.where(np.isfinite(dist[:, :kk]), dist[:, :kk], np.nan)
    knn_d = np.nanmean(fin, axis=1).astype(float)
    if method == "knn":
        score = knn_d
    elif method == "lof":
        from sklearn.neighbors import LocalOutlierFactor

        lof = LocalOutlierFactor(n_neighbors=kk)
        lof.fit(v)
        score = -lof.negative_outlier_factor_.astype(float)
    else:
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(random_state=SEED, n_estimators=200)
        forest.fit(v)
        score = -forest.score_samples(v).astype(float)
    fence = iqr_fence(score)
    med = float(np.nanmedian(score))
    # relative to the dataset: the fence, and a score well above the typical one (scores of
    # lof / isolation forest are centred near 1 / 0.5, so the ratio applies to kNN only)
    if method == "knn" and np.isfinite(med) and med > 0:
        fence = max(fence, OUTLIER_RATIO * med)
    pct = pd.Series(score).rank(method="average", pct=True).to_numpy()
    df = pd.DataFrame({"score": score, "knn_distance": knn_d, "percentile": pct,
                       "is_outlier": score > fence})
    return df, fence, idx


# --------------------------------------------------------------------------- per class
def class_outliers(vectors, labels, *, factor: float = IQR_FACTOR) -> pd.DataFrame:
    """Members far from their own class: for each class with at least MIN_CLASS_MEMBERS rows,
    the cosine distance of each member to the class centroid, against the class's spread
    (Tukey's fence of those distances within the class). Returns, aligned with the rows:
    ``label``, ``distance`` (higher = further), ``class_fence``, ``excess`` (distance / fence;
    above 1 is flagged), ``nearest_label`` (the label whose centroid is closest) and
    ``is_class_outlier``. Classes too small to have a spread get NaN and no flag."""
    v = _check_vectors(vectors)
    lab = np.asarray(labels)
    if len(lab) != len(v):
        raise ValueError(f"labels must have one entry per row: {len(lab)} labels for "
                         f"{len(v)} rows")
    return _compute_class_outliers(v, lab, factor)


def _compute_class_outliers(v: np.ndarray, lab: np.ndarray, factor: float) -> pd.DataFrame:
    n = len(v)
    vn = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    valid = pd.notna(lab)
    classes = pd.unique(lab[valid])
    cents, names = [], []
    for c in classes:
        m = vn[lab == c].mean(axis=0)
        cents.append(m / max(np.linalg.norm(m), 1e-12))
        names.append(c)
    dist = np.full(n, np.nan)
    fence = np.full(n, np.nan)
    nearest = np.full(n, None, dtype=object)
    if cents:
        C = np.stack(cents)
        cos_d = 1.0 - vn @ C.T  # (n, K)
        nearest[:] = np.asarray(names, dtype=object)[np.argmin(cos_d, axis=1)]
        for j, c in enumerate(names):
            rows = np.where(lab == c)[0]
            dist[rows] = cos_d[rows, j]
            if len(rows) >= MIN_CLASS_MEMBERS:
                # the fence of the class without the member itself would be fairer, but with
                # >= 5 members one far point moves Q3 little; keep it simple and fast
                fence[rows] = iqr_fence(cos_d[rows, j], factor=factor)
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = dist / fence
    flag = np.isfinite(excess) & (dist > fence)
    return pd.DataFrame({"label": lab, "distance": dist, "class_fence": fence,
                         "excess": excess, "nearest_label": nearest,
                         "is_class_outlier": flag})


# --------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class OutliersResult:
    """Outliers of one dataset's embeddings.

    * ``per_image``: image_id, file_name, split, score (higher = more unusual), knn_distance,
      percentile, is_outlier, rank (1 = most unusual), neighbors (tuple of the nearest
      ordinary image ids; filled for flagged images). Only embedded images; the others are in
      ``failed``.
    * ``class_outliers``: one row per object (ann_id) or image (classification) with its
      category_id, name, annotator, distance (to its class centroid; higher = worse),
      class_fence, excess (distance / fence), nearest_name (the class it looks like),
      is_class_outlier. Empty when not measured (``class_level`` None, reason in ``notes``).
    * ``fence``: the score above which an image is flagged (Q3 + 1.5 IQR).
    """

    ANALYSIS: ClassVar[str] = "outliers"

    per_image: pd.DataFrame
    class_outliers: pd.DataFrame
    method: str
    k: int
    fence: float
    model_id: str
    is_clip: bool
    class_level: str | None  # "objects", "images" or None
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()

    @property
    def model_label(self) -> str:
        return model_label(self.model_id, self.is_clip)

    @property
    def flagged(self) -> pd.DataFrame:
        """The flagged images, most unusual first."""
        return self.per_image[self.per_image["is_outlier"]].sort_values("rank")

    @property
    def ranked(self) -> pd.DataFrame:
        """Every embedded image but the copies of another (one image per duplicate group),
        most unusual first."""
        per = self.per_image
        if "duplicate_of" in per:
            per = per[per["duplicate_of"].isna()]
        return per.sort_values("rank")

    @property
    def flagged_class(self) -> pd.DataFrame:
        """The class outliers, furthest (relative to their class) first."""
        df = self.class_outliers
        if df.empty:
            return df
        return df[df["is_class_outlier"]].sort_values("excess", ascending=False)

    def export_frame(self) -> pd.DataFrame:
        """The flagged images for a CSV export, naming the model on every row."""
        df = self.flagged.drop(columns=["neighbors"]).copy()
        df["neighbors"] = [" ".join(map(str, t)) for t in self.flagged["neighbors"]]
        df["method"] = self.method
        df["model"] = self.model_label
        return df

    def unmeasured_reason(self, metrics) -> str | None:
        """Why a metric of ``metrics`` is None (for the report's skipped check), if known."""
        if "n_class_outliers" in metrics and not self.class_level:
            return next((n for n in self.notes if n.startswith("per-class outliers")), None)
        return None

    def metrics(self) -> dict[str, float | int | None]:
        n = len(self.per_image)
        n_out = int(self.per_image["is_outlier"].sum()) if n else 0
        return {
            "n_images_embedded": n,
            "n_failed": len(self.failed),
            "n_outliers": n_out,
            "outlier_share": (n_out / n) if n else None,
            "n_class_outliers": (int(self.class_outliers["is_class_outlier"].sum())
                                 if self.class_level else None),
            "is_clip": int(bool(self.is_clip)),
        }

    def findings(self) -> pd.DataFrame:
        rows = []
        label = self.model_label
        for r in self.flagged.itertuples(index=False):
            rows.append(dict(
                kind="outlier", severity="warning", score=float(r.percentile),
                image_id=int(r.image_id), related_image_ids=tuple(r.neighbors),
                message=(f"Image {r.file_name} is unlike the rest of the dataset"
                         f"{'' if not getattr(r, 'kind', None) else f' ({r.kind})'} (rank "
                         f"{r.rank}, {self.method} score {r.score:.3g}, flagged above "
                         f"{self.fence:.3g}; model {label}): check that it belongs.")))
        fc = self.flagged_class
        for r in fc.itertuples(index=False):
            what = (f"box #{int(r.ann_id)} labelled '{r.name}'" if pd.notna(r.ann_id)
                    else f"image labelled '{r.name}'")
            hint = (f" and looks most like '{r.nearest_name}'" if r.nearest_name != r.name
                    else "")
            rows.append(dict(
                kind="class_outlier", severity="warning",
                score=float(min(1.0, max(0.0, 1.0 - 1.0 / max(r.excess, 1e-9)) * 2)),
                image_id=int(r.image_id),
                ann_ids=() if pd.isna(r.ann_id) else (int(r.ann_id),),
                category_id=int(r.category_id), annotator=r.annotator,
                message=(f"In {r.file_name} the {what} is far from the rest of its "
                         f"class ({r.excess:.2f}x the class's fence){hint}: check the label.")))
        return findings_frame(rows, analysis=self.ANALYSIS, page="outliers")

    def to_dict(self) -> dict:
        return {
            "analysis": self.ANALYSIS,
            "model_id": self.model_id,
            "model": self.model_label,
            "is_clip": self.is_clip,
            "method": self.method,
            "k": self.k,
            "fence": to_jsonable(self.fence),
            "class_level": self.class_level,
            "metrics": {k: to_jsonable(v) for k, v in self.metrics().items()},
            "per_image": frame_records(self.per_image),
            "class_outliers": frame_records(self.flagged_class),
            "failed": frame_records(self.failed),
            "notes": list(self.notes),
        }


MIN_EMBEDDED = 3  # image outliers need at least this many embedded images


def embedding_shortfall(emb: Embeddings, n_images: int) -> tuple[int, str | None]:
    """(how many images are not embedded yet, why outliers cannot be scored, or None when
    they can): the one sentence the page, the CLI and the report runner give."""
    missing = max(int(n_images) - len(emb) - len(emb.failed), 0)
    if len(emb) >= MIN_EMBEDDED:
        return missing, None
    if missing:
        return missing, (f"{missing:,} images are not embedded yet; embed them first (the "
                         "vectors are kept, so this happens once per image and model)")
    ex = (f" (e.g. {emb.failed.iloc[0]['file_name']}: {emb.failed.iloc[0]['reason']})"
          if len(emb.failed) else "")
    return 0, (f"outliers need at least {MIN_EMBEDDED} embedded images; {len(emb)} of "
               f"{int(n_images):,} could be embedded; {len(emb.failed):,} could not be "
               f"read{ex}")


def compute_outliers(dataset: Dataset, embeddings: Embeddings, *, method: str = "knn",
                     k: int = DEFAULT_K, objects: Embeddings | None = None,
                     annotator: str | None = None, duplicates=None, stats=None
                     ) -> OutliersResult:
    """Image outliers of ``embeddings`` (from :func:`qa.embeddings.embed_images`) and
    per-class outliers: of ``objects`` (from :func:`qa.embeddings.embed_objects`) when given,
    else of the images of a classification dataset (labels of ``annotator``, default the one
    with most labels). Returns an :class:`OutliersResult`."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"expected a qa.Dataset, got {type(dataset).__name__}")
    if not isinstance(embeddings, Embeddings):
        raise TypeError(f"embeddings must be qa.embeddings.Embeddings (embed_images()), got "
                        f"{type(embeddings).__name__}")
    if embeddings.ann_ids is not None:
        raise ValueError("embeddings are object embeddings; pass image embeddings "
                         "(embed_images) and give object embeddings as objects=")
    if objects is not None and (not isinstance(objects, Embeddings) or objects.ann_ids is None):
        raise TypeError("objects must be object Embeddings from embed_objects()")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer number of neighbours, got {k!r}")
    return _compute_outliers(dataset, embeddings, method, int(k), objects, annotator,
                             _cluster_map(duplicates), stats)


def _cluster_map(duplicates) -> dict[int, int]:
    if duplicates is None:
        return {}
    clusters = getattr(duplicates, "clusters", None)
    if isinstance(clusters, pd.DataFrame):
        return {int(i): int(c) for i, c in zip(clusters["image_id"], clusters["cluster_id"])}
    return {int(i): int(c) for i, c in dict(duplicates).items()}


# Kinds that the pixels prove: an image of these kinds above Tukey's fence is flagged even
# under the ratio cut (see _add_kinds).
ARTIFACT_KINDS = ("a blank", "an exposure artifact")


def outlier_kind(row, colour_set: bool, med_log_aspect: float) -> str:
    """What kind of outlier an image is, from its pixel statistics (a row of
    :class:`qa.imagestats.ImageStats`): a blank frame, an exposure artifact, a grey image in a
    colour set, another format, or (nothing odd in the pixels) another subject or scene."""
    def num(c):
        v = getattr(row, c, None)
        return float(v) if v is not None and pd.notna(v) else float("nan")

    p02, p98, ent = num("luma_p02"), num("luma_p98"), num("entropy")
    # black and washed-out frames are blank too; say which (the fix differs: a lens cap or a
    # shutter misfire, a flash into the lens)
    if np.isfinite(p98) and p98 < 40:
        return "an exposure artifact (nearly black)"
    if np.isfinite(p02) and p02 > 215:
        return "an exposure artifact (washed out)"
    if (np.isfinite(p98) and np.isfinite(p02) and p98 - p02 < 16) or (np.isfinite(ent)
                                                                       and ent < 2.0):
        return "a blank or nearly blank frame"
    if colour_set and bool(getattr(row, "is_grayscale", False) is True):
        return "a grey image in a colour set"
    asp = num("aspect")
    if np.isfinite(asp) and asp > 0 and abs(np.log(asp) - med_log_aspect) > np.log(1.8):
        return "another format (aspect ratio)"
    return "another subject or scene"


def _add_kinds(per: pd.DataFrame, stats, ids, tukey: float) -> None:
    """Fill ``kind`` for every image above Tukey's fence, and flag those whose pixels show a
    capture artifact (blank, nearly black, washed out) although their score is under the
    ratio cut: in a varied dataset a black frame sits at ~1.45 x the median score, and the
    pixels confirm what the embedding suggests."""
    st = stats.table.set_index(IMAGE_ID).reindex(ids)
    gray = st["is_grayscale"].astype("boolean").fillna(False)
    colour_set = float(gray.mean()) < 0.5
    asp = st["aspect"].astype(float)
    med_la = float(np.nanmedian(np.log(asp[asp > 0]))) if (asp > 0).any() else 0.0
    cand = (per["is_outlier"] | (per["score"] > tukey)).to_numpy()
    if not cand.any():
        return
    kinds = [outlier_kind(r, colour_set, med_la) for r in st[cand].itertuples()]
    per.loc[cand, "kind"] = kinds
    artifact = np.zeros(len(per), bool)
    artifact[np.where(cand)[0]] = [k.startswith(ARTIFACT_KINDS) for k in kinds]
    per.loc[artifact, "is_outlier"] = True


def _compute_outliers(ds, emb, method, k, objects, annotator, clusters=None,
                      stats=None) -> OutliersResult:
    notes = list(emb.notes)
    clusters = clusters or {}
    groups = np.array([clusters.get(int(i), -1) for i in emb.image_ids], np.int64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutliersWarning)
        scores, fence, idx = _compute_scores(emb.vectors, method, k,
                                             groups if (groups >= 0).any() else None)
    notes += [str(w.message) for w in caught]
    for w in caught:
        warnings.warn(w.message, OutliersWarning, stacklevel=3)
    info = ds.images.set_index(IMAGE_ID)
    ids = emb.image_ids
    per = pd.DataFrame({IMAGE_ID: ids,
                        FILE_NAME: info[FILE_NAME].reindex(ids).astype(object).to_numpy(),
                        SPLIT: info[SPLIT].reindex(ids).astype(object).to_numpy()})
    per = pd.concat([per, scores], axis=1)
    per["kind"] = None
    if stats is not None and len(per):
        _add_kinds(per, stats, ids, iqr_fence(per["score"]))
    # one image per group of copies: the most unusual copy stands for the others
    per["duplicate_of"] = pd.array([pd.NA] * len(per), dtype="Int64")
    if (groups >= 0).any():
        order = per["score"].rank(ascending=False, method="first").to_numpy()
        first: dict[int, int] = {}
        for r in np.argsort(order):
            g = int(groups[r])
            if g < 0:
                continue
            if g in first:
                per.loc[r, "duplicate_of"] = int(ids[first[g]])
            else:
                first[g] = r
        copies = per["duplicate_of"].notna().to_numpy()
        per.loc[copies, "is_outlier"] = False
        if copies.any():
            notes.append(f"{int(copies.sum())} copies of other images are ranked once, under "
                         "the first copy (duplicate_of).")
    per["rank"] = per["score"].where(per["duplicate_of"].isna()).rank(
        ascending=False, method="first").fillna(0).astype(int)
    per.loc[~per["is_outlier"], "kind"] = None
    flagged = per["is_outlier"].to_numpy()
    neigh = []
    for r in range(len(per)):
        if not flagged[r] or idx.shape[1] == 0:
            neigh.append(())
            continue
        cand = [j for j in idx[r] if j >= 0 and not flagged[j]]
        neigh.append(tuple(int(ids[j]) for j in cand[:N_NEIGHBORS_SHOWN]))
    per["neighbors"] = neigh
    cls, level = _class_table(ds, emb, objects, annotator, notes)
    return OutliersResult(per, cls, method, k, fence, emb.model_id, emb.is_clip, level,
                          failed=emb.failed, notes=tuple(dict.fromkeys(notes)))


_CLASS_COLUMNS = [ANN_ID, IMAGE_ID, FILE_NAME, CATEGORY_ID, "name", ANNOTATOR, "distance", "class_fence",
                  "excess", "nearest_name", "is_class_outlier"]


def _empty_class_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in _CLASS_COLUMNS})


def _class_table(ds: Dataset, emb: Embeddings, objects: Embeddings | None, annotator,
                 notes: list) -> tuple[pd.DataFrame, str | None]:
    from qa.balance import default_annotator

    names = ds.category_names
    anns = ds.annotations
    if objects is not None:
        if objects.model_id != emb.model_id:
            notes.append(f"object embeddings made by {objects.model_id}, images by "
                         f"{emb.model_id}")
        if len(objects) == 0:
            notes.append("per-class outliers: no object embeddings")
            return _empty_class_table(), None
        a = anns.set_index(ANN_ID).reindex(objects.ann_ids)
        vec, level = objects.vectors, "objects"
        base = pd.DataFrame({ANN_ID: objects.ann_ids, IMAGE_ID: objects.image_ids,
                             CATEGORY_ID: a[CATEGORY_ID].to_numpy(),
                             ANNOTATOR: a[ANNOTATOR].astype(object).to_numpy()})
    elif ds.is_classification:
        who = annotator if annotator is not None else default_annotator(ds)
        lab = anns[anns[ANNOTATOR] == who]
        one = lab.groupby(IMAGE_ID)[CATEGORY_ID].agg(["first", "nunique"])
        one = one[one["nunique"] == 1]["first"]
        keep = np.isin(emb.image_ids, one.index.to_numpy())
        if not keep.any():
            notes.append("per-class outliers: no image has exactly one label")
            return _empty_class_table(), None
        vec, level = emb.vectors[keep], "images"
        iid = emb.image_ids[keep]
        base = pd.DataFrame({ANN_ID: pd.array([pd.NA] * len(iid), dtype="Int64"),
                             IMAGE_ID: iid, CATEGORY_ID: one.reindex(iid).to_numpy(),
                             ANNOTATOR: who})
    else:
        notes.append("per-class outliers need object embeddings on a detection dataset "
                     "(embed the boxes: `dataset-qa outliers --objects` or the page's button)")
        return _empty_class_table(), None
    co = _compute_class_outliers(np.asarray(vec, np.float32), base[CATEGORY_ID].to_numpy(),
                                 IQR_FACTOR)
    base["name"] = [names.get(int(c), str(c)) if pd.notna(c) else None
                    for c in base[CATEGORY_ID]]
    base["distance"] = co["distance"].to_numpy()
    base["class_fence"] = co["class_fence"].to_numpy()
    base["excess"] = co["excess"].to_numpy()
    base["nearest_name"] = [names.get(int(c), str(c)) if c is not None and pd.notna(c) else None
                            for c in co["nearest_label"]]
    base["is_class_outlier"] = co["is_class_outlier"].to_numpy()
    base[FILE_NAME] = base[IMAGE_ID].map(dict(zip(ds.images[IMAGE_ID], ds.images[FILE_NAME])))
    small = [names.get(int(c), str(c)) for c, n in base[CATEGORY_ID].value_counts().items()
             if n < MIN_CLASS_MEMBERS]
    if small:
        notes.append(f"per-class outliers: classes with fewer than {MIN_CLASS_MEMBERS} members "
                     f"have no spread and are not checked ({', '.join(small)})")
    return base[_CLASS_COLUMNS], level


# --------------------------------------------------------------------------- map
def embedding_map(vectors, *, method: str = "pca", max_points: int | None = None,
                  seed: int = SEED) -> tuple[pd.DataFrame, str]:
    """A 2-D map of the rows: (DataFrame with ``row`` (index into ``vectors``), ``x``, ``y``;
    a note saying how it was made). PCA uses every row (randomised SVD); t-SNE (scikit-learn,
    after PCA to 50 dimensions) a random subsample of at most ``max_points`` (default
    TSNE_MAX_POINTS); UMAP needs ``pip install umap-learn``."""
    if method not in MAP_METHODS:
        raise ValueError(f"map method must be one of {MAP_METHODS}, got {method!r}")
    v = _check_vectors(vectors)
    n = len(v)
    limit = max_points if max_points is not None else (TSNE_MAX_POINTS if method == "tsne"
                                                       else n)
    rows = np.arange(n)
    note = f"{method.upper()} of {n:,} points"
    if n > limit:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
        note = f"{method.upper()} of a random {limit:,} of {n:,} points"
    x = v[rows]
    if len(x) < 3:
        xy = np.zeros((len(x), 2))
    elif method == "pca":
        xy = _pca(x, 2, seed)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        xr = _pca(x, min(50, x.shape[1], len(x) - 1), seed)
        xy = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca",
                  random_state=seed).fit_transform(xr)
    else:
        try:
            import umap
        except ImportError:
            raise ImportError("the UMAP map needs the optional umap-learn package: pip install "
                              "umap-learn (or use method='pca' / 'tsne')") from None
        xy = umap.UMAP(n_components=2, random_state=seed,
                       n_neighbors=min(15, len(x) - 1)).fit_transform(x)
    return pd.DataFrame({"row": rows, "x": xy[:, 0], "y": xy[:, 1]}), note


def _pca(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    solver = "randomized" if min(x.shape) > 4 * n else "full"
    return PCA(n_components=n, svd_solver=solver, random_state=seed).fit_transform(x)


# --------------------------------------------------------------------------- runner
def run_analysis(dataset: Dataset, ctx) -> OutliersResult:
    """Runner for :mod:`qa.analyses`: image outliers of the shared embeddings, plus object
    class outliers when the run has object embeddings (:meth:`RunContext.object_embeddings`:
    a complete stored set, or computed with ``run_analyses(objects=True)``)."""
    from qa.analyses import Skip

    emb = ctx.embeddings()
    _, why = embedding_shortfall(emb, dataset.n_images)
    if why:
        raise Skip(why)
    stats = None
    if dataset.root is not None:
        try:
            stats = ctx.image_stats()
        except Exception as e:  # the kinds are a courtesy: never fail the analysis for them
            log.info("outlier kinds without pixel statistics: %s", e)
    return compute_outliers(dataset, emb, method=ctx.option("outliers", "method", "knn"),
                            k=ctx.option("outliers", "k", DEFAULT_K),
                            objects=ctx.object_embeddings(), stats=stats)


def image_attributes(dataset: Dataset, image_ids) -> pd.DataFrame:
    """What the map can be coloured by, per image (aligned with ``image_ids``): ``split``,
    ``class`` (the most frequent class among the labels of the annotator with most labels;
    "(no labels)" for none) and ``annotator`` (who labelled the image, "+"-joined)."""
    from qa.balance import default_annotator

    ids = np.asarray(image_ids, dtype=np.int64)
    info = dataset.images.set_index(IMAGE_ID)
    split = info[SPLIT].astype(object).reindex(ids).fillna("(none)").to_numpy()
    anns = dataset.annotations
    who = default_annotator(dataset)
    mine = anns[anns[ANNOTATOR] == who] if who is not None else anns[:0]
    names = dataset.category_names
    top = (mine.groupby(IMAGE_ID)[CATEGORY_ID].agg(lambda s: s.value_counts().index[0])
           if len(mine) else pd.Series(dtype="int64"))
    cls = [names.get(int(c), str(c)) if pd.notna(c) else "(no labels)"
           for c in top.reindex(ids).to_numpy()]
    by = (anns.groupby(IMAGE_ID)[ANNOTATOR].agg(lambda s: "+".join(sorted(set(map(str, s)))))
          if len(anns) else pd.Series(dtype=object))
    ann = by.reindex(ids).fillna("(none)").to_numpy()
    return pd.DataFrame({IMAGE_ID: ids, "split": split, "class": cls, "annotator": ann})
