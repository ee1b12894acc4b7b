"""Models exported by ``torch.onnx.export`` (the TorchScript exporter and the dynamo one) import,
compile for llvm and match onnxruntime within 1e-4 relative (issue 16's export target). The
classification families of torchvision are written here in small sizes with the same layers and
tensor manipulations (torchvision itself need not be installed): ResNet (basic blocks,
bottlenecks), MobileNetV2 / V3, EfficientNet, ShuffleNetV2, SqueezeNet, DenseNet, Inception,
RegNet, VGG, ViT, ConvNeXt and Swin. Skipped where torch is not installed (as in CI)."""
import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from minitvm.frontend.onnx import from_onnx  # noqa: E402
from minitvm.graph.build import build  # noqa: E402


def cbn(cin, cout, k=3, s=1, g=1, act=nn.ReLU):
    pad = tuple(d // 2 for d in k) if isinstance(k, tuple) else k // 2
    layers = [nn.Conv2d(cin, cout, k, s, pad, groups=g, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class Head(nn.Module):
    def __init__(self, c, n=10):
        super().__init__()
        self.fc = nn.Linear(c, n)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, s):
        super().__init__()
        self.body = nn.Sequential(cbn(cin, cout, 3, s), cbn(cout, cout, act=None))
        self.down = cbn(cin, cout, 1, s, act=None) if s != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.body(x) + self.down(x))


class Bottleneck(BasicBlock):
    def __init__(self, cin, cout, s):
        super().__init__(cin, cout, s)
        self.body = nn.Sequential(cbn(cin, cout // 4, 1), cbn(cout // 4, cout // 4, 3, s), cbn(cout // 4, cout, 1, act=None))


def resnet():
    return nn.Sequential(cbn(3, 16, 7, 2), nn.MaxPool2d(3, 2, 1), BasicBlock(16, 16, 1), BasicBlock(16, 32, 2),
                         Bottleneck(32, 64, 2), Head(64))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, s, t, act=nn.ReLU6, se=False):
        super().__init__()
        hid = cin * t
        layers = [cbn(cin, hid, 1, act=act), cbn(hid, hid, 3, s, g=hid, act=act)]
        if se:
            layers.append(SqueezeExcite(hid))
        self.body = nn.Sequential(*layers, cbn(hid, cout, 1, act=None))
        self.res = s == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.res else self.body(x)


class SqueezeExcite(nn.Module):
    def __init__(self, c, gate=nn.Hardsigmoid):
        super().__init__()
        self.fc1, self.fc2, self.gate = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


def mobilenet_v2():
    return nn.Sequential(cbn(3, 16, 3, 2, act=nn.ReLU6), InvertedResidual(16, 16, 1, 2), InvertedResidual(16, 24, 2, 4),
                         cbn(24, 64, 1, act=nn.ReLU6), Head(64))


def mobilenet_v3():
    return nn.Sequential(cbn(3, 16, 3, 2, act=nn.Hardswish), InvertedResidual(16, 16, 1, 3, nn.Hardswish, se=True),
                         InvertedResidual(16, 24, 2, 3, nn.ReLU, se=True), cbn(24, 48, 1, act=nn.Hardswish), Head(48))


def efficientnet():
    return nn.Sequential(cbn(3, 16, 3, 2, act=nn.SiLU), InvertedResidual(16, 16, 1, 4, nn.SiLU, se=True),
                         InvertedResidual(16, 24, 2, 4, nn.SiLU, se=True), Head(24))


class ShuffleBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.branch = nn.Sequential(cbn(c // 2, c // 2, 1), cbn(c // 2, c // 2, 3, g=c // 2, act=None), cbn(c // 2, c // 2, 1))

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        out = torch.cat((a, self.branch(b)), dim=1)
        n, c, h, w = out.size()
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def shufflenet():
    return nn.Sequential(cbn(3, 16, 3, 2), nn.MaxPool2d(3, 2, 1), ShuffleBlock(16), ShuffleBlock(16), Head(16))


class Fire(nn.Module):
    def __init__(self, cin, sq, ex):
        super().__init__()
        self.sq, self.e1, self.e3 = nn.Conv2d(cin, sq, 1), nn.Conv2d(sq, ex, 1), nn.Conv2d(sq, ex, 3, padding=1)

    def forward(self, x):
        s = F.relu(self.sq(x))
        return torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)


def squeezenet():
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(16, 4, 8),
                         Fire(16, 4, 8), nn.Dropout(0.5), nn.Conv2d(16, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


class DenseLayer(nn.Module):
    def __init__(self, cin, g):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 2 * g, 1, bias=False),
                                  nn.BatchNorm2d(2 * g), nn.ReLU(), nn.Conv2d(2 * g, g, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def densenet():
    return nn.Sequential(cbn(3, 16, 3, 2), DenseLayer(16, 8), DenseLayer(24, 8), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AvgPool2d(2, 2), Head(32))


class InceptionBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.b1, self.b3 = cbn(c, 8, 1), nn.Sequential(cbn(c, 8, 1), cbn(8, 8, (1, 3)), cbn(8, 8, (3, 1)))
        self.pool = cbn(c, 8, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.pool(F.avg_pool2d(x, 3, 1, 1))], 1)


def inception():
    return nn.Sequential(cbn(3, 16, 3, 2), nn.MaxPool2d(3, 2, ceil_mode=True), InceptionBlock(16), Head(24))


def regnet():
    return nn.Sequential(cbn(3, 16, 3, 2), BasicBlock(16, 16, 1), cbn(16, 32, 3, 2, g=4), cbn(32, 32, 1), Head(32))


def vgg():
    return nn.Sequential(cbn(3, 8), nn.MaxPool2d(2), cbn(8, 16), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d((2, 2)),
                         nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 10))


class ViT(nn.Module):
    def __init__(self, d=32, heads=4):
        super().__init__()
        self.patch = nn.Conv2d(3, d, 8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 17, d) * 0.1)
        self.ln1, self.ln2, self.ln = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        y = self.ln1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        x = x + self.mlp(self.ln2(x))
        return self.head(self.ln(x)[:, 0])


class ConvNeXtBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.dw = nn.Conv2d(d, d, 7, padding=3, groups=d)
        self.ln = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.scale = nn.Parameter(torch.full((d,), 0.5))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        return x + (self.scale * self.mlp(self.ln(y))).permute(0, 3, 1, 2)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def convnext():
    return nn.Sequential(nn.Conv2d(3, 16, 4, 4), LayerNorm2d(16, eps=1e-6), ConvNeXtBlock(16), LayerNorm2d(16, eps=1e-6),
                         nn.Conv2d(16, 32, 2, 2), ConvNeXtBlock(32), Head(32))


class WindowAttention(nn.Module):
    """Swin's shifted-window attention on [N, H, W, C] with a relative position bias table."""

    def __init__(self, d, heads=2, win=4, shift=2):
        super().__init__()
        self.heads, self.win, self.shift = heads, win, shift
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.table = nn.Parameter(torch.randn((2 * win - 1) ** 2, heads) * 0.1)
        coords = torch.stack(torch.meshgrid(torch.arange(win), torch.arange(win), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + win - 1
        self.register_buffer("index", (rel[..., 0] * (2 * win - 1) + rel[..., 1]).flatten())

    def forward(self, x):
        n, h, w, c = x.shape
        win, heads = self.win, self.heads
        x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        x = x.view(n, h // win, win, w // win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, win * win, c)
        q, k, v = self.qkv(x).reshape(x.shape[0], win * win, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
        bias = self.table[self.index].view(win * win, win * win, heads).permute(2, 0, 1)
        x = (F.softmax(attn + bias.unsqueeze(0), dim=-1) @ v).transpose(1, 2).reshape(-1, win * win, c)
        x = self.proj(x).view(n, h // win, w // win, win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, c)
        return torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))


class Swin(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.patch, self.ln1, self.ln2 = nn.Conv2d(3, d, 4, 4), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = WindowAttention(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        x = self.patch(x).permute(0, 2, 3, 1)
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return self.head(x.mean(dim=(1, 2)))


MODELS = {"resnet": resnet, "mobilenet_v2": mobilenet_v2, "mobilenet_v3": mobilenet_v3, "efficientnet": efficientnet,
          "shufflenet_v2": shufflenet, "squeezenet": squeezenet, "densenet": densenet, "inception": inception,
          "regnet": regnet, "vgg": vgg, "vit": ViT, "convnext": convnext, "swin": Swin}


def exported(model, x, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
            program.save(buf)
        else:
            torch.onnx.export(model, (x,), buf, opset_version=17, dynamo=False, input_names=["x"],
                              output_names=["y"])
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", list(MODELS))
def test_exported_model_matches_onnxruntime(name, dynamo):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 32, 32)
    proto = exported(model, x, dynamo)
    feed = {proto.graph.input[0].name: x.numpy()}
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    graph, _ = from_onnx(proto)
    got = build(graph, "llvm").run(feed)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
