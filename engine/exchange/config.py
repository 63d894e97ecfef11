"""The exchange config group (``conf/exchange/*.yaml``) as typed dataclasses.

``ExchangeConfig.from_mapping`` takes the plain dict Hydra composed (``OmegaConf.to_container``)
and rejects unknown or mistyped keys with the key path, so a typo in a YAML file fails
at start-up rather than silently falling back to a default.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

from engine.config.secrets import redact_urls, url_credential_message, url_credentials

from .errors import ExchangeConfigError


@dataclass(frozen=True)
class PoolConfig:
    """One rate pool as the exchange counts it (see docs/exchange.md for each exchange's figures).

    ``kind: window``: at most ``limit_per_s * burst_s`` cost in any ``burst_s`` seconds (Coinbase's
    per-second pools, Binance's weight per minute and orders per 10 s / per day).
    ``kind: decay``: a counter that each request raises by its cost and that drains at
    ``limit_per_s`` per second, refused above ``max_count`` (Kraken's call and order counters).
    """
    limit_per_s: float  # window: the limit per second; decay: how fast the counter drains
    burst_s: float = 1.0  # window: the window over which the limit is counted
    kind: str = "window"  # window | decay
    max_count: float | None = None  # decay: the counter's ceiling
    # ccxt api tags this pool counts (ccxt's ``api`` of a request, e.g. "public", "private",
    # "v3"); "*" = every request; None = the pool's own name (public / private)
    apis: list | None = None
    # when set, only these requests count ("METHOD path" as ccxt names the path -> cost)
    endpoints: dict | None = None
    # cost = ccxt's own cost for the endpoint (its api table) times this; None: 1 per request
    # unless rate_limits.endpoint_costs names the endpoint (Binance: ccxt cost = 0.2 x weight -> 5)
    ccxt_cost_scale: float | None = None
    per_param: str | None = None  # one counter per value of this request param (Kraken: pair)
    used_header: str | None = None  # response header with the server's count for this window


@dataclass(frozen=True)
class RateLimitConfig:
    pools: dict[str, PoolConfig] = field(default_factory=lambda: {
        "public": PoolConfig(10.0), "private": PoolConfig(30.0)})
    safety_margin: float = 0.1  # keep this fraction of every window unused
    alert_threshold: float = 0.8  # WARNING + counter when a window's use passes this fraction
    # "METHOD path" (path as ccxt names it, e.g. "GET brokerage/orders/historical/batch") -> cost
    endpoint_costs: dict[str, float] = field(default_factory=dict)
    learn_from_headers: bool = True
    # an error text in a response body (HTTP 200 included) -> the pool it says is exhausted
    # (Kraken answers 200 {"error": ["EAPI:Rate limit exceeded"]})
    limited_markers: dict[str, str] = field(default_factory=dict)
    pause_on_limited_s: float = 1.0  # how long a marker (or a 429 without Retry-After) pauses its pool


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    jitter: float = 0.5  # +- fraction of each delay, drawn from a seeded RNG
    seed: int = 0


@dataclass(frozen=True)
class OrderConfig:
    confirm_after_create: bool = True  # fetch the order after a create to learn status and fills
    recovery_lookback_s: float = 900.0  # how far back to list orders when recovering by client id


@dataclass(frozen=True)
class EmulatorConfig:
    autostart: bool = False  # start an in-process emulator and point the client at it
    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 7
    speed: float | None = 60.0  # simulated seconds per wall second; None: step mode (live.clock=step moves it)
    products: int = 8
    quote_currency: str = "USDC"
    starting_balance: float = 100_000.0
    enforce_rate_limits: bool = True


@dataclass(frozen=True)
class ClientIdConfig:
    """How the exchange takes and gives back our idempotent client order id (docs/exchange.md)."""
    param: str = "client_order_id"  # the create-order param the ccxt class sends through unchanged
    style: str = "prefixed"  # prefixed: "rb-" + 32 hex (35 chars); uuid: the same hex as 8-4-4-4-12
    # always: a resend with a known id returns the first order (Coinbase); open: the id is unique
    # among OPEN orders only (Binance, Kraken): a resend after a fill would trade again, so the
    # adapter always looks the id up before it resends
    unique: str = "always"


CLIENT_ID_STYLES = ("prefixed", "uuid")
POOL_KINDS = ("window", "decay")


@dataclass(frozen=True)
class ExchangeConfig:
    name: str = "coinbase"
    ccxt_id: str = "coinbase"
    rest_url: str | None = None  # None: ccxt's default (https://api.coinbase.com)
    api_key_env: str | None = "COINBASE_API_KEY"  # names of environment variables, never values
    api_secret_env: str | None = "COINBASE_API_SECRET"
    timeout_ms: int = 10_000
    ccxt_log_level: str = "INFO"
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    orders: OrderConfig = field(default_factory=OrderConfig)
    emulator: EmulatorConfig = field(default_factory=EmulatorConfig)
    client_id: ClientIdConfig = field(default_factory=ClientIdConfig)
    ccxt_options: dict = field(default_factory=dict)  # passed to the ccxt class's ``options``
    # Fee tiers (maker/taker bps by trailing 30-day volume): read by the simulated brokers
    # (backtest, paper) through engine.sim.costs.FeeSchedule; the adapter ignores them.
    fees: dict | None = None
    # the protection order types the venue takes (engine.exchange.types.PROTECTION_ORDER_TYPES):
    # live places a strategy's stops there; what it lacks, the loop enforces each cycle (docs/live.md)
    protection_orders: tuple = ()
    stop_limit_offset_bps: float = 100.0  # a stop-limit sell's limit this far under its stop

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, source: str = "exchange") -> "ExchangeConfig":
        return _build(cls, data or {}, source)

    def with_overrides(self, **changes: Any) -> "ExchangeConfig":
        return dataclasses.replace(self, **changes)


_NESTED = {"rate_limits": RateLimitConfig, "retry": RetryConfig, "orders": OrderConfig,
           "emulator": EmulatorConfig, "client_id": ClientIdConfig}


def _build(cls: type, data: Mapping[str, Any], path: str):
    if not isinstance(data, Mapping):
        raise ExchangeConfigError(f"{path}: found {type(data).__name__}, expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}.{key}"
        if key not in fields:
            hint = difflib.get_close_matches(str(key), fields, n=1)
            raise ExchangeConfigError(
                f"{where}: unknown key{'; did you mean ' + repr(hint[0]) + '?' if hint else ''} "
                f"(expected one of {', '.join(sorted(fields))})")
        if key in _NESTED and cls in (ExchangeConfig,):
            kwargs[key] = _build(_NESTED[key], value or {}, where)
        elif cls is RateLimitConfig and key == "pools":
            kwargs[key] = _pools(value, where)
        elif cls is RateLimitConfig and key == "endpoint_costs":
            kwargs[key] = {str(k): _number(v, f"{where}.{k}", positive=True) for k, v in (value or {}).items()}
        elif cls is PoolConfig and key == "endpoints":
            kwargs[key] = {str(k): _number(v, f"{where}.{k}") for k, v in (value or {}).items()}
        elif cls is ExchangeConfig and key == "protection_orders":
            from .types import PROTECTION_ORDER_TYPES
            bad = [v for v in (value or []) if v not in PROTECTION_ORDER_TYPES] if isinstance(value, (list, tuple)) else [value]
            if bad:
                raise ExchangeConfigError(f"{where}: found {bad[0]!r}, expected a list of "
                                          f"{', '.join(PROTECTION_ORDER_TYPES)}")
            kwargs[key] = tuple(value or ())
        elif key in ("apis",) or (cls is ExchangeConfig and key == "ccxt_options") or \
                (cls is RateLimitConfig and key == "limited_markers"):
            expected = list if key == "apis" else dict
            if value is not None and not isinstance(value, (list, tuple) if expected is list else Mapping):
                raise ExchangeConfigError(f"{where}: found {value!r}, expected a {expected.__name__}")
            kwargs[key] = None if value is None else (list(value) if expected is list else dict(value))
        else:
            kwargs[key] = _coerce(value, fields[key], where)
    obj = cls(**kwargs)
    _check(obj, path)
    return obj


def _pools(value: Any, path: str) -> dict[str, PoolConfig]:
    if not isinstance(value, Mapping) or not value:
        raise ExchangeConfigError(f"{path}: expected a mapping of pool name -> {{limit_per_s: N}}")
    out = {}
    for name, spec in value.items():
        out[str(name)] = _build(PoolConfig, spec, f"{path}.{name}")
    return out


def _number(value: Any, path: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExchangeConfigError(f"{path}: found {value!r}, expected a number")
    if positive and not value > 0:
        raise ExchangeConfigError(f"{path}: found {value!r}, expected a number > 0")
    return float(value)


def _coerce(value: Any, f: dataclasses.Field, path: str) -> Any:
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if value is None:
        if "None" in t:
            return None
        raise ExchangeConfigError(f"{path}: found null, expected {t}")
    if t.startswith("bool"):
        if not isinstance(value, bool):
            raise ExchangeConfigError(f"{path}: found {value!r}, expected true or false")
        return value
    if t.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExchangeConfigError(f"{path}: found {value!r}, expected an integer")
        return value
    if t.startswith("float"):
        return _number(value, path)
    if t.startswith("str"):
        if not isinstance(value, str):
            raise ExchangeConfigError(f"{path}: found {value!r}, expected a string")
        return value
    return value


def _check(obj: Any, path: str) -> None:
    if isinstance(obj, PoolConfig):
        if not obj.limit_per_s > 0 or not obj.burst_s > 0:
            raise ExchangeConfigError(f"{path}: limit_per_s and burst_s must be > 0, found {obj}")
        if obj.kind not in POOL_KINDS:
            raise ExchangeConfigError(f"{path}.kind: found {obj.kind!r}, expected one of {', '.join(POOL_KINDS)}")
        if obj.kind == "decay" and not (obj.max_count or 0) > 0:
            raise ExchangeConfigError(f"{path}.max_count: a decay pool needs its counter's ceiling (> 0), "
                                      f"found {obj.max_count!r}")
    if isinstance(obj, ClientIdConfig):
        if obj.style not in CLIENT_ID_STYLES:
            raise ExchangeConfigError(f"{path}.style: found {obj.style!r}, expected one of {', '.join(CLIENT_ID_STYLES)}")
        if obj.unique not in ("always", "open"):
            raise ExchangeConfigError(f"{path}.unique: found {obj.unique!r}, expected always or open")
    if isinstance(obj, RateLimitConfig):
        if not 0 <= obj.safety_margin < 1:
            raise ExchangeConfigError(f"{path}.safety_margin: found {obj.safety_margin}, expected 0 <= x < 1")
        if not 0 < obj.alert_threshold <= 1:
            raise ExchangeConfigError(f"{path}.alert_threshold: found {obj.alert_threshold}, expected 0 < x <= 1")
    if isinstance(obj, RetryConfig):
        if obj.max_attempts < 1:
            raise ExchangeConfigError(f"{path}.max_attempts: found {obj.max_attempts}, expected >= 1")
        if not 0 <= obj.jitter <= 1:
            raise ExchangeConfigError(f"{path}.jitter: found {obj.jitter}, expected 0 <= x <= 1")
    if isinstance(obj, ExchangeConfig):
        if obj.rest_url is not None and url_credentials(obj.rest_url):
            env = [f"{path}.{k} ({getattr(obj, k)})" for k in ("api_key_env", "api_secret_env") if getattr(obj, k)]
            raise ExchangeConfigError(
                url_credential_message(f"{path}.rest_url", obj.rest_url, env) + f" (found: {redact_urls(obj.rest_url)})")
        from .profiles import check_protection_orders, check_supported
        check_supported(obj.ccxt_id, f"{path}.ccxt_id")
        check_protection_orders(obj.ccxt_id, obj.protection_orders, f"{path}.protection_orders")
        for key in ("api_key_env", "api_secret_env"):
            name = getattr(obj, key)
            # A PEM or a long token here means someone pasted the secret itself.
            if name is not None and (not name.replace("_", "").isalnum() or len(name) > 64):
                raise ExchangeConfigError(
                    f"{path}.{key}: expected the NAME of an environment variable (like COINBASE_API_KEY), "
                    f"found something that is not a variable name; secrets never go in config")
