"""Jacobians and Hessians from the JVP and VJP transforms, with JAX's signatures: jacfwd
(a JVP per input element), jacrev and jacobian (a VJP per output element), hessian
(jacfwd of jacrev), hvp (a JVP of the gradient) and linearize.

A Jacobian of an output of shape S with respect to an input of shape T has the shape S + T,
as in JAX. The products run one after another over the basis vectors, each an IR Function
(inlined under jit, so the whole Jacobian is one compiled program); arguments and outputs
are arrays (pytrees of them are not supported yet, and say so).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import errors
from .api import _function_name, grad, jvp, vjp
from .tracer import Tracer


def _argnums(argnums, nargs: int, fname: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -nargs <= a < nargs:
            raise errors.user_error(ValueError, f"argnums {argnums!r} out of range for "
                                    f"{fname}'s {nargs} arguments")
    return tuple(a % nargs for a in nums)


def _array(x, what: str):
    """x as an array argument of a Jacobian: a float array or tracer (not a pytree)."""
    if isinstance(x, (dict, list, tuple)):
        raise errors.user_error(errors.UnsupportedError, f"{what} is a {type(x).__name__}: "
                                "Jacobians of pytrees are not supported yet; pass arrays")
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    if not np.issubdtype(np.dtype(x.dtype), np.floating) and str(x.dtype) != "bfloat16":
        raise errors.user_error(errors.GradError, f"{what} has dtype {x.dtype}; Jacobians "
                                "are only defined for floating-point arguments")
    return x


def _basis(shape: tuple, dtype):
    """The standard basis of arrays of `shape`: size arrays, one 1 each."""
    size = int(np.prod(shape, dtype=np.int64))
    return np.eye(size, dtype=np.dtype(dtype)).reshape((size,) + tuple(shape))


def _only(args, a: int, x_new):
    return tuple(x_new if i == a else v for i, v in enumerate(args))


def _per_argnum(f: Callable, argnums, one: Callable, name: str) -> Callable:
    fname = _function_name(f)

    def jac(*args):
        nums = _argnums(argnums, len(args), fname)
        out = []
        for a in nums:
            x = _array(args[a], f"argument {a} of {fname}")
            out.append(one(lambda x_, a=a: f(*_only(args, a, x_)), x))
        return out[0] if isinstance(argnums, int) else tuple(out)

    jac.__name__ = f"{name}_{fname}"
    return jac


def _stack_last(columns: list, out_shape: tuple, in_shape: tuple):
    """The columns J e_i (each of out_shape) as the Jacobian of shape out_shape + in_shape."""
    return np.reshape(np.stack(columns, axis=-1), tuple(out_shape) + tuple(in_shape))


def jacfwd(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian by forward mode: one JVP per element of each argument in argnums."""
    def one(g, x):
        cols = [jvp(g, (x,), (e,))[1] for e in _basis(np.shape(x), x.dtype)]
        if not cols:                            # an empty argument: an empty Jacobian
            return np.zeros(np.shape(g(x)) + np.shape(x), x.dtype)
        return _stack_last(cols, np.shape(cols[0]), np.shape(x))
    return _per_argnum(f, argnums, one, "jacfwd")


def jacrev(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian by reverse mode: one VJP per element of the output."""
    def one(g, x):
        out, pullback = vjp(g, x)
        out = _array(out, "the output")
        rows = [pullback(e)[0] for e in _basis(np.shape(out), out.dtype)]
        if not rows:
            return np.zeros(np.shape(out) + np.shape(x), x.dtype)
        return np.reshape(np.stack(rows, axis=0), np.shape(out) + np.shape(x))
    return _per_argnum(f, argnums, one, "jacrev")


#: jax.jacobian is jacrev.
jacobian = jacrev


def hessian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Hessian of a scalar function: jacfwd of jacrev (forward over reverse)."""
    return jacfwd(jacrev(f, argnums), argnums)


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
