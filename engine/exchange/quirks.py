"""What differs per exchange and needs code rather than a profile value.

``Quirks`` is ccxt's unified API as the adapter uses it for any exchange; a subclass overrides
only what its exchange does differently (docs/exchange.md has the table, with the ccxt function
each choice rests on). ``call(op, fn, *args)`` is the adapter's retrying, classifying caller.
"""
from __future__ import annotations

from typing import Any, Callable

from .errors import ErrorKind, ExchangeCallError
from .types import FeeTier

Call = Callable[..., Any]


class Quirks:
    """ccxt's unified calls, for an exchange that needs nothing special."""

    market_buy_needs_price = False  # ccxt sends a market buy as a quote amount (Coinbase)
    balance_params: dict = {}

    def __init__(self, client):
        self.client = client

    # -- markets ----------------------------------------------------------------------
    def market_flags(self, m: dict) -> dict:
        """Product status as MarketInfo's flags; ``status`` is "online" when orders are accepted."""
        return {"status": "online" if m.get("active", True) is not False else "offline",
                "trading_disabled": m.get("active") is False, "cancel_only": False, "limit_only": False,
                "post_only": False}

    def fee_tier(self, call: Call, markets: dict) -> FeeTier:
        """The default fee from ccxt's markets (the profile's tiers are what the simulators charge)."""
        first = next(iter(markets.values()), None)
        raw = self.client.markets.get(first.symbol) if first is not None else None
        return FeeTier("ccxt markets", float((raw or {}).get("maker") or 0.0), float((raw or {}).get("taker") or 0.0), 0.0)

    def quotes(self, call: Call, symbols: list[str]) -> dict:
        if self.client.has.get("fetchBidsAsks"):
            return call("best_bid_ask", self.client.fetch_bids_asks, list(symbols))
        return call("best_bid_ask", self.client.fetch_tickers, list(symbols))

    # -- orders -----------------------------------------------------------------------
    def stop_params(self, side: str, stop_price: float) -> dict:
        """The create-order params of a stop-limit order triggered at ``stop_price`` (ccxt's unified
        ``stopPrice``); a ``side`` sell is a stop loss: it triggers on a fall."""
        return {"stopPrice": stop_price}

    def take_profit_params(self, side: str, trigger: float) -> dict:
        """The create-order params of a take-profit-limit order triggered at ``trigger`` (ccxt's
        unified ``takeProfitPrice`` on a limit order: binance TAKE_PROFIT_LIMIT with stopPrice;
        kraken ordertype=take-profit-limit, price the trigger, price2 the limit); a sell triggers on a rise."""
        return {"takeProfitPrice": trigger}

    def is_take_profit(self, o: dict) -> bool:
        """A parsed ccxt order is a take-profit (binance and kraken parse ``takeProfitPrice`` from
        their take-profit types)."""
        return bool(o.get("takeProfitPrice"))

    def bracket_params(self, symbol: str, qty: float, take: float, stop: float) -> dict:
        """The create-order params of a bracket sell (a limit at ``take``, a stop trigger at ``stop``)."""
        raise ExchangeCallError(ErrorKind.BAD_REQUEST, "create_order", f"{self.client.id} takes no bracket orders")

    def parsed(self, o: dict) -> dict:
        """A parsed ccxt order with what ccxt's parser leaves out filled in (nothing, by default)."""
        return o

    # -- order lists (a take-profit and a stop as one OCO: Binance) -------------------------
    def create_oco(self, call: Call, market_id: str, req, native) -> dict:
        raise ExchangeCallError(ErrorKind.BAD_REQUEST, "create_oco", f"{self.client.id} takes no OCO order lists")

    def find_list(self, call: Call, market_id: str, native_list_id: str) -> dict | None:
        return None

    def cancel_list(self, call: Call, market_id: str, native_list_id: str) -> dict:
        raise ExchangeCallError(ErrorKind.BAD_REQUEST, "cancel_list", f"{self.client.id} takes no OCO order lists")

    def open_lists(self, call: Call) -> list[dict]:
        """Open order lists as ``{"list": native list id, "market_id", "legs": [native leg ids]}``."""
        return []

    def stop_price_of(self, o: dict) -> float | None:
        """A parsed ccxt order's trigger price, or None (not a stop). ccxt's unified fields:
        coinbase and binance parse it into ``triggerPrice``; kraken's parse_order fills only
        ``stopLossPrice`` from a stop-loss-limit's descr.price (``triggerPrice`` only from the
        AddOrder sentence)."""
        stop = o.get("triggerPrice") or o.get("stopPrice") or o.get("stopLossPrice")
        return float(stop) if stop else None

    def find_by_client_id(self, call: Call, native_id: str, symbol: str | None, since_ms: int | None) -> dict | None:
        """The raw ccxt order whose client id is ``native_id``, or None."""
        for fetch in (self.client.fetch_open_orders, self.client.fetch_closed_orders):
            for o in call("list_orders", fetch, symbol, since_ms, None, {}):
                if o.get("clientOrderId") == native_id:
                    return o
        return None

    def open_orders(self, call: Call, symbol: str | None) -> list[dict]:
        return call("open_orders", self.client.fetch_open_orders, symbol)

    def fills(self, call: Call, since_ms: int, symbol: str | None, symbols: list[str]) -> list[dict]:
        return call("fills", self.client.fetch_my_trades, symbol, int(since_ms))


def _cursor(page: list[dict]) -> str | None:
    # ccxt puts the next page's cursor on the first raw item, which its sort may move anywhere
    return next((o["info"]["cursor"] for o in page if (o.get("info") or {}).get("cursor")), None)


class CoinbaseQuirks(Quirks):
    """Coinbase Advanced Trade (v3): cursor pages, a quote-sized market buy, its own fee summary."""

    market_buy_needs_price = True  # coinbase.create_order: market buy -> quote_size = amount * price
    balance_params = {"v3": True}

    def market_flags(self, m: dict) -> dict:
        info = m["info"]
        return {"status": str(info.get("status", "")), "trading_disabled": bool(info.get("trading_disabled")),
                "cancel_only": bool(info.get("cancel_only")), "limit_only": bool(info.get("limit_only")),
                "post_only": bool(info.get("post_only"))}

    def stop_params(self, side: str, stop_price: float) -> dict:
        # coinbase.create_order sends stopPrice as stop_limit_stop_limit_gtc with stop_direction
        # STOP_UP for a sell (a breakout), unless told: a stop loss triggers on the way down
        return {"stopPrice": stop_price,
                "stop_direction": "STOP_DIRECTION_STOP_DOWN" if side == "sell" else "STOP_DIRECTION_STOP_UP"}

    def take_profit_params(self, side: str, trigger: float) -> dict:
        # coinbase.create_order: takeProfitPrice on a limit order is stop_limit_stop_limit_gtc with
        # stop_direction STOP_UP for a sell (a take-profit triggers on a rise)
        return {"takeProfitPrice": trigger}

    def is_take_profit(self, o: dict) -> bool:
        conf = ((o.get("info") or {}).get("order_configuration") or {}).get("stop_limit_stop_limit_gtc") or {}
        return o.get("side") == "sell" and conf.get("stop_direction") == "STOP_DIRECTION_STOP_UP"

    def bracket_params(self, symbol, qty, take, stop):
        # Advanced Trade's trigger_bracket_gtc (a limit sell at limit_price; at stop_trigger_price a
        # stop-limit sell): ccxt 4.5.90's coinbase.create_order builds no bracket, but sends our
        # order_configuration over the one it built (its params extend the request)
        c = self.client
        return {"order_configuration": {"trigger_bracket_gtc": {
            "base_size": c.amount_to_precision(symbol, qty), "limit_price": c.price_to_precision(symbol, take),
            "stop_trigger_price": c.price_to_precision(symbol, stop)}}}

    def parsed(self, o):
        # coinbase.parse_order reads no trigger_bracket_gtc: its size, limit and trigger from the raw order
        conf = ((o.get("info") or {}).get("order_configuration") or {}).get("trigger_bracket_gtc")
        if not conf:
            return o
        return {**o, "type": "bracket", "amount": o.get("amount") or conf.get("base_size"),
                "price": conf.get("limit_price"), "triggerPrice": conf.get("stop_trigger_price")}

    def fee_tier(self, call: Call, markets: dict) -> FeeTier:
        raw = call("fee_tier", self.client.v3PrivateGetBrokerageTransactionSummary, {"product_type": "SPOT"})
        tier = raw.get("fee_tier") or {}
        return FeeTier(str(tier.get("pricing_tier", "")), float(tier.get("maker_fee_rate") or 0.0),
                       float(tier.get("taker_fee_rate") or 0.0), float(raw.get("total_volume") or 0.0))

    def find_by_client_id(self, call, native_id, symbol, since_ms):
        # v3 has no lookup by client id: list orders (newest first) and match
        cursor = None
        for _ in range(50):  # pages of 100: enough for any lookback we allow
            page = call("list_orders", self.client.fetch_orders, symbol, since_ms, 100,
                        {"cursor": cursor} if cursor else {})
            for o in page:
                if o.get("clientOrderId") == native_id:
                    return o
            cursor = _cursor(page)
            if not cursor:
                return None
        return None

    def open_orders(self, call, symbol):
        raw, seen, cursor = [], set(), None
        for _ in range(200):  # pages of 100: every open order, not only the newest 100
            page = call("open_orders", self.client.fetch_open_orders, symbol, None, 100,
                        {"cursor": cursor} if cursor else {})
            raw += [o for o in page if o.get("id") not in seen]
            seen.update(o.get("id") for o in page)
            cursor = _cursor(page)
            if not cursor:
                break
        return raw

    def fills(self, call, since_ms, symbol, symbols):
        raw, seen, cursor = [], set(), None
        for _ in range(200):  # pages of 250 (Coinbase's maximum); the cursor rides on one trade's info
            page = call("fills", self.client.fetch_my_trades, symbol, int(since_ms), 250,
                        {"cursor": cursor} if cursor else {})
            raw += [t for t in page if str(t["id"]) not in seen]
            seen.update(str(t["id"]) for t in page)
            cursor = _cursor(page)
            if not cursor:
                break
        return raw


class KrakenQuirks(Quirks):
    """Kraken spot: ``cl_ord_id`` is found through OpenOrders/ClosedOrders (kraken.fetch_order takes
    only a txid or an integer userref); trades come 50 a page by ``ofs``; a pair's status is a word."""

    _STATUS = {"online": {}, "cancel_only": {"cancel_only": True}, "post_only": {"post_only": True},
               "limit_only": {"limit_only": True}, "reduce_only": {"cancel_only": True}}

    def market_flags(self, m: dict) -> dict:
        word = str((m.get("info") or {}).get("status", "online"))
        flags = {"status": "online" if word in self._STATUS else word, "trading_disabled": word not in self._STATUS,
                 "cancel_only": False, "limit_only": False, "post_only": False}
        flags.update(self._STATUS.get(word, {}))
        return flags

    def stop_params(self, side: str, stop_price: float) -> dict:
        # kraken.order_request: stopLossPrice with a limit type sends ordertype=stop-loss-limit,
        # price=the trigger, price2=the limit (a sell triggers on a fall, a buy on a rise); a
        # unified stopPrice would be passed through to AddOrder as an unknown argument
        return {"stopLossPrice": stop_price}

    def find_by_client_id(self, call, native_id, symbol, since_ms):
        for op, fetch, since in (("open_orders", self.client.fetch_open_orders, None),
                                 ("list_orders", self.client.fetch_closed_orders, since_ms)):
            for o in call(op, fetch, None, since, None, {"clientOrderId": native_id}):
                if o.get("clientOrderId") == native_id:
                    return o
        return None

    def fills(self, call, since_ms, symbol, symbols):
        raw, seen = [], set()
        for _ in range(200):  # TradesHistory: 50 per page, newest first; ofs counts from the newest
            page = call("fills", self.client.fetch_my_trades, symbol, int(since_ms), None, {"ofs": len(raw)})
            new = [t for t in page if str(t["id"]) not in seen]
            raw += new
            seen.update(str(t["id"]) for t in new)
            if len(page) < 50 or not new:
                break
        return raw


class BinanceQuirks(Quirks):
    """Binance spot: GET /api/v3/order takes ``origClientOrderId`` (binance.fetch_order), but every
    order and trade query needs a symbol; a symbol's status is TRADING / HALT / BREAK."""

    def market_flags(self, m: dict) -> dict:
        info = m.get("info") or {}
        word = str(info.get("status", "TRADING"))
        types = info.get("orderTypes") or []
        return {"status": "online" if word == "TRADING" else word.lower(),
                "trading_disabled": word != "TRADING" or info.get("isSpotTradingAllowed") is False,
                "cancel_only": False, "limit_only": bool(types) and "MARKET" not in types,
                "post_only": bool(types) and types == ["LIMIT_MAKER"]}

    def stop_params(self, side: str, stop_price: float) -> dict:
        # binance.create_order_request: stopLossPrice on a spot limit order is type STOP_LOSS_LIMIT
        # with stopPrice, price and timeInForce (GTC, ccxt's default); the symbol must list the type
        return {"stopLossPrice": stop_price}

    def is_take_profit(self, o: dict) -> bool:
        # an OCO's take-profit leg is a LIMIT_MAKER of an order list (ccxt parses it as a plain limit)
        info = o.get("info") or {}
        return super().is_take_profit(o) or (info.get("type") == "LIMIT_MAKER" and info.get("side") == "SELL"
                                             and str(info.get("orderListId", "-1")) != "-1")

    def create_oco(self, call, market_id, req, native):
        """POST /api/v3/orderList/oco (binance.privatePostOrderListOco; ccxt fills no id we give): the
        take-profit above as LIMIT_MAKER, the stop below as STOP_LOSS_LIMIT (GTC)."""
        m = self.client.markets_by_id[market_id][0]
        price = lambda x: self.client.price_to_precision(m["symbol"], x)  # noqa: E731
        return call("create_oco", self.client.privatePostOrderListOco, {
            "symbol": market_id, "side": "SELL", "quantity": self.client.amount_to_precision(m["symbol"], req.qty),
            "listClientOrderId": native(req.list_client_order_id),
            "aboveType": "LIMIT_MAKER", "abovePrice": price(req.take_price),
            "aboveClientOrderId": native(req.take_client_order_id),
            "belowType": "STOP_LOSS_LIMIT", "belowStopPrice": price(req.stop_price), "belowPrice": price(req.stop_limit),
            "belowTimeInForce": "GTC", "belowClientOrderId": native(req.stop_client_order_id),
            "newOrderRespType": "RESULT"}, idempotent=False)

    def find_list(self, call, market_id, native_list_id):
        try:
            return call("get_list", self.client.privateGetOrderList, {"origClientOrderId": native_list_id})
        except ExchangeCallError as e:
            if e.kind in (ErrorKind.ORDER_NOT_FOUND, ErrorKind.BAD_REQUEST, ErrorKind.INVALID_ORDER):
                return None
            raise

    def cancel_list(self, call, market_id, native_list_id):
        return call("cancel_list", self.client.privateDeleteOrderList,
                    {"symbol": market_id, "listClientOrderId": native_list_id})

    def open_lists(self, call):
        return [{"list": x["listClientOrderId"], "market_id": x["symbol"],
                 "legs": [leg["clientOrderId"] for leg in x.get("orders") or []]}
                for x in call("open_lists", self.client.privateGetOpenOrderList, {})]

    def find_by_client_id(self, call, native_id, symbol, since_ms):
        if symbol is None:
            raise ExchangeCallError(ErrorKind.BAD_REQUEST, "fetch_order",
                                    f"binance looks an order up by client id within one symbol; none given for {native_id}")
        try:
            return call("fetch_order", self.client.fetch_order, None, symbol, {"origClientOrderId": native_id})
        except ExchangeCallError as e:
            if e.kind in (ErrorKind.ORDER_NOT_FOUND,):
                return None
            raise

    def fills(self, call, since_ms, symbol, symbols):
        raw = []
        for s in ([symbol] if symbol else symbols):  # myTrades needs a symbol: the ledger's symbols
            start = int(since_ms)
            for _ in range(200):  # pages of 1000 from ``since``
                page = call("fills", self.client.fetch_my_trades, s, start, 1000)
                raw += page
                if len(page) < 1000:
                    break
                start = int(page[-1]["timestamp"]) + 1
        return raw


QUIRKS: dict[str, type[Quirks]] = {"coinbase": CoinbaseQuirks, "kraken": KrakenQuirks, "binance": BinanceQuirks}


def quirks_for(ccxt_id: str, client) -> Quirks:
    return QUIRKS.get(ccxt_id, Quirks)(client)


__all__ = ["Quirks", "CoinbaseQuirks", "KrakenQuirks", "BinanceQuirks", "QUIRKS", "quirks_for"]
