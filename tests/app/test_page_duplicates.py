"""The Duplicates & leakage page renders with AppTest on the sample and on a tiny dataset."""

from __future__ import annotations

import pytest

import qa
from tests.app.pagetest import run_page, texts
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def sample():
    return qa.load(SAMPLE)


def test_sample_shows_leakage_first_and_exports(sample):
    at = run_page("duplicates", sample, "dup-sample")
    assert not at.exception, at.exception
    assert at.title[0].value == "Duplicates & leakage"
    assert at.subheader[0].value.startswith("Leakage")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cross-split pairs"] == "6" and metrics["Leaking images"] == "6"
    leak = at.dataframe[0].value
    assert len(leak) == 6 and set(leak["kept_split"]) == {"train"}
    # with the sample embedded (other tests fill the store) the page starts from embeddings;
    # the perceptual method alone finds the same 13 pairs
    if len(at.radio(key="dup_method").options) == 3:
        at.radio(key="dup_method").set_value("phash").run()
        assert not at.exception, at.exception
    assert "13 pairs" in texts(at)
    # a stricter candidate threshold: the live count drops (the re-compressed pair at 0.930
    # is no longer proposed)
    at.slider(key="dup_threshold_phash").set_value(0.95).run()
    assert not at.exception, at.exception
    assert "12 pairs" in texts(at)
    at.radio(key="dup_method").set_value("exact").run()
    assert not at.exception, at.exception
    assert "3 pairs" in texts(at)
    assert {m.label: m.value for m in at.metric}["Cross-split pairs"] == "1"


def test_deep_link_focus_and_paging(sample):
    from streamlit.testing.v1 import AppTest

    from qa.app.state import KEY_DATASET, KEY_DATASET_KEY
    from tests.app.pagetest import ROOT

    at = AppTest.from_file(str(ROOT / "pages" / "duplicates.py"), default_timeout=60)
    at.session_state[KEY_DATASET] = sample
    at.session_state[KEY_DATASET_KEY] = "dup-focus"
    at.query_params["image_id"] = "265"
    at.query_params["kind"] = "leakage"
    at.run()
    assert not at.exception, at.exception
    assert "Showing the pairs of 1 image(s)" in texts(at) and "(leakage)" in texts(at)
    assert "train/000169.jpg / test/000265.jpg" in texts(at)  # files, not internal ids
    assert at.dataframe[0].value["copy_id"].tolist() == [265]  # the leakage table follows
    assert set(at.dataframe[1].value["image_id"]) == {169, 265}  # and the clusters
    at.button(key="dup_clear_focus").click().run()
    assert not at.exception, at.exception
    at.number_input(key="dup_pairs_page").set_value(3).run()
    assert not at.exception, at.exception


def test_no_duplicates_explains(tmp_path):
    from tests.test_imagestats import folder_ds, scene

    ds = folder_ds(tmp_path, {"a.png": scene(1), "b.png": scene(2)}, splits=["train", "test"])
    at = run_page("duplicates", ds, "dup-none")
    assert not at.exception, at.exception
    assert any("No copies cross the splits" in s.value for s in at.success)
    assert "0 pairs" in texts(at)
