"""The ``minitvm`` command: ``compile``, ``run``, ``info``, ``tune`` and ``demo``.

Each subcommand's options live beside it (``model_cmds``: compile and run; ``tune``;
``info_demo``), the option types and shared groups in ``options``. Every option is checked
before any compile work; an error is one line (``minitvm: error: ...``; ``--debug`` shows the
traceback), a usage error exits 2, a failure 1.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import MiniTVMError, UsageError
from ..models import quantize_for_target  # noqa: F401  (benchmarks and tests import it from here)

__all__ = ["main", "make_parser"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, as every other error is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} ('{self.prog} --help' lists the options)\n")


def make_parser() -> argparse.ArgumentParser:
    """The ``minitvm`` argument parser with every subcommand."""
    from ..graph import zoo
    from ..version import __version__
    from . import info_demo, model_cmds, tune
    p = _Parser(prog="minitvm", description="minitvm: compile models (zoo or ONNX) for NVIDIA GPUs "
                                "(CUDA) and CPUs (LLVM), in float32 or int8; run, time, profile and tune them.",
                                epilog="'minitvm COMMAND --help' describes each command's options.")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    p.add_argument("--version", action="version", version=f"minitvm {__version__}")
    models_help = "zoo model name (" + ", ".join(zoo.list_models()) + ") or .onnx path"
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    model_cmds.add_parsers(sub, models_help)
    info_demo.add_parsers(sub, models_help)
    tune.add_parser(sub, models_help)
    return p


def main(argv=None) -> int:
    """Entry point of the ``minitvm`` command; returns the exit status."""
    p = make_parser()
    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 2
    if getattr(args, "check", None):
        args.check(args.parser, args)
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (``minitvm tune ... --list | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (MiniTVMError, OSError) as exc:
        if args.debug:
            raise
        print(f"minitvm: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
