"""Program → CUDA C: one module of `extern "C" __global__` kernels, and the launches that run it.

Every Kernel of the Program becomes one or more `__global__` functions, named after it (`k3`,
`k3_partial` and `k3_final` for a split reduction, `k3_gemm` for a dot's product, ...), each
preceded by a comment with the IR it computes and the user lines it came from. Values are named
after the IR values they hold: `v5` is `%5`, `v0_1` the load `%0.v1`; the pointer to buffer `%5`
is `p5`; `i0, i1, ...` are the indices of the kernel's domain axes. Sizes, strides and offsets
are compile-time constants (a Program has static shapes); index arithmetic is 32-bit unless a
size needs 64.

Kinds of kernels, and how they run:
- elementwise (a loop kernel without reductions, a copy): a grid-stride loop, one element a
  thread and iteration; when every operand is contiguous (or a scalar) the loop moves 16 bytes a
  thread with vector loads and stores (`float4`, `double2`, ...).
- reductions: the reduced axes are flattened into one range of R elements per output. When the
  innermost axis is reduced and R is large, a block of threads reduces each output (a strided
  loop per thread, then `tj_block_reduce`: warp shuffles and shared memory); otherwise each
  thread reduces one output with a serial loop (coalesced when the kept axes are innermost: a
  bias gradient). Long reductions are split over S blocks (or S thread ranges) writing partial
  results; a second kernel combines them in order, then runs the epilogue. The split depends
  only on shapes, so a result has the same bits on every run and every device. Float32 sums
  accumulate in float64, as on the CPU.
- dots: prologues and operand copies as elementwise kernels into scratch; the product as a
  tiled shared-memory kernel over strided operand matrices (64×64 tiles, 16-deep, 4×4 outputs a
  thread, explicit fma), or with `allow_tf32` for float32 on tensor cores (WMMA m16n16k8,
  TF32 inputs, float32 accumulation); an elementwise epilogue runs in the product's store, an
  epilogue with reductions as a reduction kernel over the product in scratch.
- gather (bounds-checked: an out-of-bounds index is reported in the status words and the host
  raises IndexError), scatter-add (a copy, then atomicAdd per update: float sums in an
  unspecified order), concatenate, pad, argmax/argmin: one thread per output element.

Every launch's grid is the blocks its work needs; a kernel left without work by a zero-sized
dimension (an empty batch, no rows) has an empty grid and is not launched (`function`).

The module is compiled with `--fmad=false`: elementwise arithmetic rounds operation by
operation, as NumPy's does.
"""

from __future__ import annotations

import functools
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracejit import primitives as P
from tracejit.errors import UnsupportedError, where
from tracejit.ir import DTYPES, Eqn, Type, Var, format_eqn, is_float, is_int
from tracejit.kernels import (COPY, DOT, LOOP, IndexMap, Kernel, Program, copy_as_loop,
                              program_names, value_scopes)

from . import lowering
from .buffers import BufferPlan, plan_buffers
from .lowering import DotPlan, affine_terms, own_primitive, sort_key_bits
from .status import INDEX_ERROR, checks_of, sites

BLOCK = 256               # threads a block for elementwise and reduction kernels
MAX_GRID = 1 << 16        # blocks of a grid-stride kernel at most (the device may use fewer)
SPLIT_MIN = 8192          # reduced elements per output before a reduction is split
SPLIT_MAX = 1024          # partial results per output at most
SERIAL_MAX = 32           # reduced elements per output up to which each thread reduces one
INT32_LIMIT = 1 << 30     # sizes from which index arithmetic is 64-bit
GEMM_TILE, GEMM_DEPTH = 64, 16
WMMA_TILE, WMMA_DEPTH = 64, 8

#: C types of the IR's dtypes. The half types are structs of their bits (the preamble's
#: tj_half and tj_bfloat16) that convert to and from float: their values are computed in
#: float (the widen pass), and C never mistakes their bits for a number.
CTYPE = {"f32": "float", "f64": "double", "i32": "int", "i64": "long long", "bool": "bool",
         "i8": "signed char", "i16": "short", "u8": "unsigned char", "u16": "unsigned short",
         "u32": "unsigned int", "u64": "unsigned long long", "f16": "tj_half",
         "bf16": "tj_bfloat16"}
# Vector types of 2 and 4 lanes for 16-byte (or 8-byte) loads and stores.
VECTOR = {("f32", 4): "float4", ("f32", 2): "float2", ("f64", 2): "double2",
          ("i32", 4): "int4", ("i32", 2): "int2", ("i64", 2): "longlong2",
          ("bool", 4): "uchar4", ("bool", 2): "uchar2"}


@dataclass(frozen=True)
class Param:
    """One parameter of a kernel: its C name and type, and where its value comes from:
    ("arg", i) the argument table's slot i (parameters, constants, results, in the buffer
    plan's order), ("arena", offset) an offset into the arena, ("status", 0) the status
    words (int64[STATUS_WORDS])."""

    name: str
    ctype: str
    where: tuple[str, int]


@dataclass(frozen=True)
class Launch:
    """One kernel launch: `grid` blocks of `block` threads (1-D). A `grid_stride` kernel gives
    the same result for any grid up to `grid` (its loops stride over the work). `align` is the
    byte alignment its vector loads and stores need of every parameter."""

    kernel: str
    params: tuple[Param, ...]
    grid: int
    block: int
    grid_stride: bool = False
    align: int = 1


def threads_for(work: int) -> int:
    """Threads a block for `work` independent items: BLOCK, or fewer (a multiple of 32) for
    small work, so that no block is mostly idle."""
    return min(BLOCK, max(32, -(-work // 32) * 32))


@functools.lru_cache(maxsize=None)
def preamble() -> str:
    """The device helpers every module starts with (codegen/cuda_preamble.cuh)."""
    return (Path(__file__).with_name("cuda_preamble.cuh")).read_text()


# ---------------------------------------------------------------------------------------------
# scalars: literals and the lowering table


def literal(dtype: str, value) -> str:
    """A C literal of `dtype` (NaN, infinities and -0.0 exactly)."""
    if dtype == "bool":
        return "true" if value else "false"
    if dtype in ("f16", "bf16"):
        return f"{CTYPE[dtype]}({literal('f32', value)})"
    if is_int(dtype):
        v = int(value)
        if dtype == "i32":
            return str(v) if v != -(1 << 31) else "(-2147483647 - 1)"
        if dtype == "i64":
            return f"{v}LL" if v != -(1 << 63) else "(-9223372036854775807LL - 1)"
        return f"({CTYPE[dtype]}){v}{'ULL' if dtype == 'u64' else ''}"
    v = float(np.float32(value)) if dtype == "f32" else float(value)
    if math.isnan(v):
        return "__int_as_float(0x7fc00000)" if dtype == "f32" else \
            "__longlong_as_double(0x7ff8000000000000LL)"
    if math.isinf(v):
        inf = "__int_as_float(0x7f800000)" if dtype == "f32" else \
            "__longlong_as_double(0x7ff0000000000000LL)"
        return inf if v > 0 else f"(-{inf})"
    text = repr(v)
    if "e" not in text and "." not in text:
        text += ".0"
    return text + ("f" if dtype == "f32" else "")


def _math(name: str, dt: str) -> str:
    return name + ("f" if dt == "f32" else "")


def _infix(op: str):
    return lambda x, y, dt: f"({x} {op} {y})"


def _helper(name: str):
    return lambda x, y, dt: f"{name}({x}, {y})"


def _libm(name: str):
    """A CUDA math library function: `expf` for float32, `exp` for float64."""
    return lambda x, dt: f"{_math(name, dt)}({x})"


def _libm2(name: str):
    """A two-argument CUDA math library function: `atan2f` for float32, `atan2` for float64."""
    return lambda x, y, dt: f"{_math(name, dt)}({x}, {y})"


def _arithmetic(op: str, bool_op: str):
    """x op y: infix for floats, a wrapping helper for integers (tj_add, ...), a logical
    operator for bools."""
    helper = {"+": "tj_add", "-": "tj_sub", "*": "tj_mul"}[op]
    return lambda x, y, dt: (f"({x} {bool_op} {y})" if dt == "bool" and bool_op
                             else f"{x} {op} {y}" if is_float(dt) else f"{helper}({x}, {y})")


def _chooser(helper: str, bool_op: str):
    return lambda x, y, dt: f"({x} {bool_op} {y})" if dt == "bool" else f"{helper}({x}, {y})"


def _logical(op: str, bool_op: str):
    return lambda x, y, dt: f"({x} {bool_op if dt == 'bool' else op} {y})"


#: elementwise unary primitive → C expression from (x, dtype)
UNARY = {
    P.neg: lambda x, dt: f"-{x}" if is_float(dt) else f"tj_neg({x})",
    P.abs_: lambda x, dt: f"{_math('fabs', dt)}({x})" if is_float(dt) else f"tj_abs({x})",
    P.sign: lambda x, dt: f"tj_sign({x})",
    P.not_: lambda x, dt: f"!{x}" if dt == "bool" else f"~{x}",
    P.exp: _libm("exp"),
    P.expm1: _libm("expm1"),
    P.log: _libm("log"),
    P.log1p: _libm("log1p"),
    P.sqrt: _libm("sqrt"),
    P.sin: _libm("sin"),
    P.cos: _libm("cos"),
    P.tanh: _libm("tanh"),
    P.atan: _libm("atan"),
    P.asinh: _libm("asinh"),
    P.asin: _libm("asin"),
    P.acos: _libm("acos"),
    P.acosh: _libm("acosh"),
    P.atanh: _libm("atanh"),
    P.cbrt: _libm("cbrt"),
    P.rint: _libm("rint"),
    P.signbit: lambda x, dt: f"(signbit({x}) != 0)",
    P.optimization_barrier: lambda x, dt: x,
    P.floor: _libm("floor"),
    P.ceil: _libm("ceil"),
}

#: elementwise binary primitive → C expression from (x, y, dtype of the operands)
BINARY = {
    P.add: _arithmetic("+", "||"),
    P.sub: _arithmetic("-", ""),
    P.mul: _arithmetic("*", "&&"),
    P.div: lambda x, y, dt: f"{x} / {y}",
    P.floordiv: _helper("tj_floordiv"),
    P.mod: _helper("tj_mod"),
    P.pow_: lambda x, y, dt: f"{_math('pow', dt)}({x}, {y})" if is_float(dt) else
    f"tj_pow({x}, {y})",
    P.fmod: _helper("tj_fmod"),
    P.copysign: _libm2("copysign"),
    P.hypot: _libm2("hypot"),
    P.atan2: _libm2("atan2"),
    P.max_: _chooser("tj_max", "||"),
    P.min_: _chooser("tj_min", "&&"),
    P.and_: _logical("&", "&&"),
    P.or_: _logical("|", "||"),
    P.xor: _logical("^", "!="),
    P.eq: _infix("=="),
    P.ne: _infix("!="),
    P.lt: _infix("<"),
    P.le: _infix("<="),
    P.gt: _infix(">"),
    P.ge: _infix(">="),
}


def cast(x: str, src: str, dst: str) -> str:
    """x of `src` as `dst`, as NumPy's astype (and the cpu backend's `_cast`) converts."""
    if src == dst:
        return x
    if src in ("f16", "bf16"):                          # the float of the same value
        x, src = f"(float){x}", "f32"
        if dst == "f32":
            return x
    if dst == "bool":
        return f"({x} != {literal(src, 0)})"          # NaN is true
    if dst in ("f16", "bf16"):                          # one rounding, from float or double
        return f"{CTYPE[dst]}({x if is_float(src) else f'(float){x}'})"
    if is_int(dst) and is_float(src):
        # Through int32 for the integers that it holds, else through int64 (or uint64's
        # own), then wrapped: C's conversions, with x86's value where C's are undefined.
        if dst in ("i64", "u64", "i32"):
            return f"tj_to_{dst}({x})"
        via = "i64" if dst == "u32" else "i32"
        return f"({CTYPE[dst]})tj_to_{via}({x})"
    return f"({CTYPE[dst]}){x}"


def _broadcast_scalar(eqn: Eqn, args: list[str], index) -> str:
    if eqn.inputs[0].type.shape != ():
        raise NotImplementedError("the cuda backend broadcasts only scalars in a body")
    return args[0]


#: the other primitives a kernel body holds → C expression from (eqn, args, index)
OTHER = {
    P.cast: lambda eqn, args, index: cast(args[0], eqn.inputs[0].type.dtype, eqn.out.type.dtype),
    P.select: lambda eqn, args, index: f"({args[0]} ? {args[1]} : {args[2]})",
    P.check: lambda eqn, args, index: args[0],          # its check is codegen.status's
    P.threefry2x32: lambda eqn, args, index:
        f"tj_threefry2x32({', '.join(args)}, {eqn.params['word']})",
    P.broadcast_in_dim: _broadcast_scalar,
    P.iota: lambda eqn, args, index: cast(index[eqn.params["dimension"]], "i64",
                                          eqn.out.type.dtype),
}


def scalar(eqn: Eqn, args: list[str], index: dict[int, str]) -> str:
    """The C expression of `eqn` at one point, from its operands' expressions; `index` maps
    the eqn's axes to index names (for iota)."""
    prim = eqn.prim
    if prim in UNARY:
        return UNARY[prim](args[0], eqn.inputs[0].type.dtype)
    if prim in BINARY:
        return BINARY[prim](args[0], args[1], eqn.inputs[0].type.dtype)
    if prim in OTHER:
        return OTHER[prim](eqn, args, index)
    raise NotImplementedError(f"the cuda backend has no lowering for {prim.name}")


# ---------------------------------------------------------------------------------------------
# reductions


#: a reduction's combine → the functor of `tj_block_reduce` (codegen/cuda_preamble.cuh);
#: bools accumulate in int, where or and and are max and min.
FUNCTOR = {P.add: "TjSum", P.mul: "TjProd", P.max_: "TjMax", P.min_: "TjMin", P.or_: "TjMax",
           P.and_: "TjMin"}


@dataclass(frozen=True, eq=False)
class Reduction(lowering.Reduction):
    """A reduction on the GPU: the shared plan (`lowering.Reduction`), with bools accumulated
    in int (what warp shuffles and atomics take)."""

    @property
    def acc(self) -> str:
        """The accumulator's IR dtype."""
        return "i32" if self.dtype == "bool" else self.acc_dtype

    @property
    def op(self) -> str:
        """The functor that combines partial results in a block reduction."""
        return FUNCTOR[self.combine]

    def identity(self) -> str:
        return literal(self.acc, super().identity())

    def combine_text(self, acc: str, x: str) -> str:
        """acc ⊕ x."""
        a, b = self.operands(acc, x)
        if self.sum_like:
            return BINARY[self.combine](a, b, self.acc)
        helper = {"TjSum": "tj_add", "TjProd": "tj_mul", "TjMax": "tj_max", "TjMin": "tj_min"}
        return f"{helper[self.op]}({a}, {b})"

    def finish(self, acc: str) -> str:
        return cast(acc, self.acc, self.dtype) if self.acc != self.dtype else acc


# ---------------------------------------------------------------------------------------------
# writing C


class Writer:
    """Lines of C with indentation."""

    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str = "") -> None:
        self.lines.append("    " * self.depth + line if line else "")

    @contextmanager
    def block(self, head: str):
        self(head + " {")
        self.depth += 1
        yield
        self.depth -= 1
        self("}")


def _digits(w: Writer, flat: str, shape, names: list[str], itype: str) -> None:
    """Declare names[d] = the index of axis d of `shape` at row-major position `flat`."""
    if not shape:
        return
    if len(shape) == 1:
        w(f"const {itype} {names[0]} = {flat};")
        return
    w(f"{itype} {flat}_rest = {flat};")
    for d in range(len(shape) - 1, 0, -1):
        w(f"const {itype} {names[d]} = {flat}_rest % {shape[d]}; {flat}_rest /= {shape[d]};")
    w(f"const {itype} {names[0]} = {flat}_rest;")


def affine(imap: IndexMap, index: list[str]) -> str:
    """offset + Σ strides[d]·index[d] as C text."""
    terms = []
    for d, s in affine_terms(imap):
        i = index[d]
        terms.append(i if s == 1 else f"{s} * {i}" if s > 0 else f"({s}) * {i}")
    if imap.offset or not terms:
        terms.append(str(imap.offset))
    return " + ".join(terms)


# ---------------------------------------------------------------------------------------------
# the module


class CudaLowering:
    """A Program's CUDA lowering: `plan` (the buffer plan, codegen.buffers), `source` (the
    CUDA C text), `launches` (in order), `may_fail` (whether the status words can report an
    error after a call: codegen.status)."""

    def __init__(self, program: Program, allow_tf32: bool = False, name: str = "tracejit"):
        self.program = program
        self.allow_tf32 = allow_tf32
        self.name = name
        self.names = program_names(program)
        self.dots = {k: DotPlan(kernel, blas=False) for k, kernel in
                     enumerate(program.kernels) if kernel.kind == DOT}
        # Scratch: dot prologues, operand copies and products; partial results of split
        # reductions. Planned first (sizes only), then the kernels are written against it.
        self._partials: dict[tuple[int, str, Var], Var] = {}
        self._own: dict[tuple[int, str], list[Var]] = {}
        scratch: dict[int, list[tuple[Var, int]]] = {}
        parts: list[tuple[int, Kernel, str]] = []
        for k, kernel in enumerate(program.kernels):
            for sub, role in self._parts(k, kernel):
                parts.append((k, sub, role))
                for key, nbytes in self._scratch_of(k, sub, role):
                    scratch.setdefault(k, []).append((key, nbytes))
            if k in self.dots:
                scratch.setdefault(k, []).extend(self._dot_scratch(k))
        self.plan: BufferPlan = plan_buffers(program, scratch)
        self.launches: list[Launch] = []
        self.may_fail = False
        self.sites = {e.out: i for i, e in enumerate(sites(program))}   # checked equations
        self._functions: dict[str, str] = {}       # kernel name -> its text
        for k, sub, role in parts:
            self.current = k                   # whose scratch `where` finds
            # Kernels whose body checks values take the status words.
            self.checked = any(checks_of(e) for e in sub.body)
            self._emit(k, sub, role)
        self.source = self._module_text()

    # -- the parts of each kernel ---------------------------------------------------------------

    def _parts(self, k: int, kernel: Kernel) -> list[tuple[Kernel, str]]:
        """[(kernel, role)]: what kernel k lowers to, in order."""
        if kernel.kind == LOOP:
            return [(kernel, "loop")]
        if kernel.kind == COPY:
            return [(copy_as_loop(kernel), "loop")]
        if kernel.kind == DOT:
            d = self.dots[k]
            parts = [(p, "loop") for p in d.prologue_kernels("_")]
            parts += [(c, "loop") for c in d.copy_kernels(self.names, "_")]
            parts.append((kernel, "gemm"))
            ep = d.epilogue_kernel("_")
            if ep is not None and not self._epilogue_in_gemm(k):
                parts.append((ep, "loop"))
            return parts
        own_primitive(kernel)          # a kernel of its own, or an error naming the kind
        return [(kernel, "own")]

    def _epilogue_in_gemm(self, k: int) -> bool:
        """Whether dot kernel k's epilogue runs in the product's store (no reductions)."""
        return not self.program.kernels[k].reduce_axes

    def _dot_scratch(self, k: int) -> list[tuple[Var, int]]:
        """The dot's scratch, less the product when the epilogue runs in its store."""
        d = self.dots[k]
        fused = self._epilogue_in_gemm(k)
        return [(v, n) for v, n in d.scratch() if not (fused and v is d.dot.out)]

    def _scratch_of(self, k: int, sub: Kernel, role: str) -> list[tuple[Var, int]]:
        if role == "own" and sub.own_primitive in (P.sort, P.argsort):
            x = sub.body[0].inputs[0]
            vars_ = _sort_scratch(x, self.itype(*self.load_sizes(sub), 2 * x.type.size))
            self._own[(k, sub.name)] = vars_
            for v, role in zip(vars_, ("keys", "positions")):
                self.names.setdefault(v, f"{self.names_of(sub.body[0].out)}.{role}")
            return [(v, v.type.nbytes) for v in vars_]
        if role != "loop" or not sub.reduce_axes:
            return []
        shape = ReductionShape(sub)
        if shape.split == 1:
            return []
        out = []
        for r in reductions_of(sub):
            var = Var(Type((shape.split * shape.outputs,), r.acc))
            self._partials[(k, sub.name, r.eqn.out)] = var
            self.names.setdefault(var, f"{self.names_of(r.eqn.out)}.partial")
            out.append((var, var.type.nbytes))
        return out

    def own_scratch(self, sub: Kernel) -> list[Var]:
        """The scratch buffers of kernel of its own `sub` (see `_scratch_of`)."""
        return self._own[(self.current, sub.name)]

    def partial(self, sub: Kernel, r: Reduction) -> Var:
        return self._partials[(self.current, sub.name, r.eqn.out)]

    # -- names and parameters ------------------------------------------------------------------

    def names_of(self, v: Var) -> str:
        return self.names.get(v, f"%t{v.uid}")

    def value(self, v: Var) -> str:
        """The C name of value `v`: `%5` → `v5`, `%0.v1` → `v0_1`."""
        text = self.names_of(v).lstrip("%").replace(".v", "_")
        return "v" + re.sub(r"\W", "_", text)

    def pointer(self, v: Var) -> str:
        return "p" + self.value(v)[1:]

    def where(self, v: Var) -> tuple[str, int]:
        scratch = self.plan.scratch.get(self.current, {})
        return ("arena", scratch[v]) if v in scratch else self.plan.locations[v]

    def params(self, reads, writes, status: bool = False) -> tuple[Param, ...]:
        """The kernel parameters for buffers read and written (each once, reads first)."""
        out, seen = [], set()
        written = set(writes)
        for v in list(reads) + list(writes):
            if v in seen:
                continue
            seen.add(v)
            const = "" if v in written else "const "
            out.append(Param(self.pointer(v), f"{const}{CTYPE[v.type.dtype]}* __restrict__",
                             self.where(v)))
        if status or self.checked:
            out.append(Param("status", "long long*", ("status", 0)))
            self.may_fail = True
        return tuple(out)

    def function(self, name: str, params: tuple[Param, ...], body: Writer, comment: str,
                 grid: int, block: int, grid_stride: bool = False, align: int = 1) -> None:
        """Add `extern "C" __global__ void name(params) {body}` and its launch.

        The launch policy, for every kernel: `grid` is the number of blocks its work needs
        (0 when the work is empty: a zero-sized dimension), and a kernel with an empty grid
        is not launched at all. Kernels are written for the blocks they are given, so none
        is ever run with a block it has no work for (a product tile of an empty batch)."""
        sig = ", ".join(f"{p.ctype} {p.name}" for p in params)
        if grid <= 0:
            comment += "\n// (not launched: its grid is empty)"
        lines = [comment, f'extern "C" __global__ void __launch_bounds__({block}) {name}({sig}) {{']
        lines += ["    " + line if line else "" for line in body.lines]
        lines.append("}")
        self._functions[name] = "\n".join(lines)
        if grid > 0:
            self.launches.append(Launch(name, params, grid, block, grid_stride, align))

    def comment(self, kernel: Kernel, what: str) -> str:
        """A comment with the kernel's IR equations and the user lines they came from."""
        k = self.program.kernels[self.current]
        lines = [f"// {kernel.name}: {what}"]
        for ld in kernel.loads:
            lines.append(f"//   {self.names_of(ld.dst)} = load "
                         f"{ld.imap.format(self.names_of(ld.src))}  : {ld.dst.type}")
        for e in kernel.body:
            loc = f"  # {e.loc}" if e.loc is not None else ""
            lines.append(f"//   {format_eqn(e, self.names)}  : {e.out.type}{loc}")
        if kernel is not k and k.eqns:
            lines.append(f"//   (part of {k.name})")
        return "\n".join(lines)

    def _module_text(self) -> str:
        head = [f"// {self.name}: generated by tracejit from this program:",
                *("// " + line for line in str(self.program).splitlines()), ""]
        if any(name.endswith("_wmma") for name in self._functions):
            head.append("#include <mma.h>")
        return ("\n".join(head) + "\n" + preamble() + "\n\n"
                + "\n\n".join(self._functions.values()) + "\n")

    # -- kernels ----------------------------------------------------------------------------------

    def _emit(self, k: int, sub: Kernel, role: str) -> None:
        name = re.sub(r"\W", "_", sub.name)
        if role == "loop":
            if sub.reduce_axes and sub.domain:
                ReductionKernel(self, sub, name).emit()
            else:
                ElementwiseKernel(self, sub, name).emit()
        elif role == "gemm":
            GemmKernel(self, k, sub, name).emit()
        else:
            OWN_KERNELS[own_primitive(sub)](self, sub, name)

    def itype(self, *sizes: int) -> str:
        """The index type for these sizes: int, or long long from INT32_LIMIT."""
        return "long long" if max(sizes, default=0) >= INT32_LIMIT else "int"

    def load_sizes(self, kernel: Kernel) -> list[int]:
        out = [math.prod(kernel.domain)]
        for ld in kernel.loads:
            out.append(ld.src.type.size)
        for v in kernel.outputs:
            out.append(v.type.size)
        return out


def reductions_of(kernel: Kernel) -> list[Reduction]:
    return [Reduction(r.eqn) for r in lowering.reductions_of(kernel.body)]


class Body:
    """Emits the loads and body equations of one scope of a loop kernel as C declarations."""

    def __init__(self, lo: CudaLowering, kernel: Kernel):
        self.lo = lo
        self.k = kernel
        self.scope = value_scopes(kernel)
        self.kept_axes = [d for d in range(len(kernel.domain)) if d not in kernel.reduce_axes]

    def operand(self, a) -> str:
        return self.lo.value(a) if isinstance(a, Var) else literal(a.type.dtype, a.value)

    def emit(self, w: Writer, scope: str, index: list[str], loads: dict | None = None) -> None:
        """Declare the loads and values of `scope`; `index` names the domain's indices
        (full scope) or the kept axes' (kept scope). `loads` may replace a load's C text."""
        lo = self.lo
        for ld in self.k.loads:
            if self.scope[ld.dst] != scope:
                continue
            t = CTYPE[ld.dst.type.dtype]
            if loads and ld.dst in loads:
                w(f"const {t} {lo.value(ld.dst)} = {loads[ld.dst]};")
                continue
            idx = index if scope != "scalar" else []
            w(f"const {t} {lo.value(ld.dst)} = {lo.pointer(ld.src)}[{affine(ld.imap, idx)}];")
        axes = dict(enumerate(index)) if scope == "full" else \
            dict(zip(self.kept_axes, index)) if scope == "kept" else {}
        for e in self.k.body:
            if self.scope[e.out] != scope or e.prim.category is P.REDUCTION:
                continue
            expr = scalar(e, [self.operand(a) for a in e.inputs], axes)
            w(f"const {CTYPE[e.out.type.dtype]} {lo.value(e.out)} = {expr};")
            for c in checks_of(e):
                a = e.inputs[c.operand]
                bad = BINARY[c.compare](self.operand(a), literal(a.type.dtype, c.bound),
                                        a.type.dtype)
                w(f"if ({bad}) tj_report(status, {c.code}, {lo.sites[e.out]}, 0, 0);")

    def stores_scalars(self, w: Writer) -> bool:
        """Store the kernel's rank-0 outputs from thread 0 of block 0, if it has any (then it
        needs a block even when its domain is empty); return whether it has, or checks a
        scalar value (NumPy computes a scalar, and raises on it, whatever the array shapes)."""
        if not any(self.scope.get(v) == "scalar" for v in self.k.outputs):
            return any(self.scope.get(e.out) == "scalar" and checks_of(e) for e in self.k.body)
        with w.block("if (blockIdx.x == 0 && threadIdx.x == 0)"):
            self.store(w, "scalar", "0")
        return True

    def store(self, w: Writer, scope: str, flat: str) -> None:
        """Store the outputs of `scope` at row-major position `flat` of their shape."""
        for v in self.k.outputs:
            if self.scope.get(v) == scope:
                w(f"{self.lo.pointer(v)}[{flat}] = {self.operand(v)};")


# ---------------------------------------------------------------------------------------------
# elementwise kernels


class ElementwiseKernel:
    """A loop kernel without reductions (or with a rank-0 domain): a grid-stride loop."""

    def __init__(self, lo: CudaLowering, kernel: Kernel, name: str):
        self.lo, self.k, self.name = lo, kernel, name
        self.body = Body(lo, kernel)
        self.n = math.prod(kernel.domain)

    def vector_dtypes(self) -> set[str]:
        """The dtypes moved by vector loads and stores: full-scope loads and outputs."""
        return ({ld.dst.type.dtype for ld in self.k.loads if self.body.scope[ld.dst] == "full"}
                | {v.type.dtype for v in self.k.outputs})

    def lanes(self) -> int:
        """Elements a thread moves with one vector load: 4 or 2 (16 bytes, or 8 for 2-byte
        lanes), 1 when some operand is not contiguous or the size does not divide."""
        full = [ld for ld in self.k.loads if self.body.scope[ld.dst] == "full"]
        if not full or len(self.k.domain) == 0:
            return 1
        contiguous = IndexMap.contiguous(self.k.domain)
        if any(ld.imap.shape != contiguous.shape or ld.imap.strides != contiguous.strides
               or ld.imap.offset for ld in full):
            return 1
        if any(e.prim is P.iota for e in self.k.body):
            return 1       # iota needs the index of each element
        dtypes = self.vector_dtypes()
        lanes = 2 if any(DTYPES[d].itemsize == 8 for d in dtypes) else 4
        if self.n % lanes or any((d, lanes) not in VECTOR for d in dtypes):
            return 1
        return lanes

    def emit(self) -> None:
        lo, k = self.lo, self.k
        params = lo.params([ld.src for ld in k.loads], k.outputs)
        reductions = reductions_of(k)          # over no axes: each is its operand
        w = Writer()
        if not k.domain:
            with w.block("if (blockIdx.x == 0 && threadIdx.x == 0)"):
                self._point(w, [], reductions)
                for scope in ("scalar", "full", "kept"):
                    self.body.store(w, scope, "0")
            lo.function(self.name, params, w, lo.comment(k, "a scalar computation"), 1, 32)
            return
        self.body.emit(w, "scalar", [])
        scalar_out = self.body.stores_scalars(w)
        it = lo.itype(*lo.load_sizes(k))
        lanes = 1 if reductions else self.lanes()
        count = self.n // lanes
        index = [f"i{d}" for d in range(len(k.domain))]
        q = "i" if lanes == 1 else "q"
        with w.block(f"for ({it} {q} = ({it})blockIdx.x * blockDim.x + threadIdx.x; "
                     f"{q} < {count}; {q} += ({it})gridDim.x * blockDim.x)"):
            if lanes == 1:
                _digits(w, "i", k.domain, index, it)
                self._point(w, index, reductions)
                for scope in ("full", "kept"):
                    self.body.store(w, scope, "i")
            else:
                self._lanes(w, lanes, index)
        block = threads_for(count)
        grid = max(min(-(-count // block), MAX_GRID), scalar_out)
        what = "elementwise" + (f", {lanes} elements a thread" if lanes > 1 else "")
        lo.function(self.name, params, w, lo.comment(k, what), grid, block, grid_stride=True,
                    align=self.align(lanes))

    def _point(self, w: Writer, index: list[str], reductions) -> None:
        if not index:                 # a rank-0 domain: everything here
            self.body.emit(w, "scalar", [])
        self.body.emit(w, "full", index)
        for r in reductions:
            x = self.body.operand(r.eqn.inputs[0])
            w(f"const {CTYPE[r.dtype]} {self.lo.value(r.eqn.out)} = {x};")
        self.body.emit(w, "kept", index)

    def _lanes(self, w: Writer, lanes: int, index: list[str]) -> None:
        """The body for `lanes` consecutive elements moved with vector loads and stores."""
        lo, k = self.lo, self.k
        full = [ld for ld in k.loads if self.body.scope[ld.dst] == "full"]
        outs = [v for v in k.outputs if self.body.scope.get(v) == "full"]
        arrays = {}
        for ld in full:
            if ld.src in arrays:
                continue
            dt = ld.src.type.dtype
            arrays[ld.src] = a = f"{lo.value(ld.src)}_lanes"
            vec = VECTOR[(dt, lanes)]
            w(f"{CTYPE[dt]} {a}[{lanes}];")
            w(f"*reinterpret_cast<{vec}*>({a}) = "
              f"reinterpret_cast<const {vec}*>({lo.pointer(ld.src)})[q];")
        for v in outs:
            w(f"{CTYPE[v.type.dtype]} {lo.value(v)}_lanes[{lanes}];")
        w("#pragma unroll")
        with w.block(f"for (int j = 0; j < {lanes}; ++j)"):
            self.body.emit(w, "full", index, {ld.dst: f"{arrays[ld.src]}[j]" for ld in full})
            for v in outs:
                w(f"{lo.value(v)}_lanes[j] = {self.body.operand(v)};")
        for v in outs:
            vec = VECTOR[(v.type.dtype, lanes)]
            w(f"reinterpret_cast<{vec}*>({lo.pointer(v)})[q] = "
              f"*reinterpret_cast<const {vec}*>({lo.value(v)}_lanes);")

    def align(self, lanes: int) -> int:
        """The alignment the vector accesses need of every buffer parameter."""
        if lanes == 1:
            return 1
        return lanes * max(DTYPES[d].itemsize for d in self.vector_dtypes())


# ---------------------------------------------------------------------------------------------
# reduction kernels


class ReductionShape:
    """How a reduction kernel splits its work: `outputs` (K, the kept size), `length` (R, the
    reduced size), `serial` (one thread reduces one output) or a block per output, and `split`
    (S: partial results per output, combined by a second kernel when S > 1)."""

    def __init__(self, kernel: Kernel):
        domain, axes = kernel.domain, kernel.reduce_axes
        self.outputs = math.prod(n for d, n in enumerate(domain) if d not in axes)
        self.length = math.prod(domain[d] for d in axes)
        inner_reduced = (len(domain) - 1) in axes
        self.serial = (self.length <= SERIAL_MAX or self.outputs == 0
                       or (not inner_reduced and self.outputs >= 64))
        if self.serial:
            self.block = threads_for(self.outputs)
            blocks = max(1, -(-self.outputs // self.block))
            want = max(1, 512 // blocks)
        else:
            self.block = BLOCK if self.length >= 4 * BLOCK else threads_for(self.length // 2)
            want = max(1, 512 // max(self.outputs, 1))
        self.split = max(1, min(want, self.length // SPLIT_MIN, SPLIT_MAX))
        self.chunk = -(-self.length // self.split)       # reduced elements per partial


class ReductionKernel:
    """A loop kernel with reductions (see the module docstring)."""

    def __init__(self, lo: CudaLowering, kernel: Kernel, name: str):
        self.lo, self.k, self.name = lo, kernel, name
        self.body = Body(lo, kernel)
        self.shape = ReductionShape(kernel)
        self.reductions = reductions_of(kernel)
        self.kept = kernel.kept_shape
        self.raxes = list(kernel.reduce_axes)
        self.kaxes = self.body.kept_axes
        self.it = lo.itype(*lo.load_sizes(kernel))
        for r in self.reductions:
            if tuple(sorted(r.eqn.params["axes"])) != tuple(sorted(kernel.reduce_axes)):
                raise NotImplementedError(f"kernel {kernel.name}: a reduction over axes "
                                          f"{r.eqn.params['axes']} in a kernel reducing "
                                          f"{kernel.reduce_axes}")

    def _point(self, w: Writer, o: str, r: str) -> list[str]:
        """Declare the domain indices of output `o`, reduced position `r`; return their names."""
        index = [f"i{d}" for d in range(len(self.k.domain))]
        _digits(w, o, self.kept, [index[d] for d in self.kaxes], self.it)
        _digits(w, r, [self.k.domain[d] for d in self.raxes], [index[d] for d in self.raxes],
                self.it)
        return index

    def _accumulate(self, w: Writer, o: str, r: str) -> None:
        """The body at (o, r): full-scope values, full outputs stored, accumulators updated."""
        index = self._point(w, o, r)
        self.body.emit(w, "full", index)
        full_flat = affine(IndexMap.contiguous(self.k.domain), index)
        self.body.store(w, "full", full_flat)
        for r_ in self.reductions:
            x = self.body.operand(r_.eqn.inputs[0])
            if r_.acc != r_.dtype:
                x = cast(x, r_.dtype, r_.acc)
            acc = self._acc(r_)
            w(f"{acc} = {r_.combine_text(acc, x)};")

    def _acc(self, r: Reduction) -> str:
        return f"{self.lo.value(r.eqn.out)}_acc"

    def _epilogue(self, w: Writer, o: str, accs: dict[Reduction, str]) -> None:
        """Finish the reductions of output `o`, run the kept-scope work, store kept outputs."""
        index = [f"i{d}" for d in self.kaxes]
        _digits(w, o, self.kept, index, self.it)
        for r in self.reductions:
            w(f"const {CTYPE[r.dtype]} {self.lo.value(r.eqn.out)} = {r.finish(accs[r])};")
        self.body.emit(w, "kept", index)
        self.body.store(w, "kept", o if self.kept else "0")

    def emit(self) -> None:
        lo, k, s = self.lo, self.k, self.shape
        reads = [ld.src for ld in k.loads]
        full_out = [v for v in k.outputs if self.body.scope.get(v) in ("full", "scalar")]
        kept_out = [v for v in k.outputs if self.body.scope.get(v) == "kept"]
        partials = {r: lo.partial(k, r) for r in self.reductions} if s.split > 1 else {}
        it = self.it
        w = Writer()
        self.body.emit(w, "scalar", [])
        scalar_out = self.body.stores_scalars(w)
        K, S = s.outputs, s.split
        if s.serial:
            blocks_k = max(1, -(-K // s.block))
            w(f"const {it} o = ({it})(blockIdx.x % {blocks_k}) * blockDim.x + threadIdx.x;")
            if S > 1:
                w(f"const {it} part = blockIdx.x / {blocks_k};")
            with w.block(f"if (o < {K})"):
                for r in self.reductions:
                    w(f"{CTYPE[r.acc]} {self._acc(r)} = {r.identity()};")
                start = f"part * {s.chunk}"
                stop = f"min(({it}){s.length}, {start} + {s.chunk})" if S > 1 else str(s.length)
                with w.block(f"for ({it} r = {start if S > 1 else 0}; r < {stop}; ++r)"):
                    self._accumulate(w, "o", "r")
                self._finish(w, "o", "part", partials)
            grid = max(blocks_k * S if K else 0, scalar_out)
        else:
            # One 32-word scratch for all the block reductions, one after another (each ends
            # with a barrier): shared memory stays 256 bytes however many sums sibling fusion
            # puts in this kernel (an array each would pass the 48 KB limit at 192 of them).
            w("__shared__ double tj_scratch[32];")
            w(f"const {it} o = blockIdx.x % {K};")
            if S > 1:
                w(f"const {it} part = blockIdx.x / {K};")
            for r in self.reductions:
                w(f"{CTYPE[r.acc]} {self._acc(r)} = {r.identity()};")
            start = f"part * {s.chunk} + threadIdx.x" if S > 1 else "threadIdx.x"
            stop = f"min(({it}){s.length}, part * {s.chunk} + {s.chunk})" if S > 1 else \
                str(s.length)
            with w.block(f"for ({it} r = {start}; r < {stop}; r += blockDim.x)"):
                self._accumulate(w, "o", "r")
            for r in self.reductions:
                acc = self._acc(r)
                w(f"{acc} = tj_block_reduce({acc}, ({CTYPE[r.acc]}){r.identity()}, "
                  f"{r.op}(), reinterpret_cast<{CTYPE[r.acc]}*>(tj_scratch));")
            with w.block("if (threadIdx.x == 0)"):
                self._finish(w, "o", "part", partials)
            grid = K * S
        how = (f"reduces {s.length} elements for each of {K} outputs, "
               + ("a thread an output" if s.serial else f"a block of {s.block} an output")
               + (f", split in {S} partial results" if S > 1 else ""))
        fname = self.name + ("_partial" if S > 1 else "")
        params = lo.params(reads, list(full_out) + ([] if S > 1 else kept_out) +
                           list(partials.values()))
        lo.function(fname, params, w, lo.comment(k, how), grid, s.block)
        if S > 1:
            self._final(partials, kept_out)

    def _finish(self, w: Writer, o: str, part: str, partials: dict) -> None:
        if partials:
            for r, var in partials.items():
                w(f"{self.lo.pointer(var)}[{part} * {self.shape.outputs} + {o}] = {self._acc(r)};")
        else:
            self._epilogue(w, o, {r: self._acc(r) for r in self.reductions})

    def _final(self, partials: dict, kept_out: list) -> None:
        """The second kernel: each thread combines one output's partials in order."""
        lo, k, s = self.lo, self.k, self.shape
        it = self.it
        w = Writer()
        self.body.emit(w, "scalar", [])
        w(f"const {it} o = ({it})blockIdx.x * blockDim.x + threadIdx.x;")
        with w.block(f"if (o < {s.outputs})"):
            accs = {}
            for r, var in partials.items():
                acc = self._acc(r)
                w(f"{CTYPE[r.acc]} {acc} = {r.identity()};")
                with w.block(f"for (int part = 0; part < {s.split}; ++part)"):
                    part = f"{lo.pointer(var)}[part * {s.outputs} + o]"
                    w(f"{acc} = {r.combine_text(acc, part)};")
                accs[r] = acc
            self._epilogue(w, "o", accs)
        reads = list(partials.values()) + [ld.src for ld in k.loads
                                           if self.body.scope[ld.dst] in ("kept", "scalar")]
        params = lo.params(reads, kept_out)
        block = threads_for(s.outputs)
        lo.function(self.name + "_final", params, w,
                    f"// {k.name}: combines the {s.split} partial results of each output, in "
                    f"order, and runs the epilogue", -(-s.outputs // block), block)


# ---------------------------------------------------------------------------------------------
# dots


class GemmKernel:
    """A dot's product C[b] = A[b] · B[b] over strided operand matrices, with the epilogue in
    the store when it has no reductions."""

    def __init__(self, lo: CudaLowering, k: int, kernel: Kernel, name: str):
        self.lo, self.k, self.name = lo, kernel, name
        self.d = lo.dots[k]
        self.A, self.B = self.d.mats
        self.fused = lo._epilogue_in_gemm(k)
        dt = self.d.dot.out.type.dtype
        self.wmma = (lo.allow_tf32 and dt == "f32" and self.A.rows > 0 and self.B.cols > 0
                     and self.A.cols > 0)

    def emit(self) -> None:
        lo, d = self.lo, self.d
        dot, k = d.dot, self.k
        A, B = self.A, self.B
        M, K, N = A.rows, A.cols, B.cols
        batch = math.prod(A.batch)
        dt = dot.out.type.dtype
        t = CTYPE[dt]
        acc_dt = "i32" if dt == "bool" else dt        # bool products accumulate or-of-ands
        acc_t = CTYPE[acc_dt]
        it = self.it = lo.itype(batch * M * N, A.src.type.size, B.src.type.size)
        w = Writer()
        tile = WMMA_TILE if self.wmma else GEMM_TILE
        tiles_m, tiles_n = -(-M // tile), -(-N // tile)
        grid = batch * tiles_m * tiles_n
        # The epilogue's elementwise work at each product element (when fused), else the
        # product itself is stored (to the output or scratch).
        if self.fused:
            used = {a for e in d.epilogue for a in e.inputs if isinstance(a, Var)}
            ep = Kernel(k.name, LOOP, k.domain, (),
                        tuple(ld for ld in k.loads if ld.dst in used), tuple(d.epilogue),
                        tuple(v for v in k.outputs if v is not dot.out), ())
            body = Body(lo, ep)
            reads, writes = [ld.src for ld in ep.loads], list(k.outputs)
        else:
            body = None
            reads, writes = [], [dot.out]
        params = lo.params([A.src, B.src] + reads, writes)
        tiles = max(tiles_m * tiles_n, 1)
        w(f"const int b = blockIdx.x / {tiles};")
        w(f"const int tile_m = (blockIdx.x % {tiles}) / {max(tiles_n, 1)} * {tile};")
        w(f"const int tile_n = (blockIdx.x % {max(tiles_n, 1)}) * {tile};")
        w(f"const {t}* __restrict__ a = {lo.pointer(A.src)} + "
          f"{self._batch_offset(A, 'b', it)};")
        w(f"const {t}* __restrict__ bm = {lo.pointer(B.src)} + "
          f"{self._batch_offset(B, 'b', it)};")
        product = lo.value(dot.out)

        def store(w: Writer, m: str, n: str, value: str) -> None:
            with w.block(f"if ({m} < {M} && {n} < {N})"):
                w(f"const {it} flat = (({it})b * {M} + {m}) * {N} + {n};")
                w(f"const {t} {product} = {cast(value, acc_dt, dt)};")
                if dot.out in writes:
                    w(f"{lo.pointer(dot.out)}[flat] = {product};")
                if body is not None and ep.body:
                    index = [f"i{x}" for x in range(len(k.domain))]
                    _digits(w, "flat", k.domain, index, it)
                    body.emit(w, "scalar", [])
                    body.emit(w, "full", index)
                    body.store(w, "full", "flat")

        if self.wmma:
            self._wmma(w, M, N, K, store)
            block, what = 128, "the product on tensor cores (TF32, m16n16k8)"
        else:
            self._tiled(w, M, N, K, t, acc_t, store)
            block, what = 256, (f"the product in {GEMM_TILE}x{GEMM_TILE} tiles, "
                                f"{GEMM_DEPTH} deep")
        if self.fused and d.epilogue:
            what += ", the epilogue in the store"
        suffix = "_wmma" if self.wmma else "_gemm"
        lo.function(self.name + suffix, params, w, lo.comment(k, what), grid, block)

    @staticmethod
    def _batch_offset(mat, b: str, it: str) -> str:
        """offset + Σ batch strides · batch indices of flat batch index `b`."""
        terms = [str(mat.offset)]
        rest = b
        for n, s in reversed(list(zip(mat.batch, mat.batch_strides))):
            if s and n > 1:
                terms.append(f"({it})({rest} % {n}) * {s}")
            rest = f"({rest} / {n})"
        return " + ".join(terms)

    def _element(self, mat, r: str, c: str) -> str:
        return f"({self.it}){r} * {mat.row_stride} + ({self.it}){c} * {mat.col_stride}"

    def _tiled(self, w: Writer, M, N, K, t, acc_t, store) -> None:
        T, D = GEMM_TILE, GEMM_DEPTH
        A, B = self.A, self.B
        w(f"__shared__ {t} As[{D}][{T}];")
        w(f"__shared__ {t} Bs[{D}][{T}];")
        w("const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;   // 16 x 16 threads")
        w(f"{acc_t} acc[4][4];")
        w("#pragma unroll")
        with w.block("for (int i = 0; i < 4; ++i)"):
            w("#pragma unroll")
            with w.block("for (int j = 0; j < 4; ++j)"):
                w("acc[i][j] = 0;")
        zero = literal(self.d.dot.out.type.dtype, 0)
        with w.block(f"for (int k0 = 0; k0 < {K}; k0 += {D})"):
            w("// Each thread loads 4 elements of each tile (zero outside the matrices),")
            w("// consecutive threads along the operand's contiguous axis.")
            with w.block(f"for (int e = threadIdx.x; e < {D * T}; e += 256)"):
                if A.col_stride == 1:
                    w(f"const int mm = e / {D}, kk = e % {D};")
                else:
                    w(f"const int kk = e / {T}, mm = e % {T};")
                w("const int m = tile_m + mm, k = k0 + kk;")
                w(f"As[kk][mm] = (m < {M} && k < {K}) ? a[{self._element(A, 'm', 'k')}] : {zero};")
            with w.block(f"for (int e = threadIdx.x; e < {D * T}; e += 256)"):
                if B.col_stride == 1 or B.row_stride != 1:
                    w(f"const int kk = e / {T}, nn = e % {T};")
                else:
                    w(f"const int nn = e / {D}, kk = e % {D};")
                w("const int k = k0 + kk, n = tile_n + nn;")
                w(f"Bs[kk][nn] = (k < {K} && n < {N}) ? bm[{self._element(B, 'k', 'n')}] : {zero};")
            w("__syncthreads();")
            w("#pragma unroll")
            with w.block(f"for (int kk = 0; kk < {D}; ++kk)"):
                w(f"{t} x[4], y[4];")
                w("#pragma unroll")
                with w.block("for (int i = 0; i < 4; ++i)"):
                    w("x[i] = As[kk][ty * 4 + i];")
                    w("y[i] = Bs[kk][tx * 4 + i];")
                w("#pragma unroll")
                with w.block("for (int i = 0; i < 4; ++i)"):
                    w("#pragma unroll")
                    with w.block("for (int j = 0; j < 4; ++j)"):
                        w(f"acc[i][j] = {self._madd('acc[i][j]', 'x[i]', 'y[j]', t)};")
            w("__syncthreads();")
        with w.block("for (int i = 0; i < 4; ++i)"):
            with w.block("for (int j = 0; j < 4; ++j)"):
                w("const int m = tile_m + ty * 4 + i, n = tile_n + tx * 4 + j;")
                store(w, "m", "n", "acc[i][j]")

    @staticmethod
    def _madd(acc: str, x: str, y: str, t: str) -> str:
        if t == "float":
            return f"fmaf({x}, {y}, {acc})"
        if t == "double":
            return f"fma({x}, {y}, {acc})"
        if t == "bool":
            return f"{acc} | ({x} & {y})"
        return f"tj_add({acc}, tj_mul({x}, {y}))"

    def _wmma(self, w: Writer, M, N, K, store) -> None:
        """64x64 tiles, 8 deep; 4 warps, each 32x32 outputs as 2x2 fragments of 16x16."""
        T, D = WMMA_TILE, WMMA_DEPTH
        A, B = self.A, self.B
        w("using namespace nvcuda;")
        w("// WMMA loads and stores need 256-bit aligned tiles.")
        w(f"__shared__ __align__(32) float As[{T}][{D}];     // row-major m x k")
        w(f"__shared__ __align__(32) float Bs[{D}][{T}];     // row-major k x n")
        w(f"__shared__ __align__(32) float Cs[{T}][{T}];")
        w("const int warp = threadIdx.x / 32, wm = warp / 2 * 32, wn = warp % 2 * 32;")
        w("wmma::fragment<wmma::accumulator, 16, 16, 8, float> c[2][2];")
        for i in range(2):
            for j in range(2):
                w(f"wmma::fill_fragment(c[{i}][{j}], 0.0f);")
        with w.block(f"for (int k0 = 0; k0 < {K}; k0 += {D})"):
            with w.block(f"for (int e = threadIdx.x; e < {T * D}; e += 128)"):
                w(f"const int mm = e / {D}, kk = e % {D};")
                w("const int m = tile_m + mm, k = k0 + kk;")
                w(f"As[mm][kk] = (m < {M} && k < {K}) ? "
                  f"wmma::__float_to_tf32(a[{self._element(A, 'm', 'k')}]) : 0.0f;")
                w(f"const int k2 = k0 + e / {T}, n = tile_n + e % {T};")
                w(f"Bs[e / {T}][e % {T}] = (k2 < {K} && n < {N}) ? "
                  f"wmma::__float_to_tf32(bm[{self._element(B, 'k2', 'n')}]) : 0.0f;")
            w("__syncthreads();")
            w("wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, "
              "wmma::row_major> fa[2];")
            w("wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, "
              "wmma::row_major> fb[2];")
            for i in range(2):
                w(f"wmma::load_matrix_sync(fa[{i}], &As[wm + {16 * i}][0], {D});")
                w(f"wmma::load_matrix_sync(fb[{i}], &Bs[0][wn + {16 * i}], {T});")
            for i in range(2):
                for j in range(2):
                    w(f"wmma::mma_sync(c[{i}][{j}], fa[{i}], fb[{j}], c[{i}][{j}]);")
            w("__syncthreads();")
        for i in range(2):
            for j in range(2):
                w(f"wmma::store_matrix_sync(&Cs[wm + {16 * i}][wn + {16 * j}], c[{i}][{j}], "
                  f"{T}, wmma::mem_row_major);")
        w("__syncthreads();")
        with w.block(f"for (int e = threadIdx.x; e < {T * T}; e += 128)"):
            w(f"const int m = tile_m + e / {T}, n = tile_n + e % {T};")
            store(w, "m", "n", f"Cs[e / {T}][e % {T}]")


# ---------------------------------------------------------------------------------------------
# gather, scatter-add, concatenate, pad, argmax, argmin: one thread per output element


def _grid_stride(lo: CudaLowering, kernel: Kernel, name: str, n: int, it: str, body,
                 params, what: str, status: bool = False) -> None:
    w = Writer()
    with w.block(f"for ({it} e = ({it})blockIdx.x * blockDim.x + threadIdx.x; e < {n}; "
                 f"e += ({it})gridDim.x * blockDim.x)"):
        body(w)
    block = threads_for(n)
    grid = min(-(-n // block), MAX_GRID)
    lo.function(name, params, w, lo.comment(kernel, what), grid, block, grid_stride=True)


def _read(lo: CudaLowering, loads: dict, a, index: list[str]) -> str:
    if not isinstance(a, Var):
        return literal(a.type.dtype, a.value)
    ld = loads[a]
    return f"{lo.pointer(ld.src)}[{affine(ld.imap, index)}]"


def _checked(lo, w: Writer, loads, indices, s_index, x_shape) -> list[str]:
    """Declare the wrapped, bounds-checked positions of gather/scatter indices; an index out
    of bounds is reported and the element skipped (`continue`)."""
    out = []
    for axis, a in enumerate(indices):
        w(f"long long at{axis} = (long long){_read(lo, loads, a, s_index)};")
        n = x_shape[axis]
        w(f"if (at{axis} < 0) at{axis} += {n};")
        with w.block(f"if (at{axis} < 0 || at{axis} >= {n})"):
            w(f"tj_report(status, {INDEX_ERROR}, at{axis} < 0 ? at{axis} - {n} : at{axis}, "
              f"{axis}, {n});")
            w("continue;")
        out.append(f"at{axis}")
    return out


def _special_gather(lo: CudaLowering, k: Kernel, name: str) -> None:
    (e,) = k.body
    x, *idx = e.inputs
    loads = {ld.dst: ld for ld in k.loads}
    out = e.out
    ns = len(idx[0].type.shape)
    it = lo.itype(*lo.load_sizes(k), out.type.size)
    names = [f"i{d}" for d in range(out.type.ndim)]

    def body(w):
        _digits(w, "e", out.type.shape, names, it)
        where = _checked(lo, w, loads, idx, names[:ns], x.type.shape)
        w(f"{lo.pointer(out)}[e] = {_read(lo, loads, x, where + names[ns:])};")

    params = lo.params([ld.src for ld in k.loads], [out], status=True)
    _grid_stride(lo, k, name, out.type.size, it, body, params, "gather (bounds-checked)")


def _special_scatter_add(lo: CudaLowering, k: Kernel, name: str) -> None:
    (e,) = k.body
    x, *idx, upd = e.inputs
    loads = {ld.dst: ld for ld in k.loads}
    out = e.out
    dt = out.type.dtype
    it = lo.itype(*lo.load_sizes(k), out.type.size)
    names = [f"i{d}" for d in range(out.type.ndim)]

    def copy(w):
        _digits(w, "e", out.type.shape, names, it)
        w(f"{lo.pointer(out)}[e] = {_read(lo, loads, x, names)};")

    reads = [ld.src for ld in k.loads if isinstance(x, Var) and ld.dst is x]
    _grid_stride(lo, k, name + "_init", out.type.size, it, copy, lo.params(reads, [out]),
                 "scatter-add: the result starts as a copy of x")
    snames = [f"s{d}" for d in range(upd.type.ndim)]
    ns = len(idx[0].type.shape)
    full = IndexMap.contiguous(out.type.shape)

    def scatter(w):
        _digits(w, "e", upd.type.shape, snames, it)
        where = _checked(lo, w, loads, idx, snames[:ns], out.type.shape)
        w(f"const {CTYPE[dt]} u = {_read(lo, loads, upd, snames)};")
        at = f"{lo.pointer(out)}[{affine(full, where + snames[ns:])}]"
        if dt == "bool":
            w(f"if (u) {at} = true;      // or: every writer writes the same value")
        elif dt == "i64":
            w(f"atomicAdd((unsigned long long*)&{at}, (unsigned long long)u);")
        else:
            w(f"atomicAdd(&{at}, u);")

    reads = [ld.src for ld in k.loads if ld.dst is not x]
    _grid_stride(lo, k, name, upd.type.size, it, scatter,
                 lo.params(reads, [out], status=True), "scatter-add of the updates (atomics)")


def _special_concatenate(lo: CudaLowering, k: Kernel, name: str) -> None:
    (e,) = k.body
    out = e.out
    axis = e.params["axis"]
    loads = {ld.dst: ld for ld in k.loads}
    it = lo.itype(*lo.load_sizes(k), out.type.size)
    names = [f"i{d}" for d in range(out.type.ndim)]

    def body(w):
        _digits(w, "e", out.type.shape, names, it)
        start = 0
        for j, a in enumerate(e.inputs):
            size = a.type.shape[axis]
            if size == 0:
                continue
            cond = f"{names[axis]} < {start + size}"
            local = list(names)
            local[axis] = f"({names[axis]} - {start})"
            head = ("if" if start == 0 else "else if") + f" ({cond})"
            with w.block(head):
                w(f"{lo.pointer(out)}[e] = {_read(lo, loads, a, local)};")
            start += size

    params = lo.params([ld.src for ld in k.loads], [out])
    _grid_stride(lo, k, name, out.type.size, it, body, params, "concatenate")


def _special_pad(lo: CudaLowering, k: Kernel, name: str) -> None:
    (e,) = k.body
    x, value = e.inputs
    out = e.out
    loads = {ld.dst: ld for ld in k.loads}
    it = lo.itype(*lo.load_sizes(k), out.type.size)
    names = [f"i{d}" for d in range(out.type.ndim)]
    starts, steps = e.params["starts"], e.params["steps"]

    def body(w):
        _digits(w, "e", out.type.shape, names, it)
        conds, src = [], []
        for d, (s0, st, n) in enumerate(zip(starts, steps, x.type.shape)):
            w(f"const {it} q{d} = {names[d]} - {s0};")
            # x[p] lands at start + p·step: p = q / step when that division is exact.
            conds.append(f"q{d} % {st} == 0 && q{d} / {st} >= 0 && q{d} / {st} < {n}"
                         if st != 1 else f"q{d} >= 0 && q{d} < {n}")
            src.append(f"q{d} / {st}" if st != 1 else f"q{d}")
        inside = " && ".join(f"({c})" for c in conds) or "true"
        w(f"{lo.pointer(out)}[e] = ({inside}) ? {_read(lo, loads, x, src)} : "
          f"{_read(lo, loads, value, [])};")

    params = lo.params([ld.src for ld in k.loads], [out])
    _grid_stride(lo, k, name, out.type.size, it, body, params, "pad")


def _special_arg(lo: CudaLowering, k: Kernel, name: str) -> None:
    (e,) = k.body
    (x,) = e.inputs
    out = e.out
    axis = e.params["axis"]
    loads = {ld.dst: ld for ld in k.loads}
    dt = x.type.dtype
    is_max = e.prim is P.argmax
    kept = [n for d, n in enumerate(x.type.shape) if d != axis]
    it = lo.itype(*lo.load_sizes(k), x.type.size)
    names = [f"i{d}" for d in range(x.type.ndim)]
    kept_names = [nm for d, nm in enumerate(names) if d != axis]
    t = CTYPE[dt]
    op = ">" if is_max else "<"

    def body(w):
        _digits(w, "e", kept, kept_names, it)
        point = list(names)
        point[axis] = "0"
        w(f"{t} best = {_read(lo, loads, x, point)};")
        w("long long best_at = 0;")
        point[axis] = "j"
        with w.block(f"for ({it} j = 1; j < {x.type.shape[axis]}; ++j)"):
            w(f"const {t} v = {_read(lo, loads, x, point)};")
            if is_float(dt):
                w("// The first extreme wins; the first NaN wins over everything (NumPy).")
                w(f"const bool better = (v {op} best || v != v) && best == best;")
            else:
                w(f"const bool better = v {op} best;")
            with w.block("if (better)"):
                w("best = v;")
                w("best_at = j;")
        w(f"{lo.pointer(out)}[e] = best_at;")

    params = lo.params([ld.src for ld in k.loads], [out])
    _grid_stride(lo, k, name, math.prod(kept) if x.type.shape[axis] else 0, it, body,
                 params, e.prim.name)


# ---------------------------------------------------------------------------------------------
# cumsum, cumprod, sort, argsort: a block a line (grid-stride over the lines)

LINE_BLOCK = 256               # threads of a line's block at most


def _line_kernel(lo: CudaLowering, k: Kernel, name: str, shared: str, body, params,
                 what: str) -> None:
    """A kernel in which block b works on lines b, b + gridDim.x, ... of the equation's
    operand along its axis, `body(w, it, n, point)` writing one line (point(j): the operand's
    index at position j of the line), with the shared array `shared` declared."""
    (e,) = k.body
    x = e.inputs[0]
    axis = e.params["axis"]
    n = x.type.shape[axis]
    kept = [m for d, m in enumerate(x.type.shape) if d != axis]
    lines = math.prod(kept)
    it = lo.itype(*lo.load_sizes(k), 2 * x.type.size)
    names = [f"i{d}" for d in range(x.type.ndim)]
    kept_names = [nm for d, nm in enumerate(names) if d != axis]

    def point(j: str) -> list[str]:
        return [j if d == axis else nm for d, nm in enumerate(names)]

    w = Writer()
    w(shared)
    with w.block(f"for ({it} line = blockIdx.x; line < {lines}; line += gridDim.x)"):
        _digits(w, "line", kept, kept_names, it)
        body(w, it, n, point)
    block = min(LINE_BLOCK, max(32, -(-n // 32) * 32))
    lo.function(name, params, w, lo.comment(k, what), min(lines, MAX_GRID) if n else 0, block,
                grid_stride=True)


def _special_cumulative(lo: CudaLowering, k: Kernel, name: str) -> None:
    (e,) = k.body
    (x,) = e.inputs
    out = e.out
    loads = {ld.dst: ld for ld in k.loads}
    t = CTYPE[out.type.dtype]
    op = FUNCTOR[P.add if e.prim is P.cumsum else P.mul]
    identity = literal(out.type.dtype, 0 if e.prim is P.cumsum else 1)
    full = IndexMap.contiguous(out.type.shape)

    def body(w, it, n, point):
        w(f"{t} carry = {identity};")
        with w.block(f"for ({it} base = 0; base < {n}; base += blockDim.x)"):
            w(f"const {it} j = base + threadIdx.x;")
            w(f"{t} total;")
            w(f"const {t} v = tj_block_scan(j < {n} ? {_read(lo, loads, x, point('j'))} : "
              f"{identity}, {identity}, {op}(), tj_scan, total);")
            # The first tile's values and total are not combined with the identity: 0.0 +
            # -0.0 would be 0.0, where NumPy's running sum keeps -0.0.
            w(f"if (j < {n}) {lo.pointer(out)}[{affine(full, point('j'))}] = "
              f"base == 0 ? v : {op}()(carry, v);")
            w(f"carry = base == 0 ? total : {op}()(carry, total);")

    params = lo.params([ld.src for ld in k.loads], [out])
    _line_kernel(lo, k, name, f"__shared__ {t} tj_scan[32];", body, params,
                 f"{e.prim.name}: each line scanned in tiles of the block, in order")


def _sort_scratch(x: Var, it: str) -> list[Var]:
    """The keys and positions of every line, twice (each pass moves them from one copy to the
    other): a line's two copies are next to each other."""
    key = "i64" if sort_key_bits(x.type.dtype) == 64 else "i32"
    index = "i64" if it == "long long" else "i32"
    return [Var(Type((2 * x.type.size,), key)), Var(Type((2 * x.type.size,), index))]


def _special_sort(lo: CudaLowering, k: Kernel, name: str) -> None:
    """sort and argsort: a least-significant-bit radix sort of each line's keys by one block,
    a bit a pass: the line's elements with a 0 at that bit go first, in order (their places
    are a block scan of the zeros), then the others, in order. A pass whose bit is the same
    for the whole line is skipped."""
    (e,) = k.body
    (x,) = e.inputs
    out = e.out
    loads = {ld.dst: ld for ld in k.loads}
    keys, index = lo.own_scratch(k)
    dt = x.type.dtype
    bits = 1 if dt == "bool" else sort_key_bits(dt)
    kt = "unsigned long long" if sort_key_bits(dt) == 64 else "unsigned"
    pt = CTYPE[index.type.dtype]
    full = IndexMap.contiguous(out.type.shape)

    def body(w, it, n, point):
        w(f"{kt}* from_k = reinterpret_cast<{kt}*>({lo.pointer(keys)}) + line * {2 * n};")
        w(f"{kt}* to_k = from_k + {n};")
        w(f"{pt}* from_i = {lo.pointer(index)} + line * {2 * n};")
        w(f"{pt}* to_i = from_i + {n};")
        with w.block(f"for ({it} j = threadIdx.x; j < {n}; j += blockDim.x)"):
            w(f"from_k[j] = tj_sort_key({_read(lo, loads, x, point('j'))});")
            w("from_i[j] = j;")
        w("__syncthreads();")
        with w.block(f"for (int bit = 0; bit < {bits}; ++bit)"):
            w(f"{it} zeros = 0;")
            with w.block(f"for ({it} base = 0; base < {n}; base += blockDim.x)"):
                w(f"const {it} j = base + threadIdx.x;")
                w(f"zeros += __syncthreads_count(j < {n} && !((from_k[j] >> bit) & 1));")
            w(f"if (zeros == 0 || zeros == {n}) continue;   // the same count in every thread")
            w(f"{it} before = 0;   // the zeros of the tiles before")
            with w.block(f"for ({it} base = 0; base < {n}; base += blockDim.x)"):
                w(f"const {it} j = base + threadIdx.x;")
                w(f"const int zero = j < {n} && !((from_k[j] >> bit) & 1);")
                w("int tile;")
                w("const int rank = tj_block_scan(zero, 0, TjSum(), tj_scan, tile) - zero;")
                with w.block(f"if (j < {n})"):
                    w(f"const {it} to = zero ? before + rank : zeros + j - (before + rank);")
                    w("to_k[to] = from_k[j];")
                    w("to_i[to] = from_i[j];")
                w("before += tile;")
            w("__syncthreads();")
            w(f"{kt}* swap_k = from_k; from_k = to_k; to_k = swap_k;")
            w(f"{pt}* swap_i = from_i; from_i = to_i; to_i = swap_i;")
        with w.block(f"for ({it} j = threadIdx.x; j < {n}; j += blockDim.x)"):
            value = "from_i[j]" if e.prim is P.argsort else \
                _read(lo, loads, x, point("from_i[j]"))
            w(f"{lo.pointer(out)}[{affine(full, point('j'))}] = {value};")
        w("__syncthreads();   // the last reads of this line's scratch")

    params = lo.params([ld.src for ld in k.loads], [out, keys, index])
    _line_kernel(lo, k, name, "__shared__ int tj_scan[32];", body, params,
                 f"{e.prim.name}: each line radix-sorted by a block, a bit a pass, stably")


def _no_factorisations(lo: CudaLowering, k: Kernel, name: str) -> None:
    """The factorisations of numpy.linalg have no CUDA kernels yet: an UnsupportedError at
    the user's line."""
    (e,) = k.body
    at = f"{where(e.loc)}: " if e.loc is not None else ""
    raise UnsupportedError(f"{at}{e.prim.name} (numpy.linalg) has no CUDA kernel yet: "
                           "factorisations and solves run on backend='cpu', which calls LAPACK")


#: primitive → the writer of its kernel of its own: every primitive with `own_kernel`.
OWN_KERNELS = {P.gather: _special_gather, P.scatter_add: _special_scatter_add,
               P.concatenate: _special_concatenate, P.pad: _special_pad, P.argmax: _special_arg,
               P.argmin: _special_arg, P.cumsum: _special_cumulative,
               P.cumprod: _special_cumulative, P.sort: _special_sort, P.argsort: _special_sort,
               **{p: _no_factorisations for p in P.of_category(P.LINALG)}}
