"""`rulebook` with no argument in a fresh user project against `python run.py` in the source tree.

    python benchmarks/cli_start.py [--repeat 3] [--rulebook PATH]

Both run the default backtest of the embedded sample market and write its report; the first call
of each warms the sample-market cache, and the figures are the median of the next ``--repeat``
calls (wall seconds, the whole process: interpreter start, imports, Hydra, the run, the report).
``--rulebook`` is the console script to time (default: the one next to this Python, e.g. a venv's).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import median_of

ROOT = Path(__file__).resolve().parents[1]


def _call(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rulebook", default=str(Path(sys.executable).with_name("rulebook")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "proj"
        _call([args.rulebook, "init", str(project)], Path(tmp))
        cases = {"rulebook (user project)": ([args.rulebook], project),
                 "python run.py (source tree)": ([sys.executable, "run.py", f"hydra.run.dir={tmp}/src"], ROOT)}
        figures = {}
        for name, (cmd, cwd) in cases.items():
            _call(cmd, cwd)  # warm: the sample market's cache, the OS's file cache
            figures[name], _ = median_of(lambda: _call(cmd, cwd), args.repeat)
        for name, secs in figures.items():
            print(f"{name:30s} {secs:6.2f} s  (median of {args.repeat})")
        a, b = figures.values()
        print(f"rulebook / run.py: {a / b:.2f}x")


if __name__ == "__main__":
    main()
