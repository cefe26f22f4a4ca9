"""First and second derivatives at the special points of every differentiable primitive and of
the NumPy compositions built on them: zeros, ties, ±inf inputs where the derivative is finite,
x**0, x**1, x**2 at 0, and branches left unused by np.where (whose zero cotangent meets an
infinite or undefined partial derivative: 0 * inf must give 0, not NaN).

Each case gives the expected gradient and Hessian analytically (ties share the gradient
equally, as in JAX; where a second derivative has a kink the table takes the convention the
rules document). Where the function is smooth around the point (or has a symmetric kink, whose
central difference is the tie's shared slope) the expected values are also checked against
central finite differences of NumPy in float64, so the table itself is checked. The forward
value is compared with NumPy's. The same table runs through the interpret backend (and plain
`tj.grad`) and through the cpu backend.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tracejit as tj
from tracejit import ops

INF = np.inf
LN2 = math.log(2.0)
Z2 = np.zeros((2, 2))


def _prod_of_finite(x):
    p = np.prod(x)
    return np.where(np.isfinite(p), p, 0.0)


def _sigmoid(t):
    return 1.0 / (1.0 + math.exp(-t))


P40 = _sigmoid(40.0)      # d logaddexp(x, y) / dx at (0, -40)
Q40 = P40 * (1.0 - P40)   # its derivative

# (id, f, args, gradient per argument, Hessian over the flattened arguments or None where it
#  is not finite, finite differences check: None, "grad", or "both")
CASES = [
    # elementwise unary
    ("neg_0", lambda x: -x, (0.0,), (-1.0,), [[0.0]], "both"),
    ("abs_0_tie", np.abs, (0.0,), (0.0,), [[0.0]], "grad"),
    ("abs_-inf", np.abs, (-INF,), (-1.0,), [[0.0]], None),
    ("exp_0", np.exp, (0.0,), (1.0,), [[1.0]], "both"),
    ("exp_-inf", np.exp, (-INF,), (0.0,), [[0.0]], None),
    ("exp_overflow_unused", lambda x: np.where(x < 100.0, np.exp(x), 0.0), (1000.0,), (0.0,),
     [[0.0]], "both"),
    ("expm1_0", np.expm1, (0.0,), (1.0,), [[1.0]], "both"),
    ("expm1_-inf", np.expm1, (-INF,), (0.0,), [[0.0]], None),
    ("log_inf", np.log, (INF,), (0.0,), [[0.0]], None),
    ("log_0_unused", lambda x: np.where(x > 0.0, np.log(x), 0.0), (0.0,), (0.0,), [[0.0]],
     None),
    ("log1p_inf", np.log1p, (INF,), (0.0,), [[0.0]], None),
    ("log1p_-1_unused", lambda x: np.where(x > -1.0, np.log1p(x), 0.0), (-1.0,), (0.0,),
     [[0.0]], None),
    ("sqrt_inf", np.sqrt, (INF,), (0.0,), [[0.0]], None),
    ("sqrt_0_zero_cotangent", lambda x: np.sqrt(x) * 0.0, (0.0,), (0.0,), [[0.0]], None),
    ("sqrt_0_unused", lambda x: np.where(x > 0.0, np.sqrt(x), 0.0), (0.0,), (0.0,), [[0.0]],
     None),
    ("sin_0", np.sin, (0.0,), (1.0,), [[0.0]], "both"),
    ("sin_inf_unused", lambda x: np.where(np.isfinite(x), np.sin(x), 0.0), (INF,), (0.0,),
     [[0.0]], None),
    ("cos_0", np.cos, (0.0,), (0.0,), [[-1.0]], "both"),
    ("cos_-inf_unused", lambda x: np.where(np.isfinite(x), np.cos(x), 0.0), (-INF,), (0.0,),
     [[0.0]], None),
    ("tanh_0", np.tanh, (0.0,), (1.0,), [[0.0]], "both"),
    ("tanh_inf", np.tanh, (INF,), (0.0,), [[0.0]], None),
    ("atan_0", np.arctan, (0.0,), (1.0,), [[0.0]], "both"),
    ("atan_inf", np.arctan, (INF,), (0.0,), [[0.0]], None),
    ("atan_-inf", np.arctan, (-INF,), (0.0,), [[0.0]], None),
    ("asinh_0", np.arcsinh, (0.0,), (1.0,), [[0.0]], "both"),
    ("asinh_inf", np.arcsinh, (INF,), (0.0,), [[0.0]], None),
    ("asinh_-inf", np.arcsinh, (-INF,), (0.0,), [[0.0]], None),
    ("asin_0", np.arcsin, (0.0,), (1.0,), [[0.0]], "both"),
    ("acos_0", np.arccos, (0.0,), (-1.0,), [[0.0]], "both"),
    ("atanh_0", np.arctanh, (0.0,), (1.0,), [[0.0]], "both"),
    ("asin_1_unused", lambda x: np.where(x < 1.0, np.arcsin(x), 0.0), (1.0,), (0.0,), [[0.0]],
     None),
    ("acosh_1_unused", lambda x: np.where(x > 1.0, np.arccosh(x), 0.0), (1.0,), (0.0,),
     [[0.0]], None),
    ("cbrt_0_unused", lambda x: np.where(x != 0.0, np.cbrt(x), 0.0), (0.0,), (0.0,), [[0.0]],
     None),
    ("hypot_origin", np.hypot, (0.0, 0.0), (0.0, 0.0), None, None),
    ("atan2_origin", np.arctan2, (0.0, 0.0), (0.0, 0.0), None, None),
    ("sinh_0", np.sinh, (0.0,), (1.0,), [[0.0]], "both"),
    ("cosh_0", np.cosh, (0.0,), (0.0,), [[1.0]], "both"),
    ("tan_0", np.tan, (0.0,), (1.0,), [[0.0]], "both"),
    ("piecewise_constant_0", lambda x: np.sign(x) + np.floor(x) + np.ceil(x) + np.trunc(x),
     (0.0,), (0.0,), [[0.0]], None),
    ("cast_0", lambda x: x.astype(np.float32).astype(np.float64), (0.0,), (1.0,), [[0.0]], None),
    # elementwise binary
    ("mul_0_0", np.multiply, (0.0, 0.0), (0.0, 0.0), [[0.0, 1.0], [1.0, 0.0]], "both"),
    ("mul_inf_unused", lambda x, y: np.where(np.isfinite(x), x * y, 0.0), (INF, 2.0),
     (0.0, 0.0), Z2, None),
    ("div_0", np.divide, (0.0, 1.0), (1.0, 0.0), [[0.0, -1.0], [-1.0, 0.0]], "both"),
    ("div_by_inf", np.divide, (1.0, INF), (0.0, 0.0), Z2, None),
    ("div_by_0_unused", lambda x, y: np.where(y != 0.0, x / y, 0.0), (1.0, 0.0), (0.0, 0.0),
     Z2, None),
    ("reciprocal_inf", lambda x: 1.0 / x, (INF,), (0.0,), [[0.0]], None),
    ("mod_by_0_unused", lambda x, y: np.where(y != 0.0, np.mod(x, y), 0.0), (1.0, 0.0),
     (0.0, 0.0), Z2, None),
    ("pow_x0_at_0", lambda x: x ** 0.0, (0.0,), (0.0,), [[0.0]], "both"),
    ("pow_x1_at_0", lambda x: x ** 1.0, (0.0,), (1.0,), [[0.0]], "both"),
    ("pow_x2_at_0", lambda x: np.float_power(x, 2.0), (0.0,), (0.0,), [[2.0]], "both"),
    ("pow_x3_at_0", lambda x: x ** 3.0, (0.0,), (0.0,), [[0.0]], "both"),
    ("pow_x1.5_at_0", lambda x: x ** 1.5, (0.0,), (0.0,), None, None),
    ("pow_traced_at_0_2", np.power, (0.0, 2.0), (0.0, 0.0), [[2.0, 0.0], [0.0, 0.0]], None),
    ("pow_traced_at_0_0", np.power, (0.0, 0.0), (0.0, 0.0), None, None),
    ("pow_traced_2_3", np.power, (2.0, 3.0), (12.0, 8 * LN2),
     [[12.0, 4 + 12 * LN2], [4 + 12 * LN2, 8 * LN2 ** 2]], "both"),
    ("exp2_-inf", lambda x: 2.0 ** x, (-INF,), (0.0,), [[0.0]], None),
    ("maximum_tie", np.maximum, (1.0, 1.0), (0.5, 0.5), Z2, "grad"),
    ("minimum_tie", np.minimum, (1.0, 1.0), (0.5, 0.5), Z2, "grad"),
    ("fmax_tie", np.fmax, (1.0, 1.0), (0.5, 0.5), Z2, "grad"),
    ("fmin_tie", np.fmin, (1.0, 1.0), (0.5, 0.5), Z2, "grad"),
    ("maximum_inf", np.maximum, (INF, 1.0), (1.0, 0.0), Z2, None),
    ("sqrt_maximum_unchosen", lambda x: np.sqrt(np.maximum(x, 0.0)), (-1.0,), (0.0,), [[0.0]],
     "both"),
    ("clip_low_tie", lambda x: np.clip(x, 0.0, 1.0), (0.0,), (0.5,), [[0.0]], "grad"),
    ("clip_high_tie", lambda x: np.clip(x, 0.0, 1.0), (1.0,), (0.5,), [[0.0]], "grad"),
    ("logaddexp_tie", np.logaddexp, (0.4, 0.4), (0.5, 0.5), [[0.25, -0.25], [-0.25, 0.25]],
     "both"),
    ("logaddexp_far", np.logaddexp, (0.0, -40.0), (P40, 1.0 - P40),
     [[Q40, -Q40], [-Q40, Q40]], "both"),
    ("logaddexp_-inf", np.logaddexp, (-INF, 1.0), (0.0, 1.0), Z2, None),
    ("logaddexp_inf", np.logaddexp, (INF, 1.0), (1.0, 0.0), Z2, None),
    ("logaddexp_-inf_tie", np.logaddexp, (-INF, -INF), (0.5, 0.5), None, None),
    ("where_at_0", lambda x: np.where(x > 0.0, x, 0.0), (0.0,), (0.0,), [[0.0]], None),
    # reductions
    ("std_one_element", np.std, (3.5,), (0.0,), [[0.0]], "both"),
    ("std_axis_of_one", lambda x: np.sum(np.std(x, axis=0)), (np.ones((1, 3)),),
     (np.zeros((1, 3)),), np.zeros((3, 3)), "both"),
    ("std_zero_variance", np.std, (np.ones(3),), (np.zeros(3),), np.zeros((3, 3)), "grad"),
    ("var_zero_variance", np.var, (np.ones(3),), (np.zeros(3),),
     2 / 3 * (np.eye(3) - 1 / 3), "both"),
    ("max_ties", np.max, (np.ones(3),), (np.full(3, 1 / 3),), np.zeros((3, 3)), None),
    ("min_ties", np.min, (np.ones(3),), (np.full(3, 1 / 3),), np.zeros((3, 3)), None),
    ("sqrt_max_unchosen", lambda x: np.sqrt(np.max(x)), (np.array([0.0, -1.0]),),
     (np.array([INF, 0.0]),), None, None),
    ("prod_one_zero", np.prod, (np.array([0.0, 2.0, 3.0]),), (np.array([6.0, 0.0, 0.0]),),
     [[0, 3, 2], [3, 0, 0], [2, 0, 0]], "both"),
    ("prod_two_zeros", np.prod, (np.array([0.0, 0.0, 3.0]),), (np.zeros(3),),
     [[0, 3, 0], [3, 0, 0], [0, 0, 0]], "both"),
    ("prod_inf", np.prod, (np.array([INF, 2.0, 3.0]),), (np.array([6.0, INF, INF]),), None,
     None),
    ("prod_inf_unused", _prod_of_finite, (np.array([INF, 2.0, 3.0]),), (np.zeros(3),),
     np.zeros((3, 3)), None),
]


def _args(case):
    return tuple(np.asarray(a, dtype=np.float64) for a in case[2])


def _numpy(f, *args):
    with np.errstate(all="ignore"):
        return np.asarray(f(*args), dtype=np.float64)


def _shift(args, steps):
    """args with offsets added to their flattened entries: steps is [(index, offset), ...]."""
    flat = np.concatenate([a.ravel() for a in args])
    for k, h in steps:
        flat[k] += h
    sizes = np.cumsum([a.size for a in args])[:-1]
    return [part.reshape(a.shape) for part, a in zip(np.split(flat, sizes), args)]


def _fd_gradient(f, args, h=1e-6):
    n = sum(a.size for a in args)
    return np.array([(_numpy(f, *_shift(args, [(k, h)])) - _numpy(f, *_shift(args, [(k, -h)])))
                     / (2 * h) for k in range(n)])


def _fd_hessian(f, args, h=1e-4):
    n = sum(a.size for a in args)

    def at(si, i, sj, j):
        return _numpy(f, *_shift(args, [(i, si * h), (j, sj * h)]))

    return np.array([[(at(1, i, 1, j) - at(1, i, -1, j) - at(-1, i, 1, j) + at(-1, i, -1, j))
                      / (4 * h * h) for j in range(n)] for i in range(n)])


def _flat(xs):
    return np.concatenate([np.reshape(x, (-1,)) for x in xs])


def _derivatives(f, n_args, hessian: bool):
    """A function of the arguments giving (f, the flat gradient, the Hessian's rows)."""
    argnums = tuple(range(n_args))

    def flat_grad(*a):
        return _flat(tj.grad(f, argnums=argnums)(*a))

    def all_of(*a):
        g = flat_grad(*a)
        rows = ()
        if hessian:
            rows = tuple(_flat(tj.grad(lambda *b, k=k: flat_grad(*b)[k], argnums=argnums)(*a))
                         for k in range(g.shape[0]))
        return f(*a), g, rows

    return all_of


def _expected(case):
    _, _, args, grad, hess, _ = case
    want_grad = _flat([np.broadcast_to(np.asarray(g, dtype=np.float64), a.shape)
                       for g, a in zip(grad, _args(case))])
    return want_grad, None if hess is None else np.asarray(hess, dtype=np.float64)


def _check(name, got_grad, got_hess, want_grad, want_hess):
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-12, atol=1e-15,
                               err_msg=f"{name}: gradient")
    if want_hess is not None:
        np.testing.assert_allclose(got_hess, want_hess, rtol=1e-12, atol=1e-15,
                                   err_msg=f"{name}: Hessian")


FD_CASES = [c for c in CASES if c[5] is not None]


@pytest.mark.parametrize("case", FD_CASES, ids=[c[0] for c in FD_CASES])
def test_table_against_finite_differences(case):
    """The expected values of the table agree with NumPy's central differences."""
    _, f, _, _, _, fd = case
    args = _args(case)
    want_grad, want_hess = _expected(case)
    np.testing.assert_allclose(_fd_gradient(f, args), want_grad, rtol=1e-6, atol=1e-7)
    if fd == "both":
        np.testing.assert_allclose(_fd_hessian(f, args), want_hess, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["interpret", "cpu"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_derivatives_at_special_points(case, backend):
    name, f, _, _, hess, _ = case
    args = _args(case)
    want_grad, want_hess = _expected(case)
    if backend == "interpret":     # plain tj.grad too
        grad = tj.grad(f, argnums=tuple(range(len(args))))(*args)
        _check(name, _flat(grad), None, want_grad, None)
    value, grad, rows = tj.jit(_derivatives(f, len(args), hess is not None),
                               backend=backend)(*args)
    np.testing.assert_array_equal(value, _numpy(f, *args), err_msg=f"{name}: forward value")
    _check(name, np.asarray(grad), np.array(rows) if rows else None, want_grad, want_hess)


def test_pad_value_gradient_beside_an_infinite_cotangent():
    """The padding value's cotangent sums g over the padding alone: g may be infinite where
    the operand was copied (sqrt at 0) while the padding's own gradient is finite."""
    def f(x, v):
        return np.sum(np.sqrt(ops.pad(x, v, (1,), (1,), (4,))))

    x, v = np.zeros(2), np.float64(4.0)
    for backend in ("interpret", "cpu"):
        gx, gv = tj.jit(tj.grad(f, argnums=(0, 1)), backend=backend)(x, v)
        np.testing.assert_array_equal(gx, [INF, INF])
        assert gv == 2 * 0.25      # two padded entries, d sqrt(v) / dv = 1/4 each
