"""int8 conv2d on the GPU, per seed-model layer: the dp4a template (NCHW4c / OIHW4o4i) and the
tensor-core template (implicit GEMM, NHWC / OHWI, ``mma.sync``); default configs, or the best of
a tuning log (``--tuning-log``; layers missing from it use the default).

For each distinct layer: minitvm time, TOPS, % of the template's instruction peak (dp4a or int8
``mma.sync``) measured in this run by a microkernel, and torch's fp32 and fp16 cuDNN convolution
(fp16 in channels-last) on the same shape, same run. Each minitvm result is checked exactly
against torch's float64 convolution of the same int8 data.

    PYTHONPATH=. python3 benchmarks/conv2d_int8.py [--batch 16] [--model resnet50|...|all] [--layers N]
        [--template dp4a|tensorcore] [--tuning-log LOG]

The configs shipped in ``minitvm/autotune/tophub`` apply where no log answers; set
``MINITVM_TOPHUB=0`` to time the templates' own defaults.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import minitvm  # noqa: E402
from minitvm import nd, te  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402
from minitvm.topi.cuda.conv2d_int8 import schedule_conv2d_NCHWc_int8  # noqa: E402
from minitvm.topi.nn.conv2d import conv2d_NCHWc_int8  # noqa: E402
from minitvm.topi import workloads  # noqa: E402
from minitvm.topi.workloads import unique  # noqa: E402

MODELS = {"resnet50": workloads.resnet50_convs, "vgg19": workloads.vgg19_convs,
          "inception_v3": workloads.inception_v3_convs, "resnext50": workloads.resnext50_convs,
          "drn_c26": workloads.drn_c26_convs}


def build_conv(w, cfg=None):
    """Module and packed shapes for workload ``w`` (channels padded to multiples of 4)."""
    data_shape, kernel_shape = w.packed_shapes()
    X = te.placeholder(data_shape, "int8", "X")
    Wt = te.placeholder(kernel_shape, "int8", "W")
    Y = conv2d_NCHWc_int8(X, Wt, w.stride, w.padding, w.dilation, w.groups)
    s = schedule_conv2d_NCHWc_int8(Y, cfg)
    return minitvm.build(s, [X, Wt, Y], "cuda"), X, Wt, Y


def build_conv_tc(w, cfg=None):
    """Module and NHWC / OHWI tensors for workload ``w`` on the tensor-core template (input
    channels padded to a multiple of 32)."""
    from minitvm.topi.cuda.gemm_int8_tensorcore import schedule_int8_gemm
    from minitvm.topi.nn.conv2d_gemm import conv2d_NHWC_int8_gemm
    c = -(-w.C // 32) * 32
    X = te.placeholder((w.N, w.H, w.W, c), "int8", "X")
    Wt = te.placeholder((w.O, w.K, w.kw, c), "int8", "W")
    Y = conv2d_NHWC_int8_gemm(X, Wt, w.stride, w.padding, w.dilation)
    s = schedule_int8_gemm(Y, cfg)
    return minitvm.build(s, [X, Wt, Y], "cuda"), X, Wt, Y


def _shape(t):
    return tuple(int(d.value) for d in t.shape)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--layers", type=int, default=0, help="only the first N distinct layers")
    p.add_argument("--model", default="resnet50", choices=sorted(MODELS) + ["all"])
    p.add_argument("--tuning-log", default=None, help="take each layer's config from this log's best")
    p.add_argument("--template", default="dp4a", choices=["dp4a", "tensorcore"],
                   help="dp4a (NCHW4c) or the int8 tensor-core implicit GEMM (NHWC; groups=1 layers only)")
    args = p.parse_args()
    from minitvm import autotune
    history = autotune.ApplyHistoryBest(args.tuning_log) if args.tuning_log else None
    if cuda.device_count() == 0:
        print("no CUDA device here:", cuda.unavailable_reason())
        return
    from peaks import dp4a_peak, mma_s8_peak, torch_time
    tc = args.template == "tensorcore"
    try:
        import torch
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
    except ImportError:
        torch = None
    peak = mma_s8_peak() if tc else dp4a_peak()
    unit = "mma.sync" if tc else "dp4a"
    names = sorted(MODELS) if args.model == "all" else [args.model]
    layers = unique([c for m in names for c in MODELS[m](args.batch)])
    if tc:
        layers = [(w, n) for w, n in layers if w.groups == 1 and w.O % 8 == 0]
    if args.layers:
        layers = layers[:args.layers]
    rng = np.random.default_rng(0)
    rows = []
    for w, count in layers:
        build = build_conv_tc if tc else build_conv
        if history is not None:
            with history:
                mod, X, Wt, Y = build(w)
        else:
            mod, X, Wt, Y = build(w)
        x = rng.integers(-128, 128, _shape(X), dtype=np.int8)
        k = rng.integers(-128, 128, _shape(Wt), dtype=np.int8)
        dev = nd.cuda(0)
        tx, tk = nd.array(x, dev), nd.array(k, dev)
        ty = nd.array(np.full(_shape(Y), -7, np.int32), dev)
        mod(tx, tk, ty)
        t = mod.time_evaluator(mod.entry_name, number=10, repeat=3)(tx, tk, ty).median
        ops = 2 * w.macs
        row = {"w": w, "count": count, "t": t, "tops": ops / t / 1e12, "ok": None, "t32": None, "t16": None}
        if torch is not None:
            if tc:
                C = x.shape[3]
                xd = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).cuda()
                kd = torch.from_numpy(k.transpose(0, 3, 1, 2).copy()).cuda()
            else:
                C = x.shape[1] * 4
                xd = torch.from_numpy(x.transpose(0, 1, 4, 2, 3).reshape(w.N, C, w.H, w.W).copy()).cuda()
                kd = torch.from_numpy(k.transpose(0, 4, 1, 5, 2, 3).reshape(w.O, C // w.groups, w.K, w.kw).copy()).cuda()
            conv = torch.nn.functional.conv2d
            ref = conv(xd.double(), kd.double(), stride=w.stride, padding=(w.pad, w.pw), dilation=w.dilation,
                       groups=w.groups)
            got = ty.numpy().transpose(0, 3, 1, 2) if tc else ty.numpy().transpose(0, 1, 4, 2, 3).reshape(ref.shape)
            row["ok"] = bool(np.array_equal(got, ref.cpu().numpy().astype(np.int64)))
            for dtype, key in ((torch.float32, "t32"), (torch.float16, "t16")):
                fmt = torch.channels_last if dtype == torch.float16 else torch.contiguous_format
                a, b = xd.to(dtype).to(memory_format=fmt), kd.to(dtype).to(memory_format=fmt)
                row[key] = torch_time(lambda: conv(a, b, stride=w.stride, padding=(w.pad, w.pw), dilation=w.dilation,
                                                   groups=w.groups))
        rows.append(row)
        print(f"{w.name}: {t * 1e6:.1f} us, {row['tops']:.1f} TOPS, exact={row['ok']}", flush=True)
    from minitvm.autotune import tophub
    shipped = ", else shipped tuned configs (tophub) where they match" if tophub.enabled() else ""
    configs = (f"best configs of {args.tuning_log}" if args.tuning_log else "default configs") + shipped
    print(f"\nint8 conv2d, {args.template} template, {configs}, batch {args.batch}, {cuda.device_name(0)}; "
          f"{unit} peak measured now: {peak / 1e12:.1f} TOPS")
    print(f"{'layer':34s} {'C':>4s} {'HW':>4s} {'O':>4s} {'K':>2s} {'s':>2s} {'us':>9s} {'TOPS':>6s} "
          f"{'%peak':>6s} {'torch32 us':>10s} {'torch16 us':>10s} {'exact':>5s}")
    for r in rows:
        w = r["w"]
        f = (lambda v: f"{v * 1e6:10.1f}" if v else "       n/a")
        print(f"{w.name:34s} {w.C:4d} {w.H:4d} {w.O:4d} {w.K:2d} {w.stride:2d} {r['t'] * 1e6:9.1f} "
              f"{r['tops']:6.1f} {100 * r['tops'] * 1e12 / peak:5.1f}% {f(r['t32'])} {f(r['t16'])} {str(r['ok']):>5s}")
    tot = sum(r["t"] * r["count"] for r in rows)
    tops = sorted(r["tops"] for r in rows)
    print(f"summed over all {sum(r['count'] for r in rows)} layers: minitvm {tot * 1e3:.2f} ms; "
          f"median layer {tops[len(tops) // 2]:.1f} TOPS ({100 * tops[len(tops) // 2] * 1e12 / peak:.1f}% of {unit})")
    if torch is not None:
        for key, label in (("t32", "fp32"), ("t16", "fp16")):
            print(f"  torch {label} cuDNN summed: {sum(r[key] * r['count'] for r in rows) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
