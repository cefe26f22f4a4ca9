"""Random numbers inside compiled code: JAX's jax.random, on a counter-based generator.

A key is a uint32 array of shape (2,) (`key(seed)`); every function is a pure function of the
key, which is split (`split`, `fold_in`) rather than advanced. The bits come from
Threefry-2x32 (20 rounds, Salmon et al. 2011, as JAX uses it), the `threefry2x32` primitive:
an elementwise operation of the key and a counter, so the bits are computed inside the fused
kernels that use them (a dropout mask is never written to memory) and are the same on every
backend. The counter of an element is its position in the output (its row-major index, as
two 32-bit words), so `bits`, `split`, `fold_in`, `uniform` and `bernoulli` give, bit for bit,
what JAX's functions of the same names give for the same key, as do `randint` and
`permutation`; `normal` in float32 agrees with JAX's to float32 rounding (the inverse error
function is an approximation of the same accuracy).

    key = tj.random.key(0)
    k_init, k_drop = tj.random.split(key)
    mask = tj.random.bernoulli(k_drop, 0.9, (64, 128))     # inside a jitted step, too

Called outside a traced function, each runs eagerly (through the reference interpreter).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np

from . import errors, ops
from . import primitives as P
from .api import _run, trace_callable
from .ir import dtype_name, is_float, is_int
from .tracer import Tracer, current_trace

__all__ = ["key", "PRNGKey", "split", "fold_in", "bits", "uniform", "normal", "bernoulli",
           "randint", "permutation", "categorical", "gumbel"]

_MASK32 = 0xFFFFFFFF


def _eager(fn):
    """Run the decorated function in the current trace, or, outside any, trace it on its
    array arguments (the others, Python numbers and shapes, are static) and interpret it:
    the same primitives, so the same bits, as compiled."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        if current_trace() is not None:
            return fn(*args, **kwargs)
        arrays = [i for i, a in enumerate(args) if isinstance(a, (np.ndarray, np.generic))]

        def traced(*xs):
            full = list(args)
            for i, x in zip(arrays, xs):
                full[i] = x
            return fn(*full, **kwargs)

        t = trace_callable(traced, [args[i] for i in arrays], name=fn.__name__)
        return _run(t.fn, t.leaves, t.captured)[0]
    return run


def _check_key(k, where: str):
    t = ops.type_of(k)
    if t.dtype != "u32" or t.shape != (2,):
        raise errors.user_error(TypeError, f"{where}: a key is a uint32 array of shape (2,), "
                                f"as tracejit.random.key(seed) makes; got {t}")
    return k


def _words(k):
    """The key's two words, as rank-0 values."""
    return ops.reshape(ops.slice(k, (0,), (1,), (1,)), ()), \
        ops.reshape(ops.slice(k, (1,), (1,), (1,)), ())


def _shape(shape, where: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise errors.user_error(TypeError, f"{where}: shape must be a tuple of ints, got "
                                f"{shape!r}") from None
    if any(d < 0 for d in shape):
        raise errors.user_error(ValueError, f"{where}: negative dimension in {shape}")
    return shape


def _counters(shape: tuple[int, ...]):
    """(hi, lo): the row-major position of every element of `shape` as two uint32 words."""
    n = math.prod(shape)
    if n >= 1 << 32:
        raise errors.user_error(errors.UnsupportedError, f"random arrays of 2**32 elements or "
                                f"more are not supported (shape {shape})")
    lo = None
    stride = 1
    for d in reversed(range(len(shape))):
        term = ops.iota(shape, d, "u32")
        if stride != 1:
            term = ops.mul(term, np.uint32(stride))
        lo = term if lo is None else ops.add(lo, term)
        stride *= shape[d]
    if lo is None:                                      # shape (): the one position 0
        lo = np.uint32(0)
    return np.uint32(0), lo


def _threefry(k, hi, lo, words=(0, 1)):
    """Words of Threefry-2x32 of the key and the counters (hi, lo): 0 and 1 the output's
    two, 2 the two xored (one evaluation)."""
    k0, k1 = _words(k)
    return tuple(P.threefry2x32(k0, k1, hi, lo, word=w) for w in words)


def _bits32(k, shape):
    """32 random bits per element: the two words xored (JAX's)."""
    hi, lo = _counters(shape)
    return _threefry(k, hi, lo, (2,))[0]


def _pairs(w0, w1):
    """Keys (..., 2) from their two words: an elementwise choice along the new last axis (so
    that the keys are computed where they are used, not by a kernel of their own)."""
    shape = ops.type_of(w0).shape
    full = shape + (2,)
    dims = tuple(range(len(shape)))
    first = ops.eq(ops.iota(full, len(shape), "i32"), 0)
    return ops.select(first, ops.broadcast_in_dim(w0, full, dims),
                      ops.broadcast_in_dim(w1, full, dims))


# ---------------------------------------------------------------------------------------------
# keys


def key(seed) -> Any:
    """A key from an integer seed: [seed >> 32, seed & 0xFFFFFFFF] as uint32 (JAX's
    PRNGKey, with 64-bit seeds). The seed may be a traced integer."""
    if isinstance(seed, Tracer):
        if not is_int(seed.type.dtype) or seed.shape != ():
            raise errors.user_error(TypeError, f"key: the seed must be an integer scalar, got "
                                    f"{seed.type}")
        wide = ops.cast(seed, "i64")
        hi = ops.cast(ops.floordiv(wide, np.int64(1 << 32)), "u32")
        return np.stack([hi, ops.cast(wide, "u32")])
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise errors.user_error(TypeError, f"key: the seed must be an integer, got {seed!r}")
    seed = int(seed)
    if not -(1 << 63) <= seed < 1 << 64:
        raise errors.user_error(ValueError, f"key: the seed {seed} does not fit in 64 bits")
    seed &= (1 << 64) - 1
    return np.array([seed >> 32, seed & _MASK32], np.uint32)


#: jax.random.PRNGKey is key.
PRNGKey = key


@_eager
def split(key, num: int | Sequence[int] = 2):
    """`num` new keys (an int, or a shape: an array of keys of that shape), independent of
    each other and of `key`: shape num + (2,)."""
    shape = _shape(num, "split")
    k = _check_key(key, "split")
    return _pairs(*_threefry(k, *_counters(shape)))


@_eager
def fold_in(key, data):
    """A new key from `key` and an integer `data` (a step count, a device number): the same
    key for the same data, independent ones for different data."""
    k = _check_key(key, "fold_in")
    d = ops.cast(data, "u32") if isinstance(data, Tracer) else \
        np.uint32(int(data) & _MASK32)
    return _pairs(*_threefry(k, np.uint32(0), d))


# ---------------------------------------------------------------------------------------------
# bits and floats


_UINTS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64}


@_eager
def bits(key, shape=(), dtype=np.uint32):
    """Uniformly random unsigned integers of `dtype` (uint8, 16, 32 or 64)."""
    shape = _shape(shape, "bits")
    name = dtype_name(dtype)
    if name not in _UINTS:
        raise errors.user_error(TypeError, f"bits: dtype must be an unsigned integer type, "
                                f"got {np.dtype(dtype)}")
    k = _check_key(key, "bits")
    if name == "u64":
        w0, w1 = _threefry(k, *_counters(shape))
        return ops.add(ops.mul(ops.cast(w0, "u64"), np.uint64(1 << 32)), ops.cast(w1, "u64"))
    return ops.cast(_bits32(k, shape), name)


def _floats(k, shape, name: str):
    """Uniform floats of dtype `name` in [0, 1), JAX's: the high mantissa bits of random
    bits, as a multiple of 2**-mantissa."""
    if name == "f64":
        # 52 bits: w0's 32 and the high 20 of w1's, shifted into place, exact in float64
        w0, w1 = _threefry(k, *_counters(shape))
        m = ops.add(ops.mul(ops.cast(w0, "f64"), 2.0 ** 20),
                    ops.cast(ops.floordiv(w1, np.uint32(1 << 12)), "f64"))
        return ops.mul(m, 2.0 ** -52)
    if name == "f32":
        m = ops.floordiv(_bits32(k, shape), np.uint32(1 << 9))           # 23 bits
        return ops.mul(ops.cast(m, "f32"), np.float32(2.0 ** -23))
    mant = 10 if name == "f16" else 7                    # 16 random bits for the half types
    m = ops.floordiv(ops.cast(ops.cast(_bits32(k, shape), "u16"), "u32"),
                     np.uint32(1 << (16 - mant)))
    return ops.mul(ops.cast(m, "f32"), np.float32(2.0 ** -mant))     # exact, then rounded


def _float_dtype(dtype, where: str) -> str:
    name = dtype_name(dtype)
    if not is_float(name):
        raise errors.user_error(TypeError, f"{where}: dtype must be a float type, got "
                                f"{np.dtype(dtype)}")
    return name


@_eager
def uniform(key, shape=(), dtype=np.float32, minval=0.0, maxval=1.0):
    """Uniform floats in [minval, maxval) (float32 by default, as JAX's)."""
    shape = _shape(shape, "uniform")
    name = _float_dtype(dtype, "uniform")
    k = _check_key(key, "uniform")
    u = _floats(k, shape, name)
    compute = "f64" if name == "f64" else "f32"
    lo = ops.cast(minval, compute) if isinstance(minval, Tracer) else \
        np.asarray(minval, P.DTYPES[compute])
    hi = ops.cast(maxval, compute) if isinstance(maxval, Tracer) else \
        np.asarray(maxval, P.DTYPES[compute])
    out = np.maximum(lo, u * (hi - lo) + lo)
    out = np.broadcast_to(out, shape) if np.shape(out) != shape else out
    return out.astype(P.DTYPES[name])


# Giles (2010), "Approximating the erfinv function": single precision, relative error below
# 4e-7 on (-1, 1); the coefficients XLA uses for float32 (w = -log((1 - x)(1 + x))).
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                   0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _polynomial(coefficients, w):
    p = np.float32(coefficients[0])
    for c in coefficients[1:]:
        p = p * w + np.float32(c)
    return p


def _erfinv32(x):
    w = -np.log((np.float32(1) - x) * (np.float32(1) + x))
    central = _polynomial(_ERFINV_CENTRAL, w - np.float32(2.5))
    tail = _polynomial(_ERFINV_TAIL, np.sqrt(np.maximum(w, np.float32(5))) - np.float32(3))
    return np.where(w < np.float32(5), central, tail) * x


@_eager
def normal(key, shape=(), dtype=np.float32):
    """Standard normal floats (float32 by default). In float32, sqrt(2) erfinv(u) of a
    uniform u in (-1, 1), as JAX's; in float64, the Box-Muller transform of two 52-bit
    uniforms (so that the tails reach 8.5 standard deviations)."""
    shape = _shape(shape, "normal")
    name = _float_dtype(dtype, "normal")
    k = _check_key(key, "normal")
    if name == "f64":
        u1 = 1.0 - _floats(k, shape, "f64")                         # (0, 1]
        u2 = _floats(split(k, 1)[0], shape, "f64")
        return np.sqrt(-2.0 * np.log(u1)) * np.cos((2 * np.pi) * u2)
    lo = np.nextafter(np.float32(-1), np.float32(0))
    u = uniform(k, shape, np.float32, lo, np.float32(1))
    return (np.float32(np.sqrt(2)) * _erfinv32(u)).astype(P.DTYPES[name])


@_eager
def gumbel(key, shape=(), dtype=np.float32):
    """Standard Gumbel floats: -log(-log(u)), u uniform in [tiny, 1) (JAX's)."""
    shape = _shape(shape, "gumbel")
    name = _float_dtype(dtype, "gumbel")
    tiny = np.finfo(P.DTYPES["f64" if name == "f64" else "f32"]).tiny
    u = uniform(_check_key(key, "gumbel"), shape, dtype, tiny, 1.0)
    return -np.log(-np.log(u))


@_eager
def bernoulli(key, p=0.5, shape=None):
    """Booleans that are True with probability p (broadcast to `shape`, default p's shape):
    uniform(key, shape) < p, as JAX's."""
    p_shape = tuple(np.shape(p))
    shape = p_shape if shape is None else _shape(shape, "bernoulli")
    dtype = p.dtype if hasattr(p, "dtype") and np.issubdtype(p.dtype, np.floating) \
        else np.float32
    return uniform(_check_key(key, "bernoulli"), shape, dtype) < p


@_eager
def randint(key, shape, minval, maxval, dtype=np.int32):
    """Uniform integers in [minval, maxval) (minval where maxval <= minval), as JAX's: the
    remainders of two 32-bit draws combined, so the bias is below 2**-32 of the span."""
    shape = _shape(shape, "randint")
    name = dtype_name(dtype)
    if name not in ("i8", "i16", "i32", "u8", "u16", "u32"):
        raise errors.user_error(TypeError, f"randint: dtype must be an integer type of up to "
                                f"32 bits (as JAX's default int), got {np.dtype(dtype)}; "
                                "cast the result for another")
    k = _check_key(key, "randint")
    info = np.iinfo(P.DTYPES[name])
    lo = np.clip(minval, info.min, info.max).astype(np.int64)
    hi = np.clip(maxval, info.min, info.max).astype(np.int64)
    k1, k2 = split(k)
    higher, lower = _bits32(k1, shape), _bits32(k2, shape)
    span = ops.cast(hi - lo, "u32") if isinstance(hi - lo, Tracer) else \
        np.asarray(hi - lo).astype(np.uint32)
    span = np.where(hi <= lo, np.uint32(1), span)
    multiplier = np.uint32(1 << 16) % span
    multiplier = (multiplier * multiplier) % span
    offset = ((higher % span) * multiplier + lower % span) % span
    return (lo + offset.astype(np.int64)).astype(P.DTYPES[name])


def _shuffled(k, x, axis: int):
    """x's elements along `axis` in a random order: sorted by random bits, in as many rounds
    as JAX takes (enough that ties are unlikely: 3 log n / log 2**32)."""
    n = int(np.prod(np.shape(x)))
    rounds = int(np.ceil(3 * np.log(max(1, n)) / np.log(_MASK32)))
    for _ in range(rounds):
        k, sub = split(k)
        keys = _bits32(sub, tuple(np.shape(x)))
        order = np.argsort(keys, axis=axis, kind="stable")
        x = np.take_along_axis(x, order, axis=axis)
    return x


@_eager
def permutation(key, x, axis: int = 0, independent: bool = False):
    """A random permutation of range(x) for an int x, or x shuffled along `axis` (every
    slice in the same order; in its own order each with independent=True), as JAX's."""
    k = _check_key(key, "permutation")
    if isinstance(x, (int, np.integer)) or (np.ndim(x) == 0 and not isinstance(x, Tracer)):
        return _shuffled(k, np.arange(int(x)), 0)
    if np.ndim(x) == 0:
        raise errors.user_error(TypeError, "permutation: x must be an int or an array of at "
                                "least one dimension")
    axis = axis % np.ndim(x)
    if independent:
        return _shuffled(k, x, axis)
    order = _shuffled(k, np.arange(np.shape(x)[axis]), 0)
    return np.take(x, order, axis=axis)


@_eager
def categorical(key, logits, axis: int = -1, shape=None):
    """Samples of the categories of unnormalised log-probabilities `logits` along `axis`:
    the argmax of logits plus Gumbel noise, as JAX's. `shape` (default: logits' shape
    without `axis`) may add leading sample axes. int32 indices."""
    k = _check_key(key, "categorical")
    logits_shape = tuple(np.shape(logits))
    axis = axis % len(logits_shape)
    batch = logits_shape[:axis] + logits_shape[axis + 1:]
    shape = batch if shape is None else _shape(shape, "categorical")
    if shape[len(shape) - len(batch):] != batch:
        raise errors.user_error(ValueError, f"categorical: shape {shape} does not end with "
                                f"the logits' batch shape {batch}")
    prefix = shape[:len(shape) - len(batch)]
    noise_shape = list(shape[len(prefix):])
    noise_shape.insert(axis, logits_shape[axis])
    dtype = logits.dtype if np.issubdtype(np.dtype(logits.dtype), np.floating) else np.float32
    noise = gumbel(k, prefix + tuple(noise_shape), dtype)
    expanded = np.reshape(logits, (1,) * len(prefix) + logits_shape)
    return np.argmax(noise + expanded, axis=len(prefix) + axis).astype(np.int32)
