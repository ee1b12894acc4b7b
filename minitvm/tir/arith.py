"""Integer arithmetic analysis: constant bounds, symbolic intervals, and simplification.

Index expressions (int32/int64) are put in a canonical linear form ``sum(coeff * atom) + c``
so that ``(x*32 + 31) - x*32 + 1`` becomes ``32`` and ``(f // 8) * 8 + f % 8`` becomes ``f``.
Floor division and modulo by positive constants are simplified using the known ranges of
loop variables (``Analyzer.bind``). Narrow integer types (int8 ...) wrap, so they are only
constant-folded, never re-associated.
"""
from __future__ import annotations

import math

from .. import dtype as dt
from . import expr as E

INDEX_DTYPES = ("int32", "int64")


def expr_key(e):
    """A hashable structural key: equal keys mean structurally equal expressions."""
    if isinstance(e, E.Var):
        return ("v", id(e))
    if isinstance(e, E.IntImm):
        return ("i", e.dtype, e.value)
    if isinstance(e, E.FloatImm):
        return ("f", e.dtype, e.value)
    if isinstance(e, E.BinaryOp):
        return (type(e).__name__, expr_key(e.a), expr_key(e.b))
    if isinstance(e, E.BufferLoad):
        return ("load", id(e.buffer), tuple(expr_key(i) for i in e.indices))
    if isinstance(e, E.ProducerLoad):
        return ("pload", id(e.producer.op), e.producer.value_index, tuple(expr_key(i) for i in e.indices))
    if isinstance(e, E.Call):
        return ("call", e.op, e.dtype, tuple(expr_key(a) for a in e.args))
    if isinstance(e, E.Cast):
        return ("cast", e.dtype, expr_key(e.value))
    if isinstance(e, E.Not):
        return ("not", expr_key(e.a))
    if isinstance(e, E.Select):
        return ("sel", expr_key(e.condition), expr_key(e.true_value), expr_key(e.false_value))
    if isinstance(e, E.Ramp):
        return ("ramp", expr_key(e.base), expr_key(e.stride), e.lanes)
    if isinstance(e, E.Broadcast):
        return ("bc", expr_key(e.value), e.lanes)
    return ("o", id(e))


def equal(a, b) -> bool:
    """Structural equality of two expressions: ``expr_key(a) == expr_key(b)``, but stopping at
    the first difference (``select(c, x, y)`` compares its branches at every level of a chain)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (E.IntImm, E.FloatImm)):
        return a.dtype == b.dtype and a.value == b.value
    if isinstance(a, E.BinaryOp):
        return equal(a.a, b.a) and equal(a.b, b.b)
    if isinstance(a, E.BufferLoad):
        return a.buffer is b.buffer and _all_equal(a.indices, b.indices)
    if isinstance(a, E.ProducerLoad):
        return (a.producer.op is b.producer.op and a.producer.value_index == b.producer.value_index
                and _all_equal(a.indices, b.indices))
    if isinstance(a, E.Call):
        return a.op == b.op and a.dtype == b.dtype and _all_equal(a.args, b.args)
    if isinstance(a, E.Cast):
        return a.dtype == b.dtype and equal(a.value, b.value)
    if isinstance(a, E.Not):
        return equal(a.a, b.a)
    if isinstance(a, E.Select):
        return (equal(a.condition, b.condition) and equal(a.true_value, b.true_value)
                and equal(a.false_value, b.false_value))
    if isinstance(a, E.Ramp):
        return a.lanes == b.lanes and equal(a.base, b.base) and equal(a.stride, b.stride)
    if isinstance(a, E.Broadcast):
        return a.lanes == b.lanes and equal(a.value, b.value)
    return False   # variables and the other nodes: by identity


def _all_equal(xs, ys) -> bool:
    if len(xs) != len(ys):
        return False
    for x, y in zip(xs, ys):
        if not equal(x, y):
            return False
    return True


class _Linear:
    """``sum(coeff * atom) + const`` over int32/int64 atoms."""

    __slots__ = ("terms", "const", "dtype")

    def __init__(self, dtype, terms=None, const=0):
        self.dtype = dtype
        self.terms = terms if terms is not None else {}
        self.const = const

    def add(self, other, sign=1):
        for k, (atom, c) in other.terms.items():
            if k in self.terms:
                a0, c0 = self.terms[k]
                self.terms[k] = (a0, c0 + sign * c)
            else:
                self.terms[k] = (atom, sign * c)
        self.const += sign * other.const
        return self

    def scale(self, factor):
        self.terms = {k: (a, c * factor) for k, (a, c) in self.terms.items()}
        self.const *= factor
        return self

    def is_const(self):
        return all(c == 0 for _, c in self.terms.values())


class _Ranges(dict):
    """The known ranges, ``{Var: (lo, hi)}``: a dict that tells its analyzer when it changes,
    which forgets the expressions it simplified under the old ranges."""

    def __init__(self, analyzer):
        super().__init__()
        self._analyzer = analyzer

    def _changed(self):
        self._analyzer._memo.clear()

    def __setitem__(self, k, v):
        self._changed()
        super().__setitem__(k, v)

    def __delitem__(self, k):
        self._changed()
        super().__delitem__(k)

    def update(self, *a, **kw):
        self._changed()
        super().update(*a, **kw)

    def pop(self, *a):
        self._changed()
        return super().pop(*a)

    def setdefault(self, *a):
        self._changed()
        return super().setdefault(*a)

    def clear(self):
        self._changed()
        super().clear()

    def popitem(self):
        self._changed()
        return super().popitem()


class Analyzer:
    """Holds known constant ranges of variables and simplifies/bounds expressions under them.

    Simplified expressions are remembered (by identity, while the ranges stay the same): passes
    simplify the same shared index expressions many times."""

    def __init__(self):
        self._memo: dict = {}       # id(expression) -> (expression, its simplified form)
        self.ranges: dict = _Ranges(self)

    # ------------------------------------------------------------------ ranges
    def bind(self, var, lo, hi) -> None:
        """Declare ``lo <= var <= hi`` (inclusive; ints, or None for unknown)."""
        self.ranges[var] = (lo, hi)

    def bind_range(self, var, rng: E.Range) -> None:
        """Declare ``var`` iterates over ``rng`` (constant bounds taken where they exist)."""
        lo_b = self.const_bounds(rng.min)
        ext_b = self.const_bounds(rng.extent)
        lo = lo_b[0]
        hi = None if lo_b[1] is None or ext_b[1] is None else lo_b[1] + ext_b[1] - 1
        self.ranges[var] = (lo, hi)

    def const_bounds(self, e) -> tuple:
        """Inclusive constant bounds ``(lo, hi)`` of an integer expression; None where unknown."""
        if isinstance(e, E.IntImm):
            return (e.value, e.value)
        if isinstance(e, E.Var):
            if e in self.ranges:
                return self.ranges[e]
            return (0, None) if isinstance(e, E.SizeVar) else (None, None)
        if isinstance(e, E.Add):
            (a0, a1), (b0, b1) = self.const_bounds(e.a), self.const_bounds(e.b)
            return (_add(a0, b0), _add(a1, b1))
        if isinstance(e, E.Sub):
            (a0, a1), (b0, b1) = self.const_bounds(e.a), self.const_bounds(e.b)
            return (_add(a0, _neg(b1)), _add(a1, _neg(b0)))
        if isinstance(e, E.Mul):
            (a0, a1), (b0, b1) = self.const_bounds(e.a), self.const_bounds(e.b)
            if None in (a0, a1, b0, b1):
                if b0 is not None and b0 == b1:
                    return _scale(a0, a1, b0)
                if a0 is not None and a0 == a1:
                    return _scale(b0, b1, a0)
                if a0 is not None and b0 is not None and a0 >= 0 and b0 >= 0:
                    return (a0 * b0, None)
                return (None, None)
            prods = (a0 * b0, a0 * b1, a1 * b0, a1 * b1)
            return (min(prods), max(prods))
        if isinstance(e, (E.FloorDiv, E.FloorMod)):
            b0, b1 = self.const_bounds(e.b)
            if b0 is None or b0 != b1 or b0 <= 0:
                return self._dtype_bounds(e.dtype)
            a0, a1 = self.const_bounds(e.a)
            if isinstance(e, E.FloorDiv):
                return (None if a0 is None else a0 // b0, None if a1 is None else a1 // b0)
            if a0 is not None and a1 is not None and a0 // b0 == a1 // b0:
                return (a0 % b0, a1 % b0)
            return (0, b0 - 1)
        if isinstance(e, E.Call) and e.op in ("truncdiv", "truncmod"):
            return self.const_bounds(E.FloorDiv(*e.args) if e.op == "truncdiv" else E.FloorMod(*e.args))
        if isinstance(e, (E.Min, E.Max)):
            (a0, a1), (b0, b1) = self.const_bounds(e.a), self.const_bounds(e.b)
            f = min if isinstance(e, E.Min) else max
            lo = f(a0, b0) if a0 is not None and b0 is not None else (
                None if isinstance(e, E.Min) else (a0 if a0 is not None else b0))
            hi = f(a1, b1) if a1 is not None and b1 is not None else (
                None if isinstance(e, E.Max) else (a1 if a1 is not None else b1))
            return (lo, hi)
        if isinstance(e, E.Select) or (isinstance(e, E.Call) and e.op == "if_then_else"):
            t, f = (e.true_value, e.false_value) if isinstance(e, E.Select) else e.args[1:]
            (a0, a1), (b0, b1) = self.const_bounds(t), self.const_bounds(f)
            return (None if a0 is None or b0 is None else min(a0, b0),
                    None if a1 is None or b1 is None else max(a1, b1))
        if isinstance(e, E.Cast) and dt.is_integer(e.dtype) and dt.is_integer(e.value.dtype):
            lo, hi = self.const_bounds(e.value)
            dlo, dhi = dt.value_range(e.dtype)
            if lo is not None and hi is not None and dlo <= lo and hi <= dhi:
                return (lo, hi)
            return (dlo, dhi)
        if isinstance(e, E.CmpOp) or isinstance(e, E.Not):
            return (0, 1)
        return self._dtype_bounds(e.dtype)

    @staticmethod
    def _dtype_bounds(dtype):
        if dt.is_integer(dtype) and dt.lanes_of(dtype) == 1 and dtype not in INDEX_DTYPES:
            return dt.value_range(dtype)
        return (None, None)

    def can_prove(self, cond) -> bool:
        """True if ``cond`` is certainly true under the known ranges."""
        c = self.simplify(cond)
        return isinstance(c, E.IntImm) and c.value == 1

    # ------------------------------------------------------------------ simplification
    def simplify(self, e):
        """An equivalent, simpler expression (constant-folded, canonical linear index math)."""
        if isinstance(e, (E.Var, E.IntImm, E.FloatImm, E.StringImm)):
            return e
        hit = self._memo.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        out = self._simplify(e)
        self._memo[id(e)] = (e, out)     # e is kept alive by the entry, so its id stays its own
        return out

    def _simplify(self, e):
        if isinstance(e, (E.Add, E.Sub, E.Mul)) and e.dtype in INDEX_DTYPES:
            return self._from_linear(self._to_linear(e))
        method = getattr(self, "_s_" + type(e).__name__, None)
        if method is not None:
            return method(e)
        return self._generic(e)

    def _generic(self, e):
        import dataclasses
        changes = {}
        for name in e._children:
            child = getattr(e, name)
            if isinstance(child, tuple):
                new = tuple(self.simplify(c) if isinstance(c, E.PrimExpr) else c for c in child)
                if any(n is not o for n, o in zip(new, child)):
                    changes[name] = new
            elif isinstance(child, E.PrimExpr):
                new = self.simplify(child)
                if new is not child:
                    changes[name] = new
        return dataclasses.replace(e, **changes) if changes else e

    # linear forms
    def _to_linear(self, e) -> _Linear:
        dtype = e.dtype
        if isinstance(e, E.IntImm):
            return _Linear(dtype, const=e.value)
        if isinstance(e, E.Add):
            return self._to_linear(e.a).add(self._to_linear(e.b))
        if isinstance(e, E.Sub):
            return self._to_linear(e.a).add(self._to_linear(e.b), -1)
        if isinstance(e, E.Mul):
            la, lb = self._to_linear(e.a), self._to_linear(e.b)
            if lb.is_const():
                return la.scale(lb.const)
            if la.is_const():
                return lb.scale(la.const)
            atom = E.Mul(self._from_linear(la), self._from_linear(lb))
            return _Linear(dtype, {expr_key(atom): (atom, 1)})
        s = e if isinstance(e, E.Var) else self.simplify(e)
        if isinstance(s, E.IntImm):
            return _Linear(dtype, const=s.value)
        if isinstance(s, (E.Add, E.Sub, E.Mul)) and s.dtype in INDEX_DTYPES and s is not e:
            return self._to_linear(s)
        return _Linear(dtype, {expr_key(s): (s, 1)})

    def _merge_div_mod(self, lin: _Linear) -> None:
        """Rewrite ``(x // c) * (k*c) + (x % c) * k`` into ``x * k``, until no pair is left: so
        a pixel index split into ``(n, oh, ow)`` and recombined, ``(p // 49) * 49 + (p // 7 % 7) * 7
        + p % 7``, becomes ``p`` again (``x // c`` is compared in simplified form, where
        ``p // 7 // 7`` is ``p // 49``)."""
        merged = True
        while merged:
            merged = False
            for key, (atom, coeff) in list(lin.terms.items()):
                if coeff == 0 or not isinstance(atom, E.FloorMod) or not isinstance(atom.b, E.IntImm):
                    continue
                c = atom.b.value
                dkey = expr_key(self.simplify(E.FloorDiv(atom.a, atom.b)))
                if dkey in lin.terms and lin.terms[dkey][1] == coeff * c:
                    del lin.terms[key]
                    del lin.terms[dkey]
                    lin.add(self._to_linear(atom.a).scale(coeff))
                    merged = True
                    break

    def _from_linear(self, lin: _Linear):
        self._merge_div_mod(lin)
        dtype = lin.dtype
        out = None
        for atom, coeff in lin.terms.values():
            if coeff == 0:
                continue
            coeff = dt.wrap_int(coeff, dtype)
            if coeff == 0:
                continue
            mag = abs(coeff)
            if mag > dt.value_range(dtype)[1]:
                mag, coeff = coeff, coeff  # the most negative value has no positive twin
            term = atom if mag == 1 else E.Mul(atom, E.IntImm(dtype, mag))
            if out is None:
                out = term if coeff > 0 else E.Mul(atom, E.IntImm(dtype, coeff))
            else:
                out = E.Add(out, term) if coeff > 0 else E.Sub(out, term)
        const = dt.wrap_int(lin.const, dtype)
        if out is None:
            return E.IntImm(dtype, const)
        if const > 0 or const == dt.value_range(dtype)[0]:
            out = E.Add(out, E.IntImm(dtype, const))
        elif const < 0:
            out = E.Sub(out, E.IntImm(dtype, -const))
        return out

    def _split_by_divisor(self, e, c):
        """``e`` as (quotient part already divided by c, remainder expression)."""
        lin = self._to_linear(e)
        q = _Linear(lin.dtype)
        r = _Linear(lin.dtype)
        for key, (atom, coeff) in lin.terms.items():
            if coeff % c == 0:
                q.terms[key] = (atom, coeff // c)
            else:
                r.terms[key] = (atom, coeff)
        q.const, r.const = lin.const // c, lin.const % c
        return q, r

    def _split_small(self, r: _Linear, c: int):
        """Write ``r`` as ``g * big + small`` with ``g | c`` and ``0 <= small < g``.

        Then ``r // c == big // (c/g)`` and ``r % c == (big % (c/g)) * g + small``: the pattern
        of a vector lane added to a scaled thread index.
        """
        cands = sorted({math.gcd(c, abs(co)) for _, co in r.terms.values() if co}, reverse=True)
        for g in cands:
            if g <= 1:
                continue
            big = _Linear(r.dtype)
            small = _Linear(r.dtype, const=r.const)
            for key, (atom, co) in r.terms.items():
                if co % g == 0:
                    big.terms[key] = (atom, co // g)
                else:
                    small.terms[key] = (atom, co)
            if not big.terms:
                continue
            lo, hi = self.const_bounds(self._from_linear(_Linear(r.dtype, dict(small.terms), small.const)))
            if lo is not None and hi is not None and lo >= 0 and hi < g:
                return big, g, small
        return None

    def _s_FloorDiv(self, e):
        a, b = self.simplify(e.a), self.simplify(e.b)
        if isinstance(a, E.IntImm) and isinstance(b, E.IntImm) and b.value != 0 and a.dtype in INDEX_DTYPES:
            return E.IntImm(a.dtype, a.value // b.value)
        if not (isinstance(b, E.IntImm) and b.value > 0 and a.dtype in INDEX_DTYPES):
            return e if (a is e.a and b is e.b) else E.FloorDiv(a, b)
        c = b.value
        if c == 1:
            return a
        q, r = self._split_by_divisor(a, c)
        r_expr = self._from_linear(r)
        lo, hi = self.const_bounds(r_expr)
        split = self._split_small(r, c)
        if lo is not None and hi is not None and lo >= 0 and hi < c:
            rest = None
        elif split is not None:
            big, g, _ = split
            rest = E.FloorDiv(self._from_linear(big), E.IntImm(a.dtype, c // g))
        elif isinstance(r_expr, E.FloorDiv) and isinstance(r_expr.b, E.IntImm) and r_expr.b.value > 0:
            rest = E.FloorDiv(r_expr.a, E.IntImm(a.dtype, r_expr.b.value * c))
        else:
            rest = E.FloorDiv(r_expr, b)
        if rest is not None:
            q.add(_Linear(a.dtype, {expr_key(rest): (rest, 1)}))
        return self._from_linear(q)

    def _s_FloorMod(self, e):
        a, b = self.simplify(e.a), self.simplify(e.b)
        if isinstance(a, E.IntImm) and isinstance(b, E.IntImm) and b.value != 0 and a.dtype in INDEX_DTYPES:
            return E.IntImm(a.dtype, a.value % b.value)
        if not (isinstance(b, E.IntImm) and b.value > 0 and a.dtype in INDEX_DTYPES):
            return e if (a is e.a and b is e.b) else E.FloorMod(a, b)
        c = b.value
        if c == 1:
            return E.IntImm(a.dtype, 0)
        _, r = self._split_by_divisor(a, c)
        r_expr = self._from_linear(r)
        lo, hi = self.const_bounds(r_expr)
        if lo is not None and hi is not None and lo >= 0 and hi < c:
            return r_expr
        split = self._split_small(r, c)
        if split is not None:
            big, g, small = split
            outer = self.simplify(E.FloorMod(self._from_linear(big), E.IntImm(a.dtype, c // g)))
            return self.simplify(E.Add(E.Mul(outer, E.IntImm(a.dtype, g)), self._from_linear(small)))
        if isinstance(r_expr, E.FloorMod) and isinstance(r_expr.b, E.IntImm) and r_expr.b.value % c == 0:
            return E.FloorMod(r_expr.a, b)
        return E.FloorMod(r_expr, b)

    def _minmax(self, e, is_min):
        a, b = self.simplify(e.a), self.simplify(e.b)
        if isinstance(a, (E.IntImm, E.FloatImm)) and isinstance(b, (E.IntImm, E.FloatImm)):
            v = min(a.value, b.value) if is_min else max(a.value, b.value)
            return type(a)(a.dtype, v)
        if equal(a, b):
            return a
        if dt.is_integer(a.dtype) and dt.lanes_of(a.dtype) == 1:
            lo, hi = self.const_bounds(self.simplify(E.Sub(a, b)) if a.dtype in INDEX_DTYPES else E.Sub(a, b))
            if hi is not None and hi <= 0:
                return a if is_min else b
            if lo is not None and lo >= 0:
                return b if is_min else a
        cls = E.Min if is_min else E.Max
        return e if (a is e.a and b is e.b) else cls(a, b)

    def _s_Min(self, e):
        return self._minmax(e, True)

    def _s_Max(self, e):
        return self._minmax(e, False)

    def _cmp(self, e):
        a, b = self.simplify(e.a), self.simplify(e.b)
        cls = type(e)
        if isinstance(a, (E.IntImm, E.FloatImm)) and isinstance(b, (E.IntImm, E.FloatImm)):
            return E.const(bool(_CMP[cls](a.value, b.value)))
        if a.dtype in INDEX_DTYPES:
            lo, hi = self.const_bounds(self.simplify(E.Sub(a, b)))
            verdict = _decide(cls, lo, hi)
            if verdict is not None:
                return E.const(verdict)
        return e if (a is e.a and b is e.b) else cls(a, b)

    _s_EQ = _s_NE = _s_LT = _s_LE = _s_GT = _s_GE = _cmp

    def _s_And(self, e):
        a, b = self.simplify(e.a), self.simplify(e.b)
        for x, y in ((a, b), (b, a)):
            if isinstance(x, E.IntImm):
                return y if x.value else E.const(False)
        return e if (a is e.a and b is e.b) else E.And(a, b)

    def _s_Or(self, e):
        a, b = self.simplify(e.a), self.simplify(e.b)
        for x, y in ((a, b), (b, a)):
            if isinstance(x, E.IntImm):
                return E.const(True) if x.value else y
        return e if (a is e.a and b is e.b) else E.Or(a, b)

    def _s_Not(self, e):
        a = self.simplify(e.a)
        if isinstance(a, E.IntImm):
            return E.const(not a.value)
        return e if a is e.a else E.Not(a)

    def _s_Select(self, e):
        c = self.simplify(e.condition)
        if isinstance(c, E.IntImm):
            return self.simplify(e.true_value if c.value else e.false_value)
        t, f = self.simplify(e.true_value), self.simplify(e.false_value)
        if equal(t, f):
            return t
        return E.Select(c, t, f)

    def _s_Call(self, e):
        if e.op == "if_then_else":
            c = self.simplify(e.args[0])
            if isinstance(c, E.IntImm):
                return self.simplify(e.args[1] if c.value else e.args[2])
        if e.op == "likely":
            a = self.simplify(e.args[0])
            return a if isinstance(a, E.IntImm) else E.Call(e.dtype, e.op, (a,))
        return self._generic(e)

    def _s_Cast(self, e):
        v = self.simplify(e.value)
        if isinstance(v, (E.IntImm, E.FloatImm)) and dt.lanes_of(e.dtype) == 1:
            if dt.is_float(e.dtype):
                return E.FloatImm(e.dtype, float(v.value))
            if dt.is_bool(e.dtype):
                return E.const(bool(v.value))
            return E.IntImm(e.dtype, dt.wrap_int(int(v.value), e.dtype))
        if v.dtype == e.dtype:
            return v
        return e if v is e.value else E.Cast(e.dtype, v)

    def _arith_fold(self, e):
        a, b = self.simplify(e.a), self.simplify(e.b)
        if isinstance(a, E.IntImm) and isinstance(b, E.IntImm):
            v = _INT_OPS[type(e)](a.value, b.value)
            if v is not None:
                return E.IntImm(a.dtype, dt.wrap_int(v, a.dtype))
        if isinstance(a, E.FloatImm) and isinstance(b, E.FloatImm) and type(e) in _FLOAT_OPS:
            return E.FloatImm(a.dtype, _FLOAT_OPS[type(e)](a.value, b.value))
        return e if (a is e.a and b is e.b) else type(e)(a, b)

    _s_Add = _s_Sub = _s_Mul = _s_Div = _arith_fold

    # ------------------------------------------------------------------ symbolic intervals
    def interval(self, e, dom: dict):
        """Symbolic inclusive bounds ``(lo, hi)`` of ``e`` as variables range over ``dom``.

        ``dom`` maps Var -> (lo_expr, hi_expr); variables not in it are fixed points.
        Returns None where no bound can be derived.
        """
        res = self._interval(e, dom)
        if res is None:
            return None
        return self.simplify(res[0]), self.simplify(res[1])

    def _interval(self, e, dom):
        if isinstance(e, E.Var):
            return dom.get(e, (e, e))
        if isinstance(e, (E.IntImm, E.FloatImm)):
            return (e, e)
        if isinstance(e, (E.Add, E.Sub, E.Mul, E.FloorDiv, E.FloorMod, E.Min, E.Max)):
            ia, ib = self._interval(e.a, dom), self._interval(e.b, dom)
            if ia is None or ib is None:
                return None
            (a0, a1), (b0, b1) = ia, ib
            if isinstance(e, E.Add):
                return (E.Add(a0, b0), E.Add(a1, b1))
            if isinstance(e, E.Sub):
                return (E.Sub(a0, b1), E.Sub(a1, b0))
            if isinstance(e, E.Min):
                return (E.Min(a0, b0), E.Min(a1, b1))
            if isinstance(e, E.Max):
                return (E.Max(a0, b0), E.Max(a1, b1))
            if isinstance(e, E.Mul):
                for (x0, x1), (p0, p1) in (((a0, a1), (b0, b1)), ((b0, b1), (a0, a1))):
                    if equal(p0, p1):
                        lo, _ = self.const_bounds(self.simplify(p0))
                        if lo is not None and lo >= 0:
                            return (E.Mul(x0, p0), E.Mul(x1, p0))
                        hi = self.const_bounds(self.simplify(p0))[1]
                        if hi is not None and hi <= 0:
                            return (E.Mul(x1, p0), E.Mul(x0, p0))
                return None
            c = self.simplify(e.b)
            if not (isinstance(c, E.IntImm) and c.value > 0):
                return None
            if isinstance(e, E.FloorDiv):
                return (E.FloorDiv(a0, c), E.FloorDiv(a1, c))
            if equal(self.simplify(E.FloorDiv(a0, c)), self.simplify(E.FloorDiv(a1, c))):
                return (E.FloorMod(a0, c), E.FloorMod(a1, c))
            return (E.IntImm(e.dtype, 0), E.IntImm(e.dtype, c.value - 1))
        if isinstance(e, E.Cast) and e.dtype in INDEX_DTYPES and e.value.dtype in INDEX_DTYPES:
            r = self._interval(e.value, dom)
            return None if r is None else (E.Cast(e.dtype, r[0]), E.Cast(e.dtype, r[1]))
        if isinstance(e, E.Select) or (isinstance(e, E.Call) and e.op == "if_then_else"):
            t, f = (e.true_value, e.false_value) if isinstance(e, E.Select) else e.args[1:]
            it, i_f = self._interval(t, dom), self._interval(f, dom)
            if it is None or i_f is None:
                return None
            return (E.Min(it[0], i_f[0]), E.Max(it[1], i_f[1]))
        return None


def _add(a, b):
    return None if a is None or b is None else a + b


def _neg(a):
    return None if a is None else -a


def _scale(lo, hi, c):
    lo2 = None if lo is None else lo * c
    hi2 = None if hi is None else hi * c
    return (lo2, hi2) if c >= 0 else (hi2, lo2)


_CMP = {E.EQ: lambda x, y: x == y, E.NE: lambda x, y: x != y, E.LT: lambda x, y: x < y,
        E.LE: lambda x, y: x <= y, E.GT: lambda x, y: x > y, E.GE: lambda x, y: x >= y}

_INT_OPS = {E.Add: lambda x, y: x + y, E.Sub: lambda x, y: x - y, E.Mul: lambda x, y: x * y,
            E.Div: lambda x, y: None}
_FLOAT_OPS = {E.Add: lambda x, y: x + y, E.Sub: lambda x, y: x - y, E.Mul: lambda x, y: x * y,
              E.Div: lambda x, y: x / y if y != 0 else math.copysign(math.inf, x) if x else math.nan}


def _decide(cls, lo, hi):
    """Truth of ``d cmp 0`` for d in [lo, hi], or None if undecided."""
    if cls is E.LT:
        return True if hi is not None and hi < 0 else False if lo is not None and lo >= 0 else None
    if cls is E.LE:
        return True if hi is not None and hi <= 0 else False if lo is not None and lo > 0 else None
    if cls is E.GT:
        return True if lo is not None and lo > 0 else False if hi is not None and hi <= 0 else None
    if cls is E.GE:
        return True if lo is not None and lo >= 0 else False if hi is not None and hi < 0 else None
    if cls is E.EQ:
        if lo is not None and lo == hi:
            return lo == 0
        return False if (lo is not None and lo > 0) or (hi is not None and hi < 0) else None
    if cls is E.NE:
        r = _decide(E.EQ, lo, hi)
        return None if r is None else not r
    return None


def simplify(e, ranges: dict | None = None):
    """Simplify ``e`` given optional constant ranges ``{Var: (lo, hi)}``."""
    an = Analyzer()
    if ranges:
        an.ranges.update(ranges)
    return an.simplify(e)


def linear_terms(analyzer: Analyzer, e) -> tuple:
    """``([(atom, coeff), ...], const)`` with ``e == sum(coeff * atom) + const`` (an index expression)."""
    lin = analyzer._to_linear(e)
    analyzer._merge_div_mod(lin)
    return [(atom, c) for atom, c in lin.terms.values() if c != 0], lin.const


def sum_of_terms(dtype: str, terms, const: int = 0):
    """The expression ``sum(coeff * atom) + const`` of :func:`linear_terms`' form, terms in order."""
    lin = _Linear(dtype, {("t", i): (atom, c) for i, (atom, c) in enumerate(terms)}, const)
    return Analyzer()._from_linear(lin)
