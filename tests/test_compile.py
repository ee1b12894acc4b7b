"""minitvm.compile / minitvm.load: one call from a model to a runnable, and saved artifacts."""
import json
import os
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

import minitvm
from minitvm.errors import ArtifactError, DeviceError, DtypeError, ShapeError, UsageError
from minitvm.graph import Graph
from minitvm.graph.reference import run_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(7)


def _net(batch=2, convs=1):
    g = Graph("small")
    x = g.add_input("data", (batch, 4, 8, 8), "float32")
    w1 = g.add_const("w1", rng.standard_normal((8, 4, 3, 3)).astype("float32") * 0.3)
    c1 = g.add_op("conv2d", [x, w1], {"padding": (1, 1, 1, 1)}, name="c1")
    r1 = g.add_op("relu", [c1], name="r1")
    if convs > 1:   # the first conv stays float in int8: a second one is quantized
        w2 = g.add_const("w2", rng.standard_normal((8, 8, 3, 3)).astype("float32") * 0.3)
        r1 = g.add_op("relu", [g.add_op("conv2d", [r1, w2], {"padding": (1, 1, 1, 1)}, name="c2")], name="r2")
    p = g.add_op("global_avg_pool2d", [r1], name="gap")
    f = g.add_op("flatten", [p], name="flat")
    wd = g.add_const("wd", rng.standard_normal((10, 8)).astype("float32"))
    d = g.add_op("dense", [f, wd], name="fc")
    s = g.add_op("softmax", [d], name="prob")
    g.mark_output(s)
    if convs == 1:
        g.mark_output(r1)
    return g


@pytest.fixture(scope="module")
def compiled():
    return minitvm.compile(_net(), target="llvm")


@pytest.fixture(scope="module")
def saved(compiled, tmp_path_factory):
    path = tmp_path_factory.mktemp("artifact") / "small.mtvm"
    compiled.save(path)
    return path


def _x(batch=2, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 4, 8, 8)).astype("float32")


def test_compile_gives_metadata_run_and_call(compiled):
    assert [tuple(i) for i in compiled.get_inputs()] == [("data", (2, 4, 8, 8), "float32")]
    assert [(o.name, o.shape, o.dtype) for o in compiled.get_outputs()] == [("prob", (2, 10), "float32"),
                                                                            ("r1", (2, 8, 8, 8), "float32")]
    x = _x()
    prob, r1 = compiled.run({"data": x})
    ref = run_reference(_net_from(compiled), {"data": x})
    np.testing.assert_allclose(prob, ref[0], rtol=1e-4, atol=1e-6)
    (only,) = compiled.run([x], output_names=["r1"])
    np.testing.assert_array_equal(only, r1)
    a, b = compiled(x)
    assert isinstance(a, np.ndarray) and np.array_equal(a, prob) and np.array_equal(b, r1)
    assert compiled.get_output("prob").shape == (2, 10)
    rows = compiled.profile(number=1, repeat=1)
    assert len(rows) == len(compiled.steps) and any(r.macs for r in rows)


def _net_from(model):
    return model.graph


def test_run_and_call_reject_bad_inputs(compiled):
    with pytest.raises(ShapeError, match="no output 'nope'"):
        compiled.run({"data": _x()}, output_names=["nope"])
    with pytest.raises(DtypeError, match="dtype float32, got float64"):
        compiled.run({"data": _x().astype("float64")})
    with pytest.raises(ShapeError, match="takes 1 inputs"):
        compiled(_x(), _x())


def test_cpu_inputs_are_read_in_place_and_outputs_are_copies(compiled):
    x = _x(seed=3)
    out1 = compiled(x)[0]
    x[...] = _x(seed=4)                      # the model reads the caller's array itself
    compiled.execute()
    out2 = compiled.get_output(0)
    np.testing.assert_array_equal(out2, compiled.run({"data": _x(seed=4)})[0])
    assert not np.array_equal(out1, out2)    # the first result was a copy, not a view of the buffers
    strided = np.asfortranarray(_x(seed=5))  # not C-contiguous: copied into the model's own buffer
    np.testing.assert_array_equal(compiled.run({"data": strided})[0], compiled.run({"data": _x(seed=5)})[0])


def test_artifact_round_trip_in_process(compiled, saved):
    x = _x(seed=1)
    want = compiled.run({"data": x})
    with zipfile.ZipFile(saved) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("meta.json"))
        plan = json.loads(zf.read("plan.json"))
    assert {"meta.json", "plan.json", "code/module.o", "code/module.ll"} <= names
    assert all(n.endswith(".npy") for n in names if n.startswith("weights/"))
    assert meta["format"] == "minitvm-artifact" and meta["format_version"] == 1 and meta["kind"] == "llvm"
    assert [s["func"] for s in plan["steps"]] == [s.func for s in compiled.steps]
    assert plan["memory"]["blocks"] and set(plan["memory"]["values"]) == {s.output for s in compiled.steps}
    loaded = minitvm.load(saved)
    assert loaded.graph is None
    assert loaded.get_inputs() == compiled.get_inputs() and loaded.get_outputs() == compiled.get_outputs()
    got = loaded.run({"data": x})
    for w, g in zip(want, got):
        np.testing.assert_array_equal(w, g)
    assert loaded.profile(number=1, repeat=1)[0].ops == compiled.profile(number=1, repeat=1)[0].ops
    assert "kernels" in loaded.summary()
    again = minitvm.load(loaded.save(saved.parent / "again.mtvm"))   # a loaded model saves again
    np.testing.assert_array_equal(again.run({"data": x})[0], want[0])


def test_artifact_loads_in_a_fresh_process_bit_for_bit(compiled, saved, tmp_path):
    x = _x(seed=2)
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, minitvm\n"
            "import minitvm.runtime.llvm as rt\n"
            "def no_compile(*a, **k):\n"
            "    raise AssertionError('load compiled IR')\n"
            "rt.compile_ir = no_compile\n"
            "m = minitvm.load(sys.argv[1])\n"
            "np.savez(sys.argv[3], *m.run({'data': np.load(sys.argv[2])}))\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-c", code, str(saved), str(tmp_path / "x.npy"), str(tmp_path / "o.npz")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    got = np.load(tmp_path / "o.npz")
    for k, w in enumerate(compiled.run({"data": x})):
        np.testing.assert_array_equal(got[f"arr_{k}"], w)


def _rewrite(src, dst, edit):
    """Copy artifact ``src`` to ``dst`` with ``edit(meta)`` applied to its meta.json."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "meta.json":
                meta = json.loads(data)
                edit(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    return dst


def test_load_refuses_another_format_version(saved, tmp_path):
    bad = _rewrite(saved, tmp_path / "v99.mtvm", lambda m: m.update(format_version=99))
    with pytest.raises(ArtifactError, match="format version 99.*reads version 1"):
        minitvm.load(bad)


def test_load_refuses_what_is_not_an_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="no such file"):
        minitvm.load(tmp_path / "missing.mtvm")
    (tmp_path / "junk.mtvm").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a minitvm artifact"):
        minitvm.load(tmp_path / "junk.mtvm")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("meta.json", json.dumps({"format": "something-else"}))
    with pytest.raises(ArtifactError, match="not a minitvm artifact"):
        minitvm.load(tmp_path / "other.zip")


def test_load_refuses_cpu_code_for_another_cpu(saved, tmp_path):
    def more_features(meta):
        meta["module"]["machine"]["features"] += ",+no-such-feature-xyz"
        meta["module"]["machine"]["cpu"] = "futurecpu"
    with pytest.raises(DeviceError, match="futurecpu.*no-such-feature-xyz"):
        minitvm.load(_rewrite(saved, tmp_path / "cpu.mtvm", more_features))

    def other_triple(meta):
        meta["module"]["machine"]["triple"] = "riscv64-unknown-linux-gnu"
    with pytest.raises(DeviceError, match="riscv64"):
        minitvm.load(_rewrite(saved, tmp_path / "triple.mtvm", other_triple))


def test_load_refuses_cuda_code_for_a_missing_or_other_gpu(monkeypatch):
    from minitvm.runtime import cuda, module_io
    # a CUDA artifact's check, without building one: no GPU here (or the wrong one) is refused
    if cuda.device_count() == 0:
        with pytest.raises(DeviceError, match="CUDA code for sm_90.*not usable here"):
            module_io.check_cuda_device("sm_90")
    monkeypatch.setattr(cuda, "device_count", lambda: 1)
    monkeypatch.setattr(cuda, "device_arch", lambda i=0: "sm_80")
    monkeypatch.setattr(cuda, "device_name", lambda i=0: "NVIDIA A100")
    with pytest.raises(DeviceError, match="sm_90.*A100.*sm_80"):
        module_io.check_cuda_device("sm_90")
    module_io.check_cuda_device("sm_80")
    with pytest.raises(DeviceError, match="sm_86"):
        module_io.check_cuda_device("sm_86")


def test_cuda_module_saves_and_loads_without_compiling(monkeypatch):
    """The cubin, source, signatures and launch plans survive the round trip (no GPU needed)."""
    from minitvm.runtime import cuda, module_io
    from minitvm.runtime.cuda import compile as cc
    try:
        cuda.compile_cuda('extern "C" __global__ void k(float* a) { a[threadIdx.x] += 1.0f; }', "sm_90")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"NVRTC unavailable: {exc}")
    model = minitvm.compile(_net(), target="cuda -arch=sm_90")
    meta, files = module_io.save_module(model.module)
    json.dumps(meta)
    monkeypatch.setattr(cc, "compile_cuda", lambda *a, **k: pytest.fail("load must not compile"))
    back = module_io.load_module(json.loads(json.dumps(meta)), files, check_device=False)
    assert back.cubin == model.module.cubin and back.plans == model.module.plans
    assert back.signatures == model.module.signatures and back.get_source() == model.module.get_source()


def test_compile_int8_with_calibration_round_trips(tmp_path):
    g = _net(batch=1, convs=2)
    data = [{"data": _x(1, s)} for s in range(3)]
    model = minitvm.compile(g, target="llvm", dtype="int8", calibration=data)
    assert any("requantize" in " ".join(s.ops) for s in model.steps), [s.ops for s in model.steps]
    np.savez(tmp_path / "cal.npz", data=np.stack([d["data"][0] for d in data]))
    from_npz = minitvm.compile(g, target="llvm", dtype="int8", calibration=tmp_path / "cal.npz")
    x = _x(1, 9)
    np.testing.assert_array_equal(model.run({"data": x})[0], from_npz.run({"data": x})[0])
    model.save(tmp_path / "q.mtvm")
    np.testing.assert_array_equal(minitvm.load(tmp_path / "q.mtvm").run({"data": x})[0], model.run({"data": x})[0])


def test_int8_needs_calibration_data_and_random_noise_only_when_asked_for():
    with pytest.raises(UsageError, match="int8 needs calibration data.*calibration='random' for timing only"):
        minitvm.compile(_net(batch=1, convs=2), target="llvm", dtype="int8")
    with pytest.raises(UsageError, match="int8 needs calibration data"):     # a zoo model: before building it
        minitvm.compile("resnet50", target="llvm", dtype="int8")
    with pytest.warns(UserWarning, match="accuracy means nothing"):
        model = minitvm.compile(_net(batch=1, convs=2), target="llvm", dtype="int8", calibration="random")
    assert any("requantize" in " ".join(s.ops) for s in model.steps)


def test_onnx_dynamic_batch_from_batch_or_input_shapes(tmp_path):
    from tiny_onnx import tiny_cnn
    pytest.importorskip("onnx")
    path = tiny_cnn(tmp_path / "tiny.onnx")
    assert minitvm.compile(path, target="llvm", batch=3).get_inputs()[0].shape == (3, 3, 8, 8)
    assert minitvm.compile(path, target="llvm", input_shapes=(2, 3, 8, 8)).get_inputs()[0].shape == (2, 3, 8, 8)
    with pytest.raises(UsageError, match=r"input 'x' has dynamic dimensions \[N, 3, 8, 8\]; give its shape: "
                                         r"input_shapes=\{'x': \(1, 3, 8, 8\)\} \(or batch N for its batch\)"):
        minitvm.compile(path, target="llvm")
    static = tiny_cnn(tmp_path / "static.onnx", dims=(1, 3, 8, 8))
    with pytest.raises(UsageError, match="batch 2: .*static.onnx has a static batch"):
        minitvm.compile(static, target="llvm", batch=2)


def test_progress_true_shows_bars(capsys):
    minitvm.compile(_net(batch=1), target="llvm", progress=True)
    assert "compiling" in capsys.readouterr().err
    events = []
    minitvm.compile(_net(batch=1, convs=2), target="llvm", dtype="int8", calibration=[{"data": _x(1)}] * 2,
                    progress=lambda *e: events.append(e))
    assert ("calibrating", 2, 2) in events and events[-1][0] == "compiling" and events[-1][1] == events[-1][2]


def test_compile_rejects_bad_arguments(tmp_path):
    with pytest.raises(UsageError, match="dtype must be one of"):
        minitvm.compile(_net(), target="llvm", dtype="float16")
    with pytest.raises(UsageError, match="model must be a zoo name"):
        minitvm.compile(42, target="llvm")
    with pytest.raises(UsageError, match="no such file"):
        minitvm.compile(str(tmp_path / "absent.onnx"), target="llvm")
    with pytest.raises(UsageError, match="tuning_log"):
        minitvm.compile(_net(), target="llvm", tuning_log=tmp_path / "absent.log")
    with pytest.raises(UsageError, match=r"calibration is for int8 \(this model compiles in float32\)"):
        minitvm.compile(_net(), target="llvm", calibration=[{"data": _x()}])
    with pytest.raises(ShapeError, match=r"calibration sample 0: input 'data' has shape \[3"):
        minitvm.compile(_net(), target="llvm", dtype="int8", calibration=[{"data": np.zeros((3, 4, 8, 8))}])
    with pytest.raises(UsageError, match="input shapes are fixed"):
        minitvm.compile(_net(), target="llvm", input_shapes={"data": (1, 4, 8, 8)})
    with pytest.raises(UsageError, match=r"takes images \(N, 3, H, W\)"):
        minitvm.compile("resnet18", target="llvm", input_shapes=(1, 1, 32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Exception, match="unknown zoo model"):
            minitvm.compile("resnet_eighteen", target="llvm")
    minitvm.compile(_net(), target="llvm").save(tmp_path / "m.mtvm")
    with pytest.raises(UsageError, match="m.mtvm is a compiled artifact.*minitvm.load"):
        minitvm.compile(tmp_path / "m.mtvm", target="llvm")
    with pytest.raises(UsageError, match="calibration .*nothing-here: give a folder of images or an .npz"):
        minitvm.compile(_net(), target="llvm", dtype="int8", calibration=tmp_path / "nothing-here")


def test_compile_onnx_model_proto_with_input_shapes():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    w = rng.standard_normal((5, 6)).astype("float32")
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
                              [onnx.numpy_helper.from_array(w, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model = minitvm.compile(proto, target="llvm", input_shapes={"x": (3, 6)})
    assert model.get_inputs()[0].shape == (3, 6)
    x = rng.standard_normal((3, 6)).astype("float32")
    np.testing.assert_allclose(model(x), x @ w.T, rtol=1e-5, atol=1e-5)   # entries near 0 too


def test_torch_tensors_in_torch_tensors_out(compiled):
    torch = pytest.importorskip("torch", reason="torch is not installed here (DLPack is tested with numpy)")
    x = _x(seed=6)
    prob, r1 = compiled(torch.from_numpy(x))
    assert isinstance(prob, torch.Tensor) and isinstance(r1, torch.Tensor)
    np.testing.assert_array_equal(prob.numpy(), compiled.run({"data": x})[0])
