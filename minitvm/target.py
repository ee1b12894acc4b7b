"""What code is built for: ``Target("cuda -arch=sm_90")``, ``Target("llvm -mcpu=znver3")``.

A target string is parsed once (the result is cached by its text) into a hashable, immutable
:class:`Target` that holds the kind, the CUDA architecture or the LLVM CPU, the instruction
features the schedules may use, and, for CUDA, the per-block :class:`DeviceLimits`.
``str(target)`` is its canonical string, which parses back to an equal target.

``with target:`` makes it :meth:`Target.current` for the code inside (contexts nest).
"""
from __future__ import annotations

import threading

from .device_limits import DeviceLimits, cuda_limits
from .errors import BuildError
from .runtime.cpu_features import cpu_features

__all__ = ["Target", "DeviceLimits", "cuda_limits"]

_ACCEPTED = ("accepted: 'cuda', 'cuda -arch=sm_XY' (e.g. sm_80, sm_90), 'llvm', "
             "'llvm -mcpu=NAME -mattr=+f,-g -opt-level=0..3'")
_CUDA_OPTIONS = ("-arch",)
_LLVM_OPTIONS = ("-mcpu", "-mattr", "-opt-level")


def _cuda_features(arch: str) -> frozenset:
    number = int(arch[3:].rstrip("af"))
    features = set()
    if number >= 61:
        features.add("dp4a")
    if number >= 75:
        features |= {"ldmatrix", "mma_s8", "mma_s8_m8n8k16"}
    if number >= 80:
        features |= {"cp_async", "mma_s8_m16n8k32"}
    return frozenset(features)


def _present_arch() -> str:
    from .runtime import cuda  # the CUDA bindings load when a CUDA target is parsed, not on import
    return cuda.device_arch(0) if cuda.device_count() > 0 else "sm_90"


class _Stack(threading.local):
    def __init__(self):
        self.targets = []


_current = _Stack()
_parsed: dict = {}
_parse_lock = threading.Lock()


class Target:
    """A compilation target; build it from a string (or pass an existing Target through).

    Fields: ``kind`` (``"cuda"`` | ``"llvm"``); ``arch`` (CUDA, e.g. ``"sm_90"``: from
    ``-arch=``, else the present GPU's, else ``sm_90``); ``mcpu``, ``mattr``, ``opt_level``
    (LLVM; an empty ``mcpu`` is the host CPU); ``features`` (a frozenset: ``dp4a``, ``ldmatrix``,
    ``mma_s8`` with its shapes ``mma_s8_m8n8k16``/``mma_s8_m16n8k32``, ``cp_async`` on CUDA;
    ``avx2``, ``avx512f``, ``avx512vnni``, ``avxvnni``, ``fma`` on LLVM); ``limits`` (the CUDA
    :class:`DeviceLimits`, ``None`` on LLVM).
    """

    __slots__ = ("kind", "arch", "mcpu", "mattr", "opt_level", "features", "limits")

    def __new__(cls, spec):
        if isinstance(spec, Target):
            return spec
        if not isinstance(spec, str):
            raise BuildError(f"target {spec!r}: expected a str or a Target, got {type(spec).__name__}; {_ACCEPTED}")
        text = " ".join(spec.split())
        hit = _parsed.get(text)
        if hit is None:
            with _parse_lock:
                hit = _parsed.get(text)
                if hit is None:
                    hit = _parsed[text] = cls._parse(text)
        return hit

    @classmethod
    def _parse(cls, text: str) -> "Target":
        words = text.split()
        if not words or words[0] not in ("cuda", "llvm"):
            kind = words[0] if words else ""
            raise BuildError(f"target {text!r}: unknown kind {kind!r}; {_ACCEPTED}")
        kind, options = words[0], {}
        known = _CUDA_OPTIONS if kind == "cuda" else _LLVM_OPTIONS
        for w in words[1:]:
            key, eq, value = w.partition("=")
            if key not in known or not eq or not value:
                why = f"unknown option {key!r}" if key not in known else "it needs a value"
                raise BuildError(f"target {text!r}: bad option {w!r} ({why}); {kind} takes "
                                 f"{', '.join(k + '=...' for k in known)}; {_ACCEPTED}")
            options[key] = value
        if kind == "cuda":
            from .runtime.cuda import normalize_arch  # see _present_arch
            try:
                arch = normalize_arch(options["-arch"]) if "-arch" in options else _present_arch()
            except BuildError as exc:
                raise BuildError(f"target {text!r}: {exc}; {_ACCEPTED}") from None
            return cls._make("cuda", arch=arch, features=_cuda_features(arch), limits=cuda_limits(arch))
        opt = options.get("-opt-level", "3")
        if opt not in ("0", "1", "2", "3"):
            raise BuildError(f"target {text!r}: bad option '-opt-level={opt}'; it must be 0..3")
        mcpu, mattr = options.get("-mcpu", ""), options.get("-mattr", "")
        try:
            features = cpu_features(mcpu, mattr)
        except BuildError as exc:
            raise BuildError(f"target {text!r}: {exc}") from None
        return cls._make("llvm", mcpu=mcpu, mattr=mattr, opt_level=int(opt), features=features)

    @classmethod
    def _make(cls, kind, arch=None, mcpu="", mattr="", opt_level=3, features=frozenset(), limits=None):
        self = object.__new__(cls)
        for name, value in (("kind", kind), ("arch", arch), ("mcpu", mcpu), ("mattr", mattr),
                            ("opt_level", opt_level), ("features", features), ("limits", limits)):
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name, value):
        raise AttributeError(f"Target is immutable: cannot set {name!r}")

    def __delattr__(self, name):
        raise AttributeError(f"Target is immutable: cannot delete {name!r}")

    def _key(self) -> tuple:
        return (self.kind, self.arch, self.mcpu, self.mattr, self.opt_level)

    def __eq__(self, other):
        return isinstance(other, Target) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        if self.kind == "cuda":
            return f"cuda -arch={self.arch}"
        parts = ["llvm"]
        if self.mcpu:
            parts.append(f"-mcpu={self.mcpu}")
        if self.mattr:
            parts.append(f"-mattr={self.mattr}")
        if self.opt_level != 3:
            parts.append(f"-opt-level={self.opt_level}")
        return " ".join(parts)

    def __repr__(self):
        return f"Target({str(self)!r})"

    def __reduce__(self):
        return (Target, (str(self),))

    def __enter__(self):
        _current.targets.append(self)
        return self

    def __exit__(self, *exc):
        _current.targets.pop()

    @staticmethod
    def current() -> "Target | None":
        """The target of the innermost ``with target:`` block of this thread, or None."""
        return _current.targets[-1] if _current.targets else None
