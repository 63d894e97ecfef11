"""Command-line overrides that Hydra accepts but that do not do what they say.

Hydra merges a mapping given on the command line into the mapping the config groups composed:
``risk.params.theme_caps={}`` adds nothing and the profile's caps stay, silently. Such an
override is refused, with the two overrides that do replace a mapping (delete, then add).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import paths
from .problems import ConfigProblem


def _parsed(overrides: Sequence[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:  # Hydra refused them before anything ran; nothing to add here
        return []


def check_overrides(cfg: dict, overrides: Sequence[str]) -> list[ConfigProblem]:
    """One problem per ``key={}`` that merges into a non-empty composed mapping (a silent no-op)."""
    problems: list[ConfigProblem] = []
    for o in _parsed(overrides):
        if o.is_delete() or o.is_add() or o.is_sweep_override() or o.package is not None:
            continue
        value = o.value()
        if not (isinstance(value, dict) and not value):
            continue
        key = o.key_or_group
        composed: Any = paths.get(cfg, key, None)
        if not isinstance(composed, dict) or not composed:
            continue
        problems.append(ConfigProblem(
            "empty_mapping_merges", key, f"{key}={{}} (the composed value stays {paths.show(composed)})",
            f"to replace the mapping, delete it and add the new one: '~{key}' '+{key}={{...}}'",
            f"'{key}={{}}' changes nothing: Hydra merges a mapping given on the command line into the "
            f"default one, so every entry of the default stays",
        ))
    return problems
