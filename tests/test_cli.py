"""The ``minitvm`` command, called in-process (``main(argv)``) and, for the artifact round trip,
as a fresh process (``python -m minitvm.cli``)."""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

import minitvm
from minitvm.cli import main, make_parser
from minitvm.runtime import cuda
from tiny_onnx import onnxruntime_outputs, tiny_cnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("onnx")


@pytest.fixture
def dynamic_model(tmp_path):
    """The tiny CNN with a dynamic batch ``N`` (input ``x`` [N, 3, 8, 8], output ``y`` [N, 5])."""
    return tiny_cnn(tmp_path / "tiny.onnx")


def _x(batch=1, seed=0, hw=(8, 8)):
    return np.random.default_rng(seed).standard_normal((batch, 3) + hw).astype("float32")


def _images(folder, n, seed=0):
    """``n`` random RGB images of different sizes (PNG) under ``folder`` and a subfolder."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True)
    for k in range(n):
        where = folder if k % 2 else folder / "sub"
        Image.fromarray(rng.integers(0, 256, (9 + k, 12, 3), dtype=np.uint8)).save(where / f"{k}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


# ---------------------------------------------------------------------------- compile and run
def test_compile_then_run_the_artifact_in_a_fresh_process(dynamic_model, tmp_path, capsys):
    art, inputs, outputs = tmp_path / "tiny.mtvm", tmp_path / "in.npz", tmp_path / "out.npz"
    assert main(["compile", dynamic_model, "--batch", "2", "--target", "llvm", "-o", str(art)]) == 0
    assert f"wrote {art}" in capsys.readouterr().out
    x = _x(2, seed=1)
    np.savez(inputs, x=x)
    res = subprocess.run([sys.executable, "-m", "minitvm.cli", "run", str(art), "--inputs", str(inputs),
                          "--outputs", str(outputs), "--benchmark-seconds", "0"],
                         env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "loaded" in res.stdout and "output y: float32[2, 5]" in res.stdout
    got = np.load(outputs)["y"]
    np.testing.assert_allclose(got, onnxruntime_outputs(dynamic_model, {"x": x})[0], rtol=1e-4, atol=1e-5)
    # the model run directly gives the same bits as its artifact
    direct = tmp_path / "direct.npz"
    assert main(["run", dynamic_model, "--batch", "2", "--target", "llvm", "--inputs", str(inputs),
                 "--outputs", str(direct), "--benchmark-seconds", "0"]) == 0
    np.testing.assert_array_equal(np.load(direct)["y"], got)


def test_compile_names_the_artifact_after_the_model(dynamic_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compile", dynamic_model, "--target", "llvm"]) == 0
    assert os.path.isfile(tmp_path / "tiny.mtvm")
    assert "dynamic batch; using batch 1" in capsys.readouterr().out


def test_run_prints_top_n_benchmarks_for_the_time_given_and_profiles(dynamic_model, capsys):
    assert main(["run", dynamic_model, "--target", "llvm", "--print-top", "2", "--benchmark-seconds", "0.2",
                 "--profile", "--profile-runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "top-2 of item 0:" in out and "median of" in out and "inferences on llvm" in out
    # the conv template: NCHW on CPUs without AVX2, packed with it
    assert ("conv2d_nchw.llvm" in out or "conv2d_NCHWc.x86" in out) and "kernels, summed" in out \
        and "against the sum" in out
    assert main(["run", dynamic_model, "--target", "llvm", "--print-top", "0", "--benchmark-seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert "top-" not in out and "latency" not in out and "output y: float32[1, 5], mean" in out


def test_progress_bars_for_compiling_and_benchmarking(dynamic_model, capsys):
    assert main(["run", dynamic_model, "--target", "llvm", "--progress", "--benchmark-seconds", "0.1"]) == 0
    err = capsys.readouterr().err
    assert "compiling tiny.onnx for llvm" in err and "benchmarking" in err and "inferences" in err


def test_int8_calibrated_on_random_noise_says_so(dynamic_model, capsys):
    assert main(["run", dynamic_model, "--target", "llvm", "--dtype", "int8", "--calibrate-random",
                 "--calibration-samples", "1", "--benchmark-seconds", "0"]) == 0
    captured = capsys.readouterr()
    assert "minitvm: warning: int8 calibrated on random noise" in captured.err
    assert "accuracy means nothing" in captured.err and "output y: float32[1, 5]" in captured.out


def test_a_pre_quantized_onnx_model_runs_packed(tmp_path, capsys):
    """quantize_static's output runs as imported (no calibration asked), its int8 convs packed for dp4a."""
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "frontend"))
    import test_onnx_quant as Q
    import onnx
    model, _ = Q._quantize(tmp_path, Q._cnn, "QDQ", True, "uint8", seed=5)
    path = tmp_path / "q.onnx"
    onnx.save(model, path)
    assert main(["run", str(path), "--target", "llvm", "--benchmark-seconds", "0"]) == 0
    assert "pre-quantized model" in capsys.readouterr().out
    assert main(["run", str(path), "--target", "llvm", "--dtype", "int8", "--benchmark-seconds", "0"]) == 0
    assert main(["tune", str(path), "--list"]) == 0
    assert "conv2d_NCHWc_int8.cuda" in capsys.readouterr().out


@pytest.mark.skipif(cuda.device_count() > 0, reason="checks the message shown where no GPU is usable")
def test_run_for_cuda_without_a_gpu_is_refused_but_compile_builds_for_it(dynamic_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", dynamic_model, "--target", "cuda"])
    assert e.value.code == 2 and "no CUDA GPU is usable here" in capsys.readouterr().err
    try:
        cuda.compile_cuda('extern "C" __global__ void k(float* a) { a[0] = 1.0f; }', "sm_80")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"NVRTC unavailable: {exc}")
    art = tmp_path / "tiny_sm80.mtvm"
    assert main(["compile", dynamic_model, "--target", "cuda -arch=sm_80", "-o", str(art)]) == 0
    assert main(["info", str(art)]) == 0
    assert "target:  cuda -arch=sm_80" in capsys.readouterr().out


def test_run_refuses_a_cpu_target_this_cpu_cannot_run(dynamic_model, capsys):
    from minitvm.runtime.cpu_features import cpu_features
    lacking = [f for f in ("avx512vnni", "avx512f", "avxvnni", "avx2", "fma") if f not in cpu_features()]
    if not lacking:
        pytest.skip("this CPU has every feature minitvm's targets name")
    with pytest.raises(SystemExit) as e:
        main(["run", dynamic_model, "--target", f"llvm -mcpu=sapphirerapids -mattr=+{lacking[0]}"])
    assert e.value.code == 2 and "which this CPU lacks" in capsys.readouterr().err


# ---------------------------------------------------------------------------- shapes (#16 item 3)
def test_a_dynamic_batch_takes_batch(dynamic_model, capsys):
    assert main(["run", dynamic_model, "--target", "llvm", "--batch", "3", "--benchmark-seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert "output y: float32[3, 5]" in out and "dynamic batch" not in out


def test_batch_on_a_static_model_is_refused(tmp_path, capsys):
    static = tiny_cnn(tmp_path / "static.onnx", dims=(2, 3, 8, 8))
    assert main(["run", static, "--target", "llvm", "--batch", "4"]) == 2
    assert "--batch 4: " in (err := capsys.readouterr().err) and "has a static batch (input 'x' is [2, 3, 8, 8])" in err
    assert main(["info", static, "--batch", "2"]) == 0          # its own batch is no change


def test_input_shapes_fix_dynamic_dimensions_and_are_asked_for_by_name(tmp_path, capsys):
    model = tiny_cnn(tmp_path / "any_size.onnx", dims=("N", 3, "H", "W"))
    assert main(["run", model, "--target", "llvm"]) == 2
    err = capsys.readouterr().err
    assert "input 'x' has dynamic dimensions [N, 3, H, W]" in err and '--input-shapes "x:[1,3,1,1]"' in err
    assert main(["run", model, "--target", "llvm", "--input-shapes", "x:[2,3,12,10]", "--benchmark-seconds", "0"]) == 0
    assert "output y: float32[2, 5]" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--input-shapes", "z:[1,3,8,8]"],
     "--input-shapes names 'z', which is not a model input; the inputs are 'x' [N, 3, 8, 8]"),
    (["--input-shapes", "x:[1,3,9,8]"],
     "gives input 'x' the shape [1, 3, 9, 8], which does not fit the model's [N, 3, 8, 8]"),
    (["--input-shapes", "x:[2,3,8,8]", "--batch", "3"], "--batch 3 and --input-shapes x:[2, 3, 8, 8] disagree"),
])
def test_shapes_that_do_not_fit_the_model_are_refused(dynamic_model, args, message, capsys):
    assert main(["info", dynamic_model] + args) == 2
    assert message in capsys.readouterr().err


def test_zoo_models_take_input_shapes_batch_and_image_sizes(capsys):
    assert main(["info", "resnet18", "--input-shapes", "data:[2,3,40,32]"]) == 0
    assert "%data: float32[2,3,40,32]" in capsys.readouterr().out
    assert main(["info", "resnet18", "--batch", "3", "--image-size", "48x40"]) == 0
    assert "%data: float32[3,3,48,40]" in capsys.readouterr().out
    assert main(["info", "resnet18", "--batch", "3", "--input-shapes", "[2,3,32,32]"]) == 2
    assert "disagree on the batch" in capsys.readouterr().err


# ---------------------------------------------------------------------------- calibration (#18 item 4)
def test_int8_without_calibration_data_says_what_to_pass(dynamic_model, capsys):
    with pytest.raises(SystemExit) as e:           # a zoo model: refused before loading it
        main(["run", "resnet50", "--dtype", "int8"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--calibration-data" in err and "--calibrate-random" in err
    assert main(["run", dynamic_model, "--target", "llvm", "--dtype", "int8"]) == 2   # a float ONNX model
    assert "int8 needs calibration data" in capsys.readouterr().err


def test_a_folder_of_images_calibrates_as_minitvm_compile_does(dynamic_model, tmp_path, capsys):
    images = _images(tmp_path / "images", 5)
    x = _x(2, seed=3)
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", dynamic_model, "--target", "llvm", "--batch", "2", "--dtype", "int8", "--calibration-data",
                 str(images), "--inputs", str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "out.npz"),
                 "--benchmark-seconds", "0", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "reading images" in err and "calibrating" in err and "compiling" in err
    model = minitvm.compile(dynamic_model, target="llvm", dtype="int8", calibration=images, batch=2)
    assert any("requantize" in " ".join(s.ops) for s in model.steps)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["y"], model.run({"x": x})[0])


def test_an_npz_calibrates_as_minitvm_compile_does(dynamic_model, tmp_path):
    np.savez(tmp_path / "cal.npz", x=_x(6, seed=4))
    np.save(tmp_path / "in.npy", _x(1, seed=5))
    assert main(["run", dynamic_model, "--target", "llvm", "--dtype", "int8", "--calibration-data",
                 str(tmp_path / "cal.npz"), "--calibration-samples", "4", "--inputs", str(tmp_path / "in.npy"),
                 "--outputs", str(tmp_path / "out.npz"), "--benchmark-seconds", "0"]) == 0
    model = minitvm.compile(dynamic_model, target="llvm", dtype="int8", calibration=tmp_path / "cal.npz",
                            calibration_samples=4, input_shapes={"x": (1, 3, 8, 8)})
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["y"], model.run({"x": _x(1, seed=5)})[0])


# ---------------------------------------------------------------------------- inputs and artifacts
@pytest.mark.parametrize("arrays, code, message", [
    ({"a": _x(), "b": _x()}, 2, "holds ['a', 'b'], the model's inputs are ['x']"),
    ({"x": _x(2)}, 1, "array 'x' has shape [2, 3, 8, 8], the model takes [1, 3, 8, 8]"),
    ({"x": _x().astype("complex64")}, 1, "array 'x' is complex64, the model takes float32"),
])
def test_bad_inputs_files_are_refused_before_compiling(dynamic_model, tmp_path, monkeypatch, arrays, code, message,
                                                       capsys):
    np.savez(tmp_path / "in.npz", **arrays)
    import minitvm.model_compile as mc
    monkeypatch.setattr(mc, "compile", lambda *a, **k: pytest.fail("compiled before checking --inputs"))
    assert main(["run", dynamic_model, "--target", "llvm", "--inputs", str(tmp_path / "in.npz")]) == code
    assert message in capsys.readouterr().err


def test_float64_inputs_are_converted(dynamic_model, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", x=_x().astype("float64"))
    assert main(["run", dynamic_model, "--target", "llvm", "--inputs", str(tmp_path / "in.npz"),
                 "--benchmark-seconds", "0"]) == 0


def test_an_artifact_refuses_compile_options_and_is_not_compiled_again(dynamic_model, tmp_path, capsys):
    art = tmp_path / "t.mtvm"
    assert main(["compile", dynamic_model, "--target", "llvm", "-o", str(art)]) == 0
    for extra in (["--dtype", "int8"], ["--batch", "2"], ["--target", "llvm"], ["--input-shapes", "x:[1,3,8,8]"]):
        with pytest.raises(SystemExit) as e:
            main(["run", str(art)] + extra)
        assert e.value.code == 2 and "is compiled already" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compile", str(art)])
    assert "is already compiled (an artifact)" in capsys.readouterr().err
    assert main(["info", str(art)]) == 0
    out = capsys.readouterr().out
    assert "format 1" in out and "inputs:  %x: float32[1, 3, 8, 8]" in out and "kernels:" in out


# ---------------------------------------------------------------------------- info, tune, help, errors
def test_info_prints_the_summary_without_building_weights(monkeypatch, capsys):
    from minitvm.graph import zoo
    real, calls = zoo.get_model, []
    monkeypatch.setattr(zoo, "get_model", lambda *a, **k: calls.append(k.get("init", True)) or real(*a, **k))
    assert main(["info", "vgg19"]) == 0
    assert calls == [False] and "params:  143,667,240" in capsys.readouterr().out


def test_info_without_a_model_lists_the_zoo(capsys):
    assert main(["info"]) == 0
    assert "resnet18" in capsys.readouterr().out


def test_tune_lists_the_tasks_without_a_gpu(capsys):
    # without a GPU the tasks are those of sm_90, whose int8 convs run on the tensor cores
    assert main(["tune", "resnet18", "--image-size", "32", "--dtype", "int8", "--batch", "2", "--list"]) == 0
    out = capsys.readouterr().out
    assert "21 kernels" in out and "conv2d_NHWC_int8_tensorcore.cuda" in out and "dense_int8_split_k.cuda" in out
    assert "conv2d_NCHWc_int8.cuda" not in out


def test_tune_needs_a_log(capsys):
    assert main(["tune", "resnet18", "--image-size", "32"]) == 2
    assert "--log" in capsys.readouterr().err


@pytest.mark.skipif(cuda.device_count() > 0, reason="checks the message shown where no GPU is usable")
def test_tune_without_a_gpu_says_so(tmp_path, capsys):
    assert main(["tune", "resnet18", "--image-size", "32", "--log", str(tmp_path / "t.log")]) == 1
    assert "GPU" in capsys.readouterr().err


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


def test_every_option_of_every_command_has_help():
    parser = make_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in [("minitvm", parser)] + list(commands.items()):
        for action in sub._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{name} {action.dest} has no help text"
    assert set(commands) == {"compile", "run", "info", "tune", "demo"}


def test_no_command_prints_the_help(capsys):
    assert main([]) == 2
    assert "usage: minitvm" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["run", "resnet18", "--benchmark-seconds", "-1"], "--benchmark-seconds: must be at least 0.0, got -1"),
    (["run", "resnet18", "--print-top", "x"], "--print-top: 'x' is not an integer"),
    (["run", "resnet18", "--calibration-samples", "0"], "--calibration-samples: must be at least 1, got 0"),
    (["run", "resnet18", "--batch", "0"], "--batch: must be at least 1, got 0"),
    (["run", "resnet18", "--image-size", "224x"], "'224x': expected a size N or HxW"),
    (["run", "resnet18", "--input-shapes", "data:[1,3,224"], "'data:[1,3,224': cannot read 'data:[1,3,224'"),
    (["run", "resnet18", "--inputs", "/nonexistent/x.npz"], "--inputs /nonexistent/x.npz: no such file"),
    (["run", "resnet18", "--outputs", "/nonexistent/o.npz"], "--outputs /nonexistent/o.npz: the folder /nonexistent"),
    (["run", "resnet18", "--tuning-log", "/nonexistent/t.log"], "--tuning-log /nonexistent/t.log: no such file"),
    (["run", "resnet18", "--target", "llvm -mcpu=nonsense"], "--target: target 'llvm -mcpu=nonsense'"),
    (["run", "resnet18", "--target", "tpu"], "unknown kind 'tpu'"),
    (["run", "resnet18", "--dtype", "int8", "--calibration-data", "/nonexistent/c.npz"],
     "--calibration-data /nonexistent/c.npz: no such file"),
    (["run", "resnet18", "--calibration-data", "c.npz", "--calibrate-random"], "not allowed with argument"),
    (["run", "resnet18", "--calibrate-random"], "--calibration-data is for int8 (this model compiles in float32)"),
    (["run", "/nonexistent/model.onnx"], "model /nonexistent/model.onnx: no such file"),
    (["run", "x.onnx", "--image-size", "32"], "model x.onnx: no such file"),
    (["compile", "resnet18", "-o", "/nonexistent/m.mtvm"], "-o /nonexistent/m.mtvm: the folder /nonexistent"),
    (["tune", "resnet18", "--trials", "0", "--list"], "--trials: must be at least 1, got 0"),
    (["tune", "resnet18", "--history", "/nonexistent/old.log"], "--history /nonexistent/old.log: no such file"),
    (["run", "resnet18", "--tactics", "-1"], "--tactics: must be at least 0, got -1"),
])
def test_bad_arguments_are_refused_before_any_compile_work(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_an_error_is_one_line_naming_it_and_debug_shows_the_traceback(capsys, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    assert main(["run", str(bad), "--target", "llvm"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minitvm: error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(Exception):
        main(["--debug", "run", str(bad), "--target", "llvm"])


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and f"minitvm {minitvm.__version__}" in capsys.readouterr().out


def test_tune_on_the_cpu_lists_and_tunes_the_x86_templates(tmp_path, capsys):
    args = ["tune", "resnet18", "--target", "llvm", "--image-size", "32"]
    assert main(args + ["--list"]) == 0
    out = capsys.readouterr().out
    assert ".x86(" in out and ".cuda(" not in out
    log = tmp_path / "cpu.log"
    assert main(args + ["--trials", "2", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "tuned 12 tasks" in out and "--target 'llvm'" in out
    assert len(log.read_text().splitlines()) >= 12
