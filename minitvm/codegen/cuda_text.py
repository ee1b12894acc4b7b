"""CUDA C text: C types of IR dtypes, identifiers, literals, and the device helper functions.

What the kernel printers (:mod:`~minitvm.codegen.cuda_expr`, :mod:`~minitvm.codegen.cuda_kernel`)
and the module assembly (:mod:`~minitvm.codegen.cuda`) share; no IR is read here.
"""
from __future__ import annotations

import math
import re

import numpy as np

from .. import dtype as dt
from ..errors import CodegenError
from ..tir import expr as E

CTYPE = {
    "bool": "bool", "int8": "signed char", "uint8": "unsigned char", "int16": "short",
    "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int", "int64": "long long",
    "uint64": "unsigned long long", "float16": "mt_half", "float32": "float", "float64": "double",
}
NATIVE_VECTOR = {
    ("int8", 4): "char4", ("uint8", 4): "uchar4", ("int16", 2): "short2", ("int16", 4): "short4",
    ("uint16", 2): "ushort2", ("uint16", 4): "ushort4", ("int32", 2): "int2", ("int32", 4): "int4",
    ("uint32", 2): "uint2", ("uint32", 4): "uint4", ("float32", 2): "float2", ("float32", 4): "float4",
    ("int64", 2): "longlong2", ("uint64", 2): "ulonglong2", ("float64", 2): "double2",
}
WORD = {4: "int", 8: "int2", 16: "int4"}
MEMBERS = "xyzw"

MATH = {"exp", "log", "sqrt", "tanh", "floor", "ceil", "fabs", "pow", "sin", "cos", "round"}
ELEMENTWISE_CALLS = MATH | {"abs", "truncdiv", "truncmod", "likely", "shift_left", "shift_right",
                              "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
                              "if_then_else", "reinterpret"}
KNOWN_CALLS = sorted(ELEMENTWISE_CALLS | {"dp4a", "syncthreads", "address_of", "call_extern",
                                           "call_pure_extern"})

KEYWORDS = {
    "auto", "bool", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict",
    "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "class", "delete", "new", "operator", "private",
    "protected", "public", "template", "this", "throw", "try", "catch", "typename", "namespace",
    "using", "virtual", "true", "false", "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize",
    "min", "max", "half", "half2", "float4", "int4", "char4", "asm", "abs", "fminf", "fmaxf",
    "floordiv_i32", "floormod_i32", "floordiv_i64", "floormod_i64",
}
KEYWORDS |= {m + suffix for m in ("exp", "log", "sqrt", "tanh", "floor", "ceil", "fabs", "pow", "sin", "cos",
                                   "rint") for suffix in ("", "f")}

HELPERS = {
    # numpy's results where C has none: x // 0 == x % 0 == 0, and INT_MIN // -1 wraps to INT_MIN
    "floordiv_i32": """__device__ __forceinline__ int floordiv_i32(int a, int b) {
  if (b == 0) return 0;
  if (b == -1) return (int)(0u - (unsigned int)a);
  int q = a / b;
  return ((a % b != 0) && ((a < 0) != (b < 0))) ? q - 1 : q;
}""",
    "floormod_i32": """__device__ __forceinline__ int floormod_i32(int a, int b) {
  if (b == 0 || b == -1) return 0;
  int r = a % b;
  return ((r != 0) && ((r < 0) != (b < 0))) ? r + b : r;
}""",
    "floordiv_i64": """__device__ __forceinline__ long long floordiv_i64(long long a, long long b) {
  if (b == 0) return 0;
  if (b == -1) return (long long)(0ull - (unsigned long long)a);
  long long q = a / b;
  return ((a % b != 0) && ((a < 0) != (b < 0))) ? q - 1 : q;
}""",
    "floormod_i64": """__device__ __forceinline__ long long floormod_i64(long long a, long long b) {
  if (b == 0 || b == -1) return 0;
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
HELPERS["nan_minmax"] = """// min / max of floats where a NaN operand gives NaN (fminf / fmaxf drop it), as numpy does
__device__ __forceinline__ float mt_fmin(float a, float b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ float mt_fmax(float a, float b) { return (a > b || a != a) ? a : b; }
__device__ __forceinline__ double mt_fmin(double a, double b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ double mt_fmax(double a, double b) { return (a > b || a != a) ? a : b; }"""

HELPERS["shared_addr"] = """// the 32-bit shared-window address of a generic pointer (operand of ldmatrix / cp.async)
// (the builtin, unlike a cvta in inline asm, lets the compiler keep shared addresses 32-bit)
__device__ __forceinline__ unsigned int mt_shared_addr(const void* p) {
  return (unsigned int)__cvta_generic_to_shared(p);
}"""
HELPERS["mma_s8"] = """// int8 tensor cores (sm_80+): one warp computes a 16x8 int32 tile of A (16x32) times B^T (8x32).
// Fragments are per-lane registers laid out as the PTX ISA's mma.m16n8k32 .s8 fragments.
__device__ __forceinline__ void mt_ldmatrix_a(void* a, const void* src, int stride) {
  int lane = threadIdx.x & 31;
  const signed char* row = (const signed char*)src + ((lane & 7) + ((lane >> 3) & 1) * 8) * stride + (lane >> 4) * 16;
  unsigned int* r = (unsigned int*)a;
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(mt_shared_addr(row)));
}
__device__ __forceinline__ void mt_ldmatrix_b(void* b, const void* src, int stride) {
  int lane = threadIdx.x & 31;
  const signed char* row = (const signed char*)src + (lane & 7) * stride + ((lane >> 3) & 1) * 16;
  unsigned int* r = (unsigned int*)b;
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];"
               : "=r"(r[0]), "=r"(r[1]) : "r"(mt_shared_addr(row)));
}
__device__ __forceinline__ void mt_ldmatrix_b16(void* b, const void* src, int stride) {
  int lane = threadIdx.x & 31;
  const signed char* row = (const signed char*)src + ((lane & 7) + (lane >> 4) * 8) * stride + ((lane >> 3) & 1) * 16;
  unsigned int* r = (unsigned int*)b;
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(mt_shared_addr(row)));
}
__device__ __forceinline__ void mt_mma_s8(void* c, const void* a, const void* b) {
  int* d = (int*)c;
  const unsigned int* x = (const unsigned int*)a;
  const unsigned int* y = (const unsigned int*)b;
  // not volatile: it touches registers only, so the compiler may interleave it with the next
  // fragment loads (warp-level software pipelining)
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
               "{%8, %9}, {%0, %1, %2, %3};"
               : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
               : "r"(x[0]), "r"(x[1]), "r"(x[2]), "r"(x[3]), "r"(y[0]), "r"(y[1]));
}
__device__ __forceinline__ void mt_zero_acc(void* c) {
  int* d = (int*)c;
  d[0] = 0; d[1] = 0; d[2] = 0; d[3] = 0;
}
__device__ __forceinline__ void mt_store_acc(void* dst, int stride, const void* c) {
  int lane = threadIdx.x & 31;
  int* o = (int*)dst + (lane >> 2) * stride + (lane & 3) * 2;
  const int* v = (const int*)c;
  *(int2*)o = make_int2(v[0], v[1]);
  *(int2*)(o + 8 * stride) = make_int2(v[2], v[3]);
}"""
HELPERS["cp_async"] = """// asynchronous 16-byte global -> shared copies (sm_80+); nbytes 0 writes zeros and reads nothing
__device__ __forceinline__ void mt_cp_async16(void* dst, const void* src, int nbytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(mt_shared_addr(dst)), "l"(src), "r"(nbytes));
}
__device__ __forceinline__ void mt_cp_async_commit() { asm volatile("cp.async.commit_group;"); }
#define mt_cp_async_wait(n) asm volatile("cp.async.wait_group " #n ";")"""
HELPER_ORDER = ["half", "nan_minmax", "floordiv_i32", "floormod_i32", "floordiv_i64", "floormod_i64", "dp4a_us",
                 "dp4a_su", "shared_addr", "mma_s8", "cp_async"]
# extern calls that the helpers above define, and the helpers each needs
EXTERN_HELPERS = {
    **{f: ("shared_addr", "mma_s8") for f in ("mt_ldmatrix_a", "mt_ldmatrix_b", "mt_ldmatrix_b16", "mt_mma_s8",
                                              "mt_zero_acc", "mt_store_acc")},
    **{f: ("shared_addr", "cp_async") for f in ("mt_cp_async16", "mt_cp_async_commit", "mt_cp_async_wait")},
}



def c_ident(name: str) -> str:
    """``name`` as a C identifier that clashes with no keyword, CUDA name or minitvm helper."""
    s = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not s or s[0].isdigit():
        s = "v_" + s
    if s in KEYWORDS or s.startswith("__") or s.startswith("mt_"):
        s = s.lstrip("_") + "_"
        if s[0].isdigit() or s == "_":
            s = "v_" + s
    return s


def contiguous(idx) -> bool:
    """Is ``idx`` a stride-1 Ramp (a contiguous vector access)?"""
    return isinstance(idx, E.Ramp) and E.is_const_int(idx.stride, 1)


def vec_type(elem: str, lanes: int):
    """(C vector type, has .x/.y/.z/.w members) for ``lanes`` x ``elem``, or None if not 4/8/16 bytes."""
    if elem == "bool" or lanes < 2:
        return None
    nbytes = dt.numpy_dtype(elem).itemsize * lanes
    if nbytes not in WORD:
        return None
    native = NATIVE_VECTOR.get((elem, lanes))
    if native is not None:
        return native, True
    return WORD[nbytes], False


def member(name: str, lane, native: bool, elem: str) -> str:
    """C text of lane ``lane`` of the vector variable ``name``."""
    if lane is None:
        raise CodegenError(f"vector value {name} used as a scalar")
    if native:
        return f"{name}.{MEMBERS[lane]}"
    return f"(({CTYPE[elem]}*)&{name})[{lane}]"


def bare(code: str) -> str:
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


def paren(code: str) -> str:
    """``code`` wrapped in parentheses unless it already is one parenthesized unit or a name."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", code) or bare(code) != code:
        return code
    return f"({code})"


def narrow(elem: str, code: str) -> str:
    """Cast an int-promoted C result back to an 8/16-bit dtype so it wraps like the IR says."""
    if dt.is_integer(elem) and dt.bits(elem) < 32:
        return f"(({CTYPE[elem]}){code})"
    return code


def int_literal(v: int, dtype: str) -> str:
    """C literal of the integer ``v`` of ``dtype``."""
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
    return f"(({CTYPE[elem]}){v})"


def float_literal(v: float, dtype: str) -> str:
    """C literal of the float ``v`` of ``dtype`` (NaN and infinities by their bits)."""
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
