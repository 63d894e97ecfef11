"""Cross-check `<group>.params` overrides against the params the rule file declares.

The rule loader owns rule files; this only reads each file's top-level `params:` names so that a
misspelt override (`+risk.params.max_positionz=3`) is reported with the other config problems,
in mode=validate too, instead of being silently ignored.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from engine.paths import rule_folders

import yaml

from engine import yamlfast
from engine.paths import leaves_root

from . import paths
from .problems import ConfigProblem

RULE_GROUPS = ("regime", "strategy", "universe", "risk", "execution")
_cache: dict[tuple[str, int], frozenset[str] | None] = {}


def _declared_params(path: Path) -> frozenset[str] | None:
    """The rule file's param names; None when it cannot be read as a mapping (the loader says why)."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    key = (str(path), stamp)
    if key not in _cache:
        try:
            doc = yamlfast.safe_load(path.read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            doc = None
        params = doc.get("params") if isinstance(doc, dict) else None
        _cache[key] = frozenset(str(k) for k in params) if isinstance(params, dict) else None
    return _cache[key]


def check_rule_params(cfg: dict, root: Path, known_bad: list[str]) -> list[ConfigProblem]:
    rules_dir = cfg.get("rules_dir")
    if not isinstance(rules_dir, str) or not rules_dir:
        return []
    folders = rule_folders(rules_dir, root)  # the project's files, then the built-ins
    problems: list[ConfigProblem] = []
    # each rule-file group, and each strategy of a book (book.strategies.<name>)
    strategies = paths.get(cfg, "book.strategies", None)
    groups = list(RULE_GROUPS) + ([f"book.strategies.{k}" for k in strategies] if isinstance(strategies, dict) else [])
    for group in groups:
        file = paths.get(cfg, f"{group}.file")
        params = paths.get(cfg, f"{group}.params")
        if not isinstance(file, str) or any(paths.overlaps(f"{group}.file", b) for b in known_bad):
            continue
        base, path = folders.find(file)
        outside = leaves_root(base, path)
        if outside is not None:  # the rule loader refuses it (engine/rules/loader.py)
            problems.append(ConfigProblem(
                "rule_file_outside", f"{group}.file", repr(file), f"a path inside rules_dir ({base})",
                f"rule file '{file}' of {group} leads outside rules_dir (to {outside})"))
            continue
        if not path.is_file():
            problems.append(ConfigProblem(
                "rule_file_missing", f"{group}.file", repr(file), f"a file under {folders.primary}",
                f"rule file '{file}' of {group} not found in rules_dir ({rules_dir})"))
            continue
        declared = _declared_params(path)
        if declared is None or not isinstance(params, dict):
            continue
        for name in params:
            if str(name) in declared:
                continue
            problems.append(ConfigProblem(
                "unknown_param", f"{group}.params.{name}", paths.show(params[name]),
                f"one of the params of {rules_dir}/{file}: " + ", ".join(sorted(declared)),
                f"'{name}' is not a param of {rules_dir}/{file}",
                tuple(difflib.get_close_matches(str(name), sorted(declared), n=3, cutoff=0.6)),
            ))
    return problems
