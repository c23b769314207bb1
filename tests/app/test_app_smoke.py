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


def test_broken_dataset_shows_clear_error_not_a_traceback(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "a.json").write_text('{"images": [{"id": 1,}]}')
    # AppTest reruns the current page script without app.py under st.navigation, so the
    # picker's widgets are preset through session state on a fresh run; the real-browser
    # test clicks them and checks that the previous dataset stays on screen.
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["picker_source"] = "Path on server"
    at.session_state["picker_path"] = str(tmp_path)
    at.run()
    assert not at.exception
    msgs = [e.value for e in at.error]
    assert len(msgs) == 1
    assert "Could not load" in msgs[0] and "a.json: malformed JSON at line 1, column 22" in msgs[0]
    assert "Fix the file or re-export it" in msgs[0]  # the fix, in this project's words
    assert [i.value for i in at.info] == ["Choose a dataset in the sidebar to start."]


def test_broken_predictions_file_warns_and_labels_still_load(tmp_path):
    import shutil

    ds_dir = tmp_path / "ds"
    shutil.copytree(ROOT / "sample_data" / "annotations", ds_dir / "annotations")
    (ds_dir / "predictions").mkdir()
    (ds_dir / "predictions" / "broken.json").write_text('[{"image_id": 1, "bbox": [0, 0]}]')
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["picker_source"] = "Path on server"
    at.session_state["picker_path"] = str(ds_dir)
    at.run()
    assert not at.exception and not at.error
    warnings = " ".join(w.value for w in at.warning)
    assert "Predictions not loaded" in warnings and "broken.json: item [0]" in warnings
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "300" and metrics["Predictions"] == "0"


def test_loading_options_reach_the_loader(tmp_path):
    """The sidebar's loading options do what the CLI flags do: a YOLO predictions folder in
    'class conf cx cy w h' order from a model whose class order is [dog, cat] loads right."""
    from tests.conftest import write_jpeg

    d = tmp_path / "ds"
    for i in range(12):
        write_jpeg(d / "images" / f"im{i}.jpg", size=(100, 100), seed=i)
        (d / "labels").mkdir(parents=True, exist_ok=True)
        (d / "labels" / f"im{i}.txt").write_text(f"{i % 2} 0.3 0.4 0.2 0.3\n")
        (d / "model").mkdir(exist_ok=True)
        (d / "model" / f"im{i}.txt").write_text(f"{1 - i % 2} 0.95 0.3 0.4 0.2 0.3\n")
    (d / "data.yaml").write_text("train: images\nnames: [cat, dog]\n")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["picker_source"] = "Path on server"
    at.session_state["picker_path"] = str(d)
    at.session_state["picker_extra_predictions"] = "model"  # relative to the dataset folder
    at.session_state["picker_prediction_names"] = "dog, cat"
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ds = at.session_state["qa_dataset"]
    assert len(ds.predictions) == 12
    assert (ds.predictions.sort_values("image_id").category_id.to_numpy()
            == ds.annotations.sort_values("image_id").category_id.to_numpy()).all()
    assert ds.predictions.score.eq(0.95).all()  # the confidence column was found
    # a path that leaves nothing to load is said in words, and the app keeps running
    at.session_state["picker_extra_predictions"] = "nowhere"
    at.run()
    assert not at.exception
    assert any("nowhere: not found" in e.value for e in at.error)


def test_loading_option_paths_stay_inside_an_upload(tmp_path):
    from qa.app.picker import LoadOptions, _resolved
    from qa.dataset import DatasetError

    up = tmp_path / "extracted"
    (up / "ds" / "preds").mkdir(parents=True)
    (up / "ds" / "classes.txt").write_text("dog\ncat\n")
    (tmp_path / "secret.json").write_text("[]")
    ok = LoadOptions(predictions="preds", prediction_names="classes.txt")
    extra, names = _resolved(ok, up / "ds", up)
    assert extra == str(up / "ds" / "preds") and names == str(up / "ds" / "classes.txt")
    assert _resolved(LoadOptions(prediction_names="dog,cat"), up / "ds", up)[1] == ("dog", "cat")
    assert _resolved(LoadOptions(prediction_names="dog"), up / "ds", up)[1] == ("dog",)
    with pytest.raises(DatasetError, match="obj.names: not found"):  # a file, not a class name
        _resolved(LoadOptions(prediction_names="obj.names"), up / "ds", up)
    for bad in (LoadOptions(predictions="../../secret.json"),
                LoadOptions(predictions=str(tmp_path / "secret.json")),
                LoadOptions(prediction_names=str(tmp_path / "secret.json"))):
        with pytest.raises(DatasetError, match="outside the uploaded archive"):
            _resolved(bad, up / "ds", up)
