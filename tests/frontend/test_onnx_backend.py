"""ONNX's own backend conformance suite (``onnx.backend.test.BackendTest``) on minitvm's ONNX
backend (``minitvm.frontend.onnx_backend``: import, compile for llvm, run on the CPU).

The suite runs the node tests of the op types the importer claims (``supported_ops()``): every
one-node test of such an op (the ``_expanded`` variants, which spell an op with others, are left
out). onnx >= 1.23 ships no test data; ``onnx.backend.test`` generates these cases from
``onnx.backend.test.case`` in memory. ``EXPECTED_FAILURES`` names the tests that
are refused today, each group with its reason; it may only shrink. A test on it that passes
fails (an unexpected success), and so does one that is off it and fails; and an expected failure
must be a clear minitvm error (``MiniTVMError``), never a wrong answer or a raw exception.
Per-op counts are in ``docs/graph.md`` ("ONNX conformance").
"""
import re
import warnings

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx.backend.test")

from onnx.backend.test import BackendTest  # noqa: E402
from onnx.backend.test.loader import load_model_tests  # noqa: E402
from onnx.backend.test.runner import _normalize_tensor  # noqa: E402

from minitvm.errors import MiniTVMError  # noqa: E402
from minitvm.frontend import onnx_backend  # noqa: E402
from minitvm.frontend.onnx import supported_ops  # noqa: E402


def claimed_node_tests():
    """{test name: op type} of the one-node tests of the op types ``supported_ops()`` claims."""
    claimed = set(supported_ops())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the generators' own overflow warnings
        cases = load_model_tests(kind="node")
    return {tc.name: tc.model.graph.node[0].op_type for tc in cases
            if len(tc.model.graph.node) == 1 and tc.model.graph.node[0].op_type in claimed
            and not tc.name.endswith("_expanded")}


CLAIMED = claimed_node_tests()

#: reason -> the node tests refused for it (may only shrink: fix one, delete its name)
EXPECTED_FAILURES = {
    "Cast: attribute 'to' = (8-bit float, 4/2-bit int, bfloat16) is not supported (minitvm has bool, integer and float16/32/64 tensors)": (
        'test_cast_FLOAT16_to_FLOAT4E2M1', 'test_cast_FLOAT16_to_FLOAT8E4M3FN', 'test_cast_FLOAT16_to_FLOAT8E4M3FNUZ',
        'test_cast_FLOAT16_to_FLOAT8E5M2', 'test_cast_FLOAT16_to_FLOAT8E5M2FNUZ', 'test_cast_FLOAT16_to_INT2',
        'test_cast_FLOAT16_to_INT4', 'test_cast_FLOAT16_to_UINT2', 'test_cast_FLOAT16_to_UINT4',
        'test_cast_FLOAT_to_BFLOAT16', 'test_cast_FLOAT_to_FLOAT4E2M1', 'test_cast_FLOAT_to_FLOAT8E4M3FN',
        'test_cast_FLOAT_to_FLOAT8E4M3FNUZ', 'test_cast_FLOAT_to_FLOAT8E5M2', 'test_cast_FLOAT_to_FLOAT8E5M2FNUZ',
        'test_cast_FLOAT_to_INT2', 'test_cast_FLOAT_to_INT4', 'test_cast_FLOAT_to_UINT2', 'test_cast_FLOAT_to_UINT4',
        'test_cast_e8m0_FLOAT16_to_FLOAT8E8M0', 'test_cast_e8m0_FLOAT_to_FLOAT8E8M0',
        'test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FN', 'test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ',
        'test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2', 'test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ',
        'test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FN', 'test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ',
        'test_cast_no_saturate_FLOAT_to_FLOAT8E5M2', 'test_cast_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ',),
    'Dropout: training_mode = true with ratio > 0 is not supported (random masks; inference only)': (
        'test_training_dropout', 'test_training_dropout_default', 'test_training_dropout_default_mask',
        'test_training_dropout_mask',),
    'ONNX input has element type (8-bit float, 4/2-bit int, bfloat16); minitvm takes bool, integer and float16/32/64 inputs': (
        'test_cast_BFLOAT16_to_FLOAT', 'test_cast_FLOAT4E2M1_to_FLOAT', 'test_cast_FLOAT4E2M1_to_FLOAT16',
        'test_cast_FLOAT8E4M3FNUZ_to_FLOAT', 'test_cast_FLOAT8E4M3FNUZ_to_FLOAT16', 'test_cast_FLOAT8E4M3FN_to_FLOAT',
        'test_cast_FLOAT8E4M3FN_to_FLOAT16', 'test_cast_FLOAT8E5M2FNUZ_to_FLOAT',
        'test_cast_FLOAT8E5M2FNUZ_to_FLOAT16', 'test_cast_FLOAT8E5M2_to_FLOAT', 'test_cast_FLOAT8E5M2_to_FLOAT16',
        'test_cast_INT2_to_FLOAT', 'test_cast_INT2_to_FLOAT16', 'test_cast_INT2_to_INT8', 'test_cast_INT4_to_FLOAT',
        'test_cast_INT4_to_FLOAT16', 'test_cast_INT4_to_INT8', 'test_cast_UINT2_to_FLOAT',
        'test_cast_UINT2_to_FLOAT16', 'test_cast_UINT2_to_UINT8', 'test_cast_UINT4_to_FLOAT',
        'test_cast_UINT4_to_FLOAT16', 'test_cast_UINT4_to_UINT8', 'test_cast_e8m0_FLOAT8E8M0_to_FLOAT',
        'test_cast_e8m0_FLOAT8E8M0_to_FLOAT16', 'test_dequantizelinear_e4m3fn',
        'test_dequantizelinear_e4m3fn_float16', 'test_dequantizelinear_e4m3fn_zero_point',
        'test_dequantizelinear_e5m2', 'test_dequantizelinear_float4e2m1', 'test_dequantizelinear_int2',
        'test_dequantizelinear_int4', 'test_dequantizelinear_uint2', 'test_dequantizelinear_uint4',
        'test_quantizelinear_e4m3fn', 'test_quantizelinear_e5m2', 'test_quantizelinear_float4e2m1',
        'test_quantizelinear_int2', 'test_quantizelinear_int4', 'test_quantizelinear_uint2',
        'test_quantizelinear_uint4', 'test_range_bfloat16_type_positive_delta',),
    'ONNX input has element type STRING; minitvm takes bool, integer and float16/32/64 inputs': (
        'test_equal_string', 'test_equal_string_broadcast',),
    'ONNX input: only tensor inputs are supported': (
        'test_identity_opt', 'test_identity_sequence',),
}
EXPECTED = {name: reason for reason, names in EXPECTED_FAILURES.items() for name in names}



def _node_test_class():
    """OnnxBackendNodeModelTest with the claimed tests only, the expected failures marked."""
    suite = BackendTest(onnx_backend.MiniTVMBackend, __name__)
    for name in EXPECTED:
        suite.xfail(f"^{re.escape(name)}_cpu$")
    cls = suite.test_cases["OnnxBackendNodeModelTest"]
    for attr in list(vars(cls)):
        if attr.startswith("test_") and attr.removesuffix("_cpu") not in CLAIMED:
            delattr(cls, attr)
    return cls


def test_expected_failures_name_claimed_tests_once():
    listed = [n for names in EXPECTED_FAILURES.values() for n in names]
    assert len(listed) == len(set(listed)), "a test is listed twice"
    assert set(listed) <= set(CLAIMED), f"not claimed node tests: {sorted(set(listed) - set(CLAIMED))}"


@pytest.mark.parametrize("reason", sorted(EXPECTED_FAILURES))
def test_expected_failures_are_clear_minitvm_errors(reason):
    """Each expected failure is refused with a MiniTVMError (at import, compile or run), not a
    wrong answer or a raw Python exception."""
    cases = {tc.name: tc for tc in load_model_tests(kind="node")}
    for name in EXPECTED_FAILURES[reason]:
        tc = cases[name]
        with pytest.raises(MiniTVMError):
            rep = onnx_backend.prepare(tc.model)
            for inputs, _ in tc.data_sets:
                rep.run([_normalize_tensor(x) for x in inputs])


#: the suite itself: one unittest test per claimed node test (``test_<name>_cpu``)
OnnxBackendNodeModelTest = _node_test_class()
