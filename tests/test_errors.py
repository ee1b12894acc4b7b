"""Bad argument values are minitvm errors that name the argument (and still ValueErrors)."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import ArgumentError, MiniTVMError


def _kernel():
    A = te.placeholder((4,), "float32", "A")
    B = te.compute((4,), lambda i: A[i] * 2, name="B")
    return minitvm.build(te.create_schedule(B.op), [A, B], "llvm")


def test_time_evaluator_with_no_runs_is_refused():
    f = _kernel()
    a, b = (minitvm.nd.array(np.ones(4, np.float32)) for _ in range(2))
    with pytest.raises(ArgumentError, match="number and repeat must be at least 1"):
        f.time_evaluator(f.entry_name, number=0)(a, b)


def test_an_unknown_calibration_mode_is_refused():
    from minitvm.graph.quantize import qconfig
    with pytest.raises(MiniTVMError, match="calibrate_mode='bogus' must be one of"):
        with qconfig(calibrate_mode="bogus"):
            pass


def test_benchmark_with_no_runs_is_refused():
    from minitvm.graph import Graph
    from minitvm.graph.build import build
    g = Graph("one")
    x = g.add_input("x", (4,), "float32")
    g.mark_output(g.add_op("relu", [x], name="r"))
    model = build(g, "llvm")
    model.run({"x": np.ones(4, np.float32)})
    with pytest.raises(ArgumentError, match="benchmark: number must be at least 1, got 0"):
        model.benchmark(number=0)
    assert issubclass(ArgumentError, ValueError)


def test_a_fractional_split_factor_is_refused_at_the_split_naming_the_stage():
    from minitvm.errors import ScheduleError
    A = te.placeholder((8,), "float32", "A")
    B = te.compute((8,), lambda i: A[i] + 1, name="B")
    s = te.create_schedule(B.op)
    with pytest.raises(ScheduleError, match=r"split of B\.i: factor must be an integer, got 2\.5"):
        s[B].split(B.op.axis[0], factor=2.5)


def test_a_bad_minitvm_num_threads_is_refused_naming_the_variable(monkeypatch):
    from minitvm.runtime import llvm
    monkeypatch.setitem(llvm._pool_state, "threads", None)
    monkeypatch.setenv("MINITVM_NUM_THREADS", "four")
    with pytest.raises(ArgumentError, match="MINITVM_NUM_THREADS='four'"):
        llvm.num_threads()
    monkeypatch.setenv("MINITVM_NUM_THREADS", "0")
    with pytest.raises(ArgumentError, match="MINITVM_NUM_THREADS='0'"):
        llvm.num_threads()
