"""The peers: each workload written for PyTorch (eager and torch.compile) and JAX (jit).

Each peer runs on the host CPU ("torch", "torch.compile", "jax") or on the GPU ("torch-cuda",
"torch.compile-cuda", "jax-gpu": PyTorch on CUDA tensors, JAX on `jax.devices("gpu")`), and is
used only where it is installed and, for the GPU ones, where it sees a GPU. A peer's rows are
compared with the tracejit rows of the same device (`Peer.device`).

A peer function takes the workload's arguments converted to the peer's arrays and returns the
same structure as the tracejit function (loss, updated parameters) or (value, gradients).
Gradients come from the peer's own autodiff (torch.func, jax.value_and_grad); the parameter
update is inside the timed function.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tracejit.pytree import flatten, tree_map

from .workloads import IMAGE_MEAN, IMAGE_STD


@dataclass
class Peer:
    """A way to run a workload: how to build its function, convert inputs, and wait for it."""

    name: str
    build: Callable[[str, str], Callable]      # (workload id, variant name) -> function
    convert: Callable[[Any], Any]               # NumPy pytree -> the peer's arrays
    sync: Callable[[Any], None]                 # wait for results (asynchronous dispatch)
    to_numpy: Callable[[Any], list]             # results -> flat list of NumPy arrays
    device: str = "cpu"                         # 'cpu' or 'gpu': where it runs


PEERS = ("torch", "torch.compile", "jax")

#: The sizes of the numpy.linalg workloads (N3-N5), as their variants are named.
LINALG_SIZES = ("256", "64x16x16")
"""The peers on the host CPU."""

GPU_PEERS = ("torch-cuda", "torch.compile-cuda", "jax-gpu")
"""The peers on the GPU."""

_MODULE = {"torch": "torch", "torch.compile": "torch", "jax": "jax", "torch-cuda": "torch",
           "torch.compile-cuda": "torch", "jax-gpu": "jax"}


def device_of(name: str) -> str:
    """'gpu' for a GPU peer, 'cpu' for any other (numpy and the CPU peers)."""
    return "gpu" if name in GPU_PEERS else "cpu"


@functools.lru_cache(maxsize=None)
def unavailable_reason(name: str) -> str | None:
    """None when the peer `name` can run here, else why not ("not installed", "torch has no
    CUDA", ...). The GPU peers import their framework to ask it for a GPU."""
    if name == "numpy":
        return None
    module = _MODULE.get(name)
    if module is None:
        return f"unknown peer (known: numpy, {', '.join(PEERS + GPU_PEERS)})"
    if importlib.util.find_spec(module) is None:
        return "not installed"
    if name in ("torch-cuda", "torch.compile-cuda"):
        import torch
        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA GPU"
    if name == "jax-gpu":
        try:
            _jax().devices("gpu")
        except RuntimeError as exc:
            return f"jax has no GPU device ({str(exc).splitlines()[0][:80]})"
    return None


def available(name: str) -> bool:
    """Whether the peer `name` can run here (see `unavailable_reason`)."""
    return unavailable_reason(name) is None


def _jax():
    """jax, imported so that it does not take most of the GPU's memory when it first starts
    its GPU client (its default), which would starve tracejit's and PyTorch's allocations in
    the same process."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    return jax


# ---------------------------------------------------------------------------------------------
# PyTorch


def _torch_functions(torch):
    F = torch.nn.functional
    mean, std = torch.from_numpy(IMAGE_MEAN), torch.from_numpy(IMAGE_STD)

    def xent(logits, labels):
        picked = logits.gather(1, labels[:, None])[:, 0]
        return torch.mean(torch.logsumexp(logits, dim=1) - picked)

    def w1_step(w):
        g = torch.func.grad(lambda w: w ** 2 - 10.0 * w + 25.0)(w)
        return w - 0.01 * g

    def w2_step(w, b, x, y):
        (gw, gb), loss = torch.func.grad_and_value(
            lambda w, b: torch.mean((w * x + b - y) ** 2), argnums=(0, 1))(w, b)
        return loss, w - 0.01 * gw, b - 0.01 * gb

    def w3(x, y, z):
        grads, value = torch.func.grad_and_value(lambda x, y, z: torch.sum(x * y + z),
                                                 argnums=(0, 1, 2))(x, y, z)
        return value, grads

    def w4_step(w1, w2, x, y):
        (g1, g2), loss = torch.func.grad_and_value(
            lambda w1, w2: torch.sum((F.relu(x @ w1) @ w2 - y) ** 2), argnums=(0, 1))(w1, w2)
        return loss, w1 - 1e-6 * g1, w2 - 1e-6 * g2

    def w5_forward(x, y, z):
        return torch.sum((torch.tanh(x) * y + z) ** 2)

    def w5_vag(x, y, z):
        grads, value = torch.func.grad_and_value(w5_forward, argnums=(0, 1, 2))(x, y, z)
        return value, grads

    def w6_step(w, b, x, labels):
        (gw, gb), loss = torch.func.grad_and_value(lambda w, b: xent(x @ w + b, labels),
                                                   argnums=(0, 1))(w, b)
        return loss, w - 0.1 * gw, b - 0.1 * gb

    def w7_loss(p, x, labels):
        h1 = F.relu(x @ p["w1"] + p["b1"])
        h2 = F.relu(h1 @ p["w2"] + p["b2"])
        return xent(h2 @ p["w3"] + p["b3"], labels)

    def w7_step(p, x, labels):
        g, loss = torch.func.grad_and_value(w7_loss)(p, x, labels)
        return loss, {k: p[k] - 0.01 * g[k] for k in p}

    def w4_loss(w1, w2, x, y):
        return torch.sum((F.relu(x @ w1) @ w2 - y) ** 2)

    w4_per_example = torch.func.vmap(torch.func.grad(w4_loss, argnums=(0, 1)),
                                     in_dims=(None, None, 0, 0))

    return {("W1", "step"): w1_step, ("W2", "step"): w2_step, ("W3", "value+grad"): w3,
            ("W4", "step"): w4_step, ("W5", "forward"): w5_forward,
            ("W10", "per-example grads"): w4_per_example,
            ("W5", "value+grad"): w5_vag, ("W6", "step"): w6_step, ("W7", "step"): w7_step,
            ("N1", "cumsum"): lambda x: torch.cumsum(x, 0),
            ("N2", "sort"): lambda x: torch.sort(x).values,
            **{("N3", size): lambda a, b: torch.linalg.solve(a, b) for size in LINALG_SIZES},
            **{("N4", size): lambda a, b: torch.linalg.cholesky(a) for size in LINALG_SIZES},
            **{("N5", size): lambda a, b: torch.linalg.svd(a) for size in LINALG_SIZES},
            ("N6", "images"): lambda x: (x.to(torch.float32) / 255 - mean) / std,
            ("N7", "layer norm"): lambda x: torch.nn.functional.layer_norm(
                x, x.shape[-1:], eps=1e-5)}


def _torch_peer(compiled: bool, cuda: bool = False) -> Peer:
    """PyTorch eager or torch.compile, on CPU tensors or (cuda=True) on CUDA tensors. On CUDA
    the matmuls run in full float32 (torch's default: allow_tf32 off for matmuls), and `sync`
    waits for the device, since CUDA kernels run asynchronously."""
    import torch

    table = _torch_functions(torch)

    def build(workload, variant):
        fn = table[(workload, variant)]
        return torch.compile(fn) if compiled else fn

    def convert(tree):
        if cuda:
            return tree_map(lambda a: torch.from_numpy(np.array(a)).to("cuda"), tree)
        return tree_map(lambda a: torch.from_numpy(np.array(a)), tree)

    def to_numpy(out):
        return [np.asarray(t.detach().cpu().numpy()) for t in flatten(out)[0]]

    name = "torch.compile" if compiled else "torch"
    if cuda:
        return Peer(name + "-cuda", build, convert, lambda out: torch.cuda.synchronize(),
                    to_numpy, "gpu")
    return Peer(name, build, convert, lambda out: None, to_numpy)


# ---------------------------------------------------------------------------------------------
# JAX


def _jax_functions(jax):
    jnp = jax.numpy
    mean, std = jnp.asarray(IMAGE_MEAN), jnp.asarray(IMAGE_STD)

    def xent(logits, labels):
        picked = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)

    def w1_step(w):
        return w - 0.01 * jax.grad(lambda w: w ** 2 - 10.0 * w + 25.0)(w)

    def w2_step(w, b, x, y):
        loss, (gw, gb) = jax.value_and_grad(
            lambda w, b: jnp.mean((w * x + b - y) ** 2), argnums=(0, 1))(w, b)
        return loss, w - 0.01 * gw, b - 0.01 * gb

    def w3(x, y, z):
        return jax.value_and_grad(lambda x, y, z: jnp.sum(x * y + z), argnums=(0, 1, 2))(x, y, z)

    def w4_step(w1, w2, x, y):
        loss, (g1, g2) = jax.value_and_grad(
            lambda w1, w2: jnp.sum((jnp.maximum(x @ w1, 0.0) @ w2 - y) ** 2),
            argnums=(0, 1))(w1, w2)
        return loss, w1 - 1e-6 * g1, w2 - 1e-6 * g2

    def w5_forward(x, y, z):
        return jnp.sum((jnp.tanh(x) * y + z) ** 2)

    def w5_vag(x, y, z):
        return jax.value_and_grad(w5_forward, argnums=(0, 1, 2))(x, y, z)

    def w6_step(w, b, x, labels):
        loss, (gw, gb) = jax.value_and_grad(lambda w, b: xent(x @ w + b, labels),
                                            argnums=(0, 1))(w, b)
        return loss, w - 0.1 * gw, b - 0.1 * gb

    def w7_loss(p, x, labels):
        h1 = jnp.maximum(x @ p["w1"] + p["b1"], 0.0)
        h2 = jnp.maximum(h1 @ p["w2"] + p["b2"], 0.0)
        return xent(h2 @ p["w3"] + p["b3"], labels)

    def w7_step(p, x, labels):
        loss, g = jax.value_and_grad(w7_loss)(p, x, labels)
        return loss, {k: p[k] - 0.01 * g[k] for k in p}

    def w4_loss(w1, w2, x, y):
        return jnp.sum((jnp.maximum(x @ w1, 0.0) @ w2 - y) ** 2)

    w4_per_example = jax.vmap(jax.grad(w4_loss, argnums=(0, 1)), in_axes=(None, None, 0, 0))

    return {("W1", "step"): w1_step, ("W2", "step"): w2_step, ("W3", "value+grad"): w3,
            ("W4", "step"): w4_step, ("W5", "forward"): w5_forward,
            ("W10", "per-example grads"): w4_per_example,
            ("W5", "value+grad"): w5_vag, ("W6", "step"): w6_step, ("W7", "step"): w7_step,
            ("N1", "cumsum"): jnp.cumsum, ("N2", "sort"): jnp.sort,
            **{("N3", size): jnp.linalg.solve for size in LINALG_SIZES},
            **{("N4", size): lambda a, b: jnp.linalg.cholesky(a) for size in LINALG_SIZES},
            **{("N5", size): lambda a, b: jnp.linalg.svd(a) for size in LINALG_SIZES},
            ("N6", "images"): lambda x: (x.astype(jnp.float32) / 255 - mean) / std,
            ("N7", "layer norm"): lambda x: jax.nn.standardize(x, axis=-1, epsilon=1e-5)}


def _jax_peer(gpu: bool = False) -> Peer:
    """jax.jit on the CPU device, or (gpu=True) on the first GPU device. The arguments are
    committed to that device, so the jitted function runs there even where JAX's default
    device is another one. On the GPU, float32 matmuls are asked for at full float32 precision
    (JAX's default there is TF32 on recent GPUs), as tracejit's and PyTorch's are."""
    jax = _jax()

    if gpu:
        jax.config.update("jax_default_matmul_precision", "highest")
    table = _jax_functions(jax)
    device = jax.devices("gpu" if gpu else "cpu")[0]
    return Peer("jax-gpu" if gpu else "jax", lambda w, v: jax.jit(table[(w, v)]),
                lambda tree: tree_map(lambda a: jax.device_put(np.array(a), device), tree),
                jax.block_until_ready,
                lambda out: [np.asarray(a) for a in flatten(out)[0]], "gpu" if gpu else "cpu")


def make_peer(name: str) -> Peer:
    """The peer called `name` (one of PEERS or GPU_PEERS); it must be available."""
    if name in ("torch", "torch.compile"):
        return _torch_peer(name == "torch.compile")
    if name in ("torch-cuda", "torch.compile-cuda"):
        return _torch_peer(name == "torch.compile-cuda", cuda=True)
    if name == "jax":
        return _jax_peer()
    if name == "jax-gpu":
        return _jax_peer(gpu=True)
    raise ValueError(f"unknown peer {name!r}")
