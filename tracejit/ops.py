"""Strict typed operations: one per primitive, plus a few compositions.

These are what VJP rules and the NumPy layer are written with. Unlike NumPy they do not
promote: tensor operands must already share a dtype. A Python number operand takes the dtype
of the other operand (it is a literal). Shapes of elementwise operands must be equal or rank 0.

The operation of a primitive is the primitive itself, called (`Primitive.__call__`, whose
calling convention `tracejit.primitives` gives each primitive): this module names them as
operations (`ops.max` is `primitives.max_`) and adds the compositions.
"""

from __future__ import annotations

from . import primitives as P
from .primitives import full, zeros
from .tracer import dtype_of, is_literal, scalar, type_of

__all__ = [
    "type_of", "dtype_of", "is_literal", "scalar", "full", "zeros", "broadcast_to",
    "neg", "abs", "sign", "exp", "expm1", "log", "log1p", "sqrt", "sin", "cos", "tanh", "atan",
    "asinh", "asin", "acos", "acosh", "atanh", "cbrt", "rint", "signbit", "floor", "ceil",
    "logical_not", "check", "optimization_barrier", "threefry2x32", "fmod", "copysign", "hypot",
    "atan2",
    "add", "sub", "mul", "div", "floordiv", "mod", "pow", "max", "min", "and_", "or_", "xor",
    "eq", "ne", "lt", "le", "gt", "ge", "select", "cast",
    "broadcast_in_dim", "reshape", "transpose", "slice", "pad", "concatenate", "gather",
    "scatter_add", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin",
    "cumsum", "cumprod", "sort", "argsort", "dot", "iota",
    "cholesky", "triangular_solve", "solve", "slogdet", "eigh", "svd", "qr",
]

# elementwise: op(x) and op(x, y); select(pred, x, y); cast(x, dtype)
neg, abs, sign, exp, expm1, log, log1p, sqrt, sin, cos, tanh, atan, asinh, floor, ceil = (
    P.neg, P.abs_, P.sign, P.exp, P.expm1, P.log, P.log1p, P.sqrt, P.sin, P.cos, P.tanh, P.atan,
    P.asinh, P.floor, P.ceil)
asin, acos, acosh, atanh, cbrt, rint, signbit = (
    P.asin, P.acos, P.acosh, P.atanh, P.cbrt, P.rint, P.signbit)
logical_not, check, optimization_barrier = P.not_, P.check, P.optimization_barrier
threefry2x32 = P.threefry2x32
fmod, copysign, hypot, atan2 = P.fmod, P.copysign, P.hypot, P.atan2
add, sub, mul, div, floordiv, mod, pow, max, min, and_, or_, xor = (
    P.add, P.sub, P.mul, P.div, P.floordiv, P.mod, P.pow_, P.max_, P.min_, P.and_, P.or_, P.xor)
eq, ne, lt, le, gt, ge = P.eq, P.ne, P.lt, P.le, P.gt, P.ge
select, cast = P.select, P.cast

# structure: broadcast_in_dim(x, shape, dims), reshape(x, shape), transpose(x, perm),
# slice(x, starts, steps, shape), pad(x, value, starts, steps, shape), concatenate(xs, axis),
# gather(x, idx), scatter_add(x, idx, updates)
broadcast_in_dim, reshape, transpose, slice, pad, concatenate, gather, scatter_add = (
    P.broadcast_in_dim, P.reshape, P.transpose, P.slice_, P.pad, P.concatenate, P.gather,
    P.scatter_add)

# reductions: reduce_*(x, axes), argmax(x, axis); dot(lhs, rhs, contract, batch=((), ()));
# iota(shape, dimension, dtype)
reduce_sum, reduce_max, reduce_min, reduce_prod = (
    P.reduce_sum, P.reduce_max, P.reduce_min, P.reduce_prod)
argmax, argmin, dot, iota = P.argmax, P.argmin, P.dot, P.iota

# along one axis: cumsum(x, axis), cumprod(x, axis), sort(x, axis), argsort(x, axis)
cumsum, cumprod, sort, argsort = P.cumsum, P.cumprod, P.sort, P.argsort

# linear algebra on stacks of matrices: cholesky(a), triangular_solve(a, b, lower, transpose),
# solve(a, b), slogdet(a) ([..., 0] the sign, [..., 1] log|det|), eigh(a) (row 0 the
# eigenvalues, rows 1.. the eigenvectors as columns), svd(a, full) (U, the singular values
# and Vᵀ packed in rows), qr(a) (Q's rows, then R's)
cholesky, triangular_solve, solve, slogdet, eigh, svd, qr = (
    P.cholesky, P.triangular_solve, P.solve, P.slogdet, P.eigh, P.svd, P.qr)


def broadcast_to(x, shape):
    """NumPy-style broadcast of x to `shape` (trailing axes aligned)."""
    shape = tuple(shape)
    nd = type_of(x).ndim
    return broadcast_in_dim(x, shape, tuple(range(len(shape) - nd, len(shape))))
