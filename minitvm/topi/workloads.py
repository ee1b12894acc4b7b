"""Convolution workloads of the seed models, derived from their architectures.

Each workload is ``Conv(name, N, C, H, W, O, K, stride, pad, dilation, groups)`` (square
kernels); duplicates (same shape) are listed once with ``count`` repeats.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Conv:
    """One 2-D convolution layer's shape."""

    name: str
    N: int
    C: int
    H: int
    W: int
    O: int
    K: int
    stride: int = 1
    pad: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def out_hw(self) -> tuple:
        ext = (self.K - 1) * self.dilation + 1
        return ((self.H + 2 * self.pad - ext) // self.stride + 1, (self.W + 2 * self.pad - ext) // self.stride + 1)

    @property
    def macs(self) -> int:
        oh, ow = self.out_hw
        return self.N * self.O * oh * ow * (self.C // self.groups) * self.K * self.K

    def key(self) -> tuple:
        return (self.N, self.C, self.H, self.W, self.O, self.K, self.stride, self.pad, self.dilation, self.groups)


def _unique(convs):
    seen = OrderedDict()
    for c in convs:
        if c.key() in seen:
            seen[c.key()][1] += 1
        else:
            seen[c.key()] = [c, 1]
    return [(c, n) for c, n in seen.values()]


def resnet_bottleneck_convs(batch: int, layers=(3, 4, 6, 3), width=64, groups=1, width_per_group=64,
                            image=224, name="resnet50"):
    """Every conv of a bottleneck ResNet (ResNet-50/101, ResNeXt with groups > 1)."""
    convs = [Conv(f"{name}.conv1", batch, 3, image, image, 64, 7, 2, 3)]
    h = image // 4
    cin = 64
    for stage, blocks in enumerate(layers):
        planes = width * 2 ** stage
        mid = int(planes * width_per_group / 64) * groups
        out = planes * 4
        for b in range(blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            p = f"{name}.layer{stage + 1}.{b}"
            convs.append(Conv(p + ".conv1", batch, cin, h, h, mid, 1))
            convs.append(Conv(p + ".conv2", batch, mid, h, h, mid, 3, stride, 1, 1, groups))
            h2 = h // stride
            convs.append(Conv(p + ".conv3", batch, mid, h2, h2, out, 1))
            if b == 0:
                convs.append(Conv(p + ".downsample", batch, cin, h, h, out, 1, stride))
            cin, h = out, h2
    return convs


def resnet50_convs(batch: int = 1):
    """ResNet-50's 53 convolutions at 224x224."""
    return resnet_bottleneck_convs(batch)


def resnext50_convs(batch: int = 1):
    """ResNeXt-50 32x4d's convolutions (grouped 3x3 with 32 groups)."""
    return resnet_bottleneck_convs(batch, groups=32, width_per_group=4, name="resnext50")


def vgg19_convs(batch: int = 1, image=224):
    """VGG-19's 16 convolutions."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
    convs, c, h, i = [], 3, image, 0
    for v in cfg:
        if v == "M":
            h //= 2
            continue
        convs.append(Conv(f"vgg19.conv{i}", batch, c, h, h, v, 3, 1, 1))
        c, i = v, i + 1
    return convs


def unique(convs):
    """[(conv, count)] with repeated shapes merged."""
    return _unique(convs)
