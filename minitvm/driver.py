"""The two calls users make: ``lower`` (schedule -> loop IR) and ``build`` (-> runnable module)."""
from __future__ import annotations

from .errors import BuildError
from .lowering.lower import lower as _lower
from .lowering.pipeline import lower_device
from .tir.device import DeviceFunc
from .tir.stmt import PrimFunc


def lower(sch, args, name: str = "main", simple_mode: bool = False, target="llvm", dump: bool | None = None):
    """Lower a schedule for ``target``; ``print()`` the result to read the loops.

    A :class:`~minitvm.tir.PrimFunc` for ``llvm``; for ``cuda`` a
    :class:`~minitvm.tir.device.DeviceFunc` (its kernels with launch dimensions). ``dump=True``
    (or ``MINITVM_DUMP_IR=1``) prints the IR after every pass of the pipeline.
    """
    return _lower(sch, args, name=name, target=target, simple_mode=simple_mode, dump=dump)


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
    """Compile a schedule (with its argument tensors) or lowered functions into a module.

    ``target="llvm"`` JIT-compiles for this CPU; ``target="cuda"`` emits CUDA C, compiles it
    with NVRTC for the present GPU (``cuda -arch=sm_XY`` to choose; ``sm_90`` with no GPU).
    """
    kind, opts = parse_target(target)
    ltarget = lowering_target(target)
    lowered = (PrimFunc, DeviceFunc)
    if isinstance(inputs, lowered):
        funcs = [inputs]
    elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(f, lowered) for f in inputs):
        funcs = list(inputs)
    else:
        if args is None:
            raise BuildError("build: pass the argument tensors: build(s, [A, B, C], target)")
        funcs = [_lower(inputs, args, name=name, target=ltarget)]
    if kind == "llvm":
        from .codegen.llvm import build_llvm
        return build_llvm(funcs, target=str(target))
    if kind == "cuda":
        from .codegen.cuda import build_cuda
        return build_cuda(lower_device(funcs, ltarget), arch=_cuda_arch(opts))
    raise BuildError(f"target {kind!r} is not supported yet")


def lowering_target(target) -> str:
    """``target`` with the architecture spelled out for ``cuda``: the CUDA pipeline bounds shared
    memory by it."""
    kind, opts = parse_target(target)
    if kind != "cuda":
        return target
    return f"cuda -arch={_cuda_arch(opts)}"


def _cuda_arch(opts) -> str:
    """``-arch=`` if given, else the present GPU's architecture, else ``sm_90``."""
    arch = opts.get("arch")
    if not arch:
        from .runtime import cuda as _rt
        arch = _rt.device_arch(0) if _rt.device_count() > 0 else "sm_90"
    return arch
