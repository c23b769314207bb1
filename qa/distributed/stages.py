"""What runs on a cluster's nodes: the Ray Data ``map_batches`` stages of the pixel pass and
of the embeddings. Each stage calls the same per-image function as the single-process path
(:func:`qa.imagestats.image_record`, :func:`qa.embeddings._preparer`,
:meth:`qa.embeddings.LoadedModel.encode`), so the figures are the same to float tolerance.

Each stage writes what it computed to the cluster layout (one part per batch, named by its
keys: a batch retried after a node died rewrites the same part) and returns it to the driver,
which keeps it in the local store. Batches travel as columns of plain types (bytes for arrays)
so that a failed image (no pixels) never breaks a tensor column's shape.

Imported by Ray workers by module name: every node needs dataset-qa installed (the same code:
:func:`check_code` compares a fingerprint of the modules that compute figures).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# The modules whose code decides a figure: a node running other code would write other
# numbers under the same keys.
_FIGURE_MODULES = ("qa.images", "qa.paths", "qa.imagestats", "qa.embeddings",
                   "qa.distributed.stages")


def code_fingerprint() -> str:
    """A digest of this installation's figure-making modules (see :data:`_FIGURE_MODULES`)."""
    import importlib

    h = hashlib.sha256()
    for name in _FIGURE_MODULES:
        mod = importlib.import_module(name)
        h.update(name.encode())
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


_CHECKED: set[str] = set()


def check_code(expected: str) -> None:
    """Refuse to compute on a node whose dataset-qa differs from the driver's."""
    if expected in _CHECKED:
        return
    mine = code_fingerprint()
    if mine != expected:
        raise RuntimeError(
            f"node {socket.gethostname()} runs different dataset-qa code (fingerprint {mine}, "
            f"the driver's is {expected}): install the same dataset-qa version on every node")
    _CHECKED.add(expected)


def _col(batch, name) -> list:
    v = batch[name]
    return v.tolist() if hasattr(v, "tolist") else list(v)


# ------------------------------------------------------------------------------ hashing
def hash_batch(batch: dict, *, root: str, fingerprint: str) -> dict:
    """SHA-256 of each file (``i``, ``file``) under ``root``: columns i, sha256, error."""
    check_code(fingerprint)
    from qa.images import _reason, sha256_file

    rroot = Path(os.path.realpath(root))
    shas, errs = [], []
    for name in _col(batch, "file"):
        try:
            shas.append(sha256_file(rroot, name, real_root=rroot))
            errs.append("")
        except Exception as exc:
            shas.append("")
            errs.append(_reason(exc))
    return {"i": np.asarray(batch["i"], np.int64), "sha256": np.array(shas, dtype=object),
            "error": np.array(errs, dtype=object)}


# ------------------------------------------------------------------------------ pixel pass
def records_batch(batch: dict, *, root: str, kind: str, layout: str,
                  fingerprint: str) -> dict:
    """The pixel-pass record of each image (``i``, ``key`` = its SHA-256, ``file``): written
    to the layout as one part, returned as JSON bytes (columns i, data)."""
    check_code(fingerprint)
    import msgspec

    from qa.distributed.layout import ClusterLayout
    from qa.imagestats import image_record

    keys = _col(batch, "key")
    recs = {k: image_record(root, name) for k, name in zip(keys, _col(batch, "file"))}
    ClusterLayout(layout).put_records(kind, recs)
    return {"i": np.asarray(batch["i"], np.int64),
            "data": np.array([msgspec.json.encode(recs[k]) for k in keys], dtype=object)}


# ------------------------------------------------------------------------------ embeddings
def decode_batch(batch: dict, *, root: str, spec, fingerprint: str) -> dict:
    """Read and preprocess each image (or crop: columns x0, y0, x1, y1, -1 for a whole
    image) on a CPU task: columns i, key, pixels (bytes), shape, dtype, error."""
    check_code(fingerprint)
    from qa.embeddings import _preparer, preprocessor

    keys = _col(batch, "key")
    names = _col(batch, "file")
    boxes = np.stack([np.asarray(batch[c], np.int64) for c in ("x0", "y0", "x1", "y1")], 1)
    crop_of = {k: tuple(int(v) for v in b) for k, b in zip(keys, boxes) if b[0] >= 0}
    prepare = _preparer(preprocessor(spec), root, dict(zip(keys, names)), crop_of)
    pixels, shapes, dtypes, errs = [], [], [], []
    for k in keys:
        arr, err = prepare(k)
        if arr is None:
            pixels.append(b"")
            shapes.append("")
            dtypes.append("")
            errs.append(err or "not a readable image")
        else:
            arr = np.ascontiguousarray(arr)
            pixels.append(arr.tobytes())
            shapes.append(",".join(map(str, arr.shape)))
            dtypes.append(arr.dtype.str)
            errs.append("")
    return {"i": np.asarray(batch["i"], np.int64), "key": np.array(keys, dtype=object),
            "pixels": np.array(pixels, dtype=object), "shape": np.array(shapes, dtype=object),
            "dtype": np.array(dtypes, dtype=object), "error": np.array(errs, dtype=object)}


class Embedder:
    """The model in an actor (one model per actor, loaded once): encodes the decoded
    batches, writes the vectors (and the decode errors) to the layout, returns columns i, key,
    vector (float32 bytes), error."""

    def __init__(self, *, spec, device: str, layout: str, fingerprint: str,
                 error_kind: str):
        check_code(fingerprint)
        from qa.distributed.layout import ClusterLayout
        from qa.embeddings import load_model

        self.loaded = load_model(spec, device=device)
        self.layout = ClusterLayout(layout)
        self.model_id = spec.model_id
        self.error_kind = error_kind

    def __call__(self, batch: dict) -> dict:
        keys = _col(batch, "key")
        errs = _col(batch, "error")
        ok = [j for j, e in enumerate(errs) if not e]
        vectors = [b""] * len(keys)
        if ok:
            arrays = [np.frombuffer(batch["pixels"][j], dtype=np.dtype(batch["dtype"][j]))
                      .reshape([int(s) for s in str(batch["shape"][j]).split(",")]) for j in ok]
            out = self.loaded.encode(np.stack(arrays))
            self.layout.put_vectors(self.model_id, [keys[j] for j in ok], out)
            for j, v in zip(ok, out):
                vectors[j] = np.ascontiguousarray(v, np.float32).tobytes()
        bad = {keys[j]: {"reason": e} for j, e in enumerate(errs) if e}
        if bad:
            self.layout.put_records(self.error_kind, bad)
        return {"i": np.asarray(batch["i"], np.int64), "key": np.array(keys, dtype=object),
                "vector": np.array(vectors, dtype=object), "error": np.array(errs, dtype=object)}
