"""The `dataset-qa` command (headless): `info`, `stats` and `agreement` of a dataset.

Exit status: 0 fine, 1 a gate failed (--fail-on-error / --fail-on-check), 2 unusable input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from qa.dataset import DatasetError

log = logging.getLogger("qa")

EXIT_OK, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


def _progress_bar(desc: str):
    """A tqdm-backed progress(done, total) callback for slow steps."""
    from tqdm import tqdm

    bar = {"t": None}

    def cb(done: int, total: int) -> None:
        if bar["t"] is None:
            bar["t"] = tqdm(total=total, desc=desc, unit="img", leave=False, file=sys.stderr)
        bar["t"].n = done
        bar["t"].refresh()
        if done >= total:
            bar["t"].close()

    return cb


def cmd_info(args) -> int:
    import qa

    ds = _load(args)
    report = qa.validate(ds)
    summary = ds.summary()
    if args.json:
        _print_json({"summary": summary, "validation": report.to_dict()})
    else:
        w = sys.stdout.write
        w(f"{summary['name']}  (format: {summary['format']}, root: {summary['root']})\n")
        w(f"  images       {summary['images']:>10,}\n")
        w(f"  annotations  {summary['annotations']:>10,}  ({summary['boxes']:,} boxes, "
          f"{summary['image_labels']:,} image labels)\n")
        w(f"  annotators   {len(summary['annotators']):>10}  {', '.join(summary['annotators'])}\n")
        w(f"  classes      {summary['classes']:>10}\n")
        w("  splits       " + ", ".join(f"{k}: {v:,}" for k, v in summary["splits"].items()) + "\n")
        w(f"  predictions  {summary['predictions']:>10,}  {', '.join(summary['models'])}\n")
        w(f"\nValidation: {report.n_errors} errors, {report.n_warnings} warnings\n")
        for r in report.counts().itertuples(index=False):
            w(f"  {r.severity:<8} {r.check:<22} {r.count:>8,}\n")
        shown = report.issues.head(args.max_issues)
        for r in shown.itertuples(index=False):
            w(f"  [{r.severity}] {r.message}\n")
        if len(report.issues) > len(shown):
            w(f"  ... {len(report.issues) - len(shown)} more (use --json for all)\n")
    return EXIT_INVALID if (args.fail_on_error and report.n_errors) else EXIT_OK


def _load(args):
    import qa

    return qa.load(args.path, format=args.format, predictions=args.predictions or None,
                   image_root=args.image_root, probe=not getattr(args, "no_probe", False),
                   progress=None if args.json else _progress_bar("reading image headers"))


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _table(df, cols) -> str:
    return df[[c for c in cols if c in df.columns]].to_string(index=False, float_format="%.3f")


def cmd_stats(args) -> int:
    from qa.balance import compute_class_balance

    res = compute_class_balance(_load(args), annotator=args.annotator,
                                min_box_side=args.min_box_side)
    if args.json:
        _print_json(res.to_dict())
    else:
        w = sys.stdout.write
        w(_table(res.per_class, ["name", "instances", "images", "share", "is_rare"]) + "\n\n")
        w(f"imbalance ratio {res.imbalance_ratio:.2f}, normalised entropy "
          f"{res.normalized_entropy:.3f}\n")
        for c in res.checks:
            mark = {True: "pass", False: "FAIL", None: "n/a "}[c.passed]
            w(f"  [{mark}] {c.name}: {c.message}\n")
        for note in res.notes:
            w(f"  note: {note}\n")
    failed = [c for c in res.checks if c.passed is False]
    return EXIT_INVALID if (args.fail_on_check and failed) else EXIT_OK


def cmd_agreement(args) -> int:
    from qa.agreement import compute_agreement, kappa_band

    res = compute_agreement(_load(args), iou_threshold=args.iou)
    if args.json:
        _print_json(res.to_dict())
        return EXIT_OK
    w = sys.stdout.write
    w(f"Krippendorff's alpha {res.alpha:.3f} ({kappa_band(res.alpha)}), Fleiss' kappa "
      f"{res.fleiss:.3f}, mean pairwise Cohen's kappa {res.mean_pairwise_kappa:.3f}\n\n")
    w("Scorecard (each annotator against the consensus of the others):\n")
    w(_table(res.scorecard, ["annotator", "n_images", "recall", "precision", "mean_iou",
                             "label_mismatch_rate", "agreement_with_others",
                             "top_confusions"]) + "\n\n")
    w("Pairs:\n" + _table(res.pairwise, ["annotator_a", "annotator_b", "n_overlap_images",
                                         "f1", "mean_iou", "kappa"]) + "\n")
    return EXIT_OK


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset folder or labels file")
    p.add_argument("--format", default="auto", help="format (default: sniffed)")
    p.add_argument("--predictions", action="append", help="model predictions file (repeatable)")
    p.add_argument("--image-root", default=None, help="where the image files are")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dataset-qa", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="summary and validation report of a dataset")
    _dataset_args(info)
    info.add_argument("--no-probe", action="store_true", help="do not read image files")
    info.add_argument("--max-issues", type=int, default=20, help="issues listed in text mode")
    info.add_argument("--fail-on-error", action="store_true",
                      help="exit 1 when validation finds errors (for CI gates)")
    info.set_defaults(func=cmd_info)
    stats = sub.add_parser("stats", help="class balance and dataset statistics")
    _dataset_args(stats)
    stats.add_argument("--annotator", default=None,
                       help="whose labels to count (default: the one with most annotations)")
    stats.add_argument("--min-box-side", type=int, default=8, help="tiny-box threshold in px")
    stats.add_argument("--fail-on-check", action="store_true",
                       help="exit 1 when a balance check fails (for CI gates)")
    stats.set_defaults(func=cmd_stats)
    agr = sub.add_parser("agreement", help="inter-annotator agreement and scorecards")
    _dataset_args(agr)
    agr.add_argument("--iou", type=float, default=0.5, help="IoU threshold for a match")
    agr.set_defaults(func=cmd_agreement)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except DatasetError as exc:
        sys.stderr.write(f"dataset-qa: error: {exc}\n")
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
