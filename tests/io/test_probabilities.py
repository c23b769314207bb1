"""Tests of qa.io.probabilities: both CSV layouts, file-name and id matching, unknown images
kept and reported, bad rows refused with file:line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qa.dataset import Dataset, DatasetError
from qa.disagreement import compute_disagreement
from qa.io.probabilities import load_probabilities


def cls_ds(n=6):
    imgs = pd.DataFrame({"image_id": range(1, n + 1),
                         "file_name": [f"train/{i}.jpg" for i in range(1, n + 1)]})
    anns = pd.DataFrame({"ann_id": range(1, n + 1), "image_id": range(1, n + 1),
                         "category_id": [1 + i % 2 for i in range(n)], "annotator": "a"})
    cats = pd.DataFrame({"category_id": [1, 2], "name": ["cat", "dog"]})
    return Dataset(images=imgs, categories=cats, annotations=anns)


def test_probability_columns(tmp_path):
    f = tmp_path / "clf.csv"
    f.write_text("image,dog,cat\ntrain/1.jpg,0.2,0.8\n2.jpg,0.9,0.1\n3,0.5,0.5\n"
                 "elsewhere.jpg,0.1,0.9\n")
    p = load_probabilities(f, cls_ds())
    assert p["model"].astype(str).unique().tolist() == ["clf"]
    wide = p.pivot(index="image_id", columns="category_id", values="score")
    assert wide.loc[1].tolist() == [0.8, 0.2] and wide.loc[2].tolist() == [0.1, 0.9]
    assert wide.loc[3].tolist() == [0.5, 0.5]
    assert -1 in wide.index  # the unknown image is kept, under a negative id
    assert p["w"].isna().all()
    ds = cls_ds().with_predictions(p)
    r = compute_disagreement(ds)
    assert r.unknown_predictions["image_id"].unique().tolist() == [-1]


def test_label_score_layout_spreads_the_rest(tmp_path):
    f = tmp_path / "top1.csv"
    f.write_text("image,label,score\ntrain/1.jpg,dog,0.7\n")
    p = load_probabilities(f, cls_ds())
    assert dict(zip(p["category_id"], p["score"])) == {1: pytest.approx(0.3), 2: 0.7}


@pytest.mark.parametrize("text, match", [
    ("image,cat,dog\n1,0.5,0.6\n", r"top\.csv:2: the probabilities sum to 1\.1000"),
    ("image,cat,dog\n1,nan,0.6\n", r"top\.csv:2: probabilities must be numbers in \[0, 1\]"),
    ("image,cat,cow\n1,0.5,0.5\n", r"unknown: \['cow'\], missing: \['dog'\]"),
    ("image,label,score\n1,cow,0.5\n", r"top\.csv:2: label 'cow' is not a class"),
    ("image,label,score\n1,cat,1.5\n", r"probabilities must be numbers in \[0, 1\]"),
    ("picture,cat,dog\n1,0.5,0.5\n", "no image column"),
    ("image,cat,dog\nnowhere.jpg,0.5,0.5\n", "no row names an image of the dataset"),
])
def test_bad_files(tmp_path, text, match):
    f = tmp_path / "top.csv"
    f.write_text(text)
    with pytest.raises(DatasetError, match=match):
        load_probabilities(f, cls_ds())


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_probabilities(tmp_path / "none.csv", cls_ds())
