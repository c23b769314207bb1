"""`dataset-qa review export|import`: move reviewers' decisions between machines.

The decisions database is ``$DATASET_QA_DB`` (a PostgreSQL URL for a team) or the workspace's
SQLite file; ``--db URL`` picks another one for one command.
"""

from __future__ import annotations

import sys

from qa.cli import EXIT_OK, EXIT_UNUSABLE, dataset_args, load_dataset, print_json


def _store(args):
    from qa.dataset import DatasetError
    from qa.review import ReviewDatabaseError, ReviewStore, default_review_store

    try:
        return ReviewStore(args.db) if args.db else default_review_store()
    except (ReviewDatabaseError, ValueError) as exc:
        raise DatasetError(str(exc)) from None  # main() turns it into exit status 2


def cmd_export(args) -> int:
    from qa.review.exchange import export_decisions, write_relabel_tasks

    ds = load_dataset(args)
    store = _store(args)
    try:
        n = export_decisions(args.out, None if args.all else ds, store=store)
    except ValueError as exc:
        sys.stderr.write(f"dataset-qa: error: {exc}\n")
        return EXIT_UNUSABLE
    out = {"decisions": n, "out": str(args.out), "database": repr(store)}
    if args.relabel:
        from qa.review import build_queue

        queue = build_queue(ds, store=store)
        out["relabel_tasks"] = write_relabel_tasks(args.relabel, ds, queue)
        out["relabel"] = str(args.relabel)
    if args.json:
        print_json(out)
    else:
        sys.stdout.write(f"{n} decisions written to {args.out} (from {out['database']})\n")
        if args.relabel:
            sys.stdout.write(f"{out['relabel_tasks']} Label Studio relabel tasks written to "
                             f"{args.relabel}\n")
    return EXIT_OK


def cmd_import(args) -> int:
    from qa.review.exchange import import_decisions, read_decisions
    from qa.review.keys import image_hashes

    ds = load_dataset(args)
    store = _store(args)
    decisions = read_decisions(args.file)
    added, known = import_decisions(args.file, store=store)
    shas = set(image_hashes(ds).values())
    about = int(decisions["image_sha"].isin(shas).sum() +
                ((decisions["image_sha"].isna()) & (decisions["dataset"] == ds.name)).sum())
    out = {"added": added, "already_there": known, "about_this_dataset": about,
           "database": repr(store)}
    if args.json:
        print_json(out)
    else:
        sys.stdout.write(f"{added} decisions added, {known} already there ({about} of "
                         f"{len(decisions)} are about {ds.name}); database {out['database']}\n")
    return EXIT_OK


def register(sub) -> None:
    review = sub.add_parser("review", help="export or import reviewers' decisions")
    rsub = review.add_subparsers(dest="review_command", required=True)
    exp = rsub.add_parser("export", help="write the dataset's decisions (full history) to a "
                                         "CSV or JSON file")
    dataset_args(exp)
    exp.add_argument("--out", required=True, help="decisions file (.csv or .json)")
    exp.add_argument("--all", action="store_true",
                     help="every decision in the database, not only this dataset's")
    exp.add_argument("--relabel", default=None,
                     help="also write a Label Studio task file for the confirmed label errors")
    exp.add_argument("--db", default=None, help="decisions database URL (default: "
                                                "$DATASET_QA_DB or the workspace's SQLite)")
    exp.set_defaults(func=cmd_export)
    imp = rsub.add_parser("import", help="add the decisions of an exported file")
    dataset_args(imp)
    imp.add_argument("file", help="a file written by `dataset-qa review export`")
    imp.add_argument("--db", default=None, help="decisions database URL (default: "
                                                "$DATASET_QA_DB or the workspace's SQLite)")
    imp.set_defaults(func=cmd_import)
