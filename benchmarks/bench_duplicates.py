"""Speed and recall of qa.duplicates' searches on synthetic data (seeded).

1. Vectors: ``--n`` random 512-d unit vectors (default 100k) with ``--pairs`` planted
   near-duplicate pairs (cosine ~0.97). ``find_near_duplicates`` (IVF above EXACT_SEARCH_MAX)
   against exact search (faiss IndexFlatIP, brute force) and against scikit-learn's
   NearestNeighbors(metric="cosine", algorithm="brute").radius_neighbors. Exact search and
   scikit-learn answer every query in full with ``--full``; by default they answer a
   ``--sample`` of the queries (every planted pair's first image among them) and their time is
   scaled up to all queries, since each query costs the same in a brute-force search. Recall is
   the share of the exact search's pairs (among the sampled queries) that the index found.
2. Hashes: ``--hashes`` random 64-bit codes (default 1M) with planted pairs at Hamming
   distance 0-6; ``find_hash_pairs(radius=6)`` must find every planted pair; faiss'
   IndexBinaryFlat range search on a sample of the queries is the scaled baseline.

Targets (issue 9): 100k vectors in < 15 s with recall >= 0.98 and >= 10x faster than
scikit-learn; 1M vectors (``--n 1000000``) in < 5 min, recall >= 0.95, peak memory < 6 GB;
1M hashes within radius 6 in < 60 s. Prints every figure.

Run: ``.venv/bin/python benchmarks/bench_duplicates.py [--n 100000] [--hashes 1000000]``
(``--skip-vectors`` / ``--skip-hashes`` run one part).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from qa.duplicates import EXACT_SEARCH_MAX, find_hash_pairs, find_near_duplicates

SEED = 0
THRESHOLD = 0.95


def planted_vectors(n: int, d: int, n_pairs: int, seed: int = SEED):
    rng = np.random.default_rng(seed)
    x = np.empty((n, d), np.float32)
    for start in range(0, n, 50_000):  # in blocks: no n x d temporaries, so the peak memory
        block = rng.standard_normal((min(50_000, n - start), d), dtype=np.float32)  # seen
        block /= np.linalg.norm(block, axis=1, keepdims=True)  # later is the search's own
        x[start:start + len(block)] = block
    idx = rng.choice(n, 2 * n_pairs, replace=False)
    a, b = idx[:n_pairs], idx[n_pairs:]
    # a twin: the original plus noise of norm ~0.25 -> cosine ~0.97 (0.955-0.985)
    noise = rng.standard_normal((n_pairs, d), dtype=np.float32) * (0.25 / np.sqrt(d))
    x[b] = x[a] + noise
    x[b] /= np.linalg.norm(x[b], axis=1, keepdims=True)
    return x, np.minimum(a, b), np.maximum(a, b)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def bench_vectors(n: int, d: int, n_pairs: int, sample: int, full: bool) -> None:
    import faiss
    from sklearn.neighbors import NearestNeighbors

    x, a, b = planted_vectors(n, d, n_pairs)
    print(f"vectors: n={n:,} d={d} planted pairs={n_pairs:,} threshold={THRESHOLD} "
          f"(exact search up to {EXACT_SEARCH_MAX:,}); data {x.nbytes / 1e9:.2f} GB; "
          f"peak RSS so far {peak_rss_gb():.2f} GB")
    t0 = time.perf_counter()
    got = find_near_duplicates(x, threshold=THRESHOLD)
    t_ours = time.perf_counter() - t0
    print(f"  find_near_duplicates: {t_ours:.1f} s, {len(got):,} pairs; "
          f"peak RSS {peak_rss_gb():.2f} GB")
    found = set(zip(got["i"].tolist(), got["j"].tolist()))

    rng = np.random.default_rng(SEED + 1)
    if full or sample >= n:
        queries = np.arange(n)
    else:
        rest = np.setdiff1d(np.arange(n), a)
        queries = np.sort(np.r_[a, rng.choice(rest, max(0, sample - len(a)), replace=False)])
    scale = n / len(queries)
    # exact reference: faiss brute force (BLAS), the queries against all vectors
    index = faiss.IndexFlatIP(d)
    index.add(x)
    t0 = time.perf_counter()
    lims, _sims, ids = index.range_search(x[queries], THRESHOLD - 1e-6)
    t_exact = (time.perf_counter() - t0) * scale
    q = queries[np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64))]
    truth = {(min(i, j), max(i, j)) for i, j in zip(q.tolist(), ids.tolist()) if i != j}
    recall = len(truth & found) / max(len(truth), 1)
    planted = set(zip(a.tolist(), b.tolist()))
    print(f"  exact search (faiss IndexFlatIP): {t_exact:.1f} s"
          f"{'' if scale == 1 else f' (scaled from {len(queries):,} queries)'}; "
          f"{len(truth):,} pairs among those queries, planted pairs among them "
          f"{len(truth & planted):,}/{len(planted):,}")
    print(f"  recall against exact search: {recall:.4f} (target >= "
          f"{0.98 if n <= 200_000 else 0.95}); planted pairs found "
          f"{len(planted & found):,}/{len(planted):,}; false pairs "
          f"{len(found - truth - planted):,}")
    del index
    nn = NearestNeighbors(metric="cosine", algorithm="brute", n_jobs=-1).fit(x)
    sk_q = queries if scale == 1 else queries[:max(2000, len(queries) // 5)]
    t0 = time.perf_counter()
    nn.radius_neighbors(x[sk_q], radius=1 - THRESHOLD, return_distance=True)
    t_sk = (time.perf_counter() - t0) * (n / len(sk_q))
    print(f"  scikit-learn NearestNeighbors(brute, cosine).radius_neighbors: {t_sk:.1f} s"
          f"{'' if len(sk_q) == n else f' (scaled from {len(sk_q):,} queries)'}")
    print(f"  => ours {t_ours:.1f} s vs scikit-learn {t_sk:.1f} s: {t_sk / t_ours:.1f}x faster "
          f"(target >= 10x); vs exact faiss {t_exact / t_ours:.1f}x")


def bench_hashes(n: int, n_pairs: int, radius: int = 6) -> None:
    import faiss

    rng = np.random.default_rng(SEED)
    codes = rng.integers(0, np.iinfo(np.int64).max, n, dtype=np.int64).astype(np.uint64) * \
        np.uint64(2) + rng.integers(0, 2, n).astype(np.uint64)
    idx = rng.choice(n, 2 * n_pairs, replace=False)
    a, b = idx[:n_pairs], idx[n_pairs:]
    flips = np.zeros(n_pairs, np.uint64)
    for k in range(n_pairs):
        for bit in rng.choice(64, rng.integers(0, radius + 1), replace=False):
            flips[k] |= np.uint64(1) << np.uint64(int(bit))
    codes[b] = codes[a] ^ flips
    planted = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
    print(f"hashes: n={n:,} 64-bit, planted pairs={n_pairs:,} at distance 0-{radius}")
    t0 = time.perf_counter()
    got = find_hash_pairs(codes, radius=radius)
    t_ours = time.perf_counter() - t0
    found = set(zip(got["i"].tolist(), got["j"].tolist()))
    print(f"  find_hash_pairs(radius={radius}): {t_ours:.1f} s (target < 60 s), {len(got):,} "
          f"pairs, planted found {len(planted & found):,}/{len(planted):,}, max distance "
          f"{int(got['distance'].max()) if len(got) else 0}; peak RSS {peak_rss_gb():.2f} GB")
    index = faiss.IndexBinaryFlat(64)
    raw = codes.astype(">u8").view(np.uint8).reshape(n, 8)
    index.add(raw)
    m = 2000
    t0 = time.perf_counter()
    index.range_search(raw[:m], radius + 1)  # binary range search keeps distance < radius
    t_flat = (time.perf_counter() - t0) * n / m
    print(f"  baseline faiss IndexBinaryFlat range search: {t_flat:.0f} s (scaled from {m:,} "
          f"queries) => {t_flat / t_ours:.0f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--sample", type=int, default=10_000,
                   help="queries answered by the brute-force baselines (scaled up)")
    p.add_argument("--full", action="store_true", help="baselines answer every query")
    p.add_argument("--hashes", type=int, default=1_000_000)
    p.add_argument("--hash-pairs", type=int, default=1000)
    p.add_argument("--skip-vectors", action="store_true")
    p.add_argument("--skip-hashes", action="store_true")
    args = p.parse_args()
    if not args.skip_hashes:
        bench_hashes(args.hashes, args.hash_pairs)
    if not args.skip_vectors:
        bench_vectors(args.n, args.dim, args.pairs, args.sample, args.full)


if __name__ == "__main__":
    main()
