"""Transformations compose as in JAX: every nesting of jit, grad, value_and_grad and vjp (with
static_argnums and donate_argnums on either level, and jit options on the outer level) gives
the result of the un-nested transformation.

The oracle of each case is the analytic derivative of f(x, s) = sum(sin(x) * s), computed with
NumPy in float64.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tracejit as tj

X = np.array([0.0, 1.0, -2.5, 0.3])
S = 1.5


def f(x, s):
    return np.sum(np.sin(x) * s)


def value(x, s):
    return np.sum(np.sin(x) * s)


def dfdx(x, s):
    return np.cos(x) * s


def d2fdx2(x, s):              # the gradient of sum(dfdx)
    return -np.sin(x) * s


# The ways to wrap a function of (x, s) without changing what it computes. `s` is argument 1:
# static where a level says so.
INNER = {
    "plain": lambda g: g,
    "jit": lambda g: tj.jit(g),
    "jit-static": lambda g: tj.jit(g, static_argnums=1),
    "jit-unfused": lambda g: tj.jit(g, fuse=False),
    "jit-interpret": lambda g: tj.jit(g, backend="interpret"),
}
OUTER = INNER           # every wrapping, at either level


@pytest.mark.parametrize("outer,inner", list(itertools.product(OUTER, INNER)))
def test_grad_of_wrapped_function(outer, inner):
    g = OUTER[outer](tj.grad(INNER[inner](f)))
    np.testing.assert_allclose(g(X, S), dfdx(X, S), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("outer,inner", list(itertools.product(OUTER, INNER)))
def test_value_and_grad_of_wrapped_function(outer, inner):
    v, g = OUTER[outer](tj.value_and_grad(INNER[inner](f)))(X, S)
    np.testing.assert_allclose(v, value(X, S), rtol=1e-13)
    np.testing.assert_allclose(g, dfdx(X, S), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("outer,inner", list(itertools.product(OUTER, INNER)))
def test_second_derivative_through_jits(outer, inner):
    df = tj.jit(tj.grad(INNER[inner](f)))
    g = OUTER[outer](tj.grad(lambda x, s: np.sum(df(x, s))))
    np.testing.assert_allclose(g(X, S), d2fdx2(X, S), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("outer,inner", list(itertools.product(OUTER, INNER)))
def test_vjp_of_wrapped_function(outer, inner):
    def pulled_back(x, s):
        out, back = tj.vjp(INNER[inner](lambda x, s: np.sin(x) * s), x, s)
        return out, back(np.ones_like(out))[0]

    out, ct = OUTER[outer](pulled_back)(X, S)
    np.testing.assert_allclose(out, np.sin(X) * S, rtol=1e-13)
    np.testing.assert_allclose(ct, dfdx(X, S), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("inner", INNER)
def test_jit_of_jit_uses_the_outer_options(inner):
    """Options and caches belong to each Jitted: wrapping copies none of the inner one's."""
    wrapped = INNER[inner](f)
    outer = tj.jit(wrapped, fuse=False, backend="interpret")
    assert outer.options.backend == "interpret" and outer.options.fuse is False
    assert outer.fun is wrapped
    np.testing.assert_allclose(outer(X, S), value(X, S), rtol=1e-13)
    assert outer.trace_count == 1
    if isinstance(wrapped, tj.Jitted):
        assert wrapped.trace_count == 0          # the outer jit traced through it, inlined


def test_jit_of_grad_of_jit_is_the_gradient():
    """The defect that motivated this file: the wrapper copied the jitted object's function."""
    j = tj.jit(lambda x: np.sum(np.sin(x)))
    np.testing.assert_allclose(tj.jit(tj.grad(j))(np.array([0.0, 1.0])), np.cos([0.0, 1.0]))
    assert tj.jit(tj.grad(tj.jit(lambda x: 3.0 * x)))(2.0) == 3.0
    assert tj.grad(tj.jit(tj.grad(tj.jit(lambda x: x ** 3))))(2.0) == 12.0


def test_names_and_docstrings_carry_over():
    def loss(x):
        """The loss."""
        return np.sum(x)

    for wrapped in (tj.jit(loss), tj.grad(loss), tj.jit(tj.grad(tj.jit(loss)))):
        assert wrapped.__doc__ == "The loss."
    assert tj.jit(loss).__name__ == "loss"


def test_static_on_both_levels():
    inner = tj.jit(lambda x, n: x * sum(range(n)), static_argnums=1)
    outer = tj.jit(tj.grad(lambda x, n: np.sum(inner(x, n))), static_argnums=1)
    np.testing.assert_allclose(outer(X, 4), np.full_like(X, 6.0))
    np.testing.assert_allclose(outer(X, 5), np.full_like(X, 10.0))
    assert outer.trace_count == 2


def test_static_inside_only_names_the_way_out():
    inner = tj.jit(lambda x, n: x * sum(range(n)), static_argnums=1)
    with pytest.raises(tj.ConcretizationError, match="mark it static there too"):
        tj.jit(inner)(X, 4)


def test_donation_on_the_outer_level_with_an_inner_jit():
    inner = tj.jit(tj.grad(f))
    step = tj.jit(lambda x, s: x - 0.1 * inner(x, s), donate_argnums=0)
    x = X.copy()
    want = X - 0.1 * dfdx(X, S)
    out = step(x, S)
    assert out is x
    np.testing.assert_allclose(x, want, rtol=1e-13)


def test_donation_on_the_inner_level_is_ignored_when_inlined():
    inner = tj.jit(lambda x: x * 2.0, donate_argnums=0)
    x = X.copy()
    out = tj.jit(lambda x: inner(x) + 1.0)(x)
    np.testing.assert_array_equal(x, X)                  # the outer call donated nothing
    np.testing.assert_allclose(out, X * 2.0 + 1.0)
