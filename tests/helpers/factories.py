"""Named factories the whole suite uses: quotes, candle series, small markets, scenarios."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.market.data import MarketData, SymbolInfo, timeframe_ms

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class Quote:
    bid: float
    ask: float
    age_seconds: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2

    @property
    def spread_bps(self) -> float:
        return (self.ask - self.bid) / self.mid * 1e4

    @classmethod
    def create(cls, mid: float = 100.0, spread_bps: float = 2.0, age_seconds: float = 0.0) -> "Quote":
        half = mid * spread_bps / 2e4
        return cls(mid - half, mid + half, age_seconds)


def create_tight_market() -> Quote:
    return Quote.create(mid=50_000.0, spread_bps=1.0, age_seconds=0.5)


def create_wide_market() -> Quote:
    return Quote.create(mid=0.25, spread_bps=150.0, age_seconds=0.5)


def create_stale_quote() -> Quote:
    return Quote.create(mid=100.0, spread_bps=2.0, age_seconds=3_600.0)


class OHLCV:
    @staticmethod
    def create_series(count: int = 100, start_price: float = 100.0, trend_pct: float = 0.0,
                      noise_pct: float = 0.0, seed: int = 0, volume: float = 1_000.0) -> dict[str, np.ndarray]:
        """Bars whose close moves ``trend_pct`` % per bar (plus seeded noise); each open is
        the previous close, high/low bracket open and close."""
        rng = np.random.default_rng(seed)
        steps = 1 + trend_pct / 100 + rng.normal(0, noise_pct / 100, count) * (noise_pct > 0)
        close = start_price * np.cumprod(steps)
        return OHLCV.from_closes(close, volume=volume)

    @staticmethod
    def from_closes(closes, volume: float = 1_000.0) -> dict[str, np.ndarray]:
        close = np.asarray(closes, dtype=np.float64)
        open_ = np.concatenate([[close[0]], close[:-1]])
        return {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": np.full(len(close), float(volume)),
        }


def make_market(series: dict[str, dict[str, np.ndarray]], timeframe: str = "1h", spread_bps: float = 2.0,
                themes: dict[str, str] | None = None, t0_ms: int = T0_MS) -> MarketData:
    """A MarketData from per-symbol OHLCV dicts of equal length (NaN marks missing bars)."""
    symbols = tuple(sorted(series))
    t = len(next(iter(series.values()))["close"])
    cols = {k: np.column_stack([series[s][k] for s in symbols]) for k in ("open", "high", "low", "close", "volume")}
    themes = themes or {}
    info = tuple(SymbolInfo(s, themes.get(s, "L1"), 0.0001, 1e-8, 1.0) for s in symbols)
    return MarketData(
        timeframe=timeframe, times=t0_ms + np.arange(t, dtype=np.int64) * timeframe_ms(timeframe),
        symbols=symbols, spread_bps=np.where(np.isnan(cols["close"]), np.nan, spread_bps), info=info,
        source="test", **cols,
    )


def write_csv_dir(path: Path, market: MarketData) -> Path:
    """One ``BASE_QUOTE-<tf>.csv`` per symbol, as the csv loader expects."""
    path.mkdir(parents=True, exist_ok=True)
    for j, s in enumerate(market.symbols):
        rows = ["date,open,high,low,close,volume"]
        for i, ms in enumerate(market.times):
            if np.isnan(market.close[i, j]):
                continue
            iso = np.datetime_as_string(np.datetime64(int(ms), "ms"), unit="s") + "Z"
            rows.append(f"{iso},{float(market.open[i, j])!r},{float(market.high[i, j])!r},{float(market.low[i, j])!r},"
                        f"{float(market.close[i, j])!r},{float(market.volume[i, j])!r}")
        (path / f"{s.replace('/', '_')}-{market.timeframe}.csv").write_text("\n".join(rows) + "\n")
    return path
