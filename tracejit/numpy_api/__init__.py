"""NumPy on Tracers: ufuncs, functions, methods, operators and indexing.

This is where NumPy's semantics are reproduced on top of the strict ops: dtype promotion
exactly as NumPy 2 does it (NEP 50: Python numbers are weak, NumPy scalars are not; the ufunc
loops decide, through `ufunc.resolve_dtypes`), broadcasting, axis normalisation, keepdims,
NumPy's indexing rules, and the compositions that map NumPy functions onto the primitives
(mean = sum / n, var, clip, logaddexp, einsum, ...).

NumPy reaches them through its own protocols: `Tracer.__array_ufunc__` (NEP 13) and
`Tracer.__array_function__` (NEP 18) look up the tables of tracejit.tracer, which the modules
here fill with `@implements(np.sum)`-style decorators when they are imported; Tracer's
operators and methods call the same implementations. By topic:

- `ufuncs`: the ufuncs (`UFUNCS`), the promotion they define, clip, astype, result_type;
- `reductions`: sum, mean, var, max, argmax, ... and the ufuncs' reduce;
- `shapes`: reshape, transpose, broadcasting, concatenate, stack, where, indexing, *_like;
- `linalg`: dot, matmul, tensordot, ...;
- `einsum`: einsum (every form NumPy accepts) and einsum_path;
- `linear_algebra`: `numpy.linalg` (cholesky, solve, inv, det, eigh, norm, ...);
- `sorting`: cumsum, cumprod, sort, argsort, median, quantile, percentile;
- `arrays`: NumPy's compositions of those (roll, repeat, tile, split, diagonal, tril, diff,
  kron, cross, select, isclose, ...), written as NumPy writes them;
- `numerics`: statistics, polynomials, integration, searches and interpolation (average, cov,
  corrcoef, polyfit, trapezoid, gradient, interp, searchsorted, ...), written the same way.
"""

from . import (arrays, einsum, linalg, linear_algebra, numerics, reductions, shapes, sorting,
               ufuncs)
from ..tracer import FUNCTIONS
from .ufuncs import UFUNCS

__all__ = ["FUNCTIONS", "UFUNCS", "arrays", "einsum", "linalg", "linear_algebra", "numerics",
           "reductions", "shapes", "sorting", "ufuncs"]
