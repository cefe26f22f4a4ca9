"""Forward mode (tracejit/forward.py, tj.jvp): the Jacobian-vector product of every primitive
against float64 central finite differences (the cases of test_vjp.py and more), every
primitive of the registry covered, and jvp composed with grad and jit."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit import ops
from test_vjp import PRIMITIVE_CASES, _make_inputs, normal, positive
from tracejit.primitives import REGISTRY

EPS = 1e-6


def central(f, xs, ts):
    """(f(x + eps t) - f(x - eps t)) / 2 eps, leafwise."""
    up = f(*[x + EPS * t for x, t in zip(xs, ts)])
    down = f(*[x - EPS * t for x, t in zip(xs, ts)])
    return (np.asarray(up) - np.asarray(down)) / (2 * EPS)


def spd(rng, shape):
    x = rng.standard_normal(shape)
    return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])


# Primitives the cases of test_vjp.py do not reach: (id, f, input makers).
MORE_CASES = [
    ("cumsum", lambda x: np.cumsum(x, axis=1), [normal]),
    ("cumprod", lambda x: np.cumprod(x, axis=0), [normal]),
    ("sort", lambda x: np.sort(x, axis=1), [normal]),
    ("cholesky", lambda a: np.linalg.cholesky(a), [spd]),
    ("solve", lambda a, b: np.linalg.solve(a, b), [spd, normal]),
    ("slogdet", lambda a: np.linalg.slogdet(a)[1], [spd]),
    ("eigh", lambda a: np.linalg.eigvalsh(a), [spd]),
    ("svd", lambda a: np.linalg.svd(a, compute_uv=False), [normal]),
    ("qr", lambda a: np.abs(np.linalg.qr(a)[1]), [normal]),
    ("triangular_solve", lambda a, b: ops.triangular_solve(np.tril(a) + 4 * np.eye(4), b,
                                                           lower=True), [spd, normal]),
    ("expm1_log1p", lambda x: np.log1p(np.expm1(x) ** 2), [positive]),
    ("floor_ceil", lambda x: np.floor(x) + np.ceil(x) + x, [normal]),
    ("sign_signbit", lambda x: np.sign(x) * x + np.signbit(x), [normal]),
    ("custom_vjp_call", lambda x: _softplus(x) * x, [normal]),
    ("custom_jvp_call", lambda x: _softplus_jvp(x) * x, [normal]),
    ("checkpoint", lambda x, y: tj.checkpoint(lambda a, b: np.sin(a) * b)(x, y) * x,
     [normal, normal]),
    ("optimization_barrier", lambda x: ops.optimization_barrier(np.sin(x)) * x, [normal]),
]


@tj.custom_vjp
def _softplus(x):
    return np.logaddexp(x, 0.0)


_softplus.defvjp(lambda x: (_softplus(x), x), lambda x, g: (g / (1 + np.exp(-x)),))


@tj.custom_jvp
def _softplus_jvp(x):
    return np.logaddexp(x, 0.0)


_softplus_jvp.defjvps(lambda t, out, x: t / (1 + np.exp(-x)))
SYMMETRIC = {"cholesky", "eigh"}
SHAPES = {"qr": (4, 3), "solve": (4, 4), "cholesky": (4, 4), "slogdet": (4, 4), "eigh": (4, 4),
          "triangular_solve": (4, 4)}


def _inputs(name, makers, rng):
    """The inputs of case `name`: test_vjp.py's makers for its cases, else these."""
    if name in VJP_CASES:
        return _make_inputs(makers, rng)
    shape = SHAPES.get(name, (3, 4))
    if name in ("solve", "triangular_solve"):
        return [spd(rng, shape), normal(rng, (shape[0], 2))]
    return [m(rng, shape) for m in makers]


VJP_CASES = {c[0] for c in PRIMITIVE_CASES}
# A NumPy reference where the function calls the ops themselves.
REFERENCES = {"triangular_solve": lambda a, b: np.linalg.solve(np.tril(a) + 4 * np.eye(4), b),
              "custom_jvp_call": lambda x: np.logaddexp(x, 0.0) * x,
              "checkpoint": lambda x, y: np.sin(x) * y * x,
              "optimization_barrier": lambda x: np.sin(x) * x}
CASES = [(c[0], c[2] or c[1], c[1], c[3]) for c in PRIMITIVE_CASES] + \
        [(name, REFERENCES.get(name, f), f, makers) for name, f, makers in MORE_CASES]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_jvp_of_every_primitive(case):
    name, ref, f, makers = case
    rng = np.random.default_rng(3)
    xs = _inputs(name, makers, rng)
    ts = [rng.standard_normal(np.shape(x)) for x in xs]
    if name in SYMMETRIC:       # the functions of a symmetric matrix: symmetric tangents
        ts[0] = (ts[0] + ts[0].T) / 2
    out, tangent = tj.jvp(f, tuple(xs), tuple(ts))
    np.testing.assert_allclose(out, ref(*xs), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tangent, central(ref, xs, ts), rtol=1e-6, atol=1e-7,
                               err_msg=name)
    # Compiled, the same numbers (the JVP is IR like any other).
    got = tj.jit(lambda *a: tj.jvp(f, a[:len(xs)], a[len(xs):]))(*xs, *ts)
    np.testing.assert_allclose(got[1], tangent, rtol=1e-10, atol=1e-12)


# Primitives without a tangent of their own: no float operand, or a float result that does
# not depend on one (they are constants to forward mode).
NO_TANGENT = {"iota", "constant", "argmax", "argmin", "argsort", "check", "not", "and", "or",
              "xor", "eq", "ne", "lt", "le", "gt", "ge", "floordiv", "signbit", "threefry2x32"}


def test_every_primitive_is_covered():
    covered = set()
    rng = np.random.default_rng(0)
    for name, _, f, makers in CASES:
        xs = _inputs(name, makers, rng)
        covered |= {e.prim.name for e in tj.trace(f, *xs).eqns}
    missing = set(REGISTRY) - covered - NO_TANGENT
    assert not missing, f"no JVP case for {sorted(missing)}"


def tanh_loss(seed):
    """(loss, w, v): a scalar loss of weights w (3 x 2), and a direction v like w."""
    rng = np.random.default_rng(seed)
    x, w, v = rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), \
        rng.standard_normal((3, 2))
    return (lambda w: np.sum(np.tanh(x @ w) ** 2)), w, v


def test_jvp_composes_with_grad_and_jit():
    loss, w, t = tanh_loss(4)

    # forward over reverse: the Hessian-vector product
    hv = tj.jvp(tj.grad(loss), (w,), (t,))[1]
    np.testing.assert_allclose(hv, central(tj.grad(loss), [w], [t]), rtol=1e-6, atol=1e-8)
    # reverse over forward: the same product
    gj = tj.grad(lambda w: tj.jvp(loss, (w,), (t,))[1])(w)
    np.testing.assert_allclose(gj, hv, rtol=1e-10, atol=1e-12)
    # under jit, and jit inside
    jitted = tj.jit(lambda w, t: tj.jvp(tj.grad(loss), (w,), (t,)))(w, t)[1]
    np.testing.assert_allclose(jitted, hv, rtol=1e-10, atol=1e-12)
    inner = tj.jvp(tj.jit(loss), (w,), (t,))[1]
    np.testing.assert_allclose(inner, central(loss, [w], [t]), rtol=1e-6)


def test_jvp_pytrees_aux_and_errors():
    rng = np.random.default_rng(5)
    p = {"a": rng.standard_normal(3), "b": rng.standard_normal((2, 3))}
    tp = {"a": np.ones(3), "b": np.zeros((2, 3))}
    n = np.arange(3)

    def f(p, n):
        return {"y": p["b"] @ p["a"], "count": np.sum(n > 0)}, p["a"] * 2

    out, tangent, aux = tj.jvp(f, (p, n), (tp, n), has_aux=True)
    np.testing.assert_allclose(tangent["y"], p["b"] @ tp["a"])
    assert tangent["count"] is None and out["count"] == 2
    np.testing.assert_allclose(aux, p["a"] * 2)
    with pytest.raises(TypeError, match="tuples or lists"):
        tj.jvp(f, p, tp)
    with pytest.raises(TypeError, match="structure"):
        tj.jvp(lambda a: a, (p["a"],), (p["a"], p["a"]))
    with pytest.raises(tj.ShapeError, match="tangent 0"):
        tj.jvp(lambda a: a, (p["a"],), (np.ones(4),))


def test_jvp_ir_has_no_reverse_pass_left_after_the_passes():
    # The derived rules run reverse mode on small functions of the cotangent; what they record
    # is linear in the tangent and the passes leave no work on a zero cotangent.
    x = np.linspace(0.1, 1, 6)
    fn = tj.trace(lambda x, t: tj.jvp(np.sin, (x,), (t,)), x, x)
    tj.verify(fn)
    opt = tj.jit(lambda x, t: tj.jvp(np.sin, (x,), (t,))).compiled(x, x).optimized
    names = [e.prim.name for e in opt.eqns]
    assert names.count("sin") == 1 and names.count("cos") == 1, names


# ---------------------------------------------------------------------------------------------
# Jacobians and Hessians


def numeric_jacobian(f, x):
    """d f / d x of shape f(x).shape + x.shape, by float64 central differences."""
    out = np.asarray(f(x))
    jac = np.zeros(out.shape + x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = EPS
        jac[(...,) + i] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * EPS)
    return jac


def test_jacobians_have_jaxs_shapes_and_values():
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))

    def f(x, w):
        return np.tanh(x @ w)

    fwd = tj.jacfwd(f, argnums=(0, 1))(x, w)
    rev = tj.jacrev(f, argnums=(0, 1))(x, w)
    assert [j.shape for j in fwd] == [(2, 4, 2, 3), (2, 4, 3, 4)]
    for j_f, j_r, want in zip(fwd, rev, (numeric_jacobian(lambda x: f(x, w), x),
                                         numeric_jacobian(lambda w: f(x, w), w))):
        np.testing.assert_allclose(j_f, want, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(j_r, j_f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tj.jacobian(f)(x, w), fwd[0], rtol=1e-12)
    # a scalar function's Jacobian has the argument's shape; of a scalar argument, the output's
    assert tj.jacfwd(lambda x: np.sum(x ** 2))(x).shape == x.shape
    assert tj.jacrev(lambda s: s * x)(np.float64(2.0)).shape == x.shape


def test_hessian_hvp_linearize():
    loss, w, v = tanh_loss(7)

    h = tj.hessian(loss)(w)
    assert h.shape == (3, 2, 3, 2)
    np.testing.assert_allclose(h, numeric_jacobian(tj.grad(loss), w), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(h.reshape(6, 6), h.reshape(6, 6).T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tj.hvp(loss, (w,), (v,)), (h.reshape(6, 6) @ v.ravel())
                               .reshape(3, 2), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tj.jit(tj.hessian(loss))(w), h, rtol=1e-10, atol=1e-12)
    out, f_jvp = tj.linearize(loss, w)
    np.testing.assert_allclose(out, loss(w))
    np.testing.assert_allclose(f_jvp(v), np.sum(tj.grad(loss)(w) * v), rtol=1e-10)


def test_jacobians_of_pytrees_with_aux_and_empty_arrays():
    rng = np.random.default_rng(8)
    p = {"a": rng.standard_normal(3), "b": rng.standard_normal((2, 2))}

    def f(p):
        return p["a"] * 2.0, np.sum(p["b"] ** 2) * np.sin(p["a"])

    # JAX's layout: the output's structure, each array replaced by the input's structure.
    for jac in (tj.jacfwd, tj.jacrev):
        got = jac(f)(p)
        for k, out in enumerate(got):
            for key in ("a", "b"):
                def one(v, key=key, k=k):
                    return f({**p, key: v})[k]
                np.testing.assert_allclose(out[key], numeric_jacobian(one, p[key]),
                                           rtol=1e-6, atol=1e-8, err_msg=f"{jac} {k} {key}")
    loss = lambda p: np.sum(p["a"] ** 2) * np.sum(p["b"])                  # noqa: E731
    h = tj.hessian(loss)(p)
    assert h["a"]["b"].shape == (3, 2, 2) and h["b"]["a"].shape == (2, 2, 3)
    np.testing.assert_allclose(h["a"]["b"], numeric_jacobian(
        lambda b: tj.grad(loss)({**p, "b": b})["a"], p["b"]), rtol=1e-6, atol=1e-8)
    # has_aux: the auxiliary output once, not batched
    j, aux = tj.jacfwd(lambda x: (np.sin(x), np.sum(x)), has_aux=True)(p["a"])
    np.testing.assert_allclose(j, np.diag(np.cos(p["a"])), atol=1e-15)
    np.testing.assert_allclose(aux, np.sum(p["a"]))
    j, aux = tj.jacrev(lambda x: (np.sin(x), np.sum(x)), has_aux=True)(p["a"])
    np.testing.assert_allclose(j, np.diag(np.cos(p["a"])), atol=1e-15)
    # an empty argument or output: an empty Jacobian of JAX's shape
    assert tj.jacfwd(lambda x: np.sum(x) * np.ones(2))(np.ones(0)).shape == (2, 0)
    assert tj.jacrev(lambda x: x[:0])(np.ones(3)).shape == (0, 3)


def test_jacobians_are_one_batched_program():
    # The basis vectors are a batch axis of the kernels (vmap), not a loop: as many dots as
    # the function's JVP (or VJP) has, for any number of inputs.
    x, w = np.ones((2, 3)), np.ones((3, 4))
    f = lambda x, w: np.tanh(x @ w)                                           # noqa: E731
    dots = lambda fn: sum(e.prim.name == "dot" for e in fn.eqns)             # noqa: E731
    jvp = tj.jit(lambda x, w, t: tj.jvp(lambda x: f(x, w), (x,), (t,))).lower(x, w, x)
    vjp = tj.jit(lambda x, w, g: tj.vjp(f, x, w)[1](g)).lower(x, w, np.ones((2, 4)))
    assert dots(tj.jit(tj.jacfwd(f)).lower(x, w)) == dots(jvp) == 2
    assert dots(tj.jit(tj.jacrev(f, argnums=(0, 1))).lower(x, w)) == dots(vjp) == 3


def test_jacobian_errors_say_what():
    x = np.ones(3)
    with pytest.raises(tj.GradError, match="floating-point"):
        tj.jacrev(lambda n: n * 2.0)(np.arange(3))
    with pytest.raises(ValueError, match="argnums"):
        tj.jacfwd(lambda a: a, argnums=2)(x)
