"""False alarms of qa.drift measured on many random halves of one dataset, every signal, the
real pipeline (``compare_subsets``) with the pixel statistics and embeddings computed once.

    python benchmarks/eval_drift_halves.py [--dataset bccd|sample] [--halves 1000]
        [--first-seed 1000] [--permutations 999] [--jobs 1] [--csv out.csv] [--fast]

``--fast``: only the per-image tests, computed as compare_subsets computes them (scipy's KS
on the pixel statistics and on objects per image, mmd_permutation_test with seed k,
classifier_two_sample_test) but without the rest of the pipeline: 0.3 s a half instead of
3-4 s on two busy cores, so thousands of halves fit in minutes.

Half k is ``np.random.default_rng(first_seed + k).permutation(ids)`` split in two, as the
tests and benchmarks/eval_drift.py draw them. Per test: the share of halves with p < 0.05,
its Wilson 95 % interval and the chance that a test at exactly 5 % shows at least that many
(binomial upper tail). A rate whose interval lies above 5 % is an anti-conservative test; a
rate above 7 % whose interval holds 5 % is sampling noise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_STATE: dict = {}


def load(name: str, realdata: str | None):
    import qa
    from qa.embeddings import embed_images
    from qa.imagestats import compute_image_stats

    if name == "sample":
        ds = qa.load(ROOT / "sample_data")
    else:
        from benchmarks.eval_drift import realdata as find

        rd = find(realdata)
        if rd is None:
            raise SystemExit("shared/realdata not found (--realdata PATH or QA_REALDATA)")
        ds = qa.load(rd / "bccd")
    return ds, compute_image_stats(ds), embed_images(ds)


def _init(name, realdata, n_perm, first_seed, with_emb):
    ds, st, emb = load(name, realdata)
    _STATE.update(ds=ds, st=st, emb=emb if with_emb else None, n_perm=n_perm,
                  first_seed=first_seed)


def one_half(k: int) -> pd.Series:
    from qa.drift import compare_subsets

    s = _STATE
    ids = s["ds"].images["image_id"].to_numpy()
    p = np.random.default_rng(s["first_seed"] + k).permutation(ids)
    h = len(p) // 2
    r = compare_subsets(s["ds"], p[:h], p[h:], stats=s["st"], embeddings=s["emb"], seed=k,
                        n_permutations=s["n_perm"])
    t = r.tests.set_index("test_id")
    row = t["p_value"].copy()
    if "class_mix" in t.index:
        row["class_mix (textbook chi-square)"] = t.at["class_mix", "p_asymptotic"]
    row["verdict drift"] = 0.0 if r.is_drift else 1.0  # "p < 0.05" <=> drift
    row.name = k
    return row


def one_half_fast(k: int) -> pd.Series:
    from scipy.stats import ks_2samp

    from qa.drift import (IMAGE_FEATURES, _feature_values, classifier_two_sample_test,
                          mmd_permutation_test)

    s = _STATE
    if "feat" not in s:
        s["feat"] = _feature_values(s["st"].table).set_index("image_id")
        per = s["ds"].annotations.groupby("image_id").size()
        s["per"] = per.reindex(s["ds"].images["image_id"]).fillna(0)
    ids = s["ds"].images["image_id"].to_numpy()
    p = np.random.default_rng(s["first_seed"] + k).permutation(ids)
    h = len(p) // 2
    ia, ib = p[:h], p[h:]
    row = {}
    f = s["feat"]
    for c in IMAGE_FEATURES:
        xa, xb = f[c].reindex(ia).dropna(), f[c].reindex(ib).dropna()
        row[c] = float(ks_2samp(xa, xb).pvalue)
    row["objects_per_image"] = float(ks_2samp(s["per"].loc[ia], s["per"].loc[ib]).pvalue)
    if s["emb"] is not None:
        e = s["emb"]
        pos = pd.Series(np.arange(len(e.image_ids)), index=e.image_ids)
        va, vb = e.vectors[pos.reindex(ia).dropna().astype(int)], \
            e.vectors[pos.reindex(ib).dropna().astype(int)]
        row["mmd"] = mmd_permutation_test(va, vb, n_permutations=s["n_perm"], seed=k)["p_value"]
        row["classifier"] = classifier_two_sample_test(va, vb, seed=k)["p_value"]
    return pd.Series(row, name=k)


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.96
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, c - h), min(1.0, c + h)


def report(ps: pd.DataFrame, title: str) -> pd.DataFrame:
    from scipy.stats import binom

    n = len(ps)
    rows = []
    for test in ps.columns:
        col = ps[test].dropna()
        k = int((col < 0.05).sum())
        m = len(col)
        lo, hi = wilson(k, m)
        rows.append(dict(test=test, halves=m, alarms=k, rate=k / m, ci_low=lo, ci_high=hi,
                         p_tail=float(binom.sf(k - 1, m, 0.05))))
    out = pd.DataFrame(rows)
    print(f"\n{title}: {n} random halves, share with p < 0.05 (Wilson 95 %), "
          "P(at least that many | rate 5 %)")
    for r in out.itertuples():
        flag = "  ABOVE 5 %" if r.ci_low > 0.05 else ""
        print(f"  {r.test:<34} {r.alarms:>5}/{r.halves:<5} {r.rate:6.1%}  "
              f"({r.ci_low:.1%}-{r.ci_high:.1%})  tail {r.p_tail:.3f}{flag}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["bccd", "sample"], default="bccd")
    ap.add_argument("--halves", type=int, default=1000)
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--csv", default=None, help="write every half's p-values here")
    ap.add_argument("--fast", action="store_true", help="the per-image tests only")
    ap.add_argument("--realdata", default=None)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()} on {os.cpu_count()} cores")
    args = (a.dataset, a.realdata, a.permutations, a.first_seed, not a.no_embeddings)
    t0 = time.perf_counter()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs, initializer=_init, initargs=args) as pool:
            rows = list(pool.map(one_half_fast if a.fast else one_half, range(a.halves),
                                 chunksize=8))
    else:
        _init(*args)
        rows = []
        for k in range(a.halves):
            rows.append(one_half_fast(k) if a.fast else one_half(k))
            if (k + 1) % 100 == 0:
                print(f"  {k + 1} halves, {(time.perf_counter() - t0) / (k + 1):.2f} s each",
                      flush=True)
    ps = pd.DataFrame(rows)
    secs = time.perf_counter() - t0
    if a.csv:
        ps.to_csv(a.csv)
    report(ps, f"{a.dataset} (seeds {a.first_seed}-{a.first_seed + a.halves - 1}, "
               f"{a.permutations} permutations, {secs / a.halves:.2f} s per half)")
    if a.halves > 100:
        report(ps.iloc[:100], f"{a.dataset}, the first 100 of them")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
