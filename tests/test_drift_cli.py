"""`dataset-qa compare` and the health report's drift area, on small datasets written in
tmp_path (pixels generated with fixed seeds)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from qa.cli import main
from tests.conftest import SAMPLE, coco_doc


def coco_set(root, n: int, seed: int, *, classes=(1, 2), dark: bool = False, split=None):
    """n 96 x 72 pictures (gradient and blocks; much darker with ``dark``), one box each,
    classes cycling through ``classes``, as one COCO file."""
    rng = np.random.default_rng(seed)
    imgs, anns = [], []
    for i in range(1, n + 1):
        arr = np.zeros((72, 96, 3), np.uint8)
        arr[:] = np.linspace(60, 200, 96, dtype=np.uint8)[None, :, None]
        for _ in range(5):
            x, y = rng.integers(0, 80), rng.integers(0, 56)
            arr[y:y + 12, x:x + 12] = rng.integers(40, 255, 3)
        if dark:
            arr = (arr * 0.2).astype(np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / "images" / f"{seed}_{i}.png")
        imgs.append((i, f"{seed}_{i}.png", 96, 72))
        anns.append((i, i, classes[i % len(classes)], (10, 10, 20 + i % 7, 20)))
    doc = coco_doc(imgs, anns, categories=((1, "cat"), (2, "dog"), (3, "fox")))
    if split:
        for im in doc["images"]:
            im["split"] = split
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(doc))
    return root


def test_compare_gates_a_drifting_batch(tmp_path, capsys):
    a = coco_set(tmp_path / "a", 40, 1)
    b = coco_set(tmp_path / "b", 40, 2, classes=(3,), dark=True)
    code = main(["compare", str(a), str(b), "--embeddings", "skip", "--fail-on-drift",
                 "--csv", str(tmp_path / "uncovered.csv")])
    out = capsys.readouterr().out
    assert code == 1
    assert "Drift in 3 of 3 signals" in out and "labels      DRIFT" in out
    assert "Class mix" in out and "fox" in out and "Image statistics" in out
    assert "uncovered images written to" in out
    assert len((tmp_path / "uncovered.csv").read_text().splitlines()) == 41  # all 40 + header
    assert main(["compare", str(a), str(b), "--embeddings", "skip", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "drift" and doc["metrics"]["n_drift_signals"] == 3
    assert {s["signal"] for s in doc["signals"] if not s["measured"]} == {"embeddings"}


def test_compare_a_dataset_with_itself_and_its_splits(tmp_path, capsys):
    a = coco_set(tmp_path / "a", 30, 1)
    assert main(["compare", str(a), str(a), "--embeddings", "skip", "--json",
                 "--fail-on-drift"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "no drift"
    assert doc["metrics"]["n_files_changed"] == 0 and doc["metrics"]["n_labels_changed"] == 0
    assert main(["compare", str(SAMPLE), "--splits", "train", "test", "--embeddings", "skip",
                 "--permutations", "199"]) == 0
    out = capsys.readouterr().out
    assert "test (50 images) compared with train (202 images)" in out


def test_compare_says_what_is_wrong_in_one_line(tmp_path, capsys):
    a = coco_set(tmp_path / "a", 10, 1)
    assert main(["compare", str(a), "--embeddings", "skip"]) == 2
    assert "give the dataset B to compare with A" in capsys.readouterr().err
    assert main(["compare", str(a), "--splits", "train", "test", "--embeddings", "skip"]) == 2
    assert "split 'train' has no images" in capsys.readouterr().err
    assert main(["compare", str(a), str(tmp_path / "missing"), "--embeddings", "skip"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_the_report_gains_a_drift_area_with_a_reference(tmp_path, capsys):
    from qa.report import build_report

    import qa

    ref = coco_set(tmp_path / "ref", 40, 1)
    new = qa.load(coco_set(tmp_path / "new", 40, 2, classes=(3,), dark=True))
    plain = build_report(new, embeddings="skip", thumbnails=0)
    assert plain.area_scores["drift"] is None
    assert plain.check("like_the_reference").status == "skipped"
    assert "no reference dataset configured" in plain.check("like_the_reference").reason
    report = build_report(new, embeddings="skip", thumbnails=0,
                          options={"drift": {"reference": str(ref)}})
    like = report.check("like_the_reference")
    assert like.status == "fail" and like.value == 3  # labels, images and coverage drift
    covers = report.check("reference_covers")
    assert covers.status == "fail" and covers.n_evidence == 40
    assert covers.link.startswith("compare?image_id=")
    assert report.area_scores["drift"] == 0
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "new"), "--out", str(out), "--embeddings", "skip",
                 "--reference", str(ref), "--formats", "json", "--no-history"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["area_scores"]["drift"] == 0
