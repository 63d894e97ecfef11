"""Bursts through real ccxt: no pool ever over its rate, no 429.

The mixed burst: 200 public and private calls from four threads (adapters sharing one budget, as
one key would), at half Coinbase's limits (public 5/s, private 15/s, its 1:3) so that even a
loaded machine sends faster than the limits and the budget has to hold it back; the emulator
enforces the limits over any sliding 1-second window and records every arrival, so the peak it
*saw* is measured, not assumed. The order bursts run at each exchange's real limits.
"""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.exchange import ErrorKind, ExchangeAdapter, ExchangeCallError
from tests.helpers.burst import order_burst
from tests.helpers.exchange import emulator_and_adapter, env_for, throwaway_test_credentials

PUBLIC, PRIVATE = 5.0, 15.0


def run_burst(emu, ad, n: int = 500, threads: int = 1) -> dict:
    """n calls; with threads > 1, extra adapters share ``ad``'s budget (one key, one IP)."""
    symbols = list(ad.markets())
    since = emu.market.now_ms() - 5 * 3_600_000
    adapters = [ad] + [ExchangeAdapter(ad.config, environ=env_for(throwaway_test_credentials()), budget=ad.budget)
                       for _ in range(threads - 1)]
    for extra in adapters[1:]:
        extra.markets()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: _calls(adapters[k], symbols, since, range(k, n, threads)), range(threads)))
    elapsed = time.perf_counter() - t0
    for extra in adapters[1:]:
        extra.close()
    return {"elapsed_s": elapsed, "server_peak": {p: emu.peak_rate(p) for p in ("public", "private")},
            "client": ad.rate_metrics(), "server_429": dict(emu.rate_limited)}


def _calls(ad, symbols, since, indices) -> None:
    for i in indices:
        k = i % 5
        if k == 0:
            ad.ohlcv(symbols[i % len(symbols)], "1h", since, 5)  # public
        elif k in (1, 2):
            ad.best_bid_ask(symbols[:3])  # private
        elif k == 3:
            ad.balances()  # private
        else:
            ad.open_orders()  # private


def test_a_mixed_burst_never_exceeds_a_pool_and_never_draws_a_429(capsys):
    with emulator_and_adapter(limits=(PUBLIC, PRIVATE)) as (emu, ad):
        ad.markets()
        before = emu.request_count() + 3 * 3  # each extra adapter's markets() costs 3 requests
        r = run_burst(emu, ad, n=200, threads=4)
        sent = emu.request_count() - before
    assert r["server_429"] == {"public": 0, "private": 0}, r["server_429"]
    assert sent == 200
    assert r["server_429"] == {"public": 0, "private": 0}
    assert r["client"]["public"]["rate_limited"] == 0 and r["client"]["private"]["rate_limited"] == 0
    assert r["server_peak"]["public"] <= PUBLIC and r["server_peak"]["private"] <= PRIVATE
    assert r["client"]["public"]["pauses"] > 0 and r["client"]["private"]["pauses"] > 0  # the budget kept it under
    assert r["client"]["public"]["alerts"] >= 1  # and the 80% alert fired
    with capsys.disabled():
        print(f"\n[burst] 200 calls in {r['elapsed_s']:.2f}s; server-measured peak req/s: "
              f"public {r['server_peak']['public']:.0f}/{PUBLIC:.0f}, private {r['server_peak']['private']:.0f}/{PRIVATE:.0f}; "
              f"client peak: public {r['client']['public']['peak_rate']:.0f}, private {r['client']['private']['peak_rate']:.0f}")


def test_an_unbudgeted_client_does_draw_429s():
    """Control: with the client's budget far above the server's limit, requests past the limit are
    refused. The server's rate clock is frozen, so every request lands in one window however slowly
    a loaded machine sends them: the refusal comes at exactly the request past the limit."""
    with emulator_and_adapter(limits=(PUBLIC, PRIVATE), client_limits=(10_000.0, 10_000.0), max_attempts=1,
                              server_clock=lambda: 1_000.0) as (emu, ad):
        ad.markets()
        already = emu.request_count("private")  # markets() is private on Coinbase v3
        refused = None
        for k in range(int(PRIVATE) + 1):
            try:
                ad.balances()
            except ExchangeCallError as e:
                refused = (k, e.kind)
                break
        assert refused == (int(PRIVATE) - already, ErrorKind.RATE_LIMIT)
        assert emu.rate_limited == {"public": 0, "private": 1}
        assert ad.rate_metrics()["private"]["rate_limited"] == 1 and ad.rate_metrics()["private"]["pauses"] == 0


# past each exchange's tightest order pool at its real limits: Coinbase private 30/s (27 after the
# margin), Kraken's per-pair order counter (54 of 60), Binance's orders per 10 s (90 of 100)
ORDER_BURSTS = [("local_sim", 40, "private"), ("kraken_sim", 58, "orders"), ("binance_sim", 95, "orders_10s")]


@pytest.mark.slow
@pytest.mark.parametrize("profile,n,pool", ORDER_BURSTS, ids=[p for p, _, _ in ORDER_BURSTS])
def test_an_order_burst_at_each_exchanges_real_limits_draws_no_rate_limit_answer(profile, n, pool):
    r = order_burst(profile, n)
    assert r["placed"] == r["at_exchange"] == n and r["refused"] == 0
    assert r["server_429"] == 0 and r["server_418"] == 0
    assert r["client"][pool]["pauses"] >= 1  # the budget held the burst back, on the pool that binds
    peak, limit, _ = r["server_peak"][pool]
    assert peak <= limit
