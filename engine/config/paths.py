"""Dotted key paths over nested plain dicts (the composed config)."""
from __future__ import annotations

from typing import Any

MISSING = object()


def join(*parts: Any) -> str:
    return ".".join(str(p) for p in parts if p != "")


def get(cfg: Any, path: str, default: Any = MISSING) -> Any:
    node = cfg
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return default
    return node


def has(cfg: Any, path: str) -> bool:
    return get(cfg, path) is not MISSING


def pop(cfg: dict, path: str) -> Any:
    """Remove and return the value at path (MISSING if absent); the parents stay."""
    *parents, leaf = path.split(".")
    node = cfg
    for part in parents:
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    if not isinstance(node, dict) or leaf not in node:
        return MISSING
    return node.pop(leaf)


def put(cfg: dict, path: str, value: Any) -> bool:
    """Set path to value, creating dict parents; False if a parent exists but is not a dict."""
    *parents, leaf = path.split(".")
    node = cfg
    for part in parents:
        nxt = node.get(part, MISSING)
        if nxt is MISSING or nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            return False
        node = nxt
    node[leaf] = value
    return True


def overlaps(a: str, b: str) -> bool:
    """True when one path is the other or one of its ancestors."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def show(value: Any, limit: int = 60) -> str:
    """A short, stable rendering of a value for messages."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, float):
        text = format(value, "g")
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {show(v, 20)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
