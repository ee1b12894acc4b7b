"""Tune the int8 conv2d CUDA template on one ResNet-50 layer and compare default and tuned time.

The layer is ResNet-50's layer1 3x3 convolution (N=1, C=64, H=W=56, O=64, K=3, stride 1, pad 1)
in the packed layouts NCHW4c (data) and OIHW4o4i (weights), computed with ``dp4a``. The genetic
tuner builds candidates in parallel (NVRTC, no GPU needed) and times them in one runner process
that holds the CUDA context; each candidate's output is checked bit-exactly against numpy.

    PYTHONPATH=. python3 examples/tune_conv2d_int8.py                  # 64 trials
    PYTHONPATH=. python3 examples/tune_conv2d_int8.py --trials 200 --batch 16 --log conv.log

Without a usable GPU it says it skipped and exits with status 77 (the "skipped" status of
automake and meson test harnesses), never 0.
"""
import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np

SKIPPED = 77   # exit status when no GPU is usable: the test harnesses' "skipped"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minitvm  # noqa: E402
from minitvm import autotune, nd  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402
from minitvm.topi.cuda.conv2d_int8 import conv2d_NCHWc_int8_cuda, reference  # noqa: E402


def build_and_time(args, x, w, want):
    """Build the template under the current dispatch context, check it bit-exactly, time it."""
    s, tensors = conv2d_NCHWc_int8_cuda(*args)
    mod = minitvm.build(s, tensors, "cuda")
    dev = nd.cuda(0)
    tx, tw = nd.array(x, dev), nd.array(w, dev)
    ty = nd.array(np.full(want.shape, -7, np.int32), dev)
    mod(tx, tw, ty)
    np.testing.assert_array_equal(ty.numpy(), want)
    return mod.time_evaluator(mod.entry_name, number=20, repeat=5, min_repeat_ms=20)(tx, tw, ty).median


def main():
    p = argparse.ArgumentParser(description="tune the int8 conv2d CUDA template on one ResNet-50 layer")
    p.add_argument("--trials", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--log", default=None, help="tuning log (default: a temporary file)")
    p.add_argument("--n-parallel", type=int, default=None, help="build processes (default: CPUs)")
    a = p.parse_args()
    if cuda.device_count() == 0:
        print(f"skipped: this example needs an NVIDIA GPU, and none is usable here ({cuda.unavailable_reason()})",
              file=sys.stderr)
        return SKIPPED
    N, C, H, O, K = a.batch, 64, 56, 64, 3
    args = ((N, C // 4, H, H, 4), (O // 4, C // 4, K, K, 4, 4), 1, 1)
    task = autotune.Task("conv2d_NCHWc_int8.cuda", args)
    log = a.log or os.path.join(tempfile.mkdtemp(prefix="minitvm-"), "conv2d_int8.log")
    ops = 2.0 * N * O * H * H * C * K * K
    print(f"int8 conv2d N={N} C={C} H=W={H} O={O} K={K} on {cuda.device_name(0)}: "
          f"{len(task.config_space):.3g} configs in the space; {a.trials} trials; log {log}")

    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, args[0], dtype=np.int64).astype(np.int8)
    w = rng.integers(-128, 128, args[1], dtype=np.int64).astype(np.int8)
    (want,) = reference([x, w], *task.args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", autotune.FallbackConfigWarning)
        with autotune.FallbackContext(use_tophub=False):   # the template's own default
            t_default = build_and_time(args, x, w, want)

    tuner = autotune.GATuner(task, seed=0)
    with autotune.measure_option(
            builder=autotune.LocalBuilder(n_parallel=a.n_parallel, timeout=30),
            runner=autotune.LocalRunner(number=2, repeat=3, min_repeat_ms=10, timeout=20,
                                        check_correctness=True)) as option:
        t0 = time.perf_counter()
        tuner.tune(a.trials, option, callbacks=[autotune.progress_bar(a.trials, si_prefix="T"),
                                                autotune.log_to_file(log)])
        elapsed = time.perf_counter() - t0

    with autotune.ApplyHistoryBest(log) as ctx:
        best = ctx.lookup("cuda", task.workload)
        if best is None:
            print("no candidate ran successfully; see the log for the errors", file=sys.stderr)
            return 1
        t_tuned = build_and_time(args, x, w, want)
    print(f"\n{tuner.trials} trials in {elapsed:.1f} s: {tuner.trials / elapsed:.2f} trials/s, "
          f"{tuner.n_errors} failed")
    print(f"best config: {best}")
    print(f"{'default config':16s} {t_default * 1e6:9.1f} us {ops / t_default / 1e12:7.2f} TOPS")
    print(f"{'tuned config':16s} {t_tuned * 1e6:9.1f} us {ops / t_tuned / 1e12:7.2f} TOPS   "
          f"({t_default / t_tuned:.2f}x, bit-exact)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
