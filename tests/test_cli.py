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
