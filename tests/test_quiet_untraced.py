"""The quiet-bar scan of an untraced run (a grid point: trace=False) skips more bars than a
traced one, the bars where a full position count lets no entry become an order, and bars
where a halt holds skip entry signals in both, and its decisions keep no caps bookkeeping; the
results stay those of the per-bar loop."""
from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.engine import run_backtest
from tests.helpers.backtest import assert_same_trace_events, prepared_run


def _same_results(a, b) -> None:
    assert a.equity.tobytes() == b.equity.tobytes()
    assert a.exposure.tobytes() == b.exposure.tobytes()
    assert [vars(f) for f in a.fills] == [vars(f) for f in b.fills]
    assert a.portfolio.qty.tobytes() == b.portfolio.qty.tobytes() and a.portfolio.cash == b.portfolio.cash


@pytest.mark.parametrize("overrides", [
    (),
    ("risk.params.max_positions=3",),
    ("risk.params.max_positions=2", "risk.params.hourly_loss_limit=0.004", "risk.params.cooldown_bars=7"),
    ("strategy=mean_reversion", "risk.params.max_positions=4"),
    ("book=trend_reversion", "risk.params.max_positions=3"),
])
def test_untraced_fast_path_matches_the_per_bar_loop(overrides):
    p, s = prepared_run(overrides, n_symbols=30, n_bars=24 * 90)
    slow = run_backtest(p, s, fast=False)
    traced = run_backtest(p, s, fast=True)
    untraced = run_backtest(p, s, fast=True, trace=False)
    assert len(slow.fills) > 10
    _same_results(traced, slow)
    _same_results(untraced, slow)
    assert untraced.stats["decided"] <= traced.stats["decided"]


def test_a_full_position_count_makes_entry_signals_quiet_only_untraced():
    p, s = prepared_run(("risk.params.max_positions=2",), n_symbols=30, n_bars=24 * 90)
    traced = run_backtest(p, s, fast=True)
    untraced = run_backtest(p, s, fast=True, trace=False)
    # the traced run decides those bars (their candidates and cap blocks are in its trace)
    assert traced.trace.bars_of("cap_block:max_positions")
    assert untraced.stats["decided"] < traced.stats["decided"]
    _same_results(untraced, traced)


def test_entry_signals_under_a_halt_are_quiet_and_the_trace_is_unchanged():
    p, s = prepared_run(("risk.params.hourly_loss_limit=0.003", "risk.params.cooldown_bars=12"),
                        n_symbols=30, n_bars=24 * 90)
    slow, fast = run_backtest(p, s, fast=False), run_backtest(p, s, fast=True)
    assert slow.trace.halts.get("hourly_loss")
    _same_results(fast, slow)
    assert_same_trace_events(fast, slow)


def test_an_unrecorded_plan_decides_the_same_orders_without_the_caps_bookkeeping():
    import dataclasses

    from engine.cycle.decide import Quotes, decide
    from engine.cycle.plan import HaltState, cycle_plan
    from engine.cycle.portfolio import Portfolio

    p, s = prepared_run((), n_symbols=30, n_bars=24 * 90)
    plan = cycle_plan(p)
    bare = dataclasses.replace(plan, records=False)
    spread, vol = p.store.arrays["spread_bps"], p.store.arrays["volume_usd"]
    zeros = np.zeros(p.market.n_symbols)
    sized = 0
    for t in range(200, p.market.n_bars - 1, 7):
        pf = Portfolio.empty(p.market.n_symbols, s.initial_cash)
        pf.mark(p.close[t], int(p.market.times[t] // 86_400_000))
        q = Quotes(p.close[t], spread[t], zeros, vol[t])
        full, _ = decide(plan, t, pf, q, HaltState())
        quick, _ = decide(bare, t, pf, q, HaltState())
        assert full.buy_qty.tobytes() == quick.buy_qty.tobytes() and full.entry_rule == quick.entry_rule
        assert not quick.cap_passed and not quick.clipped and not quick.cap_blocked
        sized += bool(full.cap_passed)
    assert sized > 0
