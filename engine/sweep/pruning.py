"""Optuna's pruners on a backtest: a trial whose objective, so far, trails the other trials' at the
same point of the run is stopped there instead of run to the end.

The sweeper (engine/sweep/optuna_sweeper.py) keeps the study in a database (its ``storage``, or
``optuna.db`` in the sweep dir) and tells each job its trial number (``hydra.sweeper.trial``).
The job's backtest calls a :class:`PruneCheckpoint` at ``prune_checkpoints - 1`` evenly spaced
bars of its window: the objective metric of the equity so far (as ``compute_metrics`` defines it
for a whole run) is written to the study as that step's intermediate value and the study's pruner
(``median``: below the median of earlier trials at that step; ``halving``: outside the top third
at its rung) decides. A pruned trial raises :class:`TrialPruned`; the job writes ``pruned.json``
(the sweep report lists it as pruned, not failed) and the sweeper tells Optuna PRUNED.

Only metrics of the equity curve can be measured part-way (``PRUNABLE``); an objective read from
trades (``n_trades``, ``win_rate``, ...) is refused when the sweep starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from engine.errors import UserError

PRUNERS = ("median", "halving")
# metrics compute_metrics derives from the equity (and exposure) curve alone: defined part-way
PRUNABLE = ("final_equity", "total_return", "cagr", "volatility", "sharpe", "sortino", "calmar",
            "max_drawdown", "exposure")
PRUNED_KEY = "pruned"  # the job's return value to the sweeper: {"pruned": {...}}
_RULE = {"median": "worse than the median of the earlier trials at that step",
         "halving": "outside the best third of the trials at that rung"}


class PruningSettingError(UserError, ValueError):
    """A pruning setting is wrong (one line, exit 2, like every sweeper setting)."""


class TrialPruned(Exception):
    """The trial's pruner stopped it at ``step`` (bar ``bar`` of ``bars``), objective ``value``."""

    def __init__(self, step: int, bar: int, bars: int, objective: str, value: float, pruner: str):
        super().__init__(f"pruned by the {pruner} pruner at step {step} (bar {bar} of {bars}): {objective} so "
                         f"far {value:.6g}, {_RULE[pruner]}")
        self.step, self.bar, self.bars, self.objective, self.value, self.pruner = step, bar, bars, objective, value, pruner

    def as_return(self) -> dict[str, Any]:
        return {PRUNED_KEY: {"step": self.step, "bar": self.bar, "bars": self.bars, "value": self.value}}


def is_pruned(value: Any) -> bool:
    return isinstance(value, Mapping) and PRUNED_KEY in value


def make_pruner(name: str, n_startup_trials: int, warmup: int):
    """Optuna's pruner for ``hydra.sweeper.pruner``: the same object in the sweeper and in each job."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=warmup)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup), reduction_factor=3)
    raise PruningSettingError(f"hydra.sweeper.pruner is {name!r}; expected one of {', '.join(PRUNERS)}")


def check_objective(objective: str | None) -> None:
    if objective not in PRUNABLE:
        raise PruningSettingError(
            f"sweep.objective is {objective!r} with a median/halving pruner, which measures the objective part-way "
            f"through each run; expected a metric of the equity curve: {', '.join(PRUNABLE)}")


def checkpoint_bars(bars: int, checkpoints: int) -> np.ndarray:
    """The window-relative bars (equity rows measured: those before it) of steps 1 .. checkpoints - 1;
    the last step is the run's end, its final value."""
    k = np.arange(1, checkpoints, dtype=np.int64) * bars // checkpoints
    return np.unique(k[k >= 2])  # a Sharpe needs two returns


@dataclass
class PruneCheckpoint:
    """Called by the backtest loop with the equity rows filled so far (see the module doc)."""

    study: Any  # optuna.Study, loaded from the sweeper's storage with its pruner
    storage: Any
    trial_id: int
    pruner_name: str
    objective: str
    at: np.ndarray  # window-relative bars of the steps
    times: np.ndarray  # (window bars,) bar times
    timeframe: str
    initial_cash: float
    bars: int
    _next: int = field(default=0, init=False)

    @property
    def next_bar(self) -> int:
        return int(self.at[self._next]) if self._next < self.at.size else self.bars + 1

    def __call__(self, k: int, equity: np.ndarray, exposure: np.ndarray) -> None:
        """``k``: equity rows ``[:k]`` are final. Each step reached (a jump over quiet bars may pass
        several) is measured at its own bar, so every trial's step j covers the same bars; then the
        pruner decides once."""
        from engine.report.metrics import compute_metrics

        reported = None
        while self._next < self.at.size and self.at[self._next] <= k:
            bar = int(self.at[self._next])
            self._next += 1
            m = compute_metrics(self.times[:bar], equity[:bar], exposure[:bar], [], [], self.timeframe,
                                self.initial_cash)
            value = m.get(self.objective)
            if value is not None:  # undefined so far (a flat curve has no Sharpe): nothing to compare
                self.storage.set_trial_intermediate_value(self.trial_id, self._next, float(value))
                reported = (self._next, bar, float(value))
        if reported is not None and self.study.pruner.prune(self.study, self.storage.get_trial(self.trial_id)):
            raise TrialPruned(reported[0], reported[1], self.bars, self.objective, reported[2], self.pruner_name)


def trial_checkpoint(sweeper: Mapping[str, Any] | None, objective: str | None, times: np.ndarray,
                     timeframe: str, initial_cash: float) -> PruneCheckpoint | None:
    """The checkpoint of this job's trial when it runs under a pruning Optuna sweep, else None.
    ``sweeper``: the job's ``hydra.sweeper`` config; ``times``: the backtest window's bar times."""
    if not sweeper or sweeper.get("pruner") not in PRUNERS or sweeper.get("trial") is None:
        return None
    import optuna

    storage = optuna.storages.get_storage(str(sweeper["storage"]))
    name = str(sweeper["study_name"])
    study = optuna.load_study(study_name=name, storage=storage, pruner=make_pruner(
        str(sweeper["pruner"]), int(sweeper.get("n_startup_trials", 0)), int(sweeper.get("prune_warmup", 0))))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name),
                                                               int(sweeper["trial"]))
    bars = int(times.size)
    return PruneCheckpoint(study, storage, trial_id, str(sweeper["pruner"]), str(objective),
                           checkpoint_bars(bars, int(sweeper.get("prune_checkpoints", 10))), times, timeframe,
                           float(initial_cash), bars)
