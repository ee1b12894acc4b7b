"""The op registry: what each graph op is called, reads, accepts and computes.

Every op is an :class:`OpDef` with

* ``inputs`` -- input names in order; a trailing ``?`` marks an optional input (``bias?``) and
  a leading ``*`` a variadic one (``*data``);
* ``attrs`` -- :class:`Attr` declarations (name, kind, default, allowed values, check). Node
  attributes are normalized on the way in (:meth:`OpDef.normalize_attrs`): defaults are filled
  in and values take one canonical form (``strides`` is always a pair, ``padding`` always
  ``(top, left, bottom, right)``, a negative ``axis`` becomes positive during type inference
  where the rank is known ...);
* ``infer`` -- type inference ``(ctx, input types, attrs) -> TensorType``;
* ``compute`` -- the numpy reference ``(input arrays, attrs, output type) -> array``, used by
  the reference executor and by constant folding (floats accumulate in float64, integers in
  int64; the result is cast to the output dtype);
* ``macs`` -- multiply-accumulates for :meth:`Graph.summary` (optional).

:func:`register_op` adds ops (the quantization and layout passes add their own).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import DtypeError, GraphError, ShapeError
from .ir import TensorType

__all__ = ["Attr", "OpDef", "REQUIRED", "register_op", "get_op", "list_ops", "InferContext"]


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


def _contig(x):
    """``x`` as a C-contiguous array, keeping 0-d arrays 0-d (unlike np.ascontiguousarray)."""
    x = np.asarray(x)
    return x if x.flags.c_contiguous else x.copy(order="C")


@dataclass(frozen=True)
class Attr:
    """An attribute declaration.

    ``kind`` is one of ``int``, ``float``, ``bool``, ``str``, ``dtype``, ``pair`` (an int or a
    pair of positive ints -> pair), ``pad4`` (int, ``(ph, pw)`` or ``(top, left, bottom,
    right)`` -> 4-tuple), ``ints`` (tuple of ints), ``pad_width`` (tuple of ``(before, after)``
    pairs), ``layout`` (a layout string, see :mod:`minitvm.topi.nn.layout`) or ``any``.
    ``check(value)`` returns an error message or ``None``. A default of ``None`` makes the
    attribute optional.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple | None = None
    check: Callable | None = None


class InferContext:
    """What type inference knows about the node it works on; builds errors that name it."""

    def __init__(self, node: str, op: str):
        """Context for node ``node`` of op type ``op``."""
        self.node, self.op = node, op

    def where(self) -> str:
        """``"node 'conv1' (conv2d)"``."""
        return f"node {self.node!r} ({self.op})"

    def shape_error(self, msg: str) -> ShapeError:
        """A ShapeError naming the node and op."""
        return ShapeError(f"{self.where()}: {msg}")

    def dtype_error(self, msg: str) -> DtypeError:
        """A DtypeError naming the node and op."""
        return DtypeError(f"{self.where()}: {msg}")

    def attr_error(self, attr: str, msg: str) -> GraphError:
        """A GraphError naming the node, op and attribute."""
        return GraphError(f"{self.where()}: attribute {attr!r} {msg}")


@dataclass(frozen=True)
class OpDef:
    """An op's declaration (see the module docstring)."""

    name: str
    inputs: tuple
    attrs: tuple
    infer: Callable
    compute: Callable
    macs: Callable | None = None
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def defaults(self) -> dict:
        """``{attr: default}`` for attributes that have a default."""
        return {a.name: a.default for a in self.attrs if a.default is not REQUIRED}

    def input_range(self) -> tuple:
        """(fewest, most) inputs; most is ``None`` for variadic ops."""
        if any(i.startswith("*") for i in self.inputs):
            return (1, None)
        return (sum(not i.endswith("?") for i in self.inputs), len(self.inputs))

    def normalize_attrs(self, attrs: dict, node: str = "?") -> dict:
        """Validate ``attrs`` against the declaration; returns the canonical, complete dict.

        Raises ``GraphError`` naming the node, the op and the attribute for an unknown, missing
        or malformed attribute.
        """
        ctx = InferContext(node, self.name)
        known = {a.name: a for a in self.attrs}
        for k in attrs:
            if k not in known:
                close = difflib.get_close_matches(k, list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; {self.name} takes {sorted(known) or 'none'}"
                raise ctx.attr_error(k, f"is not an attribute of {self.name}{hint}")
        out = {}
        for a in self.attrs:
            if a.name in attrs:
                v = attrs[a.name]
            elif a.default is REQUIRED:
                raise ctx.attr_error(a.name, f"is required ({a.doc or a.kind})")
            else:
                v = a.default
            if v is None and a.default is None:
                out[a.name] = None
                continue
            try:
                v = _convert(a.kind, v)
            except (TypeError, ValueError, ShapeError) as e:
                raise ctx.attr_error(a.name, f"= {attrs.get(a.name, v)!r} is malformed: {e}") from None
            if a.choices is not None and v not in a.choices:
                raise ctx.attr_error(a.name, f"= {v!r} must be one of {a.choices}")
            if a.check is not None:
                msg = a.check(v)
                if msg:
                    raise ctx.attr_error(a.name, f"= {v!r} {msg}")
            out[a.name] = v
        return out

    def infer_type(self, node: str, in_types: list, attrs: dict) -> TensorType:
        """The output type of node ``node`` given its input types and normalized attributes."""
        ctx = InferContext(node, self.name)
        lo, hi = self.input_range()
        n = len(in_types)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise ctx.shape_error(f"takes {want} inputs ({', '.join(self.inputs)}), got {n}")
        return self.infer(ctx, list(in_types), attrs)

    def count_macs(self, in_types, out_type, attrs) -> int:
        """Multiply-accumulates of one evaluation (0 for ops without a ``macs`` function)."""
        return int(self.macs(in_types, out_type, attrs)) if self.macs else 0


_OPS: dict[str, OpDef] = {}


def register_op(opdef: OpDef, override: bool = False) -> OpDef:
    """Add ``opdef`` to the registry (``override`` to replace an op of the same name)."""
    if opdef.name in _OPS and not override:
        raise GraphError(f"op {opdef.name!r} is already registered (pass override=True to replace it)")
    _OPS[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    """The :class:`OpDef` registered as ``name``; ``GraphError`` (with a suggestion) if none."""
    try:
        return _OPS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_OPS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise GraphError(f"unknown op {name!r}{hint}") from None


def list_ops() -> list[str]:
    """Names of every registered op, sorted."""
    return sorted(_OPS)


# ---------------------------------------------------------------------- attribute kinds
def _int(v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return int(v)
        raise TypeError(f"expected an int, got {type(v).__name__}")
    return int(v)


def _convert(kind: str, v):
    if kind == "int":
        return _int(v)
    if kind == "float":
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"expected a number, got {type(v).__name__}")
        return float(v)
    if kind == "bool":
        if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)):
            return bool(v)
        raise TypeError(f"expected a bool, got {v!r}")
    if kind == "str":
        if not isinstance(v, str):
            raise TypeError(f"expected a string, got {type(v).__name__}")
        return v
    if kind == "dtype":
        if v == "" or v is None:
            return ""
        return np.dtype(v).name
    if kind == "pair":
        t = (v, v) if not isinstance(v, (tuple, list, np.ndarray)) else tuple(v)
        if len(t) != 2:
            raise ValueError("expected an int or a pair of ints")
        t = tuple(_int(x) for x in t)
        if any(x < 1 for x in t):
            raise ValueError("values must be positive")
        return t
    if kind == "pad4":
        if not isinstance(v, (tuple, list, np.ndarray)):
            t = (v,) * 4
        else:
            t = tuple(v)
            if len(t) == 2:
                t = (t[0], t[1], t[0], t[1])
        if len(t) != 4:
            raise ValueError("expected an int, (ph, pw) or (top, left, bottom, right)")
        t = tuple(_int(x) for x in t)
        if any(x < 0 for x in t):
            raise ValueError("padding must be non-negative")
        return t
    if kind == "ints":
        if not isinstance(v, (tuple, list, np.ndarray)):
            raise TypeError("expected a sequence of ints")
        return tuple(_int(x) for x in v)
    if kind == "pad_width":
        if not isinstance(v, (tuple, list, np.ndarray)):
            raise TypeError("expected a sequence of (before, after) pairs")
        out = []
        for p in v:
            p = tuple(p) if isinstance(p, (tuple, list, np.ndarray)) else None
            if p is None or len(p) != 2:
                raise ValueError("expected a sequence of (before, after) pairs")
            p = (_int(p[0]), _int(p[1]))
            if p[0] < 0 or p[1] < 0:
                raise ValueError("pads must be non-negative")
            out.append(p)
        return tuple(out)
    if kind == "layout":
        from ..topi.nn.layout import Layout
        return "" if v == "" else Layout.parse(v).name
    if kind == "any":
        return v
    raise GraphError(f"unknown attribute kind {kind!r}")


def _positive(v):
    return None if v >= 1 else "must be positive"


# ---------------------------------------------------------------------- helpers
def _acc(dtype) -> type:
    """Accumulation dtype of the numpy references: float64 for floats, int64 for integers."""
    return np.float64 if np.dtype(dtype).kind in "fc" else np.int64


def _cast(x, dtype):
    """``x`` as a contiguous ``dtype`` array (float -> int rounds half to even first)."""
    dt = np.dtype(dtype)
    x = np.asarray(x)
    if dt.kind in "iu" and x.dtype.kind == "f":
        x = np.rint(x)
    return _contig(x.astype(dt, copy=False))


def _canon_axis(ctx, attr, axis, ndim):
    if not -ndim <= axis < ndim:
        raise ctx.attr_error(attr, f"= {axis} is out of range for a {ndim}-D input")
    return axis % ndim


def _same_dtype(ctx, types, names):
    d0 = types[0].dtype
    for t, n in zip(types[1:], names[1:]):
        if t.dtype != d0:
            raise ctx.dtype_error(f"input {n} is {t.dtype} but {names[0]} is {d0}; insert a cast")


def _check_layout(ctx, t, expected, what):
    if t.layout and t.layout != expected:
        raise ctx.shape_error(f"{what} has layout {t.layout}, this op expects {expected} "
                              "(insert a layout_transform)")


def _out_layout(layout, default):
    return "" if layout == default else layout


def _conv_out(ctx, n, k, s, d, p0, p1, axis):
    extent = (k - 1) * d + 1
    out = (n + p0 + p1 - extent) // s + 1
    if out < 1:
        raise ctx.shape_error(f"the kernel (extent {extent} along {axis}, dilation {d}) does not fit the padded "
                              f"input ({n} + {p0 + p1} along {axis})")
    return out


def _pool_out(ctx, n, k, s, p0, p1, ceil, axis):
    num = n + p0 + p1 - k
    if num < 0:
        raise ctx.shape_error(f"the pooling window ({k}) is larger than the padded input ({n} + {p0 + p1}) "
                              f"along {axis}")
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= n + p0:
        out -= 1  # the last window would start in the bottom/right padding (PyTorch/ONNX rule)
    return out


def _op(name, inputs, attrs, doc=""):
    """Decorator registering ``infer`` and returning a decorator for ``compute``."""
    def deco(infer):
        def with_compute(compute, macs=None):
            register_op(OpDef(name, tuple(inputs), tuple(attrs), infer, compute, macs, doc))
            return compute
        infer.compute = with_compute
        return infer
    return deco


# ====================================================================== conv2d
def _conv_layouts(ctx, attrs, dt, wt):
    """Primal (padded) extents of data and kernel under the conv's declared layouts."""
    from ..topi.nn.layout import Layout
    dl, kl = Layout.parse(attrs["data_layout"]), Layout.parse(attrs["kernel_layout"])
    if sorted(dl.primal) != list("CHNW"):
        raise ctx.attr_error("data_layout", f"= {dl.name!r} must have primal axes N, C, H, W")
    if sorted(kl.primal) != list("HIOW"):
        raise ctx.attr_error("kernel_layout", f"= {kl.name!r} must have primal axes O, I, H, W")
    _check_layout(ctx, dt, dl.name, "data")
    _check_layout(ctx, wt, kl.name, "weight")
    try:
        d = dl.primal_shape(dt.shape)
    except ShapeError as e:
        raise ctx.shape_error(f"data {dt}: {e}") from None
    try:
        k = kl.primal_shape(wt.shape)
    except ShapeError as e:
        raise ctx.shape_error(f"weight {wt}: {e}") from None
    return dl, kl, d, k


def _conv_infer(ctx, types, attrs, deformable=False):
    if deformable:
        dt, ot, wt = types[0], types[1], types[2]
        bt = types[3] if len(types) > 3 else None
        if dt.layout not in ("", "NCHW") or wt.layout not in ("", "OIHW"):
            raise ctx.shape_error("deformable_conv2d supports NCHW data and OIHW weights only")
        d = dict(zip("NCHW", dt.shape)) if dt.ndim == 4 else None
        k = dict(zip("OIHW", wt.shape)) if wt.ndim == 4 else None
        if d is None or k is None:
            raise ctx.shape_error(f"data must be 4-D NCHW and weight 4-D OIHW, got {dt} and {wt}")
    else:
        dt, wt = types[0], types[1]
        bt = types[2] if len(types) > 2 else None
        dl, kl, d, k = _conv_layouts(ctx, attrs, dt, wt)
        ol = attrs["out_layout"] or dl.name
    g = attrs["groups"]
    C, I, O = d["C"], k["I"], k["O"]
    if C % g or O % g:
        raise ctx.attr_error("groups", f"= {g} must divide the input channels ({C}) and output channels ({O})")
    padded = (not deformable and g == 1 and C != I
               and (I == -(-C // kl.factor("I")) * kl.factor("I") or C == -(-I // dl.factor("C")) * dl.factor("C")))
    if C // g != I and not padded:  # (packed layouts may zero-pad the channels of one side)
        raise ctx.shape_error(f"weight {wt} has {I} input channels per group, the data has {C} channels / "
                              f"groups {g} = {C // g}")
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilation"]
    pt, pl, pb, pr = attrs["padding"]
    OH = _conv_out(ctx, d["H"], k["H"], sh, dh, pt, pb, "height")
    OW = _conv_out(ctx, d["W"], k["W"], sw, dw, pl, pr, "width")
    if dt.dtype != wt.dtype and not attrs["out_dtype"]:
        raise ctx.dtype_error(f"data is {dt.dtype} but weight is {wt.dtype}; make them agree or set out_dtype")
    out_dtype = attrs["out_dtype"] or dt.dtype
    if deformable:
        dg = attrs["deformable_groups"]
        if C % dg:
            raise ctx.attr_error("deformable_groups", f"= {dg} must divide the input channels ({C})")
        want = (d["N"], 2 * dg * k["H"] * k["W"], OH, OW)
        if ot.shape != want:
            raise ctx.shape_error(f"offset must have shape {list(want)} (N, 2*deformable_groups*KH*KW, OH, OW), "
                                  f"got {list(ot.shape)}")
        if ot.dtype != dt.dtype:
            raise ctx.dtype_error(f"offset is {ot.dtype} but data is {dt.dtype}")
    if bt is not None:
        if bt.shape != (O,):
            raise ctx.shape_error(f"bias must have shape [{O}] (one value per output channel), got {list(bt.shape)}")
        if bt.dtype != out_dtype:
            raise ctx.dtype_error(f"bias is {bt.dtype}, the output is {out_dtype}")
    if deformable:
        return TensorType((d["N"], O, OH, OW), out_dtype)
    from ..topi.nn.layout import Layout
    try:
        shape = Layout.parse(ol).shape({"N": d["N"], "C": O, "H": OH, "W": OW})
    except (KeyError, ShapeError) as e:
        raise ctx.attr_error("out_layout", f"= {ol!r} is not a layout of N, C, H, W ({e})") from None
    return TensorType(shape, out_dtype, _out_layout(ol, "NCHW"))


def conv2d_np(x, w, strides=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, acc=None):
    """numpy reference convolution: data NCHW, weight OIHW, padding (top, left, bottom, right).

    Accumulates in ``acc`` (float64 for floats, int64 for integers by default) and returns
    the accumulator dtype; im2col + one batched matmul per group.
    """
    acc = acc or _acc(x.dtype)
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    OH = (H + pt + pb - (KH - 1) * dh - 1) // sh + 1
    OW = (W + pl + pr - (KW - 1) * dw - 1) // sw + 1
    xp = np.pad(x.astype(acc, copy=False), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    cols = np.empty((N, C, KH, KW, OH, OW), acc)
    for ky in range(KH):
        y0 = ky * dh
        for kx in range(KW):
            x0 = kx * dw
            cols[:, :, ky, kx] = xp[:, :, y0:y0 + sh * (OH - 1) + 1:sh, x0:x0 + sw * (OW - 1) + 1:sw]
    return _grouped_gemm(cols.reshape(N, C, KH * KW, OH * OW), w, groups, acc).reshape(N, O, OH, OW)


def _grouped_gemm(cols, w, groups, acc):
    """cols [N, C, K, P] x weight [O, C/g, KH, KW] -> [N, O, P]."""
    N, C, K, P = cols.shape
    O = w.shape[0]
    g = groups
    cols = cols.reshape(N, g, (C // g) * K, P)
    wm = w.astype(acc, copy=False).reshape(g, O // g, (C // g) * K)
    return np.matmul(wm[None], cols).reshape(N, O, P)


def _to_primal(x, layout, primal):
    """numpy: tensor in ``layout`` -> the plain layout spelled by ``primal`` (e.g. 'NCHW')."""
    if layout == primal:
        return x
    return layout_transform_np(x, layout, primal)


def _conv2d_compute(inputs, attrs, out_type):
    x, w = inputs[0], inputs[1]
    dl, kl = attrs["data_layout"], attrs["kernel_layout"]
    x = _to_primal(x, dl, "NCHW")
    w = _to_primal(w, kl, "OIHW")
    if attrs["groups"] == 1 and x.shape[1] != w.shape[1]:  # zero-padded channels on one side
        c = min(x.shape[1], w.shape[1])
        x, w = x[:, :c], w[:, :c]
    acc = _acc(x.dtype)
    out = conv2d_np(x, w, attrs["strides"], attrs["padding"], attrs["dilation"], attrs["groups"], acc)
    if len(inputs) > 2:
        out = out + inputs[2].astype(acc).reshape(1, -1, 1, 1)
    ol = attrs["out_layout"] or dl
    if ol != "NCHW":
        out = layout_transform_np(out, "NCHW", ol)
    return _cast(out, out_type.dtype)


def _conv_macs(types, out, attrs, deformable=False):
    wt = types[2] if deformable else types[1]
    if deformable:
        k = dict(zip("OIHW", wt.shape))
        n, o, oh, ow = out.shape
    else:
        from ..topi.nn.layout import Layout
        k = Layout.parse(attrs["kernel_layout"]).primal_shape(wt.shape)
        po = Layout.parse(attrs["out_layout"] or attrs["data_layout"]).primal_shape(out.shape)
        n, o, oh, ow = po["N"], k["O"], po["H"], po["W"]
    return n * o * oh * ow * k["I"] * k["H"] * k["W"]


_CONV_ATTRS = (
    Attr("strides", "pair", (1, 1), "stride (sh, sw)"),
    Attr("padding", "pad4", (0, 0, 0, 0), "padding (top, left, bottom, right)"),
    Attr("dilation", "pair", (1, 1), "dilation (dh, dw)"),
    Attr("groups", "int", 1, "channel groups", check=_positive),
)


@_op("conv2d", ("data", "weight", "bias?"),
     _CONV_ATTRS + (
         Attr("data_layout", "layout", "NCHW", "layout of data and (by default) output"),
         Attr("kernel_layout", "layout", "OIHW", "layout of the weight"),
         Attr("out_layout", "layout", "", "layout of the output ('' = data_layout)"),
         Attr("out_dtype", "dtype", "", "output/accumulator dtype ('' = data dtype)"),
     ),
     doc="2-D convolution; optional bias [O] added per output channel.")
def _conv2d_infer(ctx, types, attrs):
    return _conv_infer(ctx, types, attrs)


_conv2d_infer.compute(_conv2d_compute, _conv_macs)

# ====================================================================== deformable_conv2d


def deformable_conv2d_np(x, offset, w, strides=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                         deformable_groups=1, groups=1):
    """numpy reference of DCN v1 (``torchvision.ops.deform_conv2d`` without mask), in float64.

    Kernel tap ``k = ky*KW + kx`` of deformable group ``g`` samples the input at
    ``(oy*sh - top + ky*dh + offset[n, g*2K + 2k], ox*sw - left + kx*dw + offset[n, g*2K + 2k + 1])``
    bilinearly; samples with y <= -1, y >= H, x <= -1 or x >= W are zero, and corners outside the
    image contribute zero.
    """
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    OH, OW = offset.shape[2:]
    sh, sw = strides
    dh, dw = dilation
    pt, pl = padding[0], padding[1]
    dg, K = deformable_groups, KH * KW
    Cd = C // dg
    xf = x.astype(np.float64).reshape(N, dg, Cd, H * W)
    off = offset.astype(np.float64).reshape(N, dg, K, 2, OH, OW)
    base_y = (np.arange(OH) * sh - pt)[:, None].astype(np.float64)
    base_x = (np.arange(OW) * sw - pl)[None, :].astype(np.float64)
    cols = np.empty((N, dg, Cd, K, OH * OW))
    for k in range(K):
        ky, kx = divmod(k, KW)
        y = base_y + ky * dh + off[:, :, k, 0]
        xx = base_x + kx * dw + off[:, :, k, 1]
        inside = (y > -1) & (y < H) & (xx > -1) & (xx < W)
        y0, x0 = np.floor(y), np.floor(xx)
        ly, lx = y - y0, xx - x0
        y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
        acc = np.zeros((N, dg, Cd, OH * OW))
        for yi, xi, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                           (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
            ok = inside & (yi >= 0) & (yi <= H - 1) & (xi >= 0) & (xi <= W - 1)
            idx = np.where(ok, yi * W + xi, 0).reshape(N, dg, 1, OH * OW)
            v = np.take_along_axis(xf, np.broadcast_to(idx, (N, dg, Cd, OH * OW)), axis=3)
            acc += v * np.where(ok, wt, 0.0).reshape(N, dg, 1, OH * OW)
        cols[:, :, :, k] = acc
    return _grouped_gemm(cols.reshape(N, C, K, OH * OW), w, groups, np.float64).reshape(N, O, OH, OW)


def _deform_compute(inputs, attrs, out_type):
    x, off, w = inputs[:3]
    out = deformable_conv2d_np(x, off, w, attrs["strides"], attrs["padding"], attrs["dilation"],
                               attrs["deformable_groups"], attrs["groups"])
    if len(inputs) > 3:
        out = out + inputs[3].astype(np.float64).reshape(1, -1, 1, 1)
    return _cast(out, out_type.dtype)


@_op("deformable_conv2d", ("data", "offset", "weight", "bias?"),
     _CONV_ATTRS + (
         Attr("deformable_groups", "int", 1, "offset groups", check=_positive),
         Attr("out_dtype", "dtype", "", "output dtype ('' = data dtype)"),
     ),
     doc="Deformable convolution v1 (torchvision.ops.deform_conv2d semantics, no mask).")
def _deform_infer(ctx, types, attrs):
    return _conv_infer(ctx, types, attrs, deformable=True)


_deform_infer.compute(_deform_compute, lambda t, o, a: _conv_macs(t, o, a, deformable=True))


# ====================================================================== dense / matmul
@_op("dense", ("data", "weight", "bias?"),
     (Attr("units", "int", None, "output features (checked against the weight)"),
      Attr("out_dtype", "dtype", "", "output dtype ('' = data dtype)")),
     doc="data [N, K] x weight [units, K]^T (+ bias [units]).")
def _dense_infer(ctx, types, attrs):
    dt, wt = types[0], types[1]
    if dt.ndim != 2 or wt.ndim != 2:
        raise ctx.shape_error(f"data must be [N, K] and weight [units, K], got {dt} and {wt}")
    if dt.shape[1] != wt.shape[1]:
        raise ctx.shape_error(f"data has {dt.shape[1]} features but weight {wt} expects {wt.shape[1]}")
    units = wt.shape[0]
    if attrs["units"] is not None and attrs["units"] != units:
        raise ctx.attr_error("units", f"= {attrs['units']} but the weight has {units} rows")
    if dt.dtype != wt.dtype and not attrs["out_dtype"]:
        raise ctx.dtype_error(f"data is {dt.dtype} but weight is {wt.dtype}; make them agree or set out_dtype")
    out_dtype = attrs["out_dtype"] or dt.dtype
    if len(types) > 2:
        bt = types[2]
        if bt.shape != (units,):
            raise ctx.shape_error(f"bias must have shape [{units}], got {list(bt.shape)}")
        if bt.dtype != out_dtype:
            raise ctx.dtype_error(f"bias is {bt.dtype}, the output is {out_dtype}")
    return TensorType((dt.shape[0], units), out_dtype)


def _dense_compute(inputs, attrs, out_type):
    acc = _acc(inputs[0].dtype)
    out = inputs[0].astype(acc) @ inputs[1].astype(acc).T
    if len(inputs) > 2:
        out = out + inputs[2].astype(acc)
    return _cast(out, out_type.dtype)


_dense_infer.compute(_dense_compute, lambda t, o, a: o.shape[0] * o.shape[1] * t[0].shape[1])


@_op("matmul", ("a", "b"), (Attr("out_dtype", "dtype", "", "output dtype ('' = a's dtype)"),),
     doc="numpy matmul of tensors of rank >= 2 ([..., M, K] x [..., K, N]; batch dims broadcast).")
def _matmul_infer(ctx, types, attrs):
    a, b = types
    if a.ndim < 2 or b.ndim < 2:
        raise ctx.shape_error(f"both operands must be at least 2-D, got {a} and {b}")
    if a.shape[-1] != b.shape[-2]:
        raise ctx.shape_error(f"inner dimensions differ: {a} has {a.shape[-1]} columns, {b} has {b.shape[-2]} rows")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ctx.shape_error(f"batch dimensions of {a} and {b} do not broadcast") from None
    if a.dtype != b.dtype and not attrs["out_dtype"]:
        raise ctx.dtype_error(f"a is {a.dtype} but b is {b.dtype}")
    return TensorType(tuple(batch) + (a.shape[-2], b.shape[-1]), attrs["out_dtype"] or a.dtype)


_matmul_infer.compute(
    lambda i, a, o: _cast(np.matmul(i[0].astype(_acc(i[0].dtype)), i[1].astype(_acc(i[0].dtype))), o.dtype),
    lambda t, o, a: int(np.prod(o.shape)) * t[0].shape[-1])


# ====================================================================== normalization / bias
@_op("batch_norm", ("data", "gamma", "beta", "moving_mean", "moving_var"),
     (Attr("axis", "int", 1, "channel axis"),
      Attr("epsilon", "float", 1e-5, "added to the variance", check=lambda v: None if v >= 0 else "must be >= 0")),
     doc="Inference batch norm: (x - mean) / sqrt(var + epsilon) * gamma + beta along axis.")
def _bn_infer(ctx, types, attrs):
    dt = types[0]
    axis = _canon_axis(ctx, "axis", attrs["axis"], dt.ndim)
    C = dt.shape[axis]
    for nm, t in zip(("gamma", "beta", "moving_mean", "moving_var"), types[1:]):
        if t.shape != (C,):
            raise ctx.shape_error(f"{nm} must have shape [{C}] (channels on axis {axis}), got {list(t.shape)}")
    _same_dtype(ctx, types, ("data", "gamma", "beta", "moving_mean", "moving_var"))
    return dt


def _bcast_shape(ndim, axis, n):
    s = [1] * ndim
    s[axis] = n
    return s


def _bn_compute(inputs, attrs, out_type):
    x, g, b, m, v = (a.astype(np.float64) for a in inputs)
    axis = attrs["axis"] % x.ndim
    s = _bcast_shape(x.ndim, axis, x.shape[axis])
    scale = g / np.sqrt(v + attrs["epsilon"])
    return _cast(x * scale.reshape(s) + (b - m * scale).reshape(s), out_type.dtype)


_bn_infer.compute(_bn_compute)


@_op("bias_add", ("data", "bias"), (Attr("axis", "int", 1, "axis the bias runs along"),),
     doc="data + bias broadcast along axis.")
def _bias_add_infer(ctx, types, attrs):
    dt, bt = types
    axis = _canon_axis(ctx, "axis", attrs["axis"], dt.ndim)
    if bt.shape != (dt.shape[axis],):
        raise ctx.shape_error(f"bias must have shape [{dt.shape[axis]}] (axis {axis} of {dt}), got {list(bt.shape)}")
    _same_dtype(ctx, types, ("data", "bias"))
    return dt


_bias_add_infer.compute(lambda i, a, o: _cast(
    i[0] + i[1].reshape(_bcast_shape(i[0].ndim, a["axis"] % i[0].ndim, i[1].shape[0])), o.dtype))


# ====================================================================== element-wise
def _unary(name, fn, attrs=(), doc="", check=None):
    @_op(name, ("data",), attrs, doc=doc)
    def infer(ctx, types, a):
        if check:
            check(ctx, types[0], a)
        return types[0]
    infer.compute(lambda i, a, o: _cast(fn(i[0], a), o.dtype))


_unary("relu", lambda x, a: np.maximum(x, np.zeros((), x.dtype)), doc="max(x, 0).")


def _clip_check(ctx, t, a):
    if a["min"] > a["max"]:
        raise ctx.attr_error("min", f"= {a['min']} is larger than max = {a['max']}")


def _clip_np(x, a):
    lo, hi = a["min"], a["max"]
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        lo, hi = max(lo, info.min), min(hi, info.max)
        return np.clip(x, int(math.ceil(lo)), int(math.floor(hi)))
    return np.clip(x, lo, hi)


_unary("clip", _clip_np, (Attr("min", "float", REQUIRED, "lower bound"), Attr("max", "float", REQUIRED, "upper bound")),
       doc="min(max(x, min), max).", check=_clip_check)
_unary("sigmoid", lambda x, a: 1.0 / (1.0 + np.exp(-x.astype(np.float64))), doc="1 / (1 + exp(-x)).",
       check=lambda ctx, t, a: _float_only(ctx, t))


def _float_only(ctx, t):
    if np.dtype(t.dtype).kind != "f":
        raise ctx.dtype_error(f"needs a floating-point input, got {t.dtype}")


@_op("cast", ("data",), (Attr("dtype", "dtype", REQUIRED, "target dtype"),), doc="Convert to dtype.")
def _cast_infer(ctx, types, attrs):
    if not attrs["dtype"]:
        raise ctx.attr_error("dtype", "must name a dtype")
    return TensorType(types[0].shape, attrs["dtype"], types[0].layout)


_cast_infer.compute(lambda i, a, o: _contig(i[0].astype(o.dtype)))


def _binary(name, fn, doc):
    @_op(name, ("lhs", "rhs"), (), doc=doc)
    def infer(ctx, types, attrs):
        a, b = types
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ctx.shape_error(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
        _same_dtype(ctx, types, ("lhs", "rhs"))
        if a.layout and b.layout and a.layout != b.layout:
            raise ctx.shape_error(f"operands have different layouts ({a.layout}, {b.layout})")
        layout = a.layout if a.ndim >= b.ndim else b.layout
        return TensorType(shape, a.dtype, layout or (b.layout if a.ndim == b.ndim else ""))
    infer.compute(lambda i, a, o: _cast(fn(i[0], i[1]), o.dtype))


_binary("add", np.add, "Element-wise lhs + rhs with numpy broadcasting.")
_binary("sub", np.subtract, "Element-wise lhs - rhs with numpy broadcasting.")
_binary("mul", np.multiply, "Element-wise lhs * rhs with numpy broadcasting.")


# ====================================================================== pooling
_POOL_ATTRS = (
    Attr("pool_size", "pair", REQUIRED, "window (kh, kw)"),
    Attr("strides", "pair", (1, 1), "stride (sh, sw)"),
    Attr("padding", "pad4", (0, 0, 0, 0), "padding (top, left, bottom, right)"),
    Attr("ceil_mode", "bool", False, "round the output size up"),
)


def _pool_infer(ctx, types, attrs, packed_ok=False):
    t = types[0]
    packed = packed_ok and t.ndim == 5 and t.layout.startswith("NCHW") and t.layout.endswith("c")
    if t.ndim != 4 and not packed:
        raise ctx.shape_error(f"data must be 4-D NCHW{' or 5-D NCHW[x]c' if packed_ok else ''}, got {t}")
    if not packed:
        _check_layout(ctx, t, "NCHW", "data")
    kh, kw = attrs["pool_size"]
    sh, sw = attrs["strides"]
    pt, pl, pb, pr = attrs["padding"]
    N, C, H, W = t.shape[:4]
    OH = _pool_out(ctx, H, kh, sh, pt, pb, attrs["ceil_mode"], "height")
    OW = _pool_out(ctx, W, kw, sw, pl, pr, attrs["ceil_mode"], "width")
    return TensorType((N, C, OH, OW) + tuple(t.shape[4:]), t.dtype, t.layout)


def _packed_pool_np(x, fn):
    """Apply an NCHW pooling ``fn`` to an NCHW or NCHW[x]c array (channel blocks pooled alike)."""
    if x.ndim == 4:
        return fn(x)
    N, Cc, H, W, c = x.shape
    y = fn(x.transpose(0, 1, 4, 2, 3).reshape(N, Cc * c, H, W))
    return y.reshape(N, Cc, c, *y.shape[2:]).transpose(0, 1, 3, 4, 2)


def pool2d_np(x, kind, pool_size, strides, padding, out_hw, count_include_pad=False):
    """numpy reference 2-D pooling (``kind`` "max" or "avg") producing ``out_hw`` outputs.

    Max pooling ignores padding; average pooling divides by the number of input elements in
    the window (``count_include_pad``: by the window clipped to the padded input).
    """
    from numpy.lib.stride_tricks import sliding_window_view
    N, C, H, W = x.shape
    kh, kw = pool_size
    sh, sw = strides
    pt, pl, pb, pr = padding
    OH, OW = out_hw
    eb = max(0, (OH - 1) * sh + kh - (H + pt + pb))
    er = max(0, (OW - 1) * sw + kw - (W + pl + pr))
    pads = ((0, 0), (0, 0), (pt, pb + eb), (pl, pr + er))
    if kind == "max":
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xp = np.pad(x, pads, constant_values=fill)
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :OH, :OW]
        return win.max(axis=(-2, -1))
    xp = np.pad(x.astype(np.float64), pads)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :OH, :OW]
    s = win.sum(axis=(-2, -1))
    mask = np.zeros(xp.shape[2:])
    if count_include_pad:
        mask[:H + pt + pb, :W + pl + pr] = 1
    else:
        mask[pt:pt + H, pl:pl + W] = 1
    cnt = sliding_window_view(mask, (kh, kw))[::sh, ::sw][:OH, :OW].sum(axis=(-2, -1))
    return s / np.maximum(cnt, 1)


@_op("max_pool2d", ("data",), _POOL_ATTRS,
     doc="2-D max pooling (NCHW, or packed NCHW[x]c after layout rewriting); padding never wins.")
def _maxpool_infer(ctx, types, attrs):
    return _pool_infer(ctx, types, attrs, packed_ok=True)


_maxpool_infer.compute(lambda i, a, o: _cast(_packed_pool_np(
    i[0], lambda x: pool2d_np(x, "max", a["pool_size"], a["strides"], a["padding"], o.shape[2:4])), o.dtype))


@_op("avg_pool2d", ("data",),
     _POOL_ATTRS + (Attr("count_include_pad", "bool", False, "count padding in the divisor"),),
     doc="2-D average pooling (NCHW).")
def _avgpool_infer(ctx, types, attrs):
    return _pool_infer(ctx, types, attrs)


_avgpool_infer.compute(lambda i, a, o: _cast(pool2d_np(i[0], "avg", a["pool_size"], a["strides"], a["padding"],
                                                       o.shape[2:], a["count_include_pad"]), o.dtype))


def _global_pool_infer(ctx, types, attrs):
    t = types[0]
    if t.ndim != 4:
        raise ctx.shape_error(f"data must be 4-D NCHW, got {t}")
    _check_layout(ctx, t, "NCHW", "data")
    return TensorType(t.shape[:2] + (1, 1), t.dtype, t.layout)


register_op(OpDef("global_avg_pool2d", ("data",), (), _global_pool_infer,
                  lambda i, a, o: _cast(i[0].astype(_acc(i[0].dtype)).mean(axis=(2, 3), keepdims=True), o.dtype),
                  doc="Mean over H and W -> [N, C, 1, 1]."))
register_op(OpDef("global_max_pool2d", ("data",), (), _global_pool_infer,
                  lambda i, a, o: _cast(i[0].max(axis=(2, 3), keepdims=True), o.dtype),
                  doc="Max over H and W -> [N, C, 1, 1]."))


# ====================================================================== shape ops
@_op("concatenate", ("*data",), (Attr("axis", "int", 1, "axis to join along"),),
     doc="Join tensors along axis; other dimensions must agree.")
def _concat_infer(ctx, types, attrs):
    t0 = types[0]
    axis = _canon_axis(ctx, "axis", attrs["axis"], t0.ndim)
    total = 0
    for i, t in enumerate(types):
        if t.ndim != t0.ndim:
            raise ctx.shape_error(f"input {i} is {t.ndim}-D, input 0 is {t0.ndim}-D")
        if t.dtype != t0.dtype:
            raise ctx.dtype_error(f"input {i} is {t.dtype}, input 0 is {t0.dtype}")
        if t.layout != t0.layout:
            raise ctx.shape_error(f"input {i} has layout {t.layout or 'default'}, input 0 {t0.layout or 'default'}")
        for d in range(t0.ndim):
            if d != axis and t.shape[d] != t0.shape[d]:
                raise ctx.shape_error(f"input {i} {list(t.shape)} differs from input 0 {list(t0.shape)} on axis {d} "
                                      f"(only axis {axis} may differ)")
        total += t.shape[axis]
    shape = list(t0.shape)
    shape[axis] = total
    return TensorType(shape, t0.dtype, t0.layout)


_concat_infer.compute(lambda i, a, o: _contig(np.concatenate(i, axis=a["axis"] % o.ndim)))


@_op("flatten", ("data",), (Attr("axis", "int", 1, "dims before axis form the rows"),),
     doc="Reshape to [prod(shape[:axis]), prod(shape[axis:])] (ONNX Flatten; axis=1 is batch_flatten).")
def _flatten_infer(ctx, types, attrs):
    t = types[0]
    axis = attrs["axis"]
    if not -t.ndim <= axis <= t.ndim:
        raise ctx.attr_error("axis", f"= {axis} is out of range for a {t.ndim}-D input")
    if axis < 0:
        axis += t.ndim
    return TensorType((int(np.prod(t.shape[:axis])), int(np.prod(t.shape[axis:]))), t.dtype)


_flatten_infer.compute(lambda i, a, o: _contig(i[0].reshape(o.shape)))


def infer_reshape(shape, newshape):
    """The output shape of reshaping ``shape`` to ``newshape`` (0 copies the input dim, -1 infers).

    Raises ``ValueError`` with the reason when it does not fit.
    """
    out, neg = [], None
    for i, d in enumerate(newshape):
        if d == 0:
            if i >= len(shape):
                raise ValueError(f"0 at position {i} but the input has only {len(shape)} dims")
            out.append(shape[i])
        elif d == -1:
            if neg is not None:
                raise ValueError("at most one -1 is allowed")
            neg = i
            out.append(1)
        elif d < -1:
            raise ValueError(f"invalid dimension {d}")
        else:
            out.append(d)
    total = int(np.prod(shape, dtype=np.int64))
    known = int(np.prod(out, dtype=np.int64))
    if neg is not None:
        if known == 0 or total % known:
            raise ValueError(f"cannot infer the -1 dimension: {total} elements do not divide by {known}")
        out[neg] = total // known
    elif known != total:
        raise ValueError(f"{list(shape)} has {total} elements, {list(out)} has {known}")
    return tuple(out)


@_op("reshape", ("data",), (Attr("newshape", "ints", REQUIRED, "target shape; 0 copies, -1 infers"),),
     doc="Reshape (row-major); newshape may use 0 (copy the input dim) and one -1 (infer).")
def _reshape_infer(ctx, types, attrs):
    t = types[0]
    try:
        return TensorType(infer_reshape(t.shape, attrs["newshape"]), t.dtype)
    except ValueError as e:
        raise ctx.attr_error("newshape", f"= {attrs['newshape']} does not fit input {t}: {e}") from None


_reshape_infer.compute(lambda i, a, o: _contig(i[0].reshape(o.shape)))


@_op("transpose", ("data",), (Attr("axes", "ints", None, "permutation (default: reverse)"),),
     doc="Permute dimensions.")
def _transpose_infer(ctx, types, attrs):
    t = types[0]
    axes = attrs["axes"] if attrs["axes"] is not None else tuple(range(t.ndim))[::-1]
    if sorted(a % t.ndim if -t.ndim <= a < t.ndim else -1 for a in axes) != list(range(t.ndim)):
        raise ctx.attr_error("axes", f"= {axes} is not a permutation of {t.ndim} axes")
    return TensorType(tuple(t.shape[a] for a in axes), t.dtype)


_transpose_infer.compute(lambda i, a, o: _contig(np.transpose(i[0], a["axes"])))


@_op("softmax", ("data",), (Attr("axis", "int", -1, "axis to normalize"),), doc="exp(x) / sum(exp(x)) along axis.")
def _softmax_infer(ctx, types, attrs):
    _canon_axis(ctx, "axis", attrs["axis"], types[0].ndim)
    _float_only(ctx, types[0])
    return types[0]


def _softmax_np(i, a, o):
    x = i[0].astype(np.float64)
    e = np.exp(x - x.max(axis=a["axis"], keepdims=True))
    return _cast(e / e.sum(axis=a["axis"], keepdims=True), o.dtype)


_softmax_infer.compute(_softmax_np)


@_op("pad", ("data",),
     (Attr("pad_width", "pad_width", REQUIRED, "((before, after), ...) per dimension"),
      Attr("value", "float", 0.0, "fill value (constant mode)"),
      Attr("mode", "str", "constant", "constant, edge or reflect", choices=("constant", "edge", "reflect"))),
     doc="Pad every dimension.")
def _pad_infer(ctx, types, attrs):
    t = types[0]
    pw = attrs["pad_width"]
    if len(pw) != t.ndim:
        raise ctx.attr_error("pad_width", f"has {len(pw)} pairs for a {t.ndim}-D input")
    if attrs["mode"] == "reflect" and any(b >= s or a >= s for (b, a), s in zip(pw, t.shape)):
        raise ctx.attr_error("pad_width", "reflect padding must be smaller than the dimension")
    return TensorType(tuple(s + b + a for s, (b, a) in zip(t.shape, pw)), t.dtype, t.layout)


def _pad_np(i, a, o):
    if a["mode"] == "constant":
        return _cast(np.pad(i[0], a["pad_width"], constant_values=a["value"]), o.dtype)
    return np.pad(i[0], a["pad_width"], mode=a["mode"])


_pad_infer.compute(_pad_np)


# ====================================================================== layout_transform
def layout_transform_np(x, src: str, dst: str, extents: dict | None = None):
    """numpy: re-lay out ``x`` from ``src`` to ``dst`` (zero-padding split axes; ``extents``
    crops primal axes to their true size, e.g. ``{"C": 3}`` when unpacking NCHW4c)."""
    from ..topi.nn.layout import Layout
    s, d = Layout.parse(src), Layout.parse(dst)
    pos = {ax: i for i, ax in enumerate(s.axes)}
    perm, merged = [], []
    for p in s.primal:
        f = s.factor(p)
        perm.append(pos[(p, 0)])
        if f > 1:
            perm.append(pos[(p, f)])
        merged.append(x.shape[pos[(p, 0)]] * f)
    y = np.transpose(x, perm).reshape(merged)
    true = dict(zip(s.primal, merged))
    true.update(extents or {})
    y = y[tuple(slice(0, true[p]) for p in s.primal)]
    y = np.transpose(y, [s.primal.index(p) for p in d.primal])
    pads, split = [], []
    for p in d.primal:
        f, n = d.factor(p), true[p]
        full = -(-n // f) * f
        pads.append((0, full - n))
        split.extend([full // f, f] if f > 1 else [full])
    if any(a for _, a in pads):
        y = np.pad(y, pads)
    y = y.reshape(split)
    spos, k = {}, 0
    for p in d.primal:
        spos[(p, 0)] = k
        k += 1
        if d.factor(p) > 1:
            spos[(p, d.factor(p))] = k
            k += 1
    return _contig(np.transpose(y, [spos[ax] for ax in d.axes]))


@_op("layout_transform", ("data",),
     (Attr("src_layout", "layout", REQUIRED, "layout of the input"),
      Attr("dst_layout", "layout", REQUIRED, "layout of the output"),
      Attr("extents", "any", None, "true primal extents when src is padded, e.g. {'C': 3}")),
     doc="Re-lay out a tensor (e.g. NCHW -> NCHW4c); split axes are zero-padded.")
def _lt_infer(ctx, types, attrs):
    from ..topi.nn.layout import Layout
    t = types[0]
    s, d = Layout.parse(attrs["src_layout"]), Layout.parse(attrs["dst_layout"])
    if sorted(s.primal) != sorted(d.primal):
        raise ctx.attr_error("dst_layout", f"= {d.name!r} has other primal axes than src_layout {s.name!r}")
    if t.layout and t.layout != s.name:
        raise ctx.shape_error(f"input has layout {t.layout}, src_layout is {s.name}")
    try:
        prim = s.primal_shape(t.shape)
    except ShapeError as e:
        raise ctx.shape_error(f"input {t} does not fit src_layout: {e}") from None
    ext = attrs["extents"] or {}
    if not isinstance(ext, dict):
        raise ctx.attr_error("extents", "must be a dict like {'C': 3}")
    for a, n in ext.items():
        if a not in prim or not isinstance(n, (int, np.integer)) or not 0 < n <= prim[a]:
            raise ctx.attr_error("extents", f"{a}={n} must name a primal axis with 0 < extent <= {prim.get(a)}")
        prim[a] = int(n)
    return TensorType(d.shape(prim), t.dtype, d.name)


_lt_infer.compute(lambda i, a, o: layout_transform_np(i[0], a["src_layout"], a["dst_layout"], a["extents"]))
