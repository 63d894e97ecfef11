"""``walkforward.search: optuna``: one fold's search as a seeded Optuna ask-and-tell study.

The space is ``walkforward.grid`` (each list a categorical choice; the distributions come from
the sweeper's builder, engine/sweep/optuna_sweeper.py). The TPE sampler is seeded from the
run's ``seed`` and the fold's index, so the same command asks the same points in the same order.
Its first asks are random (``startup_trials``: half the budget, at most Optuna's default of 10,
so a small budget still has asks guided by the scores before them).
A point asked twice (TPE repeats points of small spaces) is evaluated once and told the same
score; a point whose objective is undefined is told FAIL.
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from typing import Any, Callable, Mapping

import numpy as np

from engine.sweep.optuna_sweeper import distributions


def fold_seed(seed: int, fold_index: int) -> int:
    """The fold's sampler seed: a 32-bit word from numpy's SeedSequence of (seed, fold), the same
    on every platform (never Python's salted ``hash``)."""
    return int(np.random.SeedSequence([int(seed), int(fold_index)]).generate_state(1)[0])


def point_key(point: Mapping[str, Any]) -> str:
    """A point's identity (two asks of the same values are one point)."""
    return json.dumps(list(point.items()), sort_keys=False)


@contextmanager
def _quiet_optuna():
    # Optuna logs a line per trial at INFO; the walk-forward logs its own summary
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def startup_trials(n_trials: int) -> int:
    return max(1, min(10, n_trials // 2))


def optuna_fold(axes: Mapping[str, list], n_trials: int, seed: int,
                evaluate: Callable[[dict[str, Any]], float | None]) -> list[tuple[dict[str, Any], float | None]]:
    """Ask ``n_trials`` points, maximising ``evaluate(point)`` (a score, already signed for the
    direction; None: undefined). Returns (point, score) per ask, in ask order; ``evaluate`` is
    called once per distinct point."""
    import optuna
    from optuna.trial import TrialState

    dists, _ = distributions(dict(axes), name="walkforward.grid")
    keys = list(axes)
    seen: dict[str, float | None] = {}
    out: list[tuple[dict[str, Any], float | None]] = []
    with _quiet_optuna():
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup_trials(n_trials)))
        for _ in range(n_trials):
            trial = study.ask(dists)
            point = {k: trial.params[k] for k in keys}
            key = point_key(point)
            if key not in seen:
                seen[key] = evaluate(point)
            s = seen[key]
            if s is None:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, s)
            out.append((point, s))
    return out
