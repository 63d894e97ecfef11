"""Exchange error kinds, how ccxt's exceptions map onto them, and which are safe to retry.

ccxt's hierarchy is not enough on its own: Coinbase's v3 429 body surfaces as a plain
``ExchangeError``, and ccxt maps 400/403/404 to ``ExchangeNotAvailable``. So the HTTP
status of the failed request (recorded by the client hook) is consulted first.
"""
from __future__ import annotations

import enum

from functools import lru_cache


class ErrorKind(str, enum.Enum):
    NETWORK = "network"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    DDOS = "ddos_protection"
    UNAVAILABLE = "exchange_unavailable"
    INVALID_ORDER = "invalid_order"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    ORDER_NOT_FOUND = "order_not_found"
    AUTH = "authentication"
    BAD_REQUEST = "bad_request"
    UNKNOWN = "unknown"


# Kinds that may be retried for a read or any idempotent call.
TRANSIENT = frozenset({ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.RATE_LIMIT,
                       ErrorKind.DDOS, ErrorKind.UNAVAILABLE})
# Kinds after which a create-order may or may not have reached the book: recover by id.
AMBIGUOUS = frozenset({ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE, ErrorKind.UNKNOWN})


class ExchangeError(Exception):
    """Base of every error the exchange layer raises to its callers."""


class ExchangeConfigError(ExchangeError):
    """The exchange config is wrong: the message names the key, what was found and what is expected."""


class CredentialsError(ExchangeError):
    """An API credential is missing from the environment."""


class ExchangeCallError(ExchangeError):
    """A call failed after the retries it was allowed."""

    def __init__(self, kind: ErrorKind, operation: str, message: str, attempts: int = 1,
                 http_status: int | None = None):
        self.kind = kind
        self.operation = operation
        self.attempts = attempts
        self.http_status = http_status
        super().__init__(f"{operation} failed ({kind.value}, after {attempts} attempt(s)"
                         f"{', HTTP ' + str(http_status) if http_status else ''}): {message}")


@lru_cache(maxsize=1)
def _by_class() -> tuple[tuple[type, ErrorKind], ...]:
    """ccxt's classes, most specific first: RateLimitExceeded, DDoSProtection, RequestTimeout and
    ExchangeNotAvailable are all NetworkError subclasses; OrderNotFound is an InvalidOrder.
    (ccxt is imported on first use: ~0.3 s that a backtest never needs.)"""
    import ccxt

    return (
        (ccxt.RateLimitExceeded, ErrorKind.RATE_LIMIT),
        (ccxt.DDoSProtection, ErrorKind.DDOS),
        (ccxt.RequestTimeout, ErrorKind.TIMEOUT),
        (ccxt.ExchangeNotAvailable, ErrorKind.UNAVAILABLE),
        (ccxt.InvalidNonce, ErrorKind.NETWORK),
        (ccxt.NetworkError, ErrorKind.NETWORK),
        (ccxt.OrderNotFound, ErrorKind.ORDER_NOT_FOUND),
        (ccxt.InsufficientFunds, ErrorKind.INSUFFICIENT_FUNDS),
        (ccxt.InvalidOrder, ErrorKind.INVALID_ORDER),
        (ccxt.AuthenticationError, ErrorKind.AUTH),
        (ccxt.BadRequest, ErrorKind.BAD_REQUEST),
        (ccxt.ArgumentsRequired, ErrorKind.BAD_REQUEST),
        (ccxt.NotSupported, ErrorKind.BAD_REQUEST),
        (ccxt.BadResponse, ErrorKind.NETWORK),
    )


def classify(exc: BaseException, http_status: int | None = None) -> ErrorKind:
    """Map a ccxt exception (and the HTTP status it came with, if any) to an ErrorKind."""
    import ccxt

    if http_status == 429:
        return ErrorKind.RATE_LIMIT  # whatever the body said
    if http_status in (401, 403) and not isinstance(exc, ccxt.RateLimitExceeded):
        return ErrorKind.AUTH
    if http_status == 404:
        return ErrorKind.ORDER_NOT_FOUND if "order" in str(exc).lower() else ErrorKind.BAD_REQUEST
    if http_status == 400 and isinstance(exc, ccxt.ExchangeNotAvailable):
        return ErrorKind.BAD_REQUEST  # ccxt's generic 400 mapping is not an outage
    if http_status is not None and http_status >= 500:
        if isinstance(exc, ccxt.RequestTimeout):
            return ErrorKind.TIMEOUT
        return ErrorKind.UNAVAILABLE
    for cls, kind in _by_class():
        if isinstance(exc, cls):
            return kind
    text = str(exc).lower()
    if "rate_limit" in text or "too many requests" in text:
        return ErrorKind.RATE_LIMIT
    return ErrorKind.UNKNOWN
