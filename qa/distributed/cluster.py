"""Connecting to a Ray cluster and running the per-image work there.

:func:`connect` joins a cluster (``"auto"``: the one started on this machine with ``ray start``
or named by ``RAY_ADDRESS``; ``"host:port"``; ``"local"``: a one-machine Ray inside this
process). :class:`ClusterRun` is what :func:`qa.embeddings.embed_images`,
:func:`qa.embeddings.embed_objects`, :func:`qa.imagestats.compute_image_stats` and
:meth:`qa.store.Store.hash_files` call when given ``ray=``: it first takes from the cluster
layout what is already there (a second run computes nothing; an interrupted run resumes),
then runs the rest as Ray Data stages:

* hashing and the pixel pass: ``map_batches`` CPU tasks;
* embeddings: decoding on CPU tasks, then the model in an actor pool (one model per actor,
  ``num_gpus=1`` per actor where the cluster has GPUs), streamed back batch by batch.

The connection is made on first use, so a run that finds everything stored never contacts
the cluster.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'dataset-qa[ray]'"
# Rows per block handed to a task: big enough that Ray's per-task cost (~10 ms) is small next
# to the work (a 640 px JPEG decodes in ~5 ms, embeds in ~50 ms on a CPU core), small enough
# that a lost node costs little to redo and that every node gets blocks.
BLOCK_ROWS = 64
# Blocks per CPU of the cluster at least, so that the work spreads over the nodes.
BLOCKS_PER_CPU = 2
# CPUs per model actor on a CPU-only cluster (its torch threads); the rest decode.
ACTOR_CPUS = 1
# Share of a CPU-only cluster's CPUs given to model actors (the rest decode and hash). The
# rest is also what lets a run survive a lost node: the actors restart on the other nodes and
# the lost decode outputs are recomputed there, which needs free CPUs beside the actors.
MODEL_CPU_SHARE = 0.5
# Memory a decode task asks for: a batch of 32 decoded 12 MP photos reduced to 512 px, with
# room. It also keeps Ray from fusing decoding into the model actors (different resources):
# decoding stays on CPU tasks that scale apart from the models.
DECODE_TASK_MEMORY = 256 * 2 ** 20
# A run that returns no batch for this long is given up (a cluster that lost so many nodes
# that the model actors cannot be placed waits forever otherwise).
STALL_TIMEOUT_S = float(os.environ.get("QA_RAY_STALL_TIMEOUT", 900))
# Subfolder of the cache folder used as the layout when none is given.
DEFAULT_LAYOUT_DIR = "cluster"


class ClusterError(RuntimeError):
    """No cluster could be reached, or it failed in a way that is not one image's fault."""


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"running on a Ray cluster needs Ray Data: {INSTALL_HINT} ({exc})") \
            from None
    return ray


def connect(address: str = "auto") -> dict:
    """Join the Ray cluster at ``address`` ("auto", "host:port", "ray://host:port" or
    "local"), once per process; returns its resources (``{"CPU": 4.0, "GPU": 0, "nodes": 2,
    "hosts": 1}``). Raises :class:`ClusterError` with the fix when none can be reached."""
    ray = _import_ray()
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"ray must be 'auto', 'local' or a cluster address host:port, got "
                         f"{address!r}")
    if not ray.is_initialized():
        kwargs = dict(logging_level=logging.WARNING, log_to_driver=False,
                      configure_logging=True)
        try:
            if address == "local":
                ray.init(**kwargs)
            else:
                ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise ClusterError(
                f"no Ray cluster at {address!r} ({str(exc).splitlines()[0][:160]}): start one "
                "with `ray start --head` (and `ray start --address HEAD:PORT` on the other "
                "machines), give its address, or use 'local' for one on this machine") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.verbose_stats_logs = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    res = ray.cluster_resources()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return {"CPU": float(res.get("CPU", 0)), "GPU": float(res.get("GPU", 0)),
            "nodes": len(alive), "hosts": len({n.get("NodeManagerAddress") for n in alive})}


def default_layout_uri() -> str:
    """``$DATASET_QA_CACHE/cluster`` (a folder on this machine; a cluster of several machines
    needs a location all of them reach: give ``layout=`` / ``--layout``)."""
    from qa.store import cache_dir

    return str(cache_dir() / DEFAULT_LAYOUT_DIR)


@dataclass
class ClusterRun:
    """The per-image work of one call, on the cluster at ``address``, with results kept in
    ``layout`` (a :class:`~qa.distributed.layout.ClusterLayout`)."""

    address: str
    layout: object
    n_imported: int = 0  # entries taken from the layout instead of computed
    n_remote: int = 0  # entries computed on the cluster by this run
    resources: dict | None = None
    _notes: list = field(default_factory=list)

    # ------------------------------------------------------------------------ plumbing
    def _connect(self) -> dict:
        if self.resources is None:
            self.resources = connect(self.address)
            if self.resources["hosts"] > 1 and self.layout.is_local:
                self._notes.append(
                    f"the cluster spans {self.resources['hosts']} machines but the layout "
                    f"{self.layout.uri} is a folder on each: give a location they all reach "
                    "(--layout s3://... or a shared mount) to keep one copy of the results")
        return self.resources

    def notes(self) -> list[str]:
        """Sentences for a person: what came from the layout, what the cluster computed."""
        out = list(self._notes)
        if self.n_imported or self.n_remote:
            out.append(f"cluster {self.address}: {self.n_remote:,} computed on the cluster, "
                       f"{self.n_imported:,} taken from the layout {self.layout.uri}")
        return out

    def _blocks(self, n: int) -> int:
        cpus = max(1.0, self._connect()["CPU"])
        return max(1, min(math.ceil(n / 4), max(math.ceil(n / BLOCK_ROWS),
                                                int(cpus * BLOCKS_PER_CPU))))

    def _dataset(self, frame: pd.DataFrame):
        """A Ray Dataset of ``frame``'s rows in about :meth:`_blocks` blocks."""
        import ray

        k = self._blocks(len(frame))
        step = math.ceil(len(frame) / k)
        parts = [frame.iloc[s:s + step].reset_index(drop=True) for s in range(0, len(frame), step)]
        return ray.data.from_pandas(parts)

    @staticmethod
    def _fingerprint() -> str:
        from qa.distributed.stages import code_fingerprint

        return code_fingerprint()

    def _stream(self, ds) -> Iterator[dict]:
        """The output batches of ``ds`` as they complete (any order). Ray's errors, and a run
        that makes no progress for :data:`STALL_TIMEOUT_S`, become one :class:`ClusterError`
        saying what failed; what was finished is in the layout either way."""
        import queue
        import threading

        q: queue.Queue = queue.Queue(maxsize=4)
        end = object()

        def pump():
            try:
                for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    q.put(b)
                q.put(end)
            except BaseException as exc:  # handed to the consumer
                q.put(exc)

        threading.Thread(target=pump, name="qa-ray-results", daemon=True).start()
        while True:
            try:
                got = q.get(timeout=STALL_TIMEOUT_S)
            except queue.Empty:
                raise ClusterError(
                    f"the cluster made no progress for {STALL_TIMEOUT_S:.0f} s (nodes lost, "
                    "or too few CPUs/GPUs left for the model actors and the decoding: see "
                    "`ray status`); what was finished is kept in the layout and a re-run "
                    "resumes") from None
            if got is end:
                return
            if isinstance(got, BaseException):
                msg = str(got).strip().splitlines()
                first = next((line for line in msg if "Error" in line), msg[0] if msg else "")
                raise ClusterError(f"the cluster run failed ({type(got).__name__}: "
                                   f"{first[:300]}); what was finished is kept in the layout "
                                   "and a re-run resumes") from got
            yield got

    # ------------------------------------------------------------------------ hashing
    def hash_files(self, root, names: Sequence[str],
                   progress: Callable[[int, int], None] | None = None
                   ) -> list[tuple[str | None, str | None]]:
        """(sha256, error) of each of ``names`` under ``root``, hashed on the cluster (the
        files must be at the same path on every node)."""
        from qa.distributed.stages import hash_batch

        names = [str(n) for n in names]
        frame = pd.DataFrame({"i": np.arange(len(names), dtype=np.int64), "file": names})
        ds = self._dataset(frame).map_batches(
            hash_batch, fn_kwargs={"root": str(root), "fingerprint": self._fingerprint()},
            batch_size=None, batch_format="numpy", num_cpus=1)
        out: list = [None] * len(names)
        done = 0
        for b in self._stream(ds):
            for i, s, e in zip(b["i"].tolist(), b["sha256"].tolist(), b["error"].tolist()):
                out[i] = (s or None, e or None)
            done += len(b["i"])
            if progress is not None:
                progress(done, len(names))
        return out

    # ------------------------------------------------------------------------ pixel pass
    def image_records(self, root, names: Sequence[str], keys: Sequence[str],
                      kind: str) -> list[dict]:
        """The pixel-pass record (``kind``) of each image, aligned with ``keys`` (their
        SHA-256): from the layout where it has them, the rest computed on the cluster."""
        import msgspec

        from qa.distributed.stages import records_batch

        keys = [str(k) for k in keys]
        have = self.layout.get_records(kind, keys)
        self.n_imported += len(have)
        todo = [j for j, k in enumerate(keys) if k not in have]
        if todo:
            frame = pd.DataFrame({"i": np.asarray(todo, np.int64),
                                  "key": [keys[j] for j in todo],
                                  "file": [str(names[j]) for j in todo]})
            ds = self._dataset(frame).map_batches(
                records_batch, fn_kwargs={"root": str(root), "kind": kind,
                                          "layout": self.layout.uri,
                                          "fingerprint": self._fingerprint()},
                batch_size=None, batch_format="numpy", num_cpus=1)
            for b in self._stream(ds):
                for i, data in zip(b["i"].tolist(), b["data"].tolist()):
                    have[keys[i]] = msgspec.json.decode(data)
                self.n_remote += len(b["i"])
        return [have[k] for k in keys]

    # ------------------------------------------------------------------------ embeddings
    def vectors(self, spec, root, todo: Sequence[str], first_name: dict,
                crop_of: dict | None, *, batch_size: int, device: str = "auto"
                ) -> Iterator[tuple[list[str], np.ndarray, dict[str, str]]]:
        """(keys, (b, d) vectors, {key: decode error}) batches for the keys of ``todo``: the
        layout's first, then those the cluster computes, as they complete."""
        from qa.embeddings import ERROR_KIND

        todo = [str(k) for k in todo]
        got, arr = self.layout.get_vectors(spec.model_id, todo)
        if got:
            self.n_imported += len(got)
            yield got, arr, {}
        known = self.layout.get_records(ERROR_KIND, [k for k in todo if k not in set(got)])
        if known:
            self.n_imported += len(known)
            yield [], np.zeros((0, 0), np.float32), {k: r.get("reason", "not a readable image")
                                                      for k, r in known.items()}
        done = set(got) | set(known)
        rest = [k for k in todo if k not in done]
        if not rest:
            return
        yield from self._embed(spec, root, rest, first_name, crop_of, batch_size, device)

    def _actor_options(self, device: str) -> dict:
        res = self._connect()
        n_gpus = int(res["GPU"])
        if device.startswith("cuda") or (device == "auto" and n_gpus):
            if not n_gpus:
                raise ClusterError(f"device={device!r} but the cluster has no GPUs")
            return {"num_gpus": 1, "num_cpus": 1, "size": n_gpus}
        n = max(1, int(res["CPU"] * MODEL_CPU_SHARE) // ACTOR_CPUS)
        return {"num_cpus": ACTOR_CPUS, "size": n}

    def _embed(self, spec, root, keys, first_name, crop_of, bs, device):
        from qa.distributed.stages import Embedder, decode_batch
        from qa.embeddings import DEFAULT_BATCH_SIZE, ERROR_KIND, GPU_BATCH_SIZE

        boxes = np.full((len(keys), 4), -1, np.int64)
        for j, k in enumerate(keys):
            box = (crop_of or {}).get(k)
            if box is not None:
                boxes[j] = box
        frame = pd.DataFrame({"i": np.arange(len(keys), dtype=np.int64), "key": keys,
                              "file": [str(first_name[k]) for k in keys],
                              "x0": boxes[:, 0], "y0": boxes[:, 1], "x1": boxes[:, 2],
                              "y1": boxes[:, 3]})
        import ray

        fp = self._fingerprint()
        opts = self._actor_options(device)
        actor_device = "cuda" if opts.get("num_gpus") else "cpu"
        if actor_device == "cuda" and bs == DEFAULT_BATCH_SIZE:
            bs = GPU_BATCH_SIZE  # as the single-process path does on a GPU
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=opts.pop("size"))
        ds = (self._dataset(frame)
              .map_batches(decode_batch, fn_kwargs={"root": str(root), "spec": spec,
                                                    "fingerprint": fp},
                           batch_size=bs, batch_format="numpy", num_cpus=1,
                           memory=DECODE_TASK_MEMORY)
              .map_batches(Embedder, fn_constructor_kwargs={
                  "spec": spec, "device": actor_device, "layout": self.layout.uri,
                  "fingerprint": fp, "error_kind": ERROR_KIND},
                  batch_size=bs, batch_format="numpy", compute=pool, **opts))
        for b in self._stream(ds):
            ks, vecs, errs = [], [], {}
            for k, v, e in zip(b["key"].tolist(), b["vector"].tolist(), b["error"].tolist()):
                if e:
                    errs[k] = e
                else:
                    ks.append(k)
                    vecs.append(np.frombuffer(v, dtype=np.float32))
            self.n_remote += len(ks) + len(errs)
            yield ks, (np.stack(vecs) if vecs else np.zeros((0, 0), np.float32)), errs


def cluster_run(ray: str, *, layout=None) -> ClusterRun:
    """A :class:`ClusterRun` on the cluster ``ray`` ("auto", "local" or an address) keeping
    its results in ``layout`` (a URI, a :class:`ClusterLayout`, or None: the default folder
    under the cache, see :func:`default_layout_uri`)."""
    from qa.distributed.layout import ClusterLayout

    if not isinstance(ray, str) or not ray.strip():
        raise ValueError(f"ray must be 'auto', 'local' or a cluster address host:port, got "
                         f"{ray!r}")
    _import_ray()  # fail early, with the install hint, before any work
    if layout is None:
        layout = default_layout_uri()
    if not isinstance(layout, ClusterLayout):
        layout = ClusterLayout(os.fspath(layout))
    return ClusterRun(address=ray.strip(), layout=layout)
