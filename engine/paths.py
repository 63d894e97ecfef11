"""Where rulebook's files are: the built-in conf/, rules/ and report templates, and the user's project.

Two roots, never mixed:

- the **built-ins** (``BUILTIN_ROOT``): the default ``conf/``, ``rules/`` and ``reports/`` that ship
  with the engine. In a source checkout they are the folders next to the ``engine`` package; in an
  installed wheel (``pip install .``) setuptools maps the same folders into ``engine/_defaults/``
  (see ``[tool.setuptools.package-dir]`` in pyproject.toml), so one check finds either.
- the **project** (``project_root()``): where a run's relative paths (``rules_dir``, ``data.path``,
  ``data.cache_dir``, ``live.state_dir``, ``explain.run_dir``, ...) are found. ``rulebook`` sets it
  to the folder it runs in (``RULEBOOK_PROJECT``, inherited by sweep workers); ``run.py`` to its own
  folder; otherwise it is the source checkout, or, for an installed engine, the working directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The folder holding run.py, pyproject.toml, baselines/ in a source checkout (the package's parent).
SOURCE_ROOT = PACKAGE_DIR.parent
# An installed wheel carries the built-ins here; a checkout (editable or PYTHONPATH) has none.
_INSTALLED_DEFAULTS = PACKAGE_DIR / "_defaults"
BUILTIN_ROOT = _INSTALLED_DEFAULTS if (_INSTALLED_DEFAULTS / "conf").is_dir() else SOURCE_ROOT
BUILTIN_CONF = BUILTIN_ROOT / "conf"
BUILTIN_RULES = BUILTIN_ROOT / "rules"
TEMPLATES_DIR = BUILTIN_ROOT / "reports"
# Earlier name of BUILTIN_ROOT (tests and tools read the shipped conf/ and rules/ from it).
PROJECT_ROOT = BUILTIN_ROOT

PROJECT_ENV = "RULEBOOK_PROJECT"


def is_source_checkout() -> bool:
    return BUILTIN_ROOT == SOURCE_ROOT


def project_root() -> Path:
    """The user's project folder (see the module doc); read at call time, never cached."""
    env = os.environ.get(PROJECT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return SOURCE_ROOT if is_source_checkout() else Path.cwd().resolve()


def project_path(p: str | Path) -> Path:
    """``p`` if absolute, else relative to the project root (where run.py or ``rulebook`` runs)."""
    p = Path(p).expanduser()
    return p if p.is_absolute() else project_root() / p


@dataclass(frozen=True)
class RuleFolders:
    """The folders a run's rule files are found in, first match wins, file by file: a project's
    ``rules/`` that holds only some files (its own strategy, a stricter ``risk.yaml``) runs the
    built-in files for the rest, as its ``conf/`` does for config options."""

    dirs: tuple[Path, ...]

    @property
    def primary(self) -> Path:
        """The folder named by ``rules_dir``: where a missing file is reported and new files go."""
        return self.dirs[0]

    def find(self, rel: str | Path) -> tuple[Path, Path]:
        """(the folder, the path) of rule file ``rel``: the first folder where that name exists,
        else the primary folder's. The caller refuses a path that leads out of its folder: a
        project's link to elsewhere is refused, never passed over for the built-in file."""
        for folder in self.dirs:
            path = folder / rel
            if path.exists() or path.is_symlink():
                return folder, path
        return self.primary, self.primary / rel


def rule_folders(rules_dir: str | Path = "rules", root: Path | None = None) -> RuleFolders:
    """The rule folders of ``rules_dir``. The default ``rules`` is the project's ``rules/`` then the
    built-in one (only the built-ins when the project has none); any other ``rules_dir`` (absolute,
    or relative to the project root) is a whole rule set on its own: nothing falls back."""
    p = Path(rules_dir).expanduser()
    if p.is_absolute():
        return RuleFolders((p,))
    own = (project_root() if root is None else Path(root)) / p
    if p != Path("rules"):
        return RuleFolders((own,))
    if not own.is_dir() or own.resolve() == BUILTIN_RULES.resolve():
        return RuleFolders((BUILTIN_RULES,))
    return RuleFolders((own, BUILTIN_RULES))


def rule_file(rules_dir: str | Path, rel: str | Path, root: Path | None = None) -> Path:
    """Where rule file ``rel`` (relative to ``rules_dir``) is read from (see :func:`rule_folders`)."""
    return rule_folders(rules_dir, root).find(rel)[1]


def config_dirs(project: Path | None = None) -> list[Path]:
    """Hydra's config folders, first match wins: the project's ``conf/`` (when it has one and it is
    not the built-in one), then the built-in ``conf/``."""
    project = project_root() if project is None else Path(project)
    own = project / "conf"
    dirs = [BUILTIN_CONF]
    if own.is_dir() and own.resolve() != BUILTIN_CONF.resolve():
        dirs.insert(0, own.resolve())
    return dirs


def leaves_root(root: str | Path, path: str | Path) -> Path | None:
    """Where ``path`` really leads when that is outside ``root`` (through ``..``, an absolute path
    or a symbolic link), else None. A link loop counts as leaving: it leads nowhere inside.

    Inputs are read only inside the folder they were given in (rules_dir, data.path, a run dir):
    a link to a system file must not be read, nor a line of it echoed in an error.
    """
    try:
        base = Path(root).resolve()
        target = Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(path)
    return None if target == base or target.is_relative_to(base) else target
