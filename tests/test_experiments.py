"""The experiment config group: named override sets (conf/experiment/)."""
from __future__ import annotations

import pytest

from tests.helpers.runs import compose_config, run_backtest

SMALL = ["data.sample.n_symbols=30", "data.sample.n_bars=1500"]


def test_freqtrade_is_the_readme_command_in_one_word():
    cfg = compose_config(["+experiment=freqtrade"])
    assert cfg["data"]["source"] == "freqtrade" and cfg["data"]["timeframe"] == "5m"
    assert cfg["data"]["symbols"] == ["ADA/BTC", "ETH/BTC", "LTC/BTC", "XLM/BTC", "ETC/BTC", "DASH/BTC"]
    assert cfg["data"]["path"] == "../shared/data/freqtrade"
    assert cfg["backtest"]["initial_cash"] == 1
    assert cfg["universe"]["params"]["min_volume_usd"] == 1
    assert cfg["execution"]["params"]["min_notional"] == 0.0001


def test_an_override_after_an_experiment_wins():
    cfg = compose_config(["+experiment=freqtrade", "data.timeframe=1h", "backtest.initial_cash=2"])
    assert cfg["data"]["timeframe"] == "1h" and cfg["backtest"]["initial_cash"] == 2


def test_frictionless_sets_flat_fee_no_slippage_no_cap_every_product():
    cfg = compose_config(["+experiment=frictionless"])
    assert cfg["exchange"]["fees"]["tiers"] == [{"min_volume_usd": 0, "maker_bps": 10, "taker_bps": 10}]
    assert cfg["backtest"]["slippage"]["model"] == "none"
    assert cfg["backtest"]["max_participation"] == 1.0
    assert cfg["universe"]["file"] == "universe_all.yaml"


def test_a_frictionless_run_pays_the_flat_fee_only_and_trades_from_every_listed_product(tmp_path):
    res = run_backtest(["+experiment=frictionless", *SMALL], tmp_path)
    fills = res["trades"]
    assert fills and res["metrics"]["slippage_cost"] == 0
    assert all(f["fee"] == pytest.approx(f["notional"] * 0.001, rel=1e-12) for f in fills)
    # no universe filter blocked anything: the universe held every product with enough data
    assert not any(k.startswith("universe:") for k in res["rule_stats"])
    base = run_backtest(SMALL, tmp_path / "base")
    assert res["universe"]["size_mean"] > base["universe"]["size_mean"]
