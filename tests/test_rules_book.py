"""Several strategies in one book (issue 17, item 2): one account and one set of risk caps, each
fill attributed to its strategy, per-strategy equity and metrics, allocations fixed or by inverse
volatility, explain naming the strategy, the sample book passing the lookahead proof."""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from engine.backtest.engine import run_backtest
from engine.cycle.decide import Quotes, book_shares, decide
from engine.cycle.plan import HaltState, cycle_plan
from engine.cycle.portfolio import Portfolio
from engine.rules.errors import RuleError
from engine.sim.results import build_results
from tests.helpers.backtest import prepared_run, results_json, run_both

BOOK = ("book=trend_reversion",)
INVERSE_VOL = ("book=trend_reversion", "book.allocation=inverse_vol", "~book.strategies.trend.weight",
               "~book.strategies.reversion.weight")


@functools.lru_cache(maxsize=None)
def _run(overrides: tuple[str, ...] = BOOK, n_bars: int = 24 * 90):
    p, s = prepared_run(overrides, n_symbols=40, n_bars=n_bars)
    res = run_backtest(p, s)
    return p, s, res, build_results(res, {})


def test_the_sample_book_runs_both_strategies_over_a_daily_regime():
    p, _, res, results = _run()
    assert p.rules.regime.timeframe == "1d"
    assert [sl.name for sl in p.rules.book.sleeves] == ["trend", "reversion"]
    assert [sl.weight for sl in p.rules.book.sleeves] == [0.6, 0.4]
    assert {f["strategy"] for f in results["trades"]} == {"trend", "reversion"}
    assert set(results["strategies"]) == {"trend", "reversion"}


def test_each_fill_is_attributed_to_the_strategy_that_holds_the_position():
    _, _, _, results = _run()
    owner: dict[str, str] = {}
    for f in results["trades"]:
        if f["side"] == "buy":
            assert f["rule"].split(".")[0] == f["strategy"], f
            owner[f["symbol"]] = f["strategy"]
        else:
            assert f["strategy"] == owner[f["symbol"]], f
            # a position closes on its own strategy's exits (or a halt / an exit under way)
            assert f["rule"] in ("",) or f["rule"].startswith("halt:") or f["rule"].split(".")[0] == f["strategy"], f


def test_the_strategies_profits_add_up_to_the_books():
    _, s, _, results = _run()
    parts = results["strategies"]
    assert sum(v["share"] for v in parts.values()) == pytest.approx(1.0)
    for k, (t, eq) in enumerate(results["equity"]):
        total = sum(v["equity"][k][1] - v["share"] * s.initial_cash for v in parts.values())
        assert total == pytest.approx(eq - s.initial_cash, rel=1e-9, abs=1e-6), t
    for name, v in parts.items():
        assert v["metrics"]["initial_equity"] == pytest.approx(v["share"] * s.initial_cash)
        assert v["n_fills"] == sum(f["strategy"] == name for f in results["trades"])


def test_a_book_gives_the_same_results_on_the_fast_path():
    p, s = prepared_run(BOOK, n_symbols=40, n_bars=24 * 60)
    slow, fast = run_both(p, s)
    assert results_json(slow) == results_json(fast)


def _entry_bar(p, name: str) -> tuple[int, np.ndarray]:
    """A bar where an entry rule of strategy ``name`` fires for a buyable symbol, and those symbols."""
    plan = cycle_plan(p)
    k = [sl.name for sl in p.book.sleeves].index(name)
    others = [j for j in range(len(p.book.sleeves)) if j != k]
    for t in range(p.market.n_bars // 2, p.market.n_bars - 1):
        mine = plan.buyable[t] & p.book.sleeves[k].entries.combined[t]
        for j in others:
            mine &= ~p.book.sleeves[j].entries.combined[t]
        if mine.any():
            return t, np.flatnonzero(mine)
    raise AssertionError(f"no entry of {name}")


def _holding_portfolio(p, t: int, owner_rule: str, symbols: np.ndarray, weight: float) -> Portfolio:
    """An account of 100,000 holding ``weight`` of its equity in ``symbols``, opened by ``owner_rule``."""
    n = p.market.n_symbols
    close = np.nan_to_num(p.close[t], nan=1.0)
    pf = Portfolio.empty(n, 100_000.0)
    per = 100_000.0 * weight / len(symbols)
    pf.qty[symbols] = per / close[symbols]
    pf.entry_price[symbols] = close[symbols]
    pf.entry_bar[symbols] = t - 1
    for i in symbols.tolist():
        pf.entry_rule[i] = owner_rule
    pf.cash = 100_000.0 - per * len(symbols)
    pf.mark(close, 0)
    return pf


def test_a_strategy_buys_within_its_share_of_the_account():
    p, _ = prepared_run(BOOK + ("book.strategies.trend.params.weight=1.0", "risk=aggressive",
                                "risk.params.max_position_weight=1.0", "risk.params.max_total_exposure=1.0",
                                "risk.params.theme_caps={default:1.0,meme:1.0}"), n_symbols=40, n_bars=24 * 90)
    t, cands = _entry_bar(p, "trend")
    # the trend strategy already holds 55% of equity in symbols that are not candidates
    spare = np.setdiff1d(np.flatnonzero(~np.isnan(p.close[t])), cands)[:3]
    pf = _holding_portfolio(p, t, "trend.golden_cross", spare, 0.55)
    close = np.nan_to_num(p.close[t], nan=1.0)
    d, _ = decide(cycle_plan(p), t, pf, Quotes(close, np.zeros(len(close)), np.zeros(len(close)),
                                               np.full(len(close), 1e12)), HaltState())
    bought = d.buy_qty * close / pf.equity
    assert bought.sum() == pytest.approx(0.05, abs=1e-6)  # 60% share - 55% held
    assert d.clipped["book.trend"][cands].any()
    assert all(d.entry_rule[i].startswith("trend.") for i in np.flatnonzero(d.buy_qty))


def test_a_position_closes_only_on_the_exits_of_its_own_strategy():
    p, _ = prepared_run(BOOK, n_symbols=40, n_bars=24 * 90)
    trend = p.book.sleeves[0]
    reversion = p.book.sleeves[1]
    # a bar where trend's death_cross holds for a symbol and no reversion exit does
    series = {s.rule.id: s.mask for s in trend.exits.series}
    rev = reversion.exits.combined
    hits = np.argwhere(series["trend.death_cross"] & ~rev & ~np.isnan(p.close))
    t, i = (int(x) for x in hits[len(hits) // 2])
    close = np.nan_to_num(p.close[t], nan=1.0)
    q = Quotes(close, np.zeros(len(close)), np.zeros(len(close)), np.full(len(close), 1e12))
    for rule, sells in (("trend.golden_cross", True), ("reversion.dip_in_uptrend", False)):
        pf = _holding_portfolio(p, t, rule, np.array([i]), 0.05)
        pf.entry_price[i] = close[i]  # no stop loss
        d, _ = decide(cycle_plan(p), t, pf, q, HaltState())
        assert bool(d.sell_qty[i] > 0) is sells, rule
        if sells:
            assert d.exit_rule[i] == "trend.death_cross"


def test_inverse_volatility_shares_follow_what_each_strategy_holds():
    p, _ = prepared_run(INVERSE_VOL, n_symbols=40, n_bars=24 * 60)
    assert p.book.allocation == "inverse_vol"
    t = p.market.n_bars - 2
    vol = p.book.vol[t]
    ok = np.flatnonzero(np.isfinite(vol) & (vol > 0))
    a, b = ok[np.argmin(vol[ok])], ok[np.argmax(vol[ok])]
    owner = np.full(p.market.n_symbols, -1)
    owner[a], owner[b] = 0, 1  # trend holds the calmest symbol, reversion the wildest
    pf = Portfolio.empty(p.market.n_symbols, 1000.0)
    close = np.nan_to_num(p.close[t], nan=1.0)
    pf.qty[[a, b]] = 10.0 / close[[a, b]]
    shares = book_shares(p.book, pf, close, t, owner, np.ones(p.market.n_symbols, dtype=bool))
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] / shares[1] == pytest.approx(vol[b] / vol[a])
    # nobody holds anything: both read the universe's volatility, an equal split
    flat = book_shares(p.book, Portfolio.empty(p.market.n_symbols, 1000.0), close, t,
                       np.full(p.market.n_symbols, -1), np.ones(p.market.n_symbols, dtype=bool))
    assert flat.tolist() == [0.5, 0.5]


def test_an_inverse_volatility_book_runs_and_reports_per_strategy():
    _, _, _, results = _run(INVERSE_VOL, 24 * 60)
    assert {v["allocation"] for v in results["strategies"].values()} == {"inverse_vol"}
    assert {f["strategy"] for f in results["trades"]} == {"trend", "reversion"}


@pytest.mark.parametrize("overrides, where, message, expected", [
    (("book.strategies.trend.weight=0.7",), "book.strategies", "the strategies' weights add up to 1.1",
     "at most 1"),
    (("book.allocation=inverse_vol",), "book.strategies.trend.weight", "weight is 0.6 under inverse_vol",
     "~book.strategies.trend.weight"),
    (("+book.strategies.trend.params.fastt=3",), f"rules/strategies/sma_cross.yaml", "params.fastt",
     "one of"),
])
def test_a_wrong_book_is_one_precise_error(overrides, where, message, expected):
    with pytest.raises(RuleError) as info:
        prepared_run(BOOK + overrides, n_symbols=30, n_bars=100)
    err = info.value
    assert err.where.file == where and message in str(err), str(err)
    assert expected in (err.expected or ""), str(err)


def test_the_sample_book_passes_the_lookahead_proof():
    from engine.modes.lookahead import analyze
    p, s = prepared_run(BOOK, n_symbols=30, n_bars=24 * 45)
    changes, cuts = analyze(p.market, p.rules, s, points=5)
    assert len(cuts) == 5 and changes == []


def test_explain_names_the_strategy(tmp_path):
    from engine.explain import explain
    from tests.helpers.runs import compose_config
    p, s, res, results = _run()
    results["run"] = {"config": compose_config(list(BOOK))}
    res.trace.save(tmp_path / "trace.npz")
    (tmp_path / "results.json").write_text(json.dumps(results, default=float))
    buy = next(f for f in results["trades"] if f["side"] == "buy" and f["strategy"] == "reversion")
    t = int(np.searchsorted(p.market.times, np.datetime64(buy["time"].rstrip("Z"), "ms").astype(np.int64)))
    decided = np.datetime_as_string(np.datetime64(int(p.market.times[t - 1]), "ms"), unit="m")
    text = explain(tmp_path, buy["symbol"], decided)
    assert "BUY order sent for strategy reversion" in text, text
    assert "book: " in text and "reversion (40% of equity)" in text and "trend (60% of equity)" in text
    assert "reversion.dip_in_uptrend" in text  # the entry rules are listed with their strategy
    # a bar later the symbol is held: by that strategy
    later = np.datetime_as_string(np.datetime64(int(p.market.times[t]), "ms"), unit="m")
    held = explain(tmp_path, buy["symbol"], later)
    assert "(strategy reversion)" in held
    assert "trend.death_cross" in held and "n/a  - the position belongs to strategy reversion" in held


def test_a_protect_block_in_a_books_strategy_is_refused_until_books_apply_them(tmp_path):
    from tests.helpers.rules import create_rules_dir

    strategy = "strategies/sma_cross.yaml"
    text = (create_rules_dir(tmp_path / "base") / strategy).read_text()
    root = create_rules_dir(tmp_path / "rules", {strategy: text + "protect:\n  stop_loss: 0.05\n"})
    with pytest.raises(RuleError) as info:
        prepared_run(BOOK + (f"rules_dir={root}",), n_symbols=30, n_bars=100)
    assert info.value.where.file == strategy and "strategy trend of the book has a protect: block" in str(info.value)
    assert "risk file's protections:" in (info.value.expected or "")
