"""The exchange layer: ccxt's Coinbase client behind rate budgets, retries and idempotent orders.

Public API: ExchangeAdapter, ExchangeConfig, OrderRequest/OrderState/Quote/MarketInfo/...,
make_client_order_id, RateBudget, ErrorKind/ExchangeCallError. The local emulator lives in
``engine.exchange.emulator``.
"""
from .adapter import ExchangeAdapter
from .budget import RateBudget
from .config import ExchangeConfig, RateLimitConfig, PoolConfig, RetryConfig
from .errors import (CredentialsError, ErrorKind, ExchangeCallError, ExchangeConfigError,
                     ExchangeError, classify)
from .ids import make_client_order_id
from .types import Balance, FeeTier, Fill, MarketInfo, OrderRequest, OrderState, Quote

__all__ = ["ExchangeAdapter", "ExchangeConfig", "RateLimitConfig", "PoolConfig", "RetryConfig", "RateBudget",
           "ErrorKind", "ExchangeCallError", "ExchangeConfigError", "ExchangeError", "CredentialsError", "classify",
           "make_client_order_id", "Balance", "FeeTier", "Fill", "MarketInfo", "OrderRequest", "OrderState", "Quote"]
