"""Cerberus validators for rulebook's own schemas: one per thread and schema, built once.

Cerberus checks a schema against its own meta-schema whenever a process builds the first
validator for it: about 50 ms for the composed config schema and the five rule-file schemas
together, paid by every run before any user input is looked at (3 ms without the check;
``python benchmarks/claims.py``). Our schemas are code, not user input, so that check
belongs in the test suite: tests/test_schemas_valid.py builds every registered schema with
the check on, and a broken schema fails there. At run time the check is skipped.

Cerberus validators are not thread-safe (hot reload reads rule files off the main thread),
hence one per thread.
"""
from __future__ import annotations

import threading
from typing import Any

from cerberus import Validator
from cerberus.schema import DefinitionSchema

_local = threading.local()


class _CheckedInTests(DefinitionSchema):
    """A schema Cerberus takes as already valid (it is: tests/test_schemas_valid.py)."""

    def validate(self, schema: Any = None) -> None:
        return None


def validator(schema_id: str, schema: dict, cls: type[Validator] = Validator) -> Validator:
    """The validator for one of rulebook's schemas, with unknown keys rejected."""
    cache = getattr(_local, "validators", None)
    if cache is None:
        cache = _local.validators = {}
    key = (schema_id, cls)
    v = cache.get(key)
    if v is None:
        v = cls(allow_unknown=False)
        v.schema = _CheckedInTests(v, schema)
        cache[key] = v
    return v
