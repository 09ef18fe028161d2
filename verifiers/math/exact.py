"""The exact engine: rational arithmetic and polynomial / rational-function identity in
pure Python, run in the calling process. What it cannot settle raises `_NeedSympy`.

An engine answers two questions about parse trees (see `compare`, which asks them):
`scalar(p, r)`, do two values agree, and `proportional(d1, d2, positive)`, are two
expressions equal up to a nonzero (or positive) constant factor. `_Unverifiable`, raised by
any layer above the parser, means the pair cannot be judged at all."""

from __future__ import annotations

from fractions import Fraction

MIN_ROUNDING_DIGITS = 3  # significant digits a decimal needs to count as a rounding


class _Unverifiable(Exception):
    """The pair cannot be judged (too large, undefined, ...)."""


class _NeedSympy(Exception):
    """The exact pure-Python engine cannot decide; the SymPy worker must."""


# Values are rational functions P/Q with P, Q polynomials {monomial: Fraction}; a
# monomial is a sorted tuple of (symbol, exponent). pi, e and i are kept as formal symbols
# ("@pi", "@E", "@I"): equality of formal expressions is sound, inequality is not, so a
# difference involving them goes to SymPy.

_MAX_TERMS = 400
_MAX_DEG = 64
_MAX_BITS_LOCAL = 20_000
_SPECIAL = {"pi": "@pi", "E": "@E", "I": "@I"}
_ONE = {(): Fraction(1)}


_MAX_EXP_LOCAL = 5_000  # decimal exponents the exact engine expands (1e5000 ~ 17k bits)


def _exponent(text: str) -> int:
    """|exponent| of a number literal ("1.5e-20" -> 20)."""
    exp = text.lower().partition("e")[2]
    return abs(int(exp)) if exp else 0


def _num_value(text: str) -> Fraction:
    """Exact value of a number literal. `1e999999999` would be a 10**999999999 integer
    built in this process with no timeout: a larger exponent than _MAX_EXP_LOCAL goes to
    the SymPy worker (which has a timeout and its own bound)."""
    if _exponent(text) > _MAX_EXP_LOCAL:
        raise _NeedSympy
    return Fraction(text) if not text.endswith(".") else Fraction(text[:-1])


def _padd(a: dict, b: dict) -> dict:
    out = dict(a)
    for m, c in b.items():
        v = out.get(m, 0) + c
        if v:
            out[m] = v
        else:
            out.pop(m, None)
    return out


def _pscale(a: dict, c: Fraction) -> dict:
    return {m: v * c for m, v in a.items()} if c else {}


def _pmul(a: dict, b: dict) -> dict:
    if len(a) * len(b) > 20 * _MAX_TERMS:
        raise _NeedSympy
    out: dict = {}
    for m1, c1 in a.items():
        for m2, c2 in b.items():
            if not m1:
                m = m2
            elif not m2:
                m = m1
            else:
                d = dict(m1)
                for s, e in m2:
                    d[s] = d.get(s, 0) + e
                if sum(d.values()) > _MAX_DEG:
                    raise _NeedSympy
                m = tuple(sorted(d.items()))
            v = out.get(m, 0) + c1 * c2
            if v:
                out[m] = v
            else:
                out.pop(m, None)
    if len(out) > _MAX_TERMS:
        raise _NeedSympy
    return out


def _pconst(p: dict) -> Fraction | None:
    if not p:
        return Fraction(0)
    if len(p) == 1 and () in p:
        return p[()]
    return None


def _rnorm(P: dict, Q: dict) -> tuple[dict, dict]:
    q = _pconst(Q)
    if q is not None:
        if q == 0:
            raise _Unverifiable("division by zero")
        return (_pscale(P, 1 / q), _ONE) if q != 1 else (P, Q)
    return P, Q


def _rpow(base: tuple[dict, dict], n: int) -> tuple[dict, dict]:
    P, Q = base
    if n < 0:
        if not P:
            raise _Unverifiable("division by zero")
        P, Q, n = Q, P, -n
    c = _pconst(P)
    if c is not None and _pconst(Q) == 1:
        if n * max(c.numerator.bit_length(), c.denominator.bit_length()) > _MAX_BITS_LOCAL:
            raise _NeedSympy
        return ({(): c**n} if c**n else {}), _ONE
    if n > _MAX_DEG:
        raise _NeedSympy
    rp, rq, bp, bq = _ONE, _ONE, P, Q
    while n:
        if n & 1:
            rp, rq = _pmul(rp, bp), _pmul(rq, bq)
        n >>= 1
        if n:
            bp, bq = _pmul(bp, bp), _pmul(bq, bq)
    return _rnorm(rp, rq)


def _rat(node: tuple) -> tuple[dict, dict]:
    """Exact value of node as a rational function, or _NeedSympy."""
    k = node[0]
    if k == "num":
        v = _num_value(node[1])
        return ({(): v} if v else {}), _ONE
    if k == "sym":
        return {((node[1], 1),): Fraction(1)}, _ONE
    if k == "const":
        if node[1] in _SPECIAL:
            return {((_SPECIAL[node[1]], 1),): Fraction(1)}, _ONE
        raise _NeedSympy
    if k == "neg":
        P, Q = _rat(node[1])
        return _pscale(P, Fraction(-1)), Q
    if k == "add":
        P, Q = {}, _ONE
        for t in node[1]:
            tp, tq = _rat(t)
            if tq == Q:
                P = _padd(P, tp)
            else:
                P, Q = _padd(_pmul(P, tq), _pmul(tp, Q)), _pmul(Q, tq)
        return _rnorm(P, Q)
    if k == "mul":
        P, Q = _ONE, _ONE
        for f in node[1]:
            fp, fq = _rat(f)
            P, Q = _pmul(P, fp), (Q if fq is _ONE else _pmul(Q, fq))
        return _rnorm(P, Q)
    if k == "div":
        ap, aq = _rat(node[1])
        bp, bq = _rat(node[2])
        if not bp:
            raise _Unverifiable("division by zero")
        return _rnorm(_pmul(ap, bq), _pmul(aq, bp))
    if k == "pow":
        e = _rat(node[2])
        n = _pconst(e[0]) if _pconst(e[1]) == 1 else None
        if n is None or n.denominator != 1:
            raise _NeedSympy
        base = _rat(node[1])
        if n == 0:
            return _ONE, _ONE
        return _rpow(base, int(n))
    if k == "pct":
        P, Q = _rat(node[1])
        return _pscale(P, Fraction(1, 100)), Q
    if k in ("fact", "func"):
        name = "factorial" if k == "fact" else node[1]
        args = (node[1],) if k == "fact" else node[2]
        vals = []
        for a in args:
            P, Q = _rat(a)
            c = _pconst(P) if Q is _ONE or _pconst(Q) == 1 else None
            if c is None or any(s.startswith("@") for m in P for s, _ in m):
                raise _NeedSympy
            vals.append(c)
        return _const_func(name, vals)
    raise _NeedSympy


def _const_func(name: str, vals: list[Fraction]) -> tuple[dict, dict]:
    import math as _m

    def const(v):
        return ({(): Fraction(v)} if v else {}), _ONE

    if name == "factorial" and len(vals) == 1 and vals[0].denominator == 1 and 0 <= vals[0] <= 300:
        return const(_m.factorial(int(vals[0])))
    if name == "abs" and len(vals) == 1:
        return const(abs(vals[0]))
    if name in ("floor", "ceiling") and len(vals) == 1:
        return const(_m.floor(vals[0]) if name == "floor" else _m.ceil(vals[0]))
    if name == "binomial" and len(vals) == 2 and all(v.denominator == 1 and 0 <= v <= 1000 for v in vals):
        return const(_m.comb(int(vals[0]), int(vals[1])))
    if name == "sqrt" and len(vals) == 1 and vals[0] >= 0:
        a, b = _m.isqrt(vals[0].numerator), _m.isqrt(vals[0].denominator)
        if a * a == vals[0].numerator and b * b == vals[0].denominator:
            return const(Fraction(a, b))
    raise _NeedSympy


def _has_special(R: tuple[dict, dict]) -> bool:
    return any(s.startswith("@") for part in R for m in part for s, _ in m)


def _decimal_literal(node: tuple) -> tuple[Fraction, int, int] | None:
    """(value, decimal places, significant digits) of a literal written with a decimal point
    (optionally negated, in percent, or times a power of ten), else None."""
    sign, shift = 1, 0
    if node[0] == "neg":
        sign, node = -1, node[1]
    if node[0] == "pct":
        shift, node = 2, node[1]
    if (node[0] == "mul" and len(node[1]) == 2 and node[1][1][0] == "pow"
            and node[1][1][1] == ("num", "10")):
        e = node[1][1][2]
        neg = e[0] == "neg"
        e = e[1] if neg else e
        if e[0] != "num" or not e[1].isdigit() or len(e[1]) > 4:
            return None
        shift -= -int(e[1]) if neg else int(e[1])
        node = node[1][0]
    if node[0] != "num":
        return None
    mant, _, exp = node[1].lower().partition("e")
    if "." not in mant:
        return None
    whole, frac = mant.split(".")
    dp = len(frac) - int(exp or 0) + shift
    sig = len((whole + frac).lstrip("0"))
    return sign * Fraction(node[1]) / Fraction(10) ** shift, dp, sig


def _rounds_to(lit: tuple[Fraction, int, int] | None, other_is_literal: bool, value) -> bool:
    """Is decimal literal `lit` the rounding of `value` to its decimal places?"""
    if lit is None or other_is_literal or lit[2] < MIN_ROUNDING_DIGITS:
        return False
    half = Fraction(1, 2) / Fraction(10) ** lit[1] if lit[1] >= 0 else Fraction(10) ** (-lit[1]) / 2
    return abs(value - lit[0]) <= half


class _ExactEngine:
    """Decides what exact rational/polynomial arithmetic can; raises _NeedSympy otherwise."""

    def scalar(self, p: tuple, r: tuple) -> bool:
        a, b = _rat(p), _rat(r)
        if _padd(_pmul(a[0], b[1]), _pscale(_pmul(b[0], a[1]), Fraction(-1))) == {}:
            return True
        ca = _pconst(a[0]) if _pconst(a[1]) == 1 else None
        cb = _pconst(b[0]) if _pconst(b[1]) == 1 else None
        if ca is not None and cb is not None:
            lp, lr = _decimal_literal(p), _decimal_literal(r)
            return _rounds_to(lp, lr is not None, cb) or _rounds_to(lr, lp is not None, ca)
        if _has_special(a) or _has_special(b):
            raise _NeedSympy
        return False

    def proportional(self, d1: tuple, d2: tuple, positive: bool) -> bool:
        a, b = _rat(d1), _rat(d2)
        n1, n2 = a[0], b[0]
        c = _proportion(n1, n2)
        if _pconst(a[1]) != 1 or _pconst(b[1]) != 1:  # denominators: numerators may share factors
            if c is not None and not positive:
                return True
            raise _NeedSympy
        if c is not None:
            return c > 0 or not positive
        if _has_special(a) or _has_special(b):
            raise _NeedSympy
        return False


def _proportion(n1: dict, n2: dict) -> Fraction | None:
    """c with n1 == c * n2 (c != 0), else None."""
    if not n1 or not n2:
        return Fraction(1) if not n1 and not n2 else None
    if n1.keys() != n2.keys():
        return None
    m = next(iter(n2))
    c = n1[m] / n2[m]
    return c if all(n1[k] == c * n2[k] for k in n2) else None
