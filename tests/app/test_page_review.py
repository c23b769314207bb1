"""The Review page with AppTest on sample_data: decide with the buttons, the decisions land
in the database; filters, navigation and a deep link work."""

from __future__ import annotations

import re

import pytest

import qa
from qa.review import ReviewStore
from tests.app.pagetest import run_page, texts
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def sample():
    return qa.load(SAMPLE)


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'review.sqlite'}"
    monkeypatch.setenv("DATASET_QA_DB", url)
    return ReviewStore(url)


def _button(at, key):
    return next(b for b in at.button if b.key == key)


def test_review_page_records_decisions(sample, db):
    at = run_page("review", sample, "review-sample")
    assert not at.exception, at.exception
    assert at.title[0].value == "Review"
    assert any("Enter your name" in w.value for w in at.warning)
    assert _button(at, "rv_do_confirmed").disabled
    assert "Item **1** of" in texts(at)
    at.text_input(key="qa_reviewer").set_value("tester").run()
    first = at.session_state["rv_pos"]
    at.text_input(key="rv_note").set_value("clearly wrong").run()
    _button(at, "rv_do_confirmed").click().run()
    assert not at.exception, at.exception
    assert at.session_state["rv_pos"] == first + 1  # moved on to the next item
    _button(at, "rv_do_not_an_issue").click().run()
    h = db.history()
    assert h["status"].tolist() == ["confirmed", "not_an_issue"]
    assert h["reviewer"].tolist() == ["tester", "tester"]
    assert h["note"].tolist() == ["clearly wrong", None]
    assert h["fingerprint"].notna().all() and h["image_sha"].notna().all()
    # every analysis' findings are queued: the landed ones alone give 281 items on the sample
    reviewed = re.search(r"2 of (\d+) items reviewed", str(at.get("progress")[0].proto))
    assert reviewed and int(reviewed.group(1)) >= 281
    shown = re.search(r"Item \*\*\d+\*\* of \*\*(\d+)\*\*", texts(at))
    assert shown and shown.group(1) == reviewed.group(1)  # copies of an image count once
    # the status filter shows the decided items; navigation stays in range
    at.multiselect(key="rv_statuss").set_value(["confirmed"]).run()
    assert "Item **1** of **1**" in texts(at)
    assert _button(at, "rv_next").disabled and _button(at, "rv_prev").disabled
    at.multiselect(key="rv_statuss").set_value([]).run()
    assert at.session_state["rv_pos"] == 0 and not at.exception  # clamped to the filter
    _button(at, "rv_next").click().run()
    _button(at, "rv_next").click().run()
    _button(at, "rv_prev").click().run()
    assert at.session_state["rv_pos"] == 1
    reviewers = at.table[0].value
    assert reviewers.to_dict("records") == [
        {"reviewer": "tester", "confirmed": 1, "not_an_issue": 1, "fixed": 0, "total": 2}]


def test_deep_link_shows_only_that_image(sample, db):
    at = run_page("review", sample, "review-link")
    at.query_params["image_id"] = "53"
    at.query_params["kind"] = "missing_file"
    at.run()
    assert not at.exception, at.exception
    assert "linked image" in texts(at)
    assert "Item **1** of **1**" in texts(at)
    assert "missing_file" in texts(at)


def test_unreachable_database_is_explained(sample, monkeypatch):
    monkeypatch.setenv("DATASET_QA_DB", "postgresql://u:secret@127.0.0.1:9/db")
    at = run_page("review", sample, "review-nodb")
    assert not at.exception, at.exception
    msg = " ".join(e.value for e in at.error)
    assert "cannot open the decisions database" in msg and "secret" not in msg
