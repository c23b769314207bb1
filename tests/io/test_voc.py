from __future__ import annotations

import pytest
from writers import write_voc

from qa.dataset import FILE_NAME, SPLIT, DatasetError, H, W, X, Y
from qa.io import read_labels, sniff_format
from qa.io.voc import read

SPEC = {
    "images": [
        {"file_name": "a.jpg", "width": 100, "height": 50, "split": "train"},
        {"file_name": "b.jpg", "width": 40, "height": 40, "split": "val"},
        {"file_name": "empty.jpg", "width": 30, "height": 20},
    ],
    "categories": ["cat", "dog"],
    "annotations": [
        {"file_name": "a.jpg", "label": "dog", "bbox": [0, 0, 10, 5], "difficult": 1},
        {"file_name": "b.jpg", "label": "cat", "bbox": [4, 8, 12, 16], "truncated": 1},
    ],
}


def test_voc_boxes_are_converted_from_one_based_inclusive(tmp_path):
    root = write_voc(tmp_path / "VOC", SPEC)
    assert sniff_format(root) == "voc"
    ds = read_labels(root)
    assert ds.format == "voc" and ds.root == root
    assert ds.category_names == {1: "cat", 2: "dog"}
    imgs = ds.images.set_index(FILE_NAME)
    assert list(imgs.index) == ["JPEGImages/a.jpg", "JPEGImages/b.jpg", "JPEGImages/empty.jpg"]
    assert imgs[SPLIT].astype(object).tolist()[:2] == ["train", "val"]
    assert imgs[SPLIT].isna().tolist() == [False, False, True]
    assert imgs["width"].tolist() == [100, 40, 30]
    a = ds.annotations.sort_values("image_id")
    # xmin=1, xmax=10 covers 10 pixels starting at 0
    assert a[[X, Y, W, H]].to_numpy().tolist() == [[0, 0, 10, 5], [4, 8, 12, 16]]
    assert a["difficult"].tolist() == [1, 0] and a["truncated"].tolist() == [0, 1]
    assert str(a["difficult"].dtype) == "int64"
    assert ds.load_issues.empty


def test_voc_missing_bndbox_values_are_quarantined(tmp_path):
    root = write_voc(tmp_path / "VOC", SPEC)
    f = root / "Annotations" / "a.xml"
    f.write_text(
        "<annotation><filename>a.jpg</filename><size><width>10</width><height>10</height>"
        "</size><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
        "</bndbox></object><object><name>dog</name></object>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>a</xmax>"
        "<ymax>3</ymax></bndbox></object>"
        "<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox>"
        "</object></annotation>")
    ds = read(root)
    msgs = ds.load_issues["message"].tolist()
    assert len(msgs) == 4 and all(str(f) in m for m in msgs)
    assert "object 0 (cat)" in msgs[0] and "<ymax>" in msgs[0]
    assert "object 1 (dog) has no <bndbox>" in msgs[1]
    assert "<xmax> ('a')" in msgs[2]
    assert "has no <name>" in msgs[3]
    assert len(ds.annotations) == 1  # b.jpg's box


def test_voc_malformed_xml_raises_with_position(tmp_path):
    root = write_voc(tmp_path / "VOC", SPEC)
    (root / "Annotations" / "b.xml").write_text("<annotation>\n<object></annotation>")
    with pytest.raises(DatasetError, match=r"b\.xml: malformed XML at line 2"):
        read(root)


def test_voc_wrong_root_and_single_file(tmp_path):
    root = write_voc(tmp_path / "VOC", SPEC)
    ds = read(root / "Annotations" / "b.xml")
    assert ds.root == root and len(ds.images) == 1
    (root / "Annotations" / "x.xml").write_text("<annotations/>")
    with pytest.raises(DatasetError, match=r"x\.xml: expected a VOC <annotation>"):
        read(root)
    with pytest.raises(DatasetError, match=r"no VOC XML files in Annotations/.*sub-folder `VOC/` "
                                           "holds a voc dataset"):
        read(tmp_path)


def test_voc_filename_without_extension_is_found(tmp_path):
    root = write_voc(tmp_path / "VOC", SPEC)
    (root / "JPEGImages" / "b.png").write_bytes(b"")
    f = root / "Annotations" / "b.xml"
    f.write_text(f.read_text().replace("<filename>b.jpg</filename>", "<filename>b</filename>"))
    assert "JPEGImages/b.png" in read(root).images[FILE_NAME].tolist()
