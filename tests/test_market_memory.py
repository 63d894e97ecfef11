"""A run that would not fit in memory is refused before anything is allocated, with the
estimate and the setting that changes the limit (data.max_memory_gib)."""
from __future__ import annotations

import pytest

from engine.market import memory
from engine.market.loaders import load_market
from engine.market.memory import GIB, MemoryNeedError, estimate_bytes, need
from tests.helpers.market import T0_MS, csv_text, good_rows, write_text
from tests.helpers.runs import run_cli

YEAR_5000_MS = 95_617_584_000_000  # 5000-01-01T00:00:00Z


def _year_5000_dir(folder):
    """19 good hourly bars, then one stray row dated 5000-01-01: a 26-million-bar grid."""
    rows = good_rows(19) + [[YEAR_5000_MS, 100.0, 101.0, 99.0, 100.0, 10.0]]
    write_text(folder, "BTC_USDC-1h.csv", csv_text(rows))
    return folder


def test_the_estimate_grows_with_bars_and_with_symbol_bars():
    base = estimate_bytes(0, 0)
    assert estimate_bytes(1000, 0) - base == 1000 * memory.BYTES_PER_BAR
    assert estimate_bytes(1000, 10) - estimate_bytes(1000, 0) == 10_000 * memory.BYTES_PER_SYMBOL_BAR


def test_the_budget_is_the_setting_when_set_and_the_machine_otherwise(monkeypatch):
    assert need(10, 10, "1h", 2.5).budget_bytes == int(2.5 * GIB)
    monkeypatch.setattr(memory, "available_bytes", lambda: 3 * GIB)
    m = need(10, 10, "1h", None)
    assert m.budget_bytes == 3 * GIB and "data.max_memory_gib" in m.budget_from


def test_a_stray_row_in_the_year_5000_is_refused_before_the_grid_is_built(tmp_path, monkeypatch):
    import numpy as np

    def no_allocation(*a, **k):  # align's first allocation: the refusal must come before it
        raise AssertionError("the grid was allocated")

    folder = _year_5000_dir(tmp_path / "csv")
    monkeypatch.setattr(np, "arange", no_allocation)
    with pytest.raises(MemoryNeedError) as err:
        load_market("csv", folder, "1h", max_memory_gib=4)
    msg = str(err.value)
    assert "26,087,089 1h bars x 1 symbols need about 18.8 GiB, expected at most 4.0 GiB" in msg
    assert msg.startswith("the data runs from 2024-01-01T00:00:00Z (BTC_USDC-1h.csv) to 5000-01-01T00:00:00Z")
    assert "data.max_memory_gib=4" in msg


def test_data_that_fits_still_loads(tmp_path):
    folder = write_text(tmp_path / "csv", "BTC_USDC-1h.csv", csv_text(good_rows(30, T0_MS))).parent
    assert load_market("csv", folder, "1h", max_memory_gib=1).n_bars == 30


def test_the_run_refuses_the_stray_row_with_one_line_and_exit_2(tmp_path):
    folder = _year_5000_dir(tmp_path / "csv")
    out = run_cli(["data=csv", f"data.path={folder}", "data.max_memory_gib=4", f"hydra.run.dir={tmp_path}/out"])
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr + out.stdout
    assert "need about 18.8 GiB, expected at most 4.0 GiB (data.max_memory_gib=4)" in out.stderr + out.stdout


def test_validate_refuses_a_sample_market_that_cannot_fit(tmp_path):
    out = run_cli(["mode=validate", "data.sample.n_bars=10000000", "data.sample.n_symbols=2000",
                   "data.max_memory_gib=16", f"hydra.run.dir={tmp_path}/out"])
    text = out.stdout + out.stderr
    assert out.returncode == 2 and "Traceback" not in text
    assert "[sanity.sample_exceeds_memory] data.sample" in text
    assert "10000000 bars x 2000 symbols, about 4773.3 GiB" in text and "at most 16 GiB" in text


def test_validate_passes_the_default_sample_under_a_small_limit(tmp_path):
    out = run_cli(["mode=validate", "data.max_memory_gib=1", f"hydra.run.dir={tmp_path}/out"])
    assert out.returncode == 0, out.stdout + out.stderr
