"""Put several validated series on one regular (time x symbol) grid."""
from __future__ import annotations

import numpy as np

from engine.market.data import TIMEFRAME_MS, iso_utc
from engine.market.memory import require_fits
from engine.market.validate import Bars

_COLUMNS = ("open", "high", "low", "close", "volume")


def union_grid(series: list[Bars], timeframe: str, max_memory_gib: float | None = None) -> np.ndarray:
    """Every bar open from the earliest first bar to the latest last bar, step ``timeframe``.

    Refused before allocating when the run over that grid would not fit in memory (one stray
    row dated 5000-01-01 makes a grid of 26 million hourly bars).
    """
    step = TIMEFRAME_MS[timeframe]
    t0 = min(int(b.times[0]) for b in series)
    t1 = max(int(b.times[-1]) for b in series)
    n = (t1 - t0) // step + 1
    first = min(series, key=lambda b: int(b.times[0]))
    last = max(series, key=lambda b: int(b.times[-1]))
    require_fits(n, len(series), timeframe, max_memory_gib,
                 f"the data runs from {iso_utc(t0)} ({first.file}) to {iso_utc(t1)} ({last.file})")
    return t0 + np.arange(n, dtype=np.int64) * step


def align(series: list[Bars], timeframe: str,
          max_memory_gib: float | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(times, {column: (T, N) float64}) with NaN where a series has no bar.

    Series must already be validated (sorted, unique, on the grid), so each maps to rows by
    integer division with no searching.
    """
    times = union_grid(series, timeframe, max_memory_gib)
    step = TIMEFRAME_MS[timeframe]
    T, N = len(times), len(series)
    out = {c: np.full((T, N), np.nan) for c in _COLUMNS}
    for j, b in enumerate(series):  # one vectorised scatter per symbol
        rows = (b.times - times[0]) // step
        for c in _COLUMNS:
            out[c][rows, j] = getattr(b, c)
    return times, out
