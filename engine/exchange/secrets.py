"""API credentials from the environment only, and a log filter that keeps them out of logs.

ccxt logs every request's headers at DEBUG (the ``Authorization: Bearer <JWT>`` included)
on its ``ccxt.base.exchange`` logger. Logger filters do not apply to records from child
loggers, so the redactor is attached to each logger ccxt writes to and to our own.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from engine.config.secrets import REDACTED, redact_urls

from .errors import CredentialsError

_PATTERNS = (
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"((?:'|\")?(?:Authorization|CB-ACCESS-KEY|CB-ACCESS-SIGN|CB-ACCESS-PASSPHRASE)(?:'|\")?\s*[:=]\s*(?:'|\")?)[^'\",}]+",
               re.IGNORECASE),
    re.compile(r"-----BEGIN[^-]*-----.*?-----END[^-]*-----", re.DOTALL),
)


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    secret: str = field(repr=False)

    def __repr__(self) -> str:  # never print the values, even by accident
        return f"Credentials(api_key={REDACTED}, secret={REDACTED})"


def load_credentials(api_key_env: str | None, api_secret_env: str | None,
                     environ: dict | None = None) -> Credentials | None:
    """Read the key and secret from the named environment variables (None if no names)."""
    if api_key_env is None and api_secret_env is None:
        return None
    env = os.environ if environ is None else environ
    missing = [n for n in (api_key_env, api_secret_env) if n is None or not env.get(n)]
    if missing:
        raise CredentialsError(
            f"exchange credentials: environment variable(s) {', '.join(str(m) for m in missing)} "
            f"not set (named by exchange.api_key_env / exchange.api_secret_env); export them, "
            f"never put the values in config or on the command line")
    # Keys downloaded from Coinbase often carry literal "\n" in the PEM.
    return Credentials(api_key=env[api_key_env], secret=env[api_secret_env].replace("\\n", "\n"))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, REDACTED)
    text = _PATTERNS[0].sub(r"\1" + REDACTED, text)
    text = _PATTERNS[1].sub(r"\1" + REDACTED, text)
    return redact_urls(_PATTERNS[2].sub(REDACTED, text))  # user:password@ and ?token= in request URLs


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with credentials and auth headers removed."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def add_secrets(self, *secrets: str) -> None:
        self.secrets = tuple(dict.fromkeys(self.secrets + tuple(s for s in secrets if s)))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw template, still redacted
            message = str(record.msg)
        record.msg = redact(message, self.secrets)
        record.args = None
        return True


CCXT_LOGGERS = ("ccxt", "ccxt.base.exchange", "rulebook.exchange.ccxt")
_FILTER = RedactingFilter()


def install_log_redaction(credentials: Credentials | None, level: str = "INFO") -> RedactingFilter:
    """Attach the (process-wide) redactor to ccxt's loggers and set their level."""
    if credentials is not None:
        secret_lines = tuple(line for line in credentials.secret.splitlines()
                             if len(line) > 16 and "-----" not in line)
        _FILTER.add_secrets(credentials.api_key, credentials.secret, *secret_lines)
    for name in CCXT_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        logger.setLevel(level)
    return _FILTER
