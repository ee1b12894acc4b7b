"""The CPU dense templates over packed weights: ``dense_packed.x86`` (float, ``OI[b]o``) and
``dense_int8.x86`` (``dot_u8s8``, ``OI[L]o4i``), every config of a small space against numpy;
the int8 one bit-exact for int8 and uint8 data. A vector width the host cannot run is skipped."""
import numpy as np
import pytest

import minitvm
from minitvm import autotune, te
from minitvm.errors import ScheduleError, ShapeError
from minitvm.runtime.cpu_features import cpu_features
from minitvm.topi.cpu.dense import schedule_dense_packed
from minitvm.topi.cpu.dense_int8 import dense_int8_x86
from minitvm.topi.nn.dense import dense_packed

HOST = cpu_features()
rng = np.random.default_rng()


def _every_config(name, args, inputs, exact):
    task = autotune.Task(name, args, target="llvm")
    ref = task.template.reference(inputs, *task.args)[0]
    space = task.config_space
    assert len(space) > 1
    for i in range(len(space)):
        s, tensors = task.instantiate(space.get(i))
        out = np.full([int(d.value) for d in tensors[2].shape], -7, tensors[2].dtype)
        minitvm.build(s, tensors, "llvm")(*inputs, out)
        if exact:
            np.testing.assert_array_equal(out, ref)
        else:
            np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_dense_packed_every_config():
    if "avx2" not in HOST:
        pytest.skip("the host CPU has no AVX2")
    args = ((3, 24), (4, 24, 8), "float32", "float32")
    _every_config("dense_packed.x86", args, [rng.standard_normal(s).astype("float32") for s in args[:2]], False)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_dense_int8_every_config_bit_exact(dtype):
    lanes = 16 if "avx512vnni" in HOST else 8
    args = ((2, 32), (4, 8, lanes, 4), dtype, "int32")
    lo, hi = (-128, 128) if dtype == "int8" else (0, 256)
    x = rng.integers(lo, hi, args[0]).astype(dtype)
    x[0, :8] = lo
    w = rng.integers(-128, 128, args[1]).astype("int8")
    w[0, 0] = -128
    _every_config("dense_int8.x86", args, [x, w], True)


def test_bad_shapes_and_knobs_are_rejected():
    X = te.placeholder((1, 24), "float32", "X")
    D = dense_packed(X, te.placeholder((3, 24, 8), "float32", "W"))
    with pytest.raises(ScheduleError, match="knob unit_block=2 must be a positive divisor of the 3 blocks"):
        schedule_dense_packed(D, cfg={"unit_block": 2})
    with pytest.raises(ShapeError, match="expects 20"):
        dense_packed(X, te.placeholder((3, 20, 8), "float32", "W"))
    with pytest.raises(ShapeError, match="packs 5 x 4 input features, data X8 has 24"):
        dense_int8_x86(te.placeholder((1, 24), "int8", "X8"), te.placeholder((2, 5, 16, 4), "int8", "W"))
