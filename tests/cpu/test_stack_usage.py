"""Generated code keeps nothing on the stack whose size grows with the shapes or the program:
column reductions' accumulator arrays, the chunks' partial accumulators and the argument table
live in the arena. Programs that used to overflow a thread's stack run in a subprocess (a
segfault fails the test instead of killing pytest) and are checked against NumPy; the LLVM
text of a corpus is checked for array allocas.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.llvm import COLUMN_MAX, MAX_THREADS

SIBLING_SUMS = """
    import threading
    import numpy as np
    import tracejit as tj

    n, in_thread = {n}, {in_thread}
    x = np.random.default_rng(0).standard_normal((4, 8192))
    f = tj.jit(lambda x: tuple(np.sum(x * (i + 1.0), axis=0) for i in range(n)))
    assert len(f.program(x).kernels) == 1            # the sums are sibling-fused
    out = {{}}
    if in_thread:
        threading.stack_size(1 << 20)                # 1 MiB
        t = threading.Thread(target=lambda: out.setdefault("got", f(x)))
        t.start()
        t.join()
    else:
        out["got"] = f(x)
    assert len(out["got"]) == n
    for i, got in enumerate(out["got"]):
        np.testing.assert_allclose(got, np.sum(x * (i + 1.0), axis=0), rtol=1e-12, atol=1e-12)
    print("ok")
"""


@pytest.fixture(autouse=True)
def no_disk_cache(monkeypatch):
    """Every program is compiled by LLVM; no test reads or writes the user's cache."""
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", "0")


def run_isolated(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (
        f"exit status {proc.returncode}\n{proc.stderr[-3000:]}")


@pytest.mark.parametrize("n, in_thread", [(20, True), (140, False)],
                         ids=["20-sums-in-a-1MiB-thread", "140-sums-in-the-main-thread"])
def test_sibling_fused_column_sums_do_not_overflow_the_stack(n, in_thread):
    run_isolated(SIBLING_SUMS.format(n=n, in_thread=in_thread))


def rand(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# Programs whose loop nests need per-column or per-thread arrays, with their arguments.
CORPUS = {
    "column sums of every kind": (
        lambda x, i: (np.sum(x, axis=0), np.max(x, axis=0), np.min(x * 2, axis=0),
                      np.prod(x[:3], axis=0), np.sum(i, axis=0), np.any(x > 1, axis=0),
                      np.sum(x.astype(np.float32), axis=0)),
        (rand((5, 300)), np.arange(1500, dtype=np.int32).reshape(5, 300))),
    "the widest column reduction": (lambda x: np.sum(x, axis=0), (rand((3, COLUMN_MAX)),)),
    "threaded column sums": (lambda x: (np.sum(x, axis=0), np.max(x, axis=0)),
                             (rand((256, 4096), np.float32),)),
    "full reductions": (lambda x: (np.sum(x), np.max(x), np.sum(x > 0), np.prod(x[:4, :4])),
                        (rand((64, 300)),)),
    "threaded full reductions": (lambda x: (np.sum(x), np.min(x)), (rand(1 << 21),)),
    "a dot's column-sum epilogue": (lambda x, w: np.sum(np.tanh(x @ w), axis=0),
                                    (rand((40, 64)), rand((64, 100), seed=1))),
    "many arguments": (lambda *xs: sum(xs[1:], xs[0]), tuple(rand(3, seed=s) for s in range(80))),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_no_array_on_the_stack(name):
    """Every alloca is a scalar, but for the fixed tables of MAX_THREADS entries that start
    threads; and the numbers are NumPy's."""
    f, args = CORPUS[name]
    j = tj.jit(f)
    for line in j.dump(*args)["llvm"].splitlines():
        m = re.search(r"= alloca [^,]+(?:, i\d+ (\d+))?", line)
        if m and m.group(1):
            assert int(m.group(1)) <= MAX_THREADS, f"an array on the stack: {line.strip()}"
    got, want = j(*args), f(*args)
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,), strict=True):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=1e-5 if np.asarray(w).dtype == np.float32
                                   else 1e-10, atol=1e-6 * float(np.max(np.abs(w), initial=1)))
