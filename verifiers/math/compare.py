"""Comparison: is a prediction the same answer as a reference? Choice letters and text
answers on strings; then, on parse trees, structure (`\\pm`, containers, intervals,
relations) before values, which an engine (exact or SymPy) decides."""

from __future__ import annotations

import re

from .exact import _NeedSympy, _Unverifiable
from .names import _split_word
from .parse import _parse_cached
from .sympy_engine import _SympyEngine

CORRECT, INCORRECT, UNVERIFIABLE = "correct", "incorrect", "unverifiable"


# ---------------------------------------------------------------- text and choice answers

_TEXT_WORDS = {"no", "yes", "odd", "all", "any", "none", "true", "false", "neither", "both"}


def _is_texty(s: str) -> bool:
    t = re.sub(r"\\(?:begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+", " ", s)
    for w in re.findall(r"[A-Za-z]+", t):
        if w.lower() in _TEXT_WORDS:
            return True
        if len(w) >= 4:
            pieces = _split_word(w)
            if sum(len(p) == 1 for p in pieces) * 2 > len(pieces):
                return True
    return False


def _text_key(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split())


def _choice(ref: str) -> str | None:
    m = re.fullmatch(r"\(([A-Ja-j])\)|([A-J])", ref.strip())
    return (m.group(1) or m.group(2)).upper() if m else None


def _choice_in(pred: str) -> str | None:
    m = re.match(r"(?:option|choice)?\s*\(?([A-Ja-j])\)?(?:$|[\s.:,)])", pred.strip(), re.I)
    return m.group(1).upper() if m else None


# ------------------------------------------------------------------ \pm and containers

_CONTAINERS = {"tuple", "bracket", "set", "list"}
_MAX_ALTERNATIVES = 64


def _alternatives(x):
    """Every reading of x with each ± taken as + and as -."""
    if isinstance(x, tuple) and x and isinstance(x[0], str):
        if x[0] == "pm":
            lefts = [None] if x[1] is None else _alternatives(x[1])
            out = []
            for b in _alternatives(x[2]):
                for a in lefts:
                    out += [b, ("neg", b)] if a is None else [("add", (a, b)), ("add", (a, ("neg", b)))]
                    if len(out) > _MAX_ALTERNATIVES:
                        raise _Unverifiable("too many \\pm alternatives")
            return out
        combos = [()]
        for part in x[1:]:
            combos = [c + (p,) for c in combos for p in _alternatives(part)]
            if len(combos) > _MAX_ALTERNATIVES:
                raise _Unverifiable("too many \\pm alternatives")
        return [(x[0],) + c for c in combos]
    if isinstance(x, tuple):
        combos = [()]
        for part in x:
            combos = [c + (p,) for c in combos for p in _alternatives(part)]
            if len(combos) > _MAX_ALTERNATIVES:
                raise _Unverifiable("too many \\pm alternatives")
        return combos
    return [x]


def _expand_pm(node: tuple) -> tuple:
    if node[0] in ("list", "set"):
        items = [a for item in node[1] for a in _alternatives(item)]
        return (node[0], tuple(items))
    alts = _alternatives(node)
    return alts[0] if len(alts) == 1 else ("set", tuple(alts))


def _is_var_eq(n: tuple) -> bool:
    if n[0] != "rel" or n[1] not in ("=", "in"):
        return False
    lhs = n[2]
    if lhs[0] == "sym":
        return True
    return lhs[0] == "tuple" and all(i[0] == "sym" for i in lhs[1])


def _is_rel(n: tuple) -> bool:
    return n[0] in ("rel", "chain")


def _is_inf(n: tuple) -> bool:
    return n == ("const", "oo") or n == ("neg", ("const", "oo"))


def _intervalish(n: tuple) -> bool:
    if n[0] in ("interval", "union") or n == ("const", "reals"):
        return True
    return n[0] in ("tuple", "bracket") and len(n[1]) == 2 and any(_is_inf(i) for i in n[1])


def _one_var_ineq(n: tuple) -> bool:
    return _is_rel(n) and _as_intervals(n) is not None


_NEG_INF = ("neg", ("const", "oo"))
_POS_INF = ("const", "oo")


def _as_intervals(n: tuple) -> list[tuple] | None:
    """A node read as a list of (lo, hi, lopen, ropen), or None."""
    k = n[0]
    if k == "interval":
        return [n[1:]]
    if k in ("tuple", "bracket") and len(n[1]) == 2:
        return [(n[1][0], n[1][1], k == "tuple", k == "tuple")]
    if n == ("const", "reals"):
        return [(_NEG_INF, _POS_INF, True, True)]
    if k == "union":
        out = []
        for part in n[1]:
            sub = _as_intervals(part)
            if sub is None:
                return None
            out += sub
        return out
    if k == "set" and len(n[1]) == 1:
        return [(n[1][0], n[1][0], False, False)]
    if k == "rel" and n[1] in ("<", ">", "<=", ">="):
        op, a, b = n[1], n[2], n[3]
        if a[0] != "sym":  # 3 < x  ->  x > 3
            if b[0] != "sym":
                return None
            op, a, b = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}[op], b, a
        if op in ("<", "<="):
            return [(_NEG_INF, b, True, op == "<")]
        return [(b, _POS_INF, op == ">", True)]
    if k == "chain" and len(n[1]) == 3 and n[1][1][0] == "sym":
        (a, _, b), (o1, o2) = n[1], n[2]
        if o1 in ("<", "<=") and o2 in ("<", "<="):
            return [(a, b, o1 == "<", o2 == "<")]
        if o1 in (">", ">=") and o2 in (">", ">="):
            return [(b, a, o2 == ">", o1 == ">")]
    return None


def _items(n: tuple) -> tuple:
    return n[1] if n[0] in _CONTAINERS else (n,)


def _rows(n: tuple) -> list[tuple] | None:
    if n[0] == "matrix":
        return list(n[1])
    if n[0] in ("tuple", "bracket"):
        if n[1] and all(i[0] in ("tuple", "bracket") for i in n[1]):
            return [i[1] for i in n[1]]
        return [n[1]]
    return None


def _sorted_by_var(items: tuple) -> tuple:
    if all(i[0] == "rel" and i[1] == "=" and i[2][0] == "sym" for i in items):
        names = [i[2][1] for i in items]
        if len(set(names)) == len(names):
            return tuple(sorted(items, key=lambda i: i[2][1]))
    return items


def _match_unordered(ps, rs, eq) -> bool:
    """Is there a one-to-one pairing of ps with rs under eq? (backtracking, memoized)"""
    if len(ps) != len(rs):
        return False
    memo: dict[tuple[int, int], bool] = {}

    def same(i, j):
        if (i, j) not in memo:
            memo[i, j] = eq(ps[i], rs[j])
        return memo[i, j]

    used = [False] * len(rs)

    def place(i):
        if i == len(ps):
            return True
        for j in range(len(rs)):
            if not used[j] and same(i, j):
                used[j] = True
                if place(i + 1):
                    return True
                used[j] = False
        return False

    return place(0)


def _strip_pct(n: tuple) -> tuple | None:
    if n[0] == "pct":
        return n[1]
    if n[0] == "neg" and n[1][0] == "pct":
        return ("neg", n[1][1])
    return None


def _equal(p: tuple, r: tuple, eng) -> bool:
    """Does prediction tree p state the same answer as reference tree r?"""
    if p == r:
        return True
    if _is_var_eq(p) and not _is_rel(r):
        return _equal(p[3], r, eng)
    if _is_var_eq(r) and not _is_rel(p):
        return _equal(p, r[3], eng)
    if (_intervalish(p) or _intervalish(r) or (_one_var_ineq(p) and r[0] in ("tuple", "bracket"))
            or (_one_var_ineq(r) and p[0] in ("tuple", "bracket"))):
        ip, ir = _as_intervals(p), _as_intervals(r)
        if ip is None or ir is None:
            return False
        return _match_unordered(ip, ir, lambda a, b: a[2:] == b[2:] and _equal(a[0], b[0], eng)
                                and _equal(a[1], b[1], eng))
    if p[0] == "matrix" or r[0] == "matrix":
        mp, mr = _rows(p), _rows(r)
        if mp is None or mr is None:
            return False
        if (len(mp), len(mp[0])) != (len(mr), len(mr[0])):
            vec_p, vec_r = len(mp) == 1 or len(mp[0]) == 1, len(mr) == 1 or len(mr[0]) == 1
            if not (vec_p and vec_r):
                return False
            mp, mr = [tuple(x for row in mp for x in row)], [tuple(x for row in mr for x in row)]
        return all(len(a) == len(b) and all(_equal(x, y, eng) for x, y in zip(a, b))
                   for a, b in zip(mp, mr))
    if p[0] in _CONTAINERS or r[0] in _CONTAINERS:
        pi, ri = _items(p), _items(r)
        if len(pi) != len(ri):
            return False
        if len(ri) == 2 and {p[0], r[0]} == {"tuple", "bracket"}:
            return False  # (a, b) vs [a, b]: open vs closed interval, never the same answer
        if {p[0], r[0]} in ({"set", "tuple"}, {"set", "bracket"}):
            return False  # a set is unordered; a tuple or [..] is ordered (or an interval)
        if r[0] in ("tuple", "bracket"):
            if p[0] == "list":
                pi = _sorted_by_var(pi)
            return all(_equal(a, b, eng) for a, b in zip(pi, ri))
        return _match_unordered(pi, ri, lambda a, b: _equal(a, b, eng))
    if _is_rel(p) or _is_rel(r):
        if not (_is_rel(p) and _is_rel(r)):
            return False
        return _relations_equal(p, r, eng)
    if p[0] in ("interval", "union", "pm") or r[0] in ("interval", "union", "pm"):
        return False
    pp, rp = _strip_pct(p), _strip_pct(r)
    if pp is not None and rp is not None:
        return eng.scalar(pp, rp)
    if pp is not None:
        return eng.scalar(pp, r) or eng.scalar(p, r)
    if rp is not None:
        return eng.scalar(p, rp) or eng.scalar(p, r)
    return eng.scalar(p, r)


def _sub(a: tuple, b: tuple) -> tuple:
    return ("add", (a, ("neg", b)))


def _ineq_form(n: tuple) -> tuple[tuple, str] | None:
    op, a, b = n[1], n[2], n[3]
    if op == "<":
        return _sub(b, a), ">"
    if op == "<=":
        return _sub(b, a), ">="
    if op == ">":
        return _sub(a, b), ">"
    if op == ">=":
        return _sub(a, b), ">="
    if op == "!=":
        return _sub(a, b), "!="
    return None


def _relations_equal(p: tuple, r: tuple, eng) -> bool:
    if p[0] == "chain" or r[0] == "chain":
        ip, ir = _as_intervals(p), _as_intervals(r)
        if ip is not None and ir is not None:
            return _equal(("union", tuple(("interval",) + i for i in ip)),
                          ("union", tuple(("interval",) + i for i in ir)), eng)
        if p[0] == r[0] == "chain" and p[2] == r[2] and len(p[1]) == len(r[1]):
            return all(eng.scalar(a, b) for a, b in zip(p[1], r[1]))
        return False
    if p[1] == "=" and r[1] == "=":
        return eng.proportional(_sub(p[2], p[3]), _sub(r[2], r[3]), positive=False)
    if p[1] == "in" or r[1] == "in":
        return p[1] == r[1] and _equal(p[2], r[2], eng) and _equal(p[3], r[3], eng)
    fp, fr = _ineq_form(p), _ineq_form(r)
    if fp is None or fr is None or fp[1] != fr[1]:
        return False
    return eng.proportional(fp[0], fr[0], positive=fp[1] != "!=")


# ------------------------------------------------------------------------ the decision


def _decide(pred: str, ref: str, eng) -> tuple[str | None, str]:
    """Verdict for normalized strings; (None, "") when the exact engine needs SymPy."""
    if pred == ref:
        return CORRECT, "identical after normalization"
    letter = _choice(ref)
    if letter:
        got = _choice_in(pred)
        if got is None:
            return INCORRECT, "reference is a choice letter; prediction names none"
        return (CORRECT if got == letter else INCORRECT), f"choice {got} vs {letter}"
    if _is_texty(ref):
        same = _text_key(pred) == _text_key(ref)
        return (CORRECT if same else INCORRECT), "text answer " + ("matches" if same else "differs")
    ok, rtree = _parse_cached(ref)
    if not ok:
        return UNVERIFIABLE, f"reference unparsable: {rtree}"
    ok, ptree = _parse_cached(pred)
    if not ok:
        if _is_texty(pred):
            return INCORRECT, "prediction is text, reference is math"
        return UNVERIFIABLE, f"prediction unparsable: {ptree}"
    try:
        same = _equal(_expand_pm(ptree), _expand_pm(rtree), eng)
    except _NeedSympy:
        return None, ""
    except _Unverifiable as e:
        return UNVERIFIABLE, str(e)
    how = "sympy" if isinstance(eng, _SympyEngine) else "exact"
    return (CORRECT, f"equivalent ({how})") if same else (INCORRECT, f"not equivalent ({how})")
