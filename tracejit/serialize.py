"""Saving and loading pytrees of arrays as .npz files, with their structure.

The structure is stored as JSON text beside the arrays, and files are read with
`allow_pickle=False`: loading runs nothing from the file. Only a regular file is read (opened
without blocking, then checked): a FIFO, a device or a folder is refused, never waited on.
Writes are atomic (a temporary file in the same folder, then `os.replace`), so a crash never
leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import numpy as np

from .files import NotRegularFile, atomic_write, open_regular
from .pytree import TreeDef, flatten, unflatten
from .tracer import check_array_class

_FORMAT = "tracejit-pytree-1"


def _encode(t: TreeDef):
    if t.kind == "leaf":
        return "*"
    if t.kind == "none":
        return None
    if t.kind == "dict":
        for k in t.meta:
            if not isinstance(k, str):
                raise TypeError(f"save: dict keys must be strings, got {k!r}")
        return {"dict": {k: _encode(c) for k, c in zip(t.meta, t.children)}}
    # namedtuples are stored as tuples: their class cannot be rebuilt without running code
    return {"list" if t.kind == "list" else "tuple": [_encode(c) for c in t.children]}


def _decode(obj) -> TreeDef:
    if obj == "*":
        return TreeDef("leaf")
    if obj is None:
        return TreeDef("none")
    (kind, body), = obj.items()
    if kind == "dict":
        keys = tuple(sorted(body))
        return TreeDef("dict", keys, tuple(_decode(body[k]) for k in keys))
    if kind in ("list", "tuple"):
        return TreeDef(kind, None, tuple(_decode(c) for c in body))
    raise ValueError(f"load: unknown node {kind!r}")


# What each leaf was when saved, so that it comes back as it went: a Python number as that
# number (`{"step": 300}` loads as 300, not array(300)), a NumPy scalar as a NumPy scalar.
_REBUILD = {
    "array": lambda a: a,
    "numpy": lambda a: a[()],
    "bool": lambda a: bool(a),
    "int": lambda a: int(a),
    "float": lambda a: float(a),
    "complex": lambda a: complex(a),
}


def _leaf_kind(leaf) -> str:
    if isinstance(leaf, np.generic):
        return "numpy"
    for kind, cls in (("bool", bool), ("int", int), ("float", float), ("complex", complex)):
        if isinstance(leaf, cls):       # bool before int: True is an int
            return kind
    return "array"


def _extension_dtype(a: np.ndarray) -> str | None:
    """The name of an ml_dtypes dtype (bfloat16, ...), which .npy stores as raw bytes ("V2")."""
    return a.dtype.name if a.dtype.type.__module__.startswith("ml_dtypes") else None


def _as_extension(a: np.ndarray, name: str, path) -> np.ndarray:
    """The raw bytes `a` seen as ml_dtypes' dtype `name` again."""
    try:
        import ml_dtypes
    except ImportError:
        raise ValueError(f"{path}: an array of {name} needs the package ml_dtypes to load "
                         "(pip install ml_dtypes)") from None
    dtype = getattr(ml_dtypes, name, None)
    if not (isinstance(dtype, type) and issubclass(dtype, np.generic)) or \
            np.dtype(dtype).itemsize != a.dtype.itemsize:
        raise ValueError(f"{path}: a damaged structure record (dtype {name!r})")
    return a.view(dtype)


def save(path: str | os.PathLike, tree: Any) -> None:
    """Save a pytree of arrays and numbers to `path` (.npz), atomically."""
    leaves, treedef = flatten(tree)
    for i, leaf in enumerate(leaves):
        check_array_class(leaf, f"save: leaf {i}")      # a mask or a class would be lost
    arrays = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    for name, a in arrays.items():
        if a.dtype == object:
            raise TypeError(f"save: leaf {name[5:]} is not an array or a number")
    meta = json.dumps({"format": _FORMAT, "tree": _encode(treedef),
                       "leaf_kinds": [_leaf_kind(leaf) for leaf in leaves],
                       "leaf_dtypes": {name[5:]: _extension_dtype(a) for name, a in
                                       arrays.items() if _extension_dtype(a)}})
    # Not private: a checkpoint gets the mode open(path, "wb") would give it.
    with atomic_write(path, private=False) as f:
        np.savez(f, __tree__=np.array(meta), **arrays)


@contextlib.contextmanager
def _archive(path: str):
    """The .npz archive at `path`, opened without pickles; ValueError for anything else (a
    FIFO, a device or a folder at once, never waited on)."""
    try:
        fd, _ = open_regular(path)
    except NotRegularFile as error:
        raise ValueError(f"load: {error}") from None
    with os.fdopen(fd, "rb") as file:
        try:
            data = np.load(file, allow_pickle=False)
        except ValueError as error:     # a pickle, or no format NumPy knows
            raise ValueError(f"{path} was not written by tracejit.save: {error}") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} was not written by tracejit.save (not an .npz archive)")
        with data:
            yield data


def load(path: str | os.PathLike) -> Any:
    """Load a pytree saved by `save` (tuples, lists, dicts, None; arrays as NumPy arrays,
    Python and NumPy numbers as they were saved). Pickled data is never loaded: ValueError."""
    with _archive(os.fspath(path)) as data:
        if "__tree__" not in data.files:
            raise ValueError(f"{path} was not written by tracejit.save (no structure record)")
        meta = json.loads(str(data["__tree__"]))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unknown format {meta.get('format')!r}")
        treedef = _decode(meta["tree"])
        kinds = meta.get("leaf_kinds") or ["array"] * treedef.num_leaves
        if len(kinds) != treedef.num_leaves or any(k not in _REBUILD for k in kinds):
            raise ValueError(f"{path}: a damaged structure record (leaf kinds {kinds!r})")
        extension = meta.get("leaf_dtypes") or {}
        if not isinstance(extension, dict):
            raise ValueError(f"{path}: a damaged structure record (leaf dtypes)")
        leaves = [_REBUILD[k](_as_extension(data[f"leaf_{i}"], extension[str(i)], path)
                              if str(i) in extension else data[f"leaf_{i}"])
                  for i, k in enumerate(kinds)]
    return unflatten(treedef, leaves)
