"""Every CUDA template's kernels at small, representative shapes, each run once on fresh inputs:
the workload for compute-sanitizer (#17 item 7).

    PYTHONPATH=. compute-sanitizer --tool memcheck  python3 benchmarks/sanitize_cuda.py
    PYTHONPATH=. compute-sanitizer --tool racecheck python3 benchmarks/sanitize_cuda.py
    (--tool initcheck and --tool synccheck work the same way)

What runs: the tunable templates (``conv2d_NCHWc_int8.cuda`` with dp4a, the int8 tensor-core
``conv2d_NHWC_int8_tensorcore.cuda`` and ``dense_int8_tensorcore.cuda``, float
``conv2d_nchw.cuda``, ``dense.cuda`` in float32 and int8), each at its default config and at a few
configs sampled from its space (seeded), then the fixed schedules: max / average / global
pools, softmax, injective ops (broadcast add with relu, a padded copy), the deformable
convolution and the classic GEMM schedules (naive, shared, virtual threads with double
buffering). Shapes are small (odd sizes included, so guards and tails run), so the whole run
stays within a few minutes under memcheck; the kernels compile once into minitvm's cubin cache,
so a second tool's run starts faster.

Each output is poisoned (NaN, or 0xA5 bytes) before the run and compared with numpy after it
(float close, integer exact): a kernel that reads garbage fails here as well as in the
sanitizer's report. The exit status is 1 if any case differs or fails.

``--build-only`` lowers and generates every case and compiles it with NVRTC where NVRTC is
present, without a GPU (what CI checks: tests/codegen/test_sanitize_cuda_build.py). ``--list``
names the cases; ``-k TEXT`` runs those whose name contains TEXT; ``--samples N`` sets the
sampled configs per template (default 2).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
import zlib

import numpy as np

import minitvm
from minitvm import autotune, te
from minitvm.topi import testing
from minitvm.topi.cuda import matmul as cuda_matmul
from minitvm.topi.cuda.deformable_conv2d import schedule_deformable_conv2d_nchw
from minitvm.topi.cuda.injective import schedule_injective
from minitvm.topi.cuda.reduction import schedule_global_pool, schedule_pool, schedule_softmax
from minitvm.topi.nn import pooling, softmax
from minitvm.topi.nn.deformable_conv2d import deformable_conv2d_nchw
from minitvm.topi.nn.elemwise import relu
from minitvm.topi.nn.matmul import matmul

# (template, arguments): the workloads of the tunable templates
TEMPLATES = [
    ("conv2d_NCHWc_int8.cuda", ((2, 4, 9, 9, 4), (8, 4, 3, 3, 4, 4), 1, 1)),
    ("conv2d_NCHWc_int8.cuda", ((1, 8, 7, 7, 4), (4, 8, 1, 1, 4, 4), 2, 0)),
    ("conv2d_NHWC_int8_tensorcore.cuda", ((2, 7, 7, 64), (64, 3, 3, 64), 1, 1, 1)),
    ("conv2d_NHWC_int8_tensorcore.cuda", ((1, 9, 9, 96), (40, 1, 7, 96), 1, (0, 3, 0, 3), 1)),
    ("dense_int8_tensorcore.cuda", ((3, 512), (40, 512))),
    ("conv2d_nchw.cuda", ((2, 8, 9, 9), (16, 8, 3, 3), 1, 1)),
    ("conv2d_nchw.cuda", ((1, 16, 7, 7), (16, 1, 3, 3), 2, 1, 1, 16)),
    ("dense.cuda", ((5, 40), (24, 40), "float32")),
    ("dense.cuda", ((3, 64), (40, 64), "int8")),
]


def _template_cases(samples: int):
    cases = []
    for name, args in TEMPLATES:
        task = autotune.Task(name, args)
        fallback = autotune.FallbackConfig()
        task.template.func(fallback, *task.args)
        space = task.config_space
        picked = [space.get(fallback.index)]
        rng = random.Random(zlib.crc32(repr((name, args)).encode()))
        for _ in range(20000):
            if len(picked) > samples:
                break
            i = rng.randrange(len(space))
            if space.is_valid(i) and all(c.index != i for c in picked):
                picked.append(space.get(i))
        for k, config in enumerate(picked):
            label = "default" if k == 0 else f"config{config.index}"

            def build(task=task, config=config):
                s, tensors = task.instantiate(config)
                return s, tensors, lambda inputs: task.template.reference(inputs, *task.args)[0]

            cases.append((f"{name.split('.')[0]}:{'x'.join(map(str, _shape(args[0])))}:{label}", build))
    return cases


def _shape(s):
    return s if isinstance(s, tuple) else (s,)


def _pool(kind):
    def build():
        x = te.placeholder((2, 5, 9, 11), name="x")
        if kind == "max":
            out = pooling.max_pool2d(x, 3, 2, 1, ceil_mode=True)
        else:
            out = pooling.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        ref = (lambda i: testing.pool2d_nchw(i[0], kind, 3, 2, 1, ceil_mode=True)) if kind == "max" else \
            (lambda i: testing.pool2d_nchw(i[0], kind, 3, 2, 1, count_include_pad=False))
        return schedule_pool(out), [x, out], ref
    return build


def _global_pool():
    x = te.placeholder((2, 12, 7, 5), name="x")
    out = pooling.global_avg_pool2d(x)
    return schedule_global_pool(out), [x, out], lambda i: testing.global_pool2d_nchw(i[0], "avg")


def _softmax():
    x = te.placeholder((3, 1000), name="x")
    out = softmax.softmax(x)
    return schedule_softmax(out), [x, out], lambda i: testing.softmax(i[0])


def _injective():
    a = te.placeholder((2, 7, 5, 33), name="a")
    b = te.placeholder((7, 1, 1), name="b")
    out = relu(te.compute(a.shape, lambda n, c, h, w: a[n, c, h, w] + b[c, 0, 0], name="add"))
    return schedule_injective(out), [a, b, out], lambda i: np.maximum(i[0] + i[1][None], 0)


def _padded_copy():
    a = te.placeholder((3, 30), "int8", name="a")
    out = te.compute((3, 36), lambda y, x: te.if_then_else(te.all(x >= 3, x < 33), a[y, x - 3], te.const(0, "int8")),
                     name="pad")
    return schedule_injective(out), [a, out], lambda i: np.pad(i[0], ((0, 0), (3, 3)))


def _deformable():
    x = te.placeholder((1, 4, 7, 7), name="x")
    off = te.placeholder((1, 18, 7, 7), name="offset")
    w = te.placeholder((8, 4, 3, 3), name="w")
    out = deformable_conv2d_nchw(x, off, w, 1, 1)
    return (schedule_deformable_conv2d_nchw(out), [x, off, w, out],
            lambda i: testing.deformable_conv2d_nchw(i[0], i[1], i[2], 1, 1))


def _gemm(kind):
    def build():
        a = te.placeholder((64, 48), name="A")
        b = te.placeholder((48, 64), name="B")
        c = matmul(a, b)
        if kind == "naive":
            s = cuda_matmul.schedule_matmul_naive(c)
        elif kind == "shared":
            s = cuda_matmul.schedule_matmul(c, block=32, thread_tile=4, k_tile=8)
        else:
            s = cuda_matmul.schedule_matmul_vthread(c, scale=4, num_thread=8, k_tile=8, vthread=2, vector=4)
        return s, [a, b, c], lambda i: i[0].astype(np.float64) @ i[1]
    return build


FIXED = [("max_pool", _pool("max")), ("avg_pool", _pool("avg")), ("global_avg_pool", _global_pool),
         ("softmax", _softmax), ("injective_add_relu", _injective), ("padded_copy_int8", _padded_copy),
         ("deformable_conv2d", _deformable), ("gemm_naive", _gemm("naive")), ("gemm_shared", _gemm("shared")),
         ("gemm_vthread_double_buffer", _gemm("vthread"))]


def cases(samples: int = 2):
    """``[(name, build)]``: ``build()`` returns ``(schedule, tensors, reference)``, where the
    tensors are the inputs then the output and ``reference(inputs)`` is the expected output."""
    return _template_cases(samples) + FIXED


def fresh_inputs(tensors, rng):
    """Random inputs for every tensor but the last (integers over their range, floats in [-1, 1])."""
    out = []
    for t in tensors[:-1]:
        shape = [int(d.value) for d in t.shape]
        dtype = np.dtype(t.dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, int(info.max) + 1, shape, dtype=np.int64).astype(dtype))
        else:
            out.append(rng.uniform(-1, 1, shape).astype(dtype))
    return out


def poisoned(t):
    """The output buffer, filled with NaN (floats) or 0xA5 bytes, so unwritten elements show."""
    a = np.empty([int(d.value) for d in t.shape], t.dtype)
    if a.dtype.kind == "f":
        a.fill(np.nan)
    else:
        a.view(np.uint8).fill(0xA5)
    return a


def build_only(name, build, arch="sm_90") -> str:
    """Lower and generate one case for CUDA; compile it with NVRTC where present. Returns the source."""
    from minitvm.codegen.cuda import codegen_cuda
    from minitvm.lowering.pipeline import lower_device
    s, tensors, _ = build()
    func = minitvm.lower(s, tensors, name=name.replace(":", "_").replace(".", "_"), target=f"cuda -arch={arch}")
    source, _, _ = codegen_cuda(lower_device([func], f"cuda -arch={arch}"), arch)
    try:
        from minitvm.runtime.cuda import compile_cuda, nvrtc_version
        nvrtc_version()
    except Exception:
        return source
    compile_cuda(source, arch)
    return source


def run(name, build, rng) -> str | None:
    """Build one case for the present GPU, run it once, compare; returns an error text or None."""
    from minitvm import nd
    from minitvm.runtime import cuda
    s, tensors, reference = build()
    mod = minitvm.build(s, tensors, "cuda")
    inputs = fresh_inputs(tensors, rng)
    want = np.asarray(reference([x.copy() for x in inputs]))
    dev = nd.cuda(0)
    out = nd.array(poisoned(tensors[-1]), dev)
    mod(*[nd.array(x, dev) for x in inputs], out)
    cuda.synchronize(0)
    got = out.numpy()
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if got.dtype.kind == "f":
        if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
            return f"max abs error {np.nanmax(np.abs(got - want))} (NaN: {int(np.isnan(got).sum())})"
    elif not np.array_equal(got, want.astype(got.dtype)):
        return f"{int((got != want).sum())} of {got.size} elements differ"
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-only", action="store_true", help="lower, generate and compile; no GPU needed")
    p.add_argument("--list", action="store_true", help="name the cases and stop")
    p.add_argument("-k", default="", help="run the cases whose name contains this text")
    p.add_argument("--samples", type=int, default=2, help="sampled configs per template (besides the default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    chosen = [(n, b) for n, b in cases(args.samples) if args.k in n]
    if args.list:
        print("\n".join(n for n, _ in chosen))
        return 0
    rng = np.random.default_rng(args.seed)
    failed = 0
    start = time.time()
    for name, build in chosen:
        t = time.time()
        try:
            problem = None if args.build_only else run(name, build, rng)
            if args.build_only:
                build_only(name, build)
        except Exception as exc:        # report every case, then fail at the end
            problem = f"{type(exc).__name__}: {exc}"
        failed += problem is not None
        print(f"{'FAIL' if problem else 'ok':4} {name} ({time.time() - t:.1f} s){': ' + problem if problem else ''}",
              flush=True)
    print(f"{len(chosen) - failed} of {len(chosen)} cases ok in {time.time() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
