"""The reference interpreter: runs any Function with NumPy, one primitive impl per equation.

It is the oracle of every test and the `interpret` backend of `jit`. After each equation it
checks that the value has exactly the type the IR says, so a wrong type rule cannot hide.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .ir import Function, Literal, Var, format_eqn, names_of


class InterpreterError(AssertionError):
    """An equation produced a value of another type than its IR type (a tracejit bug)."""


def interpret(fn: Function, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Evaluate `fn` on NumPy arrays; returns one array per result (never a view of an input).

    Floating point exceptions (overflow, division by zero, invalid) are silent, as in the
    compiled backends: results carry inf and NaN as IEEE arithmetic gives them.
    """
    if len(args) != len(fn.params):
        raise TypeError(f"@{fn.name} takes {len(fn.params)} arguments, got {len(args)}")
    env: dict[Var, np.ndarray] = {}
    for p, a in zip(fn.params, args):
        a = np.asarray(a)
        if a.shape != p.type.shape or a.dtype != p.type.np_dtype:
            raise TypeError(f"@{fn.name}: argument of shape {a.shape} and dtype {a.dtype} "
                            f"given for a parameter of type {p.type}")
        env[p] = a

    def read(atom):
        return atom.value if isinstance(atom, Literal) else env[atom]

    with np.errstate(all="ignore"):
        for eqn in fn.eqns:
            out = np.asarray(eqn.prim.impl(*(read(a) for a in eqn.inputs), **eqn.params))
            if out.shape != eqn.out.type.shape or out.dtype != eqn.out.type.np_dtype:
                raise InterpreterError(
                    f"@{fn.name}: `{format_eqn(eqn, names_of(fn))}` gave {out.dtype}{out.shape}, "
                    f"the IR says {eqn.out.type}")
            env[eqn.out] = out
    results = []
    inputs = {id(a) for a in args}
    for r in fn.results:
        value = np.asarray(read(r))
        if id(value) in inputs or value.base is not None or not value.flags.writeable:
            value = np.array(value, copy=True)
        results.append(value)
    return results
