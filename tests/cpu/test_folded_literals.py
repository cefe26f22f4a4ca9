"""Views and other structural work on values that the passes fold into literals.

Constant folding and simplification turn some rank-0 values into literals after tracing (a sum
over an empty axis is 0, `i - i` of integers is 0, `x - x` under fast_math is 0). Every view
(reshape, expand_dims, squeeze, ravel, transpose, broadcast, slice, flip) and every structural
primitive (concatenate, gather, dot, reductions, argmax) applied to such a literal must run on
every backend, fused and unfused, and give NumPy's answer. The CUDA emulator runs the same
sweep in tests/cuda/test_value_checks.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit.ir import Literal

X = np.array([1.5, -2.0, 4.0])
I = np.array([3, 1, 2])

#: Rank-0 values that the passes turn into literals (with fast_math=True).
MAKERS = {
    "empty sum": lambda x, i: np.sum(np.broadcast_to(x[0], (0,))),
    "integer i - i": lambda x, i: i[0] - i[0],
    "fast-math x - x": lambda x, i: x[0] - x[0],
}

#: Work on a rank-0 value `v` (and the array x).
VIEWS = {
    "reshape": lambda v, x: v.reshape(1),
    "reshape 2d": lambda v, x: np.reshape(v, (1, 1)),
    "expand_dims": lambda v, x: np.expand_dims(v, 0),
    "newaxis": lambda v, x: v[None, None],
    "ravel": lambda v, x: np.ravel(v),
    "broadcast_to": lambda v, x: np.broadcast_to(v, (2, 3)),
    "transpose": lambda v, x: np.transpose(np.reshape(v, (1, 1, 1)), (2, 0, 1)),
    "transposed broadcast": lambda v, x: np.broadcast_to(v, (2, 3)).T,
    "squeeze": lambda v, x: np.squeeze(v.reshape(1, 1)),
    "slice": lambda v, x: v.reshape(1)[0:1],
    "reversed slice": lambda v, x: np.broadcast_to(v, (4,))[3:0:-2],
    "flip": lambda v, x: np.flip(v.reshape(1, 1), 0),
    "concatenate": lambda v, x: np.concatenate([v.reshape(1), x]),
    "stack": lambda v, x: np.stack([v, v]),
    "hstack": lambda v, x: np.hstack([v, x]),
    "matmul": lambda v, x: v.reshape(1, 1) @ x.reshape(1, 3),
    "take": lambda v, x: np.take(v.reshape(1), [0, -1, 0]),
    "argmax": lambda v, x: np.argmax(v.reshape(1, 1), axis=0),
    "sum": lambda v, x: np.sum(v.reshape(1, 1), axis=0),
    "max": lambda v, x: np.max(np.broadcast_to(v, (2, 2)), axis=1),
    "elementwise": lambda v, x: v.reshape(1) * x[:1] + 1,
    "where": lambda v, x: np.where(x > 0, v.reshape(1), x),
    "astype": lambda v, x: v.reshape(1).astype(np.int32),
}

BACKENDS = pytest.mark.parametrize("backend, fuse", [("interpret", True), ("cpu", True),
                                                     ("cpu", False)],
                                   ids=["interpret", "cpu", "cpu-unfused"])


def sweep(view):
    """One program applying `view` to every kind of folded literal."""
    return lambda x, i: tuple(view(make(x, i), x) for make in MAKERS.values())


def assert_same(got, want):
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("make", MAKERS)
def test_the_makers_fold_to_literals(make):
    """The premise of the sweep: each maker's value is a literal after the passes."""
    program = tj.jit(MAKERS[make], fast_math=True, backend="interpret").program(X, I)
    assert isinstance(program.fn.results[0], Literal)


@BACKENDS
@pytest.mark.parametrize("view", VIEWS)
def test_views_of_folded_literals(backend, fuse, view):
    f = sweep(VIEWS[view])
    assert_same(tj.jit(f, backend=backend, fuse=fuse, fast_math=True)(X, I), f(X, I))


@BACKENDS
def test_reshape_of_an_empty_sum_and_of_a_fast_math_difference(backend, fuse):
    f = lambda a: np.sum(np.broadcast_to(a, (0,))).reshape(1)      # noqa: E731
    assert_same([tj.jit(f, backend=backend, fuse=fuse)(np.float64(1.0))], [f(np.float64(1.0))])
    g = lambda x: (x[0] - x[0]).reshape(1)                          # noqa: E731
    assert_same([tj.jit(g, backend=backend, fuse=fuse, fast_math=True)(X)], [g(X)])


@BACKENDS
def test_gradient_through_a_folded_literal(backend, fuse):
    f = lambda x: np.sum(np.sum(np.broadcast_to(x[0], (0,))).reshape(1, 1) * x) + np.sum(x * x)
    got = tj.jit(tj.grad(f), backend=backend, fuse=fuse)(X)
    np.testing.assert_allclose(got, 2 * X, rtol=1e-15)


@BACKENDS
def test_literal_operands_of_gather_scatter_and_pad_kernels(backend, fuse):
    """The cotangent of a rank-0 result is a literal: it reaches scatter-add (the gradient of
    x[i] with a traced i) and pad (of x[1]) as an operand, as a folded index reaches gather."""
    run = lambda f, *args, **kw: tj.jit(f, backend=backend, fuse=fuse, **kw)(*args)  # noqa
    i = np.int64(1)
    np.testing.assert_array_equal(run(tj.grad(lambda x, i: x[i] * 2.0), X, i), [0, 2, 0])
    np.testing.assert_array_equal(run(tj.grad(lambda x, i: x[i]), X, i), [0, 1, 0])
    np.testing.assert_array_equal(run(tj.grad(lambda x: x[2]), X), [0, 0, 1])
    np.testing.assert_array_equal(
        run(tj.grad(lambda x, i: x[i] * (x[0] - x[0] + 3.0)), X, i, fast_math=True), [0, 3, 0])
    np.testing.assert_array_equal(run(lambda x, i: x[i - i + 2], X, i), X[2])
