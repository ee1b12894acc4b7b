"""Where minitvm keeps its on-disk caches (cubins, build-time tactics), and whether it may.

The root is ``$MINITVM_CACHE_DIR`` when set, else the user cache directory of the platform
(``platformdirs``: ``$XDG_CACHE_HOME/minitvm``, by default ``~/.cache/minitvm``, on Linux).
A cache directory is created private (mode 0700). One that belongs to another user, or that
others may write to, is not used (someone else could plant entries in it), as pip and ccache
refuse such caches, unless ``MINITVM_CACHE_TRUST=1`` says it is fine; minitvm then works
without the cache and warns once.
"""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

__all__ = ["cache_root", "usable_cache_dir", "CACHE_ENV", "TRUST_ENV"]

CACHE_ENV = "MINITVM_CACHE_DIR"
TRUST_ENV = "MINITVM_CACHE_TRUST"
_warned: set = set()


def cache_root() -> Path:
    """The root of minitvm's caches (see the module docstring)."""
    root = os.environ.get(CACHE_ENV, "").strip()
    if root:
        return Path(root).expanduser()
    try:
        import platformdirs
        return Path(platformdirs.user_cache_dir("minitvm", appauthor=False))
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        base = os.environ.get("XDG_CACHE_HOME", "").strip()
        return (Path(base) if base else Path.home() / ".cache") / "minitvm"


def usable_cache_dir(path) -> bool:
    """Create ``path`` (and its parents) private if absent; True if it may be used as a cache:
    a directory owned by this user that group and others cannot write (or ``MINITVM_CACHE_TRUST=1``).
    False, with one warning per directory, otherwise (also when it cannot be created)."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        return _refuse(path, f"it cannot be created or read ({exc.strerror or exc})")
    if not stat.S_ISDIR(st.st_mode):
        return _refuse(path, "it is not a directory")
    if os.environ.get(TRUST_ENV, "").strip() in ("1", "true", "yes"):
        return True
    uid = getattr(os, "getuid", None)
    if uid is not None and st.st_uid != uid():
        return _refuse(path, f"it belongs to another user (uid {st.st_uid})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return _refuse(path, f"others may write to it (mode {stat.S_IMODE(st.st_mode):o})")
    return True


def _refuse(path: Path, why: str) -> bool:
    if str(path) not in _warned:
        _warned.add(str(path))
        warnings.warn(f"minitvm: not using the cache directory {path}: {why}; set {TRUST_ENV}=1 to use it "
                      f"anyway, or {CACHE_ENV} to choose another", stacklevel=3)
    return False
