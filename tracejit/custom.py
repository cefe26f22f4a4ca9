"""custom_vjp, custom_jvp and checkpoint: functions with a derivative of the user's (or, for
checkpoint, one that computes its intermediates again instead of storing them), as JAX's.

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

custom_jvp is the same with a forward-mode rule (`f.defjvp(rule)`, or one rule per argument
with `f.defjvps`), recorded as `custom_jvp_call`; reverse mode transposes the rule (it must be
linear in the tangents, as JAX requires). `checkpoint` (JAX's jax.checkpoint, or remat)
records `checkpoint`, whose VJP computes the function's intermediates again from its
arguments, so the backward pass keeps only the arguments and the result.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np

from . import errors
from . import primitives as P
from .api import Spec, _function_name, trace_callable
from .autodiff import inline, vjp_function
from .ir import Function, is_float
from .passes import dce
from .pytree import flatten, unflatten
from .tracer import Trace, Tracer, current_trace


def _traced(f: Callable, args: tuple, name: str, what: str, kind: str = "custom_vjp",
            static_argnums=()):
    t = trace_callable(f, args, name=name, static_argnums=static_argnums)
    if t.captured:
        raise errors.user_error(errors.UnsupportedError, f"{kind} {name}: its {what} "
                                "uses a traced value it was not given as an argument; pass "
                                "it in as an argument")
    return t


def _one_array(t, name: str, kind: str) -> None:
    if t.out_tree.kind != "leaf":
        raise errors.user_error(errors.UnsupportedError, f"{kind} {name}: it returns "
                                f"{t.out_tree}; only functions of one array result are "
                                "supported yet")


def _operands(t) -> list:
    """The call's operands: the traced leaves, arrays of their parameter's dtype."""
    return [leaf if isinstance(leaf, Tracer) else np.asarray(leaf, p.type.np_dtype)
            for leaf, p in zip(t.leaves, t.fn.params)]


class _Custom:
    """What custom_vjp and custom_jvp share: the function, its arguments that are not
    differentiated (`nondiff_argnums`: Python values such as functions or sizes, passed to
    the function and first to its rules), and calls that record the primitive when traced
    (the function itself on plain arrays, and inside its own rules)."""

    kind = ""

    def __init__(self, fun: Callable, nondiff_argnums: int | tuple = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        nums = (nondiff_argnums,) if isinstance(nondiff_argnums, int) else nondiff_argnums
        self.nondiff = tuple(sorted(int(i) for i in nums))
        self._inside = False            # tracing its own rules or body (which may call it)

    def _defined(self) -> bool:
        raise NotImplementedError

    def _split(self, name: str, args: tuple) -> tuple[tuple, tuple]:
        """(the differentiated arguments, the others), checking the others' positions."""
        for i in self.nondiff:
            if not -len(args) <= i < len(args):
                raise errors.user_error(ValueError, f"{self.kind} {name}: nondiff_argnums "
                                        f"{self.nondiff} do not fit its {len(args)} "
                                        "arguments")
        fixed = {i % len(args) for i in self.nondiff}
        static = tuple(args[i] for i in sorted(fixed))
        if any(isinstance(leaf, Tracer) for a in static for leaf in flatten(a)[0]):
            raise errors.user_error(TypeError, f"{self.kind} {name}: an argument in "
                                    "nondiff_argnums is a traced value; pass arrays as "
                                    "ordinary arguments (nondiff_argnums are for Python "
                                    "values: functions, sizes, flags)")
        return tuple(a for i, a in enumerate(args) if i not in fixed), static

    def _full(self, dynamic, static) -> list:
        """The function's arguments from the differentiated ones and the others."""
        n = len(dynamic) + len(static)
        fixed = sorted(i % n for i in self.nondiff)
        dyn, stat = iter(dynamic), iter(static)
        return [next(stat) if i in fixed else next(dyn) for i in range(n)]

    def __call__(self, *args):
        name = _function_name(self.fun)
        if not self._defined():
            rule = "defvjp(fwd, bwd)" if self.kind == "custom_vjp" else "defjvp(rule)"
            raise errors.user_error(TypeError, f"{self.kind} {name}: call {rule} before "
                                    "calling it")
        if current_trace() is None or self._inside:
            return self.fun(*args)      # plain arrays, or its rules calling the function
        dynamic, static = self._split(name, args)
        self._inside = True
        try:
            return self._bind(name, dynamic, static)
        finally:
            self._inside = False


class custom_vjp(_Custom):
    """Decorate a function to give it a VJP of your own with `f.defvjp(fwd, bwd)`:
    fwd(*args) -> (output, residuals); bwd(residuals, g) -> a tuple of one cotangent per
    argument (a pytree like it, or None for zeros). With `nondiff_argnums`, bwd takes those
    arguments first, bwd(*nondiff, residuals, g), and gives cotangents for the others only,
    as JAX's."""

    kind = "custom_vjp"

    def __init__(self, fun: Callable, nondiff_argnums: int | tuple = ()):
        super().__init__(fun, nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """Set the forward function (output and residuals) and the backward rule."""
        self.fwd, self.bwd = fwd, bwd

    def _defined(self) -> bool:
        return self.fwd is not None and self.bwd is not None

    def _bind(self, name: str, args: tuple, static: tuple):
        t_fun = _traced(lambda *a: self.fun(*self._full(a, static)), args, name, "function")
        _one_array(t_fun, name, self.kind)
        t_fwd = _traced(lambda *a: self.fwd(*self._full(a, static)), args, f"{name}_fwd",
                        "fwd")
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
            cts = self.bwd(*static, residuals, g)
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
        return P.custom_vjp_call(*_operands(t_fun), name=name, fun=_named(t_fun.fn, name),
                                 fwd=t_fwd.fn, bwd=t_bwd.fn)


def _named(fn: Function, name: str) -> Function:
    return dataclasses.replace(fn, name=name)


class custom_jvp(_Custom):
    """Decorate a function to give it a forward-mode derivative of your own, as JAX's:

        @tj.custom_jvp
        def f(x, y): ...

        @f.defjvp
        def f_jvp(primals, tangents):        # tuples like the arguments
            x, y = primals
            dx, dy = tangents
            return f(x, y), <the tangent of the output, linear in dx and dy>

    or one rule per argument, `f.defjvps(lambda dx, out, x, y: ..., None)` (None: the output
    does not depend on that argument). Reverse mode (grad) uses the transpose of the rule.
    The tangents of arguments that are not floating point are zeros. With `nondiff_argnums`,
    the rule takes those arguments first, rule(*nondiff, primals, tangents), and primals and
    tangents hold the others only, as JAX's."""

    kind = "custom_jvp"

    def __init__(self, fun: Callable, nondiff_argnums: int | tuple = ()):
        super().__init__(fun, nondiff_argnums)
        self.jvp: Callable | None = None

    def defjvp(self, jvp: Callable) -> Callable:
        """Set the rule jvp(primals, tangents) -> (output, output tangent); returns it (so it
        may be used as a decorator)."""
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps: Callable | None) -> None:
        """Set one rule per argument: jvps[i](tangent_i, output, *primals) is that argument's
        part of the output tangent (None: none); the output tangent is their sum."""
        def rule(*args):
            *static, primals, tangents = args
            if len(jvps) != len(primals):
                raise errors.user_error(TypeError, f"custom_jvp: defjvps got {len(jvps)} "
                                        f"rules for {len(primals)} arguments")
            out = self.fun(*self._full(primals, static))
            total = None
            for r, t in zip(jvps, tangents):
                if r is not None:
                    term = r(t, out, *self._full(primals, static))
                    total = term if total is None else total + term
            return out, np.zeros_like(out) if total is None else total
        self.jvp = rule

    def _defined(self) -> bool:
        return self.jvp is not None

    def _bind(self, name: str, args: tuple, static: tuple):
        t_fun = _traced(lambda *a: self.fun(*self._full(a, static)), args, name, "function",
                        self.kind)
        _one_array(t_fun, name, self.kind)
        out_t = t_fun.fn.results[0].type
        if not is_float(out_t.dtype):
            raise errors.user_error(TypeError, f"custom_jvp {name}: its output is {out_t}; "
                                    "a derivative needs a floating-point output")
        types = [p.type for p in t_fun.fn.params]
        floats = [k for k, t in enumerate(types) if is_float(t.dtype)]
        trees = [flatten(a)[1] for a in args]

        def rule_flat(*flat):
            primal_leaves, tangent_leaves = flat[:len(types)], flat[len(types):]
            by_leaf = dict(zip(floats, tangent_leaves))
            tangent_all = [by_leaf[k] if k in by_leaf else np.zeros(t.shape, t.np_dtype)
                           for k, t in enumerate(types)]
            primals, tangents, start = [], [], 0
            for tree in trees:
                n = tree.num_leaves
                primals.append(unflatten(tree, primal_leaves[start:start + n]))
                tangents.append(unflatten(tree, tangent_all[start:start + n]))
                start += n
            got = self.jvp(*static, tuple(primals), tuple(tangents))
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise errors.user_error(TypeError, f"custom_jvp {name}: the rule must return "
                                        "a pair (output, output tangent)")
            out, tangent = got
            for what, v in (("output", out), ("output tangent", tangent)):
                if tuple(np.shape(v)) != out_t.shape:
                    raise errors.user_error(errors.ShapeError, f"custom_jvp {name}: the "
                                            f"rule's {what} has shape {np.shape(v)}; the "
                                            f"function's output is {out_t}")
            return (out.astype(out_t.np_dtype) if isinstance(out, Tracer)
                    else np.asarray(out, out_t.np_dtype),
                    tangent.astype(out_t.np_dtype) if isinstance(tangent, Tracer)
                    else np.asarray(tangent, out_t.np_dtype))

        specs = [Spec(t.shape, t.dtype) for t in types] + \
            [Spec(types[k].shape, types[k].dtype) for k in floats]
        jvp_fn = _traced(rule_flat, tuple(specs), f"{name}_jvp", "jvp rule", self.kind).fn
        # The transpose of the tangent map: reverse mode over the rule's output tangent, with
        # respect to the tangents.
        tangent_map = dataclasses.replace(jvp_fn, results=jvp_fn.results[1:])
        transposed = vjp_function(tangent_map, range(len(types), len(types) + len(floats)),
                                  seed="param", keep_outputs=False, name=f"{name}_transposed")
        return P.custom_jvp_call(*_operands(t_fun), name=name, fun=_named(t_fun.fn, name),
                                 jvp=jvp_fn, transposed=transposed)


def _behind_barrier(fn: Function) -> Function:
    """fn with each parameter passed through optimization_barrier first."""
    with Trace(fn.name) as trace:
        args = [trace.new_param(p.type) for p in fn.params]
        outs = inline(fn, [P.optimization_barrier(a) for a in args])
        out, _ = trace.finish(outs)
    return out


def checkpoint(fun: Callable, *, prevent_cse: bool = True, policy=None,
               static_argnums: int | tuple = ()) -> Callable:
    """`fun`, rematerialised under differentiation (JAX's jax.checkpoint, also `remat`): the
    backward pass computes fun's intermediates again from its arguments instead of keeping
    them from the forward pass, trading computation for memory (the buffer plan's peak, in
    the compiled program's report). Each array of fun's result is one `checkpoint` equation
    in the IR (its name is fun's); the pipeline inlines it. `prevent_cse=False` lets the
    optimiser merge the recomputation with the forward pass (saving nothing, as in JAX)."""
    if policy is not None:
        raise errors.user_error(errors.UnsupportedError, "checkpoint: policies (which "
                                "intermediates to keep) are not supported; every intermediate "
                                "of the function is computed again")
    name = _function_name(fun)
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    @functools.wraps(fun, updated=())
    def checkpointed(*args):
        if current_trace() is None:
            return fun(*args)
        # Values the function closes over are operands too: they get their cotangents.
        t = trace_callable(fun, args, name=name, static_argnums=static)
        operands = _operands(t) + list(t.captured)
        results = []
        for k, r in enumerate(t.fn.results):
            one = dce(dataclasses.replace(t.fn, name=name, results=(r,)))
            if not is_float(r.type.dtype):         # no gradient flows: the function itself
                results.append(inline(one, operands)[0])
                continue
            again = _behind_barrier(one) if prevent_cse else one
            floats = [i for i, p in enumerate(one.params) if is_float(p.type.dtype)]
            bwd = vjp_function(again, floats, seed="param", keep_outputs=False,
                               name=f"{name}_backward")
            results.append(P.checkpoint(*operands, name=name, fun=one, bwd=bwd))
        return unflatten(t.out_tree, results)

    checkpointed.__name__ = f"checkpoint_{name}"
    return checkpointed


#: jax.remat is jax.checkpoint.
remat = checkpoint
