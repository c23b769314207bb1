"""The decisions database, on SQLite and PostgreSQL (same tests, parametrised fixture)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from qa.review import ReviewStore
from qa.review.store import COLUMNS, SCHEMA_VERSION, V1_SCHEMA

WRITER = Path(__file__).with_name("_writer.py")
N_WRITES = 1000


def test_decisions_keep_history_and_latest_wins(review_store):
    st = review_store
    st.decide("k1", "confirmed", reviewer="ann", note="box too loose", fingerprint="f1")
    time.sleep(0.01)
    st.decide("k1", "not_an_issue", reviewer="bob", fingerprint="f1")
    st.decide("k2", "fixed", reviewer="ann")
    cur = st.current().set_index("item_key")
    assert cur.loc["k1", "status"] == "not_an_issue" and cur.loc["k1", "reviewer"] == "bob"
    assert cur.loc["k2", "status"] == "fixed"
    hist = st.history("k1")
    assert hist["status"].tolist() == ["confirmed", "not_an_issue"]
    assert hist["note"].tolist() == ["box too loose", None]
    assert list(hist.columns) == COLUMNS
    assert st.current(["k2", "nope"])["item_key"].tolist() == ["k2"]
    assert len(st.current([])) == 0
    assert st.count() == 3 and st.check() == []
    assert st.schema_version() == SCHEMA_VERSION


def test_same_timestamp_latest_insert_wins(review_store):
    rows = pd.DataFrame({"decision_uid": ["a", "b"], "item_key": ["k", "k"],
                         "status": ["confirmed", "fixed"], "reviewer": ["x", "y"],
                         "decided_at": [100.0, 100.0]})
    assert review_store.import_decisions(rows) == (2, 0)
    assert review_store.current(["k"])["status"].tolist() == ["fixed"]


@pytest.mark.parametrize("kwargs, match", [
    ({"status": "maybe", "reviewer": "ann"}, "status must be one of"),
    ({"status": "confirmed", "reviewer": "  "}, "reviewer .* is required"),
    ({"status": "confirmed", "reviewer": "x" * 201}, "at most 200"),
])
def test_bad_decisions_are_refused(review_store, kwargs, match):
    with pytest.raises(ValueError, match=match):
        review_store.decide("k", **kwargs)
    assert review_store.count() == 0


def test_import_is_idempotent_and_keeps_time(review_store):
    rows = pd.DataFrame({"decision_uid": ["u1", "u2"], "item_key": ["k1", "k2"],
                         "status": ["confirmed", "fixed"], "reviewer": ["ann", "bob"],
                         "note": [None, "relabelled"], "decided_at": [1000.5, 2000.25]})
    assert review_store.import_decisions(rows) == (2, 0)
    assert review_store.import_decisions(rows) == (0, 2)
    h = review_store.history()
    assert h["decided_at"].tolist() == [1000.5, 2000.25]
    # an older imported decision does not override a newer local one
    review_store.decide("k1", "not_an_issue", reviewer="cat")
    assert review_store.current(["k1"])["status"].tolist() == ["not_an_issue"]
    with pytest.raises(ValueError, match="row 1: status must be one of"):
        review_store.import_decisions(rows.assign(decision_uid=["u3", "u4"], status="bad"))
    with pytest.raises(ValueError, match=r"lack columns \['decision_uid'\]"):
        review_store.import_decisions(rows.drop(columns="decision_uid"))


def _make_v1(url: str) -> None:
    """A database as the first release wrote it (SQLite DDL; SERIAL/DOUBLE on PostgreSQL)."""
    eng = sa.create_engine(url)
    with eng.begin() as c:
        for stmt in V1_SCHEMA:
            if eng.dialect.name == "postgresql":
                stmt = stmt.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "SERIAL PRIMARY KEY")
                stmt = stmt.replace("REAL", "DOUBLE PRECISION")
            c.execute(sa.text(stmt))
        c.execute(sa.text("INSERT INTO review_decisions (item_key, status, reviewer, note, "
                          "decided_at) VALUES ('old', 'confirmed', 'ann', 'v1 note', 10.0), "
                          "('old', 'fixed', 'bob', NULL, 20.0)"))
    eng.dispose()


def test_version_1_database_is_migrated(review_url):
    _make_v1(review_url)
    st = ReviewStore(review_url)
    assert st.schema_version() == SCHEMA_VERSION
    h = st.history("old")
    assert h["status"].tolist() == ["confirmed", "fixed"] and h["note"][0] == "v1 note"
    assert h["decision_uid"].notna().all() and h["decision_uid"].nunique() == 2
    st.decide("old", "not_an_issue", reviewer="cat", fingerprint="fp")
    assert st.current(["old"])["status"].tolist() == ["not_an_issue"]
    assert st.check() == []
    st.close()
    st = ReviewStore(review_url)  # opening again migrates nothing
    assert st.count() == 3
    st.close()


def test_hand_made_v1_sqlite_file_opens(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    for stmt in V1_SCHEMA:
        con.execute(stmt)
    con.execute("INSERT INTO review_decisions (item_key, status, reviewer, decided_at) "
                "VALUES ('k', 'confirmed', 'ann', 5.0)")
    con.commit()
    con.close()
    st = ReviewStore(f"sqlite:///{path}")
    assert st.current()["reviewer"].tolist() == ["ann"]
    cols = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(review_decisions)")}
    assert {"decision_uid", "fingerprint", "image_sha"} <= cols
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_and_foreign_tables_are_refused(review_url):
    ReviewStore(review_url).close()
    eng = sa.create_engine(review_url)
    with eng.begin() as c:
        c.execute(sa.text("UPDATE review_schema SET version = 99"))
    eng.dispose()
    with pytest.raises(ValueError, match="schema 99, newer than this dataset-qa"):
        ReviewStore(review_url)


def test_bad_urls_are_refused():
    with pytest.raises(ValueError, match="need SQLite or PostgreSQL, got 'mysql'"):
        ReviewStore("mysql://u@h/db")
    with pytest.raises(ValueError, match="is not a database URL"):
        ReviewStore("not a url")


def test_unreachable_server_says_which_and_what_to_check():
    from qa.review import ReviewDatabaseError

    with pytest.raises(ReviewDatabaseError, match=r"cannot open the decisions database "
                       r"ReviewStore\('postgresql\+psycopg://u:\*\*\*@127.0.0.1:9/db'\).*"
                       "Check DATASET_QA_DB"):
        ReviewStore("postgresql://u:secret@127.0.0.1:9/db")


def test_default_store_follows_env(tmp_path, monkeypatch):
    from qa.review import default_review_store, default_url

    monkeypatch.setenv("DATASET_QA_HOME", str(tmp_path / "ws"))
    monkeypatch.delenv("DATASET_QA_DB", raising=False)
    assert default_url() == f"sqlite:///{tmp_path / 'ws' / 'review.sqlite'}"
    st = default_review_store()
    st.decide("k", "fixed", reviewer="me")
    assert (tmp_path / "ws" / "review.sqlite").exists()
    monkeypatch.setenv("DATASET_QA_DB", f"sqlite:///{tmp_path / 'team.sqlite'}")
    assert default_review_store() is not st and default_review_store().count() == 0


def _spawn(url: str, reviewer: str, n: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WRITER), url, reviewer, str(n), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _go(*procs: subprocess.Popen) -> None:
    """Wait until every writer has opened the store, then start them all at once."""
    for p in procs:
        line = p.stdout.readline().strip()
        assert line == "ready", (line, p.stderr.read()[-2000:] if p.poll() is not None else "")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


def test_two_writers_lose_no_decision(review_url):
    ReviewStore(review_url).close()  # created before the race (the race on creation is below)
    procs = [_spawn(review_url, name, N_WRITES) for name in ("w1", "w2")]
    _go(*procs)
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    uids = [line for out, _ in outs for line in out.split()]
    assert len(uids) == 2 * N_WRITES
    st = ReviewStore(review_url)
    hist = st.history()
    assert len(hist) == 2 * N_WRITES and set(hist["decision_uid"]) == set(uids)
    assert hist.groupby("reviewer").size().to_dict() == {"w1": N_WRITES, "w2": N_WRITES}
    span = hist.groupby("reviewer")["decided_at"].agg(["min", "max"])
    assert span["min"].max() < span["max"].min(), "the writers did not run at the same time"
    # every shared key has both writers' decisions and one current status
    shared = hist[hist["item_key"].str.startswith("shared-")]
    assert (shared.groupby("item_key")["reviewer"].nunique() == 2).all()
    assert len(st.current()) == hist["item_key"].nunique()
    assert st.check() == []


def test_two_processes_creating_the_database_at_once(review_url):
    procs = [_spawn(review_url, name, 5) for name in ("a", "b")]
    _go(*procs)
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    st = ReviewStore(review_url)
    assert st.count() == 10 and st.schema_version() == SCHEMA_VERSION


def test_killed_writer_leaves_database_consistent(review_url):
    ReviewStore(review_url).close()
    p = _spawn(review_url, "victim", 100_000, "batch")
    _go(p)
    committed, batches = [], []
    deadline = time.time() + 120
    while time.time() < deadline:
        line = p.stdout.readline().strip()
        if line.startswith("batch "):
            batches.append(line.split()[1])
        elif line:
            committed.append(line)
        if len(committed) >= 150 and len(batches) >= 3:
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    for line in p.stdout.read().splitlines():  # commits reported before the kill, not yet read
        line = line.strip()
        if line.startswith("batch "):
            batches.append(line.split()[1])
        elif line:
            committed.append(line)
    st = ReviewStore(review_url)
    assert st.check() == []
    hist = st.history()
    assert set(committed) <= set(hist["decision_uid"])  # every reported commit survived
    singles = hist[~hist["note"].fillna("").str.startswith("batch ")]
    assert len(singles) in (len(committed), len(committed) + 1)  # + one in flight at most
    # an import is one transaction: a batch is all there or not at all
    sizes = hist[hist["note"].fillna("").str.startswith("batch ")].groupby("note").size()
    from tests.review._writer import BATCH_ROWS
    assert (sizes == BATCH_ROWS).all() and len(sizes) >= len(batches)
    st.decide("after-kill", "fixed", reviewer="me")  # still writable
    assert st.current(["after-kill"])["status"].tolist() == ["fixed"]


def test_current_of_many_keys_reads_once_and_filters(review_store, monkeypatch):
    import qa.review.store as store_mod

    for k in ("a", "b", "c"):
        review_store.decide(k, "fixed", reviewer="x")
    review_store.decide("b", "confirmed", reviewer="y")
    few = review_store.current(["b", "c", "zz"]).sort_values("item_key")
    monkeypatch.setattr(store_mod, "_READ_ALL_ABOVE", 1)
    many = review_store.current(["b", "c", "zz"]).sort_values("item_key")
    assert many["status"].tolist() == few["status"].tolist() == ["confirmed", "fixed"]
    assert many["decision_uid"].tolist() == few["decision_uid"].tolist()


def test_app_sessions_as_threads_lose_nothing(review_store):
    """Streamlit runs each browser session in a thread of one process, sharing the store."""
    from concurrent.futures import ThreadPoolExecutor

    def work(name):
        return [review_store.decide(f"k{i % 50}", "confirmed", reviewer=name)
                for i in range(150)]

    with ThreadPoolExecutor(4) as pool:
        uids = [u for batch in pool.map(work, ["s1", "s2", "s3", "s4"]) for u in batch]
    hist = review_store.history()
    assert len(hist) == 600 and set(hist["decision_uid"]) == set(uids)
    assert len(review_store.current()) == 50
