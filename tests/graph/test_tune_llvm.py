"""Tuning a model on the CPU: the tasks of an LLVM build are the x86 templates the build looks up
(extraction compiles nothing, so any -mattr can be named), and tune_graph measures them on the
host into a log that the build then applies."""
import numpy as np
import pytest

from minitvm import autotune
from minitvm.graph import Graph, zoo
from minitvm.graph.build import build, lowered_groups, optimize
from minitvm.graph.reference import run_reference
from minitvm.graph.tune import default_config, extract_tasks, tune_graph
from minitvm.models import quantize_for_target
from minitvm.runtime.cpu_features import cpu_features
from minitvm.target import Target

AVX2 = Target("llvm -mattr=+avx2,+fma,-avx512f,-avxvnni,-avx512vnni")
VNNI512 = Target("llvm -mattr=+avx2,+fma,+avx512f,+avx512bw,+avx512vnni")
GENERIC = Target("llvm -mattr=-avx2,-avx512f,-avxvnni,-avx512vnni")


def test_float_tasks_are_the_packed_templates_the_build_uses():
    graph, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    tasks = extract_tasks(graph, AVX2, counts=True)
    names = {t.name for t, _ in tasks}
    assert names == {"conv2d_NCHWc.x86", "dense_packed.x86"}
    anchors = [g for g in lowered_groups(optimize(graph, AVX2), AVX2)
               if g.group.anchor and graph.node(g.group.anchor).op in ("conv2d", "dense")]
    assert sum(n for _, n in tasks) == len(anchors) == 21
    assert all(g.implementation in names for g in anchors)
    # 8 floats a vector on AVX2, 16 on AVX-512: the workloads differ
    conv = next(t for t, _ in tasks if t.name == "conv2d_NCHWc.x86" and t.args[0][1] > 1)
    assert conv.args[0][4] == 8
    assert max(t.args[0][4] for t in extract_tasks(graph, VNNI512) if t.name == "conv2d_NCHWc.x86") == 16
    for t, _ in tasks:
        assert len(t.config_space) > 1 and default_config(t) is not None


def test_int8_tasks_are_the_dot_product_template():
    graph, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    q = quantize_for_target(graph, np.random.default_rng(0), n_images=0, target=VNNI512)
    names = [t.name for t in extract_tasks(q, VNNI512)]
    # the first conv and the classifier stay float (the default recipe)
    assert names[0] == "conv2d_NCHWc.x86" and names[-1] == "dense_packed.x86"
    assert set(names[1:-1]) == {"conv2d_NCHWc_int8.x86"}


def test_a_cpu_without_avx2_has_no_packed_float_tasks():
    graph, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    assert {t.name for t in extract_tasks(graph, GENERIC)} == {"dense.x86"}     # (plain weights too)


def _mobile_net():
    """A float conv, a depthwise conv, a 1x1 conv with a residual add, and a classifier."""
    rng = np.random.default_rng(1)
    g = Graph("mobile")
    x = g.add_input("data", (1, 8, 10, 10))

    def conv(name, x, o, k, groups=1, stride=1):
        c = g.node(x).type.shape[1]
        w = g.add_const(f"{name}.w", (rng.standard_normal((o, c // groups, k, k)) * 0.3).astype("float32"))
        b = g.add_const(f"{name}.b", rng.standard_normal(o).astype("float32"))
        return g.add_op("conv2d", [x, w, b], {"padding": k // 2, "groups": groups, "strides": stride}, name=name)

    y = g.add_op("relu", [conv("c1", x, 16, 3)], name="r1")
    y = g.add_op("clip", [conv("dw", y, 16, 3, groups=16, stride=2)], {"min": 0.0, "max": 6.0}, name="r6")
    y = g.add_op("add", [conv("pw", y, 16, 1), y], name="res")
    y = g.add_op("flatten", [g.add_op("global_avg_pool2d", [y], name="gap")], name="flat")
    w = g.add_const("fc.w", rng.standard_normal((10, 16)).astype("float32"))
    g.mark_output(g.add_op("dense", [y, w], name="fc"))
    return g


def test_tune_graph_on_the_host_cpu_and_build_with_the_log(tmp_path):
    if "avx2" not in cpu_features():
        pytest.skip("the host CPU has no AVX2: its float convs are not packed, nothing to tune but dense")
    graph = _mobile_net()
    log = tmp_path / "cpu.log"
    results = tune_graph(graph, str(log), "llvm", n_trial=3, tuner="random", progress=False,
                         measure_option=autotune.measure_option(autotune.LocalBuilder(n_parallel=1),
                                                                autotune.LocalRunner(number=1, repeat=1,
                                                                                     check_correctness=True)))
    names = {t.name for t, _ in results}
    assert names == {"conv2d_NCHWc.x86", "depthwise_conv2d_NCHWc.x86", "dense_packed.x86"}
    assert all(np.isfinite(cost) for _, cost in results)     # every task has a valid, checked trial
    records = autotune.load_records(str(log))
    assert len(records) == sum(min(3, len(t.config_space)) for t, _ in results)
    assert all(Target(inp.target).kind == "llvm" for inp, _ in records)
    x = np.random.default_rng(2).standard_normal((1, 8, 10, 10)).astype("float32")
    with autotune.ApplyHistoryBest(str(log)):
        model = build(graph, "llvm")
    np.testing.assert_allclose(model.run({"data": x})[0], run_reference(graph, {"data": x})[0], rtol=1e-4,
                               atol=1e-4)
