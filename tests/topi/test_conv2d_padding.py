"""Padding never multiplies by inf (#17 R15): with ``select_padded_taps`` a float conv2d's padded
taps add 0, so an infinite or NaN weight spoils only the outputs whose window holds real data
under it; on the CPU and in the CUDA template (run in the SIMT interpreter)."""
import os
import sys

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.graph.ops.nn import conv2d_np
from minitvm.testing import build_run
from minitvm.topi.cuda.conv2d import schedule_conv2d_nchw
from minitvm.topi.nn.conv2d import conv2d_nchw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
import kernel_interp  # noqa: E402

PAD = (1, 2, 0, 1)   # top, left, bottom, right


def _problem(seed=0, groups=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 4, 5, 6)).astype("float32")
    w = rng.standard_normal((4, 4 // groups, 3, 3)).astype("float32")
    w[0, 0, 0, 0] = np.inf
    w[1, 0, 2, 2] = -np.inf
    w[3, 1, 1, 0] = np.nan
    return x, w


def _direct(x, w, pad, groups=1):
    """The definition: a sum over the taps that land on the input (none on the padding)."""
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    pt, pl, pb, pr = pad
    OH, OW = H + pt + pb - KH + 1, W + pl + pr - KW + 1
    out = np.zeros((N, O, OH, OW))
    for o in range(O):
        for y in range(OH):
            for xx in range(OW):
                acc = 0.0
                for i in range(I):
                    c = (o // (O // groups)) * I + i
                    for ky in range(KH):
                        for kx in range(KW):
                            iy, ix = y + ky - pt, xx + kx - pl
                            if 0 <= iy < H and 0 <= ix < W:
                                acc += float(x[0, c, iy, ix]) * float(w[o, i, ky, kx])
                out[0, o, y, xx] = acc
    return out


@pytest.mark.parametrize("groups", [1, 2])
def test_reference_skips_padded_taps(groups):
    x, w = _problem(groups=groups)
    with np.errstate(invalid="ignore", over="ignore"):
        want = _direct(x, w, PAD, groups)
    got = conv2d_np(x, w, padding=PAD, groups=groups)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # output 0's infinite tap (0, 0) lies on the top padding for the first row only
    assert np.isfinite(got[0, 0, 0]).all() and np.isinf(got[0, 0, 1:]).any() and np.isnan(got[0, 3]).any()


def _conv(select):
    D = te.placeholder((1, 4, 5, 6), name="D")
    K = te.placeholder((4, 4, 3, 3), name="K")
    return D, K, conv2d_nchw(D, K, 1, PAD, select_padded_taps=select)


def test_cpu_selects_padded_taps():
    x, w = _problem()
    want = conv2d_np(x, w, padding=PAD)
    D, K, out = _conv(True)
    s = te.create_schedule(out.op)
    s[out.op.input_tensors[0]].compute_inline()
    got = build_run(s, [D, K, out], x, w)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # without the select the padding multiplies inf: NaN where onnxruntime has numbers
    D, K, plain = _conv(False)
    s = te.create_schedule(plain.op)
    with np.errstate(invalid="ignore"):
        bad = build_run(s, [D, K, plain], x, w)
    assert np.isnan(bad[0, 0, 0]).all() and np.isfinite(got[0, 0, 0]).all()


def test_cuda_template_selects_padded_taps_in_interpreter():
    x, w = _problem()
    D, K, out = _conv(True)
    s = schedule_conv2d_nchw(out, cfg={})
    f = minitvm.lower(s, [D, K, out], name="conv")
    y = np.full([int(d.value) for d in out.shape], -7, np.float32)
    kernel_interp.run_func(f, [x, w, y])
    np.testing.assert_allclose(y, conv2d_np(x, w, padding=PAD), rtol=1e-5, atol=1e-5)
