"""Errors that point at the user's code.

Every error raised while tracing starts with the user's file and line (the innermost frame
outside tracejit and NumPy), then says what went wrong and how to get out of it.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from .ir import SourceLoc

_TRACEJIT_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


def _internal(filename: str) -> bool:
    if filename.startswith("<") and "array_function" in filename:
        return True
    path = os.path.abspath(filename)
    return path.startswith(_TRACEJIT_DIR + os.sep) or path.startswith(_NUMPY_DIR + os.sep)


def user_location(skip_internal: bool = True) -> SourceLoc | None:
    """The innermost frame of the call stack that belongs to the user's code."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if not (skip_internal and _internal(code.co_filename)):
            return SourceLoc(code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return None


def where(loc: SourceLoc | None) -> str:
    """'loss.py:12 (in loss)' — the prefix of every user-facing message."""
    if loc is None:
        return "<unknown location>"
    return f"{loc.file}:{loc.line} (in {loc.function})"


class TracejitError(Exception):
    """Base class of every error tracejit raises about the user's program."""


class ConcretizationError(TracejitError, TypeError):
    """A traced value was used where Python needs a concrete one (if, bool, int, len, ...)."""


class UnsupportedError(TracejitError, NotImplementedError):
    """A NumPy function, method or argument that tracejit does not support."""


class ShapeError(TracejitError, ValueError):
    """Shapes that do not fit together."""


class TracedIndexError(TracejitError, IndexError):
    """An index that cannot be traced or is out of bounds."""


class DTypeError(TracejitError, TypeError):
    """A dtype that is not supported or not allowed here."""


class GradError(TracejitError, TypeError):
    """A function or argument that cannot be differentiated as asked."""


class EscapedTracerError(TracejitError, RuntimeError):
    """A traced value was used after the function that traced it returned."""


class CudaUnavailableError(RuntimeError):
    """The GPU backend cannot run here: pycuda is not installed, or the CUDA driver or a GPU
    is not usable. The message says what failed and the way out."""


def user_error(cls, message: str, loc: SourceLoc | None = None) -> TracejitError:
    """Build `cls` with the message prefixed by the user's location."""
    loc = loc if loc is not None else user_location()
    return cls(f"{where(loc)}: {message}")
