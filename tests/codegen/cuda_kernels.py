"""Hand-built lowered PrimFuncs for the CUDA backend tests (CPU: tests/codegen/test_cuda.py,
GPU: tests/gpu/test_cuda_codegen.py).

Each ``case_*`` function returns a :class:`Case`: the PrimFunc, a function making fresh random
inputs for given symbolic sizes, a numpy reference, and which parameters are outputs. The IR is
written the way ``minitvm.lower`` produces it: flat single-index accesses, thread bindings as
``thread_extent`` attributes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from minitvm.tir import expr as E
from minitvm.tir.stmt import (Allocate, AttrStmt, Buffer, BufferStore, For, IfThenElse,
                              PrimFunc, seq)


@dataclass
class Case:
    func: PrimFunc
    make_inputs: object          # (rng, sizes: dict) -> list of numpy arrays for every param
    reference: object            # (list of numpy arrays) -> dict param index -> expected array
    outputs: tuple               # param indices written by the kernel
    sizes: dict = field(default_factory=dict)   # default symbolic sizes for running
    exact: bool = True           # integer (bit-exact) or float (allclose) comparison


def thread(tag: str, name: str | None = None) -> E.IterVar:
    """An IterVar bound to ``tag`` (blockIdx.x, threadIdx.y, vthread ...)."""
    return E.IterVar(None, E.Var(name or tag.replace(".", "_")), "thread_index", tag)


def bind(iv: E.IterVar, extent, body) -> AttrStmt:
    """``AttrStmt(iv, "thread_extent", extent, body)``."""
    return AttrStmt(iv, "thread_extent", E.convert(extent), body)


def ld(buf, idx):
    """``buf[idx]`` (a vector load when ``idx`` is a Ramp)."""
    return E.BufferLoad(buf, (E.convert(idx),))


def st(buf, idx, value):
    """``buf[idx] = value``."""
    return BufferStore(buf, E.convert(value) if not isinstance(value, E.PrimExpr) else value, (E.convert(idx),))


def ramp(base, lanes, stride=1):
    """``Ramp(base, stride, lanes)``: a vector index."""
    return E.Ramp(E.convert(base), E.convert(stride), lanes)


def call(dtype, op, *args):
    """A call of intrinsic ``op`` returning ``dtype``."""
    return E.Call(dtype, op, tuple(E.convert(a) for a in args))


def _rand(rng, shape, dtype):
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


# ------------------------------------------------------------------------------------------
def case_vadd() -> Case:
    """C = A + B (float32, length n symbolic), 128 threads per block, guarded tail."""
    n = E.SizeVar("n")
    A, B, C = (Buffer(x, (n,), "float32") for x in "ABC")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    i = bx.var * 128 + tx.var
    body = IfThenElse(call("bool", "likely", i < n), st(C, i, ld(A, i) + ld(B, i)))
    body = bind(bx, (n + 127) // 128, bind(tx, 128, body))
    f = PrimFunc("vadd", (A, B, C), body, {"shape_vars": (n,)})
    return Case(f, lambda rng, s: [_rand(rng, (s["n"],), "float32") for _ in range(3)],
                lambda a: {2: a[0] + a[1]}, (2,), {"n": 1000}, exact=True)


def case_matmul_shared(M=64, N=64, K=128, T=16) -> Case:
    """C[M,N] = A[M,K] @ B[K,N] float32, T x T tiles through shared memory, k-tile loop."""
    A = Buffer("A", (M, K), "float32")
    B = Buffer("B", (K, N), "float32")
    C = Buffer("C", (M, N), "float32")
    As = Buffer("A_shared", (T * T,), "float32", "shared")
    Bs = Buffer("B_shared", (T * T,), "float32", "shared")
    Cl = Buffer("C_local", (1,), "float32", "local")
    by, bx = thread("blockIdx.y"), thread("blockIdx.x")
    ty, tx = thread("threadIdx.y"), thread("threadIdx.x")
    ko, ki = E.Var("k_outer"), E.Var("k_inner")
    compute = seq(
        st(Cl, 0, E.const(0.0)),
        For(ko, E.const(0), E.const(K // T), "serial", seq(
            st(As, ty.var * T + tx.var, ld(A, (by.var * T + ty.var) * K + ko * T + tx.var)),
            st(Bs, ty.var * T + tx.var, ld(B, (ko * T + ty.var) * N + bx.var * T + tx.var)),
            For(ki, E.const(0), E.const(T), "unrolled",
                st(Cl, 0, ld(Cl, 0) + ld(As, ty.var * T + ki) * ld(Bs, ki * T + tx.var))),
        )),
        st(C, (by.var * T + ty.var) * N + bx.var * T + tx.var, ld(Cl, 0)),
    )
    body = bind(by, M // T, bind(bx, N // T, Allocate(As, Allocate(Bs, bind(ty, T, bind(tx, T, Allocate(Cl, compute)))))))
    f = PrimFunc("matmul_shared", (A, B, C), body, {"shape_vars": ()})
    return Case(f, lambda rng, s: [_rand(rng, (M, K), "float32"), _rand(rng, (K, N), "float32"),
                                   _rand(rng, (M, N), "float32")],
                lambda a: {2: a[0] @ a[1]}, (2,), exact=False)


def case_matmul_vthread(M=32, N=64, K=64, T=16, V=2) -> Case:
    """Like case_matmul_shared, but each thread computes V columns through a vthread (register tile)."""
    A = Buffer("A", (M, K), "float32")
    B = Buffer("B", (K, N), "float32")
    C = Buffer("C", (M, N), "float32")
    W = T * V
    As = Buffer("A_shared", (T * T,), "float32", "shared")
    Bs = Buffer("B_shared", (T * W,), "float32", "shared")
    Cl = Buffer("C_local", (1,), "float32", "local")
    by, bx = thread("blockIdx.y"), thread("blockIdx.x")
    vx = thread("vthread", "vx")
    ty, tx = thread("threadIdx.y"), thread("threadIdx.x")
    ko, ki = E.Var("k_outer"), E.Var("k_inner")
    col = vx.var * T + tx.var
    compute = seq(
        st(Cl, 0, E.const(0.0)),
        For(ko, E.const(0), E.const(K // T), "serial", seq(
            st(As, ty.var * T + tx.var, ld(A, (by.var * T + ty.var) * K + ko * T + tx.var)),
            st(Bs, ty.var * W + col, ld(B, (ko * T + ty.var) * N + bx.var * W + col)),
            For(ki, E.const(0), E.const(T), "serial",
                st(Cl, 0, ld(Cl, 0) + ld(As, ty.var * T + ki) * ld(Bs, ki * W + col))),
        )),
        st(C, (by.var * T + ty.var) * N + bx.var * W + col, ld(Cl, 0)),
    )
    inner = bind(vx, V, bind(ty, T, bind(tx, T, Allocate(Cl, compute))))
    body = bind(by, M // T, bind(bx, N // W, Allocate(As, Allocate(Bs, inner))))
    f = PrimFunc("matmul_vthread", (A, B, C), body, {"shape_vars": ()})
    return Case(f, lambda rng, s: [_rand(rng, (M, K), "float32"), _rand(rng, (K, N), "float32"),
                                   _rand(rng, (M, N), "float32")],
                lambda a: {2: a[0] @ a[1]}, (2,), exact=False)


def case_dense_dp4a(M=16, N=32, K=64) -> Case:
    """C[i,j] = sum_k int32(A[i,k]) * int32(B[j,k]) with dp4a over 4-byte words (int8 -> int32)."""
    A = Buffer("A", (M, K), "int8")
    B = Buffer("B", (N, K), "int8")
    C = Buffer("C", (M, N), "int32")
    Cl = Buffer("C_local", (1,), "int32", "local")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    k = E.Var("k")
    i, j = bx.var, tx.var
    body = seq(
        st(Cl, 0, E.const(0)),
        For(k, E.const(0), E.const(K // 4), "serial",
            st(Cl, 0, call("int32", "dp4a", ld(A, ramp(i * K + k * 4, 4)), ld(B, ramp(j * K + k * 4, 4)), ld(Cl, 0)))),
        st(C, i * N + j, ld(Cl, 0)),
    )
    f = PrimFunc("dense_dp4a", (A, B, C), bind(bx, M, bind(tx, N, Allocate(Cl, body))), {"shape_vars": ()})
    return Case(f, lambda rng, s: [_rand(rng, (M, K), "int8"), _rand(rng, (N, K), "int8"),
                                   _rand(rng, (M, N), "int32")],
                lambda a: {2: a[0].astype(np.int32) @ a[1].astype(np.int32).T}, (2,))


def case_vector_float4(n=4096) -> Case:
    """B[ramp] = A[ramp] * 2 + 1 with float4 loads/stores (one float4 per thread)."""
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    base = (bx.var * 256 + tx.var) * 4
    val = ld(A, ramp(base, 4)) * E.Broadcast(E.const(2.0), 4) + E.Broadcast(E.const(1.0), 4)
    f = PrimFunc("scale_float4", (A, B), bind(bx, n // 1024, bind(tx, 256, st(B, ramp(base, 4), val))),
                 {"shape_vars": ()})
    return Case(f, lambda rng, s: [_rand(rng, (n,), "float32"), _rand(rng, (n,), "float32")],
                lambda a: {1: a[0] * np.float32(2) + np.float32(1)}, (1,), exact=True)


def case_vector_char4(n=4096) -> Case:
    """C[ramp] = A[ramp] + B[ramp] (int8x4, wraps), D[ramp16] = A[ramp16] (int8x16 copy)."""
    A, B, C = (Buffer(x, (n,), "int8") for x in "ABC")
    D = Buffer("D", (n,), "int8")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    base = (bx.var * 256 + tx.var) * 4
    t = tx.var
    body = seq(
        st(C, ramp(base, 4), ld(A, ramp(base, 4)) + ld(B, ramp(base, 4))),
        IfThenElse(t < 64, st(D, ramp((bx.var * 64 + t) * 16, 16), ld(A, ramp((bx.var * 64 + t) * 16, 16)))),
    )
    f = PrimFunc("add_char4", (A, B, C, D), bind(bx, n // 1024, bind(tx, 256, body)), {"shape_vars": ()})
    return Case(f, lambda rng, s: [_rand(rng, (n,), "int8") for _ in range(4)],
                lambda a: {2: (a[0] + a[1]).astype(np.int8), 3: a[0].copy()}, (2, 3))


def case_int8_wrap(n=1024) -> Case:
    """C = A * B + A - B in int8 arithmetic (wraps modulo 256), and D = int8(round(F)) (half to even)."""
    A, B, C = (Buffer(x, (n,), "int8") for x in "ABC")
    F = Buffer("F", (n,), "float32")
    D = Buffer("D", (n,), "int8")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    i = bx.var * 128 + tx.var
    a, b = ld(A, i), ld(B, i)
    body = seq(
        st(C, i, a * b + a - b),
        st(D, i, E.Cast("int8", call("float32", "round", ld(F, i)))),
    )
    f = PrimFunc("int8_wrap", (A, B, C, F, D), bind(bx, n // 128, bind(tx, 128, body)), {"shape_vars": ()})

    def inputs(rng, s):
        halves = (rng.integers(-200, 200, size=n) / 2.0).astype(np.float32)   # many exact .5 cases
        return [_rand(rng, (n,), "int8"), _rand(rng, (n,), "int8"), _rand(rng, (n,), "int8"), halves,
                _rand(rng, (n,), "int8")]

    def ref(a):
        with np.errstate(over="ignore"):
            c = (a[0] * a[1] + a[0] - a[1]).astype(np.int8)
        d = np.rint(a[3]).astype(np.int32).astype(np.int8)
        return {2: c, 4: d}
    return Case(f, inputs, ref, (2, 4))


def case_floordiv(n=1024) -> Case:
    """Floor division/modulo by constants (3, 8) and by a tensor of divisors, int32 and int8."""
    A = Buffer("A", (n,), "int32")
    Dv = Buffer("Dv", (n,), "int32")
    Q3, R3, Q8, R8, QV, RV = (Buffer(x, (n,), "int32") for x in ("Q3", "R3", "Q8", "R8", "QV", "RV"))
    A8 = Buffer("A8", (n,), "int8")
    D8 = Buffer("D8", (n,), "int8")
    Q8v = Buffer("Q8v", (n,), "int8")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    i = bx.var * 128 + tx.var
    a, d = ld(A, i), ld(Dv, i)
    body = seq(
        st(Q3, i, a // 3), st(R3, i, a % 3), st(Q8, i, a // 8), st(R8, i, a % 8),
        st(QV, i, a // d), st(RV, i, a % d),
        st(Q8v, i, ld(A8, i) // ld(D8, i)),
    )
    params = (A, Dv, Q3, R3, Q8, R8, QV, RV, A8, D8, Q8v)
    f = PrimFunc("floordiv", params, bind(bx, n // 128, bind(tx, 128, body)), {"shape_vars": ()})

    def inputs(rng, s):
        a = rng.integers(-1000, 1000, size=n, dtype=np.int32)
        d = rng.integers(1, 17, size=n, dtype=np.int32) * rng.choice(np.array([-1, 1], np.int32), size=n)
        a8 = _rand(rng, (n,), "int8")
        d8 = rng.integers(1, 128, size=n).astype(np.int8) * rng.choice(np.array([-1, 1], np.int8), size=n)
        d8[:4] = -1
        a8[:4] = -128                      # -128 // -1 wraps to -128
        outs = [_rand(rng, (n,), "int32") for _ in range(6)]
        return [a, d] + outs + [a8, d8.astype(np.int8), _rand(rng, (n,), "int8")]

    def ref(x):
        a, d, a8, d8 = x[0], x[1], x[8].astype(np.int32), x[9].astype(np.int32)
        return {2: a // 3, 3: a % 3, 4: a // 8, 5: a % 8, 6: a // d, 7: a % d,
                10: (a8 // d8).astype(np.int8)}
    return Case(f, inputs, ref, (2, 3, 4, 5, 6, 7, 10))


def case_dynamic_shared(per_block=16384, threads=256) -> Case:
    """Reverse each block of 16384 floats through a 64 KB shared buffer (dynamic shared memory)."""
    n = E.SizeVar("n")
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    S = Buffer("S", (per_block,), "float32", "shared")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    k1, k2 = E.Var("k"), E.Var("k")
    steps = per_block // threads
    body = seq(
        For(k1, E.const(0), E.const(steps), "serial",
            st(S, k1 * threads + tx.var, ld(A, bx.var * per_block + k1 * threads + tx.var))),
        For(k2, E.const(0), E.const(steps), "serial",
            st(B, bx.var * per_block + k2 * threads + tx.var, ld(S, (per_block - 1) - (k2 * threads + tx.var)))),
    )
    f = PrimFunc("reverse_blocks", (A, B), bind(bx, n // per_block, Allocate(S, bind(tx, threads, body))),
                 {"shape_vars": (n,)})

    def ref(a):
        return {1: a[0].reshape(-1, per_block)[:, ::-1].reshape(-1)}
    return Case(f, lambda rng, s: [_rand(rng, (s["n"],), "float32"), _rand(rng, (s["n"],), "float32")],
                ref, (1,), {"n": 4 * per_block})


def case_half(n=2048) -> Case:
    """C = A * B + 1 and D = sqrt(|A|) in float16 (each op rounded to half, like numpy)."""
    A, B, C, D = (Buffer(x, (n,), "float16") for x in "ABCD")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    i = bx.var * 128 + tx.var
    a = ld(A, i)
    body = seq(
        st(C, i, a * ld(B, i) + E.FloatImm("float16", 1.0)),
        st(D, i, call("float16", "sqrt", call("float16", "fabs", a))),
    )
    f = PrimFunc("half_ops", (A, B, C, D), bind(bx, n // 128, bind(tx, 128, body)), {"shape_vars": ()})
    return Case(f, lambda rng, s: [_rand(rng, (n,), "float16") for _ in range(4)],
                lambda a: {2: a[0] * a[1] + np.float16(1), 3: np.sqrt(np.abs(a[0]))}, (2, 3))


def case_pad_select(n=1024) -> Case:
    """B[4i:4i+4] = A[4(i-1):4i] if i >= 1 else 0 (int8x4 under a select: one guarded char4 load)."""
    A, B = Buffer("A", (n,), "int8"), Buffer("B", (n,), "int8")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    i = bx.var * 64 + tx.var
    cond = i >= 1
    # the load index is kept in bounds like lowering does (a select may evaluate both sides)
    safe = E.Select(cond, (i - 1) * 4, E.const(0))
    value = E.Select(E.Broadcast(cond, 4), ld(A, ramp(safe, 4)), E.Broadcast(E.const(0, "int8"), 4))
    f = PrimFunc("pad_select", (A, B), bind(bx, n // 256, bind(tx, 64, st(B, ramp(i * 4, 4), value))),
                 {"shape_vars": ()})

    def ref(a):
        out = np.zeros_like(a[0])
        out[4:] = a[0][:-4]
        return {1: out}
    return Case(f, lambda rng, s: [_rand(rng, (n,), "int8"), _rand(rng, (n,), "int8")], ref, (1,))


def case_divergent_exchange(n=512) -> Case:
    """Half the block exchanges data through shared memory inside ``if (threadIdx.x < 32)``.

    The barrier the exchange needs would sit inside the thread-dependent branch; the sync pass
    splits the branch around it.
    """
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    S = Buffer("S", (32,), "float32", "shared")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    t = tx.var
    body = IfThenElse(t < 32, seq(st(S, t, ld(A, bx.var * 32 + t)),
                                  st(B, bx.var * 32 + t, ld(S, 31 - t) + E.const(1.0))))
    f = PrimFunc("divergent_exchange", (A, B), bind(bx, n // 32, Allocate(S, bind(tx, 64, body))),
                 {"shape_vars": ()})
    return Case(f, lambda rng, s: [_rand(rng, (n,), "float32"), _rand(rng, (n,), "float32")],
                lambda a: {1: a[0].reshape(-1, 32)[:, ::-1].reshape(-1) + np.float32(1)}, (1,))


def case_nan_minmax(n=256) -> Case:
    """LO = min(A, B), HI = max(A, B) in float32 and float16 with NaNs on either side: NaN out,
    as numpy (fminf / fmaxf would return the other operand)."""
    A, B, LO, HI = (Buffer(x, (n,), "float32") for x in ("A", "B", "LO", "HI"))
    HA, HLO = Buffer("HA", (n,), "float16"), Buffer("HLO", (n,), "float16")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    i = bx.var * 64 + tx.var
    a, b = ld(A, i), ld(B, i)
    body = seq(st(LO, i, E.Min(a, b)), st(HI, i, E.Max(a, b)),
               st(HLO, i, E.Max(ld(HA, i), E.FloatImm("float16", 0.0))))

    def inputs(rng, s):
        arrays = [_rand(rng, (n,), "float32") for _ in range(4)] + [_rand(rng, (n,), "float16") for _ in range(2)]
        arrays[0][::7] = np.nan
        arrays[1][::5] = np.nan
        arrays[4][::3] = np.nan
        return arrays

    f = PrimFunc("nan_minmax", (A, B, LO, HI, HA, HLO), bind(bx, n // 64, bind(tx, 64, body)), {"shape_vars": ()})
    return Case(f, inputs, lambda a: {2: np.minimum(a[0], a[1]), 3: np.maximum(a[0], a[1]),
                                      5: np.maximum(a[4], np.float16(0))}, (2, 3, 5))


ALL_CASES = {
    "vadd": case_vadd, "matmul_shared": case_matmul_shared, "matmul_vthread": case_matmul_vthread,
    "dense_dp4a": case_dense_dp4a, "vector_float4": case_vector_float4, "vector_char4": case_vector_char4,
    "int8_wrap": case_int8_wrap, "floordiv": case_floordiv, "dynamic_shared": case_dynamic_shared,
    "half": case_half, "pad_select": case_pad_select, "divergent_exchange": case_divergent_exchange,
    "nan_minmax": case_nan_minmax,
}
