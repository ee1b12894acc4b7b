"""The tunable CUDA templates ``conv2d_nchw.cuda`` and ``dense.cuda`` (no GPU needed).

Every sampled config of each space lowers and compiles with NVRTC for sm_90, within the limits
the space's filter claims; the fallback is ``default_config``; dict configs merge over the
default; bad knobs are named; the schedule functions (and graph builds) ask the dispatch context.
"""
import json
import math
import random
import time
import warnings
import zlib

import pytest

pytest.importorskip("cuda.bindings")

import minitvm  # noqa: E402
from minitvm import autotune, te  # noqa: E402
from minitvm.autotune import MeasureErrorNo, MeasureInput, MeasureResult  # noqa: E402
from minitvm.autotune.record import append_record  # noqa: E402
from minitvm.autotune.knob import ConfigError  # noqa: E402
from minitvm.dtype import bits  # noqa: E402
from minitvm.errors import ScheduleError  # noqa: E402
from minitvm.tir.functor import Visitor  # noqa: E402
from minitvm.topi.cuda import conv2d as cuda_conv  # noqa: E402
from minitvm.topi.cuda import dense as cuda_dense  # noqa: E402
from minitvm.topi.nn.conv2d import conv2d_nchw  # noqa: E402
from minitvm.topi.nn.dense import dense, dense_int8  # noqa: E402
from minitvm.topi.nn.elemwise import relu  # noqa: E402

CONV_WORKLOADS = {
    "b16_3x3": ((16, 64, 14, 14), (64, 64, 3, 3), 1, 1),
    "b16_1x1s2": ((16, 128, 14, 14), (256, 128, 1, 1), 2, 0),
    "stem_b3": ((3, 3, 23, 23), (16, 3, 7, 7), 2, 3),
    "dil_grp": ((1, 32, 9, 9), (64, 8, 3, 3), 1, 2, 2, 4),
    "depthwise": ((2, 16, 10, 10), (16, 1, 3, 3), 1, 1, 1, 16),
}
DENSE_WORKLOADS = {
    "int8_b16": ((16, 2048), (1000, 2048), "int8"),
    "int8_odd": ((3, 12), (40, 12), "int8", "int32"),
    "fp32_b16": ((16, 512), (1000, 512), "float32"),
    "fp32_odd": ((5, 40), (24, 40), "float32"),
}
CASES = [("conv2d_nchw.cuda", k, v) for k, v in CONV_WORKLOADS.items()] + \
        [("dense.cuda", k, v) for k, v in DENSE_WORKLOADS.items()]


def _valid_indices(space, n, seed):
    """``n`` distinct random indices of configs the space's filter accepts (seeded); all of
    them when a small space has fewer."""
    rng = random.Random(seed)
    if len(space) <= 20000:
        valid = [i for i in range(len(space)) if space.is_valid(i)]
        return rng.sample(valid, min(n, len(valid)))
    out, tries = [], 0
    while len(out) < n and tries < 200000:
        tries += 1
        i = rng.randrange(len(space))
        if i not in out and space.is_valid(i):
            out.append(i)
    return out


class _Usage(Visitor):
    """Shared bytes, local elements and threads per block of a lowered kernel."""

    def __init__(self):
        self.shared, self.local, self.threads = 0, 0, {}

    def visit_Allocate(self, node):
        n = math.prod(int(d.value) for d in node.buffer.shape)
        if node.buffer.scope == "shared":
            self.shared += n * bits(node.buffer.dtype) // 8
        elif node.buffer.scope == "local":
            self.local += n
        self.generic_visit(node)

    def visit_AttrStmt(self, node):
        tag = getattr(node.node, "thread_tag", "")
        if node.attr_key == "thread_extent" and tag.startswith("threadIdx"):
            self.threads[tag] = max(self.threads.get(tag, 1), int(node.value.value))
        self.generic_visit(node)


def _usage(s, tensors):
    u = _Usage()
    u.visit(minitvm.lower(s, tensors).body)
    return u


def _footprint(mod, tensors, config):
    """The template module's own estimate for ``config`` (what its filter checks)."""
    return mod._footprint(tensors[-1], {k: config[k].size for k, _ in mod._KNOB_SPLITS})


@pytest.mark.slow  # sampled configs through NVRTC
@pytest.mark.parametrize("name,key,args", CASES, ids=[f"{n.split('.')[0]}-{k}" for n, k, _ in CASES])
def test_sampled_configs_compile_for_sm90_within_the_filter_limits(name, key, args):
    task = autotune.Task(name, args)
    space = task.config_space
    assert len(space) > 0
    assert task.target == "cuda" and task.flop > 0
    idx = _valid_indices(space, 20, seed=zlib.crc32(key.encode()))
    assert len(idx) >= 5, "the filter rejects (nearly) every config"
    mod = cuda_conv if name.startswith("conv2d") else cuda_dense
    for i in idx:
        config = space.get(i)
        s, tensors = task.instantiate(config)
        u = _usage(s, tensors)
        fp = _footprint(mod, tensors, config)
        # the filter's model of the kernel is an upper bound of what lowering allocates
        assert u.shared <= fp["shared"] <= 48 * 1024, (config, u.shared, fp)
        assert math.prod(u.threads.values()) == fp["threads"] <= 1024, (config, u.threads)
        assert u.threads.get("threadIdx.z", 1) <= 64, config
        assert u.local * fp.get("vthreads", 1) == fp["local"], (config, u.local, fp)   # per virtual thread
        m = minitvm.build(s, tensors, "cuda -arch=sm_90")
        assert m.cubin, config
        if args[2:3] == ("int8",):
            assert "__dp4a" in m.get_source()


@pytest.mark.parametrize("name,key,args", CASES, ids=[f"{n.split('.')[0]}-{k}" for n, k, _ in CASES])
def test_fallback_is_the_default_config_and_passes_the_filter(name, key, args):
    task = autotune.Task(name, args)
    mod = cuda_conv if name.startswith("conv2d") else cuda_dense
    fb = autotune.FallbackConfig()
    _, tensors = task.template.func(fb, *task.args)
    out = tensors[-1]
    default = mod.default_config(out)
    assert {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in default.items()} == fb.values
    assert fb.index >= 0 and task.config_space.is_valid(task.config_space.get(fb.index))
    # the schedule function looks up exactly the task's workload
    assert (name,) + mod._workload_args(out) == task.workload
    # and, outside any context, falls back to the default with a warning
    autotune.DispatchContext.current().reset()
    with pytest.warns(autotune.FallbackConfigWarning, match=name.replace(".", r"\.")):
        s, t2 = task.template(*args)
    s_def, t3 = task.instantiate(task.config_space.get(fb.index))
    assert _source(s, t2) == _source(s_def, t3)


def _source(s, tensors):
    return minitvm.build(s, tensors, "cuda -arch=sm_90").get_source()


def _conv(N=2, C=16, H=10, W=10, O=32, K=3, stride=1, pad=1, epilogue=False):
    X = te.placeholder((N, C, H, W), "float32", "data")
    Wt = te.placeholder((O, C, K, K), "float32", "kernel")
    out = conv2d_nchw(X, Wt, stride, pad)
    return X, Wt, (relu(out) if epilogue else out), out


def _dense(M=4, N=48, K=32, dtype="float32"):
    A = te.placeholder((M, K), dtype, "data")
    B = te.placeholder((N, K), dtype, "weight")
    return A, B, (dense_int8(A, B) if dtype == "int8" else dense(A, B))


def test_conv_dict_config_merges_over_the_default():
    X, Wt, out, conv = _conv()
    merged = dict(cuda_conv.default_config(conv), tile_x=[1, 1, 10, 1], auto_unroll_max_step=0)
    task = autotune.Task("conv2d_nchw.cuda", ((2, 16, 10, 10), (32, 16, 3, 3), 1, 1))
    entity = task.config_space.get(task.config_space.index_of(merged))
    want = _source(*task.instantiate(entity))
    got = _source(cuda_conv.schedule_conv2d_nchw(out, {"tile_x": [1, 1, 10, 1], "auto_unroll_max_step": 0}),
                  [X, Wt, out])
    assert got == want
    assert got != _source(cuda_conv.schedule_conv2d_nchw(out, {}), [X, Wt, out])


def test_dense_dict_config_merges_over_the_default():
    for dtype in ("float32", "int8"):
        A, B, C = _dense(dtype=dtype)
        merged = dict(cuda_dense.default_config(C), tile_k=[2, 16], unroll_explicit=True)
        task = autotune.Task("dense.cuda", ((4, 32), (48, 32), dtype))
        entity = task.config_space.get(task.config_space.index_of(merged))
        want = _source(*task.instantiate(entity))
        got = _source(cuda_dense.schedule_dense(C, {"tile_k": [2, 16], "unroll_explicit": True}), [A, B, C])
        assert got == want


@pytest.mark.parametrize("knobs,match", [
    ({"tile_f": [3, 1, 1, 10]}, "tile_f"),            # does not multiply to 32
    ({"tile_rc": [16, 1, 1]}, "tile_rc"),             # a 3-way split of a 2-way knob
    ({"tile_x": [10, 1, 0, 1]}, "tile_x"),            # non-positive factor
    ({"tile_q": [1, 2]}, "tile_q"),                   # no such knob
    ({"auto_unroll_max_step": -1}, "auto_unroll_max_step"),
    ({"unroll_explicit": "yes"}, "unroll_explicit"),
])
def test_conv_bad_knob_is_named(knobs, match):
    _, _, out, _ = _conv()
    with pytest.raises(ScheduleError, match=match):
        cuda_conv.schedule_conv2d_nchw(out, knobs)


@pytest.mark.parametrize("dtype,knobs,match", [
    ("int8", {"tile_k": [16, 2]}, "tile_k.*multiple of 4"),
    ("float32", {"tile_y": [1, 1, 3]}, "tile_y"),
    ("float32", {"tile_x": [2, 24]}, "tile_x"),
    ("float32", {"tile_z": [2, 24]}, "tile_z"),
    ("int8", {"auto_unroll_max_step": "512"}, "auto_unroll_max_step"),
])
def test_dense_bad_knob_is_named(dtype, knobs, match):
    _, _, C = _dense(dtype=dtype)
    with pytest.raises(ScheduleError, match=match):
        cuda_dense.schedule_dense(C, knobs)


def test_a_config_of_another_template_is_rejected_naming_the_knob():
    other = autotune.Task("dense.cuda", ((4, 32), (48, 32), "float32")).config_space.get(0)
    _, _, out, _ = _conv()
    with pytest.raises(ConfigError, match="tile_n"):
        cuda_conv.schedule_conv2d_nchw(out, other)


def test_int8_dense_space_has_only_dp4a_k_tiles_and_rejects_ragged_k():
    space = autotune.Task("dense.cuda", ((16, 2048), (1000, 2048), "int8")).config_space
    assert all(e.size[1] % 4 == 0 for e in space.space_map["tile_k"].entities)
    assert len(space.space_map["tile_k"]) > 3
    with pytest.raises(ScheduleError, match="multiple of 4"):
        autotune.Task("dense.cuda", ((2, 10), (8, 10), "int8")).config_space
    with pytest.raises(ScheduleError, match="int32"):
        _, _, C = _dense(dtype="int8")
        A, B = C.op.input_tensors
        cuda_dense.schedule_dense(dense(A, B, out_dtype="float32"))


def test_task_arguments_are_canonical_and_registered_for_logs():
    from minitvm.autotune.task import _BUILTIN_MODULES
    assert _BUILTIN_MODULES["conv2d_nchw.cuda"] == "minitvm.topi.cuda.conv2d"
    assert _BUILTIN_MODULES["dense.cuda"] == "minitvm.topi.cuda.dense"
    t = autotune.Task("conv2d_nchw.cuda", ([1, 8, 8, 8], [8, 8, 3, 3], 1, 1))
    assert t.args == ((1, 8, 8, 8), (8, 8, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, "float32", "float32")
    d = autotune.Task("dense.cuda", ([2, 8], [4, 8], "int8"))
    assert d.args == ((2, 8), (4, 8), "int8", "int32")
    assert json.loads(d.workload_key)[0] == "dense.cuda"


def _log_config(tmp_path, task, config, cost=1e-5):
    log = tmp_path / "t.log"
    res = MeasureResult((cost, cost), MeasureErrorNo.NO_ERROR, "", 0.1, time.time())
    append_record(log, MeasureInput("cuda -arch=sm_90", task, config), res)
    return log


def _non_default(task):
    """A valid config that is not the fallback."""
    fb = autotune.FallbackConfig()
    task.template.func(fb, *task.args)
    for i in _valid_indices(task.config_space, 50, seed=3):
        if i != fb.index:
            return task.config_space.get(i)
    raise AssertionError("no valid non-default config")


@pytest.mark.slow  # NVRTC builds
def test_apply_history_best_reaches_schedule_functions(tmp_path):
    X, Wt, out, _ = _conv(epilogue=False)
    A, B, C = _dense(dtype="int8")
    ctask = autotune.Task("conv2d_nchw.cuda", ((2, 16, 10, 10), (32, 16, 3, 3), 1, 1))
    dtask = autotune.Task("dense.cuda", ((4, 32), (48, 32), "int8"))
    cbest, dbest = _non_default(ctask), _non_default(dtask)
    log = _log_config(tmp_path, ctask, cbest)
    res = MeasureResult((1e-5,), MeasureErrorNo.NO_ERROR, "", 0.1, time.time())
    append_record(log, MeasureInput("cuda -arch=sm_90", dtask, dbest), res)
    with warnings.catch_warnings():
        warnings.simplefilter("error", autotune.FallbackConfigWarning)   # both are tuned: no fallback
        with autotune.ApplyHistoryBest(log):
            got_c = _source(cuda_conv.schedule_conv2d_nchw(out), [X, Wt, out])
            got_d = _source(cuda_dense.schedule_dense(C), [A, B, C])
    assert got_c == _source(*ctask.instantiate(cbest))
    assert got_d == _source(*dtask.instantiate(dbest))


class _Spy(autotune.DispatchContext):
    """Records the workloads asked for and defers to the enclosing context."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def _query_inside(self, target, workload):
        self.seen.append(workload)
        return None


@pytest.mark.slow  # builds whole graphs for CUDA
def test_graph_builds_dispatch_conv_and_dense_through_the_context():
    from minitvm.graph import zoo
    from minitvm.graph.build import build
    graph, _ = zoo.get_model("resnet18", batch=2, image_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", autotune.FallbackConfigWarning)
        with _Spy() as spy:
            build(graph, "cuda -arch=sm_90")
    names = {w[0] for w in spy.seen}
    assert names == {"conv2d_nchw.cuda", "dense.cuda"}
    assert ("dense.cuda", (2, 512), (1000, 512), "float32", "float32") in spy.seen
    assert ("conv2d_nchw.cuda", (2, 3, 32, 32), (64, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1, "float32",
            "float32") in spy.seen
