"""What a simulated run leaves for the report: equity, exposure, fills, the portfolio, the trace.

A backtest fills it bar by bar; a dry_run, paper or live session rebuilds it from its state
file (engine/live/report.py). Both hand it to ``build_results``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.cycle.portfolio import Portfolio
from engine.cycle.prepare import Prepared
from engine.sim.fills import Fill
from engine.sim.settings import SimSettings


@dataclass
class RunResult:
    prepared: Prepared
    start: int
    stop: int
    equity: np.ndarray  # (T_run,)
    exposure: np.ndarray  # (T_run,) fraction of equity in positions
    fills: list[Fill]
    portfolio: Portfolio
    trace: Any  # engine.trace.TraceRecorder (its rule_stats() feed the report)
    settings: SimSettings
    stats: dict = field(default_factory=dict)
    # the window's facts for the results (engine/sim/summary.py): gathered chunk by chunk by a
    # chunked backtest; None until the results read them from ``prepared``, the whole run
    summary: Any = None
