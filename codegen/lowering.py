"""What both backends decide alike, before either emits a line.

The CPU (`llvm`) and CUDA (`cuda`) generators lower the same Kernels; everything about *what*
a kernel computes and *where* its data lives is decided here, once, and each generator only
emits it in its own language:

- reductions (`Reduction`): the binary primitive that combines two partial results, its
  identity, the accumulator's dtype (float32 sums accumulate in float64 on every backend), and
  the order of a combine's operands (max and min test the new value first, so that a NaN in
  it wins, as in NumPy);
- dots (`DotPlan`): each operand as a batch of strided matrices, the prologue and copy loop
  kernels that put operands in scratch when they are computed or not strided, the product's
  scratch, and the epilogue as a loop kernel over the product;
- index arithmetic (`affine_terms`): the terms of offset + Σ strides[d]·i[d] that are not
  zero;
- kernels of their own (`own_primitive`): the primitive a single-equation kernel lowers by the
  backend's table of such kernels (fusion gives every primitive with `own_kernel` one);
- sort keys (`sort_key_bits`): sort and argsort order each element by an unsigned integer key
  whose order is NumPy's, and sort stably by it (least significant digit first);
- the cache key of generated code (`source_hash`).

What the status words hold and which equations check values is `codegen.status`; where every
buffer lives is `codegen.buffers`.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracejit import primitives as P
from tracejit.ir import DTYPES, Eqn, Literal, Type, Var, is_float
from tracejit.kernels import LOOP, IndexMap, Kernel, Load

# ---------------------------------------------------------------------------------------------
# reductions

#: reduction primitive → (the binary primitive combining two partial results, its identity:
#: "zero", "one", "lowest" or "highest" of the accumulator's dtype). Bool operands combine
#: with `or` (sum, max) or `and` (prod, min): see `Reduction.combine`.
REDUCTIONS = {
    P.reduce_sum: (P.add, "zero"),
    P.reduce_prod: (P.mul, "one"),
    P.reduce_max: (P.max_, "lowest"),
    P.reduce_min: (P.min_, "highest"),
}
_BOOL_COMBINE = {P.add: P.or_, P.mul: P.and_, P.max_: P.or_, P.min_: P.and_}


@dataclass(frozen=True, eq=False)
class Reduction:
    """A reduction equation of a loop kernel, and how every backend accumulates it."""

    eqn: Eqn

    @property
    def dtype(self) -> str:
        """The result's dtype."""
        return self.eqn.out.type.dtype

    @property
    def acc_dtype(self) -> str:
        """The accumulator's dtype: float64 for float32 sums (the error of a sum of n float32
        values is then about n·2⁻⁵³·Σ|x| before the one rounding to float32), else the
        result's."""
        return "f64" if self.dtype == "f32" and self.eqn.prim is P.reduce_sum else self.dtype

    @property
    def combine(self) -> P.Primitive:
        """The binary elementwise primitive that combines an accumulator and a value."""
        combine, _ = REDUCTIONS[self.eqn.prim]
        return _BOOL_COMBINE[combine] if self.dtype == "bool" else combine

    @property
    def sum_like(self) -> bool:
        """Whether the combine is a float addition or multiplication, which a backend may
        reassociate (several partial sums in a vector loop)."""
        return is_float(self.acc_dtype) and self.combine in (P.add, P.mul)

    def identity(self):
        """The combine's identity, a NumPy scalar of the accumulator's dtype (a bool's is a
        Python bool)."""
        _, which = REDUCTIONS[self.eqn.prim]
        dt = self.acc_dtype
        if dt == "bool":
            return which in ("one", "highest")
        if which in ("zero", "one"):
            value = 0 if which == "zero" else 1
        elif is_float(dt):
            value = -math.inf if which == "lowest" else math.inf
        else:
            info = np.iinfo(DTYPES[dt])
            value = info.min if which == "lowest" else info.max
        return np.asarray(value, DTYPES[dt])[()]

    def operands(self, acc, x) -> tuple:
        """The combine's operands in order: max and min take the new value first, so that a
        NaN in it wins (and NumPy's choice between +0 and -0 is kept); the others (acc, x)."""
        return (x, acc) if self.eqn.prim in (P.reduce_max, P.reduce_min) else (acc, x)


def reductions_of(body) -> list[Reduction]:
    """The reductions among a loop kernel's body equations, in order."""
    out = []
    for e in body:
        if e.prim.category is P.REDUCTION:
            if e.prim not in REDUCTIONS:
                raise NotImplementedError(f"{e.prim.name} is not a reduction of a loop kernel")
            out.append(Reduction(e))
    return out


# ---------------------------------------------------------------------------------------------
# index arithmetic


def affine_terms(imap: IndexMap) -> list[tuple[int, int]]:
    """(axis, stride) of the terms of `imap`'s offset + Σ strides[d]·i[d] that can be nonzero
    (an axis of size 1 or stride 0 adds nothing)."""
    return [(d, s) for d, (n, s) in enumerate(zip(imap.shape, imap.strides))
            if s != 0 and n != 1]


# ---------------------------------------------------------------------------------------------
# kernels of their own


def own_primitive(kernel: Kernel) -> P.Primitive:
    """The primitive a kernel of its own lowers (its one equation's)."""
    prim = kernel.own_primitive
    if prim is None:
        raise NotImplementedError(f"kernel {kernel.name}: no lowering for a {kernel.kind} kernel")
    return prim


# ---------------------------------------------------------------------------------------------
# sort keys
#
# Both backends sort the unsigned integer keys of the elements, stably, least significant digit
# first. The key of a float is its bits with the sign bit flipped when it is positive and
# every bit flipped when it is negative, which orders the keys as the values; -0.0 takes the
# key of 0.0 (they are equal) and every NaN the largest key (NaNs sort last, as in NumPy). A
# signed integer's key is its bits with the sign bit flipped; a boolean's is 0 or 1.


def sort_key_bits(dtype: str) -> int:
    """The width of the sort keys of `dtype`: its size in memory, in bits."""
    return 8 * int(np.dtype(DTYPES[dtype]).itemsize)


# ---------------------------------------------------------------------------------------------
# dots


def _collapse(shape, strides, axes):
    """(size, stride) of `axes` collapsed into one, or None when they are not one strided run."""
    axes = [a for a in axes if shape[a] != 1]
    if not axes:
        return 1, 0
    size = 1
    for a, nxt in zip(axes, axes[1:]):
        if strides[a] != strides[nxt] * shape[nxt]:
            return None
    for a in axes:
        size *= shape[a]
    return size, strides[axes[-1]]


@dataclass
class Matrix:
    """A dot operand as a batch of strided matrices: rows × cols, for BLAS."""

    src: Var
    offset: int
    batch: tuple[int, ...]              # sizes of the batch axes
    batch_strides: tuple[int, ...]
    rows: int
    cols: int
    row_stride: int
    col_stride: int

    def blas_layout(self) -> tuple[bool, int] | None:
        """(transposed, leading dimension) for a row-major cblas call, or None."""
        if self.col_stride == 1 or self.cols == 1:
            ld = self.row_stride if self.rows > 1 else max(self.cols, 1)
            if ld >= max(self.cols, 1):
                return False, ld
        if self.row_stride == 1 or self.rows == 1:
            ld = self.col_stride if self.cols > 1 else max(self.rows, 1)
            if ld >= max(self.rows, 1):
                return True, ld
        return None


def _as_matrix(src: Var, imap: IndexMap, batch, rows, cols) -> Matrix | None:
    r = _collapse(imap.shape, imap.strides, rows)
    c = _collapse(imap.shape, imap.strides, cols)
    if r is None or c is None:
        return None
    return Matrix(src, imap.offset, tuple(imap.shape[a] for a in batch),
                  tuple(imap.strides[a] for a in batch), r[0], c[0], r[1], c[1])


class DotPlan:
    """How a `dot` kernel runs, on either backend: prologue loops computing operands into
    scratch, operand copies where an operand is not a strided matrix (or, with `blas`, not one
    a BLAS call takes), the product of two batches of strided matrices, and the epilogue as a
    loop kernel over the product.

    Made before the buffer plan (`scratch()` says what scratch the kernel needs); a backend
    emits the kernels it names and the product after the plan is made."""

    def __init__(self, kernel: Kernel, blas: bool):
        self.k = kernel
        self.dot = kernel.dot
        (lc, rc), (lb, rb) = self.dot.params["contract"], self.dot.params["batch"]
        self.blas = blas and is_float(self.dot.out.type.dtype)
        loads = {ld.dst: ld for ld in kernel.loads}
        self.prologues: list[Var] = []                 # operands computed in the prologue
        self.copies: list[Load | None] = []            # operands copied to a canonical layout
        self.mats: list[Matrix] = []
        self.literals: dict[Var, Eqn] = {}              # scalar literal operands
        for side, (op, batch, contract) in enumerate(((self.dot.inputs[0], lb, lc),
                                                      (self.dot.inputs[1], rb, rc))):
            free = tuple(i for i in range(op.type.ndim) if i not in batch and i not in contract)
            rows, cols = (free, contract) if side == 0 else (contract, free)
            if isinstance(op, Literal):
                # A scalar literal operand: a one-element prologue computes it into scratch.
                lit, op = op, Var(op.type)
                self.literals[op] = Eqn(P.broadcast_in_dim, (lit,), op,
                                        {"shape": (), "dims": ()})
            if op in loads:
                src, imap = loads[op].src, loads[op].imap
            else:
                src, imap = op, IndexMap.contiguous(op.type.shape)
                if op not in self.prologues:          # x' @ x' computes x' once
                    self.prologues.append(op)
            mat = _as_matrix(src, imap, batch, rows, cols)
            copy = None
            if mat is None or (self.blas and mat.blas_layout() is None):
                # Copy into the canonical [batch, rows, cols] order, contiguous.
                view = imap.transpose(tuple(batch) + tuple(rows) + tuple(cols))
                copy = Load(Var(Type(view.shape, op.type.dtype)), src, view)
                nb, nr = len(batch), len(rows)
                mat = _as_matrix(copy.dst, IndexMap.contiguous(view.shape), tuple(range(nb)),
                                 tuple(range(nb, nb + nr)), tuple(range(nb + nr, len(view.shape))))
            self.copies.append(copy)
            self.mats.append(mat)
        epilogue = [e for e in kernel.body
                    if e is not self.dot and kernel.phase(e) != "prologue"]
        # The prologue's work that the epilogue reads too (a scalar of the parameters, such
        # as -x in (-x + a) @ w + tanh(-x)) is computed again there: the prologue runs in
        # loops of its own, over the operands' shapes.
        need = {a for e in epilogue for a in e.inputs if isinstance(a, Var)}
        shared = []
        for e in reversed(kernel.body[:kernel.body.index(self.dot)]):
            if e.out in need and kernel.phase(e) == "prologue":
                shared.append(e)
                need.update(a for a in e.inputs if isinstance(a, Var))
        self.epilogue = shared[::-1] + epilogue

    def scratch(self) -> list[tuple[Var, int]]:
        """(buffer, bytes) of the scratch this kernel needs while it runs."""
        out = [(v, v.type.nbytes) for v in self.prologues]
        out += [(c.dst, c.dst.type.nbytes) for c in self.copies if c is not None]
        if self.dot.out not in self.k.outputs:
            out.append((self.dot.out, self.dot.out.type.nbytes))
        return out

    def prologue_kernels(self, sep: str = ".") -> list[Kernel]:
        """Loop kernels computing each prologue operand (into scratch)."""
        k, dot = self.k, self.dot
        out = []
        for i, op in enumerate(self.prologues):
            feeds, chain = {op}, []
            for e in reversed(k.body[:k.body.index(dot)]):
                if e.out in feeds:
                    chain.append(e)
                    feeds.update(a for a in e.inputs if isinstance(a, Var))
            chain.reverse()
            if op in self.literals:
                chain = [self.literals[op]]
            out.append(Kernel(f"{k.name}{sep}prologue{i}", LOOP, op.type.shape, (),
                              tuple(ld for ld in k.loads if ld.dst in feeds), tuple(chain),
                              (op,), ()))
        return out

    def copy_kernels(self, names: dict, sep: str = ".") -> list[Kernel]:
        """Loop kernels copying operands to their canonical layout (into scratch); the copies
        are named `%kN.operandS` in `names`."""
        out = []
        for side, copy in enumerate(self.copies):
            if copy is not None:
                names.setdefault(copy.dst, f"%{self.k.name}.operand{side}")
                out.append(Kernel(f"{self.k.name}{sep}copy{side}", LOOP, copy.imap.shape, (),
                                  (copy,), (), (copy.dst,), ()))
        return out

    def epilogue_kernel(self, sep: str = ".") -> Kernel | None:
        """The epilogue as a loop kernel reading the product back from memory (a contiguous
        load), or None when the product is the kernel's only output."""
        k, dot = self.k, self.dot
        outputs = tuple(v for v in k.outputs if v is not dot.out)
        if not outputs:
            return None
        used = {a for e in self.epilogue for a in e.inputs if isinstance(a, Var)}
        loads = tuple(ld for ld in k.loads if ld.dst in used)
        loads += (Load(dot.out, dot.out, IndexMap.contiguous(dot.out.type.shape)),)
        return Kernel(f"{k.name}{sep}epilogue", LOOP, k.domain, k.reduce_axes, loads,
                      tuple(self.epilogue), outputs, ())


# ---------------------------------------------------------------------------------------------
# the cache key


@functools.lru_cache(maxsize=None)
def source_hash() -> str:
    """A hash of the code generators' source (every file of this package), for the keys of
    compiled-code caches: code cached by one version of the lowering is never loaded by
    another. A runtime adds its own source to its keys."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(list(here.glob("*.py")) + list(here.glob("*.cuh"))):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
