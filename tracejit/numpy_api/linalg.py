"""Linear algebra on tracers: the products dot, matmul (also `@`), inner, outer and tensordot,
all lowered to the `dot` primitive (einsum, lowered to it too, has its own module: .einsum).

This is the module for linear algebra: the implementations of `np.linalg.*` functions belong
here too, registered with `@implements(np.linalg.<name>)` like the products (none is supported
yet: np.linalg.norm(t) is an UnsupportedError that names it).
"""

from __future__ import annotations

import numpy as np

from .. import errors, ops
from ..tracer import Tracer
from ._common import as_operand, convert, implements, static_axes, strong, unsupported
from .shapes import ravel, reshape
from .ufuncs import apply_ufunc, resolve, result_dtype


def _promote_pair(a, b, ufunc=np.matmul, dtype=None, casting="same_kind"):
    """a and b in the dtypes of `ufunc`'s loop (np.matmul's), or where `ufunc` is None in
    their result type (np.dot's, which differs for bfloat16: ml_dtypes' matmul gives f32)."""
    a, b = strong(as_operand(a)), strong(as_operand(b))
    if ufunc is None:
        da = db = result_dtype(a, b)
    else:
        (da, db), _, weak = resolve(ufunc, [a, b], dtype, casting)
    a, b = convert(a, da), convert(b, db)
    if ops.dtype_of(a) == "bool":
        raise errors.user_error(errors.UnsupportedError, "matrix products of booleans are not "
                                "supported")
    return [v if isinstance(v, Tracer) or np.ndim(v) == 0 else np.asarray(v) for v in (a, b)]


@implements(np.matmul)
def matmul(a, b, dtype=None, casting="same_kind"):
    """numpy.matmul (and `@`), with its dtype= and casting=."""
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


@implements(np.dot)
def dot(a, b, out=None):
    """numpy.dot."""
    if out is not None:
        raise errors.user_error(errors.UnsupportedError, "dot with out= is not supported")
    a, b = _promote_pair(a, b, ufunc=None)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if ta.ndim == 0 or tb.ndim == 0:
        return apply_ufunc(np.multiply, a, b)
    kb = 0 if tb.ndim == 1 else tb.ndim - 2
    if ta.shape[-1] != tb.shape[kb]:
        raise errors.user_error(errors.ShapeError, f"dot: shapes {ta} and {tb} not aligned: "
                                f"{ta.shape[-1]} (dim {ta.ndim - 1}) != {tb.shape[kb]} (dim {kb})")
    return ops.dot(a, b, ((ta.ndim - 1,), (kb,)))


@implements(np.vdot)
def vdot(a, b, /):
    """numpy.vdot of real arrays: the dot of the flattened operands."""
    a, b = _promote_pair(a, b, ufunc=None)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if ta.size != tb.size:
        raise errors.user_error(ValueError, f"numpy.vdot: vectors have different lengths "
                                f"({ta.size} and {tb.size})")
    return dot(ravel(a), ravel(b))


@implements(np.outer)
def outer(a, b, out=None):
    """numpy.outer."""
    if out is not None:
        raise unsupported("numpy.outer", "out")
    a, b = strong(as_operand(a)), strong(as_operand(b))
    return apply_ufunc(np.multiply, reshape(ravel(a), (-1, 1)), reshape(ravel(b), (1, -1)))


@implements(np.inner)
def inner(a, b):
    """numpy.inner."""
    a, b = _promote_pair(a, b, ufunc=None)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if ta.ndim == 0 or tb.ndim == 0:
        return apply_ufunc(np.multiply, a, b)
    return tensordot(a, b, ((ta.ndim - 1,), (tb.ndim - 1,)))


@implements(np.tensordot)
def tensordot(a, b, axes=2):
    """numpy.tensordot."""
    a, b = _promote_pair(a, b, ufunc=None)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = tuple(range(ta.ndim - axes, ta.ndim)), tuple(range(axes))
    else:
        ax_a, ax_b = (static_axes(tuple(v) if isinstance(v, (tuple, list)) else (v,), t.ndim,
                                  "tensordot") for v, t in zip(axes, (ta, tb)))
    if len(ax_a) != len(ax_b) or any(ta.shape[i] != tb.shape[j] for i, j in zip(ax_a, ax_b)):
        raise errors.user_error(errors.ShapeError, f"tensordot: shape mismatch for sum over "
                                f"{ax_a} of {ta} and {ax_b} of {tb}")
    return ops.dot(a, b, (ax_a, ax_b))
