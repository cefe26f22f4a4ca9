"""Reductions on tracers: sum, prod, mean, var, std, max, min, all, any (with NumPy's axis,
keepdims, dtype, ddof and initial), argmax and argmin, and the ufuncs' reduce method.
"""

from __future__ import annotations

import math

import numpy as np

from .. import errors, ops
from ..ir import Type, is_float
from ..tracer import Tracer
from ._common import (as_operand, check_dtype, convert, implements, implements_ufunc_method,
                      static_axes, strong, unsupported)
from .ufuncs import apply_ufunc, truth


_REDUCE_METHOD = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
                  np.logical_and: "all", np.logical_or: "any"}


@implements_ufunc_method("reduce")
def ufunc_reduce(ufunc: np.ufunc, *inputs, **kwargs):
    """`ufunc.reduce(x, **kwargs)` with a traced x: the reduction the ufunc defines."""
    if ufunc not in _REDUCE_METHOD:
        raise errors.user_error(errors.UnsupportedError,
                                f"numpy.{ufunc.__name__}.reduce is not supported")
    x = inputs[0]
    axis = kwargs.pop("axis", 0)
    return reduction(_REDUCE_METHOD[ufunc], x, axis=axis, **kwargs)


# ---------------------------------------------------------------------------------------------
# reductions


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
        raise unsupported(name, *bad, why="mask the operand instead, with the reduction's "
                          "identity: np.sum(np.where(mask, x, 0))" if "where" in bad else "")
    if initial is not None and np.ndim(initial) != 0:
        raise errors.user_error(ValueError, f"{name}: the initial value must be a scalar")
    x = as_operand(x)
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    t = ops.type_of(x)
    axes = static_axes(axis, t.ndim, name)
    count = math.prod(t.shape[a] for a in axes)
    if dtype is not None:
        x = convert(x, check_dtype(dtype))
    src = ops.dtype_of(x)

    if kind in ("all", "any") and dtype is not None and src != "bool":
        raise unsupported(name, "dtype", why="logical reductions give booleans")
    if kind in ("sum", "prod") and (src if dtype is not None else _sum_dtype(src)) == "bool":
        # NumPy's boolean add and multiply are logical or and and.
        r = _logical_reduction("any" if kind == "sum" else "all", x, axes, count, t.shape)
    elif kind in ("sum", "prod"):
        x = ops.cast(x, src if dtype is not None else _sum_dtype(src))
        r = (ops.reduce_sum if kind == "sum" else ops.reduce_prod)(x, axes)
    elif kind in ("max", "min"):
        if count == 0 and initial is not None:
            r = ops.broadcast_to(convert(initial, src), _kept_shape(t.shape, axes))
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
        r = apply_ufunc(_INITIAL[kind], convert(initial, ops.dtype_of(r)), r)
    return strong(_keep(x, r, axes, keepdims, t.shape))


#: The reductions that take initial=, and the ufunc that combines it with the result.
_INITIAL = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}


def _kept_shape(shape, axes) -> tuple[int, ...]:
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _logical_reduction(kind: str, x, axes, count: int, shape):
    """all or any of x's truth values over `axes` (`count` elements each)."""
    b = truth(x)
    if count == 0 and axes:
        return ops.full(Type(_kept_shape(shape, axes), "bool"), kind == "all")
    return (ops.reduce_min if kind == "all" else ops.reduce_max)(b, axes)


def arg_reduction(kind: str, x, axis=None, out=None, keepdims=False):
    """argmax / argmin (no gradient): the flat index when axis is None, like NumPy."""
    if out is not None:
        raise errors.user_error(errors.UnsupportedError, f"numpy.{kind} with out= is not supported")
    x = as_operand(x)
    t = ops.type_of(x)
    if isinstance(axis, (tuple, list)):
        raise errors.user_error(TypeError, f"numpy.{kind}: axis must be an integer or None, "
                                f"got {axis!r}")
    a = None if axis is None else static_axes(axis, t.ndim, f"numpy.{kind}")[0]
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
# the NumPy functions


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
            raise unsupported(f"numpy.{kind}", "mean", why="pass the array alone; tracejit "
                              "computes the mean itself")
        if correction is not None and ddof != 0:
            raise errors.user_error(ValueError, f"numpy.{kind}: ddof and correction can't be "
                                    "provided simultaneously")
        return reduction(kind, a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                         ddof=ddof if correction is None else correction, where=where)
    return fn


implements(np.sum)(_red("sum"))
implements(np.prod)(_red("prod"))
implements(np.mean)(_red("mean"))
implements(np.max, np.amax)(_red_nodtype("max"))
implements(np.min, np.amin)(_red_nodtype("min"))
implements(np.all)(_red_nodtype("all"))
implements(np.any)(_red_nodtype("any"))
implements(np.var)(_var("var"))
implements(np.std)(_var("std"))


@implements(np.argmax)
def argmax(a, axis=None, out=None, *, keepdims=False):
    """numpy.argmax."""
    return arg_reduction("argmax", a, axis, out, keepdims)


@implements(np.argmin)
def argmin(a, axis=None, out=None, *, keepdims=False):
    """numpy.argmin."""
    return arg_reduction("argmin", a, axis, out, keepdims)
