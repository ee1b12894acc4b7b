import sys, os, numpy as np, minitvm
sys.path.insert(0, os.path.dirname(__file__))
from conv2d_int8 import build_conv_tc
from minitvm.topi import workloads
from minitvm import nd
w = [w for w, n in workloads.unique(workloads.resnet50_convs(16)) if w.name.endswith("layer2.1.conv2")][0]
mod, X, Wt, Y = build_conv_tc(w)
dev = nd.cuda(0)
sh = lambda t: tuple(int(d.value) for d in t.shape)
rng = np.random.default_rng(0)
tx = nd.array(rng.integers(-128, 128, sh(X), dtype=np.int8), dev); tk = nd.array(rng.integers(-128, 128, sh(Wt), dtype=np.int8), dev)
ty = nd.array(np.zeros(sh(Y), np.int32), dev)
for _ in range(3):
    mod(tx, tk, ty)
nd.cuda(0)
print(mod.get_source()[:100])
