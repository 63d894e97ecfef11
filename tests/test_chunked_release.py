"""A chunked backtest lets go of each chunk before it reads the next: once a chunk's bars are run,
nothing refers to its market, its series or its features, and they are freed by reference
counting alone (the cyclic collector seldom runs in a run of big numpy arrays, which do not count
towards its thresholds: a chunk kept alive by a reference cycle stayed resident month after month,
so the run's memory grew with its length)."""
from __future__ import annotations

import dataclasses
import gc
import weakref
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from engine.backtest.chunked import frame_of, run_market_chunks
from engine.cycle.chunks import ChunkedPreparer
from engine.cycle.features import IndexSeries, MarketSeries
from engine.market.data import MarketData
from engine.modes.setup import backtest_settings
from engine.rules.loader import load_ruleset
from tests.helpers.backtest import sample_market
from tests.helpers.rules import SHIPPED_RULES, create_rules_dir, shipped_files
from tests.helpers.runs import compose_config

BARS = 24 * 60
# a distance stop (its panel is read by the protections each chunk) and a trailing stop
PROTECT = "protect:\n  stop_loss: 3 * std(close, 24)\n  trailing_stop: 0.05\n"


@pytest.fixture
def no_cycle_collector():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _rules(tmp_path: Path, coarse: bool = False):
    if coarse:  # daily bars from the hourly ones (the regime, a strategy filter), cut by every border
        return load_ruleset(create_rules_dir(tmp_path), {**shipped_files("strategies/mean_reversion.yaml"),
                                                         "regime": "regime_daily.yaml"})
    text = (Path(SHIPPED_RULES) / "strategies/sma_cross.yaml").read_text() + PROTECT
    return load_ruleset(create_rules_dir(tmp_path, {"strategies/sma_cross.yaml": text}), shipped_files())


def _lazily_cut(market: MarketData, size: int, alive: list[bool]) -> Iterator[tuple[int, MarketData]]:
    """``market`` in chunks of ``size`` rows, each made when asked for; as the next is asked for,
    whether the one before is still alive goes to ``alive``."""
    last = None
    for a in range(0, market.n_bars, size):
        if last is not None:
            alive.append(last() is not None)
        chunk = market.select(start=a, stop=min(a + size, market.n_bars))
        chunk.info = market.info
        last = weakref.ref(chunk)
        yield a, chunk
        del chunk


@pytest.mark.parametrize("window", [None, (100, 900)], ids=["all", "inside"])
def test_each_chunk_is_freed_before_the_next_is_read(tmp_path, no_cycle_collector, window):
    market = sample_market(30, BARS)
    rules = _rules(tmp_path)
    s = backtest_settings(compose_config([]), market)
    if window is not None:  # chunks past the window only add their masks to the trace
        s = dataclasses.replace(s, start=window[0], stop=window[1])
    frame = frame_of(market.timeframe, market.times, market.symbols, market.info, market.source)
    alive: list[bool] = []
    res = run_market_chunks(_lazily_cut(market, 200, alive), rules, s, frame)
    assert len(res.fills) > 10 and any(f.rule.startswith("protect:") for f in res.fills)
    assert alive == [False] * (BARS // 200)


def test_a_chunks_series_are_freed_without_the_cycle_collector(no_cycle_collector):
    m = sample_market(30, 300)
    close = np.where(np.isnan(m.close), 1.0, m.close)
    for make in (lambda: MarketSeries(m.timeframe).series(m, 0), lambda: IndexSeries(m, (), streams={}).series(m, close)):
        series = make()
        for key in ("close", "volume_usd", "breadth", "volume_usd_24h", "bars_listed"):
            if key in series:
                series[key]  # the builders that read the series itself
        ref = weakref.ref(series)
        del series
        assert ref() is None


def test_the_carried_universe_is_no_row_of_the_chunks_panel(tmp_path):
    whole = sample_market(30, 300)
    m = whole.select(symbols=list(whole.symbols[:5]))  # fewer than the universe's top: select_members keeps its row
    rules = load_ruleset(create_rules_dir(tmp_path), shipped_files())
    prep = ChunkedPreparer(rules, m)
    p = prep.step(0, m)
    assert p.rebuilds.any()
    assert prep._universe.members.base is None


def test_the_benchmarks_carried_closes_are_no_row_of_the_chunks_panel():
    from engine.report.metrics import BuyAndHold

    bh = BuyAndHold(1000.0)
    bh.step(np.abs(sample_market(30, 50).close) + 1.0)
    assert bh.last.base is None


def test_each_chunk_is_freed_with_coarser_bars_carried(tmp_path, no_cycle_collector):
    """The daily bars a chunk completes, its unfinished day's rows and each on() read's last row go
    on as copies: the chunk itself is gone when the next is read."""
    market = sample_market(30, BARS)
    rules = _rules(tmp_path, coarse=True)
    s = backtest_settings(compose_config([]), market)
    frame = frame_of(market.timeframe, market.times, market.symbols, market.info, market.source)
    alive: list[bool] = []
    res = run_market_chunks(_lazily_cut(market, 200, alive), rules, s, frame)
    assert rules.regime.timeframe == "1d" and len(res.fills) > 10
    assert alive == [False] * (BARS // 200)
