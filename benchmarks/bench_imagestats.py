"""Throughput of the one pixel pass (qa.imagestats.compute_image_stats) on 640x480 JPEGs.

Writes ``--images`` seeded synthetic 640x480 JPEGs (gradients, noise and blocks, quality 90)
to a temporary folder, then times ``compute_image_stats`` with an empty store (every image
read, decoded once, hashed and measured) and again with the store filled (a re-run: no pixel
is read). Also prints the CPU seconds per image, which is what a busy shared machine cannot
blur: on an idle 2-core machine throughput is about 2 / (CPU seconds per image).

Target (issue 9): at least 100 images/s on this 2-core machine. Run:
``.venv/bin/python benchmarks/bench_imagestats.py [--images 600]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from qa.dataset import (
    CATEGORY_ID,
    FILE_NAME,
    HEIGHT,
    IMAGE_ID,
    NAME,
    SPLIT,
    WIDTH,
    Dataset,
)
from qa.imagestats import compute_image_stats
from qa.store import Store

SEED = 0
W, H = 640, 480


def write_images(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(SEED)
    base = (np.linspace(40, 220, W)[None, :, None] * np.ones((H, 1, 3))).astype(np.int16)
    names = []
    for k in range(n):
        arr = base + rng.integers(-25, 25, (H, W, 3), dtype=np.int16)
        for _ in range(5):
            x, y = rng.integers(0, W - 80), rng.integers(0, H - 80)
            arr[y:y + 60, x:x + 60] = rng.integers(0, 255, 3)
        name = f"img_{k:06d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(folder / name, quality=90)
        names.append(name)
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        names = write_images(root, args.images)
        im = pd.DataFrame({IMAGE_ID: range(len(names)), FILE_NAME: names, WIDTH: W,
                           HEIGHT: H, SPLIT: "train"})
        ds = Dataset(images=im, categories=pd.DataFrame({CATEGORY_ID: [1], NAME: ["x"]}),
                     annotations=None, root=root)
        store = Store(Path(tmp) / "store.sqlite")
        c0, t0 = time.process_time(), time.perf_counter()
        first = compute_image_stats(ds, store=store, workers=args.workers)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert first.n_computed == len(names) and first.table["error"].isna().all()
        t0 = time.perf_counter()
        again = compute_image_stats(ds, store=store)
        wall2 = time.perf_counter() - t0
        assert again.n_cached == len(names)
    n = len(names)
    print(f"pixel pass on {n} JPEGs of {W}x{H} ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}):")
    print(f"  first run: {wall:.2f} s = {n / wall:.0f} images/s (target >= 100); "
          f"{cpu / n * 1000:.1f} ms CPU per image (file hash, decode, pixel hash, pHash/dHash "
          f"x2, statistics, store write) => ~{2 / (cpu / n):.0f} images/s on 2 idle cores")
    print(f"  second run (from the store): {wall2:.3f} s = {n / wall2:.0f} images/s")


if __name__ == "__main__":
    main()
