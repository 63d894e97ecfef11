"""The ``protect:`` block: loaded from a strategy file, bad values refused at load with file, rule
and position, and a sample backtest with protections identical on the fast path and bar by bar."""
from __future__ import annotations

import collections
import json

import pytest

from engine.backtest.engine import run_backtest
from engine.cycle.prepare import prepare
from engine.modes.setup import backtest_settings
from engine.paths import PROJECT_ROOT
from engine.sim.results import build_results
from tests.helpers.backtest import sample_market
from tests.helpers.rules import create_rules_dir, load_error, load_shipped
from tests.helpers.runs import compose_config, run_cli

STRATEGY = "strategies/sma_cross.yaml"


def with_protect(tmp_path, block: str):
    text = (create_rules_dir(tmp_path / "base") / STRATEGY).read_text()
    return create_rules_dir(tmp_path, {STRATEGY: text + "protect:\n" + block})


def test_a_protect_block_loads_fractions_expressions_and_params(tmp_path):
    root = with_protect(tmp_path, "  stop_loss: params.stop_loss\n  take_profit: 0.2\n"
                                  "  trailing_stop: 3 * atr(high, low, close, 24)\n  time_stop: 480\n")
    pr = load_shipped(root).strategy.protect
    assert pr.active and pr.stop_loss.fraction == 0.08 and pr.take_profit.fraction == 0.2
    assert pr.trailing_stop.fraction is None and pr.trailing_stop.distance is not None
    assert pr.time_stop == 480
    assert not load_shipped().strategy.protect.active  # the shipped strategies have none


# line: the line of the key inside the block (1 = the first line after "protect:")
@pytest.mark.parametrize("block, line, key, needle", [
    ("  stop_loss: 1.5\n", 1, "stop_loss", "stop_loss is 1.5: the stop sells below the entry price by 150%, "
                                            "a level at or below zero that can never trigger"),
    ("  stop_loss: 0.05\n  take_profit: -0.1\n", 2, "take_profit",
     "take-profit at 90% of the entry price is at or below the stop at 95%"),
    ("  take_profit: 0\n", 1, "take_profit", "at or below the entry price"),
    ("  trailing_stop: 0.01 * position.entry_price\n", 1, "trailing_stop",
     "reads position.entry_price, which is known only after the entry fills"),
    ("  trailing_stop: 2 * atr(high, low, close, 14) + portfolio.drawdown\n", 1, "trailing_stop",
     "reads portfolio.drawdown"),
    ("  trailing_stop: 1\n", 1, "trailing_stop", "a level at or below zero"),
    ("  time_stop: 0\n", 1, "time_stop", "time_stop is 0"),
    ("  time_stop: params.nope\n", 1, "time_stop", "unknown params.nope"),
    ("  stop_los: 0.05\n", 1, "protect.stop_los", "unknown key 'stop_los' (did you mean 'stop_loss'?)"),
])
def test_bad_protections_are_refused_at_load_with_file_rule_and_position(tmp_path, block, line, key, needle):
    err = load_error(with_protect(tmp_path, block))
    text = str(err)
    line += len((PROJECT_ROOT / "rules" / STRATEGY).read_text().splitlines()) + 1  # after "protect:"
    assert text.startswith(f"rules/{STRATEGY}:{line}, rule 'protect', key '{key}'") or \
        text.startswith(f"rules/{STRATEGY}:{line}, key '{key}'"), text
    assert needle in text


def test_a_bad_expression_points_at_its_column(tmp_path):
    err = load_error(with_protect(tmp_path, "  trailing_stop: 2 * atr(14)\n"))
    assert (err.line, err.col) == (1, 5) and "atr() is missing argument 'low'" in str(err)


def test_the_cli_refuses_a_bad_stop_with_exit_code_2_and_one_line(tmp_path):
    root = with_protect(tmp_path, "  stop_loss: 1.5\n")
    r = run_cli([f"rules_dir={root}", "data.sample.n_symbols=30", "data.sample.n_bars=300",
                 f"hydra.run.dir={tmp_path / 'out'}"])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr + r.stdout
    line = len((PROJECT_ROOT / "rules" / STRATEGY).read_text().splitlines()) + 2  # the line after "protect:"
    assert f"rules/{STRATEGY}:{line}, rule 'protect', key 'stop_loss': stop_loss is 1.5" in r.stderr + r.stdout


def test_a_protected_sample_run_is_the_same_on_the_fast_path(tmp_path):
    root = with_protect(tmp_path, "  stop_loss: params.stop_loss\n  take_profit: 0.15\n"
                                  "  trailing_stop: 3 * atr(high, low, close, 24)\n  time_stop: 200\n")
    cfg = compose_config([f"rules_dir={root}"])
    from engine.modes.setup import load_rules
    market = sample_market(30, 24 * 120)
    p, s = prepare(market, load_rules(cfg)), backtest_settings(cfg, market)
    fast, slow = run_backtest(p, s), run_backtest(p, s, fast=False)
    assert json.dumps(build_results(fast, {}), sort_keys=True) == json.dumps(build_results(slow, {}), sort_keys=True)
    rules = collections.Counter(f.rule for f in fast.fills if f.side == "sell")
    assert rules["protect:trailing_stop"] > 0 and fast.stats["skipped"] > 0
    # a protection fill is never at a price the bar did not trade
    m = market
    for f in fast.fills:
        if f.rule.startswith("protect:"):
            assert m.low[f.t, f.symbol_idx] * 0.99 <= f.price <= m.high[f.t, f.symbol_idx]
