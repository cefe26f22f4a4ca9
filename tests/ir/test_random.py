"""tracejit.random: Threefry-2x32 against its published known-answer vectors; every function
against a NumPy re-derivation from those words (and against the values JAX's jax.random gives
for the same key, recorded here); the same bits eagerly, compiled on the cpu, in the CUDA
emulator and in the interpreter backend; the distributions against their laws (moments and
Kolmogorov-Smirnov statistics on fixed keys); the bits inside the fused kernels; vmap over
keys; and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tracejit as tj
from tracejit import primitives as P
from npcheck import cuda_backend

KEY = tj.random.key(42)


def words(key, hi, lo):
    return P.threefry2x32_words(key[0], key[1], hi, lo)


def numpy_bits(key, shape):
    """bits(key, shape) re-derived: word 0 ^ word 1 of Threefry at each element's position."""
    n = math.prod(shape)
    w0, w1 = words(key, np.zeros(n, np.uint32), np.arange(n, dtype=np.uint32))
    return (w0 ^ w1).reshape(shape)


# ---------------------------------------------------------------------------------------------
# the generator


# Salmon et al.'s known-answer vectors for Threefry-2x32, 20 rounds: (key, counter, output).
KNOWN_ANSWERS = [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


def test_threefry_known_answers_on_every_backend():
    keys = np.array([k for k, _, _ in KNOWN_ANSWERS], np.uint32)
    counters = np.array([c for _, c, _ in KNOWN_ANSWERS], np.uint32)
    want = np.array([o for _, _, o in KNOWN_ANSWERS], np.uint32)

    def both(keys, counters):
        return tuple(tj.ops.threefry2x32(keys[:, 0], keys[:, 1], counters[:, 0],
                                         counters[:, 1], word=w) for w in (0, 1))

    got = np.stack(P.threefry2x32_words(keys[:, 0], keys[:, 1], counters[:, 0],
                                        counters[:, 1]), axis=1)
    np.testing.assert_array_equal(got, want)
    backends = ["cpu", "interpret"] + ([cuda_backend()] if cuda_backend() else [])
    for backend in backends:
        out = tj.jit(both, backend=backend)(keys, counters)
        np.testing.assert_array_equal(np.stack([np.asarray(o) for o in out], axis=1), want,
                                      err_msg=backend)


# ---------------------------------------------------------------------------------------------
# the functions, against NumPy's re-derivation and JAX's values


def test_keys_split_and_fold_in():
    np.testing.assert_array_equal(tj.random.key(42), [0, 42])
    np.testing.assert_array_equal(tj.random.key(2 ** 40 + 5), [256, 5])
    np.testing.assert_array_equal(tj.random.key(-1), [0xFFFFFFFF, 0xFFFFFFFF])
    assert tj.random.PRNGKey is tj.random.key
    w0, w1 = words(KEY, np.zeros(3, np.uint32), np.arange(3, dtype=np.uint32))
    np.testing.assert_array_equal(tj.random.split(KEY, 3), np.stack([w0, w1], axis=1))
    np.testing.assert_array_equal(tj.random.split(KEY, (2, 2)).reshape(4, 2),
                                  np.stack(words(KEY, np.zeros(4, np.uint32),
                                                 np.arange(4, dtype=np.uint32)), axis=1))
    np.testing.assert_array_equal(tj.random.fold_in(KEY, 7), words(KEY, 0, 7))
    # JAX's values for the same key (jax.random.split(PRNGKey(42), 3), fold_in(..., 7))
    np.testing.assert_array_equal(tj.random.split(KEY, 3), [[1832780943, 270669613],
                                                            [64467757, 2916123636],
                                                            [2465931498, 255383827]])
    np.testing.assert_array_equal(tj.random.fold_in(KEY, 7), [2547012911, 1371500959])


def test_bits_and_uniform_are_the_words_and_jaxs():
    np.testing.assert_array_equal(tj.random.bits(KEY, (2, 3)), numpy_bits(KEY, (2, 3)))
    np.testing.assert_array_equal(tj.random.bits(KEY, (5,)), [2098992034, 2919706841,
                                                              2646866425, 2409546199,
                                                              1935504149])
    u = tj.random.uniform(KEY, (4,))
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u, (numpy_bits(KEY, (4,)) >> 9).astype(np.float32)
                                  * np.float32(2.0 ** -23))
    np.testing.assert_array_equal(u, np.array([0.48870957, 0.6797972, 0.6162715, 0.5610161],
                                              np.float32))
    # float64: 52 bits, w0's 32 and the high 20 of w1
    w0, w1 = words(KEY, np.zeros(4, np.uint32), np.arange(4, dtype=np.uint32))
    want = (w0.astype(np.float64) * 2.0 ** 20 + (w1 >> 12)) * 2.0 ** -52
    np.testing.assert_array_equal(tj.random.uniform(KEY, (4,), np.float64), want)
    lo, hi = np.float32(-3.0), np.float32(5.0)
    np.testing.assert_array_equal(tj.random.uniform(KEY, (4,), minval=lo, maxval=hi),
                                  np.maximum(lo, u * (hi - lo) + lo))
    assert tj.random.uniform(KEY, (3,), np.float16).dtype == np.float16


def test_discrete_functions_give_jaxs_values():
    np.testing.assert_array_equal(tj.random.bernoulli(KEY, 0.6, (6,)),
                                  tj.random.uniform(KEY, (6,)) < 0.6)
    np.testing.assert_array_equal(tj.random.randint(KEY, (6,), 0, 10), [4, 4, 1, 9, 9, 9])
    np.testing.assert_array_equal(tj.random.permutation(KEY, 8), [7, 4, 2, 5, 3, 6, 0, 1])
    np.testing.assert_array_equal(tj.random.permutation(KEY, np.arange(10.0) * 2),
                                  [14, 8, 4, 10, 6, 12, 16, 18, 0, 2])
    x = np.arange(12).reshape(3, 4)
    shuffled = tj.random.permutation(KEY, x, axis=1)
    np.testing.assert_array_equal(np.sort(shuffled, axis=1), x)            # the same columns
    assert len({tuple(np.argsort(row)) for row in shuffled}) == 1
    independent = tj.random.permutation(KEY, np.tile(np.arange(50), (4, 1)), axis=1,
                                        independent=True)
    np.testing.assert_array_equal(np.sort(independent, axis=1), np.tile(np.arange(50), (4, 1)))
    assert len({tuple(row) for row in independent}) == 4
    r = tj.random.randint(KEY, (1000,), -3, 4, np.int8)
    assert r.dtype == np.int8 and r.min() == -3 and r.max() == 3
    np.testing.assert_array_equal(tj.random.randint(KEY, (5,), 7, 7), 7)   # empty: minval


def test_normal_gumbel_categorical_agree_with_jax_to_rounding():
    np.testing.assert_allclose(tj.random.normal(KEY, (4,)),
                               [-0.02830462, 0.46713185, 0.295703, 0.15354592], rtol=2e-6)
    np.testing.assert_allclose(tj.random.gumbel(KEY, (3,)),
                               [0.3340934, 0.95201945, 0.72553056], rtol=2e-6)
    logits = np.log(np.array([0.1, 0.2, 0.7], np.float32))
    samples = tj.random.categorical(KEY, logits, shape=(8,))
    assert samples.dtype == np.int32 and samples.shape == (8,)
    # the argmax of the logits plus the same Gumbel noise
    noise = tj.random.gumbel(KEY, (8, 3))
    np.testing.assert_array_equal(samples, np.argmax(noise + logits, axis=1))


# ---------------------------------------------------------------------------------------------
# every backend: the same bits


def draws(key, lo, hi):
    k1, k2, k3, k4 = tj.random.split(key, 4)
    return (tj.random.bits(k1, (3, 5)), tj.random.uniform(k2, (7,), minval=lo, maxval=hi),
            tj.random.uniform(k3, (2, 3), np.float64), tj.random.bernoulli(k4, 0.25, (9,)),
            tj.random.randint(k1, (6,), -5, 20), tj.random.permutation(k2, 12),
            tj.random.fold_in(k3, 3), tj.random.uniform(k4, (5,), np.float16),
            tj.random.bits(k2, (4,), np.uint64))


def test_the_same_bits_on_every_backend():
    lo, hi = np.float32(-1.0), np.float32(2.0)
    eager = draws(KEY, lo, hi)
    backends = [("cpu", True), ("cpu", False), ("interpret", True)]
    if cuda_backend():
        backends.append((cuda_backend(), True))
    for backend, fuse in backends:
        got = tj.jit(draws, backend=backend, fuse=fuse)(KEY, lo, hi)
        for g, e in zip(got, eager):
            np.testing.assert_array_equal(np.asarray(g), e, err_msg=f"{backend} fuse={fuse}")
    # normal, gumbel and categorical go through log, sqrt and the like: each backend's own
    # accuracy (a few ulps).
    f = lambda k: (tj.random.normal(k, (64,)), tj.random.normal(k, (16,), np.float64),  # noqa
                   tj.random.gumbel(k, (16,)))
    for backend in ["cpu"] + ([cuda_backend()] if cuda_backend() else []):
        for g, e in zip(tj.jit(f, backend=backend)(KEY), f(KEY)):
            np.testing.assert_allclose(np.asarray(g), e, rtol=1e-5, atol=1e-6)


def test_bits_are_made_inside_the_fused_kernel():
    # dropout: the mask is computed where it is used, never written to memory
    def dropout(x, key):
        keep = tj.random.bernoulli(key, 0.9, x.shape)
        return np.where(keep, x / 0.9, 0.0)

    x = np.ones((64, 128), np.float32)
    step = tj.jit(dropout)
    program = step.program(x, KEY)
    assert len(program.kernels) == 1
    out = step(x, KEY)
    np.testing.assert_array_equal(out != 0, tj.random.bernoulli(KEY, 0.9, x.shape))
    assert 0.85 < np.mean(out != 0) < 0.95


def test_vmap_over_keys_and_grad_through_the_bounds():
    keys = tj.random.split(KEY, 5)
    batched = tj.vmap(lambda k: tj.random.uniform(k, (3,)))(keys)
    np.testing.assert_array_equal(batched, np.stack([tj.random.uniform(k, (3,)) for k in keys]))
    normals = tj.jit(tj.vmap(lambda k: tj.random.normal(k, (2, 2))))(keys)
    np.testing.assert_allclose(normals, np.stack([tj.random.normal(k, (2, 2)) for k in keys]),
                               rtol=1e-5, atol=1e-6)
    # d/dhi of sum(uniform(key, lo, hi)) is sum(u): the draw is a constant of the bounds
    g = tj.grad(lambda hi: np.sum(tj.random.uniform(KEY, (10,), np.float64, 0.0, hi)))(2.0)
    np.testing.assert_allclose(g, np.sum(tj.random.uniform(KEY, (10,), np.float64)),
                               rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# the distributions


def ks_statistic(samples, cdf):
    """The Kolmogorov-Smirnov statistic of `samples` against the distribution `cdf`."""
    x = np.sort(samples)
    n = len(x)
    f = cdf(x)
    return max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))


N = 100_000
# The KS statistic's 0.1 % critical value is 1.95 / sqrt(n); on fixed keys each test is one
# deterministic draw, checked against that bound.
KS_BOUND = 1.95 / math.sqrt(N)


def normal_cdf(x):
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_and_normal_distributions(dtype):
    k1, k2 = tj.random.split(tj.random.key(7))
    u = tj.random.uniform(k1, (N,), dtype)
    assert u.dtype == dtype and 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / N)
    assert ks_statistic(u.astype(np.float64), lambda x: x) < KS_BOUND
    z = tj.random.normal(k2, (N,), dtype)
    assert z.dtype == dtype
    assert abs(z.mean()) < 4 / math.sqrt(N)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / N)
    assert ks_statistic(z.astype(np.float64), normal_cdf) < KS_BOUND
    # and the same law as NumPy's own normal draws (a two-sample comparison of moments)
    ref = np.random.default_rng(0).standard_normal(N)
    assert abs(np.mean(z ** 4) - np.mean(ref ** 4)) < 0.1


def test_discrete_distributions():
    k1, k2, k3 = tj.random.split(tj.random.key(3), 3)
    b = tj.random.bernoulli(k1, 0.3, (N,))
    assert abs(b.mean() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / N)
    r = tj.random.randint(k2, (N,), 0, 7)
    counts = np.bincount(r, minlength=7)
    expected = N / 7
    assert np.sum((counts - expected) ** 2 / expected) < 22.5      # chi-square, 6 dof, 0.1 %
    p = np.array([0.1, 0.2, 0.3, 0.4])
    c = tj.random.categorical(k3, np.log(p), shape=(N,))
    freq = np.bincount(c, minlength=4) / N
    np.testing.assert_allclose(freq, p, atol=4 * math.sqrt(0.25 / N))
    # split keys give independent streams
    a, b2 = (tj.random.uniform(k, (N,), np.float64) for k in tj.random.split(KEY))
    assert abs(np.corrcoef(a, b2)[0, 1]) < 4 / math.sqrt(N)


# ---------------------------------------------------------------------------------------------
# errors


def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="uint32 array of shape"):
        tj.random.uniform(np.array([1, 2]), (3,))
    with pytest.raises(TypeError, match="uint32 array of shape"):
        tj.random.normal(np.zeros(3, np.uint32), (3,))
    with pytest.raises(TypeError, match="float type"):
        tj.random.uniform(KEY, (3,), np.int32)
    with pytest.raises(TypeError, match="unsigned"):
        tj.random.bits(KEY, (3,), np.int32)
    with pytest.raises(ValueError, match="negative"):
        tj.random.uniform(KEY, (-1,))
    with pytest.raises(TypeError, match="integer type"):
        tj.random.randint(KEY, (3,), 0, 5, np.int64)
    with pytest.raises(TypeError, match="seed"):
        tj.random.key(1.5)
    with pytest.raises(ValueError, match="64 bits"):
        tj.random.key(2 ** 64)
    with pytest.raises(ValueError, match="batch shape"):
        tj.random.categorical(KEY, np.zeros((2, 3)), shape=(4, 3))
