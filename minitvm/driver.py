"""The two calls users make: ``lower`` (schedule -> loop IR) and ``build`` (-> runnable module)."""
from __future__ import annotations

from .errors import BuildError
from .lowering.pipeline import lower as _lower
from .tir.stmt import PrimFunc


def lower(sch, args, name: str = "main", simple_mode: bool = False):
    """Lower a schedule to a :class:`~minitvm.tir.PrimFunc`; ``print()`` it to read the loops."""
    return _lower(sch, args, name=name, simple_mode=simple_mode)


def parse_target(target) -> tuple[str, dict]:
    """``"llvm"`` / ``"cuda"`` / ``"cuda -arch=sm_80"`` -> (kind, options)."""
    if target is None:
        target = "llvm"
    parts = str(target).split()
    if not parts or parts[0] not in ("llvm", "cuda", "c"):
        raise BuildError(f"unknown target {target!r}; use 'llvm' or 'cuda' (optionally 'cuda -arch=sm_90')")
    opts = {}
    for p in parts[1:]:
        key, _, val = p.lstrip("-").partition("=")
        opts[key] = val or True
    return parts[0], opts


def build(inputs, args=None, target="llvm", name: str = "main"):
    """Compile a schedule (with its argument tensors) or lowered PrimFuncs into a module.

    ``target="llvm"`` JIT-compiles for this CPU; ``target="cuda"`` emits CUDA C, compiles it
    with NVRTC for the present GPU (``cuda -arch=sm_XY`` to choose; ``sm_90`` with no GPU).
    """
    kind, opts = parse_target(target)
    if isinstance(inputs, PrimFunc):
        funcs = [inputs]
    elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(f, PrimFunc) for f in inputs):
        funcs = list(inputs)
    else:
        if args is None:
            raise BuildError("build: pass the argument tensors: build(s, [A, B, C], target)")
        from .lowering.pipeline import lower as _low
        funcs = [_low(inputs, args, name=name, explicit_unroll=(kind != "cuda"))]
    if kind == "llvm":
        from .codegen.llvm import build_llvm
        return build_llvm(funcs, target=str(target))
    if kind == "cuda":
        from .codegen.cuda import build_cuda
        arch = opts.get("arch")
        if not arch:
            from .runtime import cuda as _rt
            arch = _rt.device_arch(0) if _rt.device_count() > 0 else "sm_90"
        return build_cuda(funcs, arch=arch)
    raise BuildError(f"target {kind!r} is not supported yet")
