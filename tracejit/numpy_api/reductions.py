"""Reductions on tracers: sum, prod, mean, var, std, max, min, all, any (with NumPy's axis,
keepdims, dtype, ddof, initial and where), argmax and argmin, the ufuncs' reduce method, and
the NaN-ignoring nansum, nanprod, nanmean, nanvar, nanstd, nanmax, nanmin, nanargmax and
nanargmin.
"""

from __future__ import annotations

import math

import numpy as np

from .. import errors, ops
from ..ir import DTYPES, Type, is_float
from ..tracer import Tracer
from ._common import (as_operand, check_dtype, convert, implements, implements_ufunc_method,
                      leaves, static_axes, strong, unsupported)
from .ufuncs import apply_ufunc, truth


_REDUCE_METHOD = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
                  np.logical_and: "all", np.logical_or: "any"}


@implements_ufunc_method("reduce")
def ufunc_reduce(ufunc: np.ufunc, *inputs, **kwargs):
    """`ufunc.reduce(x, **kwargs)` with a traced x: the reduction the ufunc defines."""
    if ufunc in (np.logaddexp, np.logaddexp2):
        return _log_add_reduce(ufunc, inputs[0], **kwargs)
    if ufunc not in _REDUCE_METHOD:
        raise errors.user_error(errors.UnsupportedError,
                                f"numpy.{ufunc.__name__}.reduce is not supported")
    x = inputs[0]
    axis = kwargs.pop("axis", 0)
    return reduction(_REDUCE_METHOD[ufunc], x, axis=axis, **kwargs)


def _log_add_reduce(ufunc, x, axis=0, dtype=None, out=None, keepdims=False, **extra):
    """logaddexp.reduce (logaddexp2.reduce): log(sum(exp(x))) with the maximum taken out (in
    base 2 for logaddexp2); -inf for an empty axis, as the identity of logaddexp."""
    name = f"numpy.{ufunc.__name__}.reduce"
    if out is not None or extra:
        raise unsupported(name, *(["out"] if out is not None else []), *extra)
    x = as_operand(x)
    if dtype is not None:
        x = np.asarray(x, dtype) if not isinstance(x, Tracer) else x.astype(dtype)
    x = x if isinstance(x, Tracer) else np.asarray(x)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        x = x.astype(np.float64)
    if np.size(x) == 0:
        raise unsupported(name, why="an empty axis")
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)                # inf and NaN pass through the sum
    if ufunc is np.logaddexp:
        r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    else:
        r = np.log2(np.sum(np.exp2(x - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis if axis is not None else None)


# ---------------------------------------------------------------------------------------------
# reductions


def _keep(x, reduced, axes, keepdims: bool, in_shape):
    if not keepdims:
        return reduced
    return ops.reshape(reduced, tuple(1 if i in axes else n for i, n in enumerate(in_shape)))


def _sum_dtype(dtype: str) -> str:
    # NumPy sums and multiplies booleans and the integers narrower than 64 bits in the default
    # integer (int64), or in uint64 where they are unsigned.
    if dtype in ("bool", "i8", "i16", "i32"):
        return "i64"
    return "u64" if dtype in ("u8", "u16", "u32") else dtype


def reduction(kind: str, x, axis=None, dtype=None, keepdims=False, ddof=0, out=None,
              initial=None, where=None, **extra):
    """sum, prod, max, min, mean, var, std, all, any over `axis`, NumPy's way.

    `where` (None or True: every element) selects the elements reduced, as NumPy's where=: the
    others count as the reduction's identity (0 for sum, 1 for prod, True for all, False for
    any, `initial` for max and min, which require it as NumPy does), and mean, var and std
    divide by the number of selected elements of each slice. Their gradient is exactly 0."""
    name = f"numpy.{kind}"
    bad = [k for k, v in (("out", out), ("initial", initial)) if v is not None and
           (k == "out" or kind not in _INITIAL)]
    bad += [k for k in extra]
    bad += ["ddof"] if ddof and kind not in ("var", "std") else []
    if bad:
        raise unsupported(name, *bad)
    if initial is not None and np.ndim(initial) != 0:
        raise errors.user_error(ValueError, f"{name}: the initial value must be a scalar")
    x = as_operand(x)
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    t = ops.type_of(x)
    axes = static_axes(axis, t.ndim, name)
    count = math.prod(t.shape[a] for a in axes)
    mask = where_mask(where, t.shape, name)
    if mask is not None and kind in ("max", "min") and initial is None:
        raise errors.user_error(
            ValueError, f"{name}: reduction operation '{kind}imum' does not have an identity, "
            "so to use a where mask one has to specify 'initial'")
    if isinstance(mask, np.ndarray) and mask.all():
        mask = None                 # every element selected: the reduction without a mask
    if dtype is not None:
        x = convert(x, check_dtype(dtype))
    src = ops.dtype_of(x)

    if kind in ("all", "any") and dtype is not None and src != "bool":
        raise unsupported(name, "dtype", why="logical reductions give booleans")
    if kind in ("sum", "prod") and (src if dtype is not None else _sum_dtype(src)) == "bool":
        # NumPy's boolean add and multiply are logical or and and.
        r = _logical_reduction("any" if kind == "sum" else "all", x, axes, count, t.shape, mask)
    elif kind in ("sum", "prod"):
        x = ops.cast(x, src if dtype is not None else _sum_dtype(src))
        # The masked-out elements as the identity (select: their gradient is exactly 0).
        x = _select(mask, x, 0 if kind == "sum" else 1)
        r = (ops.reduce_sum if kind == "sum" else ops.reduce_prod)(x, axes)
    elif kind in ("max", "min"):
        if count == 0 and initial is not None:
            r = ops.broadcast_to(convert(initial, src), _kept_shape(t.shape, axes))
        elif count == 0 and t.size == 0:
            raise errors.user_error(
                errors.ShapeError, f"{name}: zero-size array to reduction operation {kind}imum "
                "which has no identity")
        else:
            # Masked-out elements as `initial`, which the result is combined with below.
            x = _select(mask, x, None if mask is None else convert(initial, src))
            r = (ops.reduce_max if kind == "max" else ops.reduce_min)(x, axes)
    elif kind in ("all", "any"):
        r = _logical_reduction(kind, x, axes, count, t.shape, mask)
    elif kind in ("mean", "var", "std"):
        if kind != "mean" and dtype is not None and not is_float(src):
            raise errors.user_error(
                errors.UnsupportedError, f"{name} with an integer dtype= (NumPy truncates the "
                "mean and every squared deviation) is not supported; use a float dtype")
        fdtype = src if is_float(src) else "f64"
        if kind == "mean" and src in ("f16", "bf16"):
            fdtype = "f32"          # NumPy's mean of float16: in float32, rounded at the end
        xf = ops.cast(x, fdtype)
        # n: the number of elements of each slice (the selected ones, with a mask; a NaN mean
        # where there are none, 0 / 0, as NumPy's).
        n = float(count) if mask is None else _selected_count(mask, axes, fdtype)
        mean = ops.div(ops.reduce_sum(_select(mask, xf, 0), axes), n)
        if kind == "mean":
            # NumPy casts the quotient back to an integer dtype= (truncating).
            r = mean if fdtype == src or (dtype is None and not is_float(src)) \
                else ops.cast(mean, src)
        else:
            d = ops.sub(xf, ops.broadcast_in_dim(
                mean, t.shape, tuple(i for i in range(t.ndim) if i not in axes)))
            d = _select(mask, d, 0)
            # NumPy divides by max(n - ddof, 0): x / 0 is inf or NaN, as there.
            dof = float(max(count - ddof, 0)) if mask is None else (
                np.maximum(n - ddof, 0).astype(n.dtype) if isinstance(n, np.ndarray)
                else ops.max(ops.sub(n, float(ddof)), 0.0))
            r = ops.div(ops.reduce_sum(ops.mul(d, d), axes), dof)
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


def where_mask(where, shape, name: str):
    """NumPy's where= of a reduction over an array of `shape`: None where every element is
    selected (where= not given, or True), else a boolean array of `shape` (a NumPy array when
    static, a tracer when traced). As NumPy: an array (traced or not) must be boolean (it is
    cast to bool with the 'safe' rule), other values (lists, numbers) are converted to bool,
    and the mask must broadcast to `shape` without growing it."""
    if where is None or where is True:
        return None
    if isinstance(where, (list, tuple)) and any(isinstance(v, Tracer) for v in leaves(where)):
        where = as_operand(where)               # the traced items stacked
    if isinstance(where, (Tracer, np.ndarray)):
        if where.dtype != np.bool_:
            what = "scalar" if isinstance(where, np.ndarray) and where.ndim == 0 else "array data"
            raise errors.user_error(
                errors.DTypeError, f"{name}: Cannot cast {what} from {where.dtype!r} to "
                "dtype('bool') according to the rule 'safe' (where= must be a boolean mask)")
        mask = where
    else:
        mask = np.asarray(where).astype(bool)
    mshape = tuple(mask.shape)
    try:
        fits = np.broadcast_shapes(mshape, tuple(shape)) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise errors.user_error(
            errors.ShapeError, f"{name}: the where= mask of shape {mshape} does not broadcast "
            f"to the operand's shape {tuple(shape)}")
    if isinstance(mask, Tracer):
        return mask if mask.shape == tuple(shape) else ops.broadcast_to(mask, tuple(shape))
    return np.broadcast_to(mask, tuple(shape))


def _select(mask, x, fill):
    """x where `mask` (None: everywhere), else `fill`; the gradient at `fill` is exactly 0."""
    return x if mask is None else ops.select(mask, x, fill)


def _selected_count(mask, axes, dtype: str):
    """The number of selected elements of each slice over `axes`, in float `dtype`: a NumPy
    array for a static mask, a traced sum for a traced one."""
    if isinstance(mask, np.ndarray):
        return np.asarray(np.sum(mask, axis=axes), dtype=DTYPES[dtype])
    return ops.reduce_sum(ops.cast(mask, dtype), axes)


#: The reductions that take initial=, and the ufunc that combines it with the result.
_INITIAL = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}


def _kept_shape(shape, axes) -> tuple[int, ...]:
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _logical_reduction(kind: str, x, axes, count: int, shape, mask=None):
    """all or any of x's truth values over `axes` (`count` elements each); the elements
    outside `mask` count as the identity (True for all, False for any)."""
    b = truth(x)
    if count == 0 and axes:
        return ops.full(Type(_kept_shape(shape, axes), "bool"), kind == "all")
    b = _select(mask, b, kind == "all")
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


# ---------------------------------------------------------------------------------------------
# the NaN-ignoring reductions: NumPy's nan* functions (numpy/lib/_nanfunctions_impl.py) as
# compositions. NaN counts as the reduction's identity (0 for nansum and nanmean, 1 for
# nanprod, absent for nanmax and nanmin); the means divide by the number of non-NaN elements.
# Integer and boolean arrays hold no NaN: the functions are those without nan.


def _float_operand(a):
    """`a` as a tracer or NumPy array, and whether its dtype is a float (can hold NaN)."""
    a = as_operand(a)
    if not isinstance(a, Tracer):
        a = np.asarray(a)
    return a, is_float(ops.dtype_of(a))


def _numbers(a, mask):
    """Where `a` is a number (not NaN) and selected by `mask` (None: everywhere)."""
    number = ops.eq(a, a)
    return number if mask is None else ops.and_(number, mask)


def _divide_by_count(total, count):
    """total / count as NumPy's nanfunctions divide (np.true_divide into total's dtype): the
    quotient is computed in float64 (count is an integer array) and cast back."""
    dtype = ops.dtype_of(total)
    q = ops.div(ops.cast(total, "f64"), ops.cast(count, "f64"))
    return ops.cast(q, dtype)


def _check_nan_dtype(name: str, dtype):
    if dtype is not None and not np.issubdtype(np.dtype(dtype), np.inexact):
        raise errors.user_error(TypeError, f"{name}: If a is inexact, then dtype must be "
                                "inexact")


def _nan_as_identity(kind: str, identity: int):
    """nansum / nanprod: the reduction with NaN counted as its identity."""
    def fn(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
        a, floating = _float_operand(a)
        if floating:
            a = ops.select(ops.eq(a, a), a, identity)
        return reduction(kind, a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                         initial=initial, where=where)
    fn.__doc__ = f"numpy.nan{kind}: the {kind} with NaN counted as {identity}."
    return fn


nansum = implements(np.nansum)(_nan_as_identity("sum", 0))
nanprod = implements(np.nanprod)(_nan_as_identity("prod", 1))


@implements(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """numpy.nanmean: the sum of the non-NaN elements over their number (NaN where there are
    none, 0 / 0, as NumPy's, which also warns)."""
    name = "numpy.nanmean"
    a, floating = _float_operand(a)
    if not floating:
        return reduction("mean", a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                         where=where)
    _check_nan_dtype(name, dtype)
    if out is not None:
        raise unsupported(name, "out", why="results are new values")
    t = ops.type_of(a)
    axes = static_axes(axis, t.ndim, name)
    number = _numbers(a, where_mask(where, t.shape, name))
    acc = check_dtype(a.dtype if dtype is None else dtype)       # the dtype NumPy sums in
    total = ops.reduce_sum(ops.cast(ops.select(number, a, 0), acc), axes)
    count = ops.reduce_sum(ops.cast(number, "i64"), axes)
    return strong(_keep(a, _divide_by_count(total, count), axes, keepdims, t.shape))


def _nan_extremum(kind: str, a, axis, out, keepdims, initial, where):
    """nanmax / nanmin: NumPy's fmax / fmin reduce, the extremum of the non-NaN elements (NaN
    where there are none; then `initial` where it is given)."""
    name = f"numpy.nan{kind}"
    a, floating = _float_operand(a)
    if not floating:
        return reduction(kind, a, axis=axis, out=out, keepdims=keepdims, initial=initial,
                         where=where)
    if out is not None:
        raise unsupported(name, "out", why="results are new values")
    if initial is not None and np.ndim(initial) != 0:
        raise errors.user_error(ValueError, f"{name}: the initial value must be a scalar")
    t = ops.type_of(a)
    axes = static_axes(axis, t.ndim, name)
    mask = where_mask(where, t.shape, name)
    fname = "fmax" if kind == "max" else "fmin"
    if mask is not None and initial is None:
        raise errors.user_error(
            ValueError, f"{name}: reduction operation '{fname}' does not have an identity, so "
            "to use a where mask one has to specify 'initial'")
    if math.prod(t.shape[i] for i in axes) == 0:
        if initial is None:
            raise errors.user_error(errors.ShapeError, f"{name}: zero-size array to reduction "
                                    f"operation {fname} which has no identity")
        r = ops.full(Type(_kept_shape(t.shape, axes), t.dtype), np.nan)
    else:
        number = _numbers(a, mask)
        # NaN and the masked-out elements as -inf (max) or +inf (min), which every number
        # beats or equals; NaN where no number is left.
        far = -np.inf if kind == "max" else np.inf
        r = (ops.reduce_max if kind == "max" else ops.reduce_min)(
            ops.select(number, a, far), axes)
        none = ops.logical_not(ops.reduce_max(number, axes))
        r = ops.select(none, np.nan, r)
    if initial is not None:
        # fmax(initial, NaN) is initial: a slice of NaN gives `initial`, as NumPy's.
        r = apply_ufunc(np.fmax if kind == "max" else np.fmin, convert(initial, t.dtype), r)
    return strong(_keep(a, r, axes, keepdims, t.shape))


@implements(np.nanmax)
def nanmax(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """numpy.nanmax: the maximum of the non-NaN elements (NaN where all are NaN)."""
    return _nan_extremum("max", a, axis, out, keepdims, initial, where)


@implements(np.nanmin)
def nanmin(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """numpy.nanmin: the minimum of the non-NaN elements (NaN where all are NaN)."""
    return _nan_extremum("min", a, axis, out, keepdims, initial, where)


def _nan_arg(kind: str, a, axis, out, keepdims):
    """nanargmax / nanargmin: argmax / argmin with NaN as -inf / +inf (NumPy's way: the first
    extremum, which may be a NaN's position in a slice of NaN and infinities). A slice of NaN
    only raises NumPy's ValueError when the program runs (the `check` primitive)."""
    a, floating = _float_operand(a)
    if not floating:
        return arg_reduction(kind, a, axis, out, keepdims)
    nan = ops.ne(a, a)
    r = arg_reduction(kind, ops.select(nan, -np.inf if kind == "argmax" else np.inf, a), axis,
                      out, keepdims)
    all_nan = reduction("all", nan, axis=axis, keepdims=keepdims)
    return strong(ops.select(ops.check(all_nan, "all_nan_slice"), -1, r))


@implements(np.nanargmax)
def nanargmax(a, axis=None, out=None, *, keepdims=False):
    """numpy.nanargmax: the index of the maximum, NaN ignored (ValueError for a slice of NaN
    only, as NumPy)."""
    return _nan_arg("argmax", a, axis, out, keepdims)


@implements(np.nanargmin)
def nanargmin(a, axis=None, out=None, *, keepdims=False):
    """numpy.nanargmin: the index of the minimum, NaN ignored (ValueError for a slice of NaN
    only, as NumPy)."""
    return _nan_arg("argmin", a, axis, out, keepdims)


def _nanvar(kind: str):
    def fn(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
           correction=None):
        name = f"numpy.nan{kind}"
        if mean is not None:
            raise unsupported(name, "mean", why="pass the array alone; tracejit computes the "
                              "mean itself")
        if correction is not None:
            if ddof != 0:
                raise errors.user_error(ValueError, f"{name}: ddof and correction can't be "
                                        "provided simultaneously")
            ddof = correction
        a, floating = _float_operand(a)
        if not floating:
            return reduction(kind, a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                             ddof=ddof, where=where)
        _check_nan_dtype(name, dtype)
        if out is not None:
            raise unsupported(name, "out", why="results are new values")
        t = ops.type_of(a)
        axes = static_axes(axis, t.ndim, name)
        src = t.dtype
        acc = check_dtype(a.dtype if dtype is None else dtype)       # the dtype NumPy sums in
        number = _numbers(a, where_mask(where, t.shape, name))
        count = ops.reduce_sum(ops.cast(number, "i64"), axes)
        avg = _divide_by_count(ops.reduce_sum(ops.cast(ops.select(number, a, 0), acc), axes),
                               count)
        # As NumPy: the deviations in a's dtype (np.subtract(arr, avg, out=arr)), 0 at NaN and
        # outside the mask, squared, summed in `acc`.
        wide = "f64" if "f64" in (src, acc) else src
        kept = tuple(i for i in range(t.ndim) if i not in axes)
        d = ops.cast(ops.sub(ops.cast(a, wide), ops.broadcast_in_dim(ops.cast(avg, wide),
                                                                      t.shape, kept)), src)
        d = ops.select(number, d, 0)
        ss = ops.reduce_sum(ops.cast(ops.mul(d, d), acc), axes)
        # Divided by n - ddof; NaN where that is not positive (NumPy's nanvar, which warns).
        dof = ops.sub(ops.cast(count, "f64"), float(ddof))
        q = ops.cast(ops.div(ops.cast(ss, "f64"), dof), acc)
        r = ops.select(ops.le(dof, 0.0), np.nan, q)
        if kind == "std":
            # sqrt with the gradient 0 at zero variance (see reduction's std).
            zero = ops.eq(r, 0.0)
            r = ops.select(zero, 0.0, ops.sqrt(ops.select(zero, 1.0, r)))
        return strong(_keep(a, r, axes, keepdims, t.shape))
    fn.__name__ = f"nan{kind}"
    fn.__doc__ = (f"numpy.nan{kind}: the {'variance' if kind == 'var' else 'standard deviation'}"
                  " of the non-NaN elements (NaN where fewer than ddof + 1 are left).")
    return fn


implements(np.nanvar)(_nanvar("var"))
implements(np.nanstd)(_nanvar("std"))
