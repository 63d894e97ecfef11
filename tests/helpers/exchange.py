"""Factories for the exchange tests: an emulator, throwaway keys, configs and adapters."""
from __future__ import annotations

import contextlib
import pathlib

import yaml

from engine.exchange import ExchangeAdapter, ExchangeConfig, OrderRequest, make_client_order_id
from engine.exchange.config import OrderConfig, PoolConfig, RateLimitConfig, RetryConfig
from engine.exchange.emulator import CoinbaseEmulator
from engine.exchange.keys import public_key_of, throwaway_credentials

KEY_ENV, SECRET_ENV = "RB_TEST_CB_KEY", "RB_TEST_CB_SECRET"
CONF = pathlib.Path(__file__).resolve().parents[2] / "conf" / "exchange"


def sim_config(name: str, products: int = 3, rest_url: str | None = None, **sections) -> ExchangeConfig:
    """A shipped profile (``conf/exchange/<name>.yaml``, e.g. ``kraken_sim``) as an ExchangeConfig,
    with ``products`` emulator products; ``sections`` update its mappings, e.g.
    ``retry={"base_delay_s": 0.01}`` or ``rate_limits={"pause_on_limited_s": 0.2}``."""
    raw = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    raw.pop("fees")  # the simulators' schedule, not the adapter's
    raw["emulator"]["products"] = products
    if rest_url:
        raw["rest_url"] = rest_url
    for key, changes in sections.items():
        raw[key] = {**raw[key], **changes} if isinstance(raw.get(key), dict) else changes
    return ExchangeConfig.from_mapping(raw)


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
                         verify_keys: bool = True, server_clock=None, **config_changes):
    """A running emulator (step mode, seed 7) and an adapter pointed at it with throwaway keys;
    ``server_clock``: the clock the emulator's rate pools count by (e.g. frozen)."""
    creds = throwaway_test_credentials()
    keys = {creds.api_key: public_key_of(creds)} if verify_keys else None
    emu = CoinbaseEmulator(seed=7, products=6, limits={"public": limits[0], "private": limits[1]}, api_keys=keys,
                           **({"rate_clock": server_clock} if server_clock else {}))
    with emu:
        pub, priv = client_limits or limits
        adapter = ExchangeAdapter(make_config(emu.url, pub, priv, **config_changes), environ=env_for(creds))
        try:
            yield emu, adapter
        finally:
            adapter.close()


# the shipped offline profile of each venue (its emulator front end through its real ccxt class)
SIM_PROFILES = {"coinbase": "local_sim", "kraken": "kraken_sim", "binance": "binance_sim"}


@contextlib.contextmanager
def venue_emulator_and_adapter(exchange: str, products: int = 6):
    """``exchange``'s emulator front end in step mode (seed 7, every base held) and an adapter on it
    through that venue's real ccxt class: Coinbase as ``emulator_and_adapter``, Kraken and Binance
    through their shipped ``_sim`` profiles (the emulator's own rate pools off)."""
    if exchange == "coinbase":
        with emulator_and_adapter() as pair:
            yield pair
        return
    with shipped_emulator_and_adapter(exchange, products) as pair:
        yield pair


class WireLog:
    """Every request a ccxt client sends (method, url, body), as sent: ``WireLog(adapter.client)``."""

    def __init__(self, client):
        self.sent: list[tuple[str, str, str | None]] = []
        fetch = client.fetch

        def logged(url, method="GET", headers=None, body=None):
            self.sent.append((method, url, body))
            return fetch(url, method, headers, body)
        client.fetch = logged

    def params(self, method: str, path: str) -> list[dict]:
        """The query and form parameters of each ``method`` request to a URL ending in ``path``."""
        from urllib.parse import parse_qs, urlsplit
        out = []
        for m, url, body in self.sent:
            parts = urlsplit(url)
            if m == method and parts.path.endswith(path):
                raw = parts.query + ("&" + body if isinstance(body, str) and not body.startswith("{") else "")
                out.append({k: v[0] for k, v in parse_qs(raw).items()})
        return out


def market_order(symbol: str = "BTC/USDC", side: str = "buy", qty: float = 0.01, seq: int = 0,
                 run_id: str = "test-run") -> OrderRequest:
    cid = make_client_order_id(run_id, 1_700_000_000_000, symbol, side, seq)
    return OrderRequest(cid, symbol, side, "market", qty)


def limit_order(symbol: str = "BTC/USDC", side: str = "buy", qty: float = 0.01, price: float = 50_000.0,
                seq: int = 0, run_id: str = "test-run") -> OrderRequest:
    cid = make_client_order_id(run_id, 1_700_000_000_000, symbol, side, seq)
    return OrderRequest(cid, symbol, side, "limit", qty, price)


class MockExchangeBuilder:
    """A real Coinbase emulator on 127.0.0.1 plus a real adapter (ccxt's coinbase class) on it.

    ``MockExchangeBuilder().with_balance("USDC", 10_000).with_standard_products().build()``
    returns a started :class:`MockExchange`; use it as a context manager to stop it.
    """

    def __init__(self) -> None:
        self._balances: dict[str, float] = {}
        self._products = 6
        self._seed = 7
        self._limits = (10.0, 30.0)

    def with_balance(self, currency: str, amount: float) -> "MockExchangeBuilder":
        self._balances[currency] = float(amount)
        return self

    def with_standard_products(self, count: int = 6) -> "MockExchangeBuilder":
        self._products = count
        return self

    def with_seed(self, seed: int) -> "MockExchangeBuilder":
        self._seed = seed
        return self

    def with_rate_limits(self, public: float, private: float) -> "MockExchangeBuilder":
        self._limits = (public, private)
        return self

    def build(self) -> "MockExchange":
        creds = throwaway_test_credentials()
        emu = CoinbaseEmulator(seed=self._seed, products=self._products,
                               limits={"public": self._limits[0], "private": self._limits[1]},
                               balances=dict(self._balances) or None,
                               api_keys={creds.api_key: public_key_of(creds)})
        emu.start()
        adapter = ExchangeAdapter(make_config(emu.url, *self._limits), environ=env_for(creds))
        return MockExchange(emu, adapter)


class MockExchange:
    def __init__(self, emulator: CoinbaseEmulator, adapter: ExchangeAdapter):
        self.emulator, self.adapter = emulator, adapter

    def close(self) -> None:
        self.adapter.close()
        self.emulator.stop()

    def __enter__(self) -> "MockExchange":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def shipped_emulator_and_adapter(exchange: str, products: int = 3):
    """``exchange``'s shipped ``_sim`` profile (Coinbase's ``local_sim`` too: its protection orders, its
    stop-limit offset) over its own emulator in step mode (seed 7, every base held, rate pools off),
    through the venue's real ccxt class: (emulator, adapter)."""
    cfg = sim_config(SIM_PROFILES[exchange], products=products, emulator={"speed": None, "enforce_rate_limits": False})
    with ExchangeAdapter(cfg) as adapter:
        yield adapter.emulator, adapter
