import dataclasses

import numpy as np
import pytest

from engine.market.data import TIMEFRAME_MS
from engine.market.sample import (REGIMES, THEMES, SampleSpec, SampleSpecError, generate_sample_market,
                                  known_theme)
from tests.helpers.market import default_sample_market, small_spec

ARRAYS = ("times", "open", "high", "low", "close", "volume", "spread_bps", "true_regime")


def test_two_generations_are_byte_identical():
    a = generate_sample_market(small_spec())
    b = generate_sample_market(small_spec())
    for name in ARRAYS:
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.symbols == b.symbols and a.info == b.info
    assert a.data_hash() == b.data_hash()


def test_different_seed_gives_different_data():
    a = generate_sample_market(small_spec(seed=1))
    b = generate_sample_market(small_spec(seed=2))
    assert a.data_hash() != b.data_hash()
    assert not np.allclose(np.nan_to_num(a.close), np.nan_to_num(b.close))


def test_default_sample_covers_a_year_of_hourly_bars_for_at_least_30_symbols():
    md = default_sample_market()
    assert md.n_symbols >= 30 and md.n_symbols == 40
    assert md.n_bars == 24 * 366
    assert md.timeframe == "1h"
    assert np.all(np.diff(md.times) == TIMEFRAME_MS["1h"])
    assert md.times[-1] - md.times[0] >= 365 * 86_400_000
    assert list(md.symbols) == sorted(md.symbols)
    assert all(s.endswith("/USDC") for s in md.symbols)
    assert {"BTC/USDC", "ETH/USDC", "SOL/USDC"} <= set(md.symbols)


def test_themes_present_and_at_least_two_stablecoins_pinned_near_one():
    md = default_sample_market()
    themes = set(md.themes)
    assert set(THEMES) <= themes
    stable = np.flatnonzero(md.themes == "stablecoin")
    assert stable.size >= 2
    closes = md.close[:, stable]
    assert np.nanmax(np.abs(closes - 1.0)) < 0.01
    assert np.nanstd(closes) > 0  # noisy, not a flat line


def test_prices_positive_and_realistic():
    md = default_sample_market()
    for name in ("open", "high", "low", "close"):
        arr = getattr(md, name)
        assert np.all(arr[~np.isnan(arr)] > 0), name
    btc = md.close[:, md.index_of("BTC/USDC")]
    assert 10_000 <= np.nanmin(btc) and np.nanmax(btc) <= 200_000
    eth = md.close[:, md.index_of("ETH/USDC")]
    assert 500 <= np.nanmin(eth) and np.nanmax(eth) <= 10_000


def test_high_low_consistent_with_open_close():
    md = default_sample_market()
    ok = md.available
    assert np.all(md.high[ok] >= np.maximum(md.open[ok], md.close[ok]))
    assert np.all(md.low[ok] <= np.minimum(md.open[ok], md.close[ok]))
    # Excursions exist: high is not always the body top.
    assert np.mean(md.high[ok] > np.maximum(md.open[ok], md.close[ok])) > 0.5


def test_prices_sit_on_each_symbols_tick():
    md = default_sample_market()
    inc = np.array([i.price_increment for i in md.info])
    q = md.close / inc[None, :]
    ok = md.available
    assert np.allclose(q[ok], np.round(q[ok]), atol=1e-6 * np.maximum(1, np.abs(q[ok])))


def test_nan_masks_agree_across_columns():
    md = default_sample_market()
    miss = np.isnan(md.close)
    for name in ("open", "high", "low", "volume", "spread_bps"):
        assert np.array_equal(np.isnan(getattr(md, name)), miss), name


def test_regimes_switch_every_few_days_to_weeks_and_all_four_occur():
    md = default_sample_market()
    assert md.true_regime_labels == REGIMES == ("bull", "bear", "chop", "high_vol")
    r = md.true_regime
    assert r.shape == (md.n_bars,)
    assert set(np.unique(r)) == {0, 1, 2, 3}
    change = np.flatnonzero(np.diff(r) != 0)
    assert 8 <= change.size <= 120
    spells = np.diff(np.concatenate([[0], change + 1, [r.size]]))
    assert spells[:-1].min() >= 24  # at least a day
    assert np.median(spells) >= 48


def test_high_vol_regime_is_wilder_and_wider():
    md = default_sample_market()
    hv = md.true_regime == REGIMES.index("high_vol")
    calm = md.true_regime == REGIMES.index("chop")
    btc = md.index_of("BTC/USDC")
    r = np.diff(np.log(md.close[:, btc]))
    assert np.nanstd(r[hv[1:]]) > 2 * np.nanstd(r[calm[1:]])
    assert np.nanmedian(md.spread_bps[hv, btc]) > 1.5 * np.nanmedian(md.spread_bps[calm, btc])


def test_spreads_and_volumes_follow_liquidity_tiers():
    md = default_sample_market()
    spread = np.nanmedian(md.spread_bps, axis=0)
    usd = np.nanmedian(md.volume * md.close, axis=0)
    btc, pepe = md.index_of("BTC/USDC"), md.index_of("PEPE/USDC")
    assert 1.0 <= spread[btc] <= 3.0
    assert 10.0 <= spread[pepe] <= 60.0
    assert usd[btc] > 50 * usd[pepe]
    assert np.all(md.volume[md.available] > 0)


def test_a_symbol_lists_part_way_and_a_few_single_symbol_gaps_exist():
    md = default_sample_market()
    avail = md.available
    first = np.argmax(avail, axis=0)
    late = np.flatnonzero(first > 0)
    assert late.size >= 1
    assert np.all(first[late] > md.n_bars // 10)
    # After listing: a few holes, each in one symbol only (never a whole row).
    listed = np.arange(md.n_bars)[:, None] >= first[None, :]
    holes = listed & ~avail
    assert 3 <= holes.sum() <= 60
    assert holes.sum(axis=1).max() <= 2  # never a market-wide outage
    assert avail.any(axis=1).all()


def test_symbol_info_carries_beta_volatility_and_increments():
    md = default_sample_market()
    by = {i.symbol: i for i in md.info}
    assert by["BTC/USDC"].beta == 1.0
    assert by["USDT/USDC"].beta == 0.0
    assert by["PEPE/USDC"].beta > by["BTC/USDC"].beta
    assert 0.3 < by["BTC/USDC"].volatility < 1.0
    assert by["USDT/USDC"].volatility < 0.05
    assert all(i.min_notional == 1.0 for i in md.info)
    assert all(0 < i.price_increment <= 0.01 and 0 < i.size_increment <= 1 for i in md.info)


def test_more_symbols_than_the_catalog_invents_unique_names():
    md = generate_sample_market(small_spec(n_symbols=60, n_bars=100))
    assert md.n_symbols == 60 and len(set(md.symbols)) == 60
    assert all("/" in s and s.endswith("/USDC") for s in md.symbols)


def test_other_timeframe_and_quote():
    md = generate_sample_market(small_spec(timeframe="1d", n_bars=60, quote="USD"))
    assert np.all(np.diff(md.times) == 86_400_000)
    assert "USDC/USD" in md.symbols and all(s.endswith("/USD") for s in md.symbols)


def test_from_mapping_builds_spec_and_rejects_unknown_keys():
    spec = SampleSpec.from_mapping({"seed": 3, "n_symbols": 35})
    assert spec == dataclasses.replace(SampleSpec(), seed=3, n_symbols=35)
    with pytest.raises(SampleSpecError, match=r"data\.sample: unknown key\(s\) 'n_symbol' \(did you mean 'n_symbols'\?\)"):
        SampleSpec.from_mapping({"n_symbol": 35})
    with pytest.raises(SampleSpecError, match="expected a mapping"):
        SampleSpec.from_mapping([("seed", 1)])


@pytest.mark.parametrize("field, value, fragment", [
    ("n_symbols", 10, "data.sample.n_symbols: found 10, expected 30 <= n_symbols"),
    ("seed", "7", "data.sample.seed: found '7', expected an integer"),
    ("seed", True, "data.sample.seed: found True, expected an integer"),
    ("timeframe", "7m", "data.sample.timeframe: found '7m', expected one of"),
    ("quote", "BTC", "data.sample.quote: found 'BTC', expected a USD quote"),
    ("start", "01/02/2024", "data.sample.start: found '01/02/2024', expected an ISO-8601"),
    ("start", "2024-02-30", "expected a valid calendar date"),
    ("start", "2024-01-01T00:30", "expected a time on the 1h grid"),
    ("n_bars", 5, "data.sample.n_bars: found 5, expected at least 48"),
])
def test_bad_spec_values_raise_clear_errors(field, value, fragment):
    with pytest.raises(SampleSpecError) as err:
        SampleSpec(**{field: value})
    assert fragment in str(err.value)


def test_cache_key_covers_every_field():
    base = SampleSpec()
    keys = {base.cache_key()}
    for f, v in [("seed", 8), ("n_symbols", 41), ("start", "2024-01-02"), ("n_bars", 100),
                 ("timeframe", "4h"), ("quote", "USD")]:
        keys.add(dataclasses.replace(base, **{f: v}).cache_key())
    assert len(keys) == 7


def test_known_theme():
    assert known_theme("btc") == "L1"
    assert known_theme("USDT") == "stablecoin"
    assert known_theme("NXT") == "other"


def test_from_mapping_accepts_a_hydra_dictconfig():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"data": {"sample": {"seed": 3, "n_symbols": 31, "start": "2024-02-01"}}})
    spec = SampleSpec.from_mapping(cfg.data.sample)
    assert (spec.seed, spec.n_symbols, spec.start) == (3, 31, "2024-02-01")
    assert spec.start_ms == 1_706_745_600_000


@pytest.mark.parametrize("rows", [7, 1000, 4096, 5000])
def test_the_data_hash_is_the_same_fed_in_chunks_or_by_a_thread(rows):
    from engine.market.data import DataHash

    md = generate_sample_market(small_spec(seed=3, n_bars=4800))
    for background in (False, True):
        h = DataHash(md.timeframe, md.times, md.symbols, background=background)
        for a in range(0, md.n_bars, rows):
            h.add(md.select(start=a, stop=a + rows))
        assert h.hexdigest() == md.data_hash(), background
    spoiled = md.select(start=0, stop=md.n_bars)
    spoiled.close[-1, 0] += 1.0
    h = DataHash(md.timeframe, md.times, md.symbols, background=True)
    h.add(spoiled)
    assert h.hexdigest() != md.data_hash()


def test_iso_utc_all_is_iso_utc_of_each():
    from engine.market.data import iso_utc, iso_utc_all

    times = np.array([0, 1_700_000_000_123, 1_735_689_599_999, -86_400_000, 253_402_300_799_000], dtype=np.int64)
    assert iso_utc_all(times) == [iso_utc(int(t)) for t in times] and iso_utc_all(times[:0]) == []
