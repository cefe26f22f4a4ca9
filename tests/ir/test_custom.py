"""custom_vjp, custom_jvp and checkpoint (tracejit/custom.py): the user's rule replaces the
derived one under grad, jvp, vmap and jit, on every backend; checkpoint computes again in the
backward pass what it does not keep; each call is one unit in the IR until the pipeline
inlines it."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import tracejit as tj
from tracejit import primitives as P
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


# ---------------------------------------------------------------------------------------------
# custom_jvp


@tj.custom_jvp
def softplus(x):
    return np.log1p(np.exp(x))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return softplus(x), dx * sigmoid(x)          # finite where exp(x) overflows


@tj.custom_jvp
def scaled_rule(x, y):
    return x * y


# A deliberately different derivative (3 dx y + 0 dy), so that a check sees which rule ran.
scaled_rule.defjvps(lambda dx, out, x, y: 3.0 * dx * y, None)


def test_custom_jvp_rule_in_forward_and_reverse_mode():
    x = np.array([-30.0, -2.0, 0.0, 1.5, 40.0, 800.0])
    t = np.linspace(-1.0, 2.0, 6)
    out, tangent = tj.jvp(softplus, (x,), (t,))
    np.testing.assert_allclose(tangent, sigmoid(x) * t, rtol=1e-14)
    loss = lambda x: np.sum(softplus(x))                                       # noqa: E731
    # Reverse mode transposes the rule: the gradient is sigmoid(x), finite at 800.
    np.testing.assert_allclose(tj.grad(loss)(x), sigmoid(x), rtol=1e-14)
    backends = ["cpu"] + ([cuda_backend()] if cuda_backend() else [])
    for backend in backends:
        np.testing.assert_allclose(host(tj.jit(tj.grad(loss), backend=backend)(x)),
                                   sigmoid(x), rtol=1e-14)
    # Second order through the transposed rule: d sigmoid = sigmoid (1 - sigmoid).
    hess_diag = tj.grad(lambda x: np.sum(tj.grad(loss)(x)))(x[:4])
    np.testing.assert_allclose(hess_diag, sigmoid(x[:4]) * (1 - sigmoid(x[:4])), rtol=1e-12)
    # Called on arrays, it is the function itself.
    np.testing.assert_allclose(softplus(x[:4]), np.log1p(np.exp(x[:4])))


def test_custom_jvp_per_argument_rules_are_the_users():
    x, y = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    dx, dy = np.array([1.0, 1.0]), np.array([2.0, -1.0])
    np.testing.assert_allclose(tj.jvp(scaled_rule, (x, y), (dx, dy))[1], 3.0 * dx * y)
    gx, gy = tj.grad(lambda x, y: np.sum(scaled_rule(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, 3.0 * y)
    np.testing.assert_allclose(gy, 0.0)
    # Batched, every example uses the rule.
    xs = np.stack([x, 2 * x, -x])
    g = tj.vmap(tj.grad(lambda x, y: np.sum(scaled_rule(x, y))), in_axes=(0, None))(xs, y)
    np.testing.assert_allclose(g, np.broadcast_to(3.0 * y, (3, 2)))


def test_custom_jvp_pytrees_and_integer_arguments():
    @tj.custom_jvp
    def affine(p, n):
        return p["w"] * n + p["b"]

    @affine.defjvp
    def affine_jvp(primals, tangents):
        (p, n), (dp, dn) = primals, tangents
        # dn, the tangent of an integer argument, is zeros: it changes nothing
        return affine(p, n), dp["w"] * n + dp["b"] + 1000.0 * dn

    p = {"w": np.array([2.0, 3.0]), "b": np.array([0.5, -1.0])}
    n = np.array([3, 4])
    gp = tj.grad(lambda p: np.sum(affine(p, n) ** 2))(p)
    y = p["w"] * n + p["b"]
    np.testing.assert_allclose(gp["w"], 2 * y * n)
    np.testing.assert_allclose(gp["b"], 2 * y)
    tp = {"w": np.array([1.0, -1.0]), "b": np.array([0.25, 0.5])}
    _, tangent = tj.jvp(affine, (p, n), (tp, np.array([5, 5])))    # n's tangent is ignored
    np.testing.assert_allclose(tangent, tp["w"] * n + tp["b"])


def test_custom_jvp_is_one_unit_until_inlined():
    x = np.ones(3)
    traced = tj.trace(lambda x: softplus(x) * 2.0, x)
    assert [e.prim.name for e in traced.eqns] == ["custom_jvp_call", "mul"]
    assert "custom_jvp_call %0 name=softplus" in str(traced)
    optimized = tj.jit(tj.grad(lambda x: np.sum(softplus(x)))).compiled(x).optimized
    assert not [e for e in optimized.eqns if e.prim.category is P.CALL]
    tj.verify(optimized)


def test_custom_jvp_errors():
    x = np.ones(3)

    @tj.custom_jvp
    def undefined(x):
        return x * 2

    with pytest.raises(TypeError, match="defjvp"):
        tj.grad(lambda x: np.sum(undefined(x)))(x)

    @tj.custom_jvp
    def not_a_pair(x):
        return x * 2

    not_a_pair.defjvp(lambda p, t: t[0] * 2)
    with pytest.raises(TypeError, match="pair"):
        tj.jvp(not_a_pair, (x,), (x,))

    @tj.custom_jvp
    def wrong_shape(x):
        return x * 2

    wrong_shape.defjvp(lambda p, t: (wrong_shape(p[0]), np.sum(t[0])))
    with pytest.raises(tj.ShapeError, match="tangent"):
        tj.jvp(wrong_shape, (x,), (x,))


# ---------------------------------------------------------------------------------------------
# checkpoint


def _block(h, w):
    return np.tanh(np.tanh(h @ w) @ w)


def _deep_loss(w, h, checkpointed: bool, prevent_cse: bool = True):
    block = tj.checkpoint(_block, prevent_cse=prevent_cse) if checkpointed else _block
    for _ in range(4):
        h = block(h, w)
    return np.sum(h ** 2)


def _weights(n=64, batch=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal((batch, n))


def test_checkpoint_gives_the_same_gradient():
    w, h = _weights(8, 4)
    want = finite_differences(lambda w: _deep_loss(w, h, False), w)
    for fuse in (True, False):
        g = tj.jit(tj.grad(_deep_loss), static_argnums=2, fuse=fuse)(w, h, True)
        np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(tj.grad(_deep_loss)(w, h, True),
                               tj.grad(_deep_loss)(w, h, False), rtol=1e-12)
    # forward mode and batching go through it too
    t = np.ones_like(w)
    np.testing.assert_allclose(tj.jvp(lambda w: _deep_loss(w, h, True), (w,), (t,))[1],
                               tj.jvp(lambda w: _deep_loss(w, h, False), (w,), (t,))[1],
                               rtol=1e-12)
    per_example = tj.vmap(tj.grad(lambda w, x: _deep_loss(w, x[None], True)),
                          in_axes=(None, 0))(w, h)
    np.testing.assert_allclose(per_example.sum(axis=0), tj.grad(_deep_loss)(w, h, False),
                               rtol=1e-10)


def test_checkpoint_recomputes_in_the_backward_pass_and_saves_memory():
    w, h = _weights()
    step = tj.jit(tj.grad(_deep_loss), static_argnums=(2, 3))

    def count(eqns, name):
        return sum(e.prim.name == name for e in eqns)

    kept, again, merged = (step.compiled(w, h, c, p) for c, p in
                           [(False, True), (True, True), (True, False)])
    # Without checkpointing the backward pass reads the forward pass's activations; with it,
    # each block's two products and tanhs are computed again (not merged back by CSE) ...
    assert count(again.optimized.eqns, "dot") == count(kept.optimized.eqns, "dot") + 8
    assert count(again.optimized.eqns, "tanh") == count(kept.optimized.eqns, "tanh") + 8
    # ... unless prevent_cse=False lets the optimiser merge them (JAX's meaning).
    assert count(merged.optimized.eqns, "dot") == count(kept.optimized.eqns, "dot")
    # The saving shows in the buffer plan: the inner activations are not kept.
    assert again.native.plan.peak < kept.native.plan.peak
    np.testing.assert_allclose(step(w, h, True, True), step(w, h, False, True), rtol=1e-12)


def test_checkpoint_closures_pytrees_and_the_ir():
    w, h = _weights(6, 3)

    def loss(w, h):
        # The block closes over w (a traced value): w gets its gradient through the call.
        block = tj.checkpoint(lambda h: {"a": np.tanh(h @ w), "n": np.argmax(h, axis=1)})
        out = block(h)
        return np.sum(out["a"] ** 2) + np.sum(out["n"])

    want = finite_differences(lambda w: loss(w, h), w)
    np.testing.assert_allclose(tj.jit(tj.grad(loss))(w, h), want, rtol=1e-6, atol=1e-9)
    traced = tj.trace(tj.grad(loss), w, h)
    assert "checkpoint" in [e.prim.name for e in traced.eqns]
    assert "name=lambda" in str(traced)
    static = tj.checkpoint(lambda h, n: np.tanh(h) * n, static_argnums=1)
    np.testing.assert_allclose(tj.grad(lambda h: np.sum(static(h, 3)))(h),
                               3 * (1 - np.tanh(h) ** 2), rtol=1e-12)
    with pytest.raises(tj.UnsupportedError, match="polic"):
        tj.checkpoint(_block, policy=lambda *a: True)


# ---------------------------------------------------------------------------------------------
# nondiff_argnums: Python values passed to the function and first to its rules


@functools.partial(tj.custom_vjp, nondiff_argnums=(0,))
def apply_scaled(f, x):
    return f(x)


# A deliberately different gradient, 10 g, so that the check sees the rule and its f.
apply_scaled.defvjp(lambda f, x: (f(x), x), lambda f, x, g: (g * 10.0 * (f is np.sin),))


@functools.partial(tj.custom_jvp, nondiff_argnums=(1,))
def power(x, n):
    return x ** n


@power.defjvp
def _power_jvp(n, primals, tangents):
    (x,), (t,) = primals, tangents
    return power(x, n), 2 * n * x ** (n - 1) * t          # twice the derivative, to see it


def test_nondiff_argnums_reach_the_rules():
    x = np.array([1.0, 2.0, -0.5])
    for f in (tj.grad, lambda g: tj.jit(tj.grad(g))):
        np.testing.assert_allclose(f(lambda x: np.sum(apply_scaled(np.sin, x)))(x), 10.0)
        np.testing.assert_allclose(f(lambda x: np.sum(apply_scaled(np.cos, x)))(x), 0.0)
    np.testing.assert_allclose(apply_scaled(np.sin, x), np.sin(x))        # on arrays
    np.testing.assert_allclose(tj.jvp(lambda x: power(x, 3), (x,), (np.ones(3),))[1],
                               6 * x ** 2)
    np.testing.assert_allclose(tj.grad(lambda x: np.sum(power(x, 3)))(x), 6 * x ** 2)
    np.testing.assert_allclose(tj.vmap(tj.grad(lambda x: np.sum(power(x, 4))))(x[:, None]),
                               8 * x[:, None] ** 3)
    with pytest.raises(TypeError, match="nondiff_argnums is a traced value"):
        tj.jit(lambda x: apply_scaled(x, x))(x)
    misplaced = tj.custom_vjp(lambda x: x, nondiff_argnums=3)
    misplaced.defvjp(lambda x: (x, None), lambda _, g: (g,))
    with pytest.raises(ValueError, match="nondiff_argnums"):
        tj.grad(lambda x: np.sum(misplaced(x)))(x)
