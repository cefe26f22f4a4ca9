"""np.arcsinh (the `asinh` primitive) compiled: within 2 ULP of NumPy over every binary
magnitude, special values exactly, on the cpu backend and the CUDA C (host emulation).

The cpu lowering composes log1p, log and sqrt as glibc does (codegen/llvm.py `_asinh`); the
CUDA lowering calls the CUDA math library's asinh. Gradients are checked with the other unary
primitives (tests/ir/test_vjp.py, tests/ir/test_vjp_special_points.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj

BACKENDS = ["cpu", "cuda-emulator"]


def _inputs(dtype) -> np.ndarray:
    """Random mantissas over every binary exponent the dtype has, both signs, the branch
    points of the cpu lowering (2 and 2**28) with their neighbours, and the largest finite
    values."""
    rng = np.random.default_rng(11)
    info = np.finfo(dtype)
    exponents = rng.integers(info.minexp - info.nmant, info.maxexp, 200_000)
    signs = rng.choice([-1.0, 1.0], exponents.size)
    x = np.ldexp(rng.random(exponents.size) + 0.5, exponents) * signs
    edges = np.array([2.0, 2.0 ** 28, info.max], dtype)
    around = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges[:2], np.inf)])
    return np.concatenate([x.astype(dtype), around, -around])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arcsinh_within_two_ulp(dtype, backend):
    x = _inputs(dtype)
    got = np.asarray(tj.to_host(tj.jit(np.arcsinh, backend=backend)(x)))
    want = np.arcsinh(x.astype(np.float64))      # float32's oracle: the float64 result
    if dtype == np.float64:
        want = np.arcsinh(x.astype(np.longdouble))
    assert got.dtype == dtype
    spacing = np.spacing(np.abs(want.astype(dtype))).astype(np.longdouble)
    ulp = np.abs(got.astype(np.longdouble) - want) / spacing
    worst = int(np.argmax(ulp))
    assert ulp.max() <= 2.0, f"arcsinh({x[worst]!r}) = {got[worst]!r}, {ulp.max():.2f} ULP off"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arcsinh_special_values(dtype, backend):
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, tiny, -tiny], dtype)
    got = np.asarray(tj.to_host(tj.jit(np.arcsinh, backend=backend)(x)))
    want = np.arcsinh(x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
