"""The saved form of a compiled model (``.mtvm``): one zip file, no pickle.

Members:

- ``meta.json``: ``format`` (``"minitvm-artifact"``), ``format_version``, the minitvm version,
  the target string and kind, the CUDA arch, the inputs and outputs, and the compiled module's
  metadata (signatures; CUDA launch plans; the CPU's triple, name and features);
- ``plan.json``: the execution plan: steps (kernel, values read and written, nodes, ops,
  multiply-accumulates, template), the type of every value, the memory plan (blocks and the
  block of each value) and the weight file of each constant;
- ``code/``: ``module.o`` (the CPU object code MCJIT loads) and ``module.ll`` (its LLVM IR, for
  reading), or ``module.cubin`` and ``module.cu`` (CUDA);
- ``weights/<k>.npy``: each constant as a ``.npy`` (read with ``allow_pickle=False``).

:func:`read_artifact` refuses another format or format version, and a module for another
device, arch or CPU, with a :class:`~minitvm.errors.ArtifactError` or
:class:`~minitvm.errors.DeviceError` that says which.
"""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from ..errors import ArtifactError
from ..runtime.module_io import load_module, save_module

FORMAT = "minitvm-artifact"
FORMAT_VERSION = 1

__all__ = ["FORMAT", "FORMAT_VERSION", "write_artifact", "read_artifact", "read_meta", "read_plan"]


def write_artifact(path, module, target, plan: dict, consts: dict) -> str:
    """Write a compiled model's ``module`` (built for ``target``), execution ``plan`` (steps,
    values, inputs, outputs, memory) and constants to the zip file ``path``; returns the path."""
    from ..version import __version__
    mod_meta, files = save_module(module)
    path = os.fspath(path)
    weights = {}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "minitvm_version": __version__,
            "target": str(target), "kind": target.kind, "arch": target.arch if target.kind == "cuda" else None,
            "inputs": plan["inputs"], "outputs": plan["outputs"], "module": mod_meta}
    tmp = path + ".tmp"
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for k, (name, value) in enumerate(consts.items()):
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
                member = f"weights/{k}.npy"
                zf.writestr(zipfile.ZipInfo(member), buf.getvalue(), compress_type=zipfile.ZIP_STORED)
                weights[name] = member
            for name, data in files.items():
                zf.writestr(f"code/{name}", data)
            zf.writestr("plan.json", json.dumps(dict(plan, weights=weights)))
            zf.writestr("meta.json", json.dumps(meta, indent=1))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _open(path) -> zipfile.ZipFile:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ArtifactError(f"minitvm.load: {path}: no such file")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ArtifactError(f"minitvm.load: {path} is not a minitvm artifact (not a zip file; "
                            "write one with model.save(path))") from None


def _json(zf, name: str, path) -> dict:
    try:
        return json.loads(zf.read(name))
    except KeyError:
        raise ArtifactError(f"minitvm.load: {path} is not a minitvm artifact (it has no {name})") from None
    except ValueError as exc:
        raise ArtifactError(f"minitvm.load: {path}: {name} is not valid JSON ({exc})") from None


def _check_format(meta: dict, path) -> None:
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"minitvm.load: {path} is not a minitvm artifact (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"minitvm.load: {path} has artifact format version {version!r} (written by minitvm "
                            f"{meta.get('minitvm_version', '?')}), but this minitvm reads version {FORMAT_VERSION}; "
                            "compile and save the model again with this minitvm")


def read_meta(path) -> dict:
    """The ``meta.json`` of artifact ``path`` (its format checked), without loading anything else."""
    with _open(path) as zf:
        meta = _json(zf, "meta.json", path)
    _check_format(meta, path)
    return meta


def read_plan(path) -> tuple:
    """``(meta, plan)`` of artifact ``path`` (its format checked): what it holds, without loading
    its code or weights -- on any machine."""
    with _open(path) as zf:
        meta = _json(zf, "meta.json", path)
        _check_format(meta, path)
        return meta, _json(zf, "plan.json", path)


def read_artifact(path, device_index: int = 0) -> dict:
    """The parts of artifact ``path``: ``meta``, ``plan``, the loaded ``module`` (no compiling)
    and ``consts`` (name -> array). Refuses a wrong format, version, device, arch or CPU."""
    with _open(path) as zf:
        meta = _json(zf, "meta.json", path)
        _check_format(meta, path)
        plan = _json(zf, "plan.json", path)
        mod_meta = meta["module"]
        names = [mod_meta[k] for k in ("object", "ir", "cubin", "source") if k in mod_meta]
        try:
            files = {n: zf.read(f"code/{n}") for n in names}
        except KeyError as exc:
            raise ArtifactError(f"minitvm.load: {path} is incomplete: {exc.args[0]}") from None
        module = load_module(mod_meta, files, device_index=device_index)
        consts = {}
        for name, member in plan["weights"].items():
            try:
                consts[name] = np.load(io.BytesIO(zf.read(member)), allow_pickle=False)
            except KeyError:
                raise ArtifactError(f"minitvm.load: {path} is incomplete: no {member} (constant {name!r})") from None
    return {"meta": meta, "plan": plan, "module": module, "consts": consts}
