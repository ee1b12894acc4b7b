"""minitvm.lower / minitvm.build: argument checking, targets, the built module's interface."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import BuildError, DtypeError, LoweringError, MiniTVMError, RuntimeError_, ShapeError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scaled():
    """B = 2 * A on a 4x8 float32 tensor, built once for the module."""
    a = te.placeholder((4, 8), name="A")
    b = te.compute((4, 8), lambda i, j: a[i, j] * 2.0, name="B")
    s = te.create_schedule(b.op)
    return a, b, s, minitvm.build(s, [a, b], target="llvm")


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, 8)).astype("float32"), np.full((4, 8), np.nan, "float32")


def test_build_and_call_with_numpy(scaled, arrays):
    a, b, s, f = scaled
    av, bv = arrays
    f(av, bv)
    np.testing.assert_array_equal(bv, av * 2)


def test_call_with_ndarrays(scaled, arrays):
    a, b, s, f = scaled
    av, _ = arrays
    x = minitvm.nd.array(av)
    y = minitvm.nd.empty((4, 8), "float32")
    f(x, y)
    np.testing.assert_array_equal(y.numpy(), av * 2)
    assert y.device == minitvm.cpu(0)


def test_wrong_dtype(scaled, arrays):
    a, b, s, f = scaled
    av, bv = arrays
    with pytest.raises(DtypeError) as exc:
        f(av.astype("float64"), bv)
    msg = str(exc.value)
    assert "A" in msg and "float32" in msg and "float64" in msg


def test_wrong_shape(scaled, arrays):
    a, b, s, f = scaled
    av, bv = arrays
    with pytest.raises(ShapeError, match=r"A.*\(4, 8\).*\(4, 9\)"):
        f(np.ones((4, 9), "float32"), bv)
    with pytest.raises(ShapeError, match="B.*2 dimensions"):
        f(av, np.ones((32,), "float32"))


def test_wrong_argument_count(scaled, arrays):
    a, b, s, f = scaled
    av, bv = arrays
    with pytest.raises(ShapeError, match="2 arguments.*got 1"):
        f(av)
    with pytest.raises(ShapeError, match="2 arguments.*got 3"):
        f(av, bv, bv)


def test_non_array_argument(scaled, arrays):
    a, b, s, f = scaled
    _, bv = arrays
    with pytest.raises(DtypeError, match="A.*list"):
        f([[1.0] * 8] * 4, bv)


def test_non_contiguous_argument(scaled, arrays):
    a, b, s, f = scaled
    _, bv = arrays
    with pytest.raises(RuntimeError_, match="A.*contiguous"):
        f(np.ones((8, 4), "float32").T, bv)


def test_read_only_output(scaled, arrays):
    a, b, s, f = scaled
    av, bv = arrays
    bv.flags.writeable = False
    with pytest.raises(RuntimeError_, match="B.*read-only"):
        f(av, bv)


def test_errors_share_a_base_class(scaled, arrays):
    a, b, s, f = scaled
    av, bv = arrays
    with pytest.raises(MiniTVMError):
        f(av.astype("int32"), bv)


def test_missing_output_in_args(scaled):
    a, b, s, f = scaled
    with pytest.raises(LoweringError, match="output B"):
        minitvm.build(s, [a], target="llvm")


def test_missing_input_in_args(scaled):
    a, b, s, f = scaled
    with pytest.raises(LoweringError, match="input A"):
        minitvm.build(s, [b], target="llvm")


def test_non_tensor_and_duplicate_args(scaled):
    a, b, s, f = scaled
    with pytest.raises(LoweringError, match="argument 1"):
        minitvm.build(s, [a, "B"], target="llvm")
    with pytest.raises(LoweringError, match="B.*twice"):
        minitvm.build(s, [a, b, b], target="llvm")


def test_no_args_at_all(scaled):
    a, b, s, f = scaled
    with pytest.raises(BuildError, match="argument tensors"):
        minitvm.build(s, target="llvm")


def test_argument_order_is_the_callers(arrays):
    """Arguments may list the output first: the function takes them in that order."""
    a = te.placeholder((4, 8), name="A")
    b = te.compute((4, 8), lambda i, j: a[i, j] - 1.0, name="B")
    f = minitvm.build(te.create_schedule(b.op), [b, a])
    av, bv = arrays
    f(bv, av)
    np.testing.assert_array_equal(bv, av - 1)


@pytest.mark.parametrize("target", ["opencl", "vulkan", "", "llvmx"])
def test_unknown_target(scaled, target):
    a, b, s, f = scaled
    with pytest.raises(BuildError, match="target"):
        minitvm.build(s, [a, b], target=target)


def test_bad_target_option(scaled):
    a, b, s, f = scaled
    with pytest.raises(BuildError, match="opt-level"):
        minitvm.build(s, [a, b], target="llvm -opt-level=5")
    with pytest.raises(BuildError, match="-frobnicate"):
        minitvm.build(s, [a, b], target="llvm -frobnicate=1")


def test_unknown_cpu_raises_instead_of_aborting():
    code = textwrap.dedent("""
        import minitvm
        from minitvm import te
        a = te.placeholder((4,), name="A")
        b = te.compute((4,), lambda i: a[i] + 1.0, name="B")
        try:
            minitvm.build(te.create_schedule(b.op), [a, b], target="llvm -mcpu=not-a-cpu")
        except minitvm.errors.BuildError as e:
            print("BuildError:", e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BuildError: " in proc.stdout and "not-a-cpu" in proc.stdout


def test_opt_level_zero_still_correct(arrays):
    a = te.placeholder((4, 8), name="A")
    b = te.compute((4, 8), lambda i, j: a[i, j] * 3.0, name="B")
    f = minitvm.build(te.create_schedule(b.op), [a, b], target="llvm -opt-level=0")
    av, bv = arrays
    f(av, bv)
    np.testing.assert_array_equal(bv, av * 3)


def test_get_source_is_llvm_ir(scaled):
    a, b, s, f = scaled
    src = f.get_source()
    assert isinstance(src, str)
    assert "define " in src and "@" in src and "target triple" in src
    assert "ret i32 0" in src or "ret i32" in src


def test_get_source_assembly(scaled):
    a, b, s, f = scaled
    asm = f.get_source("asm")
    assert ".text" in asm or ".globl" in asm


def test_build_from_lowered_primfunc(arrays):
    """The two halves of build: lower (schedule -> PrimFunc), then codegen + JIT of the PrimFunc."""
    a = te.placeholder((4, 8), name="A")
    b = te.compute((4, 8), lambda i, j: a[i, j] + 5.0, name="B")
    func = minitvm.lower(te.create_schedule(b.op), [a, b], name="add5")
    mod = minitvm.build(func, target="llvm")
    assert mod.entry_name == "add5"
    av, bv = arrays
    mod["add5"](av, bv)
    np.testing.assert_array_equal(bv, av + 5)
    with pytest.raises(RuntimeError_, match="nope"):
        mod["nope"]


def test_build_several_primfuncs_into_one_module(arrays):
    a = te.placeholder((4, 8), name="A")
    add = te.compute((4, 8), lambda i, j: a[i, j] + 1.0, name="add")
    mul = te.compute((4, 8), lambda i, j: a[i, j] * 4.0, name="mul")
    f1 = minitvm.lower(te.create_schedule(add.op), [a, add], name="f_add")
    f2 = minitvm.lower(te.create_schedule(mul.op), [a, mul], name="f_mul")
    mod = minitvm.build([f1, f2], target="llvm")
    av, bv = arrays
    mod["f_add"](av, bv)
    np.testing.assert_array_equal(bv, av + 1)
    mod.get_function("f_mul")(av, bv)
    np.testing.assert_array_equal(bv, av * 4)


def test_lower_rejects_non_schedule():
    a = te.placeholder((4,), name="A")
    with pytest.raises(LoweringError, match="schedule"):
        minitvm.lower(a, [a])
    b = te.compute((4,), lambda i: a[i] + 1.0, name="B")
    with pytest.raises(LoweringError, match="list"):
        minitvm.lower(te.create_schedule(b.op), a)


def test_time_evaluator_returns_positive_mean(scaled, arrays):
    a, b, s, f = scaled
    av, bv = arrays
    timer = f.time_evaluator(f.entry_name, number=5, repeat=3)
    res = timer(av, bv)
    assert len(res.results) == 3
    assert res.mean > 0 and res.median > 0 and res.min > 0
    assert res.min <= res.mean
    np.testing.assert_array_equal(bv, av * 2)       # it really ran the function


def test_time_evaluator_min_repeat_ms(scaled, arrays):
    a, b, s, f = scaled
    res = f.time_evaluator(number=1, repeat=1, min_repeat_ms=5)(*arrays)
    assert 0 < res.mean < 5e-3                        # seconds per call; many calls fill 5 ms


def test_time_evaluator_bad_arguments(scaled):
    a, b, s, f = scaled
    with pytest.raises(RuntimeError_, match="nope"):
        f.time_evaluator("nope")
    with pytest.raises(ValueError):
        f.time_evaluator(f.entry_name, number=0)


def test_symbolic_dim_mismatch_between_arguments():
    n = te.size_var("n")
    a = te.placeholder((n,), name="A")
    b = te.compute((n,), lambda i: a[i] * 2.0, name="B")
    f = minitvm.build(te.create_schedule(b.op), [a, b])
    with pytest.raises(ShapeError, match="n.*already bound"):
        f(np.ones(5, "float32"), np.ones(6, "float32"))
    out = np.full(5, np.nan, "float32")
    f(np.arange(5, dtype="float32"), out)
    np.testing.assert_array_equal(out, np.arange(5) * 2)
