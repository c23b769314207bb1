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

    for page, control in (("disagreement", ("number_input", "dis_n", 16)),
                          ("agreement", ("number_input", "agr_n_disputed", 8)),
                          ("overview", ("selectbox", "ov_show",
                                        "images with validation problems"))):
        at = run_page(page, ds, key)
        assert not at.exception and not at.error, (page, at.exception)
        kind, wkey, value = control
        getattr(at, kind)(key=wkey).set_value(value).run()
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
