"""Tests of qa.store: the content-addressed SQLite store (vectors, records, file-hash memo),
damaged entries and files, and two processes writing at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from qa.store import CACHE_ENV, Store, cache_dir, default_store
from tests.conftest import ROOT, write_jpeg


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "dataset-qa"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "d"))
    assert default_store().path == tmp_path / "d" / "store.sqlite"


def test_vectors_roundtrip_and_models_apart(tmp_path):
    st = Store(tmp_path / "s.sqlite")
    v = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    st.put_vectors("m1", list("abcde"), v)
    found, out = st.get_vectors("m1", ["e", "x", "a"])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(out[[0, 2]], v[[4, 0]])
    assert not out[1].any()
    assert st.get_vectors("m2", ["a"]) [0].tolist() == [False]
    assert st.has_vectors("m1") and not st.has_vectors("m2")
    with pytest.raises(ValueError, match="one row per key"):
        st.put_vectors("m1", ["a"], v)
    info = st.info()
    assert info.set_index("name").loc["m1", "entries"] == 5
    assert st.clear(model="m1") == 5 and not st.get_vectors("m1", ["a"])[0].any()
    assert not st.has_vectors("m1")


def test_records_roundtrip(tmp_path):
    st = Store(tmp_path / "s.sqlite")
    st.put_records("pixstats/v1", {"k1": {"mean": 1.5, "phash": "ff00"}, "k2": {"mean": 2}})
    assert st.get_records("pixstats/v1", ["k1", "k3"]) == {"k1": {"mean": 1.5, "phash": "ff00"}}
    assert st.get_records("pixstats/v2", ["k1"]) == {}


def test_damaged_entry_dropped_and_counted(tmp_path):
    p = tmp_path / "s.sqlite"
    st = Store(p)
    st.put_vectors("m", ["a", "b"], np.ones((2, 4), np.float32))
    st.put_records("r", {"a": {"x": 1}})
    con = sqlite3.connect(p)
    con.execute("UPDATE vectors SET data = X'00000000' WHERE key = 'a'")  # truncated
    con.execute("UPDATE records SET data = X'7b7d' WHERE key = 'a'")  # crc mismatch
    con.commit()
    con.close()
    found, _ = st.get_vectors("m", ["a", "b"])
    assert found.tolist() == [False, True] and st.n_corrupt == 1
    assert st.get_records("r", ["a"]) == {} and st.n_corrupt == 2
    assert st.info().set_index("name").loc["m", "entries"] == 1  # the bad one is gone


def test_unreadable_store_file_is_moved_aside(tmp_path, caplog):
    p = tmp_path / "s.sqlite"
    p.write_bytes(b"this is not a database" * 100)
    st = Store(p)
    assert st.recovered_from is not None and st.recovered_from.exists()
    assert "unreadable" in caplog.text
    st.put_records("r", {"a": {}})
    assert st.get_records("r", ["a"]) == {"a": {}}


def test_file_hash_memo(tmp_path):
    root = tmp_path / "ds"
    write_jpeg(root / "a.jpg", seed=1)
    write_jpeg(root / "b.jpg", seed=2)
    st = Store(tmp_path / "s.sqlite")
    calls = []
    df = st.hash_files(root, ["a.jpg", "b.jpg", "missing.jpg", "../x.jpg"],
                       progress=lambda d, t: calls.append((d, t)))
    assert df["sha256"].notna().tolist() == [True, True, False, False]
    assert df["error"].tolist()[2:] == ["file not found", "outside the dataset root"]
    assert calls[-1] == (2, 2)
    calls.clear()
    again = st.hash_files(root, ["a.jpg", "b.jpg"], progress=lambda d, t: calls.append((d, t)))
    assert again["sha256"].tolist() == df["sha256"].tolist()[:2] and calls == []  # memo hit
    write_jpeg(root / "a.jpg", seed=9)  # edited: new bytes, new mtime
    os.utime(root / "a.jpg", ns=(1, 1))
    edited = st.hash_files(root, ["a.jpg"])
    assert edited["sha256"].iloc[0] != df["sha256"].iloc[0]


_WRITER = """
import sys
import numpy as np
from qa.store import Store
path, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
st = Store(path)
for i in range(start, start + n, 50):
    keys = [f"k{j}" for j in range(i, min(i + 50, start + n))]
    st.put_vectors("m", keys, np.full((len(keys), 4), i, np.float32))
"""


def test_two_processes_write_at_once_and_lose_nothing(tmp_path):
    p = str(tmp_path / "s.sqlite")
    Store(p).close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, p, str(k * 1000), "1000"],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for k in range(2)]
    for pr in procs:
        _, err = pr.communicate(timeout=120)
        assert pr.returncode == 0, err
    found, _ = Store(p).get_vectors("m", [f"k{j}" for j in range(2000)])
    assert found.all()


def test_tests_never_use_the_users_folders():
    from qa.store import workspace_dir

    home = os.path.expanduser("~")
    assert not str(cache_dir()).startswith(os.path.join(home, ".cache"))
    assert not str(workspace_dir()).startswith(os.path.join(home, ".local"))
