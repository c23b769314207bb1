"""`dataset-qa report`: the health report (HTML, PDF, JSON) and a CI release gate."""

from __future__ import annotations

import sys
from pathlib import Path

from qa.cli import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNUSABLE,
    dataset_args,
    fraction_bar,
    load_dataset,
    print_json,
    ray_args,
)

_MARK = {"pass": "pass", "warn": "WARN", "fail": "FAIL", "skipped": "skip"}


def _fail(msg: str) -> int:
    sys.stderr.write(f"dataset-qa: error: {msg}\n")
    return EXIT_UNUSABLE


def cmd_report(args) -> int:
    from qa.report import build_report, load_config
    from qa.report.compare import compare
    from qa.report.export import refuse_inside_dataset, write_report
    from qa.report.history import load_history, save_report

    try:
        config = load_config(args.config)
    except (OSError, ValueError) as e:
        return _fail(str(e))
    path = Path(args.path)
    try:  # refuse before any work: the dataset is never written to
        if path.is_dir():
            refuse_inside_dataset(args.out, path)
    except ValueError as e:
        return _fail(str(e))
    ds = load_dataset(args)
    try:
        out = refuse_inside_dataset(args.out, ds.root)
    except ValueError as e:
        return _fail(str(e))
    options = {"drift": {"reference": args.reference}} if args.reference else None
    source = ds
    if args.ray:  # the analyses' per-image work on the cluster, then the report as usual
        from qa.analyses import run_analyses

        source = run_analyses(ds, embeddings=args.embeddings, objects=args.objects,
                              options=options, progress=fraction_bar("report", args.json),
                              ray=args.ray, layout=args.layout)
    report = build_report(source, config, embeddings=args.embeddings, objects=args.objects,
                          options=options, progress=fraction_bar("report", args.json))
    comparison = None
    if args.compare:
        try:
            old = args.compare
            if Path(old).is_dir():  # an earlier version of the dataset itself
                import qa

                old = qa.load(old, format=args.format, image_root=args.image_root)
            comparison = compare(old, report, config=config, embeddings=args.embeddings)
        except (OSError, ValueError, TypeError) as e:
            return _fail(f"--compare: {e}")
    history = None
    if not args.no_history:
        save_report(report)
        history = load_history(report.dataset["key"])
    written = write_report(report, out, formats=tuple(args.formats.split(",")),
                           history=history, comparison=comparison, dataset_root=ds.root)
    gate = report.gate(args.fail_on) if args.fail_on else []
    if args.json:
        print_json({"report": report.to_dict(),
                    "comparison": comparison.to_dict() if comparison else None,
                    "files": {k: str(v) for k, v in written.items()},
                    "gate": {"level": args.fail_on, "closed": bool(gate),
                             "checks": [c.id for c in gate]}})
    else:
        w = sys.stdout.write
        score = "—" if report.score is None else f"{report.score:.0f}"
        w(f"{report.dataset.get('name')}: health score {score} / 100\n")
        for area, v in report.area_scores.items():
            w(f"  {area:<24} {'not measured' if v is None else f'{v:5.0f}'}\n")
        w("\n")
        for c in report.checks:
            val = "" if c.value is None else f"{c.value:.3g}"
            tail = c.reason if c.status == "skipped" else f"{val:>8}  ({c.threshold})"
            w(f"  [{_MARK[c.status]}] {c.title}: {tail}\n")
        if comparison is not None:
            w(f"\ncompared with {args.compare}: {comparison.summary()}\n")
        w("\n" + "".join(f"  wrote {p}\n" for p in written.values()))
        if gate:
            w(f"\ngate --fail-on {args.fail_on}: closed by "
              + ", ".join(c.id for c in gate) + "\n")
    return EXIT_INVALID if gate else EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("report", help="dataset health report (HTML, PDF, JSON) and CI gate")
    dataset_args(p)
    p.add_argument("--out", required=True,
                   help="folder for report.html / report.pdf / report.json (never inside "
                        "the dataset)")
    p.add_argument("--config", default=None,
                   help="TOML or YAML file overriding the default checks and thresholds")
    p.add_argument("--embeddings", choices=("auto", "cached", "skip"), default="auto",
                   help="compute missing embeddings, use only cached ones, or skip the "
                        "analyses that need them (default: auto)")
    p.add_argument("--objects", action="store_true",
                   help="also embed the labelled boxes (once, then cached): per-class outliers "
                        "and the crops' second opinion on spurious labels (default: used when "
                        "already cached for every box)")
    p.add_argument("--fail-on", choices=("warn", "fail"), default=None,
                   help="exit 1 when a check reaches this level (a CI release gate)")
    p.add_argument("--compare", default=None, metavar="OLD.json",
                   help="an earlier report.json (or an earlier version's dataset folder) "
                        "to compare with")
    p.add_argument("--reference", default=None, metavar="PATH",
                   help="a reference dataset (what the model was trained on): adds the drift "
                        "area, this dataset compared with it (default: $DATASET_QA_REFERENCE)")
    p.add_argument("--formats", default="json,html,pdf",
                   help="comma-separated subset of json,html,pdf (default: all)")
    p.add_argument("--no-history", action="store_true",
                   help="do not add this report to the dataset's history in the workspace")
    ray_args(p)
    p.set_defaults(func=cmd_report)
