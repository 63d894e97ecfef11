"""Real OHLCV from files: CSV, Parquet and freqtrade's json / json.gz / feather / parquet.

One file per symbol, named ``BASE_QUOTE-<timeframe>.<ext>`` (``BTC_USDC-1h.csv`` holds
``BTC/USDC``). Each file is read, validated (engine.market.validate) and the symbols are
aligned on the union of their time grids; missing bars become NaN and are reported as one
warning. Pandas is used here only, at load time, never per cycle.
"""
from __future__ import annotations

import csv
import gzip
import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from engine import run_warnings
from engine.market.align import align
from engine.paths import leaves_root
from engine.market.data import TIMEFRAME_MS, MarketData, SymbolInfo
from engine.market.validate import Bars, DataError, find_panel_gaps, validate_bars, warn_gaps, where

log = logging.getLogger(__name__)

COLUMNS = ("date", "open", "high", "low", "close", "volume")
_NUMERIC = COLUMNS[1:]
_NAME = re.compile(r"^(?P<pair>[^-]+)-(?P<tf>\d+[smhdwM])\.(?P<ext>csv|parquet|feather|json\.gz|json)$")
# Minimum order size by quote, where it is a safe convention (about one US dollar / euro);
# other quotes get 0 (no floor): live trading takes the exchange's own market limits.
_MIN_NOTIONAL_BY_QUOTE = {q: 1.0 for q in ("USD", "USDC", "USDT", "DAI", "PYUSD", "EUR", "GBP", "EURC")}
_EPOCH_MS_FLOOR = 100_000_000_000  # 1973-03-03 in ms; smaller integers are epoch seconds
_EPOCH_MS_CEIL = 100_000_000_000_000  # 5138-11-16 in ms; larger integers are epoch micro- or nanoseconds


def _clip(text: str, size: int = 80) -> str:
    """A file's header as quoted in a message: enough to recognise it, never a whole line of it."""
    return text if len(text) <= size else text[:size] + f"... ({len(text)} chars)"


def _check_timeframe(timeframe: str) -> None:
    if timeframe not in TIMEFRAME_MS:
        raise DataError(f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAME_MS)}")


def pair_to_symbol(pair: str) -> str | None:
    """``BTC_USDC`` -> ``BTC/USDC``; None for names that are not BASE_QUOTE."""
    parts = pair.split("_")
    if len(parts) != 2 or not all(parts):
        return None
    return f"{parts[0].upper()}/{parts[1].upper()}"


def discover(path: Path | str, timeframe: str, exts: Iterable[str]) -> dict[str, Path]:
    """{symbol: file} for files in ``path`` named ``BASE_QUOTE-<timeframe>.<ext>``."""
    _check_timeframe(timeframe)
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory, expected a folder of OHLCV files")
    exts = tuple(exts)
    found: dict[str, Path] = {}
    other_tfs: dict[str, int] = {}
    for f in sorted(folder.iterdir()):
        m = _NAME.match(f.name)
        if not m or m["ext"] not in exts:
            continue
        outside = leaves_root(folder, f)
        if outside is not None:
            # refused unread: a link to a system file would be parsed and a line of it quoted
            raise DataError(
                f"{folder}: {f.name} is a symbolic link that leads outside the data folder (to {outside}); "
                f"expected a data file inside {folder} (copy the file in, or set data.path to its folder)",
                file=f.name)
        if not f.is_file():
            continue
        if m["tf"] != timeframe:
            other_tfs[m["tf"]] = other_tfs.get(m["tf"], 0) + 1
            continue
        symbol = pair_to_symbol(m["pair"])
        if symbol is None:
            run_warnings.warn(log, "data_file_skipped",
                              f"{f.name}: skipped, the name is not BASE_QUOTE-{timeframe}.{m['ext']}")
            continue
        if symbol in found:
            raise DataError(
                f"{folder}: {found[symbol].name} and {f.name} both hold {symbol} {timeframe}; "
                f"expected one file per symbol (remove one)", file=f.name)
        found[symbol] = f
    if not found:
        example = f"BTC_USDC-{timeframe}.{exts[0]}"
        others = ("; found other timeframes: " + ", ".join(f"{tf} ({n} files)" for tf, n in sorted(other_tfs.items()))
                  if other_tfs else "")
        raise DataError(
            f"{folder}: no {'/'.join('.' + e for e in exts)} files for timeframe {timeframe!r}, "
            f"expected names like {example}{others}")
    return found


# ---- parsing helpers: turn raw columns into arrays, or a DataError naming the cell ----

def _numeric(raw: pd.Series, file: str, column: str, header_lines: int) -> np.ndarray:
    """Float64 column; the first cell that is not a number is reported as found."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        return raw.to_numpy(dtype=np.float64, na_value=np.nan)
    text = raw.astype(str).str.strip()
    num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    # A literal NaN parses; the finite-value check reports it. Anything else unparsed is bad.
    bad = np.isnan(num) & ~text.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = raw.iloc[i]
        found = "an empty cell" if str(value).strip() == "" else repr(value)
        raise DataError(f"{where(file, i, column, header_lines)}: found {found}, expected a number",
                        file=file, row=i + 1, column=column, found=value, expected="a number")
    return num


def _epoch_ms(values: np.ndarray, file: str, header_lines: int,
              raw: Callable[[int], object] | None = None) -> np.ndarray:
    """``raw(i)``: the value as written, when ``values`` lost it (json's big integers as floats)."""
    out = (values < _EPOCH_MS_FLOOR) | (values >= _EPOCH_MS_CEIL)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        bound = (f">= {_EPOCH_MS_FLOOR}; is this in seconds?" if values[i] < _EPOCH_MS_FLOOR
                 else f"< {_EPOCH_MS_CEIL}; is this in microseconds or nanoseconds?")
        found = int(values[i]) if raw is None else raw(i)
        raise DataError(
            f"{where(file, i, 'date', header_lines)}: found {found}, expected epoch milliseconds "
            f"({bound}) or an ISO-8601 date",
            file=file, row=i + 1, column="date", found=found, expected="epoch milliseconds")
    return values.astype(np.int64)


def _dates(raw: pd.Series, file: str, header_lines: int) -> np.ndarray:
    """Epoch ms from datetimes (naive = UTC), integer epoch ms, or ISO-8601 strings."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw.dtype):
        if raw.isna().any():
            i = int(np.flatnonzero(raw.isna().to_numpy())[0])
            raise DataError(f"{where(file, i, 'date', header_lines)}: found an empty date, expected a timestamp",
                            file=file, row=i + 1, column="date", expected="a timestamp")
        return _in_range(_datetimes_to_ms(raw), raw, file, header_lines)
    if pd.api.types.is_integer_dtype(raw.dtype):
        return _epoch_ms(raw.to_numpy(dtype=np.int64), file, header_lines)
    if pd.api.types.is_float_dtype(raw.dtype):
        v = raw.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where(file, i, 'date', header_lines)}: found {float(v[i])!r}, expected whole epoch "
                            f"milliseconds", file=file, row=i + 1, column="date", found=float(v[i]))
        return _epoch_ms(v, file, header_lines)
    text = raw.astype(str).str.strip()
    digits = text.str.fullmatch(r"\d+").to_numpy()
    long = digits & (text.str.len() > 18).to_numpy()  # beyond int64
    if long.any():
        i = int(np.flatnonzero(long)[0])
        raise DataError(f"{where(file, i, 'date', header_lines)}: found {raw.iloc[i]!r}, expected epoch milliseconds "
                        f"(at most 18 digits) or an ISO-8601 date", file=file, row=i + 1, column="date",
                        found=raw.iloc[i], expected="epoch milliseconds")
    if digits.all():
        return _epoch_ms(text.astype(np.int64).to_numpy(), file, header_lines)
    parsed = pd.to_datetime(text.where(~digits, ""), format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = raw.iloc[i]
        found = "an empty cell" if str(value).strip() == "" else repr(value)
        raise DataError(
            f"{where(file, i, 'date', header_lines)}: found {found}, expected an ISO-8601 date "
            f"(e.g. 2024-01-01T00:00:00Z) or epoch milliseconds, one form for the whole column",
            file=file, row=i + 1, column="date", found=value, expected="ISO-8601 date or epoch ms")
    return _in_range(_datetimes_to_ms(parsed), raw, file, header_lines)


def _in_range(ms: np.ndarray, raw: pd.Series, file: str, header_lines: int) -> np.ndarray:
    """Dates written as dates get the range epoch-ms integers get (1973-03-03 to 5138-11-16)."""
    out = (ms < _EPOCH_MS_FLOOR) | (ms >= _EPOCH_MS_CEIL)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        value = raw.iloc[i]
        found = repr(value) if isinstance(value, str) else repr(str(value))
        raise DataError(f"{where(file, i, 'date', header_lines)}: found {found}, expected a date from "
                        f"1973-03-03 to 5138-11-16 (the range of epoch milliseconds read)",
                        file=file, row=i + 1, column="date", found=value, expected="a date from 1973-03-03 to 5138-11-16")
    return ms


def _datetimes_to_ms(s: pd.Series) -> np.ndarray:
    """Epoch ms of a datetime column; aware values are converted to UTC, naive ones are UTC."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy().astype("datetime64[ms]").astype(np.int64)


def _frame_to_bars(df: pd.DataFrame, symbol: str, file: str, header_lines: int = 0) -> Bars:
    found_cols = _clip(", ".join(map(str, df.columns)))
    df = df.rename(columns=lambda c: str(c).strip().lower())
    for c in COLUMNS:
        n = int((df.columns == c).sum())
        if n > 1:
            raise DataError(
                f"{file}: column {c!r} appears {n} times (header names are matched case-insensitively); "
                f"found columns {found_cols}, expected each of {','.join(COLUMNS)} once", file=file, column=c)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{file}: missing column(s) {', '.join(missing)}; found columns {found_cols}, "
            f"expected {','.join(COLUMNS)}", file=file, column=missing[0])
    if len(df) == 0:
        raise DataError(f"{file}: no data rows, expected at least one bar", file=file)
    # Dates first: a blank or shifted line shows up as a bad date, the first column read.
    times = _dates(df["date"], file, header_lines)
    cols = {c: _numeric(df[c], file, c, header_lines) for c in _NUMERIC}
    return Bars(symbol=symbol, file=file, times=times, header_lines=header_lines, **cols)


# ---- one reader per file format: Path -> Bars ----

def read_csv_file(path: Path, symbol: str) -> Bars:
    fast = _read_clean_csv(path)
    if fast is not None:
        return _frame_to_bars(fast, symbol, path.name, header_lines=1)
    try:
        # Everything as text, blank lines kept: row numbers then match the file's lines and
        # the bad cell can be quoted exactly as written.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: empty file, expected a header line {','.join(COLUMNS)} and bars",
                        file=path.name) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        _raise_cell_count(path)
        raise DataError(f"{path.name}: not a readable CSV file ({str(exc).strip()})", file=path.name) from None
    if not isinstance(df.index, pd.RangeIndex):  # pandas took a first row's extra cell for an index
        _raise_cell_count(path)
    # Trailing blank lines are harmless; interior ones are reported by the number checks.
    filled = (df != "").any(axis=1).to_numpy()
    last = int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else 0
    return _frame_to_bars(df.iloc[:last], symbol, path.name, header_lines=1)


def _raise_cell_count(path: Path) -> None:
    """Raise a DataError for the first row with more cells than the header, if any."""
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            rows = csv.reader(fh)
            header = next(rows, [])
            for i, row in enumerate(rows):
                if len(row) > len(header):
                    raise DataError(
                        f"{where(path.name, i, header_lines=1)}: found {len(row)} cells, expected {len(header)} "
                        f"like the header ({_clip(','.join(header))})", file=path.name, row=i + 1, found=len(row),
                        expected=f"{len(header)} cells")
    except csv.Error:
        return


def _read_clean_csv(path: Path) -> pd.DataFrame | None:
    """The common case, 5x faster: the C parser reads numbers directly. Returns None when
    anything looks off (text in a number column, empty cells, blank lines) so the exact text
    reader can name the cell."""
    try:
        df = pd.read_csv(path, dtype={"date": str}, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return None
    df = df.rename(columns=lambda c: str(c).strip().lower())
    if (len(df) == 0 or not isinstance(df.index, pd.RangeIndex) or df.columns.duplicated().any() or any(c not in df.columns for c in COLUMNS)
            or df["date"].isna().any()):
        return None
    for c in _NUMERIC:
        if not pd.api.types.is_float_dtype(df[c].dtype) and not pd.api.types.is_integer_dtype(df[c].dtype):
            return None
        if df[c].isna().any():
            return None
    return df


def read_parquet_file(path: Path, symbol: str) -> Bars:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise DataError(f"{path.name}: not a readable Parquet file ({exc})", file=path.name) from None
    return _frame_to_bars(df.reset_index(drop=not _has_date_index(df)), symbol, path.name)


def read_feather_file(path: Path, symbol: str) -> Bars:
    try:
        df = pd.read_feather(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise DataError(f"{path.name}: not a readable Feather file ({exc})", file=path.name) from None
    return _frame_to_bars(df, symbol, path.name)


def _has_date_index(df: pd.DataFrame) -> bool:
    return df.index.name is not None and str(df.index.name).lower() == "date"


def read_freqtrade_json(path: Path, symbol: str) -> Bars:
    """freqtrade's ``[[ms, open, high, low, close, volume], ...]`` (plain or gzip)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as fh:  # a BOM is read, as in CSV files
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path.name}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}), "
                        f"expected [[ms, open, high, low, close, volume], ...]", file=path.name) from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"{path.name}: unreadable ({exc})", file=path.name) from None
    except (ValueError, RecursionError) as exc:  # an integer beyond Python's digit limit; deep nesting
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise DataError(f"{path.name}: invalid JSON ({why}), expected [[ms, open, high, low, close, volume], ...]",
                        file=path.name) from None
    if not isinstance(data, list):
        raise DataError(f"{path.name}: found a JSON {type(data).__name__}, expected a list of "
                        f"[ms, open, high, low, close, volume] rows", file=path.name)
    for i, row in enumerate(data):
        # Shape and types only; values are checked whole-array below and in validate_bars.
        if not isinstance(row, list) or len(row) != 6:
            raise DataError(f"{where(path.name, i)}: found {json.dumps(row)[:80]}, expected "
                            f"[ms, open, high, low, close, volume]", file=path.name, row=i + 1, found=row)
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise DataError(f"{where(path.name, i, COLUMNS[j])}: found {json.dumps(v)}, expected a number",
                                file=path.name, row=i + 1, column=COLUMNS[j], found=v)
    try:
        arr = np.array(data, dtype=np.float64).reshape(len(data), 6)
    except OverflowError:  # an integer too big for a float
        i, j = next((i, j) for i, row in enumerate(data) for j, v in enumerate(row)
                    if isinstance(v, int) and not _fits_float(v))
        text = str(data[i][j])
        raise DataError(f"{where(path.name, i, COLUMNS[j])}: found {text[:24]}... ({len(text)} digits), expected a "
                        f"number", file=path.name, row=i + 1, column=COLUMNS[j], found=data[i][j]) from None
    # Dates here, while the values as written are at hand (floats lose big integers' digits).
    d = arr[:, 0]
    bad = ~np.isfinite(d) | (d != np.round(d))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where(path.name, i, 'date')}: found {json.dumps(data[i][0])}, expected whole epoch "
                        f"milliseconds", file=path.name, row=i + 1, column="date", found=data[i][0])
    df = pd.DataFrame({c: arr[:, j] for j, c in enumerate(COLUMNS)})
    df["date"] = _epoch_ms(d, path.name, 0, raw=lambda i: data[i][0])
    return _frame_to_bars(df, symbol, path.name)


def _fits_float(v: int) -> bool:
    try:
        float(v)
    except OverflowError:
        return False
    return True


_READERS: dict[str, Callable[[Path, str], Bars]] = {
    "csv": read_csv_file, "parquet": read_parquet_file, "feather": read_feather_file,
    "json": read_freqtrade_json, "json.gz": read_freqtrade_json,
}
SOURCES: dict[str, tuple[str, ...]] = {
    "csv": ("csv",),
    "parquet": ("parquet",),
    "freqtrade": ("feather", "json.gz", "json", "parquet"),
}


# ---- inferring per-symbol facts real files do not carry ----

PRICE_SAMPLE = 5000  # prices infer_price_increment looks at


def sample_positions(size: int) -> np.ndarray:
    """The positions of the finite prices infer_price_increment reads, ascending: all of them
    up to PRICE_SAMPLE, else PRICE_SAMPLE evenly spread."""
    if size <= PRICE_SAMPLE:
        return np.arange(size, dtype=np.int64)
    return np.linspace(0, size - 1, PRICE_SAMPLE).astype(np.int64)


def infer_price_increment(prices: np.ndarray) -> float:
    """The coarsest power-of-ten tick all prices sit on, capped at 10^(floor(log10(lowest price)) - 3)
    (so a tick is at most 0.1% of any price).

    Files do not carry the exchange's tick; this is a stand-in good enough to round
    simulated orders. Live trading uses the exchange's market info instead.
    """
    p = prices[np.isfinite(prices)]
    if p.size == 0:
        return 0.01
    if p.size > PRICE_SAMPLE:
        p = p[sample_positions(p.size)]
    cap = 10.0 ** (np.floor(np.log10(p.min())) - 3)
    for k in range(-6, 13):
        inc = 10.0 ** -k
        if inc > cap:
            continue
        q = p / inc
        if q.max() > 1e9:  # beyond ~9 significant digits float noise passes for a tick
            break
        if np.all(np.abs(q - np.round(q)) <= 1e-6):
            return float(inc)
    return float(cap)


def _info(symbol: str, bars: Bars) -> SymbolInfo:
    return symbol_info(symbol, np.concatenate([bars.open, bars.high, bars.low, bars.close]))


def symbol_info(symbol: str, prices: np.ndarray) -> SymbolInfo:
    """A file's symbol facts from its prices (opens, highs, lows, closes, concatenated in that order)."""
    return symbol_facts(symbol, infer_price_increment(prices))


def symbol_facts(symbol: str, price_increment: float) -> SymbolInfo:
    """``symbol_info`` of prices whose tick is ``price_increment`` (a kept first pass: engine/market/scan_cache.py)."""
    base, quote = symbol.split("/")
    # the theme comes from the product table (engine/market/products.py), applied by the caller
    return SymbolInfo(symbol=symbol, theme="other", price_increment=price_increment,
                      min_notional=_MIN_NOTIONAL_BY_QUOTE.get(quote, 0.0))


def select_files(source: str, path: Path | str, timeframe: str, symbols: Iterable[str] | None) -> dict[str, Path]:
    """{symbol: file} a load would read, from the folder's listing alone (mode=validate asks too)."""
    files = discover(path, timeframe, SOURCES[source])
    if symbols is not None:
        wanted = list(dict.fromkeys(symbols))
        absent = [s for s in wanted if s not in files]
        if absent:
            raise DataError(
                f"{path}: no {timeframe} {source} file for symbol(s) {', '.join(absent)}; "
                f"available: {', '.join(sorted(files)) or 'none'} (files are named like BTC_USDC-{timeframe}.*)")
        files = {s: files[s] for s in wanted}
    return files


def _load(source: str, path: Path | str, timeframe: str, symbols: Iterable[str] | None,
          max_memory_gib: float | None = None) -> MarketData:
    files = select_files(source, path, timeframe, symbols)
    series = []
    for symbol in sorted(files):
        f = files[symbol]
        ext = _NAME.match(f.name)["ext"]
        bars = _READERS[ext](f, symbol)
        validate_bars(bars, timeframe)
        series.append(bars)
    return assemble(series, timeframe, f"{source}:{Path(path)}", str(path), max_memory_gib)


def assemble(series: list[Bars], timeframe: str, source: str, where: str,
             max_memory_gib: float | None = None) -> MarketData:
    """Validated series (sorted by symbol) on one grid, as MarketData; gaps logged once.
    ``where`` names the data's folder in messages."""
    times, cols = align(series, timeframe, max_memory_gib)
    require_two_bars(len(times), [(b.file, b.times.size) for b in series], where)
    syms = tuple(b.symbol for b in series)
    md = MarketData(
        timeframe=timeframe, times=times, symbols=syms,
        spread_bps=np.full((len(times), len(syms)), np.nan),
        info=tuple(_info(b.symbol, b) for b in series),
        source=source, **cols,
    )
    warn_gaps(find_panel_gaps(md.symbols, md.times, md.available, timeframe), md.source, log)
    return md


def require_two_bars(n_times: int, files: list[tuple[str, int]], where: str) -> None:
    """Refuse a grid of fewer than 2 bars, naming the first files and their bar counts."""
    if n_times >= 2:
        return
    files_rows = ", ".join(f"{f} ({n} bar{'s' if n != 1 else ''})" for f, n in files[:5])
    more = f" and {len(files) - 5} more" if len(files) > 5 else ""
    raise DataError(
        f"{where}: {files_rows}{more}: the data holds {n_times} bar in all; expected at least 2 bars "
        f"(a decision at one bar fills at the next)", file=files[0][0], found=n_times,
        expected="at least 2 bars")


def load_csv_dir(path: Path | str, timeframe: str = "1h", symbols: Iterable[str] | None = None) -> MarketData:
    """CSV files ``BASE_QUOTE-<tf>.csv`` with header ``date,open,high,low,close,volume``."""
    return _load("csv", path, timeframe, symbols)


def load_parquet_dir(path: Path | str, timeframe: str = "1h", symbols: Iterable[str] | None = None) -> MarketData:
    """Parquet files ``BASE_QUOTE-<tf>.parquet`` with the CSV columns (date as timestamp or ms)."""
    return _load("parquet", path, timeframe, symbols)


def load_freqtrade_dir(path: Path | str, timeframe: str, symbols: Iterable[str] | None = None) -> MarketData:
    """freqtrade's data folder: ``BASE_QUOTE-<tf>.feather`` / ``.json`` / ``.json.gz`` / ``.parquet``."""
    return _load("freqtrade", path, timeframe, symbols)


def load_market(source: str, path: Path | str, timeframe: str, symbols: Iterable[str] | None = None,
                max_memory_gib: float | None = None) -> MarketData:
    """Dispatch on ``source``: ``csv`` | ``parquet`` | ``freqtrade``. ``max_memory_gib``: refuse
    data whose backtest would need more (None: what the machine has available)."""
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; expected one of {', '.join(SOURCES)}")
    return _load(source, path, timeframe, symbols, max_memory_gib)
