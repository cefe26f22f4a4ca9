"""Saving and loading pytrees of arrays as .npz files, with their structure.

The structure is stored as JSON text beside the arrays, and files are read with
`allow_pickle=False`: loading runs nothing from the file. Writes are atomic (a temporary file
in the same folder, then `os.replace`), so a crash never leaves half a file behind.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .pytree import TreeDef, flatten, unflatten

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


def save(path: str | os.PathLike, tree: Any) -> None:
    """Save a pytree of arrays and numbers to `path` (.npz), atomically."""
    leaves, treedef = flatten(tree)
    arrays = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    for name, a in arrays.items():
        if a.dtype == object:
            raise TypeError(f"save: leaf {name[5:]} is not an array or a number")
    meta = json.dumps({"format": _FORMAT, "tree": _encode(treedef)})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    # Created as open(path, "wb") would create it: mode 0o666 less the umask (mkstemp's 0o600
    # would leave saved files readable by their owner only).
    tmp = os.path.join(folder, f".tmp-{os.urandom(8).hex()}.npz")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __tree__=np.array(meta), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Any:
    """Load a pytree saved by `save` (tuples, lists, dicts, None; arrays as NumPy arrays)."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        if "__tree__" not in data.files:
            raise ValueError(f"{path} was not written by tracejit.save (no structure record)")
        meta = json.loads(str(data["__tree__"]))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unknown format {meta.get('format')!r}")
        treedef = _decode(meta["tree"])
        leaves = [data[f"leaf_{i}"] for i in range(treedef.num_leaves)]
    return unflatten(treedef, leaves)
