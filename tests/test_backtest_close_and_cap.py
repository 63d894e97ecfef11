"""``backtest.close_at_end`` (close every open position at the last close, fees and slippage as
any sell) and the participation-cap diagnostic (how many fills the cap cut, and by how much)."""
from __future__ import annotations

import dataclasses

import pytest

from engine.backtest.diagnostics import diagnose
from engine.backtest.engine import run_backtest
from engine.sim.costs import SlippageModel
from engine.sim.results import build_results
from tests.helpers.backtest import candle_market, flat_fees, make_broker, order, portfolio, prepared_run

BAR = (100.0, 101.0, 99.0, 100.0, 1000.0)


def test_close_out_sells_at_the_last_close_with_taker_fee_and_slippage():
    market = candle_market([BAR, (100.0, 103.0, 98.0, 102.0, 1000.0)], spread_bps=20.0)
    pf = portfolio(qty=3.0, entry_price=90.0)
    broker = make_broker(market, fees=flat_fees(40, 80), slippage=SlippageModel("spread_impact", impact_coef=0.0))
    (f,) = broker.close_out(1, pf)
    assert (f.side, f.qty, f.rule) == ("sell", 3.0, "close_at_end")
    assert f.price == pytest.approx(102.0 * (1 - 10 / 1e4), abs=1e-12)  # the close less half the spread
    assert f.fee == pytest.approx(3 * f.price * 0.008, abs=1e-12)
    assert pf.qty[0] == 0.0 and pf.cash == pytest.approx(10_000 + 3 * f.price - f.fee, abs=1e-9)
    assert broker.fills == [f]


def test_close_out_skips_a_missing_last_bar_and_flat_symbols():
    nan = float("nan")
    market = candle_market([BAR, (nan, nan, nan, nan, nan)])
    pf = portfolio(qty=1.0, entry_price=100.0)
    assert make_broker(market).close_out(1, pf) == [] and pf.qty[0] == 1.0
    assert make_broker(candle_market([BAR, BAR])).close_out(1, portfolio()) == []


def test_a_run_with_close_at_end_ends_flat_and_pays_for_it():
    p, s = prepared_run(("backtest.close_at_end=false",), n_symbols=30, n_bars=24 * 60)
    # end the window five bars after an entry held longer than that: the run ends in a position
    fills = run_backtest(p, s).fills
    sold = {}
    for f in fills:
        if f.side == "sell":
            sold.setdefault((f.symbol_idx), []).append(f.t)
    entry = next(f for f in fills if f.side == "buy" and min(
        [t for t in sold.get(f.symbol_idx, []) if t > f.t] or [10**9]) > f.t + 6)
    s = dataclasses.replace(s, stop=entry.t + 6)
    open_run = run_backtest(p, s)
    held = (open_run.portfolio.qty > 0).nonzero()[0]
    assert held.size
    p, s2 = prepared_run(("backtest.close_at_end=true",), n_symbols=30, n_bars=24 * 60)
    s2 = dataclasses.replace(s2, stop=s.stop)
    assert s2.close_at_end and not s.close_at_end
    closed = run_backtest(p, s2)
    assert not (closed.portfolio.qty > 0).any()
    last = [f for f in closed.fills if f.rule == "close_at_end"]
    assert sorted(f.symbol_idx for f in last) == held.tolist()
    assert {f.t for f in last} == {s2.stop - 1}
    assert closed.fills[:-len(last)] == open_run.fills  # nothing before the last bar changes
    # the last equity is the cash after the close-out: the marked equity less fees and slippage
    cost = sum(f.fee + f.slippage for f in last)
    assert closed.equity[-1] == pytest.approx(open_run.equity[-1] - cost, rel=1e-12)
    assert closed.equity[-1] == closed.portfolio.cash
    trips = build_results(closed, {})["round_trips"]
    assert all(t["exit_rule"] is not None for t in trips)


def test_the_cap_counts_the_fills_it_cut():
    market = candle_market([BAR, (100.0, 101, 99, 100, 50.0)])
    broker = make_broker(market, max_participation=0.1)
    broker.execute(order(buy=10.0), 1, portfolio())
    broker.execute(order(buy=2.0), 1, portfolio())  # under the cap: not cut
    c = broker.cuts.as_dict(0.1)
    assert (c["orders"], c["cut"]) == (2, 1)
    assert c["wanted_notional"] == 1000.0 and c["cut_notional"] == 500.0
    assert c["cut_share"] == 0.5 and c["max_cut_share"] == 0.5


def test_the_cap_diagnostic_says_how_many_and_how_much():
    part = {"max_participation": 0.1, "orders": 774, "cut": 18, "wanted_notional": 2000.0,
            "cut_notional": 500.0, "cut_share": 0.25, "max_cut_share": 0.6}
    (d,) = diagnose({"metrics": {"n_trades": 5}, "universe": {"size_mean": 3}, "participation": part}, ["BTC/USDC"])
    assert d.code == "participation_cap"
    assert "cut 18 of 774 fills: 25.0% of their notional (500.00 of 2000.00), up to 60.0% of one order" in d.message
    assert diagnose({"metrics": {"n_trades": 5}, "universe": {"size_mean": 3},
                     "participation": {**part, "cut": 0}}, ["BTC/USDC"]) == []


def test_a_tight_cap_reaches_results_and_diagnostics():
    p, s = prepared_run(("backtest.max_participation=0.0001",), n_symbols=30, n_bars=24 * 60)
    results = build_results(run_backtest(p, s), {})
    part = results["participation"]
    assert part["cut"] > 0 and part["orders"] >= part["cut"] and 0 < part["cut_share"] <= 1
    assert "participation_cap" in [d.code for d in diagnose(results, p.market.symbols)]


@pytest.mark.slow
def test_a_binding_cap_warns_in_log_results_and_report(tmp_path):
    import json

    from tests.helpers.runs import run_cli

    r = run_cli(["data.sample.n_symbols=30", "data.sample.n_bars=1500", "backtest.max_participation=0.0001",
                 f"hydra.run.dir={tmp_path}"])
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    (d,) = [d for d in results["diagnostics"] if d["code"] == "participation_cap"]
    cut = results["participation"]["cut"]
    assert cut > 0 and f"cut {cut} of {results['participation']['orders']} fills" in d["message"]
    assert "participation_cap: the volume participation cap" in (tmp_path / "run.log").read_text()
    assert "the volume participation cap (backtest.max_participation = 0.0001)" in (tmp_path / "report.html").read_text()
