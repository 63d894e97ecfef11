"""The market data every part of rulebook reads: a dense (time x symbol) panel.

Arrays are shaped (T, N): row t is the bar that *opened* at ``times[t]`` and closed at
``times[t] + timeframe``. A bar that does not exist (before a listing, a gap, a halt) is
NaN in every price column and in volume. Nothing here knows about rules, modes or
exchanges.
"""
from __future__ import annotations

import functools

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

TIMEFRAME_MS = {
    "1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
    "1d": 86_400_000,
}

PRICE_COLUMNS = ("open", "high", "low", "close")


def timeframe_ms(timeframe: str) -> int:
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(
            f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAME_MS)}"
        ) from None


@dataclass(frozen=True)
class SymbolInfo:
    """Static facts about one product (ccxt unified symbol, e.g. ``BTC/USDC``)."""

    symbol: str
    theme: str = "other"
    price_increment: float = 0.01
    size_increment: float = 1e-8
    min_notional: float = 1.0
    beta: float = 1.0
    volatility: float = 0.0  # annualised, as generated; 0 when unknown

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1] if "/" in self.symbol else ""


@dataclass
class MarketData:
    """OHLCV panel for N symbols over T regular bars.

    ``times`` are epoch milliseconds (UTC) of bar opens, strictly increasing with a fixed
    step of ``timeframe``. ``volume`` is in base units. ``spread_bps`` is the typical
    quoted bid/ask spread over the bar (NaN where unknown: consumers use their default).
    """

    timeframe: str
    times: np.ndarray  # (T,) int64 epoch ms
    symbols: tuple[str, ...]
    open: np.ndarray  # (T, N) float64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    spread_bps: np.ndarray
    info: tuple[SymbolInfo, ...]
    source: str = "unknown"
    # Optional ground truth from the sample generator (regime index per bar); never read
    # by the engine's decisions, only by tests and reports.
    true_regime: np.ndarray | None = None
    true_regime_labels: tuple[str, ...] = ()
    _hash: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        t, n = len(self.times), len(self.symbols)
        for name in ("open", "high", "low", "close", "volume", "spread_bps"):
            arr = getattr(self, name)
            if arr.shape != (t, n):
                raise ValueError(f"MarketData.{name} has shape {arr.shape}, expected {(t, n)}")
        if len(self.info) != n:
            raise ValueError("MarketData.info must have one SymbolInfo per symbol")

    @property
    def n_bars(self) -> int:
        return len(self.times)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def themes(self) -> np.ndarray:
        return np.array([i.theme for i in self.info], dtype=object)

    @property
    def available(self) -> np.ndarray:
        """(T, N) bool: a bar exists (tradable) at t."""
        return ~np.isnan(self.close)

    def index_of(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def data_hash(self) -> str:
        """sha256 over times, symbols and every column: identifies the exact data (:class:`DataHash`)."""
        if self._hash is None:
            h = DataHash(self.timeframe, self.times, self.symbols)
            h.add(self)
            self._hash = h.hexdigest()
        return self._hash

    def select(self, symbols: list[str] | None = None, start: int = 0, stop: int | None = None) -> "MarketData":
        """A sub-panel by symbol list and bar range (row indices)."""
        cols = list(range(self.n_symbols)) if symbols is None else [self.index_of(s) for s in symbols]
        rows = slice(start, stop)
        return MarketData(
            timeframe=self.timeframe,
            times=self.times[rows].copy(),
            symbols=tuple(self.symbols[c] for c in cols),
            open=self.open[rows][:, cols].copy(),
            high=self.high[rows][:, cols].copy(),
            low=self.low[rows][:, cols].copy(),
            close=self.close[rows][:, cols].copy(),
            volume=self.volume[rows][:, cols].copy(),
            spread_bps=self.spread_bps[rows][:, cols].copy(),
            info=tuple(self.info[c] for c in cols),
            source=self.source,
            true_regime=None if self.true_regime is None else self.true_regime[rows].copy(),
            true_regime_labels=self.true_regime_labels,
        )


PANEL_COLUMNS = ("open", "high", "low", "close", "volume", "spread_bps")


class DataHash:
    """A market's data hash, fed the panel in consecutive row chunks: the timeframe, every bar
    time and the symbols, then the rows in time order, each row's symbols with their six values
    (``PANEL_COLUMNS``) side by side. Row-major, so the digest is the same however the rows are
    chunked: a chunked run and a run over the whole panel in memory name the same data.
    (Version 2: version 1 hashed column after column, which only a whole panel can feed.)

    ``background``: each ``add`` is hashed by a thread, in order, while the caller goes on
    (hashlib and numpy's copies release the GIL: on a second core the hash costs a chunked run
    almost nothing); ``hexdigest`` waits for them. The chunks must not change meanwhile."""

    BLOCK = 4096  # rows stacked at a time: the hash never copies a whole panel

    def __init__(self, timeframe: str, times: np.ndarray, symbols: tuple[str, ...], background: bool = False):
        self._h = hashlib.sha256()
        self._h.update(b"rulebook-data-2\n")
        self._h.update(timeframe.encode())
        self._h.update(np.ascontiguousarray(times, dtype=np.int64).tobytes())
        self._h.update("\n".join(symbols).encode())
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rulebook-data-hash") if background else None
        self._pending: list[Future] = []

    def add(self, m: "MarketData") -> None:
        if self._pool is None:
            return self._add(m)
        for f in [f for f in self._pending if f.done()]:
            f.result()  # a chunk the thread failed to hash: its error, here
            self._pending.remove(f)
        self._pending.append(self._pool.submit(self._add, m))

    def _add(self, m: "MarketData") -> None:
        for a in range(0, m.n_bars, self.BLOCK):
            rows = slice(a, a + self.BLOCK)
            block = np.stack([np.asarray(getattr(m, c)[rows], dtype=np.float64) for c in PANEL_COLUMNS], axis=-1)
            self._h.update(np.ascontiguousarray(block))  # its buffer: the same bytes, no copy

    def hexdigest(self) -> str:
        if self._pool is not None:
            self._pool.shutdown()  # after the chunks given: in order, each once
            for f in self._pending:
                f.result()
            self._pending = []
        return self._h.hexdigest()


@functools.lru_cache(maxsize=1 << 16)
def _iso_utc(ms: int) -> str:
    return np.datetime_as_string(np.datetime64(ms, "ms"), unit="s") + "Z"


def iso_utc(ms: int) -> str:
    """Epoch ms -> ``YYYY-MM-DDTHH:MM:SSZ``. Cached: numpy's formatting costs ~10 us a call, and
    a grid's points format the same bars' times for their fills again and again."""
    return _iso_utc(int(ms))


def iso_utc_all(times: np.ndarray) -> list[str]:
    """``[iso_utc(t) for t in times]`` in one numpy call (a year of minute bars: 0.1 s, not 5 s)."""
    text = np.datetime_as_string(np.asarray(times, dtype=np.int64).astype("datetime64[ms]"), unit="s")
    return [t + "Z" for t in text.tolist()]
