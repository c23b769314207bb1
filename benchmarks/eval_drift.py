"""qa.drift measured on real data with real embeddings (the offline efficientnet-lite0 unless
CLIP weights are on this machine): false alarms, planted drift, real pairs.

    python benchmarks/eval_drift.py [--halves 100] [--ks-halves 2000] [--mmd-halves 600]
                                    [--permutations 999] [--skip-halves] [--realdata PATH]

1. **No false alarms**: random halves of sample_data and of BCCD (seeds 1000 + k, as the
   tests use), every signal including the embeddings: per test the share of halves with
   p < 0.05 (with a Wilson 95 % interval), the verdict's false-alarm rate, and the textbook
   (instance-level) chi-square's rate for comparison. Then ``--ks-halves`` more halves of the
   pixel statistics alone and ``--mmd-halves`` of the MMD test alone (cheap) to pin those
   rates down to +-1-2 points: 100 halves estimate a rate to +-2.2 points only.
2. **Planted drift** on sample_data: A = one random half, B = the other half with (a) 10 %
   of its images darkened to a quarter of their brightness, (b) another class mix (only the
   images that hold a square; or B labelled by carol, who calls 40 % of the rings circles and
   skips most small objects, A by alice), (c) 10 % raccoon photographs added (a new kind of
   scene).
   Detected? Which signals? Is the first cluster "more in B" the planted one, and are the
   planted images the least covered?
3. **Real pairs**: BCCD train vs test (no drift expected); BCCD vs the raccoon set (drift in
   every signal expected).

Embeddings are computed once and kept in the store (a few minutes on 2 cores the first time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def realdata(arg: str | None) -> Path | None:
    for p in (arg, os.environ.get("QA_REALDATA"), ROOT / ".." / "shared" / "realdata",
              "/work/shared/realdata"):
        if p and (Path(p) / "bccd").is_dir():
            return Path(p)
    return None


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    z = 1.96
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


def inputs(ds):
    from qa.embeddings import embed_images
    from qa.imagestats import compute_image_stats

    t0 = time.perf_counter()
    st, emb = compute_image_stats(ds), embed_images(ds)
    print(f"  {ds.name}: {len(emb)} embedded ({emb.n_computed} computed) with {emb.model_id} "
          f"in {time.perf_counter() - t0:.0f} s")
    return st, emb


def false_alarms(name, ds, n_halves, n_perm) -> None:
    from qa.drift import compare_subsets

    st, emb = inputs(ds)
    ids = ds.images["image_id"].to_numpy()
    rows, verdicts = [], []
    t0 = time.perf_counter()
    for k in range(n_halves):
        p = np.random.default_rng(1000 + k).permutation(ids)
        h = len(p) // 2
        r = compare_subsets(ds, p[:h], p[h:], stats=st, embeddings=emb, seed=k,
                            n_permutations=n_perm)
        t = r.tests.set_index("test_id")
        row = t["p_value"].copy()
        if "class_mix" in t.index:
            row["class_mix (textbook chi-square)"] = t.at["class_mix", "p_asymptotic"]
        rows.append(row)
        verdicts.append(r.is_drift)
    secs = (time.perf_counter() - t0) / n_halves
    hits = (pd.DataFrame(rows) < 0.05).sum()
    print(f"\n{name}: {n_halves} random halves ({secs:.1f} s each), share with p < 0.05:")
    for test, k in hits.items():
        lo, hi = wilson(int(k), n_halves)
        flag = "" if k / n_halves <= 0.07 else "  > 7 %"
        print(f"  {test:<34} {k / n_halves:6.1%}  (95% {lo:.1%}-{hi:.1%}){flag}")
    k = int(np.sum(verdicts))
    lo, hi = wilson(k, n_halves)
    print(f"  {'verdict drift':<34} {k / n_halves:6.1%}  (95% {lo:.1%}-{hi:.1%})")


def ks_halves(name, ds, n) -> None:
    from scipy.stats import ks_2samp

    from qa.drift import IMAGE_FEATURES, _feature_values
    from qa.imagestats import compute_image_stats

    f = _feature_values(compute_image_stats(ds).table)
    ids = f["image_id"].to_numpy()
    hits = dict.fromkeys(IMAGE_FEATURES, 0)
    for k in range(n):
        p = np.random.default_rng(5000 + k).permutation(len(ids))
        a, b = f.iloc[p[: len(p) // 2]], f.iloc[p[len(p) // 2:]]
        for c in hits:
            if a[c].nunique() > 1 or b[c].nunique() > 1:
                hits[c] += ks_2samp(a[c], b[c]).pvalue < 0.05
    print(f"\n{name}: KS of the pixel statistics on {n} more halves, share with p < 0.05:")
    print("  " + ", ".join(f"{c} {v / n:.1%}" for c, v in hits.items()))


def mmd_halves(name, ds, n) -> None:
    from qa.drift import mmd_permutation_test
    from qa.embeddings import embed_images

    v = embed_images(ds).vectors
    ps = []
    for k in range(n):
        p = np.random.default_rng(3000 + k).permutation(len(v))
        h = len(p) // 2
        ps.append(mmd_permutation_test(v[p[:h]], v[p[h:]], n_permutations=199,
                                       seed=k)["p_value"])
    k = int((np.array(ps) < 0.05).sum())
    lo, hi = wilson(k, n)
    print(f"{name}: the MMD test alone on {n} more halves: {k / n:.1%} with p < 0.05 "
          f"(95% {lo:.1%}-{hi:.1%})")


# ------------------------------------------------------------------------------ planted
def copy_dataset(ds, ids, root: Path, *, darken=(), extra=None):
    """A copy of ``ds`` restricted to ``ids`` under ``root`` (images with ids in ``darken``
    at a quarter of their brightness), plus ``extra`` (another dataset's images and labels,
    added with new ids and its class names)."""
    from PIL import Image

    from qa.dataset import Dataset
    from qa.images import read_image

    sub = ds.subset(ids)
    for r in sub.images.itertuples():
        dst = root / r.file_name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if r.image_id in darken:
            im = read_image(ds.root, r.file_name).image
            arr = (np.asarray(im).astype(np.float32) * 0.25).astype(np.uint8)
            Image.fromarray(arr).save(dst, quality=92)
        elif (ds.root / r.file_name).is_file():
            shutil.copyfile(ds.root / r.file_name, dst)
    images, anns, cats = sub.images, sub.annotations, sub.categories
    if extra is not None:
        off = 10**6
        ex_im = extra.images.assign(image_id=extra.images["image_id"] + off,
                                    file_name="extra/" + extra.images["file_name"].astype(str))
        for r, new in zip(extra.images.itertuples(), ex_im["file_name"]):
            (root / new).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(extra.root / r.file_name, root / new)
        cat_off = int(cats["category_id"].max()) + 1
        ex_an = extra.annotations.assign(image_id=extra.annotations["image_id"] + off,
                                         ann_id=extra.annotations["ann_id"] + off,
                                         category_id=extra.annotations["category_id"] + cat_off,
                                         annotator=str(ds.annotators[0]))
        ex_cat = extra.categories.assign(category_id=extra.categories["category_id"] + cat_off)
        images = pd.concat([images, ex_im[images.columns.intersection(ex_im.columns)]],
                           ignore_index=True)
        anns = pd.concat([anns, ex_an], ignore_index=True)
        cats = pd.concat([cats, ex_cat], ignore_index=True)
    return Dataset(images=images[["image_id", "file_name", "width", "height", "split"]],
                   categories=cats, annotations=anns, root=root, name="B")


def one_labeller(ds, who: str):
    """``ds`` with only ``who``'s labels, under the neutral annotator name "labeller"."""
    import dataclasses

    an = ds.annotations[ds.annotations["annotator"].astype(str) == who]
    an = an.assign(annotator="labeller")
    return dataclasses.replace(ds, annotations=an, annotators=("labeller",))


def planted(sample, raccoon, n_perm) -> None:
    from qa.drift import compare_datasets

    ids = sample.images["image_id"].to_numpy()
    p = np.random.default_rng(7).permutation(ids)
    h = len(p) // 2
    a = sample.subset(p[:h])
    st_a, emb_a = inputs(a)
    b_ids = p[h:]
    rng = np.random.default_rng(8)
    cases = {}
    dark = set(rng.choice(b_ids, len(b_ids) // 10, replace=False).tolist())
    cases["10 % darker"] = (dict(darken=dark), dark)
    sq = set(sample.annotations.loc[sample.annotations["category_id"] == 2, "image_id"])
    keep = [i for i in b_ids if i in sq]
    cases["another class mix (only the images with a square)"] = (dict(ids=keep), sq)
    cases["another class mix (B labelled by carol, who calls 40 % of rings circles)"] = (
        dict(labeller="carol"), set(b_ids.tolist()))
    if raccoon is not None:
        rac = raccoon.subset(raccoon.images["image_id"].to_numpy()[: len(b_ids) // 9])
        cases["10 % raccoons (a new kind of scene)"] = (dict(extra=rac), None)
    for what, (kw, truth) in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            b = copy_dataset(sample, kw.get("ids", b_ids), Path(tmp), darken=kw.get("darken", ()),
                             extra=kw.get("extra"))
            if truth is None:  # the added images
                truth = set(b.images.loc[b.images["image_id"] >= 10**6, "image_id"])
            st_b, emb_b = inputs(b)
            a_cmp = a
            if kw.get("labeller"):  # A labelled by alice, B by another annotator
                a_cmp, b = one_labeller(a, "alice"), one_labeller(b, kw["labeller"])
            r = compare_datasets(a_cmp, b, stats_a=st_a, stats_b=st_b, embeddings_a=emb_a,
                                 embeddings_b=emb_b, names=("A", "B"), n_permutations=n_perm)
        cl = r.clusters
        more = cl[cl["change"] > 0]
        first = more.iloc[0] if len(more) else None
        planted_share = len(truth & set(b.images["image_id"])) / b.n_images
        print(f"\nplanted: {what}: {r.verdict}; {r.summary}")
        t = r.tests[r.tests["p_adjusted"] < 0.5].sort_values("p_adjusted")
        print("  tests with adjusted p < 0.5: " + ("; ".join(
            f"{x.test_id} p_adj {x.p_adjusted:.3g} {x.effect_name} {x.effect:.3g}"
            f"{' DRIFT' if x.drift else ''}" for x in t.itertuples()) or "none"))
        if first is not None:
            members = set(first["examples_b"])
            print(f"  first cluster more in B: cluster {first['cluster']} "
                  f"{first['share_a']:.0%} → {first['share_b']:.0%} (rank {first['rank']}); "
                  f"{len(members & truth)}/{len(members)} of its shown B images are planted "
                  f"(planted share of B: {planted_share:.0%})")
        unc = r.uncovered
        k = min(len(unc), len(truth & set(b.images["image_id"])))
        if k:
            top = set(unc.head(k)["image_id"])
            print(f"  coverage: {len(unc)} of B beyond A's fence; top {k}: "
                  f"{len(top & truth)}/{k} planted")


def real_pairs(bccd, raccoon, n_perm) -> None:
    from qa.drift import compare_datasets, compare_subsets, split_ids

    st, emb = inputs(bccd)
    r = compare_subsets(bccd, split_ids(bccd, "train"), split_ids(bccd, "test"), stats=st,
                        embeddings=emb, names=("train", "test"), n_permutations=n_perm)
    print(f"\nBCCD train vs test: {r.verdict}. {r.summary}")
    if raccoon is not None:
        st_r, emb_r = inputs(raccoon)
        r = compare_datasets(bccd, raccoon, stats_a=st, stats_b=st_r, embeddings_a=emb,
                             embeddings_b=emb_r, names=("BCCD", "raccoon"),
                             n_permutations=n_perm)
        s = r.signals
        print(f"BCCD vs raccoon: {r.verdict}; drift in {int(s['drift'].sum())} of "
              f"{int(s['measured'].sum())} signals ({', '.join(s[s['drift']]['signal'])}); "
              f"tests drifting: {int(r.tests['drift'].sum())} of {len(r.tests)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--halves", type=int, default=100)
    p.add_argument("--ks-halves", type=int, default=2000)
    p.add_argument("--mmd-halves", type=int, default=600)
    p.add_argument("--permutations", type=int, default=999)
    p.add_argument("--skip-halves", action="store_true")
    p.add_argument("--realdata", default=None)
    args = p.parse_args()
    import qa

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    sample = qa.load(ROOT / "sample_data")
    rd = realdata(args.realdata)
    bccd = qa.load(rd / "bccd") if rd else None
    raccoon = (qa.load(rd / "raccoon" / "annotations", format="voc",
                       image_root=rd / "raccoon" / "images") if rd else None)
    if raccoon is not None:
        import dataclasses

        raccoon = dataclasses.replace(raccoon, name="raccoon")
    if not args.skip_halves:
        for name, ds in (("sample_data", sample), ("BCCD", bccd)):
            if ds is not None:
                false_alarms(name, ds, args.halves, args.permutations)
                ks_halves(name, ds, args.ks_halves)
                mmd_halves(name, ds, args.mmd_halves)
    planted(sample, raccoon, args.permutations)
    if bccd is not None:
        real_pairs(bccd, raccoon, args.permutations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
