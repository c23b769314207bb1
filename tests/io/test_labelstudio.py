from __future__ import annotations

import json

import numpy as np
import pytest
from writers import labelstudio_tasks

from qa.dataset import ANNOTATOR, CATEGORY_ID, FILE_NAME, IMAGE_ID, DatasetError, H, W, X, Y
from qa.io import read_labels, sniff_format
from qa.io.labelstudio import image_file_name, read


def _rect(x, y, w, h, label, *, ow=200, oh=100, rotation=0, score=None, rid="r"):
    r = {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
         "original_width": ow, "original_height": oh,
         "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                   "rectanglelabels": [label]}}
    if score is not None:
        r["score"] = score
    return r


TASKS = [
    {"id": 1, "data": {"image": "/data/upload/3/8f2e-a.jpg"},
     "annotations": [
         {"id": 11, "completed_by": 5, "result": [_rect(10, 20, 50, 50, "cat")]},
         {"id": 12, "completed_by": {"id": 6, "email": "bob@x.org"},
          "result": [_rect(10, 20, 50, 40, "cat"),
                     {"id": "c", "type": "choices", "value": {"choices": ["indoor"]}}]},
         {"id": 13, "completed_by": 7, "was_cancelled": True,
          "result": [_rect(0, 0, 5, 5, "dog")]},
     ],
     "predictions": [{"model_version": "yolo-v8", "score": 0.7,
                      "result": [_rect(10, 20, 50, 50, "cat", score=0.9),
                                 _rect(0, 0, 10, 10, "dog")]}]},
    {"id": 2, "data": {"image": "/data/local-files/?d=imgs/b%20c.jpg"},
     "annotations": [{"id": 21, "completed_by": 5, "result": []}]},
]


def test_labelstudio_export(tmp_path):
    p = tmp_path / "export.json"
    p.write_text(json.dumps(TASKS))
    assert sniff_format(p) == "labelstudio"
    ds = read_labels(p)
    assert ds.format == "labelstudio" and ds.root == tmp_path
    assert ds.images[FILE_NAME].tolist() == ["8f2e-a.jpg", "imgs/b c.jpg"]
    assert ds.images["width"].tolist()[0] == 200
    assert ds.category_names == {1: "cat", 2: "dog", 3: "indoor"}
    assert set(ds.annotators) == {"user_5", "bob@x.org"}  # cancelled user_7 skipped
    a = ds.annotations.sort_values("ann_id")
    assert a[ANNOTATOR].astype(str).tolist() == ["user_5", "bob@x.org", "bob@x.org"]
    np.testing.assert_allclose(a[[X, Y, W, H]].to_numpy()[:2],
                               [[20, 20, 100, 50], [20, 20, 100, 40]])
    assert a[W].isna().tolist() == [False, False, True]  # choices: image-level label
    p_ = ds.predictions.sort_values("pred_id")
    assert p_["score"].tolist() == [0.9, 0.7]  # result score, else the prediction's
    assert p_["model"].astype(str).tolist() == ["yolo-v8"] * 2
    assert p_[CATEGORY_ID].tolist() == [1, 2]
    assert (ds.annotations[IMAGE_ID] == 2).sum() == 0  # the empty image stays an image
    assert ds.load_issues.empty


def test_labelstudio_rotation_and_bad_results_are_issues(tmp_path):
    tasks = [{"id": 9, "data": {"image": "a.jpg"}, "annotations": [{"completed_by": 1, "result": [
        _rect(10, 10, 10, 10, "cat", rotation=30, rid="rot"),
        {"id": "bad", "type": "rectanglelabels", "original_width": 10, "original_height": 10,
         "value": {"x": "1", "y": 0, "width": 5, "height": 5, "rectanglelabels": ["cat"]}},
        {"id": "nosize", "type": "rectanglelabels",
         "value": {"x": 1, "y": 0, "width": 5, "height": 5, "rectanglelabels": ["cat"]}},
        {"id": "kp", "type": "keypointlabels", "value": {}},
    ]}]}, {"id": 10, "data": {"text": 5}}]
    p = tmp_path / "ls.json"
    p.write_text(json.dumps(tasks))
    ds = read(p)
    li = ds.load_issues.set_index("check")
    assert "'rot'" in li.loc["rotated_box", "message"] and str(p) in li.loc["rotated_box",
                                                                            "message"]
    assert len(ds.annotations) == 2  # the rotated box (unrotated) and the sizeless one
    msgs = ds.load_issues["message"].tolist()
    assert any("task 9" in m and "'bad'" in m and "numeric x" in m for m in msgs)
    assert any("'kp'" in m and "not supported" in m for m in msgs)
    assert any("task 10" in m and "no image reference" in m for m in msgs)


def test_labelstudio_size_from_another_result_or_quarantined(tmp_path):
    t = [{"data": {"image": "a.jpg"}, "annotations": [{"result": [
        {"id": "nosize", "type": "rectanglelabels",
         "value": {"x": 1, "y": 0, "width": 5, "height": 5, "rectanglelabels": ["cat"]}}]}]}]
    p = tmp_path / "ls.json"
    p.write_text(json.dumps(t))
    ds = read(p)
    assert ds.annotations.empty
    assert "'nosize' has no original_width" in ds.load_issues["message"].iloc[0]
    assert ds.annotators == ()


def test_labelstudio_folder_of_exports_one_per_annotator(tmp_path):
    spec = {"images": [{"file_name": "a.jpg", "width": 10, "height": 10}],
            "categories": ["cat"],
            "annotations": [{"file_name": "a.jpg", "label": "cat", "bbox": [1, 1, 2, 2]}]}
    d = tmp_path / "annotations"
    d.mkdir()
    for who in ("ann", "ben"):
        (d / f"{who}.json").write_text(json.dumps(labelstudio_tasks(spec, users={"annotator": 1})))
    assert sniff_format(tmp_path) == "labelstudio"
    ds = read_labels(tmp_path)
    assert ds.annotators == ("ann", "ben") and len(ds.images) == 1
    assert ds.annotations[ANNOTATOR].astype(str).tolist() == ["ann", "ben"]


@pytest.mark.parametrize("doc, match", [
    ('{"images": []}', "this is a COCO file"),
    ("42", "expected a Label Studio export"),
    ('[{"data": {}', "x.json: malformed JSON"),
    ('[{"data": {}}, ]', "x.json: malformed JSON at line 1"),
])
def test_labelstudio_bad_input(tmp_path, doc, match):
    p = tmp_path / "x.json"
    p.write_text(doc)
    with pytest.raises(DatasetError, match=match):
        read(p)


@pytest.mark.parametrize("ref, name", [
    ("/data/local-files/?d=dataset/img%201.jpg", "dataset/img 1.jpg"),
    ("/data/upload/12/abc123-cat.png", "abc123-cat.png"),
    ("https://host/x/y/cat.jpg?sig=1", "cat.jpg"),
    ("s3://bucket/dir/cat.jpg", "dir/cat.jpg"),
    ("images/cat.jpg", "images/cat.jpg"),
])
def test_image_file_name(ref, name):
    assert image_file_name(ref) == name


def test_custom_data_key_must_look_like_an_image(tmp_path):
    p = tmp_path / "ls.json"
    p.write_text(json.dumps([{"id": 1, "data": {"text": "hello. world", "photo": "x/a.PNG"}},
                             {"id": 2, "data": {"text": "no image. here"}}]))
    ds = read(p)
    assert ds.images[FILE_NAME].tolist() == ["x/a.PNG"]
    assert "task 2" in ds.load_issues["message"].iloc[0]
