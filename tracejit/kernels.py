"""Kernels and Programs: what the fusion planner produces and every backend lowers.

A `Program` is a list of `Kernel`s in dependency order over *buffers*: the function's
parameters, its constants, and the values kernels write. A Kernel reads buffers through
`Load`s (each an affine `IndexMap` into a contiguous row-major buffer: broadcasts, transposes,
slices and reshapes are index maps, never copies), computes a body of IR equations, and writes
its `outputs` to fresh contiguous buffers.

Kernel kinds and what their body means:

- `loop`: one loop nest over `domain`. Body equations come in three phases (`phase`):
  'full' equations are elementwise over the whole domain (operands of rank 0 broadcast);
  'reduce' equations reduce a full value over `reduce_axes`; 'epilogue' equations are
  elementwise over the kept axes (the domain without `reduce_axes`): work on reduction
  results, and other work over that shape merged into the kernel (with its loads, whose
  shape is then the kept shape too).
  Outputs are values of any phase. This covers elementwise chains, elementwise producers
  feeding a reduction (and what follows it), and multi-output kernels.
- `dot`: body = prologue equations (elementwise over an operand's shape), one `dot`
  equation, then epilogue equations over the dot's output (which is `domain`): elementwise,
  and reductions over `reduce_axes` as in a loop kernel.
- `copy`: materialise a view (a Load) into a contiguous buffer; the body is empty and the
  single output is the Load's destination.
- single-equation kernels named after their primitive (`gather`, `scatter_add`,
  `concatenate`, `pad`, `argmax`, `argmin`): the body is that equation, on loaded operands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import primitives as P
from .ir import Eqn, Function, Var, format_eqn, names_of


#: The kinds of Kernel; a kernel of its own has the name of its primitive as its kind.
LOOP, DOT, COPY = "loop", "dot", "copy"


def row_major_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


@dataclass(frozen=True)
class IndexMap:
    """The element at index i of a view is element `offset + sum(strides[d] * i[d])` of the
    underlying contiguous buffer. Strides may be 0 (broadcast) or negative (reversed slice)."""

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0

    @classmethod
    def contiguous(cls, shape: tuple[int, ...]) -> "IndexMap":
        return cls(tuple(shape), row_major_strides(tuple(shape)), 0)

    @property
    def is_contiguous(self) -> bool:
        return self.offset == 0 and all(
            n == 1 or s == c for n, s, c in zip(self.shape, self.strides,
                                               row_major_strides(self.shape)))

    def bounds(self) -> tuple[int, int]:
        """The smallest and largest buffer element the view touches (for non-empty views)."""
        lo = hi = self.offset
        for n, s in zip(self.shape, self.strides):
            if n == 0:
                return (self.offset, self.offset - 1)
            if s > 0:
                hi += s * (n - 1)
            else:
                lo += s * (n - 1)
        return lo, hi

    # -- composing views ------------------------------------------------------------------------

    def broadcast_in_dim(self, shape, dims) -> "IndexMap":
        strides = [0] * len(shape)
        for i, d in enumerate(dims):
            if self.shape[i] == shape[d]:
                strides[d] = self.strides[i]
        return IndexMap(tuple(shape), tuple(strides), self.offset)

    def transpose(self, perm) -> "IndexMap":
        return IndexMap(tuple(self.shape[p] for p in perm), tuple(self.strides[p] for p in perm),
                        self.offset)

    def slice(self, starts, steps, shape) -> "IndexMap":
        offset = self.offset + sum(s * st for s, st in zip(starts, self.strides))
        return IndexMap(tuple(shape), tuple(s * st for s, st in zip(self.strides, steps)), offset)

    def reshape(self, shape) -> "IndexMap | None":
        """The reshaped view, or None when it is not a strided view of the same buffer."""
        shape = tuple(shape)
        if self.is_contiguous:
            return IndexMap.contiguous(shape)
        # Inserting or removing axes of size 1 keeps any view strided.
        old = [(n, s) for n, s in zip(self.shape, self.strides) if n != 1]
        if [n for n, _ in old] == [n for n in shape if n != 1]:
            it = iter(s for _, s in old)
            return IndexMap(shape, tuple(0 if n == 1 else next(it) for n in shape), self.offset)
        return None

    def apply(self, eqn: Eqn) -> "IndexMap | None":
        """This view seen through a view equation (broadcast, transpose, slice, reshape)."""
        return VIEW_MAPS[eqn.prim](self, **eqn.params)

    def format(self, buffer: str) -> str:
        """`%3[10*i0 + i1]`: the element read at domain index (i0, i1, ...)."""
        terms = []
        for d, s in enumerate(self.strides):
            if s == 0 or self.shape[d] == 1:
                continue
            terms.append(f"i{d}" if s == 1 else f"-i{d}" if s == -1 else f"{s}*i{d}")
        if self.offset or not terms:
            terms.append(str(self.offset))
        text = " + ".join(terms).replace("+ -", "- ")
        return f"{buffer}[{text}]"


#: view primitive → how it composes with an index map: every primitive of category VIEW.
VIEW_MAPS = {
    P.broadcast_in_dim: lambda m, shape, dims: m.broadcast_in_dim(shape, dims),
    P.transpose: lambda m, perm: m.transpose(perm),
    P.slice_: lambda m, starts, steps, shape: m.slice(starts, steps, shape),
    P.reshape: lambda m, shape: m.reshape(shape),
}


@dataclass(frozen=True, eq=False)
class Load:
    """`dst` is the view `imap` of buffer `src`, read inside a kernel."""

    dst: Var
    src: Var
    imap: IndexMap


@dataclass(frozen=True, eq=False)
class Kernel:
    """One unit of generated code: a loop nest (or a dot, or one special primitive)."""

    name: str
    kind: str
    domain: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    loads: tuple[Load, ...]
    body: tuple[Eqn, ...]
    outputs: tuple[Var, ...]
    eqns: tuple[Eqn, ...]                    # the function's equations this kernel computes
    unfused: tuple[str, ...] = ()            # notes on edges into it left unfused

    @property
    def inputs(self) -> tuple[Var, ...]:
        """The buffers this kernel reads, each once, in order of first load."""
        seen: dict[Var, None] = {}
        for ld in self.loads:
            seen.setdefault(ld.src, None)
        return tuple(seen)

    def phase(self, eqn: Eqn) -> str:
        """'prologue', 'dot', 'full', 'reduce' or 'epilogue': where `eqn` runs in the kernel."""
        if eqn.prim is P.dot and self.kind == DOT:
            return "dot"
        if eqn.prim.category is P.REDUCTION and self.kind in (LOOP, DOT):
            return "reduce"
        if self.kind == DOT and self.body.index(eqn) < self.body.index(self.dot):
            # Before the dot in the body, but only a prologue if it feeds the dot's operands
            # (a merged epilogue's independent work, as in exp(y) + x @ w, is over the output).
            feeds = set(self.dot.inputs)
            for e in reversed(self.body[:self.body.index(self.dot)]):
                if e.out in feeds:
                    feeds.update(e.inputs)
            if eqn.out in feeds:
                return "prologue"
        # An epilogue is work on reduction results, and any other work over the kept axes
        # (scalar work on loads, such as a learning rate recomputed in the kernel, is neither:
        # it is available at every point).
        after_reduce: set = set()
        for e in self.body:
            if e.prim.category is P.REDUCTION or any(a in after_reduce for a in e.inputs):
                after_reduce.add(e.out)
            if e is eqn:
                break
        kept = self.kept_shape
        if self.reduce_axes and (eqn.out in after_reduce or (
                eqn.out.type.shape == kept and kept != self.domain and kept != ())):
            return "epilogue"
        return "full"

    @property
    def kept_shape(self) -> tuple[int, ...]:
        """The domain without the reduced axes: the shape of reductions and epilogue work."""
        return tuple(n for i, n in enumerate(self.domain) if i not in self.reduce_axes)

    @property
    def own_primitive(self) -> "P.Primitive | None":
        """The primitive of a kernel of its own (one whose kind is that primitive's name)."""
        if len(self.body) == 1 and self.body[0].prim.own_kernel:
            return self.body[0].prim
        return None

    @property
    def dot(self) -> Eqn | None:
        return next((e for e in self.body if e.prim is P.dot), None) \
            if self.kind == DOT else None

    def bytes_moved(self) -> tuple[int, int]:
        """(bytes read, bytes written): each load's distinct elements once, outputs once."""
        read = 0
        for ld in self.loads:
            t = ld.dst.type
            distinct = math.prod(n for n, s in zip(ld.imap.shape, ld.imap.strides) if s != 0)
            read += distinct * t.np_dtype.itemsize
        return read, sum(v.type.nbytes for v in self.outputs)

    def flops(self) -> int:
        """Floating point operations: per-element costs of the body (a dot counts 2 per MAC)."""
        total = 0
        for e in self.body:
            if e.prim is P.dot:
                (lc, _), _ = e.params["contract"], e.params["batch"]
                k = math.prod(e.inputs[0].type.shape[a] for a in lc)
                total += 2 * k * e.out.type.size
            elif e.prim.category is P.REDUCTION:
                total += e.inputs[0].type.size
            elif e.prim.category is P.ELEMENTWISE and e.out.type.dtype in ("f32", "f64"):
                total += e.prim.flops * e.out.type.size
        return total


def value_scopes(kernel: Kernel) -> dict[Var, str]:
    """Where each load and body value of a loop kernel is computed: 'scalar' (rank 0,
    independent of the indices), 'full' (at every point of the domain) or 'kept' (once per
    point of the kept axes, after the reduction)."""
    scope: dict[Var, str] = {}
    reduced = bool(kernel.reduce_axes)
    kept = kernel.kept_shape
    for ld in kernel.loads:
        if ld.dst.type.shape == () and kernel.domain != ():
            scope[ld.dst] = "scalar"
        elif reduced and ld.dst.type.shape == kept:
            scope[ld.dst] = "kept"
        else:
            scope[ld.dst] = "full"
    for e in kernel.body:
        ins = [scope.get(a, "scalar") for a in e.inputs if isinstance(a, Var)]
        if e.prim.category is P.REDUCTION:
            scope[e.out] = "kept"
        elif e.out.type.shape == () and e.prim is not P.iota and \
                all(s == "scalar" for s in ins) and kernel.domain != ():
            scope[e.out] = "scalar"
        elif "kept" in ins or (reduced and e.out.type.shape == kept):
            scope[e.out] = "kept"
        else:
            scope[e.out] = "full"
    return scope


def copy_as_loop(kernel: Kernel) -> Kernel:
    """A `copy` kernel as the loop kernel it is: the body's view equations composed with the
    load's index map (a final reshape that is not a strided view keeps row-major order, so
    the loop runs over the view before it)."""
    ld, (out,) = kernel.loads[0], kernel.outputs
    imap = ld.imap
    for e in kernel.body:
        composed = imap.apply(e)
        if composed is None:
            if e is not kernel.body[-1] or e.prim is not P.reshape:
                raise NotImplementedError(f"copy kernel {kernel.name}: {e.prim.name}")
            break
        imap = composed
    return Kernel(kernel.name, LOOP, imap.shape, (), (Load(out, ld.src, imap),), (),
                  kernel.outputs, kernel.eqns)


@dataclass(frozen=True, eq=False)
class Program:
    """A Function partitioned into Kernels, ready for a backend."""

    fn: Function                          # the (optimised) function this program computes
    kernels: tuple[Kernel, ...]
    constants: tuple[Eqn, ...]            # `constant` equations: buffers known at compile time
    fused: bool = True

    @property
    def buffers(self) -> tuple[Var, ...]:
        """Every buffer: parameters, constants, then kernel outputs in order."""
        out = list(self.fn.params) + [c.out for c in self.constants]
        for k in self.kernels:
            out.extend(k.outputs)
        return tuple(out)

    def __str__(self) -> str:
        return format_program(self)


# ---------------------------------------------------------------------------------------------
# printing


def program_names(program: Program) -> dict[Var, str]:
    """The names of the function's values (as its printer numbers them), extended to loads."""
    names = dict(names_of(program.fn))
    for k in program.kernels:
        for i, ld in enumerate(k.loads):
            names.setdefault(ld.dst, f"{names.get(ld.src, '%?')}.v{i}")
    return names


def format_kernel(k: Kernel, names: dict[Var, str]) -> str:
    head = f"kernel {k.name} {k.kind} domain=({','.join(map(str, k.domain))})"
    if k.reduce_axes:
        head += f" reduce=({','.join(map(str, k.reduce_axes))})"
    ins = ", ".join(names.get(v, "%?") for v in k.inputs)
    outs = ", ".join(names.get(v, "%?") for v in k.outputs)
    lines = [f"{head}  ({ins}) -> ({outs}) {{"]
    for ld in k.loads:
        lines.append(f"  {names[ld.dst]} = load {ld.imap.format(names.get(ld.src, '%?'))}"
                     f"  : {ld.dst.type}")
    for e in k.body:
        lines.append(f"  {format_eqn(e, names)}  : {e.out.type}")
    lines.append(f"  store {outs}")
    lines.append("}")
    return "\n".join(lines)


def format_program(program: Program) -> str:
    names = program_names(program)
    fn = program.fn
    sig = ", ".join(f"{names[p]}: {p.type}" for p in fn.params)
    lines = [f"program @{fn.name}({sig})  "
             f"[{len(program.kernels)} kernel{'s' if len(program.kernels) != 1 else ''}, "
             f"{'fused' if program.fused else 'unfused'}]"]
    for c in program.constants:
        lines.append(f"const {format_eqn(c, names)}  : {c.out.type}")
    for k in program.kernels:
        lines.append(format_kernel(k, names))
    rets = ", ".join(names.get(r, "%?") if isinstance(r, Var) else str(r) for r in fn.results)
    lines.append(f"return {rets}")
    return "\n".join(lines)

