"""The named warnings of one run: each is logged once and listed, by its stable code, in
results.json's ``diagnostics`` and the report's warning box (so a silent fallback is never silent).

Warnings found before the run's outputs exist (the config check, the product table) are noted
here while the run is being collected (app.main opens :func:`collecting`); the mode that writes
the results reads them with :func:`noted`. Outside a collection, :func:`note` only drops them.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Diagnostic:
    code: str  # stable: tests, sweeps and readers of results.json key on it
    message: str


_bag: ContextVar[list[Diagnostic] | None] = ContextVar("rulebook_run_warnings", default=None)


@contextmanager
def collecting() -> Iterator[list[Diagnostic]]:
    token = _bag.set([])
    try:
        yield _bag.get()
    finally:
        _bag.reset(token)


def note(code: str, message: str) -> None:
    bag = _bag.get()
    d = Diagnostic(code, message)
    if bag is not None and d not in bag:
        bag.append(d)


def warn(logger, code: str, message: str) -> None:
    """Log a named WARNING and note it for the run's results."""
    logger.warning("[%s] %s", code, message)
    note(code, message)


def noted() -> list[Diagnostic]:
    return list(_bag.get() or [])


def as_dicts(diagnostics: Iterable[Diagnostic]) -> list[dict]:
    return [asdict(d) for d in diagnostics]
