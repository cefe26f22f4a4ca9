"""The autodiff API: tj.grad, tj.value_and_grad and tj.vjp, checked numerically.

argnums (int, tuple, negative), pytree arguments and results, has_aux, higher derivatives
(grad of grad, mixed partials, Hessian-vector products), composition with jit in both orders,
closures over traced values of an enclosing transform, vjp with non-scalar and pytree outputs,
weak Python-float arguments, f32 gradients, and the GradError messages. Oracles are NumPy,
analytic derivatives, and central finite differences in float64.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tracejit as tj

EPS = 1e-6
HERE = os.path.basename(__file__)


def fd_grad(f, x, eps=EPS):
    """Central finite-difference gradient of scalar f (run on NumPy) at float64 array x."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros(x.shape)
    for k in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[k] = eps
        g[k] = (float(f(x + e)) - float(f(x - e))) / (2 * eps)
    return g


def fd_partial(f, args, i, eps=EPS):
    """Finite-difference gradient of f(*args) with respect to args[i]."""
    def fi(xi):
        return f(*args[:i], xi, *args[i + 1:])
    return fd_grad(fi, args[i], eps)


def assert_grad_close(got, expected, rtol=1e-6, atol=1e-8):
    """A float64 gradient of the expected shape, close to `expected`."""
    got = np.asarray(got)
    assert got.shape == np.shape(expected) and got.dtype == np.float64, (got.shape, got.dtype)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def f3(x, y, z):
    return np.sum(np.sin(x) * y) + np.sum(z ** 2 * x) + np.prod(y)


def _xyz(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (3,)), rng.uniform(0.5, 1.5, (3,)), rng.uniform(-1, 1, (3,)))


# ---------------------------------------------------------------------------------------------
# argnums


@pytest.mark.parametrize("argnums,expected", [
    (0, 0), (1, 1), (-1, 2), (-3, 0),
    ((0, 2), (0, 2)), ((2, 0), (2, 0)), ((-1, 0), (2, 0)), ((1,), (1,)),
])
def test_argnums(argnums, expected):
    args = _xyz()
    got = tj.grad(f3, argnums=argnums)(*args)
    if isinstance(expected, int):
        assert isinstance(got, np.ndarray)
        assert_grad_close(got, fd_partial(f3, args, expected))
    else:
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, i in zip(got, expected):
            assert_grad_close(g, fd_partial(f3, args, i))
    tj.verify(tj.trace(tj.grad(f3, argnums=argnums), *args))


def test_argnums_out_of_range_raises():
    with pytest.raises(tj.GradError, match="argnums"):
        tj.grad(f3, argnums=3)(*_xyz())


def test_keyword_arguments_are_not_differentiated():
    x = np.array([0.3, -0.2, 1.1])

    def f(x, scale=1.0):
        return np.sum(np.sin(x) * scale)

    np.testing.assert_allclose(tj.grad(f)(x, scale=3.0), 3.0 * np.cos(x), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# pytrees


def _params(seed=1):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2),
            "layers": [(rng.standard_normal(2), rng.standard_normal((2, 2))),
                       [rng.uniform(0.5, 1.5, ())]]}


def _net(p, x):
    h = np.tanh(x @ p["w"] + p["b"])
    (v, m), (s,) = p["layers"]
    return np.sum((h @ m + v) ** 2) * s


LEAF_PATHS = [("w",), ("b",), ("layers", 0, 0), ("layers", 0, 1), ("layers", 1, 0)]


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _set(tree, path, value):
    """A copy of `tree` with the leaf at `path` replaced (containers keep their types)."""
    if not path:
        return value
    k, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {**tree, k: _set(tree[k], rest, value)}
    items = list(tree)
    items[k] = _set(items[k], rest, value)
    return type(tree)(items)


def _leaf_fd(p, x, path):
    return fd_grad(lambda leaf: _net(_set(p, path, leaf), x), _get(p, path))


def test_pytree_argument_gradients_keep_structure():
    p = _params()
    x = np.random.default_rng(2).standard_normal((4, 3))
    g = tj.grad(_net)(p, x)
    assert isinstance(g, dict) and sorted(g) == ["b", "layers", "w"]
    assert isinstance(g["layers"], list) and isinstance(g["layers"][0], tuple)
    assert isinstance(g["layers"][1], list) and len(g["layers"][1]) == 1
    for path in LEAF_PATHS:
        got = _get(g, path)
        assert np.shape(got) == np.shape(_get(p, path)) and np.asarray(got).dtype == np.float64
        np.testing.assert_allclose(got, _leaf_fd(p, x, path), rtol=1e-6, atol=1e-8,
                                   err_msg=str(path))
    tj.verify(tj.trace(tj.grad(_net), p, x))


def test_pytree_and_array_argnums_tuple():
    p = _params()
    x = np.random.default_rng(3).standard_normal((4, 3))
    gp, gx = tj.grad(_net, argnums=(0, 1))(p, x)
    assert tj.tree_map(np.shape, gp) == tj.tree_map(np.shape, p)
    np.testing.assert_allclose(gx, fd_grad(lambda x: _net(p, x), x), rtol=1e-6, atol=1e-8)
    v, (gp2, gx2) = tj.value_and_grad(_net, argnums=(0, 1))(p, x)
    np.testing.assert_allclose(v, _net(p, x), rtol=1e-13)
    tj.tree_map(lambda a, b: np.testing.assert_array_equal(a, b), (gp, gx), (gp2, gx2))


# ---------------------------------------------------------------------------------------------
# has_aux and value_and_grad


def _with_aux(x):
    loss = np.sum(np.exp(x) * x)
    return loss, {"mean": np.mean(x), "sq": x * x}


def test_grad_has_aux():
    x = np.array([0.1, -0.4, 0.8])
    g, aux = tj.grad(_with_aux, has_aux=True)(x)
    np.testing.assert_allclose(g, np.exp(x) * (1 + x), rtol=1e-14)
    assert sorted(aux) == ["mean", "sq"]
    np.testing.assert_allclose(aux["mean"], np.mean(x), rtol=1e-15)
    np.testing.assert_array_equal(aux["sq"], x * x)


def test_value_and_grad_has_aux():
    x = np.array([0.1, -0.4, 0.8])
    (v, aux), g = tj.value_and_grad(_with_aux, has_aux=True)(x)
    np.testing.assert_allclose(v, np.sum(np.exp(x) * x), rtol=1e-14)
    np.testing.assert_array_equal(aux["sq"], x * x)
    np.testing.assert_allclose(g, np.exp(x) * (1 + x), rtol=1e-14)


VALUE_CASES = [
    ("mean_sq", lambda x: np.mean((x - 0.3) ** 2), np.float64),
    ("logsumexp", lambda x: np.log(np.sum(np.exp(x))), np.float64),
    ("f32_loss", lambda x: np.sum(np.tanh(x)), np.float32),
    ("f32_times_weak", lambda x: np.sum(x * 0.5) + 1.0, np.float32),
]


@pytest.mark.parametrize("name,f,dtype", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_value_and_grad_value_equals_f(name, f, dtype):
    x = np.random.default_rng(4).standard_normal((2, 3)).astype(dtype)
    v, g = tj.value_and_grad(f)(x)
    expected = f(x)
    assert np.asarray(v).dtype == np.asarray(expected).dtype
    assert np.ndim(v) == 0
    np.testing.assert_allclose(v, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(g, tj.grad(f)(x))
    assert g.dtype == dtype


# ---------------------------------------------------------------------------------------------
# higher derivatives


SECOND = [
    ("cube", lambda x: x ** 3, lambda x: 6 * x),
    ("sin", np.sin, lambda x: -np.sin(x)),
    ("tanh", np.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    ("exp_times_x", lambda x: np.exp(x) * x, lambda x: np.exp(x) * (x + 2)),
]


@pytest.mark.parametrize("name,f,d2", SECOND, ids=[c[0] for c in SECOND])
@pytest.mark.parametrize("x", [-1.3, 0.4, 2.0])
def test_grad_of_grad(name, f, d2, x):
    gg = tj.grad(tj.grad(f))
    np.testing.assert_allclose(gg(x), d2(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gg(np.float64(x)), d2(x), rtol=1e-12, atol=1e-14)
    # and against finite differences of the first derivative
    g = tj.grad(f)
    fd = (g(x + EPS) - g(x - EPS)) / (2 * EPS)
    np.testing.assert_allclose(gg(x), fd, rtol=1e-6, atol=1e-8)
    tj.verify(tj.trace(gg, x))


def test_third_derivative():
    ggg = tj.grad(tj.grad(tj.grad(lambda x: x ** 4 + np.sin(x))))
    for x in (-0.7, 1.5):
        np.testing.assert_allclose(ggg(x), 24 * x - np.cos(x), rtol=1e-12)


def _two(x, y):
    return np.sin(x * y) + x ** 2 * y ** 3


def test_mixed_partials():
    x, y = 0.7, -1.2
    analytic = np.cos(x * y) - x * y * np.sin(x * y) + 6 * x * y ** 2
    dxy = tj.grad(tj.grad(_two, argnums=0), argnums=1)(x, y)
    dyx = tj.grad(tj.grad(_two, argnums=1), argnums=0)(x, y)
    np.testing.assert_allclose(dxy, analytic, rtol=1e-12)
    np.testing.assert_allclose(dyx, analytic, rtol=1e-12)
    dxx = tj.grad(tj.grad(_two, argnums=0), argnums=0)(x, y)
    np.testing.assert_allclose(dxx, -y ** 2 * np.sin(x * y) + 2 * y ** 3, rtol=1e-12)
    # both first derivatives at once, differentiated with respect to both arguments
    h = tj.grad(lambda x, y: sum(tj.grad(_two, argnums=(0, 1))(x, y)), argnums=(0, 1))(x, y)
    dyy = -x ** 2 * np.sin(x * y) + 6 * x ** 2 * y
    np.testing.assert_allclose(h, (dxx + analytic, analytic + dyy), rtol=1e-12)


def test_hessian_vector_product_analytic():
    rng = np.random.default_rng(5)
    x, v = rng.standard_normal(4), rng.standard_normal(4)

    def f(x):
        return np.sum(x ** 3) + np.sum(x) ** 2

    hvp = tj.grad(lambda x: np.sum(tj.grad(f)(x) * v))(x)
    np.testing.assert_allclose(hvp, 6 * x * v + 2 * np.sum(v), rtol=1e-12)


def test_hessian_vector_product_fd():
    rng = np.random.default_rng(6)
    x, v = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    w = rng.standard_normal((3, 3))

    def f(x):
        z = np.tanh(x @ w)
        return np.log(np.sum(np.exp(z))) + np.mean(z ** 2)

    g = tj.grad(f)

    def gv(x):
        return np.sum(g(x) * v)

    hvp = tj.grad(gv)(x)
    fd = (g(x + EPS * v) - g(x - EPS * v)) / (2 * EPS)
    np.testing.assert_allclose(hvp, fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(tj.jit(tj.grad(gv))(x), hvp, rtol=1e-13, atol=1e-15)
    tj.verify(tj.trace(tj.grad(gv), x))


# ---------------------------------------------------------------------------------------------
# jit in both orders, closures over traced values


def _mlp(w, x):
    return np.mean(np.maximum(x @ w, 0.0) ** 2) + 0.1 * np.sum(w ** 2)


def test_jit_of_grad_and_grad_of_jit_agree():
    rng = np.random.default_rng(7)
    w, x = rng.standard_normal((3, 2)), rng.standard_normal((5, 3))
    ref = tj.grad(_mlp)(w, x)
    np.testing.assert_allclose(ref, fd_grad(lambda w: _mlp(w, x), w), rtol=1e-6, atol=1e-8)
    jg = tj.jit(tj.grad(_mlp))
    np.testing.assert_allclose(jg(w, x), ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(jg(w * 2, x), tj.grad(_mlp)(w * 2, x), rtol=1e-13, atol=1e-15)
    assert jg.trace_count == 1
    np.testing.assert_allclose(tj.grad(tj.jit(_mlp))(w, x), ref, rtol=1e-13, atol=1e-15)
    v, g = tj.jit(tj.value_and_grad(_mlp, argnums=(0, 1)))(w, x)
    np.testing.assert_allclose(v, _mlp(w, x), rtol=1e-13)
    np.testing.assert_allclose(g[0], ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g[1], fd_grad(lambda x: _mlp(w, x), x), rtol=1e-6, atol=1e-8)


def test_grad_of_jit_with_static_argument():
    f = tj.jit(lambda x, n: np.sum(x ** n), static_argnums=1)
    x = np.array([0.5, -1.5, 2.0])
    np.testing.assert_allclose(tj.grad(f)(x, 3), 3 * x ** 2, rtol=1e-14)
    np.testing.assert_allclose(tj.grad(f)(x, 4), 4 * x ** 3, rtol=1e-14)


X0 = np.array([0.3, -0.8, 1.1])
W0 = np.array([1.0, -2.0, 0.5])


def _outer(y):
    # The inner gradient closes over y, a traced value of the enclosing grad or jit.
    g = tj.grad(lambda x: np.sum(np.sin(x * y)))(X0)        # = y cos(x0 y)
    return np.sum(g * W0)


def _outer_value(y):
    return np.sum(y * np.cos(X0 * y) * W0)


def _outer_deriv(y):
    return np.sum(W0 * (np.cos(X0 * y) - X0 * y * np.sin(X0 * y)))


@pytest.mark.parametrize("y", [0.7, -1.9])
def test_closure_over_outer_traced_value(y):
    np.testing.assert_allclose(_outer(y), _outer_value(y), rtol=1e-14)
    np.testing.assert_allclose(tj.jit(_outer)(y), _outer_value(y), rtol=1e-14)
    np.testing.assert_allclose(tj.grad(_outer)(y), _outer_deriv(y), rtol=1e-12)
    np.testing.assert_allclose(tj.jit(tj.grad(_outer))(y), _outer_deriv(y), rtol=1e-12)
    tj.verify(tj.trace(tj.grad(_outer), y))


def test_closure_gradient_with_respect_to_both():
    # d/dy of a function whose inner grad (w.r.t. x) depends on y, and vice versa.
    def inner_loss(x, y):
        return np.sum(x ** 2 * y) + np.sum(np.exp(x * y))

    def outer(x, y):
        gx = tj.grad(lambda x: inner_loss(x, y))(x)        # 2 x y + y exp(x y)
        return np.sum(gx * W0)

    x, y = X0, 0.6

    def num(x, y):
        return np.sum((2 * x * y + y * np.exp(x * y)) * W0)

    gx, gy = tj.grad(outer, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, fd_grad(lambda x: num(x, y), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gy, fd_grad(lambda y: num(x, y), np.float64(y)), rtol=1e-6)
    np.testing.assert_allclose(tj.jit(outer)(x, y), num(x, y), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# vjp


def test_vjp_non_scalar_output():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    ct = rng.standard_normal((4, 2))

    def f(x, w):
        return np.tanh(x @ w)

    out, vjp_fn = tj.vjp(f, x, w)
    np.testing.assert_allclose(out, f(x, w), rtol=1e-14)
    gx, gw = vjp_fn(ct)
    d = ct * (1 - np.tanh(x @ w) ** 2)
    np.testing.assert_allclose(gx, d @ w.T, rtol=1e-12)
    np.testing.assert_allclose(gw, x.T @ d, rtol=1e-12)
    # a second cotangent reuses the same vjp_fn
    gx2, _ = vjp_fn(2.0 * ct)
    np.testing.assert_allclose(gx2, 2 * gx, rtol=1e-14)
    # vjp with a one-hot cotangent is one row of the Jacobian: compare with FD
    e = np.zeros((4, 2))
    e[1, 0] = 1.0
    np.testing.assert_allclose(vjp_fn(e)[0], fd_grad(lambda x: f(x, w)[1, 0], x), rtol=1e-6,
                               atol=1e-9)


def test_vjp_single_primal_returns_tuple():
    x = np.array([0.2, 0.9])
    out, vjp_fn = tj.vjp(np.sin, x)
    (g,) = vjp_fn(np.array([1.0, -3.0]))
    np.testing.assert_allclose(g, np.cos(x) * [1.0, -3.0], rtol=1e-14)


def test_vjp_pytree_output():
    x = np.array([0.5, -1.0, 2.0])

    def f(x):
        return {"a": x * 2.0, "b": (np.sin(x), np.sum(x ** 2))}

    out, vjp_fn = tj.vjp(f, x)
    np.testing.assert_array_equal(out["a"], x * 2.0)
    np.testing.assert_allclose(out["b"][0], np.sin(x), rtol=1e-15)
    np.testing.assert_allclose(out["b"][1], np.sum(x ** 2), rtol=1e-15)
    ca, cb = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 4.0])
    (g,) = vjp_fn({"a": ca, "b": (cb, np.float64(1.5))})
    np.testing.assert_allclose(g, 2.0 * ca + np.cos(x) * cb + 1.5 * 2 * x, rtol=1e-14)


def test_vjp_pytree_input_and_integer_primal():
    x = {"u": np.array([0.1, 0.2]), "v": np.array([1.5, -0.5])}
    idx = np.array([1, 1, 0])

    def f(p, idx):
        return p["u"][idx] * p["v"][idx]

    out, vjp_fn = tj.vjp(f, x, idx)
    ct = np.array([1.0, 2.0, 3.0])
    gp, gi = vjp_fn(ct)
    assert gi is None
    assert sorted(gp) == ["u", "v"]
    np.testing.assert_allclose(gp["u"], [3.0 * 1.5, 3.0 * -0.5], rtol=1e-15)
    np.testing.assert_allclose(gp["v"], [3.0 * 0.1, 3.0 * 0.2], rtol=1e-15)


def test_vjp_inside_jit():
    x = np.array([0.3, 1.2, -0.4])
    ct = np.array([1.0, -2.0, 0.5])

    def f(x):
        _, vjp_fn = tj.vjp(lambda x: np.exp(x) * x, x)
        return vjp_fn(ct)[0]

    expected = ct * np.exp(x) * (1 + x)
    np.testing.assert_allclose(tj.jit(f)(x), expected, rtol=1e-14)
    tj.verify(tj.trace(f, x))
    # and differentiated again: d/dx sum(ct e^x (1 + x)) = ct e^x (2 + x)
    np.testing.assert_allclose(tj.grad(lambda x: np.sum(f(x)))(x), ct * np.exp(x) * (2 + x),
                               rtol=1e-13)


def test_vjp_has_aux():
    x = np.array([0.5, -1.0])
    out, vjp_fn, aux = tj.vjp(lambda x: (np.exp(x), {"n": np.sum(x)}), x, has_aux=True)
    np.testing.assert_allclose(out, np.exp(x), rtol=1e-15)
    np.testing.assert_allclose(aux["n"], -0.5, rtol=1e-15)
    (g,) = vjp_fn(np.array([2.0, 3.0]))
    np.testing.assert_allclose(g, np.exp(x) * [2.0, 3.0], rtol=1e-15)


def test_grad_with_traced_integer_index_argument():
    # The index is an argument (traced), with negative and repeated entries.
    x = np.array([0.5, -1.0, 2.0, 3.0])
    idx = np.array([-1, 0, -1, 1])
    g = tj.grad(lambda x, i: np.sum(x[i] ** 2))(x, idx)
    np.testing.assert_allclose(g, [1.0, -2.0, 0.0, 12.0], rtol=1e-15)
    np.testing.assert_allclose(tj.jit(tj.grad(lambda x, i: np.sum(x[i] ** 2)))(x, idx), g,
                               rtol=1e-15)


def test_vjp_cotangent_structure_mismatch_raises():
    _, vjp_fn = tj.vjp(lambda x: (x, x * 2), np.ones(2))
    with pytest.raises(tj.GradError, match="structure"):
        vjp_fn(np.ones(2))


# ---------------------------------------------------------------------------------------------
# dtypes and weak Python numbers


def test_python_float_argument():
    assert tj.grad(lambda s: s ** 3)(2.0) == pytest.approx(12.0, rel=1e-15)
    x = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    g = tj.grad(lambda s, x: np.sum(s * x * x))(0.5, x)
    assert np.ndim(g) == 0 and np.asarray(g).dtype.kind == "f"
    assert float(g) == pytest.approx(21.0, rel=1e-6)
    gs, gx = tj.grad(lambda s, x: np.sum(np.sin(s * x)), argnums=(0, 1))(0.5, x)
    assert gx.dtype == np.float32
    np.testing.assert_allclose(gx, 0.5 * np.cos(0.5 * x), rtol=1e-6)
    assert float(gs) == pytest.approx(float(np.sum(x * np.cos(0.5 * x))), rel=1e-5)


F32_CASES = [
    ("f32_only", lambda x: np.sum(np.tanh(x) * 0.5)),
    ("promoted_to_f64", lambda x: np.sum(np.sin(x) * np.float64(2.0))),
    ("astype_f64", lambda x: np.sum(x.astype(np.float64) ** 3)),
    ("mean_var", lambda x: np.var(x) + np.mean(x)),
]


@pytest.mark.parametrize("name,f", F32_CASES, ids=[c[0] for c in F32_CASES])
def test_f32_gradients_are_f32(name, f):
    x32 = np.random.default_rng(9).standard_normal((3, 2)).astype(np.float32)
    g = tj.grad(f)(x32)
    assert g.dtype == np.float32 and g.shape == x32.shape
    # f32 arithmetic: compare with the f64 gradient at the same point
    g64 = fd_grad(f, x32.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-4, atol=1e-5)
    tj.verify(tj.trace(tj.grad(f), x32))


def test_mixed_dtype_argnums():
    x32 = np.array([0.5, 1.5], dtype=np.float32)
    y64 = np.array([2.0, -1.0])
    gx, gy = tj.grad(lambda x, y: np.sum(x * y), argnums=(0, 1))(x32, y64)
    assert gx.dtype == np.float32 and gy.dtype == np.float64
    np.testing.assert_array_equal(gx, y64.astype(np.float32))
    np.testing.assert_array_equal(gy, x32.astype(np.float64))


def test_unused_argument_gets_zeros():
    g = tj.grad(lambda x, y: np.sum(y * 2.0), argnums=(0, 1))(np.ones((2, 2), np.float32),
                                                           np.ones(3))
    assert g[0].dtype == np.float32 and g[0].shape == (2, 2)
    np.testing.assert_array_equal(g[0], 0.0)
    np.testing.assert_array_equal(g[1], 2.0)


# ---------------------------------------------------------------------------------------------
# errors


def _assert_located(exc):
    assert str(exc).find(HERE) != -1 and str(exc).split(":")[0].endswith(HERE), str(exc)


def test_grad_of_non_scalar_output_raises():
    with pytest.raises(tj.GradError, match="scalar") as info:
        tj.grad(lambda x: x * 2.0)(np.ones(3, np.float32))
    assert "f32[3]" in str(info.value)
    _assert_located(info.value)


def test_grad_of_integer_output_raises():
    with pytest.raises(tj.GradError, match="scalar"):
        tj.grad(lambda x: np.sum(x > 0))(np.ones(3))


def test_grad_with_respect_to_integer_argument_raises():
    with pytest.raises(tj.GradError, match="i32") as info:
        tj.grad(lambda x: np.sum(x * 2.0))(np.ones(3, np.int32))
    _assert_located(info.value)
    with pytest.raises(tj.GradError, match="i64"):
        tj.grad(lambda x, n: np.sum(x * n), argnums=1)(np.ones(3), 3)
    with pytest.raises(tj.GradError, match="bool"):
        tj.grad(lambda p: np.sum(p["x"] * p["m"]))({"x": np.ones(2), "m": np.ones(2, bool)})


@pytest.mark.parametrize("out", [
    lambda x: np.sum(x),                              # not a pair
    lambda x: (np.sum(x), x, x),                      # a triple
    lambda x: (np.sum(x),),                           # a 1-tuple
])
def test_has_aux_with_non_pair_output_raises(out):
    with pytest.raises(tj.GradError, match="pair"):
        tj.grad(out, has_aux=True)(np.ones(3))
    with pytest.raises(tj.GradError, match="pair"):
        tj.value_and_grad(out, has_aux=True)(np.ones(3))


def test_vjp_has_aux_needs_a_pair():
    with pytest.raises(tj.GradError, match="pair"):
        tj.vjp(lambda x: np.sin(x), np.ones(3), has_aux=True)
    out, vjp_fn, aux = tj.vjp(lambda x: (np.sin(x), x * 2), np.arange(3.0), has_aux=True)
    np.testing.assert_allclose(out, np.sin(np.arange(3.0)))
    np.testing.assert_allclose(aux, np.arange(3.0) * 2)
    (g,) = vjp_fn(np.ones(3))
    np.testing.assert_allclose(g, np.cos(np.arange(3.0)))
