"""The rule language, second edition (issue 17): any expression where the grammar allows one, a
universe without filters, every rule file within reach of the command line, coarser timeframes."""
from __future__ import annotations

import numpy as np
import pytest

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


# -- item 3: every rule file within reach of the command line ----------------------------------

def _checked(overrides: list[str]) -> dict:
    """The composed config as every mode sees it after the checks (no problem allowed)."""
    from engine.config.entry import compose, run_check
    report = run_check(compose(overrides), {}, live_requirements=False)
    assert report.ok, report.format()
    return report.config


def test_the_regime_file_has_a_config_group_and_its_params_reach_the_rules():
    from engine.modes.setup import load_rules
    rs = load_rules(_checked(["regime.params.fast=24"]))
    assert rs.regime.params["fast"] == 24
    bull = next(r for r in rs.regime.rules if r.id == "bull")
    assert "sma(close, 24)" in bull.when.key


def test_a_misspelt_regime_param_is_a_config_problem():
    from engine.config.entry import compose, run_check
    report = run_check(compose(["+regime.params.fastt=24"]), {}, live_requirements=False)
    assert [p.path for p in report.problems] == ["regime.params.fastt"], report.format()
    assert "fast" in report.problems[0].suggestions


def test_an_entry_rules_regimes_are_a_param():
    from engine.modes.setup import load_rules
    shipped = load_rules(_checked([]))
    assert shipped.strategy.entries[0].regimes == ("bull", "chop")
    widened = load_rules(_checked(["strategy.params.entry_regimes=[bull,chop,bear]"]))
    assert widened.strategy.entries[0].regimes == ("bull", "chop", "bear")
    # an empty list lifts the scope: golden_cross then enters in every regime
    assert load_rules(_checked(["strategy.params.entry_regimes=[]"])).strategy.entries[0].regimes is None


def test_entry_regimes_every_regime_enters_more_often():
    from engine.modes.setup import load_rules
    market = sample_market(30, 24 * 60)
    scoped = prepare(market, load_rules(_checked([])))
    free = prepare(market, load_rules(_checked(["strategy.params.entry_regimes=[]"])))
    # the same crossovers, no longer masked outside bull and chop
    assert (free.entries.combined >= scoped.entries.combined).all()
    assert free.entries.combined.sum() > scoped.entries.combined.sum()


def test_an_unknown_regime_given_through_params_names_the_rule(tmp_path):
    from tests.helpers.rules import load_error
    err = load_error(SHIPPED_RULES, params={"strategy": {"entry_regimes": ["bull", "bera"]}})
    assert err.where.rule == "golden_cross" and err.where.key == "regimes", str(err)
    assert "regime 'bera' is not defined by the regime file (did you mean 'bear'?)" in str(err)


def test_a_per_symbol_param_is_settable_with_a_dashed_symbol():
    from engine.modes.setup import load_rules
    cfg = _checked(["+risk.params.asset_caps.BTC-USDC=0.05", "+risk.params.asset_caps.ETH-USDC=0.02"])
    assert cfg["risk"]["params"]["asset_caps"] == {"BTC/USDC": 0.05, "ETH/USDC": 0.02}
    assert load_rules(cfg).risk.caps[0].per_symbol == {"BTC/USDC": 0.05, "ETH/USDC": 0.02}


def test_a_per_symbol_param_is_settable_as_a_whole_mapping():
    cfg = _checked(["+risk.params.asset_caps={BTC/USDC:0.05}"])
    assert cfg["risk"]["params"]["asset_caps"] == {"BTC/USDC": 0.05}


def test_a_dashed_symbol_key_is_still_checked_as_a_symbol():
    from engine.config.entry import compose, run_check
    report = run_check(compose(["+risk.params.asset_caps.btc-usdc=0.05"]), {}, live_requirements=False)
    assert not report.ok and any("asset_caps" in p.path for p in report.problems), report.format()


@pytest.mark.slow
def test_the_regime_params_sweep_with_m(tmp_path):
    from tests.helpers.sweep import SMALL_MARKET, job_outcomes, read_json, run_sweep
    # the sample book: a daily regime whose params sweep, two strategies reported in each job
    proc = run_sweep(["book=trend_reversion", "regime.params.fast=2,4", *SMALL_MARKET], tmp_path, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = job_outcomes(tmp_path)
    assert list(outcomes.values()) == ["ok", "ok"]
    results = [read_json(tmp_path / job / "results.json") for job in outcomes]
    assert sorted(r["run"]["config"]["regime"]["params"]["fast"] for r in results) == [2, 4]
    assert {r["run"]["config"]["regime"]["file"] for r in results} == {"regime_daily.yaml"}
    assert all(set(r["strategies"]) == {"trend", "reversion"} for r in results)


# -- item 1: several timeframes ------------------------------------------------------------------

DAY_MS = 86_400_000


def _daily_from_files(market, folder):
    """The market's days as an exchange's daily candles, aggregated by pandas (not by the engine),
    written as 1d files and loaded back through the file loader, products as in ``market``."""
    import dataclasses

    import pandas as pd

    from engine.market.loaders import load_market as load_files
    from tests.helpers.market import write_rows

    for j, sym in enumerate(market.symbols):
        f = pd.DataFrame({"open": market.open[:, j], "high": market.high[:, j], "low": market.low[:, j],
                          "close": market.close[:, j], "volume": market.volume[:, j]},
                         index=pd.to_datetime(market.times, unit="ms", utc=True)).dropna(subset=["close"])
        d = f.resample("1D").agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        d = d.dropna(subset=["close"])
        rows = [[int(ts.value // 1_000_000), *map(float, r)] for ts, r in zip(d.index, d.to_numpy())]
        write_rows(folder, sym, rows, "parquet", "1d")
    daily = load_files("parquet", folder, "1d").select(list(market.symbols))
    return dataclasses.replace(daily, info=market.info, _hash=None)


def _closed_day(market):
    """Per hourly bar, the row of the last UTC day that has closed (its close at or before the bar's)."""
    return (market.times + 3_600_000) // DAY_MS - 1 - market.times[0] // DAY_MS


def _series(src, market, kind="universe"):
    from engine.cycle.features import market_series
    from engine.cycle.prepare import _Timeframes
    from engine.rules.expr import FeatureStore
    from tests.helpers.rules import compile_rule
    store = FeatureStore(market_series(market), (market.n_bars, market.n_symbols),
                         coarser=_Timeframes(market).market_store)
    return np.asarray(compile_rule(src, kind, want=None).series(store), dtype=np.float64)


def test_on_1d_equals_the_rule_on_separately_loaded_daily_bars(tmp_path):
    market = sample_market(30, 24 * 40)
    daily = _daily_from_files(market, tmp_path / "daily")
    assert daily.n_bars == 40
    day = _closed_day(market)
    assert (day[:23] == -1).all() and day[23] == 0  # the first day is readable once its last hour closed
    seen = day >= 0
    # prices are picked, not summed: bit-identical
    for src in ("sma(close, 5)", "rsi(close, 7)", "atr(high, low, close, 3)", "rolling_max(high, 4) - low",
                "pct_change(close, 2) * 100", "bars_listed", "open"):
        hourly = _series(f'on("1d", {src})', market)
        np.testing.assert_array_equal(hourly[seen], _series(src, daily)[day[seen]], err_msg=src)
        assert np.isnan(hourly[~seen]).all(), src
    # a day's volume is a sum of 24 hours: pandas adds them in another order (last bit only)
    hourly = _series('on("1d", volume_usd)', market)
    np.testing.assert_allclose(hourly[seen], _series("volume_usd", daily)[day[seen]], rtol=1e-14)


def test_a_regime_file_on_1d_equals_the_regime_on_daily_bars(tmp_path):
    from engine.cycle.prepare import prepare as prep
    rules_dir = edit_rule_file(tmp_path, "regime.yaml", "kind: regime\n", "kind: regime\ntimeframe: 1d\n")
    small = {"regime": {"fast": 3, "slow": 8, "vol_window": 5, "high_vol": 1.5}}
    market = sample_market(30, 24 * 40)
    daily = _daily_from_files(market, tmp_path / "daily")
    hourly_run = prep(market, load_shipped(rules_dir, params=small))
    daily_run = prep(daily, load_shipped(SHIPPED_RULES, params=small))
    day = _closed_day(market)
    seen = day >= 0
    got = np.array(hourly_run.regime_labels)[hourly_run.regime_idx]
    want = np.array(daily_run.regime_labels)[daily_run.regime_idx]
    assert (got[seen] == want[day[seen]]).all()
    assert len(set(want[8:])) > 1, "the regime should change over the days for the test to mean something"
    # a daily regime changes only at the hour a day closes
    changes = np.flatnonzero(got[1:] != got[:-1]) + 1
    assert changes.size and ((market.times[changes] + 3_600_000) % DAY_MS == 0).all()


def test_a_strategy_reads_a_daily_trend_on_hourly_bars(tmp_path):
    rules_dir = edit_rule_file(tmp_path, S, "when: crossover(sma(close, params.fast), sma(close, params.slow))",
                               'when: crossover(sma(close, params.fast), sma(close, params.slow)) and '
                               'on("1d", close > sma(close, 5))')
    rs = load_shipped(rules_dir, params={"strategy": {"fast": 5, "slow": 20}})
    market = sample_market(30, 24 * 40)
    p = prepare(market, rs)
    trend = _series('on("1d", close > sma(close, 5))', market) > 0
    assert p.entries.combined.any()
    assert not (p.entries.combined & ~trend).any()


def test_on_reads_nothing_of_a_day_that_has_not_closed():
    market = sample_market(30, 24 * 10)
    full = _series('on("1d", close)', market)
    # cut the data in the middle of day 5: every value read before the cut is unchanged
    cut = market.select(stop=24 * 5 + 7)
    part = _series('on("1d", close)', cut)
    np.testing.assert_array_equal(part, full[: cut.n_bars])


def test_the_lookahead_proof_covers_a_daily_regime_and_on(tmp_path, monkeypatch):
    from engine.market import coarse
    from engine.modes.lookahead import analyze
    from tests.helpers.backtest import prepared_run
    rules_dir = edit_rule_file(tmp_path, S, "when: crossover(sma(close, params.fast), sma(close, params.slow))",
                               'when: crossover(sma(close, params.fast), sma(close, params.slow)) and '
                               'on("1d", close > sma(close, 3))')
    p, s = prepared_run((f"rules_dir={rules_dir}", "regime=daily", "strategy.params.fast=5",
                         "strategy.params.slow=20"), n_bars=24 * 30)
    assert p.rules.regime.timeframe == "1d"
    changes, cuts = analyze(p.market, p.rules, s, points=6)
    assert len(cuts) == 6 and changes == []

    # the same proof catches a day read before it has closed (the day in progress)
    real = coarse.resample

    def peeking(market, timeframe):
        c = real(market, timeframe)
        return coarse.Coarse(c.market, np.minimum(c.closed + 1, c.market.n_bars - 1))
    monkeypatch.setattr("engine.cycle.prepare.resample", peeking)
    changes, _ = analyze(p.market, p.rules, s, points=6)
    assert {c.stage for c in changes} >= {"regime", "entry"}, changes


def test_on_a_timeframe_not_coarser_than_the_data_names_the_rule_when_the_market_is_known(tmp_path):
    from engine.rules.errors import RuleError
    rules_dir = edit_rule_file(tmp_path, S, "when: crossunder(sma(close, params.fast), sma(close, params.slow))",
                               'when: crossunder(sma(close, params.fast), sma(close, params.slow)) or on("1h", close < 1)')
    rs = load_shipped(rules_dir)  # the data's timeframe is not known when the file loads
    with pytest.raises(RuleError) as info:
        prepare(sample_market(30, 24 * 5), rs)
    err = info.value
    assert err.where.file == f"rules/{S}" and err.where.rule == "death_cross", str(err)
    assert (err.line, err.col) == (1, 68), str(err)  # the timeframe literal
    assert "on() cannot read 1h bars: timeframe 1h is not a whole multiple, above 1, of the data's 1h bars" in str(err)
    assert "a timeframe coarser than the data's" in err.expected
