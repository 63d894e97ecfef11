"""The shared factories behave as their names say."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.exchange import MockExchangeBuilder
from tests.helpers.factories import OHLCV, Quote, create_stale_quote, create_tight_market, create_wide_market


def test_quote_create_spread_and_age():
    q = Quote.create(mid=200.0, spread_bps=10.0, age_seconds=5)
    assert q.mid == pytest.approx(200.0)
    assert q.spread_bps == pytest.approx(10.0)
    assert q.ask - q.bid == pytest.approx(0.2)
    assert create_tight_market().spread_bps < 2 < create_wide_market().spread_bps
    assert create_stale_quote().age_seconds >= 3600


def test_ohlcv_series_trend_and_consistency():
    s = OHLCV.create_series(count=50, start_price=100.0, trend_pct=1.0)
    assert s["close"][-1] == pytest.approx(100 * 1.01 ** 50)
    assert np.all(s["high"] >= np.maximum(s["open"], s["close"]))
    assert np.all(s["low"] <= np.minimum(s["open"], s["close"]))


def test_mock_exchange_builder_serves_real_ccxt_client():
    with MockExchangeBuilder().with_balance("USDC", 12_345.0).with_standard_products(4).build() as ex:
        markets = ex.adapter.markets()
        assert len(markets) == 4
        assert ex.adapter.balances()["USDC"].total == pytest.approx(12_345.0)
        quotes = ex.adapter.best_bid_ask(list(markets)[:2])
        assert len(quotes) == 2 and all(q.ask > q.bid > 0 for q in quotes.values())
