"""The local market store: OHLCV in Parquet files, one per symbol, timeframe and month.

    <root>/<timeframe>/<BASE_QUOTE>/<YYYY-MM>.parquet     columns: time (int64 ms), open, high, low, close, volume
    <root>/<timeframe>/<BASE_QUOTE>/coverage.json         the ranges already fetched: [[since_ms, until_ms], ...]

Why these choices: Parquet through pyarrow (already a dependency) is columnar and compressed
(a month of 1-minute bars is ~1 MB instead of ~3 MB of CSV) and reads one column set without
parsing; a file per month bounds what an update rewrites (only the months it touches) and what
a windowed read opens. Coverage is kept apart from the bars because an exchange returns no
bar for an hour without trades: "no bar stored" must not mean "fetch again".

Every write is validated with the loaders' own checks on the merged month (sorted unique times
on the grid, finite positive prices, high/low bracketing open and close) before anything is
written, and each file is replaced atomically (write to a temp file, then rename), so a crash
leaves the old month or the new one, never half of either. Coverage is written after the bars:
a crash between the two re-fetches a range, it never claims bars that are not there.

    python -m engine.market.store summary DIR [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.market import scan_cache
from engine.market.data import TIMEFRAME_MS, MarketData, iso_utc
from engine.market.validate import Bars, DataError, find_gaps, validate_bars

_COLUMNS = ("open", "high", "low", "close", "volume")
_SCHEMA = pa.schema([("time", pa.int64())] + [(c, pa.float64()) for c in _COLUMNS])
COVERAGE = "coverage.json"
# How month files are written: zstd over byte-stream-split prices and delta-coded times reads in
# about half the time of zstd over dictionary pages (a price column is mostly distinct values: the
# dictionary overflows and falls back to plain pages anyway), at the same size. Any Parquet file
# of the schema reads, so files written before stay readable.
_WRITE = dict(compression="zstd", use_dictionary=False,
              column_encoding={"time": "DELTA_BINARY_PACKED", **{c: "BYTE_STREAM_SPLIT" for c in _COLUMNS}})


def _month(ms: np.ndarray) -> np.ndarray:
    """'YYYY-MM' of each epoch-ms time."""
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="M")


def _month_bounds(month: str) -> tuple[int, int]:
    start = np.datetime64(month, "M")
    return (int(start.astype("datetime64[ms]").astype(np.int64)),
            int((start + 1).astype("datetime64[ms]").astype(np.int64)))


def _in_range(rows: np.ndarray, since_ms: int | None, until_ms: int | None) -> np.ndarray:
    if since_ms is not None:
        rows = rows[rows[:, 0] >= since_ms]
    if until_ms is not None:
        rows = rows[rows[:, 0] < until_ms]
    return rows


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open [a, b) ranges, sorted and with overlapping or touching ones joined."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in ranges if b > a):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def subtract_ranges(want: tuple[int, int], have: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``want`` that no range of ``have`` covers."""
    a, b = want
    out = []
    for h0, h1 in merge_ranges(have):
        if h1 <= a or h0 >= b:
            continue
        if h0 > a:
            out.append((a, h0))
        a = max(a, h1)
    if a < b:
        out.append((a, b))
    return out


@dataclass(frozen=True)
class SeriesSummary:
    symbol: str
    timeframe: str
    bars: int
    first: str | None
    last: str | None
    months: int
    gaps: int
    missing_bars: int
    fetched: list[tuple[str, str]]  # coverage ranges, ISO


class MarketStore:
    """One folder of Parquet month files; see the module docstring for the layout."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # ---- layout ----
    def _dir(self, symbol: str, timeframe: str) -> Path:
        if timeframe not in TIMEFRAME_MS:
            raise DataError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAME_MS)}")
        return self.root / timeframe / symbol.replace("/", "_")

    def symbols(self, timeframe: str) -> list[str]:
        folder = self.root / timeframe
        if not folder.is_dir():
            return []
        return sorted(d.name.replace("_", "/", 1) for d in folder.iterdir() if d.is_dir() and any(d.glob("*.parquet")))

    def timeframes(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [tf for tf in TIMEFRAME_MS if self.symbols(tf)]

    # ---- coverage: what has been fetched, bars or not ----
    def coverage(self, symbol: str, timeframe: str) -> list[tuple[int, int]]:
        path = self._dir(symbol, timeframe) / COVERAGE
        if not path.is_file():
            return []
        try:
            return merge_ranges([tuple(r) for r in json.loads(path.read_text(encoding="utf-8"))])
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}: not a coverage file ({exc}); delete it to fetch that symbol again",
                            file=str(path)) from None

    def missing(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> list[tuple[int, int]]:
        """Ranges of [since, until) not fetched yet: all an incremental download asks for."""
        return subtract_ranges((since_ms, until_ms), self.coverage(symbol, timeframe))

    def _add_coverage(self, symbol: str, timeframe: str, ranges: list[tuple[int, int]]) -> None:
        merged = merge_ranges(self.coverage(symbol, timeframe) + list(ranges))
        path = self._dir(symbol, timeframe) / COVERAGE
        _atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(json.dumps(merged), encoding="utf-8"))

    # ---- bars ----
    def _read_columns(self, path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
        """(times int64, [open, high, low, close, volume] float64) of one month file: every read
        of the store's bars comes here."""
        try:
            t = pq.read_table(path, schema=_SCHEMA)
        except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
            raise DataError(f"{path}: not a readable store file ({exc})", file=str(path)) from None
        # no nulls (the schema's columns are written whole): each to_numpy is the column's own buffer
        return t.column("time").to_numpy(), [t.column(c).to_numpy() for c in _COLUMNS]

    def _read_month(self, path: Path) -> np.ndarray:
        times, cols = self._read_columns(path)
        return np.column_stack([times.astype(np.float64)] + cols) if times.size else np.empty((0, 6))

    def write(self, symbol: str, timeframe: str, rows: np.ndarray, fetched: tuple[int, int] | None = None) -> int:
        """Merge ``rows`` (``[ms, open, high, low, close, volume]``) into the store; stored bars at
        the same times are replaced. ``fetched``: the range these rows answer (recorded as covered,
        bars or not). Returns the number of bars stored for the symbol afterwards."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        folder = self._dir(symbol, timeframe)
        months = _month(rows[:, 0].astype(np.int64)) if len(rows) else np.array([], dtype="<U7")
        staged: list[tuple[Path, np.ndarray]] = []
        for month in np.unique(months):
            path = folder / f"{month}.parquet"
            new = rows[months == month]
            old = self._read_month(path) if path.is_file() else np.empty((0, 6))
            keep = ~np.isin(old[:, 0], new[:, 0])
            merged = np.vstack([old[keep], new])
            merged = merged[np.argsort(merged[:, 0], kind="stable")]
            bars = Bars(symbol, f"{symbol} {timeframe} {month} (for {path})", merged[:, 0].astype(np.int64),
                        *(merged[:, i] for i in range(1, 6)), header_lines=0)
            validate_bars(bars, timeframe)  # every month is checked before any is written
            staged.append((path, merged))
        if staged:  # a kept first pass of the old months must not outlive them (engine/market/scan_cache.py)
            scan_cache.drop(folder)
        for path, merged in staged:
            table = pa.table([pa.array(merged[:, 0].astype(np.int64))] + [pa.array(merged[:, i]) for i in range(1, 6)],
                             schema=_SCHEMA)
            _atomic_write_bytes(path, lambda tmp, table=table: pq.write_table(table, tmp, **_WRITE))
        if fetched is not None:
            self._add_coverage(symbol, timeframe, [fetched])
        return self.count(symbol, timeframe)

    def count(self, symbol: str, timeframe: str) -> int:
        folder = self._dir(symbol, timeframe)
        return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet")) if folder.is_dir() else 0

    def read(self, symbol: str, timeframe: str, since_ms: int | None = None, until_ms: int | None = None) -> Bars:
        """The symbol's bars with ``since <= time < until``, reading only the months that overlap."""
        folder = self._dir(symbol, timeframe)
        parts = [self._read_month(p) for p in self.month_files(symbol, timeframe, since_ms, until_ms)]
        rows = _in_range(np.vstack(parts) if parts else np.empty((0, 6)), since_ms, until_ms)
        return Bars(symbol, f"{folder.relative_to(self.root)}", rows[:, 0].astype(np.int64),
                    *(np.ascontiguousarray(rows[:, i]) for i in range(1, 6)), header_lines=0)

    def load(self, timeframe: str, symbols: list[str] | None = None, since_ms: int | None = None,
             until_ms: int | None = None, max_memory_gib: float | None = None) -> MarketData:
        """The store's symbols (or ``symbols``) as one MarketData, like the file loaders."""
        from engine.market.loaders import assemble

        wanted = self.wanted(timeframe, symbols)
        series = []
        for s in wanted:
            bars = self.read(s, timeframe, since_ms, until_ms)
            if bars.times.size:
                series.append(bars)
        if not series:
            raise self.no_bars(timeframe, wanted, since_ms, until_ms)
        return assemble(series, timeframe, f"store:{self.root}", str(self.root), max_memory_gib)

    def iter_months(self, timeframe: str, symbols: list[str] | None = None, since_ms: int | None = None,
                    until_ms: int | None = None, rows: int | None = None) -> Iterator[tuple[int, MarketData]]:
        """``load`` one calendar month at a time: ``(row0, MarketData)`` per month of the grid (or,
        with ``rows``, per that many grid rows, the last chunk fewer), in order, ``row0`` the
        chunk's first row in the whole grid; their concatenation is ``load`` of the same
        arguments (grid, symbols, NaN layout, symbol info). The files are read a month at a
        time, ahead of the steps. Errors (unknown symbols, no bars) are raised here, not at the
        first step. See engine/market/months.py."""
        from engine.market.months import iter_months

        return iter_months(self, timeframe, symbols, since_ms, until_ms, rows)

    def panel_bound(self, timeframe: str, symbols: list[str] | None = None) -> tuple[int, int]:
        """(bars, symbols) of the panel ``load`` would build, at most: from the month files' names
        alone (the first held month's start to the last one's end), no file opened."""
        wanted = self.wanted(timeframe, symbols)
        months = sorted({p.stem for s in wanted for p in self._dir(s, timeframe).glob("*.parquet")})
        first, last = np.datetime64(months[0], "M"), np.datetime64(months[-1], "M") + 1
        span = int((last.astype("datetime64[ms]") - first.astype("datetime64[ms]")).astype(np.int64))
        return span // TIMEFRAME_MS[timeframe], len(wanted)

    def wanted(self, timeframe: str, symbols: list[str] | None) -> list[str]:
        """The symbols a load reads, sorted: ``symbols`` (each must be in the store) or all."""
        have = self.symbols(timeframe)
        if not have:
            raise DataError(f"{self.root}: the store holds no {timeframe} bars; timeframes there: "
                            f"{', '.join(self.timeframes()) or 'none'} (fill it with python -m engine.market.download --store)")
        wanted = list(dict.fromkeys(symbols)) if symbols else have
        absent = [s for s in wanted if s not in have]
        if absent:
            raise DataError(f"{self.root}: no {timeframe} bars in the store for {', '.join(absent)}; "
                            f"available: {', '.join(have)}")
        return sorted(wanted)

    def no_bars(self, timeframe: str, wanted: list[str], since_ms: int | None, until_ms: int | None) -> DataError:
        return DataError(f"{self.root}: no {timeframe} bars between {iso_utc(since_ms or 0)} and "
                         f"{iso_utc(until_ms) if until_ms else 'the end'} for {', '.join(wanted)}")

    def month_files(self, symbol: str, timeframe: str, since_ms: int | None = None,
                    until_ms: int | None = None) -> list[Path]:
        """The symbol's month files that overlap ``[since, until)``, in time order."""
        folder = self._dir(symbol, timeframe)
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        out = []
        for path in files:
            m0, m1 = _month_bounds(path.stem)
            if (since_ms is not None and m1 <= since_ms) or (until_ms is not None and m0 >= until_ms):
                continue
            out.append(path)
        return out

    def read_month_columns(self, symbol: str, timeframe: str, month: str, since_ms: int | None = None,
                           until_ms: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """``read_month`` as (times int64, [open, high, low, close, volume]), no (rows, 6) copy."""
        path = self._dir(symbol, timeframe) / f"{month}.parquet"
        if not path.is_file():
            return np.empty(0, dtype=np.int64), [np.empty(0) for _ in _COLUMNS]
        times, cols = self._read_columns(path)
        keep = np.ones(times.size, dtype=bool)
        if since_ms is not None:
            keep &= times >= since_ms
        if until_ms is not None:
            keep &= times < until_ms
        if keep.all():
            return times, cols
        return times[keep], [c[keep] for c in cols]

    def read_month(self, symbol: str, timeframe: str, month: str, since_ms: int | None = None,
                   until_ms: int | None = None) -> np.ndarray:
        """One month's rows ``[ms, open, high, low, close, volume]`` with ``since <= ms < until``
        (empty when the symbol has no file for that month)."""
        path = self._dir(symbol, timeframe) / f"{month}.parquet"
        return _in_range(self._read_month(path) if path.is_file() else np.empty((0, 6)), since_ms, until_ms)

    # ---- summary ----
    def summary(self) -> list[SeriesSummary]:
        out = []
        for tf in self.timeframes():
            for s in self.symbols(tf):
                b = self.read(s, tf)
                gaps = find_gaps(s, b.times, tf)
                out.append(SeriesSummary(
                    s, tf, int(b.times.size), iso_utc(int(b.times[0])) if b.times.size else None,
                    iso_utc(int(b.times[-1])) if b.times.size else None,
                    len(list(self._dir(s, tf).glob("*.parquet"))), len(gaps), sum(g.missing_bars for g in gaps),
                    [(iso_utc(a), iso_utc(z)) for a, z in self.coverage(s, tf)]))
        return out


def _print_summary(rows: list[SeriesSummary]) -> None:
    print(f"{'symbol':<14} {'tf':>4} {'bars':>10} {'first':<22} {'last':<22} {'months':>6} {'gaps':>5} {'missing':>8}")
    for r in rows:
        print(f"{r.symbol:<14} {r.timeframe:>4} {r.bars:>10,} {r.first or '-':<22} {r.last or '-':<22} "
              f"{r.months:>6} {r.gaps:>5} {r.missing_bars:>8,}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.market.store", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="symbols, ranges, gaps and fetched ranges of a store")
    s.add_argument("root")
    s.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        if not Path(args.root).is_dir():
            raise DataError(f"{args.root}: not a directory, expected a market store folder")
        rows = MarketStore(args.root).summary()
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        _print_summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
