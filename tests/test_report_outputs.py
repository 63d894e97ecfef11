"""write_run_outputs: files, determinism, self-containment, size, CSV content, errors."""
from __future__ import annotations

import copy
import csv
import json
import re

import numpy as np
import pytest

from engine.report.charts import downsample_minmax
from engine.report.errors import ReportError
from engine.report.options import ReportOptions
from engine.report.outputs import render_backtest_report, write_run_outputs
from engine.config.secrets import REDACTED as MASK
from tests.helpers.results import make_results


@pytest.fixture(scope="module")
def small():
    return make_results(n_bars=600, n_symbols=6, n_trades=25, seed=11)


def test_writes_every_file_and_returns_paths(tmp_path, small):
    paths = write_run_outputs(tmp_path, small, timing={"elapsed_seconds": 1.25})
    assert set(paths) == {"results_json", "report_html", "trades_csv", "fills_csv", "equity_csv"}
    for p in paths.values():
        assert p.is_file() and p.parent == tmp_path and p.stat().st_size > 0
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp file


def test_results_json_is_byte_deterministic_and_has_no_timing(tmp_path, small):
    a = write_run_outputs(tmp_path / "a", small, timing={"elapsed_seconds": 1.0})
    b = write_run_outputs(tmp_path / "b", copy.deepcopy(small), timing={"elapsed_seconds": 9.0})
    assert a["results_json"].read_bytes() == b["results_json"].read_bytes()
    for key in ("trades_csv", "fills_csv", "equity_csv"):
        assert a[key].read_bytes() == b[key].read_bytes()
    data = json.loads(a["results_json"].read_text())
    assert "timing" not in data and "elapsed" not in a["results_json"].read_text()
    assert list(data) == sorted(data)
    assert data["breakdown"]["per_symbol"]  # filled in from round trips
    # the HTML differs only by the time taken
    ha, hb = a["report_html"].read_text(), b["report_html"].read_text()
    assert ha != hb and ha.replace("1.00 s", "9.00 s") == hb


def test_nan_and_numpy_values_are_written_as_plain_json(tmp_path, small):
    r = copy.deepcopy(small)
    r["metrics"]["sharpe"] = float("nan")
    r["metrics"]["n_trades"] = np.int64(r["metrics"]["n_trades"])
    r["benchmark"]["calmar"] = float("inf")
    path = write_run_outputs(tmp_path, r, options=ReportOptions(html=False, csv=False))["results_json"]
    data = json.loads(path.read_text())
    assert data["metrics"]["sharpe"] is None and data["benchmark"]["calmar"] is None
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_secrets_never_reach_results_or_report(tmp_path, small):
    r = copy.deepcopy(small)
    r["run"]["config"]["exchange"]["api_secret"] = "s3cr3t-value"
    r["run"]["overrides"].append("exchange.api_key=AKIA-very-secret")
    paths = write_run_outputs(tmp_path, r)
    for p in (paths["results_json"], paths["report_html"]):
        text = p.read_text()
        assert "s3cr3t-value" not in text and "AKIA-very-secret" not in text
        assert MASK in text
        assert "COINBASE_API_KEY" in text  # naming the env var is fine
    run = json.loads(paths["results_json"].read_text())["run"]
    assert run["config"]["exchange"]["api_secret"] == MASK and "exchange.api_key=" + MASK in run["overrides"]


def test_report_is_self_contained(small):
    html = render_backtest_report(small, {"elapsed_seconds": 2.0})
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert not re.search(r"@import|url\((?!#)", html)
    assert "<script src" not in html and "<link rel=\"stylesheet\"" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_report_shows_what_the_issue_asks_for(small):
    html = render_backtest_report(small, {"elapsed_seconds": 2.5})
    for text in ("Final equity", "CAGR", "Sortino", "Calmar", "Drawdown peak", "Profit factor", "Expectancy",
                 "Avg holding", "Exposure", "Turnover (ann.)", "Fees paid", "Slippage cost", "Buy &amp; hold",
                 'id="chart-equity"', 'id="chart-drawdown"', 'id="chart-exposure"', 'class="band"',
                 'class="heat"', 'id="trades-table"', 'id="symbol-table"', 'id="theme-table"', 'id="rules-table"',
                 "Universe rebuilds", small["run"]["data_hash"], small["run"]["config_hash"], "universe.params.top=10",
                 "2.50 s", "Metric definitions", "strategies/momentum.yaml:breakout"):
        assert text in html, text
    # every round trip is a row of the trades table
    table = html.split('id="trades-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == len(small["round_trips"]) + 1


def test_table_rows_are_capped_but_csv_keeps_everything(tmp_path, small):
    paths = write_run_outputs(tmp_path, small, options=ReportOptions(max_table_rows=5))
    html = paths["report_html"].read_text()
    assert "The first 5 are shown" in html
    with paths["trades_csv"].open() as fh:
        assert len(list(csv.DictReader(fh))) == len(small["round_trips"])


def test_csv_contents(tmp_path, small):
    paths = write_run_outputs(tmp_path, small)
    rows = list(csv.DictReader(paths["equity_csv"].open()))
    assert len(rows) == len(small["equity"])
    assert rows[0]["time"] == small["equity"][0][0]
    assert float(rows[-1]["equity"]) == small["equity"][-1][1]
    assert float(rows[-1]["benchmark_equity"]) == small["benchmark_equity"][-1][1]
    assert min(float(r["drawdown"]) for r in rows) == pytest.approx(small["metrics"]["max_drawdown"])
    first_regime = small["regimes"][0][2]
    assert rows[0]["regime"] == first_regime
    trades = list(csv.DictReader(paths["trades_csv"].open()))
    assert {t["exit_rule"] for t in trades} >= {"", "risk.yaml:max_holding"}  # open trade: empty exit
    fills = list(csv.DictReader(paths["fills_csv"].open()))
    assert sum(float(f["fee"]) for f in fills) == pytest.approx(small["metrics"]["fees_paid"])


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("equity"), "results has no 'equity'"),
    (lambda r: r.__setitem__("equity", []), "results.equity is empty"),
    (lambda r: r.__setitem__("equity", [["yesterday", 1.0]]), "results.equity: cannot read 'yesterday'"),
    (lambda r: r.__setitem__("exposure", [1, 2]), "results.exposure must be a list of"),
])
def test_bad_results_raise_a_named_error(tmp_path, small, mutate, message):
    r = copy.deepcopy(small)
    mutate(r)
    with pytest.raises(ReportError, match=message):
        write_run_outputs(tmp_path, r)


def test_downsample_keeps_extremes_and_bounds_points():
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=8784))
    y[4321] = 1e3
    y[777] = -1e3
    x = np.arange(y.size)
    xs, ys = downsample_minmax(x, y, 2000)
    assert len(xs) <= 2000 and ys.max() == 1e3 and ys.min() == -1e3
    assert np.all(np.diff(xs) > 0) and xs[0] == 0 and xs[-1] == y.size - 1
    np.testing.assert_array_equal(ys, y[xs])


@pytest.mark.slow
def test_one_year_thirty_symbols_stays_under_two_megabytes(tmp_path):
    r = make_results(n_bars=8784, n_symbols=30, n_trades=600, seed=2)
    paths = write_run_outputs(tmp_path, r, timing={"elapsed_seconds": 30.0})
    size = paths["report_html"].stat().st_size
    assert size < 2_000_000, size
    html = paths["report_html"].read_text()
    assert html.count("<tr>") > 600


def test_minimal_results_without_trades_benchmark_or_regimes(tmp_path):
    """A flat run with nothing optional still leaves every file, with '–' for undefined metrics."""
    import numpy as np

    from engine.report.metrics import compute_metrics
    from engine.report.timeutil import ms_to_iso
    times = 1_704_067_200_000 + np.arange(48, dtype=np.int64) * 3_600_000
    eq = np.full(48, 5_000.0)
    results = {"metrics": compute_metrics(times, eq, None, [], [], "1h", 5_000.0),
               "equity": [[t, 5_000.0] for t in ms_to_iso(times)], "run": {"seed": 1}}
    paths = write_run_outputs(tmp_path, results)
    html = paths["report_html"].read_text()
    assert "Buy &amp; hold" not in html.split('id="metrics-table"')[1].split("</table>")[0]
    assert "no rule statistics recorded" in html and "–" in html
    assert paths["trades_csv"].read_text().count("\n") == 1  # header only
    data = json.loads(paths["results_json"].read_text())
    assert data["metrics"]["sharpe"] is None and data["breakdown"] == {"per_symbol": {}, "per_theme": {}}


def test_value_of_a_named_secret_env_var_is_masked_anywhere(tmp_path, small, monkeypatch):
    """Even a secret that slipped into a free-text field is masked if the config names its variable."""
    monkeypatch.setenv("COINBASE_API_KEY", "organizations/abc/apiKeys/LEAKED-123456")
    r = copy.deepcopy(small)
    r["run"]["overrides"].append("note=organizations/abc/apiKeys/LEAKED-123456")
    paths = write_run_outputs(tmp_path, r)
    for p in (paths["results_json"], paths["report_html"]):
        text = p.read_text()
        assert "LEAKED-123456" not in text
        assert "note=***" in text, p.name  # the field is written, with its value masked


def test_outputs_are_identical_across_processes(tmp_path):
    """Same inputs => byte-identical files, whatever the interpreter's hash seed."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from pathlib import Path; from tests.helpers.results import make_results; "
            "from engine.report.outputs import write_run_outputs; "
            "write_run_outputs(Path(sys.argv[1]), make_results(n_bars=300, n_trades=10, seed=9), {'elapsed_seconds': 1})")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / seed)], check=True, env=env, cwd=root, timeout=60)
    for name in ("results.json", "report.html", "trades.csv", "fills.csv", "equity.csv"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name


@pytest.mark.parametrize("days, expected", [
    (365, ["2024-01", "2024-03", "2024-05", "2024-07", "2024-09", "2024-11"]),
    (90, ["2024-01", "2024-02", "2024-03"]),
    (20, ["01-04", "01-11", "01-18"]),
    (2, ["01-01 06:00", "01-01 12:00", "01-01 18:00", "01-02 00:00"]),
])
def test_time_axis_ticks(days, expected):
    from engine.report.charts import time_ticks
    labels = [label for _t, label in time_ticks(1_704_067_200_000, 1_704_067_200_000 + days * 86_400_000)]
    assert labels[: len(expected)] == expected and 2 <= len(labels) <= 8
