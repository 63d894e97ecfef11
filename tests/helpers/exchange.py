"""Factories for the exchange tests: an emulator, throwaway keys, configs and adapters."""
from __future__ import annotations

import contextlib

from engine.exchange import ExchangeAdapter, ExchangeConfig, OrderRequest, make_client_order_id
from engine.exchange.config import OrderConfig, PoolConfig, RateLimitConfig, RetryConfig
from engine.exchange.emulator import CoinbaseEmulator
from engine.exchange.keys import public_key_of, throwaway_credentials

KEY_ENV, SECRET_ENV = "RB_TEST_CB_KEY", "RB_TEST_CB_SECRET"


def throwaway_test_credentials(seed: int = 1):
    return throwaway_credentials(seed)


def env_for(creds) -> dict:
    return {KEY_ENV: creds.api_key, SECRET_ENV: creds.secret}


def make_config(url: str, public: float = 10.0, private: float = 30.0, margin: float = 0.1,
                max_attempts: int = 5, timeout_ms: int = 2_000, base_delay_s: float = 0.01,
                **changes) -> ExchangeConfig:
    return ExchangeConfig(
        name="test", rest_url=url, api_key_env=KEY_ENV, api_secret_env=SECRET_ENV, timeout_ms=timeout_ms,
        rate_limits=RateLimitConfig(pools={"public": PoolConfig(public), "private": PoolConfig(private)},
                                    safety_margin=margin),
        retry=RetryConfig(max_attempts=max_attempts, base_delay_s=base_delay_s, max_delay_s=0.2, seed=3),
        orders=OrderConfig(recovery_lookback_s=600.0), **changes)


@contextlib.contextmanager
def emulator_and_adapter(limits: tuple[float, float] = (10.0, 30.0), client_limits: tuple[float, float] | None = None,
                         verify_keys: bool = True, **config_changes):
    """A running emulator (step mode, seed 7) and an adapter pointed at it with throwaway keys."""
    creds = throwaway_test_credentials()
    keys = {creds.api_key: public_key_of(creds)} if verify_keys else None
    emu = CoinbaseEmulator(seed=7, products=6, limits={"public": limits[0], "private": limits[1]}, api_keys=keys)
    with emu:
        pub, priv = client_limits or limits
        adapter = ExchangeAdapter(make_config(emu.url, pub, priv, **config_changes), environ=env_for(creds))
        try:
            yield emu, adapter
        finally:
            adapter.close()


def market_order(symbol: str = "BTC/USDC", side: str = "buy", qty: float = 0.01, seq: int = 0,
                 run_id: str = "test-run") -> OrderRequest:
    cid = make_client_order_id(run_id, 1_700_000_000_000, symbol, side, seq)
    return OrderRequest(cid, symbol, side, "market", qty)


def limit_order(symbol: str = "BTC/USDC", side: str = "buy", qty: float = 0.01, price: float = 50_000.0,
                seq: int = 0, run_id: str = "test-run") -> OrderRequest:
    cid = make_client_order_id(run_id, 1_700_000_000_000, symbol, side, seq)
    return OrderRequest(cid, symbol, side, "limit", qty, price)
