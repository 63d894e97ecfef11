"""The fast paths added for speed give exactly what the code they replace gave."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from engine import yamlfast
from engine.cycle.npfast import nan_to_num
from engine.cycle.portfolio import Portfolio
from engine.rules import loader as rules_loader

DOC = """\
a: 1
b: |
  two
  lines
c: >
  folded
d:
  - {e: 'q', f: "w"}
  - g: 2024-01-01
    h: 1e3
    i: .5
    j: ~
    k: [yes, no, on, off]
"""


def _lines(x):
    """A loaded document with the line numbers the rule loader records."""
    if isinstance(x, rules_loader.LineMap):
        return (x.line, x.lines, {k: _lines(v) for k, v in x.items()})
    if isinstance(x, list):
        return [_lines(v) for v in x]
    return x


def test_safe_load_matches_pyyaml():
    assert yamlfast.safe_load(DOC) == yaml.safe_load(DOC)


def test_rule_loader_twin_keeps_values_and_lines():
    twin = rules_loader._CLoader
    if twin is None:
        pytest.skip("PyYAML without libyaml")
    assert _lines(yaml.load(DOC, Loader=twin)) == _lines(yaml.load(DOC, Loader=rules_loader._Loader))


def test_safe_dump_writes_what_pyyaml_writes():
    from engine.modes.baseline import compose

    odd = {"colon": "a: b", "unicode": "héllo ✓", "long": "word " * 40, "none": None, "tiny": 1e-9,
           "quoted": "'q'", "multi": "two\nlines", "empty": "", "date": "2024-01-01", "bool_word": "yes",
           "tilde": "~", "nested": [{"x": 1, "y": [1.5, -0.0, float("inf")]}], 3: "int key"}
    config = compose([])
    for doc in (odd, config, yaml.safe_load(DOC)):
        opts = {"sort_keys": True, "default_flow_style": False, "allow_unicode": True}
        assert yamlfast.safe_dump(doc, **opts) == yaml.safe_dump(doc, **opts)


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a: 1\na: 2\n", "a:\n\tb: 1\n", "? [1, 2]\n: x\n"])
def test_bad_documents_raise_what_the_python_loader_raises(text):
    def outcome(fn):
        try:
            return ("ok", _lines(fn()))
        except Exception as exc:  # noqa: BLE001 - comparing the very exception
            return (type(exc).__name__, str(exc))

    assert outcome(lambda: yamlfast.load(text, rules_loader._Loader, rules_loader._CLoader)) == \
        outcome(lambda: yaml.load(text, Loader=rules_loader._Loader))  # noqa: S506


@pytest.mark.parametrize("values", [[1.0, 2.0], [np.nan, 1.0, -0.0], [np.inf, np.nan, -np.inf, 3.0], []])
def test_nan_to_num_matches_numpy(values):
    x = np.array(values, dtype=np.float64)
    assert nan_to_num(x).tobytes() == np.nan_to_num(x).tobytes()


@pytest.mark.parametrize("held", [[], [3], [0, 3, 7], [1, 2, 4, 5, 6, 8, 9]])
def test_block_position_value_is_the_per_bar_sum(held):
    rng = np.random.default_rng(7)
    pf = Portfolio.empty(10, 1000.0)
    pf.qty[held] = rng.uniform(0.1, 5.0, len(held))
    close = rng.uniform(0.5, 50.0, (33, 10))
    close[5, :] = 0.0  # a row of zero prices: the total is +0.0, as a sum from 0.0 is
    block = pf.value(close)
    rows = np.array([pf.value(c) for c in close])
    assert block.tobytes() == rows.tobytes()
