"""Conditions on an anchor node (``condition(attrs, in_types) -> bool``) that pick between a target's
implementations of an op."""
from __future__ import annotations

import re

__all__ = ["packed_int8_conv2d", "nhwc_int8_conv2d", "gemm_int8_dense", "split_k_dense", "x86_int8_conv2d",
           "nchwc_conv2d", "nchwc_depthwise_conv2d", "packed_dense", "x86_int8_dense", "batched_matmul"]


def batched_matmul(attrs: dict, in_types: list) -> bool:
    """A matmul with a batch dimension (an operand of rank > 2)."""
    return any(t.ndim > 2 for t in in_types)


def packed_int8_conv2d(attrs: dict, in_types: list) -> bool:
    """An int8/uint8 conv2d on packed data (``NCHW[x]c``): the dp4a-style templates."""
    layout = attrs.get("data_layout", "NCHW")
    return (in_types[0].dtype in ("int8", "uint8") and layout.startswith("NCHW") and layout.endswith("c")
            and not is_nchwc_layout(attrs))


def nhwc_int8_conv2d(attrs: dict, in_types: list) -> bool:
    """An int8 conv2d on NHWC data (OHWI weights): the implicit GEMM on the int8 tensor cores."""
    return in_types[0].dtype == "int8" and attrs.get("data_layout") == "NHWC"


def gemm_int8_dense(attrs: dict, in_types: list) -> bool:
    """An int8 dense that ``alter_layout`` gave to the tensor-core GEMM (``gemm_int8``)."""
    return bool(attrs.get("gemm_int8")) and in_types[0].dtype == "int8"


def split_k_dense(attrs: dict, in_types: list) -> bool:
    """An int8 dense of a small batch that ``alter_layout`` split over slices of its features (``split_k``)."""
    return attrs.get("split_k", 0) > 0 and in_types[0].dtype == "int8"


def x86_int8_conv2d(attrs: dict, in_types: list) -> bool:
    """An int8 conv2d in the x86 template's layouts (``NCHW[x]c`` data with x 2 to 16; ``OIHW[L]o4i``
    weights, L 8 or 16, or int16 ``OIHW8o2i`` ones), which ``alter_layout`` picks only for LLVM targets
    with AVX2 or VNNI."""
    return in_types[0].dtype in ("int8", "uint8") and is_x86_int8_layout(attrs)


def is_x86_int8_layout(attrs: dict) -> bool:
    """Whether a conv2d's layouts are the x86 int8 template's (groups 1)."""
    kl = attrs.get("kernel_layout", "OIHW")
    return (attrs.get("data_layout") in ("NCHW2c", "NCHW4c", "NCHW8c", "NCHW16c")
            and kl in ("OIHW8o4i", "OIHW16o4i", "OIHW8o2i") and attrs.get("groups", 1) == 1)


_NCHWC = re.compile(r"NCHW(\d+)c$")
_OIHW_IO = re.compile(r"OIHW(\d+)i(\d+)o$")
_OIHW_O = re.compile(r"OIHW(\d+)o$")


def nchwc_conv2d(attrs: dict, in_types: list) -> bool:
    """A conv2d in the CPU's packed layouts (``NCHW[x]c`` data, ``OIHW[x]i[y]o`` weights, groups 1),
    which ``alter_layout`` picks for float convs on LLVM targets with AVX2 or AVX-512."""
    return is_nchwc_layout(attrs) and attrs.get("groups", 1) == 1


def nchwc_depthwise_conv2d(attrs: dict, in_types: list) -> bool:
    """A depthwise conv2d in the CPU's packed layouts (``NCHW[x]c`` data, ``OIHW[x]o`` weights)."""
    return is_nchwc_layout(attrs) and attrs.get("groups", 1) > 1


def is_nchwc_layout(attrs: dict) -> bool:
    """Whether a conv2d's layouts are those of ``topi/nn/conv2d_nchwc.py`` (data ``NCHW[x]c``, kernel
    ``OIHW[x]i[y]o``; depthwise, groups > 1: ``OIHW[x]o``)."""
    d = _NCHWC.match(attrs.get("data_layout", "NCHW"))
    if not d:
        return False
    kl = attrs.get("kernel_layout", "OIHW")
    if attrs.get("groups", 1) > 1:
        k = _OIHW_O.match(kl)
        return bool(k) and k.group(1) == d.group(1)
    k = _OIHW_IO.match(kl)
    return bool(k) and k.group(1) == d.group(1)


def packed_dense(attrs: dict, in_types: list) -> bool:
    """A float dense whose weight ``alter_layout`` packed as ``OI[b]o`` (``dense_packed``)."""
    wl = attrs.get("weight_layout", "OI")
    return wl != "OI" and wl.endswith("o") and in_types[0].dtype not in ("int8", "uint8")


def x86_int8_dense(attrs: dict, in_types: list) -> bool:
    """An int8 dense whose weight ``alter_layout`` packed as ``OI[L]o4i`` for ``dot_u8s8``."""
    return attrs.get("weight_layout", "OI").endswith("o4i") and in_types[0].dtype in ("int8", "uint8")
