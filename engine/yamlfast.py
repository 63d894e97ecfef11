"""YAML parsing through libyaml when PyYAML was built with it.

The C parser builds the same nodes (values are still resolved and constructed by PyYAML's
Python resolver and constructors), about 18x faster than the pure-Python scanner on sanity_checks.yaml
(``python benchmarks/claims.py``): a
backtest reads sanity_checks.yaml and five rule files on start-up. A document the C parser
rejects is parsed again by the pure-Python loader, so the error raised (message, line) is
exactly the one users saw before.
"""
from __future__ import annotations

from typing import Any

import yaml

_CSafeLoader = getattr(yaml, "CSafeLoader", None)


def c_loader(py_loader: type) -> type | None:
    """A libyaml-parsing twin of ``py_loader`` (a ``yaml.SafeLoader`` subclass) with its
    constructors; None without libyaml."""
    if _CSafeLoader is None:
        return None
    twin = type("C" + py_loader.__name__, (_CSafeLoader,), {})
    twin.yaml_constructors = dict(py_loader.yaml_constructors)
    twin.yaml_multi_constructors = dict(py_loader.yaml_multi_constructors)
    return twin


def load(text: str, loader: type, c_twin: type | None) -> Any:
    """``yaml.load(text, Loader=loader)``, parsed by ``c_twin`` when there is one."""
    if c_twin is not None:
        try:
            return yaml.load(text, Loader=c_twin)  # noqa: S506 - a SafeLoader twin
        except Exception:  # noqa: BLE001 - the Python loader raises the error users know
            pass
    return yaml.load(text, Loader=loader)  # noqa: S506 - callers pass SafeLoader subclasses


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, parsed by libyaml when available."""
    return load(text, yaml.SafeLoader, _CSafeLoader)


_CSafeDumper = getattr(yaml, "CSafeDumper", None)


def safe_dump(data: Any, **options: Any) -> str:
    """``yaml.safe_dump(data, **options)``, emitted by libyaml when available: the same text for
    the plain data rulebook dumps (tests/test_speed_helpers.py), about 5x faster on the composed
    config (``python benchmarks/claims.py``)."""
    return yaml.dump(data, Dumper=_CSafeDumper or yaml.SafeDumper, **options)
