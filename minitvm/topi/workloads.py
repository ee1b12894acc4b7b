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
    KW: int = 0       # kernel width when it differs from K (Inception's 1x7 / 7x1)
    pad_w: int = -1   # horizontal padding when it differs from pad

    @property
    def kw(self) -> int:
        return self.KW or self.K

    @property
    def pw(self) -> int:
        return self.pad if self.pad_w < 0 else self.pad_w

    @property
    def padding(self) -> tuple:
        """(top, left, bottom, right)."""
        return (self.pad, self.pw, self.pad, self.pw)

    @property
    def out_hw(self) -> tuple:
        eh = (self.K - 1) * self.dilation + 1
        ew = (self.kw - 1) * self.dilation + 1
        return ((self.H + 2 * self.pad - eh) // self.stride + 1, (self.W + 2 * self.pw - ew) // self.stride + 1)

    @property
    def macs(self) -> int:
        oh, ow = self.out_hw
        return self.N * self.O * oh * ow * (self.C // self.groups) * self.K * self.kw

    def packed_shapes(self, block: int = 4) -> tuple:
        """(data, kernel) shapes of this conv in ``NCHW[block]c`` / ``OIHW[block]o[block]i``, the
        input channels padded to a multiple of ``block`` (the RGB first layer: 3 -> 4)."""
        c = -(-self.C // block)
        return ((self.N, c, self.H, self.W, block),
                (self.O // block, c // self.groups, self.K, self.kw, block, block))

    def key(self) -> tuple:
        return (self.N, self.C, self.H, self.W, self.O, self.K, self.kw, self.stride, self.pad, self.pw,
                self.dilation, self.groups)


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


def inception_v3_convs(batch: int = 1, image: int = 299):
    """Inception V3's 94 convolutions (torchvision's network), 1x7/7x1 ones included."""
    out = []

    def conv(name, c, h, w, o, kh, kw=None, stride=1, ph=0, pw=None):
        kw = kh if kw is None else kw
        pw = ph if pw is None else pw
        out.append(Conv(f"inception_v3.{name}", batch, c, h, w, o, kh, stride, ph, 1, 1,
                        kw if kw != kh else 0, pw if pw != ph else -1))
        return (h + 2 * ph - kh) // stride + 1, (w + 2 * pw - kw) // stride + 1
    h, w = conv("Conv2d_1a_3x3", 3, image, image, 32, 3, stride=2)
    h, w = conv("Conv2d_2a_3x3", 32, h, w, 32, 3)
    h, w = conv("Conv2d_2b_3x3", 32, h, w, 64, 3, ph=1)
    h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    h, w = conv("Conv2d_3b_1x1", 64, h, w, 80, 1)
    h, w = conv("Conv2d_4a_3x3", 80, h, w, 192, 3)
    h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    c = 192
    for i, pool in enumerate((32, 64, 64)):
        n = f"Mixed_5{'bcd'[i]}"
        conv(n + ".branch1x1", c, h, w, 64, 1)
        conv(n + ".branch5x5_1", c, h, w, 48, 1)
        conv(n + ".branch5x5_2", 48, h, w, 64, 5, ph=2)
        conv(n + ".branch3x3dbl_1", c, h, w, 64, 1)
        conv(n + ".branch3x3dbl_2", 64, h, w, 96, 3, ph=1)
        conv(n + ".branch3x3dbl_3", 96, h, w, 96, 3, ph=1)
        conv(n + ".branch_pool", c, h, w, pool, 1)
        c = 64 + 64 + 96 + pool
    conv("Mixed_6a.branch3x3", c, h, w, 384, 3, stride=2)
    conv("Mixed_6a.branch3x3dbl_1", c, h, w, 64, 1)
    conv("Mixed_6a.branch3x3dbl_2", 64, h, w, 96, 3, ph=1)
    conv("Mixed_6a.branch3x3dbl_3", 96, h, w, 96, 3, stride=2)
    h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    c = 768
    for i, c7 in enumerate((128, 160, 160, 192)):
        n = f"Mixed_6{'bcde'[i]}"
        conv(n + ".branch1x1", c, h, w, 192, 1)
        conv(n + ".branch7x7_1", c, h, w, c7, 1)
        conv(n + ".branch7x7_2", c7, h, w, c7, 1, 7, ph=0, pw=3)
        conv(n + ".branch7x7_3", c7, h, w, 192, 7, 1, ph=3, pw=0)
        conv(n + ".branch7x7dbl_1", c, h, w, c7, 1)
        conv(n + ".branch7x7dbl_2", c7, h, w, c7, 7, 1, ph=3, pw=0)
        conv(n + ".branch7x7dbl_3", c7, h, w, c7, 1, 7, ph=0, pw=3)
        conv(n + ".branch7x7dbl_4", c7, h, w, c7, 7, 1, ph=3, pw=0)
        conv(n + ".branch7x7dbl_5", c7, h, w, 192, 1, 7, ph=0, pw=3)
        conv(n + ".branch_pool", c, h, w, 192, 1)
    conv("Mixed_7a.branch3x3_1", c, h, w, 192, 1)
    conv("Mixed_7a.branch3x3_2", 192, h, w, 320, 3, stride=2)
    conv("Mixed_7a.branch7x7x3_1", c, h, w, 192, 1)
    conv("Mixed_7a.branch7x7x3_2", 192, h, w, 192, 1, 7, ph=0, pw=3)
    conv("Mixed_7a.branch7x7x3_3", 192, h, w, 192, 7, 1, ph=3, pw=0)
    conv("Mixed_7a.branch7x7x3_4", 192, h, w, 192, 3, stride=2)
    h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    c = 1280
    for n in ("Mixed_7b", "Mixed_7c"):
        conv(n + ".branch1x1", c, h, w, 320, 1)
        conv(n + ".branch3x3_1", c, h, w, 384, 1)
        conv(n + ".branch3x3_2a", 384, h, w, 384, 1, 3, ph=0, pw=1)
        conv(n + ".branch3x3_2b", 384, h, w, 384, 3, 1, ph=1, pw=0)
        conv(n + ".branch3x3dbl_1", c, h, w, 448, 1)
        conv(n + ".branch3x3dbl_2", 448, h, w, 384, 3, ph=1)
        conv(n + ".branch3x3dbl_3a", 384, h, w, 384, 1, 3, ph=0, pw=1)
        conv(n + ".branch3x3dbl_3b", 384, h, w, 384, 3, 1, ph=1, pw=0)
        conv(n + ".branch_pool", c, h, w, 192, 1)
        c = 2048
    return out


def drn_c26_convs(batch: int = 1, image: int = 224):
    """DRN-C-26: conv layers and basic residual blocks [1, 1, 2, 2, 2, 2, 1, 1]; the last stages
    dilate (2, 4, 2, 1) instead of striding, so the output stays at 1/8 resolution."""
    convs = [Conv("drn_c26.layer0", batch, 3, image, image, 16, 7, 1, 3)]
    channels = (16, 32, 64, 128, 256, 512, 512, 512)
    layers = (1, 1, 2, 2, 2, 2, 1, 1)
    strides = (1, 2, 2, 2, 1, 1, 1, 1)
    dilations = (1, 1, 1, 1, 2, 4, 2, 1)
    h, c = image, 16
    for i, (o, n, st, dil) in enumerate(zip(channels, layers, strides, dilations)):
        for b in range(n):
            s = st if b == 0 else 1
            name = f"drn_c26.layer{i + 1}.{b}"
            if i in (0, 1, 6, 7):
                convs.append(Conv(name + ".conv", batch, c, h, h, o, 3, s, dil, dil))
            else:
                convs.append(Conv(name + ".conv1", batch, c, h, h, o, 3, s, dil, dil))
                if b == 0 and (s != 1 or c != o):
                    convs.append(Conv(name + ".downsample", batch, c, h, h, o, 1, s))
                convs.append(Conv(name + ".conv2", batch, o, (h - 1) // s + 1, (h - 1) // s + 1, o, 3, 1, dil, dil))
            h = (h - 1) // s + 1
            c = o
    return convs


def seed_model_convs(batch: int = 1):
    """Every square convolution of ResNet-50, VGG-19, Inception V3, ResNeXt-50 and DRN-C-26."""
    return (resnet50_convs(batch) + vgg19_convs(batch) + inception_v3_convs(batch)
            + resnext50_convs(batch) + drn_c26_convs(batch))
