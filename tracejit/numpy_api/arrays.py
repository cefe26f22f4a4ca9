"""NumPy's array functions that are compositions of the others: dimensions (atleast_*d),
flipping and rotating, rolling, repeating and tiling, splitting and joining, diagonals and
triangles, differences, kron, cross, select, nan_to_num, isclose, pad.

Each is written as NumPy writes it (numpy/lib), in NumPy calls on tracers that dispatch back
to the implementations of this package: the same dtypes, shapes, errors and values, and their
gradients by composition. Every size, shift, section and offset is static (a Python int or a
NumPy array known while tracing), as the shapes that depend on it must be; so are np.pad's
widths. np.pad's other modes are slices and concatenations; its constant mode is the pad
primitive itself.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import errors, ops
from ..tracer import Tracer
from ._common import as_operand, implements, leaves, static_axes, static_ints, unsupported


def _array(x):
    """A tracer or a NumPy array (Python numbers and lists become arrays, as np.asarray)."""
    x = as_operand(x)
    return x if isinstance(x, Tracer) else np.asarray(x)


def _one_or_all(results: list):
    return results[0] if len(results) == 1 else tuple(results)


# ---------------------------------------------------------------------------------------------
# dimensions


@implements(np.atleast_1d)
def atleast_1d(*arys):
    """numpy.atleast_1d: rank-0 values as shape (1,)."""
    return _one_or_all([np.reshape(a, (1,)) if np.ndim(a) == 0 else a
                        for a in map(_array, arys)])


@implements(np.atleast_2d)
def atleast_2d(*arys):
    """numpy.atleast_2d: () as (1, 1), (n,) as (1, n)."""
    out = []
    for a in map(_array, arys):
        nd = np.ndim(a)
        out.append(np.reshape(a, (1, 1)) if nd == 0 else a[np.newaxis, :] if nd == 1 else a)
    return _one_or_all(out)


@implements(np.atleast_3d)
def atleast_3d(*arys):
    """numpy.atleast_3d: () as (1, 1, 1), (n,) as (1, n, 1), (m, n) as (m, n, 1)."""
    out = []
    for a in map(_array, arys):
        nd = np.ndim(a)
        out.append(np.reshape(a, (1, 1, 1)) if nd == 0 else a[np.newaxis, :, np.newaxis]
                   if nd == 1 else a[:, :, np.newaxis] if nd == 2 else a)
    return _one_or_all(out)


@implements(np.broadcast_arrays)
def broadcast_arrays(*args, subok=False):
    """numpy.broadcast_arrays: every operand broadcast to their common shape."""
    xs = [_array(a) for a in args]
    shape = np.broadcast_shapes(*(np.shape(x) for x in xs))
    return tuple(np.broadcast_to(x, shape) for x in xs)


@implements(np.meshgrid)
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """numpy.meshgrid: coordinate arrays ('xy': the first two axes swapped, as NumPy), full or
    sparse (views: tracejit's results never alias)."""
    if indexing not in ("xy", "ij"):
        raise errors.user_error(ValueError, "numpy.meshgrid: Valid values for `indexing` are "
                                "'xy' and 'ij'.")
    n = len(xi)
    outs = []
    for i, x in enumerate(xi):
        shape = [1] * n
        shape[i] = -1
        if indexing == "xy" and n > 1 and i < 2:
            shape[i], shape[1 - i] = 1, -1
        outs.append(np.reshape(_array(x), shape))
    if not sparse:
        outs = list(np.broadcast_arrays(*outs))
    return tuple(outs)


@implements(np.diagflat)
def diagflat(v, k=0):
    """numpy.diagflat: the flattened input on diagonal k."""
    return diag(np.ravel(_array(v)), k)


@implements(np.ediff1d)
def ediff1d(ary, to_end=None, to_begin=None):
    """numpy.ediff1d: the differences of the flattened array, with to_begin/to_end around."""
    d = np.diff(np.ravel(_array(ary)))

    def part(p):
        return np.ravel(_array(p).astype(d.dtype))

    parts = ([part(to_begin)] if to_begin is not None else []) + [d] + (
        [part(to_end)] if to_end is not None else [])
    return np.concatenate(parts) if len(parts) > 1 else d


@implements(np.resize)
def resize(a, new_shape):
    """numpy.resize: the flattened array repeated (or cut) to `new_shape`."""
    shape = (new_shape,) if isinstance(new_shape, (int, np.integer)) else tuple(new_shape)
    flat = np.ravel(_array(a))
    size = int(np.prod(shape, dtype=np.int64))
    if flat.shape[0] == 0 or size == 0:
        return np.zeros(shape, flat.dtype)
    reps = -(-size // flat.shape[0])
    return np.reshape(np.tile(flat, reps)[:size], shape)


@implements(np.block)
def block(arrays):
    """numpy.block: nested lists concatenated, the innermost along the last axis."""
    def depth(x):
        return 1 + depth(x[0]) if isinstance(x, list) and x else (1 if isinstance(x, list)
                                                                   else 0)

    levels = depth(arrays)
    if levels == 0:
        return _array(arrays)
    ndim = max(levels, max(np.ndim(v) for v in leaves(arrays)))

    def build(x, level):
        if not isinstance(x, list):
            if level != levels:
                raise errors.user_error(ValueError, "numpy.block: List depths are mismatched")
            v = _array(x)
            return np.reshape(v, (1,) * (ndim - np.ndim(v)) + np.shape(v))
        if level == levels:
            raise errors.user_error(ValueError, "numpy.block: List depths are mismatched")
        return np.concatenate([build(item, level + 1) for item in x],
                              axis=-(levels - level))
    return build(arrays, 0)


@implements(np.rollaxis)
def rollaxis(a, axis, start=0):
    """numpy.rollaxis: axis `axis` moved to before `start`."""
    a = _array(a)
    n = np.ndim(a)
    (axis,) = static_axes(axis, n, "rollaxis")
    start = int(start) + (n if int(start) < 0 else 0)
    if not 0 <= start < n + 1:
        raise errors.user_error(np.exceptions.AxisError,
                                f"'start' arg requires {-n} <= start < {n + 1}, but {start} "
                                "was passed in")
    if axis < start:
        start -= 1
    if axis == start:
        return a
    axes = list(range(n))
    axes.remove(axis)
    axes.insert(start, axis)
    return np.transpose(a, axes)


# ---------------------------------------------------------------------------------------------
# flipping, rotating, rolling


def _flip_axis(m, axis: int):
    """m reversed along `axis`, which it must have (NumPy's error otherwise)."""
    m = _array(m)
    if np.ndim(m) <= axis:
        raise errors.user_error(ValueError, f"Input must be >= {axis + 1}-d.")
    return np.flip(m, axis)


@implements(np.flipud)
def flipud(m):
    """numpy.flipud: axis 0 reversed."""
    return _flip_axis(m, 0)


@implements(np.fliplr)
def fliplr(m):
    """numpy.fliplr: axis 1 reversed."""
    return _flip_axis(m, 1)


@implements(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    """numpy.rot90: k quarter turns in the plane of `axes`, from the first towards the second."""
    m = _array(m)
    axes = tuple(static_ints(axes, "rot90's axes"))
    nd = np.ndim(m)
    if len(axes) != 2:
        raise errors.user_error(ValueError, "len(axes) must be 2.")
    if axes[0] == axes[1] or abs(axes[0] - axes[1]) == nd:
        raise errors.user_error(ValueError, "Axes must be different.")
    if not all(-nd <= a < nd for a in axes):
        raise errors.user_error(ValueError, f"Axes={axes} out of range for array of ndim={nd}.")
    k = static_ints(k, "rot90's k")[0] % 4
    if k == 0:
        return m
    if k == 2:
        return np.flip(np.flip(m, axes[0]), axes[1])
    perm = list(range(nd))
    perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
    if k == 1:
        return np.transpose(np.flip(m, axes[1]), perm)
    return np.flip(np.transpose(m, perm), axes[1])


@implements(np.roll)
def roll(a, shift, axis=None):
    """numpy.roll: elements shifted along axes, those beyond the end coming back at the start
    (static shifts)."""
    a = _array(a)
    if axis is None:
        return np.reshape(roll(np.ravel(a), shift, 0), np.shape(a))
    shifts = static_ints(shift, "roll's shift")
    axes = static_ints(axis, "roll's axis")
    if len(shifts) != len(axes) and 1 not in (len(shifts), len(axes)):
        raise errors.user_error(ValueError, "'shift' and 'axis' should be scalars or 1D "
                                "sequences of the same length")
    n = max(len(shifts), len(axes))
    total: dict[int, int] = {}
    for s, ax in zip(shifts * (n // len(shifts)), axes * (n // len(axes))):
        (ax,) = static_axes(ax, np.ndim(a), "roll")
        total[ax] = total.get(ax, 0) + s
    for ax, s in total.items():
        size = np.shape(a)[ax]
        s = s % size if size else 0
        if s:
            head = [slice(None)] * np.ndim(a)
            tail = list(head)
            head[ax], tail[ax] = slice(size - s, None), slice(None, size - s)
            a = np.concatenate([a[tuple(head)], a[tuple(tail)]], axis=ax)
    return a


# ---------------------------------------------------------------------------------------------
# repeating and tiling


@implements(np.repeat)
def repeat(a, repeats, axis=None):
    """numpy.repeat with static repeats (one count, or one per element along the axis)."""
    a = _array(a)
    if axis is None:
        a, axis = np.ravel(a), 0
    (axis,) = static_axes(axis, np.ndim(a), "repeat")
    counts = static_ints(np.asarray(repeats).tolist() if not isinstance(repeats, Tracer)
                         else repeats, "repeat's repeats")
    if any(c < 0 for c in counts):
        raise errors.user_error(ValueError, "repeats may not contain negative values.")
    n = np.shape(a)[axis]
    if len(counts) not in (1, n):
        raise errors.user_error(ValueError, f"operands could not be broadcast together with "
                                f"shape ({n},) ({len(counts)},)")
    # The positions each element is copied to: np.repeat of the static indices.
    return np.take(a, np.repeat(np.arange(n), counts), axis=axis)


@implements(np.tile)
def tile(A, reps):
    """numpy.tile: A repeated reps[i] times along axis i (static reps)."""
    A = _array(A)
    reps = static_ints(reps, "tile's reps")
    nd = max(len(reps), np.ndim(A))
    reps = (1,) * (nd - len(reps)) + tuple(reps)
    shape = (1,) * (nd - np.ndim(A)) + tuple(np.shape(A))
    # Axis i becomes the pair (reps[i], shape[i]), broadcast, then merged.
    spread = np.reshape(A, tuple(v for n in shape for v in (1, n)))
    paired = np.broadcast_to(spread, tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return np.reshape(paired, tuple(r * n for r, n in zip(reps, shape)))


# ---------------------------------------------------------------------------------------------
# splitting and joining


@implements(np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    """numpy.array_split: sections of sizes differing by at most one, or at static indices."""
    ary = _array(ary)
    (axis,) = static_axes(axis, np.ndim(ary), "array_split")
    total = np.shape(ary)[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise errors.user_error(ValueError, "number sections must be larger than 0.")
        each, extras = divmod(total, sections)
        sizes = [0] + extras * [each + 1] + (sections - extras) * [each]
        points = np.cumsum(sizes).tolist()
    else:
        points = [0] + list(static_ints(list(indices_or_sections), "split's indices")) + [total]
    out = []
    for start, stop in zip(points[:-1], points[1:]):
        index = [slice(None)] * np.ndim(ary)
        index[axis] = slice(start, stop)
        out.append(ary[tuple(index)])
    return out


@implements(np.split)
def split(ary, indices_or_sections, axis=0):
    """numpy.split: array_split, whose sections must be equal when counted."""
    ary = _array(ary)
    if isinstance(indices_or_sections, (int, np.integer)):
        (ax,) = static_axes(axis, np.ndim(ary), "split")
        if np.shape(ary)[ax] % int(indices_or_sections):
            raise errors.user_error(ValueError, "array split does not result in an equal "
                                    "division")
    return array_split(ary, indices_or_sections, axis)


def _split_along(name: str, ary, sections, min_ndim: int, axis_of):
    ary = _array(ary)
    if np.ndim(ary) < min_ndim:
        raise errors.user_error(ValueError, f"{name} only works on arrays of {min_ndim} or "
                                "more dimensions")
    return split(ary, sections, axis_of(np.ndim(ary)))


@implements(np.hsplit)
def hsplit(ary, indices_or_sections):
    """numpy.hsplit: split along axis 1 (axis 0 of a vector)."""
    return _split_along("hsplit", ary, indices_or_sections, 1, lambda nd: 1 if nd > 1 else 0)


@implements(np.vsplit)
def vsplit(ary, indices_or_sections):
    """numpy.vsplit: split along axis 0."""
    return _split_along("vsplit", ary, indices_or_sections, 2, lambda nd: 0)


@implements(np.dsplit)
def dsplit(ary, indices_or_sections):
    """numpy.dsplit: split along axis 2."""
    return _split_along("dsplit", ary, indices_or_sections, 3, lambda nd: 2)


@implements(np.append)
def append(arr, values, axis=None):
    """numpy.append: a concatenation (of the flattened operands when axis is None)."""
    arr, values = _array(arr), _array(values)
    if axis is None:
        if np.ndim(arr) != 1:
            arr = np.ravel(arr)
        values = np.ravel(values)
        axis = np.ndim(arr) - 1
    return np.concatenate((arr, values), axis=axis)


@implements(np.column_stack)
def column_stack(tup):
    """numpy.column_stack: vectors as columns, then side by side."""
    arrays = []
    for v in map(_array, tup):
        if np.ndim(v) < 2:
            v = np.transpose(atleast_2d(v))
        arrays.append(v)
    return np.concatenate(arrays, axis=1)


@implements(np.dstack)
def dstack(tup):
    """numpy.dstack: joined along a third axis."""
    arrays = [atleast_3d(v) for v in map(_array, tup)]
    return np.concatenate(arrays, axis=2)


# ---------------------------------------------------------------------------------------------
# diagonals and triangles


def _diagonal_indices(rows: int, cols: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of the diagonal `offset` of a rows × cols matrix (j - i == offset)."""
    if offset >= 0:
        i = np.arange(max(0, min(rows, cols - offset)))
        return i, i + offset
    j = np.arange(max(0, min(rows + offset, cols)))
    return j - offset, j


@implements(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    """numpy.diagonal: the diagonal of the axis pair as the last axis."""
    a = _array(a)
    if np.ndim(a) < 2:
        raise errors.user_error(ValueError, "diag requires an array of at least two dimensions")
    axis1, axis2 = static_axes((axis1, axis2), np.ndim(a), "diagonal")
    m = np.moveaxis(a, (axis1, axis2), (-2, -1))
    i, j = _diagonal_indices(np.shape(m)[-2], np.shape(m)[-1], static_ints(offset, "offset")[0])
    return m[..., i, j]


@implements(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """numpy.trace: the sum of a diagonal."""
    if out is not None:
        raise unsupported("numpy.trace", "out", why="results are new values")
    return np.sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


@implements(np.diag)
def diag(v, k=0):
    """numpy.diag: the k-th diagonal of a matrix, or a matrix with a vector on it."""
    v = _array(v)
    k = static_ints(k, "diag's k")[0]
    if np.ndim(v) == 2:
        return diagonal(v, k)
    if np.ndim(v) != 1:
        raise errors.user_error(ValueError, "Input must be 1- or 2-d.")
    n = np.shape(v)[0] + abs(k)
    rows, cols = np.indices((n, n))
    on = cols - rows == k
    where = np.where(on, rows if k >= 0 else cols, 0)
    return np.where(on, v[where], np.zeros((), dtype=v.dtype))


@implements(np.tril)
def tril(m, k=0):
    """numpy.tril: zeros above the k-th diagonal of the last two axes."""
    m = _array(m)
    mask = np.tri(*np.shape(m)[-2:], k=static_ints(k, "tril's k")[0], dtype=bool)
    return np.where(mask, m, np.zeros(1, m.dtype))


@implements(np.triu)
def triu(m, k=0):
    """numpy.triu: zeros below the k-th diagonal of the last two axes."""
    m = _array(m)
    mask = np.tri(*np.shape(m)[-2:], k=static_ints(k, "triu's k")[0] - 1, dtype=bool)
    return np.where(mask, np.zeros(1, m.dtype), m)


# ---------------------------------------------------------------------------------------------
# differences and products


@implements(np.diff)
def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    """numpy.diff: the n-th differences along an axis (not_equal for booleans)."""
    a = _array(a)
    n = static_ints(n, "diff's n")[0]
    if n == 0:
        return a
    if n < 0:
        raise errors.user_error(ValueError, f"order must be non-negative but got {n!r}")
    nd = np.ndim(a)
    if nd == 0:
        raise errors.user_error(ValueError, "diff requires input that is at least one "
                                "dimensional")
    (axis,) = static_axes(axis, nd, "diff")
    parts = []
    for extra in (prepend, a, append):
        if extra is a:
            parts.append(a)
        elif extra is not np._NoValue:
            extra = _array(extra)
            if np.ndim(extra) == 0:
                shape = list(np.shape(a))
                shape[axis] = 1
                extra = np.broadcast_to(extra, tuple(shape))
            parts.append(extra)
    if len(parts) > 1:
        a = np.concatenate(parts, axis)
    lo, hi = [slice(None)] * nd, [slice(None)] * nd
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    for _ in range(n):
        a = (np.not_equal if a.dtype == np.bool_ else np.subtract)(a[tuple(hi)], a[tuple(lo)])
    return a


@implements(np.kron)
def kron(a, b):
    """numpy.kron: the Kronecker product (block matrix of a's elements times b)."""
    a, b = _array(a), _array(b)
    nda, ndb = np.ndim(a), np.ndim(b)
    if nda == 0 or ndb == 0:
        return np.multiply(a, b)
    sa = (1,) * max(0, ndb - nda) + tuple(np.shape(a))
    sb = (1,) * max(0, nda - ndb) + tuple(np.shape(b))
    a = np.reshape(a, sa)
    b = np.reshape(b, sb)
    # Axis i of the result pairs a's axis i (outer) with b's (inner).
    a = np.reshape(a, tuple(v for s in sa for v in (s, 1)))
    b = np.reshape(b, tuple(v for s in sb for v in (1, s)))
    return np.reshape(np.multiply(a, b), tuple(x * y for x, y in zip(sa, sb)))


@implements(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """numpy.cross of 3-vectors (and of 2-vectors, their z component), along static axes."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _array(a), _array(b)
    (axisa,) = static_axes(axisa, np.ndim(a), "cross")
    (axisb,) = static_axes(axisb, np.ndim(b), "cross")
    a, b = np.moveaxis(a, axisa, -1), np.moveaxis(b, axisb, -1)
    na, nb = np.shape(a)[-1], np.shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise errors.user_error(ValueError, "incompatible dimensions for cross product\n"
                                "(dimension must be 2 or 3)")
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    a2 = a[..., 2] if na == 3 else None
    b2 = b[..., 2] if nb == 3 else None
    if na == 2 or nb == 2:
        # NumPy's warning, at the user's line.
        loc = errors.user_location()
        warnings.warn_explicit("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                               "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                               DeprecationWarning, loc.file if loc else "<unknown>",
                               loc.line if loc else 0)
    z = a0 * b1 - a1 * b0
    if na == 2 and nb == 2:
        return z
    x = (a1 * b2 if b2 is not None else 0) - (a2 * b1 if a2 is not None else 0)
    y = (a2 * b0 if a2 is not None else 0) - (a0 * b2 if b2 is not None else 0)
    shape = np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z))
    cp = np.stack([np.broadcast_to(c, shape) for c in (x, y, z)], axis=-1)
    (axisc,) = static_axes(axisc, np.ndim(cp), "cross")
    return np.moveaxis(cp, -1, axisc)


# ---------------------------------------------------------------------------------------------
# choosing and cleaning


@implements(np.select)
def select(condlist, choicelist, default=0):
    """numpy.select: the choice of the first true condition, else default."""
    if len(condlist) != len(choicelist):
        raise errors.user_error(ValueError, "list of cases must be same length as list of "
                                "conditions")
    if not condlist:
        raise errors.user_error(ValueError, "select with an empty condition list is not "
                                "possible")
    conds = [_array(c) for c in condlist]
    for i, c in enumerate(conds):
        if c.dtype != np.bool_:
            raise errors.user_error(TypeError, f"invalid entry {i} in condlist: should be "
                                    "boolean ndarray")
    # As NumPy: the choices' dtype, then the default's (a Python number is weak).
    dtype = np.result_type(np.result_type(*[_array(c) for c in choicelist]), default)
    result = default if isinstance(default, Tracer) else np.asarray(default, dtype)
    for cond, choice in zip(reversed(conds), reversed(list(choicelist))):
        result = np.where(cond, choice, result)
    return result.astype(dtype)


@implements(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """numpy.nan_to_num: NaN, +inf and -inf replaced (by 0 and the largest finite values)."""
    x = _array(x)
    if not np.issubdtype(x.dtype, np.floating):
        return x
    info = np.finfo(x.dtype)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    big = np.where(x == np.inf, np.asarray(posinf, x.dtype),
                   np.where(x == -np.inf, np.asarray(neginf, x.dtype), x))
    return np.where(np.isnan(x), np.asarray(nan, x.dtype), big)


@implements(np.isclose)
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """numpy.isclose: |a - b| <= atol + rtol |b|, or equal (infinities), elementwise."""
    x, y = _array(a), _array(b)
    y = y.astype(np.result_type(y.dtype, 1.0))
    result = (np.less_equal(np.abs(x - y), atol + rtol * np.abs(y)) & np.isfinite(y)) | (x == y)
    if equal_nan:
        result = result | (np.isnan(x) & np.isnan(y))
    return result


@implements(np.allclose)
def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """numpy.allclose, as a traced boolean (NumPy's Python bool needs the values)."""
    return np.all(isclose(a, b, rtol, atol, equal_nan))


# ---------------------------------------------------------------------------------------------
# padding


#: np.pad's modes and the keywords each takes (NumPy's table).
_PAD_KEYWORDS = {
    "constant": ("constant_values",), "edge": (), "wrap": (), "empty": (),
    "linear_ramp": ("end_values",), "maximum": ("stat_length",), "mean": ("stat_length",),
    "median": ("stat_length",), "minimum": ("stat_length",),
    "reflect": ("reflect_type",), "symmetric": ("reflect_type",),
}


def _as_pairs(x: np.ndarray, ndim: int) -> list[tuple]:
    """NumPy's broadcast of pad_width or constant_values (a NumPy array) to `ndim` pairs
    (before, after): one value for every side, one pair for every axis, or a pair per axis."""
    if x.ndim < 3:
        if x.size == 1:
            v = x.ravel()[0]
            return [(v, v)] * ndim
        if x.size == 2 and x.shape != (2, 1):
            # (before, after) for every axis; but [[b0], [b1]] is one value per axis.
            b, a = x.ravel()
            return [(b, a)] * ndim
    try:
        pairs = np.broadcast_to(x, (ndim, 2))
    except ValueError:
        raise errors.user_error(ValueError, f"numpy.pad: operands could not be broadcast "
                                f"together with shape {x.shape} and ({ndim}, 2)") from None
    return [tuple(p) for p in pairs]


def _pad_widths(pad_width, ndim: int) -> list[tuple[int, int]]:
    """np.pad's pad_width in any of NumPy's forms (an int, (before, after), a pair per axis,
    a dict of axis -> width) as `ndim` static pairs of non-negative ints."""
    if isinstance(pad_width, Tracer) or isinstance(pad_width, (list, tuple, dict)) and any(
            isinstance(v, Tracer) for v in leaves(
                list(pad_width.values()) if isinstance(pad_width, dict) else pad_width)):
        raise errors.user_error(
            errors.ConcretizationError, "numpy.pad: pad_width must be static (Python ints or a "
            "NumPy array), as the padded shape depends on it, but it depends on a traced value; "
            "use shapes (x.shape) or pass it with static_argnums")
    if isinstance(pad_width, dict):
        seq = [(0, 0)] * ndim
        for axis, width in pad_width.items():
            (axis,) = static_axes(axis, ndim, "pad")
            pair = tuple(width) if isinstance(width, (tuple, list)) else (width, width)
            if len(pair) != 2:
                raise errors.user_error(ValueError, f"numpy.pad: pad_width[{axis}] must be an "
                                        f"int or a (before, after) pair, got {width!r}")
            seq[axis] = pair
        pad_width = seq
    widths = np.asarray(pad_width)
    if widths.dtype.kind != "i":
        raise errors.user_error(TypeError, "numpy.pad: `pad_width` must be of integral type.")
    pairs = [(int(b), int(a)) for b, a in _as_pairs(widths, ndim)]
    if any(b < 0 or a < 0 for b, a in pairs):
        raise errors.user_error(ValueError, "numpy.pad: index can't contain negative values")
    return pairs


def _pad_values(values, ndim: int, dtype: np.dtype) -> list[tuple]:
    """constant_values in any of NumPy's forms as `ndim` pairs of scalars of `dtype`: NumPy
    scalars when static (converted as NumPy assigns them: 1.7 is 1 in an integer array, NaN
    there an error), tracers cast to `dtype` when traced."""
    traced = isinstance(values, Tracer) or isinstance(values, (list, tuple)) and any(
        isinstance(v, Tracer) for v in leaves(values))
    if not traced:
        pairs = _as_pairs(np.asarray(values), ndim)
        out = []
        for pair in pairs:
            cast = []
            for v in pair:
                box = np.empty((), dtype)
                try:
                    box[()] = v
                except (ValueError, OverflowError, TypeError) as exc:
                    raise errors.user_error(type(exc), f"numpy.pad: constant_values {v!r}: "
                                            f"{exc}") from None
                cast.append(box[()])
            out.append(tuple(cast))
        return out
    # Traced: pick the items by the same broadcast applied to their flat positions.
    values = as_operand(values)
    flat = np.ravel(values)
    positions = _as_pairs(np.arange(np.size(values)).reshape(np.shape(values)), ndim)
    items: dict[int, object] = {}
    for pair in positions:
        for k in pair:
            if int(k) not in items:
                items[int(k)] = flat[int(k)].astype(dtype)
    return [tuple(items[int(k)] for k in pair) for pair in positions]


def _at(axis: int, index) -> tuple:
    """An index applying `index` (a slice) along `axis`, every other axis whole."""
    return (slice(None),) * axis + (index,)


def _same_value(u, v) -> bool:
    """True when two padding values are one: the same tracer, or equal static bits."""
    if isinstance(u, Tracer) or isinstance(v, Tracer):
        return u is v
    return np.asarray(u).tobytes() == np.asarray(v).tobytes()


def _pad_constant(a, widths, values):
    """a padded with constant values: one pad primitive per distinct value. As NumPy fills the
    axes in order, each over the earlier axes' padding too, a corner takes the value of its
    last axis."""
    shape = list(np.shape(a))
    nd = len(shape)
    if not any(b or e for b, e in widths):
        return a
    flat_values = [v for pair in values for v in pair]
    if all(_same_value(v, flat_values[0]) for v in flat_values):
        # One value everywhere: one pad of every axis at once.
        out = tuple(n + b + e for n, (b, e) in zip(shape, widths))
        return ops.pad(a, flat_values[0], tuple(b for b, _ in widths), (1,) * nd, out)
    for axis, ((b, e), (vb, ve)) in enumerate(zip(widths, values)):
        sides = [(b, e, vb)] if _same_value(vb, ve) else [(b, 0, vb), (0, e, ve)]
        for before, after, value in sides:
            if before or after:
                starts = [0] * nd
                starts[axis] = before
                shape[axis] += before + after
                a = ops.pad(a, value, tuple(starts), (1,) * nd, tuple(shape))
    return a


def _edge_copies(a, axis: int, index: int, width: int):
    """`width` copies along `axis` of a's slice `index` of that axis."""
    shape = list(np.shape(a))
    shape[axis] = width
    return np.broadcast_to(a[_at(axis, slice(index, index + 1))], tuple(shape))


def _pad_edge(a, axis: int, before: int, after: int):
    """a extended along `axis` by copies of its first and last slices."""
    n = np.shape(a)[axis]
    parts = [a]
    if before:
        parts.insert(0, _edge_copies(a, axis, 0, before))
    if after:
        parts.append(_edge_copies(a, axis, n - 1, after))
    return np.concatenate(parts, axis=axis)


def _pad_reflect(a, axis: int, before: int, after: int, odd: bool, include_edge: bool):
    """NumPy's reflect (include_edge False: the edge is the mirror) and symmetric (True: the
    mirror lies beyond the edge) along `axis`, repeated as NumPy repeats it while the padding
    is wider than the values: each round mirrors the values padded so far (whole periods of
    them, NumPy's `old_length`), so that widths beyond the axis give NumPy's answer. 'odd'
    reflects 2 * edge - value about the current edge."""
    period = np.shape(a)[axis]
    if period == 1:
        # NumPy's legacy rule: a single value is extended as 'edge'.
        return _pad_edge(a, axis, before, after)
    e = 1 if include_edge else 0
    dtype = a.dtype
    while before > 0 or after > 0:
        length = np.shape(a)[axis]
        # The values that may be mirrored this round: whole periods (reflect: of period - 1,
        # the edge excluded).
        old = length // period * period if include_edge else \
            (length - 1) // (period - 1) * (period - 1)
        left = right = None
        if before > 0:
            c = min(old, before)
            # valid[c - e], ..., valid[1 - e]: mirrored about (reflect) or beside (symmetric)
            # the first value.
            left = np.flip(a[_at(axis, slice(1 - e, c + 1 - e))], axis)
            if odd:
                left = (2 * a[_at(axis, slice(0, 1))] - left).astype(dtype)
            before -= c
        if after > 0:
            c = min(old, after)
            # valid[L - 2 + e], ..., valid[L - 1 - c + e], about the last value.
            right = np.flip(a[_at(axis, slice(length - 1 - c + e, length - 1 + e))], axis)
            if odd:
                right = (2 * a[_at(axis, slice(length - 1, length))] - right).astype(dtype)
            after -= c
        a = np.concatenate([p for p in (left, a, right) if p is not None], axis=axis)
    return a


def _pad_wrap(a, axis: int, before: int, after: int):
    """NumPy's wrap along `axis`: the last values before the start, the first after the end,
    repeated as NumPy repeats it (whole periods of the values padded so far each round)."""
    period = np.shape(a)[axis]
    while before > 0 or after > 0:
        length = np.shape(a)[axis]
        span = length // period * period
        left = right = None
        if before > 0:
            c = min(span, before)
            left = a[_at(axis, slice(span - c, span))]
            before -= c
        if after > 0:
            c = min(span, after)
            right = a[_at(axis, slice(length - span, length - span + c))]
            after -= c
        a = np.concatenate([p for p in (left, a, right) if p is not None], axis=axis)
    return a


@implements(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    """numpy.pad with static pad_width, in the modes 'constant' (constant_values static or
    traced, in each of NumPy's forms), 'edge', 'reflect' and 'symmetric' (reflect_type 'even'
    or 'odd'), 'wrap', and 'empty', whose values NumPy leaves undefined: tracejit fills zeros.
    Reflections and wraps wider than the axis repeat as NumPy's do. The statistic modes
    ('maximum', 'mean', 'median', 'minimum'), 'linear_ramp' and a padding function are
    refused (UnsupportedError)."""
    a = _array(array)
    nd = np.ndim(a)
    widths = _pad_widths(pad_width, nd)
    if callable(mode):
        raise unsupported("numpy.pad", "mode", why="a padding function modifies the array in "
                          "place, which a traced value cannot be; use one of the modes "
                          "'constant', 'edge', 'reflect', 'symmetric', 'wrap' or 'empty'")
    if not isinstance(mode, str) or mode not in _PAD_KEYWORDS:
        raise errors.user_error(ValueError, f"numpy.pad: mode {mode!r} is not supported")
    extra = set(kwargs) - set(_PAD_KEYWORDS[mode])
    if extra:
        raise errors.user_error(ValueError, f"numpy.pad: unsupported keyword arguments for "
                                f"mode '{mode}': {extra}")
    if mode in ("linear_ramp", "maximum", "mean", "median", "minimum"):
        raise unsupported("numpy.pad", "mode", why=f"mode={mode!r} is not implemented; the "
                          "modes tracejit pads with are 'constant', 'edge', 'reflect', "
                          "'symmetric', 'wrap' and 'empty'")
    dtype = a.dtype
    if mode in ("constant", "empty"):
        values = _pad_values(kwargs.get("constant_values", 0), nd, dtype)
        return _pad_constant(a, widths, values)
    if np.size(a) == 0:
        # As NumPy: only 'constant' and 'empty' extend an empty axis; the result is empty.
        for axis, (b, e) in enumerate(widths):
            if np.shape(a)[axis] == 0 and (b or e):
                raise errors.user_error(ValueError, f"numpy.pad: can't extend empty axis "
                                        f"{axis} using modes other than 'constant' or 'empty'")
        return _pad_constant(a, widths, _pad_values(0, nd, dtype))
    odd = kwargs.get("reflect_type", "even") == "odd"     # NumPy: anything else is 'even'
    # Axis by axis, each over the earlier axes' padding (NumPy's order, which the corners
    # show).
    for axis, (b, e) in enumerate(widths):
        if not (b or e):
            continue
        if mode == "edge":
            a = _pad_edge(a, axis, b, e)
        elif mode == "wrap":
            a = _pad_wrap(a, axis, b, e)
        else:
            a = _pad_reflect(a, axis, b, e, odd, include_edge=mode == "symmetric")
    return a
