"""vmap (tracejit/batching.py, tj.vmap): every primitive's batching rule against NumPy, the API
(in_axes, out_axes, axis_size, pytree prefixes, keyword arguments, errors) and the
compositions with jit, grad, jvp, vjp, custom_vjp and vmap itself.

The oracle is always a Python loop over the examples: NumPy (or the unbatched tracejit
function) run on each example, the results stacked with np.stack; gradients are checked
against that loop and against float64 central finite differences. The batched function runs
eagerly (the reference interpreter) and compiled by `tj.jit` (the cpu backend, and a few times
the CUDA code in the host emulator).
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit import ops
from tracejit import primitives as P
from tracejit.primitives import REGISTRY
from tracejit.tracer import SOURCE

from npcheck import finite_differences, leaves, structure
from test_forward import CASES, _inputs, spd
from test_vjp import IDX, _pad_ref, _scatter_ref

B = 3                   # examples per batch in the primitive cases
RTOL = 1e-10            # eager (the interpreter) against NumPy
RTOL_JIT = 1e-9         # compiled against eager


# ---------------------------------------------------------------------------------------------
# helpers


def assert_same(got, want, rtol=RTOL, atol=1e-12, where="result"):
    """Pytrees `got` and `want` have one structure and, leaf by leaf, one dtype, one shape,
    and equal values (close for floats)."""
    assert structure(got) == structure(want), f"{where}: {structure(got)} != {structure(want)}"
    for (path, g), (_, w) in zip(leaves(got, where), leaves(want, where)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype, f"{path}: dtype {g.dtype}, want {w.dtype}"
        assert g.shape == w.shape, f"{path}: shape {g.shape}, want {w.shape}"
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=path)
        else:
            np.testing.assert_array_equal(g, w, err_msg=path)


def batch_args(examples, in_axes):
    """(the batched arguments, each example's arguments): argument k stacked along its axis
    in_axes[k], or, for None, example 0's value shared by every example."""
    args, per_example = [], [list(ex) for ex in examples]
    for k, axis in enumerate(in_axes):
        if axis is None:
            args.append(examples[0][k])
            for ex in per_example:
                ex[k] = examples[0][k]
        else:
            args.append(np.stack([ex[k] for ex in examples], axis=axis))
    return args, per_example


def stacked_reference(ref, per_example):
    return np.stack([np.asarray(ref(*ex)) for ex in per_example])


def normal_(shape):
    return lambda rng: rng.uniform(-2.0, 2.0, shape)


def ints_(shape, low=-3, high=4):
    return lambda rng: rng.integers(low, high, shape)


def nonzero_ints_(shape):
    return lambda rng: rng.choice([-3, -2, -1, 1, 2, 3, 5], shape)


def bools_(shape):
    return lambda rng: rng.random(shape) < 0.5


def distinct_(shape):
    """Values at least 0.2 apart (no ties for argmax, argsort)."""
    n = int(np.prod(shape))
    return lambda rng: (rng.permutation(n) * 0.3 + rng.uniform(0.0, 0.1, n)).reshape(shape)


def spd_(n):
    return lambda rng: spd(rng, (n, n))


def with_zeros_(shape):
    """Floats with some +0.0 and -0.0 (signbit's interesting inputs)."""
    def make(rng):
        x = rng.uniform(-2.0, 2.0, shape)
        x.flat[::3] = rng.choice([0.0, -0.0], x.flat[::3].shape)
        return x
    return make


def with_nans_(shape):
    """Floats with one NaN per row (never a whole row: nanargmax's check would fail)."""
    def make(rng):
        x = rng.permutation(int(np.prod(shape))).reshape(shape) * 1.0
        x[np.arange(shape[0]), rng.integers(0, shape[1], shape[0])] = np.nan
        return x
    return make


def index_(shape, n):
    """Indices into an axis of size n, negative ones among them."""
    return lambda rng: rng.integers(-n, n, shape)


# ---------------------------------------------------------------------------------------------
# custom-derivative functions (their rules deliberately differ from the derived gradient)


@tj.custom_vjp
def st_round(x):
    """np.round with the straight-through gradient (1, where the derived one is 0)."""
    return np.round(x)


st_round.defvjp(lambda x: (np.round(x), None), lambda _, g: (g,))


@tj.custom_vjp
def log1pexp(x):
    """log(1 + e^x), whose rule (g * sigmoid(x), from a residual) is finite at x = 800."""
    return np.log1p(np.exp(x))


log1pexp.defvjp(lambda x: (log1pexp(x), x), lambda x, g: (g / (1 + np.exp(-x)),))


@tj.custom_vjp
def clipped_scale(x, s):
    """x * s, whose rule clips the gradient of x to [-0.5, 0.5]."""
    return x * s


clipped_scale.defvjp(lambda x, s: (x * s, (x, s)),
                     lambda res, g: (np.clip(g * res[1], -0.5, 0.5), g * res[0]))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---------------------------------------------------------------------------------------------
# 1. every primitive's batching rule: test_forward.py's cases, and the primitives they lack


def _examples(name, makers, seed=0):
    return [_inputs(name, makers, np.random.default_rng(seed + 17 * i)) for i in range(B)]


def _variants():
    """(case, in_axes): every case mapped over axis 0; with two or more arguments, the first
    shared and the others mapped; the first mapped over its last axis."""
    out = []
    for case in CASES:
        name, _, _, makers = case
        n = len(_inputs(name, makers, np.random.default_rng(0)))
        out.append(pytest.param(case, (0,) * n, id=f"{name}-mapped"))
        if n >= 2:
            out.append(pytest.param(case, (None,) + (0,) * (n - 1), id=f"{name}-shared_first"))
        out.append(pytest.param(case, (-1,) + (0,) * (n - 1), id=f"{name}-first_last_axis"))
    return out


@pytest.mark.parametrize("case,in_axes", _variants())
def test_batching_rule_of_every_primitive(case, in_axes):
    name, ref, f, makers = case
    examples = _examples(name, makers)
    args, per_example = batch_args(examples, in_axes)
    want = stacked_reference(ref, per_example)
    got = tj.vmap(f, in_axes=in_axes)(*args)
    # One more axis in front of each example's result, whichever axis the inputs had it on.
    assert np.shape(got) == (B,) + np.shape(ref(*per_example[0])), name
    assert_same(got, want, where=name)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_batching_rule_compiled(case):
    name, ref, f, makers = case
    examples = _examples(name, makers, seed=5)
    args, per_example = batch_args(examples, (0,) * len(examples[0]))
    eager = tj.vmap(f)(*args)
    assert_same(eager, stacked_reference(ref, per_example), where=name)
    assert_same(tj.jit(tj.vmap(f))(*args), eager, rtol=RTOL_JIT, where=f"{name} (jit)")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_through_every_batching_rule(case):
    """The batched IR differentiated (the VJPs of the batched forms the rules emit: gathers
    with the example's number as an index, dots with one more batch axis, ...): the gradient
    of sum(vmap(f)(*args) * R) is the stack of the per-example gradients."""
    name, _, f, makers = case
    examples = _examples(name, makers, seed=9)
    n = len(examples[0])
    args, _ = batch_args(examples, (0,) * n)
    R = np.random.default_rng(9).standard_normal(np.shape(tj.vmap(f)(*args)))
    wrt = tuple(range(n))
    got = tj.grad(lambda *a: np.sum(tj.vmap(f)(*a) * R), argnums=wrt)(*args)
    loop = [tj.grad(lambda *a: np.sum(f(*a) * R[i]), argnums=wrt)(*examples[i])
            for i in range(B)]
    want = tuple(np.stack([g[k] for g in loop]) for k in range(n))
    assert_same(got, want, rtol=1e-9, atol=1e-11, where=name)


def _dot_cases():
    """Contractions in every batched / shared combination: (id, f, makers, in_axes)."""
    dots = [
        ("einsum_batch", lambda a, b: np.einsum("bij,bjk->bik", a, b), (2, 3, 4), (2, 4, 5)),
        ("matmul_mat_mat", lambda a, b: a @ b, (3, 4), (4, 5)),
        ("matmul_vec_mat", lambda a, b: a @ b, (4,), (4, 5)),
        ("matmul_mat_vec", lambda a, b: a @ b, (3, 4), (4,)),
        ("matmul_vec_vec", lambda a, b: a @ b, (4,), (4,)),
        ("matmul_stack_mat", lambda a, b: np.matmul(a, b), (2, 3, 4), (4, 5)),
        ("outer", np.outer, (3,), (4,)),
        ("tensordot_pairs", lambda a, b: np.tensordot(a, b, axes=([0, 1], [2, 0])),
         (2, 3, 4), (3, 5, 2)),
        ("tensordot_1", lambda a, b: np.tensordot(a, b, axes=1), (3, 4), (4, 2, 2)),
    ]
    out = []
    for name, f, sa, sb in dots:
        for in_axes in [(0, 0), (None, 0), (0, None)]:
            out.append((f"{name}", f, None, [normal_(sa), normal_(sb)], in_axes))
    out.append(("einsum_batch", dots[0][1], None, [normal_((2, 3, 4)), normal_((2, 4, 5))],
                (-1, 1)))
    return out


def _key(rng):
    return rng.integers(0, 1 << 32, 2).astype(np.uint32)


def _counters(rng):
    return rng.integers(0, 1 << 32, 5).astype(np.uint32)


# (id, f, NumPy reference or None for f itself, makers of one example's arguments, in_axes)
EXTRA_CASES = [
    ("argmax", lambda x: np.argmax(x, axis=1), None, [distinct_((3, 4))], (0,)),
    ("argmin", lambda x: np.argmin(x, axis=0), None, [distinct_((3, 4))], (1,)),
    ("argsort", lambda x: np.argsort(x, axis=1), None, [distinct_((3, 4))], (0,)),
    ("sort_int", lambda n: np.sort(n, axis=0), None, [ints_((4, 3))], (0,)),
    ("not_and_or_xor_bool", lambda a, b: np.logical_not(a) | (a & b) ^ b, None,
     [bools_((3, 4)), bools_((3, 4))], (0, 0)),
    ("not_and_or_xor_int", lambda a, b: ~a | (a & b) ^ b, None,
     [ints_((3, 4)), ints_((3, 4))], (0, None)),
    ("comparisons", lambda x, y: np.stack([x == y, x != y, x < y, x <= y, x > y, x >= y]),
     None, [ints_((3, 4), 0, 3), ints_((3, 4), 0, 3)], (None, 0)),
    ("comparisons_float_literal", lambda x: (x > 0.5) ^ (x <= -0.5), None,
     [normal_((5,))], (0,)),
    ("floordiv_int", np.floor_divide, None, [ints_((3, 4), -9, 10), nonzero_ints_((3, 4))],
     (0, 0)),
    ("floordiv_float", lambda x, y: x // y, None, [normal_((3, 4)), normal_(())], (0, 0)),
    ("signbit", np.signbit, None, [with_zeros_((3, 4))], (0,)),
    ("check_nanargmax", lambda x: np.nanargmax(x, axis=1), None, [with_nans_((3, 4))], (0,)),
    ("cumsum_int", lambda n: np.cumsum(n, axis=1), None, [ints_((3, 4))], (0,)),
    ("cumprod_int", lambda n: np.cumprod(n, axis=0), None, [ints_((3, 4))], (-1,)),
    ("gather_index_mapped", lambda x, i: x[i], None, [normal_((3, 4)), index_((5,), 3)],
     (0, 0)),
    ("gather_index_mapped", lambda x, i: x[i], None, [normal_((3, 4)), index_((5,), 3)],
     (None, 0)),
    ("gather_index_shared", lambda x, i: x[i], None, [normal_((3, 4)), index_((2, 2), 3)],
     (1, None)),
    ("gather_two_indices", lambda x, i, j: x[i, j], None,
     [normal_((3, 4)), index_((5,), 3), index_((5,), 4)], (None, 0, None)),
    ("take_along_axis", lambda x, i: np.take_along_axis(x, i, axis=1), None,
     [normal_((3, 4)), index_((3, 2), 4)], (0, 0)),
    ("take_along_axis", lambda x, i: np.take_along_axis(x, i, axis=0), None,
     [normal_((3, 4)), index_((2, 4), 3)], (None, 0)),
    ("scatter_add_shared_x", lambda x, u: ops.scatter_add(x, [IDX], u),
     lambda x, u: _scatter_ref(x, [IDX], u), [normal_((3, 4)), normal_((5, 4))], (None, 0)),
    ("scatter_add_shared_updates", lambda x, u: ops.scatter_add(x, [IDX], u),
     lambda x, u: _scatter_ref(x, [IDX], u), [normal_((3, 4)), normal_((5, 4))], (0, None)),
    ("scatter_add_traced_index", lambda x, i, u: ops.scatter_add(x, [i], u),
     lambda x, i, u: _scatter_ref(x, [i], u),
     [normal_((3, 4)), index_((6,), 3), normal_((6, 4))], (None, 0, 0)),
    ("pad_mapped_value", lambda x, v: ops.pad(x, v, (0, 1), (1, 2), (4, 8)),
     lambda x, v: _pad_ref(x, v, (0, 1), (1, 2), (4, 8)), [normal_((3, 4)), normal_(())],
     (None, 0)),
    ("pad_shared_value", lambda x, v: ops.pad(x, v, (2, 7), (1, -2), (5, 8)),
     lambda x, v: _pad_ref(x, v, (2, 7), (1, -2), (5, 8)), [normal_((3, 4)), normal_(())],
     (0, None)),
    ("concatenate_shared_mapped", lambda x, y: np.concatenate([x, y, x], axis=0), None,
     [normal_((3, 4)), normal_((2, 4))], (None, 0)),
    ("concatenate_mapped_shared", lambda x, y: np.concatenate([x, y], axis=1), None,
     [normal_((3, 4)), normal_((3, 2))], (0, None)),
    ("mul_mapped_scalar_shared_array", lambda x, s: x * s, None,
     [normal_((3, 4)), normal_(())], (None, 0)),
    ("where_mapped_scalar_condition", lambda c, x, y: np.where(c, x, y), None,
     [bools_(()), normal_((3, 4)), normal_((3, 4))], (0, None, None)),
    ("reduce_over_shared_plus_mapped", lambda x, y: np.max(x + y, axis=0) * np.sum(y), None,
     [normal_((3, 4)), normal_((4,))], (None, 0)),
    ("solve_shared_matrix", np.linalg.solve, None, [spd_(4), normal_((4, 2))], (None, 0)),
    ("solve_shared_rhs", np.linalg.solve, None, [spd_(4), normal_((4, 2))], (0, None)),
    ("solve_vector_rhs", np.linalg.solve, None, [spd_(4), normal_((4,))], (None, 0)),
    ("triangular_solve_shared_matrix",
     lambda a, b: ops.triangular_solve(np.tril(a) + 4 * np.eye(4), b, lower=True),
     lambda a, b: np.linalg.solve(np.tril(a) + 4 * np.eye(4), b),
     [spd_(4), normal_((4, 2))], (None, 0)),
    ("triangular_solve_shared_rhs",
     lambda a, b: ops.triangular_solve(np.tril(a) + 4 * np.eye(4), b, lower=True),
     lambda a, b: np.linalg.solve(np.tril(a) + 4 * np.eye(4), b),
     [spd_(4), normal_((4, 2))], (0, None)),
    ("factorisations_of_shared_plus_mapped",
     lambda a, d: np.concatenate([np.linalg.eigvalsh(a + np.diag(d)),
                                  np.linalg.svd(a * d, compute_uv=False),
                                  [np.linalg.slogdet(a + np.diag(d))[1]],
                                  np.linalg.cholesky(a + np.diag(d)).ravel(),
                                  np.abs(np.linalg.qr(a * d)[1]).ravel()]),
     None, [spd_(4), lambda rng: rng.uniform(0.5, 2.0, 4)], (None, 0)),
    ("custom_vjp_shared_operand", clipped_scale, lambda x, s: x * s,
     [normal_((3, 4)), normal_((3, 4))], (0, None)),
    ("random_bits_keys_mapped", lambda k: tj.random.bits(k, (3, 2)), None, [_key], (0,)),
    ("threefry2x32_counters_mapped",
     lambda k, c: tj.ops.threefry2x32(k[0], k[1], c, c[::-1], word=2),
     lambda k, c: np.bitwise_xor(*P.threefry2x32_words(k[0], k[1], c, c[::-1])),
     [_key, _counters], (None, 0)),
] + _dot_cases()


def _extra_examples(makers, seed):
    return [[m(np.random.default_rng(seed + 17 * i)) for m in makers] for i in range(B)]


def _extra_id(case):
    axes = "_".join("n" if a is None else str(a) for a in case[4])
    return f"{case[0]}-{axes}"


@pytest.mark.parametrize("case", EXTRA_CASES, ids=[_extra_id(c) for c in EXTRA_CASES])
def test_batching_rule_more_cases(case):
    """The primitives without a tangent, traced index arrays, shared and mapped operands of
    the indexing, structural, contraction and linalg primitives; eager and compiled."""
    name, f, ref, makers, in_axes = case
    ref = ref or f
    args, per_example = batch_args(_extra_examples(makers, seed=1), in_axes)
    want = stacked_reference(ref, per_example)
    got = tj.vmap(f, in_axes=in_axes)(*args)
    assert_same(got, want, where=name)
    assert_same(tj.jit(tj.vmap(f, in_axes=in_axes))(*args), got, rtol=RTOL_JIT,
                where=f"{name} (jit)")


def test_a_failing_check_still_fails_when_batched():
    """nanargmax's check (an all-NaN line) raises as NumPy does, whichever example has it."""
    X = np.array([[[1.0, np.nan], [2.0, 0.0]], [[1.0, 3.0], [np.nan, np.nan]]])
    with pytest.raises(ValueError, match="All-NaN slice"):
        np.nanargmax(X[1], axis=1)
    with pytest.raises(ValueError, match="All-NaN slice"):
        tj.vmap(lambda x: np.nanargmax(x, axis=1))(X)
    assert_same(tj.vmap(lambda x: np.nanargmax(x, axis=1))(X[:1]), np.array([[0, 0]]))


def test_batching_rules_on_the_cuda_emulator():
    """The batched index, structural and contraction kernels as CUDA code (host emulator)."""
    rng = np.random.default_rng(8)
    W = rng.standard_normal((4, 3))

    def f(x, i, v, u):
        g = x[i]                                          # gather, mapped index
        p = ops.pad(x, v, (0, 1), (1, 2), (4, 8))         # pad, mapped traced value
        s = ops.scatter_add(np.zeros((3, 4)), [IDX], u)   # scatter_add, shared x
        return np.concatenate([(g @ W).ravel(), np.sum(p, axis=1), np.cumsum(s, axis=0).ravel(),
                               np.sort(x, axis=0).ravel(), [np.argmax(x)]])

    def ref(x, i, v, u):
        p = _pad_ref(x, v, (0, 1), (1, 2), (4, 8))
        s = _scatter_ref(np.zeros((3, 4)), [IDX], u)
        return np.concatenate([(x[i] @ W).ravel(), np.sum(p, axis=1),
                               np.cumsum(s, axis=0).ravel(), np.sort(x, axis=0).ravel(),
                               [np.argmax(x)]])

    makers = [normal_((3, 4)), index_((5,), 3), normal_(()), normal_((5, 4))]
    args, per_example = batch_args(_extra_examples(makers, seed=2), (0, 0, 0, 0))
    got = tj.jit(tj.vmap(f), backend="cuda-emulator")(*args)
    assert_same(tj.to_host(got), stacked_reference(ref, per_example), rtol=RTOL_JIT)


# ---------------------------------------------------------------------------------------------
# 2. coverage


def test_every_primitive_has_a_batching_rule_and_a_case():
    without = sorted(n for n, p in REGISTRY.items() if p.category is not SOURCE and
                     p.batch is None)
    assert not without, f"no batching rule for {without}"
    covered = set()
    for name, _, f, makers in CASES:
        covered |= {e.prim.name for e in tj.trace(f, *_examples(name, makers)[0]).eqns}
    for _, f, _, makers, _ in EXTRA_CASES:
        covered |= {e.prim.name for e in tj.trace(f, *_extra_examples(makers, 1)[0]).eqns}
    missing = sorted(n for n, p in REGISTRY.items() if p.category is not SOURCE and
                     n not in covered)
    assert not missing, f"no vmap case for {missing}"


# ---------------------------------------------------------------------------------------------
# 3. the API


def test_in_axes_int_none_tuple_list_and_negative():
    rng = np.random.default_rng(10)
    X, Y, w = rng.standard_normal((4, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)

    def f(x, y, w):
        return np.sin(x) * y + w

    want = np.stack([f(X[:, j], Y[j], w) for j in range(5)])
    for in_axes in [(1, 0, None), [1, 0, None], (-1, -2, None)]:
        assert_same(tj.vmap(f, in_axes=in_axes)(X, Y, w), want, where=str(in_axes))
    # one int for every argument
    assert_same(tj.vmap(f, in_axes=1)(X, Y.T, np.stack([w] * 5, axis=1)), want)
    assert_same(tj.vmap(f, in_axes=-1)(X, Y.T, np.stack([w] * 5, axis=1)), want)


def test_pytree_prefix_in_axes():
    """A dict and a tuple argument, with one axis per leaf or one for the whole argument."""
    rng = np.random.default_rng(11)
    p = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal((6, 2))}
    pair = (rng.standard_normal((6, 3)), rng.standard_normal((3, 6)))

    def f(p, pair):
        x, y = pair
        return np.tanh(x @ p["w"] + p["b"]) * np.sum(y)

    want = np.stack([f({"w": p["w"], "b": p["b"][i]}, (pair[0][i], pair[1][:, i]))
                     for i in range(6)])
    got = tj.vmap(f, in_axes=({"w": None, "b": 0}, (0, 1)))(p, pair)
    assert_same(got, want)
    # a prefix one level up: the whole tuple on axis 0 (y transposed to fit)
    got = tj.vmap(f, in_axes=({"w": None, "b": 0}, 0))(p, (pair[0], pair[1].T))
    assert_same(got, want)


def test_keyword_arguments_are_mapped_over_axis_0():
    rng = np.random.default_rng(12)
    X, S = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    x0 = X[0]

    def f(x, scale):
        return np.exp(x) * scale

    assert_same(tj.vmap(f)(X, scale=S), np.stack([f(X[i], S[i]) for i in range(5)]))
    assert_same(tj.vmap(f, in_axes=(None,))(x0, scale=S), np.stack([f(x0, s) for s in S]))


def test_out_axes_int_negative_pytree_and_none():
    rng = np.random.default_rng(13)
    X, c = rng.standard_normal((5, 3, 2)), rng.standard_normal(4)

    def f(x, c):
        return {"a": x * 2.0, "b": (np.sum(x, axis=0), c * 3.0)}

    per = [f(X[i], c) for i in range(5)]
    a = np.stack([r["a"] for r in per])
    s = np.stack([r["b"][0] for r in per])
    got = tj.vmap(f, in_axes=(0, None), out_axes=1)(X, c)
    assert_same(got["a"], np.moveaxis(a, 0, 1))
    assert_same(got["b"][0], np.moveaxis(s, 0, 1))
    assert_same(got["b"][1], np.stack([c * 3.0] * 5, axis=1))     # broadcast, on axis 1
    got = tj.vmap(f, in_axes=(0, None), out_axes=-1)(X, c)
    assert_same(got["a"], np.moveaxis(a, 0, -1))
    # a pytree prefix, with None for the result that does not depend on the mapped x
    got = tj.vmap(f, in_axes=(0, None), out_axes={"a": -2, "b": (0, None)})(X, c)
    assert_same(got["a"], np.moveaxis(a, 0, -2))
    assert_same(got["b"][0], s)
    assert_same(got["b"][1], c * 3.0)


def test_unmapped_results_are_broadcast_and_axis_size():
    rng = np.random.default_rng(14)
    X, y = rng.standard_normal((4, 3)), rng.standard_normal(3)

    def f(x, y):
        return x + y, np.cos(y)

    mapped, shared = tj.vmap(f, in_axes=(0, None))(X, y)
    assert_same(mapped, X + y)
    assert_same(shared, np.stack([np.cos(y)] * 4))
    # nothing mapped: axis_size gives the number of examples
    got = tj.vmap(lambda y: np.cos(y) * 2, in_axes=None, axis_size=6)(y)
    assert_same(got, np.stack([np.cos(y) * 2] * 6))
    got = tj.vmap(lambda: np.arange(3.0), axis_size=2)()
    assert_same(got, np.stack([np.arange(3.0)] * 2))
    # axis_size agreeing with the mapped axes is fine
    assert_same(tj.vmap(np.sin, axis_size=4)(X), np.sin(X))


def test_python_numbers_reach_the_function_as_python_values():
    rng = np.random.default_rng(15)
    X = rng.standard_normal((5, 6))

    def f(x, n, mode):
        total = x[0] * 0.0
        for k in range(n):              # n must be a Python int here
            total = total + x[k] ** (k + 1)
        return total if mode == "sum" else -total

    want = np.stack([sum(X[i, k] ** (k + 1) for k in range(4)) for i in range(5)])
    assert_same(tj.vmap(f, in_axes=(0, None, None))(X, 4, "sum"), want)
    assert_same(tj.vmap(f, in_axes=(0, None, None))(X, 4, "neg"), -want)
    assert_same(tj.jit(tj.vmap(f, in_axes=(0, None, None)), static_argnums=(1, 2))(X, 4, "sum"),
                want, rtol=RTOL_JIT)


def test_the_wrapper_has_the_functions_name():
    def my_loss(x):
        """The docstring."""
        return np.sum(x ** 2)

    v = tj.vmap(my_loss)
    assert v.__name__ == "vmap_my_loss"
    assert v.__doc__ == my_loss.__doc__
    assert v.__wrapped__ is my_loss
    assert_same(v(np.arange(6.0).reshape(2, 3)), np.array([5.0, 50.0]))


def test_errors_say_what():
    x, y = np.ones((3, 2)), np.ones((4, 2))

    def f(a, b):
        return a * b

    with pytest.raises(ValueError, match=r"different sizes \[3, 4\]"):
        tj.vmap(f)(x, y)
    with pytest.raises(ValueError, match="in_axes has 3 entries.*2 positional"):
        tj.vmap(f, in_axes=(0, 0, 0))(x, x)
    with pytest.raises(ValueError, match="in_axes 2 is out of range.*shape \\(3, 2\\)"):
        tj.vmap(f, in_axes=(2, None))(x, x)
    with pytest.raises(ValueError, match="in_axes -3 is out of range"):
        tj.vmap(f, in_axes=(-3, None))(x, x)
    with pytest.raises(ValueError, match="float argument cannot be mapped"):
        tj.vmap(f)(x, 2.0)
    with pytest.raises(ValueError, match="no argument is mapped.*axis_size"):
        tj.vmap(f, in_axes=None)(x, x)
    with pytest.raises(ValueError, match="axis_size 5 but the mapped axes have size 3"):
        tj.vmap(f, axis_size=5)(x, x)
    with pytest.raises(ValueError, match="out_axes is None for a result that depends"):
        tj.vmap(f, in_axes=(0, None), out_axes=None)(x, x)
    with pytest.raises(ValueError, match="out_axes 3 is out of range"):
        tj.vmap(f, out_axes=3)(x, x)
    with pytest.raises(ValueError, match="do not fit its structure"):
        tj.vmap(lambda p: p["a"], in_axes=({"b": 0},))({"a": x})
    with pytest.raises(ValueError, match="got a dict"):
        tj.vmap(f, in_axes={"a": 0})(x, x)
    with pytest.raises(TypeError, match="in_axes must be an int"):
        tj.vmap(f, in_axes="0")(x, x)
    with pytest.raises(tj.UnsupportedError, match="axis_name"):
        tj.vmap(f, axis_name="batch")
    with pytest.raises(tj.UnsupportedError, match="spmd_axis_name"):
        tj.vmap(f, spmd_axis_name="batch")


# ---------------------------------------------------------------------------------------------
# 4. compositions


def mlp_params(rng):
    return {"w1": rng.standard_normal((4, 6)) * 0.5, "b1": rng.standard_normal(6) * 0.1,
            "w2": rng.standard_normal((6, 2)) * 0.5, "b2": rng.standard_normal(2) * 0.1}


def mlp(W, x):
    h = np.tanh(x @ W["w1"] + W["b1"])
    return h @ W["w2"] + W["b2"]


def mlp_loss(W, x, y):
    return np.sum((mlp(W, x) - y) ** 2)


@pytest.mark.parametrize("backend", [None, "cpu", "cuda-emulator"])
def test_per_example_gradients(backend):
    """vmap(grad(loss), in_axes=(None, 0, 0)): a dict of per-example gradients, stacked."""
    rng = np.random.default_rng(20)
    W, X, Y = mlp_params(rng), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    per_example = tj.vmap(tj.grad(mlp_loss), in_axes=(None, 0, 0))
    if backend is not None:
        per_example = tj.jit(per_example, backend=backend)
    got = tj.to_host(per_example(W, X, Y))
    loop = [tj.grad(mlp_loss)(W, X[i], Y[i]) for i in range(5)]
    want = {k: np.stack([g[k] for g in loop]) for k in W}
    assert_same(got, want, rtol=RTOL if backend is None else RTOL_JIT)
    # the loop itself against finite differences, for one example and one leaf
    fd = finite_differences(lambda w1: mlp_loss({**W, "w1": w1}, X[2], Y[2]), W["w1"])
    np.testing.assert_allclose(want["w1"][2], fd, rtol=1e-6, atol=1e-8)


def _tanh_features(W, x):
    return np.tanh(x @ W) ** 2


def test_grad_of_vmap():
    rng = np.random.default_rng(21)
    W, X, R = rng.standard_normal((4, 3)), rng.standard_normal((6, 4)), \
        rng.standard_normal((6, 3))

    def loss(W):
        return np.sum(tj.vmap(_tanh_features, in_axes=(None, 0))(W, X) * R)

    def loss_closure(W):                # W reaches the batched function as a traced capture
        return np.sum(tj.vmap(lambda x: _tanh_features(W, x))(X) * R)

    want = sum(tj.grad(lambda W: np.sum(_tanh_features(W, X[i]) * R[i]))(W) for i in range(6))
    fd = finite_differences(lambda W: np.sum(np.tanh(X @ W) ** 2 * R), W)
    np.testing.assert_allclose(want, fd, rtol=1e-6, atol=1e-8)
    assert_same(tj.grad(loss)(W), want)
    assert_same(tj.grad(loss_closure)(W), want)
    assert_same(tj.jit(tj.grad(loss))(W), want, rtol=RTOL_JIT)
    # value_and_grad too
    value, g = tj.value_and_grad(loss)(W)
    np.testing.assert_allclose(value, np.sum(np.tanh(X @ W) ** 2 * R), rtol=1e-12)
    assert_same(g, want)


def _f_jvp(x):
    return np.sin(x) * np.sum(x ** 2)


def test_vmap_of_jvp_and_jvp_of_vmap():
    rng = np.random.default_rng(22)
    x, X, T = rng.standard_normal(4), rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    # tangents mapped, the primal shared: the columns of a Jacobian-matrix product
    got = tj.vmap(lambda t: tj.jvp(_f_jvp, (x,), (t,))[1])(T)
    want = np.stack([tj.jvp(_f_jvp, (x,), (t,))[1] for t in T])
    assert_same(got, want)
    eps = 1e-6
    fd = np.stack([(_f_jvp(x + eps * t) - _f_jvp(x - eps * t)) / (2 * eps) for t in T])
    np.testing.assert_allclose(want, fd, rtol=1e-6, atol=1e-8)
    # primals and tangents mapped, both results
    out, tan = tj.vmap(lambda x, t: tj.jvp(_f_jvp, (x,), (t,)))(X, T)
    loop = [tj.jvp(_f_jvp, (X[i],), (T[i],)) for i in range(5)]
    assert_same(out, np.stack([o for o, _ in loop]))
    assert_same(tan, np.stack([t for _, t in loop]))
    # jvp of vmap: the same numbers
    out, tan = tj.jvp(tj.vmap(_f_jvp), (X,), (T,))
    assert_same(out, np.stack([o for o, _ in loop]))
    assert_same(tan, np.stack([t for _, t in loop]))
    jitted = tj.jit(lambda X, T: tj.jvp(tj.vmap(_f_jvp), (X,), (T,)))(X, T)
    assert_same(jitted[1], tan, rtol=RTOL_JIT)


def test_vmap_of_vmap():
    """Two mapped axes, with different in_axes at each level: out[j, i] = f(X[i, j], Y[j])."""
    rng = np.random.default_rng(23)
    X, Y, z = rng.standard_normal((5, 7, 4)), rng.standard_normal((7, 4, 3)), \
        rng.standard_normal(3)

    def f(x, y, z):
        return np.sin(x) @ y + np.max(y, axis=0) * z

    inner = tj.vmap(f, in_axes=(0, None, None))           # over X's rows; y, z shared
    outer = tj.vmap(inner, in_axes=(1, 0, None))          # over X's axis 1 and Y's axis 0
    want = np.stack([np.stack([f(X[i, j], Y[j], z) for i in range(5)]) for j in range(7)])
    got = outer(X, Y, z)
    assert got.shape == (7, 5, 3)
    assert_same(got, want)
    assert_same(tj.jit(outer)(X, Y, z), want, rtol=RTOL_JIT)
    # out_axes at each level: the inner batch axis last, the outer first
    got = tj.vmap(tj.vmap(f, in_axes=(0, None, None), out_axes=-1),
                  in_axes=(1, 0, None))(X, Y, z)
    assert_same(got, np.moveaxis(want, 1, -1))


def test_vmap_of_a_vjp_pullback():
    rng = np.random.default_rng(24)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    CT, X = rng.standard_normal((6, 3)), rng.standard_normal((6, 4))

    def f(x):
        return np.tanh(A @ x)

    out, pullback = tj.vjp(f, x)
    got = tj.vmap(pullback)(CT)
    want = [pullback(ct) for ct in CT]
    assert isinstance(got, tuple) and len(got) == 1
    assert_same(got[0], np.stack([w[0] for w in want]))
    # the pullback of tanh(A x) by hand
    np.testing.assert_allclose(got[0], (CT * (1 - np.tanh(A @ x) ** 2)) @ A, rtol=1e-12)
    # primals mapped too: vjp inside vmap
    got = tj.vmap(lambda x, ct: tj.vjp(f, x)[1](ct)[0])(X, CT)
    assert_same(got, np.stack([tj.vjp(f, X[i])[1](CT[i])[0] for i in range(6)]))


def test_vmap_of_custom_vjp_uses_the_users_rule():
    rng = np.random.default_rng(25)
    # away from the halves, where round jumps
    X = rng.integers(-3, 4, (5, 4)) + rng.uniform(-0.4, 0.4, (5, 4))

    def f(x):
        return st_round(x) * x

    assert_same(tj.vmap(f)(X), np.round(X) * X)
    assert_same(tj.jit(tj.vmap(f))(X), np.round(X) * X, rtol=RTOL_JIT)
    # the straight-through rule: d/dx round(x) * x = x + round(x) (the derived one: round(x))
    want = X + np.round(X)
    assert_same(tj.grad(lambda X: np.sum(tj.vmap(f)(X)))(X), want)
    assert_same(tj.vmap(tj.grad(lambda x: np.sum(f(x))))(X), want)
    assert_same(tj.jit(tj.grad(lambda X: np.sum(tj.vmap(f)(X))))(X), want, rtol=RTOL_JIT)
    # a rule with a residual: finite at 800, where the derived gradient is NaN
    Z = np.array([[-30.0, 0.0, 1.5], [40.0, 800.0, -2.0]])
    g = tj.grad(lambda Z: np.sum(tj.vmap(log1pexp)(Z)))(Z)
    np.testing.assert_allclose(g, sigmoid(Z), rtol=1e-14)
    g = tj.jit(tj.vmap(tj.grad(lambda z: np.sum(log1pexp(z)))))(Z)
    np.testing.assert_allclose(g, sigmoid(Z), rtol=1e-14)


def test_grad_through_a_custom_vjp_with_a_shared_operand():
    """clipped_scale(x, s) with s shared: s's gradient sums over the examples; x's is the
    rule's clipped one."""
    rng = np.random.default_rng(26)
    X, s, R = rng.standard_normal((5, 3)), rng.uniform(-2, 2, 3), rng.standard_normal((5, 3))

    def loss(X, s):
        return np.sum(tj.vmap(clipped_scale, in_axes=(0, None))(X, s) * R)

    gx, gs = tj.grad(loss, argnums=(0, 1))(X, s)
    loop = [tj.grad(lambda x, s: np.sum(clipped_scale(x, s) * R[i]), argnums=(0, 1))(X[i], s)
            for i in range(5)]
    assert_same(gx, np.stack([g[0] for g in loop]))
    assert_same(gs, sum(g[1] for g in loop))
    np.testing.assert_allclose(gx, np.clip(R * s, -0.5, 0.5), rtol=1e-14)
    np.testing.assert_allclose(gs, np.sum(R * X, axis=0), rtol=1e-12)
    gx2, gs2 = tj.jit(tj.grad(loss, argnums=(0, 1)))(X, s)
    assert_same((gx2, gs2), (gx, gs), rtol=RTOL_JIT)


def test_vmap_inside_jit_with_a_captured_traced_value():
    rng = np.random.default_rng(27)
    s, M, X = rng.standard_normal(4), rng.standard_normal((4, 2)), rng.standard_normal((5, 4))

    @tj.jit
    def g(s, M, X):
        # s and M are jit's traced arguments, captured by the batched function (shared)
        return tj.vmap(lambda x: np.sin(x) * s @ M + np.sum(s))(X)

    want = np.stack([np.sin(x) * s @ M + np.sum(s) for x in X])
    assert_same(g(s, M, X), want, rtol=RTOL_JIT)


def test_jit_of_vmap_compiles_once_per_shape():
    rng = np.random.default_rng(28)
    jitted = tj.jit(tj.vmap(_f_jvp))
    X1, X2, X3 = rng.standard_normal((5, 4)), rng.standard_normal((5, 4)), \
        rng.standard_normal((8, 4))
    for X in (X1, X2):
        assert_same(jitted(X), np.stack([_f_jvp(x) for x in X]), rtol=RTOL_JIT)
    assert jitted.trace_count == 1
    assert_same(jitted(X3), np.stack([_f_jvp(x) for x in X3]), rtol=RTOL_JIT)
    assert jitted.trace_count == 2


def _count_dots(fn):
    return sum(e.prim.name == "dot" for e in fn.eqns)


def test_the_batch_axis_is_inside_the_kernels():
    """No Python loop over the examples: the batched IR has as many dots as the unbatched."""
    rng = np.random.default_rng(29)
    W, X, Y = mlp_params(rng), rng.standard_normal((9, 4)), rng.standard_normal((9, 2))
    one = _count_dots(tj.trace(mlp, W, X[0]))
    assert one == 2
    assert _count_dots(tj.trace(tj.vmap(mlp, in_axes=(None, 0)), W, X)) == one
    stacked_W = {k: np.stack([v] * 9) for k, v in W.items()}
    assert _count_dots(tj.trace(tj.vmap(mlp), stacked_W, X)) == one
    grads = _count_dots(tj.trace(tj.grad(mlp_loss), W, X[0], Y[0]))
    assert _count_dots(tj.trace(tj.vmap(tj.grad(mlp_loss), in_axes=(None, 0, 0)), W, X, Y)) \
        == grads
    # and the batched forward pass computes the loop's numbers
    assert_same(tj.vmap(mlp, in_axes=(None, 0))(W, X), np.stack([mlp(W, x) for x in X]))
