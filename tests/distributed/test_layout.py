"""The cluster layout (qa.distributed.layout): Parquet parts keyed by content hash and model,
written whole or not at all, read back with damage detected, and the local store importing
from / exporting to it. No Ray needed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from qa.distributed.layout import (
    ClusterLayout,
    LayoutError,
    export_from_store,
    import_into_store,
    part_name,
)
from qa.store import Store
from tests.conftest import ROOT

MODEL = "timm/tf_efficientnet_lite0/efficientnet-lite0-57934424/pp1"


def _vecs(n, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_vectors_and_records_roundtrip(tmp_path):
    lay = ClusterLayout(str(tmp_path / "lay"))
    v = _vecs(5)
    lay.put_vectors(MODEL, list("abcde"), v)
    lay.put_vectors(MODEL, ["f"], _vecs(1, seed=1))
    keys, got = lay.get_vectors(MODEL, ["e", "x", "a", "f"])
    assert sorted(keys) == ["a", "e", "f"]  # missing keys are absent
    np.testing.assert_array_equal(got[[keys.index("a"), keys.index("e")]], v[[0, 4]])
    assert lay.keys("vectors", MODEL) == set("abcdef")
    assert lay.names("vectors") == [MODEL]  # the model id survives the quoting of "/"
    lay.put_records("imagestats/v2", {"a": {"brightness": 1.5}, "b": {"error": "truncated"}})
    assert lay.get_records("imagestats/v2", ["b", "z"]) == {"b": {"error": "truncated"}}
    assert lay.names("records") == ["imagestats/v2"]
    marker = json.loads((tmp_path / "lay" / "LAYOUT.json").read_text())
    assert marker["format"] == "dataset-qa-layout"
    assert not list((tmp_path / "lay" / "_tmp").iterdir())  # nothing left half-written
    with pytest.raises(ValueError, match="one row per key"):
        lay.put_vectors(MODEL, ["a"], v)


def test_a_retried_batch_rewrites_its_own_part(tmp_path):
    """The part name is a digest of the keys, whatever their order: writing a batch twice
    (a task retried after its node died) leaves one part, no repeated key."""
    lay = ClusterLayout(str(tmp_path))
    v = _vecs(3)
    p1 = lay.put_vectors(MODEL, ["k1", "k2", "k3"], v)
    p2 = lay.put_vectors(MODEL, ["k3", "k1", "k2"], v[[2, 0, 1]])
    assert p1 == p2 and p1.endswith(part_name(["k2", "k3", "k1"]))
    (info,) = lay.info()
    assert (info["parts"], info["entries"], info["keys"]) == (1, 3, 3)


def test_overlapping_runs_are_read_once_and_compacted(tmp_path):
    lay = ClusterLayout(str(tmp_path))
    v = _vecs(4)
    lay.put_vectors(MODEL, ["a", "b", "c"], v[:3])
    lay.put_vectors(MODEL, ["c", "d"], v[2:])  # "c" again: two runs that overlapped
    keys, got = lay.get_vectors(MODEL)
    assert sorted(keys) == list("abcd") and len(got) == 4
    (info,) = lay.info()
    assert (info["entries"], info["keys"]) == (5, 4)
    assert lay.compact("vectors", MODEL) == 2
    (info,) = lay.info()
    assert (info["parts"], info["entries"], info["keys"]) == (1, 4, 4)
    keys, got = lay.get_vectors(MODEL, ["d", "a"])
    np.testing.assert_array_equal(got[keys.index("d")], v[3])


def test_damage_is_detected_and_skipped(tmp_path, caplog):
    lay = ClusterLayout(str(tmp_path))
    good = lay.put_vectors(MODEL, ["a", "b"], _vecs(2))
    bad = lay.put_vectors(MODEL, ["c"], _vecs(1, seed=3))
    with open(bad, "r+b") as f:  # a torn write on a shared disk
        f.truncate(40)
    keys, _ = lay.get_vectors(MODEL)
    assert sorted(keys) == ["a", "b"] and lay.n_corrupt == 1
    assert "unreadable" in caplog.text and "recomputed" in caplog.text
    # a flipped byte inside a row: its CRC no longer matches
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(good)
    vec = t.column("vector").combine_chunks()
    flat = vec.flatten().to_numpy().copy()
    flat[0] += 1.0
    t = t.set_column(1, "vector", pa.FixedSizeListArray.from_arrays(pa.array(flat), 8))
    pq.write_table(t, good)
    lay2 = ClusterLayout(str(tmp_path))
    assert lay2.get_vectors(MODEL)[0] == ["b"] and lay2.n_corrupt == 2


def test_refuses_a_folder_of_another_format(tmp_path):
    (tmp_path / "LAYOUT.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(LayoutError, match="not a dataset-qa layout"):
        ClusterLayout(str(tmp_path)).put_records("k/v1", {"a": {}})
    (tmp_path / "LAYOUT.json").write_text(json.dumps({"format": "dataset-qa-layout",
                                                      "version": 99}))
    with pytest.raises(LayoutError, match="upgrade dataset-qa"):
        ClusterLayout(str(tmp_path)).put_records("k/v1", {"a": {}})
    with pytest.raises(LayoutError, match="path or URI"):
        ClusterLayout("  ")


def test_any_fsspec_uri(tmp_path):
    """Not only local folders: an fsspec URI (memory:// here; s3://, gs:// with their
    packages) holds the same layout."""
    uri = f"memory://qa-test-{tmp_path.name}"
    lay = ClusterLayout(uri)
    lay.put_vectors(MODEL, ["a", "b"], _vecs(2))
    assert not lay.is_local
    keys, got = ClusterLayout(uri).get_vectors(MODEL)
    assert sorted(keys) == ["a", "b"] and got.shape == (2, 8)
    assert ClusterLayout(str(tmp_path)).is_local


def test_store_exports_to_and_imports_from_a_layout(tmp_path):
    a = Store(tmp_path / "a.sqlite")
    v = _vecs(6)
    a.put_vectors(MODEL, [f"k{i}" for i in range(6)], v)
    a.put_records("imagestats/v2", {"k0": {"blur": 3.0}, "k1": {"error": "not found"}})
    lay = ClusterLayout(str(tmp_path / "lay"))
    lay.put_vectors(MODEL, ["k0", "k1"], v[:2])  # already there: not exported again
    assert export_from_store(a, lay) == {MODEL: 4, "imagestats/v2": 2}
    assert export_from_store(a, lay) == {MODEL: 0, "imagestats/v2": 0}
    b = Store(tmp_path / "b.sqlite")
    b.put_vectors(MODEL, ["k5"], v[5:])
    assert import_into_store(lay, b) == {MODEL: 5, "imagestats/v2": 2}
    found, got = b.get_vectors(MODEL, [f"k{i}" for i in range(6)])
    assert found.all()
    np.testing.assert_array_equal(got, v)
    assert b.get_records("imagestats/v2", ["k1"]) == {"k1": {"error": "not found"}}
    assert import_into_store(lay, b, model=MODEL) == {MODEL: 0}


def test_cli_cache_export_and_import(tmp_path, monkeypatch):
    from qa.cli import main
    from qa.store import CACHE_ENV, default_store

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c1"))
    default_store().put_vectors(MODEL, ["x", "y"], _vecs(2))
    assert main(["cache", "export", str(tmp_path / "lay"), "--json"]) == 0
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c2"))
    assert main(["cache", "import", str(tmp_path / "lay"), "--model", MODEL]) == 0
    assert default_store().get_vectors(MODEL, ["x", "y"])[0].all()
    ClusterLayout(str(tmp_path / "lay")).put_vectors(MODEL, ["y", "z"], _vecs(2, seed=4))
    assert main(["cache", "compact", str(tmp_path / "lay")]) == 0
    (info,) = ClusterLayout(str(tmp_path / "lay")).info()
    assert (info["parts"], info["entries"], info["keys"]) == (1, 3, 3)


def test_nothing_imports_ray_without_the_option(tmp_path):
    """Without --ray / ray= neither ray nor qa.distributed is imported (an optional extra)."""
    code = ("import sys, qa; from qa.cli import build_parser; build_parser(); "
            "import qa.analyses, qa.embeddings, qa.imagestats, qa.duplicates; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.') "
            "or m.startswith('qa.distributed')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_ray_the_option_says_how_to_install(monkeypatch, coco_dir, capsys):
    from qa.cli import main
    from qa.distributed import cluster_run

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'dataset-qa\[ray\]'"):
        cluster_run("auto")
    with pytest.raises(ValueError, match="'auto', 'local' or a cluster address"):
        cluster_run(" ")
    rc = main(["embed", str(coco_dir), "--model", "efficientnet-lite0", "--ray", "auto"])
    assert rc == 2
    assert "pip install 'dataset-qa[ray]'" in capsys.readouterr().err
