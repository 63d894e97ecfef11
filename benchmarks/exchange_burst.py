"""Measure the rate budget against the local emulator through real ccxt.

    python benchmarks/exchange_burst.py [--calls 500] [--scale 2.5] [--threads 4]

Prints the wall time, the per-pool peak request rate the *server* measured over any
1-second window, the client's own peak, pauses, alerts and 429s. Limits are Coinbase's
(public 10/s, private 30/s) times --scale, on both client and emulator.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests.helpers.exchange import emulator_and_adapter  # noqa: E402
from tests.test_exchange_burst import run_burst  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--scale", type=float, default=2.5)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    pub, priv = 10.0 * a.scale, 30.0 * a.scale
    with emulator_and_adapter(limits=(pub, priv)) as (emu, ad):
        ad.markets()
        r = run_burst(emu, ad, n=a.calls, threads=a.threads)
    print(f"calls={a.calls} threads={a.threads} limits public={pub:g}/s private={priv:g}/s elapsed={r['elapsed_s']:.2f}s")
    for pool, limit in (("public", pub), ("private", priv)):
        c = r["client"][pool]
        print(f"  {pool:8s} server_peak={r['server_peak'][pool]:.0f}/s (limit {limit:g}) client_peak={c['peak_rate']:.1f}/s "
              f"requests={c['requests']} pauses={c['pauses']} paused_s={c['paused_s']:.2f} alerts={c['alerts']} "
              f"429s={r['server_429'][pool]}")


if __name__ == "__main__":
    main()
