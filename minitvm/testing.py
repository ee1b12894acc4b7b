"""Test helpers for kernels: seeded inputs, poisoned outputs, build-and-run on the CPU, fuzz settings."""
import os

import numpy as np

import minitvm


def poison(shape, dtype):
    """An output array filled with a sentinel (NaN, or a marker integer) so unwritten elements show."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.full(shape, np.nan, dtype)
    if dtype.kind == "b":
        return np.zeros(shape, dtype)
    return np.full(shape, np.iinfo(dtype).min + 7, dtype)


def rand(rng, shape, dtype="float32", lo=None, hi=None):
    """Random non-zero-filled data: normal floats, or uniform integers over [lo, hi] (default: the full range)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        lo = -1.0 if lo is None else lo
        hi = 1.0 if hi is None else hi
        return rng.uniform(lo, hi, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def shape_of(t):
    """The constant shape of a tensor as a tuple of ints."""
    return tuple(int(s.value) for s in t.shape)


def fuzz_settings(examples: int, **kwargs):
    """hypothesis ``settings`` for a fuzz test: ``examples`` examples, derandomized (the same ones
    on every run, as CI needs), no deadline. ``MINITVM_FUZZ_EXAMPLES=N`` in the environment
    runs N examples per test instead, from fresh random seeds (the long run)."""
    from hypothesis import HealthCheck, settings

    long_run = os.environ.get("MINITVM_FUZZ_EXAMPLES")
    if long_run:
        examples, derandomize = int(long_run), False
    else:
        derandomize = True
    return settings(max_examples=examples, derandomize=derandomize, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **kwargs)


def build_run(s, args, *inputs, out_shapes=None):
    """Build ``s`` for LLVM, run it on ``inputs`` plus poisoned outputs; return the outputs.

    ``args`` lists the inputs first (as many as ``inputs``), then the outputs.
    """
    f = minitvm.build(s, args, target="llvm")
    outs_t = args[len(inputs):]
    if out_shapes is None:
        out_shapes = [shape_of(t) for t in outs_t]
    outs = [poison(shp, t.dtype) for shp, t in zip(out_shapes, outs_t)]
    f(*inputs, *outs)
    return outs[0] if len(outs) == 1 else outs
