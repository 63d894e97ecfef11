"""The one error a rule author sees: where (file, rule, key, line, column) and what was expected."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Where:
    """Where an expression lives: ``rules/universe.yaml``, rule ``liquid``, key ``when``."""

    file: str
    rule: str = ""
    key: str = ""
    yaml_line: int | None = None  # line of the rule in the YAML file, when known

    def label(self) -> str:
        parts = [self.file + (f":{self.yaml_line}" if self.yaml_line else "")]
        if self.rule:
            parts.append(f"rule '{self.rule}'")
        if self.key:
            parts.append(f"key '{self.key}'")
        return ", ".join(parts)


class RuleError(Exception):
    """A rule file is wrong. The message is meant for the person who edits the file."""

    def __init__(
        self,
        where: Where,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        col: int | None = None,
        expected: str | None = None,
    ) -> None:
        self.where = where
        self.message = message
        self.source = source
        self.line = line
        self.col = col
        self.expected = expected
        super().__init__(self.format())

    def format(self) -> str:
        head = self.where.label()
        if self.line is not None:
            head += f", line {self.line} col {self.col}"
        text = f"{head}: {self.message}"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.source is not None and self.line is not None:
            src_line = self.source.splitlines()[self.line - 1] if self.source else ""
            text += f"\n    {src_line}\n    {' ' * max((self.col or 1) - 1, 0)}^"
        return text


class RuleErrors(RuleError):
    """Every error found in the rule files at once (``load_ruleset(..., gather=True)``, mode=validate);
    it reads as its first error, and ``errors`` holds them all, in file order."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.where, first.message, source=first.source, line=first.line, col=first.col,
                         expected=first.expected)
        self.args = ("\n".join(e.format() for e in self.errors),)

    def __str__(self) -> str:
        return self.args[0]
