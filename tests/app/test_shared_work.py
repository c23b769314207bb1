"""Work done once per dataset and shared by the pages (issue 22), counted, not timed: the
health report, the review queue and the disagreement page use one disagreement result (whose
consensus is the agreement page's result); a rerun, a filter or a review decision computes no
analysis again and never rebuilds the review queue."""

from __future__ import annotations

import pytest

import qa
import qa.agreement
import qa.analyses
import qa.review.queue
from tests.app.pagetest import run_page, texts
from tests.conftest import SAMPLE


@pytest.fixture
def counts(monkeypatch, tmp_path):
    """Calls of every analysis runner, of agreement's box computation and of the review
    queue's construction, while the pages run (AppTest runs them in this process)."""
    import time

    from qa.app import jobs

    end = time.monotonic() + 180  # another test's background work must not be counted
    while jobs.running() and time.monotonic() < end:
        time.sleep(0.1)
    monkeypatch.setenv("DATASET_QA_DB", f"sqlite:///{tmp_path / 'review.sqlite'}")
    calls: list[str] = []
    resolve = qa.analyses.resolve_runner

    def counting_resolve(name):
        runner = resolve(name)
        return lambda d, ctx: calls.append(name) or runner(d, ctx)

    boxes = qa.agreement._compute_boxes
    init = qa.review.queue.ReviewQueue.__init__
    monkeypatch.setattr(qa.analyses, "resolve_runner", counting_resolve)
    monkeypatch.setattr(qa.agreement, "_compute_boxes",
                        lambda *a, **k: calls.append("agreement boxes") or boxes(*a, **k))

    def counting_init(self, *a, **k):
        calls.append("queue built")
        return init(self, *a, **k)

    monkeypatch.setattr(qa.review.queue.ReviewQueue, "__init__", counting_init)
    return calls


def _button(at, key):
    return next(b for b in at.button if b.key == key)


def test_pages_share_one_computation_per_dataset(counts):
    ds = qa.load(SAMPLE, predictions=SAMPLE / "predictions" / "detector.json")
    key = "shared-sample"
    at = run_page("report", ds, key)
    assert not at.exception, at.exception
    once = sorted([*qa.analyses.RUNNERS, "agreement boxes"])
    assert sorted(counts) == once  # every analysis once; consensus = agreement's result
    at.multiselect(key="rep_statuses").set_value(["fail"]).run()  # a filter: nothing again
    assert sorted(counts) == once

    at = run_page("review", ds, key)  # the report's findings: no analysis runs again
    assert not at.exception, at.exception
    assert sorted(counts) == sorted(once + ["queue built"])
    at.text_input(key="qa_reviewer").set_value("tester").run()
    first = at.session_state["rv_pos"]
    _button(at, "rv_do_confirmed").click().run()
    _button(at, "rv_do_not_an_issue").click().run()
    assert at.session_state["rv_pos"] == first + 2 and not at.exception
    assert "2 of" in str(at.get("progress")[0].proto)  # both decisions counted
    kinds = at.multiselect(key="rv_kinds").options
    at.multiselect(key="rv_kinds").set_value(kinds[:1]).run()
    at.text_input(key="rv_note").set_value("a note").run()
    assert sorted(counts) == sorted(once + ["queue built"])  # decisions: no rebuild

    def tab(name, label):
        return lambda at: at.session_state.__setitem__(name, label)  # a click on a tab

    for page, clicks in (
            ("disagreement", [lambda at: at.number_input(key="dis_n").set_value(16),
                              tab("dis_tab", "Flags by type and class")]),
            ("agreement", [tab("agr_tab", "Disputed images"), tab("agr_tab", "Confusion")]),
            ("overview", [lambda at: at.selectbox(key="ov_show").set_value(
                "images with validation problems")])):
        at = run_page(page, ds, key)
        assert not at.exception and not at.error, (page, at.exception)
        for click in clicks:
            click(at)
            at.run()
            assert not at.exception, (page, at.exception)
    # the disagreement page at its defaults shows the report's result; agreement and
    # validation are the report's too
    assert sorted(counts) == sorted(once + ["queue built"])


def test_other_settings_compute_their_own_result_once(counts, monkeypatch):
    import qa.disagreement

    compute = qa.disagreement.compute_disagreement
    monkeypatch.setattr(qa.disagreement, "compute_disagreement",
                        lambda *a, **k: counts.append("compute") or compute(*a, **k))
    ds = qa.load(SAMPLE, predictions=SAMPLE / "predictions" / "detector.json")
    at = run_page("disagreement", ds, "shared-settings")
    assert counts.count("compute") == 1
    at.slider(key="dis_conf").set_value(0.7).run()  # an analysis setting: computed ...
    assert counts.count("compute") == 2
    at.slider(key="dis_conf").set_value(0.5).run()  # ... and back: the first result
    at.slider(key="dis_conf").set_value(0.7).run()  # kept too
    at.number_input(key="dis_n").set_value(8).run()  # a gallery size: nothing
    assert not at.exception, at.exception
    assert counts.count("compute") == 2
    assert counts.count("agreement boxes") == 1  # one consensus for every setting
    assert "Flagged images" in " ".join(m.label for m in at.metric)
    assert texts(at)


def _wait_for_jobs(prefix: str, timeout: float = 120.0) -> None:
    import time

    from qa.app import jobs

    end = time.monotonic() + timeout
    while any(j.key[:1] == (prefix,) for j in jobs.running()):
        assert time.monotonic() < end, "the warm-up did not finish"
        time.sleep(0.1)


def test_loading_a_dataset_prepares_the_shared_pages_in_the_background(counts, monkeypatch):
    """The picker starts every analysis, the review queue and the report right after the
    load; the pages then find them done (nothing runs again when they are opened)."""
    from streamlit.testing.v1 import AppTest

    from qa.app import state
    from tests.app.pagetest import ROOT

    from qa.app import picker

    picker._load.clear()  # a Dataset object of its own: its memo starts empty
    monkeypatch.setenv("DATASET_QA_DATASET", str(SAMPLE))
    monkeypatch.setenv("DATASET_QA_WARM_UP", "1")  # the suite turns it off elsewhere
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    key = at.session_state[state.KEY_DATASET_KEY]
    _wait_for_jobs(key)
    once = sorted([*qa.analyses.RUNNERS, "agreement boxes", "queue built"])
    assert sorted(counts) == once
    for page in ("report", "review", "disagreement", "agreement"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception and not at.error, (page, at.exception)
    assert sorted(counts) == once


def test_warm_up_can_be_turned_off(counts, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from qa.app import cached, jobs, picker
    from tests.app.pagetest import ROOT

    picker._load.clear()
    monkeypatch.setenv("DATASET_QA_DATASET", str(SAMPLE))
    monkeypatch.setenv(cached.WARM_UP_ENV, "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert counts == ["validation"]  # the Overview's own validation only
    assert not [j for j in jobs.running() if j.key[1:] == ("warm_up",)]
