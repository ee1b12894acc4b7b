"""Train the small CNN of ``examples/quantize_accuracy.py`` on scikit-learn's handwritten digits.

numpy only (im2col convolutions, hand-written backward pass, Adam). The network::

    data [N,1,8,8] -> conv 3x3 (1->8, pad 1) -> relu -> max_pool 2x2 -> conv 3x3 (8->32, pad 1)
         -> relu -> global_avg_pool -> flatten -> dense (32->10) -> logits

The images (8x8, values 0..16) are scaled to [0, 1]. The split is a seeded permutation: the
first 1347 images train, the last 450 are held out; their indices are saved with the weights
in ``examples/data/digits_cnn.npz`` (a few KiB) so the accuracy example and the tests evaluate
on exactly the same held-out set. Run::

    python examples/train_digits_cnn.py            # ~1 minute on a CPU; writes ./digits_cnn.npz

It writes ``digits_cnn.npz`` in the current folder. The shipped weights change only when asked:
``--out examples/data/digits_cnn.npz`` (the tests' accuracy figures are for the shipped ones).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

DEFAULT_OUT = "digits_cnn.npz"   # not the shipped examples/data/digits_cnn.npz: replace that only with --out


def load_digits_split(seed: int = 0, n_test: int = 450):
    """``(x_train, y_train, x_test, y_test, test_idx)``: digits as float32 [N,1,8,8] in [0, 1]."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:-n_test], perm[-n_test:]
    return x[tr], y[tr], x[te], y[te], te


def im2col(x, k=3, pad=1):
    """[N,C,H,W] -> [N, C*k*k, H*W] (stride 1, 'same' padding)."""
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((N, C, k, k, H, W), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i:i + H, j:j + W]
    return cols.reshape(N, C * k * k, H * W)


def col2im(cols, shape, k=3, pad=1):
    """Adjoint of :func:`im2col`."""
    N, C, H, W = shape
    cols = cols.reshape(N, C, k, k, H, W)
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), cols.dtype)
    for i in range(k):
        for j in range(k):
            xp[:, :, i:i + H, j:j + W] += cols[:, :, i, j]
    return xp[:, :, pad:pad + H, pad:pad + W]


def conv_fwd(x, w, b):
    """'same' 3x3 conv; returns (out, cols)."""
    N, C, H, W = x.shape
    cols = im2col(x)
    out = np.einsum("ok,nkp->nop", w.reshape(w.shape[0], -1), cols) + b[None, :, None]
    return out.reshape(N, w.shape[0], H, W), cols


def conv_bwd(dout, cols, w, xshape):
    """Gradients (dx, dw, db) of :func:`conv_fwd`."""
    N, O, H, W = dout.shape
    d = dout.reshape(N, O, H * W)
    dw = np.einsum("nop,nkp->ok", d, cols).reshape(w.shape)
    db = d.sum(axis=(0, 2))
    dcols = np.einsum("ok,nop->nkp", w.reshape(O, -1), d)
    return col2im(dcols, xshape), dw, db


def init_params(rng, c1=8, c2=16):
    """He-initialized parameters."""
    def he(shape, fan_in):
        """Normal with std sqrt(2 / fan_in)."""
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return {"conv1.weight": he((c1, 1, 3, 3), 9), "conv1.bias": np.zeros(c1, np.float32),
            "conv2.weight": he((c2, c1, 3, 3), 9 * c1), "conv2.bias": np.zeros(c2, np.float32),
            "fc.weight": he((10, c2), c2) * 0.5, "fc.bias": np.zeros(10, np.float32)}


def forward(p, x, keep=False):
    """Logits (and the cache for :func:`backward` with ``keep``)."""
    a1, cols1 = conv_fwd(x, p["conv1.weight"], p["conv1.bias"])
    r1 = np.maximum(a1, 0)
    N, C, H, W = r1.shape
    win = r1.reshape(N, C, H // 2, 2, W // 2, 2)
    m1 = win.max(axis=(3, 5))
    a2, cols2 = conv_fwd(m1, p["conv2.weight"], p["conv2.bias"])
    r2 = np.maximum(a2, 0)
    g = r2.mean(axis=(2, 3))
    logits = g @ p["fc.weight"].T + p["fc.bias"]
    if keep:
        return logits, (x, a1, cols1, r1, win, m1, a2, cols2, r2, g)
    return logits


def backward(p, cache, dlogits):
    """Parameter gradients from d(loss)/d(logits)."""
    x, a1, cols1, r1, win, m1, a2, cols2, r2, g = cache
    grads = {"fc.weight": dlogits.T @ g, "fc.bias": dlogits.sum(0)}
    dg = dlogits @ p["fc.weight"]
    N, C2, H2, W2 = r2.shape
    dr2 = np.broadcast_to(dg[:, :, None, None] / (H2 * W2), r2.shape)
    da2 = dr2 * (a2 > 0)
    dm1, grads["conv2.weight"], grads["conv2.bias"] = conv_bwd(da2, cols2, p["conv2.weight"], m1.shape)
    mask = win == m1[:, :, :, None, :, None]
    mask = mask / mask.sum(axis=(3, 5), keepdims=True)  # ties share the gradient
    dr1 = (mask * dm1[:, :, :, None, :, None]).reshape(r1.shape)
    da1 = dr1 * (a1 > 0)
    _, grads["conv1.weight"], grads["conv1.bias"] = conv_bwd(da1, cols1, p["conv1.weight"], x.shape)
    return grads


def softmax_xent(logits, y):
    """(mean cross-entropy, d loss / d logits)."""
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    pr = e / e.sum(1, keepdims=True)
    loss = -np.log(pr[np.arange(len(y)), y] + 1e-12).mean()
    d = pr.copy()
    d[np.arange(len(y)), y] -= 1
    return loss, d / len(y)


def train(epochs=150, batch=32, lr=1e-2, c2=32, seed=0, verbose=True):
    """Train with Adam (cosine-decayed learning rate); returns (params, test accuracy, test indices)."""
    xtr, ytr, xte, yte, te_idx = load_digits_split()
    rng = np.random.default_rng(seed)
    p = init_params(rng, c2=c2)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    steps = epochs * (-(-len(xtr) // batch))
    for ep in range(epochs):
        perm = rng.permutation(len(xtr))
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch]
            xb = xtr[idx]
            shift = rng.integers(-1, 2, size=2)  # light augmentation: shift by up to one pixel
            xb = np.roll(xb, tuple(shift), axis=(2, 3))
            logits, cache = forward(p, xb, keep=True)
            loss, d = softmax_xent(logits, ytr[idx])
            grads = backward(p, cache, d)
            t += 1
            lr_t = lr * 0.5 * (1 + np.cos(np.pi * t / steps))
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                mh, vh = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
                p[k] = (p[k] - lr_t * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        if verbose and (ep % 10 == 9 or ep == epochs - 1):
            acc = (forward(p, xte).argmax(1) == yte).mean()
            tr_acc = (forward(p, xtr).argmax(1) == ytr).mean()
            print(f"epoch {ep + 1:3d}: loss {loss:.4f}  train {tr_acc * 100:.2f}%  held-out {acc * 100:.2f}%")
    acc = float((forward(p, xte).argmax(1) == yte).mean())
    return p, acc, te_idx


def main(argv=None):
    """Command line: train and write the weights file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--c2", type=int, default=32, help="channels of the second conv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help=f"weights file to write (default: {DEFAULT_OUT} here; the shipped ones are "
                         "examples/data/digits_cnn.npz)")
    args = ap.parse_args(argv)
    p, acc, te_idx = train(args.epochs, c2=args.c2, seed=args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, test_idx=te_idx.astype(np.int16), **p)
    print(f"held-out accuracy {acc * 100:.2f}% ({len(te_idx)} images); wrote {args.out} "
          f"({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
