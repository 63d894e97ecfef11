"""The profile's ccxt class (``exchange.ccxt_id``) with two hooks and nothing else changed.

* before every HTTP request: charge the request to every pool the profile says it counts in
  (our limiter, so ccxt's own ``enableRateLimit`` is off: its single bucket mixes pools and
  would double-throttle);
* on every response: remember the HTTP status and headers of the last request, so errors can
  be classified by status (a Coinbase v3 429 body arrives as a plain ExchangeError) and the
  budget can learn from ``Retry-After``, Binance's ``X-MBX-*`` counts and Kraken's error bodies.

Signing, URLs, request building and parsing are ccxt's own.
"""
from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import ccxt

from .budget import RateBudget
from .secrets import Credentials


class _Last(threading.local):
    status: int | None = None
    headers: dict | None = None
    charges: list = []
    events: list = []  # the window events the request recorded (moved to its answer's time)


_CLASSES: dict[str, type] = {}


def budgeted_class(ccxt_id: str) -> type:
    """``ccxt.<ccxt_id>`` whose requests are admitted by a RateBudget (one subclass per id)."""
    if ccxt_id in _CLASSES:
        return _CLASSES[ccxt_id]
    base = getattr(ccxt, ccxt_id)

    def __init__(self, config: dict, budget: RateBudget):
        base.__init__(self, config)
        self.budget = budget
        self.last = _Last()

    def fetch2(self, path, api=["public"], method="GET", params={}, config={}):
        charges = self.budget.charges(api, method, path, params,
                                      self.calculate_rate_limiter_cost(api, method, path, params, config))
        self.last.charges = charges
        self.last.status = None
        self.last.headers = None
        self.last.events = self.budget.admit(charges)[1]
        return base.fetch2(self, path, api, method, params, config)

    def handle_errors(self, code, reason, url, method, headers, body, response, requestHeaders, requestBody):
        # Called for every HTTP response (success and error) before ccxt raises anything.
        self.last.status = code
        self.last.headers = dict(headers or {})
        self.budget.answered(self.last.events)
        self.budget.observe(self.last.charges, code, self.last.headers, body if isinstance(body, str) else None)
        return base.handle_errors(self, code, reason, url, method, headers, body, response, requestHeaders, requestBody)

    cls = type(f"Budgeted{base.__name__.capitalize()}", (base,),
               {"__init__": __init__, "fetch2": fetch2, "handle_errors": handle_errors,
                "__doc__": f"ccxt.{ccxt_id} whose requests are admitted by a RateBudget."})
    _CLASSES[ccxt_id] = cls
    return cls


def point_at(client, rest_url: str) -> None:
    """Send every REST call to ``rest_url`` (an emulator, a proxy): each of the class's API base
    URLs keeps its path (Binance ``/api/v3``, Kraken none) and gets the new scheme and host."""
    target = urlsplit(rest_url.rstrip("/"))

    def move(url):
        if not isinstance(url, str) or "://" not in url:
            return url
        u = urlsplit(url)
        return f"{target.scheme}://{target.netloc}{target.path}{u.path}".rstrip("/")

    api = client.urls["api"]
    client.urls["api"] = {k: move(v) for k, v in api.items()} if isinstance(api, dict) else move(api)


def build_client(ccxt_id: str, rest_url: str | None, credentials: Credentials | None, budget: RateBudget,
                 timeout_ms: int, ccxt_options: dict | None = None):
    options = {
        "enableRateLimit": False,  # RateBudget is the only limiter
        "timeout": int(timeout_ms),
        "verbose": False,  # verbose print()s headers, bypassing logging and its redaction
        "options": dict(ccxt_options or {}),
    }
    if credentials is not None:
        options["apiKey"] = credentials.api_key
        options["secret"] = credentials.secret
    client = budgeted_class(ccxt_id)(options, budget)
    if rest_url:
        point_at(client, rest_url)
    client.logger = logging.getLogger("rulebook.exchange.ccxt")
    return client
