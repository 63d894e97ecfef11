"""The emulator's HTTP server (``EmulatorBase``) and its Coinbase Advanced Trade front end.

Kraken's and Binance's front ends (``kraken.py``, ``binance.py``) subclass ``EmulatorBase`` over
the same matching engine (``book.py``). The Coinbase front end serves the endpoints the adapter
uses on 127.0.0.1.

    with CoinbaseEmulator(seed=7) as emu:          # step mode: tests move the market
        client.urls["api"]["rest"] = emu.url
        emu.set_quote("BTC-USDC", 99.0, 101.0); emu.advance()
        emu.faults.add("lost_response", endpoint="create_order")

Private endpoints require a well-formed ES256 JWT (``Authorization: Bearer``); when
``api_keys`` maps key names to public keys the signature is verified too. Each pool
(public per client, private per key) is rate-limited over a sliding 1-second window and
every arrival is recorded, so tests can measure the peak rate the server saw.
"""
from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from engine.market.data import timeframe_ms

from .book import MAKER_FEE, TAKER_FEE, OrderBook, Rejection, iso_ms
from .faults import FaultPlan
from .market import SimMarket

GRANULARITY_MS = {g: timeframe_ms(tf) for g, tf in (
    ("ONE_MINUTE", "1m"), ("FIVE_MINUTE", "5m"), ("FIFTEEN_MINUTE", "15m"), ("THIRTY_MINUTE", "30m"),
    ("ONE_HOUR", "1h"), ("TWO_HOUR", "2h"), ("SIX_HOUR", "6h"), ("ONE_DAY", "1d"))}

ROUTES = (  # method, path regex, route name, pool
    ("GET", r"/api/v3/brokerage/time", "time", "public"),
    ("GET", r"/api/v3/brokerage/market/products", "products", "public"),
    ("GET", r"/api/v3/brokerage/products", "products", "private"),
    ("GET", r"/api/v3/brokerage/market/products/(?P<pid>[^/]+)/candles", "candles", "public"),
    ("GET", r"/api/v3/brokerage/products/(?P<pid>[^/]+)/candles", "candles", "private"),
    ("GET", r"/api/v3/brokerage/best_bid_ask", "best_bid_ask", "private"),
    ("GET", r"/api/v3/brokerage/accounts", "accounts", "private"),
    ("GET", r"/api/v3/brokerage/transaction_summary", "transaction_summary", "private"),
    ("POST", r"/api/v3/brokerage/orders", "create_order", "private"),
    ("POST", r"/api/v3/brokerage/orders/batch_cancel", "cancel_orders", "private"),
    ("GET", r"/api/v3/brokerage/orders/historical/batch", "list_orders", "private"),
    ("GET", r"/api/v3/brokerage/orders/historical/fills", "fills", "private"),
    ("GET", r"/api/v3/brokerage/orders/historical/(?P<oid>[^/]+)", "get_order", "private"),
)


class _HttpError(Exception):
    def __init__(self, status: int, body: dict | str, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class EmulatorBase:
    """One matching engine (``OrderBook`` over a ``SimMarket``) behind an exchange's REST front end.

    A front end (a subclass) names its ``ROUTES`` and answers them in its exchange's wire format:
    ``authenticate``, ``admit`` (its rate pools), ``dispatch``, and its error bodies.
    """

    ROUTES: tuple = ()
    EXCHANGE = "exchange"

    @classmethod
    def _compiled(cls):
        if "_COMPILED_ROUTES" not in cls.__dict__:
            cls._COMPILED_ROUTES = tuple((m, re.compile(p + r"$"), n, pool) for m, p, n, pool in cls.ROUTES)
        return cls._COMPILED_ROUTES

    def __init__(self, seed: int = 7, products: int = 8, speed: float | None = None, market: SimMarket | None = None,
                 limits: dict | None = None, enforce_rate_limits: bool = True,
                 balances: dict[str, float] | None = None, quote_currency: str = "USDC",
                 api_keys: dict | None = None, send_rate_headers: bool = False, starting_quote: float = 100_000.0,
                 host: str = "127.0.0.1", port: int = 0, rate_clock=time.monotonic):
        self.market = market or SimMarket.generate(seed=seed, n_products=products, quote=quote_currency, speed=speed)
        quotes = {p.quote for p in self.market.products.values()}
        if balances is None:
            balances = {q: float(starting_quote) for q in quotes}
            for pid, p in self.market.products.items():  # ~10k of each base so sells work too
                q = self.market.quote(pid)
                balances[p.base] = round(10_000.0 / q[1], 8) if q else 0.0
        self.faults = FaultPlan()
        self.book = OrderBook(self.market, balances, seed, self.faults)
        self.limits = {k: getattr(v, "limit_per_s", v) for k, v in (limits or {"public": 10.0, "private": 30.0}).items()}
        self.pool_specs = dict(limits or {})
        self.enforce_rate_limits = enforce_rate_limits
        # the clock the rate pools count by (and arrivals are stamped with): a test may freeze it so
        # that every request falls in one window, however fast or slow the machine sends them
        self.rate_clock = rate_clock
        self.send_rate_headers = send_rate_headers
        self.api_keys = dict(api_keys or {})
        self.host, self.port = host, port
        self._arrivals: dict[str, list[float]] = {"public": [], "private": []}
        self._windows: dict[str, deque] = {}
        self.rate_limited: dict[str, int] = {"public": 0, "private": 0}
        self.requests: list[tuple[float, str, str]] = []  # (time, route, pool)
        self._lock = threading.Lock()
        self._in_flight = 0  # requests being handled (a timeout fault sleeps inside one)
        self._idle = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> str:
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.EXCHANGE}-emulator", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> "EmulatorBase":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test controls ----------------------------------------------------------------
    def set_quote(self, product: str, bid: float, ask: float) -> None:
        self.market.set_quote(product.replace("/", "-"), bid, ask)
        self.book.match_all()

    def advance(self, steps: int = 1) -> int:
        i = self.market.advance(steps)
        self.book.match_all()
        return i

    def set_product_status(self, product: str, **flags) -> None:
        """Flags on the engine's product (``"BTC/USDC"`` or ``"BTC-USDC"``): status, cancel_only, ..."""
        p = self.market.products[product.replace("/", "-")]
        for k, v in flags.items():
            if not hasattr(p, k):
                raise ValueError(f"set_product_status: unknown flag {k!r}")
            setattr(p, k, v)

    def orders(self) -> list[dict]:
        return self.book.snapshot()

    def exchange_order_id(self, order_id: str) -> str:
        """The id this front end gives the engine's order ``order_id`` on the wire (what ccxt reports)."""
        return order_id

    def balances(self) -> dict[str, tuple[float, float]]:
        with self.book.lock:
            a = self.book.account
            return {c: (a.available.get(c, 0.0), a.hold.get(c, 0.0)) for c in sorted(set(a.available) | set(a.hold))}

    def peak_rate(self, pool: str, window_s: float = 1.0) -> float:
        """Most requests that arrived in any ``window_s`` interval, per second."""
        with self._lock:
            ts = sorted(self._arrivals[pool])
        best, lo = 0, 0
        for hi, t in enumerate(ts):
            while t - ts[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best / window_s

    def wait_idle(self, timeout: float) -> bool:
        """Until no request is being handled (e.g. a timeout fault's slow request, which the
        client gave up on, has been processed server-side too); False if ``timeout`` s pass."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def request_count(self, pool: str | None = None) -> int:
        with self._lock:
            return sum(len(v) for k, v in self._arrivals.items() if pool in (None, k))

    # -- front-end hooks (a subclass speaks its exchange's format) -----------------------
    def parse_body(self, raw: bytes, headers) -> dict:
        return json.loads(raw) if raw else {}

    def authenticate(self, method: str, parts, headers, raw: bytes, query: dict, body: dict) -> str:
        raise NotImplementedError

    def admit(self, route: str, pool: str, who: str, query: dict, body: dict, params: dict) -> dict:
        return self._admit(pool, who)

    def response_headers(self, route: str, pool: str, who: str) -> dict:
        return {}

    def not_found(self, message: str):
        return {"error": "NOT_FOUND", "message": message}

    def server_error_body(self, status: int, message: str = "injected"):
        return {"error": "internal_server_error" if status == 500 else "UNAVAILABLE", "message": message}

    def rate_limit_fault(self, fault, pool: str) -> "_HttpError":
        with self._lock:
            self.rate_limited[pool] = self.rate_limited.get(pool, 0) + 1
        return _HttpError(429, "Too Many Requests", {"Retry-After": str(fault.params.get("retry_after", 1))})

    def dispatch(self, route: str, params: dict, query: dict, body: dict, fault) -> dict:
        raise NotImplementedError

    # -- the one matching engine, in neutral terms (front ends translate to it) ---------
    def place_order(self, cid: str, product_id: str, side: str, otype: str, size: float, limit: float | None,
                    post_only: bool, fault, unique_open: bool, stop: float | None = None, rising: bool | None = None,
                    list_id: str | None = None, shared=None):
        """Place through the book. ``unique_open``: the id is unique among open orders only (Binance,
        Kraken): reusing an open order's id is refused, a closed order's id starts a new order.
        ``stop``: a stop-loss (Kraken ``stop-loss[-limit]``, Binance ``STOP_LOSS[_LIMIT]``): the book's
        one stop mechanism, a sell triggering on a fall to ``stop``, a buy on a rise to it; ``rising``
        True: triggering on a rise (a sell's take-profit: Kraken ``take-profit-limit``, Binance
        ``TAKE_PROFIT_LIMIT``). ``list_id``/``shared``: a leg of an order list (``OrderBook.place``)."""
        b = self.book
        with b.lock:
            if unique_open and cid in b.by_client:
                if b.orders[b.by_client[cid]].status == "OPEN":
                    raise Rejection("DUPLICATE_CLIENT_ID", f"an open order already has client id {cid}")
                del b.by_client[cid]
            spec = {"base_size": repr(float(size))}
            if otype == "LIMIT":
                spec.update(limit_price=repr(float(limit)))
                if stop is None:
                    spec.update(post_only=bool(post_only))
            if stop is None:
                kind = "limit_limit_gtc" if otype == "LIMIT" else "market_market_ioc"
            else:
                kind = "stop_limit_stop_limit_gtc" if otype == "LIMIT" else "stop_market"
                up = (side != "SELL") if rising is None else rising
                spec.update(stop_price=repr(float(stop)), stop_direction="STOP_DIRECTION_STOP_UP" if up
                            else "STOP_DIRECTION_STOP_DOWN")
            body = {"client_order_id": cid, "product_id": product_id, "side": side, "order_configuration": {kind: spec}}
            return b.place(body, None if fault is None else {"kind": fault.kind, **fault.params},
                           list_id=list_id, shared=shared)[0]

    # -- request handling (called from handler threads) -------------------------------
    def _admit(self, pool: str, who: str) -> dict:
        """Record an arrival; raise 429 if this pool's window is full."""
        now = self.rate_clock()
        limit = self.limits.get(pool, 1e9)
        with self._lock:
            self._arrivals[pool].append(now)
            win = self._windows.setdefault(f"{pool}|{who}", deque())
            while win and now - win[0] >= 1.0:
                win.popleft()
            over = self.enforce_rate_limits and len(win) >= limit
            if not over:
                win.append(now)
            remaining = max(0, int(limit - len(win)))
            reset = (win[0] + 1.0 - now) if win else 0.0
            if over:
                self.rate_limited[pool] += 1
        headers = {}
        if self.send_rate_headers:
            headers = {"x-ratelimit-limit": str(int(limit)), "x-ratelimit-remaining": str(remaining),
                       "x-ratelimit-reset": f"{max(reset, 0.0):.3f}"}
        if over:
            raise _HttpError(429, {"error": "RATE_LIMIT_EXCEEDED", "error_details": "Too many requests",
                                   "message": "Too many requests"},
                             {"Retry-After": "1", **headers})
        return headers


class CoinbaseEmulator(EmulatorBase):
    """Coinbase Advanced Trade v3: JSON bodies, ES256 JWT auth, public/private pools per second."""

    ROUTES = ROUTES
    EXCHANGE = "coinbase"

    def authenticate(self, method, parts, headers, raw, query, body) -> str:
        return self._authorize(method, parts.path, headers.get("Authorization"))

    def rate_limit_fault(self, fault, pool):
        with self._lock:
            self.rate_limited[pool] += 1
        retry = str(fault.params.get("retry_after", 1))
        style = fault.params.get("body", "v3")
        body = {"v3": {"error": "RATE_LIMIT_EXCEEDED", "error_details": "Too many requests",
                       "message": "Too many requests"},
                "v2": {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]},
                }.get(style, "Too Many Requests")
        return _HttpError(429, body, {"Retry-After": retry})

    def _authorize(self, method: str, path: str, auth: str | None) -> str:
        unauthorized = _HttpError(401, {"error": "unauthorized", "message": "invalid or missing JWT"})
        if not auth or not auth.startswith("Bearer "):
            raise unauthorized
        try:
            head_b64, payload_b64, sig_b64 = auth[7:].split(".")
            header = json.loads(_b64url(head_b64))
            payload = json.loads(_b64url(payload_b64))
        except Exception:
            raise unauthorized from None
        if header.get("alg") != "ES256" or not payload.get("sub") or payload.get("exp", 0) < time.time() - 5:
            raise unauthorized
        uri = payload.get("uri", "")
        if not uri.startswith(method + " ") or not uri.endswith(path):
            raise unauthorized
        key = self.api_keys.get(payload["sub"]) if self.api_keys else None
        if self.api_keys:
            if key is None:
                raise unauthorized
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
            raw = _b64url(sig_b64)
            sig = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            try:
                key.verify(sig, f"{head_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
            except Exception:
                raise unauthorized from None
        return payload["sub"]

    def dispatch(self, route: str, params: dict, query: dict, body: dict, fault) -> dict:
        b = self.book
        b.match_all()
        if route == "time":
            now = time.time()
            return {"iso": iso_ms(now * 1000), "epochSeconds": str(int(now)), "epochMillis": str(int(now * 1000))}
        if route == "products":
            if query.get("product_type", ["SPOT"])[0] != "SPOT":
                return {"products": [], "num_products": 0}
            prods = [self._product_api(p) for p in self.market.products.values()]
            return {"products": prods, "num_products": len(prods)}
        if route == "candles":
            pid = params["pid"]
            if pid not in self.market.products:
                raise _HttpError(404, {"error": "NOT_FOUND", "message": f"product {pid} not found"})
            gran = GRANULARITY_MS.get(query.get("granularity", [""])[0])
            if gran is None:
                raise _HttpError(400, {"error": "INVALID_ARGUMENT", "message": "granularity"})
            start = int(query["start"][0]) * 1000
            end = int(query["end"][0]) * 1000
            if (end - start) // gran > 350:
                raise _HttpError(400, {"error": "INVALID_ARGUMENT", "message": "number of candles requested should be less than 350"})
            return {"candles": self.market.candles(pid, gran, start, end)}
        if route == "best_bid_ask":
            ids = query.get("product_ids") or list(self.market.products)
            books = []
            for pid in ids:
                if pid not in self.market.products:
                    continue
                q = self.market.quote(pid)
                if q is None:
                    continue
                books.append({"product_id": pid, "bids": [{"price": repr(q[0]), "size": "10"}],
                              "asks": [{"price": repr(q[1]), "size": "10"}], "time": iso_ms(time.time() * 1000)})
            return {"pricebooks": books}
        if route == "accounts":
            with b.lock:
                accts = []
                for ccy in sorted(set(b.account.available) | set(b.account.hold)):
                    accts.append({"uuid": f"acct-{ccy}", "name": f"{ccy} Wallet", "currency": ccy,
                                  "available_balance": {"value": repr(b.account.available.get(ccy, 0.0)), "currency": ccy},
                                  "hold": {"value": repr(b.account.hold.get(ccy, 0.0)), "currency": ccy},
                                  "default": True, "active": True, "ready": True,
                                  "type": "ACCOUNT_TYPE_FIAT" if ccy in ("USD", "EUR", "GBP") else "ACCOUNT_TYPE_CRYPTO"})
            return {"accounts": accts, "has_next": False, "cursor": "", "size": len(accts)}
        if route == "transaction_summary":
            return {"total_volume": b.volume_usd, "total_fees": 0,
                    "fee_tier": {"pricing_tier": "Advanced 1", "usd_from": "0", "usd_to": "10000",
                                 "taker_fee_rate": repr(TAKER_FEE), "maker_fee_rate": repr(MAKER_FEE)},
                    "margin_rate": None, "goods_and_services_tax": None}
        if route == "create_order":
            if fault is not None and fault.kind == "reject":
                code = fault.params.get("code", "INSUFFICIENT_FUND")
                return self._rejected(body, code, fault.params.get("message", code.replace("_", " ").lower()))
            try:
                order, _ = b.place(body, None if fault is None else {"kind": fault.kind, **fault.params})
            except Rejection as r:
                return self._rejected(body, r.code, r.message)
            api = order.to_api()
            return {"success": True, "success_response": {k: api[k] for k in
                    ("order_id", "product_id", "side", "client_order_id")}, "order_configuration": api["order_configuration"]}
        if route == "cancel_orders":
            results = []
            for oid in body.get("order_ids", []):
                ok, reason = b.cancel(oid)
                results.append({"success": ok, "failure_reason": reason or "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": oid})
            return {"results": results}
        if route == "get_order":
            o = b.orders.get(params["oid"])
            if o is None:
                raise _HttpError(404, {"error": "NOT_FOUND", "error_details": "order with this orderID was not found",
                                       "message": "order with this orderID was not found"})
            return {"order": o.to_api()}
        if route == "list_orders":
            return self._page(self._filter_orders(query), query, "orders")
        if route == "fills":
            return self._page(self._filter_fills(query), query, "fills")
        raise _HttpError(404, {"error": "NOT_FOUND", "message": route})

    def _rejected(self, body: dict, code: str, message: str) -> dict:
        preview = {"INSUFFICIENT_FUND": "PREVIEW_INSUFFICIENT_FUND"}.get(code, code)
        return {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
                "error_response": {"error": code, "message": message, "error_details": message,
                                   "preview_failure_reason": preview},
                "order_configuration": body.get("order_configuration", {})}

    def _product_api(self, p) -> dict:
        q = self.market.quote(p.product_id)
        return {"product_id": p.product_id, "price": repr(q[1] if q else 0.0), "volume_24h": repr(self.market.volume_24h(p.product_id)),
                "base_increment": repr(p.base_increment), "quote_increment": repr(p.price_increment),
                "price_increment": repr(p.price_increment), "quote_min_size": repr(p.quote_min_size),
                "quote_max_size": "10000000", "base_min_size": repr(p.base_min_size), "base_max_size": "1000000000",
                "base_name": p.base, "quote_name": p.quote, "status": p.status, "cancel_only": p.cancel_only,
                "limit_only": p.limit_only, "post_only": p.post_only, "trading_disabled": p.trading_disabled,
                "auction_mode": False, "product_type": "SPOT", "quote_currency_id": p.quote,
                "base_currency_id": p.base, "is_disabled": False, "alias": "", "alias_to": [],
                "display_name": p.product_id, "view_only": False, "product_venue": "CBE"}

    def _filter_orders(self, query: dict) -> list[dict]:
        pids = set(query.get("product_ids", []) + query.get("product_id", []))
        statuses = set(query.get("order_status", []))
        start = _parse_iso_ms(query.get("start_date", [None])[0])
        end = _parse_iso_ms(query.get("end_date", [None])[0])
        with self.book.lock:
            orders = sorted(self.book.orders.values(), key=lambda o: (-o.created_ms, o.order_id))
            return [o.to_api() for o in orders
                    if (not pids or o.product_id in pids) and (not statuses or o.status in statuses)
                    and (start is None or o.created_ms >= start) and (end is None or o.created_ms <= end)]

    def _filter_fills(self, query: dict) -> list[dict]:
        pids = set(query.get("product_ids", []) + query.get("product_id", []))
        oids = set(query.get("order_ids", []) + query.get("order_id", []))
        start = _parse_iso_ms(query.get("start_sequence_timestamp", [None])[0])
        with self.book.lock:
            fills = list(reversed(self.book.fills))
        return [{k: v for k, v in f.items() if k != "_ms"} for f in fills
                if (not pids or f["product_id"] in pids) and (not oids or f["order_id"] in oids)
                and (start is None or f["_ms"] >= start)]

    @staticmethod
    def _page(items: list, query: dict, key: str) -> dict:
        limit = int(query.get("limit", ["100"])[0])
        offset = int(query.get("cursor", ["0"])[0] or 0)
        page = items[offset: offset + limit]
        more = offset + limit < len(items)
        return {key: page, "has_next": more, "cursor": str(offset + limit) if more else ""}


def _parse_iso_ms(s: str | None) -> float | None:
    if not s:
        return None
    import datetime as dt
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emu: "EmulatorBase"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without NODELAY every keep-alive
        # response waits ~40 ms on the client's delayed ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        emu = self.emu
        with emu._idle:
            emu._in_flight += 1
        try:
            self._handle_counted(method)
        finally:
            with emu._idle:
                emu._in_flight -= 1
                emu._idle.notify_all()

    def _handle_counted(self, method: str) -> None:
        emu = self.emu
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        extra_headers: dict = {}
        try:
            for m, rx, name, pool in emu._compiled():
                match = rx.match(parts.path)
                if m == method and match:
                    break
            else:
                raise _HttpError(404, emu.not_found(f"no route for {method} {parts.path}"))
            query = parse_qs(parts.query)
            body = emu.parse_body(raw, self.headers)
            who = "public"
            if pool == "private":
                who = emu.authenticate(method, parts, self.headers, raw, query, body)
            with emu._lock:
                emu.requests.append((emu.rate_clock(), name, pool))
            extra_headers = emu.admit(name, pool, who, query, body, match.groupdict())
            fault = emu.faults.take(name)
            if fault is not None:
                if fault.kind == "rate_limit":
                    raise emu.rate_limit_fault(fault, pool)
                if fault.kind == "server_error":
                    status = int(fault.params.get("status", 503))
                    raise _HttpError(status, emu.server_error_body(status))
                if fault.kind == "drop":
                    self._drop()
                    return
                if fault.kind == "timeout":
                    time.sleep(float(fault.params.get("delay_s", 1.0)))
            result = emu.dispatch(name, match.groupdict(), query, body, fault)
            if fault is not None and fault.kind == "lost_response":
                self._drop()
                return
            self._send(200, result, {**extra_headers, **emu.response_headers(name, pool, who)})
        except _HttpError as e:
            self._send(e.status, e.body, {**extra_headers, **e.headers})
        except Exception as e:  # a bug in the emulator: answer 500 rather than hang the client
            self._send(500, emu.server_error_body(500, repr(e)), {})

    def _send(self, status: int, body, headers: dict) -> None:
        is_text = isinstance(body, str)
        data = (body if is_text else json.dumps(body)).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if is_text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout fault)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
