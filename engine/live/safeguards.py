"""Live safeguards: the kill switch (file flag, signal or command), burn-in caps and the
required passing paper run before the first live order (the burn-in gate, docs/live.md)."""
from __future__ import annotations

import copy
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.cycle.decide import Decision
from engine.live.errors import LiveError

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


@dataclass(frozen=True)
class PaperNeed:
    """What a live start needs from the account's paper record (live.burn_in)."""

    exchange: str  # exchange.name: a session against local_sim does not unlock coinbase
    symbols: tuple[str, ...]
    rules_hash: str  # the rule set's fingerprint (engine/live/reload.py), every cycle of the session
    min_cycles: int
    min_hours: float  # wall-clock duration of the session


@dataclass(frozen=True)
class PaperVerdict:
    passed: bool
    reason: str  # why not (the closest session's shortfall), or which session passed


def unresolved_alerts(db: sqlite3.Connection, since_wall_ms: int = 0) -> list[tuple]:
    """Warning and error alerts raised since ``since_wall_ms`` that no operator has resolved
    (``python -m engine.live resolve``)."""
    return db.execute("SELECT id, level, kind, message FROM alerts WHERE level IN ('warning', 'error') "
                      "AND resolved_wall_ms IS NULL AND wall_ms >= ? ORDER BY id", (since_wall_ms,)).fetchall()


def resolve_alerts(store: StateStore, alert_id: int | None = None) -> int:
    """An operator marks alerts resolved (one, or every unresolved one); returns how many."""
    sql = "UPDATE alerts SET resolved_wall_ms=? WHERE resolved_wall_ms IS NULL"
    args: tuple = (now_ms(),)
    if alert_id is not None:
        sql, args = sql + " AND id=?", (now_ms(), alert_id)
    return store.db.execute(sql, args).rowcount


def paper_verdict(path: Path, need: PaperNeed) -> PaperVerdict:
    """Whether the paper state file at ``path`` records a session that unlocks live trading:
    ended, on the same exchange, symbols and rule set (every cycle), at least ``min_cycles``
    cycles and ``min_hours`` of wall-clock time, and no unresolved warning or error alert
    from its start on."""
    path = Path(path)
    if not path.exists():
        return PaperVerdict(False, f"no paper state file at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = db.execute("SELECT value FROM meta WHERE key='session'").fetchone()
        symbols = tuple(json.loads(meta[0])["symbols"]) if meta else ()
        if symbols != tuple(need.symbols):
            return PaperVerdict(False, f"the paper account trades [{', '.join(symbols)}], live would trade "
                                f"[{', '.join(need.symbols)}]")
        rows = db.execute("SELECT id, started_wall_ms, ended_wall_ms, cycles, exchange FROM sessions "
                          "WHERE ended_wall_ms IS NOT NULL ORDER BY id DESC").fetchall()
        if not rows:
            return PaperVerdict(False, "no paper session has ended yet")
        reasons = []
        for sid, started, ended, cycles, exchange in rows:
            hours = (ended - started) / 3_600_000
            hashes = {h for (h,) in db.execute("SELECT DISTINCT rules_hash FROM cycles WHERE session=?", (sid,))}
            why = []
            if exchange != need.exchange:
                why.append(f"ran on exchange {exchange or 'unrecorded'!s}, live is on {need.exchange}")
            if hashes != {need.rules_hash}:
                why.append(f"ran rule set(s) {', '.join(sorted(map(str, hashes))) or 'none'}, live runs {need.rules_hash}")
            if cycles < need.min_cycles:
                why.append(f"{cycles} cycle(s) < live.burn_in.min_paper_cycles {need.min_cycles}")
            if hours < need.min_hours:
                why.append(f"{hours:.2f} h < live.burn_in.min_paper_hours {need.min_hours:g}")
            if not why:
                open_alerts = unresolved_alerts(db, started)
                if open_alerts:
                    a = open_alerts[0]
                    why.append(f"{len(open_alerts)} unresolved alert(s) since it started (first: #{a[0]} {a[1]} "
                               f"{a[2]}: {a[3]}); resolve them with python -m engine.live resolve --state {path}")
            if not why:
                return PaperVerdict(True, f"paper session {sid}: {cycles} cycles over {hours:.2f} h on {exchange}")
            reasons.append(f"session {sid}: " + "; ".join(why))
        return PaperVerdict(False, reasons[0] + (f" (and {len(reasons) - 1} older session(s) that do not pass either)"
                                                 if len(reasons) > 1 else ""))
    except sqlite3.Error as e:
        return PaperVerdict(False, f"{path} cannot be read as a paper state file ({e})")
    finally:
        db.close()


def check_live_gate(settings: LiveSettings, need: PaperNeed) -> None:
    """Refuse a live start without a passing paper session (live.burn_in.require_paper)."""
    if not settings.burn_in.require_paper:
        return
    paper = settings.state_path("paper")
    v = paper_verdict(paper, need)
    if not v.passed:
        raise LiveError(f"live trading refused: no passing paper session in {paper}: {v.reason}. A live start needs "
                        f"one on exchange {need.exchange} with the same symbols and rule set, of >= "
                        f"{need.min_cycles} cycles and >= {need.min_hours:g} h, with no unresolved alert; "
                        f"run mode=paper exchange={need.exchange} live.account={settings.account} first")
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
