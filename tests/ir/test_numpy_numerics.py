"""Statistics, polynomials, integration, searches and the array functions written on top of
the others (tracejit/numpy_api/numerics.py and arrays.py): values, dtypes and shapes against
NumPy through tj.jit (cpu fused and unfused, and the CUDA backend: npcheck.check), gradients
against float64 central finite differences, and NumPy's errors."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from npcheck import check, grad_check, rand

FLOATS = ["float32", "float64"]


@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_statistics(dtype):
    x = rand((4, 6), dtype, seed=1)
    w = np.arange(1.0, 5.0)
    check(lambda x: (np.average(x), np.average(x, axis=0, weights=w),
                     np.average(x, axis=1, returned=True, keepdims=True),
                     np.average(x, weights=np.abs(x) + 1), np.ptp(x, axis=1), np.ptp(x),
                     np.count_nonzero(x > 0, axis=0), np.count_nonzero(x, keepdims=True)), x,
          rtol=1e-5 if dtype == "float32" else None)
    check(lambda x: (np.cov(x), np.cov(x, rowvar=False, bias=True), np.cov(x[0], x[1]),
                     np.cov(x, ddof=0), np.corrcoef(x), np.corrcoef(x[0], x[2])), x,
          rtol=1e-5 if dtype == "float32" else 1e-10)
    check(lambda x: np.cov(x, dtype=np.float32), x, rtol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS)
def test_polynomials_and_integration(dtype):
    v = rand((7,), dtype, seed=2)
    x = rand((3, 7), dtype, seed=3)
    rtol = 1e-5 if dtype == "float32" else 1e-10
    check(lambda v: (np.polyval(np.array([1.0, -2.0, 3.0], dtype), v), np.polyval(v[:3], v),
                     np.vander(v), np.vander(v, 3, increasing=True),
                     np.polyfit(np.arange(7.0), v, 2)), v, rtol=rtol, cuda=False)
    check(lambda x: (np.trapezoid(x), np.trapezoid(x, dx=0.5, axis=0),
                     np.trapezoid(x, np.arange(7.0) ** 2), np.gradient(x[0]),
                     np.gradient(x, 0.5, edge_order=2), np.gradient(x, axis=1),
                     np.unwrap(np.cumsum(x * 3, axis=1)), np.unwrap(x * 4, period=4.0, axis=0)),
          x, rtol=rtol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_searches_and_interpolation(dtype):
    x = rand((3, 5), dtype, seed=4)
    knots = np.array([-2.0, -0.5, 0.0, 1.0, 2.5])
    check(lambda x: (np.searchsorted(knots, x), np.searchsorted(knots, x, side="right"),
                     np.searchsorted(knots[::-1], x, sorter=np.arange(5)[::-1]),
                     np.digitize(x, knots), np.digitize(x, knots, right=True),
                     np.digitize(x, knots[::-1]), np.interp(x, knots, knots ** 2),
                     np.interp(x * 2, knots, np.sin(knots), left=-9.0, right=9.0),
                     np.interp(knots, knots, knots * 3)), x)
    check(lambda x: (np.isin(np.round(x), [0.0, 1.0, -2.0]), np.isin(x, x[0], invert=True),
                     np.array_equal(x, x), np.array_equal(x, x + 1), np.array_equal(x, x[0]),
                     np.array_equiv(x, x[:1] * 0 + x[0]), np.array_equal(
                         np.where(x > 0, np.nan, x), np.where(x > 0, np.nan, x), equal_nan=True)),
          x)


def test_array_functions():
    x = rand((3, 4), seed=5)
    v = rand((5,), seed=6)
    check(lambda x, v: (np.meshgrid(v, x[0]), np.meshgrid(v, x[0], indexing="ij"),
                        np.meshgrid(v, x[0], v[:2], sparse=True), np.broadcast_arrays(x, v[:4]),
                        np.diagflat(v, -1), np.diagflat(x), np.ediff1d(x),
                        np.ediff1d(v, to_begin=[7, 8], to_end=-1.0), np.resize(v, (3, 4)),
                        np.resize(x, 5), np.block([[x, x], [x[:1], x[:1]]]), np.block([v, 1.0]),
                        np.vdot(x, x), np.vdot(v, v)), x, v)


def test_cumulative_and_nan_cumulative():
    x = rand((3, 5), seed=7)
    x[1, 2] = x[2, 0] = np.nan
    check(lambda x: (np.cumulative_sum(x, axis=1), np.cumulative_sum(x[0], include_initial=True),
                     np.cumulative_prod(x, axis=0, include_initial=True),
                     np.nancumsum(x), np.nancumsum(x, axis=0), np.nancumprod(x, axis=1),
                     np.nancumsum((x > 0).astype(np.int32), axis=1)), x)
    check(lambda x: (np.logaddexp.reduce(x, axis=0), np.logaddexp2.reduce(x, axis=1,
                                                                           keepdims=True)),
          rand((3, 5), seed=8))


def test_ufuncs_of_two_results():
    x = np.concatenate([rand((12,), seed=11), [np.inf, -np.inf, np.nan, -2.0, 0.0, -0.0, 3.5]])
    check(lambda x: (np.modf(x), np.divmod(x, 0.75), np.divmod(x, -2.0)), x)
    check(lambda n: (np.divmod(n, 3), np.divmod(n, -4), np.modf(n)), np.arange(-7, 8))
    grad_check(lambda x: np.modf(x)[0] + np.divmod(x, 0.7)[1], rand((6,), seed=12))


def test_errors_are_numpys():
    x = rand((3, 5), seed=9)
    with pytest.raises(TypeError, match="Axis must be specified"):
        tj.jit(lambda x: np.average(x, weights=np.ones(5)))(x)
    with pytest.raises(ValueError, match="Length of weights"):
        tj.jit(lambda x: np.average(x, axis=0, weights=np.ones(5)))(x)
    with pytest.raises(ValueError, match="edge_order"):
        tj.jit(lambda x: np.gradient(x, edge_order=3))(x)
    with pytest.raises(ValueError, match="side"):
        tj.jit(lambda x: np.searchsorted(x[0], x, side="up"))(x)
    with pytest.raises(tj.ConcretizationError, match="bins must be static"):
        tj.jit(lambda x: np.digitize(x, x[0]))(x)
    with pytest.raises(tj.UnsupportedError, match="period="):
        tj.jit(lambda x: np.interp(x, [0.0, 1.0], [1.0, 2.0], period=3.0))(x)
    with pytest.raises(ValueError, match="List depths are mismatched"):
        tj.jit(lambda x: np.block([[x], x]))(x)


def test_gradients():
    x = rand((3, 5), seed=10)
    knots = np.array([-2.0, -0.5, 0.0, 1.0, 2.5])
    grad_check(lambda x: np.average(x, axis=1, weights=np.arange(1.0, 6.0)), x)
    grad_check(lambda x: np.cov(x), x)
    grad_check(lambda x: np.corrcoef(x), x, second=False)
    grad_check(lambda x: np.ptp(x, axis=0), x, second=False)
    grad_check(lambda x: np.polyval(x[0], x[1]), x)
    grad_check(lambda x: np.trapezoid(x, np.arange(5.0) ** 2), x)
    grad_check(lambda x: np.gradient(x, 0.5, edge_order=2, axis=1), x)
    grad_check(lambda x: np.interp(x, knots, knots ** 2), x, second=False)
    grad_check(lambda x: np.interp(knots * 0.9, np.arange(5.0) - 2, x[0] ** 2), x,
               second=False)
    grad_check(lambda x: np.logaddexp.reduce(x, axis=0), x)
    grad_check(lambda x: np.block([[x, x * 2]]), x)
    grad_check(lambda x: np.nancumsum(x, axis=1), x)
    grad_check(lambda x: np.polyfit(np.arange(5.0), x[0], 2), x, second=False, cuda=False)
