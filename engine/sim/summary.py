"""What results.json reads of the market and the prepared rules over a run's window, gathered
chunk by chunk: the window's times, regime per bar, universe size per bar, rebuild count, the
buy-and-hold benchmark, and a book's per-strategy position values and fill owners. A run over
the whole market in memory is the one-chunk case, so a chunked backtest
(engine/backtest/engine.py ``run_chunks``) writes the same results.json byte for byte while no
(T, N) panel of the whole run is ever held.
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
    sleeves: "SleeveValues | None" = None  # a book's per-strategy values and fill owners
    _bh: BuyAndHold | None = None

    @classmethod
    def of(cls, p: Prepared, start: int, stop: int, initial_cash: float, fills: list) -> "RunSummary":
        """The summary of a run over ``p``, the whole market, that made ``fills``."""
        s = cls(start, stop, initial_cash)
        s.add(p, 0)
        s.add_fills(p, 0, fills)
        return s

    def add_fills(self, p: Prepared, row0: int, fills: list) -> None:
        """After the loop's bars of chunk ``p``: their fills (``f.t`` in the run's rows), in order."""
        if p.rules.book is None:
            return
        lo, hi = max(self.start - row0, 0), min(self.stop - row0, p.market.n_bars)
        if lo >= hi:
            return
        if self.sleeves is None:
            self.sleeves = SleeveValues(p.rules.book, p.market.n_symbols)
        self.sleeves.add(np.asarray(p.close[lo:hi]), row0 + lo, fills)

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


def window_last_close(summary: "RunSummary | None", p: Prepared, stop: int) -> np.ndarray:
    """What positions still open at the window's end (bar ``stop - 1``) are marked at: the
    summary's, when one was gathered, else that row of ``p`` (a grid point builds no summary)."""
    return summary.last_close if summary is not None else last_close_row(p, stop - 1)


def last_close_row(p: Prepared, row: int) -> np.ndarray:
    """The forward-filled closes of row ``row`` of ``p``: what positions still open at the end of
    a window that ends there are marked at (the summary's ``last_close``)."""
    return np.array(p.close[row])


class SleeveValues:
    """Each strategy's position value per bar of the window, and each fill's strategy, fed chunk
    by chunk once the loop has filled the chunk's bars (a whole run is the one-chunk case). A bar's value sums the strategy's held symbols left to right in symbol order
    (a symbol not held adds an exact 0.0), so neither the chunk layout nor which symbols the
    strategy trades elsewhere in the run changes a bit."""

    def __init__(self, book, n_symbols: int):
        self.book = book
        self.holder = np.full(n_symbols, -1, dtype=np.int64)  # the strategy that bought each symbol last
        self.held = np.zeros((len(book.sleeves), n_symbols))
        self.owners: list[int] = []  # per fill, in fill order
        self._parts: list[np.ndarray] = []

    def add(self, close: np.ndarray, row0: int, fills) -> None:
        """``close``: forward-filled closes of consecutive window rows, the first the run's row
        ``row0``; ``fills``: those rows' fills, in fill order (``f.t`` in the run's rows)."""
        out = np.zeros((close.shape[0], len(self.book.sleeves)))
        a = 0
        for f in fills:
            r = f.t - row0
            if r > a:
                self._value(out, close, a, r)
                a = r
            if f.side == "buy":  # a buy belongs to its entry rule's strategy; a sell to the holder's
                owner = self.book.owner_of(f.rule)
                if owner >= 0:
                    self.holder[f.symbol_idx] = owner
            k = int(self.holder[f.symbol_idx])
            self.owners.append(k)
            if k >= 0:
                self.held[k, f.symbol_idx] += f.qty if f.side == "buy" else -f.qty
        self._value(out, close, a, close.shape[0])
        self._parts.append(out)

    def _value(self, out: np.ndarray, close: np.ndarray, a: int, b: int) -> None:
        for k in range(self.held.shape[0]):
            acc = out[a:b, k]
            for j in np.flatnonzero(self.held[k] != 0):
                acc += self.held[k, j] * np.nan_to_num(close[a:b, j])

    @property
    def values(self) -> np.ndarray:
        """(window bars, strategies) each strategy's position value at each close."""
        return self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
