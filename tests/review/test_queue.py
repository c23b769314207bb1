"""The queue and mark_findings: decisions found again, dismissed items stay dismissed, edited
evidence re-opens its item; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import qa
from qa.results import FINDINGS_SCHEMA, findings_frame
from qa.review import (
    build_queue,
    filter_queue,
    mark_findings,
    queue_progress,
    record_decision,
    reviewer_counts,
)
from tests.conftest import SAMPLE, coco_doc, write_jpeg


def _ds(root: Path, x_of_box_11: float = 30.0, with_split: bool = True):
    if not (root / "images" / "a.jpg").exists():
        for k, name in enumerate(["a.jpg", "b.jpg", "c.jpg"]):
            write_jpeg(root / "images" / name, seed=k)
    doc = coco_doc([(1, "a.jpg", 64, 48), (2, "b.jpg", 64, 48), (3, "c.jpg", 64, 48)],
                   [(10, 1, 1, (1, 2, 20, 10)), (11, 1, 2, (x_of_box_11, 5, 10, 30)),
                    (12, 2, 1, (0, 0, 64, 48))])
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(doc))
    return qa.load(root)


FINDINGS = findings_frame([
    {"analysis": "disagreement", "kind": "label_error", "severity": "warning", "score": 0.9,
     "image_id": 1, "ann_ids": (11,), "category_id": 2, "annotator": "annotator",
     "message": "box 11 looks like a cat"},
    {"analysis": "quality", "kind": "blurry", "severity": "info", "score": 0.4, "image_id": 2,
     "message": "image 2 is blurry"},
    {"analysis": "validation", "kind": "box_outside_image", "severity": "error", "score": 1.0,
     "image_id": 1, "ann_ids": (10,), "category_id": 1, "message": "box 10 is outside"},
    {"analysis": "balance", "kind": "rare_class", "severity": "warning", "score": 0.2,
     "category_id": 2, "message": "dog is rare"},
], page="review")


def test_mark_findings_adds_the_contract_columns(tmp_path, review_store):
    ds = _ds(tmp_path)
    f = FINDINGS.set_axis([7, 8, 9, 10])
    m = mark_findings(ds, f, store=review_store)
    assert list(m.index) == [7, 8, 9, 10]
    assert list(m.columns[:len(FINDINGS_SCHEMA)]) == list(FINDINGS_SCHEMA)
    assert {"item_key", "status", "decided_by"} <= set(m.columns)
    assert (m["status"] == "open").all() and m["decided_by"].isna().all()
    pd.testing.assert_frame_equal(m[list(FINDINGS_SCHEMA)], f)  # findings untouched


def test_decisions_are_found_again_after_reload(tmp_path, review_store):
    ds = _ds(tmp_path)
    q = build_queue(ds, FINDINGS, store=review_store)
    assert q["severity"].tolist()[:1] == ["error"]  # open items, worst first
    blurry = q[q["kind"] == "blurry"].iloc[0]
    err = q[q["kind"] == "box_outside_image"].iloc[0]
    record_decision(blurry, "not_an_issue", reviewer="ann", note="it's motion, intended",
                    store=review_store)
    record_decision(err, "confirmed", reviewer="bob", store=review_store)
    ds_again = _ds(tmp_path)  # a reload
    m = mark_findings(ds_again, FINDINGS, store=review_store).set_index("kind")
    assert m.loc["blurry", "status"] == "not_an_issue"
    assert m.loc["blurry", "decided_by"] == "ann"
    assert m.loc["blurry", "note"] == "it's motion, intended"
    assert m.loc["box_outside_image", "status"] == "confirmed"
    assert m.loc["label_error", "status"] == "open"
    assert pd.notna(m.loc["blurry", "decided_at"])
    q = build_queue(ds_again, FINDINGS, store=review_store)
    assert q["status"].tolist()[:2] == ["open", "open"]  # decided items go last
    assert queue_progress(q) == {"total": 4, "reviewed": 2, "open": 2, "by_status": {
        "open": 2, "confirmed": 1, "not_an_issue": 1, "fixed": 0}}
    rc = reviewer_counts(q)
    assert rc.to_dict("records") == [
        {"reviewer": "ann", "confirmed": 0, "not_an_issue": 1, "fixed": 0, "total": 1},
        {"reviewer": "bob", "confirmed": 1, "not_an_issue": 0, "fixed": 0, "total": 1}]


def test_report_summary_drops_dismissed_items(tmp_path, review_store):
    from qa.review import review_summary, without_dismissed

    ds = _ds(tmp_path)
    q = build_queue(ds, FINDINGS, store=review_store).set_index("kind")
    record_decision(q.loc["blurry"], "not_an_issue", reviewer="ann", store=review_store)
    record_decision(q.loc["rare_class"], "not_an_issue", reviewer="bob", store=review_store)
    record_decision(q.loc["label_error"], "confirmed", reviewer="bob", store=review_store)
    m = mark_findings(ds, FINDINGS, store=review_store)
    assert review_summary(m) == {"items": 4, "open": 1, "confirmed": 1, "not_an_issue": 2,
                                 "fixed": 0, "reopened": 0,
                                 "dismissed_by": {"ann": 1, "bob": 1}}
    assert sorted(without_dismissed(m)["kind"]) == ["box_outside_image", "label_error"]
    with pytest.raises(ValueError, match="needs mark_findings"):
        review_summary(FINDINGS)


def test_edited_box_reopens_its_item(tmp_path, review_store):
    ds = _ds(tmp_path)
    q = build_queue(ds, FINDINGS, store=review_store)
    item = q[q["kind"] == "label_error"].iloc[0]
    record_decision(item, "not_an_issue", reviewer="ann", store=review_store)
    other = q[q["kind"] == "box_outside_image"].iloc[0]
    record_decision(other, "fixed", reviewer="ann", store=review_store)
    edited = _ds(tmp_path, x_of_box_11=30.4)  # same whole-pixel box: same key, new evidence
    m = mark_findings(edited, FINDINGS, store=review_store).set_index("kind")
    assert m.loc["label_error", "item_key"] == item["item_key"]
    assert m.loc["label_error", "status"] == "open" and m.loc["label_error", "reopened"]
    assert m.loc["box_outside_image", "status"] == "fixed"  # untouched evidence stays decided
    # deciding again on the new evidence closes it again
    record_decision(build_queue(edited, FINDINGS, store=review_store).set_index("kind")
                    .loc["label_error"], "confirmed", reviewer="cat", store=review_store)
    m = mark_findings(edited, FINDINGS, store=review_store).set_index("kind")
    assert m.loc["label_error", "status"] == "confirmed" and not m.loc["label_error", "reopened"]


def test_reopen_decision_is_an_undo(tmp_path, review_store):
    ds = _ds(tmp_path)
    q = build_queue(ds, FINDINGS, store=review_store)
    record_decision(q.iloc[0], "fixed", reviewer="ann", store=review_store)
    record_decision(q.iloc[0], "open", reviewer="ann", store=review_store)
    q2 = build_queue(ds, FINDINGS, store=review_store)
    assert (q2["status"] == "open").all()
    assert len(review_store.history(q.iloc[0]["item_key"])) == 2


def test_filters_and_queue_columns(tmp_path, review_store):
    ds = _ds(tmp_path)
    q = build_queue(ds, FINDINGS, store=review_store)
    assert set(q.columns) >= {"split", "file_name", "class_name", "item_key", "status"}
    assert q.set_index("kind").loc["blurry", "file_name"] == "b.jpg"
    assert filter_queue(q, kinds=["blurry"])["image_id"].tolist() == [2]
    assert filter_queue(q, classes=["dog"])["kind"].tolist() == ["label_error", "rare_class"]
    assert len(filter_queue(q, statuses=["open"])) == 4
    assert len(filter_queue(q, annotators=["annotator"])) == 1
    assert len(filter_queue(q, image_ids=[1])) == 2
    assert len(filter_queue(q, kinds=[], classes=None)) == 4


def test_empty_findings_give_an_empty_queue(tmp_path, review_store):
    q = build_queue(_ds(tmp_path), findings_frame(), store=review_store)
    assert len(q) == 0 and "status" in q.columns
    assert queue_progress(q)["total"] == 0 and len(reviewer_counts(q)) == 0


def test_default_store_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASET_QA_DB", f"sqlite:///{tmp_path / 'env.sqlite'}")
    ds = _ds(tmp_path)
    q = build_queue(ds, FINDINGS)
    record_decision(q.iloc[0], "confirmed", reviewer="env")
    assert (mark_findings(ds, FINDINGS)["decided_by"] == "env").sum() == 1
    assert (tmp_path / "env.sqlite").exists()


def test_queue_over_every_landed_analysis_on_sample_data(tmp_path):
    """End to end: run_analyses on sample_data; every finding becomes an item, generically,
    and the planted missing/corrupt files are in it."""
    from qa.review import ReviewStore, collect_findings

    ds = qa.load(SAMPLE)
    findings = collect_findings(ds, embeddings="skip")
    q = build_queue(ds, findings, store=ReviewStore(f"sqlite:///{tmp_path / 'r.sqlite'}"))
    assert len(q) == len(findings) and set(q["analysis"]) == set(findings["analysis"])
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())
    kinds = q.set_index("image_id")["kind"]
    assert "missing_file" in kinds[kinds.index == planted["missing_file"]["image_id"]].tolist()
    assert "unreadable_file" in kinds[kinds.index == planted["corrupt_file"]["image_id"]].tolist()
    assert q["item_key"].notna().all() and (q["status"] == "open").all()


def test_identical_copies_share_one_item_shown_once(tmp_path, review_store):
    """Two byte-identical images with the same boxes and the same finding have one item key:
    the reviewer sees the item once, with the copy named, and one decision settles both."""
    from qa.review import one_per_item

    write_jpeg(tmp_path / "images" / "a.jpg", seed=0)
    (tmp_path / "images" / "b.jpg").write_bytes((tmp_path / "images" / "a.jpg").read_bytes())
    write_jpeg(tmp_path / "images" / "c.jpg", seed=2)
    doc = coco_doc([(1, "a.jpg", 64, 48), (2, "b.jpg", 64, 48), (3, "c.jpg", 64, 48)], [])
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances.json").write_text(json.dumps(doc))
    ds = qa.load(tmp_path)
    findings = findings_frame([
        {"analysis": "quality", "kind": "blurry", "severity": "info", "score": 0.5,
         "image_id": i, "message": f"image {i} is blurry"} for i in (1, 2, 3)], page="quality")
    q = build_queue(ds, findings, store=review_store, open_first=False)
    assert len(q) == 3 and q["item_key"].nunique() == 2
    shown = one_per_item(q)
    assert shown["image_id"].tolist() == [1, 3]
    assert shown["same_as"].tolist() == [[2], []]
    assert len(shown) == queue_progress(q)["total"] == 2
    assert len(one_per_item(filter_queue(q, image_ids=[2]))) == 1  # a link to the copy works
    record_decision(shown.iloc[0], "not_an_issue", reviewer="ann", store=review_store)
    m = mark_findings(ds, findings, store=review_store).set_index("image_id")
    assert m["status"].to_dict() == {1: "not_an_issue", 2: "not_an_issue", 3: "open"}
    assert one_per_item(q.iloc[:0]).empty
