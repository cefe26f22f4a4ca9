"""Passes: each a function Function -> Function, run as an explicit ordered pipeline.

    inline_calls    calls of sub-Functions (custom_vjp) replaced by their equations
    dce             drop equations no result depends on
    fold_constants  evaluate equations whose inputs are all known at compile time
    simplify        algebraic rewrites that hold under IEEE semantics (NaN, ±inf, -0), and
                    canonical forms: literal operands instead of broadcast literals, views of
                    literals as broadcast literals, reshapes moved below elementwise work,
                    chains of views composed
    cse             one equation for each distinct (primitive, inputs, params)
    widen           operations on narrow dtypes (float16, bfloat16, small and unsigned
                    integers) computed in float32, int32 or int64, converted back

Every rewrite in `simplify` is exact for every input, NaN, infinities and signed zeros
included, with one documented exception: a sum over axes along which the operand is a
broadcast becomes a multiplication by the count (exact for counts up to 2**24 in f32 and
more accurate than the sum otherwise). `fast_math=True` allows rewrites that are wrong for
some special values: x + 0 -> x (wrong for x = -0.0), x * 0 -> 0 and x - x -> 0 (wrong for
NaN and infinities).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Iterable

import numpy as np

from . import primitives as P
from . import errors
from .ir import (DTYPES, Atom, Eqn, Function, Literal, Type, Var, compute_dtype, is_float,
                 verify)

Pass = Callable[[Function], Function]



# ---------------------------------------------------------------------------------------------
# the rewriting engine


class Rewriter:
    """Rebuild a Function equation by equation, with substitutions and a producer lookup.

    A rule gets each equation (inputs already substituted) and returns None to keep it, an
    Eqn with the same output to keep instead, or an Atom to replace its output with (the rule
    may `emit` new equations that compute that atom first).
    """

    def __init__(self, fn: Function):
        self.fn = fn
        self.subst: dict[Var, Atom] = {}
        self.eqns: list[Eqn] = []
        self.producer: dict[Var, Eqn] = {}

    def atom(self, a: Atom) -> Atom:
        while isinstance(a, Var) and a in self.subst:
            a = self.subst[a]
        return a

    def emit(self, prim, inputs, params, like: Eqn) -> Var:
        """Append a new equation (typed by its rule) with the location of `like`."""
        out = Var(prim.type_rule(*(a.type for a in inputs), **params))
        eqn = Eqn(prim, tuple(inputs), out, params, like.loc)
        self.eqns.append(eqn)
        self.producer[out] = eqn
        return out

    def run(self, rule) -> Function:
        for eqn in self.fn.eqns:
            inputs = tuple(self.atom(a) for a in eqn.inputs)
            if inputs != eqn.inputs:
                eqn = Eqn(eqn.prim, inputs, eqn.out, eqn.params, eqn.loc)
            result = rule(eqn, self)
            if result is None or isinstance(result, Eqn):
                kept = eqn if result is None else result
                assert kept.out is eqn.out
                self.eqns.append(kept)
                self.producer[kept.out] = kept
            else:
                assert result.type == eqn.out.type, (eqn.prim.name, result.type, eqn.out.type)
                self.subst[eqn.out] = result
        results = tuple(self.atom(r) for r in self.fn.results)
        return Function(self.fn.name, self.fn.params, tuple(self.eqns), results)

    def const_value(self, a: Atom):
        """The scalar every element of `a` equals, if `a` is a literal or a broadcast one."""
        if isinstance(a, Literal):
            return a.value
        eqn = self.producer.get(a)
        if eqn is not None and eqn.prim is P.broadcast_in_dim and isinstance(eqn.inputs[0],
                                                                               Literal):
            return eqn.inputs[0].value
        return None


def _same_bits(value, target) -> bool:
    """value == target with the same sign of zero (so -0.0 is not 0.0)."""
    if value is None:
        return False
    v = np.asarray(value)
    if v.dtype.kind in "iu" and not np.iinfo(v.dtype).min <= target <= np.iinfo(v.dtype).max:
        return False                            # -1 is no uint8: it is not the value
    t = np.asarray(target, dtype=v.dtype)
    return bool(v == t) and (v.dtype.kind not in "fV" or np.signbit(v) == np.signbit(t))


# ---------------------------------------------------------------------------------------------
# dce


def dce(fn: Function) -> Function:
    """Dead-code elimination: drop equations whose output no result depends on.

    Every primitive is pure, so an unused equation can always go.
    """
    live = {r for r in fn.results if isinstance(r, Var)}
    kept = []
    for eqn in reversed(fn.eqns):
        if eqn.out in live:
            kept.append(eqn)
            live.update(a for a in eqn.inputs if isinstance(a, Var))
    return Function(fn.name, fn.params, tuple(reversed(kept)), fn.results)


# ---------------------------------------------------------------------------------------------
# cse


def _freeze(value):
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype.str, value.tobytes())
    if isinstance(value, tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _atom_key(a: Atom):
    return ("lit",) + a.key() if isinstance(a, Literal) else ("var", id(a))


def cse(fn: Function) -> Function:
    """Common-subexpression elimination: equal equations computed once.

    Two equations are equal when their primitive, params and inputs are (inputs of
    commutative primitives in either order); literals compare by bits (so -0.0 != 0.0).
    """
    seen: dict = {}

    def rule(eqn: Eqn, rw: Rewriter):
        keys = [_atom_key(a) for a in eqn.inputs]
        if eqn.prim.commutative:
            keys.sort()
        key = (eqn.prim, tuple(keys), tuple(sorted((k, _freeze(v))
                                                        for k, v in eqn.params.items())))
        if key in seen:
            return seen[key]
        seen[key] = eqn.out
        return None

    return Rewriter(fn).run(rule)


# ---------------------------------------------------------------------------------------------
# constant folding

#: Folded results with more elements than this that are not all equal stay unfolded.
FOLD_LIMIT = 4096


def _concrete(a: Atom, rw: Rewriter):
    if isinstance(a, Literal):
        return a.value
    eqn = rw.producer.get(a)
    if eqn is None:
        return None
    if eqn.prim is P.constant:
        return eqn.params["value"]
    value = rw.const_value(a)
    return None if value is None else np.broadcast_to(value, a.type.shape)


def fold_constants(fn: Function) -> Function:
    """Evaluate equations whose inputs are all compile-time constants, with the primitive's
    own NumPy implementation (so the folded value is exactly what the program would compute).
    A uniform result becomes a literal (broadcast if not rank 0); a small one a constant."""

    def rule(eqn: Eqn, rw: Rewriter):
        if eqn.prim.category is P.SOURCE or not eqn.inputs:
            return None
        if eqn.prim is P.broadcast_in_dim and isinstance(eqn.inputs[0], Literal):
            return None   # already the canonical form of a filled array
        values = [_concrete(a, rw) for a in eqn.inputs]
        if any(v is None for v in values):
            return None
        try:
            with np.errstate(all="ignore"):
                out = np.asarray(eqn.prim.impl(*values, **eqn.params))
        except (ValueError, IndexError):
            # An error NumPy raises on these values (an integer to a negative power, an index
            # out of bounds): left to run time, where every backend raises it at the user's
            # line, and only if the program reaches it.
            return None
        if out.dtype != eqn.out.type.np_dtype or out.shape != eqn.out.type.shape:
            return None
        flat = out.reshape(-1)
        if out.size and np.all((flat == flat[0]) | (np.isnan(flat) & np.isnan(flat[0])
                                                    if out.dtype.kind == "f" else False)) \
                and (out.dtype.kind != "f" or np.all(np.signbit(flat) == np.signbit(flat[0]))):
            lit = Literal(flat[0])
            if out.ndim == 0:
                return lit
            return rw.emit(P.broadcast_in_dim, (lit,), {"shape": out.shape, "dims": ()}, eqn)
        if out.size > FOLD_LIMIT:
            return None
        frozen = np.array(out, copy=True)
        frozen.flags.writeable = False
        return rw.emit(P.constant, (), {"value": frozen}, eqn)

    return Rewriter(fn).run(rule)


# ---------------------------------------------------------------------------------------------
# algebraic simplification


def _compose_broadcast(inner: Eqn, shape, dims):
    # x -(inner: shape1, dims1)-> y -(shape, dims)-> z: axis i of x lands at dims[dims1[i]].
    return {"shape": tuple(shape), "dims": tuple(dims[d] for d in inner.params["dims"])}


def _fill(rw: Rewriter, t: Type, value, like: Eqn) -> Atom:
    """An atom of type `t` whose every element is `value`."""
    lit = Literal(np.asarray(value, t.np_dtype)[()])
    if not t.shape:
        return lit
    return rw.emit(P.broadcast_in_dim, (lit,), {"shape": t.shape, "dims": ()}, like)


def _literal_operands(eqn: Eqn, rw: Rewriter) -> Eqn:
    """Fold broadcast literals into an elementwise consumer: `mul (broadcast 2.0), %x` becomes
    `mul 2.0, %x` (rank-0 operands broadcast), as long as another operand keeps the shape."""
    ins, shape = eqn.inputs, eqn.out.type.shape
    if eqn.prim.category is not P.ELEMENTWISE or len(ins) < 2:
        return eqn
    new = list(ins)
    for i, a in enumerate(ins):
        c = rw.const_value(a)
        if c is not None and isinstance(a, Var) and any(
                b.type.shape == shape for j, b in enumerate(new) if j != i):
            new[i] = Literal(c)
    if new == list(ins):
        return eqn
    return Eqn(eqn.prim, tuple(new), eqn.out, eqn.params, eqn.loc)


# The rewrite rules of `simplify`, registered per primitive (as tinygrad's PatternMatcher and
# JAX's per-primitive rule tables). A rule gets the equation (inputs already substituted), the
# Rewriter and `fast_math`; it returns None when it does not apply, an Eqn with the same output
# to keep instead, or an Atom to replace the output with (emitting what computes it first).
# The rules of a primitive run in the order they were registered; the first that applies wins.

Rule = Callable[[Eqn, "Rewriter", bool], "Atom | Eqn | None"]

#: primitive → its simplify rules, in order.
RULES: dict[P.Primitive, list[Rule]] = {}


def rule(*prims: P.Primitive) -> Callable[[Rule], Rule]:
    """Register the decorated function as a simplify rule of each of `prims`."""
    for p in prims:
        if not isinstance(p, P.Primitive) or P.REGISTRY.get(p.name) is not p:
            raise TypeError(f"a simplify rule for {p!r}, which is not a registered primitive")

    def register(fn: Rule) -> Rule:
        for p in prims:
            RULES.setdefault(p, []).append(fn)
        return fn
    return register


@rule(P.reshape, P.transpose, P.slice_)
def _view_of_literal(eqn, rw, fast_math):
    # A view of a literal (rank 0, as every literal is) is that literal filled to the view's
    # shape: the canonical form of a filled array that every later stage knows. Literals
    # appear here from this pass's own rewrites, after constant folding.
    if isinstance(eqn.inputs[0], Literal):
        return _fill(rw, eqn.out.type, eqn.inputs[0].value, eqn)
    return None


@rule(*P.of_category(P.ELEMENTWISE))
def _elementwise_below_reshape(eqn, rw, fast_math):
    # Elementwise work commutes with reshape: op(reshape(a), reshape(b)) with a and b of one
    # shape is reshape(op(a, b)). Doing the work in the source shape lets keepdims-style
    # reshapes cancel and keeps domains equal for fusion.
    ins, out_t = eqn.inputs, eqn.out.type
    shaped = [a for a in ins if a.type.shape != ()]
    sources = [rw.producer.get(a) for a in shaped]
    if shaped and all(p is not None and p.prim is P.reshape for p in sources):
        src_shape = sources[0].inputs[0].type.shape
        if src_shape != out_t.shape and all(p.inputs[0].type.shape == src_shape
                                            for p in sources):
            swap = dict(zip(shaped, (p.inputs[0] for p in sources)))
            inner = rw.emit(eqn.prim, tuple(swap.get(a, a) for a in ins), dict(eqn.params), eqn)
            return rw.emit(P.reshape, (inner,), {"shape": out_t.shape}, eqn)
    return None


def _binary_operands(eqn, rw):
    """(x, y, the constant x is, the constant y is, whether the dtype is an integer's)."""
    x, y = eqn.inputs
    return x, y, rw.const_value(x), rw.const_value(y), not is_float(eqn.out.type.dtype)


@rule(P.mul)
def _mul_identities(eqn, rw, fast_math):
    x, y, cx, cy, _ = _binary_operands(eqn, rw)
    out_t = eqn.out.type
    # x * 1 and 1 * x: exact for every x.
    if _same_bits(cy, 1) and x.type == out_t:
        return x
    if _same_bits(cx, 1) and y.type == out_t:
        return y
    # x * -1 -> -x: exact (the sign of zero and NaN payload behave the same).
    if _same_bits(cy, -1) and x.type == out_t:
        return rw.emit(P.neg, (x,), {}, eqn)
    if fast_math and (_same_bits(cx, 0) or _same_bits(cy, 0)):
        return _fill(rw, out_t, 0, eqn)
    return None


@rule(P.div, P.pow_)
def _right_identity_one(eqn, rw, fast_math):
    # x / 1 and x ** 1: exact for every x.
    x, _, _, cy, _ = _binary_operands(eqn, rw)
    return x if _same_bits(cy, 1) and x.type == eqn.out.type else None


@rule(P.sub)
def _sub_identities(eqn, rw, fast_math):
    x, y, _, cy, integral = _binary_operands(eqn, rw)
    out_t = eqn.out.type
    # x - (+0) is x even for x = -0.
    if (_same_bits(cy, 0) or (integral and cy == 0)) and x.type == out_t:
        return x
    if (fast_math or integral) and x is y:
        return _fill(rw, out_t, 0, eqn)
    return None


@rule(P.add)
def _add_identities(eqn, rw, fast_math):
    # x + (-0) is x even for x = -0; x + (+0) is not (-0 + 0 = +0).
    x, y, cx, cy, integral = _binary_operands(eqn, rw)
    for a, c in ((x, cy), (y, cx)):
        zero_ok = _same_bits(c, -0.0) or ((integral or fast_math) and c is not None and c == 0)
        if zero_ok and a.type == eqn.out.type:
            return a
    return None


@rule(P.max_, P.min_, P.and_, P.or_)
def _idempotent(eqn, rw, fast_math):
    # max(x, x), min(x, x), x & x, x | x: exact (NaN stays NaN).
    x, y = eqn.inputs
    return x if x is y and x.type == eqn.out.type else None


@rule(P.and_, P.or_)
def _logic_identities(eqn, rw, fast_math):
    # On booleans: x & true = x, x & false = false, x | false = x, x | true = true (exact).
    if eqn.out.type.dtype != "bool":
        return None
    x, y, cx, cy, _ = _binary_operands(eqn, rw)
    absorbing = eqn.prim is P.or_            # true absorbs in an or, false in an and
    for a, c in ((x, cy), (y, cx)):
        if c is None:
            continue
        if bool(c) == absorbing:
            return _fill(rw, eqn.out.type, absorbing, eqn)
        if a.type == eqn.out.type:
            return a
    return None


@rule(P.neg)
def _double_negation(eqn, rw, fast_math):
    inner = rw.producer.get(eqn.inputs[0])
    if inner is not None and inner.prim is P.neg:
        return inner.inputs[0]
    return None


@rule(P.select)
def _select_known(eqn, rw, fast_math):
    p, x, y = eqn.inputs
    if x is y and x.type == eqn.out.type:
        return x
    c = rw.const_value(p)
    if c is not None:
        pick = x if bool(c) else y
        if pick.type == eqn.out.type:
            return pick
        if isinstance(pick, Literal):               # a rank-0 literal, filled to the shape
            return _fill(rw, eqn.out.type, pick.value, eqn)
    return None


@rule(P.transpose)
def _transpose_of_transpose(eqn, rw, fast_math):
    inner = rw.producer.get(eqn.inputs[0])
    if inner is not None and inner.prim is P.transpose:
        composed = tuple(inner.params["perm"][p] for p in eqn.params["perm"])
        if composed == tuple(range(len(composed))):
            return inner.inputs[0]
        return rw.emit(P.transpose, inner.inputs, {"perm": composed}, eqn)
    return None


@rule(P.reshape)
def _reshape_of_reshape(eqn, rw, fast_math):
    out_t = eqn.out.type
    if eqn.inputs[0].type == out_t:
        return eqn.inputs[0]
    inner = rw.producer.get(eqn.inputs[0])
    if inner is not None and inner.prim is P.reshape:
        if inner.inputs[0].type == out_t:
            return inner.inputs[0]
        return rw.emit(P.reshape, inner.inputs, dict(eqn.params), eqn)
    return None


@rule(P.broadcast_in_dim)
def _broadcast_of_broadcast(eqn, rw, fast_math):
    if eqn.inputs[0].type == eqn.out.type:
        return eqn.inputs[0]
    inner = rw.producer.get(eqn.inputs[0])
    if inner is not None and inner.prim is P.broadcast_in_dim:
        return rw.emit(P.broadcast_in_dim, inner.inputs,
                       _compose_broadcast(inner, **eqn.params), eqn)
    return None


@rule(P.cast)
def _cast_to_itself(eqn, rw, fast_math):
    return eqn.inputs[0] if eqn.inputs[0].type == eqn.out.type else None


@rule(P.reduce_sum, P.reduce_max, P.reduce_min)
def _reduce_of_broadcast(eqn, rw, fast_math):
    # A reduction over axes along which the operand is only a broadcast.
    out_t = eqn.out.type
    inner = rw.producer.get(eqn.inputs[0])
    axes = eqn.params["axes"]
    if inner is None or inner.prim is not P.broadcast_in_dim:
        return None
    dims = inner.params["dims"]
    src = inner.inputs[0]
    if any(a in dims for a in axes):
        return None
    kept = [d for d in range(len(inner.params["shape"])) if d not in axes]
    # The result equals the source broadcast to the kept axes.
    sub_dims = tuple(kept.index(d) for d in dims)
    value = src if src.type.shape == out_t.shape and sub_dims == tuple(
        range(len(sub_dims))) else rw.emit(P.broadcast_in_dim, (src,),
                                           {"shape": out_t.shape, "dims": sub_dims}, eqn)
    if eqn.prim is not P.reduce_sum:
        return value
    count = math.prod(inner.params["shape"][a] for a in axes)
    if count == 0:
        # A sum over an empty axis is +0 for every source value (0 * x is not: NaN for
        # x = ±inf or NaN, -0 for negative x).
        return _fill(rw, out_t, 0, eqn)
    return rw.emit(P.mul, (value, Literal(np.asarray(count, out_t.np_dtype)[()])), {}, eqn)


def rewrite(eqn: Eqn, rw: "Rewriter", fast_math: bool = False):
    """The first of `eqn`'s primitive's rules that applies to it, or None."""
    for r in RULES.get(eqn.prim, ()):
        result = r(eqn, rw, fast_math)
        if result is not None:
            return result
    return None


def simplify(fn: Function, fast_math: bool = False) -> Function:
    """Algebraic simplification (see the module docstring for what is allowed)."""

    def step(eqn: Eqn, rw: Rewriter):
        folded = _literal_operands(eqn, rw)
        result = rewrite(folded, rw, fast_math)
        if result is None and folded is not eqn:
            return folded
        return result

    return Rewriter(fn).run(step)


# ---------------------------------------------------------------------------------------------
# calls


def inline_calls(fn: Function) -> Function:
    """Replace each call of a sub-Function (custom_vjp_call, ...) by its equations (with their
    own source lines), calls inside it too: after differentiation, its derivative rule has
    done its work, and fusion and the backends see plain equations."""
    def rule(eqn: Eqn, rw: Rewriter):
        if eqn.prim.category is not P.CALL:
            return None
        fun = inline_calls(eqn.params["fun"])
        env = dict(zip(fun.params, eqn.inputs))
        for e in fun.eqns:
            inputs = tuple(a if isinstance(a, Literal) else env[a] for a in e.inputs)
            env[e.out] = rw.emit(e.prim, inputs, dict(e.params), e)
        (r,) = fun.results
        return r if isinstance(r, Literal) else env[r]
    return Rewriter(fn).run(rule)


# ---------------------------------------------------------------------------------------------
# narrow dtypes computed in wide ones


# Primitives that only move, select or convert elements: their narrow operands stay narrow
# (the backends load and store every dtype and convert it in `cast`). Every other primitive
# on a narrow dtype is computed in its compute dtype (ir.COMPUTE_DTYPE).
_MOVES = (P.VIEW, P.STRUCTURAL)
_MOVING = {P.cast, P.select, P.gather, P.constant, P.optimization_barrier}
# Primitives the backends compute in their operands' own dtype: Threefry's uint32 arithmetic,
# which wraps modulo 2**32 as it should.
_NATIVE = {P.threefry2x32}
# uint64 computes in int64's bits: sums, products and dots are the same bits (arithmetic
# modulo 2**64), order is int64's once the sign bit is flipped, and these have no such form.
_NO_UINT64 = {P.floordiv, P.mod, P.fmod, P.pow_}
_ORDERED = {P.lt, P.le, P.gt, P.ge, P.max_, P.min_, P.reduce_max, P.reduce_min, P.argmax,
            P.argmin, P.sort, P.argsort}
_SIGN_BIT = np.int64(-(1 << 63))


def _moves_only(eqn: Eqn) -> bool:
    return eqn.prim in _MOVING or eqn.prim in _NATIVE or eqn.prim.category in _MOVES


def _is_narrow(a: Atom) -> bool:
    return compute_dtype(a.type.dtype) != a.type.dtype


def _widened(a: Atom, rw: Rewriter, like: Eqn, flip: bool) -> Atom:
    """`a` in its compute dtype (uint64 with the sign bit flipped where `flip`)."""
    wide = compute_dtype(a.type.dtype)
    if isinstance(a, Literal):
        value = np.asarray(a.value).astype(DTYPES[wide])[()]
        return Literal(value ^ _SIGN_BIT if flip else value)
    out = rw.emit(P.cast, (a,), {"dtype": wide}, like)
    return rw.emit(P.xor, (out, Literal(_SIGN_BIT)), {}, like) if flip else out


def _widen_rule(eqn: Eqn, rw: Rewriter):
    dtype = eqn.out.type.dtype
    if _moves_only(eqn) or not (_is_narrow(eqn.out) or any(map(_is_narrow, eqn.inputs))):
        return None
    unsigned64 = [a.type.dtype == "u64" for a in eqn.inputs]
    known_power = eqn.prim is P.pow_ and isinstance(eqn.inputs[1], Literal) and \
        int(eqn.inputs[1].value) < 1 << 63       # int64's bits hold the exponent
    if any(unsigned64) and eqn.prim in _NO_UINT64 and not known_power:
        raise errors.user_error(errors.UnsupportedError, f"{eqn.prim.name} of uint64 values "
                                "is not supported (it computes in int64's bits): cast to "
                                "int64, or to float64, first", eqn.loc)
    if any(unsigned64) and eqn.prim in (P.abs_, P.sign):     # unsigned: |x| = x, sign in {0, 1}
        x = eqn.inputs[0]
        return x if eqn.prim is P.abs_ else \
            rw.emit(P.cast, (rw.emit(P.ne, (_widened(x, rw, eqn, False), Literal(np.int64(0))),
                                     {}, eqn),), {"dtype": dtype}, eqn)
    flip = eqn.prim in _ORDERED
    inputs = tuple(_widened(a, rw, eqn, flip and u) for a, u in zip(eqn.inputs, unsigned64))
    if eqn.prim in (P.max_, P.min_) and dtype == "f16":
        # NumPy's float16 maximum keeps its first operand where they tie (0.0 and -0.0), its
        # float32 maximum the second: the same function of the swapped operands.
        inputs = inputs[::-1]
    params = dict(eqn.params)
    if params.get("dtype") is not None:                       # iota
        params["dtype"] = compute_dtype(params["dtype"])
    out = rw.emit(eqn.prim, inputs, params, eqn)
    if flip and dtype == "u64":
        out = rw.emit(P.xor, (out, Literal(_SIGN_BIT)), {}, eqn)
    return out if out.type == eqn.out.type else rw.emit(P.cast, (out,), {"dtype": dtype}, eqn)


def widen(fn: Function) -> Function:
    """Compute every operation on a narrow dtype (float16, bfloat16, the integers of 8 and 16
    bits, the unsigned ones) in its compute dtype, and convert the result back: rounded to
    the half type after every operation, as NumPy's float16 loops do, and wrapped for the
    integers. Sums, products and dots of half inputs so accumulate in float32. Moves and
    selections of elements keep their dtype."""
    return Rewriter(fn).run(_widen_rule)


# ---------------------------------------------------------------------------------------------
# the pipeline


def pipeline(fast_math: bool = False) -> list[tuple[str, Pass]]:
    """The optimisation pipeline, in order: (name, pass)."""
    simp = functools.partial(simplify, fast_math=fast_math) if fast_math else simplify
    return [
        ("inline_calls", inline_calls),
        ("dce", dce),
        ("fold_constants", fold_constants),
        ("simplify", simp),
        ("cse", cse),
        ("simplify_again", simp),
        ("widen", widen),
        ("cse_widened", cse),
        ("dce_final", dce),
    ]


#: The default pipeline.
PIPELINE: list[tuple[str, Pass]] = pipeline()


def run_pipeline(fn: Function, passes: Iterable[tuple[str, Pass]] | None = None,
                 verify_each: bool = False) -> list[tuple[str, Function]]:
    """Run the passes (default: PIPELINE) in order, verifying after each when asked; the
    (name, result) of each, for the dumps."""
    out = []
    for name, p in (PIPELINE if passes is None else passes):
        fn = p(fn)
        if verify_each:
            verify(fn)
        out.append((name, fn))
    return out


def optimize(fn: Function, passes: Iterable[tuple[str, Pass]] | None = None,
             verify_each: bool = False) -> Function:
    """Run the passes (default: PIPELINE) in order, verifying after each when asked; the
    result of the last."""
    stages = run_pipeline(fn, passes, verify_each)
    return stages[-1][1] if stages else fn

