"""Backtest baselines: write one, check a run against one.

    python -m engine.modes.baseline write --name sma_cross -- strategy=sma_cross
    python -m engine.modes.baseline check --name sma_cross            # the overrides it was written with
    python -m engine.modes.baseline check --name sma_cross -- strategy.params.fast=24

A baseline (``baselines/<name>.json``) holds the metrics, every fill, the config hash, the
data hash, the engine version and the overrides it was made with. ``check`` reruns the
backtest and prints every difference: metrics within a float tolerance, fills exactly
(any change in trading behaviour shows), hashes exactly. Exit code 0 when nothing differs,
1 when something does, 2 on a user error.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.paths import SOURCE_ROOT

BASELINE_DIR = SOURCE_ROOT / "baselines"  # committed in the source tree; not shipped in the wheel
REL_TOL, ABS_TOL = 1e-9, 1e-9


@dataclass(frozen=True)
class Difference:
    where: str  # e.g. "metrics.sharpe", "trades[12].price", "run.data_hash"
    baseline: Any
    current: Any

    def __str__(self) -> str:
        return f"{self.where}: baseline {self.baseline!r}, now {self.current!r}"


def split_overrides(argv: list[str] | None) -> tuple[list[str], list[str] | None]:
    """``(options, overrides)`` of a command line ``[OPTIONS] -- OVERRIDES`` (argv None: sys.argv's);
    overrides None when there is no ``--``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, None
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def compose(overrides: list[str]) -> dict:
    """The config run.py would see for these overrides, as plain containers."""
    from omegaconf import OmegaConf

    from engine.config.entry import compose as compose_config

    return OmegaConf.to_container(compose_config(list(overrides)), resolve=True)  # type: ignore[return-value]


def run_snapshot(overrides: list[str]) -> dict:
    """Backtest with these overrides; return what a baseline records."""
    from engine.backtest.engine import run_backtest
    from engine.sim.results import build_results
    from engine.cycle.prepare import prepare
    from engine.modes.setup import backtest_settings, load_rules, market_for, run_identity
    from engine.report.jsonio import clean

    cfg = compose(overrides)
    market = market_for(cfg)
    rules = load_rules(cfg)
    settings = backtest_settings(cfg, market)
    res = run_backtest(prepare(market, rules), settings)
    info = run_identity(cfg, market, rules, overrides, cfg)
    results = build_results(res, info)
    return clean({
        "overrides": list(overrides),
        "metrics": results["metrics"],
        "trades": results["trades"],
        "universe": results["universe"],
        "config_hash": info["config_hash"],
        "data_hash": info["data_hash"],
        "engine_version": info["engine_version"],
        "rule_files": info["rule_files"],
    })


def baseline_path(name: str, directory: Path = BASELINE_DIR) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"baseline name {name!r} is not a plain file name; expected e.g. sma_cross")
    return directory / f"{name}.json"


def write(name: str, overrides: list[str], directory: Path = BASELINE_DIR) -> Path:
    from engine.report.jsonio import write_json

    snap = run_snapshot(overrides)
    snap["name"] = name
    return write_json(baseline_path(name, directory), snap, indent=1)  # one value a line: reviewable diffs


def read(name: str, directory: Path = BASELINE_DIR) -> dict:
    path = baseline_path(name, directory)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no baseline {path}; write it first: python -m engine.modes.baseline write --name {name} -- ...") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b


# Identity fields that may change without any change in trading (a new config group, a
# version bump): printed as notes, never a failure. The data hash is not among them.
NOTE_KEYS = ("config_hash", "engine_version")


def notes(base: dict, now: dict) -> list[Difference]:
    return [Difference(k, base.get(k), now.get(k)) for k in NOTE_KEYS if base.get(k) != now.get(k)]


def compare(base: dict, now: dict) -> list[Difference]:
    """Every difference in trading: metrics with a float tolerance, trades and the data hash exactly."""
    out: list[Difference] = []
    if base.get("data_hash") != now.get("data_hash"):
        out.append(Difference("data_hash", base.get("data_hash"), now.get("data_hash")))
    bm, nm = base.get("metrics", {}), now.get("metrics", {})
    for k in sorted(set(bm) | set(nm)):
        if not _close(bm.get(k), nm.get(k)):
            out.append(Difference(f"metrics.{k}", bm.get(k), nm.get(k)))
    bu, nu = base.get("universe", {}), now.get("universe", {})
    for k in sorted(set(bu) | set(nu)):
        if not _close(bu.get(k), nu.get(k)):
            out.append(Difference(f"universe.{k}", bu.get(k), nu.get(k)))
    bt, nt = base.get("trades", []), now.get("trades", [])
    for i in range(max(len(bt), len(nt))):
        a = bt[i] if i < len(bt) else None
        b = nt[i] if i < len(nt) else None
        if a is None or b is None:
            out.append(Difference(f"trades[{i}]", a, b))
            continue
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                out.append(Difference(f"trades[{i}].{k}", a.get(k), b.get(k)))
    if len(bt) != len(nt):
        out.append(Difference("trades.count", len(bt), len(nt)))
    return out


def check(name: str, overrides: list[str] | None = None, directory: Path = BASELINE_DIR,
          note_sink: list[Difference] | None = None) -> list[Difference]:
    base = read(name, directory)
    now = run_snapshot(base.get("overrides", []) if overrides is None else overrides)
    if note_sink is not None:
        note_sink.extend(notes(base, now))
    return compare(base, now)


def main(argv: list[str] | None = None) -> int:
    argv, overrides = split_overrides(argv)
    ap = argparse.ArgumentParser(prog="python -m engine.modes.baseline", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["write", "check"])
    ap.add_argument("--name", required=True, help="baselines/<name>.json")
    ap.add_argument("--dir", default=str(BASELINE_DIR), help="folder of the baselines")
    args = ap.parse_args(argv)
    from engine.errors import user_error_types

    try:
        if args.command == "write":
            path = write(args.name, overrides or [], Path(args.dir))
            print(f"baseline written: {path}")
            return 0
        found_notes: list[Difference] = []
        diffs = check(args.name, overrides, Path(args.dir), found_notes)
    except user_error_types() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for d in found_notes:
        print(f"note: {d}")
    for d in diffs:
        print(d)
    print(f"baseline {args.name}: " + ("no differences" if not diffs else f"{len(diffs)} difference(s)"))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
