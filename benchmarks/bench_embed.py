"""Embedding throughput: the whole pipeline (hash, read, decode, preprocess, forward, store)
against the model's forward-only throughput at the same batch size, and a cached re-run.

    python benchmarks/bench_embed.py [--images 192 --batch-size 32 --models fallback,vit
                                      --repeat 3]

Synthetic JPEGs (640x480, smooth gradients plus noise, like camera photos in size) in a temp
folder, an empty store per model. Models: the offline fallback (efficientnet-lite0) and
open_clip ViT-B-32 with random weights (same compute as the real one; no download).
Targets (issue "Image embeddings"):

* pipeline img/s >= 85 % of forward-only img/s (decoding hidden behind compute);
* a cached re-run >= 50x faster than the first run.

Prints the figures and PASS/FAIL; not a timed test. The model is loaded before timing (load
time is reported apart), so both figures measure steady-state throughput.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PIPELINE_TARGET = 0.85
CACHE_SPEEDUP_TARGET = 50.0
MODELS = {"fallback": ("efficientnet-lite0", None), "vit": ("ViT-B-32", "random")}


def write_images(folder: Path, n: int, size=(640, 480), seed: int = 0) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    names = []
    for i in range(n):
        a, b, c = rng.uniform(0.1, 0.6, 3)
        base = np.stack([xx * a, yy * b, (xx + yy) * c * 0.5], -1)
        arr = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        name = f"{i:06d}.jpg"
        Image.fromarray(arr).save(folder / "images" / name, quality=88)
        names.append(name)
    return names


def make_dataset(folder: Path, names: list[str]):
    import pandas as pd

    from qa.dataset import Dataset

    images = pd.DataFrame({"image_id": np.arange(1, len(names) + 1), "file_name": names,
                           "width": 640, "height": 480})
    cats = pd.DataFrame({"category_id": [1], "name": ["thing"]})
    anns = pd.DataFrame(columns=["ann_id", "image_id", "category_id", "x", "y", "w", "h"])
    return Dataset(images=images, categories=cats, annotations=anns, root=folder / "images",
                   name="bench")


def forward_only(loaded, batch_size: int, n_batches: int) -> float:
    """img/s of the model alone on an already-preprocessed batch."""
    from PIL import Image

    x = np.stack([loaded.preprocess(Image.new("RGB", (640, 480), (120, 80, 40)))] * batch_size)
    loaded.encode(x)  # warm-up
    t0 = time.perf_counter()
    for _ in range(n_batches):
        loaded.encode(x)
    return n_batches * batch_size / (time.perf_counter() - t0)


def bench_model(key: str, ds, batch_size: int, tmp: Path, repeat: int) -> dict:
    """Best of ``repeat`` alternating rounds (forward-only, then the pipeline on an empty
    store, then the cached re-run): on a shared machine the best round is the one least
    disturbed by other jobs, for both figures alike."""
    from qa.embeddings import embed_images, load_model, resolve_model
    from qa.store import Store

    model, pretrained = MODELS[key]
    spec = resolve_model(model, pretrained=pretrained)
    t0 = time.perf_counter()
    loaded = load_model(spec, device="cpu")
    load_s = time.perf_counter() - t0
    n = len(ds.images)
    fwd, pipe, first_s, cached_s = 0.0, 0.0, float("inf"), float("inf")
    for r in range(repeat):
        fwd = max(fwd, forward_only(loaded, batch_size, max(2, n // batch_size)))
        with Store(tmp / f"store-{key}-{r}.sqlite") as store:
            t0 = time.perf_counter()
            first = embed_images(ds, model=model, pretrained=pretrained,
                                 batch_size=batch_size, device="cpu", store=store)
            s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = embed_images(ds, model=model, pretrained=pretrained,
                                 batch_size=batch_size, device="cpu", store=store)
            c = time.perf_counter() - t0
        assert first.n_computed == n and again.n_computed == 0, (first.n_computed,
                                                                 again.n_computed)
        pipe, first_s, cached_s = max(pipe, n / s), min(first_s, s), min(cached_s, c)
    return {"model": spec.model_id, "images": n, "batch_size": batch_size, "repeat": repeat,
            "load_s": round(load_s, 2), "forward_img_s": round(fwd, 1),
            "pipeline_img_s": round(pipe, 1), "ratio": round(pipe / fwd, 3),
            "first_run_s": round(first_s, 2), "cached_run_s": round(cached_s, 3),
            "cache_speedup": round(first_s / cached_s, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=192)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--models", default="fallback,vit")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs (shared machine: other jobs may be running)", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        names = write_images(tmp / "data", args.images)
        ds = make_dataset(tmp / "data", names)
        for key in args.models.split(","):
            r = bench_model(key.strip(), ds, args.batch_size, tmp, args.repeat)
            rows.append(r)
            ok_ratio = r["ratio"] >= PIPELINE_TARGET
            ok_cache = r["cache_speedup"] >= CACHE_SPEEDUP_TARGET
            print(f"{r['model']}: forward-only {r['forward_img_s']} img/s, pipeline "
                  f"{r['pipeline_img_s']} img/s, ratio {r['ratio']:.2f} "
                  f"[{'PASS' if ok_ratio else 'FAIL'} >= {PIPELINE_TARGET}]; first run "
                  f"{r['first_run_s']} s, cached {r['cached_run_s']} s = "
                  f"{r['cache_speedup']}x [{'PASS' if ok_cache else 'FAIL'} >= "
                  f"{CACHE_SPEEDUP_TARGET:g}x]; model load {r['load_s']} s")
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
