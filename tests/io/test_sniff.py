"""qa.io.sniff_format recognises each layout the readers accept."""

from __future__ import annotations

import json

import pytest
from writers import (
    cvat_xml,
    make_image,
    write_coco,
    write_cvat,
    write_labelstudio,
    write_voc,
    write_yolo,
)

from qa.dataset import DatasetError
from qa.io import sniff_format

SPEC = {"images": [{"file_name": "a.jpg", "width": 8, "height": 8, "split": "train"}],
        "categories": ["cat"],
        "annotations": [{"file_name": "a.jpg", "label": "cat", "bbox": [1, 1, 2, 2]}]}


@pytest.mark.parametrize("build, fmt", [
    (lambda d: write_coco(d, SPEC), "coco"),
    (lambda d: write_coco(d, SPEC) / "annotations" / "instances.json", "coco"),
    (lambda d: write_voc(d, SPEC), "voc"),
    (lambda d: write_voc(d, SPEC) / "Annotations" / "a.xml", "voc"),
    (lambda d: write_yolo(d, SPEC), "yolo"),
    (lambda d: write_yolo(d, SPEC) / "data.yaml", "yolo"),
    (lambda d: write_yolo(d, SPEC, yaml=False), "yolo"),
    (lambda d: write_labelstudio(d, SPEC), "labelstudio"),
    (lambda d: write_labelstudio(d, SPEC).parent, "labelstudio"),
    (lambda d: write_cvat(d, SPEC), "cvat"),
    (lambda d: write_cvat(d, SPEC) / "annotations" / "annotator.xml", "cvat"),
])
def test_sniff_each_layout(tmp_path, build, fmt):
    assert sniff_format(build(tmp_path / "ds")) == fmt


def test_sniff_classification_layouts(tmp_path):
    make_image(tmp_path / "f" / "train" / "cat" / "a.jpg", 4, 4)
    assert sniff_format(tmp_path / "f") == "imagefolder"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "labels.csv").write_text("image,label\na.jpg,cat\n")
    assert sniff_format(tmp_path / "c") == "csv"
    assert sniff_format(tmp_path / "c" / "labels.csv") == "csv"


def test_sniff_task_without_annotations_and_xml_without_folder(tmp_path):
    p = tmp_path / "task.json"
    p.write_text(json.dumps({"id": 1, "data": {"image": "a.jpg"}}))
    assert sniff_format(p) == "labelstudio"
    p.write_text(json.dumps({"id": 1, "data": {"image": "a.jpg"}, "annotations": []}))
    assert sniff_format(p) == "labelstudio"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "job.xml").write_text(cvat_xml(SPEC))
    assert sniff_format(tmp_path / "x") == "cvat"


def test_sniff_rejects_results_and_unknown(tmp_path):
    p = tmp_path / "res.json"
    p.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                              "score": 0.5}]))
    with pytest.raises(DatasetError, match="predictions file"):
        sniff_format(p)
    q = tmp_path / "notes.txt"
    q.write_text("hi")
    with pytest.raises(DatasetError, match="cannot tell the format"):
        sniff_format(q)
