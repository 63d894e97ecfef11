"""Operator commands on a state file (docs/console.md):

    python -m engine.live status    --state FILE [--json]  # running?, last cycle, equity, positions, orders, PnL,
                                                           # halts, burn-in, last alerts
    python -m engine.live positions --state FILE [--json]  # held positions with unrealised PnL
    python -m engine.live orders    --state FILE [--json] [--all]   # open orders (--all: the newest 200)
    python -m engine.live pnl       --state FILE [--json]  # PnL today, this week, since start
    python -m engine.live alerts    --state FILE [--json] [--limit N]
    python -m engine.live pause|resume|kill|reload --state FILE   # operator actions, recorded with who/when
    python -m engine.live resolve   --state FILE [--alert ID]  # mark alerts resolved (the burn-in gate counts the rest)
    python -m engine.live serve     --state FILE [--host 127.0.0.1] [--port 8765]  # HTTP API + dashboard
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from engine.live import controls
from engine.live.store import StateStore

VIEWS = ("status", "positions", "orders", "pnl", "alerts")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.live")
    ap.add_argument("command", choices=(*VIEWS, *controls.ACTIONS, "resolve", "serve"))
    ap.add_argument("--state", required=True, type=Path, help="the account's state file")
    ap.add_argument("--json", action="store_true", help="views: JSON for scripts")
    ap.add_argument("--all", action="store_true", help="orders: every order (newest first), not only open ones")
    ap.add_argument("--limit", type=int, default=20, help="alerts: how many (newest first)")
    ap.add_argument("--alert", type=int, default=None, help="resolve: only this alert id")
    ap.add_argument("--host", default="127.0.0.1", help="serve: address to bind (default loopback only)")
    ap.add_argument("--port", type=int, default=8765, help="serve: port (0: any free port)")
    ap.add_argument("--token-env", default="RULEBOOK_CONSOLE_TOKEN",
                    help="serve: environment variable holding the control endpoints' bearer token")
    a = ap.parse_args(argv)
    if not a.state.exists():
        print(f"error: no state file at {a.state}", file=sys.stderr)
        return 2
    if a.command == "serve":
        from engine.live.console.server import serve
        return serve(a.state, a.host, a.port, a.token_env)
    if a.command in VIEWS:
        return _view(a)
    st = StateStore(a.state)
    try:
        if a.command in controls.ACTIONS:
            n = controls.request(st, a.command, who=_who(), via="cli")
            print(f"{a.command} recorded in {a.state} (action #{n}); the loop applies it at its next cycle"
                  + (" (the kill switch within 0.2 s)" if a.command == "kill" else ""))
        else:
            from engine.live.safeguards import resolve_alerts
            n = resolve_alerts(st, a.alert)
            if a.alert is not None and n == 0:
                print(f"error: {a.state} holds no unresolved alert #{a.alert}", file=sys.stderr)
                return 2
            print(f"{n} alert(s) resolved in {a.state}")
    finally:
        st.close()
    return 0


def _view(a) -> int:
    from engine.live.console import status as views, text
    st = StateStore.reader(a.state)
    try:
        try:
            if a.command == "status":
                data = views.status(st)
            elif a.command == "positions":
                data = views.positions(st)
            elif a.command == "orders":
                data = views.orders(st, open_only=not a.all)
            elif a.command == "pnl":
                data = views.pnl(st)
            else:
                data = views.alerts(st, a.limit)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if a.json:
            print(json.dumps(data, indent=2, default=str))
        elif a.command == "orders":
            print(text.orders(data, "open orders" if not a.all else "orders (newest first)"))
        else:
            print(getattr(text, a.command)(data))
    finally:
        st.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
