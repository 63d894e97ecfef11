"""Find quiet bars: bars where ``decide`` cannot place an order, fire a halt or leave a trace.

Between two fills the positions do not change, so over a block of bars the equity, the
portfolio values rules read (drawdown, day return, ...) and every rule verdict can be
computed with whole-array operations. A bar is *quiet* when, in that block:

- no exit is under way (a pending exit is retried every bar), or, if one is, the guards hold
  back every such sell (those bars are decided as a block: engine/cycle/held_back.py);
- no halt condition holds, no halt's cooldown ends, and no flatten halt is active while
  something is held;
- no held symbol has an exit signal, and no per-cycle exit rule holds anywhere (while exits
  are under way: for no position still kept, their verdicts on the others going to the trace);
- no symbol that could be bought (in the universe, trading, not held) has an entry signal,
  and no per-cycle entry rule holds anywhere while one could be bought (a traced run whose
  book is full decides such bars as a block: engine/cycle/turned_away.py).

These are supersets of what ``decide`` acts on (halts and vetoes are ignored, which can
only make a bar look busy), so a quiet bar's decision is "nothing", and skipping it
changes no result. The scan reads the same :class:`CyclePlan` as ``decide`` (its halts with
their actions and cooldowns, the exit and entry groups, the buyable mask): it is the block
form of the same plan, not a second copy of the rules. Like ``decide`` it writes into
nothing it was given: it returns a :class:`QuietSpan` (the first busy bar, the quiet bars'
equity and exposure, the halts that held, the portfolio's marks) that the caller applies.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.cycle.plan import CyclePlan, HaltState
from engine.cycle.portfolio import Portfolio, portfolio_env
from engine.cycle.prepare import RuleGroup
from engine.cycle.state import Marks
from engine.cycle.block_events import NO_EVENTS, BlockEvents
from engine.cycle.held_back import held_back
from engine.cycle.turned_away import applies, full_slots, turned_away
# the C entry points behind ``ndarray.any`` / ``np.count_nonzero`` (their Python wrappers cost
# more than the work on a block of a few dozen bars)
_any_rows = np.logical_or.reduce
_count = np.count_nonzero
_sum_rows = np.add.reduce  # over bools: per-row counts, as np.count_nonzero(axis=1)


@dataclass(frozen=True, eq=False)
class QuietSpan:
    """Bars ``start`` up to ``end`` (exclusive) are quiet; ``end`` is the first busy bar (or the
    block's end). Empty (``end == start``) when the first bar is busy."""

    start: int
    end: int
    equity: np.ndarray  # (end - start,) marked equity per quiet bar
    exposure: np.ndarray  # (end - start,)
    halt_bars: tuple[tuple[str, np.ndarray], ...]  # (halt id, bars of the span it held)
    marks: Marks | None  # the portfolio's marks after the span's last bar (None: empty span)
    # the span's bars whose entry candidates a full book turned away: decided as a block, their
    # trace events to record (engine/cycle/turned_away.py)
    events: BlockEvents = NO_EVENTS


def _empty(a: int) -> QuietSpan:
    return QuietSpan(a, a, np.empty(0), np.empty(0), (), None)


@dataclass(frozen=True, eq=False)
class QuietScanner:
    plan: CyclePlan
    needs_env: bool
    # per-bar counts of the plan's enterable / buyable masks: with nothing held, "some symbol is
    # enterable" is ``enter_count > 0``; with k held, "some symbol not held is buyable" (for the
    # per-cycle entries) is ``buy_count > count over the held columns``, an (m, k) test, not (m, N)
    enter_count: np.ndarray
    buy_count: np.ndarray
    # untraced runs only: the fewest positions the risk file's position_count caps allow. With
    # that many held and none exiting, ``apply_caps`` (engine/cycle/decide.py) gives every
    # entry candidate no slot (the later caps only lower weights), so an entry signal cannot
    # become an order; it would leave candidate and cap events in a trace, hence None when traced
    # (a traced run decides those bars as a block: ``turn_at``)
    slots: int | None = None
    enterable: np.ndarray | None = None  # the plan's enterable mask, less what the series vetoes block
    # traced runs (engine/cycle/turned_away.py ``applies``): with this many positions held and none
    # exiting, entry signals make no order and their bars are decided as a block, not one by one
    turn_at: int | None = None
    # exits under way whose sells the guards hold back are decided as a block (not when observed)
    retries: bool = True
    # the exits' series mask and ``enterable`` as bits, 64 symbols a word ((T, words) uint64):
    # "a held symbol has an exit" and "a symbol not held is enterable" are then a few word ANDs
    # per bar, not a gather of the held columns
    exit_bits: np.ndarray | None = None
    enter_bits: np.ndarray | None = None

    @classmethod
    def build(cls, plan: CyclePlan, traced: bool = True, observed: bool = False) -> "QuietScanner":
        """``observed``: every decision goes to an observer (so none may be decided as a block)."""
        p = plan.p
        counted = any(c.type == "position_count" for c in plan.caps)
        enterable = plan.enterable
        if not p.vetoes.cycle and not plan.locks and p.vetoes.series:
            # a symbol the series vetoes block cannot become a candidate (``decide`` ANDs them
            # in after the scoped locks, whose events a trace keeps: hence none of those)
            enterable = enterable & p.vetoes.combined
        return cls(plan, bool(p.entries.cycle or p.exits.cycle or p.halts),
                   np.count_nonzero(enterable, axis=1), np.count_nonzero(plan.buyable, axis=1),
                   None if traced or not counted else full_slots(plan), enterable,
                   full_slots(plan) if traced and not observed and applies(plan) else None,
                   not observed, _bits(p.exits.combined), _bits(enterable))

    def scan(self, pf: Portfolio, hs: HaltState, a: int, b: int) -> QuietSpan:
        """The quiet bars from ``a`` on (at most up to ``b``), ending at the first busy bar."""
        if a >= b:
            return _empty(a)
        plan = self.plan
        p = plan.p
        held = pf.qty > 0
        hidx = held.nonzero()[0]
        any_held = hidx.size > 0
        # exits under way are retried each bar: bars where the guards hold every such sell back
        # are decided as a block (engine/cycle/held_back.py), the first where one would go is busy
        exiting = held & pf.exiting if pf.exiting is not None and _count(pf.exiting) else None
        if exiting is not None and not _count(exiting):
            exiting = None
        if exiting is not None and not self.retries:
            return _empty(a)
        n_keep = hidx.size - (_count(exiting) if exiting is not None else 0)  # the position count's
        # first what needs no portfolio values: the series-level signals (only the held columns
        # need looking at) and the halts' cooldown ends. The first bar they find busy ends the
        # block (every busy source is an OR, and everything below is causal from ``a``), so the
        # portfolio values and the halts are computed only up to it, and not at all when bar
        # ``a`` is busy already: the same first busy bar, for less work.
        # entries cannot act while a halt holds (``decide`` then looks at no entry: no candidate,
        # no verdict to trace) nor, untraced, while the position count is full
        halted_to = max([hs.get(h.id) for h in plan.halts], default=-1) - a  # block rows halted
        entries = self.slots is None or n_keep < self.slots
        # a full book (traced): entry signals are no busy bar, their candidates' events come as a block
        turned = self.turn_at is not None and n_keep >= self.turn_at
        if any_held:
            held_bits = _bits(held[None, :])[0]
        if entries:
            if any_held:
                enter = _any_rows(self.enter_bits[a:b] & ~held_bits, axis=1)
            else:
                enter = self.enter_count[a:b] > 0
            if halted_to > 0:
                enter[:halted_to] = False
        counted = entries and not turned
        if any_held:
            # an exit signal on a position already on its way out changes nothing
            keep_bits = held_bits if exiting is None else _bits((held & ~exiting)[None, :])[0]
            busy = _any_rows(self.exit_bits[a:b] & keep_bits, axis=1)
            if counted:
                busy |= enter
        else:
            busy = enter.copy() if counted else np.zeros(b - a, dtype=bool)
        for h in plan.halts:
            until = hs.get(h.id)
            if h.flatten and a <= until < b:  # its cooldown ends in this block: the peak re-arms
                busy[until - a] = True
            if h.flatten and any_held and until > a:  # a flatten halt holds while something is held
                busy[:until - a] = True
        if _count(busy):
            b = a + int(busy.argmax())
            if b == a:
                return _empty(a)
            busy = busy[:b - a]
        m = b - a
        rows = np.arange(a, b)
        close = p.close[a:b]
        value = pf.value(close)
        eq = pf.cash + value
        prev = np.concatenate(([pf.equity], eq[:-1]))
        days = plan.days[a:b]
        new_day = days != np.concatenate(([pf.day], days[:-1]))
        first = np.where(new_day, np.arange(m), -1)
        np.maximum.accumulate(first, out=first)
        day_start = np.where(first >= 0, np.where(prev > 0, prev, eq)[np.maximum(first, 0)], pf.day_start_equity)
        peak = np.maximum.accumulate(np.concatenate(([pf.peak_equity], eq)))[1:]

        col = lambda x: x[:, None]  # noqa: E731 - one bar per row, broadcast over symbols
        env = None
        if plan.halts:
            env = portfolio_env(pf, close, col(rows), col(eq), col(value), col(peak), col(day_start), col(prev))
        window = slice(a, b)

        active: list[tuple[str, np.ndarray]] = []
        for h in plan.halts:
            until = hs.get(h.id)
            fires = _rows(h.fn(env, window), m)
            if until >= a:  # ``decide`` fires a halt only past its cooldown's end (bar ``until``)
                fires[:until - a + 1] = False
            busy |= fires
            if until > a:  # the halt holds over the block's first bars
                active.append((h.id, rows < until))

        # per-cycle rules over (bars x symbols): only up to the first bar already found busy
        e = int(busy.argmax()) if _count(busy) else m
        exit_verdicts: list[tuple[str, np.ndarray]] = []  # exits under way: the per-cycle exits' (e, N) verdicts
        cycle_entries = entries and p.entries.cycle and halted_to < e
        if e > 0 and ((any_held and p.exits.cycle) or cycle_entries):
            sl, w = slice(0, e), slice(a, a + e)
            if e == m and env is not None:  # the halts' env is of these very bars (and may hold values already)
                cenv = env
            else:
                cenv = portfolio_env(pf, close[sl], col(rows[sl]), col(eq[sl]), col(value[sl]), col(peak[sl]),
                                     col(day_start[sl]), col(prev[sl]))
            cbusy = np.zeros(e, dtype=bool)
            if any_held and exiting is None:
                cbusy |= _cycle_any(p.exits, cenv, w, a, a + e, e)
            elif any_held:  # only a new exit is busy; a verdict that holds elsewhere goes to the trace
                exit_verdicts = _cycle_verdicts(p.exits, cenv, w, a, a + e, (e, held.size))
                for _, v in exit_verdicts:
                    cbusy |= _any_rows(v & (held & ~exiting), axis=1)
            if cycle_entries:
                if any_held:
                    can_buy = self.buy_count[w] > _sum_rows(plan.buyable[w, hidx], axis=1, dtype=np.intp)
                else:
                    can_buy = self.buy_count[w] > 0
                if halted_to > 0:
                    can_buy[:halted_to] = False
                cbusy |= can_buy & _cycle_any(p.entries, cenv, w, a, a + e, e)
            if _count(cbusy):
                e = int(cbusy.argmax())

        held_ev = stop_ev = NO_EVENTS
        if exiting is not None and e > 0:
            k = slice(0, e)
            renv = env if e == m and env is not None else portfolio_env(
                pf, close[k], col(rows[k]), col(eq[k]), col(value[k]), col(peak[k]), col(day_start[k]), col(prev[k]))
            e, held_ev, stop_ev = held_back(p, pf.qty, exiting, a, renv, close[k], exit_verdicts)
        if e == 0:
            return _empty(a)
        k = slice(0, e)
        with np.errstate(divide="ignore", invalid="ignore"):
            exposure = np.where(eq[k] > 0, (eq[k] - pf.cash) / eq[k], 0.0)
        last = e - 1
        turned_ev = NO_EVENTS
        if turned and _count(enter[:e]):
            cand = self.enterable[a:a + e] & ~held
            cand[~enter[:e]] = False  # bars under a halt have none
            turned_ev = turned_away(plan, pf.qty, held if exiting is None else held & ~exiting, a, cand, close[k], eq[k])
        # in a decision's order: per-cycle verdicts, candidates and caps, guard blocks
        events = held_ev + turned_ev + stop_ev
        return QuietSpan(a, a + e, eq[k], exposure, tuple((hid, rows[k][on[k]]) for hid, on in active),
                         Marks(float(prev[last]), float(eq[last]), int(days[last]), float(day_start[last]),
                               float(peak[last])), events)


def _bits(mask: np.ndarray) -> np.ndarray:
    """A (T, N) bool mask as (T, ceil(N / 64)) uint64 words, symbol i at bit i % 64 of word i // 64."""
    t, n = mask.shape
    packed = np.packbits(mask, axis=1, bitorder="little")
    words = -(-n // 64) or 1
    out = np.zeros((t, words * 8), dtype=np.uint8)
    out[:, :packed.shape[1]] = packed
    return out.view(np.uint64)


def _rows(v, m: int) -> np.ndarray:
    """A verdict over a block of bars as one bool per bar (any symbol).

    Portfolio values come in as (m, 1) columns, so a verdict that varies by bar is 2-D;
    a 1-D (N,) verdict reads positions only and a 0-d one constants: the same every bar."""
    v = np.asarray(v, dtype=bool)
    if v.ndim == 2:
        return v[:, 0].copy() if v.shape[1] == 1 else _any_rows(v, axis=1)
    return np.full(m, _count(v) > 0)


def _cycle_verdicts(g: RuleGroup, env: dict | None, window: slice, a: int, b: int, shape: tuple[int, int]
                    ) -> list[tuple[str, np.ndarray]]:
    """Each per-cycle rule of ``g`` over a block as (rule id, (bars, N) verdict): none on the bars
    outside its regimes (``decide`` does not evaluate it there)."""
    out = []
    for c in g.cycle:
        v = np.broadcast_to(np.asarray(c.fn(env, window), dtype=bool), shape)
        if c.regime_ok is not None:
            v = v & c.regime_ok[a:b][:, None]
        out.append((c.rule.id, v))
    return out


def _cycle_any(g: RuleGroup, env: dict | None, window: slice, a: int, b: int, m: int) -> np.ndarray:
    """Bars of the block where some per-cycle rule of ``g`` holds for some symbol (in scope)."""
    out = np.zeros(m, dtype=bool)
    for c in g.cycle:
        hit = _rows(c.fn(env, window), m)
        if c.regime_ok is not None:
            hit &= c.regime_ok[a:b]
        out |= hit
    return out
