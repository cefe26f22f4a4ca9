"""check_grads: tracejit's gradients against central finite differences in float64."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .api import grad, jvp
from .pytree import flatten, tree_map


def _float64(x):
    a = np.asarray(x)
    return a.astype(np.float64) if a.dtype.kind == "f" else x


def check_grads(f: Callable, args: Sequence, argnums: int | Sequence[int] | None = None, *,
                eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8,
                directions: int = 3, seed: int = 0,
                modes: Sequence[str] = ("fwd", "rev")) -> float:
    """Check `tracejit.grad(f)` ("rev") and `tracejit.jvp(f)` ("fwd") against central
    differences, in float64.

    `f` is called with `args` (a sequence of pytrees) converted to float64; a non-scalar result
    is projected onto a fixed random cotangent, L(x) = sum(f(x) * r). For each of `directions`
    random directions v over the arguments in `argnums` (default: every argument with a
    floating-point leaf), the directional derivative <grad L, v> from tracejit must match
    (L(x + eps v) - L(x - eps v)) / (2 eps) within atol + rtol * max(|fd|, |ad|). Raises
    AssertionError saying which direction and mode failed; returns the largest relative
    error seen. In forward mode the directional derivative is the JVP along v.
    """
    unknown = set(modes) - {"fwd", "rev"}
    if unknown or not modes:
        raise ValueError(f"check_grads: modes are 'fwd' and 'rev', got {tuple(modes)!r}")
    rng = np.random.default_rng(seed)
    args = [tree_map(_float64, a) for a in args]
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args)
                        if any(np.asarray(x).dtype.kind == "f" or isinstance(x, float)
                               for x in flatten(a)[0]))
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise ValueError("check_grads: no floating-point argument to differentiate")
    out = np.asarray(f(*args))
    r = rng.standard_normal(out.shape) if out.shape else np.float64(1.0)

    def loss(*xs):
        return np.sum(f(*xs) * r)

    g = grad(loss, argnums=nums)(*args) if "rev" in modes else None
    g = (g,) if isinstance(argnums, int) and g is not None else g
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
                    f"check_grads: direction {k} ({mode}): tracejit gives {ad!r}, finite "
                    f"differences {fd!r} (|difference| {err:.3g}, allowed "
                    f"{atol + rtol * scale:.3g})")
    return worst



