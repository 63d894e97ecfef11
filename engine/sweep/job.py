"""One multirun job: keep going when it fails, hand the sweeper what it needs.

Hydra's ``run_job`` catches an ``Exception`` from a job but not ``SystemExit``, and the app
exits with code 2 on a user's mistake: one bad job would end the whole sweep (and with it the
sweep report, which a callback writes only when the sweep ends). ``sweep_job`` wraps the task
function so that, under ``-m`` only, a failure of any kind is written to ``error.json`` in the
job's output dir (the sweep report lists it) and the job returns ``None`` instead of raising;
the other jobs go on. A single run (no ``-m``) is left exactly as it was.

A job's return value is what a sweeper reads: with ``sweep.objective`` set (Optuna needs one)
it is that metric as a float, otherwise the metrics dict (small: launchers keep every job's
return value in memory until the sweep ends).
"""
from __future__ import annotations

import functools
import json
import logging
import math
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from engine.fileio import atomic_write_text
from engine.progress import Progress

log = logging.getLogger(__name__)

ERROR_FILE = "error.json"
PRUNED_FILE = "pruned.json"  # an Optuna trial its pruner stopped part-way (engine/sweep/pruning.py)
# the file a finished job leaves, per kind of run: a backtest's results.json, a walk-forward's
# walkforward.json (the sweep's progress and report read either)
RESULT_FILES = ("results.json", "walkforward.json")
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


class SweepConfigError(ValueError):
    """A sweep setting is wrong (unknown objective metric, objective missing for a sweeper that needs one)."""


@dataclass(frozen=True)
class JobContext:
    """What a job knows about where it runs, read from Hydra's config of the job."""
    out_dir: Path
    overrides: list[str]
    multirun: bool
    launcher: str  # the launcher's _target_ ("" when unknown)
    sweeper: str  # the sweeper's _target_ ("" when unknown)
    sweeper_settings: Mapping[str, Any] = field(default_factory=dict)  # hydra.sweeper, resolved

    @property
    def parallel(self) -> bool:
        """True when other jobs may run at the same time (any launcher but the basic one)."""
        return self.multirun and self.launcher != BASIC_LAUNCHER


def job_context() -> JobContext | None:
    """The running job's context, or None outside a Hydra app (tests, scripts)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        from omegaconf import OmegaConf
    except ImportError:  # pragma: no cover - hydra is a declared dependency
        return None
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return JobContext(
        out_dir=Path(hc.runtime.output_dir),
        # unresolved: an override may hold a ${...} that the config check reports (exit 2)
        overrides=[str(o) for o in OmegaConf.to_container(hc.overrides.task, resolve=False)],
        multirun=hc.mode == RunMode.MULTIRUN,
        launcher=str((hc.get("launcher") or {}).get("_target_", "")),
        sweeper=str((hc.get("sweeper") or {}).get("_target_", "")),
        sweeper_settings=OmegaConf.to_container(hc.sweeper, resolve=True) if hc.get("sweeper") is not None else {},
    )


def in_multirun() -> bool:
    ctx = job_context()
    return bool(ctx and ctx.multirun)


def write_error(out_dir: Path, message: str, overrides: list[str], error_type: str,
                trace: str | None = None, name: str = ERROR_FILE) -> Path:
    """Write ``error.json`` ({"error", "overrides", "type"[, "traceback"]}) atomically (or, under
    ``name``, the same record of a pruned trial)."""
    from engine.config.secrets import redact_override

    doc: dict[str, Any] = {"error": message, "overrides": [redact_override(str(o)) for o in overrides],
                           "type": error_type}
    if trace:
        doc["traceback"] = trace
    return atomic_write_text(Path(out_dir) / name, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def objective_value(result: Any, objective: str | None) -> Any:
    """What the job returns to the sweeper (see the module doc)."""
    metrics = result.get("metrics") if isinstance(result, Mapping) else None
    if not objective:
        return metrics if metrics is not None else result
    if metrics is None:
        raise SweepConfigError(f"sweep.objective is {objective!r} but this run returned no metrics "
                               f"(mode is not backtest?); expected a backtest run")
    if objective not in metrics:
        raise SweepConfigError(f"sweep.objective is {objective!r}; expected one of the metrics in results.json: "
                               f"{', '.join(sorted(metrics))}")
    value = metrics[objective]
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        # undefined (e.g. Sharpe of a flat equity curve): a sweeper records the trial as failed
        return None
    return float(value)


def _objective_key(cfg: Any) -> str | None:
    try:
        from omegaconf import OmegaConf

        value = OmegaConf.select(cfg, "sweep.objective", default=None) if OmegaConf.is_config(cfg) else \
            ((cfg.get("sweep") or {}).get("objective") if isinstance(cfg, Mapping) else None)
    except Exception:  # an unresolvable value is reported when the app resolves the config
        return None
    return str(value) if value else None


def _failure(ctx: JobContext, exc: BaseException, message: str, with_trace: bool) -> None:
    trace = "".join(traceback.format_exception(exc)) if with_trace else None
    path = write_error(ctx.out_dir, message, ctx.overrides, type(exc).__name__, trace)
    log.error("job failed (%s); recorded in %s; the sweep goes on", _summary(message), path)


def _summary(message: str) -> str:
    """The message's first line; a header ending in ':' ("invalid config:") gets its first item."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def sweep_job(task: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a Hydra task function: under multirun a failure is recorded, never raised."""

    @functools.wraps(task)
    def wrapper(cfg: Any) -> Any:
        ctx = job_context()
        if ctx is None or not ctx.multirun:
            return task(cfg)
        from engine.sweep.pruning import TrialPruned

        try:
            return objective_value(task(cfg), _objective_key(cfg))
        except TrialPruned as exc:  # not a failure: the sweeper tells Optuna PRUNED
            write_error(ctx.out_dir, str(exc), ctx.overrides, "pruned", name=PRUNED_FILE)
            log.info("job pruned: %s", exc)
            return exc.as_return()
        except SystemExit as exc:
            if exc.code in (0, None):
                return None
            # The app reports a user's mistake on stderr and then exits from inside its
            # `except` block, so the SystemExit carries that error as its __context__.
            cause = exc.__context__
            message = str(cause) if cause is not None else f"the job exited with code {exc.code}"
            _failure(ctx, cause or exc, message, with_trace=False)
        except Exception as exc:  # a bug, not the user's mistake: keep the traceback for the report
            _failure(ctx, exc, f"{type(exc).__name__}: {exc}", with_trace=True)
        sys.stderr.flush()
        return None

    wrapper.__rulebook_sweep_job__ = True  # type: ignore[attr-defined]
    return wrapper


def run_progress(label: str, stream=None) -> Progress:
    """The progress reporter a backtest should use: drawn on a terminal, but never while
    parallel sweep jobs share that terminal (their lines would garble each other)."""
    ctx = job_context()
    return Progress(label, stream=stream, enabled=False if (ctx and ctx.parallel) else None)
