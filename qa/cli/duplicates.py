"""`dataset-qa duplicates` and `dataset-qa quality`: duplicates, split leakage, image quality."""

from __future__ import annotations

import sys

from qa.cli import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNUSABLE,
    dataset_args,
    load_dataset,
    print_json,
    fraction_bar,
    ray_args,
    table,
    write_text_atomic,
)


def _stats(ds, args):
    from qa.imagestats import compute_image_stats

    return compute_image_stats(ds, progress=fraction_bar("reading pixels", args.json),
                               ray=args.ray, layout=args.layout)


def write_csv(df, path: str) -> None:
    """Write ``df`` to ``path`` atomically (a temp file in the same folder, then rename)."""
    write_text_atomic(path, df.to_csv(index=False))


def cmd_duplicates(args) -> int:
    from qa.dataset import image_labels
    from qa.duplicates import compute_duplicates

    ds = load_dataset(args)
    emb = None
    if args.method == "embedding":
        from qa import embeddings

        embed = getattr(embeddings, "embed_images", None)
        if embed is None:
            sys.stderr.write("dataset-qa: error: this build has no image embedder; use "
                             "--method phash\n")
            return EXIT_UNUSABLE
        emb = embed(ds, progress=fraction_bar("embedding", args.json), ray=args.ray,
                    layout=args.layout)
    res = compute_duplicates(ds, stats=_stats(ds, args), embeddings=emb, method=args.method,
                             threshold=args.threshold, verify=not args.no_verify,
                             progress=fraction_bar("comparing pixels", args.json), ray=args.ray)
    if args.csv:
        write_csv(res.removal, args.csv)
    if args.json:
        print_json(res.to_dict())
    else:
        w = sys.stdout.write
        m = res.metrics()
        w(f"{res.n_checked} of {res.n_images} images compared ({', '.join(res.methods_used)}"
          f"{'' if res.hash_radius is None else f', Hamming radius {res.hash_radius}'}); "
          f"{len(res.rejected):,} look-alike candidates are not the same picture\n")
        w(f"{m['n_exact_pairs']} exact pairs, {m['n_near_pairs']} near pairs, "
          f"{m['n_clusters']} clusters, {m['n_suggested_removals']} suggested removals\n")
        w(f"leakage: {m['n_cross_split_pairs']} pairs across splits, {m['n_leaking_images']} "
          f"leaking images; {m['n_inconsistent_label_clusters']} clusters with inconsistent "
          f"labels; {m['n_listed_twice']} files listed twice\n\n")
        names = image_labels(ds.images)  # files as a user reads them, not internal ids
        if len(res.leakage):
            w("Leakage (copies across splits)\n" + table(res.leakage_table(), [
                "copy_file", "copy_split", "kept_file", "kept_split", "decided_by"])
              + "\n\n")
        if len(res.removal):
            rm = res.removal.assign(image=res.removal["image_id"].map(names),
                                    keep=res.removal["keep_instead"].map(names))
            w("Suggested removals (nothing was deleted)\n"
              + table(rm, ["image", "keep", "reason"]) + "\n")
        for note in res.notes:
            w(f"  note: {note}\n")
        if args.csv:
            w(f"removal list written to {args.csv}\n")
    leaking = res.metrics()["n_cross_split_pairs"] > 0
    return EXIT_INVALID if (args.fail_on_leakage and leaking) else EXIT_OK


def cmd_quality(args) -> int:
    from qa.quality import compute_quality

    ds = load_dataset(args)
    res = compute_quality(ds, _stats(ds, args))
    if args.csv:
        write_csv(res.flagged(), args.csv)
    if args.json:
        print_json(res.to_dict())
    else:
        w = sys.stdout.write
        w(table(res.counts, ["check", "flagged", "share"]) + "\n\n")
        flagged = res.flagged()
        if len(flagged):
            w("Flagged images\n" + table(flagged.head(args.top),
                                         ["image_id", "file_name", "worst", "n_flags",
                                          "brightness", "blur", "entropy"]) + "\n")
        for note in res.notes:
            w(f"  note: {note}\n")
    return EXIT_OK


def register(sub) -> None:
    from qa.duplicates import METHODS

    d = sub.add_parser("duplicates", help="exact and near-duplicates, split leakage")
    dataset_args(d)
    d.add_argument("--method", choices=METHODS[1:], default="phash",
                   help="exact: same bytes or pixels; phash: + perceptual candidates "
                        "(default); embedding: + image embeddings as candidates too (adds, "
                        "never replaces); every candidate is then verified on the pixels")
    d.add_argument("--threshold", type=float, default=None,
                   help="similarity a candidate needs (phash: 1 - Hamming/128, default 0.81; "
                        "embedding: cosine, default 0.80); with --no-verify the similarity a "
                        "pair needs (0.906 / 0.95)")
    d.add_argument("--no-verify", action="store_true",
                   help="decide pairs by the threshold alone, without comparing pixels")
    d.add_argument("--csv", default=None, help="write the suggested removal list to this CSV")
    d.add_argument("--fail-on-leakage", action="store_true",
                   help="exit 1 when copies cross splits (a CI gate)")
    ray_args(d)
    d.set_defaults(func=cmd_duplicates)
    q = sub.add_parser("quality", help="dark, blurry, blank, grey, tiny, odd-aspect images")
    dataset_args(q)
    q.add_argument("--csv", default=None, help="write the flagged images to this CSV")
    q.add_argument("--top", type=int, default=30, help="flagged images to list")
    ray_args(q)
    q.set_defaults(func=cmd_quality)
