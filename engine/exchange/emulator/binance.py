"""Binance spot REST front end over the one matching engine, as ccxt's ``binance`` class calls it.

Wire format: ``/api/v3/*``; signed endpoints carry ``X-MBX-APIKEY`` and ``timestamp`` +
``signature = HMAC-SHA256(secret, query + body)``; errors are ``{"code": -NNNN, "msg": ...}``
with HTTP 4xx. Symbols are native ``BTCUSDT``; ccxt turns them into ``BTC/USDT``.

Rate pools as Binance counts them: request ``weight`` per IP per minute (each endpoint's
weight, reported back in ``X-MBX-USED-WEIGHT-1M``), and new orders per account per 10 s and
per day (``X-MBX-ORDER-COUNT-10S`` / ``-1D``). Over a limit: 429 with ``Retry-After``; a client
that keeps calling before Retry-After has passed is banned: 418 with a longer ``Retry-After``.

Order lists: ``POST /api/v3/orderList/oco`` (a SELL's take-profit above, LIMIT_MAKER or
TAKE_PROFIT_LIMIT, and its stop below, STOP_LOSS[_LIMIT], one quantity held once), ``GET
orderList`` / ``openOrderList``, ``DELETE orderList``; each leg is an order too (``orderListId``
on it), one leg triggering or filling expires the other (status EXPIRED) and cancelling a leg
cancels the list, as on Binance. An OCO counts as two orders in the order pools.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs

from engine.market.data import timeframe_ms

from .book import Rejection
from .limits import ServerLimits, ServerPool
from .server import EmulatorBase, _HttpError

# Binance's published figures (docs/exchange.md): used when no profile is given
DEFAULT_POOLS = {"weight": ServerPool("window", 6000.0, 60.0), "orders_10s": ServerPool("window", 100.0, 10.0),
                 "orders_1d": ServerPool("window", 200000.0, 86400.0)}
MAX_BAN_S = 3 * 86400.0  # "from 2 minutes to 3 days" (Binance spot API docs, LIMITS)
STATUS = {"OPEN": "NEW", "FILLED": "FILLED", "CANCELLED": "CANCELED", "EXPIRED": "EXPIRED"}
# order type -> the engine's (a STOP_LOSS becomes a market order once triggered, a STOP_LOSS_LIMIT a limit)
ORDER_TYPES = {"MARKET": "MARKET", "LIMIT": "LIMIT", "LIMIT_MAKER": "LIMIT", "STOP_LOSS": "MARKET",
               "STOP_LOSS_LIMIT": "LIMIT", "TAKE_PROFIT": "MARKET", "TAKE_PROFIT_LIMIT": "LIMIT"}
TAKE_PROFITS = ("TAKE_PROFIT", "TAKE_PROFIT_LIMIT")  # a SELL's trigger on a rise (a BUY's on a fall)
MANDATORY = {"MARKET": (),  # quantity or quoteOrderQty
              "LIMIT": ("quantity", "price", "timeInForce"), "LIMIT_MAKER": ("quantity", "price"),
             "STOP_LOSS": ("quantity", "stopPrice"), "STOP_LOSS_LIMIT": ("quantity", "price", "stopPrice", "timeInForce"),
             "TAKE_PROFIT": ("quantity", "stopPrice"),
             "TAKE_PROFIT_LIMIT": ("quantity", "price", "stopPrice", "timeInForce")}
# an OCO SELL's legs: the take-profit above the price, the stop below it (POST /api/v3/orderList/oco)
OCO_ABOVE = ("LIMIT_MAKER", "TAKE_PROFIT_LIMIT")
OCO_BELOW = ("STOP_LOSS", "STOP_LOSS_LIMIT")
_V = r"/api/v3/"
ROUTES = (  # method, path, route, pool
    ("GET", _V + "ping", "ping", "public"),
    ("GET", _V + "time", "time", "public"),
    ("GET", _V + "exchangeInfo", "products", "public"),
    ("GET", _V + "ticker/bookTicker", "book_ticker", "public"),
    ("GET", _V + "klines", "candles", "public"),
    ("GET", _V + "account", "account", "private"),
    ("POST", _V + "order", "create_order", "private"),
    ("DELETE", _V + "order", "cancel_order", "private"),
    ("GET", _V + "order", "get_order", "private"),
    ("GET", _V + "openOrders", "open_orders", "private"),
    ("GET", _V + "allOrders", "list_orders", "private"),
    ("GET", _V + "myTrades", "fills", "private"),
    ("POST", _V + "orderList/oco", "create_oco", "private"),
    ("DELETE", _V + "orderList", "cancel_list", "private"),
    ("GET", _V + "orderList", "get_list", "private"),
    ("GET", _V + "openOrderList", "open_lists", "private"),
)


def weight(route: str, q: dict) -> float:
    """Each endpoint's request weight (Binance spot API docs, as ccxt's binance api table has it)."""
    if route == "book_ticker":
        return 2.0 if "symbol" in q else 4.0
    if route == "candles":
        limit = int(q.get("limit", 500))
        return 1.0 if limit < 100 else 2.0 if limit < 500 else 5.0 if limit <= 1000 else 10.0
    if route == "open_orders":
        return 6.0 if "symbol" in q else 80.0
    return {"ping": 1, "time": 1, "products": 20, "account": 20, "create_order": 1, "cancel_order": 1,
            "get_order": 4, "list_orders": 20, "fills": 20, "create_oco": 1, "cancel_list": 1, "get_list": 4,
            "open_lists": 6}[route]


class BinanceError(_HttpError):
    def __init__(self, status: int, code: int, msg: str, headers: dict | None = None):
        super().__init__(status, {"code": code, "msg": msg}, headers)


class BinanceEmulator(EmulatorBase):
    ROUTES = ROUTES
    EXCHANGE = "binance"

    def __init__(self, *args, quote_currency: str = "USDT", **kw):
        super().__init__(*args, quote_currency=quote_currency, **kw)
        self.server_limits = ServerLimits.from_profile(DEFAULT_POOLS, self.pool_specs, self.rate_clock)
        self.rate_limited = {p: 0 for p in self.server_limits.pools}
        self.banned = 0  # 418 answers
        self._retry_until = 0.0
        self.symbol_of = {self.native(p): pid for pid, p in self.market.products.items()}
        self._num: dict[str, int] = {}  # engine order id <-> Binance's integer orderId
        self._oid: dict[int, str] = {}
        self._lists: dict[int, dict] = {}  # orderListId -> {cid, pid, legs (engine order ids), ms}

    @staticmethod
    def native(p) -> str:
        return p.base + p.quote

    def _product(self, symbol) -> str:
        pid = self.symbol_of.get(symbol or "")
        if pid is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return pid

    def exchange_order_id(self, order_id: str) -> str:
        return str(self.order_num(order_id))

    def order_num(self, order_id: str) -> int:
        n = self._num.get(order_id)
        if n is None:
            n = self._num[order_id] = 1_000_000 + len(self._num)
            self._oid[n] = order_id
        return n

    # -- wire -------------------------------------------------------------------------
    def parse_body(self, raw, headers):
        return {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()} if raw else {}

    def not_found(self, message):
        return {"code": -1000, "msg": message}

    def server_error_body(self, status, message="injected"):
        return {"code": -1001 if status >= 502 else -1000, "msg": "Internal error; unable to process your request. Please try again."}

    def rate_limit_fault(self, fault, pool):
        """An injected refusal: ``status`` 429 (default) or 418 (an IP ban), with ``retry_after`` seconds.
        As on Binance, calling again before Retry-After has passed draws a 418 ban (see ``admit``)."""
        status, retry = int(fault.params.get("status", 429)), float(fault.params.get("retry_after", 1))
        with self._lock:
            if status == 418:
                self.banned += 1
            else:
                self.rate_limited["weight"] += 1
            self._retry_until = max(self._retry_until, self.rate_clock() + retry)
        msg = ("Way too much request weight used; IP banned until "
               f"{int((time.time() + retry) * 1000)}." if status == 418 else
               "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.")
        return BinanceError(status, -1003, msg, {"Retry-After": f"{retry:g}"})

    def authenticate(self, method, parts, headers, raw, query, body) -> str:
        key = headers.get("X-MBX-APIKEY")
        if not key or (self.api_keys and key not in self.api_keys):
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = parts.query + (raw.decode() if raw else "")
        payload, _, sig = total.rpartition("&signature=")
        if not sig:
            raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        if self.api_keys:
            want = hmac.new(self.api_keys[key].encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, sig):
                raise BinanceError(400, -1022, "Signature for this request is not valid.")
        params = {**{k: v[0] for k, v in query.items()}, **body}
        ts, window = int(params.get("timestamp", 0)), int(params.get("recvWindow", 5000))
        now = int(time.time() * 1000)
        if not (now - window <= ts <= now + 1000):
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return key

    def admit(self, route, pool, who, query, body, params):
        q = {k: v[0] for k, v in query.items()}
        now = self.rate_clock()
        if self.enforce_rate_limits and now < self._retry_until:
            # called again before Retry-After passed: Binance bans the IP (418), for longer each time
            self.banned += 1
            ban = min(max(2.0, 2.0 * (self._retry_until - now)), MAX_BAN_S)
            self._retry_until = now + ban
            raise BinanceError(418, -1003, f"Way too much request weight used; IP banned until {int((time.time() + ban) * 1000)}.",
                               {"Retry-After": str(int(ban + 0.999))})
        charges = [("weight", "ip", weight(route, q))]
        if route in ("create_order", "create_oco"):
            n = 2.0 if route == "create_oco" else 1.0  # an OCO's two legs are two orders
            charges += [("orders_10s", who, n), ("orders_1d", who, n)]
        full = self.server_limits.admit(charges, self.enforce_rate_limits)
        if full is not None:
            with self._lock:
                self.rate_limited[full] += 1
            w = self.server_limits.pools[full].window_s
            self._retry_until = now + (1.0 if full != "orders_1d" else w)
            msg = ("Too much request weight used; current limit is 6000 request weight per 1 MINUTE." if full == "weight"
                   else f"Too many new orders; current limit is {int(self.server_limits.pools[full].limit)} orders per "
                        f"{'TEN_SECONDS' if full == 'orders_10s' else 'DAY'}.")
            raise BinanceError(429, -1003 if full == "weight" else -1015, msg,
                               {"Retry-After": "1", **self.response_headers(route, pool, who)})
        return {}

    def response_headers(self, route, pool, who):
        h = {"X-MBX-USED-WEIGHT-1M": str(int(self.server_limits.used("weight", "ip")))}
        if route in ("create_order", "create_oco"):
            h["X-MBX-ORDER-COUNT-10S"] = str(int(self.server_limits.used("orders_10s", who)))
            h["X-MBX-ORDER-COUNT-1D"] = str(int(self.server_limits.used("orders_1d", who)))
        return h

    def peak_rate(self, pool: str, window_s: float = 1.0) -> float:
        return self.server_limits.peak(pool)

    # -- answers ----------------------------------------------------------------------
    def dispatch(self, route, params, query, body, fault):
        b = self.book
        b.match_all()
        q = {**{k: v[0] for k, v in query.items()}, **body}
        if route == "ping":
            return {}
        if route == "time":
            return {"serverTime": int(time.time() * 1000)}
        if route == "products":
            return {"timezone": "UTC", "serverTime": int(time.time() * 1000),
                    "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                    "limit": int(self.server_limits.pools["weight"].limit)},
                                   {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                                    "limit": int(self.server_limits.pools["orders_10s"].limit)},
                                   {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                                    "limit": int(self.server_limits.pools["orders_1d"].limit)}],
                    "exchangeFilters": [], "symbols": [self._symbol_api(p) for p in self.market.products.values()]}
        if route == "book_ticker":
            syms = json.loads(q["symbols"]) if "symbols" in q else [q["symbol"]] if "symbol" in q else list(self.symbol_of)
            out = []
            for s in syms:
                quote = self.market.quote(self._product(s))
                if quote is not None:
                    out.append({"symbol": s, "bidPrice": repr(quote[0]), "bidQty": "10", "askPrice": repr(quote[1]), "askQty": "10"})
            return out if "symbol" not in q else out[0]
        if route == "candles":
            pid = self._product(q.get("symbol"))
            gran = timeframe_ms(q.get("interval", "1m"))
            limit = min(int(q.get("limit", 500)), 1000)
            start = int(q.get("startTime", self.market.now_ms() - limit * gran))
            end = int(q.get("endTime", self.market.now_ms() + gran))
            rows = self.market.candles(pid, gran, start, end + 1)[::-1][:limit]
            return [[int(r["start"]) * 1000, r["open"], r["high"], r["low"], r["close"], r["volume"],
                     int(r["start"]) * 1000 + gran - 1, "0", 1, "0", "0", "0"] for r in rows]
        if route == "account":
            with b.lock:
                ccys = sorted(set(b.account.available) | set(b.account.hold))
                bal = [{"asset": c, "free": f"{b.account.available.get(c, 0.0):.8f}", "locked": f"{b.account.hold.get(c, 0.0):.8f}"}
                       for c in ccys]
            return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                    "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                    "updateTime": int(time.time() * 1000), "accountType": "SPOT", "balances": bal, "permissions": ["SPOT"]}
        if route == "create_order":
            return self._new_order(q, fault)
        if route in ("cancel_order", "get_order"):
            o = self._find(q)
            if route == "cancel_order":
                ok, _ = b.cancel(o.order_id)
                if not ok:
                    raise BinanceError(400, -2011, "Unknown order sent.")
            return self._order_api(o)
        if route == "open_orders":
            pid = self._product(q["symbol"]) if "symbol" in q else None
            with b.lock:
                return [self._order_api(o) for o in sorted(b.orders.values(), key=lambda o: o.created_ms)
                        if o.status == "OPEN" and (pid is None or o.product_id == pid)]
        if route == "list_orders":
            pid = self._product(q.get("symbol"))
            start = int(q.get("startTime", 0))
            with b.lock:
                rows = [self._order_api(o) for o in sorted(b.orders.values(), key=lambda o: o.created_ms)
                        if o.product_id == pid and o.created_ms >= start]
            return rows[: min(int(q.get("limit", 500)), 1000)]
        if route == "create_oco":
            return self._new_oco(q)
        if route in ("cancel_list", "get_list"):
            lst = self._find_list(q)
            if route == "cancel_list":
                legs = [b.orders[i] for i in lst["legs"]]
                open_leg = next((o for o in legs if o.status == "OPEN"), None)
                if open_leg is None:
                    raise BinanceError(400, -2011, "Unknown order sent.")
                b.cancel(open_leg.order_id)  # the whole list
                return {**self._list_api(lst), "orderReports": [self._order_api(o) for o in legs]}
            return self._list_api(lst)
        if route == "open_lists":
            with b.lock:
                return [self._list_api(x) for x in self._lists.values()
                        if any(b.orders[i].status == "OPEN" for i in x["legs"])]
        if route == "fills":
            pid = self._product(q.get("symbol"))
            start = int(q.get("startTime", 0))
            with b.lock:
                fills = [f for f in b.fills if f["product_id"] == pid and f["_ms"] >= start]
            return [self._trade_api(f, i) for i, f in enumerate(fills)][: min(int(q.get("limit", 500)), 1000)]
        raise BinanceError(404, -1000, route)

    def _find(self, q):
        b = self.book
        if "orderId" in q:
            o = b.orders.get(self._oid.get(int(q["orderId"]), ""))
        else:
            o = b.orders.get(b.by_client.get(str(q.get("origClientOrderId")), ""))
        if o is None or self.native(self.market.products[o.product_id]) != q.get("symbol"):
            raise BinanceError(400, -2013, "Order does not exist.")
        return o

    def _new_order(self, q, fault):
        if fault is not None and fault.kind == "reject":
            raise BinanceError(400, -2010, fault.params.get("message", "Account has insufficient balance for requested action."))
        pid = self._product(q.get("symbol"))
        p = self.market.products[pid]
        if p.status != "online" or p.trading_disabled or p.cancel_only:
            raise BinanceError(400, -1013, "Market is closed.")
        o = self._leg(q, "", q.get("type"), q.get("newClientOrderId"), p, pid, q.get("side"), fault)
        out = self._order_api(o)
        out["transactTime"] = int(o.created_ms)
        out["fills"] = [{"price": f["price"], "qty": f["size"], "commission": f["commission"],
                         "commissionAsset": p.quote, "tradeId": i}
                        for i, f in enumerate(self.book.fills) if f["order_id"] == o.order_id]
        return out

    def _leg(self, q, prefix: str, wire: str | None, cid: str | None, p, pid: str, side: str | None, fault,
             list_id: str | None = None, shared=None):
        """Place one order of type ``wire`` from ``q``'s params (``prefix`` "above"/"below": an
        OCO leg's, e.g. ``abovePrice``), as POST /api/v3/order checks them."""
        otype = ORDER_TYPES.get(wire or "")
        if otype is None or wire not in self._order_types(p) or side not in ("BUY", "SELL"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        def name(k):  # quantity is the list's; timeInForce -> belowTimeInForce, price -> abovePrice
            return k if not prefix or k == "quantity" else prefix + k[0].upper() + k[1:]
        for need in MANDATORY[wire]:  # POST /api/v3/order's table of parameters each type needs
            if not q.get(name(need)):
                raise BinanceError(400, -1102, f"Mandatory parameter '{name(need)}' was not sent, was empty/null, "
                                   "or malformed.")
        if "timeInForce" in MANDATORY[wire] and q[name("timeInForce")] not in ("GTC", "IOC", "FOK"):
            raise BinanceError(400, -1115, "Invalid timeInForce.")
        size, limit = float(q.get("quantity", 0)), (float(q[name("price")]) if otype == "LIMIT" else None)
        stop = float(q[name("stopPrice")]) if "stopPrice" in MANDATORY[wire] else None
        rising = (side == "SELL") if wire in TAKE_PROFITS else None
        cid = cid or f"emu-{time.time_ns()}"
        try:
            return self.place_order(cid, pid, side, otype, size, limit, wire == "LIMIT_MAKER", fault,
                                    unique_open=True, stop=stop, rising=rising, list_id=list_id, shared=shared)
        except Rejection as r:
            status, code, msg = {
                "INSUFFICIENT_FUND": (400, -2010, "Account has insufficient balance for requested action."),
                "INVALID_SIZE": (400, -1013, "Filter failure: NOTIONAL"),
                "DUPLICATE_CLIENT_ID": (400, -2010, "Duplicate order sent."),
                "INVALID_LIMIT_PRICE_POST_ONLY": (400, -2010, "Order would immediately match and take."),
                "INVALID_STOP_PRICE": (400, -2010, "Stop price would trigger immediately."),
            }.get(r.code, (400, -1013, r.message))
            raise BinanceError(status, code, msg) from None

    def _new_oco(self, q):
        """POST /api/v3/orderList/oco (SELL only here: the take-profit above, the stop below)."""
        pid = self._product(q.get("symbol"))
        p = self.market.products[pid]
        if p.status != "online" or p.trading_disabled or p.cancel_only:
            raise BinanceError(400, -1013, "Market is closed.")
        if q.get("side") != "SELL":
            raise BinanceError(400, -1013, "the emulator takes SELL OCO lists only (a position's protection)")
        above, below = q.get("aboveType"), q.get("belowType")
        if above not in OCO_ABOVE or below not in OCO_BELOW:
            raise BinanceError(400, -1116, "Invalid orderType.")
        cid = q.get("listClientOrderId") or f"emu-list-{time.time_ns()}"
        b = self.book
        with b.lock:
            for x in self._lists.values():  # unique among open lists
                if x["cid"] == cid and any(b.orders[i].status == "OPEN" for i in x["legs"]):
                    raise BinanceError(400, -2010, "Duplicate order sent.")
            num = len(self._lists) + 1
            key = f"list-{num}"
            low = self._leg(q, "below", below, q.get("belowClientOrderId"), p, pid, "SELL", None, list_id=key)
            try:
                high = self._leg(q, "above", above, q.get("aboveClientOrderId"), p, pid, "SELL", None,
                                 list_id=key, shared=low)
            except BinanceError:
                b.discard(low.order_id)  # the list is placed whole or not at all
                raise
            lst = self._lists[num] = {"num": num, "cid": cid, "pid": pid, "legs": [low.order_id, high.order_id],
                                      "ms": int(time.time() * 1000)}
        return {**self._list_api(lst), "orderReports": [self._order_api(low), self._order_api(high)]}

    def _find_list(self, q) -> dict:
        with self.book.lock:
            if "orderListId" in q:
                lst = self._lists.get(int(q["orderListId"]))
            else:
                cid = q.get("listClientOrderId") or q.get("origClientOrderId")
                lst = next((x for x in reversed(list(self._lists.values())) if x["cid"] == cid), None)
        if lst is None or ("symbol" in q and self.native(self.market.products[lst["pid"]]) != q["symbol"]):
            raise BinanceError(400, -2011, "Order list does not exist.")
        return lst

    def _list_api(self, lst: dict) -> dict:
        legs = [self.book.orders[i] for i in lst["legs"]]
        done = all(o.status != "OPEN" for o in legs)
        sym = self.native(self.market.products[lst["pid"]])
        return {"orderListId": lst["num"], "contingencyType": "OCO",
                "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
                "listOrderStatus": "ALL_DONE" if done else "EXECUTING", "listClientOrderId": lst["cid"],
                "transactionTime": lst["ms"], "symbol": sym,
                "orders": [{"symbol": sym, "orderId": self.order_num(o.order_id), "clientOrderId": o.client_order_id}
                           for o in legs]}

    def _symbol_api(self, p) -> dict:
        return {"symbol": self.native(p), "status": "TRADING" if p.status == "online" and not p.trading_disabled
                and not p.cancel_only else "BREAK",
                "baseAsset": p.base, "baseAssetPrecision": 8, "quoteAsset": p.quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                "orderTypes": self._order_types(p),
                "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [{"filterType": "PRICE_FILTER", "minPrice": repr(p.price_increment), "maxPrice": "1000000.0",
                             "tickSize": repr(p.price_increment)},
                            {"filterType": "LOT_SIZE", "minQty": repr(p.base_min_size), "maxQty": "9000000.0",
                             "stepSize": repr(p.base_increment)},
                            {"filterType": "NOTIONAL", "minNotional": repr(p.quote_min_size), "applyMinToMarket": True,
                             "maxNotional": "9000000.0", "applyMaxToMarket": False, "avgPriceMins": 5}],
                "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]}

    @staticmethod
    def _order_types(p) -> list[str]:
        """exchangeInfo's orderTypes of a symbol (ccxt's binance refuses a type a symbol does not list)."""
        if p.limit_only:
            return ["LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"]
        return ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]

    def _order_api(self, o) -> dict:
        p = self.market.products[o.product_id]
        stop = o.stop_price is not None
        num = int(o.list_id.split("-")[1]) if o.list_id else -1
        return {"symbol": self.native(p), "orderId": self.order_num(o.order_id), "orderListId": num,
                "clientOrderId": o.client_order_id, "price": repr(o.limit_price or 0.0), "origQty": f"{o.size:.8f}",
                "executedQty": f"{o.filled:.8f}", "cummulativeQuoteQty": f"{o.filled_value:.8f}",
                "status": STATUS.get(o.status, "NEW"), "timeInForce": "GTC", "type": _wire_type(o),
                "side": o.side, "stopPrice": repr(o.stop_price) if stop else "0.0", "icebergQty": "0.0",
                "time": int(o.created_ms), "updateTime": int(o.created_ms),
                # a stop is not on the book (isWorking false) until it triggers
                "isWorking": o.triggered if stop else True, "workingTime": int(o.created_ms) if not stop or o.triggered else -1,
                "origQuoteOrderQty": "0.0", "selfTradePreventionMode": "EXPIRE_MAKER"}

    def _trade_api(self, f, i: int) -> dict:
        p = self.market.products[f["product_id"]]
        price, size = float(f["price"]), float(f["size"])
        return {"symbol": self.native(p), "id": int(f["trade_id"][:8], 16), "orderId": self.order_num(f["order_id"]),
                "orderListId": -1, "price": repr(price), "qty": repr(size), "quoteQty": repr(price * size),
                "commission": f["commission"], "commissionAsset": p.quote, "time": int(f["_ms"]),
                "isBuyer": f["side"] == "BUY", "isMaker": f["liquidity_indicator"] == "MAKER", "isBestMatch": True}


def _wire_type(o) -> str:
    """The book's order as Binance names its type."""
    if o.stop_price is not None:
        up = o.stop_direction == "STOP_DIRECTION_STOP_UP"
        take = up if o.side == "SELL" else not up
        return ("TAKE_PROFIT" if take else "STOP_LOSS") + ("_LIMIT" if o.type == "STOP_LIMIT" else "")
    return "LIMIT_MAKER" if o.type == "LIMIT" and o.post_only else o.type
