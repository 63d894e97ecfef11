"""Measure the speed figures quoted in code comments and docs/backtest.md, one line each.

    python benchmarks/claims.py [--bars 8784] [--repeat 3]

Each line names the claim's home (file) and prints what this machine measures. Nothing is
asserted; the machine is shared, so read ratios, not absolute times.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import best_of  # noqa: E402


def import_seconds(module: str) -> float:
    """Seconds to import ``module`` in a fresh interpreter that has numpy loaded already."""
    code = f"import time, numpy; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return min(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                    text=True).stdout) for _ in range(3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=8784)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)

    from engine.cycle.features import cumsum_rows
    x = rng.random((a.bars, 1000))
    np_s = best_of(lambda: np.cumsum(x, axis=0, dtype=np.float64), a.repeat)
    rows_s = best_of(lambda: cumsum_rows(x), a.repeat)
    print(f"engine/cycle/features.py cumsum_rows, {a.bars} x 1000: {rows_s * 1e3:.0f} ms vs np.cumsum(axis=0) "
          f"{np_s * 1e3:.0f} ms ({np_s / rows_s:.1f}x faster)")

    from scipy.signal import lfilter

    from engine.rules.functions import _recurrence
    u = rng.random((a.bars, 2000))
    lf_s = best_of(lambda: lfilter([1.0], [1.0, -0.9], u, axis=0), a.repeat)
    loop_s = best_of(lambda: _recurrence(u.copy(), 0.9), a.repeat)
    copy_s = best_of(lambda: u.copy(), a.repeat)
    print(f"engine/rules/functions.py recurrence, {a.bars} x 2000: row loop {(loop_s - copy_s) * 1e3:.0f} ms vs "
          f"lfilter {lf_s * 1e3:.0f} ms (lfilter {lf_s / (loop_s - copy_s):.1f}x slower)")

    from engine.cycle.memory import reuse_freed_memory
    n = 70_000_000 // 8  # a 70 MB (T, N) float64 array

    def fresh_write() -> None:
        np.empty(n).fill(1.0)
    try:  # numpy advises huge pages for big arrays; off, every 4 KiB page faults on first write
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        from numpy.core.multiarray import _set_madvise_hugepage
    was = _set_madvise_hugepage(False)
    small_s = best_of(fresh_write, 5)
    _set_madvise_hugepage(was)
    fresh_s = best_of(fresh_write, 5)
    with reuse_freed_memory():
        reused_s = best_of(fresh_write, 5)  # the first call maps the block, the rest reuse it
    print(f"engine/cycle/memory.py writing a 70 MB array: {small_s * 1e3:.0f} ms into fresh 4 KiB pages, "
          f"{fresh_s * 1e3:.0f} ms into fresh pages with huge-page advice, {reused_s * 1e3:.0f} ms into reused memory")

    print(f"engine/rules/functions.py import scipy.signal: {import_seconds('scipy.signal'):.2f} s "
          f"(numpy already loaded)")
    print(f"engine/exchange/errors.py import ccxt: {import_seconds('ccxt'):.2f} s")

    import yaml

    from engine import yamlfast
    text = (ROOT / "engine/config/sanity_checks.yaml").read_text()
    py_s = best_of(lambda: yaml.load(text, Loader=yaml.SafeLoader), a.repeat)  # noqa: S506
    c_s = best_of(lambda: yamlfast.safe_load(text), a.repeat)
    print(f"engine/yamlfast.py sanity_checks.yaml: libyaml {c_s * 1e3:.1f} ms vs pure Python {py_s * 1e3:.1f} ms "
          f"({py_s / c_s:.1f}x faster)")

    from engine.report.render import TEMPLATES_DIR, environment
    src = (TEMPLATES_DIR / "backtest.html.j2").read_text()
    env = environment()
    jc_s = best_of(lambda: env.compile(src, "backtest.html.j2"), a.repeat)
    print(f"engine/report/render.py compiling backtest.html.j2: {jc_s * 1e3:.0f} ms")

    config = _config_doc()
    opts = {"sort_keys": True, "default_flow_style": False, "allow_unicode": True}
    py_dump = best_of(lambda: yaml.safe_dump(config, **opts), a.repeat)
    c_dump = best_of(lambda: yamlfast.safe_dump(config, **opts), a.repeat)
    print(f"engine/yamlfast.py dumping the composed config: libyaml {c_dump * 1e3:.1f} ms vs pure Python "
          f"{py_dump * 1e3:.1f} ms ({py_dump / c_dump:.1f}x faster)")

    checked, trusted = _fresh_process_seconds(_SCHEMAS_CHECKED), _fresh_process_seconds(_SCHEMAS_TRUSTED)
    print(f"engine/validators.py first validators of a process (composed config + 5 rule files): "
          f"{checked * 1e3:.0f} ms with Cerberus' schema check, {trusted * 1e3:.0f} ms without")

    plain, frozen = _exit_seconds(freeze=False), _exit_seconds(freeze=True)
    print(f"run.py interpreter shutdown after importing Hydra and the backtest path: {plain * 1e3:.0f} ms, "
          f"{frozen * 1e3:.0f} ms with gc.freeze() at exit")


def _config_doc() -> dict:
    from engine.modes.baseline import compose

    return compose([])


_SCHEMAS_CHECKED = """
from engine.config.schema import COMPOSED, _RulebookValidator
from engine.rules.schema import SCHEMAS
import cerberus
t = time.perf_counter()
_RulebookValidator(COMPOSED, allow_unknown=False)
for kind, schema in SCHEMAS.items():
    cerberus.Validator(schema, allow_unknown=False)
print(time.perf_counter() - t)
"""
_SCHEMAS_TRUSTED = """
from engine.config.schema import COMPOSED, _RulebookValidator
from engine.rules.schema import SCHEMAS
from engine.validators import validator
t = time.perf_counter()
validator("composed", COMPOSED, _RulebookValidator)
for kind, schema in SCHEMAS.items():
    validator(kind, schema)
print(time.perf_counter() - t)
"""


def _fresh_process_seconds(body: str) -> float:
    code = f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n{body}"
    return min(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                    text=True).stdout) for _ in range(3))


def _exit_seconds(freeze: bool) -> float:
    """Wall time from the last line of a script to the end of its process."""
    import time

    code = (f"import sys, time, gc, atexit; sys.path.insert(0, {str(ROOT)!r})\n"
            + ("atexit.register(gc.freeze)\n" if freeze else "")
            + "import hydra, engine.modes.backtest, engine.config.check, engine.report.outputs\n"
            + "print(time.time(), flush=True)\n")
    best = float("inf")
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        best = min(best, time.time() - float(out.stdout))
    return best


if __name__ == "__main__":
    main()
