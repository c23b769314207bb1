"""The content-addressed store: embeddings and per-image records (pixel statistics, hashes)
computed once and kept outside the dataset.

* Where: ``$DATASET_QA_CACHE`` or the user's cache folder (``$XDG_CACHE_HOME/dataset-qa``,
  else ``~/.cache/dataset-qa``), file ``store.sqlite``. Never inside a dataset.
* Keys: the SHA-256 of an image file's bytes (plus, for vectors, the ``model_id`` that made
  them; for records, a ``kind`` with its version). A renamed or moved image is found again; an
  edited one is a new key. Object crops use ``"<sha256>:<x>,<y>,<w>,<h>"``.
* A real embedded database: SQLite in WAL mode. Every write is one transaction (atomic); two
  processes writing at once wait for each other (``busy_timeout``) and lose nothing; a killed
  process leaves the last committed state. Each entry carries a CRC-32: a damaged entry is
  reported (``Store.n_corrupt``), dropped and recomputed by its caller. A file that is not a
  database at all is moved aside (``store.sqlite.corrupt-<time>``) with a warning, and a fresh
  store is started.
* File hashes are memoised by (path, size, mtime, inode), so a re-run on the same dataset
  reads no image bytes at all.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

CACHE_ENV = "DATASET_QA_CACHE"
HOME_ENV = "DATASET_QA_HOME"
STORE_FILE = "store.sqlite"
SCHEMA_VERSION = 1
# SQLite's default limit on host parameters is 32766 in current builds; stay well below.
_CHUNK = 900
# A second process writing waits this long for the lock before failing (a 1M-image embedding
# batch commits in well under a second, so this is generous).
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    model_id TEXT NOT NULL, key TEXT NOT NULL, dim INTEGER NOT NULL, data BLOB NOT NULL,
    crc INTEGER NOT NULL, created REAL NOT NULL, PRIMARY KEY (model_id, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;
"""


def cache_dir() -> Path:
    """The folder of the store (and of other caches): ``$DATASET_QA_CACHE``, else
    ``$XDG_CACHE_HOME/dataset-qa``, else ``~/.cache/dataset-qa``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dataset-qa"


def workspace_dir() -> Path:
    """The folder for what must outlive a cache clear: reviewers' decisions, report history.
    ``$DATASET_QA_HOME``, else ``$XDG_DATA_HOME/dataset-qa``, else
    ``~/.local/share/dataset-qa``. Never inside a dataset."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dataset-qa"


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _chunks(seq: Sequence, n: int = _CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class Store:
    """One SQLite store file (see the module docstring). Thread-safe within a process (one
    connection behind a lock); several processes may use the same file at once."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else cache_dir() / STORE_FILE
        self.n_corrupt = 0  # damaged entries found (and dropped) since this Store was opened
        self.recovered_from: Path | None = None  # where an unreadable store file was moved
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("cache store %s is unreadable (%s); moved it to %s and started a new "
                        "one (its entries will be recomputed)", self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.replace(Path(str(aside) + suffix))
            self.recovered_from = aside
            self._con = self._connect()

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                              isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints
            with _transaction(con):
                for statement in _SCHEMA.split(";"):  # executescript would COMMIT early
                    if statement.strip():
                        con.execute(statement)
                row = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if row is None:
                    con.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise sqlite3.DatabaseError(
                        f"store schema {row[0]} is newer than this dataset-qa ({SCHEMA_VERSION})")
            con.execute("PRAGMA quick_check(1)").fetchone()
        except BaseException:
            con.close()
            raise
        return con

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------------ file hashes
    def hash_files(self, root: Path | str, file_names: Sequence[str], *,
                   workers: int | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   hasher: Callable | None = None) -> pd.DataFrame:
        """SHA-256 of each file's bytes: a DataFrame (file_name, sha256, error) aligned with
        ``file_names``. Files whose path, size, mtime and inode match a memoised entry are not
        read again. Unreadable or unsafe files get ``sha256`` None and ``error`` in words.
        ``hasher(root, names, progress)``, when given, hashes the files that are not memoised
        elsewhere (on a cluster: :mod:`qa.distributed`) and yields (digest, error) in order."""
        from qa.images import DEFAULT_WORKERS, NOT_FOUND, OUTSIDE_ROOT, _reason, iter_images, \
            sha256_file
        from qa.paths import lexically_inside

        names = [str(f) for f in file_names]
        rroot = Path(os.path.realpath(root))
        n = len(names)
        sha: list[str | None] = [None] * n
        err: list[str | None] = [None] * n
        stats: list[tuple | None] = [None] * n
        for i, name in enumerate(names):
            p = lexically_inside(rroot, name)
            if p is None:
                err[i] = OUTSIDE_ROOT
                continue
            try:
                st = os.stat(p)
            except FileNotFoundError:
                err[i] = NOT_FOUND
                continue
            except OSError as exc:
                err[i] = _reason(exc)
                continue
            stats[i] = (str(p), st.st_size, st.st_mtime_ns, st.st_ino)
        memo = self._memo([s[0] for s in stats if s is not None])
        todo = []
        for i, s in enumerate(stats):
            if s is None:
                continue
            m = memo.get(s[0])
            if m is not None and m[:3] == s[1:]:
                sha[i] = m[3]
            else:
                todo.append(i)

        def one(i):
            try:
                return sha256_file(rroot, names[i], real_root=rroot), None
            except Exception as exc:
                return None, _reason(exc)

        fresh = []
        if hasher is not None and todo:
            results = hasher(rroot, [names[i] for i in todo], progress)
        else:
            results = iter_images(todo, one, workers=workers or DEFAULT_WORKERS,
                                  progress=progress, total=len(todo))
        for i, (digest, e) in zip(todo, results):
            sha[i], err[i] = digest, e
            if digest is not None:
                fresh.append((*stats[i], digest))
        if fresh:
            with self._lock, _transaction(self._con):
                self._con.executemany(
                    "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?)", fresh)
        return pd.DataFrame({"file_name": names, "sha256": sha, "error": err})

    def _memo(self, paths: list[str]) -> dict[str, tuple]:
        out = {}
        with self._lock:
            for chunk in _chunks(paths):
                q = ("SELECT path, size, mtime_ns, ino, sha256 FROM file_hashes WHERE path IN "
                     f"({','.join('?' * len(chunk))})")
                for path, size, mtime, ino, digest in self._con.execute(q, list(chunk)):
                    out[path] = (size, mtime, ino, digest)
        return out

    # ------------------------------------------------------------------------ vectors
    def has_vectors(self, model_id: str) -> bool:
        """Whether any vector of ``model_id`` is stored (one indexed lookup): lets a caller
        skip hashing a dataset's files when nothing could be found anyway."""
        with self._lock:
            return self._con.execute("SELECT 1 FROM vectors WHERE model_id = ? LIMIT 1",
                                     (model_id,)).fetchone() is not None

    def get_vectors(self, model_id: str, keys: Sequence[str]
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, (n, d) float32 array with zeros where not found; None if none found)
        for ``keys`` under ``model_id``. Damaged entries count as not found and are deleted."""
        keys = list(keys)
        found = np.zeros(len(keys), dtype=bool)
        pos = {k: i for i, k in enumerate(keys)}
        out: np.ndarray | None = None
        bad = []
        with self._lock:
            for chunk in _chunks(keys):
                q = (f"SELECT key, dim, data, crc FROM vectors WHERE model_id = ? AND key IN "
                     f"({','.join('?' * len(chunk))})")
                for key, dim, data, crc in self._con.execute(q, [model_id, *chunk]):
                    if len(data) != 4 * dim or _crc(data) != crc:
                        bad.append(key)
                        continue
                    if out is None:
                        out = np.zeros((len(keys), dim), dtype=np.float32)
                    elif out.shape[1] != dim:
                        bad.append(key)
                        continue
                    i = pos[key]
                    out[i] = np.frombuffer(data, dtype=np.float32)
                    found[i] = True
            if bad:
                self._drop("vectors", "model_id", model_id, bad)
        return found, out

    def put_vectors(self, model_id: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store one row of ``vectors`` (float32) per key under ``model_id``, in one
        transaction."""
        vecs = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        keys = list(keys)
        if vecs.ndim != 2 or len(vecs) != len(keys):
            raise ValueError(f"vectors must be (n, d) with one row per key: got {vecs.shape} for "
                             f"{len(keys)} keys")
        now = time.time()
        rows = []
        for k, v in zip(keys, vecs):
            b = v.tobytes()
            rows.append((model_id, str(k), int(vecs.shape[1]), b, _crc(b), now))
        with self._lock, _transaction(self._con):
            self._con.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?, ?)", rows)

    def vector_models(self) -> list[str]:
        """The model_ids that have vectors in the store."""
        with self._lock:
            return [r[0] for r in self._con.execute(
                "SELECT DISTINCT model_id FROM vectors ORDER BY model_id")]

    def vector_keys(self, model_id: str) -> list[str]:
        """Every key with a vector of ``model_id`` (for exporting the store)."""
        with self._lock:
            return [r[0] for r in self._con.execute(
                "SELECT key FROM vectors WHERE model_id = ? ORDER BY key", (model_id,))]

    # ------------------------------------------------------------------------ records
    def record_kinds(self) -> list[str]:
        """The record kinds present in the store."""
        with self._lock:
            return [r[0] for r in self._con.execute(
                "SELECT DISTINCT kind FROM records ORDER BY kind")]

    def record_keys(self, kind: str) -> list[str]:
        """Every key with a record of ``kind``."""
        with self._lock:
            return [r[0] for r in self._con.execute(
                "SELECT key FROM records WHERE kind = ? ORDER BY key", (kind,))]

    def get_records(self, kind: str, keys: Sequence[str]) -> dict[str, dict]:
        """The stored records (JSON objects) of ``kind`` for the ``keys`` that have one."""
        import msgspec

        out, bad = {}, []
        with self._lock:
            for chunk in _chunks(list(keys)):
                q = (f"SELECT key, data, crc FROM records WHERE kind = ? AND key IN "
                     f"({','.join('?' * len(chunk))})")
                for key, data, crc in self._con.execute(q, [kind, *chunk]):
                    try:
                        if _crc(data) != crc:
                            raise ValueError("crc")
                        out[key] = msgspec.json.decode(data)
                    except (ValueError, msgspec.DecodeError):
                        bad.append(key)
            if bad:
                self._drop("records", "kind", kind, bad)
        return out

    def put_records(self, kind: str, items: dict[str, dict]) -> None:
        """Store JSON-able records of ``kind`` by key, in one transaction."""
        import msgspec

        now = time.time()
        rows = []
        for k, rec in items.items():
            b = msgspec.json.encode(rec)
            rows.append((kind, str(k), b, _crc(b), now))
        with self._lock, _transaction(self._con):
            self._con.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)", rows)

    # ------------------------------------------------------------------------ upkeep
    def _drop(self, table: str, col: str, value: str, keys: list[str]) -> None:
        self.n_corrupt += len(keys)
        log.warning("cache store %s: %d damaged %s entr%s for %r dropped; they will be "
                    "recomputed", self.path, len(keys), table, "y" if len(keys) == 1 else "ies",
                    value)
        with _transaction(self._con):
            for chunk in _chunks(keys):
                self._con.execute(f"DELETE FROM {table} WHERE {col} = ? AND key IN "
                                  f"({','.join('?' * len(chunk))})", [value, *chunk])

    def info(self) -> pd.DataFrame:
        """What the store holds: one row per (table, name): entries, bytes, last written."""
        with self._lock:
            rows = [("vectors", *r) for r in self._con.execute(
                "SELECT model_id, COUNT(*), SUM(LENGTH(data)), MAX(created) FROM vectors "
                "GROUP BY model_id ORDER BY model_id")]
            rows += [("records", *r) for r in self._con.execute(
                "SELECT kind, COUNT(*), SUM(LENGTH(data)), MAX(created) FROM records "
                "GROUP BY kind ORDER BY kind")]
            n_hash = self._con.execute("SELECT COUNT(*) FROM file_hashes").fetchone()[0]
        if n_hash:
            rows.append(("file_hashes", "sha256 of files", n_hash, None, None))
        df = pd.DataFrame(rows, columns=["table", "name", "entries", "bytes", "last_written"])
        df["last_written"] = pd.to_datetime(df["last_written"], unit="s", errors="coerce")
        return df

    def clear(self, *, model: str | None = None, kind: str | None = None) -> int:
        """Delete the vectors of ``model`` and/or the records of ``kind``; with neither,
        everything (file-hash memo included). Returns the number of entries deleted."""
        with self._lock, _transaction(self._con):
            n = 0
            if model is None and kind is None:
                for table in ("vectors", "records", "file_hashes"):
                    n += self._con.execute(f"DELETE FROM {table}").rowcount
            if model is not None:
                n += self._con.execute("DELETE FROM vectors WHERE model_id = ?", (model,)).rowcount
            if kind is not None:
                n += self._con.execute("DELETE FROM records WHERE kind = ?", (kind,)).rowcount
        with self._lock:
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._con.execute("VACUUM")
        return n


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection: the write
    lock is taken up front, so two writers queue instead of failing mid-transaction."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self):
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.con.execute("COMMIT")
        else:
            self.con.execute("ROLLBACK")
        return False


_default: dict[str, Store] = {}
_default_lock = threading.Lock()


def default_store() -> Store:
    """The process-wide store at :func:`cache_dir` (one per path, reopened if the cache
    folder setting changes, e.g. in tests)."""
    path = str(cache_dir() / STORE_FILE)
    with _default_lock:
        st = _default.get(path)
        if st is None:
            st = _default[path] = Store(path)
        return st
