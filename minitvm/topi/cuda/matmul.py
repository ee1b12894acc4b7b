"""CUDA schedules for ``topi.nn.matmul``: the classic GPU GEMM progression.

``naive``: one thread per output. ``shared``: blocks stage tiles of A and B in shared memory
and each thread accumulates a register tile. ``vthread``: the register tile is spread over
virtual threads so each thread's loads from shared memory are strided, conflict-free and
vectorized (the layout of TVM's classic ``cuda_gemm_square`` recipe). ``double_buffer``
overlaps loading the next k-tile with computing on the current one.
"""
from __future__ import annotations

from ... import te
from ..generic import matmul as generic_matmul
from .reduction import schedule_reduce_per_output


def schedule_batch_matmul(outs):
    """A batched ``topi.nn.matmul`` (tag ``batch_matmul``, epilogues inlined): one thread per output
    element accumulates its dot product in registers."""
    return generic_matmul.schedule_batch_matmul(outs, schedule_reduce_per_output)


def schedule_matmul_naive(C, threads: int = 16):
    """One thread per output element, 2-D blocks of ``threads x threads``."""
    s = te.create_schedule(C.op)
    i, j = s[C].op.axis
    by, ty = s[C].split(i, factor=threads)
    bx, tx = s[C].split(j, factor=threads)
    s[C].reorder(by, bx, ty, tx)
    s[C].bind(by, te.thread_axis("blockIdx.y"))
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(ty, te.thread_axis("threadIdx.y"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    return s


def schedule_matmul(C, block: int = 64, thread_tile: int = 4, k_tile: int = 8, double_buffer: bool = False):
    """Shared-memory tiles of A and B per block, a ``thread_tile``² register tile per thread."""
    s = te.create_schedule(C.op)
    A, B = C.op.input_tensors
    AA = s.cache_read(A, "shared", [C])
    BB = s.cache_read(B, "shared", [C])
    CL = s.cache_write(C, "local")
    i, j = s[C].op.axis
    threads = block // thread_tile
    by, yi = s[C].split(i, factor=block)
    bx, xi = s[C].split(j, factor=block)
    ty, yi = s[C].split(yi, nparts=threads)
    tx, xi = s[C].split(xi, nparts=threads)
    s[C].reorder(by, bx, ty, tx, yi, xi)
    thread_y, thread_x = te.thread_axis("threadIdx.y"), te.thread_axis("threadIdx.x")
    s[C].bind(by, te.thread_axis("blockIdx.y"))
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(ty, thread_y)
    s[C].bind(tx, thread_x)
    s[CL].compute_at(s[C], tx)
    (k,) = s[CL].op.reduce_axis
    ko, ki = s[CL].split(k, factor=k_tile)
    ci, cj = s[CL].op.axis
    s[CL].reorder(ko, ki, ci, cj)
    s[CL].unroll(ki)
    s[CL].unroll(ci)
    s[CL].unroll(cj)
    for T in (AA, BB):
        s[T].compute_at(s[CL], ko)
        fused = s[T].fuse(*s[T].op.axis)
        rest, tx_ = s[T].split(fused, factor=threads)
        _, ty_ = s[T].split(rest, factor=threads)
        s[T].bind(tx_, thread_x)
        s[T].bind(ty_, thread_y)
        if double_buffer:
            s[T].double_buffer()
    return s


def schedule_matmul_vthread(C, scale: int = 8, num_thread: int = 8, k_tile: int = 8, vthread: int = 2,
                            vector: int = 4, double_buffer: bool = True):
    """Block tile ``scale*num_thread`` square; each thread owns ``scale``² outputs spread over
    ``vthread``² virtual threads (so neighbouring threads touch neighbouring elements), operands
    staged through shared memory with vector loads and then through registers."""
    s = te.create_schedule(C.op)
    A, B = C.op.input_tensors
    AA = s.cache_read(A, "shared", [C])
    BB = s.cache_read(B, "shared", [C])
    AL = s.cache_read(AA, "local", [C])
    BL = s.cache_read(BB, "local", [C])
    CC = s.cache_write(C, "local")
    block_factor = scale * num_thread
    block_x, block_y = te.thread_axis("blockIdx.x"), te.thread_axis("blockIdx.y")
    thread_x, thread_y = te.thread_axis("threadIdx.x"), te.thread_axis("threadIdx.y")
    thread_xz, thread_yz = te.thread_axis("vthread", name="vx"), te.thread_axis("vthread", name="vy")
    y, x = s[C].op.axis
    by, yi = s[C].split(y, factor=block_factor)
    bx, xi = s[C].split(x, factor=block_factor)
    s[C].bind(by, block_y)
    s[C].bind(bx, block_x)
    s[C].reorder(by, bx, yi, xi)
    tyz, yi = s[C].split(yi, nparts=vthread)
    ty, yi = s[C].split(yi, nparts=num_thread)
    txz, xi = s[C].split(xi, nparts=vthread)
    tx, xi = s[C].split(xi, nparts=num_thread)
    s[C].bind(tyz, thread_yz)
    s[C].bind(txz, thread_xz)
    s[C].bind(ty, thread_y)
    s[C].bind(tx, thread_x)
    s[C].reorder(tyz, txz, ty, tx, yi, xi)
    s[CC].compute_at(s[C], tx)
    yo, xo = CC.op.axis
    (k,) = s[CC].op.reduce_axis
    ko, ki = s[CC].split(k, factor=k_tile)
    s[CC].reorder(ko, ki, yo, xo)
    s[CC].unroll(ki)
    s[AA].compute_at(s[CC], ko)
    s[BB].compute_at(s[CC], ko)
    s[AL].compute_at(s[CC], ki)
    s[BL].compute_at(s[CC], ki)
    # cooperative loads: each thread moves `vector` adjacent elements at a time
    for T in (AA, BB):
        fused = s[T].fuse(*s[T].op.axis)
        fused, vec = s[T].split(fused, factor=vector)
        fused, tx_ = s[T].split(fused, factor=num_thread)
        _, ty_ = s[T].split(fused, factor=num_thread)
        s[T].bind(ty_, thread_y)
        s[T].bind(tx_, thread_x)
        s[T].vectorize(vec)
        if double_buffer:
            s[T].double_buffer()
    return s
