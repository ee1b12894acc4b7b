"""LLVM IR for expressions (and buffer accesses) of one function, as SSA values in text form."""
from __future__ import annotations

from .. import dtype as dt
from ..errors import CodegenError
from ..tir import expr as E
from ..tir import stmt as S
from .llvm_x86 import DOT_I16, DOT_U8S8, emit_dot_i16, emit_dot_u8s8
from .llvm_types import (FCMP, ICMP, UCMP, UNARY_MATH, const_int_of, const_literal, elem_size, is_signed,
                         llvm_type, mangle, mem_type)


class ExprBuilder:
    """Emission helpers and expressions of one LLVM function; :class:`~minitvm.codegen.llvm_stmt.FunctionBuilder`
    adds the statements."""

    def __init__(self, mod, func_name: str):
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
        return find_method(self, type(e), "_e_")(self, e)

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
            # contract: a multiply feeding an add may become one FMA (one rounding instead of
            # two), as nvcc does by default; sums keep their order
            return self.val(f"{fop} contract {ty} {a}, {b}")
        if self.index_depth and is_signed(dtype) and dt.bits(dtype) >= 32:
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
        b, by_zero = self._safe_divisor(e, a, b, dtype, ty)
        return self._zero_where(by_zero, self.val(f"{'sdiv' if is_signed(dtype) else 'udiv'} {ty} {a}, {b}"),
                                dtype, ty)

    def _safe_divisor(self, e, a, b, dtype, ty):
        """``(divisor, by_zero)``: the divisor with 0 and, for ``INT_MIN / -1``, -1 replaced by 1
        (LLVM leaves both undefined and x86 traps on them), and the ``b == 0`` flag (None for a
        constant divisor) that :meth:`_zero_where` turns into numpy's 0."""
        c = const_int_of(e.b)
        if c is not None and c != 0 and not (c == -1 and is_signed(dtype)):
            return b, None
        zero, one = const_literal(0, dtype), const_literal(1, dtype)
        bty = llvm_type(dt.with_lanes("bool", dt.lanes_of(dtype)))
        z = self.val(f"icmp eq {ty} {b}, {zero}")
        bad = z
        if is_signed(dtype):
            lo = const_literal(dt.value_range(dtype)[0], dtype)
            ovf = self.val(f"and {bty} {self.val(f'icmp eq {ty} {a}, {lo}')}, "
                           f"{self.val(f'icmp eq {ty} {b}, {const_literal(-1, dtype)}')}")
            bad = self.val(f"or {bty} {z}, {ovf}")
        return self.val(f"select {bty} {bad}, {ty} {one}, {ty} {b}"), (None if c is not None else z)

    def _zero_where(self, by_zero, value, dtype, ty):
        if by_zero is None:
            return value
        bty = llvm_type(dt.with_lanes("bool", dt.lanes_of(dtype)))
        return self.val(f"select {bty} {by_zero}, {ty} {const_literal(0, dtype)}, {ty} {value}")

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
        c = const_int_of(e.b)
        signed = is_signed(dtype)
        if c is not None and c > 0 and c & (c - 1) == 0:
            if want_mod:
                return self.val(f"and {ty} {a}, {const_literal(c - 1, dtype)}")
            shift = c.bit_length() - 1
            return self.val(f"{'ashr' if signed else 'lshr'} {ty} {a}, {const_literal(shift, dtype)}")
        b, by_zero = self._safe_divisor(e, a, b, dtype, ty)
        if not signed:
            return self._zero_where(by_zero, self.val(f"{'urem' if want_mod else 'udiv'} {ty} {a}, {b}"), dtype, ty)
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
            return self._zero_where(by_zero, self.val(f"select {bty} {adjust}, {ty} {rb}, {ty} {r}"), dtype, ty)
        q = self.val(f"sdiv {ty} {a}, {b}")
        q1 = self.val(f"sub {ty} {q}, {const_literal(1, dtype)}")
        return self._zero_where(by_zero, self.val(f"select {bty} {adjust}, {ty} {q1}, {ty} {q}"), dtype, ty)

    def _e_FloorDiv(self, e):
        return self._floor_divmod(e, False)

    def _e_FloorMod(self, e):
        return self._floor_divmod(e, True)

    def _minmax(self, e, is_min: bool):
        a, b, dtype, ty = self._operands(e)
        bty = llvm_type(dt.with_lanes("bool", dt.lanes_of(dtype)))
        if dt.is_float(dtype):
            # (a < b || a is NaN) ? a : b: a NaN on either side gives NaN, as numpy's minimum /
            # maximum and onnxruntime do (C's a < b ? a : b made relu(NaN) = max(NaN, 0) = 0)
            c = self.val(f"fcmp {'olt' if is_min else 'ogt'} {ty} {a}, {b}")
            nan = self.val(f"fcmp uno {ty} {a}, {a}")
            c = self.val(f"or {bty} {c}, {nan}")
            return self.val(f"select {bty} {c}, {ty} {a}, {ty} {b}")
        kind = ("s" if is_signed(dtype) else "u") + ("min" if is_min else "max")
        fn = self.mod.declare(f"llvm.{kind}.{mangle(dtype)}", ty, [ty, ty])
        return self.val(f"call {ty} {fn}({ty} {a}, {ty} {b})")

    def _e_Min(self, e):
        return self._minmax(e, True)

    def _e_Max(self, e):
        return self._minmax(e, False)

    def _cmp(self, e):
        a, b, dtype, ty = self._operands(e)
        name = type(e).__name__
        if dt.is_float(dtype):
            return self.val(f"fcmp {FCMP[name]} {ty} {a}, {b}")
        table = ICMP if is_signed(dtype) else UCMP
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

    def _double_to_half(self, v: str, src: str, dst: str, lanes: int) -> str:
        """double -> half without LLVM's ``__truncdfhf2`` libcall (which the JIT does not
        resolve): round to float32 *to odd*, then to half (round to nearest even). Rounding to
        odd at 24 >= 11 + 2 bits makes the second rounding exact, as numpy's direct cast."""
        f32, i32, b = (dt.with_lanes(t, lanes) for t in ("float32", "int32", "bool"))
        st, ft, it, bt = llvm_type(src), llvm_type(f32), llvm_type(i32), llvm_type(b)
        t = self.val(f"fptrunc {st} {v} to {ft}")
        back = self.val(f"fpext {ft} {t} to {st}")
        inexact = self.val(f"fcmp one {st} {back}, {v}")
        bits = self.val(f"bitcast {ft} {t} to {it}")
        even = self.val(f"icmp eq {it} {self.val(f'and {it} {bits}, {const_literal(1, i32)}')}, "
                        f"{const_literal(0, i32)}")
        negative = self.val(f"icmp slt {it} {bits}, {const_literal(0, i32)}")
        above = self.val(f"fcmp ogt {st} {v}, {back}")
        away = self.val(f"xor {bt} {above}, {negative}")      # |v| > |t|: the odd neighbour is away from 0
        up = self.val(f"add {it} {bits}, {const_literal(1, i32)}")
        down = self.val(f"sub {it} {bits}, {const_literal(1, i32)}")
        near = self.val(f"select {bt} {away}, {it} {up}, {it} {down}")
        odd = self.val(f"select {bt} {self.val(f'and {bt} {inexact}, {even}')}, {it} {near}, {it} {bits}")
        return self.val(f"fptrunc {ft} {self.val(f'bitcast {it} {odd} to {ft}')} to {llvm_type(dst)}")

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
            if dt.bits(src) == 64 and dt.bits(dst) == 16:
                return self._double_to_half(v, src, dst, lanes)
            op = "fpext" if dt.bits(dst) > dt.bits(src) else "fptrunc"
            return self.val(f"{op} {st} {v} to {tt}")
        if not sf and df:
            op = "sitofp" if is_signed(src) else "uitofp"
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
        op = "sext" if is_signed(src) else "zext"
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
        stride = const_int_of(e.stride)
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
            stride = const_int_of(index.stride)
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
        mem = mem_type(bdtype)
        align = elem_size(bdtype)
        lanes = dt.lanes_of(index.dtype)
        if lanes == 1:
            p = self._gep(ptr, mem, self.index_expr(index), index.dtype)
            v = self.val(f"load {mem}, ptr {p}, align {align}")
        elif isinstance(index, E.Ramp) and const_int_of(index.stride) == 1:
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
        mem = mem_type(bdtype)
        align = elem_size(bdtype)
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
        elif isinstance(index, E.Ramp) and const_int_of(index.stride) == 1:
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
        fn = self.mod.declare(f"llvm.{name}.{mangle(dtype)}", ty, [ty] * len(args))
        return self.val(f"call {ty} {fn}({', '.join(f'{ty} {a}' for a in args)})")

    def _e_Call(self, e):
        op = e.op[4:] if e.op.startswith("tir.") else e.op
        args = e.args
        if op in UNARY_MATH or op in ("pow", "fabs", "abs"):
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
            b, by_zero = self._safe_divisor(E.Add(args[0], args[1]), a, b, dtype, ty)
            signed = is_signed(dtype)
            ins = ("s" if signed else "u") + ("div" if op == "truncdiv" else "rem")
            return self._zero_where(by_zero, self.val(f"{ins} {ty} {a}, {b}"), dtype, ty)
        if op == "dp4a":
            return self._dp4a(e)
        if op == DOT_U8S8:
            return emit_dot_u8s8(self, e)
        if op == DOT_I16:
            return emit_dot_i16(self, e)
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
            ins = {"shift_left": "shl", "shift_right": "ashr" if is_signed(dtype) else "lshr",
                   "bitwise_and": "and", "bitwise_or": "or", "bitwise_xor": "xor"}[op]
            return self.val(f"{ins} {ty} {a}, {b}")
        if op == "bitwise_not":
            self._check_arity(e, 1)
            return self.val(f"xor {llvm_type(e.dtype)} {self.expr(args[0])}, "
                            f"{const_literal(-1, e.dtype)}")
        raise CodegenError(
            f"llvm codegen: unknown intrinsic call '{e.op}' in {self.func_name} ({e}); the CPU backend "
            "knows exp, log, sqrt, tanh, floor, ceil, fabs, pow, sin, cos, round, truncdiv, truncmod, "
            "likely, dp4a, dot_u8s8, dot_i16, reinterpret, if_then_else, shifts and bitwise ops")

    def _check_arity(self, e, n):
        if len(e.args) != n:
            raise CodegenError(f"llvm codegen: {e.op} takes {n} arguments, got {len(e.args)}: {e}")

    def _math_call(self, e, op):
        dtype = e.dtype
        if op == "abs" and not dt.is_float(dtype):
            self._check_arity(e, 1)
            ty = llvm_type(dtype)
            a = self.expr_as(e.args[0], dt.lanes_of(dtype))
            if not is_signed(dtype):
                return a
            fn = self.mod.declare(f"llvm.abs.{mangle(dtype)}", ty, [ty, "i1"])
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
        name = "fabs" if op == "abs" else UNARY_MATH.get(op, op)
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


_DISPATCH: dict = {}   # (prefix, node class) -> handler


def find_method(builder, cls, prefix):
    """Find (and cache) the handler of ``cls`` (``_e_<Class>`` or ``_s_<Class>``), walking its bases
    (SizeVar -> Var)."""
    fn = _DISPATCH.get((prefix, cls))
    if fn is not None:
        return fn
    for klass in cls.__mro__:
        fn = getattr(type(builder), prefix + klass.__name__, None)
        if fn is not None:
            _DISPATCH[(prefix, cls)] = fn
            return fn
    what = "expression" if prefix == "_e_" else "statement"
    raise CodegenError(f"llvm codegen: cannot translate the {what} node {cls.__name__} "
                       f"in {builder.func_name}")
