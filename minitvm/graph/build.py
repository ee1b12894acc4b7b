"""Compile a whole graph: simplify, fuse, generate one kernel per fused group, plan memory, run.

``build(graph, target)`` returns a :class:`CompiledModel` whose ``run(inputs)`` executes the
fused groups in order over a memory plan that reuses the buffers of dead tensors. On CUDA the
whole inference is captured once as a CUDA graph and replayed, so Python launch overhead does
not add up per kernel.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from .. import dtype as dt
from ..errors import ArgumentError, DeviceError, DtypeError, GraphError, MiniTVMError, ShapeError
from ..runtime import ndarray as nd
from ..runtime.module import TimeResult
from ..lowering.lower import lower
from ..target import Target
from .lowering import LoweredGroup, c_name, lowered_groups, optimize  # noqa: F401 (re-exported)
from .ops import get_op


class Step:
    """One kernel call: the function name, the graph values it reads and writes, the graph nodes
    it computes (``nodes``, their ``ops``), their multiply-accumulates (``macs``) and the op
    strategy implementation (template) that scheduled it."""

    def __init__(self, func: str, inputs: list, output: str, nodes: list, implementation: str = "",
                 ops: list | None = None, macs: int = 0):
        self.func, self.inputs, self.output, self.nodes = func, list(inputs), output, list(nodes)
        self.implementation = implementation
        self.ops = list(ops) if ops is not None else []
        self.macs = int(macs)

    def to_json(self) -> dict:
        """The step as plain data (the artifact's execution plan)."""
        return {"func": self.func, "inputs": self.inputs, "output": self.output, "nodes": self.nodes,
                "ops": self.ops, "macs": self.macs, "implementation": self.implementation}

    @classmethod
    def from_json(cls, d: dict) -> "Step":
        """The step :meth:`to_json` wrote."""
        return cls(d["func"], d["inputs"], d["output"], d["nodes"], d.get("implementation", ""),
                   d.get("ops"), d.get("macs", 0))

    def __repr__(self):
        return f"{self.func}({', '.join(self.inputs)}) -> {self.output}"


def build(graph, target="llvm", optimize_graph: bool = True, progress=None, tactics: int = 0,
          tactics_cache=None):
    """Compile ``graph`` for ``target`` (a :class:`~minitvm.target.Target` or its string, such as
    ``"llvm"`` or ``"cuda"``) into a :class:`CompiledModel`.

    Tunable kernels take their configs from the current ``minitvm.autotune`` dispatch context
    (wrap the call in ``autotune.ApplyHistoryBest(log)`` to use tuned ones). ``tactics=K``
    first times up to K configs of each kernel that nothing tuned answers, on the GPU, and
    builds with the fastest (cached per device: see :mod:`minitvm.graph.tactics`).
    ``progress(done, total)``, if given, is called as each fused group is lowered and once more
    when the backend (LLVM, NVRTC) has compiled the module: ``total`` is the groups plus one."""
    from ..driver import build as build_funcs
    target = Target(target)
    if tactics:
        from .tactics import select_tactics
        chosen = select_tactics(graph, target, tactics, cache=tactics_cache, optimize_graph=optimize_graph)
        if chosen is not None:
            with chosen:
                return build(graph, target, optimize_graph, progress)
    if optimize_graph:
        graph = optimize(graph, target)
    funcs, steps = [], []
    for g in lowered_groups(graph, target):
        grp = g.group
        fname = f"fused_{g.index}_{c_name(grp.anchor or grp.output)}"
        try:
            funcs.append(lower(g.schedule, g.params + [g.out], name=fname, target=target))
        except Exception as exc:
            raise GraphError(f"fused group {grp.nodes} (anchor {grp.anchor}): cannot be compiled: {exc}") from exc
        ops = [graph.node(n).op for n in grp.nodes]
        macs = sum(get_op(graph.node(n).op).count_macs(graph.input_types(n), graph.node(n).type,
                                                        graph.node(n).attrs) for n in grp.nodes)
        steps.append(Step(fname, g.inputs, grp.output, grp.nodes, g.implementation, ops, macs))
        if progress:
            progress(g.index + 1, g.total + 1)
    # a graph with no kernel left (outputs that are inputs or constants) needs no module
    module = build_funcs(funcs, target=target) if funcs else None
    if progress and steps:
        progress(len(steps) + 1, len(steps) + 1)
    return CompiledModel(graph, module, steps, target)


class TensorInfo(NamedTuple):
    """A model input or output: its name, shape and dtype."""
    name: str
    shape: tuple
    dtype: str


class CompiledModel:
    """A compiled graph: ``run(feed) -> outputs``, ``model(*tensors)``, ``benchmark()``,
    ``profile()`` and ``save(path)``.

    ``target`` is the :class:`~minitvm.target.Target` it was built for; ``kind`` is its kind.
    ``graph`` is the graph it was compiled from (``None`` for a model loaded by
    :func:`minitvm.load`, which carries only the execution plan, the code and the weights)."""

    def __init__(self, graph, module, steps, target, device_index: int = 0):
        types = {n: graph.node(n).type for n in graph.topo_order()}
        consts = {n: graph.node(n).value for n in graph.topo_order() if graph.node(n).is_const}
        inputs = [n for n in graph.topo_order() if graph.node(n).is_input]
        self._setup(module, steps, target, types, consts, inputs, list(graph.outputs), device_index)
        self.graph = graph

    @classmethod
    def from_plan(cls, module, steps, target, types: dict, consts: dict, inputs: list, outputs: list,
                  memory_plan: dict | None = None, device_index: int = 0) -> "CompiledModel":
        """A model from its parts (what :func:`minitvm.load` reads): the compiled ``module``, its
        ``steps``, the :class:`TensorType` of every value by name, the constants' arrays, the input
        and output names and, optionally, the memory plan of :meth:`plan_memory`."""
        self = cls.__new__(cls)
        self._setup(module, steps, target, types, consts, inputs, outputs, device_index)
        self.graph = None
        if memory_plan is not None:
            self._stored_plan = memory_plan
        return self

    def _setup(self, module, steps, target, types, consts, inputs, outputs, device_index):
        self.module, self.steps = module, list(steps)
        self.target = Target(target)
        self.kind = self.target.kind
        self.device = nd.cuda(device_index) if self.kind == "cuda" else nd.cpu()
        self.types, self.consts = dict(types), dict(consts)
        self.input_names = list(inputs)
        self.output_names = list(outputs)
        self._values: dict | None = None
        self._cuda_graph = None
        self._stream = None
        self._stored_plan = None
        self.peak_bytes = 0
        self.weight_bytes = 0

    # ------------------------------------------------------------------ memory plan
    def plan_memory(self) -> dict:
        """Assign each intermediate value a storage block, reusing blocks of dead values.

        Returns {value name: (block index, nbytes)}; ``peak_bytes`` is the blocks' total.
        """
        if self._stored_plan is not None:
            return self._check_stored_plan(self._stored_plan)
        last_use = {}
        for i, st in enumerate(self.steps):
            for v in st.inputs:
                last_use[v] = i
        outputs = set(self.output_names)
        blocks: list = []        # sizes
        free: list = []          # block indices
        plan = {}
        for i, st in enumerate(self.steps):
            need = self.types[st.output].nbytes
            fit = [b for b in free if blocks[b] >= need]
            if fit and st.output not in outputs:
                b = min(fit, key=lambda j: blocks[j])
                free.remove(b)
            else:
                blocks.append(need)
                b = len(blocks) - 1
            plan[st.output] = (b, need)
            for v in set(st.inputs):
                if last_use.get(v) == i and v in plan and v not in outputs:
                    free.append(plan[v][0])
        self.peak_bytes = int(sum(blocks))
        self._blocks = blocks
        return plan

    def _check_stored_plan(self, stored: dict) -> dict:
        blocks = [int(b) for b in stored["blocks"]]
        plan = {name: (int(b), int(n)) for name, (b, n) in stored["values"].items()}
        for st in self.steps:
            b, n = plan.get(st.output, (None, 0))
            need = self.types[st.output].nbytes
            if b is None or not 0 <= b < len(blocks) or blocks[b] < need or n != need:
                raise GraphError(f"the stored memory plan gives value {st.output!r} ({need} bytes) no fitting block")
        self.peak_bytes = int(sum(blocks))
        self._blocks = blocks
        return plan

    def memory_plan(self) -> dict:
        """The memory plan as plain data: ``{"blocks": [bytes...], "values": {name: [block, bytes]}}``."""
        plan = self.plan_memory()
        return {"blocks": list(self._blocks), "values": {k: list(v) for k, v in plan.items()}}

    def _allocate(self):
        values = {}
        self.weight_bytes = 0
        for name, value in self.consts.items():
            values[name] = self._array(np.asarray(value, order="C"))   # ascontiguousarray makes 0-d 1-d
            self.weight_bytes += value.nbytes
        for name in self.input_names:
            values[name] = self._empty(self.types[name])
        plan = self.plan_memory()
        storage = [self._raw(n) for n in self._blocks]
        for name, (b, _) in plan.items():
            values[name] = self._view(storage[b], self.types[name])
        self._storage = storage
        self._values = values
        self._args = [[values[v] for v in st.inputs] + [values[st.output]] for st in self.steps]
        self._calls = [self.module.bind(st.func, args) for st, args in zip(self.steps, self._args)]
        self._own_inputs = {n: values[n] for n in self.input_names}
        self._input_slots = {n: [(i, j) for i, st in enumerate(self.steps) for j, v in enumerate(st.inputs) if v == n]
                             for n in self.input_names}

    def _array(self, arr):
        return arr if self.kind != "cuda" else nd.array(arr, self.device)

    def _empty(self, t):
        if self.kind != "cuda":
            return np.empty(tuple(t.shape), dt.numpy_dtype(t.dtype))
        return nd.empty(tuple(t.shape), t.dtype, self.device)

    def _raw(self, nbytes):
        if self.kind != "cuda":
            return np.empty(max(nbytes, 1), np.uint8)
        from ..runtime import cuda
        return cuda.DeviceBuffer(max(nbytes, 1), self.device.index)

    def _view(self, block, t):
        shape, npd = tuple(t.shape), dt.numpy_dtype(t.dtype)
        if self.kind != "cuda":
            count = int(np.prod(shape, dtype=np.int64))
            return block[:count * npd.itemsize].view(npd).reshape(shape)
        return nd.NDArray(shape, t.dtype, self.device, buffer=block)

    # ------------------------------------------------------------------ metadata
    def get_inputs(self) -> list:
        """The model's inputs in order: a :class:`TensorInfo` (name, shape, dtype) each."""
        return [TensorInfo(n, tuple(self.types[n].shape), self.types[n].dtype) for n in self.input_names]

    def get_outputs(self) -> list:
        """The model's outputs in order: a :class:`TensorInfo` (name, shape, dtype) each."""
        return [TensorInfo(n, tuple(self.types[n].shape), self.types[n].dtype) for n in self.output_names]

    # ------------------------------------------------------------------ running
    def _launch_all(self):
        for call in self._calls:
            call()

    def set_inputs(self, inputs) -> None:
        """Give the model ``inputs``: a dict by input name, or a list in input order, of numpy
        arrays, NDArrays or DLPack tensors (torch ...). On the CPU a C-contiguous host tensor is
        read in place (no copy, until the next ``set_inputs``); on CUDA a device tensor is copied
        on the device into the buffer the captured CUDA graph reads, a host tensor uploaded."""
        if self._values is None:
            self._allocate()
        if not isinstance(inputs, dict):
            inputs = dict(zip(self.input_names, inputs if isinstance(inputs, (list, tuple)) else [inputs]))
        for name in self.input_names:
            if name not in inputs:
                raise ShapeError(f"model input {name!r} is missing; inputs are {self.input_names}")
        unknown = set(inputs) - set(self.input_names)
        if unknown:
            raise ShapeError(f"unknown model inputs {sorted(unknown)}; inputs are {self.input_names}")
        for name in self.input_names:
            self._set_input(name, inputs[name])

    def _set_input(self, name, value) -> None:
        t = self.types[name]
        arr = _as_tensor(value, self.kind, name)
        shape = tuple(arr.shape)
        dtype = arr.dtype if isinstance(arr.dtype, str) else str(np.dtype(arr.dtype))
        if shape != tuple(t.shape):
            raise ShapeError(f"model input {name!r} must be {t}, got {dtype}{list(shape)}")
        if dtype != t.dtype:
            raise DtypeError(f"model input {name!r} must have dtype {t.dtype}, got {dtype} (shape {list(shape)})")
        dst = self._values[name]
        if self.kind == "cuda":
            if isinstance(arr, nd.NDArray) and arr.device.kind == "cuda":
                dst._buffer.copy_from_device(arr._buffer)
            else:
                dst.copyfrom(np.asarray(arr, order="C"))
        elif arr.flags.c_contiguous and arr.flags.aligned:
            self._values[name] = arr
            self._rebind(name, arr)
        else:
            if dst is not self._own_input(name):
                dst = self._values[name] = self._own_input(name)
                self._rebind(name, dst)
            np.copyto(dst, arr)

    def _rebind(self, name, arr) -> None:
        """The kernels reading input ``name`` read ``arr`` from now on."""
        for i, j in self._input_slots[name]:
            self._args[i][j] = arr
        for i in {i for i, _ in self._input_slots[name]}:
            self._calls[i] = self.module.bind(self.steps[i].func, self._args[i])

    def _own_input(self, name):
        return self._own_inputs[name]

    def execute(self) -> None:
        """Run every kernel once on the current inputs (replaying the CUDA graph on a GPU)."""
        if self._values is None:
            raise ShapeError("execute: call run(inputs) or set_inputs first")
        if self.kind != "cuda" or not self.steps:
            self._launch_all()
            return
        from ..runtime import cuda
        cuda.synchronize(self.device.index)
        if self._cuda_graph is None:
            self._launch_all()                      # loads modules, allocates scratch memory
            cuda.synchronize(self.device.index)
            self._stream = cuda.Stream(self.device.index)
            self._cuda_graph = cuda.CUDAGraph(self._launch_all, self._stream)
        self._cuda_graph.replay()
        self._stream.synchronize()

    def get_output(self, index) -> np.ndarray:
        """Output ``index`` (a position or an output name) of the last run, as a numpy copy."""
        if self._values is None:
            raise ShapeError("get_output: call run(inputs) first")
        if isinstance(index, str):
            if index not in self.output_names:
                raise ShapeError(f"model has no output {index!r}; outputs are {self.output_names}")
            name = index
        else:
            if not -len(self.output_names) <= index < len(self.output_names):
                raise ShapeError(f"output index {index} is out of range: the model has {len(self.output_names)} outputs")
            name = self.output_names[index]
        v = self._values[name]
        return v.numpy() if self.kind == "cuda" else np.array(v)

    def run(self, feed, output_names=None) -> list:
        """Run the model on ``feed`` (a dict by input name, or a list in input order; numpy arrays
        or DLPack tensors) and return the outputs named in ``output_names`` (default: all, in
        order) as numpy arrays."""
        names = list(self.output_names) if output_names is None else list(output_names)
        bad = [n for n in names if n not in self.output_names]
        if bad:
            raise ShapeError(f"model has no output {bad[0]!r}; outputs are {self.output_names}")
        self.set_inputs(feed)
        self.execute()
        return [self.get_output(n) for n in names]

    def __call__(self, *tensors):
        """Run on the inputs in order (numpy arrays, NDArrays or DLPack tensors such as torch's)
        and return the outputs as the kind of the first input where that library can take a
        DLPack tensor (torch in, torch out; NDArray in, NDArray out; else numpy): one output
        alone, several as a tuple."""
        if len(tensors) != len(self.input_names):
            raise ShapeError(f"the model takes {len(self.input_names)} inputs {self.input_names}, "
                             f"got {len(tensors)}")
        self.set_inputs(list(tensors))
        self.execute()
        outs = tuple(_like(tensors[0] if tensors else None, self._output_copy(n), self.device)
                     for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def _output_copy(self, name):
        v = self._values[name]
        if self.kind != "cuda":
            return np.array(v)
        out = nd.empty(v.shape, v.dtype, self.device)
        out._buffer.copy_from_device(v._buffer)
        return out

    def benchmark(self, number: int = 10, repeat: int = 3, warmup: int = 3) -> TimeResult:
        """Seconds per inference (inputs already set; each repeat runs ``number`` inferences)."""
        for arg, value, low in (("number", number, 1), ("repeat", repeat, 1), ("warmup", warmup, 0)):
            if value < low:
                raise ArgumentError(f"benchmark: {arg} must be at least {low}, got {value}")
        if self._values is None:
            raise ShapeError("benchmark: call run(inputs) or set_inputs first")
        for _ in range(warmup):
            self.execute()
        results = []
        for _ in range(repeat):
            if self.kind == "cuda":
                t0 = time.perf_counter()
                for _ in range(number):
                    self._cuda_graph.replay()
                self._stream.synchronize()
                results.append((time.perf_counter() - t0) / number)
            else:
                t0 = time.perf_counter()
                for _ in range(number):
                    self._launch_all()
                results.append((time.perf_counter() - t0) / number)
        return TimeResult(tuple(results))

    def profile(self, number: int = 10, repeat: int = 3) -> list:
        """Each kernel timed alone on the current inputs: a list of
        :class:`~minitvm.graph.profile.KernelProfile` (time, share of the total, achieved TOPS or
        GB/s, template); ``minitvm.graph.profile.format_profile`` prints it as a table."""
        from .profile import profile_model
        if self._values is None:
            raise ShapeError("profile: call run(inputs) or set_inputs first")
        self.execute()
        return profile_model(self, number, repeat)

    def save(self, path) -> str:
        """Write the model to ``path`` (a ``.mtvm`` artifact, see :mod:`minitvm.graph.artifact`):
        metadata, execution plan, compiled code and weights; :func:`minitvm.load` reads it back
        without compiling. Returns the path."""
        from .artifact import write_artifact
        values = {n: {"shape": list(t.shape), "dtype": t.dtype, "layout": t.layout} for n, t in self.types.items()
                  if n in self.consts or n in self.input_names or any(st.output == n for st in self.steps)}
        plan = {"steps": [st.to_json() for st in self.steps], "values": values, "inputs": self.input_names,
                "outputs": self.output_names, "memory": self.memory_plan()}
        return write_artifact(path, self.module, self.target, plan, self.consts)

    def summary(self) -> str:
        """Kernels, fused groups and memory use."""
        lines = [f"{len(self.steps)} kernels for {sum(len(s.nodes) for s in self.steps)} ops on {self.kind}"]
        for st in self.steps:
            lines.append(f"  {st.func}: {' -> '.join(st.ops or st.nodes)}  [{st.implementation}]")
        lines.append(f"activation memory {self.peak_bytes / 2**20:.1f} MiB (planned, reused), "
                     f"weights {self.weight_bytes / 2**20:.1f} MiB")
        return "\n".join(lines)


def _as_tensor(value, kind: str, name: str):
    """A model input as a numpy array (CPU models; no copy for host tensors) or, for CUDA models,
    an NDArray over a CUDA tensor's memory or a numpy array to upload."""
    if isinstance(value, np.ndarray):
        return value
    try:
        if kind == "cuda":
            if isinstance(value, nd.NDArray):
                return value if value.device.kind == "cuda" else value.numpy()
            host = nd._cpu_from(value)
            return host if host is not None else nd.from_dlpack(value)
        host = nd._cpu_from(value)
    except MiniTVMError:
        raise
    except Exception as exc:  # noqa: BLE001 - a foreign object's own protocol error
        raise DtypeError(f"model input {name!r}: cannot read a {type(value).__name__} as a tensor: {exc}") from None
    if host is None:
        if hasattr(value, "__dlpack__") or hasattr(value, "__cuda_array_interface__"):
            raise DeviceError(f"model input {name!r} lives on a GPU, but the model runs on the CPU; move it to "
                              "the CPU or compile for target cuda")
        try:
            host = np.asarray(value)
        except Exception as exc:  # noqa: BLE001
            raise DtypeError(f"model input {name!r}: cannot read a {type(value).__name__} as a tensor: {exc}") from None
        if host.dtype == object:
            raise DtypeError(f"model input {name!r}: a {type(value).__name__} is not a tensor")
    return host


def _like(example, result, device):
    """``result`` (numpy, or a CUDA NDArray) as the kind of tensor ``example`` is: numpy for numpy,
    NDArray for NDArray, else ``<example's library>.from_dlpack(result)`` where it has one."""
    if isinstance(example, nd.NDArray):
        return result if isinstance(result, nd.NDArray) else nd.array(result, example.device)
    if example is None or isinstance(example, np.ndarray) or not hasattr(example, "__dlpack__"):
        return result.numpy() if isinstance(result, nd.NDArray) else result
    import sys
    lib = sys.modules.get(type(example).__module__.split(".")[0])
    convert = getattr(lib, "from_dlpack", None)
    if convert is None:
        return result.numpy() if isinstance(result, nd.NDArray) else result
    return convert(result)
