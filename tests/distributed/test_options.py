"""How a cluster run sizes its stages from the cluster's resources (no Ray needed)."""

from __future__ import annotations

import pytest

from qa.distributed.cluster import ClusterError, ClusterRun
from qa.distributed.layout import ClusterLayout


def _run(tmp_path, **resources) -> ClusterRun:
    res = {"CPU": 0.0, "GPU": 0.0, "nodes": 2, "hosts": 2, **resources}
    return ClusterRun("auto", ClusterLayout(str(tmp_path)), resources=res)


def test_gpus_get_one_model_each(tmp_path):
    opts = _run(tmp_path, CPU=32, GPU=4)._actor_options("auto")
    assert opts == {"num_gpus": 1, "num_cpus": 1, "size": 4}


def test_cpu_cluster_gives_half_its_cpus_to_models(tmp_path):
    assert _run(tmp_path, CPU=16)._actor_options("auto") == {"num_cpus": 1, "size": 8}
    assert _run(tmp_path, CPU=1)._actor_options("cpu") == {"num_cpus": 1, "size": 1}
    # GPUs present but the CPU asked for: models on CPUs
    assert _run(tmp_path, CPU=8, GPU=2)._actor_options("cpu") == {"num_cpus": 1, "size": 4}


def test_cuda_without_gpus_is_refused(tmp_path):
    with pytest.raises(ClusterError, match="no GPUs"):
        _run(tmp_path, CPU=8)._actor_options("cuda")


def test_blocks_spread_over_the_cpus(tmp_path):
    run = _run(tmp_path, CPU=4)
    assert run._blocks(24) == 6  # at least 2 per CPU, at least 4 rows each
    assert run._blocks(10_000) == 157  # ~64 rows per block
    assert run._blocks(1) == 1


def test_a_multi_machine_cluster_with_a_local_layout_is_told(tmp_path, monkeypatch):
    import qa.distributed.cluster as cl

    monkeypatch.setattr(cl, "connect", lambda address: {"CPU": 8.0, "GPU": 0.0, "nodes": 3,
                                                        "hosts": 3})
    run = ClusterRun("auto", ClusterLayout(str(tmp_path)))
    run._connect()
    assert any("spans 3 machines" in n for n in run.notes())
    remote = ClusterRun("auto", ClusterLayout("memory://qa-options"))
    remote._connect()
    assert remote.notes() == []  # a location every node reaches: nothing to say
