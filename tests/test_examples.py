"""The examples' behaviour at their edges: the GPU ones say they skipped (exit 77) where no GPU
is usable, and training the digits CNN leaves the shipped weights alone unless told."""
import hashlib
import os
import subprocess
import sys

import pytest

from minitvm.runtime import cuda

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "examples", "data", "digits_cnn.npz")


@pytest.mark.skipif(cuda.device_count() > 0, reason="checks what the GPU examples do without a GPU")
@pytest.mark.parametrize("example", ["gemm_cuda.py", "tune_conv2d_int8.py"])
def test_gpu_examples_exit_77_saying_skipped_without_a_gpu(example):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "examples", example)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert res.returncode == 77 and res.stderr.startswith("skipped: this example needs an NVIDIA GPU")


def test_training_the_digits_cnn_writes_here_not_over_the_shipped_weights(tmp_path):
    pytest.importorskip("sklearn")
    before = hashlib.sha256(open(SHIPPED, "rb").read()).hexdigest()
    res = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_digits_cnn.py"), "--epochs", "1"],
                         cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert os.path.isfile(tmp_path / "digits_cnn.npz") and "wrote digits_cnn.npz" in res.stdout
    assert hashlib.sha256(open(SHIPPED, "rb").read()).hexdigest() == before
