"""The embedding drift test at scale: 100k vs 100k images x 512-d with the permutation test.

    python benchmarks/bench_drift.py [--rows 100000 --dim 512 --permutations 999 --full]

Target (issue "Compare two datasets"): the MMD test with its permutation p-value on
100,000 vs 100,000 x 512 under 60 s on this machine (2 cores).

Above 4,000 pooled rows :func:`qa.drift.mmd_permutation_test` replaces the exact kernel
(200,000^2 entries) by random Fourier features (Rahimi & Recht 2007): 256 features per
bandwidth, 3 bandwidths (0.25, 0.5, 1 x the median heuristic), so the permutations are a
(P x n) by (n x 768) product. The permutation p-value is exact for the statistic computed;
what the approximation changes is the statistic itself, so this benchmark also measures that
error: exact vs RFF MMD² on 2,000 vs 2,000 subsamples, over several feature draws.

Prints the load average and a same-process baseline (a 4096^2 float32 matrix product) so that
times from a busy machine can be read as a ratio. ``--full`` also times the whole
:func:`qa.drift.compare_datasets` on embeddings only (clusters, coverage with the IVF search).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 60.0


def embeddings(n: int, d: int, *, seed: int, new_share: float = 0.0):
    """L2-normalised vectors around 20 broad centres (embeddings are not one blob); with
    ``new_share`` that part of the rows comes from a 21st centre (a new kind of scene)."""
    rng = np.random.default_rng(12345)  # the same centres for every call
    centres = rng.normal(0, 1, (21, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 20, n)
    lab[: int(new_share * n)] = 20
    v = centres[lab] + rng.normal(0, 0.8, (n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def baseline() -> float:
    a = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
    a @ a
    _, s = timed(lambda: a @ a)
    return s


def approximation_error(d: int, reps: int = 5) -> None:
    from qa.drift import MMD_BANDWIDTH_SCALES, RFF_FEATURES, mmd_permutation_test

    x = embeddings(2000, d, seed=11)
    for share, what in ((0.0, "same distribution"), (0.05, "5 % new scene"),
                        (0.3, "30 % new scene")):
        y = embeddings(2000, d, seed=12, new_share=share)
        exact = mmd_permutation_test(x, y, n_permutations=199)
        errs, p_rff = [], []
        for r in range(reps):
            rff = mmd_permutation_test(x, y, n_permutations=199, exact_max=100, seed=r,
                                       bandwidth=exact["bandwidth"])
            for c in exact["mmd2_by_scale"]:
                errs.append(rff["mmd2_by_scale"][c] - exact["mmd2_by_scale"][c])
            p_rff.append(rff["p_value"])
        errs = np.abs(errs)
        scale = max(abs(v) for v in exact["mmd2_by_scale"].values())
        print(f"  {what:<18} exact MMD² (median bandwidth) {exact['mmd2']:.2e}, p "
              f"{exact['p_value']:.3f}; RFF ({RFF_FEATURES} features x "
              f"{len(MMD_BANDWIDTH_SCALES)} bandwidths): |error| mean {errs.mean():.1e}, max "
              f"{errs.max():.1e} ({errs.max() / scale:.0%} of the largest MMD²), p "
              f"{min(p_rff):.3f}-{max(p_rff):.3f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000, help="rows per side")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--permutations", type=int, default=999)
    p.add_argument("--full", action="store_true", help="also the whole compare_datasets")
    p.add_argument("--skip-error", action="store_true", help="skip the approximation error")
    args = p.parse_args()
    from qa.drift import mmd_permutation_test

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; baseline 4096^2 "
          f"float32 matmul {baseline():.3f} s")
    a = embeddings(args.rows, args.dim, seed=1)
    for share, what in ((0.0, "no drift"), (0.05, "5 % of B a new kind of scene")):
        b = embeddings(args.rows, args.dim, seed=2, new_share=share)
        res, s = timed(lambda: mmd_permutation_test(a, b, n_permutations=args.permutations))
        ok = "PASS" if s < TARGET_S else "FAIL"
        print(f"MMD test {args.rows:,} vs {args.rows:,} x {args.dim}, {args.permutations} "
              f"permutations ({what}): {s:.1f} s [{ok} < {TARGET_S:g} s]; {res['method']}; "
              f"p = {res['p_value']:.3g}, MMD² = {res['mmd2']:.2e}, best bandwidth "
              f"{res['best_scale']:g} x median")
        if share:
            from qa.drift import C2ST_MAX_PER_SIDE, classifier_two_sample_test

            c2, s = timed(lambda: classifier_two_sample_test(a, b))
            print(f"classifier test ({C2ST_MAX_PER_SIDE:,} per side sampled, {what}): "
                  f"{s:.1f} s; AUC {c2['auc']:.3f} (95% {c2['ci_low']:.3f}-"
                  f"{c2['ci_high']:.3f}), p = {c2['p_value']:.3g}")
    if not args.skip_error:
        print("approximation error on 2,000 vs 2,000 (exact kernel available):")
        approximation_error(args.dim)
    if args.full:
        import pandas as pd

        from qa.dataset import Dataset
        from qa.drift import compare_datasets
        from qa.embeddings import Embeddings

        def ds(n, first, name):
            im = pd.DataFrame({"image_id": np.arange(first, first + n),
                               "file_name": [f"{name}/{i}.jpg" for i in range(n)]})
            return Dataset(images=im, categories=pd.DataFrame({"category_id": [1],
                                                               "name": ["x"]}),
                           annotations=None, name=name)

        da, db = ds(args.rows, 1, "a"), ds(args.rows, 10**7, "b")
        ea = Embeddings(a, da.images["image_id"], "bench")
        eb = Embeddings(embeddings(args.rows, args.dim, seed=2, new_share=0.05),
                        db.images["image_id"], "bench")
        res, s = timed(lambda: compare_datasets(da, db, embeddings_a=ea, embeddings_b=eb,
                                                n_permutations=args.permutations))
        first = res.clusters.iloc[0]
        print(f"compare_datasets on embeddings only: {s:.1f} s; {res.summary} First cluster: "
              f"{first['share_a']:.1%} → {first['share_b']:.1%}; uncovered "
              f"{res.metrics()['uncovered_share']:.1%} of B (A's own "
              f"{res.coverage_share_a:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
