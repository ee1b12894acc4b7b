"""A small SIMT interpreter of CUDA kernel IR, for testing barrier placement on the CPU.

Every thread of a block is a Python generator that runs until its next ``syncthreads``; between
barriers the threads run one after another in a random order. Any order is a legal CUDA
schedule, so a missing barrier shows up as a wrong result for some seed, and a barrier reached
by only part of the block raises :class:`Divergence`. The kernel is prepared exactly as the
CUDA backend prepares it (virtual threads, guards, barriers) before it is interpreted.
"""
from __future__ import annotations

import random

import numpy as np

from minitvm import dtype as dt
from minitvm.tir import expr as E
from minitvm.tir.stmt import Allocate, AttrStmt, BufferStore, Evaluate, For, IfThenElse, LetStmt, SeqStmt
from minitvm.tir.transform.thread_sync import is_sync


class Divergence(Exception):
    """Some threads of a block reached a barrier while others finished."""


def _wrap(v, dtype):
    elem = dt.element_of(dtype)
    if dt.is_float(elem):
        return np.asarray(v).astype(dt.numpy_dtype(elem))
    if elem == "bool":
        return np.asarray(v).astype(bool)
    a = np.asarray(v).astype(np.int64)
    b = dt.bits(elem)
    a = a & ((1 << b) - 1) if b < 64 else a
    if dt.is_int(elem) and b < 64:
        a = np.where(a >= (1 << (b - 1)), a - (1 << b), a)
    return a.astype(dt.numpy_dtype(elem))


class Thread:
    """One GPU thread: its variables and local buffers; shared buffers belong to its block."""

    def __init__(self, mem, shared, env):
        self.mem, self.shared, self.env = mem, shared, env
        self.local = {}

    def buf(self, b):
        d = b.data
        if d in self.local:
            return self.local[d]
        if d in self.shared:
            return self.shared[d]
        return self.mem[d]

    def ev(self, e):
        """Value of expression ``e`` (numpy scalar or vector)."""
        t = type(e)
        if isinstance(e, E.Var):
            return self.env[e]
        if t in (E.IntImm, E.FloatImm):
            return _wrap(e.value, e.dtype)
        if t is E.Ramp:
            base, stride = int(self.ev(e.base)), int(self.ev(e.stride))
            return np.arange(e.lanes) * stride + base
        if t is E.Broadcast:
            return np.repeat(self.ev(e.value), e.lanes)
        if t is E.BufferLoad:
            idx = np.asarray(self.ev(e.indices[0])).astype(np.int64)
            arr = self.buf(e.buffer)
            if np.any(idx < 0) or np.any(idx >= arr.size):
                raise IndexError(f"{e.buffer.name}[{idx}] out of bounds ({arr.size})")
            return arr[idx]
        if t is E.Select:
            c = self.ev(e.condition)
            if np.ndim(c) == 0:
                return self.ev(e.true_value) if c else self.ev(e.false_value)
            return np.where(c, self.ev(e.true_value), self.ev(e.false_value))
        if t is E.Cast:
            v = self.ev(e.value)
            if dt.is_float(e.value.dtype) and dt.is_integer(e.dtype):
                v = np.trunc(v).astype(np.int64)
            return _wrap(v, e.dtype)
        if t is E.Not:
            return np.logical_not(self.ev(e.a))
        if t is E.Let:
            self.env[e.var] = self.ev(e.value)
            return self.ev(e.body)
        if t is E.Call:
            if e.op == "likely":
                return self.ev(e.args[0])
            if e.op == "dp4a":
                a, b, c = (self.ev(x) for x in e.args)
                return _wrap(int(np.dot(a.astype(np.int64), b.astype(np.int64))) + int(c), "int32")
            if e.op in ("exp", "sqrt", "fabs", "round"):
                f = {"exp": np.exp, "sqrt": np.sqrt, "fabs": np.abs, "round": np.rint}[e.op]
                return _wrap(f(self.ev(e.args[0])), e.dtype)
            if e.op in ("shift_left", "shift_right"):     # int64 operands in these kernels
                a, b = (np.asarray(self.ev(x)).astype(np.int64) for x in e.args)
                return _wrap(np.left_shift(a, b) if e.op == "shift_left" else np.right_shift(a, b), e.dtype)
            raise NotImplementedError(e.op)
        a, b = self.ev(e.a), self.ev(e.b)
        if t is E.Add:
            r = a + b if dt.is_float(e.dtype) else a.astype(np.int64) + b
        elif t is E.Sub:
            r = a - b if dt.is_float(e.dtype) else a.astype(np.int64) - b
        elif t is E.Mul:
            r = a * b if dt.is_float(e.dtype) else a.astype(np.int64) * b
        elif t is E.Div:
            r = a / b
        elif t is E.FloorDiv:
            r = np.floor_divide(a, b)
        elif t is E.FloorMod:
            r = np.mod(a, b)
        elif t is E.Min:
            r = np.minimum(a, b)
        elif t is E.Max:
            r = np.maximum(a, b)
        elif t is E.EQ:
            return a == b
        elif t is E.NE:
            return a != b
        elif t is E.LT:
            return a < b
        elif t is E.LE:
            return a <= b
        elif t is E.GT:
            return a > b
        elif t is E.GE:
            return a >= b
        elif t is E.And:
            return np.logical_and(a, b)
        elif t is E.Or:
            return np.logical_or(a, b)
        else:
            raise NotImplementedError(t)
        return _wrap(r, e.dtype)

    def run(self, s):
        """Execute statement ``s``; yields at every barrier."""
        t = type(s)
        if t is SeqStmt:
            for c in s.seq:
                yield from self.run(c)
        elif t is For:
            lo, n = int(self.ev(s.min)), int(self.ev(s.extent))
            for i in range(lo, lo + n):
                self.env[s.loop_var] = np.int64(i)
                yield from self.run(s.body)
        elif t is IfThenElse:
            if self.ev(s.condition):
                yield from self.run(s.then_case)
            elif s.else_case is not None:
                yield from self.run(s.else_case)
        elif t is AttrStmt:
            if s.attr_key == "thread_extent":
                self.env[s.node.var] = self.env[s.node.thread_tag]
            yield from self.run(s.body)
        elif t is Allocate:
            b = s.buffer
            size = int(np.prod([int(x.value) for x in b.shape])) * dt.lanes_of(b.dtype)
            if b.scope.startswith("shared"):
                if b.data not in self.shared:
                    self.shared[b.data] = np.full(size, np.nan if dt.is_float(b.dtype) else 77,
                                                  dtype=dt.numpy_dtype(b.dtype))
            else:
                self.local[b.data] = np.zeros(size, dtype=dt.numpy_dtype(b.dtype))
            yield from self.run(s.body)
        elif t is LetStmt:
            self.env[s.var] = self.ev(s.value)
            yield from self.run(s.body)
        elif t is Evaluate:
            if is_sync(s):
                yield "sync"
            elif not isinstance(s.value, (E.IntImm,)):
                self.ev(s.value)
        elif t is BufferStore:
            v = self.ev(s.value)
            idx = np.asarray(self.ev(s.indices[0])).astype(np.int64)
            arr = self.buf(s.buffer)
            if np.any(idx < 0) or np.any(idx >= arr.size):
                raise IndexError(f"store {s.buffer.name}[{idx}] out of bounds ({arr.size})")
            arr[idx] = v
        else:
            raise NotImplementedError(t)


def run_kernel(stmt, grid, block, mem, shape_env, rng):
    """Run one kernel over its grid; ``mem`` maps data Var -> flat numpy array (modified)."""
    tags = ("x", "y", "z")
    for bz in range(grid[2]):
        for by in range(grid[1]):
            for bx in range(grid[0]):
                shared = {}
                threads = []
                for tz in range(block[2]):
                    for ty in range(block[1]):
                        for tx in range(block[0]):
                            env = dict(shape_env)
                            env.update({"blockIdx.x": np.int64(bx), "blockIdx.y": np.int64(by),
                                        "blockIdx.z": np.int64(bz), "threadIdx.x": np.int64(tx),
                                        "threadIdx.y": np.int64(ty), "threadIdx.z": np.int64(tz)})
                            th = Thread(mem, shared, env)
                            threads.append(th.run(stmt))
                live = list(range(len(threads)))
                while live:
                    order = live[:]
                    rng.shuffle(order)
                    states = {}
                    for k in order:
                        try:
                            next(threads[k])
                            states[k] = "sync"
                        except StopIteration:
                            states[k] = "done"
                    vals = set(states.values())
                    if len(vals) > 1:
                        raise Divergence("some threads reached a barrier while others finished")
                    live = [k for k in live if states[k] == "sync"]


def run_func(f, arrays, sizes=None, seed=0, arch="sm_90"):
    """Run PrimFunc ``f`` through the CUDA codegen's kernel preparation and the interpreter."""
    from minitvm.codegen.cuda import _HostSplit, _KernelGen, _signature
    sig, shape_vars = _signature(f)
    sizes = sizes or {}
    host = _HostSplit(f)
    mem = {}
    for b, a in zip(f.params, arrays):
        mem[b.data] = a.reshape(-1)
    for j, b in enumerate(host.workspaces):
        n = int(np.prod([int(x.value) if isinstance(x, E.IntImm) else sizes[x.name] for x in b.shape]))
        mem[b.data] = np.zeros(n, dt.numpy_dtype(b.dtype))
    shape_env = {v: np.int64(sizes[v.name]) for v in shape_vars if v.name in sizes}
    rng = random.Random(seed)
    for k, kst in enumerate(host.kernels):
        gen = _KernelGen(f, f"k{k}", kst, host.workspaces, shape_vars, arch)
        grid = tuple(g if isinstance(g, int) else g.evaluate(sizes) for g in gen.grid)
        run_kernel(gen.stmt, grid, gen.block, mem, shape_env, rng)
