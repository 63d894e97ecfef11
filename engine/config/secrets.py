"""Secrets live in environment variables only; the config names the variable, never the value.

This module finds literal secrets in a config, redacts configs before they are written anywhere,
and scrubs known secret values out of text and log records (the ccxt logger included).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .problems import ConfigProblem

REDACTED = "***"

# Words that make a key secret-looking, matched against the key split into words, so that
# "api_key", "apiKey", "API-SECRET", "db_password" match and "keyboard", "tokenizer" do not.
_SECRET_WORDS = frozenset(
    {"key", "apikey", "secret", "password", "passwd", "pwd", "token", "passphrase", "privatekey",
     "credential", "credentials", "pem"}
)
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# Known secret values shorter than this are not scrubbed from text: "***"-ing every "1" would
# mangle logs and still leak nothing a 3-character secret would not leak anyway.
MIN_SCRUB_LEN = 4


# Query parameters that carry a credential in a URL, beyond the secret-looking words above
# (?signature=, ?sig=, ?auth=, X-Amz-Credential=, ?access_token= ...).
_QUERY_SECRET_WORDS = _SECRET_WORDS | {"signature", "sig", "auth", "authorization", "jwt", "session", "sessionid",
                                       "hmac", "bearer", "access"}
# scheme://user:password@host or scheme://token@host: the part before '@' in the authority.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s'\"]+)@")
# ?name=value or &name=value (also ;name=value), the value up to the next separator or quote.
_URL_QUERY = re.compile(r"(?P<sep>[?&;])(?P<name>[A-Za-z0-9_.\-\[\]]+)=(?P<value>[^&;#\s'\"]*)")
_HAS_SCHEME = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://")


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def is_env_name_key(key: Any) -> bool:
    """Keys like api_key_env hold the NAME of an environment variable: safe to write."""
    return isinstance(key, str) and _words(key)[-1:] == ["env"]


def is_secret_key(key: Any) -> bool:
    """True for keys whose value would be a credential (api_key, secret, password, token, ...)."""
    if not isinstance(key, str) or is_env_name_key(key):
        return False
    return any(w in _SECRET_WORDS for w in _words(key))


# Mappings whose keys name things of the market (themes, symbols), never settings: the theme
# "exchange_token" is no token, and its cap no secret.
DATA_KEYED = frozenset({"risk.params.theme_caps", "risk.params.asset_caps"})


def is_secret_path(path: str) -> bool:
    """is_secret_key of the path's last key, unless the key names a theme or symbol (DATA_KEYED)."""
    parent, _, leaf = path.rpartition(".")
    return parent not in DATA_KEYED and is_secret_key(leaf)


def _holds_literal(value: Any) -> bool:
    # None and "" mean "not set"; bools are switches, not credentials; "???" is Hydra's missing marker.
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip() not in ("", "???")
    return isinstance(value, (int, float))


def looks_like_secret_value(value: Any) -> bool:
    return isinstance(value, str) and bool(_PEM.search(value))


def _is_query_secret(name: str) -> bool:
    return any(w in _QUERY_SECRET_WORDS for w in _words(name)) and not is_env_name_key(name)


def url_credentials(text: str) -> list[str]:
    """The credential parts of every URL in ``text``: user:password and secret query values."""
    if not isinstance(text, str) or "://" not in text:
        return []
    found = [m.group("userinfo") for m in _URL_USERINFO.finditer(text)]
    for url in _urls(text):
        found += [m.group("value") for m in _URL_QUERY.finditer(url)
                  if _is_query_secret(m.group("name")) and m.group("value")]
    return found


def _urls(text: str) -> list[str]:
    """Each URL in text, from its scheme to the next whitespace or quote."""
    return [text[m.start():].split()[0].split("'")[0].split('"')[0] for m in _HAS_SCHEME.finditer(text)]


def redact_urls(text: str) -> str:
    """``https://user:pw@host/x?token=abc&n=1`` -> ``https://***@host/x?token=***&n=1`` in any text."""
    if not isinstance(text, str) or "://" not in text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)

    def query(m: re.Match) -> str:
        if _is_query_secret(m.group("name")) and m.group("value"):
            return f"{m.group('sep')}{m.group('name')}={REDACTED}"
        return m.group(0)

    out, pos = [], 0
    for m in _HAS_SCHEME.finditer(text):  # only query strings of URLs, not every a=b in a log line
        end = m.start() + len(_urls(text[m.start():])[0])
        out.append(text[pos:m.start()])
        out.append(_URL_QUERY.sub(query, text[m.start():end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _env_settings_near(cfg: Any, path: str) -> list[str]:
    """The *_env keys beside ``path`` (``exchange.api_key_env (COINBASE_API_KEY)``): where credentials go."""
    node = cfg
    parts = path.split(".")[:-1]
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return []
    if not isinstance(node, dict):
        return []
    prefix = ".".join(parts)
    return [f"{prefix + '.' if prefix else ''}{k}" + (f" ({v})" if isinstance(v, str) and ENV_NAME.match(v) else "")
            for k, v in node.items() if is_env_name_key(k) and is_secret_key(str(k)[: -len("_env")] or "x")]


def url_credential_kinds(value: str) -> list[str]:
    """What kinds of credentials ``value``'s URLs carry: user:password, a secret query parameter."""
    kinds = []
    if _URL_USERINFO.search(value):
        kinds.append("user:password")
    names = sorted({m.group("name") for u in _urls(value) for m in _URL_QUERY.finditer(u)
                    if _is_query_secret(m.group("name")) and m.group("value")})
    if names:
        kinds.append("query parameter " + ", ".join(f"{n}=" for n in names))
    return kinds


def url_credential_message(path: str, value: str, env_settings: list[str]) -> str:
    """One sentence: which key holds which credentials, and the environment settings to use instead."""
    where = (" and ".join(env_settings) if env_settings else
             "the environment variables named by *_env settings (exchange.api_key_env, exchange.api_secret_env)")
    return (f"'{path}' holds credentials in its URL ({' and '.join(url_credential_kinds(value))}): "
            f"give the URL without them and export the credentials in {where}")


def url_credential_problem(cfg: Any, path: str, value: str) -> ConfigProblem:
    """The refusal of a URL that carries credentials, naming the environment settings to use instead."""
    return ConfigProblem(
        code="secret_in_url",
        path=path,
        found=redact_urls(value),
        expected="a URL without user:password or token parameters (credentials come from the environment)",
        message=url_credential_message(path, value, _env_settings_near(cfg, path)),
    )


def _walk(node: Any, prefix: str) -> Iterable[tuple[str, Any, Any]]:
    """Yield (path, key, value) for every entry of nested dicts and lists."""
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            yield path, k, v
            yield from _walk(v, path)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            path = f"{prefix}.{i}" if prefix else str(i)
            yield path, i, v
            yield from _walk(v, path)


def _redacted_found(value: Any) -> str:
    size = len(value) if isinstance(value, str) else len(str(value))
    return f"{REDACTED} (a literal value, {size} chars)"


def find_secret_values(cfg: Any) -> list[ConfigProblem]:
    """Every literal secret in the config, as problems; the values themselves are never repeated."""
    problems: list[ConfigProblem] = []
    for path, key, value in _walk(cfg, ""):
        if is_secret_path(path) and _holds_literal(value) and not isinstance(value, (dict, list)):
            problems.append(ConfigProblem(
                code="secret_in_config",
                path=path,
                found=_redacted_found(value),
                expected=f"no secret in config: name an environment variable instead, e.g. {key}_env: MY_{str(key).upper()}",
                message=f"'{path}' holds a literal secret; secrets come from environment variables only",
            ))
        elif is_env_name_key(key) and value is not None and not (isinstance(value, str) and ENV_NAME.match(value)):
            # An env-name key whose value is not a variable name is most likely a pasted secret.
            problems.append(ConfigProblem(
                code="secret_env_not_a_name",
                path=path,
                found=_redacted_found(value) if isinstance(value, (str, int, float)) else type(value).__name__,
                expected="the NAME of an environment variable, e.g. COINBASE_API_KEY (letters, digits, _)",
                message=f"'{path}' must name an environment variable, not hold its value",
            ))
        elif isinstance(value, str) and url_credentials(value):
            problems.append(url_credential_problem(cfg, path, value))
        elif looks_like_secret_value(value):
            problems.append(ConfigProblem(
                code="secret_in_config",
                path=path,
                found=f"{REDACTED} (a private key)",
                expected="no private key in config: load it from an environment variable",
                message=f"'{path}' holds a private key; secrets come from environment variables only",
            ))
    return problems


def _pasted_into_env_key(key: Any, value: Any) -> bool:
    """An env-name key (api_key_env) holding something that is not a variable name: a pasted secret."""
    return (is_env_name_key(key) and isinstance(value, (str, int, float)) and not isinstance(value, bool)
            and not (isinstance(value, str) and (ENV_NAME.match(value) or value.strip() in ("", "???"))))


def redact(cfg: Any, _path: str = "") -> Any:
    """A copy of cfg safe to write: values under secret-looking keys become "***".

    Env-var NAME keys (api_key_env) are kept when they hold a variable name: the name is not the
    secret and helps debugging; anything else there is most likely the pasted secret itself.
    """
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            path = f"{_path}.{k}" if _path else str(k)
            if (is_secret_path(path) and _holds_literal(v)) or _pasted_into_env_key(k, v):
                out[k] = REDACTED
            else:
                out[k] = redact(v, path)
        return out
    if isinstance(cfg, list):
        return [redact(v, f"{_path}.{i}") for i, v in enumerate(cfg)]
    if isinstance(cfg, tuple):
        return tuple(redact(v) for v in cfg)
    if looks_like_secret_value(cfg):
        return REDACTED
    if isinstance(cfg, str):
        return redact_urls(cfg)
    return cfg


_OVERRIDE = re.compile(r"^(?P<prefix>[+~]{0,2})(?P<key>[^=]+?)=(?P<value>.*)$", re.S)


def redact_override(text: str) -> str:
    """A command-line override safe to write: `exchange.api_secret=abc` -> `exchange.api_secret=***`."""
    m = _OVERRIDE.match(text)
    if not m:
        return text
    key = m.group("key").split("@")[0]
    leaf = key.rsplit(".", 1)[-1]
    value = m.group("value")
    if is_secret_path(key) or _pasted_into_env_key(leaf, value) or looks_like_secret_value(value):
        return f"{m.group('prefix')}{m.group('key')}={REDACTED}"
    return redact_urls(text)


# A token is key=value where the value may hold spaces inside quotes ('a b', "a b"), escaped
# (a\ b) or inside brackets ([a, b]): Hydra logs `+exchange.api_secret='a b c'` as typed.
_OVERRIDE_TOKEN = re.compile(
    r"""(?<!\S)[^\s=]+=(?:'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|\[[^\]]*\]?|\{[^}]*\}?|\\.|[^\s'"\\])*""",
    re.S)


class OverrideFilter(logging.Filter):
    """A logging filter that redacts command-line overrides in records (redact_override per token).

    Hydra's launchers log each job's overrides (``#0 : +exchange.api_secret=...``) before any job
    runs, i.e. before rulebook's own log redaction exists: conf/hydra/hydra_logging/rulebook.yaml
    puts this filter on Hydra's console handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logger's problem; leave the record as is
            return True
        if "=" not in message and "://" not in message:
            return True
        clean = redact_urls(_OVERRIDE_TOKEN.sub(lambda m: redact_override(m.group(0)), message))
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def env_names(cfg: Any) -> list[str]:
    """Names of the environment variables the config points at (values of *_env keys)."""
    return sorted({v for _, k, v in _walk(cfg, "") if is_env_name_key(k) and isinstance(v, str) and ENV_NAME.match(v)})


# The shell's working-directory variables match "pwd" but hold a path, not a password:
# scrubbing them replaced Hydra's saved runtime.cwd with "***".
_SHELL_NAMES = frozenset({"PWD", "OLDPWD"})


def secret_values(cfg: Any, env: Mapping[str, str], named_only: bool = False) -> list[str]:
    """The secret values to keep out of every output: the variables the config names, plus (unless
    ``named_only``) any variable whose own name looks secret (COINBASE_API_SECRET, GITHUB_TOKEN...)."""
    names = set(env_names(cfg))
    if not named_only:
        names |= {n for n in env if is_secret_key(n) and n not in _SHELL_NAMES}
    values: set[str] = set()
    # user:password and query tokens typed into URLs of the config, and their parts
    for _, _, v in _walk(cfg, ""):
        for cred in url_credentials(v) if isinstance(v, str) else ():
            values.update(part for part in (cred, *cred.split(":", 1)[1:]) if len(part) >= MIN_SCRUB_LEN)
    for name in names:
        value = env.get(name)
        if not isinstance(value, str) or len(value) < MIN_SCRUB_LEN:
            continue
        values.add(value)
        # Multi-line secrets (PEM keys) also leak line by line, or with escaped newlines.
        if "\n" in value:
            values.add(value.replace("\n", "\\n"))
            values.update(line.strip() for line in value.splitlines() if len(line.strip()) >= 16)
    # Longest first, so a secret containing another is replaced whole.
    return sorted(values, key=lambda s: (-len(s), s))


def scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and s in text:
            text = text.replace(s, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """A logging filter that replaces known secret values in records (message, args, traceback)."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= MIN_SCRUB_LEN]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logger's problem; leave the record as is
            message = str(record.msg)
        # Credentials inside URLs (a failed request's URL, a config line) are redacted by shape,
        # even when their values are not known secrets.
        clean = redact_urls(scrub(message, self.secrets))
        if clean != message:
            record.msg, record.args = clean, ()
        if not self.secrets and not record.exc_info:
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_urls(scrub(record.exc_text, self.secrets))
        if record.stack_info:
            record.stack_info = redact_urls(scrub(record.stack_info, self.secrets))
        return True


def install_log_redaction(secrets: Iterable[str], logger_names: Iterable[str] = ("", "ccxt")) -> SecretFilter:
    """Attach one SecretFilter to every handler of the named loggers (root and ccxt by default).

    Handler filters see records propagated from child loggers (ccxt.base.exchange, ...), which
    logger filters do not. Call again after logging is reconfigured; returns the filter.
    """
    flt = SecretFilter(secrets)
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            for old in [f for f in handler.filters if isinstance(f, SecretFilter)]:
                handler.removeFilter(old)
            handler.addFilter(flt)
    return flt
