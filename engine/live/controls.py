"""Operator actions on a running session, written to its state file for the loop to pick up.

Whoever acts (the command line, the console's HTTP API) only writes here: the flag in ``control``
and one ``control_log`` row saying who asked, when, and through what. The loop reads the flags
at its next cycle (the kill switch also while it waits for the next bar) and stamps the log row
``applied_wall_ms`` when it has acted on it. Nothing here talks to the loop process directly.

    pause   entries halted (exits still run); open orders stay
    resume  pause and kill switch off
    kill    kill switch on: open orders cancelled, entries halted (engine/live/safeguards.py)
    reload  the rule files reloaded at the next cycle even if unchanged (validated first, as any reload)
"""
from __future__ import annotations

import json

from engine.live.store import StateStore, now_ms

ACTIONS = ("pause", "resume", "kill", "reload")


def _flag(db, key: str, on: bool) -> None:
    db.execute("INSERT OR REPLACE INTO control(key, value, wall_ms) VALUES (?, ?, ?)",
               (key, "true" if on else "false", now_ms()))


def request(store: StateStore, action: str, who: str, via: str, detail: dict | None = None) -> int:
    """Record ``action`` (one of ACTIONS) asked by ``who`` through ``via`` (cli | api); returns its log id."""
    if action not in ACTIONS:
        raise ValueError(f"control action {action!r}; expected one of {', '.join(ACTIONS)}")
    with store.txn() as db:
        if action == "pause":
            _flag(db, "pause_entries", True)
        elif action == "resume":
            _flag(db, "pause_entries", False)
            _flag(db, "kill", False)
        elif action == "kill":
            _flag(db, "kill", True)
        return db.execute("INSERT INTO control_log(wall_ms, action, who, via, detail) VALUES (?,?,?,?,?)",
                          (now_ms(), action, str(who)[:200], via, json.dumps(detail or {}, sort_keys=True))).lastrowid


def entries_paused(store: StateStore) -> bool:
    return bool(store.get("control", "pause_entries", False))


def pending(store: StateStore) -> list[dict]:
    """Actions the loop has not acted on yet (oldest first)."""
    return store.rows("SELECT id, wall_ms, action, who, via FROM control_log WHERE applied_wall_ms IS NULL ORDER BY id")


def mark_applied(db, ids: list[int]) -> None:
    db.executemany("UPDATE control_log SET applied_wall_ms=? WHERE id=?", [(now_ms(), i) for i in ids])


def history(store: StateStore, limit: int = 50) -> list[dict]:
    return store.rows("SELECT id, wall_ms, action, who, via, applied_wall_ms FROM control_log ORDER BY id DESC LIMIT ?",
                      (int(limit),))
