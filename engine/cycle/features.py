"""The named series every rule can read, built once from a MarketData panel."""
from __future__ import annotations

import numpy as np

from engine.market.data import MarketData, timeframe_ms


def ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN down each column (a leading NaN prefix stays NaN).

    Only columns with a hole after their first value are touched (most have none)."""
    nan = np.isnan(a)
    t = a.shape[0]
    first = np.argmin(nan, axis=0)  # first non-NaN row (0 for an all-NaN column)
    holes = nan.sum(axis=0) > np.where(nan.all(axis=0), t, first)
    out = a.copy()
    cols = np.flatnonzero(holes)
    if cols.size:
        sub = a[:, cols]
        idx = np.where(np.isnan(sub), 0, np.arange(t)[:, None])
        np.maximum.accumulate(idx, axis=0, out=idx)
        out[:, cols] = sub[idx, np.arange(cols.size)[None, :]]
    return out


def cumsum_rows(a: np.ndarray) -> np.ndarray:
    """``np.cumsum(a, axis=0, dtype=float64)`` of a (T, N) array, row by row.

    Each row is one whole-row add onto the previous sum, the same additions in the same
    order as numpy's (so bit-identical), but faster than numpy's strided accumulate along
    axis 0 on a wide panel: about 2x at 8,784 x 256 and 4-7x at 8,784 x 2,000
    (``python benchmarks/claims.py``)."""
    if a.ndim != 2 or a.shape[1] < 256:  # narrow: numpy's own loop wins over one call per row
        return np.cumsum(a, axis=0, dtype=np.float64)
    out = np.empty(a.shape, dtype=np.float64)
    if a.shape[0]:
        out[0] = a[0]
        add = np.add
        for t in range(1, a.shape[0]):
            add(out[t - 1], a[t], out=out[t])
    return out


def _zero_nan(a: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(a)`` into a new array, with one pass when there is no infinity."""
    out = a.copy(order="K")  # keep the layout: later row sums depend on it
    np.copyto(out, 0.0, where=np.isnan(out))
    if np.isinf(out).any():
        return np.nan_to_num(a)
    return out


class LazySeries(dict):
    """Named series built on first use: a rule set that never reads ``high`` never pays for it."""

    def __init__(self, builders: dict):
        super().__init__()
        self._builders = builders

    def __missing__(self, key: str) -> np.ndarray:
        try:
            build = self._builders[key]
        except KeyError:
            raise KeyError(key) from None
        self[key] = value = build()
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._builders


def bars_per_day(timeframe: str) -> int:
    return max(1, 86_400_000 // timeframe_ms(timeframe))


def market_series(market: MarketData) -> LazySeries:
    """Market columns (T, N), forward-filled over gaps, plus derived and static columns.

    Each is computed the first time a rule (or the backtest) reads it."""
    t, n = market.n_bars, market.n_symbols
    static = lambda values, dtype=None: np.broadcast_to(np.asarray(values, dtype=dtype)[None, :], (t, n))  # noqa: E731
    s: LazySeries

    def volume():
        listed = ~np.isnan(s["close"])
        return np.where(s["available"], market.volume, np.where(listed, 0.0, np.nan))

    def vol24():
        day = bars_per_day(market.timeframe)
        csum = cumsum_rows(_zero_nan(s["volume_usd"]))
        out = np.empty_like(csum)
        out[:day] = csum[:day]
        np.subtract(csum[day:], csum[:-day], out=out[day:])
        np.copyto(out, np.nan, where=np.isnan(s["close"]))
        return out

    s = LazySeries({
        "open": lambda: ffill(market.open),
        "high": lambda: ffill(market.high),
        "low": lambda: ffill(market.low),
        "close": lambda: ffill(market.close),
        "volume": volume,
        "volume_usd": lambda: s["volume"] * s["close"],
        "volume_usd_24h": vol24,
        "spread_bps": lambda: ffill(market.spread_bps),
        "bars_listed": lambda: cumsum_rows(~np.isnan(s["close"])),
        "available": lambda: ~np.isnan(market.close),
        "theme": lambda: static([i.theme for i in market.info]),
        "symbol": lambda: static(list(market.symbols)),
        "min_notional": lambda: static([i.min_notional for i in market.info], np.float64),
    })
    return s


def index_mean_returns(c: np.ndarray) -> np.ndarray:
    """The index return of rows 1.. of ``c`` (the included products' forward-filled closes,
    laid out as ``close[:, include]`` lays them out): the mean return of the products that
    traded at both t-1 and t, 0 where none did. Each row's value depends on that row's two
    closes only (the row sum runs over the columns in order), so a block of bars or a chunk of
    them gives the whole run's rows (engine/cycle/chunks.py)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = c[1:] / c[:-1] - 1.0
        nan = np.isnan(r)
        cnt = r.shape[1] - nan.sum(axis=1)
        np.copyto(r, 0.0, where=nan)
        return np.where(cnt > 0, r.sum(axis=1) / np.maximum(cnt, 1), 0.0)


def index_series(market: MarketData, close_ffilled: np.ndarray, exclude_themes: tuple[str, ...]) -> LazySeries:
    """An equal-weight index of the included products, shaped (T, 1).

    The index return at t is the mean return of the products that traded at t-1 and t, so
    a listing or a gap neither jumps nor drops the index. ``volume_usd`` and ``breadth`` are
    built only when a regime rule reads them.
    """
    include = np.array([i.theme not in exclude_themes for i in market.info])
    some = bool(include.any())
    t = close_ffilled.shape[0]

    def included(a: np.ndarray) -> np.ndarray:
        # the same indexing as a whole-panel ``a[:, include]``: numpy lays the result out
        # column-major, and the row sums below depend on that layout (sequential, not pairwise)
        return a[:, include] if some else a

    def level():
        # blocks of bars: the returns of a block and their NaN-aware row means, exactly the
        # per-row sums np.nansum gives over the whole (T, N) returns, without (T, N) temporaries
        r_mean = np.zeros(t)
        step = max(1, (1 << 21) // max(int(include.sum()) if some else len(include), 1))
        for a in range(1, t, step):
            b = min(a + step, t)
            r_mean[a:b] = index_mean_returns(included(close_ffilled[a - 1:b]))
        return (100.0 * np.cumprod(1.0 + r_mean))[:, None]

    def vol_usd():
        return np.nansum(np.nan_to_num(market.volume[:, include] * close_ffilled[:, include]), axis=1)[:, None]

    def breadth():
        # share of products above their 50-bar mean (look-back only)
        from engine.rules.functions import FUNCTIONS
        c = included(close_ffilled)
        sma50 = FUNCTIONS["sma"].impl(c, 50)
        with np.errstate(invalid="ignore"):
            above = (c > sma50).sum(axis=1)
            counted = (~np.isnan(sma50)).sum(axis=1)
        return np.where(counted > 0, above / np.maximum(counted, 1), np.nan)[:, None]

    return LazySeries({"close": level, "volume_usd": vol_usd, "breadth": breadth})
