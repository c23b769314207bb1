"""Tests of qa.results: the findings shape every analysis shares, and that each landed
analysis result provides the interface the report and the review queue read."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from qa.results import (
    FINDINGS_SCHEMA,
    PAGES,
    AnalysisResult,
    concat_findings,
    findings_frame,
    frame_records,
    page_link,
)
from tests.conftest import SAMPLE


def test_findings_frame_conforms_and_fills_defaults():
    f = findings_frame([{"kind": "x", "severity": "error", "image_id": 3, "ann_ids": [5, 6]},
                        {"kind": "y", "severity": "info", "ann_ids": 7, "score": "0.5"}],
                       analysis="a", page="overview")
    assert list(f.columns) == list(FINDINGS_SCHEMA)
    assert f["ann_ids"].tolist() == [(5, 6), (7,)] and f["pred_ids"].tolist() == [(), ()]
    assert f["image_id"].dtype == "Int64" and pd.isna(f["image_id"].iloc[1])
    assert f["score"].iloc[1] == 0.5 and math.isnan(f["score"].iloc[0])
    assert f["annotator"].tolist() == [None, None] and set(f["analysis"]) == {"a"}
    with pytest.raises(ValueError, match="severity"):
        findings_frame([{"kind": "x", "severity": "fatal"}])
    with pytest.raises(ValueError, match="unknown findings column"):
        findings_frame([], bogus=1)
    empty = concat_findings([findings_frame(), None])
    assert empty.empty and list(empty.columns) == list(FINDINGS_SCHEMA)
    assert len(concat_findings([f, f])) == 4


def test_records_are_plain_json():
    df = pd.DataFrame({"a": [np.int64(1), None], "b": [np.float32(0.5), np.nan],
                       "c": [(1, 2), ()], "d": pd.array([1, pd.NA], dtype="Int64")})
    recs = frame_records(df)
    assert json.loads(json.dumps(recs)) == [{"a": 1, "b": 0.5, "c": [1, 2], "d": 1},
                                            {"a": None, "b": None, "c": [], "d": None}]


def test_page_links():
    assert page_link("duplicates", [3, 7, 3], kind="leakage") == \
        "duplicates?image_id=3,7&kind=leakage"
    assert page_link("overview") == "" and page_link("balance", []) == "balance"
    assert page_link("review", range(1000)).count(",") == 199
    with pytest.raises(ValueError, match="unknown page"):
        page_link("nowhere")


@pytest.fixture(scope="module")
def sample_results():
    import qa
    from qa.agreement import compute_agreement
    from qa.balance import compute_class_balance

    ds = qa.load(SAMPLE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [qa.validate(ds), compute_class_balance(ds), compute_agreement(ds)]


def test_every_landed_result_speaks_the_protocol(sample_results):
    names = set()
    for res in sample_results:
        assert isinstance(res, AnalysisResult)
        names.add(res.ANALYSIS)
        m = res.metrics()
        assert m and all(v is None or isinstance(v, (int, float)) for v in m.values())
        json.dumps(m)
        f = res.findings()
        assert list(f.columns) == list(FINDINGS_SCHEMA)
        assert set(f["analysis"]) <= {res.ANALYSIS} and set(f["page"]) <= set(PAGES)
        assert f["message"].map(lambda s: isinstance(s, str) and len(s) > 10).all()
        assert ((f["score"] >= 0) & (f["score"] <= 1)).all()
    assert names == {"validation", "balance", "agreement"}


def test_sample_findings_name_the_planted_issues(sample_results):
    import json as _json

    planted = _json.loads((SAMPLE / "PLANTED.json").read_text())
    val, bal, agr = sample_results
    vf = val.findings()
    assert set(vf.loc[vf["kind"] == "missing_file", "image_id"]) == \
        {planted["missing_file"]["image_id"]}
    assert set(vf.loc[vf["kind"] == "unreadable_file", "image_id"]) == \
        {planted["corrupt_file"]["image_id"]}
    bf = bal.findings()
    assert bf.loc[bf["kind"] == "rare_class", "category_id"].tolist() == \
        [planted["rare_class"]["category_id"]]
    empty = set(bf.loc[bf["kind"] == "empty_image", "image_id"])
    assert {e["image_id"] for e in planted["empty_images"]} <= empty
    af = agr.findings()
    af = af[af["kind"] == "disputed_image"]  # (annotator_confusion findings are dataset-level)
    assert len(af) == agr.metrics()["n_disputed_images"] and af["ann_ids"].map(len).min() > 0
