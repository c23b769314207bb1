"""Item keys survive a reload, renamed files and new ids; fingerprints change with the boxes."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

import qa
from qa.results import findings_frame
from qa.review import item_keys
from tests.conftest import coco_doc, write_jpeg


def _write(root, images, anns):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(coco_doc(images, anns)))
    return qa.load(root)


@pytest.fixture
def two_versions(tmp_path):
    """v1: a.jpg (boxes 10, 11), b.jpg; v2: the same images renamed and moved, every id
    changed, box 11 moved by a fraction of a pixel."""
    v1 = tmp_path / "v1"
    write_jpeg(v1 / "images" / "a.jpg", seed=0)
    write_jpeg(v1 / "images" / "b.jpg", seed=1)
    ds1 = _write(v1, [(1, "a.jpg", 64, 48), (2, "b.jpg", 64, 48)],
                 [(10, 1, 1, (1, 2, 20, 10)), (11, 1, 2, (30, 5, 10, 30)),
                  (12, 2, 1, (0, 0, 64, 48))])
    v2 = tmp_path / "v2"
    (v2 / "images" / "train").mkdir(parents=True)
    shutil.copy(v1 / "images" / "a.jpg", v2 / "images" / "train" / "renamed_a.jpg")
    shutil.copy(v1 / "images" / "b.jpg", v2 / "images" / "train" / "renamed_b.jpg")
    ds2 = _write(v2, [(101, "train/renamed_a.jpg", 64, 48), (102, "train/renamed_b.jpg", 64, 48)],
                 [(510, 101, 1, (1, 2, 20, 10)), (511, 101, 2, (30.3, 5, 10, 30)),
                  (512, 102, 1, (0, 0, 64, 48))])
    return ds1, ds2


def _findings(img_a, img_b, box_a, box_b, box_other):
    return findings_frame([
        {"analysis": "disagreement", "kind": "label_error", "severity": "warning",
         "image_id": img_a, "ann_ids": (box_b,), "message": "m"},
        {"analysis": "disagreement", "kind": "label_error", "severity": "warning",
         "image_id": img_a, "ann_ids": (box_a,), "message": "m"},
        {"analysis": "quality", "kind": "blurry", "severity": "info", "image_id": img_b},
        {"analysis": "duplicates", "kind": "leakage", "severity": "error", "image_id": img_a,
         "related_image_ids": (img_b,)},
        {"analysis": "balance", "kind": "rare_class", "severity": "warning", "category_id": 2},
        {"analysis": "outliers", "kind": "outlier", "severity": "info", "image_id": img_b,
         "ann_ids": (box_other,)},
    ], page="review")


def test_keys_survive_rename_new_ids_and_float_noise(two_versions):
    ds1, ds2 = two_versions
    k1 = item_keys(ds1, _findings(1, 2, 10, 11, 12))
    k2 = item_keys(ds2, _findings(101, 102, 510, 511, 512))
    assert k1["item_key"].iloc[:4].tolist() == k2["item_key"].iloc[:4].tolist()
    assert k1["item_key"].iloc[5] == k2["item_key"].iloc[5]
    assert k1["item_key"].is_unique
    # the moved box (30 -> 30.3) keeps its key but not its fingerprint; the others keep both
    assert k1["fingerprint"][0] != k2["fingerprint"][0]
    assert (k1["fingerprint"].iloc[1:4] == k2["fingerprint"].iloc[1:4]).all()
    assert k1["image_sha"][0] == k2["image_sha"][0] and len(k1["image_sha"][0]) == 64
    assert k1["image_sha"][4] is None
    # a dataset-level item is scoped by the dataset's name (v1 / v2 here)
    assert k1["item_key"][4] != k2["item_key"][4]


def test_key_changes_with_kind_box_and_class(two_versions):
    ds1, _ = two_versions
    f = _findings(1, 2, 10, 11, 12)
    base = item_keys(ds1, f)["item_key"]
    other_kind = item_keys(ds1, f.assign(kind="missing_label"))["item_key"]
    assert not set(base) & set(other_kind)
    other_class = f.copy()
    other_class.loc[4, "category_id"] = 1
    assert item_keys(ds1, other_class)["item_key"][4] != base[4]
    # same keys on a second call (deterministic), and in another row order
    again = item_keys(ds1, f.iloc[::-1])
    assert again["item_key"].reindex(base.index).tolist() == base.tolist()


def test_class_change_keeps_key_changes_fingerprint(tmp_path):
    write_jpeg(tmp_path / "a" / "images" / "x.jpg", seed=3)
    ds1 = _write(tmp_path / "a", [(1, "x.jpg", 64, 48)], [(1, 1, 1, (5, 5, 10, 10))])
    shutil.copytree(tmp_path / "a" / "images", tmp_path / "b" / "images")
    ds2 = _write(tmp_path / "b", [(1, "x.jpg", 64, 48)], [(1, 1, 2, (5, 5, 10, 10))])
    f = findings_frame([{"analysis": "disagreement", "kind": "label_error",
                         "severity": "warning", "image_id": 1, "ann_ids": (1,)}])
    a, b = item_keys(ds1, f), item_keys(ds2, f)
    assert a["item_key"][0] == b["item_key"][0]
    assert a["fingerprint"][0] != b["fingerprint"][0]


def test_identical_images_share_a_key_missing_files_do_not(tmp_path):
    write_jpeg(tmp_path / "images" / "a.jpg", seed=0)
    shutil.copy(tmp_path / "images" / "a.jpg", tmp_path / "images" / "copy.jpg")
    ds = _write(tmp_path, [(1, "a.jpg", 64, 48), (2, "copy.jpg", 64, 48),
                           (3, "gone1.jpg", 64, 48), (4, "gone2.jpg", 64, 48)], [])
    f = findings_frame([{"analysis": "balance", "kind": "empty_image", "severity": "info",
                         "image_id": i} for i in (1, 2, 3, 4)])
    k = item_keys(ds, f)
    assert k["item_key"][0] == k["item_key"][1]
    assert k["item_key"][2] != k["item_key"][3]
    assert k["image_sha"][2] == "missing:gone1.jpg"


def test_bad_input_is_refused(two_versions):
    ds1, _ = two_versions
    with pytest.raises(ValueError, match=r"lack columns \['ann_ids'"):
        item_keys(ds1, pd.DataFrame({"analysis": ["x"]}).assign(
            kind="k", image_id=1, pred_ids=[()], related_image_ids=[()], category_id=None,
            annotator=None))
    with pytest.raises(TypeError, match="needs a qa.Dataset, got DataFrame"):
        item_keys(pd.DataFrame(), findings_frame())
