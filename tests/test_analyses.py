"""qa.analyses: one runner over every analysis, skips with reasons, failures contained."""

import pytest

import qa
from qa import analyses
from qa.analyses import Skip, run_analyses
from qa.results import FINDINGS_SCHEMA


@pytest.fixture(scope="module")
def sample():
    return qa.load("sample_data")


def test_runs_landed_analyses_on_sample(sample):
    run = run_analyses(sample, only=["validation", "balance", "agreement"], embeddings="skip")
    assert set(run.results) == {"validation", "balance", "agreement"}
    assert not run.errors and not run.skipped
    m = run.metrics()
    assert m["validation"]["n_missing_or_corrupt_files"] >= 2
    assert m["agreement"]["n_annotators"] == 3
    f = run.findings()
    assert list(f.columns) == list(FINDINGS_SCHEMA)
    assert set(f["analysis"]) >= {"validation", "balance", "agreement"}


def test_missing_module_is_skipped_and_failure_contained(sample, monkeypatch):
    def boom(ds, ctx):
        raise RuntimeError("kaput")

    monkeypatch.setitem(analyses.RUNNERS, "outliers", "qa.no_such_module:run_analysis")
    real = analyses.resolve_runner
    monkeypatch.setattr(analyses, "resolve_runner", lambda n: boom if n == "balance" else real(n))
    run = run_analyses(sample, only=["validation", "balance", "outliers"])
    assert "validation" in run.results
    assert run.errors["balance"] == "RuntimeError: kaput"
    assert "not available" in run.skipped["outliers"]


def test_one_annotator_skips_agreement(tmp_path):
    import json
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3]}],
            "categories": [{"id": 1, "name": "x"}]}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(coco))
    ds = qa.load(p)
    run = run_analyses(ds, only=["agreement"])
    assert "two annotators" in run.skipped["agreement"]


def test_embeddings_skip_mode_raises_skip(sample):
    ctx = analyses.RunContext(sample, embeddings_mode="skip")
    with pytest.raises(Skip, match="skipped"):
        ctx.embeddings()


def test_bad_arguments(sample):
    with pytest.raises(ValueError, match="unknown analyses"):
        run_analyses(sample, only=["nope"])
    with pytest.raises(ValueError, match="embeddings must be one of"):
        run_analyses(sample, embeddings="maybe")
    with pytest.raises(TypeError, match="qa.Dataset"):
        run_analyses("sample_data")
