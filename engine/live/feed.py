"""Market data for the live loop: closed bars through the adapter into the state file, quotes.

The panel a cycle decides on starts at the session's first bar and grows by the bars that
closed since (all stored): features only look back, so row t of this panel equals row t of
a backtest over the same stored bars — what makes the shadow comparison exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.exchange.types import MarketInfo, Quote
from engine.live.store import StateStore
from engine.market.data import MarketData, SymbolInfo
from engine.market.products import UNDECLARED, Applied, ProductFacts, apply

MAX_PER_REQUEST = 300  # Coinbase serves at most 300 candles per request (ccxt's default limit)


@dataclass
class QuoteSnapshot:
    mid: np.ndarray  # (N,) NaN where no quote
    bid: np.ndarray
    ask: np.ndarray
    spread_bps: np.ndarray
    observed_at: np.ndarray  # (N,) adapter clock seconds (-inf where no quote)

    def age_s(self, now_s: float) -> np.ndarray:
        return np.maximum(now_s - self.observed_at, 0.0)


def symbol_infos(markets: dict[str, MarketInfo], symbols: list[str], facts: ProductFacts) -> Applied:
    """The traded products' facts: the exchange's increments and minimum notional, combined with
    the product table as a backtest combines it (themes from the table; the stricter increment)."""
    stated = tuple(SymbolInfo(s, UNDECLARED, markets[s].price_increment, markets[s].size_increment,
                              max(markets[s].min_notional, 0.0)) for s in symbols)
    return apply(facts, stated, stated=True)


def fetch_bars(adapter, symbols: list[str], timeframe: str, tf_ms: int, since_ms: int, until_close_ms: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Closed bars opening in [since_ms, until_close_ms - tf] on the regular grid: times (k,), (k, 5, N)."""
    last_open = until_close_ms - tf_ms
    if last_open < since_ms:
        return np.empty(0, dtype=np.int64), np.empty((0, 5, len(symbols)))
    times = np.arange(since_ms, last_open + 1, tf_ms, dtype=np.int64)
    out = np.full((len(times), 5, len(symbols)), np.nan)
    for j, s in enumerate(symbols):  # Coinbase serves candles per product: one request per symbol
        start = since_ms
        while start <= last_open:
            n = min(MAX_PER_REQUEST, (last_open - start) // tf_ms + 1)
            arr = adapter.ohlcv(s, timeframe, start, int(n))
            if len(arr):
                k = ((arr[:, 0].astype(np.int64) - since_ms) // tf_ms)
                ok = (k >= 0) & (k < len(times)) & (arr[:, 0].astype(np.int64) % tf_ms == since_ms % tf_ms)
                out[k[ok], :, j] = arr[ok, 1:6]
            start += n * tf_ms
    return times, out


def quotes(adapter, symbols: list[str]) -> QuoteSnapshot:
    got: dict[str, Quote] = adapter.best_bid_ask(symbols)
    n = len(symbols)
    bid, ask, seen = np.full(n, np.nan), np.full(n, np.nan), np.full(n, -np.inf)
    for j, s in enumerate(symbols):
        q = got.get(s)
        if q is not None:
            bid[j], ask[j], seen[j] = q.bid, q.ask, q.observed_at
    mid = 0.5 * (bid + ask)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = (ask - bid) / mid * 1e4
    return QuoteSnapshot(mid, bid, ask, spread, seen)


def store_bars(store: StateStore, db, times: np.ndarray, ohlcv: np.ndarray, spread_bps: np.ndarray) -> None:
    """Append bars with the spread we observed when we fetched them (candles carry none)."""
    if not len(times):
        return
    spread = np.broadcast_to(np.where(np.isnan(ohlcv[:, 3, :]), np.nan, spread_bps[None, :]), (len(times), len(spread_bps)))
    rows = np.concatenate([ohlcv, spread[:, None, :]], axis=1)
    store.append_bars(db, times, rows)


def panel(store: StateStore, timeframe: str, symbols: list[str], info: tuple[SymbolInfo, ...], source: str) -> MarketData:
    times, data = store.bars(len(symbols))
    cols = [np.ascontiguousarray(data[:, k, :]) for k in range(6)]
    return MarketData(timeframe, times, tuple(symbols), *cols, info=info, source=source)
