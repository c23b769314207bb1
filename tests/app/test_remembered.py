"""Issue 21: an uploaded zip is titled by its own name (not the temporary extraction folder
'dataset-qa-upload-...'), and the Review page remembers the reviewer's name across a reload
(a reload starts a new session; the name rides in the URL)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

import qa
from tests.app.pagetest import run_page
from tests.conftest import SAMPLE, coco_doc, write_jpeg


def test_upload_name_is_the_zip_stem():
    from qa.app.picker import upload_name

    assert upload_name("my_set.zip") == "my_set"
    assert upload_name("/tmp/x/Cells v2.ZIP") == "Cells v2"


def _load_page():
    import streamlit as st

    from qa.app import state
    from qa.app.picker import _try_load

    _try_load(st.session_state["folder"], False, "flat.zip", name="flat")
    st.write(state.current_dataset().name)


def test_an_upload_is_titled_by_its_zip(tmp_path):
    folder = tmp_path / "dataset-qa-upload-2tzbe563"  # what extraction makes
    write_jpeg(folder / "a.jpg", size=(64, 48))
    (folder / "labels.json").write_text(json.dumps(coco_doc([(1, "a.jpg", 64, 48)],
                                                            [(1, 1, 1, (1, 2, 20, 10))])))
    at = AppTest.from_function(_load_page, default_timeout=60)
    at.session_state["folder"] = folder
    at.run()
    assert not at.exception, at.exception
    assert at.markdown[0].value == "flat"


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASET_QA_DB", f"sqlite:///{tmp_path / 'review.sqlite'}")


def test_review_remembers_the_reviewer_across_a_reload(db):
    ds = qa.load(SAMPLE)
    at = run_page("review", ds, "review-remember")
    assert not at.exception, at.exception
    at.text_input(key="qa_reviewer").set_value("dana").run()
    assert at.query_params.get("reviewer") in ("dana", ["dana"])
    # a reload: a new session with the same URL
    again = AppTest.from_file(str(SAMPLE.parent / "pages" / "review.py"), default_timeout=60)
    from qa.app.state import KEY_DATASET, KEY_DATASET_KEY

    again.session_state[KEY_DATASET] = ds
    again.session_state[KEY_DATASET_KEY] = "review-remember"
    again.query_params["reviewer"] = "dana"
    again.run()
    assert not again.exception, again.exception
    assert again.text_input(key="qa_reviewer").value == "dana"
    assert not any("Enter your name" in w.value for w in again.warning)
