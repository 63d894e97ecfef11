"""The shapes config checks hand back: one problem, a report of all of them, the error raised on them."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong (or worth a warning) in a composed config.

    code: stable machine id ("unknown_key", "type", "sanity.theme_cap_exceeds_total", ...)
    path: full dotted key path ("risk.params.theme_caps.meme"); "" for the root
    found / expected: short human strings (values are already redacted when secret-looking)
    message: one sentence saying what is wrong, naming the key
    """

    code: str
    path: str
    found: str
    expected: str
    message: str
    suggestions: tuple[str, ...] = ()

    def format(self) -> str:
        """The problem as one line, printed after ``error: `` (``warning: ``) like every mistake."""
        where = self.path or "<root>"
        line = f"[{self.code}] {where}: {self.message} (found: {self.found}; expected: {self.expected})"
        if self.suggestions:
            line += " did you mean: " + ", ".join(self.suggestions) + "?"
        return line


@dataclass
class ConfigReport:
    """Outcome of check_config: the migrated config plus every problem and warning, in a stable order."""

    config: dict
    problems: list[ConfigProblem] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)
    mode: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    def format(self) -> str:
        """Terminal text: one ``error:`` line per problem (the format of every user mistake, Hydra's
        included: engine/cli.py), one ``warning:`` line per warning, then a one-line verdict."""
        lines = [f"error: {p.format()}" for p in self.problems] + [f"warning: {w.format()}" for w in self.warnings]
        mode = f" for mode={self.mode}" if self.mode else ""
        if self.problems:
            lines.append(f"config is NOT valid{mode}: {len(self.problems)} problem(s), {len(self.warnings)} warning(s)")
        else:
            lines.append(f"config OK{mode}: 0 problems, {len(self.warnings)} warning(s)")
        return "\n".join(lines)

    def raise_if_problems(self) -> None:
        """For every mode but validate: refuse to run on a config with problems."""
        if self.problems:
            raise ConfigError(self)


class ConfigError(Exception):
    """Raised when a run is refused because its config has problems. str() is every problem, one
    per line, joined by ``\nerror: ``: printed after ``error: `` (engine/app.py), each problem is
    its own ``error:`` line, as ``mode=validate`` prints it."""

    def __init__(self, report: ConfigReport):
        self.report = report
        super().__init__("\nerror: ".join(p.format() for p in report.problems))
