"""The month plan's first pass kept beside the store's files (engine/market/scan_cache.py): a
second plan over unchanged files reads none and gives the same months; any change to a file, a
write, a damaged entry or other code makes it read the files again."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from engine.market import scan_cache
from engine.market import store as store_mod
from tests.helpers.market import T0_MS
from tests.helpers.store import DAY_MS, month_rows, months_store

COLUMNS = ("open", "high", "low", "close", "volume", "spread_bps")


def everything(steps):
    """What a plan gives: its frame and every month's arrays."""
    parts = list(steps)
    return {"times": steps.times, "symbols": steps.symbols, "info": steps.info,
            "row0": [r for r, _ in parts], **{c: np.concatenate([getattr(m, c) for _, m in parts]) for c in COLUMNS}}


def same(a, b):
    assert a["symbols"] == b["symbols"] and a["info"] == b["info"] and a["row0"] == b["row0"]
    assert np.array_equal(a["times"], b["times"])
    for c in COLUMNS:
        assert np.array_equal(a[c], b[c], equal_nan=True), c


@pytest.fixture
def opened(monkeypatch):
    """The month files read, as ``SYMBOL_DIR/YYYY-MM``, while the list is kept."""
    got: list[str] = []
    real = store_mod.MarketStore._read_columns
    monkeypatch.setattr(store_mod.MarketStore, "_read_columns",
                        lambda self, p: got.append(f"{p.parent.name}/{p.stem}") or real(self, p))
    return got


def plan_reads(st, opened, **kw):
    """(the files the first pass read, the plan's months)."""
    opened.clear()
    steps = st.iter_months("1h", **kw)
    first = sorted(opened)
    return first, everything(steps)


def test_a_second_plan_reads_no_file_and_gives_the_same_months(tmp_path, opened, caplog):
    st = months_store(tmp_path)
    with caplog.at_level("WARNING"):
        read, one = plan_reads(st, opened)
        warned = [r.getMessage() for r in caplog.records]
        caplog.clear()
        again, two = plan_reads(st, opened)
    assert len(read) == 7 and again == []
    same(one, two)
    assert [r.getMessage() for r in caplog.records] == warned and "10 missing bar(s)" in warned[0]
    # and equal to the whole panel's load
    whole = st.load("1h")
    assert two["info"] == whole.info and np.array_equal(two["close"], whole.close, equal_nan=True)


def test_another_range_is_planned_from_the_files(tmp_path, opened):
    st = months_store(tmp_path)
    plan_reads(st, opened)
    window = {"since_ms": T0_MS + 20 * DAY_MS, "until_ms": T0_MS + 70 * DAY_MS}
    read, got = plan_reads(st, opened, **window)
    assert read  # the kept entry was for the whole range
    assert got["info"] == st.load("1h", **window).info


def test_a_write_drops_the_symbols_kept_plan(tmp_path, opened):
    st = months_store(tmp_path)
    plan_reads(st, opened)
    st.write("ETH/USDC", "1h", month_rows(24, T0_MS + (31 + 29 + 31 + 30 + 31 + 5) * DAY_MS, 2100.0))  # June
    read, got = plan_reads(st, opened)
    assert read == ["ETH_USDC/2024-02", "ETH_USDC/2024-03", "ETH_USDC/2024-06"]  # the others were kept
    whole = st.load("1h")
    assert got["info"] == whole.info and np.array_equal(got["close"], whole.close, equal_nan=True)


def test_a_file_replaced_behind_the_stores_back_is_read_again(tmp_path, opened):
    st = months_store(tmp_path)
    plan_reads(st, opened)
    # SOL's May file swapped for another store's, its mtime set back: the inode and ctime differ
    other = months_store(tmp_path / "other")
    other.write("SOL/USDC", "1h", month_rows(24, T0_MS + (31 + 29 + 31 + 30 + 10) * DAY_MS, 30.5))
    mine = st._dir("SOL/USDC", "1h") / "2024-05.parquet"
    before = os.stat(mine)
    shutil.copyfile(other._dir("SOL/USDC", "1h") / "2024-05.parquet", mine)
    os.utime(mine, ns=(before.st_atime_ns, before.st_mtime_ns))
    read, got = plan_reads(st, opened)
    assert read == ["SOL_USDC/2024-05", "SOL_USDC/2024-06"]
    same(got, everything(type(st)(tmp_path).iter_months("1h")))
    assert np.nanmax(got["close"][:, got["symbols"].index("SOL/USDC")]) > 30  # the new bars are read


def test_without_the_codes_source_nothing_is_kept(tmp_path, opened, monkeypatch):
    def no_source(f):
        raise OSError("could not get source code")

    monkeypatch.setattr(scan_cache, "_digest", None)
    monkeypatch.setattr(scan_cache.inspect, "getsource", no_source)
    st = months_store(tmp_path)
    read, one = plan_reads(st, opened)
    again, two = plan_reads(st, opened)
    assert len(read) == len(again) == 7 and not list(tmp_path.rglob(scan_cache.NAME))
    same(one, two)


@pytest.mark.parametrize("spoil", ["damaged", "other-code"])
def test_a_damaged_entry_or_other_code_reads_the_files(tmp_path, opened, monkeypatch, spoil):
    st = months_store(tmp_path)
    _, one = plan_reads(st, opened)
    entry = st._dir("BTC/USDC", "1h") / scan_cache.NAME
    if spoil == "damaged":
        entry.write_text(entry.read_text()[:40])
    else:
        monkeypatch.setattr(scan_cache, "_digest", "another")
    read, two = plan_reads(st, opened)
    btc = ["BTC_USDC/2024-01", "BTC_USDC/2024-02", "BTC_USDC/2024-03"]
    assert read == btc if spoil == "damaged" else len(read) == 7  # the other code: every entry is stale
    same(one, two)
    if spoil == "damaged":
        assert json.loads(entry.read_text())["value"]["price_increment"] == 0.01  # kept again


def test_a_store_it_cannot_write_to_is_read_in_full_each_time(tmp_path, opened, monkeypatch):
    st = months_store(tmp_path)

    def refused(path, write):
        raise PermissionError(f"{path}: read-only")

    monkeypatch.setattr(store_mod, "_atomic_write_bytes", refused)
    read, one = plan_reads(st, opened)
    again, two = plan_reads(st, opened)
    assert len(read) == len(again) == 7
    same(one, two)
