"""Schedules: one :class:`Stage` per operation, and the primitives that reshape its loops.

A stage starts with one loop per axis (data-parallel axes, then reduction axes). ``split``
and ``fuse`` record relations between iteration variables; the current loop order is
``leaf_iter_vars``. Nothing is lowered here: :mod:`minitvm.lowering` reads the schedule.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

from ..errors import ScheduleError
from ..tensor import ComputeOp, Operation, PlaceholderOp, Tensor, compute
from ..tir import expr as E
from ..tir.functor import Mutator, substitute
from ..tir.limits import MAX_UNROLL_EXTENT, deep_recursion
from ..tir.stmt import SCOPES
from .tensor_intrin import TensorIntrin


@dataclass(eq=False)
class Split:
    """``parent = outer * factor + inner`` (``factor`` or ``nparts`` given)."""

    parent: E.IterVar
    outer: E.IterVar
    inner: E.IterVar
    factor: E.PrimExpr | None
    nparts: E.PrimExpr | None


@dataclass(eq=False)
class Fuse:
    """``fused = outer * extent(inner) + inner``."""

    outer: E.IterVar
    inner: E.IterVar
    fused: E.IterVar


@dataclass
class IterAttr:
    """How one leaf loop is emitted."""

    kind: str = "serial"          # serial | unrolled | vectorized | parallel
    bind: E.IterVar | None = None
    pragmas: dict = field(default_factory=dict)
    tensorize: object = None


class Stage:
    """The schedule of one operation."""

    def __init__(self, op: Operation, schedule: "Schedule"):
        self.op = op
        self.origin_op = op
        self.schedule = schedule
        self._reset_axes()
        self.attach_type = "root"       # root | inline | scope
        self.attach_stage: Stage | None = None
        self.attach_ivar: E.IterVar | None = None
        self.scope = ""
        self.double_buffer_ = False
        self.pipeline_ = 0
        self.storage_align_: dict = {}
        self.is_output = False

    def _reset_axes(self):
        op = self.op
        if isinstance(op, ComputeOp):
            self.all_iter_vars = list(op.axis) + list(op.reduce_axis)
        else:
            self.all_iter_vars = []
        self.leaf_iter_vars = list(self.all_iter_vars)
        self.relations: list = []
        self.iter_attrs: dict = {}

    @property
    def name(self) -> str:
        return self.op.name

    def __repr__(self):
        return f"stage({self.name})"

    # ------------------------------------------------------------------ checks
    def _leaf(self, ivar, what: str) -> int:
        if not isinstance(ivar, E.IterVar):
            raise ScheduleError(f"{what} on stage {self.name}: expected an axis (IterVar), got {ivar!r}")
        for k, v in enumerate(self.leaf_iter_vars):
            if v is ivar:
                return k
        if any(v is ivar for v in self.all_iter_vars):
            raise ScheduleError(
                f"{what} on stage {self.name}: axis {ivar.var.name} was already split or fused; "
                "use the axes that split/fuse returned")
        owner = self.schedule._owner_of(ivar)
        if owner is not None:
            raise ScheduleError(
                f"{what} on stage {self.name}: axis {ivar.var.name} belongs to stage {owner.name}")
        raise ScheduleError(f"{what} on stage {self.name}: axis {ivar.var.name} is not an axis of this stage")

    def _need_compute(self, what: str):
        if not isinstance(self.op, ComputeOp):
            raise ScheduleError(f"{what}: stage {self.name} is a placeholder (an input); it has no loops")

    def _attr(self, ivar) -> IterAttr:
        return self.iter_attrs.setdefault(ivar, IterAttr())

    # ------------------------------------------------------------------ loop structure
    def split(self, parent: E.IterVar, factor=None, nparts=None):
        """Split ``parent`` into (outer, inner) loops, with ``factor`` inner or ``nparts`` outer iterations."""
        self._need_compute("split")
        pos = self._leaf(parent, "split")
        if (factor is None) == (nparts is None):
            raise ScheduleError(f"split of {self.name}.{parent.var.name}: give exactly one of factor= or nparts=")
        given = factor if factor is not None else nparts
        if isinstance(given, float) or (isinstance(given, E.PrimExpr) and not str(given.dtype).startswith(("int", "uint"))):
            raise ScheduleError(
                f"split of {self.name}.{parent.var.name}: {'factor' if factor is not None else 'nparts'} "
                f"must be an integer, got {given!r}")
        amount = E.convert(given)
        if isinstance(amount, E.IntImm) and amount.value < 1:
            raise ScheduleError(
                f"split of {self.name}.{parent.var.name}: {'factor' if factor is not None else 'nparts'} "
                f"must be a positive integer, got {amount.value}")
        name = parent.var.name
        outer = E.IterVar(None, E.Var(f"{name}.outer"), parent.iter_type)
        inner = E.IterVar(None, E.Var(f"{name}.inner"), parent.iter_type)
        self.relations.append(Split(parent, outer, inner, amount if factor is not None else None,
                                    amount if nparts is not None else None))
        self.all_iter_vars += [outer, inner]
        self.leaf_iter_vars[pos:pos + 1] = [outer, inner]
        return outer, inner

    def tile(self, x_parent, y_parent, x_factor, y_factor):
        """Split two axes and order them (x.outer, y.outer, x.inner, y.inner)."""
        xo, xi = self.split(x_parent, factor=x_factor)
        yo, yi = self.split(y_parent, factor=y_factor)
        self.reorder(xo, yo, xi, yi)
        return xo, yo, xi, yi

    def fuse(self, *args):
        """Fuse consecutive leaf axes (outermost first) into one loop."""
        self._need_compute("fuse")
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        if not args:
            raise ScheduleError(f"fuse on stage {self.name}: give at least one axis")
        fused = args[0]
        self._leaf(fused, "fuse")
        for nxt in args[1:]:
            p_out, p_in = self._leaf(fused, "fuse"), self._leaf(nxt, "fuse")
            if p_in != p_out + 1:
                raise ScheduleError(
                    f"fuse on stage {self.name}: axes {fused.var.name} and {nxt.var.name} are not adjacent "
                    "(outer first); reorder them first")
            if (fused.iter_type == E.REDUCE) != (nxt.iter_type == E.REDUCE):
                raise ScheduleError(
                    f"fuse on stage {self.name}: cannot fuse data-parallel {fused.var.name} with "
                    f"reduction {nxt.var.name}")
            new = E.IterVar(None, E.Var(f"{fused.var.name}.{nxt.var.name}.fused"), fused.iter_type)
            self.relations.append(Fuse(fused, nxt, new))
            self.all_iter_vars.append(new)
            self.leaf_iter_vars[p_out:p_in + 1] = [new]
            fused = new
        return fused

    def reorder(self, *args):
        """Put the given leaf axes in this order (other axes keep their positions)."""
        self._need_compute("reorder")
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        positions = [self._leaf(a, "reorder") for a in args]
        if len(set(positions)) != len(positions):
            raise ScheduleError(f"reorder on stage {self.name}: an axis is given twice")
        for pos, a in zip(sorted(positions), args):
            self.leaf_iter_vars[pos] = a

    # ------------------------------------------------------------------ loop annotations
    def bind(self, ivar, thread_ivar):
        """Map loop ``ivar`` to a GPU thread index from ``te.thread_axis``."""
        self._need_compute("bind")
        self._leaf(ivar, "bind")
        if not isinstance(thread_ivar, E.IterVar) or thread_ivar.iter_type != E.THREAD_INDEX:
            raise ScheduleError(
                f"bind on stage {self.name}: {thread_ivar!r} is not a te.thread_axis(...)")
        if ivar.iter_type == E.REDUCE:
            raise ScheduleError(
                f"bind on stage {self.name}: reduction axis {ivar.var.name} cannot be bound to "
                f"{thread_ivar.thread_tag} (cross-thread reduction is not supported)")
        for other, attr in self.iter_attrs.items():
            if attr.bind is not None and other is not ivar and attr.bind.thread_tag == thread_ivar.thread_tag \
                    and not thread_ivar.thread_tag.startswith("vthread"):
                raise ScheduleError(
                    f"bind on stage {self.name}: {thread_ivar.thread_tag} is already bound to axis {other.var.name}")
        self._attr(ivar).bind = thread_ivar

    def _set_kind(self, ivar, kind):
        self._need_compute(kind)
        self._leaf(ivar, kind)
        attr = self._attr(ivar)
        if attr.bind is not None:
            raise ScheduleError(f"{kind} on stage {self.name}: axis {ivar.var.name} is bound to {attr.bind.thread_tag}")
        attr.kind = kind

    def unroll(self, ivar):
        """Unroll loop ``ivar`` (its extent must be constant)."""
        self._set_kind(ivar, "unrolled")

    def vectorize(self, ivar):
        """Turn loop ``ivar`` into vector operations (it should be innermost with a constant extent)."""
        if ivar.iter_type == E.REDUCE:
            raise ScheduleError(f"vectorize on stage {self.name}: {ivar.var.name} is a reduction axis")
        self._set_kind(ivar, "vectorized")

    def parallel(self, ivar):
        """Run the iterations of loop ``ivar`` on several CPU threads."""
        if ivar.iter_type == E.REDUCE:
            raise ScheduleError(f"parallel on stage {self.name}: {ivar.var.name} is a reduction axis")
        self._set_kind(ivar, "parallel")

    def pragma(self, ivar, key: str, value=1):
        """Annotate loop ``ivar``: ``auto_unroll_max_step`` (unroll inner loops up to n steps),
        ``unroll_explicit``."""
        self._need_compute("pragma")
        self._leaf(ivar, "pragma")
        if key not in ("auto_unroll_max_step", "unroll_explicit"):
            raise ScheduleError(f"pragma on stage {self.name}: unknown pragma {key!r} "
                                "(known: auto_unroll_max_step, unroll_explicit)")
        try:
            steps = operator.index(value)
        except TypeError:
            steps = -1
        if steps < 0:
            raise ScheduleError(f"pragma {key} on stage {self.name}, axis {ivar.var.name}: expected a "
                                f"non-negative int, got {value!r}")
        value = steps
        if key == "auto_unroll_max_step" and value > MAX_UNROLL_EXTENT:
            raise ScheduleError(f"pragma auto_unroll_max_step on stage {self.name}, axis {ivar.var.name}: "
                                f"{value} steps; minitvm unrolls up to {MAX_UNROLL_EXTENT}")
        self._attr(ivar).pragmas[key] = int(value)

    def tensorize(self, ivar, intrin):
        """Replace the loop nest under ``ivar`` with the tensor intrinsic ``intrin``."""
        self._need_compute("tensorize")
        self._leaf(ivar, "tensorize")
        if not isinstance(intrin, TensorIntrin):
            raise ScheduleError(f"tensorize on stage {self.name}: {intrin!r} is not a te.decl_tensor_intrin(...)")
        self._attr(ivar).tensorize = intrin

    # ------------------------------------------------------------------ placement
    def compute_at(self, parent: "Stage", ivar):
        """Compute this stage inside loop ``ivar`` of stage ``parent``, only the region it needs."""
        self._need_compute("compute_at")
        if not isinstance(parent, Stage):
            raise ScheduleError(f"compute_at of {self.name}: the first argument must be a stage, s[T]")
        parent._leaf(ivar, f"compute_at of {self.name}")
        if parent is self:
            raise ScheduleError(f"compute_at: stage {self.name} cannot be computed at itself")
        node = parent
        while node is not None:
            if node.attach_stage is self:
                raise ScheduleError(f"compute_at of {self.name} at {parent.name}: that would form a cycle")
            node = node.attach_stage
        if self.is_output:
            raise ScheduleError(f"compute_at: {self.name} is an output of the schedule and must stay at root")
        self.attach_type, self.attach_stage, self.attach_ivar = "scope", parent, ivar

    def compute_inline(self):
        """Substitute this stage's expression into its consumers instead of storing it."""
        self._need_compute("compute_inline")
        if self.op.reduce_axis:
            raise ScheduleError(f"compute_inline: {self.name} is a reduction and cannot be inlined")
        if self.is_output:
            raise ScheduleError(f"compute_inline: {self.name} is an output of the schedule")
        self.attach_type, self.attach_stage, self.attach_ivar = "inline", None, None

    def compute_root(self):
        """Compute this stage at the top level (undoes compute_at / compute_inline)."""
        self._need_compute("compute_root")
        self.attach_type, self.attach_stage, self.attach_ivar = "root", None, None

    # ------------------------------------------------------------------ storage
    def set_scope(self, scope: str):
        """Store this stage's result in ``scope``: global, shared, local."""
        if scope not in SCOPES:
            raise ScheduleError(f"set_scope on stage {self.name}: unknown scope {scope!r}; use one of {SCOPES}")
        if self.is_output:
            raise ScheduleError(f"set_scope on stage {self.name}: outputs live in global memory")
        self.scope = scope

    def storage_align(self, axis, factor: int, offset: int):
        """Pad the stride of ``axis``'s dimension so that ``stride % factor == offset``."""
        self._need_compute("storage_align")
        pos = None
        for k, iv in enumerate(self.op.axis):
            if iv is axis:
                pos = k
        if pos is None:
            raise ScheduleError(f"storage_align on stage {self.name}: {axis!r} is not one of its data axes (op.axis)")
        if factor < 1 or not 0 <= offset < factor:
            raise ScheduleError(f"storage_align on stage {self.name}: need factor >= 1 and 0 <= offset < factor")
        self.storage_align_[pos] = (int(factor), int(offset))

    def double_buffer(self):
        """Keep two copies of this (shared) buffer: fill the next while the current is read."""
        self._need_compute("double_buffer")
        self.double_buffer_ = True

    def pipeline(self, stages: int):
        """Keep ``stages`` copies of this shared buffer in a ring, filled ``stages - 1`` loop
        iterations ahead with asynchronous copies (``cp.async`` on CUDA sm_80+); the stage must be
        computed at a loop, its fill first in the loop's body."""
        self._need_compute("pipeline")
        if isinstance(stages, bool) or not isinstance(stages, int) or not 2 <= stages <= 8:
            raise ScheduleError(f"pipeline of stage {self.name}: stages must be an int from 2 to 8, got {stages!r}")
        if self.double_buffer_:
            raise ScheduleError(f"pipeline of stage {self.name}: it is already double-buffered; use one of the two")
        self.pipeline_ = stages


class Schedule:
    """Stages of every operation needed by ``outputs``, in dependency order."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.stages: list = []
        self.stage_map: dict = {}
        for op in _post_order(self.outputs):
            st = Stage(op, self)
            self.stages.append(st)
            self.stage_map[op] = st
        for op in self.outputs:
            self.stage_map[op].is_output = True

    def __getitem__(self, t) -> Stage:
        op = t.op if isinstance(t, Tensor) else t
        if op not in self.stage_map:
            raise ScheduleError(f"{getattr(op, 'name', op)!r} is not part of this schedule")
        return self.stage_map[op]

    def _owner_of(self, ivar):
        for st in self.stages:
            if any(v is ivar for v in st.all_iter_vars):
                return st
        return None

    def current(self, t: Tensor) -> Tensor:
        """The tensor computed today for ``t`` (cache_read/write replace operations)."""
        return self[t].op.output(t.value_index)

    def _replace_reads(self, old: Tensor, new: Tensor, readers) -> None:
        for st in readers:
            op = st.op
            body = tuple(_ReplaceTensor(old, new).visit(b) for b in op.body)
            new_op = ComputeOp(op.name, op.tag, op.attrs, op.axis, body)
            st.op = new_op
            self.stage_map[new_op] = st

    def _insert_before(self, stage: Stage, new: Stage) -> None:
        self.stages.insert(self.stages.index(stage), new)
        self.stage_map[new.op] = new

    @deep_recursion("cache_read")
    def cache_read(self, tensor: Tensor, scope: str, readers):
        """A copy of ``tensor`` in ``scope`` that ``readers`` read instead of the original."""
        if scope not in SCOPES:
            raise ScheduleError(f"cache_read of {tensor.name}: unknown scope {scope!r}; use one of {SCOPES}")
        readers = [self[r] for r in (readers if isinstance(readers, (list, tuple)) else [readers])]
        src = self.current(tensor)
        for r in readers:
            if src not in r.op.input_tensors:
                raise ScheduleError(f"cache_read of {tensor.name}: stage {r.name} does not read it")
        cache = compute(src.shape, lambda *i: src(*i), name=f"{src.name}.{scope}")
        st = Stage(cache.op, self)
        st.scope = scope
        self._insert_before(min(readers, key=self.stages.index), st)
        self._replace_reads(src, cache, readers)
        return cache

    @deep_recursion("cache_write")
    def cache_write(self, tensor: Tensor, scope: str):
        """Compute ``tensor`` into ``scope`` first; the original stage then copies it out.

        Apply before other primitives on that stage: its loops are rebuilt.
        """
        if scope not in SCOPES:
            raise ScheduleError(f"cache_write of {tensor.name}: unknown scope {scope!r}; use one of {SCOPES}")
        st = self[tensor]
        if not isinstance(st.op, ComputeOp):
            raise ScheduleError(f"cache_write: {tensor.name} is a placeholder")
        if st.relations or st.iter_attrs:
            raise ScheduleError(
                f"cache_write of {tensor.name}: its stage was already split/fused/annotated; "
                "call cache_write before other primitives on it")
        op = st.op
        axis = tuple(E.IterVar(iv.dom, E.Var(iv.var.name + ".c"), iv.iter_type) for iv in op.axis)
        vmap = {o.var: n.var for o, n in zip(op.axis, axis)}
        body = []
        for b in op.body:
            if isinstance(b, E.Reduce):
                raxis = tuple(E.IterVar(iv.dom, E.Var(iv.var.name), iv.iter_type) for iv in b.axis)
                rmap = dict(vmap)
                rmap.update({o.var: n.var for o, n in zip(b.axis, raxis)})
                body.append(E.Reduce(b.combiner, tuple(substitute(s, rmap) for s in b.source), raxis,
                                     substitute(b.condition, rmap), b.value_index))
            else:
                body.append(substitute(b, vmap))
        cache_op = ComputeOp(f"{op.name}.{scope}", op.tag, op.attrs, axis, body)
        cache_st = Stage(cache_op, self)
        cache_st.scope = scope
        self._insert_before(st, cache_st)
        outs = [cache_op.output(i) for i in range(cache_op.num_outputs)]
        copy_axis = op.axis  # the original axes stay valid for the copy-out stage, as in TVM
        copy_body = tuple(c(*[iv.var for iv in copy_axis]) for c in outs)
        copy_op = ComputeOp(op.name, op.tag, op.attrs, copy_axis, copy_body)
        st.op = copy_op
        self.stage_map[copy_op] = st
        st._reset_axes()
        return outs[0] if len(outs) == 1 else tuple(outs)


class _ReplaceTensor(Mutator):
    def __init__(self, old, new):
        self.old, self.new = old, new

    def visit_ProducerLoad(self, node):
        idx = tuple(self.visit(i) for i in node.indices)
        if node.producer == self.old:
            return E.ProducerLoad(self.new, idx)
        return node if all(a is b for a, b in zip(idx, node.indices)) else E.ProducerLoad(node.producer, idx)


def _post_order(outputs) -> list:
    """Every operation ``outputs`` depend on, producers first (a loop, not recursion: a chain
    of thousands of stages is fine)."""
    order, seen = [], set()
    for out in outputs:
        stack = [(out, False)]
        while stack:
            op, expanded = stack.pop()
            if expanded:
                order.append(op)
                continue
            if op in seen:
                continue
            seen.add(op)
            stack.append((op, True))
            if isinstance(op, ComputeOp):
                stack.extend((t.op, False) for t in reversed(op.input_tensors) if t.op not in seen)
    return order


@deep_recursion("create_schedule")
def create_schedule(ops) -> Schedule:
    """A default schedule for the operations (or tensors) in ``ops``."""
    if not isinstance(ops, (list, tuple)):
        ops = [ops]
    out = []
    for o in ops:
        op = o.op if isinstance(o, Tensor) else o
        if not isinstance(op, Operation):
            raise ScheduleError(f"create_schedule: {o!r} is not a tensor or operation")
        if isinstance(op, PlaceholderOp):
            raise ScheduleError(f"create_schedule: {op.name} is a placeholder; schedule the computed outputs")
        out.append(op)
    return Schedule(out)
