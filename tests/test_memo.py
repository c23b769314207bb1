"""qa.memo: what the app computes once per dataset and shares (issue 22). Counted calls, not
timings: the agreement behind the disagreement consensus is the agreement page's, and a
second run of every analysis (the review queue after the health report) computes nothing."""

from __future__ import annotations

import gc
import threading
import time

import pytest

import qa
import qa.agreement
import qa.disagreement
from qa import memo
from qa.analyses import run_analyses
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def sample_path():
    return SAMPLE


def _load(path):
    return qa.load(path, predictions=path / "predictions" / "detector.json")


def _counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapped(*a, **k):
        calls.append(name)
        return original(*a, **k)

    monkeypatch.setattr(module, name, wrapped)
    return calls


class _Thing:  # any object that can be weakly referenced stands in for a Dataset
    pass


def test_without_opt_in_every_call_computes():
    thing, n = _Thing(), []
    for _ in range(2):
        memo.remembered(thing, ("x",), lambda: n.append(1))
    assert len(n) == 2 and memo.memo_of(thing) is None


def test_opted_in_computes_once_even_from_two_threads():
    thing, n = _Thing(), []
    m = memo.share_results(thing)
    assert memo.share_results(thing) is m

    def slow():
        n.append(1)
        time.sleep(0.2)
        return object()

    out = []
    threads = [threading.Thread(target=lambda: out.append(memo.remembered(thing, ("k", 1), slow)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(n) == 1 and out[0] is out[1] is out[2]
    assert m.computed["k"] == 1


def test_a_failure_is_not_kept_and_old_values_make_room():
    thing = _Thing()
    m = memo.share_results(thing)

    def boom():
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        m.get(("a", 0), boom)
    assert m.get(("a", 0), lambda: 7) == 7
    for i in range(1, memo.KEEP_PER_KIND + 2):
        m.get(("a", i), lambda i=i: i)
    assert ("a", 0) not in m and ("a", 1) not in m  # least recently used first
    assert ("a", memo.KEEP_PER_KIND + 1) in m
    assert m.discard(lambda k: k[0] == "a") == memo.KEEP_PER_KIND
    assert m.generation == 1


def test_the_memo_goes_with_its_dataset():
    thing = _Thing()
    memo.share_results(thing)
    key = id(thing)
    del thing
    gc.collect()
    assert key not in memo._MEMOS


def test_consensus_reference_reuses_the_agreement_result(sample_path, monkeypatch):
    ds = _load(sample_path)
    memo.share_results(ds)
    calls = _counting(monkeypatch, qa.agreement, "_compute_boxes")
    ag = qa.agreement.compute_agreement(ds)
    res = qa.disagreement.compute_disagreement(ds, reference="consensus")
    assert qa.agreement.compute_agreement(ds) is ag
    assert calls == ["_compute_boxes"] and len(res.flags)
    qa.agreement.compute_agreement(ds, iou_threshold=0.7)  # other settings: computed
    assert calls == ["_compute_boxes"] * 2


def test_a_second_run_of_every_analysis_computes_nothing(sample_path, monkeypatch):
    """The health report and the review queue run every analysis: once per dataset."""
    import qa.analyses

    ds = _load(sample_path)
    memo.share_results(ds)
    ran = []
    resolve = qa.analyses.resolve_runner

    def counting_resolve(name):
        runner = resolve(name)
        return lambda d, ctx: ran.append(name) or runner(d, ctx)

    monkeypatch.setattr(qa.analyses, "resolve_runner", counting_resolve)
    first = run_analyses(ds, embeddings="skip")
    n = len(ran)
    assert n == len(qa.analyses.RUNNERS)
    second = run_analyses(ds, embeddings="skip")
    assert len(ran) == n  # nothing ran again
    assert second.results["disagreement"] is first.results["disagreement"]
    assert second.skipped == first.skipped and second.seconds == first.seconds
    run_analyses(ds, embeddings="cached", only=["validation"])  # another mode: computed
    assert len(ran) == n + 1
    # a dataset that did not opt in (a script, the CLI) computes every time
    plain = _load(sample_path)
    run_analyses(plain, embeddings="skip", only=["balance"])
    run_analyses(plain, embeddings="skip", only=["balance"])
    assert ran[-2:] == ["balance", "balance"]


def test_one_run_shares_the_agreement_without_the_app(sample_path, monkeypatch):
    """A script's run (the CLI's report): the consensus reuses the agreement analysis' result
    within the run, and nothing is kept after it."""
    ds = _load(sample_path)
    calls = _counting(monkeypatch, qa.agreement, "_compute_boxes")
    run = run_analyses(ds, embeddings="skip", only=["agreement", "disagreement"])
    assert set(run.results) == {"agreement", "disagreement"}
    assert calls == ["_compute_boxes"]
    assert memo.memo_of(ds) is None
