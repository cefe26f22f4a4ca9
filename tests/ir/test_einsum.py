"""np.einsum and np.einsum_path on tracers (tracejit/numpy_api/einsum.py), against NumPy.

Every form NumPy accepts: explicit and implicit subscripts, ellipses (broadcast, size 1 and of
different lengths), repeated indices within an operand (diagonals, traces), the sublist form,
chains of operands with every optimize= NumPy takes, dtypes and their promotion, dtype= and
casting=; gradients (first and second order) of several forms; the errors, of NumPy's types;
and that the order of the pairwise contractions is chosen by cost (in the traced IR).

Each `check` compiles three programs, so the forms are grouped: each group is one function
that returns a tuple of einsums.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tracejit as tj
from npcheck import check, grad_check, numpy_result


def rand(*shape, dtype="float64", seed=0):
    """Random data of `dtype`: normal floats, small integers, or coin flips."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(-3, 4, shape).astype(dt)


# ---------------------------------------------------------------------------------------------
# forward: the forms, grouped


def products(a, b, c, v, w):
    """a (3, 4), b (4, 5), c (2, 3, 4), v (4,), w (3,)."""
    return (np.einsum("ij,jk->ik", a, b), np.einsum("ij,jk", a, b),
            np.einsum("bij,jk->bik", c, b), np.einsum("...ij,...jk", c, b),
            np.einsum("bi,ij,bj->b", a, np.eye(4) + a[:1], a),
            np.einsum("i,j", v, w), np.einsum("i,j->ji", v, w), np.einsum("i,i", v, v),
            np.einsum("ij,j->i", a, v), np.einsum("ij,ij->i", a, a), np.einsum("ij,ij", a, a),
            np.einsum("ijk,jil->kl", c.reshape(3, 2, 4), c.reshape(2, 3, 4)),
            np.einsum("ij,kl->ijkl", a[:2, :2], a[1:, 2:]),
            np.einsum("bhqd,bhkd->bhqk", c.reshape(1, 2, 3, 4), c.reshape(1, 2, 3, 4)))


def single_operand(sq, cube, r):
    """sq (4, 4), cube (3, 3, 3), r (2, 3)."""
    return (np.einsum("ii", sq), np.einsum("ii->i", sq), np.einsum("ii->", sq),
            np.einsum("iii->i", cube), np.einsum("iij->ij", cube), np.einsum("ijj->i", cube),
            np.einsum("iji->j", cube), np.einsum("iji", cube), np.einsum("ij->ji", r),
            np.einsum("ij", r), np.einsum("ji", r), np.einsum("ij->", r), np.einsum("ij->j", r),
            np.einsum("ijk->kj", cube), np.einsum("...ii->...i", cube[:, :2, :2]),
            np.einsum("i...i", cube), np.einsum("ii,ij->j", sq[:3, :3], r.T),
            np.einsum(" ij -> ji ", r))


def ellipses(x, y, s, m):
    """x (2, 1, 3), y (4, 3), s (3, 2, 4), m (3, 1, 4)."""
    return (np.einsum("...i,...i", x, y), np.einsum("...i,...i->...", x, y),
            np.einsum("...i,...i->i...", x, y), np.einsum("i...,i...->...", s, m),
            np.einsum("i...,i...", s, m), np.einsum("...ij->...ji", s),
            np.einsum("...ij,...jk->...ik", s, np.ones((4, 2)) * y[0, 0]),
            np.einsum("ij...,jk...", y[:2], s), np.einsum("k...,jk", s[:, :, 0], y),
            np.einsum("...,...", 2.0, x), np.einsum(",ij", 3.0, y), np.einsum("...", s),
            np.einsum("i...->...", s), np.einsum("...->...", s),
            np.einsum("...i->i...", x), np.einsum("i->...i", y[0]))


def test_products():
    a, b, c = rand(3, 4, seed=1), rand(4, 5, seed=2), rand(2, 3, 4, seed=3)
    check(products, a, b, c, rand(4, seed=4), rand(3, seed=5))


def test_products_float32():
    args = [rand(*s, dtype="float32", seed=i) for i, s in
            enumerate([(3, 4), (4, 5), (2, 3, 4), (4,), (3,)])]
    check(products, *args, rtol=1e-5)


def test_repeated_indices_and_single_operands():
    check(single_operand, rand(4, 4, seed=6), rand(3, 3, 3, seed=7), rand(2, 3, seed=8))


def test_repeated_indices_int64():
    check(single_operand, rand(4, 4, dtype="int64", seed=6), rand(3, 3, 3, dtype="int64"),
          rand(2, 3, dtype="int64", seed=8))


def test_ellipses():
    check(ellipses, rand(2, 1, 3, seed=9), rand(4, 3, seed=10), rand(3, 2, 4, seed=11),
          rand(3, 1, 4, seed=12))


def test_size_one_and_empty_dimensions():
    """NumPy broadcasts a size-1 dimension against a longer one, for labels too."""
    def f(one, v, col, m, empty):
        return (np.einsum("i,i", one, v), np.einsum("i,i->i", one, v),
                np.einsum("ij,jk", col, m), np.einsum("ij,jk,kl", col, m, m.T),
                np.einsum("ij,ij", col, m[:1]), np.einsum("ii->i", empty.reshape(0, 0)),
                np.einsum("ij->", empty), np.einsum("ij,jk->ik", empty, m.T),
                np.einsum("ii", col[:1]))
    check(f, rand(1, seed=13), rand(3, seed=14), rand(2, 1, seed=15), rand(3, 4, seed=16),
          np.zeros((0, 4)))


def test_sublist_form():
    a, b, c = rand(2, 3, seed=17), rand(3, 4, seed=18), rand(2, 2, 3, seed=19)

    def f(a, b, c):
        return (np.einsum(a, [0, 1], b, [1, 2], [0, 2]), np.einsum(a, [0, 1], b, [1, 2]),
                np.einsum(a, [0, 1]), np.einsum(a, [1, 0]), np.einsum(a, [30, 0]),
                np.einsum(a, [0, 51], b, [51, 26]), np.einsum(a, (0, 1), [1]),
                np.einsum(c, [Ellipsis, 0, 1], b, [1, 2], [Ellipsis, 2]),
                np.einsum(c, [Ellipsis, 1], [Ellipsis]), np.einsum(c, [0, 0, 1], [0, 1]),
                np.einsum(c[0, :2, :2], [np.int64(3), 3]),
                np.einsum(a, [0, 1], b, [1, 2], a, [0, 3], [2, 3], optimize=True),
                np.einsum(3.0, [Ellipsis], a, [Ellipsis]))
    check(f, a, b, c)


CHAIN = "ab,bc,cd,de,ef->af"


def test_chains_with_every_optimize():
    ops = [rand(2, 6, seed=20), rand(6, 7, seed=21), rand(7, 3, seed=22), rand(3, 8, seed=23),
           rand(8, 2, seed=24)]
    path = np.einsum_path(CHAIN, *ops, optimize="optimal")[0]

    def f(*ops):
        return (np.einsum(CHAIN, *ops), np.einsum(CHAIN, *ops, optimize=True),
                np.einsum(CHAIN, *ops, optimize="greedy"),
                np.einsum(CHAIN, *ops, optimize="optimal"),
                np.einsum(CHAIN, *ops, optimize=("greedy", 50)),
                np.einsum(CHAIN, *ops, optimize=path),
                np.einsum(CHAIN, *ops, optimize=["einsum_path", (3, 4), (1, 2), (0, 2), (0, 1)]),
                np.einsum(CHAIN, *ops, optimize=["einsum_path", (0, 1, 2), (0, 1, 2)]),
                np.einsum("ab,bc,cd,de->", *ops[:4], optimize=None),
                np.einsum("ab,cd,bc,da->", ops[0], ops[2], ops[1], ops[3][:, :2]),
                np.einsum("i,i,i,i->i", ops[0][0], ops[0][1], ops[1][:, 0], ops[1][:, 1]),
                np.einsum("ab,b,cb,c", ops[1].T, ops[0][0], ops[3][:, :6], ops[2][0]))
    check(f, *ops)


@pytest.mark.parametrize("dtypes", [("float32", "int64"), ("int32", "float32"),
                                    ("int64", "int32"), ("bool", "float32"), ("bool", "bool"),
                                    ("int64", "int64")], ids=str)
def test_dtypes_promote_as_numpy(dtypes):
    a, b = rand(3, 4, dtype=dtypes[0], seed=25), rand(4, 4, dtype=dtypes[1], seed=26)

    def f(a, b):
        return (np.einsum("ij,jk", a, b), np.einsum("ij,jk,kl->il", a, b, b, optimize=True),
                np.einsum("ii->i", b), np.einsum("ii", b), np.einsum("ij->", a),
                np.einsum("ij,ij->j", a, b[:3]), np.einsum(",ij", 2, a))
    check(f, a, b, rtol=1e-5)


def test_dtype_and_casting_keywords():
    a32, a64, i = rand(3, 4, dtype="float32"), rand(4, 2, seed=1), rand(4, 2, dtype="int64")

    def f(a32, a64, i):
        return (np.einsum("ij,jk", a32, a32.T, dtype=np.float64),
                np.einsum("ij,jk", a64.T, a64, dtype=np.float32, casting="same_kind"),
                np.einsum("ij,jk", a32, i, dtype=np.float32, casting="unsafe"),
                np.einsum("ij->i", a64, dtype=np.int32, casting="unsafe"),
                np.einsum("ij,jk", i.T, i, dtype=np.float64),
                np.einsum("ij,jk", a32 > 0, i, dtype=bool, casting="unsafe"),
                np.einsum("ij", a64, order="C"), np.einsum("ij", a64, order="A"))
    check(f, a32, a64, i, rtol=1e-5)


def test_constant_operands():
    def f(x):
        return (np.einsum("ij,jk->ik", x, np.arange(12.0).reshape(4, 3)),
                np.einsum("ij,j,k", x, [1, 2, 3, 4], np.ones(2, np.float32)),
                np.einsum("ii,i->i", np.eye(3), x[:, 0]))
    check(f, rand(3, 4, seed=27))


# ---------------------------------------------------------------------------------------------
# gradients


def test_gradients_of_products():
    def f(x):
        a, b = x[:, :3], x[:, 1:]
        return np.concatenate([
            np.einsum("ij,jk->ik", a, b.T).ravel(), np.einsum("bi,ij,bj->b", a, b[:3], a),
            np.einsum("...ij,...jk", x.reshape(2, 2, 4)[:, :, :2], a[:2, :2]).ravel(),
            np.einsum("i,j", x[0], x[1]).ravel(),
            np.einsum("ab,bc,cd,de->ae", a, b.T, a, b.T, optimize="optimal").ravel(),
            np.einsum(a, [0, 1], b, [0, 2], [1, 2]).ravel()])
    grad_check(f, rand(4, 4, seed=28))


def test_gradients_of_diagonals_and_traces():
    def f(x):
        cube = x.reshape(2, 2, 4)
        return np.concatenate([
            np.einsum("ii->i", x), np.einsum("ii", x)[None], np.einsum("ii,ij->j", x, x),
            np.einsum("iij->ij", cube).ravel(), np.einsum("ijj->i", x.reshape(4, 2, 2)),
            np.einsum("i...i", x.reshape(2, 4, 2)), np.einsum("...i,...i", cube, x[:2]).ravel()])
    grad_check(f, rand(4, 4, seed=29))


# ---------------------------------------------------------------------------------------------
# errors: NumPy's exception types


A23, A33, A45 = np.ones((2, 3)), np.ones((3, 3)), np.ones((4, 5))

ERRORS = [
    ("repeated output index", lambda x: np.einsum("ij->ii", x), [A33]),
    ("output index not in inputs", lambda x: np.einsum("ij->k", x), [A23]),
    ("mismatched sizes", lambda x, y: np.einsum("ij,jk", x, y), [A23, A45]),
    ("mismatched ellipsis sizes", lambda x, y: np.einsum("...i,...i", x, y),
     [np.ones((2, 3)), np.ones((3, 3, 3))]),
    ("mismatched repeated index", lambda x: np.einsum("ii", x), [A23]),
    ("too few operands", lambda x: np.einsum("ij,jk", x), [A23]),
    ("too many operands", lambda x, y: np.einsum("ij", x, y), [A23, A23]),
    ("bad character", lambda x: np.einsum("i1", x), [A23]),
    ("bad character in output", lambda x: np.einsum("ij->i$", x), [A23]),
    ("two arrows", lambda x: np.einsum("ij->i->i", x), [A23]),
    ("lone dash", lambda x: np.einsum("ij-", x), [A23]),
    ("broken ellipsis", lambda x: np.einsum("i..->i", x), [A23]),
    ("two ellipses", lambda x: np.einsum("...i...", x), [A23]),
    ("too many subscripts", lambda x: np.einsum("ijk", x), [A23]),
    ("too few subscripts", lambda x: np.einsum("i", x), [A23]),
    ("dropped ellipsis dims", lambda x: np.einsum("...i->i", x), [A23]),
    ("sublist out of range", lambda x: np.einsum(x, [0, 52]), [A23]),
    ("sublist negative", lambda x: np.einsum(x, [0, -1]), [A23]),
    ("sublist float", lambda x: np.einsum(x, [0, 1.0]), [A23]),
    ("sublist bool", lambda x: np.einsum(x, [True, 1]), [A23]),
    ("sublist two ellipses", lambda x: np.einsum(x, [Ellipsis, 0, Ellipsis]), [A23]),
    ("sublist not a list", lambda x: np.einsum(x, 0), [A23]),
    ("sublist missing", lambda x: np.einsum(x), [A23]),
    ("unsafe dtype", lambda x: np.einsum("ij->i", x, dtype=np.float32), [A23]),
    ("no casting", lambda x, y: np.einsum("ij,jk", x, y, casting="no"),
     [A23.astype(np.float32), A33]),
    ("unknown keyword", lambda x: np.einsum("ij", x, foo=1), [A23]),
    ("optimize not a path", lambda x: np.einsum("ij,jk,kl", x, x, x, optimize=1), [A33]),
    ("optimize unknown name", lambda x: np.einsum("ij,jk,kl", x, x, x, optimize="foo"), [A33]),
    ("path too short", lambda x: np.einsum("ij,jk,kl", x, x, x,
                                           optimize=["einsum_path", (0, 1)]), [A33]),
    ("path out of range", lambda x: np.einsum("ij,jk,kl", x, x, x,
                                              optimize=["einsum_path", (0, 5), (0, 1)]), [A33]),
    ("einsum_path sizes", lambda x, y: np.einsum_path("ij,jk", x, y), [A23, A45]),
]


@pytest.mark.parametrize("f, args", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_as_numpy(f, args):
    with pytest.raises(Exception) as numpy_error:
        numpy_result(f, *args)
    with pytest.raises(type(numpy_error.value)) as error:
        tj.jit(f, backend="interpret")(*args)
    assert "test_einsum.py" in str(error.value)          # at the user's line


def test_ellipsis_dims_summed_with_optimize():
    """NumPy's optimized einsum sums '...' dimensions that the output leaves out (its C
    einsum, optimize=False, refuses them: above)."""
    check(lambda x: np.einsum("...i->i", x, optimize=True), rand(2, 3, 4, seed=30))


def test_out_is_refused():
    x = rand(2, 2)
    with pytest.raises(tj.UnsupportedError, match="out="):
        tj.jit(lambda x: np.einsum("ij", x, out=np.empty((2, 2))), backend="interpret")(x)


# ---------------------------------------------------------------------------------------------
# the order of the contractions, in the traced IR


def dot_costs(fn) -> tuple[int, int]:
    """(total multiply-adds, largest output) of the dot equations of `fn`."""
    work, largest = 0, 0
    for e in fn.eqns:
        if e.prim.name != "dot":
            continue
        lhs = e.inputs[0].type.shape
        out = math.prod(e.out.type.shape)
        work += out * math.prod(lhs[i] for i in e.params["contract"][0])
        largest = max(largest, out)
    return work, largest


def test_contraction_order_is_chosen_by_cost():
    """'ij,kl,jk,li->' from the left makes an n**4 outer product first; by cost every
    intermediate is n**2 and the work n**3; an explicit path is followed exactly."""
    n = 6
    ops = [rand(n, n, seed=31 + i) for i in range(4)]
    spec = "ij,kl,jk,li->"
    left = ["einsum_path", (0, 1), (0, 1), (0, 1)]
    bad_work, bad_largest = dot_costs(tj.trace(
        lambda *ops: np.einsum(spec, *ops, optimize=left), *ops))
    assert bad_largest == n ** 4
    for optimize in (False, True, "greedy", "optimal"):
        work, largest = dot_costs(tj.trace(
            lambda *ops: np.einsum(spec, *ops, optimize=optimize), *ops))
        assert largest <= n * n and work <= 3 * n ** 3 < bad_work, optimize
    check(lambda *ops: (np.einsum(spec, *ops), np.einsum(spec, *ops, optimize=left)), *ops)


def test_diagonal_is_a_strided_slice():
    fn = tj.trace(lambda x: np.einsum("ii->i", x), rand(3, 3))
    assert [e.prim.name for e in fn.eqns] == ["reshape", "slice"]


def test_einsum_path_on_tracers():
    ops = [rand(2, 6), rand(6, 7), rand(7, 3), rand(3, 2)]
    spec = "ab,bc,cd,da->"
    seen = []

    def f(*ops):
        path, text = np.einsum_path(spec, *ops, optimize="optimal")
        seen.append((path, text))
        return np.einsum(spec, *ops, optimize=path)

    check(f, *ops)
    want = np.einsum_path(spec, *ops, optimize="optimal")
    assert all(got == want for got in seen)
    with pytest.raises(tj.UnsupportedError, match="einsum_call="):
        tj.jit(lambda x: np.einsum_path("ij", x, einsum_call=True)[0][0],
               backend="interpret")(ops[0])
