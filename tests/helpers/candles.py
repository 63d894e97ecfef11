"""A local stand-in for Coinbase's public candles endpoint, and the real ccxt class aimed at it."""
from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlparse

import ccxt

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z, seconds
HOUR = 3600


def candle(ts: int, price: float) -> dict:
    return {"start": str(ts), "open": str(price), "high": str(price * 1.01), "low": str(price * 0.99),
            "close": str(price * 1.005), "volume": "12.5"}


class Stub(BaseHTTPRequestHandler):
    """Serves /api/v3/brokerage/market/products/<id>/candles for bars in ``self.server.bars``."""

    def do_GET(self):  # noqa: N802
        u = urlparse(self.path)
        parts = u.path.split("/")
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        self.server.requests.append((u.path, q))
        if parts[:6] != ["", "api", "v3", "brokerage", "market", "products"] or parts[-1] != "candles":
            self.send_error(404)
            return
        start, end = int(q["start"]), int(q["end"])
        bars = [candle(ts, p) for ts, p in self.server.bars.get(parts[6], []) if start <= ts < end]
        body = json.dumps({"candles": bars[::-1]}).encode()  # newest first, as Coinbase does
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@contextlib.contextmanager
def candle_server() -> Iterator[ThreadingHTTPServer]:
    """A server on 127.0.0.1 (free port): fill ``.bars[product_id] = [(ts_s, price), ...]``;
    ``.requests`` records ``(path, query)`` of every request."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    srv.requests, srv.bars = [], {}
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def exchange(srv) -> ccxt.coinbase:
    ex = ccxt.coinbase({"enableRateLimit": False})
    ex.urls["api"] = {"rest": f"http://127.0.0.1:{srv.server_address[1]}"}
    ex.set_markets([{"id": f"{b}-USDC", "symbol": f"{b}/USDC", "base": b, "quote": "USDC", "baseId": b,
                     "quoteId": "USDC", "type": "spot", "spot": True, "active": True} for b in ("BTC", "ETH")])
    return ex
