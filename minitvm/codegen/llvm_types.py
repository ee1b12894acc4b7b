"""LLVM IR text for IR dtypes: types, constants, names, and the tables the emitters share."""
from __future__ import annotations

import re
import struct

import numpy as np

from .. import dtype as dt
from ..tir import expr as E

# Constant-size allocations up to this many bytes live on the stack; larger or symbolic
# ones are malloc'ed.
STACK_ALLOC_LIMIT = 1 << 20

PARALLEL_FOR_SYMBOL = "minitvm_parallel_for"

SCALAR_TYPES = {
    "bool": "i1", "int8": "i8", "uint8": "i8", "int16": "i16", "uint16": "i16",
    "int32": "i32", "uint32": "i32", "int64": "i64", "uint64": "i64",
    "float16": "half", "float32": "float", "float64": "double",
}
MANGLE = {"i1": "i1", "i8": "i8", "i16": "i16", "i32": "i32", "i64": "i64",
           "half": "f16", "float": "f32", "double": "f64"}

UNARY_MATH = {
    "exp": "exp", "exp2": "exp2", "log": "log", "log2": "log2", "log10": "log10",
    "sqrt": "sqrt", "tanh": "tanh", "floor": "floor", "ceil": "ceil", "fabs": "fabs",
    "trunc": "trunc", "sin": "sin", "cos": "cos", "round": "roundeven", "nearbyint": "roundeven",
}
ICMP = {"EQ": "eq", "NE": "ne", "LT": "slt", "LE": "sle", "GT": "sgt", "GE": "sge"}
UCMP = {"EQ": "eq", "NE": "ne", "LT": "ult", "LE": "ule", "GT": "ugt", "GE": "uge"}
FCMP = {"EQ": "oeq", "NE": "une", "LT": "olt", "LE": "ole", "GT": "ogt", "GE": "oge"}


# ----------------------------------------------------------------------------------------
# types and constants
# ----------------------------------------------------------------------------------------
def llvm_type(dtype: str) -> str:
    """The LLVM type of a minitvm dtype: ``int8x4`` -> ``<4 x i8>``, ``handle`` -> ``ptr``."""
    if dtype == "handle":
        return "ptr"
    base, lanes = dt.split_lanes(dtype)
    t = SCALAR_TYPES[base]
    return t if lanes == 1 else f"<{lanes} x {t}>"


def mem_type(dtype: str) -> str:
    """Type of one element in memory: bool is a byte there (numpy's layout), i1 in registers."""
    return "i8" if dt.is_bool(dtype) else SCALAR_TYPES[dt.element_of(dtype)]


def mangle(dtype: str) -> str:
    base, lanes = dt.split_lanes(dtype)
    m = MANGLE[SCALAR_TYPES[base]]
    return m if lanes == 1 else f"v{lanes}{m}"


def elem_size(dtype: str) -> int:
    return 1 if dt.is_bool(dtype) else dt.numpy_dtype(dtype).itemsize


def float_literal(value: float, dtype: str) -> str:
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
        elem = f"{SCALAR_TYPES[base]} {const_literal(value, base)}"
        return "<" + ", ".join([elem] * lanes) + ">"
    if base == "bool":
        return "true" if value else "false"
    if dt.is_float(base):
        return float_literal(value, base)
    bits = dt.bits(base)
    v = int(value) & ((1 << bits) - 1)
    return str(v - (1 << bits) if v >= 1 << (bits - 1) else v)


def is_signed(dtype: str) -> bool:
    return dt.is_int(dtype)


def const_int_of(e):
    """The integer value of a constant (or broadcast constant) expression, else None."""
    if isinstance(e, E.Broadcast):
        e = e.value
    return e.value if isinstance(e, E.IntImm) else None


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", name) or "v"


def global_name(name: str) -> str:
    """``@"name"`` with the characters LLVM's quoted names cannot hold escaped."""
    return '@"' + "".join(c if c.isprintable() and c not in '"\\' else "\\%02X" % ord(c) for c in name) + '"'
