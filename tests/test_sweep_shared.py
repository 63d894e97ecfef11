"""Fast sweeps: shared features change no result; mode=grid equals separate runs, whatever the workers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.backtest.engine import run_backtest
from engine.cycle.prepare import prepare
from engine.cycle.shared import SharedFeatures
from engine.modes.setup import backtest_settings, load_rules, market_and_features, market_for
from engine.report.metrics import HEADLINE
from engine.research.grid import apply_point, grid_points
from engine.research.search import evaluate_points
from engine.sim.results import build_results
from tests.helpers.runs import compose_config
from tests.helpers.walkforward import SMALL_MARKET

POINTS = grid_points({"strategy.params.fast": [6, 12], "strategy.params.slow": [48, 96]})


@pytest.fixture(scope="module")
def small():
    cfg = compose_config(SMALL_MARKET)
    return cfg, market_for(cfg)


def _separate(cfg, market, point):
    """One run with its own preparation (no shared features), as a single backtest does it."""
    pcfg = apply_point(cfg, point)
    res = run_backtest(prepare(market, load_rules(pcfg)), backtest_settings(pcfg, market))
    return build_results(res, {})


def test_shared_features_are_computed_once_per_distinct_expression(small):
    cfg, market = small
    shared = SharedFeatures(market)
    a = prepare(market, load_rules(apply_point(cfg, POINTS[0])), shared)  # fast 6, slow 48
    b = prepare(market, load_rules(apply_point(cfg, POINTS[1])), shared)  # fast 6, slow 96
    assert a.store.arrays["sma(close, 6)"] is b.store.arrays["sma(close, 6)"]
    assert "sma(close, 96)" in b.store.used and "sma(close, 96)" not in a.store.used
    assert shared.hits == 1  # the same regime labels: one layer


def test_regime_labels_and_universe_are_prepared_once_per_spelling(small):
    cfg, market = small
    shared = SharedFeatures(market)
    a = prepare(market, load_rules(apply_point(cfg, POINTS[0])), shared)
    b = prepare(market, load_rules(apply_point(cfg, POINTS[3])), shared)  # other strategy params
    assert b.universe is a.universe and b.regime_idx is a.regime_idx and shared.memo_hits == 2
    alone = prepare(market, load_rules(apply_point(cfg, POINTS[3])))
    assert np.array_equal(b.universe, alone.universe) and np.array_equal(b.rebuilds, alone.rebuilds)
    assert np.array_equal(b.regime_idx, alone.regime_idx) and b.filter_masks.keys() == alone.filter_masks.keys()
    # another universe setting or another regime rule: computed anew, as a run of its own does
    c = prepare(market, load_rules(apply_point(cfg, {"universe.params.top": 3})), shared)
    assert not np.array_equal(c.universe, a.universe) and c.regime_idx is a.regime_idx and shared.memo_hits == 3
    assert np.array_equal(c.universe, prepare(market, load_rules(apply_point(cfg, {"universe.params.top": 3}))).universe)
    d = prepare(market, load_rules(apply_point(cfg, {"regime.params.fast": 12})), shared)
    assert np.array_equal(d.regime_idx, prepare(market, load_rules(apply_point(cfg, {"regime.params.fast": 12}))).regime_idx)
    assert shared.memo_hits == 3


def test_shared_features_change_no_result(small):
    cfg, market = small
    shared = SharedFeatures(market)
    for point in POINTS:
        pcfg = apply_point(cfg, point)
        res = run_backtest(prepare(market, load_rules(pcfg), shared), backtest_settings(pcfg, market))
        with_shared = build_results(res, {})
        alone = _separate(cfg, market, point)
        assert with_shared["metrics"] == alone["metrics"], point
        assert with_shared["equity"] == alone["equity"] and with_shared["trades"] == alone["trades"]


def test_shared_features_refuse_another_market(small):
    cfg, market = small
    other = market_for(compose_config([*SMALL_MARKET, "data.sample.seed=8"]))
    with pytest.raises(ValueError, match="another market"):
        prepare(market, load_rules(cfg), SharedFeatures(other))


def test_no_sharing_outside_a_multirun(small):
    cfg, _ = small
    _, shared = market_and_features(cfg)
    assert shared is None


@pytest.mark.parametrize("workers", [1, 2])
def test_grid_points_equal_separate_runs(small, workers):
    cfg, market = small
    got = evaluate_points(cfg, market, POINTS, workers=workers)
    assert [r.index for r in got] == [0, 1, 2, 3]
    for r, point in zip(got, POINTS):
        alone = _separate(cfg, market, point)
        assert r.point == point and r.metrics == alone["metrics"], point
        eq = np.array([v for _, v in alone["equity"]])
        np.testing.assert_array_equal(r.returns, np.concatenate([[eq[0]], eq])[1:] / np.concatenate(
            [[10_000.0], eq])[:-1] - 1.0)


@pytest.mark.slow
def test_grid_mode_writes_grid_json_and_html(tmp_path):
    from tests.helpers.runs import run_cli

    r = run_cli([*SMALL_MARKET, "mode=grid", "search.grid.strategy.params.fast=[6,12]",
                 "search.grid.strategy.params.slow=[48,96]", "search.workers=2", f"hydra.run.dir={tmp_path}"])
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "grid.json").read_text())
    assert doc["n_runs"] == 4 and doc["params"] == ["strategy.params.fast", "strategy.params.slow"]
    assert set(doc["runs"][0]["metrics"]) == set(HEADLINE)
    assert doc["deflated_sharpe"]["run"] == doc["best"]["sharpe"] and doc["deflated_sharpe"]["n_trials"] == 4
    html = (tmp_path / "grid.html").read_text()
    assert 'id="heatmap-sharpe"' in html and 'id="sweep-dsr"' in html
    bad = run_cli([*SMALL_MARKET, "mode=grid", "+search.grid.data.sample.seed=[1,2]", f"hydra.run.dir={tmp_path / 'b'}"])
    assert bad.returncode == 2 and "search.grid.data.sample.seed: data.sample.seed cannot be searched" in bad.stderr


@pytest.mark.slow
def test_multirun_jobs_sharing_one_process_equal_separate_runs(small, tmp_path):
    """Hydra's basic launcher runs the jobs in one process: the later ones reuse the market and the
    features of the earlier ones (engine.modes.setup.market_and_features) and still match a run alone."""
    from tests.helpers.runs import run_cli

    cfg, market = small
    r = run_cli(["-m", *SMALL_MARKET, "strategy.params.fast=6,12", "strategy.params.slow=48",
                 "report.html=false", "report.csv=false", f"hydra.sweep.dir={tmp_path}"])
    assert r.returncode == 0, r.stderr[-2000:]
    for job, fast in (("0", 6), ("1", 12)):
        got = json.loads((tmp_path / job / "results.json").read_text())["metrics"]
        alone = json.loads(json.dumps(_separate(cfg, market, {"strategy.params.fast": fast,
                                                             "strategy.params.slow": 48})["metrics"]))
        assert got == alone, job
