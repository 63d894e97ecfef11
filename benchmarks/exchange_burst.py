"""Bursts of orders at each exchange profile's emulator through its real ccxt class, budgeted
(the profile's rate budget) against unbudgeted (a budget 1000x the limits that ignores Retry-After
and rate-limit answers), plus the mixed-call burst on Coinbase.

    python benchmarks/exchange_burst.py [--profiles local_sim,kraken_sim,binance_sim] [--orders N]
                                        [--mixed] [--calls 500] [--scale 2.5] [--threads 4]

Per run it prints: orders placed / refused, wall time, requests/s the server received, the 429s
(and Binance 418 bans) it answered, the client's waits (acquires that paused, seconds paused), and
per pool the peak the *server* measured against the exchange's limit. The default burst size per
profile is past its tightest order pool: Coinbase 30 private req/s, Kraken's per-pair order
counter (60, draining 1/s), Binance's 100 orders per 10 s.
"""
from __future__ import annotations

import argparse
import logging
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests.helpers.burst import PROFILES, order_burst  # noqa: E402

DEFAULT_ORDERS = {"local_sim": 120, "kraken_sim": 75, "binance_sim": 130}


def _print(r: dict) -> None:
    tag = "budgeted  " if r["budgeted"] else "unbudgeted"
    print(f"{r['profile']:12s} {tag} orders={r['orders']} placed={r['placed']} refused={r['refused']} "
          f"at_exchange={r['at_exchange']} elapsed={r['elapsed_s']:.2f}s requests={r['requests']} "
          f"req/s={r['requests'] / max(r['elapsed_s'], 1e-9):.1f} 429s={r['server_429']} 418s={r['server_418']} "
          f"waits={r['waits']} waited_s={r['waited_s']:.2f}")
    for pool, (peak, limit, unit) in r["server_peak"].items():
        c = r["client"].get(pool, {})
        print(f"    {pool:10s} server peak {peak:g} / limit {limit:g} ({unit})  client pauses={c.get('pauses', 0)} "
              f"paused_s={c.get('paused_s', 0.0):.2f} rate_limited={c.get('rate_limited', 0)}")


def _mixed(a) -> None:
    from tests.helpers.exchange import emulator_and_adapter
    from tests.test_exchange_burst import run_burst
    pub, priv = 10.0 * a.scale, 30.0 * a.scale
    with emulator_and_adapter(limits=(pub, priv)) as (emu, ad):
        ad.markets()
        r = run_burst(emu, ad, n=a.calls, threads=a.threads)
    print(f"mixed calls={a.calls} threads={a.threads} limits public={pub:g}/s private={priv:g}/s "
          f"elapsed={r['elapsed_s']:.2f}s")
    for pool, limit in (("public", pub), ("private", priv)):
        c = r["client"][pool]
        print(f"  {pool:8s} server_peak={r['server_peak'][pool]:.0f}/s (limit {limit:g}) client_peak={c['peak_rate']:.1f}/s "
              f"requests={c['requests']} pauses={c['pauses']} paused_s={c['paused_s']:.2f} alerts={c['alerts']} "
              f"429s={r['server_429'][pool]}")


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # the unbudgeted runs' refusals are counted, not logged
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--orders", type=int, default=None, help="orders per burst (default: past each profile's order pool)")
    ap.add_argument("--mixed", action="store_true", help="also the mixed public/private call burst on Coinbase")
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--scale", type=float, default=2.5)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    for profile in filter(None, a.profiles.split(",")):
        n = a.orders or DEFAULT_ORDERS.get(profile, 100)
        for budgeted in (True, False):
            _print(order_burst(profile, n, budgeted))
    if a.mixed:
        _mixed(a)


if __name__ == "__main__":
    main()
