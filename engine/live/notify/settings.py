"""``live.notify`` (conf/live/default.yaml): the channels alerts are delivered to, and how.

A channel names the environment variables that hold its URL or token, never the values: the
config (and so every file a run writes from it) holds no secret."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from engine.live.errors import LiveError

CHANNEL_TYPES = ("webhook", "telegram", "slack", "discord")
EVENTS = ("fill", "error", "warning", "halt", "reload", "burn_in", "kill")
LEVELS = ("info", "warning", "error")
TELEGRAM_API = "https://api.telegram.org"


@dataclass(frozen=True)
class Channel:
    name: str
    type: str  # webhook | telegram | slack | discord
    url_env: str | None = None  # webhook, slack, discord: the variable holding the webhook URL
    token_env: str | None = None  # telegram: the variable holding the bot token ...
    chat_id_env: str | None = None  # ... and the one holding the chat id
    api_url: str = TELEGRAM_API  # telegram's API root (a local receiver in tests)
    events: tuple[str, ...] = ("fill", "error", "halt", "reload", "burn_in", "kill")
    min_level: str = "info"

    def secret_envs(self) -> tuple[str, ...]:
        return tuple(e for e in (self.url_env, self.token_env, self.chat_id_env) if e)


@dataclass(frozen=True)
class NotifySettings:
    channels: tuple[Channel, ...] = ()
    rate_per_minute: int = 20  # messages per channel per minute; more due alerts go out as one digest
    dedup_s: float = 300.0  # the same alert (kind and message) again within this: recorded, not sent
    max_attempts: int = 8  # deliveries tried before an alert is marked failed
    retry_base_s: float = 1.0  # backoff: base * 2^(attempt-1), capped at retry_max_s (or Retry-After)
    retry_max_s: float = 300.0
    timeout_s: float = 5.0  # one HTTP request
    poll_s: float = 0.2  # how often new alerts and fills are looked for
    drain_s: float = 5.0  # at session end, how long due deliveries may still take before the loop exits

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "NotifySettings":
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        for k in data:
            if k not in names:
                raise LiveError(f"live.notify.{k}: unknown key (expected one of {', '.join(sorted(names))})")
        chans = []
        for j, c in enumerate(data.pop("channels", None) or []):
            chans.append(_channel(dict(c), f"live.notify.channels[{j}]"))
        seen = [c.name for c in chans]
        dup = sorted({n for n in seen if seen.count(n) > 1})
        if dup:
            raise LiveError(f"live.notify.channels: name {dup[0]!r} used twice; expected one name per channel")
        s = cls(channels=tuple(chans), **data)
        if s.rate_per_minute < 1 or s.max_attempts < 1 or s.poll_s <= 0 or s.timeout_s <= 0:
            raise LiveError(f"live.notify: rate_per_minute {s.rate_per_minute}, max_attempts {s.max_attempts}, "
                            f"poll_s {s.poll_s}, timeout_s {s.timeout_s}; expected >= 1, >= 1, > 0, > 0")
        return s

    def check_env(self) -> None:
        """At session start: every variable a channel names is set (its value is never shown)."""
        for c in self.channels:
            for env in c.secret_envs():
                if not os.environ.get(env):
                    raise LiveError(f"live.notify channel {c.name!r} ({c.type}) reads ${env}, which is not set; "
                                    f"export it (its value is read from the environment only)")


def _channel(c: dict, path: str) -> Channel:
    names = {f.name for f in fields(Channel)}
    for k in c:
        if k not in names:
            raise LiveError(f"{path}.{k}: unknown key (expected one of {', '.join(sorted(names))})")
    kind = c.get("type")
    if kind not in CHANNEL_TYPES:
        raise LiveError(f"{path}.type is {kind!r}; expected one of {', '.join(CHANNEL_TYPES)}")
    c.setdefault("name", kind)
    for k in ("url_env", "token_env", "chat_id_env"):
        v = c.get(k)
        if v is not None and (not isinstance(v, str) or "://" in v or not v.replace("_", "").isalnum()):
            raise LiveError(f"{path}.{k} is {'a URL' if isinstance(v, str) and '://' in v else repr(v)}; expected the "
                            "NAME of an environment variable holding it (secrets never go in a config file)")
    need = ("token_env", "chat_id_env") if kind == "telegram" else ("url_env",)
    for k in need:
        if not c.get(k):
            raise LiveError(f"{path} ({kind}) needs {k}: the name of the environment variable holding it")
    events = tuple(c.get("events") or Channel.events)
    bad = [e for e in events if e not in EVENTS]
    if bad:
        raise LiveError(f"{path}.events names {bad[0]!r}; expected some of {', '.join(EVENTS)}")
    if c.get("min_level", "info") not in LEVELS:
        raise LiveError(f"{path}.min_level is {c.get('min_level')!r}; expected one of {', '.join(LEVELS)}")
    c["events"] = events
    return Channel(**c)
