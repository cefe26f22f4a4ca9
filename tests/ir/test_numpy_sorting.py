"""Along one axis (tracejit/numpy_api/sorting.py): cumsum, cumprod and the ufuncs' accumulate;
sort, argsort, partition, argpartition; median, quantile and percentile. Values, dtypes and
shapes against NumPy through tj.jit (cpu fused and unfused, and the CUDA backend: see
npcheck.check), including lines longer than a CUDA block and NaN, infinities, signed zeros and
ties; gradients (first and second order) against float64 central finite differences; the
errors where NumPy raises or tracejit refuses."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors
from npcheck import check, grad_check, rand

FLOATS = ["float32", "float64"]
DTYPES = FLOATS + ["int32", "int64", "bool"]


def specials(dtype, n=40, seed=0):
    """Values with NaN, infinities, both zeros and repeated values, shuffled."""
    base = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, 1.5, -2.0, -0.0, 0.0, np.nan, 3.0]
    x = np.concatenate([base, rand(n - len(base), "float64", seed)]).astype(dtype)
    return np.random.default_rng(seed).permutation(x)


def cumsum_atol(x, axis=None):
    """The error bound of a float cumulative sum added in any order: the running sum of |x|
    times the dtype's epsilon (NumPy adds in order, the CUDA backend in a block scan)."""
    dtype = np.asarray(x).dtype
    if dtype.kind != "f":
        return 0.0
    finite = np.where(np.isfinite(x), np.abs(x), 0).astype(np.float64)
    total = np.max(np.cumsum(finite, axis=axis), initial=0)
    return float(total) * 2 * float(np.finfo(dtype).eps)


# ---------------------------------------------------------------------------------------------
# cumsum, cumprod, accumulate


@pytest.mark.parametrize("dtype", DTYPES)
def test_cumsum_cumprod_shapes_axes_dtypes(dtype):
    for shape in [(), (7,), (3, 4), (2, 3, 5)]:
        x = rand(shape, dtype, seed=len(shape), low=0.5, high=1.5)
        axes = [None] + list(range(-len(shape), len(shape)))
        check(lambda x: [(np.cumsum(x, axis=axis), np.cumprod(x, axis=axis)) for axis in axes],
              x, atol=cumsum_atol(x))
    x = rand((3, 4), dtype)
    dtypes = (np.float32, np.float64, np.int64, np.int32, bool)
    check(lambda x: (x.cumsum(axis=1), x.cumprod(0), x.cumsum(),
                     [(np.cumsum(x, axis=0, dtype=d), np.cumprod(x, axis=1, dtype=d))
                      for d in dtypes],
                     np.add.accumulate(x), np.multiply.accumulate(x, axis=1),
                     np.add.accumulate(x, axis=-1, dtype=np.float64)), x, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_cumulative_lines_longer_than_a_block(dtype):
    x = rand((3000,), dtype, seed=1)
    check(lambda x: np.cumsum(x), x, atol=cumsum_atol(x))
    y = rand((700, 3), dtype, seed=2, low=0.99, high=1.01)
    check(lambda y: (np.cumsum(y, axis=0), np.cumprod(y, axis=0)), y,
          rtol=1e-5 if dtype == "float32" else None, atol=cumsum_atol(y, 0))
    z = rand((5, 513), dtype, seed=3)
    check(lambda z: np.cumsum(z[:, ::-1] * 2, axis=1), z, atol=2 * cumsum_atol(z, 1))


@pytest.mark.parametrize("dtype", FLOATS)
def test_cumulative_special_values(dtype):
    x = specials(dtype)
    check(lambda x: (np.cumsum(x), np.cumprod(x[:8])), x, atol=cumsum_atol(x))
    check(lambda x: np.cumsum(x.reshape(4, 10), axis=0), x, atol=cumsum_atol(x))


def test_cumulative_empty_and_integer_wraparound():
    check(lambda x: (np.cumsum(x, axis=0), np.cumprod(x, axis=1)), np.zeros((0, 3)))
    big = np.array([2 ** 62, 2 ** 62, 2 ** 62], np.int64)
    check(lambda x: (np.cumsum(x), np.cumprod(x)), big)


def test_cumsum_is_one_kernel_of_its_own():
    x = rand((64, 100), "float32")
    program = tj.jit(lambda x: np.cumsum(x * 2, axis=1)).program(x)
    prims = [k.own_primitive for k in program.kernels]
    assert prims.count(tj.primitives.cumsum) == 1 and len(prims) == 2


# ---------------------------------------------------------------------------------------------
# sort, argsort, partition


@pytest.mark.parametrize("dtype", DTYPES)
def test_sort_argsort_shapes_axes_dtypes(dtype):
    for shape in [(9,), (3, 4), (2, 3, 5)]:
        x = rand(shape, dtype, seed=len(shape))
        axes = [None, 0, -1] + ([1] if len(shape) > 1 else [])
        check(lambda x: [(np.sort(x, axis=axis, kind="stable"),
                          np.argsort(x, axis=axis, kind="stable")) for axis in axes], x)
    x = rand((4, 6), dtype)
    check(lambda x: (x.argsort(axis=0, kind="stable"), np.sort(x, kind="quicksort"),
                     np.sort(x, stable=True)), x)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sort_special_values_and_ties(dtype):
    x = specials(dtype)
    # Stable: equal values (0.0 and -0.0 are equal, like the NaNs) keep their order.
    check(lambda x: (np.sort(x, kind="stable"), np.argsort(x, kind="stable")), x)
    check(lambda x: np.argsort(x.reshape(8, 5), axis=0, kind="stable"), x)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_sort_lines_longer_than_a_block(dtype):
    # (The CUDA backend's blocks have 256 threads: these lines take 3 and 2 tiles.)
    x = rand((1, 530), dtype, seed=4)
    x[:, ::7] = x[:, :1]                      # many ties
    check(lambda x: (np.sort(x, kind="stable"), np.argsort(x, axis=1, kind="stable")), x)
    y = rand((300, 2), dtype, seed=5)
    check(lambda y: np.argsort(y[::-1] * 3, axis=0, kind="stable"), y)


def test_partition_is_a_sort():
    x = rand((5, 9), "float64")
    for f in (lambda x: np.partition(x, 3), lambda x: np.partition(x, (1, 4), axis=0)):
        got = tj.jit(f)(x)
        want = f(x)
        np.testing.assert_array_equal(np.sort(got, axis=-1 if got is None else None),
                                      np.sort(want, axis=None))
    np.testing.assert_array_equal(tj.jit(lambda x: np.partition(x, 3))(x), np.sort(x))
    np.testing.assert_array_equal(tj.jit(lambda x: np.argpartition(x, -2, axis=0))(x),
                                  np.argsort(x, axis=0, kind="stable"))


# ---------------------------------------------------------------------------------------------
# median, quantile, percentile


@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_median_quantile_percentile(dtype):
    for shape in [(7,), (4, 6), (3, 4, 5)]:
        x = rand(shape, dtype, seed=len(shape))
        axes = [None, 0, -1] + ([(0, 1)] if len(shape) > 1 else [])
        check(lambda x: [(np.median(x, axis=axis, keepdims=keepdims),
                          np.quantile(x, 0.3, axis=axis, keepdims=keepdims),
                          np.percentile(x, [10, 50, 100], axis=axis, keepdims=keepdims))
                         for axis in axes for keepdims in (False, True)], x)
    x = rand((5, 8), dtype)
    methods = ("linear", "lower", "higher", "nearest", "midpoint")
    check(lambda x: [(np.quantile(x, [[0.0, 0.25], [0.5, 1.0]], axis=1, method=method),
                      np.quantile(x, 1, axis=0, method=method),
                      np.percentile(x, 37.5, method=method)) for method in methods], x)


@pytest.mark.parametrize("dtype", FLOATS)
def test_median_quantile_nan(dtype):
    x = rand((4, 5), dtype)
    x[1, 3] = np.nan
    check(lambda x: (np.median(x, axis=1), np.quantile(x, [0.2, 0.9], axis=1),
                     np.median(x)), x)


@pytest.mark.parametrize("dtype", FLOATS + ["float16"])
def test_nanmedian_nanquantile_nanpercentile(dtype):
    x = rand((5, 7), "float64", seed=11)
    x[0, [1, 3]] = np.nan             # some NaN
    x[2] = np.nan                     # all NaN: NaN, as NumPy (which warns)
    x[3, 6] = np.nan                  # one NaN
    x = x.astype(dtype)
    methods = ("linear", "lower", "higher", "nearest", "midpoint")
    check(lambda x: [(np.nanquantile(x, [0.0, 0.3, 1.0], axis=1, method=m),
                      np.nanpercentile(x, 45, axis=0, method=m, keepdims=True))
                     for m in methods] + [np.nanmedian(x), np.nanmedian(x, axis=1),
                                          np.nanmedian(x, axis=0, keepdims=True)], x,
          rtol=None if dtype != "float16" else 4e-3, atol=0.0 if dtype != "float16" else 2e-3)
    check(lambda x: (np.nanmedian(x), np.nanquantile(x, 0.25, axis=1)),
          rand((3, 4), "int64", seed=12))


def test_maximum_minimum_accumulate():
    x = specials("float64", 36).reshape(4, 9)
    for f in (np.maximum, np.minimum, np.fmax, np.fmin):
        check(lambda x: (f.accumulate(x, axis=1), f.accumulate(x), f.accumulate(x, axis=0,
                                                                           dtype=np.float32)), x)
    check(lambda x: (np.logical_and.accumulate(x > 0, axis=1), np.logical_or.accumulate(x,
                                                                                     axis=0)), x)
    check(lambda x: np.maximum.accumulate(x, axis=1), rand((3, 300), "int32", seed=13))


def test_quantile_errors():
    x = rand((4, 5))
    with pytest.raises(ValueError, match=r"Quantiles must be in the range \[0, 1\]"):
        tj.jit(lambda x: np.quantile(x, 1.5))(x)
    with pytest.raises(ValueError, match=r"Percentiles must be in the range \[0, 100\]"):
        tj.jit(lambda x: np.percentile(x, -1))(x)
    with pytest.raises(errors.ConcretizationError, match="q must be static"):
        tj.jit(lambda x, q: np.quantile(x, q))(x, 0.5)
    with pytest.raises(errors.UnsupportedError, match="method 'hazen'"):
        tj.jit(lambda x: np.quantile(x, 0.5, method="hazen"))(x)
    with pytest.raises(errors.ShapeError, match="empty"):
        tj.jit(lambda x: np.median(x, axis=0))(np.zeros((0, 3)))


def test_refusals_name_the_replacement():
    x = rand((4, 5))
    with pytest.raises(errors.UnsupportedError, match=r"np.sort\(x, axis\)"):
        tj.jit(lambda x: x.sort())(x)
    with pytest.raises(errors.UnsupportedError, match="subtract.accumulate"):
        tj.jit(lambda x: np.subtract.accumulate(x))(x)
    with pytest.raises(errors.UnsupportedError, match="out="):
        tj.jit(lambda x: np.cumsum(x, out=x))(x)
    with pytest.raises(TypeError, match="axis"):
        tj.jit(lambda x: np.cumsum(x, axis=(0, 1)))(x)
    with pytest.raises(ValueError, match="kth"):
        tj.jit(lambda x: np.partition(x, 7))(x)


# ---------------------------------------------------------------------------------------------
# gradients


def test_cumulative_gradients():
    x = rand((3, 5), seed=6)
    grad_check(lambda x: np.cumsum(x, axis=1), x)
    grad_check(lambda x: np.cumsum(x), x)
    grad_check(lambda x: np.cumprod(x, axis=0), x)
    grad_check(lambda x: np.cumprod(x, axis=1), x)


def test_cumprod_gradient_at_zeros():
    # One zero, two zeros and a zero first in a line: the product rule without division.
    x = rand((4, 6), seed=7)
    x[0, 2] = 0.0
    x[1, 1] = x[1, 4] = 0.0
    x[2, 0] = 0.0
    grad_check(lambda x: np.cumprod(x, axis=1), x, second=False)
    grad_check(lambda x: np.cumprod(x, axis=0), x, second=False)


def test_sort_and_quantile_gradients():
    x = rand((4, 5), seed=8)
    grad_check(lambda x: np.sort(x, axis=1), x)
    grad_check(lambda x: np.sort(x, axis=0), x)
    grad_check(lambda x: np.sort(x, axis=None), x)
    grad_check(lambda x: np.median(x, axis=0), x)
    grad_check(lambda x: np.median(x, axis=1), x)
    grad_check(lambda x: np.quantile(x, [0.1, 0.65], axis=1), x)
    grad_check(lambda x: np.percentile(x, 30, axis=(0, 1), method="midpoint"), x)
    x[1, 2] = x[3, 0] = np.nan
    grad_check(lambda x: np.nanquantile(x, [0.1, 0.65], axis=1), x, second=False)
    grad_check(lambda x: np.nanmedian(x, axis=0), x, second=False)
    grad_check(lambda x: np.maximum.accumulate(x, axis=1), rand((4, 5), seed=9))
