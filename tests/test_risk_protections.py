"""Scoped protections of the risk file: cooldown after a stop-out, N stop-outs in W bars, low
profit (locks of a symbol, a theme or all), and the equity stop (reducing, then halted): loaded
and refused at load, applied by the cycle, visible in the trace, rule_stats and mode=explain."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from engine.backtest.engine import run_backtest
from engine.cycle.locks import after_fills
from engine.cycle.plan import HaltState, LockStep
from engine.cycle.prepare import prepare
from engine.explain import explain
from engine.market.data import iso_utc
from engine.modes.setup import backtest_settings, load_rules
from engine.rules.errors import RuleError
from engine.sim.results import build_results
from tests.helpers.backtest import sample_market
from tests.helpers.rules import create_rules_dir, load_error, load_shipped
from tests.helpers.runs import compose_config

PROTECT = "protect:\n  stop_loss: 0.03\n  trailing_stop: 0.05\n"
LOCKS = """protections:
  - {id: cooldown_after_stop, type: cooldown, scope: symbol, lock_bars: 48, why: "stopped out, wait two days"}
  - {id: theme_stop_outs, type: stop_outs, scope: theme, count: 2, window_bars: 72, lock_bars: 24}
  - {id: low_profit, type: low_profit, scope: symbol, window_bars: 336, min_trades: 2, min_return: -0.04, lock_bars: 96}
  - {id: equity_stop, type: equity_stop, reduce_at: 0.08, halt_at: 0.15, lock_bars: 48}
"""


def rules_with(tmp_path, risk_extra: str = LOCKS, strategy_extra: str = PROTECT):
    base = create_rules_dir(tmp_path / "base")
    return create_rules_dir(tmp_path, {
        "risk.yaml": (base / "risk.yaml").read_text() + risk_extra,
        "strategies/sma_cross.yaml": (base / "strategies/sma_cross.yaml").read_text() + strategy_extra,
    })


# -- loading ------------------------------------------------------------------------------------


def test_protections_load_as_locks_and_the_equity_stop_as_two_halts(tmp_path):
    risk = load_shipped(rules_with(tmp_path)).risk
    assert [(lk.id, lk.type, lk.scope, lk.lock_bars) for lk in risk.locks] == [
        ("cooldown_after_stop", "cooldown", "symbol", 48), ("theme_stop_outs", "stop_outs", "theme", 24),
        ("low_profit", "low_profit", "symbol", 96)]
    assert risk.locks[1].count == 2 and risk.locks[1].window_bars == 72 and risk.locks[2].min_return == -0.04
    eq = {h.rule.id: (h.action, h.cooldown_bars, h.rule.source) for h in risk.halts if h.rule.id.startswith("equity")}
    assert eq == {"equity_stop.reducing": ("block_entries", 1, "portfolio.drawdown <= -0.08"),
                  "equity_stop.halted": ("flatten", 48, "portfolio.drawdown <= -0.15")}


@pytest.mark.parametrize("block, needle", [
    ("  - {id: e, type: equity_stop, reduce_at: 0.2, halt_at: 0.1, lock_bars: 4}\n",
     "key 'halt_at': halt_at 0.1 is not beyond reduce_at 0.2"),
    ("  - {id: e, type: equity_stop, reduce_at: 1.5, halt_at: 2, lock_bars: 4}\n", "key 'reduce_at': reduce_at is 1.5"),
    ("  - {id: e, type: equity_stop, scope: theme, reduce_at: 0.1, halt_at: 0.2, lock_bars: 4}\n",
     "an equity stop measures the whole account's equity"),
    ("  - {id: c, type: stop_outs, count: 2, lock_bars: 4}\n", "protection type stop_outs needs 'window_bars'"),
    ("  - {id: c, type: cooldown, lock_bars: 0}\n", "lock_bars is 0"),
    ("  - {id: c, type: cooldown, lock_bars: 4, halt_at: 0.2}\n", "'halt_at' belongs to an equity_stop"),
    ("  - {id: c, type: cooldown, scope: sector, lock_bars: 4}\n", "'scope' is 'sector'"),
])
def test_bad_protections_are_refused_at_load(tmp_path, block, needle):
    text = str(load_error(rules_with(tmp_path, "protections:\n" + block)))
    assert text.startswith("rules/risk.yaml:") and needle in text, text


def test_a_scope_naming_an_unknown_theme_is_refused_with_file_rule_and_line(tmp_path):
    root = rules_with(tmp_path, "protections:\n  - id: memes\n    type: cooldown\n    scope: theme\n"
                                "    themes: [meme, memes]\n    lock_bars: 4\n")
    rules = load_shipped(root)
    with pytest.raises(RuleError) as exc:
        prepare(sample_market(30, 400), rules)
    text = str(exc.value)
    assert text.startswith("rules/risk.yaml:43, rule 'memes', key 'themes': theme 'memes' is not the theme of any "
                           "traded product (did you mean 'meme'?)"), text


# -- the locks, as values -------------------------------------------------------------------------


def _step(type_, scope="symbol", lock=10, count=1, window=1, min_trades=1, min_return=0.0, counts=None, n=4):
    return LockStep(type_, type_, scope, lock, count, window, min_trades, min_return,
                    np.ones(n, dtype=bool) if counts is None else np.array(counts))


def _fill(t, i, side, price, rule="x"):
    return SimpleNamespace(t=t, symbol_idx=i, side=side, price=price, rule=rule)


THEMES = np.array([0, 0, 1, 1])


def _trade(halts, steps, t_in, t_out, i, p_in, p_out, rule, n=4):
    qty = np.zeros(n)
    qty[i] = 1.0
    halts = after_fills(steps, THEMES, halts, [_fill(t_in, i, "buy", p_in)], qty, t_in)
    qty[i] = 0.0
    return after_fills(steps, THEMES, halts, [_fill(t_out, i, "sell", p_out, rule)], qty, t_out)


def test_a_cooldown_locks_the_symbol_after_a_stop_out_only():
    steps = (_step("cooldown", lock=10),)
    h = _trade(HaltState(), steps, 1, 5, 2, 100.0, 95.0, "death_cross")
    assert h.locks.until.tolist() == [0, 0, 0, 0]  # an exit rule is not a stop-out
    h = _trade(h, steps, 6, 8, 2, 100.0, 95.0, "protect:stop_loss")
    assert h.locks.until.tolist() == [0, 0, 18, 0] and h.locks.by[2] == "cooldown"


def test_n_stop_outs_within_the_window_lock_the_theme():
    steps = (_step("stop_outs", scope="theme", lock=24, count=2, window=10),)
    h = _trade(HaltState(), steps, 1, 2, 0, 100.0, 95.0, "protect:trailing_stop")
    assert h.locks.until.tolist() == [0, 0, 0, 0]
    h = _trade(h, steps, 20, 30, 1, 100.0, 95.0, "protect:stop_loss")  # the first is out of the window
    assert h.locks.until.tolist() == [0, 0, 0, 0]
    h = _trade(h, steps, 31, 35, 0, 100.0, 95.0, "protect:stop_loss")
    assert h.locks.until.tolist() == [59, 59, 0, 0]  # symbols 0 and 1 share theme 0


def test_low_profit_needs_enough_trades_below_the_return():
    steps = (_step("low_profit", lock=5, window=100, min_trades=2, min_return=-0.04),)
    h = _trade(HaltState(), steps, 1, 2, 3, 100.0, 97.0, "death_cross")  # -3%: one trade is not enough
    assert h.locks.until[3] == 0
    h = _trade(h, steps, 3, 4, 3, 100.0, 99.5, "death_cross")  # -3.5% in all: not below -4%
    assert h.locks.until[3] == 0
    h = _trade(h, steps, 5, 6, 3, 100.0, 99.0, "death_cross")  # -4.5%
    assert h.locks.until.tolist() == [0, 0, 0, 11]


def test_only_the_named_themes_count():
    steps = (_step("cooldown", scope="portfolio", lock=5, counts=[False, False, True, True]),)
    h = _trade(HaltState(), steps, 1, 2, 0, 100.0, 90.0, "protect:stop_loss")
    assert h.locks.until.tolist() == [0, 0, 0, 0]
    h = _trade(h, steps, 3, 4, 2, 100.0, 90.0, "protect:stop_loss")
    assert h.locks.until.tolist() == [9, 9, 9, 9]


# -- a run ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("locks")
    root = rules_with(tmp)
    cfg = compose_config([f"rules_dir={root}"])
    market = sample_market(30, 24 * 120)
    p = prepare(market, load_rules(cfg))
    s = backtest_settings(cfg, market)
    return p, s, run_backtest(p, s), run_backtest(p, s, fast=False), tmp / "rules"


def test_a_locked_run_is_the_same_on_the_fast_path(locked_run):
    _, _, fast, slow, _ = locked_run
    assert json.dumps(build_results(fast, {}), sort_keys=True) == json.dumps(build_results(slow, {}), sort_keys=True)


def test_no_entry_within_the_cooldown_after_a_stop_out(locked_run):
    p, _, res, _, _ = locked_run
    stats = build_results(res, {})["rule_stats"]
    assert stats["protection:cooldown_after_stop"]["blocked"] > 0
    assert "halt:equity_stop.reducing" in stats and "halt:equity_stop.halted" in stats
    stopped = {}
    for f in res.fills:
        if f.side == "sell" and f.rule in ("protect:stop_loss", "protect:trailing_stop"):
            stopped[f.symbol_idx] = f.t
        elif f.side == "buy" and f.symbol_idx in stopped:
            # a decision at the stop bar or the 47 after it may not buy; its fill is the next bar
            assert f.t - 1 >= stopped[f.symbol_idx] + 48, (f, stopped[f.symbol_idx])


def test_explain_says_which_protection_locked_a_symbol(locked_run, tmp_path):
    p, s, res, _, root = locked_run
    cfg = {"rules_dir": str(root), "strategy": {"file": "strategies/sma_cross.yaml", "params": {}},
           "universe": {"file": "universe.yaml"}, "risk": {"file": "risk.yaml"}, "execution": {"file": "execution.yaml"}}
    res.trace.save(tmp_path / "trace.npz")
    (tmp_path / "results.json").write_text(json.dumps(build_results(res, {"config": cfg}), default=float))
    t, idx = res.trace.events["lock:cooldown_after_stop"][0]
    text = explain(tmp_path, p.market.symbols[int(idx[0])], iso_utc(int(p.market.times[t])))
    assert "cooldown_after_stop" in text and "LOCKED" in text
    assert "not bought: locked by protection cooldown_after_stop" in text


def test_the_report_lists_the_protections_and_the_equity_stop_states(locked_run):
    from engine.report.outputs import render_backtest_report

    _, _, res, _, _ = locked_run
    html = render_backtest_report(build_results(res, {}))
    for name in ("protection:cooldown_after_stop", "protection:theme_stop_outs", "halt:equity_stop.reducing",
                 "halt:equity_stop.halted", "protect:stop_loss"):
        assert name in html, name


def test_explain_names_a_protection_that_sold_inside_the_bar(locked_run, tmp_path):
    p, s, res, _, root = locked_run
    res.trace.save(tmp_path / "trace.npz")
    results = build_results(res, {})
    (tmp_path / "results.json").write_text(json.dumps(results, default=float))
    f = next(f for f in results["trades"] if f["rule"] == "protect:stop_loss")
    text = explain(tmp_path, f["symbol"], f["time"])
    assert f"protect:stop_loss sold {f['qty']:g} at {f['price']:g} inside this bar" in text
    assert "position: flat" in text
