"""`dataset-qa agreement`: inter-annotator agreement and scorecards."""

from __future__ import annotations

import sys

from qa.cli import EXIT_OK, dataset_args, load_dataset, print_json, table


def cmd_agreement(args) -> int:
    from qa.agreement import compute_agreement, kappa_band

    res = compute_agreement(load_dataset(args), iou_threshold=args.iou)
    if args.json:
        print_json(res.to_dict())
        return EXIT_OK
    w = sys.stdout.write
    w(f"Krippendorff's alpha {res.alpha:.3f} ({kappa_band(res.alpha)}), Fleiss' kappa "
      f"{res.fleiss:.3f}, mean pairwise Cohen's kappa {res.mean_pairwise_kappa:.3f}\n\n")
    w("Scorecard (each annotator against the consensus of the others):\n")
    w(table(res.scorecard, ["annotator", "n_images", "recall", "precision", "mean_iou",
                            "label_mismatch_rate", "agreement_with_others",
                            "top_confusions"]) + "\n\n")
    w("Pairs:\n" + table(res.pairwise, ["annotator_a", "annotator_b", "n_overlap_images",
                                        "f1", "mean_iou", "kappa"]) + "\n")
    return EXIT_OK


def register(sub) -> None:
    agr = sub.add_parser("agreement", help="inter-annotator agreement and scorecards")
    dataset_args(agr)
    agr.add_argument("--iou", type=float, default=0.5, help="IoU threshold for a match")
    agr.set_defaults(func=cmd_agreement)
