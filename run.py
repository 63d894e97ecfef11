"""rulebook's entry point from a source checkout: `python run.py [overrides]` (see README.md).

The same program as the installed `rulebook` command (engine/cli.py), with this checkout as the
project: its conf/ and rules/ are the built-ins, and relative paths resolve against this folder.
"""
from pathlib import Path

from engine.cli import main

if __name__ == "__main__":
    main(project=Path(__file__).resolve().parent)
