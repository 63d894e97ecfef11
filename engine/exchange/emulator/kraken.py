"""Kraken spot REST front end over the one matching engine, as ccxt's ``kraken`` class calls it.

Wire format: ``/0/public/*`` GET with a query, ``/0/private/*`` POST form bodies signed with
``API-Sign = base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + body)))`` and a
nonce that must grow per key; every answer is HTTP 200 ``{"error": [...], "result": ...}``.
Native names: legacy assets are X/Z-prefixed (``XXBT``, ``ZUSD``), pairs ``XXBTZUSD`` with the
altname ``XBTUSD``; ccxt turns them back into ``BTC/USD``.

Rate pools as Kraken counts them: ``public`` per IP (a window), ``calls`` a decaying counter
per API key (+1 a query, +2 trade history; AddOrder/CancelOrder do not count), ``orders`` a
decaying counter per key and pair (+1 an order, +8..0 a cancel by the order's age). Refusals
are ``EAPI:Rate limit exceeded`` / ``EOrder:Rate limit exceeded`` / ``EGeneral:Too many requests``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from urllib.parse import parse_qs

from .book import Rejection
from .limits import ServerLimits, ServerPool
from .server import EmulatorBase, _HttpError

LEGACY = {"BTC": "XXBT", "ETH": "XETH", "LTC": "XLTC", "XLM": "XXLM", "DOGE": "XXDG",
          "USD": "ZUSD", "EUR": "ZEUR", "GBP": "ZGBP"}
ALT = {"BTC": "XBT", "DOGE": "XDG"}
CODE_OF = {v: k for k, v in LEGACY.items()}
# Kraken's published starter-tier figures (docs/exchange.md): used when no profile is given
DEFAULT_POOLS = {"public": ServerPool("window", 5.0, 5.0), "calls": ServerPool("decay", 15.0, decay_per_s=0.33),
                 "orders": ServerPool("decay", 60.0, decay_per_s=1.0)}
CALL_COST = {"TradesHistory": 2.0, "Ledgers": 2.0, "AddOrder": 0.0, "CancelOrder": 0.0}
STATUS = {"OPEN": "open", "FILLED": "closed", "CANCELLED": "canceled", "EXPIRED": "expired"}
# AddOrder ordertype -> the engine's order type (a stop-loss becomes a market, a stop-loss-limit a limit;
# take-profit[-limit] alike, triggering the other way: a sell on a rise to price)
ORDER_TYPES = {"market": "MARKET", "limit": "LIMIT", "stop-loss": "MARKET", "stop-loss-limit": "LIMIT",
               "take-profit": "MARKET", "take-profit-limit": "LIMIT"}
STOPS = ("stop-loss", "stop-loss-limit", "take-profit", "take-profit-limit")
_R = r"/0/private/"
ROUTES = (
    ("GET", r"/0/public/Time", "time", "public"),
    ("GET", r"/0/public/AssetPairs", "products", "public"),
    ("GET", r"/0/public/Ticker", "ticker", "public"),
    ("GET", r"/0/public/OHLC", "candles", "public"),
    ("POST", _R + "BalanceEx", "BalanceEx", "private"),
    ("POST", _R + "Balance", "Balance", "private"),
    ("POST", _R + "AddOrder", "create_order", "private"),
    ("POST", _R + "CancelOrder", "cancel_order", "private"),
    ("POST", _R + "QueryOrders", "get_order", "private"),
    ("POST", _R + "OpenOrders", "open_orders", "private"),
    ("POST", _R + "ClosedOrders", "list_orders", "private"),
    ("POST", _R + "TradesHistory", "fills", "private"),
    ("POST", _R + "TradeVolume", "TradeVolume", "private"),
)
PRIVATE_PATH = {name: p.rsplit("/", 1)[1] for _, p, name, pool in ROUTES if pool == "private"}


def asset(code: str) -> str:
    return LEGACY.get(code, code)


def _decimals(inc: float) -> int:
    return max(0, int(round(-math.log10(inc)))) if inc < 1 else 0


class KrakenError(_HttpError):
    def __init__(self, *errors: str):
        super().__init__(200, {"error": list(errors)})


class KrakenEmulator(EmulatorBase):
    ROUTES = ROUTES
    EXCHANGE = "kraken"

    def __init__(self, *args, quote_currency: str = "USD", **kw):
        super().__init__(*args, quote_currency=quote_currency, **kw)
        self.server_limits = ServerLimits.from_profile(DEFAULT_POOLS, self.pool_specs, self.rate_clock)
        self.rate_limited = {p: 0 for p in self.server_limits.pools}
        self._nonces: dict[str, int] = {}
        self.pair_of = {}  # native pair id -> engine product id
        for pid, p in self.market.products.items():
            self.pair_of[self.pair_id(p)] = pid
        self.altnames = {self.altname(self.market.products[pid]): pid for pid in self.pair_of.values()}
        self._txid: dict[str, str] = {}  # engine order id <-> Kraken txid
        self._oid: dict[str, str] = {}

    # -- names ------------------------------------------------------------------------
    @staticmethod
    def altname(p) -> str:
        return ALT.get(p.base, p.base) + ALT.get(p.quote, p.quote)

    @classmethod
    def pair_id(cls, p) -> str:
        if p.base in LEGACY and p.quote in LEGACY:
            return asset(p.base) + asset(p.quote)  # XXBTZUSD
        return cls.altname(p)  # SOLUSD, XBTUSDC

    def _product(self, pair: str | None) -> str:
        pid = self.pair_of.get(pair or "") or self.altnames.get(pair or "")
        if pid is None:
            raise KrakenError("EQuery:Unknown asset pair")
        return pid

    def exchange_order_id(self, order_id: str) -> str:
        return self.txid(order_id)

    def txid(self, order_id: str) -> str:
        t = self._txid.get(order_id)
        if t is None:
            h = base64.b32encode(hashlib.sha256(order_id.encode()).digest()).decode()
            t = f"O{h[:5]}-{h[5:10]}-{h[10:16]}"
            self._txid[order_id], self._oid[t] = t, order_id
        return t

    # -- wire -------------------------------------------------------------------------
    def parse_body(self, raw, headers):
        if not raw:
            return {}
        return {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}

    def not_found(self, message):
        return {"error": ["EGeneral:Unknown method"]}

    def server_error_body(self, status, message="injected"):
        return {"error": ["EService:Unavailable" if status >= 502 else "EGeneral:Internal error"]}

    def rate_limit_fault(self, fault, pool):
        """An injected refusal; ``error``: "EAPI:Rate limit exceeded" (default, the per-key call
        counter), "EOrder:Rate limit exceeded" (the per-pair order counter) or "EGeneral:Too many requests"."""
        error = str(fault.params.get("error", "EAPI:Rate limit exceeded"))
        counted = {"EAPI:Rate limit exceeded": "calls", "EOrder:Rate limit exceeded": "orders",
                   "EGeneral:Too many requests": "public"}.get(error, "calls")
        with self._lock:
            self.rate_limited[counted] += 1
        return KrakenError(error)

    def authenticate(self, method, parts, headers, raw, query, body) -> str:
        key, sig = headers.get("API-Key"), headers.get("API-Sign")
        if not key or not sig:
            raise KrakenError("EAPI:Invalid key")
        if self.api_keys:
            secret = self.api_keys.get(key)
            if secret is None:
                raise KrakenError("EAPI:Invalid key")
            nonce = str(body.get("nonce", ""))
            digest = hashlib.sha256((nonce + raw.decode()).encode()).digest()
            want = base64.b64encode(hmac.new(base64.b64decode(secret), parts.path.encode() + digest,
                                             hashlib.sha512).digest()).decode()
            if not hmac.compare_digest(want, sig):
                raise KrakenError("EAPI:Invalid signature")
        try:
            nonce = int(body.get("nonce"))
        except (TypeError, ValueError):
            raise KrakenError("EAPI:Invalid nonce") from None
        with self._lock:
            if nonce <= self._nonces.get(key, 0):
                raise KrakenError("EAPI:Invalid nonce")
            self._nonces[key] = nonce
        return key

    def admit(self, route, pool, who, query, body, params):
        if pool == "public":
            charges = [("public", "ip", 1.0)]
        else:
            path = PRIVATE_PATH[route]
            charges = []
            cost = CALL_COST.get(path, 1.0)
            if cost:
                charges.append(("calls", who, cost))
            if route == "create_order":
                charges.append(("orders", f"{who}|{body.get('pair')}", 1.0))
            elif route == "cancel_order":
                charges.append(("orders", f"{who}|{self._pair_of_order(body.get('txid'))}", self._cancel_penalty(body)))
        full = self.server_limits.admit(charges, self.enforce_rate_limits)
        if full is not None:
            with self._lock:
                self.rate_limited[full] += 1
            raise KrakenError({"public": "EGeneral:Too many requests", "calls": "EAPI:Rate limit exceeded",
                               "orders": "EOrder:Rate limit exceeded"}[full])
        return {}

    def _pair_of_order(self, txid) -> str:
        o = self.book.orders.get(self._oid.get(str(txid), ""))
        return self.altname(self.market.products[o.product_id]) if o else ""

    def _cancel_penalty(self, body) -> float:
        """Kraken adds to the pair's counter on a cancel by how young the order is."""
        o = self.book.orders.get(self._oid.get(str(body.get("txid")), ""))
        if o is None:
            return 0.0
        age = time.time() - o.created_ms / 1000.0
        for limit, pts in ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1)):
            if age < limit:
                return float(pts)
        return 0.0

    def peak_rate(self, pool: str, window_s: float = 1.0) -> float:
        return self.server_limits.peak(pool)

    # -- answers ----------------------------------------------------------------------
    def dispatch(self, route, params, query, body, fault):
        try:
            return {"error": [], "result": self._result(route, query, body, fault)}
        except Rejection as r:
            raise KrakenError(r.code) from None

    def _result(self, route, query, body, fault):
        b = self.book
        b.match_all()
        q = {k: v[0] for k, v in query.items()}
        if route == "time":
            return {"unixtime": int(time.time()), "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime())}
        if route == "products":
            return {self.pair_id(p): self._pair_api(p) for p in self.market.products.values()}
        if route == "ticker":
            out = {}
            for pair in (q.get("pair") or ",".join(self.pair_of)).split(","):
                pid = self._product(pair)
                quote = self.market.quote(pid)
                if quote is None:
                    continue
                bid, ask = quote
                vol = self.market.volume_24h(pid)
                out[self.pair_id(self.market.products[pid])] = {
                    "a": [repr(ask), "1", "1.000"], "b": [repr(bid), "1", "1.000"], "c": [repr((bid + ask) / 2), "0.1"],
                    "v": [repr(vol), repr(vol)], "p": [repr((bid + ask) / 2)] * 2, "t": [1, 1],
                    "l": [repr(bid)] * 2, "h": [repr(ask)] * 2, "o": repr((bid + ask) / 2)}
            return out
        if route == "candles":
            pid = self._product(q.get("pair"))
            interval = int(q.get("interval", 1))
            gran = interval * 60_000
            since = int(float(q.get("since", 0))) * 1000
            end = self.market.now_ms() + gran
            rows = self.market.candles(pid, gran, since + 1, end)[::-1][:720]  # oldest first, at most 720
            bars = [[int(r["start"]), r["open"], r["high"], r["low"], r["close"], r["close"], r["volume"], 1] for r in rows]
            return {self.pair_id(self.market.products[pid]): bars, "last": bars[-1][0] if bars else since // 1000}
        if route in ("BalanceEx", "Balance"):
            with b.lock:
                ccys = sorted(set(b.account.available) | set(b.account.hold))
                if route == "Balance":
                    return {asset(c): f"{b.account.available.get(c, 0.0) + b.account.hold.get(c, 0.0):.10f}" for c in ccys}
                return {asset(c): {"balance": f"{b.account.available.get(c, 0.0) + b.account.hold.get(c, 0.0):.10f}",
                                   "hold_trade": f"{b.account.hold.get(c, 0.0):.10f}"} for c in ccys}
        if route == "TradeVolume":
            return {"currency": "ZUSD", "volume": repr(b.volume_usd)}
        if route == "create_order":
            return self._add_order(body, fault)
        if route == "cancel_order":
            oid = self._oid.get(str(body.get("txid")))
            if oid is None:
                raise KrakenError("EOrder:Unknown order")
            ok, reason = b.cancel(oid)
            if not ok and reason != "DUPLICATE_CANCEL_REQUEST":
                raise KrakenError("EOrder:Unknown order")
            return {"count": 1 if ok else 0}
        if route == "get_order":
            out = {}
            for t in str(body.get("txid", "")).split(","):
                o = b.orders.get(self._oid.get(t, ""))
                if o is None:
                    raise KrakenError("EOrder:Invalid order")
                out[t] = self._order_api(o)
            return out
        if route == "open_orders":
            return {"open": {self.txid(o.order_id): self._order_api(o) for o in self._orders(body, "OPEN")}}
        if route == "list_orders":
            closed = self._orders(body, None)
            ofs = int(body.get("ofs", 0) or 0)
            return {"closed": {self.txid(o.order_id): self._order_api(o) for o in closed[ofs: ofs + 50]},
                    "count": len(closed)}
        if route == "fills":
            start = float(body.get("start", 0) or 0) * 1000
            with b.lock:
                fills = [f for f in reversed(b.fills) if f["_ms"] >= start]
            ofs = int(body.get("ofs", 0) or 0)
            page = fills[ofs: ofs + 50]
            return {"trades": {self._trade_id(f): self._trade_api(f) for f in page}, "count": len(fills)}
        raise KrakenError("EGeneral:Unknown method")

    def _orders(self, body, status: str | None):
        cl = body.get("cl_ord_id")
        start = float(body.get("start", 0) or 0) * 1000
        with self.book.lock:
            orders = sorted(self.book.orders.values(), key=lambda o: (-o.created_ms, o.order_id))
        return [o for o in orders if (status is None and o.status != "OPEN" or o.status == status)
                and (not cl or o.client_order_id == cl) and o.created_ms >= start]

    def _add_order(self, body, fault):
        if fault is not None and fault.kind == "reject":
            raise KrakenError(fault.params.get("code", "EOrder:Insufficient funds"))
        pid = self._product(body.get("pair"))
        p = self.market.products[pid]
        if p.cancel_only or p.status == "cancel_only":
            raise KrakenError("EService:Market in cancel_only mode")
        if p.trading_disabled or p.status not in ("online", "post_only", "limit_only"):
            raise KrakenError("EService:Market in cancel_only mode")
        ordertype = body.get("ordertype")
        otype = ORDER_TYPES.get(ordertype)
        if otype is None:
            raise KrakenError("EGeneral:Invalid arguments:ordertype")
        side = {"buy": "BUY", "sell": "SELL"}.get(body.get("type"))
        if side is None:
            raise KrakenError("EGeneral:Invalid arguments:type")
        try:
            size = float(body["volume"])
        except (KeyError, ValueError):
            raise KrakenError("EGeneral:Invalid arguments:volume") from None
        # AddOrder: limit takes the limit in price; a stop-loss (take-profit) its trigger in price,
        # and a stop-loss-limit (take-profit-limit) its trigger in price and its limit in price2
        stop = limit = None
        try:
            if ordertype in STOPS:
                stop = float(body["price"])
                limit = float(body["price2"]) if otype == "LIMIT" else None
            elif otype == "LIMIT":
                limit = float(body["price"])
        except (KeyError, ValueError):
            raise KrakenError("EGeneral:Invalid arguments:price") from None
        post = "post" in str(body.get("oflags", ""))
        if post and stop is not None:  # "not available for Take profit limit and Stop loss limit"
            raise KrakenError("EGeneral:Invalid arguments:oflags")
        if size < p.base_min_size - 1e-12:
            raise KrakenError("EOrder:Order minimum not met")
        cid = body.get("cl_ord_id") or f"kraken-{time.time_ns()}"
        try:
            rising = (side == "SELL") if ordertype.startswith("take-profit") else None
            o = self.place_order(cid, pid, side, otype, size, limit, post, fault, unique_open=True, stop=stop,
                                 rising=rising)
        except Rejection as r:
            raise KrakenError({"INSUFFICIENT_FUND": "EOrder:Insufficient funds", "INVALID_SIZE": "EOrder:Order minimum not met",
                               "DUPLICATE_CLIENT_ID": "EOrder:Duplicate order",
                               "INVALID_LIMIT_PRICE_POST_ONLY": "EOrder:Post only order",
                               "INVALID_STOP_PRICE": "EGeneral:Invalid arguments:price",
                               "ORDER_ENTRY_DISABLED": "EService:Market in cancel_only mode"}.get(r.code, "EGeneral:Invalid arguments")) from None
        return {"descr": {"order": self._sentence(o)}, "txid": [self.txid(o.order_id)]}

    def _sentence(self, o) -> str:
        """Kraken's descr.order, e.g. "sell 0.10000000 XBTUSDC @ stop loss 95.0 -> limit 94.0"
        (what kraken.parse_order reads the trigger and the limit back from after AddOrder)."""
        head = f"{o.side.lower()} {o.size:.8f} {self.altname(self.market.products[o.product_id])} @ "
        if o.stop_price is not None:
            return head + f"{_kind(o).replace('-', ' ').replace(' limit', '')} {o.stop_price!r}" + \
                (f" -> limit {o.limit_price!r}" if o.limit_price else "")
        return head + ("market" if o.type == "MARKET" else f"limit {o.limit_price!r}")

    def _pair_api(self, p) -> dict:
        return {"altname": self.altname(p), "wsname": f"{ALT.get(p.base, p.base)}/{ALT.get(p.quote, p.quote)}",
                "aclass_base": "currency", "base": asset(p.base), "aclass_quote": "currency", "quote": asset(p.quote),
                "lot": "unit", "cost_decimals": 5, "pair_decimals": _decimals(p.price_increment),
                "lot_decimals": _decimals(p.base_increment), "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [],
                "fees": [[0, 0.4], [10000, 0.35], [50000, 0.24], [100000, 0.22]],
                "fees_maker": [[0, 0.25], [10000, 0.2], [50000, 0.14], [100000, 0.12]],
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
                "ordermin": repr(p.base_min_size), "costmin": repr(p.quote_min_size),
                "tick_size": repr(p.price_increment), "status": p.status if not p.cancel_only else "cancel_only"}

    def _order_api(self, o) -> dict:
        p = self.market.products[o.product_id]
        avg = o.filled_value / o.filled if o.filled > 0 else 0.0
        if o.stop_price is not None:  # descr.price the trigger, descr.price2 the limit
            kind = _kind(o)
            price, price2 = repr(o.stop_price), repr(o.limit_price) if o.limit_price else "0"
        else:
            kind = "market" if o.type == "MARKET" else "limit"
            price, price2 = repr(o.limit_price or 0.0), "0"
        # stopprice: the price it triggered at, once it has (0 while it waits)
        triggered = repr(o.stop_price) if o.stop_price is not None and o.triggered else "0"
        return {"refid": None, "userref": 0, "cl_ord_id": o.client_order_id, "status": STATUS.get(o.status, "open"),
                "opentm": o.created_ms / 1000.0, "starttm": 0, "expiretm": 0,
                "descr": {"pair": self.altname(p), "type": o.side.lower(), "ordertype": kind,
                          "price": price, "price2": price2, "leverage": "none",
                          "order": self._sentence(o), "close": ""},
                "vol": f"{o.size:.8f}", "vol_exec": f"{o.filled:.8f}", "cost": repr(o.filled_value), "fee": repr(o.fees),
                "price": repr(avg), "stopprice": triggered, "limitprice": "0", "misc": "",
                "oflags": "fciq" + (",post" if o.post_only else ""),
                **({"closetm": o.created_ms / 1000.0} if o.status != "OPEN" else {})}

    def _trade_id(self, f) -> str:
        h = base64.b32encode(hashlib.sha256(f["trade_id"].encode()).digest()).decode()
        return f"T{h[:5]}-{h[5:10]}-{h[10:16]}"

    def _trade_api(self, f) -> dict:
        p = self.market.products[f["product_id"]]
        price, size = float(f["price"]), float(f["size"])
        return {"ordertxid": self.txid(f["order_id"]), "postxid": "", "pair": self.pair_id(p), "time": f["_ms"] / 1000.0,
                "type": f["side"].lower(), "ordertype": "market" if f["liquidity_indicator"] == "TAKER" else "limit",
                "price": repr(price), "cost": repr(price * size), "fee": f["commission"], "vol": repr(size),
                "margin": "0", "misc": "", "maker": f["liquidity_indicator"] == "MAKER"}


def _kind(o) -> str:
    """A book stop's AddOrder ordertype: a sell triggering on a rise is a take-profit."""
    up = o.stop_direction == "STOP_DIRECTION_STOP_UP"
    take = up if o.side == "SELL" else not up
    return ("take-profit" if take else "stop-loss") + ("-limit" if o.type == "STOP_LIMIT" else "")
