"""The sample-data generator: deterministic, equal to the committed sample_data/, loadable,
and its PLANTED.json is exact and meets every minimum the analyses are scored against."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import qa
from qa import sample

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
ANNOTATORS = ("alice", "bob", "carol")


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def planted() -> dict:
    return json.loads((SAMPLE / "PLANTED.json").read_text())


@pytest.fixture(scope="module")
def coco() -> dict[str, dict]:
    return {a: json.loads((SAMPLE / "annotations" / f"{a}.json").read_text()) for a in ANNOTATORS}


@pytest.fixture(scope="module")
def preds() -> list[dict]:
    return json.loads((SAMPLE / "predictions" / "detector.json").read_text())


def _anns_by_image(doc: dict) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        out.setdefault(a["image_id"], []).append(a)
    return out


# --------------------------------------------------------------------------- determinism
def _same_pixels(a: Path, b: Path) -> bool:
    """Another JPEG encoder build (a Pillow upgrade) may change bytes, not pictures."""
    with Image.open(a) as ia, Image.open(b) as ib:
        if ia.size != ib.size:
            return False
        diff = np.abs(np.asarray(ia.convert("RGB"), dtype=np.int16)
                      - np.asarray(ib.convert("RGB"), dtype=np.int16))
    return float(diff.mean()) <= 1.0


def test_generation_is_byte_identical_and_equal_to_committed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    sample.generate(a)
    sample.generate(b)
    ha, hb = _hashes(a), _hashes(b)
    assert ha == hb
    committed = _hashes(SAMPLE)
    assert set(ha) == set(committed), sorted(set(ha) ^ set(committed))[:10]
    differing = sorted(k for k in ha if ha[k] != committed[k] and k != "MANIFEST.sha256")
    # Labels and manifest must match exactly; a JPEG may differ in bytes only when this
    # machine's Pillow encodes the same pixels differently from the one that made them.
    not_images = [k for k in differing if not k.endswith(".jpg")]
    corrupt = "images/" + json.loads((SAMPLE / "PLANTED.json").read_text())["corrupt_file"][
        "file_name"]  # garbled on purpose: no pixels to compare
    moved = [k for k in differing if k.endswith(".jpg") and k != corrupt
             and not _same_pixels(a / k, SAMPLE / k)]
    assert not not_images and not moved, (
        "sample_data/ differs from what qa.sample generates; regenerate with "
        f"`python -m qa.sample sample_data` and commit. Differing: {(not_images + moved)[:10]}")
    manifest = (SAMPLE / "MANIFEST.sha256").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in manifest)
    assert listed == {k: v for k, v in committed.items() if k != "MANIFEST.sha256"}


def test_sample_size_is_small():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= 15 * 2 ** 20


def test_regenerating_over_previous_output_removes_stale_files(tmp_path):
    out = tmp_path / "s"
    sample.generate(out, n_images=sample.MIN_IMAGES + 40)
    assert len(list((out / "images").rglob("*.jpg"))) == sample.MIN_IMAGES + 40 - 1
    sample.generate(out, n_images=sample.MIN_IMAGES)  # a previous output: allowed
    assert len(list((out / "images").rglob("*.jpg"))) == sample.MIN_IMAGES - 1
    listed = {ln.split("  ", 1)[1] for ln in (out / "MANIFEST.sha256").read_text().splitlines()}
    assert set(_hashes(out)) == listed | {"MANIFEST.sha256"}


def test_refuses_foreign_nonempty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        sample.generate(tmp_path, n_images=sample.MIN_IMAGES)
    assert sample.main([str(tmp_path), "--n-images", str(sample.MIN_IMAGES)]) == 2
    sample.generate(tmp_path, n_images=sample.MIN_IMAGES, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "PLANTED.json").is_file()


def test_too_few_images_is_a_clear_error():
    with pytest.raises(ValueError, match="n_images must be"):
        sample.build(10)


# --------------------------------------------------------------------------- loading
def test_loads_with_three_annotators_and_five_classes(planted, preds):
    ds = qa.load(SAMPLE)
    assert ds.annotators == ANNOTATORS
    assert len(ds.categories) == 5
    assert ds.n_images == planted["n_images"] == 300
    assert ds.root.resolve() == (SAMPLE / "images").resolve()
    assert set(ds.splits) == {"train", "val", "test"}
    # the planted ann_ids are the loaded ids (disjoint per annotator: no renumbering)
    anns = ds.annotations.set_index("ann_id")
    for e in planted["label_errors"]:
        for a, aid in e["ann_ids"].items():
            if aid is not None:
                assert anns.loc[aid, "image_id"] == e["image_id"]
                assert str(anns.loc[aid, "annotator"]) == a
    assert len(preds) == planted["model"]["n_predictions"]
    assert {p["image_id"] for p in preds} <= set(ds.images["image_id"])
    if importlib.util.find_spec("qa.io.predictions") is not None:  # may not exist yet
        dsp = qa.load(SAMPLE, predictions=SAMPLE / "predictions" / "detector.json")
        assert len(dsp.predictions) == planted["model"]["n_predictions"]
        pr = dsp.predictions.set_index("pred_id")
        for fp in planted["model"]["false_positives"]:
            assert pr.loc[fp["pred_id"], "image_id"] == fp["image_id"]
            assert pr.loc[fp["pred_id"], "score"] == pytest.approx(fp["score"])


def test_validate_reports_the_corrupt_and_the_missing_file(planted):
    report = qa.validate(qa.load(SAMPLE))
    errs = report.errors
    assert set(errs.loc[errs["check"] == "missing_file", "image_id"]) == {
        planted["missing_file"]["image_id"]}
    assert set(errs.loc[errs["check"] == "unreadable_file", "image_id"]) == {
        planted["corrupt_file"]["image_id"]}
    assert not (SAMPLE / "images" / planted["missing_file"]["file_name"]).exists()
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(SAMPLE / "images" / planted["corrupt_file"]["file_name"])
    assert not (report.issues["check"] == "box_outside_image").any()


# --------------------------------------------------------------------------- planted issues
def test_planted_minimums(planted, coco):
    rc = planted["rare_class"]
    assert rc["count"] < 0.1 * rc["most_common_count"]
    counts = {}
    for a in coco["alice"]["annotations"]:
        counts[a["category_id"]] = counts.get(a["category_id"], 0) + 1
    assert counts[rc["category_id"]] < 0.1 * max(counts.values())
    near = planted["near_duplicates"]
    assert len(near) >= 8 and sum(n["cross_split"] for n in near) >= 3
    assert {n["kind"] for n in near} == {"resized", "recompressed", "flipped"}
    assert len(planted["exact_duplicates"]) >= 2
    assert len(planted["ood_images"]) >= 8
    kinds = [e["kind"] for e in planted["label_errors"]]
    for k in ("wrong_class", "missing_box", "bad_box", "spurious_box"):
        assert kinds.count(k) >= 5, k
    assert len(planted["empty_images"]) >= 5
    buckets = planted["instances"]["truth_size_buckets"]
    assert min(buckets.values()) > 50
    sp = planted["splits"]
    assert sp["train"] / sum(sp.values()) == pytest.approx(0.70, abs=0.05)


def test_issue_images_are_disjoint(planted):
    groups = {
        "empty": {e["image_id"] for e in planted["empty_images"]},
        "ood": {e["image_id"] for e in planted["ood_images"]},
        "errors": {e["image_id"] for e in planted["label_errors"]},
        "copies": {n["b"] for n in planted["near_duplicates"] + planted["exact_duplicates"]},
        "originals": {n["a"] for n in planted["near_duplicates"] + planted["exact_duplicates"]},
        "files": {planted["corrupt_file"]["image_id"], planted["missing_file"]["image_id"]},
    }
    seen: set[int] = set()
    for ids in groups.values():
        assert not (seen & ids)
        seen |= ids
    assert len(groups["errors"]) == len(planted["label_errors"])  # one error per image


def test_empty_and_ood_images_have_no_labels(planted, coco):
    for a in ANNOTATORS:
        labelled = set(_anns_by_image(coco[a]))
        assert not labelled & {e["image_id"] for e in planted["empty_images"]}
        assert not labelled & {e["image_id"] for e in planted["ood_images"]}


def test_annotator_files_share_images_and_categories(coco):
    ref = coco["alice"]
    for a in ANNOTATORS[1:]:
        assert coco[a]["images"] == ref["images"]
        assert coco[a]["categories"] == ref["categories"]
    assert all(im["split"] in ("train", "val", "test") for im in ref["images"])
    assert all(im["file_name"].startswith(im["split"] + "/") for im in ref["images"])


def test_annotator_profiles(planted, coco):
    m = {a: planted["annotators"][a]["measured"] for a in ANNOTATORS}
    assert 0.6 <= m["bob"]["mean_iou_vs_truth"] <= 0.75
    assert m["bob"]["mean_iou_vs_truth"] < min(m["alice"]["mean_iou_vs_truth"],
                                               m["carol"]["mean_iou_vs_truth"]) - 0.15
    assert m["alice"]["recall_vs_truth"] == 1.0
    assert m["carol"]["recall_vs_truth"] < 0.85
    carol = planted["annotators"]["carol"]
    assert all(max(d["bbox"][2:]) < 32 for d in carol["dropped_small_objects"])
    by_id = {a["id"]: a for a in coco["carol"]["annotations"]}
    assert carol["confused_ann_ids"]
    assert all(by_id[i]["category_id"] == 1 for i in carol["confused_ann_ids"])  # ring->circle


def test_duplicates_are_real(planted, coco):
    files = {im["id"]: im for im in coco["alice"]["images"]}
    img = lambda i: SAMPLE / "images" / files[i]["file_name"]  # noqa: E731
    for d in planted["exact_duplicates"]:
        assert img(d["a"]).read_bytes() == img(d["b"]).read_bytes()
        assert files[d["a"]]["file_name"] != files[d["b"]]["file_name"]
    alice = _anns_by_image(coco["alice"])
    for n in planted["near_duplicates"]:
        a = np.asarray(Image.open(img(n["a"])).convert("L"), dtype=float)
        b = Image.open(img(n["b"])).convert("L")
        if n["kind"] == "flipped":
            b = b.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        b = np.asarray(b.resize((a.shape[1], a.shape[0]), Image.Resampling.BILINEAR),
                       dtype=float)
        assert np.abs(a - b).mean() < 6, n  # the same picture
        assert n["cross_split"] == (n["split_a"] != n["split_b"])
        # the copied labels moved with the picture
        wa, ha = n["size_a"]
        wb, hb = n["size_b"]
        boxes_a = sorted(a_["bbox"] for a_ in alice[n["a"]])
        expected = []
        for x, y, w, h in boxes_a:
            if n["kind"] == "flipped":
                x = wa - x - w
            expected.append([x * wb / wa, y * hb / ha, w * wb / wa, h * hb / ha])
        got = sorted(a_["bbox"] for a_ in alice[n["b"]])
        assert np.allclose(sorted(expected), got, atol=0.02), n


def test_label_errors_are_in_every_file_and_the_model_sees_the_truth(planted, coco, preds):
    anns = {a: {x["id"]: x for x in coco[a]["annotations"]} for a in ANNOTATORS}
    by_image = {a: _anns_by_image(coco[a]) for a in ANNOTATORS}
    pred_by_image: dict[int, list[dict]] = {}
    for p in preds:
        pred_by_image.setdefault(p["image_id"], []).append(p)
    for e in planted["label_errors"]:
        iid, kind = e["image_id"], e["kind"]
        strong = [p for p in pred_by_image.get(iid, []) if p["score"] >= 0.5]
        if kind == "missing_box":
            assert all(v is None for v in e["ann_ids"].values())
            for a in ANNOTATORS:  # nobody labelled the object
                assert all(_iou(x["bbox"], e["true_bbox"]) < 0.1 for x in by_image[a].get(iid, []))
        else:
            for a in ANNOTATORS:
                x = anns[a][e["ann_ids"][a]]
                assert x["image_id"] == iid and x["category_id"] == e["labelled_category_id"]
                assert _iou(x["bbox"], e["labelled_bbox"]) > (0.5 if a == "bob" else 0.85)
        if kind == "spurious_box":  # nothing there, and the model agrees
            assert all(_iou(p["bbox"], e["labelled_bbox"]) < 0.1 for p in strong)
            continue
        # the model predicts the true object with its true class and a high score
        hit = [p for p in strong if _iou(p["bbox"], e["true_bbox"]) > 0.7]
        assert len(hit) == 1 and hit[0]["category_id"] == e["true_category_id"], e
        assert hit[0]["score"] >= 0.85
        if kind == "wrong_class":
            assert e["labelled_category_id"] != e["true_category_id"]
            assert e["labelled_bbox"] == e["true_bbox"]
        if kind == "bad_box":
            t, lab = e["true_bbox"], e["labelled_bbox"]
            shift = max(abs(lab[0] - t[0]) / t[2], abs(lab[1] - t[1]) / t[3])
            assert shift > 0.5 and _iou(t, lab) < 0.5


def test_model_false_positives_are_low_score_and_absent_on_broken_files(planted, preds):
    m = planted["model"]
    for fp in m["false_positives"]:
        p = preds[fp["pred_index"]]
        assert p["image_id"] == fp["image_id"] and p["score"] < m["false_positive_max_score"]
    assert min(p["score"] for i, p in enumerate(preds)
               if i not in {f["pred_index"] for f in m["false_positives"]}) >= 0.5
    broken = {planted["corrupt_file"]["image_id"], planted["missing_file"]["image_id"]}
    assert not broken & {p["image_id"] for p in preds}
    assert 0 < len(m["misses"]) < 0.1 * len(preds)
