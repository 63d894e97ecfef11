"""The named series every rule can read, built once from a MarketData panel."""
from __future__ import annotations

import numpy as np

from engine.market.data import MarketData, timeframe_ms


def ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN down each column (a leading NaN prefix stays NaN)."""
    t = a.shape[0]
    idx = np.where(np.isnan(a), 0, np.arange(t)[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = a[idx, np.arange(a.shape[1])[None, :]]
    return out


def bars_per_day(timeframe: str) -> int:
    return max(1, 86_400_000 // timeframe_ms(timeframe))


def market_series(market: MarketData) -> dict[str, np.ndarray]:
    """Market columns (T, N), forward-filled over gaps, plus derived and static columns."""
    t, n = market.n_bars, market.n_symbols
    available = ~np.isnan(market.close)
    close = ffill(market.close)
    listed = ~np.isnan(close)
    volume = np.where(available, market.volume, np.where(listed, 0.0, np.nan))
    volume_usd = volume * close
    day = bars_per_day(market.timeframe)
    csum = np.nancumsum(np.nan_to_num(volume_usd), axis=0)
    vol24 = csum.copy()
    vol24[day:] -= csum[:-day]
    vol24 = np.where(listed, vol24, np.nan)
    bars_listed = np.cumsum(listed, axis=0).astype(np.float64)
    static = lambda values, dtype=None: np.broadcast_to(np.asarray(values, dtype=dtype)[None, :], (t, n))
    return {
        "open": ffill(market.open),
        "high": ffill(market.high),
        "low": ffill(market.low),
        "close": close,
        "volume": volume,
        "volume_usd": volume_usd,
        "volume_usd_24h": vol24,
        "spread_bps": ffill(market.spread_bps),
        "bars_listed": bars_listed,
        "available": available,
        "theme": static([i.theme for i in market.info]),
        "symbol": static(list(market.symbols)),
        "min_notional": static([i.min_notional for i in market.info], np.float64),
    }


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
