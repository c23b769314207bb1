"""Layouts of real exports for which no licensed public sample was found, built by hand in
tmp_path as the tools write them, each loaded from its top folder; and the refusals, which say
what was found and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from writers import make_image

import qa
from qa.cli import main
from qa.dataset import FILE_NAME, SEGMENTATION, SPLIT, DatasetError, H, W, X, Y
from qa.io import sniff_format


def _checks(ds) -> dict:
    c = qa.validate(ds).counts()
    return dict(zip(c["check"], c["count"]))


def _xml(fname: str, objects, size=(64, 48), folder="images", path=None) -> str:
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
                   f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
                   for n, (a, b, c, d) in objects)
    p = f"<path>{path}</path>" if path else ""
    return (f"<annotation><folder>{folder}</folder><filename>{fname}</filename>{p}<size>"
            f"<width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
            f"{objs}</annotation>")


# ------------------------------------------------------------------ COCO, one JSON per split
def test_coco_one_json_per_split_resolves_each_split_folder(tmp_path):
    """annotations/train.json + val.json, images in <root>/train/ and <root>/val/: no false
    missing files (before: every image was 'missing' and no --image-root could fix it)."""
    for split, names in (("train", ["a.jpg", "b.jpg"]), ("val", ["c.jpg"])):
        for k, n in enumerate(names):
            make_image(tmp_path / split / n, 32, 24, seed=k)
        doc = {"images": [{"id": i + 1, "file_name": n, "width": 32, "height": 24}
                          for i, n in enumerate(names)],
               "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1,
                                "bbox": [1, 1, 5, 5]} for i in range(len(names))],
               "categories": [{"id": 1, "name": "cat"}]}
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / f"{split}.json").write_text(json.dumps(doc))
    ds = qa.load(tmp_path)
    assert ds.format == "coco" and ds.root == tmp_path
    assert sorted(ds.images[FILE_NAME]) == ["train/a.jpg", "train/b.jpg", "val/c.jpg"]
    assert ds.summary()["splits"] == {"train": 2, "val": 1}
    assert ds.summary()["boxes"] == 3 and ds.images["readable"].all()
    assert "missing_file" not in _checks(ds)
    # the labels folder itself, and the images elsewhere with --image-root
    assert qa.load(tmp_path / "annotations").images["readable"].all()


def test_coco_file_name_with_sub_folder(tmp_path):
    make_image(tmp_path / "images" / "cam1" / "a.jpg", 16, 16)
    doc = {"images": [{"id": 1, "file_name": "images/cam1/a.jpg", "width": 16, "height": 16}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
           "categories": [{"id": 1, "name": "car"}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances.json").write_text(json.dumps(doc))
    ds = qa.load(tmp_path)
    assert ds.root == tmp_path and ds.images["readable"].all()


def test_coco_with_boxes_under_another_key_is_refused(tmp_path):
    p = tmp_path / "labels.json"
    p.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                             "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                              "box": [1, 2, 3, 4]}],
                             "categories": [{"id": 1, "name": "cat"}]}))
    with pytest.raises(DatasetError, match=r"labels\.json: annotations\[0\] has no 'bbox' but "
                                           r"carries \['box'\].*image-level label"):
        qa.load(p)


# ------------------------------------------------------------------ RetinaNet CSV
def test_retinanet_csv_headerless_with_empty_box(tmp_path):
    for k, n in enumerate(["a.jpg", "b.jpg", "c.jpg"]):
        make_image(tmp_path / n, 40, 30, seed=k)
    (tmp_path / "_annotations.csv").write_text(
        "a.jpg,1,2,11,12,with_mask\n"
        "a.jpg,20,5,30,25,without_mask\n"
        "b.jpg,3,3,9,9,with_mask\n"
        "c.jpg,,,,,\n")
    (tmp_path / "_classes.csv").write_text("with_mask,0\nwithout_mask,1\nmask_weared_incorrect,2\n")
    ds = qa.load(tmp_path)
    s = ds.summary()
    assert ds.format == "csv" and (s["images"], s["boxes"], s["image_labels"]) == (3, 2 + 1, 0)
    assert list(ds.categories["name"]) == ["with_mask", "without_mask", "mask_weared_incorrect"]
    a = ds.annotations.iloc[0]
    assert (a[X], a[Y], a[W], a[H]) == (1, 2, 10, 10)
    assert qa.validate(ds).n_errors == 0


# ------------------------------------------------------------------ CSV refusals
@pytest.mark.parametrize("header, match", [
    ("image_path,xmin,ymin,label\na.jpg,1,2,cat\n",
     r"box-like columns \(xmin, ymin\) but no complete set .* not read as image labels"),
    ("filename,xmin,ymin,xmax,ymax\na.jpg,1,2,3,4\n",
     r"has box columns \(xmin, ymin, xmax, ymax\) but not a class column"),
    ("id,score,comment\n1,0.5,ok\n",
     r"the header \['id', 'score', 'comment'\] needs an image column .* and a label column"),
    ("filename,cat,dog\na.jpg,1,7\n",
     r"line 2 .* is not 0/1 per class"),
    ("a.jpg,1,2,3\n", r"the first line .* is data, not a header"),
])
def test_csv_whose_columns_cannot_be_placed_is_refused(tmp_path, header, match):
    p = tmp_path / "labels.csv"
    p.write_text(header)
    with pytest.raises(DatasetError, match=match) as e:
        qa.load(p)
    assert "labels.csv" in str(e.value) and "Rename the columns" in str(e.value)


def test_tf_csv_spellings_and_bad_rows(tmp_path):
    make_image(tmp_path / "a.jpg", 20, 20)
    p = tmp_path / "boxes.csv"
    p.write_text("image,label,x1,y1,x2,y2\na.jpg,cat,1,1,5,5\na.jpg,dog,x,1,5,5\na.jpg,,,,,\n")
    ds = qa.load(p)
    assert ds.summary()["boxes"] == 1 and ds.summary()["image_labels"] == 0
    (msg,) = ds.load_issues["message"]
    assert msg.startswith(f"{p}:3:") and "non-numeric box values" in msg


# ------------------------------------------------------------------ CVAT "YOLO 1.1"
def _cvat_yolo(export: Path, images: Path) -> None:
    """CVAT's "YOLO 1.1" export without images: obj.data, obj.names, train.txt listing
    data/obj_train_data/<name>, one label file per image; the images stay in the task."""
    (export / "obj_train_data" / "sub").mkdir(parents=True)
    (export / "obj.names").write_text("car\nbike\n")
    (export / "obj.data").write_text("classes = 2\ntrain = data/train.txt\n"
                                     "names = data/obj.names\nbackup = backup/\n")
    (export / "train.txt").write_text("data/obj_train_data/a.jpg\ndata/obj_train_data/sub/b.jpg\n")
    (export / "obj_train_data" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.1 0.1\n")
    (export / "obj_train_data" / "sub" / "b.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    make_image(images / "a.jpg", 40, 20)
    make_image(images / "sub" / "b.jpg", 10, 10)


def test_cvat_yolo_export_with_images_elsewhere(tmp_path, capsys):
    export, images = tmp_path / "export", tmp_path / "task_images"
    _cvat_yolo(export, images)
    ds = qa.load(export, image_root=images)
    assert ds.summary()["boxes"] == 3 and qa.validate(ds).n_errors == 0
    assert sorted(ds.images[FILE_NAME]) == ["a.jpg", "sub/b.jpg"]
    car = ds.annotations[ds.annotations["category_id"] == 0].iloc[0]
    assert (car[X], car[Y], car[W], car[H]) == (15, 5, 10, 10)
    # without --image-root: the boxes cannot be placed and the message says the fix
    assert main(["info", str(export)]) == 0
    out = capsys.readouterr().out
    assert "--image-root" in out
    assert main(["info", str(export), "--image-root", str(images)]) == 0
    assert "3 boxes" in capsys.readouterr().out


# ------------------------------------------------------------------ YOLO segmentation
def test_yolo_segmentation_polygons_mixed_with_boxes(tmp_path):
    (tmp_path / "data.yaml").write_text("train: train/images\nval: valid/images\nnc: 2\n"
                                        "names: ['leaf', 'spot']\n")
    make_image(tmp_path / "train" / "images" / "a.jpg", 100, 50)
    make_image(tmp_path / "valid" / "images" / "b.jpg", 100, 50)
    (tmp_path / "train" / "labels").mkdir(parents=True)
    (tmp_path / "valid" / "labels").mkdir(parents=True)
    (tmp_path / "train" / "labels" / "a.txt").write_text(
        "0 0.1 0.2 0.5 0.2 0.5 0.8 0.1 0.8\n"   # a polygon (4 points), as Roboflow writes it
        "1 0.75 0.5 0.1 0.2\n")                # a box line in the same file
    (tmp_path / "valid" / "labels" / "b.txt").write_text("1 0.2 0.2 0.4 0.2 0.3 0.6\n")
    ds = qa.load(tmp_path)
    a = ds.annotations.sort_values("ann_id")
    assert ds.summary()["boxes"] == 3 and ds.summary()["splits"] == {"train": 1, "val": 1}
    poly = a.iloc[0]
    assert (poly[X], poly[Y], poly[W], poly[H]) == pytest.approx((10, 10, 40, 30))
    assert poly[SEGMENTATION] == [[10.0, 10.0, 50.0, 10.0, 50.0, 40.0, 10.0, 40.0]]
    box = a.iloc[1]
    assert box[SEGMENTATION] == [[70.0, 20.0, 80.0, 20.0, 80.0, 30.0, 70.0, 30.0]]
    assert len(a.iloc[2][SEGMENTATION][0]) == 6  # a triangle: 3 points kept
    # the polygons serve mask IoU (not only their boxes)
    from qa.geometry import mask_iou

    iou = mask_iou([poly[SEGMENTATION]], [[[10, 10, 50, 10, 50, 25, 10, 25]]], height=50,
                   width=100)
    assert iou[0, 0] == pytest.approx(0.5, abs=0.05)


# ------------------------------------------------------------------ Roboflow VOC, Create ML
def test_roboflow_voc_split_folders(tmp_path):
    for split, names in (("train", ["a.jpg", "b.jpg"]), ("valid", ["c.jpg"])):
        for k, n in enumerate(names):
            make_image(tmp_path / split / n, 64, 48, seed=k)
            (tmp_path / split / n.replace(".jpg", ".xml")).write_text(
                _xml(n, [("dog", (1, 1, 10, 10))] * (k + 1), folder=""))
    ds = qa.load(tmp_path)
    assert ds.format == "voc"
    assert ds.summary()["splits"] == {"train": 2, "val": 1}
    assert ds.summary()["boxes"] == 1 + 2 + 1
    assert sorted(ds.images[FILE_NAME]) == ["train/a.jpg", "train/b.jpg", "valid/c.jpg"]
    assert qa.validate(ds).n_errors == 0


def test_createml_split_folders(tmp_path):
    for split, names in (("train", ["a.jpg", "b.jpg"]), ("test", ["c.jpg"])):
        entries = []
        for k, n in enumerate(names):
            make_image(tmp_path / split / n, 50, 40, seed=k)
            entries.append({"image": n, "annotations": [
                {"label": "cat", "coordinates": {"x": 20, "y": 15, "width": 10, "height": 6}}
            ] * k})
        (tmp_path / split / "_annotations.createml.json").write_text(json.dumps(entries))
    assert sniff_format(tmp_path) == "createml"
    ds = qa.load(tmp_path)
    assert ds.summary()["splits"] == {"train": 2, "test": 1}
    assert ds.summary()["boxes"] == 0 + 1 + 0
    a = ds.annotations.iloc[0]
    assert (a[X], a[Y], a[W], a[H]) == (15, 12, 10, 6)  # the centre, in pixels
    assert qa.validate(ds).n_errors == 0


def test_ultralytics_classification_folders(tmp_path):
    for split in ("train", "val"):
        for k, cls in enumerate(("ok", "defect")):
            make_image(tmp_path / split / cls / f"{split}{k}.jpg", 8, 8, seed=k)
    ds = qa.load(tmp_path)
    assert ds.format == "imagefolder" and ds.summary()["image_labels"] == 4
    assert ds.summary()["splits"] == {"train": 2, "val": 2}


def test_labelimg_path_hint_is_followed_only_inside_the_root(tmp_path):
    make_image(tmp_path / "pics" / "a.jpg", 64, 48)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "a.xml").write_text(
        _xml("a.jpg", [("cat", (1, 1, 9, 9))], folder="elsewhere",
             path="C:\\Users\\me\\proj\\pics\\a.jpg"))
    ds = qa.load(tmp_path)
    assert list(ds.images[FILE_NAME]) == ["pics/a.jpg"] and ds.images["readable"].all()
    (tmp_path / "annotations" / "a.xml").write_text(
        _xml("a.jpg", [("cat", (1, 1, 9, 9))], folder="../../etc"))
    ds = qa.load(tmp_path)
    assert not ds.images[FILE_NAME].iloc[0].startswith("..")


# ------------------------------------------------------------------ refusals
def test_split_folders_with_only_images_say_so(tmp_path):
    for split in ("train", "valid", "test"):
        make_image(tmp_path / split / "a.jpg", 8, 8)
    with pytest.raises(DatasetError) as e:
        qa.load(tmp_path)
    msg = str(e.value)
    assert "`train/` holds 1 image" in msg and "no labels file" in msg
    assert "class sub-folders" not in msg  # it never blames something that is not there


def test_images_folder_alone_is_not_a_class(tmp_path):
    make_image(tmp_path / "images" / "a.jpg", 8, 8)
    make_image(tmp_path / "images" / "b.jpg", 8, 8)
    with pytest.raises(DatasetError, match=r"`images/` holds 2 images.*nothing here labels "
                                           r"them"):
        qa.load(tmp_path)


def test_one_hot_csv_multi_label_and_unlabelled(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "_classes.csv").write_text(
        "filename, cat, dog, bird\na.jpg, 1, 1, 0\nb.jpg, 0, 0, 0\nc.jpg, 0, 0, 1\n")
    ds = qa.load(tmp_path, probe=False)
    assert ds.n_images == 3 and ds.summary()["image_labels"] == 3 and not ds.has_boxes
    per_image = ds.annotations.merge(ds.images, on="image_id").groupby(FILE_NAME).size()
    assert per_image.to_dict() == {"train/a.jpg": 2, "train/c.jpg": 1}
    assert sorted(ds.category_names.values()) == ["bird", "cat", "dog"]


def test_mixed_split_folders_name_each(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "_annotations.coco.json").write_text('{"images": []}')
    (tmp_path / "valid").mkdir()
    (tmp_path / "valid" / "_annotations.csv").write_text("filename,class,xmin,ymin,xmax,ymax\n")
    with pytest.raises(DatasetError, match=r"train/: coco, valid/: csv"):
        qa.load(tmp_path)


def test_folder_of_text_files_points_at_yolo(tmp_path):
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "b.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"holds 2 \.txt files.*YOLO labels: put them in "
                                           r"labels/ beside images/"):
        qa.load(tmp_path)


def test_explicit_format_that_does_not_fit_says_what_is_there(tmp_path):
    for n in ("a", "b"):
        make_image(tmp_path / "images" / f"{n}.jpg", 8, 8)
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / f"{n}.xml").write_text(_xml(f"{n}.jpg", []))
    assert sniff_format(tmp_path) == "voc"  # LabelImg, not "no Annotations/ folder"
    with pytest.raises(DatasetError, match=r"no COCO \*\.json file.*`annotations/` holds 2 "
                                           r"\.xml files"):
        qa.load(tmp_path, format="coco")


# ------------------------------------------------------------------ unlisted images, rounding
def test_images_not_in_the_labels_are_counted(tmp_path):
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        make_image(tmp_path / "train" / n, 10, 10)
    (tmp_path / "train" / "_annotations.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,10,10,cat,1,1,4,4\n")
    ds = qa.load(tmp_path)
    assert ds.n_images == 1
    msgs = ds.load_issues.loc[ds.load_issues["check"] == "unlisted_images", "message"]
    assert msgs.tolist() == ["2 images in `train/` have no entry in `_annotations.csv` (e.g. "
                             "b.jpg, c.jpg); they are not part of the loaded dataset. Label "
                             "them, or delete them if they are left over."]
    assert (ds.load_issues["severity"] == "info").all()


def test_float_rounding_is_not_a_border_crossing(tmp_path):
    """YOLO's normalised floats put a full-width box 0.01 px past the edge: not a crossing."""
    from qa.balance import compute_class_balance

    (tmp_path / "data.yaml").write_text("train: images\nnames: ['a']\n")
    make_image(tmp_path / "images" / "a.jpg", 300, 200)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.50001667 0.5 1.0 1.0\n0 0.5 0.5 0.2 0.2\n")
    ds = qa.load(tmp_path)
    box = ds.annotations.iloc[0]
    assert 0 < box[X] + box[W] - 300 < 0.5 - 1e-3  # 0.01 px over
    r = compute_class_balance(ds)
    assert not r.boxes["crosses_border"].any() and r.boxes["touches_border"].iloc[0]
    assert "box_outside_image" not in _checks(ds)


def test_image_label_names_file_and_split():
    from qa.dataset import image_label

    assert image_label("JPEGImages/BloodImage_00037.jpg", "val") == \
        "'JPEGImages/BloodImage_00037.jpg' (val)"
    assert image_label("valid/a.jpg", "val") == "'valid/a.jpg'"
    assert image_label("a.jpg", None) == image_label("a.jpg", np.nan) == "'a.jpg'"


def test_progress_bars_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    make_image(tmp_path / "images" / "a.jpg", 8, 8)
    (tmp_path / "data.yaml").write_text("train: images\nnames: ['a']\n")
    assert main(["info", str(tmp_path)]) == 0
    assert "reading image headers" not in capsys.readouterr().err  # stderr is captured
    import qa.cli as cli

    monkeypatch.setattr(cli, "on_terminal", lambda: True)
    assert cli.progress_bar("x") is not None and cli.fraction_bar("x") is not None
    monkeypatch.setattr(cli, "on_terminal", lambda: False)
    assert cli.progress_bar("x") is None and cli.fraction_bar("x") is None


def test_split_from_image_file_names_is_kept(tmp_path):
    ds = qa.load(Path(__file__).resolve().parents[1] / "data" / "real" / "roboflow_coco_chess",
                 probe=False)
    assert set(ds.images[SPLIT].astype(str)) == {"train", "val", "test"}
