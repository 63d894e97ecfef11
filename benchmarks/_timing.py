"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``,
which puts this folder on ``sys.path``)."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def runs(fn: Callable[[], Any], repeat: int) -> tuple[list[float], list[float], Any]:
    """Call ``fn`` ``repeat`` times: wall-clock seconds, CPU seconds of each call, last result."""
    wall, cpu, out = [], [], None
    for _ in range(repeat):
        c0 = time.process_time()
        w0 = time.perf_counter()  # read last and first: the wall figure holds fn alone
        out = fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, out


def best_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    return min(runs(fn, repeat)[0])


def median_of(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Median wall-clock seconds of ``repeat`` calls, and the last call's result."""
    wall, _, out = runs(fn, repeat)
    return statistics.median(wall), out
