"""`dataset-qa compare A B`: is B like A? Drift, coverage and what changed between versions
(a CI gate before training on a new batch with --fail-on-drift)."""

from __future__ import annotations

import argparse
import sys

from qa.cli import (
    EXIT_INVALID,
    EXIT_OK,
    fraction_bar,
    load_dataset,
    print_json,
    table,
    write_text_atomic,
)

EMBEDDING_MODES = ("auto", "cached", "skip")


def _load(path: str, args, *, fmt: str, image_root):
    ns = argparse.Namespace(path=path, format=fmt, predictions=None, no_predictions=True,
                            image_root=image_root, prediction_names=None, yolo_columns="auto",
                            voc_coordinates=args.voc_coordinates, json=args.json)
    return load_dataset(ns)


def _stats(ds, args):
    from qa.imagestats import compute_image_stats

    return compute_image_stats(ds, progress=fraction_bar(f"reading pixels of {ds.name}",
                                                         args.json))


def _embeddings(ds, args):
    if args.embeddings == "skip":
        return None
    from qa.embeddings import embed_images

    emb = embed_images(ds, model=args.model, cached_only=args.embeddings == "cached",
                       progress=fraction_bar(f"embedding {ds.name}", args.json))
    return emb if len(emb) else None


def cmd_compare(args) -> int:
    from qa.drift import compare_datasets, compare_subsets, split_ids

    a = _load(args.a, args, fmt=args.format, image_root=args.image_root)
    options = dict(alpha=args.alpha, n_permutations=args.permutations,
                   n_clusters=args.clusters, annotator=args.annotator,
                   progress=fraction_bar("comparing", args.json))
    if args.splits:
        if args.b:
            raise ValueError("give either B or --splits, not both")
        parts = []
        for s in args.splits:
            ids = split_ids(a, s)
            if not len(ids):
                raise ValueError(f"split {s!r} has no images in {args.a}; its splits: "
                                 f"{list(a.splits) or 'none'} (use 'none' for images without)")
            parts.append(ids)
        res = compare_subsets(a, *parts, stats=_stats(a, args), embeddings=_embeddings(a, args),
                              names=tuple(args.splits), **options)
    elif args.b:
        b = _load(args.b, args, fmt=args.format_b or args.format,
                  image_root=args.image_root_b)
        emb_a = _embeddings(a, args)
        emb_b = _embeddings(b, args) if emb_a is not None else None
        res = compare_datasets(a, b, stats_a=_stats(a, args), stats_b=_stats(b, args),
                               embeddings_a=emb_a if emb_b is not None else None,
                               embeddings_b=emb_b, **options)
    else:
        raise ValueError("give the dataset B to compare with A, or --splits SPLIT_A SPLIT_B")
    if args.csv:
        write_text_atomic(args.csv, res.uncovered.to_csv(index=False))
    if args.json:
        print_json(res.to_dict())
    else:
        _print(res, args)
    return EXIT_INVALID if (args.fail_on_drift and res.is_drift) else EXIT_OK


def _print(res, args) -> None:
    w = sys.stdout.write
    w(f"{res.name_b} ({res.n_images_b:,} images) compared with {res.name_a} "
      f"({res.n_images_a:,} images)\n{res.summary}\n\n")
    for r in res.signals.itertuples(index=False):
        state = ("DRIFT" if r.drift else "no drift") if r.measured else "not measured"
        w(f"  {r.signal:<11} {state:<13} {r.what or (r.reason or '')}\n")
    t = res.tests
    if len(t):
        w(f"\nTests (p adjusted for {t['p_value'].notna().sum()} tests in "
          f"{res.signals['measured'].sum()} signals; drift = adjusted p < {res.alpha:g} and a "
          "material effect)\n")
        w(table(t, ["signal", "label", "test", "statistic", "p_value", "p_adjusted",
                    "effect_name", "effect", "drift"]) + "\n")
    if len(res.class_mix):
        w("\nClass mix (share of labels; change B - A with its 95% interval; share of images "
          "holding the class)\n"
          + table(res.class_mix.head(args.top), ["name", "count_a", "count_b", "share_a",
                                                 "share_b", "change", "ci_low", "ci_high",
                                                 "significant", "image_share_a",
                                                 "image_share_b"]) + "\n")
    if len(res.image_features):
        w("\nImage statistics\n" + table(res.image_features, [
            "feature", "statistic", "p_value", "psi", "wasserstein_norm", "median_a",
            "median_b"]) + "\n")
    if len(res.clusters):
        w("\nClusters of the pooled embeddings, most changed first\n"
          + table(res.clusters.head(args.top), ["cluster", "n_a", "n_b", "share_a",
                                                "share_b", "change", "p_adjusted",
                                                "direction"]) + "\n")
    unc = res.uncovered
    if res.coverage_space:
        w(f"\nCoverage: {len(unc):,} images of {res.name_b} beyond {res.name_a}'s "
          f"nearest-neighbour fence ({res.coverage_share_a:.1%} of {res.name_a}'s own)\n")
        w(table(res.coverage_summary, ["space", "fence", "share_a", "n_uncovered", "share_b",
                                       "p_value"]) + "\n")
        if len(unc):
            w(table(unc.head(args.top), ["image_id", "file_name", "space", "excess",
                                         "nearest_file_a"]) + "\n")
    if res.has_versions:
        counts = res.files["status"].value_counts()
        w("\nVersions: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + " files; "
          f"{len(res.label_changes):,} labels changed\n")
        if len(res.changes_summary):
            w(table(res.changes_summary.head(args.top), ["annotator", "class", "change",
                                                         "labels"]) + "\n")
    for note in res.notes:
        w(f"  note: {note}\n")
    if args.csv:
        w(f"uncovered images written to {args.csv}\n")


def register(sub) -> None:
    from qa.drift import DEFAULT_ALPHA, DEFAULT_PERMUTATIONS

    p = sub.add_parser("compare", help="drift, coverage and version changes between two "
                                       "datasets (or two splits of one)")
    p.add_argument("a", help="the reference dataset A (what the model was trained on)")
    p.add_argument("b", nargs="?", default=None,
                   help="the dataset B to compare with A (a new batch, a new version)")
    p.add_argument("--splits", nargs=2, metavar=("SPLIT_A", "SPLIT_B"), default=None,
                   help="compare two splits of A instead (e.g. --splits train test)")
    p.add_argument("--format", default="auto", help="format of A (default: sniffed)")
    p.add_argument("--format-b", default=None, help="format of B (default: as A's)")
    p.add_argument("--image-root", default=None, help="where A's image files are")
    p.add_argument("--image-root-b", default=None, help="where B's image files are")
    p.add_argument("--voc-coordinates", default="auto",
                   choices=("auto", "one_based", "zero_based"),
                   help="Pascal VOC pixel convention (see `dataset-qa info --help`)")
    p.add_argument("--embeddings", choices=EMBEDDING_MODES, default="auto",
                   help="compute missing embeddings (slow on a CPU, kept for next time), use "
                        "only cached ones, or skip the embedding signals (default: auto)")
    p.add_argument("--model", default="auto", help="embedding model (see `dataset-qa embed`)")
    p.add_argument("--annotator", default=None,
                   help="whose labels to compare (default: the one with most labels)")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help="family-wise false-alarm rate of the verdict (default 0.05)")
    p.add_argument("--permutations", type=int, default=DEFAULT_PERMUTATIONS,
                   help="permutations per test (default 999: p-values down to 0.001)")
    p.add_argument("--clusters", type=int, default=None,
                   help="clusters of the pooled embeddings (default: about sqrt(n / 4))")
    p.add_argument("--csv", default=None, help="write B's uncovered images to this CSV")
    p.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    p.add_argument("--fail-on-drift", action="store_true",
                   help="exit 1 when the verdict is drift (a CI gate before training)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_compare)
