"""Native memory of compiled programs: compiling again and again, or one jitted function over
many shapes, keeps the resident set flat; a dropped, evicted or closed program frees its
machine code. The RSS checks run in a fresh process each (RSS read from /proc/self/statm
after `malloc_trim`), with the disk cache off so that every compile runs LLVM."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest

import tracejit as tj

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="reads the resident set from /proc")

MEASURE = """
import ctypes, gc, os, sys
import numpy as np
import tracejit as tj
libc = ctypes.CDLL(None)
PAGE = os.sysconf("SC_PAGE_SIZE")

def rss_mb():
    gc.collect()
    libc.malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6

x = np.arange(5.0)
"""


def measure(body: str) -> list[float]:
    """Run MEASURE + body in a fresh process; the numbers it prints, one a line."""
    env = {**os.environ, "TRACEJIT_CACHE_DIR": "off"}
    env.pop("TRACEJIT_CACHE_LIMIT", None)
    proc = subprocess.run([sys.executable, "-c", MEASURE + body], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [float(line) for line in proc.stdout.split()]


def test_rss_is_flat_over_500_compiles():
    """500 compiles of one small function, each by a new jit, every one dropped: the resident
    set grows by less than 8 MB (it grew by ~40 MB when LLVM's pass managers and each
    program's code generator were never freed)."""
    before, after = measure("""
def once():
    f = tj.jit(lambda x: x * 2.0 + 1.0)
    assert np.array_equal(f(x), x * 2.0 + 1.0)
for _ in range(30):
    once()
print(rss_mb())
for _ in range(500):
    once()
print(rss_mb())
""")
    assert after - before < 8, f"resident set grew by {after - before:.1f} MB"


def test_rss_is_bounded_over_many_shapes():
    """One jitted function called with 250 shapes keeps its 64 most recent programs (the
    default limit): the resident set stays under 20 MB above where it started (~80 MB when
    each program kept its own code generator), and the last 100 shapes, all past the limit,
    add less than 4 MB."""
    start, middle, end = measure("""
for i in range(10):
    tj.jit(lambda x: x * 3.0)(np.ones(i + 1))
start = rss_mb()
f = tj.jit(lambda x: x * 2.0 + 1.0)
assert f.cache_limit == 64
for i in range(250):
    y = np.ones(i + 1)
    assert np.array_equal(f(y), y * 3.0)
    if i == 149:
        middle = rss_mb()
print(start, middle, rss_mb())
""")
    assert end - start < 20, f"resident set grew by {end - start:.1f} MB"
    assert end - middle < 4, f"the last 100 shapes added {end - middle:.1f} MB"


def scale(x):
    return np.sum(np.sin(x) * 2.0 + 1.0)


def test_close_frees_the_program_and_may_be_repeated():
    x = np.linspace(0.0, 1.0, 7)
    native = tj.jit(scale).compiled(x).native
    first = native([x])[0]
    native.close()
    native.close()
    with pytest.raises(RuntimeError, match="compiled program of scale was closed"):
        native([x])
    with pytest.raises(RuntimeError, match="was closed"):
        native.kernel_cycles()
    np.testing.assert_allclose(first, scale(x), rtol=1e-13)   # results outlive the program


def test_a_dropped_or_evicted_program_is_freed_at_once():
    """No reference cycle holds a program: it is freed when the last reference goes, by
    eviction from a jitted function's cache or with the function itself (no garbage
    collection needed), and its engine with it."""
    from tracejit.runtime.cpu import _Engine
    f = tj.jit(scale, cache_limit=1)
    a, b = np.ones(3), np.ones(4)
    np.testing.assert_allclose(f(a), scale(a), rtol=1e-13)
    program = weakref.ref(f.compiled(a).native)
    engine = weakref.ref(program()._native)
    assert isinstance(engine(), _Engine)
    gc.disable()
    try:
        np.testing.assert_allclose(f(b), scale(b), rtol=1e-13)     # evicts a's program
        assert program() is None and engine() is None
        kept = weakref.ref(f.compiled(b).native)
        del f
        assert kept() is None
    finally:
        gc.enable()


def test_close_while_other_threads_call():
    """Closing while calls run in other threads: each call returns the right numbers or
    raises the closed error, never runs in freed code; every thread ends."""
    x = np.linspace(0.0, 1.0, 50_000)
    want = scale(x)
    native = tj.jit(scale).compiled(x).native
    outcomes: list = []
    start = threading.Barrier(5)

    def caller():
        start.wait()
        for _ in range(200):
            try:
                got = native([x])[0]
            except RuntimeError as e:
                outcomes.append(str(e))
                return
            outcomes.append(abs(got - want) <= 1e-9 * abs(want))

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    start.wait()
    native.close()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert all(o is True or "was closed" in o for o in outcomes), outcomes
