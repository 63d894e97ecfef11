"""Last line of defence against secrets in reports: the config arrives redacted, but a
report is shared widely, so secret-looking keys and overrides are masked once more."""
from __future__ import annotations

import os
import re
from typing import Any, Iterable, Mapping

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


def env_secret_values(config: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment variables the config names (``*_env: VAR``): the real secrets."""
    env = os.environ if environ is None else environ
    names: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if str(k).lower().endswith("_env") and isinstance(x, str):
                    names.add(x)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(config)
    # short values would mask ordinary words; real keys are long
    return sorted({env[n] for n in names if len(env.get(n, "")) >= 8}, key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """Mask every occurrence of a known secret value in text about to be written."""
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text
