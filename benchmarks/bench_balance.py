"""Class balance at COCO train2017's size: compute_class_balance, the cached wrapper, the page.

    python benchmarks/bench_balance.py [--images 118287 --annotations 860001 --repeat 3]

Synthetic in-memory Dataset: 80 classes with a long-tailed (Zipf-like) mix, 3 splits, one
annotator, boxes on 640x480-ish images. Targets (issue "Class balance and dataset statistics"):

* ``compute_class_balance`` under 2 s;
* the page's re-render from cache under 0.5 s, measured two ways: the ``st.cache_data``
  wrapper's second call (bare mode, outside ``streamlit run``: Streamlit warns, the cache works),
  and a rerun of ``pages/balance.py`` in ``streamlit.testing`` AppTest (cache hit + figures +
  tables; skip with ``--no-apptest``).

Prints the figures and PASS/FAIL; not a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.dataset import Dataset  # noqa: E402

COMPUTE_TARGET_S = 2.0
RERENDER_TARGET_S = 0.5


def synthetic_dataset(n_images: int, n_anns: int, n_classes: int = 80, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_images + 1)
    images = pd.DataFrame({
        "image_id": ids, "file_name": [f"{i:012d}.jpg" for i in ids],
        "width": rng.choice([640, 480, 500, 427], n_images),
        "height": rng.choice([480, 640, 375, 333], n_images),
        "split": rng.choice(["train", "val", "test"], n_images, p=[0.8, 0.1, 0.1]),
    })
    p = 1.0 / np.arange(1, n_classes + 1) ** 0.8  # long tail, like COCO's person >> toaster
    p /= p.sum()
    wh = rng.lognormal(3.8, 0.9, size=(n_anns, 2)).clip(1, 400)
    anns = pd.DataFrame({
        "ann_id": np.arange(1, n_anns + 1), "image_id": rng.integers(1, n_images + 1, n_anns),
        "category_id": rng.choice(np.arange(1, n_classes + 1), n_anns, p=p),
        "annotator": "annotator", "x": rng.uniform(-5, 300, n_anns),
        "y": rng.uniform(-5, 250, n_anns), "w": wh[:, 0], "h": wh[:, 1], "iscrowd": 0,
    })
    cats = pd.DataFrame({"category_id": np.arange(1, n_classes + 1),
                         "name": [f"class_{c}" for c in range(1, n_classes + 1)],
                         "supercategory": "thing"})
    return Dataset(images=images, categories=cats, annotations=anns, name="synthetic")


def timed(fn, repeat: int) -> tuple[list[float], object]:
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def verdict(seconds: float, target: float) -> str:
    return f"{seconds:.3f} s (target < {target} s): {'PASS' if seconds < target else 'FAIL'}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=118_287)
    ap.add_argument("--annotations", type=int, default=860_001)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-apptest", action="store_true", help="skip the AppTest page rerun")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    # Outside `streamlit run` every cached call warns "No runtime found, using
    # MemoryCacheStorageManager" through Streamlit's own loggers (which do not propagate, so
    # the "streamlit" logger's level does not reach them): set the level Streamlit's way.
    import streamlit.logger

    streamlit.logger.set_log_level("error")

    t = time.perf_counter()
    ds = synthetic_dataset(args.images, args.annotations)
    print(f"dataset: {ds.n_images:,} images, {len(ds.annotations):,} annotations, "
          f"{len(ds.categories)} classes, splits {ds.splits} (built in "
          f"{time.perf_counter() - t:.1f} s)")

    from qa.balance import compute_class_balance

    times, res = timed(lambda: compute_class_balance(ds), args.repeat)
    print(f"compute_class_balance: runs {', '.join(f'{x:.3f}' for x in times)} s; "
          f"best {verdict(min(times), COMPUTE_TARGET_S)}")
    print(f"  imbalance ratio {res.imbalance_ratio:.1f}, entropy {res.normalized_entropy:.3f}, "
          f"{len(res.rare_classes)} rare classes, {int(res.boxes['is_tiny'].sum()):,} tiny and "
          f"{int(res.boxes['is_border'].sum()):,} border boxes")

    from qa.app import cached

    t = time.perf_counter()
    cached.class_balance("bench", ds, None, None)
    first = time.perf_counter() - t
    hits, _ = timed(lambda: cached.class_balance("bench", ds, None, None), max(args.repeat, 3))
    print(f"cached.class_balance: first call {first:.3f} s; cache hits "
          f"{', '.join(f'{x:.3f}' for x in hits)} s; median "
          f"{verdict(statistics.median(hits), RERENDER_TARGET_S)}")

    if not args.no_apptest:
        from streamlit.testing.v1 import AppTest

        from qa.app.state import KEY_DATASET, KEY_DATASET_KEY

        at = AppTest.from_file(str(ROOT / "pages" / "balance.py"), default_timeout=300)
        at.session_state[KEY_DATASET] = ds
        at.session_state[KEY_DATASET_KEY] = "bench-apptest"
        t = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t
        if at.exception:
            print(f"AppTest: the page raised: {at.exception}")
            return 1
        print(f"AppTest pages/balance.py: first run (computes) {cold:.3f} s")
        worst = 0.0
        for section in at.radio(key="bal_section").options:
            at.radio(key="bal_section").set_value(section).run()  # switch, then time reruns
            reruns, _ = timed(at.run, max(args.repeat, 3))
            med = statistics.median(reruns)
            worst = max(worst, med)
            print(f"  rerun, section {section!r}: {', '.join(f'{x:.3f}' for x in reruns)} s; "
                  f"median {med:.3f} s")
        print(f"AppTest page rerun from cache, slowest section: "
              f"{verdict(worst, RERENDER_TARGET_S)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
