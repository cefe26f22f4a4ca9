"""What the modules of tracejit.numpy_api share: operands (conversion, weak values,
broadcasting), the checks of keywords and axes, and the decorators that register the
implementations in the tables that `Tracer` looks up (tracejit.tracer).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import errors, ops
from .. import primitives as P
from ..ir import DTYPES, UnsupportedDTypeError, dtype_name, is_python_scalar
from ..tracer import FUNCTIONS, METHODS, UFUNC_METHODS, Tracer, bind, current_trace


# ---------------------------------------------------------------------------------------------
# registration


def _registrar(table: dict, keys: tuple, what: Callable[[object], str]) -> Callable:
    """A decorator entering the decorated function into `table` under each of `keys`; a key
    entered already is an error (`what(key)` names it)."""
    def register(impl: Callable) -> Callable:
        for key in keys:
            if key in table:
                raise ValueError(f"{what(key)} has an implementation already")
            table[key] = impl
        return impl
    return register


def implements(*functions: Callable) -> Callable:
    """Register the decorated function as the implementation of NumPy's `functions` on
    tracers (NEP 18): `Tracer.__array_function__` and the Tracer methods look it up."""
    return _registrar(FUNCTIONS, functions, lambda f: f"numpy.{f.__name__}")


def implements_ufunc_method(method: str) -> Callable:
    """Register the decorated handler(ufunc, *inputs, **kwargs) for the ufunc method `method`
    ("__call__", "reduce", ...) on tracers (NEP 13): `Tracer.__array_ufunc__` looks it up."""
    return _registrar(UFUNC_METHODS, (method,), lambda m: f"the ufunc method {m}")


def implements_method(method: Callable) -> Callable:
    """Register the decorated function as the implementation on tracers of the ndarray method
    `method` that is no NumPy function (np.ndarray.astype, np.ndarray.__getitem__)."""
    return _registrar(METHODS, (method,), lambda m: f"ndarray.{m.__name__}")


# ---------------------------------------------------------------------------------------------
# operands: conversion, weak values, broadcasting


def py_type(x) -> type:
    """The Python type of a Python number (bool, int or float)."""
    return bool if isinstance(x, bool) else int if isinstance(x, int) else float


def as_operand(x):
    """Tracer, NumPy array/scalar, or Python number; lists and tuples become arrays."""
    if isinstance(x, (Tracer, np.ndarray, np.generic)) or is_python_scalar(x):
        if isinstance(x, (np.ndarray, np.generic)):
            check_dtype(x.dtype)
        return x
    if isinstance(x, (list, tuple)):
        if any(isinstance(v, Tracer) for v in leaves(x)):
            # np.stack, through NumPy's dispatch to the tracers' implementation
            return np.stack([as_operand(v) for v in x])
        arr = np.asarray(x)
        check_dtype(arr.dtype)
        return arr
    if isinstance(x, complex):
        raise errors.user_error(errors.DTypeError, "complex numbers are not supported")
    raise errors.user_error(errors.DTypeError, f"cannot use {type(x).__name__} as an array")


def as_traced(x):
    """`x` as a Tracer: a NumPy array (or number) becomes a constant of the current trace, for
    the implementations that need a traced value where NumPy dispatched to them because
    another argument is traced (np.take(numpy_array, traced_index))."""
    x = as_operand(x)
    if isinstance(x, Tracer):
        return x
    arr = np.asarray(x)
    if arr.ndim == 0:                   # a literal: made a value by a broadcast to ()
        return bind(P.broadcast_in_dim, arr[()], shape=(), dims=())
    trace = current_trace()
    return Tracer(trace, trace.to_atom(arr))


def leaves(xs):
    """The non-sequence items of nested lists and tuples, depth first."""
    for v in xs:
        if isinstance(v, (list, tuple)):
            yield from leaves(v)
        else:
            yield v


def check_dtype(dt):
    """The IR name of NumPy dtype `dt`, or a DTypeError where it is not supported."""
    try:
        return dtype_name(dt)
    except UnsupportedDTypeError as exc:
        raise errors.user_error(errors.DTypeError, str(exc)) from None


def convert(x, dtype: str):
    """`x` as an operand of `dtype` (a cast for tracers, a literal or array for constants)."""
    if is_python_scalar(x):
        try:
            return ops.scalar(x, dtype)
        except OverflowError:
            raise errors.user_error(
                errors.DTypeError, f"Python integer {x} is out of bounds for {dtype}") from None
    return ops.cast(x, dtype)


def type_str(x) -> str:
    """How an operand is named in messages: its IR type, or a Python number's type."""
    if is_python_scalar(x):
        return f"{py_type(x).__name__}"
    return str(ops.type_of(x))


def broadcast_shape(xs: list) -> tuple[int, ...]:
    """The shape NumPy broadcasts `xs` to, or a ShapeError naming every operand's type."""
    shapes = [np.shape(x) if not isinstance(x, Tracer) else x.shape for x in xs]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise errors.user_error(
            errors.ShapeError, "operands could not be broadcast together: "
            + " and ".join(type_str(x) for x in xs)) from None


def broadcast_all(xs: list) -> list:
    """NumPy broadcasting; rank-0 operands stay rank 0 (elementwise primitives take them)."""
    out = broadcast_shape(xs)
    return [x if np.ndim(x) == 0 or tuple(np.shape(x)) == out else ops.broadcast_to(x, out)
            for x in xs]


def weaken(result, weak: bool):
    """`result` as a weak tracer when `weak` (see `strong`)."""
    if weak and isinstance(result, Tracer):
        result = Tracer(result.trace, result.node, True)
    return result


def strong(x):
    """`x` as np.asarray would make it: a Python number becomes a default-dtype array and a weak
    tracer strong. NumPy functions (np.sqrt(s), np.sum(s), np.dot(x, 2.0), ...) return NumPy
    values, which promote strongly; only Python operators on Python numbers stay weak."""
    if is_python_scalar(x):
        return np.asarray(x)
    if isinstance(x, Tracer) and x.weak:
        return Tracer(x.trace, x.node, False)
    return x


# ---------------------------------------------------------------------------------------------
# checks of keywords and axes


def unsupported(name: str, *keywords: str, why: str = "") -> errors.TracejitError:
    """The UnsupportedError for `name` called with `keywords` (named, with the user's line)."""
    given = ", ".join(f"{k}=" for k in keywords)
    return errors.user_error(errors.UnsupportedError, f"{name} with {given} is not supported"
                             + (f": {why}" if why else ""))


def check_order(name: str, order, allowed: str = "CKA") -> None:
    """order= decides only the memory layout of a new array, and tracejit's results are
    C-contiguous: 'C' (and 'K' and 'A', which give C order for them) is honoured."""
    if order is None or (isinstance(order, str) and order.upper() in allowed):
        return
    raise unsupported(name, "order", why=f"order={order!r}: results are C-contiguous arrays "
                      "(np.asfortranarray(result) outside the traced function gives F order)")


def check_device(name: str, device) -> None:
    """Refuse a device= other than the cpu's, naming `name`."""
    if device not in (None, "cpu"):
        raise unsupported(name, "device", why=f"device={device!r}: NumPy arrays live on the "
                          "cpu; to run on a GPU, jit with backend='cuda'")


def static_axes(axis, ndim: int, name: str) -> tuple[int, ...]:
    """NumPy's `axis` (None, an int or a sequence) as non-negative ints, checked."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if isinstance(a, Tracer) or not isinstance(a, (int, np.integer)):
            raise errors.user_error(TypeError, f"{name}: axis must be static integers, got {a!r}")
        a = int(a)
        if not -ndim <= a < ndim:
            raise errors.user_error(
                errors.ShapeError, f"{name}: axis {a} is out of bounds for an array of "
                f"dimension {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise errors.user_error(ValueError, f"{name}: duplicate value in axis {axis!r}")
    return tuple(out)


def static_ints(value, what: str) -> tuple[int, ...]:
    """`value` (an int or a sequence) as ints, refused where it is traced."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, Tracer) for v in items):
        raise errors.user_error(
            errors.ConcretizationError, f"{what} must be static: it depends on a traced value; "
            "use shapes (x.shape) or pass it with static_argnums")
    return tuple(int(v) for v in items)


def check_casting(xs, target: str, casting: str) -> None:
    """NumPy's casting= rule for converting every operand in `xs` to dtype `target`."""
    to = np.dtype(DTYPES[target])
    for x in xs:
        src = ops.type_of(x).np_dtype
        if not np.can_cast(src, to, casting):
            raise errors.user_error(errors.DTypeError, f"Cannot cast array data from {src!r} to "
                                    f"{to!r} according to the rule {casting!r}")
