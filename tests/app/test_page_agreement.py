"""The Annotator agreement page renders with streamlit's AppTest (no browser) on a
3-annotator detection dataset, a 1-annotator dataset and a classification dataset."""

from __future__ import annotations

import numpy as np

from tests.app.pagetest import run_page as _run
from tests.app.pagetest import texts
from tests.test_agreement import TINY, _three_annotators, make_ds


def run_page(ds, key: str):
    return _run("agreement", ds, key)


def test_renders_three_annotators():
    at = run_page(_three_annotators(), "agr-three")
    assert not at.exception, at.exception
    assert at.title[0].value == "Annotator agreement"
    assert len(at.metric) == 4
    at.slider(key="agr_iou").set_value(0.7).run()
    assert not at.exception, at.exception
    assert "consensus" in texts(at)
    assert "consensus is undefined" not in texts(at)
    assert "Warfield" in texts(at) and "Dawid & Skene" in texts(at)  # method + citations
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Box noise per annotator" in t for t in titles)
    assert not any("Dawid-Skene" in t for t in titles)  # other tabs: computed when opened
    _open(at, "Confusion")
    at.selectbox(key="agr_conf_b").set_value("carol").run()
    at.selectbox(key="agr_ds_annotator").set_value("carol").run()
    assert not at.exception, at.exception
    assert any("Dawid-Skene" in c.proto.spec for c in at.get("plotly_chart"))
    _open(at, "Disputed images")
    at.number_input(key="agr_n_disputed").set_value(8).run()
    assert not at.exception, at.exception
    for tab in ("Pairs", "Classes", "IoU"):
        _open(at, tab)
        assert not at.exception, (tab, at.exception)
        assert at.get("plotly_chart"), tab


def _open(at, tab: str) -> None:
    at.session_state["agr_tab"] = tab  # what a click on the tab does
    at.run()


def test_two_annotators_say_consensus_is_undefined():
    at = run_page(make_ds(TINY), "agr-two")
    assert not at.exception, at.exception
    assert "consensus is undefined" in texts(at)
    titles = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    assert "Box noise per annotator" not in titles and "Dawid-Skene" not in titles
    assert not [s for s in at.selectbox if s.key == "agr_ds_annotator"]


def test_renders_one_annotator_with_explanation():
    at = run_page(make_ds([r for r in TINY if r[3] == "alice"]), "agr-one")
    assert not at.exception, at.exception
    assert "at least 2 annotators" in texts(at)
    assert len(at.dataframe) == 1
    shown = at.dataframe[0].value
    assert shown["annotator"].tolist() == ["alice"] and shown["n_boxes"].iloc[0] > 0


def test_renders_classification_with_confusion():
    nan = np.nan
    rows = []
    for name, labs in {"alice": [1, 1, 2, 2], "bob": [1, 2, 2, 2]}.items():
        for img, c in enumerate(labs, start=1):
            rows.append((len(rows) + 1, img, c, name, nan, nan, nan, nan))
    at = run_page(make_ds(rows), "agr-cls")
    assert not at.exception, at.exception
    assert "Classification labels" in texts(at)
    _open(at, "Confusion")
    at.selectbox(key="agr_conf_a").set_value("bob").run()
    assert not at.exception, at.exception


def test_sample_disputes_are_split_by_cause_and_name_who():
    """Issue 21: 257 of 300 images are disputed, mostly bob's loose boxes. The page gives the
    count per cause with who, starts the gallery with missed objects and class mismatches
    (warnings) before loose boxes (info), and each caption names the annotator."""
    from pathlib import Path

    import qa
    from qa.agreement import compute_agreement, dispute_causes

    sample = Path(__file__).resolve().parents[2] / "sample_data"
    ds = qa.load(sample)
    causes = dispute_causes(compute_agreement(ds), ds)
    first_info = causes.index[causes["severity"] == "info"]
    worst = causes.groupby("image_id", sort=False)["severity"].agg(
        lambda s: (s == "warning").any())
    assert worst.iloc[:worst.sum()].all() and not worst.iloc[worst.sum():].any()
    assert len(first_info)
    at = run_page(ds, "agr-sample")
    assert not at.exception, at.exception
    _open(at, "Disputed images")  # only the open tab is computed
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "cause" in d.value.columns)
    row = table.set_index("cause")
    assert row.at["label mismatch", "who"].startswith("carol")
    assert row.at["missed object", "who"].startswith("carol")
    assert row.at["loose box", "who"].startswith("bob")
    assert row.at["loose box", "severity"] == "info"
    assert "By cause: label mismatch" in at.metric[3].proto.help
    from qa.agreement import dispute_captions

    caps = dispute_captions(causes)
    first = int(causes["image_id"].iloc[0])
    assert "carol other class 1" in caps[first] and "bob loose" in caps[first]
