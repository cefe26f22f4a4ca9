"""Keyword arguments of everything tracejit implements: NumPy's functions, ufuncs (called and
reduced) and the Tracer's methods. Every keyword is either honoured as NumPy honours it (the
result equals NumPy's, in dtype, shape and value) or refused with an UnsupportedError that names
it, at the user's line; none is ignored, none fails with an unrelated error. The sweep calls
each with each keyword of its NumPy signature, for a few values of each (the interpreter runs
them: keywords are decided while tracing, the same for every backend).
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors
from tracejit.numpy_api import FUNCTIONS

X = np.array([[1.5, -2.0, 0.5], [3.0, 4.0, -0.25]])

#: The sweep's values of each keyword; functions get the array (traced or not).
SAMPLES = {
    "axis": [1, -1, (0, 1), None],
    "dtype": [np.float32, np.int64, bool],
    "out": ["out"],
    "keepdims": [True, False],
    "initial": [10.0, -10],
    "where": [True, np.array([True, False, True]), lambda x: x > 0],
    "ddof": [1],
    "correction": [1],
    "mean": [lambda x: np.mean(x, keepdims=True)],
    "order": ["C", "F", "A", "K"],
    "copy": [True, False, None],
    "subok": [True, False],
    "shape": [(3, 2)],
    "device": ["cpu", None],
    "casting": ["no", "equiv", "safe", "same_kind", "unsafe"],
    "mode": ["raise", "wrap", "clip"],
    "optimize": [True, "greedy", False],
    "axes": [1, (1, 0)],
    "signature": ["dd->d", (None, None, np.float64)],
    "min": [0.5],
    "max": [0.5],
    "decimals": [1, -1, 0],
    "start": [0, 2, -1],
    "k": [1, -1, 2],
    "n": [0, 2],
    "prepend": [0.0, lambda x: x[:, :1]],
    "append": [1.0],
    "offset": [1, -1],
    "axis1": [1],
    "axis2": [0],
    "axisa": [0, -1],
    "axisb": [-1],
    "axisc": [0],
    "default": [1.0, 0],
    "nan": [1.0],
    "posinf": [5.0],
    "neginf": [-5.0],
    "rtol": [0.1],
    "atol": [0.5],
    "equal_nan": [True, False],
    "kind": [None, "stable", "quicksort"],
    "stable": [None, True],
    "kth": [1],
    "q": [0.5, [0.25, 1.0]],
    "method": ["linear", "nearest", "midpoint"],
    "overwrite_input": [False, True],
    "weights": [None],
    "UPLO": ["L", "U"],
    "upper": [False, True],
    "full_matrices": [True, False],
    "compute_uv": [True, False],
    "hermitian": [False],
    "rcond": [None, 0.1],
    "tol": [None, 0.5],
    "ord": [None, 1, "fro"],
    "p": [None, 1],
    "einsum_call": [False, True],
    "N": [2, 4],
    "a2": [lambda x: x, lambda x: x[0]],
    "assume_unique": [False, True],
    "aweights": [None, np.array([1.0, 2.0, 1.0])],
    "fweights": [None, np.array([1, 2, 1])],
    "bias": [True, False],
    "cov": [False, True],
    "discont": [None, 1.0],
    "dx": [0.5],
    "edge_order": [1, 2],
    "full": [False, True],
    "w": [None, np.ones(3)],
    "include_initial": [False, True],
    "increasing": [True, False],
    "indexing": ["xy", "ij"],
    "invert": [False, True],
    "left": [None, -1.0],
    "right": [True, False, 7.0],
    "period": [None, 4.0],
    "returned": [True, False],
    "rowvar": [True, False],
    "side": ["left", "right"],
    "sorter": [None, np.array([0, 1, 2])],
    "sparse": [True, False],
    "to_begin": [None, 5.0],
    "to_end": [None, [1.0, 2.0]],
    "x": [None, np.arange(3.0)],
    "y": [None, lambda x: x + 1.0],
}

#: NumPy function → its positional arguments, on the array x.
FUNCTION_ARGS = {
    np.reshape: lambda x: (x, (3, 2)), np.swapaxes: lambda x: (x, 0, 1),
    np.moveaxis: lambda x: (x, 0, 1), np.expand_dims: lambda x: (x, 0),
    np.squeeze: lambda x: (x.reshape(1, 6),), np.broadcast_to: lambda x: (x, (2, 2, 3)),
    np.concatenate: lambda x: ([x, x],), np.stack: lambda x: ([x, x],),
    np.vstack: lambda x: ([x, x],), np.hstack: lambda x: ([x, x],),
    np.where: lambda x: (x > 0, x, -x), np.clip: lambda x: (x, -1.0, 1.0),
    np.dot: lambda x: (x, x.T), np.outer: lambda x: (x[0], x[1]), np.inner: lambda x: (x, x),
    np.tensordot: lambda x: (x, x.T), np.einsum: lambda x: ("ij,kj->ik", x, x),
    np.matmul: lambda x: (x, x.T), np.take: lambda x: (x, [0, 4, -1, 7]),
    np.take_along_axis: lambda x: (x, np.array([[0, 2, 1], [1, 0, 2]])),
    np.full_like: lambda x: (x, 7.0), np.astype: lambda x: (x, np.float32),
    np.result_type: lambda x: (x, 1.0),
    np.rollaxis: lambda x: (x, 1), np.roll: lambda x: (x, 1), np.repeat: lambda x: (x, 2),
    np.tile: lambda x: (x, 2), np.array_split: lambda x: (x, 2), np.split: lambda x: (x, 2),
    np.hsplit: lambda x: (x, 3), np.vsplit: lambda x: (x, 2),
    np.dsplit: lambda x: (x.reshape(1, 2, 3), 3), np.append: lambda x: (x, x),
    np.column_stack: lambda x: ([x, x],), np.dstack: lambda x: ([x, x],),
    np.kron: lambda x: (x, x), np.cross: lambda x: (x, x), np.select: lambda x: ([x > 0], [x]),
    np.isclose: lambda x: (x, x + 0.3), np.allclose: lambda x: (x, x + 0.3),
    np.pad: lambda x: (x, ((1, 2), (3, 1))),
    np.partition: lambda x: (x, 1), np.argpartition: lambda x: (x, 1),
    np.quantile: lambda x: (x, 0.3), np.percentile: lambda x: (x, 30),
    **{f: lambda x: (x @ x.T + 3 * np.eye(2),) for f in (
        np.linalg.cholesky, np.linalg.inv, np.linalg.det, np.linalg.slogdet, np.linalg.eigh,
        np.linalg.eigvalsh, np.linalg.cond)},
    np.linalg.solve: lambda x: (x @ x.T + 3 * np.eye(2), x),
    np.linalg.matrix_power: lambda x: (x @ x.T, 2),
    np.linalg.multi_dot: lambda x: ([x, x.T, x],),
    np.linalg.lstsq: lambda x: (x.T, np.array([1.0, 2.0, 4.0])),
    np.nanquantile: lambda x: (x, 0.3), np.nanpercentile: lambda x: (x, 30),
    np.cumulative_sum: lambda x: (x[0],), np.cumulative_prod: lambda x: (x[0],),
    np.polyval: lambda x: (np.array([1.0, 2.0]), x), np.vander: lambda x: (x[0],),
    np.polyfit: lambda x: (np.arange(3.0), x[0], 1),
    np.searchsorted: lambda x: (np.array([-1.0, 0.0, 2.0]), x),
    np.digitize: lambda x: (x, np.array([-1.0, 0.0, 2.0])),
    np.interp: lambda x: (x, np.array([-1.0, 0.0, 2.0]), np.array([0.0, 1.0, 5.0])),
    np.isin: lambda x: (x, [0.5, 3.0]), np.array_equal: lambda x: (x, x),
    np.array_equiv: lambda x: (x, x[0]), np.resize: lambda x: (x, (3, 4)),
    np.meshgrid: lambda x: (x[0], x[1]), np.broadcast_arrays: lambda x: (x, x[0]),
    np.block: lambda x: ([x, x],), np.vdot: lambda x: (x, x),
}

#: ufunc → its operands; the keywords of every ufunc call.
UFUNC_ARGS = {
    np.add: lambda x: (x, x), np.sqrt: lambda x: (np.abs(x),), np.less: lambda x: (x, 0.5),
    np.power: lambda x: (x, 2.0), np.logaddexp: lambda x: (x, -x), np.floor: lambda x: (x,),
    np.matmul: lambda x: (x, x.T), np.logical_and: lambda x: (x > 0, x < 2),
}
UFUNC_KEYWORDS = ["out", "where", "casting", "order", "dtype", "subok", "signature"]
GUFUNC_KEYWORDS = ["axes", "axis", "keepdims"]
REDUCE_KEYWORDS = ["axis", "dtype", "out", "keepdims", "initial", "where"]

#: Tracer method → (its positional arguments, the keywords of ndarray's method).
METHODS = {
    "sum": ((), REDUCE_KEYWORDS), "prod": ((), REDUCE_KEYWORDS),
    "mean": ((), ["axis", "dtype", "out", "keepdims", "where"]),
    "var": ((), ["axis", "dtype", "out", "ddof", "keepdims", "where", "mean", "correction"]),
    "std": ((), ["axis", "dtype", "out", "ddof", "keepdims", "where", "mean", "correction"]),
    "max": ((), ["axis", "out", "keepdims", "initial", "where"]),
    "min": ((), ["axis", "out", "keepdims", "initial", "where"]),
    "all": ((), ["axis", "out", "keepdims", "where"]),
    "any": ((), ["axis", "out", "keepdims", "where"]),
    "argmax": ((), ["axis", "out", "keepdims"]), "argmin": ((), ["axis", "out", "keepdims"]),
    "clip": ((-1.0, 1.0), ["out"] + UFUNC_KEYWORDS[1:]),
    "dot": ((np.ones((3, 2)),), ["out"]), "take": (([0, 4, -1, 7],), ["axis", "out", "mode"]),
    "reshape": (((3, 2),), ["order", "copy"]), "ravel": ((), ["order"]),
    "flatten": ((), ["order"]), "squeeze": ((), ["axis"]),
    "astype": ((np.float32,), ["order", "casting", "subok", "copy"]), "copy": ((), ["order"]),
}


def keywords_of(func, n_positional: int) -> list[str]:
    """The keywords of NumPy's `func` beyond the ones its positional arguments fill."""
    params = list(inspect.signature(func).parameters.values())
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    filled = {p.name for p in params[:n_positional]}
    return [p.name for p in named if p.name not in filled]


def targets():
    """(id, call(x, **kw), keywords) of everything swept."""
    out = []
    for func in FUNCTIONS:
        if isinstance(func, np.ufunc):
            continue
        args = FUNCTION_ARGS.get(func, lambda x: (x,))
        n = len(args(X))
        out.append((f"numpy.{func.__name__}",
                    lambda x, func=func, args=args, **kw: func(*args(x), **kw),
                    keywords_of(func, n)))
    for uf, args in UFUNC_ARGS.items():
        extra = GUFUNC_KEYWORDS if uf.signature else []
        out.append((f"numpy.{uf.__name__}", lambda x, uf=uf, args=args, **kw: uf(*args(x), **kw),
                    UFUNC_KEYWORDS + extra))
    for uf in (np.add, np.maximum, np.logical_or):
        out.append((f"numpy.{uf.__name__}.reduce",
                    lambda x, uf=uf, **kw: uf.reduce(x if uf is not np.logical_or else x > 0,
                                                     **kw), REDUCE_KEYWORDS))
    for name, (args, kws) in METHODS.items():
        out.append((f"ndarray.{name}",
                    lambda x, name=name, args=args, **kw: getattr(x, name)(*args, **kw), kws))
    return out


#: Where order= is the order of the indices (honoured), not the result's memory layout.
INDEX_ORDER = {"numpy.reshape", "numpy.ravel", "ndarray.reshape", "ndarray.ravel",
               "ndarray.flatten"}
TARGETS = {name: (call, kws) for name, call, kws in targets()}
CASES = [(name, k) for name, (_, kws) in TARGETS.items() for k in kws]


def numpy_run(f):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return f(X), None
        except Exception as exc:          # noqa: BLE001 - NumPy refuses: so must tracejit
            return None, exc


def test_every_keyword_has_samples():
    missing = sorted({k for _, k in CASES if k not in SAMPLES})
    assert not missing, f"add sample values for {missing}"


@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
@pytest.mark.parametrize("target, keyword", CASES, ids=[f"{t}-{k}" for t, k in CASES])
def test_keyword_is_honoured_or_refused(target, keyword):
    call, _ = TARGETS[target]
    base, _ = numpy_run(call)
    for value in SAMPLES[keyword]:
        if isinstance(value, str) and value == "out" and keyword == "out":
            if base is None:
                continue
            value = np.zeros_like(base)

        def f(x, value=value):
            return call(x, **{keyword: value(x) if inspect.isfunction(value) else value})

        want, numpy_error = numpy_run(f)
        try:
            got = tj.jit(f, backend="interpret")(X)
        except errors.UnsupportedError as exc:
            assert f"{keyword}=" in str(exc) or numpy_error is not None, str(exc)
            assert "test_keywords.py" in str(exc)                     # the user's line
            continue
        except (TypeError, ValueError, IndexError) as exc:
            assert numpy_error is not None, f"{keyword}={value!r}: {exc!r} where NumPy gives " \
                f"{want!r}"
            continue
        assert numpy_error is None, f"{keyword}={value!r}: NumPy raises {numpy_error!r}"
        assert keyword != "out", "out= must be refused: traced arrays are immutable"
        if isinstance(want, (list, tuple)):          # np.split and the like: a list of arrays
            assert isinstance(got, (list, tuple)) and len(got) == len(want)
            pairs = list(zip(want, got))
        else:
            pairs = [(want, got)]
        for want_item, got_item in pairs:
            w, g = np.asarray(want_item), np.asarray(got_item)
            if keyword == "order" and target not in INDEX_ORDER and w.ndim > 1 and \
                    w.flags.f_contiguous and not w.flags.c_contiguous:
                pytest.fail(f"{keyword}={value!r}: NumPy gives an F-ordered array, tracejit C")
            assert (g.dtype, g.shape) == (w.dtype, w.shape), f"{keyword}={value!r}"
            if target != "numpy.empty_like":
                np.testing.assert_allclose(g, w, rtol=1e-6 if w.dtype == np.float32 else 1e-12,
                                           err_msg=f"{keyword}={value!r}")


@pytest.mark.parametrize("f", [
    lambda x: np.sum(x, axis=1, initial=2.5, keepdims=True),
    lambda x: np.max(x[:, :0], axis=1, initial=-3),
    lambda x: np.min(x.astype(np.int32), initial=-1),
    lambda x: np.maximum.reduce(x, axis=0, initial=2.0),
    lambda x: np.add(x, x, dtype=np.float32),
    lambda x: np.add(x > 0, x > 1, dtype=np.int64),
    lambda x: np.less(x, 0.5, dtype=bool),
    lambda x: np.matmul(x, x.T, dtype=np.float32),
    lambda x: np.clip(x, 0, 1, dtype=np.float32),
    lambda x: np.reshape(x, (3, 2), order="F"),
    lambda x: np.ravel(x, order="F") + x.flatten("F"),
    lambda x: np.take(x, [0, 7, -9], mode="wrap") + np.take(x, [0, 7, -9], mode="clip"),
    lambda x: x.take(np.argmax(x, axis=1) + 2, axis=1, mode="wrap"),
    lambda x: np.take(x, np.argmax(x, axis=1) - 5, axis=1, mode="clip"),
    lambda x: x.astype(np.float32, casting="same_kind"),
    lambda x: np.concatenate([x, x.astype(np.float32)], dtype=np.float32),
    lambda x: np.var(x, axis=0, correction=1),
    lambda x: np.einsum("ij,kj", x, x, optimize="greedy"),
    lambda x: np.transpose(a=x),
], ids=range(19))
def test_honoured_keywords_match_numpy(f):
    """The keywords tracejit honours, on the compiled backend too."""
    want = f(X)
    for backend in ("interpret", "cpu"):
        got = tj.jit(f, backend=backend)(X)
        assert (got.dtype, got.shape) == (want.dtype, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("f, error", [
    (lambda x: np.add(x, x, dtype=np.int64), TypeError),
    (lambda x: np.add(x, x.astype(np.float32), casting="no"), TypeError),
    (lambda x: np.concatenate([x, x], dtype=np.int64), TypeError),
    (lambda x: x.astype(np.int32, casting="safe"), TypeError),
    (lambda x: np.einsum("ij,kj", x, x, dtype=np.float32), TypeError),
    (lambda x: np.var(x, ddof=1, correction=1), ValueError),
], ids=range(6))
def test_refused_as_numpy_refuses(f, error):
    with pytest.raises(error):
        f(X)
    with pytest.raises(error, match="test_keywords.py"):
        tj.jit(f, backend="interpret")(X)


@pytest.mark.parametrize("convert", [np.array, np.asarray, lambda x: np.array(x, copy=False),
                                     lambda x: np.asarray(x, dtype=np.float32),
                                     lambda x: np.array([x, x])], ids=range(5))
def test_numpy2_array_protocol_gets_tracejits_explanation(convert):
    with pytest.raises(errors.ConcretizationError, match=r"no data until the compiled function "
                       r"runs.*np\.stack") as info:
        tj.jit(lambda x: convert(x) * 2)(X)
    assert "test_keywords.py" in str(info.value)
