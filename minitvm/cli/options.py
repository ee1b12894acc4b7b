"""The ``minitvm`` command's options: argument types that refuse bad text with a message
naming it, the option groups several subcommands share, and the checks that run before any
compile work."""
from __future__ import annotations

import argparse
import os
import re

from ..models import OptionNames, is_model_file

#: how error messages from minitvm.compile and the model loader name the command's flags
CLI_NAMES = OptionNames(input_shapes="--input-shapes", batch="--batch", image_size="--image-size",
                        calibration="--calibration-data", calibrate_random="--calibrate-random",
                        tuning_log="--tuning-log", cli=True)

#: options that only mean something when a model is compiled (refused with an artifact)
COMPILE_OPTIONS = ("target", "dtype", "input_shapes", "batch", "image_size", "calibration_data",
                   "calibrate_random", "calibration_samples", "int8_first_conv", "tuning_log", "tactics")


def at_least(low: int, kind=int):
    """An argparse type: a number of ``kind`` not below ``low``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") \
                from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value
    return parse


def image_size(text: str):
    """An argparse type: ``224`` (square) or ``HxW`` (``320x240``)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size N or HxW (e.g. 224 or 320x240)")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return h if m.group(2) is None else (h, w)


_ENTRY = re.compile(r"\s*(?:(?P<name>[^\s\[\],]+?)\s*:\s*)?\[(?P<dims>[^\[\]]*)\]\s*,?")


def input_shapes(text: str) -> dict:
    """An argparse type: ``"name:[1,3,224,224]"``, several separated by spaces or commas
    (``"a:[1,3] b:[1,5]"``); a bare ``"[1,3,224,224]"`` is the shape of a one-input model (key
    None). A name may hold colons (``"input:0:[1,3]"``)."""
    shapes, pos = {}, 0
    example = 'expected NAME:[d1,d2,...], e.g. "data:[1,3,224,224]" (several separated by spaces)'
    while pos < len(text.rstrip()):
        m = _ENTRY.match(text, pos)
        if not m:
            raise argparse.ArgumentTypeError(f"{text!r}: cannot read {text[pos:].strip()!r}; {example}")
        name, dims = m.group("name"), m.group("dims").strip()
        try:
            shape = tuple(int(d) for d in dims.split(",")) if dims else ()
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: the shape [{dims}] of {name or 'the input'} must be "
                                             "integers") from None
        if any(d < 1 for d in shape):
            raise argparse.ArgumentTypeError(f"{text!r}: the shape [{dims}] of {name or 'the input'} has a "
                                             "dimension below 1 (give every dimension a size)")
        if name in shapes:
            raise argparse.ArgumentTypeError(f"{text!r}: input {name or '(unnamed)'} is given twice")
        shapes[name] = shape
        pos = m.end()
    if not shapes:
        raise argparse.ArgumentTypeError(f"{text!r}: no shape given; {example}")
    return shapes


def add_model_options(p, batch_help: str = "batch size") -> None:
    """The shape options (``--input-shapes``, ``--batch``, ``--image-size``)."""
    g = p.add_argument_group("model and shapes")
    g.add_argument("--input-shapes", type=input_shapes, action="append", metavar="SPEC",
                   help='input shapes, e.g. "data:[1,3,224,224]" (several: "a:[1,3] b:[1,5]", or repeat the '
                        "option): fixes an ONNX model's dynamic dimensions, or a zoo model's batch and image size")
    g.add_argument("--batch", type=at_least(1), metavar="N",
                   help=f"{batch_help}: a zoo model's, or an ONNX model's dynamic batch (default 1); refused for a "
                        "model whose batch is static")
    g.add_argument("--image-size", type=image_size, metavar="N|HxW",
                   help="a zoo model's input size: 224 or 320x240 (default: the model's, 224; inception_v3 299)")


def add_compile_options(p, dtype_choices=("float32", "int8")) -> None:
    """What ``compile`` and ``run`` share: target, dtype, calibration, tuning, progress."""
    g = p.add_argument_group("compiling")
    g.add_argument("--target", default="auto", metavar="TARGET",
                   help='"auto" (default: CUDA where a GPU is present, else this CPU), "llvm", "llvm -mcpu=znver3 '
                        '-mattr=+avx2", "cuda", "cuda -arch=sm_90"')
    g.add_argument("--dtype", default="float32", choices=dtype_choices,
                   help="float32 (default), or int8: quantize the model (needs --calibration-data or "
                        "--calibrate-random; a pre-quantized ONNX model runs in int8 either way)")
    g.add_argument("--int8-first-conv", action="store_const", const=True, default=None,
                   help="quantize the first conv too (the default on GPUs with int8 tensor cores, where it runs "
                        "folded onto them; elsewhere it stays float, the usual recipe)")
    g.add_argument("--float-first-conv", action="store_const", const=False, dest="int8_first_conv",
                   help="keep the first conv float")
    g.add_argument("--tuning-log", metavar="LOG", help="a tuning log (minitvm tune) to take the best configs from")
    g.add_argument("--tactics", type=at_least(0), default=0, metavar="K",
                   help="time up to K configs of each kernel nothing tuned answers, on the GPU, and build with "
                        "the fastest (cached per device; default 0: off)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars for reading images, calibrating, compiling and benchmarking (default: "
                        "only on a terminal)")
    c = p.add_argument_group("int8 calibration")
    source = c.add_mutually_exclusive_group()
    source.add_argument("--calibration-data", metavar="DIR|NPZ",
                        help="calibrate int8 on real inputs: a folder of images (resized to 256, center-cropped to "
                             "the input size, ImageNet mean/std; needs Pillow: pip install 'minitvm[images]') or an "
                             ".npz of input arrays by input name")
    source.add_argument("--calibrate-random", action="store_true",
                        help="calibrate int8 on random noise instead: for timing only, the accuracy then means "
                             "nothing (warns)")
    c.add_argument("--calibration-samples", type=at_least(1), metavar="N",
                   help="use at most N calibration samples (one sample = one batch of the model's input; default: "
                        "every sample of --calibration-data, 4 with --calibrate-random)")
    p.add_argument("--seed", type=int, default=0, help="seed of random inputs and random calibration (default 0)")


def check_model(p, args) -> None:
    """Refuse MODEL and shape options that cannot work (no such file, ``--image-size`` for an ONNX
    model, an input given twice); sets ``args.shapes``, the ``--input-shapes`` merged."""
    if is_model_file(args.model) and not os.path.isfile(args.model):
        p.error(f"model {args.model}: no such file")
    if args.image_size is not None and is_model_file(args.model):
        p.error("--image-size is for zoo models; give an ONNX model's shapes with --input-shapes")
    try:
        args.shapes = merged_shapes(args)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))


def load_model(args, init: bool = True):
    """MODEL's graph at the shapes asked for (``minitvm.models.load_graph``); an ONNX model's
    dynamic batch is 1 unless ``--batch`` or ``--input-shapes`` say otherwise. ``init=False``:
    a zoo model without weights (for ``info``)."""
    from ..models import is_artifact, load_graph, load_onnx, onnx_input_dims
    model, batch = args.model, args.batch
    if is_model_file(model) and not is_artifact(model):
        model = load_onnx(args.model)
        given = args.shapes or {}
        dims = onnx_input_dims(model)
        dynamic = [n for n, d in dims.items() if d and not isinstance(d[0], int) and n not in given
                   and all(isinstance(x, int) for x in d[1:]) and not (None in given and len(dims) == 1)]
        if batch is None and dynamic:
            batch = 1
            print(f"{args.model}: input {dynamic[0]!r} has a dynamic batch; using batch 1 (--batch N for another)")
    return load_graph(model, args.shapes, batch, args.image_size, init=init, names=CLI_NAMES, source=args.model)


def merged_shapes(args):
    """The ``--input-shapes`` options given as one dict (None where none was given)."""
    merged: dict = {}
    for spec in args.input_shapes or ():
        for name, shape in spec.items():
            if name in merged:
                raise argparse.ArgumentTypeError(f"--input-shapes gives input {name or '(unnamed)'} twice")
            merged[name] = shape
    return merged or None


def check_file(p, option: str, path) -> None:
    """Refuse ``option``'s file unless it exists (argparse's usage error)."""
    if path is not None and not os.path.isfile(path):
        p.error(f"{option} {path}: no such file")


def check_writable(p, option: str, path) -> None:
    """Refuse ``option``'s output path unless its folder exists and it is not a folder."""
    if path is None:
        return
    if os.path.isdir(path):
        p.error(f"{option} {path}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        p.error(f"{option} {path}: the folder {folder} does not exist")
