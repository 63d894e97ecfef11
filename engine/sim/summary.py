"""What results.json reads of the market and the prepared rules over a run's window, gathered
chunk by chunk: the window's times, regime per bar, universe size per bar, rebuild count and the
buy-and-hold benchmark. A run over the whole market in memory is the one-chunk case, so a chunked
backtest (engine/backtest/engine.py ``run_chunks``) writes the same results.json byte for byte
while no (T, N) panel of the whole run is ever held.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.cycle.prepare import Prepared
from engine.report.metrics import BuyAndHold


def _joined(name: str) -> property:
    """The window's array of one gathered field: its chunks' rows, in order."""
    def get(self) -> np.ndarray:
        parts = getattr(self, name)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    return property(get)


@dataclass
class RunSummary:
    start: int  # the window, in rows of the whole market
    stop: int
    initial_cash: float
    _times: list = field(default_factory=list)
    _regime: list = field(default_factory=list)
    _universe: list = field(default_factory=list)
    _bench: list = field(default_factory=list)
    _bench_exposure: list = field(default_factory=list)
    rebuilds: int = 0
    last_close: np.ndarray | None = None  # (N,) the forward-filled closes of the window's last bar
    _bh: BuyAndHold | None = None

    @classmethod
    def of(cls, p: Prepared, start: int, stop: int, initial_cash: float) -> "RunSummary":
        """The summary of a run over ``p``, the whole market."""
        s = cls(start, stop, initial_cash)
        s.add(p, 0)
        return s

    def add(self, p: Prepared, row0: int) -> None:
        """The window's rows of chunk ``p``, whose row 0 is row ``row0`` of the whole market."""
        lo, hi = max(self.start - row0, 0), min(self.stop - row0, p.market.n_bars)
        if lo >= hi:
            return
        if self._bh is None:
            self._bh = BuyAndHold(self.initial_cash)
        m = p.market
        self._times.append(m.times[lo:hi])
        self._regime.append(p.regime_idx[lo:hi])
        self._universe.append(p.universe[lo:hi].sum(axis=1))
        self.rebuilds += int(p.rebuilds[lo:hi].sum())
        eq, exposure = self._bh.step(np.asarray(m.close[lo:hi], dtype=np.float64))
        self._bench.append(eq)
        self._bench_exposure.append(exposure)
        if row0 + hi == self.stop:  # positions still open are marked at these
            self.last_close = last_close_row(p, hi - 1)

    times = _joined("_times")
    regime_idx = _joined("_regime")
    universe_size = _joined("_universe")  # (window,) members per bar
    benchmark_equity = _joined("_bench")
    benchmark_exposure = _joined("_bench_exposure")


def last_close_row(p: Prepared, row: int) -> np.ndarray:
    """The forward-filled closes of row ``row`` of ``p``: what positions still open at the end of
    a window that ends there are marked at (the summary's ``last_close``)."""
    return np.array(p.close[row])
