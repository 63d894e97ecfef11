"""Sweeps end to end: `run.py -m` in a subprocess on a small sample market.

Grid sweeps (basic and parallel launcher), a failing job that does not stop the others, one
shared market build, Optuna's search and a local Ray cluster (the last two only where their
optional extras are installed).
"""
from __future__ import annotations

import itertools

import pytest
import yaml

from tests.helpers.sweep import SMALL_MARKET, job_outcomes, plugin_available, read_json, run_sweep

pytestmark = pytest.mark.slow

# 4 jobs: 2 of them fail (a bad date is the user's mistake), 2 run
FAILING_GRID = ["backtest.start=2024-01-10,not-a-date", "strategy.params.fast=12,24", *SMALL_MARKET]
LOCAL = ["hydra/launcher=local", "hydra.launcher.n_jobs=2"]


def check_ok(proc):
    assert proc.returncode == 0, f"sweep failed ({proc.returncode}):\n{proc.stderr[-4000:]}"


def check_jobs_failed(proc, n_failed):
    """Every job ran, but the command says some failed: exit 1 and one line naming the report."""
    assert proc.returncode == 1, f"expected exit 1 ({n_failed} jobs failed), got {proc.returncode}:\n{proc.stderr[-4000:]}"
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if f"{n_failed} failed" in ln]
    assert len(lines) == 1, lines


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("market_cache")


@pytest.fixture(scope="module")
def failing_sweeps(tmp_path_factory, cache_dir):
    """The same 4-job grid under the basic launcher and the parallel one."""
    out = {}
    for name, extra in [("basic", []), ("local", LOCAL)]:
        sweep_dir = tmp_path_factory.mktemp(f"sweep_{name}")
        out[name] = (sweep_dir, run_sweep([*FAILING_GRID, *extra], sweep_dir, cache_dir))
    return out


def test_grid_sweep_runs_every_combination(tmp_path, cache_dir):
    grid = {"strategy.params.fast": ["5", "10", "20"], "risk": ["conservative", "balanced"],
            "universe.params.top": ["10", "20"]}
    proc = run_sweep([f"{k}={','.join(v)}" for k, v in grid.items()] + SMALL_MARKET, tmp_path, cache_dir)
    check_ok(proc)
    outcomes = job_outcomes(tmp_path)
    assert list(outcomes.values()) == ["ok"] * 12
    seen = set()
    for job in outcomes:
        results = read_json(tmp_path / job / "results.json")
        overrides = dict(o.split("=", 1) for o in results["run"]["overrides"])
        seen.add(tuple(overrides[k] for k in grid))
        # rule params really reached the rules: the resolved config carries the swept value
        assert str(results["run"]["config"]["strategy"]["params"]["fast"]) == overrides["strategy.params.fast"]
    assert seen == set(itertools.product(*grid.values()))


@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_a_failing_job_is_recorded_and_the_others_go_on(failing_sweeps, launcher):
    sweep_dir, proc = failing_sweeps[launcher]
    check_jobs_failed(proc, 2)
    assert f"report: {sweep_dir / 'sweep.html'}" in proc.stdout + proc.stderr
    assert job_outcomes(sweep_dir) == {"0": "ok", "1": "ok", "2": "failed", "3": "failed"}
    err = read_json(sweep_dir / "2" / "error.json")
    assert "[format] backtest.start: 'backtest.start' must be an ISO date" in err["error"]
    assert "found: 'not-a-date'" in err["error"]
    assert "backtest.start=not-a-date" in err["overrides"]
    assert "2 failed" in proc.stderr + proc.stdout


@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_failed_jobs_are_in_the_sweep_report(failing_sweeps, launcher):
    sweep_dir, _ = failing_sweeps[launcher]
    summary = read_json(sweep_dir / "sweep.json")
    assert summary["n_runs"] == 4 and summary["n_failed"] == 2
    failed = {r["id"]: r for r in summary["runs"] if r["status"] == "failed"}
    assert set(failed) == {"2", "3"}
    assert "must be an ISO date" in failed["2"]["error"]


def test_parallel_jobs_match_sequential_ones(failing_sweeps):
    (basic, _), (local, _) = failing_sweeps["basic"], failing_sweeps["local"]
    for job in ("0", "1"):
        a, b = read_json(basic / job / "results.json"), read_json(local / job / "results.json")
        assert a["metrics"] == b["metrics"]
        assert a["trades"] == b["trades"]


def test_the_sample_market_is_built_once_before_the_jobs(failing_sweeps, cache_dir):
    sweep_dir, _ = failing_sweeps["local"]
    caches = sorted(cache_dir.rglob("*.npz"))
    assert len(caches) == 1, caches
    # built by the SweepSetup callback before the sweeper wrote multirun.yaml and launched,
    # and never rewritten by a job afterwards
    assert caches[0].stat().st_mtime <= (sweep_dir / "multirun.yaml").stat().st_mtime


def _optuna_3_or_later() -> bool:
    try:
        import optuna
    except ImportError:
        return False
    return int(optuna.__version__.split(".")[0]) >= 3


@pytest.mark.skipif(not _optuna_3_or_later(),
                    reason='rulebook\'s Optuna sweeper needs optuna >= 3 (pip install -e ".[optuna]")')
def test_optuna_search_is_seeded_and_reports_the_best_trial(tmp_path, cache_dir):
    args = ["+sweep=optuna_sharpe", "hydra.sweeper.n_trials=4", *SMALL_MARKET]
    runs = []
    for name in ("a", "b"):
        proc = run_sweep(args, tmp_path / name, cache_dir)
        check_ok(proc)
        runs.append(tmp_path / name)
    trials = []
    for sweep_dir in runs:
        assert list(job_outcomes(sweep_dir).values()) == ["ok"] * 4
        trials.append([read_json(sweep_dir / j / "results.json")["run"]["overrides"] for j in "0123"])
    assert trials[0] == trials[1]  # same seed, same proposals
    best = yaml.safe_load((runs[0] / "optimization_results.yaml").read_text())
    sharpes = [read_json(runs[0] / j / "results.json")["metrics"]["sharpe"] for j in "0123"]
    assert best["best_value"] == pytest.approx(max(s for s in sharpes if s is not None))
    assert read_json(runs[0] / "sweep.json")["n_runs"] == 4


@pytest.mark.skipif(not (plugin_available("ray") and plugin_available("hydra_plugins.hydra_ray_launcher")),
                    reason='Ray and hydra-ray-launcher are not installed (pip install -e ".[ray]"; '
                           ".ci/run installs them unless RULEBOOK_CI_RAY=0)")
def test_ray_cluster_runs_the_sweep(tmp_path, cache_dir):
    # address=local: Ray starts a private cluster on this machine for the sweep and stops it after
    # (never joins a cluster someone else left running here)
    args = ["hydra/launcher=cluster", "hydra.launcher.ray.init.address=local", "++hydra.launcher.ray.init.num_cpus=2",
            "++hydra.launcher.ray.init.include_dashboard=false", *FAILING_GRID]
    proc = run_sweep(args, tmp_path, cache_dir, timeout=420)
    check_jobs_failed(proc, 2)
    assert "Ray Launcher is launching 4 jobs" in proc.stderr + proc.stdout
    assert job_outcomes(tmp_path) == {"0": "ok", "1": "ok", "2": "failed", "3": "failed"}


def test_a_secret_typed_in_a_sweep_is_in_no_file_of_the_sweep(tmp_path, cache_dir):
    # The checks refuse the job, but Hydra saves the sweep's config (multirun.yaml) before any
    # job runs, and the failed job records its overrides in error.json.
    typed, pasted = "typed-by-mistake-4242", "organizations/x/apiKeys/pasted-7171"
    proc = run_sweep([f"+exchange.api_secret={typed}", f"exchange.api_key_env={pasted}", "seed=1,2", *SMALL_MARKET],
                     tmp_path, cache_dir)
    check_jobs_failed(proc, 2)
    assert job_outcomes(tmp_path) == {"0": "failed", "1": "failed"}
    leaks = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
             if p.is_file() and (typed in (t := p.read_text(errors="replace")) or pasted in t)}
    assert leaks == set()
    # nor on the console: Hydra's launcher logs each job's overrides before any job runs
    assert typed not in proc.stdout + proc.stderr and pasted not in proc.stdout + proc.stderr
    assert "+exchange.api_secret=***" in proc.stdout
    assert "+exchange.api_secret=***" in read_json(tmp_path / "0" / "error.json")["overrides"]
