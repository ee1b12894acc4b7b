"""Helpers for the quantization tests: a small conv-relu-pool-conv-add-dense graph and inputs."""
import numpy as np

from minitvm.graph import Graph


def build_small_graph(batch=2, seed=0, with_bn=False, concat=False):
    """data -> conv0 -> relu0 -> pool0 -> conv1 -> relu1 -> conv2 -> add(+pool0) -> relu2
    [-> conv3 1x1 -> concat(relu2, conv3)] -> global_avg_pool -> flatten -> fc (dense)."""
    rng = np.random.default_rng(seed)
    g = Graph("small")
    x = g.add_input("data", (batch, 3, 16, 16))

    def conv(name, x, o, k=3):
        ci = g.node(x).type.shape[1]
        w = g.add_const(f"{name}.weight",
                        (rng.standard_normal((o, ci, k, k)) * np.sqrt(2 / (ci * k * k))).astype("float32"))
        b = g.add_const(f"{name}.bias", (rng.standard_normal(o) * 0.1).astype("float32"))
        y = g.add_op("conv2d", [x, w, b], {"padding": k // 2}, name=name)
        if with_bn:
            ps = [g.add_const(f"{name}_bn.{p}", v.astype("float32")) for p, v in
                  (("weight", rng.uniform(0.8, 1.2, o)), ("bias", rng.standard_normal(o) * 0.05),
                   ("running_mean", rng.standard_normal(o) * 0.05), ("running_var", rng.uniform(0.8, 1.2, o)))]
            y = g.add_op("batch_norm", [y] + ps, name=f"{name}_bn")
        return y

    y = g.add_op("relu", [conv("conv0", x, 8)], name="relu0")
    y = g.add_op("max_pool2d", [y], {"pool_size": 2, "strides": 2}, name="pool0")
    a = g.add_op("relu", [conv("conv1", y, 8)], name="relu1")
    s = g.add_op("add", [conv("conv2", a, 8), y], name="add")
    s = g.add_op("relu", [s], name="relu2")
    if concat:
        k = conv("conv3", s, 8, 1)
        s = g.add_op("concatenate", [s, k], name="cat")
    gp = g.add_op("global_avg_pool2d", [s], name="gap")
    f = g.add_op("flatten", [gp], name="flat")
    c = g.node(f).type.shape[1]
    w = g.add_const("fc.weight", (rng.standard_normal((10, c)) * 0.3).astype("float32"))
    b = g.add_const("fc.bias", (rng.standard_normal(10) * 0.1).astype("float32"))
    g.mark_output(g.add_op("dense", [f, w, b], name="fc"))
    return g


def make_data(n=4, batch=2, seed=1):
    """``n`` input dicts of standard-normal ``data`` [batch, 3, 16, 16]."""
    rng = np.random.default_rng(seed)
    return [{"data": rng.standard_normal((batch, 3, 16, 16)).astype("float32")} for _ in range(n)]
