"""Tests of qa.io.export: the queue CSV, the COCO file of flagged images and the Label Studio
import file, each read back (the Label Studio file by this project's own reader), checked
against Label Studio's documented import format, and never written into the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qa
from qa.disagreement import compute_disagreement
from qa.io import labelstudio
from qa.io.export import (
    EXPORT_FILES,
    LS_CONFIG_FILE,
    export_queue,
    labelstudio_tasks,
    write_atomic,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture(scope="module")
def sample():
    ds = qa.load(SAMPLE, predictions=SAMPLE / "predictions" / "detector.json")
    return ds, compute_disagreement(ds, reference="alice")


@pytest.fixture(scope="module")
def exported(sample, tmp_path_factory):
    ds, r = sample
    out = tmp_path_factory.mktemp("export")
    return out, export_queue(ds, r, out)


def test_queue_csv(sample, exported):
    _, r = sample
    _, files = exported
    q = pd.read_csv(files["csv"])
    assert q["image_id"].tolist() == r.queue["image_id"].tolist()
    assert q["rank"].tolist() == list(range(1, len(q) + 1))
    assert q["label_quality"].is_monotonic_increasing
    row = q[q["image_id"] == 1].iloc[0]  # planted wrong class on image 1
    assert row["file_name"] == "test/000001.jpg" and "wrong class" in row["reasons"]
    assert "labelled triangle, the model says circle" in row["messages"]


def test_flagged_coco_reloads_with_every_annotator(sample, exported):
    ds, r = sample
    _, files = exported
    back = qa.load(files["coco"], image_root=SAMPLE)
    flagged = set(r.queue["image_id"])
    assert set(back.images["image_id"]) == flagged
    assert set(back.annotators) == {"alice", "bob", "carol"}
    mine = ds.annotations[ds.annotations["image_id"].isin(flagged)]
    assert len(back.annotations) == len(mine)
    a = back.annotations.set_index("ann_id").loc[mine["ann_id"], ["x", "y", "w", "h"]]
    np.testing.assert_allclose(a.to_numpy(), mine[["x", "y", "w", "h"]].to_numpy())


def test_labelstudio_file_follows_the_documented_import_format(exported):
    _, files = exported
    tasks = json.loads(files["labelstudio"].read_text())
    assert isinstance(tasks, list) and tasks
    config = (files["labelstudio"].parent / LS_CONFIG_FILE).read_text()
    assert '<RectangleLabels name="label" toName="image">' in config
    for t in tasks:
        assert set(t) == {"data", "annotations", "predictions"}
        assert t["data"]["image"].startswith("/data/local-files/?d=")
        for block in t["annotations"] + t["predictions"]:
            for res in block["result"]:
                assert res["type"] == "rectanglelabels"
                assert (res["from_name"], res["to_name"]) == ("label", "image")
                assert res["original_width"] > 0 and res["original_height"] > 0
                v = res["value"]
                assert set(v) == {"x", "y", "width", "height", "rotation", "rectanglelabels"}
                assert all(-1 <= v[k] <= 101 for k in ("x", "y", "width", "height"))
                assert len(v["rectanglelabels"]) == 1 and v["rectanglelabels"][0] in config
        for p in t["predictions"]:
            assert p["model_version"] == "detector"
            assert all(0 <= res["score"] <= 1 for res in p["result"])


def test_labelstudio_file_reloads_with_our_reader(sample, exported):
    ds, r = sample
    _, files = exported
    back = labelstudio.read(files["labelstudio"], image_root=SAMPLE)
    flagged = r.queue["image_id"].tolist()
    files_flagged = set(ds.images.set_index("image_id").loc[flagged, "file_name"])
    assert set(back.images["file_name"]) == files_flagged
    # annotations: alice's boxes on the flagged images, back to pixels
    mine = ds.annotations_of("alice")
    mine = mine[mine["image_id"].isin(flagged)]
    assert len(back.annotations) == len(mine)
    fn = ds.images.set_index("image_id")["file_name"]
    key = lambda df, f: sorted(zip(f, np.round(df["x"], 6), np.round(df["y"], 6),
                                   np.round(df["w"], 6), np.round(df["h"], 6)))
    back_fn = back.images.set_index("image_id")["file_name"]
    assert key(back.annotations, back_fn.loc[back.annotations["image_id"]].to_numpy()) == \
        key(mine, fn.loc[mine["image_id"]].to_numpy())
    assert set(back.category_names.values()) <= set(ds.category_names.values())
    # predictions: the model's confident boxes on the flagged images, scores kept
    p = ds.predictions
    p = p[p["image_id"].isin(flagged) & (p["score"] >= r.conf_threshold)]
    assert len(back.predictions) == len(p)
    assert sorted(np.round(back.predictions["score"], 6)) == sorted(np.round(p["score"], 6))
    assert set(back.predictions["model"].astype(str)) == {"detector"}


def test_exports_never_write_into_the_dataset(sample, tmp_path):
    ds, r = sample
    with pytest.raises(ValueError, match="inside the dataset"):
        export_queue(ds, r, SAMPLE / "exports")
    assert not (SAMPLE / "exports").exists()
    with pytest.raises(ValueError, match="unknown export formats"):
        export_queue(ds, r, tmp_path, formats=("xlsx",))
    assert set(EXPORT_FILES) == {"csv", "coco", "labelstudio"}


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    p = write_atomic(tmp_path / "a" / "x.txt", b"hello")
    assert p.read_bytes() == b"hello" and [f.name for f in p.parent.iterdir()] == ["x.txt"]


def test_labelstudio_skips_images_of_unknown_size(sample):
    ds, r = sample
    imgs = ds.images.copy()
    first = r.queue["image_id"].iloc[0]
    imgs.loc[imgs["image_id"] == first, ["width", "height"]] = pd.NA
    import dataclasses

    tasks, skipped = labelstudio_tasks(dataclasses.replace(ds, images=imgs), r)
    assert skipped == [first] and len(tasks) == len(r.queue) - 1
