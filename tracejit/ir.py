"""The tracejit IR: a typed SSA list of equations.

A `Function` has typed parameters, a flat list of equations in SSA order and results.
Every value (`Var`) carries a `Type` (shape and dtype); every equation (`Eqn`) carries the
source location of the user's line that produced it. The IR is immutable: passes build new
Functions. `str(fn)` prints the text form; `verify(fn)` checks types and SSA form.

    func @loss(%0: f32[64,1000], %1: f32[1000,100]) -> f32[] {
      %2 = dot %0, %1 contract=((1),(0))   : f32[64,100]
      %3 = max %2, 0.0                     : f32[64,100]
      %4 = reduce_sum %3 axes=(0,1)        : f32[]
      return %4
    }
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

# ---------------------------------------------------------------------------------------------
# dtypes

#: The dtypes of the IR, by their short names, and the NumPy dtype of each.
DTYPES: dict[str, np.dtype] = {
    "bool": np.dtype(np.bool_),
    "i8": np.dtype(np.int8),
    "i16": np.dtype(np.int16),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "u8": np.dtype(np.uint8),
    "u16": np.dtype(np.uint16),
    "u32": np.dtype(np.uint32),
    "u64": np.dtype(np.uint64),
    "f16": np.dtype(np.float16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
}
try:                                    # bfloat16 is NumPy's through the optional ml_dtypes
    import ml_dtypes
    DTYPES["bf16"] = np.dtype(ml_dtypes.bfloat16)
except ImportError:                     # pragma: no cover - depends on the environment
    ml_dtypes = None
_NAME_OF = {dt: name for name, dt in DTYPES.items()}

FLOAT_DTYPES = ("f16", "bf16", "f32", "f64")
SIGNED_DTYPES = ("i8", "i16", "i32", "i64")
UNSIGNED_DTYPES = ("u8", "u16", "u32", "u64")
INT_DTYPES = SIGNED_DTYPES + UNSIGNED_DTYPES

#: Where a dtype is only stored, the dtype its arithmetic is computed in: the `widen` pass
#: (tracejit.passes) computes every operation on a narrow dtype in its compute dtype and
#: rounds (or wraps) the result back, so the backends compute only in bool, i32, i64, f32 and
#: f64 and convert the narrow dtypes where they load, store and cast them. Half precision
#: computes in float32, as NumPy's own float16 loops do, and its sums and products accumulate
#: there; the narrow integers compute in a type that holds every value of theirs, and the
#: wrap-around of their arithmetic is the truncation back (exact: arithmetic modulo 2**n).
#: uint64 has no wider type: it computes in int64's bits (see the pass for what that allows).
COMPUTE_DTYPE = {"f16": "f32", "bf16": "f32", "i8": "i32", "i16": "i32", "u8": "i32",
                 "u16": "i32", "u32": "i64", "u64": "i64"}


class UnsupportedDTypeError(TypeError):
    """A NumPy dtype that tracejit does not represent."""


def dtype_name(dt: Any) -> str:
    """The IR name ('f32', ...) of a NumPy dtype or dtype-like; raises for unsupported ones."""
    if isinstance(dt, str) and dt in DTYPES:
        return dt
    try:
        npdt = np.dtype(dt)
    except TypeError:
        if isinstance(dt, str) and dt == "bfloat16" and ml_dtypes is None:
            raise UnsupportedDTypeError(
                "dtype bfloat16 needs the optional package ml_dtypes (pip install ml_dtypes)") \
                from None
        raise
    try:
        return _NAME_OF[npdt]
    except KeyError:
        hint = " (bfloat16 needs the optional package ml_dtypes)" \
            if npdt.name == "bfloat16" else ""
        raise UnsupportedDTypeError(
            f"dtype {npdt} is not supported: tracejit supports bool, the signed and unsigned "
            f"integers of 8 to 64 bits, float16, float32, float64 and bfloat16{hint}") from None


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_unsigned(dtype: str) -> bool:
    return dtype in UNSIGNED_DTYPES


def compute_dtype(dtype: str) -> str:
    """The dtype `dtype`'s arithmetic is computed in (itself, unless it is only stored)."""
    return COMPUTE_DTYPE.get(dtype, dtype)


# ---------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True)
class Type:
    """The type of an IR value: a static shape and a dtype name."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self):
        assert self.dtype in DTYPES, self.dtype
        assert all(isinstance(d, int) and d >= 0 for d in self.shape), self.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * self.np_dtype.itemsize

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


_var_ids = itertools.count()


@dataclass(frozen=True, eq=False)
class Var:
    """An SSA value. Identity is the object itself; `uid` only orders and names it stably."""

    type: Type
    uid: int = field(default_factory=lambda: next(_var_ids))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"Var({self.uid}: {self.type})"


@dataclass(frozen=True, eq=False)
class Literal:
    """A scalar constant used directly as an operand (shape ()). `value` is a NumPy scalar."""

    value: np.generic

    @property
    def type(self) -> Type:
        return Type((), dtype_name(self.value.dtype))

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def key(self):
        """A hashable key that tells literals apart (NaN == NaN, -0.0 != 0.0)."""
        return (self.dtype, self.value.tobytes())

    def __str__(self) -> str:
        return format_scalar(self.value)

    __repr__ = __str__


Atom = Var | Literal


def format_scalar(value: np.generic) -> str:
    """The shortest text that reads back to the same scalar: 0.1, -0.0, inf, nan, 3, true."""
    if value.dtype == np.bool_:
        return "true" if value else "false"
    if value.dtype.kind == "f":
        if np.isnan(value):
            return "nan"
        if np.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = np.format_float_positional(value, unique=True, trim="0")
        if len(text) > 12:
            text = np.format_float_scientific(value, unique=True, trim="0")
        return text
    return str(int(value))


@dataclass(frozen=True)
class SourceLoc:
    """Where in the user's code an equation came from."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        import os.path
        return f"{os.path.basename(self.file)}:{self.line}"


@dataclass(frozen=True, eq=False)
class Eqn:
    """One equation: `out = prim(inputs..., **params)`."""

    prim: Any                       # a tracejit.primitives.Primitive
    inputs: tuple[Atom, ...]
    out: Var
    params: Mapping[str, Any] = field(default_factory=dict)
    loc: SourceLoc | None = None

    def __post_init__(self):
        if not isinstance(self.params, MappingProxyType):
            object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True, eq=False)
class Function:
    """A typed SSA function: parameters, equations in dependency order, results."""

    name: str
    params: tuple[Var, ...]
    eqns: tuple[Eqn, ...]
    results: tuple[Atom, ...]

    @property
    def in_types(self) -> tuple[Type, ...]:
        return tuple(p.type for p in self.params)

    @property
    def out_types(self) -> tuple[Type, ...]:
        return tuple(r.type for r in self.results)

    def __str__(self) -> str:
        return format_function(self)

    def format(self, locations: bool = True) -> str:
        """The text form; with `locations`, each equation ends with its user file:line."""
        return format_function(self, locations=locations)


# ---------------------------------------------------------------------------------------------
# printer


def format_param(value: Any) -> str:
    """Print a parameter value compactly: tuples as (0,1), dtypes by name, arrays summarised."""
    if isinstance(value, tuple):
        return "(" + ",".join(format_param(v) for v in value) + ")"
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value, separator=",").replace("\n", "").replace(" ", "")
        return f"<{value.size} values>"
    if isinstance(value, np.generic):
        return format_scalar(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def names_of(fn: Function) -> dict[Var, str]:
    """Stable printed names: parameters first, then equation outputs, numbered from 0."""
    names: dict[Var, str] = {}
    for v in itertools.chain(fn.params, (e.out for e in fn.eqns)):
        names.setdefault(v, f"%{len(names)}")
    return names


def format_eqn(eqn: Eqn, names: Mapping[Var, str]) -> str:
    """`%5 = max %4, 0.0 axes=(0)` — the equation without its type."""
    args = ", ".join(names.get(a, "%?") if isinstance(a, Var) else str(a) for a in eqn.inputs)
    params = " ".join(f"{k}={format_param(v)}" for k, v in eqn.prim.format_params(eqn.params))
    text = f"{names.get(eqn.out, '%?')} = {eqn.prim.name}"
    if args:
        text += " " + args
    if params:
        text += " " + params
    return text


def format_function(fn: Function, locations: bool = False) -> str:
    names = names_of(fn)
    sig = ", ".join(f"{names[p]}: {p.type}" for p in fn.params)
    outs = [str(r.type) for r in fn.results]
    ret = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"
    lines = [f"func @{fn.name}({sig}) -> {ret} {{"]
    bodies = [format_eqn(e, names) for e in fn.eqns]
    width = min(max((len(b) for b in bodies), default=0), 56)
    for eqn, body in zip(fn.eqns, bodies):
        line = f"  {body:<{width}} : {eqn.out.type}"
        if locations and eqn.loc is not None:
            line = f"{line:<{width + 20}}  # {eqn.loc}"
        lines.append(line)
    rets = ", ".join(names.get(r, "%?") if isinstance(r, Var) else str(r) for r in fn.results)
    lines.append(f"  return {rets}")
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# verifier


class VerifyError(AssertionError):
    """The IR broke one of its invariants (a bug in tracejit, never in the user's code)."""


def verify(fn: Function) -> Function:
    """Check SSA form and types; return `fn` unchanged or raise VerifyError.

    Invariants: every Var is defined once (as a parameter or an equation output) before it is
    used; every equation's output type is what its primitive's type rule computes from the
    input types and params; literals are scalars of a supported dtype.
    """
    defined: set[Var] = set()

    def use(atom, where):
        if isinstance(atom, Literal):
            if atom.value.shape != () or dtype_name(atom.value.dtype) not in DTYPES:
                raise VerifyError(f"{where}: bad literal {atom!r}")
        elif isinstance(atom, Var):
            if atom not in defined:
                raise VerifyError(f"{where}: {atom!r} used before it is defined")
        else:
            raise VerifyError(f"{where}: operand {atom!r} is neither a Var nor a Literal")

    for p in fn.params:
        if p in defined:
            raise VerifyError(f"parameter {p!r} listed twice")
        defined.add(p)
    names = names_of(fn)
    for i, eqn in enumerate(fn.eqns):
        where = f"@{fn.name} equation {i} ({format_eqn(eqn, names)})"
        for a in eqn.inputs:
            use(a, where)
        try:
            expected = eqn.prim.type_rule(*(a.type for a in eqn.inputs), **eqn.params)
        except Exception as exc:  # the rule rejects the operands
            raise VerifyError(f"{where}: {exc}") from exc
        if expected != eqn.out.type:
            raise VerifyError(f"{where}: output typed {eqn.out.type}, rule gives {expected}")
        if eqn.out in defined:
            raise VerifyError(f"{where}: {eqn.out!r} defined twice")
        defined.add(eqn.out)
    for r in fn.results:
        use(r, f"@{fn.name} return")
    return fn


def is_python_scalar(x: Any) -> bool:
    """A Python bool, int or float, and not a NumPy scalar (np.float64 subclasses float)."""
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)
