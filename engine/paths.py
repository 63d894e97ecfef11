"""Where the project's own files are: rule files and conf/ are found from here."""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_path(p: str | Path) -> Path:
    """``p`` if absolute, else relative to the project root (where run.py lives)."""
    p = Path(p).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p
