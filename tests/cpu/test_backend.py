"""The CPU backend end to end: `tj.jit` → Program → LLVM IR → MCJIT object code → one call.

What is checked, every time against NumPy or exact expected values:
the generated LLVM text of three small programs (golden files in `golden/`; run with
`TRACEJIT_UPDATE_GOLDEN=1` to rewrite them) and the vectorisation of an element loop; the disk
cache of object code (hits, corrupt entries, entries of another LLVM, a fresh process); arrays
of more than 2³¹ elements; kernels split over 1, 2 and 3 threads and the float32 sum's accuracy;
non-contiguous, never-mutated and donated arguments; gathers out of bounds; every dtype through
elementwise work, reductions, casts of special values, integer division corner cases and dots
(BLAS and loops, batched, with prologues and epilogues), fused and unfused.

Programs are compiled afresh (the disk cache is off) unless a test sets a cache directory.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.llvm import PARALLEL_MIN
from tracejit.runtime.cache import DiskCache
from tracejit.runtime.cpu import host

GOLDEN = Path(__file__).parent / "golden"
FUSE = pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
FLOATS = [np.float32, np.float64]
INTS = [np.int32, np.int64]
DTYPES = FLOATS + INTS + [np.bool_]
# Relative tolerance of results that round differently from NumPy (sums in another order,
# the backend's own transcendentals): a few units in the last place, for short reductions.
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


@pytest.fixture(autouse=True)
def no_disk_cache(monkeypatch):
    """Every program is compiled by LLVM; no test reads or writes the user's cache."""
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", "0")


def name_of(dtype) -> str:
    return np.dtype(dtype).name


def array(shape, dtype, seed=0) -> np.ndarray:
    """Test data: normal floats (scale 3), integers in [-9, 9], or random bools."""
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-9, 10, shape).astype(dtype)
    return (3 * rng.standard_normal(shape)).astype(dtype)


def assert_same(got, want) -> None:
    """Equal shape, dtype and values (NaN where NumPy has NaN)."""
    got, want = np.asarray(got), np.asarray(want)
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    np.testing.assert_array_equal(got, want, strict=True)


def assert_close(got, want, scale=None) -> None:
    """Within RTOL of NumPy's result, relative to `scale` (default: the largest |want|)."""
    got, want = np.asarray(got), np.asarray(want)
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
        return
    rtol = RTOL[want.dtype]
    finite = want[np.isfinite(want)]
    scale = scale if scale is not None else (np.max(np.abs(finite)) if finite.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True)


def numpy_result(f, *args):
    with np.errstate(all="ignore"):
        return f(*args)


def jit_result(f, *args, fuse=True):
    with np.errstate(all="ignore"):
        return tj.jit(f, fuse=fuse)(*args)


def run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python process with `env` added to this one's environment."""
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


# ---------------------------------------------------------------------------------------------
# 1. the generated LLVM IR


def scale_add(x, y):
    return x * 2.0 + y


def row_sum(x):
    return np.sum(x, axis=1)


def relu_dot(x, w):
    return np.maximum(x @ w, 0)


F32 = np.float32
GOLDEN_CASES = {
    "scale_add": (scale_add, (np.arange(4, dtype=F32), np.full(4, 0.5, F32))),
    "row_sum": (row_sum, (np.arange(15, dtype=F32).reshape(3, 5),)),
    "relu_dot": (relu_dot, (np.arange(-3, 3, dtype=F32).reshape(2, 3),
                            np.arange(12, dtype=F32).reshape(3, 4) - 5)),
}


def llvm_text(f, *args) -> str:
    """The generated module's text, without the target lines (they name the host)."""
    text = tj.jit(f).dump(*args)["llvm"]
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("target "))


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_llvm_text_matches_golden_file(name):
    f, args = GOLDEN_CASES[name]
    if name == "relu_dot" and not host()["blas"]:
        pytest.skip("the golden dot calls BLAS, and no BLAS is in use (TRACEJIT_BLAS=0?)")
    assert_same(tj.jit(f)(*args), f(*args))      # small integers: every result is exact
    text = llvm_text(f, *args)
    path = GOLDEN / f"{name}.ll"
    if os.environ.get("TRACEJIT_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), \
        f"the LLVM text of {name} changed; TRACEJIT_UPDATE_GOLDEN=1 rewrites {path}"


def test_golden_files_are_readable():
    """Loop indices are named after their axes, pointers after their buffers."""
    text = (GOLDEN / "row_sum.ll").read_text()
    for name in ('%"i0" = phi', '%"i1" = phi', '%"v0.ptr"', '%"v1.acc"', '%"v0.0" = load'):
        assert name in text
    assert "tj_cblas_sgemm" in (GOLDEN / "relu_dot.ll").read_text()


def test_llvm_values_are_named_after_ir_values():
    f, args = GOLDEN_CASES["scale_add"]
    text = llvm_text(f, *args)
    assert '%"v2" = fmul float %"v0.0"' in text
    assert '%"v3" = fadd float %"v2", %"v1.1"' in text


def test_large_element_loop_is_vectorised():
    x = np.linspace(-1, 1, 4096, dtype=np.float32)
    y = x[::-1].copy()
    j = tj.jit(scale_add)
    assert_same(j(x, y), x * np.float32(2) + y)
    optimised = j.dump(x, y)["llvm optimized"]
    assert "<8 x float>" in optimised or "<16 x float>" in optimised


# ---------------------------------------------------------------------------------------------
# 2. the disk cache of object code

# Defined in this process and in fresh ones: the same source gives the same LLVM text. A dot
# makes the cached object refer to the BLAS symbols, which the loading process must provide.
CACHED_SOURCE = textwrap.dedent("""
    import numpy as np

    def cached(x, w, b):
        return np.sum(np.maximum(x @ w + b, 0.5) * 2.0, axis=1)

    def cached_inputs():
        rng = np.random.default_rng(7)
        return tuple(rng.standard_normal(s).astype(np.float32) for s in ((6, 5), (5, 4), (4,)))
""")
_namespace: dict = {}
exec(CACHED_SOURCE, _namespace)
cached, cached_inputs = _namespace["cached"], _namespace["cached_inputs"]


def cache_entries(directory: Path) -> list[Path]:
    """The entry files in the folders of a disk cache (not its key file)."""
    return sorted(p for p in directory.glob("*/*") if p.is_file())


def cached_call():
    """A fresh jit of `cached` on its inputs: (result, the CpuProgram's CompileInfo)."""
    j = tj.jit(cached)
    args = cached_inputs()
    return j(*args), j.compiled(*args).native.info


def test_disk_cache_hit_in_the_same_process(cache_dir):
    want = cached(*cached_inputs())
    first, info = cached_call()
    assert info.source == "compiled"
    assert info.cache_miss == "no entry for this IR"
    assert_close(first, want)
    assert len(cache_entries(cache_dir)) == 1
    again, info = cached_call()
    assert info.source == "disk cache" and info.cache_miss == ""
    assert_same(again, first)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_entry_is_removed_and_recompiled(cache_dir, damage):
    first, _ = cached_call()
    (entry,) = cache_entries(cache_dir)
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        del data[-100:]
    else:
        data[-50] ^= 0x40                  # in the object code: a MAC mismatch
    entry.write_bytes(bytes(data))
    again, info = cached_call()
    assert info.source == "compiled"
    assert "corrupt" in info.cache_miss and "removed" in info.cache_miss
    assert_same(again, first)
    # The recompiled object replaced the bad entry.
    assert cache_entries(cache_dir) == [entry]
    assert cached_call()[1].source == "disk cache"


def test_entry_of_another_llvm_is_not_used(cache_dir):
    first, _ = cached_call()
    (entry,) = cache_entries(cache_dir)
    _, key_line, _, payload = entry.read_bytes().split(b"\n", 3)
    key = json.loads(key_line)
    entry.unlink()
    DiskCache(cache_dir).store({**key, "llvm": "15.0.7"}, payload)
    again, info = cached_call()
    assert info.source == "compiled"
    assert "llvm (15.0.7 != " in info.cache_miss
    assert_same(again, first)
    assert len(cache_entries(cache_dir)) == 2


def test_fresh_process_loads_the_warm_cache(cache_dir, tmp_path):
    first, info = cached_call()
    assert info.source == "compiled"
    code = CACHED_SOURCE + textwrap.dedent("""
        import json
        import tracejit as tj
        j = tj.jit(cached)
        out = j(*cached_inputs())
        info = j.compiled(*cached_inputs()).native.info
        print(json.dumps({"source": info.source, "out": out.tolist()}))
    """)
    proc = run_python(code, {"TRACEJIT_CACHE_DIR": str(cache_dir)}, tmp_path)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["source"] == "disk cache"
    assert_same(np.array(report["out"], np.float32), first)
    assert_close(first, cached(*cached_inputs()))


# ---------------------------------------------------------------------------------------------
# 3. more than 2**31 elements


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def test_arrays_beyond_2_to_the_31_elements():
    if available_bytes() < 8 << 30:
        pytest.skip("needs about 8 GB of available memory (two 2 GB bool arrays)")
    n = 2**31 + 5
    true_at = [7, 2**31 - 1, 2**31, 2**31 + 3]
    reversed_at = [n - 1 - i for i in true_at]
    x = np.zeros(n, np.bool_)      # pages never written stay unallocated
    x[true_at] = True
    y = None
    try:
        # A threaded full reduction, and a serial arg-reduction over a view with an offset.
        assert_same(tj.jit(np.sum)(x), np.int64(4))
        assert_same(tj.jit(lambda x: np.argmax(x[8:]))(x), np.int64(2**31 - 9))
        # Elementwise through a reversed view, whose reads start beyond 2**31.
        y = tj.jit(lambda x: x ^ x[::-1])(x)
        assert y.shape == (n,) and y.dtype == np.bool_
        assert np.count_nonzero(y) == 8 and y[true_at + reversed_at].all()
    finally:
        del x, y                   # a failed test's traceback must not keep 4 GB alive


# ---------------------------------------------------------------------------------------------
# 4. threads


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"{n}threads")
def threads(request, monkeypatch) -> int:
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", str(request.param))
    return request.param


def assert_sum_close(got, x, axis=None, bound=1e-6):
    """|got - the float64 sum| <= bound * the sum of |x| (per result element)."""
    exact = np.sum(x, axis=axis, dtype=np.float64)
    magnitude = np.sum(np.abs(x), axis=axis, dtype=np.float64)
    assert np.asarray(got).dtype == x.dtype
    assert np.all(np.abs(np.asarray(got, np.float64) - exact) <= bound * magnitude)


def is_threaded(j, *args) -> bool:
    return "tj.parallel_for" in j.dump(*args)["llvm"]


@pytest.mark.parametrize("shape", [(2048, 1024), (2, 2**20)], ids=["wide", "two-rows"])
def test_threaded_elementwise_with_broadcast(threads, shape):
    assert math.prod(shape) >= PARALLEL_MIN
    x = array(shape, np.float32)
    row = array(shape[1:], np.float32, seed=1)
    col = array((shape[0], 1), np.float32, seed=2)
    j = tj.jit(lambda x, r, c: x * r - c)
    assert_same(j(x, row, col), x * row - col)
    assert is_threaded(j, x, row, col)


@pytest.mark.parametrize("shape", [(2**21,), (2048, 1024), (3, 2**20)],
                         ids=["flat", "wide", "three-rows"])
def test_threaded_full_sum(threads, shape):
    x = array(shape, np.float32) + 1
    j = tj.jit(np.sum)
    got = j(x)
    assert_sum_close(got, x)
    assert j(x) == got                    # deterministic for a given thread count
    assert is_threaded(j, x)


def test_threaded_full_reductions_of_every_kind(threads):
    # Several accumulators in one kernel: the chunks' partials are combined per reduction.
    x = array((3, 5, 2**17), np.float32)
    f = (lambda x: (np.sum(x), np.max(x), np.min(x), np.sum(x) / np.max(x)))
    total, high, low, ratio = tj.jit(f)(x)
    assert_sum_close(total, x)
    assert_same(high, np.max(x))
    assert_same(low, np.min(x))
    assert abs(ratio - np.sum(x, dtype=np.float64) / np.max(x)) <= 1e-6 * np.sum(np.abs(x))
    i = np.random.default_rng(1).integers(-2**31, 2**31, 2**21).astype(np.int32)
    for red in (np.sum, np.max, np.prod):
        assert_same(tj.jit(red)(i), red(i))          # wrapping, in any order, is exact
    b = np.zeros(2**21, np.bool_)
    b[-1] = True                                   # in the last chunk
    assert_same(tj.jit(np.any)(b), np.True_)
    assert_same(tj.jit(np.all)(~b), np.False_)
    d = array(2**21, np.float64)
    assert abs(tj.jit(np.sum)(d) - math.fsum(d)) <= 1e-13 * np.sum(np.abs(d))


def test_threaded_row_and_column_reductions(threads):
    x = array((2048, 1024), np.float32) + 1
    assert_sum_close(tj.jit(lambda x: np.sum(x, axis=1))(x), x, axis=1)
    assert_sum_close(tj.jit(lambda x: np.sum(x, axis=0))(x), x, axis=0)
    assert_same(tj.jit(lambda x: np.max(x, axis=0))(x), np.max(x, axis=0))
    assert_same(tj.jit(lambda x: np.argmin(x, axis=1))(x), np.argmin(x, axis=1))


def test_threaded_dot_epilogue(threads):
    x, w, b = array((1024, 64), np.float32), array((64, 2048), np.float32, 1), \
        array(2048, np.float32, 2)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    want = np.sum(np.maximum(x64 @ w64 + b64, 0), axis=1)
    got = tj.jit(lambda x, w, b: np.sum(np.maximum(x @ w + b, 0), axis=1))(x, w, b)
    assert got.dtype == np.float32
    magnitude = np.sum(np.abs(x64) @ np.abs(w64) + np.abs(b64), axis=1)
    assert np.all(np.abs(got - want) <= 1e-5 * magnitude)


@FUSE
def test_threaded_value_and_grad(threads, fuse):
    def loss(x, y, z):
        return np.sum((np.tanh(x) * y + z) ** 2)

    x, y, z = (array((2048, 1024), np.float32, seed) for seed in range(3))
    value, grads = tj.jit(tj.value_and_grad(loss, argnums=(0, 1, 2)), fuse=fuse)(x, y, z)
    x64, y64, z64 = (a.astype(np.float64) for a in (x, y, z))
    t = np.tanh(x64)
    r = t * y64 + z64
    assert value.dtype == np.float32
    assert abs(value - np.sum(r**2)) <= 1e-5 * np.sum(r**2)
    for got, want in zip(grads, (2 * r * y64 * (1 - t**2), 2 * r * t, 2 * r)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.max(np.abs(want)))


@pytest.fixture(scope="module")
def uniform_2_24():
    x = np.random.default_rng(3).random(2**24, dtype=np.float32)
    return x, math.fsum(x.astype(np.float64))


def test_float32_sum_is_accurate_to_2_to_the_minus_24(threads, uniform_2_24):
    x, exact = uniform_2_24
    got = tj.jit(np.sum)(x)
    assert got.dtype == np.float32
    assert abs(float(got) - exact) <= 2.0**-24 * exact


# ---------------------------------------------------------------------------------------------
# 5. argument layouts, immutability, donation


def views() -> dict[str, np.ndarray]:
    base = array((8, 10), np.float32)
    return {"transposed": base.T, "stepped": base[1::2, ::3], "reversed": base[::-1, ::-2],
            "fortran": np.asfortranarray(base), "column": base[:, 3:4]}


def reduce_exp(x):
    return np.sum(np.exp(x) * 2 - x, axis=0)


def affine(x):
    return x * 3 - 1


def gram(x):
    return x.T @ x


@FUSE
@pytest.mark.parametrize("layout", sorted(views()))
@pytest.mark.parametrize("f", [reduce_exp, affine, gram], ids=lambda f: f.__name__)
def test_non_contiguous_inputs_give_numpys_answers(layout, f, fuse):
    x = views()[layout]
    base = x.base if x.base is not None else x
    saved, saved_base = x.copy(), base.copy()
    assert_close(tj.jit(f, fuse=fuse)(x), f(x))
    assert_same(x, saved)
    assert_same(base, saved_base)


@FUSE
@pytest.mark.parametrize("f", [lambda x: (x,), lambda x: (x.T,), lambda x: (x.reshape(-1),),
                               lambda x: (x, x[::-1] + 0, x)],
                         ids=["identity", "transpose", "reshape", "several"])
def test_results_never_alias_inputs(f, fuse):
    x = array((3, 4), np.float64)
    saved = x.copy()
    results = tj.jit(f, fuse=fuse)(x)
    for got, want in zip(results, f(saved), strict=True):
        assert_same(got, want)
        assert not np.shares_memory(got, x)
        got[...] = -7                     # writing a result leaves the input alone
    assert_same(x, saved)


@FUSE
def test_donated_arguments_are_updated_in_place(fuse):
    def step(params, grads, lr):
        new = {k: params[k] - lr * grads[k] for k in params}
        return new, sum(np.sum(g * g) for g in grads.values())

    params = {"w": array((4, 3), np.float32), "b": array(3, np.float32, 1)}
    grads = {"w": array((4, 3), np.float32, 2), "b": array(3, np.float32, 3)}
    saved_params = {k: v.copy() for k, v in params.items()}
    saved_grads = {k: v.copy() for k, v in grads.items()}
    arrays = dict(params)
    new, norm = tj.jit(step, fuse=fuse, donate_argnums=0)(params, grads, np.float32(0.5))
    want_new, want_norm = step(saved_params, saved_grads, np.float32(0.5))
    for k in params:
        assert new[k] is arrays[k]            # the caller's arrays, updated
        assert_same(arrays[k], want_new[k])
        assert_same(grads[k], saved_grads[k])  # not donated: untouched
    assert_close(norm, want_norm)


@FUSE
def test_donated_argument_read_by_other_results(fuse):
    # Every result is computed from the old values before any is written back.
    p = array(5, np.float64)
    saved = p.copy()
    out, twice = tj.jit(lambda p: (p - 1, p * 2), fuse=fuse, donate_argnums=0)(p)
    assert out is p
    assert_same(p, saved - 1)
    assert_same(twice, saved * 2)


# ---------------------------------------------------------------------------------------------
# 6. gathers out of bounds


@FUSE
@pytest.mark.parametrize("index_dtype", INTS, ids=name_of)
def test_gather_wraps_negative_indices(fuse, index_dtype):
    x = np.arange(10, dtype=np.float32) * 1.5
    idx = np.array([0, -1, -10, 9, 3], index_dtype)
    assert_same(tj.jit(lambda x, i: x[i] * 2, fuse=fuse)(x, idx), x[idx] * 2)
    x2 = array((3, 4), np.float64)
    rows, cols = np.array([2, -3, 0]), np.array([-1, 3, -4])
    assert_same(tj.jit(lambda x, i, k: x[i, k], fuse=fuse)(x2, rows, cols), x2[rows, cols])


@FUSE
@pytest.mark.parametrize("bad, message", [
    (10, "index 10 is out of bounds for axis 0 with size 10"),
    (-11, "index -11 is out of bounds for axis 0 with size 10"),
    (2**40, f"index {2**40} is out of bounds for axis 0 with size 10"),
])
def test_gather_out_of_bounds_raises(fuse, bad, message):
    x = np.arange(10, dtype=np.float32)
    j = tj.jit(lambda x, i: x[i] + 1, fuse=fuse)
    with pytest.raises(IndexError, match=f"^{message}$"):
        j(x, np.array([0, bad, 3]))
    with pytest.raises(IndexError, match=f"^{message}$"):
        x[np.array([0, bad, 3])]              # the same message as NumPy's
    assert_same(j(x, np.array([1, -1])), x[[1, -1]] + 1)   # and the program still works


@FUSE
def test_gather_out_of_bounds_names_the_axis(fuse):
    x = array((3, 4), np.float64)
    j = tj.jit(lambda x, i, k: x[i, k], fuse=fuse)
    with pytest.raises(IndexError, match="^index -5 is out of bounds for axis 1 with size 4$"):
        j(x, np.array([0, 1]), np.array([0, -5]))
    with pytest.raises(IndexError, match="^index 3 is out of bounds for axis 0 with size 3$"):
        j(x, np.array([3, 1]), np.array([0, 1]))


@FUSE
@pytest.mark.xfail(strict=True, reason="x[:, i] gathers along axis 0 of a transposed copy, and "
                   "both backends report that axis (0) instead of the user's axis 1")
def test_gather_out_of_bounds_on_a_later_axis_names_the_users_axis(fuse):
    x = array((3, 4), np.float64)
    with pytest.raises(IndexError, match="^index 4 is out of bounds for axis 1 with size 4$"):
        tj.jit(lambda x, i: x[:, i], fuse=fuse)(x, np.array([0, 4]))


@FUSE
def test_scatter_add_out_of_bounds_in_a_gradient_raises(fuse):
    x = np.arange(10, dtype=np.float32)
    j = tj.jit(tj.grad(lambda x, i: np.sum(x[i] ** 2)), fuse=fuse)
    with pytest.raises(IndexError, match="^index 12 is out of bounds for axis 0 with size 10$"):
        j(x, np.array([1, 12]))
    want = np.zeros(10, np.float32)
    np.add.at(want, [1, -1, 1], 2 * x[[1, -1, 1]])
    assert_same(j(x, np.array([1, -1, 1])), want)


# ---------------------------------------------------------------------------------------------
# 7. every dtype


def special_floats(dtype) -> np.ndarray:
    """NaN, infinities, signed zeros, values around and far beyond the integer ranges."""
    values = [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 1.5, -2.5, 1e-30, 3e9, -3e9,
              2.0**31, -2.0**31, 2.0**31 - 128, 2.0**63, -2.0**63, 1e20, -1e20, 3e38, -3e38]
    if dtype == np.float64:
        values += [2.0**31 - 1, -2.0**31 - 1, 1e300, -1e300, 5e-324]
    return np.array(values, dtype)


def edge_ints(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.array([info.min, info.min + 1, -7, -1, 0, 1, 7, info.max - 1, info.max], dtype)


def dtype_inputs(dtype):
    """Two (4, 7) arrays with the dtype's special values mixed in."""
    x, y = array((4, 7), dtype, seed=10), array((4, 7), dtype, seed=11)
    if np.issubdtype(dtype, np.floating):
        x[1, 3], y[2, 0], x[3, 5], y[3, 6] = np.nan, np.inf, -0.0, -np.inf
    elif np.issubdtype(dtype, np.integer):
        x.flat[:9], y.flat[5:14] = edge_ints(dtype), edge_ints(dtype)[::-1]
    return x, y


def numeric_ops(x, y):
    return x * y - x + np.abs(y), -x, (x // 3 if x.dtype.kind == "i" else x / 3)


def bool_ops(x, y):
    return (x & y) | ~x, x ^ y, x + y, x * y


def comparisons(x, y):
    return x < y, x == y, x >= y, np.maximum(x, y), np.minimum(x, y)


@FUSE
@pytest.mark.parametrize("dtype", DTYPES, ids=name_of)
def test_elementwise_every_dtype(dtype, fuse):
    x, y = dtype_inputs(dtype)
    fs = [comparisons, bool_ops if dtype == np.bool_ else numeric_ops]
    for f in fs:
        for got, want in zip(jit_result(f, x, y, fuse=fuse), numpy_result(f, x, y), strict=True):
            assert_same(got, want)


REDUCTIONS = [np.sum, np.prod, np.max, np.min]


@FUSE
@pytest.mark.parametrize("dtype", DTYPES, ids=name_of)
@pytest.mark.parametrize("axis", [None, 0, 1], ids=lambda a: f"axis{a}")
def test_reductions_every_dtype(dtype, axis, fuse):
    x = dtype_inputs(dtype)[0]
    if np.issubdtype(dtype, np.floating):
        x = np.where(np.isfinite(x), x, 1).astype(dtype)
    x_nan = x.copy()
    if np.issubdtype(dtype, np.floating):
        x_nan[2, 4] = np.nan                 # max and min propagate NaN
    for red in REDUCTIONS:
        data = x_nan if red in (np.max, np.min) else x
        f = (lambda a, red=red: red(a, axis=axis))
        got, want = jit_result(f, data, fuse=fuse), numpy_result(f, data)
        if red in (np.max, np.min):
            assert_same(got, want)
        else:
            assert_close(got, want)


@FUSE
@pytest.mark.parametrize("dtype", DTYPES, ids=name_of)
@pytest.mark.parametrize("axis", [None, 0, 1], ids=lambda a: f"axis{a}")
def test_argmax_argmin_every_dtype(dtype, axis, fuse):
    x = array((5, 6), dtype, seed=4)
    if np.issubdtype(dtype, np.integer):
        x //= 4                                          # ties: the first wins
    elif np.issubdtype(dtype, np.floating):
        x[1, 2], x[3, 0], x[3, 4] = np.nan, np.nan, np.inf  # the first NaN wins
        x[4] = 2.0
    for red in (np.argmax, np.argmin):
        f = (lambda a, red=red: red(a, axis=axis))
        assert_same(jit_result(f, x, fuse=fuse), f(x))


@FUSE
@pytest.mark.parametrize("src", FLOATS, ids=name_of)
@pytest.mark.parametrize("dst", DTYPES, ids=name_of)
def test_casts_of_special_floats_match_numpy(src, dst, fuse):
    # NaN, infinities and out-of-range values become the minimum integer, as x86 and NumPy do.
    x = special_floats(src)
    assert_same(jit_result(lambda x: x.astype(dst), x, fuse=fuse), numpy_result(
        lambda x: x.astype(dst), x))
    # And in a fused chain with arithmetic around the cast.
    f = (lambda x: (x * 2).astype(dst))
    assert_same(jit_result(f, x, fuse=fuse), numpy_result(f, x))


@FUSE
@pytest.mark.parametrize("src", INTS + [np.bool_], ids=name_of)
@pytest.mark.parametrize("dst", DTYPES, ids=name_of)
def test_casts_of_integers_match_numpy(src, dst, fuse):
    x = np.array([True, False, True]) if src == np.bool_ else edge_ints(src)
    if src == np.int64:
        x = np.concatenate([x, [2**31, -2**31 - 1, 2**53 + 1, 2**40 + 5]]).astype(np.int64)
    assert_same(jit_result(lambda x: x.astype(dst), x, fuse=fuse), x.astype(dst))


@FUSE
@pytest.mark.parametrize("dtype", INTS, ids=name_of)
def test_integer_division_by_zero_and_minus_one(dtype, fuse):
    e = edge_ints(dtype)
    x = np.repeat(e, 5)
    y = np.tile(np.array([0, -1, 1, 3, -3], dtype), len(e))
    for f in (np.floor_divide, np.remainder):
        assert_same(jit_result(f, x, y, fuse=fuse), numpy_result(f, x, y))
    # A divisor that is a constant of the program.
    assert_same(jit_result(lambda x: x // -1, x, fuse=fuse), numpy_result(lambda x: x // -1, x))
    assert_same(jit_result(lambda x: x % 0, x, fuse=fuse), numpy_result(lambda x: x % 0, x))


@FUSE
@pytest.mark.parametrize("dtype", FLOATS, ids=name_of)
def test_float_floor_division_and_remainder(dtype, fuse):
    v = np.array([7, -7, 0.5, -0.0, 0, 1e30, np.inf, np.nan, 3], dtype)
    x, y = np.repeat(v, len(v)), np.tile(v, len(v))
    for f in (np.floor_divide, np.remainder):
        assert_same(jit_result(f, x, y, fuse=fuse), numpy_result(f, x, y))


DOTS = {
    "matrix": (lambda a, b: a @ b, [(4, 5), (5, 3)]),
    "np.dot": (np.dot, [(4, 5), (5, 3)]),
    "transposed": (lambda a, b: a.T @ b.T, [(5, 4), (3, 5)]),
    "strided": (lambda a, b: a[:, ::2] @ b[::-1], [(4, 10), (5, 3)]),
    "vector": (lambda a, b: a @ b, [(5,), (5, 3)]),
    "matrix-vector": (lambda a, b: a @ b, [(4, 5), (5,)]),
    "einsum": (lambda a, b: np.einsum("bij,bjk->bik", a, b), [(2, 4, 5), (2, 5, 3)]),
    "matmul-3d": (np.matmul, [(2, 4, 5), (2, 5, 3)]),
    "matmul-3d-2d": (np.matmul, [(2, 4, 5), (5, 3)]),
    "matmul-3d-transposed": (lambda a, b: np.swapaxes(a, 1, 2) @ b, [(2, 5, 4), (2, 5, 3)]),
    "prologue": (lambda a, b: (a * 2 - 1) @ b, [(4, 5), (5, 3)]),
    "epilogue-row-sum": (lambda a, b, c: np.sum(np.maximum(a @ b + c, 0), axis=1),
                         [(4, 5), (5, 3), (3,)]),
    "epilogue-full-sum": (lambda a, b, c: np.sum(np.maximum(a @ b + c, 0)),
                          [(4, 5), (5, 3), (3,)]),
    "empty-contraction": (lambda a, b: a @ b + 1, [(3, 0), (0, 2)]),
}
FLOAT_DOTS = {
    "tanh-prologue": (lambda a, b: np.tanh(a) @ b, [(4, 5), (5, 3)]),
    "two-prologues": (lambda a, b: np.tanh(a) @ np.exp(b / 4).T, [(4, 5), (3, 5)]),
}


DOT_CASES = [(case, dtype) for case in sorted(DOTS) for dtype in FLOATS + INTS] + \
    [(case, dtype) for case in sorted(FLOAT_DOTS) for dtype in FLOATS]


@FUSE
@pytest.mark.parametrize("case, dtype", DOT_CASES,
                         ids=[f"{case}-{name_of(dtype)}" for case, dtype in DOT_CASES])
def test_dots_every_dtype(case, dtype, fuse):
    f, shapes = {**DOTS, **FLOAT_DOTS}[case]
    args = [array(s, dtype, seed) for seed, s in enumerate(shapes)]
    want = f(*args)
    got = tj.jit(f, fuse=fuse)(*args)
    # Products round differently from NumPy's: bound the error by the magnitudes summed.
    magnitude = f(*[np.abs(a).astype(np.float64) for a in args]) \
        if case not in FLOAT_DOTS else np.max(np.abs(want))
    assert_close(got, want, scale=np.max(magnitude, initial=1.0))


@pytest.mark.skipif(not host()["blas"], reason="no BLAS in use (TRACEJIT_BLAS=0?)")
@pytest.mark.parametrize("dtype", FLOATS + INTS, ids=name_of)
def test_float_dots_call_blas_and_integer_dots_loop(dtype):
    a, b = array((4, 5), dtype), array((5, 3), dtype, 1)
    text = tj.jit(lambda a, b: a @ b).dump(a, b)["llvm"]
    blas = {np.float32: "tj_cblas_sgemm", np.float64: "tj_cblas_dgemm"}.get(dtype)
    assert ("cblas" in text) == (blas is not None)
    if blas is not None:
        assert blas in text


# ---------------------------------------------------------------------------------------------
# 8. no BLAS


def test_dots_without_blas_in_a_fresh_process(tmp_path):
    code = textwrap.dedent("""
        import numpy as np
        import tracejit as tj
        from tracejit.runtime.cpu import host

        def dots(a, b, c, d):
            return (a @ b, np.sum(np.maximum(a @ b + 1, 0), axis=1),
                    np.einsum("bij,bjk->bik", c, d), np.tanh(a.T).T @ b)

        rng = np.random.default_rng(5)
        out = {"blas": np.array(host()["blas"])}
        for dt in (np.float32, np.float64):
            args = [rng.standard_normal(s).astype(dt)
                    for s in ((6, 7), (7, 5), (3, 4, 6), (3, 6, 2))]
            j = tj.jit(dots)
            for k, r in enumerate(j(*args)):
                out[f"{dt.__name__}{k}"] = r
            for k, a in enumerate(args):
                out[f"{dt.__name__}arg{k}"] = a
            out[f"{dt.__name__}calls_blas"] = np.array("cblas" in j.dump(*args)["llvm"])
        np.savez("out.npz", **out)
    """)
    run_python(code, {"TRACEJIT_BLAS": "0", "TRACEJIT_CACHE_DIR": "0"}, tmp_path)
    with np.load(tmp_path / "out.npz") as out:
        assert str(out["blas"]) == ""
        for dt in ("float32", "float64"):
            assert not out[f"{dt}calls_blas"]
            a, b, c, d = (out[f"{dt}arg{k}"] for k in range(4))
            wants = (a @ b, np.sum(np.maximum(a @ b + 1, 0), axis=1),
                     np.einsum("bij,bjk->bik", c, d), np.tanh(a.T).T @ b)
            for k, want in enumerate(wants):
                assert_close(out[f"{dt}{k}"], want, scale=max(1.0, float(np.max(np.abs(want)))))


# ---------------------------------------------------------------------------------------------
# large results are reused once released, never while referenced


@pytest.mark.parametrize("hold", ["array", "view", "nothing"])
def test_large_results_are_reused_only_when_released(hold):
    from tracejit.runtime.cpu import POOL_MIN_BYTES
    n = POOL_MIN_BYTES // 4 + 16
    x = np.arange(n, dtype=np.float32)
    f = tj.jit(lambda x, s: x * s)
    first = f(x, 2.0)
    held = {"array": first, "view": first[::7], "nothing": None}[hold]
    want = np.array(held, copy=True) if held is not None else None
    if hold != "array":
        address = first.ctypes.data
        del first
    second = f(x, 3.0)
    np.testing.assert_array_equal(second, x * np.float32(3.0))
    if held is not None:
        np.testing.assert_array_equal(held, want)          # never written under the user
        assert not np.shares_memory(second, held)
    else:
        assert second.ctypes.data == address                # released: reused, no new pages


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_dot_of_one_computed_operand_with_itself(fuse):
    # Both operands are the same prologue value: it is computed once, into one scratch buffer.
    x = np.random.default_rng(5).standard_normal((3, 3))
    f = tj.jit(lambda x: np.tanh(-x).T @ np.tanh(-x), fuse=fuse)
    np.testing.assert_allclose(f(x), np.tanh(-x).T @ np.tanh(-x), rtol=1e-12, atol=1e-14)
    g = tj.jit(lambda x: np.dot(-x, -x), fuse=fuse)
    np.testing.assert_allclose(g(x[0]), np.dot(-x[0], -x[0]), rtol=1e-12)
