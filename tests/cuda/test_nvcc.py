"""Every CUDA module the test session generated compiles with nvcc, for sm_80 and sm_90.

conftest.NVCC received every CudaLowering made while the tests ran (the emulator's runs of the
NumPy, VJP and random-program tests, the codegen tests) and compiled their distinct kernels in
background batches (tests/nvcc_batches.py); the test here adds a corpus of programs of its own,
so that it checks something when run alone too, then waits for every batch. Skipped where nvcc
is absent. Marked `last`: it runs after every other test.
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.cuda import CudaLowering

import conftest
from nvcc_batches import NVCC, NvccChecker

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")

rng = np.random.default_rng(0)
X = rng.standard_normal((64, 100)).astype(np.float32)
W = rng.standard_normal((100, 10)).astype(np.float32)
B = rng.standard_normal(10).astype(np.float32)


def _mlp(x, w, b):
    return np.sum(np.maximum(x @ w + b, 0.0) ** 2)


CORPUS = [
    (lambda x, y, z: np.sum((np.tanh(x) * y + z) ** 2), (X, X, X)),
    (lambda x, w, b: np.maximum(x @ w + b, 0.0), (X, W, B)),
    (lambda x: (x.sum(axis=0), x.max(axis=1), x.argmax(axis=1)), (X,)),
    (lambda x, i: x[i] * 2, (X, np.array([1, 5, -2]))),
    (lambda x: (np.concatenate([x, x * 2], axis=1), x[::-1, 2:5]), (X,)),
    (lambda x: (x.astype(np.int64) // 3, (x > 0).sum(), np.floor(x) % 2.5),
     (X.astype(np.float64),)),
    (lambda x: np.sum(np.exp(x - x.max(axis=1, keepdims=True)), axis=1), (X,)),
    (lambda x: np.sum(x * x), (rng.standard_normal(1 << 16).astype(np.float32),)),
    (tj.value_and_grad(_mlp, argnums=(1, 2)), (X, W, B)),
    # kernels of their own along an axis, and the check primitive's status report
    (lambda x: (np.cumsum(x, axis=1), np.cumprod(x, axis=0), np.sort(x, axis=0),
                np.argsort(x.astype(np.float64)), np.nanargmax(x, axis=1)), (X,)),
    (tj.grad(lambda x: np.sum(np.sort(x, axis=1) * np.cumsum(x, axis=0))), (X,)),
]


def corpus_sources() -> list[str]:
    """The corpus's modules, fused and unfused, with and without TF32 dots (made here, they
    reach conftest.NVCC through its recording of every CudaLowering)."""
    out = []
    for f, args in CORPUS:
        for fuse in (True, False):
            program = tj.jit(f, backend="interpret", fuse=fuse).program(*args)
            for tf32 in (False, True):
                out.append(CudaLowering(program, allow_tf32=tf32).source)
    return out


@pytest.mark.last
def test_every_generated_kernel_compiles_with_nvcc():
    assert conftest.NVCC is not None
    corpus_sources()
    failures = conftest.NVCC.finish()
    assert not failures, "\n".join(failures)
    assert conftest.NVCC.compiled >= len(CORPUS)


def test_a_broken_kernel_is_caught_and_traced_to_its_test():
    """The check itself: a module with a type error in a kernel fails to compile, for both
    architectures, and the failure names the module's origin."""
    f, args = CORPUS[0]
    good = CudaLowering(tj.jit(f, backend="interpret").program(*args)).source
    bad = good.replace("tanhf(", "tanhf(&", 1)
    assert bad != good
    checker = NvccChecker()
    checker.add(good, "the good module")
    checker.add(bad, "the broken module")
    failures = checker.finish()
    named = [line for line in failures if line.startswith("sm_")]
    assert len(named) == 2 and all("(from the broken module)" in line for line in named)
    assert any("error" in line for line in failures)
