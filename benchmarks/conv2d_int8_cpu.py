"""int8 conv2d on the CPU: the x86 dot-product template against minitvm fp32 on the same shapes.

For a few ResNet-18 / ResNet-50 layers (batch 1, 224x224 model) it prints the median time, GOPS
(2 * MACs / time) and the speed-up over minitvm's fp32 packed convolution measured in the same
run, for:

* ``fp32``: ``conv2d_NCHWc.x86`` (what the graph runs: NCHW16c with AVX-512, 16 floats a
  vector); ``fp32 avx2``: the same built for AVX2 (NCHW8c, ``-mattr=-avx512f``), the peer of the
  ``avx2`` int8 row (a CPU with AVX2 only);
* ``int8 dp4a``: the generic int8 template (``conv2d_NCHWc_int8`` with ``dp4a``, NCHW4c);
* ``x86 <path>``: ``conv2d_NCHWc_int8_x86`` with ``dot_u8s8`` on data laid out as the graph lays
  it out (``NCHW[L]c``, ``NCHW4c`` for the 4-channel image), once per lowering this CPU has
  (``vnni512``: vpdpbusd zmm, ``vnni256``: vpdpbusd ymm, ``avx2``: vpmaddubsw + vpmaddwd, the
  int8 activations offset to uint8 and the per-channel correction included in the time;
  ``avx2 i16``: ``dot_i16``, int16 weights, one vpmaddwd per 16 products, what the graph uses on
  a CPU without VNNI).

Inputs are already packed (layout transforms are not timed). Every int8 result is checked
against numpy before timing.

    python benchmarks/conv2d_int8_cpu.py [--repeat N] [--layers NAME,...]
"""
import argparse
import warnings
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minitvm  # noqa: E402
from minitvm import te  # noqa: E402
from minitvm.codegen.llvm_x86 import path_for  # noqa: E402
from minitvm.runtime.cpu_features import cpu_features  # noqa: E402
from minitvm.target import Target  # noqa: E402
from minitvm.topi import testing  # noqa: E402
from minitvm.topi.cpu import conv2d as cpu_conv  # noqa: E402
from minitvm.topi.cpu.conv2d_int8 import conv2d_NCHWc_int8_x86, schedule_conv2d_NCHWc_int8_x86  # noqa: E402
from minitvm.topi.cpu.conv2d_nchwc import conv2d_NCHWc_x86  # noqa: E402
from minitvm.topi.nn.conv2d import conv2d_NCHWc_int8  # noqa: E402

LAYERS = [  # name, C, H, O, K, stride, pad (square, batch 1)
    ("r18.conv1", 4, 224, 64, 7, 2, 3),     # 3 input channels padded to 4
    ("r18.res2", 64, 56, 64, 3, 1, 1),
    ("r18.res3", 128, 28, 128, 3, 1, 1),
    ("r18.res4", 256, 14, 256, 3, 1, 1),
    ("r18.res5", 512, 7, 512, 3, 1, 1),
    ("r50.res2_1x1", 64, 56, 256, 1, 1, 0),
    ("r50.res4_1x1", 1024, 14, 256, 1, 1, 0),
]
PATH_MATTR = {"vnni512": "", "vnni256": "-avx512vnni", "avx2": "-avxvnni,-avx512vnni"}


def _time(fn, args, repeat):
    fn(*args)
    number = 1
    while True:   # at least ~50 ms per sample
        t0 = time.perf_counter()
        for _ in range(number):
            fn(*args)
        if time.perf_counter() - t0 > 0.05:
            break
        number *= 2
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn(*args)
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


def _fp32(C, H, O, K, st, pd, block, target):
    ib, ob = min(C, block), min(O, block)
    s, (X, W, Y) = conv2d_NCHWc_x86((1, C // ib, H, H, ib), (O // ob, C // ib, K, K, ib, ob), st, pd, cfg={})
    mod = minitvm.build(s, [X, W, Y], target)
    return mod, [np.random.rand(*[int(d.value) for d in t.shape]).astype("float32") for t in (X, W)], Y


def _dp4a(C, H, O, K, st, pd):
    X = te.placeholder((1, C // 4, H, H, 4), "int8", "X")
    W = te.placeholder((O // 4, C // 4, K, K, 4, 4), "int8", "W")
    Y = conv2d_NCHWc_int8(X, W, st, pd)
    return minitvm.build(cpu_conv.schedule_conv2d_NCHWc_int8(Y), [X, W, Y], "llvm"), Y


def _x86(C, H, O, K, st, pd, target, lanes, block, depth):
    X = te.placeholder((1, C // block, H, H, block), "int8", "X")
    W = te.placeholder((O // lanes, C // depth, K, K, lanes, depth), "int8" if depth == 4 else "int16", "W")
    Y = conv2d_NCHWc_int8_x86(X, W, st, pd)
    return minitvm.build(schedule_conv2d_NCHWc_int8_x86(Y), [X, W, Y], target), Y


def _unpack(y):
    n, ob, h, w, lanes = y.shape
    return y.transpose(0, 1, 4, 2, 3).reshape(n, ob * lanes, h, w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    args = ap.parse_args()
    warnings.simplefilter("ignore", minitvm.autotune.FallbackConfigWarning)   # default configs, on purpose
    host = cpu_features()
    paths = [p for p in PATH_MATTR if path_for(Target(f"llvm -mattr={PATH_MATTR[p]}" if PATH_MATTR[p]
                                                      else "llvm").features, 16 if p == "vnni512" else 8) == p
             and {"vnni512": "avx512vnni", "vnni256": "avxvnni", "avx2": "avx2"}[p] in host]
    print(f"host features: {sorted(host)}; x86 lowerings measured: {paths}; median of {args.repeat}")
    print(f"{'layer':14s} {'variant':12s} {'ms':>8s} {'GOPS':>7s} {'vs fp32':>8s}")
    rng = np.random.default_rng(0)
    wanted = set(filter(None, args.layers.split(",")))
    for name, C, H, O, K, st, pd in LAYERS:
        if wanted and name not in wanted:
            continue
        OH = (H + 2 * pd - K) // st + 1
        ops = 2 * O * OH * OH * C * K * K
        t32 = {}
        for label, block, tgt in (("fp32", 16, "llvm"), ("fp32 avx2", 8, "llvm -mattr=-avx512f")):
            if label == "fp32 avx2" and "avx2" not in paths:
                continue
            mod, ins, Y = _fp32(C, H, O, K, st, pd, block, tgt)
            y = np.zeros([int(d.value) for d in Y.shape], "float32")
            t32[block] = t = _time(mod, ins + [y], args.repeat)
            print(f"{name:14s} {label:12s} {t * 1e3:8.3f} {ops / t / 1e9:7.1f} {t32[16] / t:8.2f}")
        x = rng.integers(-128, 128, (1, C, H, H), dtype=np.int8)
        w = rng.integers(-128, 128, (O, C, K, K), dtype=np.int8)
        ref = testing.conv2d_nchw(x, w, st, pd, 1, 1)
        variants = [("int8 dp4a", 4, 4, 4, lambda: _dp4a(C, H, O, K, st, pd))]
        for p in paths:
            lanes = 16 if p == "vnni512" else 8
            block = lanes if C % lanes == 0 else 4      # the data as the graph lays it out
            tgt = Target(f"llvm -mattr={PATH_MATTR[p]}" if PATH_MATTR[p] else "llvm")
            for depth in (4, 2) if p == "avx2" else (4,):
                label = f"x86 {p}" + (" i16" if depth == 2 else "")
                variants.append((label, lanes, block, depth,
                                 lambda t=tgt, n=lanes, b=block, d=depth: _x86(C, H, O, K, st, pd, t, n, b, d)))
        for label, lanes, block, depth, make in variants:
            mod, Y = make()
            xp = testing.pack_nchwc(x, block)
            wp = w.reshape(O // lanes, lanes, C // depth, depth, K, K).transpose(0, 2, 4, 5, 1, 3)
            wp = np.ascontiguousarray(wp.astype(np.int16 if depth == 2 else np.int8))
            y = np.full([int(d.value) for d in Y.shape], -99, np.int32)
            mod(xp, wp, y)
            if not np.array_equal(_unpack(y), ref):
                raise SystemExit(f"{name} {label}: result differs from numpy")
            t = _time(mod, [xp, wp, y], args.repeat)
            peer = f"  ({t32[8] / t:.2f}x fp32 avx2)" if label.startswith("x86 avx2") else ""
            print(f"{name:14s} {label:12s} {t * 1e3:8.3f} {ops / t / 1e9:7.1f} {t32[16] / t:8.2f}{peer}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
