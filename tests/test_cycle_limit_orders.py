"""Limit orders through the whole cycle: prices from the decision's close, never worse than the limit."""
from __future__ import annotations

import numpy as np

from engine.backtest.engine import run_backtest
from engine.cycle.decide import limit_prices
from tests.helpers.backtest import prepared_run


def test_limit_orders_fill_at_or_better_than_limit():
    p, s = prepared_run(("strategy=sma_cross",))
    p.rules.execution.order_type = "limit"
    p.rules.execution.offset_bps = 10.0
    res = run_backtest(p, s)
    assert res.fills
    close = p.close
    for f in res.fills:
        ref = close[f.t - 1, f.symbol_idx]  # decided on the previous bar's close
        if f.side == "buy":
            assert f.price <= ref * (1 - 10 / 1e4) + 1e-12
        else:
            assert f.price >= ref * (1 + 10 / 1e4) - 1e-12
    rates = {round(f.fee / (f.qty * f.price) * 1e4, 6) for f in res.fills}
    assert rates <= {60.0, 120.0, 40.0, 80.0, 25.0, 50.0, 15.0, 40.0}  # maker or taker of a tier
    assert 60.0 in rates  # some rested and paid the maker fee


def test_market_orders_have_no_limit_price():
    p, s = prepared_run(("strategy=sma_cross",))
    res = run_backtest(p, s)
    assert res.fills and all(np.isfinite(f.price) for f in res.fills)
    n = p.market.n_symbols
    assert limit_prices(p, p.close[0], np.ones(n), np.ones(n)) is None
    # nothing rests: every fill pays the taker rate of some tier, never a maker rate
    takers = {float(t["taker_bps"]) for t in s.fee_tiers}
    assert {round(f.fee / (f.qty * f.price) * 1e4, 6) for f in res.fills} <= takers
