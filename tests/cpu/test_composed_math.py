"""The math functions the cpu backend composes from llvm_math (codegen/llvm.py: asinh, asin,
acos, atanh, acosh, cbrt, atan2, hypot), compiled: within 3 ULP of a higher-precision oracle
over every binary magnitude of their domains, special values exactly as NumPy, on the cpu
backend and the CUDA C (host emulation, which calls the CUDA math library's functions).

Oracles: NumPy's float64 result for float32, NumPy on x86 long double for float64.
Gradients are checked with the other primitives (tests/ir/test_vjp.py,
tests/ir/test_vjp_special_points.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj

BACKENDS = ["cpu", "cuda-emulator"]
N = 50_000


def _wide(rng, dtype, lo=None, hi=None) -> np.ndarray:
    """Random mantissas over the binary exponents [lo, hi) (default: all the dtype has), both
    signs."""
    info = np.finfo(dtype)
    lo = info.minexp - info.nmant if lo is None else lo
    hi = info.maxexp if hi is None else hi
    exponents = rng.integers(lo, hi, N)
    return np.ldexp(rng.random(N) + 0.5, exponents) * rng.choice([-1.0, 1.0], N)


def _unit(rng, dtype) -> np.ndarray:
    """[-1, 1], dense near ±1 and near 0."""
    near = 10.0 ** -rng.uniform(0, 16, N // 4)
    return np.concatenate([rng.uniform(-1, 1, N // 4), 1 - near, near - 1,
                           _wide(rng, dtype, hi=0)[:N // 4], [-1.0, 1.0]])


def _above_one(rng, dtype) -> np.ndarray:
    """[1, max], dense near 1, with the branch points of the cpu lowering (2, 2**28)."""
    edges = np.array([1.0, 2.0, 2.0 ** 28])
    return np.concatenate([1 + 10.0 ** -rng.uniform(0, 16, N // 2),
                           np.abs(_wide(rng, dtype, lo=0))[:N // 2], edges,
                           np.nextafter(edges, np.inf), np.nextafter(edges[1:], 0)])


def _edges(rng, dtype) -> np.ndarray:
    """The branch points of the cpu asinh (2, 2**28) and their neighbours, both signs."""
    edges = np.array([2.0, 2.0 ** 28])
    x = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf)])
    return np.concatenate([_wide(rng, dtype), x, -x])


#: name → (the function, makers of its arguments)
CASES = {
    "asinh": (np.arcsinh, [_edges]),
    "asin": (np.arcsin, [_unit]),
    "acos": (np.arccos, [_unit]),
    "atanh": (np.arctanh, [_unit]),
    "acosh": (np.arccosh, [_above_one]),
    "cbrt": (np.cbrt, [_wide]),
    "atan2": (np.arctan2, [_wide, _wide]),
    "hypot": (np.hypot, [_wide, _wide]),
}

#: special values: every pair of them for the binary functions
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5]


def _inputs(name, dtype):
    rng = np.random.default_rng(sorted(CASES).index(name))
    _, makers = CASES[name]
    args = [m(rng, dtype) for m in makers]
    size = min(len(a) for a in args)
    with np.errstate(over="ignore"):
        return [np.clip(a[:size], -np.finfo(dtype).max, np.finfo(dtype).max).astype(dtype)
                for a in args]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_within_three_ulp(name, dtype, backend):
    f, _ = CASES[name]
    args = _inputs(name, dtype)
    got = np.asarray(tj.to_host(tj.jit(f, backend=backend)(*args)))
    assert got.dtype == dtype
    wide = np.longdouble if dtype == np.float64 else np.float64
    with np.errstate(all="ignore"):
        want = f(*[a.astype(wide) for a in args]).astype(np.longdouble)
    info = np.finfo(dtype)
    # Results the dtype can hold as normal numbers (the ulp of a subnormal is fixed).
    ok = np.isfinite(want) & (np.abs(want) >= info.tiny) & (np.abs(want) <= info.max)
    spacing = np.spacing(np.abs(want[ok]).astype(dtype)).astype(np.longdouble)
    ulp = np.abs(got[ok].astype(np.longdouble) - want[ok]) / spacing
    worst = int(np.argmax(ulp))
    where = tuple(a[ok][worst] for a in args)
    assert ulp.max() <= 3.0, f"{name}{where} = {got[ok][worst]!r}: {ulp.max():.2f} ULP off"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_special_values(name, dtype, backend):
    f, makers = CASES[name]
    s = np.array(SPECIALS + [np.finfo(dtype).smallest_subnormal], dtype)
    args = [s] if len(makers) == 1 else [a.ravel() for a in np.meshgrid(s, s)]
    got = np.asarray(tj.to_host(tj.jit(f, backend=backend)(*args)))
    with np.errstate(all="ignore"):
        want = f(*args)
    exact = ~np.isfinite(want) | (want == 0) | np.isin(np.abs(want), [np.pi, np.pi / 2])
    np.testing.assert_array_equal(got[exact], want[exact])
    signed = exact & ~np.isnan(want)          # a NaN's sign bit means nothing
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(want[signed]))
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, equal_nan=True)
