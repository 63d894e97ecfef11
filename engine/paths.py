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


def rules_path(rules_dir: str | Path = "rules", root: Path | None = None) -> Path:
    """The folder of the rule files: ``rules_dir`` if absolute, else under the project root. A
    project without a ``rules/`` folder of its own (an empty folder, a notebook's) runs the
    built-in rule files when ``rules_dir`` is the default ``rules``."""
    p = Path(rules_dir).expanduser()
    if p.is_absolute():
        return p
    own = (project_root() if root is None else Path(root)) / p
    if p == Path("rules") and not own.exists():
        return BUILTIN_RULES
    return own


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
