"""A run that probably did not test what was meant says why: results, log and report."""
from __future__ import annotations

import json

import pytest

from engine.backtest.diagnostics import diagnose
from engine.report.outputs import render_backtest_report
from tests.helpers.results import make_results
from tests.helpers.runs import run_cli


def _results(size_mean=3.0, n_trades=5, **stats):
    rule_stats = {k.replace("__", ":"): {"blocked": b, "passed": p, "clipped": 0} for k, (b, p) in stats.items()}
    return {"rule_stats": rule_stats, "universe": {"rebuilds": 4, "size_mean": size_mean},
            "metrics": {"n_trades": n_trades}}


def codes(found):
    return [d.code for d in found]


def test_a_healthy_run_has_nothing_to_say():
    assert diagnose(_results(entry__golden=(10, 5)), ["BTC/USDC", "ETH/USD", "SOL/USDT"]) == []


def test_empty_universe_names_the_filter_that_blocked_most():
    found = diagnose(_results(size_mean=0.0, n_trades=0, universe__liquid=(900, 0), universe__seasoned=(40, 860)),
                     ["BTC/USDC"])
    assert codes(found) == ["empty_universe"]
    assert "universe filter 'liquid' blocked 100.0% of symbol-bars" in found[0].message


def test_no_trades_names_what_stopped_the_entries():
    found = diagnose(_results(n_trades=0, entry__golden=(500, 68), guard__min_notional=(68, 0),
                              cap__per_theme=(3, 10), veto__knife=(155, 400)), ["BTC/USDC"])
    assert codes(found) == ["no_trades"]
    msg = found[0].message
    assert "entries passed on 68 symbol-bars" in msg
    assert "guard:min_notional blocked 68, cap:per_theme blocked 3" in msg
    assert "veto" not in msg  # vetoes count every symbol-bar, not the orders the entries made


def test_no_trades_without_any_entry_signal():
    found = diagnose(_results(n_trades=0, entry__golden=(500, 0)), ["BTC/USDC"])
    assert found[0].message == "no trade in the whole run; no entry rule passed on any bar."


@pytest.mark.parametrize("symbols, code, needle", [
    (["ADA/BTC", "ETH/BTC"], "non_usd_quote", "amounts of BTC, not US dollars"),
    (["ADA/BTC", "XRP/ETH"], "mixed_quotes", "quoted in BTC, ETH"),
    (["BTC/USDC", "ETH/EUR"], "mixed_quotes", "quoted in EUR, USDC"),
])
def test_quote_currencies(symbols, code, needle):
    found = diagnose(_results(), symbols)
    assert codes(found) == [code] and needle in found[0].message


def test_the_report_shows_the_warnings_first():
    results = make_results(n_bars=200)
    html = render_backtest_report({**results, "diagnostics": [{"code": "no_trades", "message": "no trade <at all>"}]})
    assert html.index('id="diagnostics"') < html.index('id="charts"')
    assert "no trade &lt;at all&gt;" in html
    assert 'id="diagnostics"' not in render_backtest_report({**results, "diagnostics": []})


@pytest.mark.slow
def test_a_run_with_an_impossible_universe_warns_in_log_results_and_report(tmp_path):
    r = run_cli(["data.sample.n_symbols=30", "data.sample.n_bars=600", "universe.params.min_volume_usd=1e15",
                 f"hydra.run.dir={tmp_path}"])
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert [d["code"] for d in results["diagnostics"]] == ["empty_universe"]
    assert "empty_universe: the universe was empty on every bar" in (tmp_path / "run.log").read_text()
    assert "universe filter &#39;liquid&#39;" in (tmp_path / "report.html").read_text()
