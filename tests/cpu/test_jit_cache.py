"""The compiled-program cache of `jit`: what counts as the same key (static arguments equal but
not interchangeable, ndarray subclasses), its bound (LRU, `cache_limit`), and one compile per
key when threads race on a first call. Every result is compared with NumPy."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import tracejit as tj

X = np.array([1.0, 2.0, 4.0])


# ---- static arguments: keyed by what they mean, not by == ---------------------------------------

def test_static_minus_zero_is_not_plus_zero():
    f = tj.jit(lambda x, s: x / s, static_argnums=1)
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(f(X, 0.0), X / 0.0)
        np.testing.assert_array_equal(f(X, -0.0), X / -0.0)        # -inf, not the +inf entry
        np.testing.assert_array_equal(f(X, 0.0), X / 0.0)
    assert f.cache_size == 2


def test_static_nan_hits_the_cache():
    f = tj.jit(lambda x, s: x + s, static_argnums=1)
    for _ in range(5):
        assert np.all(np.isnan(f(X, math.nan)))
    assert f.trace_count == 1 and f.cache_size == 1


@pytest.mark.parametrize("a,b", [(1, 1.0), (1, True), (1.0, np.float32(1.0)),
                                 ((1,), (1.0,)), ((0.0, 2), (-0.0, 2)), ((1, (2,)), (1, (2.0,)))])
def test_static_values_equal_but_not_interchangeable(a, b):
    """Equal under == but traced differently (types inside tuples, signed zeros)."""
    def fn(x, s):
        flat = s if isinstance(s, tuple) else (s,)
        while any(isinstance(v, tuple) for v in flat):
            flat = tuple(w for v in flat for w in (v if isinstance(v, tuple) else (v,)))
        out = x
        for v in flat:
            out = out / (np.asarray(v) + 1) if not isinstance(v, bool) else out * v
        return out

    f = tj.jit(fn, static_argnums=1)
    x = X.astype(np.float32)
    for s in (a, b, a):
        got = f(x, s)
        want = fn(x, s)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert f.cache_size == 2


# ---- ndarray subclasses -----------------------------------------------------------------------

def test_masked_array_is_refused():
    m = np.ma.masked_array([1.0, 2.0, 1e9], mask=[0, 0, 1])
    with pytest.raises(TypeError, match="MaskedArray"):
        tj.jit(np.sum)(m)
    with pytest.raises(TypeError, match="MaskedArray"):
        tj.grad(np.sum)(m)


def test_masked_array_is_refused_after_a_plain_call_with_the_same_signature():
    f = tj.jit(lambda xs: np.sum(xs[0]))
    assert f([np.array([1.0, 2.0, 3.0])]) == 6.0
    with pytest.raises(TypeError, match="MaskedArray"):
        f([np.ma.masked_array([1.0, 2.0, 1e9], mask=[0, 0, 1])])
    with pytest.raises(TypeError, match="MaskedArray"):
        tj.jit(np.sum)(np.ma.masked_array([1.0, 2.0, 1e9], mask=[0, 0, 1]))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_matrix_is_refused():
    a = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(TypeError, match="matrix"):
        tj.jit(lambda a, b: a * b)(a, a)


def test_captured_masked_constant_is_refused():
    m = np.ma.masked_array([1.0, 2.0, 1e9], mask=[0, 0, 1])
    with pytest.raises(TypeError, match="MaskedArray"):
        tj.jit(lambda x: np.sum(x * m))(np.ones(3))


def test_plain_views_and_memmaps_are_accepted(tmp_path):
    base = np.arange(12.0)
    view = base[::3]
    np.testing.assert_allclose(tj.jit(np.sum)(view), np.sum(view))
    mm = np.memmap(tmp_path / "a.bin", dtype=np.float64, mode="w+", shape=(4,))
    mm[:] = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(tj.jit(lambda a: a * 2.0)(mm), np.asarray(mm) * 2.0)
    np.testing.assert_allclose(tj.grad(lambda a: np.sum(a ** 2))(mm), 2.0 * np.asarray(mm))


# ---- the bound ----------------------------------------------------------------------------------

def test_least_recently_used_program_is_dropped():
    f = tj.jit(lambda x: x * 2.0, cache_limit=3)
    for n in (1, 2, 3):
        np.testing.assert_array_equal(f(np.ones(n)), np.full(n, 2.0))
    f(np.ones(1))                                     # 1 is now the most recently used
    f(np.ones(4))                                     # drops 2
    assert f.cache_size == 3
    count = f.trace_count
    f(np.ones(1)), f(np.ones(3)), f(np.ones(4))
    assert f.trace_count == count                     # still cached
    np.testing.assert_array_equal(f(np.ones(2)), np.full(2, 2.0))
    assert f.trace_count == count + 1                 # recompiled
    assert f.cache_size == 3


def test_many_shapes_stay_within_the_limit():
    f = tj.jit(lambda x: np.sum(x * x), cache_limit=8)
    for n in range(1, 60):
        x = np.arange(float(n))
        np.testing.assert_allclose(f(x), np.sum(x * x))
        assert f.cache_size <= 8
    assert len(f._fast) <= 8


def test_cache_limit_is_checked(monkeypatch):
    with pytest.raises(ValueError, match="cache_limit"):
        tj.jit(np.sum, cache_limit=0)
    monkeypatch.setenv("TRACEJIT_CACHE_LIMIT", "lots")
    with pytest.raises(ValueError, match="TRACEJIT_CACHE_LIMIT"):
        tj.jit(np.sum)
    monkeypatch.setenv("TRACEJIT_CACHE_LIMIT", "2")
    assert tj.jit(np.sum).cache_limit == 2


# ---- threads ------------------------------------------------------------------------------------

def test_concurrent_first_calls_compile_once():
    f = tj.jit(lambda x: np.tanh(x) * 3.0)
    x = np.linspace(-2.0, 2.0, 1000)
    barrier = threading.Barrier(6)
    results, failures = [], []

    def call():
        try:
            barrier.wait()
            results.append(f(x))
        except Exception as exc:                # reported below, in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert f.trace_count == 1
    for r in results:
        np.testing.assert_allclose(r, np.tanh(x) * 3.0, rtol=1e-15)
