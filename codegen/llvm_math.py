"""Vectorisable transcendental functions emitted as LLVM IR.

LLVM vectorises a loop only if every instruction in it has a vector form; a call to `expf` or to
`llvm.exp.f32` becomes one scalar libm call per lane. So each function here is emitted as plain
IR: arithmetic, compares, `select`, bitcasts, integer operations, and only the intrinsics that
map to vector instructions (`llvm.fma`, `llvm.fabs`, `llvm.rint`, `llvm.trunc`,
`llvm.copysign`, `llvm.fshl`). There is no branch and no load: the bits of 2/pi that the sine
and cosine reduction needs are picked from constants with selects (a gather from a table in
memory vectorises too, but is slower). `call` defines each function once per module as an
internal `alwaysinline` function (`tj.exp.f32`, `tj.pow.f64`, ...), so after inlining at -O3
the caller's element loop vectorises (16 float or 8 double lanes on AVX-512).

Semantics are NumPy's (IEEE 754 / C99 Annex F): overflow to inf, gradual underflow, signed
zeros kept where NumPy keeps them, NaN in gives NaN out, and every special case of `pow`.
No fast-math flags are used: the error-free transformations (Fast2Sum, TwoSum, TwoProd with
fma) rely on exact IEEE rounding.

Method, shared by both precisions unless stated:

- exp: n = rint(x / ln2), r = x - n ln2 (Cody-Waite; the first fma is exact), exp(r) =
  1 + r + r^2 P(r), 2^n applied as two factors 2^(n/2) so that subnormal results are rounded
  once.
- expm1: the same reduction; expm1(r) is kept as an unevaluated sum hi + lo and combined as
  2 (2^(n-1) (1 + p) - 1/2) with TwoSum, so the final add is the only rounding.
- log: x = 2^e m with m in [sqrt(1/2), sqrt(2)) (integer arithmetic on the bits; subnormals
  are scaled first), f = m - 1 exactly. float: log1p(f) = f - f^2/2 + f^3 P(f); double: the
  fdlibm scheme log1p(f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f). e ln2 uses a short
  ln2_hi so that e ln2_hi is exact.
- log1p: u = 1 + x with its rounding error c (TwoSum); f = x itself when u is in
  [sqrt(1/2), sqrt(2)), else log(u) + c / u.
- tanh: float: x P(x^2) / Q(x^2), a minimax rational of degrees 4 and 5 in x^2 on |x| <= 9.5
  (x clamped there), evaluated in double and rounded once. double: t = expm1(2|x|) as hi + lo,
  tanh = t / (t + 2) with the division corrected by its fma remainder; tanh(x) = x below 2^-27.
- sin, cos: x = j pi/2 + r, |r| <= pi/4, then sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 +
  r^4 C(r^2) with the low part of r added to first order; the quadrant j mod 4 picks the
  result. Reduction, both computed and one selected per lane: float below 2^30, Cody-Waite
  (j = rint(2x / pi), r = x - j pi/2 in double with a two-part pi/2); double below pi/4, none.
  Elsewhere Payne-Hanek: with |x| = m 2^E, m the integer mantissa, the bits of 2/pi of weight
  2^(2-E) and above contribute multiples of 4 to |x| 2/pi and drop out; the next 96 (float) /
  192 (double) bits W are picked from the constant 2/pi, and m W in 64-bit integer arithmetic
  holds the quadrant in its top two bits and the fraction below them, to 2^-61 (float) /
  2^-124 (double) in units of pi/2. The fraction is at least 2^-30 (float, found by search) /
  2^-61 (double, Muller's worst case), so r = fraction * pi/2, in double (float: then split
  into float r_hi + r_lo) / double-double, keeps a relative error below 2^-31 / 2^-62.
- atan: |x| > tan(3pi/8): pi/2 + atan(-1/|x|); |x| > tan(pi/8): pi/4 + atan((|x|-1)/(|x|+1));
  the quotient is corrected by its fma remainder; atan t = t + t^3 A(t^2).
- pow: float: exp(y log|x|) computed in double and rounded once. double: log|x| as a
  double-double, log m = 2s + (2/3) s^3 + s^5 Q(s^2) with s = (m-1)/(m+1) carried as a
  double-double (relative error about 2^-67), y log|x| as a double-double, and exp of a
  double-double. Special cases are applied with selects.

Polynomial coefficients: minimax for the relative error of the whole function on the stated
interval, by a Remez exchange in 80-digit arithmetic (mpmath); the float ones rounded to float
one at a time, lowest first, re-optimising the rest after each rounding. The float tanh
rational (double coefficients): minimax by Lawson's iteration (reweighted least squares).

Error bound: 1 ULP for every function in both precisions (ULP = the spacing of the result
type at the exact value, the subnormal spacing below the normal range); tests/cpu/
test_vector_math.py asserts it. Measured maxima: float32 exhaustively over all 2^32 inputs
(pow: 5 x 2^20 random pairs over the whole range), oracle NumPy's float64 result; float64 over
about 2^23 random and focused inputs per function (sin, cos: every binary exponent up to the
largest double, and Muller's worst case for the reduction), oracle NumPy on x86 80-bit long
double (whose sinl reduces huge arguments exactly too).

    ========  =======  =======  ===============================================
    function  float32  float64  where the bound holds
    ========  =======  =======  ===============================================
    exp       0.79     0.75     all inputs
    expm1     0.61     0.60     all inputs
    log       0.64     0.83     all inputs
    log1p     0.65     0.83     all inputs
    tanh      0.53     0.57     all inputs
    sin       0.72     0.72     all inputs
    cos       0.72     0.72     all inputs
    atan      0.66     0.68     all inputs
    pow       0.50     0.76     all inputs
    ========  =======  =======  ===============================================

The largest errors of exp and of float64 pow are for subnormal results (a second rounding onto
the subnormal grid); over normal results they are 0.67 / 0.62 (exp) and 0.62 (float64 pow).

Lanes: float32 loops run 16 wide (AVX-512) except pow and tanh, which compute in double (the
loop vectoriser picks 8 wide; 16 is no faster); float32 sin and cos do only their argument
reduction in double and 64-bit integers. float64 loops run 8 wide.
"""

from __future__ import annotations

from typing import Callable, Sequence

from llvmlite import ir

SUPPORTED: tuple[str, ...] = ("exp", "expm1", "log", "log1p", "tanh", "sin", "cos", "atan", "pow")

_ARITY = {name: 1 for name in SUPPORTED} | {"pow": 2}


def _x(literal: str) -> float:
    """A float from a hexadecimal literal (exact, unlike a decimal one)."""
    return float.fromhex(literal)


def _h(*literals: str) -> tuple[float, ...]:
    """Polynomial coefficients, lowest degree first, from hexadecimal literals."""
    return tuple(map(_x, literals))


class _Format:
    """The constants of one floating-point format (float32 or float64)."""

    def __init__(self, ir_type: ir.Type, bits: int, mant: int, **consts: object):
        self.ir = ir_type
        self.int_ir = ir.IntType(bits)
        self.mant = mant                  # explicit mantissa bits
        self.bias = (1 << (bits - mant - 2)) - 1
        self.__dict__.update(consts)


_F32 = _Format(
    ir.FloatType(), 32, 23,
    name="f32",
    # exp: clamp so that n = rint(x / ln2) stays in [-150, 128]; beyond, the result is 0 or inf.
    EXP_LO=-104.0, EXP_HI=89.0,
    # expm1: below -18, expm1(x) rounds to -1.
    EXPM1_LO=-18.0,
    LOG2E=_x("0x1.715476p+0"),
    # ln2 = LN2_HI + LN2_LO; LN2_HI is ln2 rounded to float, so fma(-n, LN2_HI, x) is exact.
    LN2_HI=_x("0x1.62e430p-1"), LN2_LO=_x("-0x1.05c610p-29"),
    # ln2 with 14 significant bits, so that e * LOG_LN2_HI is exact for every exponent e.
    LOG_LN2_HI=_x("0x1.62e8p-1"), LOG_LN2_LO=_x("-0x1.e8082ep-16"),
    SQRT_HALF_BITS=0x3F3504F3,
    # Below this, expm1(x) rounds to x.
    EXPM1_TINY=2.0**-25,
    TANH_BIG=9.5,                       # tanh(x) rounds to 1 above
    # sin, cos: Cody-Waite below (in double, exact enough), Payne-Hanek above.
    TRIG_RANGE=2.0**30,
    ATAN_BIG=2.0**100,
    PIO2_HI=_x("0x1.921fb6p+0"), PIO2_LO=_x("-0x1.777a5cp-25"),
    PIO4_HI=_x("0x1.921fb6p-1"), PIO4_LO=_x("-0x1.777a5cp-26"),
    # exp(r) = 1 + r + r^2 P(r), |r| <= ln2/2, relative error 2^-27.3
    EXP_P=_h("0x1.fffffcp-2", "0x1.555494p-3", "0x1.555898p-5", "0x1.12332cp-7",
             "0x1.6a3ce4p-10"),
    # expm1(r) = r + r^2/2 + r^3 P(r), |r| <= ln2/2, relative error 2^-28.5
    EXPM1_P=_h("0x1.555554p-3", "0x1.5554f6p-5", "0x1.1112fep-7", "0x1.6d1f46p-10",
               "0x1.9db178p-13"),
    # log1p(f) = f - f^2/2 + f^3 P(f), f in [sqrt(1/2) - 1, sqrt(2) - 1], relative error 2^-28.7
    LOG_P=_h("0x1.555548p-2", "-0x1.000070p-2", "0x1.99a542p-3", "-0x1.552f10p-3",
             "0x1.2302f8p-3", "-0x1.010450p-3", "0x1.f003c2p-4", "-0x1.bf5ac2p-4",
             "0x1.b5fbbep-5"),
    # sin r = r + r^3 S(r^2), |r| <= pi/4, relative error 2^-32.5
    SIN_P=_h("-0x1.555556p-3", "0x1.111174p-7", "-0x1.a05954p-13", "0x1.7c2c4ep-19"),
    # cos r = 1 - r^2/2 + r^4 C(r^2), |r| <= pi/4, relative error 2^-32.3
    COS_P=_h("0x1.55554ep-5", "-0x1.6c0e30p-10", "0x1.9a6860p-16"),
    # tanh x = x P(x^2) / Q(x^2), |x| <= 9.5, relative error 2^-29.1 (double coefficients)
    TANH_P=_h("0x1.fffffff19679dp-1", "0x1.19d87c2d8fc2ap-3", "0x1.04c0bd7b138e9p-8",
              "0x1.039855cd614e5p-15", "0x1.a0e112466de38p-25"),
    TANH_Q=_h("0x1.0000000000000p+0", "0x1.e241925b630e7p-2", "0x1.c4b0239d4574fp-6",
              "0x1.b38d9c73d53dbp-12", "0x1.a4e197e44030ap-20", "0x1.7cf2014540f68p-31"),
    # atan t = t + t^3 A(t^2), |t| <= tan(pi/8), relative error 2^-30.4
    ATAN_P=_h("-0x1.55554ap-2", "0x1.9991e2p-3", "-0x1.23b9a2p-3", "0x1.b22456p-4",
              "-0x1.f2e5a8p-5"),
)

_F64 = _Format(
    ir.DoubleType(), 64, 52,
    name="f64",
    EXP_LO=-746.0, EXP_HI=710.0,
    EXPM1_LO=-40.0,
    LOG2E=_x("0x1.71547652b82fep+0"),
    LN2_HI=_x("0x1.62e42fefa39efp-1"), LN2_LO=_x("0x1.abc9e3b39803fp-56"),
    # ln2 with 42 significant bits: e * LOG_LN2_HI is exact for |e| < 2^11.
    LOG_LN2_HI=_x("0x1.62e42fefa38p-1"), LOG_LN2_LO=_x("0x1.ef35793c76730p-45"),
    SQRT_HALF_BITS=0x3FE6A09E667F3BCD,
    TANH_TINY=2.0**-27, EXPM1_TINY=2.0**-54,
    TANH_BIG=20.0,
    ATAN_BIG=2.0**600,
    PIO2_HI=_x("0x1.921fb54442d18p+0"), PIO2_LO=_x("0x1.1a62633145c07p-54"),
    PIO4_HI=_x("0x1.921fb54442d18p-1"), PIO4_LO=_x("0x1.1a62633145c07p-55"),
    # exp(r) = 1 + r + r^2 P(r), |r| <= ln2/2, relative error 2^-60.3
    EXP_P=_h("0x1.0000000000000p-1", "0x1.555555555555bp-3", "0x1.5555555555503p-5",
             "0x1.111111110ec65p-7", "0x1.6c16c16c3043cp-10", "0x1.a01a01b37b5d5p-13",
             "0x1.a01a01369f18bp-16", "0x1.71ddf0281703bp-19", "0x1.27e5b4340e663p-22",
             "0x1.af6bdaf1bf553p-26", "0x1.1e3d35b994765p-29"),
    # expm1(r) = r + r^2/2 + r^3 P(r), |r| <= ln2/2, relative error 2^-60.0
    EXPM1_P=_h("0x1.5555555555558p-3", "0x1.5555555555556p-5", "0x1.111111110f809p-7",
               "0x1.6c16c16c15dcbp-10", "0x1.a01a01b009a10p-13", "0x1.a01a01a9341cbp-16",
               "0x1.71ddf6bb1203ap-19", "0x1.27e4d4d98d17fp-22", "0x1.af631d7c581eep-26",
               "0x1.1f7f1d874aaf4p-29"),
    # 2 atanh(s) = 2s + s^3 R(s^2), s in [0, 3 - 2 sqrt(2)], relative error 2^-59.5
    LOG_R=_h("0x1.5555555555592p-1", "0x1.999999997ff61p-2", "0x1.24924941db75fp-2",
             "0x1.c71c5219eacf6p-3", "0x1.74663bae7f477p-3", "0x1.39a20a5fcb886p-3",
             "0x1.2f025f8b3f757p-3"),
    # sin r = r + r^3 S(r^2), |r| <= pi/4, relative error 2^-57.9
    SIN_P=_h("-0x1.5555555555548p-3", "0x1.111111110f730p-7", "-0x1.a01a019be9217p-13",
             "0x1.71de35552b536p-19", "-0x1.ae5e4b83e5fdfp-26", "0x1.5d8b5595876bep-33"),
    # cos r = 1 - r^2/2 + r^4 C(r^2), |r| <= pi/4, relative error 2^-63.2
    COS_P=_h("0x1.5555555555553p-5", "-0x1.6c16c16c15eb2p-10", "0x1.a01a019dcd397p-16",
             "-0x1.27e4f8be3da6fp-22", "0x1.1eea59c889190p-29", "-0x1.8fe2537decbe5p-37"),
    # atan t = t + t^3 A(t^2), |t| <= tan(pi/8), relative error 2^-57.4
    ATAN_P=_h("-0x1.555555555553dp-2", "0x1.99999999957ccp-3", "-0x1.24924922aa465p-3",
              "0x1.c71c70e50aee2p-4", "-0x1.745cf8c30d99ep-4", "0x1.3b11178dae733p-4",
              "-0x1.10eba870a6abdp-4", "0x1.df0e7b0d6c70ap-5", "-0x1.9ccf677138e7fp-5",
              "0x1.37cde359c1103p-5", "-0x1.255ab8844e5fdp-6"),
    # pi/2 = PIO2_1 + PIO2_2 (53 bits each) for the sine / cosine reductions.
    PIO2_1=_x("0x1.921fb54442d18p+0"), PIO2_2=_x("0x1.1a62633145c07p-54"),
    TWO_OVER_PI=_x("0x1.45f306dc9c883p-1"),
    # pow: 2/3 as a double-double, and log m = 2s + (2/3) s^3 + s^5 Q(s^2), relative error 2^-69
    TWO_THIRDS_HI=_x("0x1.5555555555555p-1"), TWO_THIRDS_LO=_x("0x1.5555555555555p-55"),
    POW_Q=_h("0x1.9999999999999p-2", "0x1.249249249279dp-2", "0x1.c71c71c6789b5p-3",
             "0x1.745d17c2b4448p-3", "0x1.3b137e6922b78p-3", "0x1.111cd98b02d92p-3",
             "0x1.dec466b3f654dp-4", "0x1.e6b55ba9445a3p-4"),
)

_FORMATS = {"float": _F32, "double": _F64}

_TAN_PI_8 = 0.41421356237309503
_TAN_3PI_8 = 2.414213562373095


class _Emitter:
    """Thin helpers over an IRBuilder for one floating-point format."""

    def __init__(self, builder: ir.IRBuilder, fmt: _Format):
        self.b = builder
        self.f = fmt
        self.ty = fmt.ir
        self.ity = fmt.int_ir

    # constants
    def k(self, value: float) -> ir.Constant:
        return ir.Constant(self.ty, float(value))

    def ki(self, value: int) -> ir.Constant:
        return ir.Constant(self.ity, value)

    def _v(self, a):
        return self.k(a) if isinstance(a, (int, float)) else a

    # arithmetic
    def add(self, a, b):
        return self.b.fadd(self._v(a), self._v(b))

    def sub(self, a, b):
        return self.b.fsub(self._v(a), self._v(b))

    def mul(self, a, b):
        return self.b.fmul(self._v(a), self._v(b))

    def div(self, a, b):
        return self.b.fdiv(self._v(a), self._v(b))

    def neg(self, a):
        return self.b.fneg(a)

    def _intrinsic(self, name: str, *args):
        module = self.b.module
        if name == "llvm.fma":
            fn = module.declare_intrinsic(name, [self.ty] * 3)
        else:
            fnty = ir.FunctionType(self.ty, [self.ty] * len(args))
            fn = module.declare_intrinsic(name, [self.ty], fnty)
        return self.b.call(fn, [self._v(a) for a in args])

    def fma(self, a, b, c):
        """a * b + c with a single rounding."""
        return self._intrinsic("llvm.fma", a, b, c)

    def fabs(self, a):
        return self._intrinsic("llvm.fabs", a)

    def rint(self, a):
        return self._intrinsic("llvm.rint", a)

    def trunc(self, a):
        return self._intrinsic("llvm.trunc", a)

    def copysign(self, magnitude, sign):
        return self._intrinsic("llvm.copysign", magnitude, sign)

    # comparisons (ordered: false when either side is NaN) and selects
    def cmp(self, op: str, a, b):
        return self.b.fcmp_ordered(op, self._v(a), self._v(b))

    def isnan(self, a):
        return self.b.fcmp_unordered("uno", a, a)

    def sel(self, cond, a, b):
        return self.b.select(cond, self._v(a), self._v(b))

    def and_(self, a, b):
        return self.b.and_(a, b)

    def or_(self, a, b):
        return self.b.or_(a, b)

    def not_(self, a):
        return self.b.not_(a)

    # bits and integers
    def to_int(self, a):
        """Float holding a small integer -> integer of the same width."""
        return self.b.fptosi(a, self.ity)

    def to_float(self, i):
        return self.b.sitofp(i, self.ty)

    def pow2(self, n):
        """2^n for an integer n within the normal exponent range."""
        biased = self.b.add(n, self.ki(self.f.bias))
        return self.b.bitcast(self.b.shl(biased, self.ki(self.f.mant)), self.ty)

    # polynomials and error-free transformations
    def horner(self, t, coeffs: Sequence[float]):
        """c0 + t (c1 + t (c2 + ...)) with fma."""
        acc = self.k(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.fma(acc, t, c)
        return acc

    def fast_two_sum(self, a, b):
        """s + e = a + b exactly, s = fl(a + b); requires exponent(a) >= exponent(b) or a == 0."""
        s = self.add(a, b)
        return s, self.add(self.sub(a, s), b)

    def two_sum(self, a, b):
        """s + e = a + b exactly, s = fl(a + b), for any order of magnitudes (Knuth)."""
        s = self.add(a, b)
        bb = self.sub(s, a)
        return s, self.add(self.sub(a, self.sub(s, bb)), self.sub(b, bb))


# --- exp -----------------------------------------------------------------------------------

def _exp_core(e: _Emitter, x, xl):
    """exp(x + xl) for |xl| <= ulp(x) (xl = 0 for plain exp); NaN x gives a finite garbage value.

    n = rint(x / ln2), r = x - n ln2_hi exactly (|r| <= ln2/2 needs at most as many bits as
    the format has, so the fma does not round), rl = xl - n ln2_lo, then r + rl renormalised.
    exp(x + xl) = 2^n exp(r) (1 + rl) to within rl^2, exp(r) = 1 + r + r^2 P(r); 1 + r is kept
    as the exact pair a + ae, so the final add is the only full-size rounding.
    """
    f = e.f
    inside = e.and_(e.cmp("<", x, f.EXP_HI), e.cmp(">", x, f.EXP_LO))
    # Out of range or NaN: clamp (the scaling below then overflows to inf or underflows to 0).
    xs = e.sel(inside, x, e.sel(e.cmp(">", x, 0.0), f.EXP_HI, f.EXP_LO))
    xl = e.sel(inside, xl, 0.0)
    n = e.rint(e.mul(xs, f.LOG2E))
    r, rl = _reduced(e, e.fma(e.neg(n), f.LN2_HI, xs), e.fma(e.neg(n), f.LN2_LO, xl))
    a, ae = e.fast_two_sum(1.0, r)
    tail = e.mul(e.mul(r, r), e.horner(r, f.EXP_P))
    y = e.add(a, e.add(e.add(tail, e.fma(rl, r, rl)), ae))
    return _scale(e, y, e.to_int(n))


def _reduced(e: _Emitter, r, rl):
    """Renormalise the reduced argument r + rl (|rl| up to ~100 ulp(r)) so that |rl| <= ulp(r)/2
    and first-order corrections in rl suffice. Fast2Sum: when |r| < |rl| the pair may be
    inexact, but then |r + rl| < 2^-20 and the error, of the order of ulp(r + rl), is far
    below the ULP of the result (which is near 1 there)."""
    return e.fast_two_sum(r, rl)


def _scale(e: _Emitter, y, n):
    """y * 2^n as two exact power-of-two factors, so a subnormal result is rounded only once."""
    half = e.b.ashr(n, e.ki(1))
    return e.mul(e.mul(y, e.pow2(half)), e.pow2(e.b.sub(n, half)))


def _exp(e: _Emitter, x):
    return e.sel(e.isnan(x), x, _exp_core(e, x, e.k(0.0)))


# --- expm1 and tanh ------------------------------------------------------------------------

def _expm1_dd(e: _Emitter, x):
    """expm1(x) as a normalised pair hi + lo (hi = fl(hi + lo)), for |x| >= the tiny cutoff.

    With n = rint(x / ln2), r + rl = x - n ln2 and p = expm1(r + rl):
    expm1(x) = 2^n (1 + p) - 1 = 2 (s + s p - 1/2) with s = 2^(n-1), which keeps s a normal
    number up to n = max exponent + 1. p = r + r^2/2 + r^3 P(r) + rl (1 + r) is formed as
    ph + pl with r^2/2 exact (TwoProd), and s - 1/2 + s ph is summed exactly (TwoSum).
    """
    f = e.f
    xs = e.sel(e.cmp("<", x, f.EXP_HI), x, f.EXP_HI)
    xs = e.sel(e.cmp(">", xs, f.EXPM1_LO), xs, f.EXPM1_LO)
    n = e.rint(e.mul(xs, f.LOG2E))
    r, rl = _reduced(e, e.fma(e.neg(n), f.LN2_HI, xs), e.mul(e.neg(n), f.LN2_LO))
    q = e.mul(r, r)
    qe = e.fma(r, r, e.neg(q))                   # r^2 = q + qe exactly
    ph, pl = e.fast_two_sum(r, e.mul(0.5, q))
    cubic = e.mul(e.mul(q, r), e.horner(r, f.EXPM1_P))
    pl = e.add(pl, e.fma(0.5, qe, e.add(cubic, e.fma(rl, r, rl))))
    s = e.pow2(e.b.sub(e.to_int(n), e.ki(1)))
    a, al = e.two_sum(s, -0.5)
    hi, lo = e.two_sum(a, e.mul(s, ph))
    hi, lo = e.fast_two_sum(hi, e.add(lo, e.fma(s, pl, al)))
    return e.mul(2.0, hi), e.mul(2.0, lo)


def _expm1(e: _Emitter, x):
    hi, lo = _expm1_dd(e, x)
    y = e.add(hi, lo)
    # Tiny x (and +-0): expm1(x) rounds to x; the half scaling above would lose subnormal bits.
    y = e.sel(e.cmp("<", e.fabs(x), e.f.EXPM1_TINY), x, y)
    return e.sel(e.isnan(x), x, y)


def _tanh(e: _Emitter, x):
    """float: _tanh_f32. double: tanh|x| = t / (t + 2), t = expm1(2|x|) = th + tl; the quotient
    q is corrected by its remainder: tanh = q + (th + tl - q (d + dl)) / d where
    d + dl = th + tl + 2 exactly."""
    f = e.f
    if f is _F32:
        return _tanh_f32(e, x)
    ax = e.fabs(x)
    ax = e.sel(e.cmp("<", ax, f.TANH_BIG), ax, f.TANH_BIG)      # also maps NaN to TANH_BIG
    th, tl = _expm1_dd(e, e.mul(2.0, ax))
    d, dl = e.two_sum(th, 2.0)
    dl = e.add(dl, tl)
    # One division: q = th / d to within an ulp or so; the remainder, exact up to q dl,
    # carries the rest, so q + rem / d is rounded once.
    inv = e.div(1.0, d)
    q = e.mul(th, inv)
    rem = e.add(e.fma(e.neg(q), d, th), e.fma(e.neg(q), dl, tl))
    y = e.copysign(e.fma(rem, inv, q), x)
    y = e.sel(e.cmp("<", e.fabs(x), f.TANH_TINY), x, y)
    return e.sel(e.isnan(x), x, y)


def _tanh_f32(e: _Emitter, x):
    """tanh x = x P(x^2) / Q(x^2) in double for |x| <= TANH_BIG (clamped beyond, where the
    result rounds to +-1), rounded once to float. The rational's relative error, 2^-29.1, and
    the double rounding errors are far below half a float ulp. x = NaN passes through the
    clamp and the arithmetic; tiny x gives x (P(0) = 1 - 2^-28), -0 gives -0."""
    big = _F32.TANH_BIG
    x = e.sel(e.cmp(">", x, big), big, e.sel(e.cmp("<", x, -big), -big, x))
    d = _Emitter(e.b, _F64)
    xd = e.b.fpext(x, d.ty)
    z = d.mul(xd, xd)
    num = d.mul(xd, d.horner(z, _F32.TANH_P))
    return e.b.fptrunc(d.div(num, d.horner(z, _F32.TANH_Q)), e.ty)


# --- log and log1p -------------------------------------------------------------------------

def _split_log(e: _Emitter, x):
    """x > 0 normal -> (e, m) with x = 2^e m, m in [sqrt(1/2), sqrt(2)); integer e.

    Subtracting the bits of sqrt(1/2) makes the exponent field step exactly at sqrt(2)."""
    b = e.b
    off = e.ki(e.f.SQRT_HALF_BITS)
    ix = b.sub(b.bitcast(x, e.ity), off)
    expo = b.ashr(ix, e.ki(e.f.mant))
    mbits = b.add(b.and_(ix, e.ki((1 << e.f.mant) - 1)), off)
    return expo, b.bitcast(mbits, e.ty)


def _log1p_kernel(e: _Emitter, expo, f, extra):
    """e ln2 + log1p(f) + extra for f in [sqrt(1/2) - 1, sqrt(2) - 1], |extra| tiny."""
    fm = e.f
    ef = e.to_float(expo)
    if fm is _F32:
        # hi + lo = e ln2_hi + f - q/2 exactly, q = f^2 rounded: two Fast2Sums, the larger
        # operand first (|e ln2_hi| >= |f| unless e = 0; |e ln2_hi + f| >= 0.27 > q/2 unless
        # e = 0, and |f| > f^2/2).
        q = e.mul(f, f)
        hi, lo = e.fast_two_sum(e.mul(ef, fm.LOG_LN2_HI), f)
        hi, lo2 = e.fast_two_sum(hi, e.mul(-0.5, q))
        # The rest: -(f^2 - q)/2 + f^3 P(f) + e ln2_lo + extra.
        cubic = e.mul(e.mul(q, f), e.horner(f, fm.LOG_P))
        rest = e.fma(-0.5, e.fma(f, f, e.neg(q)), e.add(cubic, e.fma(ef, fm.LOG_LN2_LO, extra)))
        return e.add(hi, e.add(e.add(lo, lo2), rest))
    # fdlibm: log1p(f) = f - hfsq + s (hfsq + R(s^2)), s = f / (2 + f), hfsq = f^2 / 2.
    s = e.div(f, e.add(2.0, f))
    z = e.mul(s, s)
    big_r = e.mul(z, e.horner(z, fm.LOG_R))
    hfsq = e.mul(e.mul(0.5, f), f)
    low = e.fma(s, e.add(hfsq, big_r), e.fma(ef, fm.LOG_LN2_LO, extra))
    return e.fma(ef, fm.LOG_LN2_HI, e.neg(e.sub(e.sub(hfsq, low), f)))


def _split_log_any(e: _Emitter, x):
    """_split_log for any finite x > 0: subnormals are scaled by 2^(mant + 2) first."""
    fm = e.f
    sub = e.cmp("<", x, 2.0 ** (1 - fm.bias))
    expo, m = _split_log(e, e.sel(sub, e.mul(x, 2.0 ** (fm.mant + 2)), x))
    return e.b.sub(expo, e.b.select(sub, e.ki(fm.mant + 2), e.ki(0))), m


def _log_core(e: _Emitter, x):
    """log(x) for finite x > 0."""
    expo, m = _split_log_any(e, x)
    return _log1p_kernel(e, expo, e.sub(m, 1.0), e.k(0.0))


def _log(e: _Emitter, x):
    y = _log_core(e, x)
    inf = float("inf")
    special = e.sel(e.cmp("==", x, 0.0), -inf, e.sel(e.cmp("==", x, inf), inf, float("nan")))
    return e.sel(e.and_(e.cmp(">", x, 0.0), e.cmp("<", x, inf)), y, special)


def _log1p(e: _Emitter, x):
    u, c = e.two_sum(1.0, x)                     # u + c = 1 + x exactly
    expo, m = _split_log(e, u)
    near = e.b.icmp_signed("==", expo, e.ki(0))
    # u in [sqrt(1/2), sqrt(2)): log1p(x) directly with f = x, else log(u) + c/u.
    f = e.sel(near, x, e.sub(m, 1.0))
    extra = e.sel(near, 0.0, e.div(c, u))
    y = _log1p_kernel(e, expo, f, extra)
    inf = float("inf")
    y = e.sel(e.cmp("==", x, 0.0), x, y)         # keeps the sign of zero
    special = e.sel(e.cmp("==", x, -1.0), -inf, e.sel(e.cmp("==", x, inf), inf, float("nan")))
    return e.sel(e.and_(e.cmp(">", x, -1.0), e.cmp("<", x, inf)), y, special)


# --- sin and cos ---------------------------------------------------------------------------

# 2/pi to 1280 bits: the integer floor(2/pi * 2^1280), so bit i after the binary point
# (weight 2^-i, i >= 1) is bit 1280 - i here. The Payne-Hanek reduction reads windows of it.
_TWO_OVER_PI_BITS = 1280
_TWO_OVER_PI = int(
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e0"
    "06492eea09d1921cfe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d639835339f4"
    "9c845f8bbdf9283b1ff897ffde05980fef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d"
    "7527bac7ebe5f17b3d0739f78a5292ea6bfb5fb11f8d5d0856033046fc7b6babf0cfbc209af4361d",
    16)


def _two_over_pi_bits(first: int, count: int) -> int:
    """Bits first .. first + count - 1 after the binary point of 2/pi as an integer (the bit of
    weight 2^-first is the most significant); bits at first <= 0 are the integer part, 0."""
    shift = _TWO_OVER_PI_BITS - (first + count - 1)
    if shift < 0:
        raise ValueError(f"2/pi is stored to {_TWO_OVER_PI_BITS} bits, not {first + count - 1}")
    return (_TWO_OVER_PI >> shift) & ((1 << count) - 1)


# The first 19 64-bit words of 2/pi, preceded by a zero word (the integer part, for windows
# that start before the binary point): word i holds bits 64 (i - 1) + 1 .. 64 i.
_PH_WORDS = [0] + [_two_over_pi_bits(64 * i + 1, 64) for i in range(19)]


def _i64(value: int) -> ir.Constant:
    """An i64 constant from an unsigned 64-bit value (LLVM reads literals as signed)."""
    return ir.Constant(ir.IntType(64), value - (1 << 64) if value >> 63 else value)


def _ph_window(b: ir.IRBuilder, pos, count: int, first: int, qmax: int) -> list:
    """count consecutive 64-bit words of 2/pi starting at the bit 64 first + pos - 63 (pos an
    i64, 0 <= pos < 64 (qmax + 1)): the words first + q and first + q + 1, q = pos >> 6,
    funnel-shifted left by pos & 63, and so on.

    Gathers from a table in memory are slow, so the words are picked from constants with one
    select per bit of q, highest bit first, keeping only the words still reachable. A pos out
    of range gives garbage, not undefined behaviour."""
    i64 = ir.IntType(64)
    words = [_i64(w) for w in _PH_WORDS[first:first + qmax + count + 1]]
    q = b.lshr(pos, i64(6))
    for bit in reversed(range(qmax.bit_length())):
        step = 1 << bit
        taken = b.trunc(b.lshr(q, i64(bit)), ir.IntType(1))
        # Below this bit, q can still add up to step - 1.
        words = [b.select(taken, words[i + step], words[i]) if i + step < len(words)
                 else words[i] for i in range(min(step + count, len(words)))]
    sh = b.and_(pos, i64(63))
    # fshl(hi, lo, sh) = (hi << sh) | (lo >> (64 - sh)), and hi for sh = 0.
    fshl = b.module.declare_intrinsic("llvm.fshl", [i64], ir.FunctionType(i64, [i64] * 3))
    return [b.call(fshl, [hi, lo, sh]) for hi, lo in zip(words[:count], words[1:count + 1])]


def _mul_high(b: ir.IRBuilder, a, w):
    """floor(a w / 2^64) for unsigned i64 a < 2^60 and w, from partial products of at most
    30 x 32 bits (vector multiplies of 32-bit halves; the usual 32 x 32 split is recognised
    by LLVM as an i128 multiply, which it does not vectorise).

    a = a1 2^30 + a0, w = w1 2^32 + w0: a w = z 2^62 + v 2^32 + u 2^30 + t with z = a1 w1,
    v = a0 w1, u = a1 w0, t = a0 w0, each below 2^62. The parts of them below 2^64, divided by
    2^30 (t rounded down, which leaves the floor unchanged), add up to less than 2^36."""
    i64 = ir.IntType(64)
    a0, a1 = b.and_(a, i64((1 << 30) - 1)), b.lshr(a, i64(30))
    w0, w1 = b.and_(w, i64(0xFFFFFFFF)), b.lshr(w, i64(32))
    z, v, u, t = b.mul(a1, w1), b.mul(a0, w1), b.mul(a1, w0), b.mul(a0, w0)
    low = b.add(b.add(b.shl(b.and_(z, i64(3)), i64(32)),
                      b.shl(b.and_(v, i64(0xFFFFFFFF)), i64(2))),
                b.add(b.and_(u, i64((1 << 34) - 1)), b.lshr(t, i64(30))))
    high = b.add(b.add(b.lshr(z, i64(2)), b.lshr(v, i64(32))), b.lshr(u, i64(34)))
    return b.add(high, b.lshr(low, i64(34)))


def _payne_hanek_f32(e: _Emitter, x):
    """x -> (n, r) with |x| = n pi/2 + r (mod 2 pi), n an i64, r a double, |r| <= pi/4 (a hair
    more); for float |x| >= 2^25 (garbage below, and for inf and NaN). The sign of x is
    ignored.

    |x| = m 2^E, m the 24-bit integer mantissa. Bits of 2/pi of weight 2^-i with i <= E - 2
    contribute multiples of 4 to |x| 2/pi and drop out; with W the 96 bits from bit E - 1,
    p = 2^62 (|x| 2/pi mod 4) = m W 2^-32 mod 2^64 = m w0 + floor(m w1 / 2^32) mod 2^64,
    where w0 is the first 64 bits of W and w1 the last 32 (as glibc's sinf). The dropped bits
    make p too small by less than 2 units (2^-61 in units of pi/2). n = p rounded at bit 62,
    r = (p - n 2^62) 2^-62 pi/2."""
    b = e.b
    i32, i64, dbl = ir.IntType(32), ir.IntType(64), ir.DoubleType()
    bits = b.bitcast(x, i32)
    # Bit E - 1 = biased exponent - 151 = 64 + pos - 63: pos = biased exponent - 152, in
    # [0, 103] for E >= 2, so W lies in words 1 .. 3.
    pos = b.sub(b.zext(b.and_(b.lshr(bits, i32(23)), i32(0xFF)), i64), i64(152))
    w0, w1 = _ph_window(b, pos, 2, first=1, qmax=1)
    m = b.zext(b.or_(b.and_(bits, i32(0x7FFFFF)), i32(0x800000)), i64)
    p = b.add(b.mul(m, w0), b.lshr(b.mul(m, b.lshr(w1, i64(32))), i64(32)))
    n = b.lshr(b.add(p, i64(1 << 61)), i64(62))
    frac = b.sub(p, b.shl(n, i64(62)))                      # signed, |frac| <= 2^61
    r = b.fmul(b.sitofp(frac, dbl), ir.Constant(dbl, _F64.PIO2_1 * 2.0**-62))
    return n, r


def _payne_hanek_f64(e: _Emitter, x):
    """x -> (n, rh, rl) with |x| = n pi/2 + rh + rl (mod 2 pi), n an i64, |rh| <= pi/4 (a hair
    more); for |x| >= 2^-10 (garbage below, and for inf and NaN). The sign of x is ignored.

    As for float, with |x| = m 2^E, m of 53 bits and W = w0 w1 w2 the 192 bits of 2/pi from
    bit E - 1: 2^190 (|x| 2/pi mod 4) = m W mod 2^192. Its top two words are exactly
    p = (m w0 mod 2^64) 2^64 + m w1 mod 2^128 plus the carry out of m w2 (below 2^117), which
    is added in floating point instead: t = m w2 2^-190 < 2^-73 in units of pi/2, with a
    relative error of 2^-52. n is p rounded at bit 126; the centred fraction p - n 2^126 is
    split into three pieces that convert to double exactly (51, 43 and 32 bits), summed with
    t as a double-double and multiplied by pi/2. The closest a double comes to a multiple of
    pi/2 is about 2^-61 of it; the absolute error here, below 2^-124, keeps r accurate to a
    relative 2^-62 or better."""
    b = e.b
    i64 = ir.IntType(64)
    bits = b.bitcast(x, i64)
    # Bit E - 1 = biased exponent - 1076 = pos - 63: pos = biased exponent - 1013, in
    # [0, 1034] for E >= -62 (W in words 0 .. 19).
    pos = b.sub(b.and_(b.lshr(bits, i64(52)), i64(0x7FF)), i64(1013))
    w0, w1, w2 = _ph_window(b, pos, 3, first=0, qmax=16)
    m = b.or_(b.and_(bits, i64((1 << 52) - 1)), i64(1 << 52))
    p1 = b.mul(m, w1)
    p2 = b.add(b.mul(m, w0), _mul_high(b, m, w1))
    n = b.lshr(b.add(p2, i64(1 << 61)), i64(62))
    p2 = b.sub(p2, b.shl(n, i64(62)))                       # signed, |p2| <= 2^61
    # p2 p1 = A 2^75 + C 2^32 + D with A = p2 >> 11 (signed), C < 2^43, D < 2^32.
    big = b.ashr(p2, i64(11))
    mid = b.or_(b.shl(b.and_(p2, i64(0x7FF)), i64(32)), b.lshr(p1, i64(32)))
    low = b.and_(p1, i64(0xFFFFFFFF))
    fa, fc, fd = (e.mul(e.to_float(v), 2.0**-k) for v, k in ((big, 51), (mid, 94), (low, 126)))
    t = e.mul(e.mul(e.to_float(m), 2.0**-190), b.uitofp(w2, e.ty))
    # fh + fl = the fraction: fh + fl_exact = fa + fc exactly (|fa| > |fc| unless fa = 0), and
    # fd + t < 2^-93 is below 2^-31 of it, since |fraction| > 2^-62 for every double.
    fh, fl = e.fast_two_sum(fa, fc)
    fl = e.add(fl, e.add(fd, t))
    # (fh + fl) pi/2 with pi/2 = PIO2_1 + PIO2_2 as a double-double product; rl is within a
    # few ulp(rh), which the polynomials take to first order.
    rh = e.mul(fh, _F64.PIO2_1)
    rl = e.fma(fh, _F64.PIO2_1, e.neg(rh))
    rl = e.add(rl, e.fma(fh, _F64.PIO2_2, e.mul(fl, _F64.PIO2_1)))
    return n, rh, rl


def _reduce_pio2(e: _Emitter, ax):
    """ax = |x| -> (j, rh, rl) with ax = j pi/2 + rh + rl (mod 2 pi), |rh| <= pi/4 (a hair
    more), in the format of e; j is an integer (only j mod 4 is used).

    Both reductions are computed and one is selected per lane. float: Cody-Waite in double
    below TRIG_RANGE, Payne-Hanek above. double: none below pi/4, Payne-Hanek above (it is
    exact enough everywhere, and cheaper than computing Cody-Waite as well). The result for
    infinite or NaN x is garbage (the caller returns NaN)."""
    b = e.b
    if e.f is _F32:
        small = e.cmp("<", ax, _F32.TRIG_RANGE)
        # j < 2^30, so j * PIO2_1 is exact in the fma, and the neglected j (pi/2 - PIO2_1 -
        # PIO2_2) (< 2^-79) is far below the smallest |r| of a float in range.
        d = _Emitter(b, _F64)
        xd = b.fpext(e.sel(small, ax, 0.0), d.ty)
        j = d.rint(d.mul(xd, _F64.TWO_OVER_PI))
        a = d.fma(d.neg(j), _F64.PIO2_1, xd)                  # exact
        r = d.fma(d.neg(j), _F64.PIO2_2, a)
        n, big_r = _payne_hanek_f32(e, ax)
        r = d.sel(small, r, big_r)
        j = b.trunc(b.select(small, d.to_int(j), n), e.ity)
        rh = b.fptrunc(r, e.ty)
        rl = b.fptrunc(d.sub(r, b.fpext(rh, d.ty)), e.ty)
        return j, rh, rl
    small = e.cmp("<", ax, _F64.PIO4_HI)
    n, rh, rl = _payne_hanek_f64(e, ax)
    return b.select(small, e.ki(0), n), e.sel(small, ax, rh), e.sel(small, 0.0, rl)


def _sin_poly(e: _Emitter, rh, rl, z):
    """sin(rh + rl) = rh + rh^3 S(z) + rl (1 - z/2), z = rh^2."""
    low = e.fma(e.mul(-0.5, z), rl, rl)
    return e.add(rh, e.fma(e.mul(rh, z), e.horner(z, e.f.SIN_P), low))


def _cos_poly(e: _Emitter, rh, rl, z):
    """cos(rh + rl) = 1 - rh^2/2 + rh^4 C(z) - rh rl; 1 - z/2 is formed exactly as w + its
    rounding error (Fast2Sum), with the rounding error of z = rh^2 from an fma."""
    ze = e.fma(rh, rh, e.neg(z))
    hz = e.mul(0.5, z)
    w = e.sub(1.0, hz)
    err = e.sub(e.sub(1.0, w), hz)
    low = e.fma(e.mul(z, z), e.horner(z, e.f.COS_P), e.neg(e.fma(rh, rl, e.mul(0.5, ze))))
    return e.add(w, e.add(err, low))


def _sincos(e: _Emitter, x, cosine: bool):
    """sin or cos of |x| from the reduction, then sin x = sign(x) sin|x| (so sin(-0) = -0)."""
    ax = e.fabs(x)
    j, rh, rl = _reduce_pio2(e, ax)
    z = e.mul(rh, rh)
    sin_r = _sin_poly(e, rh, rl, z)
    cos_r = _cos_poly(e, rh, rl, z)
    b = e.b
    # sin: j mod 4 = 0, 1, 2, 3 -> s, c, -s, -c; cos: c, -s, -c, s (cos x = sin(x + pi/2)).
    if cosine:
        j = b.add(j, ir.Constant(j.type, 1))
    odd = b.trunc(j, ir.IntType(1))
    negate = b.trunc(b.lshr(j, ir.Constant(j.type, 1)), ir.IntType(1))
    if not cosine:
        negate = b.xor(negate, b.icmp_signed("<", b.bitcast(x, e.ity), e.ki(0)))
    y = e.sel(odd, cos_r, sin_r)
    y = e.sel(negate, e.neg(y), y)
    return e.sel(e.cmp("<", ax, float("inf")), y, float("nan"))


# --- atan ----------------------------------------------------------------------------------

def _atan(e: _Emitter, x):
    """Reduce |x| to |t| <= tan(pi/8): atan|x| = base + atan(t), base = 0, pi/4 or pi/2, with
    t = |x|, (|x| - 1)/(|x| + 1) or -1/|x|. num and den are exact pairs, the quotient is
    corrected by its fma remainder, and atan(t + tl) = t + t^3 A(t^2) + tl (1 - t^2)."""
    fm = e.f
    ax = e.fabs(x)
    ax = e.sel(e.cmp("<", ax, fm.ATAN_BIG), ax, fm.ATAN_BIG)   # inf (and NaN) -> finite
    big = e.cmp(">", ax, _TAN_3PI_8)
    mid = e.and_(e.cmp(">", ax, _TAN_PI_8), e.not_(big))
    num = e.sel(big, -1.0, e.sel(mid, e.sub(ax, 1.0), ax))
    den = e.sel(big, ax, e.sel(mid, e.add(ax, 1.0), 1.0))
    # Rounding errors of ax - 1 and ax + 1 (both exactly representable corrections).
    num_lo = e.sel(mid, e.sub(ax, e.add(num, 1.0)), 0.0)
    den_lo = e.sel(mid, e.sub(ax, e.sub(den, 1.0)), 0.0)
    # t + tl = (num + num_lo) / (den + den_lo) with one division (as in _tanh).
    inv = e.div(1.0, den)
    t = e.mul(num, inv)
    rem = e.add(e.fma(e.neg(t), den, num), e.fma(e.neg(t), den_lo, num_lo))
    tl = e.mul(rem, inv)
    z = e.mul(t, t)
    base_hi = e.sel(big, fm.PIO2_HI, e.sel(mid, fm.PIO4_HI, 0.0))
    base_lo = e.sel(big, fm.PIO2_LO, e.sel(mid, fm.PIO4_LO, 0.0))
    s, se = e.fast_two_sum(base_hi, t)
    tail = e.fma(e.mul(t, z), e.horner(z, fm.ATAN_P), e.fma(e.neg(z), tl, tl))
    y = e.add(s, e.add(se, e.add(tail, base_lo)))
    y = e.copysign(y, x)
    return e.sel(e.isnan(x), x, y)


# --- pow -----------------------------------------------------------------------------------

def _log_dd(e: _Emitter, ax):
    """log(ax) for finite ax > 0 as a double-double (hi, lo), relative error about 2^-67.

    log m = 2 atanh(s) = 2s + (2/3) s^3 + s^5 Q(s^2), s = (m - 1)/(m + 1) <= 3 - 2 sqrt(2).
    s = sh + sl from the fma remainder of the division; s^2, s^3 and (2/3 + s^2 Q) are
    double-double products; e ln2 uses the 42-bit ln2_hi (exact product)."""
    fm = e.f
    expo, m = _split_log_any(e, ax)
    u = e.sub(m, 1.0)                                        # exact
    vh = e.add(m, 1.0)
    vl = e.sub(m, e.sub(vh, 1.0))                            # m + 1 = vh + vl exactly
    inv = e.div(1.0, vh)
    sh = e.mul(u, inv)
    sl = e.mul(e.fma(e.neg(sh), vl, e.fma(e.neg(sh), vh, u)), inv)
    # s^2 = w + wl
    w = e.mul(sh, sh)
    wl = e.fma(e.mul(2.0, sh), sl, e.fma(sh, sh, e.neg(w)))
    # s^3 = c + cl
    c = e.mul(sh, w)
    cl = e.fma(sh, wl, e.fma(sl, w, e.fma(sh, w, e.neg(c))))
    # Q = 2/3 + s^2 Q(s^2) = qh + ql
    qt = e.mul(w, e.horner(w, fm.POW_Q))
    qh, ql = e.fast_two_sum(fm.TWO_THIRDS_HI, qt)
    ql = e.add(ql, fm.TWO_THIRDS_LO)
    # B = s^3 Q = bh + bl
    bh = e.mul(c, qh)
    bl = e.fma(c, ql, e.fma(cl, qh, e.fma(c, qh, e.neg(bh))))
    # log m = 2 sh + bh + (2 sl + bl); |bh| < |2 sh| / 100
    lh, ll = e.fast_two_sum(e.mul(2.0, sh), bh)
    ll = e.add(ll, e.fma(2.0, sl, bl))
    ef = e.to_float(expo)
    th, tl = e.fast_two_sum(e.mul(ef, fm.LOG_LN2_HI), lh)
    tl = e.add(tl, e.fma(ef, fm.LOG_LN2_LO, ll))
    return e.fast_two_sum(th, tl)


def _pow_magnitude_f64(e: _Emitter, ax, y):
    """|x|^y = exp(y log|x|) for finite ax > 0 and finite y, with double-double log."""
    lh, ll = _log_dd(e, ax)
    zh = e.mul(y, lh)
    zl = e.fma(y, ll, e.fma(y, lh, e.neg(zh)))
    return _exp_core(e, zh, zl)


def _pow_special(e: _Emitter, x, y, magnitude: Callable):
    """pow with all C99 special cases; magnitude(ax, y) computes |x|^y for finite ax > 0,
    finite y (it is called on sanitised arguments)."""
    inf, nan = float("inf"), float("nan")
    ax, ay = e.fabs(x), e.fabs(y)
    x_finite = e.cmp("<", ax, inf)
    y_finite = e.cmp("<", ay, inf)
    regular = e.and_(e.and_(e.cmp(">", ax, 0.0), x_finite), y_finite)
    mag = magnitude(e.sel(regular, ax, 1.0), e.sel(regular, y, 0.0))
    y_int = e.cmp("==", e.trunc(y), y)
    # Odd integer: y/2 is not an integer; every float >= 2^(mant+1) is even.
    half = e.mul(y, 0.5)
    y_odd = e.and_(e.and_(y_int, e.cmp("!=", e.trunc(half), half)),
                   e.cmp("<", ay, 2.0 ** (e.f.mant + 1)))
    y_pos = e.cmp(">", y, 0.0)
    # Magnitudes of the infinite / zero cases.
    mag = e.sel(y_finite, mag,
                e.sel(e.cmp("==", ax, 1.0), 1.0,
                      e.sel(e.b.icmp_unsigned("==", e.cmp(">", ax, 1.0), y_pos), inf, 0.0)))
    mag = e.sel(e.cmp("==", ax, 0.0), e.sel(y_pos, 0.0, inf), mag)
    mag = e.sel(e.cmp("==", ax, inf), e.sel(y_pos, inf, 0.0), mag)
    # Sign: negative x (including -0 and -inf) with an odd integer y.
    x_neg = e.b.icmp_signed("<", e.b.bitcast(x, e.ity), e.ki(0))
    res = e.sel(e.and_(x_neg, y_odd), e.neg(mag), mag)
    # Finite negative x with finite non-integer y.
    bad = e.and_(e.and_(e.cmp("<", x, 0.0), x_finite), e.and_(y_finite, e.not_(y_int)))
    res = e.sel(e.or_(bad, e.or_(e.isnan(x), e.isnan(y))), nan, res)
    # pow(x, +-0) = 1 and pow(1, y) = 1, even for NaN.
    return e.sel(e.or_(e.cmp("==", y, 0.0), e.cmp("==", x, 1.0)), 1.0, res)


def _pow(e: _Emitter, x, y):
    if e.f is _F64:
        return _pow_special(e, x, y, lambda ax, yy: _pow_magnitude_f64(e, ax, yy))
    # float: in double, exp(y log|x|) has relative error ~2^-50, far below half a float ULP;
    # one rounding to float at the end.
    d = _Emitter(e.b, _F64)

    def magnitude(ax, yy):
        return _exp_core(d, d.mul(yy, _log_core(d, ax)), d.k(0.0))

    res = _pow_special(d, e.b.fpext(x, d.ty), e.b.fpext(y, d.ty), magnitude)
    return e.b.fptrunc(res, e.ty)


_BUILDERS: dict[str, Callable] = {
    "exp": _exp, "expm1": _expm1, "log": _log, "log1p": _log1p, "tanh": _tanh,
    "sin": lambda e, x: _sincos(e, x, cosine=False),
    "cos": lambda e, x: _sincos(e, x, cosine=True),
    "atan": _atan, "pow": _pow,
}


def _function(module: ir.Module, name: str, fmt: _Format) -> ir.Function:
    """The internal always-inline function tj.<name>.<f32|f64>, defined on first use."""
    fname = f"tj.{name}.{fmt.name}"
    if fname in module.globals:
        return module.globals[fname]
    fnty = ir.FunctionType(fmt.ir, [fmt.ir] * _ARITY[name])
    fn = ir.Function(module, fnty, fname)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    builder.ret(_BUILDERS[name](_Emitter(builder, fmt), *fn.args))
    return fn


def call(builder: ir.IRBuilder, name: str, args: Sequence[ir.Value]) -> ir.Value:
    """Emit name(*args) for scalar float or double arguments (pow takes two of the same type).

    Defines the branch-free implementation once per module as an internal alwaysinline function
    and emits a call to it; at -O3 it is inlined and the caller's loop vectorises."""
    if name not in _ARITY:
        raise ValueError(f"unsupported math function {name!r}; supported: {', '.join(SUPPORTED)}")
    args = list(args)
    if len(args) != _ARITY[name]:
        raise TypeError(f"{name} takes {_ARITY[name]} argument(s), got {len(args)}")
    fmt = _FORMATS.get(str(args[0].type))
    if fmt is None or any(a.type != args[0].type for a in args):
        raise TypeError(f"{name} needs float or double arguments of one type, got "
                        f"{', '.join(str(a.type) for a in args)}")
    return builder.call(_function(builder.module, name, fmt), args)
