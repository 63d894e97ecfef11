"""The backtest over a market read in row chunks: neither the market nor any feature is held for
the whole run.

:func:`run_market_chunks` prepares each chunk (engine/cycle/chunks.py) and runs the loop over it
(:func:`run_chunks_of`, the one loop every backtest runs). What the results and the trace read
of the prepared rows is gathered chunk by chunk as the in-memory run gathers it from its one
chunk (engine/sim/summary.py, ``TraceRecorder.add_chunk``): its results.json is the in-memory
run's byte for byte (tests/test_chunked_backtest.py). What stays for the whole run: the equity
and exposure curves (T,), the fills, the trace's packed masks (a bit per symbol-bar) and events.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from engine.backtest.engine import BacktestResult, BacktestSettings, run_chunks_of
from engine.cycle.chunks import ChunkedPreparer
from engine.cycle.prepare import Prepared, RuleGroup
from engine.market.data import PANEL_COLUMNS, MarketData
from engine.rules.expr import FeatureStore
from engine.rules.loader import RuleSet


def frame_of(timeframe: str, times: np.ndarray, symbols: tuple[str, ...], info, source: str) -> MarketData:
    """A market's frame: its bar times, symbols and symbol info, with no prices (each panel is one
    NaN seen through a zero-stride view: no memory). What a chunked run's window, results and
    trace read of the whole market."""
    nan = np.broadcast_to(np.float64(np.nan), (len(times), len(symbols)))
    return MarketData(timeframe=timeframe, times=np.asarray(times, dtype=np.int64), symbols=tuple(symbols),
                      info=tuple(info), source=source, **{c: nan for c in PANEL_COLUMNS})


def _facts(prep: ChunkedPreparer, frame: MarketData) -> Prepared:
    """The run's facts for the results and the trace: the frame, the rules, the static per-symbol
    facts; every (T, N) field is an empty view (the chunks' rows were gathered as they passed)."""
    shape = (frame.n_bars, frame.n_symbols)
    no = np.broadcast_to(False, shape)
    nothing = RuleGroup([], [], no)

    def none(env, t):
        raise RuntimeError("a chunked run's facts bind no rule (each chunk bound its own)")

    rules = prep.rules
    return Prepared(
        market=frame, rules=rules, store=FeatureStore({}, shape), available=no, close=frame.close,
        regime_labels=rules.regime.labels, regime_idx=np.zeros(0, dtype=np.int16), regime_masks={},
        filter_masks={}, eligible=no, universe=no, rebuilds=np.zeros(0, dtype=bool), entries=nothing,
        exits=nothing, vetoes=nothing, size=none, priority=None, halts=[], guards=nothing,
        themes=prep.themes, theme_names=prep.theme_names, size_increment=prep.size_increment)


def run_market_chunks(market_chunks: Iterable[tuple[int, MarketData]], rules: RuleSet, s: BacktestSettings,
                      frame: MarketData, progress=None, fast: bool = True, observe=None, trace: bool = True,
                      checkpoint=None) -> BacktestResult:
    """The backtest of ``rules`` over the market ``frame`` describes (:func:`frame_of`, or the
    whole market itself), given as consecutive ``(row0, chunk)`` pieces (same symbols, time order):
    ``run_backtest(prepare(market, rules), s)`` without the whole run's market and features.
    Chunks past the window are still prepared: the trace holds the whole market's masks, as the
    in-memory run's does."""
    state: dict = {}

    def chunks() -> Iterator[Prepared]:
        prep = None
        for row0, m in market_chunks:
            prep = prep or ChunkedPreparer(rules, m)
            state["prep"] = prep
            yield prep.step(row0, m)
            # the loop let go of the chunk's Prepared: nothing of it is held while the next chunk
            # is read, and its arrays' memory is the next chunk's (one shape: engine/cycle/memory.py)
            del m

    def facts() -> Prepared:
        prep = state["prep"]
        if prep.rows != frame.n_bars:
            raise ValueError(f"the chunks hold {prep.rows} rows, expected {frame.n_bars}")
        return _facts(prep, frame)

    return run_chunks_of(chunks(), s, frame.n_bars, facts, progress=progress, fast=fast, observe=observe,
                         trace=trace, checkpoint=checkpoint)
