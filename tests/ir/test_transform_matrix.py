"""Every transformation composed with every other, against the same composition done by hand
in NumPy with float64 central differences.

Each transformation T maps a scalar function of x (3 x 4) to another one, so that any two
compose: grad (projected on a fixed direction), jvp (along a fixed direction), vmap (over
three transformed copies of x, summed), checkpoint and jit (the function itself). Each has a
NumPy twin that does the same to the NumPy version of the function: finite differences for
the derivatives, a Python loop for vmap. The functions are plain, a custom_vjp one and a
custom_jvp one (whose rules are right, so every composition must agree).
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj

RNG = np.random.default_rng(11)
W = RNG.standard_normal((4, 3)) * 0.5
R = RNG.standard_normal((3, 4))          # the direction gradients are projected on
V = RNG.standard_normal((3, 4))          # the direction of jvp
X = RNG.standard_normal((3, 4)) * 0.7
EPS = 1e-4                               # central differences nest two deep: error ~ EPS**2


def base_numpy(x):
    return np.sum(np.tanh(x @ W) ** 2) + 0.1 * np.sum(x ** 3)


def base_grad_numpy(x):
    t = np.tanh(x @ W)
    return (2 * t * (1 - t ** 2)) @ W.T + 0.3 * x ** 2


@tj.custom_vjp
def base_custom_vjp(x):
    return base_numpy(x)


base_custom_vjp.defvjp(lambda x: (base_custom_vjp(x), x),
                       lambda x, g: (g * _grad_traced(x),))


@tj.custom_jvp
def base_custom_jvp(x):
    return base_numpy(x)


@base_custom_jvp.defjvp
def _base_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return base_custom_jvp(x), np.sum(_grad_traced(x) * t)


def _grad_traced(x):
    t = np.tanh(x @ W)
    return (2 * t * (1 - t ** 2)) @ W.T + 0.3 * x ** 2


BASES = {"plain": base_numpy, "custom_vjp": base_custom_vjp, "custom_jvp": base_custom_jvp}


def _copies(x):
    return [x, 2.0 * x, np.sin(x)]


# name -> (tracejit transform, NumPy twin); each maps a scalar function of x to another.
TRANSFORMS = {
    "grad": (lambda f: lambda x: np.sum(tj.grad(f)(x) * R),
             lambda f: lambda x: _directional(f, x, R)),
    "jvp": (lambda f: lambda x: tj.jvp(f, (x,), (V,))[1],
            lambda f: lambda x: (f(x + EPS * V) - f(x - EPS * V)) / (2 * EPS)),
    "vmap": (lambda f: lambda x: np.sum(tj.vmap(f)(np.stack(_copies(x)))),
             lambda f: lambda x: sum(f(c) for c in _copies(x))),
    "checkpoint": (lambda f: tj.checkpoint(f), lambda f: f),
    "jit": (lambda f: tj.jit(f), lambda f: f),
}


def _directional(f, x, direction):
    """<grad f(x), direction> by central differences, element by element."""
    total = 0.0
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = EPS
        total += direction[i] * (f(x + e) - f(x - e)) / (2 * EPS)
    return total


PAIRS = [(outer, inner) for outer in TRANSFORMS for inner in TRANSFORMS]


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize("outer,inner", PAIRS, ids=[f"{o}-of-{i}" for o, i in PAIRS])
def test_every_pair_of_transformations(outer, inner, base):
    f = BASES[base]
    got = TRANSFORMS[outer][0](TRANSFORMS[inner][0](f))(X)
    want = TRANSFORMS[outer][1](TRANSFORMS[inner][1](base_numpy))(X)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
    # and the whole composition compiled as one program
    np.testing.assert_allclose(tj.jit(TRANSFORMS[outer][0](TRANSFORMS[inner][0](f)))(X), got,
                               rtol=1e-10, atol=1e-12)


def test_the_twins_are_right():
    # The NumPy twins' own oracle: the closed-form gradient.
    np.testing.assert_allclose(TRANSFORMS["grad"][1](base_numpy)(X),
                               np.sum(base_grad_numpy(X) * R), rtol=1e-7)
    np.testing.assert_allclose(TRANSFORMS["jvp"][1](base_numpy)(X),
                               np.sum(base_grad_numpy(X) * V), rtol=1e-7)
