"""Portfolio state the cycle reads and the broker updates: whole-universe arrays."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Portfolio:
    cash: float
    qty: np.ndarray  # (N,) base units held
    entry_price: np.ndarray  # (N,) average entry price, NaN when flat
    entry_bar: np.ndarray  # (N,) bar index of entry, -1 when flat
    entry_rule: list = field(default_factory=list)  # (N,) rule id that opened the position
    exiting: np.ndarray | None = None  # (N,) an exit was decided and is not complete yet
    peak_equity: float = 0.0
    day_start_equity: float = 0.0
    day: int = -1
    prev_equity: float = 0.0
    equity: float = 0.0

    @classmethod
    def empty(cls, n: int, cash: float) -> "Portfolio":
        return cls(
            cash=float(cash), qty=np.zeros(n), entry_price=np.full(n, np.nan),
            entry_bar=np.full(n, -1, dtype=np.int64), entry_rule=[""] * n,
            exiting=np.zeros(n, dtype=bool), peak_equity=float(cash),
            day_start_equity=float(cash), prev_equity=float(cash), equity=float(cash),
        )

    def mark(self, close: np.ndarray, day: int) -> float:
        """Mark to market at ``close`` (forward-filled); roll the day's start at UTC midnight."""
        held = self.qty != 0
        value = float(np.dot(self.qty[held], close[held])) if held.any() else 0.0
        self.prev_equity = self.equity
        self.equity = self.cash + value
        if day != self.day:
            self.day = day
            self.day_start_equity = self.prev_equity if self.prev_equity > 0 else self.equity
        self.peak_equity = max(self.peak_equity, self.equity)
        return self.equity

    def env(self, close: np.ndarray, bar: int) -> dict:
        """The ``position.*`` and ``portfolio.*`` values rules may read this cycle."""
        held = self.qty > 0
        value = self.qty * close
        eq = self.equity if self.equity > 0 else np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = np.where(held, close / self.entry_price - 1.0, 0.0)
        exposure = float(np.nansum(value)) / eq if eq == eq else 0.0
        return {
            "position.held": held,
            "position.qty": self.qty,
            "position.value": value,
            "position.weight": value / eq,
            "position.entry_price": self.entry_price,
            "position.return_pct": ret,
            "position.bars_held": np.where(held, bar - self.entry_bar, 0).astype(np.float64),
            "portfolio.equity": self.equity,
            "portfolio.cash": self.cash,
            "portfolio.exposure": exposure,
            "portfolio.n_positions": float(held.sum()),
            "portfolio.drawdown": self.equity / self.peak_equity - 1.0 if self.peak_equity > 0 else 0.0,
            "portfolio.day_return": self.equity / self.day_start_equity - 1.0 if self.day_start_equity > 0 else 0.0,
            "portfolio.hour_return": self.equity / self.prev_equity - 1.0 if self.prev_equity > 0 else 0.0,
        }
