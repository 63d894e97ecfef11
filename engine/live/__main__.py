"""Operator commands on a state file:

    python -m engine.live kill   --state state/main-live.sqlite   # kill switch on (the loop cancels and halts)
    python -m engine.live resume --state state/main-live.sqlite   # kill switch off
    python -m engine.live status --state state/main-live.sqlite   # sessions, orders by status, last alerts
    python -m engine.live resolve --state state/main-paper.sqlite [--alert ID]  # mark alerts resolved (all
                                                  # unresolved ones without --alert): the burn-in gate counts the rest
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.live.safeguards import set_kill
from engine.live.store import StateStore


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.live")
    ap.add_argument("command", choices=("kill", "resume", "status", "resolve"))
    ap.add_argument("--alert", type=int, default=None, help="resolve: only this alert id")
    ap.add_argument("--state", required=True, type=Path, help="the account's state file")
    a = ap.parse_args(argv)
    if not a.state.exists():
        print(f"error: no state file at {a.state}", file=sys.stderr)
        return 2
    st = StateStore(a.state)
    try:
        if a.command in ("kill", "resume"):
            set_kill(st, a.command == "kill")
            print(f"kill switch {'on' if a.command == 'kill' else 'off'} for {a.state}")
        elif a.command == "resolve":
            from engine.live.safeguards import resolve_alerts
            n = resolve_alerts(st, a.alert)
            if a.alert is not None and n == 0:
                print(f"error: {a.state} holds no unresolved alert #{a.alert}", file=sys.stderr)
                return 2
            print(f"{n} alert(s) resolved in {a.state}")
        else:
            from engine.live.report import live_summary
            s = live_summary(st)
            s["alerts"] = s["alerts"][-10:]
            print(json.dumps(s, indent=2, default=str))
    finally:
        st.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
