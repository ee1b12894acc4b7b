"""The lowering pipeline: for each target kind, the ordered ``(name, pass)`` list a function runs.

Every pass takes the function and returns the next form of it. The loop passes rewrite a
:class:`~minitvm.tir.stmt.PrimFunc`'s body; on CUDA, ``split_host_device`` turns it into a
:class:`~minitvm.tir.device.DeviceFunc` and the passes after it rewrite each kernel.
``lower(..., dump=True)`` or ``MINITVM_DUMP_IR=1`` prints the IR after every pass.
"""
from __future__ import annotations

import dataclasses
import os
from functools import partial

from ..errors import LoweringError
from ..target import Target
from ..tir.device import DeviceFunc
from ..tir.limits import deep_recursion
from ..tir.stmt import PrimFunc
from ..tir.transform.async_pipeline import inject_async_copy, inject_pipeline
from ..tir.transform.double_buffer import inject_double_buffer
from ..tir.transform.lower_intrin import lower_if_then_else
from ..tir.transform.hoist_invariant import hoist_invariant_terms
from ..tir.transform.shared_memory import plan_shared_memory
from ..tir.transform.simplify import simplify_stmt
from ..tir.transform.split_host_device import split_host_device
from ..tir.transform.thread_guard import guard_threads
from ..tir.transform.thread_sync import insert_shared_sync
from ..tir.transform.unroll import unroll_loops
from ..tir.transform.vectorize import vectorize_loops
from ..tir.transform.virtual_thread import inject_virtual_thread

DUMP_ENV = "MINITVM_DUMP_IR"


def target_kind_arch(target) -> tuple:
    """(kind, arch or None) of ``target``: a :class:`~minitvm.target.Target` or its string."""
    t = Target(target if target is not None else "llvm")
    return t.kind, t.arch


def pipeline(target) -> list:
    """The ordered ``(name, pass)`` list that lowers a flattened function for ``target``."""
    kind, arch = target_kind_arch(target)
    passes = [
        ("inject_double_buffer", _on_body(inject_double_buffer)),
        ("inject_pipeline", _on_body(inject_pipeline)),
        ("lower_if_then_else", _on_body(lower_if_then_else)),
        ("simplify", _on_body(simplify_stmt)),
        ("vectorize_loops", _on_body(vectorize_loops)),
        ("inject_async_copy", _on_body(inject_async_copy)),
        ("unroll_loops", _on_body(partial(unroll_loops, explicit=kind != "cuda"))),
        ("simplify", _on_body(simplify_stmt)),
        ("hoist_invariant_terms", _on_body(hoist_invariant_terms)),
    ]
    return passes + device_passes(target)


def device_passes(target) -> list:
    """The passes that take a lowered PrimFunc to what ``target``'s code generator prints.

    For CUDA: virtual threads, the host/device split, thread guards, barriers, shared memory.
    Nothing for the CPU, whose code generator prints PrimFuncs.
    """
    kind, arch = target_kind_arch(target)
    if kind != "cuda":
        return []
    return [
        ("inject_virtual_thread", _on_body(inject_virtual_thread)),
        ("split_host_device", split_host_device),
        ("guard_threads", _per_kernel(lambda f, k: guard_threads(k))),
        ("insert_shared_sync", _per_kernel(
            lambda f, k: dataclasses.replace(k, body=insert_shared_sync(k.body)))),
        ("plan_shared_memory", _per_kernel(lambda f, k: plan_shared_memory(k, f.name, arch))),
    ]


@deep_recursion("lower_device")
def lower_device(funcs, target, dump: bool | None = None) -> list:
    """Run ``target``'s device passes on lowered PrimFuncs (those already split pass through)."""
    if isinstance(funcs, (PrimFunc, DeviceFunc)):
        funcs = [funcs]
    passes = device_passes(target)
    return [f if isinstance(f, DeviceFunc) else run_passes(f, passes, dump) for f in funcs]


def run_passes(func, passes, dump: bool | None = None):
    """Apply ``passes`` in order; with ``dump``, print the IR after each under its name."""
    dump = dump_requested(dump)
    for name, fn in passes:
        func = fn(func)
        if dump:
            print_step(name, func)
    return func


def dump_requested(dump: bool | None) -> bool:
    """``dump`` if given, else whether the environment asks for it (``MINITVM_DUMP_IR=1``)."""
    if dump is None:
        return os.environ.get(DUMP_ENV, "") not in ("", "0")
    return bool(dump)


def print_step(name: str, ir) -> None:
    """Print ``ir`` under the header of the pipeline step ``name``."""
    print(f"// ---- after {name} ----")
    print(ir)


def _on_body(fn):
    """A pass over a PrimFunc from a pass over its body."""
    def run(func):
        return PrimFunc(func.name, func.params, fn(func.body), func.attrs)
    return run


def _per_kernel(fn):
    """A pass over a DeviceFunc from ``fn(func, kernel) -> kernel``."""
    def run(func):
        return dataclasses.replace(func, kernels=tuple(fn(func, k) for k in func.kernels))
    return run
