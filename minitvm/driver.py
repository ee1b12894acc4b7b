"""The two calls users make: ``lower`` (schedule -> loop IR) and ``build`` (-> runnable module)."""
from __future__ import annotations

from .errors import BuildError
from .lowering.lower import lower as _lower
from .lowering.pipeline import lower_device
from .target import Target
from .tir.device import DeviceFunc
from .tir.stmt import PrimFunc


def lower(sch, args, name: str = "main", simple_mode: bool = False, target="llvm", dump: bool | None = None):
    """Lower a schedule for ``target``; ``print()`` the result to read the loops.

    A :class:`~minitvm.tir.PrimFunc` for ``llvm``; for ``cuda`` a
    :class:`~minitvm.tir.device.DeviceFunc` (its kernels with launch dimensions). ``dump=True``
    (or ``MINITVM_DUMP_IR=1``) prints the IR after every pass of the pipeline.
    """
    return _lower(sch, args, name=name, target=Target(target), simple_mode=simple_mode, dump=dump)


def build(inputs, args=None, target=None, name: str = "main"):
    """Compile a schedule (with its argument tensors) or lowered functions into a module.

    ``target`` is a :class:`~minitvm.target.Target` or its string: ``"llvm"`` JIT-compiles for
    this CPU; ``"cuda"`` emits CUDA C, compiles it with NVRTC for the present GPU
    (``cuda -arch=sm_XY`` to choose; ``sm_90`` with no GPU). Without ``target``: the target of
    the enclosing ``with Target(...):`` block, else ``llvm``.
    """
    target = Target(target if target is not None else (Target.current() or "llvm"))
    lowered = (PrimFunc, DeviceFunc)
    if isinstance(inputs, lowered):
        funcs = [inputs]
    elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(f, lowered) for f in inputs):
        funcs = list(inputs)
    else:
        if args is None:
            raise BuildError("build: pass the argument tensors: build(s, [A, B, C], target)")
        funcs = [_lower(inputs, args, name=name, target=target)]
    if target.kind == "cuda":
        from .codegen.cuda import build_cuda
        return build_cuda(lower_device(funcs, target), arch=target.arch)
    from .codegen.llvm import build_llvm
    return build_llvm(funcs, target=target)
