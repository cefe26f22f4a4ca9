"""Forward semantics against NumPy: every supported ufunc and function, run through tj.jit.

Each test runs a plain NumPy function both with NumPy and through `tj.jit` (interpret backend)
and compares dtype, shape and values (see npcheck.check). Covered: every entry of the UFUNCS
and FUNCTIONS tables of tracejit/numpy_api/ and the Tracer methods and operators, on random
shapes, broadcasting, 0-d and empty arrays, f32/f64/i32/i64/bool, special values (nan, inf,
-0.0); reductions with every axis form, keepdims, ddof and dtype=; shape functions; products
(dot, matmul, outer, inner, tensordot, einsum); where/clip; *_like and astype; constants built
inside the traced function; Python control flow on static values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracejit as tj
from tracejit.ir import DTYPES as IR_DTYPES
from npcheck import assert_same, check, numpy_rejects, numpy_result, rand

FLOATS = ["float32", "float64"]
DTYPES = ["float32", "float64", "int32", "int64", "bool"]
SUPPORTED = list(IR_DTYPES.values())

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 3.0, 1e-30,
            -1e-30, 1e30, -1e30, 7.25, -100.0, 100.0, 0.7853981]


def positive(shape, dtype="float64", seed=0):
    return rand(shape, dtype, seed, 0.1, 4.0)


def specials(dtype):
    return np.array(SPECIALS, dtype=dtype)


def check_or_raise(f, *args, **kw):
    """check(f, *args), or, where NumPy rejects the inputs (or gives a dtype tracejit does not
    support, like complex numbers), that tracejit raises as well."""
    if numpy_rejects(f, *args):
        with pytest.raises((TypeError, ValueError, IndexError)):
            tj.jit(f)(*args)
        return
    if np.asarray(numpy_result(f, *args)).dtype not in SUPPORTED:
        with pytest.raises(tj.DTypeError):
            tj.jit(f)(*args)
        return
    check(f, *args, **kw)


def test_oracle_detects_mismatches():
    """The comparison itself can fail: dtype, shape, value, NaN, zero sign, 0-d kind."""
    bad = [(np.float32(1), np.float64(1)), (np.ones(3), np.ones((1, 3))),
           (np.float64(1 + 1e-9), np.float64(1)), (np.float64(np.nan), np.float64(0)),
           (np.float64(-0.0), np.float64(0.0)), (np.array(1.0), np.float64(1)),
           (np.array([1, 2]), np.array([1, 3])), (np.array([True]), np.array([1]))]
    for got, want in bad:
        with pytest.raises(AssertionError):
            assert_same(got, want)
    assert_same(np.float32(1 + 1e-7), np.float32(1))       # within f32 tolerance


# ---------------------------------------------------------------------------------------------
# elementwise ufuncs

UNARY = [np.negative, np.positive, np.absolute, np.fabs, np.sign, np.exp, np.exp2, np.expm1,
         np.log, np.log2, np.log10, np.log1p, np.sqrt, np.square, np.reciprocal, np.sin, np.cos,
         np.tan, np.tanh, np.sinh, np.cosh, np.arctan, np.arcsinh, np.floor, np.ceil, np.trunc,
         np.isnan, np.isinf, np.isfinite, np.logical_not, np.invert, np.arcsin, np.arccos,
         np.arccosh, np.arctanh, np.cbrt, np.rint, np.signbit, np.deg2rad, np.rad2deg,
         np.radians, np.degrees, np.conjugate]

BINARY = [np.add, np.subtract, np.multiply, np.true_divide, np.floor_divide, np.remainder,
          np.power, np.float_power, np.maximum, np.minimum, np.fmax, np.fmin, np.logaddexp,
          np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal,
          np.logical_and, np.logical_or, np.logical_xor, np.bitwise_and, np.bitwise_or,
          np.bitwise_xor, np.arctan2, np.hypot, np.logaddexp2, np.copysign, np.fmod,
          np.heaviside]

# Compositions (not one primitive) may be a few ULP from NumPy's dedicated loops: log2/log10 =
# log(x) * const, tan = sin/cos, sinh/cosh from expm1/exp of x/2, exp2 = 2**x, logaddexp =
# max + log1p(exp(-|x-y|)). Measured on dense grids (test_composition_accuracy) they stay
# within 5 ULP, which the default rtol (1e-6 is 8-16 ULP of f32, 1e-12 thousands of f64 ULP)
# covers. The exception is logaddexp where the result is near 0 (x, y near -ln 2): the sum
# cancels, and the error is a few ULP of max(|x|, |y|), not of the result.
def tol(ufunc, dtype) -> dict:
    """Tolerances for `ufunc` on inputs of magnitude <= 3 (see above)."""
    if ufunc in (np.logaddexp, np.logaddexp2) and np.dtype(dtype).kind == "f":
        return {"atol": 4 * 3 * np.finfo(dtype).eps}
    return {}


def _name(u):
    return u.__name__


def test_tables_are_covered():
    """Every ufunc of the UFUNCS table is exercised here, and every function of the FUNCTIONS
    table is called as np.<name> (np.linalg.<name>) in this file, test_indexing.py,
    test_numpy_arrays.py, test_numpy_sorting.py, test_numpy_linalg.py, test_numpy_numerics.py
    or test_einsum.py."""
    from tracejit.numpy_api import FUNCTIONS, UFUNCS
    assert set(UFUNCS) <= set(UNARY) | set(BINARY)
    here = Path(__file__).parent
    source = "".join((here / f).read_text() for f in ("test_numpy_forward.py",
                                                        "test_indexing.py",
                                                        "test_numpy_arrays.py",
                                                        "test_numpy_sorting.py",
                                                        "test_numpy_linalg.py",
                                                        "test_numpy_numerics.py",
                                                        "test_einsum.py"))

    def spelling(f):
        return ("np.linalg." if f.__module__ == "numpy.linalg" else "np.") + f.__name__ + "("
    missing = [f.__name__ for f in FUNCTIONS if spelling(f) not in source]
    assert not missing


@pytest.mark.parametrize("ufunc", UNARY, ids=_name)
@pytest.mark.parametrize("dtype", FLOATS)
def test_unary_float_special_values(ufunc, dtype):
    x = specials(dtype)
    check_or_raise(lambda x: ufunc(x), x, **tol(ufunc, dtype))   # invert: both raise


@pytest.mark.parametrize("ufunc", UNARY, ids=_name)
@pytest.mark.parametrize("dtype", FLOATS)
def test_unary_float_random(ufunc, dtype):
    x = rand((3, 4, 5), dtype, seed=1, low=-4, high=4)
    if ufunc in (np.log, np.log2, np.log10, np.sqrt):
        x = np.abs(x) + np.asarray(0.01, dtype)
    if ufunc is np.invert:
        with pytest.raises(TypeError):
            tj.jit(ufunc)(x)
        return
    check(lambda x: ufunc(x), x, **tol(ufunc, dtype))


@pytest.mark.parametrize("ufunc", UNARY, ids=_name)
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_unary_int_bool(ufunc, dtype):
    x = rand((2, 7), dtype, seed=2, low=-5, high=5)
    # Integer reciprocals truncate: 1 at 1, -1 at -1, 0 elsewhere (at 0, x86's NumPy value).
    if ufunc in (np.log, np.log2, np.log10, np.sqrt) and dtype != "bool":
        x = np.abs(x) + 1
    check_or_raise(lambda x: ufunc(x), x)


@pytest.mark.parametrize("ufunc", UNARY, ids=_name)
def test_unary_0d_and_empty(ufunc):
    for x in (np.array(0.75), np.zeros((0, 3)), np.array(True), np.zeros((0,), np.int32)):
        if ufunc is np.reciprocal and x.dtype == np.int32:
            continue                                  # documented as unsupported (above)
        check_or_raise(lambda x: ufunc(x), x)


@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
@pytest.mark.parametrize("dtype", FLOATS)
def test_binary_float_special_values(ufunc, dtype):
    """Every pair of special values (an outer grid)."""
    s = specials(dtype)
    check_or_raise(lambda x, y: ufunc(x, y), s[:, None], s[None, :],
                   **tol(ufunc, dtype))


@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_broadcasting(ufunc, dtype):
    x = rand((3, 1, 4), dtype, seed=3)
    y = rand((5, 4), dtype, seed=4, low=1, high=3)  # positive: integer divisors and powers
    check_or_raise(lambda x, y: ufunc(x, y), x, y, **tol(ufunc, dtype))


@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_with_python_scalars(ufunc, dtype):
    """Array with a Python scalar on either side (weak: the array's dtype wins)."""
    x = rand((6,), dtype, seed=5, low=1, high=4)
    for s in (2, 2.5, True):
        check_or_raise(lambda x: ufunc(x, s), x)
        check_or_raise(lambda x: ufunc(s, x), x)


@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
def test_binary_0d_and_empty(ufunc):
    cases = [(np.array(1.5), np.array(-2.0)), (np.array(3.0, np.float32), rand((2, 3), seed=6)),
             (np.zeros((0, 3)), np.ones((3,))), (np.zeros((0, 3), np.int32), np.int32(2)),
             (np.ones((4, 1), bool), np.zeros((0,), bool))]
    for x, y in cases:
        check_or_raise(lambda x, y: ufunc(x, y), x, y)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("ufunc", [np.floor_divide, np.remainder, np.fmod], ids=_name)
def test_integer_division_signs(ufunc, dtype):
    """Floor semantics for every sign combination (NumPy's, not C's truncation), and fmod's
    C semantics (the sign of the dividend)."""
    x = np.array([7, -7, 7, -7, 0, 6, -6], dtype)
    y = np.array([2, 2, -2, -2, 3, -4, 4], dtype)
    check(lambda x, y: ufunc(x, y), x, y)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_power(dtype):
    x = np.array([0, 1, -2, 3, -3, 5], dtype)
    y = np.array([0, 5, 3, 2, 3, 1], dtype)
    check(lambda x, y: x ** y, x, y)
    check(lambda x: x ** 3, x)
    check(lambda x: 2 ** x, np.abs(x))


def test_integer_to_negative_power_raises_like_numpy():
    x = np.arange(1, 4, dtype=np.int64)
    with pytest.raises(ValueError):
        x ** -1
    with pytest.raises(ValueError):
        tj.jit(lambda x: x ** -1)(x)


@settings(max_examples=20, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4,
                                                max_side=4),
       ufunc=st.sampled_from([np.add, np.multiply, np.maximum, np.logaddexp, np.less, np.power]),
       dtype=st.sampled_from(FLOATS), seed=st.integers(0, 2**16))
def test_binary_random_broadcast_shapes(shapes, ufunc, dtype, seed):
    x = positive(shapes.input_shapes[0], dtype, seed)
    y = rand(shapes.input_shapes[1], dtype, seed + 1)
    check(lambda x, y: ufunc(x, y), x, y)


def test_ufunc_dtype_argument():
    x = rand((3, 4), "float32", seed=7)
    check(lambda x: np.add(x, 1, dtype=np.float64), x)
    check(lambda x: np.multiply(x, x, dtype="float64"), x)


def _grid(ufunc, dtype, rng):
    """Dense inputs where `ufunc`'s composition is most at risk."""
    big = float(np.log(np.finfo(dtype).max))          # where e^x overflows
    u = lambda lo, hi, n=4000: rng.uniform(lo, hi, n)  # noqa: E731
    if ufunc in (np.log2, np.log10):
        return np.concatenate([np.exp(u(-80, 80)), 1 + u(-1e-3, 1e-3, 500)])
    if ufunc is np.tan:
        return np.concatenate([u(-10, 10), np.pi / 2 + u(-1e-3, 1e-3, 500)])
    if ufunc in (np.sinh, np.cosh):   # up to just past overflow: cosh(89) is finite in f32
        return np.concatenate([u(-big - 1, big + 1), u(-1e-3, 1e-3, 500), u(-3, 3)])
    return u(-120, 120)                                 # exp2, normal results only


@pytest.mark.parametrize("ufunc", [np.log2, np.log10, np.tan, np.sinh, np.cosh, np.exp2],
                         ids=_name)
@pytest.mark.parametrize("dtype", FLOATS)
def test_composition_accuracy(ufunc, dtype):
    x = _grid(ufunc, dtype, np.random.default_rng(60)).astype(dtype)
    check(lambda x: ufunc(x), x)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_fmod_by_zero_and_minus_one(dtype):
    """np.fmod(x, 0) is 0 for integers (NumPy warns), and MIN % -1 is 0, never a trap."""
    info = np.iinfo(dtype)
    x = np.array([7, -7, info.min, info.max, info.min], dtype)
    y = np.array([0, 0, -1, -1, 0], dtype)
    check(np.fmod, x, y)


@pytest.mark.parametrize("dtype", FLOATS)
def test_inverse_trig_and_hyperbolic_accuracy(dtype):
    """Over their whole domains (and their edges), within the float tolerance of check."""
    rng = np.random.default_rng(62)
    near_one = 10.0 ** -rng.uniform(1, 7, 200)
    unit = np.concatenate([rng.uniform(-1, 1, 2000), [-1, 1, -0.5, 0.5, -0.0, 0.0],
                           1 - near_one, near_one - 1])
    big = np.concatenate([1 + 10.0 ** rng.uniform(-7, 1, 500), 10.0 ** rng.uniform(0, 30, 500),
                          [1.0, 2.0, 2.0 ** 28]])
    wide = rng.standard_normal(2000) * 10.0 ** rng.integers(-30, 30, 2000)
    for f, x in [(np.arcsin, unit), (np.arccos, unit), (np.arctanh, unit), (np.arccosh, big),
                 (np.cbrt, wide)]:
        check(f, x.astype(dtype))
    check(np.arctan2, wide.astype(dtype), wide[::-1].astype(dtype))
    check(np.hypot, wide.astype(dtype), wide[::-1].astype(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_rounding_functions(dtype):
    """np.round/np.around (every sign of decimals, ties to even), np.fix, np.rint."""
    x = np.concatenate([rand((50,), dtype, seed=63, low=-1000, high=1000),
                        np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.675, -0.0, np.nan, np.inf], dtype)])
    for decimals in (0, 1, 2, 3, -1, -2):
        check(lambda x: np.round(x, decimals), x)
    check(lambda x: np.around(x, 2), x)
    check(lambda x: np.fix(x), x)
    check(np.rint, x)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_rounding_integers(dtype):
    x = rand((40,), dtype, seed=64, low=-500, high=500)
    if dtype != "bool":
        x = np.concatenate([x, np.array([15, 25, -35, 45, -5, 5], dtype)])
    for decimals in (0, 2, -1, -2):
        check_or_raise(lambda x: np.round(x, decimals), x)    # bools: float16, unsupported
    check(lambda x: np.fix(x), x)


@pytest.mark.parametrize("dtype", FLOATS + ["int32", "int64"])
def test_sinc_real_imag(dtype):
    x = np.concatenate([rand((30,), dtype, seed=65), np.zeros(2, dtype)])
    check(lambda x: np.sinc(x), x)
    check(lambda x: np.real(x), x)
    check(lambda x: np.imag(x), x)
    check(lambda x: np.conj(x) + 1, x)
    check(lambda x: (x.real, x.imag, x.conj(), x.conjugate()), x)
    check(lambda x: (x.round(), x.round(1), np.round(x, -1)), x)


@pytest.mark.parametrize("dtype", FLOATS)
def test_logaddexp_accuracy(dtype):
    rng = np.random.default_rng(61)
    x = rng.uniform(-50, 50, 4000)
    y = x + rng.normal(0, 1, 4000) * np.exp(rng.uniform(-20, 3, 4000))   # close pairs too
    x, y = x.astype(dtype), y.astype(dtype)
    check(np.logaddexp, x, y, atol=4 * np.finfo(dtype).eps)   # near-0 results cancel
    check(np.logaddexp, x, x)                                  # equal: x + ln 2
    check(np.logaddexp2, x, y, atol=4 * np.finfo(dtype).eps)
    check(np.logaddexp2, x, x)                                 # equal: x + 1


def test_ufunc_chain():
    x, y = rand((4, 5), seed=8), positive((5,), seed=9)
    check(lambda x, y: np.tanh(x) * np.log(y) + np.exp(-x ** 2) / (1 + y), x, y)


# ---------------------------------------------------------------------------------------------
# operators


OPERATORS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "truediv": lambda x, y: x / y, "floordiv": lambda x, y: x // y,
    "mod": lambda x, y: x % y, "pow": lambda x, y: x ** y,
    "lt": lambda x, y: x < y, "le": lambda x, y: x <= y, "gt": lambda x, y: x > y,
    "ge": lambda x, y: x >= y, "eq": lambda x, y: x == y, "ne": lambda x, y: x != y,
}


@pytest.mark.parametrize("op", OPERATORS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_operators(op, dtype):
    f = OPERATORS[op]
    x, y = rand((3, 4), dtype, seed=10, low=-4, high=4), rand((4,), dtype, 11, 1, 3)
    check(f, x, y)
    check(lambda x: f(x, 3), x)          # Python scalar on the right
    check(lambda y: f(3, y), y)          # reflected
    check(lambda x: f(x, np.asarray(2, dtype)), x)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_unary_operators(dtype):
    x = rand((5, 2), dtype, seed=12)
    check(lambda x: -x, x)
    check(lambda x: +x, x)
    check(lambda x: abs(x), x)
    check(lambda x: (-x, abs(-x), -(-x)), x)


def test_matmul_operator():
    a, b = rand((3, 4), seed=13), rand((4, 2), seed=14)
    check(lambda a, b: a @ b, a, b)
    check(lambda b: a @ b, b)            # NumPy constant on the left: __rmatmul__
    check(lambda a: a @ b, a)


@pytest.mark.parametrize("dtype", ["bool", "int32", "int64"])
def test_logical_operators(dtype):
    x, y = rand((4, 3), dtype, seed=15, low=-8, high=8), rand((3,), dtype, 16, -8, 8)
    check(lambda x, y: (x & y, x | y, x ^ y, ~x), x, y)
    a, b = (True, False) if dtype == "bool" else (6, 5)
    check(lambda x: (x & a, a | x, x ^ b, ~x & x, b ^ x), x)


def test_comparisons_chain_to_masks():
    x = rand((10,), seed=17)
    check(lambda x: ((x > 0) & (x < 1)) | ~(x != x), x)


# ---------------------------------------------------------------------------------------------
# reductions

AXES = [None, 0, -1, 1, (0, 2), (-1, 0), (), (0, 1, 2)]
REDUCTIONS = ["sum", "mean", "max", "min", "prod", "var", "std", "all", "any"]


@pytest.mark.parametrize("kind", ["var", "std"])
@pytest.mark.parametrize("src", ["float32", "int32"])
def test_var_std_with_an_integer_dtype_is_refused(kind, src):
    # NumPy truncates the mean and every squared deviation to the integer dtype; tracejit
    # says it does not do that rather than return another dtype.
    x = rand((3, 4), src, seed=22, low=-2, high=2)
    with pytest.raises(tj.UnsupportedError, match="integer dtype"):
        tj.jit(lambda x: getattr(np, kind)(x, axis=0, dtype=np.int64))(x)


@pytest.mark.parametrize("kind", REDUCTIONS)
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_axes(kind, axis, keepdims):
    x = rand((2, 3, 4), seed=18, low=0.5, high=1.5)
    check(lambda x: getattr(np, kind)(x, axis=axis, keepdims=keepdims), x, rtol=1e-11)
    check(lambda x: getattr(x, kind)(axis=axis, keepdims=keepdims), x, rtol=1e-11)


@pytest.mark.parametrize("kind", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_dtypes(kind, dtype):
    """NumPy's result dtypes: sum/prod of i32 and bool give i64, mean/var/std of ints f64."""
    x = rand((3, 5), dtype, seed=19, low=-3, high=3)
    for axis in (None, 0, -1):
        check_or_raise(lambda x: getattr(np, kind)(x, axis=axis), x, rtol=1e-5)


@pytest.mark.parametrize("kind", ["var", "std"])
@pytest.mark.parametrize("ddof", [0, 1, 2])
def test_var_std_ddof(kind, ddof):
    x = rand((4, 6), "float32", seed=20)
    for axis in (None, 0, 1, (0, 1)):
        check(lambda x: getattr(np, kind)(x, axis=axis, ddof=ddof), x, rtol=1e-5)
    x64 = rand((4, 6), "float64", seed=21)
    check(lambda x: getattr(x, kind)(axis=1, ddof=ddof, keepdims=True), x64)


@pytest.mark.parametrize("kind,dtype", [
    (k, d) for k in ["sum", "mean", "prod", "var", "std"] for d in ["float32", "float64", "int64"]
    if d != "int64" or k not in ("var", "std")])
@pytest.mark.parametrize("src", ["float32", "int32", "bool"])
def test_reductions_dtype_argument(kind, dtype, src):
    x = rand((3, 4), src, seed=22, low=-2, high=2)
    check_or_raise(lambda x: getattr(np, kind)(x, axis=0, dtype=dtype), x, rtol=1e-5)
    check_or_raise(lambda x: getattr(np, kind)(x, dtype=dtype), x, rtol=1e-5)


@pytest.mark.parametrize("kind", REDUCTIONS)
def test_reductions_empty_and_0d(kind):
    for x, axis in ((np.zeros((0, 3)), 0), (np.zeros((0, 3)), 1), (np.zeros((0, 3)), None),
                    (np.array(2.5), None), (np.array(2.5), ()), (np.ones((2, 0), bool), 1)):
        check_or_raise(lambda x: getattr(np, kind)(x, axis=axis), x)


def test_reductions_special_values():
    x = specials("float64").reshape(4, 5)
    for kind in ("sum", "max", "min", "mean", "prod", "all", "any"):
        check(lambda x: getattr(np, kind)(x, axis=1), x)
    check(lambda x: (np.amax(x, axis=0), np.amin(x)), x)


def test_reduction_functions_by_name():
    x = rand((3, 4), seed=62)
    check(lambda x: (np.sum(x), np.prod(x, 0), np.min(x, 1), np.max(x), np.mean(x, -1),
                     np.all(x > -2), np.any(x > 2, 0), np.var(x), np.std(x, ddof=1),
                     np.argmin(x), np.argmax(x, 1)), x)


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_arg_reductions(kind, dtype):
    x = rand((3, 4, 5), dtype, seed=23, low=-20, high=20)
    for axis in (None, 0, 1, -1):
        for keepdims in (False, True):
            check(lambda x: getattr(np, kind)(x, axis=axis, keepdims=keepdims), x)
    check(lambda x: getattr(x, kind)(axis=-2), x)


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
def test_arg_reductions_ties_and_nan(kind):
    x = np.array([[1.0, 3.0, 3.0, -1.0], [np.nan, 0.0, np.nan, 5.0], [2.0, 2.0, 2.0, 2.0]])
    check(lambda x: getattr(np, kind)(x, axis=1), x)
    check(lambda x: getattr(np, kind)(x), x)
    check(lambda x: getattr(np, kind)(x), np.array(4.0))


@pytest.mark.parametrize("ufunc", [np.add, np.multiply, np.maximum, np.minimum,
                                   np.logical_and, np.logical_or], ids=_name)
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_ufunc_reduce(ufunc, dtype):
    x = rand((3, 4), dtype, seed=24, low=-3, high=3)
    check_or_raise(lambda x: ufunc.reduce(x), x, rtol=1e-5)
    for axis in (None, 1, (0, 1)):
        check_or_raise(lambda x: ufunc.reduce(x, axis=axis), x, rtol=1e-5)
    check_or_raise(lambda x: ufunc.reduce(x, axis=0, keepdims=True), x, rtol=1e-5)


def test_max_of_empty_raises_like_numpy():
    x = np.zeros((0, 3))
    with pytest.raises(ValueError):
        np.max(x, axis=0)
    with pytest.raises(ValueError):
        tj.jit(lambda x: np.max(x, axis=0))(x)
    with pytest.raises(ValueError):
        tj.jit(lambda x: np.argmax(x))(x)


# ---------------------------------------------------------------------------------------------
# shapes

SHAPE_CASES = {
    "reshape": lambda x: np.reshape(x, (4, 6)),
    "reshape_-1": lambda x: np.reshape(x, (-1, 3)),
    "reshape_method": lambda x: x.reshape(2, -1),
    "reshape_method_tuple": lambda x: x.reshape((3, 2, 4)),
    "reshape_flat": lambda x: x.reshape(-1),
    "transpose": lambda x: np.transpose(x),
    "transpose_axes": lambda x: np.transpose(x, (1, 2, 0)),
    "transpose_neg_axes": lambda x: np.transpose(x, (-1, 0, -2)),
    "transpose_method": lambda x: x.transpose(2, 0, 1),
    "transpose_method_tuple": lambda x: x.transpose((0, 2, 1)),
    "T": lambda x: x.T,
    "mT": lambda x: x.mT,
    "swapaxes": lambda x: np.swapaxes(x, 0, 2),
    "swapaxes_neg": lambda x: x.swapaxes(-1, 1),
    "moveaxis": lambda x: np.moveaxis(x, 0, -1),
    "moveaxis_multi": lambda x: np.moveaxis(x, (0, 1), (2, 0)),
    "expand_dims": lambda x: np.expand_dims(x, 1),
    "expand_dims_neg": lambda x: np.expand_dims(x, -1),
    "expand_dims_tuple": lambda x: np.expand_dims(x, (0, 3)),
    "squeeze": lambda x: np.squeeze(np.expand_dims(x, (0, 2))),
    "squeeze_axis": lambda x: np.squeeze(x[:, :1], axis=1),
    "squeeze_method": lambda x: x[None].squeeze(0),
    "ravel": lambda x: np.ravel(x),
    "ravel_method": lambda x: x.ravel(),
    "flatten": lambda x: x.flatten(),
    "broadcast_to": lambda x: np.broadcast_to(x[:, :1, :], (5, 2, 3, 4)),
    "broadcast_to_same": lambda x: np.broadcast_to(x, x.shape),
    "flip": lambda x: np.flip(x),
    "flip_axis": lambda x: np.flip(x, 1),
    "flip_neg_axis": lambda x: np.flip(x, -1),
    "flip_tuple": lambda x: np.flip(x, (0, 2)),
    "copy": lambda x: (np.copy(x), x.copy()),
    "shape_ndim_size": lambda x: np.zeros((np.ndim(x), np.size(x), np.size(x, 1)))
    + np.shape(x)[0],
}


@pytest.mark.parametrize("case", SHAPE_CASES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_shape_functions(case, dtype):
    x = rand((2, 3, 4), dtype, seed=25)
    check(SHAPE_CASES[case], x)


@pytest.mark.parametrize("case", ["reshape_-1", "transpose", "T", "flip", "ravel",
                                  "expand_dims", "swapaxes", "moveaxis"])
def test_shape_functions_empty(case):
    check(SHAPE_CASES[case], np.zeros((0, 3, 2), np.float32))


def test_shape_functions_0d():
    x = np.array(1.5)
    check(lambda x: (x.reshape(1, 1), x.T, np.ravel(x), np.expand_dims(x, 0),
                     np.broadcast_to(x, (2, 3)), np.flip(x), x.reshape(())), x)
    check(lambda x: np.squeeze(x.reshape(1, 1, 1)), x)


JOIN_CASES = {
    "concatenate": lambda a, b: np.concatenate([a, b]),
    "concatenate_axis1": lambda a, b: np.concatenate((a, b, a), axis=1),
    "concatenate_neg": lambda a, b: np.concatenate([a, b], axis=-1),
    "concatenate_none": lambda a, b: np.concatenate([a, b.T], axis=None),
    "concatenate_const": lambda a, b: np.concatenate([a, np.ones((1, 3))]),
    "concatenate_dtype": lambda a, b: np.concatenate([a, b], dtype=np.float32),
    "stack": lambda a, b: np.stack([a, b]),
    "stack_axis1": lambda a, b: np.stack([a, b, a], axis=1),
    "stack_neg": lambda a, b: np.stack([a, b], axis=-1),
    "vstack": lambda a, b: np.vstack([a, b]),
    "vstack_1d": lambda a, b: np.vstack([a[0], b[1], a[1]]),
    "hstack": lambda a, b: np.hstack([a, b]),
    "hstack_1d": lambda a, b: np.hstack([a[0], b[1]]),
    "hstack_0d": lambda a, b: np.hstack([a[0, 0], b[1, 1]]),
}


@pytest.mark.parametrize("case", JOIN_CASES, ids=str)
@pytest.mark.parametrize("dtypes", [("float64", "float64"), ("float32", "float64"),
                                    ("int32", "float32"), ("bool", "int64")], ids=str)
def test_joining(case, dtypes):
    a, b = rand((2, 3), dtypes[0], seed=26), rand((2, 3), dtypes[1], seed=27)
    check(JOIN_CASES[case], a, b)


def test_joining_python_numbers():
    """Python numbers in stack/hstack become default-dtype arrays, as NumPy converts them."""
    x = rand((2,), "float32", seed=63)
    check(lambda x: np.stack([x[0], 0.5, 1]), x)
    check(lambda x: np.hstack([x[1], 2.5]), x)
    check(lambda x: np.stack([x, np.zeros(2, np.int32)], axis=1), x)


def test_joining_empty():
    a, b = np.zeros((0, 3)), rand((2, 3), seed=28)
    check(lambda a, b: (np.concatenate([a, b]), np.vstack([b, a])), a, b)
    check(lambda a: np.stack([a, a], axis=1), a)


# ---------------------------------------------------------------------------------------------
# products

MATMUL_SHAPES = [((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 2)), ((3, 4), (4, 2)),
                 ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (6, 4, 2)),
                 ((6, 3, 4), (4, 2)), ((4,), (6, 4, 2)), ((6, 3, 4), (4,)), ((1, 4), (4, 1)),
                 ((0, 4), (4, 3)), ((3, 0), (0, 2))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("float64", "float64"),
                                    ("float32", "float64"), ("int32", "int32"),
                                    ("int64", "float32")], ids=str)
def test_matmul(shapes, dtypes):
    a, b = rand(shapes[0], dtypes[0], seed=29), rand(shapes[1], dtypes[1], seed=30)
    check(lambda a, b: a @ b, a, b, rtol=1e-5 if "float32" in dtypes else None)
    check(lambda a, b: np.matmul(a, b), a, b, rtol=1e-5 if "float32" in dtypes else None)


DOT_SHAPES = [((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 2)), ((3, 4), (4, 2)),
              ((2, 3, 4), (4, 5)), ((2, 3, 4), (5, 4, 2)), ((3,), ()), ((), (2, 3))]


@pytest.mark.parametrize("shapes", DOT_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_dot(shapes, dtype):
    a, b = rand(shapes[0], dtype, seed=31), rand(shapes[1], dtype, seed=32)
    check(lambda a, b: np.dot(a, b), a, b, rtol=1e-5)
    check(lambda a, b: a.dot(b), a, b, rtol=1e-5)


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((2, 3), (4,)), ((), (3,)), ((0,), (2,))],
                         ids=str)
def test_outer(shapes):
    a, b = rand(shapes[0], seed=33), rand(shapes[1], "float32", seed=34)
    check(lambda a, b: np.outer(a, b), a, b)


@pytest.mark.parametrize("shapes", [((4,), (4,)), ((3, 4), (4,)), ((3, 4), (2, 4)),
                                    ((2, 3, 4), (5, 4)), ((), (3,))], ids=str)
def test_inner(shapes):
    a, b = rand(shapes[0], seed=35), rand(shapes[1], seed=36)
    check(lambda a, b: np.inner(a, b), a, b)


@pytest.mark.parametrize("shapes,axes", [
    (((3, 4), (4, 5)), 1), (((2, 3, 4), (3, 4, 5)), 2), (((3, 4), (5, 6)), 0),
    (((2, 3, 4), (4, 3, 5)), ((1, 2), (1, 0))), (((3, 4), (4, 5)), ([1], [0])),
    (((2, 3), (3, 2)), (0, 1)), (((2, 3, 4), (4, 2, 3)), ((-1, 0), (0, -2)))], ids=str)
def test_tensordot(shapes, axes):
    a, b = rand(shapes[0], seed=37), rand(shapes[1], seed=38)
    check(lambda a, b: np.tensordot(a, b, axes), a, b)
    check(lambda a, b: np.tensordot(a.astype(np.float32), b, axes=axes), a, b)


EINSUM = [("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]),
          ("ij->ji", [(3, 4)]), ("ij", [(3, 4)]), ("ji", [(3, 4)]), ("ij->", [(3, 4)]),
          ("ij->j", [(3, 4)]), ("i,i->", [(4,), (4,)]), ("i,i", [(4,), (4,)]),
          ("i,j->ij", [(3,), (4,)]), ("i,j", [(3,), (4,)]), ("ij,ij->i", [(3, 4), (3, 4)]),
          ("ij,ij", [(3, 4), (3, 4)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
          ("bij,bjk", [(2, 3, 4), (2, 4, 5)]), ("bij,bkj->bki", [(2, 3, 4), (2, 5, 4)]),
          ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]), ("ij,jk,kl", [(2, 3), (3, 4), (4, 5)]),
          ("i,ij,j->", [(3,), (3, 4), (4,)]), ("abc,cd->dba", [(2, 3, 4), (4, 5)]),
          ("ijk->kj", [(2, 3, 4)]), ("ij,kl->ijkl", [(2, 3), (4, 5)]),
          ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]), (" ij , jk -> ki ", [(3, 4), (4, 2)]),
          ("ab,bc,ca->", [(2, 3), (3, 4), (4, 2)])]


@pytest.mark.parametrize("subscripts,shapes", EINSUM, ids=[e[0] for e in EINSUM])
def test_einsum(subscripts, shapes):
    ops = [rand(s, seed=39 + i) for i, s in enumerate(shapes)]
    check(lambda *ops: np.einsum(subscripts, *ops), *ops)
    ops32 = [o.astype(np.float32) for o in ops]
    check(lambda *ops: np.einsum(subscripts, *ops), *ops32, rtol=1e-5)


def test_einsum_mixed_dtypes_and_constants():
    a, b = rand((3, 4), "float32", seed=42), rand((4,), "int64", seed=43)
    check(lambda a, b: np.einsum("ij,j->i", a, b), a, b)
    check(lambda a: np.einsum("ij,jk->ik", a, np.ones((4, 2), np.float32)), a, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# where, clip


@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("float32", "float64"),
                                    ("int32", "float32"), ("int64", "bool"),
                                    ("bool", "bool")], ids=str)
def test_where(dtypes):
    c = rand((3, 1, 4), "bool", seed=44)
    x, y = rand((5, 4), dtypes[0], seed=45), rand((4,), dtypes[1], seed=46)
    check(lambda c, x, y: np.where(c, x, y), c, x, y)
    check(lambda x, y: np.where(x > 0, x, y), x, y)
    check(lambda x: np.where(x > 0, x, 0), x)           # Python scalar: weak
    check(lambda x: np.where(x > 0, 1.5, x), x)
    check(lambda x: np.where(x, 2, -2), x)              # non-bool condition: truthiness
    check(lambda c: np.where(c, 1.0, 0.0), c)


def test_where_scalar_condition_and_0d():
    x = rand((3,), seed=47)
    check(lambda x: np.where(True, x, -x), x)
    check(lambda x: np.where(np.array(False), x, 2), x)
    check(lambda x, s: np.where(s > 0, x, s), x, np.array(-1.0))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_clip(dtype):
    x = rand((4, 5), dtype, seed=48, low=-5, high=5)
    lo, hi = rand((5,), dtype, seed=49, low=-3, high=-1), rand((4, 1), dtype, 50, 1, 3)
    check(lambda x: np.clip(x, -1, 2), x)
    check(lambda x: np.clip(x, -1.5, 2.5), x)
    check(lambda x: np.clip(x, None, 2), x)
    check(lambda x: np.clip(x, -1, None), x)
    check(lambda x: np.clip(x, min=-1, max=1), x)
    check(lambda x: x.clip(0, 3), x)
    check(lambda x, lo, hi: np.clip(x, lo, hi), x, lo, hi)


def test_clip_special_values():
    x = specials("float64")
    check(lambda x: np.clip(x, -1.0, 1.0), x)


# ---------------------------------------------------------------------------------------------
# *_like, astype, constants


@pytest.mark.parametrize("dtype", DTYPES)
def test_like_constructors(dtype):
    x = rand((2, 3), dtype, seed=51)
    check(lambda x: (np.zeros_like(x), np.ones_like(x), np.full_like(x, 7)), x)
    check(lambda x: (np.zeros_like(x, dtype=np.float32), np.ones_like(x, dtype="int32"),
                     np.full_like(x, 2.5, dtype=np.float64)), x)
    check(lambda x: (np.zeros_like(x, shape=(4,)), np.ones_like(x, shape=(0, 2))), x)
    check(lambda x: np.full_like(x, 1) + x, x)
    check(lambda x: np.empty_like(x).shape, x)
    check(lambda x: np.full_like(x, x[0, 0]), x)            # a traced fill value
    check(lambda x: np.zeros_like(x[0, 0]), x)


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_astype(src, dst):
    x = rand((3, 4), src, seed=52, low=-4, high=4)
    check(lambda x: x.astype(dst), x)
    check(lambda x: np.astype(x, np.dtype(dst)), x)
    check(lambda x: x.astype(dst) * x.astype(dst), x)


def test_astype_special_values():
    x = specials("float64")
    check(lambda x: (x.astype(np.float32), x.astype(bool)), x)
    finite = np.array([2.7, -2.7, 0.5, -0.5, -0.0, 1e9], np.float64)
    check(lambda x: (x.astype(np.int64), x.astype(np.int32)), finite)


CONSTANT_CASES = {
    "zeros": lambda x: np.zeros((3, 4)) + x,
    "zeros_f32": lambda x: np.zeros(4, dtype=np.float32) * x,
    "ones": lambda x: x - np.ones((3, 1)),
    "ones_int": lambda x: x * np.ones(4, dtype=np.int32),
    "full": lambda x: np.full((2, 3, 4), 2.5) * x,
    "full_int": lambda x: x + np.full((4,), 3),
    "eye": lambda x: np.eye(3) @ x,
    "eye_rect": lambda x: x @ np.eye(4, 2, k=1),
    "arange": lambda x: np.arange(4) * x,
    "arange_float": lambda x: x + np.arange(0.0, 2.0, 0.5),
    "arange_f32": lambda x: x / np.arange(1, 5, dtype=np.float32),
    "linspace": lambda x: np.linspace(0, 1, 4) * x,
    "linspace_endpoint": lambda x: x - np.linspace(-1, 1, 4, endpoint=False),
    "mixed": lambda x: np.where(np.eye(3, 4, dtype=bool), x, np.arange(12.0).reshape(3, 4)),
}


@pytest.mark.parametrize("case", CONSTANT_CASES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_constants_inside_trace(case, dtype):
    x = rand((3, 4), dtype, seed=53)
    check(CONSTANT_CASES[case], x)


# ---------------------------------------------------------------------------------------------
# Python control flow on static values


def test_python_loop_unrolls():
    def f(x):
        acc = np.zeros(x.shape[1:], x.dtype)
        for i in range(x.shape[0]):
            acc = acc + x[i] * (i + 1)
            if i % 2:                       # a branch on a static Python value
                acc = np.tanh(acc)
        return acc

    x = rand((5, 3), "float32", seed=54)
    check(f, x)
    fn = tj.trace(f, x)
    assert sum(e.prim.name == "tanh" for e in fn.eqns) == 2   # unrolled: one per odd i


def test_static_shape_branch_and_pytree_results():
    def f(x, y):
        if x.ndim == 2 and x.shape[0] > 1:
            x = x.T
        out = {"a": x.sum(axis=0), "b": [y * 2, (x.max(), np.mean(y))]}
        return out

    check(f, rand((3, 4), seed=55), rand((2,), "float32", seed=56))


def test_static_argument_controls_structure():
    def f(x, n):
        for _ in range(n):
            x = np.sin(x) + x
        return x

    x = rand((4,), seed=57)
    for n in (0, 1, 3):
        check(f, x, n, static_argnums=(1,))


def test_result_type_helper():
    check(lambda x, y: (x + y).astype(np.result_type(x, y)),
          rand((2,), "int32", seed=58), rand((2,), "float32", seed=59))
