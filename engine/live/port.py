"""The broker port: what the live loop asks of "whoever acts on a decision", and what it gets back.

One interface, three implementations (engine/live/brokers.py), chosen once per mode by the
registry in engine/modes:

- simulated (paper): the backtest's own fill model (engine/sim) fills each order in the bar
  after its decision bar, from the stored bars;
- none (dry_run): places nothing; its virtual portfolio fills with the same fill model, so
  a backtest over the same bars decides the same (the shadow replay);
- exchange (live): real orders through engine/exchange's adapter, fills adopted from the
  exchange's fill list by trade id.

The loop records every order (``OrderTicket``) in the state file before it calls ``submit``;
a broker reads and writes only what :class:`BrokerContext` hands it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from engine.cycle.decide import HaltState
from engine.cycle.portfolio import Portfolio
from engine.rules.loader import ProtectRules
from engine.sim.costs import FeeSchedule
from engine.sim.fills import ParticipationCuts
from engine.sim.protect import Levels
from engine.sim.settings import SimSettings


@dataclass(frozen=True)
class OrderTicket:
    """One order as decided and recorded (the ``orders`` row before it is sent)."""

    client_order_id: str
    t: int  # the decision bar
    symbol: str
    side: str  # buy | sell
    qty: float
    type: str  # market | limit | stop_limit | take_profit (a position's protection, live)
    limit_price: float | None
    rule: str
    stop_price: float | None = None

    @classmethod
    def from_row(cls, o: dict) -> "OrderTicket":
        return cls(o["client_order_id"], int(o["t"]), o["symbol"], o["side"], float(o["qty"]), o["type"],
                   None if o.get("limit_price") is None else float(o["limit_price"]), o.get("rule") or "",
                   None if o.get("stop_price") is None else float(o["stop_price"]))


@dataclass(frozen=True)
class BrokerFill:
    """One fill as the state file keeps it; ``t`` is the bar it filled in (decision bar + 1)."""

    fill_id: str
    client_order_id: str | None
    exchange_order_id: str | None
    t: int
    symbol: str
    side: str
    qty: float
    price: float
    fee: float
    slippage: float
    time_ms: int
    rule: str


@dataclass(frozen=True)
class Balances:
    cash: float | None  # quote currency; None: the broker holds no account of its own (simulated)
    positions: dict[str, float] = field(default_factory=dict)


@dataclass
class Book:
    """The account as the loop and its broker share it: portfolio, halts, the fee tier's window,
    and (dry_run) the decision waiting for its next bar."""

    pf: Portfolio
    halts: HaltState
    fees: FeeSchedule
    pending: dict | None = None
    # the strategy's protect: block (set by the loop from the rules it runs) and, while positions
    # are held, their levels (engine/sim/protect.py); ``protect_t``: the last bar whose
    # protections were filled
    protect: ProtectRules = field(default_factory=ProtectRules)
    levels: Levels | None = None
    protect_t: int = -1
    # what the volume participation cap cut from the fill model's orders (paper, dry_run: the
    # backtest's own counter, engine/sim/fills.py); None until the fill model first ran (live)
    cuts: ParticipationCuts | None = None


@dataclass
class BrokerContext:
    """Everything a broker may read or write, handed over once the session has started."""

    store: Any  # engine.live.store.StateStore
    symbols: list[str]
    size_increment: np.ndarray
    costs: SimSettings
    book: Book
    clock: Any
    tf_ms: int
    settings: Any  # engine.live.settings.LiveSettings
    alert: Callable[..., None]  # (level, kind, message, t)
    save: Callable[[Any], None]  # writes the book inside the caller's transaction
    entries_halted: Callable[[], bool]  # the kill switch is on
    quotes: Callable[[], Any]  # the freshest QuoteSnapshot (None before the first fetch)
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {s: j for j, s in enumerate(self.symbols)}

    def bar_ms(self, t: int) -> int:
        row = self.store.db.execute("SELECT time_ms FROM bars WHERE t=?", (t,)).fetchone()
        return row[0] if row else 0

    def order_is_fresh(self, o: dict) -> bool:
        """Whether an order recorded before a restart may still go out (not older than the policy allows)."""
        bar_close = int(self.bar_ms(o["t"])) + self.tf_ms
        return self.clock.now_ms() - bar_close <= self.settings.resend_max_age_bars * self.tf_ms + self.tf_ms


Note = tuple[str, str, str]  # (level, kind, message): an alert the loop raises for the cycle


class Broker(Protocol):
    """The port. ``places_orders``: the loop records order rows for ``submit`` (dry_run's does not)."""

    places_orders: bool

    def reconcile(self, ctx: BrokerContext) -> None:
        """After a (re)start: settle every order whose fate the state file does not know."""

    def settle(self, ctx: BrokerContext, market, t: int) -> None:
        """Before deciding at bar t: take in what happened since (fills, expiries) and apply it."""

    def available(self, ctx: BrokerContext, d, close: np.ndarray) -> tuple[object, list[Note]]:
        """A new decision: ``d`` trimmed to what open orders do not already commit (``d`` is not edited)."""

    def submit(self, ctx: BrokerContext, t: int, orders: list[OrderTicket], d) -> None:
        """Act on a cycle's recorded orders (or, placing none, on its decision)."""

    def cancel(self, ctx: BrokerContext, client_order_id: str) -> None: ...

    def cancel_all(self, ctx: BrokerContext) -> int: ...

    def open_orders(self, ctx: BrokerContext) -> list[OrderTicket]: ...

    def fills_since(self, ctx: BrokerContext, cursor_ms: int) -> list[BrokerFill]: ...

    def balances(self, quote_currency: str) -> Balances:
        """The account's balances at the broker (``cash`` None: a simulated account, no balances of its own)."""

    def finish(self, ctx: BrokerContext) -> None:
        """At session end: settle what can be settled now."""
