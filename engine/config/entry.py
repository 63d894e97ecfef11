"""The validate-only entry and the guard every other mode runs first.

    python -m engine.config [--as MODE] [--no-env] [override ...]   # compose conf/, check, exit 0/1
    run.py, mode=validate:   sys.exit(validate_entry(cfg))            # prints every problem
    run.py, any other mode:  report = prepare_run(cfg, log)           # raises ConfigError on problems
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import paths
from .check import check_config, emit_warnings
from .problems import ConfigError, ConfigProblem, ConfigReport
from .secrets import install_log_redaction, secret_values

from engine.paths import BUILTIN_CONF as CONF_DIR  # a project's own conf/ comes first (hydra_plugins/)


def to_plain(cfg: Any) -> tuple[dict, list[ConfigProblem]]:
    """A DictConfig (or dict) as a plain dict without Hydra's key; interpolation errors as problems."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, DictConfig):
        try:
            plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", "") or ""
            return {}, [ConfigProblem("interpolation", str(key), "an unresolvable ${...}", "a resolvable value",
                                      f"cannot resolve '{key}': {_first_line(exc)}")]
    else:
        plain = dict(cfg)
    plain.pop("hydra", None)
    return plain, []


def _first_line(exc: Exception) -> str:
    """OmegaConf's message without its key/type trailer lines ("full_key: ...")."""
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split()) if text else type(exc).__name__


def _mode_of(plain: dict, mode: str | None) -> str:
    if mode:
        return mode
    name = paths.get(plain, "mode.name", None)
    return name if isinstance(name, str) else "backtest"


def run_check(cfg: Any, env: Mapping[str, str] | None = None, *, mode: str | None = None,
              live_requirements: bool = True, symbol_themes: Mapping[str, str] | None = None,
              overrides: Sequence[str] = (), inputs: bool = False) -> ConfigReport:
    plain, problems = to_plain(cfg)
    env = os.environ if env is None else env
    if problems:
        return ConfigReport(config=plain, problems=problems, mode=_mode_of(plain, mode))
    return check_config(plain, mode=_mode_of(plain, mode), env=env, live_requirements=live_requirements,
                        symbol_themes=symbol_themes, overrides=overrides, inputs=inputs)


def validate_entry(cfg: Any, env: Mapping[str, str] | None = None, *, mode: str | None = None,
                   live_requirements: bool = True, out: TextIO | None = None, overrides: Sequence[str] = ()) -> int:
    """mode=validate: print every problem and warning, return the exit code (0 sound; 2 not, as for
    every user mistake); it also reads the inputs a run reads (every rule file, a backtest's data
    source and window)."""
    report = run_check(cfg, env, mode=mode, live_requirements=live_requirements, overrides=overrides, inputs=True)
    print(report.format(), file=out or sys.stdout)
    return 0 if report.ok else 2


def prepare_run(cfg: Any, logger: logging.Logger, env: Mapping[str, str] | None = None,
                symbol_themes: Mapping[str, str] | None = None, overrides: Sequence[str] = ()) -> ConfigReport:
    """Every mode but validate: check, log warnings once, keep secrets out of logs, refuse on problems."""
    env = os.environ if env is None else env
    report = run_check(cfg, env, symbol_themes=symbol_themes, overrides=overrides)
    install_log_redaction(secret_values(report.config, env))
    emit_warnings(report, logger)
    if not report.ok:
        raise ConfigError(report)
    return report


def compose(overrides: list[str], conf_dir: Path = CONF_DIR):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from engine.hydra_registry import register_hydra_plugins

    register_hydra_plugins()
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir), job_name="validate"):
        return hydra_compose(config_name="config", overrides=overrides)


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.config",
        description="Check rulebook's composed config without running anything; exit 2 on any problem.")
    parser.add_argument("--as", dest="as_mode", default=None,
                        help="check the requirements of this mode (default: the config's mode.name)")
    parser.add_argument("--no-env", action="store_true",
                        help="skip checks that read the environment (credentials set), e.g. in CI")
    parser.add_argument("--conf", default=str(CONF_DIR), help="config folder (default: the project's conf/)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. mode=live risk=conservative")
    args = parser.parse_args(argv)
    out = out or sys.stdout
    from engine.cli import drop_renamed_defaults, migrate_overrides
    from engine.config.hydra_errors import USER_ERRORS, describe, keys_at_factory

    conf_dir = Path(args.conf).resolve()
    overrides = migrate_overrides(args.overrides)  # a deprecated key is migrated as in a file
    try:
        cfg = compose(overrides, conf_dir)
    except USER_ERRORS as exc:
        # Hydra refuses unknown keys and options at override time: the same line as run.py prints
        text = describe(exc, overrides, [conf_dir], keys_at_factory(lambda o: compose(o, conf_dir)))
        print(f"error: {text}\nconfig is NOT valid: it could not be composed", file=out)
        return 2
    drop_renamed_defaults(cfg, overrides)
    return validate_entry(cfg, env, mode=args.as_mode, live_requirements=not args.no_env, out=out,
                          overrides=args.overrides)
