"""LLVM modules that die in a garbage cycle (an exception's traceback is enough) free their engine
before the LLVM context that owns its module: the other order freed the module twice (a crash)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import gc, minitvm
from minitvm import te
for i in range(60):
    A = te.placeholder((8,), 'float32', 'A')
    B = te.compute((8,), lambda j: A[j] + i, name='B')
    m = minitvm.build(te.create_schedule(B.op), [A, B], 'llvm')
    cycle = [m]
    cycle.append(cycle)
    del m, cycle
    if i % 20 == 19:
        gc.collect()
print('ok')
"""


def test_llvm_modules_in_garbage_cycles_are_freed_safely():
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.returncode, res.stderr[-2000:])
