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
    'Abs: is only supported on constant inputs': (
        'test_abs',),
    'And: is only supported on constant inputs': (
        'test_and2d', 'test_and3d', 'test_and4d', 'test_and_bcast3v1d', 'test_and_bcast3v2d', 'test_and_bcast4v2d',
        'test_and_bcast4v3d', 'test_and_bcast4v4d',),
    'AveragePool: attribute dilations is not supported (only 1)': (
        'test_averagepool_2d_dilations',),
    'AveragePool: only 2-D (NCHW) AveragePool is supported': (
        'test_averagepool_1d_default', 'test_averagepool_3d_default',
        'test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False',
        'test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True',
        'test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False',
        'test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True',
        'test_averagepool_3d_dilations_small',),
    'BatchNormalization: attribute training_mode is not supported (inference only)': (
        'test_batchnorm_epsilon_training_mode', 'test_batchnorm_example_training_mode',),
    'Cast: graph op cast: cannot be compiled: cast: no such dtype (float8, float4, int4, int2, bfloat16)': (
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
    'Cast: no such dtype (float8, float4, int4, int2, bfloat16)': (
        'test_cast_BFLOAT16_to_FLOAT', 'test_cast_FLOAT4E2M1_to_FLOAT', 'test_cast_FLOAT4E2M1_to_FLOAT16',
        'test_cast_FLOAT8E4M3FNUZ_to_FLOAT', 'test_cast_FLOAT8E4M3FNUZ_to_FLOAT16', 'test_cast_FLOAT8E4M3FN_to_FLOAT',
        'test_cast_FLOAT8E4M3FN_to_FLOAT16', 'test_cast_FLOAT8E5M2FNUZ_to_FLOAT',
        'test_cast_FLOAT8E5M2FNUZ_to_FLOAT16', 'test_cast_FLOAT8E5M2_to_FLOAT', 'test_cast_FLOAT8E5M2_to_FLOAT16',
        'test_cast_INT2_to_FLOAT', 'test_cast_INT2_to_FLOAT16', 'test_cast_INT2_to_INT8', 'test_cast_INT4_to_FLOAT',
        'test_cast_INT4_to_FLOAT16', 'test_cast_INT4_to_INT8', 'test_cast_UINT2_to_FLOAT',
        'test_cast_UINT2_to_FLOAT16', 'test_cast_UINT2_to_UINT8', 'test_cast_UINT4_to_FLOAT',
        'test_cast_UINT4_to_FLOAT16', 'test_cast_UINT4_to_UINT8', 'test_cast_e8m0_FLOAT8E8M0_to_FLOAT',
        'test_cast_e8m0_FLOAT8E8M0_to_FLOAT16',),
    'Ceil: is only supported on constant inputs': (
        'test_ceil', 'test_ceil_example',),
    'Clip: input max must be a constant': (
        'test_clip_default_int8_max', 'test_clip_default_max',),
    'Clip: input min must be a constant': (
        'test_clip', 'test_clip_default_int8_min', 'test_clip_default_min', 'test_clip_example', 'test_clip_inbounds',
        'test_clip_min_greater_than_max', 'test_clip_outbounds', 'test_clip_splitbounds',),
    'ConstantOfShape: is only supported on constant inputs': (
        'test_constantofshape_float_ones', 'test_constantofshape_int_shape_zero', 'test_constantofshape_int_zeros',),
    'DequantizeLinear: input x_scale must be a constant': (
        'test_dequantizelinear', 'test_dequantizelinear_axis', 'test_dequantizelinear_blocked',
        'test_dequantizelinear_e4m3fn', 'test_dequantizelinear_e4m3fn_float16',
        'test_dequantizelinear_e4m3fn_zero_point', 'test_dequantizelinear_e5m2', 'test_dequantizelinear_float4e2m1',
        'test_dequantizelinear_int16', 'test_dequantizelinear_int2', 'test_dequantizelinear_int4',
        'test_dequantizelinear_uint16', 'test_dequantizelinear_uint2', 'test_dequantizelinear_uint4',),
    'Div: division by a non-constant tensor is not supported (input B must be a constant)': (
        'test_div', 'test_div_bcast', 'test_div_example', 'test_div_int16', 'test_div_int32_trunc', 'test_div_int8',
        'test_div_uint16', 'test_div_uint32', 'test_div_uint64', 'test_div_uint8',),
    'Dropout: input training_mode must be a constant false (inference only; a graph input may be true at run time)': (
        'test_training_dropout', 'test_training_dropout_default', 'test_training_dropout_default_mask',
        'test_training_dropout_mask', 'test_training_dropout_zero_ratio', 'test_training_dropout_zero_ratio_mask',),
    'Equal: is only supported on constant inputs': (
        'test_equal', 'test_equal_bcast', 'test_equal_int16', 'test_equal_int8', 'test_equal_string',
        'test_equal_string_broadcast', 'test_equal_uint16', 'test_equal_uint32', 'test_equal_uint64',
        'test_equal_uint8',),
    'Exp: is only supported on constant inputs': (
        'test_exp', 'test_exp_example',),
    'Expand: is only supported on constant inputs': (
        'test_expand_dim_changed', 'test_expand_dim_unchanged',),
    'Floor: is only supported on constant inputs': (
        'test_floor', 'test_floor_example',),
    'Gather: is only supported on constant inputs': (
        'test_gather_0', 'test_gather_1', 'test_gather_2d_indices', 'test_gather_negative_indices',),
    'Greater: is only supported on constant inputs': (
        'test_greater', 'test_greater_bcast', 'test_greater_int16', 'test_greater_int8', 'test_greater_uint16',
        'test_greater_uint32', 'test_greater_uint64', 'test_greater_uint8',),
    'GreaterOrEqual: is only supported on constant inputs': (
        'test_greater_equal', 'test_greater_equal_bcast', 'test_greater_equal_int16', 'test_greater_equal_int8',
        'test_greater_equal_uint16', 'test_greater_equal_uint32', 'test_greater_equal_uint64',
        'test_greater_equal_uint8',),
    'Identity: an input: only tensor inputs are supported': (
        'test_identity_opt', 'test_identity_sequence',),
    'Less: is only supported on constant inputs': (
        'test_less', 'test_less_bcast', 'test_less_int16', 'test_less_int8', 'test_less_uint16', 'test_less_uint32',
        'test_less_uint64', 'test_less_uint8',),
    'LessOrEqual: is only supported on constant inputs': (
        'test_less_equal', 'test_less_equal_bcast', 'test_less_equal_int16', 'test_less_equal_int8',
        'test_less_equal_uint16', 'test_less_equal_uint32', 'test_less_equal_uint64', 'test_less_equal_uint8',),
    'Log: is only supported on constant inputs': (
        'test_log', 'test_log_example',),
    'MatMul: 1-D operands are not supported': (
        'test_matmul_1d_1d', 'test_matmul_1d_3d', 'test_matmul_4d_1d',),
    'MatMul: graph op matmul: cannot be compiled: matmul: a and b must be 2-D': (
        'test_matmul_3d', 'test_matmul_4d', 'test_matmul_bcast',),
    'Max: is only supported on constant inputs': (
        'test_max_example', 'test_max_float16', 'test_max_float32', 'test_max_float64', 'test_max_int16',
        'test_max_int32', 'test_max_int64', 'test_max_int8', 'test_max_one_input', 'test_max_two_inputs',
        'test_max_uint16', 'test_max_uint32', 'test_max_uint64', 'test_max_uint8',),
    'MaxPool: attribute dilations is not supported (only 1)': (
        'test_maxpool_2d_dilations',),
    'MaxPool: only 2-D (NCHW) MaxPool is supported': (
        'test_maxpool_1d_default', 'test_maxpool_3d_default', 'test_maxpool_3d_dilations',
        'test_maxpool_3d_dilations_use_ref_impl', 'test_maxpool_3d_dilations_use_ref_impl_large',),
    'MaxPool: the Indices output is not supported': (
        'test_maxpool_with_argmax_2d_precomputed_pads', 'test_maxpool_with_argmax_2d_precomputed_strides',),
    'Min: is only supported on constant inputs': (
        'test_min_example', 'test_min_float16', 'test_min_float32', 'test_min_float64', 'test_min_int16',
        'test_min_int32', 'test_min_int64', 'test_min_int8', 'test_min_one_input', 'test_min_two_inputs',
        'test_min_uint16', 'test_min_uint32', 'test_min_uint64', 'test_min_uint8',),
    'Mod: is only supported on constant inputs': (
        'test_mod_broadcast', 'test_mod_float16_mixed_sign_fmod_0', 'test_mod_float32_mixed_sign_fmod_0',
        'test_mod_float64_mixed_sign_fmod_0', 'test_mod_float_edge_cases_fmod_0_float16',
        'test_mod_float_edge_cases_fmod_0_float32', 'test_mod_float_edge_cases_fmod_0_float64', 'test_mod_int64_fmod',
        'test_mod_mixed_sign_float16', 'test_mod_mixed_sign_float32', 'test_mod_mixed_sign_float64',
        'test_mod_mixed_sign_int16', 'test_mod_mixed_sign_int32', 'test_mod_mixed_sign_int64',
        'test_mod_mixed_sign_int8', 'test_mod_uint16', 'test_mod_uint32', 'test_mod_uint64', 'test_mod_uint8',),
    'Neg: is only supported on constant inputs': (
        'test_neg', 'test_neg_example',),
    'Not: is only supported on constant inputs': (
        'test_not_2d', 'test_not_3d', 'test_not_4d',),
    'Or: is only supported on constant inputs': (
        'test_or2d', 'test_or3d', 'test_or4d', 'test_or_bcast3v1d', 'test_or_bcast3v2d', 'test_or_bcast4v2d',
        'test_or_bcast4v3d', 'test_or_bcast4v4d',),
    'Pad: attribute mode is not supported (constant, edge or reflect)': (
        'test_wrap_pad',),
    'Pad: input pads must be a constant': (
        'test_constant_pad', 'test_constant_pad_axes', 'test_constant_pad_negative_axes', 'test_edge_pad',
        'test_reflect_pad',),
    'Pow: is only supported on constant inputs': (
        'test_pow', 'test_pow_bcast_array', 'test_pow_bcast_scalar', 'test_pow_example',
        'test_pow_types_float32_int32', 'test_pow_types_float32_int64', 'test_pow_types_float32_uint32',
        'test_pow_types_float32_uint64', 'test_pow_types_int32_float32', 'test_pow_types_int32_int32',
        'test_pow_types_int64_float32', 'test_pow_types_int64_int64',),
    'QLinearConv: input x_scale must be a constant': (
        'test_qlinearconv',),
    'QLinearMatMul: input a_scale must be a constant': (
        'test_qlinearmatmul_2D_int8_float16', 'test_qlinearmatmul_2D_int8_float32',
        'test_qlinearmatmul_2D_uint8_float16', 'test_qlinearmatmul_2D_uint8_float32',
        'test_qlinearmatmul_3D_int8_float16', 'test_qlinearmatmul_3D_int8_float32',
        'test_qlinearmatmul_3D_uint8_float16', 'test_qlinearmatmul_3D_uint8_float32',),
    'QuantizeLinear: input y_scale must be a constant': (
        'test_quantizelinear', 'test_quantizelinear_axis', 'test_quantizelinear_blocked_asymmetric',
        'test_quantizelinear_blocked_symmetric', 'test_quantizelinear_e4m3fn', 'test_quantizelinear_e5m2',
        'test_quantizelinear_float4e2m1', 'test_quantizelinear_int16', 'test_quantizelinear_int2',
        'test_quantizelinear_int4', 'test_quantizelinear_uint16', 'test_quantizelinear_uint2',
        'test_quantizelinear_uint4',),
    'Range: is only supported on constant inputs': (
        'test_range_bfloat16_type_positive_delta', 'test_range_float16_type_positive_delta',
        'test_range_float_type_positive_delta', 'test_range_int32_type_negative_delta',),
    'Reciprocal: is only supported on constant inputs': (
        'test_reciprocal', 'test_reciprocal_example',),
    'ReduceMax: an input has a zero-size dimension, read as dynamic (a 0 dimension)': (
        'test_reduce_max_empty_set', 'test_reduce_max_empty_set_bool',),
    'ReduceMax: only 2-D (NCHW) ReduceMax is supported': (
        'test_reduce_max_bool_inputs', 'test_reduce_max_default_axes_keepdim_example',
        'test_reduce_max_default_axes_keepdims_random', 'test_reduce_max_do_not_keepdims_example',
        'test_reduce_max_do_not_keepdims_random', 'test_reduce_max_keepdims_example',
        'test_reduce_max_keepdims_random', 'test_reduce_max_negative_axes_keepdims_example',
        'test_reduce_max_negative_axes_keepdims_random',),
    'ReduceMean: an input has a zero-size dimension, read as dynamic (a 0 dimension)': (
        'test_reduce_mean_default_axes_keepdims_example', 'test_reduce_mean_default_axes_keepdims_random',),
    'ReduceMean: only 2-D (NCHW) ReduceMean is supported': (
        'test_reduce_mean_do_not_keepdims_example', 'test_reduce_mean_do_not_keepdims_random',
        'test_reduce_mean_keepdims_example', 'test_reduce_mean_keepdims_random',
        'test_reduce_mean_negative_axes_keepdims_example', 'test_reduce_mean_negative_axes_keepdims_random',),
    'ReduceMin: an input has a zero-size dimension, read as dynamic (a 0 dimension)': (
        'test_reduce_min_empty_set',),
    'ReduceMin: is only supported on constant inputs': (
        'test_reduce_min_bool_inputs', 'test_reduce_min_default_axes_keepdims_example',
        'test_reduce_min_default_axes_keepdims_random', 'test_reduce_min_do_not_keepdims_example',
        'test_reduce_min_do_not_keepdims_random', 'test_reduce_min_keepdims_example',
        'test_reduce_min_keepdims_random', 'test_reduce_min_negative_axes_keepdims_example',
        'test_reduce_min_negative_axes_keepdims_random',),
    'ReduceProd: an input has a zero-size dimension, read as dynamic (a 0 dimension)': (
        'test_reduce_prod_empty_set',),
    'ReduceProd: is only supported on constant inputs': (
        'test_reduce_prod_default_axes_keepdims_example', 'test_reduce_prod_default_axes_keepdims_random',
        'test_reduce_prod_do_not_keepdims_example', 'test_reduce_prod_do_not_keepdims_random',
        'test_reduce_prod_keepdims_example', 'test_reduce_prod_keepdims_random',
        'test_reduce_prod_negative_axes_keepdims_example', 'test_reduce_prod_negative_axes_keepdims_random',),
    'ReduceSum: an input has a zero-size dimension, read as dynamic (a 0 dimension)': (
        'test_reduce_sum_default_axes_keepdims_example', 'test_reduce_sum_default_axes_keepdims_random',
        'test_reduce_sum_empty_axes_input_noop', 'test_reduce_sum_empty_axes_input_noop_example',
        'test_reduce_sum_empty_set', 'test_reduce_sum_empty_set_non_reduced_axis_zero',),
    'ReduceSum: is only supported on constant inputs': (
        'test_reduce_sum_do_not_keepdims_example', 'test_reduce_sum_do_not_keepdims_random',
        'test_reduce_sum_keepdims_example', 'test_reduce_sum_keepdims_random',
        'test_reduce_sum_negative_axes_keepdims_example', 'test_reduce_sum_negative_axes_keepdims_random',),
    'Reshape: an input has a zero-size dimension, read as dynamic (a 0 dimension)': (
        'test_reshape_allowzero_reordered',),
    'Reshape: input shape must be a constant': (
        'test_reshape_extended_dims', 'test_reshape_negative_dim', 'test_reshape_negative_extended_dims',
        'test_reshape_one_dim', 'test_reshape_reduced_dims', 'test_reshape_reordered_all_dims',
        'test_reshape_reordered_last_dims', 'test_reshape_zero_and_negative_dim', 'test_reshape_zero_dim',),
    'Slice: is only supported on constant inputs': (
        'test_slice', 'test_slice_default_axes', 'test_slice_default_steps', 'test_slice_end_out_of_bounds',
        'test_slice_neg', 'test_slice_neg_steps', 'test_slice_negative_axes', 'test_slice_start_out_of_bounds',),
    'Sqrt: is only supported on constant inputs': (
        'test_sqrt', 'test_sqrt_example',),
    'Squeeze: input axes must be a constant': (
        'test_squeeze', 'test_squeeze_negative_axes',),
    'Unsqueeze: input axes must be a constant': (
        'test_unsqueeze_axis_0', 'test_unsqueeze_axis_1', 'test_unsqueeze_axis_2', 'test_unsqueeze_negative_axes',
        'test_unsqueeze_three_axes', 'test_unsqueeze_two_axes', 'test_unsqueeze_unsorted_axes',),
    'Where: is only supported on constant inputs': (
        'test_where_example', 'test_where_long_example',),
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
