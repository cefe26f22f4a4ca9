"""The text of a Program (`format_program`) and of the fusion report (`fusion_report`,
`Jitted.report`): a golden example checked by hand, bytes and FLOPs of known kernels, and the
reasons given for producer -> consumer edges left unfused.

The golden text pins the user's file:line of each equation, computed from this file's source.
Every example also runs, fused and unfused, against NumPy.
"""

from __future__ import annotations

import functools

import inspect
import os
import re

import numpy as np
import pytest

import tracejit as tj
from tracejit import primitives as P
from tracejit.kernels import format_program
from tracejit.report import fusion_report

HERE = os.path.basename(__file__)

#: The fusion report is the planner's, whatever the backend; the cpu backend appends its buffer
#: plan (tests/cpu checks that line), so the texts here come from the interpret backend.
jit = functools.partial(tj.jit, backend="interpret")


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def check_numbers(f, *args, rtol=2e-5):
    want = f(*args)
    for fuse in (True, False):
        got = jit(f, fuse=fuse)(*args)
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.max(np.abs(want)))


# ---------------------------------------------------------------------------------------------
# the golden example


def small(x, w, b, v):
    h = np.maximum(x @ w + b, 0.0)
    return np.tanh(h @ v)


def small_args():
    return rand(2, 3, seed=1), rand(3, 4, seed=2), rand(4, seed=3), rand(4, 5, seed=4)


def small_lines():
    first = inspect.getsourcelines(small)[1]
    return first + 1, first + 2


GOLDEN_PROGRAM = """\
program @small(%0: f32[2,3], %1: f32[3,4], %2: f32[4], %3: f32[4,5])  [2 kernels, fused]
kernel k0 dot domain=(2,4)  (%0, %1, %2) -> (%7) {
  %0.v0 = load %0[3*i0 + i1]  : f32[2,3]
  %1.v1 = load %1[4*i0 + i1]  : f32[3,4]
  %2.v2 = load %2[i1]  : f32[2,4]
  %4 = dot %0.v0, %1.v1 contract=((1),(0))  : f32[2,4]
  %6 = add %4, %2.v2  : f32[2,4]
  %7 = max %6, 0.0  : f32[2,4]
  store %7
}
kernel k1 dot domain=(2,5)  (%7, %3) -> (%9) {
  %7.v0 = load %7[4*i0 + i1]  : f32[2,4]
  %3.v1 = load %3[5*i0 + i1]  : f32[4,5]
  %8 = dot %7.v0, %3.v1 contract=((1),(0))  : f32[2,5]
  %9 = tanh %8  : f32[2,5]
  store %9
}
return %9"""

# By hand: k0 reads x (6 f32), w (12) and b once (4: the broadcast load has stride 0 on axis 0)
# = 88 B, writes h (8 f32) = 32 B, and does 2*3*8 (dot) + 8 (add) + 8 (max) = 64 flops;
# k1 reads h (8) and v (20) = 112 B, writes 10 f32 = 40 B, 2*4*10 (dot) + 10*10 (tanh) = 180.
GOLDEN_REPORT = """\
fusion report for @small: 2 kernels (fused), 6 equations
k0 dot domain=(2,4): 3 equations from {f}:{a}
    reads  %0:f32[2,3], %1:f32[3,4], %2:f32[4]  (88 B)
    writes %7:f32[2,4]  (32 B)
    flops  64
      %4 = dot %0, %1 contract=((1),(0))  # {f}:{a}
      %6 = add %4, %5  # {f}:{a}
      %7 = max %6, 0.0  # {f}:{a}
k1 dot domain=(2,5): 2 equations from {f}:{b}
    reads  %7:f32[2,4], %3:f32[4,5]  (112 B)
    writes %9:f32[2,5]  (40 B)
    flops  180
      %8 = dot %7, %3 contract=((1),(0))  # {f}:{b}
      %9 = tanh %8  # {f}:{b}
total: reads 200 B, writes 72 B, 244 flops
unfused edges:
  k0 -> k1 via %7:f32[2,4]: operand of a dot, which reads the whole operand for each output"""


def test_golden_program_text():
    prog = jit(small).program(*small_args())
    assert format_program(prog) == GOLDEN_PROGRAM
    assert str(prog) == GOLDEN_PROGRAM
    check_numbers(small, *small_args())


def test_golden_fusion_report():
    a, b = small_lines()
    jitted = jit(small)
    expected = GOLDEN_REPORT.format(f=HERE, a=a, b=b)
    assert fusion_report(jitted.program(*small_args())) == expected
    assert jitted.report(*small_args()) == expected
    check_numbers(small, *small_args())


def test_golden_numbers_agree_with_the_kernels():
    prog = jit(small).program(*small_args())
    assert [k.bytes_moved() for k in prog.kernels] == [(88, 32), (112, 40)]
    assert [k.flops() for k in prog.kernels] == [64, 180]
    assert P.tanh.flops == 10 and P.max_.flops == 1 and P.add.flops == 1


# ---------------------------------------------------------------------------------------------
# bytes and flops of known kernels


def w5(x, y, z):
    return np.sum((np.tanh(x) * y + z) ** 2)


W5_FLOPS_PER_ELEMENT = P.tanh.flops + 3 + 1      # tanh, mul, add, square (mul), sum


def w5_args(n=1000):
    return [rand(n, seed=s) for s in range(3)]


def report_number(report, label):
    """The byte counts of the `reads`/`writes` lines, or the `flops` value, in order."""
    if label == "flops":
        return [int(m) for m in re.findall(r"^    flops  (\d+)$", report, re.M)]
    return re.findall(rf"^    {label} .*  \((.*)\)$", report, re.M)


def test_w5_forward_moves_12000_bytes_in_and_4_out():
    args = w5_args()
    prog = jit(w5).program(*args)
    (k,) = prog.kernels
    assert k.bytes_moved() == (12000, 4)
    assert k.flops() == 1000 * W5_FLOPS_PER_ELEMENT == 14000
    report = jit(w5).report(*args)
    assert report_number(report, "reads") == ["11.7 KiB"]       # 12000 / 1024
    assert report_number(report, "writes") == ["4 B"]
    assert report_number(report, "flops") == [14000]
    assert "total: reads 11.7 KiB, writes 4 B, 14000 flops" in report
    assert report.endswith("unfused edges: none")
    check_numbers(w5, *args, rtol=1e-5)


def test_w5_value_and_grad_writes_the_loss_and_three_gradients():
    args = w5_args()
    vg = tj.value_and_grad(w5, argnums=(0, 1, 2))
    (k,) = jit(vg).program(*args).kernels
    assert k.bytes_moved() == (12000, 4 + 3 * 4000)
    value, grads = jit(vg)(*args)
    assert value == pytest.approx(float(w5(*args)), rel=1e-5)
    x, y, z = args
    r = np.tanh(x) * y + z
    # tanh may differ from NumPy's by an ulp; r = tanh(x)*y + z cancels near 0, so the error
    # is bounded relative to r's scale.
    np.testing.assert_allclose(grads[2], 2 * r, rtol=1e-6, atol=1e-6 * np.max(np.abs(2 * r)))


def test_w5_unfused_moves_every_intermediate_through_memory():
    args = w5_args()
    prog = jit(w5, fuse=False).program(*args)
    # tanh 4000 -> 4000; mul 8000 -> 4000; add 8000 -> 4000; square 4000 (one load of its
    # single operand) -> 4000; sum 4000 -> 4.
    assert [k.bytes_moved() for k in prog.kernels] == [
        (4000, 4000), (8000, 4000), (8000, 4000), (4000, 4000), (4000, 4)]
    assert sum(k.flops() for k in prog.kernels) == 14000
    report = jit(w5, fuse=False).report(*args)
    assert "total: reads 27.3 KiB, writes 15.6 KiB, 14000 flops" in report
    check_numbers(w5, *args, rtol=1e-5)


@pytest.mark.parametrize("n,text", [(1, "4 B"), (255, "1020 B"), (256, "1.0 KiB"),
                                    (384, "1.5 KiB"), (3 * 2**18, "3.0 MiB")])
def test_byte_counts_are_printed_in_binary_units(n, text):
    x = rand(n)
    f = lambda x: x[::-1] * 2.0  # noqa: E731
    report = jit(f).report(x)
    assert report_number(report, "reads") == [text] and report_number(report, "writes") == [text]
    check_numbers(f, x)


def test_dot_flops_count_two_per_multiply_add():
    x, w = rand(7, 5, seed=1), rand(5, 3, seed=2)
    (k,) = jit(lambda x, w: x @ w).program(x, w).kernels
    assert k.flops() == 2 * 7 * 5 * 3
    assert k.bytes_moved() == (4 * (35 + 15), 4 * 21)
    check_numbers(lambda x, w: x @ w, x, w)


def test_broadcast_loads_count_distinct_elements_once():
    a, b = rand(64, 1, seed=1), rand(1, 32, seed=2)
    (k,) = jit(lambda a, b: a * b).program(a, b).kernels
    assert k.bytes_moved() == (4 * (64 + 32), 4 * 64 * 32)
    check_numbers(lambda a, b: a * b, a, b)


# ---------------------------------------------------------------------------------------------
# unfused edges and their reasons


def edges(report):
    """[(producer, consumer, value, reason)] of the report's unfused edges."""
    tail = report.split("unfused edges:")[1]
    return re.findall(r"^  (k\d+) -> (k\d+) via (%\d+):\S+: (.+)$", tail, re.M)


x45, w53, v10 = rand(4, 5, seed=1), rand(5, 3, seed=2), rand(10, seed=3)
EDGE_CASES = [
    ("dot_operand", small, small_args(), "operand of a dot"),
    ("reduction_result", lambda v: v[::-2] * 3.0 + v[8::-3].sum(), (v10,),
     "result of a reduction, complete only after its loop"),
    ("gather", lambda x, i: np.exp(x)[i] + 1.0, (x45, np.array([1, 2])),
     "a gather kernel is not fused with its neighbours"),
    ("copy", lambda x: np.sum(x.T.reshape(10, 2), axis=0), (x45,), "copy kernel"),
    ("view", lambda x: np.exp(x[:4, :4]) + np.exp(x[:4, :4]).T, (x45,),
     "read through a view"),
    ("axes", lambda t: (np.sum(t * t, axis=0), np.max(t * t, axis=1)), (x45,),
     "the kernels reduce over different axes"),
]


@pytest.mark.parametrize("name,f,args,reason", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_unfused_edges_are_listed_with_a_reason(name, f, args, reason):
    jitted = jit(f)
    prog = jitted.program(*args)
    found = edges(jitted.report(*args))
    # One line per (producer, consumer, buffer) where a kernel reads what another wrote.
    writer = {v: k.name for k in prog.kernels for v in k.outputs}
    expected = sorted((writer[v], k.name) for k in prog.kernels for v in k.inputs if v in writer)
    assert sorted((p, c) for p, c, _, _ in found) == expected
    assert any(reason in r for _, _, _, r in found), found
    want = f(*args)
    for g, w in zip(tj.tree_map(np.asarray, jitted(*args)) if isinstance(want, tuple)
                    else [jitted(*args)], want if isinstance(want, tuple) else [want]):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)


def test_unfused_program_gives_fuse_false_as_the_reason_of_every_edge():
    args = small_args()
    jitted = jit(small, fuse=False)
    prog = jitted.program(*args)
    found = edges(jitted.report(*args))
    n_edges = sum(1 for k in prog.kernels for v in k.inputs
                  if any(v in j.outputs for j in prog.kernels))
    assert len(found) == n_edges == 5
    assert {r for _, _, _, r in found} == {"fuse=False: one kernel per primitive"}
    assert jitted.report(*args).startswith(
        "fusion report for @small: 6 kernels (unfused), 6 equations")
    check_numbers(small, *args)


def test_report_names_every_user_line_of_every_kernel():
    def two_lines(x, y):
        t = np.tanh(x) * y
        return np.sum(t * t, axis=1), t.T @ y
    first = inspect.getsourcelines(two_lines)[1]
    x, y = rand(4, 5, seed=1), rand(4, 5, seed=2)
    report = jit(two_lines).report(x, y)
    prog = jit(two_lines).program(x, y)
    for k in prog.kernels:
        lines = sorted({e.loc.line for e in k.eqns})
        head = next(line for line in report.splitlines() if line.startswith(f"{k.name} "))
        n = len(k.eqns)
        assert head.endswith(f"{n} equation{'' if n == 1 else 's'} from "
                             + ", ".join(f"{HERE}:{n}" for n in lines))
        assert set(lines) <= {first + 1, first + 2}
    assert report.count(f"# {HERE}:{first + 1}") == 2       # tanh, mul
    got = jit(two_lines)(x, y)
    t = np.tanh(x) * y
    np.testing.assert_allclose(got[0], np.sum(t * t, axis=1), rtol=2e-5)
    np.testing.assert_allclose(got[1], t.T @ y, rtol=2e-5, atol=1e-5)
    total = re.search(r"^total: reads .*, writes .*, (\d+) flops$", report, re.M)
    assert int(total.group(1)) == sum(k.flops() for k in prog.kernels)
