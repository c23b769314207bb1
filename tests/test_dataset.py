import numpy as np
import pandas as pd
import pytest

from qa.dataset import ANNOTATIONS_SCHEMA, Dataset, DatasetError


def _ds(**kw):
    images = pd.DataFrame({"image_id": [1, 2], "file_name": ["a.jpg", "b.jpg"],
                           "width": [100, 50], "height": [80, 50], "split": ["train", "val"]})
    cats = pd.DataFrame({"category_id": [1, 2], "name": ["cat", "dog"]})
    anns = pd.DataFrame({"ann_id": [1, 2, 3], "image_id": [1, 1, 2], "category_id": [1, 2, 1],
                         "annotator": ["ann", "bob", "ann"], "x": [0, 10, 5], "y": [0, 10, 5],
                         "w": [10, 20, np.nan], "h": [10, 5, np.nan]})
    return Dataset(images=kw.get("images", images), categories=cats,
                   annotations=kw.get("annotations", anns))


def test_conforms_schema_and_fills_area():
    ds = _ds()
    assert list(ds.annotations.columns[: len(ANNOTATIONS_SCHEMA)]) == list(ANNOTATIONS_SCHEMA)
    assert ds.annotations["area"].tolist()[:2] == [100.0, 100.0]
    assert np.isnan(ds.annotations["area"].iloc[2])  # image-level label keeps NaN
    assert ds.annotators == ("ann", "bob")
    assert ds.splits == ("train", "val")
    assert ds.predictions.empty and list(ds.predictions.columns)[:3] == ["pred_id", "image_id",
                                                                         "category_id"]


def test_boxes_xyxy_and_subset():
    ds = _ds()
    xyxy = ds.boxes_xyxy()
    np.testing.assert_allclose(xyxy[0], [0, 0, 10, 10])
    np.testing.assert_allclose(xyxy[1], [10, 10, 30, 15])
    sub = ds.subset([2])
    assert sub.images["image_id"].tolist() == [2]
    assert sub.annotations["ann_id"].tolist() == [3]
    assert sub.annotators == ds.annotators  # annotators kept even without rows
    assert len(ds.annotations) == 3  # the original is untouched


def test_missing_key_column_raises_clear_error():
    bad = pd.DataFrame({"image_id": [1], "category_id": [1]})
    with pytest.raises(DatasetError, match="annotations has no 'ann_id' column"):
        _ds(annotations=bad)


def test_uncastable_column_raises():
    images = pd.DataFrame({"image_id": ["x"], "file_name": ["a.jpg"]})
    with pytest.raises(DatasetError, match="column 'image_id' cannot be read as int64"):
        _ds(images=images)


def test_classification_flags_and_summary():
    anns = pd.DataFrame({"ann_id": [1], "image_id": [1], "category_id": [2]})
    ds = _ds(annotations=anns)
    assert ds.is_classification and not ds.has_boxes
    s = ds.summary()
    assert s["image_labels"] == 1 and s["boxes"] == 0 and s["annotators"] == ["annotator"]
    assert "images=2" in repr(ds)
