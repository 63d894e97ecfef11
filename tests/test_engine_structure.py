"""The house plan's import rules and the one-engine property, checked on the source with ``ast``:
engine/live imports nothing from engine/backtest and holds no branch on the mode's name;
engine/sim imports none of live, backtest, exchange; the mode names have one registry."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.paths import PROJECT_ROOT

ENGINE = PROJECT_ROOT / "engine"


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _files(part: str) -> list[Path]:
    files = sorted((ENGINE / part).rglob("*.py"))
    assert files, part
    return files


@pytest.mark.parametrize("part,never", [("live", ("engine.backtest", "engine.modes")),
                                        ("sim", ("engine.live", "engine.backtest", "engine.exchange", "engine.modes")),
                                        ("backtest", ("engine.live", "engine.exchange", "engine.modes"))])
def test_a_part_imports_no_part_above_it(part, never):
    bad = [(f.relative_to(PROJECT_ROOT).as_posix(), m) for f in _files(part) for m in _imports(f)
           if any(m == n or m.startswith(n + ".") for n in never)]
    assert bad == []


def _mode_names() -> set[str]:
    from engine.modes import MODES
    return set(MODES)


def test_the_live_loop_holds_no_branch_on_the_mode():
    """No comparison of anything with a mode's name (``mode == "live"``, ``x in ("paper", ...)``)
    anywhere in engine/live: what differs between modes comes from the registry's session plan."""
    names = _mode_names()
    found = []
    # shadow.py checks which mode a state file it replays was recorded in (data, not behaviour)
    for f in [f for f in _files("live") if f.name != "shadow.py"]:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if not isinstance(node, ast.Compare):
                continue
            consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            if any(c in names for c in consts):
                found.append(f"{f.relative_to(PROJECT_ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
    assert [f.name for f in _files("live") if "mode ==" in f.read_text()] == []


def test_the_mode_names_have_one_registry():
    """engine/modes is the registry; the config schema (which may not import it) allows exactly its names."""
    from engine.config import schema
    from engine.modes import LIVE_MODES, MODES, live_plan, runner
    assert tuple(schema.MODES) == MODES
    assert tuple(schema.LIVE_CLOCK_MODES) == LIVE_MODES
    for m in MODES:
        assert callable(runner(m))
    assert [live_plan(m).name for m in LIVE_MODES] == list(LIVE_MODES)
