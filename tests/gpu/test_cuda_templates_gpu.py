"""The tunable ``conv2d_nchw.cuda`` and ``dense.cuda`` templates on the GPU: the default and a
handful of sampled configs of each space compute what numpy computes (fp32 close, int8 exact)."""
import random
import zlib

import numpy as np
import pytest

import minitvm
from minitvm import autotune, nd
from minitvm.runtime import cuda

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]

CASES = [
    ("conv2d_nchw.cuda", "b16_3x3", ((16, 64, 14, 14), (64, 64, 3, 3), 1, 1)),
    ("conv2d_nchw.cuda", "b16_1x1s2", ((16, 128, 14, 14), (256, 128, 1, 1), 2, 0)),
    ("conv2d_nchw.cuda", "stem_b3", ((3, 3, 23, 23), (16, 3, 7, 7), 2, 3)),
    ("conv2d_nchw.cuda", "dil_grp", ((1, 32, 9, 9), (64, 8, 3, 3), 1, 2, 2, 4)),
    ("conv2d_nchw.cuda", "depthwise", ((2, 16, 10, 10), (16, 1, 3, 3), 1, 1, 1, 16)),
    ("dense.cuda", "int8_b16", ((16, 2048), (1000, 2048), "int8")),
    ("dense.cuda", "int8_b1", ((1, 512), (40, 512), "int8")),
    ("dense.cuda", "int8_odd", ((3, 12), (40, 12), "int8")),
    ("dense.cuda", "fp32_b16", ((16, 512), (1000, 512), "float32")),
    ("dense.cuda", "fp32_odd", ((5, 40), (24, 40), "float32")),
]
N_SAMPLED = 6


def _configs(task, n, seed):
    """The fallback's point of the space, then ``n`` distinct random valid configs (seeded)."""
    space = task.config_space
    fb = autotune.FallbackConfig()
    task.template.func(fb, *task.args)
    out = [space.get(fb.index)]
    rng = random.Random(seed)
    for _ in range(100000):
        if len(out) > n:
            break
        i = rng.randrange(len(space))
        if space.is_valid(i) and all(c.index != i for c in out):
            out.append(space.get(i))
    return out


def _inputs(tensors, rng):
    arrays = []
    for t in tensors[:-1]:
        shape = [int(d.value) for d in t.shape]
        if t.dtype == "int8":
            arrays.append(rng.integers(-128, 128, shape, dtype=np.int64).astype(np.int8))
        else:
            arrays.append(rng.uniform(-1, 1, shape).astype(t.dtype))
    return arrays


def _poison(shape, dtype):
    a = np.empty(shape, dtype)
    if np.dtype(dtype).kind == "f":
        a.fill(np.nan)
    else:
        a.view(np.uint8).fill(0xA5)
    return a


@pytest.mark.parametrize("name,key,args", CASES, ids=[f"{n.split('.')[0]}-{k}" for n, k, _ in CASES])
def test_sampled_configs_match_numpy(name, key, args):
    task = autotune.Task(name, args)
    dev = nd.cuda(0)
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    inputs = want = None
    for config in _configs(task, N_SAMPLED, seed=zlib.crc32(key.encode())):
        s, tensors = task.instantiate(config)
        if inputs is None:
            inputs = _inputs(tensors, rng)
            (want,) = task.template.reference(inputs, *task.args)
        mod = minitvm.build(s, tensors, "cuda")
        out = tensors[-1]
        got = nd.array(_poison([int(d.value) for d in out.shape], out.dtype), dev)
        mod(*[nd.array(a, dev) for a in inputs], got)
        cuda.synchronize(0)
        if out.dtype == "float32":
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4, err_msg=str(config))
        else:
            assert "__dp4a" in mod.get_source()
            np.testing.assert_array_equal(got.numpy(), want, err_msg=str(config))
