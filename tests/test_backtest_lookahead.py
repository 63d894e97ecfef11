"""Lookahead analysis: clean rules pass; a rule that peeks at the next bar is caught."""
from __future__ import annotations

import numpy as np

from engine.cycle.prepare import SeriesRule, prepare
from engine.modes.lookahead import analyze, cut_points
from tests.helpers.backtest import prepared_run


def _peeking_prepare(market, rules):
    """The real prepare, with one entry rule replaced by 'the next bar closes higher'."""
    p = prepare(market, rules)
    nxt = np.vstack([p.close[1:], np.full((1, p.close.shape[1]), np.nan)])
    with np.errstate(invalid="ignore"):
        cheat = nxt > p.close
    s0 = p.entries.series[0]
    p.entries.series[0] = SeriesRule(s0.rule, cheat)
    p.entries.combined = cheat
    return p


def test_shipped_rules_have_no_lookahead():
    p, s = prepared_run(("strategy=momentum",), n_bars=24 * 60)
    changes, cuts = analyze(p.market, p.rules, s, points=5)
    assert len(cuts) == 5
    assert changes == []


def test_peeking_rule_is_reported_with_rule_bar_and_symbols():
    p, s = prepared_run(("strategy=sma_cross",), n_bars=24 * 60)
    changes, cuts = analyze(p.market, p.rules, s, points=4, prepare_fn=_peeking_prepare)
    entry = [c for c in changes if c.stage == "entry"]
    assert len(entry) == len(cuts)  # every cut: the last bar's verdict changed
    c = entry[0]
    assert c.rule == "golden_cross" and c.time == c.cut and c.symbols
    assert "entry:golden_cross changed at" in str(c)


def test_cut_points_spread_over_window():
    assert cut_points(0, 100, 3) == [2, 50, 98]
    assert cut_points(0, 3, 5) == []
