"""The IR itself: the printer (golden text, literal formatting), the verifier (accepts traced
and differentiated functions, rejects hand-built broken ones), the reference interpreter's
argument and result-type checks, Spec parsing, source locations on equations, and the pytree
module (flatten/unflatten round trips, dict-key ordering, tree_map).
"""

from __future__ import annotations

import os
from collections import namedtuple

import numpy as np
import pytest

import tracejit as tj
from tracejit import primitives as P
from tracejit.interpreter import InterpreterError
from tracejit.ir import Eqn, Function, Literal, SourceLoc, Type, Var, VerifyError
from tracejit.pytree import TreeDef, flatten, tree_map, unflatten

HERE = os.path.abspath(__file__)


def rand(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def line_of(marker: str) -> int:
    """The line number of the one line of this file that ends with `# L:<marker>`."""
    with open(HERE) as f:
        hits = [i for i, text in enumerate(f, 1) if text.rstrip().endswith(f"# L:{marker}")]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


# ---------------------------------------------------------------------------------------------
# printer


def small(x, w):
    h = np.maximum(x @ w, 0.0)
    return np.sum(h * 2.0)


SMALL_TEXT = """\
func @small(%0: f32[3,4], %1: f32[4,2]) -> f32[] {
  %2 = dot %0, %1 contract=((1),(0)) : f32[3,2]
  %3 = max %2, 0.0                   : f32[3,2]
  %4 = mul %3, 2.0                   : f32[3,2]
  %5 = reduce_sum %4 axes=(0,1)      : f32[]
  return %5
}"""


def test_printer_golden():
    fn = tj.trace(small, tj.Spec((3, 4), "f32"), tj.Spec((4, 2), "f32"))
    assert str(fn) == SMALL_TEXT
    assert fn.format(locations=False) == SMALL_TEXT


def multi_out(x, n):
    return x + 1, (n * 2, {"k": x})


MULTI_TEXT = """\
func @multi_out(%0: f64[], %1: i32[2]) -> (f64[], i32[2], f64[]) {
  %2 = add %0, 1.0 : f64[]
  %3 = mul %1, 2   : i32[2]
  return %2, %3, %0
}"""


def test_printer_golden_several_results_and_python_number_argument():
    assert str(tj.trace(multi_out, 1.5, np.ones(2, np.int32))) == MULTI_TEXT


def test_printer_locations():
    fn = tj.trace(small, rand((3, 4)), rand((4, 2)))
    lines = fn.format(locations=True).splitlines()
    body = lines[1:-2]
    assert len(body) == len(fn.eqns) == 4
    line_of_h = small.__code__.co_firstlineno + 1
    line_of_ret = small.__code__.co_firstlineno + 2
    for text, want in zip(body, [line_of_h, line_of_h, line_of_ret, line_of_ret]):
        assert text.endswith(f"# {os.path.basename(HERE)}:{want}"), text
    # Without the locations the text is the golden one.
    assert [ln.split("#")[0].rstrip() for ln in lines] == SMALL_TEXT.splitlines()


@pytest.mark.parametrize("value, text", [
    (np.float32(0.1), "0.1"),
    (np.float64(0.1), "0.1"),
    (np.float32(-0.0), "-0.0"),
    (np.float64(0.0), "0.0"),
    (np.float32(3.0), "3.0"),
    (np.float32(np.inf), "inf"),
    (np.float64(-np.inf), "-inf"),
    (np.float32(np.nan), "nan"),
    (np.float64(np.nan), "nan"),
    (np.bool_(True), "true"),
    (np.bool_(False), "false"),
    (np.int32(-3), "-3"),
    (np.int64(2**40), "1099511627776"),
])
def test_literal_formatting(value, text):
    lit = Literal(value)
    assert str(lit) == text
    assert lit.type == Type((), {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
                                  np.dtype(np.bool_): "bool", np.dtype(np.int32): "i32",
                                  np.dtype(np.int64): "i64"}[value.dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_literal_text_reads_back_exactly(dtype):
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-30, 30, 200),
                             [1e-45 if dtype is np.float32 else 5e-324, 1 / 3, 2.0 ** 100]])
    for v in values.astype(dtype):
        text = str(Literal(v))
        assert len(text) <= 24, text
        assert dtype(float(text)).tobytes() == v.tobytes(), (v, text)


def literal_fn(x):
    return np.where(x > 1.0, x * 0.1 + (-0.0), np.inf), x * np.nan, np.where(x > 0, True, x < 2)


LITERAL_TEXT = """\
func @literal_fn(%0: f32[2]) -> (f32[2], f32[2], bool[2]) {
  %1 = gt %0, 1.0          : bool[2]
  %2 = mul %0, 0.1         : f32[2]
  %3 = add %2, -0.0        : f32[2]
  %4 = select %1, %3, inf  : f32[2]
  %5 = mul %0, nan         : f32[2]
  %6 = gt %0, 0.0          : bool[2]
  %7 = lt %0, 2.0          : bool[2]
  %8 = select %6, true, %7 : bool[2]
  return %4, %5, %8
}"""


def test_literals_in_printed_function():
    assert str(tj.trace(literal_fn, tj.Spec((2,), "f32"))) == LITERAL_TEXT


# ---------------------------------------------------------------------------------------------
# verifier


def mlp_loss(w1, w2, x):
    h = np.tanh(x @ w1)
    return np.mean((h @ w2) ** 2)


MLP_ARGS = (rand((4, 3), seed=1), rand((3, 2), seed=2), rand((5, 4), seed=3))

VALID = {
    "traced": lambda: tj.trace(mlp_loss, *MLP_ARGS),
    "grad": lambda: tj.trace(tj.grad(mlp_loss, argnums=(0, 1)), *MLP_ARGS),
    "value_and_grad": lambda: tj.trace(tj.value_and_grad(mlp_loss), *MLP_ARGS),
    "grad_of_grad": lambda: tj.trace(tj.grad(lambda v: np.sum(tj.grad(
        lambda u: np.sum(np.sin(u) * u))(v))), rand((3,), np.float64)),
    "jit_lower": lambda: tj.jit(tj.grad(mlp_loss)).lower(*MLP_ARGS),
    "indexing": lambda: tj.trace(lambda x: x[1:, ::-1][[0, 1, 0]].T @ x[:, :2],
                                 rand((3, 4))),
}


@pytest.mark.parametrize("name", VALID)
def test_verify_accepts(name):
    fn = VALID[name]()
    assert tj.verify(fn) is fn


def test_verified_grad_interprets_to_finite_differences():
    w1, w2, x = (a.astype(np.float64) for a in MLP_ARGS)
    fn = tj.verify(tj.trace(tj.grad(mlp_loss), w1, w2, x))
    (g,) = tj.interpret(fn, [w1, w2, x])
    eps, want = 1e-6, np.zeros_like(w1)
    for i in np.ndindex(w1.shape):
        e = np.zeros_like(w1)
        e[i] = eps
        want[i] = (mlp_loss(w1 + e, w2, x) - mlp_loss(w1 - e, w2, x)) / (2 * eps)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-9)


F3 = Type((3,), "f32")


def one(v):
    return Literal(np.float32(v))


def broken_use_before_def():
    a, b, c = Var(F3), Var(F3), Var(F3)
    return Function("f", (a,), (Eqn(P.add, (a, c), b), Eqn(P.neg, (a,), c)), (b,))


def broken_undefined_result():
    a, b = Var(F3), Var(F3)
    return Function("f", (a,), (), (b,))


def broken_wrong_output_type():
    a, b = Var(F3), Var(Type((3,), "f64"))
    return Function("f", (a,), (Eqn(P.exp, (a,), b),), (b,))


def broken_wrong_output_shape():
    a, b = Var(F3), Var(Type((1, 3), "f32"))
    return Function("f", (a,), (Eqn(P.mul, (a, one(2.0)), b),), (b,))


def broken_duplicate_definition():
    a, b = Var(F3), Var(F3)
    return Function("f", (a,), (Eqn(P.neg, (a,), b), Eqn(P.exp, (b,), b)), (b,))


def broken_param_redefined():
    a = Var(F3)
    return Function("f", (a,), (Eqn(P.neg, (a,), a),), (a,))


def broken_param_twice():
    a, b = Var(F3), Var(F3)
    return Function("f", (a, a), (Eqn(P.neg, (a,), b),), (b,))


def broken_operand_types():
    a, b, c = Var(F3), Var(Type((3,), "i32")), Var(F3)
    return Function("f", (a, b), (Eqn(P.add, (a, b), c),), (c,))


def broken_bad_operand():
    a, b = Var(F3), Var(F3)
    return Function("f", (a,), (Eqn(P.add, (a, 1.0), b),), (b,))


BROKEN = {
    "use_before_def": (broken_use_before_def, "used before it is defined"),
    "undefined_result": (broken_undefined_result, "used before it is defined"),
    "wrong_output_type": (broken_wrong_output_type, "output typed f64[3], rule gives f32[3]"),
    "wrong_output_shape": (broken_wrong_output_shape, "output typed f32[1,3], rule gives f32[3]"),
    "duplicate_definition": (broken_duplicate_definition, "defined twice"),
    "param_redefined": (broken_param_redefined, "defined twice"),
    "param_twice": (broken_param_twice, "listed twice"),
    "operand_types": (broken_operand_types, "differ"),
    "bad_operand": (broken_bad_operand, "neither a Var nor a Literal"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_verify_rejects(name):
    build, needle = BROKEN[name]
    with pytest.raises(VerifyError) as ei:
        tj.verify(build())
    assert type(ei.value) is VerifyError
    assert needle in str(ei.value)
    if name != "param_twice":
        assert "@f" in str(ei.value)


def test_hand_built_function_verifies_and_runs():
    a, b, c = Var(F3), Var(F3), Var(Type((), "f32"))
    fn = Function("g", (a,), (Eqn(P.mul, (a, one(3.0)), b),
                              Eqn(P.reduce_sum, (b,), c, {"axes": (0,)})), (c, b))
    tj.verify(fn)
    assert str(fn).splitlines()[0] == "func @g(%0: f32[3]) -> (f32[], f32[3]) {"
    x = rand((3,))
    s, y = tj.interpret(fn, [x])
    np.testing.assert_allclose(y, x * np.float32(3.0), rtol=1e-6)
    assert s.dtype == np.float32 and s.shape == ()
    np.testing.assert_allclose(s, np.sum(x * np.float32(3.0)), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# interpreter


@pytest.mark.parametrize("args, needle", [
    ([rand((4, 4)), MLP_ARGS[1], MLP_ARGS[2]], "f32[4,3]"),                   # shape
    ([MLP_ARGS[0].astype(np.float64), MLP_ARGS[1], MLP_ARGS[2]], "float64"),   # dtype
    ([MLP_ARGS[0], MLP_ARGS[1]], "takes 3 arguments"),                         # count
])
def test_interpreter_rejects_wrong_arguments(args, needle):
    fn = tj.trace(mlp_loss, *MLP_ARGS)
    with pytest.raises(TypeError, match=needle.replace("[", r"\[")):
        tj.interpret(fn, args)


def test_interpreter_matches_numpy():
    fn = tj.trace(mlp_loss, *MLP_ARGS)
    (out,) = tj.interpret(fn, list(MLP_ARGS))
    want = mlp_loss(*MLP_ARGS)
    assert out.shape == () and out.dtype == want.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=2e-5)


def test_interpreter_flags_mistyped_equation():
    # The verifier rejects it too, but the interpreter must not trust the IR types either.
    fn = broken_wrong_output_type()
    with pytest.raises(InterpreterError, match=r"gave float32\(3,\), the IR says f64\[3\]"):
        tj.interpret(fn, [rand((3,))])


class _LyingPrimitive:
    """A primitive whose type rule says f32 but whose implementation computes float64: the
    verifier (which trusts type rules) accepts it, and only the interpreter can catch it."""

    name = "lying_exp"

    @staticmethod
    def type_rule(x):
        return x

    @staticmethod
    def impl(x):
        return np.exp(x.astype(np.float64))

    @staticmethod
    def format_params(params):
        return list(params.items())


def test_interpreter_flags_impl_that_disagrees_with_type_rule():
    a, b = Var(F3), Var(F3)
    fn = Function("liar", (a,), (Eqn(_LyingPrimitive(), (a,), b),), (b,))
    tj.verify(fn)
    with pytest.raises(InterpreterError) as ei:
        tj.interpret(fn, [rand((3,))])
    assert "lying_exp" in str(ei.value) and "f32[3]" in str(ei.value)


# ---------------------------------------------------------------------------------------------
# Spec


@pytest.mark.parametrize("text, shape, dtype", [
    ("f32[64,1000]", (64, 1000), "f32"),
    ("f64[]", (), "f64"),
    ("bool[1]", (1,), "bool"),
    ("i32[2,3,4]", (2, 3, 4), "i32"),
    ("i64[0,5]", (0, 5), "i64"),
])
def test_spec_parse_round_trips(text, shape, dtype):
    spec = tj.Spec.parse(text)
    assert spec == tj.Spec(shape, dtype)
    assert str(spec) == text
    assert tj.Spec.parse(str(spec)) == spec


def test_spec_parse_tolerates_spaces_and_numpy_names():
    assert tj.Spec.parse(" f32[ 3, 4 ] ") == tj.Spec((3, 4), "f32")
    assert tj.Spec.parse("float64[2]") == tj.Spec((2,), "f64")


@pytest.mark.parametrize("text", ["f32(3,4)", "f32[a]", "[3]", "f32[-1]", "f32[3"])
def test_spec_parse_rejects_malformed(text):
    with pytest.raises(ValueError, match="cannot read"):
        tj.Spec.parse(text)


@pytest.mark.parametrize("text", ["complex128[3]", "datetime64[2]", "complex64[1]"])
def test_spec_parse_rejects_unsupported_dtype(text):
    with pytest.raises(TypeError, match="not supported"):
        tj.Spec.parse(text)


def test_trace_accepts_specs_and_pytrees_of_specs():
    def f(params, x, k):
        return np.tanh(x @ params["w"] + params["b"]) * k, params["n"] + 1

    specs = ({"w": tj.Spec.parse("f32[4,3]"), "b": tj.Spec((3,), "f32"),
              "n": tj.Spec((2,), "i32")}, tj.Spec((5, 4), "f32"), 2.0)
    fn = tj.verify(tj.trace(f, *specs))
    assert [str(t) for t in fn.in_types] == ["f32[3]", "i32[2]", "f32[4,3]", "f32[5,4]", "f64[]"]
    assert [str(t) for t in fn.out_types] == ["f32[5,3]", "i32[2]"]
    params = {"w": rand((4, 3), seed=1), "b": rand((3,), seed=2),
              "n": np.arange(2, dtype=np.int32)}
    x = rand((5, 4), seed=3)
    y, n = tj.interpret(fn, [params["b"], params["n"], params["w"], x, np.float64(2.0)])
    want_y, want_n = f(params, x, 2.0)
    assert y.dtype == want_y.dtype and n.dtype == want_n.dtype
    np.testing.assert_allclose(y, want_y, rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(n, want_n)


def test_spec_and_array_trace_to_the_same_text():
    x = rand((3, 4))
    assert str(tj.trace(small, x, rand((4, 2)))) == \
        str(tj.trace(small, tj.Spec.parse("f32[3,4]"), tj.Spec.parse("f32[4,2]")))


def test_spec_cannot_be_run():
    with pytest.raises(TypeError, match="no data"):
        tj.jit(small)(tj.Spec((3, 4), "f32"), rand((4, 2)))


# ---------------------------------------------------------------------------------------------
# source locations


def located(x, w):
    a = np.exp(x)  # L:exp
    b = a @ w  # L:dot
    c = np.sum(b, axis=0)  # L:sum
    return c * 0.5  # L:mul


def test_every_equation_has_the_user_line():
    fn = tj.trace(located, rand((3, 4)), rand((4, 2)))
    expect = {"exp": line_of("exp"), "dot": line_of("dot"), "reduce_sum": line_of("sum"),
              "mul": line_of("mul")}
    assert sorted(e.prim.name for e in fn.eqns) == sorted(expect)
    for eqn in fn.eqns:
        assert isinstance(eqn.loc, SourceLoc)
        assert eqn.loc.file == HERE
        assert eqn.loc.function == "located"
        assert eqn.loc.line == expect[eqn.prim.name]
        assert str(eqn.loc) == f"{os.path.basename(HERE)}:{expect[eqn.prim.name]}"


def test_grad_equations_point_at_user_lines():
    fn = tj.trace(tj.grad(located_loss), rand((3, 4), np.float64), rand((4, 2), np.float64))
    lines = {line_of(m) for m in ("exp", "dot", "sum", "mul", "loss")}
    assert fn.eqns
    for eqn in fn.eqns:
        assert eqn.loc is not None and eqn.loc.file == HERE, eqn.loc
        assert eqn.loc.line in lines, eqn.loc


def located_loss(x, w):
    return np.sum(located(x, w) ** 2)  # L:loss


def test_jit_lower_keeps_locations():
    fn = tj.jit(located).lower(rand((3, 4)), rand((4, 2)))
    assert {e.loc.line for e in fn.eqns} == {line_of(m) for m in ("exp", "dot", "sum", "mul")}
    assert all(e.loc.file == HERE for e in fn.eqns)


# ---------------------------------------------------------------------------------------------
# pytree

Point = namedtuple("Point", "x y")

TREES = {
    "leaf": (np.ones(2), 1, "*"),
    "none": (None, 0, "None"),
    "empty_tuple": ((), 0, "()"),
    "empty_list": ([], 0, "[]"),
    "empty_dict": ({}, 0, "{}"),
    "one_tuple": ((1.0,), 1, "(*,)"),
    "nested": (((1, [2, 3]), {"b": 4, "a": (5, None)}), 5,
               "((*, [*, *]), {'a': (*, None), 'b': *})"),
    "namedtuple": (Point(np.zeros(3), [1, 2]), 3, "Point(*, [*, *])"),
    "int_keys": ({2: "two", 1: "one", 10: "ten"}, 3, "{1: *, 2: *, 10: *}"),
}


def same_tree(a, b):
    """Equal structure (including container classes) and leaves that are the same objects."""
    la, ta = flatten(a)
    lb, tb = flatten(b)
    return ta == tb and len(la) == len(lb) and all(x is y for x, y in zip(la, lb)) and \
        type(a) is type(b)


@pytest.mark.parametrize("name", TREES)
def test_flatten_unflatten_round_trip(name):
    tree, n, text = TREES[name]
    leaves, td = flatten(tree)
    assert len(leaves) == td.num_leaves == n
    assert str(td) == text
    rebuilt = unflatten(td, leaves)
    assert same_tree(rebuilt, tree)
    assert hash(td) == hash(flatten(tree)[1])


def test_dict_keys_are_sorted():
    leaves_ba, td_ba = flatten({"b": 1, "a": 2, "c": {"z": 3, "y": 4}})
    leaves_ab, td_ab = flatten({"a": 2, "c": {"y": 4, "z": 3}, "b": 1})
    assert leaves_ba == leaves_ab == [2, 1, 4, 3]
    assert td_ba == td_ab
    out = unflatten(td_ba, ["A", "B", "Y", "Z"])
    assert out == {"a": "A", "b": "B", "c": {"y": "Y", "z": "Z"}}
    assert list(out) == ["a", "b", "c"]


def test_structures_are_told_apart():
    defs = [flatten(t)[1] for t in [(1, 2), [1, 2], {"a": 1, "b": 2}, Point(1, 2), (1, (2,)),
                                    (1, None, 2), (1, 2, 3), {"a": 1, "c": 2}]]
    assert len(set(defs)) == len(defs)


def test_unflatten_checks_leaf_count():
    td = flatten((1, 2))[1]
    with pytest.raises(AssertionError, match="left over"):
        unflatten(td, [1, 2, 3])
    with pytest.raises((StopIteration, RuntimeError, ValueError)):
        unflatten(td, [1])


def test_unsortable_dict_keys():
    with pytest.raises(TypeError, match="sortable"):
        flatten({"a": 1, 2: 3})


def test_tree_map():
    a = {"w": np.arange(3.0), "b": (1.0, [np.ones(2)])}
    b = {"b": (2.0, [np.full(2, 3.0)]), "w": np.ones(3)}
    out = tree_map(lambda x, y: x * 10 + y, a, b)
    assert isinstance(out["b"], tuple) and isinstance(out["b"][1], list)
    np.testing.assert_array_equal(out["w"], np.arange(3.0) * 10 + 1)
    assert out["b"][0] == 12.0
    np.testing.assert_array_equal(out["b"][1][0], np.full(2, 13.0))
    assert tj.tree_map(lambda x: x + 1, Point(1, None)) == Point(2, None)
    with pytest.raises(ValueError, match="structures differ"):
        tree_map(lambda x, y: x, (1, 2), [1, 2])


def test_treedef_leaf_kind():
    assert flatten(3.0)[1] == TreeDef("leaf")
    assert flatten(np.float32(1))[1].kind == "leaf"
