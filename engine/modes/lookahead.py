"""Lookahead analysis: does any decision change when the future is cut off?

    python -m engine.modes.lookahead [--points 20] [--out lookahead.json] -- strategy=momentum

Runs the backtest on all the data, then again on the data truncated after each of
``--points`` bars spread over the window. At every cut, everything decided up to the cut
must be the same as in the full run: the regime label, every universe filter, the universe
membership, every entry / exit / veto / guard rule that is precomputed over history (that is
every rule file: regime, universe, strategy, risk, execution), and the fills of the
backtest itself (which covers the per-cycle rules too). Every change is reported with
the stage, the rule, the bar and the symbols. Exit code 1 when something changed.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine.sim.fills import fill_to_dict
from engine.backtest.engine import BacktestSettings, run_backtest
from engine.cycle.prepare import Prepared, prepare
from engine.market.data import MarketData, iso_utc
from engine.rules.loader import RuleSet


@dataclass(frozen=True)
class Change:
    cut: str  # time of the last bar the truncated run saw
    stage: str  # regime | universe | universe_membership | entry | exit | veto | guard | fills
    rule: str
    time: str  # first bar whose verdict changed
    symbols: tuple[str, ...]

    def __str__(self) -> str:
        return (f"cut at {self.cut}: {self.stage}:{self.rule} changed at {self.time}"
                + (f" for {', '.join(self.symbols[:8])}{' ...' if len(self.symbols) > 8 else ''}" if self.symbols else ""))


def _masks(p: Prepared) -> dict[tuple[str, str], np.ndarray]:
    """(stage, rule) -> (T, N) or (T, 1) verdicts, for every precomputed rule of every file."""
    out: dict[tuple[str, str], np.ndarray] = {("regime", "label"): p.regime_idx[:, None]}
    out.update({("regime", k): v[:, None] for k, v in p.regime_masks.items()})
    out.update({("universe", k): v for k, v in p.filter_masks.items()})
    out[("universe_membership", "universe")] = p.universe
    for stage, g in (("entry", p.entries), ("exit", p.exits), ("veto", p.vetoes), ("guard", p.guards)):
        out.update({(stage, s.rule.id): s.mask for s in g.series})
    return out


def _first_change(a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray] | None:
    diff = a != b
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    return int(rows[0]), np.flatnonzero(diff[rows[0]])


def cut_points(start: int, stop: int, points: int, warmup: int = 2) -> list[int]:
    """``points`` last-bar indices spread evenly over the window (the final bar excluded)."""
    lo, hi = start + warmup, stop - 2
    if hi < lo:
        return []
    return sorted({int(x) for x in np.linspace(lo, hi, max(points, 1))})


def analyze(market: MarketData, rules: RuleSet, settings: BacktestSettings, points: int = 20,
            prepare_fn: Callable[[MarketData, RuleSet], Prepared] = prepare) -> tuple[list[Change], list[int]]:
    full = prepare_fn(market, rules)
    stop = market.n_bars if settings.stop is None else settings.stop
    full_masks = _masks(full)
    full_fills = [(f.t, fill_to_dict(f, market)) for f in run_backtest(full, settings).fills]
    changes: list[Change] = []
    cuts = cut_points(settings.start, stop, points)
    for cut in cuts:
        cut_market = market.select(start=0, stop=cut + 1)
        part = prepare_fn(cut_market, rules)
        when = iso_utc(int(market.times[cut]))
        for key, m in _masks(part).items():
            ref = full_masks.get(key)
            if ref is None:
                continue
            hit = _first_change(np.asarray(m), np.asarray(ref[: cut + 1]))
            if hit is not None:
                row, cols = hit
                syms = tuple(market.symbols[c] for c in cols) if m.shape[1] == market.n_symbols else ()
                changes.append(Change(when, key[0], key[1], iso_utc(int(market.times[row])), syms))
        s = dataclasses.replace(settings, stop=cut + 1)
        if cut + 1 - settings.start >= 2:
            got = [(f.t, fill_to_dict(f, cut_market)) for f in run_backtest(part, s).fills]
            want = [x for x in full_fills if x[0] <= cut]
            if got != want:
                k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                src = (got + want)[k] if k < len(got) else want[k]
                changes.append(Change(when, "fills", "backtest", src[1]["time"], (src[1]["symbol"],)))
    return changes, cuts


def main(argv: list[str] | None = None) -> int:
    from engine.errors import user_error_types
    from engine.modes.baseline import compose, split_overrides
    from engine.modes.setup import backtest_settings, load_rules, market_for
    from engine.report.jsonio import write_json

    argv, given = split_overrides(argv)
    overrides: list[str] = given or []
    ap = argparse.ArgumentParser(prog="python -m engine.modes.lookahead", description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=20, help="truncation points over the window")
    ap.add_argument("--out", default=None, help="write the findings as JSON here")
    args = ap.parse_args(argv)
    try:
        cfg = compose(overrides)
        market = market_for(cfg)
        changes, cuts = analyze(market, load_rules(cfg), backtest_settings(cfg, market), args.points)
    except user_error_types() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for c in changes:
        print(c)
    print(f"lookahead analysis: {len(cuts)} cuts, {len(changes)} change(s)"
          + (" - no decision depends on the future" if not changes else ""))
    if args.out:
        write_json(args.out, {"cuts": [iso_utc(int(market.times[c])) for c in cuts],
                              "changes": [dataclasses.asdict(c) for c in changes]})
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main())
