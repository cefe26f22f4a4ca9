"""Batching (vmap) as an IR -> IR transform.

`vmap_function(fn, batched, size)` builds a new Function that computes `fn` for `size`
examples at once: each parameter marked batched has a leading batch axis of `size`, the
others are shared by every example. Equation by equation, a value is batched when an input
of its equation is; such an equation is replaced by its primitive's batching rule
(`Primitive.batch`, defined with the primitive: elementwise operations broadcast their shared
operands, reductions, views and sorts move their axes one place on, a dot makes the batch axis
one more batch axis of the contraction), and the others are kept as they are, computed once
for all examples. The batch axis stays in front of every batched value, so the result is
ordinary IR whose kernels loop over the examples inside: fused, compiled on every backend,
differentiated, batched again.

`vmap(fun, in_axes, out_axes)` is the user's transform, with JAX's signature and semantics.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from . import errors
from . import primitives as P
from .api import Spec, _function_name, _holds_no_array, _run, _user_value, trace_callable
from .ir import Function, Literal, Type, Var
from .passes import dce
from .pytree import flatten, unflatten
from .tracer import Trace, Tracer, current_trace, replay_each, type_of


def batch_eqns(fn: Function, env: dict, batched: set, size: int) -> None:
    """Replay `fn` batched in the current trace: `env` maps its params to their values and
    `batched` holds the params whose values have the batch axis; both are filled in for every
    equation."""
    trace = current_trace()

    def step(eqn):
        inputs = [a.value if isinstance(a, Literal) else env[a] for a in eqn.inputs]
        flags = [isinstance(a, Var) and a in batched for a in eqn.inputs]
        if not any(flags):
            env[eqn.out] = trace.bind(eqn.prim, inputs, dict(eqn.params))
            return
        if eqn.prim.batch is None:
            raise RuntimeError(f"internal: {eqn.prim.name} has no batching rule")
        out = eqn.prim.batch(eqn.prim, size, inputs, flags, **eqn.params)
        want = Type((size,) + eqn.out.type.shape, eqn.out.type.dtype)
        if type_of(out) != want:
            raise RuntimeError(f"internal: the batching rule of {eqn.prim.name} gave "
                               f"{type_of(out)} for {want}")
        env[eqn.out] = out
        batched.add(eqn.out)

    replay_each(fn, step)


def vmap_function(fn: Function, batched: Sequence[bool], size: int, *,
                  name: str | None = None, all_batched: bool = False
                  ) -> tuple[Function, list[bool]]:
    """The IR of `fn` over `size` examples: the parameters marked in `batched` take a leading
    batch axis. Returns the Function and, per result, whether it has the batch axis (every
    result has it with `all_batched`: the shared ones are broadcast)."""
    with Trace(name or f"vmap_{fn.name}") as trace:
        args = [trace.new_param(Type((size,) + p.type.shape, p.type.dtype) if b else p.type)
                for p, b in zip(fn.params, batched)]
        env: dict = dict(zip(fn.params, args))
        have = {p for p, b in zip(fn.params, batched) if b}
        batch_eqns(fn, env, have, size)
        outs, flags = [], []
        for r in fn.results:
            value = r.value if isinstance(r, Literal) else env[r]
            is_batched = isinstance(r, Var) and r in have
            if all_batched and not is_batched:
                value, is_batched = P._batched(value, size), True
            outs.append(value)
            flags.append(is_batched)
        result, captured = trace.finish(outs)
    if captured:
        raise RuntimeError("internal: the batched Function captured outer values")
    return dce(result), flags


# ---------------------------------------------------------------------------------------------
# the batching rule of the calls of sub-Functions: each sub-Function batched


def _batch_call(prim, size, args, batched, **params):
    # Every operand batched (a shared one broadcast: its cotangent is then the broadcast's,
    # summed over the examples), so that the sub-Functions (the function and its derivative
    # rules) take batched values only, and return them.
    operands = [x if b else P._batched(x, size) for x, b in zip(args, batched)]
    batched_params = {
        k: vmap_function(v, [True] * len(v.params), size, name=v.name, all_batched=True)[0]
        if isinstance(v, Function) else v for k, v in params.items()}
    return P.bind(prim, *operands, **batched_params)


for _prim in P.of_category(P.CALL):
    _prim.batch = _batch_call


# ---------------------------------------------------------------------------------------------
# vmap


def _is_axis(spec) -> bool:
    return spec is None or isinstance(spec, (int, np.integer)) and not isinstance(spec, bool)


def _leaf_axes(spec, tree, what: str) -> list:
    """The axis of each leaf of `tree` from `spec`, an axis (int or None) for the whole tree
    or a tree prefix of it (JAX's in_axes and out_axes)."""
    if _is_axis(spec):
        return [None if spec is None else int(spec)] * len(flatten(tree)[0])
    if isinstance(spec, dict) and isinstance(tree, dict) and sorted(spec) == sorted(tree):
        return [a for k in sorted(tree) for a in _leaf_axes(spec[k], tree[k], what)]
    if isinstance(spec, (tuple, list)) and isinstance(tree, (tuple, list)) and \
            len(spec) == len(tree):
        return [a for s, t in zip(spec, tree) for a in _leaf_axes(s, t, what)]
    raise errors.user_error(ValueError, f"vmap {what}: the axes {spec!r} do not fit its "
                            f"structure {flatten(tree)[1]} (give one axis, an int or None, or "
                            "a prefix of the structure)")


def _moved(x, source: int, dest: int):
    if isinstance(x, Tracer):
        return np.moveaxis(x, source, dest)
    return np.ascontiguousarray(np.moveaxis(np.asarray(x), source, dest))


def _positional_axes(in_axes, nargs: int, fname: str) -> list:
    if _is_axis(in_axes) or isinstance(in_axes, dict):
        if isinstance(in_axes, dict):
            raise errors.user_error(ValueError, f"vmap of {fname}: in_axes must be an int, "
                                    "None, or a tuple with one entry per positional argument; "
                                    "got a dict")
        return [in_axes] * nargs
    if not isinstance(in_axes, (tuple, list)):
        raise errors.user_error(TypeError, f"vmap of {fname}: in_axes must be an int, None, or "
                                f"a tuple of them per argument; got {in_axes!r}")
    if len(in_axes) != nargs:
        raise errors.user_error(ValueError, f"vmap of {fname}: in_axes has {len(in_axes)} "
                                f"entries, but {fname} was called with {nargs} positional "
                                "arguments")
    return list(in_axes)


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0, axis_name: Any = None,
         axis_size: int | None = None, spmd_axis_name: Any = None) -> Callable:
    """`fun` mapped over an axis of its arguments, as JAX's jax.vmap: the batched function
    takes arrays with one more axis (at `in_axes`) and returns results with one more axis
    (at `out_axes`), computing every example in one program (not a loop of calls).

    `in_axes` is an int (the mapped axis of every argument), None (not mapped: shared by
    every example), or a tuple with one entry per positional argument, each an axis or a
    pytree prefix of that argument; keyword arguments are mapped over their axis 0.
    `out_axes` is an axis or a pytree prefix of the result; None is allowed for results that
    do not depend on a mapped argument. `axis_size` gives the number of examples when no
    argument is mapped. Arguments that are not mapped and hold no array (Python numbers,
    strings) reach `fun` as they are. Composes with jit, grad, jvp and vmap itself.
    """
    fname = _function_name(fun)
    if axis_name is not None or spmd_axis_name is not None:
        raise errors.user_error(errors.UnsupportedError, f"vmap of {fname}: axis_name and "
                                "spmd_axis_name (named axes for collectives) are not "
                                "supported")

    @functools.wraps(fun, updated=())
    def batched_fun(*args, **kwargs):
        per_arg = _positional_axes(in_axes, len(args), fname)
        axes = [_leaf_axes(spec, a, f"in_axes of argument {i} of {fname}")
                for i, (spec, a) in enumerate(zip(per_arg, args))]
        static = [i for i, (a, ax) in enumerate(zip(args, axes))
                  if all(x is None for x in ax) and _holds_no_array(a)]
        dynamic = tuple(a for i, a in enumerate(args) if i not in static)
        leaves, tree = flatten((dynamic, kwargs))
        leaf_axes = [x for i, ax in enumerate(axes) if i not in static for x in ax] + \
            [0] * len(flatten(kwargs)[0])
        size = _mapped_size(leaves, leaf_axes, axis_size, fname)
        examples, moved = [], []
        for leaf, axis in zip(leaves, leaf_axes):
            if axis is None:
                examples.append(leaf)
                moved.append(leaf)
                continue
            shape = tuple(np.shape(leaf))
            axis %= len(shape)
            examples.append(Spec(shape[:axis] + shape[axis + 1:], np.dtype(leaf.dtype)))
            moved.append(_moved(leaf, axis, 0))
        ex_dynamic, ex_kwargs = unflatten(tree, examples)
        it = iter(ex_dynamic)
        ex_args = [a if i in static else next(it) for i, a in enumerate(args)]
        t = trace_callable(fun, ex_args, ex_kwargs, static_argnums=static, name=fname)
        flags = [a is not None for a in leaf_axes] + [False] * len(t.captured)
        v_fn, out_flags = vmap_function(t.fn, flags, size, name=f"vmap_{fname}")
        values = _run(v_fn, moved, t.captured)
        out = unflatten(t.out_tree, list(range(len(values))))      # result positions
        placed = []
        for value, is_batched, axis in zip(values, out_flags,
                                           _leaf_axes(out_axes, out, f"out_axes of {fname}")):
            if axis is None:
                if is_batched:
                    raise errors.user_error(ValueError, f"vmap of {fname}: out_axes is None "
                                            "for a result that depends on a mapped argument "
                                            "(it differs between examples)")
                placed.append(_user_value(value))
                continue
            if not is_batched:
                value = np.broadcast_to(value, (size,) + tuple(np.shape(value)))
            ndim = len(np.shape(value))
            if not -ndim <= axis < ndim:
                raise errors.user_error(ValueError, f"vmap of {fname}: out_axes {axis} is out "
                                        f"of range for a result of {ndim - 1} dimensions")
            placed.append(_moved(value, 0, axis % ndim))
        return unflatten(t.out_tree, placed)

    batched_fun.__name__ = f"vmap_{fname}"
    batched_fun.__qualname__ = batched_fun.__name__
    return batched_fun


def _mapped_size(leaves, axes, axis_size, fname: str) -> int:
    sizes = set()
    for leaf, axis in zip(leaves, axes):
        if axis is None:
            continue
        if not hasattr(leaf, "shape"):
            raise errors.user_error(ValueError, f"vmap of {fname}: a {type(leaf).__name__} "
                                    f"argument cannot be mapped over axis {axis} (it is not an "
                                    "array); give it in_axes None")
        shape = tuple(leaf.shape)
        if not -len(shape) <= axis < len(shape):
            raise errors.user_error(ValueError, f"vmap of {fname}: in_axes {axis} is out of "
                                    f"range for an argument of shape {tuple(shape)}")
        sizes.add(shape[axis])
    if len(sizes) > 1:
        raise errors.user_error(ValueError, f"vmap of {fname}: the mapped axes have "
                                f"different sizes {sorted(sizes)}; they must be equal")
    if not sizes:
        if axis_size is None:
            raise errors.user_error(ValueError, f"vmap of {fname}: no argument is mapped "
                                    "(every in_axes is None) and axis_size is not given")
        return int(axis_size)
    size = sizes.pop()
    if axis_size is not None and axis_size != size:
        raise errors.user_error(ValueError, f"vmap of {fname}: axis_size {axis_size} but the "
                                f"mapped axes have size {size}")
    return size
