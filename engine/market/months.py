"""A market store read one calendar month at a time (``MarketStore.iter_months``).

A chunked run must see the panel ``MarketStore.load`` builds without holding it: the same grid
(every bar from the earliest first bar to the latest last bar, gap months included), the same
symbols (the wanted ones with a bar in range, sorted), the same NaN layout and the same symbol
info. The grid and the info depend on the whole range, so a first pass reads each month file
once, symbol by symbol, and keeps each symbol's first and last bar, the months it holds and its
gaps; its tick (``loaders.symbol_info``) is inferred from its prices of the whole range, held
while that one symbol is read (4 numbers a bar: 17 MB for a year of 1-minute bars). Then the
steps build their chunks (a month, or a number of rows) from the month files, read a month of
every symbol at a time ahead of them (``_steps``): memory holds two months' bars, a chunk and a
few numbers per symbol-month, whatever the range. The first pass's answer for a symbol is kept beside its files and used again
while they are unchanged (engine/market/scan_cache.py): a run over files an earlier run planned
reads each file once, for its steps; otherwise twice, once by the first pass.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
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
    """The iterator ``iter_months`` returns: ``(row0, MarketData)`` per month (or per ``rows``
    rows), and what the first pass learnt of the whole panel before any month is read (a chunked
    run's window, identity and trace need them): its bar times, symbols and symbol info."""

    def __init__(self, store: "MarketStore", plan: _Plan, rows: int | None = None):
        self._plan = plan
        self._steps = _steps(store, plan, rows)
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
                until_ms: int | None, rows: int | None = None) -> MonthChunks:
    plan = _plan(store, timeframe, symbols, since_ms, until_ms)  # errors now, not at the first step
    return MonthChunks(store, plan, rows)


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


def _months(plan: _Plan) -> list[tuple[str, int, int]]:
    """(month, first grid row, end row) of each calendar month holding grid rows, in order."""
    step, t0, n = TIMEFRAME_MS[plan.timeframe], plan.t0, plan.n_bars
    month0 = np.datetime64(t0, "ms").astype("datetime64[M]")
    month1 = np.datetime64(t0 + (n - 1) * step, "ms").astype("datetime64[M]")
    months = []
    for m in np.arange(month0, month1 + 1):
        m0 = int(m.astype("datetime64[ms]").astype(np.int64))
        m1 = int((m + 1).astype("datetime64[ms]").astype(np.int64))
        k0, k1 = max(0, -(-(m0 - t0) // step)), min(n, -(-(m1 - t0) // step))  # grid rows inside the month
        if k1 > k0:
            months.append((str(m), k0, k1))
    return months


def _steps(store: "MarketStore", plan: _Plan, rows: int | None) -> Iterator[tuple[int, MarketData]]:
    """The grid's chunks: its calendar months (``rows`` None), else ``rows`` rows each (the last
    one fewer), built from the month files.

    The files are read a month at a time by a thread, ahead of the chunks that need them:
    pyarrow's decoding releases the GIL, so on a second core the read costs the run almost
    nothing while the chunks before are prepared and run. At most two months are held or being
    read: the one the chunk being built reads and the next (two in hand across a border, the
    next read once the first is let go), or the months of a chunk longer than that."""
    months = _months(plan)
    chunks = [(k0, k1) for _, k0, k1 in months] if rows is None else \
        [(a, min(a + rows, plan.n_bars)) for a in range(0, plan.n_bars, rows)]
    source = f"store:{store.root}"
    held = [set(s.months) for s in plan.series]
    with ThreadPoolExecutor(1, thread_name_prefix="rulebook-month-read") as pool:
        reading: dict[int, Future] = {}
        have: list[tuple[int, int, list]] = []  # (first row, end row, bars) of the months in hand
        nxt = 0  # the first month not in hand

        def read(i: int) -> None:
            reading[i] = pool.submit(_read_files, store, plan, months[i][0], held)

        def ahead() -> None:
            if nxt + len(reading) < len(months) and len(have) + len(reading) < 2:
                read(nxt + len(reading))

        for c0, c1 in chunks:
            while nxt < len(months) and months[nxt][1] < c1:  # the chunk reads that month
                if nxt not in reading:  # the first, or a chunk longer than the months ahead
                    read(nxt)
                bars = reading.pop(nxt).result()  # a file's DataError is raised here
                have.append((months[nxt][1], months[nxt][2], _spans(plan, bars)))
                del bars
                nxt += 1
            ahead()
            # built in a call: this frame holds nothing of the chunk while the next one is read
            yield c0, _panel(plan, source, c0, c1, [bars for k0, k1, bars in have if k0 < c1 and k1 > c0])
            have = [h for h in have if h[1] > c1]  # a month wholly built is let go
            ahead()


def _read_files(store: MarketStore, plan: _Plan, month: str, held: list[set[str]]) -> list:
    """``(column, times, values)`` of every symbol with bars in ``month``, in symbol order."""
    got = []
    for j, s in enumerate(plan.series):
        if month in held[j]:
            times, values = store.read_month_columns(s.symbol, plan.timeframe, month, plan.since_ms, plan.until_ms)
            if times.size:
                got.append((j, times, values))
    return got


def _spans(plan: _Plan, files: list) -> list:
    """A month's bars by symbol as ``(column, first grid row, end row, values)`` where they are
    gap-free (most: their times are let go), else ``(column, grid rows, None, values)``."""
    step, t0 = TIMEFRAME_MS[plan.timeframe], plan.t0
    out = []
    for j, times, values in files:
        r = (times - t0) // step
        if r[-1] - r[0] + 1 == r.size:
            out.append((j, int(r[0]), int(r[-1]) + 1, values))
        else:
            out.append((j, r, None, values))
    return out


def _panel(plan: _Plan, source: str, c0: int, c1: int, months: list[list]) -> MarketData:
    """Grid rows ``c0 .. c1`` of every symbol, NaN where it has no bar, from the bars of the
    months they lie in (:func:`_spans`)."""
    step, t0 = TIMEFRAME_MS[plan.timeframe], plan.t0
    symbols = tuple(s.symbol for s in plan.series)
    n = c1 - c0
    cols = [np.full((n, len(symbols)), np.nan) for _ in _COLUMNS]
    block = max(256, _BLOCK_CELLS // max(len(symbols), 1))
    for spans in months:
        for g in range(0, len(spans), _GROUP):
            group = []  # the group's gap-free spans, in chunk rows
            for j, r0, r1, values in spans[g:g + _GROUP]:
                if r1 is None:  # gapped: its rows inside the chunk, one by one
                    inside = (r0 >= c0) & (r0 < c1)
                    for col, v in zip(cols, values):
                        col[r0[inside] - c0, j] = v[inside]
                elif r0 < c1 and r1 > c0:
                    group.append((j, r0 - c0, r1 - c0, values))
            # the gap-free ones land as slices, block of rows by block of rows: a block's cache
            # lines are filled by neighbouring symbols before they leave the cache (about twice as
            # fast as whole columns one symbol at a time, every write then a miss)
            for c, col in enumerate(cols):
                for a in range(0, n, block):
                    b = min(a + block, n)
                    for j, r0, r1, values in group:
                        lo, hi = max(a, r0), min(b, r1)
                        if lo < hi:
                            col[lo:hi, j] = values[c][lo - r0:hi - r0]
    return MarketData(timeframe=plan.timeframe, times=t0 + np.arange(c0, c1, dtype=np.int64) * step,
                      # the store keeps no quotes: one NaN seen through a zero-stride view (no memory),
                      # replaced whole by the run's default spread (engine/modes/setup.py with_default_spread)
                      symbols=symbols, spread_bps=np.broadcast_to(np.float64(np.nan), (n, len(symbols))),
                      info=plan.info, source=source, **dict(zip(_COLUMNS, cols)))
