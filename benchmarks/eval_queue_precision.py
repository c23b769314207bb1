"""How well the review queue finds planted label errors, against ObjectLab (Tkachenko et al.
2023) on the same labels and predictions: the table of issue 21, on two datasets.

* **sample**: sample_data, reference alice, the sample's detector; the 24 errors of
  PLANTED.json (6 wrong class, 6 badly drawn, 6 missing, 6 spurious boxes).
* **bccd**: the real BCCD blood-cell labels (../shared/realdata/bccd, or $QA_REALDATA/bccd)
  with 24 errors planted the same way (:func:`plant_bccd`) and a synthetic detector made from
  the TRUE boxes: noisy boxes, misses that depend on the object's size, low-score false
  positives, a few confident false positives and class confusions of its own. So the rule is
  checked on data it was not tuned on.

Rows: this project's queue (qa.disagreement) model only and with box embeddings (the crops'
opinion; the first run embeds the boxes once, minutes on 2 CPU cores, then they are cached),
and the paper method (qa.objectlab, implemented from the paper). With
``--cleanlab-python PATH`` (a Python of a separate virtual environment with cleanlab
installed, e.g. ``python -m venv /tmp/cleanlab-venv && /tmp/cleanlab-venv/bin/pip install
cleanlab``) cleanlab's own ObjectLab is run on the same input in that process, as a black box;
cleanlab is never a dependency of this project. ``--no-crops`` skips the embeddings.

Columns: precision at 12 and 24 queue positions, recall (planted images in the queue; the paper
method ranks every image, so its recall is that of its flagged set, label quality < 0.5... it
has no threshold of its own: n/a), the median rank of each error kind, and the likely-label-
error count of qa.disagreement against the planted number.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/eval_queue_precision.py [--no-crops]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

import qa
from qa.dataset import Dataset
from qa.disagreement import compute_disagreement
from qa.objectlab import objectlab_label_quality

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
KINDS = ("bad_box", "wrong_class", "missing_box", "spurious_box")
SEED = 20260101
PER_KIND = 6
# The synthetic BCCD detector: miss rate by COCO size bucket, box noise (fraction of the box
# side), false positives per image (low and confident), class confusions of its own.
MISS_P = {"small": 0.15, "medium": 0.05, "large": 0.02}
BOX_NOISE = 0.04
LOW_FP_PER_IMAGE, CONFIDENT_FP_PER_IMAGE, CONFUSION_P = 0.4, 0.03, 0.002


def realdata() -> Path:
    env = os.environ.get("QA_REALDATA")
    for p in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "realdata",
                                              Path("/work/shared/realdata")]:
        if (p / "bccd").is_dir():
            return p
    raise SystemExit("BCCD not found: set QA_REALDATA to the folder holding bccd/")


def _bucket(w, h):
    a = w * h
    return "small" if a < 32 ** 2 else ("large" if a > 96 ** 2 else "medium")


def _free_box(rng, W, H, w, h, boxes, tries=200):
    """A w x h box inside the image that overlaps none of ``boxes`` (xywh), or None."""
    for _ in range(tries):
        x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
        if not len(boxes):
            return x, y
        b = np.asarray(boxes)
        ix = np.minimum(x + w, b[:, 0] + b[:, 2]) - np.maximum(x, b[:, 0])
        iy = np.minimum(y + h, b[:, 1] + b[:, 3]) - np.maximum(y, b[:, 1])
        if ((ix <= 0) | (iy <= 0)).all():
            return x, y
    return None


def plant_bccd(seed: int = SEED) -> tuple[Dataset, list[dict]]:
    """BCCD with PER_KIND errors of each kind planted in distinct images, and the synthetic
    detector's predictions made from the true (original) boxes. Returns (dataset, planted)
    where each planted entry has image_id and kind."""
    rng = np.random.default_rng(seed)
    ds = qa.load(realdata() / "bccd")
    anns = ds.annotations[(ds.annotations["w"] > 1) & (ds.annotations["h"] > 1)].copy()
    size = ds.images.set_index("image_id")[["width", "height"]]
    cats = ds.categories["category_id"].to_numpy()
    # the detector sees the truth
    preds, pid = [], 1
    for r in anns.itertuples(index=False):
        if rng.random() < MISS_P[_bucket(r.w, r.h)]:
            continue
        n = rng.normal(0, BOX_NOISE, 4) * [r.w, r.h, r.w, r.h]
        cat = r.category_id
        score = rng.uniform(0.55, 0.99)
        if rng.random() < CONFUSION_P:  # the model's own confusion, not a label error
            cat, score = rng.choice(cats[cats != cat]), rng.uniform(0.5, 0.75)
        preds.append((pid, r.image_id, cat, score, r.x + n[0], r.y + n[1], r.w + n[2],
                      r.h + n[3]))
        pid += 1
    for iid, (W, H) in size.iterrows():
        boxes = anns.loc[anns["image_id"] == iid, ["x", "y", "w", "h"]].to_numpy()
        for lam, lo, hi in ((LOW_FP_PER_IMAGE, 0.05, 0.45),
                            (CONFIDENT_FP_PER_IMAGE, 0.5, 0.7)):
            for _ in range(rng.poisson(lam)):
                w = h = rng.uniform(30, 90)
                at = _free_box(rng, W, H, w, h, boxes)
                if at is not None:
                    preds.append((pid, iid, rng.choice(cats), rng.uniform(lo, hi), *at, w, h))
                    pid += 1
    # the label errors, one per image, in images the detector found everything on
    found = pd.DataFrame(preds, columns=["pred_id", "image_id", "category_id", "score", "x",
                                         "y", "w", "h"])
    per_img = anns.groupby("image_id").size()
    seen = found[found["score"] >= 0.55].groupby("image_id").size()
    clean = [i for i in per_img.index if seen.get(i, 0) >= per_img[i]]
    chosen = rng.choice(clean, size=PER_KIND * len(KINDS), replace=False)
    planted, drop, extra = [], [], []
    next_ann = int(anns["ann_id"].max()) + 1
    for k, iid in enumerate(chosen):
        kind = KINDS[k // PER_KIND]
        mine = anns[anns["image_id"] == iid]
        row = mine.iloc[rng.integers(len(mine))]
        ix = row.name
        W, H = size.loc[iid]
        if kind == "wrong_class":
            anns.loc[ix, "category_id"] = rng.choice(cats[cats != row["category_id"]])
        elif kind == "missing_box":
            drop.append(ix)
        elif kind == "bad_box":  # moved by 0.6-0.9 of its size, inside the image
            f = rng.uniform(0.6, 0.9)
            ang = rng.uniform(0, 2 * np.pi)
            anns.loc[ix, "x"] = float(np.clip(row["x"] + f * row["w"] * np.cos(ang), 0,
                                              W - row["w"]))
            anns.loc[ix, "y"] = float(np.clip(row["y"] + f * row["h"] * np.sin(ang), 0,
                                              H - row["h"]))
        else:  # spurious: a typical box of a random class on background
            w, h = row["w"], row["h"]
            at = _free_box(rng, W, H, w, h, mine[["x", "y", "w", "h"]].to_numpy())
            if at is None:
                continue
            new = row.copy()
            new["ann_id"], new["x"], new["y"] = next_ann, at[0], at[1]
            new["category_id"] = rng.choice(cats)
            extra.append(new)
            next_ann += 1
        planted.append({"image_id": int(iid), "kind": kind})
    anns = pd.concat([anns.drop(index=drop), pd.DataFrame(extra)], ignore_index=True)
    anns["area"] = anns["w"] * anns["h"]
    found["model"] = "synthetic"
    return replace(ds, annotations=anns, predictions=found, name="bccd-planted"), planted


def sample() -> tuple[Dataset, list[dict]]:
    ds = qa.load(SAMPLE, predictions=SAMPLE / "predictions" / "detector.json")
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())["label_errors"]
    return ds, [{"image_id": e["image_id"], "kind": e["kind"]} for e in planted]


def figures(order: list[int], planted: list[dict], in_queue: set | None) -> dict:
    wrong = {e["image_id"] for e in planted}
    pos = {i: r for r, i in enumerate(order, start=1)}
    out = {"p@12": len(wrong & set(order[:12])) / 12, "p@24": len(wrong & set(order[:24])) / 24,
           "recall": None if in_queue is None else len(wrong & in_queue) / len(wrong)}
    for k in KINDS:
        ranks = [pos.get(e["image_id"], len(order) + 1) for e in planted if e["kind"] == k]
        out[k] = float(np.median(ranks)) if ranks else None
    return out


def cleanlab_order(ds: Dataset, reference: str, ids: list[int], python: str) -> list[int]:
    """Run cleanlab's ObjectLab in another Python (its own venv) on the same input."""
    cats = sorted(ds.categories["category_id"])
    a = ds.annotations[ds.annotations["annotator"] == reference]
    p = ds.predictions
    data = []
    for i in ids:
        ai, pi = a[a["image_id"] == i], p[p["image_id"] == i]
        data.append({"bboxes": [[x, y, x + w, y + h] for x, y, w, h in
                                ai[["x", "y", "w", "h"]].to_numpy().tolist()],
                     "labels": [cats.index(c) for c in ai["category_id"]],
                     "preds": [[[x, y, x + w, y + h, s] for x, y, w, h, s in
                                pi[pi["category_id"] == c][["x", "y", "w", "h", "score"]]
                                .to_numpy().tolist()] for c in cats]})
    script = (
        "import json,sys,numpy as np\n"
        "from cleanlab.object_detection.rank import get_label_quality_scores\n"
        "d=json.load(open(sys.argv[1]))\n"
        "L=[{'bboxes':np.array(x['bboxes'],float).reshape(-1,4),"
        "'labels':np.array(x['labels'],int)} for x in d]\n"
        "P=[np.array([np.array(c,float).reshape(-1,5) for c in x['preds']],dtype=object)"
        " for x in d]\n"
        "json.dump(get_label_quality_scores(L,P,verbose=False).tolist(),open(sys.argv[2],'w'))\n")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(data))
        subprocess.run([python, "-c", script, str(src), str(dst)], check=True)
        s = np.asarray(json.loads(dst.read_text()))
    return [ids[k] for k in np.argsort(s, kind="stable")]


def evaluate(name: str, ds: Dataset, planted: list[dict], reference: str, *, crops: bool,
             cleanlab: str | None) -> list[dict]:
    rows = []
    plain = compute_disagreement(ds, reference=reference)
    ids = sorted(set(plain.per_image["image_id"]))
    runs = [("this project, model only", plain)]
    if crops:
        from qa.embeddings import embed_objects

        t = time.perf_counter()
        objects = embed_objects(ds, annotator=reference)
        print(f"  [{name}] {len(objects)} box crops embedded or read from the store in "
              f"{time.perf_counter() - t:.0f} s ({objects.model_id})", flush=True)
        runs.append(("this project, with box embeddings",
                     compute_disagreement(ds, reference=reference, objects=objects)))
    for label, r in runs:
        cc = r.cause_counts()
        rows.append({"dataset": name, "method": label,
                     **figures(r.queue["image_id"].tolist(), planted,
                               set(r.queue["image_id"])),
                     "label errors": f"{'≈' if cc['estimated'] else ''}"
                                     f"{cc['label_errors']:.1f} of {len(planted)}"})
    ref = ds.annotations[ds.annotations["annotator"] == reference]
    ol = objectlab_label_quality(ref, ds.predictions, ids).sort_values(
        ["label_quality", "image_id"], kind="stable")
    rows.append({"dataset": name, "method": "ObjectLab (paper, qa.objectlab)",
                 **figures(ol["image_id"].tolist(), planted, None), "label errors": ""})
    if cleanlab:
        rows.append({"dataset": name, "method": "ObjectLab (cleanlab, own venv)",
                     **figures(cleanlab_order(ds, reference, ids, cleanlab), planted, None),
                     "label errors": ""})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-crops", action="store_true", help="skip the box-embedding rows")
    ap.add_argument("--cleanlab-python", help="a Python with cleanlab installed (own venv)")
    ap.add_argument("--only", choices=["sample", "bccd"], help="one dataset only")
    args = ap.parse_args(argv)
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]} (1/5/15 min)", flush=True)
    rows = []
    for name, make, ref in (("sample", sample, "alice"), ("bccd", plant_bccd, None)):
        if args.only and args.only != name:
            continue
        ds, planted = make()
        ref = ref or ds.annotators[0]
        print(f"{name}: {len(ds.images)} images, {len(planted)} planted label errors, "
              f"{len(ds.predictions)} predictions", flush=True)
        rows += evaluate(name, ds, planted, ref, crops=not args.no_crops,
                         cleanlab=args.cleanlab_python)
    t = pd.DataFrame(rows)
    for c in ("p@12", "p@24", "recall"):
        t[c] = t[c].map(lambda v: "n/a" if v is None or pd.isna(v) else f"{v:.2f}")
    t = t.rename(columns={k: f"median rank {k}" for k in KINDS})
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(t.to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
