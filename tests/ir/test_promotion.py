"""Result dtypes of mixed operations equal NumPy 2's exactly (NEP 50).

Python numbers are weak (an f32 array times 0.5 stays f32), NumPy scalars are strong
(np.float64(0.5) makes it f64), arrays promote by dtype; int / int is f64, mean of ints is f64,
sum/prod of i32 and bool is i64, comparisons give bool. Python numbers passed as *arguments* of
a jitted function are weak too, exactly like the Python numbers NumPy would see, while values
that NumPy functions compute from them (np.sqrt(s), np.sum(s), np.dot(x, s)) are strong NumPy
values. A Python int that does not fit the array's integer dtype is an error, as in NumPy.
Every case runs through npcheck.check, which compares dtype, shape and values with NumPy.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import tracejit as tj
from tracejit.ir import DTYPES as IR_DTYPES
import npcheck
from npcheck import assert_same

# Promotion is decided while tracing, before any backend; the cpu backend runs every case, and
# the CUDA backend's casts and mixed-dtype arithmetic are covered by test_numpy_forward and the
# random programs (the emulator's compiles would double this file's time).
check = functools.partial(npcheck.check, cuda=False)

DTYPES = ["float32", "float64", "int32", "int64", "bool"]


def arr(dtype, shape=(2, 3), seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(1, 5, shape).astype(dtype)    # positive: valid for every operator


OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "truediv": lambda a, b: a / b, "floordiv": lambda a, b: a // b,
    "mod": lambda a, b: a % b, "pow": lambda a, b: a ** b,
    "maximum": np.maximum, "lt": lambda a, b: a < b, "eq": lambda a, b: a == b,
    "where": lambda a, b: np.where(True, a, b),
}

# Python numbers, NumPy scalars of each dtype, and 0-d arrays.
OTHERS = {
    "py_int": 2, "py_float": 0.5, "py_bool": True,
    "np_f32": np.float32(0.5), "np_f64": np.float64(0.5), "np_i32": np.int32(2),
    "np_i64": np.int64(2), "np_bool": np.bool_(True), "0d_f64": np.array(0.5),
    "0d_i32": np.array(2, np.int32),
}


def _supported_by_numpy(f, *args) -> bool:
    try:
        with np.errstate(all="ignore"):
            r = f(*args)
    except TypeError:
        return False
    return np.asarray(r).dtype in IR_DTYPES.values()


@pytest.mark.parametrize("op", OPS, ids=str)
@pytest.mark.parametrize("other", OTHERS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_array_with_constant(op, other, dtype):
    """A traced array of `dtype` combined with a constant on either side."""
    f, c = OPS[op], OTHERS[other]
    x = arr(dtype, seed=1)
    if op == "pow" and dtype == "bool" and other == "py_int":
        # NumPy's operator takes a fast path, bool_array ** 2 = np.square (int8, which tracejit
        # does not have); tracejit follows np.power(bool_array, 2), int64.
        assert_same(tj.jit(lambda x: x ** c)(x), np.power(x, c))
        check(lambda x: c ** x, x)
        return
    for g in (lambda x: f(x, c), lambda x: f(c, x)):
        if _supported_by_numpy(g, x):
            check(g, x)
        else:
            with pytest.raises((TypeError, ValueError)):
                tj.jit(g)(x)


@pytest.mark.parametrize("op", OPS, ids=str)
@pytest.mark.parametrize("a", DTYPES)
@pytest.mark.parametrize("b", DTYPES)
def test_array_with_array(op, a, b):
    """Two traced arrays: the dtype table of NumPy 2."""
    f = OPS[op]
    x, y = arr(a, (2, 3), seed=2), arr(b, (3,), seed=3)
    if _supported_by_numpy(f, x, y):
        check(f, x, y)
    else:
        with pytest.raises((TypeError, ValueError)):
            tj.jit(f)(x, y)


EXPECTED = [
    # (operation, operand dtypes, NumPy 2's result dtype): spelled out, not only compared.
    (lambda x: x * 0.5, ["float32"], "float32"),
    (lambda x: x + 1, ["float32"], "float32"),
    (lambda x: x * np.float64(0.5), ["float32"], "float64"),
    (lambda x: x * np.float32(0.5), ["float32"], "float32"),
    (lambda x: x + np.int64(1), ["float32"], "float64"),
    (lambda x, y: x + y, ["float32", "float64"], "float64"),
    (lambda x, y: x + y, ["float32", "int32"], "float64"),
    (lambda x, y: x * y, ["float32", "bool"], "float32"),
    (lambda x: x + 1, ["int32"], "int32"),
    (lambda x: x * 2.5, ["int32"], "float64"),
    (lambda x, y: x + y, ["int32", "int64"], "int64"),
    (lambda x: x + np.int64(1), ["int32"], "int64"),
    (lambda x, y: x - y, ["int32", "bool"], "int32"),
    (lambda x: x + 1, ["bool"], "int64"),
    (lambda x: x * 1.5, ["bool"], "float64"),
    (lambda x: x + True, ["bool"], "bool"),
    (lambda x, y: x / y, ["int32", "int32"], "float64"),
    (lambda x: x / 2, ["int64"], "float64"),
    (lambda x: x / 2, ["bool"], "float64"),
    (lambda x: x // 2, ["int32"], "int32"),
    (lambda x: x ** 2, ["int32"], "int32"),
    (lambda x: x ** 0.5, ["int32"], "float64"),
    (lambda x: np.mean(x), ["int32"], "float64"),
    (lambda x: np.mean(x, axis=0), ["bool"], "float64"),
    (lambda x: np.var(x), ["int64"], "float64"),
    (lambda x: np.sum(x), ["int32"], "int64"),
    (lambda x: np.sum(x, axis=1), ["bool"], "int64"),
    (lambda x: np.prod(x), ["int32"], "int64"),
    (lambda x: np.sum(x), ["float32"], "float32"),
    (lambda x: np.max(x), ["int32"], "int32"),
    (lambda x: np.argmax(x), ["float32"], "int64"),
    (lambda x, y: x < y, ["float32", "int64"], "bool"),
    (lambda x: x == 0.5, ["int32"], "bool"),
    (lambda x: np.sqrt(x), ["int32"], "float64"),
    (lambda x: np.exp(x), ["float32"], "float32"),
    (lambda x: np.sin(x), ["int64"], "float64"),
    (lambda x, y: x @ y.T, ["float32", "float64"], "float64"),
    (lambda x, y: x @ y.T, ["int32", "float32"], "float64"),
    (lambda x, y: np.concatenate([x, y]), ["float32", "int64"], "float64"),
    (lambda x, y: np.concatenate([x, y]), ["float32", "bool"], "float32"),
    (lambda x: np.where(x > 2, x, 0.5), ["float32"], "float32"),
    (lambda x: np.where(x > 2, x, 0.5), ["int32"], "float64"),
    (lambda x: np.where(x > 2, 1, 0), ["float32"], "int64"),
    (lambda x: np.clip(x, 0, 1.5), ["float32"], "float32"),
    (lambda x: np.clip(x, 0, 1.5), ["int32"], "float64"),
    (lambda x: np.clip(x, 0, 3), ["int32"], "int32"),
    (lambda x: np.dot(x.ravel(), 2.0), ["float32"], "float64"),   # np.dot makes arrays
]


@pytest.mark.parametrize("case", range(len(EXPECTED)))
def test_expected_result_dtypes(case):
    f, dtypes, expected = EXPECTED[case]
    args = [arr(d, seed=4 + i) for i, d in enumerate(dtypes)]
    want = check(f, *args)
    assert np.asarray(want).dtype == np.dtype(expected)   # this table is NumPy 2's


# ---------------------------------------------------------------------------------------------
# Python numbers as arguments of the jitted function


WEAK_ARGS = {
    "scale": lambda x, s: x * s,
    "reflected": lambda x, s: s - x,
    "divide": lambda x, s: x / s,
    "power": lambda x, s: x ** s,
    "compare": lambda x, s: x > s,
    "where": lambda x, s: np.where(x > 1, x, s),
    "clip_array": lambda x, s: np.clip(x, 0, s),
    "maximum": lambda x, s: np.maximum(x, s),
    "through_python_ops": lambda x, s: x * (-s * 2 + abs(s)),     # stays a Python number
    "through_compare": lambda x, s: x * (s > 0),
    "sum_of_scaled": lambda x, s: np.sum(x * s, axis=0),
    # NumPy functions of a Python number return strong NumPy values:
    "np_sqrt": lambda x, s: x * np.sqrt(abs(s)),
    "np_negative": lambda x, s: x * np.negative(s),
    "np_sum": lambda x, s: x * np.sum(s),
    "np_mean": lambda x, s: x + np.mean(s),
    "np_where_both": lambda x, s: x * np.where(True, s, 1.0),
    "np_clip": lambda x, s: x * np.clip(s, 0, 1),
    "np_maximum": lambda x, s: x * np.maximum(s, 1),
    "np_add_reduce": lambda x, s: x * np.add.reduce(s, axis=None),
    "np_dot": lambda x, s: np.dot(x, s),
    "np_outer": lambda x, s: np.outer(x, s),
    "np_stack": lambda x, s: x * np.stack([s, s, s]),
}


@pytest.mark.parametrize("case", WEAK_ARGS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool", "float64"])
@pytest.mark.parametrize("s", [0.5, 3, True], ids=["float", "int", "bool"])
def test_python_number_arguments(case, dtype, s):
    f = WEAK_ARGS[case]
    x = arr(dtype, (3,), seed=5)
    if s is True and case in ("through_python_ops", "np_sqrt"):
        pytest.skip("Python arithmetic on a bool argument follows NumPy bool rules, not Python int "
                    "rules: see test_python_bool_arguments_follow_numpy_bool_rules")
    if case == "np_dot" and dtype == "bool" and s is True:
        with pytest.raises(tj.UnsupportedError):     # documented: no boolean matrix products
            tj.jit(f)(x, s)
        return
    if _supported_by_numpy(f, x, s):
        check(f, x, s)
    else:
        with pytest.raises((TypeError, ValueError)):
            tj.jit(f)(x, s)


def test_f32_with_python_float_argument_stays_f32():
    """The headline case: f(x, 0.5) with x f32 returns f32, like x * 0.5 in NumPy."""
    x = arr("float32", seed=6)
    out = tj.jit(lambda x, lr: x - lr * x)(x, 0.5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, x - 0.5 * x, rtol=1e-6)


def test_numpy_scalar_arguments_are_strong():
    x = arr("float32", seed=7)
    check(lambda x, s: x * s, x, np.float64(0.5))     # f64, as in NumPy
    check(lambda x, s: x * s, x, np.float32(0.5))     # f32
    check(lambda x, s: x + s, arr("int32", seed=8), np.int64(3))     # i64


def test_only_python_number_arguments():
    """Without arrays the numbers get NumPy's default dtypes, at the end as in NumPy."""
    check(lambda a, b: a * b, 0.5, 2)
    check(lambda a, b: a * b, 3, 2)
    check(lambda a, b: a // b, 7, -2)
    check(lambda a, b: (a / b, a & b, a | b, a == b), True, True)
    check(lambda a, b: a * b, True, 3)
    x = arr("float32", seed=9)
    check(lambda x, a, b: x * (a * b + a), x, 0.5, 2)       # still weak in the middle


def test_python_bool_arguments_follow_numpy_bool_rules():
    # Traced, a Python bool is a NumPy bool (as in JAX): True + True is True (logical or), as
    # np.True_ + np.True_ is, not Python's 2; negating a bool is an error, as in NumPy.
    assert tj.jit(lambda a, b: a + b)(True, True) == np.True_ + np.True_
    assert tj.jit(lambda a, b: a * b)(True, False) == np.True_ * np.False_
    with pytest.raises(TypeError):
        -np.True_
    with pytest.raises(tj.DTypeError):
        tj.jit(lambda a: -a)(True)


def test_weak_argument_cache_keys():
    """A Python float argument and an np.float64 argument trace separately (weak vs strong)."""
    f = tj.jit(lambda x, s: x * s)
    x = arr("float32", seed=10)
    assert f(x, 0.5).dtype == np.float32
    assert f(x, np.float64(0.5)).dtype == np.float64
    assert f(x, 0.25).dtype == np.float32
    assert f.trace_count == 2


# ---------------------------------------------------------------------------------------------
# Python integers out of the array's range


@pytest.mark.parametrize("value", [2**31, -2**31 - 1, 2**40])
def test_python_int_too_large_for_int32(value):
    x = arr("int32", seed=11)
    with pytest.raises(OverflowError):
        x + value                                            # NumPy 2
    with pytest.raises((OverflowError, tj.DTypeError), match="out of bounds"):
        tj.jit(lambda x: x + value)(x)                       # a constant in the function
    with pytest.raises((OverflowError, tj.DTypeError), match="out of bounds"):
        tj.jit(lambda x, v: x + v)(x, value)                 # a Python-number argument


def test_python_int_at_int32_limits_is_fine():
    x = arr("int32", seed=12)
    check(lambda x: (x + (2**31 - 1), x * -2**31, x - 0), x)
    check(lambda x, v: x + v, x, 2**31 - 1)
    check(lambda x: x + 2**40, arr("int64", seed=13))      # fits i64
    check(lambda x: x + 2**40, arr("float32", seed=14))    # a float operand: converted


def test_unsupported_dtypes_are_rejected():
    x = arr("float32", seed=15)
    with pytest.raises(tj.DTypeError):
        tj.jit(lambda x: x + np.ones(3, np.complex64))(x)
    with pytest.raises(tj.DTypeError):
        tj.jit(lambda x: x * np.complex128(2))(x[0])
    with pytest.raises(tj.DTypeError):
        tj.jit(lambda x: x)(x.astype(np.complex64))
