"""np.pad, the where= of the reductions, and the nan* reductions against NumPy: values, dtypes
and shapes through tj.jit (cpu fused and unfused, and the CUDA backend: see npcheck.check), the
errors where NumPy raises or tracejit refuses, and gradients against float64 central finite
differences (exactly 0 at the elements a mask or NaN leaves out)."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from npcheck import check, cuda_backend, numpy_result, rand

FLOATS = ["float32", "float64"]
DTYPES = FLOATS + ["int64", "bool"]
#: float32 sums are summed in another order than NumPy's (pairwise): cancellation shows.
F32_SUMS = {"float32": dict(rtol=2e-5, atol=1e-5)}


def with_nans(shape, dtype="float64", seed=0):
    """Random values with scattered NaN, a slice of NaN only along each axis, and one along
    the first axis of everything but the first index of the others."""
    x = rand(shape, dtype, seed)
    rng = np.random.default_rng(seed + 100)
    x[rng.random(shape) < 0.3] = np.nan
    x[(0,) * (len(shape) - 1) + (slice(None),)] = np.nan
    x[(slice(None),) + (1,) * (len(shape) - 1)] = np.nan
    return x


def fd_check(f, x, eps=1e-6):
    """tj.grad of sum(f(x) * r) against central differences in float64 (NaN results left out
    of the sum); returns the gradient."""
    x = np.asarray(x, np.float64)
    y = numpy_result(f, x)
    r = np.random.default_rng(1).standard_normal(np.shape(y))

    def loss(x):
        y = f(x)
        return np.sum(np.where(np.isnan(y), 0.0, y) * r)

    g = np.asarray(tj.grad(loss)(x))
    want = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        want[i] = (numpy_result(loss, x + d) - numpy_result(loss, x - d)) / (2 * eps)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8)
    for fuse in (True, False):
        gj = np.asarray(tj.jit(tj.grad(loss), fuse=fuse)(x))
        np.testing.assert_allclose(gj, g, rtol=1e-12, atol=1e-12)
    return g


# ---------------------------------------------------------------------------------------------
# np.pad

#: Pad widths in NumPy's forms, for a 1-D, 2-D and 3-D array; each list has zero widths,
#: widths beyond the axis, and different widths per side and per axis.
WIDTHS = {
    1: [0, 1, 2, 3, 4, 7, 11, (0, 5), (6, 0), (2,), ((3, 1),), [[9, 2]], np.array([1, 4])],
    2: [0, 1, 5, (2, 7), ((1, 2), (3, 0)), ((0, 0), (8, 1)), ((6, 9), (1, 1)), [[2], [5]],
        {1: 3}, {0: (1, 4), -1: 2}],
    3: [1, 4, ((1, 0), (0, 2), (3, 5)), ((0, 0), (2, 2), (0, 0)), ((5, 1), (0, 0), (1, 6))],
}
SHAPES = {1: [(1,), (2,), (3,), (5,)], 2: [(3, 4), (1, 3), (2, 1)], 3: [(2, 3, 2), (1, 2, 3)]}
MODES = [("constant", {}), ("edge", {}), ("reflect", {}), ("symmetric", {}), ("wrap", {}),
         ("reflect", {"reflect_type": "odd"}), ("symmetric", {"reflect_type": "odd"}),
         ("reflect", {"reflect_type": "even"})]


@pytest.mark.parametrize("mode, kw", MODES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(v.values()) or "default")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_pad_modes(mode, kw, dtype, ndim):
    """Every mode, every form of pad_width, widths up to several times the axis (NumPy's
    repeated reflections and wraps), size-1 axes (reflect extends them as 'edge')."""
    for seed, shape in enumerate(SHAPES[ndim]):
        x = rand(shape, dtype, seed)
        check(lambda x: tuple(np.pad(x, w, mode, **kw) for w in WIDTHS[ndim]), x)


def test_pad_mode_by_position_and_keyword():
    x = rand((3, 4))
    check(lambda x: (np.pad(x, 2, "wrap"), np.pad(x, pad_width=2, mode="edge"),
                     np.pad(x, ((1, 2), (2, 1)), "reflect", reflect_type="odd"),
                     np.pad(array=x, pad_width=1), x.T @ np.pad(x, ((0, 0), (1, 2)))), x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_empty_mode_fills_zeros(dtype):
    """NumPy leaves 'empty' padding undefined; tracejit fills zeros (its documented choice)."""
    x = rand((2, 3), dtype)
    for w in (0, 2, ((1, 0), (3, 2))):
        got = tj.jit(lambda x: np.pad(x, w, mode="empty"))(x)
        want = np.pad(x, w)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got[tuple(slice(b, b + n) for (b, _), n in zip(
            np.broadcast_to(w, (2, 2)), x.shape))], x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_constant_values(dtype):
    """constant_values in each of NumPy's forms; a corner takes the value of its last axis;
    values are converted as NumPy assigns them (1.7 is 1 in an integer array, 0.5 is True)."""
    x = rand((3, 4), dtype)
    forms = [0, 1.7, -2, 0.5, True, (5,), (1, -3), ((2, 4),), ((1, 2), (3, 4)), [[7], [-1]],
             np.array([[1.5, 2.5], [3.5, 4.5]]), ((6, 6), (6, 6))]
    for w in (2, ((1, 3), (2, 0)), ((0, 0), (1, 1))):
        check(lambda x: tuple(np.pad(x, w, constant_values=v) for v in forms), x)
    y = rand((2, 1, 3), dtype, seed=1)
    check(lambda y: (np.pad(y, 2, constant_values=((1, 2), (3, 4), (5, 6))),
                     np.pad(y, ((0, 1), (2, 0), (1, 1)), constant_values=(-1, 9))), y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_traced_constant_values(dtype):
    """A traced scalar (or traced items of the pairs) as constant_values, cast to x's dtype."""
    x = rand((3, 2), dtype)

    def numpy_pad(x, values):
        return np.pad(x, ((1, 2), (2, 1)), constant_values=values)

    for c in (2.5, np.float32(-1.25), np.int64(3)):
        got = tj.jit(lambda x, c: np.pad(x, ((1, 2), (2, 1)), constant_values=c))(x, c)
        want = numpy_pad(x, c)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    got = tj.jit(lambda x, c: np.pad(x, ((1, 2), (2, 1)), constant_values=((c, 7), (x[0, 0], c))))(
        x, 4.0)
    np.testing.assert_array_equal(got, numpy_pad(x, ((4.0, 7), (x[0, 0], 4.0))))
    got = tj.jit(lambda x, v: np.pad(x, 1, constant_values=v))(x, np.array([[1.0, 2.0],
                                                                             [3.0, 4.0]]))
    np.testing.assert_array_equal(got, np.pad(x, 1, constant_values=[[1, 2], [3, 4]]))


def test_pad_empty_arrays():
    x = np.zeros((0, 3))
    check(lambda x: (np.pad(x, 2), np.pad(x, ((0, 0), (1, 2)), mode="reflect"),
                     np.pad(x, ((0, 0), (4, 1)), mode="wrap"),
                     np.pad(x, ((0, 0), (2, 2)), mode="edge")), x)
    with pytest.raises(ValueError, match="can't extend empty axis 0"):
        tj.jit(lambda x: np.pad(x, 1, mode="edge"))(x)


@pytest.mark.parametrize("mode, kw", MODES[:7], ids=["constant", "edge", "reflect",
                                                     "symmetric", "wrap", "reflect-odd",
                                                     "symmetric-odd"])
def test_pad_gradients(mode, kw):
    """Each padded value's gradient flows back to the value it copies."""
    x = np.random.default_rng(7).uniform(-2, 2, (3, 4))
    for w in (1, ((2, 0), (0, 3)), ((7, 5), (9, 2)), 0):
        fd_check(lambda x: np.pad(x ** 2, w, mode, **kw) * np.pad(x, w, mode, **kw), x)
    fd_check(lambda x: np.pad(x[:1], ((3, 2), (1, 1)), mode, **kw), x)          # a size-1 axis


def test_pad_gradient_of_traced_constant():
    x = np.random.default_rng(8).uniform(-2, 2, (2, 3))
    gx, gc = tj.grad(lambda x, c: np.sum(np.pad(x, ((1, 0), (2, 1)), constant_values=c) ** 2),
                     argnums=(0, 1))(x, 1.5)
    np.testing.assert_allclose(gx, 2 * x)
    n_pad = 3 * 6 - x.size
    np.testing.assert_allclose(gc, 2 * 1.5 * n_pad)


@pytest.mark.parametrize("mode", ["linear_ramp", "maximum", "mean", "median", "minimum"])
def test_pad_unsupported_modes(mode):
    with pytest.raises(tj.UnsupportedError, match=f"mode='{mode}' is not implemented") as info:
        tj.jit(lambda x: np.pad(x, 1, mode=mode))(np.ones(3))
    assert "test_pad_and_where.py" in str(info.value)


def test_pad_errors():
    x = np.ones((2, 3))
    with pytest.raises(tj.UnsupportedError, match="padding function"):
        tj.jit(lambda x: np.pad(x, 1, mode=lambda vector, width, axis, kw: None))(x)
    with pytest.raises(ValueError, match="mode 'ramp' is not supported"):
        tj.jit(lambda x: np.pad(x, 1, mode="ramp"))(x)
    with pytest.raises(ValueError, match="unsupported keyword arguments for mode 'edge'"):
        tj.jit(lambda x: np.pad(x, 1, mode="edge", constant_values=1))(x)
    with pytest.raises(ValueError, match="unsupported keyword arguments for mode 'linear_r"):
        tj.jit(lambda x: np.pad(x, 1, mode="linear_ramp", stat_length=1))(x)
    with pytest.raises(ValueError, match="negative"):
        tj.jit(lambda x: np.pad(x, ((1, -1), (0, 0))))(x)
    with pytest.raises(TypeError, match="integral type"):
        tj.jit(lambda x: np.pad(x, 1.5))(x)
    with pytest.raises(ValueError, match="broadcast"):
        tj.jit(lambda x: np.pad(x, ((1, 2), (3, 4), (5, 6))))(x)
    with pytest.raises(ValueError, match="NaN"):
        tj.jit(lambda x: np.pad(x.astype(np.int64), 1, constant_values=np.nan))(x)
    with pytest.raises(TypeError, match="integral type"):
        tj.jit(lambda x: np.pad(x, {1: 1.5}))(x)
    with pytest.raises(ValueError, match="pair"):
        tj.jit(lambda x: np.pad(x, {0: (1, 2, 3)}))(x)
    for w in (lambda x: x.shape[0] + np.sum(x).astype(np.int64),
              lambda x: (1, x[0, 0].astype(np.int64)),
              lambda x: ((1, 1), (x[0, 0].astype(np.int64), 2)),
              lambda x: {1: (x[0, 0].astype(np.int64), 0)}):
        with pytest.raises(tj.ConcretizationError, match="pad_width must be static") as info:
            tj.jit(lambda x: np.pad(x, w(x)))(x)
        assert "test_pad_and_where.py" in str(info.value)
    # NumPy refuses the same calls.
    for f in (lambda x: np.pad(x, 1, mode="ramp"), lambda x: np.pad(x, -1),
              lambda x: np.pad(x, 1.5)):
        with pytest.raises((TypeError, ValueError)):
            f(x)


# ---------------------------------------------------------------------------------------------
# where= of the reductions


def masks(shape, seed=0):
    """Masks for an operand of `shape`: full, broadcast along each axis, scalar, all False."""
    rng = np.random.default_rng(seed)
    out = [rng.random(shape) < 0.6, rng.random(shape[-1:]) < 0.5, np.zeros(shape, bool),
           np.array(True), np.ones(shape[-1:], bool)]
    if len(shape) > 1:
        out.append(rng.random(shape[:-1] + (1,)) < 0.5)
    return out


AXES = [(None, False), (0, False), (-1, True), ((0, 2), False), ((0, 1, 2), True), ((), False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis, keepdims", AXES)
def test_where_sum_prod_all_any(dtype, axis, keepdims):
    x = rand((3, 4, 5), dtype)
    for m in masks(x.shape):
        kw = dict(axis=axis, keepdims=keepdims, where=m)
        check(lambda x: (np.sum(x, **kw), np.prod(x, **kw), np.all(x, **kw), np.any(x, **kw),
                         np.sum(x, dtype=np.float64, **kw), np.prod(x, dtype=np.int64, **kw),
                         np.sum(x, initial=2, **kw), np.sum(x, dtype=bool, **kw)), x,
              **F32_SUMS.get(dtype, {}))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis, keepdims", AXES)
def test_where_max_min(dtype, axis, keepdims):
    """max and min take where= with initial=, which the masked-out elements count as."""
    x = rand((3, 4, 5), dtype)
    initial = {"bool": False, "int64": -2}.get(dtype, 0.5)
    for m in masks(x.shape):
        kw = dict(axis=axis, keepdims=keepdims, where=m, initial=initial)
        check(lambda x: (np.max(x, **kw), np.min(x, **kw), np.amax(x, **kw),
                         np.amin(x, **kw)), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis, keepdims", AXES)
def test_where_mean_var_std(dtype, axis, keepdims):
    """mean, var and std over the selected elements: divided by their number (NaN where there
    are none, as NumPy's)."""
    x = rand((3, 4, 5), dtype)
    for m in masks(x.shape):
        kw = dict(axis=axis, keepdims=keepdims, where=m)
        check(lambda x: (np.mean(x, **kw), np.var(x, **kw), np.std(x, **kw),
                         np.var(x, ddof=1, **kw), np.std(x, ddof=2, **kw),
                         np.mean(x, dtype=np.float32, **kw), np.var(x, dtype=np.float64, **kw),
                         np.var(x, correction=1, **kw)), x, **F32_SUMS.get(dtype, {}))


def test_where_traced_and_other_masks():
    """A traced mask, a list, Python bools, and the method and ufunc reduce forms."""
    x = rand((4, 5), seed=3)
    check(lambda x: (np.sum(x, where=x > 0), np.mean(x, axis=0, where=x > -1),
                     np.max(x, axis=1, where=x[:, :1] < 0, initial=-9.0),
                     np.std(x, axis=1, where=x[0] > 0, keepdims=True),
                     np.any(x > 2, axis=0, where=x < 2.5), np.all(x, where=[x[0, 0] > 0] * 5),
                     np.prod(x, where=[True, False, True, True, False], axis=1),
                     np.sum(x, where=False), np.sum(x, where=True, axis=0),
                     np.max(x, where=True), np.mean(x, where=np.True_)), x)
    check(lambda x: (x.sum(axis=1, where=x < 1), x.prod(where=x > 0), x.mean(0, where=x > 0),
                     x.var(where=x > 0), x.std(1, where=x > 0, ddof=1),
                     x.max(where=x < 0, initial=-5.0), x.min(0, where=x > 0, initial=5.0),
                     x.all(where=x > 0), x.any(1, where=x > 2)), x)
    m = np.random.default_rng(4).random((4, 5)) < 0.5
    check(lambda x: (np.add.reduce(x, where=m), np.multiply.reduce(x, axis=1, where=m),
                     np.maximum.reduce(x, axis=None, where=m, initial=0.0),
                     np.minimum.reduce(x, where=m[0], initial=1.0, keepdims=True),
                     np.logical_or.reduce(x > 0, axis=1, where=m),
                     np.logical_and.reduce(x > 0, where=x < 2)), x)


def test_where_empty_axis():
    x = np.zeros((0, 3))
    check(lambda x: (np.sum(x, axis=0, where=x > 0), np.max(x, axis=0, where=x > 0, initial=1.0),
                     np.all(x, axis=0, where=np.ones(3, bool))), x)


@pytest.mark.parametrize("name, f", [
    ("sum", lambda x, m: np.sum(x ** 2, axis=1, where=m)),
    ("prod", lambda x, m: np.prod(x, axis=0, where=m)),
    ("mean", lambda x, m: np.mean(np.sin(x), axis=1, where=m, keepdims=True)),
    ("var", lambda x, m: np.var(x, axis=0, where=m)),
    ("var_ddof", lambda x, m: np.var(x, where=m, ddof=1)),
    ("std", lambda x, m: np.std(x, axis=1, where=m)),
    ("max", lambda x, m: np.max(x, axis=1, where=m, initial=-10.0)),
    ("min", lambda x, m: np.min(x, axis=0, where=m, initial=10.0)),
    ("add_reduce", lambda x, m: np.add.reduce(x * x, where=m)),
    ("traced_mask", lambda x, m: np.mean(x, axis=0, where=x > 0) * np.sum(x, where=x < 1)),
])
def test_where_gradients(name, f):
    """Gradients with where=: those of the selected elements, exactly 0 elsewhere (also where
    the masked-out elements are infinite or NaN, which do not reach the result)."""
    x = np.random.default_rng(11).uniform(-2, 2, (4, 5))
    m = np.random.default_rng(12).random((4, 5)) < 0.6
    m[:, 0] = True      # every slice of the statistics has an element; one row has two
    m[0, 1:] = [True, False, False, False]
    g = fd_check(lambda x: f(x, m), x)
    if name != "traced_mask":
        assert np.all(g[~m] == 0)
        bad = x.copy()
        bad[~m] = np.where(np.arange((~m).sum()) % 2, np.inf, np.nan)
        want = numpy_result(f, bad, m)
        got = tj.jit(f)(bad, m)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        gb = tj.grad(lambda x: np.sum(f(x, m)))(bad)
        assert np.all(gb[~m] == 0) and np.all(np.isfinite(gb))


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_where_errors():
    x = rand((3, 4))
    for f in (lambda x: np.max(x, where=x > 0), lambda x: np.min(x, axis=0, where=[True] * 4),
              lambda x: np.max(x, where=np.True_), lambda x: np.maximum.reduce(x, where=x > 0),
              lambda x: np.nanmax(x, where=x > 0)):
        with pytest.raises(ValueError, match="does not have an identity, so to use a where "
                           "mask one has to specify 'initial'") as info:
            tj.jit(f)(x)
        assert "test_pad_and_where.py" in str(info.value)
        with pytest.raises(ValueError, match="does not have an identity"):
            f(x)
    for f in (lambda x: np.sum(x, where=np.array([1, 0, 1, 1])),
              lambda x: np.mean(x, where=x), lambda x: np.sum(x, where=np.array(1.0))):
        with pytest.raises(TypeError, match="Cannot cast"):
            f(x)
        with pytest.raises(TypeError, match="Cannot cast"):
            tj.jit(f)(x)
    for f in (lambda x: np.sum(x, where=np.ones((2, 3, 4), bool)),
              lambda x: np.sum(x, where=np.ones(3, bool))):
        with pytest.raises(ValueError):
            f(x)
        with pytest.raises(ValueError, match="does not broadcast"):
            tj.jit(f)(x)


# ---------------------------------------------------------------------------------------------
# the nan* reductions


NAN_AXES = [(None, False), (0, False), (1, True), (-1, False), ((0, 2), True)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis, keepdims", NAN_AXES)
def test_nan_reductions(dtype, axis, keepdims):
    """Including slices of NaN only: nansum 0, nanprod 1, nanmean, nanvar, nanstd, nanmax and
    nanmin NaN (NumPy warns), nanmax with initial= gives initial."""
    x = with_nans((3, 4, 5), dtype)
    kw = dict(axis=axis, keepdims=keepdims)
    check(lambda x: (np.nansum(x, **kw), np.nanprod(x, **kw), np.nanmean(x, **kw),
                     np.nanvar(x, **kw), np.nanstd(x, **kw), np.nanmax(x, **kw),
                     np.nanmin(x, **kw), np.nanvar(x, ddof=1, **kw), np.nanstd(x, ddof=2, **kw),
                     np.nanmax(x, initial=1.0, **kw), np.nanmin(x, initial=-7, **kw),
                     np.nansum(x, dtype=np.float64, **kw), np.nanmean(x, dtype=np.float64, **kw),
                     np.nanvar(x, dtype=np.float64, **kw), np.nanvar(x, correction=1, **kw),
                     np.nansum(x, initial=3.0, **kw)), x, **F32_SUMS.get(dtype, {}))


@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_reductions_with_where(dtype):
    x = with_nans((3, 4, 5), dtype, seed=2)
    for m in masks(x.shape, seed=3):
        for axis in (None, 1, (0, 2)):
            kw = dict(axis=axis, where=m)
            check(lambda x: (np.nansum(x, **kw), np.nanprod(x, **kw), np.nanmean(x, **kw),
                             np.nanvar(x, **kw), np.nanstd(x, ddof=1, **kw),
                             np.nanmax(x, initial=-1.0, **kw), np.nanmin(x, initial=2.0, **kw)),
                  x, **F32_SUMS.get(dtype, {}))


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_nan_reductions_without_nan(dtype):
    """Integers and booleans hold no NaN: the reductions without nan, in their dtypes."""
    x = rand((3, 4), dtype)
    for axis in (None, 0, 1):
        kw = dict(axis=axis)
        check(lambda x: (np.nansum(x, **kw), np.nanprod(x, **kw), np.nanmean(x, **kw),
                         np.nanvar(x, **kw), np.nanstd(x, **kw), np.nanmax(x, **kw),
                         np.nanmin(x, **kw), np.nanargmax(x, **kw), np.nanargmin(x, **kw),
                         np.nanmean(x, dtype=np.int64, **kw)), x)


@pytest.mark.parametrize("dtype", FLOATS)
def test_nanargmax_nanargmin(dtype):
    x = rand((4, 5), dtype)
    x[0, [0, 2]] = x[1, 0] = x[2, 3] = np.nan
    x[1, 1], x[2, 2] = -np.inf, np.inf
    x[3, :] = [np.nan, -np.inf, np.nan, -np.inf, np.nan]    # NaN first: NumPy's argmax is 0
    for axis, keepdims in [(0, False), (1, True), (-1, False)]:
        check(lambda x: (np.nanargmax(x, axis, keepdims=keepdims),
                         np.nanargmin(x, axis=axis, keepdims=keepdims)), x)
    check(lambda x: (np.nanargmax(x), np.nanargmin(x), np.nanargmax(x, keepdims=True)), x)
    x[3, 0] = np.nan
    x[2, :] = np.nan
    # A slice of NaN only: NumPy raises, and so does the compiled program when it runs (on
    # every backend, fused or not), naming the user's line.
    for f in (lambda x: np.nanargmax(x, axis=0), lambda x: np.nanargmin(x, axis=1)):
        with pytest.raises(ValueError, match="All-NaN slice"):
            f(x)
        for backend, fuse in [("cpu", True), ("cpu", False)] + (
                [(cuda_backend(), True)] if cuda_backend() else []):
            with pytest.raises(ValueError, match=r"test_pad_and_where.py:\d+.*All-NaN slice"):
                tj.jit(f, backend=backend, fuse=fuse)(x)


def test_nan_errors():
    x = with_nans((3, 4))
    for f, error, match in [
            (lambda x: np.nanmean(x, dtype=np.int64), TypeError, "dtype must be inexact"),
            (lambda x: np.nanvar(x, dtype=np.int32), TypeError, "dtype must be inexact"),
            (lambda x: np.nanmax(x[:0], axis=0), ValueError, "zero-size array"),
            (lambda x: np.nanmin(x, where=x > 0), ValueError, "specify 'initial'"),
            (lambda x: np.nanstd(x, ddof=1, correction=1), ValueError, "simultaneously"),
            (lambda x: np.nanargmax(x[:, :0], axis=1), ValueError, "empty sequence")]:
        with pytest.raises(error):
            f(x)
        with pytest.raises(error, match=match):
            tj.jit(f)(x)
    with pytest.raises(tj.UnsupportedError, match="out="):
        tj.jit(lambda x: np.nanmean(x, out=np.zeros(())))(x)
    with pytest.raises(tj.UnsupportedError, match="mean="):
        tj.jit(lambda x: np.nanvar(x, mean=np.nanmean(x)))(x)


@pytest.mark.parametrize("name, f", [
    ("nansum", lambda x: np.nansum(x ** 2, axis=1)),
    ("nanprod", lambda x: np.nanprod(x, axis=0)),
    ("nanmean", lambda x: np.nanmean(np.sin(x), axis=1, keepdims=True)),
    ("nanvar", lambda x: np.nanvar(x, axis=0)),
    ("nanvar_ddof", lambda x: np.nanvar(x, ddof=1)),
    ("nanstd", lambda x: np.nanstd(x, axis=1)),
    ("nanmax", lambda x: np.nanmax(x, axis=1)),
    ("nanmin", lambda x: np.nanmin(x, axis=0, initial=0.5)),
    ("nanmean_where", lambda x: np.nanmean(x, axis=0, where=x < 1.5)),
])
def test_nan_gradients(name, f):
    """Gradients of the non-NaN elements; exactly 0 at the NaN."""
    x = np.random.default_rng(13).uniform(-2, 2, (4, 5))
    nan = np.random.default_rng(14).random(x.shape) < 0.3
    nan[:, 0] = False
    nan[0] = [False, False, True, True, True]
    nan[:, 4] = True                        # a column of NaN only: NaN results, no gradient
    x[nan] = np.nan
    g = fd_check(f, x)
    assert np.all(g[nan] == 0)
