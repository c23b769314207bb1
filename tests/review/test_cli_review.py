"""`dataset-qa review export|import` moves decisions between two databases."""

from __future__ import annotations

import json

from qa.cli import main
from qa.review import ReviewStore, build_queue, mark_findings, record_decision
from tests.review.test_queue import FINDINGS, _ds


def test_export_then_import_on_another_machine(tmp_path, capsys):
    root = tmp_path / "data"
    ds = _ds(root)
    here = f"sqlite:///{tmp_path / 'here.sqlite'}"
    there = f"sqlite:///{tmp_path / 'there.sqlite'}"
    st = ReviewStore(here)
    q = build_queue(ds, FINDINGS, store=st)
    record_decision(q.iloc[0], "confirmed", reviewer="ann", store=st)
    record_decision(q.iloc[1], "not_an_issue", reviewer="bob", note="fine", store=st)
    out = tmp_path / "moved.csv"
    assert main(["review", "export", str(root), "--out", str(out), "--db", here,
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decisions"] == 2
    assert main(["review", "import", str(root), str(out), "--db", there, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["added"], res["already_there"], res["about_this_dataset"]) == (2, 0, 2)
    assert main(["review", "import", str(root), str(out), "--db", there]) == 0
    assert "0 decisions added, 2 already there" in capsys.readouterr().out
    a = mark_findings(ds, FINDINGS, store=st)
    b = mark_findings(ds, FINDINGS, store=ReviewStore(there))
    assert a[["status", "decided_by"]].equals(b[["status", "decided_by"]])


def test_relabel_file_and_errors(tmp_path, capsys):
    root = tmp_path / "data"
    _ds(root)
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    relabel = tmp_path / "relabel.json"
    assert main(["review", "export", str(root), "--out", str(tmp_path / "d.json"), "--db", db,
                 "--relabel", str(relabel)]) == 0
    assert json.loads(relabel.read_text()) == []  # nothing confirmed yet
    assert "0 decisions written" in capsys.readouterr().out
    assert main(["review", "export", str(root), "--out", str(tmp_path / "d.txt"),
                 "--db", db]) == 2
    assert "name it .csv or .json" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["review", "import", str(root), str(bad), "--db", db]) == 2
    assert "not a dataset-qa decisions export" in capsys.readouterr().err


def test_unreachable_database_exits_2(tmp_path, capsys):
    root = tmp_path / "data"
    _ds(root)
    code = main(["review", "export", str(root), "--out", str(tmp_path / "d.csv"), "--db",
                 "postgresql://u:secret@127.0.0.1:9/db"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot open the decisions database" in err and "secret" not in err
