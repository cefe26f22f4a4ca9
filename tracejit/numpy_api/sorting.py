"""Along one axis: cumulative sums and products (cumsum, cumprod, the ufuncs' accumulate),
sorting (sort, argsort, partition, argpartition) and what is read off sorted lines (median,
quantile, percentile).
"""

from __future__ import annotations

import numpy as np

from .. import errors, ops
from ..ir import DTYPES, Type, is_float
from ..tracer import Tracer
from ._common import (as_operand, check_dtype, implements, implements_method,
                      implements_ufunc_method, static_axes, unsupported)
from .reductions import _sum_dtype


def _operand(a):
    x = as_operand(a)
    return x if isinstance(x, Tracer) else np.asarray(x)


def _one_axis(x, axis, name: str):
    """(x, axis): x flattened and axis 0 when axis is None, else axis checked and normalised."""
    t = ops.type_of(x)
    if axis is None:
        return ops.reshape(x, (t.size,)), 0
    if isinstance(axis, (tuple, list)):
        raise errors.user_error(TypeError, f"{name}: axis must be an integer or None, "
                                f"got {axis!r}")
    return x, static_axes(axis, t.ndim, name)[0]


# ---------------------------------------------------------------------------------------------
# cumulative sums and products


def cumulative(kind: str, a, axis=None, dtype=None, out=None, name: str = ""):
    """cumsum / cumprod along `axis` (the flattened array when None), in NumPy's dtype: that of
    `dtype=`, else the operand's, with booleans and small integers in int64."""
    name = name or f"numpy.{kind}"
    if out is not None:
        raise unsupported(name, "out")
    x, ax = _one_axis(_operand(a), axis, name)
    src = ops.dtype_of(x)
    target = check_dtype(dtype) if dtype is not None else _sum_dtype(src)
    t = ops.type_of(x)
    if target == "bool":
        # Boolean add and multiply accumulate as logical or and and: the running count of the
        # true (or false) values, compared with zero.
        if kind == "cumsum":
            return ops.ne(ops.cumsum(ops.cast(ops.ne(x, 0), "i64"), ax), 0)
        return ops.eq(ops.cumsum(ops.cast(ops.eq(x, 0), "i64"), ax), 0)
    if t.size == 0:
        return ops.full(Type(t.shape, target), 0)
    x = ops.cast(x, target)
    return (ops.cumsum if kind == "cumsum" else ops.cumprod)(x, ax)


@implements(np.cumsum)
def cumsum(a, axis=None, dtype=None, out=None):
    """numpy.cumsum."""
    return cumulative("cumsum", a, axis, dtype, out)


@implements(np.cumprod)
def cumprod(a, axis=None, dtype=None, out=None):
    """numpy.cumprod."""
    return cumulative("cumprod", a, axis, dtype, out)


@implements(np.cumulative_sum)
def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """numpy.cumulative_sum (the array API's): cumsum, with the 0 before the first sum where
    include_initial; axis may be omitted only for 1-d x."""
    return _cumulative_api("cumsum", x, axis, dtype, out, include_initial)


@implements(np.cumulative_prod)
def cumulative_prod(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """numpy.cumulative_prod: cumprod, with the 1 before the first product where
    include_initial."""
    return _cumulative_api("cumprod", x, axis, dtype, out, include_initial)


def _cumulative_api(kind, x, axis, dtype, out, include_initial):
    name = f"numpy.cumulative_{kind[3:]}"
    x = _operand(x)
    if axis is None:
        if ops.type_of(x).ndim > 1:
            raise errors.user_error(ValueError, f"{name}: For arrays which have more than one "
                                    "dimension ``axis`` argument is required.")
        axis = 0
    r = cumulative(kind, x, axis, dtype, out, name)
    if not include_initial:
        return r
    t = ops.type_of(r)
    ax = static_axes(axis, t.ndim, name)[0]
    first = ops.full(Type(tuple(1 if d == ax else n for d, n in enumerate(t.shape)), t.dtype),
                     0 if kind == "cumsum" else 1)
    return ops.concatenate([first, r], ax)


@implements(np.nancumsum)
def nancumsum(a, axis=None, dtype=None, out=None):
    """numpy.nancumsum: cumsum with NaN as 0."""
    x = _operand(a)
    return cumulative("cumsum", np.where(np.isnan(x), 0, x) if is_float(ops.type_of(x).dtype)
                      else x, axis, dtype, out, "numpy.nancumsum")


@implements(np.nancumprod)
def nancumprod(a, axis=None, dtype=None, out=None):
    """numpy.nancumprod: cumprod with NaN as 1."""
    x = _operand(a)
    return cumulative("cumprod", np.where(np.isnan(x), 1, x) if is_float(ops.type_of(x).dtype)
                      else x, axis, dtype, out, "numpy.nancumprod")


_ACCUMULATE = {np.add: "cumsum", np.multiply: "cumprod"}
# Accumulated by doubling: after step k, element i combines the 2**k elements ending at i.
_DOUBLING = (np.maximum, np.minimum, np.fmax, np.fmin, np.logical_and, np.logical_or)


def _doubling_scan(ufunc, x, axis: int):
    """ufunc.accumulate(x, axis) in ceil(log2 n) elementwise steps (Hillis and Steele): the
    element i - k, where it exists, combined with i (the earlier operand first, as NumPy's
    accumulate orders them). Differentiable through ufunc: a tie of two equal elements shares
    the gradient, as np.maximum's does."""
    n = ops.type_of(x).shape[axis]
    k = 1
    while k < n:
        head = np.take(x, np.arange(k), axis=axis)
        earlier = np.concatenate([head, np.take(x, np.arange(n - k), axis=axis)], axis=axis)
        x = ufunc(earlier, x)
        k *= 2
    return x


@implements_ufunc_method("accumulate")
def ufunc_accumulate(ufunc: np.ufunc, *inputs, **kwargs):
    """`ufunc.accumulate(x, axis=0, dtype=None, out=None)` for add and multiply."""
    name = f"numpy.{ufunc.__name__}.accumulate"
    if ufunc not in _ACCUMULATE and ufunc not in _DOUBLING:
        raise errors.user_error(errors.UnsupportedError, f"{name} is not supported (add, "
                                "multiply, maximum, minimum, fmax, fmin, logical_and and "
                                "logical_or accumulate)")
    if len(inputs) != 1:
        raise errors.user_error(TypeError, f"{name} takes one array")
    axis = kwargs.pop("axis", 0)
    dtype = kwargs.pop("dtype", None)
    out = kwargs.pop("out", None)
    if out == (None,):
        out = None
    if kwargs:
        raise unsupported(name, *kwargs)
    if axis is None:
        raise errors.user_error(TypeError, f"{name}: axis must be an integer, not None")
    if ufunc in _ACCUMULATE:
        return cumulative(_ACCUMULATE[ufunc], inputs[0], axis, dtype, out, name)
    if out is not None:
        raise unsupported(name, "out")
    x = _operand(inputs[0])
    if ops.type_of(x).ndim == 0:
        raise errors.user_error(ValueError, f"{name}: cannot accumulate on a scalar")
    x = ufunc(x, x, dtype=dtype) if ufunc in (np.logical_and, np.logical_or) or \
        dtype is not None else x          # the dtype NumPy's loop gives (logical: bool)
    axis = static_axes(axis, ops.type_of(x).ndim, name)[0]
    return _doubling_scan(ufunc, x, axis)


# ---------------------------------------------------------------------------------------------
# sorting


def _sorted(prim, name: str, a, axis, kind, order, stable):
    if order is not None:
        raise unsupported(name, "order", why="tracejit arrays have no fields")
    if kind not in (None, "quicksort", "mergesort", "heapsort", "stable", "introselect"):
        raise errors.user_error(ValueError, f"{name}: sort kind must be one of 'quick', "
                                f"'heap', or 'stable' (got {kind!r})")
    if stable not in (None, True, False):
        raise errors.user_error(ValueError, f"{name}: stable must be a boolean or None")
    x, ax = _one_axis(_operand(a), axis, name)
    t = ops.type_of(x)
    if t.size == 0:
        return ops.full(Type(t.shape, "i64" if prim is ops.argsort else t.dtype), 0)
    return prim(x, ax)


@implements(np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """numpy.sort: ascending, NaNs last. Every kind gives the same values."""
    return _sorted(ops.sort, "numpy.sort", a, axis, kind, order, stable)


@implements(np.argsort)
def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """numpy.argsort. tracejit's sort is always stable: equal elements keep their order, which
    is one of the orders NumPy's unstable kinds may give and the one its stable kind gives."""
    return _sorted(ops.argsort, "numpy.argsort", a, axis, kind, order, stable)


def _check_kth(name: str, x, axis, kth, kind) -> None:
    if not isinstance(kind, str):
        raise errors.user_error(TypeError, f"select kind must be str, not {type(kind).__name__}")
    if kind != "introselect":
        raise errors.user_error(ValueError, f"{name}: select kind must be 'introselect' "
                                f"(got {kind!r})")
    t = ops.type_of(x)
    n = t.size if axis is None else t.shape[static_axes(axis, t.ndim, name)[0]]
    for k in np.ravel(kth):
        if isinstance(k, Tracer) or not isinstance(k, (int, np.integer)):
            raise errors.user_error(TypeError, f"{name}: kth must be static integers")
        if not -n <= int(k) < n:
            raise errors.user_error(ValueError, f"{name}: kth(={int(k)}) out of bounds ({n})")


@implements(np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """numpy.partition, as the full sort: every kth element is in its sorted place, the
    smaller ones before it and the others after it, as NumPy promises."""
    x = _operand(a)
    _check_kth("numpy.partition", x, axis, kth, kind)
    return _sorted(ops.sort, "numpy.partition", x, axis, None, order, None)


@implements(np.argpartition)
def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """numpy.argpartition, as the full (stable) argsort; see partition."""
    x = _operand(a)
    _check_kth("numpy.argpartition", x, axis, kth, kind)
    return _sorted(ops.argsort, "numpy.argpartition", x, axis, None, order, None)


@implements_method(np.ndarray.sort)
def sort_method(self, *args, **kwargs):
    """ndarray.sort sorts in place, which a traced value cannot: np.sort returns the copy."""
    raise errors.user_error(errors.UnsupportedError, "ndarray.sort sorts in place, and traced "
                            "values are immutable: use x = np.sort(x, axis)")


# ---------------------------------------------------------------------------------------------
# median, quantile, percentile


def _to_last(x, axis, name: str):
    """x with the axes `axis` (None: all) merged into one last axis, and the axes reduced."""
    t = ops.type_of(x)
    axes = static_axes(axis, t.ndim, name)
    kept = [d for d in range(t.ndim) if d not in axes]
    moved = ops.transpose(x, tuple(kept + list(axes)))
    n = int(np.prod([t.shape[d] for d in axes], dtype=np.int64))
    return ops.reshape(moved, tuple(t.shape[d] for d in kept) + (n,)), axes


def _keep_reduced(r, shape, axes, keepdims: bool, lead: tuple = ()):
    if not keepdims:
        return r
    return ops.reshape(r, lead + tuple(1 if d in axes else n for d, n in enumerate(shape)))


def _take(s, i: int):
    """s[..., i] (a view)."""
    shape = ops.type_of(s).shape
    starts = (0,) * (len(shape) - 1) + (i,)
    return ops.reshape(ops.slice(s, starts, (1,) * len(shape), shape[:-1] + (1,)), shape[:-1])


def _nan_if_any(s, r):
    """r, or NaN where the sorted line s has a NaN (the NaNs sort last)."""
    if not is_float(ops.dtype_of(s)):
        return r
    last = _take(s, ops.type_of(s).shape[-1] - 1)
    return ops.select(ops.ne(last, last), np.nan, r)


#: method → the virtual index of quantile q in n sorted values, as NumPy computes it; the
#: first three take that element, the others interpolate (weight: the fractional part).
_VIRTUAL_INDEX = {
    "lower": lambda q, n: np.floor(q * (n - 1)),
    "higher": lambda q, n: np.ceil(q * (n - 1)),
    "nearest": lambda q, n: np.around(q * (n - 1)),
    "linear": lambda q, n: q * (n - 1),
    "midpoint": lambda q, n: 0.5 * (np.floor(q * (n - 1)) + np.ceil(q * (n - 1))),
}
_TAKES = ("lower", "higher", "nearest")
_NUMPY_ONLY = ("inverted_cdf", "averaged_inverted_cdf", "closest_observation",
               "interpolated_inverted_cdf", "hazen", "weibull", "median_unbiased",
               "normal_unbiased")


def _lerp(a, b, t, dtype: str):
    """a + (b - a) t in `dtype`, NumPy's way: b - a in the operands' dtype, and from b when
    t >= 0.5, so that t = 1 gives b exactly."""
    diff = ops.cast(ops.sub(b, a), dtype)
    a, b = ops.cast(a, dtype), ops.cast(b, dtype)
    if t == 0:
        return a
    if t >= 0.5:
        return ops.sub(b, ops.mul(diff, float(1 - t)))
    return ops.add(a, ops.mul(diff, float(t)))


def _quantile_skipping_nan(s, count, q: float, method: str, takes: bool, dtype: str):
    """Quantile q of each sorted line s whose first `count` values are not NaN (the NaNs sort
    last): NumPy's nanquantile, at positions that depend on the data (a gather); NaN where a
    line has no number."""
    n = ops.type_of(s).shape[-1]
    v = _VIRTUAL_INDEX[method](q, count)
    lo = np.floor(v)

    def at(i):
        return np.take_along_axis(s, np.expand_dims(i.astype(np.int64), -1), -1)[..., 0]

    r = at(np.clip(lo, 0, n - 1))
    if not takes:
        b = at(np.clip(lo + 1, 0, np.maximum(count - 1, 0)))
        t = (v - lo).astype(DTYPES[dtype])
        diff, a, b = (b - r).astype(DTYPES[dtype]), r.astype(DTYPES[dtype]), b.astype(
            DTYPES[dtype])
        r = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    # Taken elements keep the operand's dtype, interpolated ones are in `dtype` (NumPy's).
    return np.where(count == 0, np.nan, r)


def quantiles(name: str, a, q, axis, method, keepdims: bool, scale: float,
              skip_nan: bool = False):
    """The quantiles q / scale of a along `axis`, with NumPy's methods and dtypes; NaN
    ignored where `skip_nan` (nanquantile)."""
    if isinstance(q, Tracer):
        raise errors.user_error(errors.ConcretizationError, f"{name}: q must be static (a "
                                "number or an array of numbers), not a traced value")
    if method not in _VIRTUAL_INDEX:
        raise errors.user_error(
            errors.UnsupportedError if method in _NUMPY_ONLY else ValueError,
            f"{name}: method {method!r} is not supported (linear, lower, higher, nearest, "
            "midpoint)")
    x = _operand(a)
    t = ops.type_of(x)
    # NumPy's dtypes: the positions in float64; interpolated results promote the operand's
    # dtype with q's (a Python number is weak: a float operand's dtype), taken ones keep it.
    weak = isinstance(q, (int, float)) and not isinstance(q, bool)
    qs = np.asarray(q, dtype=np.float64) / scale
    if np.any(np.isnan(qs)) or np.any((qs < 0) | (qs > 1)):
        what = "Percentiles must be in the range [0, 100]" if scale != 1 else \
            "Quantiles must be in the range [0, 1]"
        raise errors.user_error(ValueError, f"{name}: {what}")
    # Integer quantiles (0 and 1) have integer positions, which NumPy takes, as it takes those
    # of the methods that do not interpolate.
    takes = method in _TAKES or (method == "linear" and scale == 1
                                 and np.asarray(q).dtype.kind in "iu")
    if t.dtype == "bool" and not takes:
        raise errors.user_error(TypeError, f"{name}: method {method!r} subtracts booleans, "
                                "which NumPy does not define")
    dtype = t.dtype if weak and is_float(t.dtype) else check_dtype(
        np.result_type(t.np_dtype, qs.dtype))
    lines, axes = _to_last(x, axis, name)
    n = ops.type_of(lines).shape[-1]
    if n == 0:
        raise errors.user_error(errors.ShapeError, f"{name}: the reduced axes are empty")
    s = ops.sort(lines, ops.type_of(lines).ndim - 1)
    skip_nan = skip_nan and is_float(t.dtype)
    if skip_nan:
        count = np.sum(~np.isnan(lines), axis=-1).astype(np.float64)
    results = []
    for qi in qs.ravel():
        if skip_nan:
            results.append(_quantile_skipping_nan(s, count, qi, method, takes, dtype))
            continue
        v = _VIRTUAL_INDEX[method](qi, n)
        lo = int(np.floor(v))
        if takes:
            r = _take(s, lo)
        else:
            r = _lerp(_take(s, lo), _take(s, min(lo + 1, n - 1)), v - lo, dtype)
        results.append(_nan_if_any(s, r))
    if qs.ndim == 0:
        r = results[0]
    else:
        r = ops.reshape(ops.concatenate([ops.reshape(v, (1,) + ops.type_of(v).shape)
                                         for v in results], 0),
                        qs.shape + ops.type_of(results[0]).shape)
    return _keep_reduced(r, t.shape, axes, keepdims, qs.shape)


def _check_quantile_args(name, out, overwrite_input, weights, interpolation, method):
    if out is not None:
        raise unsupported(name, "out")
    if weights is not None:
        raise unsupported(name, "weights", why="only unweighted quantiles")
    if interpolation is not None:
        raise errors.user_error(TypeError, f"{name}: interpolation= was renamed method= "
                                "in NumPy 1.22")
    return method


@implements(np.quantile)
def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False, *, weights=None, interpolation=None):
    """numpy.quantile (methods linear, lower, higher, nearest, midpoint); q is static."""
    _check_quantile_args("numpy.quantile", out, overwrite_input, weights, interpolation, method)
    return quantiles("numpy.quantile", a, q, axis, method, keepdims, 1.0)


@implements(np.percentile)
def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False, *, weights=None, interpolation=None):
    """numpy.percentile: quantile(a, q / 100)."""
    _check_quantile_args("numpy.percentile", out, overwrite_input, weights, interpolation,
                         method)
    return quantiles("numpy.percentile", a, q, axis, method, keepdims, 100.0)


@implements(np.nanquantile)
def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                keepdims=False, *, weights=None, interpolation=None):
    """numpy.nanquantile: quantile of the numbers of each line, NaN where it has none."""
    _check_quantile_args("numpy.nanquantile", out, overwrite_input, weights, interpolation,
                         method)
    return quantiles("numpy.nanquantile", a, q, axis, method, keepdims, 1.0, skip_nan=True)


@implements(np.nanpercentile)
def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                  keepdims=False, *, weights=None, interpolation=None):
    """numpy.nanpercentile: nanquantile(a, q / 100)."""
    _check_quantile_args("numpy.nanpercentile", out, overwrite_input, weights, interpolation,
                         method)
    return quantiles("numpy.nanpercentile", a, q, axis, method, keepdims, 100.0,
                     skip_nan=True)


@implements(np.nanmedian)
def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """numpy.nanmedian: the median of the numbers of each line (NaN where it has none)."""
    x = _operand(a)
    if not is_float(ops.type_of(x).dtype):
        return median(x, axis=axis, out=out, keepdims=keepdims)
    if out is not None:
        raise unsupported("numpy.nanmedian", "out")
    return quantiles("numpy.nanmedian", x, 0.5, axis, "linear", keepdims, 1.0, skip_nan=True)


@implements(np.median)
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """numpy.median: the middle of each sorted line, the mean of the middle two for an even
    length (NaN where the line has a NaN)."""
    if out is not None:
        raise unsupported("numpy.median", "out")
    x = _operand(a)
    t = ops.type_of(x)
    dtype = t.dtype if is_float(t.dtype) else "f64"
    lines, axes = _to_last(x, axis, "numpy.median")
    n = ops.type_of(lines).shape[-1]
    if n == 0:
        raise errors.user_error(errors.ShapeError, "numpy.median: the reduced axes are empty")
    s = ops.sort(ops.cast(lines, dtype), ops.type_of(lines).ndim - 1)
    middle = _take(s, n // 2)
    if n % 2 == 0:
        middle = ops.mul(ops.add(_take(s, n // 2 - 1), middle), 0.5)
    return _keep_reduced(_nan_if_any(s, middle), t.shape, axes, keepdims)
