"""ReviewQueue: the queue is built once and decisions are applied to it. It must show what
build_queue + one_per_item show, and a decision must never rebuild it (item keys, every
item's decision, the order): at 200k findings a rebuild is a minute per click."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import qa
import qa.review.queue as queue_mod
from qa.results import findings_frame
from qa.review import ReviewStore, build_queue, filter_queue, one_per_item, queue_progress
from qa.review.queue import ReviewQueue
from tests.conftest import coco_doc, write_jpeg
from tests.review.test_queue import FINDINGS, _ds


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal frames; decided_at compared as instants (pandas picks us or ns by content)."""
    a = a.assign(decided_at=a["decided_at"].astype("datetime64[ns, UTC]"))
    b = b.assign(decided_at=b["decided_at"].astype("datetime64[ns, UTC]"))
    pd.testing.assert_frame_equal(a, b)


@pytest.fixture
def copies(tmp_path):
    """a.jpg and b.jpg byte-identical (one item key for the same finding), c.jpg distinct."""
    write_jpeg(tmp_path / "images" / "a.jpg", seed=0)
    (tmp_path / "images" / "b.jpg").write_bytes((tmp_path / "images" / "a.jpg").read_bytes())
    write_jpeg(tmp_path / "images" / "c.jpg", seed=2)
    doc = coco_doc([(1, "a.jpg", 64, 48), (2, "b.jpg", 64, 48), (3, "c.jpg", 64, 48)], [])
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances.json").write_text(json.dumps(doc))
    ds = qa.load(tmp_path)
    findings = findings_frame([
        {"analysis": "quality", "kind": "blurry", "severity": "info", "score": 0.5 + i / 10,
         "image_id": i, "message": f"image {i} is blurry"} for i in (1, 2, 3)], page="quality")
    return ds, findings


def test_queue_shows_what_build_queue_shows(tmp_path, review_store):
    ds = _ds(tmp_path)
    q = ReviewQueue(ds, FINDINGS, store=review_store)
    ref = build_queue(ds, FINDINGS, store=review_store, open_first=False)
    _same(q.table(), ref)
    _same(q.items(), one_per_item(ref).drop(columns="same_as"))
    assert q.progress() == queue_progress(ref)
    for flt in ({"kinds": ["blurry"]}, {"statuses": ["open"]}, {"image_ids": [1]},
                {"classes": ["dog"]}):
        _same(q.items(**flt), one_per_item(filter_queue(ref, **flt)).drop(columns="same_as"))
    assert q.options["kind"] == sorted(ref["kind"].unique())


def test_identical_copies_are_one_item_with_their_copies_named(copies, review_store):
    ds, findings = copies
    q = ReviewQueue(ds, findings, store=review_store)
    ref = one_per_item(build_queue(ds, findings, store=review_store, open_first=False))
    assert q.n_items == len(ref) == 2 and len(q) == 3
    assert [q.copies_of(r) for r in q.items().to_dict("records")] == ref["same_as"].tolist()
    assert len(q.items(image_ids=[2])) == 1  # a link to the copy finds the item


def test_a_decision_is_applied_without_rebuilding(tmp_path, review_store, monkeypatch):
    ds = _ds(tmp_path)
    q = ReviewQueue(ds, FINDINGS, store=review_store)
    calls = {"build_queue": 0, "item_keys": 0, "current_of_all": 0}

    def counting(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(queue_mod, "build_queue", counting("build_queue", queue_mod.build_queue))
    monkeypatch.setattr(queue_mod, "item_keys", counting("item_keys", queue_mod.item_keys))
    current = review_store.current

    def current_counting(keys=None):
        if keys is None or len(list(keys)) > 1:
            calls["current_of_all"] += 1
        return current(keys)

    monkeypatch.setattr(review_store, "current", current_counting)
    items = q.items()
    q.record(items.iloc[0], "confirmed", reviewer="ann", note="wrong class")
    q.record(items.iloc[1], "not_an_issue", reviewer="bob")
    assert not q.refresh()  # our own decisions: nothing to reload
    assert calls == {"build_queue": 0, "item_keys": 0, "current_of_all": 0}
    assert q.version == 2
    monkeypatch.undo()
    after = q.items()
    assert after["status"].tolist()[:2] == ["confirmed", "not_an_issue"]
    assert after["decided_by"].tolist()[:2] == ["ann", "bob"]
    assert after.loc[0, "note"] == "wrong class"
    _same(q.table(), build_queue(ds, FINDINGS, store=review_store, open_first=False))
    assert q.items(statuses=["confirmed"])["item_key"].tolist() == [items.iloc[0]["item_key"]]


def test_a_decision_on_one_copy_settles_the_other(copies, review_store):
    ds, findings = copies
    q = ReviewQueue(ds, findings, store=review_store)
    q.record(q.items(image_ids=[2]).iloc[0], "fixed", reviewer="ann")
    t = q.table().set_index("image_id")
    assert t["status"].to_dict() == {1: "fixed", 2: "fixed", 3: "open"}
    assert q.progress()["by_status"]["fixed"] == 1


def test_refresh_reads_decisions_made_elsewhere(tmp_path, review_url):
    ds = _ds(tmp_path)
    mine, other = ReviewStore(review_url), ReviewStore(review_url)  # two processes' views
    try:
        q = ReviewQueue(ds, FINDINGS, store=mine)
        item = q.items().iloc[2]
        other.decide(item["item_key"], "confirmed", reviewer="zoe",
                     fingerprint=item["fingerprint"])
        assert q.items().iloc[2]["status"] == "open"  # not seen until refreshed
        assert q.refresh() and not q.refresh()
        assert q.items().iloc[2]["status"] == "confirmed"
        assert q.items().iloc[2]["decided_by"] == "zoe"
        _same(q.table(), build_queue(ds, FINDINGS, store=mine, open_first=False))
    finally:
        mine.close()
        other.close()


def test_changed_evidence_reopens_on_refresh(tmp_path, review_store):
    """A decision made on other evidence (another fingerprint) leaves the item open and
    flagged re-opened, as mark_findings does."""
    ds = _ds(tmp_path)
    q = ReviewQueue(ds, FINDINGS, store=review_store)
    item = q.items().iloc[0]
    review_store.decide(item["item_key"], "confirmed", reviewer="ann", fingerprint="0" * 64)
    assert q.refresh()
    row = q.items().iloc[0]
    assert row["status"] == "open" and row["reopened"]
    _same(q.table(), build_queue(ds, FINDINGS, store=review_store, open_first=False))
