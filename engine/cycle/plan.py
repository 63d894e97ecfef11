"""The cycle's plan: every per-run constant the decision reads, built once from a prepared run.

``decide`` (one bar) and the quiet-bar scan (a block of bars, engine/cycle/quiet.py) both
read their rules from this one plan: the same halts (condition, action, cooldown), the same
exit and entry groups, the same "could be bought" mask and the same caps in file order.
The plan is frozen and built by the caller (``cycle_plan(p)``), so neither the decision
nor the scan keeps a cache inside its inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from engine.cycle.prepare import CycleFn, Prepared, RuleGroup

DAY_MS = 86_400_000


@dataclass(frozen=True)
class HaltState:
    """Halt id -> first bar it no longer holds. Frozen: a cycle returns a new one."""

    until: Mapping[str, int] = None  # type: ignore[assignment]
    # the scoped locks of the risk file's protections (engine/cycle/locks.py); None: none yet
    locks: Any = None

    def __post_init__(self):
        object.__setattr__(self, "until", dict(self.until or {}))

    def get(self, halt_id: str) -> int:
        return self.until.get(halt_id, -1)


@dataclass(frozen=True)
class HaltStep:
    """One risk halt as both decide and the quiet scan apply it."""

    id: str
    fn: CycleFn  # fn(env, t or a window of bars) -> the condition
    cooldown_bars: int
    flatten: bool  # "flatten" (sell everything) rather than "block_entries"


@dataclass(frozen=True, eq=False)
class LockStep:
    """One scoped protection that locks entries (engine/cycle/locks.py), resolved against the universe."""

    id: str
    type: str  # cooldown | stop_outs | low_profit
    scope: str  # symbol | theme | portfolio
    lock_bars: int
    count: int
    window_bars: int
    min_trades: int
    min_return: float
    counts: np.ndarray  # (N,) bool: the symbol's trades count (its theme is among ``themes:``, or none given)


def lock_steps(p: Prepared) -> tuple[LockStep, ...]:
    out = []
    for lk in p.rules.risk.locks:
        counts = (np.array([i.theme in lk.themes for i in p.market.info], dtype=bool) if lk.themes
                  else np.ones(p.market.n_symbols, dtype=bool))
        out.append(LockStep(lk.id, lk.type, lk.scope, lk.lock_bars, lk.count, lk.window_bars, lk.min_trades,
                            lk.min_return, counts))
    return tuple(out)


@dataclass(frozen=True)
class CapStep:
    """One risk cap resolved against the universe, applied in the risk file's order."""

    id: str
    type: str  # asset_weight | theme_weight | total_weight | position_count
    asset: np.ndarray | None = None  # (N,) per-asset weight cap
    theme: np.ndarray | None = None  # (n_themes,) per-theme weight cap
    limit: float | None = None  # total weight, or the position count


@dataclass(frozen=True, eq=False)
class CyclePlan:
    p: Prepared
    halts: tuple[HaltStep, ...]
    caps: tuple[CapStep, ...]
    needs_env: bool  # some rule of the cycle reads position / portfolio values
    has_vetoes: bool
    # per group: (rule id, its (T, N) mask for a series rule, None for a per-cycle rule), file order
    entry_rules: tuple[tuple[str, np.ndarray | None], ...]
    exit_rules: tuple[tuple[str, np.ndarray | None], ...]
    buyable: np.ndarray  # (T, N) in the universe and trading
    enterable: np.ndarray  # (T, N) buyable and an entry series rule holds
    days: np.ndarray  # (T,) UTC day number of each bar (the portfolio's day roll)
    # a book: per strategy, its exit rules as ``exit_rules`` (which rule closed a position)
    sleeve_exit_rules: tuple[tuple[tuple[str, np.ndarray | None], ...], ...] = ()
    locks: tuple[LockStep, ...] = ()  # the risk file's scoped locks
    # the decisions' trace-only bookkeeping (which candidates each cap clipped, blocked or
    # passed) is kept; False for a run that records no trace and whose decisions nobody
    # observes (a grid point): its orders, fills and results are the same
    records: bool = True

    @property
    def entries(self) -> RuleGroup:
        return self.p.entries

    @property
    def exits(self) -> RuleGroup:
        return self.p.exits


def cap_steps(p: Prepared) -> tuple[CapStep, ...]:
    """The risk file's caps in file order (docs/rules.md: caps clip target weights in file order);
    two caps of one type both apply."""
    symbols = p.market.symbols
    out = []
    for c in p.rules.risk.caps:
        if c.type == "asset_weight":
            out.append(CapStep(c.id, c.type, asset=np.array([c.per_symbol.get(s, c.limit) for s in symbols],
                                                            dtype=np.float64)))
        elif c.type == "theme_weight":
            out.append(CapStep(c.id, c.type, theme=np.array([c.limits.get(th, c.limits["default"])
                                                             for th in p.theme_names], dtype=np.float64)))
        elif c.type == "total_weight":
            out.append(CapStep(c.id, c.type, limit=float(c.limit)))
        elif c.type == "position_count":
            out.append(CapStep(c.id, c.type, limit=int(c.limit)))
    return tuple(out)


def cycle_plan(p: Prepared) -> CyclePlan:
    def rules(g: RuleGroup) -> tuple[tuple[str, np.ndarray | None], ...]:
        masks = {id(s.rule): s.mask for s in g.series}
        return tuple((r.id, masks.get(id(r))) for r in g.rules)

    buyable = p.universe & p.available
    return CyclePlan(
        p=p,
        halts=tuple(HaltStep(h.rule.id, fn, int(h.cooldown_bars), h.action == "flatten") for h, fn in p.halts),
        caps=cap_steps(p),
        needs_env=bool(p.entries.cycle or p.exits.cycle or p.vetoes.cycle or p.halts or p.guards.cycle),
        has_vetoes=bool(p.vetoes.series or p.vetoes.cycle),
        entry_rules=rules(p.entries), exit_rules=rules(p.exits),
        buyable=buyable, enterable=buyable & p.entries.combined,
        days=p.market.times // DAY_MS,
        sleeve_exit_rules=tuple(rules(sl.exits) for sl in p.book.sleeves) if p.book is not None else (),
        locks=lock_steps(p),
    )
