"""Getting a model ready to compile, shared by :func:`minitvm.compile` and the ``minitvm``
command: the target ``auto`` stands for, loading a zoo model or an ONNX file, and int8
quantization for a target's int8 templates."""
from __future__ import annotations

import os


def _pick_target(name: str):
    """The Target of ``--target`` (``auto``: CUDA where a GPU is present, else LLVM)."""
    from .target import Target
    if name != "auto":
        return Target(name)
    from .runtime import cuda
    return Target("cuda" if cuda.device_count() > 0 else "llvm")


def _load_model(model: str, batch: int, image_size):
    """A zoo model by name, or an ONNX file by path."""
    if model.endswith(".onnx") or os.path.exists(model):
        from .frontend import from_onnx
        graph, _ = from_onnx(model)
        return graph
    from .graph import zoo
    graph, _ = zoo.get_model(model, batch=batch, image_size=image_size)
    return graph


def quantize_for_target(graph, rng, n_images: int = 4, first_conv=None, target=None, data=None, dense=None):
    """int8 graph in the layouts ``target``'s int8 templates read (NHWC for the tensor cores
    on sm_80+, else NCHW4c for dp4a): max calibration on ``data`` (a list of input dicts) or,
    without it, on ``n_images`` random inputs (``n_images=0``: a global scale, no calibration
    run — for timing only).

    ``first_conv`` / ``dense``: quantize the first conv / the dense layers too (True) or keep
    them float (False); ``None`` takes :func:`int8_recipe`'s choice for the target."""
    from .graph.passes.alter_layout import alter_layout
    from .graph.quantize import qconfig, quantize_graph
    from .target import Target
    if data is None:
        inputs = [n for n in graph.topo_order() if graph.node(n).is_input]
        data = [{n: rng.standard_normal(tuple(graph.node(n).type.shape)).astype(graph.node(n).type.dtype)
                 for n in inputs} for _ in range(n_images)]
    target = Target(target) if target is not None else Target.current()
    recipe = int8_recipe(target)
    if first_conv is not None:
        recipe["skip_conv_layers"] = [] if first_conv else [0]
    if dense is not None:
        recipe["skip_dense_layer"] = not dense
    with qconfig(calibrate_mode="max" if data else "global_scale", **recipe):
        return alter_layout(quantize_graph(graph, data or None), target=target)


def int8_recipe(target) -> dict:
    """Which layers stay float, as ``qconfig`` settings, for ``target``.

    With int8 tensor cores, every conv and dense layer is int8: the first conv runs there with its
    kernel width folded into its channels, and a float first conv or classifier would cost more
    than all the int8 layers of a small model (a float 7x7 conv over 224 x 224 RGB images took a
    quarter of int8 ResNet-50's time at batch 16; VGG-19's float classifier, 40%). Elsewhere the
    usual recipe: the first conv (the most sensitive layer) and the dense layers stay float."""
    tensor_cores = target is not None and "mma_s8_m16n8k32" in target.features
    if tensor_cores:
        return {"skip_conv_layers": [], "skip_dense_layer": False}
    return {"skip_conv_layers": [0], "skip_dense_layer": True}


def _is_quantized(graph) -> bool:
    """Whether ``graph`` already computes convs or dense layers in int8 (a pre-quantized model)."""
    return any(graph.node(n).is_op and graph.node(n).op in ("conv2d", "dense")
               and graph.input_types(n)[0].dtype in ("int8", "uint8") for n in graph.topo_order())
