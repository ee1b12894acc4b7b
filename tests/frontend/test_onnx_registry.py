"""The ONNX converter tables: each converter module fills its own, the importer reads them merged."""
from minitvm.frontend.onnx import float_ops, quant, supported_ops
from minitvm.frontend.onnx.load import CONVERTERS
from minitvm.frontend.onnx.registry import ConverterTable


def test_a_later_table_replaces_an_earlier_ones_entries():
    first, second = ConverterTable(), ConverterTable()
    first.converter("A", "B")(lambda imp, node: "first")
    second.converter("B")(lambda imp, node: "second")
    second.fold_only.add("C")
    second.ms_domain.add("B")
    merged = ConverterTable.merged(first, second)
    assert merged.converters["A"](None, None) == "first" and merged.converters["B"](None, None) == "second"
    assert merged.supported_ops() == ["A", "B", "C"] and merged.ms_domain == {"B"}
    assert first.converters["B"](None, None) == "first"


def test_the_quantized_converters_replace_and_wrap_the_float_ones():
    assert CONVERTERS.converters["Conv"] is quant.CONVERTERS.converters["Conv"]
    assert CONVERTERS.converters["Conv"] is not float_ops.CONVERTERS.converters["Conv"]
    assert CONVERTERS.converters["MaxPool"] is quant.CONVERTERS.converters["MaxPool"]
    assert CONVERTERS.converters["Relu"] is float_ops.CONVERTERS.converters["Relu"]
    assert {"QLinearAdd", "QGemm", "QuantizeLinear"} <= CONVERTERS.ms_domain
    assert {"Conv", "QLinearConv", "Shape", "Gather", "Range"} <= set(supported_ops())
    assert {"QuantizeLinear", "DequantizeLinear"} <= CONVERTERS.sees_constants
