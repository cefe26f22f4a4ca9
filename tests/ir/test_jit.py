"""tracejit.jit: pytrees of arguments and results, kwargs, static_argnums, the trace cache,
input immutability, nested jit and grad inside jit, unrolled Python loops, `lower`, `dump`,
and backend selection.

Every result is compared with calling the plain function on NumPy arrays.
"""

from __future__ import annotations

import copy
import os
from collections import namedtuple

import numpy as np
import pytest

import tracejit as tj
from tracejit.pytree import flatten
from npcheck import finite_differences

Params = namedtuple("Params", "w b")

TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=1e-6),
       np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14)}


def rand(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def assert_leaf_equal(got, want):
    """One result leaf: None stays None; arrays and scalars match in shape, dtype and value."""
    if want is None:
        assert got is None
        return
    want_arr = np.asarray(want)
    got_arr = np.asarray(got)
    assert got_arr.shape == want_arr.shape
    assert got_arr.dtype == want_arr.dtype, (got_arr.dtype, want_arr.dtype)
    if isinstance(want, np.ndarray) and want.ndim > 0:
        assert isinstance(got, np.ndarray)
    if want_arr.dtype.kind == "f":
        np.testing.assert_allclose(got_arr, want_arr, **TOL[want_arr.dtype])
    else:
        np.testing.assert_array_equal(got_arr, want_arr)


def assert_tree_equal(got, want):
    """Same pytree structure (container types and dict keys) and equal leaves."""
    got_leaves, got_tree = flatten(got)
    want_leaves, want_tree = flatten(want)
    assert got_tree == want_tree, (str(got_tree), str(want_tree))
    for g, w in zip(got_leaves, want_leaves):
        assert_leaf_equal(g, w)


def py_result(want):
    """What jit returns for a Python number result: a NumPy scalar of the default dtype."""
    return tj.tree_map(lambda v: np.asarray(v)[()] if isinstance(v, (bool, int, float)) else v,
                       want)


# ---------------------------------------------------------------------------------------------
# pytrees and kwargs


def nested_fn(tree, scale):
    (a, b), d, lst = tree
    return {"sum": a + b * scale,
            "list": [np.tanh(d["x"]), None, (d["n"] * 2, scale)],
            "t": (lst[0] @ lst[1].T,)}


def namedtuple_fn(p, x):
    y = x @ p.w + p.b
    return Params(w=np.maximum(y, 0.0), b=np.sum(y, axis=0))


def none_fn(x, nothing, pair):
    assert nothing is None
    return pair[1], None, x * pair[0]


def mixed_numbers_fn(x, k, s, flag):
    return x * s + k, k * 2, s / 4, np.where(x > 0, flag, False)


TREE_CASES = {
    "nested": (nested_fn, lambda: (
        ((rand((3, 4)), rand((3, 4), seed=1)),
         {"x": rand((2,), np.float64, 2), "n": np.arange(5, dtype=np.int32)},
         [rand((2, 3), seed=3), rand((4, 3), seed=4)]),
        np.float32(0.5))),
    "namedtuple": (namedtuple_fn, lambda: (
        Params(rand((4, 3)), rand((3,), seed=1)), rand((5, 4), seed=2))),
    "none": (none_fn, lambda: (rand((2, 2), np.float64), None, (3, rand((2,), seed=1)))),
    "python_numbers": (mixed_numbers_fn, lambda: (rand((3,)), 2, 0.25, True)),
}


@pytest.mark.parametrize("name", TREE_CASES)
def test_pytree_args_and_results(name):
    fn, make = TREE_CASES[name]
    args = make()
    got = tj.jit(fn)(*args)
    assert_tree_equal(got, py_result(fn(*args)))


BOOL_OPS = {
    "add_true": lambda x, flag: x + True,
    "and_flag": lambda x, flag: (x > 0) & flag,
    "or_const": lambda x, flag: True | (x > 0),
    "mul_flag": lambda x, flag: x * flag,
    "where_flag": lambda x, flag: np.where(flag, x, np.zeros_like(x)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
@pytest.mark.parametrize("name", BOOL_OPS)
def test_python_bool_operands(name, dtype):
    fn = BOOL_OPS[name]
    x = rand((4,), np.float64).astype(dtype)
    for flag in (True, False):
        assert_leaf_equal(tj.jit(fn)(x, flag), fn(x, flag))


def test_namedtuple_result_keeps_its_class():
    p, x = TREE_CASES["namedtuple"][1]()
    got = tj.jit(namedtuple_fn)(p, x)
    assert type(got) is Params


def test_dict_argument_key_order_does_not_matter():
    calls = []

    def f(d):
        calls.append(1)
        return d["a"] - d["b"]

    j = tj.jit(f)
    a, b = rand((3,)), rand((3,), seed=1)
    assert_leaf_equal(j({"a": a, "b": b}), a - b)
    assert_leaf_equal(j({"b": b, "a": a}), a - b)
    assert j.trace_count == 1 and len(calls) == 1


def kw_fn(x, *, scale, offset=None):
    y = x * scale
    return y if offset is None else y + offset["v"]


@pytest.mark.parametrize("kwargs", [
    dict(scale=3.0),
    dict(scale=np.float64(2.0)),
    dict(scale=rand((4,), seed=5), offset={"v": rand((3, 4), seed=6)}),
])
def test_kwargs(kwargs):
    x = rand((3, 4))
    assert_tree_equal(tj.jit(kw_fn)(x, **kwargs), kw_fn(x, **kwargs))


def test_kwarg_array_values_reuse_the_trace():
    j = tj.jit(kw_fn)
    x = rand((3, 4))
    for seed in range(3):
        s = rand((4,), seed=seed)
        assert_leaf_equal(j(x, scale=s), x * s)
    assert j.trace_count == 1


# ---------------------------------------------------------------------------------------------
# static_argnums


def repeat_fn(x, n):
    for _ in range(n):
        x = np.sin(x) * 1.5
    return x


def shape_fn(x, rows):
    return np.sum(x.reshape(rows, -1), axis=1)


@pytest.mark.parametrize("fn", [repeat_fn, shape_fn])
def test_static_argnums_values(fn):
    j = tj.jit(fn, static_argnums=1)
    x = rand((12,), np.float64)
    for n in (1, 2, 3, 4, 2):
        assert_leaf_equal(j(x, n), fn(x, n))
    assert j.trace_count == 4
    assert j.cache_size == 4


def test_static_argnums_decorator_and_tuple():
    @tj.jit(static_argnums=(0, 2))
    def f(n, x, axis):
        return np.sum(x ** n, axis=axis)

    x = rand((3, 4))
    for n, axis in [(2, 0), (3, 1), (2, 1), (2, 0)]:
        assert_leaf_equal(f(n, x, axis), np.sum(x ** n, axis=axis))
    assert f.trace_count == 3


def test_static_results_differ_per_value():
    j = tj.jit(repeat_fn, static_argnums=1)
    x = rand((5,))
    r1, r3 = j(x, 1), j(x, 3)
    assert not np.allclose(r1, r3)
    assert_leaf_equal(r1, repeat_fn(x, 1))
    assert_leaf_equal(r3, repeat_fn(x, 3))


@pytest.mark.parametrize("bad", [[1, 2], {"n": 1}, np.arange(3)])
def test_unhashable_static_raises_type_error(bad):
    j = tj.jit(lambda x, n: x, static_argnums=1)
    with pytest.raises(TypeError, match="hashable"):
        j(rand((2,)), bad)
    assert j.trace_count == 0


# ---------------------------------------------------------------------------------------------
# the cache


def counted(fn):
    """jit(fn) plus a list that grows on every Python-level trace of fn."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    wrapped.__name__ = fn.__name__
    return tj.jit(wrapped), calls


def affine(x, a):
    return x * a + 1.0


def test_repeat_call_does_not_retrace():
    j, calls = counted(affine)
    for seed in range(4):
        x = rand((3, 4), seed=seed)
        a = rand((4,), seed=seed + 10)
        assert_leaf_equal(j(x, a), affine(x, a))
    assert j.trace_count == 1 and len(calls) == 1 and j.cache_size == 1


@pytest.mark.parametrize("second", [
    lambda x, a: (rand((5, 4)), a),                              # new shape
    lambda x, a: (x.astype(np.float64), a),                      # new dtype
    lambda x, a: (x, a.astype(np.float64)),                      # new dtype, other argument
    lambda x, a: (x, 2),                                         # float array -> Python int
    lambda x, a: (x.astype(np.int32), a),                        # int input
], ids=["shape", "dtype", "dtype2", "pyint", "int32"])
def test_new_signature_retraces(second):
    j, calls = counted(affine)
    x, a = rand((3, 4)), rand((4,), seed=1)
    assert_leaf_equal(j(x, a), affine(x, a))
    x2, a2 = second(x, a)
    assert_leaf_equal(j(x2, a2), affine(x2, a2))
    assert j.trace_count == 2 and len(calls) == 2 and j.cache_size == 2
    assert_leaf_equal(j(x, a), affine(x, a))            # the first entry is still cached
    assert j.trace_count == 2


def test_new_pytree_structure_retraces():
    def f(xs):
        return sum(xs[i] * (i + 1) for i in range(len(xs)))

    j = tj.jit(f)
    a, b, c = rand((3,)), rand((3,), seed=1), rand((3,), seed=2)
    for args, count in [((a, b), 1), ((b, c), 1), ([a, b], 2), ((a, b, c), 3), ([b, a], 3)]:
        assert_leaf_equal(j(args), f(args))
        assert j.trace_count == count


def test_python_float_value_is_an_argument_not_a_constant():
    j, calls = counted(affine)
    x = rand((3, 4))
    for a in (0.5, -2.25, 1e-3, 0.0):
        got = j(x, a)
        assert_leaf_equal(got, affine(x, a))     # stays f32: a Python float is weak
    assert j.trace_count == 1 and len(calls) == 1


def test_python_int_value_does_not_retrace():
    j = tj.jit(lambda x, k: x + k)
    x = np.arange(4, dtype=np.int32)
    for k in (1, 7, -3):
        assert_leaf_equal(j(x, k), x + k)
    assert j.trace_count == 1


def test_numpy_scalar_argument_is_strong():
    j = tj.jit(affine)
    x = rand((3,))
    got = j(x, np.float64(0.5))
    assert got.dtype == np.float64
    assert_leaf_equal(got, affine(x, np.float64(0.5)))
    assert_leaf_equal(j(x, 0.5), affine(x, 0.5))
    assert j.trace_count == 2


# ---------------------------------------------------------------------------------------------
# inputs and outputs


def test_inputs_are_not_mutated():
    def f(p, xs):
        y = xs["x"] @ p.w + p.b
        return y, np.exp(xs["x"]), xs["n"] + 1

    args = (Params(rand((4, 2)), rand((2,), seed=1)),
            {"x": rand((3, 4), seed=2), "n": np.arange(3)})
    before = copy.deepcopy(args)
    got = tj.jit(f)(*args)
    for a, b in zip(flatten(args)[0], flatten(before)[0]):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert_tree_equal(got, f(*before))


def test_returned_input_is_a_new_array():
    x = rand((3, 4))
    keep = x.copy()
    j = tj.jit(lambda a, b: (a, b["k"]))
    got_a, got_k = j(x, {"k": x})
    for got in (got_a, got_k):
        assert got is not x
        assert not np.shares_memory(got, x)
        assert_leaf_equal(got, x)
    got_a[...] = 0.0                  # writing the result leaves the input alone
    np.testing.assert_array_equal(x, keep)


def test_scalar_results_are_numpy_scalars():
    x = rand((3, 4), np.float64)
    got = tj.jit(lambda a: (np.sum(a), np.max(a, axis=1)))(x)
    assert isinstance(got[0], np.float64)
    assert_tree_equal(got, (np.sum(x), np.max(x, axis=1)))


# ---------------------------------------------------------------------------------------------
# composition: nested jit, grad inside jit


def test_jit_inside_jit():
    inner = tj.jit(lambda a, b: np.tanh(a) * b)

    def outer(a, b):
        return inner(a, b) + inner(b, a) * 2.0

    x, y = rand((3, 4)), rand((3, 4), seed=1)
    want = np.tanh(x) * y + np.tanh(y) * x * 2.0
    assert_leaf_equal(tj.jit(outer)(x, y), want)
    assert_leaf_equal(outer(x, y), want)          # plain Python calling a jitted function


def test_jit_of_jit():
    f = tj.jit(tj.jit(lambda a: np.exp(a) - 1.0))
    x = rand((4,), np.float64)
    assert_leaf_equal(f(x), np.exp(x) - 1.0)


def loss(w, x, y):
    return np.mean((np.tanh(x @ w) - y) ** 2)


def test_grad_inside_jit_matches_finite_differences():
    w, x, y = rand((4, 2), np.float64), rand((6, 4), np.float64, 1), rand((6, 2), np.float64, 2)
    g = tj.jit(tj.grad(loss))(w, x, y)
    assert g.shape == w.shape and g.dtype == np.float64
    np.testing.assert_allclose(g, finite_differences(lambda v: loss(v, x, y), w), rtol=1e-6,
                               atol=1e-9)


def test_value_and_grad_step_inside_jit():
    @tj.jit
    def step(w, x, y, lr):
        value, g = tj.value_and_grad(loss)(w, x, y)
        return w - lr * g, value

    w, x, y = rand((4, 2), np.float64), rand((6, 4), np.float64, 1), rand((6, 2), np.float64, 2)
    new_w, value = step(w, x, y, 0.1)
    np.testing.assert_allclose(value, loss(w, x, y), rtol=1e-12)
    want = w - 0.1 * finite_differences(lambda v: loss(v, x, y), w)
    np.testing.assert_allclose(new_w, want, rtol=1e-6, atol=1e-9)
    assert step.trace_count == 1
    step(w, x, y, 0.2)
    assert step.trace_count == 1


def test_jitted_calls_jitted_under_grad():
    inner = tj.jit(lambda v: np.sin(v) * v)
    f = lambda v: np.sum(inner(v) ** 2)                       # noqa: E731
    x = rand((5,), np.float64)
    g = tj.jit(tj.grad(f))(x)
    np.testing.assert_allclose(g, finite_differences(lambda v: np.sum((np.sin(v) * v) ** 2), x),
                               rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Python control flow that unrolls


def rnn(xs, h0, w):
    h = h0
    outs = []
    for t in range(xs.shape[0]):
        h = np.tanh(h @ w + xs[t])
        outs.append(h)
    return h, np.stack(outs)


def test_python_loop_over_shape_unrolls():
    xs, h0, w = rand((5, 3), seed=0), rand((3,), seed=1), rand((3, 3), seed=2) * 0.5
    j = tj.jit(rnn)
    assert_tree_equal(j(xs, h0, w), rnn(xs, h0, w))
    fn = j.lower(xs, h0, w)
    assert sum(e.prim.name == "tanh" for e in fn.eqns) == xs.shape[0]
    xs7 = rand((7, 3), seed=3)
    assert_tree_equal(j(xs7, h0, w), rnn(xs7, h0, w))
    assert j.trace_count == 2


# ---------------------------------------------------------------------------------------------
# lower, dump, backends


def mlp(params, x):
    h = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    return np.sum(h @ params["w2"]) * 0.5


MLP_ARGS = ({"w1": rand((4, 8), seed=1), "b1": rand((8,), seed=2), "w2": rand((8, 2), seed=3)},
            rand((5, 4), seed=4))


def test_lower_verifies_and_interprets_to_the_same_values():
    j = tj.jit(mlp)
    fn = j.lower(*MLP_ARGS)
    assert isinstance(fn, tj.Function)
    tj.verify(fn)
    leaves = flatten(MLP_ARGS)[0]
    assert [p.type for p in fn.params] == [tj.Type(a.shape, "f32") for a in leaves]
    (out,) = tj.interpret(fn, leaves)
    assert_leaf_equal(out[()], mlp(*MLP_ARGS))
    assert_leaf_equal(j(*MLP_ARGS), mlp(*MLP_ARGS))
    assert j.trace_count == 1                        # lower filled the cache the call used


def test_lower_of_grad_verifies():
    fn = tj.jit(tj.grad(mlp)).lower(*MLP_ARGS)
    tj.verify(fn)
    outs = tj.interpret(fn, flatten(MLP_ARGS)[0])
    assert [o.shape for o in outs] == [a.shape for a in flatten(MLP_ARGS[0])[0]]


def test_dump_names_the_user_file():
    stages = tj.jit(mlp).dump(*MLP_ARGS)
    assert isinstance(stages, dict) and "traced" in stages
    assert all(isinstance(v, str) for v in stages.values())
    assert os.path.basename(__file__) in stages["traced"]
    assert stages["traced"].startswith("func @mlp(")


def test_dump_accepts_specs():
    stages = tj.jit(affine).dump(tj.Spec((3, 4), "f32"), tj.Spec.parse("f32[4]"))
    assert "func @affine(%0: f32[3,4], %1: f32[4]) -> f32[3,4]" in stages["traced"]


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        tj.jit(affine, backend="tpu")


def test_default_backend_is_cpu_and_interpret_agrees():
    x, a = rand((2, 3)), rand((3,), seed=1)
    assert tj.jit(affine).backend == "cpu"
    assert_leaf_equal(tj.jit(affine)(x, a), affine(x, a))
    assert_leaf_equal(tj.jit(affine, backend="interpret")(x, a), affine(x, a))


def test_to_host_fetches_device_arrays_and_keeps_host_values():
    class Device:                         # a stand-in for a pycuda GPUArray
        gpudata = 0

        def __init__(self, a):
            self.a, self.shape, self.dtype = a, a.shape, a.dtype

        def get(self):
            return self.a.copy()

    x, s = rand((2, 3)), np.float32(2.5)
    out = tj.to_host({"x": Device(x), "pair": (s, [x])})
    np.testing.assert_array_equal(out["x"], x)
    assert type(out["x"]) is np.ndarray and out["pair"][0] is s and out["pair"][1][0] is x
