"""Live-clock modes: dry_run, paper and live run the backtest's cycle on a live clock.

Public API: :func:`engine.live.loop.run_session` (one bounded session), :class:`LiveSettings`,
:class:`StateStore` (the SQLite state file), :func:`engine.live.shadow.compare` (replay a
dry_run, paper or live account as a backtest and list every decision that differs). The exact
three-mode comparison is engine/modes/parity.py.
"""
from .errors import LiveError
from .settings import LiveSettings

__all__ = ["LiveError", "LiveSettings"]
