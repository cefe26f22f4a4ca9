"""The buffer plan: where every buffer of a Program lives while the compiled program runs.

Parameters, constants and results are arrays the caller owns; they reach the generated code
through the argument table (`("arg", i)`). Every other kernel output, and the scratch space a
kernel asks for (a dot's operand or product kept for its epilogue), lives in one arena at a
fixed offset (`("arena", offset)`). Offsets come from the buffers' lifetimes: a buffer is live
from the kernel that writes it to the last kernel that reads it, and a dead buffer's bytes are
reused by later ones (first fit over the free ranges, 64-byte aligned). `peak` is the arena's
size: the peak bytes of intermediates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracejit.ir import Var
from tracejit.kernels import Program

ALIGN = 64


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class BufferPlan:
    """Where each buffer lives: `locations[var]` is ("arg", index) or ("arena", offset)."""

    locations: dict[Var, tuple[str, int]] = field(default_factory=dict)
    args: list[Var] = field(default_factory=list)       # the argument table, in order
    n_params: int = 0
    n_constants: int = 0
    results: list[Var] = field(default_factory=list)    # kernel outputs returned to the caller
    scratch: dict[int, dict[Var, int]] = field(default_factory=dict)   # kernel → {key: offset}
    peak: int = 0                                         # arena bytes

    def describe(self) -> str:
        arena = [v for v, (kind, _) in self.locations.items() if kind == "arena"]
        total = sum(v.type.nbytes for v in arena)
        scratch = sum(len(s) for s in self.scratch.values())
        return (f"buffer plan: {len(self.args)} arguments ({self.n_params} parameters, "
                f"{self.n_constants} constants, {len(self.results)} results); "
                f"{len(arena)} intermediates ({total} bytes) and {scratch} scratch buffers "
                f"in an arena of {self.peak} bytes (peak)")


def plan_buffers(program: Program, scratch: dict[int, list[tuple[Var, int]]]) -> BufferPlan:
    """Place `program`'s buffers; `scratch[k]` lists (key, bytes) kernel k needs while it runs."""
    fn = program.fn
    plan = BufferPlan()
    for v in fn.params:
        plan.locations[v] = ("arg", len(plan.args))
        plan.args.append(v)
    plan.n_params = len(fn.params)
    for c in program.constants:
        plan.locations[c.out] = ("arg", len(plan.args))
        plan.args.append(c.out)
    plan.n_constants = len(program.constants)
    for r in fn.results:
        if isinstance(r, Var) and r not in plan.locations:
            plan.locations[r] = ("arg", len(plan.args))
            plan.args.append(r)
            plan.results.append(r)

    # Lifetimes of the arena's buffers, as [first kernel, last kernel] (inclusive).
    # Scratch keys are (kernel, var): a value recomputed in two kernels has scratch in each.
    first: dict = {}
    last: dict = {}
    sizes: dict = {}
    for k, kernel in enumerate(program.kernels):
        for v in kernel.outputs:
            if v not in plan.locations:
                first[v] = last[v] = k
                sizes[v] = v.type.nbytes
        for v in kernel.inputs:
            if v in first:
                last[v] = k
        for var, nbytes in scratch.get(k, ()):
            first[(k, var)] = last[(k, var)] = k
            sizes[(k, var)] = nbytes

    live: list[tuple[int, int, int]] = []          # (offset, end, last use) of placed buffers
    for k in range(len(program.kernels)):
        live = [item for item in live if item[2] >= k]
        for key in [key for key in first if first[key] == k]:
            size = _aligned(max(sizes[key], 1))
            offset = 0
            for start, end, _ in sorted(live):
                if offset + size <= start:
                    break
                offset = max(offset, end)
            live.append((offset, offset + size, last[key]))
            if isinstance(key, tuple):
                plan.scratch.setdefault(k, {})[key[1]] = offset
            else:
                plan.locations[key] = ("arena", offset)
            plan.peak = max(plan.peak, offset + size)
    return plan
