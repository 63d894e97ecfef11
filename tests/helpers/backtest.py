"""Factories for backtest tests: prepared sample runs, hand-built candle scenarios, decisions."""
from __future__ import annotations

import functools
import json
from types import SimpleNamespace

import numpy as np

from engine.sim.fills import SimBroker
from engine.sim.costs import FeeSchedule, FeeTier, SlippageModel
from engine.backtest.engine import BacktestResult, BacktestSettings, run_backtest
from engine.sim.results import build_results
from engine.cycle.decide import Decision
from engine.cycle.portfolio import Portfolio
from engine.cycle.prepare import Prepared, prepare
from engine.market.data import MarketData, SymbolInfo
from engine.market.sample import SampleSpec, generate_sample_market
from engine.modes.setup import backtest_settings, load_rules
from tests.helpers.factories import T0_MS
from tests.helpers.runs import compose_config

HOUR_MS = 3_600_000


@functools.lru_cache(maxsize=None)
def sample_market(n_symbols: int = 30, n_bars: int = 24 * 120, seed: int = 7) -> MarketData:
    return generate_sample_market(SampleSpec(seed=seed, n_symbols=n_symbols, n_bars=n_bars))


def prepared_run(overrides: tuple[str, ...] = (), n_symbols: int = 30, n_bars: int = 24 * 120
                 ) -> tuple[Prepared, BacktestSettings]:
    """Rules and settings composed from the real config, prepared over a sample market."""
    cfg = compose_config(list(overrides))
    market = sample_market(n_symbols, n_bars)
    return prepare(market, load_rules(cfg)), backtest_settings(cfg, market)


def results_json(res: BacktestResult) -> str:
    """The run's results as results.json would hold them (run identity left out)."""
    return json.dumps(build_results(res, {}), sort_keys=True)


def run_both(p: Prepared, s: BacktestSettings) -> tuple[BacktestResult, BacktestResult]:
    """The straightforward per-bar loop and the quiet-bar-skipping fast path."""
    return run_backtest(p, s, fast=False), run_backtest(p, s, fast=True)


# -- hand-built candles --------------------------------------------------------------------


def candle_market(bars: list[tuple[float, float, float, float, float]], spread_bps: float = 0.0,
                  symbol: str = "AAA/USDC", size_increment: float = 1e-8) -> MarketData:
    """One symbol from ``(open, high, low, close, volume)`` rows; a row of NaN is a missing bar."""
    a = np.array(bars, dtype=np.float64)
    col = lambda j: a[:, j:j + 1].copy()  # noqa: E731
    return MarketData(
        timeframe="1h", times=T0_MS + np.arange(len(a), dtype=np.int64) * HOUR_MS, symbols=(symbol,),
        open=col(0), high=col(1), low=col(2), close=col(3), volume=col(4),
        spread_bps=np.where(np.isnan(col(3)), np.nan, spread_bps),
        info=(SymbolInfo(symbol, "L1", 0.01, size_increment, 1.0),), source="test",
    )


def flat_fees(maker_bps: float = 0.0, taker_bps: float = 0.0) -> FeeSchedule:
    return FeeSchedule([FeeTier(0.0, maker_bps, taker_bps)])


def make_broker(market: MarketData, fees: FeeSchedule | None = None, slippage: SlippageModel | None = None,
                max_participation: float = 1.0, seed: int = 0, **kw) -> SimBroker:
    return SimBroker(market, fees or flat_fees(), slippage or SlippageModel("none"),
                     np.array([i.size_increment for i in market.info]), max_participation,
                     np.random.default_rng(seed), **kw)


def order(n: int = 1, t: int = 0, buy: float = 0.0, sell: float = 0.0, limit: float | None = None) -> Decision:
    """A decision at bar ``t`` to buy/sell the first symbol (optionally at a limit price)."""
    z = np.zeros(n)
    b, s = z.copy(), z.copy()
    b[0], s[0] = buy, sell
    d = Decision(t, "chop", s, b, ["entry"] * n, ["exit"] * n, [], {}, b > 0, {}, {}, s > 0)
    if limit is not None:
        d.limit_price = np.full(n, float(limit))
    return d


def fills_result(market: MarketData, fills: list) -> BacktestResult:
    """A BacktestResult over a hand-built market holding ``fills`` (for round trips and results):
    only the fields ``round_trips`` reads are real (no regime, an empty universe, one strategy)."""
    n = market.n_bars
    prepared = SimpleNamespace(market=market, close=market.close, rules=SimpleNamespace(book=None),
                               size_increment=np.array([i.size_increment for i in market.info]),
                               regime_idx=np.zeros(n, dtype=np.int16), rebuilds=np.zeros(n, dtype=bool),
                               universe=np.zeros((n, market.n_symbols), dtype=bool))
    return BacktestResult(prepared, 0, n, np.zeros(n), np.zeros(n), list(fills), None, None, BacktestSettings())


def portfolio(cash: float = 10_000.0, qty: float = 0.0, entry_price: float = float("nan"), n: int = 1) -> Portfolio:
    pf = Portfolio.empty(n, cash)
    pf.qty[0] = qty
    pf.entry_price[0] = entry_price
    if qty > 0:
        pf.entry_bar[0] = 0
    return pf


def assert_same_trace_events(got, want) -> None:
    """Two runs' traces record the same events (bars and symbols, key by key) and halts."""
    assert sorted(got.trace.events) == sorted(want.trace.events)
    for key, ev in want.trace.events.items():
        mine = got.trace.events[key]
        assert [t for t, _ in mine] == [t for t, _ in ev], key
        assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(mine, ev)), key
    assert dict(got.trace.halts) == dict(want.trace.halts)
