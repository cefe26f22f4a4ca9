"""User-facing errors: each is raised with the right exception type, its message starts with
the user's file and the exact line of the offending statement (before any tracejit-internal
path), and it names the way out.

The offending line of each case carries a marker comment `# ERR:<name>`; `line_of` finds it,
so the expected line number never goes stale when the file is edited.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors

HERE = os.path.abspath(__file__)
TRACEJIT_DIR = os.path.dirname(os.path.abspath(tj.__file__))
_LOCATION = re.compile(r"^(?P<file>.+?):(?P<line>\d+) \(in (?P<func>[^)]+)\): ")


def line_of(marker: str) -> int:
    """The line number of the one line of this file that ends with `# ERR:<marker>`."""
    with open(HERE) as f:
        hits = [i for i, text in enumerate(f, 1) if text.rstrip().endswith(f"# ERR:{marker}")]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def check_error(exc_info, exc_type, marker, *needles):
    """Exact type, the message starts with this file:line of `marker`, and says `needles`."""
    exc = exc_info.value
    assert type(exc) is exc_type, type(exc)
    msg = str(exc)
    m = _LOCATION.match(msg)
    assert m, f"message does not start with file:line (in function): {msg!r}"
    assert os.path.basename(m["file"]) == os.path.basename(HERE), msg
    assert not os.path.abspath(m["file"]).startswith(TRACEJIT_DIR), msg
    assert int(m["line"]) == line_of(marker), msg
    assert "tracejit" + os.sep not in msg.split(": ", 1)[0]
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def x34():
    return np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)


#: How a function reaches the tracer: traced directly, jitted, or differentiated.
ENTRIES = {
    "trace": lambda f, *a: tj.trace(f, *a),
    "jit": lambda f, *a: tj.jit(f)(*a),
    "grad": lambda f, *a: tj.grad(lambda *b: np.sum(f(*b)))(*a),
}


# ---------------------------------------------------------------------------------------------
# concretization: Python needs a value that is only known at run time


def if_on_traced(x):
    if np.sum(x) > 0:  # ERR:if
        return x
    return -x


def bool_of_traced(x):
    flag = bool(np.max(x))  # ERR:bool
    return x * flag


def int_of_traced(x):
    n = int(np.sum(x))  # ERR:int
    return x * n


def float_of_traced(x):
    v = float(x[0, 0])  # ERR:float
    return x * v


def while_on_traced(x):
    while np.max(x) > 1.0:  # ERR:while
        x = x / 2.0
    return x


def item_of_traced(x):
    return x * x.sum().item()  # ERR:item


def asarray_of_traced(x):
    return np.asarray(x) + 1.0  # ERR:asarray


_BRANCH = ("np.where", "static_argnums")

CONCRETIZATION = {
    "if": (if_on_traced, _BRANCH + ("bool()", "bool[]")),
    "bool": (bool_of_traced, _BRANCH + ("bool()", "f32[]")),
    "int": (int_of_traced, _BRANCH + ("int()",)),
    "float": (float_of_traced, _BRANCH + ("float()",)),
    "while": (while_on_traced, _BRANCH),
    "item": (item_of_traced, _BRANCH + ("item()",)),
    "asarray": (asarray_of_traced, ("np.asarray", "f32[3,4]")),
}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("name", CONCRETIZATION)
def test_concretization(name, entry):
    fn, needles = CONCRETIZATION[name]
    with pytest.raises(errors.ConcretizationError) as ei:
        ENTRIES[entry](fn, x34())
    assert isinstance(ei.value, TypeError) and isinstance(ei.value, tj.TracejitError)
    check_error(ei, errors.ConcretizationError, name, *needles)


# ---------------------------------------------------------------------------------------------
# unsupported NumPy


def uses_eig(x):
    values, vectors = np.linalg.eig(x[:, :3])  # ERR:eig
    return values


def uses_fft(x):
    return np.fft.fft(x, axis=0)  # ERR:fft


def uses_unique(x):
    return np.unique(x)  # ERR:unique


def uses_accumulate(x):
    return np.subtract.accumulate(x)  # ERR:accumulate


UNSUPPORTED = {
    "eig": (uses_eig, "numpy.linalg.eig is not supported"),
    "fft": (uses_fft, "numpy.fft.fft is not supported"),
    "unique": (uses_unique, "numpy.unique is not supported"),
    "accumulate": (uses_accumulate, "numpy.subtract.accumulate is not supported"),
}


@pytest.mark.parametrize("entry", ["trace", "jit"])
@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_numpy(name, entry):
    fn, needle = UNSUPPORTED[name]
    with pytest.raises(errors.UnsupportedError) as ei:
        ENTRIES[entry](fn, x34())
    assert isinstance(ei.value, NotImplementedError)
    check_error(ei, errors.UnsupportedError, name, needle)


# ---------------------------------------------------------------------------------------------
# shapes


def add_mismatch(x, v):
    y = x * 2.0
    return y + v  # ERR:add


def matmul_mismatch(x, m):
    return np.tanh(x @ m)  # ERR:matmul


def dot_mismatch(x, m):
    return np.dot(x, m)  # ERR:dot


def reshape_mismatch(x, v):
    return x.reshape(5, 2)  # ERR:reshape


SHAPES = {
    "add": (add_mismatch, np.ones(5, np.float32), ("f32[3,4]", "f32[5]", "broadcast")),
    "matmul": (matmul_mismatch, np.ones((5, 2), np.float32), ("f32[3,4]", "f32[5,2]", "4 != 5")),
    "dot": (dot_mismatch, np.ones((5, 2), np.float32), ("f32[3,4]", "f32[5,2]", "not aligned")),
    "reshape": (reshape_mismatch, np.ones(1, np.float32), ("f32[3,4]", "(5, 2)", "reshape")),
}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("name", SHAPES)
def test_shape_errors(name, entry):
    fn, other, needles = SHAPES[name]
    with pytest.raises(errors.ShapeError) as ei:
        ENTRIES[entry](fn, x34(), other)
    assert isinstance(ei.value, ValueError)
    check_error(ei, errors.ShapeError, name, *needles)


# ---------------------------------------------------------------------------------------------
# indexing and in-place updates


def mask_index(x):
    return np.sum(x[x > 0])  # ERR:mask


def setitem(x):
    x[0] = 1  # ERR:setitem
    return x


def ufunc_out(x):
    y = x * 1.0
    np.add(y, 1.0, out=y)  # ERR:out
    return y


def index_oob(x):
    return x[7]  # ERR:oob


def index_oob_negative(x):
    return x[:, -5]  # ERR:oob_neg


def traced_slice_bound(x, i):
    return x[:i]  # ERR:slice


INDEXING = {
    "mask": (mask_index, errors.TracedIndexError, ("depends on the data", "shape", "np.where")),
    "setitem": (setitem, errors.UnsupportedError, ("in-place", "immutable", "np.where")),
    "out": (ufunc_out, errors.UnsupportedError, ("numpy.add", "out=", "immutable")),
    "oob": (index_oob, errors.TracedIndexError, ("index 7 is out of bounds", "size 3")),
    "oob_neg": (index_oob_negative, errors.TracedIndexError,
                ("index -5 is out of bounds", "axis 1", "size 4")),
}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("name", INDEXING)
def test_indexing_errors(name, entry):
    fn, exc_type, needles = INDEXING[name]
    with pytest.raises(exc_type) as ei:
        ENTRIES[entry](fn, x34())
    base = IndexError if exc_type is errors.TracedIndexError else NotImplementedError
    assert isinstance(ei.value, base)
    check_error(ei, exc_type, name, *needles)


def test_traced_slice_bound():
    with pytest.raises(errors.TracedIndexError) as ei:
        tj.jit(traced_slice_bound)(x34(), 2)
    check_error(ei, errors.TracedIndexError, "slice", "static_argnums")
    # ... and the way out works:
    x = x34()
    got = tj.jit(traced_slice_bound, static_argnums=1)(x, 2)
    np.testing.assert_array_equal(got, x[:2])


# ---------------------------------------------------------------------------------------------
# escaped tracers

_LEAKED = []


def leak(x):
    y = x * 2.0
    _LEAKED.append(y)
    return y


def use_leaked(x):
    return x + _LEAKED[-1]  # ERR:escaped


def use_leaked_outside():
    return _LEAKED[-1] * 3.0  # ERR:escaped_outside


@pytest.mark.parametrize("entry", ["trace", "jit"])
def test_escaped_tracer_in_a_later_trace(entry):
    x = x34()
    got = tj.jit(leak)(x)
    np.testing.assert_allclose(got, x * 2.0)
    with pytest.raises(errors.EscapedTracerError) as ei:
        ENTRIES[entry](use_leaked, x)
    assert isinstance(ei.value, RuntimeError)
    check_error(ei, errors.EscapedTracerError, "escaped", "escaped", "f32[3,4]", "argument")


def test_escaped_tracer_used_outside_any_trace():
    tj.trace(leak, x34())
    with pytest.raises(errors.EscapedTracerError) as ei:
        use_leaked_outside()
    check_error(ei, errors.EscapedTracerError, "escaped_outside", "escaped", "f32[3,4]")


# ---------------------------------------------------------------------------------------------
# arguments the tracer cannot take: named at the call site


def identity(a):
    return a


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, "datetime64[s]"])
def test_unsupported_dtype_argument_jit(dtype):
    bad = np.ones(3, dtype)
    with pytest.raises(errors.DTypeError) as ei:
        tj.jit(identity)(bad)  # ERR:dtype_jit
    assert isinstance(ei.value, TypeError)
    check_error(ei, errors.DTypeError, "dtype_jit", np.dtype(dtype).name, "float32")


def test_unsupported_dtype_argument_trace():
    with pytest.raises(errors.DTypeError) as ei:
        tj.trace(identity, (np.ones(2, np.float32), np.ones(2, np.complex64)))  # ERR:dtype_trace
    check_error(ei, errors.DTypeError, "dtype_trace", "complex64", "argument 0")


def test_unsupported_dtype_inside_the_function():
    def f(x):
        return x + np.ones(4, np.complex64)  # ERR:dtype_inner

    with pytest.raises(errors.DTypeError) as ei:
        tj.jit(f)(x34())
    check_error(ei, errors.DTypeError, "dtype_inner", "complex64")


def test_string_argument_suggests_static_argnums():
    with pytest.raises(TypeError) as ei:
        tj.jit(lambda x, mode: x)(x34(), "fast")  # ERR:string
    check_error(ei, TypeError, "string", "str", "static_argnums")
    # ... and the way out works:
    got = tj.jit(lambda x, mode: x * 2.0 if mode == "fast" else x, static_argnums=1)(x34(), "fast")
    np.testing.assert_allclose(got, x34() * 2.0)


def test_string_argument_to_trace():
    with pytest.raises(TypeError) as ei:
        tj.trace(identity, {"a": "text"})  # ERR:string_trace
    check_error(ei, TypeError, "string_trace", "argument 0", "str", "static_argnums")


# ---------------------------------------------------------------------------------------------
# grad misuse


def vector_valued(x):
    return x * 2.0


def test_grad_of_non_scalar():
    with pytest.raises(errors.GradError) as ei:
        tj.grad(vector_valued)(x34())  # ERR:grad_vector
    assert isinstance(ei.value, TypeError)
    check_error(ei, errors.GradError, "grad_vector", "f32[3,4]", "np.sum", "vjp")
