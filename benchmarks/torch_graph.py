"""Run a minitvm float graph in PyTorch: the same graph and the same weights, as torch ops.

The peer of ``benchmarks/models.py`` for every zoo model, including those torchvision lacks
(DRN-C-26, DCN-ResNet-101). Each graph node becomes one torch call (``conv2d``, ``batch_norm``,
``max_pool2d``, ``torchvision.ops.deform_conv2d`` ...), so PyTorch runs what minitvm runs, before
minitvm's own graph passes (batch norm stays a separate op, as in a torchvision model).

    from torch_graph import GraphModule
    module = GraphModule(graph).to("cuda", torch.float16).to(memory_format=torch.channels_last)
    (y,) = module(x)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _pads(padding):
    """(top, left, bottom, right) -> torch's symmetric (h, w), or None when asymmetric."""
    top, left, bottom, right = padding
    return (top, left) if (top, left) == (bottom, right) else None


def _pool(fn, x, a, **kw):
    pads = _pads(a["padding"])
    if pads is None:
        t, l, b, r = a["padding"]
        x = F.pad(x, (l, r, t, b), value=float("-inf") if fn is F.max_pool2d else 0.0)
        pads = (0, 0)
    return fn(x, a["pool_size"], a["strides"] or a["pool_size"], pads, ceil_mode=a.get("ceil_mode", False), **kw)


def _conv2d(x, w, b, a):
    pads = _pads(a["padding"])
    if pads is None:
        t, l, bt, r = a["padding"]
        x, pads = F.pad(x, (l, r, t, bt)), (0, 0)
    return F.conv2d(x, w, b, a["strides"], pads, a["dilation"], a["groups"])


def _deformable_conv2d(x, offset, w, a):
    try:
        from torchvision.ops import deform_conv2d
    except ImportError:   # torchvision missing: the same bilinear sampling, written out
        return _deform_conv2d_gather(x, offset, w, a)
    return deform_conv2d(x, offset.to(x.dtype), w, None, a["strides"], _pads(a["padding"]), a["dilation"])


def _deform_conv2d_gather(x, offset, w, a):
    """Deformable conv (one deformable group) by explicit bilinear sampling: the reference for
    machines without torchvision."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (dh, dw), (ph, pw) = a["strides"], a["dilation"], _pads(a["padding"])
    oh, ow = offset.shape[-2:]
    ky, kx = torch.meshgrid(torch.arange(kh), torch.arange(kw), indexing="ij")
    base_y = (torch.arange(oh) * sh - ph).view(1, oh, 1) + (ky.reshape(-1) * dh).view(-1, 1, 1)
    base_x = (torch.arange(ow) * sw - pw).view(1, 1, ow) + (kx.reshape(-1) * dw).view(-1, 1, 1)
    off = offset.view(n, kh * kw, 2, oh, ow).to(x.dtype)
    py = base_y.to(x) + off[:, :, 0]
    px = base_x.to(x) + off[:, :, 1]
    y0, x0 = torch.floor(py), torch.floor(px)
    cols = 0
    for yy, xx, wt in ((y0, x0, (y0 + 1 - py) * (x0 + 1 - px)), (y0, x0 + 1, (y0 + 1 - py) * (px - x0)),
                       (y0 + 1, x0, (py - y0) * (x0 + 1 - px)), (y0 + 1, x0 + 1, (py - y0) * (px - x0))):
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < wd)
        idx = (yy.clamp(0, h - 1) * wd + xx.clamp(0, wd - 1)).long().view(n, 1, -1).expand(n, c, -1)
        v = torch.gather(x.reshape(n, c, h * wd), 2, idx).view(n, c, kh * kw, oh, ow)
        cols = cols + v * (wt * inside).unsqueeze(1)
    return torch.einsum("nckhw,ock->nohw", cols, w.reshape(o, c, kh * kw))


def _dense(x, w, b, a):
    return F.linear(x, w, b)


#: op name -> f(inputs as tensors, attrs) -> tensor
OPS = {
    "conv2d": lambda i, a: _conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a),
    "deformable_conv2d": lambda i, a: _deformable_conv2d(i[0], i[1], i[2], a),
    "batch_norm": lambda i, a: F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a["epsilon"]),
    "relu": lambda i, a: F.relu(i[0]),
    "add": lambda i, a: i[0] + i[1],
    "max_pool2d": lambda i, a: _pool(F.max_pool2d, i[0], a),
    "avg_pool2d": lambda i, a: _pool(F.avg_pool2d, i[0], a, count_include_pad=a.get("count_include_pad", True)),
    "global_avg_pool2d": lambda i, a: F.adaptive_avg_pool2d(i[0], 1),
    "flatten": lambda i, a: torch.flatten(i[0], a.get("axis", 1)),
    "dense": lambda i, a: _dense(i[0], i[1], i[2] if len(i) > 2 else None, a),
    "concatenate": lambda i, a: torch.cat(i, a["axis"]),
    "softmax": lambda i, a: torch.softmax(i[0], a.get("axis", -1)),
}


class GraphModule(torch.nn.Module):
    """A float minitvm :class:`~minitvm.graph.Graph` as a torch module: constants become buffers
    (so ``.to(device, dtype)`` moves them), ops are replayed in the graph's order."""

    def __init__(self, graph):
        super().__init__()
        self.order, self.inputs, self.outputs = [], [], list(graph.outputs)
        self._names = {}
        for name in graph.topo_order():
            node = graph.node(name)
            if node.is_const:
                key = f"c{len(self._names)}"
                self._names[name] = key
                self.register_buffer(key, torch.from_numpy(node.value.copy()))
            elif node.is_op:
                if node.op not in OPS:
                    raise NotImplementedError(f"torch_graph: no torch op for {node.op!r} (node {name!r})")
                self.order.append((name, node.op, list(node.inputs), dict(node.attrs)))
            else:
                self.inputs.append(name)

    def forward(self, *xs):
        env = dict(zip(self.inputs, xs))
        for name, key in self._names.items():
            env[name] = getattr(self, key)
        for name, op, inputs, attrs in self.order:
            env[name] = OPS[op]([env[i] for i in inputs], attrs)
        return tuple(env[o] for o in self.outputs)
