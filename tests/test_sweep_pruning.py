"""Optuna's median and successive-halving pruners on backtests (engine/sweep/pruning.py): a trial
whose objective so far trails the others' is stopped part-way, recorded PRUNED in the study and
as pruned (not failed) in the sweep report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", minversion="3.0", reason="rulebook's sweeper needs optuna >= 3")

from engine.paths import PROJECT_ROOT  # noqa: E402
from engine.sweep.pruning import PRUNABLE, PruningSettingError, check_objective, checkpoint_bars  # noqa: E402
from tests.helpers.walkforward import SMALL_MARKET  # noqa: E402

SPACE = ["strategy.params.fast=range(6,48,step=6)", "strategy.params.slow=range(48,192,step=24)"]


def _sweep(sweep_dir: Path, *extra: str, objective: str = "sharpe") -> subprocess.CompletedProcess:
    args = [sys.executable, str(PROJECT_ROOT / "run.py"), "-m", "hydra/sweeper=rulebook_optuna",
            f"+sweep.objective={objective}", "hydra.sweeper.n_trials=10", "hydra.sweeper.n_startup_trials=3",
            "hydra.sweeper.prune_warmup=1", *SMALL_MARKET, "report.html=false", "report.csv=false", *SPACE,
            f"hydra.sweep.dir={sweep_dir}", *extra]
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RULEBOOK_PROGRESS": "never"})


def _trials(sweep_dir: Path):
    study = optuna.load_study(study_name="rulebook", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    return study.get_trials(deepcopy=False)


def test_checkpoints_are_evenly_spaced_and_leave_the_end_to_the_final_value():
    assert checkpoint_bars(2000, 10).tolist() == [200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800]
    assert checkpoint_bars(7, 4).tolist() == [3, 5]  # bar 1 measures one return: no Sharpe yet
    assert checkpoint_bars(3, 10).tolist() == [2]


def test_an_objective_read_from_trades_cannot_be_measured_part_way():
    check_objective("sharpe")
    with pytest.raises(PruningSettingError) as e:
        check_objective("win_rate")
    assert str(e.value).startswith("sweep.objective is 'win_rate' with a median/halving pruner")
    assert ", ".join(PRUNABLE) in str(e.value)


@pytest.mark.slow
def test_median_pruner_stops_trailing_trials_part_way_and_the_report_says_pruned(tmp_path):
    r = _sweep(tmp_path / "a", "hydra.sweeper.pruner=median")
    assert r.returncode == 0, r.stderr[-3000:]
    trials = _trials(tmp_path / "a")
    states = {t.number: t.state.name for t in trials}
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert len(trials) == 10 and pruned and any(s == "COMPLETE" for s in states.values()), states
    for t in trials:  # each job's trial: its own dir, pruned.json exactly for the pruned ones
        job = tmp_path / "a" / str(t.number)
        assert (job / "pruned.json").is_file() == (t.state.name == "PRUNED")
        assert (job / "results.json").is_file() == (t.state.name == "COMPLETE")
    for t in pruned:  # stopped part-way: fewer steps than a completed trial reports (9)
        assert max(t.intermediate_values) < 9
        doc = json.loads((tmp_path / "a" / str(t.number) / "pruned.json").read_text())
        assert doc["type"] == "pruned" and doc["error"].startswith("pruned by the median pruner at step ")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert max(len(t.intermediate_values) for t in complete) == 9  # steps 1..9, the end is the value
    sweep = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert sweep["n_pruned"] == len(pruned) and sweep["n_failed"] == 0
    assert sorted(int(r["id"]) for r in sweep["runs"] if r["status"] == "pruned") == [t.number for t in pruned]
    out = r.stdout + r.stderr
    assert "sweep: 10 jobs finished" in out and "failed" not in out.split("sweep:")[-1]
    # the same command decides the same: same trials, same prunes, same values
    again = _sweep(tmp_path / "b", "hydra.sweeper.pruner=median")
    assert again.returncode == 0, again.stderr[-3000:]
    assert [(t.params, t.state.name, t.value, t.intermediate_values) for t in _trials(tmp_path / "b")] == \
        [(t.params, t.state.name, t.value, t.intermediate_values) for t in trials]


@pytest.mark.slow
def test_halving_pruner_and_an_objective_it_cannot_measure(tmp_path):
    r = _sweep(tmp_path / "h", "hydra.sweeper.pruner=halving", "hydra.sweeper.n_trials=6")
    assert r.returncode == 0, r.stderr[-3000:]
    states = [t.state.name for t in _trials(tmp_path / "h")]
    assert len(states) == 6 and set(states) <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states
    bad = _sweep(tmp_path / "x", "hydra.sweeper.pruner=median", objective="n_trades")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")] == [
        "error: sweep.objective is 'n_trades' with a median/halving pruner, which measures the objective part-way "
        "through each run; expected a metric of the equity curve: " + ", ".join(PRUNABLE)]
    assert not any((tmp_path / "x").glob("*/results.json"))  # refused before any trial ran


def test_a_run_outside_a_pruning_sweep_has_no_checkpoint():
    from engine.sweep.pruning import trial_checkpoint
    times = np.arange(10, dtype=np.int64)
    assert trial_checkpoint(None, "sharpe", times, "1h", 1000.0) is None
    assert trial_checkpoint({"pruner": "duplicate", "trial": 3}, "sharpe", times, "1h", 1000.0) is None
    assert trial_checkpoint({"pruner": "median"}, "sharpe", times, "1h", 1000.0) is None  # no trial number
