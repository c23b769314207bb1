"""One test per validation check, matching the message a user reads."""

import json

import numpy as np
import pandas as pd
import pytest

import qa
from qa.dataset import Dataset
from tests.conftest import coco_doc, write_jpeg


def _ds(images=None, anns=None, cats=None, **kw):
    images = images if images is not None else pd.DataFrame(
        {"image_id": [1], "file_name": ["a.jpg"], "width": [100], "height": [50]})
    cats = cats if cats is not None else pd.DataFrame({"category_id": [1], "name": ["cat"]})
    anns = anns if anns is not None else pd.DataFrame(
        {"ann_id": [1], "image_id": [1], "category_id": [1], "x": [0], "y": [0], "w": [10],
         "h": [10]})
    return Dataset(images=images, categories=cats, annotations=anns, **kw)


def _box(**kw):
    row = {"ann_id": 1, "image_id": 1, "category_id": 1, "x": 0.0, "y": 0.0, "w": 10.0,
           "h": 10.0}
    row.update(kw)
    return pd.DataFrame([row])


def _only(report, check):
    rows = report.issues[report.issues.check == check]
    assert len(rows) >= 1, report.issues
    return rows


def test_clean_dataset_has_no_issues():
    rep = qa.validate(_ds())
    assert rep.ok and rep.issues.empty and rep.to_dict()["n_errors"] == 0


def test_unknown_category():
    r = _only(qa.validate(_ds(anns=_box(category_id=7))), "unknown_category")
    assert r.severity.iloc[0] == "error" and r.ann_id.iloc[0] == 1
    assert "category_id 7 is not in the categories list" in r.message.iloc[0]


def test_annotation_on_unknown_image():
    r = _only(qa.validate(_ds(anns=_box(image_id=42))), "unknown_image")
    assert "image_id 42 is not in the images list" in r.message.iloc[0]


@pytest.mark.parametrize("w,h", [(0, 5), (5, -1), (np.inf, 5), (np.nan, 5)])
def test_non_positive_or_non_finite_box(w, h):
    r = _only(qa.validate(_ds(anns=_box(w=w, h=h))), "bad_box_size")
    assert "non-positive or non-finite size" in r.message.iloc[0]


def test_image_level_label_is_not_a_bad_box():
    anns = _box(x=np.nan, y=np.nan, w=np.nan, h=np.nan)
    assert qa.validate(_ds(anns=anns)).ok


@pytest.mark.parametrize("x,y,w,h,bad", [
    (0, 0, 100, 50, False),      # exactly the image
    (-1, -1, 101, 51, False),    # within 1 px tolerance
    (-1.5, 0, 10, 10, True),     # left of the image
    (95, 0, 7, 10, True),        # past the right edge by 2 px
    (0, 45, 10, 6.5, True),      # past the bottom
])
def test_box_outside_image_with_tolerance(x, y, w, h, bad):
    rep = qa.validate(_ds(anns=_box(x=x, y=y, w=w, h=h)))
    found = rep.issues[rep.issues.check == "box_outside_image"]
    assert (len(found) == 1) == bad
    if bad:
        assert "lies outside the 100x50 image" in found.message.iloc[0]


def test_duplicate_ids():
    images = pd.DataFrame({"image_id": [1, 1], "file_name": ["a.jpg", "b.jpg"],
                           "width": [10, 10], "height": [10, 10]})
    anns = pd.concat([_box(), _box()], ignore_index=True)
    rep = qa.validate(_ds(images=images, anns=anns))
    r = _only(rep, "duplicate_id")
    assert r.message.str.contains("images: image_id 1 appears more than once").any()
    assert r.message.str.contains("annotations: ann_id 1 appears more than once").any()


def test_missing_corrupt_and_mismatched_files(tmp_path):
    write_jpeg(tmp_path / "ok.jpg", size=(64, 48))
    write_jpeg(tmp_path / "small.jpg", size=(32, 24))
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    doc = coco_doc([(1, "ok.jpg", 64, 48), (2, "gone.jpg", 64, 48), (3, "corrupt.jpg", 64, 48),
                    (4, "small.jpg", 64, 48)], [])
    (tmp_path / "c.json").write_text(json.dumps(doc))
    rep = qa.validate(qa.load(tmp_path / "c.json"))
    m = _only(rep, "missing_file")
    assert m.image_id.tolist() == [2] and "'gone.jpg' is listed but not found" in m.message.iloc[0]
    c = _only(rep, "unreadable_file")
    assert c.image_id.tolist() == [3] and "is not a readable image" in c.message.iloc[0]
    s = _only(rep, "size_mismatch")
    assert s.image_id.tolist() == [4] and "labels say 64x48 but the file" in s.message.iloc[0]
    assert "32x24" in s.message.iloc[0]


def test_path_outside_root_is_never_read(tmp_path):
    secret = tmp_path / "secret.jpg"
    write_jpeg(secret)
    root = tmp_path / "ds"
    root.mkdir()
    (root / "link.jpg").symlink_to(secret)
    doc = coco_doc([(1, "../secret.jpg", 64, 48), (2, "/etc/passwd", 1, 1),
                    (3, "link.jpg", 64, 48)], [])
    (root / "c.json").write_text(json.dumps(doc))
    ds = qa.load(root / "c.json", image_root=root)
    rep = qa.validate(ds)
    unsafe = _only(rep, "unsafe_path")
    # one rule for names and links: both are unsafe paths, neither is opened
    assert sorted(unsafe.image_id.tolist()) == [1, 2, 3]
    assert "resolves outside the dataset root" in unsafe.message.iloc[0]
    assert "symbolic link that leads outside" in unsafe.message.iloc[2]
    assert not ds.images.set_index("image_id").loc[3, "readable"]  # link out of root not opened
    assert ds.image_path(1) is None


def test_annotator_without_annotations():
    rep = qa.validate(_ds(annotators=("alice", "bob"), anns=_box(annotator="alice")))
    r = _only(rep, "empty_annotator")
    assert "annotator 'bob' has no annotations" in r.message.iloc[0]


def test_report_counts_and_severity_order():
    anns = pd.concat([_box(category_id=9), _box(ann_id=2, x=95, w=20)], ignore_index=True)
    rep = qa.validate(_ds(anns=anns))
    assert rep.issues.severity.tolist() == ["error", "warning"]
    assert set(rep.counts().check) == {"unknown_category", "box_outside_image"}
    assert rep.n_errors == 1 and rep.n_warnings == 1


def test_validate_rejects_non_dataset():
    with pytest.raises(TypeError, match="needs a qa.Dataset"):
        qa.validate({"images": []})


def test_long_checks_are_cut_but_counted_exactly(monkeypatch):
    import qa.validation as v

    monkeypatch.setattr(v, "MAX_ROWS_PER_CHECK", 3)
    anns = pd.concat([_box(ann_id=i, category_id=9) for i in range(1, 8)], ignore_index=True)
    rep = qa.validate(_ds(anns=anns))
    rows = rep.issues[rep.issues.check == "unknown_category"]
    assert len(rows) == 4 and rows["count"].tolist() == [1, 1, 1, 4]
    assert "... and 4 more" in rows.message.iloc[-1]
    assert rep.n_errors == 7
    assert rep.counts().set_index("check").loc["unknown_category", "count"] == 7


def test_readable_issues_split_file_item_problem_and_fix():
    """Issue 21: the Overview table cut the messages off; the page shows file, item, problem
    and fix as columns, read whole."""
    from qa.validation import readable_issues

    ds = _ds(anns=_box(w=0, h=5))
    rep = qa.validate(ds)
    t = readable_issues(rep.issues, ds)
    row = t[t["check"] == "bad_box_size"].iloc[0]
    assert row["file"] == "a.jpg" and row["item"] == "annotation 1 (cat)"
    assert "non-positive or non-finite size" in row["problem"]
    assert "'a.jpg'" not in row["problem"] and row["fix"] and row["fix"] not in row["problem"]
    assert list(readable_issues(rep.issues.iloc[:0], ds).columns) == [
        "severity", "check", "file", "item", "problem", "fix"]
