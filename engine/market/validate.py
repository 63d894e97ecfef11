"""Checks every loaded series must pass, and the gap report.

Errors are the user's to fix, so a ``DataError`` says where (file, 1-based data row as a person
counts it, column), what was found and what was expected. Gaps are normal in real exchange
data: they are reported, not rejected.

Each check is one whole-array comparison; only the first offending row is formatted.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from engine import run_warnings
from engine.market.data import TIMEFRAME_MS, iso_utc

log = logging.getLogger(__name__)


class DataError(ValueError):
    """Market data that cannot be used as given (bad file, row, value or setting)."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None, found: object = None, expected: str | None = None):
        super().__init__(message)
        self.file, self.row, self.column, self.found, self.expected = file, row, column, found, expected


@dataclass(frozen=True)
class Bars:
    """One symbol's bars exactly as read from one file (rows in file order)."""

    symbol: str
    file: str  # as named in messages
    times: np.ndarray  # (R,) int64 epoch ms
    open: np.ndarray  # (R,) float64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    header_lines: int = 0  # lines before data row 1 (CSV: 1), so messages can cite the line too


class _IsoView:
    """Formats only the element asked for: converting every timestamp up front would cost
    more than all the checks together on a million-row file."""

    def __init__(self, times: np.ndarray):
        self._t = times

    def __getitem__(self, i: int) -> str:
        return iso_utc(int(self._t[i]))


@dataclass(frozen=True)
class Gap:
    """Missing bars inside one symbol's history: ``start_iso``..``end_iso`` are the opens of
    the first and last missing bar (inclusive)."""

    symbol: str
    start_iso: str
    end_iso: str
    missing_bars: int


def where(file: str, row_index: int | None = None, column: str | None = None, header_lines: int = 0) -> str:
    """``file: data row 3 (line 4), column 'high'`` from a 0-based row index."""
    text = file
    if row_index is not None:
        text += f": data row {row_index + 1}"
        if header_lines:
            text += f" (line {row_index + 1 + header_lines})"
    if column is not None:
        text += f", column {column!r}"
    return text


def raise_at(bars_file: str, header_lines: int, mask: np.ndarray, column: str, found_values: np.ndarray,
             expected: str, found_fmt=repr) -> None:
    """Raise a DataError for the first True in ``mask`` (if any), counting the others."""
    bad = np.flatnonzero(mask)
    if bad.size == 0:
        return
    i = int(bad[0])
    value = found_values[i]
    found = found_fmt(value.item() if isinstance(value, np.generic) else value)
    more = f" ({bad.size - 1} more row(s) like this)" if bad.size > 1 else ""
    raise DataError(
        f"{where(bars_file, i, column, header_lines)}: found {found}, expected {expected}{more}",
        file=bars_file, row=i + 1, column=column, found=value, expected=expected)


def validate_bars(bars: Bars, timeframe: str) -> None:
    """Raise ``DataError`` for the first problem in ``bars``; return None when all is well."""
    step = TIMEFRAME_MS[timeframe]
    f, h = bars.file, bars.header_lines
    t = bars.times
    if t.size == 0:
        raise DataError(f"{f}: no data rows, expected at least one bar", file=f)
    iso = _IsoView(t)
    if t.size > 1:
        d = np.diff(t)
        # Report at the later row: that is the one out of place.
        dup = np.concatenate([[False], d == 0])
        raise_at(f, h, dup, "date", iso, "unique timestamps (this one repeats the previous row)",
                 found_fmt=str)
        back = np.concatenate([[False], d < 0])
        raise_at(f, h, back, "date", iso, "timestamps sorted ascending (this one is earlier than "
                 "the previous row)", found_fmt=str)
    raise_at(f, h, t % step != 0, "date", iso,
             f"a bar open on the {timeframe} grid (a multiple of {step // 1000} s since epoch)", found_fmt=str)
    if t.size >= _MIN_ROWS_FOR_SPACING:
        spacing = int(np.gcd.reduce(np.diff(t)))
        if spacing > step:
            coarse = _duration(spacing)
            raise DataError(
                f"{f}: column 'date': consecutive bars are always a multiple of {coarse} apart, expected "
                f"{timeframe} bars (is this {coarse} data named -{timeframe}?)", file=f, column="date",
                found=coarse, expected=f"{timeframe} bars")

    for name in ("open", "high", "low", "close"):
        col = getattr(bars, name)
        raise_at(f, h, ~np.isfinite(col), name, col, "a finite price")
        raise_at(f, h, col <= 0, name, col, "a price > 0")
    vol = bars.volume
    raise_at(f, h, ~np.isfinite(vol), "volume", vol, "a finite volume")
    raise_at(f, h, vol < 0, "volume", vol, "a volume >= 0")
    body_hi = np.maximum(bars.open, bars.close)
    body_lo = np.minimum(bars.open, bars.close)
    _raise_bound(bars, bars.high < body_hi, "high", bars.high, body_hi, ">= max(open, close)")
    _raise_bound(bars, bars.low > body_lo, "low", bars.low, body_lo, "<= min(open, close)")


# A file whose bars are never one step apart holds coarser data (a 5m file named -1m would
# otherwise load as 1m bars with four empty ones between every two); a few rows can be chance.
_MIN_ROWS_FOR_SPACING = 10


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms} ms"


def _raise_bound(bars: Bars, mask: np.ndarray, column: str, values: np.ndarray, bound: np.ndarray,
                 rule: str) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        i = int(bad[0])
        raise_at(bars.file, bars.header_lines, mask, column, values,
                 f"{rule} = {bound[i].item()!r}")


def find_gaps(symbol: str, times: np.ndarray, timeframe: str) -> list[Gap]:
    """Gaps between consecutive bars of one sorted series of bar-open times (epoch ms)."""
    step = TIMEFRAME_MS[timeframe]
    t = np.asarray(times, dtype=np.int64)
    if t.size < 2:
        return []
    d = np.diff(t)
    idx = np.flatnonzero(d > step)
    return [Gap(symbol, iso_utc(int(t[i] + step)), iso_utc(int(t[i + 1] - step)), int(d[i] // step - 1))
            for i in idx]


def find_panel_gaps(symbols: tuple[str, ...] | list[str], times: np.ndarray, available: np.ndarray,
                    timeframe: str) -> list[Gap]:
    """Gaps inside each symbol's span on a (T, N) availability mask (e.g. ``~isnan(close)``).

    Bars before a symbol's first bar (not yet listed) or after its last are not gaps.
    Ordered by symbol column, then time.
    """
    avail = np.asarray(available, dtype=bool)
    if avail.size == 0:
        return []
    started = np.maximum.accumulate(avail, axis=0)
    not_ended = np.maximum.accumulate(avail[::-1], axis=0)[::-1]
    missing = started & not_ended & ~avail
    # Run boundaries per column, walking column-major so the output is grouped by symbol.
    pad = np.zeros((1, missing.shape[1]), dtype=bool)
    edges = np.diff(np.vstack([pad, missing, pad]).astype(np.int8), axis=0).T
    col_s, row_s = np.nonzero(edges == 1)
    _, row_e = np.nonzero(edges == -1)
    return [Gap(symbols[c], iso_utc(int(times[s])), iso_utc(int(times[e - 1])), int(e - s))
            for c, s, e in zip(col_s, row_s, row_e)]


def summarize_gaps(gaps: list[Gap]) -> str:
    if not gaps:
        return "no gaps"
    bars = sum(g.missing_bars for g in gaps)
    worst = max(gaps, key=lambda g: g.missing_bars)
    n_sym = len({g.symbol for g in gaps})
    return (f"{len(gaps)} gap(s), {bars} missing bar(s) in {n_sym} symbol(s); largest: {worst.symbol} "
            f"{worst.start_iso}..{worst.end_iso} ({worst.missing_bars} bars)")


def warn_gaps(gaps: list[Gap], source: str, logger: logging.Logger = log) -> None:
    """One warning line per load, not one per gap: real data can hold thousands."""
    if gaps:
        run_warnings.warn(logger, "data_gaps", f"{source}: {summarize_gaps(gaps)} (missing bars are NaN)")
