"""`dataset-qa select` (what to label next) and `dataset-qa split` (a proposed split)."""

from __future__ import annotations

import sys
import warnings

from qa.cli import EXIT_OK, dataset_args, fraction_bar, load_dataset, print_json, table

DUPLICATE_CHOICES = ("phash", "exact", "none")


def _duplicates(ds, args):
    """The near-duplicate clusters (None with --duplicates none, or without image files)."""
    if args.duplicates == "none":
        return None
    if ds.root is None or ds.images.empty:
        sys.stderr.write("dataset-qa: note: no image files, so no duplicate search: copies "
                         "are not kept together\n")
        return None
    from qa.duplicates import compute_duplicates
    from qa.imagestats import compute_image_stats

    stats = compute_image_stats(ds, progress=fraction_bar("reading pixels", args.json))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return compute_duplicates(ds, stats=stats, method=args.duplicates)


def _embeddings(ds, args):
    if args.embeddings == "skip" or ds.root is None:
        return None
    from qa.embeddings import embed_images

    emb = embed_images(ds, model=args.embedding_model, checkpoint=args.checkpoint,
                       cached_only=args.embeddings == "cached",
                       progress=fraction_bar("embedding", args.json))
    return emb if len(emb) else None


def cmd_select(args) -> int:
    from qa.selection import export_selection, resolve_pool, select_for_labelling

    ds = load_dataset(args)
    pool, labelled = resolve_pool(ds, args.pool)
    needs_emb = args.strategy not in ("uncertainty", "random")
    emb = _embeddings(ds, args) if needs_emb else None
    dups = _duplicates(ds, args)
    rare = [c.strip() for c in args.rare_classes.split(",")] if args.rare_classes else None
    res = select_for_labelling(
        ds, args.budget, strategy=args.strategy, pool=pool, labelled=labelled, embeddings=emb,
        duplicates=dups, model=args.model, measure=args.measure, aggregate=args.aggregate,
        conf_threshold=args.conf, rare_weight=args.rare_weight, rare_classes=rare,
        stratify=args.stratify, seed=args.seed,
        progress=fraction_bar("selecting", args.json))
    written = export_selection(ds, res, args.out, conf_threshold=args.conf) if args.out else {}
    if args.json:
        print_json({**res.to_dict(), "written": {k: str(v) for k, v in written.items()}})
        return EXIT_OK
    w = sys.stdout.write
    m = res.metrics()
    w(f"pool: {res.n_pool} images ({args.pool}), labelled: {res.n_labelled}; strategy "
      f"{res.strategy}; picked {m['n_picked']} of {res.budget}, skipped {m['n_skipped']} "
      "near-duplicate(s)\n")
    if m["coverage_before"] is not None:
        w(f"coverage (mean distance from the pool to the nearest labelled image): "
          f"{m['coverage_before']:.3f} -> {m['coverage_after']:.3f} after labelling the picks\n")
    if res.rare_classes:
        w(f"rare classes targeted (weight {res.rare_weight:g}): "
          f"{', '.join(res.rare_classes)}\n")
    w("\n")
    if len(res.picks):
        w(table(res.picks, ["rank", "image_id", "file_name", "reasons"]) + "\n")
    if len(res.skipped):
        w("\nSkipped (near-duplicates)\n" + table(res.skipped, ["image_id", "file_name",
                                                               "reason"]) + "\n")
    for note in res.notes:
        w(f"  note: {note}\n")
    for kind, path in written.items():
        w(f"{kind}: {path}\n")
    return EXIT_OK


def cmd_split(args) -> int:
    from qa.partition import export_split, parse_fractions, propose_split

    ds = load_dataset(args)
    fractions = parse_fractions(args.fractions) if args.fractions else None
    dups = _duplicates(ds, args)
    prop = propose_split(ds, fractions, duplicates=dups, keep_existing=args.keep_existing,
                         annotator=args.annotator, tolerance=args.tolerance, seed=args.seed)
    if args.out:
        export_split(ds, prop, args.out)
    if args.json:
        print_json({**prop.to_dict(), "written": args.out})
        return EXIT_OK
    w = sys.stdout.write
    w(f"{'kept the existing split, ' if prop.keep_existing else ''}{prop.n_moved} image(s) "
      f"change split; {prop.n_groups} groups (near-duplicates kept together); class mix of "
      f"{prop.annotator or 'nobody'}'s labels\n\n")
    w(table(prop.checks(), ["check", "before", "after"]) + "\n\n")
    w(table(prop.sizes, ["split", "fraction", "target", "before", "after"]) + "\n")
    if prop.n_moved:
        w(f"\nMoved (first {min(args.top, prop.n_moved)})\n"
          + table(prop.moved.head(args.top), ["image_id", "file_name", "old_split", "split",
                                               "reason"]) + "\n")
    for note in prop.notes:
        w(f"  note: {note}\n")
    if args.out:
        w(f"proposal written to {args.out} (nothing was moved)\n")
    return EXIT_OK


def register(sub) -> None:
    from qa.partition import SHARE_TOLERANCE
    from qa.selection import AGGREGATES, DEFAULT_RARE_WEIGHT, MEASURES, STRATEGIES, STRATIFY

    s = sub.add_parser("select", help="choose the images to label next (active learning)")
    dataset_args(s)
    s.add_argument("--budget", type=int, required=True, help="how many images to pick")
    s.add_argument("--strategy", choices=STRATEGIES, default="auto",
                   help="auto (default: hybrid with predictions and embeddings), hybrid, "
                        "hybrid_kcenter, uncertainty, kcenter, cluster, random")
    s.add_argument("--pool", default="unlabelled",
                   help="unlabelled (default), all, split:NAME, or a file of image ids or "
                        "file names")
    s.add_argument("--model", default=None, help="whose predictions (default: the only model)")
    s.add_argument("--measure", choices=MEASURES, default="entropy",
                   help="uncertainty measure (default: entropy)")
    s.add_argument("--aggregate", choices=AGGREGATES, default="max",
                   help="detections: pool box uncertainties per image (default: max)")
    s.add_argument("--conf", type=float, default=0.5,
                   help="confidence threshold: boxes near it are unsure; boxes above it are "
                        "the Label Studio pre-labels (default 0.5)")
    s.add_argument("--rare-weight", type=float, default=DEFAULT_RARE_WEIGHT,
                   help="priority boost for images predicted to hold a rare class (0 = off)")
    s.add_argument("--rare-classes", default=None,
                   help="comma-separated class names to target (default: rare among the "
                        "labelled images)")
    s.add_argument("--stratify", choices=STRATIFY, default="split",
                   help="random strategy: stratify by split, predicted class, or none")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--embeddings", choices=("auto", "cached", "skip"), default="auto",
                   help="compute missing image embeddings, use cached ones only, or none")
    s.add_argument("--embedding-model", default="auto",
                   help="embedder: auto (CLIP if its weights are here, else the offline model)")
    s.add_argument("--checkpoint", default=None, help="local CLIP checkpoint file")
    s.add_argument("--duplicates", choices=DUPLICATE_CHOICES, default="phash",
                   help="how near-duplicates are found (skipped when picking); none = off")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="write selection.csv, selection_coco.json, labelstudio_tasks.json "
                        "(+ config) and selection.json here (never inside the dataset)")
    s.set_defaults(func=cmd_select)

    p = sub.add_parser("split", help="propose a train/val/test split: no leakage, the same "
                                     "class mix in every split")
    dataset_args(p)
    p.add_argument("--fractions", default=None,
                   help="'.8,.1,.1' (train,val,test; default), '.8,.2' (train,test) or "
                        "'train=.7,val=.15,test=.15'")
    p.add_argument("--keep-existing", action="store_true",
                   help="keep the current split; move only leaking copies and what the class "
                        "mix needs")
    p.add_argument("--annotator", default=None,
                   help="whose labels give the class mix (default: the one with most)")
    p.add_argument("--tolerance", type=float, default=SHARE_TOLERANCE,
                   help="largest class-share deviation left alone (default 0.02 = 2 points)")
    p.add_argument("--duplicates", choices=DUPLICATE_CHOICES, default="phash",
                   help="how near-duplicates are found (kept in one split); none = off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=30, help="moved images to list")
    p.add_argument("--out", default=None, metavar="CSV",
                   help="write the proposal (image_id, file_name, split, ...) to this CSV")
    p.set_defaults(func=cmd_split)
