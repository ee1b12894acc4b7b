"""The split-K int8 dense of small batches (``dense_int8_split_k`` scheduled by
``schedule_dense_int8_split_k``): bit-exact against numpy through the SIMT interpreter, with and
without a fused epilogue, its knobs and their errors, the split chosen for the seed models'
classifiers, and NVRTC compilation."""
import os
import sys

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.codegen.cuda import codegen_cuda
from minitvm.errors import ScheduleError, ShapeError
from minitvm.runtime.cuda.compile import compile_cuda
from minitvm.topi import testing
from minitvm.topi.cuda.dense_split_k import choose_splits, default_config, schedule_dense_int8_split_k
from minitvm.topi.nn.dense import dense_int8_split_k
from minitvm.topi.nn.elemwise import relu

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
import kernel_interp  # noqa: E402

rng = np.random.default_rng(23)


def _run(M, K, N, splits, cfg=None, epilogue=None):
    A = te.placeholder((M, K), "int8", "A")
    B = te.placeholder((N, K), "int8", "B")
    Y = dense_int8_split_k(A, B, splits)
    out = epilogue(Y) if epilogue else Y
    s = schedule_dense_int8_split_k(out, cfg=cfg)
    f = minitvm.lower(s, [A, B, out], name="dense_split_k")
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    b = rng.integers(-128, 128, (N, K), dtype=np.int8)
    a[0, :16] = -128                                     # extremes: the int32 sums must wrap as numpy's do
    b[:, :16] = -128
    y = np.full((M, N), -7, out.dtype)                   # poison: an unwritten output shows
    kernel_interp.run_func(f, [a, b, y])
    return y, testing.dense(a, b)


@pytest.mark.parametrize("M,K,N,splits,cfg", [
    (1, 256, 64, 4, None),                                # batch 1, the default config
    (3, 512, 96, 2, {"threads": 32, "unroll": 2}),        # odd rows, 3 blocks of columns
    (16, 128, 40, 1, {"threads": 8, "unroll": 8}),        # a full batch of 16, one slice, 8 loads in flight
])
def test_bit_exact_in_interpreter(M, K, N, splits, cfg):
    y, want = _run(M, K, N, splits, cfg)
    np.testing.assert_array_equal(y, want.astype(np.int32))


def test_fused_epilogue_applies_after_the_sum_of_the_slices():
    y, want = _run(2, 256, 32, 4, epilogue=relu)
    np.testing.assert_array_equal(y, np.maximum(want, 0).astype(np.int32))


def test_seed_classifiers_get_enough_threads_streaming_the_weights():
    assert choose_splits(1, 4096, 25088) == 16           # VGG-19 fc6: 64K threads, 1568-byte slices
    assert choose_splits(16, 4096, 4096) == 16           # fc7: 256-byte slices
    assert choose_splits(1, 1000, 2048) == 8             # the ResNet classifiers: slices of 256 bytes
    assert choose_splits(1, 1000, 64) == 1               # too short to split


def test_bad_knobs_and_shapes_are_named():
    with pytest.raises(ScheduleError, match="knob threads"):
        _run(1, 256, 64, 4, {"threads": 48})
    with pytest.raises(ScheduleError, match="knob unroll"):
        _run(1, 256, 64, 4, {"threads": 64, "unroll": 3})
    with pytest.raises(ScheduleError, match="at most 16"):
        _run(17, 256, 64, 4)
    with pytest.raises(ShapeError, match="must divide"):
        dense_int8_split_k(te.placeholder((1, 100), "int8"), te.placeholder((8, 100), "int8"), 3)


def test_cuda_has_16_byte_loads_and_dp4a_and_compiles():
    A = te.placeholder((1, 2048), "int8", "A")
    B = te.placeholder((1000, 2048), "int8", "B")
    Y = dense_int8_split_k(A, B, 8)
    cfg = default_config(Y.op.input_tensors[0])
    assert 1000 % cfg["threads"] == 0 and cfg["unroll"] == 4
    src = codegen_cuda(minitvm.lower(schedule_dense_int8_split_k(Y), [A, B, Y], target="cuda"))[0]
    assert "*(int4*)" in src and "__dp4a" in src
    assert compile_cuda(src, "sm_80")
