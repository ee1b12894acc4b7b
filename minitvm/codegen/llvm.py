"""Lowered loop IR (``PrimFunc``) -> LLVM IR text, and :func:`build_llvm` for the host CPU.

The generated IR is plain text in LLVM's assembly syntax (opaque pointers), built directly
rather than through ``llvmlite.ir``: it is the cheapest way to produce it and it keeps the
output readable. :mod:`minitvm.runtime.llvm` parses, optimizes (-O3) and JIT-compiles it.

Calling convention of every entry point::

    i32 @name(ptr noalias %buf0, ..., ptr noalias %bufK, i32 %shape_var0, ...)

returning 0 on success. Parallel loops are outlined into internal functions run by the
runtime's ``minitvm_parallel_for(fnptr, n, closure)`` (see :mod:`minitvm.runtime.llvm`).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

from .. import dtype as dt
from ..errors import CodegenError
from .signature import signature_of
from ..tir import expr as E
from ..tir import stmt as S
from ..tir.functor import post_order_visit

# Constant-size allocations up to this many bytes live on the stack; larger or symbolic
# ones are malloc'ed.
STACK_ALLOC_LIMIT = 1 << 20

PARALLEL_FOR_SYMBOL = "minitvm_parallel_for"

_SCALAR_TYPES = {
    "bool": "i1", "int8": "i8", "uint8": "i8", "int16": "i16", "uint16": "i16",
    "int32": "i32", "uint32": "i32", "int64": "i64", "uint64": "i64",
    "float16": "half", "float32": "float", "float64": "double",
}
_MANGLE = {"i1": "i1", "i8": "i8", "i16": "i16", "i32": "i32", "i64": "i64",
           "half": "f16", "float": "f32", "double": "f64"}

_UNARY_MATH = {
    "exp": "exp", "exp2": "exp2", "log": "log", "log2": "log2", "log10": "log10",
    "sqrt": "sqrt", "tanh": "tanh", "floor": "floor", "ceil": "ceil", "fabs": "fabs",
    "trunc": "trunc", "sin": "sin", "cos": "cos", "round": "roundeven", "nearbyint": "roundeven",
}
_ICMP = {"EQ": "eq", "NE": "ne", "LT": "slt", "LE": "sle", "GT": "sgt", "GE": "sge"}
_UCMP = {"EQ": "eq", "NE": "ne", "LT": "ult", "LE": "ule", "GT": "ugt", "GE": "uge"}
_FCMP = {"EQ": "oeq", "NE": "une", "LT": "olt", "LE": "ole", "GT": "ogt", "GE": "oge"}


# ----------------------------------------------------------------------------------------
# types and constants
# ----------------------------------------------------------------------------------------
def llvm_type(dtype: str) -> str:
    """The LLVM type of a minitvm dtype: ``int8x4`` -> ``<4 x i8>``, ``handle`` -> ``ptr``."""
    if dtype == "handle":
        return "ptr"
    base, lanes = dt.split_lanes(dtype)
    t = _SCALAR_TYPES[base]
    return t if lanes == 1 else f"<{lanes} x {t}>"


def _mem_type(dtype: str) -> str:
    """Type of one element in memory: bool is a byte there (numpy's layout), i1 in registers."""
    return "i8" if dt.is_bool(dtype) else _SCALAR_TYPES[dt.element_of(dtype)]


def _mangle(dtype: str) -> str:
    base, lanes = dt.split_lanes(dtype)
    m = _MANGLE[_SCALAR_TYPES[base]]
    return m if lanes == 1 else f"v{lanes}{m}"


def _elem_size(dtype: str) -> int:
    return 1 if dt.is_bool(dtype) else dt.numpy_dtype(dtype).itemsize


def _float_literal(value: float, dtype: str) -> str:
    base = dt.element_of(dtype)
    if base == "float16":
        return "0xH%04X" % int(np.array(value, dtype=np.float16).view(np.uint16))
    if base == "float32":
        value = float(np.float32(value))  # LLVM wants the double that the float holds exactly
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", float(value)))[0]


def const_literal(value, dtype: str) -> str:
    """The LLVM constant (without its type) of ``value`` in ``dtype``; vectors are splats."""
    base, lanes = dt.split_lanes(dtype)
    if lanes > 1:
        elem = f"{_SCALAR_TYPES[base]} {const_literal(value, base)}"
        return "<" + ", ".join([elem] * lanes) + ">"
    if base == "bool":
        return "true" if value else "false"
    if dt.is_float(base):
        return _float_literal(value, base)
    bits = dt.bits(base)
    v = int(value) & ((1 << bits) - 1)
    return str(v - (1 << bits) if v >= 1 << (bits - 1) else v)


def _is_signed(dtype: str) -> bool:
    return dt.is_int(dtype)


def _const_int_of(e):
    """The integer value of a constant (or broadcast constant) expression, else None."""
    if isinstance(e, E.Broadcast):
        e = e.value
    return e.value if isinstance(e, E.IntImm) else None


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", name) or "v"


def _global(name: str) -> str:
    """``@"name"`` with the characters LLVM's quoted names cannot hold escaped."""
    return '@"' + "".join(c if c.isprintable() and c not in '"\\' else "\\%02X" % ord(c) for c in name) + '"'


# ----------------------------------------------------------------------------------------
# module-level state
# ----------------------------------------------------------------------------------------
class _ModuleBuilder:
    """Collects declarations, function bodies and metadata of one LLVM module."""

    def __init__(self):
        self.declares: dict[str, str] = {}
        self.functions: list[str] = []
        self.metadata: list[str] = []
        self.n_meta = 0
        self.n_outlined = 0

    def declare(self, name: str, ret: str, args: list[str]) -> str:
        """Declare an external function or intrinsic once; returns ``@name``."""
        if name not in self.declares:
            self.declares[name] = f"declare {ret} @{name}({', '.join(args)})"
        return f"@{name}"

    def unroll_metadata(self) -> str:
        """A fresh ``llvm.loop`` node asking for full unrolling; returns its ``!N`` name."""
        loop, prop = self.n_meta, self.n_meta + 1
        self.n_meta += 2
        self.metadata.append(f"!{loop} = distinct !{{!{loop}, !{prop}}}")
        self.metadata.append(f'!{prop} = !{{!"llvm.loop.unroll.full"}}')
        return f"!{loop}"

    def text(self, header: str) -> str:
        parts = [header]
        parts.extend(self.declares.values())
        parts.append("")
        parts.extend(self.functions)
        parts.extend(self.metadata)
        return "\n".join(parts) + "\n"


class _VarCollector:
    """Variables and buffer pointers a statement refers to (for parallel-loop closures)."""

    def __init__(self):
        self.found: dict[int, E.Var] = {}

    def __call__(self, node):
        if isinstance(node, E.Var):
            self.found[id(node)] = node
        elif isinstance(node, (E.BufferLoad, S.BufferStore, S.Allocate)):
            buf = node.buffer
            self.found[id(buf.data)] = buf.data
            for e in (buf.elem_offset, *buf.shape):
                post_order_visit(e, self)


# ----------------------------------------------------------------------------------------
# one LLVM function
# ----------------------------------------------------------------------------------------
class _FunctionBuilder:
    """Translates one statement tree into the body of one LLVM function."""

    def __init__(self, mod: _ModuleBuilder, func_name: str):
        self.mod = mod
        self.func_name = func_name
        self.lines: list[str] = []
        self.allocas: list[str] = []
        self.n = 0
        self.block = "entry"
        # id(Var) -> (llvm operand, llvm type)
        self.env: dict[int, tuple[str, str]] = {}
        self.written: set[int] = set()
        self.index_depth = 0

    # -- emission helpers ------------------------------------------------------------------
    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def label(self, hint: str) -> str:
        self.n += 1
        return f"{hint}{self.n}"

    def emit(self, text: str) -> None:
        self.lines.append("  " + text)

    def val(self, text: str) -> str:
        r = self.tmp()
        self.lines.append(f"  {r} = {text}")
        return r

    def start_block(self, label: str) -> None:
        self.lines.append(f"{label}:")
        self.block = label

    def bind(self, var: E.Var, operand: str, ty: str | None = None):
        key = id(var)
        old = self.env.get(key)
        self.env[key] = (operand, ty or llvm_type(var.dtype))
        return key, old

    def unbind(self, token) -> None:
        key, old = token
        if old is None:
            self.env.pop(key, None)
        else:
            self.env[key] = old

    def lookup(self, var: E.Var) -> str:
        try:
            return self.env[id(var)][0]
        except KeyError:
            raise CodegenError(
                f"llvm codegen: variable '{var.name}' ({var.dtype}) is used in {self.func_name} but "
                "never defined: it is not a parameter buffer, a shape variable in attrs['shape_vars'], "
                "a loop variable or a let binding in scope") from None

    def splat(self, scalar: str, dtype: str, lanes: int) -> str:
        """Broadcast a scalar operand of ``dtype`` to ``lanes`` lanes."""
        st = llvm_type(dtype)
        vt = f"<{lanes} x {st}>"
        v = self.val(f"insertelement {vt} poison, {st} {scalar}, i32 0")
        return self.val(f"shufflevector {vt} {v}, {vt} poison, <{lanes} x i32> zeroinitializer")

    # -- expressions ---------------------------------------------------------------------
    def expr(self, e) -> str:
        method = _EXPR_DISPATCH.get(type(e))
        if method is None:
            method = _find_method(self, type(e), "_e_")
        return method(self, e)

    def expr_as(self, e, lanes: int) -> str:
        """Evaluate ``e``, broadcasting a scalar to ``lanes`` lanes if needed."""
        v = self.expr(e)
        have = dt.lanes_of(e.dtype)
        if have == lanes:
            return v
        if have == 1:
            return self.splat(v, e.dtype, lanes)
        raise CodegenError(f"llvm codegen: cannot use the {e.dtype} value {e} where {lanes} lanes are needed")

    def _operands(self, e):
        la, lb = dt.lanes_of(e.a.dtype), dt.lanes_of(e.b.dtype)
        lanes = max(la, lb)
        if dt.element_of(e.a.dtype) != dt.element_of(e.b.dtype):
            raise CodegenError(f"llvm codegen: operands of {type(e).__name__} have dtypes "
                               f"{e.a.dtype} and {e.b.dtype}: {e}")
        dtype = dt.with_lanes(e.a.dtype, lanes)
        return self.expr_as(e.a, lanes), self.expr_as(e.b, lanes), dtype, llvm_type(dtype)

    def _e_Var(self, e):
        return self.lookup(e)

    def _e_IntImm(self, e):
        return const_literal(e.value, e.dtype)

    def _e_FloatImm(self, e):
        return const_literal(e.value, e.dtype)

    def _e_StringImm(self, e):
        raise CodegenError(f"llvm codegen: string constant {e.value!r} is only allowed as a call argument")

    def _arith(self, e, iop, fop):
        a, b, dtype, ty = self._operands(e)
        if dt.is_float(dtype):
            return self.val(f"{fop} {ty} {a}, {b}")
        if self.index_depth and _is_signed(dtype) and dt.bits(dtype) >= 32:
            # Values wrap (the dtype rule), but an index that overflows is out of bounds
            # anyway; nsw lets LLVM widen index math to 64-bit addresses and vectorize.
            iop += " nsw"
        return self.val(f"{iop} {ty} {a}, {b}")

    def _e_Add(self, e):
        return self._arith(e, "add", "fadd")

    def _e_Sub(self, e):
        return self._arith(e, "sub", "fsub")

    def _e_Mul(self, e):
        return self._arith(e, "mul", "fmul")

    def _e_Div(self, e):
        a, b, dtype, ty = self._operands(e)
        if dt.is_float(dtype):
            return self.val(f"fdiv {ty} {a}, {b}")
        b = self._safe_divisor(e.b, b, dtype, ty)
        return self.val(f"{'sdiv' if _is_signed(dtype) else 'udiv'} {ty} {a}, {b}")

    def _safe_divisor(self, b_node, b, dtype, ty):
        # A zero divisor is undefined behaviour in LLVM and traps on x86; with Select both
        # sides are evaluated, so guarded divisions must not kill the process.
        c = _const_int_of(b_node)
        if c is not None and c != 0:
            return b
        zero, one = const_literal(0, dtype), const_literal(1, dtype)
        z = self.val(f"icmp eq {ty} {b}, {zero}")
        bty = llvm_type(dt.with_lanes("bool", dt.lanes_of(dtype)))
        return self.val(f"select {bty} {z}, {ty} {one}, {ty} {b}")

    def _floor_divmod(self, e, want_mod: bool):
        a, b, dtype, ty = self._operands(e)
        if dt.is_float(dtype):
            q = self.val(f"fdiv {ty} {a}, {b}")
            q = self._intrinsic("floor", dtype, [q])
            if not want_mod:
                return q
            m = self.val(f"fmul {ty} {q}, {b}")
            return self.val(f"fsub {ty} {a}, {m}")
        if dt.is_bool(dtype):
            raise CodegenError(f"llvm codegen: {type(e).__name__} on bool operands: {e}")
        c = _const_int_of(e.b)
        signed = _is_signed(dtype)
        if c is not None and c > 0 and c & (c - 1) == 0:
            if want_mod:
                return self.val(f"and {ty} {a}, {const_literal(c - 1, dtype)}")
            shift = c.bit_length() - 1
            return self.val(f"{'ashr' if signed else 'lshr'} {ty} {a}, {const_literal(shift, dtype)}")
        if not signed:
            b = self._safe_divisor(e.b, b, dtype, ty)
            return self.val(f"{'urem' if want_mod else 'udiv'} {ty} {a}, {b}")
        b = self._safe_divisor(e.b, b, dtype, ty)
        bty = llvm_type(dt.with_lanes("bool", dt.lanes_of(dtype)))
        zero = const_literal(0, dtype)
        r = self.val(f"srem {ty} {a}, {b}")
        if c is not None and c > 0:
            adjust = self.val(f"icmp slt {ty} {r}, {zero}")
        else:
            # the remainder is non-zero and its sign differs from the divisor's
            nz = self.val(f"icmp ne {ty} {r}, {zero}")
            x = self.val(f"xor {ty} {r}, {b}")
            neg = self.val(f"icmp slt {ty} {x}, {zero}")
            adjust = self.val(f"and {bty} {nz}, {neg}")
        if want_mod:
            rb = self.val(f"add {ty} {r}, {b}")
            return self.val(f"select {bty} {adjust}, {ty} {rb}, {ty} {r}")
        q = self.val(f"sdiv {ty} {a}, {b}")
        q1 = self.val(f"sub {ty} {q}, {const_literal(1, dtype)}")
        return self.val(f"select {bty} {adjust}, {ty} {q1}, {ty} {q}")

    def _e_FloorDiv(self, e):
        return self._floor_divmod(e, False)

    def _e_FloorMod(self, e):
        return self._floor_divmod(e, True)

    def _minmax(self, e, is_min: bool):
        a, b, dtype, ty = self._operands(e)
        bty = llvm_type(dt.with_lanes("bool", dt.lanes_of(dtype)))
        if dt.is_float(dtype):
            # a < b ? a : b, as C and TVM write it
            c = self.val(f"fcmp {'olt' if is_min else 'ogt'} {ty} {a}, {b}")
            return self.val(f"select {bty} {c}, {ty} {a}, {ty} {b}")
        kind = ("s" if _is_signed(dtype) else "u") + ("min" if is_min else "max")
        fn = self.mod.declare(f"llvm.{kind}.{_mangle(dtype)}", ty, [ty, ty])
        return self.val(f"call {ty} {fn}({ty} {a}, {ty} {b})")

    def _e_Min(self, e):
        return self._minmax(e, True)

    def _e_Max(self, e):
        return self._minmax(e, False)

    def _cmp(self, e):
        a, b, dtype, ty = self._operands(e)
        name = type(e).__name__
        if dt.is_float(dtype):
            return self.val(f"fcmp {_FCMP[name]} {ty} {a}, {b}")
        table = _ICMP if _is_signed(dtype) else _UCMP
        return self.val(f"icmp {table[name]} {ty} {a}, {b}")

    _e_EQ = _e_NE = _e_LT = _e_LE = _e_GT = _e_GE = _cmp

    def _e_And(self, e):
        a, b, dtype, ty = self._operands(e)
        return self.val(f"and {ty} {a}, {b}")

    def _e_Or(self, e):
        a, b, dtype, ty = self._operands(e)
        return self.val(f"or {ty} {a}, {b}")

    def _e_Not(self, e):
        a = self.expr(e.a)
        if dt.is_float(e.a.dtype):
            raise CodegenError(f"llvm codegen: logical not of the float expression {e.a}")
        ones = const_literal(1 if dt.is_bool(e.a.dtype) else -1, e.a.dtype)
        return self.val(f"xor {llvm_type(e.a.dtype)} {a}, {ones}")

    def _cond(self, e) -> str:
        """A condition as i1 (non-bool integers compare against zero)."""
        v = self.expr(e)
        if dt.is_bool(e.dtype):
            return v
        ty = llvm_type(e.dtype)
        if dt.is_float(e.dtype):
            return self.val(f"fcmp une {ty} {v}, {const_literal(0, e.dtype)}")
        return self.val(f"icmp ne {ty} {v}, {const_literal(0, e.dtype)}")

    def _e_Select(self, e):
        lanes = max(dt.lanes_of(e.true_value.dtype), dt.lanes_of(e.false_value.dtype))
        c = self._cond(e.condition)
        clanes = dt.lanes_of(e.condition.dtype)
        if clanes not in (1, lanes):
            raise CodegenError(
                f"llvm codegen: select condition with {clanes} lanes for {lanes}-lane values: {e}")
        t = self.expr_as(e.true_value, lanes)
        f = self.expr_as(e.false_value, lanes)
        ty = llvm_type(dt.with_lanes(e.true_value.dtype, lanes))
        return self.val(f"select {llvm_type(dt.with_lanes('bool', clanes))} {c}, {ty} {t}, {ty} {f}")

    def _e_Cast(self, e):
        src, dst = e.value.dtype, e.dtype
        lanes = dt.lanes_of(dst)
        v = self.expr_as(e.value, lanes) if dt.lanes_of(src) != lanes else self.expr(e.value)
        if dt.lanes_of(src) != lanes:
            src = dt.with_lanes(src, lanes)
        return self.cast(v, src, dst)

    def cast(self, v: str, src: str, dst: str) -> str:
        """Convert operand ``v`` from ``src`` to ``dst`` (same lane count) with numpy semantics."""
        if src == dst:
            return v
        st, tt = llvm_type(src), llvm_type(dst)
        lanes = dt.lanes_of(dst)
        if dt.is_bool(dst):
            if dt.is_float(src):
                return self.val(f"fcmp une {st} {v}, {const_literal(0, src)}")
            return self.val(f"icmp ne {st} {v}, {const_literal(0, src)}")
        sf, df = dt.is_float(src), dt.is_float(dst)
        if sf and df:
            op = "fpext" if dt.bits(dst) > dt.bits(src) else "fptrunc"
            return self.val(f"{op} {st} {v} to {tt}")
        if not sf and df:
            op = "sitofp" if _is_signed(src) else "uitofp"
            return self.val(f"{op} {st} {v} to {tt}")
        if sf and not df:
            # numpy (C on x86) converts through a 32-bit int for narrow targets and a 64-bit
            # one for uint32, then wraps; int64/uint64 convert directly.
            bits = dt.bits(dst)
            if dt.is_uint(dst) and bits == 64:
                return self.val(f"fptoui {st} {v} to {tt}")
            wide_bits = 64 if bits == 64 or (dt.is_uint(dst) and bits == 32) else 32
            wide = dt.with_lanes(f"int{wide_bits}", lanes)
            w = self.val(f"fptosi {st} {v} to {llvm_type(wide)}")
            return self.cast(w, wide, dst)
        sb, db = dt.bits(src), dt.bits(dst)
        if sb == db:
            return v
        if db < sb:
            return self.val(f"trunc {st} {v} to {tt}")
        op = "sext" if _is_signed(src) else "zext"
        return self.val(f"{op} {st} {v} to {tt}")

    def _e_Let(self, e):
        v = self.expr(e.value)
        token = self.bind(e.var, v, llvm_type(e.value.dtype))
        try:
            return self.expr(e.body)
        finally:
            self.unbind(token)

    def _e_Ramp(self, e):
        dtype = e.base.dtype
        if not dt.is_integer(dtype) or dt.lanes_of(dtype) != 1:
            raise CodegenError(f"llvm codegen: ramp over {dtype} values: {e}")
        ty = llvm_type(e.dtype)
        base = self.splat(self.expr(e.base), dtype, e.lanes)
        stride = _const_int_of(e.stride)
        if stride is not None:
            offsets = "<" + ", ".join(f"{llvm_type(dtype)} {const_literal(i * stride, dtype)}"
                                      for i in range(e.lanes)) + ">"
        else:
            s = self.splat(self.expr(e.stride), dtype, e.lanes)
            iota = "<" + ", ".join(f"{llvm_type(dtype)} {i}" for i in range(e.lanes)) + ">"
            offsets = self.val(f"mul {ty} {s}, {iota}")
        return self.val(f"add {ty} {base}, {offsets}")

    def _e_Broadcast(self, e):
        if dt.lanes_of(e.value.dtype) != 1:
            raise CodegenError(f"llvm codegen: broadcast of the vector {e.value} ({e.value.dtype})")
        if isinstance(e.value, (E.IntImm, E.FloatImm)):
            return const_literal(e.value.value, e.dtype)
        return self.splat(self.expr(e.value), e.value.dtype, e.lanes)

    # -- memory --------------------------------------------------------------------------
    def _access(self, node, what: str):
        """(pointer operand, flat index node, element dtype) of a BufferLoad/BufferStore."""
        buf = node.buffer
        if len(node.indices) != 1:
            raise CodegenError(
                f"llvm codegen: {what} of buffer '{buf.name}' has {len(node.indices)} indices; lowered "
                "IR must have exactly one flat index (run storage flattening before codegen)")
        if dt.lanes_of(buf.dtype) != 1:
            raise CodegenError(f"llvm codegen: buffer '{buf.name}' has vector dtype {buf.dtype}")
        try:
            ptr = self.env[id(buf.data)][0]
        except KeyError:
            raise CodegenError(
                f"llvm codegen: buffer '{buf.name}' is accessed in {self.func_name} but is neither a "
                "parameter nor allocated by an enclosing Allocate") from None
        index = buf.offset_index(node.indices[0])
        if dt.is_float(index.dtype) or dt.is_bool(index.dtype):
            raise CodegenError(f"llvm codegen: {what} of '{buf.name}' with a {index.dtype} index {index}")
        return ptr, index, buf.dtype

    def index_expr(self, e) -> str:
        """Evaluate a buffer index (signed int32/int64 arithmetic in it is marked nsw)."""
        self.index_depth += 1
        try:
            return self.expr(e)
        finally:
            self.index_depth -= 1

    def _gep(self, ptr: str, mem: str, index: str, index_dtype: str) -> str:
        it = llvm_type(index_dtype)
        if dt.is_uint(index_dtype) and dt.bits(index_dtype) < 64:
            index = self.val(f"zext {it} {index} to i64")
            it = "i64"
        return self.val(f"getelementptr inbounds {mem}, ptr {ptr}, {it} {index}")

    def _lane_pointers(self, ptr, index, mem):
        """One pointer per lane for a strided or gathered access."""
        lanes = dt.lanes_of(index.dtype)
        if isinstance(index, E.Ramp):
            base = self._gep(ptr, mem, self.index_expr(index.base), index.base.dtype)
            stride = _const_int_of(index.stride)
            it = llvm_type(index.base.dtype)
            s = None if stride is not None else self.index_expr(index.stride)
            out = []
            for k in range(lanes):
                if stride is not None:
                    off = const_literal(k * stride, index.base.dtype)
                elif k == 0:
                    off = "0"
                else:
                    off = self.val(f"mul {it} {s}, {k}")
                out.append(self._gep(base, mem, off, index.base.dtype))
            return out
        vec = self.index_expr(index)
        vt = llvm_type(index.dtype)
        elem = dt.element_of(index.dtype)
        out = []
        for k in range(lanes):
            ik = self.val(f"extractelement {vt} {vec}, i32 {k}")
            out.append(self._gep(ptr, mem, ik, elem))
        return out

    def _e_BufferLoad(self, e):
        ptr, index, bdtype = self._access(e, "load")
        mem = _mem_type(bdtype)
        align = _elem_size(bdtype)
        lanes = dt.lanes_of(index.dtype)
        if lanes == 1:
            p = self._gep(ptr, mem, self.index_expr(index), index.dtype)
            v = self.val(f"load {mem}, ptr {p}, align {align}")
        elif isinstance(index, E.Ramp) and _const_int_of(index.stride) == 1:
            p = self._gep(ptr, mem, self.index_expr(index.base), index.base.dtype)
            v = self.val(f"load <{lanes} x {mem}>, ptr {p}, align {align}")
        else:
            vt = f"<{lanes} x {mem}>"
            v = "poison"
            for k, p in enumerate(self._lane_pointers(ptr, index, mem)):
                x = self.val(f"load {mem}, ptr {p}, align {align}")
                v = self.val(f"insertelement {vt} {v}, {mem} {x}, i32 {k}")
        if dt.is_bool(bdtype):
            t = mem if lanes == 1 else f"<{lanes} x {mem}>"
            v = self.val(f"icmp ne {t} {v}, zeroinitializer")
        return v

    def store(self, s: S.BufferStore) -> None:
        ptr, index, bdtype = self._access(s, "store")
        self.written.add(id(s.buffer.data))
        mem = _mem_type(bdtype)
        align = _elem_size(bdtype)
        lanes = dt.lanes_of(index.dtype)
        if dt.element_of(s.value.dtype) != dt.element_of(bdtype):
            raise CodegenError(f"llvm codegen: storing a {s.value.dtype} value into the {bdtype} buffer "
                               f"'{s.buffer.name}': {s.value}")
        if dt.lanes_of(s.value.dtype) not in (1, lanes):
            raise CodegenError(f"llvm codegen: storing {s.value.dtype} into '{s.buffer.name}' with a "
                               f"{lanes}-lane index")
        v = self.expr_as(s.value, lanes)
        if dt.is_bool(bdtype):
            t = "i1" if lanes == 1 else f"<{lanes} x i1>"
            v = self.val(f"zext {t} {v} to {'i8' if lanes == 1 else f'<{lanes} x i8>'}")
        if lanes == 1:
            p = self._gep(ptr, mem, self.index_expr(index), index.dtype)
            self.emit(f"store {mem} {v}, ptr {p}, align {align}")
        elif isinstance(index, E.Ramp) and _const_int_of(index.stride) == 1:
            p = self._gep(ptr, mem, self.index_expr(index.base), index.base.dtype)
            self.emit(f"store <{lanes} x {mem}> {v}, ptr {p}, align {align}")
        else:
            vt = f"<{lanes} x {mem}>"
            for k, p in enumerate(self._lane_pointers(ptr, index, mem)):
                x = self.val(f"extractelement {vt} {v}, i32 {k}")
                self.emit(f"store {mem} {x}, ptr {p}, align {align}")

    # -- calls ---------------------------------------------------------------------------
    def _intrinsic(self, name: str, dtype: str, args: list[str]) -> str:
        ty = llvm_type(dtype)
        fn = self.mod.declare(f"llvm.{name}.{_mangle(dtype)}", ty, [ty] * len(args))
        return self.val(f"call {ty} {fn}({', '.join(f'{ty} {a}' for a in args)})")

    def _e_Call(self, e):
        op = e.op[4:] if e.op.startswith("tir.") else e.op
        args = e.args
        if op in _UNARY_MATH or op in ("pow", "fabs", "abs"):
            return self._math_call(e, op)
        if op == "likely":
            return self.expr(args[0])
        if op in ("truncdiv", "truncmod"):
            self._check_arity(e, 2)
            a, b, dtype, ty = self._operands(E.Add(args[0], args[1]))
            if dt.is_float(dtype):
                if op == "truncmod":
                    return self.val(f"frem {ty} {a}, {b}")
                return self._intrinsic("trunc", dtype, [self.val(f"fdiv {ty} {a}, {b}")])
            b = self._safe_divisor(args[1], b, dtype, ty)
            signed = _is_signed(dtype)
            ins = ("s" if signed else "u") + ("div" if op == "truncdiv" else "rem")
            return self.val(f"{ins} {ty} {a}, {b}")
        if op == "dp4a":
            return self._dp4a(e)
        if op == "reinterpret":
            self._check_arity(e, 1)
            src = args[0].dtype
            if dt.bits(src) * dt.lanes_of(src) != dt.bits(e.dtype) * dt.lanes_of(e.dtype) \
                    or dt.is_bool(src) or dt.is_bool(e.dtype):
                raise CodegenError(f"llvm codegen: reinterpret from {src} to {e.dtype} changes the size")
            v = self.expr(args[0])
            if src == e.dtype:
                return v
            return self.val(f"bitcast {llvm_type(src)} {v} to {llvm_type(e.dtype)}")
        if op == "if_then_else":
            return self._if_then_else(e)
        if op in ("shift_left", "shift_right", "bitwise_and", "bitwise_or", "bitwise_xor"):
            self._check_arity(e, 2)
            a, b, dtype, ty = self._operands(E.Add(args[0], args[1]))
            if dt.is_float(dtype):
                raise CodegenError(f"llvm codegen: {op} on float operands: {e}")
            ins = {"shift_left": "shl", "shift_right": "ashr" if _is_signed(dtype) else "lshr",
                   "bitwise_and": "and", "bitwise_or": "or", "bitwise_xor": "xor"}[op]
            return self.val(f"{ins} {ty} {a}, {b}")
        if op == "bitwise_not":
            self._check_arity(e, 1)
            return self.val(f"xor {llvm_type(e.dtype)} {self.expr(args[0])}, "
                            f"{const_literal(-1, e.dtype)}")
        raise CodegenError(
            f"llvm codegen: unknown intrinsic call '{e.op}' in {self.func_name} ({e}); the CPU backend "
            "knows exp, log, sqrt, tanh, floor, ceil, fabs, pow, sin, cos, round, truncdiv, truncmod, "
            "likely, dp4a, reinterpret, if_then_else, shifts and bitwise ops")

    def _check_arity(self, e, n):
        if len(e.args) != n:
            raise CodegenError(f"llvm codegen: {e.op} takes {n} arguments, got {len(e.args)}: {e}")

    def _math_call(self, e, op):
        dtype = e.dtype
        if op == "abs" and not dt.is_float(dtype):
            self._check_arity(e, 1)
            ty = llvm_type(dtype)
            a = self.expr_as(e.args[0], dt.lanes_of(dtype))
            if not _is_signed(dtype):
                return a
            fn = self.mod.declare(f"llvm.abs.{_mangle(dtype)}", ty, [ty, "i1"])
            return self.val(f"call {ty} {fn}({ty} {a}, i1 false)")
        if not dt.is_float(dtype):
            raise CodegenError(f"llvm codegen: {op} needs float arguments, got {dtype}: {e}; "
                               "cast to float32 first")
        n = 2 if op == "pow" else 1
        self._check_arity(e, n)
        lanes = dt.lanes_of(dtype)
        for a in e.args:
            if dt.element_of(a.dtype) != dt.element_of(dtype):
                raise CodegenError(f"llvm codegen: {op} argument {a} has dtype {a.dtype}, "
                                   f"the call has {dtype}")
        args = [self.expr_as(a, lanes) for a in e.args]
        name = "fabs" if op == "abs" else _UNARY_MATH.get(op, op)
        return self._intrinsic(name, dtype, args)

    def _as_int8_vector(self, arg, what):
        """An ``int8x4k`` / ``uint8x4k`` operand of dp4a; int32 words are reinterpreted."""
        v = self.expr(arg)
        dtype = arg.dtype
        base, lanes = dt.split_lanes(dtype)
        if base in ("int32", "uint32"):
            signed = base == "int32"
            new = dt.with_lanes("int8" if signed else "uint8", 4 * lanes)
            v = self.val(f"bitcast {llvm_type(dtype)} {v} to {llvm_type(new)}")
            return v, new
        if base not in ("int8", "uint8") or lanes % 4:
            raise CodegenError(f"llvm codegen: dp4a operand {what} must be int8x4 (or an int32 word), "
                               f"got {dtype}")
        return v, dtype

    def _dp4a(self, e):
        self._check_arity(e, 3)
        a, adt = self._as_int8_vector(e.args[0], "a")
        b, bdt = self._as_int8_vector(e.args[1], "b")
        lanes = dt.lanes_of(adt)
        if dt.lanes_of(bdt) != lanes:
            raise CodegenError(f"llvm codegen: dp4a operands {adt} and {bdt} differ in lanes")
        groups = lanes // 4
        c = e.args[2]
        if dt.element_of(c.dtype) != "int32" or dt.lanes_of(c.dtype) not in (1, groups):
            raise CodegenError(f"llvm codegen: dp4a accumulator must be int32 (x{groups}), got {c.dtype}")
        wide = f"<{lanes} x i32>"
        ae = self.val(f"{'sext' if dt.is_int(adt) else 'zext'} {llvm_type(adt)} {a} to {wide}")
        be = self.val(f"{'sext' if dt.is_int(bdt) else 'zext'} {llvm_type(bdt)} {b} to {wide}")
        prod = self.val(f"mul {wide} {ae}, {be}")
        red = self.mod.declare("llvm.vector.reduce.add.v4i32", "i32", ["<4 x i32>"])
        cv = self.expr_as(c, groups)
        if groups == 1:
            if lanes != 4:
                raise CodegenError("llvm codegen: dp4a with a scalar accumulator takes int8x4 operands")
            s = self.val(f"call i32 {red}(<4 x i32> {prod})")
            return self.val(f"add i32 {cv}, {s}")
        out = "poison"
        gt = f"<{groups} x i32>"
        for g in range(groups):
            mask = ", ".join(f"i32 {4 * g + k}" for k in range(4))
            part = self.val(f"shufflevector {wide} {prod}, {wide} poison, <4 x i32> <{mask}>")
            s = self.val(f"call i32 {red}(<4 x i32> {part})")
            out = self.val(f"insertelement {gt} {out}, i32 {s}, i32 {g}")
        return self.val(f"add {gt} {cv}, {out}")

    def _if_then_else(self, e):
        self._check_arity(e, 3)
        cond, t, f = e.args
        lanes = max(dt.lanes_of(t.dtype), dt.lanes_of(f.dtype))
        if dt.lanes_of(cond.dtype) != 1:
            return self._e_Select(E.Select(cond, t, f))
        c = self._cond(cond)
        ty = llvm_type(dt.with_lanes(t.dtype, lanes))
        lt, lf, lm = self.label("ite_then"), self.label("ite_else"), self.label("ite_end")
        self.emit(f"br i1 {c}, label %{lt}, label %{lf}")
        self.start_block(lt)
        tv = self.expr_as(t, lanes)
        tb = self.block
        self.emit(f"br label %{lm}")
        self.start_block(lf)
        fv = self.expr_as(f, lanes)
        fb = self.block
        self.emit(f"br label %{lm}")
        self.start_block(lm)
        return self.val(f"phi {ty} [ {tv}, %{tb} ], [ {fv}, %{fb} ]")

    def _e_ProducerLoad(self, e):
        raise CodegenError(f"llvm codegen: {e} reads a tensor, not a buffer: the IR was not lowered")

    def _e_Reduce(self, e):
        raise CodegenError(f"llvm codegen: reduction {e} survived lowering")

    # -- statements ----------------------------------------------------------------------
    def stmt(self, s) -> None:
        method = _STMT_DISPATCH.get(type(s))
        if method is None:
            method = _find_method(self, type(s), "_s_")
        method(self, s)

    def _s_SeqStmt(self, s):
        for x in s.seq:
            self.stmt(x)

    def _s_BufferStore(self, s):
        self.store(s)

    def _s_Evaluate(self, s):
        if isinstance(s.value, (E.IntImm, E.FloatImm)):
            return
        self.expr(s.value)

    def _s_LetStmt(self, s):
        v = self.expr(s.value)
        token = self.bind(s.var, v, llvm_type(s.value.dtype))
        try:
            self.stmt(s.body)
        finally:
            self.unbind(token)

    def _s_AttrStmt(self, s):
        if s.attr_key == "thread_extent":
            raise CodegenError(
                f"llvm codegen: {self.func_name}: kernel bound to GPU threads cannot be built for llvm; "
                "build it for target cuda")
        self.stmt(s.body)

    def _s_IfThenElse(self, s):
        if dt.lanes_of(s.condition.dtype) != 1:
            raise CodegenError(f"llvm codegen: if condition {s.condition} is a vector ({s.condition.dtype})")
        c = self._cond(s.condition)
        lt, lm = self.label("if_then"), self.label("if_end")
        lf = self.label("if_else") if s.else_case is not None else lm
        self.emit(f"br i1 {c}, label %{lt}, label %{lf}")
        self.start_block(lt)
        self.stmt(s.then_case)
        self.emit(f"br label %{lm}")
        if s.else_case is not None:
            self.start_block(lf)
            self.stmt(s.else_case)
            self.emit(f"br label %{lm}")
        self.start_block(lm)

    def _s_For(self, s):
        if s.kind not in S.FOR_KINDS:
            raise CodegenError(f"llvm codegen: loop {s.loop_var.name} has unknown kind {s.kind!r}")
        if dt.is_float(s.loop_var.dtype) or dt.lanes_of(s.loop_var.dtype) != 1:
            raise CodegenError(f"llvm codegen: loop variable {s.loop_var.name} has dtype {s.loop_var.dtype}")
        if s.kind == "parallel":
            self._parallel_for(s)
            return
        ty = llvm_type(s.loop_var.dtype)
        lo, ext = self._loop_bounds(s)
        end = ext if _const_int_of(s.min) == 0 else self.val(f"add {ty} {lo}, {ext}")
        self.loop(s.loop_var, lo, end, s.body, unroll=s.kind == "unrolled")

    def _loop_bounds(self, s: S.For):
        """min and extent of a loop, converted to the loop variable's dtype."""
        out = []
        for e in (s.min, s.extent):
            if not dt.is_integer(e.dtype) or dt.lanes_of(e.dtype) != 1:
                raise CodegenError(f"llvm codegen: loop {s.loop_var.name} has a {e.dtype} bound {e}")
            out.append(self.cast(self.expr(e), e.dtype, s.loop_var.dtype))
        return out

    def loop(self, var: E.Var, lo: str, end: str, body, unroll: bool = False):
        """Emit ``for (var = lo; var < end; ++var) body``."""
        ty = llvm_type(var.dtype)
        cmp = "slt" if _is_signed(var.dtype) else "ult"
        pre = self.block
        head, lbody, latch, done = (self.label("for_head"), self.label("for_body"),
                                    self.label("for_latch"), self.label("for_end"))
        i, nxt = self.tmp(), self.tmp()
        self.emit(f"br label %{head}")
        self.start_block(head)
        self.lines.append(f"  {i} = phi {ty} [ {lo}, %{pre} ], [ {nxt}, %{latch} ]")
        c = self.val(f"icmp {cmp} {ty} {i}, {end}")
        self.emit(f"br i1 {c}, label %{lbody}, label %{done}")
        self.start_block(lbody)
        token = self.bind(var, i, ty)
        try:
            self.stmt(body)
        finally:
            self.unbind(token)
        self.emit(f"br label %{latch}")
        self.start_block(latch)
        self.lines.append(f"  {nxt} = add nsw {ty} {i}, 1")
        md = f", !llvm.loop {self.mod.unroll_metadata()}" if unroll else ""
        self.emit(f"br label %{head}{md}")
        self.start_block(done)

    def _s_Allocate(self, s):
        buf = s.buffer
        if dt.lanes_of(buf.dtype) != 1:
            raise CodegenError(f"llvm codegen: allocation '{buf.name}' has vector dtype {buf.dtype}")
        mem = _mem_type(buf.dtype)
        esize = _elem_size(buf.dtype)
        dims = [_const_int_of(d) for d in buf.shape]
        if all(d is not None for d in dims):
            count = int(np.prod(dims, dtype=np.int64)) if dims else 1
            if count < 0:
                raise CodegenError(f"llvm codegen: allocation '{buf.name}' has negative size {count}")
            if count * esize <= STACK_ALLOC_LIMIT:
                p = f"%{_sanitize(buf.name)}.{self.label('a')}"
                self.allocas.append(f"  {p} = alloca {mem}, i64 {max(count, 1)}, align 64")
                token = self.bind(buf.data, p, "ptr")
                try:
                    self.stmt(s.body)
                finally:
                    self.unbind(token)
                return
            nbytes = str(count * esize)
        else:
            n = "1"
            for d in buf.shape:
                v = self.expr(d)
                if dt.is_float(d.dtype):
                    raise CodegenError(f"llvm codegen: allocation '{buf.name}' has a float extent {d}")
                v = self.cast(v, d.dtype, "int64")
                n = self.val(f"mul i64 {n}, {v}")
            nbytes = self.val(f"mul i64 {n}, {esize}")
        malloc = self.mod.declare("malloc", "ptr", ["i64"])
        free = self.mod.declare("free", "void", ["ptr"])
        p = self.val(f"call ptr {malloc}(i64 {nbytes})")
        token = self.bind(buf.data, p, "ptr")
        try:
            self.stmt(s.body)
        finally:
            self.unbind(token)
        self.emit(f"call void {free}(ptr {p})")

    def _s_ProducerStore(self, s):
        raise CodegenError(f"llvm codegen: {s.producer} is stored as a tensor: the IR was not lowered")

    def _s_ProducerRealize(self, s):
        raise CodegenError(f"llvm codegen: realize of {s.producer} survived lowering")

    # -- parallel loops ------------------------------------------------------------------
    def _parallel_for(self, s: S.For):
        """Outline the loop body and hand it to the runtime's thread pool.

        ``@f.parN(i64 begin, i64 end, ptr closure)`` unpacks the closure (every pointer and
        scalar the body uses from outside) and calls ``@f.parN.body``, which takes them as
        ``noalias`` arguments so the body optimizes like the enclosing function would.
        """
        ty = llvm_type(s.loop_var.dtype)
        lo, ext = self._loop_bounds(s)
        collector = _VarCollector()
        post_order_visit(s.body, collector)
        captures = [(v, *self.env[k]) for k, v in collector.found.items() if k in self.env]
        self.mod.n_outlined += 1
        base = f"{self.func_name}.par{self.mod.n_outlined}"

        # the body, as its own function of (captures..., min, begin, end)
        inner = _FunctionBuilder(self.mod, base)
        params = []
        for k, (var, _, ctype) in enumerate(captures):
            name = f"%c{k}.{_sanitize(var.name)}"
            inner.env[id(var)] = (name, ctype)
            params.append(f"{ctype}{' noalias' if ctype == 'ptr' else ''} {name}")
        params += [f"{ty} %lo", "i64 %begin", "i64 %end"]
        inner.loop(_I64_COUNTER, "%begin", "%end", _Rebind(s.loop_var, s.body, ty))
        inner.emit("ret i32 0")
        self.written |= inner.written
        inner_text = inner.finish(f"define internal i32 {_global(base + '.body')}({', '.join(params)}) #1")

        # the trampoline the runtime calls
        tramp = _FunctionBuilder(self.mod, base)
        struct_ty = "{" + ", ".join([c[2] for c in captures] + [ty]) + "}"
        call_args = []
        for k, (_, _, ctype) in enumerate(captures + [(None, None, ty)]):
            p = tramp.val(f"getelementptr inbounds {struct_ty}, ptr %closure, i32 0, i32 {k}")
            call_args.append(f"{ctype} {tramp.val(f'load {ctype}, ptr {p}')}")
        rc = tramp.val(f"call i32 {_global(base + '.body')}({', '.join(call_args)}, i64 %begin, i64 %end)")
        tramp.emit(f"ret i32 {rc}")
        self.mod.functions.append(
            tramp.finish(f"define internal i32 {_global(base)}(i64 %begin, i64 %end, ptr %closure) #0"))
        self.mod.functions.append(inner_text)

        # the call site: fill the closure, call the runtime, propagate a failure
        closure = f"%closure.{self.label('c')}"
        self.allocas.append(f"  {closure} = alloca {struct_ty}, align 8")
        for k, (_, operand, ctype) in enumerate(captures + [(None, lo, ty)]):
            p = self.val(f"getelementptr inbounds {struct_ty}, ptr {closure}, i32 0, i32 {k}")
            self.emit(f"store {ctype} {operand}, ptr {p}")
        n = self.cast(ext, s.loop_var.dtype, "int64")
        pfor = self.mod.declare(PARALLEL_FOR_SYMBOL, "i32", ["ptr", "i64", "ptr"])
        rc = self.val(f"call i32 {pfor}(ptr {_global(base)}, i64 {n}, ptr {closure})")
        failed = self.val(f"icmp ne i32 {rc}, 0")
        lfail, lok = self.label("par_fail"), self.label("par_ok")
        self.emit(f"br i1 {failed}, label %{lfail}, label %{lok}")
        self.start_block(lfail)
        self.emit(f"ret i32 {rc}")
        self.start_block(lok)

    def _s__Rebind(self, s):
        # body of an outlined parallel loop: loop_var = lo + (i64 counter, narrowed)
        i = self.lookup(_I64_COUNTER)
        v = self.cast(i, "int64", s.var.dtype) if s.var.dtype != "int64" else i
        v = self.val(f"add {s.ty} {v}, %lo")
        token = self.bind(s.var, v, s.ty)
        try:
            self.stmt(s.body)
        finally:
            self.unbind(token)

    def finish(self, header: str) -> str:
        """The function's text given its ``define`` line."""
        return "\n".join([header + " {", "entry:", *self.allocas, *self.lines, "}", ""])


@dataclass(frozen=True)
class _Rebind:
    """Internal statement: bind ``var`` from the outlined loop counter, then run ``body``."""

    var: E.Var
    body: object
    ty: str


_I64_COUNTER = E.Var("par_i", "int64")

_EXPR_DISPATCH: dict = {}
_STMT_DISPATCH: dict = {}


def _find_method(builder, cls, prefix):
    """Find (and cache) the handler of ``cls``, walking its bases (SizeVar -> Var)."""
    table = _EXPR_DISPATCH if prefix == "_e_" else _STMT_DISPATCH
    for klass in cls.__mro__:
        fn = getattr(_FunctionBuilder, prefix + klass.__name__, None)
        if fn is not None:
            table[cls] = fn
            return fn
    what = "expression" if prefix == "_e_" else "statement"
    raise CodegenError(f"llvm codegen: cannot translate the {what} node {cls.__name__} "
                       f"in {builder.func_name}")


# ----------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LLVMSource:
    """What codegen hands the runtime: IR text, signatures, and which params each entry writes."""

    ir: str
    signatures: tuple
    written: dict  # entry name -> tuple of param indices stored to
    shape_var_types: dict  # entry name -> tuple of dtypes of the trailing scalar args


def _signature(func: S.PrimFunc):
    """The FunctionSignature of ``func`` and its shape variables in argument order."""
    return signature_of(func, "llvm")


def codegen_llvm(funcs, triple: str = "", data_layout: str = "") -> LLVMSource:
    """Translate lowered ``PrimFunc`` s into one LLVM module (text) plus call metadata."""
    if isinstance(funcs, S.PrimFunc):
        funcs = [funcs]
    mod = _ModuleBuilder()
    sigs, written, svtypes = [], {}, {}
    for func in funcs:
        if not isinstance(func, S.PrimFunc):
            raise CodegenError(f"llvm codegen: expected PrimFunc, got {type(func).__name__}")
        if func.name in written:
            raise CodegenError(f"llvm codegen: two functions are named {func.name!r}")
        sig, shape_vars = _signature(func)
        fb = _FunctionBuilder(mod, func.name)
        args = []
        data_ids = set()
        for k, buf in enumerate(func.params):
            if id(buf.data) in data_ids:
                raise CodegenError(f"llvm codegen: {func.name}: parameter '{buf.name}' repeats the "
                                   "data pointer of another parameter")
            data_ids.add(id(buf.data))
            name = f"%{_sanitize(buf.name)}.{k}"
            fb.env[id(buf.data)] = (name, "ptr")
            args.append(f"ptr noalias align {_elem_size(buf.dtype)} {name}")
        for k, v in enumerate(shape_vars):
            name = f"%{_sanitize(v.name)}.s{k}"
            fb.env[id(v)] = (name, llvm_type(v.dtype))
            args.append(f"{llvm_type(v.dtype)} {name}")
        fb.stmt(func.body)
        fb.emit("ret i32 0")
        mod.functions.append(fb.finish(f"define i32 {_global(func.name)}({', '.join(args)}) #0"))
        sigs.append(sig)
        written[func.name] = tuple(k for k, b in enumerate(func.params) if id(b.data) in fb.written)
        svtypes[func.name] = tuple(v.dtype for v in shape_vars)
    header = "; generated by minitvm.codegen.llvm\n"
    if triple:
        header += f'target triple = "{triple}"\n'
    if data_layout:
        header += f'target datalayout = "{data_layout}"\n'
    mod.metadata.insert(0, "attributes #0 = { nounwind }")
    mod.metadata.insert(1, "attributes #1 = { nounwind noinline }")
    return LLVMSource(mod.text(header), tuple(sigs), written, svtypes)


def build_llvm(funcs, target: str = "llvm"):
    """Compile lowered ``PrimFunc`` s for the host CPU; returns a callable ``LLVMModule``.

    ``target`` is ``"llvm"``, optionally with ``-mcpu=<name>``, ``-mattr=<features>`` and
    ``-opt-level=<0..3>`` (TVM's spelling).
    """
    from ..runtime import llvm as rt

    options = rt.parse_target(target)
    triple, layout = rt.target_info(options)
    source = codegen_llvm(funcs, triple, layout)
    return rt.LLVMModule(source, options)


__all__ = ["build_llvm", "codegen_llvm", "llvm_type", "const_literal", "LLVMSource"]
