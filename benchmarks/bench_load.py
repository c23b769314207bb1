"""Load a synthetic COCO file of COCO train2017's size with qa.io.load and pycocotools.

    python benchmarks/bench_load.py [--images 118287 --annotations 860001]

Each loader runs in a fresh subprocess so peak memory (ru_maxrss above the process's
baseline after imports) is its own. Targets (issue 2): qa at most half of pycocotools' time,
and a lower peak memory. Image files need not exist: the parse is measured with probe=False,
and the header probe (118k stat calls on missing files) is timed separately.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TIME_RATIO_TARGET = 0.5


def write_synthetic_coco(path: Path, n_images: int, n_anns: int, seed: int = 0) -> None:
    """A COCO-shaped file: 80 classes, boxes, areas and short polygons as in train2017."""
    rng = np.random.default_rng(seed)
    img_ids = rng.choice(10_000_000, size=n_images, replace=False) + 1
    w = rng.choice([640, 480, 500, 427], size=n_images)
    h = rng.choice([480, 640, 375, 333], size=n_images)
    with open(path, "w") as f:
        f.write('{"info": {"description": "synthetic"}, "licenses": [], "images": [')
        f.write(",".join(
            f'{{"license": 1, "file_name": "{i:012d}.jpg", "coco_url": "", "height": {hh}, '
            f'"width": {ww}, "date_captured": "2013-11-14 11:18:45", "id": {i}}}'
            for i, ww, hh in zip(img_ids, w, h)))
        f.write('], "annotations": [')
        owner = rng.integers(0, n_images, size=n_anns)
        xy = rng.uniform(0, 300, size=(n_anns, 2)).round(1)
        wh = rng.uniform(2, 300, size=(n_anns, 2)).round(1)
        cats = rng.integers(1, 81, size=n_anns)
        chunks = []
        for k in range(n_anns):
            x, y = xy[k]
            bw, bh = wh[k]
            chunks.append(
                f'{{"segmentation": [[{x}, {y}, {x + bw:.1f}, {y}, {x + bw:.1f}, {y + bh:.1f}]], '
                f'"area": {bw * bh:.1f}, "iscrowd": 0, "image_id": {img_ids[owner[k]]}, '
                f'"bbox": [{x}, {y}, {bw}, {bh}], "category_id": {cats[k]}, "id": {k + 1}}}')
            if len(chunks) == 50_000:
                f.write(",".join(chunks) + ",")
                chunks = []
        f.write(",".join(chunks) + "], ")
        f.write('"categories": [' + ",".join(
            f'{{"supercategory": "thing", "id": {c}, "name": "class_{c}"}}' for c in range(1, 81))
            + "]}")


CHILD = r"""
import resource, sys, time, json, os
import contextlib, io
which, path = sys.argv[1], sys.argv[2]
if which == "qa":
    import qa
    from qa.io._common import probe_images
else:
    from pycocotools.coco import COCO
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if which == "qa":
    ds = qa.load(path, probe=False)
    n = len(ds.annotations)
else:
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO(path)
    n = len(c.anns)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
extra = {}
if which == "qa":
    t = time.perf_counter()
    probe_images(ds.images, ds.root)
    extra["probe_s"] = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_mb": (peak - base) / 1024, "n": n, **extra}))
"""


def run_child(which: str, path: Path, repeats: int) -> dict:
    best = None
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, which, str(path)], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=118_287)
    ap.add_argument("--annotations", type=int, default=860_001)
    ap.add_argument("--repeats", type=int, default=2, help="best of N runs each")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "instances_train2017_synthetic.json"
        t = time.perf_counter()
        write_synthetic_coco(path, args.images, args.annotations)
        size_mb = path.stat().st_size / 1e6
        print(f"synthetic COCO: {args.images:,} images, {args.annotations:,} annotations, "
              f"{size_mb:.0f} MB (written in {time.perf_counter() - t:.1f} s)")
        ref = run_child("pycocotools", path, args.repeats)
        ours = run_child("qa", path, args.repeats)
    assert ours["n"] == ref["n"] == args.annotations, (ours, ref)
    tr, mr = ours["seconds"] / ref["seconds"], ours["peak_mb"] / ref["peak_mb"]
    print(f"pycocotools.COCO : {ref['seconds']:6.2f} s  peak +{ref['peak_mb']:7.0f} MB")
    print(f"qa.io.load       : {ours['seconds']:6.2f} s  peak +{ours['peak_mb']:7.0f} MB"
          f"   (+ header probe of {args.images:,} files: {ours['probe_s']:.2f} s)")
    print(f"time ratio  qa/pycocotools = {tr:.2f}  (target <= {TIME_RATIO_TARGET}) "
          f"{'PASS' if tr <= TIME_RATIO_TARGET else 'FAIL'}")
    print(f"memory ratio qa/pycocotools = {mr:.2f}  (target < 1) {'PASS' if mr < 1 else 'FAIL'}")
    return 0 if (tr <= TIME_RATIO_TARGET and mr < 1) else 1


if __name__ == "__main__":
    sys.exit(main())
