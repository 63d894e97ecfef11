"""The month plan's first pass, remembered per symbol beside its month files.

A chunked run's first pass (engine/market/months.py ``_scan``) decodes every month file of a
symbol to learn its first and last bar, gaps and tick: 2 s per month of 200 products of 1-minute
bars, every run, before any month is run. Its answer depends only on the files it read (and the
range asked), so it is kept in ``<root>/<timeframe>/<SYMBOL>/.scan.json`` and used again while
every one of those files is the file it was computed from.

Why not per-file partial results combined across months: the tick (``loaders.infer_price_increment``)
reads an even sample of the whole range's prices whose positions depend on the total bar count,
so no per-month statistic gives it exactly; the whole symbol's answer is kept instead.

Trusted only when all of these match what it was computed from (else the files are read again and
the entry replaced):
- the range (``since_ms``, ``until_ms``) and the month files' names, in order;
- each file's size, mtime_ns, ctime_ns and inode (an atomic replace makes a new inode and ctime;
  a copy that keeps mtime still changes inode and ctime);
- a digest of the source of the code that computes the answer (``_CODE``): a changed rule for
  gaps or ticks makes every entry stale without a version to bump by hand.
``MarketStore.write`` also deletes the symbol's entry before it replaces a month, so a rewrite
inside one timestamp tick cannot pass for the old file. Writing the entry is best effort: a
read-only store is read in full each run, as before.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

NAME = ".scan.json"
_digest: str | None = None
_CODE: list[Any] = []  # filled by engine/market/months.py: the functions (and constants) the answer comes from


def code_digest() -> str:
    """The digest of ``_CODE``'s source; "" when the source cannot be read (an install without
    .py files): nothing is then kept or trusted, every plan reads the files."""
    global _digest
    if _digest is None:
        h = hashlib.sha256()
        try:
            for f in _CODE:  # a function's source, a constant's value
                h.update((inspect.getsource(f) if callable(f) else repr(f)).encode())
            _digest = h.hexdigest()[:16]
        except (OSError, TypeError):
            _digest = ""
    return _digest


def signature(files: list[Path]) -> list[list]:
    """What each file is now: [name, size, mtime_ns, ctime_ns, inode]."""
    out = []
    for p in files:
        st = os.stat(p)
        out.append([p.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return out


def key(files: list[Path], since_ms: int | None, until_ms: int | None) -> dict[str, Any]:
    """What an answer for ``files`` as they are now is kept under: taken before they are read, so
    a file replaced while it was read leaves an entry that no longer matches."""
    return {"code": code_digest(), "since": since_ms, "until": until_ms, "files": signature(files)}


def load(folder: Path, want: dict[str, Any]) -> tuple[bool, Any]:
    """(True, the kept answer) when the symbol's entry was kept under ``want``, else (False, None)."""
    if not want["code"]:
        return False, None
    try:
        entry = json.loads((folder / NAME).read_text(encoding="utf-8"))
        if entry.get("key") == want:
            return True, entry["value"]
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        pass  # missing, unreadable or damaged: the files are read
    return False, None


def save(folder: Path, under: dict[str, Any], value: Any) -> None:
    """Keep ``value`` (JSON) under the key ``under``: written to a temp file, then renamed."""
    from engine.market.store import _atomic_write_bytes

    if not under["code"]:
        return
    try:
        text = json.dumps({"key": under, "value": value})
        _atomic_write_bytes(folder / NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except OSError:
        pass  # a read-only store: read in full next time too


def drop(folder: Path) -> None:
    """Forget the symbol's entry (before its month files change)."""
    (folder / NAME).unlink(missing_ok=True)
