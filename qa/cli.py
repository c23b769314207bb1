"""The `dataset-qa` command (headless). `dataset-qa info PATH [--json]`."""

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

    ds = qa.load(args.path, format=args.format, predictions=args.predictions or None,
                 image_root=args.image_root, probe=not args.no_probe,
                 progress=None if args.json else _progress_bar("reading image headers"))
    report = qa.validate(ds)
    summary = ds.summary()
    if args.json:
        out = {"summary": summary, "validation": report.to_dict()}
        json.dump(out, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dataset-qa", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="summary and validation report of a dataset")
    info.add_argument("path", help="dataset folder or labels file")
    info.add_argument("--format", default="auto", help="format (default: sniffed)")
    info.add_argument("--predictions", action="append", help="model predictions file (repeatable)")
    info.add_argument("--image-root", default=None, help="where the image files are")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--no-probe", action="store_true", help="do not read image files")
    info.add_argument("--max-issues", type=int, default=20, help="issues listed in text mode")
    info.add_argument("--fail-on-error", action="store_true",
                      help="exit 1 when validation finds errors (for CI gates)")
    info.set_defaults(func=cmd_info)
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
