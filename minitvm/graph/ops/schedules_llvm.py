"""The LLVM (CPU) implementations of the graph ops' strategies (target kind ``"llvm"``)."""
from __future__ import annotations

from ...topi.cpu import conv2d, conv2d_int8, conv2d_nchwc, dense, dense_int8, dense_split_k, gemm_int8, injective, matmul
from .conditions import (batched_matmul, gemm_int8_dense, nchwc_conv2d, nchwc_depthwise_conv2d, nhwc_int8_conv2d,
                         packed_dense, packed_int8_conv2d, split_k_dense, x86_int8_conv2d, x86_int8_dense)
from .strategy import GENERIC, register_schedule

KIND = "llvm"

register_schedule(GENERIC, KIND, injective.schedule_injective, "injective.llvm")
register_schedule("conv2d", KIND, conv2d.schedule_conv2d_nchw, "conv2d_nchw.llvm")
register_schedule("conv2d", KIND, conv2d.schedule_conv2d_NCHWc_int8, "conv2d_NCHWc_int8.llvm",
                  condition=packed_int8_conv2d, priority=10)
register_schedule("conv2d", KIND, conv2d_int8.schedule_conv2d_NCHWc_int8_x86, conv2d_int8.TEMPLATE,
                  condition=x86_int8_conv2d, priority=15)
register_schedule("conv2d", KIND, conv2d_nchwc.schedule_conv2d_NCHWc, conv2d_nchwc.CONV_TEMPLATE,
                  condition=nchwc_conv2d, priority=15)
register_schedule("conv2d", KIND, conv2d_nchwc.schedule_depthwise_conv2d_NCHWc, conv2d_nchwc.DEPTHWISE_TEMPLATE,
                  condition=nchwc_depthwise_conv2d, priority=15)
register_schedule("conv2d", KIND, gemm_int8.schedule_int8_gemm, "conv2d_NHWC_int8_gemm.llvm",
                  condition=nhwc_int8_conv2d, priority=20)
register_schedule("deformable_conv2d", KIND, conv2d.schedule_deformable_conv2d_nchw, "deformable_conv2d_nchw.llvm")
register_schedule("dense", KIND, dense.schedule_dense, dense.TEMPLATE)
register_schedule("dense", KIND, dense.schedule_dense_packed, dense.PACKED_TEMPLATE, condition=packed_dense, priority=15)
register_schedule("dense", KIND, dense_int8.schedule_dense_int8_x86, dense_int8.TEMPLATE, condition=x86_int8_dense,
                  priority=15)
register_schedule("matmul", KIND, dense.schedule_dense, "matmul.llvm")
register_schedule("matmul", KIND, matmul.schedule_batch_matmul, "batch_matmul.llvm", condition=batched_matmul,
                  priority=10)
register_schedule("dense", KIND, gemm_int8.schedule_int8_gemm, "dense_int8_gemm.llvm", condition=gemm_int8_dense,
                  priority=20)
register_schedule("dense", KIND, dense_split_k.schedule_dense_int8_split_k, "dense_int8_split_k.llvm",
                  condition=split_k_dense, priority=25)
for _op in ("max_pool2d", "avg_pool2d"):
    register_schedule(_op, KIND, injective.schedule_pool, "pool.llvm")
for _op in ("global_avg_pool2d", "global_max_pool2d"):
    register_schedule(_op, KIND, injective.schedule_global_pool, "global_pool.llvm")
register_schedule("softmax", KIND, injective.schedule_softmax, "softmax.llvm")
register_schedule("reduce", KIND, injective.schedule_reduce, "reduce.llvm")
