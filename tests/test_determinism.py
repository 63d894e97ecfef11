"""Results do not depend on the CPU: engine.detmath's accuracy, and the same digests at every
numpy dispatch level (numpy picks its SIMD loops at import, so each level is a subprocess)."""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from engine import detmath
from engine.paths import PROJECT_ROOT
from tests.helpers.determinism import DISPATCH_LEVELS


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ia, ib = (np.asarray(v, dtype=np.float64).view(np.int64) for v in (a, b))
    ia = np.where(ia < 0, np.int64(-2**63) - ia, ia)
    ib = np.where(ib < 0, np.int64(-2**63) - ib, ib)
    return np.abs(ia - ib)


def test_exp_within_one_ulp_of_math():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.random(200_000) * 1454.8 - 745.1, rng.random(20_000) * 2 - 1,
                        1e-9 * (rng.random(2_000) - 0.5), [0.0, -0.0, 709.78, -708.5, -745.0]])
    assert _ulps(detmath.exp(x), [math.exp(v) for v in x]).max() <= 1


def test_log_within_one_ulp_of_math_including_subnormals():
    rng = np.random.default_rng(2)
    x = np.concatenate([detmath.exp(rng.random(200_000) * 1453 - 744), 0.5 + 1.5 * rng.random(20_000),
                        1 + 1e-9 * (rng.random(2_000) - 0.5), [5e-324, 1e-310, 2.2250738585072014e-308, 1.7976931348623157e308]])
    assert _ulps(detmath.log(x), [math.log(v) for v in x]).max() <= 1


def test_edges():
    ex = detmath.exp(np.array([np.inf, -np.inf, np.nan, 709.79, -745.14, 1e300, -1e300]))
    assert ex[0] == np.inf and ex[1] == 0 and np.isnan(ex[2]) and ex[3] == np.inf and ex[4] == 0
    assert ex[5] == np.inf and ex[6] == 0
    lg = detmath.log(np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 1.0]))
    assert lg[0] == lg[1] == -np.inf and np.isnan(lg[2]) and lg[3] == np.inf and np.isnan(lg[4]) and np.isnan(lg[5])
    assert lg[6] == 0.0
    assert isinstance(detmath.exp(1.0), float) and detmath.exp(np.zeros((2, 3))).shape == (2, 3)
    pw = detmath.power(np.array([-2.0, -2.0, -2.0, 0.0, 0.0, 1.0, np.nan, 4.0]),
                       np.array([3.0, 2.0, 0.5, -1.0, 0.0, np.nan, 0.0, 0.5]))
    assert list(pw[[0, 1, 3, 4, 5, 6, 7]]) == [-8.0, 4.0, np.inf, 1.0, 1.0, 1.0, 2.0] and np.isnan(pw[2])


def test_power_accuracy():
    rng = np.random.default_rng(3)
    x, y = 0.01 + 100 * rng.random(50_000), 10 * rng.random(50_000) - 5
    err = _ulps(detmath.power(x, y), [math.pow(a, b) for a, b in zip(x, y)])
    assert err.max() <= 64  # documented: about 1 ulp per unit of |y * log(x)|


def test_normal_draws_are_seeded_and_standard():
    a = detmath.standard_normal(np.random.default_rng(0), (400, 250))
    b = detmath.standard_normal(np.random.default_rng(0), (400, 250))
    assert np.array_equal(a, b) and a.shape == (400, 250)
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01
    t = detmath.student_t4(np.random.default_rng(1), 200_000)
    assert abs(t.var() - 2.0) < 0.15  # Student-t(4) has variance 2
    assert abs(detmath.exponential(np.random.default_rng(2), 3.0, 100_000).mean() - 3.0) < 0.05


def _levels() -> dict[str, str | None]:
    # the feature names exist on x86-64 only; elsewhere the machine's own level is checked
    return DISPATCH_LEVELS if platform.machine() in ("x86_64", "AMD64") else {"as_is": None}


@pytest.mark.slow
def test_same_digests_at_every_dispatch_level(tmp_path):
    got = {}
    for name, disable in _levels().items():
        env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
        if disable:
            env["NPY_DISABLE_CPU_FEATURES"] = disable
        proc = subprocess.run([sys.executable, "-m", "tests.helpers.determinism", str(tmp_path / name)],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got[name] = json.loads(proc.stdout.splitlines()[-1])
    first = next(iter(got.values()))["digests"]
    for name, out in got.items():
        assert out["digests"] == first, (name, out["features"])
        assert out["digests"]["baseline_diffs.sma_cross"] == [] and out["digests"]["baseline_diffs.momentum"] == []
