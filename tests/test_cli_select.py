import json

import pandas as pd

import qa
from qa.cli import main
from tests.conftest import SAMPLE


def test_select_prints_picks_with_reasons_and_writes_the_exports(tmp_path, capsys):
    out = tmp_path / "picks"
    assert main(["select", str(SAMPLE), "--budget", "6", "--pool", "split:test",
                 "--embeddings", "skip", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pool: 50 images (split:test), labelled: 237; strategy uncertainty; picked 6" in text
    assert "model unsure: max box entropy" in text
    assert "a near-duplicate of labelled image #83" in text  # test/59 copies train/83
    picks = pd.read_csv(out / "selection.csv")
    assert len(picks) == 6 and picks["rank"].tolist() == list(range(1, 7))
    tasks = json.loads((out / "labelstudio_tasks.json").read_text())
    assert [t["data"]["image_id"] for t in tasks] == picks["image_id"].tolist()
    assert all(t["predictions"][0]["model_version"] == "detector" for t in tasks)
    assert "<RectangleLabels" in (out / "labelstudio_config.xml").read_text()
    assert len(qa.load(out / "selection_coco.json").images) == 6


def test_select_json_and_unusable_options(capsys):
    assert main(["select", str(SAMPLE), "--budget", "3", "--strategy", "random",
                 "--embeddings", "skip", "--duplicates", "none", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["strategy"] == "random" and len(doc["picks"]) == 3
    assert main(["select", str(SAMPLE), "--budget", "3", "--strategy", "kcenter",
                 "--embeddings", "skip"]) == 2
    assert "needs image embeddings of the pool" in capsys.readouterr().err
    assert main(["select", str(SAMPLE), "--budget", "3", "--pool", "split:nope",
                 "--embeddings", "skip"]) == 2
    assert "unknown split in --pool 'split:nope'" in capsys.readouterr().err


def test_split_reports_before_and_after_and_writes_the_proposal(tmp_path, capsys):
    out = tmp_path / "split.csv"
    assert main(["split", str(SAMPLE), "--keep-existing", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Cross-split duplicate pairs   6.000  0.000" in text
    assert "moved test -> train: a near-duplicate of #83 (train)" in text
    df = pd.read_csv(out)
    assert len(df) == 300 and set(df["split"]) == {"train", "val", "test"}
    assert main(["split", str(SAMPLE), "--fractions", ".7,.2,.2"]) == 2
    assert "the fractions must sum to 1" in capsys.readouterr().err
