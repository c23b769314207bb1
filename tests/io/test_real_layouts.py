"""Real exports load from the folder a user would give, with counts equal to an independent
count of the files (json / csv / ElementTree here, not dataset-qa's readers).

The real excerpts live in tests/data/real (see its README for sources and licences); the BCCD
and raccoon sets in ../shared/realdata are checked against its TRUTH.json.
"""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import REAL

import qa
from qa.dataset import ANN_ID, FILE_NAME, IMAGE_ID, SPLIT, H, W, X, Y

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLIT_OF = {"train": "train", "valid": "val", "test": "test"}


def _splits(ds) -> dict[str, int]:
    return {k: v for k, v in ds.summary()["splits"].items() if k != "none"}


def _checks(ds) -> Counter:
    rep = qa.validate(ds)
    return Counter(dict(zip(rep.counts()["check"], rep.counts()["count"])))


def _messages(ds, check: str) -> list[str]:
    rep = qa.validate(ds)
    return rep.issues.loc[rep.issues["check"] == check, "message"].tolist()


# ------------------------------------------------------------------ independent counters
def count_coco(folder: Path) -> dict:
    out = {"images": 0, "boxes": 0, "splits": {}, "classes": set(), "used": set()}
    for d in sorted(folder.iterdir()):
        f = d / "_annotations.coco.json"
        if not f.is_file():
            continue
        doc = json.loads(f.read_text())
        out["images"] += len(doc["images"])
        out["boxes"] += len(doc["annotations"])
        out["splits"][SPLIT_OF[d.name]] = len(doc["images"])
        out["classes"] |= {c["name"] for c in doc["categories"]}
        out["used"] |= {a["category_id"] for a in doc["annotations"]}
    return out


def csv_records(f: Path) -> list[list[str]]:
    with open(f, newline="", encoding="utf-8-sig") as fh:
        return [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]


def images_on_disk(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}


# ------------------------------------------------------------------ Roboflow COCO
def test_roboflow_coco_loads_from_top_folder():
    top = REAL / "roboflow_coco_chess"
    truth = count_coco(top)
    ds = qa.load(top)
    s = ds.summary()
    assert ds.format == "coco"
    assert (s["images"], s["boxes"], s["image_labels"]) == (truth["images"], truth["boxes"], 0)
    assert _splits(ds) == truth["splits"] == {"train": 2, "val": 1, "test": 1}
    # the superclass 'pieces' (id 0, no box) is not a class; it is said once, as info
    assert 0 not in truth["used"] and s["classes"] == len(truth["classes"]) - 1 == 13
    assert "pieces" not in set(ds.categories["name"])
    (info,) = _messages(ds, "superclass_category")
    assert "'pieces'" in info and "not counted as a class" in info
    checks = _checks(ds)
    assert checks["missing_file"] == 0 and sum(
        n for c, n in checks.items() if c != "superclass_category") == 0
    # file names are relative to the top folder and each image is in its split folder
    assert all(f.split("/")[0] in ("train", "valid", "test") for f in ds.images[FILE_NAME])
    assert ds.images["readable"].all()


def test_roboflow_coco_one_split_folder_and_explicit_format():
    top = REAL / "roboflow_coco_chess"
    one = qa.load(top / "train")
    assert (one.n_images, one.summary()["boxes"]) == (2, 22)
    assert _splits(one) == {"train": 2}  # the folder's name says the split
    assert qa.load(top, format="coco").summary()["boxes"] == count_coco(top)["boxes"]


# ------------------------------------------------------------------ TF Object Detection CSV
def _tfcsv_truth(top: Path) -> dict:
    out = {}
    for d in sorted(top.iterdir()):
        f = d / "_annotations.csv"
        if not f.is_file():
            continue
        rows = csv_records(f)[1:]
        out[SPLIT_OF[d.name]] = {"boxes": len(rows), "images": len({r[0] for r in rows}),
                                 "unlisted": len(images_on_disk(d) - {r[0] for r in rows}),
                                 "rows": rows}
    return out


def test_roboflow_tf_csv_loads_as_boxes_from_top_folder():
    top = REAL / "roboflow_tfcsv_workout"
    truth = _tfcsv_truth(top)
    ds = qa.load(top)
    s = ds.summary()
    assert ds.format == "csv"
    assert s["boxes"] == sum(t["boxes"] for t in truth.values()) == 12
    assert s["image_labels"] == 0  # a CSV with box columns is never image-level labels
    assert _splits(ds) == {k: t["images"] for k, t in truth.items()}
    # a box in pixels: x = xmin, w = xmax - xmin (TF's generate_tfrecord convention)
    fn, w, h, cls, x1, y1, x2, y2 = truth["train"]["rows"][0]
    a = ds.annotations.merge(ds.images[[IMAGE_ID, FILE_NAME]], on=IMAGE_ID)
    row = a[a[FILE_NAME] == f"train/{fn}"].iloc[0]
    assert (row[X], row[Y], row[W], row[H]) == (float(x1), float(y1), float(x2) - float(x1),
                                               float(y2) - float(y1))
    assert ds.category_names[row["category_id"]] == cls
    assert (ds.images["width"] == 416).all()
    # test/ holds 6 images of which its CSV names 2: the other 4 are counted, as info
    assert truth["test"]["unlisted"] == 4
    (info,) = _messages(ds, "unlisted_images")
    assert info.startswith("4 images in `test/` have no entry in `_annotations.csv`")
    assert _checks(ds)["missing_file"] == 0 and qa.validate(ds).n_errors == 0


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_each_tf_csv_alone_reads_boxes(split):
    top = REAL / "roboflow_tfcsv_workout"
    t = _tfcsv_truth(top)[SPLIT_OF[split]]
    ds = qa.load(top / split / "_annotations.csv")
    s = ds.summary()
    assert (s["images"], s["boxes"], s["image_labels"]) == (t["images"], t["boxes"], 0)
    assert qa.validate(ds).n_errors == 0  # its images are found beside it


# ------------------------------------------------------------------ Roboflow classification CSV
def test_roboflow_classification_csv_from_top_folder():
    top = REAL / "roboflow_classcsv_egg"
    labels, images, splits, classes = 0, 0, {}, None
    for d in sorted(top.iterdir()):
        if not (d / "_classes.csv").is_file():
            continue
        recs = csv_records(d / "_classes.csv")
        classes = [c.strip() for c in recs[0][1:]]
        labels += sum(int(v) for r in recs[1:] for v in r[1:])
        images += len(recs) - 1
        splits[SPLIT_OF[d.name]] = len(recs) - 1
    ds = qa.load(top)
    s = ds.summary()
    assert (s["images"], s["boxes"], s["image_labels"]) == (images, 0, labels)
    assert _splits(ds) == splits
    assert sorted(ds.category_names.values()) == sorted(classes)  # " Tahap Akhir" stripped
    assert qa.validate(ds).n_errors == 0


# ------------------------------------------------------------------ LabelImg
def _voc_objects(folder: Path) -> int:
    return sum(len(ET.parse(f).getroot().findall("object")) for f in folder.glob("*.xml"))


def test_labelimg_annotations_and_images_from_top_folder():
    top = REAL / "labelimg_raccoon"
    ds = qa.load(top)
    assert ds.format == "voc"
    assert ds.n_images == len(list((top / "annotations").glob("*.xml"))) == 3
    assert ds.summary()["boxes"] == _voc_objects(top / "annotations") == 5
    # <filename> + the <folder>/<path> hints find images/; nothing is missing
    assert all(f.startswith("images/") for f in ds.images[FILE_NAME])
    assert qa.validate(ds).n_errors == 0


# ------------------------------------------------------------------ ../shared/realdata
def test_bccd_from_top_folder_matches_truth(realdata, truth):
    t = truth["bccd"]
    ds = qa.load(realdata / "bccd")
    s = ds.summary()
    assert (s["images"], s["boxes"]) == (t["images"], t["boxes"])
    names = ds.category_names
    per_class = ds.annotations["category_id"].map(names).value_counts().to_dict()
    assert per_class == t["per_class"]
    assert _splits(ds) == {k: v for k, v in t["splits"].items() if k in ("train", "val", "test")}
    assert _checks(ds)["missing_file"] == 0


def test_bccd_degenerate_boxes_are_findings_with_file_names(realdata, truth):
    ds = qa.load(realdata / "bccd", probe=False)
    rep = qa.validate(ds)
    deg = rep.issues[rep.issues["check"] == "degenerate_box"]
    assert len(deg) == len(truth["bccd"]["degenerate_boxes"]) == 2
    assert (deg["severity"] == "error").all() and deg[ANN_ID].notna().all()
    for (xml, cls, *_), msg in zip(sorted(truth["bccd"]["degenerate_boxes"]),
                                   sorted(deg["message"])):
        stem = xml.removesuffix(".xml")
        assert f"{stem}.jpg" in msg and f"({cls})" in msg and "1x1 px" in msg
    # findings of validation reach the review queue with the box
    f = rep.findings()
    f = f[f["kind"] == "degenerate_box"]
    assert len(f) == 2 and all(len(t) == 1 for t in f["ann_ids"])


def test_raccoon_from_top_folder_and_each_csv(realdata, truth):
    t = truth["raccoon"]
    ds = qa.load(realdata / "raccoon")
    assert ds.format == "voc"
    assert (ds.n_images, ds.summary()["boxes"]) == (t["images"], t["boxes"])
    assert _checks(ds)["missing_file"] == 0
    for name in ("train", "test", "raccoon"):
        c = t[f"csv_{name}_labels"]
        f = realdata / "raccoon" / "data" / f"{name}_labels.csv"
        assert csv_records(f)[0] == c["columns"]
        d = qa.load(f)
        s = d.summary()
        assert (s["images"], s["boxes"], s["image_labels"]) == (c["images"], c["rows_boxes"], 0)
        assert d.root == realdata / "raccoon" / "images"  # found beside data/
        assert _checks(d)["missing_file"] == 0
    both = qa.load(realdata / "raccoon" / "data")  # the split files, joined
    assert (both.n_images, both.summary()["boxes"]) == (t["images"], t["boxes"])
    assert _splits(both) == {"train": t["csv_train_labels"]["images"],
                             "test": t["csv_test_labels"]["images"]}


def test_real_layouts_read_the_same_boxes(realdata):
    """The raccoon boxes from the LabelImg XML and from the TF CSV agree up to the VOC
    devkit's 1-based pixel convention (the XML is read 1-based: x = xmin - 1, w + 1)."""
    xml = qa.load(realdata / "raccoon", probe=False)
    tab = qa.load(realdata / "raccoon" / "data" / "raccoon_labels.csv", probe=False)

    def boxes(ds):
        a = ds.annotations.merge(ds.images[[IMAGE_ID, FILE_NAME]], on=IMAGE_ID)
        a[FILE_NAME] = a[FILE_NAME].map(lambda f: f.rsplit("/", 1)[-1])
        return a.sort_values([FILE_NAME, X, Y])[[FILE_NAME, X, Y, W, H]].reset_index(drop=True)

    bx, bt = boxes(xml), boxes(tab)
    assert len(bx) == len(bt) == 217
    assert (bx[FILE_NAME] == bt[FILE_NAME]).all()
    assert ((bx[X] + 1 - bt[X]).abs() < 1e-9).all() and ((bx[W] - 1 - bt[W]).abs() < 1e-9).all()


def test_unlisted_images_count_matches_the_folder(tmp_path):
    top = REAL / "roboflow_tfcsv_workout"
    ds = qa.load(top / "test" / "_annotations.csv")
    on_disk = images_on_disk(top / "test")
    listed = {r[0] for r in csv_records(top / "test" / "_annotations.csv")[1:]}
    (msg,) = _messages(ds, "unlisted_images")
    assert msg.startswith(f"{len(on_disk - listed)} images in the dataset folder")
    assert set(pd.unique(ds.images[FILE_NAME])) == listed
    assert not os.path.exists(top / "test" / ".dataset-qa")  # nothing written beside the data


def test_refusals_on_real_folders_say_what_is_there(realdata):
    from qa.dataset import DatasetError

    # the folder above two datasets: names both and the command to load one
    with pytest.raises(DatasetError, match=r"`bccd/`: voc, `raccoon/`: voc\): load one of them, "
                                           r"e\.g\. dataset-qa info .*bccd"):
        qa.load(realdata)
    # a wrong --format: what was found (200 XML files in annotations/) and the format that fits
    with pytest.raises(DatasetError) as e:
        qa.load(realdata / "raccoon", format="yolo")
    msg = str(e.value)
    assert "`annotations/` holds 200 .xml files" in msg and "`images/` holds 200 images" in msg
    assert "reads as voc" in msg and "class sub-folders" not in msg
