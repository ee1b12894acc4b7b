"""The CPU side of benchmarks/sanitize_cuda.py (the compute-sanitizer workload, #17 item 7):
every case lowers, generates CUDA and compiles with NVRTC where NVRTC is present; the cheap
cases' kernels, run in the SIMT interpreter on the script's inputs, match the references the
script checks the GPU against (so a FAIL on the GPU is the kernel's, not the script's)."""
import os
import sys

import numpy as np
import pytest

import minitvm

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))
import sanitize_cuda  # noqa: E402
import kernel_interp  # noqa: E402

CASES = dict(sanitize_cuda.cases(samples=1))
# a few seconds each in the interpreter; together they use every template's reference
INTERPRETED = ["conv2d_NCHWc_int8:1x8x7x7x4:default", "dense_int8_tensorcore:3x512:default",
               "conv2d_nchw:1x16x7x7:default", "dense:5x40:default", "dense:3x64:default", "max_pool", "avg_pool",
               "global_avg_pool", "softmax", "injective_add_relu", "padded_copy_int8"]


def test_the_cases_cover_every_cuda_template():
    kinds = {name.split(":")[0] for name in CASES}
    assert {"conv2d_NCHWc_int8", "conv2d_NHWC_int8_tensorcore", "dense_int8_tensorcore", "conv2d_nchw",
            "dense"} <= kinds
    assert sum(":config" in n for n in CASES) == len(sanitize_cuda.TEMPLATES)   # one sampled config each


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_case_builds_for_cuda(name):
    source = sanitize_cuda.build_only(name, CASES[name])
    assert "__global__" in source


@pytest.mark.parametrize("name", INTERPRETED)
def test_cheap_cases_match_their_reference_in_the_interpreter(name):
    s, tensors, reference = CASES[name]()
    func = minitvm.lower(s, tensors, name="kernel", target="cuda")
    inputs = sanitize_cuda.fresh_inputs(tensors, np.random.default_rng(0))
    want = np.asarray(reference([x.copy() for x in inputs]))
    out = sanitize_cuda.poisoned(tensors[-1])
    kernel_interp.run_func(func, inputs + [out], seed=0)
    if out.dtype.kind == "f":
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_array_equal(out, want)


def test_list_and_select(capsys):
    assert sanitize_cuda.main(["--list", "-k", "gemm", "--samples", "0"]) == 0
    assert capsys.readouterr().out.split() == ["gemm_naive", "gemm_shared", "gemm_vthread_double_buffer"]
