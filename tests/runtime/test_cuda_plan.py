"""Launch plans as data: size expressions (DimExpr), kernel arguments, and their checks."""
import pickle

import pytest

from minitvm.errors import BuildError
from minitvm.runtime.cuda import DimArg, DimConst, DimOp, DimVar, KernelLaunch, LaunchPlan, ParamArg, WorkspaceArg
from minitvm.runtime.cuda.plan import DIM_OPS, check_plans
from minitvm.runtime.module import FunctionSignature, ParamSpec

n, m = DimVar("n"), DimVar("m")


@pytest.mark.parametrize("expr, dims, want", [
    ((n + 127) // 128, {"n": 1000}, 8),
    (4 * n, {"n": 10}, 40),
    (DimOp("%", (n - 20, 7)), {"n": 1}, (1 - 20) % 7),          # floor semantics, as Python
    (DimOp("//", (DimConst(-7), 2)), {}, -4),
    (DimOp("min", (n, m)) + DimOp("max", (n, m)), {"n": 3, "m": 5}, 8),
    (DimOp("select", (DimOp("<", (n, 4)), 1, n // 4)), {"n": 2}, 1),
    (DimOp("select", (DimOp("<", (n, 4)), 1, n // 4)), {"n": 40}, 10),
    (DimOp("==", (n, 3)) + DimOp(">=", (n, 3)) + DimOp("!=", (n, 3)), {"n": 3}, 2),
    (10 - n, {"n": 3}, 7), (100 // n, {"n": 7}, 14), (100 % n, {"n": 7}, 2), (2 + n * 3, {"n": 2}, 8),
])
def test_evaluate(expr, dims, want):
    assert expr.evaluate(dims) == want


def test_readable_str():
    assert str((n + 127) // 128) == "((n + 127) // 128)"
    assert str(DimOp("select", (DimOp("<", (n, 4)), DimOp("min", (n, m)), 0))) == "select((n < 4), min(n, m), 0)"
    assert (str(ParamArg(0)), str(WorkspaceArg(1)), str(DimArg("n"))) == ("param:0", "workspace:1", "dim:n")


def test_plain_data_equal_hashable_and_pickles():
    plan = LaunchPlan((KernelLaunch("k", ((n + 1) // 2, 1, 1), (64, 1, 1), 0, (ParamArg(0), DimArg("n"))),),
                      (4 * n,))
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert (n + 1) // 2 == DimOp("//", (DimOp("+", (DimVar("n"), DimConst(1))), DimConst(2)))
    assert len({n + 1, DimVar("n") + 1}) == 1


def test_every_operator_is_known():
    assert set(DIM_OPS) == {"+", "-", "*", "//", "%", "min", "max", "select", "<", "<=", "==", "!=", ">", ">="}


SIG = FunctionSignature("f", (ParamSpec("A", ("n",), "float32"),))
SRC = 'extern "C" __global__ void k(float* a, int n) {}'


def _check(grid=(1, 1, 1), args=(ParamArg(0),), workspaces=()):
    plan = LaunchPlan((KernelLaunch("k", grid, (32, 1, 1), 0, args),), workspaces)
    return check_plans({"f": plan}, {"f": SIG}, SRC, 1024)


@pytest.mark.parametrize("kw, match", [
    (dict(grid=(DimOp("max", (n,)), 1, 1)), r"'max' takes 2 operands, got 1"),
    (dict(grid=(DimOp("**", (n, 2)), 1, 1)), "unknown operator '\\*\\*'"),
    (dict(grid=(DimConst(2.5), 1, 1)), "DimConst holds 2.5, not an int"),
    (dict(grid=(m * DimVar("q"), 1, 1)), r"grid\[0\] of launch 0 \(kernel k\) of f: \(m \* q\) uses m, q, which are "
                                         r"not symbolic dimensions of the function \(it has: n\)"),
    (dict(grid=(-1, 1, 1)), "must be non-negative, got -1"),
    (dict(grid=("(n + 1) // 2", 1, 1)), "expected an int or a DimExpr"),
    (dict(workspaces=(-4,)), "workspace 0 of f: must be non-negative"),
    (dict(args=(ParamArg(-1),)), "the index must be a non-negative int"),
    (dict(args=("param:0",)), r"bad argument 'param:0'; expected ParamArg\(i\), WorkspaceArg\(j\) or DimArg\(name\)"),
    (dict(args=(DimArg("m"),)), "argument dim:m names no symbolic dimension of f"),
])
def test_bad_plans_name_the_entry(kw, match):
    with pytest.raises(BuildError, match=match):
        _check(**kw)


def test_checked_plan():
    launches, ws = _check(grid=(n // 32, 1, 1), args=(ParamArg(0), DimArg("n")), workspaces=(4 * n, 16))["f"]
    (L, grid, block, shmem, args) = launches[0]
    assert grid == (n // 32, 1, 1) and block == (32, 1, 1) and shmem == 0
    assert args == (ParamArg(0), DimArg("n")) and ws == (4 * n, 16)
