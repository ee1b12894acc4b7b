"""Run a graph's CUDA kernels on the CPU: every fused group lowered with its CUDA schedule and run
in the SIMT interpreter of ``tests/codegen/kernel_interp.py`` (outputs poisoned first)."""
import os
import sys

import minitvm
from minitvm.graph.lowering import c_name, lowered_groups, optimize
from minitvm.testing import poison

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
import kernel_interp  # noqa: E402


def run_cuda_interpreted(graph, feeds, arch="sm_80"):
    """The outputs of ``graph`` on ``feeds`` (input name -> array), computed by its CUDA kernels."""
    graph = optimize(graph)
    values = {n: graph.node(n).value for n in graph.topo_order() if graph.node(n).is_const}
    values.update(feeds)
    target = f"cuda -arch={arch}"
    for g in lowered_groups(graph, target):
        f = minitvm.lower(g.schedule, g.params + [g.out], name=f"fused_{c_name(g.group.output)}", target=target)
        t = graph.node(g.group.output).type
        out = poison(t.shape, t.dtype)
        kernel_interp.run_func(f, [values[i].copy() for i in g.inputs] + [out], arch=arch)
        values[g.group.output] = out
    return [values[o] for o in graph.outputs]
