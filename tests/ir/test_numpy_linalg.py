"""numpy.linalg (tracejit/numpy_api/linear_algebra.py): cholesky, solve, inv, det, slogdet,
eigh, eigvalsh, svd, qr (LAPACK on the cpu backend), svdvals, pinv, norm, matrix_power,
multi_dot, matrix_transpose.
Values, dtypes and shapes against NumPy through tj.jit (cpu fused and unfused; the CUDA
backend for the compositions, and its UnsupportedError for the factorisations), stacks of
matrices and broadcasting batch axes, NumPy's LinAlgError where a matrix is singular or not
positive definite, and gradients (first and second order) against float64 central finite
differences."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors
from npcheck import check, cuda_backend, grad_check

FLOATS = ["float32", "float64"]
RTOL = {"float32": 2e-4, "float64": 1e-9}


def rand(shape, dtype="float64", seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def spd(shape, dtype="float64", seed=0):
    """Symmetric positive definite matrices: x xᵀ + n I."""
    x = rand(shape, "float64", seed)
    return (x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])).astype(dtype)


def sym(x):
    """The symmetric positive definite matrix that finite differences of x perturb."""
    return x @ np.swapaxes(x, -1, -2) + x.shape[-1] * np.eye(x.shape[-1])


def signed(v):
    """Eigenvectors with the sign that makes each one's largest entry positive."""
    at = np.argmax(np.abs(v), axis=-2)[..., None, :]
    return v * np.sign(np.take_along_axis(v, at, axis=-2))


# ---------------------------------------------------------------------------------------------
# forward


@pytest.mark.parametrize("dtype", FLOATS)
def test_factorisations_and_solves(dtype):
    tol = dict(rtol=RTOL[dtype], atol=RTOL[dtype], cuda=False)
    for shape in [(4, 4), (3, 5, 5), (2, 1, 3, 3)]:
        a = spd(shape, dtype, seed=len(shape))
        check(lambda a: (np.linalg.cholesky(a), np.linalg.cholesky(a, upper=True),
                         np.linalg.inv(a), np.linalg.det(a), np.linalg.slogdet(a),
                         np.linalg.eigvalsh(a), np.linalg.eigvalsh(a, UPLO="U")), a, **tol)
        check(lambda a: signed(np.linalg.eigh(a).eigenvectors), a, **tol)
    a, g = spd((3, 4, 4), dtype), rand((4, 4), dtype, seed=1)
    b, c = rand((4,), dtype, seed=2), rand((2, 1, 4, 3), dtype, seed=3)
    check(lambda a, g, b, c: (np.linalg.solve(a, b), np.linalg.solve(g, c), np.linalg.solve(a, c),
                              np.linalg.solve(g, b), np.linalg.det(g), np.linalg.slogdet(g),
                              np.linalg.inv(g)), a, g, b, c, **tol)
    # Views as operands: transposed, strided, broadcast.
    check(lambda g, c: (np.linalg.solve(g.T, c[0, 0]), np.linalg.inv(g[::-1, ::-1]),
                        np.linalg.det(np.broadcast_to(g, (2, 4, 4)))), g, c, **tol)


def svd_signed(usv):
    """U, S, Vᵀ with each singular pair's sign chosen so that U's largest entry is positive."""
    u, s, vt = usv
    k = s.shape[-1]
    at = np.argmax(np.abs(u[..., :k]), axis=-2)[..., None, :]
    sign = np.sign(np.take_along_axis(u[..., :k], at, axis=-2))
    flip_u = np.concatenate([sign, np.ones(sign.shape[:-1] + (u.shape[-1] - k,))], axis=-1)
    flip_v = np.swapaxes(np.concatenate([sign, np.ones(sign.shape[:-1] + (vt.shape[-2] - k,))],
                                        axis=-1), -1, -2)
    return u * flip_u.astype(u.dtype), s, vt * flip_v.astype(vt.dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_svd_pinv(dtype):
    tol = dict(rtol=RTOL[dtype], atol=RTOL[dtype], cuda=False)
    for shape in [(4, 4), (5, 3), (3, 5), (2, 4, 3), (1, 6)]:
        a = rand(shape, dtype, seed=len(shape))
        check(lambda a: (svd_signed(np.linalg.svd(a)),
                         svd_signed(np.linalg.svd(a, full_matrices=False)),
                         np.linalg.svd(a, compute_uv=False), np.linalg.svdvals(a),
                         np.linalg.pinv(a), np.linalg.pinv(a, rcond=0.3),
                         np.linalg.norm(a, "nuc", axis=(-2, -1)),
                         np.linalg.norm(a, -2, axis=(-1, -2)), np.linalg.matrix_rank(a),
                         np.linalg.matrix_rank(a, tol=0.5), np.linalg.matrix_rank(a, rtol=0.2),
                         np.linalg.cond(a), np.linalg.cond(a, -2)), a, **tol)
    g = spd((2, 3, 3), dtype)
    low_rank = np.ones((4, 3), dtype)
    check(lambda g, low_rank: ([np.linalg.cond(g, p) for p in (None, 1, -np.inf, "fro")],
                               np.linalg.matrix_rank(low_rank), np.linalg.matrix_rank(g[0, 0]),
                               np.linalg.matrix_rank(np.zeros(3))), g, low_rank, **tol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_qr(dtype):
    tol = dict(rtol=RTOL[dtype], atol=RTOL[dtype], cuda=False)
    for shape in [(4, 4), (5, 3), (3, 5), (2, 4, 3), (1, 6), (6, 1)]:
        a = rand(shape, dtype, seed=len(shape))
        modes = ["reduced", "r"] + (["complete"] if shape[-2] <= shape[-1] else [])
        check(lambda a: [np.linalg.qr(a, mode) for mode in modes] + [np.linalg.qr(a)], a,
              **tol)
    with pytest.raises(errors.UnsupportedError, match="mode='reduced'"):
        tj.jit(lambda a: np.linalg.qr(a, "complete"))(rand((4, 2)))


def test_integer_operands_and_empty_stacks():
    a = np.array([[2, 1], [1, 3]])
    check(lambda a: (np.linalg.inv(a), np.linalg.det(a), np.linalg.solve(a, a[0]),
                     np.linalg.cholesky(a), np.linalg.eigvalsh(a)), a, cuda=False)
    e = np.zeros((0, 3, 3))
    check(lambda e: (np.linalg.inv(e), np.linalg.det(e), np.linalg.cholesky(e)), e, cuda=False)


def test_singular_matrices():
    a = np.array([[1.0, 2.0], [2.0, 4.0]])
    check(lambda a: (np.linalg.det(a), np.linalg.slogdet(a)), a, cuda=False)
    for f in (np.linalg.inv, lambda a: np.linalg.solve(a, a[0])):
        with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
            tj.jit(f)(a)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        tj.jit(np.linalg.cholesky)(-np.eye(3))
    with pytest.raises(np.linalg.LinAlgError, match="must be square"):
        tj.jit(np.linalg.inv)(np.ones((2, 3)))
    with pytest.raises(np.linalg.LinAlgError, match="at least two-dimensional"):
        tj.jit(np.linalg.det)(np.ones(3))
    with pytest.raises(ValueError, match="UPLO"):
        tj.jit(lambda a: np.linalg.eigh(a, UPLO="X"))(a)


def test_nan_inputs_are_numpys():
    # NaN goes through LAPACK as in NumPy (LAPACKE's NaN scan, which would refuse it, is
    # off): det, inv and solve give NaN; the SVD does not converge, as NumPy says.
    a = spd((2, 3, 3))
    a[0, 1, 1] = np.nan
    b = rand((2, 3, 2))
    check(lambda a, b: (np.linalg.det(a), np.linalg.slogdet(a), np.linalg.inv(a[1]),
                        np.linalg.solve(a[1], b[1])), a, b, cuda=False)
    # Where NaN spreads inside the factorisation is LAPACK's order of work: NaN, no error.
    inv, x = tj.jit(lambda a, b: (np.linalg.inv(a), np.linalg.solve(a, b)))(a, b)
    assert np.isnan(inv[0]).any() and np.isnan(x[0]).any()
    with pytest.raises(np.linalg.LinAlgError, match="SVD did not converge"):
        tj.jit(lambda a: np.linalg.svd(a))(a)


def test_complex_results_say_so():
    a = spd((3, 3))
    for name, f in (("eig", lambda a: np.linalg.eig(a)), ("eigvals", lambda a: np.linalg.eigvals(a))):
        with pytest.raises(errors.UnsupportedError, match=f"{name} .*complex.*eigh"):
            tj.jit(f)(a)


@pytest.mark.parametrize("dtype", FLOATS)
def test_lstsq(dtype):
    for (m, n), k in [((7, 3), None), ((7, 3), 2), ((3, 5), 2), ((4, 4), None)]:
        a, b = rand((m, n), dtype, seed=m), rand((m,) if k is None else (m, k), dtype, seed=n)
        check(lambda a, b: np.linalg.lstsq(a, b), a, b,
              rtol=2e-5 if dtype == "float32" else 1e-10, cuda=False)
        check(lambda a, b: np.linalg.lstsq(a, b, rcond=0.3)[0], a, b,
              rtol=2e-5 if dtype == "float32" else 1e-10, cuda=False)
    # Rank-deficient: the solution is NumPy's (the least-norm one); the residuals NumPy
    # leaves empty raise where they are used.
    a = rand((6, 3), dtype, seed=5)
    a[:, 2] = a[:, 0]
    b = rand((6,), dtype, seed=6)
    check(lambda a, b: np.linalg.lstsq(a, b)[0], a, b, rtol=1e-4 if dtype == "float32"
          else 1e-9, cuda=False)
    with pytest.raises(np.linalg.LinAlgError, match="residuals"):
        tj.jit(lambda a, b: np.linalg.lstsq(a, b)[1])(a, b)


def test_lstsq_gradient():
    b = rand((7, 2), seed=3)
    grad_check(lambda a: np.linalg.lstsq(a, b)[0], rand((7, 3), seed=4), cuda=False)
    grad_check(lambda a: np.linalg.lstsq(a, b)[1], rand((7, 3), seed=5), cuda=False)


@pytest.mark.skipif(cuda_backend() is None, reason="no CUDA backend (g++ or a GPU)")
def test_factorisations_on_cuda_name_the_cpu_backend():
    a = spd((3, 3))
    with pytest.raises(errors.UnsupportedError, match=r"test_numpy_linalg.py:\d+.*backend='cpu'"):
        tj.jit(lambda a: np.linalg.inv(a), backend=cuda_backend())(a)


@pytest.mark.parametrize("dtype", FLOATS)
def test_norms(dtype):
    x = rand((3, 4, 5), dtype)
    vector = [None, 1, 2, np.inf, -np.inf, 0, 3, -1.5]
    check(lambda x: ([np.linalg.norm(x[0, 0], ord) for ord in vector],
                     [np.linalg.norm(x, ord, axis=1, keepdims=k) for ord in vector
                      for k in (False, True)],
                     np.linalg.norm(x), np.linalg.norm(x, keepdims=True),
                     [np.linalg.norm(x[0], ord) for ord in ("fro", 1, -1, np.inf, -np.inf)],
                     [np.linalg.norm(x, ord, axis=(2, 0), keepdims=k)
                      for ord in (None, "fro", 1, -np.inf) for k in (False, True)]),
          x, rtol=RTOL[dtype] / 10)
    check(lambda x: (np.linalg.norm(x[0], 2), np.linalg.norm(x, 2, axis=(1, 2)),
                     np.linalg.norm(x, 2, axis=(2, 1), keepdims=True)), x, rtol=RTOL[dtype],
          cuda=False)


@pytest.mark.parametrize("dtype", FLOATS)
def test_matrix_power_multi_dot_transpose(dtype):
    a = spd((2, 3, 3), dtype) / 3
    check(lambda a: [np.linalg.matrix_power(a, n) for n in (0, 1, 2, 3, 5)], a,
          rtol=RTOL[dtype])
    check(lambda a: [np.linalg.matrix_power(a, n) for n in (-1, -3)], a, rtol=RTOL[dtype],
          cuda=False)
    p, q, r = rand((3, 10), dtype), rand((10, 2), dtype, 1), rand((2, 7), dtype, 2)
    v, w = rand((3,), dtype, 3), rand((7,), dtype, 4)
    check(lambda p, q, r, v, w: (np.linalg.multi_dot([p, q, r]), np.linalg.multi_dot([v, p, q]),
                                 np.linalg.multi_dot([q, r, w]), np.linalg.multi_dot([v, p, q, r, w]),
                                 np.linalg.matrix_transpose(a)), p, q, r, v, w,
          rtol=RTOL[dtype])


# ---------------------------------------------------------------------------------------------
# gradients


def test_factorisation_gradients():
    x = rand((2, 3, 3), seed=5)
    grad_check(lambda x: np.linalg.cholesky(sym(x)), x, cuda=False)
    grad_check(lambda x: np.linalg.inv(x + 3 * np.eye(3)), x, cuda=False)
    grad_check(lambda x: np.linalg.det(x), x, cuda=False)
    grad_check(lambda x: np.linalg.slogdet(x + 3 * np.eye(3))[1], x, cuda=False)
    grad_check(lambda x: np.linalg.eigvalsh(sym(x)), x, cuda=False)
    # A function of the eigenvectors that does not depend on their signs.
    grad_check(lambda x: np.linalg.eigh(sym(x))[1] ** 2, x, cuda=False, second=False)


def test_svd_gradients():
    for shape in [(3, 3), (4, 2), (2, 4), (2, 3, 2)]:
        x = rand(shape, seed=9)
        k = min(shape[-2:])
        grad_check(lambda x: np.linalg.svdvals(x) * np.arange(1, k + 1), x, cuda=False)
        # Functions of the singular vectors that do not depend on their signs.
        grad_check(lambda x: np.linalg.svd(x, full_matrices=False)[0] ** 2, x, cuda=False,
                   second=False)
        grad_check(lambda x: np.linalg.svd(x, full_matrices=False)[2] ** 2, x, cuda=False,
                   second=False)
        grad_check(lambda x: np.linalg.pinv(x), x, cuda=False, second=False)
    with pytest.raises(errors.UnsupportedError, match="full_matrices=False"):
        tj.grad(lambda x: np.sum(np.linalg.svd(x)[0]))(rand((3, 2)))


def test_qr_gradients():
    for shape in [(3, 3), (4, 2), (2, 3, 2)]:
        grad_check(lambda x: np.linalg.qr(x)[0], rand(shape, seed=10), cuda=False)
        grad_check(lambda x: np.linalg.qr(x)[1], rand(shape, seed=11), cuda=False)
    with pytest.raises(errors.UnsupportedError, match="more columns than rows"):
        tj.grad(lambda x: np.sum(np.linalg.qr(x)[1]))(rand((2, 3)))


def test_solve_gradients():
    a, b = rand((2, 3, 3), seed=6) + 3 * np.eye(3), rand((2, 3, 2), seed=7)
    grad_check(lambda a: np.linalg.solve(a, b), a, cuda=False)
    grad_check(lambda b: np.linalg.solve(a, b), b, cuda=False)
    grad_check(lambda b: np.linalg.solve(a[0], b[0, :, 0]), b, cuda=False)


def test_composition_gradients():
    x = rand((3, 4), seed=8)
    for ord in (None, 1, 3, np.inf):
        grad_check(lambda x: np.linalg.norm(x, ord, axis=1), x, second=ord in (None, 3))
    grad_check(lambda x: np.linalg.norm(x, "fro"), x)
    grad_check(lambda x: np.linalg.norm(x, 2), x, cuda=False)
    grad_check(lambda x: np.linalg.matrix_power(x[:, :3], 3), x)
    grad_check(lambda x: np.linalg.multi_dot([x, x.T, x]), x)
