"""Settings the cpu backend reads: a bad value is a ValueError naming the variable and what
is allowed, at the compile that reads it (not a bare error later, nor silently ignored)."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.llvm import MAX_THREADS
from tracejit.runtime import cpu


@pytest.mark.parametrize("value", ["abc", "0", "-4", "2.5"])
def test_num_threads_refused(monkeypatch, value):
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", value)
    f = tj.jit(lambda x: x * 2.0)
    with pytest.raises(ValueError, match=f"TRACEJIT_NUM_THREADS={value!r}: expected a "
                                         "positive integer"):
        f(np.ones(3))


def test_num_threads_accepted(monkeypatch):
    x = np.linspace(-1.0, 1.0, (1 << 20) + 3)      # large enough to be split over threads
    for value, threads in [("3", 3), (str(10 ** 30), MAX_THREADS)]:
        monkeypatch.setenv("TRACEJIT_NUM_THREADS", value)
        assert cpu.default_threads() == threads
        f = tj.jit(lambda x: np.sum(x * x))
        np.testing.assert_allclose(f(x), np.sum(x * x), rtol=1e-12)


def test_blas_flag(monkeypatch):
    monkeypatch.setenv("TRACEJIT_BLAS", "sometimes")
    with pytest.raises(ValueError, match="TRACEJIT_BLAS='sometimes': expected one of 1, on, "
                                         "true, yes .on. or 0, off, false, no .off."):
        cpu._register_blas()
    monkeypatch.setenv("TRACEJIT_BLAS", "No")
    assert cpu._register_blas() == ""
