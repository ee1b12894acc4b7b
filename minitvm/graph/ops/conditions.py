"""Conditions on an anchor node (``condition(attrs, in_types) -> bool``) that pick between a target's
implementations of an op."""
from __future__ import annotations

__all__ = ["packed_int8_conv2d", "nhwc_int8_conv2d", "gemm_int8_dense", "x86_int8_conv2d", "batched_matmul"]


def batched_matmul(attrs: dict, in_types: list) -> bool:
    """A matmul with a batch dimension (an operand of rank > 2)."""
    return any(t.ndim > 2 for t in in_types)


def packed_int8_conv2d(attrs: dict, in_types: list) -> bool:
    """An int8/uint8 conv2d on packed data (``NCHW[x]c``): the dp4a-style templates."""
    layout = attrs.get("data_layout", "NCHW")
    return in_types[0].dtype in ("int8", "uint8") and layout.startswith("NCHW") and layout.endswith("c")


def nhwc_int8_conv2d(attrs: dict, in_types: list) -> bool:
    """An int8 conv2d on NHWC data (OHWI weights): the implicit GEMM on the int8 tensor cores."""
    return in_types[0].dtype == "int8" and attrs.get("data_layout") == "NHWC"


def gemm_int8_dense(attrs: dict, in_types: list) -> bool:
    """An int8 dense that ``alter_layout`` gave to the tensor-core GEMM (``gemm_int8``)."""
    return bool(attrs.get("gemm_int8")) and in_types[0].dtype == "int8"


def x86_int8_conv2d(attrs: dict, in_types: list) -> bool:
    """An int8 conv2d in the x86 template's layouts (``NCHW4c`` data, ``OIHW[L]o4i`` weights, L 8 or
    16), which ``alter_layout`` picks only for LLVM targets with AVX2 or VNNI."""
    return in_types[0].dtype in ("int8", "uint8") and is_x86_int8_layout(attrs)


def is_x86_int8_layout(attrs: dict) -> bool:
    """Whether a conv2d's layouts are the x86 int8 template's (groups 1)."""
    kl = attrs.get("kernel_layout", "OIHW")
    return (attrs.get("data_layout") == "NCHW4c" and kl in ("OIHW8o4i", "OIHW16o4i")
            and attrs.get("groups", 1) == 1)
