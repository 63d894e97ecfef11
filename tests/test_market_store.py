"""The Parquet market store: month files, validated atomic writes, incremental downloads through
the real ccxt class against a local candles server, the summary command, and data=store runs."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.market import store as store_mod
from engine.market.download import download_to_store
from engine.market.loaders import load_csv_dir
from engine.market.store import MarketStore, merge_ranges, subtract_ranges
from engine.market.validate import DataError
from tests.helpers.candles import HOUR, T0, candle_server, exchange
from tests.helpers.factories import write_csv_dir
from tests.helpers.market import good_rows, small_spec
from tests.helpers.runs import run_cli
from tests.helpers.store import months_store

H_MS = HOUR * 1000
T0_MS = T0 * 1000  # 2024-01-01T00:00:00Z


def rows(n: int, t0: int = T0_MS, price: float = 100.0) -> np.ndarray:
    return np.array(good_rows(n, t0, "1h", price), dtype=np.float64)


@pytest.fixture
def stub():
    with candle_server() as srv:
        yield srv


def test_ranges_merge_and_subtract():
    assert merge_ranges([(5, 7), (0, 2), (2, 4)]) == [(0, 4), (5, 7)]
    assert subtract_ranges((0, 10), [(2, 4), (3, 6), (8, 12)]) == [(0, 2), (6, 8)]
    assert subtract_ranges((0, 10), []) == [(0, 10)] and subtract_ranges((2, 3), [(0, 10)]) == []


def test_bars_land_in_one_file_per_month_and_read_back_exactly(tmp_path):
    st = MarketStore(tmp_path)
    r = rows(24 * 70)  # 2024-01-01 .. 2024-03-10
    assert st.write("BTC/USDC", "1h", r) == len(r)
    assert sorted(p.name for p in (tmp_path / "1h" / "BTC_USDC").glob("*.parquet")) == [
        "2024-01.parquet", "2024-02.parquet", "2024-03.parquet"]
    b = st.read("BTC/USDC", "1h")
    assert np.array_equal(b.times, r[:, 0].astype(np.int64)) and np.array_equal(b.close, r[:, 4])
    assert st.symbols("1h") == ["BTC/USDC"] and st.timeframes() == ["1h"]


def test_a_windowed_read_opens_only_the_months_it_needs(tmp_path, monkeypatch):
    st = MarketStore(tmp_path)
    st.write("BTC/USDC", "1h", rows(24 * 70))
    opened = []
    real = st._read_columns
    monkeypatch.setattr(st, "_read_columns", lambda p: opened.append(p.name) or real(p))
    feb = T0_MS + 31 * 24 * H_MS
    b = st.read("BTC/USDC", "1h", feb, feb + 24 * H_MS)
    assert opened == ["2024-02.parquet"] and b.times.size == 24 and b.times[0] == feb


def test_a_write_replaces_bars_at_the_same_times_and_keeps_the_rest(tmp_path):
    st = MarketStore(tmp_path)
    st.write("BTC/USDC", "1h", rows(48))
    again = rows(10, T0_MS + 40 * H_MS, price=200.0)
    assert st.write("BTC/USDC", "1h", again) == 50
    b = st.read("BTC/USDC", "1h")
    assert b.open[0] == 100.0 and b.open[40] == 200.0 and b.times.size == 50


def test_a_bad_bar_is_refused_and_nothing_is_written(tmp_path):
    st = MarketStore(tmp_path)
    st.write("BTC/USDC", "1h", rows(24))
    before = (tmp_path / "1h" / "BTC_USDC" / "2024-01.parquet").read_bytes()
    bad = rows(5, T0_MS + 24 * H_MS)
    bad[2, 2] = bad[2, 3] * 0.5  # high below low
    with pytest.raises(DataError, match=r"BTC/USDC 1h 2024-01 .*high"):
        st.write("BTC/USDC", "1h", bad)
    assert (tmp_path / "1h" / "BTC_USDC" / "2024-01.parquet").read_bytes() == before
    assert st.count("BTC/USDC", "1h") == 24


def test_a_crash_while_writing_leaves_each_month_whole(tmp_path, monkeypatch):
    st = MarketStore(tmp_path)
    st.write("BTC/USDC", "1h", rows(24 * 40))  # January and February
    feb = (tmp_path / "1h" / "BTC_USDC" / "2024-02.parquet").read_bytes()
    calls = []
    real = pq.write_table

    def dies_on_the_second(table, where, **kw):
        calls.append(where)
        if len(calls) == 2:
            raise OSError("disk full")
        real(table, where, **kw)

    monkeypatch.setattr(store_mod.pq, "write_table", dies_on_the_second)
    with pytest.raises(OSError):
        st.write("BTC/USDC", "1h", rows(24 * 40, price=300.0))
    assert (tmp_path / "1h" / "BTC_USDC" / "2024-02.parquet").read_bytes() == feb  # old February, whole
    assert st.read("BTC/USDC", "1h").open[0] == 300.0  # new January, whole
    assert not [p for p in (tmp_path / "1h" / "BTC_USDC").iterdir() if p.name.startswith(".")]  # no temp left


def test_a_second_download_fetches_only_what_the_store_lacks(stub, tmp_path):
    stub.bars["BTC-USDC"] = [(T0 + i * HOUR, 100.0 + i) for i in range(200) if i != 30]  # an hour with no trade
    ex, st = exchange(stub), MarketStore(tmp_path)
    now = T0_MS + 1000 * H_MS
    (d,) = download_to_store(ex, ["BTC/USDC"], "1h", T0_MS, T0_MS + 100 * H_MS, st, page=50, now_ms=now)
    assert (d.new, d.bars) == (99, 99) and len(stub.requests) == 2
    stub.requests.clear()
    (d,) = download_to_store(ex, ["BTC/USDC"], "1h", T0_MS, T0_MS + 150 * H_MS, st, page=50, now_ms=now)
    assert (d.new, d.bars) == (50, 149)
    starts = [int(q["start"]) for _, q in stub.requests]
    assert starts == [T0 + 100 * HOUR]  # the missing hour 30 was answered before: not asked again
    stub.requests.clear()
    download_to_store(ex, ["BTC/USDC"], "1h", T0_MS, T0_MS + 150 * H_MS, st, page=50, now_ms=now)
    assert stub.requests == []


def test_the_bar_still_open_is_not_recorded_as_fetched(stub, tmp_path):
    stub.bars["BTC-USDC"] = [(T0 + i * HOUR, 100.0 + i) for i in range(20)]
    ex, st = exchange(stub), MarketStore(tmp_path)
    now = T0_MS + 10 * H_MS + 1800_000  # half way through bar 10
    download_to_store(ex, ["BTC/USDC"], "1h", T0_MS, T0_MS + 20 * H_MS, st, now_ms=now)
    assert st.coverage("BTC/USDC", "1h") == [(T0_MS, T0_MS + 10 * H_MS)] and st.count("BTC/USDC", "1h") == 10


def test_the_store_loads_like_the_same_bars_in_csv_files(tmp_path):
    from engine.market.sample import generate_sample_market

    md = generate_sample_market(small_spec(n_bars=24 * 45))
    csv_dir = write_csv_dir(tmp_path / "csv", md)
    ref = load_csv_dir(csv_dir, "1h")
    st = MarketStore(tmp_path / "store")
    for j, s in enumerate(ref.symbols):
        ok = ~np.isnan(ref.close[:, j])
        st.write(s, "1h", np.column_stack([ref.times[ok].astype(np.float64), ref.open[ok, j], ref.high[ok, j],
                                           ref.low[ok, j], ref.close[ok, j], ref.volume[ok, j]]))
    got = st.load("1h")
    assert got.symbols == ref.symbols and np.array_equal(got.times, ref.times)
    for c in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(got, c), getattr(ref, c), equal_nan=True), c


def test_summary_names_symbols_ranges_and_gaps(tmp_path, capsys):
    st = MarketStore(tmp_path)
    r = rows(48)
    st.write("BTC/USDC", "1h", np.delete(r, [10, 11, 30], axis=0))
    st.write("ETH/USDC", "1h", rows(24 * 35, price=2000.0))
    (btc, eth) = st.summary()
    assert (btc.symbol, btc.bars, btc.gaps, btc.missing_bars, btc.months) == ("BTC/USDC", 45, 2, 3, 1)
    assert (eth.first, eth.months, eth.gaps) == ("2024-01-01T00:00:00Z", 2, 0)
    assert store_mod.main(["summary", str(tmp_path), "--json"]) == 0
    assert [r["symbol"] for r in json.loads(capsys.readouterr().out)] == ["BTC/USDC", "ETH/USDC"]
    assert store_mod.main(["summary", str(tmp_path)]) == 0
    assert "BTC/USDC" in capsys.readouterr().out
    assert store_mod.main(["summary", str(tmp_path / "none")]) == 2


def test_a_backtest_runs_on_the_store(tmp_path):
    from engine.market.sample import generate_sample_market

    md = generate_sample_market(small_spec(n_bars=24 * 30))
    st = MarketStore(tmp_path / "store")
    for j, s in enumerate(md.symbols):
        ok = ~np.isnan(md.close[:, j])
        st.write(s, "1h", np.column_stack([md.times[ok].astype(np.float64), md.open[ok, j], md.high[ok, j],
                                           md.low[ok, j], md.close[ok, j], md.volume[ok, j]]))
    out = run_cli(["data=store", f"data.path={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'out'}"])
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["run"]["data_source"] == f"store:{tmp_path / 'store'}" and res["run"]["symbols"] == 30 and res["trades"]
    missing = run_cli(["data=store", f"data.path={tmp_path / 'store'}", "data.timeframe=5m",
                       f"hydra.run.dir={tmp_path / 'out2'}"])
    assert missing.returncode == 2 and "the store holds no 5m bars; timeframes there: 1h" in missing.stderr


# ---- iter_months: the store month by month, equal to load ----
DAY_MS = 24 * H_MS


def concat(chunks) -> tuple[list[int], dict]:
    row0s, parts = zip(*chunks)
    out = {c: np.concatenate([getattr(p, c) for p in parts]) for c in
           ("times", "open", "high", "low", "close", "volume", "spread_bps")}
    assert len({(p.symbols, p.info, p.timeframe, p.source) for p in parts}) == 1
    return list(row0s), out | {"symbols": parts[0].symbols, "info": parts[0].info, "parts": parts}


@pytest.mark.parametrize("args", [
    {},
    {"symbols": ["SOL/USDC", "BTC/USDC", "SOL/USDC"]},
    {"since_ms": T0_MS + 20 * DAY_MS + 5 * H_MS, "until_ms": T0_MS + 70 * DAY_MS + 3 * H_MS},
    {"since_ms": T0_MS + 61 * DAY_MS},  # BTC's last month on: ETH has no bar, so no column
    {"symbols": ["ETH/USDC"]},
], ids=["all", "symbols", "mid-month-window", "since", "one-symbol"])
def test_iter_months_concatenates_to_load(tmp_path, args):
    st = months_store(tmp_path)
    whole = st.load("1h", **args)
    row0s, got = concat(st.iter_months("1h", **args))
    assert got["symbols"] == whole.symbols and got["info"] == whole.info
    assert np.array_equal(got["times"], whole.times)
    for c in ("open", "high", "low", "close", "volume", "spread_bps"):
        assert np.array_equal(got[c], getattr(whole, c), equal_nan=True), c
    sizes = [p.n_bars for p in got["parts"]]
    assert row0s == list(np.cumsum([0] + sizes[:-1]))
    months = [set(np.datetime_as_string(p.times.astype("datetime64[ms]"), unit="M")) for p in got["parts"]]
    assert all(len(m) == 1 for m in months)  # one calendar month per chunk, in order, none skipped
    assert [m.pop() for m in months] == [str(m) for m in np.arange(
        whole.times[0].astype("datetime64[ms]").astype("datetime64[M]"),
        whole.times[-1].astype("datetime64[ms]").astype("datetime64[M]") + 1)]


@pytest.mark.parametrize("rows", [1, 97, 24 * 29, 24 * 45, 24 * 200], ids=["1", "97", "29d", "45d", "longer-than-all"])
@pytest.mark.parametrize("args", [{}, {"since_ms": T0_MS + 20 * DAY_MS + 5 * H_MS, "until_ms": T0_MS + 70 * DAY_MS + 3 * H_MS}],
                         ids=["all", "window"])
def test_iter_months_in_chunks_of_rows_concatenates_to_load(tmp_path, rows, args):
    """Chunks of ``rows`` grid rows, across month borders (the gap across January's, ETH's
    listing mid-February, the empty April) or holding several months: the same panel."""
    st = months_store(tmp_path)
    whole = st.load("1h", **args)
    row0s, got = concat(st.iter_months("1h", rows=rows, **args))
    assert got["symbols"] == whole.symbols and got["info"] == whole.info
    assert np.array_equal(got["times"], whole.times)
    for c in ("open", "high", "low", "close", "volume", "spread_bps"):
        assert np.array_equal(got[c], getattr(whole, c), equal_nan=True), c
    sizes = [p.n_bars for p in got["parts"]]
    assert row0s == list(range(0, whole.n_bars, rows)) and set(sizes[:-1]) <= {rows} and 0 < sizes[-1] <= rows


def test_iter_months_in_blocks_of_rows_is_load(tmp_path, monkeypatch):
    """A month's panel written in 256-row blocks, symbols two at a time (listings and a gap
    inside blocks and across their borders): the same arrays."""
    from engine.market import months

    monkeypatch.setattr(months, "_BLOCK_CELLS", 1)
    monkeypatch.setattr(months, "_GROUP", 2)
    st = months_store(tmp_path)
    whole = st.load("1h")
    _, got = concat(st.iter_months("1h"))
    assert max(p.n_bars for p in got["parts"]) > 2 * 256
    for c in ("open", "high", "low", "close", "volume", "spread_bps"):
        assert np.array_equal(got[c], getattr(whole, c), equal_nan=True), c


def test_iter_months_keeps_the_whole_ranges_tick_and_gap_month(tmp_path):
    from engine.market.loaders import symbol_info

    st = months_store(tmp_path)
    _, got = concat(st.iter_months("1h"))
    # one close is off the 0.01 tick: its month alone infers 0.001 ...
    by_month = [symbol_info("BTC/USDC", np.concatenate([p.open[:, 0], p.high[:, 0], p.low[:, 0], p.close[:, 0]]))
                .price_increment for p in got["parts"][:3]]
    assert sorted(by_month) == [0.001, 0.01, 0.01]
    # ... but the whole range's sample misses it, in load and in every chunk
    assert got["info"][0].price_increment == 0.01 == st.load("1h").info[0].price_increment
    april = next(p for p in got["parts"] if str(p.times[0].astype("datetime64[ms]").astype("datetime64[M]")) == "2024-04")
    assert april.n_bars == 30 * 24 and np.isnan(april.close).all()


def test_iter_months_reads_each_month_once_and_at_most_one_ahead(tmp_path, monkeypatch):
    st = months_store(tmp_path)
    opened = []
    real = st._read_columns
    monkeypatch.setattr(st, "_read_columns", lambda p: opened.append(f"{p.parent.name}/{p.stem}") or real(p))
    steps = st.iter_months("1h")
    assert sorted(opened) == sorted(set(opened))  # the first pass (grid, symbols, ticks) read every file once
    opened.clear()
    files = [["BTC_USDC/2024-01"], ["BTC_USDC/2024-02", "ETH_USDC/2024-02"], ["BTC_USDC/2024-03", "ETH_USDC/2024-03"],
             [], ["SOL_USDC/2024-05"], ["SOL_USDC/2024-06"]]
    k = -1
    for k, (_, md) in enumerate(steps):
        # month k's files were read for it; month k + 1's may be being read (by the thread that
        # reads one month ahead), no later one
        read = set(opened)
        assert set().union(*files[:k + 1]) <= read <= set().union(*files[:k + 2])
    assert k == len(files) - 1
    assert sorted(opened) == sorted(f for month in files for f in month)  # each file once


def test_a_file_damaged_after_the_plan_fails_the_step_that_reads_it(tmp_path):
    st = months_store(tmp_path)
    steps = st.iter_months("1h")
    damaged = tmp_path / "1h" / "ETH_USDC" / "2024-03.parquet"
    damaged.write_bytes(b"not parquet")
    # January and February come whole, March being read ahead meanwhile
    months = [str(next(steps)[1].times[0].astype("datetime64[ms]").astype("datetime64[M]")) for _ in range(2)]
    assert months == ["2024-01", "2024-02"]
    with pytest.raises(DataError, match=r"2024-03.parquet: not a readable store file"):
        next(steps)


def test_iter_months_refuses_like_load(tmp_path):
    st = months_store(tmp_path)
    with pytest.raises(DataError, match="no 1h bars in the store for DOGE/USDC"):
        st.iter_months("1h", symbols=["DOGE/USDC"])  # at the call, not at the first step
    with pytest.raises(DataError, match="no 1h bars between"):
        st.iter_months("1h", symbols=["ETH/USDC"], since_ms=T0_MS + 100 * DAY_MS)
    with pytest.raises(DataError, match="the store holds no 4h bars"):
        st.iter_months("4h")


def test_iter_months_warns_of_the_gaps_once_as_load_does(tmp_path, caplog):
    st = months_store(tmp_path)
    with caplog.at_level("WARNING"):
        st.load("1h")
        whole = [r.getMessage() for r in caplog.records]
        caplog.clear()
        list(st.iter_months("1h"))
    assert [r.getMessage() for r in caplog.records] == whole and len(whole) == 1
    assert "1 gap(s), 10 missing bar(s) in 1 symbol(s); largest: BTC/USDC 2024-01-31T20:00:00Z" in whole[0]
