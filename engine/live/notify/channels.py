"""The four channels' own webhook formats, posted with ``requests`` (which ccxt brings):

- webhook: the alert as JSON (event, level, kind, message, text, account, mode, t, wall_ms, ids);
- slack: an incoming webhook, ``{"text": ...}``;
- discord: a channel webhook, ``{"content": ...}`` (at most 2,000 characters);
- telegram: ``POST {api_url}/bot<token>/sendMessage`` with ``chat_id`` and ``text`` (4,096).

URLs and tokens come from the environment at send time and are redacted from every error text.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import requests

from engine.live.notify.settings import Channel

MAX_TEXT = {"discord": 2000, "telegram": 4096, "slack": 3900, "webhook": 20000}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    retry: bool  # worth trying again (network error, 429, 5xx)
    error: str = ""  # redacted
    retry_after_s: float | None = None


class Sender:
    """One channel's HTTP client (a pooled session) and its secrets, read from the environment."""

    def __init__(self, ch: Channel, timeout_s: float):
        self.ch = ch
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.secrets = {env: os.environ.get(env, "") for env in ch.secret_envs()}

    def redact(self, text: str) -> str:
        for env, value in self.secrets.items():
            if value:
                text = text.replace(value, f"${{{env}}}")
        return text

    def request(self, text: str, alert: dict) -> tuple[str, dict]:
        """(url, JSON body) in the channel's own format."""
        ch, text = self.ch, clip(text, MAX_TEXT[self.ch.type])
        if ch.type == "telegram":
            return (f"{ch.api_url.rstrip('/')}/bot{self.secrets[ch.token_env]}/sendMessage",
                    {"chat_id": self.secrets[ch.chat_id_env], "text": text, "disable_web_page_preview": True})
        url = self.secrets[ch.url_env]
        if ch.type == "slack":
            return url, {"text": text}
        if ch.type == "discord":
            return url, {"content": text, "allowed_mentions": {"parse": []}}
        return url, {**alert, "text": text}

    def send(self, text: str, alert: dict) -> Outcome:
        url, body = self.request(text, alert)
        try:
            r = self.http.post(url, json=body, timeout=self.timeout_s)
        except requests.RequestException as e:
            return Outcome(False, True, self.redact(f"{type(e).__name__}: {e}"))
        if 200 <= r.status_code < 300:
            return Outcome(True, False)
        after = None
        if r.status_code == 429:
            try:
                after = float(r.headers.get("Retry-After", ""))
            except ValueError:
                after = None
        retry = r.status_code == 429 or r.status_code >= 500
        return Outcome(False, retry, self.redact(f"HTTP {r.status_code}: {r.text[:200]}"), after)

    def close(self) -> None:
        self.http.close()


def clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
