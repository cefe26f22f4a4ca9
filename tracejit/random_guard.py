"""NumPy random numbers drawn while tracing: an error at the user's line, never frozen noise.

Tracing runs the user's Python once; a call of `np.random.standard_normal(x.shape)` in it runs
once too, and its numbers become a constant of the compiled program: every call would then see
the same "noise" (dropout that silently stops being random). Drawing them while tracing is an
error that names the ways out: tracejit.random, whose keys and draws are part of the compiled
program, or numbers drawn outside and passed in as an argument.

Two mechanisms, because NumPy's generators cannot all be intercepted:
- The legacy module functions (`np.random.rand`, `np.random.standard_normal`, ...) are methods
  of one global RandomState; `install()` wraps them in `numpy.random` once, and each wrapper
  raises when *its own thread* is tracing (other threads draw as before).
- Generator and RandomState objects cannot be wrapped (their methods are compiled code). A
  `Watch` finds the ones a traced function can reach (its globals, closure, defaults, bound
  object, static arguments, and unseeded generators made while tracing) and compares their
  states after every recorded equation, so the error points at the line that drew, or the
  first traced operation after it.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import types
from typing import Any, Callable, Iterable

import numpy as np

from . import errors
from .tracer import current_trace

_GENERATORS = (np.random.Generator, np.random.RandomState, np.random.BitGenerator)
_HARMLESS = {"seed", "get_state", "set_state", "get_bit_generator", "set_bit_generator"}
_state = threading.local()
_install_lock = threading.Lock()
_installed = False


def message(what: str, fname: str) -> str:
    """The error text for random numbers drawn while tracing `fname`."""
    return (f"{what} drew random numbers while tracing {fname}: they would be drawn once, at "
            f"trace time, and frozen into the compiled program as constants, so every call "
            f"would see the same numbers. Draw them inside the compiled program with "
            f"tracejit.random from a key passed in (noise = tj.random.normal(key, shape), "
            f"a new key each call: key, sub = tj.random.split(key)), or outside the traced "
            f"function and pass them in as an argument (noise = rng.standard_normal(shape); "
            f"step(params, x, noise)); an array meant to stay fixed can be made outside and "
            f"closed over")


def _tracing() -> str | None:
    """The name of the function this thread is tracing, or None."""
    trace = current_trace()
    return None if trace is None else trace.name


def _guard(name: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        fname = _tracing()
        if fname is not None:
            raise errors.user_error(errors.UnsupportedError,
                                    message(f"np.random.{name}", fname))
        return fn(*args, **kwargs)

    guarded.__tracejit_guard__ = fn
    return guarded


def _default_rng(fn: Callable) -> Callable:
    """np.random.default_rng that watches an unseeded generator made while tracing (a seeded
    one draws the same numbers on every call in NumPy too, so freezing them is exact)."""
    @functools.wraps(fn)
    def default_rng(seed=None):
        rng = fn(seed)
        watch = getattr(_state, "watch", None)
        if seed is None and watch is not None and _tracing() is not None:
            watch.add(rng)
        return rng

    default_rng.__tracejit_guard__ = fn
    return default_rng


def install() -> None:
    """Wrap the legacy module functions of `numpy.random` (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        legacy = np.random.mtrand._rand
        for name in dir(np.random):
            fn = getattr(np.random, name)
            if getattr(fn, "__self__", None) is legacy and name not in _HARMLESS:
                setattr(np.random, name, _guard(name, fn))
        np.random.default_rng = _default_rng(np.random.default_rng)
        _installed = True


def _fingerprint(gen) -> Any:
    """Something that changes whenever `gen` draws (cheap: called after every equation)."""
    bitgen = (gen.bit_generator if isinstance(gen, np.random.Generator) else
              gen._bit_generator if isinstance(gen, np.random.RandomState) else gen)
    if isinstance(bitgen, np.random.MT19937):
        # The raw C state (uint32 key[624], int pos), read in place: its `.state` dict costs
        # a copy of the whole key.
        return ctypes.string_at(bitgen.ctypes.state_address, 624 * 4 + 4)
    return repr(bitgen.state)


_DEPTH = 4      # how many calls deep the search follows functions that call functions


def _library(g) -> bool:
    module = getattr(g, "__module__", None) or ""
    return module.split(".")[0] in ("numpy", "tracejit", "builtins")


def _reachable(f: Any, extra: Iterable = ()) -> list:
    """The generators `f` can reach: named globals, closure cells, defaults, the object of a
    bound method, a partial's arguments, what wrappers wrap, and `extra` — and the same of the
    user's functions found there, a few calls deep."""
    found, seen = [], set()

    def visit_value(v, depth, nest=0):      # depth: calls followed; nest: containers opened
        if id(v) in seen:
            return
        if isinstance(v, _GENERATORS):
            seen.add(id(v))
            found.append(v)
        elif isinstance(v, (tuple, list)) and nest < 2:
            for item in v:
                visit_value(item, depth, nest + 1)
        elif isinstance(v, dict) and nest < 2:
            for item in v.values():
                visit_value(item, depth, nest + 1)
        elif isinstance(v, (types.FunctionType, types.MethodType, functools.partial)) and \
                not _library(v):
            seen.add(id(v))
            visit_callable(v, depth + 1)

    def names(code: types.CodeType) -> set:
        out = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                out |= names(const)
        return out

    def visit_callable(g, depth=0):
        if depth > _DEPTH or g is None:
            return
        visit_callable(getattr(g, "__wrapped__", None), depth + 1)
        visit_callable(getattr(g, "fun", None), depth + 1)          # a Jitted
        if isinstance(g, functools.partial):
            visit_value(g.args, depth), visit_value(g.keywords, depth)
            visit_callable(g.func, depth + 1)
        if isinstance(g, types.MethodType):
            obj = g.__self__
            visit_value(obj, depth)
            visit_value(getattr(obj, "__dict__", {}), depth)
            g = g.__func__
        code = getattr(g, "__code__", None)
        if code is None:
            return
        glob = getattr(g, "__globals__", {})
        for name in names(code):
            if name in glob:
                visit_value(glob[name], depth)
        for cell in getattr(g, "__closure__", None) or ():
            try:
                visit_value(cell.cell_contents, depth)
            except ValueError:          # an empty cell
                pass
        visit_value(getattr(g, "__defaults__", None) or (), depth)
        visit_value(getattr(g, "__kwdefaults__", None) or {}, depth)

    visit_callable(f)
    visit_value(list(extra), 0)
    return found


class Watch:
    """The generators a traced function can reach, and their states when last checked."""

    def __init__(self, f: Any, fname: str, extra: Iterable = ()):
        self.fname = fname
        self.gens = _reachable(f, extra)
        self.prints = [_fingerprint(g) for g in self.gens]

    def add(self, gen) -> None:
        self.gens.append(gen)
        self.prints.append(_fingerprint(gen))

    def check(self, when: str = "at or before this line") -> None:
        """Raise at the user's line if a watched generator drew since the last check."""
        for k, gen in enumerate(self.gens):
            now = _fingerprint(gen)
            if now != self.prints[k]:
                self.prints[k] = now
                raise errors.user_error(errors.UnsupportedError, message(
                    f"a {type(gen).__name__} ({when})", self.fname))

    def __enter__(self) -> "Watch":
        self.outer = getattr(_state, "watch", None)
        _state.watch = self
        return self

    def __exit__(self, *exc) -> None:
        _state.watch = self.outer
