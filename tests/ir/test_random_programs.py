"""Random programs: hypothesis composes NumPy operations into small functions and every stage
of tracejit must agree on them.

A program is a straight-line list of steps over 1-4 input arrays: elementwise unary and
binary operations (with broadcasting between shapes like (3,1,4), (4,) and ()), comparisons
feeding np.where, reductions over random axes with keepdims, transposes, reshapes, slices with
negative steps (sometimes empty, sometimes sliced again), integer-array indexing, explicit
broadcasts, matmul/dot and concatenate. Its results are the values no later step uses (the
newest three) and sometimes an input or another value. For each program:

- the reference interpreter on the traced Function equals NumPy running the program;
- after every pass of `tracejit.passes.PIPELINE` (and of the fast-math pipeline), the Function
  verifies and the interpreter still gives the same results;
- `run_program` on the fused and on the unfused plan, of the traced and of the optimised
  Function, gives the same results, and each plan keeps the structural invariants of a
  Program (`check_program`: what a backend relies on and the kernel interpreter cannot see);
- the same for the gradient of sum_k sum(result_k * r_k) with respect to every input (r_k
  fixed random arrays): the interpreter on the traced gradient, every pass, both plans and
  `tj.jit` with and without fusion agree, and for smooth float64 programs the gradient matches
  central finite differences along random directions;
- the CUDA backend (fused) agrees too: on a GPU for every program, under the host emulation
  for the deterministic programs and half the hypothesis ones (chosen by a hash of the
  program: the emulator's compiles dominate this file's time).

Values are compared with a tolerance relative to the largest magnitude of the expected array
(fusion changes the memory layout a dot or a reduction sees, and with it the rounding).
Besides the hypothesis tests, every operation runs through all checks in a deterministic
program of its own, and programs that once exposed a bug are kept in REGRESSIONS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracejit as tj
from tracejit import primitives as P
from tracejit.fusion import plan
from tracejit.ir import Literal
from tracejit.kernel_interpreter import run_program
from tracejit.kernels import Program
from tracejit.passes import PIPELINE, optimize, pipeline
from tracejit.runtime.backends import BACKENDS

from npcheck import cuda_backend, host

# (backend, fuse) pairs the compiled checks run: the cpu backend fused and unfused; the CUDA
# backend (a GPU, or its host emulation) fused, and unfused on a GPU (the emulator's compiles
# cost a tenth of a second each).
RUNS = [("cpu", True), ("cpu", False)]
CUDA_RUNS = []
EMULATED = bool(cuda_backend()) and BACKENDS[cuda_backend()].emulates is not None
if cuda_backend():
    CUDA_RUNS = [(cuda_backend(), True)] + ([] if EMULATED else [(cuda_backend(), False)])


def compiled_runs(program: "RandomProgram", f, args, cuda) -> list:
    """[(backend, fuse, jitted f)]: the cpu's runs, and the CUDA backend's if `cuda` ("half":
    the half of the hypothesis programs chosen by a hash of the program, deterministic so that
    hypothesis sees the same test for the same example). The CUDA programs are compiled at
    once: the emulator's host compiler then runs while the caller checks the other stages."""
    if cuda == "half" and EMULATED:
        cuda = zlib.crc32(repr(program).encode()) % 2 == 0
    out = []
    for backend, fuse in CUDA_RUNS if cuda else []:
        jitted = tj.jit(f, fuse=fuse, backend=backend)
        jitted.compiled(*args)
        out.append((backend, fuse, jitted))
    return [(b, fuse, tj.jit(f, fuse=fuse, backend=b)) for b, fuse in RUNS] + out

MAX_SIZE = 240        # elements in any value of a program
MAX_NDIM = 4
INPUT_SHAPES = [(), (4,), (3,), (3, 4), (4, 3), (1, 4), (3, 1, 4), (2, 3, 4), (2, 1, 3, 1),
                (5,), (2, 3, 1, 4),
                (0, 3, 4), (3, 0)]          # zero-sized: empty batches, rows, sums, products

RTOL = {"float64": 1e-9, "float32": 2e-4}


# ---------------------------------------------------------------------------------------------
# the operations a step can apply: name -> (function of arrays and params, smooth?)
#
# Every function works unchanged on NumPy arrays and on tracers. "Smooth" operations are
# differentiable everywhere, so finite differences check their gradients reliably. The
# branches of every np.where agree where the condition flips, so a rounding difference in
# the condition's operands cannot change a result by more than the rounding itself.

UNARY: dict[str, tuple[Callable, bool]] = {
    "neg": (lambda x: -x, True),
    "tanh": (np.tanh, True),
    "sin": (np.sin, True),
    "cos": (np.cos, True),
    "square": (lambda x: x * x, True),
    "cube": (lambda x: x ** 3, True),
    "soft_abs": (lambda x: np.sqrt(x * x + 1.0), True),
    "exp_tanh": (lambda x: np.exp(np.tanh(x)), True),
    "affine": (lambda x: 0.5 * x + 1.0, True),
    "abs": (np.abs, False),
    "relu": (lambda x: np.maximum(x, 0.0), False),
    "clip": (lambda x: np.clip(x, -1.0, 1.0), False),
    "f32_round_trip": (lambda x: x.astype(np.float32).astype(x.dtype), False),
    # the narrow dtypes inside: rounded to half precision, wrapped in 8 bits, counted in 16
    "f16_round_trip": (lambda x: x.astype(np.float16).astype(x.dtype) + 0.5 * x, False),
    "int8_wrap": (lambda x: (x * 40).astype(np.int8).astype(x.dtype) * 0.01 + x, False),
    "uint16_count": (lambda x: x + (np.sum((x > 0).astype(np.uint16)) * np.uint16(3))
                     .astype(x.dtype), False),
    # integer and boolean values inside: argmax, iota, comparisons, int sums, casts
    "onehot_argmax": (lambda x: x * (np.arange(x.size) == np.argmax(x)).reshape(x.shape),
                      False),
    "count_positive": (lambda x: x + (np.sum(x > 0) * 0.5).astype(x.dtype), False),
    "mod": (lambda x: np.mod(x, 1.5), False),
    "floor": (lambda x: np.floor(x) * 0.5 + x, False),
    "rint": (lambda x: np.rint(x) * 0.5 + x, False),
    "signbit_abs": (lambda x: np.where(np.signbit(x), -x, x), False),
    # the inverse trigonometric and hyperbolic functions, inside their domains
    "asinh": (np.arcsinh, True),
    "asin_tanh": (lambda x: np.arcsin(np.tanh(x) * 0.9), True),
    "acos_tanh": (lambda x: np.arccos(np.tanh(x) * 0.9), True),
    "acosh_shifted": (lambda x: np.arccosh(x * x + 1.5), True),
    "atanh_tanh": (lambda x: np.arctanh(np.tanh(x) * 0.5), True),
    "cbrt_shifted": (lambda x: np.cbrt(x * x + 1.0), True),
    # identities the simplifier removes (or must not remove), in random contexts
    "times_one": (lambda x: x * 1.0, True),
    "one_times": (lambda x: 1.0 * x, True),
    "plus_zero": (lambda x: x + 0.0, True),
    "minus_zero": (lambda x: x - 0.0, True),
    "plus_neg_zero": (lambda x: x + (-0.0), True),
    "over_one": (lambda x: x / 1.0, True),
    "pow_one": (lambda x: x ** 1, True),
    "neg_neg": (lambda x: -(-x), True),
    "times_minus_one": (lambda x: x * -1.0, True),
    "double_transpose": (lambda x: x.T.T, True),
}

BINARY: dict[str, tuple[Callable, bool]] = {
    "add": (lambda a, b: a + b, True),
    "sub": (lambda a, b: a - b, True),
    "mul": (lambda a, b: a * b, True),
    "safe_div": (lambda a, b: a / (1.0 + b * b), True),
    "hypot1": (lambda a, b: np.sqrt(a * a + b * b + 1.0), True),
    "hypot_shifted": (lambda a, b: np.hypot(a, b * b + 1.0), True),
    "atan2_right": (lambda a, b: np.arctan2(a, b * b + 1.0), True),
    "logaddexp2": (np.logaddexp2, True),
    "copysign": (np.copysign, False),
    "fmod": (lambda a, b: np.fmod(a, b * b + 1.0), False),
    "maximum": (np.maximum, False),
    "minimum": (np.minimum, False),
    "where_gt": (lambda a, b: np.where(a > b, a - b, 0.0), False),
    "where_lt": (lambda a, b: np.where(a < b, a * b, b * b), False),
    "mask_ge": (lambda a, b: (a >= b) * (a - b), False),
    "where_eq": (lambda a, b: np.where(a == b, a, a + (a - b)), False),
}

REDUCTIONS: dict[str, tuple[Callable, bool]] = {
    "reduce_sum": (lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims), True),
    "reduce_mean": (lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims), True),
    "reduce_max": (lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims), False),
    "reduce_min": (lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims), False),
}


def _take(x, axis, idx):
    return x[(slice(None),) * axis + (np.array(idx),)]


def _matmul_const(x, k, seed):
    w = np.random.default_rng(seed).standard_normal((x.shape[-1], k)).astype(x.dtype)
    return x @ w


STRUCTURAL: dict[str, tuple[Callable, bool]] = {
    "transpose": (lambda x, perm: np.transpose(x, perm), True),
    "reshape": (lambda x, shape: np.reshape(x, shape), True),
    "slice": (lambda x, key: x[key], True),
    "slice_twice": (lambda x, key, key2: x[key][key2], True),
    "take": (_take, True),
    "broadcast_to": (lambda x, shape: np.broadcast_to(x, shape), True),
    "matmul": (lambda a, b: a @ b, True),
    "dot": (np.dot, True),
    "matmul_const": (_matmul_const, True),
    "concatenate": (lambda a, b, axis: np.concatenate([a, b], axis=axis), True),
}

ALONG_AXIS: dict[str, tuple[Callable, bool]] = {
    "cumsum": (lambda x, axis: np.cumsum(x, axis=axis), True),
    "cumprod": (lambda x, axis: np.cumprod(x, axis=axis), True),
    "sort": (lambda x, axis: np.sort(x, axis=axis), True),
}

OPS: dict[str, tuple[Callable, bool]] = {**UNARY, **BINARY, **REDUCTIONS, **STRUCTURAL,
                                         **ALONG_AXIS}


# ---------------------------------------------------------------------------------------------
# programs


@dataclass(frozen=True)
class Step:
    """value = OPS[op](*(values[a] for a in args), *params)."""

    op: str
    args: tuple[int, ...]
    params: tuple = ()


@dataclass(frozen=True)
class RandomProgram:
    in_shapes: tuple[tuple[int, ...], ...]
    dtype: str
    steps: tuple[Step, ...]
    outputs: tuple[int, ...]
    seed: int = 0

    @property
    def smooth(self) -> bool:
        return all(OPS[s.op][1] for s in self.steps)

    def __call__(self, *xs):
        values = list(xs)
        for s in self.steps:
            values.append(OPS[s.op][0](*(values[a] for a in s.args), *s.params))
        return tuple(values[i] for i in self.outputs)

    def inputs(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return [np.asarray(rng.standard_normal(s), dtype=self.dtype) for s in self.in_shapes]

    @functools.cached_property
    def weights(self) -> list[np.ndarray]:
        """The fixed arrays r_k of the loss sum_k sum(result_k * r_k)."""
        rng = np.random.default_rng(self.seed + 1)
        outs = numpy_run(self, [np.zeros(s, self.dtype) for s in self.in_shapes])
        return [np.asarray(rng.standard_normal(np.shape(o)), dtype=self.dtype) for o in outs]

    def loss(self, *xs):
        return sum(np.sum(o * r) for o, r in zip(self(*xs), self.weights))

    def head_loss(self, *xs):
        """(loss, aux): the first result itself when it is rank 0 (else summed against its
        weights) and the other results, for value_and_grad(..., has_aux=True). Unlike `loss`,
        the value is then often a value its own gradients use (1 / x, sqrt(x), ...)."""
        first, *rest = self(*xs)
        return (first if np.ndim(first) == 0 else np.sum(first * self.weights[0])), tuple(rest)

    def __repr__(self) -> str:
        n = len(self.in_shapes)
        lines = [f"def program({', '.join(f'v{i}' for i in range(n))}):  "
                 f"# {self.dtype} {list(self.in_shapes)} seed={self.seed}"]
        for i, s in enumerate(self.steps):
            args = ", ".join([f"v{a}" for a in s.args] + [repr(p) for p in s.params])
            lines.append(f"    v{n + i} = {s.op}({args})")
        lines.append(f"    return {', '.join(f'v{i}' for i in self.outputs)}")
        return "\n".join(lines)


@contextlib.contextmanager
def quietly():
    """NumPy without floating point warnings (inf, NaN, the mean of an empty slice)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def numpy_run(program, xs):
    with quietly():
        return [np.asarray(o) for o in program(*xs)]


# ---------------------------------------------------------------------------------------------
# the generator: each maker looks at the values so far (as example arrays) and returns a Step
# or None when it does not apply.


class Gen:
    """Random choices, drawn through hypothesis (so failing programs shrink)."""

    def __init__(self, draw):
        self.draw = draw

    def pick(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def integer(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def coin(self) -> bool:
        return self.draw(st.booleans())

    def permutation(self, n: int) -> tuple[int, ...]:
        return tuple(self.draw(st.permutations(range(n))))

    def subset(self, seq):
        return tuple(x for x in seq if self.coin())


class SeededGen(Gen):
    """The same choices from a NumPy generator: deterministic programs without hypothesis."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def pick(self, seq):
        seq = list(seq)
        return seq[int(self.rng.integers(len(seq)))]

    def integer(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def coin(self) -> bool:
        return bool(self.rng.integers(2))

    def permutation(self, n: int) -> tuple[int, ...]:
        return tuple(int(i) for i in self.rng.permutation(n))


def pick_value(g: Gen, vals, candidates=None) -> int:
    """The index of an operand: often one of the newest values, so steps build on each
    other, otherwise any value. `candidates` restricts the choice."""
    candidates = list(range(len(vals))) if candidates is None else list(candidates)
    return g.pick(candidates[-2:] if g.coin() else candidates)


def broadcastable(a, b) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def make_unary(g: Gen, vals):
    return Step(g.pick(UNARY), (pick_value(g, vals),))


def make_binary(g: Gen, vals):
    i = pick_value(g, vals)
    partners = [j for j, v in enumerate(vals) if broadcastable(v.shape, vals[i].shape)]
    j = pick_value(g, vals, partners)
    a, b = (i, j) if g.coin() else (j, i)
    return Step(g.pick(BINARY), (a, b))


def make_reduction(g: Gen, vals):
    i = pick_value(g, vals)
    ndim = vals[i].ndim
    if g.coin() or ndim == 0:
        axis = None
    else:
        axes = g.subset(range(ndim)) or (g.integer(0, ndim - 1),)
        # NumPy accepts negative axes and an int for one axis: use both spellings.
        axis = axes[0] - ndim if len(axes) == 1 and g.coin() else axes
    return Step(g.pick(REDUCTIONS), (i,), (axis, g.coin()))


def make_transpose(g: Gen, vals):
    i = pick_value(g, vals)
    perm = g.permutation(vals[i].ndim)
    return Step("transpose", (i,), (perm,))


def make_reshape(g: Gen, vals):
    i = pick_value(g, vals)
    shape = vals[i].shape
    options = [(-1,), shape[::-1], shape + (1,), (1,) + shape]
    options += [shape[:k] + (shape[k] * shape[k + 1],) + shape[k + 2:]
                for k in range(len(shape) - 1)]
    options += [shape[:k] + (1,) + shape[k:] for k in range(1, len(shape))]
    options = [s for s in options if len(s) <= MAX_NDIM]
    return Step("reshape", (i,), (g.pick(options),))


def random_slice(g: Gen, n: int):
    """A Python slice (or an int) selecting at least one of n elements, or rarely none."""
    choice = g.integer(0, 19)
    if choice < 3:
        return g.integer(-n, n - 1)
    if choice == 3:
        return slice(n - 1, 0, 1)                     # empty
    step = g.pick([1, 1, 2, 3, -1, -1, -2])
    start = g.pick([None, g.integer(-n, n - 1)])
    stop = g.pick([None, g.integer(-n - 1, n)])
    s = slice(start, stop, step)
    return s if len(range(*s.indices(n))) > 0 else slice(None, None, step)


def make_slice(g: Gen, vals):
    candidates = [i for i, v in enumerate(vals) if v.ndim > 0 and v.size > 0]
    if not candidates:
        return None
    i = pick_value(g, vals, candidates)
    key = tuple(random_slice(g, n) for n in vals[i].shape)
    if g.coin():
        key = key[:g.integer(1, len(key))]          # trailing axes taken whole
    return Step("slice", (i,), (key,))


def make_slice_twice(g: Gen, vals):
    """x[key][key2]: index maps composed (a reversed view sliced again, say)."""
    first = make_slice(g, vals)
    if first is None:
        return None
    (i,), (key,) = first.args, first.params
    view = vals[i][key]
    if view.ndim == 0 or view.size == 0:
        return None
    key2 = tuple(random_slice(g, n) for n in view.shape)
    return Step("slice_twice", (i,), (key, key2))


def make_take(g: Gen, vals):
    candidates = [i for i, v in enumerate(vals) if v.ndim > 0 and v.size > 0]
    if not candidates:
        return None
    i = pick_value(g, vals, candidates)
    axis = g.integer(0, vals[i].ndim - 1)
    n = vals[i].shape[axis]
    shape = g.pick([(g.integer(1, 5),), (2, g.integer(1, 3))])
    idx = np.array([g.integer(-n, n - 1) for _ in range(math.prod(shape))]).reshape(shape)
    return Step("take", (i,), (axis, idx.tolist()))


def make_broadcast_to(g: Gen, vals):
    i = pick_value(g, vals)
    shape = vals[i].shape
    target = tuple(g.pick([1, 3]) if n == 1 else n for n in shape)
    if g.coin() or target == shape:
        target = (2,) + target
    return Step("broadcast_to", (i,), (target,))


def make_matmul(g: Gen, vals):
    candidates = [i for i, v in enumerate(vals) if v.ndim > 0]
    if not candidates:
        return None
    i = pick_value(g, vals, candidates)
    a = vals[i].shape
    partners = []
    for j, v in enumerate(vals):
        b = v.shape
        if len(b) == 0 or a[-1] != b[-2 if len(b) > 1 else 0]:
            continue
        if len(a) > 1 and len(b) > 1 and not broadcastable(a[:-2], b[:-2]):
            continue
        partners.append(j)
    if partners and g.coin():
        j = pick_value(g, vals, partners)
        b = vals[j].shape
        if len(a) <= 2 and len(b) <= 2 and g.coin():
            return Step("dot", (i, j))
        return Step("matmul", (i, j))
    return Step("matmul_const", (i,), (g.integer(1, 4), g.integer(0, 1000)))


def make_concatenate(g: Gen, vals):
    candidates = [i for i, v in enumerate(vals) if v.ndim > 0]
    if not candidates:
        return None
    i = pick_value(g, vals, candidates)
    a = vals[i].shape
    axis = g.integer(0, len(a) - 1)
    partners = [j for j, v in enumerate(vals) if v.ndim == len(a) and all(
        m == n for k, (m, n) in enumerate(zip(v.shape, a)) if k != axis)]
    return Step("concatenate", (i, pick_value(g, vals, partners)), (axis,))


def make_along_axis(g: Gen, vals):
    candidates = [i for i, v in enumerate(vals) if v.ndim > 0]
    if not candidates:
        return None
    i = pick_value(g, vals, candidates)
    ndim = vals[i].ndim
    axis = None if g.integer(0, 3) == 0 else g.integer(-ndim, ndim - 1)
    return Step(g.pick(ALONG_AXIS), (i,), (axis,))


MAKERS = {
    "unary": make_unary, "binary": make_binary, "reduction": make_reduction,
    "along_axis": make_along_axis,
    "transpose": make_transpose, "reshape": make_reshape, "slice": make_slice,
    "slice_twice": make_slice_twice, "take": make_take, "broadcast_to": make_broadcast_to,
    "matmul": make_matmul, "concatenate": make_concatenate,
}
# Elementwise work is what fusion is about: make it the most frequent.
MAKER_WEIGHTS = ["unary"] * 3 + ["binary"] * 4 + [k for k in MAKERS if k not in ("unary",
                                                                                "binary")]


def build_program(g: Gen, dtype: str, max_steps: int, shapes=INPUT_SHAPES,
                  min_inputs: int = 1) -> RandomProgram:
    """`min_inputs`-4 inputs of `shapes`, up to `max_steps` steps; the results are the values
    nothing else uses."""
    in_shapes = tuple(g.pick(shapes) for _ in range(g.integer(min_inputs, 4)))
    vals = [np.zeros(s, dtype) for s in in_shapes]
    steps = []
    for _ in range(g.integer(1, max_steps)):
        step = MAKERS[g.pick(MAKER_WEIGHTS)](g, vals)
        if step is None:
            continue
        try:
            with quietly():
                out = np.asarray(OPS[step.op][0](*(vals[a] for a in step.args), *step.params))
        except ValueError:
            continue                                  # the max of an empty array, say
        if out.size > MAX_SIZE or out.ndim > MAX_NDIM:
            continue
        steps.append(step)
        vals.append(out)
    # The results: the values no later step uses (the newest three of them), and sometimes
    # an input or another value as well.
    used = {a for s in steps for a in s.args}
    sinks = [i for i in range(len(in_shapes), len(vals)) if i not in used] or [len(vals) - 1]
    outputs = tuple(sinks[-3:])
    if g.integer(0, 3) == 0:
        outputs += (g.integer(0, len(vals) - 1),)
    return RandomProgram(in_shapes, dtype, tuple(steps), outputs, g.integer(0, 2**31))


@st.composite
def programs(draw, dtype: str = "float64", max_steps: int = 7) -> RandomProgram:
    return build_program(Gen(draw), dtype, max_steps)


@st.composite
def scalar_programs(draw, dtype: str = "float64", max_steps: int = 6) -> RandomProgram:
    """Programs of 2-4 rank-0 inputs with at least two results (some of them inputs or values
    that later steps use): every kernel of such a program has the same empty domain, so the
    planner may merge any two of them, and its scalar work may be recomputed anywhere."""
    g = Gen(draw)
    program = build_program(g, dtype, max_steps, shapes=[()], min_inputs=2)
    n = len(program.in_shapes) + len(program.steps)
    extra = tuple(g.integer(0, n - 1)
                  for _ in range(g.integer(max(0, 2 - len(program.outputs)), 3)))
    return dataclasses.replace(program, outputs=program.outputs + extra)


def seeded_program_using(op: str, dtype: str = "float64") -> RandomProgram:
    """The first deterministic program (by seed) that applies `op`."""
    for seed in range(5000):
        program = build_program(SeededGen(seed), dtype, max_steps=4)
        if any(s.op == op for s in program.steps):
            return program
    raise AssertionError(f"the generator never applies {op}")


# ---------------------------------------------------------------------------------------------
# comparisons


def assert_close(got, want, dtype: str, where: str):
    """Same dtype and shape; values within RTOL of the larger of 1 and max |want|."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, expected {want.shape}"
    finite = want[np.isfinite(want)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale,
                               equal_nan=True, err_msg=where)


def assert_all_close(got, want, dtype, where):
    assert len(got) == len(want), f"{where}: {len(got)} results, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, dtype, f"{where}, result {k}")


def check_program(program: Program):
    """The invariants of a Program that backends rely on and the kernel interpreter does not
    check (it runs each body equation with NumPy whatever the kernel's structure):

    - kernels are in dependency order, each buffer is written once, every result exists;
    - loads: the view has the destination's shape and dtype and stays inside its buffer;
    - bodies are SSA over loads, literals and earlier body values; outputs are computed;
    - a loop or dot kernel's 'full' equations are elementwise over the domain, its reductions
      reduce the domain over exactly `reduce_axes`, its 'epilogue' equations are over the kept
      axes (rank-0 scalar work may appear anywhere); a dot kernel has exactly one dot, over
      `domain`; a copy kernel has no body or one view equation; the other kinds have one
      equation of their own primitive.
    """
    fn = program.fn
    available = set(fn.params) | {c.out for c in program.constants}
    size = {v: v.type.size for v in available}
    for k in program.kernels:
        where = f"kernel {k.name} ({k.kind})"
        for ld in k.loads:
            assert ld.src in available, f"{where} reads {ld.src} before it is written"
            assert ld.imap.shape == ld.dst.type.shape, f"{where}: load shape"
            assert ld.dst.type.dtype == ld.src.type.dtype, f"{where}: load dtype"
            if ld.dst.type.size:
                lo, hi = ld.imap.bounds()
                assert 0 <= lo <= hi < size[ld.src], f"{where}: load outside its buffer"
        defined = {ld.dst for ld in k.loads}
        for e in k.body:
            assert all(isinstance(a, Literal) or a in defined for a in e.inputs), \
                f"{where}: {e.prim.name} reads a value the kernel does not have"
            defined.add(e.out)
        assert set(k.outputs) <= defined, f"{where}: an output is never computed"
        if k.kind in ("loop", "dot"):
            check_loop_body(k, where)
        elif k.kind == "copy":
            assert len(k.body) <= 1 and all(e.prim.category is P.VIEW for e in k.body), where
            assert len(k.outputs) == 1, where
        else:
            assert [e.prim.name for e in k.body] == [k.kind], where
        for v in k.outputs:
            assert v not in available, f"{where} writes {v} a second time"
            available.add(v)
            size[v] = v.type.size
    for r in fn.results:
        assert isinstance(r, Literal) or r in available, "a result is never written"


def check_loop_body(k, where):
    domain = k.domain
    kept = tuple(n for i, n in enumerate(domain) if i not in k.reduce_axes)
    if k.kind == "dot":
        dots = [e for e in k.body if e.prim.name == "dot"]
        assert len(dots) == 1 and dots[0].out.type.shape == domain, f"{where}: its dot"
    for e in k.body:
        phase = k.phase(e)
        shapes = {a.type.shape for a in e.inputs} | {e.out.type.shape}
        if phase == "reduce":
            assert e.params["axes"] == tuple(k.reduce_axes), f"{where}: {e.prim.name} axes"
            assert e.inputs[0].type.shape == domain, f"{where}: reduction operand shape"
        elif phase == "dot":
            assert e.prim.name == "dot", where
        elif phase == "prologue":
            assert e.prim.category is P.ELEMENTWISE or e.prim.category is P.SOURCE or (
                e.prim.name == "broadcast_in_dim" and isinstance(e.inputs[0], Literal)), where
            assert len(shapes - {()}) <= 1, f"{where}: prologue {e.prim.name} shapes {shapes}"
        elif shapes == {()}:
            pass                                   # scalar work, valid anywhere
        else:
            over = domain if phase == "full" else kept
            assert shapes <= {over, ()} and e.out.type.shape == over, (
                f"{where}: {phase} equation {e.prim.name} has shapes {sorted(shapes)}, the "
                f"{phase} is over {over}")


def check_function_stages(fn: tj.Function, args, want, dtype: str):
    """Every pass (verified), both plans of the traced and optimised Function, agree."""
    tj.verify(fn)
    assert_all_close(tj.interpret(fn, args), want, dtype, "interpreter")
    for fast_math in (False, True):
        stage = fn
        for name, p in (pipeline(fast_math) if fast_math else PIPELINE):
            stage = tj.verify(p(stage))
            assert_all_close(tj.interpret(stage, args), want, dtype,
                             f"after pass {name} (fast_math={fast_math})")
    optimised = optimize(fn, verify_each=True)
    for source, f in (("traced", fn), ("optimised", optimised)):
        for fuse in (True, False):
            program = plan(f, fuse=fuse)
            check_program(program)
            got = run_program(program, args)
            assert_all_close(got, want, dtype, f"run_program(plan({source}, fuse={fuse}))")


# ---------------------------------------------------------------------------------------------
# the tests


def check_forward(program: RandomProgram, cuda=True):
    args = program.inputs()
    compiled = compiled_runs(program, program, args, cuda)
    want = numpy_run(program, args)
    fn = tj.trace(program, *args)
    assert len(fn.results) == len(want)
    assert_all_close(tj.interpret(fn, args), want, program.dtype, "interpreter vs NumPy")
    check_function_stages(fn, args, tj.interpret(fn, args), program.dtype)
    for backend, fuse, jitted in compiled:     # compiled: cpu, and CUDA (GPU or emulated)
        got = [np.asarray(g) for g in host(jitted(*args))]
        assert_all_close(got, want, program.dtype, f"tj.jit(program, {backend}, fuse={fuse})")


def check_gradient(program: RandomProgram, directions: int = 2, cuda=True):
    args = program.inputs()
    argnums = tuple(range(len(args)))
    grad = tj.grad(program.loss, argnums=argnums)
    compiled = compiled_runs(program, grad, args, cuda)
    want = [np.asarray(g) for g in grad(*args)]
    for g, a in zip(want, args):
        assert g.shape == a.shape and g.dtype == a.dtype
    gfn = tj.trace(grad, *args)
    check_function_stages(gfn, args, want, program.dtype)
    for backend, fuse, jitted in compiled:
        got = [np.asarray(g) for g in host(jitted(*args))]
        assert_all_close(got, want, program.dtype, f"tj.jit(grad, {backend}, fuse={fuse})")
    if program.dtype == "float64" and program.smooth:
        check_finite_differences(program, args, want, directions)


def check_value_and_grad(program: RandomProgram, directions: int = 2, cuda=True):
    """value_and_grad of `head_loss` with respect to every input (several argnums), with the
    other results as auxiliary outputs: the value, the aux results and the gradients are
    results of one Function, which every stage, both plans and every backend must compute as
    the interpreter does."""
    args = program.inputs()
    vg = tj.value_and_grad(program.head_loss, argnums=tuple(range(len(args))), has_aux=True)
    compiled = compiled_runs(program, vg, args, cuda)

    def flat(result):
        (value, aux), grads = host(result)
        return [np.asarray(v) for v in (value, *aux, *grads)]

    want = flat(vg(*args))
    check_function_stages(tj.trace(vg, *args), args, want, program.dtype)
    for backend, fuse, jitted in compiled:
        assert_all_close(flat(jitted(*args)), want, program.dtype,
                         f"tj.jit(value_and_grad, {backend}, fuse={fuse})")
    if program.dtype == "float64" and program.smooth:
        check_finite_differences(program, args, want[-len(args):], directions,
                                 loss=lambda *xs: program.head_loss(*xs)[0])


def check_finite_differences(program, args, grads, directions, loss=None):
    loss = program.loss if loss is None else loss
    rng = np.random.default_rng(program.seed + 2)
    h = 1e-5
    for _ in range(directions):
        d = [rng.standard_normal(a.shape) for a in args]
        with quietly():
            up = loss(*(a + h * v for a, v in zip(args, d)))
            down = loss(*(a - h * v for a, v in zip(args, d)))
        fd = (up - down) / (2 * h)
        analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, d))
        if not (np.isfinite(fd) and np.isfinite(analytic)):
            continue
        scale = 1.0 + abs(float(loss(*args))) + abs(analytic)
        assert abs(fd - analytic) <= 1e-6 * scale, (fd, analytic)


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.filter_too_much])


@settings(max_examples=400, **SETTINGS)
@given(programs("float64", max_steps=8))
def test_forward_f64(program):
    check_forward(program, cuda="half")


@settings(max_examples=120, **SETTINGS)
@given(programs("float32", max_steps=8))
def test_forward_f32(program):
    check_forward(program, cuda="half")


@settings(max_examples=200, **SETTINGS)
@given(programs("float64", max_steps=6))
def test_gradient_f64(program):
    check_gradient(program, cuda="half")


@settings(max_examples=80, **SETTINGS)
@given(programs("float32", max_steps=6))
def test_gradient_f32(program):
    check_gradient(program, cuda="half")


@settings(max_examples=60, **SETTINGS)
@given(scalar_programs("float64"))
def test_scalar_programs_f64(program):
    check_forward(program, cuda="half")
    check_value_and_grad(program, cuda="half")


@settings(max_examples=20, **SETTINGS)
@given(scalar_programs("float32"))
def test_scalar_programs_f32(program):
    check_forward(program, cuda="half")
    check_value_and_grad(program, cuda="half")


#: Programs hypothesis found bugs with, kept as fixed regression tests.
REGRESSIONS = {
    # The epilogue of a dot read a scalar its prologue computed (-x in (-x + a) @ w + tanh(-x)),
    # which only the prologue's own loop had: "KeyError" on the cpu, C that nvcc refused.
    "prologue scalar the epilogue reads": RandomProgram(
        in_shapes=((), (4,), (4, 3)), dtype="float64",
        steps=(Step("neg", (0,)), Step("add", (3, 2)), Step("tanh", (3,)),
               Step("matmul_const", (4,), (1, 0)), Step("add", (6, 5))),
        outputs=(7, 0)),
    # The planner recomputed `mul %5, 0.5` (a scalar of a rank-0 view of a kernel's output)
    # as a source inside that very kernel: "cycle among kernels".
    "scalar source reading a kernel output": RandomProgram(
        in_shapes=((), ()), dtype="float64",
        steps=(Step("neg", (0,)), Step("reshape", (2,), ((-1,),)), Step("neg", (2,)),
               Step("neg", (0,)), Step("slice", (3,), ((0,),))),
        outputs=(4, 5, 6, 0)),
    # Results that are sources (scalar work on parameters) became kernels after the kernels
    # recomputing them were planned, whose dependencies then missed them: sibling fusion
    # merged `neg` with `x + b`, which needs b = neg + x: "cycle among kernels".
    "source materialised after its users were planned": RandomProgram(
        in_shapes=((),), dtype="float64",
        steps=(Step("neg", (0,)), Step("add", (1, 0)), Step("add", (0, 2)), Step("neg", (0,))),
        outputs=(3, 4, 2)),
    # The product of a batched dot with an empty batch was launched with one block anyway,
    # whose tile was written into (and read from) buffers of no elements.
    "batched dot with an empty batch": RandomProgram(
        in_shapes=((0, 3, 4), (0, 3, 4)), dtype="float64",
        steps=(Step("transpose", (1,), ((0, 2, 1),)), Step("matmul", (0, 2)),
               Step("affine", (3,)), Step("reduce_sum", (4,), (None, False))),
        outputs=(5,)),
}


def test_plan_of_function_with_dead_prologue_code():
    """A dead equation of the elementwise kernel that becomes a dot's prologue once ended up in
    the dot kernel, where Kernel.phase called it 'full' (over the dot's output) although it is
    over the operand's shape."""
    def f(x, w):
        a = -x
        a * x                                       # dead
        return (a + x) @ w

    x, w = np.ones((3, 4)), np.ones((4, 2))
    fn = tj.trace(f, x, w)
    program = plan(fn)
    assert_all_close(run_program(program, [x, w]), [f(x, w)], "float64", "run_program")
    check_program(program)


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regressions(name):
    check_forward(REGRESSIONS[name])
    check_gradient(REGRESSIONS[name])


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_operation(op):
    """Each operation is generated (a maker that never applies cannot hide) and passes every
    check in at least one deterministic program."""
    program = seeded_program_using(op)
    check_forward(program)
    check_gradient(program)
