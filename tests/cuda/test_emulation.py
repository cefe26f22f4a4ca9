"""The CUDA emulation (runtime/cuda_emulation.h, runtime/cuda_emulation/mma.h) and the emulated
device (runtime/cuda_emulator.py), on hand-written CUDA kernels checked against NumPy.

Every kernel source here is real CUDA: each also compiles with `nvcc -cubin -arch=sm_80`
(skipped where nvcc is absent).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tracejit.codegen.cuda import Launch, Param
from tracejit.runtime import cuda_emulator
from tracejit.runtime.cache import DiskCache
from tracejit.runtime.cuda_emulator import EmulatedDevice

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

DEVICE = EmulatedDevice()

# ---------------------------------------------------------------------------------------------
# kernel sources (name -> CUDA C)

N_AXPB = 4099
AXPB4 = f"""
#define N {N_AXPB}LL
// y = 2 x + 1, four floats at a time, striding over the grid; a scalar loop for the tail.
extern "C" __global__ void axpb4(const float* __restrict__ x, float* __restrict__ y) {{
    const long long n4 = N / 4, stride = (long long)gridDim.x * blockDim.x;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (long long i = first; i < n4; i += stride) {{
        float4 v = reinterpret_cast<const float4*>(x)[i];
        reinterpret_cast<float4*>(y)[i] =
            make_float4(2.f * v.x + 1.f, 2.f * v.y + 1.f, 2.f * v.z + 1.f, 2.f * v.w + 1.f);
    }}
    for (long long i = 4 * n4 + first; i < N; i += stride) y[i] = 2.f * x[i] + 1.f;
}}
"""

N_REDUCE, REDUCE_GRID = 20011, 7


def _reduction(suffix: str, t: str) -> str:
    """A deterministic two-pass sum of N_REDUCE values of type `t`: per-block partial sums (warp
    shuffles, then the warp sums through shared memory), then one block sums the partials
    with only its first warp shuffling."""
    return f"""
__device__ __forceinline__ {t} warp_sum_{suffix}({t} v) {{
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}}

extern "C" __global__ void __launch_bounds__(256)
partial_sum_{suffix}(const {t}* __restrict__ x, {t}* __restrict__ partials) {{
    __shared__ {t} warp_sums[32];
    {t} v = 0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < {N_REDUCE};
         i += (long long)gridDim.x * blockDim.x)
        v += x[i];
    v = warp_sum_{suffix}(v);
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    // every warp runs the second stage, so that the shuffles are uniform over the block
    v = lane < (blockDim.x + 31) / 32 ? warp_sums[lane] : ({t})0;
    v = warp_sum_{suffix}(v);
    if (threadIdx.x == 0) partials[blockIdx.x] = v;
}}

extern "C" __global__ void final_sum_{suffix}(const {t}* __restrict__ partials,
                                              {t}* __restrict__ out) {{
    __shared__ {t} warp_sums[32];
    {t} v = 0;
    for (unsigned i = threadIdx.x; i < {REDUCE_GRID}; i += blockDim.x) v += partials[i];
    v = warp_sum_{suffix}(v);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {{    // only the first warp shuffles here
        v = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : ({t})0;
        v = warp_sum_{suffix}(v);
        if (threadIdx.x == 0) out[0] = v;
    }}
}}
"""


REDUCE = "".join(_reduction(s, t) for s, t in
                 (("f32", "float"), ("f64", "double"), ("i64", "long long")))

WARP = """
// Per warp: an all-reduce by butterfly (sum and max), a broadcast, an inclusive scan, a ballot.
extern "C" __global__ void warp_ops(const int* __restrict__ x, const float* __restrict__ y,
                                    int* __restrict__ sums, float* __restrict__ maxes,
                                    int* __restrict__ bcast, int* __restrict__ scan,
                                    unsigned* __restrict__ ballot) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;
    int s = x[i];
    float m = y[i];
    for (int mask = 16; mask > 0; mask >>= 1) {
        s += __shfl_xor_sync(0xffffffffu, s, mask);
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, mask));
    }
    sums[i] = s;
    maxes[i] = m;
    bcast[i] = __shfl_sync(0xffffffffu, x[i], 5);
    int t = x[i];
    for (unsigned d = 1; d < 32; d <<= 1) {
        int u = __shfl_up_sync(0xffffffffu, t, d);
        if (lane >= d) t += u;
    }
    scan[i] = t;
    ballot[i] = __ballot_sync(0xffffffffu, x[i] > 0);
}
"""

N_HIST, BINS = 30000, 13
HISTOGRAM = f"""
extern "C" __global__ void histogram(const int* __restrict__ bins, const float* __restrict__ w,
                                     int* count, float* wsum, unsigned long long* ucount,
                                     double* dsum, long long* isum, int* imax, long long* imin,
                                     unsigned* bits) {{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < {N_HIST};
         i += gridDim.x * blockDim.x) {{
        const int b = bins[i];
        atomicAdd(&count[b], 1);
        atomicAdd(&wsum[b], w[i]);
        atomicAdd(&ucount[b], 1ull);
        atomicAdd(&dsum[b], (double)w[i]);
        atomicAdd((unsigned long long*)&isum[b], (unsigned long long)i);
        atomicMax(&imax[b], i);
        atomicMin(&imin[b], (long long)i);
        atomicOr(&bits[b], 1u << (i % 32));
    }}
}}
"""

N_CHECK = 5000
FIRST_ERROR = f"""
// The status words: the first thread to find an error claims them with a compare-and-swap,
// then fills in the rest; the others leave them alone.
extern "C" __global__ void first_error(const float* __restrict__ x, long long* status) {{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < {N_CHECK};
         i += gridDim.x * blockDim.x) {{
        if (x[i] < 0.f &&
            atomicCAS((unsigned long long*)&status[0], 0ull, 7ull) == 0ull) {{
            status[1] = i;
            status[2] = i % 3;
            status[3] = 1000 + i;
        }}
    }}
}}
"""

TF32 = """
#include <mma.h>
using namespace nvcuda;

// C[16 x 32] = A[16 x 32] B[32 x 32], everything row-major; warp w makes columns 16w..16w+15.
extern "C" __global__ void tf32_gemm(const float* __restrict__ a, const float* __restrict__ b,
                                     float* __restrict__ c) {
    const unsigned warp = threadIdx.x / 32;
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < 32; k += 8) {
        wmma::load_matrix_sync(fa, a + k, 32);
        wmma::load_matrix_sync(fb, b + k * 32 + 16 * warp, 32);
        for (int t = 0; t < fa.num_elements; ++t) fa.x[t] = wmma::__float_to_tf32(fa.x[t]);
        for (int t = 0; t < fb.num_elements; ++t) fb.x[t] = wmma::__float_to_tf32(fb.x[t]);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + 16 * warp, acc, 32, wmma::mem_row_major);
}

// The same product plus C0, everything column-major (A 16 x 32 with ldm 16, B 32 x 32 with
// ldm 32, C0 and C 16 x 32 with ldm 16); the result goes through shared memory first.
extern "C" __global__ void tf32_gemm_cm(const float* __restrict__ a, const float* __restrict__ b,
                                        const float* __restrict__ c0, float* __restrict__ c) {
    __shared__ float tile[2 * 16 * 16];
    const unsigned warp = threadIdx.x / 32;
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::load_matrix_sync(acc, c0 + 16 * 16 * warp, 16, wmma::mem_col_major);
    for (int k = 0; k < 32; k += 8) {
        wmma::load_matrix_sync(fa, a + 16 * k, 16);
        wmma::load_matrix_sync(fb, b + 32 * 16 * warp + k, 32);
        for (int t = 0; t < fa.num_elements; ++t) fa.x[t] = wmma::__float_to_tf32(fa.x[t]);
        for (int t = 0; t < fb.num_elements; ++t) fb.x[t] = wmma::__float_to_tf32(fb.x[t]);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(tile + 16 * 16 * warp, acc, 16, wmma::mem_col_major);
    __syncthreads();
    for (unsigned i = threadIdx.x; i < 2 * 16 * 16; i += blockDim.x) c[i] = tile[i];
}

// One 16 x 16 x 8 product of inputs never rounded to tf32: the emulation truncates them.
extern "C" __global__ void tf32_unrounded(const float* __restrict__ a,
                                          const float* __restrict__ b, float* __restrict__ c) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    wmma::load_matrix_sync(fa, a, 8);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

extern "C" __global__ void to_tf32(const float* __restrict__ x, float* __restrict__ y) {
    y[threadIdx.x] = wmma::__float_to_tf32(x[threadIdx.x]);
}
"""

BIG_BLOCK = """
// 1024 threads a block: a tree reduction in shared memory.
extern "C" __global__ void __launch_bounds__(1024)
big_block(const double* __restrict__ x, double* __restrict__ sums, int* __restrict__ ids) {
    __shared__ double s[1024];
    const unsigned t = threadIdx.x, i = blockIdx.x * 1024 + t;
    s[t] = x[i];
    ids[i] = t + 10000 * blockIdx.x + 100000 * blockDim.x;
    __syncthreads();
    for (unsigned half = 512; half > 0; half >>= 1) {
        if (t < half) s[t] += s[t + half];
        __syncthreads();
    }
    if (t == 0) sums[blockIdx.x] = s[0];
}
"""

N_EXIT = 1000
EARLY_EXIT = f"""
// The threads past the end return before the barrier; the others' barrier goes on.
extern "C" __global__ void early_exit(const float* __restrict__ x, float* __restrict__ y) {{
    __shared__ float tile[256];
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= {N_EXIT}) return;
    tile[threadIdx.x] = x[i];
    __syncthreads();
    y[i] = tile[threadIdx.x] + tile[threadIdx.x ^ 1];
}}

// Thread 0 waits at the block barrier while the others wait at the warp barrier: a deadlock.
extern "C" __global__ void mismatched(int* __restrict__ y) {{
    if (threadIdx.x == 0) __syncthreads();
    else __syncwarp();
    y[threadIdx.x] = 1;
}}
"""

INTRINSICS = """
// The vector types' sizes and alignments, and the math and bit-cast intrinsics.
extern "C" __global__ void intrinsics(const float* __restrict__ x, const double* __restrict__ d,
                                      int* __restrict__ layout, float* __restrict__ f,
                                      long long* __restrict__ bits, double* __restrict__ g) {
    if (threadIdx.x == 0) {
        int k = 0;
#define SIZE_ALIGN(T) layout[k++] = sizeof(T); layout[k++] = alignof(T);
        SIZE_ALIGN(char2) SIZE_ALIGN(char4) SIZE_ALIGN(uchar2) SIZE_ALIGN(uchar4)
        SIZE_ALIGN(short2) SIZE_ALIGN(int2) SIZE_ALIGN(int4) SIZE_ALIGN(uint2) SIZE_ALIGN(uint4)
        SIZE_ALIGN(float2) SIZE_ALIGN(float4) SIZE_ALIGN(longlong2) SIZE_ALIGN(double2)
        SIZE_ALIGN(dim3) SIZE_ALIGN(uint3)
        int4 v = make_int4(1, 2, 3, 4);
        double2 w = make_double2(5.0, 6.0);
        layout[k++] = v.x + 10 * v.y + 100 * v.z + 1000 * v.w + (int)(w.x * w.y);
        layout[k++] = warpSize;
    }
    const unsigned i = threadIdx.x;
    const float a = __ldg(&x[i]);
    f[4 * i + 0] = rsqrtf(a);
    f[4 * i + 1] = __expf(-a) + __logf(a);
    f[4 * i + 2] = __fdividef(1.0f, a) + min(a, 2.0f) + max(a, 2.0f);
    f[4 * i + 3] = __int_as_float(__float_as_int(a) + 1);
    bits[2 * i + 0] = __float_as_int(a);
    bits[2 * i + 1] = __double_as_longlong(d[i]);
    g[2 * i + 0] = __longlong_as_double(__double_as_longlong(d[i]) ^ (1ll << 63));
    g[2 * i + 1] = (double)(min(3, (int)i) + max(5ll, (long long)i) + min(7u, i));
}
"""

SOURCES = {"axpb4": AXPB4, "reduce": REDUCE, "warp": WARP, "histogram": HISTOGRAM,
           "first_error": FIRST_ERROR, "tf32": TF32, "big_block": BIG_BLOCK,
           "early_exit": EARLY_EXIT, "intrinsics": INTRINSICS}


# ---------------------------------------------------------------------------------------------
# helpers


def lowering(source: str, *launches: Launch):
    """A stand-in for CudaLowering: just the source and the launches."""
    return types.SimpleNamespace(source=source, launches=tuple(launches))


def launch(kernel: str, ctypes_: list[str], grid: int, block: int,
           grid_stride: bool = False) -> Launch:
    """A Launch whose i-th parameter is argument slot i."""
    params = tuple(Param(f"p{i}", c, ("arg", i)) for i, c in enumerate(ctypes_))
    return Launch(kernel, params, grid, block, grid_stride)


def run(source: str, launches: list[Launch], inputs: list[np.ndarray],
        outputs: list[tuple[tuple[int, ...], np.dtype]], device: EmulatedDevice = DEVICE,
        fill: int | None = 0) -> list[np.ndarray]:
    """Run the launches on the inputs then the outputs (argument slots in that order), the
    outputs zeroed first (fill=0) or left as allocated (fill=None); the outputs' host copies."""
    module = device.compile(lowering(source, *launches))
    slots = [device.argument(x, x.shape, x.dtype, f"input {i}") for i, x in enumerate(inputs)]
    results = []
    for shape, dtype in outputs:
        ptr, array = device.empty(shape, dtype)
        if fill is not None:
            device.zero(ptr, array.nbytes)
        slots.append((ptr, array))
        results.append((ptr, shape, dtype))
    for one in launches:
        device.launch(module, one, [slots[p.where[1]][0] for p in one.params])
    return [device.to_host(ptr, shape, dtype) for ptr, shape, dtype in results]


def tf32_round(x: np.ndarray) -> np.ndarray:
    """Round float32 values to tf32: nearest, ties away from zero; NaN and inf unchanged."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    finite = (bits & 0x7F800000) != 0x7F800000
    rounded = ((bits.astype(np.uint64) + 0x1000) & 0xFFFFE000).astype(np.uint32)
    return np.where(finite, rounded, bits).view(np.float32)


# ---------------------------------------------------------------------------------------------
# kernels


@pytest.mark.parametrize("grid_stride_blocks, opt_level", [(None, 0), (1, 0), (3, 0), (None, 1)])
def test_grid_stride_float4(grid_stride_blocks, opt_level):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N_AXPB).astype(np.float32)
    device = EmulatedDevice(opt_level=opt_level, grid_stride_blocks=grid_stride_blocks)
    one = launch("axpb4", ["const float* __restrict__", "float* __restrict__"], 5, 128, True)
    (y,) = run(AXPB4, [one], [x], [((N_AXPB,), np.float32)], device, fill=None)
    np.testing.assert_array_equal(y, 2 * x + 1)


@pytest.mark.parametrize("suffix, dtype", [("f32", np.float32), ("f64", np.float64),
                                           ("i64", np.int64)])
def test_two_pass_block_reduction(suffix, dtype):
    rng = np.random.default_rng(1)
    if dtype == np.int64:
        x = rng.integers(-2**40, 2**40, N_REDUCE, dtype=np.int64)
    else:
        x = rng.standard_normal(N_REDUCE).astype(dtype)
    t = {"f32": "float", "f64": "double", "i64": "long long"}[suffix]
    launches = [launch(f"partial_sum_{suffix}", [f"const {t}*", f"{t}*"], REDUCE_GRID, 256),
                launch(f"final_sum_{suffix}", [f"const {t}*", f"{t}*"], 1, 128)]
    # slots: 0 = x, 1 = partials, 2 = out (the second launch reads slot 1, writes slot 2)
    launches[1] = Launch(launches[1].kernel,
                         (Param("p", f"const {t}*", ("arg", 1)), Param("o", f"{t}*", ("arg", 2))),
                         1, 128)
    outputs = [((REDUCE_GRID,), dtype), ((1,), dtype)]
    partials, total = run(REDUCE, launches, [x], outputs)
    again = run(REDUCE, launches, [x], outputs)
    np.testing.assert_array_equal(partials, again[0])     # deterministic, bit for bit
    np.testing.assert_array_equal(total, again[1])
    blocks = np.arange(N_REDUCE) // 256 % REDUCE_GRID      # which block strides over x[i]
    expect = np.array([x[blocks == b].sum(dtype=np.float64 if dtype != np.int64 else np.int64)
                       for b in range(REDUCE_GRID)])
    if dtype == np.int64:
        np.testing.assert_array_equal(partials, expect)
        assert total[0] == x.sum()
    else:
        scale = np.abs(x).astype(np.float64).sum() * np.finfo(dtype).eps * 32
        np.testing.assert_allclose(partials, expect, rtol=0, atol=scale)
        np.testing.assert_allclose(total[0], x.astype(np.float64).sum(), rtol=0, atol=scale)


def test_warp_shuffles_and_ballot():
    rng = np.random.default_rng(2)
    n = 4 * 96                                         # 4 blocks of 3 warps
    x = rng.integers(-50, 50, n, dtype=np.int32)
    y = rng.standard_normal(n).astype(np.float32)
    one = launch("warp_ops", ["const int*", "const float*", "int*", "float*", "int*", "int*",
                              "unsigned*"], 4, 96)
    outputs = [((n,), np.int32), ((n,), np.float32), ((n,), np.int32), ((n,), np.int32),
               ((n,), np.uint32)]
    sums, maxes, bcast, scan, ballot = run(WARP, [one], [x, y], outputs)
    warps_x, warps_y = x.reshape(-1, 32), y.reshape(-1, 32)
    np.testing.assert_array_equal(sums, np.repeat(warps_x.sum(1), 32))
    np.testing.assert_array_equal(maxes, np.repeat(warps_y.max(1), 32))
    np.testing.assert_array_equal(bcast, np.repeat(warps_x[:, 5], 32))
    np.testing.assert_array_equal(scan, np.cumsum(warps_x, axis=1).reshape(-1))
    weights = (1 << np.arange(32, dtype=np.uint64))
    expect_ballot = ((warps_x > 0) * weights).sum(1).astype(np.uint32)
    np.testing.assert_array_equal(ballot, np.repeat(expect_ballot, 32))


def test_atomic_histogram():
    rng = np.random.default_rng(3)
    bins = rng.integers(0, BINS, N_HIST, dtype=np.int32)
    w = (rng.integers(-16, 17, N_HIST) / 4).astype(np.float32)   # sums are exact in any order
    one = launch("histogram", ["const int*", "const float*", "int*", "float*",
                               "unsigned long long*", "double*", "long long*", "int*",
                               "long long*", "unsigned*"], 6, 256, True)
    outputs = [((BINS,), np.int32), ((BINS,), np.float32), ((BINS,), np.uint64),
               ((BINS,), np.float64), ((BINS,), np.int64), ((BINS,), np.int32),
               ((BINS,), np.int64), ((BINS,), np.uint32)]
    module = DEVICE.compile(lowering(HISTOGRAM, one))
    slots = [DEVICE.argument(bins, bins.shape, bins.dtype, "bins"),
             DEVICE.argument(w, w.shape, w.dtype, "w")]
    for shape, dtype in outputs:
        slots.append(DEVICE.empty(shape, dtype))
        DEVICE.zero(slots[-1][0], slots[-1][1].nbytes)
    imin = slots[8][1]
    imin[:] = np.iinfo(np.int64).max                     # the device memory is the array
    DEVICE.launch(module, one, [ptr for ptr, _ in slots])
    count, wsum, ucount, dsum, isum, imax, imin, bits = (
        DEVICE.to_host(ptr, a.shape, a.dtype) for ptr, a in slots[2:])
    index = np.arange(N_HIST)
    np.testing.assert_array_equal(count, np.bincount(bins, minlength=BINS))
    np.testing.assert_array_equal(ucount, np.bincount(bins, minlength=BINS))
    np.testing.assert_array_equal(wsum, np.bincount(bins, w, minlength=BINS))
    np.testing.assert_array_equal(dsum, np.bincount(bins, w, minlength=BINS))
    np.testing.assert_array_equal(isum, [index[bins == b].sum() for b in range(BINS)])
    np.testing.assert_array_equal(imax, [index[bins == b].max() for b in range(BINS)])
    np.testing.assert_array_equal(imin, [index[bins == b].min() for b in range(BINS)])
    expect_bits = [np.bitwise_or.reduce(1 << (index[bins == b] % 32)) for b in range(BINS)]
    np.testing.assert_array_equal(bits, np.array(expect_bits, dtype=np.uint32))


def test_atomic_cas_first_error_wins():
    rng = np.random.default_rng(4)
    x = rng.random(N_CHECK).astype(np.float32)
    one = launch("first_error", ["const float*", "long long*"], 4, 128, True)
    (status,) = run(FIRST_ERROR, [one], [x], [((4,), np.int64)])
    np.testing.assert_array_equal(status, [0, 0, 0, 0])       # no error: untouched
    bad = np.array([17, 1234, 2500, 4999])
    x[bad] = -1.0
    for _ in range(3):
        (status,) = run(FIRST_ERROR, [one], [x], [((4,), np.int64)])
        assert status[0] == 7 and status[1] in bad
        assert status[2] == status[1] % 3 and status[3] == 1000 + status[1]   # one writer


@pytest.mark.parametrize("bits, expect", [
    (0x3F800000, 0x3F800000),      # 1.0 exactly
    (0x3F801000, 0x3F802000),      # 1 + 2^-11: a tie, away from zero (even would go down)
    (0x3F800FFF, 0x3F800000),      # just below the tie: down
    (0x3F803000, 0x3F804000),      # 1 + 3 2^-11: a tie, away from zero (even too)
    (0xBF801000, 0xBF802000),      # -(1 + 2^-11): away from zero is more negative
    (0x3FFFF000, 0x40000000),      # the carry reaches the exponent: 2.0
    (0x7F7FFFFF, 0x7F800000),      # the largest float rounds to infinity
    (0x00001000, 0x00002000),      # a subnormal tie
    (0x00000FFF, 0x00000000),      # a subnormal below the tie
    (0x7F800000, 0x7F800000),      # +inf
    (0xFF800000, 0xFF800000),      # -inf
    (0x7FC00001, 0x7FC00001),      # NaN with low payload bits: unchanged
])
def test_float_to_tf32_bits(bits, expect):
    x = np.full(32, bits, dtype=np.uint32).view(np.float32)
    one = launch("to_tf32", ["const float*", "float*"], 1, 32)
    (y,) = run(TF32, [one], [x], [((32,), np.float32)])
    assert [hex(v) for v in set(y.view(np.uint32).tolist())] == [hex(expect)]
    assert tf32_round(x).view(np.uint32)[0] == expect     # the NumPy oracle agrees


def test_wmma_tf32_row_major():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((16, 32)).astype(np.float32)
    b = rng.standard_normal((32, 32)).astype(np.float32)
    one = launch("tf32_gemm", ["const float*", "const float*", "float*"], 1, 64)
    (c,) = run(TF32, [one], [a, b], [((16, 32), np.float32)], fill=None)
    expect = tf32_round(a).astype(np.float64) @ tf32_round(b).astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.all(np.abs(c - expect) <= 1e-6 * scale)
    # and tf32 is coarser than float32: the unrounded product differs by more
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.abs(c - exact).max() > 10 * np.abs(c - expect).max()


def test_wmma_tf32_col_major_with_accumulator_load():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((16, 32)).astype(np.float32)
    b = rng.standard_normal((32, 32)).astype(np.float32)
    c0 = rng.standard_normal((16, 32)).astype(np.float32)
    one = launch("tf32_gemm_cm", ["const float*", "const float*", "const float*", "float*"],
                 1, 64)
    # column-major storage is the transpose's row-major storage
    (c_t,) = run(TF32, [one], [np.ascontiguousarray(a.T), np.ascontiguousarray(b.T),
                               np.ascontiguousarray(c0.T)], [((32, 16), np.float32)])
    expect = tf32_round(a).astype(np.float64) @ tf32_round(b).astype(np.float64) + c0
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + np.abs(c0)
    assert np.all(np.abs(c_t.T - expect) <= 1e-6 * scale)


def test_wmma_tf32_ignores_the_low_bits_of_unrounded_inputs():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal((8, 16)).astype(np.float32)
    one = launch("tf32_unrounded", ["const float*", "const float*", "float*"], 1, 32)
    (c,) = run(TF32, [one], [a, b], [((16, 16), np.float32)])

    def truncated(x):
        return (x.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)

    expect = truncated(a) @ truncated(b)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.all(np.abs(c - expect) <= 1e-6 * scale)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.abs(c - exact).max() > 10 * np.abs(c - expect).max()


def test_1024_thread_block():
    x = np.arange(3 * 1024, dtype=np.float64) % 97
    one = launch("big_block", ["const double*", "double*", "int*"], 3, 1024)
    sums, ids = run(BIG_BLOCK, [one], [x], [((3,), np.float64), ((3 * 1024,), np.int32)])
    np.testing.assert_array_equal(sums, x.reshape(3, 1024).sum(1))
    t = np.arange(1024)
    np.testing.assert_array_equal(ids, np.concatenate([t + 10000 * b + 100000 * 1024
                                                       for b in range(3)]))


def test_early_return_leaves_the_barrier():
    x = np.random.default_rng(7).standard_normal(N_EXIT).astype(np.float32)
    one = launch("early_exit", ["const float*", "float*"], 4, 256)
    (y,) = run(EARLY_EXIT, [one], [x], [((N_EXIT,), np.float32)])
    np.testing.assert_array_equal(y, x + x[np.arange(N_EXIT) ^ 1])


def test_deadlock_is_reported_and_the_module_still_works():
    bad = launch("mismatched", ["int*"], 1, 32)
    with pytest.raises(RuntimeError, match="deadlocked"):
        run(EARLY_EXIT, [bad], [], [((32,), np.int32)])
    test_early_return_leaves_the_barrier()


def test_vector_types_and_intrinsics():
    x = np.array([0.25, 1.0, 3.0, 9.5], dtype=np.float32)
    d = np.array([1.5, -2.0, 1e300, 0.0])
    one = launch("intrinsics", ["const float*", "const double*", "int*", "float*", "long long*",
                                "double*"], 1, 4)
    layout, f, bits, g = run(INTRINSICS, [one], [x, d], [((32,), np.int32), ((16,), np.float32),
                                                        ((8,), np.int64), ((8,), np.float64)])
    cuda_sizes = [(2, 2), (4, 4), (2, 2), (4, 4), (4, 4), (8, 8), (16, 16), (8, 8), (16, 16),
                  (8, 8), (16, 16), (16, 16), (16, 16), (12, 4), (12, 4)]
    assert [tuple(p) for p in layout[:30].reshape(-1, 2)] == cuda_sizes
    assert layout[30] == 4321 + 30 and layout[31] == 32
    f = f.reshape(4, 4)
    np.testing.assert_allclose(f[:, 0], 1 / np.sqrt(x), rtol=1e-6)
    np.testing.assert_allclose(f[:, 1], np.exp(-x) + np.log(x), rtol=1e-6)
    np.testing.assert_allclose(f[:, 2], 1 / x + np.minimum(x, 2) + np.maximum(x, 2), rtol=1e-6)
    np.testing.assert_array_equal(f[:, 3], np.nextafter(x, np.float32(np.inf)))
    bits = bits.reshape(4, 2)
    np.testing.assert_array_equal(bits[:, 0], x.view(np.int32))
    np.testing.assert_array_equal(bits[:, 1], d.view(np.int64))
    g = g.reshape(4, 2)
    np.testing.assert_array_equal(g[:, 0], -d)
    i = np.arange(4)
    np.testing.assert_array_equal(g[:, 1], np.minimum(3, i) + np.maximum(5, i) + np.minimum(7, i))


# ---------------------------------------------------------------------------------------------
# the device: memory, arguments, errors, caching


def test_memory_operations():
    ptr, handle = DEVICE.alloc(100)
    assert ptr % 256 == 0 and handle.nbytes == 100
    assert DEVICE.alloc(0)[0] % 256 == 0
    src = np.arange(25, dtype=np.int32)
    p_src, _keep = DEVICE.upload(src)
    assert p_src % 256 == 0
    DEVICE.copy(ptr, p_src, 100)
    np.testing.assert_array_equal(DEVICE.to_host(ptr, (5, 5), np.int32), src.reshape(5, 5))
    DEVICE.zero(ptr + 8, 12)
    expect = src.copy()
    expect[2:5] = 0
    np.testing.assert_array_equal(DEVICE.to_host(ptr, (25,), np.int32), expect)
    p_out, out = DEVICE.empty((3, 4), np.float64)
    assert p_out % 256 == 0 and out.shape == (3, 4) and out.ctypes.data == p_out
    assert DEVICE.to_host(p_out, (0, 4), np.float64).shape == (0, 4)
    host = DEVICE.to_host(ptr, (25,), np.int32)
    host[:] = -1                                          # a copy: the device is unchanged
    np.testing.assert_array_equal(DEVICE.to_host(ptr, (25,), np.int32), expect)


def test_argument_checks_and_copies():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    with pytest.raises(TypeError, match="argument w"):
        DEVICE.argument(x, (3, 4), np.float64, "argument w")
    with pytest.raises(TypeError, match="argument w"):
        DEVICE.argument(x, (4, 3), np.float32, "argument w")
    with pytest.raises(TypeError, match="argument n"):
        DEVICE.argument(1.5, (), np.int32, "argument n")
    with pytest.raises(TypeError, match="argument n"):
        DEVICE.argument(2**40, (), np.int32, "argument n")
    with pytest.raises(TypeError, match="argument n"):
        DEVICE.argument(3, (2,), np.int32, "argument n")
    with pytest.raises(TypeError, match="argument s"):
        DEVICE.argument("3", (), np.int32, "argument s")
    with pytest.raises(TypeError, match="argument b"):
        DEVICE.argument(2, (), np.bool_, "argument b")
    with pytest.raises(TypeError, match="argument f"):
        DEVICE.argument(1e300, (), np.float32, "argument f")       # overflows to infinity
    ptr, handle = DEVICE.argument(2.5, (), np.float32, "argument a")
    assert DEVICE.to_host(ptr, (), np.float32) == np.float32(2.5)
    ptr, handle = DEVICE.argument(0.1, (), np.float32, "argument r")  # rounds to the nearest
    assert DEVICE.to_host(ptr, (), np.float32) == np.float32(0.1)
    ptr, handle = DEVICE.argument(float("-inf"), (), np.float32, "argument i")
    assert DEVICE.to_host(ptr, (), np.float32) == -np.inf
    ptr, handle = DEVICE.argument(-7, (), np.int8, "argument k")
    assert DEVICE.to_host(ptr, (), np.int8) == -7
    ptr, handle = DEVICE.argument(x.T, (4, 3), np.float32, "argument t")   # non-contiguous
    np.testing.assert_array_equal(DEVICE.to_host(ptr, (4, 3), np.float32), x.T)
    assert ptr % 256 == 0
    _, aligned = DEVICE.empty((3, 4), np.float32)
    aligned[:] = x
    ptr, handle = DEVICE.argument(aligned, (3, 4), np.float32, "argument in place")
    assert ptr == aligned.ctypes.data                      # aligned and contiguous: no copy
    ptr, handle = DEVICE.argument(aligned[1:], (2, 4), np.float32, "argument moved")
    assert ptr % 256 == 0 and ptr != aligned[1:].ctypes.data   # misaligned: an aligned copy
    assert handle.ctypes.data == ptr
    np.testing.assert_array_equal(DEVICE.to_host(ptr, (2, 4), np.float32), x[1:])


def test_launch_errors():
    module = DEVICE.compile(lowering(EARLY_EXIT, launch("mismatched", ["int*"], 1, 32)))
    p, _ = DEVICE.alloc(4 * 2048)
    with pytest.raises(RuntimeError, match="between 1 and 1024"):
        DEVICE.launch(module, launch("mismatched", ["int*"], 1, 2048), [p])
    with pytest.raises(ValueError, match="1 parameters"):
        DEVICE.launch(module, launch("mismatched", ["int*"], 1, 32), [p, p])


def test_compile_error_keeps_the_source():
    broken = "extern \"C\" __global__ void broken(float* y) { y[0] = undefined_name; }"
    with pytest.raises(RuntimeError, match="undefined_name") as info:
        # The compiler runs in the background; its error shows when the module is used.
        DEVICE.compile(lowering(broken, launch("broken", ["float*"], 1, 1))).launchers
    kept = str(info.value).split("source kept at ")[1].split(")")[0]
    assert "undefined_name" in Path(kept).read_text()
    shutil.rmtree(kept.rsplit("/", 1)[0], ignore_errors=True)


def test_missing_compiler():
    device = EmulatedDevice(compiler="no-such-compiler-tracejit")
    with pytest.raises(RuntimeError, match="host C\\+\\+ compiler"):
        device.compile(lowering(AXPB4, launch("axpb4", ["const float*", "float*"], 1, 32)))


def test_launcher_casts_strip_restrict():
    low = lowering(AXPB4, launch("axpb4", ["const float* __restrict__", "float *__restrict__"],
                                 1, 32))
    text = cuda_emulator.wrapper_source(low)
    assert "axpb4((const float*) p[0], (float *) p[1])" in text
    assert text.count("tj_launch_axpb4") == 1


def test_caches_in_process_and_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cuda_emulator, "_MODULES", {})
    source = AXPB4 + "\n// a module of its own for this test\n"
    one = launch("axpb4", ["const float*", "float*"], 2, 64, True)
    first = DEVICE.compile(lowering(source, one))
    assert DEVICE.compile(lowering(source, one)) is first          # in process
    assert first.launchers                                         # the compiler has finished
    # Loaded from this process's private folder; the library and the precompiled header are
    # authenticated entries of the compiled code cache.
    assert first.path.parent.name.startswith("tracejit-cuda-emulator-") and first.path.exists()
    assert stat.S_IMODE(first.path.parent.stat().st_mode) == 0o700
    assert list(first.path.parent.glob("pch-*/cuda_emulation.h.gch"))
    cache = DiskCache(tmp_path)
    key = DEVICE.key(shutil.which("g++"), cuda_emulator.wrapper_source(lowering(source, one)))
    assert cache.load(cuda_emulator._disk_key("module", key)) == first.path.read_bytes()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]   # no temporary

    def no_compiler(*args, **kwargs):
        raise AssertionError("compiled again instead of loading the cached library")

    monkeypatch.setattr(cuda_emulator, "_MODULES", {})
    monkeypatch.setattr(EmulatedDevice, "_start_compiler", staticmethod(no_compiler))
    second = DEVICE.compile(lowering(source, one))                 # from disk
    assert second is not first and second.path == first.path
    x = np.arange(N_AXPB, dtype=np.float32)
    (y,) = run(source, [one], [x], [((N_AXPB,), np.float32)])
    np.testing.assert_array_equal(y, 2 * x + 1)


def test_a_library_planted_in_the_cache_is_never_loaded(tmp_path, monkeypatch):
    """Whoever can write the cache folder swaps the cached library of y = 2 x + 1 for the one of
    y = x + 1 (same kernel, other code): the swapped file is not loaded, the module is built
    again and right."""
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    one = launch("axpb4", ["const float*", "float*"], 2, 64, True)
    artefacts = {}   # the one file each compile adds (the first makes the key and the header)
    for name, source in [("first", AXPB4 + "\n// makes the cache\n"),
                         ("victim", AXPB4 + "\n// the victim\n"),
                         ("planted", AXPB4.replace("2.f * ", "") + "\n// planted\n")]:
        monkeypatch.setattr(cuda_emulator, "_MODULES", {})
        before = {p for p in tmp_path.rglob("*") if p.is_file()}
        assert DEVICE.compile(lowering(source, one)).launchers
        added = {p for p in tmp_path.rglob("*") if p.is_file()} - before
        if name != "first":
            (artefacts[name],) = added
    swap = tmp_path / "swap"
    swap.write_bytes(artefacts["planted"].read_bytes())
    os.replace(swap, artefacts["victim"])
    # A new process (this one has the victim's library loaded already) runs the victim.
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "import numpy as np, test_emulation as t\n"
            "one = t.launch('axpb4', ['const float*', 'float*'], 2, 64, True)\n"
            "x = np.arange(t.N_AXPB, dtype=np.float32)\n"
            "(y,) = t.run(t.AXPB4 + '\\n// the victim\\n', [one], [x], "
            "[((t.N_AXPB,), np.float32)])\n"
            "np.testing.assert_array_equal(y, 2 * x + 1)\n")              # not x + 1
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_cache_disabled_uses_a_process_folder(monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", "off")
    monkeypatch.setattr(cuda_emulator, "_MODULES", {})
    source = AXPB4 + "\n// compiled with the disk cache off\n"
    module = DEVICE.compile(lowering(source, launch("axpb4", ["const float*", "float*"], 1, 32)))
    assert module.path.parent.name.startswith("tracejit-cuda-emulator-")


def test_address_sanitizer_option(monkeypatch):
    """TRACEJIT_EMULATOR_SANITIZE=address (or sanitize=) builds with ASan, into modules cached
    apart; without the ASan runtime preloaded the compile says how to run (instead of the
    process aborting); an unknown value is an error naming the variable."""
    monkeypatch.setenv(cuda_emulator.SANITIZE_ENV, "adress")
    with pytest.raises(ValueError, match="TRACEJIT_EMULATOR_SANITIZE='adress'"):
        EmulatedDevice()
    monkeypatch.setenv(cuda_emulator.SANITIZE_ENV, "address")
    sanitized = EmulatedDevice()
    assert {"-fsanitize=address", "-fno-omit-frame-pointer"} <= set(sanitized.flags)
    assert EmulatedDevice(sanitize="").flags == DEVICE.flags == cuda_emulator.FLAGS
    low = lowering(AXPB4, launch("axpb4", ["const float*", "float*"], 1, 32))
    source, compiler = cuda_emulator.wrapper_source(low), shutil.which("g++")
    assert sanitized.key(compiler, source) != DEVICE.key(compiler, source)
    if not cuda_emulator.asan_loaded():
        with pytest.raises(RuntimeError, match=r"LD_PRELOAD=\$\(g\+\+ -print-file-name"):
            sanitized.compile(low)


# ---------------------------------------------------------------------------------------------
# the sources are real CUDA


def test_sources_compile_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    # one translation unit holding every source (their names are distinct): one nvcc run
    cu = tmp_path / "all.cu"
    cu.write_text("\n".join(f"// ---- {name}\n{SOURCES[name]}" for name in sorted(SOURCES)))
    cubin = tmp_path / "all.cubin"
    done = subprocess.run([nvcc, "-cubin", "-arch=sm_80", str(cu), "-o", str(cubin)],
                          check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    names = cubin.read_bytes()
    for source in SOURCES.values():
        pattern = r'extern "C" __global__ void (?:__launch_bounds__\(\d+\)\s+)?(\w+)'
        for kernel in re.findall(pattern, source):
            assert kernel.encode() in names, kernel
