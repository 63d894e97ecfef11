"""Credentials come from the environment only and never reach a log line, even at DEBUG."""
import logging

import pytest

from engine.exchange.secrets import REDACTED, RedactingFilter, load_credentials, redact
from tests.helpers.exchange import emulator_and_adapter, limit_order, throwaway_test_credentials


def test_ccxt_debug_logs_never_hold_credentials(caplog):
    with emulator_and_adapter() as (emu, ad):
        creds = throwaway_test_credentials()
        for name in ("ccxt", "ccxt.base.exchange", "rulebook.exchange.ccxt"):
            logging.getLogger(name).setLevel(logging.DEBUG)  # the worst case: someone turned DEBUG on
        with caplog.at_level(logging.DEBUG):
            ad.markets()
            ad.balances()
            emu.set_quote("BTC-USDC", 100.0, 101.0)
            ad.create_order(limit_order(qty=0.1, price=90.0, seq=1))
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "Request:" in text  # ccxt did log its requests ...
        assert "'Authorization': '" + REDACTED in text  # ... with the token replaced
        assert "Bearer ey" not in text
        assert creds.api_key not in text
        for line in creds.secret.splitlines():
            if len(line) > 16:
                assert line not in text
        assert repr(creds) == "Credentials(api_key=***, secret=***)"


def test_redact_patterns():
    raw = "GET /x, Request: {'Authorization': 'Bearer abc.def.ghi', 'CB-ACCESS-SIGN': 'deadbeef'} sk-123"
    out = redact(raw, ("sk-123",))
    assert "abc.def.ghi" not in out and "deadbeef" not in out and "sk-123" not in out
    rec = logging.LogRecord("ccxt", logging.DEBUG, __file__, 1, "%s %s", ("token", "Bearer xyz.abc"), None)
    RedactingFilter(("token",)).filter(rec)
    assert rec.getMessage() == f"{REDACTED} Bearer {REDACTED}"


def test_credentials_only_from_named_env_vars():
    assert load_credentials(None, None, {}) is None
    c = load_credentials("K", "S", {"K": "organizations/o/apiKeys/k", "S": "-----BEGIN X-----\\nabc\\n-----END X-----"})
    assert c.secret.count("\n") == 2  # literal \n from a .env file becomes a newline
    with pytest.raises(Exception, match="S not set"):
        load_credentials("K", "S", {"K": "x"})
