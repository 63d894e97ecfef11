"""A corpus of broken configs: each yields exactly the expected problem(s), message and exit code."""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest

from engine.config import check_config
from engine.config.entry import validate_entry
from tests.helpers.configs import LIVE_ENV, SECRET_KEY, SECRET_VALUE, composed, edited, live_config, valid_config


@dataclass
class Broken:
    id: str
    edits: tuple
    code: str
    path: str
    message: str  # a substring of the problem's message
    mode: str = "backtest"
    base: str = "valid"  # or "live" / "csv"
    # the exchange's keys exported, as dry_run, paper and live need (cases about them give their own)
    env: dict = field(default_factory=lambda: dict(LIVE_ENV))
    expected: str | None = None  # a substring of the problem's "expected"
    suggestions: tuple = ()
    themes: dict | None = None
    warning_only: bool = False
    live_requirements: bool = True  # False: skip the checks that read the machine (env vars, state files)


S, D = "set", "del"
P = "risk.params"
B = "live.burn_in"
NO_STATE_DIR = "/nonexistent/rulebook-test-state"  # a shadow run finds no dry_run state here
CASES = [
    # --- typos: unknown keys, with did-you-mean
    Broken("root_typo", ((S, "sed", 1),), "unknown_key", "sed", "unknown key 'sed' in '<root>'", suggestions=("seed",)),
    Broken("backtest_typo", ((S, "backtest.intial_cash", 5.0),), "unknown_key", "backtest.intial_cash",
           "unknown key 'intial_cash' in 'backtest'", suggestions=("initial_cash",)),
    Broken("risk_file_typo", ((S, "risk.fiel", "x.yaml"),), "unknown_key", "risk.fiel", "unknown key 'fiel' in 'risk'",
           suggestions=("file",)),
    Broken("fees_typo", ((S, "exchange.fees.tier", []),), "unknown_key", "exchange.fees.tier",
           "unknown key 'tier' in 'exchange.fees'", suggestions=("tiers",)),
    Broken("sample_typo", ((S, "data.sample.n_symbol", 3),), "unknown_key", "data.sample.n_symbol",
           "unknown key 'n_symbol'", suggestions=("n_symbols",)),
    Broken("report_typo", ((S, "report.htm", True),), "unknown_key", "report.htm", "unknown key 'htm' in 'report'",
           suggestions=("html",)),
    Broken("risk_param_typo", ((S, f"{P}.max_positionz", 3),), "unknown_param", f"{P}.max_positionz",
           "'max_positionz' is not a param of rules/risk.yaml", suggestions=("max_positions",)),
    Broken("strategy_param_typo", ((S, "strategy.params.fastt", 3),), "unknown_param", "strategy.params.fastt",
           "not a param of rules/strategies/sma_cross.yaml", suggestions=("fast",)),
    # --- wrong types
    Broken("seed_string", ((S, "seed", "abc"),), "type", "seed", "'seed' must be an integer", expected="an integer"),
    Broken("positions_float", ((S, f"{P}.max_positions", 2.5),), "type", f"{P}.max_positions", "must be an integer"),
    Broken("positions_bool", ((S, f"{P}.max_positions", True),), "type", f"{P}.max_positions", "must be an integer"),
    Broken("report_html_string", ((S, "report.html", "yes"),), "type", "report.html", "must be true or false"),
    Broken("symbols_not_list", ((S, "data.symbols", "BTC/USDC"),), "type", "data.symbols", "must be a list"),
    Broken("theme_caps_list", ((S, f"{P}.theme_caps", [0.1]),), "type", f"{P}.theme_caps", "must be a mapping"),
    # --- out of range / not allowed / bad format
    Broken("position_weight_above_1", ((S, f"{P}.max_position_weight", 1.5),), "max", f"{P}.max_position_weight",
           "must be at most 1", expected="<= 1"),
    Broken("position_weight_zero", ((S, f"{P}.max_position_weight", 0),), "min", f"{P}.max_position_weight",
           "must be greater than 0", expected="> 0"),
    Broken("positions_zero", ((S, f"{P}.max_positions", 0),), "min", f"{P}.max_positions", "must be at least 1"),
    Broken("theme_cap_negative", ((S, f"{P}.theme_caps.meme", -0.1),), "min", f"{P}.theme_caps.meme",
           "must be at least 0"),
    Broken("spread_zero", ((S, "execution.params.max_spread_bps", 0),), "min", "execution.params.max_spread_bps",
           "must be greater than 0"),
    Broken("cash_negative", ((S, "backtest.initial_cash", -5),), "min", "backtest.initial_cash",
           "must be greater than 0"),
    Broken("cooldown_zero", ((S, f"{P}.cooldown_bars", 0),), "min", f"{P}.cooldown_bars", "must be at least 1"),
    Broken("seed_negative", ((S, "seed", -1),), "min", "seed", "must be at least 0"),
    Broken("timeframe_unknown", ((S, "data.timeframe", "1hour"),), "allowed", "data.timeframe",
           "must be one of 1m, 5m", suggestions=("1h",)),
    Broken("mode_typo", ((S, "mode.name", "liv"),), "allowed", "mode.name", "must be one of", suggestions=("live",)),
    Broken("source_unknown", ((S, "data.source", "sql"),), "allowed", "data.source", "must be one of sample, csv"),
    Broken("asset_cap_bad_symbol", ((S, f"{P}.asset_caps", {"btc-usd": 0.1}),), "format", f"{P}.asset_caps.btc-usd",
           "key 'btc-usd' in 'risk.params.asset_caps' must be a ccxt unified symbol"),
    Broken("start_bad_date", ((S, "backtest.start", "01/02/2024"),), "format", "backtest.start",
           "must be an ISO date"),
    Broken("fee_tiers_empty", ((S, "exchange.fees.tiers", []),), "min_length", "exchange.fees.tiers",
           "needs at least 1 item(s)"),
    # --- missing
    Broken("cash_missing", ((D, "backtest.initial_cash"),), "missing_key", "backtest.initial_cash",
           "required key 'backtest.initial_cash' is missing"),
    Broken("csv_path_mandatory", (), "missing_value", "data.path", "'data.path' is mandatory and has no value",
           base="csv"),
    Broken("rule_file_missing", ((S, "strategy.file", "strategies/nope.yaml"),), "rule_file_missing",
           "strategy.file", "rule file 'strategies/nope.yaml' of strategy not found"),
    # --- contradictory caps and profiles (sanity)
    Broken("theme_above_total", ((S, f"{P}.theme_caps.meme", 0.9),), "sanity.theme_cap_exceeds_total",
           f"{P}.theme_caps.meme", "theme cap 'meme' (0.9) is above the total exposure cap (0.8)"),
    Broken("asset_above_any_theme", ((S, f"{P}.asset_caps", {"BTC/USDC": 0.5}),), "sanity.asset_cap_exceeds_theme",
           f"{P}.asset_caps.BTC/USDC", "the cap of BTC/USDC (0.5) is above the cap of its theme (0.4)"),
    Broken("asset_above_its_theme", ((S, f"{P}.asset_caps", {"DOGE/USDC": 0.2}),), "sanity.asset_cap_exceeds_theme",
           f"{P}.asset_caps.DOGE/USDC", "the cap of DOGE/USDC (0.2) is above the cap of its theme (0.1)",
           themes={"DOGE/USDC": "meme"}),
    Broken("position_above_total", ((S, f"{P}.max_position_weight", 0.9),), "sanity.position_cap_exceeds_total",
           f"{P}.max_position_weight", "one position may weigh more (0.9) than the total exposure cap (0.8)"),
    Broken("total_unreachable", ((S, f"{P}.max_positions", 2),), "sanity.total_exposure_unreachable",
           f"{P}.max_total_exposure", "can never be reached with 2 positions of at most 0.1"),
    Broken("leverage", ((S, f"{P}.max_total_exposure", 1.5), (S, f"{P}.max_positions", 20)), "sanity.spot_no_leverage",
           f"{P}.max_total_exposure", "rulebook trades spot only", expected="<= 1"),
    Broken("daily_below_hourly", ((S, f"{P}.daily_loss_limit", 0.01),), "sanity.daily_loss_below_hourly",
           f"{P}.daily_loss_limit", "tighter than the hourly one"),
    Broken("daily_above_24h", ((S, f"{P}.hourly_loss_limit", 0.01), (S, f"{P}.daily_loss_limit", 0.3),
                               (S, f"{P}.max_drawdown_halt", 0.5)),
           "sanity.daily_loss_above_24_hourly", f"{P}.daily_loss_limit", "cannot be reached",
           expected="<= 24 x hourly_loss_limit = 0.24"),
    Broken("drawdown_below_daily", ((S, f"{P}.max_drawdown_halt", 0.04),), "sanity.drawdown_halt_below_daily_loss",
           f"{P}.max_drawdown_halt", "tighter than the daily loss limit"),
    Broken("slippage_below_half_spread", ((S, "execution.params.max_slippage_bps", 20),),
           "sanity.slippage_below_half_spread", "execution.params.max_slippage_bps", "pays half the spread",
           expected=">= max_spread_bps / 2 = 25"),
    Broken("stale_quotes", ((S, "execution.params.quote_max_age_s", 3600),), "sanity.quote_staleness_not_below_cycle",
           "execution.params.quote_max_age_s", "older than a whole cycle", expected="< one cycle (3600 s"),
    Broken("fast_not_below_slow", ((S, "strategy.params.fast", 30), (S, "strategy.params.slow", 10)),
           "sanity.fast_window_not_below_slow", "strategy.params.fast", "fewer bars than the slow one"),
    Broken("window_reversed", ((S, "backtest.start", "2024-06-01"), (S, "backtest.end", "2024-01-01")),
           "sanity.backtest_window_reversed", "backtest.end", "ends before it starts"),
    Broken("fee_tiers_unsorted", ((S, "exchange.fees.tiers", [
        {"min_volume_usd": 0, "maker_bps": 60, "taker_bps": 120},
        {"min_volume_usd": 50000, "maker_bps": 25, "taker_bps": 50},
        {"min_volume_usd": 10000, "maker_bps": 40, "taker_bps": 80}]),),
           "sanity.fee_tiers_not_ascending", "exchange.fees.tiers", "exactly one fee tier"),
    # --- the live group (conf/live): strict keys, types and ranges
    Broken("live_typo", ((S, "live.max_cycle", 5),), "unknown_key", "live.max_cycle", "unknown key 'max_cycle' in 'live'",
           suggestions=("max_cycles",)),
    Broken("burn_in_typo", ((S, f"{B}.cap_scal", 0.5),), "unknown_key", f"{B}.cap_scal",
           "unknown key 'cap_scal' in 'live.burn_in'", suggestions=("cap_scale",)),
    Broken("cap_scale_zero", ((S, f"{B}.cap_scale", 0),), "min", f"{B}.cap_scale", "must be greater than 0",
           expected="> 0"),
    Broken("cap_scale_above_1", ((S, f"{B}.cap_scale", 1.5),), "max", f"{B}.cap_scale", "must be at most 1",
           mode="live", base="live", env=LIVE_ENV),
    Broken("burn_in_notional_zero", ((S, f"{B}.max_order_notional", 0),), "min", f"{B}.max_order_notional",
           "must be greater than 0"),
    Broken("burn_in_cycles_float", ((S, f"{B}.cycles", 2.5),), "type", f"{B}.cycles", "must be an integer"),
    Broken("max_cycles_zero", ((S, "live.max_cycles", 0),), "min", "live.max_cycles", "must be at least 1"),
    Broken("clock_typo", ((S, "live.clock", "wal"),), "allowed", "live.clock", "must be one of auto, wall, sim",
           suggestions=("wall",)),
    Broken("open_orders_typo", ((S, "live.open_orders_on_start", "cancle"),), "allowed", "live.open_orders_on_start",
           "must be one of cancel, keep", suggestions=("cancel",)),
    Broken("end_time_not_iso", ((S, "live.end_time", "03/01/2024"),), "format", "live.end_time",
           "must be an ISO-8601 UTC time"),
    Broken("end_time_no_such_day", ((S, "live.end_time", "2024-02-30T12:00"),), "format", "live.end_time",
           "must be an ISO-8601 UTC time"),
    Broken("end_time_with_offset", ((S, "live.end_time", "2024-03-01T12:00+02:00"),), "format", "live.end_time",
           "UTC time"),
    # the backtest reads these with numpy: a day that does not exist must fail validate, not the run
    Broken("backtest_start_no_such_month", ((S, "backtest.start", "2024-13-01"),), "format", "backtest.start",
           "must be an ISO date"),
    Broken("backtest_end_no_such_day", ((S, "backtest.end", "2024-02-30"),), "format", "backtest.end",
           "must be an ISO date"),
    Broken("explain_time_no_such_hour", ((S, "explain.time", "2024-03-01T25:00"),), "format", "explain.time",
           "must be an ISO date"),
    Broken("history_bars_one", ((S, "live.history_bars", 1),), "min", "live.history_bars", "must be at least 2"),
    Broken("account_with_slash", ((S, "live.account", "ops/1"),), "format", "live.account",
           "letters, digits, '-' or '_'"),
    Broken("require_paper_string", ((S, f"{B}.require_paper", "no"),), "type", f"{B}.require_paper",
           "must be true or false"),
    # --- deprecated keys in each mode
    *[Broken(f"renamed_{m}", ((S, "backtest.cash", 5000.0), (D, "backtest.initial_cash")), "deprecated.renamed",
             "backtest.cash", "'backtest.cash' is deprecated since 0.1.0, use 'backtest.initial_cash'", mode=m,
             warning_only=True) for m in ("backtest", "dry_run", "paper")],
    Broken("renamed_live", ((S, "backtest.cash", 5000.0), (D, "backtest.initial_cash")),
           "deprecated.renamed_in_live", "backtest.cash", "mode=live accepts only current keys", mode="live",
           base="live", env=LIVE_ENV),
    Broken("renamed_exposure_live", ((S, f"{P}.max_exposure", 0.8), (D, f"{P}.max_total_exposure")),
           "deprecated.renamed_in_live", f"{P}.max_exposure", "renamed to 'risk.params.max_total_exposure'",
           mode="live", base="live", env=LIVE_ENV),
    Broken("renamed_spread_paper", ((S, "execution.params.max_spread", 50), (D, "execution.params.max_spread_bps")),
           "deprecated.renamed", "execution.params.max_spread", "use 'execution.params.max_spread_bps'", mode="paper",
           warning_only=True),
    Broken("renamed_conflict", ((S, "data.cache", "/tmp/c"),), "deprecated.conflict", "data.cache",
           "both are set: remove 'data.cache'"),
    Broken("removed_commission", ((S, "backtest.commission", 0.001),), "deprecated.removed", "backtest.commission",
           "'backtest.commission' was removed in 0.1.0: replaced by exchange.fees.tiers"),
    # --- secrets in YAML
    Broken("literal_secret", ((S, "exchange.api_secret", SECRET_VALUE),), "secret_in_config", "exchange.api_secret",
           "holds a literal secret; secrets come from environment variables only"),
    Broken("literal_password", ((S, "data.password", "hunter22"),), "secret_in_config", "data.password",
           "holds a literal secret"),
    Broken("secret_pasted_in_env_name", ((S, "exchange.api_key_env", SECRET_KEY),), "secret_env_not_a_name",
           "exchange.api_key_env", "must name an environment variable, not hold its value"),
    Broken("pem_in_plain_key", ((S, "exchange.name", SECRET_VALUE),), "secret_in_config", "exchange.name",
           "holds a private key"),
    # --- mode requirements
    Broken("live_key_env_unset", (), "sanity.live_api_key_env_unset", "exchange.api_key_env",
           "environment variable COINBASE_API_KEY (named by exchange.api_key_env) is not set", mode="live",
           base="live", env={"COINBASE_API_SECRET": SECRET_VALUE}),
    Broken("live_secret_env_unset", (), "sanity.live_api_secret_env_unset", "exchange.api_secret_env",
           "environment variable COINBASE_API_SECRET", mode="live", base="live",
           env={"COINBASE_API_KEY": SECRET_KEY, "COINBASE_API_SECRET": ""}),
    Broken("live_no_key_env", ((S, "exchange.api_key_env", None),), "sanity.live_needs_api_key_env",
           "exchange.api_key_env", "live trading needs credentials", mode="live", base="live", env=LIVE_ENV),
    Broken("live_no_burn_in", ((S, B, None),), "sanity.live_needs_burn_in", B,
           "burn-in period", mode="live", base="live", env=LIVE_ENV),
    Broken("burn_in_no_length", ((S, f"{B}.cycles", 0), (S, f"{B}.days", 0)), "sanity.live_burn_in_has_no_length",
           f"{B}.cycles", "zero cycles and zero days is no burn-in", mode="live", base="live", env=LIVE_ENV),
    Broken("burn_in_order_above_position", ((S, f"{B}.max_order_notional", 5000.0),),
           "sanity.live_burn_in_order_above_position", f"{B}.max_order_notional",
           "a burn-in order (5000) may be larger than a whole normal position (10000 x 0.1)",
           expected="= 1000", mode="live", base="live", env=LIVE_ENV),
    Broken("burn_in_order_above_live_cash_position", ((S, "live.initial_cash", 500.0),),
           "sanity.live_burn_in_order_above_position", f"{B}.max_order_notional", "(500 x 0.1)",
           mode="live", base="live", env=LIVE_ENV),
    Broken("live_skips_paper", ((S, f"{B}.require_paper", False),), "sanity.live_without_paper_run",
           f"{B}.require_paper", "must not skip the paper run", mode="live", base="live", env=LIVE_ENV),
    Broken("live_on_local_sim", ((S, "exchange", composed("exchange=local_sim")["exchange"]),),
           "sanity.live_on_local_sim", "exchange.name", "the local emulator is not a market", mode="live",
           base="live", env=LIVE_ENV),
    Broken("live_sim_clock", ((S, "live.clock", "sim"),), "sanity.live_on_sim_clock", "live.clock",
           "must not run on a simulated clock", mode="live", base="live", env=LIVE_ENV),
    *[Broken(f"{m}_no_limits", ((S, "live.max_cycles", None), (S, "live.end_time", None)),
             "sanity.live_clock_needs_a_limit", "live.max_cycles", "give it a cycle limit or an end time", mode=m,
             **({"base": "live", "env": LIVE_ENV} if m == "live" else {})) for m in ("dry_run", "paper", "live")],
    Broken("end_time_is_a_limit", ((S, "live.max_cycles", None), (S, "live.end_time", "2024-03-01"),
                                   (S, "live.max_symbols", 0)), "min", "live.max_symbols", "must be at least 1",
           mode="dry_run"),
    Broken("paper_without_live_group", ((D, "live"),), "sanity.live_clock_needs_live_group", "live",
           "live loop's settings", mode="paper"),
    Broken("sim_origin_half", ((S, "live.sim_origin_ms", 1_700_000_000_000),), "sanity.live_sim_origin_incomplete",
           "live.sim_origin_wall_s", "needs both halves", mode="dry_run"),
    Broken("shadow_without_state", ((S, "live.state_dir", NO_STATE_DIR),), "sanity.shadow_needs_dry_run_state",
           "live.state_dir", "there is none to replay", mode="shadow",
           expected="run mode=dry_run first"),
    Broken("validate_as_shadow", ((S, "mode", {"name": "validate", "target": "shadow"}),
                                  (S, "live.state_dir", NO_STATE_DIR)),
           "sanity.shadow_needs_dry_run_state", "live.state_dir", "none to replay", mode="validate"),
    Broken("risk_burn_in_removed", ((S, "risk.burn_in", {"hours": 72, "max_total_exposure": 0.2}),),
           "deprecated.removed", "risk.burn_in", "replaced by live.burn_in"),
    Broken("renamed_shadow", ((S, "backtest.cash", 5000.0), (D, "backtest.initial_cash")), "deprecated.renamed",
           "backtest.cash", "migrated for this run", mode="shadow", warning_only=True, live_requirements=False),
    Broken("paper_no_exchange", ((S, "exchange.ccxt_id", None),), "sanity.exchange_without_market_data",
           "exchange.ccxt_id", "needs an exchange to read it from", mode="paper"),
    Broken("dry_run_no_exchange", ((S, "exchange.ccxt_id", None),), "sanity.exchange_without_market_data",
           "exchange.ccxt_id", "needs an exchange", mode="dry_run"),
    Broken("validate_as_live", ((S, "mode", {"name": "validate", "target": "live"}),),
           "sanity.live_api_key_env_unset", "exchange.api_key_env", "COINBASE_API_KEY", mode="validate",
           base="live", env={"COINBASE_API_SECRET": SECRET_VALUE}),
]


def _base(case: Broken) -> dict:
    if case.base == "live":
        return live_config()
    if case.base == "csv":
        return composed("data=csv")
    cfg = valid_config()
    if case.mode != "backtest":
        cfg["mode"]["name"] = case.mode
    return cfg


def test_corpus_is_big_and_ids_unique():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_broken_config(case: Broken):
    cfg = edited(_base(case), *case.edits)
    report = check_config(cfg, mode=case.mode, env=case.env, symbol_themes=case.themes,
                          live_requirements=case.live_requirements)
    found = report.warnings if case.warning_only else report.problems
    # Exactly one finding, the expected one: nothing drowned in follow-up noise.
    assert [(p.code, p.path) for p in found] == [(case.code, case.path)], report.format()
    problem = found[0]
    assert case.message in problem.message
    if case.expected:
        assert case.expected in problem.expected
    if case.suggestions:
        assert problem.suggestions[: len(case.suggestions)] == case.suggestions
    if case.warning_only:
        assert report.ok and report.problems == []
    # The validate entry prints the same line and exits non-zero exactly when there is a problem.
    out = io.StringIO()
    code = (validate_entry(cfg, case.env, mode=case.mode, live_requirements=case.live_requirements, out=out)
            if case.themes is None else (0 if report.ok else 2))
    assert code == (0 if case.warning_only else 2)
    if case.themes is None:
        assert problem.format() in out.getvalue()
    # Secrets never come back in what is printed.
    assert SECRET_VALUE.strip().splitlines()[1] not in out.getvalue() and SECRET_KEY not in out.getvalue()


def test_renamed_key_is_migrated_with_its_value():
    cfg = edited(valid_config(), (S, "backtest.cash", 5000.0), (D, "backtest.initial_cash"))
    report = check_config(cfg, mode="backtest", env={})
    assert report.config["backtest"]["initial_cash"] == 5000.0 and "cash" not in report.config["backtest"]
    assert "cash" in cfg["backtest"], "the input is not mutated"


def test_all_problems_are_reported_at_once():
    cfg = edited(valid_config(), (S, "sed", 1), (S, "seed", "x"), (S, f"{P}.theme_caps.meme", 2),
                 (S, "backtest.commission", 1), (S, "exchange.token", "abcdefgh"))
    report = check_config(cfg, mode="backtest", env={})
    assert {p.code for p in report.problems} == {"unknown_key", "type", "max", "deprecated.removed",
                                                 "secret_in_config"}
    text = report.format()
    assert text.count("error: [") == 5 and "did you mean: seed?" in text and "abcdefgh" not in text


def test_live_needs_no_file_data_source():
    """A live start on the default config (data=sample, never read by live) passes the data checks,
    and one naming data=csv without a path is not asked for one either: live reads the exchange."""
    for cfg in (live_config(), edited(live_config(), (S, "data.source", "csv"), (S, "data.path", None))):
        report = check_config(cfg, mode="live", env=LIVE_ENV)
        assert not [p for p in report.problems if p.path.startswith("data")], report.format()
    # a backtest still needs its files' folder
    report = check_config(edited(valid_config(), (S, "data.source", "csv"), (S, "data.path", None)), mode="backtest", env={})
    assert [p.code for p in report.problems] == ["sanity.file_data_needs_path"]
