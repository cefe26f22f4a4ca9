"""Unit tests for tracejit.passes: dce, cse, fold_constants and simplify, one claim at a time.

Every test is structural and numeric: it counts the equations of the primitives a pass should
remove, merge or keep, verifies the IR after the pass (`tj.verify`), and runs the reference
interpreter before and after on inputs that include NaN, ±inf, ±0.0 and subnormals, comparing
bit for bit (NaN equal to NaN, the sign of zero included). The IEEE claims (x + 0.0 is kept for
floats, x * 0 is kept without fast_math) are also checked against NumPy through `tj.jit`.

Functions are built with `tracejit.ops` inside a Trace, so the IR under test is exactly what
the test writes (no NumPy promotion, no trace-time shortcuts).
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit import ops
from tracejit import primitives as P
from tracejit.ir import DTYPES, Function, Literal, Type, Var
from tracejit.passes import (FOLD_LIMIT, PIPELINE, cse, dce, fold_constants, optimize,
                             pipeline, simplify)
from tracejit.tracer import Trace, bind

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 5e-324, 1e308]
NEG_ZERO, MINUS_ONE = 4, 6          # positions in SPECIAL (list.index cannot tell ±0 apart)


# ---------------------------------------------------------------------------------------------
# helpers


def build(body, *types) -> Function:
    """The verified Function of `body(*params)` written with tracejit.ops; `types` are
    (shape, dtype) pairs. `body` returns one value or a tuple of values."""
    with Trace("f") as t:
        args = [t.new_param(Type(tuple(shape), dtype)) for shape, dtype in types]
        outs = body(*args)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        fn, captured = t.finish(outs)
    assert not captured
    return tj.verify(fn)


def data(shape, dtype, seed=0) -> np.ndarray:
    """Random values of `dtype`; float arrays of 9 or more elements contain every SPECIAL
    value, smaller ones some of them."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype in ("i32", "i64"):
        return rng.integers(-5, 6, size=shape).astype(DTYPES[dtype])
    flat = rng.standard_normal(int(np.prod(shape, dtype=int)))
    k = min(len(SPECIAL), flat.size)
    flat[:k] = rng.permutation(SPECIAL)[:k]
    with np.errstate(over="ignore"):                        # 1e308 is inf in f32
        return rng.permutation(flat).reshape(shape).astype(DTYPES[dtype])


def inputs_for(fn: Function, seed=0) -> list[np.ndarray]:
    return [data(p.type.shape, p.type.dtype, seed + i) for i, p in enumerate(fn.params)]


def count(fn: Function, *names: str) -> int:
    """How many equations of `fn` apply one of the primitives `names`."""
    return sum(e.prim.name in names for e in fn.eqns)


def assert_identical(got, want, where="result"):
    """Same dtype, shape and bits (NaN equals NaN; the sign of zero must match)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
    np.testing.assert_array_equal(got, want, err_msg=where)
    if want.dtype.kind == "f":
        numbers = ~np.isnan(want)
        np.testing.assert_array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]),
                                      err_msg=f"{where}: sign of zero differs")


def apply(pass_, fn: Function, *, seeds=(0, 1), exact=True, **kwargs) -> Function:
    """Run one pass, verify its output, and check that the interpreter gives the same results
    before and after (bit for bit, or to 1e-12 when not `exact`)."""
    out = tj.verify(pass_(fn, **kwargs))
    for seed in seeds:
        args = inputs_for(fn, seed)
        for k, (got, want) in enumerate(zip(tj.interpret(out, args), tj.interpret(fn, args))):
            if exact:
                assert_identical(got, want, f"result {k}, seed {seed}")
            else:
                np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    return out


def simplified(fn: Function, fast_math=False, **kwargs) -> Function:
    """simplify (checked by `apply`), then dce so that bypassed equations disappear."""
    return tj.verify(dce(apply(simplify, fn, fast_math=fast_math, **kwargs)))


def producer(fn: Function, var):
    return next((e for e in fn.eqns if e.out is var), None)


# ---------------------------------------------------------------------------------------------
# dce


def test_dce_removes_dead_chains_and_keeps_live_equations():
    def body(x):
        live = ops.mul(ops.exp(x), 2.0)
        dead = ops.cos(ops.sin(x))             # a chain nothing uses
        ops.add(dead, live)                    # dead although it reads a live value
        return live

    fn = build(body, ((3, 4), "f64"))
    assert count(fn, "sin", "cos", "add") == 3
    out = apply(dce, fn)
    assert count(out, "sin", "cos", "add") == 0
    assert [e.prim.name for e in out.eqns] == ["exp", "mul"]


def test_dce_keeps_a_fully_live_function_unchanged():
    def body(x, y):
        a = ops.mul(x, y)
        return ops.add(a, x), ops.reduce_sum(a, (0,))

    fn = build(body, ((3, 4), "f64"), ((3, 4), "f64"))
    out = apply(dce, fn)
    assert out.eqns == fn.eqns


def test_dce_when_results_are_parameters_and_literals():
    def body(x):
        ops.tanh(x)
        return x, np.float64(2.5)

    fn = build(body, ((5,), "f32"))
    out = apply(dce, fn)
    assert out.eqns == ()
    assert out.results[0] is out.params[0] and isinstance(out.results[1], Literal)


# ---------------------------------------------------------------------------------------------
# cse


BINARY_CASES = {
    # name: (op, dtype, commutative)
    "add": (ops.add, "f64", True), "mul": (ops.mul, "f64", True),
    # max and min are not: np.maximum(0.0, -0.0) is -0.0 but np.maximum(-0.0, 0.0) is 0.0
    "max": (ops.max, "f64", False), "min": (ops.min, "f32", False),
    "eq": (ops.eq, "f64", True), "ne": (ops.ne, "f64", True),
    "and": (ops.and_, "i32", True), "or": (ops.or_, "bool", True),
    "xor": (ops.xor, "i64", True),
    "sub": (ops.sub, "f64", False), "div": (ops.div, "f64", False),
    "pow": (ops.pow, "f64", False), "lt": (ops.lt, "f64", False),
    "le": (ops.le, "f32", False), "gt": (ops.gt, "i32", False),
    "ge": (ops.ge, "f64", False), "mod": (ops.mod, "i64", False),
}


@pytest.mark.parametrize("name", sorted(BINARY_CASES))
def test_cse_merges_swapped_operands_only_for_commutative_primitives(name):
    op, dtype, commutative = BINARY_CASES[name]
    fn = build(lambda x, y: (op(x, y), op(y, x), op(x, y)), ((3, 4), dtype), ((3, 4), dtype))
    assert count(fn, name) == 3
    out = apply(cse, fn)
    assert count(out, name) == (1 if commutative else 2)
    assert out.results[0] is out.results[2]
    assert (out.results[0] is out.results[1]) == commutative


def test_cse_cascades_through_merged_operands():
    fn = build(lambda x: ops.add(ops.sin(ops.exp(x)), ops.sin(ops.exp(x))), ((6,), "f64"))
    out = apply(cse, fn)
    assert count(out, "exp") == 1 and count(out, "sin") == 1
    add = producer(out, out.results[0])
    assert add.inputs[0] is add.inputs[1]


@pytest.mark.parametrize("name", ["add", "mul", "max"])
def test_cse_keeps_literals_that_differ_only_in_the_sign_of_zero(name):
    op, _, commutative = BINARY_CASES[name]
    fn = build(lambda x: (op(x, 0.0), op(x, -0.0), op(-0.0, x)), ((9,), "f64"))
    out = apply(cse, fn)
    assert count(out, name) == (2 if commutative else 3)
    assert (out.results[1] is out.results[2]) == commutative
    assert out.results[0] is not out.results[1]
    # At x = -0.0 the two really differ: -0.0 + 0.0 = +0.0, -0.0 + -0.0 = -0.0.
    if name == "add":
        x = np.array([-0.0] * 9)
        plus, minus, _ = tj.interpret(out, [x])
        assert not np.signbit(plus).any() and np.signbit(minus).all()
        assert_identical(plus, x + 0.0)
        assert_identical(minus, x + -0.0)


def test_cse_merges_equal_literals_nan_included():
    fn = build(lambda x: (ops.mul(x, 2.0), ops.mul(x, 2.0), ops.add(x, np.nan),
                          ops.add(np.nan, x)), ((4,), "f64"))
    out = apply(cse, fn)
    assert count(out, "mul") == 1 and count(out, "add") == 1


@pytest.mark.parametrize("name, make", [
    ("reduce_sum", lambda x: (ops.reduce_sum(x, (0,)), ops.reduce_sum(x, (1,)))),
    ("transpose", lambda x: (ops.transpose(x, (1, 0, 2)), ops.transpose(x, (0, 2, 1)))),
    ("cast", lambda x: (ops.cast(x, "f32"), ops.cast(x, "i64"))),
    ("slice", lambda x: (ops.slice(x, (0, 0, 0), (1, 1, 1), (1, 3, 4)),
                         ops.slice(x, (1, 0, 0), (1, 1, 1), (1, 3, 4)))),
])
def test_cse_keeps_equations_whose_params_differ(name, make):
    fn = build(make, ((2, 3, 4), "f64"))
    assert count(apply(cse, fn), name) == 2


def test_cse_merges_equal_constants_and_keeps_different_ones():
    a = np.arange(4.0)

    def body(x):
        return (bind(P.add, x, a), bind(P.add, x, a.copy()), bind(P.add, x, a + 1.0))

    fn = build(body, ((4,), "f64"))
    assert count(fn, "constant") == 3
    out = apply(cse, fn)
    assert count(out, "constant") == 2 and count(out, "add") == 2
    assert out.results[0] is out.results[1] and out.results[2] is not out.results[0]


# ---------------------------------------------------------------------------------------------
# fold_constants


def folded(fn: Function) -> Function:
    """fold_constants (checked by `apply`), then dce."""
    return tj.verify(dce(apply(fold_constants, fn)))


def test_fold_uniform_array_becomes_broadcast_literal():
    fn = build(lambda x: ops.add(x, ops.mul(ops.full(Type((3, 4), "f64"), 2.0), 3.0)),
               ((3, 4), "f64"))
    out = folded(fn)
    assert count(out, "mul") == 0 and count(out, "constant") == 0
    (bcast,) = [e for e in out.eqns if e.prim is P.broadcast_in_dim]
    assert isinstance(bcast.inputs[0], Literal) and bcast.inputs[0].value == 6.0
    assert bcast.out.type == Type((3, 4), "f64")


def test_fold_scalar_result_becomes_a_literal():
    fn = build(lambda: ops.add(ops.mul(np.float32(2.0), np.float32(3.0)), np.float32(0.5)))
    out = folded(fn)
    assert out.eqns == ()
    (r,) = out.results
    assert isinstance(r, Literal) and r.value == np.float32(6.5) and r.dtype == "f32"


def test_fold_small_non_uniform_result_becomes_a_constant():
    values = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    fn = build(lambda x: ops.mul(x, bind(P.exp, values)), ((3, 4), "f64"))
    out = folded(fn)
    assert count(out, "exp") == 0
    (const,) = [e for e in out.eqns if e.prim is P.constant]
    assert_identical(const.params["value"], np.exp(values))


@pytest.mark.parametrize("size, folds", [(FOLD_LIMIT, True), (FOLD_LIMIT + 1, False)])
def test_fold_limit_on_non_uniform_results(size, folds):
    values = np.arange(float(size))
    fn = build(lambda x: ops.add(ops.reduce_sum(bind(P.sin, values), (0,)), x), ((), "f64"))
    out = apply(fold_constants, fn)
    assert count(out, "sin") == (0 if folds else 1)
    if folds:
        # The sum over the folded constant is folded too: one literal, computed by NumPy.
        add = producer(out, out.results[0])
        assert isinstance(add.inputs[0], Literal)
        assert add.inputs[0].value == np.sum(np.sin(values))


def test_fold_big_uniform_result_is_folded_whatever_its_size():
    fn = build(lambda x: ops.add(x, bind(P.exp, np.zeros(3 * FOLD_LIMIT))),
               ((3 * FOLD_LIMIT,), "f64"))
    out = folded(fn)
    assert count(out, "exp") == 0 and count(out, "constant") == 0
    (bcast,) = [e for e in out.eqns if e.prim is P.broadcast_in_dim]
    assert bcast.inputs[0].value == 1.0


def test_fold_never_folds_a_broadcast_literal_itself():
    fn = build(lambda x: (ops.full(Type((2, 3), "f64"), 1.0), ops.mul(x, 2.0)), ((2, 3), "f64"))
    out = apply(fold_constants, fn)
    assert out.eqns == fn.eqns


def test_fold_leaves_equations_with_a_runtime_operand():
    fn = build(lambda x: ops.mul(x, ops.full(Type((4,), "f64"), 2.0)), ((4,), "f64"))
    assert count(folded(fn), "mul") == 1


@pytest.mark.parametrize("make, bits", [
    (lambda: ops.neg(ops.full(Type((3,), "f64"), 0.0)), "-0.0"),
    (lambda: ops.div(ops.full(Type((3,), "f32"), 0.0), np.float32(0.0)), "nan"),
    (lambda: ops.mul(ops.full(Type((3,), "f64"), -1e300), 1e300), "-inf"),
])
def test_fold_keeps_ieee_special_values(make, bits):
    out = folded(build(make))
    (bcast,) = out.eqns
    value = bcast.inputs[0].value
    want = np.float64(bits)
    assert (np.isnan(value) and np.isnan(want)) or (value == want
                                                    and np.signbit(value) == np.signbit(want))


def test_fold_tells_zeros_of_different_sign_apart():
    zeros = np.array([0.0, -0.0, 0.0])
    out = folded(build(lambda: ops.mul(bind(P.neg, zeros), 1.0)))
    (const,) = [e for e in out.eqns if e.prim is P.constant]
    assert_identical(const.params["value"], np.array([-0.0, 0.0, -0.0]))


def test_fold_integers_keep_their_dtype():
    out = folded(build(lambda: ops.floordiv(ops.full(Type((2, 2), "i32"), 7), np.int32(2))))
    (bcast,) = out.eqns
    assert bcast.inputs[0].value == 3 and bcast.inputs[0].dtype == "i32"


def test_fold_sum_of_broadcast_literal_is_what_the_program_computes():
    # np.sum of twelve 0.1s is not 12 * 0.1: folding evaluates the primitive itself.
    out = folded(build(lambda: ops.reduce_sum(ops.full(Type((3, 4), "f64"), 0.1), (0, 1))))
    (r,) = out.results
    assert r.value == np.sum(np.full((3, 4), 0.1))


# ---------------------------------------------------------------------------------------------
# simplify: exact identities


def cast_same(x):
    return bind(P.cast, x, dtype=ops.dtype_of(x))


IDENTITIES = {
    # name: (body, the primitives that must disappear)
    "x*1": (lambda x: ops.mul(x, 1.0), ("mul",)),
    "1*x": (lambda x: ops.mul(1.0, x), ("mul",)),
    "x*broadcast(1)": (lambda x: ops.mul(x, ops.full(ops.type_of(x), 1.0)),
                       ("mul", "broadcast_in_dim")),
    "x/1": (lambda x: ops.div(x, 1.0), ("div",)),
    "x**1": (lambda x: ops.pow(x, 1.0), ("pow",)),
    "x-0.0": (lambda x: ops.sub(x, 0.0), ("sub",)),
    "x+(-0.0)": (lambda x: ops.add(x, -0.0), ("add",)),
    "(-0.0)+x": (lambda x: ops.add(-0.0, x), ("add",)),
    "neg(neg(x))": (lambda x: ops.neg(ops.neg(x)), ("neg",)),
    "max(x,x)": (lambda x: ops.max(x, x), ("max",)),
    "min(x,x)": (lambda x: ops.min(x, x), ("min",)),
    "select(p,x,x)": (lambda x: ops.select(ops.gt(x, 0.0), x, x), ("select", "gt")),
    "select(true,x,y)": (lambda x: ops.select(np.True_, x, ops.exp(x)), ("select", "exp")),
    "select(false,y,x)": (lambda x: ops.select(ops.full(Type(ops.type_of(x).shape, "bool"),
                                                        False), ops.exp(x), x),
                          ("select", "exp")),
    "cast to same dtype": (cast_same, ("cast",)),
    "select(p & false, y, x)": (lambda x: ops.select(ops.and_(ops.gt(x, 0.0), False),
                                                     ops.exp(x), x), ("and", "select", "exp")),
    "select(false | p | true, x, y)": (lambda x: ops.select(
        ops.or_(ops.or_(False, ops.gt(x, 0.0)), True), x, ops.exp(x)), ("or", "select", "exp")),
    "transpose(transpose(x))": (lambda x: ops.transpose(ops.transpose(x, (1, 2, 0)), (2, 0, 1)),
                                ("transpose",)),
    "reshape(reshape(x))": (lambda x: ops.reshape(ops.reshape(x, (6, 4)), (2, 3, 4)),
                            ("reshape",)),
}


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", sorted(IDENTITIES))
def test_simplify_identity_returns_the_operand(name, dtype):
    body, gone = IDENTITIES[name]
    fn = build(body, ((2, 3, 4), dtype))
    assert count(fn, *gone) >= 1
    out = simplified(fn)
    assert count(out, *gone) == 0
    assert out.results[0] is out.params[0] and out.eqns == ()


@pytest.mark.parametrize("value", [True, False])
def test_simplify_select_of_a_known_predicate_fills_a_literal_branch(value):
    # select(known, 1.0, 2.0) of a shape: the chosen literal, filled (a broadcast, no select).
    def body(x):
        known = ops.or_(ops.gt(x, 0.0), True) if value else ops.and_(ops.gt(x, 0.0), False)
        return ops.add(ops.select(known, 1.0, 2.0), x)
    out = simplified(build(body, ((2, 3), "f64")))
    assert count(out, "select", "and", "or", "gt") == 0
    x = np.arange(6.0).reshape(2, 3) - 2
    np.testing.assert_array_equal(tj.interpret(out, [x])[0], x + (1.0 if value else 2.0))
    # p & true and p | false are p
    for keep in (lambda p: ops.and_(p, True), lambda p: ops.or_(False, p)):
        out = simplified(build(lambda x: ops.select(keep(ops.gt(x, 0.0)), x, 0.0),
                               ((2, 3), "f64")))
        assert count(out, "and", "or") == 0 and count(out, "select", "gt") == 2
        np.testing.assert_array_equal(tj.interpret(out, [x])[0], np.where(x > 0, x, 0.0))


def test_simplify_mul_by_minus_one_becomes_neg():
    out = simplified(build(lambda x: ops.mul(x, -1.0), ((12,), "f64")))
    assert [e.prim.name for e in out.eqns] == ["neg"]


def test_simplify_keeps_mul_by_one_that_broadcasts():
    # x has rank 0: x * ones(3) is an array, not x.
    fn = build(lambda x: ops.mul(x, ops.full(Type((3,), "f64"), 1.0)), ((), "f64"))
    out = simplified(fn)
    assert out.results[0] is not out.params[0] and out.out_types == (Type((3,), "f64"),)


# ---------------------------------------------------------------------------------------------
# simplify: the IEEE cases (signed zero, NaN, infinities), with and without fast_math


def special_vector(dtype):
    with np.errstate(over="ignore"):
        return np.array(SPECIAL, dtype=DTYPES[dtype])


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("body, numpy_body", [
    pytest.param(lambda x: ops.add(x, 0.0), lambda x: x + 0.0, id="x+0.0"),
    pytest.param(lambda x: ops.add(0.0, x), lambda x: 0.0 + x, id="0.0+x"),
    pytest.param(lambda x: ops.sub(x, -0.0), lambda x: x - (-0.0), id="x-(-0.0)"),
])
def test_x_plus_zero_is_kept_for_floats(body, numpy_body, dtype):
    fn = build(body, ((len(SPECIAL),), dtype))
    out = simplified(fn)
    assert count(out, "add", "sub") == 1
    x = special_vector(dtype)
    (got,) = tj.interpret(out, [x])
    assert_identical(got, numpy_body(x))
    assert not np.signbit(got[NEG_ZERO])        # -0.0 + 0.0 is +0.0


@pytest.mark.parametrize("dtype", ["i32", "i64"])
@pytest.mark.parametrize("body", [lambda x: ops.add(x, 0), lambda x: ops.add(0, x),
                                  lambda x: ops.sub(x, 0)], ids=["x+0", "0+x", "x-0"])
def test_x_plus_zero_is_removed_for_integers(body, dtype):
    out = simplified(build(body, ((3, 4), dtype)))
    assert out.eqns == () and out.results[0] is out.params[0]


def test_x_minus_x_is_zero_for_integers_only_without_fast_math():
    ints = simplified(build(lambda x: ops.sub(x, x), ((5,), "i32")))
    assert count(ints, "sub") == 0
    floats = simplified(build(lambda x: ops.sub(x, x), ((len(SPECIAL),), "f64")))
    assert count(floats, "sub") == 1
    (got,) = tj.interpret(floats, [special_vector("f64")])
    assert np.isnan(got[:3]).all()                          # nan, inf, -inf: nan


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_x_plus_zero_is_removed_with_fast_math(dtype):
    fn = build(lambda x: ops.add(x, 0.0), ((len(SPECIAL),), dtype))
    out = simplified(fn, fast_math=True, seeds=())          # not exact for x = -0.0
    assert out.eqns == () and out.results[0] is out.params[0]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("body", [lambda x: ops.mul(x, 0.0), lambda x: ops.mul(0.0, x),
                                  lambda x: ops.mul(x, ops.full(ops.type_of(x), 0.0))],
                         ids=["x*0", "0*x", "x*broadcast(0)"])
def test_x_times_zero_is_kept_without_fast_math(body, dtype):
    fn = build(body, ((len(SPECIAL),), dtype))
    out = simplified(fn)
    assert count(out, "mul") == 1
    x = special_vector(dtype)
    (got,) = tj.interpret(out, [x])
    with np.errstate(invalid="ignore"):
        assert_identical(got, x * np.asarray(0.0, x.dtype))
    assert np.isnan(got[:3]).all()                          # nan, inf, -inf times 0: nan
    assert np.signbit(got[MINUS_ONE])             # -1 * 0 is -0.0

    fast = simplified(fn, fast_math=True, seeds=())
    assert count(fast, "mul") == 0
    (got,) = tj.interpret(fast, [x])
    assert_identical(got, np.zeros_like(x))


def test_x_minus_x_is_zero_with_fast_math():
    fast = simplified(build(lambda x: ops.sub(x, x), ((4,), "f64")), fast_math=True, seeds=())
    assert count(fast, "sub") == 0
    (got,) = tj.interpret(fast, [np.array([np.nan, 1.0, np.inf, -2.0])])
    assert_identical(got, np.zeros(4))


JIT_CASES = {
    # name: (function, what fast_math may do to it: "exact", "sign of zero" or "zeros")
    "x+0.0": (lambda x: x + 0.0, "sign of zero"),
    "0.0+x": (lambda x: 0.0 + x, "sign of zero"),
    "x+(-0.0)": (lambda x: x + (-0.0), "exact"),
    "x-0.0": (lambda x: x - 0.0, "exact"),
    "x*1.0/1.0": (lambda x: x * 1.0 / 1.0, "exact"),
    "--x": (lambda x: -(-x), "exact"),
    "x*0.0": (lambda x: x * 0.0, "zeros"),
    "x-x": (lambda x: x - x, "zeros"),
}


@pytest.mark.parametrize("fast_math", [False, True])
@pytest.mark.parametrize("name", sorted(JIT_CASES))
def test_jit_matches_numpy_on_special_values(name, fast_math):
    """The whole pipeline through tj.jit gives NumPy's IEEE results bit for bit, except for
    the deviations fast_math documents (x + 0 -> x at -0.0; x * 0, x - x -> 0 at NaN, inf)."""
    f, deviation = JIT_CASES[name]
    x = special_vector("f64")
    got = tj.jit(f, fast_math=fast_math)(x)
    with np.errstate(all="ignore"):
        want = f(x)
    if not fast_math or deviation == "exact":
        assert_identical(got, want)
    elif deviation == "zeros":
        assert_identical(got, np.zeros_like(x))
    else:
        np.testing.assert_array_equal(got, want)    # equal values, -0.0 may stay -0.0
        assert np.signbit(got[NEG_ZERO])


# ---------------------------------------------------------------------------------------------
# simplify: views


def test_transpose_of_transpose_composes_into_one():
    fn = build(lambda x: ops.transpose(ops.transpose(x, (1, 0, 2)), (0, 2, 1)),
               ((2, 3, 4), "f64"))
    out = simplified(fn)
    (t,) = out.eqns
    assert t.prim is P.transpose and t.inputs[0] is out.params[0]
    x = data((2, 3, 4), "f64")
    assert_identical(tj.interpret(out, [x])[0],
                     np.transpose(np.transpose(x, (1, 0, 2)), (0, 2, 1)))


def test_reshape_chain_becomes_one_reshape():
    fn = build(lambda x: ops.reshape(ops.reshape(ops.reshape(x, (6, 4)), (24,)), (4, 6)),
               ((2, 3, 4), "f64"))
    out = simplified(fn)
    assert count(out, "reshape") == 1 and out.eqns[0].inputs[0] is out.params[0]


def test_elementwise_work_moves_above_reshapes():
    # exp(reshape(x)) * reshape(y) + 1 -> reshape((exp(x) * y) + 1): the work in the source
    # shape, one reshape at the end.
    def body(x, y):
        return ops.add(ops.mul(ops.exp(ops.reshape(x, (12,))), ops.reshape(y, (12,))), 1.0)

    fn = build(body, ((3, 4), "f64"), ((3, 4), "f64"))
    out = simplified(fn)
    assert count(out, "reshape") == 1
    assert all(e.out.type.shape == (3, 4) for e in out.eqns if e.prim.category is P.ELEMENTWISE)
    assert producer(out, out.results[0]).prim is P.reshape


@pytest.mark.parametrize("shape, first, second", [
    ((4,), ((3, 4), (1,)), ((2, 3, 4), (1, 2))),
    ((1, 4), ((3, 4), (0, 1)), ((2, 3, 4), (1, 2))),          # a size-1 axis stretched
    ((3,), ((3, 1), (0,)), ((3, 5), (0, 1))),                 # stretched by the second
])
def test_broadcast_of_broadcast_composes_into_one(shape, first, second):
    fn = build(lambda x: ops.broadcast_in_dim(ops.broadcast_in_dim(x, *first), *second),
               (shape, "f64"))
    out = simplified(fn)
    (b,) = out.eqns
    assert b.prim is P.broadcast_in_dim and b.inputs[0] is out.params[0]
    x = data(shape, "f64")
    want = np.broadcast_to(np.broadcast_to(x.reshape(
        [x.shape[first[1].index(d)] if d in first[1] else 1 for d in range(len(first[0]))]),
        first[0]), second[0])
    assert_identical(tj.interpret(out, [x])[0], want)


# ---------------------------------------------------------------------------------------------
# simplify: reductions of broadcasts


@pytest.mark.parametrize("dtype", ["f64", "i64"])
@pytest.mark.parametrize("target, dims, axes", [
    ((3, 4), (1,), (0,)),
    ((3, 4, 5), (1,), (0, 2)),
    ((3, 4, 5), (1,), (0,)),                  # the result is still a broadcast of x
    ((2, 4, 3), (1,), (0, 2)),
])
def test_reduce_sum_of_broadcast_becomes_mul_by_count(target, dims, axes, dtype):
    fn = build(lambda x: ops.reduce_sum(ops.broadcast_in_dim(x, target, dims), axes),
               ((4,), dtype))
    out = simplified(fn, exact=False)
    assert count(out, "reduce_sum") == 0
    (mul,) = [e for e in out.eqns if e.prim is P.mul]
    n = int(np.prod([target[a] for a in axes]))
    assert isinstance(mul.inputs[1], Literal) and mul.inputs[1].value == n
    x = np.array([1.5, -2.0, 3.0, 0.25]) if dtype == "f64" else np.array([1, -2, 3, 7])
    view = np.broadcast_to(x.reshape([4 if d in dims else 1 for d in range(len(target))]),
                           target)
    want = np.sum(view, axis=axes)
    assert_identical(tj.interpret(out, [x])[0], want)


def test_reduce_sum_over_an_empty_broadcast_axis_is_zero():
    # 0 * x is NaN for infinite x and -0.0 for negative x; the sum of nothing is +0.0.
    fn = build(lambda x: ops.reduce_sum(ops.broadcast_in_dim(x, (0, 9), (1,)), (0,)),
               ((9,), "f64"))
    out = simplified(fn)
    assert count(out, "reduce_sum", "mul") == 0
    x = special_vector("f64")
    want = np.sum(np.broadcast_to(x, (0, 9)), axis=0)
    assert_identical(tj.interpret(out, [x])[0], want)
    assert_identical(tj.jit(lambda x: np.sum(np.broadcast_to(x, (0, 9)), axis=0))(x), want)


@pytest.mark.parametrize("name", ["reduce_max", "reduce_min"])
def test_reduce_max_min_of_broadcast_is_the_source(name):
    reduce = getattr(ops, name)
    fn = build(lambda x: reduce(ops.broadcast_in_dim(x, (3, 9, 2), (1,)), (0, 2)),
               ((9,), "f64"))
    out = simplified(fn)
    assert out.eqns == () and out.results[0] is out.params[0]
    x = special_vector("f64")
    assert_identical(tj.interpret(out, [x])[0], x)


def test_reduce_over_a_source_axis_is_kept():
    fn = build(lambda x: ops.reduce_sum(ops.broadcast_in_dim(x, (3, 4), (1,)), (1,)),
               ((4,), "f64"))
    assert count(simplified(fn), "reduce_sum") == 1


# ---------------------------------------------------------------------------------------------
# simplify on gradients: the seed literal of autodiff disappears


def seed_muls(fn: Function) -> list:
    """The `mul` equations of a runtime value by the literal 1.0 or a broadcast of it."""
    ones = {e.out for e in fn.eqns if e.prim is P.broadcast_in_dim
            and isinstance(e.inputs[0], Literal) and e.inputs[0].value == 1.0}
    constant = {e.out for e in fn.eqns if e.prim is P.broadcast_in_dim
                and isinstance(e.inputs[0], Literal)}

    def is_one(a):
        return a in ones or (isinstance(a, Literal) and a.value == 1.0)

    return [e for e in fn.eqns if e.prim is P.mul and any(is_one(a) for a in e.inputs)
            and any(isinstance(a, Var) and a not in constant for a in e.inputs)]


LOSSES = {
    "sum of tanh squared": (lambda x: np.sum(np.tanh(x) ** 2),
                            lambda x: 2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    "sum of sin times cos": (lambda x: np.sum(np.sin(x) * np.cos(x)),
                             lambda x: np.cos(x) ** 2 - np.sin(x) ** 2),
    "sum of x exp(x)": (lambda x: np.sum(x * np.exp(x)), lambda x: (1.0 + x) * np.exp(x)),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_grad_seed_literal_disappears(name):
    loss, analytic = LOSSES[name]
    x = np.random.default_rng(0).standard_normal((3, 4))
    gfn = tj.trace(tj.grad(loss), x)
    assert seed_muls(gfn), "the traced gradient should multiply by the seed"
    # simplify alone removes every multiplication of a runtime value by the seed (what may
    # stay, like `broadcast 1.0 * 3.0`, is constant arithmetic for fold_constants) ...
    assert seed_muls(simplified(gfn, exact=False)) == []
    # ... and after the pipeline no broadcast literal is left at all.
    opt = optimize(gfn, verify_each=True)
    assert seed_muls(opt) == [] and count(opt, "broadcast_in_dim") == 0
    np.testing.assert_allclose(tj.interpret(opt, [x])[0], analytic(x), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# the pipeline


def test_pipeline_order_and_fast_math_variant():
    names = [n for n, _ in PIPELINE]
    assert names == [n for n, _ in pipeline(False)] == [n for n, _ in pipeline(True)]
    assert names[:2] == ["inline_calls", "dce"] and names[-1].startswith("dce")
    fn = build(lambda x: ops.add(ops.mul(x, 0.0), 0.0), ((3,), "f64"))
    assert count(optimize(fn, pipeline(False), verify_each=True), "mul", "add") == 2
    assert count(optimize(fn, pipeline(True), verify_each=True), "mul", "add") == 0


def test_optimize_is_the_passes_in_order():
    def body(x, y):
        a = ops.mul(ops.exp(x), 1.0)
        b = ops.mul(y, ops.exp(x))
        return ops.add(ops.transpose(ops.transpose(a, (1, 0)), (1, 0)), ops.mul(ops.exp(x), y)), b

    fn = build(body, ((3, 4), "f64"), ((3, 4), "f64"))
    step = fn
    for _, p in PIPELINE:
        step = apply(p, step)
    opt = optimize(fn, verify_each=True)
    assert str(opt) == str(step)
    assert count(opt, "exp") == 1 and count(opt, "mul") == 1 and count(opt, "transpose") == 0


def test_every_pass_is_idempotent_on_its_own_output():
    fn = tj.trace(tj.grad(lambda x, y: np.sum(np.maximum(x @ y, 0.0) ** 2)),
                  np.ones((3, 4)), np.ones((4, 5)))
    once = optimize(fn, verify_each=True)
    for name, p in PIPELINE:
        assert str(apply(p, once)) == str(once), name
