"""Schedule -> loop nest: the statement tree of every stage, nested where it is attached.

The result still speaks in tensors (``ProducerRealize``/``ProducerStore``/``ProducerLoad``);
:mod:`minitvm.lowering.flatten` turns it into buffers and flat indices.
"""
from __future__ import annotations

import dataclasses

from ..errors import LoweringError, ScheduleError
from ..schedule.bound import StageInfo
from ..schedule.schedule import Split
from ..tensor import ComputeOp
from ..tir import expr as E
from ..tir.functor import Mutator, collect_vars, substitute
from ..tir.limits import check_loop_kind, check_tree
from ..tir.stmt import AttrStmt, For, IfThenElse, ProducerRealize, ProducerStore, seq
from .tensorize import make_tensorized, match


class _Inliner(Mutator):
    """Replaces reads of inlined stages by their expressions; canonicalizes other reads."""

    def __init__(self, sch, bodies):
        self.sch, self.bodies = sch, bodies

    def visit_ProducerLoad(self, node):
        idx = tuple(self.visit(i) for i in node.indices)
        st = self.sch.stage_map.get(node.producer.op)
        if st is None:
            raise LoweringError(f"tensor {node.producer.name} is read but is not part of the schedule")
        if st.attach_type == "inline":
            body = inlined_body(self.sch, st, self.bodies)[node.producer.value_index]
            return substitute(body, {iv.var: i for iv, i in zip(st.op.axis, idx)})
        return E.ProducerLoad(st.op.output(node.producer.value_index), idx)


def inlined_body(sch, st, bodies) -> tuple:
    """The body of ``st`` with every inlined producer substituted (memoized in ``bodies``)."""
    if st not in bodies:
        bodies[st] = tuple(_Inliner(sch, bodies).visit(b) for b in st.op.body)
        for b in bodies[st]:
            # inlining copies a producer's expression into every read of it: a chain of
            # stages that each read their input twice doubles at every step
            check_tree(b, f"stage {st.name} with its inlined producers")
    return bodies[st]


class NestBuilder:
    """Builds the statement of each stage with its attached producers inside."""

    def __init__(self, sch):
        self.sch = sch
        bodies: dict = {}
        for st in sch.stages:
            if isinstance(st.op, ComputeOp):
                if st.attach_type == "inline" and st.is_output:
                    raise ScheduleError(f"{st.name} is an output and cannot be inlined")
                inlined_body(sch, st, bodies)
        self.info = StageInfo(sch, bodies)
        self.info.infer()
        self.ranges = self.info.ranges
        self.attached: dict = {}
        for st in self.info.stages:
            if st.attach_type == "scope":
                if st.attach_stage.attach_type == "inline":
                    raise ScheduleError(f"{st.name} is computed at {st.attach_stage.name}, which is inlined")
                self.attached.setdefault((st.attach_stage, st.attach_ivar), []).append(st)
        self.thread_vars: dict = {}   # thread tag -> the Var used for it in the IR
        self.bind_map: dict = {}      # loop var of a bound leaf -> its thread var
        for st in self.info.stages:
            for lv, attr in st.iter_attrs.items():
                if attr.bind is not None:
                    self.bind_map[lv.var] = self._thread_var(attr.bind)

    # ------------------------------------------------------------------ top level
    def build(self):
        """The whole program: root stages in order, intermediates realized around the rest."""
        roots = [st for st in self.info.stages if st.attach_type == "root"]
        rest = None
        for st in reversed(roots):   # innermost first: each realize encloses the stages after it
            rest = seq(self.stage_nest(st, {}), rest)
            if not st.is_output:
                rest = self._realize(st, rest)
        return substitute(rest, self.bind_map)

    def _realize(self, st, body):
        bounds = tuple(E.Range(substitute(self.ranges[iv].min, self.bind_map), self.ranges[iv].extent)
                       for iv in st.op.axis)
        scope = self.info.storage_scope(st)
        for i in reversed(range(st.op.num_outputs)):
            body = ProducerRealize(st.op.output(i), bounds, scope, body)
        return body

    # ------------------------------------------------------------------ one stage
    def stage_nest(self, st, bound_tags: dict):
        """The loop nest of ``st`` given the thread tags bound by enclosing loops."""
        op = st.op
        leaves = st.leaf_iter_vars
        leaf_value = {}
        for lv in leaves:
            attr = st.iter_attrs.get(lv)
            if attr is not None and attr.bind is not None:
                leaf_value[lv] = E.Add(self._thread_var(attr.bind), self.ranges[lv].min) \
                    if not E.is_const_int(self.ranges[lv].min, 0) else self._thread_var(attr.bind)
            else:
                leaf_value[lv] = self.info.leaf_value(lv)
        value = self.info.root_values(st, leaf_value)
        vmap = {iv.var: value[iv] for iv in list(op.axis) + list(op.reduce_axis)}
        conds = self._predicates(st, value)
        out_idx = tuple(value[iv] for iv in op.axis)
        bodies = self.info.bodies[st]
        is_reduce = bool(op.reduce_axis)

        stores = []
        for i, b in enumerate(bodies):
            t = op.output(i)
            if is_reduce:
                src = substitute(b.source[b.value_index], vmap)
                upd = b.combiner.combine(E.ProducerLoad(t, out_idx), src)
                store = ProducerStore(t, upd, out_idx)
                if not E.is_const_int(b.condition, 1):
                    store = IfThenElse(substitute(b.condition, vmap), store)
            else:
                store = ProducerStore(t, substitute(b, vmap), out_idx)
            stores.append(store)
        update = _guard(conds, seq(*stores))

        first_reduce = next((k for k, lv in enumerate(leaves) if lv.iter_type == E.REDUCE), None)
        tpos = next((k for k, lv in enumerate(leaves)
                     if st.iter_attrs.get(lv) is not None and st.iter_attrs[lv].tensorize is not None), None)
        init = None
        if is_reduce and not (tpos is not None and first_reduce is not None and tpos <= first_reduce):
            data_conds = [c for c in conds if not self._uses_reduce(st, c, leaf_value)]
            if tpos is not None:
                # tensorized inside the reduction loops: the intrinsic resets its own output region
                # (its storage may be opaque to plain stores, as warp fragments are)
                init = _guard(data_conds, self._tensorize(st, tpos, st.iter_attrs[leaves[tpos]].tensorize,
                                                          first_reduce, mode="reset"))
                init_leaves = leaves[first_reduce:tpos]
            else:
                inits = [ProducerStore(op.output(i), b.combiner.identity(b.dtype), out_idx)
                         for i, b in enumerate(bodies)]
                init = _guard(data_conds, seq(*inits))
                init_leaves = leaves[first_reduce:]
            for lv in reversed(init_leaves):
                if lv.iter_type != E.REDUCE:
                    init = self._loop(st, lv, init, inner_only=True)

        return self._emit_loops(st, 0, bound_tags, update, init, first_reduce)

    def _emit_loops(self, st, k, tags, update, init, first_reduce):
        leaves = st.leaf_iter_vars
        if k == len(leaves):
            return update
        lv = leaves[k]
        attr = st.iter_attrs.get(lv)
        if attr is not None and attr.tensorize is not None:
            return self._tensorize(st, k, attr.tensorize, first_reduce)
        tags = dict(tags)
        guard = None
        if attr is not None and attr.bind is not None:
            tag = attr.bind.thread_tag
            ext = self.ranges[lv].extent
            if tag in tags and not tag.startswith("vthread"):
                outer_ext = tags[tag]
                d = self.info.analyzer.simplify(E.Sub(outer_ext, ext))
                if isinstance(d, E.IntImm) and d.value < 0:
                    raise ScheduleError(
                        f"stage {st.name}: axis {lv.var.name} (extent {ext}) is bound to {tag}, which an "
                        f"enclosing stage launched with only {outer_ext} threads")
                if not (isinstance(d, E.IntImm) and d.value == 0):
                    guard = E.LT(self._thread_var(attr.bind), ext)
                header = None
            else:
                tags[tag] = ext
                header = ("thread", attr.bind, ext)
        else:
            header = ("loop", lv)
        inner = self._emit_loops(st, k + 1, tags, update, init, first_reduce)
        if init is not None and k + 1 == first_reduce:
            inner = seq(init, inner)
        body = inner
        for p in reversed(self.attached.get((st, lv), [])):
            body = self._realize(p, seq(self.stage_nest(p, tags), body))
        if guard is not None:
            body = IfThenElse(guard, body)
        if header is not None and header[0] == "thread":
            iv = header[1]
            thread_iv = E.IterVar(E.Range(E.const(0), header[2]), self._thread_var(iv), E.THREAD_INDEX,
                                  iv.thread_tag)
            # a pragma on a bound axis (auto_unroll_max_step on a block axis) covers its body
            out = AttrStmt(thread_iv, "thread_extent", header[2], self._pragmas(st, lv, body))
        elif header is not None:
            out = self._loop(st, lv, body)
        else:
            out = body
        if k == 0 and init is not None and first_reduce == 0:
            out = seq(init, out)
        return out

    def _tensorize(self, st, k, intrin, first_reduce, mode=None):
        """The intrinsic call replacing ``st``'s loops from leaf ``k`` in; ``mode="reset"`` gives
        the call that initializes the output region (for a reduction split outside the call)."""
        leaves = st.leaf_iter_vars
        for lv in leaves[k:]:
            if self.attached.get((st, lv)):
                raise ScheduleError(f"tensorize of {st.name}: stages are computed inside the tensorized "
                                    f"loop {lv.var.name}; compute them outside it")
        fixed = set(leaves[:k])
        if st.attach_type == "scope":
            fixed |= set(self.info.enclosing(st.attach_stage, st.attach_ivar))
        itv = self.info._root_intervals(st, fixed)
        root_itv = {iv: itv[iv.var] for iv in list(st.op.axis) + list(st.op.reduce_axis)}
        an = self.info.analyzer
        reduce_inside = first_reduce is not None and first_reduce >= k
        info = match(st, intrin, root_itv, an, self.info.bodies[st], an.interval, reduce_inside)
        if mode is not None:
            info = dataclasses.replace(info, mode=mode)
        return make_tensorized(info)

    def _loop(self, st, lv, body, inner_only=False):
        attr = st.iter_attrs.get(lv)
        rng = self.ranges[lv]
        kind = "serial"
        if attr is not None:
            if attr.bind is not None and inner_only:
                raise ScheduleError(
                    f"stage {st.name}: data axis {lv.var.name} is bound to {attr.bind.thread_tag} but sits "
                    "inside a reduction loop; move it outside the reduction axes")
            kind = attr.kind
        if isinstance(rng.extent, E.IntImm):
            check_loop_kind(kind, rng.extent.value, f"stage {st.name}, axis {lv.var.name}")
        loop = For(lv.var, E.const(0), rng.extent, kind, body)
        return loop if inner_only else self._pragmas(st, lv, loop)

    @staticmethod
    def _pragmas(st, lv, stmt):
        """``stmt`` under the pragmas set on leaf axis ``lv`` of stage ``st``."""
        attr = st.iter_attrs.get(lv)
        for key, val in (attr.pragmas.items() if attr is not None else ()):
            stmt = AttrStmt(lv.var, "pragma_" + key, E.const(val), stmt)
        return stmt

    def _thread_var(self, thread_iv):
        tag = thread_iv.thread_tag
        if tag.startswith("vthread") or tag == "cthread":
            return self.thread_vars.setdefault(("v", id(thread_iv)), thread_iv.var)
        return self.thread_vars.setdefault(tag, thread_iv.var)

    def _predicates(self, st, value) -> list:
        """Guards for non-divisible splits and for regions that overhang the tensor."""
        an = self.info.analyzer
        conds = []
        for rel in st.relations:
            if isinstance(rel, Split):
                pr = self.ranges[rel.parent]
                ext = self.ranges[rel.outer].extent
                inner = self.ranges[rel.inner].extent
                covered = an.simplify(E.Sub(E.Mul(ext, inner), pr.extent))
                if not E.is_const_int(covered, 0):
                    conds.append(E.LT(value[rel.parent], E.Add(pr.min, pr.extent)))
        for iv, shape_k in zip(st.op.axis, st.op.shape):
            rng = self.ranges[iv]
            if not an.can_prove(E.LE(E.Add(rng.min, rng.extent), shape_k)):
                conds.append(E.LT(value[iv], shape_k))
            if not an.can_prove(E.GE(rng.min, E.const(0))):
                conds.append(E.GE(value[iv], E.const(0)))
        return conds

    def _uses_reduce(self, st, cond, leaf_value) -> bool:
        used = collect_vars(cond)
        return any(lv.var in used for lv in st.leaf_iter_vars if lv.iter_type == E.REDUCE)


def _guard(conds, stmt):
    if not conds:
        return stmt
    c = conds[0]
    for x in conds[1:]:
        c = E.And(c, x)
    return IfThenElse(E.Call("bool", "likely", (c,)), stmt)

