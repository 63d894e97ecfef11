"""Round trips built from the broker's fills (results.json -> round_trips, trade statistics)."""
from __future__ import annotations

from engine.sim.results import round_trips
from tests.helpers.backtest import candle_market, fills_result, make_broker, order, portfolio

BAR = (0.01, 0.01, 0.01, 0.01, 1e12)


def test_position_sold_in_partial_fills_closes_its_round_trip():
    """Large quantities bought and sold in pieces: the broker leaves the position flat, so the
    round trip is closed (the sum of the sells differs from the sum of the buys by rounding)."""
    market = candle_market([BAR] * 8)
    broker = make_broker(market)
    pf = portfolio(cash=1e9)
    broker.execute(order(buy=426009.84366644), 1, pf)
    broker.execute(order(t=1, buy=590306.99560676), 2, pf)
    broker.execute(order(t=2, sell=237896.98613262), 3, pf)
    broker.execute(order(t=3, sell=79978.46018596), 4, pf)
    broker.execute(order(t=4, sell=float(pf.qty[0])), 5, pf)
    assert pf.qty[0] == 0.0
    broker.execute(order(t=5, buy=1000.0), 6, pf)  # a new entry: a new round trip
    trips = round_trips(fills_result(market, broker.fills))
    assert [(t["exit_time"] is not None) for t in trips] == [True, False]
    assert trips[1]["qty"] == 1000.0


def test_benchmark_exposure_starts_at_its_first_invested_bar():
    """docs/metrics.md: the buy-and-hold benchmark holds cash before the first bar with data,
    so its exposure is 1 only from its first invested bar."""
    from engine.backtest.engine import BacktestSettings, run_backtest
    from engine.sim.results import build_results
    from engine.cycle.prepare import prepare
    from engine.modes.setup import load_rules
    from tests.helpers.runs import compose_config

    nan = float("nan")
    market = candle_market([(nan,) * 5] * 4 + [(100.0, 101.0, 99.0, 100.0, 1000.0)] * 36)
    res = run_backtest(prepare(market, load_rules(compose_config([]))), BacktestSettings())
    assert build_results(res, {})["benchmark"]["exposure"] == 36 / 40
