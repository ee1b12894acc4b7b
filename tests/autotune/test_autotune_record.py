"""Tuning logs (JSON lines), ApplyHistoryBest and the fallback context."""
import json
import multiprocessing
import time
import warnings

import numpy as np
import pytest

import minitvm
from minitvm import autotune
from minitvm.autotune import MeasureErrorNo, MeasureInput, MeasureResult
from minitvm.autotune.record import append_record, decode, encode, load_records, pick_best
from minitvm.topi.cpu.matmul import matmul_cpu

ARGS = (48, 40, 24, "float32")


def _records(task, costs):
    """Records for configs 0, 1, 2 ... with the given costs (None = a failed trial)."""
    out = []
    for i, c in enumerate(costs):
        cfg = task.config_space.get(i * 7)
        if c is None:
            res = MeasureResult((), MeasureErrorNo.RUNTIME_DEVICE, "boom", 0.1, time.time())
        else:
            res = MeasureResult((c, c * 1.1), MeasureErrorNo.NO_ERROR, "", 0.1, time.time())
        out.append((MeasureInput("llvm", task, cfg), res))
    return out


def test_record_round_trip():
    task = autotune.Task("matmul.cpu", ARGS)
    (inp, res), = _records(task, [2e-3])
    line = encode(inp, res)
    obj = json.loads(line)
    for key in ("target", "task", "args", "workload", "config", "costs", "error_no", "error_msg", "timestamp",
                "version"):
        assert key in obj
    assert obj["version"] == minitvm.__version__
    inp2, res2 = decode(line)
    assert inp2.task == task and inp2.target == "llvm"
    assert inp2.config.index == inp.config.index and inp2.config.values == inp.config.values
    assert inp2.config.resolve() == inp.config
    assert res2.costs == res.costs and res2.error_no == MeasureErrorNo.NO_ERROR


def test_a_gzipped_log_reads_like_the_plain_one(tmp_path):
    import gzip
    task = autotune.Task("matmul.cpu", ARGS)
    plain = tmp_path / "trials.log"
    autotune.record.save_records(plain, _records(task, [2e-3, None, 1e-3]))
    packed = tmp_path / "trials.log.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    got = [(i.config.values, r.costs, r.error_no) for i, r in load_records(packed)]
    assert got == [(i.config.values, r.costs, r.error_no) for i, r in load_records(plain)] and len(got) == 3


def test_log_append_and_corrupted_lines_are_skipped_with_a_warning(tmp_path):
    task = autotune.Task("matmul.cpu", ARGS)
    log = tmp_path / "t.log"
    recs = _records(task, [3e-3, None, 1e-3])
    append_record(log, *recs[0])
    with open(log, "a") as f:
        f.write('{"target": "llvm", "task": "matmul.cpu", "args": [48, 40\n')   # truncated line
        f.write("not json at all\n")
        f.write('{"target": "llvm"}\n')                                          # missing fields
    append_record(log, *recs[1])
    append_record(log, *recs[2])
    with pytest.warns(UserWarning) as caught:
        got = load_records(log)
    msgs = [str(w.message) for w in caught]
    assert any(":2:" in m for m in msgs) and any(":3:" in m for m in msgs) and any(":4:" in m for m in msgs)
    assert len(got) == 3
    assert [r.error_no for _, r in got] == [MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUNTIME_DEVICE,
                                             MeasureErrorNo.NO_ERROR]


def _append_many(path, n, tag):
    from minitvm import autotune as at
    task = at.Task("matmul.cpu", ARGS)
    cfg = task.config_space.get(tag)
    res = MeasureResult((1e-3,) * 50, MeasureErrorNo.NO_ERROR, "x" * 400, 0.0, 0.0)
    for _ in range(n):
        append_record(path, MeasureInput("llvm", task, cfg), res)


def test_appends_from_several_processes_interleave_whole_lines(tmp_path):
    log = str(tmp_path / "shared.log")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(log, 150, k)) for k in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recs = load_records(log)
    assert len(recs) == 300


def test_apply_history_best_picks_the_best_valid_config(tmp_path):
    task = autotune.Task("matmul.cpu", ARGS)
    recs = _records(task, [3e-3, 0.5e-3, None, 1e-3])   # #2 failed (and would be "fastest")
    log = tmp_path / "mm.log"
    for r in recs:
        append_record(log, *r)
    best = recs[1][0].config
    with autotune.ApplyHistoryBest(str(log)) as ctx:
        assert ctx.query("llvm", task.workload) == best
        assert ctx.query("llvm -mcpu=generic", task.workload) == best    # same target kind
        s, args = matmul_cpu(*ARGS)                                       # the template uses it
        f = minitvm.build(s, args, "llvm")
    a = np.random.default_rng(0).standard_normal((48, 24)).astype("float32")
    b = np.random.default_rng(1).standard_normal((24, 40)).astype("float32")
    c = np.zeros((48, 40), "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)
    # records of another workload do not answer
    with autotune.ApplyHistoryBest(load_records(log)) as ctx:
        assert ctx.lookup("llvm", ("matmul.cpu", 8, 8, 8, "float32")) is None
        assert ctx.lookup("cuda", task.workload) is None


def test_apply_history_best_passes_over_records_that_do_not_fit_the_space(tmp_path):
    task = autotune.Task("matmul.cpu", ARGS)
    recs = _records(task, [2e-3, 1e-3])
    log = tmp_path / "mm.log"
    append_record(log, *recs[0])
    line = json.loads(encode(*recs[1]))
    line["config"]["knobs"]["tile_x"] = [1, 40, 1]    # from an older template: 3-way split
    with open(log, "a") as f:
        f.write(json.dumps(line) + "\n")
    with autotune.ApplyHistoryBest(log) as ctx:
        assert ctx.query("llvm", task.workload) == recs[0][0].config


def test_a_knob_added_after_the_log_takes_its_first_value(tmp_path):
    """Old logs keep their meaning when a template gains a knob (listed old-behaviour first)."""
    task = autotune.Task("matmul.cpu", ARGS)
    (inp, res), = _records(task, [1e-3])
    line = json.loads(encode(inp, res))
    first = task.config_space.space_map["vectorize"].get(0).val
    del line["config"]["knobs"]["vectorize"]          # written before the knob existed
    log = tmp_path / "mm.log"
    log.write_text(json.dumps(line) + "\n")
    with autotune.ApplyHistoryBest(str(log)) as ctx:
        cfg = ctx.query("llvm", task.workload)
    assert not cfg.is_fallback and cfg["vectorize"].val == first
    assert {k: v for k, v in cfg.values.items() if k != "vectorize"} == line["config"]["knobs"]


def test_fallback_warns_once_per_workload():
    root = autotune.DispatchContext.current()
    assert isinstance(root, autotune.FallbackContext)
    root.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matmul_cpu(16, 16, 16, "float32")
        matmul_cpu(16, 16, 16, "float32")
        matmul_cpu(16, 32, 16, "float32")
    fallback = [w for w in caught if issubclass(w.category, autotune.FallbackConfigWarning)]
    assert len(fallback) == 2 and "matmul.cpu" in str(fallback[0].message)


def test_fallback_inside_apply_history_best_for_an_untuned_workload(tmp_path):
    log = tmp_path / "empty.log"
    log.write_text("")
    autotune.DispatchContext.current().reset()
    with autotune.ApplyHistoryBest(log):
        with pytest.warns(autotune.FallbackConfigWarning):
            s, args = matmul_cpu(8, 8, 8, "float32")
    with pytest.warns(autotune.FallbackConfigWarning):
        cfg = autotune.FallbackContext().query("llvm", ("matmul.cpu", 8, 8, 8, "float32"))
    assert cfg.is_fallback


def test_conv_template_fallback_equals_default_config():
    from minitvm import te
    from minitvm.topi.cuda import conv2d_int8 as c8
    from minitvm.topi.nn.conv2d import conv2d_NCHWc_int8
    data = te.placeholder((2, 8, 14, 14, 4), "int8", "data")
    kernel = te.placeholder((16, 8, 3, 3, 4, 4), "int8", "kernel")
    out = conv2d_NCHWc_int8(data, kernel, 1, 1)
    fb = autotune.FallbackConfig()
    c8.define_knobs(fb, out)
    default = c8.default_config(out)
    assert {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in default.items()} == fb.values
    task = autotune.Task("conv2d_NCHWc_int8.cuda", ((2, 8, 14, 14, 4), (16, 8, 3, 3, 4, 4), 1, 1))
    assert fb.index >= 0 and task.config_space.is_valid(task.config_space.get(fb.index))
    # the workload the schedule function looks up is the task's
    assert ("conv2d_NCHWc_int8.cuda",) + c8._workload_args(out) == task.workload


def test_pick_best(tmp_path):
    t1 = autotune.Task("matmul.cpu", ARGS)
    t2 = autotune.Task("matmul.cpu", (16, 16, 16, "float32"))
    log, out = tmp_path / "all.log", tmp_path / "best.log"
    r1, r2 = _records(t1, [3e-3, 1e-3, None]), _records(t2, [None, 2e-3, 5e-3])
    for r in r1 + r2:
        append_record(log, *r)
    assert pick_best(log, out) == 2
    best = load_records(out)
    assert [r.costs[0] for _, r in best] == [1e-3, 2e-3]


def _good_log(tmp_path, n=3):
    task = autotune.Task("matmul.cpu", ARGS)
    path = tmp_path / "good.log"
    autotune.record.save_records(path, _records(task, [3e-3, 2e-3, 1e-3][:n]))
    return path


def test_bad_lines_are_skipped_naming_file_and_line_and_the_good_ones_kept(tmp_path):
    good = _good_log(tmp_path).read_bytes().splitlines(keepends=True)
    log = tmp_path / "mixed.log"
    # line 2: not UTF-8; line 4: JSON nested 100,000 deep
    log.write_bytes(good[0] + b"\xff\xfe not text\n" + good[1] + b"[" * 100_000 + b"\n" + good[2])
    with pytest.warns(UserWarning) as caught:
        recs = load_records(log)
    assert len(recs) == 3
    messages = [str(w.message) for w in caught]
    assert any(f"{log}:2: skipping a line that is not UTF-8" in m for m in messages)
    assert any(f"{log}:4: skipping a malformed tuning record (nested too deeply)" in m for m in messages)


def test_a_gz_that_is_not_gzip_and_a_truncated_gz_keep_their_good_lines(tmp_path):
    import gzip
    plain = _good_log(tmp_path)
    fake = tmp_path / "fake.log.gz"
    fake.write_bytes(plain.read_bytes())
    with pytest.warns(UserWarning, match="not gzip data despite its name"):
        assert len(load_records(fake)) == 3
    packed = gzip.compress(plain.read_bytes() * 200)
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        recs = load_records(cut)
    assert 0 < len(recs) < 600
    # pick_best reads what load_records reads, gzip included
    packed_log = tmp_path / "all.log.gz"
    packed_log.write_bytes(gzip.compress(plain.read_bytes()))
    assert pick_best(packed_log, tmp_path / "best.log") == 1


def test_missing_directory_and_unwritable_logs_are_named_errors(tmp_path):
    from minitvm.autotune.record import TuningLogError
    with pytest.raises(TuningLogError, match="cannot be read"):
        load_records(tmp_path / "nope.log")
    with pytest.raises(TuningLogError, match="is a directory"):
        load_records(tmp_path)
    with pytest.raises(TuningLogError, match="is a directory"):
        autotune.log_to_file(tmp_path)
    with pytest.raises(TuningLogError, match="cannot be written"):
        autotune.log_to_file(tmp_path / "no-such-dir" / "t.log")     # before any trial
