"""The universe's rank cut keeps ``top`` eligible symbols whenever that many are eligible."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from engine.cycle.prepare import select_members


def test_eligible_symbols_without_a_rank_value_fill_the_remaining_slots():
    u = SimpleNamespace(top=3, descending=True)
    ok = np.array([False, True, True, False, True, True])
    key = np.array([9.0, 5.0, np.nan, 8.0, np.nan, 1.0])
    got = select_members(u, ok, key)
    assert got.sum() == 3 and not (got & ~ok).any()
    assert list(np.flatnonzero(got)) == [1, 2, 5]  # 5 and 1 by value, then the first without a value


def test_rank_order_best_first_ascending_too():
    u = SimpleNamespace(top=2, descending=False)
    ok = np.array([True, True, True, True])
    key = np.array([3.0, 1.0, 2.0, 1.0])
    assert list(np.flatnonzero(select_members(u, ok, key))) == [1, 3]
