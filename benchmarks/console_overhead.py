"""Cycle-time overhead of the console: paper sessions against the in-process emulator, the wall time
of every ``Session.cycle`` measured from outside, with the console's per-cycle work switched off
(heartbeat, operator-action and pause reads, burn-in milestone) and with all of it on plus alert
delivery of every alert and fill to a local webhook and a console server polled harder than the
dashboard does (status + equity every 0.5 s, /metrics every 1 s) in its own process, as deployed. Prints figures; asserts nothing.

    python benchmarks/console_overhead.py [CYCLES] [ROUNDS]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.live import controls, loop  # noqa: E402
from engine.modes.live import open_session  # noqa: E402
from tests.helpers.live import live_overrides  # noqa: E402
from tests.helpers.receiver import Receiver  # noqa: E402
from tests.helpers.runs import compose_config  # noqa: E402


SPENT: list[float] = []  # ms spent in the console's own steps inside a cycle (console on)
BY_STEP: dict[str, float] = {}
OUTSIDE: list[float] = []  # ... and between cycles (the heartbeat while waiting for the next bar)
IN_CYCLE = threading.local()


def _counted(fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            ms = (time.perf_counter() - t0) * 1000
            inside = getattr(IN_CYCLE, "on", False)
            (SPENT if inside else OUTSIDE).append(ms)
            if inside:
                BY_STEP[fn.__name__] = BY_STEP.get(fn.__name__, 0.0) + ms
    return wrapper


def session_cycles(tmp: Path, cycles: int, console: bool) -> list[float]:
    extra = []
    rec = None
    if console:
        rec = Receiver()
        os.environ["RB_BENCH_HOOK"] = rec.url + "/hook"
        extra = ["live.notify.channels=[{type: webhook, url_env: RB_BENCH_HOOK, "
                 "events: [fill, error, warning, halt, reload, burn_in, kill]}]"]
    cfg = compose_config(live_overrides("paper", tmp / "state", *extra, cycles=cycles, speed=120.0))
    times: list[float] = []
    real_cycle = loop.Session.cycle

    def timed(self, t):
        IN_CYCLE.on = True
        t0 = time.perf_counter()
        real_cycle(self, t)
        times.append((time.perf_counter() - t0) * 1000)
        IN_CYCLE.on = False

    patches = [mock.patch.object(loop.Session, "cycle", timed)]
    if console:
        patches += [mock.patch.object(loop.Session, "beat", _counted(loop.Session.beat)),
                    mock.patch.object(loop.Session, "_burn_in_milestone", _counted(loop.Session._burn_in_milestone)),
                    mock.patch.object(controls, "pending", _counted(controls.pending)),
                    mock.patch.object(controls, "entries_paused", _counted(controls.entries_paused))]
    else:
        patches += [mock.patch.object(loop.Session, "beat", lambda *a, **k: None),
                    mock.patch.object(loop.Session, "_burn_in_milestone", lambda *a, **k: None),
                    mock.patch.object(controls, "pending", lambda st: []),
                    mock.patch.object(controls, "entries_paused", lambda st: False)]
    for p in patches:
        p.start()
    s = open_session(cfg, "paper")
    srv, stop = None, threading.Event()
    if console:  # the console as it is deployed: a companion process reading the same state file
        srv = subprocess.Popen([sys.executable, "-m", "engine.live", "serve", "--state", str(s.store.path), "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
        url = srv.stdout.readline().split(" at ")[-1].strip().rstrip("/")

        def poll():
            k = 0
            while not stop.wait(0.5):
                for path in ("/api/status", "/api/equity") + (("/metrics",) if k % 2 else ()):
                    try:
                        urllib.request.urlopen(url + path, timeout=10).read()
                    except OSError:
                        pass  # the state file not created yet
                k += 1
        threading.Thread(target=poll, daemon=True).start()
    try:
        s.run()
    finally:
        stop.set()
        if srv is not None:
            srv.terminate()
            srv.wait()
        s.adapter.close()
        s.store.close()
        for p in patches:
            p.stop()
        if rec is not None:
            rec.close()
    return times[1:]  # the first cycle builds caches


def main() -> None:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    out = {False: [], True: []}
    with tempfile.TemporaryDirectory() as d:
        for r in range(rounds):
            for console in ((False, True) if r % 2 == 0 else (True, False)):
                out[console] += session_cycles(Path(d) / f"{r}-{console}", cycles, console)
    bare, full = np.array(out[False]), np.array(out[True])
    print(f"paper vs local_sim, 3 symbols, {rounds} rounds x {cycles} cycles each (Session.cycle wall time, ms)")
    for name, a in (("console off", bare), ("console on", full)):
        print(f"  {name:<12} mean {a.mean():7.2f}  median {np.median(a):7.2f}  p90 {np.percentile(a, 90):7.2f}  n={len(a)}")
    n_on = len(full) + rounds  # every cycle of the console-on sessions, the first ones too
    print(f"  the console's steps inside a cycle (heartbeat, action and pause reads, burn-in check): "
          f"{sum(SPENT) / n_on:.3f} ms per cycle = {100 * sum(SPENT) / n_on / bare.mean():.2f}% of the bare cycle")
    print("    by step, ms per cycle: " + ", ".join(f"{k} {v / n_on:.3f}" for k, v in sorted(BY_STEP.items())))
    print(f"  between cycles (heartbeats while waiting, each its own commit): {len(OUTSIDE)} beats, "
          f"{sum(OUTSIDE) / max(len(OUTSIDE), 1):.2f} ms each (not on the cycle path)")
    print(f"  end to end (noisy on a shared machine): mean {100 * (full.mean() / bare.mean() - 1):+.1f}%, median "
          f"{100 * (np.median(full) / np.median(bare) - 1):+.1f}%")


if __name__ == "__main__":
    main()
