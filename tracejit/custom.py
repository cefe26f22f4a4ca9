"""custom_vjp: a function with a reverse-mode derivative of the user's, as JAX's.

    @tj.custom_vjp
    def log1pexp(x):
        return np.log1p(np.exp(x))

    def fwd(x):
        return log1pexp(x), x                    # the output, and residuals for bwd

    def bwd(x, g):
        return (g / (1 + np.exp(-x)),)           # one cotangent per argument

    log1pexp.defvjp(fwd, bwd)

Traced (under grad, jit, jvp, ...), a call records one `custom_vjp_call` equation that holds
the three as Functions and prints as a unit with the function's name; its VJP rule runs fwd
(again: residuals are recomputed, not stored) and bwd, every transformation meets the user's
rule (forward mode derives its tangent from it), and the pipeline's first pass inlines the
function before fusion. Called on plain arrays, it is the function itself.

The function takes arrays (pytrees of them) and returns one array; it may not close over
traced values (pass them as arguments), which says so.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np

from . import errors
from . import primitives as P
from .api import Spec, _function_name, trace_callable
from .ir import Function
from .pytree import flatten, unflatten
from .tracer import Tracer, current_trace


def _traced(f: Callable, args: tuple, name: str, what: str):
    t = trace_callable(f, args, name=name)
    if t.captured:
        raise errors.user_error(errors.UnsupportedError, f"custom_vjp {name}: its {what} "
                                "uses a traced value it was not given as an argument; pass "
                                "it in as an argument")
    return t


class custom_vjp:
    """Decorate a function to give it a VJP of your own with `f.defvjp(fwd, bwd)`:
    fwd(*args) -> (output, residuals); bwd(residuals, g) -> a tuple of one cotangent per
    argument (a pytree like it, or None for zeros)."""

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None
        self._inside = False            # tracing its own fwd, bwd or body (which may call it)

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """Set the forward function (output and residuals) and the backward rule."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args):
        name = _function_name(self.fun)
        if self.fwd is None or self.bwd is None:
            raise errors.user_error(TypeError, f"custom_vjp {name}: call defvjp(fwd, bwd) "
                                    "before calling it")
        if current_trace() is None or self._inside:
            return self.fun(*args)      # plain arrays, or fwd calling the function itself
        self._inside = True
        try:
            return self._bind(name, args)
        finally:
            self._inside = False

    def _bind(self, name: str, args: tuple):
        t_fun = _traced(self.fun, args, name, "function")
        if t_fun.out_tree.kind != "leaf":
            raise errors.user_error(errors.UnsupportedError, f"custom_vjp {name}: it returns "
                                    f"{t_fun.out_tree}; only functions of one array result are "
                                    "supported yet")
        t_fwd = _traced(self.fwd, args, f"{name}_fwd", "fwd")
        tree = t_fwd.out_tree
        if tree.kind not in ("tuple", "list") or len(tree.children) != 2 or \
                tree.children[0].kind != "leaf":
            raise errors.user_error(TypeError, f"custom_vjp {name}: fwd must return a pair "
                                    "(output, residuals) whose output is one array")
        out_t, res = t_fwd.fn.results[0].type, t_fwd.fn.results[1:]
        if out_t != t_fun.fn.results[0].type:
            raise errors.user_error(TypeError, f"custom_vjp {name}: fwd's output is {out_t}, "
                                    f"the function's {t_fun.fn.results[0].type}")
        res_specs = unflatten(tree.children[1], [Spec(r.type.shape, r.type.dtype)
                                                 for r in res])
        leaves_of = [flatten(a)[0] for a in args]
        params = iter(t_fun.fn.params)
        types = [[next(params).type for _ in leaves] for leaves in leaves_of]

        def bwd_flat(residuals, g):
            cts = self.bwd(residuals, g)
            if not isinstance(cts, (tuple, list)) or len(cts) != len(args):
                raise errors.user_error(TypeError, f"custom_vjp {name}: bwd must return a "
                                        f"tuple of {len(args)} cotangents, one per argument")
            flat = []
            for k, (ct, arg_types) in enumerate(zip(cts, types)):
                leaves = [None] * len(arg_types) if ct is None else flatten(ct)[0]
                if len(leaves) != len(arg_types):
                    raise errors.user_error(TypeError, f"custom_vjp {name}: bwd's cotangent "
                                            f"{k} has {len(leaves)} arrays; argument {k} has "
                                            f"{len(arg_types)}")
                for leaf, t in zip(leaves, arg_types):
                    if leaf is None:
                        leaf = np.zeros(t.shape, t.np_dtype)
                    if tuple(np.shape(leaf)) != t.shape:
                        raise errors.user_error(errors.ShapeError, f"custom_vjp {name}: bwd's "
                                                f"cotangent {k} has shape {np.shape(leaf)}; "
                                                f"its argument is {t}")
                    flat.append(leaf.astype(t.np_dtype) if isinstance(leaf, Tracer)
                                else np.asarray(leaf, t.np_dtype))
            return flat

        t_bwd = _traced(bwd_flat, (res_specs, Spec(out_t.shape, out_t.dtype)), f"{name}_bwd",
                        "bwd")
        operands = [leaf if isinstance(leaf, Tracer) else np.asarray(leaf, p.type.np_dtype)
                    for leaf, p in zip(t_fun.leaves, t_fun.fn.params)]
        return P.custom_vjp_call(*operands, name=name, fun=_named(t_fun.fn, name),
                                 fwd=t_fwd.fn, bwd=t_bwd.fn)


def _named(fn: Function, name: str) -> Function:
    return dataclasses.replace(fn, name=name)
