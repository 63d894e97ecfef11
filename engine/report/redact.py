"""Last line of defence against secrets in reports: the config arrives redacted, but a
report is shared widely, so secret-looking keys and overrides are masked once more."""
from __future__ import annotations

import re
from typing import Any

MASK = "***redacted***"
_SECRET = re.compile(r"(secret|password|passphrase|private[_-]?key|api[_-]?key|token|credential)", re.I)


def is_secret_key(key: str) -> bool:
    # `api_key_env: COINBASE_API_KEY` names a variable, it is not the secret itself
    return bool(_SECRET.search(key)) and not key.lower().endswith("_env")


def redact_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(str(k)) and v not in (None, "") else redact_config(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact_config(v) for v in value]
    return value


def redact_override(override: str) -> str:
    key, sep, _ = override.partition("=")
    last = key.lstrip("+~").rsplit(".", 1)[-1]
    return f"{key}={MASK}" if sep and is_secret_key(last) else override
