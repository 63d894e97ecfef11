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

from engine import run_warnings
from engine.modes import MODES
from engine.errors import UserError, user_error_types
from engine.sweep.job import sweep_job

log = logging.getLogger("rulebook")



def _hydra_context() -> tuple[Path, list[str]]:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), list(hc.overrides.task)


def dispatch(cfg: dict, out_dir: Path, overrides: list[str], redacted: dict) -> Any:
    """Run the checked config's mode; ``redacted`` is what may be written anywhere."""
    mode = (cfg.get("mode") or {}).get("name", "backtest")
    if mode not in MODES:
        raise UserError(f"mode.name is {mode!r}; expected one of {', '.join(MODES)}")
    from engine.modes import runner

    return runner(mode)(cfg, out_dir, overrides, redacted)


@sweep_job
def main(cfg: DictConfig) -> Any:
    from engine.config import ConfigError, redact
    from engine.config.secrets import redact_urls
    from engine.config.entry import prepare_run, validate_entry

    errors = user_error_types() + (ConfigError,)
    out_dir, overrides = _hydra_context()
    try:
        if OmegaConf.select(cfg, "mode.name") == "validate":
            sys.exit(validate_entry(cfg, overrides=overrides))
        with run_warnings.collecting():  # the run's named warnings, for its results and report
            # every other mode: the same checks first; renamed keys come back migrated
            report = prepare_run(cfg, log, overrides=overrides)
            return dispatch(report.config, out_dir, overrides, redact(report.config))
    except errors as exc:
        print(f"error: {redact_urls(str(exc))}", file=sys.stderr)
        log.debug("user error", exc_info=True)
        sys.exit(2)  # under -m, sweep_job records it in error.json and the sweep goes on
    except OSError as exc:
        if exc.filename is None:  # not about a path (a network error, a bug): keep the traceback
            raise
        # the environment, not the code: a cache or output dir that cannot be created or written
        path = exc.filename2 or exc.filename  # a rename names its target second
        print(f"error: cannot write or read {path}: {exc.strerror or exc}", file=sys.stderr)
        log.debug("environment error", exc_info=True)
        sys.exit(2)
