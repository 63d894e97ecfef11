"""Hydra's and PyYAML's errors about what the user typed or wrote, as rulebook's one-line errors.

Hydra reports a mistake on the command line or in a ``conf/`` file in its own words, over several
lines, with exit code 1 (a YAML error even with a 60-line traceback). ``describe()`` turns each into
the format of every other user error: one line naming the override or file (line, column), what was
found and what is expected, with a did-you-mean where a close name exists. ``engine.cli`` prints it
and exits 2.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

USER_ERRORS = (HydraException, OmegaConfBaseException, yaml.YAMLError)
GRAMMAR = "key=value, +key=value to add a key, group=option; see Hydra's override grammar"


def did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _shown(path: str, roots: Sequence[Path]) -> str:
    """A conf file relative to the config folder it is in (``conf/strategy/x.yaml``)."""
    p = Path(path)
    for root in roots:
        try:
            return f"{root.name}/{p.resolve().relative_to(root.resolve()).as_posix()}"
        except (ValueError, OSError):
            continue
    return path


def _yaml(exc: yaml.YAMLError, roots: Sequence[Path]) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    context = getattr(exc, "context", None)
    if mark is None:
        return f"a conf/ file is not valid YAML: {problem}"
    where = f"{_shown(mark.name, roots)} line {mark.line + 1} col {mark.column + 1}"
    if problem.startswith("found duplicate key"):
        key = problem.removeprefix("found duplicate key").strip()
        return f"{where}: key {key!r} appears twice in one mapping; expected each key once"
    ctx = f" ({' '.join(str(context).split())})" if context else ""
    return f"{where}: {problem}{ctx}; expected valid YAML"


def _unparsable(overrides: Sequence[str]) -> str | None:
    """The first override Hydra's grammar rejects on its own (Hydra's message does not name it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for o in overrides:
        try:
            parser.parse_override(o)
        except Exception:  # noqa: BLE001 - this is the one
            return o
    return None


def _failing_override(overrides: Sequence[str], key: str) -> str | None:
    for o in overrides:
        k = o.split("=", 1)[0].lstrip("+~")
        if k == key:
            return o
    return None


def _unknown_key(exc: ConfigCompositionException, overrides: Sequence[str],
                 keys_at: Callable[[str, list[str]], list[str] | None]) -> str | None:
    cause = exc.__cause__
    full_key = str(getattr(cause, "full_key", "") or "")
    m = re.match(r"Could not override '([^']+)'", str(exc))
    key = full_key or (m.group(1) if m else "")
    if not key:
        return None
    typed = _failing_override(overrides, key) or key
    parent, _, leaf = key.rpartition(".")
    others = [o for o in overrides if o != typed]
    options = keys_at(parent, others)
    where = f"{parent} has no key {leaf!r}" if parent else f"the config has no top-level key {leaf!r}"
    hint = did_you_mean(leaf, options) if options else ""
    listing = f" (its keys: {', '.join(options)})" if options and not hint and len(options) <= 12 else ""
    return f"override {typed!r}: {where}{hint}{listing}; expected an existing key, or +{key}=... to add one"


def _missing_option(exc: MissingConfigException, overrides: Sequence[str]) -> str:
    text = str(exc)
    m = re.search(r"Could not find '([^']+)'", text)
    missing = m.group(1) if m else str(getattr(exc, "missing_cfg_file", ""))
    group, _, option = missing.rpartition("/")
    options = list(getattr(exc, "options", None) or [])
    if not group:
        return f"config {missing!r} not found in any config folder; expected a conf/{missing}.yaml"
    typed = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") == group), None)
    head = f"override {typed!r}: " if typed else ""
    if options:
        return (f"{head}config group {group!r} has no option {option!r}{did_you_mean(option, options)}; "
                f"expected one of {', '.join(options)}")
    return f"{head}config group {group!r} has no option {option!r}; expected a conf/{missing}.yaml"


def _user_setting_error(exc: BaseException) -> BaseException | None:
    """A rulebook UserError, itself or wrapped by Hydra (instantiating a plugin from its config):
    its own message already names the key, what was found and what is expected."""
    from engine.errors import UserError

    seen = set()
    cause = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, UserError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def describe(exc: BaseException, overrides: Sequence[str], roots: Sequence[Path],
             keys_at: Callable[[str, list[str]], list[str] | None]) -> str:
    """One line for a Hydra / OmegaConf / YAML error raised while composing the config.

    overrides: the command line's overrides; roots: the config folders (for file names);
    keys_at(parent, overrides): the keys under ``parent`` of the config composed with those
    overrides (None when it cannot be composed), for the did-you-mean.
    """
    if isinstance(exc, yaml.YAMLError):
        return _yaml(exc, roots)
    if isinstance(exc.__cause__, yaml.YAMLError):
        return _yaml(exc.__cause__, roots)
    if isinstance(exc, OverrideParseException):
        detail = " ".join(str(exc).split("\nSee ")[0].split())
        m = re.search(r"Error parsing override '([^']*)'", detail)
        bad = m.group(1) if m else _unparsable(overrides)
        head = f"override {bad!r}" if bad else "an override"
        detail = re.sub(r"Error parsing override '[^']*'\s*", "", detail)
        return f"{head} is not valid override syntax ({detail}); expected {GRAMMAR}"
    if isinstance(exc, MissingConfigException):
        return _missing_option(exc, overrides)
    if isinstance(exc, ConfigCompositionException):
        if str(exc).startswith("Could not override"):
            line = _unknown_key(exc, overrides, keys_at)
            if line:
                return line
        m = re.match(r"Could not append to config\. An item is already at '([^']+)'", str(exc))
        if m:
            return (f"override '+{m.group(1)}=...': {m.group(1)} already exists; "
                    f"expected {m.group(1)}=... without the + (or ++ to add or replace)")
    setting = _user_setting_error(exc)
    if setting is not None:  # e.g. a sweeper's own check of its keys, as Hydra built it or as it ran
        return " ".join(str(setting).split())
    text = " ".join(str(exc).split())
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({' '.join(str(cause).split())})"
    text = text.split(" Config search path:")[0]
    return f"{text or type(exc).__name__}"


def keys_at_factory(compose: Callable[[list[str]], Any]) -> Callable[[str, list[str]], list[str] | None]:
    """keys_at() over a ``compose(overrides)`` (the project's search path): the sorted keys of a node."""
    from omegaconf import OmegaConf

    def keys_at(parent: str, overrides: list[str]) -> list[str] | None:
        for attempt in (overrides, []):
            try:
                cfg = compose(list(attempt))
            except Exception:  # noqa: BLE001 - a suggestion is a nicety; the main message stands
                continue
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if OmegaConf.is_dict(node):
                return sorted(str(k) for k in node.keys() if k != "hydra")
            return None
        return None

    return keys_at
