"""The CUDA code generator: the shape of its kernels and launches (structural), and their
numbers on the paths the small NumPy tests do not reach (split reductions, vector loads,
tiles with edges, TF32, atomics), run by the emulator (or the GPU where one is usable) and
checked against NumPy and the interpreter."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.cuda import SPLIT_MIN, CudaLowering, ReductionShape, literal

from support import cuda_backend

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="no host C++ compiler")

rng = np.random.default_rng(7)


def run(f, *args, fuse=True, allow_tf32=False):
    out = tj.jit(f, backend=cuda_backend(), fuse=fuse, allow_tf32=allow_tf32)(*args)
    leaves = out if isinstance(out, tuple) else (out,)
    return [np.asarray(x.get() if hasattr(x, "gpudata") else x) for x in leaves]


def lowering(f, *args, fuse=True, allow_tf32=False) -> CudaLowering:
    return CudaLowering(tj.jit(f, backend="interpret", fuse=fuse).program(*args), allow_tf32)


def kernel_names(lo: CudaLowering) -> list[str]:
    return [launch.kernel for launch in lo.launches]


# -- structure --------------------------------------------------------------------------------


def test_one_kernel_for_a_fused_chain_with_its_ir_and_user_line_in_a_comment():
    x = rng.standard_normal((64, 100)).astype(np.float32)
    lo = lowering(lambda x, y: np.tanh(x) * y + 1.0, x, x)
    assert kernel_names(lo) == ["k0"]
    assert re.search(r"//   %3 = mul %2, %1\.v1  : f32\[64,100\]  # test_cuda_codegen\.py:\d+",
                     lo.source)                             # the IR, with the user's line
    assert 'extern "C" __global__ void __launch_bounds__(256) k0(' in lo.source
    assert "const float v2 = tanhf(v0_0);" in lo.source       # values named after IR values
    unfused = lowering(lambda x, y: np.tanh(x) * y + 1.0, x, x, fuse=False)
    assert len(unfused.launches) == 3


def test_vector_loads_when_contiguous_and_not_when_strided():
    x = rng.standard_normal((64, 100)).astype(np.float32)
    lo = lowering(lambda x: x * 2.0, x)
    assert "float4" in lo.source and lo.launches[0].align == 16
    lo = lowering(lambda x: x.T * 2.0, x)
    assert "float4" not in lo.source and lo.launches[0].align == 1
    lo = lowering(lambda x: x * 2.0, x.astype(np.float64))
    assert "double2" in lo.source


def test_long_reductions_split_into_partial_and_final_kernels():
    x = rng.standard_normal(1 << 16).astype(np.float32)
    lo = lowering(lambda x: np.sum(x * x), x)
    assert kernel_names(lo) == ["k0_partial", "k0_final"]
    shape = ReductionShape(tj.jit(lambda x: np.sum(x * x), backend="interpret")
                           .program(x).kernels[0])
    assert shape.split == (1 << 16) // SPLIT_MIN and not shape.serial
    assert "tj_block_reduce" in lo.source


def test_column_reductions_are_serial_and_rows_use_blocks():
    x = rng.standard_normal((2000, 64)).astype(np.float32)
    cols = lowering(lambda x: x.sum(axis=0), x)
    assert "a thread an output" in cols.source
    rows = lowering(lambda x: x.sum(axis=1), x.T.copy())
    assert "a block of" in rows.source and "tj_block_reduce" in rows.source


def test_dot_epilogue_runs_in_the_store_and_tf32_uses_wmma():
    x = rng.standard_normal((64, 100)).astype(np.float32)
    w = rng.standard_normal((100, 10)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    f = lambda x, w, b: np.maximum(x @ w + b, 0.0)   # noqa: E731
    lo = lowering(f, x, w, b)
    assert kernel_names(lo) == ["k0_gemm"] and "fmaf(" in lo.source
    assert "tj_max(" in lo.source                            # ReLU in the store
    tf32 = lowering(f, x, w, b, allow_tf32=True)
    assert kernel_names(tf32) == ["k0_wmma"]
    assert "#include <mma.h>" in tf32.source and "__float_to_tf32" in tf32.source
    f64 = lowering(f, x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                   allow_tf32=True)
    assert kernel_names(f64) == ["k0_gemm"]                  # TF32 is for float32 only


def test_literals_are_exact():
    assert literal("f32", 0.1) == "0.10000000149011612f"
    assert float(literal("f64", 0.1)) == 0.1
    assert literal("f64", -0.0) == "-0.0"
    assert "0x7f800000" in literal("f32", np.inf) and literal("f32", -np.inf).startswith("(-")
    assert literal("i64", -(1 << 63)) == "(-9223372036854775807LL - 1)"
    assert literal("i32", -(1 << 31)) == "(-2147483647 - 1)"
    assert literal("bool", True) == "true"


def test_64_bit_indexing_only_where_sizes_need_it():
    small = lowering(lambda x: x * 2.0, np.zeros(1000, np.float32))
    assert re.search(r"for \(int [iq] =", small.source)
    big = CudaLowering(tj.jit(lambda x: x[::2] * 2.0, backend="interpret").program(
        tj.Spec((1 << 31,), "f32")))
    assert re.search(r"for \(long long [iq] =", big.source)


# -- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1 << 14, (1 << 16) + 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_full_reduction_matches_numpy_and_repeats_bitwise(n, dtype):
    x = rng.standard_normal(n).astype(dtype)
    f = lambda x: (np.sum(x * x), np.max(x), np.min(np.abs(x) + 1.0))   # noqa: E731
    got = run(f, x)
    for g, w in zip(got, f(x.astype(np.float64))):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    again = run(f, x)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, again))


@pytest.mark.parametrize("shape,axis", [((3, 20000), 1), ((20000, 3), 0), ((40, 50, 30), (0, 2)),
                                        ((300, 200), 0), ((7, 9), 1)])
def test_partial_reductions_with_epilogues(shape, axis):
    x = rng.standard_normal(shape).astype(np.float32)

    def f(x):
        m = np.max(x, axis=axis, keepdims=True)
        e = np.exp(x - m)
        return e / np.sum(e, axis=axis, keepdims=True), np.mean(x, axis=axis)

    for fuse in (True, False):
        got = run(f, x, fuse=fuse)
        for g, w in zip(got, f(x)):
            np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-7)


def test_integer_and_bool_reductions_exact():
    x = rng.integers(-1000, 1000, size=(50, 300)).astype(np.int64)
    f = lambda x: (x.sum(axis=1), x.max(axis=0), (x > 0).any(axis=1), (x > -999).all(),  # noqa
                   (x % 7).prod(axis=0))
    for g, w in zip(run(f, x), f(x)):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (65, 17, 130), (128, 64, 64), (3, 200, 5)])
def test_gemm_tiles_with_edges(m, k, n):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = rng.standard_normal(n).astype(np.float32)
    f = lambda a, b, c: (np.tanh(a @ b + c), a.T.T @ b)    # noqa: E731
    for g, w in zip(run(f, a, b, c), f(a.astype(np.float64), b.astype(np.float64), c)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_batched_and_transposed_dots():
    a = rng.standard_normal((4, 30, 20)).astype(np.float64)
    b = rng.standard_normal((4, 30, 10)).astype(np.float64)
    f = lambda a, b: np.einsum("bki,bkj->bij", a, b)       # noqa: E731
    np.testing.assert_allclose(run(f, a, b)[0], f(a, b), rtol=1e-12)


def test_integer_dot_exact():
    a = rng.integers(-50, 50, size=(20, 30)).astype(np.int32)
    b = rng.integers(-50, 50, size=(30, 40)).astype(np.int32)
    np.testing.assert_array_equal(run(lambda a, b: a @ b, a, b)[0], a @ b)


def test_tf32_dot_is_close_to_float32_and_to_tf32_rounded_inputs():
    a = rng.standard_normal((70, 45)).astype(np.float32)
    b = rng.standard_normal((45, 33)).astype(np.float32)
    got = run(lambda a, b: a @ b, a, b, allow_tf32=True)[0]
    exact = a.astype(np.float64) @ b.astype(np.float64)
    err = np.max(np.abs(got - exact)) / np.max(np.abs(exact))
    assert 1e-6 < err < 5e-3           # TF32's 10-bit mantissas: visibly not float32, close

    def tf32(x):                        # round to nearest, ties away, 10 mantissa bits
        bits = x.view(np.uint32).astype(np.uint64)
        return ((bits + 0x1000) & 0xFFFFE000).astype(np.uint32).view(np.float32)

    want = tf32(a).astype(np.float64) @ tf32(b).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_scatter_add_with_repeated_indices_and_gather_bounds():
    x = np.zeros((10, 3), np.float64)
    idx = np.array([1, 1, 9, -1, 0, 1])
    u = rng.standard_normal((6, 3))

    want = x.copy()
    np.add.at(want, idx, u)
    got = run(lambda x, u: tj.ops.scatter_add(x, (idx,), u), x, u)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    y = rng.standard_normal((5, 4)).astype(np.float32)
    with pytest.raises(IndexError, match="index 7 is out of bounds for axis 0 with size 5"):
        run(lambda y, i: y[i], y, np.array([0, 7, 2]))
    np.testing.assert_array_equal(run(lambda y, i: y[i], y, np.array([0, -5, 4]))[0],
                                  y[[0, -5, 4]])


def test_unaligned_argument_is_copied_for_vector_loads():
    base = rng.standard_normal(1025).astype(np.float32)
    x = base[1:]                        # contiguous, 4 bytes past an aligned address
    np.testing.assert_array_equal(run(lambda x: x * 3.0, x)[0], x * np.float32(3.0))


def test_numpy_semantics_of_integer_division_casts_and_nan():
    i = np.array([7, -7, 0, np.iinfo(np.int32).min, 5], np.int32)
    j = np.array([2, 2, 0, -1, -3], np.int32)
    f = lambda i, j: (i // j, i % j, np.abs(i), -i)       # noqa: E731
    with np.errstate(all="ignore"):
        for g, w in zip(run(f, i, j), f(i, j)):
            np.testing.assert_array_equal(g, w)
    x = np.array([np.nan, np.inf, -np.inf, 3.7, -3.7, 1e20, -0.0], np.float32)
    g = lambda x: (x.astype(np.int32), x.astype(np.int64), np.sign(x), np.maximum(x, 0.0),  # noqa
                   np.floor_divide(x, np.float32(-2.0)), np.mod(x, np.float32(1.5)))
    with np.errstate(all="ignore"):
        for got, want in zip(run(g, x), g(x)):
            np.testing.assert_array_equal(got, want)
