"""NumPy's array functions (tracejit/numpy_api/arrays.py) against NumPy: values, dtypes and
shapes through tj.jit (cpu fused and unfused, and the CUDA backend: see npcheck.check), their
errors where NumPy raises, and gradients against float64 central finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from npcheck import check, rand

FLOATS = ["float32", "float64"]


def fd_check(f, x, eps=1e-6):
    """tj.grad of sum(f(x) * r) against central differences in float64."""
    x = np.asarray(x, np.float64)
    r = np.random.default_rng(1).standard_normal(np.shape(f(x)))

    def loss(x):
        return np.sum(f(x) * r)

    g = np.asarray(tj.grad(loss)(x))
    want = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        want[i] = (loss(x + d) - loss(x - d)) / (2 * eps)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8)
    for fuse in (True, False):
        gj = np.asarray(tj.jit(tj.grad(loss), fuse=fuse)(x))
        np.testing.assert_allclose(gj, g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS + ["int32", "bool"])
def test_dimensions(dtype):
    for shape in [(), (3,), (2, 3), (2, 3, 4)]:
        x = rand(shape, dtype, seed=len(shape))
        check(lambda x: (np.atleast_1d(x), np.atleast_2d(x), np.atleast_3d(x)), x)
    x, y = rand((3,), dtype), rand((2, 3), dtype, seed=1)
    check(lambda x, y: np.atleast_2d(x, y), x, y)
    z = rand((2, 3, 4, 5), dtype)
    for axis, start in [(3, 1), (0, 4), (-1, 0), (2, 2), (1, -1)]:
        check(lambda z: np.rollaxis(z, axis, start), z)


@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_flip_rotate_roll(dtype):
    x = rand((3, 4, 5), dtype)
    check(lambda x: (np.flipud(x), np.fliplr(x)), x)
    for k in (-1, 0, 1, 2, 3, 5):
        check(lambda x: np.rot90(x, k), x)
        check(lambda x: np.rot90(x, k, axes=(2, 0)), x)
    for shift, axis in [(2, None), (-7, None), (1, 0), (3, -1), ((1, 2), (0, 2)), (5, (0, 1)),
                        ((1, -1), 1)]:
        check(lambda x: np.roll(x, shift, axis), x)
    with pytest.raises(ValueError):
        tj.jit(lambda x: np.flipud(x))(np.float64(1.0))
    with pytest.raises(ValueError):
        tj.jit(lambda x: np.fliplr(x))(np.zeros(3))
    with pytest.raises(ValueError):
        tj.jit(lambda x: np.rot90(x, axes=(0, 0)))(np.zeros((2, 2)))


@pytest.mark.parametrize("dtype", FLOATS + ["int32", "bool"])
def test_repeat_tile(dtype):
    x = rand((2, 3), dtype)
    for repeats, axis in [(2, None), (3, 0), (2, 1), ([1, 0, 3], 1), ([2, 1], 0), (0, 1)]:
        check(lambda x: np.repeat(x, repeats, axis), x)
    for reps in [2, (2, 1), (1, 3), (2, 2, 2), (3,), (1, 1)]:
        check(lambda x: np.tile(x, reps), x)
    check(lambda x: np.tile(x[0, 0], (2, 3)), x)
    with pytest.raises(ValueError):
        tj.jit(lambda x: np.repeat(x, [1, 2], 1))(x)


@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_split_and_join(dtype):
    x = rand((6, 4, 3), dtype)
    for sections, axis in [(3, 0), (2, 1), ([1, 4], 0), ([2, 2, 9], 1), (1, 2)]:
        check(lambda x: np.split(x, sections, axis), x)
    for sections, axis in [(4, 0), (3, 1), (5, 2), ([1, 3], 0)]:
        check(lambda x: np.array_split(x, sections, axis), x)
    check(lambda x: (np.hsplit(x, 2), np.vsplit(x, 3), np.dsplit(x, 3)), x)
    check(lambda x: np.hsplit(x[:, 0, 0], 3), x)
    with pytest.raises(ValueError, match="equal division"):
        tj.jit(lambda x: np.split(x, 4))(x)
    y = rand((4,), dtype, seed=2)
    check(lambda x, y: (np.append(x, y), np.append(x[0], x[1], axis=0),
                        np.column_stack([y, y]), np.column_stack([x[:4, :, 0], y]),
                        np.dstack([x[:, :, 0], x[:, :, 1]]), np.dstack([y, y])), x, y)


@pytest.mark.parametrize("dtype", FLOATS + ["int32"])
def test_diagonals_and_triangles(dtype):
    x = rand((4, 5), dtype)
    b = rand((2, 3, 4, 4), dtype, seed=1)
    for k in (-5, -2, 0, 1, 3, 7):
        check(lambda x: (np.diagonal(x, k), np.trace(x, k), np.diag(x, k), np.tril(x, k),
                         np.triu(x, k)), x)
        check(lambda x: np.diag(x[0], k), x)
    check(lambda b: (np.diagonal(b, 1, 3, 1), np.trace(b, -1, axis1=2, axis2=3),
                     np.tril(b), np.triu(b, 1), np.tril(b[0, 0, 0])), b)
    check(lambda x: np.trace(x, dtype=np.float64), x)
    with pytest.raises(ValueError):
        tj.jit(lambda x: np.diag(x))(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("dtype", FLOATS + ["int64", "bool"])
def test_diff(dtype):
    x = rand((4, 6), dtype)
    for n, axis in [(1, -1), (2, 0), (3, 1), (0, 0), (7, 1)]:
        check(lambda x: np.diff(x, n, axis), x)
    check(lambda x: np.diff(x, prepend=x[:, :1], append=x[0, 0]), x)
    with pytest.raises(ValueError):
        tj.jit(lambda x: np.diff(x, -1))(x)


@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
@pytest.mark.parametrize("dtype", FLOATS + ["int32"])
def test_kron_and_cross(dtype):
    a, b = rand((2, 3), dtype), rand((3, 2), dtype, seed=1)
    v = rand((3,), dtype, seed=2)
    check(lambda a, b, v: (np.kron(a, b), np.kron(a, v), np.kron(v, a), np.kron(a[0, 0], b)),
          a, b, v)
    u, w = rand((4, 3), dtype, seed=3), rand((4, 3), dtype, seed=4)
    check(lambda u, w, v: (np.cross(u, w), np.cross(u, v), np.cross(u.T, w.T, axis=0),
                           np.cross(u, w, axisc=0), np.cross(u[:, :2], w), np.cross(u, w[:, :2])),
          u, w, v)


@pytest.mark.parametrize("dtype", FLOATS)
def test_select_nan_to_num_isclose(dtype):
    x = rand((5, 4), dtype)
    x[0, 0], x[1, 1], x[2, 2] = np.nan, np.inf, -np.inf
    check(lambda x: np.select([x < -1, x > 1], [x * 2, x ** 2], default=-1.0), x)
    check(lambda x: np.select([x < 0], [x]), x)
    check(lambda x: (np.nan_to_num(x), np.nan_to_num(x, nan=5.0, posinf=1.0, neginf=-2.0)), x)
    check(lambda x: np.nan_to_num(x.astype(np.int32)), np.where(np.isfinite(x), x, 0))
    y = x + np.asarray(1e-7, dtype) * np.random.default_rng(5).standard_normal(x.shape)
    check(lambda x, y: (np.isclose(x, y), np.isclose(x, y, equal_nan=True),
                        np.isclose(x, y, rtol=0, atol=1e-3), np.allclose(x, x + 1e-9),
                        np.allclose(x, y, equal_nan=True)), x, y)
    with pytest.raises(TypeError):
        tj.jit(lambda x: np.select([x], [x]))(x)


@pytest.mark.parametrize("name,f,shape", [
    ("roll", lambda x: np.roll(x, (1, -2), (0, 1)) * x, (3, 4)),
    ("rot90", lambda x: np.rot90(x) @ x, (3, 3)),
    ("repeat", lambda x: np.repeat(x, [2, 0, 1], axis=0) ** 2, (3, 2)),
    ("tile", lambda x: np.tile(x, (2, 3)) ** 3, (2, 2)),
    ("split", lambda x: np.array_split(x, 3, axis=1)[1][:2] * np.split(x, 2)[0][:, :2], (4, 5)),
    ("diagonal_trace", lambda x: np.diagonal(x, 1) * np.trace(x), (4, 4)),
    ("diag", lambda x: np.diag(np.diag(x, -1) ** 2, 2), (4, 4)),
    ("tril_triu", lambda x: np.tril(x, -1) * np.triu(x.T), (3, 3)),
    ("diff", lambda x: np.diff(x ** 3, 2, axis=0), (5, 2)),
    ("kron", lambda x: np.kron(x, x[::-1]), (2, 2)),
    ("cross", lambda x: np.cross(x, x[::-1] ** 2), (4, 3)),
    ("select", lambda x: np.select([x > 0.5, x < -0.5], [x ** 2, np.sin(x)], x), (3, 4)),
    ("nan_to_num", lambda x: np.nan_to_num(np.log(np.abs(x))) * x, (3, 3)),
])
def test_gradients(name, f, shape):
    fd_check(f, np.random.default_rng(7).uniform(-2, 2, shape))


@pytest.mark.parametrize("dtype", FLOATS)
def test_pad_and_nan_reductions(dtype):
    """np.pad and the nan* reductions, forward (tests/ir/test_pad_and_where.py has the rest:
    every mode and form, where=, errors and gradients)."""
    x = rand((3, 4), dtype)
    x[0, 1] = x[2, 2] = np.nan
    x[1, :] = np.nan
    check(lambda x: (np.pad(x, 2), np.pad(x, ((1, 0), (5, 2)), mode="reflect"),
                     np.pad(x, 3, mode="wrap"), np.pad(x, (1, 2), constant_values=(4, -1))), x)
    check(lambda x: (np.nansum(x, axis=0), np.nanprod(x), np.nanmean(x, axis=1),
                     np.nanmax(x, axis=1), np.nanmin(x, axis=0), np.nanvar(x, axis=0, ddof=1),
                     np.nanstd(x, axis=1, keepdims=True)), x)
    y = np.where(np.isnan(x[[0, 2]]), x[[0, 2]], x[[0, 2]] * 2)
    check(lambda y: (np.nanargmax(y, axis=1), np.nanargmin(y, axis=1), np.nanargmax(y)), y)
