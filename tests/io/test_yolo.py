from __future__ import annotations

import numpy as np
import pytest
from writers import make_image, write_yolo

from qa.dataset import CATEGORY_ID, FILE_NAME, IMAGE_ID, SPLIT, DatasetError, H, W, X, Y
from qa.io import read_labels, sniff_format
from qa.io.yolo import label_path, read

SPEC = {
    "images": [
        {"file_name": "a.jpg", "width": 100, "height": 50, "split": "train"},
        {"file_name": "b.png", "width": 40, "height": 40, "split": "val"},
        {"file_name": "empty.jpg", "width": 30, "height": 20, "split": "train"},
    ],
    "categories": ["cat", "dog"],
    "annotations": [
        {"file_name": "a.jpg", "label": "dog", "bbox": [10, 5, 20, 10]},
        {"file_name": "b.png", "label": "cat", "bbox": [0, 0, 40, 40]},
        {"file_name": "b.png", "label": "dog", "bbox": [4, 8, 12, 16]},
    ],
}


def _issues(ds, check=None):
    li = ds.load_issues
    return li if check is None else li[li["check"] == check]


def test_yaml_dataset_boxes_classes_splits_and_empty_images(tmp_path):
    root = write_yolo(tmp_path / "y", SPEC, names_as_dict=True)
    ds = read(root / "data.yaml")
    assert ds.format == "yolo" and ds.root == root and ds.annotators == ("annotator",)
    assert ds.category_names == {0: "cat", 1: "dog"}  # ids are the YOLO class indices
    imgs = ds.images.set_index(FILE_NAME)
    assert list(imgs.index) == ["images/train/a.jpg", "images/train/empty.jpg",
                                "images/val/b.png"]
    assert imgs[SPLIT].astype(str).tolist() == ["train", "train", "val"]
    assert imgs["width"].tolist() == [100, 30, 40]
    a = ds.annotations.merge(ds.images[[IMAGE_ID, FILE_NAME]], on=IMAGE_ID)
    got = a.sort_values([FILE_NAME, CATEGORY_ID])[[FILE_NAME, CATEGORY_ID, X, Y, W, H]]
    np.testing.assert_allclose(got[[X, Y, W, H]].to_numpy(),
                               [[10, 5, 20, 10], [0, 0, 40, 40], [4, 8, 12, 16]], atol=1e-3)
    assert got[CATEGORY_ID].tolist() == [1, 0, 1]
    assert ds.annotations["ann_id"].tolist() == [1, 2, 3]
    # the empty image is an image with no objects
    empty_id = imgs.loc["images/train/empty.jpg", IMAGE_ID]
    assert not (ds.annotations[IMAGE_ID] == empty_id).any()
    assert _issues(ds).empty


def test_folder_without_yaml_uses_classes_txt(tmp_path):
    root = write_yolo(tmp_path / "y", SPEC, yaml=False, empty_label_files=True)
    assert sniff_format(root) == "yolo"
    ds = read(root)
    assert ds.category_names == {0: "class_0", 1: "class_1"}
    (root / "classes.txt").write_text("cat\ndog\n")
    ds = read_labels(root)
    assert ds.category_names == {0: "cat", 1: "dog"}
    assert set(ds.images[SPLIT].astype(str)) == {"train", "val"}
    assert len(ds.annotations) == 3 and ds.load_issues.empty


def test_path_key_and_txt_list_resolved_relative_to_yaml(tmp_path):
    data = write_yolo(tmp_path / "ds", SPEC, yaml=False)
    (data / "train.txt").write_text("./images/train/a.jpg\nimages/train/empty.jpg\n")
    cfgdir = tmp_path / "cfg"
    cfgdir.mkdir()
    (cfgdir / "data.yaml").write_text(
        "path: ../ds\ntrain: train.txt\nval: [images/val]\nnames: [cat, dog]\n")
    ds = read(cfgdir / "data.yaml")
    assert ds.root.resolve() == data.resolve()
    assert sorted(ds.images[FILE_NAME]) == ["images/train/a.jpg", "images/train/empty.jpg",
                                            "images/val/b.png"]
    assert len(ds.annotations) == 3


def test_malformed_lines_are_quarantined_with_file_and_line(tmp_path):
    root = write_yolo(tmp_path / "y", SPEC)
    lp = root / "labels" / "train" / "a.txt"
    lp.write_text("1 0.2 0.2 0.2 0.2\n0 0.5 0.5\n1 x 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1 0.9\n"
                  "7 0.5 0.5 0.1 0.1\n")
    ds = read(root)
    assert (ds.annotations[IMAGE_ID] == 1).sum() == 1  # only the good line
    msgs = ds.load_issues["message"].tolist()
    assert any(f"{lp}:2:" in m and "5 fields" in m for m in msgs)
    assert any(f"{lp}:3:" in m and "non-numeric" in m for m in msgs)
    assert any(f"{lp}:4:" in m and "predictions file" in m for m in msgs)
    assert any(f"{lp}:5:" in m and "class 7" in m for m in msgs)
    assert set(ds.load_issues["severity"]) == {"error"}
    assert set(_issues(ds, "prediction_in_labels")["image_id"]) == {1}


def test_label_without_image_and_unreadable_image(tmp_path):
    root = write_yolo(tmp_path / "y", SPEC)
    orphan = root / "labels" / "train" / "ghost.txt"
    orphan.write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "images" / "val" / "b.png").write_bytes(b"not an image")
    ds = read(root)
    msg = _issues(ds, "label_without_image")["message"].tolist()
    assert len(msg) == 1 and str(orphan) in msg[0]
    bad = _issues(ds, "unknown_image_size")["message"].tolist()
    assert len(bad) == 1 and "b.txt" in bad[0]
    assert len(ds.annotations) == 1


def test_polygon_lines_give_bbox_and_segmentation(tmp_path):
    root = tmp_path / "y"
    make_image(root / "images" / "p.jpg", 10, 20)
    (root / "labels").mkdir()
    (root / "labels" / "p.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.6\n")
    ds = read(root)
    r = ds.annotations.iloc[0]
    assert (r[X], r[Y], r[W], r[H]) == pytest.approx((1, 2, 4, 10))
    assert r["segmentation"] == [[1.0, 2.0, 5.0, 2.0, 5.0, 12.0]]


@pytest.mark.parametrize("text, match", [
    ("names: [a\n", "malformed YAML at line"),
    ("- 1\n- 2\n", "expected a YOLO data.yaml mapping"),
    ("names: [a]\n", "no 'train', 'val' or 'test'"),
    ("train: images\nnames: 5\n", "'names' must be a list"),
])
def test_bad_yaml_raises_dataset_error(tmp_path, text, match):
    (tmp_path / "images").mkdir()
    (tmp_path / "data.yaml").write_text(text)
    with pytest.raises(DatasetError, match=match):
        read(tmp_path / "data.yaml")


def test_missing_split_folder_is_an_issue(tmp_path):
    root = write_yolo(tmp_path / "y", SPEC)
    (root / "data.yaml").write_text("train: images/train\ntest: images/nope\nnames: [c, d]\n")
    ds = read(root)
    assert "images/nope" in _issues(ds, "missing_split")["message"].iloc[0]
    assert len(ds.images) == 2


def test_label_path_replaces_last_images_component(tmp_path):
    p = tmp_path / "images" / "x" / "images" / "train" / "a.jpg"
    assert label_path(p) == tmp_path / "images" / "x" / "labels" / "train" / "a.txt"


def test_yolo_images_are_read_once(tmp_path, monkeypatch):
    """The YOLO reader probes the headers it needs; load() must not read them again."""
    import qa
    import qa.io._common as common
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for k in range(3):
        Image.new("RGB", (40, 20)).save(tmp_path / "images" / f"{k}.png")
        (tmp_path / "labels" / f"{k}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    calls = []
    real = common._probe_one
    monkeypatch.setattr(common, "_probe_one", lambda *a, **k: calls.append(a) or real(*a, **k))
    ds = qa.load(tmp_path)
    assert len(calls) == 3
    assert ds.images["readable"].all() and ds.images["width"].tolist() == [40, 40, 40]
