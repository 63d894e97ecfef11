"""mode=shadow (the shadow comparison command): replay a dry_run, paper or live account as a
backtest, list every difference.

    python run.py mode=shadow live.account=NAME                  # reads <state_dir>/NAME-dry_run.sqlite
    python run.py mode=shadow mode.state=paper live.account=NAME # reads <state_dir>/NAME-paper.sqlite

Writes shadow.json (every differing decision) and returns the report; ``n_differences`` is
what a gate (CI, an ops script) checks.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from engine.live.errors import LiveError
from engine.live.settings import LiveSettings
from engine.backtest.engine import run_backtest
from engine.live import shadow
from engine.live.shadow import write_report
from engine.live.store import StateStore
from engine.modes import LIVE_MODES
from engine.modes.setup import load_rules
from engine.paths import leaves_root

log = logging.getLogger(__name__)


def compare(store: StateStore, rules, cfg: Mapping[str, Any], mode: str = "dry_run") -> dict:
    """The shadow comparison with the backtest as its replay."""
    return shadow.compare(store, rules, cfg, run_backtest, mode)


def state_mode(cfg: Mapping[str, Any]) -> str:
    """Which account a state-reading mode (shadow, explain) reads: ``mode.state`` (a live-clock mode)."""
    mode = (cfg.get("mode") or {}).get("state") or "dry_run"
    if mode not in LIVE_MODES:
        raise LiveError(f"mode.state is {mode!r}; expected one of {', '.join(LIVE_MODES)} (the account's mode)")
    return mode


def run(cfg: Mapping[str, Any], out_dir: Path, overrides: list[str], redacted: Mapping[str, Any]) -> dict:
    settings = LiveSettings.from_mapping(cfg.get("live"))
    mode = state_mode(cfg)
    path = settings.state_path(mode)
    if not path.exists():
        raise LiveError(f"no {mode} state file at {path} (live.state_dir / live.account); run mode={mode} first")
    outside = leaves_root(path.parent, path)
    if outside is not None:  # refused unopened: SQLite would read (and may quote) any file
        raise LiveError(f"{path} is a symbolic link that leads outside live.state_dir (to {outside}); "
                        f"expected the {mode} state file itself (run mode={mode} first)")
    store = StateStore(path)
    try:
        report = compare(store, load_rules(cfg), cfg, mode)
    finally:
        store.close()
    out = write_report(out_dir, report)
    n = report["n_differences"]
    for d in report["differences"][:20]:
        log.warning("differs at %s: %s %s %s=%s backtest=%s", d["time"], d["what"], d["symbol"] or "",
                    mode, d[mode], d["backtest"])
    print(f"shadow of {mode}: {report['cycles']} cycles {report['start']} .. {report['end']}, {n} difference(s); {out}")
    report.pop("_result", None)
    return report
