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
@pytest.mark.parametrize("path_value", ["ABS", "../..", "../../outside"])
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
                                        (_crc_corrupt, "damaged"), (_lying_size, "")])
def test_bad_zips_are_dataset_errors_and_leave_nothing(tmp_path, make, words):
    with pytest.raises(DatasetError, match=words) as exc:
        extract_zip(make(), dest_parent=tmp_path)
    assert "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def _cli(*argv) -> tuple[int, str]:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "qa.cli", *argv], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
    return r.returncode, r.stderr


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
