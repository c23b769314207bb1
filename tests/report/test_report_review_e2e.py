"""The real review store and the real report together: decisions change the report's counts."""

from __future__ import annotations

import pytest

import qa
from qa.analyses import run_analyses
from qa.report import build_report
from qa.review import build_queue, record_decision
from qa.review.store import ReviewStore
from tests.conftest import SAMPLE


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'review.sqlite'}"
    monkeypatch.setenv("DATASET_QA_DB", url)
    return ReviewStore(url)


def test_dismissed_file_findings_leave_the_reports_fail_status(store):
    ds = qa.load(SAMPLE)
    run = run_analyses(ds, only=["validation", "balance"], embeddings="skip")
    before = build_report(run, thumbnails=0).check("missing_or_corrupt_files")
    assert before.status == "fail" and before.value == 2            # PLANTED: ids 53 and 97

    queue = build_queue(ds, run.findings(), store=store)
    files = queue[(queue["analysis"] == "validation") & queue["image_id"].isin([53, 97])
                  & (queue["severity"] == "error")]
    assert set(files["image_id"]) == {53, 97}
    for i, (_, item) in enumerate(files.drop_duplicates("item_key").iterrows()):
        record_decision(item, "not_an_issue", reviewer=("dana", "eve")[i % 2], store=store,
                        dataset_name=ds.name)

    after = build_report(run, thumbnails=0)
    check = after.check("missing_or_corrupt_files")
    assert check.status == "pass" and check.value == 0
    assert check.n_dismissed >= 2
    assert after.review["available"] and after.review["n_dismissed"] >= 2
    assert set(after.review["by"]) == {"dana", "eve"}


def test_nobody_reviewed_yet_no_finding_is_keyed(store, monkeypatch):
    """Issue 22: keying every finding (a million boxes at 50k x 3) is only needed to apply
    decisions; with an empty decisions database the report skips it and says none."""
    import qa.review.queue as queue_module

    def no_keys(*a, **k):
        raise AssertionError("item keys computed with no decision to apply")

    monkeypatch.setattr(queue_module, "item_keys", no_keys)
    run = run_analyses(qa.load(SAMPLE), only=["validation"], embeddings="skip")
    r = build_report(run, thumbnails=0)
    assert r.review == {"available": True, "n_dismissed": 0, "by": {}}
    assert r.check("missing_or_corrupt_files").status == "fail"
