"""A small SIMT interpreter of CUDA kernel IR, for testing barrier placement and warp code on the CPU.

Every thread of a block is a Python generator that runs until it stops: at a ``syncthreads``
barrier, at a warp-collective call, or at its end. Between barriers the threads run one after
another in a random order. Any order is a legal CUDA schedule, so a missing barrier shows up as
a wrong result for some seed, and a barrier reached by only part of the block raises
:class:`Divergence`. The kernel is prepared by the CUDA pipeline's device passes (virtual
threads, host/device split, guards, barriers) first.

Warps. Thread ``tx + bdx * (ty + bdy * tz)`` of a block is lane ``linear % 32`` of warp
``linear // 32``. A ``warp``-scope buffer of ``S`` elements belongs to one warp and is held as a
(32, S // 32) array: row ``l`` is lane ``l``'s registers, ``address_of(frag[i])`` names slot
``i // 32`` of the calling lane's row. A fresh warp buffer is filled with the byte 0xA5, so a
read of an unwritten register shows. Fragments are opaque: only the ``mt_*`` calls below touch
them, through byte views (int8 fragment bytes are little-endian 32-bit registers).
``Evaluate(call_extern("mt_..."))`` statements are the tensor-core operations of the CUDA
templates, emulated exactly with ``warp_ops.py``. The collective ones (``mt_ldmatrix_a``,
``mt_ldmatrix_b``, ``mt_ldmatrix_b16``, ``mt_mma_s8``) run once for the warp as soon as all 32
lanes have stopped at the same statement, whatever the other warps are doing; the lanes then
rejoin the random order. Lanes that reach one unevenly (others at a barrier, finished, or at
another call) raise :class:`Divergence`. ``mt_zero_acc`` and ``mt_store_acc`` act on the
calling lane alone.

Asynchronous copies. ``mt_cp_async16`` reads its 16 source bytes when it is issued and writes
them only when a later ``mt_cp_async_wait(n)`` of the same thread completes its group
(``mt_cp_async_commit`` closes a group; the wait completes every committed group but the ``n``
most recent): the strictest order the hardware allows, so a kernel that forgets the wait reads
stale shared memory. Copies never waited for are dropped at the thread's end.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial

import numpy as np

import warp_ops
from minitvm import dtype as dt
from minitvm.codegen.signature import signature_of
from minitvm.lowering.pipeline import lower_device
from minitvm.tir import expr as E
from minitvm.tir.stmt import (Allocate, AttrStmt, Buffer, BufferStore, Evaluate, For, IfThenElse, LetStmt,
                              SeqStmt, Stmt)
from minitvm.tir.transform.thread_sync import is_sync

WARP = warp_ops.WARP
_POISON_BYTE = 0xA5
_DONE = "done"


class Divergence(Exception):
    """Threads of a block (or lanes of a warp) that must synchronize took different paths."""


class WarpError(Exception):
    """An ``mt_*`` call against its contract (argument kinds, alignment, lanes that disagree), or a
    plain load/store of a warp fragment."""


def _trunc_int(fn):
    def f(a, b):
        a, b = np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)
        safe = np.where(b == 0, 1, b)
        q = np.abs(a) // np.abs(safe) * np.sign(a) * np.sign(safe)
        return np.where(b == 0, 0, q if fn == "div" else a - q * safe)
    return f


def _trunc(fn):
    def f(a, b):
        if np.asarray(a).dtype.kind == "f":
            return np.fmod(a, b) if fn == "mod" else np.trunc(a / b)
        return _trunc_int(fn)(a, b)
    return f


#: the intrinsic calls the interpreter evaluates (numpy, as the CUDA math library computes them)
_MATH = {"exp": np.exp, "sqrt": np.sqrt, "fabs": np.abs, "round": np.rint, "log": np.log, "tanh": np.tanh,
         "floor": np.floor, "ceil": np.ceil, "sin": np.sin, "cos": np.cos, "pow": np.power,
         "truncdiv": _trunc("div"), "truncmod": _trunc("mod")}


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


@dataclass(frozen=True)
class _Pointer:
    """``address_of(buffer[index])`` for a shared or global buffer (``array`` is its flat storage)."""

    buffer: Buffer
    array: np.ndarray
    index: int

    def bytes(self, call, offset, nbytes, align=1):
        """A view of ``nbytes`` bytes ``offset`` bytes past the element, as int8."""
        start = self.index * self.array.itemsize + offset
        if start < 0 or start + nbytes > self.array.nbytes:
            raise IndexError(f"{call}: bytes {start}..{start + nbytes - 1} of {self.buffer.name} are out of "
                             f"bounds ({self.array.nbytes} bytes)")
        if start % align:
            raise WarpError(f"{call}: byte {start} of {self.buffer.name} is not {align}-byte aligned")
        return self.array.view(np.int8)[start:start + nbytes]


@dataclass(frozen=True)
class _Fragment:
    """``address_of(frag[32 * slot])`` for warp buffer ``frag``: slot ``slot`` of every lane's registers."""

    buffer: Buffer
    regs: np.ndarray             # (32, elements per lane)
    slot: int

    def lane_bytes(self, call, lane, nbytes):
        """A view of ``nbytes`` register bytes of ``lane`` from the slot on, as int8."""
        row = self.regs[lane].view(np.int8)
        start = self.slot * self.regs.itemsize
        if start + nbytes > row.size:
            raise WarpError(f"{call}: {self.buffer.name} holds {row.size} bytes per lane; {nbytes} bytes from "
                            f"slot {self.slot} run past them")
        return row[start:start + nbytes]

    def lane_int32(self, call, lane, count):
        """A view of ``count`` int32 registers of ``lane`` from the slot on."""
        return self.lane_bytes(call, lane, 4 * count).view(np.int32)


def _warp_registers(b: Buffer, size: int) -> np.ndarray:
    """Fresh, poisoned registers of warp buffer ``b`` (``size`` elements): one row per lane."""
    if size % WARP:
        raise WarpError(f"warp buffer {b.name} has {size} elements, not a multiple of {WARP} (a slice per lane)")
    regs = np.empty((WARP, size // WARP), dtype=dt.numpy_dtype(b.dtype))
    regs.view(np.uint8)[...] = _POISON_BYTE
    return regs


class AsyncCopies:
    """One thread's ``cp.async`` state: each copy reads at issue and writes when a wait covers its group."""

    def __init__(self):
        self.open = []           # (destination view, bytes) not yet committed
        self.committed = []      # groups, oldest first

    def issue(self, dst, data):
        """Queue writing ``data`` into the view ``dst`` in the current group."""
        self.open.append((dst, data))

    def commit(self):
        """Close the current group (``cp.async.commit_group``)."""
        self.committed.append(self.open)
        self.open = []

    def wait(self, n: int):
        """Perform the writes of every committed group except the ``n`` most recent (``cp.async.wait_group n``)."""
        done = max(len(self.committed) - n, 0)
        for group in self.committed[:done]:
            for dst, data in group:
                dst[...] = data
        del self.committed[:done]


class Thread:
    """One GPU thread: its variables, local buffers and cp.async queue; shared buffers belong to its
    block, warp buffers to its warp (``warp``), where it is lane ``lane``."""

    def __init__(self, mem, shared, warp, env, lane):
        self.mem, self.shared, self.warp, self.env, self.lane = mem, shared, warp, env, lane
        self.local = {}
        self.copies = AsyncCopies()

    def buf(self, b):
        d = b.data
        if d in self.local:
            return self.local[d]
        if d in self.shared:
            return self.shared[d]
        if d in self.warp:
            raise WarpError(f"warp buffer {b.name} is read or written by a plain load/store; fragments are "
                            "opaque registers that only the mt_* calls access")
        return self.mem[d]

    def scope(self, b) -> str:
        """Where buffer ``b`` lives for this thread: local, shared, warp or global."""
        d = b.data
        if d in self.local:
            return "local"
        if d in self.shared:
            return "shared"
        return "warp" if d in self.warp else "global"

    def argument(self, call, kind, arg):
        """The value of argument ``arg`` of ``call``: an int, a _Pointer or a _Fragment (``kind``)."""
        if kind == "int":
            return int(self.ev(arg))
        if kind == "const":
            if not isinstance(arg, E.IntImm):
                raise WarpError(f"{call}: the group count must be an integer constant, got {arg}")
            return int(arg.value)
        if not (isinstance(arg, E.Call) and arg.op == "address_of" and isinstance(arg.args[0], E.BufferLoad)):
            raise WarpError(f"{call}: a {kind} argument must be address_of(buffer[index]), got {arg}")
        load = arg.args[0]
        b, index = load.buffer, int(self.ev(load.indices[0]))
        scope = self.scope(b)
        if kind == "fragment":
            if scope != "warp":
                raise WarpError(f"{call}: {b.name} is a {scope} buffer; this argument is a warp fragment")
            if index % WARP:
                raise WarpError(f"{call}: warp buffer {b.name} indexed at {index}; a fragment index is "
                                f"{WARP} x the slot in each lane's slice")
            return _Fragment(b, self.warp[b.data], index // WARP)
        if scope not in _POINTER_SCOPES[kind]:
            raise WarpError(f"{call}: {b.name} is a {scope} buffer; this argument must be {kind} memory")
        return _Pointer(b, self.buf(b), index)

    def ev(self, e):
        """Value of expression ``e`` (numpy scalar or vector)."""
        t = type(e)
        if isinstance(e, E.Var):
            # a thread index is the same everywhere in the kernel, as in CUDA, also where it is
            # used above its attribute (hoisted by hoist_invariant_terms)
            return self.env[e] if e in self.env else self.env[e.name]
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
            if e.op in _MATH:
                with np.errstate(all="ignore"):
                    return _wrap(_MATH[e.op](*(self.ev(x) for x in e.args)), e.dtype)
            if e.op in ("shift_left", "shift_right"):     # int64 operands in these kernels
                a, b = (np.asarray(self.ev(x)).astype(np.int64) for x in e.args)
                return _wrap(np.left_shift(a, b) if e.op == "shift_left" else np.right_shift(a, b), e.dtype)
            if e.op == "call_extern":
                name = _extern_name(e)
                raise WarpError(f"{name} is called inside an expression; the mt_* calls are statements")
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
            elif b.scope == "warp":
                if b.data not in self.warp:
                    self.warp[b.data] = _warp_registers(b, size)
            else:
                self.local[b.data] = np.zeros(size, dtype=dt.numpy_dtype(b.dtype))
            yield from self.run(s.body)
        elif t is LetStmt:
            self.env[s.var] = self.ev(s.value)
            yield from self.run(s.body)
        elif t is Evaluate:
            if is_sync(s):
                yield "sync"
            elif isinstance(s.value, E.Call) and s.value.op == "call_extern":
                name = _extern_name(s.value)
                kinds, op = _signature(name, s.value)
                args = tuple(self.argument(name, k, a) for k, a in zip(kinds, s.value.args[1:]))
                if name in _COLLECTIVE:
                    yield _Collective(s, name, args)
                else:
                    op(self, name, *args)
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


# ------------------------------------------------------------------------------------------
# the mt_* calls
# ------------------------------------------------------------------------------------------
_POINTER_SCOPES = {"shared": ("shared",), "global": ("global",), "memory": ("shared", "global")}


def _extern_name(call) -> str:
    """The function name of a ``call_extern``."""
    if not call.args or not isinstance(call.args[0], E.StringImm):
        raise WarpError(f"call_extern needs the function name as its first argument, got {call}")
    return call.args[0].value


def _signature(name, call):
    """(argument kinds, handler) of the ``mt_*`` call ``name``, after checking its argument count."""
    entry = _PER_LANE.get(name) or _COLLECTIVE.get(name)
    if entry is None:
        raise NotImplementedError(f"call_extern {name!r}: the SIMT interpreter models only "
                                  f"{', '.join(sorted(_PER_LANE) + sorted(_COLLECTIVE))}")
    kinds = entry[0]
    if len(call.args) - 1 != len(kinds):
        raise WarpError(f"{name} takes {len(kinds)} arguments ({', '.join(kinds)}), got {len(call.args) - 1}")
    return entry


def _zero_acc(th, call, c):
    """The calling lane's 4 accumulator values become 0."""
    c.lane_int32(call, th.lane, 4)[...] = 0


def _store_acc(th, call, dst, stride, c):
    """The calling lane's 4 accumulator values go to ``dst[row * stride + col]`` (the C fragment mapping)."""
    if dst.array.dtype != np.int32:
        raise WarpError(f"{call}: {dst.buffer.name} is {dst.buffer.dtype}; accumulators are stored as int32")
    rows, cols = warp_ops.c_fragment_index()
    idx = dst.index + rows[th.lane] * stride + cols[th.lane]
    if np.any(idx < 0) or np.any(idx >= dst.array.size):
        raise IndexError(f"{call}: store {dst.buffer.name}[{idx}] out of bounds ({dst.array.size})")
    if np.any(idx[::2] % 2):            # two int2 stores
        raise WarpError(f"{call}: the int2 stores at {dst.buffer.name}[{idx[::2]}] are not 8-byte aligned "
                        "(the destination index and row stride must be even)")
    dst.array[idx] = c.lane_int32(call, th.lane, 4)


def _cp_async16(th, call, dst, src, nbytes):
    """Queue a 16-byte copy ``src`` -> ``dst``; with ``nbytes`` 0, 16 zero bytes and ``src`` is not read."""
    if nbytes not in (0, 16):
        raise WarpError(f"{call}: nbytes is {nbytes}; it must be 16 (copy) or 0 (zero-fill)")
    target = dst.bytes(call, 0, 16, align=16)
    data = src.bytes(call, 0, 16, align=16).copy() if nbytes else np.zeros(16, np.int8)
    th.copies.issue(target, data)


def _cp_async_commit(th, call):
    """Close the calling thread's current group of copies."""
    th.copies.commit()


def _cp_async_wait(th, call, n):
    """Complete the calling thread's committed groups but the ``n`` most recent."""
    if n < 0:
        raise WarpError(f"{call}: the group count is {n}; it must be at least 0")
    th.copies.wait(n)


def _uniform_source(call, lanes):
    """The (shared pointer, row stride) that every lane passes to an ldmatrix call."""
    src, stride = lanes[0][1], lanes[0][2]
    for lane, (_, s, st) in enumerate(lanes):
        if s.buffer is not src.buffer or s.index != src.index or st != stride:
            raise WarpError(f"{call}: lane {lane} passes {s.buffer.name}[{s.index}] with stride {st}, lane 0 "
                            f"{src.buffer.name}[{src.index}] with stride {stride}; a warp loads one tile")
    return src, stride


def _ldmatrix(call, lanes, rows, load):
    """Read the ``rows`` x 32 int8 tile ``src[r * stride + k]``; each lane's fragment gets its part, ``load(tile)``."""
    src, stride = _uniform_source(call, lanes)
    if src.array.dtype != np.int8:
        raise WarpError(f"{call}: {src.buffer.name} is {src.buffer.dtype}; ldmatrix tiles are int8")
    if stride % 16:
        raise WarpError(f"{call}: row stride {stride} is not a multiple of 16 bytes (ldmatrix rows are "
                        "16-byte aligned)")
    tile = np.stack([src.bytes(call, r * stride, 32, align=16) for r in range(rows)])
    frags = load(tile)
    for lane, (dst, _, _) in enumerate(lanes):
        dst.lane_bytes(call, lane, frags.shape[1])[...] = frags[lane]


def _mma_s8(call, lanes):
    """D = C + A B (m16n8k32, int8 -> int32) for the warp; each lane's ``c`` becomes its part of D."""
    a = np.stack([a.lane_bytes(call, lane, 16) for lane, (_, a, _) in enumerate(lanes)])
    b = np.stack([b.lane_bytes(call, lane, 8) for lane, (_, _, b) in enumerate(lanes)])
    c = np.stack([c.lane_int32(call, lane, 4) for lane, (c, _, _) in enumerate(lanes)])
    d = warp_ops.mma_m16n8k32_s8(a, b, c)
    for lane, (c, _, _) in enumerate(lanes):
        c.lane_int32(call, lane, 4)[...] = d[lane]


# name -> (argument kinds after the name, handler (thread, name, *arguments))
_PER_LANE = {
    "mt_zero_acc": (("fragment",), _zero_acc),
    "mt_store_acc": (("memory", "int", "fragment"), _store_acc),
    "mt_cp_async16": (("shared", "global", "int"), _cp_async16),
    "mt_cp_async_commit": ((), _cp_async_commit),
    "mt_cp_async_wait": (("const",), _cp_async_wait),
}
# name -> (argument kinds, handler (name, every lane's arguments in lane order)); runs once per warp
_COLLECTIVE = {
    "mt_ldmatrix_a": (("fragment", "shared", "int"), partial(_ldmatrix, rows=16, load=warp_ops.ldmatrix_a)),
    "mt_ldmatrix_b": (("fragment", "shared", "int"), partial(_ldmatrix, rows=8, load=warp_ops.ldmatrix_b)),
    "mt_ldmatrix_b16": (("fragment", "shared", "int"), partial(_ldmatrix, rows=16, load=warp_ops.ldmatrix_b16)),
    "mt_mma_s8": (("fragment", "fragment", "fragment"), _mma_s8),
}


# ------------------------------------------------------------------------------------------
# scheduling a block
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Collective:
    """A lane waiting at the warp-collective statement ``stmt``, with its arguments."""

    stmt: Stmt
    name: str
    args: tuple


def _where(event, call) -> str:
    """What a lane that is not at ``call`` (a _Collective) reached instead, in words."""
    if event == "sync":
        return "a barrier"
    if event == _DONE:
        return "the end of the kernel"
    return f"another {event.name} call" if event.name == call.name else event.name


def _run_collective(events, w, nthreads) -> list:
    """Run the collective call warp ``w`` waits at, once all its lanes have stopped; the threads released.

    ``events`` maps each stopped thread to where it stopped. None are released when the warp's
    lanes stopped at barriers or the end; a warp in which some lanes wait at a collective call and
    others stopped elsewhere raises :class:`Divergence`.
    """
    first = w * WARP
    lanes = [events[k] for k in range(first, min(first + WARP, nthreads))]
    calls = [e for e in lanes if isinstance(e, _Collective)]
    if not calls:
        return []
    call = calls[0]
    if len(lanes) < WARP:
        raise Divergence(f"{call.name}: warp {w} has only {len(lanes)} threads; a collective call needs all "
                         f"{WARP} lanes")
    for lane, e in enumerate(lanes):
        if not (isinstance(e, _Collective) and e.stmt is call.stmt):
            raise Divergence(f"warp {w}: {len(calls)} lanes wait at {call.name} but lane {lane} reached "
                             f"{_where(e, call)}")
    _COLLECTIVE[call.name][1](call.name, [e.args for e in lanes])
    return list(range(first, first + WARP))


def _release_barrier(events) -> list:
    """Every thread once all wait at a barrier; none once all have finished."""
    if len(set(events.values())) > 1:
        raise Divergence("some threads reached a barrier while others finished")
    return sorted(k for k, e in events.items() if e == "sync")


def _run_block(threads, rng):
    """Run one block's thread generators to their ends, in a random order between synchronization points.

    Each round runs the threads released by the last barrier in a random order, each up to its
    next stop. A warp whose lanes all stopped at a collective call runs it at once and its lanes
    rejoin the round at random places, so warps advance independently between barriers.
    """
    nthreads = len(threads)
    events = {}
    live = list(range(nthreads))
    while live:
        queue = live[:]
        rng.shuffle(queue)
        queued = [0] * -(-nthreads // WARP)          # per warp: lanes still in the queue
        for k in queue:
            queued[k // WARP] += 1
        pos = 0
        while pos < len(queue):
            k = queue[pos]
            pos += 1
            try:
                events[k] = next(threads[k])
            except StopIteration:
                events[k] = _DONE
            w = k // WARP
            queued[w] -= 1
            if not queued[w]:
                for lane in _run_collective(events, w, nthreads):
                    queue.insert(rng.randint(pos, len(queue)), lane)
                    queued[w] += 1
        live = _release_barrier(events)


def run_kernel(stmt, grid, block, mem, shape_env, rng):
    """Run one kernel over its grid; ``mem`` maps data Var -> flat numpy array (modified)."""
    nthreads = block[0] * block[1] * block[2]
    for bz in range(grid[2]):
        for by in range(grid[1]):
            for bx in range(grid[0]):
                shared = {}
                warps = [{} for _ in range(-(-nthreads // WARP))]
                threads = []
                for tz in range(block[2]):
                    for ty in range(block[1]):
                        for tx in range(block[0]):
                            env = dict(shape_env)
                            env.update({"blockIdx.x": np.int64(bx), "blockIdx.y": np.int64(by),
                                        "blockIdx.z": np.int64(bz), "threadIdx.x": np.int64(tx),
                                        "threadIdx.y": np.int64(ty), "threadIdx.z": np.int64(tz)})
                            linear = len(threads)          # tx + bdx * (ty + bdy * tz)
                            th = Thread(mem, shared, warps[linear // WARP], env, linear % WARP)
                            threads.append(th.run(stmt))
                _run_block(threads, rng)


def run_func(f, arrays, sizes=None, seed=0, arch="sm_90"):
    """Run PrimFunc ``f`` through the CUDA pipeline's device passes and the interpreter."""
    (df,) = lower_device([f], f"cuda -arch={arch}")
    sig, shape_vars = signature_of(df, "cuda")
    sizes = sizes or {}
    mem = {}
    for b, a in zip(df.params, arrays):
        mem[b.data] = a.reshape(-1)
    for j, b in enumerate(df.workspaces):
        n = int(np.prod([int(x.value) if isinstance(x, E.IntImm) else sizes[x.name] for x in b.shape]))
        mem[b.data] = np.zeros(n, dt.numpy_dtype(b.dtype))
    shape_env = {v: np.int64(sizes[v.name]) for v in shape_vars if v.name in sizes}
    host = Thread(mem, {}, {}, dict(shape_env), 0)
    rng = random.Random(seed)
    for kernel in df.kernels:
        grid = tuple(g if isinstance(g, int) else int(host.ev(g)) for g in kernel.grid)
        run_kernel(kernel.body, grid, kernel.block, mem, shape_env, rng)
