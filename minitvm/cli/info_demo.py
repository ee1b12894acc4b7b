"""``minitvm info`` (a model's graph summary, an artifact's contents, or the zoo's names) and
``minitvm demo`` (one matrix product compiled, checked and timed)."""
from __future__ import annotations

import time

import numpy as np

from .options import add_model_options, at_least, check_model, load_model


def add_parsers(sub, models_help: str) -> None:
    """The ``info`` and ``demo`` subcommands."""
    i = sub.add_parser("info", help="print a model's graph summary (ops, MACs, parameters) or an artifact's contents",
                       description="Print a model's graph summary without compiling or building its weights, "
                                   "what a .mtvm artifact holds, or (without MODEL) the zoo models.")
    i.add_argument("model", nargs="?", default=None, metavar="MODEL|ARTIFACT",
                   help=models_help + ", or a .mtvm artifact; none: list the zoo models")
    add_model_options(i)
    i.set_defaults(func=info_command, check=check_info, parser=i)

    d = sub.add_parser("demo", help="compile, check and time a matmul (GPU if present, else CPU)")
    d.add_argument("--target", default="auto", metavar="TARGET",
                   help='"auto" (default: CUDA where a GPU is present, else this CPU), "llvm", "cuda", or a full '
                        'target string ("llvm -mcpu=native")')
    d.add_argument("--size", type=at_least(1), default=1024, metavar="N", help="N x N x N product (default 1024)")
    d.add_argument("--number", type=at_least(1), default=10, metavar="N", help="runs per timing (default 10)")
    d.set_defaults(func=demo_command)


def check_info(p, args) -> None:
    """Refuse ``info``'s options that cannot work."""
    if args.model is not None:
        check_model(p, args)


def info_command(args) -> int:
    """Print a model's graph summary (ops, MACs, parameters), an artifact's contents, or the zoo."""
    from ..models import is_artifact
    if args.model is None:
        from ..graph import zoo
        print("zoo models: " + ", ".join(zoo.list_models()))
        return 0
    if is_artifact(args.model):
        print(_artifact_summary(args.model))
        return 0
    print(load_model(args, init=False).summary())     # the weights are never used: not built
    return 0


def _artifact_summary(path: str) -> str:
    from ..graph.artifact import read_plan
    meta, plan = read_plan(path)
    values = plan["values"]

    def fmt(n):
        return f"%{n}: {values[n]['dtype']}{values[n]['shape']}"
    machine = meta["module"].get("machine", {})
    lines = [f"artifact {path}: format {meta['format_version']}, written by minitvm {meta.get('minitvm_version')}",
             f"  target:  {meta['target']}" + (f" (CPU code for {machine.get('cpu')}, {machine.get('triple')})"
                                               if machine else ""),
             "  inputs:  " + ", ".join(fmt(n) for n in plan["inputs"]),
             "  outputs: " + ", ".join(fmt(n) for n in plan["outputs"]),
             f"  kernels: {len(plan['steps'])}, weights: {len(plan['weights'])} arrays"]
    for st in plan["steps"]:
        lines.append(f"    {st['func']}: {' -> '.join(st.get('ops') or st['nodes'])}  [{st.get('implementation', '')}]")
    return "\n".join(lines)


def demo_command(args) -> int:
    """Compile, check and time a matrix product on the GPU (CUDA) or the CPU (LLVM)."""
    from .. import nd, te
    from ..driver import build
    from ..models import pick_target
    from ..topi import cpu, cuda
    from ..topi.nn import matmul
    target = pick_target(args.target)
    n = args.size
    A = te.placeholder((n, n), "float32", "A")
    B = te.placeholder((n, n), "float32", "B")
    C = matmul(A, B)
    s = (cuda if target.kind == "cuda" else cpu).schedule_matmul(C)
    t0 = time.perf_counter()
    mod = build(s, [A, B, C], target=target)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    dev = nd.cuda(0) if target.kind == "cuda" else nd.cpu(0)
    ta, tb = nd.array(a, dev), nd.array(b, dev)
    tc = nd.array(np.full((n, n), np.nan, np.float32), dev)
    mod(ta, tb, tc)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = float(np.linalg.norm(tc.numpy() - ref) / np.linalg.norm(ref))
    t = mod.time_evaluator(mod.entry_name, number=args.number, repeat=3)(ta, tb, tc).median
    print(f"minitvm {target.kind}: float32 matmul {n}x{n}x{n}")
    print(f"  build     {build_s * 1e3:8.1f} ms (lower + codegen + compile)")
    print(f"  run       {t * 1e3:8.3f} ms   {2 * n ** 3 / t / 1e9:8.1f} GFLOP/s")
    print(f"  rel. error vs float64 numpy: {err:.2e}")
    return 0 if err < 1e-4 else 1
