"""Run sweeps as subprocesses, and the entry point they use.

``python tests/helpers/sweep.py -m ...`` is run.py with the two pieces of sweep wiring the
lead merges into the spine (engine/app.py's ``main`` wrapped by ``sweep_job``, and the
``SweepSetup`` callback registered in conf/config.yaml), so these tests exercise them before
and after that merge. Once the spine carries them, ``entry_script()`` returns run.py itself.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent.parent
if __name__ == "__main__":  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from engine.paths import PROJECT_ROOT  # noqa: E402

# Small and quick: 30 symbols x 1500 bars keeps a job near a second.
SMALL_MARKET = ["data.sample.n_symbols=30", "data.sample.n_bars=1500"]
CALLBACK = "++hydra.callbacks.sweep_setup._target_=engine.sweep.callbacks.SweepSetup"
REPORT_CALLBACK = "++hydra.callbacks.sweep_report._target_=engine.report.sweep.SweepReportCallback"


def spine_is_wired() -> bool:
    """True once engine/app.py's main is wrapped by engine.sweep.job.sweep_job."""
    import engine.app

    return bool(getattr(engine.app.main, "__rulebook_sweep_job__", False))


def report_available() -> bool:
    try:
        import engine.report.sweep  # noqa: F401
    except ImportError:
        return False
    return True


def entry_script() -> Path:
    return PROJECT_ROOT / "run.py" if spine_is_wired() else HERE


def run_sweep(args: list[str], sweep_dir: Path, cache_dir: Path | None = None, env: dict | None = None,
              timeout: int = 300, python: str | None = None, report: bool = True) -> subprocess.CompletedProcess:
    """``python <entry> -m ARGS`` with the sweep dir (and optionally the market cache) in tmp."""
    extra = [f"hydra.sweep.dir={sweep_dir}", CALLBACK]
    if report and report_available():
        extra.append(REPORT_CALLBACK)
    if cache_dir is not None:
        extra.append(f"data.cache_dir={cache_dir}")
    full_env = {**os.environ, "RULEBOOK_PROGRESS": "never", **(env or {})}
    return subprocess.run([python or sys.executable, str(entry_script()), "-m", *args, *extra],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, env=full_env, timeout=timeout)


def job_outcomes(sweep_dir: Path) -> dict[str, str]:
    """job dir name -> "ok" (results.json) | "failed" (error.json) | "missing"."""
    out = {}
    for d in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()):
        out[d.name] = "ok" if (d / "results.json").is_file() else ("failed" if (d / "error.json").is_file() else "missing")
    return out


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def plugin_available(module: str) -> bool:
    """Whether an optional Hydra plugin (or engine) is importable in this interpreter."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@contextlib.contextmanager
def hydra_job(out_dir: Path, multirun: bool = True, overrides: list[str] | None = None,
              launcher: str | None = None):
    """Make HydraConfig look like a running job (in-process), then restore it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    overrides = list(overrides or [])
    with initialize_config_dir(version_base="1.3", config_dir=str(PROJECT_ROOT / "conf")):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.overrides.task = overrides
        if launcher:
            cfg.hydra.launcher = {"_target_": launcher}
    instance = HydraConfig.instance()
    previous = instance.cfg
    instance.set_config(cfg)
    try:
        yield cfg
    finally:
        instance.cfg = previous


if __name__ == "__main__":
    import hydra

    from engine.app import main as app_main
    from engine.sweep.job import sweep_job

    task = app_main if getattr(app_main, "__rulebook_sweep_job__", False) else sweep_job(app_main)
    hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name="config")(task)()
