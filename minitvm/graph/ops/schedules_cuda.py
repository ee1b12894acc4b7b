"""The CUDA implementations of the graph ops' strategies (target kind ``"cuda"``).

A new template for an op registers here beside the existing ones, with a condition and a
priority (see :mod:`.strategy`).
"""
from __future__ import annotations

from ...topi.cuda import (conv2d, conv2d_int8, deformable_conv2d, dense, dense_split_k, gemm_int8_tensorcore,
                          injective, matmul, reduction)
from .conditions import batched_matmul, gemm_int8_dense, nhwc_int8_conv2d, packed_int8_conv2d, split_k_dense
from .strategy import GENERIC, register_schedule

KIND = "cuda"

register_schedule(GENERIC, KIND, injective.schedule_injective, "injective.cuda")
register_schedule("conv2d", KIND, conv2d.schedule_conv2d_nchw, "conv2d_nchw.cuda")
register_schedule("conv2d", KIND, conv2d_int8.schedule_conv2d_NCHWc_int8, "conv2d_NCHWc_int8.cuda",
                  condition=packed_int8_conv2d, priority=10)
register_schedule("conv2d", KIND, gemm_int8_tensorcore.schedule_int8_gemm, "conv2d_NHWC_int8_tensorcore.cuda",
                  condition=nhwc_int8_conv2d, priority=20)
register_schedule("dense", KIND, dense.schedule_dense, "dense.cuda")
register_schedule("dense", KIND, gemm_int8_tensorcore.schedule_int8_gemm, "dense_int8_tensorcore.cuda",
                  condition=gemm_int8_dense, priority=20)
register_schedule("dense", KIND, dense_split_k.schedule_dense_int8_split_k, "dense_int8_split_k.cuda",
                  condition=split_k_dense, priority=25)
register_schedule("matmul", KIND, matmul.schedule_matmul_naive, "matmul_naive.cuda")
register_schedule("matmul", KIND, matmul.schedule_batch_matmul, "batch_matmul.cuda", condition=batched_matmul,
                  priority=10)
register_schedule("deformable_conv2d", KIND, deformable_conv2d.schedule_deformable_conv2d_nchw,
                  "deformable_conv2d_nchw.cuda")
for _op in ("max_pool2d", "avg_pool2d"):
    register_schedule(_op, KIND, reduction.schedule_pool, "pool.cuda")
for _op in ("global_avg_pool2d", "global_max_pool2d"):
    register_schedule(_op, KIND, reduction.schedule_global_pool, "global_pool.cuda")
register_schedule("softmax", KIND, reduction.schedule_softmax, "softmax.cuda")
register_schedule("reduce", KIND, reduction.schedule_reduce, "reduce.cuda")
