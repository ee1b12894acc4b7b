"""minitvm.runtime.llvm_pool: the native thread pool of the CPU's parallel loops."""
import multiprocessing
import platform
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.runtime import llvm as rt

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.machine() != "x86_64",
                                reason="the native pool is x86-64 Linux's")


def _row_kernel(rows, cols=33):
    """B[i, j] = A[i, j] * 2 + i, its rows a parallel loop."""
    A = te.placeholder((rows, cols), name="A")
    B = te.compute((rows, cols), lambda i, j: A[i, j] * 2.0 + i.astype("float32"), name="B")
    s = te.create_schedule(B.op)
    s[B].parallel(B.op.axis[0])
    return minitvm.build(s, [A, B], "llvm")


def _check(f, rows, cols=33, seed=0):
    a = np.random.default_rng(seed).standard_normal((rows, cols)).astype("float32")
    b = np.full((rows, cols), np.nan, "float32")
    f(a, b)
    np.testing.assert_array_equal(b, a * 2 + np.arange(rows, dtype="float32")[:, None])


@pytest.fixture
def threads():
    before = rt.num_threads()
    yield rt.set_num_threads
    rt.set_num_threads(before)


@pytest.mark.parametrize("rows", [2, 3, 7, 64, 1001])
def test_every_row_is_written_once_for_any_thread_count(threads, rows):
    f = _row_kernel(rows)
    for t in (1, 2, 3, 4, 2):
        threads(t)
        _check(f, rows, seed=t)


def test_the_pool_runs_chunks_on_worker_threads(threads):
    assert rt._llvm_state["pool"] is not None        # x86-64 Linux
    threads(3)
    _check(_row_kernel(12), 12)
    assert rt._llvm_state["pool"].started() >= 2


def test_kernels_called_from_several_python_threads_at_once_stay_correct(threads):
    """The pool serves one loop at a time; a loop that finds it busy runs on its own thread."""
    threads(2)
    f = _row_kernel(257)
    errors = []

    def run(k):
        try:
            for r in range(20):
                _check(f, 257, seed=k * 100 + r)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors and not any(w.is_alive() for w in workers)


def _child(conn):
    from minitvm.runtime import llvm as rt_child
    rt_child.set_num_threads(2)
    try:
        _check(_row_kernel(64), 64)
        conn.send("ok")
    except Exception as exc:  # noqa: BLE001 - sent to the parent
        conn.send(repr(exc))


def test_a_forked_child_starts_its_own_workers(threads):
    threads(2)
    _check(_row_kernel(64), 64)            # the parent's workers exist now
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_child, args=(child,))
    p.start()
    p.join(timeout=120)
    if p.is_alive():
        p.kill()
        pytest.fail("the forked child hung in a parallel loop")
    assert p.exitcode == 0 and parent.recv() == "ok"


def test_without_the_native_pool_parallel_loops_run_on_the_python_pool():
    """Where llvm_pool does not run (not Linux), the Python pool serves the same loops."""
    code = textwrap.dedent("""
        import numpy as np
        import minitvm
        from minitvm import te
        from minitvm.runtime import llvm as rt, llvm_pool
        llvm_pool.build = lambda llvm, tm: None
        rt.set_num_threads(2)
        A = te.placeholder((40, 8), name="A")
        B = te.compute((40, 8), lambda i, j: A[i, j] + 1.0, name="B")
        s = te.create_schedule(B.op)
        s[B].parallel(B.op.axis[0])
        f = minitvm.build(s, [A, B], "llvm")
        a = np.random.default_rng(0).standard_normal((40, 8)).astype("float32")
        b = np.full_like(a, np.nan)
        f(a, b)
        np.testing.assert_array_equal(b, a + 1)
        assert rt._llvm_state["pool"] is None and rt._pool_state["pool"] is not None
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
