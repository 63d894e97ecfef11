import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.market.loaders import (DataError, infer_price_increment, load_csv_dir, load_freqtrade_dir,
                                   load_market, load_parquet_dir)
from engine.market.sample import generate_sample_market
from engine.market.validate import Gap, find_gaps, find_panel_gaps
from tests.helpers.market import (HOUR_MS, T0_MS, good_rows, small_spec, write_market, write_rows,
                                  write_text)

SHARED = Path("/work/shared/data/freqtrade")
OHLCV = ("open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def sample3():
    """Three sample symbols, one listed part way (WIF) and with the sample's gaps."""
    md = generate_sample_market(small_spec(n_bars=24 * 40))
    return md.select(["BTC/USDC", "ETH/USDC", "WIF/USDC"])


def _assert_same_bars(loaded, md):
    assert loaded.symbols == md.symbols
    assert np.array_equal(loaded.times, md.times)
    for name in OHLCV:
        assert np.array_equal(getattr(loaded, name), getattr(md, name), equal_nan=True), name
    assert np.isnan(loaded.spread_bps).all()


@pytest.mark.parametrize("fmt, loader", [
    ("csv", lambda p: load_csv_dir(p, "1h")),
    ("csv_ms", lambda p: load_csv_dir(p, "1h")),
    ("parquet", lambda p: load_parquet_dir(p, "1h")),
    ("feather", lambda p: load_freqtrade_dir(p, "1h")),
    ("json", lambda p: load_freqtrade_dir(p, "1h")),
    ("json.gz", lambda p: load_freqtrade_dir(p, "1h")),
])
def test_round_trip_each_format(tmp_path, sample3, fmt, loader):
    write_market(sample3, tmp_path, fmt)
    loaded = loader(tmp_path)
    _assert_same_bars(loaded, sample3)
    wif = loaded.index_of("WIF/USDC")
    assert np.isnan(loaded.close[0, wif]) and not np.isnan(loaded.close[-1, wif])


@pytest.mark.parametrize("source, fmt", [("csv", "csv"), ("parquet", "parquet"), ("freqtrade", "feather")])
def test_dispatcher(tmp_path, sample3, source, fmt):
    write_market(sample3, tmp_path, fmt)
    md = load_market(source, tmp_path, "1h")
    _assert_same_bars(md, sample3)
    assert md.source == f"{source}:{tmp_path}"


def test_dispatcher_rejects_unknown_source(tmp_path):
    with pytest.raises(DataError, match=r"unknown data source 'excel'; expected one of csv, parquet, freqtrade"):
        load_market("excel", tmp_path, "1h")


def test_union_grid_fills_missing_bars_with_nan_and_sorts_symbols(tmp_path):
    write_rows(tmp_path, "ZZZ/USDC", good_rows(4, t0=T0_MS), "csv")
    late = good_rows(3, t0=T0_MS + 6 * HOUR_MS)
    write_rows(tmp_path, "AAA/USDC", late[:1] + late[2:], "csv")  # one gap inside
    md = load_csv_dir(tmp_path, "1h")
    assert md.symbols == ("AAA/USDC", "ZZZ/USDC")
    assert md.n_bars == 9 and md.times[0] == T0_MS and np.all(np.diff(md.times) == HOUR_MS)
    assert np.isnan(md.close[:6, 0]).all() and np.isnan(md.close[7, 0])
    assert md.close[6, 0] == late[0][4] and md.close[8, 0] == late[2][4]
    assert np.isnan(md.close[4:, 1]).all()
    gaps = find_panel_gaps(md.symbols, md.times, md.available, md.timeframe)
    assert gaps == [Gap("AAA/USDC", "2024-01-01T07:00:00Z", "2024-01-01T07:00:00Z", 1)]


def test_gaps_are_logged_as_one_warning(tmp_path, caplog):
    rows = good_rows(10)
    write_rows(tmp_path, "BTC/USDC", rows[:3] + rows[6:], "csv")
    with caplog.at_level(logging.WARNING):
        md = load_csv_dir(tmp_path)
    assert np.isnan(md.close[3:6, 0]).all()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1 gap(s), 3 missing bar(s) in 1 symbol(s)" in warnings[0].getMessage()
    assert "BTC/USDC 2024-01-01T03:00:00Z..2024-01-01T05:00:00Z" in warnings[0].getMessage()


def test_find_gaps_on_a_single_series():
    t = np.array([0, 1, 2, 5, 6, 9], dtype=np.int64) * HOUR_MS + T0_MS
    assert find_gaps("X/USD", t, "1h") == [
        Gap("X/USD", "2024-01-01T03:00:00Z", "2024-01-01T04:00:00Z", 2),
        Gap("X/USD", "2024-01-01T07:00:00Z", "2024-01-01T08:00:00Z", 2),
    ]
    assert find_gaps("X/USD", t[:3], "1h") == []


def test_symbols_filter_and_its_errors(tmp_path):
    for s in ("BTC/USDC", "ETH/USDC", "SOL/USDC"):
        write_rows(tmp_path, s, good_rows(3), "csv")
    md = load_csv_dir(tmp_path, symbols=["SOL/USDC", "BTC/USDC"])
    assert md.symbols == ("BTC/USDC", "SOL/USDC")
    with pytest.raises(DataError, match=r"no 1h csv file for symbol\(s\) DOGE/USDC; available: BTC/USDC, "
                                        r"ETH/USDC, SOL/USDC"):
        load_csv_dir(tmp_path, symbols=["BTC/USDC", "DOGE/USDC"])


def test_files_of_other_timeframes_and_formats_are_ignored(tmp_path):
    write_rows(tmp_path, "BTC/USDC", good_rows(3), "csv")
    write_rows(tmp_path, "ETH/USDC", good_rows(3, timeframe="5m"), "csv", timeframe="5m")
    write_rows(tmp_path, "SOL/USDC", good_rows(3), "parquet")
    write_text(tmp_path, "notes.txt", "hello")
    assert load_csv_dir(tmp_path).symbols == ("BTC/USDC",)
    assert load_csv_dir(tmp_path, "5m").symbols == ("ETH/USDC",)


def test_empty_directory_is_a_clear_error(tmp_path):
    write_rows(tmp_path, "BTC/USDC", good_rows(3, timeframe="5m"), "csv", timeframe="5m")
    with pytest.raises(DataError) as err:
        load_csv_dir(tmp_path, "1h")
    assert str(err.value) == (f"{tmp_path}: no .csv files for timeframe '1h', expected names like "
                              f"BTC_USDC-1h.csv; found other timeframes: 5m (1 files)")


def test_missing_directory_and_unknown_timeframe(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load_csv_dir(tmp_path / "nope")
    with pytest.raises(DataError, match=r"unknown timeframe '8m'; expected one of 1m, 5m"):
        load_freqtrade_dir(tmp_path, "8m")


def test_two_files_for_one_symbol_are_ambiguous(tmp_path):
    write_rows(tmp_path, "BTC/USDC", good_rows(3), "json")
    write_rows(tmp_path, "BTC/USDC", good_rows(3), "feather")
    with pytest.raises(DataError, match=r"BTC_USDC-1h.json and BTC_USDC-1h.feather both hold BTC/USDC 1h|"
                                        r"BTC_USDC-1h.feather and BTC_USDC-1h.json both hold BTC/USDC 1h"):
        load_freqtrade_dir(tmp_path, "1h")


def test_naive_and_offset_dates_are_utc(tmp_path):
    rows = good_rows(3)
    text = ("date,open,high,low,close,volume\n"
            f"2024-01-01 00:00:00,{rows[0][1]},{rows[0][2]},{rows[0][3]},{rows[0][4]},1\n"
            f"2024-01-01T02:00:00+01:00,{rows[1][1]},{rows[1][2]},{rows[1][3]},{rows[1][4]},1\n"
            f"2024-01-01T02:00:00Z,{rows[2][1]},{rows[2][2]},{rows[2][3]},{rows[2][4]},1\n")
    write_text(tmp_path, "BTC_USDC-1h.csv", text)
    md = load_csv_dir(tmp_path)
    assert list(md.times) == [T0_MS, T0_MS + HOUR_MS, T0_MS + 2 * HOUR_MS]


def test_parquet_with_naive_datetime_or_epoch_ms(tmp_path):
    rows = good_rows(4)
    df = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
    df["date"] = df["date"].astype("int64")
    df.to_parquet(tmp_path / "A_USDC-1h.parquet")
    df2 = df.copy()
    df2["date"] = pd.to_datetime(df2["date"], unit="ms")  # naive
    df2.to_parquet(tmp_path / "B_USDC-1h.parquet")
    md = load_parquet_dir(tmp_path)
    assert md.times[0] == T0_MS and np.array_equal(md.close[:, 0], md.close[:, 1])


def test_real_data_info_defaults(tmp_path):
    write_rows(tmp_path, "BTC/USDC", good_rows(3, price=42000.0), "csv")
    write_rows(tmp_path, "NXT/BTC", good_rows(3, price=0.00002), "csv")
    md = load_csv_dir(tmp_path)
    assert {i.theme for i in md.info} == {"other"}  # files carry no theme: the product table assigns it
    from engine.market.products import apply, load_product_facts
    from engine.paths import PROJECT_ROOT
    applied = apply(load_product_facts(PROJECT_ROOT / "rules" / "products.yaml"), md.info, stated=False)
    btc, nxt = applied.info
    assert (btc.theme, nxt.theme) == ("L1", "other") and applied.undeclared == ("NXT/BTC",)
    assert btc.min_notional == 1.0 and nxt.min_notional == 0.0
    assert 0 < nxt.price_increment <= 1e-8 and btc.price_increment <= 10.0


def test_infer_price_increment():
    assert infer_price_increment(np.array([42000.01, 41999.5, 42000.0])) == 0.01
    assert infer_price_increment(np.array([0.1234, 0.1201])) == 0.0001
    assert infer_price_increment(np.array([1.0, 2.0, 3.0])) == 1e-3  # capped at 0.1% of the lowest price
    assert infer_price_increment(np.array([np.pi])) == 1e-3


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared freqtrade sample data not present")
def test_shared_freqtrade_data_loads(caplog):
    with caplog.at_level(logging.WARNING):
        md = load_freqtrade_dir(SHARED, "5m")
    assert "ETH/BTC" in md.symbols and md.n_symbols == 11
    assert np.all(np.diff(md.times) == 300_000)
    assert "gap(s)" in caplog.text
    md1 = load_freqtrade_dir(SHARED, "1m", symbols=["UNITTEST/BTC"])
    assert md1.n_bars > 13_000


@pytest.mark.parametrize("ext", ["json", "json.gz"])
def test_freqtrade_json_with_a_byte_order_mark_is_read(tmp_path, ext):
    """Like CSV files, a JSON file saved with a UTF-8 BOM (Windows editors) is read, not rejected."""
    import gzip
    import json

    payload = ("\ufeff" + json.dumps([[int(r[0]), *map(float, r[1:])] for r in good_rows(4)])).encode("utf-8")
    path = tmp_path / f"BTC_USDC-1h.{ext}"
    path.write_bytes(gzip.compress(payload) if ext == "json.gz" else payload)
    md = load_freqtrade_dir(tmp_path, "1h")
    assert list(md.symbols) == ["BTC/USDC"] and md.times[0] == T0_MS
