"""Converters of the element-wise ONNX ops on graph tensors onto the math graph ops
(:mod:`minitvm.graph.ops.math`): the unary functions, Div, Pow, Mod, the comparisons and logic,
Where, n-ary Max / Min / Sum / Mean, and the activations spelled with them (Gelu, Softplus,
Elu, Selu, Celu, Mish ...)."""
from __future__ import annotations

import numpy as np

from .registry import ConverterTable

__all__ = ["CONVERTERS", "scalar"]

#: the element-wise converters
CONVERTERS = ConverterTable()

_UNARY = {"Abs": "abs", "Neg": "negative", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Floor": "floor",
          "Ceil": "ceil", "Round": "round", "Reciprocal": "reciprocal", "Erf": "erf", "Tanh": "tanh", "Sin": "sin",
          "Cos": "cos", "Sign": "sign", "Not": "logical_not"}
_BINARY = {"Div": "divide", "Pow": "power", "Equal": "equal", "Less": "less", "LessOrEqual": "less_equal",
           "Greater": "greater", "GreaterOrEqual": "greater_equal", "And": "logical_and", "Or": "logical_or",
           "Xor": "logical_xor"}


def scalar(imp, node, x, value, suffix):
    """A 0-d constant ``value`` of graph tensor ``x``'s dtype."""
    return imp.new_const(f"{node.name}{suffix}", np.asarray(value, imp.g.node(x).type.dtype))


def _unary(op):
    def convert(imp, node):
        return imp.add(node, op, [imp.tensor(node, node.input(0))])
    convert.__doc__ = f"ONNX element-wise op -> graph ``{op}``."
    return convert


def _binary(op):
    def convert(imp, node):
        return imp.add(node, op, [imp.tensor(node, node.input(0)), imp.tensor(node, node.input(1))])
    convert.__doc__ = f"ONNX element-wise op -> graph ``{op}`` (numpy broadcasting)."
    return convert


for _onnx, _op in _UNARY.items():
    CONVERTERS.converter(_onnx)(_unary(_op))
for _onnx, _op in _BINARY.items():
    CONVERTERS.converter(_onnx)(_binary(_op))


@CONVERTERS.converter("Mod")
def _mod(imp, node):
    """Mod: ``fmod`` = 1 takes the dividend's sign (C fmod), 0 the divisor's (Python's %)."""
    fmod = int(node.get("fmod", 0))
    if fmod not in (0, 1):
        raise node.error(f"= {fmod} must be 0 or 1", "fmod")
    return _binary("fmod" if fmod else "mod")(imp, node)


def _fold_n(imp, node, op, suffix=""):
    """``op`` of every input of ``node``, left to right (one input: itself)."""
    ins = [imp.tensor(node, i) for i in node.inputs if i]
    if not ins:
        raise node.error("needs at least one input")
    y = ins[0]
    for k, x in enumerate(ins[1:], start=1):
        y = imp.add(node, op, [y, x], suffix=suffix if k == len(ins) - 1 else f".{k}")
    return y


@CONVERTERS.converter("Max", "Min")
def _max_min(imp, node):
    """n-ary Max / Min (numpy broadcasting): a chain of ``maximum`` / ``minimum``."""
    return _fold_n(imp, node, "maximum" if node.op == "Max" else "minimum")


@CONVERTERS.converter("Sum")
def _sum(imp, node):
    """n-ary Sum: a chain of ``add``."""
    return _fold_n(imp, node, "add")


@CONVERTERS.converter("Mean")
def _mean(imp, node):
    """n-ary Mean: the sum divided by the count."""
    n = len([i for i in node.inputs if i])
    if n == 1:
        return imp.tensor(node, node.input(0))
    total = _fold_n(imp, node, "add", suffix=".sum")
    return imp.add(node, "divide", [total, scalar(imp, node, total, n, ".count")])


@CONVERTERS.converter("Where")
def _where(imp, node):
    """Where(condition, X, Y) -> graph ``where``."""
    return imp.add(node, "where", [imp.tensor(node, node.input(i)) for i in range(3)])


@CONVERTERS.converter("Gelu")
def _gelu(imp, node):
    """Gelu: ``0.5 x (1 + erf(x / sqrt 2))``; ``approximate = "tanh"``:
    ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``."""
    x = imp.tensor(node, node.input(0))
    mode = node.get("approximate", "none")
    if mode == "none":
        t = imp.add(node, "mul", [x, scalar(imp, node, x, 1 / np.sqrt(2.0), ".rsqrt2")], suffix=".scaled")
        t = imp.add(node, "erf", [t], suffix=".erf")
    elif mode == "tanh":
        cube = imp.add(node, "mul", [imp.add(node, "mul", [x, x], suffix=".sq"), x], suffix=".cube")
        t = imp.add(node, "mul", [cube, scalar(imp, node, x, 0.044715, ".c")], suffix=".cube_scaled")
        t = imp.add(node, "add", [x, t], suffix=".inner")
        t = imp.add(node, "mul", [t, scalar(imp, node, x, np.sqrt(2.0 / np.pi), ".k")], suffix=".inner_scaled")
        t = imp.add(node, "tanh", [t], suffix=".tanh")
    else:
        raise node.error(f"= {mode!r} must be 'none' or 'tanh'", "approximate")
    t = imp.add(node, "add", [t, scalar(imp, node, x, 1.0, ".one")], suffix=".plus_one")
    h = imp.add(node, "mul", [x, scalar(imp, node, x, 0.5, ".half")], suffix=".half_x")
    return imp.add(node, "mul", [h, t])
