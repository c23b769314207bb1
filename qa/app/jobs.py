"""Long first computations of the dashboard, in background threads, with progress.

A page that needs a slow result (every analysis for the health report and the review queue,
agreement on a million boxes) calls :func:`wait_for`: the computation runs in a thread of its
own, one per key in the server process, and the page shows what is being computed and how far
until it is done. The thread does not belong to the page's script run: when the user opens
another page meanwhile, Streamlit stops the script, the computation goes on, and the page
shows its result when the user comes back (or another session asks for the same key and
waits for the same thread instead of starting a second one).

A job's function gets a ``progress(fraction, message)`` callback (the signature of qa's
``progress=`` arguments) and must not call Streamlit: it runs outside any script. Its result is
not kept here: functions keep what they compute in the dataset's memo (:mod:`qa.memo`), so a
job that finished while nobody waited is instant the next time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

import streamlit as st

# Below this a computation shows no progress bar at all (no flash on a fast page).
QUIET_S = 0.3
# How often the progress bar is redrawn while waiting.
POLL_S = 0.25

_JOBS: dict[Hashable, Job] = {}
_LOCK = threading.Lock()


class Job:
    """One computation in a daemon thread: ``fraction`` and ``message`` while it runs; ``done``
    is set when it has finished, with ``value`` or ``error``."""

    def __init__(self, key: Hashable, title: str, fn: Callable[[Callable], Any]) -> None:
        self.key, self.title, self._fn = key, title, fn
        self.fraction, self.message = 0.0, "starting"
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"qa-job: {title}", daemon=True)

    def progress(self, fraction: float, message: str = "") -> None:
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        if message:
            self.message = message

    def _run(self) -> None:
        try:
            self.value = self._fn(self.progress)
        except BaseException as exc:  # handed to whoever waits, not lost in the thread
            self.error = exc
        finally:
            with _LOCK:
                if _JOBS.get(self.key) is self:
                    del _JOBS[self.key]
            self.done.set()

    def text(self) -> str:
        return f"{self.title}: {self.message} ({self.fraction:.0%})"


def start(key: Hashable, title: str, fn: Callable[[Callable], Any]) -> Job:
    """The running job of ``key``, or a new one started with ``fn(progress)``."""
    with _LOCK:
        job = _JOBS.get(key)
        if job is None:
            job = _JOBS[key] = Job(key, title, fn)
            job.thread.start()
    return job


def _note(job: Job) -> str:
    """What else runs for the same dataset (a warm-up this job may be waiting for)."""
    same = [j for j in running() if j is not job and isinstance(j.key, tuple)
            and isinstance(job.key, tuple) and j.key[:1] == job.key[:1]]
    also = "".join(f"  \nAlso running: {j.text()}" for j in same)
    return ("Computed once per dataset, in the background: you can read another page "
            "meanwhile and come back." + also)


def running() -> list[Job]:
    """The jobs running now (for a status line)."""
    with _LOCK:
        return list(_JOBS.values())


def wait_for(key: Hashable, title: str, fn: Callable[[Callable], Any]) -> Any:
    """``fn(progress)``'s value, computed in the background (see the module docstring); a
    progress bar says what is being computed and how far while the page waits. Exceptions of
    ``fn`` are raised here."""
    job = start(key, title, fn)
    if not job.done.wait(QUIET_S):
        holder = st.empty()
        with holder.container():
            bar = st.progress(job.fraction, text=job.text())
            note = st.empty()
        while not job.done.wait(POLL_S):
            bar.progress(job.fraction, text=job.text())  # a stop or rerun request lands here
            note.caption(_note(job))
        holder.empty()
    if job.error is not None:
        raise job.error
    return job.value


__all__ = ["Job", "running", "start", "wait_for"]
