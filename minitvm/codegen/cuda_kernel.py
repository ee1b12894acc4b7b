"""CUDA C statement printer: one :class:`~minitvm.tir.device.DeviceKernel` -> an ``extern "C"
__global__`` function.

Vector accesses (``Ramp(base, 1, lanes)`` indices) whose size is 4, 8 or 16 bytes use one vector
load/store (``*(float4*)(A + base)``, ``char4``, ``int2`` for 8 x int8, ...); the address must be
aligned to the vector size, which is the schedule's responsibility (as in TVM). Other vector
accesses are done lane by lane.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import dtype as dt
from ..errors import CodegenError
from ..runtime.cuda.plan import DimArg, ParamArg, WorkspaceArg
from ..tir import expr as E
from ..tir.device import DeviceFunc, DeviceKernel, scan_kernel
from ..tir.functor import Visitor
from ..tir.stmt import Allocate, AttrStmt, For, IfThenElse, LetStmt, SeqStmt, is_no_op
from ..tir.transform.shared_memory import const_size
from ..tir.transform.virtual_thread import is_vthread_attr
from .cuda_expr import ExprPrinter
from .cuda_launch import dim_expr
from .cuda_text import CTYPE, WORD, bare, c_ident, contiguous, member, paren, vec_type


@dataclass
class _BufInfo:
    name: str
    dtype: str           # element dtype of the pointer as declared
    scope: str


def _steps(stmt):
    """Innermost iterations under ``stmt`` when every loop extent is constant, else None."""
    if isinstance(stmt, For):
        if not isinstance(stmt.extent, E.IntImm):
            return None
        inner = _steps(stmt.body)
        return None if inner is None else stmt.extent.value * inner
    if isinstance(stmt, SeqStmt):
        total = 0
        for c in stmt.seq:
            s = _steps(c)
            if s is None:
                return None
            total += s
        return total
    if isinstance(stmt, IfThenElse):
        a = _steps(stmt.then_case)
        b = _steps(stmt.else_case) if stmt.else_case is not None else 0
        return None if a is None or b is None else a + b
    if isinstance(stmt, (AttrStmt, Allocate, LetStmt)):
        return _steps(stmt.body)
    return 1


def _hoistable_loads(value) -> list:
    """Vector loads evaluated unconditionally by ``value`` (not under a Select branch), in order."""
    out = []

    class _V(Visitor):
        def visit_BufferLoad(self, n):
            if n.indices and dt.lanes_of(n.indices[-1].dtype) > 1:
                out.append(n)
            self.generic_visit(n)

        def visit_Select(self, n):
            self.visit(n.condition)

        def visit_Call(self, n):
            if n.op == "if_then_else":
                self.visit(n.args[0])
            else:
                self.generic_visit(n)

    _V().visit(value)
    return out


class KernelPrinter(ExprPrinter):
    """Prints one :class:`~minitvm.tir.device.DeviceKernel` as an ``extern "C" __global__`` function."""

    def __init__(self, f: DeviceFunc, kname: str, kernel: DeviceKernel, shape_vars):
        self.f, self.kname = f, kname
        self.helpers: set = set()
        self.lines: list = []
        self.indent = 1
        self.names: dict = {}          # Var -> C text
        self.taken: set = set()
        self.bufs: dict = {}           # data Var -> _BufInfo
        self.nonneg: set = set()
        self.hoisted: dict = {}        # id(BufferLoad) -> (temp name, native vector?)
        self.auto_unroll = 0
        self.shape_var_set = set(shape_vars)
        self.shared_offsets = kernel.shared.offsets
        self.dynamic_shared_bytes = kernel.shared.dynamic_bytes
        self.block = kernel.block
        self.grid = tuple(g if isinstance(g, int) else dim_expr(g, self.shape_var_set, f.name)
                          for g in kernel.grid)
        scan = scan_kernel(kernel.body)
        self.scan = scan

        # parameters: tensors, workspaces, then symbolic dims
        params, args = [], []
        for i in kernel.params:
            b = f.params[i]
            name = self.fresh(b.name)
            const = "" if b.data in scan.written else "const "
            ct = CTYPE[dt.element_of(b.dtype)]
            params.append(f"{const}{ct}* __restrict__ {name}")
            args.append(ParamArg(i))
            self.bufs[b.data] = _BufInfo(name, dt.element_of(b.dtype), "global")
            self.names[b.data] = name
        for j in kernel.workspaces:
            b = f.workspaces[j]
            name = self.fresh(b.name)
            ct = CTYPE[dt.element_of(b.dtype)]
            params.append(f"{ct}* __restrict__ {name}")
            args.append(WorkspaceArg(j))
            self.bufs[b.data] = _BufInfo(name, dt.element_of(b.dtype), "global")
            self.names[b.data] = name
        for v in kernel.shape_vars:
            name = self.fresh(v.name)
            self.names[v] = name
            self.nonneg.add(v)
            params.append(f"int {name}")
            args.append(DimArg(v.name))
        self.launch_args = tuple(args)

        for a in scan.thread_attrs:
            tag = a.node.thread_tag
            self.names[a.node.var] = f"((int){tag})"
            self.nonneg.add(a.node.var)

        threads = self.block[0] * self.block[1] * self.block[2]
        if self.dynamic_shared_bytes:
            self.line("extern __shared__ __align__(16) unsigned char __dyn_shmem[];")
        self.emit(kernel.body)
        header = (f"extern \"C\" __global__ void __launch_bounds__({threads}) "
                  f"{kname}({', '.join(params)}) {{")
        self.source = "\n".join([header] + self.lines + ["}"])

    # ------------------------------------------------------------------ printing helpers
    def line(self, text: str):
        self.lines.append("  " * self.indent + text)

    def fresh(self, hint: str) -> str:
        base = c_ident(hint)
        name, k = base, 1
        while name in self.taken:
            name = f"{base}_{k}"
            k += 1
        self.taken.add(name)
        return name

    # ------------------------------------------------------------------ statements
    def emit(self, s):
        method = getattr(self, "emit_" + type(s).__name__, None)
        if method is None:
            raise CodegenError(f"{self.f.name}: the CUDA backend cannot print {type(s).__name__} statements "
                               "(lower the function first)")
        method(s)

    def emit_SeqStmt(self, s):
        for c in s.seq:
            self.emit(c)

    def emit_For(self, s):
        if s.kind == "parallel":
            raise CodegenError(
                f"{self.f.name}: the loop over {s.loop_var.name} is marked parallel, which means CPU threads; "
                "on CUDA bind the axis to blockIdx/threadIdx instead of s[T].parallel(axis)")
        unroll = s.kind in ("unrolled", "vectorized")
        if not unroll and self.auto_unroll and isinstance(s.extent, E.IntImm):
            steps = _steps(s)
            unroll = steps is not None and steps <= self.auto_unroll
        ct = CTYPE[s.loop_var.dtype]
        v = self.fresh(s.loop_var.name)
        start = self.expr(s.min)
        if E.is_const_int(s.min, 0):
            end = self.expr(s.extent)
        else:
            end = self.expr(E.Add(s.min, s.extent))
        self.names[s.loop_var] = v
        if self.is_nonneg(s.min):
            self.nonneg.add(s.loop_var)
        if unroll:
            self.line("#pragma unroll")
        self.line(f"for ({ct} {v} = {bare(start)}; {v} < {end}; ++{v}) {{")
        self.indent += 1
        self.emit(s.body)
        self.indent -= 1
        self.line("}")

    def emit_IfThenElse(self, s):
        self.line(f"if ({bare(self.expr(s.condition))}) {{")
        self.indent += 1
        self.emit(s.then_case)
        self.indent -= 1
        if s.else_case is not None and not is_no_op(s.else_case):
            self.line("} else {")
            self.indent += 1
            self.emit(s.else_case)
            self.indent -= 1
        self.line("}")

    def emit_AttrStmt(self, s):
        if s.attr_key == "pragma_auto_unroll_max_step":
            saved = self.auto_unroll
            self.auto_unroll = int(E.const_value(s.value) or 0)
            self.emit(s.body)
            self.auto_unroll = saved
            return
        if is_vthread_attr(s):
            raise CodegenError(f"{self.f.name}: a virtual thread survived lowering")
        self.emit(s.body)

    def emit_Allocate(self, s):
        b = s.buffer
        elem = dt.element_of(b.dtype)
        ct = CTYPE[elem]
        name = self.fresh(b.name)
        lanes = dt.lanes_of(b.dtype)
        if b.scope == "local":
            size = const_size(b, self.f.name) * lanes
            align = "__align__(16) " if b.data in self.scan.vector else ""
            self.line(f"{align}{ct} {name}[{size}];")
        elif b.scope in ("shared", "shared.dyn"):
            size = const_size(b, self.f.name) * lanes
            if self.dynamic_shared_bytes:
                off = self.shared_offsets[s]
                self.line(f"{ct}* {name} = ({ct}*)(__dyn_shmem + {off});")
            else:
                self.line(f"__shared__ __align__(16) {ct} {name}[{size}];")
        elif b.scope == "warp":
            size = const_size(b, self.f.name) * lanes
            if size % 32:
                raise CodegenError(f"{self.f.name}: warp fragment {b.name} has {size} elements, not a multiple of "
                                   "the 32 lanes that hold it")
            self.line(f"__align__(16) {ct} {name}[{size // 32}];")
        elif b.scope == "global":
            raise CodegenError(
                f"{self.f.name}: global buffer {b.name} is allocated inside kernel {self.kname}; global scratch "
                "memory must be allocated at the top level of the function (outside every thread binding)")
        else:
            raise CodegenError(f"{self.f.name}: the CUDA backend does not support storage scope "
                               f"{b.scope!r} (buffer {b.name}); use local, shared or global")
        self.bufs[b.data] = _BufInfo(name, elem, b.scope)
        self.names[b.data] = name
        self.emit(s.body)

    def emit_LetStmt(self, s):
        if s.var.dtype == "handle" or dt.lanes_of(s.var.dtype) > 1:
            raise CodegenError(f"{self.f.name}: let {s.var.name} of dtype {s.var.dtype} is not supported in CUDA "
                               "code (only scalar lets)")
        value = self.expr(s.value)
        name = self.fresh(s.var.name)
        self.line(f"{CTYPE[s.var.dtype]} {name} = {bare(value)};")
        self.names[s.var] = name
        if self.is_nonneg(s.value):
            self.nonneg.add(s.var)
        self.emit(s.body)

    def emit_Evaluate(self, s):
        if is_no_op(s):
            return
        v = s.value
        if isinstance(v, E.Call) and v.op == "syncthreads":
            self.line("__syncthreads();")
            return
        self.line(f"{self.expr(v)};")

    def emit_BufferStore(self, s):
        buf = s.buffer
        idx = self.flat_index(buf, s.indices)
        lanes = dt.lanes_of(idx.dtype)
        value = s.value
        vlanes = dt.lanes_of(value.dtype)
        if dt.element_of(value.dtype) != dt.element_of(buf.dtype):
            raise CodegenError(f"{self.f.name}: storing a {value.dtype} value into {buf.name} of dtype {buf.dtype}")
        if lanes == 1:
            if vlanes != 1:
                raise CodegenError(f"{self.f.name}: a {value.dtype} vector is stored into {buf.name} at the "
                                   f"scalar index {idx}")
            self.line(f"{self.ptr(buf)}[{bare(self.expr(idx))}] = {bare(self.expr(value))};")
            return
        if vlanes not in (1, lanes):
            raise CodegenError(f"{self.f.name}: a {value.dtype} value is stored into {lanes} lanes of {buf.name}")
        elem = dt.element_of(buf.dtype)
        vec = vec_type(elem, lanes) if contiguous(idx) else None
        dst = self.ptr(buf)
        # whole-vector moves go through the plain word type of their size (int, int2, int4): a
        # char4 ?: is compiled lane by lane into byte permutes, an int ?: is one select
        word = (WORD[dt.numpy_dtype(elem).itemsize * lanes], False) if vec is not None else None
        # plain vector copy: one load, one store
        if vec is not None and isinstance(value, E.BufferLoad):
            sidx = self.flat_index(value.buffer, value.indices)
            if contiguous(sidx) and dt.element_of(value.buffer.dtype) == elem:
                vt = word[0]
                self.line(f"*({vt}*)({dst} + {self.expr(idx.base)}) = "
                          f"*({vt}*)({self.ptr(value.buffer)} + {self.expr(sidx.base)});")
                return
        # select(c, load, broadcast) with one condition for all lanes (padding): a whole-vector ?:
        if vec is not None and isinstance(value, E.Select):
            cond = value.condition
            if isinstance(cond, E.Broadcast):
                cond = cond.value
            if dt.lanes_of(cond.dtype) == 1:
                for v in (word, vec):
                    t = self.whole_vector(value.true_value, elem, v)
                    f = self.whole_vector(value.false_value, elem, v)
                    if t is not None and f is not None:
                        self.line(f"*({v[0]}*)({dst} + {self.expr(idx.base)}) = "
                                  f"{paren(self.expr(cond))} ? {t} : {f};")
                        return
        self.line("{")
        self.indent += 1
        saved = dict(self.hoisted)
        for load in _hoistable_loads(value):
            lidx = self.flat_index(load.buffer, load.indices)
            lvec = vec_type(dt.element_of(load.buffer.dtype), dt.lanes_of(lidx.dtype))
            if lvec is None or not contiguous(lidx) or id(load) in self.hoisted:
                continue
            t = self.fresh("v")
            self.line(f"{lvec[0]} {t} = *({lvec[0]}*)({self.ptr(load.buffer)} + {self.expr(lidx.base)});")
            self.hoisted[id(load)] = (t, lvec[1], dt.element_of(load.buffer.dtype))
        codes = [self.expr(value, i if vlanes > 1 else None) for i in range(lanes)]
        r = self.fresh("r")
        if vec is not None:
            self.line(f"{vec[0]} {r};")
            for i, c in enumerate(codes):
                self.line(f"{member(r, i, vec[1], elem)} = {bare(c)};")
            self.line(f"*({vec[0]}*)({dst} + {self.expr(idx.base)}) = {r};")
        else:
            self.line(f"{CTYPE[elem]} {r}[{lanes}];")
            for i, c in enumerate(codes):
                self.line(f"{r}[{i}] = {bare(c)};")
            for i in range(lanes):
                self.line(f"{dst}[{bare(self.lane_index(idx, i))}] = {r}[{i}];")
        self.hoisted = saved
        self.indent -= 1
        self.line("}")

    def whole_vector(self, x, elem, vec):
        """C text of ``x`` as one value of vector type ``vec``, or None if it is not that simple."""
        vt, native = vec
        if isinstance(x, E.BufferLoad) and dt.element_of(x.buffer.dtype) == elem:
            idx = self.flat_index(x.buffer, x.indices)
            if contiguous(idx) and dt.lanes_of(idx.dtype) == dt.lanes_of(x.dtype):
                return f"*({vt}*)({self.ptr(x.buffer)} + {self.expr(idx.base)})"
        if isinstance(x, E.Broadcast) and dt.element_of(x.dtype) == elem:
            if native:
                v = self.expr(x.value)
                return f"make_{vt}({', '.join([v] * x.lanes)})"
            if isinstance(x.value, (E.IntImm, E.FloatImm)) and x.value.value == 0:
                words = {"int": 1, "int2": 2, "int4": 4}[vt]
                return "0" if words == 1 else f"make_{vt}({', '.join(['0'] * words)})"
        return None
