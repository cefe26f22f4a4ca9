"""np.einsum and np.einsum_path on tracers.

Every form NumPy accepts: subscripts strings, explicit ('ij,jk->ik') or implicit ('ij,jk'),
with ellipses ('...ij,...jk') and repeated indices within an operand ('ii->i', 'iij->ij'), and
the sublist form (`np.einsum(a, [0, 1], b, [1, 2], [0, 2])`). The parsing, the implicit output
and the errors are those of NumPy's C implementation (which np.einsum runs with the default
optimize=False).

The work is done with the traced operations, whose VJPs give the gradients:

1. each operand first loses its repeated indices (a diagonal: the repeated axes, moved last and
   flattened, sliced with the stride that steps along the diagonal), its size-1 axes that
   broadcast against a longer one elsewhere (it is constant along them), and the indices that
   no other operand and not the output has (summed);
2. the operands are contracted pairwise with the `dot` primitive (common indices that are
   still needed are its batch axes, the others are contracted), in an order chosen by cost
   (`_contract`); optimize= other than False asks NumPy's own np.einsum_path for the sequence
   of contractions (greedy, optimal, a memory limit or an explicit path, followed exactly);
3. the result is transposed to the output's order.

Booleans are multiplied and summed as integers and compared with 0 at the end: NumPy's
einsum on booleans is the logical or of ands.
"""

from __future__ import annotations

import itertools
import math
import operator

import numpy as np

from .. import errors, ops
from ..tracer import Tracer
from ._common import (as_operand, check_casting, check_dtype, check_order, convert, implements,
                      strong, unsupported)
from .ufuncs import result_dtype

#: The 52 labels, in NumPy's order: the sublist integer i is _SYMBOLS[i], and implicit outputs
#: are sorted in this (ASCII) order.
_SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: Labels are ints: 0-51 are the letters of _SYMBOLS, _ELLIPSIS + p is the p-th broadcast
#: dimension of the ellipses (counted from the left of the longest one).
_ELLIPSIS = len(_SYMBOLS)

#: Up to this many operands in one contraction step, the pairwise order is searched exactly;
#: beyond, it is chosen greedily.
_EXACT_SEARCH_MAX = 8


def _label_name(label: int) -> str:
    """How a label is named in messages."""
    if label < _ELLIPSIS:
        return repr(_SYMBOLS[label])
    return f"'...' dimension {label - _ELLIPSIS}"


# ---------------------------------------------------------------------------------------------
# parsing: operands and their subscripts as lists of labels (Ellipsis where '...' is)


def _parse_term(term: str, where: str) -> list:
    """One term of a subscripts string as labels, with Ellipsis for '...'."""
    out: list = []
    i = 0
    while i < len(term):
        c = term[i]
        if c == ".":
            if term[i:i + 3] != "..." or Ellipsis in out:
                raise errors.user_error(
                    ValueError, f"einstein sum subscripts string contains a '.' that is not "
                    f"part of an ellipsis ('...') {where}")
            out.append(Ellipsis)
            i += 3
            continue
        if c not in _SYMBOLS:
            raise errors.user_error(
                ValueError, f"invalid subscript {c!r} in einstein sum subscripts string, "
                "subscripts must be letters")
        out.append(_SYMBOLS.index(c))
        i += 1
    return out


def _parse_string(subscripts: str, n_operands: int) -> tuple[list, list | None]:
    """(input terms, output term or None in implicit mode) of a subscripts string."""
    spec = subscripts.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    if not arrow and ("-" in spec or ">" in spec):
        raise errors.user_error(ValueError, "einstein sum subscript string does not contain "
                                "proper '->' output specified")
    terms = lhs.split(",")
    if len(terms) < n_operands:
        raise errors.user_error(ValueError, "more operands provided to einstein sum function "
                                "than specified in the subscripts string")
    if len(terms) > n_operands:
        raise errors.user_error(ValueError, "fewer operands provided to einstein sum function "
                                "than specified in the subscripts string")
    inputs = [_parse_term(t, f"in operand {i}") for i, t in enumerate(terms)]
    output = _parse_term(rhs, "in the output") if arrow else None
    return inputs, output


def _parse_sublist(sub) -> list:
    """A subscripts list of the sublist form as labels, with Ellipsis for Ellipsis."""
    if not isinstance(sub, (list, tuple, np.ndarray)):
        raise errors.user_error(TypeError, "the subscripts for each operand must be a list or "
                                "a tuple")
    out: list = []
    for s in sub:
        if s is Ellipsis:
            if Ellipsis in out:
                raise errors.user_error(ValueError, "each subscripts list may have only one "
                                        "ellipsis")
            out.append(Ellipsis)
            continue
        if isinstance(s, Tracer):
            raise errors.user_error(errors.ConcretizationError, "einsum subscripts must be "
                                    "static integers, not traced values")
        if isinstance(s, (bool, np.bool_)):
            raise errors.user_error(TypeError, "each subscript must be either an integer or "
                                    "an ellipsis")
        try:
            label = operator.index(s)
        except TypeError:
            raise errors.user_error(TypeError, "each subscript must be either an integer or "
                                    "an ellipsis") from None
        if not 0 <= label < _ELLIPSIS:
            raise errors.user_error(ValueError, f"subscript is not within the valid range "
                                    f"[0, {_ELLIPSIS})")
        out.append(label)
    return out


def _parse(args: tuple) -> tuple[list, list, list | None]:
    """(operands, input terms, output term or None) of einsum's positional arguments."""
    if args and isinstance(args[0], str):
        operands = list(args[1:])
        inputs, output = _parse_string(args[0], len(operands))
        return operands, inputs, output
    if len(args) < 2:
        raise errors.user_error(ValueError, "must provide at least an operand and a subscripts "
                                "list to einsum")
    n = len(args) // 2
    operands = list(args[0:2 * n:2])
    inputs = [_parse_sublist(s) for s in args[1:2 * n:2]]
    output = _parse_sublist(args[-1]) if len(args) % 2 else None
    return operands, inputs, output


def _expand(inputs: list, output: list | None, shapes: list, optimize_false: bool):
    """The terms with the ellipses replaced by broadcast labels, and the output (built in
    implicit mode: the ellipsis dimensions, then the labels that occur once, sorted)."""
    counts = []
    for i, (term, shape) in enumerate(zip(inputs, shapes)):
        named = len(term) - (Ellipsis in term)
        if named > len(shape):
            raise errors.user_error(ValueError, f"einstein sum subscripts string contains too "
                                    f"many subscripts for operand {i}")
        if Ellipsis not in term and named < len(shape):
            raise errors.user_error(
                ValueError, "operand has more dimensions than subscripts given in einstein sum, "
                "but no '...' ellipsis provided to broadcast the extra dimensions.")
        counts.append(len(shape) - named)
    ndim = max(counts, default=0)
    terms = []
    for term, count in zip(inputs, counts):
        # An operand's ellipsis dimensions are the last `count` of the broadcast ones.
        dims = [_ELLIPSIS + ndim - count + j for j in range(count)]
        expanded = []
        for label in term:
            expanded.extend(dims if label is Ellipsis else [label])
        terms.append(expanded)
    ellipsis_labels = list(range(_ELLIPSIS, _ELLIPSIS + ndim))
    if output is None:
        flat = [label for term in terms for label in term if label < _ELLIPSIS]
        once = sorted(label for label in set(flat) if flat.count(label) == 1)
        return terms, ellipsis_labels + once
    if Ellipsis not in output and ndim and optimize_false:
        # NumPy's C einsum refuses to drop them; its optimized einsum sums them.
        raise errors.user_error(
            ValueError, "output has more dimensions than subscripts given in einstein sum, but "
            "no '...' ellipsis provided to broadcast the extra dimensions.")
    out = []
    for label in output:
        out.extend(ellipsis_labels if label is Ellipsis else [label])
    seen = {label for term in terms for label in term}
    for label in out:
        if out.count(label) > 1:
            raise errors.user_error(ValueError, f"einstein sum subscripts string includes "
                                    f"output subscript {_label_name(label)} multiple times")
        if label not in seen:
            raise errors.user_error(
                ValueError, f"einstein sum subscripts string included output subscript "
                f"{_label_name(label)} which never appeared in an input")
    return terms, out


def _sizes(terms: list, shapes: list) -> dict[int, int]:
    """The size of every label: equal within an operand, and equal or 1 (which broadcasts)
    across operands, as NumPy has them."""
    sizes: dict[int, int] = {}
    for i, (term, shape) in enumerate(zip(terms, shapes)):
        own: dict[int, int] = {}
        for label, n in zip(term, shape):
            if own.setdefault(label, n) != n:
                raise errors.user_error(
                    errors.ShapeError, f"dimensions in operand {i} for collapsing index "
                    f"{_label_name(label)} don't match ({own[label]} != {n})")
        for label, n in own.items():
            known = sizes.setdefault(label, n)
            if known == 1:
                sizes[label] = n
            elif n not in (1, known):
                raise errors.user_error(
                    errors.ShapeError, f"einsum: operands could not be broadcast together: "
                    f"{_label_name(label)} has size {known} and size {n} (operand {i}: "
                    f"shape {tuple(shape)})")
    return sizes


# ---------------------------------------------------------------------------------------------
# the order of the contractions


def _path(optimize, terms: list, output: list, shapes: list) -> list[tuple[int, ...]]:
    """The contraction steps, as np.einsum_path gives them: each step contracts the operands
    at the given positions of the current list into one, appended at its end."""
    n = len(terms)
    if optimize is False:
        return [tuple(range(n))]                      # one step: `_contract` orders the pairs
    labels = sorted({label for term in terms for label in term})
    if len(labels) > len(_SYMBOLS):
        raise errors.user_error(ValueError, f"einsum with optimize={optimize!r}: more than "
                                f"{len(_SYMBOLS)} distinct indices (use optimize=False)")
    # The subscripts with a letter for each label, and shape-only stand-ins for the operands
    # (broadcast views of one element: nothing is allocated).
    symbol = dict(zip(labels, _SYMBOLS))
    subscripts = (",".join("".join(symbol[label] for label in term) for term in terms) + "->"
                  + "".join(symbol[label] for label in output))
    stand_ins = [np.broadcast_to(np.empty((), np.float64), shape) for shape in shapes]
    try:
        path = np.einsum_path(subscripts, *stand_ins, optimize=optimize)[0]
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as exc:
        raise errors.user_error(type(exc), f"einsum with optimize={optimize!r}: {exc}") from None
    steps = [tuple(int(p) for p in step) for step in path[1:]]
    for step in steps:
        if len(set(step)) != len(step):
            raise errors.user_error(ValueError, f"einsum: the contraction {step} of the path "
                                    f"{optimize!r} names an operand twice")
    return steps


def _kept(group: frozenset, labels: list[frozenset], keep: frozenset) -> frozenset:
    """The labels that the contraction of the operands in `group` must keep: those that the
    other operands of the step or `keep` (the output and the other operands) have."""
    mine = frozenset().union(*(labels[i] for i in group))
    others = frozenset().union(*(labels[i] for i in range(len(labels)) if i not in group))
    return mine & (others | keep)


def _size(labels, sizes: dict[int, int]) -> int:
    return math.prod(sizes[label] for label in labels)


def _plan(labels: list[frozenset], keep: frozenset, sizes: dict[int, int]):
    """The pairwise contraction tree of operands with `labels`: an int (an operand) or a pair
    of trees. Up to _EXACT_SEARCH_MAX operands, the tree of least total work (the product of
    the sizes of all indices of each pairwise contraction), then of smallest largest
    intermediate, over all trees (dynamic programming over the subsets); beyond, greedily the
    pair with the smallest result (then the least work), as opt_einsum's greedy does."""
    n = len(labels)
    leaves = [frozenset([i]) for i in range(n)]
    kept = {leaf: labels[i] for i, leaf in enumerate(leaves)}

    def kept_of(group):
        if group not in kept:
            kept[group] = _kept(group, labels, keep)
        return kept[group]

    if n <= _EXACT_SEARCH_MAX:
        # best[group] = (work, largest intermediate, tree), for every subset by size.
        best = {leaf: (0, 0, i) for i, leaf in enumerate(leaves)}
        for size in range(2, n + 1):
            for members in itertools.combinations(range(n), size):
                group = frozenset(members)
                first, rest = members[0], members[1:]
                choice = None
                # The splits in two, the part with the first member on the left.
                for k in range(len(rest)):
                    for others in itertools.combinations(rest, k):
                        a = frozenset((first,) + others)
                        b = group - a
                        wa, ma, ta = best[a]
                        wb, mb, tb = best[b]
                        work = wa + wb + _size(kept_of(a) | kept_of(b), sizes)
                        largest = max(ma, mb, _size(kept_of(group), sizes))
                        if choice is None or (work, largest) < choice[:2]:
                            choice = (work, largest, (ta, tb))
                best[group] = choice
        return best[frozenset(range(n))][2]

    def cost(pair):
        # (the size of the result, the work of the contraction)
        a, b = pair
        return (_size(kept_of(a | b), sizes), _size(kept_of(a) | kept_of(b), sizes))

    trees = {leaf: i for i, leaf in enumerate(leaves)}           # group -> its tree
    while len(trees) > 1:
        a, b = min(itertools.combinations(sorted(trees, key=min), 2), key=cost)
        trees[a | b] = (trees.pop(a), trees.pop(b))
    return next(iter(trees.values()))


# ---------------------------------------------------------------------------------------------
# the operations


def _sum_out(x, term: tuple, needed) -> tuple:
    """x with the axes whose labels are not `needed` summed away."""
    axes = tuple(i for i, label in enumerate(term) if label not in needed)
    if not axes:
        return x, term
    return ops.reduce_sum(x, axes), tuple(label for label in term if label in needed)


def _diagonals(x, term: list) -> tuple:
    """x with each repeated label's axes replaced by their diagonal, as the last axis: the
    axes, moved last and flattened, sliced with the stride that steps from one diagonal
    element to the next (1 + n + n**2 + ... for k axes of size n)."""
    term = list(term)
    for label in dict.fromkeys(term):
        k = term.count(label)
        if k == 1:
            continue
        axes = [i for i, lab in enumerate(term) if lab == label]
        rest = [i for i, lab in enumerate(term) if lab != label]
        x = ops.transpose(x, tuple(rest + axes))
        shape = ops.type_of(x).shape
        n = shape[-1]
        lead = shape[:len(rest)]
        x = ops.reshape(x, lead + (n ** k,))
        step = max(sum(n ** j for j in range(k)), 1)
        x = ops.slice(x, (0,) * (len(lead) + 1), (1,) * len(lead) + (step,), lead + (n,))
        term = [term[i] for i in rest] + [label]
    return x, tuple(term)


def _squeeze_broadcast(x, term: tuple, sizes: dict[int, int]) -> tuple:
    """x without its size-1 axes whose label is longer elsewhere: it is constant along them,
    and the other operands bring the label (NumPy broadcasts these)."""
    shape = ops.type_of(x).shape
    drop = [i for i, label in enumerate(term) if shape[i] == 1 and sizes[label] != 1]
    if not drop:
        return x, term
    keep = [i for i in range(len(term)) if i not in drop]
    return (ops.reshape(x, tuple(shape[i] for i in keep)),
            tuple(term[i] for i in keep))


def _dot_pair(a, b, keep: frozenset) -> tuple:
    """The contraction of a = (x, term) and b with the `dot` primitive, keeping the labels in
    `keep`: the common labels that are kept are batch axes, the other common ones are
    contracted, and the labels of only one side that are not kept are summed first."""
    (x, tx), (y, ty) = a, b
    x, tx = _sum_out(x, tx, keep | set(ty))
    y, ty = _sum_out(y, ty, keep | set(tx))
    common = [label for label in tx if label in ty]
    batch = [label for label in common if label in keep]
    contract = [label for label in common if label not in keep]
    result = ops.dot(x, y, (tuple(tx.index(c) for c in contract),
                            tuple(ty.index(c) for c in contract)),
                     (tuple(tx.index(c) for c in batch), tuple(ty.index(c) for c in batch)))
    term = (tuple(batch) + tuple(label for label in tx if label not in common)
            + tuple(label for label in ty if label not in common))
    return result, term


def _contract(items: list, keep: frozenset, sizes: dict[int, int]) -> tuple:
    """The operands `items` ((x, term) pairs) contracted into one that has the labels of
    theirs that are in `keep`, pairwise in the order `_plan` chooses."""
    if len(items) == 1:
        return _sum_out(*items[0], keep)
    labels = [frozenset(term) for _, term in items]

    def run(tree):
        if isinstance(tree, int):
            return items[tree]
        left, right = tree
        return _dot_pair(run(left), run(right), _kept(_members(tree), labels, keep))

    return run(_plan(labels, keep, sizes))


def _members(tree) -> frozenset:
    """The operands of a contraction tree."""
    if isinstance(tree, int):
        return frozenset([tree])
    return _members(tree[0]) | _members(tree[1])


@implements(np.einsum)
def einsum(*operands, out=None, optimize=False, dtype=None, order="K", casting="safe",
           **kwargs):
    """numpy.einsum: subscripts strings (explicit or implicit, with ellipses and repeated
    indices) and the sublist form, with dtype=, casting=, order= and optimize= (False, True,
    'greedy', 'optimal', ('greedy', memory_limit) or an explicit path: the order of the
    contractions, not their result)."""
    if kwargs:
        raise errors.user_error(TypeError, f"einsum() got an unexpected keyword argument "
                                f"{next(iter(kwargs))!r}")
    if out is not None:
        raise unsupported("numpy.einsum", "out", why="traced arrays are immutable; use the "
                          "returned value")
    check_order("numpy.einsum", order)
    arrays, inputs, output = _parse(operands)
    arrays = [strong(as_operand(x)) for x in arrays]
    shapes = [tuple(ops.type_of(x).shape) for x in arrays]
    terms, output = _expand(inputs, output, shapes, optimize is False)
    sizes = _sizes(terms, shapes)
    steps = _path(optimize, terms, output, shapes)

    if len(arrays) == 1 and set(terms[0]) <= set(output):
        # NumPy returns a view of a single operand that loses no index (a transpose, a
        # diagonal): of its own dtype, whatever dtype= and casting= say.
        dtype, casting = None, "unsafe"
    target = check_dtype(dtype) if dtype is not None else result_dtype(*arrays)
    check_casting(arrays, target, casting)
    # Booleans: the sum of products as integers, then != 0 (or of ands).
    work = "i64" if target == "bool" else target
    items = []
    for j, (x, term) in enumerate(zip(arrays, terms)):
        x = convert(x, target)
        if work != target:
            x = ops.cast(x, work)
        x, term = _diagonals(x, term)
        x, term = _squeeze_broadcast(x, term, sizes)
        elsewhere = set(output).union(*(t for i, t in enumerate(terms) if i != j))
        items.append(_sum_out(x, term, elsewhere))

    for step in steps:
        # As NumPy: the operands of the step leave the list, their contraction goes last.
        group = [items[i] for i in step]
        items = [item for i, item in enumerate(items) if i not in step]
        keep = frozenset(output).union(*(term for _, term in items))
        items.append(_contract(group, keep, sizes))
    (result, term), = items
    result, term = _sum_out(result, term, set(output))
    result = ops.transpose(result, tuple(term.index(label) for label in output))
    if work != target:
        result = ops.ne(result, 0)
    return result


@implements(np.einsum_path)
def einsum_path(*operands, optimize="greedy", einsum_call=False):
    """numpy.einsum_path: it only needs the operands' shapes, so NumPy's own computes it on
    stand-ins of the traced operands' shapes and dtypes (the path and its description)."""
    if einsum_call:
        raise unsupported("numpy.einsum_path", "einsum_call", why="it is NumPy's internal "
                          "option of np.einsum")
    stand_ins = [np.broadcast_to(np.empty((), ops.type_of(x).np_dtype), x.shape)
                 if isinstance(x, Tracer) else x for x in operands]
    try:
        return np.einsum_path(*stand_ins, optimize=optimize)
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as exc:
        raise errors.user_error(type(exc), str(exc)) from None
