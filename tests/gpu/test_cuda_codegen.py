"""Run the hand-built CUDA kernels of tests/codegen/cuda_kernels.py on a GPU against numpy.

Every run uses fresh random inputs; outputs are poisoned before the launch (NaN bytes for floats,
0xA5 bytes for integers) so a kernel that skips an element cannot pass. Integer kernels are
compared bit for bit.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import minitvm
from minitvm.codegen.cuda import build_cuda
from minitvm.lowering.pipeline import lower_device
from minitvm.runtime import cuda as cuda_rt

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(cuda_rt.device_count() == 0,
                       reason=f"no CUDA device: {cuda_rt.unavailable_reason()}"),
]


def _load_kernels():
    path = Path(__file__).resolve().parent.parent / "codegen" / "cuda_kernels.py"
    spec = importlib.util.spec_from_file_location("minitvm_test_cuda_kernels", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


K = _load_kernels()


def _poison(x: np.ndarray) -> np.ndarray:
    byte = 0xFF if x.dtype.kind == "f" else 0xA5
    return np.frombuffer(bytes([byte]) * x.nbytes, dtype=x.dtype).reshape(x.shape).copy()


def _arch() -> str:
    return cuda_rt.device_arch(0)


def run_case(case, sizes=None, trials=2, seed=0):
    """Build ``case`` for this GPU, run it ``trials`` times on fresh inputs, compare with numpy."""
    dev = minitvm.cuda(0)
    mod = build_cuda(lower_device([case.func], f"cuda -arch={_arch()}"), _arch())
    fn = mod[case.func.name]
    rng = np.random.default_rng(seed)
    sizes = sizes or case.sizes
    for _ in range(trials):
        inputs = case.make_inputs(rng, sizes)
        expected = case.reference([x.copy() for x in inputs])
        arrays = [minitvm.nd.array(_poison(x) if i in case.outputs else x, dev) for i, x in enumerate(inputs)]
        fn(*arrays)
        dev.sync()
        for i, want in expected.items():
            got = arrays[i].numpy()
            name = case.func.params[i].name
            want = np.asarray(want, dtype=got.dtype)
            if case.exact:
                np.testing.assert_array_equal(got, want, err_msg=f"{case.func.name}: output {name}")
            else:
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                                           err_msg=f"{case.func.name}: output {name}")
        for i, x in enumerate(inputs):
            if i not in case.outputs:
                np.testing.assert_array_equal(arrays[i].numpy(), x, err_msg=f"input {i} was modified")


@pytest.mark.parametrize("name", sorted(K.ALL_CASES))
def test_hand_built_kernel_matches_numpy(name):
    run_case(K.ALL_CASES[name]())


@pytest.mark.parametrize("n", [1, 127, 128, 1000, 4097])
def test_vadd_symbolic_sizes(n):
    run_case(K.case_vadd(), sizes={"n": n}, trials=1, seed=n)


def test_dp4a_dense_is_bit_exact_on_extreme_values():
    case = K.case_dense_dp4a()
    dev = minitvm.cuda(0)
    fn = build_cuda(lower_device([case.func], f"cuda -arch={_arch()}"), _arch())[case.func.name]
    M, N, K_ = 16, 32, 64
    for fill in (-128, 127):
        a = np.full((M, K_), fill, np.int8)
        b = np.full((N, K_), -128, np.int8)
        c = minitvm.nd.array(_poison(np.zeros((M, N), np.int32)), dev)
        fn(minitvm.nd.array(a, dev), minitvm.nd.array(b, dev), c)
        np.testing.assert_array_equal(c.numpy(), a.astype(np.int32) @ b.astype(np.int32).T)
