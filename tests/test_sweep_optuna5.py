"""rulebook's Optuna sweeper (hydra/sweeper=rulebook_optuna) on a current Optuna: samplers, search
space, and a study in SQLite that resumes after a kill with no completed trial run again.

Needs optuna >= 3 (the optuna extra); skipped where only Hydra's optuna sweeper's optuna 2 is installed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", minversion="3.0", reason="rulebook's sweeper needs optuna >= 3 (pip install -e '.[optuna]')")

from engine.paths import PROJECT_ROOT  # noqa: E402
from engine.sweep.optuna_sweeper import OptunaSweeper, OptunaSweeperError, distributions  # noqa: E402
from tests.helpers.runs import run_cli  # noqa: E402
from tests.helpers.walkforward import SMALL_MARKET  # noqa: E402

SPACE = ["strategy.params.fast=range(6,48,step=6)", "strategy.params.slow=range(48,192,step=24)"]


def _args(sweep_dir: Path, storage: Path, n_trials: int, *extra: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "run.py"), "-m", "hydra/sweeper=rulebook_optuna", "+sweep.objective=sharpe",
            f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.n_startup_trials=2",
            f"hydra.sweeper.storage=sqlite:///{storage}", "hydra.sweeper.study_name=t", *SMALL_MARKET,
            "report.html=false", "report.csv=false", *SPACE, f"hydra.sweep.dir={sweep_dir}", *extra]


def _env() -> dict:
    return {**os.environ, "RULEBOOK_PROGRESS": "never"}


def _trials(storage: Path):
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{storage}")
    return study.get_trials(deepcopy=False)


def test_search_space_from_hydra_sweep_syntax():
    d, grid = distributions({"a": "range(6,48,step=6)", "b": "choice(x,y)", "c": "interval(0.1,0.5)", "n": "interval(1,9)"})
    assert (d["a"].low, d["a"].high, d["a"].step) == (6, 42, 6) and grid["a"] == [6, 12, 18, 24, 30, 36, 42]
    assert list(d["b"].choices) == ["x", "y"] and grid["b"] == ["x", "y"]
    assert (d["c"].low, d["c"].high) == (0.1, 0.5) and grid["c"] is None
    assert isinstance(d["n"], optuna.distributions.FloatDistribution)  # Hydra reads interval bounds as floats
    with pytest.raises(OptunaSweeperError, match="hydra.sweeper.params.k is '5', a single value"):
        distributions({"k": "5"})


@pytest.mark.parametrize("setting, expected", [
    ({"sampler": "foo"}, "hydra.sweeper.sampler is 'foo'; expected one of tpe, cmaes, grid, random"),
    ({"pruner": "mean"}, "hydra.sweeper.pruner is 'mean'; expected none, duplicate, median or halving"),
    ({"pruner": "median", "prune_checkpoints": 1}, "hydra.sweeper.prune_checkpoints is 1; expected a whole number >= 2"),
    ({"pruner": "median", "prune_checkpoints": 4, "prune_warmup": 4},
     "hydra.sweeper.prune_warmup is 4 with prune_checkpoints 4: no step could prune; expected prune_warmup < "
     "prune_checkpoints"),
    ({"n_trials": 0}, "hydra.sweeper.n_trials is 0; expected a whole number >= 1"),
    ({"n_trials": -3}, "hydra.sweeper.n_trials is -3; expected a whole number >= 1"),
    ({"n_jobs": 0}, "hydra.sweeper.n_jobs is 0; expected a whole number >= 1"),
    ({"n_startup_trials": -1}, "hydra.sweeper.n_startup_trials is -1; expected a whole number >= 0"),
    ({"seed": 1.5}, "hydra.sweeper.seed is 1.5; expected a whole number >= 0 or null"),
    ({"direction": "up"}, "hydra.sweeper.direction is 'up'; expected maximize or minimize"),
    ({"storage": "study.db"}, "hydra.sweeper.storage is 'study.db'; expected null (in memory) or a database URL "
                              "such as sqlite:///study.db"),
    ({"study_name": " "}, "hydra.sweeper.study_name is ' '; expected a non-empty name"),
    ({"sampler": "grid", "pruner": "duplicate"}, "hydra.sweeper.pruner is 'duplicate' with hydra.sweeper.sampler=grid, "
                                                 "which never proposes a point twice; expected pruner=none with the grid sampler"),
])
def test_a_bad_sweeper_setting_names_its_key(setting, expected):
    with pytest.raises(OptunaSweeperError) as e:
        OptunaSweeper(**setting)
    assert str(e.value) == expected


@pytest.mark.parametrize("args, expected", [
    (["hydra.sweeper.n_trials=0", "strategy.params.fast=range(6,12)"],
     "error: hydra.sweeper.n_trials is 0; expected a whole number >= 1"),
    (["hydra.sweeper.sampler=grid", "strategy.params.fast=interval(6,12)"],  # found when the sweep starts
     "error: hydra.sweeper.sampler is grid but strategy.params.fast is an interval; expected choice(...) or "
     "range(...) for every key"),
])
def test_a_bad_sweeper_setting_is_one_line_and_exit_2(tmp_path, args, expected):
    r = run_cli(["-m", "hydra/sweeper=rulebook_optuna", "+sweep.objective=sharpe", *args, f"hydra.sweep.dir={tmp_path}"],
                env={"RULEBOOK_PROGRESS": "never"})
    lines = [x for x in r.stderr.strip().splitlines() if x.startswith("error") or "Traceback" in x]
    assert r.returncode == 2 and lines == [expected], r.stderr[-2000:]
    assert not list(tmp_path.glob("*/results.json"))  # no trial ran


@pytest.mark.slow
def test_grid_sampler_runs_every_point_once(tmp_path):
    storage = tmp_path / "g.db"
    args = _args(tmp_path / "s", storage, 50, "hydra.sweeper.sampler=grid")
    args = [a for a in args if not a.startswith("strategy.params")] + ["strategy.params.fast=choice(6,12)",
                                                                        "strategy.params.slow=choice(48,96)"]
    r = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    done = [t for t in _trials(storage) if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted((t.params["strategy.params.fast"], t.params["strategy.params.slow"]) for t in done) == \
        [(6, 48), (6, 96), (12, 48), (12, 96)]
    assert (tmp_path / "s" / "optimization_results.yaml").is_file()


@pytest.mark.slow
def test_a_killed_study_resumes_without_running_a_completed_trial_again(tmp_path):
    storage, first, second = tmp_path / "study.db", tmp_path / "first", tmp_path / "second"
    n, die_at = 6, 2
    # the first process SIGKILLs itself as job 2 starts (tests/helpers/die.py): trials 0 and 1
    # ran and were told, trial 2 was asked and is left RUNNING, whatever the machine's load
    killed = subprocess.run(_args(first, storage, n, "+hydra.callbacks.die._target_=tests.helpers.die.DieAtJob",
                                  f"+hydra.callbacks.die.at={die_at}"),
                            capture_output=True, text=True, env=_env(), timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    S = optuna.trial.TrialState
    before = _trials(storage)
    # a trial whose metric is undefined (no trade) is told FAIL: it ran, and counts as done
    ran_before = {t.number: t.params for t in before if t.state in (S.COMPLETE, S.FAIL)}
    orphans = [t.number for t in before if t.state == S.RUNNING]  # killed mid-run
    assert sorted(ran_before) == [0, 1] and orphans == [2]
    r = subprocess.run(_args(second, storage, n), capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    after = _trials(storage)
    ran = [t for t in after if t.state in (S.COMPLETE, S.FAIL) and t.number not in orphans]
    assert len(ran) == n and not any(t.state == S.RUNNING for t in after)
    # the resumed process ran only the trials still to do (the killed one among them, once more)
    assert len(list(second.glob("*/results.json"))) + len(list(second.glob("*/error.json"))) == n - len(ran_before)
    # the killed trial's parameters ran again, first
    assert min((t for t in ran if t.number not in ran_before), key=lambda t: t.number).params == before[2].params
    # and the ones that had run kept their numbers, parameters and states
    assert {t.number: t.params for t in ran if t.number in ran_before} == ran_before
    assert "resumes with" in r.stdout + r.stderr
