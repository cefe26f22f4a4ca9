"""Optimisers as pure functions over pytrees: sgd, momentum (and Nesterov), adam, adamw.

An optimiser is a pair of functions. `init(params)` builds the state (a pytree of arrays);
`update(grads, state, params)` returns `(new_params, new_state)`. Both are plain NumPy on
pytrees, so inside a jitted training step the update traces into the same Program as the loss
and its gradients, and fuses (every update is elementwise):

    opt = tj.optim.adam(1e-3)                 # or sgd(0.1), momentum(0.1, nesterov=True), ...
    state = opt.init(params)

    @tj.jit
    def step(params, state, x, y):
        loss, grads = tj.value_and_grad(loss_fn)(params, x, y)
        params, state = opt.update(grads, state, params)
        return loss, params, state

Switching optimiser is the one line that builds `opt`. The learning rate is a number or a
function of the step count (a schedule, traced like the rest). The formulas are PyTorch's
(torch.optim.SGD, Adam, AdamW), so results can be compared step for step.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from .ir import is_python_scalar
from .pytree import tree_map

LearningRate = float | Callable[[Any], Any]


class Optimizer(NamedTuple):
    """`init(params) -> state` and `update(grads, state, params) -> (params, state)`."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]


def _lr(lr: LearningRate, count):
    return lr(count) if callable(lr) else lr


def _zeros_like(params):
    return tree_map(np.zeros_like, params)


def _like(value, p):
    """A Python number as is; an array scalar (a schedule's value, a bias correction) cast to
    the dtype of parameter `p`, so a float64 scalar never promotes float32 parameters."""
    return value if is_python_scalar(value) else np.astype(value, p.dtype)


def sgd(lr: LearningRate, weight_decay: float = 0.0) -> Optimizer:
    """p <- p - lr * (g + weight_decay * p)."""

    def init(params):
        return {"count": np.zeros((), np.int32)}

    def update(grads, state, params):
        rate = _lr(lr, state["count"])

        def step(p, g):
            if weight_decay:
                g = g + weight_decay * p
            return p - _like(rate, p) * g
        return tree_map(step, params, grads), {"count": state["count"] + 1}

    return Optimizer(init, update)


def momentum(lr: LearningRate, beta: float = 0.9, nesterov: bool = False,
             weight_decay: float = 0.0) -> Optimizer:
    """Heavy-ball momentum, as torch.optim.SGD(momentum=beta, nesterov=...):
    buf <- beta * buf + g;  p <- p - lr * (g + beta * buf if nesterov else buf)."""

    def init(params):
        return {"count": np.zeros((), np.int32), "buf": _zeros_like(params)}

    def update(grads, state, params):
        rate = _lr(lr, state["count"])
        if weight_decay:
            grads = tree_map(lambda g, p: g + weight_decay * p, grads, params)
        buf = tree_map(lambda b, g: beta * b + g, state["buf"], grads)
        direction = tree_map(lambda g, b: g + beta * b, grads, buf) if nesterov else buf
        new = tree_map(lambda p, d: p - _like(rate, p) * d, params, direction)
        return new, {"count": state["count"] + 1, "buf": buf}

    return Optimizer(init, update)


def _adam(lr: LearningRate, b1: float, b2: float, eps: float, weight_decay: float,
          decoupled: bool) -> Optimizer:
    def init(params):
        return {"count": np.zeros((), np.int32), "m": _zeros_like(params),
                "v": _zeros_like(params)}

    def update(grads, state, params):
        count = state["count"] + 1
        rate = _lr(lr, state["count"])
        if weight_decay and not decoupled:
            grads = tree_map(lambda g, p: g + weight_decay * p, grads, params)
        m = tree_map(lambda m, g: b1 * m + (1.0 - b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: b2 * v + (1.0 - b2) * (g * g), state["v"], grads)
        # Bias corrections 1 - beta**t, computed once and cast to each parameter's dtype.
        c1 = 1.0 - np.power(b1, count.astype(np.float64))
        c2 = 1.0 - np.power(b2, count.astype(np.float64))

        def step(p, m, v):
            m_hat = m / _like(c1, p)
            v_hat = v / _like(c2, p)
            r = _like(rate, p)
            if weight_decay and decoupled:
                p = p * (1.0 - r * weight_decay)
            return p - r * m_hat / (np.sqrt(v_hat) + eps)

        new = tree_map(step, params, m, v)
        return new, {"count": count, "m": m, "v": v}

    return Optimizer(init, update)


def adam(lr: LearningRate = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         weight_decay: float = 0.0) -> Optimizer:
    """Adam (torch.optim.Adam): m, v moving averages of g and g**2 with bias correction;
    p <- p - lr * m_hat / (sqrt(v_hat) + eps). weight_decay adds weight_decay * p to g."""
    return _adam(lr, b1, b2, eps, weight_decay, decoupled=False)


def adamw(lr: LearningRate = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-2) -> Optimizer:
    """AdamW (torch.optim.AdamW): Adam with decoupled weight decay,
    p <- p * (1 - lr * weight_decay) before the Adam step."""
    return _adam(lr, b1, b2, eps, weight_decay, decoupled=True)
