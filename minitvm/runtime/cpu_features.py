"""Which of the instruction-set features minitvm's CPU schedules care about a CPU has.

The host's come from llvmlite's host feature map. A named ``-mcpu`` has no such query in
llvmlite, so a child process (LLVM aborts on a CPU name it does not know) compiles a few probe
functions for it and reads the instructions LLVM picked: ``zmm`` registers for a 512-bit add
(``avx512f``), a ``ymm`` integer add (``avx2``), ``vfmadd`` for ``llvm.fma`` (``fma``), and
``vpdpwssd`` for a ``pmaddwd`` + add, VEX-encoded ``{vex}`` for ``avxvnni`` (a CPU with that and
``avx512f`` has ``avx512vnni`` too), EVEX-encoded for ``avx512vnni``.
"""
from __future__ import annotations

import subprocess
import sys
import threading

from ..errors import BuildError

__all__ = ["CPU_FEATURES", "cpu_features"]

CPU_FEATURES = ("avx2", "avx512f", "avx512vnni", "avxvnni", "fma")

_PROBE = r'''
import sys, llvmlite.binding as llvm
llvm.initialize_native_target(); llvm.initialize_native_asmprinter(); llvm.initialize_native_asmparser()
IR = """
define <16 x float> @p_avx512f(<16 x float> %a, <16 x float> %b) #0 {
  %c = fadd <16 x float> %a, %b
  ret <16 x float> %c
}
define <8 x i32> @p_avx2(<8 x i32> %a, <8 x i32> %b) {
  %c = add <8 x i32> %a, %b
  ret <8 x i32> %c
}
declare <4 x float> @llvm.fma.v4f32(<4 x float>, <4 x float>, <4 x float>)
define <4 x float> @p_fma(<4 x float> %a, <4 x float> %b, <4 x float> %c) {
  %r = call <4 x float> @llvm.fma.v4f32(<4 x float> %a, <4 x float> %b, <4 x float> %c)
  ret <4 x float> %r
}
declare <4 x i32> @llvm.x86.sse2.pmadd.wd(<8 x i16>, <8 x i16>)
define <4 x i32> @p_vnni(<8 x i16> %a, <8 x i16> %b, <4 x i32> %acc) {
  %m = call <4 x i32> @llvm.x86.sse2.pmadd.wd(<8 x i16> %a, <8 x i16> %b)
  %r = add <4 x i32> %m, %acc
  ret <4 x i32> %r
}
attributes #0 = { "min-legal-vector-width"="512" }
"""
tm = llvm.Target.from_default_triple().create_target_machine(cpu=sys.argv[1], features=sys.argv[2])
print(tm.emit_assembly(llvm.parse_assembly(IR)))
'''

_lock = threading.Lock()
_probed: dict = {}


def _from_assembly(asm: str) -> frozenset:
    bodies, name = {}, None
    for line in asm.splitlines():
        if line.startswith("p_") and line.endswith(":"):
            name = line[:-1]
            bodies[name] = ""
        elif name is not None:
            bodies[name] += line + "\n"
    found = set()
    if "zmm" in bodies.get("p_avx512f", ""):
        found.add("avx512f")
    if "ymm" in bodies.get("p_avx2", "") and "vpaddd" in bodies.get("p_avx2", ""):
        found.add("avx2")
    if "vfmadd" in bodies.get("p_fma", ""):
        found.add("fma")
    vnni = bodies.get("p_vnni", "")
    if "vpdpwssd" in vnni:
        if "{vex}" in vnni:
            found.add("avxvnni")
        if "{vex}" not in vnni or "avx512f" in found:
            found.add("avx512vnni")
    return frozenset(found)


def _apply_mattr(features: set, mattr: str) -> frozenset:
    for item in filter(None, (m.strip() for m in mattr.split(","))):
        name = item.lstrip("+-")
        if name in CPU_FEATURES:
            (features.discard if item.startswith("-") else features.add)(name)
    return frozenset(features)


def cpu_features(cpu: str = "", mattr: str = "") -> frozenset:
    """The names out of :data:`CPU_FEATURES` that CPU ``cpu`` (``""``: this host) has, after
    ``mattr`` (``"+avx2,-fma"``). Raises :class:`~minitvm.errors.BuildError` for a CPU name LLVM
    does not know."""
    if not cpu:
        import llvmlite.binding as llvm
        host = llvm.get_host_cpu_features()
        return _apply_mattr({f for f in CPU_FEATURES if host.get(f, False)}, mattr)
    key = (cpu, mattr)
    with _lock:
        hit = _probed.get(key)
        if hit is None:
            proc = subprocess.run([sys.executable, "-c", _PROBE, cpu, mattr], capture_output=True,
                                  text=True, timeout=60)
            if proc.returncode != 0 or "not a recognized processor" in proc.stderr:
                last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "rejected"
                raise BuildError(f"-mcpu={cpu}: LLVM does not know the CPU {cpu!r} ({last})")
            hit = _probed[key] = _from_assembly(proc.stdout)
    return hit
