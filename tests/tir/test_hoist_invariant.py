"""Loop-invariant index terms (``tir.transform.hoist_invariant``): the part of an index sum that
does not change in a serial loop is bound to a variable before it, and the results stay exact."""
import numpy as np

import minitvm
from minitvm import te
from minitvm.tir import expr as E
from minitvm.tir.functor import collect_vars
from minitvm.tir.stmt import AttrStmt, Buffer, BufferStore, For, LetStmt
from minitvm.tir.transform.hoist_invariant import hoist_invariant_terms


def _buffer(name, n):
    return Buffer(name, (n,), "int32", data=E.Var(name, "handle"))


def _thread(tag, extent):
    return E.IterVar(E.Range(E.const(0), E.const(extent)), E.Var(tag), E.THREAD_INDEX, tag)


def test_pixel_part_of_a_copy_address_leaves_the_k_loop():
    A, B = _buffer("A", 4096), _buffer("B", 64)
    tx, k = _thread("threadIdx.x", 32), E.Var("k")
    # B[tx] = A[(tx // 4) * 448 + (tx % 4) * 16 + k * 64]: one pixel per thread, k-th tap
    index = (E.FloorDiv(tx.var, E.const(4)) * E.const(448) + E.FloorMod(tx.var, E.const(4)) * E.const(16)
             + k * E.const(64))
    loop = For(k, E.const(0), E.const(7), "serial", BufferStore(B, E.BufferLoad(A, (index,)), (tx.var,)))
    out = hoist_invariant_terms(AttrStmt(tx, "thread_extent", E.const(32), loop))
    let = out.body
    assert isinstance(let, LetStmt) and isinstance(let.body, For)
    assert collect_vars(let.value) == {tx.var}
    store = let.body.body
    assert str(store.value.indices[0]) == f"({let.var.name} + (k * 64))"


def test_thread_index_bound_inside_the_loop_still_moves_within_a_kernel():
    A, B = _buffer("A", 4096), _buffer("B", 64)
    bx, tx, k = _thread("blockIdx.x", 4), _thread("threadIdx.x", 32), E.Var("k")
    store = BufferStore(B, E.BufferLoad(A, (bx.var * E.const(512) + tx.var * E.const(8) + k,)), (tx.var,))
    loop = For(k, E.const(0), E.const(8), "serial", AttrStmt(tx, "thread_extent", E.const(32), store))
    out = hoist_invariant_terms(AttrStmt(bx, "thread_extent", E.const(4), loop))
    assert isinstance(out.body, LetStmt) and collect_vars(out.body.value) == {bx.var, tx.var}


def test_virtual_thread_index_stays_inside_its_attribute():
    A, B = _buffer("A", 4096), _buffer("B", 64)
    bx, vx, k = _thread("blockIdx.x", 4), _thread("vthread", 2), E.Var("k")
    store = BufferStore(B, E.BufferLoad(A, (bx.var * E.const(512) + vx.var * E.const(64) + k,)), (vx.var,))
    loop = For(k, E.const(0), E.const(8), "serial", AttrStmt(vx, "thread_extent", E.const(2), store))
    out = hoist_invariant_terms(AttrStmt(bx, "thread_extent", E.const(4), loop))
    hoisted = out.body
    while isinstance(hoisted, LetStmt):
        assert vx.var not in collect_vars(hoisted.value)
        hoisted = hoisted.body
    assert isinstance(hoisted, For)


def test_virtual_thread_index_is_not_hoisted_out_of_a_loop_inside_its_attribute():
    A, B = _buffer("A", 4096), _buffer("B", 64)
    bx, vx, k = _thread("blockIdx.x", 4), _thread("vthread", 2), E.Var("k")
    block = E.FloorDiv(bx.var, E.const(2)) * E.const(512) + E.FloorMod(bx.var, E.const(2)) * E.const(16)
    store = BufferStore(B, E.BufferLoad(A, (block + vx.var * E.const(64) + k,)), (vx.var,))
    loop = For(k, E.const(0), E.const(8), "serial", store)
    out = hoist_invariant_terms(AttrStmt(bx, "thread_extent", E.const(4),
                                         AttrStmt(vx, "thread_extent", E.const(2), loop)))
    let = out.body.body
    # only the block part moves; the loop stays one statement the vthread pass can look into
    assert isinstance(let, LetStmt) and collect_vars(let.value) == {bx.var}


def test_a_term_of_an_expression_let_stays_inside_the_let():
    A, B = _buffer("A", 4096), _buffer("B", 64)
    i, k, v = E.Var("i"), E.Var("k"), E.Var("v")
    # B[i] = A[let v = i // 3 in v * 7 + i * 5 + k]: v * 7 does not use k, but v exists only
    # inside the let
    index = E.Let(v, E.FloorDiv(i, E.const(3)), v * E.const(7) + i * E.const(5) + k)
    loop = For(k, E.const(0), E.const(8), "serial", BufferStore(B, E.BufferLoad(A, (index,)), (i,)))
    out = hoist_invariant_terms(loop)
    assert not isinstance(out, LetStmt) or v not in collect_vars(out.value)


def test_loads_and_single_variables_stay_where_they_are():
    A, B, C = _buffer("A", 4096), _buffer("B", 64), _buffer("C", 64)
    i, k = E.Var("i"), E.Var("k")
    # the index holds a load (not pure) and the loop var: nothing worth hoisting
    store = BufferStore(B, E.BufferLoad(A, (E.BufferLoad(C, (i,)) + k,)), (i,))
    inner = For(k, E.const(0), E.const(8), "serial", store)
    assert hoist_invariant_terms(inner) is inner
    # a lone variable plus the loop var: nothing to save
    inner = For(k, E.const(0), E.const(8), "serial", BufferStore(B, E.BufferLoad(A, (i + k,)), (i,)))
    assert hoist_invariant_terms(inner) is inner


def test_reduction_with_hoisted_row_offsets_is_exact_on_the_cpu():
    n, m = 12, 40
    A = te.placeholder((n // 3, m), "int32", "A")
    k = te.reduce_axis((0, m), "k")
    B = te.compute((n,), lambda i: te.sum(A[i // 3, k], axis=k), name="B")
    s = te.create_schedule(B.op)
    text = str(minitvm.lower(s, [A, B]).body)
    assert "inv0 = ((i // 3) * 40)" in text and text.index("inv0 = ") < text.index("for (k")
    f = minitvm.build(s, [A, B], "llvm")
    a = np.random.default_rng(0).integers(-1000, 1000, (n // 3, m)).astype(np.int32)
    b = minitvm.nd.array(np.full(n, -7, np.int32))
    f(minitvm.nd.array(a), b)
    np.testing.assert_array_equal(b.numpy(), np.repeat(a.sum(axis=1), 3))
