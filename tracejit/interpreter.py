"""The reference interpreter: runs any Function with NumPy, one primitive impl per equation.

It is the oracle of every test and the `interpret` backend of `jit`. After each equation it
checks that the value has exactly the type the IR says, so a wrong type rule cannot hide.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .ir import Eqn, Function, Literal, Var, format_eqn, names_of


class InterpreterError(AssertionError):
    """An equation produced a value of another type than its IR type (a tracejit bug)."""


def bind_arguments(fn: Function, args: Sequence[np.ndarray]) -> dict[Var, np.ndarray]:
    """{parameter: array}, after checking the count and each argument's shape and dtype."""
    if len(args) != len(fn.params):
        raise TypeError(f"@{fn.name} takes {len(fn.params)} arguments, got {len(args)}")
    env: dict[Var, np.ndarray] = {}
    for p, a in zip(fn.params, args):
        a = np.asarray(a)
        if a.shape != p.type.shape or a.dtype != p.type.np_dtype:
            raise TypeError(f"@{fn.name}: argument of shape {a.shape} and dtype {a.dtype} "
                            f"given for a parameter of type {p.type}")
        env[p] = a
    return env


def evaluate(eqn: Eqn, env: dict[Var, np.ndarray], where: str) -> np.ndarray:
    """Run one equation's NumPy implementation on the values in `env` and check that the
    result has exactly the equation's IR type (`where` names it in the error)."""
    args = [a.value if isinstance(a, Literal) else env[a] for a in eqn.inputs]
    out = np.asarray(eqn.prim.impl(*args, **eqn.params))
    if out.shape != eqn.out.type.shape or out.dtype != eqn.out.type.np_dtype:
        raise InterpreterError(f"{where}: `{eqn.prim.name}` gave {out.dtype}{out.shape}, the IR "
                               f"says {eqn.out.type}")
    return out


def interpret(fn: Function, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Evaluate `fn` on NumPy arrays; returns one array per result (never a view of an input).

    Floating point exceptions (overflow, division by zero, invalid) are silent, as in the
    compiled backends: results carry inf and NaN as IEEE arithmetic gives them.
    """
    env = bind_arguments(fn, args)
    with np.errstate(all="ignore"):
        for eqn in fn.eqns:
            env[eqn.out] = evaluate(eqn, env, f"@{fn.name}: {format_eqn(eqn, names_of(fn))}")
    results = []
    inputs = {id(a) for a in args}
    for r in fn.results:
        value = np.asarray(r.value if isinstance(r, Literal) else env[r])
        if id(value) in inputs or value.base is not None or not value.flags.writeable:
            value = np.array(value, copy=True)
        results.append(value)
    return results
