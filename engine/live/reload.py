"""Hot reload of rule files: a changed file is reloaded at the next cycle only if the whole
rule set still validates; a broken edit keeps the previous rules and raises an alert."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Mapping

from engine.errors import user_error_types
from engine.paths import rule_file
from engine.rules.loader import RuleSet


class RuleReloader:
    def __init__(self, cfg: Mapping[str, Any], load: Callable[[Mapping[str, Any]], RuleSet]):
        self.cfg = cfg
        self.load = load
        self.rules = load(cfg)
        self.rejected: dict[str, str] = {}  # file -> hash already reported as broken

    def path_of(self, label: str) -> Path:
        if label.startswith("rules/"):
            return rule_file(self.cfg.get("rules_dir", "rules"), label[len("rules/"):])
        return Path(label)

    def current_hashes(self) -> dict[str, str]:
        out = {}
        for label in self.rules.file_hashes:
            path = self.path_of(label)
            try:
                out[label] = hashlib.sha256(path.read_text().encode()).hexdigest()
            except UnicodeDecodeError:  # not UTF-8: a broken edit the loader rejects, told apart by its bytes
                out[label] = "undecodable-" + hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                out[label] = "missing"
        return out

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256("|".join(f"{k}={v}" for k, v in sorted(self.rules.file_hashes.items())).encode()).hexdigest()[:16]

    def check(self, force: bool = False) -> tuple[str, dict[str, str], str | None]:
        """('same'|'loaded'|'rejected', {file: new hash} of changed files, error message).
        ``force`` (an operator's reload): load and validate the files even when none changed."""
        now = self.current_hashes()
        changed = {k: v for k, v in now.items() if v != self.rules.file_hashes.get(k)}
        if force and not changed:
            changed = dict(now)
        elif not changed:
            self.rejected.clear()  # a broken edit was reverted: the same mistake again is a new edit
            return "same", {}, None
        if not force and all(self.rejected.get(k) == v for k, v in changed.items()):
            return "same", {}, None  # the same broken edit: reported once already
        try:
            new = self.load(self.cfg)
        except user_error_types() as e:
            self.rejected.update(changed)
            return "rejected", changed, str(e)
        self.rules = new
        self.rejected.clear()
        return "loaded", {k: new.file_hashes.get(k, v) for k, v in changed.items()}, None
