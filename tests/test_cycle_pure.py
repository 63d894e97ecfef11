"""The cycle is pure: ``decide`` writes into none of its inputs, and caps apply in file order."""
from __future__ import annotations

import hashlib
import pickle

import numpy as np

from engine.backtest.engine import run_backtest
from engine.cycle.decide import Quotes, decide
from engine.cycle.plan import HaltState, cycle_plan
from engine.cycle.prepare import prepare
from engine.cycle.portfolio import Portfolio
from engine.cycle.state import apply_change
from tests.helpers.backtest import prepared_run, sample_market
from tests.helpers.rules import edit_rule_file, load_shipped

TIGHT_HALTS = ("strategy=sma_cross", "risk.params.daily_loss_limit=0.005", "risk.params.hourly_loss_limit=0.002",
               "risk.params.max_drawdown_halt=0.02", "risk.params.cooldown_bars=6")


def _digest(*objs) -> str:
    h = hashlib.sha256()
    for o in objs:
        if isinstance(o, np.ndarray):
            h.update(repr((o.dtype, o.shape)).encode() + np.ascontiguousarray(o).tobytes())
        else:
            h.update(pickle.dumps(o))
    return h.hexdigest()


def _inputs(p, plan, pf: Portfolio, q: Quotes, halts: HaltState) -> str:
    """The per-cycle inputs (portfolio, quotes, halt state, the prepared run's cache)."""
    return _digest(pf.cash, pf.qty, pf.entry_price, pf.entry_bar, list(pf.entry_rule), pf.exiting, pf.peak_equity,
                   pf.day_start_equity, pf.day, pf.prev_equity, pf.equity, dict(halts.until), q.price, q.spread_bps,
                   q.age_s, q.bar_volume_usd, sorted(p.extra), sorted(p.store.arrays),
                   [(c.id, c.asset, c.theme, c.limit) for c in plan.caps])


def _run_inputs(p, plan) -> str:
    """The whole-run inputs (every prepared array and the plan's masks): hashed before and after."""
    return _digest(*[p.store.arrays[k] for k in sorted(p.store.arrays)], plan.buyable, plan.enterable,
                   p.universe, p.available, p.entries.combined, p.exits.combined)


def test_decide_mutates_no_input_over_cycles_with_halts_firing():
    p, s = prepared_run(TIGHT_HALTS)
    plan = cycle_plan(p)
    ref = run_backtest(p, s, fast=False)  # the per-bar run: holds positions, halts fire and re-arm
    assert any(ref.trace.halts.values())
    # replay the same bars by hand, checking every input before and after each decide
    pf = Portfolio.empty(p.market.n_symbols, s.initial_cash)
    from engine.sim.fills import SimBroker
    broker = SimBroker(p.market, s.fee_schedule(), s.slippage,
                       p.size_increment, s.max_participation, np.random.default_rng(s.seed))
    halts, pending, fired, rearmed = HaltState(), None, 0, 0
    zeros = np.zeros(p.market.n_symbols)
    _ = p.store.arrays["spread_bps"], p.store.arrays["volume_usd"]  # lazy columns built before hashing
    run_before = _run_inputs(p, plan)
    for t in range(s.start, p.market.n_bars - 1):
        if pending is not None:
            broker.execute(pending, t, pf)
            pending = None
        pf.mark(p.close[t], int(p.market.times[t] // 86_400_000))
        q = Quotes(p.close[t], p.store.arrays["spread_bps"][t], zeros, p.store.arrays["volume_usd"][t])
        before = _inputs(p, plan, pf, q, halts)
        d, change = decide(plan, t, pf, q, halts)
        assert _inputs(p, plan, pf, q, halts) == before, f"decide wrote into an input at bar {t}"
        fired += change.halts is not halts
        rearmed += change.peak_equity is not None
        halts = apply_change(pf, change)
        if d.has_orders:
            pending = d
    assert _run_inputs(p, plan) == run_before
    assert fired > 0 and rearmed > 0  # halts fired and a flatten halt re-armed: the state paths ran
    assert [(f.t, f.symbol_idx, f.side, f.qty, f.price) for f in broker.fills] == \
        [(f.t, f.symbol_idx, f.side, f.qty, f.price) for f in ref.fills]


RISK_TWO_ASSET_CAPS = """caps:
  - {id: tight_asset, type: asset_weight, limit: 0.01}
  - {id: per_asset, type: asset_weight, limit: params.max_position_weight, per_symbol: params.asset_caps}
"""


def _first_entry(p, plan, cash=10_000.0):
    pf = Portfolio.empty(p.market.n_symbols, cash)
    zeros = np.zeros(p.market.n_symbols)
    for t in range(60, p.market.n_bars - 1):
        pf.mark(p.close[t], int(p.market.times[t] // 86_400_000))
        q = Quotes(p.close[t], p.store.arrays["spread_bps"][t], zeros, p.store.arrays["volume_usd"][t])
        d, _ = decide(plan, t, pf, q, HaltState())
        if d.buy_qty.any():
            return t, pf, d
    raise AssertionError("no entry in the sample market")


def test_two_caps_of_one_type_both_apply_in_file_order(tmp_path):
    """An asset cap of 0.01 listed before one of 0.1: the 0.01 holds (it used to be replaced by 0.1)."""
    root = edit_rule_file(tmp_path, "risk.yaml", """caps:
  - {id: per_asset, type: asset_weight, limit: params.max_position_weight, per_symbol: params.asset_caps}
""", RISK_TWO_ASSET_CAPS)
    p = prepare(sample_market(), load_shipped(root))
    plan = cycle_plan(p)
    assert [c.id for c in plan.caps] == ["tight_asset", "per_asset", "per_theme", "total_exposure", "max_positions"]
    t, pf, d = _first_entry(p, plan)
    i = int(np.flatnonzero(d.buy_qty)[0])
    inc = p.size_increment[i]
    expected = np.floor(0.01 * pf.equity / p.close[t, i] / inc + 1e-9) * inc
    assert d.buy_qty[i] == expected
    assert d.clipped["tight_asset"][i] and "per_asset" not in d.clipped  # the 0.1 cap passes 0.01 untouched
    assert d.cap_passed["per_asset"][i]


def test_rule_stats_count_what_each_cap_clipped_blocked_and_passed(tmp_path):
    root = edit_rule_file(tmp_path, "risk.yaml", "  - {id: max_positions, type: position_count, limit: params.max_positions}",
                          "  - {id: max_positions, type: position_count, limit: 1}")
    p = prepare(sample_market(), load_shipped(root))
    _, s = prepared_run()
    res = run_backtest(p, s)
    stats = res.trace.rule_stats()
    ev = res.trace.events
    n = lambda key: sum(len(i) for _, i in ev.get(key, []))  # noqa: E731
    cap = stats["cap:max_positions"]
    assert cap["blocked"] == n("cap_block:max_positions") > 0  # one slot: most candidates get none
    assert cap["passed"] == n("cap_pass:max_positions") > 0
    assert cap["clipped"] == n("clip:max_positions") - cap["blocked"] == 0  # a count cap never half-clips
    # every candidate with a weight reaches the per-asset cap first: it passes or clips each one
    a = stats["cap:per_asset"]
    assert a["passed"] + a["clipped"] + a["blocked"] == n("candidate") > 0
