"""Coarser bars over consecutive base chunks: ``on("1d", ...)`` and a regime file's
``timeframe:`` in a chunked run (engine/cycle/chunks.py).

Each chunk completes some coarse bars: those whose close time is at or before the chunk's last
base bar's close. They are resampled from their base rows exactly as the whole run's
``resample`` builds them (engine/market/coarse.py: the same rows, reduced in the same order),
so the coarse panel over all chunks is the whole run's row for row. The base rows of a bar the
chunk leaves unfinished (a 1w bar across a month border, or any bar across an arbitrary cut) are
kept and lead the next chunk's rows. The coarse rows get their own carried series
(``MarketSeries``, ``IndexSeries``) and streams, row-numbered on the coarse clock; the base
store reads them through ``ChunkStore.on_clock``, which carries each expression's last closed
coarse row into the next chunk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.cycle.features import IndexSeries, LazySeries, MarketSeries
from engine.market.coarse import check_coarser, resample
from engine.market.data import PANEL_COLUMNS, TIMEFRAME_MS, MarketData
from engine.rules.expr import ChunkStore


def _joined(a: MarketData, b: MarketData) -> MarketData:
    """The rows of ``a`` then ``b`` (same symbols and timeframe)."""
    return MarketData(timeframe=a.timeframe, times=np.concatenate([a.times, b.times]), symbols=a.symbols,
                      **{k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in PANEL_COLUMNS},
                      info=a.info, source=a.source)


@dataclass
class _Part:
    """One base chunk's share: its completed coarse bars (None: none) and, per base row, the
    row among them of the last closed coarse bar (-1: one closed before them, or none yet)."""

    coarse: MarketData | None
    closed: np.ndarray
    series: LazySeries | None = None
    index: LazySeries | None = None


class CoarseChunks:
    """One coarser timeframe of a chunked run: ``begin`` each base chunk, read its stores, ``finish``."""

    def __init__(self, timeframe: str, first: MarketData, exclude_themes: tuple[str, ...]):
        why = check_coarser(first.timeframe, timeframe)
        if why:
            raise ValueError(why)
        self.timeframe = timeframe
        self.step_ms, self.base_ms = TIMEFRAME_MS[timeframe], TIMEFRAME_MS[first.timeframe]
        self.tail: MarketData | None = None  # the base rows of a coarse bar not finished yet
        self.base_rows = 0  # base rows seen: the next chunk's row0
        self.rows = 0  # coarse rows completed: the next part's row0 on the coarse clock
        self.series = MarketSeries(timeframe)
        self.index = IndexSeries(first, exclude_themes, streams={})
        self.index_read = False  # the regime index was read on these bars: it goes on every chunk
        self.streams: dict = {}  # the coarse market store's series calls
        self.index_streams: dict = {}  # the coarse index store's
        self.part: _Part | None = None

    def begin(self, row0: int, m: MarketData) -> None:
        if row0 != self.base_rows:
            raise ValueError(f"{self.timeframe} bars were built up to base row {self.base_rows}, "
                             f"but this chunk starts at row {row0}")
        rows = m if self.tail is None else _joined(self.tail, m)
        ends = (rows.times // self.step_ms + 1) * self.step_ms
        k = int(np.searchsorted(ends, int(m.times[-1]) + self.base_ms, side="right"))  # closed: a prefix
        self.tail = rows.select(start=k) if k < rows.n_bars else None
        if k:
            coarse = resample(rows if k == rows.n_bars else rows.select(stop=k), self.timeframe).market
            closed = np.searchsorted(coarse.times + self.step_ms, m.times + self.base_ms, side="right") - 1
            self.part = _Part(coarse, closed)
        else:
            self.part = _Part(None, np.full(m.n_bars, -1, dtype=np.int64))
        self.base_rows = row0 + m.n_bars

    def _series(self, p: _Part) -> LazySeries:
        if p.series is None:
            p.series = self.series.series(p.coarse, self.rows)
        return p.series

    def _index(self, p: _Part) -> LazySeries:
        if p.index is None:
            p.index = self.index.series(p.coarse, self._series(p)["close"])
        return p.index

    def market_store(self) -> tuple[ChunkStore | None, np.ndarray]:
        p = self.part
        if p.coarse is None:
            return None, p.closed
        return ChunkStore(self._series(p), (p.coarse.n_bars, p.coarse.n_symbols), self.streams, self.rows), p.closed

    def index_store(self) -> tuple[ChunkStore | None, np.ndarray]:
        p = self.part
        self.index_read = True
        if p.coarse is None:
            return None, p.closed
        return ChunkStore(self._index(p), (p.coarse.n_bars, 1), self.index_streams, self.rows), p.closed

    def finish(self) -> None:
        """Carry the completed coarse rows' last values into the next chunk."""
        p, self.part = self.part, None
        if p is None or p.coarse is None:
            return
        s = self._series(p)
        if self.index_read:  # built on every chunk once read: its running product goes on
            self.index.advance(self._index(p), s["close"])
        self.series.advance(s, p.coarse)
        self.rows += p.coarse.n_bars
