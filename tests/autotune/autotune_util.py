"""Templates for the autotune tests: a tiny one whose knob injects each kind of failure."""
import time

from minitvm import autotune, te

MODES = ["ok", "raise", "compile_error", "sleep", "crash", "hang", "wrong", "ok_again"]


def _double_reference(inputs, n, dtype="float32"):
    (a,) = inputs
    return [(a * 2).astype(dtype)]


@autotune.template("test.faulty_double.cpu", reference=_double_reference)
def faulty_double(cfg, n, dtype="float32"):
    """``B = A * 2``; knob ``mode`` picks an injected failure (see MODES)."""
    cfg.define_knob("mode", MODES)
    cfg.define_split("tile", n, num_outputs=2)
    mode = cfg["mode"].val
    A = te.placeholder((n,), dtype, "A")
    if mode == "raise":
        raise ValueError("injected instantiation error")
    if mode == "sleep":
        time.sleep(120)
    if mode == "crash":      # reads 4 GiB before A: a segmentation fault in the runner (i * i: an
        # index bound analysis cannot bound, so the compute is declared and runs)
        B = te.compute((n,), lambda i: A[i * i - (1 << 30)] * 2, name="B")
    elif mode == "hang":     # 2^40 additions
        r1 = te.reduce_axis((0, 1 << 20), "r1")
        r2 = te.reduce_axis((0, 1 << 20), "r2")
        B = te.compute((n,), lambda i: te.sum(A[(i + r1 + r2) % n], axis=[r1, r2]), name="B")
    elif mode == "wrong":
        B = te.compute((n,), lambda i: A[i] + 1, name="B")
    else:
        B = te.compute((n,), lambda i: A[i] * 2, name="B")
    s = te.create_schedule(B.op)
    outer, inner = cfg["tile"].apply(s, B, B.op.axis[0])
    if mode == "compile_error":  # GPU thread axes cannot be compiled for the CPU
        s[B].bind(inner, te.thread_axis("threadIdx.x"))
    return s, [A, B]


def mode_index(space, mode, tile=None):
    """Index of the config with knob ``mode`` (and the first tile split unless given)."""
    values = {"mode": mode, "tile": tile if tile is not None else space.space_map["tile"].get(0).value}
    return space.index_of(values)
