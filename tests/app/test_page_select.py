"""The Select & split page with streamlit's AppTest: the sample (picks with reasons, skipped
copies, downloads, the split's before/after), every dataset shape, and embeddings (the map)."""

from __future__ import annotations

import pytest

import qa
from tests.app.pagetest import run_page, texts
from tests.conftest import SAMPLE
from tests.shapes import SHAPES


def _frame(at, column):
    """The page's table that has ``column`` (AppTest finds dataframes by position only)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.fixture(scope="module")
def sample():
    return qa.load(SAMPLE, predictions=str(SAMPLE / "predictions" / "detector.json"))


def test_sample_picks_from_a_split_with_reasons_and_downloads(sample):
    at = run_page("select", sample, "select-sample")
    assert not at.exception, at.exception
    assert at.title[0].value == "Select & split"
    at.selectbox(key="sel_pool").set_value("split:test").run()
    assert "of detector" in texts(at)  # auto: uncertainty, or hybrid if the store has vectors
    at.selectbox(key="sel_strategy").set_value("uncertainty").run()
    at.number_input(key="sel_budget").set_value(8).run()
    assert not at.exception and not at.error
    shown = texts(at)
    assert "Rare classes targeted: star." in shown
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pool"] == "50" and metrics["Picked"] == "8"
    assert int(metrics["Skipped copies"]) >= 4  # the 4 test images copying train images
    picks = _frame(at, "reasons")
    assert len(picks) == 8 and picks["split"].eq("test").all()
    assert picks["reasons"].iloc[0].startswith("model unsure: max box entropy")
    assert {b.label for b in at.get("download_button")} >= {
        "selection.csv", "selection_coco.json", "labelstudio_tasks.json"}


def test_sample_split_section_shows_before_and_after(sample):
    at = run_page("select", sample, "select-sample-split")
    at.radio(key="sel_section").set_value("Propose a split").run()
    assert not at.exception and not at.error, at.exception
    checks = _frame(at, "check").set_index("check")
    assert checks.at["Cross-split duplicate pairs", "before"] == 6
    assert checks.at["Cross-split duplicate pairs", "after"] == 0
    assert checks.at["Largest class-share deviation (points)", "after"] <= 2.0
    assert len(_frame(at, "old_split")) <= 12  # kept: leaks and a few more
    at.checkbox(key="split_keep").uncheck().run()
    sizes = _frame(at, "fraction")
    assert sizes["after"].iloc[0] == 240


@pytest.mark.parametrize("shape", list(SHAPES))
def test_both_sections_render_on_every_dataset_shape(shape, tmp_path):
    ds = qa.load(SHAPES[shape](tmp_path))
    at = run_page("select", ds, f"select-shape-{shape}")
    assert not at.exception, (shape, at.exception)
    assert not at.error, (shape, [e.value for e in at.error])
    at.radio(key="sel_section").set_value("Propose a split").run()
    assert not at.exception, (shape, at.exception)
    assert not at.error, (shape, [e.value for e in at.error])


def test_with_embeddings_the_map_shows_labelled_pool_and_picks(tmp_path, monkeypatch):
    from tests.app.test_page_outliers import _tiny_dataset

    monkeypatch.setenv("DATASET_QA_CACHE", str(tmp_path / "cache"))
    ds = _tiny_dataset(tmp_path / "data")
    at = run_page("select", ds, "select-embed")
    at.selectbox(key="sel_pool").set_value("all").run()
    at.button(key="sel_embed").click().run(timeout=600)  # loads the embedding model
    assert not at.exception, at.exception
    at.selectbox(key="sel_strategy").set_value("kcenter").run()
    at.number_input(key="sel_budget").set_value(3).run()
    assert not at.exception and not at.error
    assert _frame(at, "reasons")["reasons"].iloc[0] == \
        "the most typical image of the pool (nothing labelled yet)"
    figs = [c for c in at.get("plotly_chart")]
    assert figs  # the map and the coverage histogram
    assert "picked (3)" in str(figs[0].proto.spec)
