"""The console's views as text for a person (``python -m engine.live status|positions|... --state FILE``)."""
from __future__ import annotations


def _money(x) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:+.2f}%"


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    if not rows:
        return "  (none)"
    cells = [[h for _, h in cols]] + [["-" if r.get(k) is None else (f"{r[k]:.8g}" if isinstance(r[k], float) else str(r[k]))
                                       for k, _ in cols] for r in rows]
    w = [max(len(c[j]) for c in cells) for j in range(len(cols))]
    return "\n".join("  " + "  ".join(c[j].ljust(w[j]) for j in range(len(cols))).rstrip() for c in cells)


POSITION_COLS = [("symbol", "symbol"), ("qty", "qty"), ("entry_price", "entry"), ("price", "price"),
                 ("value", "value"), ("unrealised_pnl", "unrealised"), ("entry_rule", "rule")]
ORDER_COLS = [("client_order_id", "client id"), ("symbol", "symbol"), ("side", "side"), ("type", "type"),
              ("qty", "qty"), ("limit_price", "limit"), ("filled", "filled"), ("status", "status")]
ALERT_COLS = [("id", "#"), ("wall", "when (UTC)"), ("level", "level"), ("kind", "kind"), ("message", "message")]


def positions(rows: list[dict]) -> str:
    return "positions\n" + _table(rows, POSITION_COLS)


def orders(rows: list[dict], title: str = "open orders") -> str:
    return f"{title}\n" + _table(rows, ORDER_COLS)


def alerts(rows: list[dict]) -> str:
    return "alerts (newest first)\n" + _table(rows, ALERT_COLS)


def pnl(p: dict) -> str:
    lines = [f"PnL as of bar {p['as_of'] or '-'} (equity {_money(p['equity'])}, started with {_money(p['initial_cash'])})"]
    for name, label in (("today", "today"), ("week", "this week"), ("since_start", "since start")):
        lines.append(f"  {label:<12} {_money(p[name]):>14}  {_pct(p.get(name + '_pct'))}")
    return "\n".join(lines)


def status(s: dict) -> str:
    hb, c = s["heartbeat"], s["last_cycle"]
    late = f", LATE by {hb.get('late_by_s', 0):g} s" if hb.get("late") and hb.get("running") else ""
    lines = [f"{s['mode']} account {s['account']} ({s['timeframe']} bars, {len(s['symbols'])} symbols) - {s['state_file']}",
             f"  state        {hb['state']}{late}" + (f" (pid {hb['pid']}, beat {hb['last_beat_age_s']:g} s ago)"
                                                       if hb.get("running") else "")]
    if c:
        lag = f", decided {c['lag_ms'] / 1000:.2f} s after the close" if c.get("lag_ms") is not None else ""
        took = f", took {c['cycle_ms']:.0f} ms" if c.get("cycle_ms") is not None else ""
        lines.append(f"  last cycle   bar {c['bar']} (#{c['t']}, {c['n_cycles']} cycles), regime {c['regime']}{lag}{took}")
    else:
        lines.append("  last cycle   none yet")
    cash = ", ".join(f"{_money(v)} {k}" for k, v in s["cash"].items())
    lines.append(f"  equity       {_money(s['equity'])} (cash {cash}; positions {_money(s['positions_value'])}, "
                 f"unrealised {_money(s['unrealised_pnl'])})")
    p = s["pnl"]
    lines.append(f"  PnL          today {_money(p['today'])} ({_pct(p.get('today_pct'))}), week {_money(p['week'])} "
                 f"({_pct(p.get('week_pct'))}), since start {_money(p['since_start'])} ({_pct(p.get('since_start_pct'))})")
    h = s["halts"]
    flags = [f"risk halt {k} (until bar {v})" for k, v in sorted(h["risk"].items())]
    flags += ["KILL SWITCH ON"] * h["kill_switch"] + ["entries paused"] * h["entries_paused"]
    lines.append(f"  halts        {', '.join(flags) or 'none'}")
    b = s["burn_in"]
    if b and b["kind"] == "live caps":
        lines.append(f"  burn-in      {'active' if b['active'] else 'over'}: {b['cycles']}/{b['cycles_needed']} cycles, "
                     f"{b['days']:g}/{b['days_needed']:g} days")
    elif b:
        lines.append(f"  burn-in      paper proof {'met' if b['met'] else 'in progress'}: session {b['session']} "
                     f"{b['cycles']}/{b['cycles_needed']} cycles, {b['hours']:g}/{b['hours_needed']:g} h")
    return "\n".join([*lines, "", positions(s["positions"]), "", orders(s["open_orders"]), "", alerts(s["alerts"])])
