from __future__ import annotations

import json

import numpy as np
import pytest
from writers import write_coco, write_yolo

from qa.dataset import CATEGORY_ID, FILE_NAME, IMAGE_ID, MODEL, PRED_ID, SCORE, DatasetError
from qa.dataset import H, W, X, Y
from qa.io import load, read_labels
from qa.io.predictions import find_predictions, load_predictions

SPEC = {
    "images": [{"file_name": "a.jpg", "width": 100, "height": 50, "split": "train"},
               {"file_name": "b.jpg", "width": 40, "height": 40, "split": "val"}],
    "categories": ["cat", "dog"],
    "annotations": [{"file_name": "a.jpg", "label": "dog", "bbox": [10, 5, 20, 10]}],
}


@pytest.fixture
def coco(tmp_path):
    return read_labels(write_coco(tmp_path / "coco", SPEC))


def test_coco_results_by_id_and_by_file_name(tmp_path, coco):
    p = tmp_path / "detr.json"
    p.write_text(json.dumps([
        {"image_id": 1, "category_id": 2, "bbox": [10, 5, 20, 10], "score": 0.9},
        {"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.1},
        {"file_name": "b.jpg", "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5},
    ]))
    df = load_predictions(p, coco)
    assert list(df.columns)[:9] == [PRED_ID, IMAGE_ID, CATEGORY_ID, SCORE, X, Y, W, H, MODEL]
    assert df[IMAGE_ID].tolist() == [1, 99, 2]  # unknown id kept for validation to flag
    assert df[MODEL].astype(str).unique().tolist() == ["detr"]
    assert df[PRED_ID].tolist() == [1, 2, 3]


@pytest.mark.parametrize("doc, match", [
    ({"images": [], "annotations": []}, "looks like a COCO dataset, not a results list"),
    ([{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 0.5}],
     r"item \[0\].*'bbox' as 4 numbers"),
    ([{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}], "a numeric 'score'"),
    ([{"data": {"image": "a.jpg"}}], "has no 'predictions'"),
    (7, "expected a JSON list of predictions"),
])
def test_bad_prediction_files(tmp_path, coco, doc, match):
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=match):
        load_predictions(p, coco)


def test_yolo_prediction_folder_in_pixels(tmp_path):
    ds = load(write_yolo(tmp_path / "y", SPEC))
    d = tmp_path / "runs" / "exp7" / "labels"
    d.mkdir(parents=True)
    (d / "a.txt").write_text("1 0.2 0.2 0.2 0.2 0.8\n0 0.5 0.5 0.1 0.1 0.3\n")
    (d / "zzz.txt").write_text("0 0.5 0.5 0.1 0.1 0.3\n")  # no such image: skipped
    df = load_predictions(d, ds)
    assert df[MODEL].astype(str).unique().tolist() == ["exp7"]
    a_id = ds.images.loc[ds.images[FILE_NAME] == "images/train/a.jpg", IMAGE_ID].item()
    assert df[IMAGE_ID].tolist() == [a_id, a_id]
    assert df[CATEGORY_ID].tolist() == [1, 0]
    np.testing.assert_allclose(df[[X, Y, W, H]].to_numpy()[0], [10, 5, 20, 10])
    (d / "a.txt").write_text("1 0.2 0.2 0.2 0.2\n")
    with pytest.raises(DatasetError, match=r"a\.txt:1: 5 fields .* these are labels"):
        load_predictions(d, ds)


def test_labelstudio_predictions_and_load_renumbers(tmp_path, coco):
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps([{"data": {"image": "/data/upload/1/a.jpg"}, "predictions": [
        {"model_version": "m2", "result": [
            {"type": "rectanglelabels", "original_width": 100, "original_height": 50,
             "score": 0.6, "value": {"x": 10, "y": 10, "width": 20, "height": 20,
                                     "rectanglelabels": ["dog"]}}]}]}]))
    res = tmp_path / "r.json"
    res.write_text(json.dumps([{"image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4],
                                "score": 0.5}]))
    df = load_predictions(ls, coco)
    assert df[[IMAGE_ID, CATEGORY_ID, SCORE]].values.tolist() == [[1, 2, 0.6]]
    np.testing.assert_allclose(df[[X, Y, W, H]].to_numpy()[0], [10, 5, 20, 10])
    ds = load(tmp_path / "coco", predictions=[ls, res], probe=False)
    assert ds.predictions[PRED_ID].tolist() == [1, 2]
    assert ds.models == ("m2", "r")


def test_find_predictions(tmp_path):
    assert find_predictions(tmp_path) == []
    (tmp_path / "predictions").mkdir()
    for n in ("b.json", "a.json", "c.txt"):
        (tmp_path / "predictions" / n).write_text("[]")
    assert [p.name for p in find_predictions(tmp_path)] == ["a.json", "b.json"]


def test_attach_predictions_collects_bad_files(tmp_path):
    import pandas as pd
    import pytest

    from qa.dataset import Dataset, DatasetError
    from qa.io import attach_predictions

    ds = Dataset(images=pd.DataFrame({"image_id": [1], "file_name": ["a.jpg"]}),
                 categories=pd.DataFrame({"category_id": [1], "name": ["cat"]}),
                 annotations=None)
    good, bad = tmp_path / "m1.json", tmp_path / "m2.json"
    good.write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5}]')
    bad.write_text("[1, 2]")
    out, problems = attach_predictions(ds, [good, bad, good], errors="collect")
    assert out.predictions["pred_id"].tolist() == [1, 2]  # unique across the two good files
    assert len(problems) == 1 and "m2.json: item [0]" in problems[0]
    with pytest.raises(DatasetError, match="m2.json"):
        attach_predictions(ds, [good, bad])
    with pytest.raises(ValueError, match="errors must be"):
        attach_predictions(ds, [good], errors="ignore")
