"""The workloads W1–W7, W10 and N1–N7 of docs/workloads.md: sizes, inputs, the tracejit
function, and a hand-written NumPy step.

Every tracejit function here is plain NumPy, traced by `tracejit.jit`; a training step holds
the loss, its gradients and the parameter update. Inputs come from
`numpy.random.default_rng(0)`, float32 unless said. `quick=True` shrinks every size for the
agreement-only run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import tracejit as tj
from tracejit import primitives as P

F32 = np.float32


@dataclass
class Variant:
    """One thing to time: a function of `args`, with its floor and its NumPy by-hand twin."""

    workload: str                       # "W4"
    name: str                           # "step", "forward", "value+grad"
    title: str                          # "W4 mlp-small step"
    make_args: Callable[[bool], tuple]  # quick -> arguments
    fn: Callable                        # plain NumPy; tracejit jits it
    numpy: Callable | None = None       # forward + hand-written backward in NumPy
    floor: str = "call"                 # 'call', 'copy', 'blas', 'w6'
    tiny: bool = False                  # per-call overhead: time calls in batches
    matmuls: Callable[[tuple], list] = field(default=lambda args: [])  # floor shapes
    bytes_moved: Callable[[tuple], int] = field(default=lambda args: 0)
    rtol: float = 1e-4                  # agreement tolerance against tracejit (float32 sums)
    # Other ways to compute the same, timed beside NumPy: label -> function of args.
    baselines: dict[str, Callable] = field(default_factory=dict)
    peers: bool = True                  # False: the peers have no twin (their own random bits)


def _rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# W1 quadratic: J(w) = w**2 - 10w + 25, gradient descent lr 0.01 from w = 0


def w1_cost(w):
    return w ** 2 - 10.0 * w + 25.0


def w1_step(w):
    return w - 0.01 * tj.grad(w1_cost)(w)


def w1_numpy(w):
    return w - F32(0.01) * (F32(2.0) * w - F32(10.0))


# ---------------------------------------------------------------------------------------------
# W2 linreg: w*x + b, mean squared error, SGD lr 0.01; x ~ U(-10, 10), y = 0.1x + 0.3 + N(0, .15)


def w2_args(quick):
    rng = _rng()
    x = rng.uniform(-10, 10, 200).astype(F32)
    y = (0.1 * x + 0.3 + rng.normal(0, 0.15, 200)).astype(F32)
    return F32(0.0), F32(0.0), x, y


def w2_loss(w, b, x, y):
    return np.mean((w * x + b - y) ** 2)


def w2_step(w, b, x, y):
    loss, (gw, gb) = tj.value_and_grad(w2_loss, argnums=(0, 1))(w, b, x, y)
    return loss, w - 0.01 * gw, b - 0.01 * gb


def w2_numpy(w, b, x, y):
    r = w * x + b - y
    g = r * F32(2.0 / x.size)
    return np.mean(r * r), w - F32(0.01) * np.sum(g * x), b - F32(0.01) * np.sum(g)


# ---------------------------------------------------------------------------------------------
# W3 graph: c = sum(x*y + z) with gradients wrt x, y, z, on 3 x 4


def w3_args(quick):
    rng = _rng()
    return tuple(rng.standard_normal((3, 4)).astype(F32) for _ in range(3))


def w3_fn(x, y, z):
    return tj.value_and_grad(lambda x, y, z: np.sum(x * y + z), argnums=(0, 1, 2))(x, y, z)


def w3_numpy(x, y, z):
    return np.sum(x * y + z), (y.copy(), x.copy(), np.ones_like(z))


# ---------------------------------------------------------------------------------------------
# W4 mlp-small: sum((relu(x @ w1) @ w2 - y)**2), SGD lr 1e-6 on w1, w2


def w4_args(quick):
    n, d_in, h, d_out = (8, 50, 16, 4) if quick else (64, 1000, 100, 10)
    rng = _rng()
    x = rng.standard_normal((n, d_in)).astype(F32)
    y = rng.standard_normal((n, d_out)).astype(F32)
    w1 = rng.standard_normal((d_in, h)).astype(F32)
    w2 = rng.standard_normal((h, d_out)).astype(F32)
    return w1, w2, x, y


def w4_loss(w1, w2, x, y):
    h = np.maximum(x @ w1, 0.0)
    return np.sum((h @ w2 - y) ** 2)


def w4_step(w1, w2, x, y):
    loss, (g1, g2) = tj.value_and_grad(w4_loss, argnums=(0, 1))(w1, w2, x, y)
    return loss, w1 - 1e-6 * g1, w2 - 1e-6 * g2


def w4_numpy(w1, w2, x, y):
    a = x @ w1
    h = np.maximum(a, F32(0.0))
    d = h @ w2 - y
    gy = F32(2.0) * d
    g2 = h.T @ gy
    g1 = x.T @ ((gy @ w2.T) * (a > 0))
    return np.sum(d * d), w1 - F32(1e-6) * g1, w2 - F32(1e-6) * g2


def w4_matmuls(args):
    w1, w2, x, y = args
    n, d_in = x.shape
    h, d_out = w2.shape
    # 2 forward, 3 backward
    return [(n, d_in, h), (n, h, d_out), (n, d_out, h), (h, n, d_out), (d_in, n, h)]


# W10 per-example gradients: the gradient of W4's loss for each of the 64 examples on its own
# (for per-example clipping, as differentially private training does), batched by vmap.

w4_example_grads = tj.vmap(tj.grad(w4_loss, argnums=(0, 1)), in_axes=(None, None, 0, 0))


def w4_per_example(w1, w2, x, y):
    return w4_example_grads(w1, w2, x, y)


def w4_per_example_numpy(w1, w2, x, y):
    a = x @ w1
    h = np.maximum(a, F32(0.0))
    gy = F32(2.0) * (h @ w2 - y)
    g2 = h[:, :, None] * gy[:, None, :]
    gh = (gy @ w2.T) * (a > 0)
    return x[:, :, None] * gh[:, None, :], g2


_w4_grad = tj.jit(tj.grad(w4_loss, argnums=(0, 1)))


def w4_per_example_loop(w1, w2, x, y):
    """What one writes without vmap: a Python loop of the compiled gradient, stacked."""
    grads = [_w4_grad(w1, w2, x[i], y[i]) for i in range(x.shape[0])]
    return np.stack([g[0] for g in grads]), np.stack([g[1] for g in grads])


def _per_example_bytes(args):
    w1, w2, x, y = args
    return sum(a.nbytes for a in args) + x.shape[0] * (w1.nbytes + w2.nbytes)


# ---------------------------------------------------------------------------------------------
# W5 fused-elementwise: f = sum((tanh(x)*y + z)**2), forward, and forward + gradients


def w5_args(quick):
    n = 2 ** 10 if quick else 2 ** 24
    rng = _rng()
    return tuple(rng.standard_normal(n).astype(F32) for _ in range(3))


def w5_forward(x, y, z):
    return np.sum((np.tanh(x) * y + z) ** 2)


def w5_value_and_grad(x, y, z):
    return tj.value_and_grad(w5_forward, argnums=(0, 1, 2))(x, y, z)


def w5_numpy_forward(x, y, z):
    u = np.tanh(x) * y + z
    return np.sum(u * u)


def w5_numpy_value_and_grad(x, y, z):
    t = np.tanh(x)
    u = t * y + z
    gu = F32(2.0) * u
    return np.sum(u * u), (gu * y * (F32(1.0) - t * t), gu * t, gu)


# ---------------------------------------------------------------------------------------------
# W6 softmax-xent: logits = x @ W + b, mean(logsumexp(logits) - logits[label]), SGD lr 0.1


def w6_args(quick):
    n, d, c = (64, 20, 10) if quick else (4096, 784, 10)
    rng = _rng()
    x = rng.standard_normal((n, d)).astype(F32)
    labels = rng.integers(0, c, n)
    w = (rng.standard_normal((d, c)) * 0.01).astype(F32)
    b = np.zeros(c, F32)
    return w, b, x, labels


def softmax_xent(logits, labels):
    """mean over the batch of logsumexp(logits) - logits[label]."""
    m = np.max(logits, axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.sum(np.exp(logits - m), axis=1))
    return np.mean(lse - logits[np.arange(logits.shape[0]), labels])


def w6_loss(w, b, x, labels):
    return softmax_xent(x @ w + b, labels)


def w6_step(w, b, x, labels):
    loss, (gw, gb) = tj.value_and_grad(w6_loss, argnums=(0, 1))(w, b, x, labels)
    return loss, w - 0.1 * gw, b - 0.1 * gb


def _xent_numpy(logits, labels):
    """(loss, d loss / d logits) by hand."""
    n = logits.shape[0]
    m = np.max(logits, axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = np.sum(e, axis=1, keepdims=True)
    loss = np.mean(m[:, 0] + np.log(s[:, 0]) - logits[np.arange(n), labels])
    g = e / s
    g[np.arange(n), labels] -= 1.0
    return loss, g * F32(1.0 / n)


def w6_numpy(w, b, x, labels):
    loss, g = _xent_numpy(x @ w + b, labels)
    return loss, w - F32(0.1) * (x.T @ g), b - F32(0.1) * np.sum(g, axis=0)


def w6_matmuls(args):
    w, b, x, labels = args
    return [(x.shape[0], x.shape[1], w.shape[1]), (x.shape[1], x.shape[0], w.shape[1])]


# ---------------------------------------------------------------------------------------------
# W7 mlp-large: 784-1024-1024-10, biases, relu, softmax cross-entropy, He init, SGD lr 0.01


def w7_args(quick):
    sizes = (20, 32, 32, 10) if quick else (784, 1024, 1024, 10)
    n = 16 if quick else 512
    rng = _rng()
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
        params[f"w{i}"] = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(F32)
        params[f"b{i}"] = np.zeros(b, F32)
    x = rng.standard_normal((n, sizes[0])).astype(F32)
    labels = rng.integers(0, sizes[-1], n)
    return params, x, labels


def w7_loss(p, x, labels):
    h1 = np.maximum(x @ p["w1"] + p["b1"], 0.0)
    h2 = np.maximum(h1 @ p["w2"] + p["b2"], 0.0)
    return softmax_xent(h2 @ p["w3"] + p["b3"], labels)


def w7_step(p, x, labels):
    loss, g = tj.value_and_grad(w7_loss)(p, x, labels)
    return loss, {k: p[k] - 0.01 * g[k] for k in p}


def w7_numpy(p, x, labels):
    a1 = x @ p["w1"] + p["b1"]
    h1 = np.maximum(a1, F32(0.0))
    a2 = h1 @ p["w2"] + p["b2"]
    h2 = np.maximum(a2, F32(0.0))
    loss, g3 = _xent_numpy(h2 @ p["w3"] + p["b3"], labels)
    g2 = (g3 @ p["w3"].T) * (a2 > 0)
    g1 = (g2 @ p["w2"].T) * (a1 > 0)
    grads = {"w3": h2.T @ g3, "b3": np.sum(g3, axis=0), "w2": h1.T @ g2,
             "b2": np.sum(g2, axis=0), "w1": x.T @ g1, "b1": np.sum(g1, axis=0)}
    return loss, {k: p[k] - F32(0.01) * grads[k] for k in p}


# W7 with dropout (rate 0.1) after both hidden layers, the masks drawn inside the step from a
# key passed in (tracejit.random): what dropout adds to the step.

W7_KEEP = 0.9


def w7_dropout_args(quick):
    return w7_args(quick) + (tj.random.key(0),)


def w7_dropout_loss(p, x, labels, key):
    k1, k2 = tj.random.split(key)
    h1 = np.maximum(x @ p["w1"] + p["b1"], 0.0)
    h1 = np.where(tj.random.bernoulli(k1, W7_KEEP, h1.shape), h1 / W7_KEEP, 0.0)
    h2 = np.maximum(h1 @ p["w2"] + p["b2"], 0.0)
    h2 = np.where(tj.random.bernoulli(k2, W7_KEEP, h2.shape), h2 / W7_KEEP, 0.0)
    return softmax_xent(h2 @ p["w3"] + p["b3"], labels)


def w7_dropout_step(p, x, labels, key):
    loss, g = tj.value_and_grad(w7_dropout_loss)(p, x, labels, key)
    return loss, {k: p[k] - 0.01 * g[k] for k in p}


def _keep_mask(key, shape):
    """tracejit.random.bernoulli(key, W7_KEEP, shape) by hand: Threefry's two words xored at
    each element's position, their high 23 bits as a float in [0, 1), below the keep rate."""
    n = int(np.prod(shape))
    w0, w1 = P.threefry2x32_words(key[0], key[1], np.zeros(n, np.uint32),
                                  np.arange(n, dtype=np.uint32))
    u = ((w0 ^ w1) >> np.uint32(9)).astype(F32) * F32(2.0 ** -23)
    return (u < F32(W7_KEEP)).reshape(shape)


def w7_dropout_numpy(p, x, labels, key):
    keys = np.stack(P.threefry2x32_words(key[0], key[1], np.zeros(2, np.uint32),
                                         np.arange(2, dtype=np.uint32)), axis=1)
    keep = F32(W7_KEEP)
    a1 = x @ p["w1"] + p["b1"]
    m1 = _keep_mask(keys[0], a1.shape)
    h1 = np.where(m1, np.maximum(a1, F32(0.0)) / keep, F32(0.0))
    a2 = h1 @ p["w2"] + p["b2"]
    m2 = _keep_mask(keys[1], a2.shape)
    h2 = np.where(m2, np.maximum(a2, F32(0.0)) / keep, F32(0.0))
    loss, g3 = _xent_numpy(h2 @ p["w3"] + p["b3"], labels)
    g2 = np.where(m2 & (a2 > 0), (g3 @ p["w3"].T) / keep, F32(0.0))
    g1 = np.where(m1 & (a1 > 0), (g2 @ p["w2"].T) / keep, F32(0.0))
    grads = {"w3": h2.T @ g3, "b3": np.sum(g3, axis=0), "w2": h1.T @ g2,
             "b2": np.sum(g2, axis=0), "w1": x.T @ g1, "b1": np.sum(g1, axis=0)}
    return loss, {k: p[k] - F32(0.01) * grads[k] for k in p}


def w7_matmuls(args):
    p, x, labels = args
    n = x.shape[0]
    (d0, d1), (_, d2), (_, d3) = p["w1"].shape, p["w2"].shape, p["w3"].shape
    forward = [(n, d0, d1), (n, d1, d2), (n, d2, d3)]
    weight_grads = [(d0, n, d1), (d1, n, d2), (d2, n, d3)]
    input_grads = [(n, d3, d2), (n, d2, d1)]
    return forward + weight_grads + input_grads


# ---------------------------------------------------------------------------------------------


# N1 cumsum, N2 sort: NumPy's functions along an axis, at 2**20 elements


def n_args(quick):
    n = 2 ** 10 if quick else 2 ** 20
    return (_rng().standard_normal(n).astype(F32),)


def n_cumsum(x):
    return np.cumsum(x)


def n_sort(x):
    return np.sort(x)


# N3 solve, N4 cholesky, N5 svd: numpy.linalg on one 256 × 256 matrix and on a stack of 64
# 16 × 16 ones


def _linalg_args(shape, spd=True):
    """(a, b): a symmetric positive definite (x xᵀ + n I) or, with spd false, x itself (whose
    singular values are spread: its singular vectors are well defined)."""
    def make(quick):
        size = shape if not quick else shape[:-2] + (8, 8)
        x = _rng().standard_normal(size)
        a = x @ np.swapaxes(x, -1, -2) + size[-1] * np.eye(size[-1]) if spd else x
        b = _rng().standard_normal(size[:-1] + (1,))
        return a.astype(F32), b.astype(F32)
    return make


def n_solve(a, b):
    return np.linalg.solve(a, b)


def n_cholesky(a, b):
    return np.linalg.cholesky(a)


def n_svd(a, b):
    # The signs of singular vectors are LAPACK's choice, which may differ between calls of
    # it; each pair's is fixed here (U's first row positive) so that results can agree.
    u, s, vt = np.linalg.svd(a)
    sign = np.sign(u[..., :1, :])
    return u * sign, s, vt * np.swapaxes(sign, -1, -2)


def _in_and_out_bytes(args):
    return 2 * args[0].nbytes


# N6 images: uint8 images to normalised float32; N7 layer norm in float16 (statistics
# accumulated in float32, as the peers accumulate them)

IMAGE_MEAN = np.array([0.485, 0.456, 0.406], F32).reshape(3, 1, 1)
IMAGE_STD = np.array([0.229, 0.224, 0.225], F32).reshape(3, 1, 1)


def n6_args(quick):
    shape = (4, 3, 8, 8) if quick else (256, 3, 64, 64)
    return (_rng().integers(0, 256, shape).astype(np.uint8),)


def n6_images(x):
    return (x.astype(np.float32) / 255 - IMAGE_MEAN) / IMAGE_STD


def n7_args(quick):
    shape = (8, 64) if quick else (4096, 1024)
    return (_rng().standard_normal(shape).astype(np.float16),)


def n7_layer_norm(x):
    m = x.mean(axis=-1, keepdims=True)
    d = x - m
    return d / np.sqrt((d * d).mean(axis=-1, keepdims=True) + 1e-5)


# ---------------------------------------------------------------------------------------------


def _w5_bytes(args, write):
    return sum(a.nbytes for a in args) * (2 if write else 1)


VARIANTS: list[Variant] = [
    Variant("W1", "step", "W1 quadratic step", lambda q: (F32(0.0),), w1_step, w1_numpy,
            tiny=True, rtol=1e-6),
    Variant("W2", "step", "W2 linreg step", w2_args, w2_step, w2_numpy, tiny=True),
    Variant("W3", "value+grad", "W3 graph value+grad", w3_args, w3_fn, w3_numpy, tiny=True,
            rtol=1e-6),
    Variant("W4", "step", "W4 mlp-small step", w4_args, w4_step, w4_numpy, floor="blas",
            matmuls=w4_matmuls),
    Variant("W10", "per-example grads", "W10 per-example grads (vmap of grad)", w4_args,
            w4_per_example, w4_per_example_numpy, floor="copy", bytes_moved=_per_example_bytes,
            baselines={"loop of jit(grad)": w4_per_example_loop}),
    Variant("W5", "forward", "W5 fused-elementwise forward", w5_args, w5_forward,
            w5_numpy_forward, floor="copy", bytes_moved=lambda a: _w5_bytes(a, False),
            rtol=1e-3),
    Variant("W5", "value+grad", "W5 fused-elementwise value+grad", w5_args, w5_value_and_grad,
            w5_numpy_value_and_grad, floor="copy", bytes_moved=lambda a: _w5_bytes(a, True),
            rtol=1e-3),
    Variant("W6", "step", "W6 softmax-xent step", w6_args, w6_step, w6_numpy, floor="w6",
            matmuls=w6_matmuls, bytes_moved=lambda a: a[2].nbytes),
    Variant("W7", "step", "W7 mlp-large step", w7_args, w7_step, w7_numpy, floor="blas",
            matmuls=w7_matmuls, rtol=1e-3),
    Variant("W7", "dropout step", "W7 mlp-large step with dropout 0.1", w7_dropout_args,
            w7_dropout_step, w7_dropout_numpy, floor="blas",
            matmuls=lambda args: w7_matmuls(args[:3]), rtol=1e-3, peers=False),
    Variant("N1", "cumsum", "N1 cumsum", n_args, n_cumsum, n_cumsum, floor="copy",
            bytes_moved=_in_and_out_bytes, rtol=1e-3),
    Variant("N2", "sort", "N2 sort", n_args, n_sort, n_sort, floor="copy",
            bytes_moved=_in_and_out_bytes, rtol=0),
    *(Variant(w, size, f"{w} {name} {size}", _linalg_args(shape, w != "N5"), fn, fn,
              rtol=1e-3)
      for w, name, fn in (("N3", "solve", n_solve), ("N4", "cholesky", n_cholesky),
                          ("N5", "svd", n_svd))
      for size, shape in (("256", (256, 256)), ("64x16x16", (64, 16, 16)))),
    Variant("N6", "images", "N6 uint8 images", n6_args, n6_images, n6_images, floor="copy",
            bytes_moved=lambda a: a[0].nbytes * 5, rtol=1e-5),
    Variant("N7", "layer norm", "N7 float16 layer norm", n7_args, n7_layer_norm, n7_layer_norm,
            floor="copy", bytes_moved=lambda a: a[0].nbytes * 2, rtol=2e-2),
]
