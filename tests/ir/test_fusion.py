"""The fusion planner (tracejit.fusion.plan via `jit(f).program(...)`): which equations share a
kernel, how views become index maps, and that fused and unfused programs compute what NumPy
computes.

Structure is checked by counting kernels by kind, reading their loads (index maps, distinct
sources) and their bodies; numbers by running the jitted function (the kernel interpreter)
fused and with `fuse=False` against NumPy, hand-written NumPy backpropagation, or central
finite differences in float64 for gradients. Program-wide invariants (loads in bounds, kernels
in dependency order, arithmetic computed once) are checked over a corpus of programs.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracejit as tj
from npcheck import numpy_result
from tracejit.ir import Literal, Var
from tracejit import primitives as P
from tracejit.kernels import IndexMap

RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in leaves(t)]
    return [tree]


def assert_close(got, want, rtol=None):
    """Same dtype and shape; values within rtol of the largest magnitude (dots reassociate)."""
    for g, w in zip(leaves(got), leaves(want), strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        if w.dtype.kind == "f":
            tol = RTOL[w.dtype] if rtol is None else rtol
            scale = float(np.max(np.abs(w))) if w.size else 0.0
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale)
        else:
            np.testing.assert_array_equal(g, w)


def check_numbers(f, *args, want=None, rtol=None):
    """`jit(f)` fused and unfused against `want` (default: f run by NumPy)."""
    want = numpy_result(f, *args) if want is None else want
    for fuse in (True, False):
        assert_close(tj.jit(f, fuse=fuse)(*args), want, rtol)
    return want


def program(f, *args, fuse=True):
    return tj.jit(f, fuse=fuse).program(*args)


def kinds(prog):
    return [k.kind for k in prog.kernels]


def load_sources(kernel):
    return Counter(ld.src for ld in kernel.loads)


def is_source(eqn):
    """Equations the planner may recompute in every kernel: fills, iota, constants."""
    return eqn.prim.name in ("iota", "constant") or (
        eqn.prim.name == "broadcast_in_dim" and isinstance(eqn.inputs[0], Literal))


def is_scalar_work(eqn):
    """Elementwise work on rank-0 values, which the planner may recompute where it is used."""
    return eqn.prim.category is P.ELEMENTWISE and eqn.out.type.shape == ()


def check_invariants(prog):
    """Every load reads a buffer that exists by then, within its bounds, typed like its view;
    every buffer is written once; every result is available at the end; every equation that
    is arithmetic runs in exactly one kernel, and no view or source runs twice outside loops."""
    fn = prog.fn
    available = set(fn.params) | {c.out for c in prog.constants}
    for k in prog.kernels:
        for ld in k.loads:
            assert ld.src in available, f"{k.name} reads a buffer no earlier kernel wrote"
            assert ld.dst.type.shape == ld.imap.shape
            assert ld.dst.type.dtype == ld.src.type.dtype
            if 0 not in ld.imap.shape:
                lo, hi = ld.imap.bounds()
                assert 0 <= lo <= hi < ld.src.type.size, (k.name, ld.imap, ld.src.type)
        assert set(k.inputs) == {ld.src for ld in k.loads}
        for v in k.outputs:
            assert v not in available, f"{k.name} writes a buffer written before"
        available |= set(k.outputs)
    for r in fn.results:
        assert isinstance(r, Literal) or r in available
    computed = Counter(e.out for k in prog.kernels for e in k.body)
    for e in fn.eqns:
        if e.prim.name == "constant":
            assert computed[e.out] == 0
        elif e.prim.category is P.VIEW and not is_source(e):
            assert computed[e.out] <= 1
        elif is_scalar_work(e):
            assert computed[e.out] >= 1
        elif not is_source(e):
            assert computed[e.out] == 1, f"{e.prim.name} computed {computed[e.out]} times"
    # Each kernel's `eqns` are the function's equations it computes, once over the program.
    owners = Counter(e for k in prog.kernels for e in k.eqns)
    assert all(n == 1 for n in owners.values())
    for k in prog.kernels:
        check_phases(k)


def check_phases(k):
    """Inside a loop or dot kernel: work over the whole domain never uses a reduction's result
    (complete only after the loop); epilogues run over the kept axes; a dot's prologue is
    exactly the work that feeds its operands."""
    if k.kind not in ("loop", "dot"):
        return
    phase = {e.out: k.phase(e) for e in k.body}
    kept = tuple(n for d, n in enumerate(k.domain) if d not in k.reduce_axes)
    feeds = set(k.dot.inputs) if k.dot is not None else set()
    for e in reversed(k.body):
        if e.out in feeds:
            feeds.update(e.inputs)
    for e in k.body:
        p = phase[e.out]
        used = {phase.get(a) for a in e.inputs if isinstance(a, Var)}
        if p in ("full", "prologue", "dot", "reduce"):
            assert not used & {"reduce", "epilogue"}, (k.name, e.prim.name, p)
        if p == "epilogue":
            assert e.out.type.shape in (kept, ()), (k.name, e.prim.name)
        if p == "full" and e.out.type.shape != ():
            assert e.out.type.shape == k.domain, (k.name, e.prim.name)
        assert (p == "prologue") == (e.out in feeds and e is not k.dot), (k.name, e.prim.name)


# ---------------------------------------------------------------------------------------------
# W5: sum((tanh(x) * y + z) ** 2)


def w5(x, y, z):
    return np.sum((np.tanh(x) * y + z) ** 2)


def w5_grads(x, y, z):
    """The analytic gradients of w5, in NumPy."""
    t = np.tanh(x)
    r = t * y + z
    return 2 * r * y * (1 - t * t), 2 * r * t, 2 * r


def central_difference(f, args, argnum, index, eps=1e-6):
    plus = [np.array(a, copy=True) for a in args]
    minus = [np.array(a, copy=True) for a in args]
    plus[argnum][index] += eps
    minus[argnum][index] -= eps
    return (f(*plus) - f(*minus)) / (2 * eps)


def test_w5_forward_is_one_loop_kernel():
    x, y, z = (rand(1000, seed=s) for s in range(3))
    prog = program(w5, x, y, z)
    assert kinds(prog) == ["loop"]
    (k,) = prog.kernels
    assert k.domain == (1000,) and k.reduce_axes == (0,)
    assert set(load_sources(k).values()) == {1} and set(k.inputs) == set(prog.fn.params)
    check_numbers(w5, x, y, z, rtol=1e-5)


def test_w5_value_and_grad_is_one_kernel_reading_each_input_once():
    x, y, z = (rand(1000, seed=s) for s in range(3))
    vg = tj.value_and_grad(w5, argnums=(0, 1, 2))
    prog = program(vg, x, y, z)
    assert kinds(prog) == ["loop"]
    (k,) = prog.kernels
    assert load_sources(k) == Counter(prog.fn.params)       # x, y and z, one load each
    assert len(k.outputs) == 4 and set(k.outputs) == set(prog.fn.results)
    want = (w5(x, y, z), w5_grads(x, y, z))
    for fuse in (True, False):
        value, grads = tj.jit(vg, fuse=fuse)(x, y, z)
        assert_close(value, want[0], rtol=1e-5)
        assert_close(grads, want[1], rtol=1e-5)


def test_w5_gradients_match_finite_differences_in_f64():
    args = [rand(6, dtype=np.float64, seed=s) for s in range(3)]
    _, grads = tj.jit(tj.value_and_grad(w5, argnums=(0, 1, 2)))(*args)
    for argnum, g in enumerate(grads):
        for i in range(6):
            fd = central_difference(w5, args, argnum, i)
            assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-8)


# ---------------------------------------------------------------------------------------------
# the seed MLP: relu(x @ w1) @ w2, sum of squares, SGD


def mlp_loss(w1, w2, x, y):
    return np.sum((np.maximum(x @ w1, 0.0) @ w2 - y) ** 2)


def mlp_step(w1, w2, x, y):
    loss, (g1, g2) = tj.value_and_grad(mlp_loss, argnums=(0, 1))(w1, w2, x, y)
    return loss, w1 - 1e-3 * g1, w2 - 1e-3 * g2


def mlp_step_numpy(w1, w2, x, y):
    h = x @ w1
    a = np.maximum(h, 0.0)
    r = a @ w2 - y
    gr = 2 * r
    g2 = a.T @ gr
    g1 = x.T @ ((gr @ w2.T) * (h > 0))
    return np.sum(r * r), w1 - np.float32(1e-3) * g1, w2 - np.float32(1e-3) * g2


def mlp_args(dtype=np.float32):
    return [rand(12, 6, dtype=dtype, seed=1), rand(6, 3, dtype=dtype, seed=2),
            rand(8, 12, dtype=dtype, seed=3), rand(8, 3, dtype=dtype, seed=4)]


def test_mlp_forward_is_two_dot_kernels():
    args = mlp_args()
    prog = program(mlp_loss, *args)
    assert kinds(prog) == ["dot", "dot"]
    check_numbers(mlp_loss, *args)


def test_mlp_training_step_is_five_dot_kernels():
    args = mlp_args()
    prog = program(mlp_step, *args)
    assert kinds(prog) == ["dot"] * 5
    fn = prog.fn
    assert sum(e.prim.name == "dot" for e in fn.eqns) == 5
    for k in prog.kernels:
        assert sum(e.prim.name == "dot" for e in k.body) == 1
    # Every equation of the optimised function (elementwise ones included) is in a dot kernel.
    assert {e for k in prog.kernels for e in k.eqns} == {
        e for e in fn.eqns if e.prim.name != "constant" and e.prim.category is not P.VIEW}
    check_numbers(mlp_step, *args, want=mlp_step_numpy(*args))


def test_mlp_gradients_match_finite_differences_in_f64():
    w1, w2, x, y = mlp_args(np.float64)
    g1, g2 = tj.jit(tj.grad(mlp_loss, argnums=(0, 1)))(w1, w2, x, y)
    for argnum, g, index in ((0, g1, (3, 2)), (0, g1, (11, 5)), (1, g2, (0, 0)), (1, g2, (4, 2))):
        fd = central_difference(mlp_loss, [w1, w2, x, y], argnum, index)
        assert g[index] == pytest.approx(fd, rel=1e-6, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# loop kernels: broadcasts, transposes, slices, reductions, multiple outputs


def test_broadcast_chain_is_one_loop_kernel_with_zero_strides():
    a, b, s = rand(3, 1, 4, seed=1), rand(4, seed=2), np.float32(0.5)
    c = rand(5, 4, seed=3)

    def f(a, b, s, c):
        # Every operation is over the full (3,5,4) domain: only parameters are broadcast.
        return np.tanh(c + a + b + s) * 2.0

    prog = program(f, a, b, s, c)
    assert kinds(prog) == ["loop"]
    (k,) = prog.kernels
    assert k.domain == (3, 5, 4)
    a_, b_, s_, c_ = prog.fn.params
    imaps = {ld.src: ld.imap for ld in k.loads}
    assert len(k.loads) == 4
    assert imaps[a_].strides[1] == 0 and imaps[a_].strides[0] == 4 and imaps[a_].strides[2] == 1
    assert imaps[b_] == IndexMap((3, 5, 4), (0, 0, 1))
    # The 0-d parameter is a rank-0 operand (it broadcasts) or a view with every stride 0.
    assert imaps[s_].shape == () or imaps[s_] == IndexMap((3, 5, 4), (0, 0, 0))
    assert imaps[c_] == IndexMap((3, 5, 4), (0, 4, 1))
    check_numbers(f, a, b, s, c)


def test_spec_broadcast_chain_3_1_4_plus_4_plus_scalar():
    a, b = rand(3, 1, 4, seed=1), rand(4, seed=2)

    def f(a, b):
        return np.exp(a + b) * 2.0 + 1.0

    prog = program(f, a, b)
    assert kinds(prog) == ["loop"]
    (k,) = prog.kernels
    assert k.domain == (3, 1, 4)
    imaps = {ld.src: ld.imap for ld in k.loads}
    assert len(k.loads) == 2 and set(imaps) == set(prog.fn.params)
    assert imaps[prog.fn.params[1]] == IndexMap((3, 1, 4), (0, 0, 1))     # b: stride 0 twice
    check_numbers(f, a, b)


def test_transposed_operand_is_read_through_an_index_map():
    m, n = rand(4, 5, seed=1), rand(5, 4, seed=2)
    prog = program(lambda m, n: m * 3.0 + n.T, m, n)
    assert kinds(prog) == ["loop"]
    (k,) = prog.kernels
    imaps = {ld.src: ld.imap for ld in k.loads}
    assert imaps[prog.fn.params[1]] == IndexMap((4, 5), (1, 4))
    assert not imaps[prog.fn.params[1]].is_contiguous
    check_numbers(lambda m, n: m * 3.0 + n.T, m, n)


@pytest.mark.parametrize("case", [
    (lambda v: v[::-2] * 3.0, (10,), IndexMap((5,), (-2,), 9)),
    (lambda v: v[8::-3] + 1.0, (10,), IndexMap((3,), (-3,), 8)),
    (lambda m: m[::-1, 1::2] + 1.0, (4, 5), IndexMap((4, 2), (-5, 2), 16)),
    (lambda m: np.exp(m[2:0:-1, ::-2]), (4, 5), IndexMap((2, 3), (-5, -2), 14)),
], ids=["reverse_step2", "reverse_from8_step3", "rows_reversed_cols_step2", "both_reversed"])
def test_negative_step_slices_are_index_maps(case):
    f, shape, imap = case
    x = rand(*shape)
    prog = program(f, x)
    assert kinds(prog) == ["loop"]
    (k,) = prog.kernels
    (ld,) = k.loads
    assert ld.imap == imap
    check_numbers(f, x)


def test_reduction_over_the_middle_axis_fuses_its_producers():
    t = rand(3, 4, 5)
    f = lambda t: np.sum(np.exp(t) * 2.0 - t, axis=1)  # noqa: E731
    prog = program(f, t)
    assert kinds(prog) == ["loop"]
    (k,) = prog.kernels
    assert k.domain == (3, 4, 5) and k.reduce_axes == (1,)
    assert [e.prim.name for e in k.body].count("exp") == 1
    check_numbers(f, t)


def test_two_reductions_over_different_axes_are_two_kernels():
    t = rand(3, 4, 5)
    f = lambda t: (np.sum(t * t, axis=0), np.max(t * t, axis=2))  # noqa: E731
    prog = program(f, t)
    assert kinds(prog) == ["loop", "loop"]
    assert {k.reduce_axes for k in prog.kernels} == {(0,), (2,)}
    check_invariants(prog)
    check_numbers(f, t)


def test_multi_output_of_the_same_inputs_is_one_kernel():
    x, y = rand(4, 5, seed=1), rand(4, 5, seed=2)
    f = lambda x, y: (x + y, x * y, np.sum(x - y))  # noqa: E731
    prog = program(f, x, y)
    assert kinds(prog) == ["loop"]
    (k,) = prog.kernels
    assert load_sources(k) == Counter(prog.fn.params)
    assert set(k.outputs) == set(prog.fn.results)
    check_numbers(f, x, y)


def test_multi_output_of_a_shared_intermediate_is_one_kernel():
    x, y = rand(4, 5, seed=1), rand(4, 5, seed=2)

    def f(x, y):
        t = np.tanh(x * y)
        return t + 1.0, t * x, np.sum(t, axis=0)

    prog = program(f, x, y)
    assert kinds(prog) == ["loop"]
    assert [e.prim.name for e in prog.kernels[0].body].count("tanh") == 1
    check_numbers(f, x, y)


# ---------------------------------------------------------------------------------------------
# dot kernels: epilogues and prologues


def test_bias_add_and_relu_are_the_epilogue_of_a_dot():
    x, w, b = rand(4, 5, seed=1), rand(5, 3, seed=2), rand(3, seed=3)
    f = lambda x, w, b: np.maximum(x @ w + b, 0.0)  # noqa: E731
    prog = program(f, x, w, b)
    assert kinds(prog) == ["dot"]
    (k,) = prog.kernels
    names = [e.prim.name for e in k.body]
    assert names.index("dot") < names.index("add") < names.index("max")
    assert {ld.src: ld.imap for ld in k.loads}[prog.fn.params[2]].strides == (0, 1)
    check_numbers(f, x, w, b)


@pytest.mark.parametrize("f", [
    lambda x, w: (x * 2.0) @ w,
    lambda x, w: np.exp(x - 1.0) @ w,
    lambda x, w: x @ (w * 0.5),
], ids=["scaled_lhs", "exp_lhs", "scaled_rhs"])
def test_elementwise_prologue_used_only_by_the_dot_joins_it(f):
    x, w = rand(4, 5, seed=1), rand(5, 3, seed=2)
    prog = program(f, x, w)
    assert kinds(prog) == ["dot"]
    (k,) = prog.kernels
    assert set(k.inputs) == set(prog.fn.params)
    assert [e.prim.name for e in k.body][-1] == "dot"
    check_numbers(f, x, w)


# ---------------------------------------------------------------------------------------------
# arithmetic is never duplicated


@pytest.mark.parametrize("case", [
    (lambda x, w: (np.sin(x) @ w, np.sin(x) + 1.0), 2),
    (lambda x, w: (np.exp(x) @ w, np.sum(np.exp(x), axis=1)), 2),
    (lambda x, w: (np.tanh(x) @ w, np.tanh(x) @ (w * w)), 3),
    (lambda x, w: np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True), 2),
    (lambda x, w: np.exp(x) - np.exp(x).sum(), 2),
], ids=["prologue_also_a_result", "dot_and_reduction", "two_dots", "softmax_rows",
        "minus_total"])
def test_a_value_used_by_two_kernels_is_computed_once(case):
    f, n_kernels = case
    x, w = rand(4, 5, seed=1), rand(5, 3, seed=2)
    prog = program(f, x, w)
    assert len(prog.kernels) == n_kernels
    # The transcendental is written once by one kernel and read by the others.
    counts = Counter(e.prim.name for k in prog.kernels for e in k.body)
    assert counts["exp"] + counts["tanh"] + counts["sin"] == 1
    (producer,) = [k for k in prog.kernels
                   if {"exp", "tanh", "sin"} & {e.prim.name for e in k.body}]
    (value,) = [e.out for e in producer.body if e.prim.name in ("exp", "tanh", "sin")]
    assert value in producer.outputs
    assert any(value in k.inputs for k in prog.kernels if k is not producer)
    check_invariants(prog)
    check_numbers(f, x, w)


# ---------------------------------------------------------------------------------------------
# kernels of their own: gather, concatenate, scatter_add


def own_kernel(prog, name):
    (k,) = [k for k in prog.kernels if any(e.prim.name == name for e in k.body)]
    assert k.kind == name and len(k.body) == 1 and len(k.eqns) == 1
    return k


def test_gather_is_a_kernel_of_its_own():
    x, i = rand(4, 5), np.array([3, 0, -1, 2, 2])
    f = lambda x, i: np.exp(x * 2.0)[i] + 1.0  # noqa: E731
    prog = program(f, x, i)
    own_kernel(prog, "gather")
    assert kinds(prog) == ["loop", "gather", "loop"]
    check_invariants(prog)
    check_numbers(f, x, i)


def test_concatenate_is_a_kernel_of_its_own_reading_views():
    x, w = rand(4, 5, seed=1), rand(5, 3, seed=2)
    f = lambda x, w: np.concatenate([x[::-1], w.T * 2.0], axis=0) + 1.0  # noqa: E731
    prog = program(f, x, w)
    k = own_kernel(prog, "concatenate")
    assert k.domain == (7, 5)
    assert any(ld.imap.strides[0] < 0 for ld in k.loads)     # x[::-1] read in place
    assert "copy" not in kinds(prog)
    check_invariants(prog)
    check_numbers(f, x, w)


def test_scatter_add_from_the_gradient_of_a_gather():
    x, i = rand(4, 5, dtype=np.float64), np.array([3, 0, 2, 2, -1])
    g = tj.grad(lambda x, i: np.sum(np.sin(x[i]) ** 2))
    prog = program(g, x, i)
    own_kernel(prog, "scatter_add")
    own_kernel(prog, "gather")
    check_invariants(prog)
    want = np.zeros_like(x)
    np.add.at(want, i, 2 * np.sin(x[i]) * np.cos(x[i]))
    check_numbers(g, x, i, want=want)


# ---------------------------------------------------------------------------------------------
# views that are not strided, and results that no kernel computes


@pytest.mark.parametrize("f", [
    lambda x: x.T.reshape(20),
    lambda x: np.sum(x.T.reshape(10, 2), axis=0),
    lambda x: x.T.reshape(2, 10) @ x.reshape(10, 2),
], ids=["result", "reduced", "dot_operand"])
def test_reshape_of_a_transposed_value_gets_a_copy_kernel(f):
    x = rand(4, 5)
    prog = program(f, x)
    assert kinds(prog).count("copy") == 1
    (copy,) = [k for k in prog.kernels if k.kind == "copy"]
    (ld,) = copy.loads
    assert ld.src is prog.fn.params[0]
    assert ld.imap == IndexMap((5, 4), (1, 5))          # x.T, read in place by the copy
    check_invariants(prog)
    check_numbers(f, x)


def test_reshape_of_transposed_arithmetic_is_right():
    x = rand(4, 5)
    f = lambda x: (x.T * 2.0).reshape(2, 10) + x.T.reshape(2, 10)  # noqa: E731
    check_invariants(program(f, x))
    check_numbers(f, x)


def test_contiguous_reshape_and_transpose_need_no_copy():
    x = rand(4, 5)
    f = lambda x: x.reshape(5, 4).T + x.reshape(20)[::5][:, None]  # noqa: E731
    prog = program(f, x)
    assert kinds(prog) == ["loop"]
    check_numbers(f, x)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_results_that_are_params_views_or_fills_are_fresh_arrays(fuse):
    x, y = rand(3, 4, seed=1), rand(2, seed=2)

    def f(x, y):
        return (x, x.T, x[1, ::-1], x.reshape(12), np.zeros((2, 3), np.float32),
                np.full((2, 2), 7.0, np.float32), np.ones_like(x), y, 3.0 + 0.0 * y)

    jf = tj.jit(f, fuse=fuse)
    got = jf(x, y)
    check_invariants(jf.program(x, y))
    want = f(x, y)
    assert_close(got, want)
    for out in got:
        assert isinstance(out, np.ndarray)
        assert not np.shares_memory(out, x) and not np.shares_memory(out, y)
    # Writing into the results changes neither the arguments nor the next call's results.
    for out in got:
        out[...] = -1.0
    assert_close(jf(x, y), want)
    assert_close((x, y), (rand(3, 4, seed=1), rand(2, seed=2)))


# ---------------------------------------------------------------------------------------------
# the corpus: fused and unfused programs of a variety of functions


# Scalar functions whose value its own gradient uses: each value_and_grad is scalar work on
# parameters only, which the planner recomputes in every kernel that uses it.
SCALAR_FUNCTIONS = {
    "sqrt": lambda a, b, c: np.sqrt(a * b + c),
    "reciprocal": lambda a, b, c: 1 / (a * b + c),
    "sigmoid": lambda a, b, c: 1 / (1 + np.exp(-(a * b + c))),
}


def _corpus():
    x, w, b = rand(4, 5, seed=1), rand(5, 3, seed=2), rand(3, seed=3)
    t, v = rand(2, 3, 4, seed=4), rand(10, seed=5)
    sq = rand(4, 4, seed=6)
    i = np.array([1, 3, 0, 1])
    return [
        ("w5", w5, (v, v[::-1].copy(), rand(10, seed=7))),
        ("w5_grad", tj.value_and_grad(w5, argnums=(0, 1, 2)), (v, rand(10, seed=8), v)),
        ("mlp_step", mlp_step, tuple(mlp_args())),
        ("bias_relu", lambda x, w, b: np.maximum(x @ w + b, 0.0), (x, w, b)),
        ("softmax", lambda x: np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True), (x,)),
        ("logsumexp", lambda x: np.log(np.sum(np.exp(x - x.max(axis=0)), axis=0)), (x,)),
        ("center", lambda t: t - t.mean(axis=(0, 2), keepdims=True), (t,)),
        ("square_transpose", lambda s: np.exp(s) + np.exp(s).T, (sq,)),
        ("matmul_plus_transpose", lambda s: s @ s + (s @ s).T, (sq,)),
        ("batched_dot", lambda t: np.tanh(t @ t.transpose(0, 2, 1)).sum(axis=2), (t,)),
        ("slices", lambda v: v[::-2] * v[1::2] + v[9:4:-1], (v,)),
        ("middle_reduce", lambda t: np.sum(np.exp(t), axis=1) * 2.0, (t,)),
        ("two_reductions", lambda t: (t.sum(axis=0), (t * t).sum(axis=2)), (t,)),
        ("broadcast_chain", lambda t, v: t + v[:4] + 1.0, (t, v)),
        ("reshape_transposed", lambda x: x.T.reshape(20) * 2.0, (x,)),
        ("gather", lambda x, i: x[i] * 2.0 + x[i[::-1]], (x, i)),
        ("gather_grad", tj.grad(lambda x, i: np.sum(x[i] ** 3)), (x, i)),
        ("concat", lambda x, w: np.concatenate([x, w.T], axis=0).sum(axis=1), (x, w)),
        ("argmax", lambda x: np.argmax(x * x - x, axis=0), (x,)),
        ("iota", lambda x: x * np.arange(5, dtype=np.float32), (x,)),
        ("where", lambda x: np.where(x > 0, x, 0.1 * x).T @ x, (x,)),
        ("fills_and_params", lambda x, b: (x, np.zeros(3, np.float32), b * 0.0 + 1.0, x.T),
         (x, b)),
        ("minus_total", lambda x: np.exp(x) - np.sum(np.exp(x)), (x,)),
        ("mean_epilogue", lambda x: np.tanh(np.mean(x * x, axis=1) + 1.0), (x,)),
        ("epilogue_before_dot", lambda x, w, y: np.exp(y) + x @ w, (x, w, rand(4, 3, seed=9))),
        ("scalar_in_reduction", lambda x, lr: np.sum(x - lr * 0.5, axis=0) * lr,
         (x, np.float32(0.1))),
        ("scalar_params", lambda x, w, lr, n: (x - (lr * 0.5) * n, w * (lr * 0.5) - n),
         (x, w, np.float32(0.1), 3)),
        *((f"scalar_{name}_value_and_grad", tj.value_and_grad(f, argnums=(0, 1, 2)),
           (0.1, 0.7, 0.3)) for name, f in SCALAR_FUNCTIONS.items()),
        # Scalar work on parameters that must also be a buffer: a result, viewed, an operand
        # of a kernel of its own, and recomputed by other kernels.
        ("scalar_sources_as_buffers", lambda a, b: (
            a * b, (a * b).reshape(1) + a, np.concatenate([(a * b + 1.0).reshape(1), v]),
            -(a * b + 1.0) * v), (0.5, 2.0)),
    ]


CORPUS = _corpus()


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("name,f,args", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_invariants_and_numbers(name, f, args, fuse):
    prog = program(f, *args, fuse=fuse)
    assert prog.fused is fuse
    check_invariants(prog)
    # The oracle: the reference interpreter on the function as traced (before any pass).
    traced = tj.trace(f, *args)
    want = tj.interpret(traced, [np.asarray(a) for a in args])
    got = tj.jit(f, fuse=fuse)(*args)
    assert_close([np.asarray(g) for g in leaves(got)], want, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SCALAR_FUNCTIONS))
def test_scalar_value_and_grad_is_one_kernel(name):
    """The value and its gradients are all scalar work on the parameters: one kernel computes
    them (several kernels recomputing the shared work once made a cycle among kernels)."""
    f = tj.value_and_grad(SCALAR_FUNCTIONS[name], argnums=(0, 1, 2))
    prog = program(f, 0.1, 0.7, 0.3)
    check_invariants(prog)
    assert kinds(prog) == ["loop"]
    assert set(prog.kernels[0].inputs) == set(prog.fn.params)
    want = tj.interpret(tj.trace(f, 0.1, 0.7, 0.3), [0.1, 0.7, 0.3])
    assert_close(leaves(tj.jit(f)(0.1, 0.7, 0.3)), want)


@pytest.mark.parametrize("name,f,args", CORPUS, ids=[c[0] for c in CORPUS])
def test_unfused_is_one_kernel_per_primitive(name, f, args):
    fn = tj.jit(f, fuse=False).lower(*args)
    prog = program(f, *args, fuse=False)
    assert len(prog.kernels) == sum(e.prim.name != "constant" for e in fn.eqns)
    for k in prog.kernels:
        assert len(k.eqns) == 1
        (e,) = k.eqns
        expected = ("loop" if is_source(e) or e.prim.category is P.ELEMENTWISE
                    or (e.prim.category is P.REDUCTION and not e.prim.own_kernel) else
                    "copy" if e.prim.category is P.VIEW else
                    e.prim.name)
        assert k.kind == expected
        # Every operand comes from a buffer: each load is the whole buffer, contiguous.
        assert all(ld.imap == IndexMap.contiguous(ld.src.type.shape) for ld in k.loads)


@pytest.mark.parametrize("name,f,args", CORPUS, ids=[c[0] for c in CORPUS])
def test_fusion_never_adds_kernels_or_traffic(name, f, args):
    fused, unfused = program(f, *args), program(f, *args, fuse=False)
    assert len(fused.kernels) <= len(unfused.kernels)
    moved = [sum(sum(k.bytes_moved()) for k in p.kernels) for p in (fused, unfused)]
    assert moved[0] <= moved[1]


# ---------------------------------------------------------------------------------------------
# random chains of views: index maps composed, bounds kept, values right


@st.composite
def view_chains(draw):
    """A parameter shape and a chain of views (transpose, slice with any step, reshape,
    broadcast) applied to it."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    cur, ops = shape, []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["transpose", "slice", "reshape", "broadcast"]))
        if kind == "transpose":
            perm = tuple(draw(st.permutations(range(len(cur)))))
            ops.append((kind, perm))
            cur = tuple(cur[p] for p in perm)
        elif kind == "slice":
            idx = tuple(slice(draw(st.integers(0, n - 1)), None,
                              draw(st.sampled_from([1, 2, 3, -1, -2, -3]))) for n in cur)
            ops.append((kind, idx))
            cur = tuple(len(range(*s.indices(n))) for s, n in zip(idx, cur))
        elif kind == "reshape":
            new = draw(st.sampled_from([(-1,), cur[::-1], (1,) + cur, cur + (1,)]))
            ops.append((kind, new))
            cur = (int(np.prod(cur)),) if new == (-1,) else new
        elif len(cur) < 4:
            new = (draw(st.integers(1, 3)),) + cur
            ops.append((kind, new))
            cur = new
    return shape, ops


def apply_views(x, ops):
    for kind, arg in ops:
        if kind == "transpose":
            x = np.transpose(x, arg)
        elif kind == "slice":
            x = x[arg]
        elif kind == "reshape":
            x = x.reshape(arg)
        else:
            x = np.broadcast_to(x, arg)
    return x


@settings(max_examples=60, deadline=None)
@given(view_chains())
def test_random_view_chains_are_in_bounds_and_right(chain):
    shape, ops = chain

    def f(x):
        v = apply_views(x, ops)
        # The sum's terms are positive: a float32 sum with cancellation may differ from
        # NumPy's (which adds in float32) by far more than rtol of its result.
        return np.sin(v) + v, np.sum(v * v + 1.0, axis=0), apply_views(x * 3.0, ops)

    x = rand(*shape, seed=len(ops))
    for fuse in (True, False):
        check_invariants(program(f, x, fuse=fuse))
    check_numbers(f, x, rtol=1e-5)
