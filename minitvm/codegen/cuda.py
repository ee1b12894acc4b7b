"""CUDA C code generation: lowered ``PrimFunc``s -> one CUDA source, launch plans, signatures.

Per function:

1. virtual threads are lowered (:func:`~minitvm.tir.transform.virtual_thread.inject_virtual_thread`);
2. the body is split into host and device parts: each top-level subtree that starts with a
   ``thread_extent`` attribute is one kernel ``<func>_kernel<k>``; top-level ``global``
   allocations become workspaces of the launch plan; top-level lets are substituted; anything
   else at the top level (a loop not bound to threads, a store) is a :class:`CodegenError`;
3. per kernel, launch dimensions are collected from its ``thread_extent`` attributes (block
   dimensions must be constants, grid dimensions may be expressions in the shape variables); a
   binding whose extent is smaller than the launch dimension gets a guard
   ``if (threadIdx.x < extent)``;
4. shared-memory barriers are inserted
   (:func:`~minitvm.tir.transform.thread_sync.insert_shared_sync`);
5. CUDA C is printed.

Value semantics match the CPU backend bit for bit on integers: arithmetic on 8- and 16-bit
integers is cast back to its type (C would promote it to ``int``); ``FloorDiv``/``FloorMod``
floor (shifts and masks for power-of-two divisors, plain ``/``/``%`` where the dividend is known
non-negative, a helper otherwise); float -> int casts truncate; ``round`` is ``rint`` (half to
even). ``float16`` is a self-contained 2-byte ``mt_half`` type converted with PTX ``cvt``
instructions (no ``cuda_fp16.h`` needed, so NVRTC needs no include path); each float16 operation
is computed in float32 and rounded back, which is exactly IEEE half arithmetic for
``+ - * /`` and ``sqrt``.

Vector accesses (``Ramp(base, 1, lanes)`` indices) whose size is 4, 8 or 16 bytes use one vector
load/store (``*(float4*)(A + base)``, ``char4``, ``int2`` for 8 x int8, ...); the address must be
aligned to the vector size, which is the schedule's responsibility (as in TVM). Other vector
accesses are done lane by lane.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .. import dtype as dt
from ..errors import CodegenError
from .signature import signature_of
from ..tir import expr as E
from ..tir.functor import Mutator, Visitor, substitute
from ..tir.stmt import (Allocate, AttrStmt, BufferStore, Evaluate, For, IfThenElse, LetStmt,
                        PrimFunc, SeqStmt, Stmt, is_no_op)
from ..tir.transform.thread_sync import insert_shared_sync
from ..tir.transform.virtual_thread import inject_virtual_thread, is_vthread_attr

__all__ = ["codegen_cuda", "build_cuda"]

STATIC_SHARED_LIMIT = 48 * 1024
# opt-in dynamic shared memory per block, bytes (Ampere A100: 163 KB, consumer Ampere/Ada: 99 KB,
# Hopper: 227 KB); architectures not listed are checked against 48 KB only at run time
_MAX_SHARED = {"sm_80": 166912, "sm_86": 101376, "sm_87": 166912, "sm_89": 101376,
               "sm_90": 232448, "sm_90a": 232448, "sm_100": 232448, "sm_120": 101376}
_MAX_THREADS = 1024
_BLOCK_LIMITS = {"x": 1024, "y": 1024, "z": 64}
_GRID_LIMITS = {"x": 2**31 - 1, "y": 65535, "z": 65535}

_CTYPE = {
    "bool": "bool", "int8": "signed char", "uint8": "unsigned char", "int16": "short",
    "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int", "int64": "long long",
    "uint64": "unsigned long long", "float16": "mt_half", "float32": "float", "float64": "double",
}
_NATIVE_VECTOR = {
    ("int8", 4): "char4", ("uint8", 4): "uchar4", ("int16", 2): "short2", ("int16", 4): "short4",
    ("uint16", 2): "ushort2", ("uint16", 4): "ushort4", ("int32", 2): "int2", ("int32", 4): "int4",
    ("uint32", 2): "uint2", ("uint32", 4): "uint4", ("float32", 2): "float2", ("float32", 4): "float4",
    ("int64", 2): "longlong2", ("uint64", 2): "ulonglong2", ("float64", 2): "double2",
}
_WORD = {4: "int", 8: "int2", 16: "int4"}
_MEMBERS = "xyzw"

_MATH = {"exp", "log", "sqrt", "tanh", "floor", "ceil", "fabs", "pow", "sin", "cos", "round"}
_ELEMENTWISE_CALLS = _MATH | {"abs", "truncdiv", "truncmod", "likely", "shift_left", "shift_right",
                              "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
                              "if_then_else", "reinterpret"}
KNOWN_CALLS = sorted(_ELEMENTWISE_CALLS | {"dp4a", "syncthreads", "address_of", "call_extern",
                                           "call_pure_extern"})

_KEYWORDS = {
    "auto", "bool", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict",
    "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "class", "delete", "new", "operator", "private",
    "protected", "public", "template", "this", "throw", "try", "catch", "typename", "namespace",
    "using", "virtual", "true", "false", "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize",
    "min", "max", "half", "half2", "float4", "int4", "char4", "asm", "abs", "fminf", "fmaxf",
    "floordiv_i32", "floormod_i32", "floordiv_i64", "floormod_i64",
}
_KEYWORDS |= {m + suffix for m in ("exp", "log", "sqrt", "tanh", "floor", "ceil", "fabs", "pow", "sin", "cos",
                                   "rint") for suffix in ("", "f")}

_HELPERS = {
    "floordiv_i32": """__device__ __forceinline__ int floordiv_i32(int a, int b) {
  int q = a / b;
  return ((a % b != 0) && ((a < 0) != (b < 0))) ? q - 1 : q;
}""",
    "floormod_i32": """__device__ __forceinline__ int floormod_i32(int a, int b) {
  int r = a % b;
  return ((r != 0) && ((r < 0) != (b < 0))) ? r + b : r;
}""",
    "floordiv_i64": """__device__ __forceinline__ long long floordiv_i64(long long a, long long b) {
  long long q = a / b;
  return ((a % b != 0) && ((a < 0) != (b < 0))) ? q - 1 : q;
}""",
    "floormod_i64": """__device__ __forceinline__ long long floormod_i64(long long a, long long b) {
  long long r = a % b;
  return ((r != 0) && ((r < 0) != (b < 0))) ? r + b : r;
}""",
    "half": """// float16 as raw bits; conversions with PTX cvt (round to nearest even)
struct __align__(2) mt_half { unsigned short bits; };
__device__ __forceinline__ float mt_h2f(mt_half h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
  return f;
}
__device__ __forceinline__ mt_half mt_f2h(float f) {
  mt_half h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
  return h;
}
__device__ __forceinline__ mt_half mt_d2h(double d) {
  mt_half h;
  asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h.bits) : "d"(d));
  return h;
}""",
    "dp4a_us": """// dp4a of unsigned bytes (a) with signed bytes (b)
__device__ __forceinline__ int mt_dp4a_us(unsigned int a, int b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}""",
    "dp4a_su": """// dp4a of signed bytes (a) with unsigned bytes (b)
__device__ __forceinline__ int mt_dp4a_su(int a, unsigned int b, int c) {
  int d;
  asm("dp4a.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}""",
}
_HELPER_ORDER = ["half", "floordiv_i32", "floormod_i32", "floordiv_i64", "floormod_i64", "dp4a_us",
                 "dp4a_su"]


# ==========================================================================================
# public API
# ==========================================================================================
def codegen_cuda(funcs, arch: str = "sm_90"):
    """Generate CUDA C for ``funcs`` without compiling it.

    ``funcs`` is a list of lowered :class:`~minitvm.tir.stmt.PrimFunc` (or one). Returns
    ``(source, plans, signatures)``: the CUDA C text of all kernels, a dict function name ->
    :class:`~minitvm.runtime.cuda.LaunchPlan`, and a list of
    :class:`~minitvm.runtime.module.FunctionSignature` in the order of ``funcs``. ``arch`` only
    bounds the shared memory a kernel may use. Raises :class:`~minitvm.errors.CodegenError` for
    IR the CUDA backend cannot express.
    """
    from ..runtime.cuda import KernelLaunch, LaunchPlan

    if isinstance(funcs, PrimFunc):
        funcs = [funcs]
    funcs = list(funcs)
    names = [f.name for f in funcs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CodegenError(f"build_cuda: several functions are named {dup}; function names must be unique")
    helpers: set = set()
    bodies, plans, signatures = [], {}, []
    for f in funcs:
        if not isinstance(f, PrimFunc):
            raise CodegenError(f"build_cuda expects lowered PrimFuncs, got {type(f).__name__}")
        sig, shape_vars = _signature(f)
        signatures.append(sig)
        host = _HostSplit(f)
        launches = []
        for k, kernel_stmt in enumerate(host.kernels):
            kname = f"{_c_ident(f.name)}_kernel{k}"
            gen = _KernelGen(f, kname, kernel_stmt, host.workspaces, shape_vars, arch)
            bodies.append(gen.source)
            helpers |= gen.helpers
            if "mt_half" in gen.source:
                helpers.add("half")
            launches.append(KernelLaunch(kernel=kname, grid=gen.grid, block=gen.block,
                                         dynamic_shared_bytes=gen.dynamic_shared_bytes,
                                         args=gen.launch_args))
        plans[f.name] = LaunchPlan(launches=tuple(launches), workspaces=tuple(host.workspace_sizes))
    head = [f"// Generated by minitvm: CUDA C for {arch}."]
    for h in _HELPER_ORDER:
        if h in helpers:
            head.append(_HELPERS[h])
    source = "\n\n".join(head + bodies) + "\n"
    return source, plans, signatures


def build_cuda(funcs, arch: str = "sm_90"):
    """Generate CUDA C for ``funcs`` and compile it with NVRTC into a ``CUDAModule``.

    ``funcs`` is a list of lowered PrimFuncs (or one); each becomes an entry point of the
    module callable by its name. Compilation happens here (a machine without a GPU still gets
    compile errors as :class:`~minitvm.errors.BuildError`); loading waits for the first run.
    """
    from ..runtime.cuda import CUDAModule

    source, plans, signatures = codegen_cuda(funcs, arch)
    return CUDAModule(source, signatures, plans, arch)


# ==========================================================================================
# signatures and host/device split
# ==========================================================================================
def _signature(f: PrimFunc):
    return signature_of(f, "cuda")


class _HostSplit:
    """Finds the kernels (top-level thread_extent subtrees) and workspaces of a function."""

    def __init__(self, f: PrimFunc):
        self.f = f
        self.kernels: list = []
        self.workspaces: list = []        # Buffers
        self.workspace_sizes: list = []   # int or Python expression (str), bytes
        self.shape_vars = set(f.attrs.get("shape_vars", ()) or ())
        for b in f.params:
            for s in b.shape:
                if isinstance(s, E.Var):
                    self.shape_vars.add(s)
        body = inject_virtual_thread(f.body)
        self.walk(body, [])
        if not self.kernels:
            raise CodegenError(
                f"{f.name}: nothing in the function is bound to GPU threads, so there is no CUDA kernel "
                "to generate; bind the outer axes of the output with "
                "s[T].bind(axis, te.thread_axis(\"blockIdx.x\")) and s[T].bind(axis, te.thread_axis(\"threadIdx.x\"))")

    def walk(self, s, allocs):
        """Collect kernels under ``s``; ``allocs``: enclosing non-global Allocate buffers and attributes."""
        if isinstance(s, SeqStmt):
            for c in s.seq:
                self.walk(c, allocs)
        elif isinstance(s, Allocate) and s.buffer.scope == "global":
            b = s.buffer
            nbytes = dt.numpy_dtype(b.dtype).itemsize * dt.lanes_of(b.dtype)
            size = E.const(1)
            for x in b.shape:
                size = size * x
            if isinstance(size, E.IntImm):
                self.workspace_sizes.append(int(size.value) * nbytes)
            else:
                self.workspace_sizes.append(_dim_expr(size, self.shape_vars, self.f.name) * nbytes)
            self.workspaces.append(b)
            self.walk(s.body, allocs)
        elif isinstance(s, Allocate):
            first = len(self.kernels)
            self.walk(s.body, allocs + [s.buffer])
            users = [k for k in self.kernels[first:] if s.buffer.data in _used_data(k)]
            if len(users) > 1:
                raise CodegenError(
                    f"{self.f.name}: {s.buffer.scope} buffer {s.buffer.name} is allocated outside the thread "
                    f"bindings and used by {len(users)} separate kernels; {s.buffer.scope} memory does not "
                    "survive from one kernel to the next. Bind the common outer axis to blockIdx so that "
                    "its producer and consumers form one kernel, or make the buffer global")
        elif isinstance(s, LetStmt):
            self.walk(substitute(s.body, {s.var: s.value}), allocs)
        elif isinstance(s, AttrStmt) and s.attr_key == "thread_extent":
            kernel = s
            used = _used_data(s)
            for outer in reversed(allocs):
                if isinstance(outer, AttrStmt):   # e.g. pragma_auto_unroll_max_step around the kernel
                    kernel = AttrStmt(outer.node, outer.attr_key, outer.value, kernel)
                elif outer.data in used:
                    kernel = Allocate(outer, kernel)
            self.kernels.append(kernel)
        elif isinstance(s, AttrStmt):
            self.walk(s.body, allocs + [s])
        elif isinstance(s, Evaluate) and is_no_op(s):
            pass
        else:
            raise CodegenError(self.unbound_message(s))

    def unbound_message(self, s) -> str:
        written = []

        class _V(Visitor):
            def visit_BufferStore(self, n):
                if n.buffer.name not in written:
                    written.append(n.buffer.name)
                self.generic_visit(n)

        _V().visit(s)
        target = written[0] if written else None
        what = {For: f"the loop over {s.loop_var.name}" if isinstance(s, For) else "",
                BufferStore: "a store", IfThenElse: "a branch", Evaluate: "a call"}.get(type(s), "code")
        where = f" writing buffer {target}" if target else ""
        name = target or "T"
        return (f"{self.f.name}: {what or type(s).__name__}{where} is not bound to GPU threads and would "
                f"run on the host; in CUDA code every loop nest must be bound to blockIdx/threadIdx: "
                f"bind its axes with s[{name}].bind(axis, te.thread_axis(\"blockIdx.x\")) and "
                f"s[{name}].bind(axis, te.thread_axis(\"threadIdx.x\"))")


def _used_data(s) -> set:
    out = set()

    class _V(Visitor):
        def visit_BufferLoad(self, n):
            out.add(n.buffer.data)
            self.generic_visit(n)

        def visit_BufferStore(self, n):
            out.add(n.buffer.data)
            self.generic_visit(n)

        def visit_Var(self, n):
            out.add(n)

    _V().visit(s)
    return out


def _dim_expr(e, shape_vars, fname):
    """The launch plan's :class:`~minitvm.runtime.cuda.DimExpr` (over shape variable names) computing
    the integer ``e`` on the host."""
    from ..runtime.cuda import DimConst, DimOp, DimVar

    def go(x):
        if isinstance(x, E.IntImm):
            return DimConst(int(x.value))
        if isinstance(x, E.Var):
            if x not in shape_vars:
                raise CodegenError(
                    f"{fname}: a launch dimension or workspace size uses {x.name}, which is not a symbolic "
                    "dimension of the parameters; grid sizes may only depend on parameter shapes")
            return DimVar(x.name)
        if isinstance(x, (E.Min, E.Max)):
            return DimOp(x.symbol, (go(x.a), go(x.b)))
        ops = {E.Add: "+", E.Sub: "-", E.Mul: "*", E.FloorDiv: "//", E.FloorMod: "%"}
        if type(x) in ops:
            return DimOp(ops[type(x)], (go(x.a), go(x.b)))
        if isinstance(x, E.Cast) and dt.is_integer(x.dtype):
            return go(x.value)
        if isinstance(x, E.Select):
            return DimOp("select", (go(x.condition), go(x.true_value), go(x.false_value)))
        if isinstance(x, E.CmpOp) and not isinstance(x, (E.And, E.Or)):
            return DimOp(x.symbol, (go(x.a), go(x.b)))
        if isinstance(x, E.Call) and x.op == "likely":
            return go(x.args[0])
        raise CodegenError(f"{fname}: cannot evaluate the launch expression {e} on the host "
                           f"({type(x).__name__} is not supported there)")
    return go(e)


def _c_ident(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not s or s[0].isdigit():
        s = "v_" + s
    if s in _KEYWORDS or s.startswith("__") or s.startswith("mt_"):
        s = s.lstrip("_") + "_"
        if s[0].isdigit() or s == "_":
            s = "v_" + s
    return s


# ==========================================================================================
# per-kernel analysis and printing
# ==========================================================================================
@dataclass
class _BufInfo:
    name: str
    dtype: str           # element dtype of the pointer as declared
    scope: str


class _Scan(Visitor):
    """Buffers read/written, vector-accessed buffers, variables used and bound in a kernel."""

    def __init__(self):
        self.read, self.written, self.vector = set(), set(), set()
        self.used_vars, self.bound = set(), set()
        self.thread_attrs = []
        self.allocs = []

    def visit_BufferLoad(self, n):
        self.read.add(n.buffer.data)
        if n.indices and dt.lanes_of(n.indices[-1].dtype) > 1:
            self.vector.add(n.buffer.data)
        self.generic_visit(n)
        self.generic_buffer(n.buffer)

    def visit_BufferStore(self, n):
        self.written.add(n.buffer.data)
        if n.indices and dt.lanes_of(n.indices[-1].dtype) > 1:
            self.vector.add(n.buffer.data)
        self.generic_visit(n)
        self.generic_buffer(n.buffer)

    def generic_buffer(self, b):
        if b.elem_offset is not None and not E.is_const_int(b.elem_offset, 0):
            self.visit(b.elem_offset)

    def visit_Call(self, n):
        for a in n.args:
            if isinstance(a, E.Var) and a.dtype == "handle":
                self.read.add(a)
                self.written.add(a)
            elif isinstance(a, E.BufferLoad) and n.op == "address_of":
                self.written.add(a.buffer.data)
        self.generic_visit(n)

    def visit_Var(self, n):
        self.used_vars.add(n)

    visit_SizeVar = visit_Var

    def visit_For(self, n):
        self.bound.add(n.loop_var)
        self.generic_visit(n)

    def visit_LetStmt(self, n):
        self.bound.add(n.var)
        self.generic_visit(n)

    def visit_Let(self, n):
        self.bound.add(n.var)
        self.generic_visit(n)

    def visit_Allocate(self, n):
        self.allocs.append(n)
        self.generic_visit(n)

    def visit_AttrStmt(self, n):
        if n.attr_key == "thread_extent" and isinstance(n.node, E.IterVar):
            self.thread_attrs.append(n)
            self.bound.add(n.node.var)
            self.visit(n.body)  # the extent is a launch dimension, evaluated on the host
            return
        self.generic_visit(n)


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


class _GuardThreads(Mutator):
    """Guard bindings whose extent is smaller than the launch dimension of their tag."""

    def __init__(self, dims):
        self.dims = dims

    def visit_AttrStmt(self, n):
        n = self.generic_visit(n)
        if n.attr_key == "thread_extent" and isinstance(n.node, E.IterVar):
            full = self.dims.get(n.node.thread_tag)
            if isinstance(full, int) and isinstance(n.value, E.IntImm) and n.value.value < full:
                var = n.node.var
                guarded = IfThenElse(E.LT(var, E.const(n.value.value, var.dtype)), n.body)
                return AttrStmt(n.node, n.attr_key, n.value, guarded)
        return n


class _KernelGen:
    """Analyses one kernel subtree and prints it as an ``extern "C" __global__`` function."""

    def __init__(self, f: PrimFunc, kname: str, stmt: Stmt, workspaces, shape_vars, arch: str):
        self.f, self.kname, self.arch = f, kname, arch
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

        scan = _Scan()
        scan.visit(stmt)
        self._launch_dims(scan.thread_attrs)
        stmt = _GuardThreads(self.dims).visit(stmt)
        stmt = insert_shared_sync(stmt)
        self.stmt = stmt
        scan = _Scan()
        scan.visit(stmt)
        self.scan = scan

        # parameters: tensors, workspaces, then symbolic dims
        from ..runtime.cuda import DimArg, ParamArg, WorkspaceArg
        params, args = [], []
        used_data = scan.read | scan.written
        for i, b in enumerate(f.params):
            if b.data in used_data:
                name = self.fresh(b.name)
                const = "" if b.data in scan.written else "const "
                ct = _CTYPE[dt.element_of(b.dtype)]
                params.append(f"{const}{ct}* __restrict__ {name}")
                args.append(ParamArg(i))
                self.bufs[b.data] = _BufInfo(name, dt.element_of(b.dtype), "global")
                self.names[b.data] = name
        for j, b in enumerate(workspaces):
            if b.data in used_data:
                name = self.fresh(b.name)
                ct = _CTYPE[dt.element_of(b.dtype)]
                params.append(f"{ct}* __restrict__ {name}")
                args.append(WorkspaceArg(j))
                self.bufs[b.data] = _BufInfo(name, dt.element_of(b.dtype), "global")
                self.names[b.data] = name
        local_allocs = {a.buffer.data for a in scan.allocs}
        free = [v for v in scan.used_vars
                if v not in scan.bound and v not in self.bufs and v not in local_allocs]
        for v in free:
            if v not in self.shape_var_set:
                raise CodegenError(
                    f"{f.name}: kernel {kname} uses the variable {v.name}, which is neither bound inside the "
                    "kernel (loop, let, thread index) nor a symbolic dimension of a parameter")
        for v in shape_vars:
            if v in free:
                if v.dtype not in ("int32",):
                    raise CodegenError(f"{f.name}: symbolic dimension {v.name} has dtype {v.dtype}; "
                                       "the CUDA runtime passes symbolic dimensions as int32")
                name = self.fresh(v.name)
                self.names[v] = name
                self.nonneg.add(v)
                params.append(f"int {name}")
                args.append(DimArg(v.name))
        self.launch_args = tuple(args)

        self._plan_shared(scan.allocs)
        for a in scan.thread_attrs:
            tag = a.node.thread_tag
            self.names[a.node.var] = f"((int){tag})"
            self.nonneg.add(a.node.var)

        threads = self.block[0] * self.block[1] * self.block[2]
        if self.dynamic_shared_bytes:
            self.line("extern __shared__ __align__(16) unsigned char __dyn_shmem[];")
        self.emit(stmt)
        header = (f"extern \"C\" __global__ void __launch_bounds__({threads}) "
                  f"{kname}({', '.join(params)}) {{")
        self.source = "\n".join([header] + self.lines + ["}"])

    # ------------------------------------------------------------------ launch dimensions
    def _launch_dims(self, attrs):
        dims: dict = {}
        for a in attrs:
            tag = a.node.thread_tag
            if tag.startswith("vthread"):
                raise CodegenError(f"{self.f.name}: virtual thread {a.node.var.name} survived lowering")
            m = re.fullmatch(r"(blockIdx|threadIdx)\.([xyz])", tag)
            if not m:
                raise CodegenError(
                    f"{self.f.name}: unknown thread tag {tag!r} on {a.node.var.name}; use blockIdx.x/y/z, "
                    "threadIdx.x/y/z or vthread")
            ext = a.value
            if m.group(1) == "threadIdx":
                if not isinstance(ext, E.IntImm):
                    raise CodegenError(
                        f"{self.f.name}: {tag} ({a.node.var.name}) has the symbolic extent {ext}; block "
                        "dimensions must be constants: split the axis by a constant factor before binding "
                        "the inner part to threadIdx")
                dims[tag] = max(dims.get(tag, 0), int(ext.value))
            else:
                prev = dims.get(tag)
                if isinstance(ext, E.IntImm):
                    if prev is None or isinstance(prev, int):
                        dims[tag] = max(prev or 0, int(ext.value))
                    else:
                        raise CodegenError(f"{self.f.name}: {tag} is bound with extents {prev} and {ext}")
                elif prev is None:
                    dims[tag] = ext
                elif isinstance(prev, int) or not _same(prev, ext):
                    raise CodegenError(
                        f"{self.f.name}: {tag} is bound with different extents {prev} and {ext} in one kernel")
        self.dims = dims
        grid, block = [], []
        for axis in "xyz":
            g = dims.get(f"blockIdx.{axis}", 1)
            if isinstance(g, int):
                if g > _GRID_LIMITS[axis]:
                    raise CodegenError(f"{self.f.name}: grid dimension {axis} is {g}, above the CUDA limit "
                                       f"{_GRID_LIMITS[axis]}")
                grid.append(g)
            else:
                grid.append(_dim_expr(g, self.shape_var_set, self.f.name))
            b = dims.get(f"threadIdx.{axis}", 1)
            if b > _BLOCK_LIMITS[axis]:
                raise CodegenError(f"{self.f.name}: block dimension {axis} is {b}, above the CUDA limit "
                                   f"{_BLOCK_LIMITS[axis]}")
            block.append(b)
        if block[0] * block[1] * block[2] > _MAX_THREADS:
            raise CodegenError(f"{self.f.name}: kernel {self.kname} uses {block[0]}x{block[1]}x{block[2]} = "
                               f"{block[0] * block[1] * block[2]} threads per block; CUDA allows at most 1024")
        self.grid, self.block = tuple(grid), tuple(block)

    # ------------------------------------------------------------------ shared memory
    def _plan_shared(self, allocs):
        nodes = [a for a in allocs if a.buffer.scope in ("shared", "shared.dyn")]
        shared = [a.buffer for a in nodes]
        total, self.shared_offsets = 0, {}
        for a in nodes:
            b = a.buffer
            size = self._const_size(b)
            nbytes = size * dt.numpy_dtype(b.dtype).itemsize * dt.lanes_of(b.dtype)
            self.shared_offsets[id(a)] = total
            total += (nbytes + 15) // 16 * 16
        dynamic = total > STATIC_SHARED_LIMIT or any(b.scope == "shared.dyn" for b in shared)
        self.dynamic_shared_bytes = total if dynamic else 0
        limit = _MAX_SHARED.get(self.arch)
        if limit is not None and total > limit:
            names = ", ".join(f"{b.name} ({self._const_size(b) * dt.numpy_dtype(b.dtype).itemsize} B)"
                              for b in shared)
            raise CodegenError(f"{self.f.name}: kernel {self.kname} needs {total} bytes of shared memory "
                               f"({names}); {self.arch} allows at most {limit} per block: use smaller tiles")

    def _const_size(self, b) -> int:
        size = 1
        for s in b.shape:
            if not isinstance(s, E.IntImm):
                raise CodegenError(
                    f"{self.f.name}: {b.scope} buffer {b.name} has the symbolic shape "
                    f"({', '.join(str(x) for x in b.shape)}); {b.scope} buffers need constant sizes: "
                    "split the axes they cover by constant factors")
            size *= int(s.value)
        return size

    # ------------------------------------------------------------------ printing helpers
    def line(self, text: str):
        self.lines.append("  " * self.indent + text)

    def fresh(self, hint: str) -> str:
        base = _c_ident(hint)
        name, k = base, 1
        while name in self.taken:
            name = f"{base}_{k}"
            k += 1
        self.taken.add(name)
        return name

    def ptr(self, buf) -> str:
        info = self.bufs.get(buf.data)
        if info is None:
            raise CodegenError(
                f"{self.f.name}: kernel {self.kname} accesses buffer {buf.name}, which is not a parameter, a "
                "workspace (a global allocation at the top level) or allocated inside the kernel")
        elem = dt.element_of(buf.dtype)
        if elem != info.dtype:
            return f"(({_CTYPE[elem]}*){info.name})"
        return info.name

    def flat_index(self, buf, indices):
        if len(indices) != 1:
            raise CodegenError(
                f"{self.f.name}: access to {buf.name} has {len(indices)} indices; the CUDA backend needs "
                "flattened buffers (one index per access)")
        idx = indices[0]
        if buf.elem_offset is not None and not E.is_const_int(buf.elem_offset, 0):
            off = buf.elem_offset
            if isinstance(idx, E.Ramp):
                idx = E.Ramp(E.Add(idx.base, off), idx.stride, idx.lanes)
            elif dt.lanes_of(idx.dtype) > 1:
                idx = E.Add(idx, E.Broadcast(off, dt.lanes_of(idx.dtype)))
            else:
                idx = E.Add(idx, off)
        return idx

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
        ct = _CTYPE[s.loop_var.dtype]
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
        self.line(f"for ({ct} {v} = {_bare(start)}; {v} < {end}; ++{v}) {{")
        self.indent += 1
        self.emit(s.body)
        self.indent -= 1
        self.line("}")

    def emit_IfThenElse(self, s):
        self.line(f"if ({_bare(self.expr(s.condition))}) {{")
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
        ct = _CTYPE[elem]
        name = self.fresh(b.name)
        lanes = dt.lanes_of(b.dtype)
        if b.scope == "local":
            size = self._const_size(b) * lanes
            align = "__align__(16) " if b.data in self.scan.vector else ""
            self.line(f"{align}{ct} {name}[{size}];")
        elif b.scope in ("shared", "shared.dyn"):
            size = self._const_size(b) * lanes
            if self.dynamic_shared_bytes:
                off = self.shared_offsets[id(s)]
                self.line(f"{ct}* {name} = ({ct}*)(__dyn_shmem + {off});")
            else:
                self.line(f"__shared__ __align__(16) {ct} {name}[{size}];")
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
        self.line(f"{_CTYPE[s.var.dtype]} {name} = {_bare(value)};")
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
            self.line(f"{self.ptr(buf)}[{_bare(self.expr(idx))}] = {_bare(self.expr(value))};")
            return
        if vlanes not in (1, lanes):
            raise CodegenError(f"{self.f.name}: a {value.dtype} value is stored into {lanes} lanes of {buf.name}")
        elem = dt.element_of(buf.dtype)
        vec = _vec_type(elem, lanes) if _contiguous(idx) else None
        dst = self.ptr(buf)
        # whole-vector moves go through the plain word type of their size (int, int2, int4): a
        # char4 ?: is compiled lane by lane into byte permutes, an int ?: is one select
        word = (_WORD[dt.numpy_dtype(elem).itemsize * lanes], False) if vec is not None else None
        # plain vector copy: one load, one store
        if vec is not None and isinstance(value, E.BufferLoad):
            sidx = self.flat_index(value.buffer, value.indices)
            if _contiguous(sidx) and dt.element_of(value.buffer.dtype) == elem:
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
                                  f"{_paren(self.expr(cond))} ? {t} : {f};")
                        return
        self.line("{")
        self.indent += 1
        saved = dict(self.hoisted)
        for load in _hoistable_loads(value):
            lidx = self.flat_index(load.buffer, load.indices)
            lvec = _vec_type(dt.element_of(load.buffer.dtype), dt.lanes_of(lidx.dtype))
            if lvec is None or not _contiguous(lidx) or id(load) in self.hoisted:
                continue
            t = self.fresh("v")
            self.line(f"{lvec[0]} {t} = *({lvec[0]}*)({self.ptr(load.buffer)} + {self.expr(lidx.base)});")
            self.hoisted[id(load)] = (t, lvec[1], dt.element_of(load.buffer.dtype))
        codes = [self.expr(value, i if vlanes > 1 else None) for i in range(lanes)]
        r = self.fresh("r")
        if vec is not None:
            self.line(f"{vec[0]} {r};")
            for i, c in enumerate(codes):
                self.line(f"{_member(r, i, vec[1], elem)} = {_bare(c)};")
            self.line(f"*({vec[0]}*)({dst} + {self.expr(idx.base)}) = {r};")
        else:
            self.line(f"{_CTYPE[elem]} {r}[{lanes}];")
            for i, c in enumerate(codes):
                self.line(f"{r}[{i}] = {_bare(c)};")
            for i in range(lanes):
                self.line(f"{dst}[{_bare(self.lane_index(idx, i))}] = {r}[{i}];")
        self.hoisted = saved
        self.indent -= 1
        self.line("}")

    def whole_vector(self, x, elem, vec):
        """C text of ``x`` as one value of vector type ``vec``, or None if it is not that simple."""
        vt, native = vec
        if isinstance(x, E.BufferLoad) and dt.element_of(x.buffer.dtype) == elem:
            idx = self.flat_index(x.buffer, x.indices)
            if _contiguous(idx) and dt.lanes_of(idx.dtype) == dt.lanes_of(x.dtype):
                return f"*({vt}*)({self.ptr(x.buffer)} + {self.expr(idx.base)})"
        if isinstance(x, E.Broadcast) and dt.element_of(x.dtype) == elem:
            if native:
                v = self.expr(x.value)
                return f"make_{vt}({', '.join([v] * x.lanes)})"
            if isinstance(x.value, (E.IntImm, E.FloatImm)) and x.value.value == 0:
                words = {"int": 1, "int2": 2, "int4": 4}[vt]
                return "0" if words == 1 else f"make_{vt}({', '.join(['0'] * words)})"
        return None

    # ------------------------------------------------------------------ expressions
    def is_nonneg(self, e) -> bool:
        """Is the integer expression ``e`` known to be >= 0?"""
        if isinstance(e, E.IntImm):
            return e.value >= 0
        if isinstance(e, E.Var):
            return e in self.nonneg or isinstance(e, E.SizeVar)
        if dt.is_uint(e.dtype) or dt.is_bool(e.dtype):
            return True
        if isinstance(e, (E.Add, E.Mul, E.Min, E.FloorDiv)):
            return self.is_nonneg(e.a) and self.is_nonneg(e.b)
        if isinstance(e, E.FloorMod):
            return self.is_nonneg(e.b) and (isinstance(e.b, E.IntImm) and e.b.value > 0 or self.is_nonneg(e.a))
        if isinstance(e, E.Max):
            return self.is_nonneg(e.a) or self.is_nonneg(e.b)
        if isinstance(e, E.Select):
            return self.is_nonneg(e.true_value) and self.is_nonneg(e.false_value)
        if isinstance(e, E.Ramp):
            return self.is_nonneg(e.base) and self.is_nonneg(e.stride)
        if isinstance(e, E.Broadcast):
            return self.is_nonneg(e.value)
        if isinstance(e, E.Cast) and dt.is_integer(e.dtype) and dt.is_integer(e.value.dtype):
            return dt.bits(e.value.dtype) <= dt.bits(e.dtype) and self.is_nonneg(e.value)
        if isinstance(e, E.Call) and e.op in ("likely",) and e.args:
            return self.is_nonneg(e.args[0])
        return False

    def lane_index(self, idx, i) -> str:
        return self.expr(idx, i)

    def expr(self, e, lane=None) -> str:
        """C text of ``e``; for a vector expression, of its lane ``lane``."""
        if lane is None and dt.lanes_of(e.dtype) > 1 and not isinstance(e, E.Call):
            raise CodegenError(f"{self.f.name}: the vector expression {e} ({e.dtype}) is used where CUDA needs "
                               "a scalar")
        method = getattr(self, "x_" + type(e).__name__, None)
        if method is None:
            raise CodegenError(f"{self.f.name}: the CUDA backend cannot print {type(e).__name__} expressions "
                               f"({e}); lower the function first")
        return method(e, lane)

    def x_Var(self, e, lane):
        name = self.names.get(e)
        if name is None:
            raise CodegenError(f"{self.f.name}: kernel {self.kname} uses {e.name} outside the scope that binds it")
        return name

    x_SizeVar = x_Var

    def x_IntImm(self, e, lane):
        return _int_literal(e.value, e.dtype)

    def x_FloatImm(self, e, lane):
        if e.dtype == "float16":
            self.helpers.add("half")
        return _float_literal(e.value, e.dtype)

    def x_StringImm(self, e, lane):
        return '"' + e.value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def x_Ramp(self, e, lane):
        base = self.expr(e.base)
        if lane == 0:
            return base
        if isinstance(e.stride, E.IntImm):
            return f"({base} + {_int_literal(e.stride.value * lane, e.base.dtype)})"
        return f"({base} + ({self.expr(e.stride)} * {lane}))"

    def x_Broadcast(self, e, lane):
        return self.expr(e.value)

    def x_Let(self, e, lane):
        return self.expr(substitute(e.body, {e.var: e.value}), lane)

    def x_BufferLoad(self, e, lane):
        hit = self.hoisted.get(id(e))
        if hit is not None:
            name, native, elem = hit
            return _member(name, lane, native, elem)
        idx = self.flat_index(e.buffer, e.indices)
        if dt.lanes_of(idx.dtype) > 1 and lane is None:
            raise CodegenError(f"{self.f.name}: vector load {e} used as a scalar")
        return f"{self.ptr(e.buffer)}[{_bare(self.expr(idx, lane if dt.lanes_of(idx.dtype) > 1 else None))}]"

    def _sub(self, x, lane):
        return self.expr(x, lane if dt.lanes_of(x.dtype) > 1 else None)

    def _arith(self, e, lane, op):
        a, b = self._sub(e.a, lane), self._sub(e.b, lane)
        elem = dt.element_of(e.dtype)
        if elem == "float16":
            self.helpers.add("half")
            return f"mt_f2h(mt_h2f({a}) {op} mt_h2f({b}))"
        if elem == "uint16" and op == "*":
            return f"((unsigned short)((unsigned int){a} * (unsigned int){b}))"
        return _narrow(elem, f"({a} {op} {b})")

    def x_Add(self, e, lane):
        return self._arith(e, lane, "+")

    def x_Sub(self, e, lane):
        return self._arith(e, lane, "-")

    def x_Mul(self, e, lane):
        return self._arith(e, lane, "*")

    def x_Div(self, e, lane):
        if not dt.is_float(e.dtype):
            raise CodegenError(f"{self.f.name}: '/' on {e.dtype} ({e}); integer division is FloorDiv or truncdiv")
        return self._arith(e, lane, "/")

    def _float_floor_div(self, e, lane, mod: bool):
        elem = dt.element_of(e.dtype)
        a, b = self._sub(e.a, lane), self._sub(e.b, lane)
        if elem == "float16":
            self.helpers.add("half")
            a, b = f"mt_h2f({a})", f"mt_h2f({b})"
        fl = "floor" if elem == "float64" else "floorf"
        out = f"({a} - {fl}({a} / {b}) * {b})" if mod else f"{fl}({a} / {b})"
        return f"mt_f2h({out})" if elem == "float16" else out

    def x_FloorDiv(self, e, lane):
        return self._floor(e, lane, mod=False)

    def x_FloorMod(self, e, lane):
        return self._floor(e, lane, mod=True)

    def _floor(self, e, lane, mod):
        elem = dt.element_of(e.dtype)
        if dt.is_float(elem):
            return self._float_floor_div(e, lane, mod)
        a, b = self._sub(e.a, lane), self._sub(e.b, lane)
        op = "%" if mod else "/"
        if dt.is_uint(elem) or dt.is_bool(elem):
            return _narrow(elem, f"({a} {op} {b})")
        bv = e.b.value if isinstance(e.b, E.IntImm) else (
            e.b.value.value if isinstance(e.b, E.Broadcast) and isinstance(e.b.value, E.IntImm) else None)
        if bv is not None and bv > 0:
            if bv & (bv - 1) == 0:
                k = bv.bit_length() - 1
                if mod:
                    return _narrow(elem, f"({a} & {_int_literal(bv - 1, elem if dt.bits(elem) >= 32 else 'int32')})")
                return a if k == 0 else _narrow(elem, f"({a} >> {k})")
            if self.is_nonneg(e.a):
                return _narrow(elem, f"({a} {op} {b})")
        elif self.is_nonneg(e.a) and self.is_nonneg(e.b):
            return _narrow(elem, f"({a} {op} {b})")
        wide = "i64" if dt.bits(elem) == 64 else "i32"
        name = f"{'floormod' if mod else 'floordiv'}_{wide}"
        self.helpers.add(name)
        return _narrow(elem, f"{name}({a}, {b})")

    def _minmax(self, e, lane, fn):
        a, b = self._sub(e.a, lane), self._sub(e.b, lane)
        elem = dt.element_of(e.dtype)
        if elem == "float16":
            self.helpers.add("half")
            return f"mt_f2h({'fminf' if fn == 'min' else 'fmaxf'}(mt_h2f({a}), mt_h2f({b})))"
        if elem == "bool":
            return f"({a} {'&&' if fn == 'min' else '||'} {b})"
        return _narrow(elem, f"{fn}({a}, {b})")

    def x_Min(self, e, lane):
        return self._minmax(e, lane, "min")

    def x_Max(self, e, lane):
        return self._minmax(e, lane, "max")

    def _cmp(self, e, lane):
        a, b = self._sub(e.a, lane), self._sub(e.b, lane)
        if dt.element_of(e.a.dtype) == "float16":
            self.helpers.add("half")
            a, b = f"mt_h2f({a})", f"mt_h2f({b})"
        return f"({a} {e.symbol} {b})"

    x_EQ = x_NE = x_LT = x_LE = x_GT = x_GE = x_And = x_Or = _cmp

    def x_Not(self, e, lane):
        return f"(!{self._sub(e.a, lane)})"

    def x_Select(self, e, lane):
        c = self._sub(e.condition, lane)
        return f"({c} ? {self._sub(e.true_value, lane)} : {self._sub(e.false_value, lane)})"

    def x_Cast(self, e, lane):
        src = dt.element_of(e.value.dtype)
        return self.cast(dt.element_of(e.dtype), src, self._sub(e.value, lane))

    def cast(self, t: str, s: str, code: str) -> str:
        """C text converting ``code`` of element dtype ``s`` to element dtype ``t``."""
        if t == s:
            return code
        if t == "float16" or s == "float16":
            self.helpers.add("half")
        if t == "float16":
            if s == "float64":
                return f"mt_d2h({code})"
            if s == "float32":
                return f"mt_f2h({code})"
            return f"mt_f2h((float)({code}))"
        if s == "float16":
            code, s = f"mt_h2f({code})", "float32"
            if t == "float32":
                return code
        if t == "bool":
            return f"({code} != 0)"
        code = _paren(code)
        if dt.is_float(s) and dt.is_integer(t) and dt.bits(t) < 32:
            return f"(({_CTYPE[t]})({_CTYPE['int32' if dt.is_int(t) else 'uint32']}){code})"
        return f"(({_CTYPE[t]}){code})"

    # calls ----------------------------------------------------------------------------
    def x_Call(self, e, lane):
        op = e.op
        lanes = dt.lanes_of(e.dtype)
        if lanes > 1 and lane is None:
            raise CodegenError(f"{self.f.name}: the vector call {e} is used where CUDA needs a scalar")
        if op in _MATH or op == "abs":
            return self._math(e, lane)
        if op == "likely":
            return self._sub(e.args[0], lane)
        if op in ("truncdiv", "truncmod"):
            a, b = (self._sub(x, lane) for x in e.args)
            return _narrow(dt.element_of(e.dtype), f"({a} {'/' if op == 'truncdiv' else '%'} {b})")
        if op in ("shift_left", "shift_right", "bitwise_and", "bitwise_or", "bitwise_xor"):
            sym = {"shift_left": "<<", "shift_right": ">>", "bitwise_and": "&", "bitwise_or": "|",
                   "bitwise_xor": "^"}[op]
            a, b = (self._sub(x, lane) for x in e.args)
            return _narrow(dt.element_of(e.dtype), f"({a} {sym} {b})")
        if op == "bitwise_not":
            return _narrow(dt.element_of(e.dtype), f"(~{self._sub(e.args[0], lane)})")
        if op == "if_then_else":
            c, a, b = (self._sub(x, lane) for x in e.args)
            return f"({c} ? {a} : {b})"
        if op == "syncthreads":
            return "__syncthreads()"
        if op == "dp4a":
            return self._dp4a(e)
        if op == "reinterpret":
            return self._reinterpret(e, lane)
        if op == "address_of":
            (x,) = e.args
            if not isinstance(x, E.BufferLoad):
                raise CodegenError(f"{self.f.name}: address_of needs a buffer element, got {x}")
            idx = self.flat_index(x.buffer, x.indices)
            base = idx.base if isinstance(idx, E.Ramp) else idx
            return f"({self.ptr(x.buffer)} + {self.expr(base)})"
        if op in ("call_extern", "call_pure_extern"):
            if not e.args or not isinstance(e.args[0], E.StringImm):
                raise CodegenError(f"{self.f.name}: {op} needs the function name as its first argument")
            args = ", ".join(self._sub(x, lane) for x in e.args[1:])
            return f"{e.args[0].value}({args})"
        raise CodegenError(f"{self.f.name}: the CUDA backend does not know the intrinsic {op!r}; "
                           f"known: {', '.join(KNOWN_CALLS)}")

    def _math(self, e, lane):
        op = e.op
        elem = dt.element_of(e.dtype)
        args = [self._sub(x, lane) for x in e.args]
        if dt.is_integer(elem):
            if op in ("abs", "fabs"):
                return _narrow(elem, f"abs({args[0]})") if dt.is_int(elem) else args[0]
            raise CodegenError(f"{self.f.name}: {op} needs a float argument, got {e.args[0].dtype}")
        name = {"round": "rint", "abs": "fabs"}.get(op, op)
        if elem == "float16":
            self.helpers.add("half")
            inner = ", ".join(f"mt_h2f({a})" for a in args)
            return f"mt_f2h({name}f({inner}))"
        if elem == "float32":
            return f"{name}f({', '.join(args)})"
        if elem == "float64":
            return f"{name}({', '.join(args)})"
        raise CodegenError(f"{self.f.name}: {op} of {e.dtype} is not supported")

    def word(self, x) -> str:
        """A 4 x 8-bit operand as one 32-bit word (C text)."""
        if dt.lanes_of(x.dtype) == 1:
            return self.expr(x)
        elem, lanes = dt.split_lanes(x.dtype)
        if dt.bits(elem) != 8 or lanes != 4:
            raise CodegenError(f"{self.f.name}: dp4a needs int8x4/uint8x4 operands, got {x.dtype} ({x})")
        word_t = "int" if dt.is_int(elem) else "unsigned int"
        if isinstance(x, E.BufferLoad):
            idx = self.flat_index(x.buffer, x.indices)
            if _contiguous(idx):
                return f"*({word_t}*)({self.ptr(x.buffer)} + {self.expr(idx.base)})"
        if isinstance(x, E.Call) and x.op == "reinterpret" and dt.lanes_of(x.args[0].dtype) == 1:
            return f"(({word_t})({self.expr(x.args[0])}))"
        parts = [f"((unsigned int)(unsigned char)({self.expr(x, i)}) << {8 * i})" for i in range(4)]
        return f"(({word_t})({' | '.join(parts)}))"

    def _dp4a(self, e):
        if len(e.args) != 3:
            raise CodegenError(f"{self.f.name}: dp4a takes (a, b, c), got {len(e.args)} arguments")
        a, b, c = e.args
        sa, sb = dt.is_int(a.dtype), dt.is_int(b.dtype)
        wa, wb, wc = self.word(a), self.word(b), self.expr(c)
        if sa and sb:
            return f"__dp4a({wa}, {wb}, {wc})"
        if not sa and not sb:
            code = f"__dp4a((unsigned int)({wa}), (unsigned int)({wb}), (unsigned int)({wc}))"
            return code if dt.is_uint(e.dtype) else f"((int){code})"
        if not sa:
            self.helpers.add("dp4a_us")
            return f"mt_dp4a_us({wa}, {wb}, {wc})"
        self.helpers.add("dp4a_su")
        return f"mt_dp4a_su({wa}, {wb}, {wc})"

    def _reinterpret(self, e, lane):
        (x,) = e.args
        t, s = e.dtype, x.dtype
        tb = dt.bits(t) * dt.lanes_of(t)
        sb = dt.bits(s) * dt.lanes_of(s)
        if tb != sb:
            raise CodegenError(f"{self.f.name}: reinterpret from {s} to {t} changes the size")
        te_, se = dt.element_of(t), dt.element_of(s)
        if dt.lanes_of(s) > 1 and dt.lanes_of(t) == 1:
            if tb != 32 or dt.bits(se) != 8:
                raise CodegenError(f"{self.f.name}: reinterpret of {s} to {t} is not supported")
            w = self.word(x)
            return w if te_ == "int32" else self.cast(te_, "int32" if dt.is_int(se) else "uint32", w)
        if dt.lanes_of(t) > 1 and dt.lanes_of(s) == 1:
            if sb != 32 or dt.bits(te_) != 8:
                raise CodegenError(f"{self.f.name}: reinterpret of {s} to {t} is not supported")
            word = self.expr(x)
            if dt.is_float(se):
                word = f"__float_as_uint({word})"
            return f"(({_CTYPE[te_]})((unsigned int)({word}) >> {8 * lane}))"
        if dt.lanes_of(t) > 1:
            raise CodegenError(f"{self.f.name}: reinterpret between vectors {s} and {t} is not supported")
        code = self.expr(x)
        pair = (se, te_)
        table = {("int32", "float32"): "__int_as_float", ("float32", "int32"): "__float_as_int",
                 ("uint32", "float32"): "__uint_as_float", ("float32", "uint32"): "__float_as_uint",
                 ("int64", "float64"): "__longlong_as_double", ("float64", "int64"): "__double_as_longlong"}
        if pair in table:
            return f"{table[pair]}({code})"
        if se == "float16" or te_ == "float16":
            self.helpers.add("half")
            if te_ == "float16":
                return f"mt_half{{(unsigned short)({code})}}"
            return f"(({_CTYPE[te_]})({code}).bits)"
        if dt.is_float(se) or dt.is_float(te_):
            if (se, te_) == ("uint64", "float64"):
                return f"__longlong_as_double((long long)({code}))"
            if (se, te_) == ("float64", "uint64"):
                return f"((unsigned long long)__double_as_longlong({code}))"
            raise CodegenError(f"{self.f.name}: reinterpret from {s} to {t} is not supported")
        return f"(({_CTYPE[te_]})({code}))"


# ==========================================================================================
# small helpers
# ==========================================================================================
def _same(a, b) -> bool:
    from ..tir.functor import structural_equal
    return structural_equal(a, b)


def _contiguous(idx) -> bool:
    return isinstance(idx, E.Ramp) and E.is_const_int(idx.stride, 1)


def _vec_type(elem: str, lanes: int):
    """(C vector type, has .x/.y/.z/.w members) for ``lanes`` x ``elem``, or None if not 4/8/16 bytes."""
    if elem == "bool" or lanes < 2:
        return None
    nbytes = dt.numpy_dtype(elem).itemsize * lanes
    if nbytes not in _WORD:
        return None
    native = _NATIVE_VECTOR.get((elem, lanes))
    if native is not None:
        return native, True
    return _WORD[nbytes], False


def _member(name: str, lane, native: bool, elem: str) -> str:
    if lane is None:
        raise CodegenError(f"vector value {name} used as a scalar")
    if native:
        return f"{name}.{_MEMBERS[lane]}"
    return f"(({_CTYPE[elem]}*)&{name})[{lane}]"


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


def _bare(code: str) -> str:
    """``code`` without one pair of outer parentheses that enclose all of it."""
    if not (code.startswith("(") and code.endswith(")")):
        return code
    depth = 0
    for k, ch in enumerate(code):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and k != len(code) - 1:
                return code
    return code[1:-1]


def _paren(code: str) -> str:
    """``code`` wrapped in parentheses unless it already is one parenthesized unit or a name."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", code) or _bare(code) != code:
        return code
    return f"({code})"


def _narrow(elem: str, code: str) -> str:
    """Cast an int-promoted C result back to an 8/16-bit dtype so it wraps like the IR says."""
    if dt.is_integer(elem) and dt.bits(elem) < 32:
        return f"(({_CTYPE[elem]}){code})"
    return code


def _int_literal(v: int, dtype: str) -> str:
    v = int(v)
    elem = dt.element_of(dtype)
    if elem == "bool":
        return "true" if v else "false"
    if elem == "int32":
        if v == -2**31:
            return "(-2147483647 - 1)"
        return str(v) if v >= 0 else f"({v})"
    if elem == "int64":
        if v == -2**63:
            return "(-9223372036854775807LL - 1)"
        return f"{v}LL" if v >= 0 else f"({v}LL)"
    if elem == "uint32":
        return f"{v}U"
    if elem == "uint64":
        return f"{v}ULL"
    return f"(({_CTYPE[elem]}){v})"


def _float_literal(v: float, dtype: str) -> str:
    elem = dt.element_of(dtype)
    if elem == "float16":
        bits = int(np.array(v, dtype=np.float16).view(np.uint16))
        return f"mt_half{{0x{bits:04x}}}"
    if elem == "float32":
        f = np.float32(v)
        if math.isnan(f):
            return "__int_as_float(0x7fc00000)"
        if math.isinf(f):
            return "__int_as_float(0x7f800000)" if f > 0 else "(-__int_as_float(0x7f800000))"
        s = str(f)
        if "." not in s and "e" not in s:
            s += ".0"
        return f"{s}f" if f >= 0 else f"({s}f)"
    f = float(v)
    if math.isnan(f):
        return "__longlong_as_double(0x7ff8000000000000LL)"
    if math.isinf(f):
        return "__longlong_as_double(0x7ff0000000000000LL)" if f > 0 else "(-__longlong_as_double(0x7ff0000000000000LL))"
    s = repr(f)
    if "." not in s and "e" not in s:
        s += ".0"
    return s if f >= 0 else f"({s})"
