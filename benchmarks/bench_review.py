"""The review queue at scale: item keys, marking a queue with decisions, and write rate.

    python benchmarks/bench_review.py [--images 100000 --findings 200000 --decisions 20000]

Synthetic in-memory Dataset (2 boxes per image, one annotator) and findings (each concerning
one or two boxes; a tenth are pairs with a related image); image content hashes are given
(no files). A fresh SQLite decisions file in a temporary folder (or --db URL). Measures:

* ``item_keys`` over all findings (target < 10 s for 200k findings);
* the decisions import (one transaction) and ``build_queue(keys=...)``, i.e. what the page
  does on every rerun: read the current decision of every item and sort (target < 5 s);
* ``decide()``: one decision per transaction, as the page writes (target < 20 ms each).

Prints the figures and PASS/FAIL; not a timed test.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.dataset import Dataset
from qa.results import findings_frame

KEYS_TARGET_S = 10.0
QUEUE_TARGET_S = 5.0
DECIDE_TARGET_MS = 20.0


def synthetic(n_images: int, n_findings: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_images + 1)
    images = pd.DataFrame({"image_id": ids, "file_name": [f"{i:09d}.jpg" for i in ids],
                           "width": 640, "height": 480,
                           "split": rng.choice(["train", "val", "test"], n_images)})
    n_anns = 2 * n_images
    anns = pd.DataFrame({"ann_id": np.arange(1, n_anns + 1), "image_id": np.repeat(ids, 2),
                         "category_id": rng.integers(1, 11, n_anns), "annotator": "a",
                         "x": rng.uniform(0, 500, n_anns), "y": rng.uniform(0, 400, n_anns),
                         "w": rng.uniform(5, 100, n_anns), "h": rng.uniform(5, 80, n_anns)})
    cats = pd.DataFrame({"category_id": range(1, 11), "name": [f"c{i}" for i in range(1, 11)]})
    ds = Dataset(images=images, categories=cats, annotations=anns, name="bench")
    img = rng.integers(1, n_images + 1, n_findings)
    first = 2 * img - 1
    pair = rng.random(n_findings) < 0.1
    f = findings_frame(pd.DataFrame({
        "analysis": "bench", "kind": rng.choice(["label_error", "bad_box", "outlier"],
                                                n_findings),
        "severity": "warning", "score": rng.random(n_findings), "image_id": img,
        "ann_ids": [(a, a + 1) if k % 2 else (a,) for k, a in enumerate(first)],
        "related_image_ids": [((i % n_images) + 1,) if p else () for i, p in zip(img, pair)],
        "message": "m", "page": "review"}))
    hashes = {int(i): hashlib.sha256(str(i).encode()).hexdigest() for i in ids}
    return ds, f, hashes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--findings", type=int, default=200_000)
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--db", default=None)
    a = ap.parse_args()
    from qa.review import ReviewStore, build_queue, item_keys

    ds, f, hashes = synthetic(a.images, a.findings)
    t = time.perf_counter()
    keys = item_keys(ds, f, hashes=hashes)
    t_keys = time.perf_counter() - t
    tmp = tempfile.mkdtemp(prefix="bench-review-")
    st = ReviewStore(a.db or f"sqlite:///{tmp}/review.sqlite")
    pick = np.random.default_rng(1).choice(len(f), a.decisions, replace=False)
    dec = pd.DataFrame({"decision_uid": [str(uuid.uuid4()) for _ in pick],
                        "item_key": keys["item_key"].to_numpy()[pick], "status": "confirmed",
                        "reviewer": "bench", "decided_at": time.time(),
                        "fingerprint": keys["fingerprint"].to_numpy()[pick]})
    t = time.perf_counter()
    st.import_decisions(dec)
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    q = build_queue(ds, f, keys=keys, store=st, open_first=False)
    t_queue = time.perf_counter() - t
    n_done = int((q["status"] != "open").sum())
    t = time.perf_counter()
    for k in keys["item_key"].to_numpy()[:500]:
        st.decide(k, "fixed", reviewer="bench")
    ms_decide = (time.perf_counter() - t) / 500 * 1000
    ok = t_keys < KEYS_TARGET_S and t_queue < QUEUE_TARGET_S and ms_decide < DECIDE_TARGET_MS
    print(f"{len(f):,} findings on {a.images:,} images, {a.decisions:,} decisions, {st!r}")
    print(f"item_keys            {t_keys:7.2f} s   (target < {KEYS_TARGET_S} s)")
    print(f"import decisions     {t_import:7.2f} s   (one transaction)")
    print(f"build_queue(keys=)   {t_queue:7.2f} s   (target < {QUEUE_TARGET_S} s); "
          f"{n_done:,} items decided")
    print(f"decide()             {ms_decide:7.2f} ms  (target < {DECIDE_TARGET_MS} ms)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
