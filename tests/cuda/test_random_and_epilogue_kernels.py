"""The CUDA code this backend gained with tracejit.random and the dot epilogue fix, run in the
host emulator (nvcc compiles every module generated here: tests/cuda/test_nvcc.py):
Threefry-2x32's published known answers, a fused dropout kernel against the interpreter bit
for bit, and a dot epilogue reading a scalar of its prologue against NumPy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import tracejit as tj

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")

BACKEND = "cuda-emulator"


def test_threefry_known_answers():
    keys = np.array([[0, 0], [0xFFFFFFFF] * 2, [0x13198A2E, 0x03707344]], np.uint32)
    counters = np.array([[0, 0], [0xFFFFFFFF] * 2, [0x243F6A88, 0x85A308D3]], np.uint32)
    want = np.array([[0x6B200159, 0x99BA4EFE], [0x1CB996FC, 0xBB002BE7],
                     [0xC4923A9C, 0x483DF7A0]], np.uint32)

    def words(k, c):
        return tuple(tj.ops.threefry2x32(k[:, 0], k[:, 1], c[:, 0], c[:, 1], word=w)
                     for w in (0, 1, 2))

    w0, w1, both = (tj.to_host(w) for w in tj.jit(words, backend=BACKEND)(keys, counters))
    np.testing.assert_array_equal(np.stack([w0, w1], axis=1), want)
    np.testing.assert_array_equal(both, want[:, 0] ^ want[:, 1])


@pytest.mark.parametrize("fuse", [True, False])
def test_dropout_kernel_matches_the_interpreter_bit_for_bit(fuse):
    def dropout(x, key):
        k1, k2 = tj.random.split(key)
        keep = tj.random.bernoulli(k1, 0.8, x.shape)
        return np.where(keep, x / 0.8, 0.0) + tj.random.uniform(k2, x.shape), \
            tj.random.randint(k2, (7,), -3, 9), tj.random.uniform(k1, (5,), np.float64)

    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    key = tj.random.key(11)
    want = tj.jit(dropout, backend="interpret")(x, key)
    got = tj.jit(dropout, backend=BACKEND, fuse=fuse)(x, key)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(tj.to_host(g), w)
    np.testing.assert_array_equal(want[1], tj.random.randint(tj.random.split(key)[1], (7,),
                                                             -3, 9))


@pytest.mark.parametrize("fuse", [True, False])
def test_dot_epilogue_reads_a_scalar_of_its_prologue(fuse):
    w = np.random.default_rng(0).standard_normal((3, 2))

    def f(s, a):
        t = -s
        return (t + a) @ w + np.tanh(t)

    s, a = np.float64(0.3), np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(tj.to_host(tj.jit(f, backend=BACKEND, fuse=fuse)(s, a)),
                               (-s + a) @ w + np.tanh(-s), rtol=1e-12)
