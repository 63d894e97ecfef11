"""mode=walkforward as a sweep setting: `run.py -m mode=walkforward walkforward.train=a,b` runs a
walk-forward per job, counts each as finished and makes it a row of the sweep report."""
from __future__ import annotations

import json

from engine.report.metrics import HEADLINE
from engine.sweep.callbacks import finished_jobs
from tests.helpers.runs import run_cli

# two walk-forwards on a 1000-bar market, a 2x2 grid each: train 10d (3 folds) and 15d (2 folds)
SWEEP = ["-m", "mode=walkforward", "data.sample.n_symbols=30", "data.sample.n_bars=1000", "walkforward.train=10d,15d",
         "walkforward.test=10d", "walkforward.pbo_blocks=6", "walkforward.grid.strategy.params.fast=[6,12]",
         "walkforward.grid.strategy.params.slow=[48,96]", "report.html=true"]


def test_a_walkforward_job_counts_as_finished(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "walkforward.json").write_text("{}")
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "error.json").write_text("{}")
    (tmp_path / "2").mkdir()  # still running: nothing written yet
    assert finished_jobs(tmp_path) == (2, 1)


def test_a_sweep_over_walkforward_settings_reports_each_walkforward(tmp_path):
    r = run_cli([*SWEEP, f"hydra.sweep.dir={tmp_path}"], env={"RULEBOOK_PROGRESS": "never"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "sweep: 2 jobs finished" in r.stdout  # Hydra logs to stdout
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert (summary["n_runs"], summary["n_failed"], summary["params"]) == (2, 0, ["walkforward.train"])
    folds = []
    for row, train in zip(summary["runs"], ["10d", "15d"]):
        job = json.loads((tmp_path / row["id"] / "walkforward.json").read_text())
        assert row["kind"] == "walkforward" and row["params"]["walkforward.train"] == train
        assert job["walkforward"]["train"] == train
        assert row["metrics"] == {k: job["out_of_sample"]["metrics"].get(k) for k in HEADLINE}
        assert row["statistics"] == {"dsr": job["statistics"]["deflated_sharpe"]["dsr"],
                                     "pbo": job["statistics"]["pbo"]["pbo"]}
        assert row["report"] == f"{row['id']}/walkforward.html" and (tmp_path / row["report"]).is_file()
        assert {w["code"] for w in row["warnings"]} == {w["code"] for w in job["warnings"]}
        folds.append(job["walkforward"]["n_folds"])
    assert folds == [3, 2]
    # the sweep's own deflated Sharpe: the best walk-forward by out-of-sample Sharpe among the 2 tried
    best = summary["best"]["sharpe"]
    assert summary["deflated_sharpe"]["run"] == best and summary["deflated_sharpe"]["n_trials"] == 2
    html = (tmp_path / "sweep.html").read_text()
    assert 'id="walkforward-note"' in html and "<th>Walk-forward DSR</th>" in html
