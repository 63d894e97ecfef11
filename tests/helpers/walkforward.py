"""Small walk-forward configs and runs: a 30-symbol, 2000-bar sample market, a 2x2 grid (or a
3x3 space searched by Optuna, 5 trials on each of 3 folds)."""
from __future__ import annotations

from pathlib import Path

from tests.helpers.runs import compose_config

SMALL_MARKET = ["data.sample.n_symbols=30", "data.sample.n_bars=2000"]
SMALL_WF = ["mode=walkforward", "walkforward.train=20d", "walkforward.test=10d", "walkforward.purge=1d",
            "walkforward.pbo_blocks=8", "walkforward.grid.strategy.params.fast=[6,12]",
            "walkforward.grid.strategy.params.slow=[48,96]"]

# search: optuna on a 1000-bar market: 3 folds (train 240, purge 24, test 240 bars), 5 asks
# per fold of a 3x3 space (2 random, then TPE, which repeats points of a space this small)
OPTUNA_WF = ["data.sample.n_symbols=30", "data.sample.n_bars=1000", "mode=walkforward", "walkforward.search=optuna",
             "walkforward.n_trials=5", "walkforward.train=10d", "walkforward.test=10d", "walkforward.purge=1d",
             "walkforward.pbo_blocks=6", "walkforward.grid.strategy.params.fast=[6,12,24]",
             "walkforward.grid.strategy.params.slow=[48,96,144]"]


def wf_overrides(*extra: str) -> list[str]:
    return [*SMALL_MARKET, *SMALL_WF, *extra]


def wf_config(*extra: str) -> dict:
    return compose_config(wf_overrides(*extra))


def run_walkforward_mode(out_dir: Path, *extra: str, base: list[str] | None = None) -> dict:
    """mode=walkforward in-process, as run.py would run it (the checked config); ``base``
    replaces the small grid walk-forward's overrides (e.g. OPTUNA_WF)."""
    import logging

    from engine.config.entry import prepare_run
    from engine.config import redact
    from engine.modes import runner

    ov = wf_overrides(*extra) if base is None else [*base, *extra]
    report = prepare_run(compose_config(ov), logging.getLogger("test"))
    return runner("walkforward")(report.config, out_dir, ov, redact(report.config))
