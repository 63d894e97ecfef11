"""The chunked preparer (engine/cycle/chunks.py) fed a market in row chunks gives, chunk after
chunk, exactly the rows of the whole-array ``prepare``: every array field bit for bit (same dtype,
NaN where NaN), for the shipped rule files under several chunk layouts; the backtest run over
those chunks writes the in-memory run's results byte for byte. What it cannot do yet is refused
with an error naming the rule."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.backtest.engine import run_backtest, run_chunks
from engine.cycle.chunks import ChunkedPreparer
from engine.cycle.features import IndexSeries, MarketSeries, index_series, market_series
from engine.cycle.prepare import Prepared, prepare
from engine.errors import UserError
from engine.modes.setup import backtest_settings, load_rules
from engine.rules.errors import RuleError
from engine.rules.functions import FUNCTIONS
from engine.rules.loader import load_ruleset
from tests.helpers.backtest import results_json, sample_market
from tests.helpers.chunks import cut
from tests.helpers.rules import SHIPPED_RULES, create_rules_dir, shipped_files
from tests.helpers.runs import compose_config

BARS = 24 * 40  # past the longest window of the shipped files (the regime's 336 bars)
LAYOUTS = {
    "one": (10**6,),
    "short": (7,),  # every chunk shorter than the windows (48 .. 336 bars)
    "uneven": (100, 1, 239, 3, 500),
    "rows": (400,) + (1,) * 160 + (10**6,),  # 1-row chunks once every window is warm
}


def _text(rel: str) -> str:
    return (Path(SHIPPED_RULES) / rel).read_text()


def _without(rel: str, part: str) -> str:
    text = _text(rel)
    assert part in text
    return text.replace(part, "")


# mean reversion without its daily trend filter: the same rules on the data's own bars only
MEAN_REVERSION_NO_ON = _without("strategies/mean_reversion.yaml",
                                ' and on("1d", close > sma(close, params.trend_days))')
# coarser bars that most chunk borders cut (6h and 4h bars of hourly data)
MEAN_REVERSION_6H_4H = _text("strategies/mean_reversion.yaml").replace(
    'on("1d", close > sma(close, params.trend_days))', 'on("6h", close > sma(close, 8)) and on("4h", rsi(close, 14) < 70)')
# the regime index's breadth and volume are read only by a rule that names them
REGIME_BREADTH = _text("regime.yaml").replace(
    "  - id: bear\n",
    "  - id: broad\n    when: breadth > 0.6 and volume_usd > 1000000\n    why: most products above their mean\n"
    "  - id: bear\n", 1)

# an unranked universe (the first 5 eligible in symbol order), rebuilt on a 5h TTL only
UNIVERSE_UNRANKED = _text("universe.yaml").replace(
    "cache: {ttl: 24h, rebuild_on_regime_change: true}", "cache: {ttl: 5h, rebuild_on_regime_change: false}").replace(
    "rank: {by: volume_usd_24h, descending: true, top: params.top}", "rank: {top: 5}")


def _rules(tmp_path: Path, strategy: str, replace: dict[str, str] | None = None, regime: str | None = None):
    root = create_rules_dir(tmp_path, replace)
    return load_ruleset(root, {**shipped_files(strategy), **({"regime": regime} if regime else {})})


def _chunks(rules, sizes) -> list[Prepared]:
    parts = cut(sample_market(30, BARS), sizes)
    prep = ChunkedPreparer(rules, parts[0][1])
    return [prep.step(row0, chunk) for row0, chunk in parts]


def _same(name: str, a, b) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (name, a.dtype, b.dtype, a.shape, b.shape)
    assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), name
    # bit for bit: -0.0 is not 0.0, and NaN's bits are the whole run's too
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), name


def _rows(parts: list[Prepared], get) -> np.ndarray:
    return np.concatenate([np.asarray(get(p)) for p in parts])


def assert_rows_equal(whole: Prepared, parts: list[Prepared]) -> None:
    assert [p.extra["row0"] for p in parts] == list(np.cumsum([0] + [p.market.n_bars for p in parts[:-1]]))
    for f in ("available", "close", "regime_idx", "eligible", "universe", "rebuilds"):
        _same(f, _rows(parts, lambda p: getattr(p, f)), getattr(whole, f))
    for field in ("regime_masks", "filter_masks"):
        for k, v in getattr(whole, field).items():
            _same(f"{field}[{k}]", _rows(parts, lambda p: getattr(p, field)[k]), v)
    for g in ("entries", "exits", "vetoes", "guards"):
        _same(g, _rows(parts, lambda p: getattr(p, g).combined), getattr(whole, g).combined)
        for i, sr in enumerate(getattr(whole, g).series):
            _same(f"{g}[{sr.rule.id}]", _rows(parts, lambda p: getattr(p, g).series[i].mask), sr.mask)
        for i, cr in enumerate(getattr(whole, g).cycle):
            if cr.regime_ok is not None:
                _same(f"{g}[{cr.rule.id}].regime_ok", _rows(parts, lambda p: getattr(p, g).cycle[i].regime_ok),
                      cr.regime_ok)
    for k in ("spread_bps", "volume_usd", "volume_usd_24h", "bars_listed", "regime"):  # the loop's and rules' reads
        _same(k, _rows(parts, lambda p: p.store.arrays[k]), whole.store.arrays[k])


CASES = {
    "sma_cross": ("strategies/sma_cross.yaml", {}),
    "momentum": ("strategies/momentum.yaml", {}),
    "mean_reversion": ("strategies/mean_reversion.yaml", {}),
    "mean_reversion_no_on": ("strategies/mean_reversion.yaml",
                             {"strategies/mean_reversion.yaml": MEAN_REVERSION_NO_ON}),
    "regime_breadth": ("strategies/sma_cross.yaml", {"regime.yaml": REGIME_BREADTH}),
    "universe_unranked": ("strategies/sma_cross.yaml", {"universe.yaml": UNIVERSE_UNRANKED}),
    "mean_reversion_6h_4h": ("strategies/mean_reversion.yaml", {"strategies/mean_reversion.yaml": MEAN_REVERSION_6H_4H}),
    "regime_daily": ("strategies/sma_cross.yaml", {}, "regime_daily.yaml"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_chunked_prepare_equals_whole(tmp_path, case, layout):
    strategy, replace, *regime = CASES[case]
    rules = _rules(tmp_path, strategy, replace, *regime)
    whole = prepare(sample_market(30, BARS), rules)
    # the comparison is not vacuous: the universe is rebuilt, rules fire
    assert whole.n_rebuilds > 10 and whole.universe.any() and whole.entries.combined.any()
    assert whole.exits.combined.any() and len(set(whole.regime_idx.tolist())) > 1
    if case == "regime_breadth":
        assert whole.regime_masks["broad"].any()
    if case == "universe_unranked":
        u = whole.rules.universe
        assert u.rank_by is None and u.ttl_ms == 5 * 3_600_000 and not u.rebuild_on_regime_change
        assert whole.universe.sum(axis=1).max() == 5
    assert_rows_equal(whole, _chunks(rules, LAYOUTS[layout]))


@pytest.mark.parametrize("layout", ["short", "rows"])
@pytest.mark.parametrize("reads", ["every-chunk", "every-other-chunk"])
def test_market_and_index_series_over_chunks(layout, reads):
    """Every named series and the regime index's three series, chunk by chunk, are the whole
    run's rows (the masks above compare the index only through its rules' thresholds). Read on
    every other chunk only, the chunks between carry what no rule read from their bars alone
    (``MarketSeries.advance``: the forward-filled last values, the listing counts, the volume sums)."""
    market = sample_market(30, BARS)
    whole = market_series(market)
    index = index_series(market, whole["close"], ("stablecoin",))
    ms, ix = MarketSeries(market.timeframe), IndexSeries(market, ("stablecoin",), streams={})
    got: dict[str, list] = {}
    rows = []
    for n, (row0, chunk) in enumerate(cut(market, LAYOUTS[layout])):
        s = ms.series(chunk, row0)
        i = ix.series(chunk, s["close"])
        for k in ("close", "volume_usd", "breadth"):  # once read, the index is read on every chunk
            got.setdefault("index." + k, []).append(i[k])
        if reads == "every-chunk" or n % 2:
            rows.append(np.arange(row0, row0 + chunk.n_bars))
            for k in whole._builders:
                got.setdefault(k, []).append(np.asarray(s[k]))
        else:
            assert sorted(dict.keys(s)) == ["close"]  # what the index read: nothing else was built
        ix.advance(i, s["close"])
        ms.advance(s, chunk)
        if not (reads == "every-chunk" or n % 2):  # the carry built only the running volume sum's inputs
            assert sorted(dict.keys(s)) == ["available", "close", "volume", "volume_usd"]
    rows = np.concatenate(rows)
    assert reads == "every-chunk" or 0 < len(rows) < market.n_bars
    for k in whole._builders:
        _same(k, np.concatenate(got[k]), np.asarray(whole[k])[rows])
    for k in ("close", "volume_usd", "breadth"):
        _same("index." + k, np.concatenate(got["index." + k]), index[k])


def test_universe_carries_its_members_over_chunk_borders(tmp_path):
    """A 24h TTL with chunks of 7 bars: most rebuilds happen chunks after the last, from the
    carried deadline; rows between rebuilds keep the carried members."""
    rules = _rules(tmp_path, "strategies/sma_cross.yaml")
    parts = _chunks(rules, (7,))
    starts_without_rebuild = [p for p in parts[1:] if not p.rebuilds[0] and p.universe[0].any()]
    assert len(starts_without_rebuild) > len(parts) // 2
    assert_rows_equal(prepare(sample_market(30, BARS), rules), parts)


@pytest.mark.parametrize("layout", ["uneven", "short"])
def test_backtest_over_chunks_writes_the_in_memory_results(layout):
    cfg = compose_config([])
    rules = load_rules(cfg)
    market = sample_market(30, 24 * 120)
    settings = backtest_settings(cfg, market)
    whole = prepare(market, rules)
    parts = cut(market, LAYOUTS[layout] if layout == "uneven" else (37,))
    prep = ChunkedPreparer(rules, parts[0][1])
    chunked = run_chunks((prep.step(row0, chunk) for row0, chunk in parts), settings, whole)
    ref = run_backtest(whole, settings)
    assert len(ref.fills) > 50
    assert results_json(chunked) == results_json(ref)


# -- refused -------------------------------------------------------------------------------------


def _refusal(rules) -> str:
    with pytest.raises((RuleError, UserError)) as e:
        ChunkedPreparer(rules, sample_market(30, BARS))
    return str(e.value)


def test_refuses_a_series_function_without_a_stream(tmp_path, monkeypatch):
    """Every function streams today; one added without a stream is refused before the first chunk."""
    import dataclasses

    monkeypatch.setitem(FUNCTIONS, "rsi", dataclasses.replace(FUNCTIONS["rsi"], stream=None))
    msg = _refusal(_rules(tmp_path, "strategies/momentum.yaml"))
    assert "rule 'strong_week'" in msg and "rsi() has no chunked form yet (rsi(close, 14))" in msg


@pytest.mark.parametrize("allocation", ["fixed", "inverse_vol"])
def test_a_book_over_chunks_is_the_whole_run(allocation):
    """Two strategies in one account (each its own groups, size and priority on the chunk's store;
    an inverse-volatility book's trailing volatility streamed) under the daily regime."""
    overrides = ["book=trend_reversion", f"book.allocation={allocation}", "book.vol_window=48"]
    if allocation == "inverse_vol":
        overrides += ["~book.strategies.trend.weight", "~book.strategies.reversion.weight"]
    cfg = compose_config(overrides)
    rules = load_rules(cfg)
    whole = prepare(sample_market(30, BARS), rules)
    parts = _chunks(rules, LAYOUTS["uneven"])
    assert_rows_equal(whole, parts)
    for i, sl in enumerate(whole.book.sleeves):
        assert sl.entries.combined.any()
        _same(f"{sl.name}.entries", _rows(parts, lambda p: p.book.sleeves[i].entries.combined), sl.entries.combined)
        _same(f"{sl.name}.exits", _rows(parts, lambda p: p.book.sleeves[i].exits.combined), sl.exits.combined)
    if allocation == "inverse_vol":
        _same("book.vol", _rows(parts, lambda p: p.book.vol), whole.book.vol)
    settings = backtest_settings(cfg, whole.market)
    ref = run_backtest(whole, settings)
    prep = ChunkedPreparer(rules, whole.market.select(stop=10))
    chunked = run_chunks((prep.step(r0, c) for r0, c in cut(whole.market, LAYOUTS["uneven"])), settings, whole)
    assert len({f.rule for f in ref.fills}) > 2 and results_json(chunked) == results_json(ref)


def test_refuses_chunks_out_of_order(tmp_path):
    rules = _rules(tmp_path, "strategies/sma_cross.yaml")
    parts = cut(sample_market(30, BARS), (50,))
    prep = ChunkedPreparer(rules, parts[0][1])
    prep.step(*parts[0])
    with pytest.raises(ValueError, match="chunks out of order: a chunk starts at row 100, expected 50"):
        prep.step(*parts[2])
