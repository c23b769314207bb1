"""`dataset-qa info`: summary and validation report of a dataset."""

from __future__ import annotations

import sys

from qa.cli import EXIT_INVALID, EXIT_OK, dataset_args, load_dataset, print_json


def cmd_info(args) -> int:
    import qa

    ds = load_dataset(args)
    report = qa.validate(ds)
    summary = ds.summary()
    if args.json:
        print_json({"summary": summary, "validation": report.to_dict()})
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


def register(sub) -> None:
    info = sub.add_parser("info", help="summary and validation report of a dataset")
    dataset_args(info)
    info.add_argument("--no-probe", action="store_true", help="do not read image files")
    info.add_argument("--max-issues", type=int, default=20, help="issues listed in text mode")
    info.add_argument("--fail-on-error", action="store_true",
                      help="exit 1 when validation finds errors (for CI gates)")
    info.set_defaults(func=cmd_info)
