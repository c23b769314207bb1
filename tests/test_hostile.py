"""Hostile inputs (issue 14): uploads that try to read outside their folder, resource bombs,
inputs that used to crash, and bad data that used to pass without a word.

One rule for paths (qa/paths.py): a path whose real location is outside the dataset root is
never opened or listed, and an upload is confined to its extraction folder."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import yaml

import qa
from qa.dataset import DatasetError
from qa.io.archive import extract_zip, extraction_folder
from tests.conftest import write_jpeg


def _zip(entries: dict[str, bytes | str]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    buf.seek(0)
    return buf


def _jpeg_bytes(size=(32, 24), seed=0) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        out, format="JPEG")
    return out.getvalue()


def _upload(tmp_path: Path, entries: dict) -> tuple[Path, Path]:
    """(dataset folder, extraction folder) of a zip extracted under tmp_path/uploads."""
    parent = tmp_path / "uploads"
    parent.mkdir(exist_ok=True)
    folder = extract_zip(_zip(entries), dest_parent=parent)
    return folder, extraction_folder(folder)


@pytest.fixture
def outside(tmp_path):
    """A YOLO-looking folder beside the uploads: what an attacker would like to read."""
    o = tmp_path / "outside"
    write_jpeg(o / "images" / "secret.jpg", size=(64, 48))
    (o / "labels").mkdir(parents=True)
    (o / "labels" / "secret.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return o


def _yolo_zip(cfg: dict) -> dict:
    return {"ds/data.yaml": yaml.safe_dump(cfg), "ds/images/train/a.jpg": _jpeg_bytes(),
            "ds/labels/train/a.txt": "0 0.5 0.5 0.5 0.5\n"}


# ----------------------------------------------------------------------------- section 1
@pytest.mark.parametrize("path_value", ["ABS", "../..", "../../../outside"])
def test_upload_yolo_path_outside_the_extraction_is_refused(tmp_path, outside, path_value):
    pv = str(outside) if path_value == "ABS" else path_value
    folder, box = _upload(tmp_path, _yolo_zip({"path": pv, "train": "images",
                                               "names": ["x"]}))
    with pytest.raises(DatasetError, match="outside the uploaded dataset's folder"):
        qa.load(folder, confine_to=box)


def test_upload_yolo_split_entry_outside_is_not_read(tmp_path, outside):
    rel = Path("..") / ".." / ".." / "outside" / "images"
    folder, box = _upload(tmp_path, _yolo_zip({"path": ".", "train": "images/train",
                                               "val": str(rel), "names": ["x"]}))
    assert (folder / rel).resolve() == outside / "images"  # the entry does point there
    ds = qa.load(folder, confine_to=box)
    assert ds.images.file_name.tolist() == ["images/train/a.jpg"]
    issues = qa.validate(ds).issues
    assert issues.loc[issues.check == "unsafe_path", "message"].str.contains(
        "leads outside the dataset root").any()


def test_upload_with_only_a_coco_json_does_not_guess_a_root_outside(tmp_path):
    # the extraction's parent holds a file the JSON names: the old guess climbed there
    write_jpeg(tmp_path / "uploads" / "a.jpg")
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
           "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    folder, box = _upload(tmp_path, {"labels.json": json.dumps(doc)})
    assert folder == box
    ds = qa.load(folder / "labels.json", confine_to=box)
    assert ds.root == box
    assert not ds.images.exists.iloc[0]  # not found inside the upload, and not read outside


def test_upload_image_root_outside_is_refused(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [],
           "categories": [{"id": 1, "name": "x"}]}
    folder, box = _upload(tmp_path, {"labels.json": json.dumps(doc)})
    with pytest.raises(DatasetError, match="outside the uploaded dataset's folder"):
        qa.load(folder / "labels.json", confine_to=box, image_root=tmp_path)


def test_local_yolo_list_entry_outside_opens_neither_image_nor_label(tmp_path, outside):
    ds_dir = tmp_path / "ds"
    write_jpeg(ds_dir / "images" / "a.jpg", size=(64, 48))
    (ds_dir / "labels").mkdir(parents=True)
    (ds_dir / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (ds_dir / "train.txt").write_text("images/a.jpg\n../outside/images/secret.jpg\n")
    (ds_dir / "data.yaml").write_text("train: train.txt\nnames: [x]\n")
    ds = qa.load(ds_dir)
    rep = qa.validate(ds)
    sid = ds.images.loc[ds.images.file_name.str.contains("secret"), "image_id"].item()
    assert sid in rep.issues.loc[rep.issues.check == "unsafe_path", "image_id"].tolist()
    assert (ds.annotations.image_id != sid).all()
    # the label was not opened: nothing was said about it
    assert not rep.issues.message.str.contains("secret.txt").any()


def test_local_symlinked_folders_outside_are_not_listed(tmp_path, outside):
    # image folder: a class folder that is a link out of the root
    root = tmp_path / "cls"
    write_jpeg(root / "cat" / "a.jpg")
    (root / "dog").symlink_to(outside / "images", target_is_directory=True)
    ds = qa.load(root)
    assert ds.images.file_name.tolist() == ["cat/a.jpg"]
    assert "dog" not in ds.categories.name.tolist()
    assert (ds.load_issues.check == "unsafe_path").sum() == 1
    # YOLO: a split folder that is a link out
    y = tmp_path / "y"
    write_jpeg(y / "images" / "train" / "a.jpg")
    (y / "images" / "val").symlink_to(outside / "images", target_is_directory=True)
    (y / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [x]\n")
    ds = qa.load(y)
    assert ds.images.file_name.tolist() == ["images/train/a.jpg"]
    assert "leads outside the dataset root" in " ".join(ds.load_issues.message)


def test_local_symlinked_file_and_folder_follow_the_same_rule(tmp_path, outside):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "link.jpg").symlink_to(outside / "images" / "secret.jpg")
    (root / "sub").symlink_to(outside / "images", target_is_directory=True)
    doc = {"images": [{"id": 1, "file_name": "link.jpg"}, {"id": 2, "file_name": "sub/secret.jpg"}],
           "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    (root / "labels.json").write_text(json.dumps(doc))
    ds = qa.load(root / "labels.json")
    assert ds.images.unsafe_path.tolist() == [True, True]
    assert not ds.images.readable.any()


def test_voc_filename_with_dotdot_lists_nothing_outside(tmp_path, outside):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>../../outside/images/secret</filename>"
        "<object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>"
        "</bndbox></object></annotation>")
    ds = qa.load(root)
    fn = ds.images.file_name.item()
    assert "secret.jpg" not in fn or fn.endswith("secret")  # no listing found the real file
    assert ds.images.unsafe_path.item()


# ----------------------------------------------------------------------------- section 2
def _alias_bomb(levels: int = 9) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for c in "bcdefghijk"[:levels]:
        lines.append(f"{c}: &{c} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = c
    return "\n".join(lines) + f"\nnames: *{prev}\ntrain: images\n"


def test_yaml_alias_bomb_is_refused_fast_naming_the_file(tmp_path):
    import time

    write_jpeg(tmp_path / "images" / "a.jpg")
    (tmp_path / "data.yaml").write_text(_alias_bomb())
    assert (tmp_path / "data.yaml").stat().st_size < 1024
    t = time.perf_counter()
    with pytest.raises(DatasetError, match=r"data\.yaml: .*alias bomb"):
        qa.load(tmp_path)
    assert time.perf_counter() - t < 5


def test_load_yaml_safe_refuses_loops_and_depth_and_keeps_ordinary_aliases(tmp_path):
    from qa.io._common import load_yaml_safe

    p = tmp_path / "c.yaml"
    p.write_text("a: &a [1, *a]\n")
    with pytest.raises(DatasetError, match="alias bomb"):
        load_yaml_safe(p)
    p.write_text("[" * 3000 + "]" * 3000)
    with pytest.raises(DatasetError, match="c.yaml: .*nested too deeply"):
        load_yaml_safe(p)
    p.write_text("x: [\n")
    with pytest.raises(DatasetError, match=r"c\.yaml: malformed YAML at line 2"):
        load_yaml_safe(p)
    p.write_text("base: &b {iou: 0.5}\nrun: *b\n")
    assert load_yaml_safe(p) == {"base": {"iou": 0.5}, "run": {"iou": 0.5}}


@pytest.mark.parametrize("fmt", ["coco", "labelstudio"])
def test_deep_json_nesting_is_a_dataset_error(tmp_path, fmt):
    p = tmp_path / "deep.json"
    deep = "[" * 100_000 + "]" * 100_000
    if fmt == "coco":
        p.write_text('{"images": [], "annotations": [' + deep + "]}")
    else:
        value = '{"a":' * 5000 + "1" + "}" * 5000
        p.write_text('[{"data": {"image": "a.jpg"}, "annotations": [{"result": '
                     '[{"type": "rectanglelabels", "value": ' + value + "}]}]}]")
    with pytest.raises(DatasetError, match="deep.json: .*nested too deeply"):
        qa.load(p, format=fmt)


def test_many_mid_sized_entries_trip_the_whole_archive_ratio(tmp_path):
    from qa.io import archive

    entries = {f"ds/z{i}.bin": b"\0" * (1024**2) for i in range(12)}  # 12 MiB of zeros
    with pytest.raises(DatasetError, match="expands .*x overall"):
        extract_zip(_zip(entries), dest_parent=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert archive.MIN_BYTES_FOR_RATIO < 12 * 1024**2  # each entry alone is under the floor


# ----------------------------------------------------------------------------- section 3
def _stored_zip(name: str = "ds/a.txt", data: bytes = b"hello world " * 10) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(name, data)
    return bytearray(buf.getvalue())


def _patch(raw: bytearray, local_off: int, central_off: int, value: bytes) -> io.BytesIO:
    """Overwrite a field in the local header (offset from 'PK\\3\\4') and in the central
    directory entry (offset from 'PK\\1\\2')."""
    lo, ce = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    raw[lo + local_off:lo + local_off + len(value)] = value
    raw[ce + central_off:ce + central_off + len(value)] = value
    return io.BytesIO(bytes(raw))


def _encrypted():
    return _patch(_stored_zip(), 6, 8, b"\x01\x00")  # general purpose flag bit 0


def _deflate64():
    return _patch(_stored_zip(), 8, 10, b"\x09\x00")  # compression method 9


def _crc_corrupt():
    raw = _stored_zip()
    i = raw.index(b"hello world")
    raw[i] = ord("j")
    return io.BytesIO(bytes(raw))


def _lying_size():
    return _patch(_stored_zip(), 22, 24, (5).to_bytes(4, "little"))  # says 5 bytes


@pytest.mark.parametrize("make,words", [(_encrypted, "encrypted"), (_deflate64, "compression"),
                                        (_crc_corrupt, "damaged"), (_lying_size, "damaged")])
def test_bad_zips_are_dataset_errors_and_leave_nothing(tmp_path, make, words):
    with pytest.raises(DatasetError, match=words) as exc:
        extract_zip(make(), dest_parent=tmp_path)
    assert "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    from qa.cli import main
    from tests.conftest import SAMPLE

    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                                 "annotations": [], "categories": [{"id": 1, "name": "x"}]}))
    quarantined = tmp_path / "q.json"
    quarantined.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "image_id": "x", "category_id": 1, "bbox": [1, 2, 3, 4]}]}))
    cases = [(["agreement", str(empty)], "needs annotations"),
             (["agreement", str(quarantined)], "needs annotations"),
             (["stats", str(SAMPLE), "--annotator", "nobody", "--json"], "'nobody'"),
             (["agreement", str(SAMPLE), "--iou", "7", "--json"], "iou_threshold")]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("dataset-qa: error:") and words in err[0]


def test_cli_unexpected_error_is_one_line(monkeypatch, coco_dir, capsys):
    import qa as qa_mod
    from qa.cli import main

    def boom(*a, **k):
        raise KeyError("surprise")

    monkeypatch.setattr(qa_mod, "load", boom)
    assert main(["info", str(coco_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected KeyError" in err and "Traceback" not in err


def test_cli_broken_pipe_is_quiet(monkeypatch, coco_dir, capsys):
    import sys

    from qa.cli import main

    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise ValueError("no fd")  # what a pytest-captured stream says

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["info", str(coco_dir), "--json"]) == 0


def test_file_name_longer_than_255_bytes_is_reported_not_raised(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "x" * 300 + ".jpg", "width": 4, "height": 4}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    ds = qa.load(tmp_path / "c.json")
    checks = qa.validate(ds).issues.check.tolist()
    assert "missing_file" in checks


# ----------------------------------------------------------------------------- section 4
def _coco(tmp_path, anns, images=None, cats=((1, "cat"),)):
    images = images or [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}]
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": c, "name": n} for c, n in cats]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    return tmp_path / "c.json"


def _issues(ds, check=None):
    rep = qa.validate(ds).issues
    return rep if check is None else rep[rep.check == check]


def test_truncated_jpeg_is_reported_by_validation(tmp_path):
    write_jpeg(tmp_path / "a.jpg", size=(64, 48))
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) * 2 // 3])
    ds = qa.load(_coco(tmp_path, []))
    bad = _issues(ds, "unreadable_file")
    assert len(bad) == 1 and "cut short" in bad.message.item()


def test_whole_jpeg_with_padding_or_appended_data_is_not_flagged(tmp_path):
    write_jpeg(tmp_path / "a.jpg", size=(64, 48))
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data + b"\0" * 16)
    write_jpeg(tmp_path / "b.jpg", size=(64, 48))
    (tmp_path / "b.jpg").write_bytes((tmp_path / "b.jpg").read_bytes() + b"trailer" * 400)
    imgs = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}]
    ds = qa.load(_coco(tmp_path, [], images=imgs))
    assert ds.images.readable.all()


def test_prediction_scores_and_boxes_are_validated(tmp_path):
    write_jpeg(tmp_path / "a.jpg", size=(64, 48))
    labels = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9]}])
    preds = [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9], "score": s}
             for s in (7.5, -0.3, 0.9)]
    preds.append({"image_id": 1, "category_id": 1, "bbox": [5, 5, -3, 4], "score": 0.5})
    preds.append({"image_id": 1, "category_id": 1, "bbox": [50, 40, 30, 30], "score": 0.5})
    (tmp_path / "p.json").write_text(json.dumps(preds))
    ds = qa.load(labels, predictions=tmp_path / "p.json")
    rep = _issues(ds)
    assert sorted(rep[rep.check == "bad_score"].message.str.extract(r"score (\S+)")[0]) == \
        ["-0.3", "7.5"]
    assert rep[rep.check == "bad_box_size"].message.str.contains("prediction 4").all()
    assert rep[rep.check == "box_outside_image"].message.str.contains("prediction 5").any()


def test_predictions_on_unknown_image_ids_are_summarised(tmp_path):
    labels = _coco(tmp_path, [])
    preds = [{"image_id": 1000 + i, "category_id": 1, "bbox": [1, 1, 2, 2], "score": 0.5}
             for i in range(3)] + [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2],
                                    "score": 0.5}]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    ds = qa.load(labels, predictions=tmp_path / "p.json", probe=False)
    row = _issues(ds, "prediction_image_mismatch")
    assert len(row) == 1 and "3 of 4 predictions" in row.message.item() \
        and "file_name" in row.message.item()


def test_cvat_label_not_in_meta_is_quarantined_with_a_suggestion(tmp_path):
    (tmp_path / "t.xml").write_text(
        "<annotations><meta><task><labels><label><name>cat</name></label><label><name>dog"
        "</name></label></labels></task></meta><image id='0' name='a.jpg' width='64' "
        "height='48'><box label='catt' xtl='1' ytl='1' xbr='5' ybr='5'/><box label='dog' "
        "xtl='1' ytl='1' xbr='5' ybr='5'/></image></annotations>")
    ds = qa.load(tmp_path / "t.xml", probe=False)
    assert ds.categories.name.tolist() == ["cat", "dog"] and len(ds.annotations) == 1
    msg = _issues(ds, "unknown_category").message.item()
    assert "'catt'" in msg and "did you mean 'cat'" in msg


def test_coco_bbox_null_is_quarantined_not_an_image_label(tmp_path):
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": None},
            {"id": 2, "image_id": 1, "category_id": 1},  # no key: an image-level label
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}]
    # typed read, and the lenient one (a 3-number bbox sends the file there)
    for more in ([], [{"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]):
        ds = qa.load(_coco(tmp_path, anns + more), probe=False)
        assert sorted(ds.annotations.ann_id.tolist()) == [2, 3]
        assert ds.annotations.set_index("ann_id").w.isna().tolist() == [True, False]
        bad = _issues(ds, "malformed_annotation")
        assert bad.message.str.contains('"bbox": null').sum() == 1
        assert bad.loc[bad.message.str.contains("\"bbox\": null"), "ann_id"].tolist() == [1]


def test_csv_encodings_nul_bytes_quotes_and_sizes(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_bytes("image,label,width,height\na.jpg,café,64,48\n".encode("cp1252"))
    ds = qa.load(p, probe=False)
    assert ds.categories.name.tolist() == ["café"]
    assert ds.images[["width", "height"]].values.tolist() == [[64, 48]]
    assert (_issues(ds).check == "encoding").any()
    p.write_bytes(b"image,label\na.jpg,c\x00at\nb.jpg,dog\n")
    ds = qa.load(p, probe=False)
    assert ds.categories.name.tolist() == ["dog"]
    assert _issues(ds, "malformed_row").message.str.contains("control character").any()
    p.write_text('image,label\nb.jpg,dog\n"a.jpg,cat\nc.jpg,cat\n')
    msg = " ".join(_issues(qa.load(p, probe=False), "malformed_row").message)
    assert "labels.csv:3: a quote" in msg and "empty label" not in msg


def test_bom_is_accepted_and_utf16_named(tmp_path):
    p = tmp_path / "c.json"
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [],
           "categories": [{"id": 1, "name": "x"}]}
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())
    assert len(qa.load(p, probe=False).images) == 1
    p.write_bytes(json.dumps(doc).encode("utf-16"))
    with pytest.raises(DatasetError, match="UTF-16"):
        qa.load(p, format="coco")


def test_seven_column_yolo_line_is_not_read_as_a_polygon(tmp_path):
    write_jpeg(tmp_path / "images" / "a.jpg", size=(64, 48))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2 0.9 3\n0 .1 .1 .5 .1 .3 .6\n")
    (tmp_path / "data.yaml").write_text("train: images\nnames: [x]\n")
    ds = qa.load(tmp_path)
    assert len(ds.annotations) == 1  # the real triangle
    msg = _issues(ds, "malformed_label").message.item()
    assert "not normalised" in msg and "box_outside_image" not in _issues(ds).check.tolist()


def test_labelstudio_annotations_object_and_empty_annotator_name_the_file(tmp_path):
    tasks = [{"id": 7, "data": {"image": "a.jpg"},
              "annotations": {"completed_by": 1, "result": [
                  {"type": "choices", "value": {"choices": ["cat"]}}]}},
             {"id": 8, "data": {"image": "b.jpg"},
              "annotations": [{"completed_by": 2, "result": []}]}]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    ds = qa.load(tmp_path / "ls.json", probe=False)
    assert len(ds.annotations) == 1
    rep = _issues(ds)
    assert rep.message.str.contains("'annotations' is an object").any()
    empty = rep[rep.check == "empty_annotator"].message.tolist()
    assert len(empty) == 1 and "ls.json" in empty[0] and "[8]" in empty[0]


# ----------------------------------------------------------------------------- section 5
def test_cvat_yolo_darknet_export_loads(tmp_path):
    d = tmp_path / "images" / "export"  # an 'images' folder above must not confuse labels
    write_jpeg(d / "obj_train_data" / "a.jpg", size=(64, 48))
    write_jpeg(d / "obj_train_data" / "b.jpg", size=(64, 48), seed=1)
    (d / "obj_train_data" / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    (d / "obj_train_data" / "b.txt").write_text("")
    (d / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nnames = data/obj.names\n"
                                "backup = backup/\n")
    (d / "obj.names").write_text("cat\ndog\n")
    (d / "train.txt").write_text("data/obj_train_data/a.jpg\ndata/obj_train_data/b.jpg\n")
    ds = qa.load(d)
    assert ds.format == "yolo" and ds.images.file_name.tolist() == [
        "obj_train_data/a.jpg", "obj_train_data/b.jpg"]
    assert ds.images.split.astype(str).tolist() == ["train", "train"]
    assert ds.categories.name.tolist() == ["cat", "dog"]
    a = ds.annotations.iloc[0]
    assert (a.category_id, a.x, a.y, a.w, a.h) == (1, 24.0, 12.0, 16.0, 24.0)
    assert qa.validate(ds).n_errors == 0


def test_roboflow_darknet_export_loads(tmp_path):
    for split, seed in (("train", 0), ("valid", 1)):
        write_jpeg(tmp_path / split / f"{split}1.jpg", size=(64, 48), seed=seed)
        (tmp_path / split / f"{split}1.txt").write_text("0 0.5 0.5 0.5 0.5\n")
        (tmp_path / split / "_darknet.labels").write_text("ring\n")
    ds = qa.load(tmp_path)
    assert ds.format == "yolo" and len(ds.images) == 2 and len(ds.annotations) == 2
    assert ds.categories.name.tolist() == ["ring"]
    assert sorted(ds.images.split.astype(str)) == ["train", "val"]


def test_darknet_export_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "obj_train_data").mkdir()
    (tmp_path / "obj_train_data" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "obj.names").write_text("cat\n")
    with pytest.raises(DatasetError, match="read as yolo but found 0 images"):
        qa.load(tmp_path)


def _voc_xml(fname: str, box=(11, 21, 30, 40), datumaro=False) -> str:
    src = ("<source><database>Unknown</database><annotation>Unknown</annotation>"
           "<image>Unknown</image></source>" if datumaro
           else "<source><database>Unknown</database></source>")
    x0, y0, x1, y1 = box
    return (f"<annotation><folder></folder><filename>{fname}</filename>{src}<size><width>64"
            "</width><height>48</height><depth>3</depth></size><object><name>cat</name>"
            f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
            "</bndbox></object></annotation>")


def test_flat_voc_folder_labelimg_style_with_png_images(tmp_path):
    write_jpeg(tmp_path / "a.jpg", size=(64, 48))
    write_jpeg(tmp_path / "b.png", size=(64, 48), seed=1)
    (tmp_path / "a.xml").write_text(_voc_xml("a.jpg"))
    (tmp_path / "b.xml").write_text(_voc_xml("b.jpg"))  # says .jpg, the file is a PNG
    ds = qa.load(tmp_path)
    assert ds.format == "voc" and ds.images.file_name.tolist() == ["a.jpg", "b.png"]
    assert qa.validate(ds).n_errors == 0 and len(ds.annotations) == 2


def test_voc_coordinates_one_based_default_zero_based_for_cvat(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(_voc_xml("a.jpg"))
    (tmp_path / "Annotations" / "b.xml").write_text(_voc_xml("b.jpg", datumaro=True))
    ds = qa.load(tmp_path, probe=False)
    boxes = ds.annotations[["x", "y", "w", "h"]].values.tolist()
    assert boxes == [[10, 20, 20, 20], [11, 21, 19, 19]]  # devkit; CVAT's (as its COCO says)
    assert (ds.load_issues.check == "voc_coordinates").sum() == 1
    for mode, want in (("one_based", [10, 20, 20, 20]), ("zero_based", [11, 21, 19, 19])):
        ds = qa.load(tmp_path, probe=False, voc_coordinates=mode)
        assert ds.annotations[["x", "y", "w", "h"]].values.tolist() == [want, want]
    with pytest.raises(ValueError, match="voc_coordinates must be one of"):
        qa.load(tmp_path, probe=False, voc_coordinates="1")


def test_voc_with_only_trainval_list(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(_voc_xml("a.jpg"))
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "trainval.txt").write_text("a\n")
    assert qa.load(tmp_path, probe=False).images.split.astype(str).tolist() == ["trainval"]


@pytest.mark.parametrize("fmt,content", [
    ("coco", {"images": [], "annotations": [], "categories": []}),
    ("labelstudio", [{"id": 1, "data": {"text": "no image"}}]),
])
def test_recognised_format_with_zero_images_is_an_error(tmp_path, fmt, content):
    p = tmp_path / "x.json"
    p.write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=f"read as {fmt} but found 0 images; expected"):
        qa.load(p, format=fmt)


def _yolo_ds(tmp_path, n=25):
    """A YOLO dataset of n 100x100 images, classes cat/dog, one box each (class i % 2)."""
    d = tmp_path / "ds"
    for i in range(n):
        write_jpeg(d / "images" / f"im{i}.jpg", size=(100, 100), seed=i)
        (d / "labels").mkdir(parents=True, exist_ok=True)
        (d / "labels" / f"im{i}.txt").write_text(f"{i % 2} 0.3 0.4 0.2 0.3\n")
    (d / "data.yaml").write_text("train: images\nnames: [cat, dog]\n")
    return d


def test_yolo_predictions_in_conf_first_order_are_detected(tmp_path):
    d = _yolo_ds(tmp_path)
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(25):  # class conf cx cy w h: read the other way, boxes leave the image
        (pred / f"im{i}.txt").write_text(f"{i % 2} 0.9{i % 10} 0.3 0.4 0.2 0.3\n")
    ds = qa.load(d, predictions=pred)
    b = ds.predictions.iloc[0]
    assert (round(b.x), round(b.y), round(b.w), round(b.h)) == (20, 25, 20, 30)
    assert b.score == pytest.approx(0.90)
    assert (ds.load_issues.check == "prediction_columns").any()
    from qa.io import attach_predictions  # the other order, forced, gives boxes outside

    ds2, _ = attach_predictions(qa.load(d), pred, yolo_columns="class_box_conf")
    assert "prediction_image_mismatch" in qa.validate(ds2).issues.check.tolist()


def test_ultralytics_order_stays_when_both_orders_fit(tmp_path):
    d = _yolo_ds(tmp_path)
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(25):
        (pred / f"im{i}.txt").write_text(f"{i % 2} 0.3 0.4 0.2 0.3 0.5\n")
    ds = qa.load(d, predictions=pred)
    assert ds.predictions.score.eq(0.5).all()
    assert not (ds.load_issues.check == "prediction_columns").any()
    (pred / "im0.txt").write_text("0 0.3 0.4 0.2 0.3 3.5\n")  # a YOLO conf of 3.5
    bad = _issues(qa.load(d, predictions=pred), "bad_score")
    assert len(bad) == 1 and "score 3.5 is not a probability" in bad.message.item()


def test_prediction_class_names_map_by_name_and_swaps_are_warned(tmp_path):
    d = _yolo_ds(tmp_path)
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(25):  # the model's class 0 is 'dog'
        (pred / f"im{i}.txt").write_text(f"{1 - i % 2} 0.3 0.4 0.2 0.3 0.8\n")
    ds = qa.load(d, predictions=pred)  # no names: index = category id, all wrong
    warn = qa.validate(ds).issues
    assert warn.loc[warn.check == "class_mix_mismatch", "message"].str.contains(
        "class order").any()
    ds = qa.load(d, predictions=pred, prediction_names=["dog", "cat"])
    assert (ds.predictions.category_id.to_numpy() == ds.annotations.category_id.to_numpy()).all()
    assert "class_mix_mismatch" not in qa.validate(ds).issues.check.tolist()
    (pred / "classes.txt").write_text("dog\ncat\n")  # found without being told
    ds = qa.load(d, predictions=pred)
    assert (ds.predictions.category_id.to_numpy() == ds.annotations.category_id.to_numpy()).all()


def test_coco_results_with_file_names_match_by_name_not_id(tmp_path):
    labels = _coco(tmp_path, [], images=[{"id": 5, "file_name": "x/a.jpg", "width": 9,
                                          "height": 9},
                                         {"id": 6, "file_name": "x/b.jpg", "width": 9,
                                          "height": 9}])
    preds = [{"image_id": 6, "file_name": "a.jpg", "category_id": 1, "bbox": [1, 1, 2, 2],
              "score": 0.5}]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    ds = qa.load(labels, predictions=tmp_path / "p.json", probe=False)
    assert ds.predictions.image_id.tolist() == [5]


def test_cli_messages_suggest_image_root_and_name_predictions_flag(tmp_path, capsys):
    from qa.cli import main

    imgs = [{"id": i, "file_name": f"{i}.jpg", "width": 9, "height": 9} for i in range(1, 4)]
    labels = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}],
                   images=imgs)
    rep = qa.validate(qa.load(labels))
    hint = rep.issues[rep.issues.check == "images_not_found"]
    assert len(hint) == 1 and "--image-root" in hint.message.item()
    assert rep.n_errors == 3  # the hint does not count twice
    assert main(["info", str(labels)]) == 0
    assert "--image-root" in capsys.readouterr().out
    res = tmp_path / "results.json"
    res.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2],
                                "score": 0.5}]))
    assert main(["info", str(res)]) == 2
    assert "--predictions" in capsys.readouterr().err
    (tmp_path / "folder.csv").mkdir()
    assert main(["info", str(tmp_path / "folder.csv"), "--format", "csv"]) == 2
    err = capsys.readouterr().err
    assert "folder.csv: no CSV files here" in err and err.count("\n") == 1


def test_open_images_csv_is_named(tmp_path):
    p = tmp_path / "oidv6-train-annotations-bbox.csv"
    p.write_text("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax\n"
                 "000002b66c9c498e,xclick,/m/01g317,1,0.01,0.2,0.1,0.3\n")
    with pytest.raises(DatasetError, match="Open Images CSV"):
        qa.load(p)


# ----------------------------------------------------------------------------- section 6
def test_extractions_are_removed_when_replaced_and_stale_ones_at_startup(tmp_path):
    import os
    import subprocess
    import sys

    from qa.io import archive

    folder = extract_zip(_zip({"ds/a.txt": "1"}), dest_parent=tmp_path)
    box = extraction_folder(folder)
    assert box.parent == tmp_path and (box / archive.OWNER_FILE).read_text() == str(os.getpid())
    assert archive.remove_extraction(folder) and not box.exists()
    assert not archive.remove_extraction(tmp_path)  # never a folder it did not make
    # left by a server that is gone: its pid no longer runs
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = extraction_folder(extract_zip(_zip({"a.txt": "1"}), dest_parent=tmp_path))
    (stale / archive.OWNER_FILE).write_text(gone)
    mine = extraction_folder(extract_zip(_zip({"b.txt": "1"}), dest_parent=tmp_path))
    other = tmp_path / "not-ours"
    other.mkdir()
    assert archive.remove_stale_extractions(tmp_path) == [stale]
    assert mine.exists() and other.exists() and not stale.exists()


def test_picker_extraction_goes_with_its_owner(tmp_path, monkeypatch):
    import gc
    import tempfile

    from qa.app import picker

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    buf = _zip({"ds/a.txt": "1"}).getvalue()
    ex = picker.Extraction("d1", buf)
    box = extraction_folder(ex.folder)
    assert box.parent == tmp_path and box.exists()
    del ex
    gc.collect()
    assert not box.exists()  # the session (holder of the object) went: the folder went


def test_roboflow_yolov8_yaml_with_dotdot_splits_loads_inside_the_upload(tmp_path):
    entries = {"ds/data.yaml": "train: ../train/images\nval: ../valid/images\nnc: 1\n"
                               "names: ['ring']\n"}
    for split in ("train", "valid"):
        entries[f"ds/{split}/images/{split}.jpg"] = _jpeg_bytes()
        entries[f"ds/{split}/labels/{split}.txt"] = "0 0.5 0.5 0.5 0.5\n"
    folder, box = _upload(tmp_path, entries)
    ds = qa.load(folder, confine_to=box)
    assert sorted(ds.images.split.astype(str)) == ["train", "val"] and len(ds.annotations) == 2
    # a 'path:' that does not exist falls back to the yaml's folder, as Ultralytics does
    (folder / "data.yaml").write_text("path: ../datasets/coco128\ntrain: train/images\n"
                                      "names: [ring]\n")
    ds = qa.load(folder, confine_to=box)
    assert len(ds.images) == 1 and (ds.load_issues.check == "missing_root").any()


def test_zip_member_with_an_empty_name_is_refused(tmp_path):
    # found by the 5,000-example fuzz run: zipfile's is_dir() raised IndexError
    raw = bytearray(_stored_zip("ds/a.txt"))
    ce = raw.index(b"PK\x01\x02")
    raw[ce + 28:ce + 30] = b"\x00\x00"  # central directory: file name length 0
    buf = bytes(raw[:ce + 46]) + bytes(raw[ce + 46 + len("ds/a.txt"):])
    eocd = buf.index(b"PK\x05\x06")
    size = int.from_bytes(buf[eocd + 12:eocd + 16], "little") - len("ds/a.txt")
    buf = buf[:eocd + 12] + size.to_bytes(4, "little") + buf[eocd + 16:]
    with pytest.raises(DatasetError):
        extract_zip(io.BytesIO(buf), dest_parent=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_loader_flags_reach_the_readers(tmp_path, capsys):
    """--voc-coordinates, --prediction-names and --yolo-columns do on the command line what
    their load() arguments do (seen through `evaluate`, whose AP depends on each)."""
    from qa.cli import main

    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "a.xml").write_text(_voc_xml("a.jpg"))  # devkit: 10,20 20x20
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"image_id": 1, "file_name": "a.jpg", "category_id": 1,
                                "bbox": [10, 20, 20, 20], "score": 0.9}]))
    args = ["evaluate", str(voc), "--predictions", str(res), "--json"]
    ap = {}
    for mode in ("one_based", "zero_based"):  # 0-based reads 11,21 19x19: IoU 0.90 < 0.95
        assert main(args + ["--voc-coordinates", mode]) == 0
        ap[mode] = json.loads(capsys.readouterr().out)["stats"]
    assert ap["one_based"]["AP"] == pytest.approx(1.0)
    assert ap["zero_based"]["AP"] == pytest.approx(0.9)
    with pytest.raises(SystemExit):
        main(["info", str(voc), "--voc-coordinates", "1"])
    capsys.readouterr()

    d = _yolo_ds(tmp_path)
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(25):  # the model's class 0 is 'dog', and its confidence comes second
        (pred / f"im{i}.txt").write_text(f"{1 - i % 2} 0.95 0.3 0.4 0.2 0.3\n")
    names = tmp_path / "model_names.txt"
    names.write_text("dog\ncat\n")
    args = ["evaluate", str(d), "--predictions", str(pred), "--json"]
    assert main(args + ["--prediction-names", str(names)]) == 0
    good = json.loads(capsys.readouterr().out)["stats"]
    assert main(args) == 0  # without the names every prediction has the other class
    bad = json.loads(capsys.readouterr().out)["stats"]
    assert good["AP50"] == pytest.approx(1.0) and bad["AP50"] == pytest.approx(0.0)
    assert main(args + ["--prediction-names", str(names), "--yolo-columns",
                        "class_box_conf"]) == 0  # forced wrong order: boxes leave the image
    assert json.loads(capsys.readouterr().out)["stats"]["AP50"] < 0.5
