"""The launch path: running the checked launch plans of a module.

:class:`PreparedFunction` does the per-(entry point, device) work once (function handles,
argument slots, a ctypes parameter block per launch); per argument shapes it resolves grid
sizes, workspaces and int32 dims once; per call it only fills the parameter blocks and calls
``cuLaunchKernel``.
"""
from __future__ import annotations

import ctypes
import sys

from ...errors import DeviceError, ShapeError
from . import device
from .device import _err_name
from .memory import DeviceBuffer
from .plan import DimArg, ParamArg, WorkspaceArg
from .stream import _STREAM

__all__ = ["PreparedFunction", "check_kernel_params"]

_PARAM_SLOT = 8  # bytes per kernel-parameter slot in the ctypes parameter block
assert sys.byteorder == "little", "the kernel-parameter block stores int32 values in 8-byte little-endian slots"


def _evaluate(value, dims: dict, what: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return value.evaluate(dims)
    except Exception as exc:  # noqa: BLE001 - e.g. a division by zero for these shapes
        raise ShapeError(f"{what}: evaluating {value} with {dims} failed: {type(exc).__name__}: {exc}") from None


def check_kernel_params(kernel: str, func, args) -> None:
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
    if len(sizes) != len(args):
        raise DeviceError(f"kernel {kernel!r} takes {len(sizes)} parameters, but its launch plan passes "
                          f"{len(args)} ({', '.join(str(a) for a in args) or 'none'})")
    for i, (arg, size) in enumerate(zip(args, sizes)):
        dim = isinstance(arg, DimArg)
        want = 4 if dim else 8
        if size != want:
            raise DeviceError(f"kernel {kernel!r} parameter {i} is {size} bytes, but the plan passes "
                              f"'{arg}' ({'an int32' if dim else 'a pointer'}, {want} bytes)")


class _LaunchState:
    """Per (function, device, launch): the CUfunction, the argument slots and the parameter block."""

    __slots__ = ("kernel", "func", "grid", "block", "bx", "by", "bz", "shmem", "param_slots",
                 "ws_slots", "var_slots", "values", "pointers", "params_addr", "index")

    def __init__(self, index: int, checked: tuple, func):
        L, grid, block, shmem, args = checked
        self.index, self.kernel, self.func = index, L.kernel, func
        check_kernel_params(L.kernel, func, args)
        self.grid, self.block, self.shmem = grid, block, shmem
        self.bx, self.by, self.bz = block
        n = len(args)
        self.values = (ctypes.c_uint64 * max(n, 1))()
        base = ctypes.addressof(self.values)
        self.pointers = (ctypes.c_void_p * max(n, 1))(*[base + _PARAM_SLOT * i for i in range(max(n, 1))])
        self.params_addr = ctypes.addressof(self.pointers) if n else 0
        self.param_slots = tuple((i, a.index) for i, a in enumerate(args) if isinstance(a, ParamArg))
        self.ws_slots = tuple((i, a.index) for i, a in enumerate(args) if isinstance(a, WorkspaceArg))
        self.var_slots = tuple((i, a.name) for i, a in enumerate(args) if isinstance(a, DimArg))


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
