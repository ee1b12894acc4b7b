"""Bound inference: the range of every iteration variable of every stage.

A stage at the root computes its whole tensor. A stage computed at loop ``X`` of stage ``S``
computes only the region its consumers read during one iteration of ``X``: the loops that
enclose ``X`` are fixed, every loop inside ``X`` (and every loop of a consumer nested there)
ranges over its extent. Shared buffers are filled by all threads of a block, so thread
indices are relaxed for them; global buffers relax block indices too.
"""
from __future__ import annotations

from ..errors import LoweringError
from ..tensor import ComputeOp
from ..tir import expr as E
from ..tir.arith import Analyzer
from ..tir.functor import Visitor, substitute
from .schedule import Split


class StageInfo:
    """Facts about the schedule that lowering needs, computed once."""

    def __init__(self, sch, bodies: dict):
        self.sch = sch
        self.bodies = bodies                      # stage -> tuple of (inlined) body exprs
        self.stages = [st for st in sch.stages if isinstance(st.op, ComputeOp) and st.attach_type != "inline"]
        self.ranges: dict = {}                    # IterVar -> Range
        self.analyzer = Analyzer()
        self.reads = {st: _reads(sch, bodies[st]) for st in self.stages}

    # ------------------------------------------------------------------ attachment helpers
    def enclosing(self, stage, ivar) -> list:
        """Leaf IterVars of the loops that enclose loop ``ivar`` of ``stage`` (inclusive), outer first."""
        out = []
        while stage is not None:
            pos = _index(stage.leaf_iter_vars, ivar)
            out = stage.leaf_iter_vars[:pos + 1] + out
            if stage.attach_type != "scope":
                break
            stage, ivar = stage.attach_stage, stage.attach_ivar
        return out

    def storage_scope(self, st) -> str:
        """Where a stage's result lives: its set_scope, else chosen by where it is attached."""
        if st.scope:
            return st.scope
        if st.attach_type != "scope":
            return "global"
        tags = [self.thread_tag(v) for v in self.enclosing(st.attach_stage, st.attach_ivar)]
        if any(t.startswith("threadIdx") for t in tags):
            return "local"
        if any(t.startswith("blockIdx") for t in tags):
            return "shared"
        return "global"

    def thread_tag(self, ivar) -> str:
        for st in self.stages:
            attr = st.iter_attrs.get(ivar)
            if attr is not None and attr.bind is not None:
                return attr.bind.thread_tag
        return ""

    # ------------------------------------------------------------------ inference
    def infer(self) -> dict:
        """Fill ``self.ranges`` for all stages, consumers before producers."""
        for st in reversed(self.stages):
            op = st.op
            if st.attach_type == "scope":
                region = self._needed_region(st)
            else:
                region = [E.Range(E.const(0), s) for s in op.shape]
            for iv, r in zip(op.axis, region):
                self._set(iv, r)
            for iv in op.reduce_axis:
                self._set(iv, iv.dom)
            self._pass_down(st)
        return self.ranges

    def _set(self, iv, rng):
        self.ranges[iv] = rng
        # loops are emitted from 0; the iteration variable's value is loop_var + min
        self.analyzer.bind_range(iv.var, E.Range(E.const(0), rng.extent))

    def leaf_value(self, iv):
        """The value of leaf ``iv`` in terms of its (zero-based) loop variable."""
        r = self.ranges[iv]
        return iv.var if E.is_const_int(r.min, 0) else E.Add(iv.var, r.min)

    def _pass_down(self, st):
        an = self.analyzer
        for rel in st.relations:
            if isinstance(rel, Split):
                ext = self.ranges[rel.parent].extent
                if rel.factor is not None:
                    inner = rel.factor
                    outer = an.simplify(E.FloorDiv(E.Add(ext, E.Sub(inner, E.const(1))), inner))
                else:
                    outer = rel.nparts
                    inner = an.simplify(E.FloorDiv(E.Add(ext, E.Sub(outer, E.const(1))), outer))
                self._set(rel.outer, E.Range(E.const(0), outer))
                self._set(rel.inner, E.Range(E.const(0), inner))
            else:
                ext = an.simplify(E.Mul(self.ranges[rel.outer].extent, self.ranges[rel.inner].extent))
                self._set(rel.fused, E.Range(E.const(0), ext))

    def root_values(self, st, leaf_value) -> dict:
        """Expression of every IterVar of ``st`` given ``leaf_value[leaf]`` for its leaves."""
        value = dict(leaf_value)
        for rel in reversed(st.relations):
            if isinstance(rel, Split):
                factor = rel.factor if rel.factor is not None else self.ranges[rel.inner].extent
                value[rel.parent] = E.Add(E.Add(E.Mul(value[rel.outer], factor), value[rel.inner]),
                                          self.ranges[rel.parent].min)
            else:
                ext_in = self.ranges[rel.inner].extent
                value[rel.outer] = E.Add(E.FloorDiv(value[rel.fused], ext_in), self.ranges[rel.outer].min)
                value[rel.inner] = E.Add(E.FloorMod(value[rel.fused], ext_in), self.ranges[rel.inner].min)
        return value

    def _leaf_interval(self, iv, fixed: set):
        if iv in fixed:
            v = self.leaf_value(iv)
            return (v, v)
        r = self.ranges[iv]
        return (r.min, E.Sub(E.Add(r.min, r.extent), E.const(1)))

    def _root_intervals(self, st, fixed: set) -> dict:
        """Interval of each root IterVar of ``st`` with the leaves in ``fixed`` held constant."""
        itv = {lv: self._leaf_interval(lv, fixed) for lv in st.leaf_iter_vars}
        for rel in reversed(st.relations):
            if isinstance(rel, Split):
                factor = rel.factor if rel.factor is not None else self.ranges[rel.inner].extent
                (o0, o1), (i0, i1) = itv[rel.outer], itv[rel.inner]
                pr = self.ranges[rel.parent]
                lo = E.Add(E.Add(E.Mul(o0, factor), i0), pr.min)
                if o0 is o1 and i0 is i1:
                    itv[rel.parent] = (lo, lo)  # a point stays one object, so a fuse above sees it fixed
                    continue
                last = E.Sub(E.Add(pr.min, pr.extent), E.const(1))
                itv[rel.parent] = (lo, E.Min(E.Add(E.Add(E.Mul(o1, factor), i1), pr.min), last))
            else:
                (f0, f1) = itv[rel.fused]
                ext_in = self.ranges[rel.inner].extent
                if f0 is f1:
                    itv[rel.outer] = (E.Add(E.FloorDiv(f0, ext_in), self.ranges[rel.outer].min),) * 2
                    itv[rel.inner] = (E.Add(E.FloorMod(f0, ext_in), self.ranges[rel.inner].min),) * 2
                else:
                    for iv in (rel.outer, rel.inner):
                        r = self.ranges[iv]
                        itv[iv] = (r.min, E.Sub(E.Add(r.min, r.extent), E.const(1)))
        root = list(st.op.axis) + list(st.op.reduce_axis)
        return {iv.var: itv[iv] for iv in root}

    def _needed_region(self, st) -> list:
        parent, ivar = st.attach_stage, st.attach_ivar
        scope = self.storage_scope(st)
        fixed = set()
        for iv in self.enclosing(parent, ivar):
            tag = self.thread_tag(iv)
            if scope == "shared" and (tag.startswith("threadIdx") or tag.startswith("vthread")):
                continue
            if scope == "global" and tag:
                continue
            fixed.add(iv)
        consumers = [c for c in self.stages if st in self.reads[c]]
        if not consumers:
            raise LoweringError(f"stage {st.name} is computed at {parent.name} but nothing reads it")
        relax = {}
        for other in self.stages:
            for lv in other.leaf_iter_vars:
                if lv not in fixed and lv in self.ranges:
                    relax[lv.var] = self._leaf_interval(lv, fixed)
        an = self.analyzer
        ndim = len(st.op.shape)
        lo = [None] * ndim
        hi = [None] * ndim
        for c in consumers:
            self._check_inside(st, c)
            dom = self._root_intervals(c, fixed)
            for indices in self.reads[c][st]:
                for k, idx in enumerate(indices):
                    res = an.interval(idx, dom)
                    res = None if res is None else self._relax_fully(res, relax)
                    res = _prefer_tile(an, res, self._leaf_interval_of(c, idx, fixed, relax), st.op.shape[k])
                    if res is None:
                        lo[k] = hi[k] = _FULL
                        continue
                    if lo[k] is _FULL:
                        continue
                    lo[k] = res[0] if lo[k] is None else an.simplify(E.Min(lo[k], res[0]))
                    hi[k] = res[1] if hi[k] is None else an.simplify(E.Max(hi[k], res[1]))
        region = []
        for k, shape_k in enumerate(st.op.shape):
            full = E.Range(E.const(0), shape_k)
            if lo[k] is _FULL or lo[k] is None:
                region.append(full)
                continue
            ext = an.simplify(E.Add(E.Sub(hi[k], lo[k]), E.const(1)))
            if not isinstance(ext, E.IntImm):
                bound = self._extent_bound(hi[k], lo[k])
                if bound is None:
                    if isinstance(shape_k, E.IntImm):
                        region.append(full)
                        continue
                    raise LoweringError(
                        f"cannot bound the region of {st.name} (axis {k}) needed inside "
                        f"{parent.name}.{ivar.var.name}: extent {ext}")
                ext = E.const(bound)
            if isinstance(shape_k, E.IntImm) and ext.value >= shape_k.value:
                region.append(full)
                continue
            region.append(E.Range(lo[k], ext))
        return region

    def _leaf_interval_of(self, c, idx, fixed: set, relax: dict):
        """The interval of consumer ``c``'s index ``idx`` taken over its leaf loops rather than
        its root axes, when that has a constant extent. Root axes that a fuse split apart
        (``n, oh, ow`` of a pixel loop ``p``) vary together: ``(n * OH + oh) * OW + ow``
        simplifies back to ``p``, whose tile is exact, where the root intervals give every
        pixel of the image."""
        an = self.analyzer
        values = self.root_values(c, {lv: self.leaf_value(lv) for lv in c.leaf_iter_vars})
        expr = an.simplify(substitute(idx, {iv.var: values[iv] for iv in list(c.op.axis) + list(c.op.reduce_axis)}))
        dom = {lv.var: (E.const(0), E.Sub(self.ranges[lv].extent, E.const(1)))
               for lv in c.leaf_iter_vars if lv not in fixed}
        res = an.interval(expr, dom)
        res = None if res is None else self._relax_fully(res, relax)
        if res is None or not isinstance(an.simplify(E.Sub(res[1], res[0])), E.IntImm):
            return None
        return res

    def _extent_bound(self, hi, lo):
        """Constant upper bound of ``hi - lo + 1``, looking through min/max on either side."""
        an = self.analyzer
        for side in ("hi", "lo"):
            x = hi if side == "hi" else lo
            if isinstance(x, (E.Add, E.Sub)) and isinstance(x.b, E.IntImm):
                inner = self._extent_bound(x.a, lo) if side == "hi" else self._extent_bound(hi, x.a)
                if inner is None:
                    return None
                sign = 1 if isinstance(x, E.Add) else -1
                return inner + sign * x.b.value if side == "hi" else inner - sign * x.b.value
        if isinstance(hi, (E.Min, E.Max)):
            a, b = self._extent_bound(hi.a, lo), self._extent_bound(hi.b, lo)
            if isinstance(hi, E.Min):
                return a if b is None else b if a is None else min(a, b)
            return None if a is None or b is None else max(a, b)
        if isinstance(lo, (E.Min, E.Max)):
            a, b = self._extent_bound(hi, lo.a), self._extent_bound(hi, lo.b)
            if isinstance(lo, E.Max):
                return a if b is None else b if a is None else min(a, b)
            return None if a is None or b is None else max(a, b)
        return an.const_bounds(an.simplify(E.Add(E.Sub(hi, lo), E.const(1))))[1]

    def _relax_fully(self, res, relax):
        """Replace leftover relaxed variables in symbolic bounds by their own bounds."""
        an = self.analyzer
        lo, hi = res
        for _ in range(16):
            names = _vars_in(lo) | _vars_in(hi)
            pending = {v: relax[v] for v in names if v in relax}
            if not pending:
                return lo, hi
            r_lo = an.interval(lo, pending)
            r_hi = an.interval(hi, pending)
            if r_lo is None or r_hi is None:
                return None
            lo, hi = r_lo[0], r_hi[1]
        return None

    def _check_inside(self, st, consumer):
        """``consumer`` must run inside the loop ``st`` is attached at."""
        parent, ivar = st.attach_stage, st.attach_ivar
        if consumer is parent:
            return
        node = consumer
        while node.attach_type == "scope":
            if node.attach_stage is parent:
                if _index(parent.leaf_iter_vars, node.attach_ivar) >= _index(parent.leaf_iter_vars, ivar):
                    return
                break
            node = node.attach_stage
        raise LoweringError(
            f"stage {st.name} is computed at {parent.name}.{ivar.var.name}, but {consumer.name} "
            "reads it outside that loop; compute it at a loop enclosing all of its readers, or at root")


_FULL = object()


def _index(seq, item) -> int:
    for k, x in enumerate(seq):
        if x is item:
            return k
    raise LoweringError(f"axis {item.var.name} is no longer a loop of its stage (split or fused after compute_at?)")


def _vars_in(e) -> set:
    out = set()

    class _V(Visitor):
        def visit_Var(self, n):
            out.add(n)

        visit_SizeVar = visit_Var

    _V().visit(e)
    return out


def _prefer_tile(an, roots, leaves, shape_k):
    """Choose between two valid intervals of one read: over the consumer's root axes (``roots``)
    and over its leaf loops (``leaves``, of constant extent or None). The leaf interval is the
    consumer's whole tile; it wins where the tensor holds all of it (so a producer computes whole
    tiles, as tensorized stages must, even where the consumer's guard cuts the last one short),
    or where the root interval has no constant extent or a larger one."""
    if leaves is None:
        return roots
    if roots is None:
        return leaves

    def extent(r):
        e = an.simplify(E.Sub(r[1], r[0]))
        return e.value if isinstance(e, E.IntImm) else None

    er, el = extent(roots), extent(leaves)
    if er is None or el < er:
        return leaves
    inside = an.can_prove(E.GE(leaves[0], E.const(0))) and an.can_prove(E.LT(leaves[1], shape_k))
    return leaves if inside else roots


def _reads(sch, bodies) -> dict:
    """stage -> list of index tuples with which these bodies read that stage's tensors."""
    found: dict = {}

    class _V(Visitor):
        def visit_ProducerLoad(self, node):
            st = sch.stage_map.get(node.producer.op)
            if st is not None:
                found.setdefault(st, []).append(node.indices)
            self.generic_visit(node)

    v = _V()
    for b in bodies:
        v.visit(b)
    return found
