"""Every CUDA module the test session generated compiles with nvcc, for sm_80 and sm_90.

The modules come from conftest.GENERATED_CUDA (every CudaLowering made while the tests ran:
the emulator's runs of the primitive, VJP and random-program tests) and from a corpus of
programs built here, so this file checks something when run alone too. Their distinct kernels
are compiled in batches: the device helpers once, then each kernel in a namespace of its own
(`extern "C"` dropped, so that kernel names may repeat). Skipped where nvcc is
absent. Marked `last`: it runs after every other test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.cuda import CudaLowering, preamble

from conftest import GENERATED_CUDA

NVCC = shutil.which("nvcc")
BATCH = 1500
ARCHS = ("sm_80", "sm_90")

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
]


def corpus_sources() -> list[str]:
    out = []
    for f, args in CORPUS:
        for fuse in (True, False):
            program = tj.jit(f, backend="interpret", fuse=fuse).program(*args)
            for tf32 in (False, True):
                out.append(CudaLowering(program, allow_tf32=tf32).source)
    return out


def kernels_of(source: str) -> list[str]:
    """A module's kernel functions, without comments and `extern "C"` (so that two modules'
    identical kernels are one, and kernel names may repeat across modules)."""
    body = source.split(preamble(), 1)[1]
    functions = []
    for chunk in body.strip().split("\n\n"):
        code = "\n".join(line for line in chunk.splitlines() if not line.startswith("//"))
        functions.append(code.replace('extern "C" __global__', "__global__"))
    return functions


def translation_unit(functions: list[str]) -> str:
    parts = ["#include <mma.h>", preamble()]
    for i, code in enumerate(functions):
        parts.append(f"namespace module{i} {{\n{code}\n}}  // module{i}")
    return "\n".join(parts)


def compile_unit(path: str, arch: str) -> subprocess.CompletedProcess:
    return subprocess.run([NVCC, "-cubin", f"-arch={arch}", "--fmad=false", "-std=c++17",
                           "-o", os.devnull, path], capture_output=True, text=True)


def failing_modules(text: str, stderr: str) -> set[int]:
    """The modules whose lines nvcc complained about."""
    starts = [(text.count("\n", 0, m.start()) + 1, int(m.group(1)))
              for m in re.finditer(r"namespace module(\d+) ", text)]
    bad = set()
    for m in re.finditer(r"\((\d+)\): error", stderr):
        line = int(m.group(1))
        owner = [i for first, i in starts if first <= line]
        if owner:
            bad.add(owner[-1])
    return bad


@pytest.mark.last
def test_every_generated_module_compiles_with_nvcc():
    origin: dict[str, str] = {}           # each distinct kernel, and a module it came from
    for source in corpus_sources() + list(GENERATED_CUDA):
        for code in kernels_of(source):
            origin.setdefault(code, GENERATED_CUDA.get(source, "the corpus"))
    functions = list(origin)
    batches = [functions[i:i + BATCH] for i in range(0, len(functions), BATCH)]
    folder = tempfile.mkdtemp(prefix="tracejit-nvcc-")
    jobs = []
    for j, batch in enumerate(batches):
        path = os.path.join(folder, f"batch{j}.cu")
        with open(path, "w") as f:
            f.write(translation_unit(batch))
        jobs += [(path, arch, batch) for arch in ARCHS]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda job: compile_unit(job[0], job[1]), jobs))
    failures = []
    for (path, arch, batch), r in zip(jobs, results):
        if r.returncode:
            text = open(path).read()
            for i in sorted(failing_modules(text, r.stderr))[:3]:
                failures.append(f"{arch}: kernel module{i} of {path} (from {origin[batch[i]]})")
            failures.append(r.stderr[:4000])
    assert not failures, "\n".join(failures)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_broken_kernel_is_caught():
    """The check itself: a module with a type error in a kernel fails to compile, and the
    failure is traced to that module."""
    f, args = CORPUS[0]
    good = CudaLowering(tj.jit(f, backend="interpret").program(*args)).source
    bad = good.replace("tanhf(", "tanhf(&", 1)
    assert bad != good
    folder = tempfile.mkdtemp(prefix="tracejit-nvcc-")
    path = os.path.join(folder, "bad.cu")
    with open(path, "w") as f:
        f.write(translation_unit(kernels_of(good) + kernels_of(bad)))
    r = compile_unit(path, "sm_90")
    assert r.returncode != 0
    assert failing_modules(open(path).read(), r.stderr) == {len(kernels_of(good))}
    shutil.rmtree(folder, ignore_errors=True)
