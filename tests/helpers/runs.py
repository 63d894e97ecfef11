"""Compose the real Hydra config and run modes in-process, or run.py as a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engine.paths import PROJECT_ROOT

CONF_DIR = str(PROJECT_ROOT / "conf")


def compose_config(overrides: list[str] | None = None) -> dict:
    """The composed config as a plain dict, exactly as run.py would see it."""
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(config_name="config", overrides=list(overrides or []))
    return OmegaConf.to_container(cfg, resolve=True)


def run_backtest(overrides: list[str], out_dir: Path) -> dict:
    from engine.modes import backtest

    cfg = compose_config(overrides)
    return backtest.run(cfg, out_dir, overrides, cfg)


def run_cli(args: list[str], cwd: Path | None = None, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` in a subprocess, output captured."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), *args], cwd=cwd or PROJECT_ROOT,
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def exits_2_with_one_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """A user's mistake as the command reports it: exit 2, no traceback, one ``error:`` line on
    stderr holding every needle (other log lines may surround it); returns that line."""
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ---- validate's verdict against the run's (tests/test_validate_agrees.py) --------------------------
CHECK_ENV = {"COINBASE_API_KEY": "organizations/test/apiKeys/VERDICT-KEY", "COINBASE_API_SECRET": "verdict-secret-value"}


def validate_verdict(overrides: list[str]) -> list[str]:
    """The problems (code and key) mode=validate prints for these overrides ([] = config OK)."""
    from engine.config.entry import compose, run_check

    with_mode = ["mode=validate", *overrides]
    return [f"{p.code} {p.path}" for p in run_check(compose(with_mode), CHECK_ENV, overrides=with_mode).problems]


def start_verdict(overrides: list[str]) -> tuple[str, list[str]] | None:
    """Start a backtest as run.py does, up to its first bar: None, or (the user error's kind, its
    problem codes). Any other exception propagates: a traceback is a failure of its own."""
    import logging

    from engine.config import ConfigError
    from engine.config.entry import compose, prepare_run
    from engine.cycle.prepare import prepare
    from engine.errors import user_error_types
    from engine.modes.setup import backtest_settings, load_rules, market_for

    with_mode = ["mode=backtest", *overrides]
    try:
        cfg = prepare_run(compose(with_mode), logging.getLogger("rulebook.verdict"), env=CHECK_ENV,
                          overrides=with_mode).config
        market = market_for(cfg)
        rules = load_rules(cfg)
        backtest_settings(cfg, market)
        prepare(market, rules)
    except ConfigError as exc:
        return "config", [f"{p.code} {p.path}" for p in exc.report.problems]
    except user_error_types() as exc:
        return type(exc).__name__, [str(exc)]
    return None


def run_rulebook(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300,
                 installed: bool = False) -> subprocess.CompletedProcess:
    """The ``rulebook`` command (``python -m engine.cli``) run in ``cwd`` (the project), output captured.
    ``installed``: the console script of this environment instead, the engine as installed here
    (editable in a checkout), without the source tree on ``PYTHONPATH``."""
    full_env = {**os.environ, **({} if installed else {"PYTHONPATH": str(PROJECT_ROOT)}), **(env or {})}
    full_env.pop("RULEBOOK_PROJECT", None)
    if installed:
        full_env.pop("PYTHONPATH", None)
    cmd = [str(Path(sys.executable).with_name("rulebook"))] if installed else [sys.executable, "-m", "engine.cli"]
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout)
