import sys, os, numpy as np, minitvm
sys.path.insert(0, os.path.dirname(__file__))
from minitvm import te, nd
from minitvm.topi.nn.conv2d_gemm import dense_int8_gemm
from minitvm.topi.cuda.gemm_int8_tensorcore import schedule_int8_gemm
from peaks import torch_time
import torch
M = N = K = 4096
for cfg in [None, {"tile_m": [32, 2, 64], "tile_n": [128, 4, 4], "k_chunk": 2, "stages": 3, "vector": 4},
            {"tile_m": [32, 2, 64], "tile_n": [128, 4, 4], "k_chunk": 1, "stages": 4, "vector": 4},
            {"tile_m": [32, 4, 32], "tile_n": [128, 2, 4], "k_chunk": 2, "stages": 3, "vector": 4},
            {"tile_m": [64, 2, 32], "tile_n": [128, 2, 4], "k_chunk": 2, "stages": 2, "vector": 4}]:
    d = te.placeholder((M, K), "int8", "data"); w = te.placeholder((N, K), "int8", "weight")
    out = dense_int8_gemm(d, w)
    f = minitvm.build(schedule_int8_gemm(out, cfg), [d, w, out], "cuda")
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (M, K), dtype=np.int8); b = rng.integers(-128, 128, (N, K), dtype=np.int8)
    dev = nd.cuda(0); ta, tb = nd.array(a, dev), nd.array(b, dev); tc = nd.array(np.full((M, N), -7, np.int32), dev)
    f(ta, tb, tc)
    ok = np.array_equal(tc.numpy()[:64], a[:64].astype(np.int64) @ b.astype(np.int64).T)
    t = f.time_evaluator(f.entry_name, number=5, repeat=3)(ta, tb, tc).median
    print(f"dense {M}^3 {cfg}: {t*1e6:.0f} us {2*M*N*K/t/1e12:.0f} TOPS exact={ok}", flush=True)
x = torch.randn(M, K, device="cuda", dtype=torch.float16); y = torch.randn(N, K, device="cuda", dtype=torch.float16)
t = torch_time(lambda: x @ y.T)
print(f"torch fp16 matmul {M}^3: {t*1e6:.0f} us {2*M*N*K/t/1e12:.0f} TFLOPS")
ai = torch.randint(-128, 127, (M, K), device="cuda", dtype=torch.int8); bi = torch.randint(-128, 127, (K, N), device="cuda", dtype=torch.int8)
t = torch_time(lambda: torch._int_mm(ai, bi))
print(f"torch _int_mm {M}^3: {t*1e6:.0f} us {2*M*N*K/t/1e12:.0f} TOPS")
