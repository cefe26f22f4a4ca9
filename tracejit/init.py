"""Parameter initialisers: NumPy arrays from a seeded NumPy generator.

    rng = np.random.default_rng(0)
    w = tj.init.he_normal(rng, (784, 1024))               # float32 by default
    params = tj.init.mlp(rng, [784, 1024, 1024, 10])       # {'w1', 'b1', 'w2', ...}

`fan_in` and `fan_out` of a shape (..., fan_in, fan_out) follow PyTorch and Keras: the last two
axes, times the product of any leading (receptive field) axes.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

Shape = Sequence[int]


def _generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape` used as x @ w."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    field = math.prod(shape[:-2])
    return shape[-2] * field, shape[-1] * field


def zeros(rng, shape: Shape, dtype=np.float32) -> np.ndarray:
    return np.zeros(tuple(shape), dtype)


def uniform(rng, shape: Shape, low: float = -1.0, high: float = 1.0,
            dtype=np.float32) -> np.ndarray:
    """U(low, high)."""
    return _generator(rng).uniform(low, high, tuple(shape)).astype(dtype)


def normal(rng, shape: Shape, std: float = 1.0, mean: float = 0.0,
           dtype=np.float32) -> np.ndarray:
    """N(mean, std**2)."""
    return (mean + std * _generator(rng).standard_normal(tuple(shape))).astype(dtype)


def glorot_uniform(rng, shape: Shape, dtype=np.float32) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = fans(shape)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(rng, shape, -a, a, dtype)


def glorot_normal(rng, shape: Shape, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return normal(rng, shape, math.sqrt(2.0 / (fan_in + fan_out)), dtype=dtype)


def he_normal(rng, shape: Shape, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / fan_in), for ReLU layers (He et al., 2015)."""
    return normal(rng, shape, math.sqrt(2.0 / fans(shape)[0]), dtype=dtype)


def he_uniform(rng, shape: Shape, dtype=np.float32) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / fan_in)."""
    a = math.sqrt(6.0 / fans(shape)[0])
    return uniform(rng, shape, -a, a, dtype)


def mlp(rng, sizes: Sequence[int], weights: Callable = he_normal,
        dtype=np.float32) -> dict[str, np.ndarray]:
    """Parameters of a fully connected net with layer sizes `sizes`: {'w1': (sizes[0],
    sizes[1]), 'b1': zeros, 'w2': ...}."""
    rng = _generator(rng)
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
        params[f"w{i}"] = weights(rng, (a, b), dtype=dtype)
        params[f"b{i}"] = np.zeros(b, dtype)
    return params
