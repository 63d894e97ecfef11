"""rulebook's Python API: one import for scripts and notebooks (docs/api.md).

    from engine.api import Backtest, Sweep, Validate, Explain

    result = Backtest(overrides=["strategy=momentum", "backtest.end=2024-03-01"]).run()
    result.metrics["sharpe"], result.trades, result.fills, result.equity, result.files["report.html"]

Each class composes the same Hydra config as the ``rulebook`` command (the project's ``conf/``
first, then the built-ins) and runs the same code: ``Backtest`` and ``Validate`` and ``Explain``
in this process, ``Sweep`` as ``rulebook -m`` in a child process (Hydra's multirun owns its
launcher, its workers and its logging). The import package is ``engine`` (the wheel is named
``rulebook``). A user's mistake raises ``engine.errors.UserError`` (or its subclass
``engine.config.ConfigError``) with the one-line message the command prints.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from engine.errors import UserError
from engine.paths import PROJECT_ENV, project_root

__all__ = ["Backtest", "BacktestResult", "Explain", "Sweep", "SweepResult", "Validate", "ValidateResult"]


@contextlib.contextmanager
def _in_project(project: str | Path | None) -> Iterator[Path]:
    """The project for the duration of a call (relative paths, the search path): restored after."""
    old = os.environ.get(PROJECT_ENV)
    root = Path(project).expanduser().resolve() if project is not None else project_root()
    os.environ[PROJECT_ENV] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop(PROJECT_ENV, None)
        else:
            os.environ[PROJECT_ENV] = old


def _reject_mode(overrides: Sequence[str], mode: str) -> list[str]:
    for o in overrides:
        if o.split("=", 1)[0].lstrip("+~") == "mode":
            raise UserError(f"override {o!r}: {mode.capitalize()} sets mode={mode} itself; "
                            f"expected no mode= override (use the class of that mode)")
    return [f"mode={mode}", *overrides]


def compose(overrides: Sequence[str]) -> Any:
    """The composed config (a DictConfig: a ``${...}`` stays unresolved for the check to report),
    as the command composes it; Hydra's errors become a UserError with the command's one-line message."""
    from engine.cli import compose_config, error_line, drop_renamed_defaults, migrate_overrides
    from engine.config.hydra_errors import USER_ERRORS

    overrides = migrate_overrides(list(overrides))
    try:
        cfg = compose_config(overrides)
    except USER_ERRORS as exc:
        raise UserError(error_line(exc, overrides)) from None
    drop_renamed_defaults(cfg, overrides)
    return cfg


def _default_out_dir(root: Path) -> Path:
    now = _dt.datetime.now()
    return root / "outputs" / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S-%f")


def _files(out_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(out_dir.iterdir()) if p.is_file()} if out_dir.is_dir() else {}


def _frame(rows: Sequence[dict], time_cols: Sequence[str]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for col in time_cols:
        if col in df:
            df[col] = pd.to_datetime(df[col], utc=True)
    return df


@dataclass(frozen=True)
class BacktestResult:
    """A backtest's results: the dict written to results.json, and pandas views of it."""
    results: dict
    out_dir: Path
    files: dict[str, Path]

    @property
    def metrics(self) -> pd.Series:
        return pd.Series(self.results["metrics"], name="metrics")

    @property
    def trades(self) -> pd.DataFrame:
        """Round trips (entry to exit), as trades.csv."""
        return _frame(self.results.get("round_trips") or [], ("entry_time", "exit_time"))

    @property
    def fills(self) -> pd.DataFrame:
        """Every fill, as fills.csv."""
        return _frame(self.results.get("trades") or [], ("time",))

    @property
    def equity(self) -> pd.Series:
        rows = self.results.get("equity") or []
        index = pd.DatetimeIndex(pd.to_datetime([t for t, _ in rows], utc=True), name="time")
        return pd.Series([float(v) for _, v in rows], index=index, name="equity")


def _run_mode(mode: str, overrides: Sequence[str], out_dir: Path) -> Any:
    import logging

    from engine.app import dispatch
    from engine.config import redact
    from engine.config.entry import prepare_run

    cfg = compose(_reject_mode(overrides, mode))
    report = prepare_run(cfg, logging.getLogger("rulebook"))
    return dispatch(report.config, out_dir, list(overrides), redact(report.config))


@dataclass
class Backtest:
    """``Backtest(overrides=[...]).run()``: the same run as ``rulebook OVERRIDES``."""
    overrides: Sequence[str] = ()
    project: str | Path | None = None
    out_dir: str | Path | None = None

    def run(self) -> BacktestResult:
        with _in_project(self.project) as root:
            out = Path(self.out_dir).expanduser() if self.out_dir is not None else _default_out_dir(root)
            out = out if out.is_absolute() else root / out
            results = _run_mode("backtest", self.overrides, out)
        return BacktestResult(results=results, out_dir=out, files=_files(out))


@dataclass(frozen=True)
class ValidateResult:
    ok: bool
    problems: list[str]
    warnings: list[str]
    text: str  # the report mode=validate prints


@dataclass
class Validate:
    """``Validate(overrides=[...]).run()``: mode=validate's checks; ``as_mode`` checks another mode's needs."""
    overrides: Sequence[str] = ()
    project: str | Path | None = None
    as_mode: str | None = None
    live_requirements: bool = True

    def run(self) -> ValidateResult:
        from engine.config.entry import run_check

        with _in_project(self.project):
            cfg = compose(_reject_mode(self.overrides, "validate"))
            # the inputs too (every rule file, the data and its window), as mode=validate reads them
            report = run_check(cfg, mode=self.as_mode, live_requirements=self.live_requirements, inputs=True)
        return ValidateResult(ok=report.ok, problems=[p.format() for p in report.problems],
                              warnings=[w.format() for w in report.warnings], text=report.format())


@dataclass
class Explain:
    """``Explain(run_dir=..., symbol=..., time=...).run()``: why SYMBOL was (not) bought at TIME."""
    run_dir: str | Path | None = None
    symbol: str | None = None
    time: str | None = None
    overrides: Sequence[str] = ()
    project: str | Path | None = None

    def run(self) -> str:
        given = {"run_dir": self.run_dir, "symbol": self.symbol, "time": self.time}
        extra = [f"explain.{k}='{v}'" for k, v in given.items() if v is not None]
        # mode=explain prints its answer; here it is returned instead
        with _in_project(self.project), open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            return _run_mode("explain", [*self.overrides, *extra], Path(os.devnull))


@dataclass(frozen=True)
class SweepResult:
    sweep_dir: Path
    summary: dict  # sweep.json
    files: dict[str, Path]
    returncode: int  # 1 when some jobs failed (each left error.json; the table lists them)

    @property
    def table(self) -> pd.DataFrame:
        """One row per job (sweep.json's ``runs``): id, status, error, each swept parameter, each metric."""
        rows = []
        for job in self.summary.get("runs") or []:
            row = {"id": job.get("id"), "status": job.get("status"), "error": job.get("error")}
            row.update(job.get("params") or {})
            row.update(job.get("metrics") or {})
            rows.append(row)
        return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame()


@dataclass
class Sweep:
    """``Sweep(overrides=["strategy.params.fast=12,24"]).run()``: ``rulebook -m OVERRIDES``."""
    overrides: Sequence[str] = ()
    project: str | Path | None = None
    sweep_dir: str | Path | None = None
    timeout: float | None = None

    def run(self) -> SweepResult:
        with _in_project(self.project) as root:
            now = _dt.datetime.now()
            out = Path(self.sweep_dir).expanduser() if self.sweep_dir is not None else \
                root / "multirun" / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S-%f")
            out = out if out.is_absolute() else root / out
            cmd = [sys.executable, "-m", "engine.cli", "-m", *self.overrides, f"hydra.sweep.dir={out}"]
            env = {**os.environ, PROJECT_ENV: str(root)}
            proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=self.timeout)
        summary_file = out / "sweep.json"
        if proc.returncode not in (0, 1) or not summary_file.is_file():
            lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
            raise UserError(lines[-1].removeprefix("error: ") if lines else
                            f"the sweep exited with code {proc.returncode}: {proc.stderr.strip()[-500:]}")
        return SweepResult(sweep_dir=out, summary=json.loads(summary_file.read_text()), files=_files(out),
                           returncode=proc.returncode)
