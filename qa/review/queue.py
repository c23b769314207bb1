"""One review queue over every analysis' findings, marked with reviewers' decisions."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from qa.dataset import FILE_NAME, IMAGE_ID, SPLIT, Dataset
from qa.results import SEVERITIES
from qa.review.keys import image_hashes, item_keys
from qa.review.store import STATUSES, ReviewStore, default_review_store

log = logging.getLogger(__name__)

#: Columns :func:`mark_findings` adds to a findings table.
MARK_COLUMNS = ("item_key", "status", "decided_by", "decided_at", "note", "reopened",
                "fingerprint", "image_sha")
#: Columns :func:`build_queue` adds on top (for the page's filters and captions).
QUEUE_COLUMNS = ("split", "file_name", "class_name")
#: The queue's columns a person reads in a table.
QUEUE_TABLE = ("status", "kind", "severity", "score", "image_id", "file_name", "split",
               "class_name", "annotator", "decided_by", "note", "message")
#: The page's decision buttons: (status recorded, label, keyboard shortcut). Streamlit
#: reserves "c" and "r", so digits.
DECISION_BUTTONS = (("confirmed", "Confirm", "1"), ("not_an_issue", "Not an issue", "2"),
                    ("fixed", "Fixed", "3"), ("open", "Re-open", "0"))


def mark_findings(dataset: Dataset, findings: pd.DataFrame, *,
                  store: ReviewStore | None = None) -> pd.DataFrame:
    """``findings`` (FINDINGS_SCHEMA, any analyses) with :data:`MARK_COLUMNS` added:

    * ``item_key``: the stable key (:mod:`qa.review.keys`);
    * ``status``: "open" | "confirmed" | "not_an_issue" | "fixed", the latest decision, or
      "open" when there is none or its evidence has changed since (``reopened`` True then);
    * ``decided_by``, ``decided_at`` (UTC Timestamp), ``note``: of that decision (None/NaT
      when open without a decision).

    The index and rows of ``findings`` are kept. ``store`` defaults to
    :func:`qa.review.store.default_review_store` ($DATASET_QA_DB or the workspace's SQLite).
    """
    if not isinstance(findings, pd.DataFrame):
        raise TypeError(f"findings must be a DataFrame (run_analyses(ds).findings()), got "
                        f"{type(findings).__name__}")
    keys = item_keys(dataset, findings)
    st = store or default_review_store()
    return _compute_marks(findings, keys, st.current(keys["item_key"].tolist()))


def has_decisions(store: ReviewStore | None = None) -> bool:
    """Whether the decisions database holds any decision (one COUNT): a report over data
    nobody has reviewed yet need not key its findings (keying 1M boxes at 50k images x 3
    annotators was 10-30 s of the health report's first visit)."""
    return (store or default_review_store()).count() > 0


def _compute_marks(findings: pd.DataFrame, keys: pd.DataFrame, current: pd.DataFrame
                   ) -> pd.DataFrame:
    out = findings.copy()
    for col in ("item_key", "fingerprint", "image_sha"):
        out[col] = pd.Series(keys[col].to_numpy(), index=out.index, dtype=object)
    d = pd.DataFrame({"item_key": out["item_key"].to_numpy(),
                      "fp": out["fingerprint"].to_numpy()}).merge(
        current.drop_duplicates("item_key"), on="item_key", how="left")
    has = d["status"].notna().to_numpy()
    changed = has & d["fingerprint"].notna().to_numpy() & \
        (d["fingerprint"].to_numpy() != d["fp"].to_numpy())
    decided = has & ~changed
    status = np.where(decided, d["status"].to_numpy(dtype=object), "open").astype(object)
    by = np.where(decided, d["reviewer"].to_numpy(dtype=object), None)
    at = np.where(decided, d["decided_at"].to_numpy(dtype=float), np.nan).astype(float)
    note = np.where(decided, d["note"].to_numpy(dtype=object), None)
    reopened = changed & (d["status"].to_numpy(dtype=object) != "open")
    by = np.array([v if isinstance(v, str) else None for v in by], dtype=object)
    note = np.array([v if isinstance(v, str) else None for v in note], dtype=object)
    # object dtype: pandas would infer its string dtype and turn None into NaN
    out["status"] = pd.Series(status, index=out.index, dtype=object)
    out["decided_by"] = pd.Series(by, index=out.index, dtype=object)
    out["decided_at"] = pd.to_datetime(at, unit="s", utc=True)
    out["note"] = pd.Series(note, index=out.index, dtype=object)
    out["reopened"] = reopened
    return out


def collect_findings(dataset: Dataset, *, embeddings: str = "cached",
                     progress=None) -> pd.DataFrame:
    """Every analysis' findings (:func:`qa.analyses.run_analyses`); embeddings default to
    "cached" so opening the queue never starts a long embedding run."""
    from qa.analyses import run_analyses

    run = run_analyses(dataset, embeddings=embeddings, progress=progress)
    for name, reason in {**run.skipped, **run.errors}.items():
        log.info("review queue: %s not included (%s)", name, reason)
    return run.findings()


def build_queue(dataset: Dataset, findings: pd.DataFrame | None = None, *,
                store: ReviewStore | None = None, keys: pd.DataFrame | None = None,
                open_first: bool = True) -> pd.DataFrame:
    """The review queue: every finding (of ``findings``, default: all analyses via
    :func:`collect_findings`) marked by :func:`mark_findings`, with the image's ``split``,
    ``file_name`` and the ``class_name``; open items first (unless ``open_first=False``: an
    order that does not move as items are decided), then by severity and score (worst
    first). Index 0..n-1. ``keys``: :func:`qa.review.item_keys` of ``findings``, when the
    caller already has them (the page caches them; only the decisions are read again)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"build_queue() needs a qa.Dataset, got {type(dataset).__name__}")
    if findings is None:
        findings = collect_findings(dataset)
    if keys is None:
        marked = mark_findings(dataset, findings, store=store)
    else:
        if len(keys) != len(findings) or not keys.index.equals(findings.index):
            raise ValueError(f"keys ({len(keys)} rows) do not belong to findings "
                             f"({len(findings)} rows): pass item_keys(dataset, findings)")
        st = store or default_review_store()
        marked = _compute_marks(findings, keys, st.current(keys["item_key"].tolist()))
    return _compute_queue(dataset, marked, open_first=open_first)


def _compute_queue(ds: Dataset, marked: pd.DataFrame, *, open_first: bool) -> pd.DataFrame:
    img = ds.images.set_index(IMAGE_ID)
    ids = marked["image_id"]
    known = ids.notna() & ids.isin(img.index)
    split = pd.Series([None] * len(marked), index=marked.index, dtype=object)
    fname = split.copy()
    if known.any():
        sel = ids[known].astype("int64")
        split[known] = img.loc[sel, SPLIT].astype(object).where(
            img.loc[sel, SPLIT].notna(), None).to_numpy()
        fname[known] = img.loc[sel, FILE_NAME].astype(str).to_numpy()
    names = ds.category_names
    q = marked.assign(
        split=split, file_name=fname,
        class_name=pd.Series([None if pd.isna(c) else names.get(int(c), str(c))
                              for c in marked["category_id"]], index=marked.index, dtype=object))
    sev = {s: i for i, s in enumerate(SEVERITIES)}
    order = pd.DataFrame({
        "open": (q["status"] != "open").astype(int).to_numpy() if open_first else 0,
        "sev": q["severity"].map(sev).fillna(len(SEVERITIES)).to_numpy(),
        "score": -q["score"].fillna(-1.0).to_numpy(),
    })
    idx = order.sort_values(["open", "sev", "score"], kind="stable").index
    return q.iloc[idx].reset_index(drop=True)


class ReviewQueue:
    """The review queue of one dataset, built once per dataset and analysis results, with
    reviewers' decisions applied to it as they are made (the dashboard's Review page).

    :func:`build_queue` recomputes everything (item keys, every item's decision, the order):
    right for a script, a minute per click for a page with 200k findings. This object does
    that work once; :meth:`record` writes one decision and updates that item's rows in place;
    :meth:`refresh` reloads the decisions only when the database changed behind its back
    (another process, an import), which costs one ``COUNT(*)`` to find out. The order is
    fixed (severity, then score: ``build_queue(open_first=False)``), so an item does not move
    while it is decided. Thread-safe: sessions of one server share it.

    ``version`` increases with every change of a decision, so a caller can cache what it
    derives (a figure, a table) per version.
    """

    #: Columns that :meth:`record` and :meth:`refresh` change.
    MARKS = ("status", "decided_by", "decided_at", "note", "reopened")

    def __init__(self, dataset: Dataset, findings: pd.DataFrame, *,
                 store: ReviewStore | None = None, keys: pd.DataFrame | None = None) -> None:
        import threading

        if not isinstance(dataset, Dataset):
            raise TypeError(f"ReviewQueue() needs a qa.Dataset, got {type(dataset).__name__}")
        self.store = store or default_review_store()
        self.dataset_name = dataset.name
        self._lock = threading.Lock()
        self._n_decisions = self.store.count()
        table = build_queue(dataset, findings, store=self.store, keys=keys, open_first=False)
        self._columns = list(table.columns)
        self._at_dtype = "datetime64[ns, UTC]"
        self._static = table.drop(columns=list(self.MARKS))
        self._marks = {c: table[c].to_numpy(dtype=object, copy=True)
                       for c in ("status", "decided_by", "note")}
        self._marks["reopened"] = table["reopened"].to_numpy(dtype=bool, copy=True)
        epoch = pd.Timestamp(0, tz="UTC")  # decided_at as float seconds, NaN when open
        self._marks["decided_at"] = (table["decided_at"] - epoch).dt.total_seconds() \
            .to_numpy(dtype=float, copy=True)
        keys_col = table["item_key"].to_numpy(dtype=object)
        self._code, uniq = pd.factorize(keys_col)
        self._keys = np.asarray(uniq, dtype=object)
        self._first = np.unique(self._code, return_index=True)[1]  # first row of each item
        order = np.argsort(self._code, kind="stable")
        bounds = np.searchsorted(self._code[order], np.arange(len(self._keys) + 1))
        self._rows_of = {k: order[bounds[i]:bounds[i + 1]] for i, k in enumerate(self._keys)}
        self.options = {c: sorted(self._static[c].dropna().astype(str).unique())
                        for c in ("kind", "class_name", "split", "annotator")}
        self.version = 0

    def __len__(self) -> int:
        return len(self._static)

    @property
    def n_items(self) -> int:
        return len(self._keys)

    # ------------------------------------------------------------------ reading
    def table(self) -> pd.DataFrame:
        """Every finding with its current decision: what :func:`build_queue` returns."""
        with self._lock:
            marks = {c: v.copy() for c, v in self._marks.items()}
        return self._with_marks(self._static, marks)

    def _with_marks(self, frame: pd.DataFrame, marks: dict) -> pd.DataFrame:
        idx = frame.index
        out = frame.assign(
            status=pd.Series(marks["status"], index=idx, dtype=object),
            decided_by=pd.Series(marks["decided_by"], index=idx, dtype=object),
            decided_at=pd.Series(pd.to_datetime(marks["decided_at"], unit="s", utc=True),
                                 index=idx).astype(self._at_dtype),
            note=pd.Series(marks["note"], index=idx, dtype=object),
            reopened=pd.Series(marks["reopened"].astype(bool), index=idx))
        return out[self._columns]

    def items(self, *, kinds=None, classes=None, splits=None, annotators=None, statuses=None,
              image_ids=None) -> pd.DataFrame:
        """One row per item (its first finding in queue order) among the findings that match
        every given filter (None or empty = no filter; see :func:`filter_queue`), with the
        current decision; index 0..n-1. :meth:`copies_of` names an item's identical copies."""
        st = self._static
        m = np.ones(len(st), dtype=bool)
        for col, values in (("kind", kinds), ("class_name", classes), ("split", splits),
                            ("annotator", annotators), ("image_id", image_ids)):
            if values:
                m &= st[col].isin(list(values)).to_numpy()
        with self._lock:
            if statuses:
                m &= np.isin(self._marks["status"], list(statuses))
            rows = np.flatnonzero(m)
            first = np.unique(self._code[rows], return_index=True)[1]
            rows = rows[np.sort(first)]
            marks = {c: v[rows] for c, v in self._marks.items()}
        frame = st.iloc[rows].reset_index(drop=True)
        return self._with_marks(frame, marks)

    def copies_of(self, item: pd.Series | dict) -> list[int]:
        """The other image ids whose finding has the same item key as ``item`` (identical
        copies of the image, settled by the same decision)."""
        rows = self._rows_of.get(item.get("item_key"), ())
        ids = self._static["image_id"].to_numpy()[rows] if len(rows) else []
        own = item.get("image_id")
        return [int(j) for j in ids if not pd.isna(j)
                and (own is None or pd.isna(own) or int(j) != int(own))]

    def progress(self) -> dict:
        """:func:`queue_progress` of the whole queue (an item counts once)."""
        with self._lock:
            status = self._marks["status"][self._first]
        counts = pd.Series(status).value_counts()
        by_status = {s: int(counts.get(s, 0)) for s in STATUSES}
        return {"total": len(status), "reviewed": int(len(status) - by_status["open"]),
                "open": by_status["open"], "by_status": by_status}

    def first_rows(self, columns=None) -> pd.DataFrame:
        """One row per item (its first finding), with its current decision: what the
        progress figure and the reviewer table count. ``columns``: only these (a narrow
        frame is cheap to build at 600k items)."""
        with self._lock:
            marks = {c: v[self._first] for c, v in self._marks.items()}
        if columns is not None:
            out = {}
            for c in columns:
                if c in marks:
                    out[c] = pd.Series(marks[c], dtype=bool if c == "reopened" else object)
                else:
                    out[c] = self._static[c].iloc[self._first].reset_index(drop=True)
            return pd.DataFrame(out)
        frame = self._static.iloc[self._first].reset_index(drop=True)
        return self._with_marks(frame, marks)

    # ------------------------------------------------------------------ decisions
    def record(self, item: pd.Series | dict, status: str, *, reviewer: str,
               note: str | None = None, dataset_name: str | None = None) -> str:
        """Write a decision about ``item`` (a row of :meth:`items`) to the store and apply it
        to the queue: no rebuild. Returns the decision's uid."""
        uid = record_decision(item, status, reviewer=reviewer, note=note,
                              dataset_name=dataset_name or self.dataset_name, store=self.store)
        key = item.get("item_key")
        current = self.store.current([key])
        with self._lock:
            self._n_decisions += 1
            self._apply(current)
        return uid

    def refresh(self) -> bool:
        """Reload the decisions if the database holds decisions this queue has not seen (made
        by another process, or imported); True when it did. Costs one COUNT query otherwise."""
        n = self.store.count()
        if n == self._n_decisions:
            return False
        current = self.store.current(self._keys.tolist())
        with self._lock:
            self._n_decisions = n
            self._apply(current)
        return True

    def _apply(self, current: pd.DataFrame) -> None:
        """Set the marks of the rows of the items in ``current`` (store.current() rows); the
        caller holds the lock."""
        if not len(current):
            return
        fp = self._static["fingerprint"].to_numpy(dtype=object)
        for r in current.drop_duplicates("item_key").itertuples(index=False):
            rows = self._rows_of.get(r.item_key)
            if rows is None or not len(rows):
                continue
            changed = isinstance(r.fingerprint, str) and r.fingerprint != fp[rows[0]]
            decided = not changed
            m = self._marks
            m["status"][rows] = r.status if decided else "open"
            m["decided_by"][rows] = r.reviewer if decided and isinstance(r.reviewer, str) \
                else None
            m["decided_at"][rows] = float(r.decided_at) if decided else np.nan
            m["note"][rows] = r.note if decided and isinstance(r.note, str) else None
            m["reopened"][rows] = changed and r.status != "open"
        self.version += 1


def filter_queue(queue: pd.DataFrame, *, kinds=None, classes=None, splits=None,
                 annotators=None, statuses=None, image_ids=None) -> pd.DataFrame:
    """The rows of ``queue`` matching every given filter (None or empty = no filter). A
    finding with no annotator/class/split passes a filter on that column only when it is
    empty."""
    m = pd.Series(True, index=queue.index)
    for col, values in (("kind", kinds), ("class_name", classes), ("split", splits),
                        ("annotator", annotators), ("status", statuses),
                        ("image_id", image_ids)):
        if values:
            m &= queue[col].isin(list(values))
    return queue[m]


def one_per_item(queue: pd.DataFrame) -> pd.DataFrame:
    """``queue`` with one row per ``item_key`` (the first, in queue order) and a ``same_as``
    column: the other image ids whose finding has the same key. Byte-identical copies of an
    image with the same boxes and the same finding share a key, so one decision settles all
    of them; a reviewer is shown the item once, with its copies named, and the count of items
    agrees with :func:`queue_progress`."""
    if not len(queue):
        return queue.assign(same_as=pd.Series(dtype=object))
    code = pd.factorize(queue["item_key"])[0]
    first = np.unique(code, return_index=True)[1]
    out = queue.iloc[np.sort(first)].reset_index(drop=True)
    same = [[] for _ in range(len(out))]
    shared = np.flatnonzero(np.bincount(code)[code] > 1)  # rows of keys held by 2+ rows
    if len(shared):
        slot = np.empty(code.max() + 1, dtype=np.int64)
        slot[code[np.sort(first)]] = np.arange(len(out))
        ids = queue["image_id"].to_numpy()
        first_id = out["image_id"].to_numpy()
        for r in shared.tolist():  # only copies: a few rows
            k = slot[code[r]]
            j, i = ids[r], first_id[k]
            if not pd.isna(j) and (pd.isna(i) or int(j) != int(i)):
                same[k].append(int(j))
    return out.assign(same_as=same)


def queue_progress(queue: pd.DataFrame) -> dict:
    """``{"total", "reviewed", "open", "by_status": {status: n}}`` over the queue's items
    (an item_key counts once)."""
    items = queue.drop_duplicates("item_key")
    counts = items["status"].value_counts()
    by_status = {s: int(counts.get(s, 0)) for s in STATUSES}
    return {"total": len(items), "reviewed": int(len(items) - by_status["open"]),
            "open": by_status["open"], "by_status": by_status}


def reviewer_counts(queue: pd.DataFrame) -> pd.DataFrame:
    """Decisions in force per reviewer: reviewer, confirmed, not_an_issue, fixed, total
    (sorted by total, most first)."""
    items = queue.drop_duplicates("item_key")
    items = items[items["status"] != "open"]
    cols = [s for s in STATUSES if s != "open"]
    if not len(items):
        return pd.DataFrame(columns=["reviewer", *cols, "total"])
    t = pd.crosstab(items["decided_by"], items["status"]).reindex(columns=cols, fill_value=0)
    t["total"] = t.sum(axis=1)
    t = t.sort_values("total", ascending=False, kind="stable").reset_index()
    return t.rename(columns={"decided_by": "reviewer"}).rename_axis(None, axis=1)


def record_decision(item: pd.Series | dict, status: str, *, reviewer: str,
                    note: str | None = None, dataset_name: str | None = None,
                    store: ReviewStore | None = None) -> str:
    """Record ``status`` for one queue row (``item``: a row of :func:`build_queue`), with the
    evidence fingerprint it was made on; returns the decision's uid."""
    st = store or default_review_store()
    get = item.get
    ctx = {"analysis": get("analysis"), "kind": get("kind"), "image_sha": get("image_sha"),
           "message": get("message"), "dataset": dataset_name}
    return st.decide(get("item_key"), status, reviewer=reviewer, note=note,
                     fingerprint=get("fingerprint"), context=ctx)


def review_summary(marked: pd.DataFrame) -> dict:
    """What reviewers decided about a :func:`mark_findings` table, for the health report:
    ``{"items", "open", "confirmed", "not_an_issue", "fixed", "reopened",
    "dismissed_by": {reviewer: n}}`` (items counted once per item_key). The report drops the
    ``not_an_issue`` rows (:func:`without_dismissed`) from its counts and fail status and
    shows ``dismissed_by``."""
    missing = {"item_key", "status", "decided_by", "reopened"} - set(marked.columns)
    if missing:
        raise ValueError(f"review_summary() needs mark_findings()'s columns; {sorted(missing)} "
                         "are missing")
    items = marked.drop_duplicates("item_key")
    counts = items["status"].value_counts()
    out = {"items": len(items), **{s: int(counts.get(s, 0)) for s in STATUSES},
           "reopened": int(items["reopened"].sum())}
    dismissed = items[items["status"] == "not_an_issue"]
    out["dismissed_by"] = {str(k): int(v) for k, v in
                           dismissed["decided_by"].value_counts().sort_index().items()}
    return out


def without_dismissed(marked: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`mark_findings` table that reviewers have not dismissed as "not an
    issue" (what later counts and the report's fail status use)."""
    return marked[marked["status"] != "not_an_issue"]


def evidence_link(item: pd.Series | dict) -> str:
    """The app path of the page that shows a queue row's evidence, filtered to its images
    (:func:`qa.results.page_link`); "" when the row names no known page."""
    from qa.results import PAGES, page_link

    page = item.get("page")
    if page not in PAGES:
        return ""
    iid = item.get("image_id")
    ids = ([] if iid is None or pd.isna(iid) else [int(iid)]) + \
        [int(j) for j in (item.get("related_image_ids") or ())]
    return page_link(page, ids, kind=item.get("kind"))


def history_table(store: ReviewStore, item_key: str) -> pd.DataFrame:
    """One item's decisions for a person, newest first: decided_at (UTC), reviewer, status,
    note."""
    h = store.history(item_key)
    out = pd.DataFrame({"decided_at": pd.to_datetime(h["decided_at"], unit="s", utc=True),
                        "reviewer": h["reviewer"], "status": h["status"], "note": h["note"]})
    return out.iloc[::-1].reset_index(drop=True)


__all__ = [
    "DECISION_BUTTONS",
    "ReviewQueue",
    "QUEUE_TABLE",
    "build_queue",
    "collect_findings",
    "evidence_link",
    "filter_queue",
    "history_table",
    "image_hashes",
    "mark_findings",
    "queue_progress",
    "record_decision",
    "reviewer_counts",
]
