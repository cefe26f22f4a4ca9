"""backend="cuda" on a real GPU (pycuda), against NumPy: skipped where no GPU is usable.

Every test compiles with `tj.jit(..., backend="cuda")`, fused and unfused where fusion changes
the kernels, and compares with NumPy (float64 oracles for float32 work, finite differences or
the cpu backend for gradients). Inputs come as NumPy arrays, as pycuda GPUArrays and as an
object exposing only `__cuda_array_interface__`; results must be GPUArrays (rank 0: NumPy
scalars).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit.runtime.cuda_pycuda import CudaUnavailableError, PycudaDevice


def gpu_unavailable() -> str | None:
    """Why no GPU is usable here, or None."""
    try:
        PycudaDevice.get()
    except CudaUnavailableError as e:
        return str(e)
    return None


REASON = gpu_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no usable GPU: {REASON}")

if REASON is None:
    from pycuda import gpuarray
    from pycuda.gpuarray import GPUArray
else:
    gpuarray = GPUArray = None

BACKEND = "cuda"
FUSE = pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
INPUTS = pytest.mark.parametrize("inputs", ["numpy", "gpuarray", "interface"])
F32, F64, I32, I64, BOOL = (np.dtype(t) for t in ("float32", "float64", "int32", "int64", "bool"))


class Interface:
    """A device array known only by its `__cuda_array_interface__` (as a CuPy array or a
    PyTorch tensor is); it keeps the GPUArray it describes alive."""

    def __init__(self, a):
        self._array = a

    @property
    def __cuda_array_interface__(self):
        return self._array.__cuda_array_interface__


def put(kind: str, a: np.ndarray):
    """`a` as an input of the given kind."""
    if kind == "numpy":
        return a
    g = gpuarray.to_gpu(np.ascontiguousarray(a))
    return g if kind == "gpuarray" else Interface(g)


def host(r) -> np.ndarray | np.generic:
    """A result on the host: GPUArrays copied back; a rank-0 result must be a NumPy scalar."""
    if isinstance(r, np.generic):
        return r
    assert isinstance(r, GPUArray), f"a result is a {type(r).__name__}, not a GPUArray"
    return r.get()


def rand(shape, dtype, seed=0, low=-1.0, high=1.0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return rng.random(shape) < 0.5
    if dtype.kind == "i":
        return rng.integers(-1000, 1000, shape).astype(dtype)
    return rng.uniform(low, high, shape).astype(dtype)


def assert_matches(got, want, rtol=None, atol=0.0):
    """`got` (a device result) equals NumPy's `want` in dtype, shape and value: exact for
    integers and booleans; floats within `rtol` (by default 1e-5 for float32, 1e-12 for
    float64) and `atol`."""
    g = host(got)
    w = np.asarray(want)
    assert g.dtype == w.dtype, f"dtype {g.dtype}, NumPy gives {w.dtype}"
    assert np.shape(g) == w.shape, f"shape {np.shape(g)}, NumPy gives {w.shape}"
    if w.ndim == 0:
        assert isinstance(got, np.generic), "a rank-0 result should be a NumPy scalar"
    if w.dtype.kind == "f":
        tol = (1e-5 if w.dtype == F32 else 1e-12) if rtol is None else rtol
        np.testing.assert_allclose(g, w, rtol=tol, atol=atol)
    else:
        np.testing.assert_array_equal(g, w, strict=True)


def cuda(f, **options):
    return tj.jit(f, backend=BACKEND, **options)


def test_device_is_named():
    device = PycudaDevice.get()
    assert device is PycudaDevice.get()
    assert device.arch.startswith("sm_") and device.arch in device.name
    assert device.multiprocessors > 0 and device.threads_per_multiprocessor >= 1024


# ---------------------------------------------------------------------------------------------
# elementwise


def chain(x, y):
    return np.tanh(x) * y + np.exp(-x * x) - np.maximum(x, 0.25) / (1.0 + y * y)


@FUSE
@INPUTS
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_elementwise_chain(fuse, inputs, dtype):
    x, y = rand((67, 129), dtype, 1), rand((67, 129), dtype, 2)
    want = chain(x.astype(F64), y.astype(F64)).astype(dtype)
    got = cuda(chain, fuse=fuse)(put(inputs, x), put(inputs, y))
    assert_matches(got, want, atol=1e-6 if dtype == F32 else 1e-13)


@FUSE
def test_elementwise_broadcast_and_several_results(fuse):
    x, y = rand((64, 1), F32, 3), rand((1, 33), F32, 4)

    def f(x, y):
        s = x + y
        return s * s, np.where(s > 0, s, 0.5 * s), (s > 0.1) & (x < 0.5)

    got = cuda(f, fuse=fuse)(x, y)
    for g, w in zip(got, f(x, y), strict=True):
        assert_matches(g, w, atol=1e-7)


@FUSE
@pytest.mark.parametrize("dtype", [I32, I64], ids=str)
def test_integer_elementwise(fuse, dtype):
    x, y = rand((1000,), dtype, 5), rand((1000,), dtype, 6)
    y = np.where(y == 0, 7, y).astype(dtype)

    def f(x, y):
        return x * y - x // y + x % y, np.maximum(x, y) ^ y

    for g, w in zip(cuda(f, fuse=fuse)(x, y), f(x, y), strict=True):
        assert_matches(g, w)


# ---------------------------------------------------------------------------------------------
# reductions


@FUSE
@pytest.mark.parametrize("dtype", [F32, F64, I32, I64, BOOL], ids=str)
@pytest.mark.parametrize("axis", [None, 0, 1], ids=["full", "columns", "rows"])
def test_reductions(fuse, dtype, axis):
    # Positive floats: a relative tolerance is meaningful for their sums.
    x = rand((300, 257), dtype, 7, low=0.5, high=1.5)
    for red in (np.sum, np.max, np.min):
        f = (lambda a, red=red: red(a, axis=axis))
        want = f(x)
        if red is np.sum and dtype.kind == "f":
            want = np.sum(x.astype(F64), axis=axis).astype(dtype)     # the exact sum, rounded
        assert_matches(cuda(f, fuse=fuse)(x), want, rtol=1e-5 if dtype == F32 else 1e-12)


@FUSE
@INPUTS
def test_reduction_of_a_fused_producer(fuse, inputs):
    x = rand((129, 1031), F32, 8)

    def f(x):
        t = np.tanh(x) ** 2
        return np.sum(t, axis=1), np.max(t * x, axis=0), np.mean(t)

    want = f(x.astype(F64))
    got = cuda(f, fuse=fuse)(put(inputs, x))
    for g, w in zip(got, want, strict=True):
        assert_matches(g, np.asarray(w).astype(F32), rtol=1e-5, atol=1e-6)


@FUSE
@pytest.mark.parametrize("dtype", [F32, I64], ids=str)
@pytest.mark.parametrize("axis", [None, 0, 1], ids=["full", "columns", "rows"])
def test_argmax(fuse, dtype, axis):
    x = rand((70, 45), dtype, 9)
    if dtype.kind == "i":
        x //= 100                                            # ties: the first one wins
    f = (lambda a: np.argmax(a, axis=axis))
    assert_matches(cuda(f, fuse=fuse)(x), f(x))


def test_big_float32_sum_is_deterministic():
    x = gpuarray.to_gpu(rand((1 << 24) + 3, F32, 10, low=0.0, high=1.0))
    host_x = x.get()
    want = np.sum(host_x.astype(F64))
    for f in (lambda a: np.sum(a), lambda a: np.sum(a * a + 1.0)):
        j = cuda(f)
        first = j(x)
        assert isinstance(first, np.float32)
        again = [j(x) for _ in range(3)]
        assert all(r.tobytes() == first.tobytes() for r in again), (first, again)
    np.testing.assert_allclose(cuda(lambda a: np.sum(a))(x), want, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# dots


def dense(x, w, b):
    return np.maximum(x @ w + b, 0.0)


@FUSE
@INPUTS
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_dot_with_bias_and_relu_epilogue(fuse, inputs, dtype):
    x, w, b = rand((257, 300), dtype, 11), rand((300, 129), dtype, 12), rand((129,), dtype, 13)
    want = dense(x.astype(F64), w.astype(F64), b.astype(F64))
    got = host(cuda(dense, fuse=fuse)(put(inputs, x), put(inputs, w), put(inputs, b)))
    scale = np.max(np.abs(want))
    tol = 1e-5 if dtype == F32 else 1e-12
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


@FUSE
def test_batched_dot(fuse):
    a, b = rand((5, 33, 70), F64, 14), rand((5, 70, 17), F64, 15)
    f = (lambda a, b: np.einsum("bij,bjk->bik", a, b) * 2.0)
    assert_matches(cuda(f, fuse=fuse)(a, b), f(a, b), rtol=1e-12, atol=1e-12)


def test_tf32_dot_is_within_a_percent():
    a, b = rand((256, 512), F32, 16), rand((512, 128), F32, 17)
    want = a.astype(F64) @ b.astype(F64)
    scale = np.max(np.abs(want))
    got = host(cuda(lambda a, b: a @ b, allow_tf32=True)(a, b))
    assert got.dtype == F32
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * scale)
    exact = host(cuda(lambda a, b: a @ b)(a, b))            # without TF32: float32 products
    np.testing.assert_allclose(exact, want, rtol=1e-5, atol=1e-5 * scale)


# ---------------------------------------------------------------------------------------------
# gathers, scatters, concatenate and pad


@FUSE
@pytest.mark.parametrize("index_dtype", [I32, I64], ids=str)
def test_gather(fuse, index_dtype):
    table = rand((50, 8), F32, 18)
    idx = np.random.default_rng(19).integers(-50, 50, 300).astype(index_dtype)
    f = (lambda t, i: t[i] * 2.0 + 1.0)
    assert_matches(cuda(f, fuse=fuse)(table, idx), f(table, idx))
    g = (lambda t, i: np.take(t, i, axis=1))
    cols = np.array([7, 0, -1, 3], index_dtype)
    assert_matches(cuda(g, fuse=fuse)(table, cols), g(table, cols))


@FUSE
def test_scatter_add_of_a_gather_gradient(fuse):
    table, w = rand((40, 6), F32, 20), rand((500, 6), F32, 21)
    idx = np.random.default_rng(22).integers(0, 40, 500)            # many repeats
    grad = cuda(tj.grad(lambda t, i, w: np.sum(t[i] * w)), fuse=fuse)
    want = np.zeros((40, 6), F64)
    np.add.at(want, idx, w.astype(F64))
    assert_matches(grad(table, idx, w), want.astype(F32), rtol=1e-5, atol=1e-5)


@FUSE
def test_out_of_bounds_gather_raises_index_error(fuse):
    x = np.arange(10, dtype=np.float32)
    j = cuda(lambda x, i: x[i] + 1, fuse=fuse)
    with pytest.raises(IndexError, match="^index 10 is out of bounds for axis 0 with size 10$"):
        j(x, np.array([0, 10, 3]))
    assert_matches(j(x, np.array([1, -1])), x[[1, -1]] + 1)     # the program still works


@FUSE
def test_concatenate_and_pad(fuse):
    a, b = rand((3, 40), F32, 23), rand((5, 40), F32, 24)
    f = (lambda a, b: np.concatenate([a * 2.0, b, a[:1]], axis=0) + 1.0)
    assert_matches(cuda(f, fuse=fuse)(a, b), f(a, b))
    g = (lambda a, b: np.concatenate([a, b[:3]], axis=1))
    assert_matches(cuda(g, fuse=fuse)(a, b), g(a, b))
    # The gradient of a strided slice is a pad with zeros.
    x = rand((9, 12), F64, 25)
    pad = cuda(tj.grad(lambda x: np.sum(x[1:-2, ::3] ** 2)), fuse=fuse)
    want = np.zeros_like(x)
    want[1:-2, ::3] = 2 * x[1:-2, ::3]
    assert_matches(pad(x), want)


# ---------------------------------------------------------------------------------------------
# gradients and training


def mlp_loss(params, x, y):
    w1, b1, w2 = params
    h = np.tanh(x @ w1 + b1)
    return np.mean((h @ w2 - y) ** 2)


def mlp_data(dtype, seed=26):
    x, y = rand((32, 10), dtype, seed), rand((32, 3), dtype, seed + 1)
    params = [rand((10, 16), dtype, seed + 2), rand((16,), dtype, seed + 3),
              rand((16, 3), dtype, seed + 4)]
    return params, x, y


def central_difference(f, params, k, eps=1e-6):
    """d f / d params[k] by central differences (float64)."""
    p = params[k]
    out = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        up = [q.copy() for q in params]
        down = [q.copy() for q in params]
        up[k][i] += eps
        down[k][i] -= eps
        out[i] = (f(up) - f(down)) / (2 * eps)
    return out


@FUSE
@INPUTS
def test_value_and_grad_of_an_mlp(fuse, inputs):
    params, x, y = mlp_data(F64)
    step = cuda(tj.value_and_grad(mlp_loss), fuse=fuse)
    value, grads = step([put(inputs, p) for p in params], put(inputs, x), put(inputs, y))
    assert isinstance(value, np.float64)
    np.testing.assert_allclose(value, mlp_loss(params, x, y), rtol=1e-12)
    cpu_value, cpu_grads = tj.jit(tj.value_and_grad(mlp_loss), fuse=fuse)(params, x, y)
    np.testing.assert_allclose(value, cpu_value, rtol=1e-12)
    for k, g in enumerate(grads):
        g = host(g)
        np.testing.assert_allclose(g, cpu_grads[k], rtol=1e-5, atol=1e-12)
        fd = central_difference(lambda ps: mlp_loss(ps, x, y), params, k)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def sgd_step(params, x, y):
    value, grads = tj.value_and_grad(mlp_loss)(params, x, y)
    return value, [p - 0.5 * g for p, g in zip(params, grads)]


@FUSE
def test_sgd_training_loop_keeps_parameters_on_the_gpu(fuse):
    params, x, y = mlp_data(F32, seed=30)
    gpu_step, cpu_step = cuda(sgd_step, fuse=fuse), tj.jit(sgd_step, fuse=fuse)
    on_gpu = [gpuarray.to_gpu(p) for p in params]
    x_gpu, y_gpu = gpuarray.to_gpu(x), gpuarray.to_gpu(y)
    on_cpu = params
    losses = []
    for _ in range(3):
        value, on_gpu = gpu_step(on_gpu, x_gpu, y_gpu)
        cpu_value, on_cpu = cpu_step(on_cpu, x, y)
        assert all(isinstance(p, GPUArray) for p in on_gpu)
        assert isinstance(value, np.float32)
        np.testing.assert_allclose(value, cpu_value, rtol=1e-5)
        for p, q in zip(on_gpu, on_cpu, strict=True):
            np.testing.assert_allclose(p.get(), q, rtol=1e-4, atol=1e-6)
        losses.append(value)
    assert losses[2] < losses[0]                     # it trains
    assert gpu_step.trace_count == 1                 # GPUArrays in, GPUArrays out: one trace


# ---------------------------------------------------------------------------------------------
# arguments, results and threads


def test_results_are_gpuarrays_and_scalars_are_numpy_scalars():
    x = rand((4, 5), F32, 31)
    total, doubled = cuda(lambda a: (np.sum(a), a * 2.0))(x)
    assert isinstance(total, np.float32) and isinstance(doubled, GPUArray)
    assert doubled.shape == (4, 5) and doubled.dtype == F32
    np.testing.assert_allclose(doubled.get(), x * 2, rtol=0)
    returned = cuda(lambda a: a)(gpuarray.to_gpu(x))               # an input returned: a copy
    assert isinstance(returned, GPUArray)
    np.testing.assert_array_equal(returned.get(), x)


def test_non_contiguous_device_argument_raises_type_error():
    x = gpuarray.to_gpu(rand((4, 6), F32, 32))
    j = cuda(lambda a: a + 1.0)
    np.testing.assert_allclose(host(j(x)), x.get() + 1, rtol=0)
    with pytest.raises(TypeError, match="contiguous"):
        j(Interface(x.T))                        # a transposed view: strides not row-major


def test_calls_from_worker_threads():
    device = PycudaDevice.get()
    j = cuda(lambda a, b: np.tanh(a) @ b)
    inputs = [(rand((16, 8), F32, 40 + k), rand((8, 4), F32, 50 + k)) for k in range(8)]
    np.testing.assert_allclose(host(j(*inputs[0])), np.tanh(inputs[0][0]) @ inputs[0][1],
                               rtol=1e-5, atol=1e-6)      # compiled once, before the threads
    out: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(k):
        try:
            for _ in range(3):
                r = j(*inputs[k])
                with device.activate():             # the user's pycuda calls, in this thread
                    out[k] = r.get()
                    del r
        except BaseException as e:                  # reported below
            errors.append(e)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert not [w for w in caught if "could not be cleaned up" in str(w.message)]
    for k, (a, b) in enumerate(inputs):
        want = np.tanh(a.astype(F64)) @ b.astype(F64)
        np.testing.assert_allclose(out[k], want, rtol=1e-5, atol=1e-6)
