"""Download OHLCV through ccxt into CSV files (``data=csv``) or the Parquet market store (``data=store``).

    python -m engine.market.download --exchange coinbase --symbols BTC/USDC,ETH/USDC \\
        --timeframe 1h --since 2024-01-01 --until 2024-07-01 --out data/coinbase
    python -m engine.market.download ... --store data/store     # only the ranges not fetched yet

The store (engine/market/store.py) keeps one Parquet file per symbol and month and the ranges
already fetched, so a second download asks the exchange for nothing it has answered before.

One ``BASE_QUOTE-<timeframe>.csv`` per symbol (``date,open,high,low,close,volume``, ISO-8601
UTC dates). Requests are paged (``--page`` bars each, ccxt's rate limiter on); an existing
file is extended, bars downloaded again replace the stored ones. Every symbol's bars are
validated (sorted unique times on the grid, positive prices, high/low bracketing open and
close) before anything is written, so the store only ever holds data the loaders accept.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.market.data import TIMEFRAME_MS, iso_utc
from engine.market.loaders import read_csv_file
from engine.market.validate import Bars, DataError, validate_bars

HEADER = "date,open,high,low,close,volume"


@dataclass(frozen=True)
class Downloaded:
    symbol: str
    path: Path
    bars: int  # bars in the file after the download
    new: int  # bars this download fetched


def fetch_range(exchange, symbol: str, timeframe: str, since_ms: int, until_ms: int, page: int = 300) -> np.ndarray:
    """Rows ``[ms, open, high, low, close, volume]`` with ``since_ms <= ms < until_ms``, sorted, unique."""
    step = TIMEFRAME_MS[timeframe]
    rows: dict[int, list[float]] = {}
    t = since_ms
    while t < until_ms:
        end = min(t + page * step, until_ms)
        batch = exchange.fetch_ohlcv(symbol, timeframe, since=t, limit=page, params={"until": end})
        for r in batch or []:
            ms = int(r[0])
            if since_ms <= ms < until_ms:
                rows[ms] = [float(x) if x is not None else np.nan for x in r[1:6]]
        t = end  # a page without bars (a halt, before listing) is skipped, not retried forever
    if not rows:
        return np.empty((0, 6))
    keys = sorted(rows)
    return np.array([[k, *rows[k]] for k in keys], dtype=np.float64)


def _bars(symbol: str, file: str, rows: np.ndarray) -> Bars:
    return Bars(symbol, file, rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4],
                rows[:, 5], header_lines=1)


def store_path(folder: Path, symbol: str, timeframe: str) -> Path:
    return Path(folder) / f"{symbol.replace('/', '_')}-{timeframe}.csv"


def write_csv(path: Path, rows: np.ndarray) -> None:
    lines = [HEADER] + [f"{iso_utc(int(r[0]))},{r[1]!r},{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r}" for r in rows.tolist()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def download(exchange, symbols: list[str], timeframe: str, since_ms: int, until_ms: int, folder: Path | str,
             page: int = 300) -> list[Downloaded]:
    if timeframe not in TIMEFRAME_MS:
        raise DataError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAME_MS)}")
    if until_ms <= since_ms:
        raise DataError(f"--until ({iso_utc(until_ms)}) is not after --since ({iso_utc(since_ms)})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for symbol in symbols:
        path = store_path(folder, symbol, timeframe)
        new = fetch_range(exchange, symbol, timeframe, since_ms, until_ms, page)
        merged = new
        if path.exists():
            old = read_csv_file(path, symbol)
            old_rows = np.column_stack([old.times.astype(np.float64), old.open, old.high, old.low, old.close, old.volume])
            keep = ~np.isin(old_rows[:, 0], new[:, 0]) if len(new) else np.ones(len(old_rows), dtype=bool)
            merged = np.vstack([old_rows[keep], new]) if len(new) else old_rows
            merged = merged[np.argsort(merged[:, 0], kind="stable")]
        if len(merged) == 0:
            raise DataError(f"{exchange.id} returned no {timeframe} bars for {symbol} between "
                            f"{iso_utc(since_ms)} and {iso_utc(until_ms)}", file=path.name)
        validate_bars(_bars(symbol, f"{exchange.id} {symbol} (for {path.name})", merged), timeframe)
        write_csv(path, merged)
        out.append(Downloaded(symbol, path, len(merged), len(new)))
    return out


def download_to_store(exchange, symbols: list[str], timeframe: str, since_ms: int, until_ms: int, store,
                      page: int = 300, now_ms: int | None = None) -> list[Downloaded]:
    """Fetch only the ranges the store has not fetched yet, and merge them in (validated,
    month files replaced atomically). The bar still open at ``now_ms`` is never recorded as
    fetched: the next download asks for it again once it has closed."""
    import time

    if timeframe not in TIMEFRAME_MS:
        raise DataError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAME_MS)}")
    if until_ms <= since_ms:
        raise DataError(f"--until ({iso_utc(until_ms)}) is not after --since ({iso_utc(since_ms)})")
    step = TIMEFRAME_MS[timeframe]
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    until_ms = min(until_ms, now_ms // step * step)  # bars that have closed by now
    out = []
    for symbol in symbols:
        fetched = 0
        for a, b in store.missing(symbol, timeframe, since_ms, until_ms):
            rows = fetch_range(exchange, symbol, timeframe, a, b, page)
            store.write(symbol, timeframe, rows, fetched=(a, b))
            fetched += len(rows)
        total = store.count(symbol, timeframe)
        if total == 0:
            raise DataError(f"{exchange.id} returned no {timeframe} bars for {symbol} between "
                            f"{iso_utc(since_ms)} and {iso_utc(until_ms)}")
        out.append(Downloaded(symbol, store.root / timeframe / symbol.replace("/", "_"), total, fetched))
    return out


def _ms(text: str, flag: str) -> int:
    try:
        return int(np.datetime64(text.replace("Z", ""), "ms").astype(np.int64))
    except ValueError:
        raise DataError(f"{flag} is {text!r}; expected an ISO date such as 2024-01-01") from None


def main(argv: list[str] | None = None) -> int:
    import ccxt

    ap = argparse.ArgumentParser(prog="python -m engine.market.download", description=__doc__.split("\n\n")[0])
    ap.add_argument("--exchange", default="coinbase", help="a ccxt exchange id")
    ap.add_argument("--symbols", required=True, help="comma-separated ccxt symbols, e.g. BTC/USDC,ETH/USDC")
    ap.add_argument("--timeframe", default="1h")
    ap.add_argument("--since", required=True)
    ap.add_argument("--until", required=True)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="folder of CSV files (data.path for data=csv)")
    where.add_argument("--store", help="a Parquet market store (data=store data.path=DIR): fetches only "
                                       "the ranges it does not hold yet")
    ap.add_argument("--page", type=int, default=300, help="bars per request")
    args = ap.parse_args(argv)
    try:
        cls = getattr(ccxt, args.exchange, None)
        if cls is None:
            raise DataError(f"--exchange {args.exchange!r} is not a ccxt exchange id")
        ex = cls({"enableRateLimit": True})
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
        since, until = _ms(args.since, "--since"), _ms(args.until, "--until")
        if args.store:
            from engine.market.store import MarketStore

            done = download_to_store(ex, symbols, args.timeframe, since, until, MarketStore(args.store), args.page)
        else:
            done = download(ex, symbols, args.timeframe, since, until, args.out, args.page)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for d in done:
        print(f"{d.symbol}: {d.new} bars fetched, {d.bars} in {d.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
