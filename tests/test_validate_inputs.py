"""mode=validate reads what a run reads: every rule-file error at once (not the first a run
stops at), the product table, the backtest's data source and window, and for a live-clock
target the API key variables its exchange names."""
from __future__ import annotations

import io

from engine.config.entry import validate_entry
from engine.rules.errors import RuleErrors
from engine.rules.loader import load_ruleset
from tests.helpers.configs import composed
from tests.helpers.rules import SHIPPED_RULES, create_rules_dir, shipped_files


def _broken_rules(tmp_path):
    """Four errors in three files: two rules of the universe, the strategy's size, a risk halt."""
    uni = (SHIPPED_RULES / "universe.yaml").read_text()
    uni = uni.replace('when: theme != "stablecoin"', 'when: theme !=', 1)
    uni = uni.replace("when: bars_listed >= params.min_history_bars", "when: bars_listed >= params.min_histroy_bars", 1)
    strat = (SHIPPED_RULES / "strategies/sma_cross.yaml").read_text()
    assert "size: params.weight" in strat
    strat = strat.replace("size: params.weight", "size: -0.5", 1)
    risk = (SHIPPED_RULES / "risk.yaml").read_text().replace("when: portfolio.hour_return <=",
                                                             "when: portfolio.hour_retrun <=", 1)
    return create_rules_dir(tmp_path, {"universe.yaml": uni, "strategies/sma_cross.yaml": strat, "risk.yaml": risk})


def _validate(*overrides, env=None):
    out = io.StringIO()
    code = validate_entry(composed("mode=validate", *overrides), env or {}, out=out)
    return code, out.getvalue()


def test_the_loader_gathers_every_rule_file_error_in_file_order(tmp_path):
    rules = _broken_rules(tmp_path)
    try:
        load_ruleset(rules, shipped_files(), gather=True)
    except RuleErrors as e:
        got = [(e2.where.file, e2.where.rule, e2.where.key) for e2 in e.errors]
    else:
        raise AssertionError("the broken rules loaded")
    assert got == [("rules/universe.yaml", "no_stablecoins", "when"), ("rules/universe.yaml", "seasoned", "when"),
                   ("rules/strategies/sma_cross.yaml", "", "size"), ("rules/risk.yaml", "hourly_loss", "when")]


def test_validate_lists_every_rule_file_error_at_once(tmp_path):
    code, text = _validate(f"rules_dir={_broken_rules(tmp_path)}")
    assert code == 2
    errors = [line for line in text.splitlines() if line.startswith("error: [rule_file]")]
    assert len(errors) == 4, text
    assert "rules/universe.yaml:19, rule 'no_stablecoins', key 'when', line 1 col 8: syntax error" in errors[0]
    assert "unknown name 'params.min_histroy_bars' (did you mean 'params.min_history_bars'" in errors[1]
    assert "size is -0.5" in errors[2] and "a target weight >= 0" in errors[2]
    assert "rules/risk.yaml:21, rule 'hourly_loss', key 'when'" in errors[3] and "portfolio.hour_retrun" in errors[3]
    assert text.splitlines()[-1] == "config is NOT valid for mode=validate: 4 problem(s), 0 warning(s)"


def test_validate_places_the_backtest_window_in_the_data_once():
    # the sample's span is known from its spec (data_span); loading the data adds no second report
    code, text = _validate("backtest.start=2031-01-01")
    assert code == 2
    errors = [line for line in text.splitlines() if line.startswith("error: [")]
    assert len(errors) == 1, text
    assert "backtest.start: backtest window 2031-01-01 .. None holds 0 bars of data that spans 8784 bars" in errors[0]


def test_validate_reads_the_data_source_once(tmp_path):
    code, text = _validate("data=csv", f"data.path={tmp_path}")
    assert code == 2
    errors = [line for line in text.splitlines() if line.startswith("error: [")]
    assert len(errors) == 1 and f"data.path: {tmp_path}: no .csv files for timeframe '1h'" in errors[0], text


def test_a_sound_config_validates_with_its_inputs():
    assert _validate() == (0, "config OK for mode=validate: 0 problems, 0 warning(s)\n")


def test_validate_for_paper_on_a_real_exchange_needs_its_api_key_variables():
    code, text = _validate("mode.target=paper", "exchange=coinbase")
    assert code == 2
    assert "[sanity.live_api_key_env_unset] exchange.api_key_env: environment variable COINBASE_API_KEY" in text
    assert "[sanity.live_api_secret_env_unset] exchange.api_secret_env: environment variable COINBASE_API_SECRET" in text
    env = {"COINBASE_API_KEY": "organizations/x/apiKeys/y", "COINBASE_API_SECRET": "not-a-real-secret-value"}
    code, text = _validate("mode.target=paper", "exchange=coinbase", env=env)
    assert "api_key_env_unset" not in text and "api_secret_env_unset" not in text


def test_every_schema_error_of_a_file_is_gathered_while_a_run_stops_at_the_first(tmp_path):
    text = (SHIPPED_RULES / "execution.yaml").read_text()
    text = text.replace("order: {type: market}", "order: {type: stop}", 1)
    text = text.replace("    why: spread wider than", "    whyy: spread wider than", 1)
    rules = create_rules_dir(tmp_path, {"execution.yaml": text})
    try:
        load_ruleset(rules, shipped_files())
    except RuleErrors:
        raise AssertionError("a run's load raises one RuleError, not the gathered list")
    except Exception as e:  # noqa: BLE001 - the run's single error
        assert "(and 1 more problem(s) in this file)" in str(e), str(e)
    try:
        load_ruleset(rules, shipped_files(), gather=True)
    except RuleErrors as e:
        got = [(x.where.file, x.where.key, x.message) for x in e.errors]
    else:
        raise AssertionError("the broken rules loaded")
    assert got == [("rules/execution.yaml", "order.type", "'type' is 'stop'"),
                   ("rules/execution.yaml", "guards[1].whyy", "unknown key 'whyy' (did you mean 'why'?)")], got
