"""Tensorize: match a loop nest against a tensor intrinsic and replace it.

``s[T].tensorize(axis, intrin)`` asks that the loops from ``axis`` inward compute exactly
what ``intrin.op`` computes. Matching (:func:`match`) pairs the intrinsic's axes with the
stage's innermost axes (data axes with data axes, reduction with reduction), checks that the
loop nest covers exactly the intrinsic's extents, that the expressions have the same structure
and dtypes, and that every tensor is read with the same index pattern (up to an offset). The
regions read and written are then handed to the intrinsic's ``lower_fn`` as
:class:`BufferView`\\ s once storage is flattened (:mod:`minitvm.lowering.flatten`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import TensorizeError
from ..tir import expr as E
from ..tir.arith import Analyzer, expr_key
from ..tir.functor import collect_vars, post_order_visit, substitute
from ..tir.stmt import Buffer, BufferStore, For, Stmt, _frozen, seq


@dataclass(frozen=True, eq=False)
class TensorizeRegion:
    """A tensor region: per-dimension minimum (expression) and constant extent."""

    tensor: object
    mins: tuple
    extents: tuple


@dataclass(frozen=True, eq=False)
class TensorizeInfo:
    """What flattening needs to call the intrinsic: its inputs' and outputs' regions."""

    intrin: object
    inputs: tuple        # TensorizeRegion per intrinsic input, in intrin.inputs order
    outputs: tuple       # TensorizeRegion per intrinsic output
    mode: str            # "body" (no reduction / whole reduction inside), "update", "reset_update" or
                         # "reset" (only the initialization, for a reduction split outside the call)


class BufferView:
    """A rectangular region of a flat buffer, as the intrinsic's ``lower_fn`` sees it.

    ``shape`` and ``strides`` are those of the intrinsic's own operand (unit dimensions of the
    region dropped); ``elem_offset`` is the flat index of the region's first element.
    """

    def __init__(self, buffer, elem_offset, shape, strides, dtype):
        self.buffer, self.elem_offset = buffer, elem_offset
        self.shape, self.strides, self.dtype = tuple(shape), tuple(strides), dtype
        self.scope = buffer.scope

    def offset_of(self, indices) -> E.PrimExpr:
        """Flat index of ``indices`` (relative to the view) in the underlying buffer."""
        if len(indices) != len(self.shape):
            raise TensorizeError(f"view of {self.buffer.name} has {len(self.shape)} dims, got {len(indices)} indices")
        off = self.elem_offset
        for i, s in zip(indices, self.strides):
            off = E.Add(off, E.Mul(E.convert(i), s))
        return off

    def load(self, indices=None):
        """Read one element."""
        return E.BufferLoad(self.buffer, (self.offset_of(indices or [0] * len(self.shape)),))

    def vload(self, indices=None, lanes: int | None = None):
        """Read ``lanes`` consecutive elements (default: the innermost extent) as a vector."""
        lanes = lanes or int(self.shape[-1].value if isinstance(self.shape[-1], E.IntImm) else self.shape[-1])
        self.require_contiguous(lanes)
        base = self.offset_of(indices or [0] * len(self.shape))
        return E.BufferLoad(self.buffer, (E.Ramp(base, E.const(1), lanes),))

    def store(self, value, indices=None):
        """Write one element."""
        return BufferStore(self.buffer, E.convert(value), (self.offset_of(indices or [0] * len(self.shape)),))

    def require_contiguous(self, lanes: int):
        """Raise TensorizeError unless the innermost ``lanes`` elements are adjacent in memory."""
        if self.strides and not E.is_const_int(Analyzer().simplify(self.strides[-1]), 1):
            raise TensorizeError(
                f"the intrinsic reads {lanes} adjacent elements of {self.buffer.name}, but the innermost "
                f"stride there is {self.strides[-1]}; pack the layout so that axis is innermost")

    def __repr__(self):
        return f"BufferView({self.buffer.name}, offset={self.elem_offset}, shape={self.shape})"


def match(st, intrin, root_itv: dict, analyzer: Analyzer, body_exprs, reads_fn, reduce_inside: bool):
    """Check the stage body against ``intrin.op`` and return a :class:`TensorizeInfo`.

    ``root_itv`` maps each root IterVar of the stage to its (lo, hi) over the tensorized loops.
    ``reads_fn(expr, dom)`` returns the (lo, hi) interval of an index expression.
    """
    iop = intrin.op
    name = f"tensorize of {st.name} with {intrin.name}"
    s_axis, s_red = list(st.op.axis), list(st.op.reduce_axis)
    i_axis, i_red = list(iop.axis), list(iop.reduce_axis)
    if len(i_axis) > len(s_axis) or len(i_red) > len(s_red):
        raise TensorizeError(f"{name}: the intrinsic has {len(i_axis)} data and {len(i_red)} reduction axes, "
                             f"the stage only {len(s_axis)} and {len(s_red)}")
    exts = {}
    for iv in s_axis + s_red:
        lo, hi = root_itv[iv]
        ext = analyzer.simplify(E.Add(E.Sub(hi, lo), E.const(1)))
        if not isinstance(ext, E.IntImm):
            raise TensorizeError(f"{name}: axis {iv.var.name} covers a non-constant extent {ext} inside the "
                                 "tensorized loops; split it so the intrinsic's extent divides it")
        exts[iv] = ext.value
    pairs = _pair_axes(s_axis, i_axis, exts) + _pair_axes(s_red, i_red, exts)
    matched = {s: i for s, i in pairs}
    vmap, mins = {}, {}
    for iv in s_axis + s_red:
        lo, _ = root_itv[iv]
        ext = E.const(exts[iv])
        want = matched[iv].dom.extent.value if iv in matched else 1
        if ext.value != want:
            what = f"the intrinsic's axis {matched[iv].var.name} has {want}" if iv in matched else \
                "it is not one of the intrinsic's axes, so it must have 1"
            raise TensorizeError(f"{name}: axis {iv.var.name} has extent {ext.value} inside the tensorized "
                                 f"loops, but {what}")
        mins[iv] = lo
        vmap[iv.var] = E.Add(lo, matched[iv].var) if iv in matched else lo
    s_body = body_exprs[0]
    i_body = iop.body[0]
    if isinstance(s_body, E.Reduce) != isinstance(i_body, E.Reduce):
        raise TensorizeError(f"{name}: one side is a reduction and the other is not")
    if isinstance(s_body, E.Reduce):
        if s_body.combiner.name != i_body.combiner.name:
            raise TensorizeError(f"{name}: reducer {s_body.combiner.name} differs from the intrinsic's "
                                 f"{i_body.combiner.name}")
        s_expr, i_expr = s_body.source[0], i_body.source[0]
    else:
        s_expr, i_expr = s_body, i_body
    s_expr = substitute(s_expr, vmap)
    tensor_map: dict = {}
    _struct_match(s_expr, i_expr, tensor_map, analyzer, name)
    if set(tensor_map.values()) != set(intrin.inputs):
        raise TensorizeError(f"{name}: the computation does not read every input of the intrinsic")
    dom = {iv.var: (E.const(0), E.const(iv.dom.extent.value - 1)) for _, iv in pairs}
    inputs = {}
    for s_t, i_t in tensor_map.items():
        inputs[i_t] = _region(s_t, tensor_map, s_expr, dom, reads_fn, name)
    out_t = st.op.output(0)
    out_mins = tuple(mins[iv] for iv in s_axis)
    out_ext = tuple(matched[iv].dom.extent if iv in matched else E.const(1) for iv in s_axis)
    outputs = (TensorizeRegion(out_t, out_mins, out_ext),)
    if not isinstance(s_body, E.Reduce):
        mode = "body"
    else:
        mode = "reset_update" if reduce_inside else "update"
    return TensorizeInfo(intrin, tuple(inputs[t] for t in intrin.inputs), outputs, mode)


def _pair_axes(s_axes, i_axes, exts) -> list:
    """Pair the intrinsic's axes with the stage's: in order with the stage axes that cover more
    than one value inside the tensorized loops (so a 4-D stage can feed a 2-D intrinsic, its unit
    axes dropped), else with the stage's innermost axes."""
    wide = [iv for iv in s_axes if exts[iv] != 1]
    if len(wide) == len(i_axes):
        return list(zip(wide, i_axes))
    return list(zip(s_axes[len(s_axes) - len(i_axes):], i_axes))


def _region(s_t, tensor_map, s_expr, dom, reads_fn, name):
    loads = []

    def collect(e):
        if isinstance(e, E.ProducerLoad) and e.producer == s_t:
            loads.append(e)

    post_order_visit(s_expr, collect)
    first = loads[0]
    mins, exts = [], []
    for k, idx in enumerate(first.indices):
        res = reads_fn(idx, dom)
        if res is None:
            raise TensorizeError(f"{name}: cannot bound how {s_t.name} is indexed on axis {k}: {idx}")
        lo, hi = res
        ext = Analyzer().simplify(E.Add(E.Sub(hi, lo), E.const(1)))
        if not isinstance(ext, E.IntImm):
            raise TensorizeError(f"{name}: {s_t.name} is read over a non-constant extent {ext} on axis {k}")
        mins.append(lo)
        exts.append(ext)
    return TensorizeRegion(s_t, tuple(mins), tuple(exts))


def _struct_match(a, b, tensor_map, an, name):
    """``a`` (stage) and ``b`` (intrinsic) must have one structure; loads pair tensors."""
    if isinstance(a, E.ProducerLoad) and isinstance(b, E.ProducerLoad):
        bound = tensor_map.setdefault(a.producer, b.producer)
        if bound != b.producer:
            raise TensorizeError(f"{name}: {a.producer.name} is used where the intrinsic reads both "
                                 f"{bound.name} and {b.producer.name}")
        if a.dtype != b.dtype:
            raise TensorizeError(f"{name}: {a.producer.name} has dtype {a.dtype}, the intrinsic's "
                                 f"{b.producer.name} has {b.dtype}")
        _check_pattern(a, b, an, name)
        return
    if type(a) is not type(b):
        raise TensorizeError(f"{name}: the loop body computes {a} where the intrinsic computes {b}")
    if a.dtype != b.dtype:
        raise TensorizeError(f"{name}: dtype {a.dtype} in {a} differs from the intrinsic's {b.dtype} in {b}")
    if isinstance(a, (E.IntImm, E.FloatImm)):
        if a.value != b.value:
            raise TensorizeError(f"{name}: constant {a.value} differs from the intrinsic's {b.value}")
        return
    if isinstance(a, E.Call) and a.op != b.op:
        raise TensorizeError(f"{name}: call {a.op} differs from the intrinsic's {b.op}")
    for field in a._children:
        x, y = getattr(a, field), getattr(b, field)
        xs = x if isinstance(x, tuple) else (x,)
        ys = y if isinstance(y, tuple) else (y,)
        if len(xs) != len(ys):
            raise TensorizeError(f"{name}: {a} and {b} differ in arity")
        for p, q in zip(xs, ys):
            if isinstance(p, E.PrimExpr):
                _struct_match(p, q, tensor_map, an, name)


def _check_pattern(a, b, an, name):
    """The stage reads with the intrinsic's index pattern, up to a constant offset per dim."""
    s_idx = [an.simplify(i) for i in a.indices]
    i_idx = [an.simplify(i) for i in b.indices]
    # compare the parts that vary with the intrinsic's variables: differences must be loop-invariant
    s_var = [i for i in s_idx if _has_intrin_var(i, b)]
    i_var = [i for i in i_idx if not isinstance(i, E.IntImm)]
    if len(s_var) != len(i_var):
        raise TensorizeError(f"{name}: {a.producer.name} is indexed as [{', '.join(map(str, s_idx))}] which "
                             f"does not follow the intrinsic's pattern {b.producer.name}[{', '.join(map(str, i_idx))}]")
    for x, y in zip(s_var, i_var):
        diff = an.simplify(E.Sub(x, y))
        if any(_uses(diff, v) for v in _vars_of(y)):
            raise TensorizeError(f"{name}: {a.producer.name} index {x} does not follow the intrinsic's {y}")


def _vars_of(e):
    return collect_vars(e)


def _uses(e, v):
    return v in _vars_of(e)


def _has_intrin_var(idx, b):
    vs = set()
    for i in b.indices:
        vs |= _vars_of(i)
    return any(v in vs for v in _vars_of(idx))


__all__ = ["BufferView", "TensorizeInfo", "TensorizeRegion", "match", "expr_key"]


@_frozen
class Tensorized(Stmt):
    """Placeholder for an intrinsic call until buffers are known (replaced by flattening).

    ``mins`` holds every region minimum (inputs first, in order) so variable substitution
    reaches them; ``regions`` holds (tensor, extents) in the same order.
    """

    info: TensorizeInfo
    mins: tuple
    _children = ("mins",)


def make_tensorized(info: TensorizeInfo) -> Tensorized:
    """Wrap ``info`` so its region minima take part in later substitutions."""
    mins = tuple(m for r in info.inputs + info.outputs for m in r.mins)
    return Tensorized(info, mins)


def emit_intrinsic(node: Tensorized, lookup) -> Stmt:
    """Call the intrinsic's ``lower_fn`` on views of the flat buffers.

    ``lookup(tensor) -> (buffer, realize_mins, strides)`` describes where a tensor lives.
    """
    info = node.info
    intrin = info.intrin
    regions = info.inputs + info.outputs
    operands = list(intrin.inputs) + [intrin.op.output(i) for i in range(intrin.op.num_outputs)]
    an = Analyzer()
    views = []
    pos = 0
    missing = []
    for k, (region, operand) in enumerate(zip(regions, operands)):
        mins = node.mins[pos:pos + len(region.mins)]
        pos += len(region.mins)
        if info.mode == "reset" and k < len(info.inputs):
            # the reset writes only the output; the inputs may not be realized where it runs
            # (their stages are computed inside the reduction loops), so they get stand-ins in
            # the intrinsic's declared buffers, which the reset must not use
            decl = intrin.buffers[operand]
            buf = Buffer(f"{region.tensor.name}.unavailable", decl.shape, operand.dtype, decl.scope)
            missing.append(buf.data)
            strides, acc = [], 1
            for d in reversed(operand.shape):
                strides.insert(0, E.const(acc))
                acc *= int(d.value)
            views.append(BufferView(buf, E.const(0), operand.shape, strides, operand.dtype))
            continue
        buf, rmins, strides = lookup(region.tensor)
        off = E.const(0)
        for m, rm, s in zip(mins, rmins, strides):
            off = E.Add(off, E.Mul(E.Sub(m, rm), s))
        big = [(e, s) for e, s in zip(region.extents, strides) if not E.is_const_int(e, 1)]
        vstrides = []
        for dim in operand.shape:
            if E.is_const_int(dim, 1):
                vstrides.append(E.const(1))
                continue
            if not big:
                raise TensorizeError(f"tensorize with {intrin.name}: {region.tensor.name}'s region "
                                     f"{[str(e) for e in region.extents]} does not fit operand {operand.name}{[str(d) for d in operand.shape]}")
            e, s = big.pop(0)
            if e.value != dim.value:
                raise TensorizeError(f"tensorize with {intrin.name}: {region.tensor.name} region extent {e.value} "
                                     f"does not match operand {operand.name} extent {dim.value}")
            vstrides.append(s)
        if big:
            raise TensorizeError(f"tensorize with {intrin.name}: {region.tensor.name}'s region has more "
                                 f"dimensions than operand {operand.name}")
        views.append(BufferView(buf, an.simplify(off), operand.shape, vstrides, operand.dtype))
    ins, outs = views[:len(info.inputs)], views[len(info.inputs):]
    res = intrin.lower_fn(ins, outs)
    if isinstance(res, Stmt):
        body = reset = update = res
        reset = None
    elif isinstance(res, (tuple, list)) and len(res) == 3:
        body, reset, update = res
    else:
        raise TensorizeError(f"{intrin.name}: lower_fn must return a statement or (body, reset, update)")
    if info.mode == "body":
        return body
    if info.mode == "update":
        return update if update is not None else body
    if reset is None:
        b = intrin.op.body[0]
        out = outs[0]
        idx_vars = [E.Var(f"r{k}") for k in range(len(out.shape))]
        reset = out.store(b.combiner.identity(b.dtype), idx_vars)
        for v, ext in reversed(list(zip(idx_vars, out.shape))):
            reset = For(v, E.const(0), ext, "serial", reset)
    if info.mode == "reset":
        if reset is not None and _reads_any(reset, missing):
            raise TensorizeError(f"{intrin.name}: its reset reads an input; a reset may only write the output")
        if reset is not None:
            return reset
    return seq(reset, update if update is not None else body)


def _reads_any(stmt, data_vars) -> bool:
    """Whether ``stmt`` loads from a buffer whose data variable is one of ``data_vars``."""
    found = []
    post_order_visit(stmt, lambda n: found.append(n) if isinstance(n, E.BufferLoad) and any(
        n.buffer.data is v for v in data_vars) else None)
    return bool(found)
