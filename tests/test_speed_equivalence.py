"""The speed work keeps every number bit for bit.

The digests below were recorded with the code as it was before the speed work (commit
d2a848e): every series function over panels with listing prefixes, holes, flat and
never-valid columns, narrow (scipy) and wide (row-loop) shapes; every market column and
the regime index over a wide and a narrow market. A faster kernel that changes a single
bit of any of them fails here. Whole runs are held by tests/test_backtest_baselines.py
(committed results) and tests/test_backtest_fastpath.py (fast path == per-bar path).
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.cycle.features import cumsum_rows, index_series, market_series
from engine.rules.functions import FUNCTIONS
from tests.helpers.speed import PANEL_SHAPES, SERIES_CALLS, call_series, digest, panel_market, price_panel

FEATURES = ['open', 'high', 'low', 'close', 'volume', 'volume_usd', 'volume_usd_24h', 'spread_bps', 'bars_listed', 'available', 'min_notional']
EXCLUDES = [('stablecoin',), (), ('stablecoin', 'L1', 'meme', 'DeFi', 'AI')]

FUNCTION_DIGESTS = {'0:sma(5,)': '0b82bbc3118af30bfb9a2184',
 '0:sma(48,)': '21b72536671b478a666dfb4b',
 '0:sma(1,)': 'f59191f32ec02fa30163d10a',
 '0:rolling_sum(7,)': 'a1ad86fb3ae5f6465d112d9e',
 '0:wma(6,)': 'b978b74ed92c953ae40a9c72',
 '0:std(9,)': 'ef5f9dfb59a974b5ca383700',
 '0:zscore(9,)': '5acd104be85356bfef6a909f',
 '0:ema(10,)': '851f57c3ff46b9ba529cbec6',
 '0:rsi(14,)': '70336d14b8cdeb6820aca508',
 '0:lag(3,)': '0b4c143036a77f5e76edcc70',
 '0:pct_change(1,)': 'f08e5333d43f5ca5b52ae5cc',
 '0:pct_change(600,)': '544be7f2c123c2eb0f064543',
 '0:returns(5,)': '9cb7e026f50b05b4444327e1',
 '0:rolling_max(8,)': '433842170bed6700480d4035',
 '0:rolling_min(30,)': '298d176e3efafc9e7b5747e6',
 '0:crossover': '11d4c3c5702b6f9848b95c25',
 '0:crossunder': 'a8e7477ca0cd86006a71937b',
 '0:atr': 'f0e7d1b66028bb8dcc8fb085',
 '0:bars_since': '3fb63113830c621b3401b2fd',
 '1:sma(5,)': '92df4066a704ddbb63e21813',
 '1:sma(48,)': '2e704a0742cd7ce1db11d41c',
 '1:sma(1,)': '25cae97a402330a3c3080b16',
 '1:rolling_sum(7,)': '58110aaf4ae04bc12c9cc520',
 '1:wma(6,)': 'b5c8cbc54f19e863fb00d934',
 '1:std(9,)': '9543927ed3fd20314c0a02de',
 '1:zscore(9,)': 'a68bae89f514ce5132ce321c',
 '1:ema(10,)': '64400e71c80b6c02ec913abe',
 '1:rsi(14,)': '84d347789138156e441e15e2',
 '1:lag(3,)': '275b6cfb244818525372eb33',
 '1:pct_change(1,)': '1cd6c6c37ea01c781b9295ef',
 '1:pct_change(600,)': '544be7f2c123c2eb0f064543',
 '1:returns(5,)': '0aaa47cbe2623bfd15a0571d',
 '1:rolling_max(8,)': 'cf7e237cb7af21e749969ec4',
 '1:rolling_min(30,)': '2b3875bd7293173ed36abb93',
 '1:crossover': '040da182a4bf459ab8732275',
 '1:crossunder': 'f7c0dede20a6f3833c5c5c70',
 '1:atr': '304e83749b5699febb62636e',
 '1:bars_since': '7974fd27c826fc78d51e2aee',
 '2:sma(5,)': '202f4277dee3ff79fe5ad33b',
 '2:sma(48,)': '3142139ae4803c0aa6b1d18f',
 '2:sma(1,)': 'f5e0a2b53ce51d00ab72b8e6',
 '2:rolling_sum(7,)': 'bd73c1d2852d1e1dc9450eca',
 '2:wma(6,)': '0c21464a4f63cc2f029aac6e',
 '2:std(9,)': 'fa9c2ab50d7f06b409960dc2',
 '2:zscore(9,)': 'fae8dbcac8d75aab11421276',
 '2:ema(10,)': '931dd8cbe6b73cea82b6fb57',
 '2:rsi(14,)': '7df406e5098a0ad9a26ee56c',
 '2:lag(3,)': 'd237dbbcfefc2359f262e810',
 '2:pct_change(1,)': '1e1858792811f8b907075c9c',
 '2:pct_change(600,)': 'c872b900f714284af4429d7d',
 '2:returns(5,)': 'b64a64018002fb4e91cea046',
 '2:rolling_max(8,)': '67e219432b103e30681c2dbb',
 '2:rolling_min(30,)': '75c512d9e2b3d2e3550b5462',
 '2:crossover': 'a41c18d5e0851737418a5dd7',
 '2:crossunder': 'eaf3937fa470def38b21602c',
 '2:atr': '575dfe2fb8318ab47a5222f2',
 '2:bars_since': '994218907e94788194899d0f',
 '3:sma(5,)': '0025686c520998ea2bf33c8d',
 '3:sma(48,)': '4f32b676e4eda54138d6ea5f',
 '3:sma(1,)': '07d5c025ae5ad4dc787daf74',
 '3:rolling_sum(7,)': '1f76b8eee4e6b93e6f2e7db1',
 '3:wma(6,)': 'c75e42091ed4511f34de334c',
 '3:std(9,)': '795e5d0e54ac6dcea87a1174',
 '3:zscore(9,)': 'ebc540c73f8d10fe945c60e9',
 '3:ema(10,)': '7a7ba85c392899063acddbe6',
 '3:rsi(14,)': 'ae1ad8470153417403297e19',
 '3:lag(3,)': '141b8726f5eddd315ad97d36',
 '3:pct_change(1,)': '4c4da5b50a03a6431071b116',
 '3:pct_change(600,)': 'c1f3469631f64b00773dd4a0',
 '3:returns(5,)': 'b8a59ebefbfc4e63c411f6a4',
 '3:rolling_max(8,)': '7dceb2772d87f26ef00f3da6',
 '3:rolling_min(30,)': '8e9387dfa388eedf46c0bc72',
 '3:crossover': 'c3e48e384a2a08fbec29d027',
 '3:crossunder': 'a3eedccf142eb741c576ed85',
 '3:atr': '395bde20b163d886f5ded2e0',
 '3:bars_since': '5f3fdd3824b7bb6b89b5d548',
 '4:sma(5,)': '7e713a62f364178bf854aff4',
 '4:sma(48,)': '22953667d20d48761c3bb050',
 '4:sma(1,)': '56203ffe5650e7616a430a56',
 '4:rolling_sum(7,)': '243ec5141889534058c52df4',
 '4:wma(6,)': '0fe6c4d2df59dd51a67b1add',
 '4:std(9,)': 'cd6b5a5cc3325e4a0466adf8',
 '4:zscore(9,)': '36f11942aae8dd40f6a72c7b',
 '4:ema(10,)': '42cb9a1bd1168e788e88bada',
 '4:rsi(14,)': '3e9b080e2ee480490f1e5469',
 '4:lag(3,)': '653ba9443b7ddfbea737957c',
 '4:pct_change(1,)': '71eb6c6deba2904043c58db5',
 '4:pct_change(600,)': '22953667d20d48761c3bb050',
 '4:returns(5,)': '182511392d5af0c07d12ea14',
 '4:rolling_max(8,)': '641c8e43797a70c71f7e0621',
 '4:rolling_min(30,)': 'e54adeb769a0861a13032f10',
 '4:crossover': 'e5fe37b4c1d86cda47aa4a8d',
 '4:crossunder': 'b9f3379b2d3a0f8b29b32ef0',
 '4:atr': 'ea723d15697d3e9443c40145',
 '4:bars_since': '22953667d20d48761c3bb050',
 '5:sma(5,)': '57e4fbfdac16cce219992e16',
 '5:sma(48,)': '57e4fbfdac16cce219992e16',
 '5:sma(1,)': 'f51da6f630ddd7be92e8c6a6',
 '5:rolling_sum(7,)': '57e4fbfdac16cce219992e16',
 '5:wma(6,)': '57e4fbfdac16cce219992e16',
 '5:std(9,)': '57e4fbfdac16cce219992e16',
 '5:zscore(9,)': '57e4fbfdac16cce219992e16',
 '5:ema(10,)': '57e4fbfdac16cce219992e16',
 '5:rsi(14,)': '57e4fbfdac16cce219992e16',
 '5:lag(3,)': '57e4fbfdac16cce219992e16',
 '5:pct_change(1,)': '68c4e3673019061db7f32b2c',
 '5:pct_change(600,)': '57e4fbfdac16cce219992e16',
 '5:returns(5,)': '57e4fbfdac16cce219992e16',
 '5:rolling_max(8,)': '57e4fbfdac16cce219992e16',
 '5:rolling_min(30,)': '57e4fbfdac16cce219992e16',
 '5:crossover': '16dcb008c0dec42d22a9c6ff',
 '5:crossunder': '16dcb008c0dec42d22a9c6ff',
 '5:atr': '57e4fbfdac16cce219992e16',
 '5:bars_since': '57e4fbfdac16cce219992e16',
 '6:sma(5,)': '2765a79a3fc14a6ded19305f',
 '6:sma(48,)': '2765a79a3fc14a6ded19305f',
 '6:sma(1,)': 'ab46ad1b326f7fea0346decb',
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
 '6:bars_since': '2765a79a3fc14a6ded19305f'}

FEATURE_DIGESTS = {'90:open': 'cbe7bb6e1600fdebaefcad6b',
 '90:high': '5709aa4a46d941c919bbd2a4',
 '90:low': 'c5573ba4829b9be9e2788c81',
 '90:close': '50f107106756abb65481ce07',
 '90:volume': '6a08aff59618c9d12e6506ca',
 '90:volume_usd': '8352366e2f022c3899f666fa',
 '90:volume_usd_24h': 'b65c9cf56ea0b963e2a1fca1',
 '90:spread_bps': 'd8ff50e19208e148737fa2aa',
 '90:bars_listed': '6449f2fe65276ee7eb7f1c3d',
 '90:available': 'fd28c7ab9a33c2b349325e71',
 '90:min_notional': 'd1fdf5475e961e794138c66a',
 "90:index('stablecoin',):close": '297ca138df65e0e39bae45eb',
 "90:index('stablecoin',):volume_usd": '50fbc594a5756f6ec6e3d827',
 "90:index('stablecoin',):breadth": 'c20907dc6a437d806d957c34',
 '90:index():close': '444024742a116ed0cb3f22e9',
 '90:index():volume_usd': '102a25db378aebca19dac161',
 '90:index():breadth': '3a09e63f8439fd0e9e5fbfea',
 "90:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):close": '444024742a116ed0cb3f22e9',
 "90:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):volume_usd": 'dab71fdaa603c68db09b0e5d',
 "90:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):breadth": '3a09e63f8439fd0e9e5fbfea',
 '12:open': '731f5cb1c4d95b3a215c872d',
 '12:high': 'be8ccd4e41b5070fbc475099',
 '12:low': '55d358934bb3517671458977',
 '12:close': 'dfeb377486d7891f133f2615',
 '12:volume': '06d014de025adce13767cae5',
 '12:volume_usd': '61203074a8dc252a501543e5',
 '12:volume_usd_24h': '5d9398a8bb4fbaa992555b4b',
 '12:spread_bps': 'ae8560b56161f481f564559e',
 '12:bars_listed': 'e4f6b3d2de536290efaeed49',
 '12:available': '9769bf352b1d16b3e3382a7f',
 '12:min_notional': 'e7aff323574888cc3a1d86d2',
 "12:index('stablecoin',):close": 'd099e3749f97fd3bb176dbe2',
 "12:index('stablecoin',):volume_usd": '2db9f3829fe4a3be08eca4ec',
 "12:index('stablecoin',):breadth": 'adce8cb5155378650e0d6ab0',
 '12:index():close': '561789d65a9a25ae7676e696',
 '12:index():volume_usd': 'a4201fce61b3cf2cea5c4902',
 '12:index():breadth': 'e21769ff1e18b6b218314b5c',
 "12:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):close": '561789d65a9a25ae7676e696',
 "12:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):volume_usd": 'dab71fdaa603c68db09b0e5d',
 "12:index('stablecoin', 'L1', 'meme', 'DeFi', 'AI'):breadth": 'e21769ff1e18b6b218314b5c'}


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

    from engine.cycle.prepare import _universe
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
                got = _universe(SimpleNamespace(universe=u), SimpleNamespace(times=times), None, eligible, regime)
                want = reference_universe(u, times, eligible, key if ranked else None, regime)
                assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


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
    from tests.helpers.backtest import results_json, sample_market
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
    assert sorted(fast.trace.events) == sorted(slow.trace.events)
    for key, ev in slow.trace.events.items():
        got = fast.trace.events[key]
        assert [t for t, _ in got] == [t for t, _ in ev], key
        assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(got, ev)), key
    assert dict(fast.trace.halts) == dict(slow.trace.halts)
