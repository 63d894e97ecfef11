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


def stop_order_type(config) -> str | None:
    """The order type live places a position's stop as on this venue (its profile's
    ``protection_orders``), or None: the loop enforces stops itself."""
    have = tuple(getattr(config, "protection_orders", ()) or ())
    return "stop_limit" if "stop_limit" in have else None
