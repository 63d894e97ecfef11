"""Will a backtest of this many bars and symbols fit in memory? Asked before anything is allocated.

A run's peak memory grows with the (time x symbol) panel: price columns, rule features,
verdicts, the trace. Measured with ``benchmarks/backtest_speed.py --child N --bars T`` (peak
RSS, sma_cross, numpy 2.4 on x86-64):

    symbols x bars     peak MiB
    30 x 8,760            117
    100 x 8,760           269
    400 x 8,760           910
    30 x 87,600           714
    100 x 43,800        1,141

which fits ``peak ~= 60 MiB + 270 B per bar + 256 B per symbol-bar`` within 2 %. The estimate
below rounds each term up (a strategy with more features needs more), so it refuses only runs
that could not have fitted; ``benchmarks/memory_estimate.py`` prints estimate against measured.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from engine.market.validate import DataError

BASE_BYTES = 128 * 2**20
BYTES_PER_BAR = 512
BYTES_PER_SYMBOL_BAR = 256
GIB = 2**30
SETTING = "data.max_memory_gib"


def estimate_bytes(n_bars: int, n_symbols: int) -> int:
    """Peak memory of a backtest over ``n_bars`` x ``n_symbols`` (an upper estimate)."""
    return BASE_BYTES + BYTES_PER_BAR * n_bars + BYTES_PER_SYMBOL_BAR * n_bars * n_symbols


def available_bytes() -> int | None:
    """Memory this machine can give a new run now (Linux MemAvailable), else its physical
    memory, else None when the platform says neither."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class MemoryNeed:
    n_bars: int
    n_symbols: int
    timeframe: str
    need_bytes: int
    budget_bytes: int | None
    budget_from: str  # the setting, or what the machine reported

    @property
    def fits(self) -> bool:
        return self.budget_bytes is None or self.need_bytes <= self.budget_bytes

    def message(self, what: str) -> str:
        return (f"{what}: {self.n_bars:,} {self.timeframe} bars x {self.n_symbols:,} symbols need about "
                f"{self.need_bytes / GIB:,.1f} GiB, expected at most {self.budget_bytes / GIB:,.1f} GiB "
                f"({self.budget_from}): shorten the window or the files' date ranges, choose fewer "
                f"symbols (data.symbols), a coarser data.timeframe, set {SETTING}, or read the market "
                f"store chunk by chunk (data=store, backtest.chunked: auto or true)")


def need(n_bars: int, n_symbols: int, timeframe: str, max_memory_gib: float | None) -> MemoryNeed:
    """The estimate against the budget: ``max_memory_gib`` when set, else what is available."""
    if max_memory_gib is not None:
        budget, source = int(float(max_memory_gib) * GIB), f"{SETTING}={max_memory_gib:g}"
    else:
        budget = available_bytes()
        source = f"available on this machine; {SETTING} sets the limit"
    return MemoryNeed(n_bars, n_symbols, timeframe, estimate_bytes(n_bars, n_symbols), budget, source)


class MemoryNeedError(DataError):
    """A run that would not fit in memory, refused before its arrays are allocated."""


def require_fits(n_bars: int, n_symbols: int, timeframe: str, max_memory_gib: float | None, what: str) -> None:
    m = need(n_bars, n_symbols, timeframe, max_memory_gib)
    if not m.fits:
        raise MemoryNeedError(m.message(what))
