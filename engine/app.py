"""What run.py hands the composed config to: check it, then run the mode it names.

A user's mistake (config, rule file, data) ends with one clear message on stderr and exit
code 2, never a traceback.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from engine.errors import UserError, user_error_types

log = logging.getLogger("rulebook")

MODES = ("backtest", "dry_run", "paper", "live", "validate", "explain")


def _hydra_context() -> tuple[Path, list[str]]:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), list(hc.overrides.task)


def to_plain(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except Exception as exc:  # a missing value (???) or a bad interpolation
        key = getattr(exc, "full_key", "") or ""
        msg = str(exc).split("\n")[0]
        if type(exc).__name__ == "MissingMandatoryValue":
            raise UserError(f"config key {key} has no value (???); set it on the command line, e.g. {key}=...") from None
        raise UserError(f"config key {key}: {msg}") from None


def dispatch(cfg: dict, out_dir: Path, overrides: list[str]) -> Any:
    mode = (cfg.get("mode") or {}).get("name", "backtest")
    if mode not in MODES:
        raise UserError(f"mode.name is {mode!r}; expected one of {', '.join(MODES)}")
    redacted = cfg  # replaced by engine.config.redact once config checks land
    if mode == "backtest":
        from engine.modes import backtest

        return backtest.run(cfg, out_dir, overrides, redacted)
    raise UserError(f"mode={mode} is not available yet in this version; use mode=backtest")


def main(cfg: DictConfig) -> Any:
    errors = user_error_types()
    try:
        out_dir, overrides = _hydra_context()
        return dispatch(to_plain(cfg), out_dir, overrides)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        log.debug("user error", exc_info=True)
        sys.exit(2)
