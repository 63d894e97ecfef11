"""Edge cases: undefined metrics are None (never NaN/inf), bad input raises ReportError."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.report.errors import ReportError
from engine.report.jsonio import dumps
from engine.report.metrics import compute_metrics

HOUR = 3_600_000
T0 = 1_704_067_200_000


def times(n):
    return T0 + np.arange(n, dtype=np.int64) * HOUR


def test_flat_equity_and_no_trades():
    m = compute_metrics(times(50), np.full(50, 1000.0), np.zeros(50), [], [], "1h", 1000.0)
    assert m["total_return"] == 0.0 and m["cagr"] == 0.0 and m["max_drawdown"] == 0.0
    for key in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "expectancy", "avg_holding_hours",
                "max_drawdown_start", "max_drawdown_end"):
        assert m[key] is None, key
    assert m["n_trades"] == 0 and m["fees_paid"] == 0.0 and m["turnover"] == 0.0


def test_single_bar():
    m = compute_metrics(times(1), np.array([1010.0]), None, [], [], "1h", 1000.0)
    assert m["total_return"] == pytest.approx(0.01)
    assert m["sharpe"] is None and m["volatility"] is None


def test_only_winners_has_no_profit_factor():
    rts = [{"exit_time": "2024-01-01T02:00:00Z", "pnl": 5.0, "return": 0.05, "holding_hours": 2.0}]
    m = compute_metrics(times(3), np.array([100.0, 102, 105]), None, [], rts, "1h", 100.0)
    assert m["profit_factor"] is None and m["win_rate"] == 1.0


def test_equity_wiped_out_gives_finite_metrics():
    m = compute_metrics(times(4), np.array([50.0, 0.0, 0.0, 0.0]), None, [], [], "1h", 100.0)
    assert m["max_drawdown"] == -1.0 and m["cagr"] == -1.0
    json.loads(dumps(m))


def test_huge_cagr_over_a_short_run_is_none_not_inf():
    m = compute_metrics(times(2), np.array([100.0, 1e6]), None, [], [], "1m", 100.0)
    assert m["cagr"] is None or math.isfinite(m["cagr"])


@pytest.mark.parametrize("equity, message", [
    (np.array([100.0, np.nan]), r"equity\[1\] at 2024-01-01T01:00:00Z is nan"),
    (np.array([]), "empty"),
])
def test_bad_equity_is_named(equity, message):
    with pytest.raises(ReportError, match=message):
        compute_metrics(times(len(equity)), equity, None, [], [], "1h", 100.0)


def test_round_trip_without_pnl_is_named():
    with pytest.raises(ReportError, match=r"round_trips\[0\] has no 'pnl'"):
        compute_metrics(times(2), np.array([1.0, 2.0]), None, [], [{"exit_time": "x", "return": 0.1,
                                                                    "holding_hours": 1}], "1h", 1.0)


def test_unknown_timeframe_is_an_error():
    with pytest.raises(ValueError, match="timeframe"):
        compute_metrics(times(2), np.array([1.0, 2.0]), None, [], [], "7h", 1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e7, allow_nan=False), min_size=1, max_size=60))
def test_metrics_are_never_nan_or_inf(values):
    eq = np.array(values)
    m = compute_metrics(times(eq.size), eq, np.zeros(eq.size), [], [], "1h", 1000.0)
    text = dumps(m)  # allow_nan=False inside: raises on NaN/inf
    for v in json.loads(text).values():
        assert not (isinstance(v, float) and not math.isfinite(v))
