"""Tunable templates: a function ``(cfg, *args) -> (schedule, arg_tensors)`` registered under a
name with :func:`template`. Called without ``cfg``, a :class:`Template` asks the current
dispatch context (:mod:`minitvm.autotune.dispatch`) for the config of its workload."""
from __future__ import annotations

import functools

from .dispatch import DispatchContext
from .task import TaskError, default_target, get_template, normalize_arg, register

__all__ = ["template", "Template"]


class Template:
    """A registered schedule template; call it like the function it wraps, without ``cfg``.

    ``name``: the registry key (also the task name); ``func``: ``(cfg, *args) -> (s, tensors)``;
    ``target``: the target kind it is written for (from the name suffix ``.cuda``/``.cpu`` unless
    given); ``normalize``: optional ``(*args) -> tuple`` putting arguments in canonical form;
    ``reference``: optional ``(inputs, *args) -> outputs`` computing the expected outputs from
    the input arrays with numpy (used by ``LocalRunner(check_correctness=True)``).
    """

    def __init__(self, name: str, func, target=None, normalize=None, reference=None):
        self.name = name
        self.func = func
        self.target = target if target is not None else default_target(name)
        self.normalize = normalize
        self.reference = reference
        self.module = getattr(func, "__module__", None)
        functools.update_wrapper(self, func)

    def canonical_args(self, args) -> tuple:
        """The arguments in canonical (normalized, hashable) form."""
        args = tuple(args)
        if self.normalize is not None:
            args = tuple(self.normalize(*args))
        return tuple(normalize_arg(a, f"task {self.name!r}") for a in args)

    def workload(self, args) -> tuple:
        """``(name, *canonical args)``: the key of this template applied to ``args``."""
        return (self.name,) + self.canonical_args(args)

    def __call__(self, *args, cfg=None, target=None):
        """Instantiate: ``cfg`` given -> apply it; else ask the current dispatch context."""
        if cfg is None:
            cfg = DispatchContext.current().query(target or self.target, self.workload(args))
        return self.func(cfg, *args)

    def __reduce__(self):
        return (get_template, (self.name, self.module))

    def __repr__(self):
        return f"<autotune template {self.name!r} target={self.target}>"


def template(name: str, target=None, normalize=None, reference=None):
    """Decorator registering ``func(cfg, *args) -> (schedule, arg_tensors)`` as template ``name``.

    See :class:`Template` for the options. Re-registering a name (e.g. re-running a script)
    replaces the earlier template.
    """
    if not isinstance(name, str) or not name:
        raise TaskError(f"template: the name must be a non-empty string, got {name!r}")

    def decorate(func):
        tmpl = Template(name, func, target=target, normalize=normalize, reference=reference)
        register(tmpl)
        return tmpl

    return decorate
