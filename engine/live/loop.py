"""The live loop: at each bar close on the mode's clock, refresh data, run the cycle at the
newest bar, act through the mode's broker (engine/live/port.py), record every step in SQLite.

The loop holds no branch on the mode: what differs (the broker, and a few declared facts) comes
from the session plan engine/modes chose once (engine/live/plan.py).

One session = start (create or reopen the account's state file) -> reconcile with the
exchange -> cycles until the cycle limit or end time -> session record. Every step that
changes state is one transaction, and every order row is committed before it is sent, so
a process killed at any point restarts without losing or repeating an order.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np

from engine.cycle.decide import HaltState, Quotes, decide
from engine.cycle.locks import after_fills
from engine.cycle.plan import cycle_plan
from engine.cycle.state import apply_change
from engine.cycle.portfolio import Portfolio
from engine.cycle.prepare import prepare
from engine.exchange.ids import make_client_order_id
from engine.live import controls, feed, pstate
from engine.sim.fills import ParticipationCuts
from engine.sim.protect import Levels
from engine.live.errors import LiveError
from engine.live.notify.dispatcher import Dispatcher
from engine.live.plan import SessionPlan
from engine.live.port import Book, BrokerContext, OrderTicket
from engine.live.reload import RuleReloader
from engine.live.safeguards import PaperNeed, burn_in_scale, check_live_gate, guard_decision, kill_switch_on
from engine.live.settings import LiveSettings
from engine.live.store import StateStore, now_ms
from engine.market import products
from engine.trace import cycle_record
from engine.market.data import iso_utc, timeframe_ms
from engine.sim.settings import SimSettings

log = logging.getLogger("rulebook.live")
alert_log = logging.getLogger("rulebook.live.alerts")
DAY_MS = 86_400_000
BEAT_MS = 10_000  # while waiting for the next bar the loop still beats this often (wall ms)


class Session:
    def __init__(self, plan: SessionPlan, cfg: Mapping[str, Any], settings: LiveSettings, adapter, clock,
                 timeframe: str, load_rules, store: StateStore | None = None):
        self.plan, self.mode = plan, plan.name
        self.cfg, self.settings, self.adapter, self.clock = cfg, settings, adapter, clock
        self.timeframe, self.tf_ms = timeframe, timeframe_ms(timeframe)
        self.store = store or StateStore(settings.state_path(self.mode))
        self.reloader = RuleReloader(cfg, load_rules)
        self.facts = products.load_for(cfg)  # the product table every mode reads
        self.exchange_name = str((cfg.get("exchange") or {}).get("name") or "")  # recorded per session (burn-in)
        self.broker = plan.broker(adapter)
        # the backtest's cost model (engine/sim), so paper and dry_run fill exactly as a backtest would
        self.costs = SimSettings.from_run_config(cfg)
        self.initial_cash = float(settings.initial_cash if settings.initial_cash is not None
                                  else self.costs.initial_cash)
        self.book = Book(Portfolio.empty(0, self.initial_cash), HaltState(), self.costs.fee_schedule())
        self.stop_requested = False
        self.kill_signal = False
        self.quotes = None
        self.last_t: int | None = None
        self.started_wall_ms = now_ms()
        self.kill_active = False
        self.ctx: BrokerContext | None = None
        self.session_id: int | None = None
        self.last_beat_wall_ms = 0
        settings.notify.check_env()  # every channel's URL/token variable is set (values never shown)

    @property
    def pf(self) -> Portfolio:
        return self.book.pf

    @property
    def halts(self) -> HaltState:
        return self.book.halts

    # -- small helpers ------------------------------------------------------------------------
    def alert(self, level: str, kind: str, message: str, t: int | None, data: dict | None = None) -> None:
        """An alert is a structured log record and a row in the state file."""
        rec = {"level": level, "kind": kind, "message": message, "mode": self.mode, "account": self.settings.account,
               "t": t, **(data or {})}
        alert_log.log(logging.ERROR if level == "error" else logging.WARNING, json.dumps(rec, sort_keys=True, default=str),
                      extra={"alert": rec})
        self.store.alert(None, level, kind, message, t, data)

    def put_state(self, db, key: str, value: Any) -> None:
        self.store.put("state", key, value, db)

    def save_portfolio(self, db) -> None:
        pf = self.pf
        self.put_state(db, "portfolio", pstate.dump(pf, self.halts))
        self.put_state(db, "pending", self.book.pending)
        lv = self.book.levels
        self.put_state(db, "protect", {"t": self.book.protect_t, "levels": lv.to_dict() if lv is not None else None})
        if self.book.cuts is not None:  # the session report's participation block (engine/live/report.py)
            self.put_state(db, "participation", dataclasses.asdict(self.book.cuts))
        db.execute("DELETE FROM positions")
        held = np.flatnonzero(pf.qty > 0)
        db.executemany("INSERT INTO positions(symbol, qty, entry_price, entry_t, entry_rule) VALUES (?,?,?,?,?)",
                       [(self.symbols[i], float(pf.qty[i]), float(pf.entry_price[i]),
                         int(pf.entry_bar[i]), pf.entry_rule[i]) for i in held])
        db.execute("INSERT OR REPLACE INTO cash(currency, amount) VALUES (?, ?)", (self.settings.quote_currency, pf.cash))

    def times_ms_of(self, t: int) -> int:
        row = self.store.db.execute("SELECT time_ms FROM bars WHERE t=?", (t,)).fetchone()
        return row[0] if row else 0

    def fetch_quotes(self):
        self.quotes = feed.quotes(self.adapter, self.symbols)
        return self.quotes

    # -- start --------------------------------------------------------------------------------
    def start(self) -> None:
        markets = self.adapter.markets()
        meta = self.store.get("meta", "session")
        if meta is None:
            self._create(markets)
            meta = self.store.get("meta", "session")
        if meta["timeframe"] != self.timeframe or meta["mode"] != self.mode:
            raise LiveError(f"state file {self.store.path} holds a {meta['mode']} account on {meta['timeframe']} bars; "
                            f"this run is {self.mode} on {self.timeframe}: use another live.account or live.state_dir")
        self.symbols = list(meta["symbols"])
        if self.settings.symbols and list(self.settings.symbols) != self.symbols:
            raise LiveError(f"live.symbols is [{', '.join(self.settings.symbols)}] but state file {self.store.path} "
                            f"trades [{', '.join(self.symbols)}]: use another live.account or live.state_dir "
                            "(or the account's own symbol list)")
        missing = [s for s in self.symbols if s not in markets]
        if missing:
            raise LiveError(f"state file {self.store.path} trades {', '.join(missing)}, which the exchange no longer lists")
        self.run_id = meta["run_id"]
        self.index = {s: j for j, s in enumerate(self.symbols)}
        applied = feed.symbol_infos(markets, self.symbols, self.facts)
        products.warn(log, applied, self.facts, f"{self.mode} account {self.settings.account}")
        self.info = applied.info
        self.store.put("state", "product_facts", {"table": self.facts.source, "sha256": self.facts.sha256,
                                                  "info": [dataclasses.asdict(i) for i in self.info]})
        self.size_increment = np.array([i.size_increment for i in self.info])
        self.book.pf, self.book.halts = pstate.load(self.store.get("state", "portfolio"))
        self.book.pending = self.store.get("state", "pending")
        self.book.protect = self.reloader.rules.strategy.protect
        prot = self.store.get("state", "protect") or {}
        self.book.protect_t = int(prot.get("t", -1))
        self.book.levels = (Levels.from_dict(prot["levels"], len(self.book.pf.qty)) if prot.get("levels") else None)
        cuts = self.store.get("state", "participation")
        self.book.cuts = ParticipationCuts(**cuts) if cuts else None
        for r in self.store.rows("SELECT time_ms, qty, price FROM fills ORDER BY time_ms, fill_id"):
            self.book.fees.record(int(r["time_ms"]), r["qty"] * r["price"])  # the fee tier's trailing volume
        last = self.store.rows("SELECT MAX(t) AS t FROM cycles")[0]["t"]
        self.last_t = None if last is None else int(last)
        self.cycles_total = self.store.db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0]  # burn-in milestones
        self.cycles_session = 0
        self.bar_volume_usd = np.zeros(len(self.symbols))
        self._resume_clock()
        self.ctx = BrokerContext(self.store, self.symbols, self.size_increment, self.costs, self.book, self.clock,
                                 self.tf_ms, self.settings, self.alert, self.save_portfolio,
                                 lambda: self.kill_signal or kill_switch_on(self.settings, self.store),
                                 lambda: self.quotes)
        self._record_rules("loaded", self.reloader.rules.file_hashes, None, self.last_t, only_new=True)
        b = self.settings.burn_in
        self.store.put("state", "burn_in", {"applies": self.plan.burn_in, "proves": self.plan.proves_burn_in,
                                            "cycles": b.cycles, "days": b.days, "min_paper_cycles": b.min_paper_cycles,
                                            "min_paper_hours": b.min_paper_hours})
        if self.plan.gated:
            self._check_live_gate()

    def _resume_clock(self) -> None:
        """A restarted account resumes at its newest stored bar: a simulated exchange started afresh
        (exchange=local_sim restarts at its first step) is moved there, instead of the session idling
        until the exchange's clock catches up with the account; a clock that cannot move is refused."""
        newest = self.store.last_bar_time()
        if newest is None:
            return
        due = int(newest) + self.tf_ms  # the newest stored bar has closed
        self.clock.resume_at(due)
        if self.clock.now_ms() < due:
            raise LiveError(f"the exchange's clock is at {iso_utc(self.clock.now_ms())}, before the close of the newest "
                            f"bar in {self.store.path} ({iso_utc(due)}): this is not the exchange the account ran on "
                            "(use another live.account or live.state_dir)")

    def _create(self, markets) -> None:
        s = self.settings
        if s.symbols:
            bad = [x for x in s.symbols if x not in markets]
            if bad:
                raise LiveError(f"live.symbols names {', '.join(bad)}, not listed by the exchange "
                                f"(it lists e.g. {', '.join(list(markets)[:4])})")
            symbols = list(s.symbols)
        else:
            symbols = [m for m, i in sorted(markets.items()) if i.quote == s.quote_currency and i.tradable][: s.max_symbols]
            if not symbols:
                raise LiveError(f"the exchange lists no tradable spot market quoted in {s.quote_currency} "
                                "(live.quote_currency)")
        self.symbols = symbols
        now = self.clock.now_ms()
        last_close = now // self.tf_ms * self.tf_ms
        since = last_close - s.history_bars * self.tf_ms
        times, ohlcv = feed.fetch_bars(self.adapter, symbols, self.timeframe, self.tf_ms, since, last_close)
        times, ohlcv = _trim_unserved(times, ohlcv)
        if len(times) < 2:
            raise LiveError(f"the exchange returned {len(times)} closed {self.timeframe} bars for {symbols[0]}..; "
                            "expected live.history_bars of history")
        q = feed.quotes(self.adapter, symbols)
        n = len(symbols)
        cash = self.broker.balances(s.quote_currency).cash  # live: the account's real cash
        cash = self.initial_cash if cash is None else cash
        self.book.pf, self.book.halts = Portfolio.empty(n, cash), HaltState()
        with self.store.txn() as db:
            feed.store_bars(self.store, db, times, ohlcv, q.spread_bps)
            self.store.put("meta", "session", {"symbols": symbols, "timeframe": self.timeframe, "mode": self.mode,
                                               "account": s.account, "run_id": f"{s.account}-{self.mode}-{now_ms()}",
                                               "initial_cash": cash, "created_wall_ms": now_ms(),
                                               # the exchange's own facts: a shadow replay applies the product table to them as a backtest does
                                               "info": [dataclasses.asdict(i) for i in feed.symbol_infos(
                                                   markets, symbols, products.ProductFacts.empty()).info]}, db)
            self.put_state(db, "portfolio", pstate.dump(self.pf, self.halts))
            self.put_state(db, "pending", None)
            db.execute("INSERT OR REPLACE INTO cash(currency, amount) VALUES (?, ?)", (s.quote_currency, cash))
        log.info("%s account %s created: %d symbols, %d bars of history", self.mode, s.account, n, len(times))

    def _check_live_gate(self) -> None:
        b = self.settings.burn_in
        check_live_gate(self.settings, PaperNeed(self.exchange_name, tuple(self.symbols), self.reloader.fingerprint,
                                                 b.min_paper_cycles, b.min_paper_hours))

    def _record_rules(self, status: str, hashes: dict, error: str | None, t: int | None, only_new: bool = False) -> None:
        with self.store.txn() as db:
            for f, h in sorted(hashes.items()):
                if only_new:
                    row = db.execute("SELECT sha256 FROM rule_versions WHERE file=? AND status='loaded' "
                                     "ORDER BY id DESC LIMIT 1", (f,)).fetchone()
                    if row and row[0] == h:
                        continue
                db.execute("INSERT INTO rule_versions(wall_ms, t, file, sha256, status, error) VALUES (?,?,?,?,?,?)",
                           (now_ms(), t, f, h, status, error))

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> dict:
        # alerts and fills reach people from a background thread reading the committed state
        notifier = Dispatcher.start_for(self.settings.notify, self.store.path)
        try:
            return self._run()
        finally:
            if notifier is not None:
                notifier.stop()

    def _run(self) -> dict:
        self.start()
        self.broker.reconcile(self.ctx)
        self.session_id = self.store.db.execute("INSERT INTO sessions(started_wall_ms, status, exchange) "
                                                "VALUES (?, 'running', ?)", (now_ms(), self.exchange_name)).lastrowid
        self.beat(None)
        done, end_ms = 0, self.settings.end_ms()
        # wake for a stop request, and for a kill switch turned on while waiting for the next bar
        # (and beat now and then, so a console tells a waiting loop from a dead one)
        stop = lambda: self._beat_if_due() or self.stop_requested or (not self.kill_active and self._kill_on())
        with _signals(self):
            while not self.stop_requested:
                if self.settings.max_cycles is not None and done >= self.settings.max_cycles:
                    break
                if end_ms is not None and self.clock.now_ms() >= end_ms:
                    break
                target = int(self.store.last_bar_time()) + 2 * self.tf_ms  # close of the next bar
                stored_undecided = self.last_t is not None and self.last_t < self.store.n_bars() - 1
                if not (stored_undecided and self.clock.now_ms() < target):
                    # (a restart after a bar was stored but not decided on, while it is still the newest,
                    # decides on it at once instead of a bar late)
                    self.clock.sleep_until(target, stop)
                    if self.stop_requested:
                        break
                    if self.clock.now_ms() < target:  # woken by the kill switch: act now, not at the next bar
                        self._apply_kill(self.last_t)
                        continue
                    if self._refresh() == 0:
                        time.sleep(min(0.05, self.tf_ms / 1000.0 / self.clock.speed / 10))
                        continue
                for t in self._rows_to_cycle():
                    self.cycle(t)
                    done += 1
                    if self.settings.max_cycles is not None and done >= self.settings.max_cycles:
                        break
        self.broker.finish(self.ctx)
        status = self._session_status(done)
        self.store.db.execute("UPDATE sessions SET ended_wall_ms=?, cycles=?, status=? WHERE id=?",
                              (now_ms(), done, status, self.session_id))
        self.beat(None, status="stopped")
        log.info("%s session ended after %d cycles (%s)", self.mode, done, status)
        return {"cycles": done, "status": status}

    # -- heartbeat ----------------------------------------------------------------------------
    def _heartbeat(self, status: str = "running", cycle: dict | None = None) -> dict:
        """What the console reads to tell a running session from one that died: when the loop last
        beat, when it will beat again at the latest, its clock (to extrapolate the bar it is due at)
        and the exchange's rate budgets as this process sees them."""
        wall = now_ms()
        interval = self.tf_ms / self.clock.speed
        hb = {"status": status, "wall_ms": wall, "pid": os.getpid(), "session": self.session_id,
              "clock_ms": self.clock.now_ms(), "speed": self.clock.speed, "tf_ms": self.tf_ms,
              "settle_ms": getattr(self.clock, "settle_ms", 0), "interval_wall_ms": interval,
              "due_wall_ms": wall + min(interval, BEAT_MS), "rate": _rate_use(self.adapter)}
        if cycle:
            hb.update(cycle)
        self.last_beat_wall_ms = wall
        return hb

    def beat(self, db, status: str = "running", cycle: dict | None = None) -> None:
        self.put_state(db, "heartbeat", self._heartbeat(status, cycle))

    def _beat_if_due(self) -> bool:
        if now_ms() - self.last_beat_wall_ms >= BEAT_MS:
            self.beat(None)
        return False

    def _session_status(self, done: int) -> str:
        errors = self.store.db.execute("SELECT COUNT(*) FROM alerts WHERE level='error' AND wall_ms >= ?",
                                       (self.started_wall_ms,)).fetchone()[0]
        if self.plan.proves_burn_in and done >= self.settings.burn_in.min_paper_cycles and errors == 0:
            return "passed"
        return "ended" if errors == 0 else "ended_with_errors"

    def _refresh(self) -> int:
        """Fetch the bars that closed since the last stored one (and quotes); returns how many."""
        last = int(self.store.last_bar_time())
        now = self.clock.now_ms()
        last_close = now // self.tf_ms * self.tf_ms
        times, ohlcv = feed.fetch_bars(self.adapter, self.symbols, self.timeframe, self.tf_ms, last + self.tf_ms, last_close)
        times, ohlcv = _trim_unserved(times, ohlcv)
        if not len(times):
            return 0
        q = self.fetch_quotes()
        with self.store.txn() as db:
            feed.store_bars(self.store, db, times, ohlcv, q.spread_bps)
        return len(times)

    def _rows_to_cycle(self) -> list[int]:
        n = self.store.n_bars()
        if self.last_t is None:
            return [n - 1]
        if self.plan.decides_every_bar and self.settings.shadow_catch_up:
            return list(range(self.last_t + 1, n))
        skipped = n - 1 - (self.last_t + 1)
        if skipped > 0:
            self.alert("warning", "bars_skipped", f"{skipped} bar(s) closed while the loop was busy or down; "
                       "deciding on the newest only", n - 1)
        return [n - 1]

    # -- one cycle ----------------------------------------------------------------------------
    def cycle(self, t: int) -> None:
        t0 = time.perf_counter()
        asked = controls.pending(self.store)  # operator actions since the last cycle (engine/live/controls.py)
        status, changed, err = self.reloader.check(force=any(a["action"] == "reload" for a in asked))
        if status == "loaded":
            self._record_rules("loaded", changed, None, t)
            self.alert("info", "rules_reloaded", f"rule files reloaded: {', '.join(sorted(changed))}", t, {"hashes": changed})
        elif status == "rejected":
            self._record_rules("rejected", changed, err, t)
            self.alert("error", "rules_rejected", f"rule edit rejected, previous rules keep running: {err}", t)
        market = feed.panel(self.store, self.timeframe, self.symbols, self.info, f"live:{self.mode}")
        p = prepare(market, self.reloader.rules)
        self.book.protect = self.reloader.rules.strategy.protect  # filled by the broker's settle, as in a backtest
        self.broker.settle(self.ctx, market, t)
        plan = cycle_plan(p)
        if plan.locks:
            self.book.halts = self._locks_after_fills(plan, p, t)  # what happened since the last cycle: fills, expiries
        close = p.close[t]
        spread = p.store.arrays["spread_bps"][t]
        self.bar_volume_usd = np.nan_to_num(p.store.arrays["volume_usd"][t])
        q = self.quotes or self.fetch_quotes()
        age = q.age_s(self.adapter.clock())
        kill = self._apply_kill(t)
        with self.store.txn() as db:
            eq = self.pf.mark(close, int(market.times[t] // DAY_MS))
            before = set(k for k, v in self.halts.until.items() if v > t)
            d, change = decide(plan, t, self.pf, Quotes(close, spread, age, self.bar_volume_usd), self.halts)
            self.book.halts = apply_change(self.pf, change)
            d, notes = self._guard(d, t, age, kill)  # a new decision: decide's own is kept as decided
            d, held = self.broker.available(self.ctx, d, close)
            notes += held
            orders = self._order_rows(d, t, int(market.times[t]), db) if self.broker.places_orders else []
            lag_ms = (self.clock.now_ms() - int(market.times[t]) - self.tf_ms) / self.clock.speed  # wall ms after close
            cycle_ms = (time.perf_counter() - t0) * 1000.0
            self._record_decision(db, d, t, int(market.times[t]), eq, cycle_ms, lag_ms)
            self.save_portfolio(db)
            controls.mark_applied(db, [a["id"] for a in asked])
            self.beat(db, cycle={"t": t, "bar_ms": int(market.times[t]), "cycle_ms": cycle_ms, "lag_ms": lag_ms})
        for h in sorted(set(d.halts) - before):
            self.alert("warning", "halt", f"risk halt {h} active: entries blocked", t)
        for level, kind, msg in notes:
            self.alert(level, kind, msg, t)
        self._burn_in_milestone(t)
        self.last_t = t
        self.broker.submit(self.ctx, t, orders, d)
        if orders:
            with self.store.txn() as db:
                db.execute("UPDATE cycles SET status='done' WHERE t=?", (t,))

    def _burn_in_milestone(self, t: int) -> None:
        """Alert once when live burn-in ends (full caps from now) or a paper session has run the cycles
        the burn-in gate asks of it."""
        b = self.settings.burn_in
        self.cycles_total += 1  # counted here, not in SQL: a COUNT over cycles grows with the account
        self.cycles_session += 1
        if self.plan.burn_in and b.cycles > 0 and self.cycles_total == b.cycles:
            self.alert("info", "burn_in", f"burn-in over after {b.cycles} cycles: entries at full size from now", t)
        if self.plan.proves_burn_in and self.cycles_session == b.min_paper_cycles:
            self.alert("info", "burn_in", f"paper session reached {b.min_paper_cycles} cycles "
                       "(live.burn_in.min_paper_cycles)", t)

    def _kill_on(self) -> bool:
        return kill_switch_on(self.settings, self.store) or self.kill_signal

    def _apply_kill(self, t: int | None) -> bool:
        """Kill switch: on its turning on, cancel open orders and alert once; entries stay halted while on."""
        kill = self._kill_on()
        if kill and not self.kill_active:
            n = self.broker.cancel_all(self.ctx)
            self.alert("error", "kill_switch", f"kill switch on: {n} open order(s) cancelled, entries halted", t)
        self.kill_active = kill
        return kill

    def _guard(self, d, t: int, age: np.ndarray, kill: bool):
        """Loop-level safeguards on top of the rules (stale quotes, kill switch, burn-in):
        (the guarded decision, alert notes)."""
        notes = []
        stale = (age > self.settings.max_quote_age_s) & ((d.buy_qty > 0) | (d.sell_qty > 0))
        if stale.any():
            names = ", ".join(self.symbols[i] for i in np.flatnonzero(stale))
            notes.append(("warning", "stale_quote", f"orders blocked on stale quotes (> {self.settings.max_quote_age_s}s): {names}"))
        burn, px = None, None
        if self.plan.burn_in and d.buy_qty.any():
            burn = burn_in_scale(self.settings.burn_in, self.store, self.times_ms_of(t))
            px = np.where(self.quotes.mid > 0, self.quotes.mid, np.nan) if self.quotes is not None else np.full(len(self.symbols), np.nan)
        # paused entries block buys as the kill switch does, without cancelling anything
        halt_entries = kill or controls.entries_paused(self.store)
        return guard_decision(d, stale, halt_entries, burn, px, self.size_increment), notes

    def _order_rows(self, d, t: int, bar_ms: int, db) -> list[OrderTicket]:
        """Record the cycle's orders (before any is sent): market, or limit at the decision's limit price."""
        rows = []
        limit = d.limit_price
        for side, qty, rules in (("sell", d.sell_qty, d.exit_rule), ("buy", d.buy_qty, d.entry_rule)):
            for i in np.flatnonzero(qty > 0):
                cid = make_client_order_id(self.run_id, bar_ms, self.symbols[i], side, 0)
                px = None if limit is None or not np.isfinite(limit[i]) else float(limit[i])
                o = OrderTicket(cid, t, self.symbols[i], side, float(qty[i]), "market" if px is None else "limit", px,
                                rules[i] or ("halt" if side == "sell" else ""))
                db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, limit_price, rule, status, "
                           "created_wall_ms, updated_wall_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           (cid, t, o.symbol, side, o.qty, o.type, px, o.rule, "new", now_ms(), now_ms()))
                rows.append(o)
        return rows

    def _locks_after_fills(self, plan, p, t: int):
        """The risk file's scoped locks after the fills of the bars since the last cycle, bar by
        bar as a backtest applies them (engine/cycle/locks.py); saved with the cycle's state."""
        since = -1 if self.last_t is None else self.last_t
        rows = self.store.rows("SELECT t, symbol, side, qty, price, rule FROM fills WHERE t > ? AND t <= ? "
                               "ORDER BY t, rowid", (since, t))
        halts = self.halts
        if not rows:
            return halts
        fills = [SimpleNamespace(t=int(r["t"]), symbol_idx=self.index[r["symbol"]], side=r["side"], qty=float(r["qty"]),
                                 price=float(r["price"]), rule=r["rule"] or "") for r in rows]
        qty = self.pf.qty.copy()  # the positions before these fills, then bar by bar after them
        for f in fills:
            qty[f.symbol_idx] -= f.qty if f.side == "buy" else -f.qty
        for bar in sorted({f.t for f in fills}):
            mine = [f for f in fills if f.t == bar]
            for f in mine:
                qty[f.symbol_idx] += f.qty if f.side == "buy" else -f.qty
            held = np.where(qty > self.size_increment * 1e-6, qty, 0.0)
            halts = after_fills(plan.locks, p.themes, halts, mine, held, bar)
        return halts

    def _record_decision(self, db, d, t: int, bar_ms: int, eq: float, cycle_ms: float, lag_ms: float) -> None:
        trace = cycle_record(d)
        db.executemany("INSERT INTO decisions(t, symbol, side, qty, rule) VALUES (?,?,?,?,?)",
                       [(t, self.symbols[i], "sell", float(d.sell_qty[i]), d.exit_rule[i]) for i in np.flatnonzero(d.sell_qty)]
                       + [(t, self.symbols[i], "buy", float(d.buy_qty[i]), d.entry_rule[i]) for i in np.flatnonzero(d.buy_qty)])
        exposure = (eq - self.pf.cash) / eq if eq > 0 else 0.0
        status = "decided" if self.broker.places_orders and d.has_orders else "done"
        db.execute("INSERT INTO cycles(t, time_ms, status, regime, equity, cash, exposure, halts, rules_hash, trace, "
                   "session, decided_wall_ms, cycle_ms, lag_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (t, bar_ms, status, d.regime, eq, self.pf.cash, exposure, json.dumps(d.halts),
                    self.reloader.fingerprint, json.dumps(trace, sort_keys=True), self.session_id, now_ms(),
                    cycle_ms, lag_ms))
        log.info("%s cycle %s: regime %s, equity %.2f, %d sell(s), %d buy(s)", self.mode, iso_utc(bar_ms + self.tf_ms),
                 d.regime, eq, int((d.sell_qty > 0).sum()), int((d.buy_qty > 0).sum()))


def _rate_use(adapter) -> dict:
    """Per rate pool: requests, cost and the peak share of its window's capacity used so far."""
    out = {}
    for pool, m in adapter.rate_metrics().items():
        cap = (m.get("extra") or {}).get("capacity_per_window") or 0.0
        out[pool] = {"requests": m["requests"], "cost": m["cost"], "pauses": m["pauses"],
                     "peak_use": (m["extra"]["peak_used"] / cap) if cap else 0.0}
    return out


def _trim_unserved(times: np.ndarray, ohlcv: np.ndarray):
    """Drop trailing bars no symbol has yet (not served yet): they are fetched next cycle, not stored as gaps."""
    have = ~np.isnan(ohlcv[:, 3, :]).all(axis=1)
    if not have.any():
        return times[:0], ohlcv[:0]
    last = int(np.flatnonzero(have)[-1]) + 1
    return times[:last], ohlcv[:last]


class _signals:
    """SIGTERM/SIGINT: stop after the current cycle; SIGUSR1: kill switch (main thread only)."""

    def __init__(self, s: Session):
        self.s = s
        self.old: dict = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        def stop(*_):
            self.s.stop_requested = True
        def kill(*_):
            self.s.kill_signal = True
        for sig, fn in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (getattr(signal, "SIGUSR1", None), kill)):
            if sig is not None:
                self.old[sig] = signal.signal(sig, fn)
        return self

    def __exit__(self, *exc):
        for sig, fn in self.old.items():
            signal.signal(sig, fn)
