"""Golden backtests on tiny fixed data: exact trades, no lookahead, next-bar-open fills."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers.factories import OHLCV, make_market, write_csv_dir
from tests.helpers.runs import run_backtest

# Closes of two symbols over 80 hourly bars: AAA falls, rallies, falls; BBB drifts up then down.
AAA = np.concatenate([np.linspace(100, 90, 30), np.linspace(90, 120, 25), np.linspace(120, 95, 25)])
BBB = np.concatenate([np.full(40, 50.0), np.linspace(50, 60, 20), np.linspace(60, 52, 20)])

BASE = [
    "data=csv", "strategy.params.fast=3", "strategy.params.slow=8", "strategy.params.stop_loss=0.5",
    "universe.params.min_volume_usd=0", "universe.params.min_history_bars=1",
    "backtest.slippage.model=none", "risk.params.max_drawdown_halt=0.9", "risk.params.daily_loss_limit=0.5",
    "risk.params.hourly_loss_limit=0.2",
]


def _series(closes):
    s = OHLCV.from_closes(closes, volume=1e6)
    s["open"] = s["open"] * 1.002  # opens differ from the previous close: fills must use the open
    s["high"] = np.maximum(s["high"], s["open"])
    s["low"] = np.minimum(s["low"], s["open"])
    return s


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    market = make_market({"AAA/USDC": _series(AAA), "BBB/USDC": _series(BBB)})
    write_csv_dir(d / "data", market)
    res = run_backtest([*BASE, f"data.path={d / 'data'}"], d / "out")
    return market, res


def _crossings(closes, fast, slow):
    s = pd.Series(closes)
    f, sl = s.rolling(fast).mean(), s.rolling(slow).mean()
    up = (f > sl) & (f.shift(1) <= sl.shift(1))
    down = (f < sl) & (f.shift(1) >= sl.shift(1))
    return list(np.flatnonzero(up.to_numpy())), list(np.flatnonzero(down.to_numpy()))


def test_golden_trades_exact(golden):
    market, res = golden
    got = [(t["symbol"], t["side"], t["time"], round(t["qty"], 8), round(t["price"], 6), round(t["fee"], 6))
           for t in res["trades"]]
    # signal at bar t on data up to t; fill at bar t+1's open (= close[t] x 1.002 here);
    # qty = 10% of equity / close[t], rounded down; fee = 1.2% taker of the notional
    assert got == [
        ("AAA/USDC", "buy", "2024-01-02T09:00:00Z", 10.81081081, 92.685, 12.024),
        ("BBB/USDC", "buy", "2024-01-02T18:00:00Z", 20.00462029, 50.627368, 12.153375),
        ("AAA/USDC", "sell", "2024-01-03T11:00:00Z", 10.81081081, 117.10875, 15.192486),
        ("BBB/USDC", "sell", "2024-01-03T16:00:00Z", 20.00462029, 58.854316, 14.128299),
    ]
    assert [t["rule"] for t in res["trades"]] == ["golden_cross", "golden_cross", "death_cross", "death_cross"]
    assert res["metrics"]["final_equity"] == pytest.approx(10375.119338031274, rel=1e-12)


def test_sma_cross_fills_at_next_open_after_each_crossing(golden):
    """A signal at bar t (on data up to t) fills at bar t+1's open: no lookahead."""
    market, res = golden
    for j, sym in enumerate(market.symbols):
        up, down = _crossings(market.close[:, j], 3, 8)
        buys = [t for t in res["trades"] if t["symbol"] == sym and t["side"] == "buy"]
        sells = [t for t in res["trades"] if t["symbol"] == sym and t["side"] == "sell"]
        # the veto needs 24 bars of history: crossings before then are vetoed
        eligible_up = [t for t in up if t >= 24]
        assert len(buys) >= 1
        t_buy = eligible_up[0]
        assert buys[0]["time"] == _iso(market.times[t_buy + 1])
        assert buys[0]["price"] == pytest.approx(market.open[t_buy + 1, j])
        t_sell = [t for t in down if t > t_buy][0]
        assert sells[0]["time"] == _iso(market.times[t_sell + 1])
        assert sells[0]["price"] == pytest.approx(market.open[t_sell + 1, j])


def test_fee_is_taker_rate_of_notional(golden):
    _, res = golden
    assert res["trades"]
    for t in res["trades"]:
        assert t["fee"] == pytest.approx(t["qty"] * t["price"] * 0.012)


def test_equity_marked_every_bar(golden):
    market, res = golden
    assert len(res["equity"]) == market.n_bars
    assert res["equity"][0][1] == 10_000.0
    assert res["metrics"]["final_equity"] == pytest.approx(res["equity"][-1][1])


def _iso(ms):
    return np.datetime_as_string(np.datetime64(int(ms), "ms"), unit="s") + "Z"
