"""Speed of qa.disagreement (flags + review queue) and qa.evaluation (COCO metrics) on a
synthetic dataset: 50k images, each with 6 annotations and 10 predictions (seeded), and
pycocotools' COCOeval on the same data in the same run (its AP is checked equal).

Run: ``.venv/bin/python benchmarks/bench_disagreement.py [--images 50000]`` (on a shared
machine: ``flock /tmp/qa-bench.lock ...``). Targets: flags + queue < 20 s; evaluate_detections
no slower than COCOeval (evaluate + accumulate + summarize, loading excluded for both).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
import pandas as pd

from qa.dataset import Dataset
from qa.disagreement import compute_disagreement
from qa.evaluation import evaluate_detections

SEED = 0
N_CLASSES = 20
ANNS_PER_IMAGE, PREDS_PER_IMAGE = 6, 10
IMG_W, IMG_H = 640, 480


def make_synthetic(n_images: int, *, seed: int = SEED) -> Dataset:
    """6 labelled objects per image; the model finds most of them (jittered boxes, a few wrong
    classes) and fills its 10 predictions with low-score background boxes."""
    rng = np.random.default_rng(seed)
    n = n_images * ANNS_PER_IMAGE
    img = np.repeat(np.arange(n_images), ANNS_PER_IMAGE)
    w, h = rng.uniform(8, 200, n), rng.uniform(8, 200, n)
    x, y = rng.uniform(0, IMG_W - w), rng.uniform(0, IMG_H - h)
    cat = rng.integers(0, N_CLASSES, n)
    anns = pd.DataFrame({"ann_id": np.arange(1, n + 1), "image_id": img, "category_id": cat,
                         "annotator": "a", "x": x, "y": y, "w": w, "h": h, "iscrowd": 0})
    # predictions: the first 5 objects of each image found (jitter, 5% wrong class), 5 others
    found = np.tile(np.arange(ANNS_PER_IMAGE) < 5, n_images)
    fi = np.flatnonzero(found)
    pc = cat[fi].copy()
    swap = rng.random(len(fi)) < 0.05
    pc[swap] = rng.integers(0, N_CLASSES, swap.sum())
    jit = rng.normal(0, 0.08, (len(fi), 4)) * np.c_[w[fi], h[fi], w[fi], h[fi]]
    n_bg = n_images * PREDS_PER_IMAGE - len(fi)
    bw, bh = rng.uniform(8, 200, n_bg), rng.uniform(8, 200, n_bg)
    preds = pd.DataFrame({
        "image_id": np.r_[img[fi], np.repeat(np.arange(n_images), PREDS_PER_IMAGE - 5)],
        "category_id": np.r_[pc, rng.integers(0, N_CLASSES, n_bg)],
        "score": np.r_[rng.uniform(0.5, 0.99, len(fi)), rng.uniform(0.01, 0.6, n_bg)].round(3),
        "x": np.r_[x[fi] + jit[:, 0], rng.uniform(0, IMG_W - bw)],
        "y": np.r_[y[fi] + jit[:, 1], rng.uniform(0, IMG_H - bh)],
        "w": np.r_[np.maximum(w[fi] + jit[:, 2], 2), bw],
        "h": np.r_[np.maximum(h[fi] + jit[:, 3], 2), bh]})
    preds = preds.sort_values("image_id", kind="stable", ignore_index=True)
    preds.insert(0, "pred_id", np.arange(1, len(preds) + 1))
    preds["model"] = "det"
    images = pd.DataFrame({"image_id": np.arange(n_images),
                           "file_name": [f"{i}.jpg" for i in range(n_images)],
                           "width": IMG_W, "height": IMG_H})
    cats = pd.DataFrame({"category_id": np.arange(N_CLASSES),
                         "name": [f"class_{i}" for i in range(N_CLASSES)]})
    return Dataset(images=images, categories=cats, annotations=anns, predictions=preds,
                   name="synthetic")


def pycocotools_eval(ds: Dataset) -> tuple[float, np.ndarray]:
    """COCOeval on the same data; returns (seconds for evaluate+accumulate+summarize, stats)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    a, p = ds.annotations, ds.predictions
    doc = {"images": [{"id": int(i)} for i in ds.images["image_id"]],
           "categories": [{"id": int(c)} for c in ds.categories["category_id"]],
           "annotations": [{"id": int(k), "image_id": int(i), "category_id": int(c),
                            "bbox": [x, y, w, h], "area": float(ar), "iscrowd": 0}
                           for k, i, c, x, y, w, h, ar in zip(
                               a["ann_id"], a["image_id"], a["category_id"], a["x"], a["y"],
                               a["w"], a["h"], a["area"])]}
    res = [{"image_id": int(i), "category_id": int(c), "bbox": [x, y, w, h], "score": s}
           for i, c, x, y, w, h, s in zip(p["image_id"], p["category_id"], p["x"], p["y"],
                                          p["w"], p["h"], p["score"])]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = doc
        gt.createIndex()
        dt = gt.loadRes(res)
        t0 = time.perf_counter()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - t0, np.asarray(ev.stats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--skip-cocoeval", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = make_synthetic(args.images)
    print(f"synthetic: {args.images:,} images, {len(ds.annotations):,} annotations, "
          f"{len(ds.predictions):,} predictions ({time.perf_counter() - t0:.1f} s to build)")
    t0 = time.perf_counter()
    res = compute_disagreement(ds)
    t_flags = time.perf_counter() - t0
    print(f"compute_disagreement (flags + queue): {t_flags:.2f} s (target < 20 s); "
          f"{res.metrics()['n_flags']:,} flags on {len(res.queue):,} images")
    t0 = time.perf_counter()
    ev = evaluate_detections(ds)
    t_eval = time.perf_counter() - t0
    print(f"evaluate_detections: {t_eval:.2f} s (all tables: per class, PR, confusion); "
          f"mAP {ev.stats['AP']:.4f}, AP50 {ev.stats['AP50']:.4f}")
    if not args.skip_cocoeval:
        t_coco, stats = pycocotools_eval(ds)
        same = np.allclose(list(ev.stats.values()), stats, atol=1e-6, rtol=0)
        print(f"pycocotools COCOeval (evaluate + accumulate + summarize): {t_coco:.2f} s; "
              f"ratio ours/COCOeval {t_eval / t_coco:.2f} (target <= 1); 12 stats equal to "
              f"1e-6: {same}")


if __name__ == "__main__":
    main()
