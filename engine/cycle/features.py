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
        csum = np.cumsum(np.nan_to_num(s["volume_usd"]), axis=0)
        out = csum.copy()
        out[day:] -= csum[:-day]
        out[np.isnan(s["close"])] = np.nan
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
        "bars_listed": lambda: np.cumsum(~np.isnan(s["close"]), axis=0, dtype=np.float64),
        "available": lambda: ~np.isnan(market.close),
        "theme": lambda: static([i.theme for i in market.info]),
        "symbol": lambda: static(list(market.symbols)),
        "min_notional": lambda: static([i.min_notional for i in market.info], np.float64),
    })
    return s


def index_series(market: MarketData, close_ffilled: np.ndarray, exclude_themes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """An equal-weight index of the included products, shaped (T, 1).

    The index return at t is the mean return of the products that traded at t-1 and t, so
    a listing or a gap neither jumps nor drops the index.
    """
    include = np.array([i.theme not in exclude_themes for i in market.info])
    c = close_ffilled[:, include] if include.any() else close_ffilled
    with np.errstate(divide="ignore", invalid="ignore"):
        r = c[1:] / c[:-1] - 1.0
    r_mean = np.zeros(c.shape[0])
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(r)
        cnt = valid.sum(axis=1)
        r_mean[1:] = np.where(cnt > 0, np.nansum(r, axis=1) / np.maximum(cnt, 1), 0.0)
    level = 100.0 * np.cumprod(1.0 + r_mean)
    vol_usd = np.nansum(np.nan_to_num(market.volume[:, include] * close_ffilled[:, include]), axis=1)
    # breadth: share of products above their 50-bar mean (look-back only)
    from engine.rules.functions import FUNCTIONS
    sma50 = FUNCTIONS["sma"].impl(c, 50)
    with np.errstate(invalid="ignore"):
        above = (c > sma50).sum(axis=1)
        counted = (~np.isnan(sma50)).sum(axis=1)
    breadth = np.where(counted > 0, above / np.maximum(counted, 1), np.nan)
    return {"close": level[:, None], "volume_usd": vol_usd[:, None], "breadth": breadth[:, None]}
