"""The speed work keeps every number bit for bit.

The digests below were recorded with the code as it was before the speed work (commit
d2a848e), and re-recorded when the test panels became CPU-independent (engine.detmath; the
kernels, then unchanged, matched d2a848e bit for bit on the old panels): every series function over panels with listing prefixes, holes, flat and
never-valid columns, narrow (scipy) and wide (row-loop) shapes; every market column and
the regime index over a wide and a narrow market. A faster kernel that changes a single
bit of any of them fails here. Whole runs are held by tests/test_backtest_baselines.py
(committed results) and tests/test_backtest_fastpath.py (fast path == per-bar path).
The same digests hold at every numpy dispatch level (tests/test_determinism.py, .ci/run).
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.cycle.features import cumsum_rows, index_series, market_series
from engine.rules.functions import FUNCTIONS
from tests.helpers.speed import PANEL_SHAPES, SERIES_CALLS, call_series, digest, panel_market, price_panel

FEATURES = ['open', 'high', 'low', 'close', 'volume', 'volume_usd', 'volume_usd_24h', 'spread_bps', 'bars_listed', 'available', 'min_notional']
EXCLUDES = [('stablecoin',), (), ('stablecoin', 'L1', 'meme', 'DeFi', 'AI')]

FUNCTION_DIGESTS = {'0:sma(5,)': '9eb6eae52ffb61025858edaa',
 '0:sma(48,)': '5ba0cdfabccb03d94f420cd1',
 '0:sma(1,)': 'e57a113ea52418a209f8d9de',
 '0:rolling_sum(7,)': 'd6b836ffd5be13e31df471d6',
 '0:wma(6,)': '0dabbe77f5d227237f8b3342',
 '0:std(9,)': '548b90f5491dc82d241ce7f0',
 '0:zscore(9,)': 'f4329101a590e864a2f12bb4',
 '0:ema(10,)': '5178385fddb4b0f52b217a44',
 '0:rsi(14,)': 'c72026cc3a78094f12d45118',
 '0:lag(3,)': 'bfae445e46774281ceb3192c',
 '0:pct_change(1,)': '8d79085b6547045b4c565dfc',
 '0:pct_change(600,)': '544be7f2c123c2eb0f064543',
 '0:returns(5,)': 'a05cda7c92f8903750159cdf',
 '0:rolling_max(8,)': '3394fb85808a578ff3d3fb9a',
 '0:rolling_min(30,)': 'e89fd2ccf91e07e3e20f5c86',
 '0:crossover': 'f16a91ff9ccc1653450b1613',
 '0:crossunder': '39bc0492e9919b66e437fcef',
 '0:atr': 'c582d7af78f4a927fbfbfa81',
 '0:bars_since': 'f4486b1a4dc0db26b8b6e71f',
 '1:sma(5,)': 'b44192808c458506904d8599',
 '1:sma(48,)': 'b55ffb3a136cb1a33d3614d3',
 '1:sma(1,)': '6fb8a58cf4a721950149a0f8',
 '1:rolling_sum(7,)': '79cf0612d7f9dc8ca8e1e8ba',
 '1:wma(6,)': '9f04ea3d1506ec85c53b3eb4',
 '1:std(9,)': '43888137627d592d6934198f',
 '1:zscore(9,)': '6b37001be8061bc4e5716a3d',
 '1:ema(10,)': 'b548ddd0712e28158db5622b',
 '1:rsi(14,)': 'd601893fb7eef2c8c036bb88',
 '1:lag(3,)': '3fab25d4cb3079e4074c0ea1',
 '1:pct_change(1,)': 'c6823f685a25c151cb68c32f',
 '1:pct_change(600,)': '544be7f2c123c2eb0f064543',
 '1:returns(5,)': '1b9a195c93bd4836deafde5d',
 '1:rolling_max(8,)': '894971d52883b200178e8196',
 '1:rolling_min(30,)': '87eb895d9ee8bfa3f29083e7',
 '1:crossover': '170545971a065c578d71a3c1',
 '1:crossunder': '12f5116642485a9b510db01b',
 '1:atr': '71ee1e706e488e245eef6fd4',
 '1:bars_since': 'c21b73183c555ae6afaac9bd',
 '2:sma(5,)': 'f99d3a806e307f75e240bc16',
 '2:sma(48,)': '56cdefd33909618e2f532726',
 '2:sma(1,)': 'd1d06d0daa600458d62a214a',
 '2:rolling_sum(7,)': '3bdecf74b96dc731bf1a26cf',
 '2:wma(6,)': '09f9a1dcd1b2ed623fde510f',
 '2:std(9,)': '34a9489467acb77ca30b4dae',
 '2:zscore(9,)': 'ac1c45ae3673f7b7b69fba3f',
 '2:ema(10,)': '12705a236bb397cfec8f3140',
 '2:rsi(14,)': 'a44583f91a3251ccd2db4eb9',
 '2:lag(3,)': '7d5864c5d5585c55614276c2',
 '2:pct_change(1,)': 'b95f8a4ce9714046ba8075bd',
 '2:pct_change(600,)': 'c872b900f714284af4429d7d',
 '2:returns(5,)': 'aeb0305ee024d95d262e4664',
 '2:rolling_max(8,)': 'a8b239742e1836312f5d8526',
 '2:rolling_min(30,)': '3425d42ab4da44ff91c7f39d',
 '2:crossover': '562b2a781a6c8f6b1aef7603',
 '2:crossunder': 'c17544cf7b36ef9d0e553600',
 '2:atr': '107712a9757a695035757d1e',
 '2:bars_since': 'cae5c6ee3c353ccb43d7ac19',
 '3:sma(5,)': 'afb42fc44fc2bf79fa021d05',
 '3:sma(48,)': '84151fd8120a325971d23370',
 '3:sma(1,)': '59558ee2b1af36f4998e6073',
 '3:rolling_sum(7,)': '6c1ed97abc24306b11b69734',
 '3:wma(6,)': '3218180f327f9c896d9dfee1',
 '3:std(9,)': '91ce953ba30dbcff9f783929',
 '3:zscore(9,)': 'd67b9b6d99a48a93fdac0f02',
 '3:ema(10,)': '85d08e40a5f1524cfd39abf8',
 '3:rsi(14,)': '26d672d4c8b22943553c0359',
 '3:lag(3,)': '7369f419db0b8388c33897c7',
 '3:pct_change(1,)': '7bc556edefbee73979a70cae',
 '3:pct_change(600,)': '8ef8db8a0f3f5b8c17426a8d',
 '3:returns(5,)': '2f86d415604cfbab344eca13',
 '3:rolling_max(8,)': '15c9467f792d425ed8d07a6c',
 '3:rolling_min(30,)': '76457701d61abc4ea2427568',
 '3:crossover': '23cad37ee51174a0626534eb',
 '3:crossunder': '5478437b3bc34148a6e0564e',
 '3:atr': '888482d59c377fd619798d45',
 '3:bars_since': '005194e124ef1e2fec859173',
 '4:sma(5,)': '7aa629f18802e2ec27f8f9ed',
 '4:sma(48,)': '22953667d20d48761c3bb050',
 '4:sma(1,)': '4efb336f32b648e4ec6f6bc9',
 '4:rolling_sum(7,)': '28e2757affc454094ccf1694',
 '4:wma(6,)': 'e6f826aac3aa71fea6a7703e',
 '4:std(9,)': '1288d056847c9787c95cc8be',
 '4:zscore(9,)': '93e259b6382dee60a6e4ca52',
 '4:ema(10,)': 'e2772aea7293f7d8e9f144ee',
 '4:rsi(14,)': '2add0228e87aafdcdf47fb8f',
 '4:lag(3,)': 'c5f1b95fd2e773706bd6dd83',
 '4:pct_change(1,)': 'c89b4db0cac8abc8601aeb70',
 '4:pct_change(600,)': '22953667d20d48761c3bb050',
 '4:returns(5,)': 'fd6c8f24d82442f5a7c21604',
 '4:rolling_max(8,)': '64e215218632ca41d5bdd6dc',
 '4:rolling_min(30,)': 'ed7baa5b0f7104a945ce5e03',
 '4:crossover': 'b638a1f233bf91b81b748bd4',
 '4:crossunder': 'd2950917cf3989bd14a87bf9',
 '4:atr': '27ba6e3a14b07a43184b04db',
 '4:bars_since': '1451750bc8bbb6fa39dbb3d2',
 '5:sma(5,)': '57e4fbfdac16cce219992e16',
 '5:sma(48,)': '57e4fbfdac16cce219992e16',
 '5:sma(1,)': '1fc6deca432cb4657740bf57',
 '5:rolling_sum(7,)': '57e4fbfdac16cce219992e16',
 '5:wma(6,)': '57e4fbfdac16cce219992e16',
 '5:std(9,)': '57e4fbfdac16cce219992e16',
 '5:zscore(9,)': '57e4fbfdac16cce219992e16',
 '5:ema(10,)': '57e4fbfdac16cce219992e16',
 '5:rsi(14,)': '57e4fbfdac16cce219992e16',
 '5:lag(3,)': '57e4fbfdac16cce219992e16',
 '5:pct_change(1,)': '180083e089b77488230b7343',
 '5:pct_change(600,)': '57e4fbfdac16cce219992e16',
 '5:returns(5,)': '57e4fbfdac16cce219992e16',
 '5:rolling_max(8,)': '57e4fbfdac16cce219992e16',
 '5:rolling_min(30,)': '57e4fbfdac16cce219992e16',
 '5:crossover': '16dcb008c0dec42d22a9c6ff',
 '5:crossunder': '16dcb008c0dec42d22a9c6ff',
 '5:atr': '57e4fbfdac16cce219992e16',
 '5:bars_since': '229de9bc7289801ef1c1b0ec',
 '6:sma(5,)': '2765a79a3fc14a6ded19305f',
 '6:sma(48,)': '2765a79a3fc14a6ded19305f',
 '6:sma(1,)': 'e97ddbdcda0c762d5b42df0b',
 '6:rolling_sum(7,)': '2765a79a3fc14a6ded19305f',
 '6:wma(6,)': '2765a79a3fc14a6ded19305f',
 '6:std(9,)': '2765a79a3fc14a6ded19305f',
 '6:zscore(9,)': '2765a79a3fc14a6ded19305f',
 '6:ema(10,)': '2765a79a3fc14a6ded19305f',
 '6:rsi(14,)': '2765a79a3fc14a6ded19305f',
 '6:lag(3,)': '2765a79a3fc14a6ded19305f',
 '6:pct_change(1,)': '2765a79a3fc14a6ded19305f',
 '6:pct_change(600,)': '2765a79a3fc14a6ded19305f',
 '6:returns(5,)': '2765a79a3fc14a6ded19305f',
 '6:rolling_max(8,)': '2765a79a3fc14a6ded19305f',
 '6:rolling_min(30,)': '2765a79a3fc14a6ded19305f',
 '6:crossover': '863864537e10f355e91db7af',
 '6:crossunder': '863864537e10f355e91db7af',
 '6:atr': '2765a79a3fc14a6ded19305f',
 '6:bars_since': 'e56288798f789d09d7398145'}

FEATURE_DIGESTS = {'90:open': 'd6f2b64c3cbde3fc8f5fe842',
 '90:high': '6724838ab1ba6af76621e453',
 '90:low': '516e58c116eca1ce7b741ef2',
 '90:close': '1f3a59cfeb15c310d5295b13',
 '90:volume': '2d6f3067b725274976364cf2',
 '90:volume_usd': 'e837f3aedb9aeddc51e6913c',
 '90:volume_usd_24h': '42489458ce31a55e8e7af0b0',
 '90:spread_bps': 'd92ae2522cf01bd5c50513b6',
 '90:bars_listed': '8b8c4d6352a3da20140b1f4e',
 '90:available': '3be62859fe25f70e634e8d34',
 '90:min_notional': 'd1fdf5475e961e794138c66a',
 "90:index('stablecoin',):close": 'b15a804cb96cc481b5ee2c11',
 "90:index('stablecoin',):volume_usd": '263a088aa09c3a9513caeae7',
 "90:index('stablecoin',):breadth": '940cc048ec551dafcce7b543',
 '90:index():close': 'f4a3be7e372735d192f36b4c',
 '90:index():volume_usd': '979724256e72ed9898b7d607',
 '90:index():breadth': 'ba26467e264ae4022cb4d179',
 "90:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):close": 'f4a3be7e372735d192f36b4c',
 "90:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):volume_usd": 'dab71fdaa603c68db09b0e5d',
 "90:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):breadth": 'ba26467e264ae4022cb4d179',
 '12:open': '29e84843443d59cae95c4e11',
 '12:high': '4b897770b445f3297270a0a8',
 '12:low': '3372ca15f4fd8de28bf6b70a',
 '12:close': '3b0c1d6f75826799d59aef75',
 '12:volume': '8f7ab0a842709848a2a2e389',
 '12:volume_usd': '429c7e632418cca93465af48',
 '12:volume_usd_24h': '6976162f3d8926bec343c047',
 '12:spread_bps': '1e362d3d751915adcee78606',
 '12:bars_listed': '1af7ef99da1d93b72c1f0e2a',
 '12:available': '4bc0dfb5fffe532c12f992c5',
 '12:min_notional': 'e7aff323574888cc3a1d86d2',
 "12:index('stablecoin',):close": '6324003838c07de4f9d37cdf',
 "12:index('stablecoin',):volume_usd": '521f34b1f145b83d2701cde3',
 "12:index('stablecoin',):breadth": '9dbcf65fe630b24a7d5163ff',
 '12:index():close': 'e0c3cfde47cea54dea0798d1',
 '12:index():volume_usd': '80274676273de71de645adaf',
 '12:index():breadth': '844448bac25b36a19456628d',
 "12:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):close": 'e0c3cfde47cea54dea0798d1',
 "12:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):volume_usd": 'dab71fdaa603c68db09b0e5d',
 "12:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):breadth": '844448bac25b36a19456628d'}


@pytest.mark.parametrize("shape", range(len(PANEL_SHAPES)), ids=lambda i: "x".join(map(str, PANEL_SHAPES[i][:2])))
def test_series_functions_bit_identical(shape):
    x = price_panel(shape)
    got = {f"{shape}:{name}{args or ''}": digest(call_series(FUNCTIONS, name, args, x)) for name, args in SERIES_CALLS}
    want = {k: v for k, v in FUNCTION_DIGESTS.items() if k.startswith(f"{shape}:")}
    assert got == want


@pytest.mark.parametrize("n_symbols", [90, 12])
def test_market_columns_and_index_bit_identical(n_symbols):
    m = panel_market(n_symbols=n_symbols)
    s = market_series(m)
    got = {f"{n_symbols}:{k}": digest(s[k]) for k in FEATURES}
    for ex in EXCLUDES:
        idx = index_series(m, s["close"], ex)
        got.update({f"{n_symbols}:index{ex}:{k}": digest(idx[k]) for k in ("close", "volume_usd", "breadth")})
    assert got == {k: v for k, v in FEATURE_DIGESTS.items() if k.startswith(f"{n_symbols}:")}


@pytest.mark.parametrize("cols", [1, 255, 256, 300])
def test_row_cumsum_equals_numpy_cumsum(cols):
    rng = np.random.default_rng(cols)
    a = rng.lognormal(10, 2, (300, cols))
    a[rng.random(a.shape) < 0.1] = 0.0
    assert np.array_equal(cumsum_rows(a), np.cumsum(a, axis=0))
    b = rng.random((300, cols)) > 0.3
    assert np.array_equal(cumsum_rows(b), np.cumsum(b, axis=0, dtype=np.float64))


def test_index_is_lazy():
    """A regime file that reads only the index close never pays for breadth's 50-bar mean."""
    m = panel_market(n_symbols=30)
    idx = index_series(m, market_series(m)["close"], ("stablecoin",))
    assert "breadth" in idx and not dict.__contains__(idx, "breadth")
    idx["close"]
    assert not dict.__contains__(idx, "breadth")


def test_lazy_env_single_bar_equals_block_rows():
    """The env a busy bar reads and the one a quiet block reads give each bar the same bits,
    whichever values are read and in whatever order (they are built on first read)."""
    from engine.cycle.portfolio import Portfolio, portfolio_env

    m = panel_market(n_symbols=12)
    close = market_series(m)["close"]
    pf = Portfolio.empty(12, 10_000.0)
    pf.qty[[3, 5, 7]] = [1.5, 20.0, 0.25]
    pf.entry_price[[3, 5, 7]] = close[200, [3, 5, 7]] * [1.01, 0.97, 1.2]
    pf.entry_bar[[3, 5, 7]] = [190, 150, 199]
    pf.equity, pf.peak_equity, pf.day_start_equity, pf.prev_equity = 10_050.0, 10_400.0, 9_990.0, 10_020.0
    a, b = 250, 262
    rows = np.arange(a, b)[:, None]
    value = pf.value(close[a:b])
    eq = pf.cash + value
    col = lambda v: np.full((b - a, 1), v)  # noqa: E731
    block = portfolio_env(pf, close[a:b], rows, eq[:, None], value[:, None], col(pf.peak_equity),
                          col(pf.day_start_equity), col(pf.prev_equity))
    names = list(block.keys())
    assert len(names) == 14 and "portfolio.exposure" in names
    for k, t in enumerate(range(a, b)):
        pf.equity = float(eq[k])
        one = pf.env(close[t], t)
        for name in reversed(names):  # another order than the block's
            v = block[name]
            want = np.broadcast_to(v, (b - a, 12))[k] if np.ndim(v) == 2 else np.broadcast_to(v, (12,))
            got = np.broadcast_to(one[name], (12,))
            assert digest(got) == digest(want.astype(got.dtype)), (name, t)
    extended = pf.env(close[a], a).extended({"order.notional": np.ones(12)})
    assert "position.return_pct" in extended and extended["order.notional"].sum() == 12.0


@pytest.mark.parametrize("seed", range(6))
def test_universe_cache_jumps_between_rebuilds_like_the_per_bar_rule(seed):
    from types import SimpleNamespace

    from engine.cycle.prepare import UniverseCarry, universe_members
    from tests.helpers.speed import reference_universe

    rng = np.random.default_rng(seed)
    t, n = int(rng.integers(2, 400)), int(rng.integers(1, 30))
    eligible = rng.random((t, n)) > 0.3
    key = rng.random((t, n))
    key[rng.random((t, n)) < 0.1] = np.nan
    regime = (np.cumsum(rng.random(t) < 0.05) % 3).astype(np.int16)
    times = np.int64(1_700_000_000_000) + np.arange(t, dtype=np.int64) * 3_600_000
    for ttl in (0, 3_600_000, 5 * 3_600_000 + 1, 24 * 3_600_000, 10**15):
        for on_change in (True, False):
            for ranked in (True, False):
                rank = SimpleNamespace(series=lambda store: key) if ranked else None
                u = SimpleNamespace(rank_by=rank, top=int(rng.integers(1, 10)), descending=bool(rng.random() < 0.5),
                                    ttl_ms=ttl, rebuild_on_regime_change=on_change)
                k = key if ranked else None
                got = universe_members(u, times, k, eligible, regime, UniverseCarry())
                want = reference_universe(u, times, eligible, k, regime)
                assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
                # and in chunks, the rebuild state carried over each border (a chunked run)
                cuts = np.unique(np.concatenate(([0, t], rng.integers(1, t, size=3))))
                carry, parts = UniverseCarry(), []
                for a, b in zip(cuts, cuts[1:]):
                    parts.append(universe_members(u, times[a:b], None if k is None else k[a:b], eligible[a:b],
                                                  regime[a:b], carry))
                assert np.array_equal(np.concatenate([m for m, _ in parts]), want[0])
                assert np.array_equal(np.concatenate([r for _, r in parts]), want[1])


# An entry rule that reads the portfolio (a per-cycle rule), a 1-D per-cycle exit and a
# veto: the quiet-bar scanner's per-cycle branches, which the shipped strategies leave idle.
_CYCLE_STRATEGY = """kind: strategy
name: cycle_entries
params: {fast: 24, slow: 96, weight: 0.08, max_exposure: 0.5}
entry:
  - id: trend_with_room
    regimes: [bull, chop]
    when: sma(close, params.fast) > sma(close, params.slow) and portfolio.exposure < params.max_exposure
exit:
  - id: below_slow
    when: close < sma(close, params.slow)
  - id: held_long
    when: position.bars_held >= 72
size: params.weight
"""


@pytest.mark.parametrize("extra", [(), ("risk.params.daily_loss_limit=0.004", "risk.params.cooldown_bars=5")])
def test_fast_path_with_per_cycle_entries_matches_per_bar(tmp_path, extra):
    from engine.backtest.engine import run_backtest
    from engine.cycle.prepare import prepare
    from engine.modes.setup import backtest_settings, load_rules
    from tests.helpers.backtest import assert_same_trace_events, results_json, sample_market
    from tests.helpers.rules import create_rules_dir
    from tests.helpers.runs import compose_config

    rules_dir = create_rules_dir(tmp_path, {"strategies/cycle_entries.yaml": _CYCLE_STRATEGY})
    cfg = compose_config(list(extra))
    cfg["rules_dir"] = str(rules_dir)
    cfg["strategy"] = {"file": "strategies/cycle_entries.yaml", "params": {}}
    market = sample_market(30, 24 * 60)
    p = prepare(market, load_rules(cfg))
    s = backtest_settings(cfg, market)
    assert p.entries.cycle and p.exits.cycle
    slow, fast = run_backtest(p, s, fast=False), run_backtest(p, s, fast=True)
    assert fast.stats["skipped"] > 0 and len(slow.fills) > 0
    assert results_json(fast) == results_json(slow)
    assert_same_trace_events(fast, slow)
