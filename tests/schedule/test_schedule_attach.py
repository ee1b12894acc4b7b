"""Placement and storage primitives: compute_at, compute_inline, compute_root, cache_read,
cache_write, set_scope, storage_align — each run against numpy."""
import re

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.testing import build_run, rand


def lowered(s, args):
    return str(minitvm.lower(s, args, simple_mode=True))


def allocations(text):
    """{buffer name: (dtype, size expression, scope)} of every ``allocate`` line."""
    return {m.group(1): (m.group(2), m.group(3), m.group(4))
            for m in re.finditer(r"allocate (\S+)\[(\w+) \* ([^\]]+)\], storage_scope = (\S+)", text)}


def three_stage_chain(n=20, m=18):
    """B = 2A, C = B + 1, D = C * C."""
    a = te.placeholder((n, m), name="A")
    b = te.compute((n, m), lambda i, j: a[i, j] * 2.0, name="B")
    c = te.compute((n, m), lambda i, j: b[i, j] + 1.0, name="C")
    d = te.compute((n, m), lambda i, j: c[i, j] * c[i, j], name="D")
    return a, b, c, d


def check_chain(s, a, d, seed=0):
    rng = np.random.default_rng(seed)
    av = rand(rng, [int(x.value) for x in a.shape])
    np.testing.assert_allclose(build_run(s, [a, d], av), (av * 2 + 1) ** 2, rtol=1e-6)


# ----------------------------------------------------------------------------------------
# compute_at
# ----------------------------------------------------------------------------------------
def test_default_schedule_realizes_intermediates_at_root():
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    text = lowered(s, [a, d])
    allocs = allocations(text)
    assert allocs["B"] == ("float32", "360", "global") and allocs["C"] == ("float32", "360", "global")
    check_chain(s, a, d)


@pytest.mark.parametrize("level", ["outer_row", "row", "element"])
def test_compute_at_levels(level):
    """Producer C at D's i.outer (4 rows), at i (one row), at j (one element)."""
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    i, j = d.op.axis
    if level == "outer_row":
        io, ii = s[d].split(i, factor=4)
        s[c].compute_at(s[d], io)
        size = "72"
    elif level == "row":
        s[c].compute_at(s[d], i)
        size = "18"
    else:
        s[c].compute_at(s[d], j)
        size = "1"
    text = lowered(s, [a, d])
    assert allocations(text)["C"][1] == size
    check_chain(s, a, d)


def test_compute_at_non_divisible_outer_loop_region():
    """i split by 6 (20 = 3*6 + 2): the last tile of C must not be computed out of bounds."""
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    io, ii = s[d].split(d.op.axis[0], factor=6)
    s[c].compute_at(s[d], io)
    s[b].compute_at(s[c], c.op.axis[1])
    check_chain(s, a, d, seed=1)


def test_compute_at_two_producers_nested():
    """B at C's row loop, C at D's tile loop: a producer attached inside an attached producer."""
    a, b, c, d = three_stage_chain(24, 16)
    s = te.create_schedule(d.op)
    io, jo, ii, ji = s[d].tile(d.op.axis[0], d.op.axis[1], 8, 8)
    s[c].compute_at(s[d], jo)
    s[b].compute_at(s[c], c.op.axis[0])
    text = lowered(s, [a, d])
    allocs = allocations(text)
    assert allocs["C"][1] == "64" and allocs["B"][1] == "8"
    check_chain(s, a, d, seed=2)


def test_compute_at_stencil_needs_halo():
    """C reads B[i-1..i+1]: computed per row of C, B's region is 3 rows (clamped at the borders)."""
    rng = np.random.default_rng(3)
    n, m = 12, 10
    a = te.placeholder((n, m), name="A")
    b = te.compute((n, m), lambda i, j: a[i, j] * 2.0, name="B")
    c = te.compute((n - 2, m), lambda i, j: b[i, j] + b[i + 1, j] + b[i + 2, j], name="C")
    s = te.create_schedule(c.op)
    s[b].compute_at(s[c], c.op.axis[0])
    assert allocations(lowered(s, [a, c]))["B"][1] == "30"
    av = rand(rng, (n, m))
    bv = av * 2
    np.testing.assert_allclose(build_run(s, [a, c], av), bv[:-2] + bv[1:-1] + bv[2:], rtol=1e-6)


def test_compute_at_inside_reduction_loop():
    """A producer computed per reduction step (a cache of one slice of the input)."""
    rng = np.random.default_rng(4)
    a = te.placeholder((16, 32), name="A")
    sq = te.compute((16, 32), lambda i, k: a[i, k] * a[i, k], name="sq")
    k = te.reduce_axis((0, 32), name="k")
    out = te.compute((16,), lambda i: te.sum(sq[i, k], axis=k), name="out")
    s = te.create_schedule(out.op)
    ko, ki = s[out].split(k, factor=8)
    s[sq].compute_at(s[out], ko)
    assert allocations(lowered(s, [a, out]))["sq"][1] == "8"
    av = rand(rng, (16, 32))
    np.testing.assert_allclose(build_run(s, [a, out], av), (av * av).sum(axis=1), rtol=1e-5)


def test_compute_at_onto_loop_not_enclosing_all_readers_raises():
    a, b, c, d = three_stage_chain()
    e = te.compute(c.shape, lambda i, j: c[i, j] - 1.0, name="E")
    f = te.compute(c.shape, lambda i, j: d[i, j] + e[i, j], name="F")
    s = te.create_schedule(f.op)
    s[c].compute_at(s[d], d.op.axis[1])          # but E reads C too, outside D's loops
    with pytest.raises(minitvm.errors.LoweringError) as exc:
        minitvm.lower(s, [a, f])
    msg = str(exc.value)
    assert "C" in msg and "D.j" in msg and "E" in msg


# ----------------------------------------------------------------------------------------
# compute_inline, compute_root
# ----------------------------------------------------------------------------------------
def test_compute_inline_chain():
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    s[b].compute_inline()
    s[c].compute_inline()
    text = lowered(s, [a, d])
    assert "allocate" not in text
    assert "(((A[((i * 18) + j)] * 2.0f) + 1.0f) * ((A[((i * 18) + j)] * 2.0f) + 1.0f))" in text
    check_chain(s, a, d)


def test_compute_inline_middle_of_chain_only():
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    s[c].compute_inline()
    allocs = allocations(lowered(s, [a, d]))
    assert "B" in allocs and "C" not in allocs
    check_chain(s, a, d)


def test_compute_inline_with_index_remapping():
    """An inlined transpose + shift feeding a reduction."""
    rng = np.random.default_rng(5)
    a = te.placeholder((8, 12), name="A")
    t = te.compute((12, 8), lambda i, j: a[j, i] + 1.0, name="T")
    k = te.reduce_axis((0, 8), name="k")
    out = te.compute((12,), lambda i: te.sum(t[i, k], axis=k), name="out")
    s = te.create_schedule(out.op)
    s[t].compute_inline()
    av = rand(rng, (8, 12))
    np.testing.assert_allclose(build_run(s, [a, out], av), (av.T + 1).sum(axis=1), rtol=1e-5)


def test_compute_inline_of_reduction_raises():
    rng_a = te.placeholder((4, 4), name="A")
    k = te.reduce_axis((0, 4), name="k")
    r = te.compute((4,), lambda i: te.sum(rng_a[i, k], axis=k), name="R")
    out = te.compute((4,), lambda i: r[i] * 2.0, name="out")
    s = te.create_schedule(out.op)
    with pytest.raises(minitvm.errors.ScheduleError, match="R"):
        s[r].compute_inline()


def test_compute_inline_of_output_raises():
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    with pytest.raises(minitvm.errors.ScheduleError, match="D"):
        s[d].compute_inline()


def test_compute_root_undoes_compute_at_and_inline():
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    s[c].compute_at(s[d], d.op.axis[0])
    s[b].compute_inline()
    s[c].compute_root()
    s[b].compute_root()
    allocs = allocations(lowered(s, [a, d]))
    assert allocs["B"][1] == "360" and allocs["C"][1] == "360"
    check_chain(s, a, d)


# ----------------------------------------------------------------------------------------
# cache_read, cache_write, set_scope
# ----------------------------------------------------------------------------------------
def matmul(n=24, m=20, kk=16, dtype="float32"):
    a = te.placeholder((n, kk), dtype, name="A")
    b = te.placeholder((kk, m), dtype, name="B")
    k = te.reduce_axis((0, kk), name="k")
    c = te.compute((n, m), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return a, b, c, k


def check_matmul(s, a, b, c, seed=0):
    rng = np.random.default_rng(seed)
    av = rand(rng, [int(x.value) for x in a.shape])
    bv = rand(rng, [int(x.value) for x in b.shape])
    np.testing.assert_allclose(build_run(s, [a, b, c], av, bv), av @ bv, rtol=1e-5, atol=1e-5)


def test_cache_read_at_reduction_tile():
    a, b, c, k = matmul()
    s = te.create_schedule(c.op)
    aa = s.cache_read(a, "local", [c])
    bb = s.cache_read(b, "local", [c])
    assert aa.name == "A.local" and bb.name == "B.local"
    xo, yo, xi, yi = s[c].tile(c.op.axis[0], c.op.axis[1], 8, 4)
    ko, ki = s[c].split(k, factor=4)
    s[c].reorder(xo, yo, ko, xi, ki, yi)
    s[aa].compute_at(s[c], ko)
    s[bb].compute_at(s[c], ko)
    allocs = allocations(lowered(s, [a, b, c]))
    assert allocs["A.local"] == ("float32", "32", "local")
    assert allocs["B.local"] == ("float32", "16", "local")
    check_matmul(s, a, b, c)


def test_cache_read_at_root_is_a_full_copy():
    a, b, c, k = matmul()
    s = te.create_schedule(c.op)
    s.cache_read(b, "global", [c])
    assert allocations(lowered(s, [a, b, c]))["B.global"][1] == "320"
    check_matmul(s, a, b, c)


def test_cache_read_shared_by_two_readers():
    rng = np.random.default_rng(6)
    a = te.placeholder((10, 10), name="A")
    b = te.compute((10, 10), lambda i, j: a[i, j] + 1.0, name="B")
    c = te.compute((10, 10), lambda i, j: a[j, i] * b[i, j], name="C")
    s = te.create_schedule(c.op)
    aa = s.cache_read(a, "local", [b, c])
    av = rand(rng, (10, 10))
    np.testing.assert_allclose(build_run(s, [a, c], av), av.T * (av + 1), rtol=1e-6)
    assert "A.local" in lowered(s, [a, c])
    assert aa.op.input_tensors == [a]


def test_cache_write_reduction_with_compute_at_and_vectorize():
    a, b, c, k = matmul()
    s = te.create_schedule(c.op)
    cl = s.cache_write(c, "local")
    xo, yo, xi, yi = s[c].tile(c.op.axis[0], c.op.axis[1], 8, 4)
    s[cl].compute_at(s[c], yo)
    ii, jj = s[cl].op.axis
    (kk,) = s[cl].op.reduce_axis
    ko, ki = s[cl].split(kk, factor=4)
    s[cl].reorder(ko, ki, ii, jj)
    s[cl].vectorize(jj)
    text = lowered(s, [a, b, c])
    assert allocations(text)["C.local"] == ("float32", "32", "local")
    assert "C.local[ramp(" in text
    check_matmul(s, a, b, c)


def test_cache_write_at_root():
    a, b, c, k = matmul(13, 11, 7)
    s = te.create_schedule(c.op)
    s.cache_write(c, "global")
    check_matmul(s, a, b, c, seed=1)


def test_cache_write_elementwise_int8():
    rng = np.random.default_rng(7)
    a = te.placeholder((9, 17), "int8", name="A")
    b = te.compute((9, 17), lambda i, j: a[i, j] * 3 - 1, name="B")
    s = te.create_schedule(b.op)
    bl = s.cache_write(b, "local")
    s[bl].compute_at(s[b], b.op.axis[0])
    av = rand(rng, (9, 17), "int8")
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(build_run(s, [a, b], av), av * np.int8(3) - np.int8(1))


def test_cache_write_after_split_raises():
    a, b, c, k = matmul()
    s = te.create_schedule(c.op)
    s[c].split(c.op.axis[0], factor=4)
    with pytest.raises(minitvm.errors.ScheduleError, match="C"):
        s.cache_write(c, "local")


def test_set_scope_local_intermediate():
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    s[c].set_scope("local")
    s[c].compute_at(s[d], d.op.axis[0])
    assert allocations(lowered(s, [a, d]))["C"] == ("float32", "18", "local")
    check_chain(s, a, d)


def test_set_scope_on_output_raises():
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    with pytest.raises(minitvm.errors.ScheduleError, match="D"):
        s[d].set_scope("local")


# ----------------------------------------------------------------------------------------
# storage_align
# ----------------------------------------------------------------------------------------
def test_storage_align_pads_row_stride():
    """Rows of 18 floats padded to a stride of 33 (33 % 32 == 1): 20 * 33 = 660 elements."""
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    s[c].storage_align(c.op.axis[0], 32, 1)
    text = lowered(s, [a, d])
    assert allocations(text)["C"] == ("float32", "660", "global")
    assert "C[((i * 33) + j)]" in text
    check_chain(s, a, d)


def test_storage_align_with_compute_at():
    a, b, c, d = three_stage_chain(24, 16)
    s = te.create_schedule(d.op)
    io, ii = s[d].split(d.op.axis[0], factor=4)
    s[c].compute_at(s[d], io)
    s[c].storage_align(c.op.axis[0], 8, 4)         # stride 16 -> 20 (20 % 8 == 4); 4 rows -> 80
    text = lowered(s, [a, d])
    assert allocations(text)["C"][1] == "80"
    check_chain(s, a, d, seed=3)


def test_storage_align_factor_already_satisfied():
    a, b, c, d = three_stage_chain(4, 16)
    s = te.create_schedule(d.op)
    s[c].storage_align(c.op.axis[0], 16, 0)        # 16 % 16 == 0 already: no padding
    assert allocations(lowered(s, [a, d]))["C"][1] == "64"
    check_chain(s, a, d)


def test_storage_align_bad_arguments():
    a, b, c, d = three_stage_chain()
    s = te.create_schedule(d.op)
    with pytest.raises(minitvm.errors.ScheduleError, match="C"):
        s[c].storage_align(c.op.axis[0], 8, 8)
    with pytest.raises(minitvm.errors.ScheduleError, match="C"):
        s[c].storage_align(d.op.axis[0], 8, 1)


# ----------------------------------------------------------------------------------------
# bound inference of a stencil under a non-divisible split
# ----------------------------------------------------------------------------------------
def stencil(n):
    """c[i] = b[i] + b[i+1] + b[i+2], with b = 2a computed per tile of c."""
    a = te.placeholder((n,), name="a")
    b = te.compute((n,), lambda i: a[i] * 2.0, name="b")
    c = te.compute((n - 2,), lambda i: b[i] + b[i + 1] + b[i + 2], name="c")
    return a, b, c


@pytest.mark.parametrize("n,factor", [(102, 3), (102, 4), (50, 7)])
def test_stencil_compute_at_tile_is_correct(n, factor):
    rng = np.random.default_rng(20)
    a, b, c = stencil(n)
    s = te.create_schedule(c.op)
    io, ii = s[c].split(c.op.axis[0], factor=factor)
    s[b].compute_at(s[c], io)
    av = rand(rng, n)
    bv = av * 2
    np.testing.assert_allclose(build_run(s, [a, c], av), bv[:-2] + bv[1:-1] + bv[2:], rtol=1e-6)


def test_stencil_compute_at_divisible_tile_allocates_halo_only():
    a, b, c = stencil(102)                       # 100 outputs, 4 per tile: 6 inputs per tile
    s = te.create_schedule(c.op)
    io, ii = s[c].split(c.op.axis[0], factor=4)
    s[b].compute_at(s[c], io)
    assert allocations(lowered(s, [a, c]))["b"][1] == "6"


def test_stencil_compute_at_non_divisible_tile_allocates_halo_only():
    a, b, c = stencil(102)                       # 100 outputs, 3 per tile (34 tiles, last one partial)
    s = te.create_schedule(c.op)
    io, ii = s[c].split(c.op.axis[0], factor=3)
    s[b].compute_at(s[c], io)
    assert allocations(lowered(s, [a, c]))["b"][1] == "5"


def test_stencil_compute_at_symbolic_length():
    rng = np.random.default_rng(21)
    n = te.size_var("n")
    a = te.placeholder((n,), name="a")
    b = te.compute((n,), lambda i: a[i] * 2.0, name="b")
    c = te.compute((n - 2,), lambda i: b[i] + b[i + 1] + b[i + 2], name="c")
    s = te.create_schedule(c.op)
    io, ii = s[c].split(c.op.axis[0], factor=4)
    s[b].compute_at(s[c], io)
    f = minitvm.build(s, [a, c])
    for length in (3, 11, 16):
        av = rand(rng, length)
        cv = np.full(length - 2, np.nan, "float32")
        f(av, cv)
        bv = av * 2
        np.testing.assert_allclose(cv, bv[:-2] + bv[1:-1] + bv[2:], rtol=1e-6)


def test_compute_at_inside_parallel_loop():
    """Each thread of the parallel loop gets its own copy of the attached buffer."""
    rng = np.random.default_rng(22)
    n, m = 64, 128
    a = te.placeholder((n, m), name="A")
    b = te.compute((n, m), lambda i, j: a[i, j] * 2.0, name="B")
    c = te.compute((n, m), lambda i, j: b[i, j] + b[i, m - 1 - j], name="C")
    s = te.create_schedule(c.op)
    s[c].parallel(c.op.axis[0])
    s[b].compute_at(s[c], c.op.axis[0])
    av = rand(rng, (n, m))
    for _ in range(5):
        np.testing.assert_allclose(build_run(s, [a, c], av), av * 2 + (av * 2)[:, ::-1], rtol=1e-6)
