"""The rule language, second edition (issue 17): any expression where the grammar allows one, a
universe without filters, every rule file within reach of the command line, coarser timeframes."""
from __future__ import annotations

import numpy as np
import pytest

from engine.cycle.prepare import prepare
from tests.helpers.backtest import sample_market
from tests.helpers.rules import SHIPPED_RULES, edit_rule_file, load_shipped

S, U = "strategies/sma_cross.yaml", "universe.yaml"


# -- item 4: any expression where the grammar allows one; a universe without filters -----------

def test_size_expression_starting_with_params_equals_the_commuted_one(tmp_path):
    left = load_shipped(edit_rule_file(tmp_path / "a", S, "size: params.weight", "size: params.weight * 0.5"))
    right = load_shipped(edit_rule_file(tmp_path / "b", S, "size: params.weight", "size: 0.5 * params.weight"))
    assert left.strategy.size.value == right.strategy.size.value == 0.05


def test_a_negative_size_written_with_a_param_first_is_still_refused(tmp_path):
    from tests.helpers.rules import load_error
    err = load_error(edit_rule_file(tmp_path, S, "size: params.weight", "size: params.weight * -1"))
    assert err.where.key == "size" and "size is -0.1" in str(err), str(err)


def test_rank_top_accepts_an_expression_of_params(tmp_path):
    rs = load_shipped(edit_rule_file(tmp_path, U, "top: params.top}", "top: params.top * 2}"))
    assert rs.universe.top == 40


def test_a_universe_without_filters_holds_every_product(tmp_path):
    text = (SHIPPED_RULES / U).read_text()
    head, _, rest = text.partition("filters:\n")
    no_filters = head + "rank:" + rest.split("\nrank:", 1)[1]
    assert "filters" not in no_filters
    rules_dir = edit_rule_file(tmp_path, U, text, no_filters)
    rs = load_shipped(rules_dir, params={"universe": {"top": 1000}})
    assert rs.universe.filters == []
    market = sample_market(30, 24 * 20)
    p = prepare(market, rs)
    # every product with a bar is eligible (stablecoins and thin markets included)
    assert np.array_equal(p.eligible, ~np.isnan(p.close))
    assert p.universe[-1].sum() == (~np.isnan(p.close[-1])).sum() == market.n_symbols


# -- item 3: every rule file within reach of the command line ----------------------------------

def _checked(overrides: list[str]) -> dict:
    """The composed config as every mode sees it after the checks (no problem allowed)."""
    from engine.config.entry import compose, run_check
    report = run_check(compose(overrides), {}, live_requirements=False)
    assert report.ok, report.format()
    return report.config


def test_the_regime_file_has_a_config_group_and_its_params_reach_the_rules():
    from engine.modes.setup import load_rules
    rs = load_rules(_checked(["regime.params.fast=24"]))
    assert rs.regime.params["fast"] == 24
    bull = next(r for r in rs.regime.rules if r.id == "bull")
    assert "sma(close, 24)" in bull.when.key


def test_a_misspelt_regime_param_is_a_config_problem():
    from engine.config.entry import compose, run_check
    report = run_check(compose(["+regime.params.fastt=24"]), {}, live_requirements=False)
    assert [p.path for p in report.problems] == ["regime.params.fastt"], report.format()
    assert "fast" in report.problems[0].suggestions


def test_an_entry_rules_regimes_are_a_param():
    from engine.modes.setup import load_rules
    shipped = load_rules(_checked([]))
    assert shipped.strategy.entries[0].regimes == ("bull", "chop")
    widened = load_rules(_checked(["strategy.params.entry_regimes=[bull,chop,bear]"]))
    assert widened.strategy.entries[0].regimes == ("bull", "chop", "bear")
    # an empty list lifts the scope: golden_cross then enters in every regime
    assert load_rules(_checked(["strategy.params.entry_regimes=[]"])).strategy.entries[0].regimes is None


def test_entry_regimes_every_regime_enters_more_often():
    from engine.modes.setup import load_rules
    market = sample_market(30, 24 * 60)
    scoped = prepare(market, load_rules(_checked([])))
    free = prepare(market, load_rules(_checked(["strategy.params.entry_regimes=[]"])))
    # the same crossovers, no longer masked outside bull and chop
    assert (free.entries.combined >= scoped.entries.combined).all()
    assert free.entries.combined.sum() > scoped.entries.combined.sum()


def test_an_unknown_regime_given_through_params_names_the_rule(tmp_path):
    from tests.helpers.rules import load_error
    err = load_error(SHIPPED_RULES, params={"strategy": {"entry_regimes": ["bull", "bera"]}})
    assert err.where.rule == "golden_cross" and err.where.key == "regimes", str(err)
    assert "regime 'bera' is not defined by the regime file (did you mean 'bear'?)" in str(err)


def test_a_per_symbol_param_is_settable_with_a_dashed_symbol():
    from engine.modes.setup import load_rules
    cfg = _checked(["+risk.params.asset_caps.BTC-USDC=0.05", "+risk.params.asset_caps.ETH-USDC=0.02"])
    assert cfg["risk"]["params"]["asset_caps"] == {"BTC/USDC": 0.05, "ETH/USDC": 0.02}
    assert load_rules(cfg).risk.caps[0].per_symbol == {"BTC/USDC": 0.05, "ETH/USDC": 0.02}


def test_a_per_symbol_param_is_settable_as_a_whole_mapping():
    cfg = _checked(["+risk.params.asset_caps={BTC/USDC:0.05}"])
    assert cfg["risk"]["params"]["asset_caps"] == {"BTC/USDC": 0.05}


def test_a_dashed_symbol_key_is_still_checked_as_a_symbol():
    from engine.config.entry import compose, run_check
    report = run_check(compose(["+risk.params.asset_caps.btc-usdc=0.05"]), {}, live_requirements=False)
    assert not report.ok and any("asset_caps" in p.path for p in report.problems), report.format()


@pytest.mark.slow
def test_the_regime_params_sweep_with_m(tmp_path):
    from tests.helpers.sweep import SMALL_MARKET, job_outcomes, read_json, run_sweep
    proc = run_sweep(["regime.params.fast=24,48", *SMALL_MARKET], tmp_path, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = job_outcomes(tmp_path)
    assert list(outcomes.values()) == ["ok", "ok"]
    fast = sorted(read_json(tmp_path / job / "results.json")["run"]["config"]["regime"]["params"]["fast"]
                  for job in outcomes)
    assert fast == [24, 48]
