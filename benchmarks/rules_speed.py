"""How fast the shipped rule set runs: per cycle (what ``decide`` spends on rules) and precompute.

    python benchmarks/rules_speed.py            # 100 / 500 / 2,000 symbols; precompute at 2,000 x 8,784
    python benchmarks/rules_speed.py --quick    # smaller precompute (2,000 x 2,000)

Each shipped strategy runs with the hourly regime; "book" is conf/book/trend_reversion: two
strategies (sma_cross 60%, mean_reversion 40%, which reads a second timeframe through
``on("1d", ...)``) in one account over the daily regime (rules/regime_daily.yaml, timeframe: 1d).

Per cycle, "rules" is everything a cycle evaluates from the rule files: the portfolio
namespace, halts, exit and entry rules (series rows + per-cycle closures), vetoes, size and
priority, and every execution guard with the order namespace. "decide" is the whole cycle
(rules + sizing + caps + rounding) for context. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cycle.decide import HaltState, Quotes, _eval_group, cycle_plan, decide  # noqa: E402
from engine.cycle.portfolio import Portfolio  # noqa: E402
from engine.cycle.prepare import Prepared, prepare  # noqa: E402
from engine.market.sample import SampleSpec, generate_sample_market  # noqa: E402
from engine.rules.loader import load_ruleset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
BOOK = "book"  # conf/book/trend_reversion.yaml
STRATEGIES = sorted(p.relative_to(RULES).as_posix() for p in (RULES / "strategies").glob("*.yaml")) + [BOOK]


def load(strategy: str):
    files = {"regime": "regime.yaml", "universe": "universe.yaml", "strategy": strategy,
             "risk": "risk.yaml", "execution": "execution.yaml"}
    if strategy != BOOK:
        return load_ruleset(RULES, files)
    import yaml
    conf = yaml.safe_load((ROOT / "conf" / "book" / "trend_reversion.yaml").read_text())
    daily = yaml.safe_load((ROOT / "conf" / "regime" / "daily.yaml").read_text())
    return load_ruleset(RULES, {**files, "regime": daily["file"]}, {"regime": daily["params"]}, conf["book"])


def portfolio(p: Prepared, t: int, share: float = 0.1, seed: int = 0) -> Portfolio:
    """A portfolio holding ``share`` of the symbols, entered 50 bars ago, marked at bar t."""
    n = p.market.n_symbols
    rng = np.random.default_rng(seed)
    pf = Portfolio.empty(n, 100_000.0)
    held = rng.random(n) < share
    close = np.nan_to_num(p.close[t], nan=1.0)
    pf.qty = np.where(held, 1000.0 / close, 0.0)
    pf.entry_price = np.where(held, close * 0.98, np.nan)
    pf.entry_bar = np.where(held, t - 50, -1)
    pf.cash = 100_000.0 - 1000.0 * held.sum()
    pf.mark(close, 0)
    return pf


def rules_cycle(p: Prepared, t: int, pf: Portfolio, quotes: Quotes) -> int:
    """Evaluate every rule of the set at bar t over the whole universe (no sizing)."""
    close = quotes.price
    env = pf.env(close, t)
    verdicts: dict = {}
    halted = [bool(fn(env, t)) for _, fn in p.halts]
    cand = p.universe[t] & p.available[t] & (pf.qty <= 0)
    if p.book is None:
        exits = _eval_group(p.exits, env, t, "or", verdicts)
        entries = _eval_group(p.entries, env, t, "or", verdicts) & cand
        size = p.size(env, t)
        prio = p.priority(env, t) if p.priority is not None else None
    else:  # every strategy of the book: its exits, entries, size and priority
        exits = entries = np.zeros(close.shape[0], dtype=bool)
        for sl in p.book.sleeves:
            exits = exits | _eval_group(sl.exits, env, t, "or", verdicts)
            entries = entries | (_eval_group(sl.entries, env, t, "or", verdicts) & cand)
            size = sl.size(env, t)
            prio = sl.priority(env, t) if sl.priority is not None else None
    vetoes = _eval_group(p.vetoes, env, t, "and", verdicts)
    notional = np.where(entries | exits, 1000.0, 0.0)
    genv = dict(env)
    genv.update({"order.notional": notional, "order.is_entry": entries,
                 "order.est_slippage_bps": np.nan_to_num(quotes.spread_bps) / 2.0, "quote_age_s": quotes.age_s})
    ok = np.ones(close.shape[0], dtype=bool)
    for s in p.guards.series:
        ok &= s.mask[t]
    for c in p.guards.cycle:
        ok &= np.asarray(c.fn(genv, t), dtype=bool)
    return len(halted) + int((entries & vetoes & ok).sum()) + int(np.size(size)) + (0 if prio is None else 1)


def per_cycle(fn, bars: range, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean microseconds per cycle over ``bars``."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in bars:
            fn(t)
        runs.append((time.perf_counter() - t0) / len(bars) * 1e6)
    return statistics.median(runs)


def bench_cycles(sizes: list[int], n_bars: int) -> None:
    print(f"per-cycle cost, full shipped rule set, {n_bars} bars of sample market, 10% of symbols held")
    print(f"{'strategy':<28}{'symbols':>8}{'rules us/cycle':>16}{'decide us/cycle':>17}{'cycle rules':>13}")
    for n in sizes:
        market = generate_sample_market(SampleSpec(n_symbols=n, n_bars=n_bars))
        for strategy in STRATEGIES:
            p = prepare(market, load(strategy))
            bars = range(n_bars // 2, n_bars - 1)
            pf = portfolio(p, bars.start)
            spread = p.store.arrays["spread_bps"]
            vol = p.store.arrays["volume_usd"]
            zeros = np.zeros(n)
            quotes = [Quotes(p.close[t], spread[t], zeros, vol[t]) for t in range(n_bars)]
            plan = cycle_plan(p)
            us_rules = per_cycle(lambda t: rules_cycle(p, t, pf, quotes[t]), bars)

            def full(t: int) -> None:
                decide(plan, t, pf, quotes[t], HaltState())
            us_decide = per_cycle(full, bars)
            n_cycle = sum(len(g.cycle) for g in (p.entries, p.exits, p.vetoes, p.guards)) + len(p.halts)
            label = "book (2 strategies, 1d+1h)" if strategy == BOOK else strategy
            print(f"{label:<28}{n:>8}{us_rules:>16.1f}{us_decide:>17.1f}{n_cycle:>13}")


def bench_prepare(n_symbols: int, n_bars: int) -> None:
    t0 = time.perf_counter()
    market = generate_sample_market(SampleSpec(n_symbols=n_symbols, n_bars=n_bars))
    gen = time.perf_counter() - t0
    print(f"\nfeature precompute (prepare: market columns, regime, every feature and series rule mask, "
          f"universe) at {n_symbols} symbols x {n_bars} bars (sample market generated in {gen:.1f} s)")
    for strategy in STRATEGIES:
        rules = load(strategy)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            p = prepare(market, rules)
            times.append(time.perf_counter() - t0)
        label = "book (2 strategies, 1d+1h)" if strategy == BOOK else strategy
        print(f"  {label:<28} {min(times):6.2f} s  ({len(p.store.arrays)} arrays in the feature store)")
        del p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="precompute at 2,000 x 2,000 instead of 2,000 x 8,784")
    args = ap.parse_args()
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}")
    bench_cycles([100, 500, 2000], n_bars=1200)
    bench_prepare(2000, 2000 if args.quick else 8784)


if __name__ == "__main__":
    main()
