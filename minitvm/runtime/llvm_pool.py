"""The native thread pool behind the CPU's parallel loops, written in LLVM IR.

Generated code calls ``minitvm_parallel_for(body, n, closure)``; here that is machine code, so
a parallel loop costs a few microseconds instead of the ~100 of a Python thread pool (a
callback into Python, a queue, the GIL) that made two threads slower than one on models of
many small kernels. The pool:

- starts ``threads - 1`` detached pthreads on first use (more if the count grows later);
- cuts ``[0, n)`` into one contiguous chunk per thread; the calling thread runs chunk 0;
- publishes a job by bumping a generation counter, which idle workers poll for a while
  (``pause``) and then wait on with a futex, so an idle pool takes no CPU;
- waits until every worker has checked in (the closure lives in the caller's frame);
- runs a loop serially when the pool is busy: a parallel loop nested in another, or two
  Python threads running kernels at once;
- returns the first non-zero code a chunk returned.

Linux on x86-64 only (the futex system call's number, ``pause``); elsewhere :func:`build`
answers ``None`` and the runtime keeps its Python pool.
"""
from __future__ import annotations

import ctypes
import platform
import sys

_SPINS = 20_000          # polls before an idle worker sleeps on the futex (~0.1-0.4 ms)
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129

_FUTEX = 202             # the futex system call on x86-64 Linux

_IR = r"""
@gen = internal global i32 0, align 64
@remaining = internal global i32 0, align 64
@busy = internal global i32 0, align 64
@started = internal global i32 0, align 4
@threads = internal global i32 1, align 4
@chunks = internal global i32 0, align 4
@n = internal global i64 0, align 8
@body = internal global ptr null, align 8
@closure = internal global ptr null, align 8
@rc = internal global i32 0, align 4

declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_detach(i64)
declare i64 @syscall(i64, ...)
declare i32 @sched_yield()
declare void @llvm.x86.sse2.pause()

define internal void @relax() {{
  call void @llvm.x86.sse2.pause()
  ret void
}}

define internal ptr @worker(ptr %arg) {{
entry:
  %seen = alloca i32, align 4
  %spins = alloca i32, align 4
  %a = ptrtoint ptr %arg to i64
  %k = lshr i64 %a, 32
  %g0 = trunc i64 %a to i32
  store i32 %g0, ptr %seen, align 4
  br label %poll0
poll0:
  store i32 0, ptr %spins, align 4
  br label %poll
poll:
  %g = load atomic i32, ptr @gen acquire, align 4
  %s = load i32, ptr %seen, align 4
  %new = icmp ne i32 %g, %s
  br i1 %new, label %run, label %idle
idle:
  %c = load i32, ptr %spins, align 4
  %c1 = add i32 %c, 1
  store i32 %c1, ptr %spins, align 4
  %spin = icmp ult i32 %c, {spins}
  br i1 %spin, label %pause, label %sleep
pause:
  call void @relax()
  br label %poll
sleep:
  %s64 = zext i32 %s to i64
  %w = call i64 (i64, ...) @syscall(i64 {futex}, ptr @gen, i64 {wait}, i64 %s64, ptr null)
  br label %poll0
run:
  store i32 %g, ptr %seen, align 4
  %chunks = load i32, ptr @chunks, align 4
  %ch = zext i32 %chunks to i64
  %mine = icmp ult i64 %k, %ch
  br i1 %mine, label %work, label %finish
work:
  %n = load i64, ptr @n, align 8
  %b0 = mul i64 %n, %k
  %begin = udiv i64 %b0, %ch
  %k1 = add i64 %k, 1
  %e0 = mul i64 %n, %k1
  %end = udiv i64 %e0, %ch
  %fn = load ptr, ptr @body, align 8
  %clo = load ptr, ptr @closure, align 8
  %r = call i32 %fn(i64 %begin, i64 %end, ptr %clo)
  %bad = icmp ne i32 %r, 0
  br i1 %bad, label %fail, label %finish
fail:
  %x = cmpxchg ptr @rc, i32 0, i32 %r seq_cst seq_cst
  br label %finish
finish:
  %left = atomicrmw sub ptr @remaining, i32 1 seq_cst
  br label %poll0
}}

define i32 @minitvm_pool_parallel_for(ptr %fn, i64 %n, ptr %clo) {{
entry:
  %tid = alloca i64, align 8
  %none = icmp sle i64 %n, 0
  br i1 %none, label %zero, label %check
zero:
  ret i32 0
check:
  %t = load i32, ptr @threads, align 4
  %one = icmp eq i64 %n, 1
  %single = icmp sle i32 %t, 1
  %either = or i1 %one, %single
  br i1 %either, label %serial, label %claim
serial:
  %rs = call i32 %fn(i64 0, i64 %n, ptr %clo)
  ret i32 %rs
claim:
  %x = cmpxchg ptr @busy, i32 0, i32 1 seq_cst seq_cst
  %got = extractvalue {{ i32, i1 }} %x, 1
  br i1 %got, label %grow, label %serial
grow:
  %st = load i32, ptr @started, align 4
  %want = sub i32 %t, 1
  %enough = icmp sge i32 %st, %want
  br i1 %enough, label %go, label %spawn
spawn:
  %k = add i32 %st, 1
  %k64 = zext i32 %k to i64
  %khi = shl i64 %k64, 32
  %g = load i32, ptr @gen, align 4
  %g64 = zext i32 %g to i64
  %a = or i64 %khi, %g64
  %arg = inttoptr i64 %a to ptr
  %e = call i32 @pthread_create(ptr %tid, ptr null, ptr @worker, ptr %arg)
  %failed = icmp ne i32 %e, 0
  br i1 %failed, label %go, label %detach
detach:
  %tv = load i64, ptr %tid, align 8
  %d = call i32 @pthread_detach(i64 %tv)
  store i32 %k, ptr @started, align 4
  br label %grow
go:
  %w = load i32, ptr @started, align 4
  %noworkers = icmp eq i32 %w, 0
  br i1 %noworkers, label %release_serial, label %publish
release_serial:
  store atomic i32 0, ptr @busy seq_cst, align 4
  br label %serial
publish:
  %t64 = zext i32 %t to i64
  %w1 = add i32 %w, 1
  %w64 = zext i32 %w1 to i64
  %c0 = icmp ult i64 %n, %t64
  %c1 = select i1 %c0, i64 %n, i64 %t64
  %c2 = icmp ult i64 %c1, %w64
  %cn = select i1 %c2, i64 %c1, i64 %w64
  %c32 = trunc i64 %cn to i32
  store i32 %c32, ptr @chunks, align 4
  store i64 %n, ptr @n, align 8
  store ptr %fn, ptr @body, align 8
  store ptr %clo, ptr @closure, align 8
  store i32 0, ptr @rc, align 4
  store i32 %w, ptr @remaining, align 4
  %old = atomicrmw add ptr @gen, i32 1 seq_cst
  %wk = zext i32 %w to i64
  %woke = call i64 (i64, ...) @syscall(i64 {futex}, ptr @gen, i64 {wake}, i64 %wk)
  %end0 = udiv i64 %n, %cn
  %r0 = call i32 %fn(i64 0, i64 %end0, ptr %clo)
  br label %wait0
wait0:
  %spins = phi i32 [ 0, %publish ], [ %spins1, %relaxed ], [ 0, %yielded ]
  %left = load atomic i32, ptr @remaining acquire, align 4
  %done = icmp eq i32 %left, 0
  br i1 %done, label %finish, label %waiting
waiting:
  %spins1 = add i32 %spins, 1
  %tired = icmp ugt i32 %spins1, 1024
  br i1 %tired, label %yield, label %relaxing
relaxing:
  call void @relax()
  br label %relaxed
relaxed:
  br label %wait0
yield:
  %y = call i32 @sched_yield()
  br label %yielded
yielded:
  br label %wait0
finish:
  %rw = load i32, ptr @rc, align 4
  store atomic i32 0, ptr @busy seq_cst, align 4
  %mine = icmp ne i32 %r0, 0
  %res = select i1 %mine, i32 %r0, i32 %rw
  ret i32 %res
}}

define void @minitvm_pool_set_threads(i32 %t) {{
  store i32 %t, ptr @threads, align 4
  ret void
}}

define i32 @minitvm_pool_started() {{
  %s = load i32, ptr @started, align 4
  ret i32 %s
}}

define void @minitvm_pool_after_fork() {{
  store i32 0, ptr @started, align 4
  store i32 0, ptr @busy, align 4
  ret void
}}
"""


class NativePool:
    """The compiled pool: ``parallel_for`` (the address generated code calls), and the
    thread count, worker count and fork reset, callable from Python."""

    def __init__(self, engine, addresses: dict):
        self._engine = engine                       # keeps the machine code alive
        self.parallel_for = addresses["minitvm_pool_parallel_for"]
        self.set_threads = ctypes.CFUNCTYPE(None, ctypes.c_int32)(addresses["minitvm_pool_set_threads"])
        self.started = ctypes.CFUNCTYPE(ctypes.c_int32)(addresses["minitvm_pool_started"])
        self.after_fork = ctypes.CFUNCTYPE(None)(addresses["minitvm_pool_after_fork"])


def build(llvm, target_machine) -> NativePool | None:
    """Compile the pool with ``llvm`` (llvmlite.binding) for this process, or ``None`` where
    it does not run (not x86-64 Linux)."""
    if platform.machine() not in ("x86_64", "AMD64") or not sys.platform.startswith("linux"):
        return None
    text = _IR.format(spins=_SPINS, futex=_FUTEX, wait=_FUTEX_WAIT_PRIVATE, wake=_FUTEX_WAKE_PRIVATE)
    mod = llvm.parse_assembly(text)
    mod.verify()
    engine = llvm.create_mcjit_compiler(mod, target_machine)
    engine.finalize_object()
    names = ("minitvm_pool_parallel_for", "minitvm_pool_set_threads", "minitvm_pool_started",
             "minitvm_pool_after_fork")
    return NativePool(engine, {name: engine.get_function_address(name) for name in names})
