"""NumPy's ufuncs on tracers, and the dtype promotion they define.

Promotion is NumPy 2's (NEP 50: Python numbers are weak, NumPy scalars are not; the ufunc
loops decide, through `ufunc.resolve_dtypes`); functions that are no ufunc promote with
`result_dtype`. `UFUNCS` maps every supported ufunc onto the strict ops, and `apply_ufunc`
applies one with NumPy's promotion and broadcasting. A ufunc called on a tracer reaches
`ufunc_call` through `Tracer.__array_ufunc__`; Python's operators on tracers are these ufuncs
too (`t + 1` is `np.add(t, 1)`, its result weak where Python's would be). Also here: np.clip
(a ufunc in NumPy), astype and result_type.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .. import errors, ops
from ..ir import DTYPES, is_float, is_int, is_python_scalar
from ..tracer import FUNCTIONS, Tracer
from ._common import (as_operand, broadcast_all, broadcast_shape, check_casting, check_device,
                      check_dtype, check_order, convert, implements, implements_method,
                      implements_ufunc_method, py_type, strong, unsupported, weaken)


_LN2 = math.log(2.0)
_LN10 = math.log(10.0)


# ---------------------------------------------------------------------------------------------
# promotion


def promotion_key(x):
    """What NumPy's promotion sees: a dtype, or the Python type of a weak scalar."""
    if isinstance(x, Tracer):
        d = x.type.dtype
        return py_type(0.0 if is_float(d) else 0 if is_int(d) else False) \
            if x.weak else x.dtype
    if is_python_scalar(x):
        return py_type(x)
    return np.asarray(x).dtype


def resolve(ufunc, xs, dtype=None, casting="same_kind") -> tuple[list[str], str, bool]:
    """(input dtypes, output dtype, weak result) of `ufunc` on `xs`, as NumPy 2 decides; with
    `dtype` (the output's, as NumPy's dtype= means) and `casting` as NumPy takes them."""
    keys = [promotion_key(x) for x in xs]
    all_weak = all(isinstance(k, type) for k in keys)
    if all_weak:
        # Only Python numbers: NumPy would convert them to default dtypes first.
        keys = [np.dtype(np.result_type(k(0))) if k is not bool else np.dtype(bool) for k in keys]
    # A Python bool is not weak in NumPy 2 (it acts as np.bool_), and resolve_dtypes only
    # takes int, float and complex as Python types.
    keys = [np.dtype(bool) if k is bool else k for k in keys]
    options = {"casting": casting}
    if dtype is not None:
        check_dtype(np.dtype(dtype))
        options["signature"] = (None,) * ufunc.nin + (np.dtype(dtype),)
    try:
        dts = ufunc.resolve_dtypes(tuple(keys) + (None,) * ufunc.nout, **options)
    except Exception as exc:
        names = ", ".join(k.__name__ if isinstance(k, type) else str(k) for k in keys)
        asked = (f" with dtype={np.dtype(dtype).name}" if dtype is not None else "") + \
            (f" with casting={casting!r}" if casting != "same_kind" else "")
        raise errors.user_error(
            errors.DTypeError, f"numpy.{ufunc.__name__} is not defined for ({names}){asked}"
            + (f": {exc}" if asked else "")) from None
    out = check_dtype(dts[ufunc.nin])
    ins = [check_dtype(d) for d in dts[:ufunc.nin]]
    return ins, out, all_weak and any(isinstance(x, Tracer) for x in xs)


def result_dtype(*xs) -> str:
    """np.result_type with weak Python scalars, for functions that are not ufuncs."""
    keys = []
    for x in xs:
        k = promotion_key(x)
        keys.append(k(0) if isinstance(k, type) else k)
    return check_dtype(np.result_type(*keys))


# ---------------------------------------------------------------------------------------------
# the ufuncs on the strict ops


def truth(x):
    """x as a boolean (x != 0 unless it is one already)."""
    return x if ops.dtype_of(x) == "bool" else ops.ne(x, 0)


def _power(x, y):
    if ops.is_literal(y) and np.ndim(y) == 0:
        if y == 2:
            return ops.mul(x, x)
        if is_int(ops.dtype_of(x)) and y < 0 and ops.type_of(x).size:
            raise errors.user_error(
                ValueError, "Integers to negative integer powers are not allowed.")
    return ops.pow(x, y)


def _fmax(x, y, pick=ops.max):
    if not is_float(ops.dtype_of(x)):
        return pick(x, y)
    return ops.select(ops.ne(y, y), x, ops.select(ops.ne(x, x), y, pick(x, y)))


def _logaddexp(x, y, base_e=True):
    # log(e^x + e^y) = m + log1p(e^(x-m) + e^(y-m) - 1) holds for every m, so its derivatives
    # do not depend on m's: with m = max(x, y) the ties' split gradient cancels and first and
    # second derivatives are exact at x == y too (max + log1p(exp(-|x - y|)) has kinks there
    # that cancel in value but not in the second derivative). One of x - m, y - m is 0, so the
    # sum is exp(the other) + expm1(0), as accurate as NumPy's formula. Where m is infinite
    # (or NaN) the result is m, and the formula runs on zeros so its unused gradient is 0.
    # In base 2 (logaddexp2) the same with 2^v = pow(2, v), 2^v - 1 = expm1(v ln 2) and
    # log2(1 + s) = log1p(s) / ln 2.
    m = ops.max(x, y)
    finite = ops.lt(ops.abs(m), np.inf)
    xs, ys = ops.select(finite, x, 0.0), ops.select(finite, y, 0.0)
    ms = ops.max(xs, ys)
    dx, dy = ops.sub(xs, ms), ops.sub(ys, ms)
    x_max = ops.ge(xs, ys)
    other, zero = ops.select(x_max, dy, dx), ops.select(x_max, dx, dy)
    if base_e:
        s = ops.add(ops.exp(other), ops.expm1(zero))
        return ops.select(finite, ops.add(ms, ops.log1p(s)), m)
    s = ops.add(ops.pow(2.0, other), ops.expm1(ops.mul(zero, _LN2)))
    return ops.select(finite, ops.add(ms, ops.mul(ops.log1p(s), 1.0 / _LN2)), m)


def _logaddexp2(x, y):
    return _logaddexp(x, y, base_e=False)


def _heaviside(x, h0):
    # 0 below 0, 1 above, h0 at 0, NaN at NaN.
    step = ops.select(ops.lt(x, 0.0), 0.0, ops.select(ops.gt(x, 0.0), 1.0, h0))
    return ops.select(ops.ne(x, x), x, step)


def _reciprocal(x):
    dtype = ops.dtype_of(x)
    if dtype == "bool":                 # NumPy's bool loop: 1 // True = True, 1 // False = 0
        return x
    if is_int(dtype):
        # 1 // x truncated toward zero: 1 at 1, -1 at -1, 0 elsewhere; at 0 what NumPy gives
        # on x86 (with a warning): the minimum of int32 and int64, 0 of the others.
        at_zero = np.iinfo(np.dtype(DTYPES[dtype])).min if dtype in ("i32", "i64") else 0
        one = ops.select(ops.eq(x, 1), 1, 0)
        if dtype.startswith("i"):
            one = ops.select(ops.eq(x, -1), -1, one)
        return ops.select(ops.eq(x, 0), at_zero, one)
    return ops.div(1.0, x)


def _trunc(x):
    if not is_float(ops.dtype_of(x)):
        return x
    return ops.select(ops.lt(x, 0.0), ops.ceil(x), ops.floor(x))


def _float_pred(pred):
    def fn(x):
        if is_float(ops.dtype_of(x)):
            return pred(x)
        return ops.full(ops.type_of(x).__class__(ops.type_of(x).shape, "bool"),
                        pred is _isfinite)
    return fn


def _sinh(x):
    # sinh x = 2 sinh(x/2) cosh(x/2) = (expm1(h) - expm1(-h))/2 * (e^h + e^-h), h = x/2: full
    # accuracy near 0 (expm1), and no overflow of e^x where sinh x itself is still finite.
    h = ops.mul(x, 0.5)
    return ops.mul(ops.mul(ops.sub(ops.expm1(h), ops.expm1(ops.neg(h))), 0.5),
                   ops.add(ops.exp(h), ops.exp(ops.neg(h))))


def _cosh(x):
    # cosh x = (a a + b b) / 2 with a = e^(x/2), b = e^(-x/2): it overflows only where cosh x
    # does, and is smooth at 0 (a form in |x| has a kink there that loses cosh''(0) = 1).
    a, b = ops.exp(ops.mul(x, 0.5)), ops.exp(ops.mul(x, -0.5))
    return ops.add(ops.mul(ops.mul(a, 0.5), a), ops.mul(ops.mul(b, 0.5), b))


def _isnan(x):
    return ops.ne(x, x)


def _isinf(x):
    return ops.eq(ops.abs(x), np.inf)


def _isfinite(x):
    return ops.lt(ops.abs(x), np.inf)


#: ufunc -> implementation on operands already converted to the loop's dtypes and broadcast.
UFUNCS: dict[np.ufunc, Callable] = {
    np.add: ops.add,
    np.subtract: ops.sub,
    np.multiply: ops.mul,
    np.true_divide: ops.div,
    np.floor_divide: ops.floordiv,
    np.remainder: ops.mod,
    np.power: _power,
    np.float_power: ops.pow,
    np.maximum: ops.max,
    np.minimum: ops.min,
    np.fmax: _fmax,
    np.fmin: lambda x, y: _fmax(x, y, ops.min),
    np.logaddexp: _logaddexp,
    np.equal: ops.eq,
    np.not_equal: ops.ne,
    np.less: ops.lt,
    np.less_equal: ops.le,
    np.greater: ops.gt,
    np.greater_equal: ops.ge,
    np.logical_and: lambda x, y: ops.and_(truth(x), truth(y)),
    np.logical_or: lambda x, y: ops.or_(truth(x), truth(y)),
    np.logical_xor: lambda x, y: ops.xor(truth(x), truth(y)),
    np.logical_not: lambda x: ops.logical_not(truth(x)),
    np.bitwise_and: ops.and_,
    np.bitwise_or: ops.or_,
    np.bitwise_xor: ops.xor,
    np.invert: ops.logical_not,
    np.negative: ops.neg,
    np.positive: lambda x: x,
    np.absolute: ops.abs,
    np.fabs: ops.abs,
    np.sign: ops.sign,
    np.exp: ops.exp,
    np.exp2: lambda x: ops.pow(2.0, x),
    np.expm1: ops.expm1,
    np.log: ops.log,
    np.log2: lambda x: ops.mul(ops.log(x), 1.0 / _LN2),
    np.log10: lambda x: ops.mul(ops.log(x), 1.0 / _LN10),
    np.log1p: ops.log1p,
    np.sqrt: ops.sqrt,
    np.square: lambda x: ops.mul(x, x),
    np.reciprocal: _reciprocal,
    np.sin: ops.sin,
    np.cos: ops.cos,
    np.tan: lambda x: ops.div(ops.sin(x), ops.cos(x)),
    np.tanh: ops.tanh,
    np.sinh: _sinh,
    np.cosh: _cosh,
    np.arctan: ops.atan,
    np.arcsinh: ops.asinh,
    np.arcsin: ops.asin,
    np.arccos: ops.acos,
    np.arccosh: ops.acosh,
    np.arctanh: ops.atanh,
    np.arctan2: ops.atan2,
    np.hypot: ops.hypot,
    np.logaddexp2: _logaddexp2,
    # As NumPy's loops: x * (pi / 180) and x * (180 / pi).
    np.deg2rad: lambda x: ops.mul(x, math.pi / 180.0),
    np.radians: lambda x: ops.mul(x, math.pi / 180.0),
    np.rad2deg: lambda x: ops.mul(x, 180.0 / math.pi),
    np.degrees: lambda x: ops.mul(x, 180.0 / math.pi),
    np.cbrt: ops.cbrt,
    np.rint: ops.rint,
    np.copysign: ops.copysign,
    np.fmod: ops.fmod,
    np.heaviside: _heaviside,
    np.signbit: ops.signbit,
    np.conjugate: lambda x: x,            # real inputs: the value itself
    # NumPy 2 keeps integer and boolean inputs of floor/ceil as they are.
    np.floor: lambda x: ops.floor(x) if is_float(ops.dtype_of(x)) else x,
    np.ceil: lambda x: ops.ceil(x) if is_float(ops.dtype_of(x)) else x,
    np.trunc: _trunc,
    np.isnan: _float_pred(_isnan),
    np.isinf: _float_pred(_isinf),
    np.isfinite: _float_pred(_isfinite),
}


#: NumPy's boolean loops of ufuncs whose arithmetic primitives take no booleans.
_BOOL_LOOPS: dict[np.ufunc, Callable] = {
    np.add: ops.or_, np.multiply: ops.and_, np.maximum: ops.or_, np.minimum: ops.and_,
    np.fmax: ops.or_, np.fmin: ops.and_, np.absolute: lambda x: x,
}


# A comparison with its operands swapped.
_MIRRORED = {np.less: np.greater, np.less_equal: np.greater_equal, np.greater: np.less,
             np.greater_equal: np.less_equal, np.equal: np.equal, np.not_equal: np.not_equal}


def _compare_int64_uint64(ufunc, x, y):
    """NumPy 2 compares int64 with uint64 exactly (no common dtype holds both): a negative
    int64 is below every uint64; the others compare as uint64."""
    if ops.dtype_of(x) == "u64":
        return _compare_int64_uint64(_MIRRORED[ufunc], y, x)
    same = UFUNCS[ufunc](ops.cast(x, "u64"), y)
    if ufunc in (np.less, np.less_equal, np.not_equal):
        return ops.or_(ops.lt(x, 0), same)
    return ops.and_(ops.ge(x, 0), same)


def apply_ufunc(ufunc: np.ufunc, *inputs, dtype=None, casting="same_kind"):
    """Apply a ufunc to traced operands with NumPy's promotion and broadcasting (and its
    dtype= and casting= keywords)."""
    xs = [as_operand(x) for x in inputs]
    if ufunc is np.matmul:       # a gufunc: implemented with the products (linalg)
        return FUNCTIONS[np.matmul](*xs, dtype=dtype, casting=casting)
    impl = UFUNCS.get(ufunc)
    if impl is None:
        raise errors.user_error(errors.UnsupportedError,
                                f"numpy.{ufunc.__name__} is not supported")
    broadcast_shape(xs)          # shape errors name the operands as the user wrote them
    in_dtypes, out_dtype, weak = resolve(ufunc, xs, dtype, casting)
    xs = broadcast_all([convert(x, d) for x, d in zip(xs, in_dtypes)])
    if ufunc in _MIRRORED and len(set(in_dtypes)) > 1:
        return _compare_int64_uint64(ufunc, *xs)
    if in_dtypes[0] == "bool":
        impl = _BOOL_LOOPS.get(ufunc, impl)
    result = impl(*xs)
    if ops.dtype_of(result) != out_dtype:
        result = ops.cast(result, out_dtype)
    return weaken(result, weak)


def ufunc_options(name: str, kwargs: dict) -> tuple:
    """(dtype, casting) from the keywords of a ufunc call; refuses those tracejit cannot honour
    (out=, where=, signature=, ...), naming them."""
    if kwargs.get("out") is not None:
        raise unsupported(name, "out", why="an in-place update cannot take a traced value: "
                          "traced arrays are immutable; write `y = f(...)` instead of updating "
                          "in place")
    kwargs.pop("out", None)
    if kwargs.pop("where", True) is not True:
        raise unsupported(name, "where", why="without out= the unselected elements are "
                          "undefined in NumPy; use np.where on the result")
    check_order(name, kwargs.pop("order", None))
    kwargs.pop("subok", None)        # results are plain arrays either way
    dtype, casting = kwargs.pop("dtype", None), kwargs.pop("casting", "same_kind")
    if kwargs:
        raise unsupported(name, *kwargs)
    return dtype, casting


@implements_ufunc_method("__call__")
def ufunc_call(ufunc: np.ufunc, *inputs, **kwargs):
    """`ufunc(*inputs, **kwargs)` with a traced operand: a NumPy function's strong result."""
    dtype, casting = ufunc_options(f"numpy.{ufunc.__name__}", kwargs)
    if ufunc in _TWO_RESULTS:
        return tuple(strong(r) for r in _TWO_RESULTS[ufunc](*inputs, dtype=dtype,
                                                               casting=casting))
    return strong(apply_ufunc(ufunc, *inputs, dtype=dtype, casting=casting))


def _modf(x, dtype=None, casting="same_kind"):
    (dt,), out, _ = resolve(np.modf, [as_operand(x)], dtype, casting)
    x = convert(as_operand(x), dt)
    integral = UFUNCS[np.trunc](x)
    # x - trunc(x) is NaN at ±inf (NumPy: ±0) and +0.0 at negative integers (NumPy: -0.0).
    frac = ops.select(ops.eq(ops.abs(x), np.inf), 0.0, ops.sub(x, integral))
    return ops.cast(ops.copysign(frac, x), out), ops.cast(integral, out)


#: The ufuncs of two results, as pairs of the single-result ufuncs NumPy defines them by.
_TWO_RESULTS = {
    np.divmod: lambda x, y, **o: (apply_ufunc(np.floor_divide, x, y, **o),
                                  apply_ufunc(np.remainder, x, y, **o)),
    np.modf: _modf,
}


@implements(np.clip)
def clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue,
         max=np._NoValue, **kwargs):
    """numpy.clip: maximum then minimum, with the ufunc keywords."""
    # NumPy's clip is a ufunc: it takes the ufunc keywords.
    dtype, casting = ufunc_options("numpy.clip", dict(kwargs, out=out))
    if (a_min is not np._NoValue or a_max is not np._NoValue) and \
            (min is not np._NoValue or max is not np._NoValue):
        raise errors.user_error(ValueError, "numpy.clip: min= and max= cannot be passed "
                                "beside a_min and a_max")
    lo = a_min if a_min is not np._NoValue else (min if min is not np._NoValue else None)
    hi = a_max if a_max is not np._NoValue else (max if max is not np._NoValue else None)
    r = a
    if lo is not None:
        r = apply_ufunc(np.maximum, r, lo, dtype=dtype, casting=casting)
    if hi is not None:
        r = apply_ufunc(np.minimum, r, hi, dtype=dtype, casting=casting)
    return strong(r)


@implements(np.round, np.around)
def round_(a, decimals=0, out=None):
    """numpy.round: as NumPy computes it, rint(a * 10**decimals) / 10**decimals (a / 10**-d and
    * 10**-d for negative decimals); integers with negative decimals round half to even at
    multiples of 10**-decimals, and are otherwise unchanged."""
    if out is not None:
        raise unsupported("numpy.round", "out", why="results are new values")
    x = as_operand(a)
    if not isinstance(decimals, (int, np.integer)):
        raise errors.user_error(TypeError, "numpy.round: decimals must be an integer")
    decimals = int(decimals)
    dtype = ops.dtype_of(x)
    if dtype == "bool":
        # NumPy rounds booleans in float16: 0 and 1 stay; other decimals cannot cast back.
        if decimals != 0:
            raise errors.user_error(TypeError, "numpy.round of booleans: Cannot cast ufunc "
                                    "output from dtype('float64') to dtype('bool')")
        return ops.cast(x, "f16")
    if not is_float(dtype):
        if decimals >= 0:
            return strong(x)
        f = 10 ** -decimals
        q, r = ops.floordiv(x, f), ops.mod(x, f)
        # Half to even: up when 2r > f, or 2r == f and q is odd.
        up = ops.or_(ops.gt(ops.mul(r, 2), f),
                     ops.and_(ops.eq(ops.mul(r, 2), f), ops.ne(ops.mod(q, 2), 0)))
        return strong(ops.mul(ops.select(up, ops.add(q, 1), q), f))
    if decimals >= 0:
        f = 10.0 ** decimals
        return strong(ops.div(ops.rint(ops.mul(x, f)), f))
    f = 10.0 ** -decimals
    return strong(ops.mul(ops.rint(ops.div(x, f)), f))


@implements(np.fix)
def fix(x, out=None):
    """numpy.fix: rounding toward zero (integers unchanged)."""
    if out is not None:
        raise unsupported("numpy.fix", "out", why="results are new values")
    return strong(_trunc(as_operand(x)))


@implements(np.sinc)
def sinc(x):
    """numpy.sinc: sin(pi x) / (pi x), as NumPy computes it (x = 0 stands in as 1e-20)."""
    x = as_operand(x)
    if not is_float(ops.dtype_of(x)):          # integers and bools as float64, as NumPy's
        x = ops.cast(x, "f64") if isinstance(x, Tracer) else convert(x, "f64")
    y = ops.mul(math.pi, ops.select(ops.eq(x, 0.0), 1.0e-20, x))
    return strong(ops.div(ops.sin(y), y))


@implements(np.real)
def real(val):
    """numpy.real of a real array: the array itself."""
    return strong(as_operand(val))


@implements(np.imag)
def imag(val):
    """numpy.imag of a real array: zeros of its dtype."""
    x = as_operand(val)
    return strong(ops.zeros(ops.type_of(x)))


# ---------------------------------------------------------------------------------------------
# dtypes


@implements(np.astype)
def astype(x, dtype, copy=True, *, device=None):
    """numpy.astype (the function; ndarray.astype is `_ndarray_astype`)."""
    # copy= cannot matter: traced values are immutable, so a copy and a view are alike.
    check_device("numpy.astype", device)
    return ops.cast(as_operand(x), check_dtype(dtype))


@implements_method(np.ndarray.astype)
def _ndarray_astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
    check_order("astype", order)
    target = check_dtype(dtype)
    check_casting([self], target, casting)
    return ops.cast(self, target)


@implements(np.result_type)
def result_type(*args):
    """numpy.result_type of tracers (their dtypes) and anything NumPy takes."""
    keys = []
    for a in args:
        if isinstance(a, Tracer):
            keys.append(a.dtype)
        else:
            keys.append(a)
    return np.result_type(*keys)
