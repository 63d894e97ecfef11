"""Canonical, byte-deterministic JSON for results and sweep summaries.

Floats are written with Python's shortest round-trip ``repr`` (the same on every platform),
``-0.0`` becomes ``0.0``, NaN and infinities become ``null`` (JSON has no spelling for
them), numpy scalars and arrays become plain numbers and lists, and keys are sorted.
Output is compact (no indent) so the C encoder writes a year of bars in milliseconds;
pretty-print with ``python -m json.tool`` to read it. Files are written atomically: a temp file in the same directory, then ``os.replace``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from engine.fileio import atomic_write_text


def clean(value: Any) -> Any:
    """Return ``value`` as plain JSON-able Python with NaN/inf replaced by ``None``."""
    t = type(value)
    if t is str or value is None:  # the common leaves first: this runs once per value of a results dict
        return value
    if t is float:
        return value if value != 0.0 and math.isfinite(value) else (0.0 if value == 0.0 else None)
    if t is int:
        return value
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            return None
        return 0.0 if f == 0.0 else f  # folds -0.0
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def dumps(value: Any, cleaned: bool = False, indent: int | None = None) -> str:
    """Canonical JSON text: sorted keys, compact separators (the fast C encoder) unless
    ``indent`` asks for a file people diff, trailing newline."""
    return json.dumps(value if cleaned else clean(value), sort_keys=True,
                      separators=(",", ":") if indent is None else (",", ": "), indent=indent,
                      ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: Path, value: Any, cleaned: bool = False, indent: int | None = None) -> Path:
    return atomic_write_text(path, dumps(value, cleaned, indent))
