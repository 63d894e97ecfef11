"""The sweep summary: rows, swept parameters, best marks, failed jobs, and the Hydra callback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from engine.report.errors import ReportError
from engine.report.outputs import write_run_outputs
from engine.report.options import ReportOptions
from engine.report.sweep import SweepReportCallback, main, parse_override, summarise, write_sweep_report
from tests.helpers.results import make_results, make_sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def sweep(tmp_path):
    return make_sweep(tmp_path / "sweep")


def test_summary_rows_params_and_failures(sweep):
    s = summarise(sweep)
    assert s["n_runs"] == 7 and s["n_failed"] == 1
    assert [r["id"] for r in s["runs"]] == [str(i) for i in range(7)]
    assert s["params"] == ["strategy.params.threshold", "universe.params.top"]  # mode= never varies
    failed = s["runs"][-1]
    assert failed["status"] == "failed" and "rules/risk.yaml" in failed["error"] and failed["report"] is None
    assert s["runs"][0]["report"] == "0/report.html" and s["runs"][0]["params"]["universe.params.top"] == 5


def test_a_run_that_warns_is_marked_in_the_sweep(tmp_path):
    from engine.report.sweep import sweep_context
    from engine.report.render import render

    root = tmp_path / "sweep"
    for k, diags in enumerate(([], [{"code": "empty_universe", "message": "the universe was empty <on every bar>"}])):
        r = make_results(n_bars=120, n_symbols=3, n_trades=4, seed=k)
        r["run"]["overrides"] = [f"universe.params.min_volume_usd={10 ** (6 + 9 * k)}"]
        r["diagnostics"] = diags
        write_run_outputs(root / str(k), r, options=ReportOptions(csv=False))
    s = summarise(root)
    assert [r["warnings"] for r in s["runs"]] == [[], [{"code": "empty_universe",
                                                         "message": "the universe was empty <on every bar>"}]]
    html = render("sweep.html.j2", sweep_context(s))
    assert html.count("⚠ empty_universe") == 1
    assert "empty_universe: the universe was empty &lt;on every bar&gt;" in html


def test_best_run_per_metric_follows_its_direction(sweep):
    s = summarise(sweep)
    ok = [r for r in s["runs"] if r["status"] == "ok"]
    best_sharpe = max(ok, key=lambda r: r["metrics"]["sharpe"])
    best_fees = min(ok, key=lambda r: r["metrics"]["fees_paid"])
    best_dd = max(ok, key=lambda r: r["metrics"]["max_drawdown"])  # least negative
    assert s["best"]["sharpe"] == best_sharpe["id"]
    assert s["best"]["fees_paid"] == best_fees["id"]
    assert s["best"]["max_drawdown"] == best_dd["id"]
    assert "n_trades" not in s["best"]  # no direction: never marked


def test_files_are_written_and_deterministic(sweep):
    a = write_sweep_report(sweep)
    first = (a["sweep_json"].read_bytes(), a["sweep_html"].read_bytes())
    b = write_sweep_report(sweep)
    assert (b["sweep_json"].read_bytes(), b["sweep_html"].read_bytes()) == first
    html = a["sweep_html"].read_text()
    assert html.count('href="0/report.html"') == 1 and "★" in html
    assert 'id="metric-pick"' in html and html.count('class="chart scatter"') >= 2
    assert 'id="sweep-table"' in html and "rules/risk.yaml" in html
    assert "http://" not in html and "https://" not in html


def test_overrides_fall_back_to_hydra_overrides_yaml(tmp_path):
    job = tmp_path / "s" / "0"
    r = make_results(n_bars=100, n_trades=3, seed=1)
    del r["run"]["overrides"]
    write_run_outputs(job, r, options=ReportOptions(html=False, csv=False))
    (job / ".hydra").mkdir()
    (job / ".hydra" / "overrides.yaml").write_text("- seed=7\n- exchange.api_key=topsecret\n")
    row = summarise(tmp_path / "s")["runs"][0]
    assert row["params"]["seed"] == 7 and row["report"] is None
    assert "topsecret" not in json.dumps(row)


def test_parse_override_reads_yaml_scalars():
    assert parse_override("a.b=10") == ("a.b", 10)
    assert parse_override("+x=0.5") == ("x", 0.5)
    assert parse_override("s=momentum") == ("s", "momentum")
    assert parse_override("l=[1,2]") == ("l", "[1,2]")
    assert parse_override("nokey") is None


def test_broken_results_json_names_the_file(tmp_path):
    (tmp_path / "s" / "3").mkdir(parents=True)
    (tmp_path / "s" / "3" / "results.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"s/3/results.json: cannot read JSON"):
        summarise(tmp_path / "s")


def test_callback_and_cli(sweep, tmp_path, caplog):
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    SweepReportCallback().on_multirun_end(cfg)
    assert (sweep / "sweep.json").is_file() and (sweep / "sweep.html").is_file()
    missing = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "nope")}}})
    SweepReportCallback().on_multirun_end(missing)  # logs, never kills the sweep's exit
    assert "sweep report not written" in caplog.text
    assert main([str(sweep)]) == 0 and main([str(tmp_path / "nope")]) == 1


APP = textwrap.dedent('''
    import json
    from pathlib import Path
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from engine.report.outputs import write_run_outputs
    from tests.helpers.results import make_results, make_sweep

    @hydra.main(version_base="1.3", config_path="conf", config_name="config")
    def main(cfg):
        out = Path(HydraConfig.get().runtime.output_dir)
        overrides = list(HydraConfig.get().overrides.task)
        if cfg.n_trades < 0:
            (out / "error.json").write_text(json.dumps({"error": "n_trades must be >= 0", "overrides": overrides}))
            return
        r = make_results(n_bars=200, n_symbols=3, n_trades=cfg.n_trades, seed=cfg.seed)
        r["run"]["overrides"] = overrides
        write_run_outputs(out, r)

    if __name__ == "__main__":
        main()
''')
CONFIG = textwrap.dedent('''
    seed: 0
    n_trades: 5
    hydra:
      callbacks:
        sweep_report:
          _target_: engine.report.sweep.SweepReportCallback
''')


@pytest.mark.slow
def test_real_hydra_multirun_leaves_the_sweep_report(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(CONFIG)
    (tmp_path / "app.py").write_text(APP)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sweep_dir = tmp_path / "multirun"
    proc = subprocess.run([sys.executable, "app.py", "-m", "seed=1,2", "n_trades=4,-1",
                           f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((sweep_dir / "sweep.json").read_text())
    assert data["n_runs"] == 4 and data["n_failed"] == 2
    assert data["params"] == ["n_trades", "seed"]
    ok = [r for r in data["runs"] if r["status"] == "ok"]
    assert all((sweep_dir / r["report"]).is_file() for r in ok)
    assert (sweep_dir / "sweep.html").stat().st_size > 0


def test_callback_masks_the_secret_a_failed_job_printed(tmp_path, monkeypatch):
    monkeypatch.setenv("RB_TEST_SECRET", "sk-live-0123456789")
    root = tmp_path / "s"
    (root / "0").mkdir(parents=True)
    (root / "0" / "error.json").write_text(json.dumps({"error": "auth failed for sk-live-0123456789",
                                                       "overrides": ["seed=1"]}))
    cfg = OmegaConf.create({"exchange": {"api_key_env": "RB_TEST_SECRET"},
                            "hydra": {"sweep": {"dir": str(root)}}})
    SweepReportCallback().on_multirun_end(cfg)
    for name in ("sweep.json", "sweep.html"):
        text = (root / name).read_text()
        assert "sk-live-0123456789" not in text and "auth failed for" in text


def test_two_swept_params_get_a_heatmap_per_metric(sweep):
    from engine.report.sweep import sweep_context

    s = summarise(sweep)
    ctx = sweep_context(s)
    sharpe = next(c for c in ctx["charts"] if c["metric"] == "sharpe")
    h = sharpe["heatmap"]
    assert (h["x"], h["y"]) == ("strategy.params.threshold", "universe.params.top")
    assert h["x_values"] == [0.01, 0.02] and h["y_values"] == [5, 10, 20]
    by_id = {r["id"]: r for r in s["runs"]}
    for y, row in zip(h["y_values"], h["rows"]):
        for x, cell in zip(h["x_values"], row):
            run = by_id[cell["run"]]
            assert run["params"]["universe.params.top"] == y and run["params"]["strategy.params.threshold"] == x
            assert cell["value"] == run["metrics"]["sharpe"]
    # the best cell is green, the worst red
    cells = [c for row in h["rows"] for c in row]
    assert max(cells, key=lambda c: c["value"])["colour"] == "#4ade80"
    assert min(cells, key=lambda c: c["value"])["colour"] == "#f87171"
    html = (write_sweep_report(sweep))["sweep_html"].read_text()
    assert 'id="heatmap-sharpe"' in html and html.count('<table class="heatmap"') == len(ctx["charts"])


def test_one_swept_param_gets_no_heatmap(tmp_path):
    from engine.report.sweep import sweep_context

    ctx = sweep_context(summarise(make_sweep(tmp_path / "s", thresholds=(0.01,), failed=False)))
    assert all(c["heatmap"] is None for c in ctx["charts"])


def test_sweep_reports_the_deflated_sharpe_of_its_best_run(sweep):
    import math

    from engine.report.metrics import bar_returns
    from engine.research.overfit import deflated_sharpe, moments, trial_sharpe_variance

    s = summarise(sweep)
    d = s["deflated_sharpe"]
    assert d["run"] == s["best"]["sharpe"]
    ok = [r for r in s["runs"] if r["status"] == "ok"]
    per_bar = [r["metrics"]["sharpe"] / math.sqrt(365 * 24) for r in ok]
    data = json.loads((sweep / d["run"] / "results.json").read_text())
    r = bar_returns([v for _, v in data["equity"]], data["metrics"]["initial_equity"])
    want = deflated_sharpe(moments(r), len(ok), trial_sharpe_variance(per_bar))
    assert d["dsr"] == want.dsr and d["n_trials"] == 6 and d["sr0"] > 0
    # the best run's own per-bar Sharpe is what was ranked
    assert d["sharpe"] == pytest.approx(next(x for x, q in zip(per_bar, ok) if q["id"] == d["run"]), rel=1e-9)
    assert 'id="sweep-dsr"' in write_sweep_report(sweep)["sweep_html"].read_text()
