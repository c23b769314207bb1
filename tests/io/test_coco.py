import json

import numpy as np
import pytest

import qa
from qa.dataset import DatasetError
from tests.conftest import coco_doc


def test_load_single_file(coco_dir):
    ds = qa.load(coco_dir)
    assert ds.format == "coco"
    assert ds.n_images == 3 and len(ds.annotations) == 3
    assert ds.root == coco_dir / "images"
    assert ds.images["readable"].all()
    a = ds.annotations.set_index("ann_id")
    np.testing.assert_allclose(a.loc[11, ["x", "y", "w", "h"]].to_numpy(float), [30, 5, 10, 30])
    assert ds.category_names == {1: "cat", 2: "dog"}
    assert qa.validate(ds).ok


def test_per_annotator_files_match_images_by_file_name(tmp_path):
    (tmp_path / "annotations").mkdir()
    a = coco_doc([(1, "x.jpg", 10, 10), (2, "y.jpg", 10, 10)], [(1, 1, 1, (0, 0, 5, 5))])
    # bob's export numbers the images differently: matched by file name
    b = coco_doc([(7, "y.jpg", 10, 10), (9, "x.jpg", 10, 10)],
                 [(1, 9, 1, (1, 1, 5, 5)), (2, 7, 2, (0, 0, 3, 3))])
    (tmp_path / "annotations" / "alice.json").write_text(json.dumps(a))
    (tmp_path / "annotations" / "bob.json").write_text(json.dumps(b))
    ds = qa.load(tmp_path, probe=False)
    assert ds.annotators == ("alice", "bob")
    assert ds.n_images == 2
    bob = ds.annotations_of("bob")
    x_id = int(ds.images.loc[ds.images.file_name == "x.jpg", "image_id"].iloc[0])
    assert set(bob["image_id"]) == {x_id, int(ds.images.loc[ds.images.file_name == "y.jpg",
                                                            "image_id"].iloc[0])}
    assert ds.annotations["ann_id"].is_unique  # colliding ids across files renumbered


def test_split_files_become_splits(tmp_path):
    (tmp_path / "annotations").mkdir()
    for split, iid in (("train", 1), ("val", 2)):
        doc = coco_doc([(iid, f"{split}.jpg", 10, 10)], [(iid, iid, 1, (0, 0, 5, 5))])
        (tmp_path / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(doc))
    ds = qa.load(tmp_path, probe=False)
    assert ds.annotators == ("annotator",)
    assert dict(zip(ds.images.file_name, ds.images.split.astype(str))) == {
        "train.jpg": "train", "val.jpg": "val"}


def test_annotator_key_and_segmentation_kept(tmp_path):
    doc = coco_doc([(1, "a.jpg", 10, 10)], [(1, 1, 1, (0, 0, 4, 4)), (2, 1, 1, (1, 1, 4, 4))])
    doc["annotations"][0]["annotator"] = "ann1"
    doc["annotations"][1]["annotator"] = "ann2"
    doc["annotations"][0]["segmentation"] = [[0, 0, 4, 0, 4, 4]]
    doc["annotations"][1]["iscrowd"] = 1
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    ds = qa.load(p, probe=False)
    assert set(ds.annotators) == {"ann1", "ann2"}
    assert json.loads(bytes(ds.annotations["segmentation"].iloc[0])) == [[0, 0, 4, 0, 4, 4]]
    assert ds.annotations["iscrowd"].tolist() == [0, 1]


def test_malformed_json_names_file_and_line(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"images": [\n {"id": 1, "file_name": "a.jpg"},\n oops]}')
    with pytest.raises(DatasetError, match=r"broken\.json: malformed JSON at line 3"):
        qa.load(p)


def test_wrong_top_level_shape(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"images": {"id": 1}, "annotations": []}')
    with pytest.raises(DatasetError, match="'images' must be a list"):
        qa.load(p, format="coco")


def test_bad_rows_are_quarantined_not_dropped_silently(tmp_path):
    doc = coco_doc([(1, "a.jpg", 10, 10)], [(1, 1, 1, (0, 0, 4, 4))])
    doc["annotations"].append({"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]})
    doc["annotations"].append({"id": 3, "image_id": "one", "category_id": 1, "bbox": [1, 2, 3, 4]})
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    ds = qa.load(p, probe=False)
    assert ds.annotations["ann_id"].tolist() == [1]
    issues = qa.validate(ds).issues
    bad = issues[issues.check == "malformed_annotation"]
    assert len(bad) == 2
    assert bad.message.str.contains(r"c\.json: annotations\[1\]").any()
    assert bad.message.str.contains("4 numbers").any()


def test_strict_raises_on_validation_errors(coco_dir):
    doc = json.loads((coco_dir / "annotations" / "instances.json").read_text())
    doc["annotations"][0]["category_id"] = 99
    (coco_dir / "annotations" / "instances.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="category_id 99 is not in the categories list"):
        qa.load(coco_dir, strict=True)
    assert qa.load(coco_dir).n_images == 3  # lenient by default


def test_user_files_are_not_modified(coco_dir):
    before = {p: p.read_bytes() for p in coco_dir.rglob("*") if p.is_file()}
    ds = qa.load(coco_dir)
    qa.validate(ds)
    after = {p: p.read_bytes() for p in coco_dir.rglob("*") if p.is_file()}
    assert before == after


def test_predictions_file_given_as_dataset_is_explained(tmp_path):
    p = tmp_path / "results.json"
    p.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                              "score": 0.9}]))
    with pytest.raises(DatasetError, match="predictions file"):
        qa.load(p)


def test_out_of_range_number_is_a_dataset_error(tmp_path):
    p = tmp_path / "big.json"
    p.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "width": 1' + "0" * 40 + '},'
                 '{"id": 2' + "0" * 40 + ', "file_name": "b.jpg"}], '
                 '"categories": [{"id": 1, "name": "x"}]}')
    ds = qa.load(p, probe=False)  # a size out of range is unknown; an id out of range quarantined
    assert ds.images["width"].isna().all() and ds.images["image_id"].tolist() == [1]
    assert "images[1] needs an integer 'id'" in qa.validate(ds).issues["message"].iloc[0]
    p.write_text('{"images": [], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, '
                 '"area": 1e999}]}')
    with pytest.raises(DatasetError, match="out of range"):
        qa.load(p)  # msgspec refuses 1e999 even untyped: a clear error, not a crash


def test_same_tables_as_pycocotools(tmp_path):
    import contextlib
    import io

    from pycocotools.coco import COCO

    from benchmarks.bench_load import write_synthetic_coco

    p = tmp_path / "synthetic.json"
    write_synthetic_coco(p, n_images=300, n_anns=2000, seed=7)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = COCO(str(p))
    ds = qa.load(p, probe=False)
    a = ds.annotations.set_index("ann_id")
    assert sorted(a.index) == sorted(ref.anns)
    for aid in list(ref.anns)[::97]:
        r = ref.anns[aid]
        assert a.loc[aid, "image_id"] == r["image_id"]
        assert a.loc[aid, "category_id"] == r["category_id"]
        np.testing.assert_allclose(a.loc[aid, ["x", "y", "w", "h"]].to_numpy(float), r["bbox"])
        assert a.loc[aid, "area"] == pytest.approx(r["area"])
        assert json.loads(bytes(a.loc[aid, "segmentation"])) == r["segmentation"]
    imgs = ds.images.set_index("image_id")
    assert sorted(imgs.index) == sorted(ref.imgs)
    some = next(iter(ref.imgs.values()))
    assert imgs.loc[some["id"], "width"] == some["width"]
    assert ds.category_names == {c["id"]: c["name"] for c in ref.cats.values()}
