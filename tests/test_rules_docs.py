"""docs/rules.md is generated from the registries and must equal the generator's output."""
from __future__ import annotations

from engine.paths import project_path
from engine.rules.docs import generate
from engine.rules.expr import signature
from engine.rules.functions import FUNCTIONS
from engine.rules.names import INDEX, MARKET, ORDER, PORTFOLIO, POSITION
from engine.rules.schema import SCHEMAS


def test_committed_reference_equals_generated_text():
    committed = project_path("docs/rules.md").read_text()
    assert committed == generate(), "docs/rules.md is stale: run  python -m engine.rules.docs > docs/rules.md"


def test_reference_lists_every_function_name_and_kind():
    text = generate()
    for spec in FUNCTIONS.values():
        assert f"`{signature(spec)}`" in text
    for group in (MARKET, INDEX, POSITION, PORTFOLIO, ORDER):
        for name in group:
            assert f"| `{name}` |" in text
    for kind in SCHEMAS:
        assert f"### `kind: {kind}`" in text
    assert "| `filters[].when` | expression | yes |" in text
    assert "| `rank.top` |" in text
