"""Decisions move between machines (CSV/JSON export and import), and confirmed label errors
become a Label Studio relabel file that Label Studio's format reader reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa.dataset import DatasetError
from qa.review import ReviewStore, build_queue, mark_findings, record_decision
from qa.review.exchange import (
    dataset_decisions,
    export_decisions,
    import_decisions,
    read_decisions,
    relabel_items,
    relabel_tasks,
    write_relabel_tasks,
)
from tests.review.test_queue import FINDINGS, _ds


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_import_moves_decisions_to_another_store(tmp_path, review_store, fmt):
    ds = _ds(tmp_path)
    q = build_queue(ds, FINDINGS, store=review_store)
    record_decision(q.iloc[0], "confirmed", reviewer="ann", note='says "cat", ok',
                    dataset_name=ds.name, store=review_store)
    record_decision(q.iloc[1], "not_an_issue", reviewer="bob", store=review_store)
    record_decision(q.iloc[1], "fixed", reviewer="bob", note="relabelled\nin CVAT",
                    store=review_store)
    rare = q[q["kind"] == "rare_class"].iloc[0]  # a dataset-level item (no image)
    record_decision(rare, "not_an_issue", reviewer="cat", dataset_name=ds.name,
                    store=review_store)
    out = tmp_path / f"decisions.{fmt}"
    assert export_decisions(out, ds, store=review_store) == 4
    other = ReviewStore(f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert import_decisions(out, store=other) == (4, 0)
    assert import_decisions(out, store=other) == (0, 4)  # idempotent
    a = mark_findings(ds, FINDINGS, store=review_store)
    b = mark_findings(ds, FINDINGS, store=other)
    cols = ["item_key", "status", "decided_by", "note"]
    assert a[cols].equals(b[cols])
    ha, hb = review_store.history(), other.history()
    assert ha["decision_uid"].tolist() == hb["decision_uid"].tolist()
    assert np.allclose(ha["decided_at"], hb["decided_at"], atol=1e-5)
    assert hb["note"].tolist()[0] == 'says "cat", ok'


def test_export_of_a_dataset_leaves_out_other_datasets(tmp_path, review_store):
    ds = _ds(tmp_path / "mine")
    review_store.decide("foreign", "confirmed", reviewer="x",
                        context={"image_sha": "f" * 64, "dataset": "theirs"})
    q = build_queue(ds, FINDINGS, store=review_store)
    record_decision(q.iloc[0], "confirmed", reviewer="ann", store=review_store)
    assert len(dataset_decisions(ds, store=review_store)) == 1
    assert len(dataset_decisions(None, store=review_store)) == 2


def test_bad_decision_files_say_why(tmp_path, review_store):
    p = tmp_path / "x.json"
    p.write_text("{oops")
    with pytest.raises(DatasetError, match="malformed JSON at line 1"):
        read_decisions(p)
    p.write_text('{"format": "something else"}')
    with pytest.raises(DatasetError, match="not a dataset-qa decisions export"):
        read_decisions(p)
    p = tmp_path / "x.csv"
    p.write_text("item_key,status\nk,confirmed\n")
    with pytest.raises(DatasetError, match=r"lack columns \['decided_at', 'decision_uid'"):
        import_decisions(p, store=review_store)
    with pytest.raises(DatasetError, match="cannot read decisions file"):
        read_decisions(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="name it .csv or .json"):
        export_decisions(tmp_path / "out.txt", store=review_store)
    assert not (tmp_path / "out.txt").exists()


def test_relabel_tasks_for_confirmed_label_errors_read_back(tmp_path, review_store):
    from qa.io import labelstudio

    ds = _ds(tmp_path)
    q = build_queue(ds, FINDINGS, store=review_store)
    by_kind = q.set_index("kind")
    record_decision(by_kind.loc["label_error"], "confirmed", reviewer="ann",
                    note="it is a dog", store=review_store)
    record_decision(by_kind.loc["blurry"], "confirmed", reviewer="ann", store=review_store)
    record_decision(by_kind.loc["box_outside_image"], "not_an_issue", reviewer="ann",
                    store=review_store)
    q = build_queue(ds, FINDINGS, store=review_store)
    # only confirmed items with boxes concerned: the blurry image has none
    assert relabel_items(q)["kind"].tolist() == ["label_error"]
    tasks = relabel_tasks(ds, q)
    assert len(tasks) == 1 and tasks[0]["meta"]["notes"] == ["it is a dog"]
    out = tmp_path / "exports" / "relabel.json"
    assert write_relabel_tasks(out, ds, q) == 1
    back = labelstudio.read(out, image_root=ds.root)
    assert back.images["file_name"].tolist() == ["a.jpg"]
    boxes = back.predictions.sort_values("x")[["x", "y", "w", "h"]].to_numpy()
    want = ds.annotations[ds.annotations["image_id"] == 1].sort_values("x")[
        ["x", "y", "w", "h"]].to_numpy()
    assert np.allclose(boxes, want, atol=1e-6)
    names = back.predictions.sort_values("x")["category_id"].map(back.category_names).tolist()
    assert names == ["cat", "dog"]
    assert json.loads(out.read_text())[0]["data"]["image"] == "/data/local-files/?d=a.jpg"
