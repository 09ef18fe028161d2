"""Math answer verification: pull the final answer out of a model response, compare it with
a gold answer, and say `correct`, `incorrect` or `unverifiable`.

    check_math(response, reference, *, timeout=5.0) -> MathResult
    check_math_batch(pairs, *, workers=None, timeout=5.0) -> list[MathResult]

Both are pure functions: they never raise on untrusted input, and a check that runs over its
timeout ends as `unverifiable`. Timeouts are enforced by killing a worker process, not with
`signal.alarm`, so they work from any thread, process or Ray actor.

Comparison order (the first step that decides wins):
 1. Extraction from the response: the last complete `\\boxed{...}` / `\\fbox{...}` (nested
    braces allowed; an unbalanced one is `unverifiable`); else the text after the last
    "final answer is" / "answer:"; else the whole response when it is a bare answer (not
    prose; there is no guessing of the last number in free text). Nothing found is
    `unverifiable`.
 2. String normalization of both sides (same rules): math delimiters, `\\left`/`\\right`,
    spacing commands, `\\text{}`/`\\mbox{}`/`\\mathrm{}` (kept as words), a trailing unit
    ("5 cm", "10\\text{ km/h}^2"), degrees (`^\\circ`), currency signs, thousands separators
    (`1,000`, `1{,}000`, `1\\,000`), `\\dfrac`/`\\tfrac`, "or"/"and" between answers. Equal
    strings are `correct`.
 3. Multiple choice: a reference that is one capital letter A-J (or "(a)") matches the
    prediction's leading choice letter ("B", "(B)", "(B) 12"), case-insensitively. So a
    reference of just "E" is a choice letter, not Euler's number.
 4. Text answers: a reference made of words ("even", "no solution") matches the same words.
 5. Both sides are parsed (our own LaTeX/SymPy-syntax parser; never `eval`) into a small
    tree: numbers, symbols, + - * / ^ !, functions, relations, tuples, sets, lists,
    intervals, unions, matrices. Unparsable input is `unverifiable`.
 6. Structure, before any value: `\\pm` expands to a set of two answers; `x = v` (a lone
    variable on the left) compares as `v` when the other side is not an equation; intervals
    need equal endpoints and equal open/closed ends (`(a, b)` is an open interval when the
    other side is an interval or an inequality in one variable, which is turned into one);
    tuples, `[a, b]` and matrices are ordered (a `(..)` vs `[..]` pair of two never matches:
    it may be an interval); sets and bare lists ("1, 2") are unordered; one element equals a
    one-element container; a list of `x = ..`, `y = ..` is sorted by variable name before an
    ordered comparison.
 7. Values, cheap first: exact rational arithmetic and polynomial/rational-function
    identity in pure Python (`(r+5)^2` vs `r^2+10r+25`, `47/2` vs `23.5`), in the calling
    process. Only what that cannot settle (irrationals, functions, pi) goes to a SymPy worker
    process: structural equality, then numeric evaluation at 30 digits. Expressions with
    free symbols are compared at 6 fixed pseudo-random points (mixed signs); equal at every
    point where both are finite is `correct` (a probabilistic identity test: `sec^2 y` vs
    `tan^2 y + 1`). Equations `l = r` compare the numerators of `l - r`: equal up to a
    nonzero constant factor (rearrangement and scaling; `2x+1=0` vs `x+1=0` is not).
    Inequalities likewise with a positive factor and the same strictness.

Asymmetry: the reference is the gold answer. It is never searched for an answer (only
normalized), a reference that does not parse makes the pair `unverifiable`, a texty
reference switches to word comparison, and a choice-letter reference asks the prediction for
a letter. The prediction is extracted from free text. Containers: a set/list reference
accepts the prediction in any order; a tuple/`[..]` reference needs the written order.

Percent policy: `p%` on one side only matches either `p` or `p/100` on the other
(`25%` vs `25` and `25%` vs `0.25` are both correct); `%` on both sides compares `p`s.

Tolerance: two exact rationals must be exactly equal (decimals are exact: `0.001` vs
`0.0011`, `1e-10` vs `2e-10` are incorrect). Irrational values compare with a relative
tolerance of 1e-9 at 30 significant digits (no absolute tolerance, so tiny different values
stay different). A decimal literal with at least 3 significant digits also matches a value
that is not itself a decimal literal if it is that value rounded to the literal's decimal
places (`0.333` vs `1/3`, `3.14` vs `pi`, `33.3%` vs `1/3`; not `0.33` vs `1/3`).

Other conventions: `i` and `I` are the imaginary unit, `e`/`E` is Euler's number, `log` is
natural, a number directly followed by a `\\frac` of integers is a mixed number
(`3\\frac{1}{2}` = 3.5), `^` takes the whole number after it (`2^10` = 1024), and `a^\\circ`
compares as `a` (no degree/radian conversion).

Not covered: units are stripped, not converted (`100 cm` vs `1 m` is incorrect); calculus
operators (`\\int`, `\\sum`, `\\lim`, derivatives) and set-builder notation are
unparsable; `\\cdots` sequences; equations are not solved (`x^2 = 4` vs `x = 2` is
incorrect); equivalence of inequalities is by scaling only; intervals in a union are matched
one to one, not merged; numeric identity testing can in principle call two different
functions equal when they agree at all six points (e.g. piecewise functions).

Bounds (so a check stays cheap on any input): answers over MAX_ANSWER_CHARS, nested deeper
than MAX_TREE_DEPTH, or with numbers past 10^±500000 are `unverifiable`; exponents past
10^±5000 are left to the SymPy worker, which has the timeout. `extract_answer` and the
checks accept any value (bytes as UTF-8, others by `str()`) and never raise.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

__all__ = ["MathResult", "check_math", "check_math_batch", "extract_answer", "normalize_answer"]

CORRECT, INCORRECT, UNVERIFIABLE = "correct", "incorrect", "unverifiable"

MAX_ANSWER_CHARS = 2000  # longer extracted answers are unverifiable (parse cost stays bounded)
MAX_DEPTH = 60  # bracket nesting the parser accepts
MAX_TREE_DEPTH = 120  # nesting of a parsed answer (chains like 1/2/3/..., - - 1, 2^2^2 count)
REL_TOL = 1e-9  # relative tolerance for irrational values (30-digit evaluation)
MIN_ROUNDING_DIGITS = 3  # significant digits a decimal needs to count as a rounding
STARTUP_TIMEOUT = 60.0  # a worker must import SymPy within this (not charged to a check)


@dataclass(frozen=True)
class MathResult:
    """Outcome of one check. `predicted` is the extracted answer and `reference` the gold
    answer, both normalized the same way; `reason` says which rule decided."""

    verdict: str  # "correct" | "incorrect" | "unverifiable"
    predicted: str | None
    reference: str
    reason: str

    @property
    def correct(self) -> bool:
        return self.verdict == CORRECT


class _Unverifiable(Exception):
    """The pair cannot be judged (too large, undefined, ...)."""


class _NeedSympy(Exception):
    """The exact pure-Python engine cannot decide; the SymPy worker must."""


class _ParseError(Exception):
    pass


# --------------------------------------------------------------------------- extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_RE = re.compile(r"(?:final\s+answer|answer)\s*(?:is\s*:?|:|=)\s*", re.I)
_BARE_BOX_RE = re.compile(r"[^\s$]+")  # the answer of "\boxed 5"


class _Unbalanced(Exception):
    pass


def _match_brace(s: str, i: int) -> int:
    """Index of the `}` closing the `{` at s[i], or -1. Escaped braces do not count."""
    depth, j, n = 0, i, len(s)
    while j < n:
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def _last_boxed(text: str) -> str | None:
    last, pos = None, 0
    while True:
        m = _BOX_RE.search(text, pos)
        if not m:
            return last
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            end = _match_brace(text, j)
            if end < 0:
                raise _Unbalanced
            last, pos = text[j + 1 : end], end + 1
        else:  # "\boxed 5"
            m2 = _BARE_BOX_RE.match(text, j)  # at j, without copying text[j:] (quadratic)
            if m2:
                last, pos = m2.group(0), m2.end()
            else:
                pos = j


def _after_marker(text: str) -> str | None:
    last = None
    for m in _ANSWER_RE.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end() :].lstrip(" *_:")
    for open_, close in (("$$", r"\$\$"), ("$", r"(?<!\\)\$"), ("\\(", r"\\\)"), ("\\[", r"\\\]")):
        if rest.startswith(open_):
            end = re.compile(close).search(rest, len(open_))
            if end:
                return rest[len(open_) : end.start()]
    line = rest.split("\n", 1)[0]
    line = re.split(r"\.(?:\s|$)", line, maxsplit=1)[0]
    return line.strip(" *_.") or None


def _is_prose(text: str) -> bool:
    t = re.sub(r"\\(?:begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+", " ", text)
    words = [w for w in re.findall(r"[A-Za-z]{2,}", t) if w not in _PLAIN_NAMES]
    return len(words) > 3


def extract_answer(response: str) -> str | None:
    """The final answer in a response (see the module docstring), or None (also for a
    `\\boxed{` that never closes). Never raises on a string."""
    try:
        return _extract(response)
    except _Unbalanced:
        return None


def _extract(response: str) -> str | None:
    """`extract_answer`, but raises _Unbalanced for a `\\boxed{` that never closes."""
    boxed = _last_boxed(response)
    if boxed is not None:
        return boxed
    marked = _after_marker(response)
    if marked is not None:
        return marked
    t = response.strip()
    if t and len(t) <= MAX_ANSWER_CHARS and not _is_prose(t):
        return t
    return None


# ------------------------------------------------------------------------ normalization

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u00d7": "\\times ", "\u22c5": "\\cdot ", "\u00b7": "\\cdot ",
    "\u00f7": "\\div ", "\u221a": "\\sqrt ", "\u03c0": "\\pi ", "\u221e": "\\infty ",
    "\u2264": "\\le ", "\u2265": "\\ge ", "\u2260": "\\ne ", "\u222a": "\\cup ", "\u00b0": "^\\circ",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2248": "\\approx ", "\u00b1": "\\pm ",
}
_WRAP_CMDS = (r"text|textrm|textnormal|textbf|textit|textsf|texttt|mbox|hbox|mathrm|mathbf|"
              r"mathit|mathsf|mathtt|mathnormal|boldsymbol|bm|operatorname|emph|rm")
_WRAP_RE = re.compile(r"\\(?:%s)\s*\{([^{}]*)\}" % _WRAP_CMDS)
_TEXT_UNIT_RE = re.compile(
    r"(?s)(.*?[\w}).%|]\s*)\\(?:text|mbox|mathrm|textrm|textnormal|rm)\s*\{(\s*[A-Za-z][A-Za-z .,/\-]*)\}"
    r"(\s*\^\s*\{?\s*\d\s*\}?)?\s*")
_WORD_UNIT_RE = re.compile(r"(.*?[\d}).%])\s+([A-Za-z][A-Za-z./\- ]*?(?:\^\{?\d\}?)?)")


def _strip_delims(s: str) -> str:
    s = s.strip()
    for open_, close in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(open_) and s.endswith(close) and len(s) >= len(open_) + len(close):
            return s[len(open_) : len(s) - len(close)].strip()
    m = _BOX_RE.match(s)
    if m and s[m.end() :].lstrip().startswith("{"):
        j = s.index("{", m.end())
        if _match_brace(s, j) == len(s) - 1:
            return s[j + 1 : -1].strip()
    return s


def _strip_text_unit(s: str) -> str:
    m = _TEXT_UNIT_RE.fullmatch(s)
    if not m:
        return s
    head, unit = m.group(1).strip(), m.group(2)
    letters = re.sub(r"[^A-Za-z]", "", unit)
    if unit.strip().lower() in ("or", "and") or not head or head[-1] in "+-*/^=(,":
        return s
    if len(letters) >= 2 or unit[:1].isspace():
        return head
    return s


def _strip_word_unit(s: str) -> str:
    m = _WORD_UNIT_RE.fullmatch(s)
    if not m:
        return s
    head, unit = m.group(1), m.group(2)
    if re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", head)):
        return s  # the head has variables: "x + 5 cm" is not a number with a unit
    words = re.findall(r"[A-Za-z]+", unit)
    if len(words[0]) < 2 or any(w in _PLAIN_NAMES or w in ("or", "and") for w in words):
        return s
    return head


def normalize_answer(s: str) -> str:
    """Canonical string form of an answer (both sides go through this)."""
    s = str(s)
    for k, v in _UNICODE.items():
        if k in s:
            s = s.replace(k, v)
    for _ in range(6):
        old = s
        s = _strip_delims(s).rstrip(".").strip()
        if s == old:
            break
    s = re.sub(r"\\(?:left|right)\s*\.", "", s)
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dtc]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![A-Za-z])", r"\\binom", s)
    s = re.sub(r"(?<=\d)(?:\{,\}|\\,|\\!|\\ |~|\\;|\\:)(?=\d{3}(?!\d))", "", s)
    s = s.replace("{,}", ",")
    s = re.sub(r"\\(?:quad|qquad|displaystyle|textstyle|limits|nolimits|hfill)(?![A-Za-z])|(?<!\\)\\[;,:!> ]|~", " ", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ(?![A-Za-z])|\\degree(?![A-Za-z])", "", s)
    s = re.sub(r"\\(?:text|mbox|textrm|mathrm)\s*\{\s*(?:or|and)\s*\}", ",", s)
    s = _strip_text_unit(s)
    for _ in range(4):
        new = _WRAP_RE.sub(lambda m: " " + m.group(1) + " ", s)
        if new == s:
            break
        s = new
    s = re.sub(r"\\\$|\$|\u20ac|\u00a3|\u00a5|\\euro(?![A-Za-z])|\\pounds(?![A-Za-z])", "", s)
    s = re.sub(r"\b(?:USD|dollars?|cents?|euros?)\b", "", s)
    s = s.replace("\\%", "%")
    s = re.sub(r"\s*\b(?:percent|per\s+cent)\b", "%", s)
    s = re.sub(r"\s+", " ", s).strip()
    if s.count("=") == 1:  # "f(x) = x^2": a function name on the left is a label
        s = re.sub(r"^[A-Za-z](?:_\{?\w+\}?)?\s*\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])*\s*\)\s*=\s*", "", s)
    s = _strip_word_unit(s)
    s = re.sub(r"\b(?:degrees?)\b", "", s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if re.search(r"[\d=\\]", s):
        s = re.sub(r"\s*,?\s+(?:or|and)\s+", ", ", s)
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    elif re.fullmatch(r"[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?", s):
        s = s.replace(" ", "")
    m = re.fullmatch(r"(-?)(\d+) (\d+)/(\d+)", s)
    if m:
        s = f"{m.group(1)}({m.group(2)}+{m.group(3)}/{m.group(4)})"
    return s


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


# ---------------------------------------------------------------------------- tokenizer

_FUNC_WORDS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "asin", "acos", "atan", "asec", "acsc", "acot",
    "arcsin", "arccos", "arctan", "arcsec", "arccsc", "arccot", "sinh", "cosh", "tanh",
    "sech", "csch", "coth", "asinh", "acosh", "atanh", "arsinh", "arcosh", "artanh",
    "arcsinh", "arccosh", "arctanh", "log", "ln", "lg", "exp", "sqrt", "cbrt", "abs", "Abs",
    "floor", "ceiling", "ceil", "factorial", "binomial", "root", "sign", "sgn", "gcd", "lcm",
    "max", "min", "Max", "Min",
}
_FUNC_ALIASES = {
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsec": "asec", "arccsc": "acsc",
    "arccot": "acot", "arsinh": "asinh", "arcsinh": "asinh", "arcosh": "acosh",
    "arccosh": "acosh", "artanh": "atanh", "arctanh": "atanh", "ln": "log", "Abs": "abs",
    "ceil": "ceiling", "sgn": "sign", "max": "Max", "min": "Min",
}
_INVERTIBLE = {"sin", "cos", "tan", "sec", "csc", "cot", "sinh", "cosh", "tanh"}
_CONST_WORDS = {"pi": "pi", "oo": "oo", "inf": "oo", "infty": "oo", "infinity": "oo",
                "e": "E", "E": "E", "i": "I", "I": "I"}
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma",
    "Upsilon", "Phi", "Psi", "Omega", "ell",
}
_PLAIN_NAMES = _FUNC_WORDS | set(_CONST_WORDS) | {g for g in _GREEK if len(g) >= 3}
_PLAIN_BY_LEN = sorted((n for n in _PLAIN_NAMES if len(n) > 1), key=len, reverse=True)
_CMD_OPS = {
    "cdot": "*", "times": "*", "ast": "*", "div": "/", "le": "<=", "leq": "<=",
    "leqslant": "<=", "ge": ">=", "geq": ">=", "geqslant": ">=", "lt": "<", "gt": ">",
    "ne": "!=", "neq": "!=", "approx": "=", "cup": "cup", "in": "in", "pm": "pm", "mp": "pm",
    "vert": "|", "lvert": "|", "rvert": "|", "mid": "|", "Vert": "|",
}
_CMD_SKIP = {"left", "right", "quad", "qquad", "displaystyle", "textstyle", "limits", "nolimits"}
_CMD_CONSTS = {"pi": "pi", "infty": "oo", "infinity": "oo", "imath": "I"}
_ATOM_CMDS = ({"frac", "sqrt", "binom", "lfloor", "lceil", "emptyset", "varnothing"}
              | _FUNC_WORDS | set(_CMD_CONSTS) | _GREEK)
_MATRIX_ENVS = {"pmatrix", "bmatrix", "Bmatrix", "matrix", "array", "smallmatrix"}
_NUM_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_DIGITS = frozenset("0123456789")  # str.isdigit() is also true for "\u00b9", "\u0663", ...
_REL_OPS = {"=", "<", ">", "<=", ">=", "!=", "in"}


def _split_word(w: str) -> list[str]:
    """A run of letters as known names (longest first) and single letters: "xsin" -> x, sin."""
    out, i = [], 0
    while i < len(w):
        for name in _PLAIN_BY_LEN:
            if w.startswith(name, i):
                out.append(name)
                i += len(name)
                break
        else:
            out.append(w[i])
            i += 1
    return out


def _braced(s: str, i: int) -> tuple[str, int]:
    """Content of the brace group starting at s[i] == "{" and the index after it."""
    end = _match_brace(s, i)
    if end < 0:
        raise _ParseError("unbalanced braces")
    return s[i + 1 : end], end + 1


def _tokenize(s: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c.isspace():
            i += 1
        elif c in _DIGITS or (c == "." and i + 1 < n and s[i + 1] in _DIGITS):
            m = _NUM_RE.match(s, i)
            toks.append(("num", m.group()))
            i = m.end()
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and s[j].isascii() and s[j].isalpha():
                j += 1
            toks.extend(("name", w) for w in _split_word(s[i:j]))
            i = j
        elif c == "\\":
            m = re.compile(r"\\([A-Za-z]+)").match(s, i)
            if m:
                name, i = m.group(1), m.end()
                if name in ("begin", "end"):
                    while i < n and s[i] == " ":
                        i += 1
                    if i >= n or s[i] != "{":
                        raise _ParseError(f"\\{name} without environment")
                    env, i = _braced(s, i)
                    toks.append((name, env.strip()))
                    if name == "begin" and env.strip() == "array":
                        while i < n and s[i] == " ":
                            i += 1
                        if i < n and s[i] == "{":
                            _, i = _braced(s, i)
                elif name == "mathbb":
                    while i < n and s[i] == " ":
                        i += 1
                    arg, i = _braced(s, i) if i < n and s[i] == "{" else (s[i : i + 1], i + 1)
                    if arg.strip() != "R":
                        raise _ParseError(f"unsupported \\mathbb{{{arg}}}")
                    toks.append(("const", "reals"))
                elif name in _CMD_SKIP:
                    pass
                elif name in _CMD_OPS:
                    toks.append(("op", _CMD_OPS[name]))
                else:
                    toks.append(("cmd", name))
                continue
            nxt = s[i + 1] if i + 1 < n else ""
            if nxt == "{":
                toks.append(("lset", "\\{"))
            elif nxt == "}":
                toks.append(("rset", "\\}"))
            elif nxt == "\\":
                toks.append(("rowsep", "\\\\"))
            elif nxt == "|":
                toks.append(("op", "|"))
            elif nxt == "%":
                toks.append(("op", "%"))
            elif nxt not in ",;:! ":
                raise _ParseError(f"unexpected \\{nxt}")
            i += 2
        elif c == "_":
            i += 1
            while i < n and s[i] == " ":
                i += 1
            if i < n and s[i] == "{":
                raw, i = _braced(s, i)
            elif i < n and s[i] == "\\":
                m = re.compile(r"\\[A-Za-z]+").match(s, i)
                raw = m.group() if m else s[i : i + 2]
                i += len(raw)
            elif i < n:
                raw, i = s[i], i + 1
            else:
                raise _ParseError("dangling _")
            toks.append(("sub", raw))
        elif s.startswith("**", i):
            toks.append(("op", "^"))
            i += 2
        elif s[i : i + 2] in ("<=", ">=", "=="):
            toks.append(("op", "=" if s[i : i + 2] == "==" else s[i : i + 2]))
            i += 2
        elif c in "+-*/^()[],;=<>!|%":
            toks.append(("op", c))
            i += 1
        elif c == "{":
            toks.append(("lb", "{"))
            i += 1
        elif c == "}":
            toks.append(("rb", "}"))
            i += 1
        elif c == "&":
            toks.append(("colsep", "&"))
            i += 1
        else:
            raise _ParseError(f"unexpected character {c!r}")
    return toks


# ------------------------------------------------------------------------------- parser
# Nodes are hashable tuples: ("num", "2.5"), ("sym", "x_1"), ("const", "pi"|"E"|"I"|"oo"|
# "reals"), ("add", terms), ("mul", factors), ("neg", x), ("div", a, b), ("pow", a, b),
# ("fact", x), ("pct", x), ("func", name, args), ("pm", a|None, b), ("rel", op, a, b),
# ("chain", items, ops), ("tuple"|"bracket"|"set"|"list", items),
# ("interval", lo, hi, lopen, ropen), ("union", parts), ("matrix", rows).


def _mul(a: tuple, b: tuple) -> tuple:
    return ("mul", a[1] + (b,)) if a[0] == "mul" else ("mul", (a, b))


def _is_int_num(node: tuple) -> bool:
    return node[0] == "num" and node[1].isdigit()


class _Parser:
    def __init__(self, toks: list[tuple[str, str]]):
        self.toks, self.i, self.depth, self.bars = toks, 0, 0, 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("eof", "")

    def take(self) -> tuple[str, str]:
        t = self.peek()
        self.i += 1
        return t

    def at(self, kind: str, val: str | None = None) -> bool:
        t = self.peek()
        return t[0] == kind and (val is None or t[1] == val)

    def eat(self, kind: str, val: str | None = None) -> bool:
        if self.at(kind, val):
            self.i += 1
            return True
        return False

    def need(self, kind: str, val: str | None = None) -> None:
        if not self.eat(kind, val):
            raise _ParseError(f"expected {val or kind}, got {self.peek()[1] or 'end'}")

    def starts_atom(self, t: tuple[str, str]) -> bool:
        kind, val = t
        if kind in ("num", "name", "lb", "lset", "begin", "const"):
            return True
        if kind == "cmd":
            return val in _ATOM_CMDS
        return t == ("op", "(") or (t == ("op", "|") and self.bars == 0)

    def is_func(self, t: tuple[str, str]) -> bool:
        return t[0] in ("name", "cmd") and t[1] in _FUNC_WORDS

    # grammar, loosest first
    def top(self) -> tuple:
        if not self.toks:
            raise _ParseError("empty")
        items = self.seq()
        if not self.at("eof"):
            raise _ParseError(f"unexpected {self.peek()[1]!r}")
        return items[0] if len(items) == 1 else ("list", tuple(items))

    def seq(self) -> list[tuple]:
        items = [self.rel()]
        while self.eat("op", ",") or self.eat("op", ";"):
            items.append(self.rel())
        return items

    def rel(self) -> tuple:
        items, ops = [self.union()], []
        while self.peek()[0] == "op" and self.peek()[1] in _REL_OPS:
            ops.append(self.take()[1])
            items.append(self.union())
        if not ops:
            return items[0]
        if len(ops) == 1:
            return ("rel", ops[0], items[0], items[1])
        return ("chain", tuple(items), tuple(ops))

    def union(self) -> tuple:
        parts = [self.additive()]
        while self.eat("op", "cup"):
            parts.append(self.additive())
        return parts[0] if len(parts) == 1 else ("union", tuple(parts))

    def additive(self) -> tuple:
        terms = [self.signed()]
        while True:
            if self.eat("op", "+"):
                terms.append(self.signed())
            elif self.eat("op", "-"):
                terms.append(("neg", self.signed()))
            elif self.eat("op", "pm"):
                left = terms[0] if len(terms) == 1 else ("add", tuple(terms))
                terms = [("pm", left, self.signed())]
            else:
                break
        if len(terms) == 1:
            return terms[0]
        flat: list[tuple] = []
        for t in terms:
            flat.extend(t[1] if t[0] == "add" else (t,))
        return ("add", tuple(flat))

    def signed(self) -> tuple:
        if self.eat("op", "-"):
            return ("neg", self.signed())
        if self.eat("op", "+"):
            return self.signed()
        if self.eat("op", "pm"):
            return ("pm", None, self.signed())
        return self.term()

    def term(self) -> tuple:
        first = cur = self.power()
        while True:
            t = self.peek()
            if t == ("op", "*"):
                self.i += 1
                cur = _mul(cur, self.signed_power())
            elif t == ("op", "/"):
                self.i += 1
                cur = ("div", cur, self.signed_power())
            elif self.starts_atom(t):
                if t[0] == "num" and self.toks[self.i - 1][0] == "num":
                    raise _ParseError("two numbers in a row")
                nxt = self.power()
                if (cur is first and _is_int_num(cur) and t == ("cmd", "frac") and nxt[0] == "div"
                        and _is_int_num(nxt[1]) and _is_int_num(nxt[2])):
                    cur = ("add", (cur, nxt))  # mixed number 3\frac{1}{2}
                else:
                    cur = _mul(cur, nxt)
            else:
                return cur

    def signed_power(self) -> tuple:
        if self.eat("op", "-"):
            return ("neg", self.signed_power())
        if self.eat("op", "+"):
            return self.signed_power()
        return self.power()

    def power(self) -> tuple:
        node = self.postfix()
        if self.eat("op", "^"):
            node = ("pow", node, self.exponent())
            node = self.postfix_ops(node)
        return node

    def exponent(self) -> tuple:
        if self.eat("op", "-"):
            return ("neg", self.exponent())
        if self.eat("op", "+"):
            return self.exponent()
        node = self.postfix()
        if self.eat("op", "^"):
            return ("pow", node, self.exponent())
        return node

    def postfix(self) -> tuple:
        return self.postfix_ops(self.atom())

    def postfix_ops(self, node: tuple) -> tuple:
        while True:
            if self.eat("op", "!"):
                node = ("fact", node)
            elif self.eat("op", "%"):
                node = ("pct", node)
            else:
                return node

    def atom(self) -> tuple:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _ParseError("nested too deeply")
        try:
            return self._atom()
        finally:
            self.depth -= 1

    def _atom(self) -> tuple:
        kind, val = self.take()
        if kind == "num":
            return ("num", val)
        if kind == "name":
            return self.name(val)
        if kind == "const":
            return ("const", val)
        if kind == "cmd":
            return self.command(val)
        if kind == "lb":
            return self.brace_body()
        if kind == "lset":
            if self.eat("rset") or self.eat("rb"):
                return ("set", ())
            items = self.seq()
            if not (self.eat("rset") or self.eat("rb")):
                raise _ParseError("unclosed \\{")
            return ("set", tuple(items))
        if kind == "begin":
            return self.matrix(val)
        if kind == "op" and val in "([":
            return self.bracketed(val)
        if kind == "op" and val == "|":
            self.bars += 1
            x = self.additive()
            self.need("op", "|")
            self.bars -= 1
            return ("func", "abs", (x,))
        raise _ParseError(f"unexpected {val or kind!r}")

    def bracketed(self, open_: str) -> tuple:
        if self.eat("op", ")" if open_ == "(" else "]"):
            return ("tuple" if open_ == "(" else "bracket", ())
        items = self.seq()
        close = self.take()
        if close not in (("op", ")"), ("op", "]")):
            raise _ParseError(f"unclosed {open_}")
        same = (open_ == "(") == (close[1] == ")")
        if len(items) == 1 and same:
            return items[0]
        if same:
            return ("tuple" if open_ == "(" else "bracket", tuple(items))
        if len(items) != 2:
            raise _ParseError("half-open interval needs two endpoints")
        return ("interval", items[0], items[1], open_ == "(", close[1] == ")")

    def brace_body(self) -> tuple:
        if self.eat("rb"):
            return ("set", ())
        items = [self.rel()]
        if self.eat("cmd", "choose"):
            k = self.rel()
            self.need("rb")
            return ("func", "binomial", (items[0], k))
        while self.eat("op", ",") or self.eat("op", ";"):
            items.append(self.rel())
        self.need("rb")
        return items[0] if len(items) == 1 else ("set", tuple(items))

    def arg(self) -> tuple:
        """One macro argument: {group}, one digit of a number, or one atom."""
        if self.eat("lb"):
            return self.brace_body()
        t = self.peek()
        if t[0] == "num" and len(t[1]) > 1 and t[1][0] in _DIGITS:  # \frac12: the first
            # digit; the rest is tokenized again, as it need not be a number ("1e5" leaves "e5")
            self.toks[self.i : self.i + 1] = _tokenize(t[1][1:])
            return ("num", t[1][0])
        return self.atom()

    def name(self, val: str) -> tuple:
        if val in _FUNC_WORDS:
            return self.func_app(val)
        if self.at("sub"):
            sub = re.sub(r"[\s{}\\]", "", self.take()[1])
            return ("sym", f"{val}_{sub}")
        if val in _CONST_WORDS:
            return ("const", _CONST_WORDS[val])
        return ("sym", val)

    def command(self, val: str) -> tuple:
        if val == "frac":
            return ("div", self.arg(), self.arg())
        if val == "sqrt":
            if self.eat("op", "["):
                n = self.additive()
                self.need("op", "]")
                return ("func", "root", (self.arg(), n))
            return ("func", "sqrt", (self.arg(),))
        if val == "binom":
            return ("func", "binomial", (self.arg(), self.arg()))
        if val in _FUNC_WORDS:
            return self.func_app(val)
        if val in _CMD_CONSTS:
            return ("const", _CMD_CONSTS[val])
        if val in _GREEK:
            return self.name(val)
        if val in ("lfloor", "lceil"):
            x = self.additive()
            self.need("cmd", "rfloor" if val == "lfloor" else "rceil")
            return ("func", "floor" if val == "lfloor" else "ceiling", (x,))
        if val in ("emptyset", "varnothing"):
            return ("set", ())
        raise _ParseError(f"unsupported \\{val}")

    def func_app(self, name: str) -> tuple:
        base = power = None
        for _ in range(2):
            if name in ("log", "lg") and self.at("sub"):
                base = _parse_text(self.take()[1])
            elif self.eat("op", "^"):
                power = self.exponent()
        if self.eat("op", "("):
            args = tuple(self.seq())
            self.need("op", ")")
        elif self.eat("lb"):
            args = (self.brace_body(),)
        else:
            factors = [self.signed_power()]
            while self.starts_atom(self.peek()) and not self.is_func(self.peek()):
                factors.append(self.power())
            args = (factors[0] if len(factors) == 1 else ("mul", tuple(factors)),)
        name = _FUNC_ALIASES.get(name, name)
        if name == "lg":
            name, base = "log", base or ("num", "10")
        if name == "cbrt":
            name, args = "root", args + (("num", "3"),)
        if power == ("neg", ("num", "1")) and name in _INVERTIBLE:
            name, power = "a" + name, None
        node = ("func", name, args + ((base,) if base is not None else ()))
        return ("pow", node, power) if power is not None else node

    def matrix(self, env: str) -> tuple:
        if env.rstrip("*") not in _MATRIX_ENVS:
            raise _ParseError(f"unsupported environment {env}")
        rows, row = [], [self.rel()]
        while True:
            if self.eat("colsep"):
                row.append(self.rel())
            elif self.eat("rowsep"):
                rows.append(tuple(row))
                if self.at("end"):
                    row = []
                    continue
                row = [self.rel()]
            elif self.eat("end"):
                if row:
                    rows.append(tuple(row))
                break
            else:
                raise _ParseError("unclosed matrix")
        if len({len(r) for r in rows}) != 1:
            raise _ParseError("ragged matrix")
        return ("matrix", tuple(rows))


def _parse_text(s: str) -> tuple:
    return _Parser(_tokenize(s)).top()


@lru_cache(maxsize=8192)
def _parse_cached(s: str) -> tuple[bool, object]:
    """(True, tree) or (False, reason). Parsing is bounded: length and depth are capped."""
    if len(s) > MAX_ANSWER_CHARS:
        return False, "answer too long"
    try:
        tree = _parse_text(s)
    except _ParseError as e:
        return False, str(e)
    except RecursionError:
        return False, "nested too deeply"
    if _tree_depth(tree) > MAX_TREE_DEPTH:
        return False, "nested too deeply"
    return True, tree


def _tree_depth(tree: tuple) -> int:
    """Nesting depth of a parse tree (iterative: the tree may be deeper than the stack)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((c, d + 1) for c in node if isinstance(c, tuple))
    return deepest


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


# --------------------------------------------------------- exact engine (pure Python)
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


# --------------------------------------------------------------- SymPy engine (worker)

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


def _text(x) -> str | None:
    """A response or reference as text: bytes as UTF-8, None as "", anything else by str().
    None when it has none (its str() raised, e.g. an int of more than 4300 digits)."""
    if isinstance(x, str):
        return x
    if x is None:
        return ""
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).decode("utf-8", "replace")
    try:
        return str(x)
    except Exception:
        return None


def _local_stage(response, reference) -> MathResult | tuple[str, str]:
    """Everything that runs in the calling process: a result, or the normalized pair for
    the SymPy worker."""
    response, reference = _text(response), _text(reference)
    if reference is None:
        return MathResult(UNVERIFIABLE, None, "", "reference is not text")
    if len(reference) > 4 * MAX_ANSWER_CHARS:
        return MathResult(UNVERIFIABLE, None, reference[:200], "reference too long")
    ref = normalize_answer(reference)
    if response is None:
        return MathResult(UNVERIFIABLE, None, ref, "response is not text")
    try:
        raw = _extract(response)
    except _Unbalanced:
        return MathResult(UNVERIFIABLE, None, ref, "unbalanced braces after \\boxed")
    if raw is None:
        return MathResult(UNVERIFIABLE, None, ref, "no final answer found")
    if len(raw) > MAX_ANSWER_CHARS:
        return MathResult(UNVERIFIABLE, None, ref, "answer too long")
    pred = normalize_answer(raw)
    if not pred:
        return MathResult(UNVERIFIABLE, pred, ref, "empty answer")
    if not ref:
        return MathResult(UNVERIFIABLE, pred, ref, "empty reference")
    try:
        verdict, reason = _decide(pred, ref, _ExactEngine())
    except RecursionError:  # parse trees are depth-capped; this is the last line of defence
        return MathResult(UNVERIFIABLE, pred, ref, "expression nested too deeply")
    if verdict is None:
        return pred, ref
    return MathResult(verdict, pred, ref, reason)


def _safe(fn, reference):
    try:
        return fn()
    except Exception as e:  # never raise on untrusted input
        ref = (_text(reference) or "")[:200]
        return MathResult(UNVERIFIABLE, None, ref, f"internal error: {type(e).__name__}: {e}"[:300])


# ------------------------------------------------------------------ worker processes

_BOOT = (
    "import sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
    "import importlib.util\n"
    "spec = importlib.util.spec_from_file_location('_synth_math_worker', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = mod\n"
    "spec.loader.exec_module(mod)\n"
    "mod._worker_main()\n"
)


def _watch_parent() -> None:
    """Exit when the parent process goes away (a busy worker would not see stdin close)."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


_WARM_UP = [("3.14", "pi"), ("\\sec^2 y", "\\tan^2 y + 1"), ("y = \\sqrt{2} x", "y - sqrt(2)*x = 0"),
            ("e^{2x}", "exp(2*x)"), ("\\ln 2 + \\arctan x", "log(2) + atan(x)"), ("3+4i", "3 + 4*I"),
            ("x > \\sqrt{3}", "sqrt(3) < x"), ("\\lfloor x \\rfloor + |x|", "floor(x) + Abs(x)")]


def _worker_main() -> None:
    """Serve JSON-line requests {"p": pred, "r": ref} on stdin; answer {"v", "why"}."""
    # Not PR_SET_PDEATHSIG: it fires when the creating *thread* exits, and batches create
    # workers from short-lived threads.
    threading.Thread(target=_watch_parent, daemon=True).start()
    try:
        import resource
        cap = 2 << 30
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except Exception:
        pass
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, not into the protocol
    _points_table()
    for pred, ref in _WARM_UP:  # load SymPy's lazy parts now: start-up is not charged to a check
        try:
            _decide(pred, ref, _SympyEngine())
        except Exception:
            pass
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
            verdict, reason = _decide(req["p"], req["r"], _SympyEngine())
            if verdict is None:
                verdict, reason = UNVERIFIABLE, "undecided"
        except RecursionError:
            verdict, reason = UNVERIFIABLE, "expression nested too deeply"
        except MemoryError:
            verdict, reason = UNVERIFIABLE, "out of memory"
        except Exception as e:
            verdict, reason = UNVERIFIABLE, f"sympy error: {type(e).__name__}: {e}"[:300]
        out.write(json.dumps({"v": verdict, "why": reason}).encode() + b"\n")
        out.flush()


class _WorkerDied(Exception):
    pass


class _Worker:
    """One SymPy worker process, spoken to over pipes; killed when a check overruns."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, os.path.abspath(__file__)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True, start_new_session=True)
        self.owner = os.getpid()
        self.buf = b""
        self.ready = False

    def _readline(self, deadline: float) -> bytes | None:
        """The next line, None at the deadline; _WorkerDied if the process is gone."""
        import select

        fd = self.proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _WorkerDied
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def check(self, pred: str, ref: str, timeout: float) -> tuple[str, str] | None:
        """(verdict, reason), or None if the worker overran `timeout`; _WorkerDied if it
        was gone or died on this request."""
        if not self.ready:
            if self._readline(time.monotonic() + STARTUP_TIMEOUT) is None:
                raise _WorkerDied
            self.ready = True
        try:
            self.proc.stdin.write(json.dumps({"p": pred, "r": ref}).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            raise _WorkerDied from None
        line = self._readline(time.monotonic() + timeout)
        if line is None:
            return None
        msg = json.loads(line)
        return msg["v"], msg["why"]

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


class _Pool:
    """A few persistent workers, shared by all threads; a worker that overruns is killed
    and replaced. Bounded: at most `limit` live workers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.pid = os.getpid()
        self.limit = max(4, 2 * (os.cpu_count() or 1))
        self.slots = threading.BoundedSemaphore(self.limit)

    def _reset_after_fork(self) -> None:
        if self.pid != os.getpid():  # a forked child must not share its parent's pipes
            self.idle, self.pid = [], os.getpid()
            self.slots = threading.BoundedSemaphore(self.limit)

    def acquire(self) -> _Worker:
        with self.lock:
            self._reset_after_fork()
            slots = self.slots
        slots.acquire()
        with self.lock:
            if self.idle:
                return self.idle.pop()
        try:
            return _Worker()
        except BaseException:
            slots.release()
            raise

    def release(self, w: _Worker) -> None:
        with self.lock:
            if w.owner == os.getpid() == self.pid:
                self.idle.append(w)
                self.slots.release()
                return
        w.kill()

    def discard(self, w: _Worker) -> None:
        """Kill an overrunning worker and start its replacement in the background."""
        w.kill()
        with self.lock:
            if w.owner != os.getpid() or self.pid != os.getpid():
                return
            try:
                self.idle.append(_Worker())
            except Exception:
                pass
            self.slots.release()

    def shutdown(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for w in idle:
            if w.owner == os.getpid():
                w.kill()


_POOL = _Pool()
atexit.register(_POOL.shutdown)

_CACHE: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 65536


def _cache_get(key):
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
        return hit


def _cache_put(key, value) -> None:
    with _CACHE_LOCK:
        _CACHE[key] = value
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def _clear_caches() -> None:
    """Forget cached verdicts and parses (benchmarks time cold checks)."""
    with _CACHE_LOCK:
        _CACHE.clear()
    _parse_cached.cache_clear()


def _run(worker: _Worker | None, pred: str, ref: str, timeout: float) -> tuple[tuple[str, str], _Worker | None]:
    """Check one pair on `worker` (or a pooled one). Returns (verdict, reason) and the
    worker, still usable, or None if it was killed. A worker found dead is replaced once."""
    for _ in range(2):
        if worker is None:
            try:
                worker = _POOL.acquire()
            except Exception as e:
                return (UNVERIFIABLE, f"math worker unavailable: {e}"), None
        try:
            out = worker.check(pred, ref, timeout)
        except Exception:  # died (or spoke garbage): replace it and try once more
            _POOL.discard(worker)
            worker = None
            continue
        if out is None:
            _POOL.discard(worker)
            return (UNVERIFIABLE, f"timed out after {timeout:g}s"), None
        _cache_put((pred, ref), out)
        return out, worker
    return (UNVERIFIABLE, "math worker died on this input"), None


def _remote(pred: str, ref: str, timeout: float) -> tuple[str, str]:
    hit = _cache_get((pred, ref))
    if hit is not None:
        return hit
    out, worker = _run(None, pred, ref, timeout)
    if worker is not None:
        _POOL.release(worker)
    return out


# ----------------------------------------------------------------------------- the API


def _seconds(timeout) -> float:
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        return 5.0
    return min(max(t, 0.01), 3600.0) if t == t else 5.0


def check_math(response: str, reference: str, *, timeout: float = 5.0) -> MathResult:
    """Judge the final answer in `response` against the gold answer `reference`.

    Never raises. `timeout` (seconds) bounds the SymPy stage of the check; an overrun kills
    that worker process and the result is `unverifiable`. Safe to call from any thread."""
    timeout = _seconds(timeout)

    def run():
        stage = _local_stage(response, reference)
        if isinstance(stage, MathResult):
            return stage
        pred, ref = stage
        verdict, reason = _remote(pred, ref, timeout)
        return MathResult(verdict, pred, ref, reason)

    return _safe(run, reference)


def check_math_batch(pairs, *, workers: int | None = None, timeout: float = 5.0) -> list[MathResult]:
    """`check_math` over (response, reference) pairs, in order. The cheap exact stage runs
    here; pairs that need SymPy are spread over `workers` worker processes (default: one
    per CPU). Same results as calling `check_math` on each pair."""
    pairs, timeout = list(pairs), _seconds(timeout)
    results: list[MathResult | None] = [None] * len(pairs)
    pending: dict[tuple[str, str], list[int]] = {}
    for i, pair in enumerate(pairs):
        try:
            response, reference = pair
        except Exception:
            results[i] = MathResult(UNVERIFIABLE, None, "", "not a (response, reference) pair")
            continue
        stage = _safe(lambda resp=response, ref=reference: _local_stage(resp, ref), reference)
        if isinstance(stage, MathResult):
            results[i] = stage
            continue
        hit = _cache_get(stage)
        if hit is not None:
            results[i] = MathResult(hit[0], stage[0], stage[1], hit[1])
        else:
            pending.setdefault(stage, []).append(i)

    keys = list(pending)
    try:
        asked = int(workers) if workers else 0
    except (TypeError, ValueError, OverflowError):
        asked = 0
    n = max(1, min(asked or os.cpu_count() or 1, len(keys)))
    lock = threading.Lock()
    todo = iter(keys)

    def drain() -> None:
        w = None
        try:
            while True:
                with lock:
                    key = next(todo, None)
                if key is None:
                    return
                (verdict, reason), w = _run(w, key[0], key[1], timeout)
                for i in pending[key]:
                    results[i] = MathResult(verdict, key[0], key[1], reason)
        finally:
            if w is not None:
                _POOL.release(w)

    if keys:
        threads = [threading.Thread(target=drain, daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return [r if r is not None else MathResult(UNVERIFIABLE, None, "", "not checked") for r in results]
