"""qa.app.jobs: one background thread per key, its progress, its errors handed to the page."""

from __future__ import annotations

import threading

import pytest

from qa.app import jobs


def test_one_thread_per_key_and_the_value_for_every_waiter():
    gate, calls = threading.Event(), []

    def slow(progress):
        calls.append(1)
        progress(0.5, "half way")
        gate.wait(5)
        return 42

    a = jobs.start(("test-jobs", 1), "Testing", slow)
    b = jobs.start(("test-jobs", 1), "Testing", slow)
    assert a is b and a in jobs.running()
    while a.fraction < 0.5:
        pass
    assert a.text() == "Testing: half way (50%)"
    gate.set()
    a.done.wait(5)
    assert a.value == 42 and calls == [1]
    assert a not in jobs.running()  # finished jobs leave; their result lives in qa.memo


def test_wait_for_raises_the_jobs_error():
    def broken(progress):
        raise ValueError("the model has no predictions for this reference")

    with pytest.raises(ValueError, match="no predictions for this reference"):
        jobs.wait_for(("test-jobs", 2), "Testing", broken)
