"""The exchange layer's config keys (rate budgets, retries, emulator) are checked too."""
from __future__ import annotations

import pytest

from engine.config import check_config
from engine.config.schema import validate_group
from tests.helpers.configs import LIVE_ENV, edited, exchange_layer_section, live_config, valid_config


@pytest.mark.parametrize("local", [False, True])
def test_exchange_layer_sections_validate(local):
    assert validate_group("exchange", exchange_layer_section(local)) == []


@pytest.mark.parametrize("mode", ["dry_run", "paper"])
def test_local_sim_runs_offline_modes(mode):
    cfg = valid_config()
    cfg["mode"]["name"] = mode
    # paper's simulated broker charges the fee tiers, as the shipped conf/exchange/local_sim.yaml has them
    cfg["exchange"] = exchange_layer_section(local=True) | {"fees": cfg["exchange"]["fees"]}
    report = check_config(cfg, mode=mode, env={})
    assert report.ok, report.format()


@pytest.mark.parametrize("edits,mode,code,path", [
    ((("set", "exchange.rate_limits.pools.public.limit_per_s", 0),), "paper", "min",
     "exchange.rate_limits.pools.public.limit_per_s"),
    ((("set", "exchange.rate_limits.safety_margin", 0.95),), "paper", "max", "exchange.rate_limits.safety_margin"),
    ((("set", "exchange.retry.max_attemps", 3),), "paper", "unknown_key", "exchange.retry.max_attemps"),
    ((("set", "exchange.ccxt_log_level", "verbose"),), "paper", "allowed", "exchange.ccxt_log_level"),
    ((("set", "exchange.retry.base_delay_s", 5.0),), "paper", "sanity.retry_delays_reversed",
     "exchange.retry.base_delay_s"),
    ((("set", "exchange.emulator.autostart", True),), "live", "sanity.live_on_emulator", "exchange.emulator.autostart"),
    ((("set", "exchange.rest_url", "http://127.0.0.1:8765"),), "live", "sanity.live_on_local_url",
     "exchange.rest_url"),
    ((("set", "exchange.fees", None),), "backtest", "sanity.simulated_broker_needs_fees", "exchange.fees"),
    ((("set", "exchange.fees", None),), "paper", "sanity.simulated_broker_needs_fees", "exchange.fees"),
])
def test_exchange_layer_mistakes(edits, mode, code, path):
    base = live_config() if mode == "live" else valid_config()
    base["mode"]["name"] = mode
    base["exchange"] = exchange_layer_section() | {"fees": base["exchange"]["fees"]}
    report = check_config(edited(base, *edits), mode=mode, env=LIVE_ENV)
    assert [(p.code, p.path) for p in report.problems] == [(code, path)], report.format()
