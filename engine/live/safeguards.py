"""Live safeguards: the kill switch (file flag, signal or command), burn-in caps and the
required passing paper run before the first live order."""
from __future__ import annotations

import copy
import sqlite3
from pathlib import Path

import numpy as np

from engine.cycle.decide import Decision

from engine.live.settings import BurnIn, LiveSettings
from engine.live.store import StateStore, now_ms
from engine.paths import project_path


def kill_switch_on(settings: LiveSettings, store: StateStore) -> bool:
    if settings.kill_switch_file and project_path(settings.kill_switch_file).exists():
        return True
    return bool(store.get("control", "kill", False))


def set_kill(store: StateStore, on: bool) -> None:
    store.db.execute("INSERT OR REPLACE INTO control(key, value, wall_ms) VALUES ('kill', ?, ?)",
                     ("true" if on else "false", now_ms()))


def burn_in_scale(b: BurnIn, store: StateStore, bar_ms: int) -> tuple[float, float]:
    """(entry scale, max entry notional) for this cycle: reduced while the account is in burn-in."""
    n, first = store.db.execute("SELECT COUNT(*), MIN(time_ms) FROM cycles").fetchone()
    in_cycles = n < b.cycles
    in_days = first is not None and bar_ms - first < b.days * 86_400_000 or (first is None and b.days > 0)
    if in_cycles or in_days:
        return b.cap_scale, b.max_order_notional
    return 1.0, float("inf")


def paper_passed(path: Path, min_cycles: int) -> bool:
    if not Path(path).exists():
        return False
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT COUNT(*) FROM sessions WHERE status='passed' AND cycles >= ?", (min_cycles,)).fetchone()
        return bool(row and row[0])
    except sqlite3.Error:
        return False
    finally:
        db.close()


def guard_decision(d: Decision, stale: np.ndarray, kill: bool, burn_in: tuple[float, float] | None,
                   price: np.ndarray, increment: np.ndarray) -> Decision:
    """The decision after the loop-level safeguards, as a new decision (``d`` is not changed):
    no order on a ``stale`` quote, no buy while the kill switch is on, and in burn-in (``burn_in``
    = (entry scale, max entry notional)) buys scaled down and capped at ``price`` (rounded down
    to each product's ``increment``)."""
    sell = np.where(stale, 0.0, d.sell_qty)
    buy = np.where(stale, 0.0, d.buy_qty)
    if kill:
        buy = np.zeros_like(buy)
    if burn_in is not None and buy.any():
        scale, cap = burn_in
        if scale < 1.0 or np.isfinite(cap):  # in burn-in: the notional cap holds even at cap_scale 1
            q = buy * scale
            with np.errstate(invalid="ignore", divide="ignore"):
                q = np.where(q * price > cap, cap / price, q)
                buy = np.floor(np.nan_to_num(q) / increment + 1e-9) * increment
    out = copy.copy(d)  # a new decision (any object with these fields): d stays as decided
    out.sell_qty, out.buy_qty = sell, buy
    return out
