"""LLVM IR for statements: loops (unrolled, parallel loops outlined), branches, allocations, stores."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dtype as dt
from ..errors import CodegenError
from ..tir import expr as E
from ..tir import stmt as S
from ..tir.functor import post_order_visit
from .llvm_expr import ExprBuilder, find_method
from .llvm_types import (PARALLEL_FOR_SYMBOL, STACK_ALLOC_LIMIT, const_int_of, elem_size, global_name,
                         is_signed, llvm_type, mem_type, sanitize)


class FunctionBuilder(ExprBuilder):
    """Translates one statement tree into the body of one LLVM function."""

    def stmt(self, s) -> None:
        find_method(self, type(s), "_s_")(self, s)

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
        end = ext if const_int_of(s.min) == 0 else self.val(f"add {ty} {lo}, {ext}")
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
        cmp = "slt" if is_signed(var.dtype) else "ult"
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
        mem = mem_type(buf.dtype)
        esize = elem_size(buf.dtype)
        dims = [const_int_of(d) for d in buf.shape]
        if all(d is not None for d in dims):
            count = int(np.prod(dims, dtype=np.int64)) if dims else 1
            if count < 0:
                raise CodegenError(f"llvm codegen: allocation '{buf.name}' has negative size {count}")
            if count * esize <= STACK_ALLOC_LIMIT:
                p = f"%{sanitize(buf.name)}.{self.label('a')}"
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
        inner = FunctionBuilder(self.mod, base)
        params = []
        for k, (var, _, ctype) in enumerate(captures):
            name = f"%c{k}.{sanitize(var.name)}"
            inner.env[id(var)] = (name, ctype)
            params.append(f"{ctype}{' noalias' if ctype == 'ptr' else ''} {name}")
        params += [f"{ty} %lo", "i64 %begin", "i64 %end"]
        inner.loop(_I64_COUNTER, "%begin", "%end", _Rebind(s.loop_var, s.body, ty))
        inner.emit("ret i32 0")
        self.written |= inner.written
        inner_text = inner.finish(f"define internal i32 {global_name(base + '.body')}({', '.join(params)}) #1")

        # the trampoline the runtime calls
        tramp = FunctionBuilder(self.mod, base)
        struct_ty = "{" + ", ".join([c[2] for c in captures] + [ty]) + "}"
        call_args = []
        for k, (_, _, ctype) in enumerate(captures + [(None, None, ty)]):
            p = tramp.val(f"getelementptr inbounds {struct_ty}, ptr %closure, i32 0, i32 {k}")
            call_args.append(f"{ctype} {tramp.val(f'load {ctype}, ptr {p}')}")
        rc = tramp.val(f"call i32 {global_name(base + '.body')}({', '.join(call_args)}, i64 %begin, i64 %end)")
        tramp.emit(f"ret i32 {rc}")
        self.mod.functions.append(
            tramp.finish(f"define internal i32 {global_name(base)}(i64 %begin, i64 %end, ptr %closure) #0"))
        self.mod.functions.append(inner_text)

        # the call site: fill the closure, call the runtime, propagate a failure
        closure = f"%closure.{self.label('c')}"
        self.allocas.append(f"  {closure} = alloca {struct_ty}, align 8")
        for k, (_, operand, ctype) in enumerate(captures + [(None, lo, ty)]):
            p = self.val(f"getelementptr inbounds {struct_ty}, ptr {closure}, i32 0, i32 {k}")
            self.emit(f"store {ctype} {operand}, ptr {p}")
        n = self.cast(ext, s.loop_var.dtype, "int64")
        pfor = self.mod.declare(PARALLEL_FOR_SYMBOL, "i32", ["ptr", "i64", "ptr"])
        rc = self.val(f"call i32 {pfor}(ptr {global_name(base)}, i64 {n}, ptr {closure})")
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
