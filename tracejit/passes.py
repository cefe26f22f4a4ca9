"""Passes: each a function Function -> Function, run as an explicit ordered pipeline."""

from __future__ import annotations

from typing import Callable

from .ir import Function, Var


def dce(fn: Function) -> Function:
    """Dead-code elimination: drop equations whose output no result depends on.

    Every primitive is pure, so an unused equation can always go.
    """
    live = {r for r in fn.results if isinstance(r, Var)}
    kept = []
    for eqn in reversed(fn.eqns):
        if eqn.out in live:
            kept.append(eqn)
            live.update(a for a in eqn.inputs if isinstance(a, Var))
    return Function(fn.name, fn.params, tuple(reversed(kept)), fn.results)


#: The optimisation pipeline, in order: (name, pass).
PIPELINE: list[tuple[str, Callable[[Function], Function]]] = [
    ("dce", dce),
]


def optimize(fn: Function, verify_each: bool = False) -> Function:
    """Run every pass of PIPELINE in order (verifying after each when asked)."""
    from .ir import verify
    for _, p in PIPELINE:
        fn = p(fn)
        if verify_each:
            verify(fn)
    return fn
