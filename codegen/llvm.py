"""Program → LLVM IR, through llvmlite's IR builder.

One LLVM module per Program. Each kernel `kN` becomes a driver function

    void @kN(i8** %args, i8* %arena, i64 %nthreads, i64* %status)

that finds its buffers (the argument table for parameters, constants and results; fixed
offsets into the arena for intermediates, from the buffer plan) and runs the kernel's loop nest,
split over threads when the kernel is large. The Program's entry function calls the drivers in
order:

    i32 @entry(i8** %args, i8* %arena, i64 %nthreads, i64* %status)   ; 0, or 1 on an error

(`status` holds an error report in its first STATUS_WORDS words, as `codegen.status` lays them
out, then the cycles each kernel took, accumulated over calls. Every function that runs kernel
code, a driver or a chunk, takes the status words as its last argument.)

LLVM values are named after the IR values they hold (`%"v5"` is `%5`, `%"v0.1"` the load
`%0.v1`, `%"i0"` the loop index of axis 0), so the optimised dump can be read beside the
Program. Scalar semantics follow NumPy's exactly: integer division by zero gives 0 (never a
trap), float → int casts saturate the way x86 does, max/min propagate NaN, and so on; the
transcendentals come from `llvm_math` as branch-free IR, so loops that call them vectorise.

Loop kernels. The loop order is the kept axes, outermost first, then the reduced axes, so every
reduction accumulates in a scalar (kept in a register after mem2reg). Float32 sums accumulate
in float64: the error of a sum of n float32 values is then at most about n·2⁻⁵³·Σ|x| before
the final rounding to float32 (2⁻²⁴ relative), far inside NumPy's pairwise bound for any n
below 2²⁹. Float64 sums accumulate in blocks of `SUM_BLOCK` elements along the innermost axis
(each block's partial sum added to the total), which bounds the error by about
(SUM_BLOCK/lanes + n/SUM_BLOCK)·2⁻⁵³·Σ|x|. Sum accumulations carry the `reassoc` flag, so the
vectoriser keeps several partial sums.

Threads: a kernel whose domain has at least `PARALLEL_MIN` elements splits its outermost loop
into one chunk per thread (pthreads created by the generated code itself: no Python runs while
a kernel runs). A full reduction (no kept axes) writes each chunk's partial accumulators to a
table, combined in chunk order afterwards (deterministic for a given thread count).

The stack holds only data of a fixed small size (scalar accumulators, the thread table of
`MAX_THREADS` entries): what grows with the shapes or the program (a column reduction's
accumulator arrays, the chunks' partial accumulators, the argument table of `entry_objects`)
lives in the arena, as scratch of the kernel that uses it (`loop_scratch`), so compiled code
runs in threads with small stacks.

Dots call the BLAS `cblas_sgemm` / `cblas_dgemm` through their addresses (resolved when the
module is loaded), with operands passed as strided matrices where their index maps allow and
copied into scratch otherwise; prologue work is materialised into scratch, the product goes to
scratch (or straight into the output) and the epilogue runs as a loop kernel over it. Integer
dots, and any dot when no BLAS is available, use a loop nest (m, k, n order: the inner loop is
contiguous in the product and one operand).
"""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager

import llvmlite.ir as ir

from tracejit import primitives as P
from tracejit.ir import Eqn, Var, is_float, is_unsigned
from tracejit.kernels import (COPY, DOT, LOOP, IndexMap, Kernel, Load, Program, copy_as_loop,
                              program_names, value_scopes)

from . import llvm_math
from .buffers import BufferPlan, plan_buffers
from .lowering import (DotPlan, Matrix, Reduction, affine_terms, own_primitive, reductions_of,
                       sort_key_bits)
from .status import (INDEX_ERROR, LINALG_ERROR, NO_CONVERGENCE, NOT_POSITIVE_DEFINITE, SINGULAR,
                     STATUS_WORDS, SVD_NO_CONVERGENCE, checks_of, may_fail, sites)

F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
# An opaque pointer: every load, store and getelementptr names the type it reads or steps
# over. (Allocas stay typed, as llvmlite builds them; LLVM reads both as `ptr`.)
PTR = ir.PointerType()
VOID = ir.VoidType()

#: Register types of the IR's dtypes: their compute dtype's (bool is i1 in registers, one
#: byte in memory). A narrow dtype's value is held exactly in its register type: the small
#: integers sign- or zero-extended, the half types as the float32 of the same value; `load`
#: and `store` convert, and `_cast` rounds or wraps into them.
REG = {"f32": F32, "f64": F64, "i32": I32, "i64": I64, "bool": I1,
       "i8": I32, "i16": I32, "u8": I32, "u16": I32, "u32": I64, "u64": I64,
       "f16": F32, "bf16": F32}
MEM = {"f32": F32, "f64": F64, "i32": I32, "i64": I64, "bool": I8,
       "i8": I8, "i16": I16, "u8": I8, "u16": I16, "u32": I32, "u64": I64,
       "f16": F16, "bf16": I16}

PARALLEL_MIN = 1 << 20        # elements of a kernel's domain before it is split over threads
MAX_THREADS = 64
SUM_BLOCK = 4096              # float64 sums: elements per block of the innermost loop
COLUMN_MIN, COLUMN_MAX = 16, 8192   # column reductions with accumulator arrays: columns
BLAS_SYMBOLS = {"f32": "tj_cblas_sgemm", "f64": "tj_cblas_dgemm"}
PY_TUPLE_ITEMS = 24           # offsetof(PyTupleObject, ob_item) on 64-bit CPython
NP_ARRAY_DATA = 16            # offsetof(PyArrayObject_fields, data) on 64-bit platforms

# The driver function of every kernel, and the chunk function of every loop nest.
DRIVER_TYPE = ir.FunctionType(VOID, [PTR, PTR, I64, PTR])
CHUNK_TYPE = ir.FunctionType(VOID, [PTR, PTR, I64, I64, PTR, PTR])


def llvm_name(text: str) -> str:
    """`%5` → `v5`, `%0.v1` → `v0.1`: LLVM names for the Program's printed names."""
    return "v" + text.lstrip("%").replace(".v", ".")


def constant(dtype: str, value) -> ir.Constant:
    """A register constant of `dtype` (NaN, infinities and -0.0 exactly)."""
    t = REG[dtype]
    if dtype == "bool":
        return ir.Constant(I1, int(bool(value)))
    if is_float(dtype):
        return ir.Constant(t, float(value))
    bits = t.width                         # uint64's values as int64's bits
    return ir.Constant(t, (int(value) + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1)))


# ---------------------------------------------------------------------------------------------
# the scalar lowering tables: primitive → emitter


def _fcmp(b, op, x, y, name=""):
    return b.fcmp_ordered(op, x, y, name=name) if op != "!=" else \
        b.fcmp_unordered(op, x, y, name=name)


def _mangle(t: ir.Type) -> str:
    return {"float": "f32", "double": "f64"}.get(str(t), str(t))


def _intrinsic(b: ir.IRBuilder, name: str, args, ret: ir.Type | None = None) -> ir.Value:
    """Call LLVM intrinsic `name`, overloaded on its result type (and on its argument's, when
    they differ: `llvm.fptosi.sat.i64.f32`)."""
    ret = ret or args[0].type
    overload = [ret] if ret == args[0].type else [ret, args[0].type]
    full = name + "".join("." + _mangle(t) for t in overload)
    fn = b.module.globals.get(full)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(ret, [a.type for a in args]), full)
    return b.call(fn, args)


def _neg(b, x, dt):
    return b.fneg(x) if is_float(dt) else b.sub(constant(dt, 0), x)


def _abs(b, x, dt):
    if is_float(dt):
        return _intrinsic(b, "llvm.fabs", [x])
    return b.select(b.icmp_signed("<", x, constant(dt, 0)), b.sub(constant(dt, 0), x), x)


def _sign(b, x, dt):
    one, zero = constant(dt, 1), constant(dt, 0)
    if is_float(dt):
        # sign(±0) = +0 (NumPy) and sign(NaN) = NaN.
        pos = b.select(_fcmp(b, ">", x, zero), one, b.select(_fcmp(b, "==", x, zero), zero, x))
        return b.select(_fcmp(b, "<", x, zero), constant(dt, -1), pos)
    pos = b.select(b.icmp_signed(">", x, zero), one, zero)
    return b.select(b.icmp_signed("<", x, zero), constant(dt, -1), pos)


def _floor_div_mod(b, x, y, dt):
    """NumPy's divmod: (floor_divide, remainder)."""
    if is_float(dt):
        # As npy_divmod: mod = fmod(x, y); div = (x - mod) / y, corrected to floor.
        zero = constant(dt, 0)
        mod = b.frem(x, y)
        div = b.fdiv(b.fsub(x, mod), y)
        fix = b.and_(_fcmp(b, "!=", mod, zero),
                     b.xor(_fcmp(b, "<", y, zero), _fcmp(b, "<", mod, zero)))
        mod = b.select(fix, b.fadd(mod, y), _intrinsic(b, "llvm.copysign", [zero, y]))
        mod = b.select(_fcmp(b, "==", b.frem(x, y), zero), mod,
                       b.select(fix, mod, b.frem(x, y)))
        div = b.select(fix, b.fsub(div, constant(dt, 1)), div)
        fl = _intrinsic(b, "llvm.floor", [div])
        fl = b.select(_fcmp(b, ">", b.fsub(div, fl), constant(dt, 0.5)),
                      b.fadd(fl, constant(dt, 1)), fl)
        quotient = b.fdiv(x, y)
        fl = b.select(_fcmp(b, "==", div, zero),
                      _intrinsic(b, "llvm.copysign", [zero, quotient]), fl)
        # Division by zero: NumPy gives x / y and fmod(x, 0) = NaN.
        yzero = _fcmp(b, "==", y, zero)
        return b.select(yzero, quotient, fl), b.select(yzero, b.frem(x, y), mod)
    # Integers, Python's floor semantics; y == 0 gives 0 (NumPy warns), and y == -1 is a
    # negation (wrapping at the minimum) so that `sdiv MIN, -1` never traps.
    zero, one = constant(dt, 0), constant(dt, 1)
    bad = b.or_(b.icmp_signed("==", y, zero), b.icmp_signed("==", y, constant(dt, -1)))
    safe_y = b.select(bad, one, y)
    q = b.sdiv(x, safe_y)
    r = b.srem(x, safe_y)
    adjust = b.and_(b.icmp_signed("!=", r, zero),
                    b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", y, zero)))
    q = b.select(adjust, b.sub(q, one), q)
    r = b.select(adjust, b.add(r, y), r)
    yzero = b.icmp_signed("==", y, zero)
    q = b.select(yzero, zero, b.select(b.icmp_signed("==", y, constant(dt, -1)),
                                       b.sub(zero, x), q))
    r = b.select(bad, zero, r)
    return q, r


def _int_pow(b: ir.IRBuilder, x, y, dt):
    """x ** y for integers by repeated squaring (y < 0 gives 0, except for x = ±1)."""
    fn_name = f"tj.ipow.{dt}"
    fn = b.module.globals.get(fn_name)
    t = REG[dt]
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(t, [t, t]), fn_name)
        fn.linkage = "internal"
        base, exp = fn.args
        fb = ir.IRBuilder(fn.append_basic_block("entry"))
        loop, body, done = (fn.append_basic_block(n) for n in ("loop", "body", "done"))
        entry = fb.block
        fb.branch(loop)
        fb.position_at_end(loop)
        acc = fb.phi(t, "acc")
        bb = fb.phi(t, "base")
        e = fb.phi(t, "exp")
        acc.add_incoming(ir.Constant(t, 1), entry)
        bb.add_incoming(base, entry)
        e.add_incoming(exp, entry)
        fb.cbranch(fb.icmp_signed(">", e, ir.Constant(t, 0)), body, done)
        fb.position_at_end(body)
        odd = fb.trunc(e, I1)
        acc2 = fb.select(odd, fb.mul(acc, bb), acc)
        acc.add_incoming(acc2, body)
        bb.add_incoming(fb.mul(bb, bb), body)
        e.add_incoming(fb.ashr(e, ir.Constant(t, 1)), body)
        fb.branch(loop)
        fb.position_at_end(done)
        neg = fb.icmp_signed("<", exp, ir.Constant(t, 0))
        # Negative exponents: 1 ** y = 1, (-1) ** y = ±1, anything else truncates to 0.
        one = ir.Constant(t, 1)
        minus = fb.icmp_signed("==", base, ir.Constant(t, -1))
        odd_exp = fb.trunc(exp, I1)
        neg_value = fb.select(fb.icmp_signed("==", base, one), one,
                              fb.select(minus, fb.select(odd_exp, ir.Constant(t, -1), one),
                                        ir.Constant(t, 0)))
        fb.ret(fb.select(neg, neg_value, acc))
    return b.call(fn, [x, y])


def _max_min(b, x, y, dt, is_max):
    if is_float(dt):
        # NumPy (SIMD): maximum(a, b) = a if (a > b or a is NaN) else b, so a NaN in either
        # operand wins and maximum(0.0, -0.0) is -0.0.
        keep = _fcmp(b, ">" if is_max else "<", x, y)
        keep = b.or_(keep, b.fcmp_unordered("uno", x, x))
        return b.select(keep, x, y)
    if dt == "bool":
        return b.or_(x, y) if is_max else b.and_(x, y)
    return b.select(b.icmp_signed(">=" if is_max else "<=", x, y), x, y)


def _compare(b, op, x, y, dt):
    if is_float(dt):
        return _fcmp(b, op, x, y)
    if dt == "bool":
        return b.icmp_unsigned(op, x, y)
    return b.icmp_signed(op, x, y)


def _cast(b: ir.IRBuilder, x, src: str, dst: str):
    """x (a register of `src`) converted to `dst` as NumPy's astype does: rounded to nearest
    even once, integers wrapped; NaN and out-of-range floats give x86's integer (the minimum
    int32 or int64, wrapped), as NumPy shows (C leaves them undefined; NumPy warns)."""
    if src == dst:
        return x
    if dst == "bool":
        if is_float(src):
            return b.fcmp_unordered("!=", x, constant(src, 0))   # NaN is true
        return b.icmp_signed("!=", x, constant(src, 0))
    if is_float(dst):
        if is_float(src):
            return _round_float(b, x, dst)
        value = b.uitofp(x, REG[dst]) if src in ("bool", "u64") else b.sitofp(x, REG[dst])
        # f32's rounding of an integer is the half type's too: the integers that f32 rounds
        # lie beyond float16's range, and bfloat16 keeps fewer bits (as ml_dtypes rounds).
        return _round_float(b, value, dst)
    if is_float(src):
        return _float_to_int(b, x, src, dst)
    if src == "bool":
        return b.zext(x, REG[dst])
    # Integers: truncate (or sign-extend: a register holds its value exactly) to dst's bits,
    # then extend to dst's register as dst's signedness says.
    bits = MEM[dst].width
    if REG[src].width > bits:
        x = b.trunc(x, ir.IntType(bits))
    elif REG[src].width < bits:
        x = b.sext(x, ir.IntType(bits))
    return _extend(b, x, dst)


def _extend(b: ir.IRBuilder, x, dt: str):
    """An integer of dt's memory width in dt's register (sign- or zero-extended)."""
    if x.type.width == REG[dt].width:
        return x
    return b.zext(x, REG[dt]) if is_unsigned(dt) else b.sext(x, REG[dt])


def _float_to_int(b: ir.IRBuilder, x, src: str, dst: str):
    # Through int32 for the integers of up to 32 bits that int32 holds, else through int64,
    # then wrapped, as C compilers convert (and NumPy shows). uint64 from [2**63, 2**64):
    # the conversion of x - 2**63 with the top bit set.
    wide = "i32" if MEM[dst].width < 32 or dst == "i32" else "i64"
    bits = REG[wide].width
    # x86's conversion gives the minimum integer for NaN and out-of-range values, and
    # NumPy shows it; LLVM's fptosi would be poison there, so saturate and select.
    lo, hi = constant(src, -2.0 ** (bits - 1)), constant(src, 2.0 ** (bits - 1))
    ok = b.and_(_fcmp(b, ">=", x, lo), _fcmp(b, "<", x, hi))
    converted = _intrinsic(b, "llvm.fptosi.sat", [x], REG[wide])
    value = b.select(ok, converted, ir.Constant(REG[wide], -(1 << (bits - 1))))
    if dst == "u64":
        top = b.and_(_fcmp(b, ">=", x, hi), _fcmp(b, "<", x, constant(src, 2.0 ** 64)))
        high = b.xor(_intrinsic(b, "llvm.fptosi.sat", [b.fsub(x, hi)], I64),
                     ir.Constant(I64, -(1 << 63)))
        value = b.select(top, high, value)
    if MEM[dst].width < bits:
        value = b.trunc(value, MEM[dst])
    return _extend(b, value, dst)


def _round_float(b: ir.IRBuilder, x, dst: str):
    """A float register (f32 or f64) rounded to float dtype `dst`, once, to nearest even, in
    dst's register. To the half types from f64 through f32 rounded to odd: rounding twice is
    then exact, as f32 keeps more than two bits beyond either's (and LLVM's double -> half
    would be a library call on hosts without AVX512-FP16)."""
    if dst in ("f32", "f64"):
        if x.type == REG[dst]:
            return x
        return b.fpext(x, F64) if dst == "f64" else b.fptrunc(x, F32)
    if x.type == F64:
        x = _round_to_odd_f32(b, x)
    if dst == "f16":
        return b.fpext(b.fptrunc(x, F16), F32)
    # bfloat16: the top 16 bits of the float32, rounded to nearest even; NaN stays a quiet NaN.
    bits = b.bitcast(x, I32)
    lsb = b.and_(b.lshr(bits, ir.Constant(I32, 16)), ir.Constant(I32, 1))
    rounded = b.add(bits, b.add(ir.Constant(I32, 0x7FFF), lsb))
    nan = b.fcmp_unordered("uno", x, x)
    bits = b.select(nan, b.or_(bits, ir.Constant(I32, 0x00400000)), rounded)
    return b.bitcast(b.and_(bits, ir.Constant(I32, -0x10000)), F32)


def _round_to_odd_f32(b: ir.IRBuilder, x):
    """The f32 nearest x toward zero, with its last bit set where it is inexact."""
    r = b.fptrunc(x, F32)
    wide = b.fpext(r, F64)
    inexact = b.fcmp_ordered("!=", wide, x)                 # false for NaN
    over = _fcmp(b, ">", _intrinsic(b, "llvm.fabs", [wide]), _intrinsic(b, "llvm.fabs", [x]))
    bits = b.bitcast(r, I32)
    bits = b.select(over, b.sub(bits, ir.Constant(I32, 1)), bits)   # one step toward zero
    bits = b.select(inexact, b.or_(bits, ir.Constant(I32, 1)), bits)
    return b.bitcast(bits, F32)


def _add(b, x, y, dt):
    return b.fadd(x, y) if is_float(dt) else (b.or_(x, y) if dt == "bool" else b.add(x, y))


def _mul(b, x, y, dt):
    return b.fmul(x, y) if is_float(dt) else (b.and_(x, y) if dt == "bool" else b.mul(x, y))


def _pow(b, x, y, dt):
    return llvm_math.call(b, "pow", [x, y]) if is_float(dt) else _int_pow(b, x, y, dt)


def _comparison(op: str):
    return lambda b, x, y, dt: _compare(b, op, x, y, dt)


def _math(name: str):
    return lambda b, x, dt: llvm_math.call(b, name, [x])


def _llvm_intrinsic(name: str):
    return lambda b, x, dt: _intrinsic(b, f"llvm.{name}", [x])


def _asinh(b, x, dt):
    """asinh as glibc computes it, branch-free over a = |x|: log1p(a + a²/(1 + √(1 + a²))) up
    to 2, log(2a + 1/(√(a² + 1) + a)) up to 2²⁸, log(a) + log 2 beyond (where a² overflows);
    the sign of x copied back (±0, ±inf and NaN come through)."""
    one = constant(dt, 1)
    a = _abs(b, x, dt)
    a2 = b.fmul(a, a)
    root = _sqrt(b, b.fadd(a2, one))
    small = llvm_math.call(b, "log1p", [b.fadd(a, b.fdiv(a2, b.fadd(one, root)))])
    medium = llvm_math.call(b, "log", [b.fadd(b.fmul(constant(dt, 2), a),
                                              b.fdiv(one, b.fadd(root, a)))])
    large = b.fadd(llvm_math.call(b, "log", [a]), constant(dt, math.log(2)))
    r = b.select(_fcmp(b, "<=", a, constant(dt, 2)), small,
                 b.select(_fcmp(b, "<", a, constant(dt, 2.0 ** 28)), medium, large))
    return _intrinsic(b, "llvm.copysign", [r, x])


def _atan2(b, y, x, dt):
    """atan2(y, x) from atan of a ratio in [0, 1]: r = atan(min(|x|,|y|) / max(|x|,|y|)),
    reflected to pi/2 - r where |y| > |x| and to pi - r where x's sign bit is set, with y's
    sign. The ratio is 0/0 at the origin (r = 0: ±0 or ±pi by the signs, as C's atan2) and
    inf/inf where both are infinite (r = pi/4); a NaN operand gives NaN."""
    ax, ay = _abs(b, x, dt), _abs(b, y, dt)
    big, small = _max_min(b, ax, ay, dt, True), _max_min(b, ax, ay, dt, False)
    r = llvm_math.call(b, "atan", [b.fdiv(small, big)])
    r = b.select(_fcmp(b, "==", big, constant(dt, 0)), constant(dt, 0), r)
    both_inf = b.and_(_fcmp(b, "==", ax, constant(dt, math.inf)),
                      _fcmp(b, "==", ay, constant(dt, math.inf)))
    r = b.select(both_inf, constant(dt, math.pi / 4), r)
    r = b.select(_fcmp(b, ">", ay, ax), b.fsub(constant(dt, math.pi / 2), r), r)
    r = b.select(_signbit(b, x, dt), b.fsub(constant(dt, math.pi), r), r)
    nan = b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_unordered("uno", y, y))
    return b.select(nan, b.fadd(x, y), _intrinsic(b, "llvm.copysign", [r, y]))


def _sqrt(b, x):
    return _intrinsic(b, "llvm.sqrt", [x])


def _asin(b, x, dt):
    """asin x = atan2(x, sqrt((1 - x)(1 + x))): NaN outside [-1, 1], ±pi/2 at ±1."""
    one = constant(dt, 1)
    return _atan2(b, x, _sqrt(b, b.fmul(b.fsub(one, x), b.fadd(one, x))), dt)


def _acos(b, x, dt):
    """acos x = 2 atan2(sqrt(1 - x), sqrt(1 + x)): 0 at 1, pi at -1, NaN outside [-1, 1]."""
    one = constant(dt, 1)
    r = _atan2(b, _sqrt(b, b.fsub(one, x)), _sqrt(b, b.fadd(one, x)), dt)
    return b.fmul(constant(dt, 2), r)


def _acosh(b, x, dt):
    """acosh as glibc computes it: log1p(t + sqrt(2t + t²)) with t = x - 1 up to 2,
    log(2x - 1/(x + sqrt(x² - 1))) up to 2²⁸, log(x) + log 2 beyond; NaN below 1."""
    one = constant(dt, 1)
    t = b.fsub(x, one)
    small = llvm_math.call(b, "log1p",
                           [b.fadd(t, _sqrt(b, b.fadd(b.fadd(t, t), b.fmul(t, t))))])
    root = _sqrt(b, b.fsub(b.fmul(x, x), one))
    medium = llvm_math.call(b, "log", [b.fsub(b.fadd(x, x), b.fdiv(one, b.fadd(x, root)))])
    large = b.fadd(llvm_math.call(b, "log", [x]), constant(dt, math.log(2)))
    r = b.select(_fcmp(b, "<=", x, constant(dt, 2)), small,
                 b.select(_fcmp(b, "<", x, constant(dt, 2.0 ** 28)), medium, large))
    return b.select(_fcmp(b, "<", x, one), constant(dt, math.nan), r)


def _atanh(b, x, dt):
    """atanh as glibc computes it, over a = |x|: log1p(2a + 2a·a/(1 - a))/2 below 1/2,
    log1p(2a/(1 - a))/2 from there (inf at 1, NaN beyond); the sign of x copied back."""
    one, half = constant(dt, 1), constant(dt, 0.5)
    a = _abs(b, x, dt)
    two_a = b.fadd(a, a)
    small = llvm_math.call(b, "log1p",
                           [b.fadd(two_a, b.fdiv(b.fmul(two_a, a), b.fsub(one, a)))])
    large = llvm_math.call(b, "log1p", [b.fdiv(two_a, b.fsub(one, a))])
    r = b.fmul(half, b.select(_fcmp(b, "<", a, half), small, large))
    return _intrinsic(b, "llvm.copysign", [r, x])


def _cbrt(b, x, dt):
    """cbrt over a = |x|: y = exp(log(a)/3), then one Newton step y - (y - a/y²)/3 (the
    first guess is good to about 1e-13, the step squares that error); 0 and inf as they are;
    the sign of x copied back."""
    a = _abs(b, x, dt)
    y = llvm_math.call(b, "exp", [b.fdiv(llvm_math.call(b, "log", [a]), constant(dt, 3))])
    y = b.fsub(y, b.fdiv(b.fsub(y, b.fdiv(a, b.fmul(y, y))), constant(dt, 3)))
    exact = b.or_(_fcmp(b, "==", a, constant(dt, 0)), _fcmp(b, "==", a, constant(dt, math.inf)))
    return _intrinsic(b, "llvm.copysign", [b.select(exact, a, y), x])


def _hypot(b, x, y, dt):
    """hypot = m sqrt(1 + (n/m)²) for m = max(|x|, |y|), n = min: no overflow or underflow of
    the squares; 0 at the origin; inf where either is infinite (even with a NaN), as C's."""
    ax, ay = _abs(b, x, dt), _abs(b, y, dt)
    big, small = _max_min(b, ax, ay, dt, True), _max_min(b, ax, ay, dt, False)
    ratio = b.fdiv(small, big)
    h = b.fmul(big, _sqrt(b, b.fadd(constant(dt, 1), b.fmul(ratio, ratio))))
    h = b.select(_fcmp(b, "==", big, constant(dt, 0)), constant(dt, 0), h)
    nan = b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_unordered("uno", y, y))
    h = b.select(nan, b.fadd(ax, ay), h)
    inf = b.or_(_fcmp(b, "==", ax, constant(dt, math.inf)),
                _fcmp(b, "==", ay, constant(dt, math.inf)))
    return b.select(inf, constant(dt, math.inf), h)


def _signbit(b, x, dt):
    """The sign bit of a float (set for -0.0 and negative NaNs too)."""
    bits = ir.IntType(64 if dt == "f64" else 32)
    return b.icmp_signed("<", b.bitcast(x, bits), ir.Constant(bits, 0))


def _fmod(b, x, y, dt):
    """C's fmod: frem for floats (NaN for y = 0); for integers the remainder with the sign of
    x, 0 where y is 0 (NumPy's result, with a warning) or -1 (so MIN % -1 never traps)."""
    if is_float(dt):
        return b.frem(x, y)
    zero, one = constant(dt, 0), constant(dt, 1)
    bad = b.or_(b.icmp_signed("==", y, zero), b.icmp_signed("==", y, constant(dt, -1)))
    return b.select(bad, zero, b.srem(x, b.select(bad, one, y)))


#: elementwise unary primitive → emit(builder, x, dtype)
UNARY = {
    P.neg: _neg,
    P.abs_: _abs,
    P.sign: _sign,
    P.sqrt: _llvm_intrinsic("sqrt"),
    P.floor: _llvm_intrinsic("floor"),
    P.ceil: _llvm_intrinsic("ceil"),
    P.not_: lambda b, x, dt: b.not_(x),
    P.exp: _math("exp"),
    P.expm1: _math("expm1"),
    P.log: _math("log"),
    P.log1p: _math("log1p"),
    P.sin: _math("sin"),
    P.cos: _math("cos"),
    P.tanh: _math("tanh"),
    P.atan: _math("atan"),
    P.asinh: _asinh,
    P.asin: _asin,
    P.acos: _acos,
    P.acosh: _acosh,
    P.atanh: _atanh,
    P.cbrt: _cbrt,
    P.rint: _llvm_intrinsic("rint"),
    P.signbit: _signbit,
    P.optimization_barrier: lambda b, x, dt: x,
}

#: elementwise binary primitive → emit(builder, x, y, dtype of the operands)
BINARY = {
    P.add: _add,
    P.sub: lambda b, x, y, dt: b.fsub(x, y) if is_float(dt) else b.sub(x, y),
    P.mul: _mul,
    P.div: lambda b, x, y, dt: b.fdiv(x, y),
    P.floordiv: lambda b, x, y, dt: _floor_div_mod(b, x, y, dt)[0],
    P.mod: lambda b, x, y, dt: _floor_div_mod(b, x, y, dt)[1],
    P.pow_: _pow,
    P.fmod: _fmod,
    P.copysign: lambda b, x, y, dt: _intrinsic(b, "llvm.copysign", [x, y]),
    P.hypot: _hypot,
    P.atan2: _atan2,
    P.max_: lambda b, x, y, dt: _max_min(b, x, y, dt, True),
    P.min_: lambda b, x, y, dt: _max_min(b, x, y, dt, False),
    P.and_: lambda b, x, y, dt: b.and_(x, y),
    P.or_: lambda b, x, y, dt: b.or_(x, y),
    P.xor: lambda b, x, y, dt: b.xor(x, y),
    P.eq: _comparison("=="),
    P.ne: _comparison("!="),
    P.lt: _comparison("<"),
    P.le: _comparison("<="),
    P.gt: _comparison(">"),
    P.ge: _comparison(">="),
}


def _broadcast_scalar(b, eqn, args, index):
    if eqn.inputs[0].type.shape != ():
        raise NotImplementedError("the cpu backend broadcasts only scalars in a body")
    return args[0]


def _threefry(b, eqn, args, index):
    """Threefry-2x32's word eqn.params["word"] (or the two xored), in 32-bit registers (the
    uint32 operands arrive zero-extended to 64 bits, and the word leaves so):
    tracejit.primitives' threefry2x32_words, round by round."""
    def c(v):
        return ir.Constant(I32, v)

    k0, k1, x0, x1 = (b.trunc(a, I32) for a in args)
    keys = (k0, k1, b.xor(b.xor(k0, k1), c(P.THREEFRY_PARITY)))
    x0, x1 = b.add(x0, keys[0]), b.add(x1, keys[1])
    for i in range(5):
        for r in P.THREEFRY_ROTATIONS[i % 2]:
            x0 = b.add(x0, x1)
            x1 = b.xor(b.or_(b.shl(x1, c(r)), b.lshr(x1, c(32 - r))), x0)
        x0 = b.add(x0, keys[(i + 1) % 3])
        x1 = b.add(b.add(x1, keys[(i + 2) % 3]), c(i + 1))
    return b.zext((x0, x1, b.xor(x0, x1))[eqn.params["word"]], I64)


#: the other primitives a kernel body holds → emit(builder, eqn, args, index)
OTHER = {
    P.cast: lambda b, eqn, args, index: _cast(b, args[0], eqn.inputs[0].type.dtype,
                                              eqn.out.type.dtype),
    P.select: lambda b, eqn, args, index: b.select(args[0], args[1], args[2]),
    P.check: lambda b, eqn, args, index: args[0],      # its check is codegen.status's
    P.threefry2x32: _threefry,
    P.broadcast_in_dim: _broadcast_scalar,
    P.iota: lambda b, eqn, args, index: _cast(b, index[eqn.params["dimension"]], "i64",
                                              eqn.out.type.dtype),
}


def binary(b: ir.IRBuilder, prim: P.Primitive, x, y, dt: str) -> ir.Value:
    """`prim` (an elementwise binary primitive) on scalars x and y of dtype `dt`."""
    return BINARY[prim](b, x, y, dt)


def lower_scalar(b: ir.IRBuilder, eqn: Eqn, args: list, index: dict[int, ir.Value]) -> ir.Value:
    """The scalar value of `eqn` at one point, from its operands' scalar values. `index` maps
    the eqn's axes to their loop indices (for iota)."""
    prim = eqn.prim
    if prim in UNARY:
        return UNARY[prim](b, args[0], eqn.inputs[0].type.dtype)
    if prim in BINARY:
        return BINARY[prim](b, args[0], args[1], eqn.inputs[0].type.dtype)
    if prim in OTHER:
        return OTHER[prim](b, eqn, args, index)
    raise NotImplementedError(f"the cpu backend has no lowering for {prim.name}")


# ---------------------------------------------------------------------------------------------
# loops


@contextmanager
def for_range(b: ir.IRBuilder, start, stop, name: str, step=1):
    """`for name in range(start, stop, step)`: yields the i64 index inside the body."""
    start = start if isinstance(start, ir.Value) else ir.Constant(I64, start)
    stop = stop if isinstance(stop, ir.Value) else ir.Constant(I64, stop)
    pre = b.block
    head = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    end = b.append_basic_block(f"{name}.end")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, stop), body, end)
    b.position_at_end(body)
    yield i
    nxt = b.add(i, ir.Constant(I64, step), name=f"{name}.next", flags=("nsw",))
    i.add_incoming(nxt, b.block)
    b.branch(head)
    b.position_at_end(end)


def _report(b: ir.IRBuilder, status, words) -> None:
    """status[0:len(words)] = words, unless an error is reported already: status[0] is set by a
    compare-and-swap from 0, so the first error wins, whatever the threads."""
    first = b.cmpxchg(status, ir.Constant(I64, 0), words[0], "monotonic", "monotonic")
    with b.if_then(b.extract_value(first, 1), likely=True):
        for slot, value in enumerate(words[1:], 1):
            b.store(value, element(b, status, I64, ir.Constant(I64, slot)))


def element(b: ir.IRBuilder, ptr, t: ir.Type, index, name: str = "") -> ir.Value:
    """&ptr[index] for elements of type `t`."""
    return b.gep(ptr, [index], inbounds=True, source_etype=t, name=name)


def _alloca_entry(b: ir.IRBuilder, t: ir.Type, name: str) -> ir.Value:
    """A scalar alloca at the start of the function's entry block (where mem2reg promotes
    it). Arrays never go on the stack: they are arena scratch."""
    with b.goto_block(b.function.entry_basic_block):
        b.position_at_start(b.function.entry_basic_block)
        return b.alloca(t, name=name)


# ---------------------------------------------------------------------------------------------
# reductions


def identity(r: Reduction) -> ir.Constant:
    """The accumulator's initial value."""
    return constant(r.acc_dtype, r.identity())


def combine(b: ir.IRBuilder, r: Reduction, acc, x) -> ir.Value:
    """acc ⊕ x in the accumulator's type. Float sums and products carry `reassoc`, so the
    vectoriser keeps several partial results."""
    if r.sum_like:
        op = b.fadd if r.combine is P.add else b.fmul
        return op(acc, x, flags=("reassoc",))
    return binary(b, r.combine, *r.operands(acc, x), r.acc_dtype)


def is_column_reduction(kernel: Kernel) -> bool:
    """A column reduction (a bias gradient: the sum over the rows of a matrix) runs rows outer,
    columns inner, with one accumulator per column: contiguous, vectorised loops."""
    return (len(kernel.domain) == 2 and tuple(kernel.reduce_axes) == (0,)
            and COLUMN_MIN <= kernel.domain[1] <= COLUMN_MAX)


def loop_scratch(kernel: Kernel) -> list[tuple[tuple, int]]:
    """(key, bytes) of the arena scratch the loop nest of `kernel` needs: a column reduction's
    accumulator arrays (each chunk of columns uses its own part), or a full reduction's partial
    accumulators (a word per reduction and thread). Both grow with the shapes or with the
    number of sibling-fused reductions, so they never live on the stack."""
    reductions = reductions_of(kernel.body)
    if not reductions or not kernel.reduce_axes:
        return []
    if is_column_reduction(kernel):
        return [((kernel.name, r.eqn.out), 8 * kernel.domain[1]) for r in reductions]
    if len(kernel.reduce_axes) == len(kernel.domain):
        return [((kernel.name, "partial"), 8 * MAX_THREADS * len(reductions))]
    return []


def own_scratch(kernel: Kernel) -> list[tuple[str, int]]:
    """(role, bytes) of the arena scratch a kernel of its own needs (see OWN_SCRATCH)."""
    prim = kernel.own_primitive
    return OWN_SCRATCH[prim](kernel.body[0]) if prim in OWN_SCRATCH else []


# ---------------------------------------------------------------------------------------------
# the Program's module


class ModuleBuilder:
    """Builds the LLVM module of one Program, kernel by kernel."""

    def __init__(self, program: Program, plan: BufferPlan, dots: dict[int, "DotLowering"],
                 name: str, table: int):
        self.program = program
        self.plan = plan
        self.table = table                 # the arena offset of entry_objects' argument table
        self.dots = dots
        self.names = program_names(program)
        self.module = ir.Module(name=name)
        self._parallel_for = None
        self.may_fail: set[str] = set()
        self.sites = {e.out: i for i, e in enumerate(sites(program))}   # checked equations
        self.current = -1                  # the kernel being emitted (whose scratch to use)

    # -- names and buffers ------------------------------------------------------------------

    def name(self, v: Var) -> str:
        return llvm_name(self.names.get(v, f"%t{v.uid}"))

    def buffer(self, b: ir.IRBuilder, v: Var, args, arena) -> ir.Value:
        """A pointer to the first element of buffer `v`: its slot of the argument table, or
        its offset in the arena."""
        scratch = self.plan.scratch.get(self.current, {})
        kind, where = ("arena", scratch[v]) if v in scratch else self.plan.locations[v]
        name = f"{self.name(v)}.ptr"
        if kind == "arg":
            return b.load(element(b, args, PTR, ir.Constant(I64, where)), typ=PTR, name=name)
        return element(b, arena, I8, ir.Constant(I64, where), name)

    def scratch(self, b: ir.IRBuilder, key, arena, name: str) -> ir.Value:
        """A pointer to the current kernel's arena scratch `key` (see `loop_scratch`)."""
        return element(b, arena, I8, ir.Constant(I64, self.plan.scratch[self.current][key]), name)

    def pointers(self, b: ir.IRBuilder, kernel: Kernel, args, arena) -> dict[Var, ir.Value]:
        """Pointers to the buffers `kernel` loads from and stores to."""
        ptrs: dict[Var, ir.Value] = {}
        for v in [ld.src for ld in kernel.loads] + list(kernel.outputs):
            if v not in ptrs:
                ptrs[v] = self.buffer(b, v, args, arena)
        return ptrs

    @staticmethod
    def load(b: ir.IRBuilder, ptr, index, dtype: str, name: str) -> ir.Value:
        """Element `index` of `ptr` in dtype's register type."""
        same = MEM[dtype] == REG[dtype]
        value = b.load(element(b, ptr, MEM[dtype], index), typ=MEM[dtype],
                       name=name if same else "")
        if same:
            return value
        if dtype == "bool":
            return b.icmp_unsigned("!=", value, ir.Constant(I8, 0), name=name)
        if dtype == "f16":
            return b.fpext(value, F32, name=name)
        if dtype == "bf16":             # bfloat16 is the top half of a float32
            return b.bitcast(b.shl(b.zext(value, I32), ir.Constant(I32, 16)), F32, name=name)
        return b.zext(value, REG[dtype], name=name) if is_unsigned(dtype) else \
            b.sext(value, REG[dtype], name=name)

    @staticmethod
    def store(b: ir.IRBuilder, value, ptr, index, dtype: str) -> None:
        """Store a register of `dtype` (holding a value of dtype: exact) as element `index`."""
        if dtype == "bool":
            value = b.zext(value, I8)
        elif dtype == "f16":
            value = b.fptrunc(value, F16)
        elif dtype == "bf16":
            value = b.trunc(b.lshr(b.bitcast(value, I32), ir.Constant(I32, 16)), I16)
        elif MEM[dtype] != REG[dtype]:
            value = b.trunc(value, MEM[dtype])
        b.store(value, element(b, ptr, MEM[dtype], index))

    @staticmethod
    def affine(b: ir.IRBuilder, imap: IndexMap, idx: list) -> ir.Value:
        """offset + Σ strides[d]·idx[d], in 64 bits."""
        acc = None
        for d, s in affine_terms(imap):
            i = idx[d]
            term = i if s == 1 else b.mul(i, ir.Constant(I64, s), flags=("nsw",))
            acc = term if acc is None else b.add(acc, term, flags=("nsw",))
        if acc is None:
            return ir.Constant(I64, imap.offset)
        return b.add(acc, ir.Constant(I64, imap.offset), flags=("nsw",)) if imap.offset else acc

    # -- the module ---------------------------------------------------------------------------

    def build(self) -> ir.Module:
        drivers = []
        for k, kernel in enumerate(self.program.kernels):
            drivers.append(self.kernel(k, kernel))
        entry = ir.Function(self.module, ir.FunctionType(I32, list(DRIVER_TYPE.args)), "entry")
        args, arena, nthreads, status = entry.args
        for a, n in zip(entry.args, ("args", "arena", "nthreads", "status")):
            a.name = n
        b = ir.IRBuilder(entry.append_basic_block("entry"))
        clock = ir.Function(self.module, ir.FunctionType(I64, []), "llvm.readcyclecounter")
        for k, (kernel, driver) in enumerate(zip(self.program.kernels, drivers)):
            # status[STATUS_WORDS + k] += the cycles kernel k took (a profile for free).
            start = b.call(clock, [])
            b.call(driver, [args, arena, nthreads, status])
            slot = element(b, status, I64, ir.Constant(I64, STATUS_WORDS + k))
            b.store(b.add(b.load(slot, typ=I64), b.sub(b.call(clock, []), start)), slot)
            if kernel.name in self.may_fail:
                failed = b.icmp_signed("!=", b.load(status, typ=I64), ir.Constant(I64, 0))
                with b.if_then(failed, likely=False):
                    b.ret(ir.Constant(I32, 1))
        b.ret(ir.Constant(I32, 0))
        self.object_entry(entry)
        return self.module

    def object_entry(self, entry: ir.Function) -> None:
        """`i32 @entry_objects(tuple, arena, nthreads, status)`: `entry` called with the data
        pointers of a Python tuple of NumPy arrays (one per argument-table slot), read from
        the objects themselves, so the caller needs no per-array pointer lookups. The offsets
        are CPython's and NumPy's ABI; the runtime checks them before it uses this."""
        fn = ir.Function(self.module, entry.function_type, "entry_objects")
        for a, n in zip(fn.args, ("objects", "arena", "nthreads", "status")):
            a.name = n
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        items = element(b, fn.args[0], I8, ir.Constant(I64, PY_TUPLE_ITEMS), "items")
        table = element(b, fn.args[1], I8, ir.Constant(I64, self.table), "table")
        for i in range(len(self.plan.args)):
            obj = b.load(element(b, items, PTR, ir.Constant(I64, i)), typ=PTR)
            data = b.load(element(b, obj, I8, ir.Constant(I64, NP_ARRAY_DATA)), typ=PTR,
                          name=self.name(self.plan.args[i]))
            b.store(data, element(b, table, PTR, ir.Constant(I64, i)))
        b.ret(b.call(entry, [table] + list(fn.args[1:])))

    def driver(self, name: str):
        fn = ir.Function(self.module, DRIVER_TYPE, name)
        for a, n in zip(fn.args, ("args", "arena", "nthreads", "status")):
            a.name = n
        fn.attributes.add("nounwind")
        return fn

    def kernel(self, k: int, kernel: Kernel) -> ir.Function:
        self.current = k                   # whose scratch `buffer` finds
        fn = self.driver(kernel.name)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        if may_fail(kernel):
            self.may_fail.add(kernel.name)          # an error reported stops the call
        if kernel.kind == LOOP:
            LoopNest(self, kernel).emit_into(b, fn.args)
        elif kernel.kind == COPY:
            LoopNest(self, copy_as_loop(kernel)).emit_into(b, fn.args)
        elif kernel.kind == DOT:
            self.dots[k].emit_into(self, b, fn.args)
        else:
            # A kernel of its own: one equation on loaded operands; the lowering gets its
            # operands' loads, the buffers' pointers, and the status words for an index error.
            args, arena, _, status = fn.args
            (eqn,) = kernel.body
            ptrs = self.pointers(b, kernel, args, arena)
            for role, _ in own_scratch(kernel):
                ptrs[role] = self.scratch(b, (kernel.name, role), arena, role)
            OWN_KERNELS[own_primitive(kernel)](self, b, eqn, {ld.dst: ld for ld in kernel.loads},
                                               ptrs, status)
        b.ret_void()
        return fn

    # -- threads ------------------------------------------------------------------------------

    def parallel_for(self) -> ir.Function:
        """`i64 tj.parallel_for(chunk, args, arena, n, partial, partial_stride, status, threads)`:
        runs chunk(args, arena, lo, hi, partial + t*partial_stride, status) for
        t < T = min(threads, n, MAX_THREADS) equal ranges [lo, hi) of [0, n), chunk 0 on the
        calling thread and the others on fresh pthreads (inline if one cannot be created);
        returns T."""
        if self._parallel_for is not None:
            return self._parallel_for
        m = self.module
        # Function pointers stay typed: llvmlite calls only through those.
        chunk_ptr = CHUNK_TYPE.as_pointer()
        task = ir.LiteralStructType([chunk_ptr, PTR, PTR, I64, I64, PTR, PTR])
        worker = ir.Function(m, ir.FunctionType(PTR, [PTR]), "tj.worker")
        worker.linkage = "internal"
        wb = ir.IRBuilder(worker.append_basic_block("entry"))
        t = worker.args[0]
        fields = [wb.load(wb.gep(t, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=task),
                          typ=task.elements[i]) for i in range(7)]
        wb.call(fields[0], fields[1:])
        wb.ret(ir.Constant(PTR, None))

        create = ir.Function(m, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]),
                             "pthread_create")
        join = ir.Function(m, ir.FunctionType(I32, [I64, PTR]), "pthread_join")

        fn = ir.Function(m, ir.FunctionType(I64, [chunk_ptr, PTR, PTR, I64, PTR, I64, PTR, I64]),
                         "tj.parallel_for")
        fn.linkage = "internal"
        chunk, args, arena, n, partial, stride, status, threads = fn.args
        for a, nm in zip(fn.args, ("chunk", "args", "arena", "n", "partial", "stride", "status",
                                   "threads")):
            a.name = nm
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        tcount = b.select(b.icmp_signed("<", threads, n), threads, n)
        tcount = b.select(b.icmp_signed("<", tcount, ir.Constant(I64, MAX_THREADS)), tcount,
                          ir.Constant(I64, MAX_THREADS))
        tcount = b.select(b.icmp_signed("<", tcount, ir.Constant(I64, 1)), ir.Constant(I64, 1),
                          tcount, name="nchunks")
        tasks = b.alloca(task, size=ir.Constant(I64, MAX_THREADS), name="tasks")
        tids = b.alloca(I64, size=ir.Constant(I64, MAX_THREADS), name="tids")
        started = b.alloca(I1, size=ir.Constant(I64, MAX_THREADS), name="started")

        def bounds(bb, t):
            lo = bb.sdiv(bb.mul(n, t), tcount)
            hi = bb.sdiv(bb.mul(n, bb.add(t, ir.Constant(I64, 1))), tcount)
            return lo, hi

        with for_range(b, 1, tcount, "t") as tt:
            lo, hi = bounds(b, tt)
            slot = b.gep(tasks, [tt])
            values = [chunk, args, arena, lo, hi, element(b, partial, I8, b.mul(tt, stride)),
                      status]
            for i, v in enumerate(values):
                b.store(v, b.gep(slot, [ir.Constant(I32, 0), ir.Constant(I32, i)]))
            rc = b.call(create, [b.bitcast(b.gep(tids, [tt]), PTR), ir.Constant(PTR, None), worker,
                                 b.bitcast(slot, PTR)])
            ok = b.icmp_signed("==", rc, ir.Constant(I32, 0))
            b.store(ok, b.gep(started, [tt]))
            with b.if_then(b.not_(ok)):
                b.call(chunk, values[1:])
        lo, hi = bounds(b, ir.Constant(I64, 0))
        b.call(chunk, [args, arena, lo, hi, partial, status])
        with for_range(b, 1, tcount, "j") as tt:
            with b.if_then(b.load(b.gep(started, [tt]))):
                b.call(join, [b.load(b.gep(tids, [tt])), ir.Constant(PTR, None)])
        b.ret(tcount)
        self._parallel_for = fn
        return fn


# ---------------------------------------------------------------------------------------------
# loop kernels


class LoopNest:
    """The loop nest of a `loop` kernel (also a copy, and a dot's prologue and epilogue)."""

    def __init__(self, mb: ModuleBuilder, kernel: Kernel):
        self.mb = mb
        self.k = kernel
        self.name = kernel.name
        self.domain = kernel.domain
        self.reduce_axes = tuple(kernel.reduce_axes)
        self.kept_axes = tuple(d for d in range(len(self.domain)) if d not in self.reduce_axes)
        self.kept = kernel.kept_shape
        self.order = self.kept_axes + self.reduce_axes      # loop order, outermost first
        self.reductions = reductions_of(kernel.body)
        for r in self.reductions:
            if tuple(sorted(r.eqn.params["axes"])) != tuple(sorted(self.reduce_axes)):
                raise NotImplementedError(f"kernel {self.name}: a reduction over axes "
                                          f"{r.eqn.params['axes']} in a kernel reducing "
                                          f"{self.reduce_axes}")
        self.loads = {ld.dst: ld for ld in kernel.loads}
        self.scope = value_scopes(kernel)
        self.full_reduction = bool(self.reduce_axes) and not self.kept_axes
        size = math.prod(self.domain)
        self.parallel = size >= PARALLEL_MIN and self.order and self.domain[self.order[0]] >= 2
        self.columns = is_column_reduction(kernel)

    # -- emitting values --------------------------------------------------------------------------

    def emit(self, b, scope: str, env: dict, ptrs: dict, index: dict[int, ir.Value]) -> None:
        """Emit the loads and body equations of `scope` (the indices of `index` in scope)."""
        idx_full = [index.get(d) for d in range(len(self.domain))]
        idx_kept = [index.get(d) for d in self.kept_axes]
        for v, ld in self.loads.items():
            if self.scope[v] != scope:
                continue
            idx = idx_kept if scope == "kept" else idx_full if scope == "full" else []
            offset = self.mb.affine(b, ld.imap, idx)
            env[v] = self.mb.load(b, ptrs[ld.src], offset, v.type.dtype, self.mb.name(v))
        axes_of = {"full": dict(enumerate(idx_full)), "kept": dict(enumerate(idx_kept)),
                   "scalar": {}}
        for e in self.k.body:
            if self.scope[e.out] != scope or e.prim.category is P.REDUCTION:
                continue
            args = [self.operand(env, a) for a in e.inputs]
            value = lower_scalar(b, e, args, axes_of[scope])
            for c in checks_of(e):
                dt = e.inputs[c.operand].type.dtype
                bad = binary(b, c.compare, args[c.operand], constant(dt, c.bound), dt)
                with b.if_then(bad, likely=False):
                    _report(b, b.function.args[-1], [ir.Constant(I64, w) for w in
                                                     (c.code, self.mb.sites[e.out], 0, 0)])
            if isinstance(value, ir.Instruction) and value.name.startswith("."):
                value.name = self.mb.name(e.out)      # the IR value it holds
            env[e.out] = value

    @staticmethod
    def operand(env, a):
        """The scalar value of atom `a` here: its emitted value, or a literal's constant."""
        return env[a] if isinstance(a, Var) else constant(a.type.dtype, a.value)

    def accumulate(self, b: ir.IRBuilder, r: Reduction, env, acc) -> None:
        """*acc = combine(*acc, r's input at this point), widened to the accumulator's type."""
        x = self.operand(env, r.eqn.inputs[0])
        if r.acc_dtype != r.eqn.out.type.dtype:
            x = b.fpext(x, REG[r.acc_dtype])
        t = REG[r.acc_dtype]
        b.store(combine(b, r, b.load(acc, typ=t), x), acc)

    def fresh_accumulator(self, b: ir.IRBuilder, r: Reduction, suffix: str):
        """An accumulator for `r` in the entry block, set to the reduction's identity here."""
        acc = _alloca_entry(b, REG[r.acc_dtype], f"{self.mb.name(r.eqn.out)}.{suffix}")
        b.store(identity(r), acc)
        return acc

    def store_outputs(self, b, scope, env, ptrs, index_list) -> None:
        for v in self.k.outputs:
            if self.scope.get(v) != scope:
                continue
            if scope == "scalar":
                self.mb.store(b, env[v], ptrs[v], ir.Constant(I64, 0), v.type.dtype)
                continue
            shape = self.kept if scope == "kept" else self.domain
            offset = self.mb.affine(b, IndexMap.contiguous(shape), index_list)
            self.mb.store(b, env[v], ptrs[v], offset, v.type.dtype)

    # -- functions ----------------------------------------------------------------------------

    def pointers(self, b, args, arena) -> dict[Var, ir.Value]:
        return self.mb.pointers(b, self.k, args, arena)

    def emit_into(self, b: ir.IRBuilder, driver_args) -> None:
        """Emit the kernel's work into driver `b` (whose arguments are `driver_args`)."""
        args, arena, nthreads, status = driver_args
        if not self.domain or not self.order:
            # A rank-0 domain: everything is one scalar computation.
            self._scalar_kernel(b, args, arena)
            return
        chunk = self._chunk_function()
        nred = len(self.reductions)
        stride = ir.Constant(I64, 8 * max(nred, 1))
        n0 = ir.Constant(I64, self.domain[self.order[0]])
        # Each chunk's partial accumulators, for a full reduction (scratch: see loop_scratch).
        partial = (self.mb.scratch(b, (self.name, "partial"), arena, "partial")
                   if self.full_reduction else ir.Constant(PTR, None))
        if self.parallel:
            chunks = b.call(self.mb.parallel_for(),
                            [chunk, args, arena, n0, partial, stride, status, nthreads],
                            name="nchunks")
        else:
            b.call(chunk, [args, arena, ir.Constant(I64, 0), n0, partial, status])
            chunks = ir.Constant(I64, 1)
        scalar_outputs = [v for v in self.k.outputs if self.scope.get(v) == "scalar"]
        if not (scalar_outputs or self.full_reduction):
            return
        ptrs = self.pointers(b, args, arena)
        env: dict = {}
        self.emit(b, "scalar", env, ptrs, {})
        self.store_outputs(b, "scalar", env, ptrs, [])
        if self.full_reduction:
            # Combine the chunks' partial accumulators in order, then the scalar epilogue.
            for j, r in enumerate(self.reductions):
                t = REG[r.acc_dtype]
                acc = self.fresh_accumulator(b, r, "acc")
                with for_range(b, 0, chunks, f"{self.mb.name(r.eqn.out)}.chunk") as c:
                    at = element(b, partial, I8, b.add(b.mul(c, stride), ir.Constant(I64, 8 * j)))
                    b.store(combine(b, r, b.load(acc), b.load(at, typ=t)), acc)
                env[r.eqn.out] = self._finish(b, r, b.load(acc))
            self.emit(b, "kept", env, ptrs, {})
            self.store_outputs(b, "kept", env, ptrs, [])

    def _scalar_kernel(self, b, args, arena):
        ptrs = self.pointers(b, args, arena)
        env: dict = {}
        for scope in ("scalar", "full"):
            self.emit(b, scope, env, ptrs, {})
        for r in self.reductions:                      # reductions of rank-0 values
            env[r.eqn.out] = env[r.eqn.inputs[0]]
        self.emit(b, "kept", env, ptrs, {})
        for v in self.k.outputs:
            self.mb.store(b, env[v], ptrs[v], ir.Constant(I64, 0), v.type.dtype)

    def _finish(self, b, r: Reduction, value):
        """The reduction's result from its accumulator (float64 sums of float32 round once)."""
        if r.acc_dtype != r.eqn.out.type.dtype:
            return b.fptrunc(value, REG[r.eqn.out.type.dtype], name=self.mb.name(r.eqn.out))
        return value

    def _columns(self, b: ir.IRBuilder, ptrs, env, lo, hi, arena) -> None:
        """The column-reduction loop nest over columns [lo, hi): accumulators in an array of
        the arena's scratch, of which this chunk uses elements [lo, hi)."""
        rows, cols = self.domain
        arrays = {r: self.mb.scratch(b, (self.name, r.eqn.out), arena,
                                     f"{self.mb.name(r.eqn.out)}.acc")
                  for r in self.reductions}

        def column(r, i1):
            return element(b, arrays[r], REG[r.acc_dtype], i1)

        with for_range(b, lo, hi, "i1") as i1:
            for r in arrays:
                b.store(identity(r), column(r, i1))
        with for_range(b, 0, rows, "i0") as i0:
            with for_range(b, lo, hi, "i1") as i1:
                self.emit(b, "full", env, ptrs, {0: i0, 1: i1})
                for r in arrays:
                    self.accumulate(b, r, env, column(r, i1))
                self.store_outputs(b, "full", env, ptrs, [i0, i1])
        with for_range(b, lo, hi, "i1") as i1:
            for r in arrays:
                env[r.eqn.out] = self._finish(b, r, b.load(column(r, i1), typ=REG[r.acc_dtype]))
            self.emit(b, "kept", env, ptrs, {1: i1})
            self.store_outputs(b, "kept", env, ptrs, [i1])

    def _chunk_function(self) -> ir.Function:
        """`void kN.chunk(args, arena, lo, hi, partial, status)`: the loop nest with its
        outermost loop restricted to [lo, hi)."""
        fn = ir.Function(self.mb.module, CHUNK_TYPE, f"{self.name}.chunk")
        fn.linkage = "internal"
        args, arena, lo, hi, partial, status = fn.args
        for a, n in zip(fn.args, ("args", "arena", "lo", "hi", "partial", "status")):
            a.name = n
        for a in (args, arena, partial):
            a.add_attribute("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        ptrs = self.pointers(b, args, arena)
        env: dict = {}
        self.emit(b, "scalar", env, ptrs, {})
        if self.columns:
            self._columns(b, ptrs, env, lo, hi, arena)
            b.ret_void()
            return fn
        index: dict[int, ir.Value] = {}
        accs = {}

        def reduce_loops(level: int):
            axes = self.reduce_axes
            if level == len(axes):
                self.emit(b, "full", env, ptrs, index)
                for r in self.reductions:
                    self.accumulate(b, r, env, accs[r])
                self.store_outputs(b, "full", env, ptrs,
                                   [index[d] for d in range(len(self.domain))])
                return
            d = axes[level]
            start, stop = (lo, hi) if (not self.kept_axes and level == 0) else \
                (ir.Constant(I64, 0), ir.Constant(I64, self.domain[d]))
            blocked = [r for r in self.reductions if r.eqn.prim is P.reduce_sum
                       and r.eqn.out.type.dtype == "f64"]
            if level == len(axes) - 1 and blocked and self.domain[d] > SUM_BLOCK:
                # Blocked float64 sums: each block's partial sum joins the total once.
                with for_range(b, start, stop, f"i{d}.block", step=SUM_BLOCK) as blk:
                    outer = {r: accs[r] for r in blocked}
                    for r in blocked:
                        accs[r] = self.fresh_accumulator(b, r, "block")
                    end = b.add(blk, ir.Constant(I64, SUM_BLOCK))
                    end = b.select(b.icmp_signed("<", end, stop), end, stop)
                    with for_range(b, blk, end, f"i{d}") as i:
                        index[d] = i
                        reduce_loops(level + 1)
                    for r in blocked:
                        b.store(combine(b, r, b.load(outer[r]), b.load(accs[r])), outer[r])
                        accs[r] = outer[r]
                return
            with for_range(b, start, stop, f"i{d}") as i:
                index[d] = i
                reduce_loops(level + 1)

        def kept_loops(level: int):
            if level == len(self.kept_axes):
                for r in self.reductions:
                    accs[r] = self.fresh_accumulator(b, r, "acc")
                if self.reduce_axes:
                    reduce_loops(0)
                else:
                    self.emit(b, "full", env, ptrs, index)
                    self.store_outputs(b, "full", env, ptrs,
                                       [index[d] for d in range(len(self.domain))])
                    return
                if self.full_reduction:
                    for j, r in enumerate(self.reductions):
                        b.store(b.load(accs[r]), element(b, partial, I8, ir.Constant(I64, 8 * j)))
                    return
                for r in self.reductions:
                    env[r.eqn.out] = self._finish(b, r, b.load(accs[r]))
                kept_index = {d: index[d] for d in self.kept_axes}
                self.emit(b, "kept", env, ptrs, kept_index)
                self.store_outputs(b, "kept", env, ptrs, [index[d] for d in self.kept_axes])
                return
            d = self.kept_axes[level]
            start, stop = (lo, hi) if level == 0 else \
                (ir.Constant(I64, 0), ir.Constant(I64, self.domain[d]))
            with for_range(b, start, stop, f"i{d}") as i:
                index[d] = i
                kept_loops(level + 1)

        kept_loops(0)
        b.ret_void()
        return fn


# ---------------------------------------------------------------------------------------------
# dots


class DotLowering(DotPlan):
    """A `dot` kernel on the CPU: its plan (`lowering.DotPlan`) emitted as prologue and copy
    loops, the product (a BLAS call or loops) and the epilogue loop."""

    def emit_into(self, mb: "ModuleBuilder", b: ir.IRBuilder, driver_args) -> None:
        args, arena, nthreads, status = driver_args
        for loop in self.prologue_kernels() + self.copy_kernels(mb.names):
            LoopNest(mb, loop).emit_into(b, driver_args)
        if self.dot.out.type.size:
            self._product(mb, b, args, arena, *self.mats, self.dot.out)
        ep = self.epilogue_kernel()
        if ep is not None:
            LoopNest(mb, ep).emit_into(b, driver_args)

    def _product(self, mb, b, args, arena, A: Matrix, B: Matrix, out: Var) -> None:
        dt = out.type.dtype
        M, K, N = A.rows, A.cols, B.cols
        pa = mb.buffer(b, A.src, args, arena)
        pb = mb.buffer(b, B.src, args, arena)
        pc = mb.buffer(b, out, args, arena)
        with for_range(b, 0, math.prod(A.batch), "batch") as bi:
            oa = self._batch_offset(b, bi, A.batch, A.batch_strides, A.offset)
            ob = self._batch_offset(b, bi, B.batch, B.batch_strides, B.offset)
            oc = b.mul(bi, ir.Constant(I64, M * N))
            t = MEM[dt]
            a0 = element(b, pa, t, oa, "a")
            b0 = element(b, pb, t, ob, "b")
            c0 = element(b, pc, t, oc, "c")
            if self.blas and K > 0:
                self._gemm_call(mb, b, dt, A, B, M, N, K, a0, b0, c0)
            else:
                self._gemm_loops(mb, b, dt, A, B, M, N, K, a0, b0, c0)

    @staticmethod
    def _batch_offset(b, bi, sizes, strides, offset) -> ir.Value:
        """offset + Σ strides·(the batch multi-index of flat batch index bi)."""
        acc = ir.Constant(I64, offset)
        rest = bi
        for n, s in reversed(list(zip(sizes, strides))):
            i = b.srem(rest, ir.Constant(I64, n))
            rest = b.sdiv(rest, ir.Constant(I64, n))
            acc = b.add(acc, b.mul(i, ir.Constant(I64, s)))
        return acc

    @staticmethod
    def _gemm_call(mb, b, dt, A, B, M, N, K, a0, b0, c0) -> None:
        """cblas_?gemm(RowMajor, transA, transB, M, N, K, 1, A, lda, B, ldb, 0, C, N)."""
        t, tp = REG[dt], PTR
        name = BLAS_SYMBOLS[dt]
        fn = mb.module.globals.get(name)
        if fn is None:
            fn = ir.Function(mb.module, ir.FunctionType(
                VOID, [I32, I32, I32, I64, I64, I64, t, tp, I64, tp, I64, t, tp, I64]), name)
        ta, lda = A.blas_layout()
        tb, ldb = B.blas_layout()
        c = lambda v: ir.Constant(I64, v)  # noqa: E731
        b.call(fn, [ir.Constant(I32, 101), ir.Constant(I32, 112 if ta else 111),
                    ir.Constant(I32, 112 if tb else 111), c(M), c(N), c(K),
                    ir.Constant(t, 1.0), a0, c(lda), b0, c(ldb), ir.Constant(t, 0.0), c0,
                    c(max(N, 1))])

    @staticmethod
    def _gemm_loops(mb, b, dt, A, B, M, N, K, a0, b0, c0) -> None:
        """C = A·B by loops in (m, k, n) order: C's row is zeroed, then k rows of B added."""
        def at(row, col, mat):
            return b.add(b.mul(row, ir.Constant(I64, mat.row_stride)),
                         b.mul(col, ir.Constant(I64, mat.col_stride)))

        with for_range(b, 0, M, "m") as m:
            row = b.mul(m, ir.Constant(I64, N))
            with for_range(b, 0, N, "n") as n:
                mb.store(b, constant(dt, 0), c0, b.add(row, n), dt)
            with for_range(b, 0, K, "k") as kk:
                a = mb.load(b, a0, at(m, kk, A), dt, "a.mk")
                with for_range(b, 0, N, "n") as n:
                    bv = mb.load(b, b0, at(kk, n, B), dt, "b.kn")
                    where = b.add(row, n)
                    cv = mb.load(b, c0, where, dt, "c.mn")
                    if dt == "bool":
                        new = b.or_(cv, b.and_(a, bv))
                    elif is_float(dt):
                        new = b.fadd(cv, b.fmul(a, bv), flags=("contract",))
                    else:
                        new = b.add(cv, b.mul(a, bv))
                    mb.store(b, new, c0, where, dt)


# ---------------------------------------------------------------------------------------------
# gather, scatter-add, concatenate, pad, argmax, argmin


@contextmanager
def _nest(b: ir.IRBuilder, shape, prefix="i"):
    """Loops over every index of `shape`, row-major; yields the list of i64 indices."""
    with ExitStack() as stack:
        yield [stack.enter_context(for_range(b, 0, n, f"{prefix}{d}"))
               for d, n in enumerate(shape)]


def _read(mb: ModuleBuilder, b, ptrs, ld: Load, idx) -> ir.Value:
    return mb.load(b, ptrs[ld.src], mb.affine(b, ld.imap, idx), ld.dst.type.dtype,
                   mb.name(ld.dst))


def _value(mb: ModuleBuilder, b, ptrs, loads, a, idx) -> ir.Value:
    """Atom `a` at index `idx`: a literal's constant, or the element its load reads."""
    if isinstance(a, Var):
        return _read(mb, b, ptrs, loads[a], idx)
    return constant(a.type.dtype, a.value)


def _checked_indices(mb, b, ptrs, loads, s_idx, x_shape, status, indices):
    """The wrapped, bounds-checked indices of gather/scatter at point s; an out-of-bounds
    index reports [INDEX_ERROR, index, axis, size] in the status words and skips the element."""
    out = []
    ok = ir.Constant(I1, 1)
    for axis, a in enumerate(indices):
        i = _cast(b, _value(mb, b, ptrs, loads, a, s_idx), a.type.dtype, "i64")
        n = ir.Constant(I64, x_shape[axis])
        wrapped = b.select(b.icmp_signed("<", i, ir.Constant(I64, 0)), b.add(i, n), i)
        inside = b.and_(b.icmp_signed(">=", wrapped, ir.Constant(I64, 0)),
                        b.icmp_signed("<", wrapped, n))
        with b.if_then(b.not_(inside), likely=False):
            _report(b, status, (ir.Constant(I64, INDEX_ERROR), i, ir.Constant(I64, axis), n))
        ok = b.and_(ok, inside)
        out.append(b.select(inside, wrapped, ir.Constant(I64, 0)))
    return out, ok


def _gather(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    x, *idx = e.inputs
    xl = loads[x]
    out = e.out
    ns = len(idx[0].type.shape)
    with _nest(b, out.type.shape) as ii:
        where, ok = _checked_indices(mb, b, ptrs, loads, ii[:ns], x.type.shape, status, idx)
        point = where + ii[ns:]
        with b.if_then(ok):
            value = _read(mb, b, ptrs, xl, point)
            mb.store(b, value, ptrs[out], mb.affine(b, IndexMap.contiguous(out.type.shape), ii),
                     out.type.dtype)


def _scatter_add(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    x, *idx, upd = e.inputs
    out = e.out
    dt = out.type.dtype
    full = IndexMap.contiguous(out.type.shape)
    with _nest(b, out.type.shape) as ii:
        mb.store(b, _value(mb, b, ptrs, loads, x, ii), ptrs[out], mb.affine(b, full, ii), dt)
    ns = len(idx[0].type.shape)
    with _nest(b, upd.type.shape, "s") as ss:
        where, ok = _checked_indices(mb, b, ptrs, loads, ss[:ns], out.type.shape, status, idx)
        with b.if_then(ok):
            at = mb.affine(b, full, where + ss[ns:])
            u = _value(mb, b, ptrs, loads, upd, ss)
            old = mb.load(b, ptrs[out], at, dt, "old")
            mb.store(b, binary(b, P.add, old, u, dt), ptrs[out], at, dt)


def _concatenate(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    out = e.out
    axis = e.params["axis"]
    full = IndexMap.contiguous(out.type.shape)
    start = 0
    for a in e.inputs:
        with _nest(b, a.type.shape) as ii:
            value = _read(mb, b, ptrs, loads[a], ii)
            at = list(ii)
            at[axis] = b.add(at[axis], ir.Constant(I64, start))
            mb.store(b, value, ptrs[out], mb.affine(b, full, at), out.type.dtype)
        start += a.type.shape[axis]


def _pad(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    x, value = e.inputs
    out = e.out
    dt = out.type.dtype
    fill = _value(mb, b, ptrs, loads, value, [])
    full = IndexMap.contiguous(out.type.shape)
    with _nest(b, out.type.shape) as ii:
        mb.store(b, fill, ptrs[out], mb.affine(b, full, ii), dt)
    target = full.slice(e.params["starts"], e.params["steps"], x.type.shape)
    with _nest(b, x.type.shape) as ii:
        mb.store(b, _value(mb, b, ptrs, loads, x, ii), ptrs[out], mb.affine(b, target, ii), dt)


def _arg_reduce(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    (x,) = e.inputs
    out = e.out
    dt = x.type.dtype
    axis = e.params["axis"]
    is_max = e.prim is P.argmax
    kept = [n for d, n in enumerate(x.type.shape) if d != axis]
    best = _alloca_entry(b, REG[dt], "best")
    at = _alloca_entry(b, I64, "best.at")
    with _nest(b, kept) as kk:
        point = list(kk)
        point.insert(axis, ir.Constant(I64, 0))
        b.store(_read(mb, b, ptrs, loads[x], point), best)
        b.store(ir.Constant(I64, 0), at)
        with for_range(b, 1, x.type.shape[axis], "j") as j:
            point = list(kk)
            point.insert(axis, j)
            v = _read(mb, b, ptrs, loads[x], point)
            cur = b.load(best)
            # The first extreme wins; the first NaN wins over everything (NumPy).
            if is_float(dt):
                cur_nan = b.fcmp_unordered("uno", cur, cur)
                better = b.or_(_fcmp(b, ">" if is_max else "<", v, cur),
                               b.fcmp_unordered("uno", v, v))
                better = b.and_(better, b.not_(cur_nan))
            elif dt == "bool":
                better = b.icmp_unsigned(">" if is_max else "<", v, cur)
            else:
                better = b.icmp_signed(">" if is_max else "<", v, cur)
            b.store(b.select(better, v, cur), best)
            b.store(b.select(better, j, b.load(at)), at)
        mb.store(b, b.load(at), ptrs[out], mb.affine(b, IndexMap.contiguous(tuple(kept)), kk),
                 "i64")


# ---------------------------------------------------------------------------------------------
# cumsum, cumprod, sort, argsort: each line along one axis


def _cumulative(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """out[.., j, ..] = out[.., j - 1, ..] op x[.., j, ..], in row-major order over the output:
    each line's previous element is written before it is read, and lines along a leading axis
    run as whole rows. In x's dtype and in order, as NumPy accumulates."""
    (x,) = e.inputs
    out = e.out
    dt = out.type.dtype
    axis = e.params["axis"]
    op = P.add if e.prim is P.cumsum else P.mul
    full = IndexMap.contiguous(out.type.shape)
    with _nest(b, out.type.shape) as ii:
        v = _value(mb, b, ptrs, loads, x, ii)
        first = b.icmp_signed("==", ii[axis], ir.Constant(I64, 0))
        before = list(ii)
        # At j = 0 this reads out[.., 0, ..] itself: in bounds, and not used.
        before[axis] = b.select(first, ii[axis], b.sub(ii[axis], ir.Constant(I64, 1)))
        prev = mb.load(b, ptrs[out], mb.affine(b, full, before), dt, "prev")
        mb.store(b, b.select(first, v, binary(b, op, prev, v, dt)), ptrs[out],
                 mb.affine(b, full, ii), dt)


RADIX_BITS = 11                # the digit of the sort's passes: 2048 counts each (3 passes
                               # for 32-bit keys: fewer passes over the line beat counts in L1)


def _sort_key(b: ir.IRBuilder, v, dt: str) -> ir.Value:
    """The unsigned sort key of element v (codegen.lowering's sort keys)."""
    bits = sort_key_bits(dt)
    kt = ir.IntType(bits)
    if dt == "bool":
        return b.zext(v, kt)
    sign = ir.Constant(kt, 1 << (bits - 1))
    if not is_float(dt):
        return b.xor(v, sign)
    raw = b.select(_fcmp(b, "==", v, constant(dt, 0)), ir.Constant(kt, 0), b.bitcast(v, kt))
    key = b.xor(raw, b.or_(b.ashr(raw, ir.Constant(kt, bits - 1)), sign))
    return b.select(b.fcmp_unordered("uno", v, v), ir.Constant(kt, -1), key, name="key")


def _sort_key_of_bits(b: ir.IRBuilder, bits, dt: str) -> ir.Value:
    """_sort_key of the float whose bits these are, in integer operations: the sign-magnitude
    order made unsigned (negative values' bits inverted), -0.0 as 0.0, NaN above all."""
    kt = bits.type
    w = kt.width
    sign = ir.Constant(kt, 1 << (w - 1))
    key = b.xor(bits, b.or_(b.ashr(bits, ir.Constant(kt, w - 1)), sign))
    key = b.select(b.icmp_unsigned("==", key, ir.Constant(kt, (1 << (w - 1)) - 1)), sign, key)
    inf = ir.Constant(kt, 0x7FF0000000000000 if w == 64 else 0x7F800000)
    magnitude = b.and_(bits, ir.Constant(kt, (1 << (w - 1)) - 1))
    return b.select(b.icmp_unsigned(">", magnitude, inf), ir.Constant(kt, -1), key)


def _sort_layout(e: Eqn):
    """(length, key type, position type, passes) of a sort or argsort's lines."""
    x = e.inputs[0]
    n = x.type.shape[e.params["axis"]]
    bits = sort_key_bits(x.type.dtype)
    return n, ir.IntType(bits), I32 if n < 2 ** 31 else I64, -(-bits // RADIX_BITS)


def _moves_values(e: Eqn) -> bool:
    """Whether the sort moves the values themselves (their bits, the key computed from them
    on each pass): sort does, which needs no positions and no gather at the end; argsort
    moves the keys and the positions."""
    return e.prim is P.sort and e.inputs[0].type.dtype != "bool"


def _sort_scratch(e: Eqn) -> list[tuple[str, int]]:
    """One line's keys (or values) and positions, twice (each pass moves them from one copy
    to the other), and every pass's digit counts; the lines are sorted one after another."""
    n, kt, pt, passes = _sort_layout(e)
    keys = [("keys0", n * kt.width // 8), ("keys1", n * kt.width // 8)]
    index = [] if _moves_values(e) else [("index0", n * pt.width // 8),
                                         ("index1", n * pt.width // 8)]
    return keys + index + [("counts", pt.width // 8 * passes << RADIX_BITS)]


def _sort(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """sort and argsort: a least-significant-digit radix sort of each line's keys, with the
    positions alongside (argsort) or of the values' bits, whose keys each pass computes
    again (sort); a pass whose digit is the same for the whole line is skipped. The
    positions are argsort's result."""
    (x,) = e.inputs
    out = e.out
    axis = e.params["axis"]
    n, kt, pt, passes = _sort_layout(e)
    if n == 0:
        return
    dt = x.type.dtype
    values = _moves_values(e)
    size = ir.Constant(pt, n)       # counts and places are positions' type: more stay in L1
    mask = ir.Constant(kt, (1 << RADIX_BITS) - 1)
    counts = ptrs["counts"]
    copies = {"keys": [ptrs["keys0"], ptrs["keys1"]]}
    if not values:
        copies["index"] = [ptrs["index0"], ptrs["index1"]]
    where = {(what, i): _alloca_entry(b, PTR, f"{what}.{'from' if i == 0 else 'to'}")
             for what in copies for i in (0, 1)}
    offset = _alloca_entry(b, pt, "offset")
    kept = [m for d, m in enumerate(x.type.shape) if d != axis]
    floats = is_float(dt)

    def bits_of(v):                 # a value as the integer its memory holds
        return b.bitcast(v, kt) if floats else v

    def value_of(bits):
        return b.bitcast(bits, REG[dt]) if floats else bits

    def key_of(stored):             # the key of what the copies hold
        if not values:
            return stored
        return _sort_key_of_bits(b, stored, dt) if floats else _sort_key(b, stored, dt)

    def count(p: int, k) -> ir.Value:
        d = b.and_(b.lshr(k, ir.Constant(kt, RADIX_BITS * p)), mask)
        d = b.zext(d, I64) if kt.width < 64 else d
        return element(b, counts, pt, b.add(ir.Constant(I64, p << RADIX_BITS), d))

    def increment(at) -> ir.Value:
        old = b.load(at, typ=pt)
        b.store(b.add(old, ir.Constant(pt, 1)), at)
        return old

    full = IndexMap.contiguous(out.type.shape)
    # Sorting values along the last axis, the passes alternate between a scratch copy and the
    # output line itself, arranged so that the last pass writes the output: no final copy
    # (unless a pass is skipped).
    direct = values and axis == x.type.ndim - 1
    with _nest(b, kept, "l") as ll:
        def point(j):
            p = list(ll)
            p.insert(axis, j)
            return p

        pair = copies["keys"]
        if direct:
            line = element(b, ptrs[out], MEM[dt], mb.affine(b, full, point(ir.Constant(I64, 0))))
            pair = [line, pair[0]] if passes % 2 == 0 else [pair[0], line]
        with for_range(b, 0, passes << RADIX_BITS, "c") as c:
            b.store(ir.Constant(pt, 0), element(b, counts, pt, c))
        # One read of the line: its keys (or values), its positions and every pass's counts.
        with for_range(b, 0, n, "j") as j:
            v = _read(mb, b, ptrs, loads[x], point(j))
            k = key_of(bits_of(v)) if values else _sort_key(b, v, dt)
            b.store(bits_of(v) if values else k, element(b, pair[0], kt, j))
            if not values:
                b.store(b.trunc(j, pt) if pt is I32 else j,
                        element(b, copies["index"][0], pt, j))
            for p in range(passes):
                increment(count(p, k))
        for i in (0, 1):
            b.store(pair[i], where["keys", i])
            if not values:
                b.store(copies["index"][i], where["index", i])
        for p in range(passes):
            src_k, dst_k = (b.load(where["keys", i], typ=PTR) for i in (0, 1))
            if not values:
                src_i, dst_i = (b.load(where["index", i], typ=PTR) for i in (0, 1))
            first = key_of(b.load(element(b, src_k, kt, ir.Constant(I64, 0)), typ=kt))
            with b.if_then(b.icmp_signed("!=", b.load(count(p, first), typ=pt), size)):
                # The digit's counts become its first places (exclusive prefix sums) ...
                b.store(ir.Constant(pt, 0), offset)
                with for_range(b, 0, 1 << RADIX_BITS, "d") as d:
                    at = element(b, counts, pt, b.add(ir.Constant(I64, p << RADIX_BITS), d))
                    c = b.load(at, typ=pt)
                    b.store(b.load(offset, typ=pt), at)
                    b.store(b.add(b.load(offset, typ=pt), c), offset)
                # ... and each key, in order, goes to the next place of its digit: stable.
                with for_range(b, 0, n, "j") as j:
                    stored = b.load(element(b, src_k, kt, j), typ=kt)
                    to = increment(count(p, key_of(stored)))
                    b.store(stored, element(b, dst_k, kt, to))
                    if not values:
                        b.store(b.load(element(b, src_i, pt, j), typ=pt),
                                element(b, dst_i, pt, to))
                for w in copies:
                    src, dst = (b.load(where[w, i], typ=PTR) for i in (0, 1))
                    b.store(dst, where[w, 0])
                    b.store(src, where[w, 1])
        order = b.load(where["keys" if values else "index", 0], typ=PTR)
        moved = b.icmp_unsigned("!=", order, line) if direct else ir.Constant(I1, 1)
        with b.if_then(moved), for_range(b, 0, n, "j") as j:
            if values:
                value = value_of(b.load(element(b, order, kt, j), typ=kt))
            else:
                i = b.load(element(b, order, pt, j), typ=pt)
                i = b.zext(i, I64) if pt is I32 else i
                value = i if e.prim is P.argsort else _read(mb, b, ptrs, loads[x], point(i))
            mb.store(b, value, ptrs[out], mb.affine(b, full, point(j)), out.type.dtype)


# ---------------------------------------------------------------------------------------------
# linear algebra: LAPACK's routines (LAPACKE, row-major, ILP64) from NumPy's bundled OpenBLAS,
# on each matrix of the stack; their failures are reported as LINALG_ERROR

LAPACK_ROW_MAJOR, LAPACK_COL_MAJOR = 101, 102

#: routine → its LAPACKE argument types after the layout; each returns LAPACK's info.
LAPACK_ROUTINES = {
    "potrf": [I8, I64, PTR, I64],                               # uplo n a lda
    "trtrs": [I8, I8, I8, I64, I64, PTR, I64, PTR, I64],  # uplo trans diag n nrhs a lda b ldb
    "gesv": [I64, I64, PTR, I64, PTR, PTR, I64],                # n nrhs a lda ipiv b ldb
    "getrf": [I64, I64, PTR, I64, PTR],                         # m n a lda ipiv
    "getrs": [I8, I64, I64, PTR, I64, PTR, PTR, I64],           # trans n nrhs a lda ipiv b ldb
    "syevd": [I8, I8, I64, PTR, I64, PTR],                      # jobz uplo n a lda w
    "gesdd": [I8, I64, I64, PTR, I64, PTR, PTR, I64, PTR, I64],  # jobz m n a lda s u ldu vt ldvt
    "geqrf": [I64, I64, PTR, I64, PTR],                         # m n a lda tau
    "orgqr": [I64, I64, I64, PTR, I64, PTR],                    # m n k a lda tau
}


def _lapack(mb: ModuleBuilder, b, routine: str, dt: str, args,
            layout: int = LAPACK_ROW_MAJOR) -> ir.Value:
    """info = LAPACKE_<s|d><routine>(layout, *args): chars are i8, integers i64. (In the
    row-major layout LAPACKE transposes each matrix in and out.)"""
    name = f"tj_lapacke_{'s' if dt == 'f32' else 'd'}{routine}"
    fn = mb.module.globals.get(name)
    if fn is None:
        fn = ir.Function(mb.module, ir.FunctionType(I64, [I32] + LAPACK_ROUTINES[routine]), name)
    args = [ir.Constant(I8, ord(a)) if isinstance(a, str) else
            ir.Constant(I64, a) if isinstance(a, int) else a for a in args]
    return b.call(fn, [ir.Constant(I32, layout)] + args, name=f"{routine}.info")


def _copy_in(mb: ModuleBuilder, b, ptrs, loads, a, dst, shape, rows: int = 0) -> None:
    """dst[m, rows + i, j] = a[m, i, j]: operand `a` (any view) as contiguous matrices of
    `shape`'s last two axes, each with `rows` more rows ahead of it in dst."""
    *batch, n, k = shape
    to = IndexMap.contiguous(tuple(batch) + (n + rows, k))
    with _nest(b, shape) as ii:
        at = ii[:-2] + [b.add(ii[-2], ir.Constant(I64, rows)), ii[-1]]
        mb.store(b, _value(mb, b, ptrs, loads, a, ii), dst, mb.affine(b, to, at),
                 a.type.dtype)


def _each_matrix(b, shape, rows: int = 0):
    """Loops over the matrices of a stack of `shape`; yields (m, the element offset of matrix
    m in a contiguous stack whose matrices have `rows` more rows)."""
    *batch, n, k = shape
    return _offsets(b, math.prod(batch), (n + rows) * k)


@contextmanager
def _offsets(b, count: int, size: int):
    with for_range(b, 0, count, "m") as m:
        yield m, b.mul(m, ir.Constant(I64, size))


def _failed(b, status, info, kind: int, m) -> None:
    """Report LAPACK's failure (info != 0) as LINALG_ERROR of `kind`."""
    with b.if_then(b.icmp_signed("!=", info, ir.Constant(I64, 0)), likely=False):
        _report(b, status, (ir.Constant(I64, LINALG_ERROR), ir.Constant(I64, kind), info, m))


def _matrix(b, ptr, dt: str, offset) -> ir.Value:
    return element(b, ptr, MEM[dt], offset)


def _cholesky(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """potrf of a's lower triangle, in the output; the upper triangle is then zeroed."""
    (a,) = e.inputs
    out, dt = e.out, e.out.type.dtype
    n = out.type.shape[-1]
    _copy_in(mb, b, ptrs, loads, a, ptrs[out], out.type.shape)
    with _each_matrix(b, out.type.shape) as (m, at):
        info = _lapack(mb, b, "potrf", dt, ["L", n, _matrix(b, ptrs[out], dt, at), n])
        _failed(b, status, info, NOT_POSITIVE_DEFINITE, m)
    full = IndexMap.contiguous(out.type.shape)
    with _nest(b, out.type.shape) as ii:
        with b.if_then(b.icmp_signed("<", ii[-2], ii[-1])):
            mb.store(b, constant(dt, 0.0), ptrs[out], mb.affine(b, full, ii), dt)


def _triangular_solve(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """trtrs of a's triangle (copied: a may be a view) with the right-hand sides in the
    output."""
    a, rhs = e.inputs
    out, dt = e.out, e.out.type.dtype
    n, k = out.type.shape[-2:]
    _copy_in(mb, b, ptrs, loads, a, ptrs["a"], a.type.shape)
    _copy_in(mb, b, ptrs, loads, rhs, ptrs[out], out.type.shape)
    uplo, trans = "L" if e.params["lower"] else "U", "T" if e.params["transpose"] else "N"
    with _each_matrix(b, out.type.shape) as (m, at):
        aa = _matrix(b, ptrs["a"], dt, b.mul(m, ir.Constant(I64, n * n)))
        info = _lapack(mb, b, "trtrs", dt, [uplo, trans, "N", n, k, aa, n,
                                            _matrix(b, ptrs[out], dt, at), k])
        _failed(b, status, info, SINGULAR, m)


def _solve(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """getrf and getrs, column-major: the copy of a is factorised as the column-major matrix
    it also is, aᵀ = P L U, and getrs('T') solves (aᵀ)ᵀ x = b. A right-hand side of one column
    is the same in both layouts; wider ones are transposed through the scratch and back
    (LAPACKE's row-major interface would copy every matrix through the heap, which at 16 × 16
    costs as much as the solve)."""
    a, rhs = e.inputs
    out, dt = e.out, e.out.type.dtype
    n, k = out.type.shape[-2:]
    _copy_in(mb, b, ptrs, loads, a, ptrs["a"], a.type.shape)
    _copy_in(mb, b, ptrs, loads, rhs, ptrs[out], out.type.shape)
    with _each_matrix(b, out.type.shape) as (m, at):
        aa = _matrix(b, ptrs["a"], dt, b.mul(m, ir.Constant(I64, n * n)))
        info = _lapack(mb, b, "getrf", dt, [n, n, aa, n, ptrs["pivots"]], LAPACK_COL_MAJOR)
        _failed(b, status, info, SINGULAR, m)
        x = _matrix(b, ptrs[out], dt, at)
        cols = x if k == 1 else ptrs["rhs"]
        if k > 1:
            _transpose_matrix(b, x, cols, n, k, dt)
        with b.if_then(b.icmp_signed("==", info, ir.Constant(I64, 0))):
            _lapack(mb, b, "getrs", dt, ["T", n, k, aa, n, ptrs["pivots"], cols, n],
                    LAPACK_COL_MAJOR)
        if k > 1:
            _transpose_matrix(b, cols, x, k, n, dt)


def _transpose_matrix(b, src, dst, rows: int, cols: int, dt: str) -> None:
    """dst (cols × rows, row-major) = srcᵀ (src: rows × cols, row-major)."""
    t = MEM[dt]
    with for_range(b, 0, rows, "r") as r, for_range(b, 0, cols, "c") as c:
        v = b.load(element(b, src, t, b.add(b.mul(r, ir.Constant(I64, cols)), c)), typ=t)
        b.store(v, element(b, dst, t, b.add(b.mul(c, ir.Constant(I64, rows)), r)))


def _slogdet(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """getrf of a copy of a; the sign is the product of the pivots' signs and the row swaps',
    log|det| the sum of log|pivot| (0 and -inf where a pivot is exactly 0, as NumPy). The
    copy is factorised as the column-major matrix it also is, aᵀ, which has a's
    determinant: LAPACKE then transposes nothing."""
    (a,) = e.inputs
    out, dt = e.out, e.out.type.dtype
    n = a.type.shape[-1]
    _copy_in(mb, b, ptrs, loads, a, ptrs["a"], a.type.shape)
    sign, logdet = _alloca_entry(b, REG[dt], "sign"), _alloca_entry(b, REG[dt], "logdet")
    with _each_matrix(b, a.type.shape) as (m, at):
        aa = _matrix(b, ptrs["a"], dt, at)
        info = _lapack(mb, b, "getrf", dt, [n, n, aa, n, ptrs["pivots"]], LAPACK_COL_MAJOR)
        # info > 0 is an exact zero pivot: a singular matrix, not an error.
        with b.if_then(b.icmp_signed("<", info, ir.Constant(I64, 0)), likely=False):
            _report(b, status, (ir.Constant(I64, LINALG_ERROR), ir.Constant(I64, SINGULAR),
                                info, m))
        b.store(constant(dt, 1.0), sign)
        b.store(constant(dt, 0.0), logdet)
        with for_range(b, 0, n, "i") as i:
            d = b.load(element(b, aa, MEM[dt], b.mul(i, ir.Constant(I64, n + 1))), typ=REG[dt])
            pivot = b.load(element(b, ptrs["pivots"], I64, i), typ=I64)      # 1-based
            swapped = b.icmp_signed("!=", pivot, b.add(i, ir.Constant(I64, 1)))
            # -1, 0 or 1 by comparisons, as NumPy's: a NaN pivot leaves the sign alone.
            s = b.select(_fcmp(b, "<", d, constant(dt, 0.0)), constant(dt, -1.0),
                         b.select(_fcmp(b, "==", d, constant(dt, 0.0)), constant(dt, 0.0),
                                  constant(dt, 1.0)))
            s = b.select(swapped, b.fneg(s), s)
            b.store(b.fmul(b.load(sign, typ=REG[dt]), s), sign)
            b.store(b.fadd(b.load(logdet, typ=REG[dt]), UNARY[P.log](b, _abs(b, d, dt), dt)),
                    logdet)
        s = b.load(sign, typ=REG[dt])
        s = b.select(_fcmp(b, "==", s, constant(dt, 0.0)), constant(dt, 0.0), s)   # not -0.0
        for j, v in enumerate((s, b.load(logdet, typ=REG[dt]))):
            mb.store(b, v, ptrs[out], b.add(b.mul(m, ir.Constant(I64, 2)), ir.Constant(I64, j)),
                     dt)


def _eigh(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """syevd of a copy of a (its lower triangle) in rows 1..n of each output matrix, which
    become the eigenvectors; the eigenvalues go to row 0."""
    (a,) = e.inputs
    out, dt = e.out, e.out.type.dtype
    n = a.type.shape[-1]
    _copy_in(mb, b, ptrs, loads, a, ptrs[out], a.type.shape, rows=1)
    with _each_matrix(b, a.type.shape, rows=1) as (m, at):
        w = _matrix(b, ptrs[out], dt, at)
        vectors = _matrix(b, ptrs[out], dt, b.add(at, ir.Constant(I64, n)))
        info = _lapack(mb, b, "syevd", dt, ["V", "L", n, vectors, n, w])
        _failed(b, status, info, NO_CONVERGENCE, m)


def _svd(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """gesdd of a copy of a, writing U, the singular values and Vᵀ straight into their rows
    of the packed output (zeroed first: the packing has unused entries)."""
    (a,) = e.inputs
    out, dt = e.out, e.out.type.dtype
    m, n = a.type.shape[-2:]
    k, ku, kv, width = P._svd_layout(a.type.shape, e.params["full"])
    rows = m + 1 + kv
    _copy_in(mb, b, ptrs, loads, a, ptrs["a"], a.type.shape)
    full = IndexMap.contiguous(out.type.shape)
    with _nest(b, out.type.shape) as ii:
        mb.store(b, constant(dt, 0.0), ptrs[out], mb.affine(b, full, ii), dt)
    with _offsets(b, math.prod(a.type.shape[:-2]), rows * width) as (m_, at):
        aa = _matrix(b, ptrs["a"], dt, b.mul(m_, ir.Constant(I64, m * n)))
        u = _matrix(b, ptrs[out], dt, at)
        s = _matrix(b, ptrs[out], dt, b.add(at, ir.Constant(I64, m * width)))
        vt = _matrix(b, ptrs[out], dt, b.add(at, ir.Constant(I64, (m + 1) * width)))
        info = _lapack(mb, b, "gesdd", dt, ["A" if e.params["full"] else "S", m, n, aa, n, s,
                                            u, width, vt, width])
        _failed(b, status, info, SVD_NO_CONVERGENCE, m_)


def _qr(mb: ModuleBuilder, b, e: Eqn, loads, ptrs, status):
    """geqrf of a copy of a: R is its upper triangle (copied out), then orgqr turns the
    reflectors into Q's k columns (copied out). The scratch "pivots" holds the k scalars tau."""
    (a,) = e.inputs
    out, dt = e.out, e.out.type.dtype
    m, n = a.type.shape[-2:]
    k = min(m, n)
    width = out.type.shape[-1]
    _copy_in(mb, b, ptrs, loads, a, ptrs["a"], a.type.shape)
    full = IndexMap.contiguous(out.type.shape)
    with _nest(b, out.type.shape) as ii:
        mb.store(b, constant(dt, 0.0), ptrs[out], mb.affine(b, full, ii), dt)
    c = lambda v: ir.Constant(I64, v)  # noqa: E731

    def copy(src, dst, rows: int, cols: int, first_row: int, upper: bool) -> None:
        with for_range(b, 0, rows, "i") as i:
            with for_range(b, i if upper else 0, cols, "j") as j:
                v = b.load(element(b, src, MEM[dt], b.add(b.mul(i, c(n)), j)), typ=MEM[dt])
                b.store(v, element(b, dst, MEM[dt], b.add(b.mul(b.add(i, c(first_row)),
                                                                c(width)), j)))

    with _offsets(b, math.prod(a.type.shape[:-2]), (m + k) * width) as (mat, at):
        aa = _matrix(b, ptrs["a"], dt, b.mul(mat, c(m * n)))
        o = _matrix(b, ptrs[out], dt, at)
        info = _lapack(mb, b, "geqrf", dt, [m, n, aa, n, ptrs["pivots"]])
        _failed(b, status, info, SINGULAR, mat)
        copy(aa, o, k, n, m, upper=True)
        info = _lapack(mb, b, "orgqr", dt, [m, k, k, aa, n, ptrs["pivots"]])
        _failed(b, status, info, SINGULAR, mat)
        copy(aa, o, m, k, 0, upper=False)


def _linalg_scratch(e: Eqn) -> list[tuple[str, int]]:
    """A copy of the matrices LAPACK overwrites, and one matrix's pivots (and for solve, one
    matrix of right-hand sides in columns)."""
    a = e.inputs[0]
    scratch = [("a", a.type.nbytes), ("pivots", 8 * max(a.type.shape[-1], 1))]
    if e.prim is P.solve:
        n, k = e.out.type.shape[-2:]
        scratch.append(("rhs", max(n * k, 1) * e.out.type.np_dtype.itemsize))
    return scratch


#: primitive → the lowering of its kernel of its own: every primitive with `own_kernel`.
OWN_KERNELS = {P.gather: _gather, P.scatter_add: _scatter_add, P.concatenate: _concatenate,
               P.pad: _pad, P.argmax: _arg_reduce, P.argmin: _arg_reduce,
               P.cumsum: _cumulative, P.cumprod: _cumulative, P.sort: _sort, P.argsort: _sort,
               P.cholesky: _cholesky, P.triangular_solve: _triangular_solve, P.solve: _solve,
               P.slogdet: _slogdet, P.eigh: _eigh, P.svd: _svd, P.qr: _qr}

#: primitive → (role, bytes) of the arena scratch its kernel of its own needs, which the
#: lowering finds in its pointers under `role`.
OWN_SCRATCH = {P.sort: _sort_scratch, P.argsort: _sort_scratch,
               P.triangular_solve: _linalg_scratch, P.solve: _linalg_scratch,
               P.slogdet: _linalg_scratch, P.svd: _linalg_scratch, P.qr: _linalg_scratch}


class Lowering:
    """A Program's lowering, in two steps: the buffer plan at once (cheap: what the runtime
    needs to call compiled code, even code from the disk cache), the module when asked. With
    `blas`, float dots call `tj_cblas_sgemm`/`tj_cblas_dgemm`, which the loader resolves."""

    def __init__(self, program: Program, blas: bool, name: str = "tracejit"):
        self.program = program
        self.name = name
        self.dots = {k: DotLowering(kernel, blas) for k, kernel in enumerate(program.kernels)
                     if kernel.kind == DOT}
        scratch = {k: d.scratch() for k, d in self.dots.items()}
        for k, kernel in enumerate(program.kernels):
            loop = (self.dots[k].epilogue_kernel() if k in self.dots
                    else kernel if kernel.kind == LOOP else None)
            if loop is not None and loop_scratch(loop):
                scratch.setdefault(k, []).extend(loop_scratch(loop))
            scratch.setdefault(k, []).extend(((kernel.name, role), nbytes)
                                             for role, nbytes in own_scratch(kernel))
        self.plan = plan_buffers(program, scratch)
        # entry_objects' argument table: in the arena too, after every buffer (the plan's
        # offsets and peak are multiples of 64 bytes).
        self.table = self.plan.peak
        self.plan.peak += 8 * len(self.plan.args)

    def module(self) -> ir.Module:
        """The LLVM module: one driver per kernel, `entry` and `entry_objects`."""
        return ModuleBuilder(self.program, self.plan, self.dots, self.name, self.table).build()
