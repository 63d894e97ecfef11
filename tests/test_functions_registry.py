"""The registry the expression compiler reads: specs, argument checking, shapes, describe()."""
from __future__ import annotations

import ast
import operator
import warnings

import numpy as np
import pytest

from engine.rules.functions import FUNCTIONS, FunctionArgError, FunctionSpec, describe
from tests.helpers.series import args_for, ohlc_panel, random_panel, series_functions

T, N = 120, 4
WINDOWED = [n for n in series_functions() if any(p.type == "window" for p in FUNCTIONS[n].params)]


# ---- the specs ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_spec_is_well_formed(name):
    s = FUNCTIONS[name]
    assert isinstance(s, FunctionSpec) and s.name == name
    assert s.kind in ("series", "elementwise") and s.returns in ("number", "bool")
    assert s.params and all(p.type in ("series", "window", "number", "bool_series") for p in s.params)
    required = [p.default is None for p in s.params]
    assert required == sorted(required, reverse=True), "required params come first"
    assert s.doc and "\n" not in s.doc
    assert s.variadic == (name in ("min", "max"))
    if s.kind == "elementwise":
        assert not any(p.type in ("window", "bool_series") for p in s.params)


def _eval_example(node, env):
    """A tiny evaluator for the examples (calls, names, numbers, arithmetic, one comparison)."""
    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
    if isinstance(node, ast.Expression):
        return _eval_example(node.body, env)
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id].impl(*[_eval_example(a, env) for a in node.args])
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval_example(node.operand, env)
    if isinstance(node, ast.BinOp):
        return ops[type(node.op)](_eval_example(node.left, env), _eval_example(node.right, env))
    if isinstance(node, ast.Compare):
        return ops[type(node.ops[0])](_eval_example(node.left, env), _eval_example(node.comparators[0], env))
    raise AssertionError(f"unsupported syntax in example: {ast.dump(node)}")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_example_uses_the_function_and_runs(name):
    s = FUNCTIONS[name]
    tree = ast.parse(s.example, mode="eval")
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert name in called and called <= set(FUNCTIONS)
    high, low, close = ohlc_panel(400, N, 2)
    env = {"close": close, "high": high, "low": low, "volume": random_panel(400, N, 3)}
    with np.errstate(all="ignore"):
        out = np.asarray(_eval_example(tree, env))
    assert out.shape == (400, N)
    assert (out.dtype == np.bool_ and out.any()) or np.isfinite(out).any()


def test_describe_lists_every_function_with_its_signature():
    rows = describe()
    assert [r["name"] for r in rows] == list(FUNCTIONS)
    for r in rows:
        assert {"name", "signature", "returns", "kind", "doc", "example"} <= set(r)
    by_name = {r["name"]: r for r in rows}
    assert by_name["rsi"]["signature"] == "rsi(x, n=14)"
    assert by_name["atr"]["signature"] == "atr(high, low, close, n=14)"
    assert by_name["min"]["signature"] == "min(a, b, ...)"
    assert by_name["crossover"]["returns"] == "bool" and by_name["abs"]["kind"] == "elementwise"


# ---- argument checking ----------------------------------------------------------------------
@pytest.mark.parametrize("name", WINDOWED)
@pytest.mark.parametrize("bad", [0, -3, 2.5, 5.0, True, "5", None])
def test_bad_window_raises_value_error_naming_the_function(name, bad):
    spec = FUNCTIONS[name]
    args = args_for(spec, T, N, seed=1)
    i = next(i for i, p in enumerate(spec.params) if p.type == "window")
    args[i] = bad
    with pytest.raises(ValueError) as err:
        spec.impl(*args)
    assert isinstance(err.value, FunctionArgError)
    assert f"{name}()" in str(err.value) and f"'{spec.params[i].name}'" in str(err.value)


@pytest.mark.parametrize("name", ["std", "zscore"])
def test_sample_std_needs_two_bars(name):
    with pytest.raises(FunctionArgError, match=rf"{name}\(\): window 'n' is 1; expected a whole number of bars >= 2"):
        FUNCTIONS[name].impl(random_panel(T, N, 1), 1)


def test_numpy_integer_windows_are_accepted():
    x = random_panel(T, N, 1)
    np.testing.assert_array_equal(FUNCTIONS["sma"].impl(x, np.int64(5)), FUNCTIONS["sma"].impl(x, 5))


def test_call_mistakes_name_function_and_argument():
    x = random_panel(T, N, 1)
    rsi = FUNCTIONS["rsi"].impl
    with pytest.raises(FunctionArgError, match=r"rsi\(\): takes at most 2 arguments, 3 given"):
        rsi(x, 14, 3)
    with pytest.raises(FunctionArgError, match=r"rsi\(\): has no argument 'window'"):
        rsi(x, window=3)
    with pytest.raises(FunctionArgError, match=r"sma\(\): is missing argument 'n'; expected sma\(x, n\)"):
        FUNCTIONS["sma"].impl(x)
    with pytest.raises(FunctionArgError, match=r"sma\(\): got only constants"):
        FUNCTIONS["sma"].impl(3.0, 5)
    with pytest.raises(FunctionArgError, match=r"sma\(\): argument 'x' has shape \(2, 3, 4\)"):
        FUNCTIONS["sma"].impl(np.zeros((2, 3, 4)), 5)
    with pytest.raises(FunctionArgError, match=r"sma\(\): argument 'x' has dtype <U1"):
        FUNCTIONS["sma"].impl(np.array(["a", "b"]), 5)
    with pytest.raises(FunctionArgError, match=r"crossover\(\): series arguments have shapes"):
        FUNCTIONS["crossover"].impl(np.zeros((T, N)), np.zeros((T, N + 1)))


def test_keywords_and_defaults_bind_like_positionals():
    x = random_panel(T, N, 4)
    rsi = FUNCTIONS["rsi"].impl
    np.testing.assert_array_equal(rsi(x, n=9), rsi(x, 9))
    np.testing.assert_array_equal(rsi(x), rsi(x, 14))
    np.testing.assert_array_equal(FUNCTIONS["lag"].impl(x)[1:], x[:-1])


def test_elementwise_argument_mistakes():
    with pytest.raises(FunctionArgError, match=r"round\(\): argument 'ndigits' is 1.5"):
        FUNCTIONS["round"].impl(1.2345, 1.5)
    with pytest.raises(FunctionArgError, match=r"clip\(\): lower bound 2 is above upper bound 1"):
        FUNCTIONS["clip"].impl(np.ones(3), 2, 1)
    with pytest.raises(FunctionArgError, match=r"min\(\): takes at least 2 arguments, 1 given"):
        FUNCTIONS["min"].impl(np.ones(3))


# ---- shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", series_functions())
def test_one_series_1d_gives_1d_equal_to_the_panel_column(name):
    spec = FUNCTIONS[name]
    args = args_for(spec, T, N, seed=8)
    panel = spec.impl(*args)
    col = spec.impl(*[a[:, 2] if isinstance(a, np.ndarray) else a for a in args])
    assert col.shape == (T,)
    np.testing.assert_array_equal(col, panel[:, 2])
    assert panel.shape == (T, N) and panel.flags.c_contiguous
    assert panel.dtype == (np.bool_ if spec.returns == "bool" else np.float64)


def test_constants_broadcast_against_a_panel():
    r = FUNCTIONS["rsi"].impl(random_panel(T, N, 6))
    want = FUNCTIONS["crossunder"].impl(r, np.full((T, N), 30.0))
    np.testing.assert_array_equal(FUNCTIONS["crossunder"].impl(r, 30.0), want)
    # the compiler hands constants over as np.ascontiguousarray(30.0), i.e. shape (1,)
    np.testing.assert_array_equal(FUNCTIONS["crossunder"].impl(r, np.ascontiguousarray(30.0)), want)
    # a (T, 1) index series against (T, N) products
    idx = random_panel(T, 1, 9, nan_prefix=False)
    x = random_panel(T, N, 6)
    np.testing.assert_array_equal(FUNCTIONS["crossover"].impl(x, idx), FUNCTIONS["crossover"].impl(x, np.repeat(idx, N, 1)))


def test_column_slabs_give_the_same_result(monkeypatch):
    """Kernels run on slabs of columns for big panels; the slab size must not change results."""
    import engine.rules.functions as fn

    def run(name):
        return FUNCTIONS[name].impl(*args_for(FUNCTIONS[name], 200, 50, seed=2))

    whole = {name: run(name) for name in series_functions()}
    monkeypatch.setattr(fn, "_SLAB_BYTES", 8 * 200 * 7)  # 7 columns a slab
    for name in series_functions():
        np.testing.assert_array_equal(run(name), whole[name], err_msg=name)


def test_bool_series_accepts_numeric_truthiness():
    cond = np.array([[0.0], [1.0], [np.nan], [0.0]])
    np.testing.assert_array_equal(FUNCTIONS["bars_since"].impl(cond)[:, 0], [np.nan, 0, 1, 2])


# ---- hygiene --------------------------------------------------------------------------------
def _nasty_panel():
    x = random_panel(T, N, 13)
    x[40, 1] = 0.0
    x[41, 1] = -5.0
    x[60, 2] = np.inf
    x[61:65, 3] = np.nan
    return x


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_no_warnings_no_mutation_and_deterministic(name):
    spec = FUNCTIONS[name]
    if spec.kind == "series":
        args = [_nasty_panel() if isinstance(a, np.ndarray) and a.dtype != bool else a
                for a in args_for(spec, T, N, seed=3)]
    else:
        args = [_nasty_panel() if p.type == "series" else 2 for p in spec.params]
        if name == "clip":
            args[1:] = [-1.0, 500.0]
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = spec.impl(*args)
        second = spec.impl(*args)
    for a, c in zip(args, copies):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, c)
    assert first.tobytes() == second.tobytes()
    if spec.kind == "series" and spec.returns == "number":
        assert not np.isinf(first).any()  # missing is NaN, never inf


def test_elementwise_scalars_stay_scalars():
    out = FUNCTIONS["log"].impl(0.0)
    assert np.ndim(out) == 0 and np.isnan(out)
    assert FUNCTIONS["max"].impl(1.0, 2.0, 3.0) == 3.0
    assert FUNCTIONS["round"].impl(2.5) == 2.0  # halves to even, like Python's round
    assert np.isnan(FUNCTIONS["sqrt"].impl(-4.0)) and FUNCTIONS["sqrt"].impl(4.0) == 2.0


def test_round_is_numpys_and_its_doc_says_so():
    # round() scales by 10**ndigits and rounds halves to even (numpy): 2.675 (stored as
    # 2.67499999...) gives 2.68 where Python's round() gives 2.67. The reference must not claim Python.
    rnd = FUNCTIONS["round"]
    np.testing.assert_array_equal(rnd.impl(np.array([2.675, 1.15, 2.5, 3.5]), 2), [2.68, 1.15, 2.5, 3.5])
    assert rnd.impl(np.array([2.675]), 2)[0] != round(2.675, 2)
    np.testing.assert_array_equal(rnd.impl(np.array([0.5, 1.5, 2.5])), [0.0, 2.0, 2.0])
    assert "(halves to even, like Python)" not in rnd.doc and "numpy" in rnd.doc and "2.675 -> 2.68" in rnd.doc
