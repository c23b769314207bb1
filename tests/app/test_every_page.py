"""Every page renders, without an exception or an error box, on datasets of other shapes than
the sample: one annotator and no model (YOLO), two annotators (consensus undefined), image
classification folders, and labels whose image files are all absent. What a page cannot show
for such a dataset it says in words; it never crashes."""

from __future__ import annotations

import json

import pytest

import qa
from tests.app.pagetest import run_page, texts
from tests.conftest import coco_doc, write_jpeg

PAGES = ["overview", "report", "balance", "agreement", "outliers", "duplicates", "quality",
         "disagreement", "review"]


def _yolo_one_annotator(root):
    for i in range(6):
        write_jpeg(root / "images" / f"im{i}.jpg", size=(80, 60), seed=i)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"im{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.3\n")
    (root / "data.yaml").write_text("train: images\nnames: [cat, dog]\n")
    return root


def _coco_two_annotators(root):
    imgs = [(i, f"{i}.jpg", 64, 48) for i in range(1, 6)]
    for i, f, _, _ in imgs:
        write_jpeg(root / "images" / f, seed=i)
    (root / "annotations").mkdir(parents=True)
    for name, dx in (("ann", 0), ("ben", 3)):
        anns = [(10 * i + k, i, 1 + k, (5 + dx + 20 * k, 5, 15, 20)) for i in range(1, 6)
                for k in range(2)]
        (root / "annotations" / f"{name}.json").write_text(json.dumps(coco_doc(imgs, anns)))
    return root


def _classification(root):
    for cls in ("cat", "dog"):
        for i in range(4):
            write_jpeg(root / cls / f"{cls}{i}.jpg", seed=i + (10 if cls == "dog" else 0))
    return root


def _no_image_files(root):
    doc = coco_doc([(i, f"{i}.jpg", 64, 48) for i in range(1, 4)],
                   [(i, i, 1, (1, 2, 20, 10)) for i in range(1, 4)])
    (root / "labels.json").write_text(json.dumps(doc))
    return root / "labels.json"


SHAPES = {"yolo_one_annotator": _yolo_one_annotator, "coco_two_annotators":
          _coco_two_annotators, "classification": _classification,
          "no_image_files": _no_image_files}


@pytest.fixture(scope="module", params=list(SHAPES))
def shaped(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    return request.param, qa.load(SHAPES[request.param](root))


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_every_dataset_shape(shaped, page):
    name, ds = shaped
    at = run_page(page, ds, f"shape-{name}")
    assert not at.exception, (name, page, at.exception)
    assert not at.error, (name, page, [e.value for e in at.error])
    assert at.title and at.title[0].value  # the page says what it is
    shown = texts(at) + " ".join(str(m.value) for m in at.metric)
    assert shown.strip(), (name, page, "the page shows nothing")


def test_two_annotators_say_consensus_is_undefined(tmp_path):
    ds = qa.load(_coco_two_annotators(tmp_path))
    assert ds.annotators == ("ann", "ben")
    at = run_page("agreement", ds, "shape-two-annotators-text")
    assert not at.exception
    assert "with 2 annotators the consensus is undefined" in texts(at).lower()


def test_outliers_page_says_why_nothing_can_be_embedded(tmp_path):
    ds = qa.load(_no_image_files(tmp_path))
    at = run_page("outliers", ds, "shape-no-files-outliers")
    assert not at.exception
    shown = texts(at)
    assert "0 of 3 could be embedded. 3 could not be read" in shown, shown
    assert "not embedded yet" not in shown
    assert not [b for b in at.button if b.key == "out_embed"]  # nothing to press
