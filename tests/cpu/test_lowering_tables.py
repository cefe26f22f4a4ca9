"""The checklist of "add a primitive", enforced: every primitive of the registry has what its
category needs in every stage's table, no table names a primitive the registry does not hold,
and every elementwise primitive computes what its NumPy implementation does on both backends.

A new elementwise primitive that lacks a backend's lowering fails here, by name, before any
user meets a NotImplementedError (docs/architecture.md, "Adding a primitive").
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import tracejit as tj
from tracejit import passes
from tracejit import primitives as P
from tracejit.codegen import cuda, llvm, lowering, status
from tracejit.ir import Type
from tracejit.kernels import VIEW_MAPS
from tracejit.tracer import bind

REGISTERED = list(P.REGISTRY.values())
ELEMENTWISE = P.of_category(P.ELEMENTWISE)

# What a loop kernel's body may hold besides elementwise work: scalar broadcasts and iota.
BODY_EXTRAS = {P.broadcast_in_dim, P.iota}

BACKEND_TABLES = {
    "cpu": {"unary": llvm.UNARY, "binary": llvm.BINARY, "other": llvm.OTHER,
            "own": llvm.OWN_KERNELS},
    "cuda": {"unary": cuda.UNARY, "binary": cuda.BINARY, "other": cuda.OTHER,
             "own": cuda.OWN_KERNELS},
}


def _arity(prim: P.Primitive) -> int:
    """The number of operands of an elementwise primitive (its type rule's parameters)."""
    return len(inspect.signature(prim.type_rule).parameters)


def _body_table(tables, prim):
    """The scalar-lowering table a primitive belongs in, by arity."""
    if prim in BODY_EXTRAS or prim in (P.cast, P.select, P.check, P.threefry2x32):
        return tables["other"]
    return tables["unary"] if _arity(prim) == 1 else tables["binary"]


def test_calls_are_inlined_before_the_backends():
    # A call (custom_vjp_call) has no lowering: the pipeline's first pass inlines it.
    assert passes.pipeline()[0] == ("inline_calls", passes.inline_calls)
    calls = P.of_category(P.CALL)
    assert calls and not any(p.own_kernel for p in calls)


def test_every_primitive_has_a_category():
    for prim in REGISTERED:
        assert isinstance(prim.category, P.Category), prim
        assert prim.category in (P.ELEMENTWISE, P.REDUCTION, P.VIEW, P.STRUCTURAL, P.INDEXING,
                                 P.SOURCE, P.CONTRACTION, P.ALONG_AXIS, P.LINALG, P.CALL), prim
        # These categories are kernels of their own (fusion gives each one).
        assert prim.category not in (P.ALONG_AXIS, P.LINALG) or prim.own_kernel, prim


@pytest.mark.parametrize("backend", sorted(BACKEND_TABLES))
def test_every_elementwise_primitive_has_a_scalar_lowering(backend):
    tables = BACKEND_TABLES[backend]
    missing = [p.name for p in ELEMENTWISE + sorted(BODY_EXTRAS, key=lambda p: p.name)
               if p not in _body_table(tables, p)]
    assert not missing, f"the {backend} backend has no scalar lowering for {missing}"


@pytest.mark.parametrize("backend", sorted(BACKEND_TABLES))
def test_every_own_kernel_primitive_has_a_kernel(backend):
    own = BACKEND_TABLES[backend]["own"]
    missing = [p.name for p in REGISTERED if p.own_kernel and p not in own]
    assert not missing, f"the {backend} backend has no kernel for {missing}"


def test_reductions_views_and_checks_are_covered():
    loop_reductions = [p for p in P.of_category(P.REDUCTION) if not p.own_kernel]
    assert [p.name for p in loop_reductions if p not in lowering.REDUCTIONS] == []
    assert [p.name for p in P.of_category(P.VIEW) if p not in VIEW_MAPS] == []
    for combine, _ in lowering.REDUCTIONS.values():
        assert combine.category is P.ELEMENTWISE and _arity(combine) == 2
    for prim, rule in status.CHECKS.items():
        assert prim.category is P.ELEMENTWISE, prim


def _tables():
    yield "simplify rules", passes.RULES
    yield "view maps", VIEW_MAPS
    yield "reductions", lowering.REDUCTIONS
    yield "status checks", status.CHECKS
    for backend, tables in BACKEND_TABLES.items():
        for kind, table in tables.items():
            yield f"{backend} {kind}", table


@pytest.mark.parametrize("name,table", list(_tables()), ids=[n for n, _ in _tables()])
def test_tables_name_only_registered_primitives(name, table):
    for prim in table:
        assert isinstance(prim, P.Primitive) and P.REGISTRY.get(prim.name) is prim, \
            f"{name}: {prim!r} is not a registered primitive"


@pytest.mark.parametrize("backend", sorted(BACKEND_TABLES))
def test_scalar_tables_hold_what_their_arity_says(backend):
    tables = BACKEND_TABLES[backend]
    assert all(_arity(p) == 1 for p in tables["unary"]), backend
    assert all(_arity(p) == 2 for p in tables["binary"]), backend


def test_a_rule_for_an_unregistered_primitive_is_refused():
    stray = object.__new__(P.Primitive)
    stray.name = "not_a_primitive"
    with pytest.raises(TypeError, match="not a registered primitive"):
        passes.rule(stray)


# ---------------------------------------------------------------------------------------------
# every elementwise primitive against its NumPy implementation, on every backend


def _dtype_for(prim: P.Primitive) -> str:
    """The first dtype the primitive accepts, floats first."""
    for dtype in ("f64", "f32", "i64", "i32", "bool"):
        try:
            prim.type_rule(*([Type((3, 4), dtype)] * _arity(prim)))
            return dtype
        except TypeError:
            continue
    raise AssertionError(f"{prim.name} accepts none of the IR's dtypes")


#: Float operands inside (0.1, 0.9) are in the domain of every float primitive (log, sqrt,
#: pow, asin, atanh, ...) except these.
DOMAIN = {P.acosh: (1.1, 3.0)}


def _operand(prim: P.Primitive, dtype: str, k: int) -> np.ndarray:
    rng = np.random.default_rng(7 + k)
    if dtype == "bool":
        return rng.random((3, 4)) > 0.5
    if dtype.startswith("i"):
        return rng.integers(1, 5, (3, 4)).astype(dtype.replace("i", "int"))
    lo, hi = DOMAIN.get(prim, (0.1, 0.9))
    return (lo + (hi - lo) * rng.random((3, 4))).astype(dtype.replace("f", "float"))


# threefry2x32 takes a param: its known answers on every backend are in tests/ir/test_random.py.
GENERIC = [p for p in ELEMENTWISE if p not in (P.cast, P.select, P.check, P.threefry2x32)]


@pytest.mark.parametrize("backend", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("prim", GENERIC, ids=[p.name for p in GENERIC])
def test_each_elementwise_primitive_matches_its_numpy_implementation(prim, backend):
    dtype = _dtype_for(prim)
    args = [_operand(prim, dtype, k) for k in range(_arity(prim))]
    want = np.asarray(prim.impl(*args))
    got = tj.to_host(tj.jit(lambda *xs: bind(prim, *xs), backend=backend)(*args))
    assert got.dtype == want.dtype and got.shape == want.shape
    if np.issubdtype(want.dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=4e-7 if dtype == "f64" else 4e-6)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["cpu", "cuda-emulator", "interpret"])
@pytest.mark.parametrize("fuse", [True, False])
def test_check_passes_its_operand_and_raises_where_it_is_true(backend, fuse):
    def f(x):
        return np.where(bind(P.check, x > 2.0, error="all_nan_slice"), 1.0, x)

    x = np.array([0.5, 1.5, 2.5])
    with pytest.raises(ValueError, match="All-NaN slice encountered"):
        tj.jit(f, backend=backend, fuse=fuse)(x)
    np.testing.assert_array_equal(tj.to_host(tj.jit(f, backend=backend, fuse=fuse)(x - 1.0)),
                                  x - 1.0)
