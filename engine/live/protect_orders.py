"""A strategy's ``protect:`` block in live mode: stops and take-profits resting on the exchange where
its profile takes them (``exchange.protection_orders``, engine/exchange/profiles.py), the rest
enforced by the loop at each cycle.

Levels are the backtest's (engine/sim/protect.py ``Levels``): fixed at entry from the entry's
fill price (or an expression read at its decision bar); the trailing high takes in each
completed bar's high from the entry bar on. Then, per held symbol, what rests on the exchange
(one group: a spot sell holds the base, so a position has one resting sell, or one order list):

- the stop alone: a stop-limit sell of the whole position at the binding stop, its limit
  ``exchange.stop_limit_offset_bps`` under it;
- the take-profit alone (no stop configured, or a venue whose take-profit cannot rest beside a
  stop: Kraken): a take-profit-limit sell triggered at the take-profit, its limit there;
- both as one OCO order list (Binance): a LIMIT_MAKER sell at the take-profit and the stop-limit
  under the price; one filling expires the other;
- both as one bracket order (Coinbase ``trigger_bracket_gtc``): a limit sell at the take-profit
  that becomes a stop-limit once the price falls to the stop (its fill's rule: the take-profit's
  at or over the take-profit, else the stop's).

Each is recorded in the state file (client order ids, status ``new``; a list's legs carry its
``list_id``) before it is sent; replaced (cancel, then a new recorded group) when the trailing
level rises by a price increment or the position's size changes; cancelled when the position
closes by other means (an exit rule's sell cancels it first). A level the bid has already
passed (under the stop, at or over the take-profit) is sold at market instead (the exchange
refuses an order that would trigger or take at once).

A gapped stop: when the price gaps down through a resting stop and its limit (a stop-limit, an OCO's
stop leg, a triggered bracket's stop-limit ``BRACKET_STOP_LIMIT`` under its trigger), the venue
triggers it but it cannot fill and rests while the price falls on. At each step, a bid under that
limit (``gapped``) cancels it (the whole list), and once its row is confirmed cancelled (not filled
meanwhile) the rest of the position is sold at market under the stop's rule, with a warning alert
``stop_gapped``. After a restart this is the first step's work too (reconcile updates the rows, an
adopted stop is named by the book's binding level).

By the loop (what the venue lacks; time_stop always): at each cycle, the bars completed since the
last check are compared with the levels (a low at or under the stop, a high over the take-profit,
a position held ``time_stop`` bars at the next bar's open) and a market sell is recorded and sent,
its rule ``protect:<kind>``.
"""
from __future__ import annotations

import numpy as np

from engine.exchange.ids import make_client_order_id
from engine.exchange.profiles import BRACKET_STOP_LIMIT, stop_order_type, take_profit_mode
from engine.live.brokers import protector_for
from engine.live.port import BrokerContext, OrderTicket
from engine.live.store import now_ms

STOP = "stop_limit"
TAKE = "take_profit"
BRACKET = "bracket"  # one order: a limit sell at the take-profit with a stop trigger under it (Coinbase)
PROTECTIVE = (STOP, TAKE, BRACKET)  # the order types of a position's protection (not a decision's orders)
_RULE_OF = {TAKE: "protect:take_profit"}
TOGETHER = {"oco": "with the stop as one OCO order list (one filling cancels the other)",
            "bracket": "with the stop as one bracket order (trigger_bracket_gtc: a limit sell at the take-profit, "
                       "a stop trigger under the price)"}


def _plan(protect, config) -> tuple[list[str], bool]:
    """(the stop kinds resting on the exchange, whether the take-profit rests there too)."""
    stops = [k for k in ("stop_loss", "trailing_stop") if getattr(protect, k) is not None] if stop_order_type(config) else []
    mode = take_profit_mode(config)
    take = protect.take_profit is not None and mode is not None and (mode in TOGETHER or not stops)
    return stops, take


def describe(protect, config) -> tuple[str, str]:
    """(alert level, message): what protects a live position, per kind who enforces it, said at start
    (docs/live.md). A warning when the loop enforces any: it checks only completed bars, at each
    cycle, and only while it runs (nothing rests on the exchange for it)."""
    kinds = [k for k in ("stop_loss", "take_profit", "trailing_stop", "time_stop") if getattr(protect, k) is not None]
    stops, take = _plan(protect, config)
    on_exchange = [k for k in kinds if k in stops or (k == "take_profit" and take)]
    loop = [k for k in kinds if k not in on_exchange]
    parts = []
    if stops:
        parts.append(f"{', '.join(stops)} placed on the exchange as {stop_order_type(config)} orders")
    if take:
        parts.append("take_profit placed on the exchange " + (
            TOGETHER[take_profit_mode(config)] if stops else "as take-profit-limit orders"))
    if loop:
        said = (f"{', '.join(loop)} enforced by the loop at each cycle on exchange {config.name} "
                f"(protection_orders: [{', '.join(config.protection_orders)}]): checked at each bar's "
                f"close and sold at market, only while the loop runs")
        if "take_profit" in loop and stops and take_profit_mode(config) == "alone":
            said += (f"; take_profit stays with the loop because {config.name} spot holds the base of one "
                     "resting sell and the stop rests")
        parts.append(said)
    return ("warning" if loop else "info"), "; ".join(parts)


def open_stops(ctx: BrokerContext) -> list[dict]:
    """Every open protective order row (stops and take-profits, a list's legs each)."""
    return [o for o in ctx.store.open_orders() if o["type"] in PROTECTIVE]


def sells_at(o: dict) -> float | None:
    """The limit a protective row's stop sells at once the venue has triggered it: a stop-limit's own
    (``stop_limit_offset_bps`` under its stop, as recorded); a bracket's stop-limit, which Coinbase
    places ``BRACKET_STOP_LIMIT`` under its trigger; None for a take-profit (it sells on a rise)."""
    if o["type"] == STOP and o.get("limit_price") is not None:
        return float(o["limit_price"])
    if o["type"] == BRACKET and o.get("stop_price") is not None:
        return float(o["stop_price"]) * (1 - BRACKET_STOP_LIMIT)
    return None


def gapped(o: dict, bid: float) -> bool:
    """Whether the price has gapped through stop row ``o`` and its limit: the bid strictly under the
    limit it sells at. A resting sell limit fills only against a bid at or over it, so under it the
    stop (triggered: the bid is under its stop too) rests unfilled however far the price falls; at
    the limit it still fills, so that is no gap. No bid (NaN): not known, so no."""
    limit = sells_at(o)
    return limit is not None and bool(np.isfinite(bid)) and bid < limit


def stop_rule(ctx: BrokerContext, sym: str) -> str:
    """The rule a stop of ``sym`` sells under: the trailing stop's where it is the binding level in the
    book's levels (held, levels known), else the stop loss's."""
    lv, j = ctx.book.levels, ctx.index.get(sym)
    if lv is None or j is None or j >= lv.stop.shape[0] or ctx.book.pf.qty[j] <= 0:
        return "protect:stop_loss"
    level, trailing = lv.stop_level(np.array([j]))
    return "protect:trailing_stop" if np.isfinite(level[0]) and trailing[0] else "protect:stop_loss"


def groups(rows: list[dict]) -> list[list[dict]]:
    """Rows grouped as they rest: an order list's legs together, any other order alone; oldest first."""
    out: dict[str, list[dict]] = {}
    for o in sorted(rows, key=lambda o: (o["created_wall_ms"] or 0, o["client_order_id"])):
        out.setdefault(o.get("list_id") or o["client_order_id"], []).append(o)
    return list(out.values())


class ExchangeProtections:
    """The protections of an ExchangeBroker's positions (the broker sends and cancels)."""

    def __init__(self, broker):
        self.broker = broker

    @property
    def kind(self) -> str | None:
        """The order type stops rest on the exchange as (None: the loop enforces them)."""
        return stop_order_type(self.broker.adapter.config)

    @property
    def take_style(self) -> str | None:
        """How take-profits rest on the exchange ("oco", "bracket", "alone"; None: the loop enforces them)."""
        return take_profit_mode(self.broker.adapter.config)

    @property
    def offset(self) -> float:
        return self.broker.adapter.config.stop_limit_offset_bps / 1e4

    def _take_rests(self, stop_finite: np.ndarray) -> np.ndarray:
        """Per position, whether its take-profit rests on the exchange (else the loop checks it)."""
        if self.take_style is None:
            return np.zeros(stop_finite.shape, dtype=bool)
        if self.take_style in TOGETHER:
            return np.ones(stop_finite.shape, dtype=bool)
        return ~stop_finite if self.kind is not None else np.ones(stop_finite.shape, dtype=bool)

    def cancel(self, ctx: BrokerContext, rows: list[dict]) -> None:
        """Cancel protective rows: an order list's legs by one cancel of the list."""
        for g in groups(rows):
            if g[0].get("list_id"):
                self.broker.cancel_list(ctx, g[0]["list_id"], g[0]["symbol"], [o["client_order_id"] for o in g])
            else:
                for o in g:
                    self.broker.cancel(ctx, o["client_order_id"])

    # -- once per cycle (settle) and after a submit's fills ------------------------------------
    def step(self, ctx: BrokerContext, market, t: int) -> None:
        protector = protector_for(ctx, market)
        stops: dict[str, list[dict]] = {}
        for o in open_stops(ctx):
            stops.setdefault(o["symbol"], []).append(o)
        pf = ctx.book.pf
        if protector is None:  # no protect: block (any more): nothing may rest
            for rows in stops.values():
                self.cancel(ctx, rows)
            return
        lv = ctx.book.levels
        held = pf.qty > 0
        gone = np.flatnonzero(~held & ~np.isnan(lv.high))
        lv.clear(gone)
        new = np.flatnonzero(held & np.isnan(lv.high))
        for eb in np.unique(pf.entry_bar[new]):  # levels fixed at entry, as in a backtest
            protector.on_entry(int(eb), new[pf.entry_bar[new] == eb], pf)
        t0 = ctx.book.protect_t + 1 if ctx.book.protect_t >= 0 else t
        idx = np.flatnonzero(held)
        sells: dict[int, str] = {}
        if idx.size and t0 <= t:
            rows = np.arange(t0, t + 1)[:, None]
            since = rows >= pf.entry_bar[idx][None, :]  # bars from the entry bar on
            lo = np.fmin.reduce(np.where(since, market.low[t0:t + 1, idx], np.nan), axis=0)
            hi = np.fmax.reduce(np.where(since, market.high[t0:t + 1, idx], np.nan), axis=0)
            sells = self._loop_checks(ctx, protector, idx, lo, hi, t)
            lv.high[idx] = np.fmax(lv.high[idx], hi)  # after the bars, never within them
        ctx.book.protect_t = t
        for j, rule in sells.items():
            self._sell(ctx, j, rule, t, stops.pop(ctx.symbols[j], []))
        for sym, rows in stops.items():  # closed by other means: its protection goes
            if pf.qty[ctx.index[sym]] <= 0:
                self.cancel(ctx, rows)
        if self.kind is not None or self.take_style is not None:
            for j in idx:
                if j not in sells and not pf.exiting[j]:
                    self._keep(ctx, j, t, stops.get(ctx.symbols[j], []))
        with ctx.store.txn() as db:
            ctx.save(db)
        if sells:
            self.broker.sync_fills(ctx)
        sold = np.flatnonzero((pf.qty <= 0) & ~np.isnan(lv.high))
        if sold.size:
            # sold within this step (a loop check, a chased gap): its levels go now, so that a re-entry in
            # this very cycle (the submit's step) gets its own from its entry, not the closed position's
            lv.clear(sold)
            with ctx.store.txn() as db:
                ctx.save(db)

    def _loop_checks(self, ctx, protector, idx, lo, hi, t) -> dict[int, str]:
        """The protections the loop enforces that the bars since the last check triggered."""
        lv, r = ctx.book.levels, protector.rules
        out: dict[int, str] = {}
        stop, trailing = lv.stop_level(idx)
        take = lv.take[idx]
        checks = []
        if self.kind is None:
            checks.append((lo <= stop, np.where(trailing, "protect:trailing_stop", "protect:stop_loss")))
        take_rests = self._take_rests(np.isfinite(stop))
        checks.append(((hi > take) & ~take_rests, np.full(idx.size, "protect:take_profit")))
        if r.time_stop is not None:
            checks.append((t + 1 - ctx.book.pf.entry_bar[idx] >= r.time_stop, np.full(idx.size, "protect:time_stop")))
        for hit, rule in checks:  # the first that fires names the sell (a stop before a take-profit)
            for k in np.flatnonzero(hit):
                out.setdefault(int(idx[k]), str(rule[k]))
        return out

    # -- what rests on the exchange ------------------------------------------------------------
    def _keep(self, ctx: BrokerContext, j: int, t: int, rows: list[dict]) -> None:
        """Keep symbol ``j``'s one resting group (a stop, a take-profit, or both as one list) at its
        levels: placed when missing, replaced when it moved or the size changed."""
        sym = ctx.symbols[j]
        lv = ctx.book.levels
        level = float(lv.stop_level(np.array([j]))[0][0])
        rule = stop_rule(ctx, sym)
        want_stop = self.kind is not None and bool(np.isfinite(level))
        take_level = float(lv.take[j])
        want_take = bool(np.isfinite(take_level) and self._take_rests(np.array([want_stop]))[0])
        inc = self.broker.adapter.markets()[sym].price_increment or 0.0
        gs = groups(rows)
        for g in gs[:-1]:  # never two: the newest stays (a replacement cut short by a crash)
            self.cancel(ctx, g)
        cur = gs[-1] if gs else []
        if not want_stop and not want_take:
            if cur:
                self.cancel(ctx, cur)
            return
        stop = _down(level, inc) if want_stop else None
        take = _up(take_level, inc) if want_take else None
        qty = float(ctx.book.pf.qty[j])
        q = ctx.quotes()
        bid = float(q.bid[j]) if q is not None and np.isfinite(q.bid[j]) else np.nan
        if cur:
            if any(o["status"] == "new" for o in cur):
                return  # recorded, not sent yet: reconcile sends it
            through = next((o for o in cur if o["status"] == "open" and gapped(o, bid)), None)
            if through is not None:
                self._chase(ctx, j, t, cur, through, bid)
                return
            if cur[0].get("list_id") and len(cur) < 2:
                # one leg of the list triggered or filled and the other is done: the list is finishing at
                # the venue (a triggered stop leg the bid is not under fills at its limit)
                return
            have_stop = next((o for o in cur if o["type"] in (STOP, BRACKET)), None)
            have_take = next((o for o in cur if o["type"] in (TAKE, BRACKET)), None)
            same = (have_stop is not None) == want_stop and (have_take is not None) == want_take \
                and all(abs(float(o["qty"]) - qty) <= 1e-12 for o in cur) \
                and (not want_stop or stop <= float(have_stop["stop_price"] or 0.0) + 0.5 * inc) \
                and (not want_take or abs(take - float(have_take["limit_price"] or 0.0)) <= 0.5 * inc)
            if same:
                return
            self.cancel(ctx, cur)
            if not _canceled(ctx, cur):
                return  # it filled (or the cancel failed): the next cycle knows
        if want_stop and bid <= stop:  # the bid is through it already: the exchange would refuse the stop
            self._sell(ctx, j, rule, t, [])
            self.broker.sync_fills(ctx)
            return
        if want_take and bid >= take:  # at or over the take-profit: it would take at once
            self._sell(ctx, j, _RULE_OF[TAKE], t, [])
            self.broker.sync_fills(ctx)
            return
        n = self._count(ctx, sym)
        if want_stop and want_take and self.take_style == "bracket":  # one order holds both levels
            cid = make_client_order_id(_run_id(ctx), ctx.bar_ms(t), sym, "sell", 2 + n)
            self.place(ctx, OrderTicket(cid, t, sym, "sell", qty, BRACKET, take, rule, stop))
            return
        cid = lambda k: make_client_order_id(_run_id(ctx), ctx.bar_ms(t), sym, "sell", 2 + n + k)  # noqa: E731
        stop_leg = take_leg = None
        if want_stop:
            limit = _down(stop - stop * self.offset, inc)
            stop_leg = OrderTicket(cid(0), t, sym, "sell", qty, STOP, limit, rule, stop)
        if want_take:
            # the take-profit alone triggers there and sells at it; in a list it rests as a limit there
            take_leg = OrderTicket(cid(1 if want_stop else 0), t, sym, "sell", qty, TAKE, take, _RULE_OF[TAKE],
                                   None if want_stop else take)
        if stop_leg and take_leg:
            list_id = make_client_order_id(_run_id(ctx) + "|list", ctx.bar_ms(t), sym, "sell", 2 + n)
            self.place_list(ctx, list_id, stop_leg, take_leg)
        else:
            self.place(ctx, stop_leg or take_leg)

    def _chase(self, ctx: BrokerContext, j: int, t: int, cur: list[dict], stop: dict, bid: float) -> None:
        """The price gapped through ``stop`` and its limit (``gapped``): it cannot fill, so it is cancelled
        (with its group: the whole list) and, once its row says cancelled, what is still held is sold at
        market under the stop's rule (a bracket's row carries the stop's rule; its take-profit is above)."""
        sym = ctx.symbols[j]
        self.cancel(ctx, cur)
        if not _canceled(ctx, cur):
            return  # it filled meanwhile (or the cancel failed): the next cycle knows
        self.broker.sync_fills(ctx)  # a part filled before the gap: sell what is left
        if ctx.book.pf.qty[j] <= 0:
            return
        rule = stop["rule"] if stop["rule"] in ("protect:stop_loss", "protect:trailing_stop") else stop_rule(ctx, sym)
        ctx.alert("warning", "stop_gapped", f"{rule} of {sym}: stop {stop['client_order_id']} (stop {stop['stop_price']}, "
                  f"limit {sells_at(stop):.10g}) was gapped through its limit (bid {bid:.10g}): it cannot fill, so it "
                  "was cancelled and is chased at market", t)
        self._sell(ctx, j, rule, t, [])
        self.broker.sync_fills(ctx)

    def _record(self, db, o: OrderTicket, list_id: str | None = None) -> None:
        db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, limit_price, stop_price, rule, "
                   "status, created_wall_ms, updated_wall_ms, list_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (o.client_order_id, o.t, o.symbol, o.side, o.qty, o.type, o.limit_price, o.stop_price, o.rule,
                    "new", now_ms(), now_ms(), list_id))

    def place(self, ctx: BrokerContext, o: OrderTicket) -> None:
        """Record the order (status new) in its own transaction, then send it."""
        with ctx.store.txn() as db:
            self._record(db, o)
        self.broker.send(ctx, o)

    def place_list(self, ctx: BrokerContext, list_id: str, stop: OrderTicket, take: OrderTicket) -> None:
        """Record both legs of an OCO list (status new, ``list_id``) in one transaction, then send it."""
        with ctx.store.txn() as db:
            self._record(db, stop, list_id)
            self._record(db, take, list_id)
        self.broker.send_list(ctx, list_id, stop, take)

    def _sell(self, ctx: BrokerContext, j: int, rule: str, t: int, stops: list[dict]) -> None:
        """A market sell of the position (the loop's own protection), its resting protection cancelled first."""
        self.cancel(ctx, stops)
        sym = ctx.symbols[j]
        o = OrderTicket(make_client_order_id(_run_id(ctx), ctx.bar_ms(t), sym, "sell", 1), t, sym, "sell",
                        float(ctx.book.pf.qty[j]), "market", None, rule)
        with ctx.store.txn() as db:
            if db.execute("SELECT 1 FROM orders WHERE client_order_id=?", (o.client_order_id,)).fetchone():
                return  # sent once already for this bar
            db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, rule, status, created_wall_ms, "
                       "updated_wall_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (o.client_order_id, t, sym, "sell", o.qty, "market", rule, "new", now_ms(), now_ms()))
        ctx.alert("info", "protection", f"{rule} of {sym}: sold at market by the loop", t)
        self.broker.send(ctx, o)

    @staticmethod
    def _count(ctx: BrokerContext, sym: str) -> int:
        """Protective orders of ``sym`` ever recorded (each new one's client id seq follows them)."""
        return ctx.store.db.execute("SELECT COUNT(*) FROM orders WHERE symbol=? AND type IN (?,?,?)",
                                    (sym, *PROTECTIVE)).fetchone()[0]

    # -- after a restart -----------------------------------------------------------------------
    def bid_through(self, o: dict) -> bool:
        """Whether the bid has passed a recorded protective order's level now: at or under a stop's
        trigger, at or over a take-profit (a bracket: either; no bid: not known, so no)."""
        q = self.broker.adapter.best_bid_ask([o["symbol"]]).get(o["symbol"])
        if q is None or not np.isfinite(q.bid):
            return False
        over = o["type"] in (TAKE, BRACKET) and q.bid >= float(o["limit_price"])
        under = o["type"] in (STOP, BRACKET) and q.bid <= float(o["stop_price"])
        return over or under

    def reconcile_list(self, ctx: BrokerContext, rows: list[dict]) -> None:
        """An order list of the state file after a restart: each leg matched at the exchange by its
        client id; a list recorded and never sent is sent once with the same ids while the position
        is held and the bid is between its legs, else abandoned (the next step sells at market if a
        level was passed)."""
        from engine.live.exchange_broker import _recorded_ms
        states = {o["client_order_id"]: self.broker.adapter.fetch_order_by_client_id(
            o["client_order_id"], o["symbol"], _recorded_ms(o)) for o in rows}
        if all(st is None for st in states.values()):
            held = ctx.book.pf.qty[ctx.index[rows[0]["symbol"]]] > 0
            new = all(o["status"] == "new" for o in rows)
            through = held and new and any(self.bid_through(o) for o in rows)
            if new and held and not through:
                stop = next(o for o in rows if o["type"] == STOP)
                take = next(o for o in rows if o["type"] == TAKE)
                ctx.alert("warning", "resend", f"order list {rows[0]['list_id']} was recorded but never reached the "
                          "exchange; sending it now (same client order ids)", rows[0]["t"])
                self.broker.send_list(ctx, rows[0]["list_id"], OrderTicket.from_row(stop), OrderTicket.from_row(take))
                return
            reason = ("the bid is past a level of the list after restart" if through else
                      "not at the exchange after restart")
            with ctx.store.txn() as db:
                for o in rows:
                    ctx.store.update_order(db, o["client_order_id"], status="abandoned", reason=reason)
            return
        with ctx.store.txn() as db:
            for cid, st in states.items():
                if st is not None:
                    self.broker._update(ctx, db, cid, st)

    def adopt(self, ctx: BrokerContext) -> int:
        """Protective orders of ours resting on the exchange that the state file does not hold (an
        order list's legs together): recorded as they are, never placed a second time."""
        if self.kind is None and self.take_style is None:
            return 0
        ad = self.broker.adapter
        known = {r["client_order_id"] for r in ctx.store.rows("SELECT client_order_id FROM orders")}
        resting = {st.client_order_id: st for st in ad.open_orders()}
        found: list[tuple[object, str | None]] = []
        for lst in ad.open_lists() if self.take_style == "oco" else []:
            if lst["symbol"] in ctx.index and str(lst["list"]).startswith("rb-") and not known & set(lst["legs"]):
                found += [(resting[c], lst["list"]) for c in lst["legs"] if c in resting]
                known |= set(lst["legs"])
        found += [(st, None) for st in resting.values() if st.type in PROTECTIVE and st.client_order_id not in known]
        n = 0
        for st, list_id in found:
            if st.symbol not in ctx.index or not st.client_order_id.startswith("rb-") or st.type not in PROTECTIVE:
                continue
            with ctx.store.txn() as db:
                db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, limit_price, stop_price, "
                           "rule, status, exchange_order_id, created_wall_ms, updated_wall_ms, list_id) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (st.client_order_id, self.broker.last_t or 0, st.symbol, st.side, st.qty, st.type,
                            st.limit_price, st.stop_price, _RULE_OF.get(st.type) or stop_rule(ctx, st.symbol), "open",
                            st.exchange_order_id, now_ms(), now_ms(), list_id))
            what = {STOP: "stop", BRACKET: "bracket"}.get(st.type, "take-profit")
            ctx.alert("warning", "stop_adopted", f"{what} {st.client_order_id} of {st.symbol} rests on the exchange "
                      f"but was not in the state file{f' (order list {list_id})' if list_id else ''}; adopted", None)
            n += 1
        return n


def _canceled(ctx: BrokerContext, rows: list[dict]) -> bool:
    """Whether every row of a group is cancelled in the state file now (after a cancel: not filled)."""
    marks = ",".join("?" * len(rows))
    return all(r["status"] == "canceled" for r in ctx.store.rows(
        f"SELECT status FROM orders WHERE client_order_id IN ({marks})", tuple(o["client_order_id"] for o in rows)))


def fill_rule(o: dict, price: float) -> str:
    """The rule of a fill of our order row ``o``: its own, but a bracket's at or over its take-profit
    limit is the take-profit's (under it, the stop triggered)."""
    if o.get("type") == BRACKET and o.get("limit_price") is not None and price >= float(o["limit_price"]) * (1 - 1e-9):
        return _RULE_OF[TAKE]
    return o.get("rule") or ""


def _down(price: float, inc: float) -> float:
    from engine.live.exchange_broker import limit_for_exchange
    return limit_for_exchange(price, inc, "buy")  # on the grid, rounded down


def _up(price: float, inc: float) -> float:
    from engine.live.exchange_broker import limit_for_exchange
    return limit_for_exchange(price, inc, "sell")  # on the grid, rounded up (a sell never under its level)


def _run_id(ctx: BrokerContext) -> str:
    return (ctx.store.get("meta", "session") or {})["run_id"]
