"""Scoped locks of the risk file's ``protections:`` (cooldown, stop_outs, low_profit): which
symbols may not be entered, and until when. A value: the caller applies what
:func:`after_fills` returns, as it applies ``decide``'s state change.

A trade's close is an event (its bar, symbol, whether a stop took it: ``protect:stop_loss`` or
``protect:trailing_stop``, and its return: exit price / entry price - 1, fees left out). Each
lock looks at the closed trades of its scope (the symbol, its theme, or every symbol; only
``themes:`` when given) within its window and, when it fires, blocks entries into the scope
for ``lock_bars`` decisions, the one at the closing bar first. The work is per fill, not per
symbol per cycle (fills are rare; the per-cycle test in ``decide`` is one array compare).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from engine.cycle.plan import HaltState, LockStep

STOP_RULES = frozenset({"protect:stop_loss", "protect:trailing_stop"})


@dataclass(frozen=True, eq=False)
class LockState:
    until: np.ndarray  # (N,) int: the first bar a symbol may be entered again (0: never locked)
    by: np.ndarray  # (N,) str: the protection that set ``until`` ('' when none)
    exits: tuple[tuple[int, int, bool, float], ...]  # recent closed trades: (bar, symbol, stopped, return)
    entry: np.ndarray  # (N,) first fill price of the open trade (NaN when flat)

    @classmethod
    def empty(cls, n: int) -> "LockState":
        return cls(np.zeros(n, dtype=np.int64), np.full(n, "", dtype=object), (), np.full(n, np.nan))

    def to_dict(self) -> dict:
        return {"until": self.until.tolist(), "by": list(self.by), "exits": [list(e) for e in self.exits],
                "entry": [None if x != x else float(x) for x in self.entry.tolist()]}

    @classmethod
    def from_dict(cls, d: dict) -> "LockState":
        return cls(np.array(d["until"], dtype=np.int64), np.array(d["by"], dtype=object),
                   tuple((int(a), int(b), bool(c), float(r)) for a, b, c, r in d["exits"]),
                   np.array([np.nan if x is None else x for x in d["entry"]], dtype=np.float64))


def _fires(step: LockStep, trades: list, closing) -> bool:
    if step.type == "cooldown":
        return closing[2]
    if step.type == "stop_outs":
        return sum(1 for e in trades if e[2]) >= step.count
    # low_profit: enough trades, and their summed return below the threshold
    return len(trades) >= step.min_trades and sum(e[3] for e in trades) < step.min_return


def after_fills(steps: tuple[LockStep, ...], themes: np.ndarray, halts: HaltState, fills, qty: np.ndarray,
                t: int) -> HaltState:
    """The halt state after bar t's ``fills`` (objects with t, symbol_idx, side, price, rule;
    ``qty`` the positions after them): trade closes recorded, locks they fire set."""
    if not steps or not fills:
        return halts
    n = qty.shape[0]
    ls = halts.locks if halts.locks is not None else LockState.empty(n)
    entry = ls.entry.copy()
    events = list(ls.exits)
    closes = []
    for f in fills:
        i = f.symbol_idx
        if f.side == "buy":
            if entry[i] != entry[i]:
                entry[i] = f.price
        elif qty[i] <= 0:
            ret = f.price / entry[i] - 1.0 if entry[i] == entry[i] and entry[i] > 0 else 0.0
            e = (t, i, f.rule in STOP_RULES, ret)
            events.append(e)
            closes.append(e)
            entry[i] = np.nan
    until, by = ls.until, ls.by
    if closes:
        until, by = until.copy(), by.copy()
        for c in closes:
            i = c[1]
            for s in steps:
                if not s.counts[i]:
                    continue
                scope = (np.arange(n) == i) if s.scope == "symbol" else \
                    (themes == themes[i]) if s.scope == "theme" else np.ones(n, dtype=bool)
                trades = [e for e in events if e[0] > t - s.window_bars and scope[e[1]] and s.counts[e[1]]]
                if _fires(s, trades, c):
                    end = t + s.lock_bars
                    sel = scope & (until < end)
                    until[sel] = end
                    by[sel] = s.id
    keep = max(s.window_bars for s in steps)
    events = tuple(e for e in events if e[0] > t - keep)
    return dataclasses.replace(halts, locks=LockState(until, by, events, entry))
