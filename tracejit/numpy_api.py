"""NumPy on Tracers: the ufunc table, the `__array_function__` table, operators, indexing.

This is where NumPy's semantics are reproduced on top of the strict ops: dtype promotion
exactly as NumPy 2 does it (NEP 50: Python numbers are weak, NumPy scalars are not; the ufunc
loops decide, through `ufunc.resolve_dtypes`), broadcasting, axis normalisation, keepdims,
NumPy's indexing rules, and the compositions that map NumPy functions onto the primitives
(mean = sum / n, var, clip, logaddexp, einsum, ...).
"""

from __future__ import annotations

import functools
import inspect
import math
import string
from typing import Callable

import numpy as np

from . import errors, ops
from .ir import DTYPES, Type, UnsupportedDTypeError, dtype_name, is_float, is_int, is_python_scalar
from .tracer import Tracer

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)


# ---------------------------------------------------------------------------------------------
# operands: dtype keys, conversion, promotion, broadcasting


_is_py_scalar = is_python_scalar


def _py_type(x) -> type:
    return bool if isinstance(x, bool) else int if isinstance(x, int) else float


def _as_operand(x):
    """Tracer, NumPy array/scalar, or Python number; lists and tuples become arrays."""
    if isinstance(x, (Tracer, np.ndarray, np.generic)) or _is_py_scalar(x):
        if isinstance(x, (np.ndarray, np.generic)):
            _check_dtype(x.dtype)
        return x
    if isinstance(x, (list, tuple)):
        if any(isinstance(v, Tracer) for v in _leaves(x)):
            return stack([_as_operand(v) for v in x])
        arr = np.asarray(x)
        _check_dtype(arr.dtype)
        return arr
    if isinstance(x, complex):
        raise errors.user_error(errors.DTypeError, "complex numbers are not supported")
    raise errors.user_error(errors.DTypeError, f"cannot use {type(x).__name__} as an array")


def _leaves(xs):
    for v in xs:
        if isinstance(v, (list, tuple)):
            yield from _leaves(v)
        else:
            yield v


def _check_dtype(dt):
    try:
        return dtype_name(dt)
    except UnsupportedDTypeError as exc:
        raise errors.user_error(errors.DTypeError, str(exc)) from None


def _promotion_key(x):
    """What NumPy's promotion sees: a dtype, or the Python type of a weak scalar."""
    if isinstance(x, Tracer):
        return _py_type({"f32": 0.0, "f64": 0.0, "i32": 0, "i64": 0}.get(x.type.dtype, False)) \
            if x.weak else x.dtype
    if _is_py_scalar(x):
        return _py_type(x)
    return np.asarray(x).dtype


def _resolve(ufunc, xs, dtype=None, casting="same_kind") -> tuple[list[str], str, bool]:
    """(input dtypes, output dtype, weak result) of `ufunc` on `xs`, as NumPy 2 decides; with
    `dtype` (the output's, as NumPy's dtype= means) and `casting` as NumPy takes them."""
    keys = [_promotion_key(x) for x in xs]
    all_weak = all(isinstance(k, type) for k in keys)
    if all_weak:
        # Only Python numbers: NumPy would convert them to default dtypes first.
        keys = [np.dtype(np.result_type(k(0))) if k is not bool else np.dtype(bool) for k in keys]
    # A Python bool is not weak in NumPy 2 (it acts as np.bool_), and resolve_dtypes only
    # takes int, float and complex as Python types.
    keys = [np.dtype(bool) if k is bool else k for k in keys]
    options = {"casting": casting}
    if dtype is not None:
        _check_dtype(np.dtype(dtype))
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
    ins = [_check_dtype(d) for d in dts[:ufunc.nin]]
    return ins, _check_dtype(dts[ufunc.nin]), all_weak and any(isinstance(x, Tracer) for x in xs)


def _convert(x, dtype: str):
    """`x` as an operand of `dtype` (a cast for tracers, a literal or array for constants)."""
    if _is_py_scalar(x):
        try:
            return ops.scalar(x, dtype)
        except OverflowError:
            raise errors.user_error(
                errors.DTypeError, f"Python integer {x} is out of bounds for {dtype}") from None
    return ops.cast(x, dtype)


def _type_str(x) -> str:
    if _is_py_scalar(x):
        return f"{_py_type(x).__name__}"
    return str(ops.type_of(x))


def _broadcast_shape(xs: list) -> tuple[int, ...]:
    """The shape NumPy broadcasts `xs` to, or a ShapeError naming every operand's type."""
    shapes = [np.shape(x) if not isinstance(x, Tracer) else x.shape for x in xs]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise errors.user_error(
            errors.ShapeError, "operands could not be broadcast together: "
            + " and ".join(_type_str(x) for x in xs)) from None


def _broadcast_all(xs: list) -> list:
    """NumPy broadcasting; rank-0 operands stay rank 0 (elementwise primitives take them)."""
    out = _broadcast_shape(xs)
    return [x if np.ndim(x) == 0 or tuple(np.shape(x)) == out else ops.broadcast_to(x, out)
            for x in xs]


def _weaken(result, weak: bool):
    if weak and isinstance(result, Tracer):
        result = Tracer(result.trace, result.node, True)
    return result


def _strong(x):
    """`x` as np.asarray would make it: a Python number becomes a default-dtype array and a weak
    tracer strong. NumPy functions (np.sqrt(s), np.sum(s), np.dot(x, 2.0), ...) return NumPy
    values, which promote strongly; only Python operators on Python numbers stay weak."""
    if _is_py_scalar(x):
        return np.asarray(x)
    if isinstance(x, Tracer) and x.weak:
        return Tracer(x.trace, x.node, False)
    return x


def _result_dtype(*xs) -> str:
    """np.result_type with weak Python scalars, for functions that are not ufuncs."""
    keys = []
    for x in xs:
        k = _promotion_key(x)
        keys.append(k(0) if isinstance(k, type) else k)
    return _check_dtype(np.result_type(*keys))


# ---------------------------------------------------------------------------------------------
# ufuncs


def _truth(x):
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


def _logaddexp(x, y):
    # log(e^x + e^y) = m + log1p(e^(x-m) + e^(y-m) - 1) holds for every m, so its derivatives
    # do not depend on m's: with m = max(x, y) the ties' split gradient cancels and first and
    # second derivatives are exact at x == y too (max + log1p(exp(-|x - y|)) has kinks there
    # that cancel in value but not in the second derivative). One of x - m, y - m is 0, so the
    # sum is exp(the other) + expm1(0), as accurate as NumPy's formula. Where m is infinite
    # (or NaN) the result is m, and the formula runs on zeros so its unused gradient is 0.
    m = ops.max(x, y)
    finite = ops.lt(ops.abs(m), np.inf)
    xs, ys = ops.select(finite, x, 0.0), ops.select(finite, y, 0.0)
    ms = ops.max(xs, ys)
    dx, dy = ops.sub(xs, ms), ops.sub(ys, ms)
    x_max = ops.ge(xs, ys)
    s = ops.add(ops.exp(ops.select(x_max, dy, dx)), ops.expm1(ops.select(x_max, dx, dy)))
    return ops.select(finite, ops.add(ms, ops.log1p(s)), m)


def _reciprocal(x):
    if not is_float(ops.dtype_of(x)):
        raise errors.user_error(errors.UnsupportedError,
                                "numpy.reciprocal of integers is not supported")
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
    np.logical_and: lambda x, y: ops.and_(_truth(x), _truth(y)),
    np.logical_or: lambda x, y: ops.or_(_truth(x), _truth(y)),
    np.logical_xor: lambda x, y: ops.xor(_truth(x), _truth(y)),
    np.logical_not: lambda x: ops.logical_not(_truth(x)),
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


def apply_ufunc(ufunc: np.ufunc, *inputs, dtype=None, casting="same_kind"):
    """Apply a ufunc to traced operands with NumPy's promotion and broadcasting (and its
    dtype= and casting= keywords)."""
    xs = [_as_operand(x) for x in inputs]
    if ufunc is np.matmul:
        return matmul(*xs, dtype=dtype, casting=casting)
    impl = UFUNCS.get(ufunc)
    if impl is None:
        raise errors.user_error(errors.UnsupportedError,
                                f"numpy.{ufunc.__name__} is not supported")
    _broadcast_shape(xs)          # shape errors name the operands as the user wrote them
    in_dtypes, out_dtype, weak = _resolve(ufunc, xs, dtype, casting)
    xs = _broadcast_all([_convert(x, d) for x, d in zip(xs, in_dtypes)])
    if in_dtypes[0] == "bool":
        impl = _BOOL_LOOPS.get(ufunc, impl)
    result = impl(*xs)
    if ops.dtype_of(result) != out_dtype:
        result = ops.cast(result, out_dtype)
    return _weaken(result, weak)


_REDUCE_METHOD = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
                  np.logical_and: "all", np.logical_or: "any"}


def _unsupported(name: str, *keywords: str, why: str = "") -> errors.TracejitError:
    """The UnsupportedError for `name` called with `keywords` (named, with the user's line)."""
    given = ", ".join(f"{k}=" for k in keywords)
    return errors.user_error(errors.UnsupportedError, f"{name} with {given} is not supported"
                             + (f": {why}" if why else ""))


def _check_order(name: str, order, allowed: str = "CKA") -> None:
    """order= decides only the memory layout of a new array, and tracejit's results are
    C-contiguous: 'C' (and 'K' and 'A', which give C order for them) is honoured."""
    if order is None or (isinstance(order, str) and order.upper() in allowed):
        return
    raise _unsupported(name, "order", why=f"order={order!r}: results are C-contiguous arrays "
                       "(np.asfortranarray(result) outside the traced function gives F order)")


def _check_device(name: str, device) -> None:
    if device not in (None, "cpu"):
        raise _unsupported(name, "device", why=f"device={device!r}: NumPy arrays live on the "
                           "cpu; to run on a GPU, jit with backend='cuda'")


def _ufunc_options(name: str, kwargs: dict) -> tuple:
    """(dtype, casting) from the keywords of a ufunc call; refuses those tracejit cannot honour
    (out=, where=, signature=, ...), naming them."""
    if kwargs.get("out") is not None:
        raise _unsupported(name, "out", why="an in-place update cannot take a traced value: "
                           "traced arrays are immutable; write `y = f(...)` instead of updating "
                           "in place")
    kwargs.pop("out", None)
    if kwargs.pop("where", True) is not True:
        raise _unsupported(name, "where", why="without out= the unselected elements are "
                           "undefined in NumPy; use np.where on the result")
    _check_order(name, kwargs.pop("order", None))
    kwargs.pop("subok", None)        # results are plain arrays either way
    dtype, casting = kwargs.pop("dtype", None), kwargs.pop("casting", "same_kind")
    if kwargs:
        raise _unsupported(name, *kwargs)
    return dtype, casting


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """Tracer.__array_ufunc__: NumPy hands every ufunc call on a Tracer to us."""
    name = f"numpy.{ufunc.__name__}"
    if method == "__call__":
        dtype, casting = _ufunc_options(name, kwargs)
        return _strong(apply_ufunc(ufunc, *inputs, dtype=dtype, casting=casting))
    if method == "reduce" and ufunc in _REDUCE_METHOD:
        x = inputs[0]
        axis = kwargs.pop("axis", 0)
        return reduction(_REDUCE_METHOD[ufunc], x, axis=axis, **kwargs)
    raise errors.user_error(errors.UnsupportedError, f"{name}.{method} is not supported")


# ---------------------------------------------------------------------------------------------
# reductions


def _axes(axis, ndim: int, name: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if isinstance(a, Tracer) or not isinstance(a, (int, np.integer)):
            raise errors.user_error(TypeError, f"{name}: axis must be static integers, got {a!r}")
        a = int(a)
        if not -ndim <= a < ndim:
            raise errors.user_error(
                errors.ShapeError, f"{name}: axis {a} is out of bounds for an array of "
                f"dimension {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise errors.user_error(ValueError, f"{name}: duplicate value in axis {axis!r}")
    return tuple(out)


def _keep(x, reduced, axes, keepdims: bool, in_shape):
    if not keepdims:
        return reduced
    return ops.reshape(reduced, tuple(1 if i in axes else n for i, n in enumerate(in_shape)))


def _sum_dtype(dtype: str) -> str:
    # NumPy sums and multiplies booleans and small integers in the default integer (int64).
    return "i64" if dtype in ("bool", "i32") else dtype


def reduction(kind: str, x, axis=None, dtype=None, keepdims=False, ddof=0, out=None,
              initial=None, where=None, **extra):
    """sum, prod, max, min, mean, var, std, all, any over `axis`, NumPy's way."""
    name = f"numpy.{kind}"
    bad = [k for k, v in (("out", out), ("initial", initial)) if v is not None and
           (k == "out" or kind not in _INITIAL)]
    bad += [k for k in extra] + ([] if where is None or where is True or where is np.True_
                                 else ["where"])
    bad += ["ddof"] if ddof and kind not in ("var", "std") else []
    if bad:
        raise _unsupported(name, *bad, why="mask the operand instead, with the reduction's "
                           "identity: np.sum(np.where(mask, x, 0))" if "where" in bad else "")
    if initial is not None and np.ndim(initial) != 0:
        raise errors.user_error(ValueError, f"{name}: the initial value must be a scalar")
    x = _as_operand(x)
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    t = ops.type_of(x)
    axes = _axes(axis, t.ndim, name)
    count = math.prod(t.shape[a] for a in axes)
    if dtype is not None:
        x = _convert(x, _check_dtype(dtype))
    src = ops.dtype_of(x)

    if kind in ("all", "any") and dtype is not None and src != "bool":
        raise _unsupported(name, "dtype", why="logical reductions give booleans")
    if kind in ("sum", "prod") and (src if dtype is not None else _sum_dtype(src)) == "bool":
        # NumPy's boolean add and multiply are logical or and and.
        r = _logical_reduction("any" if kind == "sum" else "all", x, axes, count, t.shape)
    elif kind in ("sum", "prod"):
        x = ops.cast(x, src if dtype is not None else _sum_dtype(src))
        r = (ops.reduce_sum if kind == "sum" else ops.reduce_prod)(x, axes)
    elif kind in ("max", "min"):
        if count == 0 and initial is not None:
            r = ops.broadcast_to(_convert(initial, src), _kept_shape(t.shape, axes))
        elif count == 0 and t.size == 0:
            raise errors.user_error(
                errors.ShapeError, f"{name}: zero-size array to reduction operation {kind}imum "
                "which has no identity")
        else:
            r = (ops.reduce_max if kind == "max" else ops.reduce_min)(x, axes)
    elif kind in ("all", "any"):
        r = _logical_reduction(kind, x, axes, count, t.shape)
    elif kind in ("mean", "var", "std"):
        if kind != "mean" and dtype is not None and not is_float(src):
            raise errors.user_error(
                errors.UnsupportedError, f"{name} with an integer dtype= (NumPy truncates the "
                "mean and every squared deviation) is not supported; use a float dtype")
        fdtype = src if is_float(src) else "f64"
        xf = ops.cast(x, fdtype)
        mean = ops.div(ops.reduce_sum(xf, axes), float(count))
        if kind == "mean":
            # NumPy casts the quotient back to an integer dtype= (truncating).
            r = mean if fdtype == src else ops.cast(mean, src) if dtype is not None else mean
        else:
            d = ops.sub(xf, ops.broadcast_in_dim(
                mean, t.shape, tuple(i for i in range(t.ndim) if i not in axes)))
            r = ops.div(ops.reduce_sum(ops.mul(d, d), axes), float(max(count - ddof, 0)))
            if kind == "std":
                # At zero variance the gradient is 0: exact where the slices have one element
                # (std is then 0 for every input), and elsewhere the least subgradient, as
                # |x|' = 0 at 0 (sqrt's infinite slope times var's zero slope would be NaN).
                zero = ops.eq(r, 0.0)
                r = ops.select(zero, 0.0, ops.sqrt(ops.select(zero, 1.0, r)))
    else:
        raise AssertionError(kind)
    if initial is not None:
        # NumPy starts the reduction from `initial` (cast to the result's dtype).
        r = apply_ufunc(_INITIAL[kind], _convert(initial, ops.dtype_of(r)), r)
    return _strong(_keep(x, r, axes, keepdims, t.shape))


#: The reductions that take initial=, and the ufunc that combines it with the result.
_INITIAL = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}


def _kept_shape(shape, axes) -> tuple[int, ...]:
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _logical_reduction(kind: str, x, axes, count: int, shape):
    """all or any of x's truth values over `axes` (`count` elements each)."""
    b = _truth(x)
    if count == 0 and axes:
        return ops.full(Type(_kept_shape(shape, axes), "bool"), kind == "all")
    return (ops.reduce_min if kind == "all" else ops.reduce_max)(b, axes)


def arg_reduction(kind: str, x, axis=None, out=None, keepdims=False):
    """argmax / argmin (no gradient): the flat index when axis is None, like NumPy."""
    if out is not None:
        raise errors.user_error(errors.UnsupportedError, f"numpy.{kind} with out= is not supported")
    x = _as_operand(x)
    t = ops.type_of(x)
    if isinstance(axis, (tuple, list)):
        raise errors.user_error(TypeError, f"numpy.{kind}: axis must be an integer or None, "
                                f"got {axis!r}")
    a = None if axis is None else _axes(axis, t.ndim, f"numpy.{kind}")[0]
    # As NumPy: an error when the searched axis is empty (other axes may be).
    if (t.size if a is None else t.shape[a]) == 0:
        raise errors.user_error(errors.ShapeError, f"numpy.{kind}: attempt to get {kind} of an "
                                "empty sequence")
    fn = ops.argmax if kind == "argmax" else ops.argmin
    if a is None:
        r = fn(ops.reshape(x, (t.size,)), 0)
        return ops.reshape(r, (1,) * t.ndim) if keepdims else r
    return _keep(x, fn(x, a), (a,), keepdims, t.shape)


# ---------------------------------------------------------------------------------------------
# shapes


def _static_ints(value, what: str) -> tuple[int, ...]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, Tracer) for v in items):
        raise errors.user_error(
            errors.ConcretizationError, f"{what} must be static: it depends on a traced value; "
            "use shapes (x.shape) or pass it with static_argnums")
    return tuple(int(v) for v in items)


def _check_index_order(name: str, order) -> None:
    """The index order of reshape and ravel: 'C' or 'F'. 'A' and 'K' follow an array's memory
    layout, which a traced value does not have."""
    if order not in ("C", "F"):
        raise _unsupported(name, "order", why=f"order={order!r} follows the memory layout of "
                           "an array, which a traced value does not have; use 'C' or 'F'")


def reshape(x, shape, order="C", *, newshape=None, copy=None):
    # copy= cannot matter: traced values are immutable, so a copy and a view are alike.
    x = _as_operand(x)
    _check_index_order("numpy.reshape", order)
    shape = _static_ints(shape if newshape is None else newshape, "a reshape's shape")
    size = ops.type_of(x).size
    if shape.count(-1) > 1:
        raise errors.user_error(errors.ShapeError, "can only specify one unknown dimension")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or size % known:
            raise errors.user_error(errors.ShapeError, f"cannot reshape {ops.type_of(x)} into "
                                    f"shape {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if math.prod(shape) != size or any(s < 0 for s in shape):
        raise errors.user_error(errors.ShapeError, f"cannot reshape {ops.type_of(x)} into "
                                f"shape {shape}")
    if order == "F":
        # Fortran order is C order on the axes reversed, before and after.
        nd = ops.type_of(x).ndim
        r = ops.reshape(ops.transpose(x, tuple(reversed(range(nd)))), shape[::-1])
        return ops.transpose(r, tuple(reversed(range(len(shape)))))
    return ops.reshape(x, shape)


def transpose(x, axes=None):
    x = _as_operand(x)
    nd = ops.type_of(x).ndim
    if axes is None:
        perm = tuple(reversed(range(nd)))
    else:
        perm = _axes(tuple(axes), nd, "numpy.transpose")
        if len(perm) != nd:
            raise errors.user_error(ValueError, f"transpose: axes {axes} don't match an array "
                                    f"of dimension {nd}")
    return ops.transpose(x, perm)


def swapaxes(x, axis1, axis2):
    nd = ops.type_of(x).ndim
    a, b = _axes((axis1,), nd, "swapaxes")[0], _axes((axis2,), nd, "swapaxes")[0]
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return ops.transpose(x, perm)


def moveaxis(x, source, destination):
    nd = ops.type_of(x).ndim
    src = _axes(source if isinstance(source, (tuple, list)) else (source,), nd, "moveaxis")
    dst = _axes(destination if isinstance(destination, (tuple, list)) else (destination,), nd,
                "moveaxis")
    if len(src) != len(dst):
        raise errors.user_error(ValueError, "moveaxis: source and destination differ in length")
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ops.transpose(x, order)


def expand_dims(x, axis):
    t = ops.type_of(x)
    nd = t.ndim + (len(axis) if isinstance(axis, (tuple, list)) else 1)
    axes = _axes(axis, nd, "expand_dims")
    it = iter(t.shape)
    return ops.reshape(x, tuple(1 if i in axes else next(it) for i in range(nd)))


def squeeze(x, axis=None):
    t = ops.type_of(x)
    axes = tuple(i for i, n in enumerate(t.shape) if n == 1) if axis is None \
        else _axes(axis, t.ndim, "squeeze")
    for a in axes:
        if t.shape[a] != 1:
            raise errors.user_error(errors.ShapeError, f"cannot select an axis to squeeze out "
                                    f"which has size not equal to one ({t}, axis {a})")
    return ops.reshape(x, tuple(n for i, n in enumerate(t.shape) if i not in axes))


def ravel(x, order="C"):
    _check_index_order("numpy.ravel", order)
    return reshape(x, (-1,), order)


def broadcast_to(x, shape, subok=False):
    x = _as_operand(x)
    shape = _static_ints(shape, "broadcast_to's shape")
    t = ops.type_of(x)
    try:
        if np.broadcast_shapes(t.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise errors.user_error(errors.ShapeError, f"cannot broadcast {t} to shape {shape}") \
            from None
    return ops.broadcast_to(x, shape)


def _check_casting(xs, target: str, casting: str) -> None:
    """NumPy's casting= rule for converting every operand in `xs` to dtype `target`."""
    to = np.dtype(DTYPES[target])
    for x in xs:
        src = ops.type_of(x).np_dtype
        if not np.can_cast(src, to, casting):
            raise errors.user_error(errors.DTypeError, f"Cannot cast array data from {src!r} to "
                                    f"{to!r} according to the rule {casting!r}")


def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    if out is not None:
        raise _unsupported("numpy.concatenate", "out")
    xs = [_as_operand(a) for a in arrays]
    if not xs:
        raise errors.user_error(ValueError, "need at least one array to concatenate")
    if axis is None:
        xs = [ravel(x) for x in xs]
        axis = 0
    nd = ops.type_of(xs[0]).ndim
    if nd == 0 or any(ops.type_of(x).ndim != nd for x in xs):
        raise errors.user_error(errors.ShapeError, "concatenate: all inputs must have the same "
                                "number of dimensions (>= 1), got "
                                + ", ".join(_type_str(x) for x in xs))
    (a,) = _axes((axis,), nd, "concatenate")
    target = _check_dtype(dtype) if dtype is not None else _result_dtype(*xs)
    _check_casting(xs, target, casting)
    xs = [ops.cast(x if not _is_py_scalar(x) else np.asarray(x), target) for x in xs]
    shapes = [ops.type_of(x).shape for x in xs]
    if any(s[:a] + s[a + 1:] != shapes[0][:a] + shapes[0][a + 1:] for s in shapes):
        raise errors.user_error(errors.ShapeError, f"concatenate: shapes {shapes} differ off "
                                f"axis {a}")
    xs = [x if isinstance(x, Tracer) else np.asarray(x) for x in xs]
    return ops.concatenate(xs, a)


def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    # NumPy converts Python numbers to (strong, default-dtype) arrays here.
    xs = [np.asarray(x) if _is_py_scalar(x) else x for x in map(_as_operand, arrays)]
    if not xs:
        raise errors.user_error(ValueError, "need at least one array to stack")
    shapes = {tuple(np.shape(x)) if not isinstance(x, Tracer) else x.shape for x in xs}
    if len(shapes) != 1:
        raise errors.user_error(errors.ShapeError, "all input arrays must have the same shape, "
                                "got " + ", ".join(_type_str(x) for x in xs))
    nd = len(shapes.pop()) + 1
    (a,) = _axes((axis,), nd, "stack")
    return concatenate([expand_dims(x, a) for x in xs], axis=a, out=out, dtype=dtype,
                       casting=casting)


def vstack(arrays, **kw):
    xs = [np.asarray(x) if _is_py_scalar(x) else x for x in map(_as_operand, arrays)]
    xs = [reshape(x, (1, -1)) if np.ndim(x) < 2 and not isinstance(x, Tracer) or
          isinstance(x, Tracer) and x.ndim < 2 else x for x in xs]
    return concatenate(xs, axis=0, **kw)


def hstack(arrays, **kw):
    xs = [np.asarray(x) if _is_py_scalar(x) else x for x in map(_as_operand, arrays)]
    xs = [reshape(x, (1,)) if ops.type_of(x).ndim == 0 else x for x in xs]
    return concatenate(xs, axis=0 if ops.type_of(xs[0]).ndim == 1 else 1, **kw)


def flip(x, axis=None):
    x = _as_operand(x)
    t = ops.type_of(x)
    axes = _axes(axis, t.ndim, "flip")
    starts = [n - 1 if i in axes and n else 0 for i, n in enumerate(t.shape)]
    steps = [-1 if i in axes else 1 for i in range(t.ndim)]
    return ops.slice(x, starts, steps, t.shape)


# ---------------------------------------------------------------------------------------------
# selection


def where(condition, x=None, y=None):
    if x is None or y is None:
        raise errors.user_error(
            errors.UnsupportedError, "numpy.where(condition) with one argument returns indices "
            "whose number depends on the data, which cannot be traced; use the three-argument "
            "form np.where(condition, x, y)")
    c, x, y = (_as_operand(v) for v in (condition, x, y))
    target = _result_dtype(x, y)
    c, x, y = _broadcast_all([_truth(_convert(c, ops.dtype_of(c)) if not _is_py_scalar(c)
                                     else np.bool_(c)),
                              _convert(x, target), _convert(y, target)])
    return ops.select(c, x, y)


def clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue,
         max=np._NoValue, **kwargs):
    # NumPy's clip is a ufunc: it takes the ufunc keywords.
    dtype, casting = _ufunc_options("numpy.clip", dict(kwargs, out=out))
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
    return _strong(r)


# ---------------------------------------------------------------------------------------------
# products


def _promote_pair(a, b, ufunc=np.matmul, dtype=None, casting="same_kind"):
    a, b = _strong(_as_operand(a)), _strong(_as_operand(b))
    (da, db), _, weak = _resolve(ufunc, [a, b], dtype, casting)
    a, b = _convert(a, da), _convert(b, db)
    if ops.dtype_of(a) == "bool":
        raise errors.user_error(errors.UnsupportedError, "matrix products of booleans are not "
                                "supported")
    return [v if isinstance(v, Tracer) or np.ndim(v) == 0 else np.asarray(v) for v in (a, b)]


def matmul(a, b, dtype=None, casting="same_kind"):
    a, b = _promote_pair(a, b, dtype=dtype, casting=casting)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if ta.ndim == 0 or tb.ndim == 0:
        raise errors.user_error(errors.ShapeError, f"matmul: input operand does not have enough "
                                f"dimensions ({ta} @ {tb}); use * for scalars")
    if ta.shape[-1] != tb.shape[max(tb.ndim - 2, 0)]:
        raise errors.user_error(errors.ShapeError, f"matmul: shapes {ta} and {tb} do not align: "
                                f"{ta.shape[-1]} != {tb.shape[max(tb.ndim - 2, 0)]}")
    a1, b1 = ta.ndim == 1, tb.ndim == 1
    if a1:
        a = ops.reshape(a, (1,) + ta.shape)
    if b1:
        b = ops.reshape(b, tb.shape + (1,))
    sa, sb = ops.type_of(a).shape, ops.type_of(b).shape
    ba, bb = sa[:-2], sb[:-2]
    if not bb:
        r = ops.dot(a, b, ((len(sa) - 1,), (0,)))
    elif not ba:
        r = ops.dot(a, b, ((1,), (len(sb) - 2,)))               # [n, batch..., m]
        r = ops.transpose(r, tuple(range(1, len(bb) + 1)) + (0, len(bb) + 1))
    else:
        try:
            batch = np.broadcast_shapes(ba, bb)
        except ValueError:
            raise errors.user_error(errors.ShapeError, f"matmul: batch dimensions of {ta} and "
                                    f"{tb} cannot be broadcast together") from None
        a = ops.broadcast_to(a, batch + sa[-2:])
        b = ops.broadcast_to(b, batch + sb[-2:])
        nb = len(batch)
        r = ops.dot(a, b, ((nb + 1,), (nb,)), (tuple(range(nb)), tuple(range(nb))))
    shape = ops.type_of(r).shape
    if a1:
        shape = shape[:-2] + shape[-1:]
    if b1:
        shape = shape[:-1]
    return ops.reshape(r, shape)


def dot(a, b, out=None):
    if out is not None:
        raise errors.user_error(errors.UnsupportedError, "dot with out= is not supported")
    a, b = _promote_pair(a, b)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if ta.ndim == 0 or tb.ndim == 0:
        return apply_ufunc(np.multiply, a, b)
    kb = 0 if tb.ndim == 1 else tb.ndim - 2
    if ta.shape[-1] != tb.shape[kb]:
        raise errors.user_error(errors.ShapeError, f"dot: shapes {ta} and {tb} not aligned: "
                                f"{ta.shape[-1]} (dim {ta.ndim - 1}) != {tb.shape[kb]} (dim {kb})")
    return ops.dot(a, b, ((ta.ndim - 1,), (kb,)))


def outer(a, b, out=None):
    if out is not None:
        raise _unsupported("numpy.outer", "out")
    a, b = _strong(_as_operand(a)), _strong(_as_operand(b))
    return apply_ufunc(np.multiply, reshape(ravel(a), (-1, 1)), reshape(ravel(b), (1, -1)))


def inner(a, b):
    a, b = _promote_pair(a, b)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if ta.ndim == 0 or tb.ndim == 0:
        return apply_ufunc(np.multiply, a, b)
    return tensordot(a, b, ((ta.ndim - 1,), (tb.ndim - 1,)))


def tensordot(a, b, axes=2):
    a, b = _promote_pair(a, b)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = tuple(range(ta.ndim - axes, ta.ndim)), tuple(range(axes))
    else:
        ax_a, ax_b = (_axes(tuple(v) if isinstance(v, (tuple, list)) else (v,), t.ndim,
                            "tensordot") for v, t in zip(axes, (ta, tb)))
    if len(ax_a) != len(ax_b) or any(ta.shape[i] != tb.shape[j] for i, j in zip(ax_a, ax_b)):
        raise errors.user_error(errors.ShapeError, f"tensordot: shape mismatch for sum over "
                                f"{ax_a} of {ta} and {ax_b} of {tb}")
    return ops.dot(a, b, (ax_a, ax_b))


def einsum(subscripts, *operands, out=None, optimize=False, dtype=None, order="K",
           casting="safe", **kwargs):
    """einsum for explicit or implicit subscripts, contracted pairwise from the left (whatever
    `optimize` asks: it changes the order of the work, not the result)."""
    if out is not None or kwargs:
        raise _unsupported("numpy.einsum", *(["out"] if out is not None else []), *kwargs)
    if not isinstance(subscripts, str):
        raise errors.user_error(errors.UnsupportedError, "numpy.einsum in the sublist form "
                                "(operand, [axes], ...) is not supported; pass a subscripts "
                                "string")
    _check_order("numpy.einsum", order)
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise errors.user_error(errors.UnsupportedError, "einsum with '...' is not supported")
    lhs, _, rhs = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise errors.user_error(ValueError, f"einsum: {len(ins)} subscripts for "
                                f"{len(operands)} operands")
    if "->" not in spec:
        rhs = "".join(sorted(c for c in set(lhs) if c in string.ascii_letters and
                             lhs.count(c) == 1))
    if len(set(rhs)) != len(rhs):
        raise errors.user_error(errors.UnsupportedError, f"einsum: repeated output index in "
                                f"{subscripts!r} is not supported")
    operands = [_strong(_as_operand(x)) for x in operands]
    target = _check_dtype(dtype) if dtype is not None else _result_dtype(*operands)
    _check_casting(operands, target, casting)
    xs = [_convert(_as_operand(x), target) for x in operands]
    sizes: dict[str, int] = {}
    for sub, x in zip(ins, xs):
        shape = ops.type_of(x).shape
        if len(sub) != len(shape) or len(set(sub)) != len(sub):
            raise errors.user_error(
                errors.UnsupportedError if len(set(sub)) != len(sub) else errors.ShapeError,
                f"einsum: subscripts {sub!r} do not fit operand {ops.type_of(x)}"
                + (" (repeated indices within an operand are not supported)"
                   if len(set(sub)) != len(sub) else ""))
        for c, n in zip(sub, shape):
            if sizes.setdefault(c, n) != n:
                raise errors.user_error(errors.ShapeError, f"einsum: index {c!r} has sizes "
                                        f"{sizes[c]} and {n}")

    def sum_unneeded(x, sub, needed):
        axes = [i for i, c in enumerate(sub) if c not in needed]
        return ops.reduce_sum(x, axes) if axes else x, "".join(c for c in sub if c in needed)

    later = lambda j: set(rhs).union(*ins[j:]) if j < len(ins) else set(rhs)  # noqa: E731
    cur, cur_sub = sum_unneeded(xs[0], ins[0], later(1))
    for j in range(1, len(xs)):
        b, b_sub = sum_unneeded(xs[j], ins[j], later(j + 1) | set(cur_sub))
        keep = later(j + 1)
        common = [c for c in cur_sub if c in b_sub]
        batch = [c for c in common if c in keep]
        contract = [c for c in common if c not in keep]
        cur = ops.dot(cur, b, (tuple(cur_sub.index(c) for c in contract),
                               tuple(b_sub.index(c) for c in contract)),
                      (tuple(cur_sub.index(c) for c in batch),
                       tuple(b_sub.index(c) for c in batch)))
        cur_sub = ("".join(batch) + "".join(c for c in cur_sub if c not in common)
                   + "".join(c for c in b_sub if c not in common))
    cur, cur_sub = sum_unneeded(cur, cur_sub, set(rhs))
    if isinstance(cur, np.ndarray):
        cur = np.asarray(cur)
    return ops.transpose(cur, tuple(cur_sub.index(c) for c in rhs))


# ---------------------------------------------------------------------------------------------
# indexing


def _index_error(msg):
    return errors.user_error(errors.TracedIndexError, msg)


def _normalise_index(key, ndim):
    """Split an index into entries ('slice', s) / ('int', i) / ('adv', array) / ('new',)."""
    if not isinstance(key, tuple):
        key = (key,)
    entries = []
    for k in key:
        if isinstance(k, list) and any(isinstance(v, Tracer) for v in _leaves(k)):
            k = _as_operand(k)       # x[[i, 0]] with a traced i: a traced index array
        if k is None:
            entries.append(("new",))
        elif k is Ellipsis:
            entries.append(("ellipsis",))
        elif isinstance(k, slice):
            for part in (k.start, k.stop, k.step):
                if isinstance(part, Tracer):
                    raise _index_error(
                        "slice bounds must be static: a slice like x[i:j] with a traced i or j "
                        "has a data-dependent shape; pass the bound with static_argnums")
            entries.append(("slice", k))
        elif isinstance(k, Tracer):
            if k.type.dtype == "bool":
                raise _index_error(
                    "boolean mask indexing x[mask] with a traced mask gives a result whose "
                    "shape depends on the data, which cannot be traced; use "
                    "np.where(mask, x, 0) (or a masked sum) instead")
            if not is_int(k.type.dtype):
                raise _index_error(f"arrays used as indices must be integers, got {k.type}")
            entries.append(("adv", k))
        elif isinstance(k, (bool, np.bool_)):
            raise _index_error("a scalar boolean index is not supported")
        elif isinstance(k, (int, np.integer)):
            entries.append(("int", int(k)))
        else:
            arr = np.asarray(k)
            if arr.size == 0 and not isinstance(k, np.ndarray):
                arr = arr.astype(np.int64)   # NumPy: an empty list is an empty integer index
            if arr.dtype == np.bool_:
                if arr.ndim == 0:
                    raise _index_error("a scalar boolean index is not supported")
                # A concrete mask has a static number of True entries: its nonzero indices.
                for idx in np.nonzero(arr):
                    entries.append(("adv", idx.astype(np.int64)))
            elif arr.dtype.kind in "iu":
                entries.append(("adv", arr.astype(np.int64)))
            else:
                raise _index_error("only integers, slices (:), ellipsis (...), None and integer "
                                   f"arrays are valid indices, got {type(k).__name__}")
    consumed = sum(1 for e in entries if e[0] in ("slice", "int", "adv"))
    if consumed > ndim:
        raise _index_error(f"too many indices for array: array is {ndim}-dimensional, but "
                           f"{consumed} were indexed")
    n_ell = sum(1 for e in entries if e[0] == "ellipsis")
    if n_ell > 1:
        raise _index_error("an index can only have a single ellipsis ('...')")
    fill = [("slice", slice(None))] * (ndim - consumed)
    if n_ell:
        i = next(i for i, e in enumerate(entries) if e[0] == "ellipsis")
        entries = entries[:i] + fill + entries[i + 1:]
    else:
        entries = entries + fill
    return entries


def getitem(x, key):
    """NumPy indexing: basic (ints, slices, None, ...) and advanced (integer arrays)."""
    t = x.type
    entries = _normalise_index(key, t.ndim)
    has_adv = any(e[0] == "adv" for e in entries)
    if has_adv:  # beside an advanced index, an integer is an advanced index too
        entries = [("adv", np.int64(e[1])) if e[0] == "int" else e for e in entries]

    # None: insert size-1 axes, then treat them as full slices.
    shape, axis = [], 0
    for e in entries:
        if e[0] == "new":
            shape.append(1)
        else:
            shape.append(t.shape[axis])
            axis += 1
    x = ops.reshape(x, tuple(shape))
    entries = [("slice", slice(None)) if e[0] == "new" else e for e in entries]

    # Basic: one strided slice, then drop the integer-indexed axes.
    starts, steps, counts, keep = [], [], [], []
    for i, (e, n) in enumerate(zip(entries, shape)):
        if e[0] == "slice":
            start, stop, step = e[1].indices(n)
            count = len(range(start, stop, step))
            starts.append(start if count else 0)
            steps.append(step)
            counts.append(count)
            keep.append(True)
        elif e[0] == "int":
            if not -n <= e[1] < n:
                raise _index_error(f"index {e[1]} is out of bounds for axis {i} with size {n}")
            starts.append(e[1] % n)
            steps.append(1)
            counts.append(1)
            keep.append(False)
        else:
            starts.append(0)
            steps.append(1)
            counts.append(n)
            keep.append(True)
    x = ops.slice(x, starts, steps, counts)
    x = ops.reshape(x, tuple(c for c, k in zip(counts, keep) if k))
    entries = [e for e, k in zip(entries, keep) if k]
    if not has_adv:
        return x

    # Advanced: move the indexed axes to the front, gather, then put the result axes where
    # NumPy puts them (in place if the advanced indices are adjacent, else first).
    xt = ops.type_of(x)
    adv_axes = [i for i, e in enumerate(entries) if e[0] == "adv"]
    idx = []
    for a in adv_axes:
        v = entries[a][1]
        if isinstance(v, Tracer):
            idx.append(ops.cast(v, "i64"))
        else:
            n = xt.shape[a]
            v = np.asarray(v, dtype=np.int64)
            if v.size and (v.min() < -n or v.max() >= n):
                bad = v[(v < -n) | (v >= n)].flat[0]
                raise _index_error(f"index {bad} is out of bounds for axis {a} with size {n}")
            idx.append(np.where(v < 0, v + n, v))
    try:
        ishape = np.broadcast_shapes(*(ops.type_of(i).shape for i in idx))
    except ValueError:
        raise _index_error("shape mismatch: indexing arrays could not be broadcast together "
                           "with shapes " + " ".join(str(ops.type_of(i).shape) for i in idx)) \
            from None
    idx = [i if ops.type_of(i).shape == ishape else
           (ops.broadcast_to(i, ishape) if isinstance(i, Tracer) else np.broadcast_to(i, ishape))
           for i in idx]
    rest = [i for i in range(xt.ndim) if i not in adv_axes]
    x = ops.transpose(x, adv_axes + rest)
    r = ops.gather(x, idx)
    adjacent = adv_axes == list(range(adv_axes[0], adv_axes[0] + len(adv_axes)))
    if adjacent and adv_axes[0] > 0:
        k, p = len(ishape), adv_axes[0]
        nr = len(rest)
        perm = list(range(k, k + p)) + list(range(k)) + list(range(k + p, k + nr))
        r = ops.transpose(r, perm)
    return r


def take(a, indices, axis=None, out=None, mode="raise"):
    if out is not None:
        raise _unsupported("numpy.take", "out")
    if mode not in ("raise", "wrap", "clip"):
        raise errors.user_error(ValueError, f"numpy.take: mode must be 'raise', 'wrap' or "
                                f"'clip', got {mode!r}")
    a = _as_operand(a)
    if axis is None:
        a, ax = ravel(a), 0
    else:
        (ax,) = _axes((axis,), ops.type_of(a).ndim, "take")
    if mode != "raise":
        indices = _as_operand(indices)
        if is_int(ops.dtype_of(indices)):
            n = ops.type_of(a).shape[ax]
            if mode == "wrap":        # Python's modulo: -1 is the last index
                indices = ops.mod(indices, n) if isinstance(indices, Tracer) else \
                    np.mod(indices, max(n, 1))
            else:
                indices = ops.min(ops.max(indices, 0), n - 1) if isinstance(indices, Tracer) \
                    else np.clip(indices, 0, n - 1)
    return getitem(a, (slice(None),) * ax + (indices,))


def take_along_axis(arr, indices, axis):
    """out[..., i, ...] = arr[..., indices[..., i, ...], ...] along `axis`."""
    t = ops.type_of(arr)
    (ax,) = _axes((axis,), t.ndim, "take_along_axis")
    it = ops.type_of(indices)
    if it.ndim != t.ndim:
        raise errors.user_error(errors.ShapeError, "take_along_axis: indices and arr must have "
                                "the same number of dimensions")
    shape = np.broadcast_shapes(tuple(n if i != ax else 1 for i, n in enumerate(t.shape)),
                                tuple(n if i != ax else 1 for i, n in enumerate(it.shape)))
    shape = tuple(it.shape[i] if i == ax else n for i, n in enumerate(shape))
    key = []
    for i in range(t.ndim):
        if i == ax:
            key.append(indices)
        else:
            view = [1] * t.ndim
            view[i] = shape[i]
            key.append(np.arange(shape[i]).reshape(view))
    return getitem(arr, tuple(key))


# ---------------------------------------------------------------------------------------------
# constructors that take an array


def _like(fill, name="numpy.full_like"):
    def fn(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
        _check_order(name, order)
        _check_device(name, device)
        t = ops.type_of(_as_operand(a))
        dt = _check_dtype(dtype) if dtype is not None else t.dtype
        shape = t.shape if shape is None else _static_ints(shape, "shape")
        return ops.full(Type(shape, dt), fill)
    return fn


def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    if isinstance(fill_value, Tracer):
        _check_order("numpy.full_like", order)
        _check_device("numpy.full_like", device)
        t = ops.type_of(a)
        dt = _check_dtype(dtype) if dtype is not None else t.dtype
        return ops.broadcast_to(ops.cast(fill_value, dt), t.shape if shape is None else shape)
    return _like(fill_value)(a, dtype, order, subok, shape)


def astype(x, dtype, copy=True, *, device=None):
    # copy= cannot matter: traced values are immutable, so a copy and a view are alike.
    _check_device("numpy.astype", device)
    return ops.cast(_as_operand(x), _check_dtype(dtype))


def _astype_method(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
    _check_order("astype", order)
    target = _check_dtype(dtype)
    _check_casting([self], target, casting)
    return ops.cast(self, target)


def _copy(a, order="K", subok=False):
    _check_order("copy", order)
    return _as_operand(a)


def result_type(*args):
    keys = []
    for a in args:
        if isinstance(a, Tracer):
            keys.append(a.dtype)
        else:
            keys.append(a)
    return np.result_type(*keys)


# ---------------------------------------------------------------------------------------------
# the __array_function__ table


def _red(kind):
    def fn(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return reduction(kind, a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kw)
    return fn


def _red_nodtype(kind):
    def fn(a, axis=None, out=None, keepdims=False, **kw):
        return reduction(kind, a, axis=axis, out=out, keepdims=keepdims, **kw)
    return fn


def _var(kind):
    def fn(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
           correction=None):
        if mean is not None:
            raise _unsupported(f"numpy.{kind}", "mean", why="pass the array alone; tracejit "
                               "computes the mean itself")
        if correction is not None and ddof != 0:
            raise errors.user_error(ValueError, f"numpy.{kind}: ddof and correction can't be "
                                    "provided simultaneously")
        return reduction(kind, a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                         ddof=ddof if correction is None else correction, where=where)
    return fn


FUNCTIONS: dict[Callable, Callable] = {
    np.sum: _red("sum"), np.prod: _red("prod"), np.mean: _red("mean"),
    np.max: _red_nodtype("max"), np.min: _red_nodtype("min"),
    np.amax: _red_nodtype("max"), np.amin: _red_nodtype("min"),
    np.all: _red_nodtype("all"), np.any: _red_nodtype("any"),
    np.var: _var("var"), np.std: _var("std"),
    np.argmax: lambda a, axis=None, out=None, *, keepdims=False: arg_reduction(
        "argmax", a, axis, out, keepdims),
    np.argmin: lambda a, axis=None, out=None, *, keepdims=False: arg_reduction(
        "argmin", a, axis, out, keepdims),
    np.reshape: reshape, np.transpose: transpose, np.swapaxes: swapaxes,
    np.moveaxis: moveaxis, np.expand_dims: expand_dims, np.squeeze: squeeze, np.ravel: ravel,
    np.broadcast_to: broadcast_to, np.concatenate: concatenate, np.stack: stack,
    np.vstack: vstack, np.hstack: hstack, np.flip: flip,
    np.where: where, np.clip: clip,
    np.dot: dot, np.outer: outer, np.inner: inner, np.tensordot: tensordot, np.einsum: einsum,
    np.matmul: matmul,
    np.take: take, np.take_along_axis: take_along_axis,
    np.zeros_like: _like(0, "numpy.zeros_like"), np.ones_like: _like(1, "numpy.ones_like"),
    np.empty_like: _like(0, "numpy.empty_like"), np.full_like: full_like, np.astype: astype,
    np.copy: _copy,
    np.shape: lambda a: ops.type_of(a).shape,
    np.ndim: lambda a: ops.type_of(a).ndim,
    np.size: lambda a, axis=None: ops.type_of(a).size if axis is None
    else math.prod(ops.type_of(a).shape[i] for i in _axes(axis, ops.type_of(a).ndim, "size")),
    np.result_type: result_type,
}


def array_function(self, func, types, args, kwargs):
    """Tracer.__array_function__: NumPy hands every non-ufunc function call on a Tracer to us."""
    impl = FUNCTIONS.get(func)
    if impl is None:
        module = getattr(func, "__module__", "numpy") or "numpy"
        raise errors.user_error(errors.UnsupportedError,
                                f"{module}.{func.__name__} is not supported by tracejit")
    sig = _signature(func) if kwargs else None
    if sig is not None:
        # Arguments passed by keyword under NumPy's names (np.transpose(a=x)) go to the
        # implementation, which takes NumPy's parameters in NumPy's order, by position.
        bound = sig.bind(*args, **kwargs)
        args, kwargs = bound.args, bound.kwargs
    return impl(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def _signature(func):
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None



# ---------------------------------------------------------------------------------------------
# Tracer: operators, methods and the Python conversions that cannot be traced


def _concretization(what: str, way_out: str):
    # Any arguments: NumPy 2 calls __array__(dtype=None, copy=None), and the error is the same.
    def method(self, *args, **kwargs):
        raise errors.user_error(
            errors.ConcretizationError,
            f"{what} of a traced value {self.type}: its value is not known while tracing. "
            f"{way_out}")
    return method


_BRANCH = ("For a choice between values use np.where(condition, x, y); if the value only "
           "depends on arguments that do not change between calls, mark them static with "
           "static_argnums")


def _binop(ufunc, reflected=False):
    if reflected:
        return lambda self, other: apply_ufunc(ufunc, other, self)
    return lambda self, other: apply_ufunc(ufunc, self, other)


def _pow(self, other):
    return apply_ufunc(np.power, self, other)


def _iter(self):
    if self.ndim == 0:
        raise errors.user_error(TypeError, "iteration over a 0-d traced array")
    return (getitem(self, i) for i in range(self.shape[0]))


def _setitem(self, key, value):
    raise errors.user_error(
        errors.UnsupportedError, "in-place assignment x[...] = value is not supported: traced "
        "arrays are immutable; build the result with np.where(mask, value, x) or "
        "np.concatenate")


def _method(fn):
    return lambda self, *args, **kwargs: fn(self, *args, **kwargs)


def _var_method(kind):
    # ndarray.var and .std take no correction= (np.var and np.std do).
    def method(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
               mean=None):
        return FUNCTIONS[getattr(np, kind)](self, axis, dtype, out, ddof, keepdims, where=where,
                                            mean=mean)
    return method


def _reshape_method(self, *shape, order="C", copy=None):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return reshape(self, shape, order, copy=copy)


def _transpose_method(self, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)) or not axes:
        axes = axes[0] if axes else None
    return transpose(self, axes)


_TRACER_METHODS = {
    "__array_ufunc__": array_ufunc,
    "__array_function__": array_function,
    "__add__": _binop(np.add), "__radd__": _binop(np.add, True),
    "__sub__": _binop(np.subtract), "__rsub__": _binop(np.subtract, True),
    "__mul__": _binop(np.multiply), "__rmul__": _binop(np.multiply, True),
    "__truediv__": _binop(np.true_divide), "__rtruediv__": _binop(np.true_divide, True),
    "__floordiv__": _binop(np.floor_divide), "__rfloordiv__": _binop(np.floor_divide, True),
    "__mod__": _binop(np.remainder), "__rmod__": _binop(np.remainder, True),
    "__pow__": _pow, "__rpow__": _binop(np.power, True),
    "__matmul__": lambda self, other: matmul(self, other),
    "__rmatmul__": lambda self, other: matmul(other, self),
    "__and__": _binop(np.bitwise_and), "__rand__": _binop(np.bitwise_and, True),
    "__or__": _binop(np.bitwise_or), "__ror__": _binop(np.bitwise_or, True),
    "__xor__": _binop(np.bitwise_xor), "__rxor__": _binop(np.bitwise_xor, True),
    "__lt__": _binop(np.less), "__le__": _binop(np.less_equal),
    "__gt__": _binop(np.greater), "__ge__": _binop(np.greater_equal),
    "__eq__": _binop(np.equal), "__ne__": _binop(np.not_equal),
    "__neg__": lambda self: apply_ufunc(np.negative, self),
    "__pos__": lambda self: self,
    "__abs__": lambda self: apply_ufunc(np.absolute, self),
    "__invert__": lambda self: apply_ufunc(np.invert, self),
    "__getitem__": getitem,
    "__setitem__": _setitem,
    "__iter__": _iter,
    "__bool__": _concretization("bool() (an `if`, `while`, `and`/`or` or `assert`)", _BRANCH),
    "__int__": _concretization("int()", _BRANCH),
    "__float__": _concretization("float()", _BRANCH),
    "__complex__": _concretization("complex()", _BRANCH),
    "__index__": _concretization(
        "use as a Python index (operator.index)",
        "Index arrays with it instead (x[i] where i is traced is a gather), or mark it static "
        "with static_argnums"),
    "__len__": _concretization(
        "len()", "Use x.shape[0], which is static, or mark the argument static with "
        "static_argnums"),
    "__array__": _concretization(
        "conversion to a NumPy array (np.asarray, np.array, or a NumPy function that tracejit "
        "does not dispatch)",
        "A traced value has no data until the compiled function runs, only a shape and a "
        "dtype. Keep it traced: use x.astype(dtype) instead of np.asarray(x, dtype), "
        "np.stack instead of np.array([...]), and pass x itself to NumPy functions; to look at "
        "the values, return them from the function"),
    "item": _concretization("item()", _BRANCH),
    "tolist": _concretization("tolist()", _BRANCH),
    "reshape": _reshape_method,
    "transpose": _transpose_method,
    "swapaxes": _method(swapaxes),
    "ravel": _method(ravel),
    "flatten": _method(ravel),
    "squeeze": _method(squeeze),
    "astype": _astype_method,
    "copy": lambda self, order="C": _copy(self, order),
    "sum": _method(FUNCTIONS[np.sum]), "prod": _method(FUNCTIONS[np.prod]),
    "mean": _method(FUNCTIONS[np.mean]), "var": _var_method("var"), "std": _var_method("std"),
    "max": _method(FUNCTIONS[np.max]),
    "min": _method(FUNCTIONS[np.min]), "all": _method(FUNCTIONS[np.all]),
    "any": _method(FUNCTIONS[np.any]), "argmax": _method(FUNCTIONS[np.argmax]),
    "argmin": _method(FUNCTIONS[np.argmin]), "clip": _method(clip), "dot": _method(dot),
    "take": _method(take),
    "T": property(lambda self: transpose(self)),
    "mT": property(lambda self: swapaxes(self, -1, -2)),
}

for _name, _value in _TRACER_METHODS.items():
    setattr(Tracer, _name, _value)
