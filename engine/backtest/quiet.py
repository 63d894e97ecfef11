"""Find quiet bars: bars where ``decide`` cannot place an order, fire a halt or leave a trace.

Between two fills the positions do not change, so over a block of bars the equity, the
portfolio values rules read (drawdown, day return, ...) and every rule verdict can be
computed with whole-array operations. A bar is *quiet* when, in that block:

- no exit is under way (a pending exit is retried every bar);
- no halt condition holds, no halt's cooldown ends, and no flatten halt is active while
  something is held;
- no held symbol has an exit signal, and no per-cycle exit rule holds anywhere;
- no symbol that could be bought (in the universe, trading, not held) has an entry signal,
  and no per-cycle entry rule holds anywhere while one could be bought.

These are supersets of what ``decide`` acts on (halts and vetoes are ignored, which can
only make a bar look busy), so a quiet bar's decision is "nothing", and skipping it
changes no result. The scanner marks the quiet bars (equity, exposure, portfolio state,
the trace of active halts) exactly as the per-bar path would and returns the first busy bar.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.trace import TraceRecorder
from engine.cycle.decide import HaltState, _plan
from engine.cycle.portfolio import Portfolio, portfolio_env
from engine.cycle.prepare import Prepared, RuleGroup

DAY_MS = 86_400_000
# the C entry points behind ``ndarray.any`` / ``np.count_nonzero`` (their Python wrappers cost
# more than the work on a block of a few dozen bars)
_any_rows = np.logical_or.reduce
_count = np.count_nonzero
_sum_rows = np.add.reduce  # over bools: per-row counts, as np.count_nonzero(axis=1)


@dataclass
class QuietScanner:
    p: Prepared
    days: np.ndarray  # (T,) UTC day number of each bar
    enterable: np.ndarray  # (T, N) in the universe, trading, and an entry series rule holds
    buyable: np.ndarray  # (T, N) in the universe and trading
    needs_env: bool
    # per-bar counts of the two masks above: with k symbols held, "some symbol not held is
    # enterable" is ``count > count over the held columns``, an (m, k) test instead of (m, N)
    enter_count: np.ndarray | None = None
    buy_count: np.ndarray | None = None

    @classmethod
    def build(cls, p: Prepared) -> "QuietScanner":
        buyable = _plan(p).buyable  # decide's own (T, N) mask, built once per prepared run
        needs_env = bool(p.entries.cycle or p.exits.cycle or p.halts)
        enterable = buyable & p.entries.combined
        return cls(p, p.market.times // DAY_MS, enterable, buyable, needs_env,
                   np.count_nonzero(enterable, axis=1), np.count_nonzero(buyable, axis=1))

    def scan(self, pf: Portfolio, hs: HaltState, a: int, b: int, equity: np.ndarray, exposure: np.ndarray,
             offset: int, trace: TraceRecorder) -> int:
        """Mark the quiet bars from ``a`` on (at most up to ``b``); return the first busy bar (or ``b``).

        ``equity`` and ``exposure`` are the run's curves, bar t at index ``t - offset``.
        """
        if a >= b or (pf.exiting is not None and _count(pf.exiting)):
            return a
        p = self.p
        m = b - a
        rows = np.arange(a, b)
        close = p.close[a:b]
        value = pf.value(close)
        eq = pf.cash + value
        prev = np.concatenate(([pf.equity], eq[:-1]))
        days = self.days[a:b]
        new_day = days != np.concatenate(([pf.day], days[:-1]))
        first = np.where(new_day, np.arange(m), -1)
        np.maximum.accumulate(first, out=first)
        day_start = np.where(first >= 0, np.where(prev > 0, prev, eq)[np.maximum(first, 0)], pf.day_start_equity)
        peak = np.maximum.accumulate(np.concatenate(([pf.peak_equity], eq)))[1:]

        held = pf.qty > 0
        hidx = held.nonzero()[0]
        any_held = hidx.size > 0
        busy = np.zeros(m, dtype=bool)
        col = lambda x: x[:, None]  # noqa: E731 - one bar per row, broadcast over symbols
        env = None
        if p.halts:
            env = portfolio_env(pf, close, col(rows), col(eq), col(value), col(peak), col(day_start), col(prev))
        window = slice(a, b)

        active: list[tuple[str, np.ndarray]] = []
        for h, fn in p.halts:
            until = hs.until.get(h.rule.id, -1)
            if a <= until < b:  # the cooldown ends in this block
                busy[until - a] = True
            busy |= _rows(fn(env, window), m)
            if until > a:  # the halt holds over the block's first bars
                on = rows < until
                active.append((h.rule.id, on))
                if h.action == "flatten" and any_held:
                    busy |= on

        # series-level signals: only the held columns need looking at
        if any_held:
            busy |= _any_rows(p.exits.combined[a:b, hidx], axis=1)
            enter = self.enter_count[a:b] > _sum_rows(self.enterable[a:b, hidx], axis=1, dtype=np.intp)
        else:
            enter = self.enter_count[a:b] > 0
        busy |= enter

        # per-cycle rules over (bars x symbols): only up to the first bar already found busy
        e = int(busy.argmax()) if _count(busy) else m
        if e > 0 and ((any_held and p.exits.cycle) or p.entries.cycle):
            sl, w = slice(0, e), slice(a, a + e)
            cenv = portfolio_env(pf, close[sl], col(rows[sl]), col(eq[sl]), col(value[sl]), col(peak[sl]),
                                 col(day_start[sl]), col(prev[sl]))
            cbusy = np.zeros(e, dtype=bool)
            if any_held:
                cbusy |= _cycle_any(p.exits, cenv, w, a, a + e, e)
            if p.entries.cycle:
                if any_held:
                    can_buy = self.buy_count[w] > _sum_rows(self.buyable[w, hidx], axis=1, dtype=np.intp)
                else:
                    can_buy = self.buy_count[w] > 0
                cbusy |= can_buy & _cycle_any(p.entries, cenv, w, a, a + e, e)
            if _count(cbusy):
                e = int(cbusy.argmax())

        if e == 0:
            return a
        k = slice(0, e)
        equity[a - offset:a - offset + e] = eq[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            exposure[a - offset:a - offset + e] = np.where(eq[k] > 0, (eq[k] - pf.cash) / eq[k], 0.0)
        for hid, on in active:
            trace.record_halts(hid, rows[k][on[k]])
        last = e - 1
        pf.prev_equity, pf.equity = float(prev[last]), float(eq[last])
        pf.day, pf.day_start_equity = int(days[last]), float(day_start[last])
        pf.peak_equity = float(peak[last])
        return a + e


def _rows(v, m: int) -> np.ndarray:
    """A verdict over a block of bars as one bool per bar (any symbol).

    Portfolio values come in as (m, 1) columns, so a verdict that varies by bar is 2-D;
    a 1-D (N,) verdict reads positions only and a 0-d one constants: the same every bar."""
    v = np.asarray(v, dtype=bool)
    if v.ndim == 2:
        return v[:, 0].copy() if v.shape[1] == 1 else _any_rows(v, axis=1)
    return np.full(m, _count(v) > 0)


def _cycle_any(g: RuleGroup, env: dict | None, window: slice, a: int, b: int, m: int) -> np.ndarray:
    """Bars of the block where some per-cycle rule of ``g`` holds for some symbol (in scope)."""
    out = np.zeros(m, dtype=bool)
    for c in g.cycle:
        hit = _rows(c.fn(env, window), m)
        if c.regime_ok is not None:
            hit &= c.regime_ok[a:b]
        out |= hit
    return out
