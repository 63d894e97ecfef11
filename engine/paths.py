"""Where the project's own files are: rule files and conf/ are found from here."""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_path(p: str | Path) -> Path:
    """``p`` if absolute, else relative to the project root (where run.py lives)."""
    p = Path(p).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


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
