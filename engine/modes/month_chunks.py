"""Where a chunked backtest's months come from, and when a backtest is chunked.

``backtest.chunked`` (conf/backtest/default.yaml): ``false`` runs over the whole market in
memory; ``true`` a chunk of rows at a time (``chunk_rows``, engine/backtest/chunked.py); ``auto`` (the
default) is chunked exactly when the market is the local store (``data=store``) and the
in-memory run would not fit its memory budget (``data.max_memory_gib``, else what the machine
has free: engine/market/memory.py), the runs that would otherwise be refused. Either way the
results are the same, byte for byte.

The store is read month by month (``MarketStore.iter_months``: a first pass learns the grid, the
symbols and their info, then a thread reads a month of files at a time, ahead of the chunks it
builds); the market is never held whole. Any other source is read whole, as always, and cut into
the same chunks: only the features and rule masks are then chunked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from engine.market.data import DataHash, MarketData
from engine.modes.setup import data_path, market_for, product_info, with_default_spread


@dataclass
class MonthSource:
    """A market as its frame (times, symbols, info: engine/backtest/chunked.py ``frame_of``) and
    its chunks of ``rows`` rows; ``data_hash()`` is the whole market's once every chunk was read."""

    frame: MarketData
    months: Iterator[tuple[int, MarketData]]
    rows: int
    _hash: DataHash | None = None

    def data_hash(self) -> str:
        return self.frame.data_hash() if self._hash is None else self._hash.hexdigest()


def _market_store(cfg: Mapping[str, Any]):
    from engine.market.store import MarketStore

    return MarketStore(data_path(cfg["data"]))


def _symbols(cfg: Mapping[str, Any]) -> list[str] | None:
    symbols = cfg["data"].get("symbols")
    return list(symbols) if symbols else None


# Symbol-bars a chunk holds: a chunk's (rows, symbols) panels are 16 MiB each (a week of 1-minute
# bars for 200 products). Every chunk but the last has the same shape, so the arrays one chunk
# frees are the ones the next allocates, in place (engine/cycle/memory.py): calendar months (28
# to 31 days) left holes the next month's arrays did not fit.
CHUNK_CELLS = 1 << 21


def chunk_rows(n_symbols: int) -> int:
    """The rows of each chunk of a run over ``n_symbols`` symbols."""
    return max(1, CHUNK_CELLS // max(n_symbols, 1))


def use_chunks(cfg: Mapping[str, Any]) -> bool:
    """Whether this backtest runs chunk by chunk (see the module doc). ``auto`` sizes the
    in-memory run from the store's month files' names (an upper bound, no file read): a run at
    the edge of the budget may go chunk by chunk, with the same results."""
    from engine.market.memory import need

    value = (cfg.get("backtest") or {}).get("chunked", "auto")  # auto, true or false: the schema checks it
    if value != "auto":
        return bool(value)
    data = cfg.get("data") or {}
    if data.get("source") != "store":
        return False
    timeframe = data.get("timeframe", "1h")
    bars, symbols = _market_store(cfg).panel_bound(timeframe, _symbols(cfg))
    return not need(bars, symbols, timeframe, data.get("max_memory_gib")).fits


def month_source(cfg: Mapping[str, Any]) -> MonthSource:
    """The run's market chunk by chunk."""
    from engine.backtest.chunked import frame_of

    data = cfg["data"]
    if data.get("source") != "store":
        market = market_for(cfg)
        rows = chunk_rows(market.n_symbols)
        return MonthSource(market, _cut(market, rows), rows)
    store, timeframe, symbols = _market_store(cfg), data.get("timeframe", "1h"), _symbols(cfg)
    # sized by the symbols asked for (the plan keeps those with a bar in range: as many or fewer);
    # the plan's first pass reads every month file of the run
    rows = chunk_rows(len(store.wanted(timeframe, symbols)))
    months = store.iter_months(timeframe, symbols, rows=rows)
    source = f"store:{data_path(data)}"
    info = product_info(cfg, months.info, source)
    frame = frame_of(months.timeframe, months.times, months.symbols, info, source)
    digest = DataHash(frame.timeframe, frame.times, frame.symbols, background=True)

    def read() -> Iterator[tuple[int, MarketData]]:
        for row0, m in months:
            m = with_default_spread(m, data)
            m.info = info
            digest.add(m)
            yield row0, m
            del m  # not held while the next chunk is read

    return MonthSource(frame, read(), rows, digest)


def _cut(market: MarketData, rows: int) -> Iterator[tuple[int, MarketData]]:
    """A market held whole, as consecutive chunks of ``rows`` rows."""
    for a in range(0, market.n_bars, rows):
        chunk = market.select(start=a, stop=min(a + rows, market.n_bars))
        chunk.info = market.info
        yield a, chunk
