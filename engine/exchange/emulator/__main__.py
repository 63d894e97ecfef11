"""Run the Coinbase emulator for manual use:

    python -m engine.exchange.emulator --port 8765 --seed 7 --speed 60 --print-keys

With ``--print-keys`` it prints throwaway credentials as ``export`` lines; point
``exchange.rest_url`` at the printed URL and set the env vars the config names.
"""
from __future__ import annotations

import argparse
import shlex
import time

from .server import CoinbaseEmulator


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m engine.exchange.emulator", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--products", type=int, default=8)
    ap.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second (0 = frozen)")
    ap.add_argument("--public-limit", type=float, default=10.0)
    ap.add_argument("--private-limit", type=float, default=30.0)
    ap.add_argument("--print-keys", action="store_true", help="print throwaway keys the emulator will accept")
    ap.add_argument("--key-env", default="COINBASE_API_KEY")
    ap.add_argument("--secret-env", default="COINBASE_API_SECRET")
    args = ap.parse_args(argv)
    keys = None
    if args.print_keys:
        from ..keys import public_key_of, throwaway_credentials
        creds = throwaway_credentials()
        keys = {creds.api_key: public_key_of(creds)}
    emu = CoinbaseEmulator(seed=args.seed, products=args.products, speed=args.speed or None,
                           limits={"public": args.public_limit, "private": args.private_limit},
                           api_keys=keys, host=args.host, port=args.port)
    try:
        emu.start()
    except OSError as exc:
        raise SystemExit(f"error: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
                         "expected a free port (--port, 0 for any free port)") from None
    print(f"Coinbase emulator listening on {emu.url} (seed {args.seed}, speed {args.speed}x); Ctrl-C stops it")
    if keys:
        print(f"export {args.key_env}={shlex.quote(creds.api_key)}")
        print(f"export {args.secret_env}={shlex.quote(creds.secret)}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
