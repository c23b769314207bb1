"""The Compare page with AppTest: splits of the sample, another dataset by path, datasets of
other shapes, a bad path and a deep link from the report."""

from __future__ import annotations

import pytest

import qa
from tests.app.pagetest import run_page, texts
from tests.conftest import SAMPLE
from tests.shapes import SHAPES
from tests.test_drift_cli import coco_set


def test_splits_of_the_sample_verdict_first(monkeypatch):
    at = run_page("compare", qa.load(SAMPLE), "cmp-sample")
    assert not at.exception, at.exception
    assert at.title[0].value == "Compare"
    assert at.selectbox(key="cmp_split_a").value == "train"
    assert at.selectbox(key="cmp_split_b").value == "test"
    verdict = [s.value for s in at.success] + [w.value for w in at.warning]
    assert verdict and verdict[0].startswith(("No drift", "Drift in"))
    shown = texts(at)
    for card in ("**Labels** :", "**Image statistics** :", "**Embeddings** :",
                 "**Coverage** :"):
        assert card in shown
    assert any(f"**Embeddings** {b}" in shown for b in (  # measured if an earlier test
        ":gray-badge[not measured]", ":green-badge[no drift]", ":orange-badge[drift]"))  # embedded
    assert "share too few files to be versions" in texts(at)
    at.selectbox(key="cmp_feature").set_value("contrast").run()
    assert not at.exception, at.exception
    at.selectbox(key="cmp_split_b").set_value("train").run()
    assert "Choose two different splits" in texts(at)


def test_another_dataset_by_path_and_a_bad_path(tmp_path):
    a = qa.load(coco_set(tmp_path / "a", 30, 1))
    b = coco_set(tmp_path / "b", 30, 2, classes=(3,), dark=True)
    at = run_page("compare", a, "cmp-path")
    assert not at.exception
    assert "has 0 split(s)" in texts(at) or "has 1 split(s)" in texts(at)
    at.radio(key="cmp_source").set_value("A folder or file on the server").run()
    at.text_input(key="cmp_path").set_value(str(b)).run()
    assert not at.exception, at.exception
    assert at.warning and at.warning[0].value.startswith("Drift in")
    assert "images of b lie beyond" in texts(at).replace("**", "")
    at.toggle(key="cmp_swap").set_value(True).run()
    assert not at.exception, at.exception
    at.text_input(key="cmp_path").set_value(str(tmp_path / "nope")).run()
    assert not at.exception
    assert at.error and "Could not load" in at.error[0].value
    at.radio(key="cmp_source").set_value("An uploaded .zip").run()
    assert not at.exception and "Upload the dataset to compare with" in texts(at)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_dataset_shape_renders(tmp_path, shape):
    ds = qa.load(SHAPES[shape](tmp_path / shape))
    at = run_page("compare", ds, f"cmp-shape-{shape}")
    assert not at.exception, (shape, at.exception)
    assert not at.error, (shape, [e.value for e in at.error])
    assert texts(at).strip()


def test_a_report_link_shows_its_images_first():
    ds = qa.load(SAMPLE)
    at = run_page("compare", ds, "cmp-link")
    at.query_params["image_id"] = "3,7"
    at.query_params["kind"] = "not_covered"
    at.run()
    assert not at.exception, at.exception
    assert "far from every image of the reference" in texts(at)


def test_the_reports_reference_is_the_first_choice(tmp_path, monkeypatch):
    from qa.drift import REFERENCE_ENV

    ref = coco_set(tmp_path / "ref", 30, 1)
    monkeypatch.setenv(REFERENCE_ENV, str(ref))
    new = qa.load(coco_set(tmp_path / "new", 30, 2, classes=(3,), dark=True))
    at = run_page("compare", new, "cmp-reference")
    assert not at.exception, at.exception
    assert at.radio(key="cmp_source").value.startswith("The reference dataset")
    assert at.warning and at.warning[0].value.startswith("Drift in")
    assert "this dataset (new)" in at.warning[0].value or "this dataset" in texts(at)
