"""A market store read one calendar month at a time (``MarketStore.iter_months``).

A chunked run must see the panel ``MarketStore.load`` builds without holding it: the same grid
(every bar from the earliest first bar to the latest last bar, gap months included), the same
symbols (the wanted ones with a bar in range, sorted), the same NaN layout and the same symbol
info. The grid and the info depend on the whole range, so a first pass reads each month file
once, symbol by symbol, and keeps each symbol's first and last bar, the months it holds and its
gaps; its tick (``loaders.symbol_info``) is inferred from its prices of the whole range, held
while that one symbol is read (4 numbers a bar: 17 MB for a year of 1-minute bars). Then each
step reads one month of every symbol: memory holds one month and a few numbers per symbol-month,
whatever the range. The first pass's answer for a symbol is kept beside its files and used again
while they are unchanged (engine/market/scan_cache.py): a run over files an earlier run planned
reads each file once, in its step; otherwise twice, once by the first pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from engine.market.data import TIMEFRAME_MS, MarketData, SymbolInfo, iso_utc
from engine.market import scan_cache
from engine.market.loaders import (PRICE_SAMPLE, infer_price_increment, log, require_two_bars, sample_positions,
                                   symbol_facts, symbol_info)
from engine.market.store import MarketStore
from engine.market.validate import Gap, find_gaps, warn_gaps

_COLUMNS = ("open", "high", "low", "close", "volume")
_BLOCK_CELLS = 1 << 19  # symbol-bars per block of rows a month's panel is written in (4 MiB a column)
_GROUP = 32  # symbols read before their bars are written into the panel (a cache line holds 8)


@dataclass(frozen=True)
class _Series:
    """One symbol's bars in range, summarised by the first pass."""

    symbol: str
    file: str  # as load's Bars name it in messages
    first: int  # ms of the first bar in range
    last: int
    bars: int
    months: tuple[str, ...]  # months holding a bar in range, in order
    gaps: tuple[Gap, ...]
    info: SymbolInfo


@dataclass(frozen=True)
class _Plan:
    timeframe: str
    since_ms: int | None
    until_ms: int | None
    t0: int  # the grid's first bar
    n_bars: int
    series: tuple[_Series, ...]
    info: tuple[SymbolInfo, ...]


class MonthChunks:
    """The iterator ``iter_months`` returns: ``(row0, MarketData)`` per month, and what the first
    pass learnt of the whole panel before any month is read (a chunked run's window, identity and
    trace need them): its bar times, symbols and symbol info."""

    def __init__(self, store: "MarketStore", plan: _Plan):
        self._plan = plan
        self._steps = _steps(store, plan)
        step = TIMEFRAME_MS[plan.timeframe]
        self.timeframe = plan.timeframe
        self.times = plan.t0 + np.arange(plan.n_bars, dtype=np.int64) * step
        self.symbols = tuple(s.symbol for s in plan.series)
        self.info = plan.info

    def __iter__(self) -> "MonthChunks":
        return self

    def __next__(self) -> tuple[int, MarketData]:
        return next(self._steps)


def iter_months(store: "MarketStore", timeframe: str, symbols: list[str] | None, since_ms: int | None,
                until_ms: int | None) -> MonthChunks:
    plan = _plan(store, timeframe, symbols, since_ms, until_ms)  # errors now, not at the first step
    return MonthChunks(store, plan)


def _scan(store: "MarketStore", symbol: str, timeframe: str, since_ms: int | None, until_ms: int | None) -> _Series | None:
    """The symbol's summary: kept from an earlier run while its files are unchanged
    (engine/market/scan_cache.py), else read from them (:func:`_read_series`) and kept."""
    folder = store._dir(symbol, timeframe)
    files = store.month_files(symbol, timeframe, since_ms, until_ms)
    key = scan_cache.key(files, since_ms, until_ms)
    found, kept = scan_cache.load(folder, key)
    if found:
        return _from_json(symbol, _file(store, symbol, timeframe), kept)
    series = _read_series(store, symbol, timeframe, files, since_ms, until_ms)
    scan_cache.save(folder, key, _to_json(series))
    return series


def _read_series(store: "MarketStore", symbol: str, timeframe: str, files: list, since_ms: int | None,
                 until_ms: int | None) -> _Series | None:
    months, gaps = [], []
    prices: list[list[np.ndarray]] = [[], [], [], []]  # opens, highs, lows, closes: month by month
    first = last = None
    bars = 0
    for path in files:
        times, values = store.read_month_columns(symbol, timeframe, path.stem, since_ms, until_ms)
        if not times.size:
            continue
        # a gap across the month border shows between last month's last bar and this one's first
        gaps += find_gaps(symbol, times if last is None else np.concatenate([[last], times]), timeframe)
        first = int(times[0]) if first is None else first
        last = int(times[-1])
        bars += times.size
        months.append(path.stem)
        for col, v in zip(prices, values):
            col.append(v)
    if first is None:
        return None
    # load's symbol_info reads the whole range's opens, highs, lows and closes in that order
    info = symbol_info(symbol, np.concatenate([part for col in prices for part in col]))
    return _Series(symbol, _file(store, symbol, timeframe), first, last, bars, tuple(months), tuple(gaps), info)


def _file(store: "MarketStore", symbol: str, timeframe: str) -> str:
    return str(store._dir(symbol, timeframe).relative_to(store.root))


def _to_json(s: _Series | None):
    if s is None:
        return None  # no bar in range: kept too
    return {"first": s.first, "last": s.last, "bars": s.bars, "months": list(s.months),
            "gaps": [[g.start_iso, g.end_iso, g.missing_bars] for g in s.gaps],
            "price_increment": s.info.price_increment}  # a float's JSON text reads back the same float


def _from_json(symbol: str, file: str, v) -> _Series | None:
    if v is None:
        return None
    return _Series(symbol, file, int(v["first"]), int(v["last"]), int(v["bars"]), tuple(v["months"]),
                   tuple(Gap(symbol, a, b, int(n)) for a, b, n in v["gaps"]),
                   symbol_facts(symbol, float(v["price_increment"])))


# what a kept summary was computed by: a change to any of them makes every kept one stale
scan_cache._CODE[:] = [_read_series, _to_json, _from_json, find_gaps, iso_utc, symbol_info, symbol_facts,
                       infer_price_increment, sample_positions, PRICE_SAMPLE, MarketStore.read_month_columns,
                       MarketStore._read_columns]


def _plan(store: "MarketStore", timeframe: str, symbols: list[str] | None, since_ms: int | None,
          until_ms: int | None) -> _Plan:
    wanted = store.wanted(timeframe, symbols)
    series = tuple(s for s in (_scan(store, w, timeframe, since_ms, until_ms) for w in wanted) if s is not None)
    if not series:
        raise store.no_bars(timeframe, wanted, since_ms, until_ms)
    step = TIMEFRAME_MS[timeframe]
    t0 = min(s.first for s in series)
    n_bars = (max(s.last for s in series) - t0) // step + 1
    require_two_bars(n_bars, [(s.file, s.bars) for s in series], str(store.root))
    info = tuple(s.info for s in series)
    warn_gaps([g for s in series for g in s.gaps], f"store:{store.root}", log)  # as load does, once
    return _Plan(timeframe, since_ms, until_ms, t0, n_bars, series, info)


def _steps(store: "MarketStore", plan: _Plan) -> Iterator[tuple[int, MarketData]]:
    step = TIMEFRAME_MS[plan.timeframe]
    t0, n = plan.t0, plan.n_bars
    month0 = np.datetime64(t0, "ms").astype("datetime64[M]")
    month1 = np.datetime64(t0 + (n - 1) * step, "ms").astype("datetime64[M]")
    held = [set(s.months) for s in plan.series]
    for m in np.arange(month0, month1 + 1):
        m0 = int(m.astype("datetime64[ms]").astype(np.int64))
        m1 = int((m + 1).astype("datetime64[ms]").astype(np.int64))
        k0, k1 = max(0, -(-(m0 - t0) // step)), min(n, -(-(m1 - t0) // step))  # grid rows inside the month
        if k1 <= k0:
            continue
        # built in a call: this frame holds nothing of the month while the next one is read
        yield k0, _month(store, plan, str(m), k0, k1, held)


def _month(store: MarketStore, plan: _Plan, month: str, k0: int, k1: int, held: list[set[str]]) -> MarketData:
    """Grid rows ``k0 .. k1`` (one calendar month) of every symbol, NaN where it has no bar."""
    step, t0 = TIMEFRAME_MS[plan.timeframe], plan.t0
    symbols = tuple(s.symbol for s in plan.series)
    n = k1 - k0
    cols = [np.full((n, len(symbols)), np.nan) for _ in _COLUMNS]
    block = max(256, _BLOCK_CELLS // max(len(symbols), 1))
    for g in range(0, len(symbols), _GROUP):  # a group's files held at a time, not the month's
        spans = []  # (column, first row, end row, values) of the group's symbols with no gap this month
        for j in range(g, min(g + _GROUP, len(symbols))):
            if month not in held[j]:
                continue
            times, values = store.read_month_columns(symbols[j], plan.timeframe, month, plan.since_ms, plan.until_ms)
            if not times.size:
                continue
            r = (times - t0) // step - k0
            if r[-1] - r[0] + 1 == r.size:
                spans.append((j, int(r[0]), int(r[-1]) + 1, values))
            else:
                for col, v in zip(cols, values):
                    col[r, j] = v
        # the gap-free ones (most) land as slices, block of rows by block of rows: a block's cache
        # lines are filled by neighbouring symbols before they leave the cache (about twice as fast
        # as whole columns one symbol at a time, every write then a miss)
        for c, col in enumerate(cols):
            for a in range(0, n, block):
                b = min(a + block, n)
                for j, r0, r1, values in spans:
                    lo, hi = max(a, r0), min(b, r1)
                    if lo < hi:
                        col[lo:hi, j] = values[c][lo - r0:hi - r0]
    return MarketData(timeframe=plan.timeframe, times=t0 + np.arange(k0, k1, dtype=np.int64) * step,
                      # the store keeps no quotes: one NaN seen through a zero-stride view (no memory),
                      # replaced whole by the run's default spread (engine/modes/setup.py with_default_spread)
                      symbols=symbols, spread_bps=np.broadcast_to(np.float64(np.nan), (k1 - k0, len(symbols))),
                      info=plan.info,
                      source=f"store:{store.root}", **dict(zip(_COLUMNS, cols)))
