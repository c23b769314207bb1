"""Report exports (JSON + schema, HTML self-contained, PDF), comparison, history, and the
`dataset-qa report` command with its --fail-on exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import qa
from qa.cli import main
from qa.report import AREAS, HealthReport, ReportConfig, build_report
from qa.report.compare import compare
from qa.report.export import refuse_inside_dataset, report_json, write_report
from qa.report.history import history_dir, load_history, save_report
from qa.report.html import render_html
from qa.report.pdf import render_pdf
from qa.report.schema import validate_report_dict
from tests.conftest import SAMPLE
from tests.report.fakes import fake_result, make_run
from tests.report.test_report_core import spec


@pytest.fixture(scope="module")
def report():
    ds = qa.load(SAMPLE)
    return build_report(ds, embeddings="skip")


def _cfg(*checks):
    return ReportConfig(checks=tuple(checks), area_weights={a: 1.0 for a in AREAS})


def _small(value: float, *, created="2026-01-01T00:00:00+00:00", warn=0, fail=5):
    r = build_report(make_run({"a": fake_result("a", {"m": value, "k": 0.9})}),
                     _cfg(spec("x", warn=warn, fail=fail),
                          spec("y", area="agreement", metric="k", pass_if=">=", warn=0.85,
                               fail=0.7)))
    return HealthReport.from_dict({**r.to_dict(), "created": created})


def test_json_follows_the_schema_and_the_schema_catches_breakage(report):
    d = json.loads(report_json(report))
    validate_report_dict(d)
    assert d["status_counts"]["skipped"] >= 1
    bad = json.loads(json.dumps(d))
    bad["checks"][0]["status"] = "fine"
    with pytest.raises(ValueError, match="checks/0/status"):
        validate_report_dict(bad)
    bad = json.loads(json.dumps(d))
    skipped = next(c for c in bad["checks"] if c["status"] == "skipped")
    skipped["reason"] = ""
    with pytest.raises(ValueError, match="reason"):
        validate_report_dict(bad)
    bad = json.loads(json.dumps(d))
    bad["score"] = 140
    with pytest.raises(ValueError, match="score"):
        validate_report_dict(bad)


def test_html_is_self_contained(report):
    page = render_html(report)
    assert not re.search(r"<script[^>]*\bsrc=", page)           # plotly.js is inlined
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=['\"]https?://", page)
    assert "Plotly.newPlot" in page and page.count("Plotly.newPlot") >= 3
    assert "data:image/png;base64," in page                      # thumbnails embedded
    for area in AREAS:
        assert f"{area.capitalize()}:" in page
    # embeddings were skipped: the outlier checks are listed as skipped, with the reason
    assert "embeddings were skipped" in page and "does not count towards the score" in page
    assert "class &#x27;star&#x27; has 22 instances" in page


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_has_every_section(report, tmp_path):
    data = render_pdf(report)
    assert data[:5] == b"%PDF-"
    p = tmp_path / "r.pdf"
    p.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(p), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "Health score" in text and "What to fix first" in text
    for area in AREAS:
        assert area.capitalize() in text
    assert "Analyses" in text and "'star'" in text


def test_pdf_without_poppler_still_renders_sections(report):
    data = render_pdf(_small(9))
    assert data.startswith(b"%PDF-") and len(data) > 2000


def test_compare_reports_status_changes_and_deltas(tmp_path):
    old, new = _small(9), _small(1, created="2026-02-01T00:00:00+00:00")
    p = tmp_path / "old.json"
    p.write_text(json.dumps(old.to_dict()))
    c = compare(p, new)
    row = c.checks.set_index("id").loc["x"]
    assert (row.old_status, row.new_status, row.change) == ("fail", "warn", "improved")
    assert row.value_delta == -8
    assert c.score_delta == pytest.approx(new.score - old.score)
    assert c.changed("improved")["id"].tolist() == ["x"]
    assert c.checks.set_index("id").loc["y", "change"] == "unchanged"
    assert "1 check(s) improved, 0 regressed" in c.summary()
    back = compare(new, old)
    assert back.checks.set_index("id").loc["x", "change"] == "regressed"
    # same status, value moves in the check's own direction
    assert compare(_small(4), _small(2)).checks.set_index("id").loc["x", "change"] == \
        "improved"
    json.dumps(c.to_dict())
    with pytest.raises(TypeError, match="expected a HealthReport"):
        compare(42, new)
    with pytest.raises(ValueError, match="not a health report"):
        compare({"a": 1}, new)


def test_history_is_in_the_workspace_deduplicated_and_ordered(report, tmp_path, monkeypatch):
    monkeypatch.setenv("DATASET_QA_HOME", str(tmp_path / "home"))
    key = report.dataset["key"]
    assert save_report(report) is not None
    assert save_report(report) is None                          # identical: not added again
    later = HealthReport.from_dict({**report.to_dict(), "created": "2099-01-01T00:00:00+00:00",
                                    "score": 90.0})
    later = HealthReport(**{**later.__dict__, "checks": later.checks[:-1]})
    assert save_report(later) is not None
    h = load_history(key)
    assert h["score"].tolist() == [report.score, 90.0]
    assert set(AREAS) <= set(h.columns)
    assert history_dir(key).is_relative_to(tmp_path / "home")
    assert not any(Path(p).is_relative_to(SAMPLE.resolve()) for p in h["path"])
    with pytest.raises(ValueError, match="history key"):
        history_dir("../x")


def test_write_report_refuses_the_dataset_folder(report, tmp_path):
    with pytest.raises(ValueError, match="inside the dataset"):
        write_report(report, SAMPLE / "out", dataset_root=SAMPLE)
    with pytest.raises(ValueError, match="inside the dataset"):
        refuse_inside_dataset(SAMPLE, SAMPLE)
    files = write_report(report, tmp_path / "out", formats=("json",))
    assert list(files) == ["json"] and files["json"].stat().st_mode & 0o777 == 0o644
    with pytest.raises(ValueError, match="unknown report formats"):
        write_report(report, tmp_path / "out", formats=("docx",))


# ------------------------------------------------------------------------------ CLI
def _coco(tmp_path, *, missing: bool) -> Path:
    """A tiny COCO dataset: two classes x 3 boxes; with ``missing`` one listed file is absent."""
    from tests.conftest import coco_doc, write_jpeg

    d = tmp_path / "ds"
    for k in range(3):
        write_jpeg(d / "images" / f"{k}.jpg", size=(64, 48), seed=k)
    images = [(k + 1, f"{k}.jpg", 64, 48) for k in range(3)]
    if missing:
        images.append((4, "gone.jpg", 64, 48))
    anns = [(10 * i + j, i, 1 + j % 2, (2, 2, 20, 20)) for i in (1, 2, 3) for j in (0, 1)]
    (d / "annotations").mkdir(parents=True)
    (d / "annotations" / "instances.json").write_text(json.dumps(coco_doc(images, anns)))
    return d


def _only(tmp_path, check_id: str, extra: str = "") -> Path:
    """A config with only ``check_id`` enabled (plus ``extra`` TOML lines for it)."""
    from qa.report import load_config

    lines = [f"[checks.{c.id}]\nenabled = false\n" for c in load_config().checks
             if c.id != check_id]
    p = tmp_path / f"only_{check_id}.toml"
    p.write_text("".join(lines) + (f"[checks.{check_id}]\n{extra}\n" if extra else ""))
    return p


@pytest.mark.parametrize("missing, fail_on, code", [
    (False, "fail", 0), (False, "warn", 0), (True, None, 0), (True, "fail", 1),
    (True, "warn", 1)])
def test_cli_fail_on_exit_codes(tmp_path, missing, fail_on, code, capsys):
    ds = _coco(tmp_path, missing=missing)
    argv = ["report", str(ds), "--out", str(tmp_path / "out"), "--embeddings", "skip",
            "--config", str(_only(tmp_path, "missing_or_corrupt_files")), "--formats", "json",
            "--no-history", "--json"]
    if fail_on:
        argv += ["--fail-on", fail_on]
    assert main(argv) == code
    out = json.loads(capsys.readouterr().out)
    assert out["gate"]["closed"] == (code == 1)
    assert (tmp_path / "out" / "report.json").is_file()
    assert not any(p.name.startswith("report") for p in ds.rglob("*"))


def test_cli_warn_gate_is_stricter_than_fail(tmp_path, capsys):
    ds = _coco(tmp_path, missing=False)
    # two classes of 3 instances: class ratio 1.0, a warning under warn = 1.5, never a failure
    cfg = _only(tmp_path, "rare_classes", "warn = 1.5\nfail = 0.0")
    base = ["report", str(ds), "--out", str(tmp_path / "o"), "--embeddings", "skip",
            "--formats", "json", "--no-history", "--config", str(cfg), "--json"]
    assert main([*base, "--fail-on", "fail"]) == 0
    capsys.readouterr()
    assert main([*base, "--fail-on", "warn"]) == 1
    gate = json.loads(capsys.readouterr().out)["gate"]
    assert gate == {"level": "warn", "closed": True, "checks": ["rare_classes"]}


def test_cli_compare_and_unusable_input(tmp_path, capsys):
    ds = _coco(tmp_path, missing=True)
    out = tmp_path / "out"
    args = ["report", str(ds), "--out", str(out), "--embeddings", "skip", "--formats",
            "json,html", "--no-history"]
    assert main(args) == 0
    old = tmp_path / "old.json"
    old.write_text((out / "report.json").read_text())
    assert main([*args, "--compare", str(old)]) == 0
    text = capsys.readouterr().out
    assert "health score" in text and "compared with" in text
    assert json.loads((out / "comparison.json").read_text())["score_delta"] == 0
    # two dataset versions: the fixed one against the one with a missing file
    fixed = _coco(tmp_path / "v2", missing=False)
    assert main(["report", str(fixed), "--out", str(tmp_path / "o2"), "--embeddings", "skip",
                 "--formats", "json", "--no-history", "--compare", str(ds)]) == 0
    cmp_ = json.loads((tmp_path / "o2" / "comparison.json").read_text())
    files = next(c for c in cmp_["checks"] if c["id"] == "missing_or_corrupt_files")
    assert (files["old_status"], files["new_status"], files["change"]) == \
        ("fail", "pass", "improved")
    assert cmp_["score_delta"] > 0
    capsys.readouterr()
    assert main(["report", str(ds), "--out", str(ds / "r"), "--embeddings", "skip"]) == 2
    assert "inside the dataset" in capsys.readouterr().err
    assert main([*args, "--config", str(tmp_path / "none.toml")]) == 2
    assert main([*args, "--compare", str(tmp_path / "none.json")]) == 2


def test_classification_dataset_reports_and_exports(tmp_path):
    """An ImageFolder tree (no boxes, one annotator): detection-only checks and agreement are
    skipped with reasons, and every export still renders."""
    from tests.conftest import write_jpeg

    for k, cls in enumerate(["cat", "cat", "cat", "dog"]):
        write_jpeg(tmp_path / "ds" / cls / f"{k}.jpg", size=(32, 24), seed=k)
    ds = qa.load(tmp_path / "ds")
    r = build_report(ds, embeddings="skip")
    assert r.check("min_instances_per_class").reason.startswith("applies to detection")
    assert "two annotators" in r.check("fleiss_kappa").reason
    assert r.check("rare_classes").status == "pass"              # dog is 1/3 of cat
    validate_report_dict(json.loads(report_json(r)))
    assert render_pdf(r).startswith(b"%PDF-") and "Plotly.newPlot" in render_html(r)
