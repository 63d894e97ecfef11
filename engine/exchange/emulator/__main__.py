"""Run an exchange emulator (Coinbase, Kraken or Binance front end) for manual use:

    python -m engine.exchange.emulator --exchange kraken --port 8765 --seed 7 --speed 60 --print-keys

It prints the URL it listens on, then (``--print-keys``) throwaway credentials as ``export``
lines in the shape that exchange issues. Point a run at it with the exchange's profile, e.g.
``exchange=kraken exchange.rest_url=URL`` and the env var names it prints
(``exchange.api_key_env`` / ``exchange.api_secret_env`` of that profile by default).

Rate pools are each exchange's published figures (docs/exchange.md); ``--public-limit`` and
``--private-limit`` (requests per second) change Coinbase's two pools.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time

from . import EMULATORS

# the env var names each shipped profile (conf/exchange/<id>.yaml) reads its keys from
KEY_ENVS = {"coinbase": ("COINBASE_API_KEY", "COINBASE_API_SECRET"), "kraken": ("KRAKEN_API_KEY", "KRAKEN_API_SECRET"),
            "binance": ("BINANCE_API_KEY", "BINANCE_API_SECRET")}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m engine.exchange.emulator", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchange", choices=sorted(EMULATORS), default="coinbase",
                    help="which exchange's REST API to speak (default coinbase)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765, help="0 = any free port (printed)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--products", type=int, default=8)
    ap.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second (0 = frozen)")
    ap.add_argument("--quote", default="USDC", help="quote currency of the listed products (default USDC)")
    ap.add_argument("--public-limit", type=float, default=None, help="coinbase only: public requests/s (10)")
    ap.add_argument("--private-limit", type=float, default=None, help="coinbase only: private requests/s (30)")
    ap.add_argument("--print-keys", action="store_true", help="print throwaway keys the emulator will accept")
    ap.add_argument("--key-env", default=None, help="env var name for the key (default: the profile's)")
    ap.add_argument("--secret-env", default=None, help="env var name for the secret (default: the profile's)")
    return ap


def main(argv: list[str] | None = None) -> None:
    ap = _parser()
    args = ap.parse_args(argv)
    limits = None
    if args.public_limit is not None or args.private_limit is not None:
        if args.exchange != "coinbase":
            ap.error(f"--public-limit/--private-limit: found with --exchange {args.exchange}; they set Coinbase's "
                     "pools only (Kraken's and Binance's are their published figures)")
        limits = {"public": args.public_limit or 10.0, "private": args.private_limit or 30.0}
    keys = creds = None
    if args.print_keys:
        from ..keys import public_key_of, throwaway_credentials_for
        creds = throwaway_credentials_for(args.exchange)
        # Coinbase verifies ES256 JWTs with the public key; Kraken and Binance check HMACs with the secret
        keys = {creds.api_key: public_key_of(creds) if args.exchange == "coinbase" else creds.secret}
    emu = EMULATORS[args.exchange](seed=args.seed, products=args.products, speed=args.speed or None, limits=limits,
                                   quote_currency=args.quote, api_keys=keys, host=args.host, port=args.port)
    try:
        emu.start()
    except OSError as exc:
        print(f"error: --port: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
              "expected a free port (0 for any free port)", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{args.exchange.capitalize()} emulator listening on {emu.url} (seed {args.seed}, speed {args.speed}x); "
          f"use exchange={args.exchange} exchange.rest_url={emu.url}; Ctrl-C stops it", flush=True)
    if creds is not None:
        key_env, secret_env = KEY_ENVS[args.exchange]
        print(f"export {args.key_env or key_env}={shlex.quote(creds.api_key)}")
        print(f"export {args.secret_env or secret_env}={shlex.quote(creds.secret)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
