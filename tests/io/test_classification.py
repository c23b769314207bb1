from __future__ import annotations

import pytest
from writers import make_image

from qa.dataset import ANNOTATOR, CATEGORY_ID, FILE_NAME, IMAGE_ID, SPLIT, DatasetError, W
from qa.io import read_labels, sniff_format
from qa.io.classification import read_csv, read_imagefolder


def _labels(ds):
    fn = dict(zip(ds.images[IMAGE_ID], ds.images[FILE_NAME]))
    names = ds.category_names
    return sorted((fn[i], names[c], str(a)) for i, c, a in
                  zip(ds.annotations[IMAGE_ID], ds.annotations[CATEGORY_ID],
                      ds.annotations[ANNOTATOR]))


def test_imagefolder_with_split_level(tmp_path):
    for i, rel in enumerate(["train/cat/1.jpg", "train/dog/2.png", "val/cat/3.jpg",
                             "test/dog/sub/4.jpg"]):
        make_image(tmp_path / rel, 8, 8, seed=i)
    (tmp_path / "train" / "bird").mkdir()  # an empty class is still a class
    assert sniff_format(tmp_path) == "imagefolder"
    ds = read_labels(tmp_path)
    assert ds.format == "imagefolder" and ds.root == tmp_path and ds.is_classification
    assert ds.category_names == {1: "bird", 2: "cat", 3: "dog"}
    assert _labels(ds) == [("test/dog/sub/4.jpg", "dog", "annotator"),
                           ("train/cat/1.jpg", "cat", "annotator"),
                           ("train/dog/2.png", "dog", "annotator"),
                           ("val/cat/3.jpg", "cat", "annotator")]
    assert dict(zip(ds.images[FILE_NAME], ds.images[SPLIT].astype(str)))["val/cat/3.jpg"] == "val"
    assert ds.annotations[W].isna().all()


def test_imagefolder_without_split_level(tmp_path):
    make_image(tmp_path / "cat" / "1.jpg", 8, 8)
    make_image(tmp_path / "train" / "2.jpg", 8, 8)  # a class that is called "train"
    make_image(tmp_path / "loose.jpg", 8, 8)
    ds = read_imagefolder(tmp_path)
    assert sorted(ds.category_names.values()) == ["cat", "train"]
    assert ds.images[SPLIT].isna().all()
    assert "loose.jpg" in ds.load_issues["message"].iloc[0]
    assert len(ds.images) == 3 and len(ds.annotations) == 2


def test_csv_several_annotators_and_bad_rows(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("File_Name,Class,annotator,split\n"
                 "img/a.jpg,cat,ann,train\n"
                 "img/a.jpg,dog,ben,train\n"
                 "img/b.jpg,,ann,val\n"
                 ",cat,ann,val\n"
                 "\n"
                 "img/c.jpg,dog,,test\n")
    assert sniff_format(p) == "csv"
    ds = read_labels(p)
    assert ds.format == "csv" and ds.root == tmp_path
    assert _labels(ds) == [("img/a.jpg", "cat", "ann"), ("img/a.jpg", "dog", "ben"),
                           ("img/c.jpg", "dog", "annotator")]
    assert dict(zip(ds.images[FILE_NAME], ds.images[SPLIT].astype(str))) == {
        "img/a.jpg": "train", "img/c.jpg": "test"}
    msgs = ds.load_issues["message"].tolist()
    assert msgs[0].startswith(f"{p}:4:") and "empty label" in msgs[0]
    assert msgs[1].startswith(f"{p}:5:") and "empty image" in msgs[1]
    assert read_csv(p, image_root=tmp_path / "img").root == tmp_path / "img"


def test_csv_without_known_columns_raises(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("foo,bar\n1,2\n")
    with pytest.raises(DatasetError, match=r"x\.csv: the header \['foo', 'bar'\] needs an image"):
        read_csv(p)
    p.write_text("")
    with pytest.raises(DatasetError, match="the CSV is empty"):
        read_csv(p)
