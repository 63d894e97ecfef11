"""CI check of the committed baselines: any change in trading behaviour shows here."""
from __future__ import annotations

import json
import shutil

import pytest

from engine.modes import baseline
from engine.paths import PROJECT_ROOT

COMMITTED = sorted(p.stem for p in (PROJECT_ROOT / "baselines").glob("*.json"))


def test_two_baselines_committed_one_per_strategy():
    assert {"sma_cross", "momentum"} <= set(COMMITTED)


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_baseline_matches(name):
    diffs = baseline.check(name)
    assert diffs == [], "\n".join(map(str, diffs))


def test_check_reports_every_difference(tmp_path, capsys):
    shutil.copy(PROJECT_ROOT / "baselines" / "sma_cross.json", tmp_path / "b.json")
    data = json.loads((tmp_path / "b.json").read_text())
    data["trades"][3]["price"] += 1e-9  # trades match exactly: a tiny change is a difference
    data["metrics"]["sharpe"] *= 1 + 1e-12  # metrics within tolerance: not a difference
    data["metrics"]["n_trades"] += 1
    data["trades"].append(dict(data["trades"][0]))
    (tmp_path / "b.json").write_text(json.dumps(data))
    code = baseline.main(["check", "--name", "b", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "trades[3].price: baseline" in out
    assert "metrics.n_trades" in out and "metrics.sharpe" not in out
    assert f"trades[{len(data['trades']) - 1}]: baseline" in out and "trades.count" in out


def test_write_then_check_roundtrip(tmp_path):
    ov = ["data.sample.n_symbols=30", "data.sample.n_bars=1500", "strategy=sma_cross"]
    path = baseline.write("small", ov, tmp_path)
    first = path.read_bytes()
    assert baseline.check("small", directory=tmp_path) == []
    baseline.write("small", ov, tmp_path)
    assert path.read_bytes() == first  # deterministic: byte-identical baseline


def test_missing_baseline_is_a_clear_error(tmp_path, capsys):
    assert baseline.main(["check", "--name", "nope", "--dir", str(tmp_path)]) == 2
    assert "no baseline" in capsys.readouterr().err
