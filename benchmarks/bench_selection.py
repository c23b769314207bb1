"""k-center greedy at scale: 1,000 picks from 1,000,000 x 512 vectors, and the same picks as
the plain algorithm.

    PYTHONPATH=. python benchmarks/bench_selection.py [--n 1000000] [--budget 1000]

1. Identity: 20,000 x 512 vectors (100 of them labelled), 1,000 picks by
   :func:`qa.kcenter.kcenter_greedy` (lazy, faiss for the labelled set) and by
   :func:`qa.kcenter.kcenter_greedy_plain` (every pick rescans every vector): the picks must be
   identical, in the same order.
2. Scale: ``--n`` x 512 float32 vectors (2 GB at 1M), 100 labelled, ``--budget`` picks, on
   two kinds of data: *clustered* (a mixture of 1,000 Gaussian clusters around a shared
   direction, like image embeddings, where a new center changes few distances) and
   *isotropic* (unit Gaussian noise: every distance about the same, the worst case for
   lazy updates). Prints the wall time and the process' peak RSS (which includes the vectors
   themselves), the CPU time of the process (on an idle machine the wall time is at
   most that: the greedy loop runs on one core, faiss' search on all), and as a baseline measured in the same run, the time one plain rescan of all
   vectors takes, times the budget: what the textbook algorithm would need.

Targets (issue 23): under 2 minutes and under 4 GB at 1M x 512, 1,000 picks; identical picks.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from qa.kcenter import kcenter_greedy, kcenter_greedy_plain, sq_dists, sq_norms

D = 512
N_LABELLED = 100
CLUSTERS = 1_000


def vectors(n: int, kind: str, seed: int = 0) -> np.ndarray:
    """n x D float32 unit vectors, generated a block at a time (no n x D temporary)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, D), np.float32)
    if kind == "clustered":
        shared = rng.standard_normal(D).astype(np.float32)
        centers = shared + rng.standard_normal((CLUSTERS, D)).astype(np.float32)
        spread = rng.uniform(0.3, 0.8, CLUSTERS).astype(np.float32)  # clusters differ in size
    for s in range(0, n, 65_536):
        m = min(65_536, n - s)
        block = rng.standard_normal((m, D), dtype=np.float32)
        if kind == "clustered":
            a = rng.integers(0, CLUSTERS, m)
            block *= spread[a, None]
            block += centers[a]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[s:s + m] = block
    return x


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--budget", type=int, default=1_000)
    ap.add_argument("--identity-n", type=int, default=20_000)
    ap.add_argument("--data", choices=("clustered", "isotropic", "both"), default="both")
    args = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[:3]} (2 cores shared)")

    # 1. identical picks --------------------------------------------------------------------
    x = vectors(args.identity_n, "clustered", seed=1)
    init = np.random.default_rng(1).choice(len(x), N_LABELLED, replace=False)
    t = time.perf_counter()
    fast, _ = kcenter_greedy(x, args.budget, initial=init)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    plain, _ = kcenter_greedy_plain(x, args.budget, initial=init)
    t_plain = time.perf_counter() - t
    same = np.array_equal(fast, plain)
    print(f"identity, {len(x):,} x {D}, {args.budget:,} picks: "
          f"{'IDENTICAL' if same else 'DIFFERENT'} picks in the same order "
          f"(lazy {t_fast:.1f} s, plain numpy {t_plain:.1f} s)")
    del x

    # 2. scale ------------------------------------------------------------------------------
    kinds = ("clustered", "isotropic") if args.data == "both" else (args.data,)
    for kind in kinds:
        t = time.perf_counter()
        x = vectors(args.n, kind)
        t_gen = time.perf_counter() - t
        init = np.random.default_rng(0).choice(args.n, N_LABELLED, replace=False)
        t, c = time.perf_counter(), time.process_time()
        picks, dist = kcenter_greedy(x, args.budget, initial=init)
        t_kc, c_kc = time.perf_counter() - t, time.process_time() - c
        # baseline: one plain rescan of every vector against one new center
        sq = sq_norms(x)
        t, c = time.perf_counter(), time.process_time()
        sq_dists(x, sq, np.arange(args.n), picks[:1])
        t_scan, c_scan = time.perf_counter() - t, time.process_time() - c
        print(f"{kind}: {args.budget:,} picks of {args.n:,} x {D} in {t_kc:.1f} s wall, "
              f"{c_kc:.1f} s CPU (vectors generated in {t_gen:.0f} s); radius {dist[0]:.3f} "
              f"-> {dist[-1]:.3f}; one plain rescan {t_scan:.2f} s wall, {c_scan:.2f} s CPU, "
              f"so the plain algorithm would need ~{c_scan * args.budget:.0f} s of CPU "
              f"({c_scan * args.budget / c_kc:.0f}x); peak RSS so far {peak_rss_gb():.2f} GB "
              f"(the vectors alone {x.nbytes / 1024 ** 3:.2f} GB)")
        del x, sq
    with open("/proc/loadavg") as f:
        print(f"load average at the end: {f.read().split()[:3]}")


if __name__ == "__main__":
    main()
