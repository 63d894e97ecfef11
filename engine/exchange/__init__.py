"""The exchange layer: ccxt's Coinbase client behind rate budgets, retries and idempotent orders.

Public API: ExchangeAdapter, ExchangeConfig, OrderRequest/OrderState/Quote/MarketInfo/...,
make_client_order_id, RateBudget, ErrorKind/ExchangeCallError. The local emulator lives in
``engine.exchange.emulator``.
"""
from importlib import import_module

# name -> submodule, resolved on first access: importing ``engine.exchange.errors`` (as every
# run does, for its error types) must not import ccxt through the adapter
_EXPORTS = {
    "ExchangeAdapter": "adapter", "RateBudget": "budget",
    "ExchangeConfig": "config", "RateLimitConfig": "config", "PoolConfig": "config", "RetryConfig": "config",
    "CredentialsError": "errors", "ErrorKind": "errors", "ExchangeCallError": "errors",
    "ExchangeConfigError": "errors", "ExchangeError": "errors", "classify": "errors",
    "make_client_order_id": "ids",
    "Balance": "types", "FeeTier": "types", "Fill": "types", "MarketInfo": "types", "OrderRequest": "types",
    "OrderState": "types", "Quote": "types", "OcoRequest": "types",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
