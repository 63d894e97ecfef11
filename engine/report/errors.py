"""Errors the report layer raises on bad input (a results dict or a sweep directory)."""
from __future__ import annotations


class ReportError(ValueError):
    """A results dict, a run directory or a sweep directory is not what the report expects.

    The message names where (key path or file), what was found and what was expected.
    """
