"""Tracing: recording IR equations while the user's NumPy code runs on Tracer objects.

A `Trace` collects equations for one Function. Traces nest (grad inside jit, grad of grad): the
innermost active trace records; a Tracer of an enclosing trace that shows up in it is captured
as an extra parameter (a closed-over value), which the enclosing trace passes in when it inlines
the inner Function. A Tracer whose trace has finished has escaped and is an error.

The NumPy-facing behaviour of Tracer (operators, `__array_ufunc__`, `__array_function__`,
indexing, methods) lives in `tracejit.numpy_api`; this module only knows how to record.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from . import errors
from .ir import (Atom, Eqn, Function, Literal, SourceLoc, Type, UnsupportedDTypeError, Var,
                 dtype_name, is_python_scalar)
from .primitives import Primitive, constant

if TYPE_CHECKING:              # random_guard finds the current trace here
    from .random_guard import Watch

_state = threading.local()


def trace_stack() -> list["Trace"]:
    """The active traces, outermost first (one stack per thread)."""
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def current_trace() -> "Trace | None":
    """The innermost active trace of this thread, or None (called on every jitted call)."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


class Trace:
    """The equations recorded for one Function, plus its parameters and captured values."""

    def __init__(self, name: str, watch: "Watch | None" = None):
        self.name = name
        self.params: list[Var] = []
        self.eqns: list[Eqn] = []
        self.captured: dict[int, tuple[Tracer, Var]] = {}   # id(outer tracer) -> (it, param)
        self.loc_override: SourceLoc | None = None
        self.finished = False
        self.watch = watch          # the random generators the traced user function can reach

    # -- entering and leaving -------------------------------------------------------------------

    def __enter__(self) -> "Trace":
        trace_stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        popped = trace_stack().pop()
        assert popped is self
        self.finished = True

    # -- values ---------------------------------------------------------------------------------

    def new_param(self, type_: Type, weak: bool = False) -> "Tracer":
        var = Var(type_)
        self.params.append(var)
        return Tracer(self, var, weak)

    def to_atom(self, x: Any) -> Atom:
        """The IR operand for `x`: a Var of this trace, a Literal, or a new constant."""
        if isinstance(x, Tracer):
            if x.trace is self:
                return x.node
            if x.trace.finished or x.trace not in trace_stack():
                raise errors.user_error(
                    errors.EscapedTracerError,
                    f"a traced value {x.type} is used after the function that traced it "
                    f"returned (it escaped through a global, a closure or a container); pass "
                    f"it in as an argument instead")
            return self._capture(x)
        if isinstance(x, (Var, Literal)):
            return x
        if is_python_scalar(x):
            raise TypeError(f"internal: Python scalar {x!r} reached bind without a dtype")
        check_array_class(x, "a constant captured by the traced function")
        try:
            arr = np.asarray(x)
            dtype_name(arr.dtype)
        except UnsupportedDTypeError as exc:
            raise errors.user_error(errors.DTypeError, str(exc)) from None
        if arr.ndim == 0:
            return Literal(arr[()])
        return self.bind(constant, (), {"value": _frozen_copy(arr)}).node

    def _capture(self, outer: "Tracer") -> Var:
        key = id(outer)
        if key not in self.captured:
            self.captured[key] = (outer, Var(outer.type))
        return self.captured[key][1]

    # -- recording ------------------------------------------------------------------------------

    def bind(self, prim: Primitive, inputs: Sequence[Any], params: dict) -> "Tracer":
        if self.watch is not None and self.watch.gens:
            self.watch.check()          # a draw since the last equation is an error here
        atoms = tuple(self.to_atom(x) for x in inputs)
        loc = self.loc_override or errors.user_location()
        try:
            out_type = prim.type_rule(*(a.type for a in atoms), **params)
        except TypeError as exc:
            raise errors.ShapeError(f"{errors.where(loc)}: {exc}") from None
        eqn = Eqn(prim, atoms, Var(out_type), params, loc)
        self.eqns.append(eqn)
        return Tracer(self, eqn.out)

    def finish(self, results: Sequence[Any]) -> tuple[Function, list["Tracer"]]:
        """Close the trace: the Function (explicit params, then captured ones) and the outer
        tracers that the captured params stand for, in order."""
        atoms = []
        for r in results:
            if is_python_scalar(r):
                r = np.asarray(r)[()]
            atoms.append(self.to_atom(r))
        captured = list(self.captured.values())
        fn = Function(self.name, tuple(self.params) + tuple(v for _, v in captured),
                      tuple(self.eqns), tuple(atoms))
        return fn, [t for t, _ in captured]


# ndarray subclasses whose values mean what a plain array of the same data means: tracing one
# as a plain array is exact. Every other subclass (np.ma.MaskedArray ignores masked entries,
# np.matrix makes `*` a matrix product, unit-carrying arrays convert units) has semantics the
# traced program would silently drop.
_PLAIN_ARRAY_CLASSES = (np.ndarray, np.memmap)


def check_array_class(x, where: str) -> None:
    """Refuse an ndarray subclass whose semantics differ from a plain array's."""
    if isinstance(x, np.ndarray) and type(x) not in _PLAIN_ARRAY_CLASSES:
        cls = type(x)
        raise errors.user_error(
            TypeError, f"{where} is a {cls.__module__}.{cls.__qualname__}, an ndarray subclass "
            f"whose semantics tracejit does not trace (masks, matrix products, units, ...): the "
            f"compiled program would treat it as a plain array and could give a different "
            f"answer. Pass a plain array: np.asarray(x) if its data alone is what you mean "
            f"(for a masked array, x.filled(0) or x.compressed() as appropriate)")


def _frozen_copy(arr: np.ndarray) -> np.ndarray:
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


def bind(prim: Primitive, *inputs: Any, **params: Any) -> "Tracer":
    """Record `prim(*inputs, **params)` in the innermost active trace."""
    trace = current_trace()
    if trace is None:
        escaped = next((x for x in inputs if isinstance(x, Tracer)), None)
        if escaped is not None:
            raise errors.user_error(
                errors.EscapedTracerError,
                f"a traced value {escaped.type} is used after the function that traced it "
                f"returned (it escaped through a global, a closure or a container); return it "
                f"from the function instead")
        raise RuntimeError(f"internal: bind({prim.name}) outside of any trace")
    return trace.bind(prim, inputs, params)


class Tracer:
    """A stand-in for an array while a function is traced: it has a shape and a dtype, and the
    operations on it record IR. `weak` marks a Python number passed as an argument, which
    promotes like a Python scalar (so `f32_array * lr` stays f32, as in NumPy)."""

    __slots__ = ("trace", "node", "weak")
    __array_priority__ = 1000

    def __init__(self, trace: Trace, var: Var, weak: bool = False):
        self.trace = trace
        self.node = var
        self.weak = weak

    @property
    def type(self) -> Type:
        return self.node.type

    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.type.shape

    @property
    def dtype(self) -> np.dtype:
        return self.node.type.np_dtype

    @property
    def ndim(self) -> int:
        return len(self.node.type.shape)

    @property
    def size(self) -> int:
        return self.node.type.size

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.node.type.nbytes

    def __repr__(self) -> str:
        return f"Traced<{self.type}>"

    __hash__ = object.__hash__
