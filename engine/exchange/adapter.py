"""ExchangeAdapter: the one object the live loop talks to (the profile's sync ccxt class underneath).

Every call goes through ``_call``: budgeted by pool, classified on failure, retried with
exponential backoff and seeded jitter when it is safe. Creating an order is the special
case: it always carries the caller's deterministic client order id, sent under the param the
profile names (``exchange.client_id.param``: Coinbase ``client_order_id``, because ccxt's coinbase
replaces a unified ``clientOrderId`` with its own ``ccxt-<uuid>``; Binance ``newClientOrderId``;
Kraken ``clientOrderId``, which ccxt sends as ``cl_ord_id``); when its fate is unknown (timeout,
dropped connection, 5xx) the adapter looks the id up and only resends the *same* id.
What differs per exchange beyond the profile is in ``engine.exchange.quirks``.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable

import ccxt
import numpy as np

from .budget import RateBudget
from .client import build_client
from .config import ExchangeConfig
from .errors import AMBIGUOUS, TRANSIENT, ErrorKind, ExchangeCallError, ExchangeConfigError, classify
from .ids import from_native, to_native
from .presend import refusal
from .quirks import quirks_for
from .secrets import Credentials, install_log_redaction, load_credentials
from .types import Balance, FeeTier, Fill, MarketInfo, OcoRequest, OrderRequest, OrderState, Quote

log = logging.getLogger("rulebook.exchange")

_REJECTIONS = (ErrorKind.INSUFFICIENT_FUNDS, ErrorKind.INVALID_ORDER, ErrorKind.BAD_REQUEST)
_THROTTLED = (ErrorKind.RATE_LIMIT, ErrorKind.DDOS)  # refused before it was placed: safe to resend
_STATUS = {"open": "open", "closed": "closed", "canceled": "canceled", "cancelled": "canceled",
           "expired": "canceled", "rejected": "rejected"}


class ExchangeAdapter:
    def __init__(self, config: ExchangeConfig, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, environ: dict | None = None,
                 budget: RateBudget | None = None, wall_clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock
        self._rng = random.Random(config.retry.seed)
        self._emulator = None
        rest_url = config.rest_url
        credentials = load_credentials(config.api_key_env, config.api_secret_env, environ)
        if config.emulator.autostart:
            rest_url, credentials = self._start_emulator(credentials)
        self.redactor = install_log_redaction(credentials, config.ccxt_log_level)
        self.budget = budget or RateBudget(config.rate_limits, clock=clock, sleep=sleep)
        self.client = build_client(config.ccxt_id, rest_url, credentials, self.budget, config.timeout_ms,
                                   config.ccxt_options)
        self.quirks = quirks_for(config.ccxt_id, self.client)
        self._markets: dict[str, MarketInfo] | None = None
        self._orders: dict[str, OrderState] = {}  # our ledger, by client order id
        self._quotes: dict[str, Quote] = {}
        self.retries = 0

    # -- lifecycle --------------------------------------------------------------------
    def _start_emulator(self, credentials: Credentials | None):
        from .emulator import emulator_class
        from .keys import throwaway_credentials_for
        e = self.config.emulator
        creds = credentials or throwaway_credentials_for(self.config.ccxt_id)
        # HMAC exchanges (Kraken, Binance): the emulator checks every signature with the throwaway secret
        keys = None if self.config.ccxt_id == "coinbase" else {creds.api_key: creds.secret}
        self._emulator = emulator_class(self.config.ccxt_id)(seed=e.seed, api_keys=keys, products=e.products, speed=e.speed,
                                          quote_currency=e.quote_currency, starting_quote=e.starting_balance,
                                          enforce_rate_limits=e.enforce_rate_limits,
                                          limits=self.config.rate_limits.pools,
                                          host=e.host, port=e.port)
        try:
            self._emulator.start()
        except OSError as exc:  # the port is taken (or the host is not ours)
            self._emulator = None
            raise ExchangeConfigError(f"exchange.emulator.port: cannot listen on {e.host}:{e.port} ({exc.strerror}); "
                                      "expected a free port, or 0 for any free port") from None
        log.info("started the local %s emulator at %s", self.config.ccxt_id, self._emulator.url)
        return self._emulator.url, creds

    @property
    def emulator(self):
        return self._emulator

    def close(self) -> None:
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        session = getattr(self.client, "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> "ExchangeAdapter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the retry loop ---------------------------------------------------------------
    def _call(self, op: str, fn: Callable[..., Any], *args, idempotent: bool = True, **kwargs) -> Any:
        if op != "markets" and self._markets is None:
            self.markets()  # otherwise ccxt would call load_markets() and its v2 endpoints
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(*args, **kwargs)
            except ccxt.BaseError as e:
                status = self.client.last.status
                kind = classify(e, status)
                if not idempotent or kind not in TRANSIENT or attempt >= self.config.retry.max_attempts:
                    raise ExchangeCallError(kind, op, str(e)[:500], attempt, status) from e
                self._backoff(op, attempt, kind)

    def _backoff(self, op: str, attempt: int, kind: ErrorKind) -> None:
        r = self.config.retry
        delay = min(r.max_delay_s, r.base_delay_s * 2 ** (attempt - 1))
        delay *= 1.0 + r.jitter * (2.0 * self._rng.random() - 1.0)
        self.retries += 1
        log.info("%s: %s, retry %d in %.3fs", op, kind.value, attempt, delay)
        self.sleep(delay)

    # -- markets and market data ------------------------------------------------------
    def markets(self, reload: bool = False) -> dict[str, MarketInfo]:
        """Spot products with increments, minimums and status flags (also primes ccxt's markets)."""
        if self._markets is not None and not reload:
            return self._markets
        raw = self._call("markets", self.client.fetch_markets)
        spot = [m for m in raw if m.get("spot")]
        self.client.set_markets(spot)
        out = {}
        for m in spot:
            out[m["symbol"]] = MarketInfo(
                symbol=m["symbol"], exchange_id=m["id"], base=m["base"], quote=m["quote"],
                price_increment=float(m["precision"]["price"]), size_increment=float(m["precision"]["amount"]),
                min_size=float(m["limits"]["amount"]["min"] or 0.0), min_notional=float(m["limits"]["cost"]["min"] or 0.0),
                **self.quirks.market_flags(m))
        self._markets = dict(sorted(out.items()))
        return self._markets

    def _market(self, symbol: str) -> MarketInfo:
        markets = self.markets()
        if symbol not in markets:
            raise ExchangeCallError(ErrorKind.BAD_REQUEST, "market", f"unknown symbol {symbol!r} on {self.config.ccxt_id}; "
                                    f"expected a unified spot symbol it lists ({len(markets)}, e.g. "
                                    f"{', '.join(list(markets)[:3])})")
        return markets[symbol]

    def best_bid_ask(self, symbols: list[str]) -> dict[str, Quote]:
        for s in symbols:
            self._market(s)
        raw = self.quirks.quotes(self._call, list(symbols))
        now = self.clock()
        out = {}
        for sym, t in raw.items():
            if t.get("bid") is None or t.get("ask") is None:
                continue
            out[sym] = Quote(sym, float(t["bid"]), float(t["ask"]), float(t.get("bidVolume") or 0.0),
                             float(t.get("askVolume") or 0.0), now, t.get("timestamp"))
        self._quotes.update(out)
        return out

    def ohlcv(self, symbol: str, timeframe: str, since_ms: int, limit: int = 300) -> np.ndarray:
        """(n, 6) float64: open time (ms), open, high, low, close, volume; oldest first."""
        self._market(symbol)
        rows = self._call("ohlcv", self.client.fetch_ohlcv, symbol, timeframe, int(since_ms), int(limit))
        arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
        return arr[np.argsort(arr[:, 0], kind="stable")] if len(arr) else arr

    # -- account ----------------------------------------------------------------------
    def balances(self) -> dict[str, Balance]:
        raw = self._call("balances", self.client.fetch_balance, dict(self.quirks.balance_params))
        skip = {"info", "free", "used", "total", "timestamp", "datetime", "debt"}
        return {c: Balance(c, float(v.get("free") or 0.0), float(v.get("used") or 0.0))
                for c, v in sorted(raw.items()) if c not in skip and isinstance(v, dict)}

    def fee_tier(self) -> FeeTier:
        return self.quirks.fee_tier(self._call, self.markets())

    # -- orders -----------------------------------------------------------------------
    def create_order(self, req: OrderRequest) -> OrderState:
        m = self._market(req.symbol)
        known = self._orders.get(req.client_order_id)
        if known is not None and known.status != "unknown":
            return known  # the same decision twice: nothing to send
        q = self._quotes.get(req.symbol)
        touch = (q.ask if req.side == "buy" else q.bid) if q is not None else None
        why = refusal(req, m, self.config.ccxt_id, req.limit_price if req.type != "market" else touch)
        if why is not None:  # the exchange would refuse it: say why in our words, send nothing
            log.warning("create_order %s refused before sending: %s", req.client_order_id, why)
            state = OrderState(req.client_order_id, None, req.symbol, req.side, req.type, "rejected", req.qty, 0.0,
                               None, req.limit_price, reject_reason=f"refused before sending: {why}")
            self._orders[req.client_order_id] = state
            return state
        self._orders[req.client_order_id] = OrderState(req.client_order_id, None, req.symbol, req.side, req.type,
                                                       "unknown", req.qty, 0.0, None, req.limit_price)
        submitted_ms = int(self.wall_clock() * 1000)
        params: dict[str, Any] = {self.config.client_id.param: to_native(req.client_order_id, self.config.client_id.style)}
        if req.post_only:
            params["postOnly"] = True
        otype = req.type
        if req.type == "stop_limit":  # ccxt's unified form: a limit order with a trigger price
            params.update(self.quirks.stop_params(req.side, float(req.stop_price)))  # ccxt ignores a numpy float
            otype = "limit"
        elif req.type == "take_profit":  # a limit order with a take-profit trigger (a sell: on a rise)
            params.update(self.quirks.take_profit_params(req.side, float(req.stop_price)))
            otype = "limit"
        elif req.type == "bracket":  # a limit sell at the take-profit with a stop trigger under it
            params.update(self.quirks.bracket_params(m.symbol, float(req.qty), float(req.limit_price),
                                                     float(req.stop_price)))
            otype = "limit"
        price = req.limit_price
        if req.type == "market" and req.side == "buy" and price is None and self.quirks.market_buy_needs_price:
            # ccxt sends a market buy as quote_size = qty * price: use the freshest ask we have.
            q = self._quotes.get(req.symbol) or self.best_bid_ask([req.symbol]).get(req.symbol)
            if q is None:
                raise ExchangeCallError(ErrorKind.INVALID_ORDER, "create_order", f"no quote for {req.symbol} to size a market buy")
            price = q.ask
        attempts = self.config.retry.max_attempts
        last: ExchangeCallError | None = None
        for attempt in range(1, attempts + 1):
            try:
                raw = self.client.create_order(m.symbol, otype, req.side, req.qty, price, params)
                state = self._state(raw, req)
                break
            except ccxt.BaseError as e:
                status = self.client.last.status
                kind = classify(e, status)
                if status is not None and 200 <= status < 300 and kind not in _REJECTIONS + _THROTTLED:
                    # an HTTP 200 success:false is a definite refusal; but Kraken answers every error with
                    # 200, and its "EOrder:Rate limit exceeded" means "not placed, try later": retried
                    kind = ErrorKind.INVALID_ORDER
                last = ExchangeCallError(kind, "create_order", str(e)[:500], attempt, status)
                if kind in _REJECTIONS and attempt > 1 and self.config.client_id.unique == "open":
                    # a resend refused as a duplicate (the id is unique among open orders): the first got in
                    found = self._recover(req, submitted_ms)
                    if found is not None:
                        self._orders[req.client_order_id] = found
                        return found
                if kind in _REJECTIONS:
                    state = OrderState(req.client_order_id, None, req.symbol, req.side, req.type, "rejected",
                                       req.qty, 0.0, None, req.limit_price, reject_reason=f"{kind.value}: {str(e)[:200]}")
                    self._orders[req.client_order_id] = state
                    return state
                if kind in AMBIGUOUS:
                    found = self._recover(req, submitted_ms)
                    if found is not None:
                        log.warning("create_order %s: %s; recovered the order by client id", req.client_order_id, kind.value)
                        self._orders[req.client_order_id] = found
                        return found
                elif kind not in TRANSIENT:
                    raise last from e
                if attempt < attempts:
                    self._backoff("create_order", attempt, kind)  # then resend the SAME client id
        else:
            found = self._recover(req, submitted_ms)
            if found is not None:
                self._orders[req.client_order_id] = found
                return found
            raise last  # ledger keeps status "unknown": reconcile() will settle it later
        if self.config.orders.confirm_after_create and state.exchange_order_id:
            try:
                state = self._fetch_by_id(state.exchange_order_id, req)
            except ExchangeCallError as e:  # the order exists; its details can wait for the next poll
                log.warning("create_order %s: confirm failed (%s)", req.client_order_id, e)
        self._orders[req.client_order_id] = state
        return state

    def _recover(self, req: OrderRequest, submitted_ms: int) -> OrderState | None:
        since = submitted_ms - int(self.config.orders.recovery_lookback_s * 1000)
        try:
            return self._find_by_client_id(req.client_order_id, req.symbol, since)
        except ExchangeCallError as e:
            log.warning("create_order %s: lookup failed (%s)", req.client_order_id, e)
            return None

    def _find_by_client_id(self, cid: str, symbol: str | None, since_ms: int | None) -> OrderState | None:
        native = to_native(cid, self.config.client_id.style)
        raw = self.quirks.find_by_client_id(self._call, native, symbol, since_ms)
        return None if raw is None else self._state(raw, None)

    def _fetch_by_id(self, exchange_order_id: str, req: OrderRequest | None, symbol: str | None = None) -> OrderState:
        symbol = symbol or (req.symbol if req else None)
        raw = self._call("fetch_order", self.client.fetch_order, exchange_order_id, symbol)
        return self._state(raw, req)

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str | None = None,
                                 since_ms: int | None = None) -> OrderState | None:
        """``since_ms``: when the order may have been created at the earliest (default: the recovery lookback)."""
        known = self._orders.get(client_order_id)
        if known is not None and known.exchange_order_id:
            state = self._fetch_by_id(known.exchange_order_id, None, known.symbol)
        else:
            since = int(self.wall_clock() * 1000 - self.config.orders.recovery_lookback_s * 1000)
            if since_ms is not None:
                since = min(since, int(since_ms))
            state = self._find_by_client_id(client_order_id, symbol or (known.symbol if known else None), since)
        if state is not None:
            self._orders[client_order_id] = state
        return state

    def cancel_order(self, client_order_id: str) -> OrderState:
        state = self.fetch_order_by_client_id(client_order_id)
        if state is None:
            raise ExchangeCallError(ErrorKind.ORDER_NOT_FOUND, "cancel_order", f"no order with client id {client_order_id}")
        if state.status != "open":
            return state
        try:
            self._call("cancel_order", self.client.cancel_order, state.exchange_order_id, state.symbol)
        except ExchangeCallError as e:
            if e.kind not in (ErrorKind.BAD_REQUEST, ErrorKind.ORDER_NOT_FOUND):
                raise  # a retry that lands after the first cancel succeeded is answered by the fetch below
        return self.fetch_order_by_client_id(client_order_id) or state

    # -- order lists (a position's take-profit and stop as one OCO: Binance) -----------------
    def create_oco(self, req: OcoRequest) -> list[OrderState]:
        """Place ``req`` as one order list; returns its legs (the stop's, the take-profit's). Every id is
        ours and sent as given: a lost answer is looked up by the list's client id and only ever
        resent with the same ids (a second list with an open list's id is refused)."""
        m = self._market(req.symbol)
        legs = req.legs()
        q = self._quotes.get(req.symbol)
        for leg in legs:
            why = refusal(leg, m, self.config.ccxt_id, leg.limit_price)
            if why is None and q is not None and leg.type == "limit" and q.bid >= leg.limit_price:
                why = f"{self.config.ccxt_id}: {req.symbol} take-profit {leg.limit_price:g} is at or under the bid {q.bid:g}"
            if why is not None:
                log.warning("create_oco %s refused before sending: %s", req.list_client_order_id, why)
                return [self._reject(x, f"refused before sending: {why}") for x in legs]
        native = lambda cid: to_native(cid, self.config.client_id.style)  # noqa: E731
        for x in legs:
            self._orders[x.client_order_id] = OrderState(x.client_order_id, None, x.symbol, x.side, x.type, "unknown",
                                                         x.qty, 0.0, None, x.limit_price, stop_price=x.stop_price)
        last: ExchangeCallError | None = None
        for attempt in range(1, self.config.retry.max_attempts + 1):
            try:
                raw = self.quirks.create_oco(self._call, m.exchange_id, req, native)
                return self._list_legs(raw, legs)
            except ExchangeCallError as e:
                last = e
                if e.kind in _REJECTIONS:
                    found = self._find_list(req, m) if attempt > 1 else None  # a resend refused as a duplicate
                    if found is not None:
                        return found
                    return [self._reject(x, f"{e.kind.value}: {str(e)[:200]}") for x in legs]
                found = self._find_list(req, m)
                if found is not None:
                    log.warning("create_oco %s: %s; recovered the list by client id", req.list_client_order_id, e.kind.value)
                    return found
                if e.kind not in TRANSIENT and e.kind not in AMBIGUOUS:
                    raise
                if attempt < self.config.retry.max_attempts:
                    self._backoff("create_oco", attempt, e.kind)  # then resend the SAME ids
        raise last  # the legs stay "unknown": reconcile settles them by client id

    def _reject(self, x: OrderRequest, why: str) -> OrderState:
        st = OrderState(x.client_order_id, None, x.symbol, x.side, x.type, "rejected", x.qty, 0.0, None,
                        x.limit_price, reject_reason=why, stop_price=x.stop_price)
        self._orders[x.client_order_id] = st
        return st

    def _find_list(self, req: OcoRequest, m: MarketInfo) -> list[OrderState] | None:
        try:
            raw = self.quirks.find_list(self._call, m.exchange_id, to_native(req.list_client_order_id,
                                                                             self.config.client_id.style))
        except ExchangeCallError as e:
            log.warning("create_oco %s: lookup failed (%s)", req.list_client_order_id, e)
            return None
        if raw is None:
            return None
        return [self.fetch_order_by_client_id(x.client_order_id, x.symbol) or self._orders[x.client_order_id]
                for x in req.legs()]

    def _list_legs(self, raw: dict, legs) -> list[OrderState]:
        """The legs of an order list's answer (``orderReports``), ours first the stop's."""
        m = self.client.markets[legs[0].symbol]
        by_cid = {}
        for rep in raw.get("orderReports") or []:
            st = self._state(self.client.parse_order(rep, m), None)
            by_cid[st.client_order_id] = st
        out = []
        for x in legs:
            st = by_cid.get(x.client_order_id) or self.fetch_order_by_client_id(x.client_order_id, x.symbol)
            if st is None:
                raise ExchangeCallError(ErrorKind.BAD_REQUEST, "create_oco", f"the answer lists no leg {x.client_order_id}")
            self._orders[x.client_order_id] = st
            out.append(st)
        return out

    def cancel_list(self, list_client_order_id: str, symbol: str, leg_ids: list[str]) -> list[OrderState]:
        """Cancel an order list (every leg); returns the legs' states after."""
        m = self._market(symbol)
        try:
            self.quirks.cancel_list(self._call, m.exchange_id, to_native(list_client_order_id, self.config.client_id.style))
        except ExchangeCallError as e:
            if e.kind not in (ErrorKind.BAD_REQUEST, ErrorKind.ORDER_NOT_FOUND, ErrorKind.INVALID_ORDER):
                raise  # done already (filled, expired, cancelled): the legs' states below say which
        return [s for s in (self.fetch_order_by_client_id(c, symbol) for c in leg_ids) if s is not None]

    def open_lists(self) -> list[dict]:
        """Our open order lists as ``{"list": client id, "symbol", "legs": [client ids]}``."""
        markets = {m.exchange_id: m.symbol for m in self.markets().values()}
        style = self.config.client_id.style
        return [{"list": from_native(x["list"], style), "symbol": markets.get(x["market_id"], x["market_id"]),
                 "legs": [from_native(c, style) for c in x["legs"]]} for x in self.quirks.open_lists(self._call)]

    def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        if symbol is not None:
            self._market(symbol)
        raw = self.quirks.open_orders(self._call, symbol)
        out = [self._state(o, None) for o in raw]
        for s in out:
            self._orders[s.client_order_id] = s
        return sorted(out, key=lambda s: s.client_order_id)

    def fills(self, since_ms: int, symbol: str | None = None) -> list[Fill]:
        self.markets()
        symbols = sorted({o.symbol for o in self._orders.values() if o.symbol})
        raw = self.quirks.fills(self._call, int(since_ms), symbol, symbols)
        raw = list({str(t["id"]): t for t in raw}.values())
        out = []
        for t in raw:
            out.append(Fill(str(t["id"]), str(t["order"]), t["symbol"], t["side"], float(t["amount"]),
                            float(t["price"]), float((t.get("fee") or {}).get("cost") or 0.0), int(t["timestamp"]),
                            t.get("takerOrMaker")))
        return sorted(out, key=lambda f: (f.time_ms, f.trade_id))

    def known_orders(self) -> dict[str, OrderState]:
        """The adapter's ledger: every order it sent or learnt about, by client order id."""
        return dict(self._orders)

    def reconcile(self) -> dict[str, OrderState]:
        """Refresh every order the ledger does not know to be final; returns the ledger."""
        for cid, s in list(self._orders.items()):
            if s.status in ("open", "unknown"):
                found = self.fetch_order_by_client_id(cid, s.symbol)
                if found is None and s.status == "unknown":
                    self._orders[cid] = OrderState(cid, None, s.symbol, s.side, s.type, "rejected", s.qty, 0.0,
                                                   None, s.limit_price, reject_reason="never reached the exchange")
        return self.known_orders()

    # -- metrics ----------------------------------------------------------------------
    def rate_metrics(self) -> dict[str, dict]:
        return {pool: {k: v for k, v in m.__dict__.items()} for pool, m in self.budget.metrics().items()}

    # -- conversion -------------------------------------------------------------------
    def _state(self, o: dict, req: OrderRequest | None) -> OrderState:
        o = self.quirks.parsed(o)
        info = o.get("info") or {}
        status = _STATUS.get(str(o.get("status")).lower(), "open" if o.get("id") else "unknown")
        if info.get("status") == "FAILED":
            status = "rejected"
        qty = o.get("amount")
        if qty is None and req is not None:
            qty = req.qty
        cid = from_native(o.get("clientOrderId"), self.config.client_id.style) or (req.client_order_id if req else "")
        fee = (o.get("fee") or {}).get("cost")
        stop = self.quirks.stop_price_of(o)
        take = self.quirks.is_take_profit(o)
        return OrderState(
            client_order_id=cid, exchange_order_id=o.get("id"), symbol=o.get("symbol") or (req.symbol if req else ""),
            side=o.get("side") or (req.side if req else ""),
            type="bracket" if o.get("type") == "bracket" else "take_profit" if take else "stop_limit" if stop
            else (o.get("type") or (req.type if req else "")),
            status=status, qty=None if qty is None else float(qty), filled=float(o.get("filled") or 0.0),
            average_price=float(o["average"]) if o.get("average") else None,
            limit_price=float(o["price"]) if o.get("price") else (req.limit_price if req else None),
            fee=float(fee or 0.0), created_ms=o.get("timestamp"),
            stop_price=float(stop) if stop else (req.stop_price if req else None))
