"""Walk-forward: folds, grid, stitching, the mode end to end, and bad input (exit 2 / named warnings)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from engine.errors import UserError
from engine.research.folds import length_bars, make_folds
from engine.research.grid import apply_point, flatten_grid, grid_points
from engine.research.lookback import feature_lookback
from engine.research.walkforward import choose, stitch
from tests.helpers.runs import exits_2_with_one_error, run_cli
from tests.helpers.walkforward import run_walkforward_mode, wf_config, wf_overrides


def test_rolling_folds_slide_by_one_test_window():
    plan = make_folds(10, 110, train=30, test=20, purge=5, scheme="rolling")
    assert [(f.train, f.test) for f in plan.folds] == [((10, 40), (45, 65)), ((30, 60), (65, 85)), ((50, 80), (85, 105))]
    assert plan.unused_bars == 5 and all(f.purge == 5 for f in plan.folds)


def test_anchored_folds_grow_from_the_start():
    plan = make_folds(0, 100, train=40, test=30, purge=0, scheme="anchored")
    assert [(f.train, f.test) for f in plan.folds] == [((0, 40), (40, 70)), ((0, 70), (70, 100))]
    assert plan.unused_bars == 0


def test_no_fold_fits():
    assert make_folds(0, 50, train=40, test=20, purge=0, scheme="rolling").folds == ()


@pytest.mark.parametrize("value,bars", [(720, 720), ("30d", 720), ("36h", 36), ("2w", 336), ("0d", 0)])
def test_lengths_in_bars(value, bars):
    assert length_bars(value, 3_600_000, "walkforward.train", minimum=0) == bars


def test_a_length_that_is_not_whole_bars_is_refused():
    with pytest.raises(UserError, match="walkforward.test is '5h', not a whole number of 240-minute bars"):
        length_bars("5h", 4 * 3_600_000, "walkforward.test")


def test_grid_flattens_and_orders_points():
    axes = flatten_grid({"strategy": {"params": {"fast": [6, 12], "slow": [48]}}, "risk": {"params": {"x": [1, 2]}}})
    assert axes == {"strategy.params.fast": [6, 12], "strategy.params.slow": [48], "risk.params.x": [1, 2]}
    assert grid_points(axes)[:2] == [{"strategy.params.fast": 6, "strategy.params.slow": 48, "risk.params.x": 1},
                                     {"strategy.params.fast": 6, "strategy.params.slow": 48, "risk.params.x": 2}]


def test_grid_value_that_is_not_a_list_is_refused():
    with pytest.raises(UserError, match=r"walkforward.grid.strategy.params.fast is 6; expected a list"):
        flatten_grid({"strategy": {"params": {"fast": 6}}})


def test_a_point_with_an_unknown_key_is_refused():
    cfg = {"strategy": {"params": {"fast": 48}}}
    assert apply_point(cfg, {"strategy.params.fast": 6}) == {"strategy": {"params": {"fast": 6}}}
    assert cfg["strategy"]["params"]["fast"] == 48  # a copy
    with pytest.raises(UserError, match=r"walkforward.grid.strategy.params.fsat: the config has no key "
                                        r"'strategy.params.fsat'; expected an existing config key \(there: fast\)"):
        apply_point(cfg, {"strategy.params.fsat": 6})


def test_stitch_chains_each_curve_from_where_the_last_ended():
    out = stitch([np.array([100.0, 110.0]), np.array([105.0, 120.0])], 100.0)
    np.testing.assert_allclose(out, [100.0, 110.0, 115.5, 132.0])


def test_choose_takes_the_best_defined_score_and_the_first_of_ties():
    assert choose([None, 1.0, 3.0, 3.0]) == 2
    assert choose([None, None]) is None


def test_lookback_of_nested_and_crossing_features():
    lb = feature_lookback(["close", "crossover(sma(close, 48), sma(close, 240))", "sma(sma(close, 10), 5)", "-0.15"])
    assert (lb.bars, lb.feature) == (240, "crossover(sma(close, 48), sma(close, 240))")
    assert feature_lookback(["sma(ema(close, 10), 5)"]).bars == 15


@pytest.fixture(scope="module")
def wf_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wf")
    result = run_walkforward_mode(out)
    return out, result, json.loads((out / "walkforward.json").read_text())


def test_walkforward_writes_both_files_with_folds_and_statistics(wf_run):
    out, result, doc = wf_run
    assert (out / "walkforward.html").is_file()
    wf = doc["walkforward"]
    # 2000 bars: 480 train + 24 purge, then 240-bar test windows: (2000 - 504) // 240 = 6 folds, 56 bars left
    assert (wf["n_folds"], wf["train_bars"], wf["test_bars"], wf["purge_bars"], wf["unused_bars"]) == (6, 480, 240, 24, 56)
    assert wf["n_points"] == 4 and len(doc["grid"]) == 4
    assert len(doc["folds"]) == 6 and len(doc["out_of_sample"]["equity"]) == 6 * 240
    st = doc["statistics"]
    assert 0.0 <= st["deflated_sharpe"]["dsr"] <= 1.0 and st["deflated_sharpe"]["n_trials"] == 4
    assert 0.0 <= st["pbo"]["pbo"] <= 1.0 and st["pbo"]["n_splits"] == 70
    assert set(st["parameter_stability"]) == {"strategy.params.fast", "strategy.params.slow"}
    assert result["statistics"]["dsr"] == st["deflated_sharpe"]["dsr"]
    assert any(w["code"] == "unused_bars" for w in doc["warnings"])


def test_each_fold_chose_its_best_train_score_and_traded_it_on_the_test_window(wf_run):
    from engine.backtest.engine import run_backtest
    from engine.cycle.prepare import prepare
    from engine.modes.setup import backtest_settings, load_rules, market_for
    from engine.research.grid import apply_point as apply
    from engine.sim.results import run_metrics

    _, _, doc = wf_run
    cfg = wf_config()
    market = market_for(cfg)
    chained = []
    for f in doc["folds"]:
        defined = [(s, i) for i, s in enumerate(f["scores"]) if s is not None]
        assert f["chosen"] == max(defined, key=lambda t: (t[0], -t[1]))[1]
        pcfg = apply(cfg, f["params"])
        p = prepare(market, load_rules(pcfg))
        s = backtest_settings(pcfg, market)
        a = f["test"]["first_bar"]
        res = run_backtest(p, dataclasses.replace(s, start=a, stop=a + f["test"]["bars"]))
        m, _, _ = run_metrics(res)
        assert f["out_of_sample"]["sharpe"] == m["sharpe"] and f["out_of_sample"]["n_trades"] == m["n_trades"]
        chained.append(res.equity)
    stitched = [v for _, v in doc["out_of_sample"]["equity"]]
    np.testing.assert_array_equal(stitched, stitch(chained, s.initial_cash))
    # the test windows follow each other: the out-of-sample span is contiguous
    starts = [f["test"]["first_bar"] for f in doc["folds"]]
    assert np.diff(starts).tolist() == [240] * 5


def test_walkforward_is_deterministic(wf_run, tmp_path):
    out, _, _ = wf_run
    run_walkforward_mode(tmp_path)
    assert (tmp_path / "walkforward.json").read_bytes() == (out / "walkforward.json").read_bytes()


def test_a_train_window_without_trades_is_named_on_every_fold(tmp_path):
    run_walkforward_mode(tmp_path, "universe.params.min_volume_usd=1e14")
    doc = json.loads((tmp_path / "walkforward.json").read_text())
    for f in doc["folds"]:
        codes = {w["code"] for w in f["warnings"]}
        assert {"train_objective_undefined", "train_no_trade", "test_no_trade"} <= codes, f["fold"]
    html = (tmp_path / "walkforward.html").read_text()
    assert 'id="warnings"' in html and "train_no_trade" in html




@pytest.mark.slow
def test_cli_folds_that_do_not_fit_the_data_exit_2(tmp_path):
    r = run_cli([*wf_overrides("walkforward.train=120d"), f"hydra.run.dir={tmp_path}"])
    exits_2_with_one_error(r, "walkforward: train '120d' (2880 bars)", "holds 2000", "expected shorter walkforward.train/test")


@pytest.mark.slow
def test_cli_test_window_shorter_than_the_slowest_lookback_exit_2(tmp_path):
    r = run_cli([*wf_overrides("walkforward.test=3d"), f"hydra.run.dir={tmp_path}"])
    exits_2_with_one_error(r, "walkforward.test is '3d' (72 bars)", "sma(close, 96)", "reads 96 bars", "at least 96 bars")


@pytest.mark.slow
def test_cli_unknown_grid_key_exit_2(tmp_path):
    r = run_cli([*wf_overrides("+walkforward.grid.strategy.params.fsat=[1,2]"), f"hydra.run.dir={tmp_path}"])
    exits_2_with_one_error(r, "walkforward.grid.strategy.params.fsat", "expected an existing config key")


@pytest.mark.slow
def test_cli_walkforward_mode_runs(tmp_path):
    r = run_cli([*wf_overrides("walkforward.scheme=anchored"), f"hydra.run.dir={tmp_path}"])
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "walkforward.json").read_text())
    assert all(f["train"]["first_bar"] == 0 for f in doc["folds"])
    assert f"walkforward_html: {tmp_path / 'walkforward.html'}" in r.stdout
