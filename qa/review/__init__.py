"""The review workflow: one queue over every analysis' findings, reviewers' decisions kept in
a real database (SQLite by default, PostgreSQL via ``$DATASET_QA_DB``), with their history.

* :func:`build_queue` / :func:`mark_findings`: findings with a stable ``item_key`` and the
  current ``status`` ("open" | "confirmed" | "not_an_issue" | "fixed") and ``decided_by``.
* :class:`ReviewStore`: the decisions (append-only; current status = latest decision).
* :mod:`qa.review.exchange`: CSV/JSON export and import, Label Studio relabel tasks.
"""

from qa.review.keys import image_hashes, item_keys
from qa.review.queue import (
    DECISION_BUTTONS,
    QUEUE_TABLE,
    build_queue,
    collect_findings,
    evidence_link,
    filter_queue,
    one_per_item,
    has_decisions,
    history_table,
    mark_findings,
    queue_progress,
    record_decision,
    review_summary,
    reviewer_counts,
    without_dismissed,
)
from qa.review.store import (
    DECISIONS,
    STATUSES,
    ReviewDatabaseError,
    ReviewStore,
    default_review_store,
    default_url,
)

__all__ = [
    "DECISIONS", "DECISION_BUTTONS", "QUEUE_TABLE", "STATUSES", "ReviewDatabaseError",
    "ReviewStore", "build_queue", "collect_findings", "default_review_store", "default_url",
    "evidence_link", "filter_queue", "has_decisions", "history_table", "image_hashes", "item_keys",
    "mark_findings", "one_per_item", "queue_progress", "record_decision", "review_summary",
    "reviewer_counts", "without_dismissed"
]
