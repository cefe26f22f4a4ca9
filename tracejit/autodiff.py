"""Reverse-mode differentiation as an IR -> IR transform.

`vjp_function(fn, wrt)` builds a new Function that recomputes `fn`'s equations and then walks
them backwards, calling each primitive's VJP rule on the output cotangent and summing the
cotangents that reach each value (micrograd's algorithm on JAX-style data). The result is
ordinary IR, so it can be optimised, fused, compiled, and differentiated again.

Only floating-point values carry cotangents: integer and boolean values, and values that do
not depend on a differentiated parameter, are constants to the backward walk.
"""

from __future__ import annotations

from typing import Sequence

from . import errors, ops
from .ir import Function, Literal, Type, Var, format_eqn, is_float, names_of
from .passes import dce
from .tracer import Trace, current_trace, replay_each


def inline(fn: Function, args: Sequence, env: dict | None = None) -> list:
    """Replay `fn`'s equations in the current trace on `args`; returns its results. `env`,
    when given, receives the value of each of fn's Vars.

    Each replayed equation keeps the source location it had in `fn`.
    """
    trace = current_trace()
    env = {} if env is None else env
    env.update(zip(fn.params, args))

    def step(eqn):
        inputs = [a if isinstance(a, Literal) else env[a] for a in eqn.inputs]
        env[eqn.out] = trace.bind(eqn.prim, inputs, dict(eqn.params))

    replay_each(fn, step)
    return [r.value if isinstance(r, Literal) else env[r] for r in fn.results]


def active_vars(fn: Function, wrt: Sequence[int]) -> set[Var]:
    """The float values that depend on the parameters `wrt` (the ones that need cotangents)."""
    active = {fn.params[i] for i in wrt}
    for eqn in fn.eqns:
        if is_float(eqn.out.dtype) and any(isinstance(a, Var) and a in active
                                           for a in eqn.inputs):
            active.add(eqn.out)
    return active


def backward(fn: Function, env: dict, wrt: Sequence[int], seeds: Sequence) -> list:
    """Walk `fn` backwards from `seeds` (one cotangent or None per result) in the current
    trace, where `env` maps fn's Vars to their replayed values. Returns one cotangent per
    parameter in `wrt` (zeros where nothing flows)."""
    trace = current_trace()
    active = active_vars(fn, wrt)
    cts: dict[Var, object] = {}

    def accumulate(v: Var, c):
        got = ops.type_of(c)
        if got != v.type:
            raise AssertionError(f"internal: cotangent {got} for a value of type {v.type}")
        cts[v] = ops.add(cts[v], c) if v in cts else c

    for r, seed in zip(fn.results, seeds):
        if seed is not None and isinstance(r, Var) and r in active:
            accumulate(r, seed)
    saved = trace.loc_override
    try:
        for eqn in reversed(fn.eqns):
            g = cts.pop(eqn.out, None)
            if g is None:
                continue
            trace.loc_override = eqn.loc
            inputs = [a.value if isinstance(a, Literal) else env[a] for a in eqn.inputs]
            if eqn.prim.vjp is None:
                raise AssertionError(f"internal: {eqn.prim.name} has no VJP rule")
            in_cts = list(eqn.prim.vjp(g, *inputs, out=env[eqn.out], **eqn.params))
            if len(in_cts) != len(eqn.inputs):
                raise AssertionError(f"internal: VJP of {format_eqn(eqn, names_of(fn))} gave "
                                     f"{len(in_cts)} cotangents for {len(eqn.inputs)} inputs")
            for a, c in zip(eqn.inputs, in_cts):
                if c is not None and isinstance(a, Var) and a in active:
                    accumulate(a, c)
    finally:
        trace.loc_override = saved
    grads = []
    for i in wrt:
        p = fn.params[i]
        grads.append(cts[p] if p in cts else ops.zeros(p.type))
    return grads


def vjp_function(fn: Function, wrt: Sequence[int], *, seed: str = "one",
                 keep_outputs: bool = True, name: str | None = None) -> Function:
    """The IR of the vector-Jacobian product of `fn` with respect to parameters `wrt`.

    seed='one': `fn` has a float first result of size 1 (the loss: a scalar, or of a shape
    such as (1,) or (1, 1)); its cotangent is 1, of the loss's shape, and the other results
    (auxiliary outputs) get none. The new Function takes fn's parameters.
    seed='param': the new Function takes fn's parameters followed by one cotangent per result
    of `fn` (float results only; others take no cotangent parameter).
    It returns fn's results (when keep_outputs) followed by one gradient per `wrt` parameter.
    """
    with Trace(name or f"vjp_{fn.name}") as trace:
        args = [trace.new_param(p.type) for p in fn.params]
        if seed == "one":
            loss = fn.results[0].type
            seeds = [ops.full(loss, 1.0)] + [None] * (len(fn.results) - 1)
        else:
            seeds = [trace.new_param(r.type) if is_float(r.type.dtype) else None
                     for r in fn.results]
        env: dict[Var, object] = {}
        outs = inline(fn, args, env)
        grads = backward(fn, env, wrt, seeds)
        result, captured = trace.finish((outs if keep_outputs else []) + grads)
    assert not captured
    return dce(result)


def check_differentiable(t: Type, what: str) -> None:
    if not is_float(t.dtype):
        raise errors.user_error(
            errors.GradError, f"{what} has dtype {t.dtype}; gradients are only defined for "
            f"floating-point arguments (f32, f64): convert it with .astype(np.float32), or "
            f"leave it out of argnums")

