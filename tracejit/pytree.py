"""Pytrees: nested tuples, lists, dicts (and namedtuples, None) of arrays and numbers.

`flatten` turns a tree into its leaves and a hashable `TreeDef`; `unflatten` rebuilds it.
Dict keys are sorted, so {'b':..., 'a':...} and {'a':..., 'b':...} share one structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class TreeDef:
    """The structure of a pytree: a node kind, its static data, and its children."""

    kind: str                      # 'leaf', 'none', 'tuple', 'list', 'dict', 'namedtuple'
    meta: Any = None               # dict keys, or the namedtuple class
    children: tuple["TreeDef", ...] = ()

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __str__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(map(str, self.children))
        if self.kind == "dict":
            inner = ", ".join(f"{k!r}: {c}" for k, c in zip(self.meta, self.children))
            return "{" + inner + "}"
        if self.kind == "list":
            return f"[{inner}]"
        if self.kind == "namedtuple":
            return f"{self.meta.__name__}({inner})"
        return f"({inner}{',' if len(self.children) == 1 else ''})"


LEAF = TreeDef("leaf")


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """The leaves of `tree` in order, and its structure."""
    leaves: list[Any] = []

    def go(x) -> TreeDef:
        if x is None:
            return TreeDef("none")
        if _is_namedtuple(x):
            return TreeDef("namedtuple", type(x), tuple(go(v) for v in x))
        if isinstance(x, tuple):
            return TreeDef("tuple", None, tuple(go(v) for v in x))
        if isinstance(x, list):
            return TreeDef("list", None, tuple(go(v) for v in x))
        if isinstance(x, dict):
            try:
                keys = tuple(sorted(x))
            except TypeError:
                raise TypeError("pytree dict keys must be sortable (strings, or numbers)") \
                    from None
            return TreeDef("dict", keys, tuple(go(x[k]) for k in keys))
        leaves.append(x)
        return LEAF

    return leaves, go(tree)


def unflatten(treedef: TreeDef, leaves) -> Any:
    """Rebuild a tree of structure `treedef` from `leaves` (in flatten's order)."""
    it = iter(leaves)

    def go(t: TreeDef):
        if t.kind == "leaf":
            return next(it)
        if t.kind == "none":
            return None
        kids = [go(c) for c in t.children]
        if t.kind == "tuple":
            return tuple(kids)
        if t.kind == "list":
            return kids
        if t.kind == "namedtuple":
            return t.meta(*kids)
        return dict(zip(t.meta, kids))

    out = go(treedef)
    rest = list(it)
    assert not rest, f"{len(rest)} leaves left over for {treedef}"
    return out


def unflattener(treedef: TreeDef) -> Callable[[Sequence], Any]:
    """A function that does `unflatten(treedef, leaves)` fast: the tree's construction as one
    Python expression, compiled once (a jitted call rebuilds its results with it)."""
    names: dict[str, Any] = {}
    count = 0

    def expr(t: TreeDef) -> str:
        nonlocal count
        if t.kind == "leaf":
            count += 1
            return f"L[{count - 1}]"
        if t.kind == "none":
            return "None"
        kids = [expr(c) for c in t.children]
        if t.kind == "tuple":
            return f"({', '.join(kids)}{',' if len(kids) == 1 else ''})"
        if t.kind == "list":
            return f"[{', '.join(kids)}]"
        name = f"m{len(names)}"
        names[name] = t.meta
        if t.kind == "namedtuple":
            return f"{name}({', '.join(kids)})"
        return f"dict(zip({name}, ({', '.join(kids)}{',' if len(kids) == 1 else ''})))"

    body = expr(treedef)
    return eval(f"lambda L: {body}", names)  # noqa: S307 - built from the tree's own structure


def tree_map(fn, tree: Any, *rest: Any) -> Any:
    """Apply `fn` leafwise to one tree, or to several trees of the same structure."""
    leaves, treedef = flatten(tree)
    others = []
    for r in rest:
        ls, td = flatten(r)
        if td != treedef:
            raise ValueError(f"tree_map: structures differ: {treedef} and {td}")
        others.append(ls)
    return unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])
