"""tracejit.codegen.llvm_math: accuracy in ULP against NumPy oracles, special values against
NumPy exactly, and vectorisation of the element loop.

Each (function, dtype) is compiled once per session into a loop
`void kernel(T* noalias x, [T* noalias y,] T* noalias out, i64 n)` at -O3 for the host CPU and
called through ctypes. Oracles: for float32, NumPy's float64 result on the same inputs; for
float64, NumPy on x86 80-bit long double inputs.
"""

from __future__ import annotations

import ctypes
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from tracejit.codegen import llvm_math

F32, F64 = np.float32, np.float64
DTYPES = [F32, F64]
ONE_ARG = [name for name in llvm_math.SUPPORTED if name != "pow"]

# The error bound stated in the llvm_math docstring: 1 ULP for every function and dtype, over
# all inputs.
BOUND = {dtype: dict.fromkeys(llvm_math.SUPPORTED, 1.0) for dtype in (F32, F64)}

NUMPY = dict(exp=np.exp, expm1=np.expm1, log=np.log, log1p=np.log1p, tanh=np.tanh, sin=np.sin,
             cos=np.cos, atan=np.arctan, pow=np.power)


# --- the compiled kernels ------------------------------------------------------------------

_KERNELS = {}


def target_machine() -> llvm.TargetMachine:
    """A new -O3 target machine for the host CPU (an MCJIT engine takes ownership of one)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)


def loop_module(name: str, dtype) -> ir.Module:
    """for (i = 0; i < n; i++) out[i] = name(x[i] [, y[i]])"""
    ty = ir.FloatType() if dtype == F32 else ir.DoubleType()
    i64 = ir.IntType(64)
    arity = 2 if name == "pow" else 1
    module = ir.Module(name=f"{name}_{ty}")
    module.triple = llvm.get_process_triple()
    fnty = ir.FunctionType(ir.VoidType(), [ty.as_pointer()] * (arity + 1) + [i64])
    fn = ir.Function(module, fnty, "kernel")
    for arg in fn.args[:-1]:
        arg.add_attribute("noalias")
    *inputs, out, n = fn.args
    entry, body, done = (fn.append_basic_block(s) for s in ("entry", "body", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, i64(0)), body, done)
    b.position_at_end(body)
    i = b.phi(i64)
    vals = [b.load(b.gep(p, [i], inbounds=True)) for p in inputs]
    b.store(llvm_math.call(b, name, vals), b.gep(out, [i], inbounds=True))
    nxt = b.add(i, i64(1))
    i.add_incoming(i64(0), entry)
    i.add_incoming(nxt, body)
    b.cbranch(b.icmp_signed("<", nxt, n), body, done)
    b.position_at_end(done)
    b.ret_void()
    return module


class Kernel:
    """One compiled loop: call it on NumPy arrays; `ir` is the optimised LLVM IR."""

    def __init__(self, name: str, dtype):
        tm = target_machine()
        mod = llvm.parse_assembly(str(loop_module(name, dtype)))
        mod.verify()
        pb = llvm.create_pass_builder(tm, llvm.PipelineTuningOptions(speed_level=3))
        pb.getModulePassManager().run(mod, pb)
        self.ir = str(mod)
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()
        arity = 2 if name == "pow" else 1
        proto = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (arity + 1), ctypes.c_int64)
        self.fn = proto(self.engine.get_function_address("kernel"))
        self.dtype = dtype

    def __call__(self, *args: np.ndarray) -> np.ndarray:
        args = [np.ascontiguousarray(a, dtype=self.dtype) for a in np.broadcast_arrays(*args)]
        out = np.empty_like(args[0])
        self.fn(*[a.ctypes.data for a in args], out.ctypes.data, out.size)
        return out


def kernel(name: str, dtype) -> Kernel:
    key = (name, dtype)
    if key not in _KERNELS:
        _KERNELS[key] = Kernel(name, dtype)
    return _KERNELS[key]


# --- oracles and ULP -----------------------------------------------------------------------

def exact(name: str, *args: np.ndarray, dtype) -> np.ndarray:
    """The oracle in a wider type: float64 for float32 inputs, long double for float64."""
    wide = np.float64 if dtype == F32 else np.longdouble
    with np.errstate(all="ignore"):
        return NUMPY[name](*[np.asarray(a, dtype=dtype).astype(wide) for a in args])


def ulp_error(got: np.ndarray, want: np.ndarray, dtype) -> np.ndarray:
    """|got - want| / ulp(want), ulp the spacing of dtype at want (subnormal spacing below the
    normal range). An infinite result counts as 2^maxexp; a non-finite oracle must be matched
    exactly (same infinity, or NaN)."""
    info = np.finfo(dtype)
    wide = want.dtype.type
    # Beyond 2^maxexp the only correct result is an infinity.
    with np.errstate(all="ignore"):
        want = np.where(np.abs(want) >= np.ldexp(wide(1), info.maxexp), want * np.inf, want)
        g = got.astype(wide)
        same = (g == want) | (np.isnan(g) & np.isnan(want))
        g = np.where(np.isinf(g), np.copysign(np.ldexp(wide(1), info.maxexp), g), g)
        _, expo = np.frexp(np.abs(want))
        spacing = np.ldexp(wide(1), np.maximum(expo - info.nmant - 1, info.minexp - info.nmant))
        err = np.abs(g - want) / spacing
    err = np.where(np.isfinite(want), err, np.where(same, 0.0, np.inf))
    return np.where(np.isnan(err), np.inf, err)


def check_ulp(name: str, dtype, *args: np.ndarray) -> float:
    """Assert the max ULP error over the inputs is within the bound; return it."""
    args = [np.asarray(a, dtype=dtype).ravel() for a in np.broadcast_arrays(*args)]
    got = kernel(name, dtype)(*args)
    err = ulp_error(got, exact(name, *args, dtype=dtype), dtype)
    worst = int(np.argmax(err))
    where = ", ".join(repr(a.flat[worst]) for a in args)
    assert err.flat[worst] <= BOUND[dtype][name], (
        f"{name}({where}) = {got.flat[worst]!r}: {err.flat[worst]:.3f} ULP")
    return float(err.max())


# --- inputs --------------------------------------------------------------------------------

def rng(tag: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, tag)))


def all_bit_patterns(dtype) -> np.ndarray:
    """float32: every 4093rd bit pattern (2^20 values, all exponents, both signs, NaNs);
    float64: 2^20 random bit patterns."""
    if dtype == F32:
        return np.arange(0, 2**32, 4093, dtype=np.uint64).astype(np.uint32).view(F32)
    return rng("bits").integers(0, 2**64, 2**20, dtype=np.uint64).view(F64)


def log_uniform(lo: float, hi: float, n: int, tag: str, signed: bool = True) -> np.ndarray:
    """n values with log|x| uniform in [log lo, log hi], random signs if signed."""
    g = rng(tag)
    x = np.exp(g.uniform(np.log(lo), np.log(hi), n))
    return x * g.choice([-1.0, 1.0], n) if signed else x


def around(points, dtype, steps: int = 64) -> np.ndarray:
    """Each point rounded to dtype and its `steps` neighbours on either side."""
    p = np.asarray(points, dtype=np.float64).astype(dtype)
    bits = p.view(np.uint32 if dtype == F32 else np.uint64).astype(np.int64)
    offsets = np.arange(-steps, steps + 1)
    idt = np.uint32 if dtype == F32 else np.uint64
    # Neighbours in bit space are neighbours in value for same-sign finite values.
    out = (bits[:, None] + offsets[None, :]).ravel()
    out = out[(out >= 0) & (out < (2**32 if dtype == F32 else 2**63))]
    return out.astype(idt).view(dtype)


# Arguments closest to a multiple of pi/2, where the reduction cancels most: float32, found by
# an exhaustive search over |x| >= 2^30; float64, 6381956970095103 * 2^797 from Muller,
# "Elementary Functions" (x mod pi/2 = 4.7e-19, the smallest of all doubles).
HARD_TRIG = {F32: ["0x1.f37c8ap+96", "0x1.f37c8ap+95", "0x1.47d0fep+35", "0x1.32ede2p+86",
                   "0x1.628d4cp+40"],
             F64: ["0x1.6ac5b262ca1ffp+849"]}


def huge_trig_arguments(dtype) -> np.ndarray:
    """Payne-Hanek territory: every binary exponent up to the largest finite value (random
    mantissas, both signs), the largest finite values, powers of two, and the hard cases."""
    info = np.finfo(dtype)
    g = rng("huge" + info.dtype.name)
    uint = np.uint32 if dtype == F32 else np.uint64
    bias, mant = info.maxexp - 1, info.nmant
    expo = np.repeat(np.arange(bias, 2 * bias + 1, dtype=np.uint64), 64)    # 2^0 .. max
    bits = (expo << np.uint64(mant)) | g.integers(0, 2**mant, expo.size, dtype=np.uint64)
    x = bits.astype(uint).view(dtype)
    x = np.concatenate([x, -x[::7]])
    hard = np.array([float.fromhex(h) for h in HARD_TRIG[dtype]])
    special = [around([float(info.max)], dtype, 512), around(hard, dtype, 512),
               around(np.ldexp(1.0, np.arange(0, info.maxexp)), dtype, 1)]
    special = np.concatenate(special)
    special = special[np.isfinite(special)]            # around() steps past the largest value
    return np.concatenate([x, special, -special]).astype(np.float64)


def focused(name: str, dtype) -> np.ndarray:
    """Ranges where the implementations are most likely to go wrong."""
    f32 = dtype == F32
    tiny = np.finfo(dtype).smallest_subnormal
    common = [log_uniform(float(tiny), 1.0, 2**16, name + "small"),
              np.random.default_rng(1).uniform(-4, 4, 2**16)]
    ln2 = np.log(2)
    if name == "exp":
        thresholds = [88.72283935546875, -87.33654, -103.972, -103.278] if f32 else \
            [709.782712893384, -708.3964185322641, -745.1332191019411, -744.44007192138]
        extra = [around(thresholds, dtype, 512), around(np.arange(-150, 129) * ln2, dtype, 8),
                 np.random.default_rng(2).uniform(-110 if f32 else -750, 90 if f32 else 712,
                                                   2**17)]
    elif name == "expm1":
        extra = [log_uniform(1e-12, 1.0, 2**16, "m1"), around([-17.33, -17.0, 88.7228], dtype)
                 if f32 else around([-37.43, -38.0, 709.7827], dtype),
                 np.random.default_rng(3).uniform(-20 if f32 else -40, 89 if f32 else 710,
                                                  2**17),
                 around(np.arange(-20, 20) * ln2 / 2, dtype, 16)]
    elif name == "log":
        extra = [log_uniform(float(tiny), 1e-30, 2**14, "lsub", signed=False),
                 1 + np.random.default_rng(4).uniform(-0.3, 0.42, 2**17),
                 around(np.exp2(np.arange(-149 if f32 else -1074, 128 if f32 else 1024)),
                        dtype, 4),
                 around([1.0, np.sqrt(0.5), np.sqrt(2)], dtype, 2048),
                 log_uniform(1e-3, 1e3, 2**16, "lmid", signed=False)]
    elif name == "log1p":
        extra = [np.random.default_rng(5).uniform(-0.3, 0.42, 2**17),
                 -1 + log_uniform(1e-7 if f32 else 1e-16, 0.5, 2**15, "l1m", signed=False),
                 around([np.sqrt(0.5) - 1, np.sqrt(2) - 1, -0.5, 1.0, 3.0], dtype, 2048),
                 log_uniform(1e-30, 1e30, 2**16, "l1big", signed=False)]
    elif name == "tanh":
        extra = [np.random.default_rng(6).uniform(-1.5, 1.5, 2**17),
                 log_uniform(1e-5, 25, 2**16, "th"),
                 around([2.0**-12, 2.0**-27, 10.0, 20.0, 9.01, 9.0109, 9.5, 19.06], dtype, 256)]
    elif name in ("sin", "cos"):
        k = np.arange(1, 63662)   # multiples of pi/2 up to 1e5
        extra = [around(k * np.pi / 2, dtype, 2), around(k[:2000] * np.pi / 4, dtype, 2),
                 log_uniform(1e-6, 1e6, 2**16, "trig"),
                 np.random.default_rng(7).uniform(-1e5, 1e5, 2**16),
                 huge_trig_arguments(dtype)]
    elif name == "atan":
        extra = [around([np.tan(np.pi / 8), np.tan(3 * np.pi / 8), 1.0, 0.5, 2.0], dtype, 2048),
                 log_uniform(1e-8, 1e8, 2**17, "at")]
    else:
        raise AssertionError(name)
    values = np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in common + extra])
    return values.astype(dtype)


# --- 1. accuracy sweeps --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ONE_ARG)
def test_dense_sweep(name, dtype):
    check_ulp(name, dtype, np.concatenate([all_bit_patterns(dtype), focused(name, dtype)]))


def special_inputs(dtype) -> np.ndarray:
    info = np.finfo(dtype)
    v = [0.0, 1.0, 2.0, 0.5, 1e-3, np.inf, np.nan, float(info.max), float(info.tiny),
         float(info.smallest_subnormal), 3 * float(info.smallest_subnormal),
         float(info.tiny) * 0.75, 1e-10, 1e-30, 1e5, np.pi, np.pi / 2]
    v = np.array(v, dtype=dtype)
    return np.concatenate([v, -v, np.array([-1.0], dtype=dtype)])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ONE_ARG)
def test_special_values(name, dtype):
    """Zeros (with their sign), infinities and NaNs exactly as NumPy; the rest within bound."""
    x = special_inputs(dtype)
    got = kernel(name, dtype)(x)
    with np.errstate(all="ignore"):
        want = NUMPY[name](x)
    for xi, g, w in zip(x, got, want):
        if np.isnan(w):
            assert np.isnan(g), (name, xi, g, w)
        elif w == 0 or np.isinf(w):
            assert g.tobytes() == w.tobytes(), (name, xi, g, w)
    check_ulp(name, dtype, x)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_named_values(dtype):
    """Values the semantics spell out, bit for bit (so the signs of zeros count)."""
    inf, nan, tiny = np.inf, np.nan, float(np.finfo(dtype).smallest_subnormal)
    cases = [("exp", -inf, 0.0), ("exp", inf, inf), ("exp", -0.0, 1.0),
             ("exp", 1000.0, inf), ("exp", -1000.0, 0.0),
             ("expm1", -inf, -1.0), ("expm1", inf, inf), ("expm1", -0.0, -0.0),
             ("expm1", -tiny, -tiny),
             ("log", 0.0, -inf), ("log", -0.0, -inf), ("log", inf, inf), ("log", 1.0, 0.0),
             ("log", -1.0, nan), ("log", -inf, nan),
             ("log1p", -1.0, -inf), ("log1p", -1.5, nan), ("log1p", -0.0, -0.0),
             ("log1p", inf, inf),
             ("tanh", inf, 1.0), ("tanh", -inf, -1.0), ("tanh", -0.0, -0.0),
             ("tanh", -tiny, -tiny),
             ("sin", -0.0, -0.0), ("sin", inf, nan), ("cos", -inf, nan), ("cos", -0.0, 1.0),
             ("atan", inf, np.arctan(dtype(inf))), ("atan", -inf, -np.arctan(dtype(inf))),
             ("atan", -0.0, -0.0)]
    for name, x, want in cases:
        got = kernel(name, dtype)(np.array([x], dtype=dtype))[0]
        want = dtype(want)
        assert got.tobytes() == want.tobytes() or (np.isnan(got) and np.isnan(want)), \
            (name, x, got, want)
    # expm1 near zero is accurate to the last bit.
    small = np.array([1e-10, -1e-10, 1e-5, 3e-20], dtype=dtype)
    want = np.expm1(small.astype(np.longdouble)).astype(dtype)
    assert np.array_equal(kernel("expm1", dtype)(small), want)


# --- pow -----------------------------------------------------------------------------------

def pow_special_grid(dtype):
    info = np.finfo(dtype)
    v = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5, 0.25, 1e-3, 1e3,
         np.inf, -np.inf, np.nan, float(info.max), -float(info.max),
         float(info.smallest_subnormal), -float(info.smallest_subnormal), float(info.tiny),
         1 + float(info.eps), 1 - float(info.epsneg), 2.0**(info.nmant + 1),
         2.0**(info.nmant + 1) + 2, 2.0**info.nmant + 1, -(2.0**info.nmant + 1), 0.1, 7.0]
    v = np.array(v, dtype=dtype)
    return np.meshgrid(v, v, indexing="ij")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pow_special_grid(dtype):
    """Every pair of special values: zeros, infinities and NaNs exactly as NumPy (C99)."""
    x, y = (a.ravel() for a in pow_special_grid(dtype))
    got = kernel("pow", dtype)(x, y)
    with np.errstate(all="ignore"):
        want = np.power(x, y)
    nan_ok = np.isnan(want) == np.isnan(got)
    assert nan_ok.all(), list(zip(x[~nan_ok], y[~nan_ok], got[~nan_ok], want[~nan_ok]))
    exact_kind = ~np.isnan(want) & ((want == 0) | np.isinf(want))
    bad = exact_kind & (got.view(np.uint8).reshape(got.size, -1) !=
                        want.view(np.uint8).reshape(want.size, -1)).any(axis=1)
    assert not bad.any(), list(zip(x[bad], y[bad], got[bad], want[bad]))
    check_ulp("pow", dtype, x, y)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pow_random(dtype):
    """Random pairs: results over the whole range (overflow and underflow included), x near 1
    with large y, and negative x with integer y."""
    g = rng("pow")
    n = 2**17
    big = 90.0 if dtype == F32 else 712.0
    x = log_uniform(1e-30 if dtype == F32 else 1e-300, 1e30 if dtype == F32 else 1e300, n,
                    "px", signed=False)
    # y chosen so that y log x covers about [-1.2 big, 1.2 big]
    y = g.uniform(-1.2 * big, 1.2 * big, n) / np.log(x)
    near1 = 1 + g.uniform(-1e-3, 1e-3, n)
    y1 = g.uniform(-1.2 * big, 1.2 * big, n) / np.log(near1)
    neg = -log_uniform(1e-3, 1e3, n, "pn", signed=False)
    yi = np.round(g.uniform(-100, 100, n))
    generic = log_uniform(1e-8, 1e8, n, "pg", signed=False), g.uniform(-20, 20, n)
    for xs, ys in [(x, y), (near1, y1), (neg, yi), generic]:
        check_ulp("pow", dtype, xs.astype(dtype), ys.astype(dtype))


# --- 2. vectorisation ----------------------------------------------------------------------

VECTOR_INTRINSIC = re.compile(r"llvm\.(fma|fabs|floor|ceil|trunc|rint|roundeven|copysign|sqrt|fshl"
                              r"|minnum|maxnum|is\.fpclass)\.")

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", llvm_math.SUPPORTED)
def test_loop_vectorises(name, dtype):
    """The optimised loop works on vectors of 8 or 16 floats (4 or 8 doubles), calls only
    intrinsics that are single vector instructions (everything else was inlined), and its
    machine code calls nothing (no libm)."""
    text = kernel(name, dtype).ir
    pattern = r"<(8|16) x float>" if dtype == F32 else r"<(4|8) x double>"
    assert re.search(pattern, text), text
    callees = set(re.findall(r"\bcall\b[^@]*@([\w.$]+)", text))
    assert callees and all(VECTOR_INTRINSIC.match(c) for c in callees), callees
    assert "@tj." not in text
    asm = target_machine().emit_assembly(llvm.parse_assembly(text))
    assert not re.search(r"^\s*call", asm, re.MULTILINE), asm


# --- the interface -------------------------------------------------------------------------

def test_two_over_pi_constant():
    """The bits of 2/pi stored for the Payne-Hanek reduction, against 2/pi from Machin's formula
    pi = 16 atan(1/5) - 4 atan(1/239) in integer arithmetic with 64 guard bits."""
    prec = llvm_math._TWO_OVER_PI_BITS + 64

    def atan_inv(k: int) -> int:
        """atan(1/k) 2^prec, to a few units."""
        total, term, n, k2 = 0, (1 << prec) // k, 1, k * k
        while term:
            total += term // n if n % 4 == 1 else -(term // n)
            term //= k2
            n += 2
        return total

    pi = 16 * atan_inv(5) - 4 * atan_inv(239)
    assert llvm_math._TWO_OVER_PI == ((2 << 2 * prec) // pi) >> 64


def test_call_defines_each_function_once():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.FloatType(), [ir.FloatType()] * 2), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    x, y = fn.args
    v = llvm_math.call(b, "exp", [x])
    v = llvm_math.call(b, "exp", [v])
    b.ret(llvm_math.call(b, "pow", [v, y]))
    text = str(module)
    assert text.count('define internal float @"tj.exp.f32"') == 1
    assert text.count('define internal float @"tj.pow.f32"') == 1
    assert module.globals["tj.exp.f32"].linkage == "internal"
    assert "alwaysinline" in module.globals["tj.exp.f32"].attributes


def test_call_rejects_bad_arguments():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(),
                                             [ir.FloatType(), ir.DoubleType(), ir.IntType(32)]),
                     "f")
    b = ir.IRBuilder(fn.append_basic_block())
    x, d, i = fn.args
    with pytest.raises(ValueError, match="unsupported math function 'erf'"):
        llvm_math.call(b, "erf", [x])
    with pytest.raises(TypeError, match="takes 2"):
        llvm_math.call(b, "pow", [x])
    with pytest.raises(TypeError, match="one type"):
        llvm_math.call(b, "pow", [x, d])
    with pytest.raises(TypeError, match="float or double"):
        llvm_math.call(b, "exp", [i])
