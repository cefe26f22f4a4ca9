"""Forward-mode differentiation as an IR -> IR transform.

`jvp_function(fn, wrt)` builds a new Function that computes `fn`'s results and, beside each
float value that depends on the parameters `wrt`, its tangent: the Jacobian-vector product
J t pushed forward equation by equation. A primitive's tangent comes from its JVP rule
(`Primitive.jvp`) where it has one (the linear primitives: the primitive applied to the
tangents, and dot's bilinear rule), and is otherwise derived from its VJP rule, which is
linear in the cotangent g:

- elementwise primitives have diagonal Jacobians, so J t is the sum over the operands of
  vjp_i(t_i): the VJP rule with the tangent as its cotangent (each operand at the output's
  shape, so that the rule's sums over broadcasts do not apply);
- for the others, J t is the gradient, with respect to g, of the sum over the inputs of
  <vjp_i(g), t_i> (the transpose of the transpose): reverse mode on a small Function of g,
  inlined; the passes simplify what it records.

Either way the result is ordinary IR: optimised, fused, compiled on every backend,
differentiated again.

Integer and boolean values have no tangent (JAX's float0): they are constants here.
"""

from __future__ import annotations

from typing import Sequence

from . import ops
from .autodiff import inline, vjp_function
from .ir import Eqn, Function, Literal, Var, is_float
from .passes import dce
from .tracer import ELEMENTWISE, Trace, current_trace, replay_each


def derived_jvp(eqn: Eqn, primals: list, tangents: list, out):
    """The tangent of `eqn`'s output from its VJP rule (see the module docstring)."""
    with Trace(f"jvp_{eqn.prim.name}") as inner:
        g = inner.new_param(eqn.out.type)
        cts = eqn.prim.vjp(g, *primals, out=out, **eqn.params)
        total = None
        for c, t in zip(cts, tangents):
            if c is None or t is None:
                continue
            term = ops.mul(c, t)
            if ops.type_of(term).ndim:
                term = ops.reduce_sum(term, tuple(range(ops.type_of(term).ndim)))
            total = term if total is None else ops.add(total, term)
        if total is None:                       # no input's tangent reaches the output
            return None
        fn, captured = inner.finish([total])
    back = vjp_function(fn, [0], seed="one", keep_outputs=False, name=f"jvp_{eqn.prim.name}")
    (tangent,) = inline(back, [ops.zeros(eqn.out.type)] + list(captured))
    return tangent


def diagonal_jvp(eqn: Eqn, primals: list, tangents: list, out):
    """The tangent of an elementwise equation: sum_i vjp_i(t_i) (see the module docstring)."""
    shape = eqn.out.type.shape
    total = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        operands = list(primals)
        if ops.type_of(operands[i]).shape != shape:       # a rank-0 operand broadcast
            operands[i] = ops.broadcast_to(operands[i], shape)
            t = ops.broadcast_to(t, shape)
        term = eqn.prim.vjp(t, *operands, out=out, **eqn.params)[i]
        if term is not None:
            total = term if total is None else ops.add(total, term)
    return total


def push_forward(fn: Function, env: dict, tangents: dict) -> None:
    """Replay `fn` in the current trace, `env` mapping its Vars to their values (its params
    given) and `tangents` the tangents of the Vars that have one (its params' given); both
    are filled in for every equation."""
    trace = current_trace()

    def step(eqn):
        primals = [a.value if isinstance(a, Literal) else env[a] for a in eqn.inputs]
        env[eqn.out] = trace.bind(eqn.prim, [a if isinstance(a, Literal) else env[a]
                                             for a in eqn.inputs], dict(eqn.params))
        ts = [tangents.get(a) if isinstance(a, Var) else None for a in eqn.inputs]
        if not is_float(eqn.out.dtype) or all(t is None for t in ts):
            return
        if eqn.prim.jvp is not None:
            t = eqn.prim.jvp(eqn.prim, ts, *primals, out=env[eqn.out], **eqn.params)
        elif eqn.prim.category is ELEMENTWISE:
            t = diagonal_jvp(eqn, primals, ts, env[eqn.out])
        else:
            t = derived_jvp(eqn, primals, ts, env[eqn.out])
        if t is not None:
            tangents[eqn.out] = t

    replay_each(fn, step)


def jvp_function(fn: Function, wrt: Sequence[int], name: str | None = None) -> Function:
    """The IR of the Jacobian-vector product of `fn` along tangents of the parameters `wrt`
    (float ones): the new Function takes fn's parameters followed by one tangent per `wrt`
    parameter, and returns fn's results followed by one tangent per float result (zeros
    where no tangent reaches it)."""
    with Trace(name or f"jvp_{fn.name}") as trace:
        args = [trace.new_param(p.type) for p in fn.params]
        env: dict = dict(zip(fn.params, args))
        tangents = {fn.params[i]: trace.new_param(fn.params[i].type) for i in wrt}
        push_forward(fn, env, tangents)
        outs = [r.value if isinstance(r, Literal) else env[r] for r in fn.results]
        touts = [tangents[r] if isinstance(r, Var) and r in tangents else ops.zeros(r.type)
                 for r in fn.results if is_float(r.type.dtype)]
        result, captured = trace.finish(outs + touts)
    if captured:
        raise RuntimeError("internal: the JVP of a Function captured outer values")
    return dce(result)
