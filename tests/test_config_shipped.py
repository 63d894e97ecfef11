"""Every shipped config group, and every sensible combination of them, validates clean."""
from __future__ import annotations

import itertools

import pytest
import yaml

from engine.config import check_config
from engine.config.sanity import load_checks
from engine.config.schema import GROUP_SCHEMAS, validate_group
from tests.helpers.configs import CONF_DIR, LIVE_ENV, composed, edited, live_config, shadow_config, valid_config

GROUP_FILES = sorted(p for g in GROUP_SCHEMAS for p in (CONF_DIR / g).glob("*.yaml"))
STRATEGIES = sorted(p.stem for p in (CONF_DIR / "strategy").glob("*.yaml"))
RISKS = sorted(p.stem for p in (CONF_DIR / "risk").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
MODES = ("backtest", "dry_run", "paper", "shadow", "validate", "explain")
LIVE_GROUPS = sorted(p.stem for p in (CONF_DIR / "live").glob("*.yaml"))
SLIPPAGE = sorted(p.stem for p in (CONF_DIR / "slippage").glob("*.yaml"))


@pytest.mark.parametrize("path", GROUP_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_group_file_matches_its_schema(path):
    text = path.read_text()
    doc = yaml.safe_load(text)
    if text.startswith("# @package _global_"):  # e.g. conf/book: its group's key, beside a defaults list
        doc = doc[path.parent.name]
    problems = [p for p in validate_group(path.parent.name, doc) if p.found != "'???' (string)"]
    assert problems == []


@pytest.mark.parametrize("option", SLIPPAGE)
def test_each_slippage_option_fills_backtest_slippage_and_validates(option):
    # conf/slippage/*.yaml are `# @package backtest.slippage`: the group is a switch, not a new key
    cfg = composed(f"slippage={option}")
    assert "slippage" not in cfg
    assert cfg["backtest"]["slippage"] == yaml.safe_load((CONF_DIR / "slippage" / f"{option}.yaml").read_text())
    report = check_config(cfg, mode="backtest", env={})
    assert report.ok, report.format()


@pytest.mark.parametrize("strategy,risk,data", list(itertools.product(STRATEGIES, RISKS, DATA)))
def test_shipped_combinations_validate_in_every_mode(strategy, risk, data, tmp_path):
    overrides = [f"strategy={strategy}", f"risk={risk}", f"data={data}"]
    if data != "sample":
        # validate lists the folder as the run would (a file per symbol, named BASE_QUOTE-1h.<ext>)
        folder = tmp_path / "ohlcv"
        folder.mkdir()
        ext = {"csv": "csv", "parquet": "parquet", "freqtrade": "feather"}.get(data)  # the store: read at the start
        if ext:
            (folder / f"BTC_USDC-1h.{ext}").write_text("")
        overrides.append(f"data.path={folder}")
    base = composed(*overrides)
    # shadow replays a dry_run's state file: give it one
    state = shadow_config(tmp_path / "state")["live"]["state_dir"]
    for mode in MODES:
        # conf/mode/*.yaml only name the mode (checked below), so set it rather than recompose.
        cfg = edited(base, ("set", "mode", yaml.safe_load((CONF_DIR / "mode" / f"{mode}.yaml").read_text())),
                     ("set", "live.state_dir", state))
        # the exchange's keys exported: dry_run and paper open the exchange with them
        report = check_config(cfg, mode=mode, env=LIVE_ENV)
        assert report.ok, report.format()
        assert report.warnings == [], report.format()
        if mode in ("dry_run", "paper"):
            assert check_config(cfg, mode=mode, env={}).codes() == [
                "sanity.live_api_key_env_unset", "sanity.live_api_secret_env_unset"]


def test_mode_files_only_name_the_mode():
    paths = sorted((CONF_DIR / "mode").glob("*.yaml"))
    assert set(MODES) <= {p.stem for p in paths}
    for path in paths:
        doc = yaml.safe_load(path.read_text())
        assert doc["name"] == path.stem
        assert set(doc) <= {"name", "target", "state"}  # state: the account shadow / explain read


@pytest.mark.parametrize("risk,live", list(itertools.product(RISKS, LIVE_GROUPS)))
def test_live_with_credentials_and_csv_data_validates(risk, live):
    cfg = composed("mode=live", "data=csv", "data.path=/data/ohlcv", f"risk={risk}", f"live={live}")
    report = check_config(cfg, mode="live", env=LIVE_ENV)
    assert report.ok, report.format()
    assert report.warnings == [], report.format()


@pytest.mark.parametrize("mode", ["dry_run", "paper"])
def test_local_sim_validates_for_offline_modes(mode):
    report = check_config(composed(f"mode={mode}", "exchange=local_sim"), mode=mode, env={})
    assert report.ok and report.warnings == [], report.format()


def test_shadow_validates_once_a_dry_run_left_its_state(tmp_path):
    cfg = shadow_config(tmp_path / "state", "ops-1", with_state=False)
    assert check_config(cfg, mode="shadow", env={}).codes() == ["sanity.shadow_needs_dry_run_state"]
    assert check_config(cfg, mode="shadow", env={}, live_requirements=False).ok
    cfg = shadow_config(tmp_path / "state", "ops-1")
    assert check_config(cfg, mode="shadow", env={}).ok


def test_shadow_state_dir_is_relative_to_the_project_root(tmp_path):
    # as engine.paths.project_path resolves it for the live loop; rules_root stands for the project
    (tmp_path / "rules").symlink_to(CONF_DIR.parent / "rules")
    (tmp_path / "st").mkdir()
    cfg = edited(composed("mode=shadow"), ("set", "live.state_dir", "st"))
    assert check_config(cfg, mode="shadow", env={}, rules_root=tmp_path).codes() == ["sanity.shadow_needs_dry_run_state"]
    (tmp_path / "st" / "default-dry_run.sqlite").touch()
    assert check_config(cfg, mode="shadow", env={}, rules_root=tmp_path).ok


def test_the_live_group_file_is_what_the_live_loop_reads():
    # every key of the schema is a LiveSettings / BurnIn field and the other way round
    import dataclasses

    from engine.config.schema import LIVE, LIVE_BURN_IN
    from engine.live.settings import BurnIn, LiveSettings
    assert set(LIVE) == {f.name for f in dataclasses.fields(LiveSettings)}
    assert set(LIVE_BURN_IN) == {f.name for f in dataclasses.fields(BurnIn)}
    shipped = yaml.safe_load((CONF_DIR / "live" / "default.yaml").read_text())
    LiveSettings.from_mapping(shipped)  # the loop accepts what the schema accepts


def test_live_requirements_false_skips_only_the_environment():
    report = check_config(live_config(), mode="live", env={}, live_requirements=False)
    assert report.ok, report.format()
    report = check_config(live_config(), mode="live", env={})
    assert report.codes() == ["sanity.live_api_key_env_unset", "sanity.live_api_secret_env_unset"]


SANITY_EXTRA = [
    ("exit_return_not_below_entry", "momentum", (("set", "strategy.params.exit_return", 0.1),), "backtest"),
    ("sample_data_needs_sample_section", None, (("set", "data.sample", None),), "backtest"),
    ("file_data_needs_path", None, (("set", "data.source", "csv"), ("set", "data.path", None)), "backtest"),
    ("live_needs_api_secret_env", "live", (("set", "exchange.api_secret_env", None),), "live"),
    ("live_api_passphrase_env_unset", "live", (("set", "exchange.api_passphrase_env", "CB_PASSPHRASE"),), "live"),
]


@pytest.mark.parametrize("check_id,base,edits,mode", SANITY_EXTRA, ids=[s[0] for s in SANITY_EXTRA])
def test_more_sanity_checks(check_id, base, edits, mode):
    cfg = live_config() if base == "live" else composed(f"strategy={base}") if base else valid_config()
    report = check_config(edited(cfg, *edits), mode=mode, env=LIVE_ENV)
    assert report.codes() == [f"sanity.{check_id}"], report.format()


def test_universe_spread_wider_than_execution_is_a_warning():
    report = check_config(edited(valid_config(), ("set", "universe.params.max_spread_bps", 80)), mode="backtest", env={})
    assert report.ok and [w.code for w in report.warnings] == ["sanity.universe_spread_above_execution"]


def test_every_sanity_check_has_an_id_and_message():
    checks = load_checks()
    assert len(checks) >= 20
    for c in checks:
        assert c.id and c.message.parts and c.severity in ("error", "warning")
