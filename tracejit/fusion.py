"""The fusion planner: Function -> Program of Kernels.

Equations are visited in order and placed greedily:

- *views* (broadcast_in_dim, transpose, slice, reshape of a buffer) are not computed at all:
  they become index maps of the loads that read them, in every kernel that does;
- *sources* (a broadcast literal, iota, and scalar arithmetic on scalars that need no
  kernel, such as casting a learning rate) are recomputed inside every loop or dot kernel
  that uses them; one that must be a buffer too (a function result, the operand of a view
  or of a kernel of its own) also gets a kernel that writes it, but the kernels that
  recompute it keep doing so;
- an *elementwise* equation joins the loop kernel (or dot epilogue) that computes its operands
  over the same domain, merging several such kernels when that creates no cycle; it starts a
  new loop kernel otherwise;
- a *reduction* joins the loop kernel (or dot epilogue) computing its operand over the
  operand's domain when that kernel reduces over the same axes or not yet at all;
  elementwise work on its result over the kept axes joins the same kernel as an epilogue
  (but nothing computed over the whole domain can use it there);
- a *dot* starts a dot kernel; a loop kernel of elementwise work whose only use is this dot's
  operand becomes its prologue, and elementwise consumers of the dot's output its epilogue;
- gather, scatter_add, concatenate, pad, argmax and argmin are kernels of their own;
- finally, loop kernels over the same domain and reduction axes (or one reducing nothing)
  that read a common buffer and do not depend on each other merge into one multi-output
  kernel (sibling fusion).

Acyclicity, by construction: a source reads only literals, parameters, constants and other
sources, never a kernel's buffer, so recomputing it adds no edge to the kernel graph; each
group's `deps` are exactly the groups whose buffers it reads, and every merge is checked
(`can_merge`) not to close a path from the merged kernel back to itself.

The duplication policy: views and sources are duplicated into each consumer (they cost no
memory traffic, and at most one scalar operation); arithmetic on arrays is never duplicated:
a value used by two kernels is written once by its kernel and read by the other.
`fuse=False` makes every equation its own kernel (views become copy kernels): the unfused
baseline.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from . import primitives as P
from .ir import Eqn, Function, Literal, Type, Var
from .kernels import COPY, DOT, LOOP, IndexMap, Kernel, Load, Program


def _is_source(eqn: Eqn) -> bool:
    return eqn.prim is P.iota or (eqn.prim is P.broadcast_in_dim
                                  and isinstance(eqn.inputs[0], Literal))


@dataclass(eq=False)
class _Group:
    """A kernel being planned."""

    kind: str                                  # 'loop', 'dot', or a primitive name
    domain: tuple[int, ...]
    reduce_axes: tuple[int, ...] | None = None
    eqns: list[Eqn] = field(default_factory=list)
    full: set = field(default_factory=set)     # values computed at every domain point
    reduced: set = field(default_factory=set)  # reduction results (final in this kernel)
    deps: set = field(default_factory=set)     # groups whose buffers this one reads
    notes: list[str] = field(default_factory=list)
    alive: bool = True
    order: int = 0


class _Planner:
    def __init__(self, fn: Function, fuse: bool):
        self.fn = fn
        self.fuse = fuse
        self.group_of: dict[Var, _Group] = {}       # value computed in a group -> group
        self.view: dict[Var, tuple[Var, IndexMap]] = {}
        self.source: dict[Var, Eqn] = {}            # values recomputed where used
        self.constants: list[Eqn] = []
        self.buffers: set[Var] = set(fn.params)     # params and constants
        self.groups: list[_Group] = []
        self.uses: dict[Var, list[Eqn]] = {}
        for e in fn.eqns:
            for a in e.inputs:
                if isinstance(a, Var):
                    self.uses.setdefault(a, []).append(e)
        self.results = {r for r in fn.results if isinstance(r, Var)}
        self.counter = itertools.count()

    # -- groups ---------------------------------------------------------------------------------

    def new_group(self, kind: str, domain, reduce_axes=None) -> _Group:
        g = _Group(kind, tuple(domain), reduce_axes, order=next(self.counter))
        self.groups.append(g)
        return g

    def producer_groups(self, a, recompute: bool = True) -> set[_Group]:
        """The groups whose buffers reading `a` needs: through a view, its base's writer. A
        kernel that recomputes sources (`recompute`: loop and dot kernels) needs none for a
        source; any other reads the source's buffer."""
        if not isinstance(a, Var) or (recompute and a in self.source):
            return set()
        g = self.group_of.get(self.view[a][0] if a in self.view else a)
        return {g} if g is not None else set()

    def reaches(self, start: set[_Group], targets: set[_Group]) -> bool:
        """Is some group of `targets` among the (transitive) dependencies of `start`?"""
        seen, stack = set(), list(start)
        while stack:
            g = stack.pop()
            if g in targets:
                return True
            if g in seen:
                continue
            seen.add(g)
            stack.extend(g.deps)
        return False

    def can_merge(self, members: set[_Group], hard_deps: set[_Group]) -> bool:
        """Can `members` become one kernel together with an equation that reads `hard_deps`
        from memory? Not if that kernel would read its own output (a member depending on
        another, or the equation reading a member's buffer), nor if a path through another
        kernel leads from the merged kernel back to itself."""
        if hard_deps & members or any(g.deps & members for g in members):
            return False
        outside = set().union(hard_deps, *(g.deps for g in members)) - members
        return not self.reaches(outside, members)

    def merge(self, members: list[_Group]) -> _Group:
        target = min(members, key=lambda g: g.order)
        for g in members:
            if g is target:
                continue
            if g.kind == DOT:
                target.kind = DOT
            target.full |= g.full
            if g.reduce_axes is not None:
                target.reduce_axes = g.reduce_axes
            self.retire(g, into=target)
        return target

    def retire(self, g: _Group, into: _Group) -> None:
        """Move g's equations, reduction results, dependencies and notes into `into` (the
        caller decides the phase of g's whole-domain values) and drop g."""
        into.eqns.extend(g.eqns)
        into.reduced |= g.reduced
        into.deps |= g.deps
        into.notes += g.notes
        for e in g.eqns:
            self.group_of[e.out] = into
        g.alive = False
        for other in self.groups:
            if g in other.deps:
                other.deps = (other.deps - {g}) | {into}
        into.deps -= {into}
        into.eqns.sort(key=lambda e: self.position[e])

    def add(self, g: _Group, eqn: Eqn, full: bool = True):
        g.eqns.append(eqn)
        (g.full if full else g.reduced).add(eqn.out)
        self.group_of[eqn.out] = g
        recompute = g.kind in (LOOP, DOT)
        for a in eqn.inputs:
            if not self.internal(a, g):
                g.deps |= self.producer_groups(a, recompute) - {g}

    def internal(self, a, g: _Group) -> bool:
        return isinstance(a, Var) and self.group_of.get(a) is g and a not in self.view

    # -- placing equations ----------------------------------------------------------------------

    def place(self, eqn: Eqn):
        category = eqn.prim.category
        if eqn.prim is P.constant:
            self.constants.append(eqn)
            self.buffers.add(eqn.out)
            return
        if not self.fuse:
            return self.place_alone(eqn)
        if category is P.VIEW and isinstance(eqn.inputs[0], Var) and not _is_source(eqn):
            return self.place_view(eqn)
        if _is_source(eqn) or self.scalar_source(eqn):
            self.source[eqn.out] = eqn
            return
        if category is P.ELEMENTWISE:
            return self.place_elementwise(eqn)
        if category is P.REDUCTION and not eqn.prim.own_kernel:
            return self.place_reduction(eqn)
        if category is P.CONTRACTION:
            return self.place_dot(eqn)
        # A kernel of its own reads every operand from a buffer: give sources one.
        for a in eqn.inputs:
            self.materialise_source(self.view[a][0] if a in self.view else a)
        self.place_alone(eqn)

    def scalar_source(self, eqn: Eqn) -> bool:
        """Scalar work on scalars that need no kernel (parameters, constants, views of them,
        and other such scalars) is recomputed wherever it is used, like a source."""
        return eqn.prim.category is P.ELEMENTWISE and eqn.out.type.shape == () and all(
            isinstance(a, Literal) or a in self.buffers or a in self.source
            or (a in self.view and a.type.shape == () and self.view[a][0] in self.buffers)
            for a in eqn.inputs)

    def place_alone(self, eqn: Eqn):
        prim = eqn.prim
        reduction = prim.category is P.REDUCTION and not prim.own_kernel
        if prim.category is P.VIEW and not _is_source(eqn):
            kind = COPY
        elif prim.category is P.ELEMENTWISE or _is_source(eqn) or reduction:
            kind = LOOP
        elif prim.category is P.CONTRACTION:
            kind = DOT
        elif prim.own_kernel:
            kind = prim.name
        else:
            raise NotImplementedError(f"fusion has no kernel for the primitive {prim.name}")
        domain = eqn.inputs[0].type.shape if reduction else eqn.out.type.shape
        g = self.new_group(kind, domain, eqn.params["axes"] if reduction else None)
        self.add(g, eqn, full=not reduction)
        if not self.fuse:
            g.notes.append("fuse=False: one kernel per primitive")

    def place_view(self, eqn: Eqn):
        src = eqn.inputs[0]
        base, imap = self.view.get(src, (src, IndexMap.contiguous(src.type.shape)))
        self.materialise_source(base)      # a view of a source reads the source's buffer
        new = imap.apply(eqn)
        if new is None:
            # Not a strided view of the buffer (a reshape of a transposed view, say): copy.
            g = self.new_group(COPY, eqn.out.type.shape)
            self.add(g, eqn)
            g.notes.append(f"reshape of a non-contiguous view of {base.type} needs a copy")
            return
        self.view[eqn.out] = (base, new)

    def materialise_source(self, v) -> None:
        """Give source `v` (if it is one) a buffer: a kernel that writes it, once. It stays a
        source: the kernels that recompute it keep doing so, so none depends on the new kernel,
        which itself reads no kernel's buffer (a source never does)."""
        if v in self.source and v not in self.group_of:
            self.add(self.new_group(LOOP, v.type.shape), self.source[v])

    def candidates(self, eqn: Eqn) -> tuple[list[_Group], set[_Group], bool]:
        """The kernels that compute an operand of `eqn` at the same points (over their whole
        domain, or, for an epilogue, over the kept axes of their reduction), the kernels whose
        buffers `eqn` must read from memory instead (through a view, or from another domain),
        and whether the candidates are of the epilogue kind."""
        shape = eqn.out.type.shape
        found: list[tuple[_Group, bool]] = []
        hard: set[_Group] = set()
        for a in eqn.inputs:
            if not isinstance(a, Var) or a in self.source:
                continue
            g = self.group_of.get(a) if a not in self.view else None
            if g is not None and g.kind in (LOOP, DOT) and a in g.full and g.domain == shape:
                role = (g, False)
            elif (g is not None and g.kind in (LOOP, DOT) and a in g.reduced
                  and a.type.shape == shape):
                # An epilogue is over the kept axes: a reduction result used over the whole
                # domain (exp(x) - sum(exp(x))) must be read back from memory.
                role = (g, True)
            else:
                hard |= self.producer_groups(a)
                continue
            if role not in found:
                found.append(role)
        if not found:
            return [], hard, False
        # One kind of candidate only: the oldest one's. Epilogues join a single kernel, which
        # may absorb loop kernels of plain elementwise work over the same (kept) shape.
        post = min(found, key=lambda r: r[0].order)[1]
        chosen = [g for g, p in found if p == post]
        if post:
            chosen = [min(chosen, key=lambda g: g.order)] + [
                g for g, p in found if not p and g.kind == LOOP and g.reduce_axes is None]
        hard |= {g for g, _ in found if g not in chosen}
        return chosen, hard, post

    def place_elementwise(self, eqn: Eqn):
        shape = eqn.out.type.shape
        cands, hard, post = self.candidates(eqn)
        if post:
            g, *plain = cands
            if plain and self.can_merge({g, *plain}, hard):
                for h in plain:                  # their work now runs in g's epilogue
                    g.reduced |= h.full
                    self.retire(h, into=g)
                plain = []
            if self.can_merge({g}, hard | set(plain)):
                self.add(g, eqn, full=False)
                return
            g.notes.append(f"{eqn.prim.name} at {eqn.loc} not fused as an epilogue: it would "
                           "create a cycle")
            cands, hard = [], hard | {g, *plain}
        chosen: list[_Group] = []
        # Add candidates one at a time, oldest first, keeping each that still merges legally;
        # the candidates left out are read from memory like any other producer.
        for g in sorted(cands, key=lambda g: g.order):
            trial = chosen + [g]
            if self.compatible(trial, eqn) and self.can_merge(
                    set(trial), hard | (set(cands) - set(trial))):
                chosen = trial
        for g in cands:
            if g not in chosen:
                g.notes.append(f"{eqn.prim.name} at {eqn.loc} not fused: merging would create a "
                               f"cycle or mix incompatible kernels")
        if not chosen:
            g = self.new_group(LOOP, shape)
        else:
            g = self.merge(chosen) if len(chosen) > 1 else chosen[0]
        self.add(g, eqn)

    def compatible(self, groups: list[_Group], eqn: Eqn) -> bool:
        if sum(g.kind == DOT for g in groups) > 1:
            return False
        axes = {g.reduce_axes for g in groups if g.reduce_axes is not None}
        if len(axes) > 1:
            return False
        dot = next((g for g in groups if g.kind == DOT), None)
        if dot is not None:
            # A loop group may become part of a dot's epilogue only if the dot does not need it.
            others = {g for g in groups if g is not dot}
            if self.reaches(set(dot.deps), others):
                return False
        return True

    def place_reduction(self, eqn: Eqn):
        a = eqn.inputs[0]
        axes = eqn.params["axes"]
        g = self.group_of.get(a) if isinstance(a, Var) and a not in self.view else None
        # A loop kernel, or a dot's epilogue, computing the operand over its whole domain.
        if (g is not None and g.kind in (LOOP, DOT) and a in g.full
                and g.domain == a.type.shape and g.reduce_axes in (None, axes)):
            g.reduce_axes = axes
            self.add(g, eqn, full=False)
            return
        if g is not None and a in g.full and g.reduce_axes not in (None, axes):
            g.notes.append(f"{eqn.prim.name} axes={axes} at {eqn.loc} not fused: this kernel "
                           f"already reduces over axes {g.reduce_axes}")
        ng = self.new_group(LOOP, a.type.shape, axes)
        self.add(ng, eqn, full=False)

    def place_dot(self, eqn: Eqn):
        g = self.new_group(DOT, eqn.out.type.shape)
        # Prologue: an elementwise loop kernel whose every value used outside it is used only
        # as an operand of this dot.
        for a in eqn.inputs:
            if not isinstance(a, Var) or a in self.view or a in self.source:
                continue
            h = self.group_of.get(a)
            if (h is None or h.kind != LOOP or h.reduce_axes is not None
                    or h.domain != a.type.shape):
                continue
            external = [v for v in h.full if v in self.results or any(
                u not in h.eqns and u is not eqn for u in self.uses.get(v, []))]
            if (not external and all(u is eqn for u in self.uses.get(a, []))
                    and self.feeds(h, a)):
                h.kind = DOT
                h.domain = eqn.out.type.shape
                g.alive = False
                self.groups.remove(g)
                g = h
                g.full = set()          # prologue values are not over the dot's domain
                break
        self.add(g, eqn)

    def feeds(self, g: _Group, a: Var) -> bool:
        """Does every equation of `g` contribute to `a` (so all of `g` can be a prologue)?"""
        needed, producer = {a}, {e.out: e for e in g.eqns}
        stack = [a]
        while stack:
            e = producer.get(stack.pop())
            for v in (e.inputs if e is not None else ()):
                if isinstance(v, Var) and v in producer and v not in needed:
                    needed.add(v)
                    stack.append(v)
        return all(e.out in needed for e in g.eqns)

    # -- building kernels -----------------------------------------------------------------------

    def run(self) -> Program:
        self.position = {e: i for i, e in enumerate(self.fn.eqns)}
        for eqn in self.fn.eqns:
            self.place(eqn)
        # Function results that no kernel writes (views, sources, parameters) get a copy.
        for r in self.fn.results:
            if isinstance(r, Var) and r not in self.group_of and r not in self.buffers:
                if r in self.source:
                    self.materialise_source(r)
                else:
                    g = self.new_group(COPY, r.type.shape)
                    g.eqns = []
                    g.full.add(r)
                    self.group_of[r] = g
                    g.deps |= self.producer_groups(r)
        if self.fuse:
            self.merge_siblings()
        groups = [g for g in self.groups if g.alive]
        kernels = self.order([self.build(g, i) for i, g in enumerate(groups)])
        return Program(self.fn, tuple(kernels), tuple(self.constants), self.fuse)

    def reads(self, g: _Group) -> set[Var]:
        """The buffers (after views) that kernel `g` reads, through the sources it recomputes
        too."""
        out = set()

        def visit(a):
            if not isinstance(a, Var) or self.internal(a, g):
                return
            if a in self.source:
                for b in self.source[a].inputs:
                    visit(b)
            else:
                out.add(self.view[a][0] if a in self.view else a)

        for e in g.eqns:
            for a in e.inputs:
                visit(a)
        return out

    def merge_siblings(self):
        """Loop kernels over the same domain and reduction axes (or one reducing nothing) that
        read a common buffer and do not depend on each other become one multi-output kernel:
        one pass over the input."""
        changed = True
        while changed:
            changed = False
            loops = [g for g in self.groups if g.alive and g.kind == LOOP and g.eqns]
            for i, a in enumerate(loops):
                for b in loops[i + 1:]:
                    # A kernel that reduces nothing joins one that does: its values are
                    # full-domain outputs of the merged kernel.
                    same_axes = (a.reduce_axes == b.reduce_axes
                                 or a.reduce_axes is None or b.reduce_axes is None)
                    if (a.domain == b.domain and same_axes
                            and self.reads(a) & self.reads(b) and self.can_merge({a, b}, set())):
                        self.merge([a, b])
                        changed = True
                        break
                if changed:
                    break

    def needed_outside(self, g: _Group) -> list[Var]:
        computed = g.full | g.reduced | {e.out for e in g.eqns}
        out = []
        for v in sorted(computed, key=lambda v: v.uid):
            if v in self.results or any(u not in g.eqns for u in self.uses.get(v, [])):
                out.append(v)
        return out

    def build(self, g: _Group, index: int) -> Kernel:
        computed = {e.out for e in g.eqns}
        loads: list[Load] = []
        load_of: dict[tuple, Var] = {}
        body: list[Eqn] = []
        inlined: set[Var] = set()

        def operand(a):
            if isinstance(a, Literal) or a in computed or a in inlined:
                return a
            if a in self.source and g.kind in (LOOP, DOT):
                src = self.source[a]
                ins = tuple(operand(x) for x in src.inputs)
                body.append(src if ins == src.inputs else Eqn(src.prim, ins, src.out,
                                                              src.params, src.loc))
                inlined.add(a)
                return a
            base, imap = self.view.get(a, (a, IndexMap.contiguous(a.type.shape)))
            key = (base, imap)
            if key not in load_of:
                dst = Var(Type(imap.shape, a.type.dtype))
                loads.append(Load(dst, base, imap))
                load_of[key] = dst
            return load_of[key]

        for e in g.eqns:
            ins = tuple(operand(a) for a in e.inputs)
            body.append(e if ins == e.inputs else Eqn(e.prim, ins, e.out, e.params, e.loc))
        outputs = self.needed_outside(g)
        if g.kind == COPY and not g.eqns:
            # A function result that no kernel writes: the load's destination is the result.
            (r,) = g.full
            operand(r)
            loads[-1] = Load(r, loads[-1].src, loads[-1].imap)
            outputs = [r]
        elif g.kind == COPY:
            outputs = [g.eqns[0].out]
        reduce_axes = g.reduce_axes or ()
        return Kernel(f"k{index}", g.kind, g.domain, tuple(reduce_axes), tuple(loads),
                      tuple(body), tuple(outputs), tuple(g.eqns), tuple(g.notes))

    def order(self, kernels: list[Kernel]) -> list[Kernel]:
        """Topological order over buffers: each kernel after the writers of what it reads
        (depth first, in planning order). The plan is acyclic by construction (see the module
        docstring); a cycle would be a planner bug, reported as one rather than miscompiled."""
        writer = {v: k for k in kernels for v in k.outputs}

        def producers(k: Kernel):
            return iter([writer[v] for v in k.inputs if v in writer])

        done: set = set()
        out: list[Kernel] = []
        for root in kernels:
            path, on_path = [(root, producers(root))], {root}
            while path:
                k, todo = path[-1]
                p = next((p for p in todo if p not in done), None)
                if p is None:
                    path.pop()
                    on_path.discard(k)
                    if k not in done:
                        done.add(k)
                        out.append(k)
                elif p in on_path:
                    raise RuntimeError(
                        f"tracejit internal error: the fusion planner made a cycle among the "
                        f"kernels of {self.fn.name}; fuse=False avoids it (please report it)")
                else:
                    path.append((p, producers(p)))
                    on_path.add(p)
        return [Kernel(f"k{i}", k.kind, k.domain, k.reduce_axes, k.loads, k.body, k.outputs,
                       k.eqns, k.unfused) for i, k in enumerate(out)]


def plan(fn: Function, fuse: bool = True) -> Program:
    """Partition `fn` into Kernels (see the module docstring for the rules)."""
    return _Planner(fn, fuse).run()
