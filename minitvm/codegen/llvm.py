"""Lowered loop IR (``PrimFunc``) -> LLVM IR text, and :func:`build_llvm` for the host CPU.

The generated IR is plain text in LLVM's assembly syntax (opaque pointers), built directly
rather than through ``llvmlite.ir``: it is the cheapest way to produce it and it keeps the
output readable. :mod:`minitvm.runtime.llvm` parses, optimizes (-O3) and JIT-compiles it.

Calling convention of every entry point::

    i32 @name(ptr noalias %buf0, ..., ptr noalias %bufK, i32 %shape_var0, ...)

returning 0 on success. Parallel loops are outlined into internal functions run by the
runtime's ``minitvm_parallel_for(fnptr, n, closure)`` (see :mod:`minitvm.runtime.llvm`).

Types and constants are in :mod:`~minitvm.codegen.llvm_types`, expressions in
:mod:`~minitvm.codegen.llvm_expr`, statements in :mod:`~minitvm.codegen.llvm_stmt`; this module
assembles the LLVM module and hands it to the JIT.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import BuildError, CodegenError
from ..target import Target
from ..tir import stmt as S
from ..tir.limits import deep_recursion
from .llvm_stmt import FunctionBuilder
from .llvm_types import const_literal, elem_size, global_name, llvm_type, sanitize
from .signature import signature_of


class ModuleBuilder:
    """Collects declarations, function bodies and metadata of one LLVM module."""

    def __init__(self, features=frozenset()):
        self.features = frozenset(features)   # the target's CPU features (instruction choice)
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


@deep_recursion("llvm codegen")
def codegen_llvm(funcs, triple: str = "", data_layout: str = "", features=frozenset()) -> LLVMSource:
    """Translate lowered ``PrimFunc`` s into one LLVM module (text) plus call metadata.

    ``features`` (a :class:`~minitvm.target.Target`'s) choose the instructions of intrinsics such
    as ``dot_u8s8`` (:mod:`~minitvm.codegen.llvm_x86`)."""
    if isinstance(funcs, S.PrimFunc):
        funcs = [funcs]
    mod = ModuleBuilder(features)
    sigs, written, svtypes = [], {}, {}
    for func in funcs:
        if not isinstance(func, S.PrimFunc):
            raise CodegenError(f"llvm codegen: expected PrimFunc, got {type(func).__name__}")
        if func.name in written:
            raise CodegenError(f"llvm codegen: two functions are named {func.name!r}")
        sig, shape_vars = _signature(func)
        fb = FunctionBuilder(mod, func.name)
        args = []
        data_ids = set()
        for k, buf in enumerate(func.params):
            if id(buf.data) in data_ids:
                raise CodegenError(f"llvm codegen: {func.name}: parameter '{buf.name}' repeats the "
                                   "data pointer of another parameter")
            data_ids.add(id(buf.data))
            name = f"%{sanitize(buf.name)}.{k}"
            fb.env[id(buf.data)] = (name, "ptr")
            args.append(f"ptr noalias align {elem_size(buf.dtype)} {name}")
        for k, v in enumerate(shape_vars):
            name = f"%{sanitize(v.name)}.s{k}"
            fb.env[id(v)] = (name, llvm_type(v.dtype))
            args.append(f"{llvm_type(v.dtype)} {name}")
        fb.stmt(func.body)
        fb.emit("ret i32 0")
        mod.functions.append(fb.finish(f"define i32 {global_name(func.name)}({', '.join(args)}) #0"))
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


def target_options(target):
    """The runtime's :class:`~minitvm.runtime.llvm.TargetOptions` for an LLVM ``target``
    (a :class:`~minitvm.target.Target` or its string)."""
    from ..runtime import llvm as rt

    target = Target(target)
    if target.kind != "llvm":
        raise BuildError(f"target {str(target)!r} is not an LLVM CPU target; use 'llvm' (or build it for 'cuda')")
    return rt.TargetOptions(target.mcpu, target.mattr, target.opt_level)


def build_llvm(funcs, target="llvm"):
    """Compile lowered ``PrimFunc`` s for the host CPU; returns a callable ``LLVMModule``.

    ``target`` is an LLVM :class:`~minitvm.target.Target` or its string: ``"llvm"``, optionally
    with ``-mcpu=<name>``, ``-mattr=<features>`` and ``-opt-level=<0..3>`` (TVM's spelling).
    """
    from ..runtime import llvm as rt

    target = Target(target)
    options = target_options(target)
    triple, layout = rt.target_info(options)
    source = codegen_llvm(funcs, triple, layout, target.features)
    return rt.LLVMModule(source, options)


__all__ = ["build_llvm", "codegen_llvm", "target_options", "llvm_type", "const_literal", "LLVMSource"]
