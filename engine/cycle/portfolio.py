"""Portfolio state the cycle reads and the broker updates: whole-universe arrays."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_ndarray = np.ndarray
_f64 = np.float64
_count = np.count_nonzero


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
        if close.ndim != 2 or idx.size < 2:
            out = np.zeros(close.shape[:-1])
            for i in idx.tolist():
                out = out + self.qty[i] * close[..., i]
            return out
        # (k, N) rows: the same products, then a left-to-right running sum along each row
        # (accumulate never reorders). It starts from the first product instead of 0.0, which
        # can only change the sign of a zero partial sum; ``+ 0.0`` makes a zero total +0.0,
        # as a sum started from 0.0 is.
        return np.add.accumulate(close[:, idx] * self.qty[idx], axis=1)[:, -1] + 0.0

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
    if not isinstance(cond, _ndarray):  # a scalar (np.ndim is a Python-level wrapper)
        return a if cond else b
    return np.where(cond, a, b)


class LazyEnv(dict):
    """Rule inputs computed the first time a rule reads them.

    A cycle's rules read two or three of the fourteen values (a stop loss reads
    ``position.return_pct``, halts read ``portfolio.*``): building the rest every busy bar
    and every quiet block was most of the loop's time. Reads go through ``env[name]``
    (``__missing__``), so a plain dict and a ``LazyEnv`` are interchangeable to rules.
    ``build`` maps a name to ``fn(ctx)``; ``ctx`` holds what the values are computed from.
    """

    __slots__ = ("_build", "_ctx")

    def __init__(self, build: dict, ctx, values: dict | None = None):
        super().__init__(values or ())
        self._build = build
        self._ctx = ctx

    def __missing__(self, key: str):
        try:
            make = self._build[key]
        except KeyError:
            raise KeyError(key) from None
        self[key] = value = make(self._ctx)
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
        return LazyEnv(self._build, self._ctx, {**dict(dict.items(self)), **values})


class _Ctx:
    """What one env's values are computed from (one bar, or a block of bars as (k, 1) columns)."""

    __slots__ = ("pf", "qty", "cash", "close", "bar", "equity", "value", "peak", "day_start", "prev",
                 "scalar", "_held", "_pos_value", "_eq")

    def __init__(self, pf, close, bar, equity, value, peak, day_start, prev):
        self.pf, self.qty, self.cash, self.close, self.bar = pf, pf.qty, pf.cash, close, bar
        self.equity, self.value, self.peak, self.day_start, self.prev = equity, value, peak, day_start, prev
        self.scalar = not isinstance(equity, _ndarray)  # portfolio_env made scalars np.float64
        self._held = self._pos_value = self._eq = None

    def held(self):
        if self._held is None:
            self._held = self.qty > 0
        return self._held

    def pos_value(self):
        if self._pos_value is None:
            self._pos_value = self.qty * self.close
        return self._pos_value

    def eq(self):
        if self._eq is None:
            self._eq = _pick(self.equity > 0, self.equity, np.nan)
        return self._eq


def _ratio_less_one(num, den):
    """``num / den - 1`` where ``den > 0``, else 0: the drawdown and the day's and hour's returns."""
    if not isinstance(den, _ndarray):  # one bar (an np.float64): no division by zero to silence
        return num / den - 1.0 if den > 0 else 0.0
    pos = den > 0
    if _count(pos) == pos.size:  # the usual case: np.where would pick every quotient
        return num / den - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den - 1.0, 0.0)


def _return_pct(c: _Ctx):
    if c.scalar:
        # one bar: only the held symbols divide (the rest are 0.0, as np.where picks)
        held = c.held()
        idx = held.nonzero()[0]
        out = np.zeros(held.shape)
        if idx.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[idx] = c.close[idx] / c.pf.entry_price[idx] - 1.0
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c.held(), c.close / c.pf.entry_price - 1.0, 0.0)


def _exposure(c: _Ctx):
    e = c.eq()
    v = c.value() if callable(c.value) else c.value
    v = np.float64(v) if np.ndim(v) == 0 else v
    # NaN (no equity) divides quietly and is picked away
    return _pick(e == e, v / e, 0.0)


_BUILD = {
    "position.held": _Ctx.held,
    "position.qty": lambda c: c.qty,
    "position.value": _Ctx.pos_value,
    "position.weight": lambda c: c.pos_value() / c.eq(),  # eq is > 0 or NaN: no division by zero
    "position.entry_price": lambda c: c.pf.entry_price,
    "position.return_pct": _return_pct,
    "position.bars_held": lambda c: np.where(c.held(), c.bar - c.pf.entry_bar, 0).astype(np.float64),
    "portfolio.equity": lambda c: c.equity,
    "portfolio.cash": lambda c: c.cash,
    "portfolio.exposure": _exposure,
    "portfolio.n_positions": lambda c: float(c.held().sum()),
    "portfolio.drawdown": lambda c: _ratio_less_one(c.equity, c.peak),
    "portfolio.day_return": lambda c: _ratio_less_one(c.equity, c.day_start),
    "portfolio.hour_return": lambda c: _ratio_less_one(c.equity, c.prev),
}


def portfolio_env(pf: Portfolio, close: np.ndarray, bar, equity, value, peak, day_start, prev) -> LazyEnv:
    """Rule inputs for one bar (``close`` (N,), scalars) or a block of bars with unchanged
    positions (``close`` (k, N); ``bar``, ``equity``, ... shaped (k, 1)). The same
    elementwise formulas serve both, so a block gives each bar's values bit for bit.
    Each value is computed on first read (see :class:`LazyEnv`); ``value`` may be a
    callable (only ``portfolio.exposure`` reads it)."""
    # numpy scalars: a zero peak or day start gives inf/nan (then picked away), never an exception
    if not isinstance(equity, _ndarray) or not equity.ndim:
        equity, peak, day_start, prev = _f64(equity), _f64(peak), _f64(day_start), _f64(prev)
    elif not (isinstance(peak, _ndarray) and isinstance(day_start, _ndarray) and isinstance(prev, _ndarray)
              and peak.ndim and day_start.ndim and prev.ndim):
        equity, peak, day_start, prev = (_f64(x) if np.ndim(x) == 0 else x for x in (equity, peak, day_start, prev))
    return LazyEnv(_BUILD, _Ctx(pf, close, bar, equity, value, peak, day_start, prev))
