"""The core of tracing: primitives, traces, tracers and `bind`.

A `Primitive` is a named operation of the IR; `tracejit.primitives` defines all of them except
`constant`, the one the tracer binds itself to capture a NumPy array. A `Trace` collects the
equations recorded for one Function while the user's NumPy code runs on `Tracer` objects.

Traces nest (grad inside jit, grad of grad): the innermost active trace records; a Tracer of an
enclosing trace that shows up in it is captured as an extra parameter (a closed-over value),
which the enclosing trace passes in when it inlines the inner Function. A Tracer whose trace
has finished has escaped and is an error.

This module is the bottom of the tracing layers and imports none of them: `primitives` builds
on it, `ops` on `primitives`, and `numpy_api` on all three. The Tracer class defines NumPy's
protocols, Python's operators and ndarray's methods; their implementations live in
`tracejit.numpy_api`, which registers them in the tables below when it is imported (NumPy's own
design for array-like classes, NEP 13 and NEP 18), so that the class needs no import of it.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from . import errors
from .ir import (DTYPES, Atom, Eqn, Function, Literal, SourceLoc, Type, UnsupportedDTypeError,
                 Var, dtype_name, is_python_scalar)

if TYPE_CHECKING:              # random_guard finds the current trace here
    from .random_guard import Watch


# ---------------------------------------------------------------------------------------------
# primitives


class Category:
    """What a primitive is to the stages after tracing (fusion, simplification, lowering).

    The categories are the module constants below, compared by identity
    (`prim.category is ELEMENTWISE`): a misspelt category is a NameError, not a silent
    mismatch."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc

    def __repr__(self) -> str:
        return f"<category {self.name}>"


ELEMENTWISE = Category("elementwise", "out[i] from the operands at i (rank-0 operands "
                       "broadcast); every backend lowers it as one scalar expression")
REDUCTION = Category("reduction", "combines its operand over some axes")
VIEW = Category("view", "an index map of its one operand (broadcast_in_dim, transpose, slice, "
                "reshape): fusion turns it into the loads that read it, never a copy")
STRUCTURAL = Category("structural", "moves elements without arithmetic (pad, concatenate)")
INDEXING = Category("indexing", "integer-array indexing (gather, scatter_add)")
SOURCE = Category("source", "no array operands: iota, constant")
CONTRACTION = Category("contraction", "a tensor contraction (dot)")
LINALG = Category("linalg", "a factorisation or solve of the matrices in the last two axes, "
                  "batched over the others, in a kernel of its own (LAPACK on the cpu)")
CALL = Category("call", "a call of a named sub-Function with a derivative of its own "
                "(custom_vjp): a unit in the dumps, inlined by the pipeline's first pass, so "
                "fusion and the backends never meet it")
ALONG_AXIS = Category("along-axis", "each line of its operand along one axis on its own, in a "
                      "kernel of its own (cumsum, cumprod, sort, argsort)")

#: Every primitive by name.
REGISTRY: dict[str, "Primitive"] = {}


class Primitive:
    """A named operation of the IR: its type rule, NumPy implementation and VJP rule (see
    `tracejit.primitives`).

    `category` says how the later stages treat it; `own_kernel` that fusion gives every
    equation of it a kernel of its own, lowered by the backend's table of such kernels.

    `batch` is its batching rule (tracejit.batching, vmap): batch(prim, size, args, batched,
    **params) -> the output with a leading batch axis of `size`, where args[i] has that axis
    in front when batched[i] and is unchanged otherwise (a source, with no operands, needs
    none). `jvp`, where given, is its tangent
    rule for forward mode, jvp(prim, tangents, *primals, out, **params) (one tangent or None
    per input); without it forward mode derives the tangent from the VJP rule
    (tracejit.forward).

    Calling a primitive records it in the innermost trace as a strict typed operation: the
    functions of `tracejit.ops` and the VJP rules are these calls (`add(x, 2.0)`,
    `reshape(g, shape)`). By default the operands are passed by position, a Python number
    among them becoming a literal of the dtype of the other operands (`as_operands`), and the
    params by keyword. `call`, when given, is the primitive's own calling convention (params by
    position, normalised, or an identity that records nothing): `call(prim, *args, **kwargs)`.
    """

    def __init__(self, name: str, type_rule: Callable[..., Type], impl: Callable[..., Any],
                 vjp: Callable[..., Iterable[Any]] | None = None, *, category: Category,
                 flops: int = 0, own_kernel: bool = False, commutative: bool = False,
                 call: Callable[..., Any] | None = None,
                 batch: Callable[..., Any] | None = None,
                 jvp: Callable[..., Any] | None = None):
        self.name = name
        self.type_rule = type_rule
        self.impl = impl
        self.vjp = vjp
        self.batch = batch
        self.jvp = jvp
        self.category = category
        self.own_kernel = own_kernel
        self.commutative = commutative   # f(x, y) == f(y, x) bit for bit, for every x and y
        self.flops = flops    # floating point operations per output element (elementwise)
        self.call = call
        if name in REGISTRY:
            raise ValueError(f"a primitive named {name} exists already")
        REGISTRY[name] = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Record this primitive in the innermost trace (see the class docstring)."""
        if self.call is not None:
            return self.call(self, *args, **kwargs)
        return bind(self, *as_operands(*args), **kwargs)

    def format_params(self, params) -> list[tuple[str, Any]]:
        """The params as printed (`value` of a constant is summarised by the printer)."""
        return [(k, v) for k, v in params.items()]

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def of_category(category: Category) -> list[Primitive]:
    """The registered primitives of `category`, in order of definition."""
    return [p for p in REGISTRY.values() if p.category is category]


class _Constant(Primitive):
    def format_params(self, params):
        return [("value", params["value"])]


def _constant_rule(value):
    return Type(tuple(value.shape), dtype_name(value.dtype))


#: constant(value=ndarray): an array known at trace time (a captured NumPy array).
constant = _Constant("constant", _constant_rule, lambda value: value, None, category=SOURCE)


# ---------------------------------------------------------------------------------------------
# operands of the typed operations


def type_of(x: Any) -> Type:
    """The IR type of a tracer, literal, NumPy array or scalar."""
    if isinstance(x, Tracer):
        return x.type
    if isinstance(x, Literal):
        return x.type
    arr = np.asarray(x)
    return Type(arr.shape, dtype_name(arr.dtype))


def dtype_of(x: Any) -> str:
    """The IR dtype of a tracer, literal, NumPy array or scalar."""
    return type_of(x).dtype


def is_literal(x: Any) -> bool:
    """True for an operand known at trace time (not a Tracer)."""
    return not isinstance(x, Tracer)


def scalar(value: Any, dtype: str) -> np.generic:
    """A NumPy scalar of `dtype` (an IR literal)."""
    return np.asarray(value, dtype=DTYPES[dtype])[()]


def as_operands(*xs: Any) -> list:
    """The operands of a typed operation: Python numbers become literals of the dtype of the
    first operand that has one (of the default dtype of them all when none has)."""
    dtype = next((dtype_of(x) for x in xs if not is_python_scalar(x)), None)
    if dtype is None:
        dtype = dtype_name(np.result_type(*xs))
    return [scalar(x, dtype) if is_python_scalar(x) else x for x in xs]


# ---------------------------------------------------------------------------------------------
# traces


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


def replay_each(fn: Function, step: Callable[[Eqn], None]) -> None:
    """Call step(eqn) for each equation of `fn` in order, with the current trace recording
    what it binds at that equation's source line (the transforms replay Functions so)."""
    trace = current_trace()
    saved = trace.loc_override
    try:
        for eqn in fn.eqns:
            trace.loc_override = eqn.loc
            step(eqn)
    finally:
        trace.loc_override = saved


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


# ---------------------------------------------------------------------------------------------
# the tables of NumPy's implementations on tracers


#: NEP 18: NumPy function -> its implementation on tracers (np.sum -> tracejit's sum), for
#: `Tracer.__array_function__` and the methods that are these functions (t.sum(), t.reshape()).
#: Filled by `@implements(np.sum)` in the modules of tracejit.numpy_api.
FUNCTIONS: dict[Callable, Callable] = {}

#: NEP 13: ufunc method ("__call__", "reduce") -> handler(ufunc, *inputs, **kwargs), for
#: `Tracer.__array_ufunc__`. Filled by `@implements_ufunc_method("reduce")`.
UFUNC_METHODS: dict[str, Callable] = {}

#: The ndarray methods that are no NumPy function (np.ndarray.__getitem__, np.ndarray.astype)
#: -> their implementation on tracers. Filled by `@implements_method(np.ndarray.astype)`.
METHODS: dict[Callable, Callable] = {}


@functools.lru_cache(maxsize=None)
def _signature(func):
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def _is_weak(x: Any) -> bool:
    # The operands that NumPy's promotion sees as Python types (numpy_api's promotion_key).
    return is_python_scalar(x) or isinstance(x, Tracer) and x.weak


def _operator(ufunc: np.ufunc, *operands: Any) -> Any:
    """`ufunc` as one of Python's operators applies it. NumPy's dispatch computes it (through
    `__array_ufunc__`, which gives the strong result of a NumPy function); where every operand
    is weak (a Python number or a weak tracer) the result stays weak, as Python's arithmetic on
    Python numbers gives a Python number: `x_f32 * (lr * 2)` stays f32."""
    result = ufunc(*operands)
    if isinstance(result, Tracer) and all(_is_weak(x) for x in operands):
        result = Tracer(result.trace, result.node, True)
    return result


def _unknown_value(x: "Tracer", what: str, way_out: str) -> errors.TracejitError:
    """The error for a Python conversion of a traced value, which has no value yet."""
    return errors.user_error(
        errors.ConcretizationError,
        f"{what} of a traced value {x.type}: its value is not known while tracing. {way_out}")


_BRANCH = ("For a choice between values use np.where(condition, x, y); if the value only "
           "depends on arguments that do not change between calls, mark them static with "
           "static_argnums")


# ---------------------------------------------------------------------------------------------
# tracers


def _numpy_method(func: Callable, name: str) -> Callable:
    """The Tracer method `name` that is NumPy's `func` applied to the tracer: ndarray.sum is
    np.sum (the implementation registered for it, looked up when called)."""
    def method(self, *args, **kwargs):
        return FUNCTIONS[func](self, *args, **kwargs)
    method.__name__ = name
    method.__qualname__ = f"Tracer.{name}"
    method.__doc__ = f"ndarray.{name}: np.{func.__name__}."
    return method


class Tracer:
    """A stand-in for an array while a function is traced: it has a shape and a dtype, and the
    operations on it record IR. `weak` marks a Python number passed as an argument, which
    promotes like a Python scalar (so `f32_array * lr` stays f32, as in NumPy).

    NumPy's functions and ufuncs reach tracejit's implementations through `__array_function__`
    and `__array_ufunc__`; the operators call the ufuncs and the methods call the
    implementations of the NumPy functions they are, so that every way to write an operation
    traces the same IR."""

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

    # -- NumPy's protocols ----------------------------------------------------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NEP 13: NumPy hands every ufunc call with a Tracer operand here."""
        handler = UFUNC_METHODS.get(method)
        if handler is None:
            raise errors.user_error(errors.UnsupportedError,
                                    f"numpy.{ufunc.__name__}.{method} is not supported")
        return handler(ufunc, *inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """NEP 18: NumPy hands every call of a (non-ufunc) function on a Tracer here."""
        impl = FUNCTIONS.get(func)
        if impl is None:
            module = getattr(func, "__module__", "numpy") or "numpy"
            raise errors.user_error(errors.UnsupportedError,
                                    f"{module}.{func.__name__} is not supported by tracejit")
        sig = _signature(func) if kwargs else None
        if sig is not None:
            # Arguments passed by keyword under NumPy's names (np.transpose(a=x)) go to the
            # implementation, which takes NumPy's parameters in NumPy's order, by position.
            bound = sig.bind(*args, **kwargs)
            args, kwargs = bound.args, bound.kwargs
        return impl(*args, **kwargs)

    # -- Python's operators: NumPy's ufuncs -----------------------------------------------------

    def __add__(self, other):
        return _operator(np.add, self, other)

    def __radd__(self, other):
        return _operator(np.add, other, self)

    def __sub__(self, other):
        return _operator(np.subtract, self, other)

    def __rsub__(self, other):
        return _operator(np.subtract, other, self)

    def __mul__(self, other):
        return _operator(np.multiply, self, other)

    def __rmul__(self, other):
        return _operator(np.multiply, other, self)

    def __truediv__(self, other):
        return _operator(np.true_divide, self, other)

    def __rtruediv__(self, other):
        return _operator(np.true_divide, other, self)

    def __floordiv__(self, other):
        return _operator(np.floor_divide, self, other)

    def __rfloordiv__(self, other):
        return _operator(np.floor_divide, other, self)

    def __mod__(self, other):
        return _operator(np.remainder, self, other)

    def __rmod__(self, other):
        return _operator(np.remainder, other, self)

    def __pow__(self, other):
        return _operator(np.power, self, other)

    def __rpow__(self, other):
        return _operator(np.power, other, self)

    def __matmul__(self, other):
        return _operator(np.matmul, self, other)

    def __rmatmul__(self, other):
        return _operator(np.matmul, other, self)

    def __and__(self, other):
        return _operator(np.bitwise_and, self, other)

    def __rand__(self, other):
        return _operator(np.bitwise_and, other, self)

    def __or__(self, other):
        return _operator(np.bitwise_or, self, other)

    def __ror__(self, other):
        return _operator(np.bitwise_or, other, self)

    def __xor__(self, other):
        return _operator(np.bitwise_xor, self, other)

    def __rxor__(self, other):
        return _operator(np.bitwise_xor, other, self)

    def __lt__(self, other):
        return _operator(np.less, self, other)

    def __le__(self, other):
        return _operator(np.less_equal, self, other)

    def __gt__(self, other):
        return _operator(np.greater, self, other)

    def __ge__(self, other):
        return _operator(np.greater_equal, self, other)

    def __eq__(self, other):
        return _operator(np.equal, self, other)

    def __ne__(self, other):
        return _operator(np.not_equal, self, other)

    def __neg__(self):
        return _operator(np.negative, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _operator(np.absolute, self)

    def __invert__(self):
        return _operator(np.invert, self)

    # -- indexing -------------------------------------------------------------------------------

    def __getitem__(self, key):
        return METHODS[np.ndarray.__getitem__](self, key)

    def __setitem__(self, key, value):
        raise errors.user_error(
            errors.UnsupportedError, "in-place assignment x[...] = value is not supported: "
            "traced arrays are immutable; build the result with np.where(mask, value, x) or "
            "np.concatenate")

    def __iter__(self):
        if self.ndim == 0:
            raise errors.user_error(TypeError, "iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))

    # -- Python's conversions, which need the value: errors that name the way out --------------
    # Any arguments: NumPy 2 calls __array__(dtype=None, copy=None), and the error is the same.

    def __bool__(self, *args, **kwargs):
        raise _unknown_value(self, "bool() (an `if`, `while`, `and`/`or` or `assert`)", _BRANCH)

    def __int__(self, *args, **kwargs):
        raise _unknown_value(self, "int()", _BRANCH)

    def __float__(self, *args, **kwargs):
        raise _unknown_value(self, "float()", _BRANCH)

    def __complex__(self, *args, **kwargs):
        raise _unknown_value(self, "complex()", _BRANCH)

    def __index__(self, *args, **kwargs):
        raise _unknown_value(
            self, "use as a Python index (operator.index)",
            "Index arrays with it instead (x[i] where i is traced is a gather), or mark it "
            "static with static_argnums")

    def __len__(self):
        """len(x): the first dimension, static (a Python int), as for an ndarray; a rank-0
        value has none, and the error is NumPy's for a 0-d array."""
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return int(self.shape[0])

    def __array__(self, *args, **kwargs):
        raise _unknown_value(
            self, "conversion to a NumPy array (np.asarray, np.array, or a NumPy function that "
            "tracejit does not dispatch)",
            "A traced value has no data until the compiled function runs, only a shape and a "
            "dtype. Keep it traced: use x.astype(dtype) instead of np.asarray(x, dtype), "
            "np.stack instead of np.array([...]), and pass x itself to NumPy functions; to index "
            "a NumPy array with it, pass that array to the function as an argument, so that it "
            "is traced too (NumPy's own array[x] and np.take(array, x) cannot take a traced "
            "index); to look at the values, return them from the function")

    def item(self, *args, **kwargs):
        """ndarray.item: an error, a traced value has no value yet."""
        raise _unknown_value(self, "item()", _BRANCH)

    def tolist(self, *args, **kwargs):
        """ndarray.tolist: an error, a traced value has no value yet."""
        raise _unknown_value(self, "tolist()", _BRANCH)

    # -- ndarray's methods: the implementations of the NumPy functions they are ----------------

    def reshape(self, *shape, order="C", copy=None):
        """ndarray.reshape: np.reshape; the shape as one sequence or as ints."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return FUNCTIONS[np.reshape](self, shape, order, copy=copy)

    def transpose(self, *axes):
        """ndarray.transpose: np.transpose; the axes as one sequence or as ints."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)) or not axes:
            axes = axes[0] if axes else None
        return FUNCTIONS[np.transpose](self, axes)

    @property
    def T(self):
        """ndarray.T: the axes reversed."""
        return FUNCTIONS[np.transpose](self)

    @property
    def mT(self):
        """ndarray.mT: the last two axes swapped."""
        return FUNCTIONS[np.swapaxes](self, -1, -2)

    swapaxes = _numpy_method(np.swapaxes, "swapaxes")
    ravel = _numpy_method(np.ravel, "ravel")
    flatten = _numpy_method(np.ravel, "flatten")      # a traced value is never shared
    squeeze = _numpy_method(np.squeeze, "squeeze")

    def astype(self, *args, **kwargs):
        """ndarray.astype, with its casting= (casting='unsafe' by default)."""
        return METHODS[np.ndarray.astype](self, *args, **kwargs)

    def copy(self, order="C"):
        """ndarray.copy: the value itself (traced values are immutable)."""
        return FUNCTIONS[np.copy](self, order)

    sum = _numpy_method(np.sum, "sum")
    prod = _numpy_method(np.prod, "prod")
    mean = _numpy_method(np.mean, "mean")

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
            mean=None):
        """ndarray.var: np.var (no correction=, which np.var takes)."""
        return FUNCTIONS[np.var](self, axis, dtype, out, ddof, keepdims, where=where, mean=mean)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
            mean=None):
        """ndarray.std: np.std (no correction=, which np.std takes)."""
        return FUNCTIONS[np.std](self, axis, dtype, out, ddof, keepdims, where=where, mean=mean)

    max = _numpy_method(np.max, "max")
    min = _numpy_method(np.min, "min")
    all = _numpy_method(np.all, "all")
    any = _numpy_method(np.any, "any")
    argmax = _numpy_method(np.argmax, "argmax")
    argmin = _numpy_method(np.argmin, "argmin")
    clip = _numpy_method(np.clip, "clip")
    dot = _numpy_method(np.dot, "dot")
    take = _numpy_method(np.take, "take")
    round = _numpy_method(np.round, "round")
    cumsum = _numpy_method(np.cumsum, "cumsum")
    cumprod = _numpy_method(np.cumprod, "cumprod")
    argsort = _numpy_method(np.argsort, "argsort")

    def sort(self, *args, **kwargs):
        """ndarray.sort, which sorts in place: an error naming np.sort."""
        return METHODS[np.ndarray.sort](self, *args, **kwargs)

    @property
    def real(self):
        """ndarray.real: the value itself (tracejit's dtypes are real)."""
        return FUNCTIONS[np.real](self)

    @property
    def imag(self):
        """ndarray.imag: zeros of the value's dtype (tracejit's dtypes are real)."""
        return FUNCTIONS[np.imag](self)

    def conj(self):
        """ndarray.conj: np.conjugate, the value itself for real dtypes."""
        return np.conjugate(self)

    conjugate = conj
