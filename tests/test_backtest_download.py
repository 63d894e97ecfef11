"""engine.market.download against a local stub of Coinbase's public candles endpoint."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import ccxt
import numpy as np
import pytest

from engine.market.download import download
from engine.market.loaders import load_csv_dir
from engine.market.validate import DataError

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


@pytest.fixture
def stub():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    srv.requests, srv.bars = [], {}
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def exchange(srv) -> ccxt.coinbase:
    ex = ccxt.coinbase({"enableRateLimit": False})
    ex.urls["api"] = {"rest": f"http://127.0.0.1:{srv.server_address[1]}"}
    ex.set_markets([{"id": f"{b}-USDC", "symbol": f"{b}/USDC", "base": b, "quote": "USDC", "baseId": b,
                     "quoteId": "USDC", "type": "spot", "spot": True, "active": True} for b in ("BTC", "ETH")])
    return ex


def test_download_pages_and_writes_loadable_csv(stub, tmp_path):
    stub.bars["BTC-USDC"] = [(T0 + i * HOUR, 40_000.0 + i) for i in range(700)]
    stub.bars["ETH-USDC"] = [(T0 + i * HOUR, 2_000.0 + i) for i in range(700) if i != 5]  # one missing bar
    done = download(exchange(stub), ["BTC/USDC", "ETH/USDC"], "1h", T0 * 1000, (T0 + 650 * HOUR) * 1000,
                    tmp_path, page=300)
    assert [(d.symbol, d.new) for d in done] == [("BTC/USDC", 650), ("ETH/USDC", 649)]
    assert len([r for r in stub.requests if "BTC-USDC" in r[0]]) == 3  # 300 + 300 + 50
    md = load_csv_dir(tmp_path, "1h")
    assert md.symbols == ("BTC/USDC", "ETH/USDC") and md.n_bars == 650
    j = md.index_of("BTC/USDC")
    assert md.open[0, j] == 40_000.0 and md.close[649, j] == pytest.approx(40_649 * 1.005)
    assert np.isnan(md.close[5, md.index_of("ETH/USDC")])


def test_download_extends_existing_file(stub, tmp_path):
    stub.bars["BTC-USDC"] = [(T0 + i * HOUR, 100.0 + i) for i in range(48)]
    ex = exchange(stub)
    download(ex, ["BTC/USDC"], "1h", T0 * 1000, (T0 + 24 * HOUR) * 1000, tmp_path)
    (d,) = download(ex, ["BTC/USDC"], "1h", (T0 + 20 * HOUR) * 1000, (T0 + 48 * HOUR) * 1000, tmp_path)
    assert (d.new, d.bars) == (28, 48)
    assert load_csv_dir(tmp_path, "1h").n_bars == 48


def test_download_rejects_bad_bars_before_writing(stub, tmp_path):
    bars = [(T0 + i * HOUR, 100.0) for i in range(10)]
    bars[4] = (T0 + 4 * HOUR, -1.0)
    stub.bars["BTC-USDC"] = bars
    with pytest.raises(DataError, match="BTC/USDC"):
        download(exchange(stub), ["BTC/USDC"], "1h", T0 * 1000, (T0 + 10 * HOUR) * 1000, tmp_path)
    assert not list(tmp_path.glob("*.csv"))
