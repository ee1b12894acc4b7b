"""CUDA C expression printer: IR expressions -> C text, with the integer semantics of the IR.

Arithmetic on 8- and 16-bit integers is cast back to its type (C would promote it to ``int``);
``FloorDiv``/``FloorMod`` floor (shifts and masks for power-of-two divisors, plain ``/``/``%``
where the dividend is known non-negative, a helper otherwise); float -> int casts truncate;
``round`` is ``rint``; float16 goes through float32 with PTX conversions.
"""
from __future__ import annotations

from .. import dtype as dt
from ..errors import CodegenError
from ..tir import expr as E
from ..tir.functor import substitute
from .cuda_text import (CTYPE, EXTERN_HELPERS, KNOWN_CALLS, MATH, bare, contiguous, float_literal, int_literal, member,
                        narrow, paren)


class ExprPrinter:
    """C text of expressions inside one kernel; :class:`~minitvm.codegen.cuda_kernel.KernelPrinter`
    holds the state it reads (``f``, ``kname``, ``names``, ``bufs``, ``nonneg``, ``hoisted``,
    ``helpers``).
    """

    def ptr(self, buf) -> str:
        info = self.bufs.get(buf.data)
        if info is None:
            raise CodegenError(
                f"{self.f.name}: kernel {self.kname} accesses buffer {buf.name}, which is not a parameter, a "
                "workspace (a global allocation at the top level) or allocated inside the kernel")
        elem = dt.element_of(buf.dtype)
        if elem != info.dtype:
            return f"(({CTYPE[elem]}*){info.name})"
        return info.name

    def flat_index(self, buf, indices):
        if len(indices) != 1:
            raise CodegenError(
                f"{self.f.name}: access to {buf.name} has {len(indices)} indices; the CUDA backend needs "
                "flattened buffers (one index per access)")
        return buf.offset_index(indices[0])

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
        return int_literal(e.value, e.dtype)

    def x_FloatImm(self, e, lane):
        if e.dtype == "float16":
            self.helpers.add("half")
        return float_literal(e.value, e.dtype)

    def x_StringImm(self, e, lane):
        return '"' + e.value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def x_Ramp(self, e, lane):
        base = self.expr(e.base)
        if lane == 0:
            return base
        if isinstance(e.stride, E.IntImm):
            return f"({base} + {int_literal(e.stride.value * lane, e.base.dtype)})"
        return f"({base} + ({self.expr(e.stride)} * {lane}))"

    def x_Broadcast(self, e, lane):
        return self.expr(e.value)

    def x_Let(self, e, lane):
        return self.expr(substitute(e.body, {e.var: e.value}), lane)

    def x_BufferLoad(self, e, lane):
        hit = self.hoisted.get(id(e))
        if hit is not None:
            name, native, elem = hit
            return member(name, lane, native, elem)
        idx = self.flat_index(e.buffer, e.indices)
        if dt.lanes_of(idx.dtype) > 1 and lane is None:
            raise CodegenError(f"{self.f.name}: vector load {e} used as a scalar")
        return f"{self.ptr(e.buffer)}[{bare(self.expr(idx, lane if dt.lanes_of(idx.dtype) > 1 else None))}]"

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
        return narrow(elem, f"({a} {op} {b})")

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
        bv = e.b.value if isinstance(e.b, E.IntImm) else (
            e.b.value.value if isinstance(e.b, E.Broadcast) and isinstance(e.b.value, E.IntImm) else None)
        if dt.is_uint(elem) or dt.is_bool(elem):
            # a divisor that may be 0 at run time gives numpy's 0, not the hardware's garbage
            return narrow(elem, f"({a} {op} {b})" if bv else f"({b} == 0 ? 0 : {a} {op} {b})")
        if bv is not None and bv > 0:
            if bv & (bv - 1) == 0:
                k = bv.bit_length() - 1
                if mod:
                    return narrow(elem, f"({a} & {int_literal(bv - 1, elem if dt.bits(elem) >= 32 else 'int32')})")
                return a if k == 0 else narrow(elem, f"({a} >> {k})")
            if self.is_nonneg(e.a):
                return narrow(elem, f"({a} {op} {b})")
        elif self.is_nonneg(e.a) and self.is_nonneg(e.b):
            return narrow(elem, f"({b} == 0 ? 0 : {a} {op} {b})")
        wide = "i64" if dt.bits(elem) == 64 else "i32"
        name = f"{'floormod' if mod else 'floordiv'}_{wide}"
        self.helpers.add(name)
        return narrow(elem, f"{name}({a}, {b})")

    def _minmax(self, e, lane, fn):
        a, b = self._sub(e.a, lane), self._sub(e.b, lane)
        elem = dt.element_of(e.dtype)
        if elem == "bool":
            return f"({a} {'&&' if fn == 'min' else '||'} {b})"
        if dt.is_float(elem):
            # fminf / fmaxf return the other operand for a NaN: mt_fmin / mt_fmax give NaN, as
            # numpy and the LLVM backend do
            self.helpers.add("nan_minmax")
            if elem == "float16":
                self.helpers.add("half")
                return f"mt_f2h(mt_f{fn}(mt_h2f({a}), mt_h2f({b})))"
            return f"mt_f{fn}({a}, {b})"
        return narrow(elem, f"{fn}({a}, {b})")

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
        code = paren(code)
        if dt.is_float(s) and dt.is_integer(t) and dt.bits(t) < 32:
            return f"(({CTYPE[t]})({CTYPE['int32' if dt.is_int(t) else 'uint32']}){code})"
        return f"(({CTYPE[t]}){code})"

    # calls ----------------------------------------------------------------------------
    def x_Call(self, e, lane):
        op = e.op
        lanes = dt.lanes_of(e.dtype)
        if lanes > 1 and lane is None:
            raise CodegenError(f"{self.f.name}: the vector call {e} is used where CUDA needs a scalar")
        if op in MATH or op == "abs":
            return self._math(e, lane)
        if op == "likely":
            return self._sub(e.args[0], lane)
        if op in ("truncdiv", "truncmod") and dt.is_float(e.dtype):
            return self._float_trunc(e, lane)
        if op in ("truncdiv", "truncmod"):
            a, b = (self._sub(x, lane) for x in e.args)
            bv = e.args[1].value if isinstance(e.args[1], E.IntImm) else None
            body = f"{a} {'/' if op == 'truncdiv' else '%'} {b}"
            return narrow(dt.element_of(e.dtype), f"({body})" if bv else f"({b} == 0 ? 0 : {body})")
        if op in ("shift_left", "shift_right", "bitwise_and", "bitwise_or", "bitwise_xor"):
            sym = {"shift_left": "<<", "shift_right": ">>", "bitwise_and": "&", "bitwise_or": "|",
                   "bitwise_xor": "^"}[op]
            a, b = (self._sub(x, lane) for x in e.args)
            return narrow(dt.element_of(e.dtype), f"({a} {sym} {b})")
        if op == "bitwise_not":
            return narrow(dt.element_of(e.dtype), f"(~{self._sub(e.args[0], lane)})")
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
            x = e.args[0]
            if not isinstance(x, E.BufferLoad):
                raise CodegenError(f"{self.f.name}: address_of needs a buffer element, got {x}")
            idx = self.flat_index(x.buffer, x.indices)
            base = idx.base if isinstance(idx, E.Ramp) else idx
            if x.buffer.scope == "warp":
                # a fragment element offset of the warp's tile: each lane holds 1/32 of it
                return f"({self.ptr(x.buffer)} + ({bare(self.expr(base))}) / 32)"
            return f"({self.ptr(x.buffer)} + {self.expr(base)})"
        if op in ("call_extern", "call_pure_extern"):
            if not e.args or not isinstance(e.args[0], E.StringImm):
                raise CodegenError(f"{self.f.name}: {op} needs the function name as its first argument")
            args = ", ".join(self._sub(x, lane) for x in e.args[1:])
            self.helpers.update(EXTERN_HELPERS.get(e.args[0].value, ()))
            return f"{e.args[0].value}({args})"
        raise CodegenError(f"{self.f.name}: the CUDA backend does not know the intrinsic {op!r}; "
                           f"known: {', '.join(KNOWN_CALLS)}")

    def _float_trunc(self, e, lane):
        """Float ``truncmod`` (C's fmod) and ``truncdiv`` (the quotient truncated toward zero)."""
        elem = dt.element_of(e.dtype)
        a, b = (self._sub(x, lane) for x in e.args)
        if elem == "float16":
            self.helpers.add("half")
            a, b = f"mt_h2f({a})", f"mt_h2f({b})"
        sfx = "" if elem == "float64" else "f"
        out = f"fmod{sfx}({a}, {b})" if e.op == "truncmod" else f"trunc{sfx}({a} / {b})"
        return f"mt_f2h({out})" if elem == "float16" else out

    def _math(self, e, lane):
        op = e.op
        elem = dt.element_of(e.dtype)
        args = [self._sub(x, lane) for x in e.args]
        if dt.is_integer(elem):
            if op in ("abs", "fabs"):
                return narrow(elem, f"abs({args[0]})") if dt.is_int(elem) else args[0]
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
            if contiguous(idx):
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
            return f"(({CTYPE[te_]})((unsigned int)({word}) >> {8 * lane}))"
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
            return f"(({CTYPE[te_]})({code}).bits)"
        if dt.is_float(se) or dt.is_float(te_):
            if (se, te_) == ("uint64", "float64"):
                return f"__longlong_as_double((long long)({code}))"
            if (se, te_) == ("float64", "uint64"):
                return f"((unsigned long long)__double_as_longlong({code}))"
            raise CodegenError(f"{self.f.name}: reinterpret from {s} to {t} is not supported")
        return f"(({CTYPE[te_]})({code}))"
