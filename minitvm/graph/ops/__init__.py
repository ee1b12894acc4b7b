"""The graph ops: the registry (:mod:`.registry`), the op families that register into it on
import (:mod:`.nn`, :mod:`.deformable`, :mod:`.elemwise`, :mod:`.math`, :mod:`.reduce`, :mod:`.pool`,
:mod:`.shape`, :mod:`.transform`, :mod:`.layout`) with their
computes, and the op strategies (:mod:`.strategy`) with the schedules per target
(:mod:`.schedules_cuda`, :mod:`.schedules_llvm`). The quantized ops live in
:mod:`minitvm.graph.quantize.ops`. See ``docs/graph.md``."""
from . import (deformable, elemwise, layout, math, nn, pool, reduce, schedules_cuda, schedules_llvm,  # noqa: F401
               shape, transform)  # (registration)
from .layout import layout_transform_np
from .nn import conv2d_np, deformable_conv2d_np
from .pool import pool2d_np
from .registry import REQUIRED, Attr, InferContext, OpDef, get_op, list_ops, register_op
from .shape import infer_reshape

__all__ = ["Attr", "OpDef", "REQUIRED", "register_op", "get_op", "list_ops", "InferContext", "conv2d_np",
           "deformable_conv2d_np", "pool2d_np", "infer_reshape", "layout_transform_np"]
