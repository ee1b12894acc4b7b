"""Numpy emulations of the warp-wide int8 tensor-core instructions, lane by lane.

Every function works on a whole warp at once: a ``*_lanes`` array has one row per lane (32 rows)
holding that lane's fragment registers, as bytes for int8 fragments (byte ``i`` of a lane is
byte ``i % 4`` of its 32-bit register ``i // 4``, little-endian) and as int32 values for the
accumulator. The mappings are those of the PTX ISA (section "Matrix fragments for
mma.m16n8k32", .s8, and the ``ldmatrix`` description), written with ``g = lane >> 2`` (the
group id) and ``t = lane & 3`` (the thread id in the group). The SIMT interpreter
(``kernel_interp.py``) runs the ``mt_*`` calls of a kernel with these functions.
"""
from __future__ import annotations

import numpy as np

WARP = 32
_LANE = np.arange(WARP)
_G, _T = _LANE >> 2, _LANE & 3


def a_fragment_index() -> tuple:
    """(row, col) of ``A`` held by byte ``i`` of each lane's A fragment of m16n8k32 .s8: (32, 16) arrays.

    PTX: row = g for bytes 0-3 and 8-11, g + 8 for 4-7 and 12-15; col = 4t + (i & 3), plus 16
    for i >= 8.
    """
    i = np.arange(16)
    row = _G[:, None] + 8 * ((i[None, :] >> 2) & 1)
    col = 4 * _T[:, None] + (i[None, :] & 3) + 16 * (i[None, :] >= 8)
    return row, col


def b_fragment_index() -> tuple:
    """(k, n) of ``B`` held by byte ``i`` of each lane's B fragment of m16n8k32 .s8: (32, 8) arrays.

    PTX: k = 4t + (i & 3), plus 16 for i >= 4; n = g.
    """
    i = np.arange(8)
    k = 4 * _T[:, None] + (i[None, :] & 3) + 16 * (i[None, :] >= 4)
    n = np.broadcast_to(_G[:, None], k.shape)
    return k, n


def c_fragment_index() -> tuple:
    """(row, col) of ``C``/``D`` held by element ``i`` of each lane's accumulator: (32, 4) arrays.

    PTX: row = g for i < 2, g + 8 otherwise; col = 2t + (i & 1).
    """
    i = np.arange(4)
    row = _G[:, None] + 8 * (i[None, :] >= 2)
    col = 2 * _T[:, None] + (i[None, :] & 1)
    return row, col


def mma_m16n8k32_s8(a_lanes, b_lanes, c_lanes) -> np.ndarray:
    """``mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32``: the lanes' D fragments, (32, 4) int32.

    ``a_lanes`` (32, 16) and ``b_lanes`` (32, 8) are signed int8 fragments, ``c_lanes`` (32, 4)
    int32; D[m][n] = C[m][n] + sum_k A[m][k] * B[k][n], wrapping modulo 2**32 like the hardware.
    """
    a = np.empty((16, 32), np.int64)
    b = np.empty((32, 8), np.int64)
    c = np.empty((16, 8), np.int64)
    a[a_fragment_index()] = np.asarray(a_lanes, np.int8)
    b[b_fragment_index()] = np.asarray(b_lanes, np.int8)
    c[c_fragment_index()] = np.asarray(c_lanes, np.int32)
    d = (c + a @ b) & 0xFFFFFFFF
    return d.astype(np.uint32).view(np.int32)[c_fragment_index()]


def _ldmatrix(matrices) -> np.ndarray:
    """``ldmatrix.sync.aligned.m8n8.b16`` of several 8x8 b16 matrices (each given as 8 rows of 16 bytes).

    PTX: for each matrix j, lane l receives register j = the two b16 elements 2(l % 4), 2(l % 4) + 1
    of row l // 4, i.e. bytes 4t..4t+3 of row g.
    """
    m = np.asarray(matrices, np.int8)                       # (j, row, 16 bytes)
    words = m.reshape(len(m), 8, 4, 4)                      # (j, row = g, t, byte)
    return words.reshape(len(m), WARP, 4).transpose(1, 0, 2).reshape(WARP, 4 * len(m))


def ldmatrix_a(tile) -> np.ndarray:
    """``ldmatrix .x4`` of a 16x32 int8 tile into the lanes' A fragments, (32, 16) int8.

    The four 8x8 b16 matrices are rows 0-7 and 8-15 of bytes 0-15, then of bytes 16-31 (lane l
    supplies the address of row (l % 8) + 8 ((l // 8) % 2), byte 16 (l // 16)), so a lane gets
    bytes 0-3 = T[g][4t..], 4-7 = T[g+8][4t..], 8-11 = T[g][16+4t..], 12-15 = T[g+8][16+4t..].
    """
    t = np.asarray(tile, np.int8)
    return _ldmatrix([t[0:8, 0:16], t[8:16, 0:16], t[0:8, 16:32], t[8:16, 16:32]])


def ldmatrix_b(tile) -> np.ndarray:
    """``ldmatrix .x2`` of an 8x32 int8 tile ``T[n][k]`` into the lanes' B fragments, (32, 8) int8.

    The two 8x8 b16 matrices are bytes 0-15 and 16-31 of the 8 rows, so a lane gets bytes
    0-3 = T[g][4t..] and 4-7 = T[g][16+4t..]: the B fragment of ``B = T.T`` (k by n).
    """
    t = np.asarray(tile, np.int8)
    return _ldmatrix([t[:, 0:16], t[:, 16:32]])


def ldmatrix_b16(tile) -> np.ndarray:
    """``ldmatrix .x4`` of a 16x32 int8 tile ``T[n][k]`` into two consecutive B fragments, (32, 16) int8.

    The four 8x8 b16 matrices are bytes 0-15 and 16-31 of rows 0-7, then of rows 8-15 (lane l
    supplies the address of row (l % 8) + 8 (l // 16), byte 16 ((l // 8) % 2)), so bytes 0-7 of a
    lane are its B fragment of rows 0-7 (``ldmatrix_b(T[:8])``) and bytes 8-15 that of rows 8-15.
    """
    t = np.asarray(tile, np.int8)
    return _ldmatrix([t[0:8, 0:16], t[0:8, 16:32], t[8:16, 0:16], t[8:16, 16:32]])
