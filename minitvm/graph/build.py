"""Compile a whole graph: simplify, fuse, generate one kernel per fused group, plan memory, run.

``build(graph, target)`` returns a :class:`CompiledModel` whose ``run(inputs)`` executes the
fused groups in order over a memory plan that reuses the buffers of dead tensors. On CUDA the
whole inference is captured once as a CUDA graph and replayed, so Python launch overhead does
not add up per kernel.
"""
from __future__ import annotations

import time

import numpy as np

from .. import dtype as dt
from ..errors import ArgumentError, GraphError, ShapeError
from ..runtime import ndarray as nd
from ..runtime.module import TimeResult
from ..lowering.lower import lower
from ..target import Target
from .lowering import LoweredGroup, c_name, lowered_groups, optimize  # noqa: F401 (re-exported)


class Step:
    """One kernel call: the function name, the graph values it reads and writes, and the op
    strategy implementation (template) that scheduled it."""

    def __init__(self, func: str, inputs: list, output: str, nodes: list, implementation: str = ""):
        self.func, self.inputs, self.output, self.nodes = func, inputs, output, nodes
        self.implementation = implementation

    def __repr__(self):
        return f"{self.func}({', '.join(self.inputs)}) -> {self.output}"


def build(graph, target="llvm", optimize_graph: bool = True, progress=None, tactics: int = 0,
          tactics_cache=None):
    """Compile ``graph`` for ``target`` (a :class:`~minitvm.target.Target` or its string, such as
    ``"llvm"`` or ``"cuda"``) into a :class:`CompiledModel`.

    Tunable kernels take their configs from the current ``minitvm.autotune`` dispatch context
    (wrap the call in ``autotune.ApplyHistoryBest(log)`` to use tuned ones). ``tactics=K``
    first times up to K configs of each kernel that nothing tuned answers, on the GPU, and
    builds with the fastest (cached per device: see :mod:`minitvm.graph.tactics`)."""
    from ..driver import build as build_funcs
    target = Target(target)
    if tactics:
        from .tactics import select_tactics
        chosen = select_tactics(graph, target, tactics, cache=tactics_cache, optimize_graph=optimize_graph)
        if chosen is not None:
            with chosen:
                return build(graph, target, optimize_graph, progress)
    if optimize_graph:
        graph = optimize(graph)
    funcs, steps = [], []
    for g in lowered_groups(graph, target):
        grp = g.group
        fname = f"fused_{g.index}_{c_name(grp.anchor or grp.output)}"
        try:
            funcs.append(lower(g.schedule, g.params + [g.out], name=fname, target=target))
        except Exception as exc:
            raise GraphError(f"fused group {grp.nodes} (anchor {grp.anchor}): cannot be compiled: {exc}") from exc
        steps.append(Step(fname, g.inputs, grp.output, grp.nodes, g.implementation))
        if progress:
            progress(g.index + 1, g.total)
    # a graph with no kernel left (outputs that are inputs or constants) needs no module
    module = build_funcs(funcs, target=target) if funcs else None
    return CompiledModel(graph, module, steps, target)


class CompiledModel:
    """A compiled graph: ``run(inputs) -> outputs`` and ``benchmark()``.

    ``target`` is the :class:`~minitvm.target.Target` it was built for; ``kind`` is its kind."""

    def __init__(self, graph, module, steps, target, device_index: int = 0):
        self.graph, self.module, self.steps = graph, module, steps
        self.target = Target(target)
        self.kind = self.target.kind
        self.device = nd.cuda(device_index) if self.kind == "cuda" else nd.cpu()
        self.input_names = [n for n in graph.topo_order() if graph.node(n).is_input]
        self.output_names = list(graph.outputs)
        self._values: dict | None = None
        self._cuda_graph = None
        self._stream = None
        self.peak_bytes = 0
        self.weight_bytes = 0

    # ------------------------------------------------------------------ memory plan
    def plan_memory(self) -> dict:
        """Assign each intermediate value a storage block, reusing blocks of dead values.

        Returns {value name: (block index, nbytes)}; ``peak_bytes`` is the blocks' total.
        """
        last_use = {}
        for i, st in enumerate(self.steps):
            for v in st.inputs:
                last_use[v] = i
        outputs = set(self.output_names)
        blocks: list = []        # sizes
        free: list = []          # block indices
        plan = {}
        for i, st in enumerate(self.steps):
            need = self.graph.node(st.output).type.nbytes
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

    def _allocate(self):
        g = self.graph
        values = {}
        for name in g.topo_order():
            node = g.node(name)
            if node.is_const:
                values[name] = self._array(np.asarray(node.value, order="C"))   # ascontiguousarray makes 0-d 1-d
                self.weight_bytes += node.value.nbytes
            elif node.is_input:
                values[name] = self._empty(node.type)
        plan = self.plan_memory()
        storage = [self._raw(n) for n in self._blocks]
        for name, (b, _) in plan.items():
            values[name] = self._view(storage[b], g.node(name).type)
        self._storage = storage
        self._values = values
        self._args = [[values[v] for v in st.inputs] + [values[st.output]] for st in self.steps]
        self._funcs = [self.module[st.func] for st in self.steps]

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

    # ------------------------------------------------------------------ running
    def _launch_all(self):
        for f, args in zip(self._funcs, self._args):
            f(*args)

    def set_inputs(self, inputs) -> None:
        """Copy ``inputs`` (dict by name, or a list in graph input order) into the model."""
        if self._values is None:
            self._allocate()
        if not isinstance(inputs, dict):
            inputs = dict(zip(self.input_names, inputs if isinstance(inputs, (list, tuple)) else [inputs]))
        for name in self.input_names:
            if name not in inputs:
                raise ShapeError(f"model input {name!r} is missing; inputs are {self.input_names}")
            arr = np.asarray(inputs[name])
            t = self.graph.node(name).type
            if tuple(arr.shape) != tuple(t.shape) or str(arr.dtype) != t.dtype:
                raise ShapeError(f"model input {name!r} must be {t}, got {arr.dtype}{list(arr.shape)}")
            dst = self._values[name]
            if self.kind == "cuda":
                dst.copyfrom(np.asarray(arr, order="C"))
            else:
                np.copyto(dst, arr)
        unknown = set(inputs) - set(self.input_names)
        if unknown:
            raise ShapeError(f"unknown model inputs {sorted(unknown)}; inputs are {self.input_names}")

    def execute(self) -> None:
        """Run every kernel once on the current inputs (replaying the CUDA graph on a GPU)."""
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

    def get_outputs(self) -> list:
        """The outputs of the last run, as numpy arrays."""
        out = []
        for name in self.output_names:
            v = self._values[name]
            out.append(v.numpy() if self.kind == "cuda" else np.array(v))
        return out

    def run(self, inputs) -> list:
        """Run the model on ``inputs`` (dict by input name, or a list); return the outputs."""
        self.set_inputs(inputs)
        self.execute()
        return self.get_outputs()

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

    def summary(self) -> str:
        """Kernels, fused groups and memory use."""
        lines = [f"{len(self.steps)} kernels for {sum(len(s.nodes) for s in self.steps)} ops on {self.kind}"]
        for st in self.steps:
            lines.append(f"  {st.func}: {' -> '.join(self.graph.node(n).op for n in st.nodes)}  [{st.implementation}]")
        lines.append(f"activation memory {self.peak_bytes / 2**20:.1f} MiB (planned, reused), "
                     f"weights {self.weight_bytes / 2**20:.1f} MiB")
        return "\n".join(lines)
