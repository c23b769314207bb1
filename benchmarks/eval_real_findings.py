"""Precision and recall of the duplicates, outliers and quality findings on real datasets,
against judgements made by looking at the images (benchmarks/real_eval/*.csv, with the reason
for each; sources, commits and licences in benchmarks/real_eval/SOURCES.md).

Run: ``.venv/bin/python benchmarks/eval_real_findings.py [--data DIR] [--only bccd,chess]``.
``--data`` is the folder holding the downloaded Roboflow exports (``chess/``, ``ricepest/``;
default ``$QA_REALDATA_EXTRA`` or /work/data/real); BCCD comes from ``../shared/realdata``
(or ``$QA_REALDATA``). Image embeddings come from the store (``dataset-qa embed`` once per
dataset; the offline model takes ~17 images/s on 2 cores); ``--embed`` computes missing ones.

Truth per finding kind:

* duplicates.csv: pairs judged ``same`` 1/0 by eye. For the chess set (Roboflow export with 3
  augmented versions of each photo) a pair that is not listed is judged by its Roboflow source
  name (the file name before ``_jpg.rf.``): same source = same picture; that rule was checked
  by eye on a sample and every pair where it and the tool disagreed is listed with its own
  judgement.
* outliers.csv / quality.csv: images the tool flags, judged ``true`` 1/0 by eye; a flagged
  image that is not listed counts as unjudged (printed). Outliers judged by eye among images
  the tool did not flag (the trash set's highest scores) give a recall.
* The built sets (real_eval/make_contaminated.py): in ``<set>-mix`` an image named
  ``contam-*`` (a photo of another real set) or ``artifact-*`` is an outlier, and the kind the
  tool gives it is checked; in ``<set>-defects`` an image named ``defect-<dark|bright|blur>-*``
  is a true quality flag, and recall is counted per check. The sets' own images keep the
  judgements of the set they come from.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVAL = HERE / "real_eval"


def _realdata() -> Path:
    env = os.environ.get("QA_REALDATA")
    if env:
        return Path(env)
    rel = HERE.parents[1] / "shared" / "realdata"
    return rel if rel.exists() else Path("/work/shared/realdata")


def datasets(extra: Path) -> dict[str, tuple[Path, str | None]]:
    """name -> (folder, subset rule)."""
    return {"bccd": (_realdata() / "bccd", None),
            "chess-distinct": (extra / "chess", "one_per_source"),
            "ricepest": (extra / "ricepest", None),
            "chess": (extra / "chess", None),
            "trash": (extra / "trash", None),
            # outliers: the sets above with real photos of other sets mixed in
            # (benchmarks/real_eval/make_contaminated.py builds them under DATA/contam)
            "bccd-mix": (extra / "contam" / "bccd-mix", None),
            "ricepest-mix": (extra / "contam" / "ricepest-mix", None),
            "chess-mix": (extra / "contam" / "chess-mix", "one_per_source"),
            # quality recall: the sets with 10 photos each underexposed, overexposed, blurred
            "bccd-defects": (extra / "contam" / "bccd-defects", None),
            "ricepest-defects": (extra / "contam" / "ricepest-defects", None),
            "chess-defects": (extra / "contam" / "chess-defects", "one_per_source")}


def source_stem(file_name: str) -> str:
    """A Roboflow export's source image: the file name before ``_<ext>.rf.<hash>``."""
    return re.sub(r"_(jpe?g|png|bmp)\.rf\.[0-9a-f]+\.\w+$", "", Path(file_name).name,
                  flags=re.I)


def _read(name: str) -> list[dict]:
    p = EVAL / name
    if not p.exists():
        return []
    with p.open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if not r.get("dataset", "").startswith("#")]


def _load(path: Path, subset: str | None):
    import qa

    ds = qa.load(path)
    if subset == "one_per_source":
        stems = ds.images["file_name"].map(source_stem)
        ds = ds.subset(ds.images.loc[~stems.duplicated(), "image_id"].tolist())
    return ds


def eval_duplicates(name: str, ds, dup, judged: list[dict]) -> None:
    names = dict(zip(ds.images["image_id"], ds.images["file_name"]))
    explicit = {frozenset((r["file_a"], r["file_b"])): r["same"] == "1" for r in judged
                if r["dataset"] in (name, name.split("-")[0])}
    use_stem = name.startswith("chess")
    present = set(names.values())

    # a judgement of two source photos holds for their augmented versions too
    by_source = {frozenset(map(source_stem, k)): v for k, v in explicit.items()
                 if len(k) == 2} if use_stem else {}

    def truth(a: str, b: str) -> bool | None:
        k = frozenset((a, b))
        if k in explicit:
            return explicit[k]
        if use_stem:
            sa, sb = source_stem(a), source_stem(b)
            return sa == sb or by_source.get(frozenset((sa, sb)), False)
        return None

    near = dup.near_pairs
    found = [(names[a], names[b]) for a, b in zip(near["image_id_a"], near["image_id_b"])]
    verdicts = [truth(a, b) for a, b in found]
    tp = sum(v is True for v in verdicts)
    unjudged = sum(v is None for v in verdicts)
    # every true pair: the explicit ones in this dataset, and (chess) every same-source pair
    true_pairs = {k for k, v in explicit.items() if v and k <= present}
    if use_stem:
        by_stem: dict[str, list[str]] = {}
        for f in present:
            by_stem.setdefault(source_stem(f), []).append(f)
        for fs in by_stem.values():
            true_pairs |= {frozenset((x, y)) for i, x in enumerate(fs) for y in fs[i + 1:]}
        true_pairs = {k for k in true_pairs if explicit.get(k, True)}
        stems = sorted(by_stem)
        for i, x in enumerate(stems):  # the versions of two photos judged the same picture
            for y in stems[i + 1:]:
                if by_source.get(frozenset((x, y))):
                    true_pairs |= {frozenset((f, g)) for f in by_stem[x] for g in by_stem[y]}
    found_set = {frozenset(p) for p in found} | {
        frozenset((names[a], names[b])) for a, b in zip(dup.exact_pairs["image_id_a"],
                                                      dup.exact_pairs["image_id_b"])}
    hit = len(true_pairs & found_set)
    judged_found = len(found) - unjudged
    p = f"{tp / judged_found:.2f}" if judged_found else "  - "
    r = f"{hit / len(true_pairs):.2f}" if true_pairs else "  - "
    print(f"  duplicates  precision {p} ({tp}/{judged_found})  recall {r} "
          f"({hit}/{len(true_pairs)})")
    share = len(dup.removal) / max(len(ds.images), 1)
    # removals backed by pairs judged true: the clusters of the true pairs alone
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for (a, b), v in zip(found, verdicts):
        if v is True:
            parent[root(a)] = root(b)
    backed = len(parent) - len({root(x) for x in list(parent)})
    print(f"              removals backed by a pair judged the same picture: {backed} "
          f"({backed / max(len(ds.images), 1):.1%}); the other "
          f"{len(dup.removal) - backed} come from pairs judged different or unjudged")
    print(f"              {len(near)} near pairs ({unjudged} unjudged), "
          f"{len(dup.exact_pairs)} exact, {len(dup.rejected)} candidates rejected on the "
          f"pixels; {len(dup.removal)} of {len(ds.images)} images ({share:.1%}) suggested for "
          f"removal; {dup.metrics()['n_cross_split_pairs']} cross-split pairs")


# The kind the outlier should be given, by the planted image's name (make_contaminated.py).
PLANTED_KIND = {"contam": "another subject", "artifact-black": "nearly black",
                "artifact-washed": "washed out", "artifact-blank": "blank",
                "artifact-truncated": None}


def planted(file_name: str) -> str | None:
    """'contam' / 'artifact-<kind>' for an image mixed into a set, else None."""
    base = Path(file_name).name
    if base.startswith("contam-"):
        return "contam"
    m = re.match(r"(artifact-[a-z]+)-", base)
    return m.group(1) if m else None


# The set whose judgements (quality.csv, outliers.csv) apply to a built set's own images.
BASE_OF = {"bccd-mix": "bccd", "bccd-defects": "bccd", "ricepest-mix": "ricepest",
           "ricepest-defects": "ricepest", "chess-mix": "chess-distinct",
           "chess-defects": "chess-distinct"}
DEFECT_CHECK = {"dark": "dark", "bright": "overexposed", "blur": "blurry"}


def eval_quality(name: str, ds, qual, judged: list[dict]) -> None:
    """Precision of the quality flags (an image with a planted defect is a true flag, the
    set's own by quality.csv), and recall of the planted defects by the check that should
    find them."""
    from qa.quality import CHECKS

    flagged = [(r.file_name, c) for c in CHECKS for r in qual.flagged(c).itertuples()]
    base = BASE_OF.get(name, name)
    j = {(r["file"], r["check"]): r["true"] == "1" for r in judged if r["dataset"] == base}
    defect = {f: m.group(1) for f in ds.images["file_name"]
              if (m := re.match(r"defect-([a-z]+)-", Path(f).name))}

    def verdict(f, c):
        if f in defect or str(planted(f)).startswith("artifact"):
            return True  # a planted defect or capture artifact
        if planted(f) == "contam":
            return None  # a photo of another set: its quality is not judged here
        return j.get((f, c))

    verdicts = [verdict(f, c) for f, c in flagged]
    tp = sum(v is True for v in verdicts)
    n_judged = sum(v is not None for v in verdicts)
    p = f"{tp / n_judged:.2f}" if n_judged else "  - "
    by: dict[str, int] = {}
    for _, c in flagged:
        by[c] = by.get(c, 0) + 1
    print(f"  quality     precision {p} ({tp}/{n_judged} judged; {len(flagged) - n_judged} "
          f"unjudged) flagged: {by or 'nothing'}")
    if defect:
        got = set(flagged)
        for kind, check in DEFECT_CHECK.items():
            fs = [f for f, k in defect.items() if k == kind]
            hit = sum((f, check) in got for f in fs)
            print(f"              recall {kind:6s} ({check}): {hit / len(fs):.2f} "
                  f"({hit}/{len(fs)})")


def eval_outliers(name: str, ds, out, judged: list[dict]) -> None:
    """Precision among the flagged (planted images are true, the set's own by outliers.csv),
    recall of the planted ones, whether each planted outlier got the right kind, and that
    no two flagged images are copies of one picture."""
    j = {r["file"]: r["true"] == "1" for r in judged
         if r["dataset"] in (name, BASE_OF.get(name))}
    fl = out.flagged
    verdicts = [True if planted(f) else j.get(f) for f in fl["file_name"]]
    tp = sum(v is True for v in verdicts)
    n_judged = sum(v is not None for v in verdicts)
    p = f"{tp / n_judged:.2f}" if n_judged else "  - "
    kinds = fl["kind"].fillna("(none)").value_counts().to_dict()
    print(f"  outliers    precision {p} ({tp}/{n_judged} judged; {len(fl) - n_judged} "
          f"unjudged) flagged: {len(fl)} {kinds}")
    per = out.per_image
    plant = per["file_name"].map(planted)
    if plant.notna().any():
        for label, m in (("other subject", plant == "contam"),
                         ("artifacts", plant.fillna("").str.startswith("artifact"))):
            hit = int((per["is_outlier"] & m).sum())
            print(f"              recall {label}: {hit / max(int(m.sum()), 1):.2f} "
                  f"({hit}/{int(m.sum())})")
        ok = tot = 0
        for f, kind in zip(fl["file_name"], fl["kind"]):
            want = PLANTED_KIND.get(planted(f) or "", "")
            if want == "" or want is None:
                continue
            tot += 1
            want = want if isinstance(want, tuple) else (want,)
            ok += any(w in str(kind) for w in want)
        print(f"              kind right: {ok}/{tot} flagged planted images")
    real = [f for f, v in j.items() if v and not planted(f)]
    if real:  # outliers judged by eye among the set's own images, flagged or not
        hit = int(per.loc[per["file_name"].isin(real), "is_outlier"].sum())
        print(f"              recall of the set's own outliers judged by eye: "
              f"{hit / len(real):.2f} ({hit}/{len(real)})")
    copies = per["duplicate_of"].notna()
    both = int((copies & per["is_outlier"]).sum())
    print(f"              one image per duplicate group: "
          f"{'yes' if both == 0 else f'NO ({both} flagged copies)'} "
          f"({int(copies.sum())} copies ranked under another)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get(
        "QA_REALDATA_EXTRA", "/work/data/real")))
    ap.add_argument("--only", default=None, help="comma-separated dataset names")
    ap.add_argument("--embed", action="store_true", help="embed images not in the store")
    ap.add_argument("--list", action="store_true",
                    help="print every finding (file names), for judging")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from qa.duplicates import compute_duplicates
    from qa.embeddings import embed_images
    from qa.imagestats import compute_image_stats
    from qa.outliers import compute_outliers
    from qa.quality import CHECKS, compute_quality

    print(f"load: {open('/proc/loadavg').read().split()[:3]} (1/5/15-min load averages)")
    dj, oj, qj = _read("duplicates.csv"), _read("outliers.csv"), _read("quality.csv")
    only = set(args.only.split(",")) if args.only else None
    for name, (path, subset) in datasets(args.data).items():
        if only and name not in only:
            continue
        if not path.exists():
            print(f"{name}: {path} not found, skipped")
            continue
        t0 = time.perf_counter()
        ds = _load(path, subset)
        stats = compute_image_stats(ds)
        emb = embed_images(ds, cached_only=not args.embed, model="efficientnet-lite0")
        print(f"{name}: {len(ds.images)} images, {len(emb)} embedded")
        dup = compute_duplicates(ds, stats=stats, embeddings=emb if len(emb) else None)
        if name not in BASE_OF:  # the built sets are for outliers and quality
            eval_duplicates(name, ds, dup, dj)
        qual = compute_quality(ds, stats)
        qflags = [(r.file_name, c) for c in CHECKS for r in qual.flagged(c).itertuples()]
        eval_quality(name, ds, qual, qj)
        if len(emb) >= 3 and not name.endswith("-defects"):
            out = compute_outliers(ds, emb, duplicates=dup, stats=stats)
            eval_outliers(name, ds, out, oj)
            if args.list:
                for r in out.flagged.itertuples():
                    print(f"    outlier {r.file_name}  score {r.score:.3f}  {r.kind}")
        if args.list:
            for f, c in qflags:
                print(f"    quality {c} {f}")
            for r in dup.near_pairs.itertuples():
                print(f"    pair {r.file_a} {r.file_b} {r.reason}")
        print(f"  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
