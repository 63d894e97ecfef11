"""What an operator sees of a session, read from its state file alone (never from the loop process).

One function per view, each returning JSON-ready data; the command line (engine/live/__main__.py)
prints them, the HTTP API (engine/live/console/server.py) serves them, the Prometheus collector
(engine/live/console/metrics.py) reads them. Times: ``*_wall_ms`` are wall-clock epoch ms, bar
times (``time``/``bar``) are the exchange clock's (the emulator's simulated clock offline).

Running or not is judged from the loop's heartbeat (``state.heartbeat``, written every cycle and
every ``BEAT_MS`` while it waits): a session whose heartbeat is overdue by more than
``GRACE_MS`` is reported ``not running``, whatever its ``sessions`` row says (a killed process
leaves that row ``running``).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from engine.live.store import FINAL, StateStore, now_ms
from engine.market.data import iso_utc

GRACE_MS = 15_000  # a heartbeat this far past its due time: the loop is gone (or hung)
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
EPOCH_MONDAY_MS = 4 * DAY_MS  # 1970-01-05 was a Monday: weeks start on Monday 00:00 UTC


def _iso(ms) -> str | None:
    return None if ms is None else iso_utc(int(ms))


def _has_table(store: StateStore, name: str) -> bool:
    return store.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _meta(store: StateStore) -> dict:
    meta = store.get("meta", "session")
    if meta is None:
        raise ValueError(f"{store.path} holds no session yet (no meta.session row): has a session started on it?")
    return meta


def heartbeat(store: StateStore, now: int | None = None) -> dict:
    """Whether the loop is alive (``running``), and whether its next cycle is overdue (``late``)."""
    now = now_ms() if now is None else now
    hb = store.get("state", "heartbeat")
    if hb is None:
        return {"running": False, "state": "never started", "late": False}
    age = now - int(hb["wall_ms"])
    overdue = now - int(hb["due_wall_ms"])
    out = {"pid": hb.get("pid"), "session": hb.get("session"), "last_beat_wall_ms": hb["wall_ms"],
           "last_beat_age_s": round(age / 1000, 3), "interval_s": round(hb["interval_wall_ms"] / 1000, 3)}
    if hb["status"] == "stopped":
        out.update(running=False, state="stopped", late=False)
        return out
    if overdue > GRACE_MS:
        out.update(running=False, state=f"not running (heartbeat {age / 1000:.0f} s old, due every "
                                        f"{min(hb['interval_wall_ms'], hb['due_wall_ms'] - hb['wall_ms']) / 1000:g} s)",
                   late=True)
        return out
    # the bar the loop is due at: extrapolate its clock from the last beat
    clock_now = hb["clock_ms"] + (now - hb["wall_ms"]) * hb["speed"]
    last = store.rows("SELECT time_ms FROM cycles ORDER BY t DESC LIMIT 1")
    late_by = 0.0
    if last:
        due_clock = last[0]["time_ms"] + 2 * hb["tf_ms"] + hb.get("settle_ms", 0)  # the next bar's close
        late_by = (clock_now - due_clock) / hb["speed"]
    out.update(running=True, state="running", late=late_by > GRACE_MS, late_by_s=round(max(late_by, 0) / 1000, 3))
    return out


def last_close(store: StateStore, symbols: list[str]) -> np.ndarray:
    row = store.db.execute("SELECT data FROM bars ORDER BY t DESC LIMIT 1").fetchone()
    if row is None:
        return np.full(len(symbols), np.nan)
    return np.frombuffer(row[0], dtype=np.float64).reshape(6, len(symbols))[3]


def positions(store: StateStore) -> list[dict]:
    """Held positions, marked at the newest stored bar's close, with unrealised PnL (before exit fees)."""
    symbols = _meta(store)["symbols"]
    close = last_close(store, symbols)
    out = []
    for p in store.rows("SELECT symbol, qty, entry_price, entry_t, entry_rule FROM positions ORDER BY symbol"):
        px = float(close[symbols.index(p["symbol"])]) if p["symbol"] in symbols else float("nan")
        mark = p["qty"] * px
        upnl = p["qty"] * (px - p["entry_price"]) if p["entry_price"] is not None else None
        out.append({**p, "price": _num(px), "value": _num(mark), "unrealised_pnl": _num(upnl),
                    "unrealised_pct": _num(px / p["entry_price"] - 1.0) if p["entry_price"] else None})
    return out


def _num(x):
    return None if x is None or not np.isfinite(x) else round(float(x), 10)


def orders(store: StateStore, open_only: bool = True, limit: int = 200) -> list[dict]:
    cols = "client_order_id, t, symbol, side, qty, type, limit_price, rule, status, filled, avg_price, fee, reason, " \
           "created_wall_ms, updated_wall_ms"
    if open_only:
        marks = ",".join("?" * len(FINAL))
        return store.rows(f"SELECT {cols} FROM orders WHERE status NOT IN ({marks}) ORDER BY t, client_order_id", FINAL)
    return store.rows(f"SELECT {cols} FROM orders ORDER BY created_wall_ms DESC, client_order_id LIMIT ?", (int(limit),))


def fills(store: StateStore, limit: int = 200) -> list[dict]:
    rows = store.rows("SELECT fill_id, client_order_id, t, symbol, side, qty, price, fee, slippage, time_ms, rule "
                      "FROM fills ORDER BY time_ms DESC, fill_id LIMIT ?", (int(limit),))
    for r in rows:
        r["time"] = _iso(r["time_ms"])
    return rows


def equity(store: StateStore, limit: int = 2000) -> list[dict]:
    """The equity curve, one point per cycle (the newest ``limit``), oldest first."""
    rows = store.rows("SELECT t, time_ms, equity, cash, exposure FROM cycles ORDER BY t DESC LIMIT ?", (int(limit),))
    return rows[::-1]


def pnl(store: StateStore) -> dict:
    """PnL today, this week (Monday 00:00 UTC on) and since the account started, on the exchange's
    clock: the newest cycle's equity against the last equity recorded before the window opened
    (the initial cash if the account started inside it)."""
    meta = _meta(store)
    start_cash = float(meta["initial_cash"])
    last = store.rows("SELECT time_ms, equity FROM cycles ORDER BY t DESC LIMIT 1")
    if not last:
        return {"equity": start_cash, "initial_cash": start_cash, "today": 0.0, "week": 0.0, "since_start": 0.0,
                "as_of": None}
    now, eq = int(last[0]["time_ms"]), float(last[0]["equity"])
    day0 = now // DAY_MS * DAY_MS
    week0 = (now - EPOCH_MONDAY_MS) // WEEK_MS * WEEK_MS + EPOCH_MONDAY_MS

    def base(since: int) -> float:
        r = store.db.execute("SELECT equity FROM cycles WHERE time_ms < ? ORDER BY t DESC LIMIT 1", (since,)).fetchone()
        return start_cash if r is None else float(r[0])

    out = {"as_of": _iso(now), "equity": eq, "initial_cash": start_cash}
    for name, since in (("today", day0), ("week", week0)):
        b = base(since)
        out[name], out[name + "_pct"] = round(eq - b, 8), round(eq / b - 1.0, 8) if b else None
    out["since_start"], out["since_start_pct"] = round(eq - start_cash, 8), round(eq / start_cash - 1.0, 8)
    out["day_start"], out["week_start"] = _iso(day0), _iso(week0)
    return out


def alerts(store: StateStore, limit: int = 20) -> list[dict]:
    rows = store.rows("SELECT id, wall_ms, t, level, kind, message, resolved_wall_ms FROM alerts ORDER BY id DESC LIMIT ?",
                      (int(limit),))
    for r in rows:
        r["wall"] = _iso(r["wall_ms"])
    return rows


def halts(store: StateStore) -> dict:
    """Risk halts holding at the newest cycle, and the operator's flags (kill switch, paused entries)."""
    pf = store.get("state", "portfolio") or {}
    last = store.db.execute("SELECT MAX(t) FROM cycles").fetchone()[0]
    risk = {k: int(v) for k, v in (pf.get("halts") or {}).items() if last is not None and int(v) > int(last)}
    return {"risk": risk, "kill_switch": bool(store.get("control", "kill", False)),
            "entries_paused": bool(store.get("control", "pause_entries", False))}


def burn_in(store: StateStore, meta: dict, hb: dict) -> dict | None:
    """Live: cycles/days left with reduced caps. Paper: the current session's progress towards what
    the burn-in gate asks of a paper session (cycles and wall-clock hours)."""
    b = store.get("state", "burn_in")
    if not b:
        return None
    if b["applies"]:
        n, first = store.db.execute("SELECT COUNT(*), MIN(time_ms) FROM cycles").fetchone()
        last = store.db.execute("SELECT MAX(time_ms) FROM cycles").fetchone()[0]
        days = 0.0 if first is None else (last - first) / DAY_MS
        active = n < b["cycles"] or days < b["days"]
        return {"kind": "live caps", "active": active, "cycles": n, "cycles_needed": b["cycles"],
                "days": round(days, 4), "days_needed": b["days"]}
    if b["proves"]:
        sid = hb.get("session")
        row = store.db.execute("SELECT started_wall_ms, COALESCE(ended_wall_ms, ?), status FROM sessions "
                               "WHERE id=?", (now_ms(), sid)).fetchone() if sid else None
        n = store.db.execute("SELECT COUNT(*) FROM cycles WHERE session=?", (sid,)).fetchone()[0] if sid else 0
        hours = 0.0 if row is None else (row[1] - row[0]) / 3_600_000
        return {"kind": "paper proof", "session": sid, "cycles": n, "cycles_needed": b["min_paper_cycles"],
                "hours": round(hours, 4), "hours_needed": b["min_paper_hours"],
                "met": n >= b["min_paper_cycles"] and hours >= b["min_paper_hours"]}
    return None


def status(store: StateStore, n_alerts: int = 10) -> dict:
    """Everything at a glance: heartbeat, last cycle, equity and cash, positions, open orders,
    PnL windows, halts, burn-in, the newest alerts."""
    meta = _meta(store)
    hb = heartbeat(store)
    raw_hb = store.get("state", "heartbeat") or {}
    timing = ", cycle_ms, lag_ms" if getattr(store, "has_cycle_timing", True) else ""
    last = store.rows(f"SELECT t, time_ms, status, regime, equity, cash, exposure, decided_wall_ms{timing} "
                      "FROM cycles ORDER BY t DESC LIMIT 1")
    cycle = None
    if last:
        c = last[0]
        cycle = {**c, "bar": _iso(c["time_ms"]), "decided": _iso(c["decided_wall_ms"]),
                 "n_cycles": store.db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0]}
    cash = store.rows("SELECT currency, amount FROM cash")
    pos = positions(store)
    p = pnl(store)
    sess = store.rows("SELECT id, started_wall_ms, ended_wall_ms, cycles, status FROM sessions ORDER BY id DESC LIMIT 1")
    return {
        "account": meta["account"], "mode": meta["mode"], "timeframe": meta["timeframe"], "symbols": meta["symbols"],
        "state_file": str(store.path), "heartbeat": hb, "last_cycle": cycle,
        "equity": p["equity"], "cash": {r["currency"]: r["amount"] for r in cash},
        "positions_value": round(sum(x["value"] or 0.0 for x in pos), 10),
        "unrealised_pnl": round(sum(x["unrealised_pnl"] or 0.0 for x in pos), 10),
        "positions": pos, "open_orders": orders(store), "pnl": p, "halts": halts(store),
        "burn_in": burn_in(store, meta, raw_hb), "alerts": alerts(store, n_alerts),
        "session": sess[0] if sess else None, "rate": raw_hb.get("rate", {}),
        "controls": _controls(store),
    }


def _controls(store: StateStore) -> list[dict]:
    if not _has_table(store, "control_log"):
        return []
    from engine.live.controls import history
    return history(store, 10)


def why(store: StateStore, symbol: str, when: str | int) -> dict:
    """Why SYMBOL was (not) traded at the cycle deciding at ``when`` (a bar index, or an ISO time:
    the cycle whose bar contains it), from that cycle's stored trace, decisions, orders and fills."""
    from engine.explain import parse_time
    meta = _meta(store)
    symbols = meta["symbols"]
    if symbol not in symbols:
        raise ValueError(f"symbol {symbol!r} is not traded by this account; expected one of {', '.join(symbols)}")
    i = symbols.index(symbol)
    if isinstance(when, int) or str(when).lstrip("-").isdigit():
        row = store.rows("SELECT * FROM cycles WHERE t=?", (int(when),))
    else:
        ms = parse_time(str(when))
        row = store.rows("SELECT * FROM cycles WHERE time_ms <= ? ORDER BY t DESC LIMIT 1", (ms,))
    if not row:
        raise ValueError(f"no cycle at {when!r} in {store.path}; expected a bar index or an ISO time within the session")
    c = row[0]
    tr = json.loads(c["trace"] or "{}")
    has = lambda idx: i in (idx or [])
    bought, sold = has(tr.get("buy")), has(tr.get("sell"))
    candidate = has(tr.get("candidate"))
    fired = sorted(r for r, idx in (tr.get("cycle_true") or {}).items() if has(idx))
    clipped = sorted(r for r, idx in (tr.get("clip") or {}).items() if has(idx))
    capped = sorted(r for r, idx in (tr.get("cap_block") or {}).items() if has(idx))
    blocked = sorted(r for r, idx in (tr.get("block") or {}).items() if has(idx))
    reasons = []
    if bought or sold:
        reasons.append(f"{'bought' if bought else 'sold'}")
    if c["halts"] and json.loads(c["halts"]):
        reasons.append("risk halt(s) active: " + ", ".join(json.loads(c["halts"])))
    if not candidate and not (bought or sold):
        reasons.append("not an entry candidate at this bar (no entry rule held, or outside the universe)")
    if capped:
        reasons.append("reduced to nothing by cap(s): " + ", ".join(capped))
    if blocked:
        reasons.append("blocked by guard(s): " + ", ".join(blocked))
    if candidate and not (bought or capped or blocked):
        reasons.append("a candidate, not bought (ranked out, already held, or a loop safeguard: kill switch, "
                       "paused entries, stale quote, open orders)")
    return {
        "symbol": symbol, "t": c["t"], "bar": _iso(c["time_ms"]), "regime": c["regime"],
        "traded": bought or sold, "bought": bought, "sold": sold, "candidate": candidate,
        "rules_true": fired, "clipped_by": clipped, "capped_by": capped, "blocked_by": blocked,
        "halts": json.loads(c["halts"] or "[]"), "reasons": reasons,
        "decisions": store.rows("SELECT side, qty, rule FROM decisions WHERE t=? AND symbol=?", (c["t"], symbol)),
        "orders": store.rows("SELECT client_order_id, side, qty, type, status, filled, avg_price FROM orders "
                             "WHERE t=? AND symbol=?", (c["t"], symbol)),
        "fills": store.rows("SELECT side, qty, price, fee, time_ms FROM fills WHERE symbol=? AND t=?",
                            (symbol, c["t"] + 1)),
    }
