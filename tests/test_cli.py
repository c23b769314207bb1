import json
import subprocess
import sys

import pytest

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


# ---- every command on datasets of other shapes: an answer or one clear line, never a traceback
from tests.shapes import SHAPES  # noqa: E402  (the shapes of tests/app/test_every_page.py)

_COMMANDS = (["info"], ["stats"], ["agreement"], ["duplicates"], ["quality"],
             ["disagreement"], ["evaluate"], ["report", "--out", "{out}", "--embeddings", "skip"],
             ["review", "export", "{path}", "--out", "{out}/decisions.csv"])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_command_answers_on_every_dataset_shape(shape, tmp_path, capsys):
    from qa.cli import main

    path = SHAPES[shape](tmp_path / "ds")
    for cmd in _COMMANDS:
        argv = [a.format(out=tmp_path / "out", path=path) for a in cmd]
        if cmd[0] != "review":
            argv.insert(1, str(path))
        rc = main(argv)
        err = capsys.readouterr().err
        assert "Traceback" not in err and "unexpected" not in err, (shape, cmd, err)
        assert "Warning:" not in err and "res = " not in err, (shape, cmd, err)  # no source line
        if cmd[0] in ("disagreement", "evaluate"):  # none of these shapes has a model
            assert rc == 2 and ("--predictions FILE" in err or "needs boxes" in err), err
        else:
            assert rc in (0, 1), (shape, cmd, rc, err)


@pytest.mark.filterwarnings("always::qa.balance.BalanceWarning")  # the suite ignores them
def test_warnings_are_one_line_notes(tmp_path, capsys):
    from qa.cli import main

    path = SHAPES["yolo_one_annotator"](tmp_path / "ds")
    assert main(["stats", str(path)]) == 0
    err = capsys.readouterr().err
    assert "dataset-qa: note: Split class-mix chi-square is undefined" in err
    assert "stats.py" not in err


def test_outliers_on_unreadable_images_says_why(tmp_path, capsys):
    from qa.cli import main

    path = SHAPES["no_image_files"](tmp_path / "ds")
    assert main(["outliers", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert "0 of 3 could be embedded; 3 could not be read (e.g. 1.jpg: file not found)" in err
