"""Double buffering (``tir.transform.double_buffer``): inside a GPU kernel the fill of the next
shared tile goes through registers, loads before the arithmetic and stores after it."""
import minitvm
from minitvm import te
from minitvm.tir.transform import double_buffer
from minitvm.topi.cuda.conv2d_int8 import schedule_conv2d_NCHWc_int8
from minitvm.topi.nn.conv2d import conv2d_NCHWc_int8

_KNOBS = {"tile_n": [1, 1, 2, 1], "tile_f": [1, 1, 2, 1], "tile_y": [2, 1, 2, 1], "tile_x": [1, 2, 3, 1],
          "double_buffer": True}


def _lowered_conv(**knobs):
    X = te.placeholder((2, 2, 4, 6, 4), "int8", "X")
    K = te.placeholder((2, 2, 3, 3, 4, 4), "int8", "K")
    Y = conv2d_NCHWc_int8(X, K, 1, 1, 1, 1)
    s = schedule_conv2d_NCHWc_int8(Y, cfg=dict(_KNOBS, **knobs))
    return str(minitvm.lower(s, [X, K, Y], name="conv"))


def _loop_body(text):
    """Lines of the double-buffered reduction loop (after its opening line)."""
    lines = [ln.strip() for ln in text.splitlines()]
    start = next(i for i, ln in enumerate(lines) if "for (ic_chunk.outer" in ln)
    return lines[start + 1:]


def test_next_tile_is_loaded_into_registers_before_the_arithmetic_and_stored_after():
    body = _loop_body(_lowered_conv())
    assert "allocate conv2d_NCHWc_int8_pad.shared.reg[int8 * " in "\n".join(body)
    assert "allocate K.shared.reg[int8 * " in "\n".join(body)
    first = lambda pred: next(i for i, ln in enumerate(body) if pred(ln))  # noqa: E731
    load = first(lambda ln: ln.startswith("conv2d_NCHWc_int8_pad.shared.reg[") and "= select(" in ln)
    math = first(lambda ln: "dp4a(" in ln)
    store = first(lambda ln: ln.startswith("conv2d_NCHWc_int8_pad.shared[") and "= conv2d_NCHWc_int8_pad.shared.reg[" in ln)
    sync = first(lambda ln: ln == "syncthreads()")
    assert load < math < store < sync


def test_fill_over_the_register_budget_is_stored_directly(monkeypatch):
    monkeypatch.setattr(double_buffer, "MAX_STAGING_BYTES", 0)
    text = _lowered_conv()
    assert ".reg[" not in text
    body = _loop_body(text)
    fill = next(i for i, ln in enumerate(body) if ln.startswith("conv2d_NCHWc_int8_pad.shared["))
    assert fill < next(i for i, ln in enumerate(body) if "dp4a(" in ln)
