"""Canonical, byte-deterministic JSON for results and sweep summaries.

Floats are written with Python's shortest round-trip ``repr`` (the same on every platform),
``-0.0`` becomes ``0.0``, NaN and infinities become ``null`` (JSON has no spelling for
them), numpy scalars and arrays become plain numbers and lists, and keys are sorted.
Files are written atomically: a temp file in the same directory, then ``os.replace``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def clean(value: Any) -> Any:
    """Return ``value`` as plain JSON-able Python with NaN/inf replaced by ``None``."""
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


def dumps(value: Any) -> str:
    """Canonical JSON text (sorted keys, 1-space indent, trailing newline)."""
    return json.dumps(clean(value), sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: Path, value: Any) -> Path:
    return atomic_write_text(path, dumps(value))
