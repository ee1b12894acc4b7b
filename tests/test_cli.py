"""The ``minitvm`` command, called in-process."""
import pytest

from minitvm.cli import main
from minitvm.runtime import cuda


def test_info_prints_the_graph_summary(capsys):
    assert main(["info", "resnet18", "--image-size", "32"]) == 0
    assert "conv2d" in capsys.readouterr().out


def test_run_int8_on_the_cpu(capsys):
    assert main(["run", "resnet18", "--image-size", "32", "--target", "llvm", "--dtype", "int8",
                 "--number", "1", "--calibration-images", "1"]) == 0
    out = capsys.readouterr().out
    assert "latency" in out and "output" in out


def test_tune_lists_the_tasks_without_a_gpu(capsys):
    # without a GPU the tasks are those of sm_90, whose int8 convs run on the tensor cores
    assert main(["tune", "resnet18", "--image-size", "32", "--dtype", "int8", "--batch", "2", "--list"]) == 0
    out = capsys.readouterr().out
    assert "21 kernels" in out and "conv2d_NHWC_int8_tensorcore.cuda" in out and "dense_int8_split_k.cuda" in out
    assert "conv2d_NCHWc_int8.cuda" not in out


def test_tune_needs_a_log(capsys):
    assert main(["tune", "resnet18", "--image-size", "32"]) == 2
    assert "--log" in capsys.readouterr().err


def test_tune_names_a_missing_history_log(tmp_path, capsys):
    assert main(["tune", "resnet18", "--image-size", "32", "--log", str(tmp_path / "t.log"),
                 "--history", str(tmp_path / "old.log")]) == 2
    assert "--history" in (err := capsys.readouterr().err) and "old.log: no such file" in err


@pytest.mark.skipif(cuda.device_count() > 0, reason="checks the message shown where no GPU is usable")
def test_tune_without_a_gpu_says_so(tmp_path, capsys):
    assert main(["tune", "resnet18", "--image-size", "32", "--log", str(tmp_path / "t.log")]) == 1
    assert "GPU" in capsys.readouterr().err


def test_a_pre_quantized_onnx_model_runs_packed(tmp_path, capsys):
    """quantize_static's output runs as imported, its int8 convs packed for dp4a."""
    import os
    import sys
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "frontend"))
    import test_onnx_quant as Q
    import onnx
    model, _ = Q._quantize(tmp_path, Q._cnn, "QDQ", True, "uint8", seed=5)
    path = tmp_path / "q.onnx"
    onnx.save(model, path)
    assert main(["run", str(path), "--target", "llvm", "--dtype", "int8", "--number", "1"]) == 0
    out = capsys.readouterr().out
    assert "pre-quantized model" in out and "latency" in out
    assert main(["tune", str(path), "--list"]) == 0
    assert "conv2d_NCHWc_int8.cuda" in capsys.readouterr().out


def test_first_conv_and_dense_are_int8_on_tensor_cores_unless_kept_float(capsys):
    args = ["tune", "resnet18", "--image-size", "32", "--dtype", "int8", "--batch", "2", "--list"]
    assert main(args) == 0                                         # the sm_90 recipe: everything int8
    out = capsys.readouterr().out
    assert "conv2d_nchw.cuda" not in out and "dense.cuda" not in out
    assert "conv2d_NHWC_int8_tensorcore.cuda((2, 32, 16, 32), (64, 7, 1, 32))" in out   # 7x7 folded to 7x1
    assert "dense_int8_split_k.cuda((2, 512), (1000, 512)" in out
    assert main(args + ["--float-first-conv"]) == 0
    assert "conv2d_nchw.cuda" in capsys.readouterr().out


def test_tune_accepts_every_registered_tuner(capsys):
    from minitvm import autotune
    for name in autotune.TUNERS:
        assert main(["tune", "resnet18", "--image-size", "32", "--tuner", name, "--list"]) == 0
    capsys.readouterr()


def test_run_profile_prints_each_kernel(capsys):
    assert main(["run", "resnet18", "--target", "llvm", "--image-size", "32", "--number", "1", "--profile"]) == 0
    out = capsys.readouterr().out
    # the conv template: NCHW on CPUs without AVX2, packed with it
    assert ("conv2d_nchw.llvm" in out or "conv2d_NCHWc.x86" in out) and "kernels, summed" in out \
        and "against the sum" in out


def test_no_command_prints_the_help(capsys):
    assert main([]) == 2
    assert "usage: minitvm" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["run", "resnet18", "--number", "0"], "--number must be at least 1, got 0"),
    (["run", "resnet18", "--number", "-3"], "--number must be at least 1, got -3"),
    (["run", "resnet18", "--calibration-images", "-1"], "--calibration-images must be at least 0, got -1"),
    (["run", "resnet18", "--batch", "0"], "--batch must be at least 1, got 0"),
    (["run", "resnet18", "--input", "/nonexistent/x.npy"], "--input /nonexistent/x.npy: no such file"),
    (["run", "resnet18", "--tuning-log", "/nonexistent/t.log"], "--tuning-log /nonexistent/t.log: no such file"),
    (["run", "/nonexistent/model.onnx"], "model /nonexistent/model.onnx: no such file"),
    (["tune", "resnet18", "--trials", "0", "--list"], "--trials must be at least 1, got 0"),
    (["run", "resnet18", "--tactics", "-1"], "--tactics must be at least 0, got -1"),
])
def test_bad_arguments_are_refused_before_any_compile_work(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_an_error_is_one_line_naming_it_and_debug_shows_the_traceback(capsys, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    assert main(["run", str(bad), "--target", "llvm"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minitvm: error: ") and "Traceback" not in err
    with pytest.raises(Exception):
        main(["--debug", "run", str(bad), "--target", "llvm"])


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "minitvm 0.1.0" in capsys.readouterr().out


def test_info_without_a_model_lists_the_zoo(capsys):
    assert main(["info"]) == 0
    assert "resnet18" in capsys.readouterr().out
