"""Exact, perceptual and semantic near-duplicates, split leakage and inconsistent labels.

Three ways to find pairs, all fed by the one pixel pass (:mod:`qa.imagestats`) or by image
embeddings (:mod:`qa.embeddings`), never by reading files here:

``exact``      the same file bytes (SHA-256), or the same decoded pixels under another
               encoding or other metadata (pixel hash). Similarity 1.
``phash``      perceptual near-duplicates: the Hamming distance between the 128-bit codes
               pHash ‖ dHash (imagehash, 64 bits each) within a radius, searched by multi-index
               hashing (:func:`find_hash_pairs`; never an O(n²) loop). The mirrored picture's
               code is searched too, so a left-right flipped copy is found. Similarity
               ``1 - hamming / 128``. Works without torch.
``embedding``  semantic near-duplicates: cosine similarity of image embeddings above a
               threshold (:func:`find_near_duplicates`: exact faiss search up to
               :data:`EXACT_SEARCH_MAX` vectors, an IVF index above).

Pairs are joined into clusters (connected components of the pair graph, i.e. union-find);
each cluster gets a representative to keep and a keep/remove suggestion with its reason.
Pairs whose images sit in different splits are *leakage*; one file listed under two image ids
is *listed twice*; copies in one cluster whose classes differ have *inconsistent labels*.
Nothing is ever deleted or moved: the removal list is a suggestion to export.

Default thresholds (chosen on ``sample_data``, see :data:`DEFAULT_THRESHOLDS`): the 13 planted
pairs lie at pHash+dHash Hamming distance 0-9 (flip-aware), the closest unrelated pair at 17;
with embeddings of the offline model the planted pairs spread over cosine 0.88-1.0 and the
unrelated pairs reach 0.97, so the perceptual method is the default.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations, pairwise
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from qa.dataset import ANNOTATOR, CATEGORY_ID, FILE_NAME, IMAGE_ID, SPLIT, Dataset
from qa.results import findings_frame, frame_records

log = logging.getLogger(__name__)

METHODS = ("auto", "exact", "phash", "embedding")
# Bits of the perceptual code: pHash (64) followed by dHash (64).
HASH_BITS = 128
# Default similarity thresholds per method. phash: 1 - 12/128 = 0.906 -> Hamming radius 12 on
# the 128-bit code. On sample_data the 13 planted pairs are at distance <= 9 (a copy
# re-compressed at JPEG quality 22 is the farthest, pHash 8 + dHash 1) and the nearest
# unrelated pair at 17, so 12 sits in the gap with room either side. embedding: cosine 0.95,
# above the 99.9th percentile (0.89) of unrelated pairs on sample_data with the offline model
# (efficientnet-lite0; median 0.39, 99th percentile 0.81, but two unrelated near-blank scenes
# reach 0.95 and 0.97). There the planted copies score 1.0 (exact), 0.974-0.976 (mirrored),
# 0.88-0.96 (resized) and 0.91-0.94 (JPEG quality 22): 0.95 finds 8 of 13 with 2 false pairs,
# which is why the perceptual method is the default and embeddings add to it.
DEFAULT_THRESHOLDS = {"phash": 1 - 12 / HASH_BITS, "embedding": 0.95}
# With pixel verification (the default whenever the image files can be read) the thresholds
# above only *propose* pairs, and can be wide: every candidate is decided on the pixels
# (:mod:`qa.verification`). A sheared, cropped or re-exposed copy sits at pHash+dHash distance
# up to ~30 of 128 and embedding cosine 0.80-0.95 on the real evaluation sets
# (docs/findings.md), where unrelated photos of one fixed scene sit too: the verification, not
# the threshold, tells them apart.
CANDIDATE_THRESHOLDS = {"phash": 1 - 24 / HASH_BITS, "embedding": 0.80}
# Each image proposes at most this many candidates per method (its nearest ones), so a
# dataset of one fixed scene (every image near every other) costs O(n) verifications, not
# O(n^2). Copies of one picture are each other's nearest neighbours.
CANDIDATES_PER_IMAGE = 6
# Labelled datasets propose a third kind of candidate: images whose boxes lie at the same places
# with the same classes (a copy keeps its labels; a crop, a shear or a flip moves them a little).
# Each image's layout is a soft LAYOUT_GRID x LAYOUT_GRID map of its box centres per class
# (Gaussians of LAYOUT_SIGMA of the picture; classes folded into LAYOUT_CLASSES channels), the
# mirrored map searched too; pairs at cosine >= LAYOUT_MIN are candidates. On the fixed-camera
# chess set, where the embeddings and perceptual codes rank a copy behind ~12 other photos of the
# same board (median), the layout ranks it first or second: 92 % of the 606 copy pairs are among
# an image's 6 nearest layouts, against 37 % by embedding (docs/findings.md).
LAYOUT_GRID = 6
LAYOUT_SIGMA = 0.1
LAYOUT_CLASSES = 16
LAYOUT_MIN = 0.6
# After verification, two confirmed pairs (a, b) and (b, c) propose (a, c): copies of one picture
# are copies of each other, and the third pair is verified rather than assumed. At most this many
# rounds, and only through images with at most CLOSURE_MAX_DEGREE confirmed partners (a big group
# of look-alikes would otherwise propose all its pairs).
CLOSURE_ROUNDS = 2
CLOSURE_MAX_DEGREE = 12
# Verdicts of the pixel verification are kept in the store by the two files' SHA-256.
VERIFY_KIND = "dupverify/v1"
# Exact (brute force, BLAS) vector search up to this many vectors: 20k x 20k x 512 is ~2e11
# multiply-adds, a few seconds on 2 cores. Above it an IVF index answers in O(n * n/nlist).
EXACT_SEARCH_MAX = 20_000
# IVF: lists = IVF_LISTS_PER_SQRT * sqrt(n), probing IVF_NPROBE of them per query, k-means on
# IVF_TRAIN_PER_LIST points per list for IVF_TRAIN_ITER rounds (faiss' defaults, 256 points
# and 25 rounds, spend minutes on 1M x 512 for no recall gain on near-duplicates, which sit
# far closer to each other than to any centroid). Recall is measured in
# benchmarks/bench_duplicates.py (target >= 0.98 against exact search at 100k).
IVF_LISTS_PER_SQRT = 2.0
# ... but at least n / IVF_MAX_LIST_SIZE lists, so that at 1M a probe scans ~250 codes, not 500:
# measured 100k -> 632 lists: 10.8 s, recall 0.999; 1M -> 4,000 lists: 230 s, recall 0.996
# (2,000 lists: 275 s; 1,264 lists at 100k: 18.8 s, as the k-means costs more).
IVF_MAX_LIST_SIZE = 250
IVF_NPROBE = 8
IVF_TRAIN_PER_LIST = 32
IVF_TRAIN_ITER = 10
# The 8-bit quantised scan may understate a similarity by ~1e-3; candidates within this margin
# under the threshold are re-scored exactly, so none is lost to quantisation.
SQ_MARGIN = 0.02
# Members of one identical-code group beyond this get star edges (to the group's first
# member) instead of all pairs, so 10,000 blank frames do not make 50 million pairs.
MAX_GROUP_PAIRS = 64
# Relative cost of sorting one key against checking one candidate, for choosing the segments
# of multi-index hashing.
_SORT_COST = 5.0
# Severity of each finding kind.
SEVERITY = {"exact_duplicate": "warning", "near_duplicate": "info", "leakage": "error",
            "listed_twice": "error", "inconsistent_labels": "warning"}
PAIR_COLUMNS = ("image_id_a", "image_id_b", "method", "similarity", "hamming", "flipped",
                "split_a", "split_b", "cross_split", "file_a", "file_b", "cluster_id",
                "proposed_by", "decided_by", "reason")
CLUSTER_COLUMNS = ("cluster_id", "image_id", "file_name", "split", "is_representative",
                   "action", "reason", "labels")


# ============================================================================ vector search
def find_near_duplicates(vectors, *, threshold: float = DEFAULT_THRESHOLDS["embedding"],
                         exact_max: int = EXACT_SEARCH_MAX, nprobe: int = IVF_NPROBE,
                         nlist: int | None = None) -> pd.DataFrame:
    """Every pair of rows of ``vectors`` (n x d) whose cosine similarity is at least
    ``threshold``: a DataFrame (i, j, similarity) with i < j, most similar first.

    Rows are L2-normalised here (zero rows never match). Up to ``exact_max`` rows the search
    is exact (faiss IndexFlatIP, range search); above it an IVF index with 8-bit codes and
    ``nlist`` lists (default max(2 sqrt(n), n / 250)) probing ``nprobe`` of them, every
    candidate re-scored exactly; its recall against exact search is measured in
    ``benchmarks/bench_duplicates.py`` (0.999 at 100k, 0.996 at 1M)."""
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n x d), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"vectors must be numbers, got dtype {x.dtype}")
    if not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    x = np.ascontiguousarray(x, dtype=np.float32)  # no copy for float32 input
    block = 65_536  # rows per check: no n x d temporary (1M x 512 would add 0.5-2 GB)
    if not all(np.isfinite(x[k:k + block]).all() for k in range(0, len(x), block)):
        raise ValueError("vectors contain NaN or infinite values; drop or recompute those rows")
    return _compute_vector_pairs(x, float(threshold), exact_max, nprobe, nlist)


def _compute_vector_pairs(x: np.ndarray, threshold: float, exact_max: int, nprobe: int,
                          nlist: int | None) -> pd.DataFrame:
    n = len(x)
    empty = pd.DataFrame({"i": np.zeros(0, np.int64), "j": np.zeros(0, np.int64),
                          "similarity": np.zeros(0, np.float32)})
    if n < 2:
        return empty
    import faiss

    norms = np.sqrt(np.einsum("ij,ij->i", x, x))  # no n x d temporary
    rows = np.flatnonzero(norms > 0)  # a zero vector has no direction: it matches nothing
    if len(rows) < 2:
        return empty
    if len(rows) < n or not np.allclose(norms, 1.0, atol=1e-4):
        x = x[rows] / norms[rows, None]  # a normalised copy (embeddings arrive normalised)
    n, d = x.shape
    approximate = n > exact_max
    if not approximate:
        index = faiss.IndexFlatIP(d)
    else:
        lists = nlist or max(1, int(IVF_LISTS_PER_SQRT * math.sqrt(n)), n // IVF_MAX_LIST_SIZE)
        quantizer = faiss.IndexFlatIP(d)
        # 8-bit scalar quantisation: a quarter of the memory of float32 (1M x 512 = 0.5 GB)
        # and faster scans; every candidate is re-scored exactly below
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, lists,
                                              faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
        index.cp.min_points_per_centroid = min(IVF_TRAIN_PER_LIST, 16)  # no warning at 32
        index.cp.niter = IVF_TRAIN_ITER
        rng = np.random.default_rng(0)
        n_train = min(n, lists * IVF_TRAIN_PER_LIST)
        index.train(x[np.sort(rng.choice(n, n_train, replace=False))])
        index.nprobe = min(nprobe, lists)
    index.add(x)
    # faiss keeps similarities strictly above the radius; the quantised scan gets a margin
    radius = threshold - (SQ_MARGIN if approximate else 1e-6)
    qs, js, ss = [], [], []
    block = 4096  # queries per call: bounds the result buffers
    for start in range(0, n, block):
        lims, sims, ids = index.range_search(x[start:start + block], radius)
        q = start + np.repeat(np.arange(len(lims) - 1), np.diff(lims).astype(np.int64))
        ids = ids.astype(np.int64)
        keep = q < ids if not approximate else q != ids
        q, ids, sims = q[keep], ids[keep], sims[keep]
        if approximate:  # exact cosine of the candidates
            sims = np.einsum("ij,ij->i", x[q], x[ids])
            q, ids = np.minimum(q, ids), np.maximum(q, ids)
        keep = sims >= threshold - 1e-6
        qs.append(q[keep])
        js.append(ids[keep])
        ss.append(sims[keep])
    out = pd.DataFrame({"i": rows[np.concatenate(qs)], "j": rows[np.concatenate(js)],
                        "similarity": np.minimum(np.concatenate(ss), 1.0)})
    if n > exact_max:  # an IVF query finds (i, j) from either side: keep one copy
        out = out.drop_duplicates(["i", "j"])
    return out.sort_values(["similarity", "i", "j"], ascending=[False, True, True],
                           ignore_index=True)


# ============================================================================ Hamming search
def find_hash_pairs(codes, *, radius: int, queries=None) -> pd.DataFrame:
    """Pairs of binary codes within Hamming distance ``radius``: a DataFrame (i, j, distance).

    ``codes``: uint64 array (n,) of 64-bit hashes, or (n, w) uint64 words for 64*w bits.
    Without ``queries``: pairs of codes, i < j. With ``queries`` (same shape as ``codes``):
    pairs (i, j) with ``distance(queries[i], codes[j]) <= radius`` and i != j (used for
    mirrored hashes).

    Multi-index hashing: the bits are cut into m segments; two codes within ``radius`` agree
    exactly on at least m - radius segments (pigeonhole), so sorting the codes by every
    combination of m - radius segments and checking only codes with equal keys finds every
    pair, with about n candidates per combination on random codes instead of n². m is chosen
    to minimise the expected work for this n."""
    c = _as_words(codes, "codes")
    q = c if queries is None else _as_words(queries, "queries")
    if q.shape != c.shape:
        raise ValueError(f"queries must have the shape of codes {c.shape}, got {q.shape}")
    if int(radius) != radius or radius < 0:
        raise ValueError(f"radius must be a whole number of bits >= 0, got {radius!r}")
    return _compute_hash_pairs(c, q, int(radius), self_search=queries is None)


def _as_words(codes, what: str) -> np.ndarray:
    a = np.asarray(codes)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{what} must be uint64 hashes (n,) or words (n, w), got {a.dtype} "
                        f"{a.shape}")
    return np.ascontiguousarray(a.astype(np.uint64))


def _segments(n_bits: int, radius: int, n: int) -> tuple[list[tuple[int, int]], int]:
    """(bit ranges of the m segments, k = segments that must match), chosen by cost."""
    best = None
    for m in range(radius + 1, min(n_bits, radius + 40) + 1):
        k = m - radius
        width = n_bits // m
        n_combos = math.comb(m, k)
        cost = n_combos * (_SORT_COST + n / 2.0 ** min(k * width, 64))
        if best is None or cost < best[0]:
            best = (cost, m, k)
    _, m, k = best
    edges = np.linspace(0, n_bits, m + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in pairwise(edges)], k


def _segment_values(words: np.ndarray, segs) -> list[np.ndarray]:
    bits = np.unpackbits(words.astype(">u8").view(np.uint8), axis=1)  # (n, 64 w), MSB first
    vals = []
    for lo, hi in segs:
        weights = (np.uint64(1) << np.arange(hi - lo, dtype=np.uint64))
        vals.append((bits[:, lo:hi].astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64))
    return vals


_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio): mixes segment keys


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a ^ b).sum(axis=1, dtype=np.int64)


def _equal_runs(order: np.ndarray, sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of positions whose keys are equal, from the sort of the keys."""
    n = len(sorted_keys)
    same = sorted_keys[1:] == sorted_keys[:-1]
    if not same.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, ~same])
    sizes = np.diff(np.r_[starts, n])
    a_parts, b_parts = [], []
    for size in np.unique(sizes[sizes > 1]):
        st = starts[sizes == size]
        ia, ib = np.triu_indices(int(size), 1)
        a_parts.append(order[(st[:, None] + ia[None, :]).ravel()])
        b_parts.append(order[(st[:, None] + ib[None, :]).ravel()])
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    return np.minimum(a, b), np.maximum(a, b)


def _compute_hash_pairs(c: np.ndarray, q: np.ndarray, radius: int, *, self_search: bool
                        ) -> pd.DataFrame:
    n = len(c)
    empty = pd.DataFrame({"i": np.zeros(0, np.int64), "j": np.zeros(0, np.int64),
                          "distance": np.zeros(0, np.int64)})
    if n < 2:
        return empty
    segs, k = _segments(64 * c.shape[1], radius, n)
    cv = _segment_values(c, segs)
    qv = cv if self_search else _segment_values(q, segs)
    found: list[np.ndarray] = []
    dists: list[np.ndarray] = []
    for combo in combinations(range(len(segs)), k):
        # the key of the chosen segments, mixed into 64 bits (a collision only adds a
        # candidate, which the distance check then drops: nothing is missed)
        kc = np.zeros(n, np.uint64)
        kq = np.zeros(n, np.uint64)
        for s in combo:
            kc = kc * _MIX + cv[s]
            kq = kq * _MIX + qv[s]
        order = np.argsort(kc)
        sorted_keys = kc[order]
        if self_search:
            qi, cj = _equal_runs(order, sorted_keys)
            dist = _hamming(q[qi], c[cj])
            near = dist <= radius
            found.append(qi[near] * n + cj[near])
            dists.append(dist[near])
            continue
        lo = np.searchsorted(sorted_keys, kq, "left")
        hi = np.searchsorted(sorted_keys, kq, "right")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            continue
        qi = np.repeat(np.arange(n, dtype=np.int64), counts)
        offsets = np.cumsum(counts) - counts
        cj = order[lo[qi] + (np.arange(total, dtype=np.int64) - offsets[qi])].astype(np.int64)
        keep = qi < cj if self_search else qi != cj
        qi, cj = qi[keep], cj[keep]
        dist = _hamming(q[qi], c[cj])
        near = dist <= radius
        found.append(qi[near] * n + cj[near])
        dists.append(dist[near])
    if not found:
        return empty
    keys = np.concatenate(found)
    dist = np.concatenate(dists)
    keys, first = np.unique(keys, return_index=True)
    return pd.DataFrame({"i": keys // n, "j": keys % n, "distance": dist[first]})


# ============================================================================ the analysis
@dataclass(frozen=True, eq=False)
class DuplicatesResult:
    """Duplicates, clusters and leakage of one dataset.

    * ``pairs``: one row per pair (:data:`PAIR_COLUMNS`): image_id_a < image_id_b, ``method``
      ("same file", "sha256", "pixels", "phash", "embedding": the strongest evidence),
      ``similarity`` (1 for exact; higher = more alike), ``hamming`` (pHash+dHash distance,
      NaN for other methods), ``flipped`` (found through the mirrored picture), the splits,
      ``cross_split`` (both splits known and different: leakage), the files and the cluster.
    * ``clusters``: one row per image in a cluster (:data:`CLUSTER_COLUMNS`): the
      representative to keep and, for the others, ``action`` "remove" with the ``reason``;
      ``labels``: the class names on each copy, any annotator ("circle, ring").
    * ``removal``: the suggested removal list (image_id, file_name, split, cluster_id,
      keep_instead, reason). Nothing is deleted or moved.
    * ``inconsistent``: clusters whose copies carry different classes (cluster_id, image_ids,
      annotator, labels).
    """

    ANALYSIS: ClassVar[str] = "duplicates"

    method: str
    threshold: float | None
    hash_radius: int | None
    n_images: int
    n_checked: int
    pairs: pd.DataFrame
    clusters: pd.DataFrame
    removal: pd.DataFrame
    inconsistent: pd.DataFrame
    methods_used: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)
    verified: bool = False

    @property
    def exact_pairs(self) -> pd.DataFrame:
        return self.pairs[self.pairs["method"].isin(EXACT_METHODS)]

    @property
    def near_pairs(self) -> pd.DataFrame:
        return self.pairs[~self.pairs["method"].isin(EXACT_METHODS)]

    @property
    def leakage(self) -> pd.DataFrame:
        """The pairs that cross splits, exact copies first."""
        return self.pairs[self.pairs["cross_split"]]

    def leakage_table(self, image_ids=None) -> pd.DataFrame:
        """The cross-split pairs (involving ``image_ids`` when given) oriented as (copy to
        drop, the copy kept): copy_id, copy_split, kept_id, kept_split, method, similarity,
        flipped, cluster_id; exact copies first, then by similarity."""
        leak = self.involving(image_ids)
        leak = leak[leak["cross_split"]]
        drop = dict(zip(self.removal["image_id"], self.removal["keep_instead"]))
        a_is_copy = [drop.get(a) == b or (b not in drop and a in drop)
                     for a, b in zip(leak["image_id_a"], leak["image_id_b"])]
        a_is_copy = np.asarray(a_is_copy, bool)
        out = pd.DataFrame({
            "copy_id": np.where(a_is_copy, leak["image_id_a"], leak["image_id_b"]),
            "copy_split": np.where(a_is_copy, leak["split_a"], leak["split_b"]),
            "kept_id": np.where(a_is_copy, leak["image_id_b"], leak["image_id_a"]),
            "kept_split": np.where(a_is_copy, leak["split_b"], leak["split_a"]),
            "copy_file": np.where(a_is_copy, leak["file_a"], leak["file_b"]),
            "kept_file": np.where(a_is_copy, leak["file_b"], leak["file_a"]),
            "method": leak["method"].to_numpy(), "similarity": leak["similarity"].to_numpy(),
            "flipped": leak["flipped"].to_numpy(), "cluster_id": leak["cluster_id"].to_numpy(),
            "decided_by": leak["decided_by"].to_numpy()})
        exact = out["method"].isin(EXACT_METHODS)
        return out.assign(_e=~exact).sort_values(["_e", "similarity", "copy_id"],
                                                 ascending=[True, False, True],
                                                 ignore_index=True).drop(columns="_e")

    def involving(self, image_ids) -> pd.DataFrame:
        """The pairs that involve any of ``image_ids`` (all pairs when None)."""
        if image_ids is None:
            return self.pairs
        ids = [int(i) for i in image_ids]
        return self.pairs[self.pairs["image_id_a"].isin(ids) | self.pairs["image_id_b"].isin(ids)]

    def clusters_of(self, image_ids=None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(clusters, removal) restricted to the clusters that hold any of ``image_ids``
        (everything when None)."""
        if image_ids is None:
            return self.clusters, self.removal
        ids = [int(i) for i in image_ids]
        cids = set(self.clusters.loc[self.clusters["image_id"].isin(ids), "cluster_id"])
        return (self.clusters[self.clusters["cluster_id"].isin(cids)],
                self.removal[self.removal["cluster_id"].isin(cids)])

    def removal_export(self, fmt: str = "csv") -> str:
        """The suggested removal list as CSV or JSON text (for a download; nothing is
        deleted)."""
        if fmt == "csv":
            return self.removal.to_csv(index=False)
        if fmt == "json":
            import json

            return json.dumps({"method": self.method, "threshold": self.threshold,
                               "remove": frame_records(self.removal)}, indent=2)
        raise ValueError(f"fmt must be 'csv' or 'json', got {fmt!r}")

    def metrics(self) -> dict[str, float | int | None]:
        leaking = self.removal[self.removal["reason"].str.contains("leaks", na=False)]
        return {
            "n_exact_pairs": len(self.exact_pairs),
            "n_near_pairs": len(self.near_pairs),
            "n_clusters": int(self.clusters["cluster_id"].nunique()) if len(self.clusters) else 0,
            "n_cross_split_pairs": len(self.leakage),
            "n_leaking_images": int(leaking["image_id"].nunique()),
            "n_inconsistent_label_clusters": int(self.inconsistent["cluster_id"].nunique())
            if len(self.inconsistent) else 0,
            "n_listed_twice": int((self.pairs["method"] == LISTED_TWICE).sum()),
            "n_suggested_removals": len(self.removal),
        }

    def findings(self) -> pd.DataFrame:
        rows = []
        remove = dict(zip(self.removal["image_id"], self.removal["keep_instead"]))
        for p in self.pairs.itertuples(index=False):
            a, b = int(p.image_id_a), int(p.image_id_b)
            copy, orig = (a, b) if a in remove and remove[a] == b else (b, a)
            fn = {a: p.file_a, b: p.file_b}
            if p.method == LISTED_TWICE:
                rows.append(_finding("listed_twice", copy, orig, 1.0,
                                     f"{p.file_a} is listed twice (image entries {copy} and "
                                     f"{orig}); drop one entry."))
                continue
            exact = p.method in EXACT_METHODS
            kind = "exact_duplicate" if exact else "near_duplicate"
            why = str(getattr(p, "reason", "") or p.method).removeprefix("the same picture: ")
            rel, extra = ("an exact copy of", "") if exact else ("the same picture as",
                                                                 f" ({why})")
            rows.append(_finding(kind, copy, orig, float(p.similarity),
                                 f"{fn[copy]} is {rel} {fn[orig]}{extra}; keep one of them."))
            if p.cross_split:
                sp = {a: p.split_a, b: p.split_b}
                rows.append(_finding("leakage", copy, orig, float(p.similarity),
                                     f"{fn[copy]} ({sp[copy]}) is {rel} {fn[orig]} "
                                     f"({sp[orig]}){extra}: the splits leak; drop {fn[copy]} "
                                     f"from {sp[copy]}."))
        names = {**dict(zip(self.pairs["image_id_a"], self.pairs["file_a"])),
                 **dict(zip(self.pairs["image_id_b"], self.pairs["file_b"]))}
        for r in self.inconsistent.itertuples(index=False):
            ids = list(r.image_ids)
            rows.append(_finding("inconsistent_labels", ids[0], ids[1:], 1.0,
                                 f"Copies {', '.join(names.get(i, f'image {i}') for i in ids)} "
                                 f"carry different "
                                 f"classes ({r.labels}, annotator {r.annotator}): one of them is "
                                 f"wrong.", annotator=r.annotator))
        return findings_frame(rows, analysis=self.ANALYSIS, page="duplicates")

    def to_dict(self) -> dict[str, Any]:
        return {"analysis": self.ANALYSIS, "method": self.method, "threshold": self.threshold,
                "hash_radius": self.hash_radius, "n_images": self.n_images,
                "n_checked": self.n_checked, "methods_used": list(self.methods_used),
                "metrics": self.metrics(), "pairs": frame_records(self.pairs),
                "clusters": frame_records(self.clusters),
                "removal": frame_records(self.removal),
                "inconsistent": frame_records(self.inconsistent), "notes": list(self.notes)}


EXACT_METHODS = ("same file", "sha256", "pixels")
LISTED_TWICE = "same file"


def _finding(kind, image_id, related, score, message, **extra) -> dict:
    return {"kind": kind, "severity": SEVERITY[kind], "score": min(max(score, 0.0), 1.0),
            "image_id": image_id, "related_image_ids": related, "message": message, **extra}


def compute_duplicates(dataset: Dataset, *, stats=None, embeddings=None, method: str = "auto",
                       threshold: float | None = None, verify: bool | None = None,
                       progress=None, store=None, ray: str | None = None
                       ) -> DuplicatesResult:
    """Exact and near-duplicates of ``dataset``'s images, their clusters, the suggested
    removals, split leakage and inconsistent labels.

    Candidates come from every source in play, never one instead of another: the same bytes or
    pixels (always), the perceptual codes (pHash + dHash, flip-aware; every method but
    "exact") and the image embeddings (when ``embeddings`` are given; required by
    ``method="embedding"``). ``method``: "exact" (same bytes or pixels only), "phash" (exact +
    perceptual), "embedding" (exact + perceptual + embeddings), "auto" (exact + perceptual, +
    embeddings when given).

    ``verify`` (default: whenever the image files can be read): decide every near candidate on
    the pixels (:mod:`qa.verification`: one geometric transform, the residual after
    alignment, the labels); a pair is a duplicate only when it is *the same picture*, and
    ``pairs.decided_by`` / ``reason`` say how. The thresholds then only propose candidates
    (:data:`CANDIDATE_THRESHOLDS`, at most :data:`CANDIDATES_PER_IMAGE` per image and source).
    Without verification a pair is a duplicate when it passes :data:`DEFAULT_THRESHOLDS`.
    ``threshold`` overrides the similarity of the method's own search (the embedding cosine for
    "embedding", the perceptual similarity ``1 - Hamming/128`` otherwise).

    ``stats``: :class:`qa.imagestats.ImageStats` (computed here when None). ``progress``:
    ``progress(fraction, message)`` while pixels are compared. ``store``: where pixel
    measurements are kept (default the project's cache). ``ray``: a Ray cluster ("auto" or
    an address) for the pixel pass and the embedding search (:mod:`qa.distributed`). Returns a
    :class:`DuplicatesResult`."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"compute_duplicates() needs a qa.Dataset, got {type(dataset).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "embedding" and embeddings is None:
        raise ValueError("method='embedding' needs embeddings (qa.embeddings.embed_images); "
                         "use method='phash' to work from the pixels alone")
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold is a similarity in (0, 1], got {threshold}")
    if stats is None:
        from qa.imagestats import compute_image_stats

        stats = compute_image_stats(dataset, ray=ray)
    if verify is None:
        verify = dataset.root is not None
    return _compute_duplicates(dataset, stats.table, embeddings, method, threshold,
                               bool(verify), progress or (lambda f, m: None), store, ray=ray)


def _compute_duplicates(ds: Dataset, table: pd.DataFrame, embeddings, method: str,
                        threshold: float | None, verify: bool = False,
                        progress=lambda f, m: None, store=None,
                        ray: str | None = None) -> DuplicatesResult:
    notes: list[str] = []
    t = table.set_index(IMAGE_ID).reindex(ds.images[IMAGE_ID].to_numpy())
    ids = t.index.to_numpy(dtype=np.int64)
    ok = (t["error"].isna() & t["sha256"].notna()).to_numpy()  # read, and in the table
    n_bad = int((~ok).sum())
    if n_bad:
        notes.append(f"{n_bad} image(s) could not be read and were not compared (see "
                     f"validation).")
    parts: list[pd.DataFrame] = [_listed_twice(ds), _exact_pairs(ids[ok], t[ok])]
    used = ["exact"]
    radius = None
    use_phash = method != "exact"
    use_emb = method in ("auto", "embedding") and embeddings is not None
    thresholds = CANDIDATE_THRESHOLDS if verify else DEFAULT_THRESHOLDS
    phash_thr = thresholds["phash"]
    emb_thr = thresholds["embedding"]
    if threshold is not None:
        if method == "embedding":
            emb_thr = float(threshold)
        else:
            phash_thr = float(threshold)
    near: list[pd.DataFrame] = []
    if use_phash:
        radius = math.floor((1.0 - phash_thr) * HASH_BITS + 1e-9)
        found = _phash_pairs(ids[ok], t[ok], radius)
        near.append(_nearest_per_image(found, "hamming", ascending=True) if verify else found)
        used.append("phash")
    if use_emb:
        near.append(_embedding_pairs(embeddings, emb_thr, ids[ok], notes,
                                     per_image=CANDIDATES_PER_IMAGE if verify else None,
                                     ray=ray))
        used.append("embedding")
    elif method == "auto" and method != "exact":
        notes.append("No embeddings: candidates are perceptual (pHash/dHash) only; a shifted "
                     "or sheared copy is found with embeddings (embed the images).")
    if verify and use_phash:
        lay = _layout_pairs(ds, ids[ok], CANDIDATES_PER_IMAGE)
        if len(lay):
            near.append(lay)
            used.append("layout")
    exact = _merge_pairs(parts)
    candidates = _merge_candidates(near)
    # pairs already exact need no verification
    if len(exact) and len(candidates):
        seen = set(zip(exact["image_id_a"], exact["image_id_b"]))
        candidates = candidates[[(a, b) not in seen for a, b in
                                 zip(candidates["image_id_a"], candidates["image_id_b"])]]
    exact = exact.assign(proposed_by=exact["method"], decided_by=exact["method"].map(
        lambda m: "the same file" if m == LISTED_TWICE else
        "the same bytes" if m == "sha256" else "the same decoded pixels"),
        reason="")
    if verify and len(candidates):
        from qa.verification import verify_pairs

        if store is None:
            from qa.store import default_store

            store = default_store()
        sha = dict(zip(ids[ok].tolist(), t.loc[ok, "sha256"].tolist()))

        def decide(c: pd.DataFrame) -> pd.DataFrame:
            v = verify_pairs(ds, c, progress=progress, store=store, sha256=sha)
            c = c.reset_index(drop=True)
            c["decided_by"] = "pixels"
            c["reason"] = v["reason"].to_numpy()
            c["verdict"] = v["verdict"].to_numpy()
            c["verified_flipped"] = v["verified_flipped"].to_numpy()
            return c

        cand = decide(candidates)
        known = set(zip(exact["image_id_a"], exact["image_id_b"]))
        for _ in range(CLOSURE_ROUNDS):  # copies of one picture are copies of each other
            extra = _closure_candidates(cand, known)
            if extra.empty:
                break
            cand = pd.concat([cand, decide(extra)], ignore_index=True)
        # too few features to verify (near-blank pictures): the strict perceptual rule decides
        strict = math.floor((1.0 - DEFAULT_THRESHOLDS["phash"]) * HASH_BITS + 1e-9)
        fallback = (cand["verdict"] == "unverifiable") & (cand["hamming"] <= strict)
        cand.loc[fallback, "decided_by"] = "perceptual code (too few features to verify)"
        keep = (cand["verdict"] == "same") | fallback
        cand.loc[cand["verdict"] == "same", "flipped"] = cand.loc[
            cand["verdict"] == "same", "verified_flipped"].astype(bool)
        rejected = cand[~keep]
        accepted = cand[keep].drop(columns=["verdict", "verified_flipped"])
        used.append("pixels")
    else:
        accepted = candidates.assign(decided_by="threshold", reason="")
        rejected = candidates.iloc[0:0].assign(decided_by="", reason="", verdict="")
    pairs = pd.concat([p for p in (exact, accepted) if len(p)] or [exact], ignore_index=True)
    pairs = pairs.sort_values(["image_id_a", "image_id_b"], ignore_index=True)
    pairs = _describe_pairs(pairs, ds)
    clusters, removal, pairs = _clusters(ds, pairs, t)
    inconsistent = _inconsistent_labels(ds, clusters)
    thr_out = threshold if threshold is not None else (
        None if not use_phash else emb_thr if method == "embedding" else phash_thr)
    n_rejected = len(rejected)
    if verify and n_rejected:
        notes.append(f"{n_rejected:,} candidate pair(s) that look alike were compared on the "
                     f"pixels and are not the same picture (see rejected).")
    return DuplicatesResult(method=method, threshold=thr_out, hash_radius=radius,
                            n_images=len(ds.images), n_checked=int(ok.sum()), pairs=pairs,
                            clusters=clusters, removal=removal, inconsistent=inconsistent,
                            methods_used=tuple(used), notes=tuple(notes),
                            rejected=_describe_rejected(rejected, ds), verified=verify)


def _nearest_per_image(pairs: pd.DataFrame, col: str, *, ascending: bool,
                       k: int = CANDIDATES_PER_IMAGE) -> pd.DataFrame:
    """Keep each image's k nearest candidates (a pair stays when it is among the k nearest of
    either image)."""
    if len(pairs) <= k:
        return pairs
    p = pairs.reset_index(drop=True)
    ra = p.groupby("image_id_a")[col].rank(method="first", ascending=ascending)
    rb = p.groupby("image_id_b")[col].rank(method="first", ascending=ascending)
    return p[(ra <= k) | (rb <= k)]


def _closure_candidates(cand: pd.DataFrame, known: set = frozenset()) -> pd.DataFrame:
    """Pairs (a, c) not yet compared where (a, b) and (b, c) were confirmed "same", through
    images b with at most CLOSURE_MAX_DEGREE confirmed partners; ``proposed_by`` names b."""
    same = cand[cand["verdict"] == "same"]
    if len(same) < 2:
        return cand.iloc[0:0].drop(columns=["decided_by", "reason", "verdict",
                                            "verified_flipped"], errors="ignore")
    seen = set(zip(cand["image_id_a"], cand["image_id_b"])) | set(known)
    sim = {}
    nbrs: dict[int, list[int]] = {}
    for a, b, x in zip(same["image_id_a"], same["image_id_b"], same["similarity"]):
        nbrs.setdefault(int(a), []).append(int(b))
        nbrs.setdefault(int(b), []).append(int(a))
        sim[(int(a), int(b))] = sim[(int(b), int(a))] = float(x)
    new: dict[tuple[int, int], tuple[int, float]] = {}
    for mid, ns in nbrs.items():
        if len(ns) > CLOSURE_MAX_DEGREE:
            continue
        for x, y in combinations(sorted(set(ns)), 2):
            if (x, y) not in seen and (x, y) not in new:
                new[(x, y)] = (mid, min(sim[(x, mid)], sim[(y, mid)]))
    if not new:
        return cand.iloc[0:0].drop(columns=["decided_by", "reason", "verdict",
                                            "verified_flipped"], errors="ignore")
    keys = sorted(new)
    out = _pair_frame([k[0] for k in keys], [k[1] for k in keys], "transitive",
                      [new[k][1] for k in keys], None, False)
    return out.assign(proposed_by=[f"transitive (through image {new[k][0]})" for k in keys])


def _merge_candidates(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per candidate pair, naming every source that proposed it."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return _pair_frame([], [], "phash", []).assign(proposed_by="")
    allp = pd.concat(parts, ignore_index=True)
    allp = allp[allp["image_id_a"] != allp["image_id_b"]]
    by = allp.groupby(["image_id_a", "image_id_b"])["method"].agg(
        lambda s: "+".join(sorted(set(s), key=["phash", "embedding", "layout"].index)))
    best = allp.sort_values(["similarity"], ascending=False, kind="stable").drop_duplicates(
        ["image_id_a", "image_id_b"])
    # the hamming distance of a pair proposed by embeddings alone is unknown here
    ham = allp.dropna(subset=["hamming"]).drop_duplicates(["image_id_a", "image_id_b"]) \
        .set_index(["image_id_a", "image_id_b"])["hamming"]
    best = best.set_index(["image_id_a", "image_id_b"])
    best["hamming"] = ham.reindex(best.index)
    best["proposed_by"] = by.reindex(best.index)
    best["method"] = best["proposed_by"].str.split("+").str[0]
    return best.reset_index().sort_values(["image_id_a", "image_id_b"], ignore_index=True)


def _describe_rejected(rej: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    cols = ["image_id_a", "image_id_b", "file_a", "file_b", "proposed_by", "similarity",
            "hamming", "verdict", "reason"]
    if rej.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    names = ds.images.set_index(IMAGE_ID)[FILE_NAME].astype(str)
    out = rej.copy()
    out["file_a"] = out["image_id_a"].map(names)
    out["file_b"] = out["image_id_b"].map(names)
    return out[cols].reset_index(drop=True)


def _pair_frame(a, b, method, similarity, hamming=None, flipped=None) -> pd.DataFrame:
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n = len(a)
    return pd.DataFrame({"image_id_a": lo, "image_id_b": hi, "method": [method] * n,
                         "similarity": np.broadcast_to(np.asarray(similarity, float), n),
                         "hamming": np.broadcast_to(np.asarray(
                             np.nan if hamming is None else hamming, float), n),
                         "flipped": np.broadcast_to(np.asarray(bool(flipped) if flipped is None
                                                               or np.isscalar(flipped)
                                                               else flipped, bool), n)})


def _group_pairs(ids: np.ndarray, keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of ids sharing a key: every pair in small groups, star edges in big ones."""
    a, b = [], []
    df = pd.DataFrame({"id": ids, "key": keys.to_numpy()}).dropna()
    df = df[df["key"].duplicated(keep=False)]  # only shared keys: no loop over a million singles
    for _, grp in df.groupby("key", sort=False)["id"]:
        members = grp.to_numpy()
        if len(members) < 2:
            continue
        if len(members) <= MAX_GROUP_PAIRS:
            for x, y in combinations(members, 2):
                a.append(x)
                b.append(y)
        else:
            a.extend([members[0]] * (len(members) - 1))
            b.extend(members[1:])
    return np.asarray(a, np.int64), np.asarray(b, np.int64)


def _exact_pairs(ids: np.ndarray, t: pd.DataFrame) -> pd.DataFrame:
    a1, b1 = _group_pairs(ids, t["sha256"])
    a2, b2 = _group_pairs(ids, t["pixel_hash"])
    return pd.concat([_pair_frame(a1, b1, "sha256", 1.0, 0.0),
                      _pair_frame(a2, b2, "pixels", 1.0, 0.0)], ignore_index=True)


def _listed_twice(ds: Dataset) -> pd.DataFrame:
    import posixpath

    names = ds.images[FILE_NAME].astype(str).map(lambda s: posixpath.normpath(s.replace("\\", "/")))
    a, b = _group_pairs(ds.images[IMAGE_ID].to_numpy(dtype=np.int64), names)
    return _pair_frame(a, b, LISTED_TWICE, 1.0)


def _phash_pairs(ids: np.ndarray, t: pd.DataFrame, radius: int) -> pd.DataFrame:
    """Perceptual pairs within ``radius`` bits, plain and mirrored. Images with the very same
    code are searched once (10,000 blank frames are one code, not 50 million candidate
    pairs); such a group yields all its pairs up to MAX_GROUP_PAIRS members, star edges
    above, and two groups within the radius yield all their cross pairs while those number
    at most MAX_GROUP_PAIRS, else the pair of their first members (the clusters are the same
    either way)."""
    if len(ids) < 2:
        return _pair_frame([], [], "phash", [])
    codes = np.stack([t["phash"].to_numpy(np.uint64), t["dhash"].to_numpy(np.uint64)], axis=1)
    flips = np.stack([t["phash_flip"].to_numpy(np.uint64),
                      t["dhash_flip"].to_numpy(np.uint64)], axis=1)
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    same = find_hash_pairs(codes[first], radius=radius)
    mirrored = find_hash_pairs(codes[first], radius=radius, queries=flips[first])
    order = np.argsort(inverse, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(inverse, minlength=len(first)))]
    members = lambda g: ids[order[bounds[g]:bounds[g + 1]]]
    sizes = np.diff(bounds)
    frames = []
    for found, flipped in ((same, False), (mirrored, True)):
        gi, gj = found["i"].to_numpy(), found["j"].to_numpy()
        dist = found["distance"].to_numpy()
        single = (sizes[gi] == 1) & (sizes[gj] == 1)
        a, b, d = [ids[first[gi[single]]]], [ids[first[gj[single]]]], [dist[single]]
        for x, y, dd in zip(gi[~single], gj[~single], dist[~single]):
            ma, mb = members(x), members(y)
            if len(ma) * len(mb) > MAX_GROUP_PAIRS:
                ma, mb = ma[:1], mb[:1]
            aa, bb = np.meshgrid(ma, mb, indexing="ij")
            a.append(aa.ravel())
            b.append(bb.ravel())
            d.append(np.full(aa.size, dd))
        a, b, d = np.concatenate(a), np.concatenate(b), np.concatenate(d)
        frames.append(_pair_frame(a, b, "phash", 1 - d / HASH_BITS, d, flipped))
    for g in np.flatnonzero(sizes > 1):  # identical codes: distance 0
        gid, gsame = _group_pairs(members(g), pd.Series(np.zeros(sizes[g])))
        frames.append(_pair_frame(gid, gsame, "phash", 1.0, 0.0, False))
    out = pd.concat(frames, ignore_index=True)
    out = out[out["image_id_a"] != out["image_id_b"]]
    # the closest reading of each pair (plain or mirrored) wins
    return out.sort_values("hamming", kind="stable").drop_duplicates(["image_id_a", "image_id_b"])


def _embedding_pairs(emb, threshold: float, ok_ids: np.ndarray, notes: list,
                     per_image: int | None = None, ray: str | None = None) -> pd.DataFrame:
    vectors = getattr(emb, "vectors", None)
    emb_ids = getattr(emb, "image_ids", None)
    if vectors is None or emb_ids is None:
        raise TypeError(f"embeddings must be a qa.embeddings.Embeddings, got "
                        f"{type(emb).__name__}")
    if getattr(emb, "ann_ids", None) is not None:
        raise ValueError("these are object embeddings (ann_ids set); near-duplicates compare "
                         "whole images: pass image embeddings")
    emb_ids = np.asarray(emb_ids, np.int64)
    keep = np.isin(emb_ids, ok_ids)
    missing = len(ok_ids) - int(np.isin(ok_ids, emb_ids).sum())
    if missing:
        notes.append(f"{missing} readable image(s) have no embedding and were compared by "
                     f"their pixels only.")
    sub = emb_ids[keep]
    x = np.asarray(vectors)[keep]
    if ray is not None:  # the same pairs, the index built and searched on a cluster
        from qa.distributed.search import find_near_duplicates_sharded

        pairs = find_near_duplicates_sharded(x, threshold=threshold, ray=ray)
    elif per_image is not None:  # each image's nearest neighbours above the threshold
        pairs = _knn_pairs(x, threshold, per_image)
    else:
        pairs = find_near_duplicates(x, threshold=threshold)
    found = _pair_frame(sub[pairs["i"]], sub[pairs["j"]], "embedding",
                        pairs["similarity"].to_numpy(), None, False)
    if ray is not None and per_image is not None:
        found = _nearest_per_image(found, "similarity", ascending=False, k=per_image)
    return found


def _knn_pairs(vectors: np.ndarray, threshold: float, k: int) -> pd.DataFrame:
    """(i, j, similarity): each row's k nearest rows by cosine, kept at >= threshold."""
    from qa.outliers import nearest_neighbors

    x = np.asarray(vectors, np.float32)
    if len(x) < 2:
        return pd.DataFrame({"i": [], "j": [], "similarity": []})
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    dist, idx = nearest_neighbors(x, min(k, len(x) - 1))
    i = np.repeat(np.arange(len(x)), idx.shape[1])
    j = idx.ravel()
    sim = 1.0 - dist.ravel().astype(float) ** 2 / 2.0
    ok = (j >= 0) & (sim >= threshold - 1e-6) & (norms.ravel()[i] > 0)
    i, j, sim = i[ok], j[ok], sim[ok]
    out = pd.DataFrame({"i": np.minimum(i, j), "j": np.maximum(i, j),
                        "similarity": np.minimum(sim, 1.0)})
    return out.drop_duplicates(["i", "j"]).reset_index(drop=True)


def _layout_pairs(ds: Dataset, ok_ids: np.ndarray, k: int) -> pd.DataFrame:
    """Candidates from the labels: each labelled image's k nearest images by the layout of its
    boxes (:data:`LAYOUT_GRID`), plain or mirrored, at cosine >= :data:`LAYOUT_MIN`."""
    from qa.dataset import HEIGHT, WIDTH, H, W, X, Y

    anns = ds.annotations
    if anns.empty or W not in anns:
        return _pair_frame([], [], "layout", [])
    im = ds.images.set_index(IMAGE_ID)[[WIDTH, HEIGHT]].astype("Float64")
    a = anns[anns[W].notna() & anns[IMAGE_ID].isin(ok_ids)]
    a = a.join(im, on=IMAGE_ID)
    a = a[(a[WIDTH] > 0) & (a[HEIGHT] > 0)]
    if a.empty:
        return _pair_frame([], [], "layout", [])
    img = np.unique(a[IMAGE_ID].to_numpy(np.int64))
    if len(img) < 2:
        return _pair_frame([], [], "layout", [])
    row = np.searchsorted(img, a[IMAGE_ID].to_numpy(np.int64))
    cls = pd.factorize(a[CATEGORY_ID])[0] % LAYOUT_CLASSES
    cx = ((a[X] + a[W] / 2) / a[WIDTH]).to_numpy(float)
    cy = ((a[Y] + a[H] / 2) / a[HEIGHT]).to_numpy(float)
    g = (np.arange(LAYOUT_GRID) + 0.5) / LAYOUT_GRID
    wy = np.exp(-(g[None, :] - cy[:, None]) ** 2 / (2 * LAYOUT_SIGMA ** 2))
    maps = []
    for x in (cx, 1.0 - cx):  # plain and mirrored
        wx = np.exp(-(g[None, :] - x[:, None]) ** 2 / (2 * LAYOUT_SIGMA ** 2))
        v = np.zeros((len(img), LAYOUT_CLASSES, LAYOUT_GRID, LAYOUT_GRID), np.float32)
        np.add.at(v, (row, cls), (wy[:, :, None] * wx[:, None, :]).astype(np.float32))
        v = v.reshape(len(img), -1)
        maps.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9))
    # the mirrored maps are searched as extra rows: row n + i is image i mirrored
    pairs = _knn_pairs(np.vstack(maps), LAYOUT_MIN, min(2 * k, 2 * len(img) - 1))
    i, j = pairs["i"].to_numpy() % len(img), pairs["j"].to_numpy() % len(img)
    flipped = (pairs["i"].to_numpy() >= len(img)) != (pairs["j"].to_numpy() >= len(img))
    keep = i != j
    found = _pair_frame(img[i[keep]], img[j[keep]], "layout",
                        pairs["similarity"].to_numpy()[keep], None, flipped[keep])
    found = found.sort_values("similarity", ascending=False, kind="stable").drop_duplicates(
        ["image_id_a", "image_id_b"])
    return _nearest_per_image(found, "similarity", ascending=False, k=k)


_PRIORITY = {LISTED_TWICE: 0, "sha256": 1, "pixels": 2, "phash": 3, "embedding": 4}


def _merge_pairs(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per pair, the strongest evidence first (same file > bytes > pixels > ...)."""
    pairs = pd.concat([p for p in parts if len(p)] or [parts[0]], ignore_index=True)
    pairs = pairs[pairs["image_id_a"] != pairs["image_id_b"]]
    pairs = pairs.assign(_p=pairs["method"].map(_PRIORITY))
    pairs = pairs.sort_values(["_p", "similarity"], ascending=[True, False], kind="stable")
    pairs = pairs.drop_duplicates(["image_id_a", "image_id_b"]).drop(columns="_p")
    return pairs.sort_values(["image_id_a", "image_id_b"], ignore_index=True)


def _describe_pairs(pairs: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    im = ds.images.set_index(IMAGE_ID)
    split = im[SPLIT].astype(object).where(im[SPLIT].notna(), None) if SPLIT in im else None
    out = pairs.copy()
    for side in ("a", "b"):
        col = out[f"image_id_{side}"]
        out[f"split_{side}"] = col.map(split) if split is not None else None
        out[f"file_{side}"] = col.map(im[FILE_NAME].astype(str))
    sa, sb = out["split_a"], out["split_b"]
    out["cross_split"] = (sa.notna() & sb.notna() & (sa.astype(str) != sb.astype(str))
                          & (out["method"] != LISTED_TWICE)).astype(bool)
    out["hamming"] = out["hamming"].astype(float)
    out["flipped"] = out["flipped"].astype(bool)
    out["cluster_id"] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out[list(PAIR_COLUMNS)]


def _labels_by_image(ds: Dataset) -> dict[int, str]:
    anns = ds.annotations
    if anns.empty:
        return {}
    names = ds.category_names
    g = anns.groupby(IMAGE_ID)[CATEGORY_ID].agg(
        lambda s: ", ".join(names.get(int(c), str(c)) for c in sorted(set(s))))
    return g.to_dict()


_SPLIT_RANK = {"train": 0, "val": 1, "test": 2}


def _clusters(ds: Dataset, pairs: pd.DataFrame, t: pd.DataFrame):
    """Connected components of the pair graph; a representative and keep/remove per image."""
    empty_c = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
    empty_r = pd.DataFrame({c: pd.Series(dtype=object) for c in
                            ("image_id", "file_name", "split", "cluster_id", "keep_instead",
                             "reason")})
    if pairs.empty:
        return empty_c.astype({"cluster_id": "int64", "image_id": "int64"}), \
            empty_r.astype({"image_id": "int64"}), pairs
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, inv = np.unique(np.r_[pairs["image_id_a"], pairs["image_id_b"]], return_inverse=True)
    m = len(pairs)
    graph = coo_matrix((np.ones(m), (inv[:m], inv[m:])), shape=(len(nodes), len(nodes)))
    _, comp = connected_components(graph, directed=False)
    labels = _labels_by_image(ds)
    im = ds.images.set_index(IMAGE_ID)
    area = (t["width"].astype("Float64") * t["height"].astype("Float64")).fillna(0)
    exact_ids = set(pairs.loc[pairs["method"].isin(EXACT_METHODS), "image_id_a"]) | \
        set(pairs.loc[pairs["method"].isin(EXACT_METHODS), "image_id_b"])
    # cluster ids numbered by their smallest image id, so they are stable run to run
    order = pd.Series(nodes).groupby(comp).min().sort_values()
    renumber = {c: k + 1 for k, c in enumerate(order.index)}
    rows, removal = [], []
    for c, members in pd.Series(nodes).groupby(comp):
        cid = renumber[c]
        ms = [int(x) for x in members]
        splits = {i: (None if pd.isna(im.at[i, SPLIT]) else str(im.at[i, SPLIT]))
                  if SPLIT in im else None for i in ms}
        known = {s for s in splits.values() if s}
        rep = min(ms, key=lambda i: (_SPLIT_RANK.get(splits[i], 3) if len(known) > 1 else 0,
                                     i not in labels, -float(area.get(i, 0)), i))
        for i in ms:
            if i == rep:
                why = ("kept: the train copy (the others leak into "
                       f"{'/'.join(sorted(known - {splits[i]}))})" if len(known) > 1 and
                       splits[i] == "train" else
                       "kept: " + ("the labelled, largest copy" if i in labels else
                                   "the largest copy"))
                action = "keep"
            else:
                action = "remove"
                rf = im.at[rep, FILE_NAME]
                if splits[i] and splits[rep] and splits[i] != splits[rep]:
                    why = f"leaks {rf} ({splits[rep]}) into {splits[i]}"
                elif i in exact_ids and rep in exact_ids:
                    why = f"a copy of {rf}"
                elif rep in labels and i not in labels:
                    why = f"an unlabelled copy of {rf}"
                else:
                    why = f"a near-duplicate of {rf}"
                removal.append((i, im.at[i, FILE_NAME], splits[i], cid, rep, why))
            rows.append((cid, i, im.at[i, FILE_NAME], splits[i], i == rep, action, why,
                         labels.get(i, "")))
    clusters = pd.DataFrame(rows, columns=list(CLUSTER_COLUMNS)).sort_values(
        ["cluster_id", "is_representative", "image_id"], ascending=[True, False, True],
        ignore_index=True)
    removal_df = pd.DataFrame(removal, columns=list(empty_r.columns)).sort_values(
        ["cluster_id", "image_id"], ignore_index=True)
    cmap = dict(zip(clusters["image_id"], clusters["cluster_id"]))
    pairs = pairs.assign(cluster_id=pd.array(pairs["image_id_a"].map(cmap), dtype="Int64"))
    return clusters, removal_df, pairs


def _inconsistent_labels(ds: Dataset, clusters: pd.DataFrame) -> pd.DataFrame:
    """Clusters whose copies carry different class sets for the same annotator."""
    cols = ["cluster_id", "image_ids", "annotator", "labels"]
    anns = ds.annotations
    if clusters.empty or anns.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    members = clusters.groupby("cluster_id")["image_id"].apply(list)
    sub = anns[anns[IMAGE_ID].isin(clusters["image_id"])]
    per = sub.groupby([sub[ANNOTATOR].astype(str), IMAGE_ID])[CATEGORY_ID].agg(
        lambda s: tuple(sorted({int(x) for x in s})))
    names = ds.category_names
    files = dict(zip(ds.images[IMAGE_ID], ds.images[FILE_NAME]))
    rows = []
    for annotator in sorted(sub[ANNOTATOR].astype(str).unique()):
        mine = per.loc[annotator].to_dict() if annotator in per.index.get_level_values(0) else {}
        labelled = set(mine)
        for cid, ids in members.items():
            if not labelled.intersection(ids):
                continue  # this annotator labelled none of the copies
            sets = {i: mine.get(i, ()) for i in ids}
            if len(set(sets.values())) > 1:
                text = "; ".join(f"{files.get(i, i)}: "
                                 f"{', '.join(names.get(c, str(c)) for c in v) or 'none'}"
                                 for i, v in sets.items())
                rows.append((cid, tuple(ids), annotator, text))
    return pd.DataFrame(rows, columns=cols)


def run_analysis(dataset: Dataset, ctx) -> DuplicatesResult:
    """Runner for :mod:`qa.analyses`: exact + perceptual duplicates from the shared pixel pass,
    plus semantic ones when embeddings are available (otherwise perceptual only, noted)."""
    from qa.analyses import Skip

    if dataset.root is None or dataset.images.empty:
        raise Skip("no image files to compare")
    stats = ctx.image_stats()
    method = ctx.option("duplicates", "method", "auto")
    emb = None
    if method in ("auto", "embedding"):
        try:
            emb = ctx.embeddings()
        except Skip as e:
            if method == "embedding":
                raise
            log.info("duplicates without embeddings: %s", e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return compute_duplicates(dataset, stats=stats, embeddings=emb, method=method,
                                  threshold=ctx.option("duplicates", "threshold"),
                                  ray=getattr(ctx, "ray", None))


__all__ = [
    "DEFAULT_THRESHOLDS",
    "EXACT_SEARCH_MAX",
    "DuplicatesResult",
    "compute_duplicates",
    "find_hash_pairs",
    "find_near_duplicates",
    "run_analysis",
]
