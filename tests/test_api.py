"""The Python API (engine/api.py): docs/api.md's worked example runs, and what it returns."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pandas as pd
import pytest

from engine.errors import UserError
from engine.paths import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "api.md"


def doc_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/api.md has one worked example"
    return blocks[0]


@pytest.mark.slow
def test_the_documented_example_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RULEBOOK_PROJECT", str(tmp_path))  # outputs and caches in the test's folder
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(doc_example(), str(DOC), "exec"), scope)
    result, sweep, why = scope["result"], scope["sweep"], scope["why"]
    # pandas objects that agree with the files the run wrote
    assert isinstance(result.metrics, pd.Series) and isinstance(result.equity, pd.Series)
    assert isinstance(result.trades, pd.DataFrame) and isinstance(result.fills, pd.DataFrame)
    assert result.out_dir.is_relative_to(tmp_path / "outputs")
    assert {"results.json", "report.html", "trades.csv", "fills.csv", "equity.csv", "trace.npz"} <= set(result.files)
    fills_csv = pd.read_csv(result.files["fills.csv"])
    assert len(fills_csv) == len(result.fills) == result.metrics["n_fills"] > 0
    assert len(pd.read_csv(result.files["trades.csv"])) == len(result.trades)
    assert result.equity.iloc[-1] == pytest.approx(result.metrics["final_equity"], rel=1e-12)
    assert str(result.fills["time"].dtype).startswith("datetime64") and result.equity.index.tz is not None
    assert result.results["run"]["config"]["strategy"]["params"]["fast"] == 24
    # the explanation is about the first fill's symbol and says it was bought
    assert why.startswith(f"{scope['first'].symbol} at ") and "outcome: BUY order sent" in why
    # the sweep: one ok row per value, in this project
    assert sweep.returncode == 0 and sweep.sweep_dir.is_relative_to(tmp_path / "multirun")
    assert list(sweep.table["strategy.params.fast"]) == [12, 24] and set(sweep.table["status"]) == {"ok"}
    assert "sweep.json" in sweep.files and "sweep.html" in sweep.files
    assert "sharpe" in out.getvalue()


def test_a_mistake_raises_the_one_line_message(tmp_path, monkeypatch):
    from engine.api import Backtest, Validate

    monkeypatch.setenv("RULEBOOK_PROJECT", str(tmp_path))
    with pytest.raises(UserError, match=r"strategy.params has no key 'fastt'; did you mean 'fast'\?"):
        Backtest(overrides=["strategy.params.fastt=3"]).run()
    with pytest.raises(UserError, match="sets mode=backtest itself"):
        Backtest(overrides=["mode=live"]).run()
    bad = Validate(overrides=["risk.params.max_positions=0"]).run()
    assert not bad.ok and any("risk.params.max_positions" in p for p in bad.problems)
    # nothing ran, nothing written (Validate read the sample market as mode=validate does: its cache)
    assert [p.name for p in Path(tmp_path).iterdir()] in ([], [".cache"])


def test_validate_migrates_a_renamed_key_with_its_warning(tmp_path, monkeypatch):
    from engine.api import Validate

    monkeypatch.setenv("RULEBOOK_PROJECT", str(tmp_path))
    res = Validate(overrides=["backtest.cash=5000"]).run()
    assert res.ok and any("[deprecated.renamed] backtest.cash" in w for w in res.warnings)
