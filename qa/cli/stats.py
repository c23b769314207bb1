"""`dataset-qa stats`: class balance and dataset statistics."""

from __future__ import annotations

import sys

from qa.cli import EXIT_INVALID, EXIT_OK, dataset_args, load_dataset, print_json, table


def cmd_stats(args) -> int:
    from qa.balance import compute_class_balance

    res = compute_class_balance(load_dataset(args), annotator=args.annotator,
                                min_box_side=args.min_box_side)
    if args.json:
        print_json(res.to_dict())
    else:
        w = sys.stdout.write
        w(table(res.per_class, ["name", "instances", "images", "share", "is_rare"]) + "\n\n")
        w(f"imbalance ratio {res.imbalance_ratio:.2f}, normalised entropy "
          f"{res.normalized_entropy:.3f}\n")
        for c in res.checks:
            mark = {True: "pass", False: "FAIL", None: "n/a "}[c.passed]
            w(f"  [{mark}] {c.name}: {c.message}\n")
        for note in res.notes:
            w(f"  note: {note}\n")
    failed = [c for c in res.checks if c.passed is False]
    return EXIT_INVALID if (args.fail_on_check and failed) else EXIT_OK


def register(sub) -> None:
    stats = sub.add_parser("stats", help="class balance and dataset statistics")
    dataset_args(stats)
    stats.add_argument("--annotator", default=None,
                       help="whose labels to count (default: the one with most annotations)")
    stats.add_argument("--min-box-side", type=int, default=8, help="tiny-box threshold in px")
    stats.add_argument("--fail-on-check", action="store_true",
                       help="exit 1 when a balance check fails (for CI gates)")
    stats.set_defaults(func=cmd_stats)
