"""Operator commands on a state file:

    python -m engine.live kill   --state state/main-live.sqlite   # kill switch on (the loop cancels and halts)
    python -m engine.live resume --state state/main-live.sqlite   # kill switch off
    python -m engine.live status --state state/main-live.sqlite   # sessions, orders by status, last alerts
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
    ap.add_argument("command", choices=("kill", "resume", "status"))
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
