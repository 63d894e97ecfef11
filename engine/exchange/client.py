"""The ccxt ``coinbase`` client with two hooks and nothing else changed.

* before every HTTP request: charge the endpoint's cost to its pool (our limiter, so
  ccxt's own ``enableRateLimit`` is off: its single bucket mixes public and private
  calls and would double-throttle);
* on every response: remember the HTTP status and headers of the last request, so
  errors can be classified by status (a v3 429 body arrives as a plain ExchangeError)
  and the budget can learn from ``Retry-After``.

Signing, URLs, request building and parsing are ccxt's own.
"""
from __future__ import annotations

import logging
import threading

import ccxt

from .budget import RateBudget, pool_of
from .secrets import Credentials


class _Last(threading.local):
    status: int | None = None
    headers: dict | None = None
    pool: str = "public"


class BudgetedCoinbase(ccxt.coinbase):
    """ccxt.coinbase whose requests are admitted by a RateBudget."""

    def __init__(self, config: dict, budget: RateBudget):
        super().__init__(config)
        self.budget = budget
        self.last = _Last()

    def fetch2(self, path, api=["public"], method="GET", params={}, config={}):
        pool = pool_of(api)
        self.last.pool = pool
        self.last.status = None
        self.last.headers = None
        self.budget.acquire(pool, self.budget.cost_of(method, path))
        return super().fetch2(path, api, method, params, config)

    def handle_errors(self, code, reason, url, method, headers, body, response, requestHeaders, requestBody):
        # Called for every HTTP response (success and error) before ccxt raises anything.
        self.last.status = code
        self.last.headers = dict(headers or {})
        self.budget.observe(self.last.pool, code, self.last.headers)
        return super().handle_errors(code, reason, url, method, headers, body, response, requestHeaders, requestBody)


def build_client(rest_url: str | None, credentials: Credentials | None, budget: RateBudget,
                 timeout_ms: int) -> BudgetedCoinbase:
    options = {
        "enableRateLimit": False,  # RateBudget is the only limiter
        "timeout": int(timeout_ms),
        "verbose": False,  # verbose print()s headers, bypassing logging and its redaction
        "options": {"fetchMarkets": "fetchMarketsV3", "advanced": True},
    }
    if credentials is not None:
        options["apiKey"] = credentials.api_key
        options["secret"] = credentials.secret
    client = BudgetedCoinbase(options, budget)
    if rest_url:
        client.urls["api"]["rest"] = rest_url.rstrip("/")
    client.logger = logging.getLogger("rulebook.exchange.ccxt")
    return client
