"""Errors NumPy raises on values, raised alike by every backend.

NumPy refuses an integer raised to a negative integer power (ValueError). The interpreter runs
NumPy itself; a compiled kernel cannot raise, so it reports the error in the status words
(codegen/status.py) and the runtime raises NumPy's exception, naming the user's line of the
power that failed. Checked here on the interpreter and the cpu backend, fused and unfused, with
array, scalar and constant exponents, inside reductions and in threaded kernels; the CUDA
emulator runs the same checks in tests/cuda/test_value_checks.py.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.llvm import PARALLEL_MIN
from tracejit.runtime import backends

MESSAGE = "Integers to negative integer powers are not allowed."
BACKENDS = pytest.mark.parametrize("backend, fuse", [("interpret", True), ("cpu", True),
                                                     ("cpu", False)],
                                   ids=["interpret", "cpu", "cpu-unfused"])


def powers(a, b, t, u):
    p = a ** b + 2 ** b                        # elementwise, array exponents
    q = np.sum(np.power(a, t), axis=1)         # in a reduction, a traced scalar exponent
    r = u ** u                                 # a scalar power
    return p, q * r


def line_of(fn, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def expect_error(call, backend, line):
    """NumPy's ValueError; compiled backends also name the user's line."""
    compiled = backends.get(backend).compiler is not None
    where = rf".*test_value_errors\.py:{line} \(in powers\): " if compiled else ""
    with pytest.raises(ValueError, match=f"^{where}{re.escape(MESSAGE)}$"):
        call()


@BACKENDS
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_power_with_a_negative_exponent_raises_at_its_line(backend, fuse, dtype):
    rng = np.random.default_rng(0)
    a = rng.integers(-3, 4, (3, 4)).astype(dtype)
    b = rng.integers(0, 4, (3, 4)).astype(dtype)
    t, u = dtype(3), dtype(2)
    j = tj.jit(powers, backend=backend, fuse=fuse)
    for got, want in zip(j(a, b, t, u), powers(a, b, t, u), strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    bad_b = b.copy()
    bad_b[2, 1] = -1
    cases = [((a, bad_b, t, u), "p = a ** b"), ((a, b, dtype(-2), u), "q = np.sum"),
             ((a, b, t, dtype(-1)), "r = u ** u")]
    for args, text in cases:
        with pytest.raises(ValueError, match=MESSAGE):
            powers(*args)                                     # NumPy refuses them too
        expect_error(lambda: j(*args), backend, line_of(powers, text))
    np.testing.assert_array_equal(j(a, b, t, u)[0], powers(a, b, t, u)[0])   # still works


@BACKENDS
def test_negative_exponents_that_numpy_never_uses_are_no_error(backend, fuse):
    """Exponents of ±1 bases still fail (NumPy checks the exponent alone), but a negative
    exponent of an empty array, or a non-negative literal one, is no error."""
    j = tj.jit(lambda a, b: (a ** b, a ** -1, np.power(a, 3)), backend=backend, fuse=fuse)
    empty = np.zeros((0, 2), np.int64)
    for got in j(empty, empty - 1):
        assert got.shape == (0, 2) and got.dtype == np.int64
    with pytest.raises(ValueError, match=MESSAGE):
        tj.jit(lambda a, b: a ** b, backend=backend, fuse=fuse)(np.ones(2, np.int64),
                                                                np.array([1, -1]))


@BACKENDS
def test_constant_and_folded_exponents(backend, fuse):
    """A captured constant exponent, and one that constant folding meets (0 ** [-1, 2] of a
    folded zero array), raise when the program runs, as NumPy does."""
    c = np.array([2, -1])
    with pytest.raises(ValueError, match=MESSAGE):
        tj.jit(lambda a: a ** c, backend=backend, fuse=fuse)(np.array([3, 4]))
    f = lambda x: np.zeros_like(x, dtype=np.int64) ** c          # noqa: E731
    with pytest.raises(ValueError, match=MESSAGE):
        tj.jit(f, backend=backend, fuse=fuse)(np.ones(2))
    np.testing.assert_array_equal(tj.jit(lambda a: a ** np.abs(c), backend=backend,
                                         fuse=fuse)(np.array([3, 4])), [9, 4])


def test_threaded_kernels_report_the_first_error(monkeypatch):
    """A kernel split over threads (each chunk may find a negative exponent) reports one."""
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "3")
    n = 2 * PARALLEL_MIN
    a = np.full(n, 3, np.int32)
    b = np.ones(n, np.int32)
    j = tj.jit(lambda a, b: a ** b * 2)
    np.testing.assert_array_equal(j(a, b), a * 2)
    b[[5, n // 2, n - 1]] = -4
    with pytest.raises(ValueError, match=MESSAGE):
        j(a, b)
    b[:] = 2
    np.testing.assert_array_equal(j(a, b), a ** 2 * 2)
