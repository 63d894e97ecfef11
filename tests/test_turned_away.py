"""Bars whose entry candidates a full book turns away are decided as a block (engine/cycle/turned_away.py)
in a traced run: the same results and the same trace, event for event and byte for byte in
trace.npz, as the per-bar loop that calls ``decide`` on every bar."""
from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.engine import run_backtest
from engine.cycle.plan import cycle_plan
from engine.cycle.turned_away import applies
from engine.trace import EventLog
from tests.helpers.backtest import assert_same_trace_events, prepared_run
from tests.test_quiet_untraced import _same_results

FULL_BOOKS = [
    ("risk.params.max_positions=2",),
    # the caps before the position count clip and block candidates too (their marks are per bar)
    ("risk.params.max_positions=3", "risk.params.max_total_exposure=0.35"),
    ("risk.params.max_positions=4", "risk.params.theme_caps={default: 0.15, meme: 0.05}",
     "risk.params.max_position_weight=0.07"),
    # a priority read per bar (-zscore), NaN over its first window
    ("strategy=mean_reversion", "risk.params.max_positions=2"),
    # halts hold over some of the blocks (their bars have no candidates)
    ("risk.params.max_positions=2", "risk.params.hourly_loss_limit=0.004", "risk.params.cooldown_bars=7"),
]


@pytest.mark.parametrize("overrides", FULL_BOOKS)
def test_full_book_bars_decided_as_a_block_match_the_per_bar_loop(overrides, tmp_path):
    p, s = prepared_run(overrides, n_symbols=30, n_bars=24 * 90)
    assert applies(cycle_plan(p))
    slow, fast = run_backtest(p, s, fast=False), run_backtest(p, s, fast=True)
    assert fast.stats["decided_as_block"] > 20  # the path under test did run
    assert slow.stats["decided_as_block"] == 0
    assert len(slow.fills) > 10
    _same_results(fast, slow)
    assert_same_trace_events(fast, slow)
    assert list(fast.trace.logs) == list(slow.trace.logs)  # the keys in the order they first appeared
    fast.trace.save(tmp_path / "fast.npz")
    slow.trace.save(tmp_path / "slow.npz")
    assert (tmp_path / "fast.npz").read_bytes() == (tmp_path / "slow.npz").read_bytes()
    assert fast.trace.rule_stats() == slow.trace.rule_stats()


def test_the_blocks_carry_the_caps_marks_of_a_cycle():
    p, s = prepared_run(FULL_BOOKS[1], n_symbols=30, n_bars=24 * 90)
    fast = run_backtest(p, s, fast=True)
    # a full book blocks every candidate at max_positions; the exposure cap clipped some on the way
    assert fast.trace.bars_of("cap_block:max_positions")
    assert fast.trace.bars_of("clip:total_exposure")
    assert fast.trace.bars_of("cap_pass:per_asset")


def _locked_run(tmp_path):
    from engine.cycle.prepare import prepare
    from engine.modes.setup import backtest_settings, load_rules
    from tests.helpers.backtest import sample_market
    from tests.helpers.runs import compose_config
    from tests.test_risk_protections import LOCKS, PROTECT, rules_with

    cfg = compose_config([f"rules_dir={rules_with(tmp_path, LOCKS, PROTECT)}", "risk.params.max_positions=2"])
    market = sample_market(30, 24 * 60)
    return prepare(market, load_rules(cfg)), backtest_settings(cfg, market)


@pytest.mark.parametrize("case", ["book", "locks"])
def test_runs_the_block_cannot_decide_go_bar_by_bar(case, tmp_path):
    """A book sizes per strategy and a scoped lock leaves its own events: neither takes the block path."""
    if case == "book":
        p, s = prepared_run(("book=trend_reversion", "risk.params.max_positions=2"), n_symbols=30, n_bars=24 * 60)
    else:
        p, s = _locked_run(tmp_path)
    plan = cycle_plan(p)
    assert p.book is not None or plan.locks
    assert not applies(plan)
    fast = run_backtest(p, s, fast=True)
    assert fast.stats["decided_as_block"] == 0
    _same_results(fast, run_backtest(p, s, fast=False))


def test_an_observed_run_sees_every_decision():
    p, s = prepared_run(FULL_BOOKS[0], n_symbols=30, n_bars=24 * 60)
    seen: list[int] = []
    fast = run_backtest(p, s, fast=True, observe=lambda d: seen.append(d.t))
    assert fast.stats["decided_as_block"] == 0 and len(seen) == fast.stats["decided"]


def test_an_event_log_takes_a_block_as_its_bars_one_by_one():
    rng = np.random.default_rng(3)
    bars = [(t, np.sort(rng.choice(40, size=rng.integers(1, 6), replace=False)).astype(np.int32))
            for t in range(5, 60, 3)]
    one, block = EventLog(), EventLog()
    for t, idx in bars[:4]:
        one.add(t, idx)
        block.add(t, idx)
    for t, idx in bars[4:]:
        one.add(t, idx)
    block.add_block(np.array([t for t, _ in bars[4:]]), np.array([len(i) for _, i in bars[4:]]),
                    np.concatenate([i for _, i in bars[4:]]))
    assert [a.tobytes() for a in one.arrays()] == [a.tobytes() for a in block.arrays()]
    assert len(one) == len(block) and one.n_symbols == block.n_symbols


# -- exits under way whose sells the guards hold back (engine/cycle/held_back.py) -------------------

# a tight volume cap fills exits in parts; the min_notional guard holds back the last, small part
CAPPED = ("backtest.max_participation=0.002", "execution.params.min_notional=200")
HELD_BACK = [
    CAPPED,
    CAPPED + ("risk.params.max_positions=2",),  # with full-book bars in the same blocks
    CAPPED + ("risk.params.hourly_loss_limit=0.004", "risk.params.cooldown_bars=7"),
    CAPPED + ("strategy=mean_reversion",),
]


def _blocked_exit_bars(res) -> int:
    return sum(1 for _ in res.trace.bars_of("block:min_notional"))


@pytest.mark.parametrize("overrides", HELD_BACK)
def test_exits_the_guards_hold_back_decided_as_a_block_match_the_per_bar_loop(overrides, tmp_path):
    p, s = prepared_run(overrides, n_symbols=30, n_bars=24 * 90)
    slow, fast = run_backtest(p, s, fast=False), run_backtest(p, s, fast=True)
    untraced = run_backtest(p, s, fast=True, trace=False)
    assert _blocked_exit_bars(slow) > 50  # the scenario does hold exits back, bar after bar
    assert fast.stats["decided_as_block"] > 50
    _same_results(fast, slow)
    _same_results(untraced, slow)
    assert_same_trace_events(fast, slow)
    assert list(fast.trace.logs) == list(slow.trace.logs)
    fast.trace.save(tmp_path / "fast.npz")
    slow.trace.save(tmp_path / "slow.npz")
    assert (tmp_path / "fast.npz").read_bytes() == (tmp_path / "slow.npz").read_bytes()
    assert fast.trace.rule_stats() == slow.trace.rule_stats()


def test_a_guard_outside_its_regimes_neither_judges_nor_blocks_in_a_block(tmp_path):
    """A per-cycle guard limited to some regimes has no verdict on the other bars of a block."""
    from engine.cycle.prepare import prepare
    from engine.modes.setup import backtest_settings, load_rules
    from tests.helpers.backtest import sample_market
    from tests.helpers.rules import edit_rule_file
    from tests.helpers.runs import compose_config

    root = edit_rule_file(tmp_path, "execution.yaml", "  - id: slippage_guard\n",
                          "  - id: bull_notional\n    regimes: [bull]\n    when: order.notional >= 400\n"
                          "  - id: slippage_guard\n")
    cfg = compose_config([f"rules_dir={root}", *CAPPED])
    market = sample_market(30, 24 * 90)
    p, s = prepare(market, load_rules(cfg)), backtest_settings(cfg, market)
    slow, fast = run_backtest(p, s, fast=False), run_backtest(p, s, fast=True)
    assert fast.stats["decided_as_block"] > 50
    assert slow.trace.bars_of("block:bull_notional") and slow.trace.bars_of("cycle_true:bull_notional")
    _same_results(fast, slow)
    assert_same_trace_events(fast, slow)
    fast.trace.save(tmp_path / "fast.npz")
    slow.trace.save(tmp_path / "slow.npz")
    assert (tmp_path / "fast.npz").read_bytes() == (tmp_path / "slow.npz").read_bytes()
