"""The integer simplifier (minitvm.tir.arith.Analyzer): linear forms, floordiv/floormod under
known ranges, min/max and comparisons decided by ranges, constant folding per dtype."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitvm import te, tir
from minitvm.tir import expr as E
from minitvm.tir.arith import Analyzer, simplify
from minitvm.testing import build_run, rand


def same(a, b):
    return tir.structural_equal(a, b)


@pytest.fixture
def v():
    return dict(x=te.var("x"), y=te.var("y"), f=te.var("f"), n=te.size_var("n"))


# ----------------------------------------------------------------------------------------
# linear index arithmetic
# ----------------------------------------------------------------------------------------
def test_cancel_linear_terms(v):
    x = v["x"]
    out = Analyzer().simplify((x * 32 + 31) - x * 32 + 1)
    assert isinstance(out, E.IntImm) and out.value == 32


def test_div_mod_recombine(v):
    f = v["f"]
    assert Analyzer().simplify((f // 8) * 8 + f % 8) is f


def test_div_mod_recombine_scaled(v):
    f = v["f"]
    out = Analyzer().simplify((f // 4) * 12 + (f % 4) * 3)      # == f * 3
    assert same(out, f * 3)


def test_terms_collected_and_zero_dropped(v):
    x, y = v["x"], v["y"]
    an = Analyzer()
    assert E.is_const_int(an.simplify(x * 2 - x - x), 0)
    assert E.is_const_int(an.simplify((x + y) - (y + x)), 0)
    assert an.simplify(x + 0) is x and an.simplify(x * 1) is x
    assert E.is_const_int(an.simplify(x * 0), 0)
    assert same(an.simplify(x + x + x), x * 3)


# ----------------------------------------------------------------------------------------
# floordiv / floormod with bound ranges
# ----------------------------------------------------------------------------------------
def test_floordiv_floormod_of_multiple_plus_constant(v):
    x = v["x"]
    an = Analyzer()
    assert an.simplify((x * 8 + 3) // 8) is x
    assert E.is_const_int(an.simplify((x * 8 + 3) % 8), 3)
    assert same(an.simplify((x * 4 - 5) // 4), x - 2)             # floor: -5 // 4 == -2
    assert E.is_const_int(an.simplify((x * 4 - 5) % 4), 3)        # and -5 % 4 == 3


def test_floordiv_floormod_with_bound_variable(v):
    x, y = v["x"], v["y"]
    an = Analyzer()
    an.bind(y, 0, 7)
    assert an.simplify((x * 8 + y) // 8) is x
    assert an.simplify((x * 8 + y) % 8) is y
    assert E.is_const_int(an.simplify(y // 8), 0)
    assert an.simplify(y % 8) is y
    assert E.is_const_int(an.simplify((y + 8) // 8), 1)


def test_floordiv_not_simplified_without_range(v):
    x, y = v["x"], v["y"]
    an = Analyzer()
    out = an.simplify((x * 8 + y) // 8)
    assert same(out, x + y // 8)                                   # still exact: y may be anything


def test_floordiv_range_too_wide_is_kept(v):
    x, y = v["x"], v["y"]
    an = Analyzer()
    an.bind(y, 0, 8)                                               # y == 8 would carry
    out = an.simplify((x * 8 + y) // 8)
    assert not out is x


def test_nested_floordiv(v):
    x = v["x"]
    assert same(Analyzer().simplify((x // 2) // 4), x // 8)


def test_bind_range_from_loop(v):
    i = v["x"]
    an = Analyzer()
    an.bind_range(i, E.Range(E.const(0), E.const(16)))
    assert an.const_bounds(i * 4 + 3) == (3, 63)
    assert E.is_const_int(an.simplify(i // 16), 0)


def test_size_var_is_non_negative(v):
    n = v["n"]
    an = Analyzer()
    assert an.can_prove(n >= 0)
    assert E.is_const_int(an.simplify(n < 0), 0)


# ----------------------------------------------------------------------------------------
# min / max / comparisons decided by ranges
# ----------------------------------------------------------------------------------------
def test_min_max_resolved_by_ranges(v):
    y = v["y"]
    an = Analyzer()
    an.bind(y, 0, 7)
    assert an.simplify(te.min(y, 10)) is y
    assert E.is_const_int(an.simplify(te.max(y, 10)), 10)
    assert an.simplify(te.max(y, -1)) is y
    kept = an.simplify(te.min(y, 3))
    assert isinstance(kept, E.Min)


def test_min_max_of_related_expressions(v):
    x = v["x"]
    an = Analyzer()
    assert an.simplify(te.max(x, x)) is x
    assert an.simplify(te.min(x + 1, x)) is x
    assert same(an.simplify(te.max(x + 1, x)), x + 1)


def test_comparisons_decided_by_ranges(v):
    y = v["y"]
    an = Analyzer()
    an.bind(y, 0, 7)
    assert E.is_const_int(an.simplify(y < 8), 1)
    assert E.is_const_int(an.simplify(y >= 0), 1)
    assert E.is_const_int(an.simplify(y == 8), 0)
    assert E.is_const_int(an.simplify(y > 7), 0)
    assert isinstance(an.simplify(y < 7), E.LT)                  # undecided: kept
    assert an.can_prove(y * 4 + 3 < 32)
    assert not an.can_prove(y * 4 + 3 < 31)


def test_logic_folding(v):
    y = v["y"]
    an = Analyzer()
    an.bind(y, 0, 7)
    c = y < 5
    assert E.is_const_int(an.simplify((y < 8) & (y > 100)), 0)
    assert an.simplify((y < 8) & c) is c
    assert E.is_const_int(an.simplify((y < 8) | c), 1)
    assert E.is_const_int(an.simplify(~(y < 8)), 0)


def test_select_and_if_then_else_with_known_condition(v):
    y = v["y"]
    an = Analyzer()
    an.bind(y, 0, 7)
    assert an.simplify(te.select(y < 8, y, y + 1)) is y
    assert E.is_const_int(an.simplify(te.if_then_else(y > 9, y, 0)), 0)


def test_const_bounds():
    y = te.var("y")
    an = Analyzer()
    an.bind(y, -2, 5)
    assert an.const_bounds(y * 3 + 1) == (-5, 16)
    assert an.const_bounds(y * -2) == (-10, 4)
    assert an.const_bounds(y % 4) == (0, 3)
    assert an.const_bounds(te.max(y, 0)) == (0, 5)


# ----------------------------------------------------------------------------------------
# constant folding per dtype
# ----------------------------------------------------------------------------------------
def test_int8_constants_fold_with_wraparound():
    out = simplify(te.const(100, "int8") + te.const(100, "int8"))
    assert isinstance(out, E.IntImm) and out.dtype == "int8" and out.value == -56


def test_narrow_ints_are_not_reassociated():
    """(b + 1) - 1 on int8 is not rewritten through an infinite-precision linear form."""
    b = te.var("b", "int8")
    out = simplify(b + 1 - 1)
    assert out.dtype == "int8"


def test_float_constant_folding_but_no_unsafe_identities():
    fx = te.var("fx", "float32")
    assert simplify(te.const(2.0) * te.const(3.0)).value == 6.0
    out = simplify(fx + 0.0)                      # x + 0.0 != x for x == -0.0: must be kept
    assert isinstance(out, E.Add)


def test_cast_folding():
    assert simplify(te.const(300).astype("int8")).value == 44
    assert simplify(E.Cast("int8", te.const(300))).value == 44
    assert simplify(E.Cast("float32", te.const(3))).value == 3.0


def test_int32_constant_overflow_wraps_in_simplifier():
    x = te.var("x")
    out = simplify((x + 2000000000) + 2000000000)
    assert out.dtype == "int32"
    assert same(out, simplify(x + (4000000000 - 2**32)))


def test_int32_data_arithmetic_wraps_when_built():
    rng = np.random.default_rng(0)
    a = te.placeholder((64,), "int32", name="a")
    c = te.compute((64,), lambda i: (a[i] + 2000000000) + 2000000000, name="c")
    av = rand(rng, 64, "int32", -1000, 1000)
    got = build_run(te.create_schedule(c.op), [a, c], av)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, av + np.int32(2000000000) + np.int32(2000000000))


# ----------------------------------------------------------------------------------------
# property: simplification preserves value
# ----------------------------------------------------------------------------------------
def _eval(e, env):
    """Evaluate an integer expression with Python's floor semantics."""
    if isinstance(e, E.Var):
        return env[e]
    if isinstance(e, E.IntImm):
        return e.value
    ops = {E.Add: lambda a, b: a + b, E.Sub: lambda a, b: a - b, E.Mul: lambda a, b: a * b,
           E.FloorDiv: lambda a, b: a // b, E.FloorMod: lambda a, b: a % b,
           E.Min: min, E.Max: max}
    return ops[type(e)](_eval(e.a, env), _eval(e.b, env))


@st.composite
def index_expr(draw, leaves, depth=0):
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            return draw(st.sampled_from(leaves))
        return te.const(draw(st.integers(-20, 20)))
    a = draw(index_expr(leaves, depth + 1))
    op = draw(st.sampled_from(["+", "-", "*", "//", "%", "min", "max"]))
    if op in ("*", "//", "%"):
        c = draw(st.sampled_from([1, 2, 3, 4, 8, 16, -3]))
        if op == "*":
            return a * c
        return a // c if op == "//" else a % c
    b = draw(index_expr(leaves, depth + 1))
    return {"+": lambda: a + b, "-": lambda: a - b, "min": lambda: te.min(a, b), "max": lambda: te.max(a, b)}[op]()


X, Y = te.var("x"), te.var("y")


@settings(max_examples=25, deadline=None)
@given(e=index_expr([X, Y]), xs=st.lists(st.integers(-40, 40), min_size=6, max_size=6),
       ys=st.lists(st.integers(0, 7), min_size=6, max_size=6), bind_x=st.booleans())
def test_simplify_preserves_value(e, xs, ys, bind_x):
    """For any x (or x in [-40, 40] when bound) and y in [0, 7], simplify(e) evaluates like e."""
    an = Analyzer()
    an.bind(Y, 0, 7)
    if bind_x:
        an.bind(X, -40, 40)
    s = an.simplify(e)
    for xv, yv in zip(xs, ys):
        env = {X: xv, Y: yv}
        assert _eval(s, env) == _eval(e, env), (str(e), str(s), env)


def test_div_mod_merge_runs_to_a_fixpoint(v):
    """A pixel index split into (n, oh, ow) and recombined is the pixel index again."""
    p = v["f"]
    out = Analyzer().simplify((p // 49) * 49 + (p // 7 % 7) * 7 + p % 7)
    assert out is p


def test_div_mod_fixpoint_merge_keeps_other_terms(v):
    p, x = v["f"], v["x"]
    out = Analyzer().simplify(x * 3 + (p // 12) * 24 + (p // 4 % 3) * 8 + (p % 4) * 2 + 5)
    assert same(out, Analyzer().simplify(x * 3 + p * 2 + 5))


def test_div_mod_with_mismatched_coefficients_does_not_merge(v):
    """``(p // 7) * 6 + p % 7`` is not ``p`` (6 is not 7 * 1): both terms stay."""
    p = v["f"]
    out = Analyzer().simplify((p // 7) * 6 + p % 7)
    text = str(out)
    assert "7" in text and "6" in text and not same(out, p)
    for pv in (0, 6, 7, 50):
        assert Analyzer().simplify(tir.substitute(out, {p: E.const(pv)})).value == (pv // 7) * 6 + pv % 7


def test_the_analyzer_remembers_what_it_simplified_until_a_range_changes():
    from minitvm.tir.arith import Analyzer
    x = E.Var("x")
    e = E.FloorDiv(E.Add(x, E.const(3)), E.const(8))
    an = Analyzer()
    an.bind(x, 0, 4)
    first = an.simplify(e)
    assert isinstance(first, E.IntImm) and first.value == 0
    assert an.simplify(e) is first                         # remembered
    an.bind(x, 0, 20)                                      # forgets: x + 3 may now reach 8
    assert not isinstance(an.simplify(e), E.IntImm)
    an.ranges[x] = (0, 2)                                  # also through the dict itself
    assert E.is_const_int(an.simplify(e), 0)
    an.ranges.pop(x)
    assert not isinstance(an.simplify(e), E.IntImm)
