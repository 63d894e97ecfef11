"""Unit tests: rate budget arithmetic (fake clock), ids, error classification, config checks."""
import logging

import ccxt
import pytest

from engine.exchange import ErrorKind, ExchangeConfig, ExchangeConfigError, classify, make_client_order_id
from engine.exchange.budget import RateBudget
from engine.exchange.config import PoolConfig, RateLimitConfig


class FakeClock:
    def __init__(self):
        self.t = 100.0
        self.slept = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


def budget(public=10.0, private=30.0, margin=0.1, threshold=0.8):
    clock = FakeClock()
    cfg = RateLimitConfig(pools={"public": PoolConfig(public), "private": PoolConfig(private)},
                          safety_margin=margin, alert_threshold=threshold)
    return RateBudget(cfg, clock=clock, sleep=clock.sleep), clock


def max_in_window(times, window=1.0):
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_budget_pauses_before_the_pool_is_exhausted():
    b, clock = budget()
    stamps = []
    for _ in range(50):
        b.acquire("public")
        stamps.append(clock.t)
    assert max_in_window(stamps) == 9  # 10/s minus the 10% margin, never 10
    m = b.metrics()["public"]
    assert m.requests == 50 and m.pauses > 0 and m.peak_rate == pytest.approx(9.0)
    assert b.metrics()["private"].requests == 0  # pools are independent


def test_budget_costs_per_endpoint():
    clock = FakeClock()
    cfg = RateLimitConfig(endpoint_costs={"GET brokerage/best_bid_ask": 3.0})
    b = RateBudget(cfg, clock=clock, sleep=clock.sleep)
    assert b.cost_of("get", "brokerage/best_bid_ask") == 3.0
    assert b.cost_of("POST", "brokerage/orders") == 1.0
    for _ in range(9):
        b.acquire("private", 3.0)
    assert clock.slept == []  # 27 of 27 usable
    b.acquire("private", 3.0)
    assert clock.slept and sum(clock.slept) == pytest.approx(1.0)


def test_alert_once_per_crossing(caplog):
    b, clock = budget(public=10, margin=0.0, threshold=0.8)
    with caplog.at_level(logging.WARNING, logger="rulebook.exchange.budget"):
        for _ in range(10):
            b.acquire("public")
        clock.t += 5
        for _ in range(10):
            b.acquire("public")
    assert b.metrics()["public"].alerts == 2
    assert sum("rate pool 'public'" in r.getMessage() for r in caplog.records) == 2


def test_retry_after_pauses_the_pool():
    b, clock = budget()
    b.observe("private", 429, {"Retry-After": "2"})
    start = clock.t
    b.acquire("private")
    assert clock.t - start == pytest.approx(2.0)
    m = b.metrics()["private"]
    assert m.rate_limited == 1 and m.server_pauses == 1


def test_ratelimit_remaining_zero_pauses_until_reset():
    b, clock = budget()
    b.observe("public", 200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0.5"})
    start = clock.t
    b.acquire("public")
    assert clock.t - start == pytest.approx(0.5)


def test_cost_above_capacity_is_a_config_error():
    b, _ = budget(public=1.0)
    with pytest.raises(ExchangeConfigError, match="pool 'public'"):
        b.acquire("public", 5.0)


def test_client_order_id_is_stable_short_and_distinct():
    a = make_client_order_id("run1", 1_700_000_000_000, "BTC/USDC", "buy", 0)
    assert a == make_client_order_id("run1", 1_700_000_000_000, "BTC/USDC", "buy", 0)
    assert len(a) <= 36 and a.startswith("rb-")
    others = {make_client_order_id("run1", 1_700_000_000_000, "BTC/USDC", "buy", 1),
              make_client_order_id("run1", 1_700_000_000_000, "BTC/USDC", "sell", 0),
              make_client_order_id("run2", 1_700_000_000_000, "BTC/USDC", "buy", 0),
              make_client_order_id("run1", 1_700_000_003_600, "BTC/USDC", "buy", 0)}
    assert a not in others and len(others) == 4
    with pytest.raises(ValueError, match="side"):
        make_client_order_id("r", 0, "BTC/USDC", "long", 0)


@pytest.mark.parametrize("exc,status,kind", [
    (ccxt.ExchangeError('coinbase {"error":"RATE_LIMIT_EXCEEDED"}'), 429, ErrorKind.RATE_LIMIT),
    (ccxt.RateLimitExceeded("x"), None, ErrorKind.RATE_LIMIT),
    (ccxt.DDoSProtection("x"), None, ErrorKind.DDOS),
    (ccxt.RequestTimeout("x"), None, ErrorKind.TIMEOUT),
    (ccxt.NetworkError("x"), None, ErrorKind.NETWORK),
    (ccxt.ExchangeNotAvailable("x"), 503, ErrorKind.UNAVAILABLE),
    (ccxt.ExchangeError("internal"), 500, ErrorKind.UNAVAILABLE),
    (ccxt.InsufficientFunds("x"), 200, ErrorKind.INSUFFICIENT_FUNDS),
    (ccxt.InvalidOrder("x"), None, ErrorKind.INVALID_ORDER),
    (ccxt.OrderNotFound("x"), None, ErrorKind.ORDER_NOT_FOUND),
    (ccxt.ExchangeError("order with this orderID was not found"), 404, ErrorKind.ORDER_NOT_FOUND),
    (ccxt.AuthenticationError("x"), 401, ErrorKind.AUTH),
    (ccxt.ExchangeNotAvailable("x"), 400, ErrorKind.BAD_REQUEST),
])
def test_classify(exc, status, kind):
    assert classify(exc, status) is kind


def test_config_from_mapping_and_errors():
    cfg = ExchangeConfig.from_mapping({"name": "coinbase", "rate_limits": {
        "pools": {"public": {"limit_per_s": 10}, "private": {"limit_per_s": 30}}, "safety_margin": 0.2}})
    assert cfg.rate_limits.pools["private"].limit_per_s == 30.0 and cfg.rate_limits.safety_margin == 0.2
    with pytest.raises(ExchangeConfigError, match=r"exchange\.rate_limits\.safty_margin.*did you mean 'safety_margin'"):
        ExchangeConfig.from_mapping({"rate_limits": {"safty_margin": 0.1}})
    with pytest.raises(ExchangeConfigError, match=r"exchange\.timeout_ms: found 'fast', expected an integer"):
        ExchangeConfig.from_mapping({"timeout_ms": "fast"})
    # pools are each exchange's own (Binance: weight/orders_10s/orders_1d); a decay pool needs its ceiling
    with pytest.raises(ExchangeConfigError, match=r"pools\.calls\.max_count: a decay pool needs"):
        ExchangeConfig.from_mapping({"rate_limits": {"pools": {"calls": {"limit_per_s": 0.33, "kind": "decay"}}}})
    with pytest.raises(ExchangeConfigError, match=r"exchange\.ccxt_id: found 'okx', expected one of binance, coinbase, kraken"):
        ExchangeConfig.from_mapping({"ccxt_id": "okx"})
    with pytest.raises(ExchangeConfigError, match="NAME of an environment variable") as e:
        ExchangeConfig.from_mapping({"api_secret_env": "-----BEGIN EC PRIVATE KEY-----\nabc"})
    assert "abc" not in str(e.value)


def test_conf_yaml_files_load():
    import pathlib

    import yaml
    for path in sorted(pathlib.Path("conf/exchange").glob("*.yaml")):
        cfg = ExchangeConfig.from_mapping(yaml.safe_load(path.read_text()), source=str(path))
        assert cfg.rate_limits.pools and all(p.limit_per_s > 0 for p in cfg.rate_limits.pools.values())
