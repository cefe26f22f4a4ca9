"""The kernel interpreter: runs a Program with NumPy, kernel by kernel.

Each Load is a real strided view of its buffer (NumPy's as_strided over the IndexMap, after
checking that every element it can touch lies inside the buffer); each body equation runs
with its primitive's NumPy implementation over the whole domain at once; each output is
written to a fresh contiguous buffer. So fused and unfused Programs, and the IndexMaps the
planner computed, are checked against the reference interpreter before any compiler exists.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .interpreter import InterpreterError, bind_arguments, evaluate
from .ir import Literal, Var
from .kernels import IndexMap, Kernel, Program


def view(buffer: np.ndarray, imap: IndexMap) -> np.ndarray:
    """The view `imap` of a contiguous buffer, bounds-checked."""
    flat = buffer.reshape(-1)
    if 0 not in imap.shape:
        lo, hi = imap.bounds()
        if lo < 0 or hi >= flat.size:
            raise InterpreterError(f"index map {imap} reaches elements {lo}..{hi} of a buffer "
                                   f"of {flat.size}")
    item = flat.itemsize
    base = flat[imap.offset:] if 0 not in imap.shape else flat[:0]
    return as_strided(base, shape=imap.shape, strides=tuple(s * item for s in imap.strides),
                      writeable=False)


def run_kernel(kernel: Kernel, buffers: dict[Var, np.ndarray]) -> None:
    env: dict[Var, np.ndarray] = {}
    for ld in kernel.loads:
        env[ld.dst] = view(buffers[ld.src], ld.imap)
    with np.errstate(all="ignore"):
        for e in kernel.body:
            env[e.out] = evaluate(e, env, f"kernel {kernel.name}")
    for v in kernel.outputs:
        buffers[v] = np.array(env[v], copy=True, order="C")


def run_program(program: Program, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Execute `program` on arguments typed like its function's parameters."""
    fn = program.fn
    buffers = {p: np.asarray(a, order="C") for p, a in bind_arguments(fn, args).items()}
    for c in program.constants:
        buffers[c.out] = np.asarray(c.params["value"], order="C")
    for k in program.kernels:
        run_kernel(k, buffers)
    results = []
    for r in fn.results:
        if isinstance(r, Literal):
            results.append(np.array(r.value))
        else:
            value = buffers[r]
            results.append(np.array(value, copy=True) if r in fn.params or not
                           value.flags.writeable else value)
    return results
