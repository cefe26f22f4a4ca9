"""Freeing compiled CUDA programs on the emulator: `CudaProgram.close()`, and a program dropped
(evicted from a jitted function's cache, or the function itself dropped), unload the module's
shared library once no program holds it; closing twice is harmless and a closed program
refuses to run."""

from __future__ import annotations

import gc
import shutil

import numpy as np
import pytest

import tracejit as tj

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


def loaded(path) -> bool:
    """Whether the shared library at `path` is mapped into this process."""
    with open("/proc/self/maps") as f:
        return str(path) in f.read()


def affine(x):
    return np.sum(np.sin(x) * 2.0 + 1.0)


def test_close_unloads_the_module_and_may_be_repeated():
    x = np.linspace(0.0, 1.0, 9)
    program = tj.jit(affine, backend="cuda-emulator").compiled(x).native
    first = program([x])[0]
    np.testing.assert_allclose(first, affine(x), rtol=1e-12)
    path = program.module.path
    assert loaded(path)
    program.close()
    program.close()
    assert not loaded(path)
    with pytest.raises(RuntimeError, match="compiled program of affine was closed"):
        program([x])
    np.testing.assert_allclose(first, affine(x), rtol=1e-12)   # results outlive the program


def test_evicted_and_dropped_programs_unload_their_modules():
    """Every shape compiles a module of its own; with a cache of two programs, the modules
    of the evicted ones are unloaded, and the rest when the function is dropped."""
    f = tj.jit(affine, backend="cuda-emulator", cache_limit=2)
    paths = []
    gc.disable()            # freed by reference counting alone
    try:
        for n in range(1, 6):
            x = np.linspace(0.0, 1.0, n)
            np.testing.assert_allclose(f(x), affine(x), rtol=1e-12)
            paths.append(f.compiled(x).native.module.path)
        assert len(set(paths)) == 5
        assert [loaded(p) for p in paths] == [False, False, False, True, True]
        del f
        assert not any(loaded(p) for p in paths)
    finally:
        gc.enable()
