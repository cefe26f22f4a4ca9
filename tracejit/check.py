"""check_grads: tracejit's gradients against central finite differences in float64."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .api import grad, jvp, vjp
from .pytree import flatten, tree_map


def _float64(x):
    a = np.asarray(x)
    return a.astype(np.float64) if a.dtype.kind == "f" else x


def check_grads(f: Callable, args: Sequence, order: int = 1,
                modes: Sequence[str] = ("fwd", "rev"), atol: float = 1e-8, rtol: float = 1e-5,
                eps: float = 1e-6, *, argnums: int | Sequence[int] | None = None,
                directions: int = 3, seed: int = 0) -> float:
    """Check tracejit's derivatives of `f` against central differences in float64, up to
    `order`, in forward mode ("fwd": tracejit.jvp) and reverse mode ("rev": tracejit.grad),
    as JAX's jax.test_util.check_grads (same leading parameters).

    `f` is called with `args` (a sequence of pytrees) converted to float64; a non-scalar result
    is projected onto a fixed random cotangent, L(x) = sum(f(x) * r). For each of `directions`
    random directions v over the arguments in `argnums` (default: every argument with a
    floating-point leaf), the directional derivative <grad L, v> from tracejit must match
    (L(x + eps v) - L(x - eps v)) / (2 eps) within atol + rtol * max(|fd|, |ad|). In forward
    mode the directional derivative is the JVP along v. For order > 1 the derivative
    functions are checked in turn, as JAX does: (x, t) -> jvp(f, x, t)'s tangent in forward
    mode, and x -> vjp(f, x) applied to f(x) in reverse mode. Raises AssertionError saying
    which order, direction and mode failed; returns the largest relative error seen.
    """
    unknown = set(modes) - {"fwd", "rev"}
    if unknown or not modes:
        raise ValueError(f"check_grads: modes are 'fwd' and 'rev', got {tuple(modes)!r}")
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"check_grads: order must be a positive int, got {order!r}")
    rng = np.random.default_rng(seed)
    args = [tree_map(_float64, a) for a in args]
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args)
                        if any(np.asarray(x).dtype.kind == "f" or isinstance(x, float)
                               for x in flatten(a)[0]))
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise ValueError("check_grads: no floating-point argument to differentiate")
    worst = _check_once(f, args, nums, modes, eps, rtol, atol, directions, rng, "order 1")
    for k in range(2, order + 1):
        if "fwd" in modes:
            worst = max(worst, _check_higher(f, args, nums, k, "fwd", eps, rtol, atol,
                                             directions, rng))
        if "rev" in modes:
            worst = max(worst, _check_higher(f, args, nums, k, "rev", eps, rtol, atol,
                                             directions, rng))
    return worst


def _derivative(f: Callable, nums: tuple, mode: str, tangents: list):
    """f's derivative function of one mode (see check_grads), and the arguments it adds."""
    if mode == "fwd":
        n = len(tangents)

        def f_jvp(*xs):
            primals, ts = list(xs[:-n]), dict(zip(nums, xs[-n:]))
            full = tuple(ts[i] if i in ts else tree_map(lambda x: np.zeros(np.shape(x)), a)
                         for i, a in enumerate(primals))
            return _flat(jvp(f, tuple(primals), full)[1])
        return f_jvp

    def f_vjp(*xs):
        out, pullback = vjp(f, *xs)
        return _flat([pullback(out)[i] for i in nums])
    return f_vjp


def _flat(tree):
    """The leaves of a pytree of arrays as one vector (a traced one under tracing)."""
    leaves = [np.reshape(x, (-1,)) for x in flatten(tree)[0] if x is not None]
    return leaves[0] if len(leaves) == 1 else np.concatenate(leaves)


def _check_higher(f, args, nums, order, mode, eps, rtol, atol, directions, rng) -> float:
    # The derivative function of order - 1 of one mode, checked at order 1 in that mode.
    fun, fargs, fnums = f, list(args), nums
    for _ in range(order - 1):
        tangents = [tree_map(lambda x: rng.standard_normal(np.shape(x)), fargs[i])
                    for i in fnums] if mode == "fwd" else []
        fun = _derivative(fun, fnums, mode, tangents)
        if mode == "fwd":
            fnums = fnums + tuple(range(len(fargs), len(fargs) + len(tangents)))
            fargs = fargs + tangents
    return _check_once(fun, fargs, fnums, (mode,), eps, rtol, atol, directions, rng,
                       f"order {order}")


def _check_once(f, args, nums, modes, eps, rtol, atol, directions, rng, what: str) -> float:
    out = np.asarray(f(*args))
    r = rng.standard_normal(out.shape) if out.shape else np.float64(1.0)

    def loss(*xs):
        return np.sum(f(*xs) * r)

    g = grad(loss, argnums=nums)(*args) if "rev" in modes else None     # a tuple: nums is
    worst = 0.0
    for k in range(directions):
        v = [tree_map(lambda x: rng.standard_normal(np.shape(x)), args[i]) for i in nums]

        def moved(sign):
            xs = list(args)
            for i, vi in zip(nums, v):
                xs[i] = tree_map(lambda x, d: np.asarray(x) + sign * eps * d, args[i], vi)
            return float(loss(*xs))

        fd = (moved(+1) - moved(-1)) / (2 * eps)
        by_arg = dict(zip(nums, v))
        for mode in modes:
            if mode == "rev":
                ad = sum(float(np.sum(np.asarray(gl) * dl)) for gi, vi in zip(g, v)
                         for gl, dl in zip(flatten(gi)[0], flatten(vi)[0]))
            else:
                tangents = tuple(by_arg[i] if i in by_arg else
                                 tree_map(lambda x: np.zeros(np.shape(x)), a)
                                 for i, a in enumerate(args))
                ad = float(jvp(loss, tuple(args), tangents)[1])
            err = abs(fd - ad)
            scale = max(abs(fd), abs(ad))
            worst = max(worst, err / scale if scale else err)
            if err > atol + rtol * scale:
                raise AssertionError(
                    f"check_grads: {what}, direction {k} ({mode}): tracejit gives {ad!r}, "
                    f"finite differences {fd!r} (|difference| {err:.3g}, allowed "
                    f"{atol + rtol * scale:.3g})")
    return worst



