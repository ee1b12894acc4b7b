"""The ONNX backend API (``onnx.backend.base.Backend``) on minitvm: import with ``from_onnx``,
compile with target ``llvm`` and run on the CPU.

```python
from minitvm.frontend import onnx_backend
rep = onnx_backend.prepare(model)          # imports and compiles once
y, = rep.run([x])                          # inputs in the model's input order
```

This is what ``onnx.backend.test.BackendTest`` drives (``tests/frontend/test_onnx_backend.py``).
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphError
from .onnx import from_onnx
from .onnx.importer import clean_name

__all__ = ["MiniTVMBackend", "MiniTVMBackendRep", "prepare", "run_model", "run_node", "supports_device"]


def _onnx_base():
    try:
        from onnx.backend.base import Backend, BackendRep
    except ImportError:  # pragma: no cover
        raise GraphError("the ONNX backend needs the onnx package: pip install 'minitvm[onnx]'") from None
    return Backend, BackendRep


_Backend, _BackendRep = _onnx_base()


def _check_device(device):
    if not MiniTVMBackend.supports_device(device):
        raise GraphError(f"onnx backend: device {device!r} is not supported (only 'CPU')")


class MiniTVMBackendRep(_BackendRep):
    """A prepared model: the compiled graph and the ONNX input and output names."""

    def __init__(self, compiled, input_names, output_names):
        """Wrap ``compiled`` (a CompiledModel) whose ONNX inputs / outputs are ``input_names`` / ``output_names``."""
        self.compiled = compiled
        self.input_names = list(input_names)
        self.output_names = list(output_names)

    def run(self, inputs, **kwargs):
        """Run on ``inputs``: a list in the model's input order, a dict by ONNX input name or one
        array; returns the outputs as a named tuple (index or attribute by output name)."""
        from onnx.backend.base import namedtupledict
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - set(self.input_names))
            if unknown:
                raise GraphError(f"onnx backend: unknown inputs {unknown}; the model's are {self.input_names}")
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            inputs = list(inputs)
            if len(inputs) != len(self.input_names):
                raise GraphError(f"onnx backend: {len(inputs)} inputs given, the model takes "
                                 f"{len(self.input_names)} ({self.input_names})")
            feeds = dict(zip(self.input_names, inputs))
        graph_inputs = set(self.compiled.input_names)
        values = {clean_name(n): np.asarray(v) for n, v in feeds.items() if clean_name(n) in graph_inputs}
        outs = self.compiled.run(values)
        return namedtupledict("Outputs", [_field(n, i) for i, n in enumerate(self.output_names)])(*outs)


def _field(name, i):
    return name if name.isidentifier() and not name.startswith("_") else f"output_{i}"


class MiniTVMBackend(_Backend):
    """``onnx.backend.base.Backend`` compiling with minitvm for target ``llvm`` (CPU only)."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """True for ``"CPU"`` (minitvm's ONNX backend compiles for the llvm target only)."""
        return str(device).upper().split(":")[0] == "CPU"

    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs) -> bool:
        """True when ``device`` is supported (whether the model imports shows in ``prepare``)."""
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device="CPU", shape=None, **kwargs) -> MiniTVMBackendRep:
        """Check, import (``shape`` as for ``from_onnx``) and compile ``model`` for the CPU."""
        from ..graph.build import build
        _check_device(device)
        from onnx.checker import ValidationError
        try:
            super().prepare(model, device, **kwargs)  # onnx.checker
        except ValidationError as exc:
            raise GraphError(f"onnx backend: the model is not valid ONNX: {str(exc).strip().splitlines()[0]}") from None
        graph, _ = from_onnx(model, shape=shape)
        inits = {t.name for t in model.graph.initializer}
        inputs = [vi.name for vi in model.graph.input if vi.name not in inits]
        return MiniTVMBackendRep(build(graph, target="llvm"), inputs, [o.name for o in model.graph.output])

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        """``prepare(model).run(inputs)``."""
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        """Run one ONNX node on ``inputs`` (arrays, in the node's input order; an empty input
        name skips one) as a one-node model; ``outputs_info`` is unused (types are inferred)."""
        import onnx
        from onnx import helper
        _check_device(device)
        names = [n for n in node.input if n]
        if len(names) != len(inputs):
            raise GraphError(f"onnx backend: node {node.name or node.op_type!r} takes {len(names)} inputs, "
                             f"{len(inputs)} given")
        arrays = [np.asarray(x) for x in inputs]
        vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
               for n, a in zip(names, arrays)]
        outs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        opset = kwargs.pop("opset_version", onnx.defs.onnx_opset_version())
        graph = helper.make_graph([node], "run_node", vis, outs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model = onnx.shape_inference.infer_shapes(model)
        graph, _ = from_onnx(model)
        from ..graph.build import build
        rep = MiniTVMBackendRep(build(graph, target="llvm"), names, [o.name for o in model.graph.output])
        return rep.run(arrays)


#: module-level entry points, as onnx backends expose them
prepare = MiniTVMBackend.prepare
run_model = MiniTVMBackend.run_model
run_node = MiniTVMBackend.run_node
supports_device = MiniTVMBackend.supports_device
