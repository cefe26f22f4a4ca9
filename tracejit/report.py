"""The fusion report: what each kernel holds, what it moves, and why edges stayed unfused."""

from __future__ import annotations

import os

from . import primitives as P
from .ir import Var, format_eqn
from .kernels import COPY, DOT, LOOP, Kernel, Program, program_names


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _typed(values, names) -> str:
    return ", ".join(f"{names.get(v, '%?')}:{v.type}" for v in values)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _edge_reason(producer: Kernel, consumer: Kernel, v: Var, program: Program) -> str:
    """Why the value `v` written by `producer` is read back from memory by `consumer`."""
    loads = [ld for ld in consumer.loads if ld.src is v]
    readers = [k.name for k in program.kernels if any(ld.src is v for ld in k.loads)]
    reduced = any(e.out is v and e.prim.category is P.REDUCTION for e in producer.body)
    if not program.fused:
        return "fuse=False: one kernel per primitive"
    if producer.kind == COPY:
        return "written by a copy kernel (a reshape of a view that no index map expresses)"
    if consumer.kind == DOT and consumer.dot is not None and any(
            ld.dst in consumer.dot.inputs for ld in loads):
        return "operand of a dot, which reads the whole operand for each output"
    if producer.kind not in (LOOP, DOT, COPY) or consumer.kind not in (LOOP, DOT):
        kind = producer.kind if producer.kind not in (LOOP, DOT, COPY) else consumer.kind
        article = "an" if kind[0] in "aeiou" else "a"
        return f"{article} {kind} kernel is not fused with its neighbours"
    if reduced:
        return "result of a reduction, complete only after its loop"
    if producer.kind == DOT and consumer.kind == DOT:
        return "both kernels are contractions (one dot per kernel)"
    if any(not ld.imap.is_contiguous or ld.imap.shape != v.type.shape for ld in loads):
        return "read through a view (broadcast, transpose or slice), which needs other " \
               "elements than the producer computes at the same point"
    if len(readers) > 1:
        return f"also read by {', '.join(r for r in readers if r != consumer.name)}; " \
               "arithmetic is never duplicated"
    if producer.domain != consumer.domain:
        return f"different iteration spaces ({producer.domain} vs {consumer.domain})"
    if consumer.reduce_axes and producer.reduce_axes and \
            consumer.reduce_axes != producer.reduce_axes:
        return "the kernels reduce over different axes"
    return "fusing would create a cycle between kernels"


def fusion_report(program: Program) -> str:
    """Per kernel: its equations and their user lines, inputs, outputs, bytes, FLOPs; then
    every producer -> consumer edge left unfused, with the reason."""
    names = program_names(program)
    writer = {v: k for k in program.kernels for v in k.outputs}
    lines = [f"fusion report for @{program.fn.name}: {_plural(len(program.kernels), 'kernel')} "
             f"({'fused' if program.fused else 'unfused'}), "
             f"{_plural(len(program.fn.eqns), 'equation')}"]
    total_r = total_w = total_f = 0
    for k in program.kernels:
        r, w = k.bytes_moved()
        f = k.flops()
        total_r, total_w, total_f = total_r + r, total_w + w, total_f + f
        src = sorted({f"{os.path.basename(e.loc.file)}:{e.loc.line}" for e in k.eqns
                      if e.loc is not None})
        lines.append(f"{k.name} {k.kind} domain=({','.join(map(str, k.domain))})"
                     + (f" reduce=({','.join(map(str, k.reduce_axes))})" if k.reduce_axes else "")
                     + f": {_plural(len(k.eqns), 'equation')} from {', '.join(src) or '-'}")
        lines.append(f"    reads  {_typed(k.inputs, names) or '-'}"
                     f"  ({_fmt_bytes(r)})")
        lines.append(f"    writes {_typed(k.outputs, names)}"
                     f"  ({_fmt_bytes(w)})")
        lines.append(f"    flops  {f}")
        for e in k.eqns:
            loc = f"  # {e.loc}" if e.loc is not None else ""
            lines.append(f"      {format_eqn(e, names)}{loc}")
    lines.append(f"total: reads {_fmt_bytes(total_r)}, writes {_fmt_bytes(total_w)}, "
                 f"{total_f} flops")
    if program.constants:
        # Arrays the traced function closed over (globals, closures) or that folding made: they
        # are baked into the program, so a later change to the Python array is not seen.
        size = sum(c.out.type.nbytes for c in program.constants)
        lines.append(f"constants baked into the program: {_plural(len(program.constants), 'array')}"
                     f" ({_fmt_bytes(size)})")
        for c in sorted(program.constants, key=lambda c: -c.out.type.nbytes):
            loc = f" from {c.loc}" if c.loc is not None else ""
            lines.append(f"  {names.get(c.out, '%?')}:{c.out.type}  "
                         f"({_fmt_bytes(c.out.type.nbytes)}){loc}")
    edges = []
    for k in program.kernels:
        for v in k.inputs:
            if v in writer:
                edges.append(f"  {writer[v].name} -> {k.name} via {names.get(v, '%?')}:"
                             f"{v.type}: {_edge_reason(writer[v], k, v, program)}")
    lines.append("unfused edges:" if edges else "unfused edges: none")
    lines.extend(edges)
    return "\n".join(lines)
