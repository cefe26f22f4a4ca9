"""The public API: trace, jit, grad, value_and_grad, vjp.

Every transform works on IR. `grad(f)` traces `f` to a Function, builds the VJP Function from
it, and then either runs that Function (called with concrete arrays) or inlines it into the
trace that called it (called with traced values: inside `jit`, or inside another `grad`), so
`jit(grad(f))` compiles forward and backward into one Program and `grad(grad(f))` works.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import errors, random_guard, settings
from . import primitives as P
from .autodiff import check_differentiable, inline, vjp_function
from .forward import jvp_function
from .interpreter import interpret
from .ir import Function, Type, dtype_name, is_float, is_python_scalar
from .compiler import Compiled, Options, compile_function
from .pytree import TreeDef, flatten, tree_map, unflatten, unflattener
from .runtime import backends
from .tracer import Trace, Tracer, check_array_class, current_trace

_PY_DTYPES = {bool: "bool", int: "i64", float: "f64"}
_INT32 = (-2**31, 2**31 - 1)
_state = threading.local()
_clock = itertools.count()      # the order of compiles and calls, for the caches' LRU order


def _record_source(fn: Function) -> None:
    """Remember a function that a transform differentiated while a jit was tracing."""
    log = getattr(_state, "sources", None)
    if log is not None:
        log.append(fn)


@dataclass(frozen=True)
class Spec:
    """An abstract argument, a shape and a dtype without data: `Spec((64, 1000), 'f32')` or
    `Spec.parse('f32[64,1000]')`. `trace` and `jit(...).dump` accept it wherever an array
    would go."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "dtype", dtype_name(self.dtype))

    @classmethod
    def parse(cls, text: str) -> "Spec":
        m = re.fullmatch(r"\s*(\w+)\[([\d,\s]*)\]\s*", text)
        if not m:
            raise ValueError(f"cannot read {text!r} as an array type like f32[64,1000]")
        dims = [d for d in m.group(2).replace(" ", "").split(",") if d]
        return cls(tuple(int(d) for d in dims), m.group(1))

    def __str__(self) -> str:
        return str(Type(self.shape, self.dtype))


# ---------------------------------------------------------------------------------------------
# tracing a Python callable


def _leaf_type(x: Any, where: str) -> tuple[Type, bool]:
    """The IR type of an argument leaf, and whether it is weak (a Python number)."""
    if isinstance(x, Tracer):
        return x.type, x.weak
    if isinstance(x, Spec):
        return Type(x.shape, x.dtype), False
    if is_python_scalar(x):
        kind = bool if isinstance(x, bool) else int if isinstance(x, int) else float
        return Type((), _PY_DTYPES[kind]), True
    if isinstance(x, (np.ndarray, np.generic)) or is_device_array(x):
        check_array_class(x, where)
        try:
            return Type(tuple(x.shape), dtype_name(_dtype_of(x))), False
        except TypeError as exc:
            raise errors.user_error(errors.DTypeError, f"{where}: {exc}") from None
    raise errors.user_error(
        TypeError, f"{where} is a {type(x).__name__}, not an array or a number; pass arrays, "
        f"numbers and tuples/lists/dicts of them, or keep it out of the traced arguments: mark "
        f"it static (jit's static_argnums) or bind it with functools.partial")


def _static_key(value):
    """The cache key of a static argument: equal keys must mean interchangeable values.

    Python's `==` is too coarse for that: 0.0 == -0.0 (and 1 / -0.0 is -inf), 1 == 1.0 == True
    (which trace to different dtypes), and NaN != NaN (a NaN would miss the cache on every call).
    So floats are keyed by their bits and every number by its type, inside tuples too.
    """
    if isinstance(value, (float, complex, np.inexact)):
        return type(value), np.asarray(value).tobytes()
    if isinstance(value, (bool, int, np.integer, np.bool_)):
        return type(value), value
    if type(value) is tuple:
        return tuple, tuple(_static_key(v) for v in value)
    return type(value), value


def _function_name(f: Callable) -> str:
    name = getattr(f, "__name__", type(f).__name__)
    return re.sub(r"\W", "", name) or "function"


@dataclass
class Traced:
    """A traced callable: its Function, the argument and result structures, the leaves it was
    traced with, and the outer tracers its captured parameters stand for."""

    fn: Function
    in_tree: TreeDef
    out_tree: TreeDef
    leaves: list
    captured: list
    arg_slices: list          # positional argument i -> (first leaf, end) in the leaves


def trace_callable(f: Callable, args: Sequence, kwargs: dict | None = None,
                   static_argnums: Sequence[int] = (), name: str | None = None) -> Traced:
    """Trace `f(*args, **kwargs)` with the non-static arguments as Tracers."""
    kwargs = kwargs or {}
    static = set(static_argnums)
    dynamic = tuple(a for i, a in enumerate(args) if i not in static)
    leaves, in_tree = flatten((dynamic, kwargs))
    slices, start = [], 0
    for i, a in enumerate(args):
        n = 0 if i in static else len(flatten(a)[0])
        slices.append((start, start + n))
        start += n
    fname = name or _function_name(f)
    types = []
    for k, leaf in enumerate(leaves):
        arg = next((i for i, (s, e) in enumerate(slices) if s <= k < e), None)
        where = (f"argument {arg} of {fname}" if arg is not None
                 else f"a keyword argument of {fname}")
        types.append(_leaf_type(leaf, where))
    random_guard.install()
    statics = [a for i, a in enumerate(args) if i in static]
    with Trace(fname, random_guard.Watch(f, fname, statics)) as trace, trace.watch:
        tracers = [trace.new_param(t, weak) for t, weak in types]
        dyn_args, dyn_kwargs = unflatten(in_tree, tracers)
        it = iter(dyn_args)
        full = [a if i in static else next(it) for i, a in enumerate(args)]
        out = f(*full, **dyn_kwargs)
        out_leaves, out_tree = flatten(out)
        for leaf in out_leaves:
            if not isinstance(leaf, (Tracer, np.ndarray, np.generic, bool, int, float)):
                raise TypeError(f"{fname} returned a {type(leaf).__name__}; results must be "
                                f"arrays, numbers, or tuples/lists/dicts of them")
        trace.watch.check(f"after the last traced operation of {fname}")
        fn, captured = trace.finish(out_leaves)
    return Traced(fn, in_tree, out_tree, leaves, captured, slices)


def _dtype_of(x) -> np.dtype:
    if isinstance(x, (np.ndarray, np.generic)) or not hasattr(x, "__cuda_array_interface__"):
        return np.dtype(x.dtype)
    return np.dtype(x.__cuda_array_interface__["typestr"])


# How a host backend's error names the backends that take device arrays.
_DEVICE_BACKENDS = " or ".join(f"backend={b.name!r}" for b in backends.BACKENDS.values()
                                if b.device)


def _concrete(leaf, t: Type):
    if isinstance(leaf, np.ndarray):
        return leaf
    if isinstance(leaf, (int, float, np.generic)):      # the call path's numbers: no checks
        return np.asarray(leaf, dtype=t.np_dtype)
    if isinstance(leaf, Spec):
        raise TypeError("a Spec has no data: it can be traced, not run")
    if is_device_array(leaf):
        raise TypeError(f"a device array ({type(leaf).__name__}) was passed to a host backend; "
                        "copy it to the host first (GPUArray.get(), tensor.cpu().numpy()) or "
                        f"compile with {_DEVICE_BACKENDS}")
    return np.asarray(leaf, dtype=t.np_dtype)


def _run(fn: Function, leaves: Sequence, captured: Sequence) -> list:
    """Evaluate `fn`: inline it into the active trace, or interpret it on concrete values.
    `captured` (outer tracers) follow the leaves when inlining; interpreting needs none."""
    if current_trace() is not None:
        args = [leaf if isinstance(leaf, Tracer) else _concrete(leaf, p.type)
                for leaf, p in zip(list(leaves) + list(captured), fn.params)]
        return inline(fn, args)
    return interpret(fn, [_concrete(leaf, p.type) for leaf, p in zip(leaves, fn.params)])


_SLOW = object()


def _fast_signature(a):
    """A cheap signature of one positional argument for the call fast path: (shape, dtype) of
    an array, the type of a number; `_SLOW` for anything else (pytrees, other objects)."""
    t = type(a)
    if t is np.ndarray:
        return a.shape, a.dtype
    if t is float or t is int or t is bool or isinstance(a, np.generic):
        return t
    return _SLOW


def _user_value(x):
    """A result as the user gets it: a NumPy scalar for rank 0, like NumPy's reductions."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return x[()]
    return x


def trace(f: Callable, *args, static_argnums: Sequence[int] = (), **kwargs) -> Function:
    """The IR Function of `f` traced on example arguments (arrays, numbers, Specs, pytrees)."""
    if isinstance(f, Jitted):
        static_argnums, f = f.static_argnums, f.fun
    return trace_callable(f, args, kwargs, static_argnums).fn


# ---------------------------------------------------------------------------------------------
# differentiation


def _argnums(argnums, nargs: int, fname: str) -> tuple[int, ...]:
    items = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in items:
        if not isinstance(a, int) or not -nargs <= a < nargs:
            raise errors.user_error(
                errors.GradError, f"argnums {argnums!r} does not fit {fname}, called with "
                f"{nargs} positional arguments")
    return tuple(a % nargs for a in items)


def _grad_transform(f: Callable, argnums, has_aux: bool, kind: str) -> Callable:
    fname = _function_name(f)

    # `updated=()`: copy f's name and docstring, never its `__dict__` (a Jitted's function,
    # options and cache would otherwise replace the wrapper's own behaviour downstream).
    @functools.wraps(f, updated=())
    def wrapper(*args, **kwargs):
        nums = _argnums(argnums, len(args), fname)
        # As in JAX, an argument that is not differentiated and holds no array (a Python
        # number, a string, None) reaches f as it is, so f may use it as a Python value.
        passed = [i for i, a in enumerate(args) if i not in nums and _holds_no_array(a)]
        t = trace_callable(f, args, kwargs, static_argnums=passed, name=fname)
        outs = t.fn.results
        if has_aux:
            if t.out_tree.kind not in ("tuple", "list") or len(t.out_tree.children) != 2:
                raise errors.user_error(errors.GradError, f"{fname} was differentiated with "
                                        f"has_aux=True and must return a pair (loss, aux)")
            loss_tree = t.out_tree.children[0]
        else:
            loss_tree = t.out_tree
        # As in autograd, the loss may have any shape of size 1 ((), (1,), (1, 1), ...): the
        # gradient is that of its one element, and value_and_grad returns it as f returned it.
        if loss_tree.kind != "leaf" or outs[0].type.size != 1 or not is_float(
                outs[0].type.dtype):
            got = str(outs[0].type) if loss_tree.kind == "leaf" else f"a {loss_tree} structure"
            raise errors.user_error(
                errors.GradError, f"{kind} needs {fname} to return a scalar float (the loss: "
                f"one value, of shape () or another shape of size 1), but it returned {got}; "
                f"reduce it (np.sum, np.mean) or use tracejit.vjp for non-scalar outputs")
        wrt = []
        for a in nums:
            s, e = t.arg_slices[a]
            for k in range(s, e):
                check_differentiable(t.fn.params[k].type, f"argument {a} of {fname}"
                                     + (f" (leaf {k - s})" if e - s > 1 else ""))
            wrt.extend(range(s, e))
        _record_source(t.fn)
        g_fn = vjp_function(t.fn, wrt, seed="one", name=f"{kind}_{fname}")
        values = _run(g_fn, t.leaves, t.captured)
        n_out = len(outs)
        out = unflatten(t.out_tree, [_user_value(v) for v in values[:n_out]])
        flat_grads = [_user_value(v) for v in values[n_out:]]
        grads, pos = [], 0
        for a in nums:
            s, e = t.arg_slices[a]
            grads.append(unflatten(flatten(args[a])[1], flat_grads[pos:pos + e - s]))
            pos += e - s
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        if kind == "grad":
            return (grads, out[1]) if has_aux else grads
        return (out, grads)

    wrapper.__name__ = f"{kind}_{fname}"
    wrapper.__qualname__ = wrapper.__name__
    return wrapper


def _holds_no_array(x) -> bool:
    """Whether no leaf of the pytree `x` is an array, a traced value or a Spec."""
    return not any(isinstance(leaf, (Tracer, np.ndarray, np.generic, Spec)) or
                   is_device_array(leaf) for leaf in flatten(x)[0])


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The gradient of scalar-valued `f` with respect to the arguments `argnums`.

    The loss `f` returns is a float of size 1: a scalar, or an array of shape (1,), (1, 1),
    ... whose one element is the loss (as in autograd).

    `grad(f)(*args)` returns gradients shaped like the chosen arguments (pytrees keep their
    structure); with a tuple `argnums`, a tuple of them. With `has_aux`, `f` returns
    (loss, aux) and the call returns (grads, aux).
    """
    return _grad_transform(f, argnums, has_aux, "grad")


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable:
    """Like `grad`, but the call returns (value, grads), value being f's own result (a loss
    of shape (1,) stays of shape (1,))."""
    return _grad_transform(f, argnums, has_aux, "value_and_grad")


def vjp(f: Callable, *primals, has_aux: bool = False):
    """(f(*primals), vjp_fn): vjp_fn(cotangent) returns one cotangent per primal.

    The cotangent has the structure, shapes and dtypes of f's result. Primals that are not
    floating point get None.
    """
    fname = _function_name(f)
    t = trace_callable(f, primals, name=fname)
    n_out = len(t.fn.results)
    values = _run(t.fn, t.leaves, t.captured)
    out = unflatten(t.out_tree, [_user_value(v) for v in values])
    if has_aux:
        if t.out_tree.kind not in ("tuple", "list") or len(t.out_tree.children) != 2:
            raise errors.user_error(errors.GradError, f"{fname} was given to vjp with "
                                    "has_aux=True and must return a pair (output, aux)")
        out_tree = t.out_tree.children[0]
        n_main = out_tree.num_leaves
        out, aux = out
    else:
        out_tree, n_main = t.out_tree, n_out
    wrt = [k for k, p in enumerate(t.fn.params[:len(t.leaves)]) if is_float(p.type.dtype)]
    _record_source(t.fn)
    b_fn = vjp_function(t.fn, wrt, seed="param", keep_outputs=False, name=f"vjp_{fname}")
    float_outs = [k for k, r in enumerate(t.fn.results) if is_float(r.type.dtype)]

    def vjp_fn(cotangent):
        ct_leaves, ct_tree = flatten(cotangent)
        if ct_tree != out_tree:
            raise errors.user_error(errors.GradError, f"the cotangent has structure {ct_tree}; "
                                    f"{fname} returned {out_tree}")
        full = list(ct_leaves) + [np.zeros(r.type.shape, r.type.np_dtype)
                                  for r in t.fn.results[n_main:]]
        cts = []
        for k in float_outs:
            want = t.fn.results[k].type
            got = _leaf_type(full[k], "the cotangent")[0]
            if got.shape != want.shape:
                raise errors.user_error(errors.ShapeError, f"cotangent {k} has type {got}; "
                                        f"the result it belongs to is {want}")
            cts.append(full[k] if isinstance(full[k], Tracer) else
                       np.asarray(full[k], dtype=want.np_dtype))
        # b_fn's parameters: f's own (leaves, then captured), then the cotangents.
        if current_trace() is not None:
            grads = _run(b_fn, list(t.leaves) + list(t.captured) + cts, [])
        else:
            concrete = [_concrete(leaf, p.type) for leaf, p in zip(t.leaves, t.fn.params)]
            grads = interpret(b_fn, concrete + cts)
        by_leaf = dict(zip(wrt, (_user_value(g) for g in grads)))
        flat = [by_leaf.get(k) for k in range(len(t.leaves))]
        return unflatten(t.in_tree, flat)[0]

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def jvp(f: Callable, primals, tangents, has_aux: bool = False):
    """(f(*primals), J·tangents): forward mode, as JAX's jax.jvp. `primals` and `tangents` are
    tuples (or lists) of the same structure; each tangent has its primal's shape, and float
    dtype where its primal is float (the tangents of other primals are ignored: they have
    none). The tangent of a result that is not floating point is None. With has_aux, f
    returns (output, aux) and jvp returns (output, tangent, aux)."""
    fname = _function_name(f)
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise errors.user_error(TypeError, "primal and tangent arguments to jvp must be tuples "
                                f"or lists; found {type(primals).__name__} and "
                                f"{type(tangents).__name__}")
    t = trace_callable(f, tuple(primals), name=fname)
    t_leaves, t_tree = flatten((tuple(tangents), {}))
    if t_tree != t.in_tree:
        raise errors.user_error(TypeError, f"jvp of {fname}: the tangents have structure "
                                f"{t_tree}, the primals {t.in_tree}")
    params = t.fn.params[:len(t.leaves)]
    wrt = [k for k, p in enumerate(params) if is_float(p.type.dtype)]
    tans = []
    for k in wrt:
        want, leaf = params[k].type, t_leaves[k]
        got = _leaf_type(leaf, f"tangent {k}")[0]
        if got.shape != want.shape:
            raise errors.user_error(errors.ShapeError, f"jvp of {fname}: tangent {k} has type "
                                    f"{got}; its primal is {want}")
        tans.append(leaf if isinstance(leaf, Tracer) else np.asarray(leaf, want.np_dtype))
    _record_source(t.fn)
    j_fn = jvp_function(t.fn, wrt, name=f"jvp_{fname}")
    n_out = len(t.fn.results)
    if current_trace() is not None:
        values = _run(j_fn, list(t.leaves) + list(t.captured) + tans, [])
    else:
        concrete = [_concrete(leaf, p.type) for leaf, p in zip(t.leaves, t.fn.params)]
        values = interpret(j_fn, concrete + tans)
    values = [_user_value(v) for v in values]
    it = iter(values[n_out:])
    touts = [next(it) if is_float(r.type.dtype) else None for r in t.fn.results]
    out = unflatten(t.out_tree, values[:n_out])
    tout = unflatten(t.out_tree, touts)
    if not has_aux:
        return out, tout
    if t.out_tree.kind not in ("tuple", "list") or len(t.out_tree.children) != 2:
        raise errors.user_error(errors.GradError, f"{fname} was given to jvp with has_aux=True "
                                "and must return a pair (output, aux)")
    return out[0], tout[0], out[1]


# ---------------------------------------------------------------------------------------------
# jit


class Jitted:
    """A compiled function: call it like the original. Programs are cached by the argument
    structure, shapes, dtypes and static arguments; a repeat call with the same key never
    re-traces (`trace_count` counts traces). The cache keeps at most `cache_limit` programs,
    dropping the least recently used; concurrent first calls with one key compile it once."""

    def __init__(self, fun: Callable, static_argnums: int | Sequence[int] = (),
                 backend: str = "cpu", fuse: bool = True, fast_math: bool = False,
                 donate_argnums: int | Sequence[int] = (), allow_tf32: bool = False,
                 cache_limit: int | None = None):
        self._backend = backends.get(backend)
        self.options = Options(backend, fuse, fast_math, allow_tf32)
        self.fun = fun
        self.static_argnums = ((static_argnums,) if isinstance(static_argnums, int)
                               else tuple(static_argnums))
        self.donate_argnums = ((donate_argnums,) if isinstance(donate_argnums, int)
                               else tuple(donate_argnums))
        if self.donate_argnums and not self._backend.donates:
            raise NotImplementedError(
                f"donate_argnums is not implemented for the {backend} backend: its results are "
                "new device arrays; pass them back in as the next call's arguments")
        both = set(self.static_argnums) & set(self.donate_argnums)
        if both:
            raise ValueError(f"arguments {sorted(both)} are both static and donated")
        if cache_limit is None:
            cache_limit = default_cache_limit()
        if isinstance(cache_limit, bool) or not isinstance(cache_limit, int) or cache_limit < 1:
            raise ValueError(f"cache_limit must be a positive int, not {cache_limit!r}")
        self.cache_limit = cache_limit
        self.trace_count = 0
        self._cache: dict[Any, _Entry] = {}
        self._fast: dict[tuple, _Entry] = {}     # by `_fast_signature` of positional arguments
        self._lock = threading.Lock()            # guards _cache, _fast, _compiling, trace_count
        self._compiling: dict[Any, threading.RLock] = {}   # key -> held while it compiles
        # The name, docstring and `__wrapped__` of `fun`, but not its `__dict__`: when `fun` is
        # itself a Jitted (or wraps one), its attributes are its function, options and cache.
        functools.update_wrapper(self, fun, updated=())

    @property
    def backend(self) -> str:
        return self.options.backend

    def _key(self, args, kwargs):
        static = []
        for i in self.static_argnums:
            if i >= len(args):
                raise TypeError(f"static_argnums names argument {i}, but "
                                f"{_function_name(self.fun)} got {len(args)} positional arguments")
            try:
                hash(args[i])
            except TypeError:
                raise TypeError(f"static argument {i} of {_function_name(self.fun)} "
                                f"({type(args[i]).__name__}) is not hashable; pass a tuple "
                                "instead of a list, or make it an array argument") from None
            static.append((i, _static_key(args[i])))
        dynamic = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
        leaves, tree = flatten((dynamic, kwargs))
        sig = []
        for leaf in leaves:
            if isinstance(leaf, (np.ndarray, np.generic)):   # a 0-d array and a NumPy scalar
                if type(leaf) is not np.ndarray:              # share one signature
                    check_array_class(leaf, f"an argument of {_function_name(self.fun)}")
                sig.append((leaf.shape, leaf.dtype))
            elif is_python_scalar(leaf):
                sig.append(type(leaf))
            else:
                t, weak = _leaf_type(leaf, f"an argument of {_function_name(self.fun)}")
                sig.append((t.shape, t.np_dtype, weak))
        return (tree, tuple(sig), tuple(static)), leaves

    def _entry(self, args, kwargs) -> tuple["_Entry", list]:
        key, leaves = self._key(args, kwargs)
        entry = self._lookup(key)
        if entry is not None:
            return entry, leaves
        with self._lock:
            key_lock = self._compiling.setdefault(key, threading.RLock())
        try:
            with key_lock:           # one compile per key: later threads wait, then look it up
                entry = self._lookup(key)
                if entry is None:
                    entry = self._compile(args, kwargs, leaves)
                    with self._lock:
                        self._cache[key] = entry
                        self._evict()
        finally:
            with self._lock:
                self._compiling.pop(key, None)
        return entry, leaves

    def _lookup(self, key) -> "_Entry | None":
        with self._lock:
            return self._cache.get(key)

    def _compile(self, args, kwargs, leaves) -> "_Entry":
        _state.sources = sources = []
        try:
            t = trace_callable(self.fun, args, kwargs, self.static_argnums)
        finally:
            _state.sources = None
        with self._lock:
            self.trace_count += 1
        compiler = self._backend.compiler
        native = compiler(self.options) if compiler is not None else None
        return _Entry(compile_function(t.fn, sources, self.options, native), t.out_tree,
                      _int32_params(t.fn, leaves))

    def _evict(self) -> None:
        """Drop least recently used programs past `cache_limit` (called with `_lock` held). A
        dropped program's native code is freed once no running call holds it."""
        while len(self._cache) > self.cache_limit:
            key = min(self._cache, key=lambda k: self._cache[k].last_used)
            entry = self._cache.pop(key)
            self._fast = {k: e for k, e in self._fast.items() if e is not entry}

    def __call__(self, *args, **kwargs):
        tracing = current_trace() is not None
        if not kwargs and not tracing:
            # The fast path: positional arrays and numbers whose signature was seen before.
            entry = self._fast.get(tuple(map(_fast_signature, args)))
            if entry is not None:
                return self._call(entry, args, kwargs, args)
        if tracing:
            # Called while tracing another function: trace and inline (no separate program).
            # The enclosing transformation may have traced a static argument; it is passed on
            # as a traced value, which is right unless the function needs it concrete.
            traced_static = [i for i in self.static_argnums
                             if i < len(args) and isinstance(args[i], Tracer)]
            try:
                t = trace_callable(self.fun, args, kwargs, self.static_argnums)
            except errors.ConcretizationError as exc:
                if not traced_static:
                    raise
                raise errors.ConcretizationError(
                    f"{exc}\n(argument {traced_static[0]} of {_function_name(self.fun)} is "
                    f"static for this jit, but the enclosing jit or grad traced it: mark it "
                    f"static there too, or bind it with functools.partial)") from None
            return unflatten(t.out_tree, _run(t.fn, t.leaves, t.captured))
        entry, leaves = self._entry(args, kwargs)
        fast = tuple(map(_fast_signature, args))
        if not kwargs and not self.static_argnums and _SLOW not in fast:
            with self._lock:
                if any(e is entry for e in self._cache.values()):   # not evicted meanwhile
                    self._fast[fast] = entry
        return self._call(entry, args, kwargs, leaves)

    def _call(self, entry: "_Entry", args, kwargs, leaves):
        """Run the compiled program of `entry` on the argument leaves."""
        entry.last_used = next(_clock)         # one atomic step: no lock on the call path
        for k in entry.int32_params:
            if not _INT32[0] <= leaves[k] <= _INT32[1]:
                raise OverflowError(f"Python integer {leaves[k]} (argument leaf {k} of "
                                    f"{_function_name(self.fun)}) is out of bounds for int32, "
                                    "the dtype it is combined with")
        device = self._backend.device
        flat = [leaf if type(leaf) is np.ndarray or (device and is_device_array(leaf))
                else _concrete(leaf, t) for leaf, t in zip(leaves, entry.types)]
        results = entry.compiled.run(flat)
        if self.donate_argnums:
            results = self._into_donated(args, kwargs, results)
        for i in entry.scalar_results:          # rank 0: a NumPy scalar, like np.sum's
            results[i] = results[i][()]
        return entry.rebuild(results)

    def _into_donated(self, args, kwargs, results: list) -> list:
        """Write results into the arrays of the donated arguments, in place: each result goes
        to the first unused donated array of its shape and dtype (so `params` in, `params`
        out updates the caller's arrays), and that array object is returned in its stead."""
        free = []
        for i in self.donate_argnums:
            if i >= len(args):
                raise TypeError(f"donate_argnums names argument {i}, but "
                                f"{_function_name(self.fun)} got {len(args)} positional arguments")
            for k, leaf in enumerate(flatten(args[i])[0]):
                if isinstance(leaf, np.ndarray):
                    if not (leaf.flags.writeable and leaf.flags.c_contiguous):
                        raise ValueError(f"leaf {k} of donated argument {i} of "
                                         f"{_function_name(self.fun)} is not a writable "
                                         "C-contiguous array, so it cannot be updated in place")
                    if not any(leaf is a for a in free):    # a tied array is written once
                        free.append(leaf)
        # An array that overlaps another donated array, or any array the call did not donate,
        # is not written: the write would show through the other one.
        undonated = [a for i, a in enumerate(args) if i not in self.donate_argnums]
        others = [leaf for leaf in flatten((undonated, kwargs))[0]
                  if isinstance(leaf, np.ndarray)]
        free = [a for j, a in enumerate(free)
                if not any(np.may_share_memory(a, b) for b in free[:j] + free[j + 1:] + others)]
        out = []
        for value in results:
            k = next((k for k, a in enumerate(free) if a.shape == value.shape
                      and a.dtype == value.dtype and a.ndim > 0), None)
            if k is None:
                out.append(value)
                continue
            target = free.pop(k)        # by position: list.remove would compare arrays with ==
            np.copyto(target, value)
            out.append(target)
        return out

    def compiled(self, *args, **kwargs) -> Compiled:
        """Everything compiling for these arguments produced: the stages, the Program, and
        the backend's compiled program (`.native`; on cpu its `info` says whether the object
        code came from the disk cache and why a lookup missed)."""
        return self._entry(args, kwargs)[0].compiled

    def lower(self, *args, **kwargs) -> Function:
        """The optimised Function this jitted function runs for these arguments."""
        return self._entry(args, kwargs)[0].compiled.optimized

    def program(self, *args, **kwargs):
        """The Program of Kernels (after fusion) this jitted function runs for these arguments."""
        return self._entry(args, kwargs)[0].compiled.program

    def report(self, *args, **kwargs) -> str:
        """The fusion report: kernels, their equations and user lines, bytes, FLOPs, and the
        reason for every edge left unfused."""
        return self._entry(args, kwargs)[0].compiled.report()

    def dump(self, *args, **kwargs) -> dict[str, str]:
        """{stage name: text} for every stage of compiling for these arguments: traced,
        differentiated (when a gradient was taken), each pass, the fused program with its
        report, and the backend's generated code."""
        return self._entry(args, kwargs)[0].compiled.stages()

    @property
    def cache_size(self) -> int:
        """How many compiled programs the cache holds now (at most `cache_limit`)."""
        return len(self._cache)


def default_cache_limit() -> int:
    """The `cache_limit` of a jit that names none: TRACEJIT_CACHE_LIMIT, else 64 programs."""
    return settings.integer("TRACEJIT_CACHE_LIMIT", 64)


@dataclass
class _Entry:
    compiled: Compiled
    out_tree: TreeDef
    int32_params: list[int]     # Python-int arguments that the program narrows to int32
    last_used: int = field(default_factory=lambda: next(_clock))    # for the LRU order

    def __post_init__(self):
        fn = self.compiled.traced
        self.types = [p.type for p in fn.params]
        self.scalar_results = [i for i, r in enumerate(fn.results) if r.type.shape == ()]
        self.rebuild = unflattener(self.out_tree)


def to_host(tree):
    """A pytree of results with its device arrays copied to NumPy arrays (`.get()` of a pycuda
    GPUArray); host values (NumPy arrays and scalars, numbers) are returned as they are."""
    return tree_map(lambda x: x.get() if is_device_array(x) and hasattr(x, "get") else x,
                    tree)


def is_device_array(x) -> bool:
    """Whether `x` is an array in GPU memory: a pycuda GPUArray, or anything exposing
    `__cuda_array_interface__` (CuPy, PyTorch, numba)."""
    return hasattr(x, "__cuda_array_interface__") or (
        hasattr(x, "gpudata") and hasattr(x, "shape") and hasattr(x, "dtype"))


def _int32_params(fn: Function, leaves: list) -> list[int]:
    """Leaves passed as Python ints whose parameter is cast to int32 inside: their values
    must be range-checked on every call, as NumPy checks a Python int meeting an int32."""
    out = []
    for k, (leaf, p) in enumerate(zip(leaves, fn.params)):
        if is_python_scalar(leaf) and not isinstance(leaf, bool) and isinstance(leaf, int) and any(
                e.prim is P.cast and e.inputs[0] is p and e.params["dtype"] == "i32"
                for e in fn.eqns):
            out.append(k)
    return out


def jit(fun: Callable | None = None, *, static_argnums: int | Sequence[int] = (),
        backend: str = "cpu", fuse: bool = True, fast_math: bool = False,
        donate_argnums: int | Sequence[int] = (), allow_tf32: bool = False,
        cache_limit: int | None = None):
    """Compile `fun`: trace once per argument signature, optimise, fuse, run on `backend`.

    `fuse=False` gives one kernel per primitive (the unfused baseline); `fast_math=True`
    allows rewrites that are wrong for some special values (see tracejit.passes);
    `donate_argnums` names arguments whose arrays the call may overwrite with results of the
    same shape and dtype (in-place parameter updates). Inputs are never mutated otherwise.
    Backends: "cpu" (LLVM), "cuda" (generated CUDA C through pycuda; arguments may be NumPy
    arrays, pycuda GPUArrays or objects with `__cuda_array_interface__`, results are
    GPUArrays), "cuda-emulator" (the same CUDA C run on the host, for testing without a GPU),
    "interpret" (the kernel interpreter). `allow_tf32=True` lets float32 dots on the GPU use
    TF32 tensor cores (10-bit mantissa products, float32 sums). `cache_limit` bounds the
    compiled programs kept for this function, one per argument signature (least recently used
    dropped first; default: the TRACEJIT_CACHE_LIMIT environment variable, else 64).
    Usable as `jit(f)`, `@jit` or `@jit(static_argnums=1)`.
    """
    if fun is None:
        return lambda f: Jitted(f, static_argnums, backend, fuse, fast_math, donate_argnums,
                                allow_tf32, cache_limit)
    return Jitted(fun, static_argnums, backend, fuse, fast_math, donate_argnums, allow_tf32,
                  cache_limit)
