"""Whole models on the CPU: minitvm fp32 and int8 beside onnxruntime fp32 and int8, in one run.

For each model (ResNet-18 and ResNet-50 from minitvm's zoo, MobileNetV2 built in
``onnx_export_cpu.py``; batch 1, 224x224) it times, with the same number of threads on both sides:

* ``minitvm fp32``: ``graph.build(graph, "llvm")`` (default configs, or the tuned ones of
  ``--log``);
* ``minitvm int8``: every conv and the classifier quantized (max calibration on the same
  images onnxruntime calibrates on), laid out for this CPU by ``alter_layout`` and built;
* ``ort fp32``: onnxruntime on the same network exported to ONNX (``to_onnx``), graph
  optimizations on;
* ``ort int8``: that ONNX model through ``quantize_static`` (QOperator format: QLinearConv /
  QGemm, uint8 activations, int8 per-channel weights, MinMax calibration), every conv and the
  classifier quantized like minitvm's.

It prints ms per image (median of ``--repeat`` rounds, each the mean of ``--number`` runs,
rounds of the four variants interleaved so that load on a shared machine hits them alike, with
50 ms between variants: both runtimes' worker threads spin a while after a run, and would take
the cores from the variant that follows), the
ratios the targets of issue #19 are about, and how far each output is from its fp32 peer.
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are removed from this process's environment only.

    PYTHONPATH=. python benchmarks/models_cpu.py [--models resnet18,resnet50,mobilenet_v2]
        [--threads 2] [--repeat 5] [--number 10] [--log tuned.log]
"""
import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import warnings

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):   # before numpy loads OpenBLAS
    os.environ.pop(_var, None)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import onnxruntime as ort  # noqa: E402
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,  # noqa: E402
                                      quantize_static)

from onnx_export_cpu import mobilenet_v2, to_onnx  # noqa: E402

from minitvm import autotune  # noqa: E402
from minitvm.graph import zoo  # noqa: E402
from minitvm.graph.build import build  # noqa: E402
from minitvm.graph.passes.alter_layout import alter_layout  # noqa: E402
from minitvm.graph.quantize import qconfig, quantize_graph  # noqa: E402
from minitvm.runtime.llvm import set_num_threads  # noqa: E402
from minitvm.target import Target  # noqa: E402


def model_graph(name):
    """The float graph of ``name`` (batch 1, 224x224)."""
    if name == "mobilenet_v2":
        return mobilenet_v2()
    graph, _ = zoo.get_model(name, batch=1, image_size=224)
    return graph


class _Reader(CalibrationDataReader):
    def __init__(self, samples):
        self.it = iter(samples)

    def get_next(self):
        return next(self.it, None)


def ort_session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def minitvm_int8(graph, calib, target):
    """Every conv and dense in int8 (max calibration on ``calib``), in ``target``'s layouts."""
    with qconfig(calibrate_mode="max", skip_conv_layers=[], skip_dense_layer=False):
        q = quantize_graph(graph, calib)
    return alter_layout(q, target=target)


def _timer(run, number):
    def once():
        t0 = time.perf_counter()
        for _ in range(number):
            run()
        return (time.perf_counter() - t0) / number
    return once


def _close(a, b):
    """The relative L2 error of logits ``a`` against ``b``."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def bench_model(name, args, target, workdir):
    graph = model_graph(name)
    rng = np.random.default_rng(0)
    shape = tuple(graph.node("data").type.shape)
    calib = [{"data": rng.standard_normal(shape).astype(np.float32)} for _ in range(args.calib)]
    x = rng.standard_normal(shape).astype(np.float32)

    fp32_path = os.path.join(workdir, f"{name}.onnx")
    int8_path = os.path.join(workdir, f"{name}.int8.onnx")
    with open(fp32_path, "wb") as f:
        f.write(to_onnx(graph).SerializeToString())
    quantize_static(fp32_path, int8_path, _Reader([dict(c) for c in calib]), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=["Conv", "Gemm", "Relu", "Clip", "Add", "MaxPool", "GlobalAveragePool"])

    t0 = time.perf_counter()
    m32 = build(graph, target)
    b32 = time.perf_counter() - t0
    t0 = time.perf_counter()
    m8 = build(minitvm_int8(graph, calib, target), target)
    b8 = time.perf_counter() - t0
    s32, s8 = ort_session(fp32_path, args.threads), ort_session(int8_path, args.threads)

    outs = {"minitvm fp32": m32.run({"data": x})[0], "minitvm int8": m8.run({"data": x})[0],
            "ort fp32": s32.run(None, {"data": x})[0], "ort int8": s8.run(None, {"data": x})[0]}
    runs = {"minitvm fp32": m32.execute, "minitvm int8": m8.execute,
            "ort fp32": lambda: s32.run(None, {"data": x}), "ort int8": lambda: s8.run(None, {"data": x})}
    timers = {k: _timer(r, args.number) for k, r in runs.items()}
    for t in timers.values():   # warm up
        t()
    samples = {k: [] for k in timers}
    for _ in range(args.repeat):
        for k, t in timers.items():
            time.sleep(0.05)   # the previous variant's threads stop spinning and give the cores back
            samples[k].append(t())
    ms = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    return ms, outs, (b32, b8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,resnet50,mobilenet_v2")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--number", type=int, default=10)
    ap.add_argument("--calib", type=int, default=8, help="calibration images (random normal)")
    ap.add_argument("--target", default="llvm")
    ap.add_argument("--log", default=None, help="tuning log to build minitvm's kernels with")
    args = ap.parse_args()
    if not args.log:   # default configs, on purpose
        warnings.simplefilter("ignore", autotune.FallbackConfigWarning)
    set_num_threads(args.threads)
    target = Target(args.target)
    print(f"target {target}; threads {args.threads} (minitvm and onnxruntime {ort.__version__}); "
          f"median of {args.repeat} x {args.number} runs; ms per image, batch 1")
    hdr = ("model", "minitvm fp32", "minitvm int8", "ort fp32", "ort int8", "int8 vs fp32", "fp32 vs ort",
           "int8 vs ort int8")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        ctx = autotune.ApplyHistoryBest(args.log) if args.log else contextlib.nullcontext()
        with ctx:
            for name in filter(None, args.models.split(",")):
                ms, outs, (b32, b8) = bench_model(name, args, target, workdir)
                print(f"{name}: build fp32 {b32:.1f} s, int8 {b8:.1f} s; relative error of the logits: minitvm fp32 "
                      f"vs ort fp32 {_close(outs['minitvm fp32'], outs['ort fp32']):.1e}; int8 vs fp32: minitvm "
                      f"{_close(outs['minitvm int8'], outs['minitvm fp32']):.3f}, "
                      f"ort {_close(outs['ort int8'], outs['ort fp32']):.3f}")
                rows.append((name, ms["minitvm fp32"], ms["minitvm int8"], ms["ort fp32"], ms["ort int8"],
                             ms["minitvm fp32"] / ms["minitvm int8"], ms["minitvm fp32"] / ms["ort fp32"],
                             ms["ort int8"] / ms["minitvm int8"]))
                sys.stdout.flush()
    print("| " + " | ".join(hdr) + " |")
    print("|" + " --- |" * len(hdr))
    for r in rows:
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f}x | {r[6]:.2f}x | {r[7]:.2f}x |")


if __name__ == "__main__":
    main()
