"""The backtest loop: the cycle on a simulated clock, one bar at a time.

Per bar t: fill the orders decided at t-1 at this bar's open, mark the portfolio at the
close, then decide (the same ``decide`` every mode runs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.backtest.broker import Fill, SimBroker
from engine.backtest.costs import FeeSchedule, SlippageModel
from engine.backtest.trace import TraceRecorder
from engine.cycle.decide import HaltState, Quotes, cap_tables, decide
from engine.cycle.portfolio import Portfolio
from engine.cycle.prepare import Prepared

DAY_MS = 86_400_000


@dataclass(frozen=True)
class BacktestSettings:
    initial_cash: float = 10_000.0
    fee_tiers: tuple = ({"min_volume_usd": 0, "maker_bps": 60, "taker_bps": 120},)
    slippage: SlippageModel = SlippageModel()
    max_participation: float = 0.1
    seed: int = 42
    start: int = 0  # first bar index
    stop: int | None = None  # one past the last bar index


@dataclass
class BacktestResult:
    prepared: Prepared
    start: int
    stop: int
    equity: np.ndarray  # (T_run,)
    exposure: np.ndarray  # (T_run,) fraction of equity in positions
    fills: list[Fill]
    portfolio: Portfolio
    trace: TraceRecorder
    settings: BacktestSettings
    stats: dict = field(default_factory=dict)


def run_backtest(p: Prepared, s: BacktestSettings, progress=None) -> BacktestResult:
    m = p.market
    n = m.n_symbols
    start = s.start
    stop = m.n_bars if s.stop is None else min(s.stop, m.n_bars)
    if stop - start < 2:
        raise ValueError(f"the backtest window has {stop - start} bars; at least 2 are needed")
    pf = Portfolio.empty(n, s.initial_cash)
    broker = SimBroker(m, FeeSchedule.from_config({"tiers": list(s.fee_tiers)}), s.slippage,
                       p.size_increment, s.max_participation, np.random.default_rng(s.seed))
    caps = cap_tables(p)
    halts = HaltState()
    trace = TraceRecorder(p, start, stop)
    close = p.close
    spread = p.store.arrays["spread_bps"]
    vol_usd = p.store.arrays["volume_usd"]
    zeros = np.zeros(n)
    equity = np.empty(stop - start)
    exposure = np.empty(stop - start)
    pending = None
    for t in range(start, stop):
        if pending is not None:
            broker.execute(pending, t, pf)
            pending = None
        c = close[t]
        eq = pf.mark(c, int(m.times[t] // DAY_MS))
        k = t - start
        equity[k] = eq
        exposure[k] = (eq - pf.cash) / eq if eq > 0 else 0.0
        if t == stop - 1:
            break  # nothing after the last bar to fill at
        d = decide(p, t, pf, Quotes(c, spread[t], zeros, vol_usd[t]), halts, caps)
        trace.record(d)
        pf.exiting |= d.exit_intent
        if d.has_orders:
            pending = d
        if progress is not None and k % 512 == 0:
            progress(k, stop - start)
    return BacktestResult(p, start, stop, equity, exposure, broker.fills, pf, trace, s)
