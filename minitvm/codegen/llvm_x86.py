"""LLVM IR for the x86 int8 dot products ``dot_u8s8`` and ``dot_i16`` (see
:mod:`minitvm.topi.cpu.tensor_intrin`).

``dot_u8s8(x, w, acc)``: ``x`` is 4 uint8 values, ``w`` is ``L x 4`` int8 values (row ``i`` is
output lane ``i``), ``acc`` is ``L`` int32 values; the result is
``acc[i] + sum_k int32(x[k]) * int32(w[i, k])`` in every lane, exactly (int32 wrap-around only).

The instructions come from the target's features (:attr:`minitvm.target.Target.features`):

* ``avx512vnni``: ``vpdpbusd`` on ``zmm`` (16 lanes) or ``ymm`` (8 lanes, EVEX; every CPU with
  AVX512-VNNI has AVX512-VL);
* ``avxvnni``: ``{vex} vpdpbusd`` on ``ymm`` (8 lanes; 16 lanes as two halves);
* ``avx2``: ``vpmaddubsw`` + ``vpmaddwd`` + ``vpaddd``, saturation-free (below);
* otherwise: widening multiplies and a horizontal add per lane (what LLVM makes of them).

``vpmaddubsw`` adds two u8 x s8 products into an int16 with signed saturation. With
``x`` in ``[0, 255]`` and ``w`` in ``[-128, 127]`` a pair sum lies in ``[-65280, 64770]`` and
saturates, so the AVX2 path splits ``x = lo + 128 * hi`` with ``lo = x & 127`` (``[0, 127]``)
and ``hi = x >> 7`` (``{0, 1}``): a pair sum of ``lo * w`` lies in ``[-32512, 32258]`` and one of
``hi * w`` in ``[-256, 254]``, both inside int16, so neither ``vpmaddubsw`` saturates.
``vpmaddwd`` then adds pairs of them into int32 with multipliers 1 and 128 (exact: at most
``2 * 32512`` and ``2 * 256 * 128``). Two ``vpmaddubsw`` and two ``vpmaddwd`` per 32 products.
"""
from __future__ import annotations

from .. import dtype as dt
from ..errors import CodegenError

__all__ = ["DOT_U8S8", "DOT_I16", "emit_dot_u8s8", "emit_dot_i16"]

DOT_U8S8 = "dot_u8s8"
DOT_I16 = "dot_i16"


def _splat_word(b, x: str, words: int) -> str:
    """The 4 bytes ``x`` (``<4 x i8>``) repeated ``words`` times, as ``<4*words x i8>``."""
    word = b.val(f"bitcast <4 x i8> {x} to i32")
    v = b.splat(word, "int32", words)
    return b.val(f"bitcast <{words} x i32> {v} to <{4 * words} x i8>")


def _half(b, v: str, lanes: int, elem: str, part: int, parts: int) -> str:
    """Lanes ``[part * lanes / parts, (part + 1) * lanes / parts)`` of vector ``v``."""
    n = lanes // parts
    mask = ", ".join(f"i32 {part * n + k}" for k in range(n))
    return b.val(f"shufflevector <{lanes} x {elem}> {v}, <{lanes} x {elem}> poison, <{n} x i32> <{mask}>")


def _concat(b, parts: list, n: int, elem: str) -> str:
    """Concatenate two ``<n x elem>`` vectors."""
    mask = ", ".join(f"i32 {k}" for k in range(2 * n))
    return b.val(f"shufflevector <{n} x {elem}> {parts[0]}, <{n} x {elem}> {parts[1]}, <{2 * n} x i32> <{mask}>")


def _vnni(b, xs: str, w: str, acc: str, lanes: int) -> str:
    fn = b.mod.declare(f"llvm.x86.avx512.vpdpbusd.{32 * lanes}", f"<{lanes} x i32>",
                       [f"<{lanes} x i32>", f"<{4 * lanes} x i8>", f"<{4 * lanes} x i8>"])
    return b.val(f"call <{lanes} x i32> {fn}(<{lanes} x i32> {acc}, <{4 * lanes} x i8> {xs}, "
                 f"<{4 * lanes} x i8> {w})")


def _const_vec(value: int, n: int, elem: str) -> str:
    return "<" + ", ".join(f"{elem} {value}" for _ in range(n)) + ">"


def _avx2(b, xs: str, w: str, acc: str) -> str:
    """8 lanes through vpmaddubsw / vpmaddwd, saturation-free (module docstring)."""
    mub = b.mod.declare("llvm.x86.avx2.pmadd.ub.sw", "<16 x i16>", ["<32 x i8>", "<32 x i8>"])
    mwd = b.mod.declare("llvm.x86.avx2.pmadd.wd", "<8 x i32>", ["<16 x i16>", "<16 x i16>"])
    lo = b.val(f"and <32 x i8> {xs}, {_const_vec(127, 32, 'i8')}")
    hi = b.val(f"lshr <32 x i8> {xs}, {_const_vec(7, 32, 'i8')}")
    plo = b.val(f"call <16 x i16> {mub}(<32 x i8> {lo}, <32 x i8> {w})")
    phi = b.val(f"call <16 x i16> {mub}(<32 x i8> {hi}, <32 x i8> {w})")
    slo = b.val(f"call <8 x i32> {mwd}(<16 x i16> {plo}, <16 x i16> {_const_vec(1, 16, 'i16')})")
    shi = b.val(f"call <8 x i32> {mwd}(<16 x i16> {phi}, <16 x i16> {_const_vec(128, 16, 'i16')})")
    return b.val(f"add <8 x i32> {b.val(f'add <8 x i32> {acc}, {slo}')}, {shi}")


def _generic(b, xs: str, w: str, acc: str, lanes: int) -> str:
    """Widening multiplies and a 4-way horizontal add per lane (no x86 instruction named)."""
    n = 4 * lanes
    xe = b.val(f"zext <{n} x i8> {xs} to <{n} x i32>")
    we = b.val(f"sext <{n} x i8> {w} to <{n} x i32>")
    prod = b.val(f"mul <{n} x i32> {xe}, {we}")
    sums = []
    for k in range(4):
        mask = ", ".join(f"i32 {4 * i + k}" for i in range(lanes))
        sums.append(b.val(f"shufflevector <{n} x i32> {prod}, <{n} x i32> poison, <{lanes} x i32> <{mask}>"))
    t = b.val(f"add <{lanes} x i32> {sums[0]}, {sums[1]}")
    u = b.val(f"add <{lanes} x i32> {sums[2]}, {sums[3]}")
    return b.val(f"add <{lanes} x i32> {acc}, {b.val(f'add <{lanes} x i32> {t}, {u}')}")


def path_for(features, lanes: int) -> str:
    """Which lowering ``dot_u8s8`` over ``lanes`` lanes gets with these target features:
    ``"vnni512"``, ``"vnni256"``, ``"avx2"`` or ``"generic"``."""
    if "avx512vnni" in features and lanes == 16:
        return "vnni512"
    if ("avxvnni" in features or "avx512vnni" in features) and lanes in (8, 16):
        return "vnni256"
    if "avx2" in features and lanes in (8, 16):
        return "avx2"
    return "generic"


def emit_dot_u8s8(b, e) -> str:
    """Lower the call ``e`` (``dot_u8s8(x, w, acc)``) with the builder ``b`` (an
    :class:`~minitvm.codegen.llvm_expr.ExprBuilder` whose module carries the target features)."""
    x, w, acc, lanes = _dot_args(e, DOT_U8S8, "uint8", "int8", 4)
    xs = _splat_word(b, b.expr(x), lanes)
    wv, av = b.expr(w), b.expr(acc)
    path = path_for(b.mod.features, lanes)
    if path == "generic":
        return _generic(b, xs, wv, av, lanes)
    width = 16 if path == "vnni512" else 8

    def lower(xp, wp, ap):
        return _avx2(b, xp, wp, ap) if path == "avx2" else _vnni(b, xp, wp, ap, width)

    return _in_parts(b, xs, wv, av, lanes, width, 4, "i8", lower)


def _dot_args(e, call: str, x_elem: str, w_elem: str, depth: int) -> tuple:
    """``(x, w, acc, lanes)`` of the call ``e`` of ``call``, its argument types checked: ``depth``
    ``x_elem`` values, ``depth`` ``w_elem`` values a lane, int32 accumulators."""
    if len(e.args) != 3:
        raise CodegenError(f"llvm codegen: {call} takes (x, w, acc), got {len(e.args)} arguments: {e}")
    x, w, acc = e.args
    lanes = dt.lanes_of(acc.dtype)
    if (dt.split_lanes(x.dtype) != (x_elem, depth) or dt.split_lanes(w.dtype) != (w_elem, depth * lanes)
            or dt.element_of(acc.dtype) != "int32" or e.dtype != acc.dtype):
        raise CodegenError(f"llvm codegen: {call} takes {x_elem}x{depth}, {w_elem}x{depth * lanes} and "
                           f"int32x{lanes}; got {x.dtype}, {w.dtype}, {acc.dtype} -> {e.dtype}")
    return x, w, acc, lanes


def _in_parts(b, xs: str, wv: str, av: str, lanes: int, width: int, depth: int, elem: str, lower) -> str:
    """A ``lanes``-lane dot product as ``lower(x, w, acc)`` on each ``width``-lane part (``x`` and
    ``w`` hold ``depth`` ``elem`` values a lane), the parts' results joined."""
    parts = lanes // width
    outs = []
    for p in range(parts):
        xp = xs if parts == 1 else _half(b, xs, depth * lanes, elem, p, parts)
        wp = wv if parts == 1 else _half(b, wv, depth * lanes, elem, p, parts)
        ap = av if parts == 1 else _half(b, av, lanes, "i32", p, parts)
        outs.append(lower(xp, wp, ap))
    while len(outs) > 1:
        n = lanes // len(outs)
        outs = [_concat(b, outs[k:k + 2], n, "i32") for k in range(0, len(outs), 2)]
    return outs[0]


def emit_dot_i16(b, e) -> str:
    """Lower ``dot_i16(x, w, acc)``: ``x`` 2 int16 values (the pair, one 32-bit word, broadcast to
    every lane), ``w`` ``L x 2`` int16 values, ``acc`` ``L`` int32 values; the result is
    ``acc[i] + x[0] * w[i, 0] + x[1] * w[i, 1]`` (int32 wrap-around only: a pair sum of int16
    products overflows only for ``x = w = -32768``). ``vpmaddwd`` on ``ymm`` with AVX2 (16 lanes as
    two halves), else widening multiplies."""
    x, w, acc, lanes = _dot_args(e, DOT_I16, "int16", "int16", 2)
    pair = b.val(f"bitcast <2 x i16> {b.expr(x)} to i32")
    xs = b.val(f"bitcast <{lanes} x i32> {b.splat(pair, 'int32', lanes)} to <{2 * lanes} x i16>")
    wv, av = b.expr(w), b.expr(acc)
    width = 8 if "avx2" in b.mod.features and lanes % 8 == 0 else 0
    if width == 0:
        n = 2 * lanes
        prod = b.val(f"mul <{n} x i32> {b.val(f'sext <{n} x i16> {xs} to <{n} x i32>')}, "
                     f"{b.val(f'sext <{n} x i16> {wv} to <{n} x i32>')}")
        even, odd = ([b.val(f"shufflevector <{n} x i32> {prod}, <{n} x i32> poison, <{lanes} x i32> <"
                            + ", ".join(f"i32 {2 * i + k}" for i in range(lanes)) + ">") for k in (0, 1)])
        return b.val(f"add <{lanes} x i32> {av}, {b.val(f'add <{lanes} x i32> {even}, {odd}')}")
    fn = b.mod.declare("llvm.x86.avx2.pmadd.wd", "<8 x i32>", ["<16 x i16>", "<16 x i16>"])

    def lower(xp, wp, ap):
        prod = b.val(f"call <{width} x i32> {fn}(<{2 * width} x i16> {xp}, <{2 * width} x i16> {wp})")
        return b.val(f"add <{width} x i32> {ap}, {prod}")

    return _in_parts(b, xs, wv, av, lanes, width, 2, "i16", lower)
