"""The SymPy engine, used only inside worker processes: structural equality, numeric
evaluation at 30 digits, and identity testing at fixed sample points. SymPy is imported
inside the functions, so importing this module stays light."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from .exact import (MIN_ROUNDING_DIGITS, _decimal_literal, _exponent, _ExactEngine, _NeedSympy,
                    _num_value, _Unverifiable)

REL_TOL = 1e-9  # relative tolerance for irrational values (30-digit evaluation)
_MAX_BITS = 2_000_000  # an integer power larger than this is not evaluated
_MAX_FACTORIAL = 10_000
_N_POINTS = 6


@lru_cache(maxsize=1)
def _points_table() -> list[list]:
    import random

    import sympy

    rng = random.Random(20240601)
    table = []
    for k in range(_N_POINTS):
        row = []
        for _ in range(40):
            v = rng.uniform(0.25, 2.75)
            if k >= 3 and rng.random() < 0.5:
                v = -v
            row.append(sympy.Float(f"{v:.9f}", 30))
        table.append(row)
    return table


@lru_cache(maxsize=4096)
def _to_sympy(node: tuple):
    import sympy as sp

    k = node[0]
    if k == "num":
        if _exponent(node[1]) * 4 > _MAX_BITS:  # 10**e has about 3.3 e bits
            raise _Unverifiable("number too large to evaluate")
        mant, _, exp = node[1].lower().partition("e")
        v = _num_value(mant) if mant else Fraction(0)
        return sp.Rational(v.numerator, v.denominator) * sp.Integer(10) ** int(exp or 0)
    if k == "sym":
        return sp.Symbol(node[1])
    if k == "const":
        consts = {"pi": sp.pi, "E": sp.E, "I": sp.I, "oo": sp.oo}
        if node[1] not in consts:
            raise _Unverifiable(f"{node[1]} is not a number")
        return consts[node[1]]
    if k == "add":
        return sp.Add(*[_to_sympy(t) for t in node[1]])
    if k == "mul":
        return sp.Mul(*[_to_sympy(t) for t in node[1]])
    if k == "neg":
        return -_to_sympy(node[1])
    if k == "div":
        return _to_sympy(node[1]) / _to_sympy(node[2])
    if k == "pct":
        return _to_sympy(node[1]) / 100
    if k == "pow":
        base, exp = _to_sympy(node[1]), _to_sympy(node[2])
        if base.is_Rational and exp.is_Integer and abs(base) != 1 and base != 0:
            bits = max(base.p.bit_length(), base.q.bit_length())
            if abs(int(exp)) * bits > _MAX_BITS:
                raise _Unverifiable("number too large to evaluate")
        return sp.Pow(base, exp)
    if k == "fact":
        x = _to_sympy(node[1])
        if x.is_Integer and x > _MAX_FACTORIAL:
            raise _Unverifiable("factorial too large to evaluate")
        return sp.factorial(x)
    if k == "func":
        name, args = node[1], [_to_sympy(a) for a in node[2]]
        if name in ("factorial", "binomial") and args[0].is_Integer and args[0] > _MAX_FACTORIAL:
            raise _Unverifiable(f"{name} too large to evaluate")
        fn = {"abs": sp.Abs, "sign": sp.sign}.get(name) or getattr(sp, name, None)
        if fn is None:
            raise _Unverifiable(f"unknown function {name}")
        return fn(*args)
    raise _Unverifiable(f"cannot evaluate a {k} here")


def _mp(v):
    """A finite SymPy number as an mpmath mpc, else None."""
    import mpmath
    import sympy as sp

    if not v.is_number or v.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return None
    re_, im_ = v.as_real_imag()
    try:
        return mpmath.mpc(re_._to_mpmath(110), im_._to_mpmath(110))
    except (AttributeError, TypeError, ValueError):
        return None


def _close(a, b, floor: float = 0.0) -> bool:
    import mpmath

    d = mpmath.fabs(a - b)
    return d <= REL_TOL * max(mpmath.fabs(a), mpmath.fabs(b)) or d <= floor


def _values(exprs: list, syms: list):
    """Each expression evaluated at each sample point: one list of mpc|None per point."""
    if len(syms) > 40:
        raise _Unverifiable("too many variables")
    table = _points_table()
    for row in table:
        subs = {s: row[i] for i, s in enumerate(syms)}
        yield [_mp(e.evalf(30, subs=subs)) for e in exprs]


class _SympyEngine(_ExactEngine):
    def scalar(self, p: tuple, r: tuple) -> bool:
        try:
            return super().scalar(p, r)
        except _NeedSympy:
            pass
        a, b = _to_sympy(p), _to_sympy(r)
        if a == b:
            return True
        syms = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
        if not syms:
            va, vb = _mp(a.evalf(30)), _mp(b.evalf(30))
            if va is None or vb is None:
                return False
            if _close(va, vb):
                return True
            lp, lr = _decimal_literal(p), _decimal_literal(r)
            for lit, other in ((lp, vb), (lr, va)):
                if lit is not None and (lr if lit is lp else lp) is None and other.imag == 0:
                    if lit[2] >= MIN_ROUNDING_DIGITS:
                        import mpmath
                        half = mpmath.mpf(10) ** (-lit[1]) / 2
                        target = mpmath.mpf(lit[0].numerator) / lit[0].denominator
                        if mpmath.fabs(other.real - target) <= half * (1 + 1e-12):
                            return True
            return False
        finite = 0
        for va, vb in _values([a, b], syms):
            if va is None or vb is None:
                continue
            if not _close(va, vb, 1e-20):
                return False
            finite += 1
        if finite >= 2:
            return True
        import sympy as sp
        return sp.simplify(a - b) == 0

    def proportional(self, d1: tuple, d2: tuple, positive: bool) -> bool:
        try:
            return super().proportional(d1, d2, positive)
        except _NeedSympy:
            pass
        import sympy as sp

        n1 = sp.fraction(sp.together(_to_sympy(d1)))[0]
        n2 = sp.fraction(sp.together(_to_sympy(d2)))[0]
        if n1 == n2:
            return True
        syms = sorted(n1.free_symbols | n2.free_symbols, key=lambda s: s.name)
        ratio, informative = None, 0
        for v1, v2 in _values([n1, n2], syms):
            if v1 is None or v2 is None:
                continue
            z1, z2 = abs(v1) < 1e-20, abs(v2) < 1e-20
            if z1 and z2:
                continue
            if z1 != z2:
                return False
            q = v1 / v2
            if ratio is None:
                ratio = q
            elif not _close(q, ratio):
                return False
            informative += 1
        if informative < 2 and syms:
            raise _Unverifiable("could not evaluate the equations")
        if ratio is None:
            return False
        if positive:
            return abs(ratio.imag) <= REL_TOL * abs(ratio) and ratio.real > 0
        return True
