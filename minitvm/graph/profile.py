"""Per-kernel profile of a compiled model: each kernel timed alone, its share of the total and
its achieved rate (TOPS for kernels with multiply-accumulates, else GB/s of the bytes it reads
and writes)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KernelProfile", "profile_model", "format_profile"]


@dataclass(frozen=True)
class KernelProfile:
    """One kernel of a compiled model: ``seconds`` median per call, ``share`` of the kernels' sum."""

    func: str
    ops: str
    implementation: str
    seconds: float
    share: float
    macs: int
    nbytes: int

    @property
    def tops(self) -> float:
        """Tera-operations per second (2 per multiply-accumulate); 0 for kernels without MACs."""
        return 2 * self.macs / self.seconds / 1e12 if self.seconds else 0.0

    @property
    def gbps(self) -> float:
        """Gigabytes per second of the kernel's arguments (each read or written once)."""
        return self.nbytes / self.seconds / 1e9 if self.seconds else 0.0


def profile_model(model, number: int = 10, repeat: int = 3) -> list:
    """Time each kernel of ``model`` (a :class:`~minitvm.graph.build.CompiledModel` whose inputs
    are set) alone, ``repeat`` batches of ``number`` calls; a list of :class:`KernelProfile` in
    execution order."""
    times = []
    for st, args in zip(model.steps, model._args):
        times.append(model.module.time_evaluator(st.func, number=number, repeat=repeat)(*args).median)
    total = sum(times) or 1.0
    rows = []
    for st, args, t in zip(model.steps, model._args, times):
        nbytes = sum(model.types[v].nbytes for v in st.inputs) + model.types[st.output].nbytes
        rows.append(KernelProfile(st.func, " -> ".join(st.ops), st.implementation, t, t / total, st.macs,
                                  int(nbytes)))
    return rows


def format_profile(rows, replay_seconds: float | None = None) -> str:
    """A table of ``rows`` (slowest first), with the kernels' sum against a whole-model time."""
    lines = [f"{'kernel':40s} {'template':34s} {'us':>9s} {'share':>6s} {'rate':>12s}"]
    for r in sorted(rows, key=lambda r: -r.seconds):
        if r.macs:
            rate = f"{r.tops:.1f} TOPS" if r.tops >= 1 else f"{r.tops * 1e3:.1f} GOPS"
        else:
            rate = f"{r.gbps:.1f} GB/s"
        lines.append(f"{r.func[:40]:40s} {r.implementation[:34]:34s} {r.seconds * 1e6:9.1f} {100 * r.share:5.1f}% "
                     f"{rate:>12s}")
    total = sum(r.seconds for r in rows)
    lines.append(f"{len(rows)} kernels, summed {total * 1e3:.3f} ms"
                 + (f"; the whole model runs in {replay_seconds * 1e3:.3f} ms "
                    f"({100 * (replay_seconds / total - 1):+.1f}% against the sum)" if replay_seconds and total else ""))
    return "\n".join(lines)
