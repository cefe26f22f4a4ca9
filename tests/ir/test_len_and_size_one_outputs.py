"""len() of traced arrays, and gradients of losses of shape (1,), (1, 1), ... (size 1).

`len(x)` is the static first dimension of x, as for an ndarray, so Python loops over
`range(len(x))` trace (unrolled) and agree with NumPy; a rank-0 value raises NumPy's own
TypeError for a 0-d array. `grad`, `value_and_grad` and `vjp` accept a float loss of any
shape of size 1 (as autograd does): the gradient is that of its one element, and the value
keeps the shape the function gave it; outputs of another size, or not floating point, are
errors. Oracles are NumPy and float64 central finite differences.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tracejit as tj

EPS = 1e-6
HERE = os.path.basename(__file__)
BACKENDS = ("cpu", "cuda-emulator")


def fd_grad(f, x, eps=EPS):
    """Central finite-difference gradient, in float64, of f (run on NumPy) at x; f returns
    one value, of any shape of size 1."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros(x.shape)
    for k in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[k] = eps
        g[k] = (np.asarray(f(x + e)).item() - np.asarray(f(x - e)).item()) / (2 * eps)
    return g


def numpy_len_message() -> str:
    """NumPy's message for len() of a 0-d array."""
    with pytest.raises(TypeError) as info:
        len(np.array(1.0))
    return str(info.value)


#: How a function reaches the tracer: traced, jitted on each backend, or differentiated.
ENTRIES = {
    "trace": lambda f, x: tj.trace(f, x),
    "jit-cpu": lambda f, x: tj.jit(f, backend="cpu")(x),
    "jit-cuda-emulator": lambda f, x: tj.jit(f, backend="cuda-emulator")(x),
    "grad": lambda f, x: tj.grad(lambda y: np.sum(f(y)))(x),
}


# ---------------------------------------------------------------------------------------------
# len


def rows_weighted(x):
    """The rows of x weighted by their position, averaged: a loop over range(len(x))."""
    acc = x[0] * 0.0
    for i in range(len(x)):
        acc = acc + x[i] * (i + 1)
    return acc / len(x)


def len_in_shapes(x):
    """len() used to build shapes and as a number."""
    return np.reshape(x, (len(x), -1)).sum(axis=1) * len(x.T) + len(x)


SHAPES = [(1,), (4,), (3, 5), (2, 3, 2), (1, 1)]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("shape", SHAPES + [(0,), (0, 3)])
def test_len_is_the_static_first_dimension(shape, entry):
    seen = []

    def f(x):
        seen.append((len(x), len(x * 2.0), len(x[None])))
        return x * 1.0

    x = np.ones(shape)
    ENTRIES[entry](f, x)
    assert seen and seen[0] == (len(x), len(x), 1)
    assert all(type(n) is int for n in seen[0])


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_loops_over_range_of_len_agree_with_numpy(shape, backend, fuse):
    x = np.random.default_rng(1).standard_normal(shape)
    for f in (rows_weighted, len_in_shapes):
        got = tj.to_host(tj.jit(f, backend=backend, fuse=fuse)(x))
        want = f(x)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_iterating_rows_by_len_and_by_iter_agree():
    x = np.random.default_rng(2).standard_normal((3, 4))

    def by_len(x):
        return np.stack([x[i] * i for i in range(len(x))])

    def by_iter(x):
        return np.stack([r * i for i, r in enumerate(x)])

    np.testing.assert_allclose(tj.jit(by_len)(x), by_len(x), rtol=1e-12)
    np.testing.assert_allclose(tj.jit(by_len)(x), tj.jit(by_iter)(x), rtol=1e-12)


def test_len_with_zero_rows_skips_the_loop():
    x = np.zeros((0, 3))

    def f(x):
        acc = np.sum(x, axis=0)
        for i in range(len(x)):
            acc = acc + x[i]
        return acc + len(x)

    got = tj.jit(f)(x)
    assert got.shape == (3,)
    np.testing.assert_array_equal(got, f(x))


@pytest.mark.parametrize("shape", [(4,), (3, 2)])
def test_gradient_through_a_len_loop_matches_finite_differences(shape):
    x = np.random.default_rng(3).standard_normal(shape)

    def loss(x):
        return np.sum(rows_weighted(np.sin(x)) ** 2)

    g = tj.jit(tj.grad(loss))(x)
    np.testing.assert_allclose(g, fd_grad(loss, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("entry", ENTRIES)
def test_len_of_a_rank_0_value_raises_numpys_error(entry):
    message = numpy_len_message()
    with pytest.raises(TypeError) as info:
        ENTRIES[entry](lambda x: x * len(np.sum(x)), np.ones(3))
    assert type(info.value) is TypeError and str(info.value) == message


@pytest.mark.parametrize("arg", [np.float64(2.0), np.array(2.0, np.float32), 2.0, 3],
                         ids=["np.float64", "0-d f32 array", "float", "int"])
def test_len_of_a_rank_0_argument_raises_numpys_error(arg):
    with pytest.raises(TypeError) as info:
        tj.jit(lambda s: s * len(s))(arg)
    assert type(info.value) is TypeError and str(info.value) == numpy_len_message()


# ---------------------------------------------------------------------------------------------
# losses of size 1


def slice_1(x):
    return np.tanh(x[:1]) * np.sum(x ** 2)                               # (1,)


def keepdims_11(x):
    return np.sum(np.sin(x) * x, keepdims=True)                          # (1, 1)


def reshape_111(x):
    return np.reshape(np.dot(x.ravel(), np.cos(x.ravel())) + np.max(x), (1, 1, 1))


def matmul_11(x):
    return x[None, :] @ np.exp(x)[:, None]                               # (1, 1)


LOSSES = {
    "slice_1": (slice_1, (4,), (1,)),
    "keepdims_11": (keepdims_11, (3, 4), (1, 1)),
    "reshape_111": (reshape_111, (5,), (1, 1, 1)),
    "matmul_11": (matmul_11, (3,), (1, 1)),
}


def _x(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(dtype)


TOL = {np.float64: dict(rtol=1e-6, atol=1e-8), np.float32: dict(rtol=2e-4, atol=2e-5)}


@pytest.mark.parametrize("name", LOSSES)
def test_grad_of_a_size_1_loss_unjitted(name):
    f, xshape, oshape = LOSSES[name]
    x = _x(xshape)
    assert np.shape(f(x)) == oshape
    want = fd_grad(f, x)
    g = tj.grad(f)(x)
    assert isinstance(g, np.ndarray) and g.shape == xshape and g.dtype == np.float64
    np.testing.assert_allclose(g, want, **TOL[np.float64])
    value, g2 = tj.value_and_grad(f)(x)
    assert isinstance(value, np.ndarray) and value.shape == oshape and value.dtype == np.float64
    np.testing.assert_allclose(value, f(x), rtol=1e-12)
    np.testing.assert_allclose(g2, want, **TOL[np.float64])
    tj.verify(tj.trace(tj.grad(f), x))
    tj.verify(tj.trace(tj.value_and_grad(f), x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LOSSES)
def test_jitted_grad_and_value_and_grad_of_a_size_1_loss(name, backend, fuse, dtype):
    f, xshape, oshape = LOSSES[name]
    x = _x(xshape, dtype)
    want = fd_grad(f, x.astype(np.float64))
    g = tj.to_host(tj.jit(tj.grad(f), backend=backend, fuse=fuse)(x))
    assert g.shape == xshape and g.dtype == dtype
    np.testing.assert_allclose(g, want, **TOL[dtype])
    value, g2 = tj.to_host(tj.jit(tj.value_and_grad(f), backend=backend, fuse=fuse)(x))
    assert value.shape == oshape and value.dtype == dtype
    np.testing.assert_allclose(value, f(x.astype(np.float64)), **TOL[dtype])
    np.testing.assert_allclose(g2, want, **TOL[dtype])


def two_args(x, w):
    return np.reshape(np.sum(np.sin(x) * w) + np.prod(w) * x[0], (1,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_value_and_grad_with_argnums(backend):
    x, w = _x((3,), seed=4), _x((3,), seed=5)
    want_x = fd_grad(lambda a: two_args(a, w), x)
    want_w = fd_grad(lambda b: two_args(x, b), w)
    vg = tj.jit(tj.value_and_grad(two_args, argnums=(0, 1)), backend=backend)
    value, (gx, gw) = tj.to_host(vg(x, w))
    assert value.shape == (1,)
    np.testing.assert_allclose(value, two_args(x, w), rtol=1e-12)
    np.testing.assert_allclose(gx, want_x, **TOL[np.float64])
    np.testing.assert_allclose(gw, want_w, **TOL[np.float64])
    value, gw1 = tj.value_and_grad(two_args, argnums=-1)(x, w)
    assert value.shape == (1,)
    np.testing.assert_allclose(gw1, want_w, **TOL[np.float64])
    np.testing.assert_allclose(tj.grad(two_args, argnums=1)(x, w), want_w, **TOL[np.float64])


def with_aux(x):
    loss = keepdims_11(x)
    return loss, {"double": 2.0 * x, "loss": loss}


@pytest.mark.parametrize("jit", [False, True])
def test_has_aux_with_a_size_1_loss(jit):
    x = _x((3, 4), seed=6)
    want = fd_grad(keepdims_11, x)
    wrap = tj.jit if jit else (lambda f: f)
    g, aux = wrap(tj.grad(with_aux, has_aux=True))(x)
    np.testing.assert_allclose(g, want, **TOL[np.float64])
    np.testing.assert_allclose(aux["double"], 2.0 * x, rtol=1e-12)
    assert np.shape(aux["loss"]) == (1, 1)
    (value, aux), g = wrap(tj.value_and_grad(with_aux, has_aux=True))(x)
    assert value.shape == (1, 1)
    np.testing.assert_allclose(value, keepdims_11(x), rtol=1e-12)
    np.testing.assert_allclose(aux["loss"], keepdims_11(x), rtol=1e-12)
    np.testing.assert_allclose(g, want, **TOL[np.float64])


@pytest.mark.parametrize("name", LOSSES)
def test_vjp_of_a_size_1_output_agrees_with_grad(name):
    f, xshape, oshape = LOSSES[name]
    x = _x(xshape, seed=7)
    out, vjp_fn = tj.vjp(f, x)
    assert out.shape == oshape
    np.testing.assert_allclose(out, f(x), rtol=1e-12)
    (g_one,) = vjp_fn(np.ones(oshape))
    (g_scaled,) = vjp_fn(np.full(oshape, -2.5))
    want = fd_grad(f, x)
    np.testing.assert_allclose(g_one, want, **TOL[np.float64])
    np.testing.assert_allclose(g_scaled, -2.5 * want, **TOL[np.float64])
    np.testing.assert_allclose(g_one, tj.grad(f)(x), rtol=1e-12, atol=1e-15)


def cubic_11(x):
    return np.reshape(np.sin(x) * x ** 2, (1,) * (np.ndim(x) + 1))


def d_cubic(x):
    return 2 * x * np.sin(x) + x ** 2 * np.cos(x)


def dd_cubic(x):
    return 2 * np.sin(x) + 4 * x * np.cos(x) - x ** 2 * np.sin(x)


@pytest.mark.parametrize("backend", [None] + list(BACKENDS))
def test_second_order_of_a_size_1_loss(backend):
    wrap = (lambda f: f) if backend is None else (lambda f: tj.jit(f, backend=backend))
    x = 0.7
    # The analytic derivatives, themselves checked by finite differences.
    np.testing.assert_allclose(fd_grad(cubic_11, x), d_cubic(x), rtol=1e-7)
    np.testing.assert_allclose(fd_grad(d_cubic, x), dd_cubic(x), rtol=1e-7)
    # A scalar argument, a (1,) loss: the inner gradient is a scalar.
    d2 = tj.to_host(wrap(tj.grad(tj.grad(cubic_11)))(x))
    np.testing.assert_allclose(d2, dd_cubic(x), rtol=1e-12)
    # An argument of shape (1,), a (1, 1) loss: the inner gradient has shape (1,), a size-1
    # output differentiated again.
    x1 = np.array([x])
    g1 = tj.to_host(wrap(tj.grad(cubic_11))(x1))
    assert g1.shape == (1,)
    np.testing.assert_allclose(g1, d_cubic(x1), rtol=1e-12)
    d2 = tj.to_host(wrap(tj.grad(tj.grad(cubic_11)))(x1))
    assert d2.shape == (1,)
    np.testing.assert_allclose(d2, dd_cubic(x1), rtol=1e-12)
    value, d2v = tj.to_host(wrap(tj.value_and_grad(tj.grad(cubic_11)))(x1))
    assert value.shape == (1,)
    np.testing.assert_allclose(value, d_cubic(x1), rtol=1e-12)
    np.testing.assert_allclose(d2v, dd_cubic(x1), rtol=1e-12)


def test_hessian_vector_product_of_a_size_1_loss():
    x, v = _x((4,), seed=8), _x((4,), seed=9)

    def loss(x):
        return np.reshape(np.sum(x ** 3) + np.prod(x), (1, 1))

    def grad_dot_v(x):
        return np.dot(tj.grad(loss)(x), v)

    def numpy_grad(x):
        return 3 * x ** 2 + np.array([np.prod(np.delete(x, i)) for i in range(len(x))])

    np.testing.assert_allclose(fd_grad(loss, x), numpy_grad(x), rtol=1e-7)
    want = fd_grad(lambda y: np.dot(numpy_grad(y), v), x)
    np.testing.assert_allclose(tj.grad(grad_dot_v)(x), want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tj.jit(tj.grad(grad_dot_v))(x), want, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# what stays an error


TRANSFORMS = {
    "grad": lambda f: tj.grad(f),
    "value_and_grad": lambda f: tj.value_and_grad(f),
    "jit(grad)": lambda f: tj.jit(tj.grad(f)),
    "has_aux": lambda f: tj.grad(lambda x: (f(x), x), has_aux=True),
}


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("out,got", [
    (lambda x: x[:2] * 2.0, "f64[2]"),
    (lambda x: np.reshape(x[:2], (1, 2)), "f64[1,2]"),
    (lambda x: x[:0] * 2.0, "f64[0]"),
    (lambda x: np.reshape(x[:0], (1, 0)), "f64[1,0]"),
])
def test_outputs_of_another_size_are_rejected(out, got, transform):
    with pytest.raises(tj.GradError) as info:
        TRANSFORMS[transform](out)(np.ones(3))
    msg = str(info.value)
    assert "scalar float" in msg and f"returned {got};" in msg and "tracejit.vjp" in msg, msg
    assert msg.split(":")[0].endswith(HERE), msg


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("out,got", [
    (lambda x: np.sum(x > 0, keepdims=True), "i64[1]"),
    (lambda x: (x > 0)[:1], "bool[1]"),
    (lambda x: np.reshape(x[:1], (1, 1)).astype(np.int32), "i32[1,1]"),
])
def test_size_1_outputs_that_are_not_floats_are_rejected(out, got, transform):
    with pytest.raises(tj.GradError) as info:
        TRANSFORMS[transform](out)(np.ones(3))
    assert "scalar float" in str(info.value) and f"returned {got};" in str(info.value)
