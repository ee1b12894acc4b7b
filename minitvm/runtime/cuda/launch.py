"""Launch plans and the launch path.

A backend describes each entry point with a :class:`LaunchPlan` (plain data: which ``extern "C"
__global__`` kernels to launch, in which order, with which grid, block and arguments).
:func:`check_plans` validates the plans against the module's signatures and source at build
time. :class:`PreparedFunction` does the per-(entry point, device) work once (function handles,
decoded arguments, a ctypes parameter block per launch); per argument shapes it resolves grid
sizes, workspaces and int32 dims once; per call it only fills the parameter blocks and calls
``cuLaunchKernel``.
"""
from __future__ import annotations

import ctypes
import operator
import re
import sys
from dataclasses import dataclass

from ...errors import BuildError, DeviceError, ShapeError
from ..module import FunctionSignature
from . import device
from .device import _err_name
from .memory import DeviceBuffer
from .stream import _STREAM

__all__ = ["KernelLaunch", "LaunchPlan", "check_plans", "PreparedFunction"]

_PARAM_SLOT = 8  # bytes per kernel-parameter slot in the ctypes parameter block
assert sys.byteorder == "little", "the kernel-parameter block stores int32 values in 8-byte little-endian slots"

_ARG_RE = re.compile(r"^(param|workspace|var):(.+)$")
_EVAL_GLOBALS = {"__builtins__": {}, "min": min, "max": max}


@dataclass(frozen=True)
class KernelLaunch:
    """One ``cuLaunchKernel`` of a plan.

    ``kernel``: the ``extern "C" __global__`` function's name. ``grid``: 3 entries, each an int or a
    Python expression (str) over the function's symbolic dim names, e.g. ``"(n + 31) // 32"``.
    ``block``: 3 ints. ``dynamic_shared_bytes``: dynamic shared memory per block (the opt-in limit
    is raised automatically above 48 KB). ``args``: the kernel's arguments in order, each
    ``"param:<i>"`` (the i-th tensor parameter's device pointer), ``"workspace:<j>"`` (the j-th
    workspace's pointer) or ``"var:<name>"`` (a symbolic dim's value as int32).
    """

    kernel: str
    grid: tuple
    block: tuple
    dynamic_shared_bytes: int = 0
    args: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "grid", tuple(self.grid))
        object.__setattr__(self, "block", tuple(self.block))
        object.__setattr__(self, "args", tuple(self.args))


@dataclass(frozen=True)
class LaunchPlan:
    """How to run one entry point: ``launches`` in order on one stream, and the byte sizes of the
    global scratch buffers (``workspaces``: int or expression over dim names) they share."""

    launches: tuple
    workspaces: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "launches", tuple(self.launches))
        object.__setattr__(self, "workspaces", tuple(self.workspaces))


def _signature_dims(sig: FunctionSignature) -> list:
    dims = []
    for p in sig.params:
        for d in p.shape:
            if isinstance(d, str) and d not in dims:
                dims.append(d)
    for d in sig.shape_vars:
        if d not in dims:
            dims.append(d)
    return dims


def _compile_expr(value, what: str, dims: list):
    """An int stays an int; a str becomes a code object over ``dims`` (checked here)."""
    if isinstance(value, str):
        try:
            code = compile(value, f"<{what}>", "eval")
        except SyntaxError as exc:
            raise BuildError(f"{what}: {value!r} is not a valid Python expression ({exc.msg})") from None
        unknown = [n for n in code.co_names if n not in dims and n not in _EVAL_GLOBALS]
        if unknown:
            raise BuildError(f"{what}: {value!r} uses {', '.join(unknown)}, which "
                             f"{'is not a symbolic dimension' if len(unknown) == 1 else 'are not symbolic dimensions'}"
                             f" of the function (it has: {', '.join(dims) or 'none'})")
        return code
    try:
        v = operator.index(value)
    except TypeError:
        raise BuildError(f"{what}: expected an int or a str expression, got {value!r}") from None
    if v < 0:
        raise BuildError(f"{what}: must be non-negative, got {v}")
    return v


def _evaluate(value, dims: dict, what: str) -> int:
    if isinstance(value, int):
        return value
    try:
        result = eval(value, _EVAL_GLOBALS, dims)  # noqa: S307 - expressions come from codegen, names checked
    except Exception as exc:  # noqa: BLE001
        raise ShapeError(f"{what}: evaluating it with {dims} failed: {type(exc).__name__}: {exc}") from None
    try:
        return operator.index(result)
    except TypeError:
        raise ShapeError(f"{what}: evaluated to {result!r}, not an integer (use // for division)") from None


def check_plans(plans: dict, signatures: dict, source: str, max_threads: int) -> dict:
    """Validate one :class:`LaunchPlan` per signature; returns name -> (checked launches, workspaces).

    A checked launch is ``(KernelLaunch, grid, block, dynamic shared bytes, decoded args)``;
    grid and workspace entries are ints or compiled expressions. Raises BuildError naming the
    function, the launch and the entry at fault.
    """
    for name in plans:
        if name not in signatures:
            raise BuildError(f"launch plan for {name!r}, but the module has no function of that name "
                             f"(it has {sorted(signatures)})")
    checked = {}
    for name, sig in signatures.items():
        plan = plans.get(name)
        if plan is None:
            raise BuildError(f"function {name!r} has no launch plan")
        if not isinstance(plan, LaunchPlan):
            raise BuildError(f"the launch plan of {name!r} must be a LaunchPlan, got {type(plan).__name__}")
        dims = _signature_dims(sig)
        ws = tuple(_compile_expr(w, f"workspace {j} of {name}", dims) for j, w in enumerate(plan.workspaces))
        launches = tuple(_check_launch(k, L, name, sig, plan, dims, source, max_threads)
                         for k, L in enumerate(plan.launches))
        checked[name] = (launches, ws)
    return checked


def _check_launch(k, L, name, sig, plan, dims, source, max_threads) -> tuple:
    where = f"launch {k} (kernel {getattr(L, 'kernel', '?')}) of {name}"
    if not isinstance(L, KernelLaunch):
        raise BuildError(f"{where}: expected a KernelLaunch, got {type(L).__name__}")
    if not re.search(r"\b" + re.escape(L.kernel) + r"\s*\(", source):
        raise BuildError(f"{where}: the source defines no kernel named {L.kernel!r}")
    if len(L.grid) != 3 or len(L.block) != 3:
        raise BuildError(f"{where}: grid and block need 3 entries each, got grid={L.grid} block={L.block}")
    grid = tuple(_compile_expr(g, f"grid[{a}] of {where}", dims) for a, g in enumerate(L.grid))
    try:
        block = tuple(operator.index(b) for b in L.block)
    except TypeError:
        raise BuildError(f"{where}: block entries must be ints, got {L.block}") from None
    if min(block) < 1 or block[0] * block[1] * block[2] > max_threads:
        raise BuildError(f"{where}: block {block} is invalid (each entry >= 1, at most {max_threads} threads)")
    shmem = operator.index(L.dynamic_shared_bytes)
    if shmem < 0:
        raise BuildError(f"{where}: dynamic_shared_bytes must be non-negative, got {shmem}")
    decoded = []
    for arg in L.args:
        m = _ARG_RE.match(arg) if isinstance(arg, str) else None
        if not m:
            raise BuildError(f"{where}: bad argument {arg!r}; expected 'param:<i>', "
                             "'workspace:<j>' or 'var:<name>'")
        kind, what = m.groups()
        if kind == "var":
            if what not in dims:
                raise BuildError(f"{where}: argument {arg!r} names no symbolic dimension of "
                                 f"{name} (it has: {', '.join(dims) or 'none'})")
            decoded.append((kind, what))
            continue
        if not what.isdigit():
            raise BuildError(f"{where}: bad argument {arg!r}; the index must be an int")
        idx = int(what)
        limit = len(sig.params) if kind == "param" else len(plan.workspaces)
        if idx >= limit:
            raise BuildError(f"{where}: argument {arg!r} is out of range: {name} has {limit} "
                             f"{'tensor parameters' if kind == 'param' else 'workspaces'}")
        decoded.append((kind, idx))
    return (L, grid, block, shmem, tuple(decoded))


def shared_bytes_per_kernel(checked: dict) -> dict:
    """Kernel name -> the most dynamic shared memory any launch of it asks for."""
    need: dict = {}
    for launches, _ in checked.values():
        for L, _g, _b, shmem, _a in launches:
            need[L.kernel] = max(need.get(L.kernel, 0), shmem)
    return need


def check_kernel_params(kernel: str, func, decoded) -> None:
    """Compare the plan's arguments with the kernel's parameters (cuFuncGetParamInfo, CUDA >= 12.4)."""
    drv = device._drv
    fn = getattr(drv, "cuFuncGetParamInfo", None)
    if fn is None:
        return
    sizes = []
    for i in range(4096):  # until the index runs past the last parameter
        try:
            res = fn(func, i)
        except Exception:  # noqa: BLE001 - binding without it
            return
        if res[0]:
            if res[0] != drv.CUresult.CUDA_ERROR_INVALID_VALUE:
                return  # not supported here: nothing to check against
            break
        sizes.append(int(res[2]))
    if len(sizes) != len(decoded):
        raise DeviceError(f"kernel {kernel!r} takes {len(sizes)} parameters, but its launch plan passes "
                          f"{len(decoded)} ({', '.join(f'{k}:{w}' for k, w in decoded) or 'none'})")
    for i, ((kind, what), size) in enumerate(zip(decoded, sizes)):
        want = 4 if kind == "var" else 8
        if size != want:
            raise DeviceError(f"kernel {kernel!r} parameter {i} is {size} bytes, but the plan passes "
                              f"'{kind}:{what}' ({'an int32' if kind == 'var' else 'a pointer'}, {want} bytes)")


class _LaunchState:
    """Per (function, device, launch): the CUfunction, the decoded arguments and the parameter block."""

    __slots__ = ("kernel", "func", "grid", "block", "bx", "by", "bz", "shmem", "param_slots",
                 "ws_slots", "var_slots", "values", "pointers", "params_addr", "index")

    def __init__(self, index: int, checked: tuple, func):
        L, grid, block, shmem, decoded = checked
        self.index, self.kernel, self.func = index, L.kernel, func
        check_kernel_params(L.kernel, func, decoded)
        self.grid, self.block, self.shmem = grid, block, shmem
        self.bx, self.by, self.bz = block
        n = len(decoded)
        self.values = (ctypes.c_uint64 * max(n, 1))()
        base = ctypes.addressof(self.values)
        self.pointers = (ctypes.c_void_p * max(n, 1))(*[base + _PARAM_SLOT * i for i in range(max(n, 1))])
        self.params_addr = ctypes.addressof(self.pointers) if n else 0
        self.param_slots = tuple((i, idx) for i, (kind, idx) in enumerate(decoded) if kind == "param")
        self.ws_slots = tuple((i, idx) for i, (kind, idx) in enumerate(decoded) if kind == "workspace")
        self.var_slots = tuple((i, v) for i, (kind, v) in enumerate(decoded) if kind == "var")


class PreparedFunction:
    """Per (entry point, device): everything the launch path needs, built once.

    ``functions``: kernel name -> CUfunction of the loaded module; ``workspace_buffers``: the
    module's cache (device, j, nbytes) -> DeviceBuffer, shared by its functions; ``lock``
    serializes launches of one module; ``debug`` synchronizes and checks after every launch.
    """

    __slots__ = ("name", "sig", "device", "ctx", "nargs", "launches", "ptrs", "resolved",
                 "launch_fn", "set_ctx", "stream", "workspaces", "workspace_buffers", "lock", "debug")

    def __init__(self, name, sig, dev, ctx, functions, checked, workspace_buffers, lock, debug):
        launches, ws = checked
        drv = device._drv
        self.name, self.sig, self.device, self.ctx = name, sig, dev, ctx
        self.nargs = len(sig.params)
        self.ptrs = [0] * self.nargs
        self.resolved = {}
        self.workspaces = ws
        self.workspace_buffers, self.lock, self.debug = workspace_buffers, lock, debug
        self.launch_fn = drv.cuLaunchKernel
        self.set_ctx = drv.cuCtxSetCurrent
        self.stream = drv.CUstream(0)
        self.launches = tuple(_LaunchState(k, c, functions[c[0].kernel]) for k, c in enumerate(launches))

    # ---------------------------------------------------------------- per shape (first call per shape)

    def _workspace(self, j: int, nbytes: int) -> int:
        key = (self.device, j, nbytes)
        buf = self.workspace_buffers.get(key)
        if buf is None:
            buf = DeviceBuffer(nbytes, self.device)
            self.workspace_buffers[key] = buf
        return buf.ptr

    def _resolve(self, args, key) -> tuple:
        """Grid sizes, workspace pointers and int32 values for one set of argument shapes."""
        dims = self.sig.bind(args)
        if len(self.resolved) >= 256:  # many distinct shapes: start over (workspace buffers stay cached)
            self.resolved.clear()
        ws_ptrs = [self._workspace(j, _evaluate(w, dims, f"workspace {j} of {self.name}"))
                   for j, w in enumerate(self.workspaces)]
        out = []
        for s in self.launches:
            grid = tuple(_evaluate(g, dims, f"grid[{a}] of launch {s.index} ({s.kernel}) of {self.name}")
                         for a, g in enumerate(s.grid))
            if min(grid) < 0:
                raise ShapeError(f"{self.name}: launch {s.index} ({s.kernel}) has a negative grid {grid} "
                                 f"for {dims}")
            if min(grid) == 0:
                out.append((None, ()))  # an empty grid does nothing: skip the launch
                continue
            fixed = [(slot, ws_ptrs[j]) for slot, j in s.ws_slots]
            for slot, var in s.var_slots:
                v = int(dims[var])
                if not -2**31 <= v < 2**31:
                    raise ShapeError(f"{self.name}: symbolic dimension {var}={v} does not fit the int32 "
                                     f"argument of kernel {s.kernel}")
                fixed.append((slot, v & 0xFFFFFFFF))  # little-endian: the low 4 bytes are the int32
            out.append((grid, tuple(fixed)))
        res = tuple(out)
        self.resolved[key] = res
        return res

    # ---------------------------------------------------------------- the launch path

    def execute(self, args) -> bool:
        """Launch; False (nothing launched) if an argument is not a buffer on this function's device."""
        ptrs, dev = self.ptrs, self.device
        i = 0
        for a in args:
            b = getattr(a, "_buffer", None)
            if not isinstance(b, DeviceBuffer) or b.device_index != dev:
                return False
            ptrs[i] = b.ptr
            i += 1
        key = tuple([(a.shape, a.dtype) for a in args])
        res = self.resolved.get(key)
        if res is None:
            res = self._resolve(args, key)
        launch = self.launch_fn
        stream = _STREAM.value if _STREAM.value is not None else self.stream
        with self.lock:
            err = self.set_ctx(self.ctx)[0]
            if err:
                raise DeviceError(f"cuCtxSetCurrent(device {dev}) failed: {_err_name(err)}")
            for s, (grid, fixed) in zip(self.launches, res):
                if grid is None:
                    continue
                vals = s.values
                for slot, src in s.param_slots:
                    vals[slot] = ptrs[src]
                for slot, v in fixed:
                    vals[slot] = v
                err = launch(s.func, grid[0], grid[1], grid[2], s.bx, s.by, s.bz, s.shmem, stream,
                             s.params_addr, 0)[0]
                if err:
                    raise self._launch_error(s, grid, err, "cuLaunchKernel")
                if self.debug:
                    (err,) = device._drv.cuCtxSynchronize()
                    if err:
                        raise self._launch_error(s, grid, err, "kernel execution")
        return True

    def _launch_error(self, s, grid, err, what) -> DeviceError:
        msg = (f"{what} failed for kernel {s.kernel!r} (launch {s.index} of function {self.name!r}, "
               f"grid {grid}, block {s.block}, dynamic shared {s.shmem} bytes, device {self.device}): "
               f"{_err_name(err)}")
        if not self.debug:
            msg += ("; the error may come from an earlier asynchronous launch: set MINITVM_CUDA_DEBUG=1 "
                    "(or debug=True) to check after every launch")
        else:
            msg += "; a kernel fault leaves the CUDA context unusable: restart the process"
        return DeviceError(msg)
