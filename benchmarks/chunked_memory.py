"""The chunked backtest's memory curve and speed: peak RSS against months of data, chunk by chunk
from the market store (issue 19: 200 products x a year of 1-minute bars, >= 4M symbol-bars/s,
peak RSS under 3 GiB, a year's peak within 1.3x of three months').

    python benchmarks/chunked_memory.py [--symbols 200] [--timeframe 1m] [--months 1,3,6,12]
                                        [--store DIR] [--in-memory 1,3]

Builds a store of sample bars (one sample market per month, each symbol's prices scaled to go on
from its last close; kept in --store for the next call), then, for each month count, runs
sma_cross chunk by chunk (``backtest.chunked=true``: engine/modes/month_chunks.py) in a fresh
process over a store holding that many months, and prints the run's seconds (prepare, loop,
results and trace, interpreter start excluded), symbol-bars per second and the process's peak
RSS, and the preparer's share: its seconds, and the CPU seconds in user and system mode of the
thread that runs it (system time here is mostly page faults of fresh memory). ``--in-memory``
adds the whole-market path for those month counts. Each chunked run also
prints its memory curve: the worker's RSS (``VmRSS``) and peak so far (``VmHWM``) read from
/proc/self/status at each chunk border (as the run asks for the next chunk, before it is built,
so after the one before was prepared and run; and once the last is done), then after the results and the
trace are written; a run whose memory does not grow with its length has a flat curve.
Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _months(n: int) -> list[str]:
    import numpy as np

    start = np.datetime64("2024-01", "M")
    return [str(start + i) for i in range(n)]


def build_store(root: Path, n_symbols: int, timeframe: str, n_months: int) -> None:
    """Months 1 .. n_months of sample bars in a store at ``root`` (months already there are kept)."""
    import numpy as np

    from engine.market.data import TIMEFRAME_MS
    from engine.market.sample import SampleSpec, generate_sample_market
    from engine.market.store import MarketStore

    st = MarketStore(root)
    marker = root / "months.json"
    have = json.loads(marker.read_text()) if marker.exists() else {"months": [], "last": None}
    step = TIMEFRAME_MS[timeframe]
    last = None if have["last"] is None else np.array(have["last"])
    for i, month in enumerate(_months(n_months)):
        if month in have["months"]:
            continue
        m0 = np.datetime64(month, "M")
        bars = int(((m0 + 1).astype("datetime64[ms]") - m0.astype("datetime64[ms]")).astype(np.int64) // step)
        # one seed: the same symbols every month (a seed also names them); prices go on from the last close
        md = generate_sample_market(SampleSpec(seed=100, n_symbols=n_symbols, start=f"{month}-01",
                                               n_bars=bars, timeframe=timeframe))
        first = np.array([md.open[np.flatnonzero(~np.isnan(md.open[:, j]))[0], j]
                          if (~np.isnan(md.open[:, j])).any() else 1.0 for j in range(md.n_symbols)])
        scale = np.ones(md.n_symbols) if last is None else np.where(np.isfinite(last), last / first, 1.0)
        for j, s in enumerate(md.symbols):
            ok = ~np.isnan(md.close[:, j])
            px = [c[ok, j] * scale[j] for c in (md.open, md.high, md.low, md.close)]
            st.write(s, timeframe, np.column_stack([md.times[ok].astype(np.float64), *px, md.volume[ok, j]]))
        closes = np.array([md.close[np.flatnonzero(~np.isnan(md.close[:, j]))[-1], j] * scale[j]
                           if (~np.isnan(md.close[:, j])).any() else np.nan for j in range(md.n_symbols)])
        last = closes if last is None else np.where(np.isfinite(closes), closes, last)
        have["months"].append(month)
        have["last"] = [float(x) for x in last]
        marker.write_text(json.dumps(have))
        print(f"  store: {month} written ({n_symbols} symbols x {bars} bars)", flush=True)


def _status_mib() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB, from /proc/self/status (Linux; NaN elsewhere)."""
    got = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    got[key] = int(value.split()[0]) / 1024  # kB
    except OSError:
        pass
    return got.get("VmRSS", float("nan")), got.get("VmHWM", float("nan"))


def _sampled(months, curve: list):
    """The chunk generator, with the RSS sampled at each border: as the run asks for chunk i
    (before it is built; chunk i - 1 was prepared and run by then), and once the last is done."""
    months = iter(months)
    i = 0
    while True:
        curve.append([f"before {i + 1}" if i else "start", *_status_mib()])
        try:
            row0, m = next(months)
        except StopIteration:
            break
        yield row0, m
        del m  # not held while the next chunk is built
        i += 1
    curve[-1][0] = f"after {i}"


def _thread_times() -> tuple[float, float, float]:
    """(wall, user, system) seconds: the clock and this thread's CPU (Linux's RUSAGE_THREAD)."""
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return time.perf_counter(), r.ru_utime, r.ru_stime


def _timed(fn, totals: list):
    """``fn``, adding each call's (wall, user, system) seconds to ``totals``: the system time is
    mostly the page faults of fresh memory."""
    def call(*args):
        a = _thread_times()
        out = fn(*args)
        for i, (x, y) in enumerate(zip(a, _thread_times())):
            totals[i] += y - x
        return out

    return call


def worker(store: Path, timeframe: str, chunked: bool) -> None:
    from engine.backtest.chunked import run_market_chunks
    from engine.backtest.engine import run_backtest
    from engine.cli import compose_config
    from engine.cycle.chunks import ChunkedPreparer
    from engine.cycle.memory import reuse_freed_memory
    from engine.cycle.prepare import prepare
    from engine.modes.month_chunks import month_source
    from engine.modes.setup import backtest_settings, load_rules, market_for
    from engine.sim.results import build_results
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(compose_config(
        ["data=store", f"data.path={store}", f"data.timeframe={timeframe}", "data.max_memory_gib=1000"]), resolve=True)
    rules = load_rules(cfg)
    curve: list = []
    prep = [0.0, 0.0, 0.0]  # the preparer's (wall, user, system) seconds: every chunk's, or the whole run's
    ChunkedPreparer.step = _timed(ChunkedPreparer.step, prep)
    t0 = time.perf_counter()
    with reuse_freed_memory():
        if chunked:
            source = month_source(cfg)
            frame = source.frame
            settings = backtest_settings(cfg, frame)
            res = run_market_chunks(_sampled(source.months, curve), rules, settings, frame)
        else:
            frame = market_for(cfg)
            settings = backtest_settings(cfg, frame)
            res = run_backtest(_timed(prepare, prep)(frame, rules), settings)
        build_results(res, {})
        with tempfile.TemporaryDirectory() as tmp:
            res.trace.save(Path(tmp) / "trace.npz")
        curve.append(["saved", *_status_mib()])
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "bars": frame.n_bars, "symbols": frame.n_symbols, "fills": len(res.fills),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "curve": curve,
                      "prepare": prep}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--timeframe", default="1m")
    ap.add_argument("--months", default="1,3,6,12")
    ap.add_argument("--in-memory", default="1,3")
    ap.add_argument("--store", default=None, help="where the stores are kept (default: a temporary folder)")
    ap.add_argument("--worker", nargs=2, metavar=("STORE", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(Path(a.worker[0]), a.timeframe, a.worker[1] == "chunked")
    months = sorted({int(x) for x in a.months.split(",") if x})
    whole = {int(x) for x in a.in_memory.split(",") if x}
    base = Path(a.store) if a.store else Path(tempfile.mkdtemp(prefix="rulebook-chunked-"))
    env = {**os.environ, "RULEBOOK_PROGRESS": "never", "PYTHONPATH": str(ROOT)}
    print(f"sma_cross, {a.symbols} symbols of {a.timeframe} bars from the market store, 2 cores")
    print(f"{'months':>6} {'path':<14} {'symbol-bars':>12} {'seconds':>8} {'M sb/s':>7} {'peak RSS MiB':>13} {'fills':>6}"
          f"  prepare s (user, sys)")
    try:
        prev = None
        for n in months:
            store = base / f"{a.symbols}x{a.timeframe}x{n}m"
            if prev is not None and not store.exists():
                shutil.copytree(prev, store)  # the shorter store's months, then the rest
            build_store(store, a.symbols, a.timeframe, n)
            prev = store
            for path in ("chunked", *(["in-memory"] if n in whole else [])):
                out = subprocess.run([sys.executable, __file__, "--timeframe", a.timeframe, "--worker", str(store), path],
                                     capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    print(f"{n:>6} {path:<14} failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                sb = r["bars"] * r["symbols"]
                print(f"{n:>6} {path:<14} {sb:>12,} {r['seconds']:>8.1f} {sb / r['seconds'] / 1e6:>7.2f} "
                      f"{r['peak_rss_mib']:>13,.0f} {r['fills']:>6}  {r['prepare'][0]:>9.1f} ({r['prepare'][1]:.1f}, "
                      f"{r['prepare'][2]:.1f})", flush=True)
                if path == "chunked":
                    print("       RSS / peak MiB at chunk borders: " + ", ".join(
                        f"{label} {rss:,.0f}/{hwm:,.0f}" for label, rss, hwm in r["curve"]), flush=True)
    finally:
        if not a.store:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
