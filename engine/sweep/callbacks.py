"""``SweepSetup``: the Hydra callback that prepares a multirun and reports its progress.

Register it in conf/config.yaml::

    hydra:
      callbacks:
        sweep_setup:
          _target_: engine.sweep.callbacks.SweepSetup

- ``on_multirun_start`` (main process, before any job): builds the sample market once for
  every distinct ``data`` setting the sweep will use, so parallel jobs all read the warm disk
  cache instead of each generating it; writes the sweep's job count and start time.
- ``on_job_end`` (in whichever process ran the job): on a terminal, one line
  ``sweep: 3/8 jobs done (1 failed)  elapsed 12s  ETA 20s``; nothing when not on a terminal.
- ``on_multirun_end``: one log line with how many jobs finished and failed (and where the sweep
  report is); the failed count is kept in ``FAILED_JOBS`` so that run.py exits 1 after Hydra
  returns (a CI or a scheduler must see that jobs failed; every job still ran).

Jobs may run in other processes (joblib) or on other machines (Ray), so the shared state is
kept on disk at the sweep root, not on this object.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from engine.progress import format_duration, progress_enabled
from engine.sweep.job import ERROR_FILE, PRUNED_FILE, RESULT_FILES
from engine.sweep.plan import SweepPlan, sweep_plan

try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a declared dependency
    _HydraCallback = object  # type: ignore[misc,assignment]

log = logging.getLogger(__name__)

STATE_FILE = ".sweep_progress.json"
MAX_DEPTH = 3  # job dirs sit at <sweep>/<num>; allow a custom hydra.sweep.subdir a little deeper
# Failed jobs of the last multirun in this process (set by SweepSetup.on_multirun_end, read by run.py).
FAILED_JOBS = 0


def sweep_root(config: Any) -> Path:
    """The sweep dir as an absolute path (a relative one is relative to where Hydra was started)."""
    root = Path(str(config.hydra.sweep.dir))
    return root if root.is_absolute() else Path(str(config.hydra.runtime.cwd)) / root


def expected_jobs(config: Any, plan: SweepPlan | None) -> int | None:
    """Job count: n_trials for Optuna, the grid's size for Hydra's basic sweeper, else None."""
    sweeper = config.hydra.get("sweeper") or {}
    target = str(sweeper.get("_target_", ""))
    if "optuna" in target.lower():
        n = sweeper.get("n_trials")
        return int(n) if n is not None else None
    if target.endswith("BasicSweeper") and plan is not None:
        return plan.n_jobs
    return None


def finished_jobs(root: Path) -> tuple[int, int]:
    """(jobs done, of which failed), counted from the result files (results.json, walkforward.json)
    and error.json files on disk."""
    done: set[Path] = set()
    failed: set[Path] = set()
    if not root.is_dir():
        return 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [] if len(rel.parts) >= MAX_DEPTH else [d for d in dirnames if d != ".hydra"]
        if not rel.parts:
            continue
        if any(f in filenames for f in RESULT_FILES) or (PRUNED_FILE in filenames and ERROR_FILE not in filenames):
            done.add(rel)  # a pruned trial is done, not failed
        elif ERROR_FILE in filenames:
            done.add(rel)
            failed.add(rel)
    return len(done), len(failed)


def sweep_status(done: int, failed: int, total: int | None, elapsed: float) -> str:
    of = f"/{total}" if total else ""
    bad = f" ({failed} failed)" if failed else ""
    eta = ""
    if total and 0 < done < total:
        eta = f"  ETA {format_duration(elapsed / done * (total - done))}"
    return f"sweep: {done}{of} jobs done{bad}  elapsed {format_duration(elapsed)}{eta}"


def warm_sample_markets(config: Any, plan: SweepPlan) -> list[str]:
    """Build (or find cached) the sample market of each distinct data setting; return their cache keys."""
    from omegaconf import OmegaConf

    from engine.modes.setup import load_market

    combos = plan.combos(["data"])
    if len(combos) == 1 and not any(a.key.lstrip("+~").startswith("data") for a in plan.axes):
        data_cfgs = [OmegaConf.to_container(config.data, resolve=True)]
    else:
        from hydra import compose

        # compose exactly as each job will (a `data=...` group choice changes the whole node)
        name = str(config.hydra.job.config_name)
        data_cfgs = [OmegaConf.to_container(compose(config_name=name, overrides=c).data, resolve=True)
                     for c in combos]
    seen: list[str] = []
    for data_cfg in data_cfgs:
        if data_cfg.get("source") != "sample":
            continue  # file loaders read their files in each job; nothing to build
        key = json.dumps(data_cfg, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.append(key)
        t0 = time.perf_counter()
        market = load_market(data_cfg)
        log.info("sweep: sample market ready for all jobs (%d symbols x %d bars, %.1fs)",
                 market.n_symbols, market.n_bars, time.perf_counter() - t0)
    return seen


def _make_dir(path: Path, key: str) -> None:
    """Create an output dir, or end the run with one clear message (exit 2), no traceback."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: {key} is {str(path)!r}; cannot create it ({exc.filename}: {exc.strerror or exc}); "
              f"expected a directory that can be created and written", file=sys.stderr)
        sys.exit(2)


class SweepSetup(_HydraCallback):
    """Hydra callback: warm the shared sample market, show sweep progress (see module doc)."""

    def __init__(self, warm_market: bool = True, progress: bool = True, **_: Any) -> None:
        self.warm_market = warm_market
        self.progress = progress

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        # Hydra creates hydra.run.dir itself and prints a traceback when it cannot: say it in one line.
        _make_dir(Path(str(config.hydra.run.dir)), "hydra.run.dir")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        root = sweep_root(config)
        _make_dir(root, "hydra.sweep.dir")
        try:
            plan: SweepPlan | None = sweep_plan(
                [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False)])
        except Exception as exc:  # Hydra itself reports malformed overrides; do not mask that
            log.debug("sweep plan unavailable: %s", exc)
            plan = None
        state = {"total": expected_jobs(config, plan), "started": time.time()}
        (root / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        if self.warm_market and plan is not None:
            warm_sample_markets(config, plan)

    def on_job_end(self, config: Any, job_return: Any = None, **kwargs: Any) -> None:
        if not self.progress or not progress_enabled(sys.stderr):
            return
        try:
            root = sweep_root(config)
            state = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, AttributeError):
            return  # not a multirun, or the sweep root is on another machine
        done, failed = finished_jobs(root)
        sys.stderr.write(sweep_status(done, failed, state.get("total"), time.time() - state["started"]) + "\n")
        sys.stderr.flush()

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        global FAILED_JOBS
        root = sweep_root(config)
        done, failed = finished_jobs(root)
        FAILED_JOBS = failed
        if failed:
            report = root / "sweep.html"
            where = f"report: {report}" if report.is_file() else f"their error.json is in the job dirs under {root}"
            log.warning("sweep: %d jobs finished, %d failed (%s); exit code 1", done, failed, where)
        else:
            log.info("sweep: %d jobs finished", done)
