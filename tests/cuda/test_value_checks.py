"""The CUDA backend on errors NumPy raises on values and on views of folded literals, as the
cpu backend is checked in tests/cpu/test_value_errors.py and tests/cpu/test_folded_literals.py:
a kernel reports an integer to a negative power in the status words, and the host raises
NumPy's ValueError at the user's line; every view and structural primitive of a literal made
by the passes compiles and gives NumPy's answer. Run by the emulator (or the GPU where one is
usable), fused and unfused, one module each."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import tracejit as tj

sys.path.insert(0, str(Path(__file__).parent.parent / "cpu"))
from test_folded_literals import MAKERS, VIEWS, I, X  # noqa: E402
from test_value_errors import MESSAGE, line_of  # noqa: E402
from support import cuda_backend  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="no host C++ compiler")
FUSE = pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])


def host(tree):
    return [np.asarray(x.get() if hasattr(x, "gpudata") else x) for x in tree]


def powers(a, b, t, u):
    p = a ** b + 2 ** b                        # elementwise, array exponents
    q = np.sum(np.power(a, t), axis=1)         # in a reduction, a traced scalar exponent
    r = u ** u                                 # a scalar power
    return p, q * r, np.power(t, b[:0])        # t ** (an empty array): no error


@FUSE
def test_integer_power_with_a_negative_exponent_raises_at_its_line(fuse):
    rng = np.random.default_rng(0)
    a = rng.integers(-3, 4, (3, 40)).astype(np.int32)
    b = rng.integers(0, 4, (3, 40)).astype(np.int32)
    t, u = np.int32(3), np.int32(2)
    j = tj.jit(powers, backend=cuda_backend(), fuse=fuse)
    for got, want in zip(host(j(a, b, t, u)), powers(a, b, t, u), strict=True):
        np.testing.assert_array_equal(got, want)
    bad_b = b.copy()
    bad_b[2, 1] = -1
    for args, text in [((a, bad_b, t, u), "p = a ** b"), ((a, b, np.int32(-2), u), "q = np.sum"),
                       ((a, b, t, np.int32(-1)), "r = u ** u")]:
        with pytest.raises(ValueError, match=MESSAGE):
            powers(*args)
        where = rf"test_value_checks\.py:{line_of(powers, text)} \(in powers\)"
        with pytest.raises(ValueError, match=where + ": " + MESSAGE):
            j(*args)
    np.testing.assert_array_equal(host(j(a, b, t, u))[0], powers(a, b, t, u)[0])


@FUSE
def test_views_of_folded_literals(fuse):
    def f(x, i):
        return tuple(view(make(x, i), x) for view in VIEWS.values() for make in MAKERS.values())

    for got, want in zip(host(tj.jit(f, backend=cuda_backend(), fuse=fuse, fast_math=True)(X, I)),
                         f(X, I), strict=True):
        assert (got.dtype, got.shape) == (want.dtype, want.shape)
        np.testing.assert_array_equal(got, want)


@FUSE
def test_literal_operands_of_gather_and_scatter_kernels(fuse):
    g = tj.jit(tj.grad(lambda x, i: x[i] * 2.0), backend=cuda_backend(), fuse=fuse)
    np.testing.assert_array_equal(host([g(X, np.int64(1))])[0], [0, 2, 0])
    f = tj.jit(lambda x, i: x[i - i + 2], backend=cuda_backend(), fuse=fuse)
    np.testing.assert_array_equal(host([f(X, np.int64(1))])[0], X[2])
