"""qa.report: checks as data, statuses, skips with reasons, the score, review dismissals, and
the report of sample_data against PLANTED.json."""

from __future__ import annotations

import json
from dataclasses import replace
import sys
import types

import pytest

import qa
from qa.analyses import RUNNERS, run_analyses
from qa.report import (
    AREAS,
    CheckSpec,
    HealthReport,
    ReportConfig,
    build_report,
    load_config,
)
from qa.report.config import DEFAULT_CONFIG_PATH
from qa.results import AnalysisResult
from tests.conftest import SAMPLE
from tests.report.fakes import fake_result, make_run, planted_like_results


def spec(id_, area="hygiene", analysis="a", metric="m", pass_if="<=", warn=0.0, fail=0.0,
         **kw) -> CheckSpec:
    return CheckSpec(id=id_, title=id_, area=area, analysis=analysis, metric=(metric,),
                     pass_if=pass_if, warn=warn, fail=fail, **kw)


# ------------------------------------------------------------------------------ config
def test_default_config_covers_every_area_and_names_known_analyses():
    cfg = load_config()
    assert cfg.source == "default" and len(cfg.checks) >= 20
    assert {c.area for c in cfg.checks} == set(AREAS)
    assert {c.analysis for c in cfg.checks} <= set(RUNNERS)
    ids = [c.id for c in cfg.checks]
    assert len(ids) == len(set(ids))
    # thresholds from practice, as the issue names them
    assert cfg.check("rare_classes").warn == 0.10
    assert cfg.check("min_instances_per_class").warn == 200
    iou = cfg.check("annotator_box_iou")
    assert (iou.warn, iou.fail) == (0.85, 0.75)
    assert (cfg.check("fleiss_kappa").warn, cfg.check("fleiss_kappa").fail) == (0.80, 0.60)
    assert cfg.check("cross_split_leakage").fail == 0
    assert cfg.check("missing_or_corrupt_files").fail == 0


def test_toml_and_yaml_override_fields_disable_checks_and_weights(tmp_path):
    t = tmp_path / "c.toml"
    t.write_text('[checks.rare_classes]\nwarn = 0.2\n[checks.split_mix]\nenabled = false\n'
                 '[areas]\nhygiene = 5\n')
    cfg = load_config(t)
    assert cfg.check("rare_classes").warn == 0.2 and cfg.check("rare_classes").fail == 0.05
    assert "split_mix" not in [c.id for c in cfg.checks]
    assert cfg.area_weights["hygiene"] == 5 and cfg.source == str(t)
    y = tmp_path / "c.yaml"
    y.write_text("checks:\n  my_check:\n    title: Few boxes\n    area: balance\n"
                 "    analysis: balance\n    metric: n_annotations\n    pass_if: '>='\n"
                 "    warn: 10\n")
    cfg = load_config(y)
    assert cfg.check("my_check").metric == ("n_annotations",)
    assert cfg.check("my_check").fail is None


@pytest.mark.parametrize("text, match", [
    ("[checks.rare_classes]\nwran = 1\n", "unknown fields.*wran"),
    ("[checks.rare_classes]\narea = 'vibes'\n", "area 'vibes'"),
    ("[checks.rare_classes]\nfail = 0.5\n", "fail threshold"),
    ("[checks.rare_classes]\nwarn = 'high'\n", "must be a number"),
    ("[checks.new_one]\ntitle = 'x'\n", "lacks"),
    ("[areas]\nmoon = 1\n", "unknown areas"),
    ("colour = 1\n", "unknown top-level"),
    ("[checks\n", "not valid TOML"),
])
def test_bad_config_says_what_is_wrong(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_config(p)


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "nope.toml")
    p = tmp_path / "c.json"
    p.write_text("{}")
    with pytest.raises(ValueError, match="toml, .yaml"):
        load_config(p)
    p = tmp_path / "big.yaml"
    p.write_text("#" * 1_000_001)
    with pytest.raises(ValueError, match="at most"):
        load_config(p)
    assert DEFAULT_CONFIG_PATH.is_file()


@pytest.mark.parametrize("pass_if, warn, fail, value, status", [
    ("<=", 0, 0, 0, "pass"), ("<=", 0, 0, 1, "fail"),
    ("<=", 0.01, 0.05, 0.01, "pass"), ("<=", 0.01, 0.05, 0.03, "warn"),
    ("<=", 0.01, 0.05, 0.05, "warn"), ("<=", 0.01, 0.05, 0.051, "fail"),
    (">=", 0.85, 0.75, 0.85, "pass"), (">=", 0.85, 0.75, 0.80, "warn"),
    (">=", 0.85, 0.75, 0.74, "fail"), (">=", 0.8, None, 0.1, "warn"),
])
def test_status_boundaries(pass_if, warn, fail, value, status):
    assert spec("x", pass_if=pass_if, warn=warn, fail=fail).status_of(value) == status


# ------------------------------------------------------------------------------ checks/score
def _cfg(*checks, weights=None) -> ReportConfig:
    return ReportConfig(checks=tuple(checks),
                        area_weights={a: 1.0 for a in AREAS} | (weights or {}))


def test_score_is_exact_and_points_lost_explain_it():
    res = {"a": fake_result("a", {"m1": 0, "m2": 3, "m3": 0.5}),
           "b": fake_result("b", {"k": 0.9})}
    cfg = _cfg(spec("c1", metric="m1", analysis="a", weight=2),          # pass
               spec("c2", metric="m2", analysis="a", warn=0, fail=5),     # warn
               spec("c3", area="balance", analysis="a", metric="m3", warn=0.1, fail=0.2),
               spec("c4", area="agreement", analysis="b", metric="k", pass_if=">=",
                    warn=0.85, fail=0.75),                                # pass
               spec("c5", area="label quality", analysis="zz", metric="q"),
               weights={"hygiene": 2.0})
    r = build_report(make_run(res, skipped={"zz": "no predictions"}), cfg)
    st = {c.id: c.status for c in r.checks}
    assert st == {"c1": "pass", "c2": "warn", "c3": "fail", "c4": "pass", "c5": "skipped"}
    # hygiene (2*1 + 1*0.5) / 3 = 83.33; balance 0; agreement 100; label quality: no check ran
    assert r.area_scores["hygiene"] == pytest.approx(83.33, abs=0.01)
    assert r.area_scores["balance"] == 0 and r.area_scores["agreement"] == 100
    assert r.area_scores["label quality"] is None
    assert r.score == pytest.approx((2 * 250 / 3 + 0 + 100) / 4, abs=0.01)
    assert sum(c.points_lost for c in r.checks) == pytest.approx(100 - r.score, abs=0.01)
    c5 = r.check("c5")
    assert c5.reason == "zz skipped: no predictions" and c5.points_lost == 0
    assert "does not count" in c5.explanation
    assert "loses" in r.check("c3").explanation


def test_unlanded_analyses_are_skipped_then_picked_up_with_no_code_change():
    ds = qa.load(SAMPLE)
    run = run_analyses(ds, only=["validation", "balance"], embeddings="skip")
    run.skipped.update({n: "not available in this installation" for n in
                        ("agreement", "outliers", "duplicates", "quality", "disagreement")})
    before = build_report(run, thumbnails=0)
    dup = [c for c in before.checks if c.analysis == "duplicates"]
    assert dup and all(c.status == "skipped" and "not available" in c.reason for c in dup)
    assert before.analyses["duplicates"]["status"] == "skipped"
    fakes = planted_like_results()
    assert all(isinstance(f, AnalysisResult) for f in fakes.values())
    run.results.update(fakes)
    for n in fakes:
        run.skipped.pop(n)
    after = build_report(run, thumbnails=0)
    leak = after.check("cross_split_leakage")
    assert leak.status == "fail" and leak.value == 4 and leak.evidence_image_ids == (36, 51)  # the copy it leaks to, too
    assert leak.link == "duplicates?image_id=36,51&kind=leakage"
    assert after.check("outlier_share").status == "warn"      # 3.3 % between 1 % and 5 %
    assert after.check("image_quality").status == "pass"      # 1 % <= 2 %
    assert after.check("model_flagged_share").status == "warn"   # 10 % = fail line: warn
    errors = after.check("box_label_errors")
    assert errors.value == 24 and errors.status == "warn" and errors.evidence_image_ids == (68,)
    assert "classification" in after.check("label_issues").reason   # sample is detection
    assert after.area_scores["duplicates and leakage"] is not None
    assert before.area_scores["duplicates and leakage"] is None


def test_an_analysis_landing_in_runners_is_reported_through_run_analyses(monkeypatch):
    from qa import analyses

    monkeypatch.setitem(analyses.RUNNERS, "duplicates",
                        "tests.report.fakes:run_fake_duplicates")
    ds = qa.load(SAMPLE)
    r = build_report(ds, embeddings="skip", thumbnails=0)
    assert r.analyses["duplicates"]["status"] == "ran"
    assert r.analyses["duplicates"]["metrics"]["n_cross_split_pairs"] == 4
    assert r.check("cross_split_leakage").status == "fail"
    assert r.check("exact_duplicates").evidence_image_ids == (136, 127)  # and its copy
    # leakage fail (weight 3), exact/near warn (1 each), inconsistent labels warn (2),
    # nothing listed twice (1)
    assert r.area_scores["duplicates and leakage"] == pytest.approx(100 * 3 / 8, abs=0.01)


def test_metric_none_or_unknown_is_skipped_with_reason():
    res = {"a": fake_result("a", {"m": None})}
    r = build_report(make_run(res, errors={"b": "RuntimeError: kaput"}),
                     _cfg(spec("x"), spec("y", metric="nope"), spec("z", analysis="b")))
    assert r.check("x").status == "skipped" and "could not be measured" in r.check("x").reason
    assert "reports no metric 'nope'" in r.check("y").reason
    assert "failed: RuntimeError: kaput" in r.check("z").reason
    assert r.score is None and r.analyses["b"]["status"] == "error"


def test_a_result_that_cannot_be_read_is_contained():
    class Broken:
        ANALYSIS = "b"

        def metrics(self):
            raise KeyError("n_pairs")

        def findings(self):
            return None

        def to_dict(self):
            return {}

    res = {"a": fake_result("a", {"m": 0, "s": "many"}), "b": Broken()}
    r = build_report(make_run(res), _cfg(spec("x"), spec("y", analysis="b"),
                                         spec("z", metric="s")))
    assert r.check("x").status == "pass"
    assert r.check("y").status == "skipped" and "could not be read" in r.check("y").reason
    assert r.analyses["b"]["status"] == "error"
    assert "not a number" in r.check("z").reason


def test_only_for_detection_skips_on_classification(tmp_path):
    (tmp_path / "labels.csv").write_text("image,label\na.jpg,cat\nb.jpg,dog\n")
    ds = qa.load(tmp_path / "labels.csv", probe=False)
    r = build_report(make_run({"balance": fake_result("balance", {"min_class_instances": 1})},
                              dataset=ds),
                     _cfg(spec("d", analysis="balance", metric="min_class_instances",
                               only_for="detection")), thumbnails=0)
    assert r.check("d").status == "skipped" and "classification" in r.check("d").reason


def test_review_dismissals_drop_evidence_and_count_check_failures(monkeypatch):
    rows = [dict(kind="leakage", severity="error", image_id=i, score=1.0, message=f"leak {i}")
            for i in (1, 2, 3)]
    res = {"duplicates": fake_result("duplicates", {"n_cross_split_pairs": 3}, rows)}
    cfg = _cfg(spec("leak", area="duplicates and leakage", analysis="duplicates",
                    metric="n_cross_split_pairs", evidence=("leakage",), counts_evidence=True))
    seen = {}

    def mark_findings(dataset, findings):
        seen["n"] = len(findings)
        status = ["not_an_issue" if i in (1, 2) else "open" for i in findings["image_id"]]
        who = ["dana" if i == 1 else ("eve" if i == 2 else None) for i in findings["image_id"]]
        return findings.assign(item_key=range(len(findings)), status=status, decided_by=who)

    monkeypatch.setitem(sys.modules, "qa.review",
                        types.SimpleNamespace(mark_findings=mark_findings))
    ds = qa.load(SAMPLE)
    r = build_report(make_run(res, dataset=ds), cfg, thumbnails=0)
    c = r.check("leak")
    assert seen["n"] == 3
    assert c.measured == 3 and c.value == 1 and c.status == "fail"
    assert c.evidence_image_ids == (3,) and c.n_dismissed == 2
    assert c.dismissed_by == {"dana": 1, "eve": 1}
    assert r.review == {"available": True, "n_dismissed": 2, "by": {"dana": 1, "eve": 1}}

    def dismiss_all(dataset, findings):
        return findings.assign(item_key=0, status="not_an_issue", decided_by="dana")

    monkeypatch.setitem(sys.modules, "qa.review",
                        types.SimpleNamespace(mark_findings=dismiss_all))
    c = build_report(make_run(res, dataset=ds), cfg, thumbnails=0).check("leak")
    assert c.status == "pass" and c.value == 0 and c.n_evidence == 0
    # a pair count with one finding per image: dismissing both images of one of 2 pairs
    pairs = {"duplicates": fake_result("duplicates", {"n_cross_split_pairs": 2}, [
        {**rows[0], "image_id": i} for i in (1, 2, 3, 4)])}
    monkeypatch.setitem(sys.modules, "qa.review",
                        types.SimpleNamespace(mark_findings=mark_findings))
    c = build_report(make_run(pairs, dataset=ds), cfg, thumbnails=0).check("leak")
    assert c.measured == 2 and c.value == 1 and c.n_dismissed == 2


def test_without_review_module_nothing_is_dismissed(monkeypatch):
    monkeypatch.setitem(sys.modules, "qa.review", None)  # import raises ImportError
    r = build_report(make_run({"a": fake_result("a", {"m": 1})}), _cfg(spec("x")))
    assert r.review == {"available": False, "n_dismissed": 0, "by": {}}


def test_broken_review_store_does_not_stop_the_report(monkeypatch):
    from qa.report.schema import validate_report_dict

    def broken(dataset, findings):
        raise OSError("database is locked")

    monkeypatch.setitem(sys.modules, "qa.review", types.SimpleNamespace(mark_findings=broken))
    rows = [{"kind": "k", "severity": "error", "image_id": 1, "message": "m"}]
    r = build_report(make_run({"a": fake_result("a", {"m": 1}, rows)}, dataset=qa.load(SAMPLE)),
                     _cfg(spec("x")), thumbnails=0)
    assert r.check("x").status == "fail" and r.check("x").n_evidence == 1
    assert "database is locked" in r.review["error"] and r.review["available"] is False
    validate_report_dict(json.loads(json.dumps(r.to_dict())))


def test_gate_levels_and_bad_inputs():
    res = {"a": fake_result("a", {"w": 1, "f": 9})}
    r = build_report(make_run(res), _cfg(spec("w", metric="w", warn=0, fail=5),
                                          spec("f", metric="f", warn=0, fail=5)))
    assert [c.id for c in r.gate("warn")] == ["w", "f"]
    assert [c.id for c in r.gate("fail")] == ["f"]
    with pytest.raises(ValueError, match="gate level"):
        r.gate("error")
    with pytest.raises(TypeError, match="Dataset or a qa.analyses.AnalysisRun"):
        build_report("sample_data")
    with pytest.raises(TypeError, match="ReportConfig"):
        build_report(make_run(res), {"checks": []})


# ------------------------------------------------------------------------------ sample_data
@pytest.fixture(scope="module")
def sample_report():
    ds = qa.load(SAMPLE, predictions=str(SAMPLE / "predictions" / "detector.json"))
    return build_report(ds, embeddings="skip")


def test_sample_report_names_every_planted_issue_the_landed_analyses_see(sample_report):
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())
    r = sample_report
    files = r.check("missing_or_corrupt_files")
    assert files.status == "fail" and files.value == 2
    assert set(files.evidence_image_ids) == {planted["missing_file"]["image_id"],
                                             planted["corrupt_file"]["image_id"]}
    rare = r.check("rare_classes")
    assert rare.status == "warn" and rare.value == pytest.approx(22 / 317)
    assert any("'star'" in m for m in rare.evidence_messages)
    assert r.check("min_instances_per_class").status == "fail"
    empty = r.check("empty_images")
    assert empty.status == "warn"
    assert {e["image_id"] for e in planted["empty_images"]} <= set(empty.evidence_image_ids)
    # bob's loose boxes (IoU 0.65 < 0.75), carol's misses (recall 0.72) and her ring/circle
    # confusion (label mismatches) all show
    assert r.check("annotator_box_iou").status == "fail"
    assert r.check("annotator_recall").status == "fail"
    assert r.check("label_mismatch").status == "fail"
    # ... and each check's evidence names the annotator it is about, not every disputed image
    for check, who in (("annotator_box_iou", "bob's boxes are loose"),
                       ("annotator_recall", "carol misses objects"),
                       ("label_mismatch", "carol labels ring as circle")):
        c = r.check(check)
        assert c.n_evidence == 1 and c.evidence_messages[0].startswith(who), (check, c)
    assert r.check("fleiss_kappa").status in ("warn", "fail")
    assert any("carol" in m and "'ring'" in m
               for m in r.check("annotator_class_mix").evidence_messages)
    for c in r.checks:
        if c.analysis not in r.analyses or r.analyses[c.analysis]["status"] != "ran":
            assert c.status == "skipped" and c.reason
    assert 0 < r.score < 100
    assert r.thumbnails and all(v.startswith("data:image/png;base64,")
                                for v in r.thumbnails.values())


def test_to_dict_round_trips(sample_report):
    d = json.loads(json.dumps(sample_report.to_dict()))
    back = HealthReport.from_dict(d)
    assert back.score == sample_report.score
    assert [c.status for c in back.checks] == [c.status for c in sample_report.checks]
    assert back.to_dict() == d
    frame = sample_report.checks_frame()
    assert frame["id"].tolist() == [c.id for c in sample_report.checks]
    assert frame.loc[frame["id"] == "missing_or_corrupt_files", "status"].item() == "fail"
    with pytest.raises(ValueError, match="not a health report"):
        HealthReport.from_dict({"x": 1})


def test_sample_report_names_planted_issues_of_analyses_as_they_land(sample_report):
    """Until an analysis lands its checks are skipped; once it runs, its checks must carry the
    planted ids as evidence (this test needs no change when they land)."""
    planted = json.loads((SAMPLE / "PLANTED.json").read_text())
    r = sample_report
    ran = {n for n, a in r.analyses.items() if a["status"] == "ran"}
    if "duplicates" in ran:
        leak = r.check("cross_split_leakage")
        assert leak.status == "fail"
        for e in planted["near_duplicates"] + planted["exact_duplicates"]:
            if e["cross_split"]:
                assert {e["a"], e["b"]} & set(leak.evidence_image_ids), e
        exact = set(r.check("exact_duplicates").evidence_image_ids)
        assert all({e["a"], e["b"]} & exact for e in planted["exact_duplicates"])
    if "outliers" in ran:
        ood = {e["image_id"] for e in planted["ood_images"]}
        assert ood <= set(r.check("outlier_share").evidence_image_ids)
    if "disagreement" in ran:
        errs = {e["image_id"] for e in planted["label_errors"]}
        assert errs <= set(r.check("box_label_errors").evidence_image_ids)
    for name in {"duplicates", "outliers", "quality", "disagreement"} - ran:
        assert all(c.status == "skipped" and c.reason for c in r.checks if c.analysis == name)


def test_thumbnails_are_added_later_the_same_as_built_in(sample_report):
    """The dashboard builds the report without thumbnails (its page shows none) and adds them
    when the HTML is downloaded: the same images as a report built with them."""
    from qa.report.core import add_thumbnails

    ds = qa.load(SAMPLE, predictions=str(SAMPLE / "predictions" / "detector.json"))
    bare = replace(sample_report, thumbnails={})
    later = add_thumbnails(bare, ds)
    assert set(later.thumbnails) == set(sample_report.thumbnails)
    assert add_thumbnails(bare, None) is bare
