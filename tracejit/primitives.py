"""The primitives of the IR, each defined once: type rule, NumPy implementation, VJP.

A primitive is the unit every stage agrees on. Its *type rule* computes the output Type from
the input Types and params (and rejects ill-typed uses); its *impl* computes the result with
NumPy and is the reference every backend is tested against; its *vjp* returns the cotangent
of each input given the output's cotangent `g`, written with the strict typed operations, so a
gradient is itself IR: traceable, fusable and differentiable again. Backends add their own
lowering tables keyed by primitive (docs/architecture.md).

The typed operations are the primitives themselves, called (`Primitive.__call__`): `mul(g, 2.0)`
records a `mul` with the literal 2.0 of g's dtype, `reshape(g, shape)` a reshape unless g has
that shape already. `tracejit.ops` exports them under their operation names. The machinery
(Primitive, the categories, REGISTRY, bind and the `constant` primitive) lives in
`tracejit.tracer`, below this module; it is re-exported here.

Elementwise primitives take operands of one dtype whose shapes are equal, except that a rank-0
operand broadcasts (the tracer inserts `broadcast_in_dim` for every other broadcast). VJP rules
receive the primal inputs (tracers, or NumPy scalars for literals) and the output `out`; they
return one cotangent per input, or None where the input gets no gradient.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .errors import UnsupportedError
from .ir import DTYPES, Literal, Type, is_float, is_int
from .tracer import (ALONG_AXIS, CALL, CONTRACTION, ELEMENTWISE, INDEXING, LINALG, REDUCTION,
                     REGISTRY, SOURCE, STRUCTURAL, VIEW, Category, Primitive, as_operands, bind,
                     constant, dtype_of, is_literal, of_category, scalar, type_of)

__all__ = [
    # the core's (tracejit.tracer), which the rest of tracejit reaches through this module
    "Category", "ELEMENTWISE", "REDUCTION", "VIEW", "STRUCTURAL", "INDEXING", "SOURCE",
    "CONTRACTION", "ALONG_AXIS", "LINALG", "CALL", "Primitive", "REGISTRY", "of_category",
    "constant", "custom_vjp_call", "custom_jvp_call", "checkpoint",
    # the primitives defined here
    "neg", "abs_", "sign", "exp", "expm1", "log", "log1p", "sqrt", "sin", "cos", "tanh", "atan",
    "asinh", "asin", "acos", "acosh", "atanh", "cbrt", "rint", "signbit", "floor", "ceil",
    "not_", "check", "optimization_barrier", "cast", "add", "sub", "mul", "div", "floordiv",
    "mod", "pow_", "fmod", "copysign", "hypot", "atan2", "threefry2x32",
    "max_", "min_", "and_", "or_", "xor", "eq", "ne", "lt", "le", "gt", "ge", "select", "iota",
    "broadcast_in_dim", "reshape", "transpose", "slice_", "pad", "concatenate", "gather",
    "scatter_add", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin",
    "cumsum", "cumprod", "sort", "argsort", "dot", "cholesky", "triangular_solve", "solve",
    "slogdet", "eigh", "svd", "qr",
    # how they are made, and the compositions the VJP rules use
    "unary", "binary", "full", "zeros",
]


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
    return reduce_sum(g, tuple(range(len(g.shape))))


# A VJP is linear in its cotangent, so a zero cotangent (the unused branch of a select, an
# output nobody reads) must give zero even where the partial derivative it multiplies is
# infinite or undefined: IEEE's 0 * inf and 0 / 0 are NaN, which would poison every gradient
# that flows past such a branch (np.where(x > 0, np.sqrt(x), 0) at 0, grad(grad(x ** 0.0))).
# `_times` and `_over` are the products that rules with such partials use. Where the partial
# is finite they are the plain product, so they differentiate again exactly; where they give 0
# the product they replace is computed but unused, and its own VJP gets a zero cotangent,
# which these same rules turn into zeros: the guard holds at every order.


def _is_nonzero_literal(g) -> bool:
    return is_literal(g) and bool(np.all(np.asarray(g) != 0))


def _zero_where_unused(g, r):
    """r, a product or quotient of the cotangent g, with 0 where g == 0 and r is NaN: exactly
    where g is 0 and the partial is infinite or NaN (0 * ±inf, 0 * NaN, 0 / 0, 0 / NaN)."""
    return select(and_(eq(g, 0.0), ne(r, r)), 0.0, r)


def _times(g, p):
    """g * p, and 0 where g == 0 and the partial p is infinite or NaN."""
    if _is_nonzero_literal(g) or (is_literal(p) and bool(np.all(np.isfinite(p)))):
        return mul(g, p)
    return _zero_where_unused(g, mul(g, p))


def _over(g, d):
    """g / d, and 0 where g == 0 and d is 0 or NaN (the partial 1/d is infinite or NaN)."""
    if _is_nonzero_literal(g) or (is_literal(d) and bool(np.all(np.abs(d) > 0))):
        return div(g, d)
    return _zero_where_unused(g, div(g, d))


# ---------------------------------------------------------------------------------------------
# batching rules (vmap: tracejit.batching). A rule gets the operands, those that are batched
# with the batch axis in front, and returns the output with the batch axis in front; most
# move the axes their params name one place on, so that the batch axis rides along.


def _batched(x, size: int):
    """x, not batched, with a leading batch axis of `size` (a broadcast: a view)."""
    shape = type_of(x).shape
    return broadcast_in_dim(x, (size,) + shape, tuple(range(1, len(shape) + 1)))


def _all_batched(size: int, args, batched) -> list:
    return [x if b else _batched(x, size) for x, b in zip(args, batched)]


def _to_front(x, axis: int):
    """x with its axis `axis` moved to the front (a view)."""
    n = type_of(x).ndim
    return transpose(x, (axis,) + tuple(a for a in range(n) if a != axis))


def _shifted(axes) -> tuple:
    return tuple(a + 1 for a in axes)


def _batch_elementwise(prim, size, args, batched, **params):
    # The operands have one shape S or rank 0 (which broadcasts). A batched operand of rank 0
    # has the shape (size,), and broadcasts along the other axes; an unbatched one of shape S
    # along the batch axis.
    shapes = [type_of(x).shape[1:] if b else type_of(x).shape for x, b in zip(args, batched)]
    shape = next((s for s in shapes if s != ()), ())
    full = (size,) + shape
    out = []
    for x, b, s in zip(args, batched, shapes):
        if b:
            out.append(x if s == shape else broadcast_in_dim(x, full, (0,)))
        else:
            out.append(x if s == () else broadcast_in_dim(x, full, _shifted(range(len(s)))))
    return bind(prim, *out, **params)


def _batch_reduction(prim, size, args, batched, axes):
    return bind(prim, args[0], axes=_shifted(axes))


def _batch_one_axis(prim, size, args, batched, axis):
    return bind(prim, args[0], axis=axis + 1)


def _batch_linalg(prim, size, args, batched, **params):
    # The matrices are the last two axes and every operand has one batch shape: the batch
    # axis is one more batch axis.
    return bind(prim, *_all_batched(size, args, batched), **params)


# ---------------------------------------------------------------------------------------------
# tangent rules (forward mode: tracejit.forward). A linear primitive's tangent is the
# primitive applied to the tangents of its operands (zeros where one has none; integer and
# boolean operands, such as indices and predicates, as they are): derived here once, not
# written per primitive. The others' tangents are derived from their VJP rules.


def _tangent_operands(tangents, xs) -> list:
    return [t if t is not None else zeros(type_of(x)) if is_float(dtype_of(x)) else x
            for t, x in zip(tangents, xs)]


def _linear_jvp(prim, tangents, *xs, out, **params):
    return bind(prim, *_tangent_operands(tangents, xs), **params)


# ---------------------------------------------------------------------------------------------
# elementwise unary


def unary(name: str, impl, vjp=None, allowed: str = "float", flops: int = 1,
          out_dtype: str | None = None, jvp=None) -> Primitive:
    """An elementwise primitive of one operand of the `allowed` dtypes."""
    def rule(x: Type) -> Type:
        _check_dtype(name, x.dtype, allowed)
        return Type(x.shape, out_dtype or x.dtype)

    return Primitive(name, rule, impl, vjp, category=ELEMENTWISE, flops=flops,
                     batch=_batch_elementwise, jvp=jvp)


def _vjp_sqrt(g, x, out):
    return [_over(g, mul(out, 2.0))]


neg = unary("neg", np.negative, lambda g, x, out: [neg(g)], allowed="num", jvp=_linear_jvp)
# |x|' = sign(x): 0 at 0, the mean of the slopes of the tie between x and -x.
abs_ = unary("abs", np.absolute, lambda g, x, out: [mul(g, sign(x))],
             allowed="num")
sign = unary("sign", np.sign, lambda g, x, out: [None], allowed="num")
# exp and expm1 overflow to inf where their derivative is finite but huge; sin and cos have a
# NaN derivative at ±inf.
exp = unary("exp", np.exp, lambda g, x, out: [_times(g, out)], flops=10)
# d expm1 = exp(x) = expm1(x) + 1
expm1 = unary("expm1", np.expm1, lambda g, x, out: [_times(g, add(out, 1.0))],
              flops=10)
log = unary("log", np.log, lambda g, x, out: [_over(g, x)], flops=10)
log1p = unary("log1p", np.log1p, lambda g, x, out: [_over(g, add(x, 1.0))],
              flops=10)
sqrt = unary("sqrt", np.sqrt, _vjp_sqrt, flops=4)
sin = unary("sin", np.sin, lambda g, x, out: [_times(g, cos(x))], flops=10)
cos = unary("cos", np.cos, lambda g, x, out: [neg(_times(g, sin(x)))],
            flops=10)
# d tanh = 1 - tanh^2
tanh = unary("tanh", np.tanh,
             lambda g, x, out: [mul(g, sub(1.0, mul(out, out)))], flops=10)
# d atan = 1 / (1 + x^2): finite everywhere (0 at ±inf, where the second derivative's
# 0 * inf is guarded by mul's rule).
atan = unary("atan", np.arctan,
             lambda g, x, out: [div(g, add(mul(x, x), 1.0))], flops=10)
# d asinh = 1 / sqrt(x^2 + 1): finite everywhere, 0 at ±inf (x^2 overflows to inf first).
asinh = unary("asinh", np.arcsinh,
              lambda g, x, out: [_over(g, sqrt(add(mul(x, x), 1.0)))], flops=20)


def _one_minus_x2(x):
    """1 - x^2 as (1 - x)(1 + x): exact near |x| = 1, where 1 - x*x cancels."""
    return mul(sub(1.0, x), add(1.0, x))


# d asin = 1 / sqrt(1 - x^2), d acos = -1 / sqrt(1 - x^2): infinite at ±1.
asin = unary("asin", np.arcsin, lambda g, x, out: [_over(g, sqrt(_one_minus_x2(x)))],
             flops=20)
acos = unary("acos", np.arccos, lambda g, x, out: [neg(_over(g, sqrt(_one_minus_x2(x))))],
             flops=20)
# d acosh = 1 / sqrt(x^2 - 1) = 1 / (sqrt(x - 1) sqrt(x + 1)): no overflow of x^2.
acosh = unary("acosh", np.arccosh,
              lambda g, x, out: [_over(g, mul(sqrt(sub(x, 1.0)), sqrt(add(x, 1.0))))],
              flops=20)
# d atanh = 1 / (1 - x^2)
atanh = unary("atanh", np.arctanh, lambda g, x, out: [_over(g, _one_minus_x2(x))], flops=20)
# d cbrt = 1 / (3 cbrt(x)^2): infinite at 0.
cbrt = unary("cbrt", np.cbrt, lambda g, x, out: [_over(g, mul(mul(out, out), 3.0))],
             flops=20)
# rint rounds to the nearest integer, ties to even: piecewise constant.
rint = unary("rint", np.rint, lambda g, x, out: [None])
signbit = unary("signbit", np.signbit, lambda g, x, out: [None], out_dtype="bool")
floor = unary("floor", np.floor, lambda g, x, out: [None])
ceil = unary("ceil", np.ceil, lambda g, x, out: [None])
not_ = unary("not", np.invert, lambda g, x, out: [None], allowed="logic")

#: The errors `check` raises: name → (exception class, NumPy's message).
CHECK_ERRORS = {
    "all_nan_slice": (ValueError, "All-NaN slice encountered"),
    "lstsq_residuals": (np.linalg.LinAlgError,
                        "numpy.linalg.lstsq: the residuals of a rank-deficient matrix are an "
                        "empty array in NumPy (a shape that depends on the data), which a "
                        "compiled function cannot return; use the solution alone, "
                        "lstsq(a, b)[0]"),
}


def _check_rule(pred: Type, error) -> Type:
    if pred.dtype != "bool" or error not in CHECK_ERRORS:
        raise TypeError(f"check: a boolean operand and an error of {sorted(CHECK_ERRORS)}, "
                        f"got {pred} and {error!r}")
    return pred


def _check_impl(pred, error):
    if np.any(pred):
        cls, message = CHECK_ERRORS[error]
        raise cls(message)
    return np.asarray(pred)


def _check_call(prim, pred, error: str):
    """check(pred, error): pred itself, an error where it is true."""
    return bind(prim, pred, error=error)


#: check(pred, error): pred itself; where it is true the program raises CHECK_ERRORS[error]
#: (through the status words: codegen.status), as NumPy raises on a value it computes with.
check = Primitive("check", _check_rule, _check_impl, lambda g, pred, out, error: [None],
                  category=ELEMENTWISE, call=_check_call, batch=_batch_elementwise)


#: optimization_barrier(x): x itself, which no pass merges with or moves across: the values a
#: checkpointed function computes again in the backward pass start from it, so that common
#: subexpression elimination does not replace them by the forward pass's.
optimization_barrier = Primitive(
    "optimization_barrier", lambda x: x, lambda x: np.array(x, copy=True),
    lambda g, x, out: [g], category=ELEMENTWISE, batch=_batch_elementwise, jvp=_linear_jvp)


def _cast_rule(x: Type, dtype: str) -> Type:
    return Type(x.shape, dtype)


def _cast_impl(x, dtype):
    return np.asarray(x).astype(DTYPES[dtype])


def _cast_vjp(g, x, out, dtype):
    # Only float -> float casts carry a gradient; to or from int/bool the function is
    # piecewise constant (or not differentiable in the integer input).
    if is_float(dtype) and is_float(dtype_of(x)):
        return [cast(g, dtype_of(x))]
    return [None]


def _cast_call(prim, x, dtype: str):
    """cast(x, dtype): NumPy's astype; x itself when the dtype already matches, and a literal
    cast now."""
    if dtype_of(x) == dtype:
        return x
    if is_literal(x):        # known now: cast it now (a NumPy scalar stays a scalar)
        arr = np.asarray(x).astype(DTYPES[dtype])
        return arr[()] if arr.ndim == 0 else arr
    return bind(prim, x, dtype=dtype)


cast = Primitive("cast", _cast_rule, _cast_impl, _cast_vjp, category=ELEMENTWISE,
                 call=_cast_call, batch=_batch_elementwise, jvp=_linear_jvp)


# ---------------------------------------------------------------------------------------------
# elementwise binary


def binary(name: str, impl, vjp=None, allowed: str = "num", flops: int = 1,
           out_dtype: str | None = None, commutative: bool = False, jvp=None) -> Primitive:
    """An elementwise primitive of two operands of one of the `allowed` dtypes."""
    def rule(x: Type, y: Type) -> Type:
        dtype = _same_dtype(name, (x, y))
        _check_dtype(name, dtype, allowed)
        return Type(_elementwise_shape(name, (x, y)), out_dtype or dtype)

    return Primitive(name, rule, impl, vjp, category=ELEMENTWISE, flops=flops,
                     commutative=commutative, batch=_batch_elementwise, jvp=jvp)


def _types(*xs):
    return [type_of(x) for x in xs]


def _vjp_add(g, x, y, out):
    tx, ty = _types(x, y)
    return [_sum_to(g, tx), _sum_to(g, ty)]


def _vjp_sub(g, x, y, out):
    tx, ty = _types(x, y)
    return [_sum_to(g, tx), _sum_to(neg(g), ty)]


def _vjp_mul(g, x, y, out):
    tx, ty = _types(x, y)
    return [_sum_to(_times(g, y), tx), _sum_to(_times(g, x), ty)]


def _vjp_div(g, x, y, out):
    # d(x/y) = dx/y - x dy / y^2 = dx/y - out dy / y
    tx, ty = _types(x, y)
    gx = _over(g, y)
    return [_sum_to(gx, tx), _sum_to(neg(_times(gx, out)), ty)]


def _vjp_pow(g, x, y, out):
    # d(x^y)/dx = y x^(y-1) (0 where y == 0); d(x^y)/dy = log(x) x^y (0 where x == 0)
    tx, ty = _types(x, y)
    if not is_float(tx.dtype):
        return [None, None]
    dx = select(eq(y, 0.0), 0.0, mul(y, pow_(x, sub(y, 1.0))))
    dy = select(eq(x, 0.0), 0.0, mul(out, log(select(eq(x, 0.0), 1.0, x))))
    return [_sum_to(_times(g, dx), tx), _sum_to(_times(g, dy), ty)]


def _chooser_vjp(g, x, y, out):
    # Ties share the gradient equally (as in JAX): all of it to the chosen operand, half each
    # where x == y. An operand not chosen gets exactly 0, by select rather than by a product
    # with 0, so that an infinite cotangent (sqrt(max(x, 0)) at x < 0) does not make it NaN.
    tx, ty = _types(x, y)
    x_in, y_in = eq(x, out), eq(y, out)
    share = select(and_(x_in, y_in), mul(g, 0.5), g)
    return [_sum_to(select(x_in, share, 0.0), tx), _sum_to(select(y_in, share, 0.0), ty)]


def _vjp_mod(g, x, y, out):
    # x mod y = x - floor(x / y) y
    tx, ty = _types(x, y)
    if not is_float(tx.dtype):
        return [None, None]
    return [_sum_to(g, tx), _sum_to(neg(_times(g, floor(div(x, y)))), ty)]


def _vjp_fmod(g, x, y, out):
    # fmod(x, y) = x - trunc(x / y) y
    tx, ty = _types(x, y)
    if not is_float(tx.dtype):
        return [None, None]
    q = div(x, y)
    trunc = select(lt(q, 0.0), ceil(q), floor(q))
    return [_sum_to(g, tx), _sum_to(neg(_times(g, trunc)), ty)]


def _vjp_copysign(g, x, y, out):
    # copysign(x, y) = |x| s(y), with s(y) = ±1 by y's sign bit: d/dx = sign(x) s(y) (0 at
    # x = 0, as |x|'), d/dy = 0.
    tx, _ = _types(x, y)
    return [_sum_to(mul(g, mul(sign(x), copysign(1.0, y))), tx), None]


def _vjp_hypot(g, x, y, out):
    # d hypot = (x, y) / hypot: 0 at the origin (as |x|' at 0).
    tx, ty = _types(x, y)
    zero = eq(out, 0.0)
    return [_sum_to(_times(g, select(zero, 0.0, div(x, out))), tx),
            _sum_to(_times(g, select(zero, 0.0, div(y, out))), ty)]


def _vjp_atan2(g, y, x, out):
    # d atan2(y, x) = (x dy - y dx) / (x^2 + y^2), with x^2 + y^2 = h^2, h = hypot(x, y)
    # (no overflow or underflow of the squares): 0 at the origin.
    ty, tx = _types(y, x)
    h = hypot(x, y)
    zero = eq(h, 0.0)
    return [_sum_to(_times(g, select(zero, 0.0, div(div(x, h), h))), ty),
            _sum_to(_times(g, select(zero, 0.0, neg(div(div(y, h), h)))), tx)]


add = binary("add", np.add, _vjp_add, commutative=True, jvp=_linear_jvp)
sub = binary("sub", np.subtract, _vjp_sub, jvp=_linear_jvp)
mul = binary("mul", np.multiply, _vjp_mul, commutative=True)
div = binary("div", np.true_divide, _vjp_div, allowed="float")
floordiv = binary("floordiv", np.floor_divide, lambda g, x, y, out: [None, None])
mod = binary("mod", np.remainder, _vjp_mod)
pow_ = binary("pow", np.power, _vjp_pow, flops=20)
#: C's fmod: the remainder with the sign of x (NumPy's np.fmod); integer division by 0 gives 0.
fmod = binary("fmod", np.fmod, _vjp_fmod)
copysign = binary("copysign", np.copysign, _vjp_copysign, allowed="float")
hypot = binary("hypot", np.hypot, _vjp_hypot, allowed="float", flops=20, commutative=True)
#: atan2(y, x): the angle of the point (x, y), in [-pi, pi].
atan2 = binary("atan2", np.arctan2, _vjp_atan2, allowed="float", flops=20)
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
    tx, ty = _types(x, y)
    zero = zeros(Type((), dtype_of(g)))
    return [None, _sum_to(select(pred, g, zero), tx), _sum_to(select(pred, zero, g), ty)]


def _select_call(prim, pred, x, y):
    """select(pred, x, y): elementwise `x if pred else y`; Python numbers among x and y become
    literals of their dtype."""
    x, y = as_operands(x, y)
    return bind(prim, pred, x, y)


select = Primitive("select", _select_rule, lambda p, x, y: np.where(p, x, y), _select_vjp,
                   category=ELEMENTWISE, call=_select_call, batch=_batch_elementwise,
                   jvp=_linear_jvp)


# ---------------------------------------------------------------------------------------------
# random bits

#: Threefry-2x32's rotation distances, in two alternating groups of four rounds.
THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
#: Threefry's key schedule parity constant (the key's third word is k0 ^ k1 ^ this).
THREEFRY_PARITY = 0x1BD11BDA


def _threefry_rule(k0: Type, k1: Type, x0: Type, x1: Type, word) -> Type:
    types = (k0, k1, x0, x1)
    if any(t.dtype != "u32" for t in types) or word not in (0, 1, 2):
        raise TypeError(f"threefry2x32: uint32 operands and word 0, 1 or 2, got "
                        f"{', '.join(map(str, types))} and word {word!r}")
    return Type(_elementwise_shape("threefry2x32", types), "u32")


def threefry2x32_words(k0, k1, x0, x1):
    """Both output words of Threefry-2x32 (20 rounds; Salmon et al. 2011) of the key
    (k0, k1) and the counter (x0, x1), in NumPy's uint32 arithmetic (wrapping)."""
    k0, k1, x0, x1 = (np.asarray(a, np.uint32) for a in (k0, k1, x0, x1))
    keys = (k0, k1, k0 ^ k1 ^ np.uint32(THREEFRY_PARITY))
    with np.errstate(over="ignore"):
        x0, x1 = x0 + keys[0], x1 + keys[1]
        for i in range(5):
            for r in THREEFRY_ROTATIONS[i % 2]:
                x0 = x0 + x1
                x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
                x1 = x1 ^ x0
            # the key injection after every four rounds
            x0 = x0 + keys[(i + 1) % 3]
            x1 = x1 + keys[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _threefry_impl(k0, k1, x0, x1, word):
    y0, y1 = threefry2x32_words(k0, k1, x0, x1)
    return np.asarray((y0, y1, y0 ^ y1)[word])


#: threefry2x32(k0, k1, x0, x1, word): Threefry-2x32 of the key (k0, k1) and the counter
#: (x0, x1), elementwise on uint32: its first output word (word=0), its second (1), or the two
#: xored (2: 32 random bits from one evaluation). tracejit.random's bits.
threefry2x32 = Primitive("threefry2x32", _threefry_rule, _threefry_impl,
                         lambda g, k0, k1, x0, x1, out, word: [None] * 4,
                         category=ELEMENTWISE, flops=100, batch=_batch_elementwise)


# ---------------------------------------------------------------------------------------------
# sources


def _iota_rule(shape, dimension, dtype):
    return Type(tuple(shape), dtype)


def _iota_impl(shape, dimension, dtype):
    idx = np.arange(shape[dimension], dtype=DTYPES[dtype])
    view = [1] * len(shape)
    view[dimension] = shape[dimension]
    return np.broadcast_to(idx.reshape(view), shape).copy()


def _iota_call(prim, shape, dimension: int, dtype: str):
    """iota(shape, dimension, dtype)."""
    return bind(prim, shape=tuple(int(s) for s in shape), dimension=int(dimension), dtype=dtype)


#: iota(shape, dimension, dtype)[i0, ..., in] = i_dimension
iota = Primitive("iota", _iota_rule, _iota_impl, None, category=SOURCE, call=_iota_call)

# constant, the other source, is defined with the tracer, which binds it.


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
    tx = type_of(x)
    summed = tuple(d for d in range(len(shape)) if d not in dims)
    stretched = tuple(d for i, d in enumerate(dims) if tx.shape[i] == 1 and shape[d] != 1)
    axes = tuple(sorted(summed + stretched))
    r = reduce_sum(g, axes) if axes else g
    return [reshape(r, tx.shape)]


def _bid_call(prim, x, shape, dims):
    """broadcast_in_dim(x, shape, dims): place axis i of x at output axis dims[i] of `shape`;
    size-1 axes stretch. x itself when that changes nothing."""
    shape, dims = tuple(int(s) for s in shape), tuple(int(d) for d in dims)
    if tuple(type_of(x).shape) == shape and dims == tuple(range(len(shape))):
        return x
    return bind(prim, x, shape=shape, dims=dims)


def _bid_batch(prim, size, args, batched, shape, dims):
    return bind(prim, args[0], shape=(size,) + tuple(shape), dims=(0,) + _shifted(dims))


#: broadcast_in_dim(x, shape, dims): operand axis i becomes output axis dims[i].
broadcast_in_dim = Primitive("broadcast_in_dim", _bid_rule, _bid_impl, _bid_vjp,
                             category=VIEW, call=_bid_call, batch=_bid_batch,
                             jvp=_linear_jvp)


def full(type_: Type, value) -> Any:
    """An array of `type_` filled with `value` (a broadcast literal; a bare literal for ())."""
    lit = scalar(value, type_.dtype)
    if type_.shape == ():
        return lit
    return bind(broadcast_in_dim, lit, shape=type_.shape, dims=())


def zeros(type_: Type) -> Any:
    """An array of `type_` filled with zeros (see `full`)."""
    return full(type_, 0)


def _reshape_rule(x: Type, shape) -> Type:
    shape = tuple(shape)
    if math.prod(shape) != x.size:
        raise TypeError(f"reshape: cannot reshape {x} to {shape}")
    return Type(shape, x.dtype)


def _reshape_call(prim, x, shape):
    """reshape(x, shape); x itself when it has the shape already."""
    shape = tuple(int(s) for s in shape)
    if type_of(x).shape == shape:
        return x
    return bind(prim, x, shape=shape)


reshape = Primitive("reshape", _reshape_rule, lambda x, shape: np.reshape(x, shape),
                    lambda g, x, out, shape: [reshape(g, type_of(x).shape)],
                    category=VIEW, call=_reshape_call, jvp=_linear_jvp,
                    batch=lambda prim, size, args, batched, shape:
                    bind(prim, args[0], shape=(size,) + tuple(shape)))


def _transpose_rule(x: Type, perm) -> Type:
    if sorted(perm) != list(range(x.ndim)):
        raise TypeError(f"transpose: {perm} is not a permutation of the axes of {x}")
    return Type(tuple(x.shape[p] for p in perm), x.dtype)


def _transpose_vjp(g, x, out, perm):
    return [transpose(g, tuple(int(i) for i in np.argsort(perm)))]


def _transpose_call(prim, x, perm):
    """transpose(x, perm): output axis i is axis perm[i] of x; x itself for the identity."""
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))):
        return x
    return bind(prim, x, perm=perm)


transpose = Primitive("transpose", _transpose_rule, lambda x, perm: np.transpose(x, perm),
                      _transpose_vjp, category=VIEW, call=_transpose_call, jvp=_linear_jvp,
                      batch=lambda prim, size, args, batched, perm:
                      bind(prim, args[0], perm=(0,) + _shifted(perm)))


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
    tx = type_of(x)
    return [pad(g, zeros(Type((), tx.dtype)), starts, steps, tx.shape)]


def _slice_call(prim, x, starts, steps, shape):
    """slice(x, starts, steps, shape); x itself when that is all of x."""
    starts, steps, shape = (tuple(int(v) for v in t) for t in (starts, steps, shape))
    if type_of(x).shape == shape and all(s == 0 for s in starts) and all(s == 1 for s in steps):
        return x
    return bind(prim, x, starts=starts, steps=steps, shape=shape)


def _slice_batch(prim, size, args, batched, starts, steps, shape):
    return bind(prim, args[0], starts=(0,) + tuple(starts), steps=(1,) + tuple(steps),
                shape=(size,) + tuple(shape))


#: slice(x, starts, steps, shape)[i] = x[starts + i * steps]; steps may be negative.
slice_ = Primitive("slice", _slice_rule, _slice_impl, _slice_vjp, category=VIEW,
                   call=_slice_call, batch=_slice_batch, jvp=_linear_jvp)


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
    tx = type_of(x)
    gx = slice_(g, starts, steps, tx.shape)
    gv = None
    if not is_literal(value):
        # The sum of g over the padding (not sum(g) - sum(gx): inf - inf where x's part of g
        # is infinite).
        filled = pad(zeros(tx), scalar(1.0, tx.dtype), starts, steps, shape)
        gv = reduce_sum(select(eq(filled, 1.0), g, 0.0), tuple(range(len(shape))))
    return [gx, gv]


def _pad_call(prim, x, value, starts, steps, shape):
    """pad(x, value, starts, steps, shape): the params as tuples of ints."""
    starts, steps, shape = (tuple(int(v) for v in t) for t in (starts, steps, shape))
    return bind(prim, x, value, starts=starts, steps=steps, shape=shape)


#: pad(x, value, starts, steps, shape): an array of `shape` filled with `value`, except that
#: out[starts + i * steps] = x[i]. The transpose of slice.
def _pad_batch(prim, size, args, batched, starts, steps, shape):
    x = args[0] if batched[0] else _batched(args[0], size)
    value = args[1]
    where = dict(starts=(0,) + tuple(starts), steps=(1,) + tuple(steps),
                 shape=(size,) + tuple(shape))
    if not batched[1]:
        return bind(prim, x, value, **where)
    # A padding value per example: pad with zeros, then put each example's value where the
    # padding is (a mask made by the same pad).
    t = type_of(x)
    padded = bind(prim, x, scalar(0, t.dtype), **where)
    inside = eq(bind(prim, full(t, 1), scalar(0, t.dtype), **where), scalar(1, t.dtype))
    return select(inside, padded, broadcast_in_dim(value, where["shape"], (0,)))


pad = Primitive("pad", _pad_rule, _pad_impl, _pad_vjp, category=STRUCTURAL,
                own_kernel=True, call=_pad_call, batch=_pad_batch, jvp=_linear_jvp)


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
    result, offset = [], 0
    for x in xs:
        t = type_of(x)
        starts = [0] * t.ndim
        starts[axis] = offset
        result.append(slice_(g, tuple(starts), (1,) * t.ndim, t.shape))
        offset += t.shape[axis]
    return result


def _concat_call(prim, xs: Sequence[Any], axis: int):
    """concatenate(xs, axis); the one operand itself when there is one."""
    if len(xs) == 1:
        return xs[0]
    return bind(prim, *xs, axis=int(axis))


concatenate = Primitive("concatenate", _concat_rule,
                        lambda *xs, axis: np.concatenate(xs, axis=axis), _concat_vjp,
                        category=STRUCTURAL, own_kernel=True, call=_concat_call,
                        jvp=_linear_jvp, batch=lambda prim, size, args, batched, axis:
                        bind(prim, *_all_batched(size, args, batched), axis=axis + 1))


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
    return [scatter_add(zeros(type_of(x)), idx, g)] + [None] * len(idx)


def _gather_call(prim, x, idx: Sequence[Any]):
    """gather(x, idx): the index arrays as one sequence."""
    return bind(prim, x, *idx)


#: gather(x, i0, ..., ik)[s, rest] = x[i0[s], ..., ik[s], rest]: NumPy's x[i0, ..., ik] with
#: index arrays of one shape over the leading axes. Negative indices count from the end;
#: out-of-bounds indices are an error.
def _gather_batch(prim, size, args, batched):
    # Every index array gets the batch axis; a batched x is indexed along it by one more
    # index array, the example's number.
    x, *idx = args
    idx = _all_batched(size, idx, batched[1:])
    if batched[0]:
        idx = [iota(type_of(idx[0]).shape, 0, "i64")] + idx
    return bind(prim, x, *idx)


gather = Primitive("gather", _gather_rule, _gather_impl, _gather_vjp, category=INDEXING,
                   own_kernel=True, call=_gather_call, batch=_gather_batch,
                   jvp=_linear_jvp)


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
    return [g] + [None] * len(idx) + [gather(g, idx)]


def _scatter_call(prim, x, idx: Sequence[Any], updates):
    """scatter_add(x, idx, updates): the index arrays as one sequence."""
    return bind(prim, x, *idx, updates)


#: scatter_add(x, i0, ..., ik, updates): a copy of x with out[i0[s], ..., ik[s]] += updates[s]
#: (repeated indices accumulate). The transpose of gather.
def _scatter_batch(prim, size, args, batched):
    # As gather's: every operand batched, and the example's number as the first index.
    x, *idx, updates = _all_batched(size, args, batched)
    return bind(prim, x, iota(type_of(idx[0]).shape, 0, "i64"), *idx, updates)


scatter_add = Primitive("scatter_add", _scatter_rule, _scatter_impl, _scatter_vjp,
                        category=INDEXING, own_kernel=True, call=_scatter_call,
                        batch=_scatter_batch, jvp=_linear_jvp)


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
    tx = type_of(x)
    return broadcast_in_dim(g, tx.shape, _kept_dims(tx.ndim, axes))


def _reduce_sum_vjp(g, x, out, axes):
    return [_expand(g, x, axes)]


def _reduce_chooser_vjp(g, x, out, axes):
    # The gradient goes to the positions that attain the extremum, shared equally among ties;
    # the others get exactly 0 (by select: an infinite cotangent times 0 would be NaN).
    hit = eq(x, _expand(out, x, axes))
    count = reduce_sum(cast(hit, dtype_of(x)), axes)
    return [select(hit, _expand(div(g, count), x, axes), 0.0)]


def _reduce_prod_vjp(g, x, out, axes):
    # d prod / d x_i = prod_{j != i} x_j, computed without dividing by a zero or an infinity.
    # The entries that are 0, ±inf or NaN are "special"; P is the product of the others and Q
    # of the special ones (IEEE's product: 0, ±inf or NaN). An ordinary entry's partial is
    # P / x_i * Q. A special entry's is P when it is the only one, 0 when the other special
    # entries are all zeros (written as the other zero for two, so that the second derivative
    # there is right too), and NaN when another is infinite or NaN (the product of the others
    # is then infinite or undefined).
    dtype = dtype_of(x)
    zero = eq(x, 0.0)
    nonfinite = not_(lt(abs_(x), np.inf))
    special = or_(zero, nonfinite)

    def total(v):
        return _expand(reduce_sum(v, axes), x, axes)

    safe = select(special, 1.0, x)
    p = _expand(reduce_prod(safe, axes), x, axes)
    q = _expand(reduce_prod(select(special, x, 1.0), axes), x, axes)
    count = total(cast(special, dtype))
    others_nonfinite = sub(total(cast(nonfinite, dtype)), cast(nonfinite, dtype))
    zeros = total(select(zero, x, 0.0))              # 0, the sum of the zero entries
    other_zero = select(zero, sub(zeros, x), zeros)
    others = select(eq(count, 1.0), 1.0, select(
        gt(others_nonfinite, 0.0), np.nan, select(eq(count, 2.0), other_zero, 0.0)))
    partial = select(special, mul(p, others), mul(div(p, safe), q))
    return [_times(_expand(g, x, axes), partial)]


def _reduce_impl(fn):
    def impl(x, axes):
        return np.asarray(fn(x, axis=tuple(axes)))
    return impl


def _reduce_call(prim, x, axes):
    """reduce_*(x, axes): over `axes` (removed from the shape); x itself over no axes."""
    axes = tuple(sorted(int(a) for a in axes))
    if not axes:
        return x
    return bind(prim, x, axes=axes)


reduce_sum = Primitive("reduce_sum", _reduce_rule("reduce_sum", "num"), _reduce_impl(np.sum),
                       _reduce_sum_vjp, category=REDUCTION, flops=1, call=_reduce_call,
                       batch=_batch_reduction, jvp=_linear_jvp)
reduce_max = Primitive("reduce_max", _reduce_rule("reduce_max", "any"), _reduce_impl(np.max),
                       _reduce_chooser_vjp, category=REDUCTION, flops=1, call=_reduce_call,
                       batch=_batch_reduction)
reduce_min = Primitive("reduce_min", _reduce_rule("reduce_min", "any"), _reduce_impl(np.min),
                       _reduce_chooser_vjp, category=REDUCTION, flops=1, call=_reduce_call,
                       batch=_batch_reduction)
reduce_prod = Primitive("reduce_prod", _reduce_rule("reduce_prod", "num"),
                        _reduce_impl(np.prod), _reduce_prod_vjp, category=REDUCTION, flops=1,
                        call=_reduce_call, batch=_batch_reduction)


def _arg_rule(name):
    def rule(x: Type, axis) -> Type:
        if not 0 <= axis < x.ndim or x.shape[axis] == 0:
            raise TypeError(f"{name}: axis {axis} of {x} is missing or empty")
        return Type(tuple(n for i, n in enumerate(x.shape) if i != axis), "i64")
    return rule


def _arg_call(prim, x, axis: int):
    """argmax(x, axis), argmin(x, axis)."""
    return bind(prim, x, axis=int(axis))


argmax = Primitive("argmax", _arg_rule("argmax"),
                   lambda x, axis: np.asarray(np.argmax(x, axis=axis)).astype(np.int64),
                   lambda g, x, out, axis: [None], category=REDUCTION,
                   own_kernel=True, call=_arg_call, batch=_batch_one_axis)
argmin = Primitive("argmin", _arg_rule("argmin"),
                   lambda x, axis: np.asarray(np.argmin(x, axis=axis)).astype(np.int64),
                   lambda g, x, out, axis: [None], category=REDUCTION,
                   own_kernel=True, call=_arg_call, batch=_batch_one_axis)


# ---------------------------------------------------------------------------------------------
# along one axis: cumulative sums and products, sorts


def _line_rule(name, allowed, out_dtype=None):
    def rule(x: Type, axis) -> Type:
        _check_dtype(name, x.dtype, allowed)
        if not 0 <= axis < x.ndim:
            raise TypeError(f"{name}: axis {axis} of {x} is missing")
        return Type(x.shape, out_dtype or x.dtype)
    return rule


def _line_call(prim, x, axis: int):
    """cumsum(x, axis), cumprod(x, axis), sort(x, axis), argsort(x, axis)."""
    return bind(prim, x, axis=int(axis))


def _flip(x, axis: int):
    """x reversed along `axis` (a view)."""
    shape = type_of(x).shape
    starts = tuple(n - 1 if d == axis else 0 for d, n in enumerate(shape))
    steps = tuple(-1 if d == axis else 1 for d in range(len(shape)))
    return slice_(x, starts, steps, shape)


def _reverse_cumsum(g, axis: int):
    """out[i] = sum of g[j] for j >= i along `axis`."""
    return _flip(cumsum(_flip(g, axis), axis), axis)


def _cumsum_vjp(g, x, out, axis):
    return [_reverse_cumsum(g, axis) if is_float(dtype_of(x)) else None]


def _cumprod_vjp(g, x, out, axis):
    # d out_j / d x_i = prod_{k <= j, k != i} x_k for i <= j. Before the first zero of a line
    # that is out_j / x_i, so gx_i = sum_{j >= i} g_j out_j / x_i (out_j = 0 from the zero on,
    # exactly right). At the first zero z it is the cumulative product with x_z taken as 1;
    # after it every partial has the factor x_z = 0. (At an infinite entry the quotient is
    # NaN: the partial there is a product of the others that this rule does not form.)
    if not is_float(dtype_of(x)):
        return [None]
    zero = eq(x, 0.0)
    zeros_so_far = cumsum(cast(zero, "i64"), axis)
    before = eq(zeros_so_far, 0)
    first = and_(zero, eq(zeros_so_far, 1))
    g_before = div(_reverse_cumsum(_times(g, out), axis), select(before, x, 1.0))
    g_first = _reverse_cumsum(_times(g, cumprod(select(first, 1.0, x), axis)), axis)
    return [select(before, g_before, select(first, g_first, 0.0))]


#: cumsum(x, axis)[..., i, ...] = x[..., 0, ...] + ... + x[..., i, ...], added in order in x's
#: dtype (NumPy's add.accumulate).
cumsum = Primitive("cumsum", _line_rule("cumsum", "num"),
                   lambda x, axis: np.cumsum(x, axis=axis, dtype=np.asarray(x).dtype),
                   _cumsum_vjp, category=ALONG_AXIS, flops=1, own_kernel=True, call=_line_call,
                   batch=_batch_one_axis, jvp=_linear_jvp)
#: cumprod(x, axis): the products, in order, in x's dtype (NumPy's multiply.accumulate).
cumprod = Primitive("cumprod", _line_rule("cumprod", "num"),
                    lambda x, axis: np.cumprod(x, axis=axis, dtype=np.asarray(x).dtype),
                    _cumprod_vjp, category=ALONG_AXIS, flops=1, own_kernel=True,
                    call=_line_call, batch=_batch_one_axis)


def _along_axis(idx, axis: int) -> tuple:
    """Index arrays over every axis of idx's shape that pick, along `axis`, the positions in
    idx and elsewhere the position itself: x[_along_axis(idx, axis)] is
    np.take_along_axis(x, idx, axis)."""
    shape = type_of(idx).shape
    return tuple(idx if d == axis else iota(shape, d, "i64") for d in range(len(shape)))


def _sort_vjp(g, x, out, axis):
    # out[j] = x[perm[j]] along the axis: each x gets the cotangent of the place it went to.
    if not is_float(dtype_of(x)):
        return [None]
    return [scatter_add(zeros(type_of(x)), _along_axis(argsort(x, axis), axis), g)]


def _argsort_impl(x, axis):
    return np.argsort(x, axis=axis, kind="stable").astype(np.int64)


#: argsort(x, axis): the positions that sort each line, stably (equal elements keep their
#: order; -0.0 equals 0.0; NaNs last, as NumPy sorts).
argsort = Primitive("argsort", _line_rule("argsort", "any", "i64"), _argsort_impl,
                    lambda g, x, out, axis: [None], category=ALONG_AXIS, own_kernel=True,
                    call=_line_call, batch=_batch_one_axis)
#: sort(x, axis): each line in ascending order, NaNs last; the values of argsort's order.
sort = Primitive("sort", _line_rule("sort", "any"),
                 lambda x, axis: np.sort(x, axis=axis, kind="stable"), _sort_vjp,
                 category=ALONG_AXIS, own_kernel=True, call=_line_call,
                 batch=_batch_one_axis)


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
    gl = dot(g, rhs, (g_rf, rf), (g_batch, rb))
    rc_sorted = sorted(rc)
    axes_l = list(lb) + list(lf) + [lc[rc.index(r)] for r in rc_sorted]
    gl = transpose(gl, tuple(axes_l.index(i) for i in range(tl.ndim)))

    # d rhs = lhs . g over lhs's free axes -> [batch, lhs contract (ascending), rhs free]
    gr = dot(lhs, g, (lf, g_lf), (lb, g_batch))
    lc_sorted = sorted(lc)
    axes_r = list(rb) + [rc[lc.index(a)] for a in lc_sorted] + list(rf)
    gr = transpose(gr, tuple(axes_r.index(i) for i in range(tr.ndim)))
    return [gl, gr]


class _Dot(Primitive):
    def format_params(self, params):
        (lc, rc), (lb, rb) = params["contract"], params["batch"]
        out = [("contract", (lc, rc))]
        if lb or rb:
            out.append(("batch", (lb, rb)))
        return out


def _dot_call(prim, lhs, rhs, contract, batch=((), ())):
    """dot(lhs, rhs, contract, batch): the axes as tuples of ints."""
    norm = lambda pair: tuple(tuple(int(a) for a in axes) for axes in pair)  # noqa: E731
    return bind(prim, lhs, rhs, contract=norm(contract), batch=norm(batch))


#: dot(lhs, rhs, contract=((lhs axes), (rhs axes)), batch=((lhs axes), (rhs axes))):
#: a general tensor contraction; output axes are batch, then lhs free, then rhs free.
def _dot_batch(prim, size, args, batched, contract, batch):
    # Batched on both sides, the batch axis is one more batch axis of the dot (the output's
    # first). On one side only, it is a free axis of that side: the first of its free axes
    # in the output, moved to the front.
    (lc, rc), (lb, rb) = contract, batch
    lhs, rhs = args
    if batched[0] and batched[1]:
        return bind(prim, lhs, rhs, contract=(_shifted(lc), _shifted(rc)),
                    batch=((0,) + _shifted(lb), (0,) + _shifted(rb)))
    if batched[0]:
        out = bind(prim, lhs, rhs, contract=(_shifted(lc), rc), batch=(_shifted(lb), rb))
        return _to_front(out, len(lb))
    out = bind(prim, lhs, rhs, contract=(lc, _shifted(rc)), batch=(lb, _shifted(rb)))
    return _to_front(out, type_of(lhs).ndim - len(lc))


def _dot_jvp(prim, tangents, lhs, rhs, out, contract, batch):
    # bilinear: d(l . r) = dl . r + l . dr
    terms = []
    if tangents[0] is not None:
        terms.append(bind(prim, tangents[0], rhs, contract=contract, batch=batch))
    if tangents[1] is not None:
        terms.append(bind(prim, lhs, tangents[1], contract=contract, batch=batch))
    return terms[0] if len(terms) == 1 else add(*terms)


dot = _Dot("dot", _dot_rule, _dot_impl, _dot_vjp, category=CONTRACTION, call=_dot_call,
           batch=_dot_batch, jvp=_dot_jvp)


# ---------------------------------------------------------------------------------------------
# linear algebra: the matrices in the last two axes, batched over the others (of one batch
# shape for every operand: the NumPy layer broadcasts)


def _square(name: str, a: Type) -> None:
    _check_dtype(name, a.dtype, "float")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise TypeError(f"{name}: {a} is not a stack of square matrices")


def _mT(x):
    """x with its last two axes swapped."""
    n = type_of(x).ndim
    return transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _matmul(a, b):
    """a @ b for stacks of matrices of one batch shape."""
    n = type_of(a).ndim
    batch = tuple(range(n - 2))
    return dot(a, b, ((n - 1,), (n - 2,)), (batch, batch))


def _triangle(x, lower: bool, diagonal_scale: float = 1.0):
    """The lower (or upper) triangle of each matrix of x, zeros elsewhere, its diagonal times
    `diagonal_scale`."""
    t = type_of(x)
    rows, cols = iota(t.shape, t.ndim - 2, "i64"), iota(t.shape, t.ndim - 1, "i64")
    inside = select((ge if lower else le)(rows, cols), x, 0.0)
    if diagonal_scale == 1.0:
        return inside
    return select(eq(rows, cols), mul(x, diagonal_scale), inside)


def _identity_like(a):
    t = type_of(a)
    return cast(eq(iota(t.shape, t.ndim - 2, "i64"), iota(t.shape, t.ndim - 1, "i64")), t.dtype)


def _cholesky_rule(a: Type) -> Type:
    _square("cholesky", a)
    return a


def _cholesky_vjp(g, a, out):
    # Murray (2016): with P = Φ(Lᵀ L̄) (Φ: the lower triangle, its diagonal halved), the
    # cotangent is S = L⁻ᵀ P L⁻¹, symmetrised (the factorisation reads a symmetric matrix).
    p = _triangle(_matmul(_mT(out), g), lower=True, diagonal_scale=0.5)
    y = triangular_solve(out, p, lower=True, transpose=True)              # L⁻ᵀ P
    s = _mT(triangular_solve(out, _mT(y), lower=True, transpose=True))    # (L⁻ᵀ (L⁻ᵀ P)ᵀ)ᵀ
    return [mul(add(s, _mT(s)), 0.5)]


#: cholesky(a): the lower-triangular L with L Lᵀ = a, from a's lower triangle (NumPy's); an
#: error (LinAlgError) where a is not positive definite.
cholesky = Primitive("cholesky", _cholesky_rule, np.linalg.cholesky, _cholesky_vjp,
                     category=LINALG, own_kernel=True,
                     batch=_batch_linalg)


def _solve_shapes(name: str, a: Type, b: Type) -> None:
    _square(name, a)
    if b.dtype != a.dtype or b.ndim != a.ndim or b.shape[:-1] != a.shape[:-1]:
        raise TypeError(f"{name}: {b} does not fit {a} (right-hand sides: (..., n, k) of one "
                        "batch shape and dtype)")


def _trsolve_rule(a: Type, b: Type, lower, transpose) -> Type:
    _solve_shapes("triangular_solve", a, b)
    return b


def _trsolve_impl(a, b, lower, transpose):
    t = np.tril(a) if lower else np.triu(a)
    return np.linalg.solve(np.swapaxes(t, -1, -2) if transpose else t, b)


def _trsolve_vjp(g, a, b, out, lower, transpose):
    # op(A) X = B: B̄ = op(A)⁻ᵀ X̄, and op(A)'s cotangent is -B̄ Xᵀ, on A's triangle.
    gb = triangular_solve(a, g, lower=lower, transpose=not transpose)
    ga = neg(_matmul(gb, _mT(out)))
    return [_triangle(_mT(ga) if transpose else ga, lower), gb]


def _trsolve_call(prim, a, b, lower: bool, transpose: bool = False):
    """triangular_solve(a, b, lower, transpose=False): X with op(a) X = b, op(a) = a or aᵀ,
    a read as its lower (or upper) triangle."""
    return bind(prim, a, b, lower=bool(lower), transpose=bool(transpose))


#: triangular_solve(a, b, lower, transpose): X with op(a) X = b for a triangular a (only its
#: lower or upper triangle is read); an error (LinAlgError) where a diagonal entry is 0.
triangular_solve = Primitive("triangular_solve", _trsolve_rule, _trsolve_impl, _trsolve_vjp,
                             category=LINALG, own_kernel=True, call=_trsolve_call,
                             batch=_batch_linalg)


def _solve_rule(a: Type, b: Type) -> Type:
    _solve_shapes("solve", a, b)
    return b


def _solve_vjp(g, a, b, out):
    # A X = B: B̄ = A⁻ᵀ X̄ and Ā = -B̄ Xᵀ.
    gb = solve(_mT(a), g)
    return [neg(_matmul(gb, _mT(out))), gb]


#: solve(a, b): X with a X = b, b of shape (..., n, k); an error (LinAlgError) where a is
#: singular.
solve = Primitive("solve", _solve_rule, np.linalg.solve, _solve_vjp, category=LINALG,
                  own_kernel=True, batch=_batch_linalg)


def _slogdet_rule(a: Type) -> Type:
    _square("slogdet", a)
    return Type(a.shape[:-2] + (2,), a.dtype)


def _slogdet_impl(a):
    sign, logdet = np.linalg.slogdet(a)
    return np.stack([sign, logdet], axis=-1).astype(np.asarray(a).dtype)


def _slogdet_vjp(g, a, out):
    # d log|det A| = tr(A⁻¹ dA): Ā = ḡ A⁻ᵀ; the sign is piecewise constant.
    t = type_of(a)
    nb = t.ndim - 2
    g_log = slice_(g, (0,) * nb + (1,), (1,) * (nb + 1), t.shape[:-2] + (1,))
    g_log = broadcast_in_dim(reshape(g_log, t.shape[:-2]), t.shape, tuple(range(nb)))
    return [mul(g_log, solve(_mT(a), _identity_like(a)))]


#: slogdet(a)[..., 0] is the sign of det(a) (0 for a singular a) and [..., 1] log|det(a)|
#: (-inf for a singular a), from an LU factorisation.
slogdet = Primitive("slogdet", _slogdet_rule, _slogdet_impl, _slogdet_vjp, category=LINALG,
                    own_kernel=True, batch=_batch_linalg)


def _eigh_rule(a: Type) -> Type:
    _square("eigh", a)
    return Type(a.shape[:-2] + (a.shape[-1] + 1, a.shape[-1]), a.dtype)


def _eigh_impl(a):
    w, v = np.linalg.eigh(a)
    return np.concatenate([w[..., None, :], v], axis=-2)


def _eigh_vjp(g, a, out):
    # With A = V diag(w) Vᵀ: Ā = V (diag(w̄) + F ∘ (Vᵀ V̄)) Vᵀ, F_ij = 1 / (w_j - w_i) off the
    # diagonal, symmetrised. Where two eigenvalues are equal F_ij is taken as 0: the gradient
    # of a function that does not depend on the basis chosen in a degenerate eigenspace.
    t = type_of(a)
    n, nb = t.shape[-1], t.ndim - 2
    ones = (1,) * (nb + 2)
    rows = lambda x, start, count: slice_(x, (0,) * nb + (start, 0), ones,   # noqa: E731
                                          t.shape[:-2] + (count, n))
    w, v = rows(out, 0, 1), rows(out, 1, n)
    gw, gv = rows(g, 0, 1), rows(g, 1, n)
    w_cols = broadcast_in_dim(reshape(w, t.shape[:-2] + (n,)), t.shape,
                              tuple(range(nb)) + (nb + 1,))      # [i, j] = w_j
    diff = sub(w_cols, _mT(w_cols))                              # w_j - w_i
    same = eq(diff, 0.0)
    f = select(same, 0.0, div(1.0, select(same, 1.0, diff)))
    gw_diag = mul(_identity_like(a), broadcast_in_dim(reshape(gw, t.shape[:-2] + (n,)),
                                                      t.shape, tuple(range(nb)) + (nb + 1,)))
    inner = add(gw_diag, mul(f, _matmul(_mT(v), gv)))
    ga = _matmul(_matmul(v, inner), _mT(v))
    return [mul(add(ga, _mT(ga)), 0.5)]


#: eigh(a): the eigenvalues (ascending, row 0) and the eigenvectors (columns of rows 1..n) of
#: the symmetric matrices a, from their lower triangles (NumPy's UPLO='L').
eigh = Primitive("eigh", _eigh_rule, _eigh_impl, _eigh_vjp, category=LINALG, own_kernel=True,
                 batch=_batch_linalg)


def _svd_layout(shape, full: bool):
    """(k, columns of U, rows of Vᵀ, width) of svd's packed output for matrices of `shape`
    (..., m, n): U in rows 0..m-1, the singular values in row m, Vᵀ in the rows after it."""
    m, n = shape[-2:]
    k = min(m, n)
    ku, kv = (m, n) if full else (k, k)
    return k, ku, kv, max(ku, n, k, 1)


def _svd_rule(a: Type, full) -> Type:
    _check_dtype("svd", a.dtype, "float")
    if a.ndim < 2:
        raise TypeError(f"svd: {a} is not a stack of matrices")
    m, n = a.shape[-2:]
    _, _, kv, width = _svd_layout(a.shape, full)
    return Type(a.shape[:-2] + (m + 1 + kv, width), a.dtype)


def _svd_impl(a, full):
    a = np.asarray(a)
    m, n = a.shape[-2:]
    k, ku, kv, width = _svd_layout(a.shape, full)
    out = np.zeros(a.shape[:-2] + (m + 1 + kv, width), a.dtype)
    u, s, vt = np.linalg.svd(a, full_matrices=full)
    out[..., :m, :ku] = u
    out[..., m, :k] = s
    out[..., m + 1:, :n] = vt
    return out


def _svd_vjp(g, a, out, full):
    # Townsend (2016), for A = U S Vᵀ with U m × k, V n × k: with F_ij = 1 / (s_j² - s_i²)
    # off the diagonal (0 where two singular values are equal: the gradient of a function
    # that does not depend on the basis of their singular subspace) and S⁻¹ taken as 0 where
    # a singular value is 0,
    #   Ā = U [(F ∘ (UᵀŪ - ŪᵀU)) S + diag(S̄) + S (F ∘ (VᵀV̄ - V̄ᵀV))] Vᵀ
    #       + (I - UUᵀ) Ū S⁻¹ Vᵀ + U S⁻¹ V̄ᵀ (I - VVᵀ).
    t = type_of(a)
    m, n = t.shape[-2:]
    k, ku, kv, _ = _svd_layout(t.shape, full)
    if full and m != n:
        raise UnsupportedError("the gradient of svd with full_matrices=True of non-square "
                               "matrices is not defined (the extra singular vectors are not "
                               "unique): use full_matrices=False")
    nb = t.ndim - 2
    batch = t.shape[:-2]

    def block(x, row, rows, cols):
        return slice_(x, (0,) * nb + (row, 0), (1,) * (nb + 2), batch + (rows, cols))

    u, vt = block(out, 0, m, k), block(out, m + 1, k, n)
    gu, gvt = block(g, 0, m, k), block(g, m + 1, k, n)
    s = reshape(block(out, m, 1, k), batch + (k,))
    gs = reshape(block(g, m, 1, k), batch + (k,))
    v, gv = _mT(vt), _mT(gvt)

    def rows(x, count):                                        # [i, j] = x_j, `count` rows
        return broadcast_in_dim(x, batch + (count, k), tuple(range(nb)) + (nb + 1,))

    s_cols = rows(s, k)                                        # [i, j] = s_j
    s2 = mul(s_cols, s_cols)
    diff = sub(s2, _mT(s2))                                    # s_j² - s_i²
    same = eq(diff, 0.0)
    f = select(same, 0.0, div(1.0, select(same, 1.0, diff)))
    eye = _identity_like(f)
    utgu = _matmul(_mT(u), gu)
    vtgv = _matmul(_mT(v), gv)
    inner = add(add(mul(mul(f, sub(utgu, _mT(utgu))), s_cols), mul(eye, rows(gs, k))),
                mul(_mT(s_cols), mul(f, sub(vtgv, _mT(vtgv)))))
    ga = _matmul(_matmul(u, inner), vt)
    zero = eq(s, 0.0)
    s_inv = select(zero, 0.0, div(1.0, select(zero, 1.0, s)))           # 1 / s_j, 0 at 0
    if m > k:       # (I - UUᵀ) Ū S⁻¹ Vᵀ
        gu_s = mul(gu, rows(s_inv, m))
        ga = add(ga, _matmul(sub(gu_s, _matmul(u, _matmul(_mT(u), gu_s))), vt))
    if n > k:       # U S⁻¹ V̄ᵀ (I - VVᵀ)
        gv_s = mul(gv, rows(s_inv, n))
        ga = add(ga, _matmul(u, _mT(sub(gv_s, _matmul(v, _matmul(_mT(v), gv_s))))))
    return [ga]


def _svd_call(prim, a, full: bool = False):
    """svd(a, full=False): the packed factors (see _svd_layout)."""
    return bind(prim, a, full=bool(full))


#: svd(a, full): U, the singular values (descending) and Vᵀ of each matrix of a (NumPy's, from
#: the same LAPACK routine), packed: U in rows 0..m-1, the values in row m, Vᵀ after it
#: (zeros elsewhere); full=True gives the square U and Vᵀ of full_matrices.
svd = Primitive("svd", _svd_rule, _svd_impl, _svd_vjp, category=LINALG, own_kernel=True,
                call=_svd_call, batch=_batch_linalg)


def _qr_rule(a: Type) -> Type:
    _check_dtype("qr", a.dtype, "float")
    if a.ndim < 2:
        raise TypeError(f"qr: {a} is not a stack of matrices")
    m, n = a.shape[-2:]
    k = min(m, n)
    return Type(a.shape[:-2] + (m + k, max(k, n, 1)), a.dtype)


def _qr_impl(a):
    a = np.asarray(a)
    m, n = a.shape[-2:]
    k = min(m, n)
    out = np.zeros(_qr_rule(Type(a.shape, dtype_of(a))).shape, a.dtype)
    q, r = np.linalg.qr(a)
    out[..., :m, :k] = q
    out[..., m:, :n] = r
    return out


def _qr_vjp(g, a, out):
    # For m >= n (Walter & Lehmann; as JAX): with M = R R̄ᵀ - Q̄ᵀ Q,
    #   Ā = (Q̄ + Q copyltu(M)) R⁻ᵀ, copyltu(M) = tril(M) + tril(M, -1)ᵀ.
    t = type_of(a)
    m, n = t.shape[-2:]
    if m < n:
        raise UnsupportedError("the gradient of qr of matrices with more columns than rows "
                               "is not implemented")
    nb = t.ndim - 2
    batch = t.shape[:-2]

    def block(x, row, rows, cols):
        return slice_(x, (0,) * nb + (row, 0), (1,) * (nb + 2), batch + (rows, cols))

    q, r = block(out, 0, m, n), block(out, m, n, n)
    gq, gr = block(g, 0, m, n), block(g, m, n, n)
    mm = sub(_matmul(r, _mT(gr)), _matmul(_mT(gq), q))
    low = _triangle(mm, lower=True)
    strict = sub(low, _triangle(mm, lower=True, diagonal_scale=0.0))   # the diagonal alone
    copyltu = add(low, _mT(sub(low, strict)))
    x = add(gq, _matmul(q, copyltu))
    # X R⁻ᵀ = (R⁻¹ Xᵀ)ᵀ
    return [_mT(triangular_solve(r, _mT(x), lower=False))]


#: qr(a): Q (m × k, orthonormal columns) and R (k × n, upper triangular) of each matrix of a,
#: k = min(m, n) (NumPy's 'reduced' mode, from the same LAPACK routines), packed: Q in rows
#: 0..m-1, R in the k rows after them (zeros elsewhere).
qr = Primitive("qr", _qr_rule, _qr_impl, _qr_vjp, category=LINALG, own_kernel=True,
               batch=_batch_linalg)


# ---------------------------------------------------------------------------------------------
# calls of sub-Functions with derivatives of their own


class _Call(Primitive):
    def format_params(self, params):
        return [("name", params["name"])]


def _call_rule(*types: Type, name, fun, **rules) -> Type:
    takes = tuple(p.type for p in fun.params)
    if tuple(types) != takes:
        raise TypeError(f"{name}: operands {', '.join(map(str, types))}; it takes "
                        f"{', '.join(map(str, takes))}")
    return fun.results[0].type


def _replay(fn, args: list, run) -> list:
    """fn's results from `args`, each equation computed by run(prim, inputs, params): the
    primitives' NumPy implementations, or their binding in the current trace."""
    env = dict(zip(fn.params, args))
    for e in fn.eqns:
        inputs = [a.value if isinstance(a, Literal) else env[a] for a in e.inputs]
        env[e.out] = run(e.prim, inputs, dict(e.params))
    return [r.value if isinstance(r, Literal) else env[r] for r in fn.results]


def _record(prim, inputs, params):
    return bind(prim, *inputs, **params)


def _call_impl(*xs, name, fun, **rules):
    return _replay(fun, [np.asarray(x) for x in xs],
                   lambda prim, inputs, params: prim.impl(*inputs, **params))[0]


def _float_operands(xs) -> list:
    return [x for x in xs if is_float(dtype_of(x))]


def _per_operand(xs, float_cts) -> list:
    """Cotangents of the float operands as one per operand (None for the others)."""
    it = iter(float_cts)
    return [next(it) if is_float(dtype_of(x)) else None for x in xs]


def _custom_vjp_vjp(g, *xs, out, name, fun, fwd, bwd):
    # The user's rule: fwd again for its residuals (recomputed, not stored), then bwd.
    residuals = _replay(fwd, list(xs), _record)[1:]
    return _replay(bwd, residuals + [g], _record)


#: custom_vjp_call(*operands, name, fun, fwd, bwd): fun(*operands) (one result), whose VJP is
#: the user's bwd on the residuals of fwd (tracejit.custom).
custom_vjp_call = _Call("custom_vjp_call", _call_rule, _call_impl, _custom_vjp_vjp,
                        category=CALL)


def _tangents_of(tangents, xs) -> list:
    """The tangent of each float operand, zeros where it has none."""
    return [t if t is not None else zeros(type_of(x))
            for t, x in zip(tangents, xs) if is_float(dtype_of(x))]


def _custom_jvp_jvp(prim, tangents, *xs, out, name, fun, jvp, transposed):
    return _replay(jvp, list(xs) + _tangents_of(tangents, xs), _record)[1]


def _custom_jvp_vjp(g, *xs, out, name, fun, jvp, transposed):
    # The user's tangent map t -> J t is linear in t: its transpose, `transposed` (reverse
    # mode over the tangent output of the rule, built by tracejit.custom), gives J^T g. The
    # tangents it takes are zeros: the transpose of a linear map does not depend on them.
    zero_tangents = [zeros(type_of(x)) for x in _float_operands(xs)]
    return _per_operand(xs, _replay(transposed, list(xs) + zero_tangents + [g], _record))


#: custom_jvp_call(*operands, name, fun, jvp, transposed): fun(*operands) (one result), whose
#: tangent is the user's rule `jvp` (primals, then one tangent per float operand -> the output
#: and its tangent); reverse mode transposes it (tracejit.custom).
custom_jvp_call = _Call("custom_jvp_call", _call_rule, _call_impl, _custom_jvp_vjp,
                        category=CALL, jvp=_custom_jvp_jvp)


def _checkpoint_vjp(g, *xs, out, name, fun, bwd):
    return _per_operand(xs, _replay(bwd, list(xs) + [g], _record))


#: checkpoint(*operands, name, fun, bwd): fun(*operands) (one result), whose VJP `bwd`
#: computes fun's intermediates again from the operands (behind optimization_barrier, so that
#: they are not merged with the forward pass's) instead of keeping them (tracejit.custom).
checkpoint = _Call("checkpoint", _call_rule, _call_impl, _checkpoint_vjp, category=CALL)
