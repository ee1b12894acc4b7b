"""The model zoo: the seed models as graphs with deterministic, well-scaled random weights.

``get_model(name, batch, image_size)`` builds the architecture of the torchvision (or DRN /
DCN paper) network at any batch and input size, in numpy only. Weights are graph constants
(and returned as a ``params`` dict too). They are seeded per parameter name, so a layer's
weights do not depend on the batch, the image size or which other layers exist:

* conv and dense weights are He-scaled (``std = sqrt(2 / fan_in)``; ``1 / fan_in`` for the
  classifier), biases small;
* batch norm has gamma ~ 1, beta ~ 0, running mean ~ 0, running var ~ 1; the last batch norm
  of each residual branch has gamma ~ ``1 / sqrt(blocks)`` so activations stay O(1) through
  deep residual stacks (the spirit of zero-init residuals, without switching branches off).

Conv node names follow ``minitvm/topi/workloads.py`` (``layer1.0.conv1``, ``Mixed_5b.branch1x1``,
``conv3`` ...), batch norms are named ``<conv>_bn``. The input is ``data`` (NCHW float32), the
single output the classifier's logits.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..errors import GraphError, ShapeError
from .ir import Graph

__all__ = ["get_model", "list_models"]


class _Builder:
    """Adds layers (with their weights) to a graph."""

    def __init__(self, name, seed=0, init=True, dtype="float32"):
        self.g = Graph(name)
        self.seed = seed
        self.init = init
        self.dtype = np.dtype(dtype)

    # -- weights
    def _rng(self, pname):
        return np.random.default_rng([self.seed, zlib.crc32(pname.encode())])

    def param(self, pname, shape, kind, **kw):
        """A constant ``pname`` of ``shape``: kind normal(std), uniform(lo, hi) or const(value)."""
        shape = tuple(int(s) for s in shape)
        if not self.init:
            value = np.broadcast_to(np.zeros((), self.dtype), shape)
        else:
            rng = self._rng(pname)
            if kind == "normal":
                value = (rng.standard_normal(shape, dtype=np.float32) * kw["std"] + kw.get("mean", 0.0))
            elif kind == "uniform":
                value = rng.uniform(kw["lo"], kw["hi"], shape)
            else:
                value = np.full(shape, kw["value"])
            value = value.astype(self.dtype)
        return self.g.add_const(pname, value)

    # -- layers
    def conv(self, name, x, out_ch, k, stride=1, pad=0, dilation=1, groups=1, bias=False, std=None):
        """conv2d ``name``; ``k``/``stride``/``dilation`` int or pair, ``pad`` int, pair or 4-tuple."""
        cin = self.g.node(x).type.shape[1]
        kh, kw = (k, k) if isinstance(k, int) else k
        if cin % groups:
            raise GraphError(f"zoo: {name}: {cin} channels do not split into {groups} groups")
        fan_in = cin // groups * kh * kw
        w = self.param(f"{name}.weight", (out_ch, cin // groups, kh, kw), "normal",
                       std=np.sqrt(2.0 / fan_in) if std is None else std)
        ins = [x, w]
        if bias:
            ins.append(self.param(f"{name}.bias", (out_ch,), "normal", std=0.01))
        return self.g.add_op("conv2d", ins, {"strides": stride, "padding": pad, "dilation": dilation,
                                             "groups": groups}, name=name)

    def bn(self, name, x, eps=1e-5, gamma=1.0):
        """Inference batch_norm ``name`` with sane statistics; ``gamma`` sets the scale's centre."""
        c = self.g.node(x).type.shape[1]
        ins = [x,
               self.param(f"{name}.weight", (c,), "uniform", lo=0.8 * gamma, hi=1.2 * gamma),
               self.param(f"{name}.bias", (c,), "normal", std=0.05),
               self.param(f"{name}.running_mean", (c,), "normal", std=0.05),
               self.param(f"{name}.running_var", (c,), "uniform", lo=0.8, hi=1.2)]
        return self.g.add_op("batch_norm", ins, {"epsilon": eps}, name=name)

    def op(self, op, ins, name, **attrs):
        """Any op."""
        return self.g.add_op(op, ins if isinstance(ins, list) else [ins], attrs, name=name)

    def relu(self, x, name):
        """relu."""
        return self.op("relu", x, name)

    def conv_bn_relu(self, name, x, out_ch, k, stride=1, pad=0, dilation=1, groups=1, relu=True, eps=1e-5,
                     gamma=1.0):
        """conv -> bn (``name``_bn) -> relu (``name``_relu)."""
        y = self.bn(f"{name}_bn", self.conv(name, x, out_ch, k, stride, pad, dilation, groups), eps, gamma)
        return self.relu(y, f"{name}_relu") if relu else y

    def classifier(self, x, num_classes, name="fc"):
        """global average pool -> flatten -> dense ``name``."""
        x = self.op("global_avg_pool2d", x, "avgpool")
        x = self.op("flatten", x, "flatten")
        return self.dense(name, x, num_classes, relu_after=False)

    def dense(self, name, x, units, relu_after=True):
        """dense ``name`` with bias (He-scaled when a relu follows)."""
        k = self.g.node(x).type.shape[1]
        w = self.param(f"{name}.weight", (units, k), "normal", std=np.sqrt((2.0 if relu_after else 1.0) / k))
        b = self.param(f"{name}.bias", (units,), "normal", std=0.01)
        return self.op("dense", [x, w, b], name)


# ---------------------------------------------------------------------- ResNet family
def _resnet(name, b, x, layers, bottleneck, groups=1, width_per_group=64, deformable_stage=None):
    """torchvision ResNet (v1.5: stride on the 3x3 conv) / ResNeXt; optional DCN in one stage."""
    x = b.conv_bn_relu("conv1", x, 64, 7, 2, 3)
    x = b.op("max_pool2d", x, "maxpool", pool_size=3, strides=2, padding=1)
    cin = 64
    total = sum(layers)
    res_gamma = 1.0 / np.sqrt(total)
    for stage, blocks in enumerate(layers):
        planes = 64 * 2 ** stage
        for i in range(blocks):
            stride = 2 if i == 0 and stage > 0 else 1
            p = f"layer{stage + 1}.{i}"
            if bottleneck:
                mid = int(planes * width_per_group / 64) * groups
                out = planes * 4
                y = b.conv_bn_relu(p + ".conv1", x, mid, 1)
                if deformable_stage == stage:
                    y = _deform_conv_bn_relu(b, p + ".conv2", y, mid, stride)
                else:
                    y = b.conv_bn_relu(p + ".conv2", y, mid, 3, stride, 1, groups=groups)
                y = b.conv_bn_relu(p + ".conv3", y, out, 1, relu=False, gamma=res_gamma)
            else:
                out = planes
                y = b.conv_bn_relu(p + ".conv1", x, out, 3, stride, 1)
                y = b.conv_bn_relu(p + ".conv2", y, out, 3, 1, 1, relu=False, gamma=res_gamma)
            if stride != 1 or cin != out:
                sc = b.conv_bn_relu(p + ".downsample", x, out, 1, stride, relu=False)
            else:
                sc = x
            x = b.relu(b.op("add", [y, sc], p + ".add"), p + ".relu")
            cin = out
    return x


def _deform_conv_bn_relu(b, name, x, out_ch, stride, dg=1):
    """DCN v1 3x3: offsets from a 3x3 conv (``name``.offset, with bias), then deformable_conv2d."""
    cin = b.g.node(x).type.shape[1]
    off = b.conv(f"{name}.offset", x, 2 * dg * 9, 3, stride, 1, bias=True, std=0.3 / np.sqrt(cin * 9))
    w = b.param(f"{name}.weight", (out_ch, cin, 3, 3), "normal", std=np.sqrt(2.0 / (cin * 9)))
    y = b.g.add_op("deformable_conv2d", [x, off, w], {"strides": stride, "padding": 1, "deformable_groups": dg},
                   name=name)
    return b.relu(b.bn(f"{name}_bn", y), f"{name}_relu")


# ---------------------------------------------------------------------- VGG
def _vgg19(b, x, num_classes):
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    i = m = 0
    for v in cfg:
        if v == "M":
            x = b.op("max_pool2d", x, f"pool{m}", pool_size=2, strides=2)
            m += 1
        else:
            x = b.relu(b.conv(f"conv{i}", x, v, 3, 1, 1, bias=True), f"conv{i}_relu")
            i += 1
    # torchvision's AdaptiveAvgPool2d((7, 7)) is the identity at 224x224; at other sizes the
    # classifier reads the feature map as it is (512 * h * w features).
    x = b.op("flatten", x, "flatten")
    x = b.relu(b.dense("fc6", x, 4096), "fc6_relu")
    x = b.relu(b.dense("fc7", x, 4096), "fc7_relu")
    return b.dense("fc8", x, num_classes, relu_after=False)


# ---------------------------------------------------------------------- Inception V3
def _inception_v3(b, x, num_classes):
    eps = 1e-3

    def cbr(name, x, o, k, stride=1, pad=0):
        return b.conv_bn_relu(name, x, o, k, stride, pad, eps=eps)

    def avgpool3(name, x):
        return b.op("avg_pool2d", x, name, pool_size=3, strides=1, padding=1, count_include_pad=True)

    def maxpool3(name, x):
        return b.op("max_pool2d", x, name, pool_size=3, strides=2)

    def cat(name, xs):
        return b.op("concatenate", xs, name, axis=1)

    x = cbr("Conv2d_1a_3x3", x, 32, 3, 2)
    x = cbr("Conv2d_2a_3x3", x, 32, 3)
    x = cbr("Conv2d_2b_3x3", x, 64, 3, pad=1)
    x = maxpool3("maxpool1", x)
    x = cbr("Conv2d_3b_1x1", x, 80, 1)
    x = cbr("Conv2d_4a_3x3", x, 192, 3)
    x = maxpool3("maxpool2", x)
    for n, pf in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):  # InceptionA
        b1 = cbr(n + ".branch1x1", x, 64, 1)
        b5 = cbr(n + ".branch5x5_2", cbr(n + ".branch5x5_1", x, 48, 1), 64, 5, pad=2)
        b3 = cbr(n + ".branch3x3dbl_1", x, 64, 1)
        b3 = cbr(n + ".branch3x3dbl_3", cbr(n + ".branch3x3dbl_2", b3, 96, 3, pad=1), 96, 3, pad=1)
        bp = cbr(n + ".branch_pool", avgpool3(n + ".avgpool", x), pf, 1)
        x = cat(n, [b1, b5, b3, bp])
    n = "Mixed_6a"  # InceptionB
    b3 = cbr(n + ".branch3x3", x, 384, 3, 2)
    bd = cbr(n + ".branch3x3dbl_1", x, 64, 1)
    bd = cbr(n + ".branch3x3dbl_3", cbr(n + ".branch3x3dbl_2", bd, 96, 3, pad=1), 96, 3, 2)
    x = cat(n, [b3, bd, maxpool3(n + ".maxpool", x)])
    for n, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):  # InceptionC
        b1 = cbr(n + ".branch1x1", x, 192, 1)
        b7 = cbr(n + ".branch7x7_1", x, c7, 1)
        b7 = cbr(n + ".branch7x7_2", b7, c7, (1, 7), pad=(0, 3))
        b7 = cbr(n + ".branch7x7_3", b7, 192, (7, 1), pad=(3, 0))
        bd = cbr(n + ".branch7x7dbl_1", x, c7, 1)
        bd = cbr(n + ".branch7x7dbl_2", bd, c7, (7, 1), pad=(3, 0))
        bd = cbr(n + ".branch7x7dbl_3", bd, c7, (1, 7), pad=(0, 3))
        bd = cbr(n + ".branch7x7dbl_4", bd, c7, (7, 1), pad=(3, 0))
        bd = cbr(n + ".branch7x7dbl_5", bd, 192, (1, 7), pad=(0, 3))
        bp = cbr(n + ".branch_pool", avgpool3(n + ".avgpool", x), 192, 1)
        x = cat(n, [b1, b7, bd, bp])
    n = "Mixed_7a"  # InceptionD
    b3 = cbr(n + ".branch3x3_2", cbr(n + ".branch3x3_1", x, 192, 1), 320, 3, 2)
    b7 = cbr(n + ".branch7x7x3_1", x, 192, 1)
    b7 = cbr(n + ".branch7x7x3_2", b7, 192, (1, 7), pad=(0, 3))
    b7 = cbr(n + ".branch7x7x3_3", b7, 192, (7, 1), pad=(3, 0))
    b7 = cbr(n + ".branch7x7x3_4", b7, 192, 3, 2)
    x = cat(n, [b3, b7, maxpool3(n + ".maxpool", x)])
    for n in ("Mixed_7b", "Mixed_7c"):  # InceptionE
        b1 = cbr(n + ".branch1x1", x, 320, 1)
        b3 = cbr(n + ".branch3x3_1", x, 384, 1)
        b3 = cat(n + ".branch3x3", [cbr(n + ".branch3x3_2a", b3, 384, (1, 3), pad=(0, 1)),
                                    cbr(n + ".branch3x3_2b", b3, 384, (3, 1), pad=(1, 0))])
        bd = cbr(n + ".branch3x3dbl_2", cbr(n + ".branch3x3dbl_1", x, 448, 1), 384, 3, pad=1)
        bd = cat(n + ".branch3x3dbl", [cbr(n + ".branch3x3dbl_3a", bd, 384, (1, 3), pad=(0, 1)),
                                       cbr(n + ".branch3x3dbl_3b", bd, 384, (3, 1), pad=(1, 0))])
        bp = cbr(n + ".branch_pool", avgpool3(n + ".avgpool", x), 192, 1)
        x = cat(n, [b1, b3, bd, bp])
    return b.classifier(x, num_classes)


# ---------------------------------------------------------------------- DRN-C-26
def _drn_c_26(b, x, num_classes):
    """DRN-C-26 (Yu et al., 2017) as in ``topi/workloads.drn_c26_convs``: conv levels 1, 2, 7, 8;
    basic residual blocks in levels 3-6; levels 5-8 dilate (2, 4, 2, 1) instead of striding."""
    x = b.conv_bn_relu("layer0", x, 16, 7, 1, 3)
    channels = (16, 32, 64, 128, 256, 512, 512, 512)
    layers = (1, 1, 2, 2, 2, 2, 1, 1)
    strides = (1, 2, 2, 2, 1, 1, 1, 1)
    dilations = (1, 1, 1, 1, 2, 4, 2, 1)
    c = 16
    res_gamma = 1.0 / np.sqrt(8)
    for i, (o, n, st, dil) in enumerate(zip(channels, layers, strides, dilations)):
        for blk in range(n):
            s = st if blk == 0 else 1
            p = f"layer{i + 1}.{blk}"
            if i in (0, 1, 6, 7):
                x = b.conv_bn_relu(p + ".conv", x, o, 3, s, dil, dil)
            else:
                y = b.conv_bn_relu(p + ".conv1", x, o, 3, s, dil, dil)
                y = b.conv_bn_relu(p + ".conv2", y, o, 3, 1, dil, dil, relu=False, gamma=res_gamma)
                sc = b.conv_bn_relu(p + ".downsample", x, o, 1, s, relu=False) if blk == 0 and (s != 1 or c != o) else x
                x = b.relu(b.op("add", [y, sc], p + ".add"), p + ".relu")
            c = o
    return b.classifier(x, num_classes)


# ---------------------------------------------------------------------- registry
_MODELS = {
    # name: (builder, default image size, smallest image size)
    "vgg19": (lambda b, x, nc: _vgg19(b, x, nc), 224, 32),
    "resnet18": (lambda b, x, nc: b.classifier(_resnet("resnet18", b, x, (2, 2, 2, 2), False), nc), 224, 32),
    "resnet50": (lambda b, x, nc: b.classifier(_resnet("resnet50", b, x, (3, 4, 6, 3), True), nc), 224, 32),
    "resnet101": (lambda b, x, nc: b.classifier(_resnet("resnet101", b, x, (3, 4, 23, 3), True), nc), 224, 32),
    "resnext50_32x4d": (lambda b, x, nc: b.classifier(
        _resnet("resnext50_32x4d", b, x, (3, 4, 6, 3), True, groups=32, width_per_group=4), nc), 224, 32),
    "inception_v3": (lambda b, x, nc: _inception_v3(b, x, nc), 299, 75),
    "drn_c_26": (lambda b, x, nc: _drn_c_26(b, x, nc), 224, 8),
    "dcn_resnet101": (lambda b, x, nc: b.classifier(
        _resnet("dcn_resnet101", b, x, (3, 4, 23, 3), True, deformable_stage=3), nc), 224, 32),
}


def list_models() -> list[str]:
    """Names accepted by :func:`get_model`."""
    return list(_MODELS)


def get_model(name: str, batch: int = 1, image_size: int | None = None, num_classes: int = 1000,
              dtype: str = "float32", seed: int = 0, init: bool = True):
    """``(graph, params)`` of zoo model ``name`` for ``batch`` images of ``image_size`` pixels.

    ``image_size`` defaults to 224 (299 for ``inception_v3``); an int or ``(height, width)``.
    ``params`` maps constant names to their arrays (the same arrays the graph holds). With
    ``init=False`` the weights are read-only zero-stride views: shapes only, no memory -- for
    shape analysis of full-size models. ``seed`` changes every weight.
    """
    if name not in _MODELS:
        import difflib
        close = difflib.get_close_matches(name, list(_MODELS), n=1)
        raise GraphError(f"unknown zoo model {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                         + f" (models: {', '.join(_MODELS)})")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ShapeError(f"zoo model {name}: num_classes must be a positive integer, got {num_classes!r}")
    build, default, smallest = _MODELS[name]
    size = default if image_size is None else image_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if min(h, w) < smallest:
        raise ShapeError(f"zoo model {name}: image size {h}x{w} is too small (at least {smallest}x{smallest})")
    if batch < 1:
        raise ShapeError(f"zoo model {name}: batch must be positive, got {batch}")
    b = _Builder(name, seed, init, dtype)
    x = b.g.add_input("data", (batch, 3, h, w), dtype)
    b.g.mark_output(build(b, x, num_classes))
    return b.g, b.g.params()
