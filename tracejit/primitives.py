"""The primitives of the IR, each defined once: type rule, NumPy implementation, VJP.

A primitive is the unit every stage agrees on. Its *type rule* computes the output Type from
the input Types and params (and rejects ill-typed uses); its *impl* computes the result with
NumPy and is the reference every backend is tested against; its *vjp* returns the cotangent
of each input given the output's cotangent `g`, written with the ops of `tracejit.ops`, so a
gradient is itself IR: traceable, fusable and differentiable again. Backends add their own
lowering tables keyed by primitive name.

Elementwise primitives take operands of one dtype whose shapes are equal, except that a rank-0
operand broadcasts (the tracer inserts `broadcast_in_dim` for every other broadcast). VJP rules
receive the primal inputs (tracers, or NumPy scalars for literals) and the output `out`; they
return one cotangent per input, or None where the input gets no gradient.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from .ir import Type, is_float, is_int

#: Every primitive by name.
REGISTRY: dict[str, "Primitive"] = {}


class Category:
    """What a primitive is to the stages after tracing (fusion, simplification, lowering).

    The categories are the module constants below, compared by identity
    (`prim.category is ELEMENTWISE`): a misspelt category is a NameError, not a silent
    mismatch."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc

    def __repr__(self) -> str:
        return f"<category {self.name}>"


ELEMENTWISE = Category("elementwise", "out[i] from the operands at i (rank-0 operands "
                       "broadcast); every backend lowers it as one scalar expression")
REDUCTION = Category("reduction", "combines its operand over some axes")
VIEW = Category("view", "an index map of its one operand (broadcast_in_dim, transpose, slice, "
                "reshape): fusion turns it into the loads that read it, never a copy")
STRUCTURAL = Category("structural", "moves elements without arithmetic (pad, concatenate)")
INDEXING = Category("indexing", "integer-array indexing (gather, scatter_add)")
SOURCE = Category("source", "no array operands: iota, constant")
CONTRACTION = Category("contraction", "a tensor contraction (dot)")


class Primitive:
    """A named operation of the IR. See the module docstring for the three rules.

    `category` says how the later stages treat it; `own_kernel` that fusion gives every
    equation of it a kernel of its own, lowered by the backend's table of such kernels."""

    def __init__(self, name: str, type_rule: Callable[..., Type], impl: Callable[..., Any],
                 vjp: Callable[..., Iterable[Any]] | None = None, *, category: Category,
                 flops: int = 0, own_kernel: bool = False, commutative: bool = False):
        self.name = name
        self.type_rule = type_rule
        self.impl = impl
        self.vjp = vjp
        self.category = category
        self.own_kernel = own_kernel
        self.commutative = commutative   # f(x, y) == f(y, x) bit for bit, for every x and y
        self.flops = flops    # floating point operations per output element (elementwise)
        if name in REGISTRY:
            raise ValueError(f"a primitive named {name} exists already")
        REGISTRY[name] = self

    def format_params(self, params) -> list[tuple[str, Any]]:
        """The params as printed (`value` of a constant is summarised by the printer)."""
        return [(k, v) for k, v in params.items()]

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def of_category(category: Category) -> list[Primitive]:
    """The registered primitives of `category`, in order of definition."""
    return [p for p in REGISTRY.values() if p.category is category]


def _ops():
    from . import ops  # the VJP rules are written with ops; ops binds primitives
    return ops


# ---------------------------------------------------------------------------------------------
# type rule helpers


def _elementwise_shape(name: str, types: tuple[Type, ...]) -> tuple[int, ...]:
    shapes = {t.shape for t in types if t.shape != ()}
    if len(shapes) > 1:
        raise TypeError(f"{name}: operand shapes {' and '.join(map(str, types))} differ")
    return shapes.pop() if shapes else ()


def _same_dtype(name: str, types: tuple[Type, ...]) -> str:
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        raise TypeError(f"{name}: operand dtypes {' and '.join(map(str, types))} differ")
    return dtypes.pop()


_ALLOWED = {
    "float": lambda d: is_float(d),
    "num": lambda d: is_float(d) or is_int(d),
    "int": lambda d: is_int(d),
    "logic": lambda d: d == "bool" or is_int(d),
    "any": lambda d: True,
}


def _check_dtype(name: str, dtype: str, allowed: str):
    if not _ALLOWED[allowed](dtype):
        raise TypeError(f"{name} is not defined for dtype {dtype}")


def _sum_to(g, t: Type):
    """Undo the implicit rank-0 broadcast of an elementwise operand."""
    if g is None or t.shape == tuple(g.shape):
        return g
    return _ops().reduce_sum(g, tuple(range(len(g.shape))))


# A VJP is linear in its cotangent, so a zero cotangent (the unused branch of a select, an
# output nobody reads) must give zero even where the partial derivative it multiplies is
# infinite or undefined: IEEE's 0 * inf and 0 / 0 are NaN, which would poison every gradient
# that flows past such a branch (np.where(x > 0, np.sqrt(x), 0) at 0, grad(grad(x ** 0.0))).
# `_times` and `_over` are the products that rules with such partials use. Where the partial
# is finite they are the plain product, so they differentiate again exactly; where they give 0
# the product they replace is computed but unused, and its own VJP gets a zero cotangent,
# which these same rules turn into zeros: the guard holds at every order.


def _is_nonzero_literal(g) -> bool:
    return _ops().is_literal(g) and bool(np.all(np.asarray(g) != 0))


def _zero_where_unused(g, r):
    """r, a product or quotient of the cotangent g, with 0 where g == 0 and r is NaN: exactly
    where g is 0 and the partial is infinite or NaN (0 * ±inf, 0 * NaN, 0 / 0, 0 / NaN)."""
    ops = _ops()
    return ops.select(ops.and_(ops.eq(g, 0.0), ops.ne(r, r)), 0.0, r)


def _times(g, p):
    """g * p, and 0 where g == 0 and the partial p is infinite or NaN."""
    ops = _ops()
    if _is_nonzero_literal(g) or (ops.is_literal(p) and bool(np.all(np.isfinite(p)))):
        return ops.mul(g, p)
    return _zero_where_unused(g, ops.mul(g, p))


def _over(g, d):
    """g / d, and 0 where g == 0 and d is 0 or NaN (the partial 1/d is infinite or NaN)."""
    ops = _ops()
    if _is_nonzero_literal(g) or (ops.is_literal(d) and bool(np.all(np.abs(d) > 0))):
        return ops.div(g, d)
    return _zero_where_unused(g, ops.div(g, d))


# ---------------------------------------------------------------------------------------------
# elementwise unary


def unary(name: str, impl, vjp=None, allowed: str = "float", flops: int = 1,
          out_dtype: str | None = None) -> Primitive:
    def rule(x: Type) -> Type:
        _check_dtype(name, x.dtype, allowed)
        return Type(x.shape, out_dtype or x.dtype)

    return Primitive(name, rule, impl, vjp, category=ELEMENTWISE, flops=flops)


def _vjp_sqrt(g, x, out):
    return [_over(g, _ops().mul(out, 2.0))]


neg = unary("neg", np.negative, lambda g, x, out: [_ops().neg(g)], allowed="num")
# |x|' = sign(x): 0 at 0, the mean of the slopes of the tie between x and -x.
abs_ = unary("abs", np.absolute, lambda g, x, out: [_ops().mul(g, _ops().sign(x))],
             allowed="num")
sign = unary("sign", np.sign, lambda g, x, out: [None], allowed="num")
# exp and expm1 overflow to inf where their derivative is finite but huge; sin and cos have a
# NaN derivative at ±inf.
exp = unary("exp", np.exp, lambda g, x, out: [_times(g, out)], flops=10)
# d expm1 = exp(x) = expm1(x) + 1
expm1 = unary("expm1", np.expm1, lambda g, x, out: [_times(g, _ops().add(out, 1.0))],
              flops=10)
log = unary("log", np.log, lambda g, x, out: [_over(g, x)], flops=10)
log1p = unary("log1p", np.log1p, lambda g, x, out: [_over(g, _ops().add(x, 1.0))],
              flops=10)
sqrt = unary("sqrt", np.sqrt, _vjp_sqrt, flops=4)
sin = unary("sin", np.sin, lambda g, x, out: [_times(g, _ops().cos(x))], flops=10)
cos = unary("cos", np.cos, lambda g, x, out: [_ops().neg(_times(g, _ops().sin(x)))],
            flops=10)
# d tanh = 1 - tanh^2
tanh = unary("tanh", np.tanh,
             lambda g, x, out: [_ops().mul(g, _ops().sub(1.0, _ops().mul(out, out)))], flops=10)
# d atan = 1 / (1 + x^2): finite everywhere (0 at ±inf, where the second derivative's
# 0 * inf is guarded by mul's rule).
atan = unary("atan", np.arctan,
             lambda g, x, out: [_ops().div(g, _ops().add(_ops().mul(x, x), 1.0))], flops=10)
floor = unary("floor", np.floor, lambda g, x, out: [None])
ceil = unary("ceil", np.ceil, lambda g, x, out: [None])
not_ = unary("not", np.invert, lambda g, x, out: [None], allowed="logic")


def _cast_rule(x: Type, dtype: str) -> Type:
    return Type(x.shape, dtype)


def _cast_impl(x, dtype):
    from .ir import DTYPES
    return np.asarray(x).astype(DTYPES[dtype])


def _cast_vjp(g, x, out, dtype):
    # Only float -> float casts carry a gradient; to or from int/bool the function is
    # piecewise constant (or not differentiable in the integer input).
    if is_float(dtype) and is_float(_ops().dtype_of(x)):
        return [_ops().cast(g, _ops().dtype_of(x))]
    return [None]


cast = Primitive("cast", _cast_rule, _cast_impl, _cast_vjp, category=ELEMENTWISE)


# ---------------------------------------------------------------------------------------------
# elementwise binary


def binary(name: str, impl, vjp=None, allowed: str = "num", flops: int = 1,
           out_dtype: str | None = None, commutative: bool = False) -> Primitive:
    def rule(x: Type, y: Type) -> Type:
        dtype = _same_dtype(name, (x, y))
        _check_dtype(name, dtype, allowed)
        return Type(_elementwise_shape(name, (x, y)), out_dtype or dtype)

    return Primitive(name, rule, impl, vjp, category=ELEMENTWISE, flops=flops,
                     commutative=commutative)


def _types(*xs):
    return [_ops().type_of(x) for x in xs]


def _vjp_add(g, x, y, out):
    tx, ty = _types(x, y)
    return [_sum_to(g, tx), _sum_to(g, ty)]


def _vjp_sub(g, x, y, out):
    tx, ty = _types(x, y)
    return [_sum_to(g, tx), _sum_to(_ops().neg(g), ty)]


def _vjp_mul(g, x, y, out):
    tx, ty = _types(x, y)
    return [_sum_to(_times(g, y), tx), _sum_to(_times(g, x), ty)]


def _vjp_div(g, x, y, out):
    # d(x/y) = dx/y - x dy / y^2 = dx/y - out dy / y
    ops = _ops()
    tx, ty = _types(x, y)
    gx = _over(g, y)
    return [_sum_to(gx, tx), _sum_to(ops.neg(_times(gx, out)), ty)]


def _vjp_pow(g, x, y, out):
    # d(x^y)/dx = y x^(y-1) (0 where y == 0); d(x^y)/dy = log(x) x^y (0 where x == 0)
    ops = _ops()
    tx, ty = _types(x, y)
    if not is_float(tx.dtype):
        return [None, None]
    dx = ops.select(ops.eq(y, 0.0), 0.0, ops.mul(y, ops.pow(x, ops.sub(y, 1.0))))
    dy = ops.select(ops.eq(x, 0.0), 0.0, ops.mul(out, ops.log(ops.select(ops.eq(x, 0.0), 1.0, x))))
    return [_sum_to(_times(g, dx), tx), _sum_to(_times(g, dy), ty)]


def _chooser_vjp(g, x, y, out):
    # Ties share the gradient equally (as in JAX): all of it to the chosen operand, half each
    # where x == y. An operand not chosen gets exactly 0, by select rather than by a product
    # with 0, so that an infinite cotangent (sqrt(max(x, 0)) at x < 0) does not make it NaN.
    ops = _ops()
    tx, ty = _types(x, y)
    x_in, y_in = ops.eq(x, out), ops.eq(y, out)
    share = ops.select(ops.and_(x_in, y_in), ops.mul(g, 0.5), g)
    return [_sum_to(ops.select(x_in, share, 0.0), tx), _sum_to(ops.select(y_in, share, 0.0), ty)]


def _vjp_mod(g, x, y, out):
    # x mod y = x - floor(x / y) y
    ops = _ops()
    tx, ty = _types(x, y)
    if not is_float(tx.dtype):
        return [None, None]
    return [_sum_to(g, tx), _sum_to(ops.neg(_times(g, ops.floor(ops.div(x, y)))), ty)]


add = binary("add", np.add, _vjp_add, commutative=True)
sub = binary("sub", np.subtract, _vjp_sub)
mul = binary("mul", np.multiply, _vjp_mul, commutative=True)
div = binary("div", np.true_divide, _vjp_div, allowed="float")
floordiv = binary("floordiv", np.floor_divide, lambda g, x, y, out: [None, None])
mod = binary("mod", np.remainder, _vjp_mod)
pow_ = binary("pow", np.power, _vjp_pow, flops=20)
# max and min are not commutative: on equal operands of different sign (±0.0) the result
# depends on the order (np.maximum(0.0, -0.0) is -0.0, np.maximum(-0.0, 0.0) is 0.0).
max_ = binary("max", np.maximum, _chooser_vjp)
min_ = binary("min", np.minimum, _chooser_vjp)
and_ = binary("and", np.bitwise_and, lambda g, x, y, out: [None, None], allowed="logic",
              commutative=True)
or_ = binary("or", np.bitwise_or, lambda g, x, y, out: [None, None], allowed="logic",
             commutative=True)
xor = binary("xor", np.bitwise_xor, lambda g, x, y, out: [None, None], allowed="logic",
             commutative=True)

_no_grad2 = lambda g, x, y, out: [None, None]  # noqa: E731
eq = binary("eq", np.equal, _no_grad2, allowed="any", out_dtype="bool", commutative=True)
ne = binary("ne", np.not_equal, _no_grad2, allowed="any", out_dtype="bool",
            commutative=True)
lt = binary("lt", np.less, _no_grad2, allowed="any", out_dtype="bool")
le = binary("le", np.less_equal, _no_grad2, allowed="any", out_dtype="bool")
gt = binary("gt", np.greater, _no_grad2, allowed="any", out_dtype="bool")
ge = binary("ge", np.greater_equal, _no_grad2, allowed="any", out_dtype="bool")


def _select_rule(pred: Type, x: Type, y: Type) -> Type:
    if pred.dtype != "bool":
        raise TypeError(f"select: predicate must be bool, got {pred}")
    return Type(_elementwise_shape("select", (pred, x, y)), _same_dtype("select", (x, y)))


def _select_vjp(g, pred, x, y, out):
    ops = _ops()
    tx, ty = _types(x, y)
    zero = ops.zeros(Type((), ops.dtype_of(g)))
    return [None, _sum_to(ops.select(pred, g, zero), tx), _sum_to(ops.select(pred, zero, g), ty)]


select = Primitive("select", _select_rule, lambda p, x, y: np.where(p, x, y), _select_vjp,
                   category=ELEMENTWISE)


# ---------------------------------------------------------------------------------------------
# sources


def _iota_rule(shape, dimension, dtype):
    return Type(tuple(shape), dtype)


def _iota_impl(shape, dimension, dtype):
    from .ir import DTYPES
    idx = np.arange(shape[dimension], dtype=DTYPES[dtype])
    view = [1] * len(shape)
    view[dimension] = shape[dimension]
    return np.broadcast_to(idx.reshape(view), shape).copy()


#: iota(shape, dimension, dtype)[i0, ..., in] = i_dimension
iota = Primitive("iota", _iota_rule, _iota_impl, None, category=SOURCE)


class _Constant(Primitive):
    def format_params(self, params):
        return [("value", params["value"])]


def _constant_rule(value):
    from .ir import dtype_name
    return Type(tuple(value.shape), dtype_name(value.dtype))


#: constant(value=ndarray): an array known at trace time (a captured NumPy array).
constant = _Constant("constant", _constant_rule, lambda value: value, None, category=SOURCE)


# ---------------------------------------------------------------------------------------------
# structural


def _bid_rule(x: Type, shape, dims) -> Type:
    shape, dims = tuple(shape), tuple(dims)
    if len(dims) != x.ndim or len(set(dims)) != len(dims) or list(dims) != sorted(dims):
        raise TypeError(f"broadcast_in_dim: dims {dims} do not fit {x}")
    for i, d in enumerate(dims):
        if not 0 <= d < len(shape) or x.shape[i] not in (1, shape[d]):
            raise TypeError(f"broadcast_in_dim: cannot broadcast {x} to {shape} along {dims}")
    return Type(shape, x.dtype)


def _bid_impl(x, shape, dims):
    view = [1] * len(shape)
    for i, d in enumerate(dims):
        view[d] = np.shape(x)[i]
    return np.broadcast_to(np.reshape(x, view), shape)


def _bid_vjp(g, x, out, shape, dims):
    # Sum over the new axes and over the axes that were stretched from size 1.
    ops = _ops()
    tx = ops.type_of(x)
    summed = tuple(d for d in range(len(shape)) if d not in dims)
    stretched = tuple(d for i, d in enumerate(dims) if tx.shape[i] == 1 and shape[d] != 1)
    axes = tuple(sorted(summed + stretched))
    r = ops.reduce_sum(g, axes) if axes else g
    return [ops.reshape(r, tx.shape)]


#: broadcast_in_dim(x, shape, dims): operand axis i becomes output axis dims[i].
broadcast_in_dim = Primitive("broadcast_in_dim", _bid_rule, _bid_impl, _bid_vjp,
                             category=VIEW)


def _reshape_rule(x: Type, shape) -> Type:
    shape = tuple(shape)
    if math.prod(shape) != x.size:
        raise TypeError(f"reshape: cannot reshape {x} to {shape}")
    return Type(shape, x.dtype)


reshape = Primitive("reshape", _reshape_rule, lambda x, shape: np.reshape(x, shape),
                    lambda g, x, out, shape: [_ops().reshape(g, _ops().type_of(x).shape)],
                    category=VIEW)


def _transpose_rule(x: Type, perm) -> Type:
    if sorted(perm) != list(range(x.ndim)):
        raise TypeError(f"transpose: {perm} is not a permutation of the axes of {x}")
    return Type(tuple(x.shape[p] for p in perm), x.dtype)


def _transpose_vjp(g, x, out, perm):
    return [_ops().transpose(g, tuple(int(i) for i in np.argsort(perm)))]


transpose = Primitive("transpose", _transpose_rule, lambda x, perm: np.transpose(x, perm),
                      _transpose_vjp, category=VIEW)


def _strided_positions_ok(in_shape, starts, steps, out_shape) -> bool:
    for n, s, st, m in zip(in_shape, starts, steps, out_shape):
        if st == 0:
            return False
        if m > 0 and not (0 <= s < n and 0 <= s + (m - 1) * st < n):
            return False
    return True


def _slice_rule(x: Type, starts, steps, shape) -> Type:
    if not (len(starts) == len(steps) == len(shape) == x.ndim) or not _strided_positions_ok(
            x.shape, starts, steps, shape):
        raise TypeError(f"slice: starts {starts} steps {steps} shape {shape} do not fit {x}")
    return Type(tuple(shape), x.dtype)


def _slice_index(starts, steps, shape):
    # A Python slice per axis that selects start + i*step for i in range(n).
    out = []
    for s, st, n in zip(starts, steps, shape):
        stop = s + n * st
        out.append(slice(s, stop if stop >= 0 else None, st))
    return tuple(out)


def _slice_impl(x, starts, steps, shape):
    return np.asarray(x)[_slice_index(starts, steps, shape)]


def _slice_vjp(g, x, out, starts, steps, shape):
    ops = _ops()
    tx = ops.type_of(x)
    return [ops.pad(g, ops.zeros(Type((), tx.dtype)), starts, steps, tx.shape)]


#: slice(x, starts, steps, shape)[i] = x[starts + i * steps]; steps may be negative.
slice_ = Primitive("slice", _slice_rule, _slice_impl, _slice_vjp, category=VIEW)


def _pad_rule(x: Type, value: Type, starts, steps, shape) -> Type:
    if value.shape != () or value.dtype != x.dtype:
        raise TypeError(f"pad: the padding value must be a scalar of dtype {x.dtype}")
    if not _strided_positions_ok(shape, starts, steps, x.shape):
        raise TypeError(f"pad: {x} does not fit into {tuple(shape)} at {starts} step {steps}")
    return Type(tuple(shape), x.dtype)


def _pad_impl(x, value, starts, steps, shape):
    out = np.full(shape, value, dtype=np.asarray(x).dtype)
    out[_slice_index(starts, steps, np.shape(x))] = x
    return out


def _pad_vjp(g, x, value, out, starts, steps, shape):
    ops = _ops()
    tx = ops.type_of(x)
    gx = ops.slice(g, starts, steps, tx.shape)
    gv = None
    if not ops.is_literal(value):
        # The sum of g over the padding (not sum(g) - sum(gx): inf - inf where x's part of g
        # is infinite).
        filled = ops.pad(ops.zeros(tx), ops.scalar(1.0, tx.dtype), starts, steps, shape)
        gv = ops.reduce_sum(ops.select(ops.eq(filled, 1.0), g, 0.0), tuple(range(len(shape))))
    return [gx, gv]


#: pad(x, value, starts, steps, shape): an array of `shape` filled with `value`, except that
#: out[starts + i * steps] = x[i]. The transpose of slice.
pad = Primitive("pad", _pad_rule, _pad_impl, _pad_vjp, category=STRUCTURAL,
                own_kernel=True)


def _concat_rule(*xs: Type, axis) -> Type:
    dtype = _same_dtype("concatenate", xs)
    first = xs[0]
    for t in xs:
        if t.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape))
                                       if i != axis):
            raise TypeError(f"concatenate: {' and '.join(map(str, xs))} differ off axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in xs)
    return Type(tuple(shape), dtype)


def _concat_vjp(g, *xs, out, axis):
    ops = _ops()
    result, offset = [], 0
    for x in xs:
        t = ops.type_of(x)
        starts = [0] * t.ndim
        starts[axis] = offset
        result.append(ops.slice(g, tuple(starts), (1,) * t.ndim, t.shape))
        offset += t.shape[axis]
    return result


concatenate = Primitive("concatenate", _concat_rule,
                        lambda *xs, axis: np.concatenate(xs, axis=axis), _concat_vjp,
                        category=STRUCTURAL, own_kernel=True)


# ---------------------------------------------------------------------------------------------
# gather / scatter-add (integer-array indexing)


def _index_shape(name, x: Type, idx: tuple[Type, ...]) -> tuple[int, ...]:
    if not idx or len(idx) > x.ndim:
        raise TypeError(f"{name}: {len(idx)} index arrays for {x}")
    if any(not is_int(t.dtype) for t in idx) or len({t.shape for t in idx}) != 1:
        raise TypeError(f"{name}: index arrays must be integers of one shape, got "
                        f"{', '.join(map(str, idx))}")
    return idx[0].shape + x.shape[len(idx):]


def _gather_rule(x: Type, *idx: Type) -> Type:
    return Type(_index_shape("gather", x, idx), x.dtype)


def _check_bounds(x_shape, idx):
    for axis, i in enumerate(idx):
        n = x_shape[axis]
        i = np.asarray(i)
        if i.size and (i.min() < -n or i.max() >= n):
            bad = i[(i < -n) | (i >= n)].flat[0]
            raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {n}")


def _gather_impl(x, *idx):
    _check_bounds(np.shape(x), idx)
    return np.asarray(x)[tuple(idx)]


def _gather_vjp(g, x, *idx, out):
    ops = _ops()
    return [ops.scatter_add(ops.zeros(ops.type_of(x)), idx, g)] + [None] * len(idx)


#: gather(x, i0, ..., ik)[s, rest] = x[i0[s], ..., ik[s], rest]: NumPy's x[i0, ..., ik] with
#: index arrays of one shape over the leading axes. Negative indices count from the end;
#: out-of-bounds indices are an error.
gather = Primitive("gather", _gather_rule, _gather_impl, _gather_vjp, category=INDEXING,
                   own_kernel=True)


def _scatter_rule(x: Type, *rest: Type) -> Type:
    *idx, updates = rest
    expected = _index_shape("scatter_add", x, tuple(idx))
    if updates.shape != expected or updates.dtype != x.dtype:
        raise TypeError(f"scatter_add: updates {updates} do not fit {x} indexed by "
                        f"{', '.join(map(str, idx))}")
    return x


def _scatter_impl(x, *rest):
    *idx, updates = rest
    _check_bounds(np.shape(x), idx)
    out = np.array(x, copy=True)
    np.add.at(out, tuple(idx), updates)
    return out


def _scatter_vjp(g, x, *rest, out):
    *idx, updates = rest
    return [g] + [None] * len(idx) + [_ops().gather(g, idx)]


#: scatter_add(x, i0, ..., ik, updates): a copy of x with out[i0[s], ..., ik[s]] += updates[s]
#: (repeated indices accumulate). The transpose of gather.
scatter_add = Primitive("scatter_add", _scatter_rule, _scatter_impl, _scatter_vjp,
                        category=INDEXING, own_kernel=True)


# ---------------------------------------------------------------------------------------------
# reductions


def _reduce_rule(name, allowed):
    def rule(x: Type, axes) -> Type:
        _check_dtype(name, x.dtype, allowed)
        if len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
            raise TypeError(f"{name}: bad axes {axes} for {x}")
        return Type(tuple(n for i, n in enumerate(x.shape) if i not in axes), x.dtype)
    return rule


def _kept_dims(ndim, axes):
    return tuple(i for i in range(ndim) if i not in axes)


def _expand(g, x, axes):
    """Broadcast a reduction's result (or cotangent) back to the operand's shape."""
    ops = _ops()
    tx = ops.type_of(x)
    return ops.broadcast_in_dim(g, tx.shape, _kept_dims(tx.ndim, axes))


def _reduce_sum_vjp(g, x, out, axes):
    return [_expand(g, x, axes)]


def _reduce_chooser_vjp(g, x, out, axes):
    # The gradient goes to the positions that attain the extremum, shared equally among ties;
    # the others get exactly 0 (by select: an infinite cotangent times 0 would be NaN).
    ops = _ops()
    hit = ops.eq(x, _expand(out, x, axes))
    count = ops.reduce_sum(ops.cast(hit, ops.dtype_of(x)), axes)
    return [ops.select(hit, _expand(ops.div(g, count), x, axes), 0.0)]


def _reduce_prod_vjp(g, x, out, axes):
    # d prod / d x_i = prod_{j != i} x_j, computed without dividing by a zero or an infinity.
    # The entries that are 0, ±inf or NaN are "special"; P is the product of the others and Q
    # of the special ones (IEEE's product: 0, ±inf or NaN). An ordinary entry's partial is
    # P / x_i * Q. A special entry's is P when it is the only one, 0 when the other special
    # entries are all zeros (written as the other zero for two, so that the second derivative
    # there is right too), and NaN when another is infinite or NaN (the product of the others
    # is then infinite or undefined).
    ops = _ops()
    dtype = ops.dtype_of(x)
    zero = ops.eq(x, 0.0)
    nonfinite = ops.logical_not(ops.lt(ops.abs(x), np.inf))
    special = ops.or_(zero, nonfinite)

    def total(v):
        return _expand(ops.reduce_sum(v, axes), x, axes)

    safe = ops.select(special, 1.0, x)
    p = _expand(ops.reduce_prod(safe, axes), x, axes)
    q = _expand(ops.reduce_prod(ops.select(special, x, 1.0), axes), x, axes)
    count = total(ops.cast(special, dtype))
    others_nonfinite = ops.sub(total(ops.cast(nonfinite, dtype)), ops.cast(nonfinite, dtype))
    zeros = total(ops.select(zero, x, 0.0))              # 0, the sum of the zero entries
    other_zero = ops.select(zero, ops.sub(zeros, x), zeros)
    others = ops.select(ops.eq(count, 1.0), 1.0, ops.select(
        ops.gt(others_nonfinite, 0.0), np.nan, ops.select(ops.eq(count, 2.0), other_zero, 0.0)))
    partial = ops.select(special, ops.mul(p, others), ops.mul(ops.div(p, safe), q))
    return [_times(_expand(g, x, axes), partial)]


def _reduce_impl(fn):
    def impl(x, axes):
        return np.asarray(fn(x, axis=tuple(axes)))
    return impl


reduce_sum = Primitive("reduce_sum", _reduce_rule("reduce_sum", "num"), _reduce_impl(np.sum),
                       _reduce_sum_vjp, category=REDUCTION, flops=1)
reduce_max = Primitive("reduce_max", _reduce_rule("reduce_max", "any"), _reduce_impl(np.max),
                       _reduce_chooser_vjp, category=REDUCTION, flops=1)
reduce_min = Primitive("reduce_min", _reduce_rule("reduce_min", "any"), _reduce_impl(np.min),
                       _reduce_chooser_vjp, category=REDUCTION, flops=1)
reduce_prod = Primitive("reduce_prod", _reduce_rule("reduce_prod", "num"),
                        _reduce_impl(np.prod), _reduce_prod_vjp, category=REDUCTION, flops=1)


def _arg_rule(name):
    def rule(x: Type, axis) -> Type:
        if not 0 <= axis < x.ndim or x.shape[axis] == 0:
            raise TypeError(f"{name}: axis {axis} of {x} is missing or empty")
        return Type(tuple(n for i, n in enumerate(x.shape) if i != axis), "i64")
    return rule


argmax = Primitive("argmax", _arg_rule("argmax"),
                   lambda x, axis: np.asarray(np.argmax(x, axis=axis)).astype(np.int64),
                   lambda g, x, out, axis: [None], category=REDUCTION,
                   own_kernel=True)
argmin = Primitive("argmin", _arg_rule("argmin"),
                   lambda x, axis: np.asarray(np.argmin(x, axis=axis)).astype(np.int64),
                   lambda g, x, out, axis: [None], category=REDUCTION,
                   own_kernel=True)


# ---------------------------------------------------------------------------------------------
# dot


def _dot_dims(ndim, contract, batch):
    return tuple(i for i in range(ndim) if i not in contract and i not in batch)


def _dot_rule(lhs: Type, rhs: Type, contract, batch) -> Type:
    (lc, rc), (lb, rb) = contract, batch
    dtype = _same_dtype("dot", (lhs, rhs))
    _check_dtype("dot", dtype, "num")
    ok = (len(lc) == len(rc) and len(lb) == len(rb)
          and all(lhs.shape[a] == rhs.shape[b] for a, b in zip(lc, rc))
          and all(lhs.shape[a] == rhs.shape[b] for a, b in zip(lb, rb))
          and len(set(lc + lb)) == len(lc + lb) and len(set(rc + rb)) == len(rc + rb))
    if not ok:
        raise TypeError(f"dot: {lhs} and {rhs} do not fit contract={contract} batch={batch}")
    shape = (tuple(lhs.shape[i] for i in lb)
             + tuple(lhs.shape[i] for i in _dot_dims(lhs.ndim, lc, lb))
             + tuple(rhs.shape[i] for i in _dot_dims(rhs.ndim, rc, rb)))
    return Type(shape, dtype)


def _dot_impl(lhs, rhs, contract, batch):
    # As a batched matmul so NumPy calls BLAS: (B, M, K) @ (B, K, N).
    (lc, rc), (lb, rb) = contract, batch
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    lf, rf = _dot_dims(lhs.ndim, lc, lb), _dot_dims(rhs.ndim, rc, rb)
    size = lambda a, dims: math.prod(a.shape[i] for i in dims)  # noqa: E731
    a = np.transpose(lhs, lb + lf + lc).reshape(size(lhs, lb), size(lhs, lf), size(lhs, lc))
    b = np.transpose(rhs, rb + rc + rf).reshape(size(rhs, rb), size(rhs, rc), size(rhs, rf))
    out = np.matmul(a, b)
    shape = (tuple(lhs.shape[i] for i in lb) + tuple(lhs.shape[i] for i in lf)
             + tuple(rhs.shape[i] for i in rf))
    return out.reshape(shape)


def _dot_vjp(g, lhs, rhs, out, contract, batch):
    # out axes are [batch..., lhs free..., rhs free...]. Each input's cotangent is a dot of g
    # with the other input, contracting the other input's free axes, then transposed back.
    ops = _ops()
    (lc, rc), (lb, rb) = contract, batch
    tl, tr = _types(lhs, rhs)
    if not is_float(tl.dtype):
        return [None, None]
    lf, rf = _dot_dims(tl.ndim, lc, lb), _dot_dims(tr.ndim, rc, rb)
    nb = len(lb)
    g_batch = tuple(range(nb))
    g_lf = tuple(range(nb, nb + len(lf)))
    g_rf = tuple(range(nb + len(lf), nb + len(lf) + len(rf)))

    # d lhs = g . rhs over rhs's free axes -> [batch, lhs free, rhs contract (ascending)]
    gl = ops.dot(g, rhs, (g_rf, rf), (g_batch, rb))
    rc_sorted = sorted(rc)
    axes_l = list(lb) + list(lf) + [lc[rc.index(r)] for r in rc_sorted]
    gl = ops.transpose(gl, tuple(axes_l.index(i) for i in range(tl.ndim)))

    # d rhs = lhs . g over lhs's free axes -> [batch, lhs contract (ascending), rhs free]
    gr = ops.dot(lhs, g, (lf, g_lf), (lb, g_batch))
    lc_sorted = sorted(lc)
    axes_r = list(rb) + [rc[lc.index(a)] for a in lc_sorted] + list(rf)
    gr = ops.transpose(gr, tuple(axes_r.index(i) for i in range(tr.ndim)))
    return [gl, gr]


class _Dot(Primitive):
    def format_params(self, params):
        (lc, rc), (lb, rb) = params["contract"], params["batch"]
        out = [("contract", (lc, rc))]
        if lb or rb:
            out.append(("batch", (lb, rb)))
        return out


#: dot(lhs, rhs, contract=((lhs axes), (rhs axes)), batch=((lhs axes), (rhs axes))):
#: a general tensor contraction; output axes are batch, then lhs free, then rhs free.
dot = _Dot("dot", _dot_rule, _dot_impl, _dot_vjp, category=CONTRACTION)
