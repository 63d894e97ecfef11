"""Print what a strategy's ``protect:`` block (and the risk file's scoped locks) cost the backtest
loop: sma_cross on the sample market, as shipped and with protections added to a copy of the
rules, fast path and bar by bar; and what they change in the results (the before/after of
issue 15: total return, Sharpe, max drawdown, protection exits). Nothing is asserted.

    python benchmarks/protect_speed.py [--sizes 30,100] [--bars 8760] [--repeat 3]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROTECT = "protect:\n  stop_loss: params.stop_loss\n  take_profit: 0.25\n  trailing_stop: 0.1\n  time_stop: 720\n"
LOCKS = ("protections:\n  - {id: cooldown, type: cooldown, scope: symbol, lock_bars: 48}\n"
         "  - {id: equity_stop, type: equity_stop, reduce_at: 0.1, halt_at: 0.2, lock_bars: 48}\n")


def rules_copy(tmp: Path, protect: bool, locks: bool) -> Path:
    root = tmp / f"rules-{int(protect)}{int(locks)}"
    if root.exists():
        return root
    shutil.copytree(ROOT / "rules", root)
    if protect:
        s = root / "strategies" / "sma_cross.yaml"
        s.write_text(s.read_text() + PROTECT)
    if locks:
        r = root / "risk.yaml"
        r.write_text(r.read_text() + LOCKS)
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="30,100")
    ap.add_argument("--bars", type=int, default=8760)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from engine.backtest.engine import run_backtest
    from engine.cycle.prepare import prepare
    from engine.market.sample import SampleSpec, generate_sample_market
    from engine.modes.baseline import compose
    from engine.modes.setup import backtest_settings, load_rules
    from engine.sim.results import run_metrics

    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'symbols':>7} {'variant':<18} {'fast loop s':>11} {'bar-by-bar s':>12} {'fills':>6} {'skipped':>8} "
              f"{'return':>8} {'sharpe':>7} {'max dd':>7} {'protect exits':>13}")
        for n in [int(x) for x in a.sizes.split(",")]:
            market = generate_sample_market(SampleSpec(n_symbols=n, n_bars=a.bars))
            for name, protect, locks in (("as shipped", False, False), ("protect", True, False),
                                         ("protect + locks", True, True)):
                cfg = compose([f"rules_dir={rules_copy(Path(tmp), protect, locks)}"])
                p = prepare(market, load_rules(cfg))
                s = backtest_settings(cfg, market)
                times, skipped = {}, 0
                for fast in (True, False):
                    runs = []
                    for _ in range(a.repeat):
                        t0 = time.perf_counter()
                        res = run_backtest(p, s, fast=fast)
                        runs.append(time.perf_counter() - t0)
                    times[fast] = statistics.median(runs)
                    skipped = skipped or res.stats["skipped"]
                m = run_metrics(res)[0]
                exits = sum(1 for f in res.fills if str(f.rule).startswith("protect:"))
                print(f"{n:>7} {name:<18} {times[True]:>11.3f} {times[False]:>12.3f} {len(res.fills):>6} "
                      f"{skipped:>8} {m['total_return']:>8.2%} {m['sharpe'] or float('nan'):>7.2f} "
                      f"{m['max_drawdown']:>7.2%} {exits:>13}")


if __name__ == "__main__":
    main()
