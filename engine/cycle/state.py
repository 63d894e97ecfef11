"""What a cycle changes, as values: ``decide`` and the quiet-bar scan return these and
their caller applies them (the cycle itself writes into nothing it was given).

The portfolio's positions and cash change only through fills (the broker's job); what the
decision itself changes is small and listed here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.cycle.plan import HaltState
from engine.cycle.portfolio import Portfolio


@dataclass(frozen=True, eq=False)
class StateChange:
    """The state changes of one ``decide`` at bar ``t``."""

    t: int
    halts: HaltState  # the halt state after this cycle (a halt fired: its cooldown's end)
    # a flatten halt's cooldown ended at t: drawdown is measured from this equity on
    # (otherwise a drawdown halt would hold forever once the account is flat); None: unchanged
    peak_equity: float | None
    exiting: np.ndarray  # (N,) exits under way after this cycle (retried every bar until flat)


@dataclass(frozen=True)
class Marks:
    """The portfolio's marks after a quiet stretch marked a block at a time (what
    :meth:`Portfolio.mark` would have left after its last bar)."""

    prev_equity: float
    equity: float
    day: int
    day_start_equity: float
    peak_equity: float


def apply_change(pf: Portfolio, change: StateChange) -> HaltState:
    """Apply a decision's state changes to the portfolio; returns the new halt state."""
    if change.peak_equity is not None:
        pf.peak_equity = change.peak_equity
    pf.exiting = change.exiting
    return change.halts


def apply_marks(pf: Portfolio, m: Marks) -> None:
    pf.prev_equity, pf.equity = m.prev_equity, m.equity
    pf.day, pf.day_start_equity, pf.peak_equity = m.day, m.day_start_equity, m.peak_equity
