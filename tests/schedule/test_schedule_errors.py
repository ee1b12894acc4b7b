"""Misuse of schedule primitives raises ScheduleError / LoweringError naming the stage and axis."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import LoweringError, ScheduleError
from minitvm.testing import build_run


@pytest.fixture
def mm():
    """C = A @ B (reduction over k), D = C + 1."""
    a = te.placeholder((16, 8), name="A")
    b = te.placeholder((8, 12), name="B")
    k = te.reduce_axis((0, 8), name="k")
    c = te.compute((16, 12), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    d = te.compute((16, 12), lambda i, j: c[i, j] + 1.0, name="D")
    return a, b, c, d, k


def test_split_an_axis_twice(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    i = c.op.axis[0]
    s[c].split(i, factor=4)
    with pytest.raises(ScheduleError) as exc:
        s[c].split(i, factor=2)
    msg = str(exc.value)
    assert "stage C" in msg and "axis i" in msg and "already split" in msg


def test_axis_of_another_stage(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError) as exc:
        s[d].split(c.op.axis[1], factor=4)
    msg = str(exc.value)
    assert "stage D" in msg and "axis j" in msg and "belongs to stage C" in msg


def test_reduce_axis_of_another_stage(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="stage D.*axis k.*stage C"):
        s[d].reorder(k, d.op.axis[0])


def test_axis_not_in_schedule(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    stray = te.reduce_axis((0, 4), name="stray")
    with pytest.raises(ScheduleError, match="stage C.*stray"):
        s[c].unroll(stray)


def test_split_needs_exactly_one_of_factor_nparts(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="C.i"):
        s[c].split(c.op.axis[0])
    with pytest.raises(ScheduleError, match="C.i"):
        s[c].split(c.op.axis[0], factor=2, nparts=2)
    with pytest.raises(ScheduleError, match="C.i.*factor"):
        s[c].split(c.op.axis[0], factor=0)


@pytest.mark.parametrize("scope", ["foo", "register", "Local"])
def test_unknown_scope(mm, scope):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match=f"stage C.*{scope}"):
        s[c].set_scope(scope)
    with pytest.raises(ScheduleError, match=f"A.*{scope}"):
        s.cache_read(a, scope, [c])
    with pytest.raises(ScheduleError, match=f"C.*{scope}"):
        s.cache_write(c, scope)


def test_bind_of_non_thread_axis(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError) as exc:
        s[d].bind(d.op.axis[0], d.op.axis[1])
    assert "stage D" in str(exc.value) and "thread_axis" in str(exc.value)


def test_bind_of_reduce_axis(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="stage C.*reduction axis k"):
        s[c].bind(k, te.thread_axis("threadIdx.x"))


def test_bind_same_thread_tag_twice(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    s[d].bind(d.op.axis[0], te.thread_axis("threadIdx.x"))
    with pytest.raises(ScheduleError, match="stage D.*threadIdx.x.*axis i"):
        s[d].bind(d.op.axis[1], te.thread_axis("threadIdx.x"))


def test_annotating_a_bound_axis(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    s[d].bind(d.op.axis[0], te.thread_axis("blockIdx.x"))
    with pytest.raises(ScheduleError, match="stage D.*axis i.*blockIdx.x"):
        s[d].vectorize(d.op.axis[0])


def test_fuse_of_non_adjacent_axes(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    i, j = c.op.axis
    with pytest.raises(ScheduleError) as exc:
        s[c].fuse(i, k)                            # i, j, k: i and k are not neighbours
    msg = str(exc.value)
    assert "stage C" in msg and "i" in msg and "k" in msg and "adjacent" in msg


def test_fuse_in_wrong_order(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    i, j = d.op.axis
    with pytest.raises(ScheduleError, match="stage D.*j and i.*adjacent"):
        s[d].fuse(j, i)


def test_fuse_data_with_reduce_axis(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="stage C.*j.*k"):
        s[c].fuse(c.op.axis[1], k)


def test_vectorize_of_reduce_axis(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError) as exc:
        s[c].vectorize(k)
    assert "stage C" in str(exc.value) and "k is a reduction axis" in str(exc.value)


def test_parallel_of_reduce_axis(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    ko, ki = s[c].split(k, factor=2)
    with pytest.raises(ScheduleError, match="stage C.*k.outer is a reduction axis"):
        s[c].parallel(ko)


def test_reorder_with_repeated_axis(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    i, j = d.op.axis
    with pytest.raises(ScheduleError, match="stage D"):
        s[d].reorder(i, j, i)


def test_unknown_pragma(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="stage D.*'unroll_everything'"):
        s[d].pragma(d.op.axis[0], "unroll_everything", 4)


def test_primitives_on_a_placeholder(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="A.*placeholder"):
        s[a].compute_inline()
    with pytest.raises(ScheduleError, match="placeholder"):
        te.create_schedule(a.op)


def test_compute_at_onto_itself_and_cycles(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="C"):
        s[c].compute_at(s[c], c.op.axis[0])
    with pytest.raises(ScheduleError, match="compute_at of C.*axis i.*belongs to stage D"):
        s[c].compute_at(s[c], d.op.axis[0])


def test_compute_at_of_output(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="D.*output"):
        s[d].compute_at(s[c], c.op.axis[0])


def test_compute_at_onto_loop_not_enclosing_readers(mm):
    """C computed inside D's j loop while a second reader E runs in its own loop nest."""
    a, b, c, d, k = mm
    e = te.compute((16, 12), lambda i, j: c[i, j] * d[i, j], name="E")
    s = te.create_schedule(e.op)
    s[c].compute_at(s[d], d.op.axis[1])
    with pytest.raises(LoweringError) as exc:
        minitvm.lower(s, [a, b, e])
    msg = str(exc.value)
    assert "stage C" in msg and "D.j" in msg and "E reads it outside" in msg


def test_compute_at_onto_axis_later_split_raises(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    i = d.op.axis[0]
    s[c].compute_at(s[d], i)
    s[d].split(i, factor=4)                        # the attach point is no longer a loop
    with pytest.raises((LoweringError, ScheduleError), match="i"):
        minitvm.lower(s, [a, b, d])


def test_stage_of_unknown_tensor(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(c.op)
    with pytest.raises(ScheduleError, match="D"):
        s[d]


def test_cache_read_by_a_stage_that_does_not_read(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(ScheduleError, match="A.*stage D does not read it"):
        s.cache_read(a, "local", [d])


def test_lower_argument_errors(mm):
    a, b, c, d, k = mm
    s = te.create_schedule(d.op)
    with pytest.raises(LoweringError, match="output D"):
        minitvm.lower(s, [a, b])
    with pytest.raises(LoweringError, match="input B"):
        minitvm.lower(s, [a, d])
    with pytest.raises(LoweringError, match="A.*twice"):
        minitvm.lower(s, [a, a, b, d])


# ---------------------------------------------------------------------------------- #17 R4, R5
def _scale(n):
    a = te.placeholder((n,), name="A")
    return a, te.compute((n,), lambda i: a[i] * 2.0, name="B")


def test_vectorize_past_the_lane_limit_names_stage_and_axis():
    """R4: 65,536 lanes made LLVM abort the process (an assertion in SelectionDAG)."""
    a, b = _scale(65536)
    s = te.create_schedule(b.op)
    s[b].vectorize(b.op.axis[0])
    with pytest.raises(ScheduleError, match=r"stage B, axis i: vectorize of 65536 lanes; minitvm vectorizes "
                                            r"up to 1024 \(split the axis and vectorize the inner part\)"):
        minitvm.build(s, [a, b], "llvm")


def test_unroll_past_the_limit_names_stage_and_axis():
    """R5: a million iterations ran for minutes in LLVM's unroller."""
    a, b = _scale(1_000_000)
    s = te.create_schedule(b.op)
    s[b].unroll(b.op.axis[0])
    with pytest.raises(ScheduleError, match=r"stage B, axis i: unroll of 1000000 iterations; minitvm unrolls "
                                            r"up to 4096"):
        minitvm.lower(s, [a, b])


def test_the_limits_apply_to_the_extent_after_bound_inference():
    """A big axis computed at a loop covers a small region there: that region is what counts."""
    a = te.placeholder((64, 4096), name="A")
    b = te.compute((64, 4096), lambda i, j: a[i, j] * 2.0, name="B")
    c = te.compute((64, 4096), lambda i, j: b[i, j] + 1.0, name="C")
    s = te.create_schedule(c.op)
    jo, ji = s[c].split(c.op.axis[1], factor=64)
    s[b].compute_at(s[c], jo)
    s[b].vectorize(b.op.axis[1])        # 4096 at root, 64 lanes where it is computed
    s[b].unroll(b.op.axis[0])
    rng = np.random.default_rng(0)
    av = rng.standard_normal((64, 4096)).astype("float32")
    np.testing.assert_allclose(build_run(s, [a, c], av), av * 2 + 1, rtol=1e-6)


@pytest.mark.parametrize("value, message", [
    (10 ** 6, r"pragma auto_unroll_max_step on stage B, axis i: 1000000 steps; minitvm unrolls up to 4096"),
    (-1, r"pragma auto_unroll_max_step on stage B, axis i: expected a non-negative int, got -1"),
    ("many", r"expected a non-negative int, got 'many'")])
def test_auto_unroll_pragma_is_checked_when_set(value, message):
    a, b = _scale(64)
    s = te.create_schedule(b.op)
    with pytest.raises(ScheduleError, match=message):
        s[b].pragma(b.op.axis[0], "auto_unroll_max_step", value)
