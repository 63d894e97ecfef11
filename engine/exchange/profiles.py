"""Which ccxt exchanges rulebook supports: each has a profile in ``conf/exchange/<id>.yaml`` and,
where a quirk needs code, a class in ``engine.exchange.quirks``.

Kept free of ccxt imports: the config check (``mode=validate``) asks this module, and a
backtest never loads ccxt.
"""
from __future__ import annotations

from .errors import ExchangeConfigError

# ccxt id -> what it is (and the profile shipped for it)
SUPPORTED = {
    "binance": "Binance spot (conf/exchange/binance.yaml; offline: binance_sim)",
    "coinbase": "Coinbase Advanced Trade (conf/exchange/coinbase.yaml; offline: local_sim)",
    "kraken": "Kraken spot (conf/exchange/kraken.yaml; offline: kraken_sim)",
}


def supported_ids() -> list[str]:
    return sorted(SUPPORTED)


def check_supported(ccxt_id: str | None, where: str = "exchange.ccxt_id") -> None:
    if ccxt_id is None or ccxt_id in SUPPORTED:
        return
    raise ExchangeConfigError(
        f"{where}: found {ccxt_id!r}, expected one of {', '.join(supported_ids())} (exchanges with a profile; "
        "docs/exchange.md says how to add another ccxt exchange); an exchange without a profile is never "
        "treated as Coinbase")


# How each venue's ccxt class rests a position's take-profit (``take_profit`` in the profile's
# ``protection_orders``). A spot sell resting at the exchange holds its base, so a stop and a
# take-profit of one position can rest together only as one order list:
#   "oco":   Binance: both as one OCO (POST /api/v3/orderList/oco, a LIMIT_MAKER above and a
#            STOP_LOSS_LIMIT below); the take-profit alone as TAKE_PROFIT_LIMIT;
#   "bracket": Coinbase: both as one trigger_bracket_gtc order (a limit sell at the take-profit,
#            a stop trigger under the price: ccxt 4.5.90's coinbase class builds none, so our
#            order_configuration rides in createOrder's params); the take-profit alone as a
#            stop-limit sell triggering on a rise (ccxt's takeProfitPrice: STOP_DIRECTION_STOP_UP);
#   "alone": Kraken: a take-profit-limit sell only when no stop rests (a stop configured rests
#            and the loop keeps the take-profit);
# absent: the loop enforces every take-profit.
TAKE_PROFIT = {"binance": "oco", "coinbase": "bracket", "kraken": "alone"}
# Once its stop triggers, a Coinbase bracket becomes a stop-limit sell this far under its trigger
# (the engine never sends that limit, so it cannot know it otherwise: a gapped stop is told by it,
# engine/live/protect_orders.py; the emulator's BRACKET_LIMIT, engine/exchange/emulator/book.py, the same,
# kept apart on purpose: the emulator is the venue's model, not the engine's). Coinbase's Create Order
# reference on stop_trigger_price: "When triggered, a stop limit order is automatically placed with a
# limit price 5% higher for BUYS and 5% lower for SELLS."
BRACKET_STOP_LIMIT = 0.05


def check_protection_orders(ccxt_id: str | None, orders, where: str = "exchange.protection_orders") -> None:
    """A profile lists ``take_profit`` only for a venue whose class can place it (``TAKE_PROFIT``)."""
    if "take_profit" in tuple(orders or ()) and ccxt_id is not None and ccxt_id not in TAKE_PROFIT:
        raise ExchangeConfigError(
            f"{where}: found take_profit for {ccxt_id}, expected it only for "
            f"{', '.join(sorted(TAKE_PROFIT))} (a take-profit order rulebook can place there; the loop "
            f"enforces {ccxt_id}'s take-profits)")


def take_profit_mode(config) -> str | None:
    """How a position's take-profit rests on this venue ("oco", "bracket", "alone": ``TAKE_PROFIT``), or
    None: the loop enforces it."""
    if "take_profit" not in tuple(getattr(config, "protection_orders", ()) or ()):
        return None
    return TAKE_PROFIT.get(getattr(config, "ccxt_id", None))


def stop_order_type(config) -> str | None:
    """The order type live places a position's stop as on this venue (its profile's
    ``protection_orders``), or None: the loop enforces stops itself."""
    have = tuple(getattr(config, "protection_orders", ()) or ())
    return "stop_limit" if "stop_limit" in have else None
