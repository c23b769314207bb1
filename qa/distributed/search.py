"""Near-duplicate search over a cluster: the same pairs as
:func:`qa.duplicates.find_near_duplicates` (same threshold, same ``(i, j, similarity)`` frame
with i < j, most similar first), with the index built and searched by Ray tasks.

1. **Train** the coarse quantizer and the codec on a sample (IVF_TRAIN_PER_LIST points per
   list, as the single-machine search does), in one task.
2. **Add** the vectors shard by shard, one task per shard (each encodes its shard with the
   trained index); the shards' inverted lists are merged into one index.
3. **Search** each shard's vectors against the whole index in parallel, one task per shard,
   with a margin under the threshold; the driver re-scores every candidate exactly (the
   codes understate or overstate a similarity by a little) and keeps those at the threshold.

``codec="sq8"`` (8-bit scalar quantisation: a quarter of float32, what the single-machine
search uses; a range search with a margin) or ``"pq"`` (product quantisation, d/8 bytes per
vector: 64 B for 512-d, the choice at 100M vectors, see docs/scale.md). PQ codes misjudge a
cosine by too much for a fixed margin (on random 512-d vectors a 0.97 pair scores ~0.7), but
keep the order of the neighbours: with PQ each vector's :data:`PQ_NEIGHBOURS` nearest are
taken as candidates and re-scored exactly, so a group of more than that many copies of one
picture is linked through chains of pairs rather than all its pairs. Recall against the
single-machine search is measured in benchmarks/bench_ray.py and tested in tests/distributed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from qa.duplicates import (
    DEFAULT_THRESHOLDS,
    EXACT_SEARCH_MAX,
    IVF_LISTS_PER_SQRT,
    IVF_MAX_LIST_SIZE,
    IVF_NPROBE,
    IVF_TRAIN_ITER,
    IVF_TRAIN_PER_LIST,
    SQ_MARGIN,
    find_near_duplicates,
)

CODECS = ("sq8", "pq")
# Vectors per shard: 250k x 512 float32 = 0.5 GB per task's input, a fair unit to lose and
# redo when a node goes away.
DEFAULT_SHARD_SIZE = 250_000
# SQ8: candidates within this much under the threshold are re-scored exactly (it misjudges a
# cosine by ~1e-3: the single-machine margin).
MARGIN = {"sq8": SQ_MARGIN}
# PQ: the nearest neighbours of each vector (by its codes) re-scored exactly; near-duplicates
# are a picture's nearest neighbours by far, so 16 covers groups of up to 16 copies in full.
PQ_NEIGHBOURS = 16
# Queries per range_search call inside a task: bounds the result buffers.
_QUERY_BLOCK = 4096


def _index_bytes(index) -> np.ndarray:
    import faiss

    return faiss.serialize_index(index)


def _train(sample: np.ndarray, nlist: int, codec: str):
    import faiss

    d = sample.shape[1]
    quantizer = faiss.IndexFlatIP(d)
    if codec == "pq":
        m = _pq_m(d)
        index = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
    index.cp.max_points_per_centroid = max(IVF_TRAIN_PER_LIST, 256 if codec == "pq" else 0)
    index.cp.min_points_per_centroid = min(IVF_TRAIN_PER_LIST, 16)
    index.cp.niter = IVF_TRAIN_ITER
    index.train(np.ascontiguousarray(sample, np.float32))
    return _index_bytes(index)


def _pq_m(d: int) -> int:
    """Sub-quantizers for PQ: one per 8 dimensions (64 for 512-d), a divisor of d."""
    m = max(1, d // 8)
    while d % m:
        m -= 1
    return m


def _add(trained: np.ndarray, shard: np.ndarray, offset: int) -> np.ndarray:
    import faiss

    index = faiss.deserialize_index(trained)
    index.add_with_ids(np.ascontiguousarray(shard, np.float32),
                       np.arange(offset, offset + len(shard), dtype=np.int64))
    return _index_bytes(index)


def _search(index_bytes: np.ndarray, shard: np.ndarray, offset: int, radius: float | None,
            nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i < j) of the shard's rows against the index: within ``radius`` by
    the codes, or (``radius=None``, PQ) each row's PQ_NEIGHBOURS nearest."""
    import faiss

    index = faiss.deserialize_index(index_bytes)
    index.nprobe = nprobe
    qs, js = [], []
    for start in range(0, len(shard), _QUERY_BLOCK):
        block = np.ascontiguousarray(shard[start:start + _QUERY_BLOCK], np.float32)
        if radius is None:
            _, nn = index.search(block, PQ_NEIGHBOURS + 1)
            q = offset + start + np.repeat(np.arange(len(block)), nn.shape[1])
            ids = nn.reshape(-1).astype(np.int64)
            ok = ids >= 0
            q, ids = q[ok], ids[ok]
        else:
            lims, _, ids = index.range_search(block, radius)
            q = offset + start + np.repeat(np.arange(len(lims) - 1),
                                           np.diff(lims).astype(np.int64))
            ids = ids.astype(np.int64)
        keep = q != ids
        qs.append(np.minimum(q[keep], ids[keep]))
        js.append(np.maximum(q[keep], ids[keep]))
    return np.concatenate(qs), np.concatenate(js)


def find_near_duplicates_sharded(vectors, *, ray: str = "auto",
                                 threshold: float = DEFAULT_THRESHOLDS["embedding"],
                                 exact_max: int = EXACT_SEARCH_MAX, nprobe: int = IVF_NPROBE,
                                 nlist: int | None = None,
                                 shard_size: int = DEFAULT_SHARD_SIZE,
                                 codec: str = "sq8") -> pd.DataFrame:
    """Every pair of rows of ``vectors`` whose cosine similarity is at least ``threshold``,
    as :func:`qa.duplicates.find_near_duplicates` returns them, searched on the Ray cluster
    ``ray``. Up to ``exact_max`` rows the single-machine exact search is used (a cluster
    would only add overhead); above it an IVF index (``codec`` "sq8" or "pq", ``nlist`` lists,
    default as the single-machine search) is trained, filled and searched in shards of
    ``shard_size`` rows."""
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n x d), got shape {x.shape}")
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive number of rows, got {shard_size!r}")
    if len(x) <= exact_max:
        return find_near_duplicates(x, threshold=threshold, exact_max=exact_max)
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"vectors must be numbers, got dtype {x.dtype}")
    if not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values; drop or recompute those rows")
    return _compute_sharded(x, ray, float(threshold), nprobe, nlist, shard_size, codec)


def _compute_sharded(x: np.ndarray, address: str, threshold: float, nprobe: int,
                     nlist: int | None, shard_size: int, codec: str) -> pd.DataFrame:
    from qa.distributed.cluster import connect

    connect(address)
    import ray

    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    rows = np.flatnonzero(norms > 0)  # a zero vector has no direction: it matches nothing
    empty = pd.DataFrame({"i": np.zeros(0, np.int64), "j": np.zeros(0, np.int64),
                          "similarity": np.zeros(0, np.float32)})
    if len(rows) < 2:
        return empty
    xn = x[rows] / norms[rows, None]
    n, d = xn.shape
    lists = nlist or max(1, int(IVF_LISTS_PER_SQRT * math.sqrt(n)), n // IVF_MAX_LIST_SIZE)
    rng = np.random.default_rng(0)
    per_list = max(IVF_TRAIN_PER_LIST, 256 if codec == "pq" else 0)  # PQ's k-means needs 256
    sample = xn[np.sort(rng.choice(n, min(n, lists * per_list), replace=False))]
    train = ray.remote(_train).options(num_cpus=1)
    add = ray.remote(_add).options(num_cpus=1)
    search = ray.remote(_search).options(num_cpus=1)
    trained = train.remote(sample, lists, codec)
    starts = list(range(0, n, shard_size))
    shards = [ray.put(xn[s:s + shard_size]) for s in starts]
    parts = ray.get([add.remote(trained, sh, s) for sh, s in zip(shards, starts)])
    import faiss

    index = faiss.deserialize_index(ray.get(trained))
    for p in parts:  # the shards' inverted lists into one index
        index.merge_from(faiss.deserialize_index(p), 0)
    full = ray.put(_index_bytes(index))
    del index, parts
    radius = threshold - MARGIN[codec] if codec in MARGIN else None
    found = ray.get([search.remote(full, sh, s, radius, min(nprobe, lists))
                     for sh, s in zip(shards, starts)])
    qi = np.concatenate([f[0] for f in found])
    qj = np.concatenate([f[1] for f in found])
    pairs = np.unique(np.stack([qi, qj], 1), axis=0) if len(qi) else np.zeros((0, 2), np.int64)
    sims = np.einsum("ij,ij->i", xn[pairs[:, 0]], xn[pairs[:, 1]]) if len(pairs) else \
        np.zeros(0, np.float32)
    keep = sims >= threshold - 1e-6
    out = pd.DataFrame({"i": rows[pairs[keep, 0]], "j": rows[pairs[keep, 1]],
                        "similarity": np.minimum(sims[keep], 1.0).astype(np.float32)})
    return out.sort_values(["similarity", "i", "j"], ascending=[False, True, True],
                           ignore_index=True)
