"""The ONNX backend API (``onnx.backend.base.Backend``) on minitvm: import with ``from_onnx``,
compile with target ``llvm`` and run on the CPU.

```python
from minitvm.frontend import onnx_backend
rep = onnx_backend.prepare(model)          # imports and compiles once
y, = rep.run([x])                          # inputs in the model's input order
```

This is what ``onnx.backend.test.BackendTest`` drives (``tests/frontend/test_onnx_backend.py``).

minitvm compiles for static shapes and needs some inputs of some ops as constants (a shape,
axes, pads, a scale: :class:`~minitvm.frontend.onnx.importer.ConstantRequired`). When such a
value is computed from model inputs, ``prepare`` defers compilation: each ``run`` fixes those
inputs to the values given (``from_onnx(constants=...)``) and compiles once per distinct set of
values (kept for the next run), as a shape-specializing compiler does.
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphError
from .onnx import from_onnx
from .onnx.importer import ConstantRequired, clean_name

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


def _compile(model, shape, constants=None):
    from ..graph.build import build
    graph, _ = from_onnx(model, shape=shape, constants=constants)
    return build(graph, target="llvm")


def _inputs_behind(model, value) -> set:
    """The model inputs (not initializers) ONNX value ``value`` is computed from."""
    gp = model.graph
    inits = {t.name for t in gp.initializer}
    inputs = {vi.name for vi in gp.input} - inits
    producer = {o: n for n in gp.node for o in n.output if o}
    found, todo, seen = set(), [value], set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in inputs:
            found.add(v)
        elif v in producer:
            todo.extend(i for i in producer[v].input if i)
    return found


class MiniTVMBackendRep(_BackendRep):
    """A prepared model: the compiled graph (or, when some inputs must be constants, one compiled
    graph per distinct value of those inputs, made on first use) and the ONNX input and output names."""

    def __init__(self, compiled, input_names, output_names, model=None, shape=None, fixed=()):
        """Wrap ``compiled`` (a CompiledModel) whose ONNX inputs / outputs are ``input_names`` /
        ``output_names``; or, with ``compiled`` None, compile ``model`` at each run with its inputs
        ``fixed`` taken as constants."""
        self.compiled = compiled
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self._model, self._shape, self._fixed = model, shape, set(fixed)
        self._specialized: dict = {}

    def _for_values(self, feeds):
        """The model compiled with the fixed inputs bound to their values in ``feeds``."""
        while True:
            fixed = sorted(self._fixed)
            key = tuple((n, np.asarray(feeds[n]).dtype.str, np.shape(feeds[n]), np.asarray(feeds[n]).tobytes())
                        for n in fixed)
            if key in self._specialized:
                return self._specialized[key]
            try:
                compiled = _compile(self._model, self._shape, {n: np.asarray(feeds[n]) for n in fixed})
            except ConstantRequired as exc:
                more = _inputs_behind(self._model, exc.value) - self._fixed
                if not more:
                    raise
                self._fixed |= more
                continue
            self._specialized[key] = compiled
            return compiled

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
        missing = sorted(set(self.input_names) - set(feeds))
        if missing:
            raise GraphError(f"onnx backend: inputs {missing} are not given")
        compiled = self.compiled if self.compiled is not None else self._for_values(feeds)
        graph_inputs = set(compiled.input_names)
        values = {clean_name(n): np.asarray(v) for n, v in feeds.items() if clean_name(n) in graph_inputs}
        outs = compiled.run(values)
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
        """Import (``shape`` as for ``from_onnx``, which checks the model first) and compile ``model``
        for the CPU; where an input must be a constant, compile at each run (see the module docstring)."""
        _check_device(device)
        inits = {t.name for t in model.graph.initializer}
        inputs = [vi.name for vi in model.graph.input if vi.name not in inits]
        outputs = [o.name for o in model.graph.output]
        try:
            compiled = _compile(model, shape)
        except ConstantRequired as exc:
            fixed = _inputs_behind(model, exc.value)
            if not fixed:
                raise
            return MiniTVMBackendRep(None, inputs, outputs, model, shape, fixed)
        return MiniTVMBackendRep(compiled, inputs, outputs)

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
        return cls.prepare(model, device).run(arrays)


#: module-level entry points, as onnx backends expose them
prepare = MiniTVMBackend.prepare
run_model = MiniTVMBackend.run_model
run_node = MiniTVMBackend.run_node
supports_device = MiniTVMBackend.supports_device
