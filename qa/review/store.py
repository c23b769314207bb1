"""Reviewers' decisions in a real database: SQLite by default, PostgreSQL for a team.

* Where: ``$DATASET_QA_DB`` (a SQLAlchemy URL; ``postgresql://user@host/db`` is enough, the
  psycopg 3 driver is picked for it), else ``workspace_dir()/review.sqlite`` (outside any
  dataset; WAL mode).
* What: one append-only table of decisions. A decision is never updated or deleted; an
  item's current status is its latest decision (by ``decided_at``, then insertion order), so
  the full history (who, when, what they decided before) is always there.
* Each decision carries a ``decision_uid`` (a UUID): importing the same export twice, or on
  the machine it came from, adds nothing.
* Concurrency: every write is one short transaction. SQLite takes the write lock up front
  (``BEGIN IMMEDIATE``) and a second process waits (``busy_timeout``) instead of failing;
  PostgreSQL serialises schema changes with an advisory lock. A killed process leaves the last
  committed state (both databases are transactional).
* Migrations: table ``review_schema`` holds the version; :data:`MIGRATIONS` brings an older
  database to :data:`SCHEMA_VERSION` in one transaction when it is opened. A database newer
  than this dataset-qa is refused with a message.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

DB_ENV = "DATASET_QA_DB"
DB_FILE = "review.sqlite"
SCHEMA_VERSION = 2

#: What a reviewer can decide. "open" re-opens an item (an undo); it is history like the rest.
DECISIONS = ("confirmed", "not_an_issue", "fixed", "open")
#: The statuses an item can have (no decision yet = "open").
STATUSES = ("open", "confirmed", "not_an_issue", "fixed")
# A writer waits this long for another process' write lock (each write commits in ms).
BUSY_TIMEOUT_S = 60.0
# IN (...) lists are cut to this many keys (SQLite's parameter limit, PostgreSQL plan size).
_CHUNK = 500
# Above this many keys, current() reads every item's latest decision in one query and
# filters in memory (a queue of 200k items would otherwise take 400 queries).
_READ_ALL_ABOVE = 5_000
MAX_REVIEWER_LEN = 200
MAX_NOTE_LEN = 10_000
# PostgreSQL advisory lock id for schema changes (any constant; "rvw1" in ASCII).
_PG_LOCK_ID = 0x72767731

COLUMNS = ["decision_uid", "item_key", "status", "reviewer", "note", "decided_at",
           "fingerprint", "analysis", "kind", "image_sha", "dataset", "message"]

# The version-1 schema (the first release): kept to document what MIGRATIONS start from.
V1_SCHEMA = (
    "CREATE TABLE review_schema (version INTEGER NOT NULL)",
    "INSERT INTO review_schema (version) VALUES (1)",
    ("CREATE TABLE review_decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, "
     "item_key TEXT NOT NULL, status TEXT NOT NULL, reviewer TEXT NOT NULL, note TEXT, "
     "decided_at REAL NOT NULL)"),
    "CREATE INDEX ix_review_decisions_item ON review_decisions (item_key)",
)


class ReviewDatabaseError(RuntimeError):
    """The decisions database cannot be opened (server down, bad credentials, unwritable
    folder); the message names the database (password hidden) and what to check."""


def _metadata():
    import sqlalchemy as sa

    md = sa.MetaData()
    sa.Table("review_schema", md, sa.Column("version", sa.Integer, nullable=False))
    sa.Table(
        "review_decisions", md,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("item_key", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("decided_at", sa.Float(precision=53), nullable=False),
        # version 2
        sa.Column("decision_uid", sa.Text),
        sa.Column("fingerprint", sa.Text),
        sa.Column("analysis", sa.Text),
        sa.Column("kind", sa.Text),
        sa.Column("image_sha", sa.Text),
        sa.Column("dataset", sa.Text),
        sa.Column("message", sa.Text),
        sa.Index("ix_review_decisions_item", "item_key"),
        sa.Index("ux_review_decisions_uid", "decision_uid", unique=True),
        sa.Index("ix_review_decisions_image", "image_sha"),
    )
    return md


def _migrate_1_to_2(conn) -> None:
    import sqlalchemy as sa

    for col in ("decision_uid", "fingerprint", "analysis", "kind", "image_sha", "dataset",
                "message"):
        conn.execute(sa.text(f"ALTER TABLE review_decisions ADD COLUMN {col} TEXT"))
    ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM review_decisions"))]
    if ids:
        conn.execute(sa.text("UPDATE review_decisions SET decision_uid = :u WHERE id = :i"),
                     [{"u": str(uuid.uuid4()), "i": i} for i in ids])
    conn.execute(sa.text("CREATE UNIQUE INDEX ux_review_decisions_uid "
                         "ON review_decisions (decision_uid)"))
    conn.execute(sa.text("CREATE INDEX ix_review_decisions_image ON review_decisions (image_sha)"))


#: version -> the function that brings a database at that version to the next one.
MIGRATIONS = {1: _migrate_1_to_2}


def default_url() -> str:
    """``$DATASET_QA_DB``, else the SQLite file ``workspace_dir()/review.sqlite``."""
    env = os.environ.get(DB_ENV, "").strip()
    if env:
        return env
    from qa.store import workspace_dir

    return f"sqlite:///{workspace_dir() / DB_FILE}"


def _normalise_url(url: str) -> str:
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


class ReviewStore:
    """The decisions database at ``url`` (see the module docstring). Thread-safe; several
    processes may use the same database at once."""

    def __init__(self, url: str | None = None):
        import sqlalchemy as sa

        self.url = _normalise_url(url or default_url())
        try:
            u = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError as exc:
            raise ValueError(f"{DB_ENV} / url {self.url!r} is not a database URL ({exc}); use "
                             "sqlite:///path/review.sqlite or postgresql://user@host/db") from None
        self.dialect = u.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"review decisions need SQLite or PostgreSQL, got {self.dialect!r} "
                             f"from {u.render_as_string(hide_password=True)!r}")
        self._table_md = _metadata()
        self.table = self._table_md.tables["review_decisions"]
        if self.dialect == "sqlite":
            if u.database and u.database != ":memory:":
                Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(
                self.url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
            _sqlite_hooks(self.engine)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        try:
            self._migrate()
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ReviewDatabaseError(
                f"cannot open the decisions database {self!r}: {reason}. Check {DB_ENV} (a "
                "reachable server, the user's rights) or unset it to use the local SQLite "
                "file") from exc

    def __repr__(self) -> str:
        return f"ReviewStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):  # -> ReviewStore
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------ schema
    def _migrate(self) -> None:
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
            insp = sa.inspect(conn)
            if not insp.has_table("review_schema"):
                if insp.has_table("review_decisions"):
                    raise ValueError(f"{self!r} has a review_decisions table but no "
                                     "review_schema version table; it was not made by dataset-qa")
                self._table_md.create_all(conn)
                conn.execute(sa.text("INSERT INTO review_schema (version) VALUES (:v)"),
                             {"v": SCHEMA_VERSION})
                return
            version = conn.execute(sa.text("SELECT MAX(version) FROM review_schema")).scalar()
            version = int(version or 1)
            if version > SCHEMA_VERSION:
                raise ValueError(f"{self!r} has review schema {version}, newer than this "
                                 f"dataset-qa ({SCHEMA_VERSION}); upgrade dataset-qa")
            while version < SCHEMA_VERSION:
                log.info("migrating review decisions %r from schema %d", self, version)
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(sa.text("DELETE FROM review_schema"))
                conn.execute(sa.text("INSERT INTO review_schema (version) VALUES (:v)"),
                             {"v": version})

    def schema_version(self) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT MAX(version) FROM review_schema")).scalar())

    # ------------------------------------------------------------------------ writes
    def decide(self, item_key: str, status: str, *, reviewer: str, note: str | None = None,
               fingerprint: str | None = None, context: dict | None = None) -> str:
        """Record one decision; returns its ``decision_uid``. ``context`` may carry
        ``analysis, kind, image_sha, dataset, message`` (kept for exports and readers
        without the dataset). Raises ValueError for an unknown status or an empty reviewer."""
        row = _decision_row(item_key, status, reviewer, note, fingerprint, context or {})
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), [row])
        return row["decision_uid"]

    def import_decisions(self, decisions: pd.DataFrame) -> tuple[int, int]:
        """Add exported decisions (columns :data:`COLUMNS`; ``decision_uid`` and
        ``decided_at`` kept) that this database does not hold yet. Returns (added, already
        there). Raises ValueError naming the first bad row."""
        need = {"decision_uid", "item_key", "status", "reviewer", "decided_at"}
        missing = need - set(decisions.columns)
        if missing:
            raise ValueError(f"decisions lack columns {sorted(missing)}; expected an export "
                             f"of `dataset-qa review export` with columns {COLUMNS}")
        rows = []
        for i, rec in enumerate(decisions.to_dict("records")):
            ctx = {c: rec.get(c) for c in ("analysis", "kind", "image_sha", "dataset", "message")}
            try:
                row = _decision_row(rec["item_key"], rec["status"], rec["reviewer"],
                                    rec.get("note"), rec.get("fingerprint"), ctx)
                row["decision_uid"] = _text(rec["decision_uid"], "decision_uid", 100, True)
                row["decided_at"] = float(rec["decided_at"])
            except (ValueError, TypeError) as exc:
                raise ValueError(f"decision row {i + 1}: {exc}") from None
            rows.append(row)
        uids = [r["decision_uid"] for r in rows]
        with self.engine.begin() as conn:
            known = set()
            for chunk in _chunks(uids):
                q = self.table.select().with_only_columns(self.table.c.decision_uid).where(
                    self.table.c.decision_uid.in_(chunk))
                known.update(r[0] for r in conn.execute(q))
            seen, new = set(known), []
            for r in rows:
                if r["decision_uid"] not in seen:
                    seen.add(r["decision_uid"])
                    new.append(r)
            if new:
                conn.execute(self.table.insert(), new)
        return len(new), len(rows) - len(new)

    # ------------------------------------------------------------------------ reads
    def current(self, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """The latest decision of each item (of ``keys``, or of every item): columns
        :data:`COLUMNS`, one row per item_key."""
        import sqlalchemy as sa

        t = self.table
        rank = sa.func.row_number().over(partition_by=t.c.item_key,
                                         order_by=(t.c.decided_at.desc(), t.c.id.desc()))
        cols = [t.c[c] for c in COLUMNS]
        frames = []
        wanted = None if keys is None else list(dict.fromkeys(keys))
        if wanted is not None and len(wanted) > _READ_ALL_ABOVE:
            df = self.current()  # one scan beats hundreds of IN (...) queries
            return df[df["item_key"].isin(wanted)].reset_index(drop=True)
        with self.engine.connect() as conn:
            key_chunks = _chunks(wanted) if wanted is not None else [None]
            for chunk in key_chunks:
                inner = sa.select(*cols, rank.label("rk"))
                if chunk is not None:
                    if not chunk:
                        continue
                    inner = inner.where(t.c.item_key.in_(chunk))
                sub = inner.subquery()
                q = sa.select(*[sub.c[c] for c in COLUMNS]).where(sub.c.rk == 1)
                frames.extend(conn.execute(q).fetchall())
        return _frame(frames)

    def history(self, item_key: str | None = None, *,
                image_shas: Iterable[str] | None = None) -> pd.DataFrame:
        """Every decision (of ``item_key``, or about images with these content hashes), oldest
        first: columns :data:`COLUMNS`."""
        import sqlalchemy as sa

        t = self.table
        q = sa.select(*[t.c[c] for c in COLUMNS]).order_by(t.c.decided_at, t.c.id)
        frames = []
        with self.engine.connect() as conn:
            if image_shas is not None:
                for chunk in _chunks(list(dict.fromkeys(image_shas))):
                    frames.append(conn.execute(q.where(t.c.image_sha.in_(chunk))).fetchall())
            elif item_key is not None:
                frames.append(conn.execute(q.where(t.c.item_key == item_key)).fetchall())
            else:
                frames.append(conn.execute(q).fetchall())
        df = _frame([r for f in frames for r in f])
        return df.sort_values("decided_at", kind="stable").reset_index(drop=True)

    def count(self) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar())

    def check(self) -> list[str]:
        """Problems found by the database's own integrity check (SQLite) plus rows that break
        the schema's rules; [] when consistent."""
        import sqlalchemy as sa

        problems = []
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                res = [r[0] for r in conn.execute(sa.text("PRAGMA integrity_check"))]
                problems += [r for r in res if r != "ok"]
            t = self.table
            bad = conn.execute(sa.select(sa.func.count()).select_from(t).where(sa.or_(
                t.c.status.not_in(DECISIONS), t.c.decision_uid.is_(None),
                t.c.reviewer == ""))).scalar()
            if bad:
                problems.append(f"{bad} decision rows with an unknown status, no uid or no "
                                "reviewer")
        return problems


def _sqlite_hooks(engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE for every transaction (SQLAlchemy's recipe
    for taking SQLite's transactions over from the driver): a writer queues for the lock at
    BEGIN instead of failing half-way."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_con, _record):
        dbapi_con.isolation_level = None
        cur = dbapi_con.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crash loses no commit
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _text(v, what: str, limit: int, required: bool) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        if required:
            raise ValueError(f"{what} is required")
        return None
    s = str(v).strip()
    if required and not s:
        raise ValueError(f"{what} is required (got an empty string)")
    if len(s) > limit:
        raise ValueError(f"{what} is {len(s)} characters long; at most {limit} are kept")
    return s or None


def _decision_row(item_key, status, reviewer, note, fingerprint, ctx: dict) -> dict:
    if status not in DECISIONS:
        raise ValueError(f"status must be one of {DECISIONS}, got {status!r}")
    image_sha = ctx.get("image_sha")
    return {
        "decision_uid": str(uuid.uuid4()),
        "item_key": _text(item_key, "item_key", 200, True),
        "status": status,
        "reviewer": _text(reviewer, "reviewer (the name of who decides)", MAX_REVIEWER_LEN, True),
        "note": _text(note, "note", MAX_NOTE_LEN, False),
        "decided_at": time.time(),
        "fingerprint": _text(fingerprint, "fingerprint", 200, False),
        "analysis": _text(ctx.get("analysis"), "analysis", 200, False),
        "kind": _text(ctx.get("kind"), "kind", 200, False),
        "image_sha": _text(image_sha, "image_sha", 1000, False),
        "dataset": _text(ctx.get("dataset"), "dataset", 1000, False),
        "message": _text(ctx.get("message"), "message", MAX_NOTE_LEN, False),
    }


def _frame(rows: list) -> pd.DataFrame:
    """Decision rows as a DataFrame: text columns object dtype with None for missing (not
    NaN), decided_at float seconds."""
    cols = {c: pd.Series([r[i] for r in rows], dtype="object") for i, c in enumerate(COLUMNS)}
    cols["decided_at"] = cols["decided_at"].astype("float64")
    return pd.DataFrame(cols)


def _chunks(seq: list, n: int = _CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


_default: dict[str, ReviewStore] = {}
_default_lock = threading.Lock()


def default_review_store() -> ReviewStore:
    """The process-wide store at :func:`default_url` (one per URL, so a changed
    ``$DATASET_QA_DB`` or workspace opens the new one)."""
    url = _normalise_url(default_url())
    with _default_lock:
        st = _default.get(url)
        if st is None:
            st = _default[url] = ReviewStore(url)
        return st
