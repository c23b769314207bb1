"""A real Ray cluster on 127.0.0.1: a head node and a worker node as separate processes
(``ray start --head``, ``ray start --address``, a temp folder of their own), stopped at the end
even when a test fails.

* the pixel pass, image embeddings and box embeddings on the cluster give the same records
  and vectors as the single-process run (a subset of sample_data, the offline model);
* the sharded duplicate search finds >= 99 % of the single-machine pairs;
* a worker node killed in the middle: the job finishes, nothing lost, nothing repeated;
* the whole cluster stopped in the middle: a re-run (on a new cluster) computes only what
  is missing.

Skipped where Ray is not installed, except under QA_REQUIRE_RAY=1 (CI), where that fails.
The runs that lose nodes use the CLI in a subprocess as their driver, so that this process
is never a driver of a cluster that dies under it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, SAMPLE

HAVE_RAY = importlib.util.find_spec("ray") is not None
if not HAVE_RAY and os.environ.get("QA_REQUIRE_RAY") == "1":
    raise RuntimeError("QA_REQUIRE_RAY=1 but Ray is not installed: pip install "
                       "'dataset-qa[ray]' (or the [test] extra)")
pytestmark = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed "
                                                     "(pip install 'dataset-qa[ray]')")

MODEL = "efficientnet-lite0"
N_IMAGES = 24
KILL_BATCH = 2  # small batches: many parts, so a node can be lost in the middle
RUN_TIMEOUT_S = 400


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    """The first N_IMAGES images of sample_data (all three splits) with alice's boxes, as a
    COCO dataset of its own."""
    doc = json.loads((SAMPLE / "annotations" / "alice.json").read_text())
    images = sorted(doc["images"], key=lambda im: im["id"])[:N_IMAGES]
    ids = {im["id"] for im in images}
    out = tmp_path_factory.mktemp("subset")
    for im in images:
        dst = out / "images" / im["file_name"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLE / "images" / im["file_name"], dst)
    doc = {**doc, "images": images, "annotations": [a for a in doc["annotations"]
                                                    if a["image_id"] in ids]}
    (out / "annotations").mkdir()
    (out / "annotations" / "alice.json").write_text(json.dumps(doc))
    return out


@pytest.fixture(scope="module")
def dataset(subset):
    import qa

    return qa.load(str(subset / "annotations" / "alice.json"),
                   image_root=str(subset / "images"))


@pytest.fixture(scope="module")
def local(dataset, tmp_path_factory):
    """The single-process results, in a store of their own: the reference."""
    from qa.embeddings import embed_images, embed_objects
    from qa.imagestats import compute_image_stats
    from qa.store import Store

    st = Store(tmp_path_factory.mktemp("local") / "store.sqlite")
    return {"stats": compute_image_stats(dataset, store=st),
            "images": embed_images(dataset, model=MODEL, store=st),
            "objects": embed_objects(dataset, model=MODEL, store=st)}


@pytest.fixture(scope="module")
def cluster():
    from qa.distributed.localcluster import LocalCluster

    # logical CPUs (the machine has 2 cores): two model actors, and when the worker node is
    # lost the head still has room for both and for redoing the lost decoding
    c = LocalCluster(workers=1, cpus=2, head_cpus=3)
    c.start()
    try:
        yield c
    finally:
        try:
            import ray

            ray.shutdown()
        finally:
            c.stop()


def _cli(args, cache: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, DATASET_QA_CACHE=str(cache), PYTHONPATH=str(ROOT),
               HF_HUB_OFFLINE="1")
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "qa.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _embed_args(subset, address, *extra):
    return ["embed", str(subset / "annotations" / "alice.json"), "--image-root",
            str(subset / "images"), "--model", MODEL, "--ray", address, "--json", *extra]


def _json(out: str, err: str) -> dict:
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"not JSON:\n{out[-3000:]}\nstderr:\n{err[-3000:]}") from None


def _parts(layout: Path) -> int:
    return len(list(layout.glob("vectors/*/part-*.parquet")))


def _stored(cache: Path, keys) -> np.ndarray:
    from qa.embeddings import resolve_model
    from qa.store import Store

    found, _ = Store(cache / "store.sqlite").get_vectors(resolve_model(MODEL).model_id, keys)
    return found


def _cluster_counts(notes) -> tuple[int, int]:
    """(computed on the cluster, taken from the layout) from the embed notes."""
    for n in notes:
        m = re.search(r"([\d,]+) computed on the cluster, ([\d,]+) taken from the layout", n)
        if m:
            return tuple(int(g.replace(",", "")) for g in m.groups())
    return 0, 0


def test_cluster_results_equal_single_process(cluster, dataset, local, tmp_path):
    """Pixel pass, image and box embeddings on a 2-node cluster: the same records and
    vectors as the single-process run, and a second run computes nothing."""
    from qa.embeddings import embed_images, embed_objects
    from qa.imagestats import compute_image_stats
    from qa.store import Store

    st = Store(tmp_path / "store.sqlite")
    lay = str(tmp_path / "layout")
    stats = compute_image_stats(dataset, store=st, ray=cluster.address, layout=lay)
    pd.testing.assert_frame_equal(stats.table, local["stats"].table)
    assert stats.n_computed == N_IMAGES
    img = embed_images(dataset, model=MODEL, store=st, ray=cluster.address, layout=lay)
    obj = embed_objects(dataset, model=MODEL, store=st, ray=cluster.address, layout=lay)
    for got, ref in ((img, local["images"]), (obj, local["objects"])):
        np.testing.assert_array_equal(got.image_ids, ref.image_ids)
        np.testing.assert_allclose(got.vectors, ref.vectors, atol=1e-5)
        assert got.n_computed == len(ref) > 0
        assert _cluster_counts(got.notes) == (len(ref), 0)
    np.testing.assert_array_equal(obj.ann_ids, local["objects"].ann_ids)
    # the layout holds everything, once: a fresh machine's store imports it all
    st2 = Store(tmp_path / "store2.sqlite")
    again = embed_images(dataset, model=MODEL, store=st2, ray=cluster.address, layout=lay)
    assert again.n_computed == N_IMAGES and _cluster_counts(again.notes) == (0, N_IMAGES)
    np.testing.assert_allclose(again.vectors, local["images"].vectors, atol=1e-5)
    stats2 = compute_image_stats(dataset, store=st2, ray=cluster.address, layout=lay)
    pd.testing.assert_frame_equal(stats2.table, local["stats"].table)
    # and a second run on the same store computes nothing at all
    third = embed_images(dataset, model=MODEL, store=st, ray=cluster.address, layout=lay)
    assert (third.n_computed, third.n_cached) == (0, N_IMAGES)


def test_commands_and_analyses_take_the_cluster(cluster, subset, dataset, local, tmp_path,
                                                capsys, monkeypatch):
    """--ray on quality, duplicates and report, ray= in run_analyses: the same findings as
    one process."""
    from qa.analyses import run_analyses
    from qa.cli import main
    from qa.duplicates import compute_duplicates
    from qa.quality import compute_quality
    from qa.store import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    args = [str(subset / "annotations" / "alice.json"), "--image-root", str(subset / "images"),
            "--ray", cluster.address, "--json"]
    assert main(["quality", *args]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == json.loads(json.dumps(compute_quality(dataset, local["stats"]).to_dict(),
                                        default=str))
    assert main(["duplicates", *args, "--method", "embedding"]) == 0
    dup = json.loads(capsys.readouterr().out)
    ref = compute_duplicates(dataset, stats=local["stats"], embeddings=local["images"],
                             method="embedding")
    assert dup["metrics"] == json.loads(json.dumps(ref.to_dict(), default=str))["metrics"]
    out = tmp_path / "report"
    assert main(["report", *args, "--out", str(out), "--formats", "json", "--no-history",
                 "--embeddings", "cached"]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    assert report["score"] is not None and (out / "report.json").is_file()
    run = run_analyses(dataset, only=["quality", "duplicates"], ray=cluster.address,
                       embeddings="cached", model=MODEL)
    assert not run.errors and set(run.results) == {"quality", "duplicates"}
    assert run.results["quality"].metrics() == compute_quality(dataset,
                                                               local["stats"]).metrics()


def test_sharded_search_finds_the_single_machine_pairs(cluster):
    """Train on a sample, add shard by shard, search shards in parallel: >= 99 % of the
    exact single-machine pairs, nothing under the threshold."""
    from qa.distributed.search import find_near_duplicates_sharded
    from qa.duplicates import find_near_duplicates

    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, 48)).astype(np.float32)
    x = centres[rng.integers(0, 40, 6000)] + rng.normal(scale=0.6, size=(6000, 48))
    src = rng.choice(6000, 400, replace=False)
    x[src[:200]] = x[src[200:]] + rng.normal(scale=0.05, size=(200, 48))  # near copies
    x = x.astype(np.float32)
    ref = find_near_duplicates(x, threshold=0.95)  # exact: 6000 <= EXACT_SEARCH_MAX
    got = find_near_duplicates_sharded(x, threshold=0.95, ray=cluster.address, exact_max=1000,
                                       shard_size=1500)
    assert len(ref) >= 200
    truth = set(zip(ref["i"], ref["j"]))
    found = set(zip(got["i"], got["j"]))
    assert len(truth & found) / len(truth) >= 0.99
    assert (got["similarity"] >= 0.95 - 1e-6).all() and (got["i"] < got["j"]).all()
    assert list(got.columns) == ["i", "j", "similarity"]
    pq = find_near_duplicates_sharded(x, threshold=0.95, ray=cluster.address, exact_max=1000,
                                      shard_size=3000, codec="pq")  # the 100M plan's codec
    assert len(truth & set(zip(pq["i"], pq["j"]))) / len(truth) >= 0.99
    assert (pq["similarity"] >= 0.95 - 1e-6).all()
    import ray

    ray.shutdown()  # the next tests drive the cluster from subprocesses


def test_worker_node_killed_mid_run(cluster, subset, local, tmp_path):
    """A worker node dies while the CLI embeds on the cluster: the job still finishes, every
    image has its vector (equal to the single-process one), none is stored twice."""
    from qa.distributed.layout import ClusterLayout

    cache = tmp_path / "cache"
    proc = _cli(_embed_args(subset, cluster.address, "--batch-size", str(KILL_BATCH)), cache)
    layout = cache / "cluster"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while _parts(layout) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        n_before = _parts(layout)
        assert proc.poll() is None, f"the run ended before a node could be lost: " \
                                    f"{proc.communicate()[1][-2000:]}"
        cluster.kill_worker(0)
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert n_before < N_IMAGES / KILL_BATCH  # the node was lost in the middle
    res = _json(out, err)["images"]
    assert (res["n_embedded"], res["n_failed"]) == (N_IMAGES, 0)
    keys = local["stats"].table["sha256"].tolist()
    assert _stored(cache, keys).all()
    lay = ClusterLayout(str(layout))
    (info,) = [r for r in lay.info() if r["table"] == "vectors"]
    assert info["keys"] == N_IMAGES and info["entries"] == N_IMAGES, info  # none twice
    model_id = local["images"].model_id
    got_keys, vecs = lay.get_vectors(model_id, keys)
    order = [got_keys.index(k) for k in keys]
    np.testing.assert_allclose(vecs[order], local["images"].vectors, atol=1e-5)


def test_cluster_stopped_mid_run_resumes(cluster, subset, local, tmp_path):
    """The whole cluster stops while the CLI embeds: a re-run on a new cluster computes only
    the images that were not finished, and the result is complete and equal."""
    from qa.distributed.localcluster import LocalCluster

    cache = tmp_path / "cache"
    layout = cache / "cluster"
    proc = _cli(_embed_args(subset, cluster.address, "--batch-size", str(KILL_BATCH)), cache)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while _parts(layout) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, f"the run ended before the cluster could be stopped: " \
                                    f"{proc.communicate()[1][-2000:]}"
        cluster.stop()  # head, worker and their workers, at once
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a driver waits for its cluster: end it too
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    from qa.distributed.layout import ClusterLayout

    model_id = local["images"].model_id
    keys = local["stats"].table["sha256"].tolist()
    done = ClusterLayout(str(layout)).keys("vectors", model_id) | {
        k for k, f in zip(keys, _stored(cache, keys)) if f}
    assert 0 < len(done) < N_IMAGES
    with LocalCluster(workers=1, cpus=2, head_cpus=3) as again:
        proc = _cli(_embed_args(subset, again.address), cache)
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err[-3000:]
    res = _json(out, err)["images"]
    computed, imported = _cluster_counts(res["notes"])
    assert res["n_embedded"] == N_IMAGES
    assert computed == N_IMAGES - len(done)  # only what was missing
    assert res["n_cached"] + imported == len(done)
    assert _stored(cache, keys).all()
