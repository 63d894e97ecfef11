"""mode=shadow (the shadow comparison command): replay a dry_run as a backtest, list every difference.

    python run.py mode=shadow live.account=NAME        # reads <state_dir>/NAME-dry_run.sqlite

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
from engine.modes.setup import load_rules

log = logging.getLogger(__name__)


def compare(store: StateStore, rules, cfg: Mapping[str, Any]) -> dict:
    """The shadow comparison with the backtest as its replay."""
    return shadow.compare(store, rules, cfg, run_backtest)


def run(cfg: Mapping[str, Any], out_dir: Path, overrides: list[str], redacted: Mapping[str, Any]) -> dict:
    settings = LiveSettings.from_mapping(cfg.get("live"))
    path = settings.state_path("dry_run")
    if not path.exists():
        raise LiveError(f"no dry_run state file at {path} (live.state_dir / live.account); run mode=dry_run first")
    store = StateStore(path)
    try:
        report = compare(store, load_rules(cfg), cfg)
    finally:
        store.close()
    out = write_report(out_dir, report)
    n = report["n_differences"]
    for d in report["differences"][:20]:
        log.warning("differs at %s: %s %s dry_run=%s backtest=%s", d["time"], d["what"], d["symbol"] or "",
                    d["dry_run"], d["backtest"])
    print(f"shadow: {report['cycles']} cycles {report['start']} .. {report['end']}, {n} difference(s); {out}")
    report.pop("_result", None)
    return report
