"""custom_vjp (tracejit/custom.py): the user's rule replaces the derived one under grad, jvp
and jit, on every backend; the call is one unit in the IR until the pipeline inlines it."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from npcheck import cuda_backend, finite_differences, host


@tj.custom_vjp
def log1pexp(x):
    return np.log1p(np.exp(x))


log1pexp.defvjp(lambda x: (log1pexp(x), x), lambda x, g: (g / (1 + np.exp(-x)),))


@tj.custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (np.clip(g, -1.0, 1.0),))


@tj.custom_vjp
def straight_through_round(x):
    return np.round(x)


straight_through_round.defvjp(lambda x: (np.round(x), None), lambda _, g: (g,))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_the_users_rule_is_the_gradient():
    x = np.array([-30.0, -2.0, 0.0, 1.5, 40.0, 800.0])
    loss = lambda x: np.sum(log1pexp(x))                                       # noqa: E731
    backends = [("cpu", True), ("cpu", False)] + ([(cuda_backend(), True)] if cuda_backend()
                                                  else [])
    for backend, fuse in backends:
        g = host(tj.jit(tj.grad(loss), backend=backend, fuse=fuse)(x))
        np.testing.assert_allclose(g, sigmoid(x), rtol=1e-14)   # finite at 800: the rule's
    np.testing.assert_allclose(tj.grad(lambda x: np.sum(clip_gradient(x) * 5.0))(x),
                               np.ones_like(x))
    np.testing.assert_allclose(tj.grad(lambda x: np.sum(straight_through_round(x) * x))(x),
                               np.round(x) + x)
    # Called on arrays, it is the function itself.
    np.testing.assert_allclose(log1pexp(x[:4]), np.log1p(np.exp(x[:4])))


def test_forward_mode_and_second_order_use_the_rule():
    x = np.array([-1.0, 0.3, 2.0])
    t = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(tj.jvp(log1pexp, (x,), (t,))[1], sigmoid(x) * t, rtol=1e-12)
    second = tj.grad(lambda x: np.sum(tj.grad(lambda y: np.sum(log1pexp(y)))(x) ** 2))(x)
    want = finite_differences(lambda x: np.sum(sigmoid(x) ** 2), x)
    np.testing.assert_allclose(second, want, rtol=1e-6)


def test_one_unit_in_the_ir_until_inlined():
    x = np.ones(3)
    traced = tj.trace(lambda x: log1pexp(x) * 2.0, x)
    names = [e.prim.name for e in traced.eqns]
    assert names == ["custom_vjp_call", "mul"]
    assert "custom_vjp_call %0 name=log1pexp" in str(traced)
    optimized = tj.jit(lambda x: log1pexp(x) * 2.0).compiled(x).optimized
    assert "custom_vjp_call" not in [e.prim.name for e in optimized.eqns]
    tj.verify(optimized)


def test_pytree_arguments_and_none_cotangents():
    @tj.custom_vjp
    def scaled(p, x):
        return p["w"] * x + p["b"]

    scaled.defvjp(lambda p, x: (scaled(p, x), (p["w"], x)),
                  lambda res, g: ({"w": g * res[1], "b": g}, None))
    p = {"w": np.array([2.0, 3.0]), "b": np.array([0.5, -1.0])}
    x = np.array([1.0, 4.0])
    gp, gx = tj.grad(lambda p, x: np.sum(scaled(p, x) ** 2), argnums=(0, 1))(p, x)
    y = p["w"] * x + p["b"]
    np.testing.assert_allclose(gp["w"], 2 * y * x)
    np.testing.assert_allclose(gp["b"], 2 * y)
    np.testing.assert_allclose(gx, 0.0)                     # the rule says None: zeros


def test_errors_say_what_is_wrong():
    x = np.ones(3)

    @tj.custom_vjp
    def undefined(x):
        return x * 2

    with pytest.raises(TypeError, match="defvjp"):
        tj.grad(lambda x: np.sum(undefined(x)))(x)

    @tj.custom_vjp
    def bad_fwd(x):
        return x * 2

    bad_fwd.defvjp(lambda x: x * 2, lambda r, g: (g,))
    with pytest.raises(TypeError, match="pair"):
        tj.grad(lambda x: np.sum(bad_fwd(x)))(x)

    @tj.custom_vjp
    def bad_bwd(x):
        return x * 2

    bad_bwd.defvjp(lambda x: (x * 2, None), lambda r, g: (g, g))
    with pytest.raises(TypeError, match="one per argument"):
        tj.grad(lambda x: np.sum(bad_bwd(x)))(x)

    def closes_over(y):
        @tj.custom_vjp
        def f(x):
            return x * y

        f.defvjp(lambda x: (x * y, None), lambda r, g: (g,))
        return np.sum(f(y))

    with pytest.raises(tj.UnsupportedError, match="argument"):
        tj.grad(closes_over)(x)
