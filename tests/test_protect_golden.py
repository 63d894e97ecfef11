"""The golden table of protections: hand-built candles, exact expected fills, bars and fees.

Every scenario buys at bar 1's open (decided at bar 0, ``BAR0``: o=h=l=c=100) unless it says
otherwise; candles are (open, high, low, close, volume). Each row of ``expected`` is
(bar, side, rule, price, qty, fee). The rules are items 9-13 of the fill model in
docs/backtest.md. Each scenario runs bar by bar and the fast path's way (jumping over the bars
where no protection can fire): both must give the same fills.
"""
from __future__ import annotations

import pytest

from engine.sim.costs import SlippageModel
from tests.helpers.protect import NAN_BAR, Scenario, flat_fees, run_scenario

B = "buy"
S = "sell"
SL, TP, TR, TS = "protect:stop_loss", "protect:take_profit", "protect:trailing_stop", "protect:time_stop"
ENTRY = (1, B, "entry", 100.0, 1.0, 0.0)
FEES = {"fees": flat_fees(40, 80)}  # maker 40 bps (never used by a protection), taker 80 bps
SPREAD = {"slippage": SlippageModel("spread_impact", impact_coef=0.0)}  # half the spread, no impact
QUIET = (100.0, 101.0, 99.0, 100.0, 1000.0)


def bar(o, h, lo, c, v=1000.0):
    return (float(o), float(h), float(lo), float(c), float(v))


SCENARIOS = [
    # -- stop loss (a fraction of the entry price) --------------------------------------------
    Scenario("sl_not_reached", [bar(100, 102, 96, 101)], {"stop_loss": 0.05}, [ENTRY]),
    Scenario("sl_hit_in_entry_bar", [bar(100, 101, 94, 96)], {"stop_loss": 0.05}, [ENTRY, (1, S, SL, 95.0, 1.0, 0.0)]),
    Scenario("sl_low_touches_stop_fills", [bar(100, 101, 95, 96)], {"stop_loss": 0.05},
             [ENTRY, (1, S, SL, 95.0, 1.0, 0.0)]),
    Scenario("sl_low_just_above_stop", [bar(100, 101, 95.01, 96)], {"stop_loss": 0.05}, [ENTRY]),
    Scenario("sl_hit_a_later_bar", [bar(100, 102, 97, 101), bar(100, 100, 94, 95)], {"stop_loss": 0.05},
             [ENTRY, (2, S, SL, 95.0, 1.0, 0.0)]),
    Scenario("sl_gap_through_fills_at_open", [bar(100, 101, 97, 100), bar(90, 92, 88, 91)], {"stop_loss": 0.05},
             [ENTRY, (2, S, SL, 90.0, 1.0, 0.0)]),
    Scenario("sl_open_exactly_at_stop", [bar(100, 101, 97, 100), bar(95, 96, 94, 95)], {"stop_loss": 0.05},
             [ENTRY, (2, S, SL, 95.0, 1.0, 0.0)]),
    Scenario("sl_after_many_quiet_bars", [QUIET] * 30 + [bar(100, 100, 80, 85)], {"stop_loss": 0.1},
             [ENTRY, (31, S, SL, 90.0, 1.0, 0.0)]),
    Scenario("sl_missing_bar_then_gap", [bar(100, 101, 97, 100), NAN_BAR, bar(93, 94, 92, 93)], {"stop_loss": 0.05},
             [ENTRY, (3, S, SL, 93.0, 1.0, 0.0)]),
    Scenario("sl_zero_volume_bar_fills_nothing", [bar(100, 101, 97, 100), bar(96, 96, 94, 95, 0), bar(96, 97, 96, 96)],
             {"stop_loss": 0.05}, [ENTRY]),
    Scenario("sl_zero_volume_bar_then_gap", [bar(100, 101, 97, 100), bar(96, 96, 94, 95, 0), bar(94, 95, 93, 94)],
             {"stop_loss": 0.05}, [ENTRY, (3, S, SL, 94.0, 1.0, 0.0)]),
    Scenario("sl_taker_fee", [bar(100, 101, 94, 96)], {"stop_loss": 0.05},
             [(1, B, "entry", 100.0, 1.0, 0.8), (1, S, SL, 95.0, 1.0, 0.76)], broker=FEES),
    Scenario("sl_slippage_from_the_stop", [bar(100, 101, 94, 96)], {"stop_loss": 0.05},
             [(1, B, "entry", 100.1, 1.0, 0.0), (1, S, SL, 95.095 * 0.999, 1.0, 0.0)], broker=SPREAD, spread_bps=20.0),
    Scenario("sl_gap_slippage_from_the_open", [bar(100, 101, 97, 100), bar(90, 91, 89, 90)], {"stop_loss": 0.05},
             [(1, B, "entry", 100.1, 1.0, 0.0), (2, S, SL, 90.0 * 0.999, 1.0, 0.0)], broker=SPREAD, spread_bps=20.0),
    Scenario("sl_fee_and_slippage", [bar(100, 101, 94, 96)], {"stop_loss": 0.05},
             [(1, B, "entry", 100.1, 1.0, 100.1 * 0.008), (1, S, SL, 95.095 * 0.999, 1.0, 95.095 * 0.999 * 0.008)],
             broker={**FEES, **SPREAD}, spread_bps=20.0),
    Scenario("sl_participation_cap_partial", [bar(100, 101, 97, 100), bar(96, 97, 94, 95, 50)], {"stop_loss": 0.05},
             [(1, B, "entry", 100.0, 10.0, 0.0), (2, S, SL, 95.0, 5.0, 0.0)], buys={1: 10.0},
             broker={"max_participation": 0.1}),
    Scenario("sl_whole_position_sold", [bar(100, 101, 94, 96)], {"stop_loss": 0.05},
             [(1, B, "entry", 100.0, 3.0, 0.0), (1, S, SL, 95.0, 3.0, 0.0)], buys={1: 3.0}, size_increment=0.01),
    Scenario("sl_re_entry_gets_new_levels", [bar(100, 101, 94, 96), QUIET, bar(100, 101, 99, 100), bar(100, 100, 94.5, 96)],
             {"stop_loss": 0.05}, [ENTRY, (1, S, SL, 95.0, 1.0, 0.0), (3, B, "entry", 100.0, 1.0, 0.0),
                                   (4, S, SL, 95.0, 1.0, 0.0)], buys={1: 1.0, 3: 1.0}),
    Scenario("sl_re_entry_lower_price", [bar(100, 101, 94, 96), QUIET, bar(90, 91, 89, 90), bar(90, 90, 85, 86)],
             {"stop_loss": 0.05}, [ENTRY, (1, S, SL, 95.0, 1.0, 0.0), (3, B, "entry", 90.0, 1.0, 0.0),
                                   (4, S, SL, 85.5, 1.0, 0.0)], buys={1: 1.0, 3: 1.0}),
    Scenario("no_protection_no_fill", [bar(100, 101, 50, 60)], {}, [ENTRY]),
    Scenario("never_entered_missing_bar", [NAN_BAR, bar(100, 100, 50, 60)], {"stop_loss": 0.05}, []),
    # -- take profit ----------------------------------------------------------------------------
    Scenario("tp_high_through", [bar(100, 111, 99, 110)], {"take_profit": 0.1}, [ENTRY, (1, S, TP, 110.0, 1.0, 0.0)]),
    Scenario("tp_high_touch_only", [bar(100, 110, 99, 109)], {"take_profit": 0.1}, [ENTRY]),
    Scenario("tp_gap_up_fills_at_open", [bar(100, 105, 99, 104), bar(112, 115, 111, 114)], {"take_profit": 0.1},
             [ENTRY, (2, S, TP, 112.0, 1.0, 0.0)]),
    Scenario("tp_open_exactly_at_level", [bar(100, 105, 99, 104), bar(110, 110, 108, 109)], {"take_profit": 0.1},
             [ENTRY, (2, S, TP, 110.0, 1.0, 0.0)]),
    Scenario("tp_taker_fee", [bar(100, 111, 99, 110)], {"take_profit": 0.1},
             [(1, B, "entry", 100.0, 1.0, 0.8), (1, S, TP, 110.0, 1.0, 0.88)], broker=FEES),
    Scenario("tp_slippage", [bar(100, 111, 99, 110)], {"take_profit": 0.1},
             [(1, B, "entry", 100.1, 1.0, 0.0), (1, S, TP, 110.11 * 0.999, 1.0, 0.0)], broker=SPREAD, spread_bps=20.0),
    Scenario("tp_participation_cap", [bar(100, 105, 99, 104), bar(105, 111, 104, 110, 50)], {"take_profit": 0.1},
             [(1, B, "entry", 100.0, 10.0, 0.0), (2, S, TP, 110.0, 5.0, 0.0)], buys={1: 10.0},
             broker={"max_participation": 0.1}),
    # -- stop and take profit together ----------------------------------------------------------
    Scenario("both_in_one_bar_fills_the_stop", [bar(100, 111, 94, 105)], {"stop_loss": 0.05, "take_profit": 0.1},
             [ENTRY, (1, S, SL, 95.0, 1.0, 0.0)]),
    Scenario("both_later_bar_fills_the_stop", [QUIET, bar(100, 120, 80, 100)], {"stop_loss": 0.05, "take_profit": 0.1},
             [ENTRY, (2, S, SL, 95.0, 1.0, 0.0)]),
    Scenario("both_gap_down", [QUIET, bar(90, 115, 85, 100)], {"stop_loss": 0.05, "take_profit": 0.1},
             [ENTRY, (2, S, SL, 90.0, 1.0, 0.0)]),
    Scenario("both_gap_up", [QUIET, bar(112, 113, 80, 100)], {"stop_loss": 0.05, "take_profit": 0.1},
             [ENTRY, (2, S, TP, 112.0, 1.0, 0.0)]),
    Scenario("both_only_tp", [bar(100, 111, 96, 110)], {"stop_loss": 0.05, "take_profit": 0.1},
             [ENTRY, (1, S, TP, 110.0, 1.0, 0.0)]),
    Scenario("both_neither", [bar(100, 110, 95.5, 100)] * 3, {"stop_loss": 0.05, "take_profit": 0.1}, [ENTRY]),
    # -- trailing stop (a fraction below the highest high of completed bars) ---------------------
    Scenario("trail_level_does_not_move_within_the_bar", [bar(100, 120, 91, 100)], {"trailing_stop": 0.1}, [ENTRY]),
    Scenario("trail_moves_after_the_bar_then_gap", [bar(100, 120, 91, 100), bar(100, 101, 99, 100)],
             {"trailing_stop": 0.1}, [ENTRY, (2, S, TR, 100.0, 1.0, 0.0)]),
    Scenario("trail_hit_next_bar_at_level", [bar(100, 120, 95, 119), bar(119, 119, 107, 108)],
             {"trailing_stop": 0.1}, [ENTRY, (2, S, TR, 108.0, 1.0, 0.0)]),
    Scenario("trail_rises_bar_by_bar", [bar(100, 105, 99, 104), bar(104, 110, 103, 109), bar(109, 115, 108, 114),
                                        bar(114, 114, 103, 104)],
             {"trailing_stop": 0.1}, [ENTRY, (4, S, TR, 103.5, 1.0, 0.0)]),
    Scenario("trail_gap_below_level", [bar(100, 105, 99, 104), bar(104, 110, 103, 109), bar(109, 115, 108, 114),
                                       bar(100, 101, 99, 100)],
             {"trailing_stop": 0.1}, [ENTRY, (4, S, TR, 100.0, 1.0, 0.0)]),
    Scenario("trail_entry_bar_from_entry_price", [bar(100, 101, 90, 95)], {"trailing_stop": 0.1},
             [ENTRY, (1, S, TR, 90.0, 1.0, 0.0)]),
    Scenario("trail_missing_bar_keeps_level", [bar(100, 110, 100, 109), NAN_BAR, bar(105, 106, 98.5, 99)],
             {"trailing_stop": 0.1}, [ENTRY, (3, S, TR, 99.0, 1.0, 0.0)]),
    Scenario("trail_over_a_long_quiet_climb", [bar(100 + k, 101 + k, 99 + k, 100 + k) for k in range(40)]
             + [bar(139, 139, 120, 121)], {"trailing_stop": 0.1}, [ENTRY, (41, S, TR, 140 * 0.9, 1.0, 0.0)]),
    Scenario("trail_with_stop_stop_binds_first", [bar(100, 101, 94, 96)], {"stop_loss": 0.05, "trailing_stop": 0.1},
             [ENTRY, (1, S, SL, 95.0, 1.0, 0.0)]),
    Scenario("trail_with_stop_trail_binds_later", [bar(100, 120, 99, 119), bar(119, 119, 107, 108)],
             {"stop_loss": 0.05, "trailing_stop": 0.1}, [ENTRY, (2, S, TR, 108.0, 1.0, 0.0)]),
    Scenario("trail_and_tp_in_one_bar_fills_the_trail", [bar(100, 120, 99, 119), bar(119, 140, 100, 120)],
             {"trailing_stop": 0.1, "take_profit": 0.3}, [ENTRY, (2, S, TR, 108.0, 1.0, 0.0)]),
    Scenario("trail_fee", [bar(100, 120, 99, 119), bar(119, 119, 107, 108)], {"trailing_stop": 0.1},
             [(1, B, "entry", 100.0, 1.0, 0.8), (2, S, TR, 108.0, 1.0, 0.864)], broker=FEES),
    # -- levels from an expression, fixed at entry (read at the decision bar) ------------------
    Scenario("expr_trail_distance", [bar(100, 104, 96, 103), bar(103, 103, 98, 99)], {"trailing_stop": "0.05 * close"},
             [ENTRY, (2, S, TR, 99.0, 1.0, 0.0)]),
    Scenario("expr_stop_from_decision_bar_range", [bar(100, 130, 94.5, 100), bar(100, 100, 93.9, 94)],
             {"stop_loss": "high - low"}, [ENTRY, (2, S, SL, 94.0, 1.0, 0.0)], bar0=bar(100, 104, 98, 100)),
    Scenario("expr_zero_distance_is_off", [bar(100, 101, 50, 60)], {"stop_loss": "high - low"}, [ENTRY]),
    Scenario("expr_nan_distance_is_off", [bar(100, 101, 50, 60)], {"stop_loss": "sma(close, 5)"}, [ENTRY]),
    Scenario("expr_take_profit", [bar(100, 110.5, 99, 110)], {"take_profit": "0.1 * close"},
             [ENTRY, (1, S, TP, 110.0, 1.0, 0.0)]),
    Scenario("expr_trail_later_entry_reads_its_own_decision_bar",
             [QUIET, bar(100, 110, 100, 110), bar(110, 112, 100, 104), bar(104, 105, 99, 100)],
             {"trailing_stop": "0.05 * close"}, [(3, B, "entry", 110.0, 1.0, 0.0), (3, S, TR, 104.5, 1.0, 0.0)],
             buys={3: 1.0}),
    # -- time stop (bars held) ----------------------------------------------------------------
    Scenario("time_stop_sells_at_the_open", [QUIET, QUIET, QUIET, bar(101, 102, 100, 101), QUIET], {"time_stop": 3},
             [ENTRY, (4, S, TS, 101.0, 1.0, 0.0)]),
    Scenario("time_stop_one_bar", [QUIET, bar(102, 103, 101, 102)], {"time_stop": 1}, [ENTRY, (2, S, TS, 102.0, 1.0, 0.0)]),
    Scenario("time_stop_waits_over_a_missing_bar", [QUIET, QUIET, QUIET, NAN_BAR, bar(98, 99, 97, 98)], {"time_stop": 3},
             [ENTRY, (5, S, TS, 98.0, 1.0, 0.0)]),
    Scenario("time_stop_gap_names_the_stop", [QUIET, QUIET, QUIET, bar(90, 91, 89, 90)],
             {"time_stop": 3, "stop_loss": 0.05}, [ENTRY, (4, S, SL, 90.0, 1.0, 0.0)]),
    Scenario("time_stop_at_open_before_intrabar_stop", [QUIET, QUIET, QUIET, bar(100, 100, 90, 92)],
             {"time_stop": 3, "stop_loss": 0.05}, [ENTRY, (4, S, TS, 100.0, 1.0, 0.0)]),
    Scenario("time_stop_not_before_tp", [bar(100, 105, 99, 104), bar(104, 111, 103, 110)],
             {"time_stop": 2, "take_profit": 0.1}, [ENTRY, (2, S, TP, 110.0, 1.0, 0.0)]),
    Scenario("time_stop_fee", [QUIET, bar(102, 103, 101, 102)], {"time_stop": 1},
             [(1, B, "entry", 100.0, 1.0, 0.8), (2, S, TS, 102.0, 1.0, 0.816)], broker=FEES),
    Scenario("time_stop_slippage", [QUIET, bar(102, 103, 101, 102)], {"time_stop": 1},
             [(1, B, "entry", 100.1, 1.0, 0.0), (2, S, TS, 102 * 0.999, 1.0, 0.0)], broker=SPREAD, spread_bps=20.0),
    Scenario("time_stop_over_a_long_quiet_stretch", [QUIET] * 60 + [bar(97, 98, 96, 97)], {"time_stop": 60},
             [ENTRY, (61, S, TS, 97.0, 1.0, 0.0)]),
    # -- all four ---------------------------------------------------------------------------------
    Scenario("all_four_trail_wins", [bar(100, 110, 99, 109), bar(109, 125, 108, 124), bar(124, 126, 110, 112)],
             {"stop_loss": 0.05, "take_profit": 0.5, "trailing_stop": 0.1, "time_stop": 10},
             [ENTRY, (3, S, TR, 112.5, 1.0, 0.0)]),
    Scenario("all_four_tp_wins", [bar(100, 110, 99, 109), bar(109, 151, 108, 150)],
             {"stop_loss": 0.05, "take_profit": 0.5, "trailing_stop": 0.2, "time_stop": 10},
             [ENTRY, (2, S, TP, 150.0, 1.0, 0.0)]),
    Scenario("all_four_time_wins", [QUIET] * 4 + [bar(99, 100, 98, 99)],
             {"stop_loss": 0.05, "take_profit": 0.5, "trailing_stop": 0.2, "time_stop": 4},
             [ENTRY, (5, S, TS, 99.0, 1.0, 0.0)]),
]


def _check(sc: Scenario, fast: bool) -> None:
    got = run_scenario(sc, fast=fast).rows()
    assert len(got) == len(sc.expected), f"{sc.name}: {got}"
    for g, e in zip(got, sc.expected):
        assert g[:3] == e[:3], f"{sc.name}: {got}"
        assert g[3] == pytest.approx(e[3], rel=1e-12, abs=1e-12), f"{sc.name} price: {got}"
        assert g[4] == pytest.approx(e[4], rel=1e-12), f"{sc.name} qty: {got}"
        assert g[5] == pytest.approx(e[5], rel=1e-12, abs=1e-12), f"{sc.name} fee: {got}"


def test_the_table_has_at_least_fifty_scenarios_with_unique_names():
    names = [s.name for s in SCENARIOS]
    assert len(names) >= 50 and len(set(names)) == len(names)


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_bar_by_bar(sc):
    _check(sc, fast=False)


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_fast_path(sc):
    _check(sc, fast=True)


def test_a_capped_stop_leaves_an_exit_under_way():
    sc = next(s for s in SCENARIOS if s.name == "sl_participation_cap_partial")
    out = run_scenario(sc)
    assert out.pf.qty[0] == 5.0 and bool(out.pf.exiting[0])


def test_levels_are_cleared_when_the_position_closes():
    sc = next(s for s in SCENARIOS if s.name == "sl_hit_in_entry_bar")
    lv = run_scenario(sc).protector.levels
    assert all(v != v for v in (lv.stop[0], lv.high[0]))
