"""Hostile inputs (issue 21): credentials in URLs, paths leaving their roots, a regime index that
selects nothing. Each gives one exact message, exit code 2 and no traceback; no credential is in
any file a run writes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.config.secrets import redact, redact_override, redact_urls, secret_values, url_credentials
from engine.exchange.config import ExchangeConfig
from engine.exchange.errors import ExchangeConfigError
from engine.market.loaders import load_csv_dir
from engine.market.validate import DataError
from engine.rules.errors import RuleError
from tests.helpers.market import csv_text, good_rows, write_text
from tests.helpers.rules import create_rules_dir, edit_rule_file, load_shipped
from tests.helpers.runs import run_cli

ENV_NAMES = "exchange.api_key_env (COINBASE_API_KEY) and exchange.api_secret_env (COINBASE_API_SECRET)"

# ---- credentials in URLs ---------------------------------------------------------------------
URLS = [  # (url, its redacted form, the kinds named)
    ("https://user:PASSWORD1@host.example/v3", "https://***@host.example/v3", "user:password"),
    ("https://host.example/v3?token=TOKEN123&limit=5", "https://host.example/v3?token=***&limit=5",
     "query parameter token="),
    ("https://host.example/?apikey=KEY12345", "https://host.example/?apikey=***", "query parameter apikey="),
    ("https://host.example/x?n=1&signature=SIG12345", "https://host.example/x?n=1&signature=***",
     "query parameter signature="),
    ("wss://TOKENONLY99@host.example:8443/ws", "wss://***@host.example:8443/ws", "user:password"),
]


@pytest.mark.parametrize("url,clean,kinds", URLS)
def test_url_credentials_are_redacted_and_refused(url, clean, kinds):
    assert redact_urls(url) == clean and redact({"rest_url": url}) == {"rest_url": clean}
    assert redact_override(f"exchange.rest_url={url}") == f"exchange.rest_url={clean}"
    with pytest.raises(ExchangeConfigError) as e:
        ExchangeConfig.from_mapping({"rest_url": url})
    assert str(e.value) == (f"'exchange.rest_url' holds credentials in its URL ({kinds}): give the URL without "
                            f"them and export the credentials in {ENV_NAMES} (found: {clean})")


def test_plain_urls_and_key_value_text_are_left_alone():
    for text in ("https://api.coinbase.com/api/v3/brokerage/orders?limit=5&cursor=abc", "see key=value",
                 "http://127.0.0.1:8765"):
        assert redact_urls(text) == text and url_credentials(text) == []


def test_the_password_of_a_url_is_a_secret_value_to_scrub():
    vals = secret_values({"exchange": {"rest_url": "https://user:PASSWORD1@h/x"}}, {})
    assert "PASSWORD1" in vals and "user:PASSWORD1" in vals and "user" not in vals


def _files_holding(folder: Path, needles: tuple[str, ...]) -> list[str]:
    hits = []
    for p in folder.rglob("*"):
        if p.is_file():
            text = p.read_bytes().decode("utf-8", "replace")
            hits += [f"{p.relative_to(folder)}: {n}" for n in needles if n in text]
    return hits


@pytest.mark.slow
def test_run_with_credentials_in_the_url_is_refused_and_leaves_none(tmp_path):
    url = "https://user:PASSWORD1@host.example/v3?token=TOKEN123"
    out = tmp_path / "run"
    r = run_cli([f"exchange.rest_url='{url}'", f"hydra.run.dir={out}"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert ("error: [secret_in_url] exchange.rest_url: 'exchange.rest_url' holds credentials in its URL "
            "(user:password and query parameter token=)") in r.stderr
    assert _files_holding(out, ("PASSWORD1", "TOKEN123")) == []
    assert (out / ".hydra" / "overrides.yaml").exists()
    assert "PASSWORD1" not in r.stdout + r.stderr and "TOKEN123" not in r.stdout + r.stderr


# ---- paths stay inside their roots -------------------------------------------------------------
def test_rule_file_outside_rules_dir_is_refused_unread(tmp_path):
    rules = create_rules_dir(tmp_path)
    (tmp_path / "elsewhere.yaml").write_text("kind: strategy\n")
    os.symlink("/etc/hostname", rules / "linked.yaml")
    from engine.rules.loader import load_ruleset
    from tests.helpers.rules import shipped_files
    for rel, target in (("../elsewhere.yaml", tmp_path / "elsewhere.yaml"), ("linked.yaml", Path("/etc/hostname").resolve())):
        with pytest.raises(RuleError) as e:
            load_ruleset(rules, {**shipped_files(), "strategy": rel})
        assert str(e.value) == (f"strategy.file: the strategy rule file {rel!r} leads outside the rules folder {rules} "
                                f"(to {target}); expected a path inside {rules} (e.g. strategies/sma_cross.yaml); "
                                f"to use rule files elsewhere, set rules_dir to their folder")


def test_data_file_linked_outside_the_folder_is_refused_unread(tmp_path):
    os.symlink("/etc/passwd", tmp_path / "BTC_USDC-1h.csv")
    with pytest.raises(DataError) as e:
        load_csv_dir(tmp_path, "1h")
    assert str(e.value) == (f"{tmp_path}: BTC_USDC-1h.csv is a symbolic link that leads outside the data folder "
                            f"(to /etc/passwd); expected a data file inside {tmp_path} (copy the file in, or set "
                            f"data.path to its folder)")
    assert "/bin/bash" not in str(e.value)  # no line of the linked file


def test_link_inside_the_data_folder_is_read(tmp_path):
    real = write_text(tmp_path, "real.txt", csv_text(good_rows(6)))
    os.symlink(real, tmp_path / "BTC_USDC-1h.csv")
    assert load_csv_dir(tmp_path, "1h").n_bars == 6


def test_one_row_csv_names_the_file(tmp_path):
    write_text(tmp_path, "BTC_USDC-1h.csv", csv_text(good_rows(1)))
    with pytest.raises(DataError) as e:
        load_csv_dir(tmp_path, "1h")
    assert str(e.value) == (f"{tmp_path}: BTC_USDC-1h.csv (1 bar): the data holds 1 bar in all; expected at least "
                            f"2 bars (a decision at one bar fills at the next)")


@pytest.mark.slow
def test_run_refuses_rule_file_outside_rules_in_validate_and_run(tmp_path):
    for mode in ("validate", "backtest"):  # one exit code for a mistake, whichever the mode
        r = run_cli([f"mode={mode}", "strategy.file=../conf/strategy/sma_cross.yaml", f"hydra.run.dir={tmp_path / mode}"])
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "[rule_file_outside] strategy.file: rule file '../conf/strategy/sma_cross.yaml' of strategy leads " \
               "outside rules_dir" in r.stdout + r.stderr


# ---- no silent fallback --------------------------------------------------------------------------
def test_regime_index_excluding_every_theme_is_an_error(tmp_path):
    from engine.cycle.prepare import prepare
    from tests.helpers.market import small_spec
    from engine.market.sample import generate_sample_market
    market = generate_sample_market(small_spec())
    themes = sorted({i.theme for i in market.info})
    rules_dir = edit_rule_file(tmp_path, "regime.yaml", "exclude_themes: [stablecoin]", f"exclude_themes: [{', '.join(themes)}]")
    rules = load_shipped(rules_dir)
    with pytest.raises(RuleError) as e:
        prepare(market, rules)
    assert str(e.value) == (f"rules/regime.yaml:4, key 'index.exclude_themes': index.exclude_themes "
                            f"[{', '.join(themes)}] excludes the theme of every product in the data "
                            f"({', '.join(themes)}): the regime index would follow no product; expected at least one "
                            f"theme of the data left in the index (exclude fewer themes)")


# ---- numbers in rule files: finite, bounded where parsed ------------------------------------------
FINITE = "expected a finite number (NaN and infinity are not allowed)"
RULE_NUMBERS = [  # (file, old text, new text, the exact message)
    ("execution.yaml", "order: {type: market}", "order: {type: limit, offset_bps: .nan}",
     f"rules/execution.yaml:9, key 'order.offset_bps': 'offset_bps' is nan; {FINITE}"),
    ("execution.yaml", "order: {type: market}", "order: {type: limit, offset_bps: -.inf}",
     f"rules/execution.yaml:9, key 'order.offset_bps': 'offset_bps' is -inf; {FINITE}"),
    ("execution.yaml", "order: {type: market}", "order: {type: limit, offset_bps: 1500}",
     "rules/execution.yaml:9, key 'order.offset_bps': 'offset_bps' is 1500; expected a number from -1000 to 1000"),
    ("risk.yaml", "max_total_exposure: 0.8", "max_total_exposure: .nan",
     f"rules/risk.yaml:6, key 'params.max_total_exposure': 'max_total_exposure' is nan; {FINITE}"),
    ("risk.yaml", "cooldown_bars: 24", "cooldown_bars: .inf",
     f"rules/risk.yaml:13, key 'params.cooldown_bars': 'cooldown_bars' is inf; {FINITE}"),
    ("universe.yaml", "top: 20", "top: .nan", f"rules/universe.yaml:10, key 'params.top': 'top' is nan; {FINITE}"),
    ("strategies/sma_cross.yaml", "size: params.weight", "size: .nan",
     f"rules/strategies/sma_cross.yaml:23, key 'size': 'size' is nan; {FINITE}"),
    ("risk.yaml", "cooldown_bars: 24", "cooldown_bars: 1.0e+20",
     "rules/risk.yaml:23, rule 'hourly_loss', key 'cooldown_bars': cooldown_bars is 1e+20; expected a positive "
     "whole number, at most 1,000,000"),
    ("universe.yaml", "ttl: 24h", "ttl: 99999999999999999999w",
     "rules/universe.yaml:5, key 'cache.ttl': cache.ttl is '99999999999999999999w', longer than 520w; expected a "
     "duration such as 30m, 24h, 7d, 1w (or seconds), at most 520w"),
    ("universe.yaml", "ttl: 24h", "ttl: 315360001",
     "rules/universe.yaml:5, key 'cache.ttl': cache.ttl is 315360001, longer than 520w; expected a "
     "duration such as 30m, 24h, 7d, 1w (or seconds), at most 520w"),
]


@pytest.mark.parametrize("rel,old,new,message", RULE_NUMBERS, ids=[c[2] for c in RULE_NUMBERS])
def test_rule_file_numbers_are_finite_and_bounded(tmp_path, rel, old, new, message):
    from tests.helpers.rules import load_error
    assert str(load_error(edit_rule_file(tmp_path, rel, old, new))) == message


def test_ttl_at_the_bound_loads(tmp_path):
    rules = load_shipped(edit_rule_file(tmp_path, "universe.yaml", "ttl: 24h", "ttl: 520w"))
    assert rules.universe.ttl_ms == 520 * 604_800_000


def test_config_param_override_must_be_finite():
    from tests.helpers.rules import SHIPPED_RULES, load_error
    err = load_error(SHIPPED_RULES, params={"risk": {"max_total_exposure": float("nan")}})
    assert str(err) == ("rules/risk.yaml, key 'params.max_total_exposure': config sets params.max_total_exposure "
                        f"to nan; {FINITE}")


# ---- config: overrides that do nothing, theme names, the product table, the exchange's keys -------
def _check(*overrides: str, mode: str = "backtest", env: dict | None = None):
    from engine.config import check_config
    from tests.helpers.configs import LIVE_ENV, composed
    return check_config(composed(*overrides), mode=mode, env=LIVE_ENV if env is None else env, overrides=overrides)


def test_empty_mapping_override_is_refused_with_how_to_replace():
    report = _check("risk.params.theme_caps={}")
    assert [p.format() for p in report.problems] == [
        "[empty_mapping_merges] risk.params.theme_caps: 'risk.params.theme_caps={}' changes nothing: Hydra merges a "
        "mapping given on the command line into the default one, so every entry of the default stays (found: "
        "risk.params.theme_caps={} (the composed value stays {default: 0.4, meme: 0.1}); expected: to replace the "
        "mapping, delete it and add the new one: '~risk.params.theme_caps' '+risk.params.theme_caps={...}')"]
    assert _check("risk.params.asset_caps={}").ok  # empty already: nothing silently kept


def test_theme_caps_replaced_need_a_default():
    replaced = _check("~risk.params.theme_caps", "+risk.params.theme_caps={default: 0.3}")
    assert replaced.ok and replaced.config["risk"]["params"]["theme_caps"] == {"default": 0.3}
    report = _check("~risk.params.theme_caps", "+risk.params.theme_caps={}")
    assert [p.format() for p in report.problems] == [
        "[missing_key] risk.params.theme_caps.default: required key 'risk.params.theme_caps.default' is missing "
        "(found: nothing; expected: a value (required))"]


@pytest.mark.parametrize("theme", ["L1", "L2", "DeFi", "AI", "meme", "exchange_token"])
def test_built_in_themes_are_theme_cap_keys(theme):
    from engine.config import redact
    report = _check(f"++risk.params.theme_caps.{theme}=0.2")
    assert report.ok and report.warnings == [], report.format()
    # a theme is no secret: "exchange_token" is written as it is
    assert redact(report.config)["risk"]["params"]["theme_caps"][theme] == 0.2
    assert redact_override(f"risk.params.theme_caps.{theme}=0.2") == f"risk.params.theme_caps.{theme}=0.2"


def test_theme_cap_keys_that_are_no_theme_name_are_refused():
    from engine.config import check_config
    from tests.helpers.configs import LIVE_ENV, edited, valid_config
    report = check_config(edited(valid_config(), ("set", "risk.params.theme_caps.De Fi", 0.2)), mode="backtest",
                          env=LIVE_ENV)
    assert [p.format() for p in report.problems] == [
        "[format] risk.params.theme_caps.De Fi: key 'De Fi' in 'risk.params.theme_caps' must be a "
        "theme name like 'meme' or 'DeFi' (found: key 'De Fi'; expected: keys that are a theme name like 'meme' or "
        "'DeFi')"]


def test_theme_cap_on_no_theme_of_the_table_is_a_named_warning():
    report = _check("+risk.params.theme_caps.defi=0.2")
    assert report.ok and [w.format() for w in report.warnings] == [
        "[sanity.theme_cap_unknown_theme] risk.params.theme_caps.defi: theme cap 'defi' names no theme of any "
        "product, so it caps nothing (found: defi; expected: a theme of the product table products.yaml (spelt as "
        "there): [AI, DeFi, L1, L2, exchange_token, gaming, meme, oracle, other, payments, stablecoin], or default)"]
    assert _check("product_facts=null", "+risk.params.theme_caps.defi=0.2").warnings == []  # no table: no themes


def test_broken_product_table_is_a_config_problem(tmp_path):
    table = tmp_path / "products.yaml"
    table.write_text("kind: products\nthemes: {BTC: 'L 1'}\n")
    report = _check(f"product_facts={table}")
    assert [p.format() for p in report.problems] == [
        f"[product_facts] product_facts: {table}: themes.BTC: value does not match regex "
        "'^[A-Za-z][A-Za-z0-9_]{0,39}$' (found 'L 1'; expected a mapping of base currency (e.g. BTC) to theme name "
        f"(letters, digits, _)) (found: {table}; expected: a readable product table (rules/products.yaml), or "
        "product_facts=null for none)"]


@pytest.mark.parametrize("mode", ["dry_run", "paper", "live"])
def test_the_exchange_keys_must_be_exported_in_every_mode_that_opens_the_exchange(mode):
    report = _check(f"mode={mode}", mode=mode, env={"COINBASE_API_SECRET": "x" * 20})
    assert [p.format() for p in report.problems] == [
        "[sanity.live_api_key_env_unset] exchange.api_key_env: environment variable COINBASE_API_KEY (named by "
        "exchange.api_key_env) is not set (found: COINBASE_API_KEY is not set in the environment; expected: export "
        "COINBASE_API_KEY=<your API key> before starting (dry_run, paper and live open the exchange with it))"]
    assert _check(f"mode={mode}", "exchange=local_sim", mode=mode, env={}).codes() == (
        ["sanity.live_on_local_sim"] if mode == "live" else [])  # the emulator makes its own throwaway keys


@pytest.mark.parametrize("override,code,path", [
    ("+strategy.params.foo=nan", "not_finite", "strategy.params.foo"),  # a param the schema does not know
    ("risk.params.theme_caps.meme=nan", "not_finite", "risk.params.theme_caps.meme"),
    ("backtest.initial_cash=inf", "not_finite", "backtest.initial_cash"),
])
def test_config_numbers_are_finite_even_unknown_params(override, code, path):
    assert [(p.code, p.path) for p in _check(override).problems] == [(code, path)]


# ---- named warnings: in the log, results.json's diagnostics and the report's box -------------------
@pytest.mark.slow
def test_start_up_warnings_are_named_in_log_results_and_report(tmp_path):
    import json
    from tests.helpers.rules import SHIPPED_RULES
    table = tmp_path / "products.yaml"
    table.write_text((SHIPPED_RULES / "products.yaml").read_text().replace("  DOGE: meme\n", ""))
    out = tmp_path / "run"
    r = run_cli(["data.sample.n_symbols=30", "data.sample.n_bars=600", "++risk.params.theme_caps.defi=0.2",
                 f"product_facts={table}", f"hydra.run.dir={out}"])
    assert r.returncode == 0, r.stderr
    diagnostics = json.loads((out / "results.json").read_text())["diagnostics"]
    assert [d["code"] for d in diagnostics][:2] == ["sanity.theme_cap_unknown_theme", "undeclared_theme"]
    assert diagnostics[0]["message"].startswith("risk.params.theme_caps.defi: theme cap 'defi' names no theme")
    assert diagnostics[1]["message"] == (f"sample:seed=7: 1 traded product(s) have no declared theme in {table} and "
                                         "count as 'other': DOGE/USDC")
    log = (out / "run.log").read_text()
    assert "[sanity.theme_cap_unknown_theme] risk.params.theme_caps.defi" in log and "[undeclared_theme]" in log
    html = (out / "report.html").read_text()
    assert "<code>sanity.theme_cap_unknown_theme</code>" in html and "<code>undeclared_theme</code>" in html


# ---- the product table: inside rules_dir, and never echoed when it is no product table --------------
def test_product_table_leaving_rules_dir_is_refused(tmp_path):
    from engine.errors import UserError
    from engine.market.products import load_for
    from engine.paths import project_path
    (tmp_path / "t.yaml").write_text("kind: products\n")
    rel = os.path.relpath(tmp_path / "t.yaml", project_path("rules"))
    with pytest.raises(UserError) as e:
        load_for({"product_facts": rel, "rules_dir": "rules"})
    assert str(e.value) == (f"product_facts: the product table {rel!r} leads outside the rules folder "
                            f"{project_path('rules')} (to {tmp_path / 't.yaml'}); expected a path inside it (e.g. "
                            "products.yaml), or an absolute path")


@pytest.mark.parametrize("text,says", [
    ("password: hunter2-SECRET\nfoo: [unclosed\n",
     ":3:1: not a YAML product table (expected ',' or ']', but got '<stream end>'); expected a mapping with kind: "
     "products, themes, markets"),
    ("password: hunter2-SECRET\n", ": no 'kind: products' at the top; expected the product table (rules/products.yaml)"),
])
def test_a_file_that_is_no_product_table_is_not_echoed(tmp_path, text, says):
    from engine.errors import UserError
    from engine.market.products import load_product_facts
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(UserError) as e:
        load_product_facts(tmp_path / "t.yaml")
    assert str(e.value) == f"{tmp_path / 't.yaml'}{says}" and "hunter2" not in str(e.value)


@pytest.mark.parametrize("make,says", [
    (lambda d: d / "absent", "{d}/absent: not a directory, expected a folder of OHLCV files"),
    (lambda d: d, "{d}: no .csv files for timeframe '1h', expected names like BTC_USDC-1h.csv"),
])
def test_validate_lists_the_data_folder_as_the_run_would(tmp_path, make, says):
    report = _check("data=csv", f"data.path={make(tmp_path)}")
    assert [(p.code, p.path, p.message) for p in report.problems] == [
        ("data_files", "data.path", says.format(d=tmp_path))]


@pytest.mark.slow
def test_run_py_passes_the_command_line_to_the_check(tmp_path):
    for mode in ("validate", "backtest"):  # one exit code for a mistake, whichever the mode
        r = run_cli([f"mode={mode}", "risk.params.theme_caps={}", f"hydra.run.dir={tmp_path / mode}"])
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "error: [empty_mapping_merges] risk.params.theme_caps: 'risk.params.theme_caps={}' changes nothing" \
            in r.stdout + r.stderr
