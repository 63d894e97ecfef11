"""Factories for the live-mode tests: configs, an exchange emulator (Coinbase, Kraken or Binance
front end) in its own process, and the live loop as a subprocess (so SIGKILL of the loop never
kills the exchange).

    python -m tests.helpers.live serve SPEED PRODUCTS CASH [EXCHANGE]   (prints its address line, then serves
                                                   dump PATH / freeze / fault KIND k=v.. / quit from stdin)
    python -m tests.helpers.live loop CFG_JSON MODE [EXCHANGE [DIE_AT]]
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine.paths import PROJECT_ROOT
from tests.helpers.runs import compose_config
from tests.helpers.wait import LineReader, wait_until

# conf/config.yaml may not list the live group yet: append it only then
LIVE_GROUP = [] if "- live:" in (PROJECT_ROOT / "conf" / "config.yaml").read_text() else ["+live=default"]

# sma_cross with short windows on the emulator's 1m bars: it trades every few minutes
ACTIVE = ["strategy.params.fast=2", "strategy.params.slow=5", "universe.params.min_history_bars=10",
          "live.history_bars=60", "execution.params.quote_max_age_s=30"]


def active_rules_dir(where: Path) -> Path:
    """The project's rule files with a 5-minute universe cache (24h never rebuilds on 1m bars)."""
    d = Path(where) / "rules"
    if not d.exists():
        shutil.copytree(PROJECT_ROOT / "rules", d)
        u = d / "universe.yaml"
        text = u.read_text()
        assert "ttl: 24h" in text
        u.write_text(text.replace("ttl: 24h", "ttl: 5m"))
    return d


def with_protect(where: Path, block: str) -> Path:
    """The active rules (``active_rules_dir(where)``) with ``block`` (a ``protect:`` block) appended
    to the test strategy; returns the rules dir."""
    d = active_rules_dir(where)
    path = d / "strategies" / "sma_cross.yaml"
    if block not in path.read_text():
        path.write_text(path.read_text() + block)
    return d


def live_overrides(mode: str, state_dir: Path, *extra: str, cycles: int = 5, speed: float | None = 120.0,
                   products: int = 3) -> list[str]:
    """Overrides for a bounded run against the in-process emulator (exchange=local_sim). ``speed``
    None: the emulator in step mode, moved bar by bar by the session (``live.clock=step``, no wall
    time between cycles, no rate limits), as the parity harness runs it."""
    rules = active_rules_dir(Path(state_dir).parent)
    clock = (["exchange.emulator.speed=null", "live.clock=step", "exchange.emulator.enforce_rate_limits=false",
              "exchange.rate_limits.pools.public.limit_per_s=1000", "exchange.rate_limits.pools.private.limit_per_s=1000"]
             if speed is None else [f"exchange.emulator.speed={speed}"])
    return [f"mode={mode}", "exchange=local_sim", *LIVE_GROUP, f"live.state_dir={state_dir}", f"rules_dir={rules}",
            f"live.max_cycles={cycles}", *clock, f"exchange.emulator.products={products}",
            "live.burn_in.min_paper_cycles=3", "live.burn_in.min_paper_hours=0", *ACTIVE, *extra]


def live_config(mode: str, state_dir: Path, *extra: str, **kw) -> dict:
    return compose_config(live_overrides(mode, state_dir, *extra, **kw))


def run_mode(mode: str, state_dir: Path, out_dir: Path, *extra: str, **kw) -> dict:
    from engine.modes import live
    ov = live_overrides(mode, state_dir, *extra, **kw)
    cfg = compose_config(ov)
    return live.run(cfg, out_dir, ov, cfg)


# -- a broker's context without a session ---------------------------------------------------------
ZERO_FEES = {"tiers": [{"min_volume_usd": 0, "maker_bps": 0, "taker_bps": 0}]}


def broker_context(store, symbols: list[str], cash: float = 10_000.0, costs=None, fees=None, now_ms: int = 0,
                   settings=None, quotes=None, halted: bool = False):
    """A BrokerContext over ``store`` for ``symbols`` (increment 1e-8), zero fees unless ``fees``
    (a FeeSchedule) or ``costs`` (SimSettings) say otherwise; alerts are collected in ``ctx.alerts``."""
    from types import SimpleNamespace

    import numpy as np

    from engine.cycle.decide import HaltState
    from engine.cycle.portfolio import Portfolio
    from engine.live.port import Book, BrokerContext
    from engine.live.settings import LiveSettings
    from engine.sim.costs import FeeSchedule
    from engine.sim.settings import SimSettings

    costs = costs or SimSettings(fee_tiers=tuple(ZERO_FEES["tiers"]))
    book = Book(Portfolio.empty(len(symbols), cash), HaltState(), fees or costs.fee_schedule())
    alerts: list = []
    ctx = BrokerContext(store, list(symbols), np.full(len(symbols), 1e-8), costs, book,
                        SimpleNamespace(now_ms=lambda: now_ms), 60_000, settings or LiveSettings(),
                        lambda *a, **k: alerts.append(a), lambda db: None, lambda: halted, lambda: quotes)
    ctx.alerts = alerts
    return ctx


def held_with_levels(store, adapter, symbol: str, qty: float, entry: float, stop: float | None = None,
                     take: float | None = None, trail: float | None = None):
    """A live broker's protections over one held position of ``symbol`` (``qty`` bought at ``entry``)
    with the book's levels as its entry fixed them (``stop``, ``take``: prices; ``trail``: a fraction
    under the high, the entry's): (ctx, ExchangeBroker on ``adapter``, the quotes the ctx reads, whose
    ``bid`` a test sets)."""
    from types import SimpleNamespace

    import numpy as np

    from engine.live.exchange_broker import ExchangeBroker
    from engine.live.pstate import apply_fill
    from engine.live.store import now_ms
    from engine.sim.protect import Levels

    store.put("meta", "session", {"created_wall_ms": now_ms(), "run_id": "held-run"})
    quotes = SimpleNamespace(bid=np.array([np.nan]))
    ctx = broker_context(store, [symbol], cash=100_000.0, quotes=quotes)
    apply_fill(ctx.book.pf, 0, "buy", qty, entry, 0.0, 1, "entry", 1e-8)
    lv = Levels.empty(1)
    lv.high[0], lv.stop[0], lv.take[0], lv.trail_frac[0] = entry, *(np.nan if x is None else x for x in (stop, take, trail))
    ctx.book.levels = lv
    return ctx, ExchangeBroker(adapter), quotes


# -- an emulator in another process --------------------------------------------------------------
# the shipped profile that drives each exchange's emulator front end through its real ccxt class
SIM_PROFILE = {"coinbase": "local_sim", "kraken": "kraken_sim", "binance": "binance_sim"}
# where the loop subprocess SIGKILLs itself (``start_loop(..., die_at=...)``): after the cycle recorded
# its orders and before the first is sent; or once the exchange has answered the first create
DIE_AT = ("before_send", "after_send")
# the same around the first protective stop a live session sends (tests/test_live_protect_exchange.py)
STOP_DIE_AT = ("before_stop_send", "after_stop_send")
# around the first take-profit a live session sends (an OCO order list on Binance, a bracket on
# Coinbase, a take-profit-limit on Kraken: tests/test_live_take_profit_exchange.py)
TAKE_DIE_AT = ("before_take_profit_send", "after_take_profit_send")


class EmulatorProcess:
    """``python -m tests.helpers.live serve``: an emulator (``exchange``'s front end) with only quote
    cash (so the account's base balances are exactly the positions the loop traded)."""

    def __init__(self, tmp: Path, speed: float = 120.0, products: int = 3, cash: float = 10_000.0,
                 exchange: str = "coinbase"):
        self.exchange = exchange
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.live", "serve",
                                      str(speed), str(products), str(cash), exchange], cwd=PROJECT_ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.lines = LineReader(self.proc.stdout, "the emulator process")
        try:  # it writes one JSON line once it listens
            self.info = json.loads(self.lines.next(60, "its address line"))
        except BaseException:
            self.close()
            raise

    def dump(self, path: Path) -> dict:
        """The emulator's orders and balances, written to ``path`` (it answers ``dumped`` when done)."""
        self.proc.stdin.write(f"dump {path}\n")
        self.proc.stdin.flush()
        if self.lines.next(30, "the reply to dump") != "dumped":
            raise AssertionError("the emulator process answered dump with another line")
        return json.loads(path.read_text())

    def freeze(self) -> None:
        """Stop the emulator's market at its current step (no more triggers or fills): after the loop
        has ended, so that a dump and the venue's own listing see the same orders."""
        self.proc.stdin.write("freeze\n")
        self.proc.stdin.flush()
        if self.lines.next(30, "the reply to freeze") != "frozen":
            raise AssertionError("the emulator process answered freeze with another line")

    def fault(self, kind: str, **params: float) -> None:
        """Queue one emulator fault in the process (``faults.add(kind, **params)``, e.g. ``gap``), before
        the loop runs (it answers ``queued``)."""
        args = " ".join(f"{k}={v}" for k, v in params.items())
        self.proc.stdin.write(f"fault {kind} {args}\n")
        self.proc.stdin.flush()
        if self.lines.next(30, "the reply to fault") != "queued":
            raise AssertionError("the emulator process answered fault with another line")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def overrides(self, mode: str, state_dir: Path, cycles: int) -> list[str]:
        i = self.info
        profile = SIM_PROFILE[getattr(self, "exchange", "coinbase")]
        return [f"mode={mode}", f"exchange={profile}", *LIVE_GROUP, f"live.state_dir={state_dir}",
                f"live.max_cycles={cycles}", "exchange.emulator.autostart=false",
                f"rules_dir={active_rules_dir(Path(state_dir).parent)}", f"exchange.rest_url={i['url']}",
                "exchange.api_key_env=RB_TEST_KEY", "exchange.api_secret_env=RB_TEST_SECRET",
                f"live.sim_origin_ms={i['sim_ms']}", f"live.sim_origin_wall_s={i['wall_s']}",
                f"live.sim_speed={i['speed']}", "live.timeframe=1m", "live.burn_in.require_paper=false",
                "live.burn_in.cycles=0", *ACTIVE]

    def adapter(self, tmp: Path):
        """An ExchangeAdapter on this emulator through its exchange's real ccxt class, with the loop's
        profile and keys: what the venue itself reports (open orders, orders by client id)."""
        from engine.exchange import ExchangeAdapter, ExchangeConfig
        cfg = dict(compose_config(self.overrides("live", Path(tmp) / "state", cycles=1))["exchange"])
        cfg.pop("fees", None)  # the simulators' schedule, not the adapter's
        return ExchangeAdapter(ExchangeConfig.from_mapping(cfg), environ=self.env(self.exchange))

    @staticmethod
    def env(exchange: str = "coinbase") -> dict:
        """Throwaway keys in the shape ``exchange`` issues (ccxt's kraken decodes a base64 secret)."""
        from engine.exchange.keys import throwaway_credentials_for
        c = throwaway_credentials_for(exchange, seed=1)
        return {**os.environ, "RB_TEST_KEY": c.api_key, "RB_TEST_SECRET": c.secret}


# The emulator process does not enforce the venue's pools, but the loop keeps to its own budget:
# at Kraken's starter-tier figures (1 public call a second, private calls draining 0.33 a second)
# a cycle on 3 symbols takes ~10 s, and these sessions follow a 120x clock. Raised for these tests
# only (the pacing itself: tests/test_exchange_burst.py, test_exchange_rate_faults.py).
PACE = {"kraken": ["exchange.rate_limits.pools.public.limit_per_s=50", "exchange.rate_limits.pools.calls.limit_per_s=50",
                   "exchange.rate_limits.pools.orders.limit_per_s=50"]}


def run_live(tmp: Path, emu: "EmulatorProcess", cycles: int, die_at: str | None = None) -> int:
    """A live session of ``cycles`` on ``emu`` (its venue's pacing raised: ``PACE``), the loop in a
    subprocess logging to ``tmp/live.log``; its exit code (-9: killed at ``die_at``)."""
    cfg_file = tmp / "live.json"
    cfg = compose_config(emu.overrides("live", tmp / "state", cycles=cycles) + PACE.get(emu.exchange, []))
    cfg_file.write_text(json.dumps(cfg))
    p = start_loop(cfg_file, "live", tmp / "live.log", emu.exchange, die_at=die_at)
    return p.wait(timeout=300)


def protected_session(tmp: Path, exchange: str, protect: str, cycles: int = 60, faults: tuple = (),
                      die_at: str | None = None, restart_cycles: int = 2) -> dict:
    """A live session of ``cycles`` under ``protect`` (a ``protect:`` block) against the venue's
    emulator process, ``faults`` (``(kind, params)``) queued in it first; ``die_at``: the loop
    SIGKILLs itself there (one of ``STOP_DIE_AT``, ``TAKE_DIE_AT``, ...) and a restart runs
    ``restart_cycles``. The venue's state (orders, balances) as the session left it."""
    with_protect(tmp, protect)
    emu = EmulatorProcess(tmp, exchange=exchange)
    try:
        for kind, params in faults:
            emu.fault(kind, **params)
        log = tmp / "live.log"
        assert run_live(tmp, emu, cycles=cycles, die_at=die_at) == (-9 if die_at else 0), log.read_text()[-3000:]
        if die_at:
            assert run_live(tmp, emu, cycles=restart_cycles) == 0, log.read_text()[-3000:]
        emu.freeze()
        return emu.dump(tmp / "dump.json")
    finally:
        emu.close()


def held_at_venue(balances: dict, quote: str = "USDC") -> set[str]:
    """The symbols an emulator dump's balances hold (``{ccy: [available, hold]}``); a sold-out
    balance may keep float dust (5.6e-17 ETH seen): no position."""
    return {f"{c}/{quote}" for c, (avail, hold) in balances.items() if c != quote and avail + hold > 1e-9}


def state_rows(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows of one query on a session's state file, the connection closed after."""
    db = sqlite3.connect(str(path))
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def wait_started(log: Path, n: int, timeout: float = 30.0) -> None:
    """Until the log holds ``n`` "loop process started" lines (imports done, the loop begins)."""
    wait_until(lambda: log.exists() and log.read_text().count("loop process started") >= n, timeout,
               f"start number {n} of the loop process (see {log})")


def start_loop(cfg_file: Path, mode: str, log: Path, exchange: str = "coinbase",
               die_at: str | None = None) -> subprocess.Popen:
    args = [str(cfg_file), mode, exchange] + ([die_at] if die_at else [])
    return subprocess.Popen([sys.executable, "-m", "tests.helpers.live", "loop", *args],
                            cwd=PROJECT_ROOT, env=EmulatorProcess.env(exchange), stdout=log.open("a"),
                            stderr=subprocess.STDOUT)


def _serve(speed: str, products: str, cash: str, exchange: str = "coinbase") -> None:
    """The emulator process: one JSON line (its address and clock) once it listens, then one
    ``dumped`` line per ``dump PATH`` command, after PATH is written. Orders in the dump carry
    ``exchange_order_id``: the id as that exchange names it (Kraken's txid, Binance's orderId), and
    their stop (``_trigger``)."""
    from engine.exchange.emulator import emulator_class
    from engine.exchange.emulator.market import SimMarket
    market = SimMarket.generate(seed=7, n_products=int(products), speed=float(speed))
    emu = emulator_class(exchange)(market=market, balances={"USDC": float(cash)}, enforce_rate_limits=False)
    emu.start()
    wall = time.time()
    sim = market.now_ms()
    print(json.dumps({"url": emu.url, "sim_ms": sim, "wall_s": wall, "speed": float(speed)}), flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "dump":
            state = {"orders": [{**o, "exchange_order_id": emu.exchange_order_id(o["order_id"]),
                                 **_trigger(emu.book.orders[o["order_id"]])} for o in emu.orders()],
                     "balances": emu.balances()}
            Path(arg + ".tmp").write_text(json.dumps(state))
            os.replace(arg + ".tmp", arg)
            print("dumped", flush=True)
        elif cmd == "freeze":  # stop the clock at the current step: the venue holds still to be looked at
            market._index, market.speed = market.index, None
            print("frozen", flush=True)
        elif cmd == "fault":  # fault KIND k=v ...: one fault queued (a price fault: the book takes it)
            kind, *kv = arg.split()
            emu.faults.add(kind, **{k: float(v) for k, v in (x.split("=", 1) for x in kv)})
            print("queued", flush=True)
        elif cmd == "quit":
            break
    emu.stop()


def _trigger(o) -> dict:
    """A dumped order's stop as the engine holds it, whichever front end placed it: ``stop_price``
    (None: not a stop), ``limit_price``, ``stop_direction``, ``triggered``; ``list_id`` (an order
    list's legs share it); ``filled`` (base)."""
    return {"stop_price": o.stop_price, "limit_price": o.limit_price, "stop_direction": o.stop_direction,
            "triggered": o.triggered, "list_id": o.list_id, "filled": o.filled}


def _die_at(point: str) -> None:
    """Plant a SIGKILL of this very process at ``point`` (one of DIE_AT): a real kill, at an exact step."""
    import signal

    from engine.exchange.adapter import ExchangeAdapter
    from engine.live.exchange_broker import ExchangeBroker

    def die(what: str) -> None:
        print(f"SIGKILL {what}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before_send":
        def submit(self, ctx, t, orders, d):
            if orders:  # recorded as 'new' in the state file by the cycle's transaction, not sent
                die(f"before sending {orders[0].client_order_id}")
        ExchangeBroker.submit = submit
    elif point == "after_send":
        create = ExchangeAdapter.create_order

        def create_then_die(self, req):
            create(self, req)  # at the exchange now; the state file still says 'new'
            die(f"after sending {req.client_order_id}")
        ExchangeAdapter.create_order = create_then_die
    elif point == "before_stop_send":
        send = ExchangeBroker.send

        def send_unless_stop(self, ctx, o):
            if o.type == "stop_limit":  # recorded as 'new' by its own transaction, not sent
                die(f"before sending stop {o.client_order_id}")
            send(self, ctx, o)
        ExchangeBroker.send = send_unless_stop
    elif point == "after_stop_send":
        create = ExchangeAdapter.create_order

        def create_then_die_on_stop(self, req):
            st = create(self, req)
            if req.type == "stop_limit":  # resting at the exchange; the state file still says 'new'
                die(f"after sending stop {req.client_order_id}")
            return st
        ExchangeAdapter.create_order = create_then_die_on_stop
    elif point == "before_take_profit_send":
        send = ExchangeBroker.send

        def send_unless_take(self, ctx, o):
            if o.type in ("take_profit", "bracket"):  # recorded as 'new' by its own transaction, not sent
                die(f"before sending take-profit {o.client_order_id}")
            send(self, ctx, o)

        def no_list(self, ctx, list_id, stop, take):  # both legs recorded as 'new', the list not sent
            die(f"before sending order list {list_id}")
        ExchangeBroker.send, ExchangeBroker.send_list = send_unless_take, no_list
    elif point == "after_take_profit_send":
        create, create_oco = ExchangeAdapter.create_order, ExchangeAdapter.create_oco

        def create_then_die_on_take(self, req):
            st = create(self, req)
            if req.type in ("take_profit", "bracket"):  # resting at the exchange; the state file still says 'new'
                die(f"after sending take-profit {req.client_order_id}")
            return st

        def oco_then_die(self, req):
            create_oco(self, req)
            die(f"after sending order list {req.list_client_order_id}")
        ExchangeAdapter.create_order, ExchangeAdapter.create_oco = create_then_die_on_take, oco_then_die
    else:
        raise ValueError(f"die_at {point!r}; expected one of {', '.join(DIE_AT + STOP_DIE_AT + TAKE_DIE_AT)}")


def _loop(cfg_file: str, mode: str, exchange: str = "coinbase", die_at: str | None = None) -> None:
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("rulebook.exchange").setLevel(logging.WARNING)
    from engine.modes.live import open_session
    if die_at:
        _die_at(die_at)
    print("loop process started", flush=True)  # the crash test kills only after this line
    cfg = json.loads(Path(cfg_file).read_text())
    s = open_session(cfg, mode)
    try:
        print(json.dumps(s.run()), flush=True)
    finally:
        s.adapter.close()
        s.store.close()


# -- the parity harness ------------------------------------------------------------------------
def parity_overrides(where: Path, *extra: str, products: int = 3) -> list[str]:
    """Overrides for the parity harness (engine/modes/parity.py): the active test rules against
    exchange=local_sim; the harness itself picks the mode, the step clock and a fresh state dir."""
    rules = active_rules_dir(Path(where))
    return ["exchange=local_sim", *LIVE_GROUP, f"rules_dir={rules}", f"exchange.emulator.products={products}",
            "live.burn_in.min_paper_cycles=3",
            "live.burn_in.min_paper_hours=0", *ACTIVE, *extra]


def parity_config(where: Path, *extra: str, **kw) -> dict:
    return compose_config(parity_overrides(where, *extra, **kw))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve(*sys.argv[2:6])
    elif sys.argv[1] == "loop":
        _loop(*sys.argv[2:6])
