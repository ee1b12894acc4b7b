"""The two calls users make: ``lower`` (schedule -> loop IR) and ``build`` (-> runnable module)."""
from __future__ import annotations

from .errors import BuildError
from .target import Target
from .tir.lower import lower as _lower
from .tir.stmt import PrimFunc


def lower(sch, args, name: str = "main", simple_mode: bool = False):
    """Lower a schedule to a :class:`~minitvm.tir.PrimFunc`; ``print()`` it to read the loops."""
    return _lower(sch, args, name=name, simple_mode=simple_mode)


def build(inputs, args=None, target=None, name: str = "main"):
    """Compile a schedule (with its argument tensors) or lowered PrimFuncs into a module.

    ``target`` is a :class:`~minitvm.target.Target` or its string: ``"llvm"`` JIT-compiles for
    this CPU; ``"cuda"`` emits CUDA C, compiles it with NVRTC for the present GPU
    (``cuda -arch=sm_XY`` to choose; ``sm_90`` with no GPU). Without ``target``: the target of
    the enclosing ``with Target(...):`` block, else ``llvm``.
    """
    target = Target(target if target is not None else (Target.current() or "llvm"))
    if isinstance(inputs, PrimFunc):
        funcs = [inputs]
    elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(f, PrimFunc) for f in inputs):
        funcs = list(inputs)
    else:
        if args is None:
            raise BuildError("build: pass the argument tensors: build(s, [A, B, C], target)")
        from .tir.lower import lower as _low
        funcs = [_low(inputs, args, name=name, explicit_unroll=(target.kind != "cuda"))]
    if target.kind == "cuda":
        from .codegen.cuda import build_cuda
        return build_cuda(funcs, arch=target.arch)
    from .codegen.llvm import build_llvm
    return build_llvm(funcs, target=str(target))
