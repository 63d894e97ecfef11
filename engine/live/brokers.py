"""The three brokers. They differ only in what "acting on a decision" means.

- DryRunBroker: places nothing; its virtual portfolio fills each decision at the next bar's
  open with the backtest's own SimBroker, so a backtest over the same bars decides the same.
- PaperBroker: fills each order at once on the live bid/ask with the backtest's fee and
  slippage models, in a simulated account that lives in the state file.
- LiveBroker: real orders through the ExchangeAdapter (client order id recorded first);
  fills are adopted from the exchange's fill list, so a restart never counts one twice.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np

from engine.sim.fills import SimBroker
from engine.exchange.errors import ExchangeCallError
from engine.exchange.types import OrderRequest
from engine.live import pstate
from engine.live.safeguards import kill_switch_on
from engine.live.store import now_ms

log = logging.getLogger("rulebook.live")

_STATUS = {"open": "open", "closed": "filled", "canceled": "canceled", "rejected": "rejected", "unknown": "sent"}


def insert_fill(s, db, fill_id: str, cid: str | None, eid: str | None, t: int, j: int, side: str, qty: float,
                price: float, fee: float, slippage: float, time_ms: int, rule: str) -> None:
    """Insert one fill row (the portfolio is the caller's business)."""
    db.execute("INSERT INTO fills(fill_id, client_order_id, exchange_order_id, t, symbol, side, qty, price, fee, "
               "slippage, time_ms, rule) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               (fill_id, cid, eid, t, s.symbols[j], side, qty, price, fee, slippage, time_ms, rule))


def record_fill(s, db, fill_id: str, cid: str | None, eid: str | None, t: int, j: int, side: str, qty: float,
                price: float, fee: float, slippage: float, time_ms: int, rule: str) -> None:
    """Insert a fill and apply it to the portfolio, positions and cash (inside the caller's txn)."""
    insert_fill(s, db, fill_id, cid, eid, t, j, side, qty, price, fee, slippage, time_ms, rule)
    # a decision at bar t fills in bar t+1, as in the backtest (position.bars_held counts from there)
    pstate.apply_fill(s.pf, j, side, qty, price, fee, t + 1, rule, float(s.size_increment[j]))


class DryRunBroker:
    def finish(self, s) -> None:
        pass

    places_orders = False

    def reconcile(self, s) -> None:
        pass

    def before_decide(self, s, market, t: int, db) -> None:
        """Fill the previous decision at its next bar's open, exactly as the backtest does."""
        pend = s.pending
        if not pend or pend["t"] >= t:
            return
        row = pend["t"] + 1
        sim = SimBroker(market, s.fees, s.slippage, s.size_increment, s.max_participation,
                        np.random.default_rng(s.seed + row))
        d = SimpleNamespace(sell_qty=np.array(pend["sell"]), buy_qty=np.array(pend["buy"]),
                            exit_rule=pend["exit_rule"], entry_rule=pend["entry_rule"])
        for f in sim.execute(d, row, s.pf):  # updates s.pf and the shared fee schedule
            insert_fill(s, db, f"dry-{row}-{f.symbol_idx}-{f.side}", None, None, row, f.symbol_idx, f.side,
                        f.qty, f.price, f.fee, f.slippage, int(market.times[row]), f.rule)
        s.pending = None

    def send(self, s, t: int, orders: list[dict], decision, quotes) -> None:
        if decision.has_orders:
            s.pending = {"t": t, "sell": decision.sell_qty.tolist(), "buy": decision.buy_qty.tolist(),
                         "exit_rule": list(decision.exit_rule), "entry_rule": list(decision.entry_rule)}

    def cancel_all(self, s) -> int:
        return 0


class PaperBroker:
    def finish(self, s) -> None:
        pass

    places_orders = True

    def reconcile(self, s) -> None:
        for o in s.store.open_orders():  # recorded but never simulated: the process died in between
            if s.order_is_fresh(o) and not _entry_halted(s, o):
                s.alert("warning", "resend", f"paper order {o['client_order_id']} was recorded but not filled "
                        "before a restart; filling it now", o["t"])
                s.bar_volume_usd = _bar_volume_usd(s, int(o["t"]))  # its bar's market impact, as in its cycle
                self._fill(s, o, s.quotes or s.fetch_quotes())
            else:
                with s.store.txn() as db:
                    s.store.update_order(db, o["client_order_id"], status="abandoned",
                                        reason="kill switch on" if _entry_halted(s, o) else "stale after restart")

    def before_decide(self, s, market, t: int, db) -> None:
        pass

    def send(self, s, t: int, orders: list[dict], decision, quotes) -> None:
        sells = [o for o in orders if o["side"] != "buy"]
        buys = [o for o in orders if o["side"] == "buy"]
        # one fee tier per side (docs/backtest.md, Fees): sells pay the tier reached before the cycle,
        # buys the tier reached after its sells
        rate = s.fees.tier(s.clock.now_ms()).taker_bps / 1e4
        for o in sells:  # sells first, as in the backtest
            self._fill(s, o, quotes, rate=rate)
        # the buys' cost above the cash: all scaled down together (docs/backtest.md, rule 7)
        rate = s.fees.tier(s.clock.now_ms()).taker_bps / 1e4
        total = sum(float(o["qty"]) * self._price(s, o, quotes) * (1.0 + rate) for o in buys
                    if self._price(s, o, quotes) > 0)
        scale = max(s.pf.cash, 0.0) / total if total > s.pf.cash else 1.0
        for o in buys:
            self._fill(s, o, quotes, scale, rate)

    def _price(self, s, o: dict, q) -> float:
        """The fill price of order ``o`` at mid plus the backtest's slippage (0 without a quote)."""
        j = s.index[o["symbol"]]
        mid, qty = q.mid[j], float(o["qty"])
        if not mid > 0:
            return 0.0
        bar_usd = np.array([s.bar_volume_usd[j]])
        rng = np.random.default_rng([s.seed, int(o["t"]), j])  # backtest.slippage.noise_bps, seeded per order
        slip = float(s.slippage.bps(np.array([q.spread_bps[j]]), np.array([qty * mid]), bar_usd, rng)[0])
        return mid * (1.0 + slip / 1e4) if o["side"] == "buy" else mid * (1.0 - slip / 1e4)

    def _fill(self, s, o: dict, q, scale: float = 1.0, rate: float | None = None) -> None:
        j = s.index[o["symbol"]]
        cid, side, qty = o["client_order_id"], o["side"], float(o["qty"])
        mid = q.mid[j]
        if not mid > 0:
            with s.store.txn() as db:
                s.store.update_order(db, cid, status="rejected", reason="no quote")
            return
        px = self._price(s, o, q)  # priced at the decided quantity; scaling keeps the price (backtest)
        when = s.clock.now_ms()
        if rate is None:
            rate = s.fees.tier(when).taker_bps / 1e4
        inc = float(s.size_increment[j])
        if scale < 1.0:
            qty = float(np.floor(qty * scale / inc + 1e-9) * inc)
        if side == "buy":
            cost = qty * px * (1.0 + rate)
            if cost > s.pf.cash:  # scaled down to the cash the account has, like the backtest
                qty = float(np.floor(qty * max(s.pf.cash, 0.0) / cost / inc + 1e-9) * inc)
        else:
            qty = min(qty, float(s.pf.qty[j]))
        if qty <= 0:
            with s.store.txn() as db:
                s.store.update_order(db, cid, status="rejected", reason="insufficient cash" if side == "buy" else "nothing held")
            return
        fee = qty * px * rate
        with s.store.txn() as db:
            record_fill(s, db, "paper-" + cid, cid, None, int(o["t"]), j, side, qty, px, fee,
                        qty * abs(px - mid), when, o["rule"] or "")
            s.store.update_order(db, cid, status="filled", filled=qty, avg_price=px, fee=fee)
            s.save_portfolio(db)
        s.fees.record(when, qty * px)

    def cancel_all(self, s) -> int:
        return 0


class LiveBroker:
    places_orders = True

    def __init__(self, adapter):
        self.adapter = adapter

    def reconcile(self, s) -> None:
        """Settle every order whose fate we did not record, then adopt the fills we missed."""
        for o in s.store.open_orders():
            cid = o["client_order_id"]
            st = self.adapter.fetch_order_by_client_id(cid, o["symbol"], _recorded_ms(o))
            if st is None:
                if o["status"] == "new" and s.order_is_fresh(o) and not _entry_halted(s, o):
                    s.alert("warning", "resend", f"order {cid} was recorded but never reached the exchange; "
                            "sending it now (same client order id)", o["t"])
                    self._send_one(s, o)
                else:
                    with s.store.txn() as db:
                        s.store.update_order(db, cid, status="abandoned",
                                            reason="kill switch on" if _entry_halted(s, o) and o["status"] == "new"
                                            else "not at the exchange after restart")
                continue
            with s.store.txn() as db:
                self._update(s, db, cid, st)
            if st.status == "open" and s.settings.open_orders_on_start == "cancel":
                self._cancel(s, cid)
        self.sync_fills(s)

    def before_decide(self, s, market, t: int, db) -> None:
        pass

    def refresh_open(self, s) -> None:
        """Ask the exchange about every order still open/sent in the state file (a late fill closes it)."""
        for o in s.store.open_orders():
            if o["status"] not in ("open", "sent"):
                continue
            try:
                st = self.adapter.fetch_order_by_client_id(o["client_order_id"], o["symbol"], _recorded_ms(o))
            except ExchangeCallError as e:  # stays open: its cash/quantity stays committed
                s.alert("warning", "order_unknown", f"order {o['client_order_id']}: {e}", s.last_t)
                continue
            if st is not None:
                with s.store.txn() as db:
                    self._update(s, db, o["client_order_id"], st)
            elif o["status"] == "sent" and _unknown_for_ms(o) > self.adapter.config.orders.recovery_lookback_s * 1000:
                # create's answer was lost and the exchange has not listed it for the whole recovery window:
                # it never got there. Settled as reconcile does, so its symbol and cash are free again
                # (a fill of it turning up later is still adopted as ours: see _resolve_unknown)
                with s.store.txn() as db:
                    s.store.update_order(db, o["client_order_id"], status="abandoned",
                                         reason="not at the exchange within exchange.orders.recovery_lookback_s")
                s.alert("warning", "order_abandoned", f"order {o['client_order_id']} was never listed by the exchange "
                        "within the recovery window; abandoned", s.last_t)

    def net_of_open(self, s, d, close: np.ndarray) -> list[tuple[str, str, str]]:
        """Orders still open hold what they will spend: an open buy's quantity is not bought again and
        its cost (at the ask, with the taker fee) is not spent again; an open sell's quantity is not sold
        again (nor topped up). Buys that cost more than the cash left are scaled down together, as in the backtest."""
        n = len(s.symbols)
        buy, sell = np.zeros(n), np.zeros(n)
        for o in s.store.open_orders():
            left = max(float(o["qty"]) - float(o["filled"] or 0.0), 0.0)
            (buy if o["side"] == "buy" else sell)[s.index[o["symbol"]]] += left
        q = s.quotes
        px = np.where(q.ask > 0, q.ask, close) if q is not None else close
        px = np.nan_to_num(px)
        rate = s.fees.tier(s.clock.now_ms()).taker_bps / 1e4
        inc = s.size_increment
        d.sell_qty[:] = np.minimum(d.sell_qty, np.maximum(s.pf.qty - sell, 0.0))
        want = np.where(buy > 0, 0.0, d.buy_qty)  # being entered already: as if held (no top-up either)
        free = s.pf.cash - float((buy * px * (1.0 + rate)).sum())
        cost = float((want * px * (1.0 + rate)).sum())
        if cost > free:
            want = np.floor(want * max(free, 0.0) / cost / inc + 1e-9) * inc
        notes = []
        if (want < d.buy_qty - 1e-12).any() and (buy.any() or sell.any()):
            notes.append(("info", "open_orders", f"buys reduced by {int((buy > 0).sum())} open buy order(s) "
                          f"holding {s.pf.cash - free:.2f} of {s.pf.cash:.2f} cash"))
        d.buy_qty[:] = want
        return notes

    def send(self, s, t: int, orders: list[dict], decision, quotes) -> None:
        for o in orders:
            self._send_one(s, o)
        self.sync_fills(s)

    def _send_one(self, s, o: dict) -> None:
        cid = o["client_order_id"]
        try:
            st = self.adapter.create_order(OrderRequest(cid, o["symbol"], o["side"], "market", float(o["qty"])))
        except ExchangeCallError as e:  # fate unknown: reconcile() settles it by client order id
            with s.store.txn() as db:
                s.store.update_order(db, cid, status="sent", reason=str(e)[:300])
            s.alert("warning", "order_unknown", f"order {cid}: {e}", o["t"])
            return
        with s.store.txn() as db:
            self._update(s, db, cid, st)
        if st.status == "rejected":
            s.alert("warning", "order_rejected", f"order {cid} {o['side']} {o['qty']} {o['symbol']}: {st.reject_reason}", o["t"])

    def _update(self, s, db, cid: str, st) -> None:
        s.store.update_order(db, cid, status=_STATUS.get(st.status, "sent"), exchange_order_id=st.exchange_order_id,
                             avg_price=st.average_price, reason=st.reject_reason)

    def _cancel(self, s, cid: str) -> None:
        try:
            st = self.adapter.cancel_order(cid)
        except ExchangeCallError as e:
            s.alert("warning", "cancel_failed", f"cancel {cid}: {e}", None)
            return
        with s.store.txn() as db:
            self._update(s, db, cid, st)

    def cancel_all(self, s) -> int:
        n = 0
        for o in s.store.open_orders():
            if o["status"] in ("open", "sent"):
                self._cancel(s, o["client_order_id"])
                n += 1
        return n

    def sync_fills(self, s) -> int:
        """Adopt every exchange fill not yet in the state file (by trade id: never twice)."""
        # never synced yet: from the account's creation (a fill made before a crash and a late restart counts)
        created = (s.store.get("meta", "session") or {}).get("created_wall_ms", s.started_wall_ms)
        since = int(s.store.get("state", "fills_since", created - 60_000))
        fills = self.adapter.fills(since)
        have = {r["fill_id"] for r in s.store.rows("SELECT fill_id FROM fills")}
        new = [f for f in fills if f.trade_id not in have and f.symbol in s.index]
        if not new:
            return 0
        by_eid = {r["exchange_order_id"]: r for r in s.store.rows(
            "SELECT client_order_id, exchange_order_id, t, rule FROM orders WHERE exchange_order_id IS NOT NULL")}
        if any(f.exchange_order_id not in by_eid for f in new):
            self._resolve_unknown(s, abandoned=True)  # a create whose answer was lost: learn its exchange id first
            by_eid = {r["exchange_order_id"]: r for r in s.store.rows(
                "SELECT client_order_id, exchange_order_id, t, rule FROM orders WHERE exchange_order_id IS NOT NULL")}
        with s.store.txn() as db:
            for f in new:
                o = by_eid.get(f.exchange_order_id)
                if o is None:
                    s.store.alert(db, "error", "foreign_fill", f"fill {f.trade_id} of order {f.exchange_order_id} "
                                  "is not one of ours; adopted so positions match the exchange", s.last_t)
                cid, t, rule = (o["client_order_id"], o["t"], o["rule"]) if o else (None, s.last_t or 0, "foreign")
                record_fill(s, db, f.trade_id, cid, f.exchange_order_id, int(t), s.index[f.symbol], f.side, f.qty,
                            f.price, f.fee, 0.0, f.time_ms, rule or "")
                if cid:
                    db.execute("UPDATE orders SET filled = filled + ?, fee = fee + ? WHERE client_order_id=?",
                               (f.qty, f.fee, cid))
            s.put_state(db, "fills_since", max(since, max(f.time_ms for f in new) - 60_000))
            s.save_portfolio(db)
        return len(new)

    def finish(self, s) -> None:
        """At session end: settle orders whose answer was lost and adopt the last fills."""
        try:
            self._resolve_unknown(s)
            self.sync_fills(s)
        except ExchangeCallError as e:  # the next start's reconcile settles them
            s.alert("warning", "settle_failed", f"end-of-session settle: {e}", s.last_t)

    def _resolve_unknown(self, s, abandoned: bool = False) -> None:
        """Learn the exchange id of orders whose create answer was lost (``abandoned``: also of orders
        abandoned as never seen, when a fill of an unknown order turned up)."""
        statuses = "'sent','new','open'" + (",'abandoned'" if abandoned else "")
        for o in s.store.rows(f"SELECT * FROM orders WHERE exchange_order_id IS NULL AND status IN ({statuses})"):
            st = self.adapter.fetch_order_by_client_id(o["client_order_id"], o["symbol"], _recorded_ms(o))
            if st is not None:
                with s.store.txn() as db:
                    self._update(s, db, o["client_order_id"], st)


def _bar_volume_usd(s, t: int) -> np.ndarray:
    """Bar t's quote volume per symbol (volume x close, as prepare's ``volume_usd``; 0 where missing)."""
    row = s.store.db.execute("SELECT data FROM bars WHERE t=?", (t,)).fetchone()
    if row is None:
        return np.zeros(len(s.symbols))
    data = np.frombuffer(row[0], dtype=np.float64).reshape(6, len(s.symbols))
    return np.nan_to_num(data[4] * data[3])


def _entry_halted(s, o: dict) -> bool:
    """A buy recorded before a restart must not go out while the kill switch halts entries."""
    return o["side"] == "buy" and (s.kill_signal or kill_switch_on(s.settings, s.store))


def _unknown_for_ms(o: dict) -> int:
    """How long an order has been in its current status (since it was marked, e.g. 'sent')."""
    since = o.get("updated_wall_ms") or o.get("created_wall_ms")
    return 0 if since is None else now_ms() - int(since)


def _recorded_ms(o: dict) -> int | None:
    """The earliest an order can exist at the exchange: when we recorded it (a minute of clock skew)."""
    return None if o.get("created_wall_ms") is None else int(o["created_wall_ms"]) - 60_000


def make_broker(mode: str, adapter):
    if mode == "dry_run":
        return DryRunBroker()
    if mode == "paper":
        return PaperBroker()
    return LiveBroker(adapter)
