"""The NumPy oracle shared by test_numpy_forward, test_indexing and test_promotion.

`check(f, *args)` runs `f` with NumPy and through `tj.jit(f)` (the default backend, cpu), fused
and unfused, and compares the results leafwise (tuples, lists and dicts of results): exact
dtype and shape, exact values for integers and booleans, and for floats a relative tolerance of
1e-6 (f32) or 1e-12 (f64), NaN where NumPy has NaN, infinities with their sign. It also checks
that the traced Function passes `tj.verify`.
"""

from __future__ import annotations

import warnings

import numpy as np

import tracejit as tj
from tracejit.ir import DTYPES

RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12,
        np.dtype(np.float16): 1e-3}
if "bf16" in DTYPES:
    RTOL[DTYPES["bf16"]] = 8e-3


def is_float_dtype(dt) -> bool:
    """A float dtype of NumPy's or ml_dtypes' (bfloat16's kind is "V")."""
    return np.dtype(dt).kind == "f" or np.dtype(dt) == DTYPES.get("bf16")


def leaves(tree, path="result"):
    """[(path, leaf)] of a pytree of results, dict keys sorted."""
    if isinstance(tree, (tuple, list)):
        return [item for i, v in enumerate(tree) for item in leaves(v, f"{path}[{i}]")]
    if isinstance(tree, dict):
        return [item for k in sorted(tree) for item in leaves(tree[k], f"{path}[{k!r}]")]
    return [(path, tree)]


def structure(tree):
    if isinstance(tree, (tuple, list)):
        return (type(tree).__name__, tuple(structure(v) for v in tree))
    if isinstance(tree, dict):
        return ("dict", tuple((k, structure(tree[k])) for k in sorted(tree)))
    return "*"


def assert_same(got, want, rtol=None, atol=0.0, signed_zeros=True, where="result"):
    """`got` (from tracejit) equals `want` (from NumPy) in dtype, shape and value."""
    g, w = np.asarray(got), np.asarray(want)
    assert g.dtype == w.dtype, f"{where}: dtype {g.dtype}, NumPy gives {w.dtype}"
    assert g.shape == w.shape, f"{where}: shape {g.shape}, NumPy gives {w.shape}"
    if g.ndim == 0:
        # Documented: rank-0 results come back as NumPy scalars, like np.sum's.
        assert isinstance(got, np.generic), f"{where}: a 0-d result should be a NumPy scalar"
    if is_float_dtype(w.dtype):
        tol = RTOL[w.dtype] if rtol is None else rtol
        if w.dtype.itemsize == 2:                # compared as the float32 of the same values
            g, w = g.astype(np.float32), w.astype(np.float32)
        np.testing.assert_allclose(g, w, rtol=tol, atol=atol, equal_nan=True, err_msg=where)
        if signed_zeros:
            zero = w == 0
            np.testing.assert_array_equal(np.signbit(g[zero]), np.signbit(w[zero]),
                                          err_msg=f"{where}: sign of zero differs")
    else:
        np.testing.assert_array_equal(g, w, err_msg=where, strict=True)


def numpy_result(f, *args):
    """f(*args) run by NumPy, quietly (the interpreter too ignores inf/NaN warnings)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return f(*args)


_CUDA: list = []


def cuda_backend() -> str | None:
    """The CUDA backend the tests run: "cuda" where a GPU is usable, else "cuda-emulator"
    (the generated CUDA C on the host) where a host C++ compiler is, else None; always the
    emulator when it is built with a sanitizer (TRACEJIT_EMULATOR_SANITIZE)."""
    if not _CUDA:
        import os
        import shutil
        if os.environ.get("TRACEJIT_TEST_CUDA", "1") == "0":     # the cpu backend only
            _CUDA.append(None)
            return None
        if os.environ.get("TRACEJIT_EMULATOR_SANITIZE"):         # checking the emulated kernels
            _CUDA.append("cuda-emulator")
            return _CUDA[0]
        try:
            from tracejit.runtime.cuda_pycuda import PycudaDevice
            PycudaDevice.get()
            _CUDA.append("cuda")
        except Exception:
            _CUDA.append("cuda-emulator" if shutil.which("g++") else None)
    return _CUDA[0]


host = tj.to_host        # results with device arrays copied to NumPy


def check(f, *args, rtol=None, atol=0.0, signed_zeros=True, static_argnums=(), cuda=True):
    """Compare `tj.jit(f)(*args)` with `f(*args)` run by NumPy; verify the traced IR. The cpu
    backend runs fused and unfused, the CUDA backend (`cuda_backend()`) fused unless `cuda`
    is false.

    Returns NumPy's result, for tests that also assert something about it.
    """
    want = numpy_result(f, *args)
    runs = [tj.jit(f, static_argnums=static_argnums, fuse=fuse) for fuse in (True, False)]
    if cuda and cuda_backend():
        runs.append(tj.jit(f, static_argnums=static_argnums, backend=cuda_backend()))
        # Compiled first: the emulator's host compiler runs while the cpu backend works.
        runs[-1].compiled(*args)
    for jitted in runs:
        backend, fuse = jitted.backend, jitted.options.fuse
        got = host(jitted(*args))
        assert structure(got) == structure(want), \
            f"structure {structure(got)} != {structure(want)}"
        for (where, g), (_, w) in zip(leaves(got), leaves(want)):
            assert_same(g, w, rtol, atol, signed_zeros, f"{where} ({backend}, fuse={fuse})")
    tj.verify(tj.trace(f, *args, static_argnums=static_argnums))
    return want


def numpy_rejects(f, *args) -> bool:
    """True when NumPy itself raises on f(*args) (then tracejit must raise too)."""
    try:
        numpy_result(f, *args)
    except (TypeError, ValueError, IndexError):
        return True
    return False


def rand(shape, dtype="float64", seed=0, low=-3.0, high=3.0):
    """Random data of `dtype`: uniform floats, small integers, or coin flips."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if is_float_dtype(dt):
        return rng.uniform(low, high, shape).astype(dt)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(int(low), int(high) + 1, shape).astype(dt)


def finite_differences(loss, x, eps=1e-6):
    """The gradient of scalar `loss` at float64 `x` by central differences."""
    want = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        want[i] = (loss(x + d) - loss(x - d)) / (2 * eps)
    return want


def grad_check(f, x, second=True, rtol=1e-6, atol=1e-8, cuda=True):
    """tj.grad of sum(f(x) * r), with fixed random weights r, against float64 central finite
    differences: the cpu backend fused and unfused and the CUDA backend (`cuda_backend()`,
    unless `cuda` is false).
    With `second`, the gradient of sum(grad(x) * s) too (second order), against the central
    differences of the first."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(1)
    r = rng.standard_normal(np.shape(numpy_result(f, x)))

    def loss(x):
        return np.sum(f(x) * r)

    backends = [("cpu", True), ("cpu", False)] + ([(cuda_backend(), True)]
                                                  if cuda and cuda_backend() else [])
    want = finite_differences(loss, x)
    for backend, fuse in backends:
        got = host(tj.jit(tj.grad(loss), backend=backend, fuse=fuse)(x))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol,
                                   err_msg=f"gradient ({backend}, fuse={fuse})")
    if second:
        s = rng.standard_normal(x.shape)
        first = tj.jit(tj.grad(loss))

        def loss2(x):
            return np.sum(tj.grad(loss)(x) * s)

        want2 = finite_differences(lambda x: float(np.sum(first(x) * s)), x)
        for fuse in (True, False):
            got = tj.jit(tj.grad(loss2), fuse=fuse)(x)
            np.testing.assert_allclose(got, want2, rtol=1e-5, atol=1e-6,
                                       err_msg=f"second order (fuse={fuse})")
