"""Hand-built candle scenarios for every fill, fee and slippage rule, with exact expected fills.

Each scenario: an order decided at bar 0 (after its close) is filled by the simulated broker
in bar 1. Candles are (open, high, low, close, volume).
"""
from __future__ import annotations

import math

import numpy as np

import pytest

from engine.sim.costs import FeeSchedule, FeeTier, SlippageModel
from tests.helpers.backtest import candle_market, flat_fees, make_broker, order, portfolio

NAN = math.nan
BAR0 = (100.0, 100.0, 100.0, 100.0, 1000.0)


def fill_one(bar1, d, pf=None, spread_bps=0.0, **broker_kw):
    market = candle_market([BAR0, bar1], spread_bps=spread_bps)
    pf = pf or portfolio()
    fills = make_broker(market, **broker_kw).execute(d, 1, pf)
    return fills, pf


# -- market orders ----------------------------------------------------------------------------


def test_market_buy_fills_at_next_open_with_taker_fee():
    fills, pf = fill_one((101.0, 103.0, 99.0, 102.0, 1000.0), order(buy=2.0), fees=flat_fees(40, 80))
    (f,) = fills
    assert (f.side, f.qty, f.price) == ("buy", 2.0, 101.0)
    assert f.fee == pytest.approx(202.0 * 0.008, abs=1e-12)
    assert pf.cash == pytest.approx(10_000 - 202.0 - 1.616, abs=1e-9)
    assert pf.qty[0] == 2.0 and pf.entry_price[0] == 101.0


def test_market_sell_fills_at_next_open():
    fills, pf = fill_one((99.0, 99.5, 97.0, 98.0, 1000.0), order(sell=3.0), pf=portfolio(qty=3.0, entry_price=90.0))
    (f,) = fills
    assert (f.side, f.qty, f.price, f.fee) == ("sell", 3.0, 99.0, 0.0)
    assert pf.qty[0] == 0.0 and pf.cash == 10_000 + 297.0


def test_slippage_half_spread_buy_pays_sell_receives_less():
    slip = SlippageModel("spread_impact", impact_coef=0.0)
    (b,), _ = fill_one((100.0, 101, 99, 100, 1000.0), order(buy=1.0), spread_bps=20.0, slippage=slip)
    (s,), _ = fill_one((100.0, 101, 99, 100, 1000.0), order(sell=1.0), pf=portfolio(qty=1.0, entry_price=100.0),
                       spread_bps=20.0, slippage=slip)
    assert b.price == pytest.approx(100.0 * (1 + 10 / 1e4), abs=1e-12)  # half of 20 bps
    assert s.price == pytest.approx(100.0 * (1 - 10 / 1e4), abs=1e-12)
    assert b.slippage == pytest.approx(0.1, abs=1e-12) and s.slippage == pytest.approx(0.1, abs=1e-12)


def test_slippage_size_impact_grows_with_share_of_bar_volume():
    slip = SlippageModel("spread_impact", impact_coef=0.5)
    # bar quote volume = 100 x 1000 = 100,000; an order of 50 units (5,000) is 5% of it
    (small,), _ = fill_one((100.0, 101, 99, 100, 1000.0), order(buy=10.0), slippage=slip)
    (big,), _ = fill_one((100.0, 101, 99, 100, 1000.0), order(buy=50.0), slippage=slip)
    assert small.price == pytest.approx(100.0 * (1 + 0.5 * 1.0 / 1e4), abs=1e-12)  # 1% -> 0.5 bps
    assert big.price == pytest.approx(100.0 * (1 + 0.5 * 5.0 / 1e4), abs=1e-12)  # 5% -> 2.5 bps


def test_slippage_noise_is_seeded_and_adverse():
    slip = SlippageModel("spread_impact", impact_coef=0.0, noise_bps=5.0)
    prices = [fill_one((100.0, 101, 99, 100, 1000.0), order(buy=1.0), slippage=slip, seed=s)[0][0].price
              for s in (1, 1, 2)]
    assert prices[0] == prices[1]  # same seed, same fill
    assert prices[0] != prices[2]
    assert all(p > 100.0 for p in prices)


def test_slippage_none_costs_nothing():
    (f,), _ = fill_one((100.0, 101, 99, 100, 1000.0), order(buy=50.0), spread_bps=30.0, slippage=SlippageModel("none"))
    assert f.price == 100.0 and f.slippage == 0.0


def test_participation_cap_gives_partial_fill():
    (f,), pf = fill_one((100.0, 101, 99, 100, 50.0), order(buy=10.0), max_participation=0.1)
    assert f.qty == pytest.approx(5.0)  # 10% of the bar's 50 units
    assert pf.qty[0] == pytest.approx(5.0)


@pytest.mark.parametrize("bar1", [(NAN, NAN, NAN, NAN, NAN), (100.0, 100.0, 100.0, 100.0, 0.0)],
                         ids=["missing_bar", "no_volume"])
def test_no_fill_when_product_not_trading(bar1):
    fills, pf = fill_one(bar1, order(buy=1.0))
    assert fills == [] and pf.cash == 10_000
    fills, pf = fill_one(bar1, order(sell=1.0), pf=portfolio(qty=1.0, entry_price=100.0))
    assert fills == [] and pf.qty[0] == 1.0


def test_buys_scaled_down_to_available_cash():
    (f,), pf = fill_one((100.0, 101, 99, 100, 1e6), order(buy=30.0), pf=portfolio(cash=1_000.0), fees=flat_fees(0, 100))
    # 1,000 buys 1000 / (100 x 1.01) = 9.90099... units, rounded down to the size increment
    assert f.qty == pytest.approx(math.floor(1000 / 101 / 1e-8) * 1e-8, abs=1e-12)
    assert pf.cash >= 0.0


# -- limit orders ---------------------------------------------------------------------------


def test_limit_buy_fills_at_limit_when_bar_trades_through_with_maker_fee():
    (f,), _ = fill_one((100.0, 100.5, 98.5, 99.5, 1000.0), order(buy=1.0, limit=99.0), fees=flat_fees(40, 80),
                       spread_bps=20.0, slippage=SlippageModel("spread_impact"))
    assert (f.qty, f.price) == (1.0, 99.0)  # at the limit: no slippage
    assert f.fee == pytest.approx(99.0 * 0.004, abs=1e-12)  # maker


def test_limit_buy_touching_the_limit_does_not_fill():
    fills, pf = fill_one((100.0, 100.5, 99.0, 99.5, 1000.0), order(buy=1.0, limit=99.0))
    assert fills == [] and pf.cash == 10_000


def test_limit_buy_marketable_at_open_fills_at_open_as_taker():
    (f,), _ = fill_one((98.0, 98.5, 97.0, 98.0, 1000.0), order(buy=1.0, limit=99.0), fees=flat_fees(40, 80))
    assert f.price == 98.0 and f.fee == pytest.approx(98.0 * 0.008, abs=1e-12)


def test_marketable_limit_never_pays_beyond_its_price():
    slip = SlippageModel("spread_impact", impact_coef=0.0)
    (f,), _ = fill_one((98.99, 99.5, 98.0, 99.0, 1000.0), order(buy=1.0, limit=99.0), spread_bps=40.0, slippage=slip)
    assert f.price == 99.0  # open + 20 bps would be 99.188: capped at the limit


def test_limit_sell_fills_at_limit_when_high_trades_through():
    pf = portfolio(qty=2.0, entry_price=90.0)
    (f,), pf = fill_one((100.0, 101.5, 99.0, 100.0, 1000.0), order(sell=2.0, limit=101.0), pf=pf)
    assert (f.side, f.qty, f.price) == ("sell", 2.0, 101.0)
    assert pf.qty[0] == 0.0


def test_limit_sell_touching_does_not_fill():
    pf = portfolio(qty=2.0, entry_price=90.0)
    fills, pf = fill_one((100.0, 101.0, 99.0, 100.0, 1000.0), order(sell=2.0, limit=101.0), pf=pf)
    assert fills == [] and pf.qty[0] == 2.0


# -- fees -------------------------------------------------------------------------------------

TIERS = [FeeTier(0, 60, 120), FeeTier(10_000, 40, 80), FeeTier(50_000, 25, 50)]


def test_fee_tier_follows_trailing_30_day_volume():
    day = 86_400_000
    fees = FeeSchedule(TIERS)
    assert fees.tier(0).taker_bps == 120
    fees.record(0, 12_000.0)
    assert fees.tier(day).taker_bps == 80
    fees.record(2 * day, 40_000.0)
    assert fees.tier(3 * day).taker_bps == 50
    # the first fill leaves the 30-day window: 40,000 remains
    assert fees.tier(30 * day).taker_bps == 80
    assert fees.tier(32 * day).taker_bps == 120


def test_fill_fee_uses_tier_reached_by_earlier_fills():
    market = candle_market([BAR0, (100.0, 101, 99, 100, 1e6), (100.0, 101, 99, 100, 1e6)])
    broker = make_broker(market, fees=FeeSchedule(TIERS))
    pf = portfolio(cash=1e6)
    (f1,) = broker.execute(order(buy=150.0), 1, pf)  # 15,000 notional at tier 0 (120 bps)
    (f2,) = broker.execute(order(t=1, buy=10.0), 2, pf)  # now at tier 1 (80 bps)
    assert f1.fee == pytest.approx(15_000 * 0.012)
    assert f2.fee == pytest.approx(1_000 * 0.008)


def test_fee_schedule_needs_a_tier():
    with pytest.raises(ValueError, match="at least one tier"):
        FeeSchedule([])


def test_participation_capped_buy_is_rounded_down_to_the_size_increment():
    market = candle_market([BAR0, (100.0, 101, 99, 100, 33.3)], size_increment=0.1)
    pf = portfolio()
    (f,) = make_broker(market, max_participation=0.1).execute(order(buy=10.0), 1, pf)
    assert f.qty == pytest.approx(3.3, abs=1e-12)  # 10% of 33.3 = 3.33, rounded down to 0.1
    assert pf.qty[0] == pytest.approx(3.3, abs=1e-12)


def test_resting_limit_fills_report_no_slippage():
    """A resting limit fills at its price with no slippage: its price improvement over the
    open is not a negative slippage cost (it would offset real slippage in slippage_cost)."""
    (b,), _ = fill_one((100.0, 100.5, 98.5, 99.5, 1000.0), order(buy=1.0, limit=99.0), spread_bps=20.0,
                       slippage=SlippageModel("spread_impact"))
    pf = portfolio(qty=2.0, entry_price=90.0)
    (s,), _ = fill_one((100.0, 101.5, 99.0, 100.0, 1000.0), order(sell=2.0, limit=101.0), pf=pf, spread_bps=20.0,
                       slippage=SlippageModel("spread_impact"))
    assert (b.price, s.price) == (99.0, 101.0)
    assert b.slippage == 0.0 and s.slippage == 0.0


def test_buy_pays_the_tier_reached_by_a_sell_in_the_same_bar():
    """Sells fill before buys: a sell that lifts the 30-day volume into the next tier lowers
    the fee of the buys that follow it in the same bar (the tier is recomputed per fill)."""
    market = candle_market([BAR0, (100.0, 101, 99, 100, 1e6)], symbol="AAA/USDC")
    two = candle_market([BAR0, (100.0, 101, 99, 100, 1e6)])
    for name in ("open", "high", "low", "close", "volume", "spread_bps"):
        setattr(market, name, np.hstack([getattr(market, name), getattr(two, name)]))
    market.symbols, market.info = ("AAA/USDC", "BBB/USDC"), market.info + two.info
    pf = portfolio(cash=1e6, qty=150.0, entry_price=100.0, n=2)
    d = order(n=2, sell=150.0)
    d.buy_qty[1] = 10.0
    sell, buy = make_broker(market, fees=FeeSchedule(TIERS)).execute(d, 1, pf)
    assert sell.fee == pytest.approx(15_000 * 0.012)  # tier 0
    assert buy.fee == pytest.approx(1_000 * 0.008)  # tier 1: 15,000 traded in the window
