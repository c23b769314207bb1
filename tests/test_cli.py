import json
import subprocess
import sys

from qa.cli import main


def test_info_text_and_json(coco_dir, capsys):
    assert main(["info", str(coco_dir)]) == 0
    out = capsys.readouterr().out
    assert "images                3" in out and "Validation: 0 errors" in out
    assert main(["info", str(coco_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["images"] == 3 and doc["summary"]["format"] == "coco"
    assert doc["validation"]["n_errors"] == 0


def test_unusable_input_exits_nonzero_without_traceback(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"images": [')
    r = subprocess.run([sys.executable, "-m", "qa.cli", "info", str(bad)], capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "broken.json: malformed JSON" in r.stderr and "Traceback" not in r.stderr


def test_fail_on_error_gate(coco_dir, capsys):
    (coco_dir / "images" / "a.jpg").unlink()
    assert main(["info", str(coco_dir)]) == 0
    assert main(["info", str(coco_dir), "--fail-on-error"]) == 1
    assert "'a.jpg' is listed but not found" in capsys.readouterr().out


def test_stats_flags_the_planted_rare_class_and_gates(capsys):
    from tests.conftest import SAMPLE

    rare = json.loads((SAMPLE / "PLANTED.json").read_text())["rare_class"]["name"]
    assert main(["stats", str(SAMPLE), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    flagged = [r["name"] for r in doc["per_class"] if r["is_rare"]]
    assert flagged == [rare]
    assert main(["stats", str(SAMPLE), "--fail-on-check"]) == 1
    assert "[FAIL] rare_classes" in capsys.readouterr().out


def test_agreement_scorecard_text_and_json(capsys):
    from tests.conftest import SAMPLE

    assert main(["agreement", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "Krippendorff's alpha" in out and "ring as circle" in out
    assert main(["agreement", str(SAMPLE), "--json", "--iou", "0.6"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["iou_threshold"] == 0.6 and doc["annotators"] == ["alice", "bob", "carol"]
