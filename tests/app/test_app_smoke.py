"""AppTest: app.py with the sample dataset renders every page without an exception."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["pages/overview.py", "pages/balance.py", "pages/agreement.py"]


@pytest.fixture(scope="module")
def app():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    return at


def test_app_loads_sample_dataset(app):
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    labels = {m.label: m.value for m in app.metric}
    assert labels["Images"] == "300" and labels["Annotators"] == "3"
    assert any("sample_data" in c.value for c in app.sidebar.caption)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app, page):
    app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]


def test_broken_dataset_shows_clear_error_and_app_keeps_working(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "a.json").write_text('{"images": [{"id": 1,}]}')
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.sidebar.radio(key="picker_source").set_value("Path on server").run()
    at.sidebar.text_input(key="picker_path").input(str(tmp_path)).run()
    assert not at.exception
    msgs = " ".join(e.value for e in at.error)
    assert "Could not load" in msgs and "a.json: malformed JSON at line 1" in msgs
    assert "Still showing the previous dataset 'sample_data'" in msgs
    assert {m.label: m.value for m in at.metric}["Images"] == "300"
