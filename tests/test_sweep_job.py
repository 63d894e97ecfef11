"""engine/sweep: a failing multirun job is recorded, not raised; the sweep plan; progress counts."""
from __future__ import annotations

import json
import sys

import pytest

from engine.errors import UserError
from engine.sweep.callbacks import finished_jobs, sweep_status
from engine.sweep.job import (BASIC_LAUNCHER, ERROR_FILE, SweepConfigError, job_context, objective_value,
                              run_progress, sweep_job)
from engine.sweep.plan import sweep_plan
from tests.helpers.sweep import hydra_job

RESULTS = {"metrics": {"sharpe": 1.25, "total_return": 0.1}, "trades": [], "equity": []}


def app_like(exc: BaseException | None = None, result=RESULTS):
    """A task function shaped like engine/app.py's main: user errors end in sys.exit(2)."""
    def main(cfg):
        try:
            if exc is not None:
                raise exc
            return result
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    return main


def test_single_run_is_untouched(tmp_path):
    with hydra_job(tmp_path, multirun=False):
        with pytest.raises(SystemExit) as info:
            sweep_job(app_like(UserError("bad")))({})
    assert info.value.code == 2
    assert not (tmp_path / ERROR_FILE).exists()


def test_outside_hydra_is_untouched():
    assert job_context() is None
    assert sweep_job(app_like())({}) is RESULTS


def test_user_error_in_multirun_is_recorded_and_returns(tmp_path):
    ov = ["backtest.start=not-a-date"]
    with hydra_job(tmp_path, overrides=ov):
        out = sweep_job(app_like(UserError("backtest.start is 'not-a-date'; expected an ISO date")))({})
    assert out is None
    doc = json.loads((tmp_path / ERROR_FILE).read_text())
    assert doc == {"error": "backtest.start is 'not-a-date'; expected an ISO date", "overrides": ov, "type": "UserError"}


def test_bug_in_multirun_keeps_its_traceback(tmp_path):
    with hydra_job(tmp_path):
        assert sweep_job(app_like(ZeroDivisionError("division by zero")))({}) is None
    doc = json.loads((tmp_path / ERROR_FILE).read_text())
    assert doc["error"] == "ZeroDivisionError: division by zero"
    assert doc["type"] == "ZeroDivisionError"
    assert "Traceback" in doc["traceback"]


def test_keyboard_interrupt_still_stops_the_sweep(tmp_path):
    with hydra_job(tmp_path), pytest.raises(KeyboardInterrupt):
        sweep_job(app_like(KeyboardInterrupt()))({})


def test_multirun_returns_metrics_or_objective(tmp_path):
    with hydra_job(tmp_path):
        assert sweep_job(app_like())({}) == RESULTS["metrics"]
        assert sweep_job(app_like())({"sweep": {"objective": "sharpe"}}) == 1.25


def test_unknown_objective_is_a_recorded_error(tmp_path):
    with hydra_job(tmp_path):
        assert sweep_job(app_like())({"sweep": {"objective": "sharp"}}) is None
    doc = json.loads((tmp_path / ERROR_FILE).read_text())
    assert "sweep.objective is 'sharp'; expected one of the metrics" in doc["error"]
    assert "sharpe" in doc["error"]


def test_objective_value():
    assert objective_value(RESULTS, None) == RESULTS["metrics"]
    assert objective_value(RESULTS, "total_return") == 0.1
    assert objective_value({"metrics": {"sharpe": None}}, "sharpe") is None  # undefined -> failed trial
    assert objective_value({"metrics": {"sharpe": float("nan")}}, "sharpe") is None
    with pytest.raises(SweepConfigError, match="returned no metrics"):
        objective_value(None, "sharpe")


def test_progress_is_off_for_parallel_jobs_only(tmp_path):
    with hydra_job(tmp_path, launcher="hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"):
        assert job_context().parallel
        assert run_progress("x").enabled is False
    with hydra_job(tmp_path, launcher=BASIC_LAUNCHER):
        assert not job_context().parallel


def test_grid_plan_counts_every_combination():
    plan = sweep_plan(["strategy.params.fast=5,10,20", "risk=conservative,balanced", "universe.params.top=10,20",
                       "data.sample.n_bars=1500"])
    assert plan.n_jobs == 12
    assert plan.fixed == ("data.sample.n_bars=1500",)
    assert plan.combos(["data"]) == [["data.sample.n_bars=1500"]]


def test_plan_lists_data_settings_to_warm():
    plan = sweep_plan(["data.sample.seed=1,2", "strategy.params.fast=range(6,18,6)"])
    assert plan.n_jobs == 4
    assert plan.combos(["data"]) == [["data.sample.seed=1"], ["data.sample.seed=2"]]


def test_interval_sweeps_are_not_enumerable():
    plan = sweep_plan(["strategy.params.fast=interval(5,50)", "data=sample"])
    assert plan.n_jobs is None
    assert plan.combos(["data"]) == [["data=sample"]]


def test_finished_jobs_counts_results_and_errors(tmp_path):
    for name, f in [("0", "results.json"), ("1", ERROR_FILE), ("2", "results.json"), ("3", None)]:
        (tmp_path / name).mkdir()
        if f:
            (tmp_path / name / f).write_text("{}")
    (tmp_path / "0" / ".hydra").mkdir()
    (tmp_path / "0" / ".hydra" / "results.json").write_text("{}")  # never counted
    assert finished_jobs(tmp_path) == (3, 1)
    assert finished_jobs(tmp_path / "absent") == (0, 0)


def test_sweep_status_line():
    assert sweep_status(3, 1, 8, 12.0) == "sweep: 3/8 jobs done (1 failed)  elapsed 12s  ETA 20s"
    assert sweep_status(2, 0, None, 5.0) == "sweep: 2 jobs done  elapsed 5s"


def test_failed_job_log_line_names_the_first_problem(tmp_path, caplog):
    """A message whose first line is only a header ("invalid config:"): the line names the problem."""
    message = "invalid config:\nerror: [bad_date] backtest.start: not a date (found: 'x')\nconfig is NOT valid"
    with hydra_job(tmp_path), caplog.at_level("ERROR", logger="engine.sweep.job"):
        assert sweep_job(app_like(UserError(message)))({}) is None
    line = [r.getMessage() for r in caplog.records if "job failed" in r.getMessage()][0]
    assert "invalid config: error: [bad_date] backtest.start: not a date (found: 'x')" in line
