"""The registry of modes: one source for their names, what runs each, and (for the live-clock
modes) the session plan each chooses once: its broker and the facts that differ by mode.

Runners are named ``module:function`` and imported only when their mode runs (a backtest
never loads the exchange client). Each takes (cfg, out_dir, overrides, redacted).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

RUNNERS: dict[str, str] = {
    "backtest": "engine.modes.backtest:run",
    "dry_run": "engine.modes.live:run",
    "paper": "engine.modes.live:run",
    "live": "engine.modes.live:run",
    "validate": "engine.modes:_validate",
    "explain": "engine.modes:_explain",
    "shadow": "engine.modes.shadow:run",
}
MODES = tuple(RUNNERS)
LIVE_MODES = ("dry_run", "paper", "live")  # the live-clock loop's modes (engine/live)


def runner(mode: str) -> Callable[..., Any]:
    module, _, fn = RUNNERS[mode].partition(":")
    return getattr(importlib.import_module(module), fn)


def live_plan(mode: str):
    """The session plan of a live-clock mode: which broker acts on its decisions (the clock and
    feed follow from the exchange config: engine/modes/live.py)."""
    from engine.live.brokers import NoneBroker, SimulatedBroker
    from engine.live.exchange_broker import ExchangeBroker
    from engine.live.plan import SessionPlan

    plans = {
        "dry_run": SessionPlan("dry_run", lambda adapter: NoneBroker(), decides_every_bar=True),
        "paper": SessionPlan("paper", lambda adapter: SimulatedBroker(), proves_burn_in=True),
        "live": SessionPlan("live", ExchangeBroker, burn_in=True, gated=True),
    }
    assert set(plans) == set(LIVE_MODES)
    return plans[mode]


def _validate(cfg, out_dir, overrides, redacted):
    from engine.config.entry import validate_entry
    return validate_entry(cfg, overrides=overrides)


def _explain(cfg, out_dir, overrides, redacted):
    from engine import explain
    return explain.main(cfg)
