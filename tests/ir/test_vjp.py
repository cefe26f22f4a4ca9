"""Reverse-mode gradients (VJP rules) checked against central finite differences in float64.

Covers every primitive that has a VJP rule (elementwise unary and binary ops, cast, select,
the structural ops, gather / scatter_add, the reductions and dot) and the NumPy-level
compositions built on them (mean/var/std, logaddexp, clip, sinh/cosh/tan, log2/log10,
matmul/einsum/tensordot, indexing, stacking, flip, take_along_axis, ...).

For a function f and fixed random r, the loss is L(x) = sum(f(x) * r). The gradient from
`tj.value_and_grad` is compared with (L(x + eps v) - L(x - eps v)) / (2 eps) along random
directions v and, for small inputs, elementwise; the same gradients compiled by `tj.jit` (the
default backend), fused and unfused, are compared with it. The finite differences are computed with
NumPy itself (or a NumPy reference for functions written with tracejit.ops). Inputs stay
away from non-differentiable points; ties (which split the gradient equally, as in JAX) and
products with zero entries have their own exact tests. Every differentiated IR is verified.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracejit as tj
from tracejit import ops
from tracejit.runtime.backends import BACKENDS

from npcheck import cuda_backend, host

EPS = 1e-6
RTOL = 1e-6
FULL_MAX = 40          # elementwise finite differences for inputs up to this many elements
HYP = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------------------------------------
# input generators (all float64)


def normal(rng, shape):
    return rng.uniform(-2.0, 2.0, shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def nonzero(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)


def unit(rng, shape):
    """Inside (-1, 1), away from its ends (the domain of arcsin, arccos, arctanh)."""
    return rng.uniform(-0.9, 0.9, shape)


def above_one(rng, shape):
    """Above 1 (arccosh's domain), away from 1."""
    return rng.uniform(1.2, 4.0, shape)


def distinct(rng, shape):
    """All values at least 0.2 apart (so max/min/sort choices are stable under eps)."""
    n = int(np.prod(shape, dtype=np.int64))
    vals = rng.permutation(n) * 0.3 - 0.15 * n + rng.uniform(0.0, 0.1, n)
    return vals.reshape(shape)


def lattice(rng, shape, offset):
    """Values in k + offset + [0, 0.3] for integers k: two lattices with offsets 0 and 0.5
    are at least 0.2 apart everywhere, whatever broadcasting pairs them up."""
    return rng.integers(-2, 3, shape) + offset + rng.uniform(0.0, 0.3, shape)


def mod_pair(rng, sx, sy):
    """x, y with |x / y| in (2.09, 2.8): far from the jumps of x mod y."""
    x = rng.choice([-1.0, 1.0], sx) * rng.uniform(2.2, 2.8, sx)
    y = rng.choice([-1.0, 1.0], sy) * rng.uniform(1.0, 1.05, sy)
    return x, y


# ---------------------------------------------------------------------------------------------
# the gradient check


def _fd_loss(ref, r):
    def loss(*args):
        return float(np.sum(np.asarray(ref(*args), dtype=np.float64) * r))
    return loss


def check_grad(f, args, ref=None, seed=0, directions=3, full=True, prims=()):
    """Check tj.grad of sum(f(*args) * r) against central differences of NumPy's `ref`.

    `f` is traced (it may use tracejit.ops); `ref` (default `f`) runs on NumPy arrays.
    `prims` names primitives that must appear in f's traced IR (so the rule under test runs).
    """
    ref = f if ref is None else ref
    args = tuple(np.asarray(a, dtype=np.float64) for a in args)
    rng = np.random.default_rng(seed + 1000)
    out = np.asarray(ref(*args), dtype=np.float64)
    r = rng.standard_normal(out.shape)
    fd_loss = _fd_loss(ref, r)

    def loss(*xs):
        return np.sum(f(*xs) * r)

    wrt = tuple(range(len(args)))
    # The same gradients compiled: the default backend (cpu) fused and unfused, and the CUDA
    # backend fused (unfused too unless emulated; the emulator's compiles cost a tenth of a
    # second, so they start here and run while the checks below do).
    runs = [("cpu", True), ("cpu", False)]
    cuda = cuda_backend()
    if cuda:
        runs += [(cuda, True)] + ([(cuda, False)] if BACKENDS[cuda].emulates is None else [])
    compiled = [(backend, fuse, tj.jit(tj.value_and_grad(loss, argnums=wrt), fuse=fuse,
                                       backend=backend)) for backend, fuse in runs]
    for backend, _, jitted in compiled:
        if backend != "cpu":
            jitted.compiled(*args)
    if prims:
        names = {e.prim.name for e in tj.trace(f, *args).eqns}
        assert set(prims) <= names, f"{prims} not all in the traced IR: {sorted(names)}"
    tj.verify(tj.trace(tj.grad(loss, argnums=wrt), *args))
    value, grads = tj.value_and_grad(loss, argnums=wrt)(*args)
    base = fd_loss(*args)
    scale = float(np.sum(np.abs(out * r))) + 1.0
    np.testing.assert_allclose(value, base, rtol=1e-12, atol=1e-12 * scale)
    assert len(grads) == len(args)
    grads = [np.asarray(g) for g in grads]
    for g, a in zip(grads, args):
        assert g.shape == a.shape and g.dtype == a.dtype, (g.shape, g.dtype, a.shape, a.dtype)
        assert np.all(np.isfinite(g))
    for backend, fuse, jitted in compiled:
        v2, g2 = host(jitted(*args))
        np.testing.assert_allclose(v2, value, rtol=1e-10, atol=1e-12 * scale)
        for a, b in zip(g2, grads):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11 * (np.max(np.abs(b)) + 1),
                                       err_msg=f"jit(value_and_grad, {backend}, fuse={fuse})")

    def central(vs):
        plus = fd_loss(*(a + EPS * v for a, v in zip(args, vs)))
        minus = fd_loss(*(a - EPS * v for a, v in zip(args, vs)))
        return (plus - minus) / (2 * EPS)

    atol = 1e-8 * scale
    for _ in range(directions):
        vs = [rng.standard_normal(a.shape) for a in args]
        ad = sum(float(np.sum(g * v)) for g, v in zip(grads, vs))
        fd = central(vs)
        assert abs(ad - fd) <= RTOL * abs(fd) + atol, f"directional: autodiff {ad}, FD {fd}"
    if full and sum(a.size for a in args) <= FULL_MAX:
        for i, (g, a) in enumerate(zip(grads, args)):
            num = np.zeros(a.shape)
            for k in np.ndindex(a.shape):
                vs = [np.zeros(b.shape) for b in args]
                vs[i][k] = 1.0
                num[k] = central(vs)
            np.testing.assert_allclose(g, num, rtol=RTOL, atol=atol,
                                       err_msg=f"gradient of argument {i}")
    return grads


# ---------------------------------------------------------------------------------------------
# primitives, one case each (plus the variants that reach other branches of the rule)


def _pad_ref(x, value, starts, steps, shape):
    out = np.full(shape, value, dtype=np.float64)
    idx = tuple(slice(s, s + n * st if s + n * st >= 0 else None, st)
                for s, st, n in zip(starts, steps, np.shape(x)))
    out[idx] = x
    return out


def _scatter_ref(x, idx, u):
    out = np.array(x, copy=True)
    np.add.at(out, tuple(idx), u)
    return out


def _dot_ref(a, b, contract, batch):
    """ops.dot by np.einsum: output axes are batch, lhs free, rhs free."""
    (lc, rc), (lb, rb) = contract, batch
    letters = iter("abcdefghijklmnop")
    la = [next(letters) for _ in range(a.ndim)]
    lr = [None] * b.ndim
    for i, j in zip(lc + lb, rc + rb):
        lr[j] = la[i]
    lr = [c if c is not None else next(letters) for c in lr]
    out = ([la[i] for i in lb] + [la[i] for i in range(a.ndim) if i not in lc + lb]
           + [lr[j] for j in range(b.ndim) if j not in rc + rb])
    return np.einsum(f"{''.join(la)},{''.join(lr)}->{''.join(out)}", a, b)


IDX = np.array([0, 2, 0, 0, 1])   # repeated indices: their cotangents must accumulate

# (id, f, ref or None, input makers, primitives that must be in the IR)
PRIMITIVE_CASES = [
    ("neg", lambda x: -x, None, [normal], ["neg"]),
    ("abs", np.abs, None, [nonzero], ["abs"]),
    ("exp", np.exp, None, [normal], ["exp"]),
    ("expm1", np.expm1, None, [normal], ["expm1"]),
    ("log", np.log, None, [positive], ["log"]),
    ("log1p", np.log1p, None, [positive], ["log1p"]),
    ("sqrt", np.sqrt, None, [positive], ["sqrt"]),
    ("sin", np.sin, None, [normal], ["sin"]),
    ("cos", np.cos, None, [normal], ["cos"]),
    ("tanh", np.tanh, None, [normal], ["tanh"]),
    ("atan", np.arctan, None, [normal], ["atan"]),
    ("asinh", np.arcsinh, None, [normal], ["asinh"]),
    ("asin", np.arcsin, None, [unit], ["asin"]),
    ("acos", np.arccos, None, [unit], ["acos"]),
    ("acosh", np.arccosh, None, [above_one], ["acosh"]),
    ("atanh", np.arctanh, None, [unit], ["atanh"]),
    ("cbrt", np.cbrt, None, [nonzero], ["cbrt"]),
    ("atan2", np.arctan2, None, [normal, nonzero], ["atan2"]),
    ("atan2_quadrants", lambda y, x: np.arctan2(y, -x), None, [nonzero, positive], ["atan2"]),
    ("hypot", np.hypot, None, [normal, nonzero], ["hypot"]),
    ("copysign", np.copysign, None, [nonzero, nonzero], ["copysign"]),
    ("fmod", np.fmod, None, ["mod"], ["fmod"]),
    ("rint_is_flat", lambda x: np.rint(x) * x, None, [lambda r, s: normal(r, s) + 0.25],
     ["rint"]),
    ("logaddexp2", np.logaddexp2, None, [normal, normal], []),
    ("heaviside", lambda x, h: np.heaviside(x, h) * x, None, [nonzero, normal], ["select"]),
    ("sinc", np.sinc, None, [nonzero], ["sin"]),
    ("deg2rad_rad2deg", lambda x: np.deg2rad(x) * np.rad2deg(x), None, [normal], []),
    ("add", np.add, None, [normal, normal], ["add"]),
    ("sub", np.subtract, None, [normal, normal], ["sub"]),
    ("mul", np.multiply, None, [normal, normal], ["mul"]),
    ("div", np.divide, None, [normal, nonzero], ["div"]),
    ("mod", np.mod, None, ["mod"], ["mod"]),
    ("pow", np.power, None, [positive, normal], ["pow"]),
    ("pow_literal_exponent", lambda x: x ** 2.5, None, [positive], ["pow"]),
    ("pow_int_exponent_negative_base", lambda x: x ** 3, None, [nonzero], ["pow"]),
    ("pow_literal_base", lambda x: 2.0 ** x, None, [normal], ["pow"]),
    ("max", np.maximum, None, ["lattice"], ["max"]),
    ("min", np.minimum, None, ["lattice"], ["min"]),
    ("select", lambda x, y: np.where(x > y, x * y, np.sin(y)), None, ["lattice"], ["select"]),
    ("select_scalar_branch", lambda x: np.where(x > 0, x, 0.0), None, [nonzero], ["select"]),
    ("broadcast_in_dim", lambda x: np.broadcast_to(x[:, :1], (4, 3, 1)) * 1.0, None, [normal],
     ["broadcast_in_dim"]),
    ("reshape", lambda x: np.sin(x).reshape(2, 6), None, [normal], ["reshape"]),
    ("transpose", lambda x: np.transpose(np.sin(x).reshape(3, 2, 2), (1, 2, 0)), None, [normal],
     ["transpose"]),
    ("slice", lambda x: x[1:, ::2], None, [normal], ["slice"]),
    ("slice_negative_step", lambda x: x[::-1, 3:0:-2], None, [normal], ["slice"]),
    ("concatenate", lambda x, y: np.concatenate([x, y, x], axis=1), None, [normal, normal],
     ["concatenate"]),
    ("gather", lambda x: x[IDX], None, [normal], ["gather"]),
    ("gather_2d_index", lambda x: x[np.array([[1, 1], [0, 2]]), 2], None, [normal], ["gather"]),
    ("reduce_sum", lambda x: np.sum(x, axis=0), None, [normal], ["reduce_sum"]),
    ("reduce_max", lambda x: np.max(x, axis=1), None, [distinct], ["reduce_max"]),
    ("reduce_min", lambda x: np.min(x, axis=0), None, [distinct], ["reduce_min"]),
    ("reduce_prod", lambda x: np.prod(x, axis=1), None, [nonzero], ["reduce_prod"]),
    ("dot", lambda a, b: a @ b.T, None, [normal, normal], ["dot"]),
    # pad and scatter_add are not reachable from NumPy calls directly: call the ops.
    ("pad_literal_value",
     lambda x: ops.pad(x, np.float64(0.0), (1, 4), (2, -1), (6, 6)),
     lambda x: _pad_ref(x, 0.0, (1, 4), (2, -1), (6, 6)), [normal], ["pad"]),
    ("pad_traced_value",
     lambda x, v: ops.pad(x, v, (0, 1), (1, 2), (4, 8)),
     lambda x, v: _pad_ref(x, v, (0, 1), (1, 2), (4, 8)), [normal, "scalar"], ["pad"]),
    ("scatter_add",
     lambda x, u: ops.scatter_add(x, [IDX], u),
     lambda x, u: _scatter_ref(x, [IDX], u), [normal, "updates"], ["scatter_add"]),
    ("scatter_add_2_indices",
     lambda x, u: ops.scatter_add(x, [np.array([0, 1, 0]), np.array([2, 2, 2])], u),
     lambda x, u: _scatter_ref(x, [np.array([0, 1, 0]), np.array([2, 2, 2])], u),
     [normal, "updates2"], ["scatter_add"]),
]


def _make_inputs(makers, rng, shape=(3, 4)):
    out = []
    for m in makers:
        if m == "mod":
            return list(mod_pair(rng, shape, shape))
        if m == "lattice":
            return [lattice(rng, shape, 0.0), lattice(rng, shape, 0.5)]
        if m == "scalar":
            out.append(normal(rng, ()))
        elif m == "updates":
            out.append(normal(rng, (len(IDX), shape[1])))
        elif m == "updates2":
            out.append(normal(rng, (3,)))
        else:
            out.append(m(rng, shape))
    return out


@pytest.mark.parametrize("case", PRIMITIVE_CASES, ids=[c[0] for c in PRIMITIVE_CASES])
def test_primitive_vjp(case):
    _, f, ref, makers, prims = case
    rng = np.random.default_rng(1)
    check_grad(f, _make_inputs(makers, rng), ref=ref, prims=prims)


DOT_CONFIGS = [
    # (lhs shape, rhs shape, contract, batch)
    ((3, 4), (4, 5), ((1,), (0,)), ((), ())),
    ((4, 3), (5, 4), ((0,), (1,)), ((), ())),
    ((2, 3, 4), (2, 4, 5), ((2,), (1,)), ((0,), (0,))),
    ((3, 2, 4), (4, 5, 2), ((2,), (0,)), ((1,), (2,))),                # batch axes not leading
    ((2, 3, 4), (4, 3, 5), ((2, 1), (0, 1)), ((), ())),                # contract order mixed
    ((2, 3, 4), (3, 2, 4), ((1, 0), (0, 1)), ((2,), (2,))),            # only batch remains
    ((3,), (3,), ((0,), (0,)), ((), ())),                              # inner product
    ((3,), (2,), ((), ()), ((), ())),                                  # outer product
]


@pytest.mark.parametrize("sa,sb,contract,batch", DOT_CONFIGS)
def test_dot_vjp(sa, sb, contract, batch):
    rng = np.random.default_rng(2)
    a, b = normal(rng, sa), normal(rng, sb)
    check_grad(lambda a, b: ops.dot(a, b, contract, batch),
               (a, b), ref=lambda a, b: _dot_ref(a, b, contract, batch), prims=["dot"])


# ---------------------------------------------------------------------------------------------
# cast (float -> float): finite differences through f32 are meaningless, so check exactly


def test_cast_f32_to_f64_gradient_is_f32():
    rng = np.random.default_rng(3)
    x = normal(rng, (3, 4)).astype(np.float32)
    r = rng.standard_normal((3, 4))

    def loss(x):
        return np.sum(np.sin(x.astype(np.float64)) * r)

    assert "cast" in {e.prim.name for e in tj.trace(loss, x).eqns}
    tj.verify(tj.trace(tj.grad(loss), x))
    g = tj.grad(loss)(x)
    assert g.dtype == np.float32 and g.shape == x.shape
    np.testing.assert_allclose(g, (np.cos(x.astype(np.float64)) * r).astype(np.float32),
                               rtol=1e-6)


def test_cast_f64_to_f32_gradient_is_f64():
    rng = np.random.default_rng(4)
    x = normal(rng, (5,))
    r = rng.standard_normal(5).astype(np.float32)

    def loss(x):
        return np.sum(x.astype(np.float32) * r)

    g = tj.grad(loss)(x)
    assert g.dtype == np.float64 and g.shape == (5,)
    np.testing.assert_array_equal(g, r.astype(np.float64))


# ---------------------------------------------------------------------------------------------
# NumPy-level compositions


def _take_idx():
    return np.array([[0, 2, 2], [1, 1, 0], [3, 0, 3]])   # repeated entries in each row


COMPOSITION_CASES = [
    ("mean", lambda x: np.mean(x, axis=1), [normal]),
    ("mean_all", np.mean, [normal]),
    ("var", lambda x: np.var(x, axis=0), [normal]),
    ("var_ddof1_keepdims", lambda x: np.var(x, axis=1, ddof=1, keepdims=True), [normal]),
    ("std", np.std, [normal]),
    ("std_ddof1_axes", lambda x: x.std(axis=(0, 1), ddof=1), [normal]),
    ("logaddexp", np.logaddexp, [normal, normal]),
    ("clip_scalars", lambda x: np.clip(x, -1.05, 0.95), [normal]),
    ("clip_arrays", lambda x, lo, hi: np.clip(x, lo - 1.05, hi + 1.05), ["clip"]),
    ("sinh", np.sinh, [normal]),
    ("cosh", np.cosh, [normal]),
    ("tan", np.tan, ["tan"]),
    ("log2", np.log2, [positive]),
    ("log10", np.log10, [positive]),
    ("square", np.square, [normal]),
    ("reciprocal", np.reciprocal, [nonzero]),
    ("fmax", np.fmax, ["lattice"]),
    ("fmin", np.fmin, ["lattice"]),
    ("where", lambda x, y: np.where(x < y, np.exp(x), y ** 2), ["lattice"]),
    ("matmul_2d", lambda a, b: a @ b.T, [normal, normal]),
    ("matmul_vec_mat", lambda a, b: a[0] @ b.T, [normal, normal]),
    ("matmul_mat_vec", lambda a, b: np.matmul(a, b[1]), [normal, normal]),
    ("matmul_batched", lambda a, b: np.matmul(a.reshape(3, 2, 2), b.reshape(3, 2, 2)),
     [normal, normal]),
    ("matmul_broadcast_batch", lambda a, b: a.reshape(3, 1, 2, 2) @ b[:2].reshape(2, 2, 2),
     [normal, normal]),
    ("einsum_matmul", lambda a, b: np.einsum("ij,kj->ik", a, b), [normal, normal]),
    ("einsum_batch", lambda a, b: np.einsum("bij,bkj->bik", a.reshape(3, 2, 2),
                                            b.reshape(3, 2, 2)), [normal, normal]),
    ("einsum_full_contraction", lambda a, b: np.einsum("ij,ij->", a, b), [normal, normal]),
    ("einsum_sum_axis", lambda a, b: np.einsum("ij,jk->i", a, b.T), [normal, normal]),
    ("einsum_three_operands", lambda a, b: np.einsum("ij,kj,k->i", a, b, b[:, 0]),
     [normal, normal]),
    ("tensordot_1", lambda a, b: np.tensordot(a, b.T, axes=1), [normal, normal]),
    ("tensordot_pairs", lambda a, b: np.tensordot(a, b, axes=([1, 0], [1, 0])),
     [normal, normal]),
    ("outer", np.outer, [normal, normal]),
    ("inner", lambda a, b: np.inner(a, b), [normal, normal]),
    ("np_dot", lambda a, b: np.dot(a, b.T), [normal, normal]),
    ("index_int_and_slice", lambda x: x[1, 1:3] * x[-1, ::2], [normal]),
    ("index_negative_steps", lambda x: x[::-2, ::-1] + x[2::-2, -1:-5:-1], [normal]),
    ("index_none_ellipsis", lambda x: x[None, ..., 1:], [normal]),
    ("index_repeated_ints", lambda x: x[[0, 0, 2, 0]], [normal]),
    ("index_repeated_2d", lambda x: x[np.array([2, 2, 0]), np.array([1, 1, 1])], [normal]),
    ("index_adv_after_slice", lambda x: x[1:, [3, 3, 0]], [normal]),
    ("index_negative_ints", lambda x: x[[-1, -3, -1]], [normal]),
    ("index_bool_mask_const", lambda x: x[np.array([True, False, True])], [normal]),
    ("take", lambda x: np.take(x, [5, 5, 11, 0]), [normal]),
    ("take_axis", lambda x: np.take(x, [3, 3, 1], axis=1), [normal]),
    ("concatenate", lambda x, y: np.concatenate([x, y], axis=0), [normal, normal]),
    ("concatenate_axis_none", lambda x, y: np.concatenate([x, y[0]], axis=None),
     [normal, normal]),
    ("stack", lambda x, y: np.stack([x, y, x], axis=1), [normal, normal]),
    ("hstack_vstack", lambda x, y: np.hstack([x, np.vstack([y[0], y[1]]).T[:3]]),
     [normal, normal]),
    ("flip", lambda x: np.flip(x) * np.arange(12.0).reshape(3, 4), [normal]),
    ("flip_axis", lambda x: np.flip(x, axis=1) - x, [normal]),
    ("take_along_axis", lambda x: np.take_along_axis(x, _take_idx(), axis=1), [normal]),
    ("take_along_axis_0", lambda x: np.take_along_axis(
        x, np.array([[2, 0, 2, 1], [2, 2, 0, 0]]), axis=0), [normal]),
    ("sum_of_squares_through_T", lambda x: (x.T @ x).sum(axis=0), [normal]),
    ("softmax", lambda x: np.exp(x - np.max(x, axis=1, keepdims=True))
     / np.sum(np.exp(x - np.max(x, axis=1, keepdims=True)), axis=1, keepdims=True), [distinct]),
]


def _make_composition_inputs(makers, rng):
    if makers == ["clip"]:
        # x in k + [0, 0.3], bounds at offsets 0.5 +- 1.05 from lattice points: no ties.
        return [lattice(rng, (3, 4), 0.0), lattice(rng, (3, 4), 0.5) - 1.0,
                lattice(rng, (3, 4), 0.5) + 1.0]
    if makers == ["tan"]:
        return [rng.uniform(-1.2, 1.2, (3, 4))]
    return _make_inputs(makers, rng)


@pytest.mark.parametrize("case", COMPOSITION_CASES, ids=[c[0] for c in COMPOSITION_CASES])
def test_composition_vjp(case):
    _, f, makers = case
    rng = np.random.default_rng(5)
    check_grad(f, _make_composition_inputs(makers, rng))


def test_zero_size_input():
    x = np.zeros((0, 3))
    g = tj.grad(lambda x: np.sum(np.sin(x)) + 1.0)(x)
    assert g.shape == (0, 3) and g.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# ties split the gradient equally (as JAX does), and exact products with zeros


def test_reduce_max_ties_split_equally():
    g = tj.grad(lambda x: np.max(x))(np.array([1.0, 3.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    g = tj.grad(lambda x: np.min(x))(np.array([2.0, 1.0, 1.0, 5.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5, 0.0])


def test_reduce_max_ties_along_axis():
    x = np.array([[1.0, 3.0, 3.0], [4.0, 4.0, 4.0], [5.0, 0.0, 1.0]])
    w = np.array([1.0, 3.0, -2.0])
    g = tj.grad(lambda x: np.sum(np.max(x, axis=1) * w))(x)
    expected = np.array([[0.0, 0.5, 0.5], [1.0, 1.0, 1.0], [-2.0, 0.0, 0.0]])
    np.testing.assert_allclose(g, expected, rtol=1e-15, atol=0)
    g = tj.grad(lambda x: np.sum(np.min(x, axis=0, keepdims=True)))(x.T)
    np.testing.assert_allclose(g, [[1, 1 / 3, 0], [0, 1 / 3, 1], [0, 1 / 3, 0]], rtol=1e-15)


def test_binary_max_min_ties_split_equally():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([1.0, 0.0, 5.0])
    for fn in (np.maximum, np.minimum):
        gx, gy = tj.grad(lambda x, y: np.sum(fn(x, y)), argnums=(0, 1))(x, y)
        big = fn is np.maximum
        np.testing.assert_array_equal(gx, [0.5, 1.0 if big else 0.0, 0.0 if big else 1.0])
        np.testing.assert_array_equal(gy, [0.5, 0.0 if big else 1.0, 1.0 if big else 0.0])
    # np.maximum(x, x): each operand gets one half, which add up to the identity's gradient.
    gx = tj.grad(lambda x: np.sum(np.maximum(x, x) * np.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_array_equal(gx, [1.0, 2.0, 3.0])
    gx, gy = tj.grad(lambda x, y: np.maximum(x, y), argnums=(0, 1))(2.0, 2.0)
    assert (gx, gy) == (0.5, 0.5)


PROD_ZERO_CASES = [
    (np.array([2.0, 0.0, 3.0]), None),
    (np.array([2.0, 0.0, 0.0]), None),
    (np.array([0.0, 0.0, 0.0]), None),
    (np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [2.0, 3.0, 4.0], [0.0, 5.0, -2.0]]), 1),
    (np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [2.0, 3.0, 4.0], [0.0, 5.0, -2.0]]), 0),
    (np.arange(24.0).reshape(2, 3, 4) % 5 - 1, (0, 2)),
]


def _prod_of_others(x, axis):
    """d prod / d x_i by brute force: the product of the slice with x_i replaced by 1."""
    axes = tuple(range(x.ndim)) if axis is None else np.atleast_1d(axis)
    out = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        y = x.copy()
        y[k] = 1.0
        p = np.prod(y, axis=tuple(int(a) for a in axes), keepdims=True)
        out[k] = p[tuple(0 if i in axes else k[i] for i in range(x.ndim))]
    return out


@pytest.mark.parametrize("x,axis", PROD_ZERO_CASES)
def test_reduce_prod_with_zeros_is_exact(x, axis):
    g = tj.grad(lambda x: np.sum(np.prod(x, axis=axis)))(x)
    np.testing.assert_array_equal(g, _prod_of_others(x, axis))
    check_grad(lambda x: np.prod(x, axis=axis, keepdims=True), [x], full=True)


# ---------------------------------------------------------------------------------------------
# hypothesis: broadcasting, axes, keepdims, permutations, slices, index arrays


BINARY = {
    "add": (np.add, normal, normal),
    "sub": (np.subtract, normal, normal),
    "mul": (np.multiply, normal, normal),
    "div": (np.divide, normal, nonzero),
    "pow": (np.power, positive, normal),
    "logaddexp": (np.logaddexp, normal, normal),
    "maximum": (np.maximum, None, None),
    "minimum": (np.minimum, None, None),
    "fmax": (np.fmax, None, None),
    "mod": (np.mod, None, None),
    "arith_chain": (lambda x, y: np.sin(x) * y / (1.0 + y * y) - x ** 2, normal, normal),
}

shapes2 = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1,
                                            max_side=3)


@HYP
@given(name=st.sampled_from(sorted(BINARY)), shapes=shapes2, seed=st.integers(0, 2**16))
def test_binary_broadcasting(name, shapes, seed):
    fn, mx, my = BINARY[name]
    sx, sy = shapes.input_shapes
    rng = np.random.default_rng(seed)
    if name == "mod":
        x, y = mod_pair(rng, sx, sy)
    elif mx is None:
        x, y = lattice(rng, sx, 0.0), lattice(rng, sy, 0.5)
        if rng.random() < 0.5:
            x, y = y, x
    else:
        x, y = mx(rng, sx), my(rng, sy)
    check_grad(fn, (x, y), seed=seed)


@HYP
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3),
       seed=st.integers(0, 2**16))
def test_where_broadcasting(shapes, seed):
    sc, sx, sy = shapes.input_shapes
    rng = np.random.default_rng(seed)
    cond = rng.random(sc) < 0.5
    check_grad(lambda x, y: np.where(cond, x * 2.0, np.sin(y)),
               (normal(rng, sx), normal(rng, sy)), seed=seed)


@st.composite
def shape_and_axis(draw, min_dims=0):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=3))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none" or not shape:
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-len(shape), len(shape) - 1))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                         unique=True))
    return shape, tuple(axes)


def _count(shape, axis):
    if axis is None:
        return int(np.prod(shape, dtype=np.int64))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


@HYP
@given(kind=st.sampled_from(["sum", "max", "min", "prod", "mean", "var", "std"]),
       sa=shape_and_axis(), keepdims=st.booleans(), ddof=st.integers(0, 1),
       seed=st.integers(0, 2**16))
def test_reductions(kind, sa, keepdims, ddof, seed):
    shape, axis = sa
    rng = np.random.default_rng(seed)
    x = (distinct if kind in ("max", "min") else nonzero if kind == "prod" else normal)(
        rng, shape)
    fn = getattr(np, kind)
    if kind in ("var", "std"):
        n = _count(shape, axis)
        ddof = min(ddof, n - 1)                 # keep n - ddof > 0
        assume(kind == "var" or n >= 2)         # std of one value: sqrt(0) has no derivative
        check_grad(lambda x: fn(x, axis=axis, keepdims=keepdims, ddof=ddof), [x], seed=seed)
    else:
        check_grad(lambda x: fn(x, axis=axis, keepdims=keepdims), [x], seed=seed)


@HYP
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_transpose_reshape(data, seed):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    check_grad(lambda x: np.transpose(x, perm).reshape(-1, shape[perm[-1]]) * 2.0, [x],
               seed=seed)


@st.composite
def slices_for(draw, shape):
    out = []
    for n in shape:
        start = draw(st.one_of(st.none(), st.integers(-n - 1, n)))
        stop = draw(st.one_of(st.none(), st.integers(-n - 1, n)))
        step = draw(st.one_of(st.none(), st.sampled_from([-3, -2, -1, 1, 2, 3])))
        out.append(slice(start, stop, step))
    return tuple(out)


@HYP
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_slicing(data, seed):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    key = data.draw(slices_for(shape))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    check_grad(lambda x: np.sin(x[key]), [x], seed=seed)


@HYP
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_integer_array_indexing(data, seed):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    nidx = data.draw(st.integers(1, len(shape)))
    ishape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5))
    idx = tuple(np.array(data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(
        -shape[k], shape[k] - 1)))) for k in range(nidx))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    g = check_grad(lambda x: x[idx] * x[idx], [x], seed=seed)[0]
    # The gradient of sum(x[idx] * w) is w accumulated at the (repeated) indexed positions.
    w = rng.standard_normal(x[idx].shape)
    expected = np.zeros_like(x)
    np.add.at(expected, idx, w)
    np.testing.assert_allclose(tj.grad(lambda x: np.sum(x[idx] * w))(x), expected, rtol=1e-14)
    assert g.shape == x.shape


@HYP
@given(shapes=hnp.mutually_broadcastable_shapes(
    signature="(m?,n),(n,p?)->(m?,p?)", max_dims=2, max_side=3),
    seed=st.integers(0, 2**16))
def test_matmul_shapes(shapes, seed):
    sa, sb = shapes.input_shapes
    rng = np.random.default_rng(seed)
    check_grad(np.matmul, (normal(rng, sa), normal(rng, sb)), seed=seed)


# ---------------------------------------------------------------------------------------------
# second order: the gradient IR is differentiable again (Hessian-vector products)


SECOND_ORDER_CASES = [
    ("sin_mul", lambda x: np.sin(x) * x, normal),
    ("exp_log", lambda x: np.exp(x) + np.log(x) * x, positive),
    ("tanh_sqrt_div", lambda x: np.tanh(x) / np.sqrt(x), positive),
    ("atan_expm1_log1p", lambda x: np.arctan(x) * np.expm1(x) + np.log1p(x) ** 2, positive),
    ("pow", lambda x: x ** x[::-1], positive),
    ("inverse_trig", lambda x: np.arcsin(x) * np.arccos(x) + np.arctanh(x) ** 2
     + np.arctan2(x, x[::-1] + 2.0), unit),
    ("acosh_cbrt_hypot", lambda x: np.arccosh(x) * np.cbrt(x) + np.hypot(x, x[::-1]), above_one),
    ("slice_and_index", lambda x: x[1:, ::-2] ** 3 + x[[0, 0]][:, 2:] ** 2, normal),
    ("reductions", lambda x: np.max(x, axis=0) * np.prod(x, axis=0) + np.var(x) ** 2, distinct),
    ("matmul", lambda x: np.tanh(x @ x.T), normal),
    ("softmax_logaddexp", lambda x: np.logaddexp(x, x[::-1] ** 2) / np.sum(np.exp(x)), normal),
    ("concat_take_along", lambda x: np.take_along_axis(
        np.concatenate([x, x ** 2], axis=1), np.array([[0, 7, 7]] * 3), axis=1) ** 2, normal),
]


@pytest.mark.parametrize("case", SECOND_ORDER_CASES, ids=[c[0] for c in SECOND_ORDER_CASES])
def test_hessian_vector_product(case):
    _, f, maker = case
    rng = np.random.default_rng(6)
    x = maker(rng, (3, 4))
    r = rng.standard_normal(np.shape(f(x)))
    v = rng.standard_normal(x.shape)

    def loss(x):
        return np.sum(f(x) * r)

    g = tj.grad(loss)

    def gv(x):
        return np.sum(g(x) * v)

    tj.verify(tj.trace(tj.grad(gv), x))
    hvp = tj.grad(gv)(x)
    fd = (g(x + EPS * v) - g(x - EPS * v)) / (2 * EPS)
    scale = np.max(np.abs(g(x))) + 1.0
    np.testing.assert_allclose(hvp, fd, rtol=1e-5, atol=1e-7 * scale)
