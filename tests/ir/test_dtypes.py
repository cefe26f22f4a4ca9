"""The narrow dtypes: float16, bfloat16 (through ml_dtypes), the integers of 8 and 16 bits and
the unsigned ones, against NumPy (and ml_dtypes) on the cpu backend, fused and unfused, and
the CUDA backend or its emulator.

NumPy is the oracle throughout: promotion (NumPy 2's), casts bit for bit, the elementwise
functions (NumPy's float16 loops compute in float32 and round once, as the widen pass does),
wrap-around of the small integers, reductions, sorts and products, moves of elements, and the
gradients of half-precision losses against float64 finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from npcheck import assert_same, check, cuda_backend, finite_differences, host
from tracejit import passes
from tracejit import primitives as P
from tracejit.ir import DTYPES, compute_dtype, format_eqn, names_of

NARROW = ["float16", "int8", "int16", "uint8", "uint16", "uint32", "uint64"]
if "bf16" in DTYPES:
    NARROW.append(DTYPES["bf16"].name)
ALL = NARROW + ["bool", "int32", "int64", "float32", "float64"]
HALF = [d for d in NARROW if np.dtype(d).itemsize == 2 and np.dtype(d).kind != "i"
        and np.dtype(d).kind != "u"]


def dt(name):
    return DTYPES["bf16"] if name == "bfloat16" else np.dtype(name)


def sample(name, shape=(3, 4), seed=0, low=-40, high=40):
    """Values every dtype holds: small integers (non-negative for the unsigned), or floats
    with fractions, a zero and a negative zero where they are signed."""
    rng = np.random.default_rng(seed)
    d = dt(name)
    if d == np.bool_:
        return rng.random(shape) < 0.5
    if d.kind == "u":
        return rng.integers(0, high, shape).astype(d)
    if d.kind == "i":
        return rng.integers(low, high, shape).astype(d)
    x = rng.uniform(low / 8, high / 8, shape)
    x.flat[0], x.flat[-1] = 0.0, -0.0
    return x.astype(d)


def runs(f, **kw):
    """tj.jit(f) on the cpu backend fused and unfused, and on the CUDA backend."""
    out = [tj.jit(f, fuse=fuse, **kw) for fuse in (True, False)]
    if cuda_backend():
        out.append(tj.jit(f, backend=cuda_backend(), **kw))
    return out


# ---------------------------------------------------------------------------------------------
# promotion and casts


@pytest.mark.parametrize("op", ["add", "multiply", "maximum", "less", "true_divide"])
def test_promotion_of_every_pair_is_numpys(op):
    ufunc = getattr(np, op)
    xs = [sample(d, (4,), seed=i, low=1) for i, d in enumerate(ALL)]

    def f(*xs):
        return [ufunc(a, b) for a in xs for b in xs] + [ufunc(a, 3) for a in xs] + \
            [ufunc(a, 2.5) for a in xs]

    check(f, *xs, rtol=1e-2)


@pytest.mark.parametrize("src", ALL)
def test_casts_to_every_dtype_are_numpys_bit_for_bit(src):
    x = sample(src, (6, 7), seed=3, low=-120, high=120)
    if dt(src).kind == "f" or src == "bfloat16":
        x.flat[1:4] = np.array([np.nan, np.inf, -np.inf]).astype(x.dtype)
    finite = [d for d in ALL]

    def f(x):
        return [x.astype(dt(d)) for d in finite]

    with np.errstate(all="ignore"):
        want = f(x)
    # NaN and infinities give an undefined integer in C (NumPy warns): compared where defined.
    # ml_dtypes converts bfloat16 outside an integer's range to 0 (NumPy's own types wrap as
    # C compilers do on x86, as tracejit does): bfloat16 is compared within the range.
    wide = x.astype(np.float64)
    defined = np.isfinite(wide) if x.dtype != np.bool_ else np.ones(x.shape, bool)
    for jitted in runs(f):
        got = host(jitted(x))
        for d, g, w in zip(finite, got, want):
            assert g.dtype == w.dtype
            keep = defined | (dt(d).kind == "f") | (d in ("bool", "bfloat16"))
            if src == "bfloat16" and dt(d).kind in "iu":
                info = np.iinfo(dt(d))
                keep = keep & (np.trunc(wide) >= info.min) & (np.trunc(wide) <= info.max)
            np.testing.assert_array_equal(g.view(np.uint8).reshape(*x.shape, -1)[keep],
                                          w.view(np.uint8).reshape(*x.shape, -1)[keep],
                                          err_msg=f"{src} -> {d} ({jitted.backend})")


def test_rounding_to_half_is_once_to_nearest_even():
    # Doubles just beside the halfway points of float16 and bfloat16: rounding through
    # float32 to nearest would move them onto the halfway point and round them wrong.
    rng = np.random.default_rng(5)
    base = rng.uniform(-4, 4, 256)
    half = base.astype(np.float16).astype(np.float64)
    ulp = np.spacing(half.astype(np.float16)).astype(np.float64)
    x = np.concatenate([half + ulp / 2 + 1e-12, half + ulp / 2 - 1e-12, half + ulp / 2, base])
    targets = [np.float16] + ([DTYPES["bf16"]] if "bf16" in DTYPES else [])
    for jitted in runs(lambda x: [x.astype(t) for t in targets]):
        for g, t in zip(host(jitted(x)), targets):
            np.testing.assert_array_equal(g.view(np.uint16), x.astype(t).view(np.uint16))


def test_images_arrive_as_uint8():
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8)).astype(np.uint8)

    def scale(x):
        return x.astype(np.float32) / 255

    check(scale, x)
    # One kernel: the conversion is fused with the division, and reads bytes.
    program = tj.jit(scale).compiled(x).program
    assert len(program.kernels) == 1


def test_python_scalars_stay_weak_with_narrow_arrays():
    x = sample("uint8", (5,))
    h = sample("float16", (5,))
    check(lambda x, h: (x + 1, x * 2, h * 2.5, h + 1, x + h, x / 2), x, h)


# ---------------------------------------------------------------------------------------------
# elementwise arithmetic


@pytest.mark.parametrize("name", NARROW)
def test_integer_and_float_arithmetic(name):
    x, y = sample(name, seed=1), sample(name, seed=2, low=1)

    def f(x, y):
        out = [x + y, x - y, x * y, np.maximum(x, y), np.minimum(x, y), x == y, x < y,
               x >= y, np.abs(x), np.sign(x), np.square(x), x * 3 - 1, np.where(x > y, x, y)]
        if dt(name).kind in "iu":
            out += [x // (y + 1), x % (y + 1), x ** 2] if name != "uint64" else []
        else:
            out += [x / y, np.exp(x), np.log1p(np.abs(x)), np.sin(x), np.tanh(x), np.sqrt(
                np.abs(x)), x ** 2, np.floor(x), np.rint(x)]
        return out

    # ml_dtypes' sign of bfloat16 keeps the sign of -0.0 (NumPy's float types give +0.0).
    check(f, x, y, signed_zeros=name != "bfloat16")


@pytest.mark.parametrize("name", ["int8", "uint8", "int16", "uint16", "uint32", "uint64"])
def test_integers_wrap_around_as_numpys(name):
    info = np.iinfo(dt(name))
    x = np.array([info.max, info.min, info.max - 1, 1, 0], dt(name))
    y = np.array([1, 1, 3, info.max, info.max], dt(name))
    check(lambda x, y: (x + y, x - y, x * y, -x, x * 7, x.sum(), x.prod(), np.cumsum(x)), x, y)


def test_uint64_above_int64_compares_and_orders_as_unsigned():
    x = np.array([2**64 - 1, 2**63, 5, 2**63 - 1, 0, 2**63 + 7], np.uint64)
    y = np.array([1, 2**63 + 1, 2**64 - 2, 2**63, 0, 3], np.uint64)
    check(lambda x, y: (x < y, x >= y, np.maximum(x, y), np.minimum(x, y), x.max(), x.min(),
                        np.argmax(x), np.argmin(x), np.sort(x), np.argsort(x, stable=True),
                        x.astype(np.float64), x.astype(np.float32), np.abs(x), np.sign(x),
                        x ** 3, x * y, x - y), x, y)


def test_uint64_division_is_refused_at_the_users_line():
    x = np.array([7, 2**63 + 1], np.uint64)
    with pytest.raises(tj.UnsupportedError, match="uint64") as ei:
        tj.jit(lambda x: x // np.uint64(3))(x)
    assert "test_dtypes.py" in str(ei.value)


# ---------------------------------------------------------------------------------------------
# reductions, scans, sorts and products


@pytest.mark.parametrize("name", NARROW)
def test_reductions_scans_and_sorts(name):
    x = sample(name, (5, 6), seed=4, low=-8, high=8)

    def f(x):
        out = [x.sum(), x.sum(axis=0), x.max(axis=1), x.min(), np.argmax(x, axis=0),
               np.argmin(x), x.mean(axis=1), np.sort(x, axis=1), np.argsort(x, axis=0,
                                                                              stable=True),
               np.cumsum(x, axis=1), x.astype(np.float64).std()]
        if name != "uint64":
            out.append(np.cumprod(x[:, :3], axis=1))
        return out

    # Half precision accumulates in float32 (ml_dtypes' bfloat16 cumsum in bfloat16): a
    # partial sum may differ by one unit of the largest partial sum's precision.
    check(f, x, rtol=2e-2, atol=6e-2 if name in HALF else 0.0)


@pytest.mark.parametrize("name", NARROW)
def test_products(name):
    a, b = sample(name, (5, 7), seed=6, low=-6, high=6), sample(name, (7, 3), seed=7, low=-6,
                                                                high=6)
    einsum = name != "bfloat16"             # NumPy's einsum has no bfloat16 loop
    check(lambda a, b: (a @ b, np.dot(a[0], b[:, 1])) + (
        (np.einsum("ij,jk->ik", a, b),) if einsum else ()), a, b, rtol=2e-2)


def test_half_sums_accumulate_in_float32():
    # 4096 ones and a thousand 2**-11: a float16 accumulator would stop at 2048 and never
    # add the small ones; accumulated in float32, the sum is 4096.5 -> 4096 (float16) and
    # the mean exactly NumPy's (which accumulates in float32 too).
    x = np.concatenate([np.ones(4096), np.full(1024, 2.0**-11)]).astype(np.float16)
    for jitted in runs(lambda x: (x.sum(), x.mean(), x[:3000].sum())):
        s, m, s3 = host(jitted(x))
        assert s == np.float16(4096.5) and s.dtype == np.float16
        assert m == x.mean() and s3 == np.float16(3000)


# ---------------------------------------------------------------------------------------------
# moves of elements and constants


@pytest.mark.parametrize("name", ALL)
def test_moves_of_elements(name):
    x = sample(name, (4, 5), seed=8)
    k = sample(name, (4, 5), seed=9)             # a constant of the dtype, closed over

    def f(x):
        return (x.T, x[::-1, 1:], np.concatenate([x, k]), np.pad(x, 1), x[np.array([2, 0])],
                np.flip(x, 1), np.stack([x, k]), np.where(x == k, k, x), np.roll(x, 2),
                np.broadcast_to(x[:1], (3, 5)), x.reshape(5, 4), np.tril(x))

    check(f, x)


# ---------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("name", HALF)
def test_gradients_of_half_precision_losses(name):
    rng = np.random.default_rng(10)
    w64, x64 = rng.standard_normal((6, 4)) * 0.5, rng.standard_normal((8, 6))
    target = rng.standard_normal((8, 4))

    def loss(w, x):
        h = np.tanh(x @ w)
        return np.mean((h - target.astype(w.dtype)) ** 2)

    w, x = w64.astype(dt(name)), x64.astype(dt(name))
    want = finite_differences(lambda w: loss(w, x64), w.astype(np.float64))
    tol = 2e-2 if name == "float16" else 8e-2
    for jitted in runs(tj.grad(loss)):
        got = host(jitted(w, x))
        assert got.dtype == w.dtype
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=tol * 0.1,
                                   err_msg=f"{name} ({jitted.backend})")


def test_mixed_precision_loss_gradient_keeps_parameter_dtypes():
    rng = np.random.default_rng(11)
    w = (rng.standard_normal((5, 3)) * 0.3).astype(np.float16)
    x = rng.standard_normal((7, 5)).astype(np.float32)

    def loss(w, x):
        return np.sum(np.tanh(x @ w.astype(np.float32)) ** 2)

    x64 = x.astype(np.float64)
    want = finite_differences(lambda w: np.sum(np.tanh(x64 @ w) ** 2), w.astype(np.float64))
    for jitted in runs(tj.grad(loss)):
        got = host(jitted(w, x))
        assert got.dtype == np.float16
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=3e-3, atol=3e-3)


# ---------------------------------------------------------------------------------------------
# the widen pass


def test_after_widen_only_moves_see_narrow_dtypes():
    def f(h, u, q):
        return (np.exp(h) * 2 + h.sum(), (u * u).max(), np.sort(q), u.astype(np.float16) @
                h.T, np.where(h > 0, h, 0.5))

    args = (sample("float16", (3, 4)), sample("uint8", (3, 4)), sample("uint64", (6,)))
    fn = passes.optimize(tj.trace(f, *args))
    names = names_of(fn)
    tj.verify(fn)
    moving = {"cast", "select", "gather", "constant"}
    for eqn in fn.eqns:
        if eqn.prim.name in moving or eqn.prim.category in (P.VIEW, P.STRUCTURAL):
            continue
        for a in (*eqn.inputs, eqn.out):
            assert compute_dtype(a.type.dtype) == a.type.dtype, format_eqn(eqn, names)
    check(f, *args, rtol=2e-2)


def test_half_precision_arithmetic_rounds_after_every_operation():
    # (x * 3) / 3 in float16 is not x for every x (NumPy rounds the product to float16); a
    # backend computing the whole expression in float32 would give x back.
    x = np.linspace(1, 2, 1025).astype(np.float16)
    want = (x * np.float16(3)) / np.float16(3)
    assert np.any(want != x)
    for jitted in runs(lambda x: (x * np.float16(3)) / np.float16(3)):
        assert_same(host(jitted(x)), want, rtol=0)
