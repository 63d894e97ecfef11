"""Coarser bars built from the base bars, and which of them have closed at each base bar.

A coarse bar of timeframe C covers the base bars that opened in ``[k*C, (k+1)*C)`` (UTC, aligned
to the epoch: a 1d bar is a UTC day), exactly as an exchange's own daily candle does: open of the
first bar that exists, high/low the extremes, close and spread of the last one, volume the sum.
A coarse bar with no base bar at all is missing (NaN), as a gap in a file of that timeframe is.

Reading a coarse bar at base bar t is allowed only once it has closed: its close time
``(k+1)*C`` is at or before base bar t's close ``times[t] + base``. :func:`closed_index` gives,
per base bar, the last such coarse row (or -1), so a value computed on the coarse panel maps back
to the base clock without looking ahead. Whole-array numpy throughout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.market.data import TIMEFRAME_MS, MarketData


@dataclass(frozen=True)
class Coarse:
    """A coarse panel and, per base bar, the row of the last coarse bar that has closed (-1: none)."""

    market: MarketData
    closed: np.ndarray  # (T_base,) int64


def check_coarser(base: str, coarse: str) -> str | None:
    """Why ``coarse`` cannot be built from ``base`` bars (None: it can)."""
    if coarse not in TIMEFRAME_MS:
        return f"unknown timeframe {coarse!r}; expected one of {', '.join(TIMEFRAME_MS)}"
    b, c = TIMEFRAME_MS[base], TIMEFRAME_MS[coarse]
    if c <= b or c % b:
        return f"timeframe {coarse} is not a whole multiple, above 1, of the data's {base} bars"
    return None


def _gather(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """a[rows[k, j], j] with NaN where rows is -1."""
    cols = np.arange(a.shape[1])[None, :]
    out = a[np.maximum(rows, 0), cols]
    return np.where(rows >= 0, out, np.nan)


def resample(market: MarketData, timeframe: str) -> Coarse:
    why = check_coarser(market.timeframe, timeframe)
    if why:
        raise ValueError(why)
    step, base = TIMEFRAME_MS[timeframe], TIMEFRAME_MS[market.timeframe]
    t_n, n = market.n_bars, market.n_symbols
    bucket = market.times // step
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]]) if t_n else np.zeros(0, dtype=np.int64)
    avail = ~np.isnan(market.close)
    rows = np.arange(t_n, dtype=np.int64)[:, None]
    first = np.minimum.reduceat(np.where(avail, rows, t_n), starts, axis=0) if t_n else np.zeros((0, n), np.int64)
    last = np.maximum.reduceat(np.where(avail, rows, -1), starts, axis=0) if t_n else np.zeros((0, n), np.int64)
    first = np.where(first < t_n, first, -1)
    some = last >= 0
    with np.errstate(invalid="ignore"):
        high = np.fmax.reduceat(market.high, starts, axis=0) if t_n else np.zeros((0, n))
        low = np.fmin.reduceat(market.low, starts, axis=0) if t_n else np.zeros((0, n))
    volume = np.add.reduceat(np.where(avail, np.nan_to_num(market.volume), 0.0), starts, axis=0) if t_n else np.zeros((0, n))
    coarse = MarketData(
        timeframe=timeframe,
        times=(bucket[starts] * step).astype(np.int64),
        symbols=market.symbols,
        open=_gather(market.open, first),
        high=np.where(some, high, np.nan),
        low=np.where(some, low, np.nan),
        close=_gather(market.close, last),
        volume=np.where(some, volume, np.nan),
        spread_bps=_gather(market.spread_bps, last),
        info=market.info,
        source=f"{market.source} as {timeframe}",
    )
    # the coarse bar k has closed at base bar t when (k+1)*step <= times[t] + base
    closes = coarse.times + step
    closed = np.searchsorted(closes, market.times + base, side="right") - 1
    return Coarse(coarse, closed.astype(np.int64))


def on_base_clock(values: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """A (T_coarse, M) array read on the base clock: row t is the last closed coarse row (NaN,
    False or '' before the first coarse bar closes)."""
    out = values[np.maximum(closed, 0)]
    if closed.size and closed[0] < 0:
        out = out.copy()
        fill = np.nan if out.dtype.kind == "f" else (False if out.dtype.kind == "b" else out.dtype.type())
        out[closed < 0] = fill
    return out
