"""Each metric against an independent computation (pandas / plain Python) on fixed data."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.report.metrics import buy_and_hold, compute_metrics
from tests.helpers.results import make_results

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
EQUITY = np.array([100.0, 104.0, 101.0, 95.0, 97.0, 108.0, 103.0, 99.0, 110.0, 112.0])
EXPOSURE = np.array([0.0, 0.5, 0.5, 1.0, 1.0, 0.8, 0.2, 0.0, 0.6, 0.6])
TIMES = T0 + np.arange(EQUITY.size, dtype=np.int64) * HOUR
FILLS = [
    {"symbol": "BTC/USDC", "side": "buy", "time": "2024-01-01T01:00:00Z", "qty": 1.0, "price": 50.0, "fee": 0.3,
     "slippage": 0.05, "notional": 50.0, "rule": "s:a"},
    {"symbol": "BTC/USDC", "side": "sell", "time": "2024-01-01T04:00:00Z", "qty": 1.0, "price": 48.0, "fee": 0.29,
     "slippage": 0.04, "notional": 48.0, "rule": "s:b"},
    {"symbol": "ETH/USDC", "side": "buy", "time": "2024-01-01T05:00:00Z", "qty": 2.0, "price": 40.0, "fee": 0.48,
     "slippage": 0.1, "notional": 80.0, "rule": "s:a"},
]
ROUND_TRIPS = [
    {"symbol": "BTC/USDC", "theme": "l1", "entry_time": "2024-01-01T01:00:00Z", "exit_time": "2024-01-01T04:00:00Z",
     "entry_price": 50.0, "exit_price": 48.0, "qty": 1.0, "pnl": -2.59, "return": -0.0518, "fees": 0.59,
     "entry_rule": "s:a", "exit_rule": "s:b", "holding_hours": 3.0},
    {"symbol": "ETH/USDC", "theme": "l1", "entry_time": "2024-01-01T05:00:00Z", "exit_time": "2024-01-01T08:00:00Z",
     "entry_price": 40.0, "exit_price": 45.0, "qty": 2.0, "pnl": 9.0, "return": 0.1125, "fees": 0.9,
     "entry_rule": "s:a", "exit_rule": "s:c", "holding_hours": 3.0},
    {"symbol": "SOL/USDC", "theme": "l1", "entry_time": "2024-01-01T02:00:00Z", "exit_time": "2024-01-01T07:00:00Z",
     "entry_price": 10.0, "exit_price": 10.5, "qty": 3.0, "pnl": 1.2, "return": 0.04, "fees": 0.3,
     "entry_rule": "s:a", "exit_rule": "s:b", "holding_hours": 5.0},
    {"symbol": "DOGE/USDC", "theme": "meme", "entry_time": "2024-01-01T08:00:00Z", "exit_time": None,
     "entry_price": 0.1, "exit_price": None, "qty": 100.0, "pnl": -0.5, "return": -0.05, "fees": 0.06,
     "entry_rule": "s:a", "exit_rule": None, "holding_hours": 1.0},
]
INITIAL = 100.0
BPY = 365 * 24


@pytest.fixture(scope="module")
def m() -> dict:
    return compute_metrics(TIMES, EQUITY, EXPOSURE, FILLS, ROUND_TRIPS, "1h", INITIAL)


@pytest.fixture(scope="module")
def ref() -> dict:
    """The same numbers computed another way: pandas Series arithmetic."""
    s = pd.Series(np.concatenate([[INITIAL], EQUITY]))
    r = s.pct_change().dropna()
    years = len(EQUITY) / BPY
    peak = s.cummax()
    dd = s / peak - 1
    closed = pd.DataFrame([rt for rt in ROUND_TRIPS if rt["exit_time"] is not None])
    fills = pd.DataFrame(FILLS)
    return {"r": r, "years": years, "dd": dd, "closed": closed, "fills": fills, "s": s}


def test_final_equity_and_total_return(m):
    assert m["final_equity"] == 112.0
    assert m["total_return"] == pytest.approx(0.12)


def test_cagr(m, ref):
    assert m["cagr"] == pytest.approx(1.12 ** (1 / ref["years"]) - 1, rel=1e-12)


def test_sharpe_is_mean_over_sample_std_times_sqrt_bars_per_year(m, ref):
    r = ref["r"]
    assert m["sharpe"] == pytest.approx(r.mean() / r.std() * math.sqrt(BPY), rel=1e-12)
    assert m["volatility"] == pytest.approx(r.std() * math.sqrt(BPY), rel=1e-12)


def test_sortino_uses_downside_deviation_over_all_bars(m, ref):
    r = ref["r"]
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r))
    assert m["sortino"] == pytest.approx(r.mean() / downside * math.sqrt(BPY), rel=1e-12)


def test_max_drawdown_and_its_dates(m, ref):
    # peak 108 at bar 5 (05:00), trough 95? no: 95 comes after peak 104; 99 after 108 is -8.33%
    assert m["max_drawdown"] == pytest.approx(ref["dd"].min())
    assert m["max_drawdown"] == pytest.approx(95 / 104 - 1)
    assert m["max_drawdown_start"] == "2024-01-01T01:00:00Z"  # equity 104
    assert m["max_drawdown_end"] == "2024-01-01T03:00:00Z"  # equity 95
    assert m["max_drawdown_recovery"] == "2024-01-01T05:00:00Z"  # equity 108 >= 104


def test_calmar(m):
    assert m["calmar"] == pytest.approx(m["cagr"] / abs(95 / 104 - 1))


def test_trade_statistics_use_closed_round_trips_only(m, ref):
    c = ref["closed"]
    assert m["n_trades"] == 3 and m["n_open"] == 1
    assert m["win_rate"] == pytest.approx((c.pnl > 0).mean())
    assert m["profit_factor"] == pytest.approx(c.pnl[c.pnl > 0].sum() / -c.pnl[c.pnl < 0].sum())
    assert m["expectancy"] == pytest.approx(c.pnl.mean())
    assert m["avg_return"] == pytest.approx(c["return"].mean())
    assert m["best_trade"] == pytest.approx(0.1125) and m["worst_trade"] == pytest.approx(-0.0518)
    assert m["avg_holding_hours"] == pytest.approx(c.holding_hours.mean())


def test_costs_exposure_and_turnover(m, ref):
    f = ref["fills"]
    assert m["n_fills"] == 3
    assert m["fees_paid"] == pytest.approx(f.fee.sum())
    assert m["slippage_cost"] == pytest.approx(f.slippage.sum())
    assert m["exposure"] == pytest.approx(EXPOSURE.mean())
    total = f.notional.abs().sum() / EQUITY.mean()
    assert m["turnover_total"] == pytest.approx(total)
    assert m["turnover"] == pytest.approx(total / ref["years"])


def test_turnover_falls_back_to_qty_times_price_without_notional():
    fills = [{k: v for k, v in f.items() if k != "notional"} for f in FILLS]
    m = compute_metrics(TIMES, EQUITY, EXPOSURE, fills, [], "1h", INITIAL)
    assert m["turnover_total"] == pytest.approx((50 + 48 + 80) / EQUITY.mean())


def test_annualisation_follows_the_timeframe():
    daily = compute_metrics(T0 + np.arange(10) * 24 * HOUR, EQUITY, None, [], [], "1d", INITIAL)
    r = pd.Series(np.concatenate([[INITIAL], EQUITY])).pct_change().dropna()
    assert daily["sharpe"] == pytest.approx(r.mean() / r.std() * math.sqrt(365))
    assert daily["cagr"] == pytest.approx(1.12 ** (365 / 10) - 1)


def test_buy_and_hold_equal_weight_of_symbols_listed_at_start():
    close = np.array([[10.0, np.nan, 4.0],
                      [11.0, 100.0, 4.0],
                      [np.nan, 120.0, 5.0],   # first symbol halted: valued at its last close 11
                      [12.0, 130.0, 2.0]])
    eq = buy_and_hold(TIMES[:4], close, 90.0)
    # 45 in symbol 0 (4.5 units), 45 in symbol 2 (11.25 units); symbol 1 listed later: not bought
    expected = pd.DataFrame(close[:, [0, 2]]).ffill().to_numpy() @ np.array([4.5, 11.25])
    np.testing.assert_allclose(eq, expected)
    assert eq[0] == pytest.approx(90.0)


def test_buy_and_hold_holds_cash_until_the_first_price():
    close = np.array([[np.nan], [np.nan], [2.0], [3.0]])
    np.testing.assert_allclose(buy_and_hold(TIMES[:4], close, 50.0), [50.0, 50.0, 50.0, 75.0])


def test_factory_results_are_self_consistent():
    r = make_results(n_bars=300, n_trades=12, seed=5)
    m = r["metrics"]
    closed = [rt for rt in r["round_trips"] if rt["exit_time"]]
    assert m["n_trades"] == len(closed) == 12
    assert m["fees_paid"] == pytest.approx(sum(f["fee"] for f in r["trades"]))
    assert m["final_equity"] == pytest.approx(r["equity"][-1][1])
    # realised pnl of closed trades + open trade's mark = final equity - initial
    open_pnl = sum(rt["pnl"] for rt in r["round_trips"] if not rt["exit_time"])
    assert m["final_equity"] - 10_000 == pytest.approx(sum(rt["pnl"] for rt in closed) + open_pnl)


def test_every_metric_is_documented():
    from pathlib import Path

    from engine.report.metrics import METRIC_DEFINITIONS
    doc = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    for key, (_label, _kind, _better, definition) in METRIC_DEFINITIONS.items():
        assert f"`{key}`" in doc and definition in doc, key
