"""LLVM backend: hand-built lowered IR, JIT-compiled and checked against numpy."""
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minitvm
from minitvm import errors
from minitvm.codegen.llvm import build_llvm, codegen_llvm
from minitvm.runtime import llvm as rt
from minitvm.runtime.ndarray import NDArray
from minitvm.tir import (AttrStmt, Broadcast, Buffer, BufferLoad, BufferStore, Call, Cast,
                         FloorDiv, FloorMod, For, IfThenElse, IntImm, Let, LetStmt,
                         Max, Min, PrimFunc, Ramp, Select, SizeVar, Var, const, seq)
from minitvm.tir.stmt import Allocate

rng = np.random.default_rng()


def loop(var, extent, body, kind="serial", lo=0):
    return For(var, const(lo) if isinstance(lo, int) else lo,
               const(extent) if isinstance(extent, int) else extent, kind, body)


def load(buf, idx):
    return BufferLoad(buf, (idx,))


def store(buf, value, idx):
    return BufferStore(buf, value, (idx,))


def poison(shape, dtype):
    """An output array filled with a sentinel, so unwritten elements show."""
    if np.dtype(dtype).kind == "f":
        return np.full(shape, np.nan, dtype)
    if np.dtype(dtype).kind == "b":
        return np.zeros(shape, dtype)
    return np.full(shape, np.iinfo(dtype).min + 7, dtype)


def rand_int(shape, dtype, lo=None, hi=None):
    info = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def elementwise(name, dtypes, make_value, n=64, out_dtype=None):
    """``Out[i] = make_value(In0[i], In1[i], ...)`` over flat buffers of length n."""
    ins = [Buffer(f"In{k}", (n,), d) for k, d in enumerate(dtypes)]
    i = Var("i")
    value = make_value(*[load(b, i) for b in ins])
    out = Buffer("Out", (n,), out_dtype or value.dtype)
    return PrimFunc(name, (*ins, out), loop(i, n, store(out, value, i))), out.dtype


# ----------------------------------------------------------------------------------------
def test_vector_add_float32():
    f, _ = elementwise("vadd", ["float32", "float32"], lambda a, b: a + b, n=1000)
    m = build_llvm([f])
    a, b = rng.standard_normal(1000).astype("float32"), rng.standard_normal(1000).astype("float32")
    c = poison(1000, "float32")
    m(a, b, c)
    np.testing.assert_array_equal(c, a + b)
    assert "define i32 @\"vadd\"" in m.get_source()
    assert "vadd" in m.get_source("asm")
    assert "<8 x float>" in m.get_source("optimized") or "<4 x float>" in m.get_source("optimized")


def fused_multiply_add(a, b, c):
    """float32 ``a * b + c`` rounded once, as LLVM computes it (float multiply-adds may contract to
    FMA, as nvcc does): the float64 product of two float32 values is exact."""
    return (np.asarray(a, np.float64) * np.float32(b) + np.asarray(c, np.float32)).astype(np.float32)


def test_float_multiply_add_contracts_to_one_fma():
    A, B, C = (Buffer(x, (64,), "float32") for x in "ABC")
    i = Var("i")
    m = build_llvm([PrimFunc("fma", (A, B, C), loop(i, 64, store(C, load(A, i) * load(B, i) + load(C, i), i)))])
    assert "fmul contract" in m.get_source() and "fadd contract" in m.get_source()
    a, b = rng.standard_normal(64).astype("float32"), rng.standard_normal(64).astype("float32")
    c = rng.standard_normal(64).astype("float32")
    want = fused_multiply_add(a, b, c)
    m(a, b, c)
    np.testing.assert_array_equal(c, want)


def test_symbolic_shape_two_sizes():
    n = SizeVar("n")
    A, B, C = (Buffer(x, (n,), "float32") for x in "ABC")
    i = Var("i")
    f = PrimFunc("vadd_n", (A, B, C), loop(i, n, store(C, load(A, i) * load(B, i) + 1.0, i)),
                 {"shape_vars": (n,)})
    m = build_llvm([f])
    assert m.signatures["vadd_n"].shape_vars == ("n",)
    for size in (17, 1003):
        a, b = rng.standard_normal(size).astype("float32"), rng.standard_normal(size).astype("float32")
        c = poison(size, "float32")
        m["vadd_n"](a, b, c)
        np.testing.assert_array_equal(c, fused_multiply_add(a, b, 1.0))


def test_shape_var_inferred_from_params_without_attrs():
    n = Var("n")
    A, B = Buffer("A", (n, 4), "int32"), Buffer("B", (n, 4), "int32")
    i = Var("i")
    f = PrimFunc("copy", (A, B), loop(i, n * 4, store(B, load(A, i) * 3, i)))
    m = build_llvm([f])
    a = rand_int((5, 4), "int32", -1000, 1000)
    b = poison((5, 4), "int32")
    m(a, b)
    np.testing.assert_array_equal(b, a * 3)


@pytest.mark.parametrize("divisor", [None, 4, 3, -3, 1, -4])
@pytest.mark.parametrize("dtype", ["int32", "int8", "int64"])
def test_floordiv_floormod_negative(divisor, dtype):
    n = 256
    A, B = Buffer("A", (n,), dtype), Buffer("B", (n,), dtype)
    Q, R = Buffer("Q", (n,), dtype), Buffer("R", (n,), dtype)
    i = Var("i")
    d = load(B, i) if divisor is None else IntImm(dtype, divisor)
    body = seq(store(Q, FloorDiv(load(A, i), d), i), store(R, FloorMod(load(A, i), d), i))
    m = build_llvm([PrimFunc("fdm", (A, B, Q, R), loop(i, n, body))])
    a = rand_int(n, dtype, -100, 100)
    b = rand_int(n, dtype, -9, 9)
    b[b == 0] = 5
    q, r = poison(n, dtype), poison(n, dtype)
    m(a, b, q, r)
    ref = b if divisor is None else np.array(divisor, dtype)
    np.testing.assert_array_equal(q, a // ref)
    np.testing.assert_array_equal(r, a % ref)


@pytest.mark.parametrize("divisor", [None, 8, 5])
def test_floordiv_floormod_vector(divisor):
    n, lanes = 64, 8
    A, B = Buffer("A", (n,), "int32"), Buffer("B", (n,), "int32")
    Q, R = Buffer("Q", (n,), "int32"), Buffer("R", (n,), "int32")
    i = Var("i")
    idx = Ramp(i * lanes, const(1), lanes)
    d = load(B, idx) if divisor is None else Broadcast(const(divisor), lanes)
    body = seq(store(Q, FloorDiv(load(A, idx), d), idx), store(R, FloorMod(load(A, idx), d), idx))
    m = build_llvm([PrimFunc("fdmv", (A, B, Q, R), loop(i, n // lanes, body))])
    a = rand_int(n, "int32", -1000, 1000)
    b = rand_int(n, "int32", -13, 13)
    b[b == 0] = -7
    q, r = poison(n, "int32"), poison(n, "int32")
    m(a, b, q, r)
    ref = b if divisor is None else np.int32(divisor)
    np.testing.assert_array_equal(q, a // ref)
    np.testing.assert_array_equal(r, a % ref)


@pytest.mark.parametrize("lanes", [1, 8])
def test_float_min_max_propagate_nan_from_either_side(lanes):
    """As numpy's minimum / maximum and onnxruntime (relu(NaN) was max(NaN, 0) = 0; the ONNX
    fuzzer found it after Sqrt of a negative number)."""
    n = 16
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    LO, HI = Buffer("LO", (n,), "float32"), Buffer("HI", (n,), "float32")
    i = Var("i")
    idx = Ramp(i * lanes, const(1), lanes) if lanes > 1 else i
    a, b = load(A, idx), load(B, idx)
    body = seq(store(LO, Min(a, b), idx), store(HI, Max(a, b), idx))
    m = build_llvm([PrimFunc("mm", (A, B, LO, HI), loop(i, n // lanes, body))])
    av = np.random.default_rng(0).standard_normal(n).astype("float32")
    bv = np.random.default_rng(1).standard_normal(n).astype("float32")
    av[[1, 5]] = np.nan
    bv[[2, 5, 9]] = np.nan
    bv[3], av[4] = np.inf, -np.inf
    lo, hi = poison(n, "float32"), poison(n, "float32")
    lo[:] = hi[:] = 7.0
    m(av, bv, lo, hi)
    np.testing.assert_array_equal(lo, np.minimum(av, bv))
    np.testing.assert_array_equal(hi, np.maximum(av, bv))


def test_float_floordiv_floormod():
    f, _ = elementwise("ffdm", ["float32", "float32"], lambda a, b: FloorMod(a, b) + FloorDiv(a, b))
    m = build_llvm([f])
    a = rng.uniform(-10, 10, 64).astype("float32")
    b = rng.uniform(0.5, 3, 64).astype("float32") * rng.choice([-1, 1], 64).astype("float32")
    c = poison(64, "float32")
    m(a, b, c)
    q = np.floor(a / b)
    np.testing.assert_allclose(c, (a - q * b) + q, rtol=1e-5, atol=1e-5)


def test_division_by_zero_under_select_does_not_trap():
    f, _ = elementwise("safe", ["int32", "int32"],
                       lambda a, b: Select(b != 0, a // b, const(0)))
    m = build_llvm([f])
    a = rand_int(64, "int32", -50, 50)
    b = rand_int(64, "int32", -3, 3)
    c = poison(64, "int32")
    m(a, b, c)
    with np.errstate(divide="ignore"):
        ref = np.where(b != 0, a // np.where(b == 0, 1, b), 0)
    np.testing.assert_array_equal(c, ref)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint32"])
def test_division_by_zero_and_int_min_by_minus_one_give_numpys_results(dtype):
    """x // 0 == x % 0 == 0 and INT_MIN // -1 == INT_MIN (wrapping), as numpy; never a signal."""
    n = 64
    A, B = Buffer("A", (n,), dtype), Buffer("B", (n,), dtype)
    Q, R = Buffer("Q", (n,), dtype), Buffer("R", (n,), dtype)
    i = Var("i")
    body = seq(store(Q, FloorDiv(load(A, i), load(B, i)), i), store(R, FloorMod(load(A, i), load(B, i)), i))
    m = build_llvm([PrimFunc("div0", (A, B, Q, R), loop(i, n, body))])
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    a = rand_int(n, dtype, max(lo, -100), min(hi, 100))
    b = rand_int(n, dtype, max(lo, -5), 5)
    a[:4], b[:4] = [lo, lo, 7, hi], [0, -1 if lo < 0 else 3, 0, 1]
    q, r = poison(n, dtype), poison(n, dtype)
    m(a, b, q, r)
    with np.errstate(divide="ignore", over="ignore"):
        np.testing.assert_array_equal(q, a // b)
        np.testing.assert_array_equal(r, a % b)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32"])
def test_integer_arithmetic_wraps(dtype):
    f, _ = elementwise("wrap", [dtype, dtype], lambda a, b: a * b + a - b, n=512)
    m = build_llvm([f])
    a, b = rand_int(512, dtype), rand_int(512, dtype)
    c = poison(512, dtype)
    m(a, b, c)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(c, a * b + a - b)


def test_cast_float_to_int8_truncates_and_wraps():
    f, _ = elementwise("f2i8", ["float32"], lambda a: Cast("int8", a), out_dtype="int8")
    m = build_llvm([f])
    a = np.array([0.5, -0.5, 1.9, -1.9, 127.9, -128.9, 200.5, -300.7, 1000.2, 255.0, 256.0, -129.0]
                 + list(rng.uniform(-5000, 5000, 52)), dtype="float32")
    c = poison(64, "int8")
    m(a, c)
    # numpy's (and C's on x86) conversion: truncate toward zero through int32, then wrap
    np.testing.assert_array_equal(c, a.astype(np.int32).astype(np.int8))


@pytest.mark.parametrize("src,dst", [("int32", "int8"), ("int8", "int32"), ("uint8", "int32"),
                                     ("int8", "uint16"), ("int32", "float32"), ("uint8", "float32"),
                                     ("float32", "uint8"), ("float32", "float64"),
                                     ("float64", "float32"), ("float32", "int64"),
                                     ("int64", "int32"), ("float16", "float32"),
                                     ("float32", "float16")])
def test_casts_match_numpy(src, dst):
    f, _ = elementwise("cast", [src], lambda a: Cast(dst, a), out_dtype=dst)
    m = build_llvm([f])
    if np.dtype(src).kind == "f":
        hi = 250.0 if dst == "uint8" else 1e4
        a = rng.uniform(0 if dst == "uint8" else -hi, hi, 64).astype(src)
    else:
        a = rand_int(64, src)
    c = poison(64, dst)
    m(a, c)
    np.testing.assert_array_equal(c, a.astype(dst))


def test_bool_casts_and_buffers():
    n = 64
    A = Buffer("A", (n,), "int32")
    M = Buffer("M", (n,), "bool")
    C = Buffer("C", (n,), "int32")
    i = Var("i")
    body = seq(store(M, load(A, i) > 0, i),
               store(C, Cast("int32", load(M, i)) + Cast("int32", Cast("bool", load(A, i))), i))
    m = build_llvm([PrimFunc("boolf", (A, M, C), loop(i, n, body))])
    a = rand_int(n, "int32", -3, 3)
    mask, c = poison(n, "bool"), poison(n, "int32")
    m(a, mask, c)
    np.testing.assert_array_equal(mask, a > 0)
    np.testing.assert_array_equal(c, (a > 0).astype("int32") + (a != 0).astype("int32"))


def test_vectorized_ramp_float32x8():
    n, lanes = 256, 8
    A, B, C = (Buffer(x, (n,), "float32") for x in "ABC")
    i = Var("i")
    idx = Ramp(i * lanes, const(1), lanes)
    value = load(A, idx) * load(B, idx) + Broadcast(const(2.0), lanes)
    assert value.dtype == "float32x8"
    m = build_llvm([PrimFunc("vec8", (A, B, C), loop(i, n // lanes, store(C, value, idx)))])
    assert "load <8 x float>" in m.get_source()
    a, b = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
    c = poison(n, "float32")
    m(a, b, c)
    np.testing.assert_array_equal(c, fused_multiply_add(a, b, 2.0))


def test_gather_stride2_and_scatter():
    n = 64
    A = Buffer("A", (2 * n,), "float32")
    C = Buffer("C", (n,), "float32")
    D = Buffer("D", (2 * n,), "float32")
    i = Var("i")
    lanes = 4
    gather = load(A, Ramp(i * (2 * lanes), const(2), lanes))
    # a non-ramp vector index: reversed order within each group of 4
    rev = Ramp(i * lanes + 3, const(-1), lanes) * Broadcast(const(1), lanes)
    body = seq(store(C, gather, Ramp(i * lanes, const(1), lanes)),
               store(D, load(A, rev), Ramp(i * (2 * lanes) + 1, const(2), lanes)),
               store(D, Broadcast(const(-1.0), lanes), Ramp(i * (2 * lanes), const(2), lanes)))
    m = build_llvm([PrimFunc("gather", (A, C, D), loop(i, n // lanes, body))])
    a = rng.standard_normal(2 * n).astype("float32")
    c, d = poison(n, "float32"), poison(2 * n, "float32")
    m(a, c, d)
    np.testing.assert_array_equal(c, a[0::2])
    np.testing.assert_array_equal(d[1::2], a[:n].reshape(-1, 4)[:, ::-1].ravel())
    np.testing.assert_array_equal(d[0::2], -1.0)


def test_symbolic_stride_ramp():
    n = 32
    s = Var("s")
    A = Buffer("A", (s, n), "int32")
    C = Buffer("C", (n,), "int32")
    i = Var("i")
    body = store(C, load(A, Ramp(i * 4, s * 0 + 1, 4)) + load(A, Ramp(i, s * 0 + n, 4)),
                 Ramp(i * 4, const(1), 4))
    m = build_llvm([PrimFunc("symstride", (A, C), loop(i, n // 4, body))])
    a = rand_int((4, n), "int32", -100, 100)
    c = poison(n, "int32")
    m(a, c)
    flat = a.ravel()
    ref = flat[:n] + np.concatenate([flat[k:k + 4 * n:n] for k in range(n // 4)])
    np.testing.assert_array_equal(c, ref)


def test_dp4a_vs_numpy():
    n = 128
    A, B = Buffer("A", (4 * n,), "int8"), Buffer("B", (4 * n,), "int8")
    C0, C = Buffer("C0", (n,), "int32"), Buffer("C", (n,), "int32")
    i = Var("i")
    va, vb = load(A, Ramp(i * 4, const(1), 4)), load(B, Ramp(i * 4, const(1), 4))
    body = store(C, Call("int32", "dp4a", (va, vb, load(C0, i))), i)
    m = build_llvm([PrimFunc("dp4a", (A, B, C0, C), loop(i, n, body))])
    a, b = rand_int(4 * n, "int8"), rand_int(4 * n, "int8")
    c0 = rand_int(n, "int32", -10**6, 10**6)
    c = poison(n, "int32")
    m(a, b, c0, c)
    ref = c0 + (a.astype(np.int32) * b.astype(np.int32)).reshape(n, 4).sum(1)
    np.testing.assert_array_equal(c, ref)


def test_dp4a_on_int32_words_view():
    """int8 data read as int32 words through a second Buffer on the same pointer."""
    n = 64
    A, B = Buffer("A", (4 * n,), "int8"), Buffer("B", (4 * n,), "int8")
    Aw = Buffer("Aw", (n,), "int32", data=A.data)
    Bw = Buffer("Bw", (n,), "int32", data=B.data)
    C = Buffer("C", (n,), "int32")
    i = Var("i")
    body = store(C, Call("int32", "dp4a", (load(Aw, i), load(Bw, i), const(7))), i)
    m = build_llvm([PrimFunc("dp4a_w", (A, B, C), loop(i, n, body))])
    a, b = rand_int(4 * n, "int8"), rand_int(4 * n, "int8")
    c = poison(n, "int32")
    m(a, b, c)
    np.testing.assert_array_equal(c, 7 + (a.astype(np.int32) * b).reshape(n, 4).sum(1))


def test_reinterpret():
    f, _ = elementwise("reint", ["float32"], lambda a: Call("int32", "reinterpret", (a,)),
                       out_dtype="int32")
    m = build_llvm([f])
    a = rng.standard_normal(64).astype("float32")
    c = poison(64, "int32")
    m(a, c)
    np.testing.assert_array_equal(c, a.view(np.int32))


@pytest.mark.parametrize("op,ref", [("exp", np.exp), ("tanh", np.tanh), ("sqrt", np.sqrt),
                                    ("log", np.log), ("floor", np.floor), ("ceil", np.ceil),
                                    ("fabs", np.fabs), ("sin", np.sin), ("cos", np.cos),
                                    ("round", np.round)])
@pytest.mark.parametrize("lanes", [1, 8])
def test_math_intrinsics(op, ref, lanes):
    n = 64
    A, C = Buffer("A", (n,), "float32"), Buffer("C", (n,), "float32")
    i = Var("i")
    idx = i if lanes == 1 else Ramp(i * lanes, const(1), lanes)
    x = load(A, idx)
    body = store(C, Call(x.dtype, op, (x,)), idx)
    m = build_llvm([PrimFunc("math", (A, C), loop(i, n // lanes, body))])
    special = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 0.49999997]
    a = np.concatenate([special, rng.uniform(-4, 4, n - len(special))]).astype("float32")
    if op in ("sqrt", "log"):
        a = np.abs(a) + np.float32(0.01)
    c = poison(n, "float32")
    m(a, c)
    expect = ref(a)
    if op in ("floor", "ceil", "fabs", "round"):
        np.testing.assert_array_equal(c, expect)
    else:
        np.testing.assert_allclose(c, expect, rtol=2e-6, atol=1e-7)


def test_round_half_to_even():
    f, _ = elementwise("rnd", ["float64"], lambda a: Call("float64", "round", (a,)))
    m = build_llvm([f])
    a = np.resize(np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.4999999999, 1e15 + 0.5]), 64)
    c = poison(64, "float64")
    m(a, c)
    np.testing.assert_array_equal(c, np.round(a))
    np.testing.assert_array_equal(c[:6], [0.0, 2.0, 2.0, -0.0, -2.0, -2.0])


def test_pow_min_max_select_let():
    def value(a, b):
        x = Var("x", "float32")
        return Let(x, Max(a, b), Select(a > b, Call("float32", "pow", (Max(a, const(0.1)), const(2.0))),
                                        Min(x, b) - x))
    f, _ = elementwise("mix", ["float32", "float32"], value)
    m = build_llvm([f])
    a, b = rng.standard_normal(64).astype("float32"), rng.standard_normal(64).astype("float32")
    c = poison(64, "float32")
    m(a, b, c)
    mx = np.maximum(a, b)
    ref = np.where(a > b, np.maximum(a, np.float32(0.1)) ** 2, np.minimum(mx, b) - mx)
    np.testing.assert_allclose(c, ref, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "uint32"])
def test_integer_min_max_compare(dtype):
    def value(a, b):
        return Select((a < b) | (a == b), Max(a, b), Min(a, b)) + Cast(dtype, a >= b)
    f, _ = elementwise("imm", [dtype, dtype], value)
    m = build_llvm([f])
    a, b = rand_int(64, dtype), rand_int(64, dtype)
    b[:8] = a[:8]
    c = poison(64, dtype)
    m(a, b, c)
    with np.errstate(over="ignore"):
        ref = np.where(a <= b, np.maximum(a, b), np.minimum(a, b)) + (a >= b).astype(dtype)
    np.testing.assert_array_equal(c, ref)


def test_if_then_else_stmt_letstmt_unrolled_and_lazy_call():
    n = 40
    A, C = Buffer("A", (n,), "int32"), Buffer("C", (n,), "int32")
    i, j = Var("i"), Var("j")
    t = Var("t")
    # lazy if_then_else guards an out-of-range read at i + 1 == n
    nxt = Call("int32", "if_then_else", (i + 1 < n, load(A, Call("int32", "likely", (i + 1,))), const(0)))
    inner = loop(j, 3, store(C, load(C, i) + j, i), kind="unrolled")
    body = LetStmt(t, load(A, i) * 2, seq(
        IfThenElse(t > 0, store(C, t + nxt, i), store(C, -t, i)),
        inner))
    m = build_llvm([PrimFunc("ctl", (A, C), loop(i, n, body))])
    assert "llvm.loop.unroll.full" in m.get_source()
    a = rand_int(n, "int32", -50, 50)
    c = poison(n, "int32")
    m(a, c)
    nxt_ref = np.append(a[1:], 0)
    ref = np.where(a * 2 > 0, a * 2 + nxt_ref, -a * 2) + 3
    np.testing.assert_array_equal(c, ref)


def test_for_with_nonzero_min_and_vectorized_kind_fallback():
    n = 50
    A, C = Buffer("A", (n,), "float32"), Buffer("C", (n,), "float32")
    i = Var("i")
    body = seq(loop(i, 10, store(C, const(0.0), i), kind="vectorized"),
               loop(i, n - 10, store(C, load(A, i) * 3.0, i), lo=10))
    m = build_llvm([PrimFunc("minloop", (A, C), body)])
    a = rng.standard_normal(n).astype("float32")
    c = poison(n, "float32")
    m(a, c)
    np.testing.assert_array_equal(c, np.where(np.arange(n) < 10, 0, a * np.float32(3.0)))


def test_local_allocate():
    n = 64
    A, C = Buffer("A", (n * 4,), "float32"), Buffer("C", (n,), "float32")
    T = Buffer("T", (4,), "float32", scope="local")
    i, j, k = Var("i"), Var("j"), Var("k")
    body = Allocate(T, seq(
        loop(j, 4, store(T, load(A, i * 4 + j) * 2.0, j)),
        store(C, const(0.0), i),
        loop(k, 4, store(C, load(C, i) + load(T, k), i))))
    m = build_llvm([PrimFunc("local", (A, C), loop(i, n, body))])
    assert "alloca float" in m.get_source()
    a = rng.standard_normal(n * 4).astype("float32")
    c = poison(n, "float32")
    m(a, c)
    t = a.reshape(n, 4) * np.float32(2)
    ref = ((t[:, 0] + t[:, 1]) + t[:, 2]) + t[:, 3]
    np.testing.assert_array_equal(c, ref)


@pytest.mark.parametrize("symbolic", [False, True])
def test_heap_allocate(symbolic):
    # > 1 MB constant size, or a symbolic size: both go through malloc/free
    size = 300_000
    n = SizeVar("n")
    A = Buffer("A", (n,) if symbolic else (size,), "float32")
    C = Buffer("C", (n,) if symbolic else (size,), "float32")
    ext = n if symbolic else const(size)
    T = Buffer("T", (ext,), "float32", scope="global")
    i = Var("i")
    body = Allocate(T, seq(loop(i, ext, store(T, load(A, i) + 1.0, i)),
                           loop(i, ext, store(C, load(T, ext - 1 - i), i))))
    f = PrimFunc("heap", (A, C), body, {"shape_vars": (n,)} if symbolic else {})
    m = build_llvm([f])
    assert "@malloc" in m.get_source()
    a = rng.standard_normal(size).astype("float32")
    c = poison(size, "float32")
    m(a, c)
    np.testing.assert_array_equal(c, (a + np.float32(1))[::-1])


def test_parallel_loop():
    rows, cols = 97, 301
    n = SizeVar("n")
    A = Buffer("A", (n, cols), "float32")
    C = Buffer("C", (n, cols), "float32")
    i, j = Var("i"), Var("j")
    scale = Var("scale", "float32")
    body = LetStmt(scale, const(2.5), loop(i, n, loop(j, cols, store(
        C, load(A, i * cols + j) * scale + Cast("float32", i), i * cols + j)), kind="parallel"))
    m = build_llvm([PrimFunc("par", (A, C), body, {"shape_vars": (n,)})])
    assert "minitvm_parallel_for" in m.get_source()
    ro = np.zeros((2, cols), "float32")
    ro.flags.writeable = False
    with pytest.raises(errors.RuntimeError_, match="read-only"):
        m(np.zeros((2, cols), "float32"), ro)
    for r in (rows, 1, 3):
        a = rng.standard_normal((r, cols)).astype("float32")
        c = poison((r, cols), "float32")
        m(a, c)
        ref = fused_multiply_add(a, 2.5, np.arange(r, dtype="float32")[:, None])
        np.testing.assert_array_equal(c, ref)


def test_nested_parallel_and_parallel_inside_serial_with_local_buffer():
    outer, mid, inner = 6, 33, 16
    A = Buffer("A", (outer * mid * inner,), "int32")
    C = Buffer("C", (outer * mid * inner,), "int32")
    T = Buffer("T", (inner,), "int32", scope="local")
    o, i, j, k = Var("o"), Var("i"), Var("j"), Var("k")
    idx = (o * mid + i) * inner
    body = loop(o, outer, loop(i, mid, Allocate(T, seq(
        loop(j, inner, store(T, load(A, idx + j) + o, j), kind="parallel"),
        loop(k, inner, store(C, load(T, inner - 1 - k) * 2, idx + k)))), kind="parallel"))
    m = build_llvm([PrimFunc("nested", (A, C), body)])
    a = rand_int(outer * mid * inner, "int32", -1000, 1000)
    c = poison(a.shape, "int32")
    m(a, c)
    ref = ((a.reshape(outer, mid, inner) + np.arange(outer)[:, None, None])[:, :, ::-1] * 2).ravel()
    np.testing.assert_array_equal(c, ref)


def test_parallel_uses_several_threads_and_is_deterministic():
    n, work = 64, 4096
    A = Buffer("A", (n * work,), "float32")
    C = Buffer("C", (n,), "float32")
    i, k = Var("i"), Var("k")
    body = loop(i, n, seq(store(C, const(0.0), i),
                          loop(k, work, store(C, load(C, i) + load(A, i * work + k), i))),
                kind="parallel")
    m = build_llvm([PrimFunc("rowsum", (A, C), body)])
    a = rng.standard_normal(n * work).astype("float32")
    c1, c2 = poison(n, "float32"), poison(n, "float32")
    m(a, c1)
    m(a, c2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_allclose(c1, a.reshape(n, work).sum(1), rtol=1e-4, atol=1e-3)


def test_int8_gemm_correct_and_compile_time(capsys):
    M = N = K = 64
    A = Buffer("A", (M, K), "int8")
    B = Buffer("B", (K, N), "int8")
    C = Buffer("C", (M, N), "int32")
    i, j, k = Var("i"), Var("j"), Var("k")
    acc = load(C, i * N + j) + Cast("int32", load(A, i * K + k)) * Cast("int32", load(B, k * N + j))
    body = loop(i, M, loop(j, N, seq(store(C, const(0), i * N + j),
                                     loop(k, K, store(C, acc, i * N + j)))))
    f = PrimFunc("gemm", (A, B, C), body)
    m = build_llvm([f])
    a, b = rand_int((M, K), "int8"), rand_int((K, N), "int8")
    c = poison((M, N), "int32")
    m(a, b, c)
    np.testing.assert_array_equal(c, a.astype(np.int32) @ b.astype(np.int32))

    fA, fB, fC = (Buffer(x, (256, 256), "float32") for x in "ABC")
    facc = load(fC, i * 256 + j) + load(fA, i * 256 + k) * load(fB, k * 256 + j)
    fbody = loop(i, 256, loop(j, 256, seq(store(fC, const(0.0), i * 256 + j),
                                          loop(k, 256, store(fC, facc, i * 256 + j)))))
    report = []
    for name, func in (("int8 gemm 64^3", f), ("float32 gemm 256^3", PrimFunc("sgemm", (fA, fB, fC), fbody))):
        codegen, total = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            src = codegen_llvm([func], *rt.target_info())
            t1 = time.perf_counter()
            rt.LLVMModule(src)
            t2 = time.perf_counter()
            codegen.append(t1 - t0)
            total.append(t2 - t0)
        report.append(f"{name}: codegen {1e3 * min(codegen):.2f} ms, build total min "
                      f"{1e3 * min(total):.1f} ms / median {1e3 * sorted(total)[2]:.1f} ms")
    with capsys.disabled():
        print("\n[llvm compile] " + "; ".join(report))


# ----------------------------------------------------------------------------------------
# arguments and errors
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vadd():
    f, _ = elementwise("vadd16", ["float32", "float32"], lambda a, b: a + b, n=16)
    return build_llvm([f])


def test_ndarray_arguments(vadd):
    a, b = rng.standard_normal(16).astype("float32"), rng.standard_normal(16).astype("float32")
    na, nb, nc = minitvm.nd.array(a), minitvm.nd.array(b), minitvm.nd.empty((16,), "float32")
    vadd(na, nb, nc)
    np.testing.assert_array_equal(nc.numpy(), a + b)
    r = vadd.time_evaluator("vadd16", number=5, repeat=2)(na, nb, nc)
    assert len(r.results) == 2 and r.mean > 0


def test_argument_errors(vadd):
    a = np.zeros(16, "float32")
    with pytest.raises(errors.DtypeError, match="dtype float32"):
        vadd(a, np.zeros(16, "float64"), a.copy())
    with pytest.raises(errors.ShapeError, match="shape"):
        vadd(a, np.zeros(15, "float32"), a.copy())
    with pytest.raises(errors.ShapeError, match="takes 3 arguments"):
        vadd(a, a)
    with pytest.raises(errors.RuntimeError_, match="C-contiguous"):
        vadd(a, np.zeros(32, "float32")[::2], a.copy())
    ro = np.zeros(16, "float32")
    ro.flags.writeable = False
    with pytest.raises(errors.RuntimeError_, match="read-only"):
        vadd(a, a, ro)
    vadd(ro, ro, a)  # read-only inputs are fine
    with pytest.raises(errors.RuntimeError_, match="no function"):
        vadd.run("nope", [a, a, a])
    gpu_array = NDArray((16,), "float32", minitvm.cuda(0))
    with pytest.raises(errors.RuntimeError_, match="CPU"):
        vadd(a, gpu_array, a.copy())


def test_thread_extent_raises():
    A = Buffer("A", (32,), "float32")
    tx = Var("threadIdx.x")
    body = AttrStmt(tx, "thread_extent", const(32), store(A, const(1.0), tx))
    with pytest.raises(errors.CodegenError, match="build it for target cuda"):
        build_llvm([PrimFunc("gpu_kernel", (A,), body)])


def test_unknown_attr_is_ignored():
    A = Buffer("A", (4,), "int32")
    i = Var("i")
    body = AttrStmt(A, "pragma_whatever", const(1), loop(i, 4, store(A, i, i)))
    m = build_llvm([PrimFunc("attr", (A,), body)])
    a = poison(4, "int32")
    m(a)
    np.testing.assert_array_equal(a, np.arange(4))


def test_codegen_errors():
    A = Buffer("A", (4,), "float32")
    i = Var("i")
    with pytest.raises(errors.CodegenError, match="frobnicate"):
        bad = Call("float32", "frobnicate", (load(A, i),))
        build_llvm([PrimFunc("bad", (A,), loop(i, 4, store(A, bad, i)))])
    ghost = Var("ghost")
    with pytest.raises(errors.CodegenError, match="ghost"):
        build_llvm([PrimFunc("bad2", (A,), store(A, const(0.0), ghost))])
    with pytest.raises(errors.CodegenError, match="one flat index"):
        build_llvm([PrimFunc("bad3", (A,), BufferStore(A, const(0.0), (const(0), const(1))))])
    T = Buffer("T", (4,), "float32")
    with pytest.raises(errors.CodegenError, match="'T'"):
        build_llvm([PrimFunc("bad4", (A,), store(A, load(T, const(0)), const(0)))])
    with pytest.raises(errors.CodegenError, match="needs float"):
        B = Buffer("B", (4,), "int32")
        build_llvm([PrimFunc("bad5", (B,), store(B, Call("int32", "exp", (load(B, const(0)),)), const(0)))])


def test_multiple_functions_in_one_module():
    f1, _ = elementwise("add1", ["int32"], lambda a: a + 1, n=8)
    f2, _ = elementwise("neg", ["int32"], lambda a: -a, n=8)
    m = build_llvm([f1, f2])
    a = rand_int(8, "int32", -9, 9)
    c = poison(8, "int32")
    m["add1"](a, c)
    np.testing.assert_array_equal(c, a + 1)
    m.get_function("neg")(a, c)
    np.testing.assert_array_equal(c, -a)
    with pytest.raises(errors.CodegenError, match="two functions"):
        build_llvm([f1, f1])


def test_target_string_options():
    f, _ = elementwise("o1", ["int32"], lambda a: a * 2, n=8)
    m = build_llvm([f], "llvm -opt-level=1")
    a = rand_int(8, "int32", -9, 9)
    c = poison(8, "int32")
    m(a, c)
    np.testing.assert_array_equal(c, a * 2)
    with pytest.raises(errors.BuildError, match="unknown option"):
        build_llvm([f], "llvm -frob=1")
    with pytest.raises(errors.BuildError, match="not an LLVM"):
        build_llvm([f], "cuda")


def test_build_error_shows_ir_excerpt():
    with pytest.raises(errors.BuildError, match="store i32"):
        rt.compile_ir("define i32 @f(ptr %p) {\nentry:\n"
                      "  store i32 %undefined_value, ptr %p\n  ret i32 0\n}\n")


def test_parallel_loop_with_offset_min_and_int64_counter():
    n = 100
    A, C = Buffer("A", (n,), "int64"), Buffer("C", (n,), "int64")
    i = Var("i", "int64")
    body = loop(i, IntImm("int64", n - 5), store(C, load(A, i) * IntImm("int64", 3), i),
                kind="parallel", lo=IntImm("int64", 5))
    m = build_llvm([PrimFunc("par64", (A, C), body)])
    a = rand_int(n, "int64", -10**12, 10**12)
    c = poison(n, "int64")
    m(a, c)
    np.testing.assert_array_equal(c[5:], a[5:] * 3)
    np.testing.assert_array_equal(c[:5], poison(5, "int64"))


@pytest.fixture(scope="module")
def floor_kernels():
    out = {}
    for dtype in ("int8", "int32"):
        A, B = Buffer("A", (1,), dtype), Buffer("B", (1,), dtype)
        Q, R = Buffer("Q", (1,), dtype), Buffer("R", (1,), dtype)
        z = const(0)
        body = seq(store(Q, FloorDiv(load(A, z), load(B, z)), z),
                   store(R, FloorMod(load(A, z), load(B, z)), z))
        out[dtype] = build_llvm([PrimFunc("fdm1", (A, B, Q, R), body)])
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["int8", "int32"]))
def test_floordiv_floormod_property(floor_kernels, data, dtype):
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    a = data.draw(st.integers(lo, hi))
    b = data.draw(st.integers(lo, hi).filter(lambda v: v != 0 and not (a == lo and v == -1)))
    q, r = poison(1, dtype), poison(1, dtype)
    floor_kernels[dtype](np.array([a], dtype), np.array([b], dtype), q, r)
    assert (int(q[0]), int(r[0])) == (a // b, a % b)
