"""The model zoo: every model runs at a small size; conv shapes match topi/workloads at full size."""
import numpy as np
import pytest

from minitvm.errors import GraphError, ShapeError
from minitvm.graph import get_model, list_models, run_reference
from minitvm.topi import workloads as W

SMALL = {"vgg19": (32, 1), "resnet18": (32, 2), "resnet50": (32, 1), "resnet101": (32, 1),
         "inception_v3": (75, 1), "resnext50_32x4d": (32, 1), "drn_c_26": (32, 2), "dcn_resnet101": (64, 1)}


def test_every_model_listed():
    assert set(list_models()) == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_model_runs_small(name):
    size, batch = SMALL[name]
    g, params = get_model(name, batch=batch, image_size=size)
    assert g.inputs == ["data"] and g.node("data").type.shape == (batch, 3, size, size)
    assert params.keys() == g.params().keys() and all(params[k] is g.node(k).value for k in params)
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype("float32")
    (out,) = run_reference(g, {"data": x})
    assert out.shape == (batch, 1000) and out.dtype == np.float32
    assert np.isfinite(out).all()
    rms = float(np.sqrt(np.mean(out.astype(np.float64) ** 2)))
    assert 1e-3 < rms < 1e2, rms  # well-scaled: neither vanishing nor exploding
    if batch > 1:
        assert not np.allclose(out[0], out[1])


def conv_keys(g, prefix):
    """{workload name: Conv.key()} of every conv2d / deformable_conv2d of a zoo graph."""
    out = {}
    for n in g.op_nodes():
        if n.op not in ("conv2d", "deformable_conv2d"):
            continue
        N, C, H, Wd = g.node(n.inputs[0]).type.shape
        O, I, KH, KW = g.node(n.inputs[2 if n.op == "deformable_conv2d" else 1]).type.shape
        (sh, sw), (dh, dw), (pt, pl, pb, pr) = n.attrs["strides"], n.attrs["dilation"], n.attrs["padding"]
        assert sh == sw and dh == dw and pt == pb and pl == pr
        out[f"{prefix}.{n.name}"] = (N, C, H, Wd, O, KH, KW, sh, pt, pl, dh, n.attrs["groups"])
    return out


@pytest.mark.parametrize("name,prefix,convs", [
    ("resnet50", "resnet50", W.resnet50_convs),
    ("vgg19", "vgg19", W.vgg19_convs),
    ("inception_v3", "inception_v3", W.inception_v3_convs),
    ("resnext50_32x4d", "resnext50", W.resnext50_convs),
    ("drn_c_26", "drn_c26", W.drn_c26_convs),
])
@pytest.mark.parametrize("batch", [1, 4])
def test_conv_shapes_match_workloads(name, prefix, convs, batch):
    g, _ = get_model(name, batch=batch, init=False)  # shape inference only, no weights
    want = {c.name: c.key() for c in convs(batch)}
    assert conv_keys(g, prefix) == want


def test_dcn_resnet101_shapes():
    g, _ = get_model("dcn_resnet101", init=False)
    want = {c.name: c.key() for c in W.resnet_bottleneck_convs(1, layers=(3, 4, 23, 3), name="r")}
    got = conv_keys(g, "r")
    offsets = {k for k in got if k.endswith(".offset")}
    assert len(offsets) == 3
    assert {k: v for k, v in got.items() if k not in offsets} == want
    deform = g.op_nodes("deformable_conv2d")
    assert [n.name for n in deform] == ["layer4.0.conv2", "layer4.1.conv2", "layer4.2.conv2"]
    assert g.node("layer4.0.conv2.offset").type.shape == (1, 18, 7, 7)


def test_full_size_macs_and_summary():
    g, _ = get_model("resnet50", init=False)
    assert g.macs() == sum(c.macs for c in W.resnet50_convs(1)) + 2048 * 1000
    assert 25.5e6 < g.num_params() < 25.7e6
    s = g.summary()
    assert "conv2d x53" in s and "batch_norm x53" in s and "4.0" in s


def test_weights_deterministic_and_size_independent():
    g1, p1 = get_model("resnet18", image_size=32)
    g2, p2 = get_model("resnet18", image_size=64, batch=2)
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    _, p3 = get_model("resnet18", image_size=32, seed=1)
    assert not np.array_equal(p1["conv1.weight"], p3["conv1.weight"])
    w = p1["layer2.0.conv1.weight"]
    assert abs(w.std() - np.sqrt(2 / (64 * 9))) < 0.1 * np.sqrt(2 / (64 * 9))  # He scaling
    assert abs(p1["conv1_bn.running_var"].mean() - 1) < 0.1
    assert abs(p1["conv1_bn.running_mean"].mean()) < 0.1


def test_shape_only_weights_take_no_memory():
    g, params = get_model("vgg19", init=False)
    w = params["fc6.weight"]
    assert w.shape == (4096, 25088) and w.strides == (0, 0)


def test_zoo_errors():
    with pytest.raises(GraphError, match="did you mean 'resnet50'"):
        get_model("resnet5O")
    with pytest.raises(ShapeError, match="too small"):
        get_model("inception_v3", image_size=64)
    with pytest.raises(ShapeError, match="batch"):
        get_model("resnet18", batch=0)
    with pytest.raises(ShapeError, match="num_classes must be a positive integer, got -5"):
        get_model("resnet18", num_classes=-5)


def test_rectangular_images():
    g, _ = get_model("resnet18", image_size=(32, 48), init=False)
    assert g.node("layer4.1.relu").type.shape == (1, 512, 1, 2)
