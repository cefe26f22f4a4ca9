"""Shapes on tracers: reshape, transpose and the other axis moves, broadcasting, joining
(concatenate, stack), flip, where, NumPy's indexing (`Tracer.__getitem__`, take,
take_along_axis), and the constructors that take an array's shape (zeros_like, ...).
"""

from __future__ import annotations

import math

import numpy as np

from .. import errors, ops
from ..ir import Type, is_int, is_python_scalar
from ..tracer import Tracer
from ._common import (as_operand, as_traced, broadcast_all, check_casting, check_device,
                      check_dtype, check_order, convert, implements, implements_method, leaves,
                      static_axes, static_ints, type_str, unsupported)
from .ufuncs import result_dtype, truth


# ---------------------------------------------------------------------------------------------
# axes


def _check_index_order(name: str, order) -> None:
    """The index order of reshape and ravel: 'C' or 'F'. 'A' and 'K' follow an array's memory
    layout, which a traced value does not have."""
    if order not in ("C", "F"):
        raise unsupported(name, "order", why=f"order={order!r} follows the memory layout of "
                          "an array, which a traced value does not have; use 'C' or 'F'")


@implements(np.reshape)
def reshape(x, shape, order="C", *, newshape=None, copy=None):
    """numpy.reshape (C or F index order)."""
    # copy= cannot matter: traced values are immutable, so a copy and a view are alike.
    x = as_operand(x)
    _check_index_order("numpy.reshape", order)
    shape = static_ints(shape if newshape is None else newshape, "a reshape's shape")
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


@implements(np.transpose)
def transpose(x, axes=None):
    """numpy.transpose."""
    x = as_operand(x)
    nd = ops.type_of(x).ndim
    if axes is None:
        perm = tuple(reversed(range(nd)))
    else:
        perm = static_axes(tuple(axes), nd, "numpy.transpose")
        if len(perm) != nd:
            raise errors.user_error(ValueError, f"transpose: axes {axes} don't match an array "
                                    f"of dimension {nd}")
    return ops.transpose(x, perm)


@implements(np.swapaxes)
def swapaxes(x, axis1, axis2):
    """numpy.swapaxes."""
    nd = ops.type_of(x).ndim
    a, b = static_axes((axis1,), nd, "swapaxes")[0], static_axes((axis2,), nd, "swapaxes")[0]
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return ops.transpose(x, perm)


@implements(np.moveaxis)
def moveaxis(x, source, destination):
    """numpy.moveaxis."""
    nd = ops.type_of(x).ndim
    src = static_axes(source if isinstance(source, (tuple, list)) else (source,), nd, "moveaxis")
    dst = static_axes(destination if isinstance(destination, (tuple, list)) else (destination,),
                      nd, "moveaxis")
    if len(src) != len(dst):
        raise errors.user_error(ValueError, "moveaxis: source and destination differ in length")
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ops.transpose(x, order)


@implements(np.expand_dims)
def expand_dims(x, axis):
    """numpy.expand_dims."""
    t = ops.type_of(x)
    nd = t.ndim + (len(axis) if isinstance(axis, (tuple, list)) else 1)
    axes = static_axes(axis, nd, "expand_dims")
    it = iter(t.shape)
    return ops.reshape(x, tuple(1 if i in axes else next(it) for i in range(nd)))


@implements(np.squeeze)
def squeeze(x, axis=None):
    """numpy.squeeze."""
    t = ops.type_of(x)
    axes = tuple(i for i, n in enumerate(t.shape) if n == 1) if axis is None \
        else static_axes(axis, t.ndim, "squeeze")
    for a in axes:
        if t.shape[a] != 1:
            raise errors.user_error(errors.ShapeError, f"cannot select an axis to squeeze out "
                                    f"which has size not equal to one ({t}, axis {a})")
    return ops.reshape(x, tuple(n for i, n in enumerate(t.shape) if i not in axes))


@implements(np.ravel)
def ravel(x, order="C"):
    """numpy.ravel."""
    _check_index_order("numpy.ravel", order)
    return reshape(x, (-1,), order)


@implements(np.broadcast_to)
def broadcast_to(x, shape, subok=False):
    """numpy.broadcast_to."""
    x = as_operand(x)
    shape = static_ints(shape, "broadcast_to's shape")
    t = ops.type_of(x)
    try:
        if np.broadcast_shapes(t.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise errors.user_error(errors.ShapeError, f"cannot broadcast {t} to shape {shape}") \
            from None
    return ops.broadcast_to(x, shape)


# ---------------------------------------------------------------------------------------------
# joining


@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """numpy.concatenate, with its dtype= and casting=."""
    if out is not None:
        raise unsupported("numpy.concatenate", "out")
    xs = [as_operand(a) for a in arrays]
    if not xs:
        raise errors.user_error(ValueError, "need at least one array to concatenate")
    if axis is None:
        xs = [ravel(x) for x in xs]
        axis = 0
    nd = ops.type_of(xs[0]).ndim
    if nd == 0 or any(ops.type_of(x).ndim != nd for x in xs):
        raise errors.user_error(errors.ShapeError, "concatenate: all inputs must have the same "
                                "number of dimensions (>= 1), got "
                                + ", ".join(type_str(x) for x in xs))
    (a,) = static_axes((axis,), nd, "concatenate")
    target = check_dtype(dtype) if dtype is not None else result_dtype(*xs)
    check_casting(xs, target, casting)
    xs = [ops.cast(x if not is_python_scalar(x) else np.asarray(x), target) for x in xs]
    shapes = [ops.type_of(x).shape for x in xs]
    if any(s[:a] + s[a + 1:] != shapes[0][:a] + shapes[0][a + 1:] for s in shapes):
        raise errors.user_error(errors.ShapeError, f"concatenate: shapes {shapes} differ off "
                                f"axis {a}")
    xs = [x if isinstance(x, Tracer) else np.asarray(x) for x in xs]
    return ops.concatenate(xs, a)


@implements(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """numpy.stack."""
    # NumPy converts Python numbers to (strong, default-dtype) arrays here.
    xs = [np.asarray(x) if is_python_scalar(x) else x for x in map(as_operand, arrays)]
    if not xs:
        raise errors.user_error(ValueError, "need at least one array to stack")
    shapes = {tuple(np.shape(x)) if not isinstance(x, Tracer) else x.shape for x in xs}
    if len(shapes) != 1:
        raise errors.user_error(errors.ShapeError, "all input arrays must have the same shape, "
                                "got " + ", ".join(type_str(x) for x in xs))
    nd = len(shapes.pop()) + 1
    (a,) = static_axes((axis,), nd, "stack")
    return concatenate([expand_dims(x, a) for x in xs], axis=a, out=out, dtype=dtype,
                       casting=casting)


@implements(np.vstack)
def vstack(arrays, **kw):
    """numpy.vstack."""
    xs = [np.asarray(x) if is_python_scalar(x) else x for x in map(as_operand, arrays)]
    xs = [reshape(x, (1, -1)) if np.ndim(x) < 2 and not isinstance(x, Tracer) or
          isinstance(x, Tracer) and x.ndim < 2 else x for x in xs]
    return concatenate(xs, axis=0, **kw)


@implements(np.hstack)
def hstack(arrays, **kw):
    """numpy.hstack."""
    xs = [np.asarray(x) if is_python_scalar(x) else x for x in map(as_operand, arrays)]
    xs = [reshape(x, (1,)) if ops.type_of(x).ndim == 0 else x for x in xs]
    return concatenate(xs, axis=0 if ops.type_of(xs[0]).ndim == 1 else 1, **kw)


@implements(np.flip)
def flip(x, axis=None):
    """numpy.flip: a slice with negative steps."""
    x = as_operand(x)
    t = ops.type_of(x)
    axes = static_axes(axis, t.ndim, "flip")
    starts = [n - 1 if i in axes and n else 0 for i, n in enumerate(t.shape)]
    steps = [-1 if i in axes else 1 for i in range(t.ndim)]
    return ops.slice(x, starts, steps, t.shape)


# ---------------------------------------------------------------------------------------------
# selection


@implements(np.where)
def where(condition, x=None, y=None):
    """numpy.where(condition, x, y); the one-argument form is refused."""
    if x is None or y is None:
        raise errors.user_error(
            errors.UnsupportedError, "numpy.where(condition) with one argument returns indices "
            "whose number depends on the data, which cannot be traced; use the three-argument "
            "form np.where(condition, x, y)")
    c, x, y = (as_operand(v) for v in (condition, x, y))
    target = result_dtype(x, y)
    c, x, y = broadcast_all([truth(convert(c, ops.dtype_of(c)) if not is_python_scalar(c)
                                   else np.bool_(c)),
                             convert(x, target), convert(y, target)])
    return ops.select(c, x, y)


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
        if isinstance(k, list) and any(isinstance(v, Tracer) for v in leaves(k)):
            k = as_operand(k)       # x[[i, 0]] with a traced i: a traced index array
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


@implements_method(np.ndarray.__getitem__)
def getitem(x, key):
    """NumPy indexing: basic (ints, slices, None, ...) and advanced (integer arrays)."""
    x = as_traced(x)                    # np.take(numpy_array, traced_index) gets here
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


@implements(np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    """numpy.take, with its three modes."""
    if out is not None:
        raise unsupported("numpy.take", "out")
    if mode not in ("raise", "wrap", "clip"):
        raise errors.user_error(ValueError, f"numpy.take: mode must be 'raise', 'wrap' or "
                                f"'clip', got {mode!r}")
    a = as_operand(a)
    if axis is None:
        a, ax = ravel(a), 0
    else:
        (ax,) = static_axes((axis,), ops.type_of(a).ndim, "take")
    if mode != "raise":
        indices = as_operand(indices)
        if is_int(ops.dtype_of(indices)):
            n = ops.type_of(a).shape[ax]
            if mode == "wrap":        # Python's modulo: -1 is the last index
                indices = ops.mod(indices, n) if isinstance(indices, Tracer) else \
                    np.mod(indices, max(n, 1))
            else:
                indices = ops.min(ops.max(indices, 0), n - 1) if isinstance(indices, Tracer) \
                    else np.clip(indices, 0, n - 1)
    return getitem(a, (slice(None),) * ax + (indices,))


@implements(np.take_along_axis)
def take_along_axis(arr, indices, axis):
    """out[..., i, ...] = arr[..., indices[..., i, ...], ...] along `axis`."""
    t = ops.type_of(arr)
    (ax,) = static_axes((axis,), t.ndim, "take_along_axis")
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
# constructors that take an array, and its shape


def _like(fill, name="numpy.full_like"):
    def fn(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
        check_order(name, order)
        check_device(name, device)
        t = ops.type_of(as_operand(a))
        dt = check_dtype(dtype) if dtype is not None else t.dtype
        shape = t.shape if shape is None else static_ints(shape, "shape")
        return ops.full(Type(shape, dt), fill)
    return fn


@implements(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    """numpy.full_like; a traced fill value is broadcast."""
    if isinstance(fill_value, Tracer):
        check_order("numpy.full_like", order)
        check_device("numpy.full_like", device)
        t = ops.type_of(a)
        dt = check_dtype(dtype) if dtype is not None else t.dtype
        return ops.broadcast_to(ops.cast(fill_value, dt), t.shape if shape is None else shape)
    return _like(fill_value)(a, dtype, order, subok, shape)


@implements(np.copy)
def _copy(a, order="K", subok=False):
    check_order("copy", order)
    return as_operand(a)


implements(np.zeros_like)(_like(0, "numpy.zeros_like"))
implements(np.ones_like)(_like(1, "numpy.ones_like"))
implements(np.empty_like)(_like(0, "numpy.empty_like"))


@implements(np.shape)
def _shape(a):
    return ops.type_of(a).shape


@implements(np.ndim)
def _ndim(a):
    return ops.type_of(a).ndim


@implements(np.size)
def _size(a, axis=None):
    if axis is None:
        return ops.type_of(a).size
    t = ops.type_of(a)
    return math.prod(t.shape[i] for i in static_axes(axis, t.ndim, "size"))
