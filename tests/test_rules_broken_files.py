"""A corpus of broken rule files: each load fails with the file, rule id, YAML line and what was expected."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.paths import project_path
from tests.helpers.rules import SHIPPED_RULES, create_rules_dir, edit_rule_file, load_error, load_shipped


def line_of(rules_dir: Path, rel: str, fragment: str) -> int:
    """Line of the first line holding ``fragment`` ('last:' + fragment: of the last one)."""
    last = fragment.startswith("last:")
    fragment = fragment.removeprefix("last:")
    hits = [i for i, line in enumerate((rules_dir / rel).read_text().splitlines(), 1) if fragment in line]
    assert hits, f"{fragment!r} not in {rel}"
    return hits[-1] if last else hits[0]


U, S, R, X, G = "universe.yaml", "strategies/sma_cross.yaml", "risk.yaml", "execution.yaml", "regime.yaml"

_DEATH = "when: crossunder(sma(close, params.fast), sma(close, params.slow))"

# (id, file, old text, new text, rule id, line fragment (None: no line), message fragment, expected fragment)
EDITS = [
    ("unknown_key_did_you_mean", U, "    why: 24h volume", "    wy: 24h volume", "liquid", "wy: 24h",
     "unknown key 'wy' (did you mean 'why'?)", "one of id, when, why, regimes"),
    ("unknown_top_level_key", U, "cache:", "cahce:", "", "cahce:", "unknown key 'cahce' (did you mean 'cache'?)", "one of kind"),
    ("duplicate_rule_id", U, "  - id: tight_spread", "  - id: liquid", "liquid", "last:- id: liquid", "rule id 'liquid' is used twice", "unique ids"),
    ("duplicate_id_entry_exit", S, "  - id: death_cross", "  - id: golden_cross", "golden_cross", "last:- id: golden_cross",
     "rule id 'golden_cross' is used twice", "unique ids"),
    ("duplicate_yaml_key", U, "    when: theme != \"stablecoin\"", "    when: theme != \"stablecoin\"\n    when: theme != \"meme\"",
     "", "when: theme != \"meme\"", "key 'when' appears twice in the same mapping", "each key once"),
    ("regime_not_defined_in_scope", U, "regimes: [bear, high_vol]", "regimes: [bera, high_vol]", "no_memes_in_bear",
     "regimes: [bera", "regime 'bera' is not defined by the regime file (did you mean 'bear'?)", "one of high_vol, bull, bear, chop"),
    ("regime_not_defined_in_expression", S, "when: position.return_pct <= -params.stop_loss",
     "when: position.return_pct <= -params.stop_loss and regime != \"bul\"", "stop_loss", "regime != \"bul\"",
     "regime 'bul' is not defined by the regime file", "one of high_vol"),
    ("why_template_unknown_param", U, "{params.min_volume_usd} USD", "{params.min_volume} USD", "liquid", "{params.min_volume}",
     "message template names {params.min_volume} (did you mean '{params.min_volume_usd}'?)", "{value} or {params.<name>}"),
    ("ttl_bad_unit", U, "ttl: 24h", "ttl: 24x", "", "ttl: 24x", "cache.ttl is '24x'", "a duration such as 30m"),
    ("cap_limit_not_fraction", R, "max_total_exposure: 0.8", "max_total_exposure: 1.8", "total_exposure",
     "id: total_exposure", "limit is 1.8", "a fraction between 0 and 1"),
    ("halt_action_not_allowed", R, "action: flatten", "action: panic", "max_drawdown", "action: panic",
     "'action' is 'panic'", "one of block_entries, flatten"),
    ("halt_cooldown_negative", R, "action: block_entries\n    cooldown_bars: params.cooldown_bars",
     "action: block_entries\n    cooldown_bars: -1", "hourly_loss", "cooldown_bars: -1",
     "cooldown_bars is -1", "a positive whole number"),
    ("rule_id_not_a_name", U, "  - id: no_stablecoins", "  - id: no-stablecoins", "no-stablecoins", "id: no-stablecoins",
     "'id' is 'no-stablecoins'", "letters, digits and '_'"),
    ("entry_list_empty", S, "entry:\n  - id: golden_cross\n    regimes: params.entry_regimes\n    when: crossover(sma(close, params.fast), sma(close, params.slow))\n    why: sma({params.fast}) crossed above sma({params.slow})\n",
     "entry: []\n", "", "entry: []", "'entry' is empty", "at least 1 item"),
    ("missing_when", X, "    when: spread_bps <= params.max_spread_bps\n", "", "max_spread", "id: max_spread",
     "required key 'when' is missing", None),
    ("regimes_empty_list", U, "regimes: [bear, high_vol]", "regimes: []", "no_memes_in_bear", "regimes: []",
     "'regimes' is empty", "at least 1 item"),
    ("regimes_not_a_list", S, "regimes: params.entry_regimes", "regimes: bull", "golden_cross", "regimes: bull",
     "'regimes' is 'bull'", "a list"),
    ("boolean_where_number_needed", S, "size: params.weight", "size: position.held", "", "size: position.held",
     "the expression is a boolean (true/false)", "a number"),
    ("rank_by_boolean", U, "rank: {by: volume_usd_24h", "rank: {by: available", "", "rank: {by: available",
     "the expression is a boolean (true/false)", "a number"),
    ("order_name_in_strategy", S, "when: position.return_pct <= -params.stop_loss", "when: order.notional > 10",
     "stop_loss", "when: order.notional", "unknown name 'order.notional'", None),
    ("market_name_in_halt", R, "when: portfolio.hour_return <= -params.hourly_loss_limit", "when: close < 1",
     "hourly_loss", "when: close < 1", "unknown name 'close'", "portfolio.drawdown"),
    ("theme_caps_without_default", R, "theme_caps: {default: 0.4, meme: 0.1}", "theme_caps: {meme: 0.1}", "per_theme",
     "id: per_theme", "theme caps are {'meme': 0.1}", "with a 'default'"),
    ("limit_unknown_param", R, "limit: params.max_positions}", "limit: params.max_position}", "max_positions",
     "id: max_positions", "limit refers to unknown params.max_position (did you mean 'params.max_positions'?)", None),
    ("window_zero_in_regime", G, "  fast: 72", "  fast: 0", "bull", "sma(close, params.fast)",
     "window 'n' of sma() is 0", "a positive whole number of bars"),
    ("unknown_function", S, "crossover(sma(close, params.fast)", "crossover(smaa(close, params.fast)", "golden_cross",
     "crossover(smaa", "unknown function 'smaa' (did you mean sma", "one of"),
    ("wrong_argument_count", S, "crossunder(sma(close, params.fast), sma(close, params.slow))",
     "crossunder(sma(close, params.fast))", "death_cross", "crossunder(sma(close, params.fast))",
     "crossunder() is missing argument 'b'", "crossunder(a, b)"),
    ("cap_type_unknown", R, "type: position_count", "type: positions", "max_positions", "type: positions",
     "'type' is 'positions'", "one of asset_weight"),
    ("guard_bitwise_and", X, "when: spread_bps <= params.max_spread_bps", "when: spread_bps <= 10 & quote_age_s < 5",
     "max_spread", "spread_bps <= 10 &", "'&' is not the rule language's 'and'", "'and'"),
    ("kind_wrong", U, "kind: universe", "kind: strategy", "", "kind: strategy", "kind is 'strategy'", "kind: universe"),
    ("param_dict_in_expression", R, "when: pct_change(close, 24) > -0.15", "when: pct_change(close, 24) > params.theme_caps",
     "no_falling_knife", "last:params.theme_caps", "'params.theme_caps' is a mapping", "a number, boolean or string parameter"),
    ("invalid_yaml_indentation", U, "    why: spread wider", "   why: spread wider", "", None, "invalid YAML", None),
    # second edition (issue 17): timeframes, regimes and fields from params, field expressions
    ("on_unknown_timeframe", S, _DEATH, 'when: on("1x", close > sma(close, 5))', "death_cross", 'on("1x"',
     "unknown timeframe '1x'", "one of 1m, 5m"),
    ("on_nested", S, _DEATH, 'when: on("1d", on("4h", close) > 1)', "death_cross", 'on("1d", on(',
     "on() inside expressions that already read 1d bars", "one timeframe per expression"),
    ("on_reads_the_portfolio", S, _DEATH, 'when: on("1d", position.return_pct < 0)', "death_cross", 'on("1d", pos',
     "on() reads 1d bars, but the expression changes with the portfolio", "market columns and features"),
    ("on_reads_the_regime_label", S, _DEATH, 'when: on("1d", regime == "bull")', "death_cross", 'on("1d", regime',
     "'regime' is a label of the base bars and cannot be read on 1d bars", 'inside on("1d", ...)'),
    ("on_one_argument", S, _DEATH, 'when: on("1d")', "death_cross", 'on("1d")',
     "on() takes 2 arguments, 1 given", 'on("1d", expr)'),
    ("on_timeframe_not_a_literal", S, _DEATH, "when: on(params.fast, close > 1)", "death_cross", "on(params.fast",
     "the timeframe of on() must be a quoted literal", 'on("1d", expr)'),
    ("regime_file_timeframe_unknown", G, "kind: regime\n", "kind: regime\ntimeframe: 1x\n", "", "timeframe: 1x",
     "'timeframe' is '1x'", "one of 1m"),
    ("regimes_param_not_a_list", S, "regimes: params.entry_regimes", "regimes: params.weight", "golden_cross",
     "regimes: params.weight", "'regimes' is 0.1 (params.weight)", "a list of regimes"),
    ("regimes_param_unknown", S, "regimes: params.entry_regimes", "regimes: params.entry_regime", "golden_cross",
     "regimes: params.entry_regime", "regimes refers to unknown params.entry_regime (did you mean 'params.entry_regimes'?)",
     None),
    ("rank_top_expression_not_whole", U, "top: params.top}", "top: params.top / 3}", "", "top: params.top / 3",
     "rank.top is 6.66", "a positive whole number"),
    ("rank_top_expression_unknown_param", U, "top: params.top}", "top: params.tpo * 2}", "", "top: params.tpo",
     "unknown name 'params.tpo' (did you mean 'params.top'", None),
    ("size_expression_unknown_param", S, "size: params.weight", "size: params.weigth * 0.5", "", "size: params.weigth",
     "unknown name 'params.weigth' (did you mean 'params.weight'", "one of: params.fast"),
]
# the line and column inside the expression of the cases above that point into one
COLUMNS = {"on_unknown_timeframe": (1, 4), "on_nested": (1, 10), "on_reads_the_portfolio": (1, 1),
           "on_reads_the_regime_label": (1, 10), "on_one_argument": (1, 1), "on_timeframe_not_a_literal": (1, 4),
           "rank_top_expression_unknown_param": (1, 1), "size_expression_unknown_param": (1, 1)}


@pytest.mark.parametrize("case", EDITS, ids=[e[0] for e in EDITS])
def test_broken_file_gives_its_precise_error(tmp_path, case):
    _, rel, old, new, rule, line_fragment, message, expected = case
    rules_dir = edit_rule_file(tmp_path, rel, old, new)
    err = load_error(rules_dir)
    text = str(err)
    assert err.where.file == f"rules/{rel}", text
    assert err.where.rule == rule, text
    if line_fragment is not None:
        want = line_of(rules_dir, rel, line_fragment.rstrip("\n"))
        assert err.where.yaml_line == want, text
        assert f"rules/{rel}:{want}" in text
    assert message in text, text
    if expected is not None:
        assert err.expected is not None and expected in err.expected, text
    if case[0] in COLUMNS:
        assert (err.line, err.col) == COLUMNS[case[0]], text
    assert "Traceback" not in text


def test_corpus_of_broken_files_is_large_enough():
    assert len(EDITS) >= 30


def test_empty_file(tmp_path):
    err = load_error(create_rules_dir(tmp_path, {"risk.yaml": "# nothing yet\n"}))
    assert err.where.file == "rules/risk.yaml" and err.message == "the rule file is empty"


def test_file_holding_a_list(tmp_path):
    err = load_error(create_rules_dir(tmp_path, {"execution.yaml": "- kind: execution\n"}))
    assert "the file holds a list" in err.message and "kind:" in err.expected


def test_missing_strategy_file(tmp_path):
    err = load_error(create_rules_dir(tmp_path), strategy="strategies/nope.yaml")
    assert err.where.file == "rules/strategies/nope.yaml" and err.message == "rule file not found"


@pytest.mark.parametrize("params,key,message,expected", [
    ({"universe": {"tpo": 5}}, "", "config sets params.tpo, which the rule file does not define (did you mean 'top'?)", "one of"),
    ({"universe": {"top": "ten"}}, "params.top", "config sets params.top to 'ten', a string", "a number like the rule file's default 20"),
    ({"universe": {"top": 0}}, "rank.top", "rank.top is 0", "a positive whole number"),
    ({"strategy": {"fast": -3}}, "when", "window 'n' of sma() is -3", "a positive whole number of bars"),
    ({"risk": {"theme_caps": 0.3}}, "params.theme_caps", "config sets params.theme_caps to 0.3, a number", "a mapping"),
    # a negative target weight silently traded nothing
    ({"strategy": {"weight": -0.1}}, "size", "size is -0.1 (params.weight)", "a target weight >= 0"),
])
def test_bad_override_names_the_param(params, key, message, expected):
    err = load_error(SHIPPED_RULES, params=params)
    assert err.where.key == key, str(err)
    assert message in str(err) and expected in err.expected


def test_a_negative_literal_size_is_refused(tmp_path):
    rules_dir = edit_rule_file(tmp_path, S, "size: params.weight", "size: -0.05")
    err = load_error(rules_dir)
    assert err.where.key == "size" and err.where.yaml_line == line_of(rules_dir, S, "size: -0.05"), str(err)
    assert "size is -0.05" in str(err) and "a target weight >= 0" in err.expected


def _fills_with_size(where: Path, size: str) -> list[tuple]:
    """(bar, symbol, side, qty, price) of each fill of a backtest whose strategy sizes by ``size`` (fast windows: it trades)."""
    from engine.backtest.engine import run_backtest
    from tests.helpers.backtest import prepared_run
    rules_dir = edit_rule_file(where, S, "size: params.weight", f"size: {size}")
    p, s = prepared_run((f"rules_dir={rules_dir}", "strategy.params.fast=5", "strategy.params.slow=20"),
                        n_symbols=30, n_bars=24 * 30)
    return [(f.t, f.symbol_idx, f.side, f.qty, f.price) for f in run_backtest(p, s).fills]


def test_a_size_expression_may_be_negative_for_some_symbols(tmp_path):
    # an expression is clipped at 0 per symbol (docs/rules.md): only a constant below 0 is a mistake
    size = "pct_change(close, 24)"
    rules_dir = edit_rule_file(tmp_path, S, "size: params.weight", f"size: {size}")
    assert load_shipped(rules_dir).strategy.size.key == size  # loads: no error for an expression
    from tests.helpers.backtest import sample_market
    close = sample_market(30, 24 * 30).close
    change = close[24:] / close[:-24] - 1.0
    assert (change < 0).any() and (change > 0).any(), "the expression should be negative for some symbols"
    raw = _fills_with_size(tmp_path / "raw", size)
    assert any(f[2] == "buy" for f in raw), "the strategy should buy where the size is positive"
    # negative counts as 0 for that symbol only: the same fills as the expression clipped at 0 by hand
    assert raw == _fills_with_size(tmp_path / "clipped", f"clip({size}, 0, 1)")
    # and an expression that is never positive buys nothing
    assert [f for f in _fills_with_size(tmp_path / "never", f"clip({size}, -1, 0)") if f[2] == "buy"] == []


def test_overrides_reach_the_params():
    rs = load_shipped(params={"universe": {"top": 7}, "strategy": {"fast": 12}})
    assert rs.universe.top == 7 and rs.universe.params["top"] == 7
    assert rs.strategy.params["fast"] == 12
    assert "sma(close, 12)" in rs.strategy.entries[0].when.key


@pytest.mark.slow
def test_cli_exits_2_without_traceback_on_a_bad_rule(tmp_path):
    rules_dir = edit_rule_file(tmp_path, U, "theme != \"stablecoin\"", "theme != stablecoin")
    proc = subprocess.run([sys.executable, "run.py", f"rules_dir={rules_dir}", f"hydra.run.dir={tmp_path / 'out'}"],
                          cwd=project_path("."), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "rules/universe.yaml:" in proc.stderr and "rule 'no_stablecoins'" in proc.stderr
    assert "unknown name 'stablecoin'" in proc.stderr


def test_type_error_reads_an_integer(tmp_path):
    rules_dir = edit_rule_file(tmp_path, U, "ttl: 24h,", "ttl: [1],")
    err = load_error(rules_dir)
    assert err.where.key == "cache.ttl", str(err)
    assert err.expected == "a string or an integer", err.expected
