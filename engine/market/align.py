"""Put several validated series on one regular (time x symbol) grid."""
from __future__ import annotations

import numpy as np

from engine.market.data import TIMEFRAME_MS
from engine.market.validate import Bars, DataError

_COLUMNS = ("open", "high", "low", "close", "volume")
# A panel beyond this many cells (about 1.6 GB per column set) is almost surely a mistake
# such as a 1m file named 1d; say so instead of exhausting memory.
MAX_CELLS = 200_000_000


def union_grid(series: list[Bars], timeframe: str) -> np.ndarray:
    """Every bar open from the earliest first bar to the latest last bar, step ``timeframe``."""
    step = TIMEFRAME_MS[timeframe]
    t0 = min(int(b.times[0]) for b in series)
    t1 = max(int(b.times[-1]) for b in series)
    n = (t1 - t0) // step + 1
    if n * len(series) > MAX_CELLS:
        raise DataError(
            f"the data spans {n:,} {timeframe} bars x {len(series)} symbols, expected at most "
            f"{MAX_CELLS:,} cells: check the timeframe and the files' date ranges")
    return t0 + np.arange(n, dtype=np.int64) * step


def align(series: list[Bars], timeframe: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(times, {column: (T, N) float64}) with NaN where a series has no bar.

    Series must already be validated (sorted, unique, on the grid), so each maps to rows by
    integer division with no searching.
    """
    times = union_grid(series, timeframe)
    step = TIMEFRAME_MS[timeframe]
    T, N = len(times), len(series)
    out = {c: np.full((T, N), np.nan) for c in _COLUMNS}
    for j, b in enumerate(series):  # one vectorised scatter per symbol
        rows = (b.times - times[0]) // step
        for c in _COLUMNS:
            out[c][rows, j] = getattr(b, c)
    return times, out
