"""The cluster layout: content-addressed Parquet files that every node can write and any
machine (the dashboard's included) can read, under a local folder or any URI fsspec opens
(``s3://bucket/qa``, ``gs://...``, ``file:///mnt/shared/qa``, ``memory://`` in tests).

::

    <root>/LAYOUT.json                                {"format": "dataset-qa-layout", ...}
    <root>/vectors/<model_id, quoted>/part-<digest>.parquet   key, vector (float32[d]), crc
    <root>/records/<kind, quoted>/part-<digest>.parquet       key, data (JSON bytes), crc

* The same keys as the local store (:mod:`qa.store`): the SHA-256 of an image file's bytes
  (``"<sha256>:<x>,<y>,<w>,<h>"`` for an object crop) under a ``model_id`` for vectors, or a
  ``kind`` with its version for records (pixel statistics, decode errors).
* A part is written whole or not at all: to ``_tmp/`` first, then moved into place (readers
  never list ``_tmp``). Its name is a digest of its sorted keys, so a batch that is retried
  after a node died writes the *same* file again instead of a second copy.
* Entries are immutable (a key's content never changes), so reading is a union of the parts;
  should a key appear in two parts (two runs that overlapped), readers take one copy and
  :meth:`ClusterLayout.compact` rewrites the parts without repeats.
* Every row carries a CRC-32 of its bytes; a damaged row or an unreadable part is reported
  (``n_corrupt``), skipped and, being missing, recomputed by the next run.

The local SQLite store imports from and exports to a layout: :func:`import_into_store`,
:func:`export_from_store` (``dataset-qa cache import|export``). pyarrow and fsspec only: no
Ray is needed to read or write a layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
import zlib
from collections.abc import Iterable, Sequence
from urllib.parse import quote, unquote

import numpy as np

log = logging.getLogger(__name__)

FORMAT = "dataset-qa-layout"
VERSION = 1
MARKER = "LAYOUT.json"
VECTORS, RECORDS = "vectors", "records"
_TMP = "_tmp"
# Rows per part when exporting a store: ~100 MB of 512-d float32 vectors, a size object stores
# and Parquet readers handle well.
EXPORT_PART_ROWS = 50_000


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _quote(name: str) -> str:
    """A model_id or kind as one path segment (``/`` and other reserved characters escaped)."""
    return quote(str(name), safe="-_.+=,@")


def part_name(keys: Iterable[str]) -> str:
    """``part-<32 hex>.parquet``: a digest of the sorted keys, so the same batch always gets
    the same file name (a retried batch overwrites its own part, never adds a copy)."""
    h = hashlib.blake2b(digest_size=16, person=b"qa-layout-part")
    for k in sorted(str(k) for k in keys):
        h.update(k.encode("utf-8"))
        h.update(b"\0")
    return f"part-{h.hexdigest()}.parquet"


class LayoutError(ValueError):
    """A layout location that cannot be used (message says which and the fix)."""


class ClusterLayout:
    """A layout at ``uri`` (a local path or an fsspec URI); created on first write."""

    def __init__(self, uri: str, *, storage_options: dict | None = None):
        import fsspec

        if not isinstance(uri, str) or not uri.strip():
            raise LayoutError(f"a layout location must be a path or URI, got {uri!r}")
        self.uri = uri.rstrip("/") if uri.strip() != "/" else uri
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.uri, **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise LayoutError(f"cannot open the layout location {uri!r} ({exc}); for s3:// or "
                              "gs:// install the filesystem package (s3fs, gcsfs)") from None
        self.root = self.root.rstrip("/")
        self.n_corrupt = 0
        self._checked = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ClusterLayout({self.uri!r})"

    def __reduce__(self):  # travels to Ray workers as its URI
        return (ClusterLayout, (self.uri,))

    @property
    def is_local(self) -> bool:
        """Whether the layout is a folder on this machine's file system (every node of a
        multi-machine cluster must then see the same folder, e.g. a shared mount)."""
        return "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                          else (self.fs.protocol,))

    # ---------------------------------------------------------------------------- paths
    def _dir(self, table: str, name: str) -> str:
        return f"{self.root}/{table}/{_quote(name)}"

    def _check(self) -> None:
        """Create the marker on first use; refuse a folder that holds another format."""
        if self._checked:
            return
        marker = f"{self.root}/{MARKER}"
        if self.fs.exists(marker):
            try:
                with self.fs.open(marker, "rb") as f:
                    meta = json.loads(f.read())
            except (OSError, ValueError) as exc:
                raise LayoutError(f"{self.uri}/{MARKER} is unreadable ({exc}); point at an "
                                  "empty folder or a dataset-qa layout") from None
            if meta.get("format") != FORMAT:
                raise LayoutError(f"{self.uri} is not a dataset-qa layout ({MARKER} says "
                                  f"{meta.get('format')!r})")
            if int(meta.get("version", 0)) > VERSION:
                raise LayoutError(f"{self.uri} has layout version {meta['version']}, newer "
                                  f"than this dataset-qa ({VERSION}): upgrade dataset-qa")
        else:
            self.fs.makedirs(self.root, exist_ok=True)
            self._write_bytes(marker, json.dumps({"format": FORMAT, "version": VERSION})
                              .encode())
        self._checked = True

    def _write_bytes(self, path: str, data: bytes) -> None:
        tmp = f"{self.root}/{_TMP}/{uuid.uuid4().hex}"
        self.fs.makedirs(f"{self.root}/{_TMP}", exist_ok=True)
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(tmp, path)  # a rename on a local disk: readers see all of it or nothing

    def _parts(self, table: str, name: str) -> list[str]:
        d = self._dir(table, name)
        try:
            found = self.fs.ls(d, detail=False)
        except FileNotFoundError:
            return []
        return sorted(p for p in found if p.rsplit("/", 1)[-1].startswith("part-")
                      and p.endswith(".parquet"))

    def names(self, table: str) -> list[str]:
        """The model_ids (``table="vectors"``) or record kinds (``"records"``) present."""
        try:
            found = self.fs.ls(f"{self.root}/{table}", detail=False)
        except FileNotFoundError:
            return []
        return sorted(unquote(p.rstrip("/").rsplit("/", 1)[-1]) for p in found)

    # ---------------------------------------------------------------------------- writing
    def put_vectors(self, model_id: str, keys: Sequence[str], vectors: np.ndarray) -> str | None:
        """Write one part holding ``vectors`` (one float32 row per key) under ``model_id``;
        returns its path (None for no keys)."""
        import pyarrow as pa

        keys = [str(k) for k in keys]
        vecs = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if vecs.ndim != 2 or len(vecs) != len(keys):
            raise ValueError(f"vectors must be (n, d) with one row per key: got {vecs.shape} "
                             f"for {len(keys)} keys")
        if not keys:
            return None
        d = int(vecs.shape[1])
        flat = pa.array(vecs.reshape(-1), type=pa.float32())
        table = pa.table({"key": pa.array(keys, pa.string()),
                          "vector": pa.FixedSizeListArray.from_arrays(flat, d),
                          "crc": pa.array([_crc(v.tobytes()) for v in vecs], pa.uint32())})
        return self._write_table(VECTORS, model_id, keys, table)

    def put_records(self, kind: str, items: dict[str, dict]) -> str | None:
        """Write one part holding JSON-able ``items`` (key -> record) of ``kind``."""
        import msgspec
        import pyarrow as pa

        if not items:
            return None
        keys = [str(k) for k in items]
        blobs = [msgspec.json.encode(v) for v in items.values()]
        table = pa.table({"key": pa.array(keys, pa.string()),
                          "data": pa.array(blobs, pa.binary()),
                          "crc": pa.array([_crc(b) for b in blobs], pa.uint32())})
        return self._write_table(RECORDS, kind, keys, table)

    def _write_table(self, table_name: str, name: str, keys: list[str], table) -> str:
        import pyarrow.parquet as pq

        self._check()
        table = table.replace_schema_metadata({"dataset-qa": json.dumps(
            {"table": table_name, "name": name, "version": VERSION})})
        path = f"{self._dir(table_name, name)}/{part_name(keys)}"
        tmp = f"{self.root}/{_TMP}/{uuid.uuid4().hex}.parquet"
        self.fs.makedirs(f"{self.root}/{_TMP}", exist_ok=True)
        with self.fs.open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
        self.fs.makedirs(self._dir(table_name, name), exist_ok=True)
        self.fs.mv(tmp, path)
        return path

    # ---------------------------------------------------------------------------- reading
    def _read(self, path: str, columns: list[str]):
        import pyarrow.parquet as pq

        try:
            with self.fs.open(path, "rb") as f:
                return pq.read_table(f, columns=columns)
        except FileNotFoundError:
            return None  # compacted away between listing and reading
        except Exception as exc:  # a damaged part: its keys are simply missing
            with self._lock:
                self.n_corrupt += 1
            log.warning("layout part %s is unreadable (%s: %s); its entries will be "
                        "recomputed", path, type(exc).__name__, str(exc)[:120])
            return None

    def keys(self, table: str, name: str) -> set[str]:
        """Every key stored under ``name`` (a model_id or a record kind)."""
        out: set[str] = set()
        for p in self._parts(table, name):
            t = self._read(p, ["key"])
            if t is not None:
                out.update(t.column("key").to_pylist())
        return out

    def get_vectors(self, model_id: str, keys: Sequence[str] | None = None
                    ) -> tuple[list[str], np.ndarray]:
        """(keys found, (n, d) float32 rows) for ``keys`` (None: all) under ``model_id``, one
        row per key; damaged rows are skipped (and counted in ``n_corrupt``)."""
        want = None if keys is None else set(map(str, keys))
        got_keys: list[str] = []
        rows: list[np.ndarray] = []
        seen: set[str] = set()
        for p in self._parts(VECTORS, model_id):
            t = self._read(p, ["key", "vector", "crc"])
            if t is None or t.num_rows == 0:
                continue
            ks = t.column("key").to_pylist()
            col = t.column("vector").combine_chunks()
            d = col.type.list_size
            vecs = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            vecs = vecs.reshape(len(ks), d)
            crcs = t.column("crc").to_numpy()
            for i, k in enumerate(ks):
                if k in seen or (want is not None and k not in want):
                    continue
                if _crc(vecs[i].tobytes()) != int(crcs[i]):
                    with self._lock:
                        self.n_corrupt += 1
                    continue
                seen.add(k)
                got_keys.append(k)
                rows.append(vecs[i])
        if rows and len({r.shape[0] for r in rows}) > 1:
            raise LayoutError(f"{self.uri}: vectors of {model_id} have different lengths; "
                              "the layout is damaged (clear that model's folder)")
        arr = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        return got_keys, arr

    def get_records(self, kind: str, keys: Sequence[str] | None = None) -> dict[str, dict]:
        """The records of ``kind`` for ``keys`` (None: all) that the layout holds."""
        import msgspec

        want = None if keys is None else set(map(str, keys))
        out: dict[str, dict] = {}
        for p in self._parts(RECORDS, kind):
            t = self._read(p, ["key", "data", "crc"])
            if t is None:
                continue
            for k, b, c in zip(t.column("key").to_pylist(), t.column("data").to_pylist(),
                               t.column("crc").to_pylist()):
                if k in out or (want is not None and k not in want):
                    continue
                try:
                    if _crc(b) != c:
                        raise ValueError("crc")
                    out[k] = msgspec.json.decode(b)
                except (ValueError, msgspec.DecodeError):
                    with self._lock:
                        self.n_corrupt += 1
        return out

    # ---------------------------------------------------------------------------- upkeep
    def info(self) -> "list[dict]":
        """One dict per (table, name): parts, entries, distinct keys (entries - keys = copies
        that :meth:`compact` would remove)."""
        rows = []
        for table in (VECTORS, RECORDS):
            for name in self.names(table):
                n, keys = 0, set()
                parts = self._parts(table, name)
                for p in parts:
                    t = self._read(p, ["key"])
                    if t is not None:
                        ks = t.column("key").to_pylist()
                        n += len(ks)
                        keys.update(ks)
                rows.append({"table": table, "name": name, "parts": len(parts),
                             "entries": n, "keys": len(keys)})
        return rows

    def compact(self, table: str, name: str, *, rows_per_part: int = EXPORT_PART_ROWS) -> int:
        """Rewrite the parts of ``name`` as few parts without repeated keys; returns the
        number of parts removed. Safe to run while nothing writes ``name``."""
        old = self._parts(table, name)
        if len(old) <= 1:
            return 0
        if table == VECTORS:
            keys, vecs = self.get_vectors(name)
            new = [self.put_vectors(name, keys[i:i + rows_per_part], vecs[i:i + rows_per_part])
                   for i in range(0, len(keys), rows_per_part)]
        else:
            recs = self.get_records(name)
            items = list(recs.items())
            new = [self.put_records(name, dict(items[i:i + rows_per_part]))
                   for i in range(0, len(items), rows_per_part)]
        removed = 0
        for p in old:
            if p not in new:
                self.fs.rm(p)
                removed += 1
        return removed


# -------------------------------------------------------------------------- the local store
def import_into_store(layout: ClusterLayout, store, *, model: str | None = None,
                      kind: str | None = None, keys: Sequence[str] | None = None) -> dict:
    """Copy into the local SQLite ``store`` what ``layout`` holds and the store lacks: the
    vectors of ``model`` and/or the records of ``kind`` (neither: everything), only ``keys``
    when given. Returns ``{name: entries imported}``."""
    done: dict[str, int] = {}
    models = [model] if model else ([] if kind else layout.names(VECTORS))
    kinds = [kind] if kind else ([] if model else layout.names(RECORDS))
    for m in models:
        ks, vecs = layout.get_vectors(m, keys)
        if not ks:
            continue
        found, _ = store.get_vectors(m, ks)
        new = np.flatnonzero(~found)
        if len(new):
            for s in range(0, len(new), EXPORT_PART_ROWS):
                idx = new[s:s + EXPORT_PART_ROWS]
                store.put_vectors(m, [ks[i] for i in idx], vecs[idx])
        done[m] = int(len(new))
    for k in kinds:
        recs = layout.get_records(k, keys)
        have = store.get_records(k, list(recs)) if recs else {}
        new = {key: r for key, r in recs.items() if key not in have}
        if new:
            store.put_records(k, new)
        done[k] = len(new)
    return done


def export_from_store(store, layout: ClusterLayout, *, model: str | None = None,
                      kind: str | None = None) -> dict:
    """Copy into ``layout`` what the local ``store`` holds and the layout lacks (the vectors
    of ``model`` and/or the records of ``kind``; neither: everything). Returns
    ``{name: entries exported}``."""
    done: dict[str, int] = {}
    models = [model] if model else ([] if kind else store.vector_models())
    kinds = [kind] if kind else ([] if model else store.record_kinds())
    for m in models:
        have = layout.keys(VECTORS, m)
        todo = [k for k in store.vector_keys(m) if k not in have]
        for s in range(0, len(todo), EXPORT_PART_ROWS):
            chunk = todo[s:s + EXPORT_PART_ROWS]
            found, vecs = store.get_vectors(m, chunk)
            if vecs is not None:
                layout.put_vectors(m, [k for k, f in zip(chunk, found) if f], vecs[found])
        done[m] = len(todo)
    for k in kinds:
        have = layout.keys(RECORDS, k)
        todo = [key for key in store.record_keys(k) if key not in have]
        for s in range(0, len(todo), EXPORT_PART_ROWS):
            layout.put_records(k, store.get_records(k, todo[s:s + EXPORT_PART_ROWS]))
        done[k] = len(todo)
    return done
