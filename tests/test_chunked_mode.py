"""``backtest.chunked`` (engine/modes/month_chunks.py): a backtest over the market store read
chunk by chunk writes the in-memory run's results.json and trace.npz; ``auto`` chooses the
chunked path exactly when the whole run would not fit in its memory budget."""
from __future__ import annotations

import json

import pytest

from engine.api import Backtest
from engine.market.sample import generate_sample_market
from tests.helpers.market import small_spec, write_store

# the run's own identity differs by the setting itself; everything else is the same bytes
IDENTITY = ("config", "overrides", "config_hash")


@pytest.fixture(autouse=True)
def nine_day_chunks(monkeypatch):
    """Chunks of 9 days of the store's 30 symbols' hourly bars (a run's default would hold the
    whole test market in one): borders inside months and across them."""
    from engine.modes import month_chunks

    monkeypatch.setattr(month_chunks, "CHUNK_CELLS", 30 * 24 * 9)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    write_store(generate_sample_market(small_spec(n_bars=24 * 75)), root)  # three months and a half
    return root


def _run(store, tmp_path, name: str, *extra: str):
    """(results.json without the run's identity, trace.npz's bytes, whether it ran chunk by chunk)."""
    import logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())
    log = logging.getLogger("engine.modes.backtest")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        res = Backtest(overrides=["data=store", f"data.path={store}", "report.html=false", "report.csv=false", *extra],
                       out_dir=tmp_path / name).run()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    doc = json.loads((res.out_dir / "results.json").read_text())
    for k in IDENTITY:
        doc["run"].pop(k)
    return doc, (res.out_dir / "trace.npz").read_bytes(), any("chunk by chunk (216 bars each)" in m for m in seen)


def test_the_month_path_writes_the_in_memory_results(store, tmp_path):
    whole, whole_trace, by_month = _run(store, tmp_path, "whole", "backtest.chunked=false")
    months, months_trace, by_month2 = _run(store, tmp_path, "months", "backtest.chunked=true")
    assert by_month2 and not by_month
    assert whole["trades"] and json.dumps(months, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert months_trace == whole_trace
    # a window inside the data: the months before it are read for their look-back only
    w = ("backtest.start=2024-02-10", "backtest.end=2024-03-05")
    assert _run(store, tmp_path, "w1", "backtest.chunked=true", *w)[0] == _run(store, tmp_path, "w0", *w)[0]


def test_auto_reads_month_by_month_only_what_would_not_fit(store, tmp_path):
    small, _, by_month = _run(store, tmp_path, "fits")
    assert not by_month
    tight, _, by_month = _run(store, tmp_path, "tight", "data.max_memory_gib=0.1")  # the whole run: ~0.15 GiB
    assert by_month and tight == small | {"run": tight["run"]}
    assert tight["run"]["data_hash"] == small["run"]["data_hash"]


def test_validate_places_the_window_in_the_store_it_would_read_month_by_month(store):
    from engine.api import Validate
    tight = ["data=store", f"data.path={store}", "data.max_memory_gib=0.1"]
    assert Validate(overrides=tight, as_mode="backtest").run().ok  # auto: chunk by chunk, so it fits
    refused = Validate(overrides=[*tight, "backtest.chunked=false"], as_mode="backtest").run()
    assert not refused.ok and "[data.unreadable]" in refused.problems[0]
    assert "backtest.chunked: auto or true" in refused.problems[0]  # the setting that fixes it


@pytest.mark.parametrize("both", [("strategy=mean_reversion", "regime=daily"), ("book=trend_reversion",)],
                         ids=["daily", "book"])
def test_the_month_path_reads_coarser_bars_like_the_in_memory_run(store, tmp_path, both):
    """A strategy filtered on daily bars (``on("1d", ...)``) under a regime read on daily bars (and
    a book of two strategies on it): each month completes its days, and the last closed day's
    values lead the next month."""
    whole, whole_trace, _ = _run(store, tmp_path, "whole_1d", "backtest.chunked=false", *both)
    months, months_trace, by_month = _run(store, tmp_path, "months_1d", "backtest.chunked=true", *both)
    assert by_month and whole["trades"]
    assert json.dumps(months, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert months_trace == whole_trace
