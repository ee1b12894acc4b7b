"""``minitvm compile`` (a model to a saved ``.mtvm`` artifact) and ``minitvm run`` (a model or
an artifact, on given or random inputs: outputs, latency, per-kernel profile). Both compile
through :func:`minitvm.compile`, the path Python users take."""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings

from .options import (CLI_NAMES, COMPILE_OPTIONS, add_compile_options, add_model_options, at_least, check_file,
                      check_model, check_writable, load_model)


def add_parsers(sub, models_help: str) -> None:
    """The ``compile`` and ``run`` subcommands."""
    c = sub.add_parser("compile", help="compile a model into a .mtvm artifact (minitvm run or minitvm.load read it)",
                       description="Compile a model (zoo name or .onnx file) for a target and save it as one "
                                   ".mtvm file: plan, compiled code and weights. 'minitvm run FILE' and "
                                   "minitvm.load(FILE) run it without compiling.")
    c.add_argument("model", metavar="MODEL", help=models_help)
    c.add_argument("-o", "--output", metavar="FILE.mtvm",
                   help="where to write the artifact (default: MODEL's name with .mtvm, here)")
    add_model_options(c)
    add_compile_options(c)
    c.set_defaults(func=compile_command, check=check, parser=c)

    r = sub.add_parser("run", help="compile a model (or load an artifact) and run it: outputs, latency, profile",
                       description="Compile a model (zoo name or .onnx file), or load a .mtvm artifact, run it on "
                                   "the inputs given (default: random), print its outputs and time it.")
    r.add_argument("model", metavar="MODEL|ARTIFACT", help=models_help + ", or a .mtvm artifact (minitvm compile)")
    add_model_options(r)
    add_compile_options(r)
    g = r.add_argument_group("running")
    g.add_argument("--inputs", metavar="FILE", help="the inputs: an .npz with one array per input name (a one-input "
                   "model: any one key), or an .npy for a one-input model (default: random, see --seed)")
    g.add_argument("--outputs", metavar="FILE.npz", help="save the outputs to an .npz, one array per output name")
    g.add_argument("--print-top", type=at_least(0), default=5, metavar="N",
                   help="print the N largest entries (class and score) of each output's first item (default 5; "
                        "0: only shape and statistics)")
    g.add_argument("--benchmark-seconds", type=at_least(0.0, float), default=2.0, metavar="S",
                   help="time back-to-back inferences for about S seconds, at least one (default 2; 0: skip)")
    g.add_argument("--profile", action="store_true",
                   help="time each kernel alone and print its share of the total, TOPS or GB/s, and template")
    g.add_argument("--profile-runs", type=at_least(1), default=10, metavar="N",
                   help="runs of each kernel per --profile measurement (default 10; 3 measurements)")
    r.set_defaults(func=run_command, check=check, parser=r)


def check(p, args) -> None:
    """Refuse the options of ``compile`` / ``run`` that cannot work, before any compile work."""
    from ..errors import UsageError
    from ..model_compile import check_compile_options
    from ..models import is_artifact
    check_model(p, args)
    args.artifact = is_artifact(args.model)
    if args.artifact:
        if args.cmd == "compile":
            p.error(f"{args.model} is already compiled (an artifact): 'minitvm run {args.model}' runs it")
        given = [o for o in COMPILE_OPTIONS if getattr(args, o) not in (None, False, 0, "auto", "float32")]
        if given:
            p.error(f"--{given[0].replace('_', '-')}: {args.model} is compiled already (its target, dtype and shapes "
                    "were fixed by 'minitvm compile'); compile the model again to change them")
    else:
        _check_target(p, args)
    check_file(p, "--tuning-log", args.tuning_log)
    check_file(p, "--inputs", getattr(args, "inputs", None))
    check_writable(p, "--outputs", getattr(args, "outputs", None))
    check_writable(p, "-o", getattr(args, "output", None))
    if not args.artifact:
        try:
            check_compile_options(args.dtype, _calibration(args), args.tuning_log, args.calibration_samples,
                                  CLI_NAMES, args.model)
        except UsageError as exc:
            p.error(str(exc))


def _check_target(p, args) -> None:
    """Parse ``--target``; ``run`` also needs the device it names to be here."""
    from ..errors import MiniTVMError
    from ..models import pick_target
    try:
        args.target = pick_target(args.target)
    except MiniTVMError as exc:
        p.error(f"--target: {exc}")
    if args.cmd != "run":
        return
    target = args.target
    if target.kind == "cuda":
        from ..runtime import cuda
        if cuda.device_count() == 0:
            p.error(f"--target {target}: no CUDA GPU is usable here ({cuda.unavailable_reason()}); "
                    "'minitvm compile' builds for it without one")
    else:
        from ..runtime.cpu_features import cpu_features
        missing = sorted(target.features - cpu_features())
        if missing:
            p.error(f"--target {target}: uses {', '.join(missing)}, which this CPU lacks; 'minitvm run' runs "
                    "here, so compile for that CPU with 'minitvm compile' and run the artifact there")


def _calibration(args):
    from ..calibration import RandomCalibration
    if args.calibrate_random:
        return RandomCalibration(args.calibration_samples or 4, args.seed)
    return args.calibration_data


@contextlib.contextmanager
def _reported_warnings(counts: dict):
    """Print warnings as ``minitvm: warning: ...`` when they happen; count the untuned kernels."""
    from ..autotune import FallbackConfigWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FallbackConfigWarning):
            counts["untuned"] = counts.get("untuned", 0) + 1
        else:
            print(f"minitvm: warning: {message}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        yield


def _compile(args):
    """The compiled model of ``args`` (through :func:`minitvm.compile`) and its graph's inputs."""
    from ..model_compile import compile as compile_model
    from ..models import is_quantized
    from ..progress import ProgressBars
    graph = load_model(args)
    inputs = {n: graph.node(n).type for n in graph.topo_order() if graph.node(n).is_input}
    feed = None
    if getattr(args, "inputs", None):
        from .model_io import read_inputs
        feed = read_inputs(args.inputs, inputs)        # refused now, not after compiling
    dtype = args.dtype
    if is_quantized(graph):
        print("pre-quantized model: its int8 layers run as imported, laid out for the int8 templates")
        dtype = "int8, pre-quantized"
    counts: dict = {}
    t0 = time.perf_counter()
    bars = ProgressBars(args.progress, label=f"{os.path.basename(args.model)} for {args.target}")
    try:
        with _reported_warnings(counts):
            model = compile_model(graph, args.target, args.dtype, calibration=_calibration(args),
                                  tuning_log=args.tuning_log, calibration_samples=args.calibration_samples,
                                  quantize_first_conv=args.int8_first_conv, tactics=args.tactics, progress=bars,
                                  option_names=CLI_NAMES)
    finally:
        bars.close()
    print(f"compiled {args.model} for {args.target} ({dtype}) in {time.perf_counter() - t0:.1f} s: "
          f"{len(model.steps)} kernels")
    if counts.get("untuned"):
        print(f"{counts['untuned']} kernel workloads use their template's default config (none in "
              f"{args.tuning_log or 'a tuning log'}); 'minitvm tune' finds faster ones")
    return model, feed


def _artifact_name(model: str) -> str:
    base = os.path.basename(model.rstrip("/"))
    return (base[:-5] if base.endswith(".onnx") else base) + ".mtvm"


def compile_command(args) -> int:
    """``minitvm compile``: compile and save the artifact."""
    model, _ = _compile(args)
    path = model.save(args.output or _artifact_name(args.model))
    print(f"wrote {path} ({os.path.getsize(path) / 2**20:.1f} MiB): 'minitvm run {path}' runs it")
    return 0


def run_command(args) -> int:
    """``minitvm run``: compile (or load) the model, run it, print or save its outputs, time it."""
    from .bench import benchmark
    from .model_io import describe_output, random_inputs, read_inputs, write_outputs
    if args.artifact:
        import minitvm
        t0 = time.perf_counter()
        model = minitvm.load(args.model)
        print(f"loaded {args.model} ({model.target}) in {time.perf_counter() - t0:.2f} s: {len(model.steps)} kernels")
        types = {t.name: t for t in model.get_inputs()}
        feed = read_inputs(args.inputs, types) if args.inputs else None
    else:
        model, feed = _compile(args)
        types = {t.name: t for t in model.get_inputs()}
    if feed is None:
        feed = random_inputs(types, args.seed)
    outs = model.run(feed)
    for name, out in zip(model.output_names, outs):
        print(describe_output(name, out, args.print_top))
    if args.outputs:
        write_outputs(args.outputs, model.output_names, outs)
        print(f"wrote the outputs to {args.outputs}")
    seconds = None
    if args.benchmark_seconds > 0:
        seconds, count = benchmark(model, args.benchmark_seconds, args.progress)
        batch = next(iter(types.values())).shape[0] if types and next(iter(types.values())).shape else 1
        print(f"latency {seconds * 1e3:.3f} ms per batch of {batch} ({seconds * 1e3 / batch:.3f} ms per item), "
              f"median of {count} inferences on {model.target.kind}")
    if args.profile:
        from ..graph.profile import format_profile
        print(format_profile(model.profile(number=args.profile_runs), replay_seconds=seconds))
    print(f"memory: activations {model.peak_bytes / 2**20:.1f} MiB (planned), weights "
          f"{model.weight_bytes / 2**20:.1f} MiB")
    return 0
