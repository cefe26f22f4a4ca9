"""numpy.linalg on tracers: cholesky, solve, inv, det, slogdet, eigh, eigvalsh, svd, qr on the
LINALG primitives (LAPACK on the cpu backend), and svdvals, pinv, matrix_rank, cond, norm,
matrix_power, multi_dot, matrix_transpose composed of the other operations. Stacks of matrices work wherever NumPy's do (the batch axes
broadcast); integer operands compute in float64, as NumPy's do.

Not yet: lstsq (an UnsupportedError names it), and eig/eigvals
(complex results, which tracejit has no dtype for).
"""

from __future__ import annotations

import numpy as np

from .. import errors, ops
from ..ir import Type
from ..tracer import Tracer
from ._common import as_operand, check_dtype, implements, static_axes, strong, unsupported
from .linalg import matmul

_SlogdetResult = type(np.linalg.slogdet(np.eye(1)))
_EighResult = type(np.linalg.eigh(np.eye(1)))
_SVDResult = type(np.linalg.svd(np.eye(1)))
_QRResult = type(np.linalg.qr(np.eye(1)))


def _float(name: str, *xs, halves: bool = False):
    """The operands in their common float dtype (integers and booleans in float64); the half
    types only with `halves` (LAPACK has none; NumPy's norm takes them)."""
    xs = [strong(as_operand(x)) for x in xs]
    dtype = np.result_type(*[ops.type_of(x).np_dtype for x in xs])
    if dtype.kind in "biu":
        dtype = np.dtype(np.float64)
    if dtype not in (np.float32, np.float64) and not (halves and dtype.itemsize == 2):
        raise errors.user_error(errors.DTypeError, f"{name}: array type {dtype} is "
                                "unsupported in linalg")
    name_ = check_dtype(dtype)
    return [ops.cast(x, name_) if isinstance(x, Tracer) else np.asarray(x, dtype) for x in xs]


def _matrices(name: str, a) -> Type:
    """a's type, or NumPy's LinAlgError where a is no stack of matrices."""
    t = ops.type_of(a)
    if t.ndim < 2:
        raise errors.user_error(np.linalg.LinAlgError, f"{t.ndim}-dimensional array given. "
                                "Array must be at least two-dimensional")
    return t


def _square(name: str, a) -> Type:
    t = _matrices(name, a)
    if t.shape[-1] != t.shape[-2]:
        raise errors.user_error(np.linalg.LinAlgError, "Last 2 dimensions of the array must "
                                "be square")
    return t


def _mT(x):
    n = ops.type_of(x).ndim
    return ops.transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _eye_like(a):
    t = ops.type_of(a)
    eye = ops.eq(ops.iota(t.shape, t.ndim - 2, "i64"), ops.iota(t.shape, t.ndim - 1, "i64"))
    return ops.cast(eye, t.dtype)


def _empty_batch(t: Type) -> bool:
    return t.size == 0


# ---------------------------------------------------------------------------------------------
# factorisations and solves


@implements(np.linalg.cholesky)
def cholesky(a, /, *, upper=False):
    """numpy.linalg.cholesky: L with L Lᵀ = a from a's lower triangle (Lᵀ with upper=True)."""
    (a,) = _float("numpy.linalg.cholesky", a)
    t = _square("numpy.linalg.cholesky", a)
    if _empty_batch(t):
        return ops.full(t, 0.0)
    low = ops.cholesky(a)
    return _mT(low) if upper else low


@implements(np.linalg.solve)
def solve(a, b):
    """numpy.linalg.solve: x with a x = b; b is a stack of vectors when it is 1-d, else of
    matrices, and the batch axes broadcast."""
    a, b = _float("numpy.linalg.solve", a, b)
    ta = _square("numpy.linalg.solve", a)
    tb = ops.type_of(b)
    vector = tb.ndim == 1
    if vector:
        b = ops.reshape(b, tb.shape + (1,))
        tb = ops.type_of(b)
    n = ta.shape[-1]
    if tb.shape[-2] != n:
        raise errors.user_error(ValueError, f"numpy.linalg.solve: b has {tb.shape[-2]} rows "
                                f"where a has {n}")
    batch = np.broadcast_shapes(ta.shape[:-2], tb.shape[:-2])
    a = ops.broadcast_to(a, batch + (n, n))
    b = ops.broadcast_to(b, batch + tb.shape[-2:])
    out_type = Type(batch + tb.shape[-2:], ta.dtype)
    x = ops.full(out_type, 0.0) if out_type.size == 0 or n == 0 else ops.solve(a, b)
    return ops.reshape(x, batch + (n,)) if vector else x


@implements(np.linalg.inv)
def inv(a):
    """numpy.linalg.inv: the solve of a x = I."""
    (a,) = _float("numpy.linalg.inv", a)
    t = _square("numpy.linalg.inv", a)
    if _empty_batch(t):
        return ops.full(t, 0.0)
    return ops.solve(a, _eye_like(a))


def _slogdet(name: str, a):
    (a,) = _float(name, a)
    t = _square(name, a)
    if t.shape[-1] == 0:                  # the empty product: det 1
        return ops.full(Type(t.shape[:-2], t.dtype), 1.0), ops.full(Type(t.shape[:-2],
                                                                         t.dtype), 0.0)
    if _empty_batch(t):
        return (ops.full(Type(t.shape[:-2], t.dtype), 0.0),) * 2
    both = ops.slogdet(a)
    nb = t.ndim - 2

    def part(i):
        piece = ops.slice(both, (0,) * nb + (i,), (1,) * (nb + 1), t.shape[:-2] + (1,))
        return ops.reshape(piece, t.shape[:-2])
    return part(0), part(1)


@implements(np.linalg.slogdet)
def slogdet(a):
    """numpy.linalg.slogdet: (sign, log|det|), sign 0 and -inf for a singular matrix."""
    return _SlogdetResult(*_slogdet("numpy.linalg.slogdet", a))


@implements(np.linalg.det)
def det(a):
    """numpy.linalg.det: sign · exp(log|det|) of the LU factorisation (0 when singular)."""
    sign, logdet = _slogdet("numpy.linalg.det", a)
    return ops.mul(sign, ops.exp(logdet))


def _eigh(name: str, a, UPLO):
    if UPLO not in ("L", "U"):
        raise errors.user_error(ValueError, f"{name}: UPLO argument must be 'L' or 'U'")
    (a,) = _float(name, a)
    t = _square(name, a)
    n, nb = t.shape[-1], t.ndim - 2
    if _empty_batch(t):
        return ops.full(Type(t.shape[:-1], t.dtype), 0.0), ops.full(t, 0.0)
    # eigh reads the lower triangle; the upper one of a is the lower one of aᵀ.
    both = ops.eigh(a if UPLO == "L" else _mT(a))
    ones = (1,) * (nb + 2)
    w = ops.slice(both, (0,) * (nb + 2), ones, t.shape[:-2] + (1, n))
    v = ops.slice(both, (0,) * nb + (1, 0), ones, t.shape)
    return ops.reshape(w, t.shape[:-1]), v


@implements(np.linalg.eigh)
def eigh(a, UPLO="L"):
    """numpy.linalg.eigh: (eigenvalues ascending, eigenvectors as columns). The gradient
    treats equal eigenvalues as one eigenspace: its part that would divide by their
    difference (0) is left out, which is exact for functions that do not depend on the
    choice of basis in that eigenspace."""
    return _EighResult(*_eigh("numpy.linalg.eigh", a, UPLO))


@implements(np.linalg.eigvalsh)
def eigvalsh(a, UPLO="L"):
    """numpy.linalg.eigvalsh: the eigenvalues of eigh."""
    return _eigh("numpy.linalg.eigvalsh", a, UPLO)[0]


def _svd(name: str, a, full: bool):
    """(U, S, Vᵀ) of a (U and Vᵀ square when `full`)."""
    (a,) = _float(name, a)
    t = _matrices(name, a)
    m, n = t.shape[-2:]
    k = min(m, n)
    ku, kv = (m, n) if full else (k, k)
    batch, nb = t.shape[:-2], t.ndim - 2
    if t.size == 0:
        return (ops.full(Type(batch + (m, ku), t.dtype), 0.0),
                ops.full(Type(batch + (k,), t.dtype), 0.0),
                ops.full(Type(batch + (kv, n), t.dtype), 0.0))
    packed = ops.svd(a, full)

    def block(row, rows, cols):
        return ops.slice(packed, (0,) * nb + (row, 0), (1,) * (nb + 2), batch + (rows, cols))
    return block(0, m, ku), ops.reshape(block(m, 1, k), batch + (k,)), block(m + 1, kv, n)


@implements(np.linalg.svd)
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """numpy.linalg.svd (LAPACK's gesdd, as NumPy): U, the singular values descending, Vᵀ.
    Gradients need full_matrices=False for non-square matrices (the extra singular vectors
    are not unique); where singular values are equal, or 0, the parts of the gradient that
    would divide by their difference (or by them) are left out."""
    if hermitian:
        raise unsupported("numpy.linalg.svd", "hermitian", why="the general svd gives the "
                          "same values: call it without hermitian=True")
    if not compute_uv:
        return svdvals(a)
    u, s, vt = _svd("numpy.linalg.svd", a, bool(full_matrices))
    return _SVDResult(u, s, vt)


@implements(np.linalg.svdvals)
def svdvals(x, /):
    """numpy.linalg.svdvals: the singular values, descending."""
    return _svd("numpy.linalg.svdvals", x, False)[1]


@implements(np.linalg.pinv)
def pinv(a, rcond=None, hermitian=False, *, rtol=np._NoValue):
    """numpy.linalg.pinv: V diag(1/s) Uᵀ of the thin SVD, the singular values at most
    rcond · s_max taken as 0 (as NumPy: rcond, else rtol, 1e-15 when neither is given and
    max(m, n) · eps for rtol=None)."""
    if hermitian:
        raise unsupported("numpy.linalg.pinv", "hermitian", why="the general pinv gives the "
                          "same values: call it without hermitian=True")
    if rcond is not None and rtol is not np._NoValue:
        raise errors.user_error(ValueError, "`rtol` and `rcond` can't be both set.")
    t = ops.type_of(as_operand(a))
    cutoff = rcond if rcond is not None else 1e-15 if rtol is np._NoValue else \
        rtol if rtol is not None else max(t.shape[-2:], default=1) * np.finfo(
            t.np_dtype if t.np_dtype.kind == "f" else np.float64).eps
    if isinstance(cutoff, Tracer):
        raise errors.user_error(errors.ConcretizationError, "numpy.linalg.pinv: rcond must "
                                "be static")
    u, s, vt = _svd("numpy.linalg.pinv", a, False)
    big = np.max(s, axis=-1, keepdims=True) * cutoff
    keep = s > big
    inv_s = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0).astype(s.dtype)
    return np.matmul(np.swapaxes(vt, -1, -2) * inv_s[..., None, :], np.swapaxes(u, -1, -2))


@implements(np.linalg.lstsq)
def lstsq(a, b, rcond=None):
    """numpy.linalg.lstsq of a (M, N) and b (M,) or (M, K): (x, residuals, rank, s) from the
    thin SVD, singular values at most rcond · s_max (default max(M, N) · eps) taken as 0, as
    LAPACK's gelsd does. The residuals are the squared norms of b - a x for M > N, else an
    empty array; NumPy gives an empty array for a rank-deficient a too, a shape that depends
    on the data: using those residuals raises LinAlgError when the program runs."""
    name = "numpy.linalg.lstsq"
    a, b = _float(name, a, b)
    ta, tb = ops.type_of(a), ops.type_of(b)
    if ta.ndim != 2 or tb.ndim not in (1, 2):
        raise errors.user_error(np.linalg.LinAlgError, f"{name}: a must be 2-dimensional and "
                                f"b 1- or 2-dimensional, got {ta} and {tb}")
    m, n = ta.shape
    if tb.shape[0] != m:
        raise errors.user_error(np.linalg.LinAlgError, f"{name}: Incompatible dimensions: a "
                                f"has {m} rows, b {tb.shape[0]}")
    if isinstance(rcond, Tracer):
        raise errors.user_error(errors.ConcretizationError, f"{name}: rcond must be static")
    eps = np.finfo(ta.np_dtype).eps
    # LAPACK takes a negative rcond as the machine precision.
    cutoff = max(m, n) * eps if rcond is None else eps if rcond < 0 else rcond
    if m == 0 or n == 0:
        raise unsupported(name, "a", why="an empty matrix")
    u, s, vt = _svd(name, a, False)
    keep = s > np.max(s) * cutoff
    rank = np.sum(keep).astype(np.int32)
    inv_s = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0).astype(s.dtype)
    bb = b if tb.ndim == 2 else b[:, None]
    x = np.swapaxes(vt, -1, -2) @ (inv_s[:, None] * (np.swapaxes(u, -1, -2) @ bb))
    if m > n:
        r = bb - a @ x
        residuals = np.sum(r * r, axis=0)
        residuals = np.where(ops.check(ops.broadcast_to(ops.ne(rank, n), residuals.shape),
                                       "lstsq_residuals"), 0.0, residuals).astype(s.dtype)
    else:
        residuals = np.zeros((0,), s.dtype)
    return (x if tb.ndim == 2 else x[:, 0]), residuals, rank, s


def _complex_results(name: str, what: str):
    def refuse(*args, **kwargs):
        raise errors.user_error(errors.UnsupportedError, f"{name} is not supported: {what}, "
                                "and tracejit has no complex dtype; for a symmetric matrix "
                                "use numpy.linalg.eigh (or eigvalsh)")
    refuse.__doc__ = f"{name}: refused, naming the replacement."
    return refuse


implements(np.linalg.eig)(_complex_results("numpy.linalg.eig", "the eigenvalues and "
                                           "eigenvectors of a general matrix are complex"))
implements(np.linalg.eigvals)(_complex_results("numpy.linalg.eigvals", "the eigenvalues of a "
                                               "general matrix are complex"))


@implements(np.linalg.qr)
def qr(a, mode="reduced"):
    """numpy.linalg.qr, modes 'reduced' (Q m × k, R k × n), 'r' (R alone) and 'complete'
    where it is the same as 'reduced' (m <= n). The gradient needs m >= n."""
    name = "numpy.linalg.qr"
    if mode not in ("reduced", "complete", "r", "raw"):
        raise errors.user_error(ValueError, f"{name}: Unrecognized mode '{mode}'")
    (a,) = _float(name, a)
    t = _matrices(name, a)
    m, n = t.shape[-2:]
    k = min(m, n)
    if mode == "raw" or (mode == "complete" and m > n):
        raise unsupported(name, "mode", why=f"mode={mode!r}" + (
            " (Householder reflectors)" if mode == "raw" else
            " of a matrix with more rows than columns (use mode='reduced')"))
    batch, nb = t.shape[:-2], t.ndim - 2
    if t.size == 0:
        q, r = ops.full(Type(batch + (m, k), t.dtype), 0.0), ops.full(Type(batch + (k, n),
                                                                          t.dtype), 0.0)
    else:
        packed = ops.qr(a)

        def block(row, rows, cols):
            return ops.slice(packed, (0,) * nb + (row, 0), (1,) * (nb + 2),
                             batch + (rows, cols))
        q, r = block(0, m, k), block(m, k, n)
    return r if mode == "r" else _QRResult(q, r)


@implements(np.linalg.matrix_rank)
def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """numpy.linalg.matrix_rank: the singular values above tol (default: s_max · max(m, n) ·
    eps, or s_max · rtol), counted; a vector's rank is 1 unless it is all zeros."""
    if hermitian:
        raise unsupported("numpy.linalg.matrix_rank", "hermitian", why="the general rank "
                          "is the same: call it without hermitian=True")
    if tol is not None and rtol is not None:
        raise errors.user_error(ValueError, "`tol` and `rtol` can't be both set.")
    (a,) = _float("numpy.linalg.matrix_rank", A)
    t = ops.type_of(a)
    if t.ndim < 2:
        return np.any(a != 0).astype(np.int64)
    s = svdvals(a)
    if tol is None:
        factor = rtol if rtol is not None else max(t.shape[-2:]) * np.finfo(t.np_dtype).eps
        tol = np.max(s, axis=-1, keepdims=True) * factor
    else:
        tol = np.expand_dims(np.asarray(tol), -1) if np.ndim(tol) else tol
    return np.sum(s > tol, axis=-1)


@implements(np.linalg.cond)
def cond(x, p=None):
    """numpy.linalg.cond: s_max / s_min (p None or 2), s_min / s_max (p -2), else
    norm(x, p) · norm(inv(x), p)."""
    if p in (None, 2, -2):
        s = svdvals(x)
        big, small = s[..., 0], s[..., -1]
        return big / small if p != -2 else small / big
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


# ---------------------------------------------------------------------------------------------
# compositions: norm, matrix_power, multi_dot, matrix_transpose


def _vector_norm(x, ord, axes, keepdims):
    ax = np.abs(x)
    if ord is None or ord == 2:
        return np.sqrt(np.sum(x * x, axis=axes, keepdims=keepdims))
    if ord == np.inf:
        return np.max(ax, axis=axes, keepdims=keepdims)
    if ord == -np.inf:
        return np.min(ax, axis=axes, keepdims=keepdims)
    if ord == 0:
        return np.sum(x != 0, axis=axes, keepdims=keepdims).astype(ops.type_of(x).np_dtype)
    if ord == 1:
        return np.sum(ax, axis=axes, keepdims=keepdims)
    if isinstance(ord, str):
        raise errors.user_error(ValueError, f"Invalid norm order '{ord}' for vectors")
    return np.sum(ax ** ord, axis=axes, keepdims=keepdims) ** (1.0 / ord)


def _matrix_norm(x, ord, axes, keepdims):
    row, col = axes
    if ord in ("fro", None):
        return np.sqrt(np.sum(x * x, axis=axes, keepdims=keepdims))
    if ord in (1, -1, np.inf, -np.inf):
        # 1: the largest column sum of |x|; inf: the largest row sum (the minus: smallest).
        summed, pick = (row, col) if ord in (1, -1) else (col, row)
        sums = np.sum(np.abs(x), axis=summed, keepdims=True)
        r = (np.max if ord > 0 else np.min)(sums, axis=pick, keepdims=True)
    elif ord in (2, -2, "nuc"):
        # The largest or smallest singular value, or their sum.
        s = svdvals(np.moveaxis(x, (row, col), (-2, -1)))
        r = np.sum(s, axis=-1) if ord == "nuc" else s[..., 0] if ord == 2 else s[..., -1]
        r = np.expand_dims(r, tuple(sorted((row, col))))
    else:
        raise errors.user_error(ValueError, "Invalid norm order for matrices.")
    return r if keepdims else np.squeeze(r, axis=axes)


@implements(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    """numpy.linalg.norm: vector norms (ord None, ±inf, 0, 1, 2, any p) and matrix norms
    ('fro', 'nuc', ±1, ±2, ±inf), over `axis` as NumPy chooses them."""
    (x,) = _float("numpy.linalg.norm", x, halves=True)
    t = ops.type_of(x)
    if axis is None:
        if ord is None:
            return _vector_norm(np.ravel(x), None, 0, False) if not keepdims else \
                np.reshape(_vector_norm(np.ravel(x), None, 0, False), (1,) * t.ndim)
        if t.ndim == 1:
            return _vector_norm(x, ord, (0,), keepdims)
        if t.ndim == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise errors.user_error(ValueError, "Improper number of dimensions to norm.")
    axes = static_axes(axis, t.ndim, "numpy.linalg.norm")
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes, keepdims)
    raise errors.user_error(ValueError, "Improper number of dimensions to norm.")


@implements(np.linalg.matrix_power)
def matrix_power(a, n):
    """numpy.linalg.matrix_power for a static integer n: squarings and products (the inverse
    first for a negative n)."""
    if isinstance(n, Tracer) or not isinstance(n, (int, np.integer)):
        raise errors.user_error(TypeError, "exponent must be an integer")
    n = int(n)
    a = strong(as_operand(a))
    t = _square("numpy.linalg.matrix_power", a)
    if n == 0:
        return ops.cast(ops.eq(ops.iota(t.shape, t.ndim - 2, "i64"),
                               ops.iota(t.shape, t.ndim - 1, "i64")), t.dtype)
    if n < 0:
        a, n = inv(a), -n
    result, power = None, a
    while n:
        if n & 1:
            result = power if result is None else matmul(result, power)
        n >>= 1
        if n:
            power = matmul(power, power)
    return result


def _chain_order(shapes: list[tuple[int, int]]) -> list[list]:
    """The cheapest parenthesisation of a chain of matrix products (dynamic programming over
    the intervals, as NumPy's multi_dot): split[i][j] is where the product of i..j splits."""
    n = len(shapes)
    dims = [shapes[0][0]] + [s[1] for s in shapes]
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


@implements(np.linalg.multi_dot)
def multi_dot(arrays, *, out=None):
    """numpy.linalg.multi_dot: the chain multiplied in its cheapest order; a 1-d first (last)
    array is a row (column) vector, as in NumPy."""
    if out is not None:
        raise unsupported("numpy.linalg.multi_dot", "out")
    xs = [strong(as_operand(x)) for x in arrays]
    if len(xs) < 2:
        raise errors.user_error(ValueError, "Expecting at least two arrays.")
    if len(xs) == 2:
        return np.dot(xs[0], xs[1])
    first_1d, last_1d = np.ndim(xs[0]) == 1, np.ndim(xs[-1]) == 1
    if first_1d:
        xs[0] = np.reshape(xs[0], (1, -1))
    if last_1d:
        xs[-1] = np.reshape(xs[-1], (-1, 1))
    for x in xs:
        if np.ndim(x) != 2:
            raise errors.user_error(np.linalg.LinAlgError, f"{np.ndim(x)}-dimensional array "
                                    "given. Array must be two-dimensional")
    split = _chain_order([np.shape(x) for x in xs])

    def product(i, j):
        if i == j:
            return xs[i]
        k = split[i][j]
        return np.dot(product(i, k), product(k + 1, j))

    result = product(0, len(xs) - 1)
    if first_1d and last_1d:
        return np.reshape(result, ())
    if first_1d or last_1d:
        return np.reshape(result, (-1,))
    return result


@implements(np.linalg.matrix_transpose)
def matrix_transpose(x, /):
    """numpy.linalg.matrix_transpose: the last two axes swapped."""
    x = as_operand(x)
    if np.ndim(x) < 2:
        raise errors.user_error(ValueError, "Input array must be at least 2-dimensional")
    return np.swapaxes(x, -1, -2)
