"""A shared-memory, register-tiled CUDA schedule for ``topi.nn.matmul``."""
from __future__ import annotations


def schedule_matmul(C, block: int = 64, thread_tile: int = 4, k_tile: int = 8, vthread: int = 1,
                    double_buffer: bool = False):
    """Each block computes ``block x block`` outputs from shared-memory tiles of A and B; each
    thread keeps a ``thread_tile x thread_tile`` accumulator in registers."""
    from ... import te
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
