"""Tuning on the GPU: the int8 conv template end to end, and a kernel fault the runner survives."""
import numpy as np
import pytest

import minitvm
from minitvm import autotune, nd, te
from minitvm.autotune import MeasureErrorNo as E
from minitvm.runtime import cuda

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]

# ResNet-50 layer1 3x3 conv at a reduced width: N=1 C=64 H=W=56 O=64 K=3 s=1 p=1
CONV_ARGS = ((1, 16, 56, 56, 4), (16, 16, 3, 3, 4, 4), 1, 1)


def test_tune_conv2d_int8_then_apply_history_best_bit_exact(tmp_path):
    from minitvm.topi.cuda.conv2d_int8 import conv2d_NCHWc_int8_cuda, reference
    task = autotune.Task("conv2d_NCHWc_int8.cuda", CONV_ARGS)
    log = tmp_path / "conv.log"
    tuner = autotune.RandomTuner(task, seed=0)
    with autotune.measure_option(
            autotune.LocalBuilder(timeout=60),
            autotune.LocalRunner(number=2, repeat=2, min_repeat_ms=5, timeout=30, check_correctness=True)) as opt:
        tuner.tune(20, opt, callbacks=[autotune.log_to_file(log)])
    recs = autotune.load_records(log)
    assert len(recs) == 20
    assert not [r for _, r in recs if r.error_no == E.WRONG_ANSWER], "a candidate computed a wrong result"
    ok = [(inp, r) for inp, r in recs if r.ok]
    assert ok, [r.error_msg for _, r in recs]
    assert recs[0][0].target.startswith("cuda -arch=sm_")

    with autotune.ApplyHistoryBest(log) as ctx:
        best = ctx.query("cuda", task.workload)
        s, tensors = conv2d_NCHWc_int8_cuda(*CONV_ARGS)
    assert best == tuner.best_config
    mod = minitvm.build(s, tensors, "cuda")
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, CONV_ARGS[0], dtype=np.int64).astype(np.int8)
    w = rng.integers(-128, 128, CONV_ARGS[1], dtype=np.int64).astype(np.int8)
    (want,) = reference([x, w], *task.args)
    dev = nd.cuda(0)
    y = nd.array(np.full(want.shape, -7, np.int32), dev)
    mod(nd.array(x, dev), nd.array(w, dev), y)
    np.testing.assert_array_equal(y.numpy(), want)


@autotune.template("test.gpu_fault.cuda")
def gpu_fault(cfg, n):
    """``B = A * 2`` on the GPU; knob ``mode="fault"`` reads up to 8 GiB past A (an illegal address).

    The faulting read sits under an always-true condition, so the static bounds check (which
    refuses a read proven out of bounds) lets it through to the device."""
    cfg.define_knob("mode", ["ok", "fault", "ok_again"])
    A = te.placeholder((n,), "float32", "A")
    if cfg["mode"].val == "fault":
        B = te.compute((n,), lambda i: te.if_then_else(i >= 0, A[i * (1 << 19)], 0.0) * 2.0, name="B")
    else:
        B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = te.create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=64)
    s[B].bind(bx, te.thread_axis("blockIdx.x"))
    s[B].bind(tx, te.thread_axis("threadIdx.x"))
    return s, [A, B]


def test_runner_survives_an_illegal_address():
    task = autotune.Task("test.gpu_fault.cuda", (4096,))
    seen = []
    with autotune.measure_option(autotune.LocalBuilder(n_parallel=1, timeout=60),
                                 autotune.LocalRunner(number=1, repeat=1, timeout=30)) as opt:
        autotune.GridSearchTuner(task).tune(3, opt, callbacks=[lambda t, i, r: seen.extend(r)])
        restarts = opt.runner.restarts
    assert [r.error_no for r in seen] == [E.NO_ERROR, E.RUNTIME_DEVICE, E.NO_ERROR], [r.error_msg for r in seen]
    assert restarts == 1   # the dead context's process was replaced
