"""Config spaces: knob enumeration and policies, index <-> values round trips, entities."""
import itertools
import json
import math

import numpy as np
import pytest

import minitvm
from minitvm import autotune, te
from minitvm.autotune import ConfigError, ConfigSpace, FallbackConfig


def _space():
    sp = ConfigSpace()
    sp.define_split("tile_x", 12, num_outputs=3)
    sp.define_split("tile_y", 10, num_outputs=2, policy="power2")
    sp.define_knob("unroll", [0, 16, 512])
    sp.define_knob("flag", [True, False])
    sp.define_reorder("order", 3, policy="all")
    sp.define_annotate("ann", 2, policy="try_unroll_vec")
    return sp


def test_split_factors_are_every_ordered_factorization():
    sp = ConfigSpace()
    sp.define_split("t", 12, num_outputs=3)
    sizes = [e.size for e in sp.space_map["t"].entities]
    want = sorted(t for t in itertools.product(range(1, 13), repeat=3) if math.prod(t) == 12)
    assert sorted(sizes) == want and len(sizes) == 18
    assert sizes[0] == (12, 1, 1)  # ordered by inner factors, smallest first


def test_split_power2_and_verbose_policies():
    sp = ConfigSpace()
    sp.define_split("p", 10, num_outputs=2, policy="power2")
    assert [e.size for e in sp.space_map["p"].entities] == [(10, 1), (5, 2), (3, 4), (2, 8)]
    sp.define_split("v", 12, num_outputs=2, policy="verbose")
    inner = [e.size[1] for e in sp.space_map["v"].entities]
    assert inner == [1, 2, 3, 4, 6, 8, 12]
    sizes = {e.size for e in sp.space_map["v"].entities}
    assert (2, 8) in sizes and (4, 3) in sizes  # a power of two that is no divisor; a divisor


def test_split_max_factor_and_filter():
    sp = ConfigSpace()
    sp.define_split("m", 64, num_outputs=3, max_factor=4)
    assert all(max(e.size[1:]) <= 4 for e in sp.space_map["m"].entities)
    assert (4, 4, 4) in {e.size for e in sp.space_map["m"].entities}
    sp.define_split("f", 16, num_outputs=2, filter=lambda e: e.size[1] >= 4)
    assert [e.size[1] for e in sp.space_map["f"].entities] == [4, 8, 16]


def test_split_of_an_axis_takes_its_extent():
    A = te.placeholder((24, 8), name="A")
    B = te.compute((24, 8), lambda i, j: A[i, j] + 1, name="B")
    sp = ConfigSpace()
    sp.define_split("s", B.op.axis[0], num_outputs=2)
    assert sp.space_map["s"].extent == 24


def test_reorder_and_annotate_policies():
    sp = ConfigSpace()
    sp.define_reorder("all", 3)
    sp.define_reorder("id", 3, policy="identity")
    sp.define_reorder("cand", 3, policy=[[2, 1, 0], [0, 1, 2]])
    assert len(sp.space_map["all"]) == 6 and sp.space_map["all"].get(0).perm == (0, 1, 2)
    assert [e.perm for e in sp.space_map["id"].entities] == [(0, 1, 2)]
    assert [e.perm for e in sp.space_map["cand"].entities] == [(2, 1, 0), (0, 1, 2)]
    sp.define_annotate("u", 2, policy="try_unroll")
    sp.define_annotate("v", 2, policy="try_vectorize")
    sp.define_annotate("uv", 2, policy="try_unroll_vec")
    assert len(sp.space_map["u"]) == 4 and len(sp.space_map["v"]) == 2 and len(sp.space_map["uv"]) == 6
    assert sp.space_map["v"].get(1).anns == ("none", "vec")
    with pytest.raises(ConfigError, match="not a permutation"):
        sp.define_reorder("bad", 2, policy=[[0, 0]])


def test_index_values_round_trip_over_the_whole_space():
    sp = _space()
    assert len(sp) == 18 * 4 * 3 * 2 * 6 * 6
    seen = set()
    for i in range(len(sp)):
        cfg = sp.get(i)
        values = json.loads(json.dumps(cfg.values))  # as logged
        assert sp.index_of(values) == i
        seen.add(json.dumps(values))
    assert len(seen) == len(sp)  # every index is a different config


def test_first_knob_varies_fastest_and_order_is_deterministic():
    a, b = _space(), _space()
    assert [a.get(i).values for i in range(40)] == [b.get(i).values for i in range(40)]
    assert a.get(1)["tile_x"].size == a.space_map["tile_x"].get(1).size
    assert a.get(18)["tile_y"].size == (5, 2)


def test_index_of_rejects_values_outside_the_space():
    sp = _space()
    values = sp.get(0).values
    with pytest.raises(ConfigError, match="not one of"):
        sp.index_of(dict(values, unroll=7))
    with pytest.raises(ConfigError, match="missing"):
        sp.index_of({"tile_x": [12, 1, 1]})
    with pytest.raises(ConfigError, match="out of range"):
        sp.get(len(sp))


def test_knob_values_keep_their_types():
    sp = ConfigSpace()
    sp.define_knob("k", [1, True, "1", [1, 2]])
    assert [sp.space_map["k"].index_of(v) for v in (1, True, "1", (1, 2))] == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="twice"):
        sp.define_knob("k2", [1, 1])
    with pytest.raises(ConfigError, match="defined twice"):
        sp.define_knob("k", [3])


def test_entities_apply_themselves_and_the_kernel_stays_correct():
    n, m = 24, 16
    A = te.placeholder((n, m), name="A")
    B = te.compute((n, m), lambda i, j: A[i, j] * 2.0, name="B")
    sp = ConfigSpace()
    sp.define_split("tile_i", n, num_outputs=3)
    sp.define_split("tile_j", m, num_outputs=2, policy="power2")
    sp.define_reorder("order", 2)
    sp.define_annotate("ann", 2, policy="try_unroll_vec")
    a = np.random.default_rng(0).standard_normal((n, m)).astype("float32")
    for idx in (0, 7, 41, len(sp) - 1):
        cfg = sp.get(idx)
        s = te.create_schedule(B.op)
        i, j = B.op.axis
        io, im, ii = cfg["tile_i"].apply(s, B, i)
        jo, ji = cfg["tile_j"].apply(s, B, j)
        s[B].reorder(io, jo, im, ii, ji)
        ii, ji = cfg["order"].apply(s, B, [ii, ji])
        cfg["ann"].apply(s, B, [ii, ji])
        f = minitvm.build(s, [A, B], "llvm")
        b = np.full((n, m), np.nan, "float32")
        f(a, b)
        np.testing.assert_array_equal(b, a * 2)


def test_config_entity_ignores_definitions_but_checks_names():
    sp = _space()
    cfg = sp.get(5)
    cfg.define_split("tile_x", 12, num_outputs=3)  # no-op
    with pytest.raises(ConfigError, match="not defined"):
        cfg.define_knob("new_knob", [1, 2])
    with pytest.raises(ConfigError, match="no knob"):
        cfg["nope"]
    assert cfg == sp.get(5) and cfg != sp.get(6)
    assert len(cfg.features()) == len(sp.features(5))


def test_space_definition_mode_answers_first_values():
    sp = ConfigSpace()
    sp.define_split("t", 8, num_outputs=2)
    assert sp["t"].size == (8, 1)
    with pytest.raises(ConfigError, match="not defined"):
        sp["u"]


def test_fallback_config_defaults():
    fb = FallbackConfig()
    fb.define_split("t", 16, num_outputs=2)
    fb.define_knob("k", [1, 2, 3])
    assert fb.is_fallback and fb["t"].size == (16, 1) and fb["k"].val == 1
    fb.fallback_with({"t": [4, 4], "k": 3})
    assert fb["t"].size == (4, 4) and fb["k"].val == 3
    assert fb.index == fb.index_of({"t": [4, 4], "k": 3})
    fb.fallback_with({"k": 99})  # a value outside the space is allowed for a fallback
    assert fb["k"].val == 99 and fb.index == -1
    with pytest.raises(ConfigError, match="not defined"):
        fb.fallback_with({"zzz": 1})


def test_multi_filter():
    sp = ConfigSpace()
    sp.define_split("a", 16, num_outputs=2)
    sp.define_split("b", 16, num_outputs=2)
    sp.multi_filter(lambda c: c["a"].size[1] * c["b"].size[1] <= 16)
    valid = [i for i in range(len(sp)) if sp.is_valid(i)]
    assert 0 < len(valid) < len(sp)
    assert all(sp.get(i)["a"].size[1] * sp.get(i)["b"].size[1] <= 16 for i in valid)


def test_template_knobs_of_the_shipped_templates():
    task = autotune.Task("matmul.cpu", (64, 32, 16, "float32"))
    assert task.config_space.knobs == ["tile_y", "tile_x", "tile_k", "vectorize"]
    assert task.flop == 2 * 64 * 32 * 16
    conv = autotune.Task("conv2d_NCHWc_int8.cuda", ((1, 4, 8, 8, 4), (4, 4, 3, 3, 4, 4), 1, 1))
    assert conv.target == "cuda"
    assert conv.config_space.knobs[:7] == ["tile_n", "tile_f", "tile_y", "tile_x", "tile_rc", "tile_ry", "tile_rx"]
    assert conv.flop == 2 * 1 * 16 * 8 * 8 * 16 * 9
