"""Compiled modules as plain data and files, and back without compiling.

:func:`save_module` turns an ``LLVMModule`` (its object code, IR and signatures) or a
``CUDAModule`` (its cubin, CUDA C source, signatures and launch plans) into a JSON-able dict and
a few named byte strings; :func:`load_module` rebuilds the module from them. An LLVM module
loads only on a CPU of the same target triple with every instruction-set feature the code was
compiled for; a CUDA module only for an architecture its cubin runs on.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import BuildError, DeviceError
from .module import FunctionSignature, ParamSpec

__all__ = ["save_module", "load_module", "signature_to_json", "signature_from_json", "plan_to_json",
           "plan_from_json", "check_cuda_device"]


@dataclass(frozen=True)
class _LLVMSource:
    """What :class:`~minitvm.runtime.llvm.LLVMModule` reads of codegen's ``LLVMSource``."""

    ir: str
    signatures: tuple
    written: dict
    shape_var_types: dict


def signature_to_json(sig: FunctionSignature) -> dict:
    """A :class:`FunctionSignature` as plain data."""
    return {"name": sig.name, "params": [{"name": p.name, "shape": list(p.shape), "dtype": p.dtype} for p in sig.params],
            "shape_vars": list(sig.shape_vars)}


def signature_from_json(d: dict) -> FunctionSignature:
    """The signature :func:`signature_to_json` wrote."""
    return FunctionSignature(d["name"], tuple(ParamSpec(p["name"], tuple(p["shape"]), p["dtype"]) for p in d["params"]),
                             tuple(d.get("shape_vars", ())))


def _dim_to_json(x):
    from .cuda import plan as P
    if isinstance(x, P.DimConst):
        return {"const": x.value}
    if isinstance(x, P.DimVar):
        return {"var": x.name}
    if isinstance(x, P.DimOp):
        return {"op": x.op, "args": [_dim_to_json(a) for a in x.args]}
    return int(x)


def _dim_from_json(d):
    from .cuda import plan as P
    if isinstance(d, int):
        return d
    if "const" in d:
        return P.DimConst(int(d["const"]))
    if "var" in d:
        return P.DimVar(d["var"])
    return P.DimOp(d["op"], tuple(_dim_from_json(a) for a in d["args"]))


def _arg_to_json(a) -> dict:
    from .cuda import plan as P
    if isinstance(a, P.ParamArg):
        return {"param": a.index}
    if isinstance(a, P.WorkspaceArg):
        return {"workspace": a.index}
    return {"dim": a.name}


def _arg_from_json(d: dict):
    from .cuda import plan as P
    if "param" in d:
        return P.ParamArg(int(d["param"]))
    if "workspace" in d:
        return P.WorkspaceArg(int(d["workspace"]))
    return P.DimArg(d["dim"])


def plan_to_json(plan) -> dict:
    """A CUDA :class:`~minitvm.runtime.cuda.plan.LaunchPlan` as plain data."""
    return {"launches": [{"kernel": L.kernel, "grid": [_dim_to_json(g) for g in L.grid], "block": list(L.block),
                          "shared": L.dynamic_shared_bytes, "args": [_arg_to_json(a) for a in L.args]}
                         for L in plan.launches],
            "workspaces": [_dim_to_json(w) for w in plan.workspaces]}


def plan_from_json(d: dict):
    """The launch plan :func:`plan_to_json` wrote."""
    from .cuda import plan as P
    launches = [P.KernelLaunch(L["kernel"], tuple(_dim_from_json(g) for g in L["grid"]), tuple(L["block"]),
                               int(L.get("shared", 0)), tuple(_arg_from_json(a) for a in L["args"]))
                for L in d["launches"]]
    return P.LaunchPlan(tuple(launches), tuple(_dim_from_json(w) for w in d.get("workspaces", ())))


def save_module(module) -> tuple:
    """``(metadata, files)`` of a compiled module: JSON-able data and ``{file name: bytes}``."""
    kind = getattr(module, "type_key", "")
    sigs = [signature_to_json(s) for s in module.signatures.values()]
    if kind == "llvm":
        src = module.source
        meta = {"kind": "llvm", "signatures": sigs, "written": {k: list(v) for k, v in src.written.items()},
                "shape_var_types": {k: list(v) for k, v in src.shape_var_types.items()},
                "options": {"cpu": module.options.cpu, "features": module.options.features,
                            "opt_level": module.options.opt_level},
                "machine": module.machine(), "object": "module.o", "ir": "module.ll"}
        return meta, {"module.o": module.object_code(), "module.ll": src.ir.encode()}
    if kind == "cuda":
        meta = {"kind": "cuda", "signatures": sigs, "arch": module.arch, "options": list(module.options),
                "debug": bool(module.debug), "plans": {k: plan_to_json(p) for k, p in module.plans.items()},
                "cubin": "module.cubin", "source": "module.cu"}
        return meta, {"module.cubin": bytes(module.cubin), "module.cu": module.get_source().encode()}
    raise BuildError(f"save_module: cannot save a {type(module).__name__} (only LLVM and CUDA modules)")


def check_llvm_machine(machine: dict) -> None:
    """Raise :class:`~minitvm.errors.DeviceError` unless code compiled for ``machine`` (target
    triple, CPU, features) runs on this CPU."""
    from . import llvm as rt
    here, _ = rt.target_info()
    if machine["triple"].split("-")[0] != here.split("-")[0]:
        raise DeviceError(f"the artifact's CPU code is for {machine['triple']}, but this machine is {here}: "
                          "compile the model again here")
    missing = rt.missing_features(machine["cpu"], machine["features"])
    if missing:
        host = rt.host_cpu()[0]
        raise DeviceError(f"the artifact's CPU code was compiled for {machine['cpu']} and uses instruction-set "
                          f"features this CPU ({host}) lacks: {', '.join(missing[:8])}"
                          f"{' ...' if len(missing) > 8 else ''}; compile the model again here "
                          "(or for an older -mcpu)")


def check_cuda_device(arch: str, device_index: int = 0) -> None:
    """Raise :class:`~minitvm.errors.DeviceError` unless CUDA device ``device_index`` exists and
    runs cubins for ``arch`` (same major version, not older; an ``a`` arch only on itself)."""
    from . import cuda
    from .cuda.compile import arch_number
    if cuda.device_count() <= device_index:
        reason = cuda.unavailable_reason() or f"only {cuda.device_count()} CUDA devices"
        raise DeviceError(f"the artifact holds CUDA code for {arch}, but CUDA device {device_index} is not "
                          f"usable here ({reason})")
    dev_arch = cuda.device_arch(device_index)
    want, have = arch_number(arch), int(dev_arch[3:])
    if want // 10 != have // 10 or want > have or (arch.endswith("a") and want != have):
        raise DeviceError(f"the artifact holds CUDA code for {arch}, but CUDA device {device_index} "
                          f"({cuda.device_name(device_index)}) is {dev_arch}: compile the model for it")


def load_module(meta: dict, files: dict, check_device: bool = True, device_index: int = 0):
    """The module :func:`save_module` described, from its metadata and files, without compiling.
    Checks the machine first (a :class:`~minitvm.errors.DeviceError` names the mismatch); with
    ``check_device=False`` a CUDA module loads without a GPU (to inspect it, not to run it)."""
    sigs = tuple(signature_from_json(s) for s in meta["signatures"])
    kind = meta.get("kind")
    if kind == "llvm":
        from . import llvm as rt
        check_llvm_machine(meta["machine"])
        src = _LLVMSource(files[meta["ir"]].decode(), sigs, {k: tuple(v) for k, v in meta["written"].items()},
                          {k: tuple(v) for k, v in meta["shape_var_types"].items()})
        o = meta["options"]
        return rt.LLVMModule(src, rt.TargetOptions(o["cpu"], o["features"], int(o["opt_level"])),
                             object_code=files[meta["object"]])
    if kind == "cuda":
        from .cuda.module import _restore_module
        if check_device:
            check_cuda_device(meta["arch"], device_index)
        plans = {k: plan_from_json(p) for k, p in meta["plans"].items()}
        return _restore_module(files[meta["source"]].decode(), sigs, plans, meta["arch"], meta.get("debug", False),
                               tuple(meta.get("options", ())), files[meta["cubin"]])
    raise BuildError(f"load_module: unknown module kind {kind!r} (this minitvm loads 'llvm' and 'cuda')")
