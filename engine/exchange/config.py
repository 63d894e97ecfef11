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
    limit_per_s: float  # the exchange's published limit for this pool
    burst_s: float = 1.0  # the window over which the limit is counted


@dataclass(frozen=True)
class RateLimitConfig:
    pools: dict[str, PoolConfig] = field(default_factory=lambda: {
        "public": PoolConfig(10.0), "private": PoolConfig(30.0)})
    safety_margin: float = 0.1  # keep this fraction of every window unused
    alert_threshold: float = 0.8  # WARNING + counter when a window's use passes this fraction
    # "METHOD path" (path as ccxt names it, e.g. "GET brokerage/orders/historical/batch") -> cost
    endpoint_costs: dict[str, float] = field(default_factory=dict)
    learn_from_headers: bool = True


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
    speed: float = 60.0  # simulated seconds per wall second
    products: int = 8
    quote_currency: str = "USDC"
    starting_balance: float = 100_000.0
    enforce_rate_limits: bool = True


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
    # Fee tiers (maker/taker bps by trailing 30-day volume): read by the simulated brokers
    # (backtest, paper) through engine.backtest.costs.FeeSchedule; the adapter ignores them.
    fees: dict | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, source: str = "exchange") -> "ExchangeConfig":
        return _build(cls, data or {}, source)

    def with_overrides(self, **changes: Any) -> "ExchangeConfig":
        return dataclasses.replace(self, **changes)


_NESTED = {"rate_limits": RateLimitConfig, "retry": RetryConfig, "orders": OrderConfig,
           "emulator": EmulatorConfig}


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
    for required in ("public", "private"):
        if required not in out:
            raise ExchangeConfigError(f"{path}: pool {required!r} is missing (expected public and private)")
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
        for key in ("api_key_env", "api_secret_env"):
            name = getattr(obj, key)
            # A PEM or a long token here means someone pasted the secret itself.
            if name is not None and (not name.replace("_", "").isalnum() or len(name) > 64):
                raise ExchangeConfigError(
                    f"{path}.{key}: expected the NAME of an environment variable (like COINBASE_API_KEY), "
                    f"found something that is not a variable name; secrets never go in config")
