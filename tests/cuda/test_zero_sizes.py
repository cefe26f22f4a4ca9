"""Zero-sized dimensions in every kind of generated kernel, on the cpu backend (fused and
unfused) and the CUDA backend (a GPU, or its host emulation; fused and unfused), against NumPy.

Each case makes one dimension zero: the batch, M, N or K of a dot (with an elementwise epilogue
in the product's store, an epilogue with a reduction, a transposed operand copied first, and on
tensor cores); the kept or the reduced length of a reduction (short and long ones, whose long
form is split over blocks with a final kernel); gather, scatter-add, concatenate, pad, argmax,
argmin and elementwise kernels, with empty operands or empty results. A kernel that touches
memory outside its buffers is found by AddressSanitizer when these tests run with the emulator
built with it (tests/cuda/test_sanitized_emulator.py); results that are not empty must still be
right (a sum over nothing is 0, a product 1, a mean NaN), never the emulator's uninitialised
memory.
"""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.cuda import CudaLowering
from tracejit.runtime.cuda_emulator import SANITIZE_ENV

RNG = np.random.default_rng(0)


def cuda_backends() -> list[str]:
    """The CUDA backends usable here: the emulator where g++ is, and a GPU where one is (not
    when the emulator is built with a sanitizer: that run checks the emulated kernels)."""
    out = ["cuda-emulator"] if shutil.which("g++") else []
    if os.environ.get(SANITIZE_ENV):
        return out
    try:
        from tracejit.runtime.cuda_pycuda import PycudaDevice
        PycudaDevice.get()
        out.append("cuda")
    except Exception:       # no pycuda, no driver, no device: the GPU runs are left out
        pass
    return out


CUDA = cuda_backends()


def assert_same(got, want, where: str) -> None:
    """Same dtype, shape and values (floats to a few ulps, NaN where NumPy has NaN)."""
    got, want = np.asarray(got), np.asarray(want)
    assert (got.dtype, got.shape) == (want.dtype, want.shape), where
    if want.dtype.kind == "f":
        rtol = 1e-5 if want.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, equal_nan=True, err_msg=where)
    else:
        np.testing.assert_array_equal(got, want, err_msg=where)


def arrays(*shapes, dtype=np.float64):
    return tuple(RNG.standard_normal(s).astype(dtype) for s in shapes)


def grad_of_take(idx):
    """d/dx sum(x[idx] * w) (a scatter-add of w) and NumPy's oracle, np.add.at."""
    def oracle(x, w):
        g = np.zeros_like(x)
        np.add.at(g, idx, w)
        return g
    return tj.grad(lambda x, w: np.sum(x[idx] * w)), oracle


def grad_of_slice(key):
    """d/dx sum(x[key] * w) (w padded with zeros to x's shape) and NumPy's oracle."""
    def oracle(x, w):
        g = np.zeros_like(x)
        g[key] = w
        return g
    return tj.grad(lambda x, w: np.sum(x[key] * w)), oracle


# name -> (function, NumPy's function (None: the same), arguments, the kernel kind it needs)
CASES = {
    # dots: batch, M, N, K zero
    "dot batch 0, elementwise epilogue": (lambda a, b: np.matmul(a, b) * 0.5, None,
                                          arrays((0, 5, 3), (0, 3, 4)), "dot"),
    "dot batch 0, reduced epilogue": (lambda a, b: np.sum(np.matmul(a, b) * 0.5), None,
                                      arrays((0, 5, 3), (0, 3, 4)), "dot"),
    "dot batch 0, transposed operand": (lambda a, b: np.tanh(a.transpose(0, 2, 1) @ b), None,
                                        arrays((0, 3, 5), (0, 3, 4)), "dot"),
    "dot M 0": (lambda a, b: np.matmul(a, b) + 1.0, None, arrays((2, 0, 3), (2, 3, 4)), "dot"),
    "dot M 0, reduced": (lambda a, b: np.sum(a @ b, axis=1), None,
                         arrays((0, 3), (3, 4)), "dot"),
    "dot N 0": (lambda a, b: np.sum(a @ b, axis=0), None, arrays((5, 3), (3, 0)), "dot"),
    "dot K 0": (lambda a, b: a @ b + 1.0, None, arrays((5, 0), (0, 4)), "dot"),
    "dot K 0, batched, reduced": (lambda a, b: np.sum(np.matmul(a, b), axis=-1), None,
                                  arrays((2, 5, 0), (2, 0, 4)), "dot"),
    "dot all 0": (lambda a, b: np.matmul(a, b), None, arrays((0, 0, 0), (0, 0, 0)), "dot"),
    "int dot K 0": (lambda a, b: a @ b, None,
                    (np.ones((3, 0), np.int64), np.ones((0, 2), np.int64)), "dot"),
    # reductions: no outputs (kept 0), nothing to reduce (length 0), both, long and short
    "sum, kept 0": (lambda x: np.sum(x, axis=1), None, arrays((0, 5)), "loop"),
    "sum, kept 0, long": (lambda x: np.sum(x * 2.0, axis=1), None, arrays((0, 20000)), "loop"),
    "sum, kept 0, long, and the total": (lambda x: (np.sum(x, axis=1), np.sum(x) + 1.0), None,
                                         arrays((0, 20000)), "loop"),
    "sum of columns, kept 0": (lambda x: np.sum(x, axis=0), None, arrays((5, 0)), "loop"),
    "sum, length 0": (lambda x: np.sum(x, axis=1) + 1.0, None, arrays((5, 0)), "loop"),
    "sum of columns, length 0": (lambda x: np.sum(x * x, axis=0), None, arrays((0, 300)),
                                 "loop"),
    "sum of all, length 0": (lambda x: np.sum(x), None, arrays((0, 3)), "loop"),
    "f32 sum, length 0": (lambda x: np.sum(x, axis=0), None,
                          arrays((0, 3), dtype=np.float32), "loop"),
    "prod, length 0": (lambda x: np.prod(x, axis=0), None, arrays((0, 3)), "loop"),
    "mean, length 0": (lambda x: np.mean(x, axis=0), None, arrays((0, 3)), "loop"),
    "max, kept 0": (lambda x: np.max(x, axis=1), None, arrays((0, 3)), "loop"),
    "int sum, length 0": (lambda x: np.sum(x > 0, axis=0), None, arrays((0, 3)), "loop"),
    "any, length 0": (lambda x: np.any(x > 0, axis=1), None, arrays((4, 0)), "loop"),
    "all, length 0": (lambda x: np.all(x > 0, axis=1), None, arrays((4, 0)), "loop"),
    # gather and scatter-add
    "gather, no indices": (lambda x: x[np.array([], np.int64)], None, arrays((4, 3)), "gather"),
    "gather from an empty array": (lambda x: x[:, np.array([1, 0, 2])], None, arrays((0, 3)),
                                   "gather"),
    "scatter-add, no updates": (*grad_of_take(np.array([], np.int64)),
                                arrays((4, 3), (0, 3)), "scatter_add"),
    "scatter-add, empty rows": (*grad_of_take((slice(None), np.array([2, 0, 2]))),
                                arrays((0, 3), (0, 3)), "scatter_add"),
    # concatenate and pad
    "concatenate with an empty operand": (lambda a, b: np.concatenate([a, b, a]), None,
                                          arrays((0, 3), (2, 3)), "concatenate"),
    "concatenate, empty result": (lambda a, b: np.concatenate([a, b], axis=1), None,
                                  arrays((0, 3), (0, 2)), "concatenate"),
    "pad of an empty slice": (*grad_of_slice((slice(3, None),)), arrays((3, 4), (0, 4)),
                              "pad"),
    "pad, empty result": (*grad_of_slice((slice(None), slice(1, None, 2))),
                          arrays((0, 4), (0, 2)), "pad"),
    # argmax, argmin: empty results (an empty searched axis is NumPy's error, tested below)
    "argmax, kept 0": (lambda x: np.argmax(x, axis=1), None, arrays((0, 3)), "argmax"),
    "argmin, kept 0": (lambda x: np.argmin(x, axis=2), None, arrays((2, 0, 3)), "argmin"),
    # elementwise, vectorised or not, with a rank-0 result beside the empty one
    "elementwise": (lambda x: np.sin(x) * 2.0, None, arrays((0, 4)), "loop"),
    "elementwise, strided": (lambda x: np.exp(x.T) + x.T, None, arrays((4, 0)), "loop"),
    "elementwise and a scalar": (lambda x, s: (np.sin(x) * s, s * 2.0), None,
                                 arrays((0, 4), ()), "loop"),
    "iota": (lambda x: x * np.arange(x.shape[1]), None, arrays((0, 5)), "loop"),
}

RUNS = [(backend, fuse) for backend in ["cpu"] + CUDA for fuse in (True, False)]


def quietly(f, *args):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return f(*args)


@pytest.mark.parametrize("backend,fuse", RUNS, ids=[f"{b}-{'fused' if f else 'unfused'}"
                                                   for b, f in RUNS])
@pytest.mark.parametrize("name", sorted(CASES))
def test_zero_sized_dimension(name, backend, fuse):
    f, oracle, args, kind = CASES[name]
    jitted = tj.jit(f, backend=backend, fuse=fuse)
    kinds = {k.kind for k in jitted.program(*args).kernels}
    assert kind in kinds, f"the case needs a {kind} kernel, the program has {sorted(kinds)}"
    want = quietly(oracle or f, *args)
    got = tj.to_host(jitted(*args))
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, f"result {k}")


def test_tf32_products_with_zero_sized_dimensions():
    """allow_tf32 products (tensor cores for an empty batch; M, N or K empty take the tiled
    kernel) of float32 matrices."""
    if not CUDA:
        pytest.skip("no CUDA backend (needs g++ or a GPU)")
    for a, b in (((0, 70, 9), (0, 9, 65)), ((2, 0, 9), (2, 9, 65)), ((70, 9), (9, 0)),
                 ((70, 0), (0, 65))):
        x, y = arrays(a, b, dtype=np.float32)
        f = lambda x, y: np.sum(np.matmul(x, y) * 2.0) + np.matmul(x, y) * 0.5  # noqa: E731
        lowering = CudaLowering(tj.jit(f).program(x, y), allow_tf32=True)
        assert ("_wmma(" in lowering.source) == (a[0] == 0)
        for backend in CUDA:
            got = tj.to_host(tj.jit(f, backend=backend, allow_tf32=True)(x, y))
            assert_same(got, f(x, y), f"{backend}, {a} @ {b}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_launch_has_an_empty_grid(name):
    """The launch policy: a kernel whose work is empty is not launched, and every launch's
    grid is the blocks of its work (none with nothing to do, for every kernel kind)."""
    f, _, args, _ = CASES[name]
    for fuse in (True, False):
        lowering = CudaLowering(tj.jit(f, fuse=fuse).program(*args))
        for launch in lowering.launches:
            assert launch.grid >= 1, launch
        product = [launch for launch in lowering.launches if launch.kernel.endswith("_gemm")]
        empty_dots = [k for k in lowering.program.kernels
                      if k.kind == "dot" and k.dot.out.type.size == 0]
        if empty_dots:
            assert not product, f"a product of an empty result is launched: {product}"


@pytest.mark.parametrize("f, shape", [
    (lambda x: np.argmax(x, axis=0), (0, 3)),
    (lambda x: np.argmin(x, axis=1), (3, 0)),
    (lambda x: np.argmax(x), (0, 3)),
    (lambda x: np.max(x, axis=0), (0, 3)),
    (lambda x: np.min(x), (2, 0)),
])
def test_empty_searches_raise_as_numpy_does(f, shape):
    """The max, min, argmax and argmin of an empty sequence: NumPy's ValueError."""
    x = np.ones(shape)
    with pytest.raises(ValueError):
        f(x)
    with pytest.raises(ValueError, match="empty|zero-size"):
        tj.jit(f)(x)
