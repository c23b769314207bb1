"""The same boxes written in COCO, VOC, YOLO, Label Studio and CVAT load to the same Dataset:
same images (by file name), same categories (by name), same boxes per image/class/annotator."""

from __future__ import annotations

import posixpath

import numpy as np
import pytest
from writers import only, write_coco, write_cvat, write_labelstudio, write_voc, write_yolo

from qa.dataset import ANNOTATOR, CATEGORY_ID, FILE_NAME, IMAGE_ID, SPLIT, H, W, X, Y
from qa.io import load, read_labels

SPEC = {
    "images": [
        {"file_name": "a.jpg", "width": 64, "height": 48, "split": "train"},
        {"file_name": "b.png", "width": 40, "height": 50, "split": "train"},
        {"file_name": "c.jpg", "width": 32, "height": 32, "split": "val"},
        {"file_name": "empty.jpg", "width": 20, "height": 30, "split": "test"},
    ],
    "categories": ["bird", "cat", "dog"],
    "annotations": [
        {"file_name": "a.jpg", "label": "cat", "bbox": [1, 2, 30, 20], "annotator": "alice"},
        {"file_name": "a.jpg", "label": "dog", "bbox": [10.5, 4.25, 12, 8], "annotator": "alice"},
        {"file_name": "a.jpg", "label": "cat", "bbox": [2, 2, 29, 21], "annotator": "bob"},
        {"file_name": "b.png", "label": "bird", "bbox": [0, 0, 40, 50], "annotator": "alice"},
        {"file_name": "b.png", "label": "bird", "bbox": [0.5, 0, 39, 49], "annotator": "bob"},
        {"file_name": "c.jpg", "label": "dog", "bbox": [5, 6, 7, 8], "annotator": "alice"},
        {"file_name": "c.jpg", "label": "cat", "bbox": [20, 20, 10, 10], "annotator": "alice"},
    ],
}


def canonical(ds, *, annotators: bool = True):
    """Format-free view: images by base name, categories by name, boxes rounded."""
    names = ds.category_names
    fn = dict(zip(ds.images[IMAGE_ID], ds.images[FILE_NAME].map(posixpath.basename)))
    images = {fn[i]: (None if s is None or s != s else str(s))
              for i, s in zip(ds.images[IMAGE_ID], ds.images[SPLIT].astype(object))}
    boxes = sorted(
        (fn[r[IMAGE_ID]], names[r[CATEGORY_ID]], str(r[ANNOTATOR]) if annotators else "",
         *np.round([r[X], r[Y], r[W], r[H]], 3).tolist())
        for _, r in ds.annotations.iterrows())
    return images, sorted(names.values()), boxes


def _load_all(tmp_path, spec):
    out = {
        "coco": read_labels(write_coco(tmp_path / "coco", spec)),
        "labelstudio": read_labels(write_labelstudio(tmp_path / "ls", spec)),
        "cvat": read_labels(write_cvat(tmp_path / "cvat", spec)),
    }
    return out


def test_two_annotators_roundtrip_coco_labelstudio_cvat(tmp_path):
    loaded = _load_all(tmp_path, SPEC)
    ref = canonical(loaded["coco"])
    assert ref[1] == ["bird", "cat", "dog"]
    assert len(ref[2]) == len(SPEC["annotations"])
    assert ref[0]["empty.jpg"] == "test"
    for fmt, ds in loaded.items():
        assert ds.format == fmt
        assert set(ds.annotators) == {"alice", "bob"}, fmt
        assert canonical(ds) == ref, fmt


def test_single_annotator_roundtrip_all_formats(tmp_path):
    spec = only(SPEC, "alice")
    for a in spec["annotations"]:
        a.pop("annotator")
    loaded = _load_all(tmp_path, spec)
    loaded["voc"] = read_labels(write_voc(tmp_path / "voc", spec))
    loaded["yolo"] = load(write_yolo(tmp_path / "yolo", spec), probe=False)
    ref = canonical(loaded["coco"], annotators=False)
    assert len(ref[2]) == 5 and "empty.jpg" in ref[0]
    for fmt, ds in loaded.items():
        assert ds.format == fmt
        got = canonical(ds, annotators=False)
        assert got[0] == ref[0], fmt
        assert got[1] == ref[1], fmt
        if fmt == "yolo":  # normalised floats: equal within 1e-3 px
            assert [b[:2] for b in got[2]] == [b[:2] for b in ref[2]]
            np.testing.assert_allclose([b[3:] for b in got[2]], [b[3:] for b in ref[2]],
                                       atol=1e-3)
        else:
            assert got[2] == ref[2], fmt


@pytest.mark.parametrize("writer", [write_coco, write_cvat])
def test_roundtrip_keeps_image_sizes(tmp_path, writer):
    ds = read_labels(writer(tmp_path / "d", SPEC))
    sizes = dict(zip(ds.images[FILE_NAME].map(posixpath.basename),
                     zip(ds.images["width"].tolist(), ds.images["height"].tolist())))
    assert sizes == {im["file_name"]: (im["width"], im["height"]) for im in SPEC["images"]}
