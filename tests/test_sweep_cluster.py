"""Sweeps on a real cluster: a two-node Ray cluster started by `ray start` (head and worker as
separate processes) and SLURM's launcher through submitit's local executor.

Each needs its optional extra (`.[ray]`, `.[slurm]`; .ci/run installs both) and skips with that
reason where it is absent.
"""
from __future__ import annotations

import pytest

from tests.helpers.sweep import SMALL_MARKET, job_outcomes, plugin_available, read_json, run_sweep

pytestmark = pytest.mark.slow

GRID = ["strategy.params.fast=12,24", *SMALL_MARKET]


@pytest.mark.skipif(not (plugin_available("ray") and plugin_available("hydra_plugins.hydra_ray_launcher")),
                    reason='Ray and hydra-ray-launcher are not installed (pip install -e ".[ray]")')
def test_a_sweep_runs_on_the_worker_of_a_two_node_ray_cluster(tmp_path):
    from tests.helpers.ray_cluster import WORKER_RESOURCE, alive_nodes, two_node_cluster

    with two_node_cluster() as address:
        nodes = alive_nodes(address)
        assert sorted(WORKER_RESOURCE in n for n in nodes) == [False, True]  # a head, and a worker
        # every job demands the worker's resource: it can run on the worker node only
        proc = run_sweep(["hydra/launcher=cluster", f"hydra.launcher.ray.init.address={address}",
                          f"++hydra.launcher.ray.remote.resources={{{WORKER_RESOURCE}:1}}", *GRID],
                         tmp_path / "sweep", tmp_path / "cache", timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Ray Launcher is launching 2 jobs" in proc.stderr + proc.stdout
    assert job_outcomes(tmp_path / "sweep") == {"0": "ok", "1": "ok"}
    fast = [read_json(tmp_path / "sweep" / j / "results.json")["run"]["overrides"] for j in ("0", "1")]
    assert ["strategy.params.fast=12" in f for f in fast] == [True, False]


@pytest.mark.skipif(not plugin_available("hydra_plugins.hydra_submitit_launcher"),
                    reason='hydra-submitit-launcher is not installed (pip install -e ".[slurm]")')
def test_a_sweep_runs_through_submitits_local_executor(tmp_path):
    # conf/hydra/launcher/slurm_local.yaml: the SLURM launcher's local twin (same submitit jobs,
    # run as processes on this machine); each job's submitit log lands under the sweep dir
    proc = run_sweep(["hydra/launcher=slurm_local", *GRID], tmp_path / "sweep", tmp_path / "cache", timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert job_outcomes(tmp_path / "sweep") == {"0": "ok", "1": "ok"}
    logs = list((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2, logs
