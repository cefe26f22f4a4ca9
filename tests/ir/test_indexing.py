"""Indexing against NumPy: x[...] on traced arrays, np.take, np.take_along_axis, iteration.

Basic indexing (integers incl. negative, slices with every step incl. negative and empty
results, None, Ellipsis), advanced indexing with NumPy arrays, lists and traced integer arrays
(passed as arguments of the jitted function), several index arrays broadcast together, advanced
indices adjacent vs separated (NumPy moves the result axes first when separated), mixed with
None, concrete boolean masks; the errors NumPy raises (IndexError) are raised too.
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from npcheck import assert_same, check


def data(shape=(4, 5, 6), dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "b":
        return rng.random(shape) < 0.5
    return (rng.standard_normal(shape) * 10).astype(dtype)


# ---------------------------------------------------------------------------------------------
# basic indexing: static keys

BASIC = {
    "int": lambda x: x[0],
    "neg_int": lambda x: x[-1],
    "two_ints": lambda x: x[1, -2],
    "all_ints": lambda x: x[-1, 0, -6],                     # 0-d: a NumPy scalar
    "chained": lambda x: x[2][3][-1],
    "np_integer": lambda x: x[np.int32(2), np.int64(-1)],
    "slice": lambda x: x[1:3],
    "slice_open": lambda x: x[2:],
    "slice_neg_bounds": lambda x: x[-3:-1],
    "step": lambda x: x[::2],
    "step_3": lambda x: x[:, 1::3],
    "reverse": lambda x: x[::-1],
    "reverse_step": lambda x: x[-1:0:-2],
    "reverse_bounds": lambda x: x[:, 4:1:-1],
    "reverse_all": lambda x: x[::-1, ::-1, ::-1],
    "mixed_steps": lambda x: x[:, ::-3, 1::2],
    "neg_step_to_start": lambda x: x[:, :, 3::-2],
    "empty_forward": lambda x: x[3:1],
    "empty_backward": lambda x: x[1:3:-1],
    "empty_past_end": lambda x: x[10:],
    "empty_before_start": lambda x: x[:, :-10],
    "clamped": lambda x: x[1:100:3, -100:2],
    "int_and_slices": lambda x: x[1, ::-1, 2:4],
    "slice_then_int": lambda x: x[:, 3],
    "newaxis": lambda x: x[None],
    "newaxis_middle": lambda x: x[:, None],
    "newaxis_end": lambda x: x[..., None],
    "newaxis_many": lambda x: x[None, 1, None, :, None],
    "newaxis_with_slices": lambda x: x[None, ::-2, None, 3],
    "ellipsis": lambda x: x[...],
    "ellipsis_int": lambda x: x[..., 0],
    "int_ellipsis": lambda x: x[0, ...],
    "ellipsis_slice": lambda x: x[..., 1:3],
    "int_ellipsis_int": lambda x: x[1, ..., 2],
    "ellipsis_newaxis_int": lambda x: x[..., None, 2],
    "ellipsis_full": lambda x: x[1, 2, 3, ...],
    "empty_tuple": lambda x: x[()],
}


@pytest.mark.parametrize("case", BASIC, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_basic_indexing(case, dtype):
    check(BASIC[case], data(dtype=dtype))


def test_basic_indexing_0d_and_empty():
    x0 = np.array(2.5, np.float32)
    check(lambda x: (x[()], x[...], x[None], x[None, ..., None]), x0)
    e = np.zeros((0, 3))
    check(lambda x: (x[:, 1], x[::-1], x[..., ::2], x[None, :, -1], x[:0, 1:]), e)


# ---------------------------------------------------------------------------------------------
# advanced indexing: concrete index arrays and lists

I = np.array([0, 2, -1, 2])
J = np.array([1, -5, 4, 0])
ADVANCED = {
    "array": lambda x: x[I],
    "list": lambda x: x[[0, 2, -1]],
    "list_repeats": lambda x: x[:, [1, 1, 3, 1]],
    "2d_array": lambda x: x[np.array([[0, 1], [3, -2]])],
    "two_arrays": lambda x: x[I, J],
    "two_lists": lambda x: x[[0, 1], [2, 3]],
    "three_arrays": lambda x: x[I, J, J],
    "broadcast_arrays": lambda x: x[np.array([[0], [1], [3]]), np.array([1, 2, -1, 0])],
    "broadcast_to_3d": lambda x: x[np.arange(4)[:, None, None], np.arange(5)[None, :, None],
                                   np.array([[[5, 0]]])],
    "int_broadcasts": lambda x: x[I, 2],
    "adjacent_last": lambda x: x[:, I, J],
    "adjacent_middle": lambda x: x[:, [0, 4]],
    "adjacent_with_int": lambda x: x[:, 1, [0, 2]],
    "separated": lambda x: x[[0, 1], :, [2, 3]],
    "separated_by_int_first": lambda x: x[1, :, [0, 2, 5]],
    "separated_2d": lambda x: x[np.array([[0], [1]]), :, np.array([2, 3, 4])],
    "separated_reverse_slice": lambda x: x[I, ::-2, J],
    "advanced_then_slice": lambda x: x[I, 1:4],
    "advanced_then_ellipsis": lambda x: x[I, ...],
    "ellipsis_then_advanced": lambda x: x[..., I],
    "newaxis_before": lambda x: x[None, I],
    "newaxis_adjacent_pair": lambda x: x[None, :, I, J],
    "newaxis_between": lambda x: x[I, None, J],
    "newaxis_and_separated": lambda x: x[None, [0, 1], :, [2, 3]],
    "slice_newaxis_advanced": lambda x: x[::-1, None, [1, 2]],
    "empty_array": lambda x: x[np.array([], dtype=np.int64)],
    "empty_2d": lambda x: x[:, np.zeros((0, 2), np.int32)],
    "0d_array": lambda x: x[np.array(2)],
    "0d_array_and_slice": lambda x: x[:, np.array(-1), 1:3],
    "int32_array": lambda x: x[np.array([3, 0], np.int32)],
    "uint_array": lambda x: x[np.array([3, 0], np.uint8)],
}


@pytest.mark.parametrize("case", ADVANCED, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_advanced_indexing(case, dtype):
    check(ADVANCED[case], data(dtype=dtype, seed=1))


def test_empty_list_index():
    """x[[]] is an empty integer index in NumPy (not a float array)."""
    check(lambda x: (x[[]], x[:, []]), data(seed=2))


# ---------------------------------------------------------------------------------------------
# advanced indexing: traced index arrays (arguments of the jitted function)

TRACED = {
    "one": (lambda x, i: x[i], [(4,)]),
    "one_2d": (lambda x, i: x[i], [(2, 3)]),
    "one_0d": (lambda x, i: x[i], [()]),
    "axis1": (lambda x, i: x[:, i], [(3,)]),
    "last_axis": (lambda x, i: x[..., i], [(2, 2)]),
    "two": (lambda x, i, j: x[i, j], [(4,), (4,)]),
    "two_broadcast": (lambda x, i, j: x[i, j], [(3, 1), (5,)]),
    "three": (lambda x, i, j, k: x[i, j, k], [(2, 1, 1), (3, 1), (4,)]),
    "adjacent": (lambda x, i, j: x[:, i, j], [(2, 3), (3,)]),
    "separated": (lambda x, i, j: x[i, :, j], [(4,), (4,)]),
    "separated_by_reverse": (lambda x, i, j: x[i, ::-1, j], [(2, 1), (3,)]),
    "with_int": (lambda x, i: x[1, :, i], [(3,)]),
    "with_newaxis": (lambda x, i: x[None, i, None], [(2,)]),
    "with_concrete": (lambda x, i: x[i, np.array([0, 1, 2])], [(3,)]),
    "with_list": (lambda x, i: x[[3, 0], i], [(2,)]),
    "with_mask": (lambda x, i: x[np.array([True, False, True, True]), 1, i], [(3,)]),
    "computed": (lambda x, i: x[(i + 1) % 4], [(5,)]),
}


@pytest.mark.parametrize("case", TRACED, ids=str)
@pytest.mark.parametrize("idx_dtype", ["int32", "int64"])
def test_traced_index_arrays(case, idx_dtype):
    f, shapes = TRACED[case]
    x = data(seed=3)
    rng = np.random.default_rng(4)
    # Values in [-4, 4) are valid indices for every axis of x (sizes 4, 5, 6).
    idx = [rng.integers(-4, 4, s).astype(idx_dtype) for s in shapes]
    check(f, x, *idx)


def test_list_with_traced_scalars():
    """x[[i, 0]] with a traced i builds a traced index array, as NumPy builds one."""
    x = data(seed=21)
    check(lambda x, i: x[[i, 0]], x, np.int64(2))
    check(lambda x, i: x[[i, -1], [[0], [i]]], x, np.int32(3))
    check(lambda x, i: x[:, [i, i, 1]], x, 4)                 # a Python int argument


def test_traced_index_negative_values_wrap():
    x = data(seed=5)
    check(lambda x, i: x[i], x, np.array([-1, -4, 0, 3]))
    check(lambda x, i, j: x[i, :, j], x, np.array([-4, 3]), np.array([-6, 5]))


def test_traced_index_out_of_bounds_raises():
    x = data(seed=6)
    f = tj.jit(lambda x, i: x[i])
    with pytest.raises(IndexError):
        x[np.array([4])]
    with pytest.raises(IndexError):
        f(x, np.array([4]))
    with pytest.raises(IndexError):
        f(x, np.array([-5]))


def test_traced_float_index_is_rejected():
    with pytest.raises(IndexError):
        tj.jit(lambda x, i: x[i])(data(seed=7), np.array([0.0, 1.0]))


# ---------------------------------------------------------------------------------------------
# boolean masks (concrete)

MASK_X = data(seed=8)
MASKS = {
    "first_axis": lambda x: x[np.array([True, False, True, True])],
    "two_axes": lambda x: x[MASK_X[:, :, 0] > 0],
    "all_axes": lambda x: x[MASK_X > 0],
    "after_slice": lambda x: x[:, np.array([False, True, True, False, True])],
    "after_int": lambda x: x[2, np.array([False, True, True, False, True])],
    "with_ellipsis": lambda x: x[..., MASK_X[0, 0] > 0],
    "all_false": lambda x: x[np.zeros(4, bool)],
    "all_true": lambda x: x[np.ones((4, 5), bool)],
    "list_of_bools": lambda x: x[[True, False, False, True]],
    "with_int_array": lambda x: x[np.array([True, False, True, False]), :, np.array([1, 5])],
    "with_newaxis": lambda x: x[None, np.array([True, False, True, True])],
}


@pytest.mark.parametrize("case", MASKS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_concrete_boolean_mask(case, dtype):
    check(MASKS[case], data(dtype=dtype, seed=9))


def test_traced_boolean_mask_is_rejected():
    with pytest.raises(tj.TracedIndexError, match="np.where"):
        tj.jit(lambda x: x[x > 0])(data(seed=10))


def test_scalar_boolean_index_is_rejected_clearly():
    """Documented as unsupported: the error is tracejit's own IndexError, not a NumPy crash."""
    with pytest.raises(tj.TracedIndexError, match="scalar boolean"):
        tj.jit(lambda x: x[np.array(True)])(data(seed=22))


# ---------------------------------------------------------------------------------------------
# errors NumPy raises too


@pytest.mark.parametrize("key", [(4,), (0, -6), (0, 0, 0, 0), ([0, 4],), (Ellipsis, Ellipsis),
                                 (slice(None), [[0, 1]], [0, 1, 2])], ids=str)
def test_index_errors_match_numpy(key):
    x = data(seed=11)
    with pytest.raises(IndexError):
        x[key]
    with pytest.raises(IndexError):
        tj.jit(lambda x: x[key])(x)


# ---------------------------------------------------------------------------------------------
# np.take, np.take_along_axis


TAKE = {
    "flat": lambda x, i: np.take(x, i),
    "axis0": lambda x, i: np.take(x, i, axis=0),
    "axis1": lambda x, i: np.take(x, i, axis=1),
    "axis_neg": lambda x, i: np.take(x, i, axis=-1),
    "method": lambda x, i: x.take(i, axis=2),
    "method_flat": lambda x, i: x.take(i),
}


@pytest.mark.parametrize("case", TAKE, ids=str)
@pytest.mark.parametrize("index", ["array", "2d", "scalar", "list", "traced"])
def test_take(case, index):
    f = TAKE[case]
    x = data(seed=12)
    if index == "traced":
        check(f, x, np.array([[3, -1], [0, 2]]))
        return
    key = {"array": np.array([3, -1, 0, 0]), "2d": np.array([[1], [2]]), "scalar": -2,
           "list": [0, 1, 3]}[index]
    check(lambda x: f(x, key), x)


TAKE_ALONG = [((3, 4), 0, (2, 4)), ((3, 4), 1, (3, 5)), ((3, 4), -1, (1, 2)),
              ((2, 3, 4), 1, (2, 3, 4)), ((2, 3, 4), 2, (1, 1, 6)), ((2, 3, 4), 0, (5, 3, 1))]


@pytest.mark.parametrize("shape,axis,ishape", TAKE_ALONG, ids=str)
def test_take_along_axis(shape, axis, ishape):
    x = data(shape, seed=13)
    rng = np.random.default_rng(14)
    idx = rng.integers(-shape[axis], shape[axis], ishape)
    check(lambda x, i: np.take_along_axis(x, i, axis), x, idx)       # traced indices
    check(lambda x: np.take_along_axis(x, idx, axis=axis), x)        # concrete indices


def test_numpy_arrays_indexed_by_traced_indices():
    """A NumPy array (a constant of the function) indexed by a traced index array: where NumPy
    dispatches to tracejit (take_along_axis) the array becomes a constant of the program;
    NumPy's own indexing (array[i], np.take) cannot take a traced index, and the error says to
    pass the array as an argument."""
    table = data((5, 3), seed=16)
    idx = np.array([[2], [0], [1], [2], [0]])
    check(lambda i: np.take_along_axis(table, i, axis=1), idx)
    check(lambda i: np.take_along_axis(table[:, 0], i[:, 0], axis=0), idx)
    with pytest.raises(tj.ConcretizationError, match="pass that array to the function as an "
                                                     "argument"):
        tj.jit(lambda i: table[i])(np.array([1, 2]))


def test_take_along_axis_with_argsort():
    """The common pattern: indices from a (concrete) argsort, e.g. sorting by precomputed keys."""
    x = data((4, 6), seed=15)
    order = np.argsort(x, axis=1)
    check(lambda x: np.take_along_axis(x, order, axis=1) * 2, x)


# ---------------------------------------------------------------------------------------------
# iteration


def test_iteration_over_rows():
    def f(x):
        total = np.zeros(x.shape[1:], x.dtype)
        for row in x:
            total = total + row * row
        return total

    check(f, data(seed=16))


def test_iteration_gives_pytrees_and_zips():
    def f(x, y):
        rows = [r * k for k, r in enumerate(x)]
        pairs = tuple(a @ b for a, b in zip(x, y))
        return rows, pairs

    check(f, data((3, 4), seed=17), data((3, 4), "float32", seed=18))


def test_iteration_nested_and_unpacking():
    def f(x):
        a, b = x                      # unpacking a 2-row array
        return [[v + 1 for v in row] for row in a], b.sum()

    check(f, data((2, 3, 2), seed=19))


def test_iteration_over_0d_raises():
    with pytest.raises(TypeError):
        iter(np.array(1.0))
    with pytest.raises(TypeError):
        tj.jit(lambda x: [v for v in x])(np.array(1.0))


def test_getitem_result_is_independent_of_input():
    """Results never alias the arguments (the interpreter copies views)."""
    x = data(seed=20)
    y = tj.jit(lambda x: x[1:3, ::2])(x)
    y[...] = 0
    assert_same(x[1:3, ::2], data(seed=20)[1:3, ::2])
