"""Strict typed operations: one thin function per primitive, plus a few compositions.

These are what VJP rules and the NumPy layer are written with. Unlike NumPy they do not
promote: tensor operands must already share a dtype. A Python number operand takes the dtype
of the other operand (it is a literal). Shapes of elementwise operands must be equal or rank 0.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import primitives as P
from .ir import DTYPES, Literal, Type, dtype_name, is_python_scalar
from .tracer import Tracer, bind


def type_of(x: Any) -> Type:
    """The IR type of a tracer, literal, NumPy array or scalar."""
    if isinstance(x, Tracer):
        return x.type
    if isinstance(x, Literal):
        return x.type
    arr = np.asarray(x)
    return Type(arr.shape, dtype_name(arr.dtype))


def dtype_of(x: Any) -> str:
    return type_of(x).dtype


def is_literal(x: Any) -> bool:
    """True for an operand known at trace time (not a Tracer)."""
    return not isinstance(x, Tracer)


def scalar(value: Any, dtype: str) -> np.generic:
    """A NumPy scalar of `dtype` (an IR literal)."""
    return np.asarray(value, dtype=DTYPES[dtype])[()]


def _operands(*xs):
    """Give Python numbers the dtype of the first operand that has one."""
    dtype = next((dtype_of(x) for x in xs if not is_python_scalar(x)), None)
    if dtype is None:
        dtype = dtype_name(np.result_type(*xs))
    return [scalar(x, dtype) if is_python_scalar(x) else x for x in xs]


def _unary(prim):
    def op(x):
        return bind(prim, x)
    op.__name__ = prim.name
    op.__doc__ = f"Elementwise {prim.name}."
    return op


def _binary(prim):
    def op(x, y):
        return bind(prim, *_operands(x, y))
    op.__name__ = prim.name
    op.__doc__ = f"Elementwise {prim.name} (no promotion; Python numbers become literals)."
    return op


neg, abs, sign, exp, expm1, log, log1p, sqrt, sin, cos, tanh, atan, floor, ceil, logical_not = (
    _unary(p) for p in (P.neg, P.abs_, P.sign, P.exp, P.expm1, P.log, P.log1p, P.sqrt, P.sin,
                        P.cos, P.tanh, P.atan, P.floor, P.ceil, P.not_))
add, sub, mul, div, floordiv, mod, pow, max, min, and_, or_, xor = (
    _binary(p) for p in (P.add, P.sub, P.mul, P.div, P.floordiv, P.mod, P.pow_, P.max_, P.min_,
                         P.and_, P.or_, P.xor))
eq, ne, lt, le, gt, ge = (_binary(p) for p in (P.eq, P.ne, P.lt, P.le, P.gt, P.ge))


def select(pred, x, y):
    """Elementwise `x if pred else y`."""
    x, y = _operands(x, y)
    return bind(P.select, pred, x, y)


def cast(x, dtype: str):
    """Convert to `dtype` (NumPy's astype); a no-op when the dtype already matches."""
    if dtype_of(x) == dtype:
        return x
    if is_literal(x):        # known now: cast it now (a NumPy scalar stays a scalar)
        arr = np.asarray(x).astype(DTYPES[dtype])
        return arr[()] if arr.ndim == 0 else arr
    return bind(P.cast, x, dtype=dtype)


def full(type_: Type, value) -> Any:
    """An array of `type_` filled with `value` (a broadcast literal; a bare literal for ())."""
    lit = scalar(value, type_.dtype)
    if type_.shape == ():
        return lit
    return bind(P.broadcast_in_dim, lit, shape=type_.shape, dims=())


def zeros(type_: Type) -> Any:
    return full(type_, 0)


def broadcast_in_dim(x, shape, dims):
    """Place axis i of x at output axis dims[i] of `shape`; size-1 axes stretch."""
    shape, dims = tuple(int(s) for s in shape), tuple(int(d) for d in dims)
    if tuple(type_of(x).shape) == shape and dims == tuple(range(len(shape))):
        return x
    return bind(P.broadcast_in_dim, x, shape=shape, dims=dims)


def broadcast_to(x, shape):
    """NumPy-style broadcast of x to `shape` (trailing axes aligned)."""
    shape = tuple(shape)
    nd = type_of(x).ndim
    return broadcast_in_dim(x, shape, tuple(range(len(shape) - nd, len(shape))))


def reshape(x, shape):
    shape = tuple(int(s) for s in shape)
    if type_of(x).shape == shape:
        return x
    return bind(P.reshape, x, shape=shape)


def transpose(x, perm):
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))):
        return x
    return bind(P.transpose, x, perm=perm)


def slice(x, starts, steps, shape):
    starts, steps, shape = (tuple(int(v) for v in t) for t in (starts, steps, shape))
    if type_of(x).shape == shape and all(s == 0 for s in starts) and all(s == 1 for s in steps):
        return x
    return bind(P.slice_, x, starts=starts, steps=steps, shape=shape)


def pad(x, value, starts, steps, shape):
    starts, steps, shape = (tuple(int(v) for v in t) for t in (starts, steps, shape))
    return bind(P.pad, x, value, starts=starts, steps=steps, shape=shape)


def concatenate(xs: Sequence[Any], axis: int):
    if len(xs) == 1:
        return xs[0]
    return bind(P.concatenate, *xs, axis=int(axis))


def gather(x, idx: Sequence[Any]):
    return bind(P.gather, x, *idx)


def scatter_add(x, idx: Sequence[Any], updates):
    return bind(P.scatter_add, x, *idx, updates)


def _reduce(prim):
    def op(x, axes):
        axes = tuple(sorted(int(a) for a in axes))
        if not axes:
            return x
        return bind(prim, x, axes=axes)
    op.__name__ = prim.name
    op.__doc__ = f"{prim.name} over `axes` (removed from the shape)."
    return op


reduce_sum, reduce_max, reduce_min, reduce_prod = (
    _reduce(p) for p in (P.reduce_sum, P.reduce_max, P.reduce_min, P.reduce_prod))


def argmax(x, axis: int):
    return bind(P.argmax, x, axis=int(axis))


def argmin(x, axis: int):
    return bind(P.argmin, x, axis=int(axis))


def dot(lhs, rhs, contract, batch=((), ())):
    """General contraction; output axes: batch, lhs free, rhs free."""
    norm = lambda pair: tuple(tuple(int(a) for a in axes) for axes in pair)  # noqa: E731
    return bind(P.dot, lhs, rhs, contract=norm(contract), batch=norm(batch))


def iota(shape, dimension: int, dtype: str):
    return bind(P.iota, shape=tuple(int(s) for s in shape), dimension=int(dimension), dtype=dtype)
