"""The status words: how a compiled program reports an error NumPy raises on a value.

A kernel cannot raise. Where NumPy raises on a value it computes with (an index out of bounds,
an integer to a negative integer power), the generated code records the error in the status
words, int64[STATUS_WORDS] that every kernel function receives, and goes on (the element's
result is never returned); after the call the runtime raises the exception NumPy would:

    status[0]   0, or the code of the first error (set by a compare-and-swap from 0, so the
                first error reported wins, whatever the threads)
    status[1:]  INDEX_ERROR: the index, the axis and its size;
                LINALG_ERROR: the kind (LINALG_ERRORS), LAPACK's info and the matrix;
                a code of VALUE_ERRORS: the site, the number of the equation in
                `sites(program)` (whose source line the message names)

What is checked is one table, `CHECKS`: primitive → the checks of an equation (the `check`
primitive exists for this alone: its operand, reported where it is true). A check tests
one operand elementwise against a bound with one of the IR's comparison primitives; each
backend lowers it with its own scalar table, so both check exactly the same thing. Kernels of
the indexing primitives (gather, scatter_add) check their indices and report INDEX_ERROR; the
LINALG kernels report LAPACK's failures (a matrix not positive definite, singular, ...) as
LINALG_ERROR, which the runtime raises as NumPy's np.linalg.LinAlgError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracejit import primitives as P
from tracejit.errors import where
from tracejit.ir import Eqn, Literal, is_int
from tracejit.kernels import Kernel, Program

STATUS_WORDS = 4
INDEX_ERROR = 1
NEGATIVE_POWER = 2
LINALG_ERROR = 3

#: status[1] of a LINALG_ERROR → NumPy's message for it (raised as np.linalg.LinAlgError).
LINALG_ERRORS = {0: "Matrix is not positive definite", 1: "Singular matrix",
                 2: "Eigenvalues did not converge", 3: "SVD did not converge"}
NOT_POSITIVE_DEFINITE, SINGULAR, NO_CONVERGENCE, SVD_NO_CONVERGENCE = 0, 1, 2, 3

#: The codes of the errors of the `check` primitive (primitives.CHECK_ERRORS), after these.
CHECK_CODES = {name: 8 + i for i, name in enumerate(P.CHECK_ERRORS)}

#: code → (exception class, NumPy's message) of the value errors reported with their site.
VALUE_ERRORS = {
    NEGATIVE_POWER: (ValueError, "Integers to negative integer powers are not allowed."),
    **{CHECK_CODES[name]: error for name, error in P.CHECK_ERRORS.items()},
}


@dataclass(frozen=True)
class Check:
    """An element is an error where `inputs[operand] compare bound` holds (`compare` is a
    comparison primitive: P.lt, P.le, P.eq, ...)."""

    operand: int
    compare: P.Primitive
    bound: int | float
    code: int


def _pow_checks(eqn: Eqn) -> tuple[Check, ...]:
    # NumPy's integer power loops refuse negative exponents; float powers are IEEE's.
    return (Check(1, P.lt, 0, NEGATIVE_POWER),) if is_int(eqn.inputs[1].type.dtype) else ()


#: primitive → rule giving the checks of an equation of it.
CHECKS = {
    P.pow_: _pow_checks,
    P.check: lambda eqn: (Check(0, P.eq, True, CHECK_CODES[eqn.params["error"]]),),
}


def checks_of(eqn: Eqn) -> tuple[Check, ...]:
    """The checks `eqn` needs at run time (none for a literal operand that passes)."""
    rule = CHECKS.get(eqn.prim)
    if rule is None:
        return ()
    out = []
    for c in rule(eqn):
        a = eqn.inputs[c.operand]
        if isinstance(a, Literal) and not c.compare.impl(a.value, c.bound):
            continue
        out.append(c)
    return tuple(out)


def may_fail(kernel: Kernel) -> bool:
    """Whether `kernel` can report an error in the status words: it checks its indices (a
    kernel of an indexing primitive) or values (an equation with checks)."""
    prim = kernel.own_primitive
    return (prim is not None and prim.category in (P.INDEXING, P.LINALG)) or any(
        checks_of(e) for e in kernel.body)


def sites(program: Program) -> list[Eqn]:
    """The equations of `program` with checks, each once, in kernel order: status[1] of a
    value error is an index into this list."""
    out: dict = {}
    for k in program.kernels:
        for e in k.body:
            if e.out not in out and checks_of(e):
                out[e.out] = e
    return list(out.values())


def status_error(words, program_sites: list[Eqn]) -> Exception:
    """The exception NumPy raises for the error the status words report."""
    code = int(words[0])
    if code == INDEX_ERROR:
        return IndexError(f"index {words[1]} is out of bounds for axis {words[2]} with size "
                          f"{words[3]}")
    if code == LINALG_ERROR:
        return np.linalg.LinAlgError(LINALG_ERRORS[int(words[1])])
    cls, message = VALUE_ERRORS[code]
    loc = program_sites[int(words[1])].loc
    return cls(f"{where(loc)}: {message}" if loc is not None else message)
