"""The rule language, second edition (issue 17): any expression where the grammar allows one, a
universe without filters, every rule file within reach of the command line, coarser timeframes."""
from __future__ import annotations

import numpy as np

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
