"""Dataclasses at the adapter's seam: what the live loop reads and writes.

Quantities are floats in the product's own units (base for sizes, quote for prices);
times are epoch milliseconds (UTC) unless the name says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Order statuses we expose (ccxt's unified vocabulary plus the two that only we know:
# "unknown" while a create's fate is being recovered, "rejected" for a 200 success:false).
ORDER_STATUSES = ("open", "closed", "canceled", "rejected", "unknown")
ORDER_TYPES = ("market", "limit", "stop_limit", "take_profit", "bracket")
# the protection order types an exchange profile may list (``protection_orders``)
PROTECTION_ORDER_TYPES = ("stop_limit", "stop_market", "take_profit")


@dataclass(frozen=True)
class MarketInfo:
    """One product's trading rules as the exchange states them now."""

    symbol: str
    exchange_id: str  # Coinbase product id, e.g. "BTC-USDC"
    base: str
    quote: str
    price_increment: float
    size_increment: float
    min_size: float  # base units
    min_notional: float  # quote units
    status: str  # Coinbase's product status, e.g. "online"
    trading_disabled: bool
    cancel_only: bool
    limit_only: bool
    post_only: bool

    @property
    def tradable(self) -> bool:
        """New orders of any kind are accepted (market orders may still be refused by limit_only)."""
        return self.status == "online" and not (self.trading_disabled or self.cancel_only)


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    observed_at: float  # our receive time on the adapter's clock (seconds), not the exchange's
    exchange_time_ms: int | None = None

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid + self.ask)

    @property
    def spread_bps(self) -> float:
        return (self.ask - self.bid) / self.mid * 1e4 if self.mid > 0 else float("nan")


@dataclass(frozen=True)
class Balance:
    currency: str
    free: float
    used: float

    @property
    def total(self) -> float:
        return self.free + self.used


@dataclass(frozen=True)
class FeeTier:
    name: str
    maker: float  # fraction, e.g. 0.004
    taker: float
    volume_30d_usd: float


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    type: str  # "market" | "limit" | "stop_limit" | "take_profit" (a take-profit-limit sell: on a rise)
    #            | "bracket" (a sell: a limit at limit_price, a stop trigger at stop_price under it)
    qty: float  # base units
    limit_price: float | None = None  # required for limit; for a market buy, the reference price
    post_only: bool = False
    stop_price: float | None = None  # stop_limit: the price that triggers it (a sell: on a fall); take_profit: on a rise

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise ValueError(f"OrderRequest.side is {self.side!r}; expected 'buy' or 'sell'")
        if self.type not in ORDER_TYPES:
            raise ValueError(f"OrderRequest.type is {self.type!r}; expected one of {', '.join(ORDER_TYPES)}")
        if not self.qty > 0:
            raise ValueError(f"OrderRequest.qty is {self.qty!r}; expected a positive base quantity")
        if self.type != "market" and not (self.limit_price and self.limit_price > 0):
            raise ValueError(f"OrderRequest {self.client_order_id}: a {self.type} order needs a positive limit_price")
        if self.type in ("stop_limit", "take_profit", "bracket") and not (self.stop_price and self.stop_price > 0):
            raise ValueError(f"OrderRequest {self.client_order_id}: a {self.type} order needs a positive stop_price")
        if not 0 < len(self.client_order_id) <= 36:
            raise ValueError(f"OrderRequest.client_order_id {self.client_order_id!r} must be 1..36 characters")


@dataclass(frozen=True)
class OrderState:
    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    side: str
    type: str
    status: str  # one of ORDER_STATUSES
    qty: float | None
    filled: float
    average_price: float | None
    limit_price: float | None = None
    fee: float = 0.0
    reject_reason: str | None = None
    created_ms: int | None = None
    stop_price: float | None = None


@dataclass(frozen=True)
class Fill:
    trade_id: str
    exchange_order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    fee: float
    time_ms: int
    liquidity: str | None = None  # "maker" | "taker"


@dataclass
class PoolMetrics:
    """Counters for one rate pool; rate_metrics() returns one per pool."""

    requests: int = 0
    cost: float = 0.0
    peak_rate: float = 0.0  # highest cost seen inside any window, per second
    pauses: int = 0  # acquire() calls that had to wait
    paused_s: float = 0.0
    alerts: int = 0  # crossings of the alert threshold
    rate_limited: int = 0  # 429s received (should stay 0)
    server_pauses: int = 0  # pauses learnt from Retry-After / rate-limit headers
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OcoRequest:
    """A position's take-profit and stop as one order list (Binance OCO): a sell of ``qty`` that
    rests as a limit at ``take_price`` above the market and a stop-limit (``stop_price``,
    ``stop_limit``) below it; one filling expires the other. Every id is ours (1..36 characters)."""

    list_client_order_id: str
    symbol: str
    qty: float
    take_client_order_id: str
    take_price: float
    stop_client_order_id: str
    stop_price: float
    stop_limit: float

    def legs(self) -> tuple[OrderRequest, OrderRequest]:
        """(the stop leg, the take-profit leg) as plain requests (the pre-send checks take them)."""
        return (OrderRequest(self.stop_client_order_id, self.symbol, "sell", "stop_limit", self.qty, self.stop_limit,
                             stop_price=self.stop_price),
                OrderRequest(self.take_client_order_id, self.symbol, "sell", "limit", self.qty, self.take_price,
                             post_only=True))
