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

    def value(self, close: np.ndarray):
        """Positions' value at ``close``: (N,) -> float, or (k, N) rows -> (k,).

        Summed position by position in symbol order, so one bar and a block of bars give
        bit-identical figures (the backtest marks quiet stretches a block at a time).
        """
        idx = (self.qty != 0).nonzero()[0]
        if close.ndim == 1:
            # Python floats: the same IEEE double arithmetic as numpy scalars, faster
            out = 0.0
            for q, c in zip(self.qty[idx].tolist(), close[idx].tolist()):
                out = out + q * c
            return out
        out = np.zeros(close.shape[:-1])
        for i in idx.tolist():
            out = out + self.qty[i] * close[..., i]
        return out

    def mark(self, close: np.ndarray, day: int) -> float:
        """Mark to market at ``close`` (forward-filled); roll the day's start at UTC midnight."""
        value = self.value(close)
        self.prev_equity = self.equity
        self.equity = self.cash + value
        if day != self.day:
            self.day = day
            self.day_start_equity = self.prev_equity if self.prev_equity > 0 else self.equity
        self.peak_equity = max(self.peak_equity, self.equity)
        return self.equity

    def env(self, close: np.ndarray, bar: int) -> dict:
        """The ``position.*`` and ``portfolio.*`` values rules may read this cycle."""
        return portfolio_env(self, close, bar, self.equity, lambda: self.value(close), self.peak_equity,
                             self.day_start_equity, self.prev_equity)


def _pick(cond, a, b):
    """``a if cond else b`` for a scalar, elementwise for a column of bars."""
    if np.ndim(cond) == 0:
        return a if cond else b
    return np.where(cond, a, b)


class LazyEnv(dict):
    """Rule inputs computed the first time a rule reads them.

    A cycle's rules read two or three of the fourteen values (a stop loss reads
    ``position.return_pct``, halts read ``portfolio.*``): building the rest every busy bar
    and every quiet block was most of the loop's time. Reads go through ``env[name]``
    (``__missing__``), so a plain dict and a ``LazyEnv`` are interchangeable to rules.
    """

    __slots__ = ("_build",)

    def __init__(self, build: dict, values: dict | None = None):
        super().__init__(values or ())
        self._build = build

    def __missing__(self, key: str):
        try:
            make = self._build[key]
        except KeyError:
            raise KeyError(key) from None
        with np.errstate(divide="ignore", invalid="ignore"):
            self[key] = value = make()
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._build

    def keys(self):  # every name a rule may read, computed or not
        return list(dict.fromkeys([*dict.keys(self), *self._build]))

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __bool__(self) -> bool:
        return bool(self._build) or dict.__len__(self) > 0

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]

    def get(self, key, default=None):
        return self[key] if key in self else default

    def extended(self, values: dict) -> "LazyEnv":
        """A copy with ``values`` added (the order's values for execution guards); what this
        env already computed is shared, what it has not is still built on first read."""
        return LazyEnv(self._build, {**dict(dict.items(self)), **values})


def portfolio_env(pf: Portfolio, close: np.ndarray, bar, equity, value, peak, day_start, prev) -> LazyEnv:
    """Rule inputs for one bar (``close`` (N,), scalars) or a block of bars with unchanged
    positions (``close`` (k, N); ``bar``, ``equity``, ... shaped (k, 1)). The same
    elementwise formulas serve both, so a block gives each bar's values bit for bit.
    Each value is computed on first read (see :class:`LazyEnv`)."""
    # numpy scalars: a zero peak or day start gives inf/nan (then picked away), never an exception
    equity, peak, day_start, prev = (np.float64(x) if np.ndim(x) == 0 else x for x in (equity, peak, day_start, prev))
    value_of = value if callable(value) else (lambda: value)  # positions' value: only exposure reads it
    qty = pf.qty
    cash = pf.cash
    cache: dict = {}

    def held():
        if "held" not in cache:
            cache["held"] = qty > 0
        return cache["held"]

    def pos_value():
        if "pos_value" not in cache:
            cache["pos_value"] = qty * close
        return cache["pos_value"]

    def eq():
        if "eq" not in cache:
            cache["eq"] = _pick(equity > 0, equity, np.nan)
        return cache["eq"]

    def exposure():
        e = eq()
        v = value_of()
        v = np.float64(v) if np.ndim(v) == 0 else v
        return _pick(e == e, v / e, 0.0)

    return LazyEnv({
        "position.held": held,
        "position.qty": lambda: qty,
        "position.value": pos_value,
        "position.weight": lambda: pos_value() / eq(),
        "position.entry_price": lambda: pf.entry_price,
        "position.return_pct": lambda: np.where(held(), close / pf.entry_price - 1.0, 0.0),
        "position.bars_held": lambda: np.where(held(), bar - pf.entry_bar, 0).astype(np.float64),
        "portfolio.equity": lambda: equity,
        "portfolio.cash": lambda: cash,
        "portfolio.exposure": exposure,
        "portfolio.n_positions": lambda: float(held().sum()),
        "portfolio.drawdown": lambda: _pick(peak > 0, equity / peak - 1.0, 0.0),
        "portfolio.day_return": lambda: _pick(day_start > 0, equity / day_start - 1.0, 0.0),
        "portfolio.hour_return": lambda: _pick(prev > 0, equity / prev - 1.0, 0.0),
    })
