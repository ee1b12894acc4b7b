"""Decoding ONNX attributes and constant inputs shared by the converters: int lists, ``auto_pad``,
dtypes, axes (attribute or input) and ``Pad``'s widths."""
from __future__ import annotations

import numpy as np

from ...graph.ops import infer_reshape

__all__ = []


def _ints(node, attr, default=None):
    v = node.get(attr, default)
    return None if v is None else [int(x) for x in v]


def _spatial_2d(node, what, n):
    if n != 4:
        raise node.error(f"only 2-D (NCHW) {what} is supported, the input is {n}-D")


def _auto_pad(node, in_hw, kernel, strides, dilations, pads):
    mode = node.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return pads
    if mode == "VALID":
        return [0, 0, 0, 0]
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.error(f"= {mode!r} is not supported", "auto_pad")
    begin, end = [], []
    for n, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small = total // 2
        b = small if mode == "SAME_UPPER" else total - small
        begin.append(b)
        end.append(total - b)
    return begin + end


def _onnx_dtype(code):
    import onnx.helper
    return onnx.helper.tensor_dtype_to_np_dtype(code)


def dtype_of(code):
    """``(minitvm dtype name or None, ONNX type name)`` of ONNX element type ``code`` (None: a type
    minitvm has no dtype for: bfloat16, float8, 4-bit, strings ...)."""
    import onnx
    from ... import dtype as dt
    from ...errors import MiniTVMError
    name = onnx.TensorProto.DataType.Name(code) if code in onnx.TensorProto.DataType.values() else str(code)
    try:
        return dt.canonical(np.dtype(_onnx_dtype(code)).name), name
    except (KeyError, TypeError, ValueError, MiniTVMError):
        return None, name


def _graph_dtype(node, code, attr="to") -> str:
    """The minitvm dtype of ONNX element type ``code`` (attribute ``attr`` of ``node``); an error
    naming them for a type minitvm has no dtype for."""
    dtype, name = dtype_of(code)
    if dtype is None:
        raise node.error(f"= {name} is not supported (minitvm has bool, integer and float16/32/64 tensors)", attr)
    return dtype


def _axes(imp, node, idx, attr="axes"):
    """Axes from an attribute (old opsets) or from constant input ``idx`` (new ones)."""
    if node.input(idx):
        return [int(a) for a in np.asarray(imp.const(node, node.input(idx), attr)).reshape(-1)]
    return _ints(node, attr)



def _check_axes(node, axes, rank, attr="axes") -> set:
    """``axes`` normalized into ``[0, rank)``; an error naming ``node`` and ``attr`` for one out of
    range or given twice."""
    out = set()
    for a in axes:
        if not -rank <= a < rank:
            raise node.error(f"= {list(axes)}: axis {a} is out of range for rank {rank}", attr)
        if a % rank in out:
            raise node.error(f"= {list(axes)} names axis {a % rank} twice", attr)
        out.add(a % rank)
    return out


def _pad_args(imp, node, ndim):
    if imp.opset >= 11:
        pads = [int(p) for p in imp.const(node, node.input(1), "pads").reshape(-1)]
        value = float(imp.const(node, node.input(2), "constant_value").reshape(-1)[0]) if node.input(2) else 0.0
        axes = _axes(imp, node, 3) if node.input(3) else list(range(ndim))
    else:
        pads, value, axes = _ints(node, "pads"), float(node.get("value", 0.0)), list(range(ndim))
    axes = [a % ndim for a in axes]
    if len(pads) != 2 * len(axes):
        raise node.error(f"= {pads} must hold 2 values per padded axis ({len(axes)})", "pads")
    if any(p < 0 for p in pads):
        raise node.error(f"= {pads}: negative pads (cropping) are not supported", "pads")
    width = [(0, 0)] * ndim
    for i, a in enumerate(axes):
        width[a] = (pads[i], pads[i + len(axes)])
    return width, value


def _reshape_target(imp, node, in_shape):
    if node.input(1):
        shape = [int(s) for s in imp.const(node, node.input(1), "shape").reshape(-1)]
    else:
        shape = _ints(node, "shape")
    if int(node.get("allowzero", 0)) and 0 in shape:
        raise node.error("= 1 with a 0 in the target shape is not supported", "allowzero")
    try:
        return infer_reshape(tuple(in_shape), shape)
    except ValueError as e:
        raise node.error(f"cannot reshape {list(in_shape)} to {shape}: {e}") from None


def _reduce_axes(node, axes_input):
    """A Reduce* node's axes: its ``axes`` input's values (opset 18 on; ``axes_input``, or None
    when it has none) or else its ``axes`` attribute; None when neither is given."""
    if axes_input is not None:
        return tuple(int(a) for a in np.asarray(axes_input).reshape(-1))
    axes = _ints(node, "axes")
    return tuple(axes) if axes is not None else None
