"""Outlier scoring and the 2-D map at scale, on random vectors.

    python benchmarks/bench_outliers.py [--rows 100000 --dim 512]

Random Gaussian 512-d vectors, L2-normalised (like embeddings), with 50 planted far rows.
Targets (issue "Image embeddings"):

* ``score_outliers`` (kNN, k=10, faiss IVF above 20k rows) of 100k x 512 under 10 s;
* the PCA map of 100k points under 60 s (t-SNE subsamples to 5,000 points, also timed).

Also reports how many planted rows the approximate index still flags, and LOF / isolation
forest times for comparison. ``--sample`` also scores sample_data with the offline model
against PLANTED.json: precision@10 / recall of the image outliers (the OOD photographs) and,
from the boxes of one annotator (default carol), the per-class outliers against her planted
label errors (bad box, spurious box, wrong class). Prints the figures and PASS/FAIL; not a
timed test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCORE_TARGET_S = 10.0
MAP_TARGET_S = 60.0


def vectors(n: int, d: int, n_far: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    # a few broad clusters (embeddings are not one blob), plus far rows off every cluster
    centres = rng.normal(0, 1, (20, d)).astype(np.float32)
    v = centres[rng.integers(0, 20, n)] + rng.normal(0, 0.6, (n, d)).astype(np.float32)
    far = rng.choice(n, n_far, replace=False)
    v[far] = rng.normal(0, 3, (n_far, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, set(far.tolist())


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def sample_quality(annotator: str) -> None:
    import json

    import qa
    from qa.embeddings import FALLBACK, embed_images, embed_objects
    from qa.outliers import compute_outliers

    sample = ROOT / "sample_data"
    planted = json.loads((sample / "PLANTED.json").read_text())
    ds = qa.load(sample)
    (emb, s1) = timed(lambda: embed_images(ds, model=FALLBACK))
    (obj, s2) = timed(lambda: embed_objects(ds, model=FALLBACK, annotator=annotator))
    res = compute_outliers(ds, emb, objects=obj)
    ood = {d["image_id"] for d in planted["ood_images"]}
    top = set(res.per_image.nsmallest(10, "rank")["image_id"])
    flagged = set(res.flagged["image_id"])
    print(f"sample_data images ({emb.n_computed} computed in {s1:.1f} s, {emb.n_cached} "
          f"cached): precision@10 {len(top & ood) / 10:.2f}, flagged {len(flagged)}, recall "
          f"at the fence {len(flagged & ood) / len(ood):.2f}")
    errors = {e["ann_ids"][annotator] for e in planted["label_errors"]
              if e["ann_ids"].get(annotator)}
    fc = res.flagged_class
    hits = set(fc["ann_id"].astype(int)) & errors
    top10 = set(fc.head(10)["ann_id"].astype(int))
    print(f"sample_data {annotator}'s boxes ({len(obj)} embedded, {obj.n_computed} computed in "
          f"{s2:.1f} s): {len(fc)} class outliers, {len(hits)}/{len(errors)} planted label "
          f"errors among them (precision {len(hits) / max(len(fc), 1):.2f}), precision@10 "
          f"{len(top10 & errors) / 10:.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--skip-others", action="store_true", help="only kNN and PCA")
    p.add_argument("--sample", action="store_true", help="also score sample_data vs PLANTED")
    p.add_argument("--annotator", default="carol", help="whose boxes for --sample")
    args = p.parse_args()
    if args.sample:
        sample_quality(args.annotator)
    from qa.outliers import embedding_map, score_outliers

    v, far = vectors(args.rows, args.dim)
    print(f"{args.rows:,} x {args.dim} vectors, {len(far)} planted far rows "
          "(shared machine: other jobs may be running)")
    df, s = timed(lambda: score_outliers(v, k=10))
    found = len(far & set(np.where(df["is_outlier"])[0].tolist()))
    print(f"score_outliers knn: {s:.2f} s [{'PASS' if s < SCORE_TARGET_S else 'FAIL'} < "
          f"{SCORE_TARGET_S:g} s]; flagged {int(df['is_outlier'].sum())}, "
          f"{found}/{len(far)} planted")
    (mp, note), s = timed(lambda: embedding_map(v, method="pca"))
    print(f"map pca: {s:.2f} s [{'PASS' if s < MAP_TARGET_S else 'FAIL'} < {MAP_TARGET_S:g} s] "
          f"({note})")
    if not args.skip_others:
        (mp, note), s = timed(lambda: embedding_map(v, method="tsne"))
        print(f"map tsne: {s:.2f} s [{'PASS' if s < MAP_TARGET_S else 'FAIL'} < "
              f"{MAP_TARGET_S:g} s] ({note})")
        sub = v[:20_000]
        _, s = timed(lambda: score_outliers(sub, method="isolation_forest"))
        print(f"score_outliers isolation_forest on 20,000 rows: {s:.2f} s")
        _, s = timed(lambda: score_outliers(sub, method="lof"))
        print(f"score_outliers lof on 20,000 rows: {s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
