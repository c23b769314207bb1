"""Every page renders, without an exception or an error box, on datasets of other shapes than
the sample: one annotator and no model (YOLO), two annotators (consensus undefined), image
classification folders, and labels whose image files are all absent. What a page cannot show
for such a dataset it says in words; it never crashes."""

from __future__ import annotations

import pytest

import qa
from tests.app.pagetest import run_page, texts
from tests.shapes import SHAPES, coco_two_annotators, no_image_files

PAGES = ["overview", "report", "balance", "agreement", "outliers", "duplicates", "quality",
         "disagreement", "review"]


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
    ds = qa.load(coco_two_annotators(tmp_path))
    assert ds.annotators == ("ann", "ben")
    at = run_page("agreement", ds, "shape-two-annotators-text")
    assert not at.exception
    assert "with 2 annotators the consensus is undefined" in texts(at).lower()


def test_outliers_page_says_why_nothing_can_be_embedded(tmp_path):
    ds = qa.load(no_image_files(tmp_path))
    at = run_page("outliers", ds, "shape-no-files-outliers")
    assert not at.exception
    shown = texts(at)
    assert "0 of 3 could be embedded; 3 could not be read (e.g. 1.jpg: file not found)" in shown
    assert "not embedded yet" not in shown
    assert not [b for b in at.button if b.key == "out_embed"]  # nothing to press
