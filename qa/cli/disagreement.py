"""`dataset-qa disagreement` (model-vs-label flags, the review queue, relabel exports) and
`dataset-qa evaluate` (COCO detection metrics equal to pycocotools')."""

from __future__ import annotations

import sys

from qa.cli import EXIT_OK, EXIT_UNUSABLE, dataset_args, load_dataset, print_json, table


def _dataset(args):
    """The dataset with its predictions; a ``--predictions X.csv`` is a classifier's
    probabilities (qa.io.probabilities), the rest go through the usual loader."""
    csvs = [p for p in (args.predictions or []) if str(p).lower().endswith(".csv")]
    args.predictions = [p for p in (args.predictions or []) if p not in csvs] or None
    if csvs:
        args.no_predictions = True
    ds = load_dataset(args)
    if csvs:
        import pandas as pd

        from qa.io.probabilities import load_probabilities

        ds = ds.with_predictions(pd.concat([ds.predictions] + [load_probabilities(c, ds)
                                                                for c in csvs],
                                           ignore_index=True))
    return ds


def _fail(exc) -> int:
    sys.stderr.write(f"dataset-qa: error: {exc}\n")
    return EXIT_UNUSABLE


def cmd_disagreement(args) -> int:
    from qa.disagreement import compute_disagreement

    ds = _dataset(args)
    objects = None
    if args.objects and ds.has_boxes and not ds.is_classification:
        from qa.cli import fraction_bar
        from qa.embeddings import ModelError, embed_objects

        try:  # computed once, then read from the store
            objects = embed_objects(ds, progress=fraction_bar("embedding boxes", args.json))
        except ModelError as exc:
            return _fail(exc)
    try:
        res = compute_disagreement(ds, reference=args.reference, model=args.model,
                                   conf_threshold=args.conf, iou_threshold=args.iou,
                                   objects=objects)
    except ValueError as exc:
        return _fail(exc)
    written = {}
    if args.export:
        from qa.io.export import export_queue

        try:
            written = export_queue(ds, res, args.export)
        except ValueError as exc:
            return _fail(exc)
    if args.json:
        doc = res.to_dict()
        doc["exported"] = {k: str(v) for k, v in written.items()}
        print_json(doc)
        return EXIT_OK
    w = sys.stdout.write
    m = res.metrics()
    w(f"Model {res.model} vs {res.reference} labels (confidence >= {res.conf_threshold}, "
      f"IoU >= {res.iou_threshold}): {m['n_flags']} flags on {m['n_flagged_images']} images\n")
    w("  " + ", ".join(f"{k}: {v}" for k, v in res.counts().items() if v) + "\n")
    cc = res.cause_counts()
    fmt = (lambda v: f"~{v:.1f}") if cc["estimated"] else (lambda v: f"{int(v)}")
    w(f"  likely label errors: {fmt(cc['label_errors'])}, likely model misses: "
      f"{fmt(cc['model_misses'])}{' (estimated)' if cc['estimated'] else ''}\n"
      f"  how: {cc['basis']}\n")
    for note in res.notes:
        w(f"  note: {note}\n")
    w(f"\nReview queue (top {args.top}, most likely wrong first):\n")
    from qa.dataset import image_labels

    q = res.queue.head(args.top)
    q = q.assign(image=q["image_id"].map(image_labels(ds.images)))
    w(table(q, ["image", "label_quality", "reasons"]) + "\n")
    if len(res.unknown_predictions):
        w(f"\n{len(res.unknown_predictions)} predictions for unknown images/classes:\n")
        w(table(res.unknown_predictions.head(10), ["pred_id", "image_id", "category_id",
                                                   "reason"]) + "\n")
    for k, v in written.items():
        w(f"wrote {k}: {v}\n")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from qa.evaluation import evaluate_detections

    try:
        ev = evaluate_detections(_dataset(args), model=args.model, reference=args.reference,
                                 conf_threshold=args.conf)
    except ValueError as exc:
        return _fail(exc)
    if args.json:
        print_json(ev.to_dict())
        return EXIT_OK
    w = sys.stdout.write
    w(f"Model {ev.model} vs {ev.reference} labels (COCO bbox, equal to pycocotools)\n")
    w("  " + ", ".join(f"{k} {v:.3f}" for k, v in ev.stats.items()) + "\n")
    for note in ev.notes:
        w(f"  note: {note}\n")
    w(f"\nPer class (precision/recall at IoU 0.5, confidence >= {ev.conf_threshold}):\n")
    w(table(ev.per_class, ["name", "n_gt", "n_pred", "precision", "recall", "ap50", "ap",
                           "ap_small", "ap_medium", "ap_large"]) + "\n")
    w("\nConfusion (rows: labels, columns: predictions):\n" + ev.confusion.to_string() + "\n")
    return EXIT_OK


def _common(p) -> None:
    dataset_args(p)
    p.add_argument("--reference", default=None,
                   help="an annotator name or 'consensus' (default: the only annotator, else "
                        "the consensus)")
    p.add_argument("--model", default=None, help="which model's predictions (default: the only)")
    p.add_argument("--conf", type=float, default=0.5,
                   help="confidence from which a prediction counts (default 0.5)")


def register(sub) -> None:
    d = sub.add_parser("disagreement", help="where a model and the labels disagree: flags, "
                                            "ranked review queue, relabel exports")
    _common(d)
    d.add_argument("--iou", type=float, default=0.5, help="IoU threshold for a match")
    d.add_argument("--top", type=int, default=20, help="queue rows to print")
    d.add_argument("--objects", action="store_true",
                   help="embed the labelled boxes (once; then cached) and let their crops give "
                        "spurious-label flags a second opinion: a crop that looks like its "
                        "class is probably a model miss and ranks later")
    d.add_argument("--export", default=None, metavar="DIR",
                   help="write queue.csv, flagged_coco.json and Label Studio tasks to DIR")
    d.set_defaults(func=cmd_disagreement)
    e = sub.add_parser("evaluate", help="COCO detection metrics of the model vs the labels")
    _common(e)
    e.set_defaults(func=cmd_evaluate)
