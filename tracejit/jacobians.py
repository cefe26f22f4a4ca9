"""Jacobians and Hessians from the JVP, VJP and batching transforms, with JAX's signatures:
jacfwd (the JVP along every basis vector of the inputs, batched by vmap), jacrev and jacobian
(the VJP of every basis vector of the output, batched), hessian (jacfwd of jacrev: forward
over reverse), hvp (a JVP of the gradient) and linearize.

The Jacobian of an output of shape S with respect to an input of shape T has the shape S + T,
as in JAX. With pytrees, the result has the output's structure, each of its arrays replaced by
the input's structure (a tuple of them for a tuple `argnums`), as in JAX. Under jit the whole
Jacobian is one compiled program, the basis vectors an axis of its kernels.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import errors
from .api import _function_name, grad, jvp, vjp
from .batching import vmap
from .pytree import flatten, unflatten
from .tracer import Tracer


def _argnums(argnums, nargs: int, fname: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -nargs <= a < nargs:
            raise errors.user_error(ValueError, f"argnums {argnums!r} out of range for "
                                    f"{fname}'s {nargs} arguments")
    return tuple(a % nargs for a in nums)


def _float_leaves(tree, what: str) -> list:
    """The leaves of `tree` (arrays or tracers), which must be floating point."""
    leaves = []
    for leaf in flatten(tree)[0]:
        x = leaf if isinstance(leaf, Tracer) else np.asarray(leaf)
        if not np.issubdtype(np.dtype(x.dtype), np.floating) and str(x.dtype) != "bfloat16":
            raise errors.user_error(errors.GradError, f"{what} has dtype {x.dtype}; Jacobians "
                                    "are only defined for floating-point arguments")
        leaves.append(x)
    return leaves


def _basis(leaves: list) -> np.ndarray:
    """The standard basis of the flattened leaves: a (n, n) identity, n their total size,
    in the widest of their dtypes."""
    n = sum(int(np.prod(np.shape(x), dtype=np.int64)) for x in leaves)
    dtype = np.result_type(*[np.dtype(x.dtype) for x in leaves]) if leaves else np.float64
    return np.eye(n, dtype=dtype)


def _split(flat, leaves: list, tree):
    """The vector `flat` (last axis of size n) cut into arrays shaped like `leaves`, in their
    dtypes, as a pytree of structure `tree`: the basis vector as a tangent or cotangent."""
    parts, start = [], 0
    for x in leaves:
        shape = tuple(np.shape(x))
        size = int(np.prod(shape, dtype=np.int64))
        part = flat[..., start:start + size]
        parts.append(np.reshape(part, part.shape[:-1] + shape).astype(x.dtype))
        start += size
    return unflatten(tree, parts)


def _cut(jac, axis_leaves: list, ahead: bool):
    """jac's basis axis (first, of size n) cut per leaf of `axis_leaves`; each piece's axis
    reshaped to the leaf's shape and placed after jac's other axes (ahead=False: jacfwd's
    out.shape + in.shape) or before them (ahead=True: jacrev's)."""
    pieces, start = [], 0
    rest = tuple(np.shape(jac))[1:]
    for x in axis_leaves:
        shape = tuple(np.shape(x))
        size = int(np.prod(shape, dtype=np.int64))
        piece = jac[start:start + size]
        if ahead:
            pieces.append(np.reshape(piece, shape + rest))
        else:
            moved = np.moveaxis(piece, 0, -1) if rest else piece
            pieces.append(np.reshape(moved, rest + shape))
        start += size
    return pieces


def _inputs(args, argnums, fname):
    """The differentiated inputs as one pytree x (the argument, or a tuple of them for a tuple
    argnums), its float leaves and structure, and the function putting x back among args."""
    nums = _argnums(argnums, len(args), fname)

    def only(x):
        xs = (x,) if isinstance(argnums, int) else x
        full = list(args)
        for a, v in zip(nums, xs):
            full[a] = v
        return full

    x = args[nums[0]] if isinstance(argnums, int) else tuple(args[a] for a in nums)
    return x, _float_leaves(x, f"argument {argnums} of {fname}"), flatten(x)[1], only


def jacfwd(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian by forward mode: the JVP along every basis vector of the inputs, batched
    (one program, not a loop). Suits functions with fewer inputs than outputs."""
    fname = _function_name(f)

    def jac(*args):
        x, leaves, tree, only = _inputs(args, argnums, fname)

        def g(x_):
            return f(*only(x_))

        def column(e):
            got = jvp(g, (x,), (_split(e, leaves, tree),), has_aux=has_aux)
            return (got[1], got[2]) if has_aux else got[1]

        cols = vmap(column, out_axes=(0, None) if has_aux else 0)(_basis(leaves))
        cols, aux = cols if has_aux else (cols, None)
        out_leaves, out_tree = flatten(cols)
        result = unflatten(out_tree, [unflatten(tree, _cut(c, leaves, ahead=False))
                                      for c in out_leaves])
        return (result, aux) if has_aux else result

    jac.__name__ = f"jacfwd_{fname}"
    return jac


def jacrev(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian by reverse mode: the VJP of every basis vector of the output, batched
    (one program, not a loop). Suits functions with fewer outputs than inputs."""
    fname = _function_name(f)

    def jac(*args):
        x, _, tree, only = _inputs(args, argnums, fname)
        got = vjp(lambda x_: f(*only(x_)), x, has_aux=has_aux)
        out, pullback = got[0], got[1]
        out_leaves = _float_leaves(out, f"the output of {fname}")
        out_tree = flatten(out)[1]
        rows = vmap(lambda e: pullback(_split(e, out_leaves, out_tree))[0])(_basis(out_leaves))
        # rows: x's structure, each leaf (m, *leaf shape); per output leaf, its rows.
        per_in = [_cut(r, out_leaves, ahead=True) for r in flatten(rows)[0]]
        result = unflatten(out_tree, [unflatten(tree, [p[k] for p in per_in])
                                      for k in range(len(out_leaves))])
        return (result, got[2]) if has_aux else result

    jac.__name__ = f"jacrev_{fname}"
    return jac


#: jax.jacobian is jacrev.
jacobian = jacrev


def hessian(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Hessian of a scalar function: jacfwd of jacrev (forward over reverse)."""
    return jacfwd(jacrev(f, argnums, has_aux=has_aux), argnums, has_aux=has_aux)


def hvp(f: Callable, primals: Sequence, tangents: Sequence):
    """The Hessian-vector product of a scalar f at primals along tangents (the first
    argument's): a JVP of the gradient, never the Hessian itself."""
    return jvp(grad(f), tuple(primals), tuple(tangents))[1]


def linearize(f: Callable, *primals):
    """(f(*primals), f_jvp): f_jvp(*tangents) is the JVP at primals, as jax.linearize."""
    out, _ = jvp(f, primals, tuple(_zeros_like(p) for p in primals))

    def f_jvp(*tangents):
        return jvp(f, primals, tangents)[1]

    return out, f_jvp


def _zeros_like(p):
    if isinstance(p, Tracer):
        return np.zeros_like(p)
    return np.zeros_like(np.asarray(p))
