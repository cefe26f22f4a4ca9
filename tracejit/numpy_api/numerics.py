"""Statistics and numerical functions, written as NumPy writes them on top of the functions
tracejit already traces (so dtypes, shapes and gradients follow): average, cov, corrcoef, ptp,
count_nonzero, polyval, vander, polyfit, trapezoid, gradient, interp, searchsorted, digitize,
unwrap, isin, array_equal, array_equiv.

Searches (searchsorted, digitize, interp) compare every value with every boundary, n x m work
and memory, instead of NumPy's binary search: a traced array has no loops to search with, and
for the sizes these are used at (bins, knots) the comparisons are one fused reduction.
"""

from __future__ import annotations

import numpy as np

from .. import errors
from ..tracer import Tracer
from ._common import as_operand, implements, static_axes, unsupported


def _operand(a):
    x = as_operand(a)
    return x if isinstance(x, Tracer) else np.asarray(x)


def _one_axis(axis, ndim: int, name: str) -> int:
    if axis is None or isinstance(axis, (tuple, list)):
        raise errors.user_error(TypeError, f"{name}: axis must be an integer, got {axis!r}")
    return static_axes(axis, ndim, name)[0]


def _static_int(value, name: str, what: str) -> int:
    if isinstance(value, Tracer):
        raise errors.user_error(errors.ConcretizationError, f"{name}: {what} must be static")
    return int(value)


# ---------------------------------------------------------------------------------------------
# statistics


@implements(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """numpy.average: the mean, or sum(a w) / sum(w) along `axis` with weights (1-d weights
    along one axis, or weights of a's shape)."""
    a = _operand(a)
    if weights is None:
        avg = np.mean(a, axis=axis, keepdims=keepdims)
        count = np.size(a) / np.size(avg) if np.size(avg) else 0
        scl = np.broadcast_to(np.asarray(count, avg.dtype), np.shape(avg))
        return (avg, scl) if returned else avg
    w = _operand(weights)
    if np.ndim(w) != np.ndim(a):
        if axis is None:
            raise errors.user_error(TypeError, "numpy.average: Axis must be specified when "
                                    "shapes of a and weights differ.")
        if np.ndim(w) != 1:
            raise errors.user_error(TypeError, "numpy.average: 1D weights expected when "
                                    "shapes of a and weights differ.")
        ax = static_axes(axis, np.ndim(a), "numpy.average")
        if len(ax) != 1 or np.shape(w)[0] != np.shape(a)[ax[0]]:
            raise errors.user_error(ValueError, "numpy.average: Length of weights not "
                                    "compatible with specified axis.")
        w = np.reshape(w, tuple(-1 if d == ax[0] else 1 for d in range(np.ndim(a))))
    dtype = np.result_type(a, w, 1.0)           # NumPy: at least a float
    scl = np.sum(np.broadcast_to(w, np.shape(a)), axis=axis, keepdims=keepdims).astype(dtype)
    avg = np.sum(np.multiply(a, w).astype(dtype), axis=axis, keepdims=keepdims) / scl
    return (avg, np.broadcast_to(scl, np.shape(avg))) if returned else avg


@implements(np.cov)
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
    """numpy.cov: the covariance of the variables (rows, or columns where rowvar=False)."""
    if fweights is not None or aweights is not None:
        raise unsupported("numpy.cov", *(k for k, v in (("fweights", fweights),
                                                         ("aweights", aweights)) if v is not None))
    x = _operand(m)
    if np.ndim(x) > 2:
        raise errors.user_error(ValueError, "numpy.cov: m has more than 2 dimensions")
    dtype = dtype if dtype is not None else np.result_type(x, np.float64)
    if not np.issubdtype(dtype, np.inexact):      # NumPy subtracts the mean in place
        raise errors.user_error(TypeError, f"numpy.cov: Cannot cast ufunc 'subtract' output "
                                f"from dtype('float64') to {np.dtype(dtype)!r} with casting "
                                "rule 'same_kind'")
    x = np.atleast_2d(x).astype(dtype)
    if not rowvar and np.shape(x)[0] != 1:
        x = x.T
    if y is not None:
        yy = np.atleast_2d(_operand(y)).astype(dtype)
        if not rowvar and np.shape(yy)[0] != 1:
            yy = yy.T
        x = np.concatenate([x, yy], axis=0)
    ddof = (0 if bias else 1) if ddof is None else _static_int(ddof, "numpy.cov", "ddof")
    n = np.shape(x)[1]
    centred = x - np.mean(x, axis=1, keepdims=True)
    c = (centred @ centred.T) / float(n - ddof) if n - ddof > 0 else \
        (centred @ centred.T) * np.inf          # NumPy: a warning, and inf or NaN
    return np.squeeze(c)


@implements(np.corrcoef)
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """numpy.corrcoef: the covariance over the outer product of the standard deviations,
    clipped to [-1, 1] as NumPy clips it."""
    c = cov(x, y, rowvar, dtype=dtype)
    if np.ndim(c) == 0:
        return c / c
    d = np.sqrt(np.diagonal(c))
    return np.clip(c / d[:, None] / d[None, :], -1, 1)


@implements(np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    """numpy.ptp: max - min along `axis`."""
    if out is not None:
        raise unsupported("numpy.ptp", "out")
    a = _operand(a)
    return np.subtract(np.max(a, axis=axis, keepdims=keepdims),
                       np.min(a, axis=axis, keepdims=keepdims))


@implements(np.count_nonzero)
def count_nonzero(a, axis=None, *, keepdims=False):
    """numpy.count_nonzero: the number of nonzero elements (int64; a Python int in NumPy
    without axis, a 0-d int64 here)."""
    return np.sum(np.not_equal(_operand(a), 0), axis=axis, keepdims=keepdims)


# ---------------------------------------------------------------------------------------------
# polynomials and integration


@implements(np.polyval)
def polyval(p, x):
    """numpy.polyval by Horner's rule: p[0] x^(n-1) + ... + p[n-1]."""
    p, x = _operand(p), _operand(x)
    if np.ndim(p) != 1:
        raise unsupported("numpy.polyval", "p", why="p must be a 1-d array of coefficients "
                          "(poly1d objects are not traced)")
    y = np.zeros_like(x, dtype=np.result_type(p, x))
    for i in range(np.shape(p)[0]):
        y = y * x + p[i]
    return y


@implements(np.vander)
def vander(x, N=None, increasing=False):
    """numpy.vander: the powers of x as columns, decreasing unless `increasing`."""
    x = _operand(x)
    if np.ndim(x) != 1:
        raise errors.user_error(ValueError, "numpy.vander: x must be a one-dimensional array "
                                "or sequence.")
    n = np.shape(x)[0] if N is None else _static_int(N, "numpy.vander", "N")
    x = x.astype(np.promote_types(x.dtype, int))          # NumPy's: float32 becomes float64
    cols = [np.ones_like(x)] if n else []
    for _ in range(1, n):
        cols.append(cols[-1] * x)
    v = np.stack(cols, axis=1) if n else np.zeros((np.shape(x)[0], 0), x.dtype)
    return v if increasing else v[:, ::-1]


@implements(np.polyfit)
def polyfit(x, y, deg, rcond=None, full=False, w=None, cov=False):
    """numpy.polyfit: the least-squares polynomial of degree `deg` (lstsq of the scaled
    Vandermonde matrix, as NumPy solves it); full=, w= and cov= are not traced."""
    for name, value in (("full", full), ("w", w), ("cov", cov)):
        if value is not None and value is not False:
            raise unsupported("numpy.polyfit", name)
    deg = _static_int(deg, "numpy.polyfit", "deg")
    x, y = _operand(x).astype(np.result_type(x, 1.0)), _operand(y)
    y = y.astype(np.result_type(y, x))
    order = deg + 1
    rcond = np.shape(x)[0] * np.finfo(np.asarray(x).dtype if not isinstance(x, Tracer)
                                      else x.dtype).eps if rcond is None else rcond
    lhs = vander(x, order)
    rhs = y
    # NumPy scales the columns to unit norm before solving.
    scale = np.sqrt(np.sum(lhs * lhs, axis=0))
    c = np.linalg.lstsq(lhs / scale, rhs, rcond=rcond)[0]
    return (c.T / scale).T


@implements(np.trapezoid)
def trapezoid(y, x=None, dx=1.0, axis=-1):
    """numpy.trapezoid: the trapezoidal rule along `axis`, over sample points x or spacing dx."""
    y = _operand(y)
    nd = np.ndim(y)
    ax = _one_axis(axis, nd, "numpy.trapezoid")
    lo = tuple(slice(None) if d != ax else slice(None, -1) for d in range(nd))
    hi = tuple(slice(None) if d != ax else slice(1, None) for d in range(nd))
    if x is None:
        d = dx
    else:
        x = _operand(x)
        d = np.diff(x, axis=axis if np.ndim(x) != 1 else 0)
        if np.ndim(x) == 1:
            d = np.reshape(d, tuple(-1 if i == ax else 1 for i in range(nd)))
    return np.sum(d * (y[hi] + y[lo]) / 2.0, axis=ax)


@implements(np.gradient)
def gradient(f, *varargs, axis=None, edge_order=1):
    """numpy.gradient with uniform spacings (scalars): second-order central differences inside,
    first- or second-order one-sided at the edges."""
    f = _operand(f)
    nd = np.ndim(f)
    axes = static_axes(axis, nd, "numpy.gradient")
    if len(varargs) == 0:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacing = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes) and all(np.ndim(v) == 0 for v in varargs):
        spacing = list(varargs)
    else:
        raise unsupported("numpy.gradient", "varargs", why="coordinate arrays; pass uniform "
                          "spacings (scalars)")
    if edge_order not in (1, 2):
        raise errors.user_error(ValueError, "numpy.gradient: 'edge_order' greater than 2 not "
                                "supported")
    f = f.astype(np.result_type(f, 1.0)) if not np.issubdtype(
        np.asarray(f).dtype if not isinstance(f, Tracer) else f.dtype, np.inexact) else f
    out = []
    for ax, h in zip(axes, spacing):
        n = np.shape(f)[ax]
        if n < edge_order + 1:
            raise errors.user_error(ValueError, "numpy.gradient: Shape of array too small to "
                                    "calculate a numerical gradient, at least (edge_order + 1) "
                                    "elements are required.")

        def at(s, ax=ax):
            return f[tuple(s if d == ax else slice(None) for d in range(nd))]

        inside = (at(slice(2, None)) - at(slice(None, -2))) / (2.0 * h)
        if edge_order == 1:
            first = (at(slice(1, 2)) - at(slice(0, 1))) / h
            last = (at(slice(n - 1, n)) - at(slice(n - 2, n - 1))) / h
        else:
            first = (-1.5 * at(slice(0, 1)) + 2.0 * at(slice(1, 2)) - 0.5 * at(slice(2, 3))) / h
            last = (0.5 * at(slice(n - 3, n - 2)) - 2.0 * at(slice(n - 2, n - 1))
                    + 1.5 * at(slice(n - 1, n))) / h
        out.append(np.concatenate([first, inside, last], axis=ax))
    return out[0] if len(out) == 1 else tuple(out)


# ---------------------------------------------------------------------------------------------
# searches and interpolation


@implements(np.searchsorted)
def searchsorted(a, v, side="left", sorter=None):
    """numpy.searchsorted of v in the sorted 1-d a: the count of a's elements below v (at or
    below for side='right')."""
    if side not in ("left", "right"):
        raise errors.user_error(ValueError, f"numpy.searchsorted: side must be 'left' or "
                                f"'right' (got {side!r})")
    a, v = _operand(a), _operand(v)
    if np.ndim(a) != 1:
        raise errors.user_error(ValueError, "numpy.searchsorted: a must be 1-d")
    if sorter is not None:
        a = np.take(a, sorter)
    below = np.less if side == "left" else np.less_equal
    return np.sum(below(a, np.expand_dims(v, -1)), axis=-1)


@implements(np.digitize)
def digitize(x, bins, right=False):
    """numpy.digitize: the index of the bin of each x, for increasing or decreasing bins
    (monotonic bins are the caller's promise, as in NumPy)."""
    bins = _operand(bins)
    if isinstance(bins, Tracer):
        raise errors.user_error(errors.ConcretizationError, "numpy.digitize: bins must be "
                                "static (NumPy checks that they are monotonic)")
    if np.ndim(bins) != 1:
        raise errors.user_error(ValueError, "numpy.digitize: bins must be 1-dimensional")
    if len(bins) > 1 and bins[0] > bins[-1]:                     # decreasing
        return len(bins) - searchsorted(bins[::-1], x, side="left" if right else "right")
    return searchsorted(bins, x, side="left" if right else "right")


@implements(np.interp)
def interp(x, xp, fp, left=None, right=None, period=None):
    """numpy.interp: piecewise-linear interpolation of (xp, fp) at x (xp increasing); fp[0] or
    `left` below xp[0], fp[-1] or `right` above xp[-1]. Differentiable in x and fp."""
    if period is not None:
        raise unsupported("numpy.interp", "period")
    x, xp, fp = _operand(x), _operand(xp), _operand(fp)
    if np.ndim(xp) != 1 or np.ndim(fp) != 1 or np.shape(xp) != np.shape(fp):
        raise errors.user_error(ValueError, "numpy.interp: fp and xp are not of the same "
                                "length.")
    dtype = np.result_type(x, xp, fp, np.float64)
    x, xp, fp = (np.asarray(v, dtype) if not isinstance(v, Tracer) else v.astype(dtype)
                 for v in (x, xp, fp))
    n = np.shape(xp)[0]
    if n == 1:
        y = np.broadcast_to(fp[0], np.shape(x))
    else:
        j = np.clip(searchsorted(xp, x, side="right") - 1, 0, n - 2)
        def pick(v, i):                 # v[i], as the one-hot sum (v may be a NumPy array)
            return np.sum(np.where(np.expand_dims(i, -1) == np.arange(n), v, 0), axis=-1)

        x0, x1, f0, f1 = (pick(v, i) for v in (xp, fp) for i in (j, j + 1))
        slope = (f1 - f0) / (x1 - x0)
        y = slope * (x - x0) + f0
        # At a knot the value is fp there (no 0 * inf from a zero-width interval).
        y = np.where(x == x1, f1, y)
    y = np.where(x < xp[0], fp[0] if left is None else left, y)
    y = np.where(x > xp[-1], fp[-1] if right is None else right, y)
    return y.astype(dtype)


@implements(np.unwrap)
def unwrap(p, discont=None, axis=-1, *, period=2 * np.pi):
    """numpy.unwrap: jumps larger than max(discont, period / 2) between neighbours replaced by
    their complement, as NumPy computes it."""
    p = _operand(p)
    nd = np.ndim(p)
    ax = _one_axis(axis, nd, "numpy.unwrap")
    dd = np.diff(p, axis=ax)
    discont = period / 2 if discont is None else discont
    half = period / 2
    ddmod = np.mod(dd + half, period) - half
    ddmod = np.where((ddmod == -half) & (dd > 0), half, ddmod)
    correction = np.where(np.abs(dd) < discont, 0.0, ddmod - dd)
    head = p[tuple(slice(0, 1) if d == ax else slice(None) for d in range(nd))]
    rest = p[tuple(slice(1, None) if d == ax else slice(None) for d in range(nd))]
    return np.concatenate([head, rest + np.cumsum(correction, axis=ax)], axis=ax)


# ---------------------------------------------------------------------------------------------
# membership and equality (values, no gradient)


@implements(np.isin)
def isin(element, test_elements, assume_unique=False, invert=False, *, kind=None):
    """numpy.isin: whether each element equals one of test_elements (all pairs compared)."""
    if kind not in (None, "sort", "table"):
        raise errors.user_error(ValueError, f"numpy.isin: Invalid kind: '{kind}'. Please use "
                                "None, 'sort' or 'table'.")
    e, t = _operand(element), _operand(test_elements)
    found = np.any(np.equal(np.expand_dims(e, -1), np.ravel(t)), axis=-1)
    return np.logical_not(found) if invert else found


@implements(np.array_equal)
def array_equal(a1, a2, equal_nan=False):
    """numpy.array_equal: same shape (static: False now if not) and equal elements."""
    a1, a2 = _operand(a1), _operand(a2)
    if np.shape(a1) != np.shape(a2):
        return False
    same = np.equal(a1, a2)
    if equal_nan:
        same = same | (np.isnan(a1) & np.isnan(a2))
    return np.all(same)


@implements(np.array_equiv)
def array_equiv(a1, a2):
    """numpy.array_equiv: equal after broadcasting (False now where the shapes do not)."""
    a1, a2 = _operand(a1), _operand(a2)
    try:
        np.broadcast_shapes(np.shape(a1), np.shape(a2))
    except ValueError:
        return False
    return np.all(np.equal(a1, a2))
