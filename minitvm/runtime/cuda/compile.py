"""NVRTC compilation of CUDA C to a cubin (or PTX), and the cubin cache.

:func:`compile_cuda` compiles for one exact architecture, cached in-process and on disk
(``cubin/`` under :func:`~minitvm.runtime.cache.cache_root`; each entry holds its key and a
checksum, and a directory others may write is not used). Compile errors raise
:class:`~minitvm.errors.BuildError` carrying NVRTC's log and the generated source lines around
each error.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path

from ...errors import BuildError
from ..cache import cache_root, usable_cache_dir

try:  # cuda-python's NVRTC binding; the NVRTC library itself loads on first call
    from cuda.bindings import nvrtc as _nvrtc
    _IMPORT_ERROR: Exception | None = None
except Exception as _exc:  # pragma: no cover - only where cuda-python is not installed
    _nvrtc = None
    _IMPORT_ERROR = _exc

__all__ = ["compile_cuda", "compile_ptx", "nvrtc_version", "supported_archs", "normalize_arch",
           "cache_dir", "compile_stats", "clear_memory_cache"]

_SOURCE_NAME = "kernel.cu"
_ARCH_RE = re.compile(r"^(?:sm_|compute_)?(\d+)([af]?)$")
_CACHE_MAGIC = b"MINITVM-CUBIN-2\n"    # then the entry's key, sha256(key + cubin), the cubin
_compile_lock = threading.Lock()
_memory_cache: dict = {}
_stats = {"nvrtc_compiles": 0, "memory_hits": 0, "disk_hits": 0, "disk_writes": 0, "corrupt_entries": 0}
_nvrtc_info: dict = {}


def _require_nvrtc():
    if _nvrtc is None:
        raise BuildError(f"cannot compile CUDA C: cuda-python is not installed ({_IMPORT_ERROR}); "
                         "pip install cuda-python nvidia-cuda-nvrtc")


def nvrtc_version() -> tuple:
    """NVRTC's ``(major, minor)`` version."""
    if "version" not in _nvrtc_info:
        _require_nvrtc()
        try:
            err, major, minor = _nvrtc.nvrtcVersion()
        except Exception as exc:  # noqa: BLE001 - loader errors
            raise BuildError(f"NVRTC could not be loaded ({type(exc).__name__}: {exc}); "
                             "pip install nvidia-cuda-nvrtc") from exc
        if err:
            raise BuildError(f"nvrtcVersion failed: {err}")
        _nvrtc_info["version"] = (int(major), int(minor))
    return _nvrtc_info["version"]


def supported_archs() -> tuple:
    """The ``sm_XY`` numbers (e.g. ``(75, 80, ..., 90, ...)``) this NVRTC can compile for."""
    if "archs" not in _nvrtc_info:
        nvrtc_version()
        archs: tuple = ()
        try:
            err, lst = _nvrtc.nvrtcGetSupportedArchs()
            if not err:
                archs = tuple(int(a) for a in lst)
        except Exception:  # noqa: BLE001 - old NVRTC: let the compiler itself judge
            archs = ()
        _nvrtc_info["archs"] = archs
    return _nvrtc_info["archs"]


def normalize_arch(arch) -> str:
    """The canonical architecture name: ``"sm_90"``, ``"90"``, ``90`` -> ``"sm_90"``; ``"sm_90a"``
    stays; BuildError otherwise."""
    m = _ARCH_RE.match(str(arch).strip())
    if not m:
        raise BuildError(f"unknown CUDA architecture {arch!r}: expected a name such as 'sm_80' or 'sm_90'")
    return f"sm_{m.group(1)}{m.group(2)}"


def arch_number(arch: str) -> int:
    """The compute capability number of a normalized architecture name: ``"sm_90a"`` -> 90."""
    return int(_ARCH_RE.match(arch).group(1))


def _check_arch_supported(arch: str) -> None:
    number = int(_ARCH_RE.match(arch).group(1))
    archs = supported_archs()
    if archs and number not in archs:
        major, minor = nvrtc_version()
        known = ", ".join(f"sm_{a}" for a in archs)
        raise BuildError(f"NVRTC {major}.{minor} cannot compile for {arch}; it supports {known}"
                         + (" (CUDA 13 dropped architectures below sm_75)" if number < 75 else ""))


def cache_dir() -> Path:
    """Where compiled cubins are cached: ``cubin/`` under :func:`~minitvm.runtime.cache.cache_root`
    (``$MINITVM_CACHE_DIR``, else ``$XDG_CACHE_HOME/minitvm``, by default ``~/.cache/minitvm``)."""
    return cache_root() / "cubin"


def compile_stats() -> dict:
    """Counters of this process's cubin compilations: ``nvrtc_compiles``, ``memory_hits``, ``disk_hits``, ..."""
    return dict(_stats)


def clear_memory_cache() -> None:
    """Forget the in-process cubin cache (the on-disk cache stays)."""
    with _compile_lock:
        _memory_cache.clear()


def _cache_key(source: str, arch: str, options: tuple) -> str:
    major, minor = nvrtc_version()
    h = hashlib.sha256()
    for part in ("minitvm-cubin-v1", source, arch, "\x1f".join(options), f"nvrtc-{major}.{minor}"):
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _disk_read(path: Path, key: str):
    """The cubin of entry ``path`` if it is whole and was written for ``key`` (the hash of its
    source, arch, options and NVRTC version): an entry copied over from another kernel's file
    is refused, not served."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_CACHE_MAGIC)
    stored_key = data[head:head + 64]
    digest, payload = data[head + 64:head + 96], data[head + 96:]
    if (len(data) < head + 96 or not data.startswith(_CACHE_MAGIC) or stored_key != key.encode()
            or hashlib.sha256(stored_key + payload).digest() != digest or not payload.startswith(b"\x7fELF")):
        _stats["corrupt_entries"] += 1
        return None
    return payload


def _disk_write(path: Path, key: str, cubin: bytes) -> None:
    """Atomically write a cache entry (tmp file + os.replace); failures only lose the cache entry."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
        with os.fdopen(fd, "wb") as f:
            f.write(_CACHE_MAGIC + key.encode() + hashlib.sha256(key.encode() + cubin).digest() + cubin)
        os.replace(tmp, path)
        tmp = None
        _stats["disk_writes"] += 1
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


_ERROR_LINE_RE = re.compile(re.escape(_SOURCE_NAME) + r"\((\d+)\): (?:catastrophic )?error")


def _source_excerpts(source: str, log: str, context: int = 3, max_errors: int = 10) -> str:
    """The source lines around each ``kernel.cu(LINE): error`` of ``log``, numbered, LINE marked."""
    lines = source.splitlines()
    seen, out = [], []
    for m in _ERROR_LINE_RE.finditer(log):
        line = int(m.group(1))
        if line in seen:
            continue
        seen.append(line)
        if len(seen) > max_errors:
            out.append("... (more errors; see the log above)")
            break
        lo, hi = max(1, line - context), min(len(lines), line + context)
        width = len(str(hi))
        out.append(f"{_SOURCE_NAME}:{line}:")
        for k in range(lo, hi + 1):
            mark = ">>" if k == line else "  "
            out.append(f"{mark} {k:>{width}} | {lines[k - 1]}")
    return "\n".join(out)


def _nvrtc_log(prog) -> str:
    err, size = _nvrtc.nvrtcGetProgramLogSize(prog)
    if err or size <= 1:
        return ""
    buf = b" " * size
    (err,) = _nvrtc.nvrtcGetProgramLog(prog, buf)
    if err:
        return ""
    return buf.rstrip(b"\0").decode(errors="replace").strip()


def _nvrtc_compile(source: str, options: tuple, want: str, arch: str) -> bytes:
    """Run NVRTC; return the cubin or PTX bytes; raise BuildError with the log and source excerpts."""
    _require_nvrtc()
    opts = [o.encode() for o in options]
    try:
        err, prog = _nvrtc.nvrtcCreateProgram(source.encode(), _SOURCE_NAME.encode(), 0, [], [])
    except Exception as exc:  # noqa: BLE001 - loader errors
        raise BuildError(f"NVRTC could not be loaded ({type(exc).__name__}: {exc})") from exc
    if err:
        raise BuildError(f"nvrtcCreateProgram failed: {err}")
    try:
        (err,) = _nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        log = _nvrtc_log(prog)
        if err:
            name = getattr(err, "name", str(err))
            major, minor = nvrtc_version()
            parts = [f"NVRTC {major}.{minor} failed to compile the generated CUDA C for {arch} ({name})",
                     f"options: {' '.join(options)}", "--- NVRTC log ---", log or "(empty)"]
            excerpts = _source_excerpts(source, log)
            if excerpts:
                parts += ["--- generated source around the errors ---", excerpts]
            exc = BuildError("\n".join(parts))
            exc.log = log
            exc.source = source
            exc.options = tuple(options)
            raise exc
        if want == "cubin":
            err, size = _nvrtc.nvrtcGetCUBINSize(prog)
            if err or size == 0:
                raise BuildError(f"NVRTC produced no cubin for {arch} (options: {' '.join(options)})")
            buf = b" " * size
            _check_nvrtc(_nvrtc.nvrtcGetCUBIN(prog, buf), "nvrtcGetCUBIN")
            return bytes(buf)
        err, size = _nvrtc.nvrtcGetPTXSize(prog)
        if err or size == 0:
            raise BuildError(f"NVRTC produced no PTX for {arch}")
        buf = b" " * size
        _check_nvrtc(_nvrtc.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
        return bytes(buf).rstrip(b"\0")
    finally:
        _nvrtc.nvrtcDestroyProgram(prog)


def _check_nvrtc(result, what: str) -> None:
    err = result[0] if isinstance(result, tuple) else result
    if err:
        raise BuildError(f"{what} failed: {getattr(err, 'name', err)}")


def _full_options(arch: str, options, prefix: str) -> tuple:
    options = tuple(str(o) for o in options)
    full = (f"--gpu-architecture={prefix}{arch[3:]}",)
    if not any(o.startswith(("--std", "-std")) for o in options):
        full += ("--std=c++17",)
    return full + options


_split_compile = {"supported": None}     # None: not tried yet


def _split_compile_options(source: str) -> tuple:
    """``--split-compile=0`` (optimize in parallel, on every core) for a source of several
    kernels, such as a whole model, unless this NVRTC has rejected the option. Measured on the
    int8 ResNet-50 at batch 16 (59 kernels) with 2 cores: 23.3 s -> 15.0 s."""
    if _split_compile["supported"] is False or source.count("__global__") < 2:
        return ()
    return ("--split-compile=0",)


def compile_cuda(source: str, arch: str = "sm_90", options=(), cache: bool = True) -> bytes:
    """Compile CUDA C ``source`` with NVRTC to a cubin for exactly ``arch`` (e.g. ``"sm_90"``).

    Kernels must be ``extern "C" __global__``. Adds ``--gpu-architecture=sm_XY --std=c++17`` to
    ``options`` (and ``--split-compile=0`` for a source of several kernels, where NVRTC takes
    it). Results are cached in-process and on disk (see :func:`cache_dir`), keyed by the
    sha256 of source, arch, options and NVRTC version; a corrupt disk entry is ignored and rewritten.
    Raises :class:`~minitvm.errors.BuildError` with NVRTC's log and the source lines around each error.
    """
    if not isinstance(source, str):
        raise BuildError(f"compile_cuda: source must be a str of CUDA C, got {type(source).__name__}")
    arch = normalize_arch(arch)
    _check_arch_supported(arch)
    full = _full_options(arch, options, "sm_")
    key = _cache_key(source, arch, full) if cache else None
    if cache:
        hit = _memory_cache.get(key)
        if hit is not None:
            _stats["memory_hits"] += 1
            return hit
        path = cache_dir() / f"{key}.cubin"
        on_disk = usable_cache_dir(path.parent)
        hit = _disk_read(path, key) if on_disk else None
        if hit is not None:
            _stats["disk_hits"] += 1
            _memory_cache[key] = hit
            return hit
    with _compile_lock:
        split = _split_compile_options(source)
        try:
            cubin = _nvrtc_compile(source, full + split, "cubin", arch)
        except BuildError as exc:
            if not split or "INVALID_OPTION" not in str(exc):
                raise
            _split_compile["supported"] = False
            cubin = _nvrtc_compile(source, full, "cubin", arch)
        _stats["nvrtc_compiles"] += 1
    if cache:
        _memory_cache[key] = cubin
        if on_disk:
            _disk_write(path, key, cubin)
    return cubin


def compile_ptx(source: str, arch: str = "sm_90", options=()) -> str:
    """Compile CUDA C ``source`` to PTX text for ``compute_XY`` (inspection and tests; not cached)."""
    if not isinstance(source, str):
        raise BuildError(f"compile_ptx: source must be a str of CUDA C, got {type(source).__name__}")
    arch = normalize_arch(arch)
    _check_arch_supported(arch)
    full = _full_options(arch, options, "compute_")
    return _nvrtc_compile(source, full, "ptx", arch).decode(errors="replace")
