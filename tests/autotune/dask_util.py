"""A template for the Dask tests: ``B = A * 2``, whose numpy reference, computed inside a measuring
Dask worker's runner process, kills or stops that worker the first time (a marker file says
whether it happened, and holds the worker's pid), or kills every worker it runs in."""
import os
import signal

from minitvm import autotune, te


def _double_reference(inputs, n, action, marker, test_pid):
    (a,) = inputs
    in_runner = os.environ.get("MINITVM_AUTOTUNE_WORKER") == "runner"
    worker = os.getppid()   # the Dask worker process that started this runner process
    if in_runner and worker != test_pid and action == "kill_always":
        os.kill(worker, signal.SIGKILL)
    if in_runner and worker != test_pid and action in ("kill", "stop"):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            fd = None
        if fd is not None:
            os.write(fd, str(worker).encode())
            os.close(fd)
            os.kill(worker, signal.SIGKILL if action == "kill" else signal.SIGSTOP)
    return [a * 2]


@autotune.template("test.dask_double.cpu", reference=_double_reference)
def dask_double(cfg, n, action, marker, test_pid):
    """``B = A * 2`` with a split knob; ``action`` is what the reference does to its measuring
    worker: "kill" or "stop" it once, "kill_always", or "none"."""
    A = te.placeholder((n,), "float32", "A")
    B = te.compute((n,), lambda i: A[i] * 2, name="B")
    s = te.create_schedule(B.op)
    cfg.define_split("tile", n, num_outputs=2)
    cfg["tile"].apply(s, B, B.op.axis[0])
    return s, [A, B]


def local_roles(token):
    """(Run on a worker) which of the Dask runner ``token``'s local builder / runner it holds."""
    from minitvm.autotune import dask_runner
    return sorted(role for (_, t, role) in dask_runner._LOCAL if t == token)
