"""The Health report page renders with streamlit's AppTest (no browser): score, sub-scores,
traffic-light table with evidence links, skipped checks with reasons, downloads."""

from __future__ import annotations

import pytest

import qa
from tests.app.pagetest import run_page
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def sample():
    return qa.load(SAMPLE)


def test_renders_sample_report(sample, tmp_path, monkeypatch):
    monkeypatch.setenv("DATASET_QA_HOME", str(tmp_path / "home"))
    at = run_page("report", sample, "report-sample")
    assert not at.exception, at.exception
    assert at.title[0].value == "Health report"
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["Health score", "Hygiene", "Balance"]
    assert 0 < float(at.metric[0].value) < 100
    # an area with no check that ran (e.g. an analysis not landed yet) shows a dash
    assert all(m.value == "—" or 0 <= float(m.value) <= 100 for m in at.metric)
    table = at.dataframe[0].value
    assert table["status"].iloc[0] == "fail"                              # worst first
    files = table[table["check"] == "No missing or corrupt image files"].iloc[0]
    assert files["link"] == "./?image_id=53,97&kind=missing_file" or \
        files["link"].startswith("./?image_id=53,97")
    skipped = table[table["status"] == "skipped"]
    assert len(skipped) and (skipped["action / reason"].str.len() > 10).all()   # reasons
    assert skipped["action / reason"].str.contains("applies to classification").any()
    assert [b.label for b in at.get("download_button")] == \
        ["Download HTML", "Download PDF", "Download JSON"]
    # issue 21: long text is readable whole: each warning/failure's action in a list (a
    # table cell cuts it off), and the score explanation in a wrapping table
    listed = " ".join(m.value for m in at.markdown)
    worst = table[table["status"] == "fail"].iloc[0]
    assert f"FAIL · {worst['check']}" in listed and worst["action / reason"] in listed
    assert any("loses" in str(v) for v in at.table[0].value.to_numpy().ravel())
    # status filter
    at.multiselect(key="rep_statuses").set_value(["fail"]).run()
    assert not at.exception, at.exception
    assert (at.dataframe[0].value["status"] == "fail").all()


def test_earlier_report_gives_trend_and_deltas(sample, tmp_path, monkeypatch):
    from qa.report import HealthReport, build_report
    from qa.report.history import save_report

    monkeypatch.setenv("DATASET_QA_HOME", str(tmp_path / "home"))
    at = run_page("report", sample, "report-trend-0")
    assert "trend appears" in " ".join(c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2
    old = build_report(sample, embeddings="skip", thumbnails=0).to_dict()
    save_report(HealthReport.from_dict({**old, "created": "2020-01-01T00:00:00+00:00",
                                        "score": 40.0, "checks": old["checks"][:-1]}))
    at = run_page("report", sample, "report-trend-1")
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3
    assert at.metric[0].delta is not None and float(at.metric[0].delta) > 0
