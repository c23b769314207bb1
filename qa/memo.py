"""Results kept for the lifetime of one Dataset object, for a long-lived process (the app).

A script (the CLI, a test) computes each analysis once and needs no memory of it. The
dashboard shows the same analyses on many pages, over many reruns, to many sessions: the
health report, the review queue and the disagreement page need the same disagreement result,
whose consensus reference is the agreement page's result. The app opts a loaded dataset in
with :func:`share_results`; from then on :func:`remembered` computes each keyed value once for
that Dataset object, even when two threads ask at the same time (the second waits for the
first), and returns the same object to every caller (results are frozen dataclasses of
DataFrames, which analyses and pages never modify). Without the opt-in, :func:`remembered`
simply computes: nothing changes for scripts and tests. The memory goes with the Dataset.

``memo.computed`` counts computations by the first element of each key, so a test can
check that a rerun or a second page computed nothing.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

# Values kept per kind (the first element of a key) before the least recently used goes: a
# page's slider can ask for a result per threshold, each of them large at scale (an agreement
# result of a million boxes is a few hundred MB). "analysis" holds one per analysis and mode.
KEEP_PER_KIND = 4
KEEP = {"analysis": 32, "run_inputs": 3}

_MEMOS: dict[int, DatasetMemo] = {}
_MEMOS_LOCK = threading.Lock()


class DatasetMemo:
    """Values computed once per key (thread-safe; a failed computation is not kept)."""

    def __init__(self) -> None:
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.computed: Counter = Counter()
        #: bumped by :meth:`discard`: callers that cache something derived from the values
        #: (the review queue) key it with the generation.
        self.generation = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value of ``key``, computing it with ``compute()`` the first time."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one computation per key; others wait for it
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = compute()
            kind = _kind(key)
            with self._lock:
                self._values[key] = value
                self.computed[kind] += 1
                same = [k for k in self._values if _kind(k) == kind]
                for old in same[:max(len(same) - KEEP.get(kind, KEEP_PER_KIND), 0)]:
                    del self._values[old]  # least recently used first
                self._locks.pop(key, None)
        return value

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The value of ``key`` if it was computed, else ``default`` (computes nothing)."""
        with self._lock:
            return self._values.get(key, default)

    def discard(self, predicate: Callable[[Hashable], bool]) -> int:
        """Forget the values whose key matches ``predicate`` (e.g. what depended on embeddings
        that have just been computed); returns how many."""
        with self._lock:
            gone = [k for k in self._values if predicate(k)]
            for k in gone:
                del self._values[k]
            self.generation += 1
        return len(gone)


def _kind(key: Hashable) -> Hashable:
    return key[0] if isinstance(key, tuple) and key else key


def share_results(dataset) -> DatasetMemo:
    """Opt ``dataset`` in: from now on :func:`remembered` keeps its results (until the Dataset
    object is garbage-collected). Returns its memo; calling again returns the same one."""
    with _MEMOS_LOCK:
        memo = _MEMOS.get(id(dataset))
        if memo is None:
            memo = _MEMOS[id(dataset)] = DatasetMemo()
            weakref.finalize(dataset, _forget, id(dataset), memo)
    return memo


def _forget(key: int, memo: DatasetMemo) -> None:
    with _MEMOS_LOCK:
        if _MEMOS.get(key) is memo:
            del _MEMOS[key]


@contextlib.contextmanager
def sharing(dataset):
    """Within this block ``dataset`` shares its results (a run of every analysis: the
    disagreement's consensus is the agreement analysis' result); an opt-in made here ends
    with the block, one made before (the app's) stays."""
    if memo_of(dataset) is not None:
        yield memo_of(dataset)
        return
    memo = share_results(dataset)
    try:
        yield memo
    finally:
        _forget(id(dataset), memo)


def memo_of(dataset) -> DatasetMemo | None:
    """The memo of an opted-in ``dataset``, else None."""
    return _MEMOS.get(id(dataset))


def remembered(dataset, key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()``, kept under ``key`` when ``dataset`` has opted in (:func:`share_results`)."""
    memo = memo_of(dataset)
    return compute() if memo is None else memo.get(key, compute)


__all__ = ["DatasetMemo", "memo_of", "remembered", "share_results", "sharing"]
